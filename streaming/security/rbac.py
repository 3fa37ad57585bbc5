"""Role-based access control: roles grant actions on resource-name patterns.

A :class:`Permission` reads ``<resource type>:<name pattern>:<action>[,<action>...]``,
e.g. ``topic:orders.*:read,write``; the short seed form ``order:create`` means every
name (``*``). Patterns are shell-style (:func:`fnmatch.fnmatchcase`), so ``orders.*``
matches ``orders.eu.created``. ``ADMIN`` on a resource implies every other action on it.
A check without a resource name asks about the whole type, so only a ``*`` grant passes.

Policies come from a :class:`PolicySource` (YAML file or in memory; a database source
only needs ``load()``). The evaluated policy is cached for ``cache_ttl_s`` so other
instances' role changes arrive within that time; :meth:`RoleBasedAccessControl.invalidate`
drops the cache at once, and role changes made through this object do so themselves.
"""

from __future__ import annotations

import asyncio
import enum
import time
from collections.abc import Callable, Coroutine, Iterable, Mapping
from dataclasses import dataclass, field, replace
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any, ParamSpec, Protocol, TypeVar, overload, runtime_checkable

import yaml

from streaming.errors import ConfigError
from streaming.security.errors import AccessDenied
from streaming.security.events import (
    AuditCallback,
    SecurityEvent,
    SecurityEventType,
    log_security_event,
)
from streaming.security.principal import Principal

P = ParamSpec("P")
R = TypeVar("R")

ANY_RESOURCE = "*"


class ResourceType(enum.StrEnum):
    TOPIC = "topic"
    SUBJECT = "subject"
    CONSUMER_GROUP = "consumer_group"
    AUDIT_LOG = "audit_log"
    ORDER = "order"
    POSITION = "position"
    USER = "user"


class Action(enum.StrEnum):
    READ = "read"
    WRITE = "write"
    CREATE = "create"
    DELETE = "delete"
    ADMIN = "admin"


@dataclass(frozen=True, slots=True)
class Permission:
    """``actions`` on every ``resource_type`` resource whose name matches ``pattern``."""

    resource_type: ResourceType
    pattern: str
    actions: frozenset[Action]

    @classmethod
    def parse(cls, spec: str) -> Permission:
        """Parse ``type:pattern:actions`` or ``type:actions``; ValueError says what is wrong."""
        head, sep, tail = spec.partition(":")
        pattern, _, actions_text = tail.rpartition(":") if sep else ("", "", "")
        if not sep or not actions_text:
            raise ValueError(
                f"permission {spec!r} must look like 'topic:orders.*:read,write' or 'order:create'"
            )
        try:
            resource_type = ResourceType(head.strip().lower())
            actions = frozenset(Action(a.strip().lower()) for a in actions_text.split(","))
        except ValueError as exc:
            raise ValueError(
                f"permission {spec!r}: resource types are "
                f"{', '.join(t.value for t in ResourceType)}; actions are "
                f"{', '.join(a.value for a in Action)}"
            ) from exc
        return cls(resource_type, pattern.strip() or ANY_RESOURCE, actions)

    def allows(self, resource_type: ResourceType, resource: str, action: Action) -> bool:
        return (
            resource_type is self.resource_type
            and (action in self.actions or Action.ADMIN in self.actions)
            and fnmatchcase(resource, self.pattern)
        )

    def __str__(self) -> str:
        actions = ",".join(sorted(a.value for a in self.actions))
        return f"{self.resource_type.value}:{self.pattern}:{actions}"


@dataclass(frozen=True, slots=True)
class Role:
    name: str
    permissions: frozenset[Permission] = frozenset()
    inherits: tuple[str, ...] = ()


