"""``@require_permission``: sync and async, methods and functions, user from the call's
``user_id`` or the current ExecutionContext, refused with PermissionDenied otherwise."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from streaming.context import ExecutionContext, execution_context
from streaming.errors import PermissionDenied
from streaming.security import (
    AccessDenied,
    Action,
    Policy,
    ResourceType,
    RoleBasedAccessControl,
    default_rbac,
    require_permission,
)

from .conftest import AuditRecorder

POLICY = Policy.from_mapping(
    {
        "roles": {"trader": {"permissions": ["order:create"]}, "viewer": {}},
        "users": {"bob": ["trader"], "alice": ["viewer"]},
    }
)


def rbac() -> RoleBasedAccessControl:
    return RoleBasedAccessControl(POLICY, audit=AuditRecorder())


class TradingService:
    """The seed's shape: ``self.rbac`` and a ``user_id`` parameter."""

    def __init__(self, checker: RoleBasedAccessControl) -> None:
        self.rbac = checker
        self.placed: list[str] = []

    @require_permission(ResourceType.ORDER, Action.CREATE)
    async def place_order(self, user_id: str, symbol: str) -> str:
        self.placed.append(symbol)
        return symbol

    @require_permission(ResourceType.ORDER, Action.CREATE)
    def place_order_sync(self, user_id: str, symbol: str) -> str:
        self.placed.append(symbol)
        return symbol


async def test_async_method_takes_user_id_from_its_arguments() -> None:
    service = TradingService(rbac())
    assert await service.place_order("bob", "ACME") == "ACME"
    with pytest.raises(AccessDenied):
        await service.place_order(user_id="alice", symbol="EVIL")
    assert service.placed == ["ACME"]


def test_sync_method_is_checked_without_a_running_loop() -> None:
    service = TradingService(rbac())
    assert service.place_order_sync("bob", "ACME") == "ACME"
    with pytest.raises(AccessDenied):
        service.place_order_sync("alice", "EVIL")
    assert service.placed == ["ACME"]


async def test_sync_method_is_checked_inside_a_running_loop() -> None:
    service = TradingService(rbac())
    assert service.place_order_sync("bob", "ACME") == "ACME"
    with pytest.raises(AccessDenied):
        service.place_order_sync("alice", "EVIL")


async def test_plain_function_without_user_id_uses_the_execution_context() -> None:
    checker = rbac()

    @require_permission(ResourceType.ORDER, Action.CREATE, rbac=checker)
    async def cancel_all(symbol: str) -> str:
        return symbol

    with execution_context(ExecutionContext("cancel_all", user_id="bob")):
        assert await cancel_all("ACME") == "ACME"
    with (
        execution_context(ExecutionContext("cancel_all", user_id="alice")),
        pytest.raises(AccessDenied),
    ):
        await cancel_all("ACME")


async def test_an_explicit_user_id_wins_over_the_context() -> None:
    service = TradingService(rbac())
    with execution_context(ExecutionContext("x", user_id="bob")), pytest.raises(AccessDenied):
        await service.place_order("alice", "ACME")


async def test_no_user_anywhere_is_refused_before_the_body_runs() -> None:
    ran: list[str] = []

    @require_permission(ResourceType.ORDER, Action.CREATE, rbac=rbac())
    def sync_fn(symbol: str) -> None:
        ran.append(symbol)

    @require_permission(ResourceType.ORDER, Action.CREATE, rbac=rbac())
    async def async_fn(user_id: str | None, symbol: str) -> None:
        ran.append(symbol)

    with pytest.raises(PermissionDenied, match="no user is known"):
        sync_fn("A")
    with pytest.raises(PermissionDenied, match="ExecutionContext"):
        await async_fn(None, "B")
    assert ran == []


def test_functions_without_an_rbac_use_the_settings_policy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text("roles:\n  trader: {permissions: ['order:create']}\nusers: {bob: [trader]}\n")
    monkeypatch.setenv("SECURITY_RBAC_POLICY_PATH", str(path))
    default_rbac.cache_clear()
    try:

        @require_permission(ResourceType.ORDER, Action.CREATE)
        def place(user_id: str) -> str:
            return user_id

        assert place("bob") == "bob"
        with pytest.raises(AccessDenied):
            place("alice")
    finally:
        default_rbac.cache_clear()


def test_decorated_functions_keep_their_kind() -> None:
    service = TradingService(rbac())
    assert asyncio.iscoroutinefunction(TradingService.place_order)
    assert not asyncio.iscoroutinefunction(TradingService.place_order_sync)
    assert service.place_order.__name__ == "place_order"
