"""TopicAuthorizer: a client-side check that fails before anything is sent."""

from __future__ import annotations

import pytest

from streaming.errors import PermissionDenied
from streaming.security import Action, Policy, Principal, RoleBasedAccessControl, TopicAuthorizer

from .conftest import AuditRecorder

POLICY = Policy.from_mapping(
    {
        "roles": {
            "order-service": {"permissions": ["topic:orders.*:write", "topic:payments.*:read"]},
            "billing": {"permissions": ["topic:orders.*:read", "consumer_group:billing-*:read"]},
        }
    }
)


@pytest.fixture
def authorizer(audit: AuditRecorder) -> TopicAuthorizer:
    return TopicAuthorizer(RoleBasedAccessControl(POLICY, audit=audit))


async def test_produce_allowed_only_to_permitted_topics(
    authorizer: TopicAuthorizer, audit: AuditRecorder
) -> None:
    service = Principal("order-service", frozenset({"order-service"}))
    await authorizer.check(service, "orders.created", Action.WRITE)
    await authorizer.check_produce(service, "orders.cancelled")
    with pytest.raises(PermissionDenied, match=r"payments\.settled"):
        await authorizer.check_produce(service, "payments.settled")
    assert audit.types() == ["permission_denied"]
    assert audit.events[0].details["resource"] == "payments.settled"


async def test_consume_needs_topic_and_group(authorizer: TopicAuthorizer) -> None:
    billing = Principal("billing", frozenset({"billing"}))
    await authorizer.check_consume(billing, ["orders.created"], "billing-main")
    with pytest.raises(PermissionDenied):
        await authorizer.check_consume(billing, ["orders.created"], "risk-main")
    with pytest.raises(PermissionDenied):
        await authorizer.check_consume(billing, ["orders.created", "payments.settled"], None)


async def test_bound_authorizer(authorizer: TopicAuthorizer) -> None:
    bound = authorizer.bind(Principal("billing", frozenset({"billing"})))
    await bound.check("orders.created", Action.READ)
    with pytest.raises(PermissionDenied):
        await bound.check("orders.created", Action.WRITE)
