"""The registry's in-memory state: a pure fold over ``_schemas`` records.

Every instance rebuilds exactly this state by applying the topic from the beginning, so
two instances that have read the same offsets answer identically. Nothing here does
I/O; queries raise the Confluent-coded errors the HTTP layer returns.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from typing import Any

import structlog

from streaming.registry.errors import SchemaNotFound, SubjectNotFound, VersionNotFound
from streaming.registry.model import (
    DEFAULT_COMPATIBILITY,
    DEFAULT_MODE,
    CompatibilityLevel,
    Mode,
    Reference,
    SchemaBody,
    SchemaVersion,
)
from streaming.registry.records import (
    ConfigKey,
    DeleteSubject,
    DeleteSubjectKey,
    IdHighWater,
    ModeKey,
    NoopKey,
    RecordFormatError,
    SchemaKey,
    StoreRecord,
    decode,
)

log = structlog.get_logger(__name__)

Identity = tuple[str, str, tuple[Reference, ...]]
"""(schema type, canonical text, references): equal identities share one global id."""


def identity_of(body: SchemaBody) -> Identity:
    return (body.schema_type, body.schema, body.references)


class RegistryState:
    """Subjects, versions, global ids, configs and modes as of the last applied record."""

    def __init__(self) -> None:
        self._subjects: dict[str, dict[int, SchemaVersion]] = {}
        self._bodies: dict[int, SchemaBody] = {}
        self._users: dict[int, set[tuple[str, int]]] = {}
        self._ids: dict[Identity, int] = {}
        self._config: dict[str | None, CompatibilityLevel] = {}
        self._mode: dict[str | None, Mode] = {}
        self.max_id = 0
        self.skipped = 0
        self.generation = 0
        """Bumped by every applied record: answers cached for one generation stay true."""

    # ---- applying records -------------------------------------------------------------

    def apply_raw(self, key: bytes | None, value: bytes | None) -> None:
        """Apply one topic record; records we cannot parse are counted and skipped."""
        try:
            record = decode(key, value)
        except RecordFormatError as exc:
            self.skipped += 1
            log.warning("registry.record_skipped", reason=str(exc))
            return
        self.apply(record)

    def apply(self, record: StoreRecord) -> None:
        self.generation += 1
        key, value = record.key, record.value
        if isinstance(key, SchemaKey):
            if value is None:
                self._drop_version(key.subject, key.version)
            elif isinstance(value, SchemaVersion):
                self._put_version(replace(value, subject=key.subject, version=key.version))
        elif isinstance(key, ConfigKey):
            if isinstance(value, CompatibilityLevel):
                self._config[key.subject] = value
            else:
                self._config.pop(key.subject, None)
        elif isinstance(key, ModeKey):
            if isinstance(value, Mode):
                self._mode[key.subject] = value
            else:
                self._mode.pop(key.subject, None)
        elif isinstance(key, DeleteSubjectKey):
            if isinstance(value, DeleteSubject):
                versions = self._subjects.get(key.subject, {})
                for number, version in list(versions.items()):
                    if number <= value.version and not version.deleted:
                        versions[number] = replace(version, deleted=True)
        elif isinstance(key, NoopKey) and isinstance(value, IdHighWater):
            self.max_id = max(self.max_id, value.max_id)

    def _put_version(self, version: SchemaVersion) -> None:
        self._drop_version(version.subject, version.version)
        self._subjects.setdefault(version.subject, {})[version.version] = version
        body = version.body
        self._bodies.setdefault(version.schema_id, body)
        self._users.setdefault(version.schema_id, set()).add((version.subject, version.version))
        self._ids.setdefault(identity_of(body), version.schema_id)
        self.max_id = max(self.max_id, version.schema_id)

    def _drop_version(self, subject: str, number: int) -> None:
        versions = self._subjects.get(subject)
        if not versions or number not in versions:
            return
        old = versions.pop(number)
        if not versions:
            del self._subjects[subject]
        users = self._users.get(old.schema_id, set())
        users.discard((subject, number))
        if not users:
            self._users.pop(old.schema_id, None)
            body = self._bodies.pop(old.schema_id, None)
            if body is not None and self._ids.get(identity_of(body)) == old.schema_id:
                del self._ids[identity_of(body)]

    # ---- queries ----------------------------------------------------------------------

    def subjects(self, *, deleted: bool = False, prefix: str = "") -> list[str]:
        return sorted(
            s
            for s, versions in self._subjects.items()
            if s.startswith(prefix) and (deleted or any(not v.deleted for v in versions.values()))
        )

    def has_subject(self, subject: str, *, deleted: bool = False) -> bool:
        versions = self._subjects.get(subject, {})
        return any(deleted or not v.deleted for v in versions.values())

    def all_versions(self, subject: str) -> list[SchemaVersion]:
        """Every stored version (soft-deleted too), oldest first."""
        versions = self._subjects.get(subject, {})
        return [versions[n] for n in sorted(versions)]

    def versions(self, subject: str, *, deleted: bool = False) -> list[SchemaVersion]:
        """The subject's versions, oldest first; 40401 if it has none (live, unless deleted)."""
        found = [v for v in self.all_versions(subject) if deleted or not v.deleted]
        if not found:
            raise SubjectNotFound(subject)
        return found

    def live_versions(self, subject: str) -> list[SchemaVersion]:
        return [v for v in self.all_versions(subject) if not v.deleted]

    def version(self, subject: str, number: int | None, *, deleted: bool = False) -> SchemaVersion:
        """``number=None`` means latest; 40401 unknown subject, 40402 unknown version."""
        candidates = self.versions(subject, deleted=deleted)
        if number is None:
            return candidates[-1]
        for candidate in candidates:
            if candidate.version == number:
                return candidate
        raise VersionNotFound(subject, number)

    def body(self, schema_id: int) -> SchemaBody:
        body = self._bodies.get(schema_id)
        if body is None:
            raise SchemaNotFound(f"Schema {schema_id} not found")
        return body

    def usages(self, schema_id: int, *, deleted: bool = False) -> list[SchemaVersion]:
        """Subject versions that carry ``schema_id``, sorted by subject then version."""
        self.body(schema_id)
        found = [self._subjects[s][v] for s, v in sorted(self._users.get(schema_id, ()))]
        return [v for v in found if deleted or not v.deleted]

    def id_for(self, body: SchemaBody) -> int | None:
        return self._ids.get(identity_of(body))

    def referenced_by(self, subject: str, number: int) -> list[int]:
        """Ids of stored versions (soft-deleted too) whose references point at this version."""
        ids = {
            v.schema_id
            for versions in self._subjects.values()
            for v in versions.values()
            if any(r.subject == subject and r.version == number for r in v.references)
        }
        return sorted(ids)

    def next_id(self) -> int:
        return self.max_id + 1

    def next_version(self, subject: str) -> int:
        versions = self._subjects.get(subject)
        return max(versions) + 1 if versions else 1

    def is_empty(self) -> bool:
        return not self._subjects

    def config(self, subject: str | None) -> CompatibilityLevel | None:
        return self._config.get(subject)

    def effective_config(self, subject: str | None) -> CompatibilityLevel:
        if subject is not None and subject in self._config:
            return self._config[subject]
        return self._config.get(None, DEFAULT_COMPATIBILITY)

    def mode(self, subject: str | None) -> Mode | None:
        return self._mode.get(subject)

    def effective_mode(self, subject: str | None) -> Mode:
        if subject is not None and subject in self._mode:
            return self._mode[subject]
        return self._mode.get(None, DEFAULT_MODE)

    def all_ids(self) -> Iterable[int]:
        return sorted(self._bodies)

    def snapshot(self) -> dict[str, Any]:
        """Everything observable, as plain data (used to compare instances and restarts)."""
        return {
            "subjects": {
                s: [
                    (v.version, v.schema_id, v.deleted, v.schema, v.references)
                    for v in self.all_versions(s)
                ]
                for s in sorted(self._subjects)
            },
            "config": {str(k): v.value for k, v in self._config.items()},
            "mode": {str(k): v.value for k, v in self._mode.items()},
            "ids": sorted(self._bodies),
            "max_id": self.max_id,
        }


__all__ = ["Identity", "RegistryState", "identity_of"]
