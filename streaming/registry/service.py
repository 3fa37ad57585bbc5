"""Registry operations with Confluent semantics, independent of HTTP and of Kafka.

Reads answer from the store's state. Changes are planners (see
:mod:`streaming.registry.store`): decisions on a complete state that return the
``_schemas`` records to append. Every successful change is passed to the audit sink.
Parsing and compatibility checks run on a :class:`~streaming.registry.work.SchemaWorker`
(worker threads, time limit); references are looked up on the event loop first, so
worker threads never read the live state.

Why it is long (~540 lines; ``RegistryService`` ~400): it is Confluent's API surface
(subjects, versions, ids, config, mode, compatibility, deletes), one small method per
operation; the state, store, model and compatibility check live in their own modules.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

import avro.schema

from streaming.registry.audit import (
    AuditGate,
    AuditRecord,
    RegistryAuditHook,
    log_registry_change,
)
from streaming.registry.avro_schema import ParsedSchema, Resolver, normalized_text, parse_schema
from streaming.registry.errors import (
    IncompatibleSchema,
    OperationNotPermitted,
    ReferenceExists,
    RegistryError,
    SchemaNotFound,
    SubjectConfigNotFound,
    SubjectModeNotFound,
    SubjectNotFound,
    SubjectNotSoftDeleted,
    SubjectSoftDeleted,
    VersionNotFound,
    VersionNotSoftDeleted,
    VersionSoftDeleted,
)
from streaming.registry.model import (
    CompatibilityLevel,
    Mode,
    Reference,
    SchemaBody,
    SchemaRequest,
    SchemaVersion,
)
from streaming.registry.records import (
    ConfigKey,
    DeleteSubject,
    DeleteSubjectKey,
    IdHighWater,
    ModeKey,
    NoopKey,
    SchemaKey,
    StoreRecord,
)
from streaming.registry.state import RegistryState
from streaming.registry.store import Planner, SchemaStore
from streaming.registry.work import Deadline, SchemaWorker
from streaming.serde import compatibility
from streaming.serde.compatibility import relevant

T = TypeVar("T")

Version = int | None
"""A parsed version path segment; ``None`` is "latest"."""


class RegistryService:
    """The registry's behaviour over a :class:`SchemaStore`."""

    def __init__(
        self,
        store: SchemaStore,
        *,
        audit: RegistryAuditHook | AuditGate | None = None,
        worker: SchemaWorker | None = None,
    ) -> None:
        self.store = store
        self.audit = (
            audit if isinstance(audit, AuditGate) else AuditGate(audit or log_registry_change)
        )
        self._worker = worker or SchemaWorker()
        self._parsed: dict[tuple[int, str], avro.schema.Schema] = {}

    @property
    def state(self) -> RegistryState:
        return self.store.state

    # ---- parsing and checking (on worker threads) ----------------------------------------

    @staticmethod
    def _resolver(state: RegistryState, references: Sequence[Reference]) -> Resolver:
        """Resolve ``references`` (transitively) now, answering later from that snapshot."""
        found: dict[tuple[str, int], SchemaVersion | RegistryError] = {}
        pending = list(references)
        while pending:
            ref = pending.pop()
            key = (ref.subject, ref.version)
            if key in found:
                continue
            try:
                target = state.version(ref.subject, ref.version, deleted=True)
            except RegistryError as exc:
                found[key] = exc
                continue
            found[key] = target
            pending.extend(target.references)

        def resolve(ref: Reference) -> SchemaVersion:
            hit = found[(ref.subject, ref.version)]
            if isinstance(hit, RegistryError):
                raise hit
            return hit

        return resolve

    async def parse(self, request: SchemaRequest, *, normalize: bool = False) -> ParsedSchema:
        resolve = self._resolver(self.state, request.references)
        return await self._worker.run(
            lambda deadline: parse_schema(
                request.schema,
                request.references,
                resolve,
                schema_type=request.schema_type,
                normalize=normalize,
            )
        )

    def _stored_schema(self, version: SchemaVersion, resolve: Resolver) -> avro.schema.Schema:
        key = (version.schema_id, version.schema)
        cached = self._parsed.get(key)
        if cached is None:
            cached = parse_schema(
                version.schema, version.references, resolve, schema_type=version.schema_type
            ).schema
            self._parsed[key] = cached
        return cached

    async def _check(
        self,
        level: CompatibilityLevel,
        new: avro.schema.Schema,
        state: RegistryState,
        versions: Sequence[SchemaVersion],
    ) -> list[str]:
        """``compatibility.check`` of ``new`` against ``versions`` (oldest first)."""
        targets = [(v, self._resolver(state, v.references)) for v in relevant(level, versions)]
        if not targets:
            return []

        def work(deadline: Deadline) -> list[str]:
            prior = [
                compatibility.PriorSchema(v.version, self._stored_schema(v, resolve), v.schema)
                for v, resolve in targets
            ]
            deadline.check()
            return compatibility.check(level, new, prior, deadline)

        return await self._worker.run(work)

    # ---- reads --------------------------------------------------------------------------

    def schema_by_id(self, schema_id: int) -> SchemaBody:
        return self.state.body(schema_id)

    def subjects_for_id(self, schema_id: int, *, deleted: bool = False) -> list[str]:
        return sorted({v.subject for v in self.state.usages(schema_id, deleted=deleted)})

    def versions_for_id(self, schema_id: int, *, deleted: bool = False) -> list[dict[str, Any]]:
        return [
            {"subject": v.subject, "version": v.version}
            for v in self.state.usages(schema_id, deleted=deleted)
        ]

    def list_schemas(
        self, *, prefix: str = "", deleted: bool = False, latest_only: bool = False
    ) -> list[SchemaVersion]:
        out: list[SchemaVersion] = []
        for subject in self.state.subjects(deleted=deleted, prefix=prefix):
            versions = self.state.versions(subject, deleted=deleted)
            out.extend(versions[-1:] if latest_only else versions)
        return out

    def version(self, subject: str, version: Version, *, deleted: bool = False) -> SchemaVersion:
        return self.state.version(subject, version, deleted=deleted)

    def referenced_by(self, subject: str, version: Version) -> list[int]:
        found = self.state.version(subject, version, deleted=True)
        return self.state.referenced_by(subject, found.version)

    async def lookup(
        self,
        subject: str,
        request: SchemaRequest,
        *,
        normalize: bool = False,
        deleted: bool = False,
    ) -> SchemaVersion:
        """``POST /subjects/{s}``: the version holding this schema, 40401/40403 otherwise."""
        if not self.state.has_subject(subject, deleted=deleted):
            raise SubjectNotFound(subject)
        parsed = await self.parse(request, normalize=normalize)
        match = _find(self.state.versions(subject, deleted=deleted), request, parsed, normalize)
        if match is None:
            raise SchemaNotFound("Schema not found")
        return match

    def get_config(self, subject: str | None, *, default_to_global: bool = False) -> str:
        if subject is None:
            return self.state.effective_config(None).value
        level = self.state.config(subject)
        if level is None:
            if not default_to_global:
                raise SubjectConfigNotFound(subject)
            return self.state.effective_config(None).value
        return level.value

    def get_mode(self, subject: str | None, *, default_to_global: bool = False) -> str:
        if subject is None:
            return self.state.effective_mode(None).value
        mode = self.state.mode(subject)
        if mode is None:
            if not default_to_global:
                raise SubjectModeNotFound(subject)
            return self.state.effective_mode(None).value
        return mode.value

    async def check_compatibility(
        self, subject: str, version: Version | str, request: SchemaRequest
    ) -> list[str]:
        """Messages explaining incompatibility (empty: compatible).

        ``version="all"`` checks like a registration would (per level and transitivity);
        otherwise against that one version, in the level's direction(s).
        """
        state = self.state
        parsed = await self.parse(request)
        level = state.effective_config(subject)
        if version == "all":
            return await self._check(level, parsed.schema, state, state.live_versions(subject))
        if not state.has_subject(subject):
            if version is None:
                return []
            raise VersionNotFound(subject, str(version))
        assert not isinstance(version, str)
        target = state.version(subject, version)
        if level is CompatibilityLevel.NONE:
            return []
        single = CompatibilityLevel(level.value.removesuffix("_TRANSITIVE"))
        return await self._check(single, parsed.schema, state, [target])

    # ---- changes ------------------------------------------------------------------------

    async def _emit(
        self, action: str, actor: str | None, subject: str | None, before: Any, after: Any
    ) -> None:
        await self.audit.record(AuditRecord(action, actor, subject, before, after))

    async def _write(self, plan: Planner[T]) -> T:
        """``store.write(plan)``, refused (503, nothing written) while auditing is behind."""
        await self.audit.settle()

        async def audited(state: RegistryState) -> tuple[Sequence[StoreRecord], T]:
            records, result = await plan(state)
            if records:
                self.audit.check()
            return records, result

        return await self.store.write(audited)

    async def register(
        self,
        subject: str,
        request: SchemaRequest,
        *,
        normalize: bool = False,
        actor: str | None = None,
    ) -> int:
        """``POST /subjects/{s}/versions``: the (existing or new) global id."""
        _writable(self.state, subject, request)
        parsed = await self.parse(request, normalize=normalize)
        body = SchemaBody(parsed.canonical, request.references, request.schema_type)
        outcome: dict[str, Any] = {}

        async def plan(state: RegistryState) -> tuple[list[StoreRecord], int]:
            mode = _writable(state, subject, request)
            live = state.live_versions(subject)
            existing = _find(live, request, parsed, normalize)
            if (
                existing is not None
                and request.schema_id in (None, existing.schema_id)
                and request.version in (None, existing.version)
            ):
                return [], existing.schema_id
            if mode is not Mode.IMPORT:
                level = state.effective_config(subject)
                messages = await self._check(level, parsed.schema, state, live)
                if messages:
                    raise IncompatibleSchema(subject, messages)
            schema_id = _choose_id(state, body, request.schema_id)
            number = _choose_version(state, subject, request.version)
            version = SchemaVersion(
                subject, number, schema_id, body.schema, body.references, body.schema_type
            )
            outcome.update(
                before=live[-1].version if live else None,
                after={"id": schema_id, "version": number},
            )
            return [StoreRecord(SchemaKey(subject, number), version)], schema_id

        schema_id = await self._write(plan)
        # the next check against this version needs no second parse
        self._parsed.setdefault((schema_id, body.schema), parsed.schema)
        if outcome:
            await self._emit("schema.register", actor, subject, outcome["before"], outcome["after"])
        return schema_id

    async def delete_subject(
        self, subject: str, *, permanent: bool = False, actor: str | None = None
    ) -> list[int]:
        async def plan(state: RegistryState) -> tuple[list[StoreRecord], list[int]]:
            _not_readonly(state, subject)
            stored = state.all_versions(subject)
            if not stored:
                raise SubjectNotFound(subject)
            live = [v for v in stored if not v.deleted]
            _not_referenced(state, stored)
            if not permanent:
                if not live:
                    raise SubjectSoftDeleted(subject)
                value = DeleteSubject(subject, stored[-1].version)
                return [StoreRecord(DeleteSubjectKey(subject), value)], [v.version for v in live]
            if live:
                raise SubjectNotSoftDeleted(subject)
            records = [StoreRecord(SchemaKey(subject, v.version), None) for v in stored]
            records.append(StoreRecord(DeleteSubjectKey(subject), None))
            if state.config(subject) is not None:
                records.append(StoreRecord(ConfigKey(subject), None))
            if state.mode(subject) is not None:
                records.append(StoreRecord(ModeKey(subject), None))
            records.append(StoreRecord(NoopKey(high_water=True), IdHighWater(state.max_id)))
            return records, [v.version for v in stored]

        deleted = await self._write(plan)
        action = "subject.delete_permanent" if permanent else "subject.delete"
        after = None if permanent else {"versions": deleted, "soft_deleted": True}
        await self._emit(action, actor, subject, {"versions": deleted}, after)
        return deleted

    async def delete_version(
        self,
        subject: str,
        version: Version,
        *,
        permanent: bool = False,
        actor: str | None = None,
    ) -> int:
        async def plan(state: RegistryState) -> tuple[list[StoreRecord], int]:
            _not_readonly(state, subject)
            stored = state.all_versions(subject)
            if not stored:
                raise SubjectNotFound(subject)
            if version is None:
                candidates = stored if permanent else [v for v in stored if not v.deleted]
                if not candidates:
                    raise VersionNotFound(subject, "latest")
                target = candidates[-1]
            else:
                found = [v for v in stored if v.version == version]
                if not found:
                    raise VersionNotFound(subject, version)
                target = found[0]
            if permanent and not target.deleted:
                raise VersionNotSoftDeleted(subject, target.version)
            if not permanent and target.deleted:
                raise VersionSoftDeleted(subject, target.version)
            _not_referenced(state, [target])
            key = SchemaKey(subject, target.version)
            if permanent:
                return [
                    StoreRecord(key, None),
                    StoreRecord(NoopKey(high_water=True), IdHighWater(state.max_id)),
                ], target.version
            deleted = SchemaVersion(
                subject,
                target.version,
                target.schema_id,
                target.schema,
                target.references,
                target.schema_type,
                deleted=True,
            )
            return [StoreRecord(key, deleted)], target.version

        number = await self._write(plan)
        action = "schema.delete_permanent" if permanent else "schema.delete"
        after = None if permanent else {"version": number, "soft_deleted": True}
        await self._emit(action, actor, subject, {"version": number}, after)
        return number

    async def set_config(
        self, subject: str | None, level: CompatibilityLevel, *, actor: str | None = None
    ) -> CompatibilityLevel:
        async def plan(state: RegistryState) -> tuple[list[StoreRecord], str | None]:
            before = state.config(subject)
            return [StoreRecord(ConfigKey(subject), level)], before.value if before else None

        before = await self._write(plan)
        await self._emit("config.update", actor, subject, before, level.value)
        return level

    async def delete_config(self, subject: str | None, *, actor: str | None = None) -> str:
        """Remove the subject (or global) level; return the level that was in effect."""

        async def plan(state: RegistryState) -> tuple[list[StoreRecord], str]:
            if subject is None:
                before = state.effective_config(None).value
                return [StoreRecord(ConfigKey(None), None)], before
            level = state.config(subject)
            if level is None:
                if not state.has_subject(subject, deleted=True):
                    raise SubjectNotFound(subject)
                raise SubjectConfigNotFound(subject)
            return [StoreRecord(ConfigKey(subject), None)], level.value

        before = await self._write(plan)
        await self._emit("config.delete", actor, subject, before, None)
        return before

    async def set_mode(
        self, subject: str | None, mode: Mode, *, force: bool = False, actor: str | None = None
    ) -> Mode:
        async def plan(state: RegistryState) -> tuple[list[StoreRecord], str | None]:
            if mode is Mode.IMPORT and not force:
                occupied = (
                    not state.is_empty()
                    if subject is None
                    else state.has_subject(subject, deleted=True)
                )
                if occupied and state.effective_mode(subject) is not Mode.IMPORT:
                    raise OperationNotPermitted(
                        "Cannot import since found existing subjects; use force=true to "
                        "switch to IMPORT mode anyway"
                    )
            before = state.mode(subject)
            return [StoreRecord(ModeKey(subject), mode)], before.value if before else None

        before = await self._write(plan)
        await self._emit("mode.update", actor, subject, before, mode.value)
        return mode

    async def delete_mode(self, subject: str, *, actor: str | None = None) -> str:
        async def plan(state: RegistryState) -> tuple[list[StoreRecord], str]:
            mode = state.mode(subject)
            if mode is None:
                raise SubjectModeNotFound(subject)
            return [StoreRecord(ModeKey(subject), None)], mode.value

        before = await self._write(plan)
        await self._emit("mode.delete", actor, subject, before, None)
        return before


