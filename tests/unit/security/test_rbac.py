"""RBAC: allow/deny matrix, inheritance, patterns, cache invalidation, both call forms."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from streaming.errors import ConfigError, PermissionDenied
from streaming.security import (
    AccessDenied,
    Action,
    InMemoryPolicySource,
    Permission,
    Policy,
    Principal,
    ResourceType,
    Role,
    RoleBasedAccessControl,
    YamlPolicySource,
    require_permission,
)

from .conftest import AuditRecorder

T, A = ResourceType, Action
ALL = {(t, a) for t in T for a in A}

POLICY = Policy.from_mapping(
    {
        "roles": {
            "viewer": {"permissions": ["order:*:read", "position:*:read"]},
            "trader": {"inherits": ["viewer"], "permissions": ["order:*:create,write"]},
            "risk": {
                "inherits": ["viewer"],
                "permissions": [{"resource": "position", "actions": ["write"]}],
            },
            "ops": {"permissions": ["topic:orders.*:read,write", "consumer_group:orders-*:read"]},
            "auditor": {"permissions": ["audit_log:read"]},
            "schema-admin": {"permissions": ["subject:*:admin"]},
            "admin": {
                "inherits": ["trader"],
                "permissions": [f"{t.value}:*:admin" for t in T],
            },
            "nobody": {},
        },
        "users": {"alice": ["viewer"], "bob": ["trader"], "carol": ["ops", "auditor"]},
    }
)

VIEWER = {(T.ORDER, A.READ), (T.POSITION, A.READ)}
EXPECTED: dict[str, set[tuple[ResourceType, Action]]] = {
    "viewer": VIEWER,
    "trader": VIEWER | {(T.ORDER, A.CREATE), (T.ORDER, A.WRITE)},
    "risk": VIEWER | {(T.POSITION, A.WRITE)},
    "ops": set(),  # only name patterns, never the whole type
    "auditor": {(T.AUDIT_LOG, A.READ)},
    "schema-admin": {(T.SUBJECT, a) for a in A},
    "admin": ALL,
    "nobody": set(),
}


@pytest.mark.parametrize("role", sorted(EXPECTED))
async def test_allow_deny_matrix(role: str) -> None:
    rbac = RoleBasedAccessControl(POLICY, audit=AuditRecorder())
    principal = Principal("u", frozenset({role}))
    allowed = {(t, a) for t, a in itertools.product(T, A) if await rbac.is_allowed(principal, t, a)}
    assert allowed == EXPECTED[role]


async def test_inheritance_is_transitive() -> None:
    rbac = RoleBasedAccessControl(POLICY)
    admin_perms = await rbac.permissions_for_roles({"admin"})
    assert Permission.parse("position:*:read") in admin_perms  # admin -> trader -> viewer
    assert POLICY.expand_roles({"admin"}) == {"admin", "trader", "viewer"}


async def test_patterns_match_names() -> None:
    rbac = RoleBasedAccessControl(POLICY)
    ops = Principal("svc", frozenset({"ops"}))
    assert await rbac.is_allowed(ops, T.TOPIC, A.WRITE, "orders.created")
    assert await rbac.is_allowed(ops, T.TOPIC, A.READ, "orders.eu.cancelled")
    assert await rbac.is_allowed(ops, T.CONSUMER_GROUP, A.READ, "orders-billing")
    assert not await rbac.is_allowed(ops, T.TOPIC, A.WRITE, "ordersx")
    assert not await rbac.is_allowed(ops, T.TOPIC, A.WRITE, "payments.created")
    assert not await rbac.is_allowed(ops, T.TOPIC, A.DELETE, "orders.created")
    assert not await rbac.is_allowed(ops, T.SUBJECT, A.READ, "orders.created")
    assert not await rbac.is_allowed(ops, T.TOPIC, A.READ)  # the whole type needs '*'


async def test_admin_implies_every_action_on_its_resources() -> None:
    rbac = RoleBasedAccessControl(POLICY)
    principal = Principal("u", frozenset({"schema-admin"}))
    for action in A:
        assert await rbac.is_allowed(principal, T.SUBJECT, action, "orders-value")


async def test_direct_permissions_on_a_principal_count() -> None:
    rbac = RoleBasedAccessControl(POLICY)
    principal = Principal("svc", permissions=frozenset({Permission.parse("topic:audit.*:write")}))
    assert await rbac.is_allowed(principal, T.TOPIC, A.WRITE, "audit.events")
    assert not await rbac.is_allowed(principal, T.TOPIC, A.READ, "audit.events")


async def test_require_permission_call_form_raises_and_audits() -> None:
    audit = AuditRecorder()
    rbac = RoleBasedAccessControl(POLICY, audit=audit)
    await rbac.require_permission("bob", ResourceType.ORDER, Action.CREATE)
    with pytest.raises(PermissionDenied) as info:
        await rbac.require_permission("alice", ResourceType.ORDER, Action.CREATE)
    assert isinstance(info.value, AccessDenied)
    assert (info.value.subject, info.value.action) == ("alice", "create")
    assert audit.types() == ["permission_denied"]
    assert audit.events[0].details == {
        "resource_type": "order",
        "resource": "*",
        "action": "create",
    }
    with pytest.raises(AccessDenied):
        await rbac.require_permission("mallory", ResourceType.ORDER, Action.READ)  # unassigned


async def test_require_permission_decorator_form() -> None:
    rbac = RoleBasedAccessControl(POLICY, audit=AuditRecorder())

    @rbac.require_permission(ResourceType.TOPIC, Action.WRITE, resource_arg="topic")
    async def publish(user_id: str, topic: str, payload: bytes = b"") -> str:
        return f"{user_id}->{topic}"

    assert await publish("carol", "orders.created") == "carol->orders.created"
    with pytest.raises(AccessDenied):
        await publish("carol", "payments.created")
    with pytest.raises(AccessDenied):
        await publish(user_id="alice", topic="orders.created")


async def test_method_decorator_finds_rbac_on_self() -> None:
    class TradingService:
        def __init__(self, rbac: RoleBasedAccessControl) -> None:
            self.rbac = rbac

        @require_permission(ResourceType.ORDER, Action.CREATE)
        async def place_order(self, user_id: str, symbol: str) -> str:
            return symbol

    service = TradingService(RoleBasedAccessControl(POLICY, audit=AuditRecorder()))
    assert await service.place_order("bob", "ACME") == "ACME"
    with pytest.raises(AccessDenied):
        await service.place_order("alice", "ACME")


def test_decorator_checks_a_named_resource_parameter_exists() -> None:
    rbac = RoleBasedAccessControl(POLICY)
    with pytest.raises(TypeError, match="topic"):

        @rbac.require_permission(ResourceType.TOPIC, Action.WRITE, resource_arg="topic")
        async def anonymous(symbol: str) -> None:
            return None


async def test_cache_serves_stale_roles_until_invalidated() -> None:
    now = [0.0]
    source = InMemoryPolicySource(POLICY)
    writer = RoleBasedAccessControl(source, cache_ttl_s=60, clock=lambda: now[0])
    reader = RoleBasedAccessControl(source, cache_ttl_s=60, clock=lambda: now[0])
    assert not await reader.has_permission("alice", T.ORDER, A.CREATE)

    await writer.assign_roles("alice", ["trader"])
    assert await writer.has_permission("alice", T.ORDER, A.CREATE)  # own change: immediate
    assert not await reader.has_permission("alice", T.ORDER, A.CREATE)  # cached elsewhere
    reader.invalidate()
    assert await reader.has_permission("alice", T.ORDER, A.CREATE)


async def test_cache_expires_after_ttl() -> None:
    now = [0.0]
    source = InMemoryPolicySource(POLICY)
    rbac = RoleBasedAccessControl(source, cache_ttl_s=30, clock=lambda: now[0])
    assert await rbac.has_permission("alice", T.ORDER, A.READ)
    source.policy = POLICY.with_role(Role("viewer"))  # viewer loses everything at the source
    now[0] = 29.0
    assert await rbac.has_permission("alice", T.ORDER, A.READ)
    now[0] = 30.0
    assert not await rbac.has_permission("alice", T.ORDER, A.READ)


async def test_define_role_changes_apply_immediately() -> None:
    rbac = RoleBasedAccessControl(POLICY)
    assert not await rbac.has_permission("alice", T.AUDIT_LOG, A.READ)
    await rbac.define_role(Role("viewer", frozenset({Permission.parse("audit_log:*:read")})))
    assert await rbac.has_permission("alice", T.AUDIT_LOG, A.READ)


async def test_policy_from_yaml_file_and_reload(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(
        "roles:\n"
        "  reader: {permissions: ['subject:*:read']}\n"
        "  writer: {inherits: [reader], permissions: ['subject:orders-*:write']}\n"
        "users:\n"
        "  ci: [writer]\n"
    )
    rbac = RoleBasedAccessControl(YamlPolicySource(path))
    assert await rbac.has_permission("ci", T.SUBJECT, A.READ, "payments-value")
    assert await rbac.has_permission("ci", T.SUBJECT, A.WRITE, "orders-value")
    assert not await rbac.has_permission("ci", T.SUBJECT, A.WRITE, "payments-value")
    path.write_text("roles:\n  reader: {}\nusers:\n  ci: [reader]\n")
    rbac.invalidate()
    assert not await rbac.has_permission("ci", T.SUBJECT, A.READ, "payments-value")
    with pytest.raises(TypeError, match="read-only"):
        await rbac.assign_roles("ci", ["reader"])


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"roles": {"a": {"inherits": ["ghost"]}}}, "unknown role 'ghost'"),
        ({"roles": {"a": {"inherits": ["b"]}, "b": {"inherits": ["a"]}}}, "inherits itself"),
        ({"roles": {"a": {}}, "users": {"u": ["b"]}}, "assigned unknown role 'b'"),
        ({"roles": {"a": {"permissions": ["planet:*:read"]}}}, "resource types are"),
        ({"roles": {"a": {"permissions": ["topic:*:fly"]}}}, "actions are"),
        ({"roles": {"a": {"permissions": ["topic"]}}}, "must look like"),
        ({"groups": {}}, "unknown top-level"),
    ],
)
def test_invalid_policies_are_config_errors(data: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Policy.from_mapping(data)


def test_permission_text_round_trip() -> None:
    perm = Permission.parse("Topic:orders.*:WRITE,read")
    assert str(perm) == "topic:orders.*:read,write"
    assert Permission.parse(str(perm)) == perm
    assert Permission.parse("order:create") == Permission(T.ORDER, "*", frozenset({A.CREATE}))
    # Subject names with a Confluent context contain colons.
    assert Permission.parse("subject::.ctx:orders-value:read").pattern == ":.ctx:orders-value"
