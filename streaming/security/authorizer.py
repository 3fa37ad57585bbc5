"""Optional authorization hook for producers and consumers.

A client given a :class:`TopicAuthorizer` checks before it sends or subscribes, so a
service principal fails with :class:`~streaming.errors.PermissionDenied` before any
byte reaches the broker (the broker's own ACLs remain the outer fence).
"""

from __future__ import annotations

from streaming.security.principal import Principal
from streaming.security.rbac import Action, ResourceType, RoleBasedAccessControl


class TopicAuthorizer:
    """``await authorizer.check(principal, "orders.created", Action.WRITE)``."""

    def __init__(self, rbac: RoleBasedAccessControl) -> None:
        self._rbac = rbac

    async def check(self, principal: Principal, topic: str, action: Action) -> None:
        """Raise PermissionDenied (AccessDenied) unless ``principal`` may ``action`` ``topic``."""
        await self._rbac.authorize(principal, ResourceType.TOPIC, action, topic)

    async def check_produce(self, principal: Principal, topic: str) -> None:
        await self.check(principal, topic, Action.WRITE)

    async def check_consume(
        self, principal: Principal, topics: list[str] | tuple[str, ...], group_id: str | None
    ) -> None:
        """READ on every topic, and READ on the consumer group when there is one."""
        for topic in topics:
            await self.check(principal, topic, Action.READ)
        if group_id is not None:
            await self._rbac.authorize(
                principal, ResourceType.CONSUMER_GROUP, Action.READ, group_id
            )

    def bind(self, principal: Principal) -> BoundTopicAuthorizer:
        """A checker fixed to one principal, for handing to a producer or consumer."""
        return BoundTopicAuthorizer(self, principal)


class BoundTopicAuthorizer:
    def __init__(self, authorizer: TopicAuthorizer, principal: Principal) -> None:
        self.principal = principal
        self._authorizer = authorizer

    async def check(self, topic: str, action: Action) -> None:
        await self._authorizer.check(self.principal, topic, action)


__all__ = ["BoundTopicAuthorizer", "TopicAuthorizer"]
