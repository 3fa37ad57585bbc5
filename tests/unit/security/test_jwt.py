"""JWTManager: issuing, every rejection case, refresh rotation, reuse detection, revocation."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from typing import Any

import jwt as pyjwt
import pytest
from pydantic import SecretStr

from streaming.config import SecuritySettings
from streaming.errors import AuthenticationError
from streaming.security import (
    Action,
    InvalidTokenError,
    JWTManager,
    KeyRing,
    Permission,
    RefreshTokenReuseError,
    ResourceType,
    SigningKey,
    TokenRejection,
    TokenRevokedError,
)

from .conftest import AuditRecorder


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _segments(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    header, payload, _ = token.split(".")
    return json.loads(_unb64(header)), json.loads(_unb64(payload))


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _forge(header: dict[str, Any], payload: dict[str, Any], sign: Callable[[bytes], bytes]) -> str:
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(payload).encode())}"
    return f"{signing_input}.{_b64(sign(signing_input.encode()))}"


async def _rejected(manager: JWTManager, token: str) -> TokenRejection:
    with pytest.raises(InvalidTokenError) as info:
        await manager.verify_access_token(token)
    assert isinstance(info.value, AuthenticationError)
    return info.value.reason


async def test_access_token_round_trip_carries_all_claims(manager: JWTManager) -> None:
    token = await manager.create_access_token(
        "alice",
        ["order:create", "topic:orders.*:read,write"],
        {"correlation_id": "c-1", "ignored": object()},
        roles=["trader"],
    )
    header, payload = _segments(token)
    assert header["alg"] == "EdDSA"
    assert header["kid"] == manager.keys.active.kid
    assert {"sub", "roles", "permissions", "jti", "iat", "nbf", "exp", "iss", "aud"} <= set(payload)
    claims = await manager.verify_access_token(token)
    assert claims.subject == "alice"
    assert claims.roles == ("trader",)
    assert Permission(ResourceType.ORDER, "*", frozenset({Action.CREATE})) in claims.permissions
    assert claims.context == {"correlation_id": "c-1"}
    assert claims.expires_at - claims.issued_at == 15 * 60
    principal = claims.principal()
    assert principal.subject == "alice" and principal.roles == frozenset({"trader"})


async def test_bad_permission_string_is_refused_when_issuing(manager: JWTManager) -> None:
    with pytest.raises(ValueError, match="permission"):
        await manager.create_access_token("alice", ["orders-create"])


async def test_rejects_bad_signature(manager: JWTManager, signing_key: SigningKey) -> None:
    token = await manager.create_access_token("alice", [])
    header, payload = _segments(token)
    impostor = SigningKey.generate("EdDSA")
    assert impostor.signer is not None
    forged = pyjwt.encode(payload, impostor.signer, algorithm="EdDSA", headers=header)
    assert await _rejected(manager, forged) is TokenRejection.BAD_SIGNATURE


async def test_rejects_tampered_payload(manager: JWTManager) -> None:
    token = await manager.create_access_token("alice", [], roles=["reader"])
    head, _, sig = token.split(".")
    _, payload = _segments(token)
    payload["roles"] = ["admin"]
    tampered = f"{head}.{_b64(json.dumps(payload).encode())}.{sig}"
    assert await _rejected(manager, tampered) is TokenRejection.BAD_SIGNATURE


async def test_rejects_expired(make_manager: Callable[..., JWTManager]) -> None:
    past = make_manager(clock=lambda: time.time() - 3600)
    token = await past.create_access_token("alice", [])
    assert await _rejected(make_manager(), token) is TokenRejection.EXPIRED


async def test_rejects_not_yet_valid(make_manager: Callable[..., JWTManager]) -> None:
    future = make_manager(clock=lambda: time.time() + 600)
    token = await future.create_access_token("alice", [])
    assert await _rejected(make_manager(), token) is TokenRejection.NOT_YET_VALID


async def test_leeway_absorbs_small_clock_skew(make_manager: Callable[..., JWTManager]) -> None:
    ahead = make_manager(clock=lambda: time.time() + 5)  # leeway is 10 s
    token = await ahead.create_access_token("alice", [])
    assert (await make_manager().verify_access_token(token)).subject == "alice"
    just_expired = make_manager(clock=lambda: time.time() - 15 * 60 - 5)
    token = await just_expired.create_access_token("alice", [])
    assert (await make_manager().verify_access_token(token)).subject == "alice"


async def test_rejects_wrong_audience(
    make_manager: Callable[..., JWTManager], settings: SecuritySettings
) -> None:
    other = make_manager(settings=settings.model_copy(update={"jwt_audience": "other-api"}))
    token = await other.create_access_token("alice", [])
    assert await _rejected(make_manager(), token) is TokenRejection.AUDIENCE


async def test_rejects_wrong_issuer(
    make_manager: Callable[..., JWTManager], settings: SecuritySettings
) -> None:
    other = make_manager(settings=settings.model_copy(update={"jwt_issuer": "evil-issuer"}))
    token = await other.create_access_token("alice", [])
    assert await _rejected(make_manager(), token) is TokenRejection.ISSUER


async def test_rejects_alg_none(manager: JWTManager) -> None:
    _, payload = _segments(await manager.create_access_token("alice", []))
    header = {"alg": "none", "typ": "JWT", "kid": manager.keys.active.kid}
    unsigned = _forge(header, payload, lambda _data: b"")
    assert await _rejected(manager, unsigned) is TokenRejection.ALGORITHM
    assert await _rejected(manager, unsigned.rsplit(".", 1)[0] + ".") is TokenRejection.ALGORITHM


async def test_rejects_hs256_signed_with_the_public_key(
    manager: JWTManager, signing_key: SigningKey
) -> None:
    _, payload = _segments(await manager.create_access_token("alice", []))
    public_pem = signing_key.public_pem().encode()
    header = {"alg": "HS256", "typ": "JWT", "kid": signing_key.kid}
    forged = _forge(
        header, payload, lambda data: hmac.new(public_pem, data, hashlib.sha256).digest()
    )
    assert await _rejected(manager, forged) is TokenRejection.ALGORITHM


async def test_rejects_unknown_kid(manager: JWTManager) -> None:
    stranger = SigningKey.generate("EdDSA")
    _, payload = _segments(await manager.create_access_token("alice", []))
    assert stranger.signer is not None
    token = pyjwt.encode(payload, stranger.signer, algorithm="EdDSA", headers={"kid": stranger.kid})
    assert await _rejected(manager, token) is TokenRejection.UNKNOWN_KID
    no_kid = pyjwt.encode(payload, stranger.signer, algorithm="EdDSA")
    assert await _rejected(manager, no_kid) is TokenRejection.UNKNOWN_KID


async def test_rejects_revoked_jti_and_records_the_refusal(
    manager: JWTManager, audit: AuditRecorder
) -> None:
    token = await manager.create_access_token("alice", [])
    claims = await manager.verify_access_token(token)
    await manager.revoke(claims.token_id, subject="alice")
    with pytest.raises(TokenRevokedError):
        await manager.verify_access_token(token)
    assert audit.types() == ["token_revoked", "revoked_token_refused"]
    refused = audit.events[-1]
    assert (refused.subject, refused.details["jti"]) == ("alice", claims.token_id)
    assert token not in repr(refused)


async def test_revoke_token_revokes_a_presented_token(manager: JWTManager) -> None:
    token = await manager.create_access_token("alice", [])
    claims = await manager.revoke_token(token)
    assert claims.subject == "alice"
    assert await _rejected(manager, token) is TokenRejection.REVOKED


async def test_rejects_garbage(manager: JWTManager) -> None:
    assert await _rejected(manager, "not-a-token") is TokenRejection.MALFORMED


async def test_refresh_token_is_not_an_access_token(manager: JWTManager) -> None:
    pair = await manager.issue_tokens("alice", roles=["trader"])
    assert await _rejected(manager, pair.refresh_token) is TokenRejection.WRONG_TYPE
    with pytest.raises(InvalidTokenError) as info:
        await manager.refresh(pair.access_token)
    assert info.value.reason is TokenRejection.WRONG_TYPE


async def test_refresh_rotates_and_keeps_roles_and_family(
    manager: JWTManager, audit: AuditRecorder
) -> None:
    first = await manager.issue_tokens("alice", roles=["trader"], permissions=["order:create"])
    second = await manager.refresh(first.refresh_token)
    assert second.refresh_token != first.refresh_token
    assert second.family_id == first.family_id
    claims = await manager.verify_access_token(second.access_token)
    assert claims.roles == ("trader",)
    assert [str(p) for p in claims.permissions] == ["order:*:create"]
    third = await manager.refresh(second.refresh_token)
    assert (await manager.verify_access_token(third.access_token)).subject == "alice"
    assert audit.types() == ["token_refreshed", "token_refreshed"]
    assert first.access_token not in repr(first) and first.refresh_token not in repr(first)


async def test_reused_refresh_token_revokes_the_whole_family(
    manager: JWTManager, audit: AuditRecorder
) -> None:
    first = await manager.issue_tokens("alice", roles=["trader"])
    second = await manager.refresh(first.refresh_token)
    unrelated = await manager.issue_tokens("alice", roles=["trader"])

    with pytest.raises(RefreshTokenReuseError) as info:
        await manager.refresh(first.refresh_token)
    assert info.value.family_id == first.family_id
    assert audit.types()[-1] == "refresh_reuse_detected"

    # Every token of the family is dead now, including the legitimately rotated ones.
    for token in (first.access_token, second.access_token):
        assert await _rejected(manager, token) is TokenRejection.REVOKED
    with pytest.raises(TokenRevokedError):
        await manager.refresh(second.refresh_token)
    # Another login of the same user is unaffected.
    assert (await manager.verify_access_token(unrelated.access_token)).subject == "alice"
    assert (await manager.refresh(unrelated.refresh_token)).family_id == unrelated.family_id


async def test_explicit_family_revocation_is_logout_everywhere(manager: JWTManager) -> None:
    pair = await manager.issue_tokens("alice")
    await manager.revoke_family(pair.family_id, subject="alice")
    assert await _rejected(manager, pair.access_token) is TokenRejection.REVOKED
    with pytest.raises(TokenRevokedError):
        await manager.refresh(pair.refresh_token)


async def test_rotated_key_still_verifies_old_tokens(
    make_manager: Callable[..., JWTManager], signing_key: SigningKey
) -> None:
    old = make_manager()
    token = await old.create_access_token("alice", [])
    new_key = SigningKey.generate("EdDSA")
    rotated = make_manager(keys=KeyRing(signing_key).rotate(new_key))
    assert (await rotated.verify_access_token(token)).subject == "alice"
    fresh = await rotated.create_access_token("bob", [])
    assert _segments(fresh)[0] == {"alg": "EdDSA", "kid": new_key.kid, "typ": "JWT"}
    assert [k["kid"] for k in rotated.jwks()["keys"]] == [new_key.kid, signing_key.kid]
    # The old instance does not know the new key yet.
    assert await _rejected(old, fresh) is TokenRejection.UNKNOWN_KID


async def test_es256_keys_work_and_rotation_may_change_algorithm(
    make_manager: Callable[..., JWTManager], signing_key: SigningKey
) -> None:
    old = await make_manager().create_access_token("alice", [])
    es = SigningKey.generate("ES256")
    rotated = make_manager(keys=KeyRing(signing_key).rotate(es))
    fresh = await rotated.create_access_token("bob", [])
    assert _segments(fresh)[0]["alg"] == "ES256"
    assert (await rotated.verify_access_token(fresh)).subject == "bob"
    assert (await rotated.verify_access_token(old)).subject == "alice"
    assert rotated.jwks()["keys"][0]["crv"] == "P-256"


async def test_verify_only_previous_key_from_public_pem(
    make_manager: Callable[..., JWTManager], signing_key: SigningKey
) -> None:
    token = await make_manager().create_access_token("alice", [])
    previous = SigningKey.from_public_pem(signing_key.public_pem())
    assert previous.kid == signing_key.kid and previous.signer is None
    ring = KeyRing(SigningKey.generate("EdDSA"), [previous])
    assert (await make_manager(keys=ring).verify_access_token(token)).subject == "alice"


async def test_hs256_only_when_configured(
    make_manager: Callable[..., JWTManager], settings: SecuritySettings
) -> None:
    hs_settings = settings.model_copy(
        update={"jwt_algorithm": "HS256", "jwt_secret_key": SecretStr("s" * 40)}
    )
    hs = make_manager(settings=hs_settings, keys=KeyRing.from_settings(hs_settings))
    token = await hs.create_access_token("alice", [])
    assert (await hs.verify_access_token(token)).subject == "alice"
    assert hs.jwks() == {"keys": []}  # the secret is never published
    assert await _rejected(make_manager(), token) is TokenRejection.ALGORITHM
    assert await _rejected(hs, await make_manager().create_access_token("a", [])) is (
        TokenRejection.ALGORITHM
    )