# ---- planning helpers (pure) --------------------------------------------------------------


def _same(version: SchemaVersion, request: SchemaRequest, parsed: ParsedSchema, norm: bool) -> bool:
    if version.schema_type != request.schema_type or version.references != request.references:
        return False
    if norm:
        return normalized_text(version.schema) == parsed.normalized
    return version.schema == parsed.canonical


def _find(
    versions: Sequence[SchemaVersion], request: SchemaRequest, parsed: ParsedSchema, norm: bool
) -> SchemaVersion | None:
    for version in reversed(versions):
        if _same(version, request, parsed, norm):
            return version
    return None


def _not_readonly(state: RegistryState, subject: str) -> Mode:
    mode = state.effective_mode(subject)
    if mode is Mode.READONLY:
        raise OperationNotPermitted(f"Subject {subject} is in read-only mode")
    return mode


def _writable(state: RegistryState, subject: str, request: SchemaRequest) -> Mode:
    mode = _not_readonly(state, subject)
    if request.schema_id is not None and mode is not Mode.IMPORT:
        raise OperationNotPermitted(
            f"Subject {subject} is not in import mode; a schema id can only be given in IMPORT mode"
        )
    return mode


def _choose_id(state: RegistryState, body: SchemaBody, wanted: int | None) -> int:
    if wanted is None:
        existing = state.id_for(body)
        return existing if existing is not None else state.next_id()
    try:
        current = state.body(wanted)
    except SchemaNotFound:
        return wanted
    if current != body:
        raise OperationNotPermitted(
            f"Overwrite new schema with id {wanted} is not permitted: the id holds another schema"
        )
    return wanted


def _choose_version(state: RegistryState, subject: str, wanted: int | None) -> int:
    if wanted is None:
        return state.next_version(subject)
    if any(v.version == wanted for v in state.all_versions(subject)):
        raise OperationNotPermitted(f"Version {wanted} already exists in subject {subject}")
    return wanted


def _not_referenced(state: RegistryState, versions: Sequence[SchemaVersion]) -> None:
    for version in versions:
        users = state.referenced_by(version.subject, version.version)
        if users:
            raise ReferenceExists(
                f"One or more references exist to the schema {{magic=1,keytype=SCHEMA,"
                f"subject={version.subject},version={version.version}}} (ids {users})"
            )


__all__ = ["RegistryService", "Version"]
