"""Which fields of an event type are personal data, and whose: read once per class.

The contract says it (``"pii": true`` on string fields, ``"x-pii-subject"`` on the
record, see :mod:`streaming.serde.catalog`); this turns it into a per-class plan so the
producer's and consumer's hot paths pay one dictionary lookup for events with no
marked fields.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from streaming.events.base import Event


@dataclass(frozen=True, slots=True)
class PiiPlan:
    """The marked paths (dotted, e.g. ``actor.username``) and the subject's path."""

    paths: tuple[tuple[str, tuple[str, ...]], ...]
    subject_path: tuple[str, ...]

    def subject_of(self, event: Event) -> str:
        """Whose data ``event`` holds; an event naming nobody is its own subject."""
        value = get_path(event, self.subject_path)
        return str(value) if value is not None else f"event:{event.metadata.event_id}"


_PLANS: dict[type[Event], PiiPlan | None] = {}


def plan_for(cls: type[Event]) -> PiiPlan | None:
    """The class's plan, ``None`` when its contract marks no field (cached)."""
    try:
        return _PLANS[cls]
    except KeyError:
        pass
    schema = cls.avro_schema()
    plan = None
    if schema.pii_fields and schema.pii_subject is not None:
        plan = PiiPlan(
            tuple((p, tuple(p.split("."))) for p in schema.pii_fields),
            tuple(schema.pii_subject.split(".")),
        )
    _PLANS[cls] = plan
    return plan


def get_path(model: BaseModel, parts: tuple[str, ...]) -> Any:
    node: Any = model
    for part in parts:
        if node is None:
            return None
        node = getattr(node, part, None)
    return node


def replace_paths(model: Any, updates: dict[tuple[str, ...], str]) -> Any:
    """A copy of ``model`` with each path set to its new value (frozen models, no
    re-validation: the values are text already checked to fit)."""
    nested: dict[str, dict[tuple[str, ...], str]] = {}
    direct: dict[str, Any] = {}
    for parts, value in updates.items():
        if len(parts) == 1:
            direct[parts[0]] = value
        else:
            nested.setdefault(parts[0], {})[parts[1:]] = value
    for name, inner in nested.items():
        child = getattr(model, name)
        if child is not None:
            direct[name] = replace_paths(child, inner)
    return model.model_copy(update=direct)


__all__ = ["PiiPlan", "get_path", "plan_for", "replace_paths"]
