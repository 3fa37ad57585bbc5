"""The public surface of streaming.security is deliberate: sorted, complete, importable."""

from __future__ import annotations

import types

import streaming.security as security


def test_all_is_sorted_and_resolves() -> None:
    assert security.__all__ == sorted(security.__all__)
    for name in security.__all__:
        assert getattr(security, name) is not None


def test_surface_is_pinned() -> None:
    public = {n for n in dir(security) if n.isidentifier() and not n.startswith("_")}
    modules = {n for n in public if isinstance(getattr(security, n), types.ModuleType)}
    assert public - modules == set(security.__all__)
    assert {
        "JWTManager",
        "RoleBasedAccessControl",
        "SecureHasher",
        "FieldEncryptor",
        "TopicAuthorizer",
        "HttpAuthenticator",
        "PostgresRevocationStore",
        "SharedRevocationStore",
        "shared_revocations",
    } <= set(security.__all__)


def test_security_errors_belong_to_the_one_tree() -> None:
    from streaming.errors import AuthenticationError, PermissionDenied, SecurityError

    assert issubclass(security.InvalidTokenError, AuthenticationError)
    assert issubclass(security.RefreshTokenReuseError, security.InvalidTokenError)
    assert issubclass(security.AccessDenied, PermissionDenied)
    assert issubclass(security.RevocationsUnavailableError, SecurityError)
    for name in ("HashingError", "DecryptionError", "UnknownKeyError", "UnknownPepperError"):
        assert issubclass(getattr(security, name), SecurityError)
