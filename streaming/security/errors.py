"""Security errors, all under :class:`streaming.errors.SecurityError`.

    SecurityError
    +-- AuthenticationError
    |   +-- InvalidTokenError        a JWT failed a check; ``reason`` names which one
    |       +-- TokenRevokedError    its ``jti`` or its family was revoked
    |       +-- RefreshTokenReuseError  an already-used refresh token came back (family revoked)
    +-- RevocationsUnavailableError  the revocation list is not known to be current (fail closed)
    +-- PermissionDenied
    |   +-- AccessDenied             carries subject, resource and action for the 403 body
    +-- HashingError                 a stored password hash cannot be checked
    |   +-- UnknownPepperError       the hash names a pepper this server does not hold
    +-- DecryptionError              a field cannot be decrypted (tampered or wrong key)
        +-- UnknownKeyError          the ciphertext names a key id this server does not hold

Messages never contain a token, password, pepper or key.
"""

from __future__ import annotations

import enum

from streaming.errors import AuthenticationError, PermissionDenied, SecurityError


class TokenRejection(enum.StrEnum):
    """Why a token was refused; stable strings for logs, metrics and tests."""

    MALFORMED = "malformed"
    BAD_SIGNATURE = "bad_signature"
    EXPIRED = "expired"
    NOT_YET_VALID = "not_yet_valid"
    AUDIENCE = "audience"
    ISSUER = "issuer"
    ALGORITHM = "algorithm"
    UNKNOWN_KID = "unknown_kid"
    MISSING_CLAIM = "missing_claim"
    WRONG_TYPE = "wrong_type"
    REVOKED = "revoked"
    REFRESH_REUSED = "refresh_reused"


class InvalidTokenError(AuthenticationError):
    """A JWT was refused; ``reason`` says which check failed."""

    def __init__(self, reason: TokenRejection, detail: str = "") -> None:
        self.reason = reason
        text = f"token rejected: {reason.value}"
        super().__init__(f"{text} ({detail})" if detail else text)


class TokenRevokedError(InvalidTokenError):
    """The token's ``jti`` (or its refresh family) is on the revocation list."""

    def __init__(self, token_id: str, family_id: str | None = None) -> None:
        self.token_id = token_id
        self.family_id = family_id
        detail = f"jti {token_id}" + (f", family {family_id}" if family_id else "")
        super().__init__(TokenRejection.REVOKED, detail)


class RevocationsUnavailableError(SecurityError):
    """This process cannot confirm its revocation list is current, so it accepts no token."""

    retriable = True


class RefreshTokenReuseError(InvalidTokenError):
    """A refresh token was presented a second time; its whole family is now revoked."""

    def __init__(self, family_id: str) -> None:
        self.family_id = family_id
        super().__init__(TokenRejection.REFRESH_REUSED, f"family {family_id} revoked")


class AccessDenied(PermissionDenied):
    """``subject`` may not perform ``action`` on ``resource_type``/``resource``."""

    def __init__(self, subject: str, resource_type: str, resource: str, action: str) -> None:
        self.subject = subject
        self.resource_type = resource_type
        self.resource = resource
        self.action = action
        super().__init__(
            f"user {subject!r} is not allowed to {action} {resource_type} {resource!r}"
        )


class HashingError(SecurityError):
    """A stored password hash is malformed or cannot be verified on this server."""


class UnknownPepperError(HashingError):
    """The hash was made with a pepper id this server was not given (configure it)."""

    def __init__(self, pepper_id: str) -> None:
        self.pepper_id = pepper_id
        super().__init__(
            f"password hash uses pepper id {pepper_id!r}, which this server does not hold; "
            "pass the old pepper in previous_peppers while rotating"
        )


class DecryptionError(SecurityError):
    """Ciphertext was tampered with, truncated, or encrypted for another context."""


class UnknownKeyError(DecryptionError):
    """The ciphertext names a key id this server was not given."""

    def __init__(self, key_id: str) -> None:
        self.key_id = key_id
        super().__init__(
            f"ciphertext was wrapped with key id {key_id!r}, which this server does not hold"
        )


__all__ = [
    "AccessDenied",
    "DecryptionError",
    "HashingError",
    "InvalidTokenError",
    "RefreshTokenReuseError",
    "RevocationsUnavailableError",
    "TokenRejection",
    "TokenRevokedError",
    "UnknownKeyError",
    "UnknownPepperError",
]
