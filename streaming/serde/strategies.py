"""Subject-name strategies as plain functions ``(ctx, record_fullname) -> subject``."""

from __future__ import annotations

from collections.abc import Callable

from streaming.serde.context import SerializationContext
from streaming.serde.errors import SerializeError

SubjectNameStrategy = Callable[[SerializationContext, str | None], str]


def topic_name_strategy(ctx: SerializationContext, record_name: str | None) -> str:
    """``<topic>-key`` / ``<topic>-value`` (Confluent's default): one schema lineage per topic."""
    return f"{ctx.topic}-{ctx.field}"


def record_name_strategy(ctx: SerializationContext, record_name: str | None) -> str:
    """The record's fully-qualified name: one lineage per type, across topics."""
    if not record_name:
        raise SerializeError("record_name_strategy needs a named record schema", ctx=ctx)
    return record_name


def topic_record_name_strategy(ctx: SerializationContext, record_name: str | None) -> str:
    """``<topic>-<fullname>``: several types per topic, each with its own lineage."""
    if not record_name:
        raise SerializeError("topic_record_name_strategy needs a named record schema", ctx=ctx)
    return f"{ctx.topic}-{record_name}"


def reference_subject_name(fullname: str) -> str:
    """Subject under which a referenced named type is registered: its fullname."""
    return fullname


__all__ = [
    "SubjectNameStrategy",
    "record_name_strategy",
    "reference_subject_name",
    "topic_name_strategy",
    "topic_record_name_strategy",
]
