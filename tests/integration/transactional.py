"""An independent transactional writer (confluent-kafka, not our transport): interleaved
aborted and committed transactions, so a reader that shows aborted records is caught."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from confluent_kafka import Producer

from streaming.transport.base import OutgoingRecord


def write_aborted_and_committed(
    bootstrap: str, committed: Sequence[OutgoingRecord], aborted: Sequence[OutgoingRecord]
) -> None:
    """One transaction per record: ``aborted[i]`` (aborted), then ``committed[i]``
    (committed), in that order, so the last record of the log is a committed one."""
    assert len(committed) == len(aborted)
    producer = Producer(
        {"bootstrap.servers": bootstrap, "transactional.id": f"independent-{uuid.uuid4().hex}"}
    )
    producer.init_transactions(30)
    for bad, good in zip(aborted, committed, strict=True):
        for record, commit in ((bad, False), (good, True)):
            producer.begin_transaction()
            producer.produce(
                record.topic,
                value=record.value,
                key=record.key,
                headers=list(record.headers),
                partition=record.partition if record.partition is not None else -1,
            )
            if commit:
                producer.commit_transaction(30)
            else:
                producer.flush(30)  # the record is in the log before the abort marker
                producer.abort_transaction(30)