@dataclass(frozen=True)
class Policy:
    """Role definitions plus user -> role assignments; validated on construction."""

    roles: Mapping[str, Role] = field(default_factory=dict)
    assignments: Mapping[str, frozenset[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        problems = [
            f"role {role.name!r} inherits unknown role {parent!r}"
            for role in self.roles.values()
            for parent in role.inherits
            if parent not in self.roles
        ]
        problems += [
            f"user {user!r} is assigned unknown role {name!r}"
            for user, names in self.assignments.items()
            for name in sorted(names)
            if name not in self.roles
        ]
        problems += [f"role {name!r} inherits itself" for name in self._cycles()]
        if problems:
            raise ConfigError(problems, title="invalid RBAC policy")

    def _cycles(self) -> list[str]:
        cyclic: list[str] = []
        for start in self.roles:
            stack, seen = list(self.roles[start].inherits), set[str]()
            while stack:
                name = stack.pop()
                if name == start:
                    cyclic.append(start)
                    break
                if name in seen or name not in self.roles:
                    continue
                seen.add(name)
                stack.extend(self.roles[name].inherits)
        return cyclic

    def expand_roles(self, names: Iterable[str]) -> frozenset[str]:
        """The named roles plus everything they inherit; unknown names are ignored."""
        result: set[str] = set()
        stack = [n for n in names if n in self.roles]
        while stack:
            name = stack.pop()
            if name not in result:
                result.add(name)
                stack.extend(self.roles[name].inherits)
        return frozenset(result)

    def permissions_for_roles(self, names: Iterable[str]) -> frozenset[Permission]:
        return frozenset(
            perm for role in self.expand_roles(names) for perm in self.roles[role].permissions
        )

    def roles_of(self, user_id: str) -> frozenset[str]:
        return self.assignments.get(user_id, frozenset())

    def with_role(self, role: Role) -> Policy:
        return replace(self, roles={**self.roles, role.name: role})

    def with_assignment(self, user_id: str, roles: Iterable[str]) -> Policy:
        return replace(self, assignments={**self.assignments, user_id: frozenset(roles)})

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> Policy:
        """Build from ``{"roles": {name: {"inherits": [...], "permissions": [...]}}, "users": {...}}``."""
        unknown = set(data) - {"roles", "users"}
        if unknown:
            raise ConfigError([f"unknown top-level key(s) {sorted(unknown)}; use roles, users"])
        roles: dict[str, Role] = {}
        problems: list[str] = []
        for name, body in (data.get("roles") or {}).items():
            body = body or {}
            perms: set[Permission] = set()
            for entry in body.get("permissions") or []:
                try:
                    perms.add(_permission_from_yaml(entry))
                except ValueError as exc:
                    problems.append(f"role {name!r}: {exc}")
            roles[str(name)] = Role(
                str(name), frozenset(perms), tuple(str(p) for p in body.get("inherits") or [])
            )
        if problems:
            raise ConfigError(problems, title="invalid RBAC policy")
        users = {
            str(user): frozenset(str(r) for r in (names or []))
            for user, names in (data.get("users") or {}).items()
        }
        return cls(roles, users)

    @classmethod
    def from_yaml(cls, path: str | Path) -> Policy:
        try:
            data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError([f"cannot read RBAC policy {path}: {exc}"]) from exc
        if not isinstance(data, Mapping):
            raise ConfigError([f"RBAC policy {path} must be a mapping with 'roles' and 'users'"])
        return cls.from_mapping(data)


def _permission_from_yaml(entry: Any) -> Permission:
    if isinstance(entry, str):
        return Permission.parse(entry)
    if isinstance(entry, Mapping):
        actions = entry.get("actions") or []
        actions_text = ",".join(actions) if isinstance(actions, list) else str(actions)
        return Permission.parse(
            f"{entry.get('resource', '')}:{entry.get('pattern', ANY_RESOURCE)}:{actions_text}"
        )
    raise ValueError(f"permission entry {entry!r} must be a string or a mapping")


@runtime_checkable
class PolicySource(Protocol):
    """Where the policy lives (memory, a YAML file, a database table)."""

    async def load(self) -> Policy: ...


class InMemoryPolicySource:
    """A mutable holder; several :class:`RoleBasedAccessControl` objects may share one."""

    def __init__(self, policy: Policy | None = None) -> None:
        self.policy = policy or Policy()

    async def load(self) -> Policy:
        return self.policy

    async def save(self, policy: Policy) -> None:
        self.policy = policy


class YamlPolicySource:
    """Reads the policy file on every (cache-missing) load, so edits apply after the TTL."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    async def load(self) -> Policy:
        return await asyncio.to_thread(Policy.from_yaml, self.path)


class _Decorator(Protocol):
    def __call__(self, func: Callable[P, R], /) -> Callable[P, R]: ...


def _source_from_settings() -> PolicySource:
    """``SECURITY_RBAC_POLICY_PATH`` when set, else an empty (deny-all) in-memory policy."""
    from streaming.config import SecuritySettings, read_settings

    path = read_settings(SecuritySettings).rbac_policy_path
    return YamlPolicySource(path) if path is not None else InMemoryPolicySource()


class RoleBasedAccessControl:
    """Answers "may this user/principal do that?", with a TTL-cached policy.

    ``RoleBasedAccessControl()`` (the seed's form) reads ``SECURITY_RBAC_POLICY_PATH``;
    without it the policy starts empty and roles are added with :meth:`define_role`.
    """

    def __init__(
        self,
        source: PolicySource | Policy | None = None,
        *,
        cache_ttl_s: float = 60.0,
        audit: AuditCallback = log_security_event,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if source is None:
            source = _source_from_settings()
        elif isinstance(source, Policy):
            source = InMemoryPolicySource(source)
        self._source = source
        self._ttl_s = cache_ttl_s
        self._audit = audit
        self._clock = clock
        self._lock = asyncio.Lock()
        self._policy: Policy | None = None
        self._loaded_at = 0.0
        self._by_roles: dict[frozenset[str], frozenset[Permission]] = {}

    def invalidate(self) -> None:
        """Forget the cached policy; the next check reloads it from the source."""
        self._policy = None
        self._by_roles = {}

    async def policy(self) -> Policy:
        current = self._policy
        if current is not None and self._clock() - self._loaded_at < self._ttl_s:
            return current
        async with self._lock:
            if self._policy is None or self._clock() - self._loaded_at >= self._ttl_s:
                self._policy = await self._source.load()
                self._loaded_at = self._clock()
                self._by_roles = {}
            return self._policy

    async def _save(self, policy: Policy) -> None:
        save = getattr(self._source, "save", None)
        if save is None:
            raise TypeError(f"{type(self._source).__name__} is read-only; edit it at the source")
        await save(policy)
        self.invalidate()

    async def define_role(self, role: Role) -> None:
        await self._save((await self._source.load()).with_role(role))

    async def assign_roles(self, user_id: str, roles: Iterable[str]) -> None:
        await self._save((await self._source.load()).with_assignment(user_id, roles))

    async def permissions_for_roles(self, roles: Iterable[str]) -> frozenset[Permission]:
        policy = await self.policy()
        key = frozenset(roles)
        cached = self._by_roles.get(key)
        if cached is None:
            cached = self._by_roles[key] = policy.permissions_for_roles(key)
        return cached

    async def is_allowed(
        self,
        principal: Principal,
        resource_type: ResourceType,
        action: Action,
        resource: str | None = None,
    ) -> bool:
        name = ANY_RESOURCE if resource is None else resource
        grants = await self.permissions_for_roles(principal.roles)
        return any(p.allows(resource_type, name, action) for p in (*grants, *principal.permissions))

    async def authorize(
        self,
        principal: Principal,
        resource_type: ResourceType,
        action: Action,
        resource: str | None = None,
    ) -> None:
        """Raise :class:`AccessDenied` (and emit PERMISSION_DENIED) unless allowed."""
        if await self.is_allowed(principal, resource_type, action, resource):
            return
        name = ANY_RESOURCE if resource is None else resource
        await self._audit(
            SecurityEvent(
                SecurityEventType.PERMISSION_DENIED,
                principal.subject,
                {"resource_type": resource_type.value, "resource": name, "action": action.value},
            )
        )
        raise AccessDenied(principal.subject, resource_type.value, name, action.value)

    async def principal_for(self, user_id: str) -> Principal:
        """The principal of a user whose roles come from the policy's assignments."""
        return Principal(user_id, (await self.policy()).roles_of(user_id))

    async def has_permission(
        self,
        user_id: str,
        resource_type: ResourceType,
        action: Action,
        resource: str | None = None,
    ) -> bool:
        return await self.is_allowed(
            await self.principal_for(user_id), resource_type, action, resource
        )

    async def _require(
        self, user_id: str, resource_type: ResourceType, action: Action, resource: str | None
    ) -> None:
        await self.authorize(await self.principal_for(user_id), resource_type, action, resource)

    @overload
    def require_permission(
        self,
        user_id: str,
        resource_type: ResourceType,
        action: Action,
        /,
        resource: str | None = None,
    ) -> Coroutine[Any, Any, None]: ...

    @overload
    def require_permission(
        self,
        resource_type: ResourceType,
        action: Action,
        /,
        *,
        user_arg: str = "user_id",
        resource_arg: str | None = None,
    ) -> _Decorator: ...

    def require_permission(
        self,
        first: str | ResourceType,
        second: ResourceType | Action,
        third: Action | None = None,
        /,
        resource: str | None = None,
        *,
        user_arg: str = "user_id",
        resource_arg: str | None = None,
    ) -> Coroutine[Any, Any, None] | _Decorator:
        """``await rbac.require_permission(user, type, action[, name])`` raises AccessDenied;
        ``@rbac.require_permission(type, action)`` guards a function (sync or async) as
        :func:`streaming.security.guard.require_permission` does, with this checker."""
        if isinstance(first, ResourceType) and isinstance(second, Action):
            from streaming.security.guard import guard  # guard builds on this class

            return guard(lambda _args: self, first, second, user_arg, resource_arg)
        if isinstance(second, ResourceType) and isinstance(third, Action):
            return self._require(first, second, third, resource)
        raise TypeError(
            "use require_permission(user_id, ResourceType.X, Action.Y) "
            "or require_permission(ResourceType.X, Action.Y)"
        )


__all__ = [
    "ANY_RESOURCE",
    "Action",
    "InMemoryPolicySource",
    "Permission",
    "Policy",
    "PolicySource",
    "ResourceType",
    "Role",
    "RoleBasedAccessControl",
    "YamlPolicySource",
]
