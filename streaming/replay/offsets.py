"""Offsets snapshots and resets of a consumer group (the I/O around :mod:`.plan`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime

import structlog

from streaming.core.clock import now_ms
from streaming.errors import GroupNotEmptyError
from streaming.replay.audit import AuditHook, ReplayAuditEvent, current_actor, log_replay_action
from streaming.replay.errors import GroupActiveError, ReplayError, ResetPlanError
from streaming.replay.plan import (
    PartitionOffsets,
    ResetPlan,
    ResetStrategy,
    plan_reset,
    select,
)
from streaming.replay.reading import iter_range
from streaming.replay.snapshots import OffsetSnapshot, SnapshotPartition, SnapshotStore
from streaming.transport.base import (
    AdminTransport,
    ConsumerTransport,
    TopicPartition,
    TransportFactory,
)

log = structlog.get_logger(__name__)
Selectors = Mapping[str, frozenset[int] | None]


class OffsetManager:
    """Snapshot, plan and apply consumer-group offsets."""

    def __init__(
        self,
        transport: TransportFactory,
        *,
        store: SnapshotStore | None = None,
        audit: AuditHook = log_replay_action,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.transport = transport
        self.store = store or SnapshotStore(transport)
        self._audit = audit
        self._clock = clock

    async def _with_clients(self) -> tuple[AdminTransport, ConsumerTransport]:
        admin = self.transport.admin()
        consumer = self.transport.consumer(group_id=None)
        await admin.start()
        await consumer.start()
        return admin, consumer

    # -- snapshots
    async def snapshot(
        self, group: str, name: str, *, topics: Sequence[str] | None = None, force: bool = False
    ) -> OffsetSnapshot:
        """Store the group's committed offsets (with log ends and timestamps) as ``name``.

        An existing snapshot of that name is refused (:class:`SnapshotExistsError`) unless
        ``force``: a restore point is not replaced by accident.
        """
        if not force:
            await self.store.refuse_existing(group, name)
        admin, consumer = await self._with_clients()
        try:
            committed = await admin.group_offsets(group)
            wanted = set(topics) if topics else {tp.topic for tp in committed}
            if not wanted or not committed:
                raise ReplayError(
                    f"group {group!r} has no committed offsets"
                    + (f" on {', '.join(sorted(wanted))}" if topics else "")
                    + "; nothing to snapshot"
                )
            # Every partition of the group's topics: one the group never committed on is
            # recorded at its log start (where auto.offset.reset=earliest would begin), so
            # a restore also rewinds partitions first read after the snapshot.
            tps = []
            for topic in sorted(wanted):
                tps += [
                    TopicPartition(topic, p) for p in sorted(await consumer.partitions_for(topic))
                ]
            begin = await consumer.beginning_offsets(tps)
            end = await consumer.end_offsets(tps)
            positions = {tp: committed.get(tp, begin[tp]) for tp in tps}
            stamps = await _timestamps_at(consumer, {tp: (positions[tp], end[tp]) for tp in tps})
        finally:
            await consumer.stop()
            await admin.stop()
        snapshot = OffsetSnapshot(
            group=group,
            name=name,
            created_at_ms=now_ms(),
            created_by=current_actor(),
            partitions=tuple(
                SnapshotPartition(
                    tp.topic,
                    tp.partition,
                    positions[tp],
                    end[tp],
                    stamps.get(tp),
                    was_committed=tp in committed,
                )
                for tp in tps
            ),
        )
        await self.store.save_snapshot(snapshot)
        log.info("offsets snapshot saved", group=group, name=name, partitions=len(tps))
        return snapshot

    # -- resets
    async def plan(
        self, group: str, strategy: ResetStrategy, *, topics: Selectors | None = None
    ) -> ResetPlan:
        """What a reset would do; changes nothing."""
        admin, consumer = await self._with_clients()
        try:
            current = await admin.group_offsets(group)
            if strategy.explicit:
                tps = select(strategy.offsets, topics or {})
                strategy = ResetStrategy(
                    strategy.kind,
                    source=strategy.source,
                    offsets={tp: strategy.offsets[tp] for tp in tps},
                )
            else:
                wanted = dict(topics) if topics else {tp.topic: None for tp in current}
                if not wanted:
                    raise ResetPlanError(
                        f"group {group!r} has no committed offsets; name the topics with --topic"
                    )
                every = []
                for topic in wanted:
                    every += [
                        TopicPartition(topic, p) for p in await consumer.partitions_for(topic)
                    ]
                tps = select(every, wanted)
            if not tps:
                raise ResetPlanError("no partitions match the given --topic selectors")
            begin = await consumer.beginning_offsets(tps)
            end = await consumer.end_offsets(tps)
            at = strategy.lookup_time_ms(self._clock())
            times = (
                await consumer.offsets_for_times(dict.fromkeys(tps, at)) if at is not None else {}
            )
        finally:
            await consumer.stop()
            await admin.stop()
        state = {tp: PartitionOffsets(begin[tp], end[tp], current.get(tp)) for tp in tps}
        return plan_reset(group, strategy, state, time_offsets=times)

    async def execute(self, plan: ResetPlan) -> ResetPlan:
        """Commit the plan's targets; refuses while the group has active members."""
        admin = self.transport.admin()
        await admin.start()
        try:
            info = await admin.describe_group(plan.group)
            if info.members:
                raise GroupActiveError(plan.group, info.members)
            try:
                await admin.alter_group_offsets(plan.group, plan.offsets)
            except GroupNotEmptyError as exc:  # a consumer joined since the check
                raise GroupActiveError(plan.group, 1) from exc
        finally:
            await admin.stop()
        await self._audit(
            ReplayAuditEvent(
                event_type="OFFSET_RESET",
                action="offsets.reset",
                actor=current_actor(),
                resource_type="consumer-group",
                resource_id=plan.group,
                details={
                    "strategy": plan.strategy,
                    "partitions": str(len(plan.partitions)),
                    "re_read": str(plan.total_re_read),
                },
            )
        )
        log.info("offsets reset", group=plan.group, strategy=plan.strategy)
        return plan

    async def restore_snapshot(
        self, group: str, name: str, *, dry_run: bool = False, topics: Selectors | None = None
    ) -> ResetPlan:
        """Reset ``group`` to the offsets of its snapshot ``name``."""
        snap = await self.store.get_snapshot(group, name)
        plan = await self.plan(
            group, ResetStrategy.from_snapshot(name, snap.offsets), topics=topics
        )
        return plan if dry_run else await self.execute(plan)


async def _timestamps_at(
    consumer: ConsumerTransport, ranges: Mapping[TopicPartition, tuple[int, int]]
) -> dict[TopicPartition, int]:
    """Timestamp of the record at each start offset (none at the log end or in a gap)."""
    wanted = {tp: (start, start + 1) for tp, (start, end) in ranges.items() if end > start}
    stamps: dict[TopicPartition, int] = {}
    async for batch in iter_range(consumer, wanted):
        for tp, records in batch.items():
            stamps[tp] = records[0].timestamp_ms
    return stamps


__all__ = ["OffsetManager"]
