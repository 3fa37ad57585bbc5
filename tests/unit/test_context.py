"""Execution and audit contexts are task-local and restored after use."""

from __future__ import annotations

import asyncio

from streaming.context import (
    AuditContext,
    ExecutionContext,
    audit_context,
    current_audit_context,
    current_correlation_id,
    execution_context,
)
from streaming.decorators import with_execution_context


def test_request_context_reuses_callers_correlation_id() -> None:
    ctx = ExecutionContext.create_for_request(operation="op", headers={"X-Correlation-ID": "abc"})
    assert ctx.correlation_id == "abc"
    assert ExecutionContext.create_for_request(operation="op").correlation_id != "abc"


def test_context_is_restored_after_block() -> None:
    assert current_correlation_id() is None
    with execution_context(ExecutionContext.create_for_system("job")) as ctx:
        assert current_correlation_id() == ctx.correlation_id
    assert current_correlation_id() is None


async def test_concurrent_tasks_do_not_share_context() -> None:
    seen: dict[str, str | None] = {}

    async def work(name: str) -> None:
        with execution_context(ExecutionContext.create_for_system(name)) as ctx:
            await asyncio.sleep(0)  # poll: yield to the other task while bound
            seen[name] = current_correlation_id()
            assert seen[name] == ctx.correlation_id

    await asyncio.gather(work("a"), work("b"))
    assert seen["a"] != seen["b"]


async def test_decorator_keeps_parent_correlation() -> None:
    @with_execution_context("child-op")
    async def child() -> str | None:
        return current_correlation_id()

    parent = ExecutionContext.create_for_system("parent")
    with execution_context(parent):
        assert await child() == parent.correlation_id


def test_audit_context_binding() -> None:
    with audit_context(AuditContext("order", "place", reason="user request")):
        current = current_audit_context()
        assert current is not None
        assert current.action == "place"
    assert current_audit_context() is None
