"""Async Confluent Schema Registry client over httpx, with the caches serde needs.

Caching: schema by id forever (ids are immutable), register/lookup results forever,
``latest`` per subject for ``latest_cache_ttl_s``. Single flight: concurrent callers
asking for the same id, registration or lookup share one request. Retries: 408, 429, 5xx and network
errors only, bounded by ``max_retries``, with jittered exponential backoff (Retry-After
honoured up to the cap). Every failure surfaces as a typed :class:`RegistryError`.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any, Generic, Literal, Protocol, TypeVar
from urllib.parse import quote

import httpx
import structlog

from streaming.config import RegistrySettings
from streaming.core.backoff import Backoff
from streaming.core.lifecycle import AsyncService
from streaming.serde import compatibility
from streaming.serde.errors import (
    RegistryError,
    RegistryUnavailableError,
    registry_error,
)
from streaming.serde.schema import CompatibilityResult, RegisteredSchema, Schema, SchemaReference

log = structlog.get_logger(__name__)

CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"
ACCEPT = "application/vnd.schemaregistry.v1+json, application/vnd.schemaregistry+json; qs=0.9, application/json; qs=0.5"
COMPATIBILITY_LEVELS = compatibility.LEVELS
Version = int | Literal["latest"]
K = TypeVar("K")
V = TypeVar("V")


class SchemaRegistry(Protocol):
    """What serde needs from a schema registry; HTTP and in-memory clients implement it."""

    async def register_schema(
        self, subject: str, schema: Schema, *, normalize: bool = False
    ) -> int:
        """Register (or find) ``schema`` under ``subject``; return its global id."""
        ...

    async def lookup_schema(
        self, subject: str, schema: Schema, *, normalize: bool = False
    ) -> RegisteredSchema:
        """The id and version of ``schema`` already registered under ``subject``."""
        ...

    async def get_schema(self, schema_id: int) -> Schema:
        """The schema with global id ``schema_id``."""
        ...

    async def get_version(self, subject: str, version: Version) -> RegisteredSchema:
        """One version of a subject (``"latest"`` allowed)."""
        ...

    async def get_latest_version(self, subject: str) -> RegisteredSchema:
        """The newest live version of a subject."""
        ...

    async def get_versions(self, subject: str) -> list[int]:
        """Live version numbers of a subject."""
        ...

    async def get_subjects(self) -> list[str]:
        """Live subjects."""
        ...

    async def test_compatibility(
        self, subject: str, schema: Schema, version: Version = "latest"
    ) -> CompatibilityResult:
        """Whether ``schema`` may be registered under ``subject`` (per its config)."""
        ...

    async def get_compatibility(self, subject: str | None = None) -> str:
        """The compatibility level of ``subject`` (falling back to global), or the global one."""
        ...

    async def set_compatibility(self, level: str, subject: str | None = None) -> str:
        """Set the compatibility level of ``subject``, or the global one."""
        ...

    async def delete_subject(self, subject: str, *, permanent: bool = False) -> list[int]:
        """Soft-delete a subject (then hard-delete when ``permanent``); return its versions."""
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...


def _retriable_status(status: int) -> bool:
    return status in (408, 429) or status >= 500


def _retry_after_s(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def _path(*segments: str | int) -> str:
    return "/" + "/".join(quote(str(s), safe="") for s in segments)


def _schema_body(schema: Schema) -> dict[str, Any]:
    body: dict[str, Any] = {"schema": schema.schema_str}
    if schema.schema_type != "AVRO":
        body["schemaType"] = schema.schema_type
    if schema.references:
        body["references"] = [
            {"name": r.name, "subject": r.subject, "version": r.version} for r in schema.references
        ]
    return body


def _schema_from(body: dict[str, Any]) -> Schema:
    return Schema(
        schema_str=body["schema"],
        schema_type=body.get("schemaType") or "AVRO",
        references=tuple(
            SchemaReference(r["name"], r["subject"], int(r["version"]))
            for r in body.get("references") or ()
        ),
    )


class SingleFlight(Generic[K, V]):
    """One call per key at a time: callers arriving while it runs await the same result."""

    def __init__(self) -> None:
        self._pending: dict[K, asyncio.Future[V]] = {}

    async def run(self, key: K, call: Callable[[], Awaitable[V]]) -> V:
        pending = self._pending.get(key)
        if pending is None:
            pending = asyncio.ensure_future(call())
            self._pending[key] = pending
            pending.add_done_callback(lambda _: self._pending.pop(key, None))
        # shielded: one cancelled caller must not cancel the request the others await
        return await asyncio.shield(pending)


class SchemaRegistryClient(AsyncService):
    """HTTP client for a Confluent-compatible registry (``REGISTRY_URL``)."""

    def __init__(
        self,
        settings: RegistrySettings | None = None,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        backoff_base_s: float = 0.1,
        backoff_cap_s: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self._settings = settings if settings is not None else RegistrySettings()
        headers = {"Accept": ACCEPT, "Content-Type": CONTENT_TYPE}
        auth: httpx.Auth | None = None
        if self._settings.basic_auth_user_info is not None:
            user, _, password = self._settings.basic_auth_user_info.get_secret_value().partition(
                ":"
            )
            auth = httpx.BasicAuth(user, password)
        if self._settings.bearer_token is not None:
            headers["Authorization"] = f"Bearer {self._settings.bearer_token.get_secret_value()}"
        self._http = httpx.AsyncClient(
            base_url=self._settings.url,
            headers=headers,
            auth=auth,
            timeout=self._settings.timeout_s,
            transport=transport,
        )
        self._backoff = Backoff(initial_s=backoff_base_s, max_s=backoff_cap_s)
        self._clock = clock
        self._sleep = sleep
        self._rng = rng if rng is not None else random.Random()
        self._by_id: dict[int, Schema] = {}
        self._fetching: SingleFlight[int, Schema] = SingleFlight()
        self._registering: SingleFlight[tuple[str, Schema, bool], int] = SingleFlight()
        self._looking_up: SingleFlight[tuple[str, Schema, bool], RegisteredSchema] = SingleFlight()
        self._registered: dict[tuple[str, Schema, bool], int] = {}
        self._lookups: dict[tuple[str, Schema, bool], RegisteredSchema] = {}
        self._versions: dict[tuple[str, int], RegisteredSchema] = {}
        self._latest: dict[str, tuple[float, RegisteredSchema]] = {}

    @property
    def url(self) -> str:
        return self._settings.url

    async def start(self) -> None:
        """Nothing to open: connections are made on first use (``async with`` works)."""

    async def stop(self) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _request(
        self,
        method: str,
        path: str,
        *,
        body: dict[str, Any] | None = None,
        params: dict[str, str] | None = None,
    ) -> Any:
        attempts = self._settings.max_retries + 1
        for attempt in range(attempts):
            last = attempt == attempts - 1
            retry_after: float | None = None
            try:
                response = await self._http.request(method, path, json=body, params=params)
            except httpx.TransportError as exc:
                if last:
                    raise RegistryUnavailableError(
                        f"{method} {self.url}{path} failed after {attempts} attempt(s): {exc!r}; "
                        "is the registry running and REGISTRY_URL right?"
                    ) from exc
                reason = repr(exc)
            except httpx.HTTPError as exc:
                raise RegistryError(f"{method} {self.url}{path} failed: {exc!r}") from exc
            else:
                if response.status_code < 400:
                    try:
                        return response.json()
                    except ValueError as exc:
                        raise RegistryError(
                            f"{method} {path}: response is not JSON", status=response.status_code
                        ) from exc
                error = self._error_from(method, path, response)
                if last or not _retriable_status(response.status_code):
                    raise error
                retry_after = _retry_after_s(response)
                reason = str(error)
            delay = self._backoff.delay_s(attempt + 1, self._rng)
            if retry_after is not None:
                delay = max(delay, min(retry_after, self._backoff.max_s))
            log.warning(
                "registry.retry",
                method=method,
                path=path,
                attempt=attempt + 1,
                delay_s=delay,
                reason=reason,
            )
            await self._sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    @staticmethod
    def _error_from(method: str, path: str, response: httpx.Response) -> RegistryError:
        error_code: int | None = None
        message = response.text[:500]
        try:
            payload = response.json()
        except ValueError:
            payload = None
        if isinstance(payload, dict):
            raw_code = payload.get("error_code")
            error_code = raw_code if isinstance(raw_code, int) else None
            message = str(payload.get("message", message))
        return registry_error(response.status_code, error_code, f"{method} {path}: {message}")

    async def register_schema(
        self, subject: str, schema: Schema, *, normalize: bool = False
    ) -> int:
        key = (subject, schema, normalize)
        if key in self._registered:
            return self._registered[key]
        return await self._registering.run(key, lambda: self._register(key))

    async def _register(self, key: tuple[str, Schema, bool]) -> int:
        subject, schema, normalize = key
        params = {"normalize": "true"} if normalize else None
        reply = await self._request(
            "POST", _path("subjects", subject, "versions"), body=_schema_body(schema), params=params
        )
        schema_id = int(reply["id"])
        self._registered[key] = schema_id
        self._by_id.setdefault(schema_id, schema)
        log.info("registry.registered", subject=subject, schema_id=schema_id)
        return schema_id

    async def lookup_schema(
        self, subject: str, schema: Schema, *, normalize: bool = False
    ) -> RegisteredSchema:
        key = (subject, schema, normalize)
        if key in self._lookups:
            return self._lookups[key]
        return await self._looking_up.run(key, lambda: self._lookup(key))

    async def _lookup(self, key: tuple[str, Schema, bool]) -> RegisteredSchema:
        subject, schema, normalize = key
        params = {"normalize": "true"} if normalize else None
        reply = await self._request(
            "POST", _path("subjects", subject), body=_schema_body(schema), params=params
        )
        found = RegisteredSchema(
            schema_id=int(reply["id"]),
            subject=reply.get("subject", subject),
            version=int(reply["version"]),
            schema=_schema_from(reply) if "schema" in reply else schema,
        )
        self._lookups[key] = found
        return found

    async def get_schema(self, schema_id: int) -> Schema:
        cached = self._by_id.get(schema_id)
        if cached is not None:
            return cached
        return await self._fetching.run(schema_id, lambda: self._fetch_schema(schema_id))

    async def _fetch_schema(self, schema_id: int) -> Schema:
        schema = _schema_from(await self._request("GET", _path("schemas", "ids", schema_id)))
        self._by_id[schema_id] = schema
        return schema

    async def get_version(self, subject: str, version: Version) -> RegisteredSchema:
        if isinstance(version, int) and (subject, version) in self._versions:
            return self._versions[(subject, version)]
        reply = await self._request("GET", _path("subjects", subject, "versions", version))
        found = RegisteredSchema(
            schema_id=int(reply["id"]),
            subject=reply.get("subject", subject),
            version=int(reply["version"]),
            schema=_schema_from(reply),
        )
        self._versions[(subject, found.version)] = found
        self._by_id.setdefault(found.schema_id, found.schema)
        return found

    async def get_latest_version(self, subject: str) -> RegisteredSchema:
        now = self._clock()
        cached = self._latest.get(subject)
        if cached is not None and cached[0] > now:
            return cached[1]
        found = await self.get_version(subject, "latest")
        self._latest[subject] = (now + self._settings.latest_cache_ttl_s, found)
        return found

    async def get_versions(self, subject: str) -> list[int]:
        return [int(v) for v in await self._request("GET", _path("subjects", subject, "versions"))]

    async def get_subjects(self) -> list[str]:
        return [str(s) for s in await self._request("GET", _path("subjects"))]

    async def test_compatibility(
        self, subject: str, schema: Schema, version: Version = "latest"
    ) -> CompatibilityResult:
        reply = await self._request(
            "POST",
            _path("compatibility", "subjects", subject, "versions", version),
            body=_schema_body(schema),
            params={"verbose": "true"},
        )
        return CompatibilityResult(
            is_compatible=bool(reply["is_compatible"]),
            messages=tuple(str(m) for m in reply.get("messages") or ()),
        )

    async def get_compatibility(self, subject: str | None = None) -> str:
        if subject is None:
            reply = await self._request("GET", _path("config"))
        else:
            reply = await self._request(
                "GET", _path("config", subject), params={"defaultToGlobal": "true"}
            )
        return str(reply["compatibilityLevel"])

    async def set_compatibility(self, level: str, subject: str | None = None) -> str:
        if level not in COMPATIBILITY_LEVELS:
            raise ValueError(
                f"compatibility level must be one of {', '.join(COMPATIBILITY_LEVELS)}"
            )
        path = _path("config") if subject is None else _path("config", subject)
        reply = await self._request("PUT", path, body={"compatibility": level})
        return str(reply["compatibility"])

    async def delete_subject(self, subject: str, *, permanent: bool = False) -> list[int]:
        try:
            reply = await self._request("DELETE", _path("subjects", subject))
        except RegistryError as exc:
            if not (permanent and exc.error_code == 40404):  # 40404: already soft-deleted
                raise
        if permanent:
            reply = await self._request(
                "DELETE", _path("subjects", subject), params={"permanent": "true"}
            )
        self._forget(subject)
        return [int(v) for v in reply]

    def _forget(self, subject: str) -> None:
        self._latest.pop(subject, None)
        for key in [k for k in self._registered if k[0] == subject]:
            del self._registered[key]
        for key in [k for k in self._lookups if k[0] == subject]:
            del self._lookups[key]
        for vkey in [k for k in self._versions if k[0] == subject]:
            del self._versions[vkey]


__all__ = [
    "COMPATIBILITY_LEVELS",
    "SchemaRegistry",
    "SchemaRegistryClient",
    "Version",
]
