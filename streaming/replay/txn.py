"""One transactional batch: send and commit, or abort; fencing becomes a typed error."""

from __future__ import annotations

from collections.abc import Sequence

import structlog

from streaming.errors import TransactionError, TransportError
from streaming.replay.errors import ConcurrentRunFencedError
from streaming.telemetry import count_messages, global_instruments
from streaming.transport.base import OutgoingRecord, ProducerTransport

log = structlog.get_logger(__name__)


async def commit_batch(
    producer: ProducerTransport, records: Sequence[OutgoingRecord], *, who: str
) -> None:
    """Write ``records`` atomically. ``who`` names the run for the fencing message."""
    sent = global_instruments().sent
    try:
        await producer.begin_transaction()
        await producer.send_many(records)
        await producer.commit_transaction()
    except TransactionError as exc:
        count_messages(sent, (r.topic for r in records), operation="send", error=exc)
        raise ConcurrentRunFencedError(
            f"{who}: {exc}; another run with the same transactional id took over, "
            "so this one stopped without writing its last batch"
        ) from exc
    except BaseException as exc:
        count_messages(sent, (r.topic for r in records), operation="send", error=exc)
        try:
            await producer.abort_transaction()
        except TransportError:
            log.warning("abort after a failed batch failed; the next run fences it", who=who)
        raise
    count_messages(sent, (r.topic for r in records), operation="send")


__all__ = ["commit_batch"]
