"""The HTTP face of the registry: Confluent Schema Registry's REST API on Starlette.

Every API request goes through :meth:`_Api.guard`: body size limit (413), content type
(415), readiness (503 while ``_schemas`` is still being read), the optional auth hooks,
then the subject name (422/42208 for ``.``, ``..`` and control characters). A body that
stops arriving is answered 408 after ``body_timeout_s`` and the connection closed; a 405
names every method the path allows in ``Allow``. Errors become Confluent's ``{"error_code", "message"}`` bodies; an unexpected
exception is logged and answered with 500/50001, never a stack trace.

Why it is long (~515 lines): one Starlette route per Confluent REST endpoint; each is a
few lines of request parsing around :class:`~streaming.registry.service.RegistryService`.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import structlog
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from streaming.errors import SecurityError
from streaming.registry import requests as parse
from streaming.registry.avro_schema import raw_json
from streaming.registry.errors import (
    BodyTimeout,
    RegistryError,
    RequestError,
    SubjectNotFound,
    http_status,
)
from streaming.registry.model import SUPPORTED_TYPES
from streaming.registry.openapi import openapi_document
from streaming.registry.request_count import CountRequests, RequestCount
from streaming.registry.service import RegistryService
from streaming.security.http import http_error

log = structlog.get_logger(__name__)

MEDIA_TYPE = "application/vnd.schemaregistry.v1+json"
ACCEPTED_BODY_TYPES = (
    "application/vnd.schemaregistry.v1+json",
    "application/vnd.schemaregistry+json",
    "application/json",
    "application/octet-stream",
)
MAX_BODY_BYTES = 1024 * 1024
BODY_TIMEOUT_S = 15.0

Authenticator = Callable[[Mapping[str, str]], Awaitable[Any]]
"""Request headers (lower-case names) -> principal; raises AuthenticationError."""

Authorizer = Callable[[Any, str | None, str], Awaitable[None]]
"""(principal, subject or None for global, action in read/write/admin); raises PermissionDenied."""

READ, WRITE, ADMIN = "read", "write", "admin"


class SchemaResponse(JSONResponse):
    media_type = MEDIA_TYPE


def _error(status: int, body: dict[str, Any], headers: Mapping[str, str] | None = None) -> Response:
    return SchemaResponse(body, status_code=status, headers=dict(headers or {}))


def registry_error_response(exc: RegistryError) -> Response:
    return _error(http_status(exc), exc.body(), exc.headers)


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is calling (``None`` without an authenticator) and the name put in audit records."""

    principal: Any
    name: str | None


Handler = Callable[[Request, Caller], Awaitable[Any]]


def _principal_name(principal: Any) -> str | None:
    if principal is None:
        return None
    name = getattr(principal, "subject", None) or getattr(principal, "name", None)
    return str(name if name is not None else principal)


def _page(items: list[Any], request: Request) -> list[Any]:
    def number(name: str, default: int) -> int:
        raw = request.query_params.get(name, "")
        return int(raw) if raw.lstrip("-").isdigit() and len(raw) < 12 else default

    offset, limit = max(number("offset", 0), 0), number("limit", -1)
    items = items[offset:]
    return items if limit < 0 else items[:limit]


class _Api:
    def __init__(
        self,
        service: RegistryService,
        *,
        authenticator: Authenticator | None,
        authorizer: Authorizer | None,
        max_body_bytes: int,
        body_timeout_s: float,
        ready_wait_s: float,
        cluster_id: str,
    ) -> None:
        self.service = service
        self.authenticator = authenticator
        self.authorizer = authorizer
        self.max_body_bytes = max_body_bytes
        self.body_timeout_s = body_timeout_s
        self.ready_wait_s = ready_wait_s
        self.cluster_id = cluster_id

    async def body(self, request: Request) -> bytes:
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_body_bytes:
            raise RequestError(413, f"Request body exceeds {self.max_body_bytes} bytes")
        chunks: list[bytes] = []
        size = 0
        try:
            async with asyncio.timeout(self.body_timeout_s):
                async for chunk in request.stream():
                    size += len(chunk)
                    if size > self.max_body_bytes:
                        raise RequestError(413, f"Request body exceeds {self.max_body_bytes} bytes")
                    chunks.append(chunk)
        except TimeoutError as exc:
            raise BodyTimeout(self.body_timeout_s) from exc
        return b"".join(chunks)

    def endpoint(
        self, action: str, handler: Handler, *, subject_param: str | None = "subject"
    ) -> Callable[[Request], Awaitable[Response]]:
        async def run(request: Request) -> Response:
            try:
                caller = await self.guard(request, action, subject_param)
                result = await handler(request, caller)
            except RegistryError as exc:
                return registry_error_response(exc)
            except SecurityError as exc:
                error = http_error(exc)
                return _error(error.status_code, error.body, error.headers)
            except Exception:
                log.exception("registry.unhandled_error", path=request.url.path)
                return _error(500, {"error_code": 50001, "message": "Error in the backend"})
            if isinstance(result, Response):
                return result
            return SchemaResponse(result)

        return run

    async def guard(self, request: Request, action: str, subject_param: str | None) -> Caller:
        if request.method in ("POST", "PUT"):
            content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
            if content_type and content_type not in ACCEPTED_BODY_TYPES and content_type != "*/*":
                raise RequestError(415, f"HTTP 415 Unsupported Media Type: {content_type}")
            declared = request.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > self.max_body_bytes:
                raise RequestError(413, f"Request body exceeds {self.max_body_bytes} bytes")
        await self.service.store.wait_ready(self.ready_wait_s)
        caller = Caller(None, None)
        if self.authenticator is not None:
            headers = {k.lower(): v for k, v in request.headers.items()}
            principal = await self.authenticator(headers)
            if self.authorizer is not None:
                subject = request.path_params.get(subject_param) if subject_param else None
                await self.authorizer(principal, subject, action)
            caller = Caller(principal, _principal_name(principal))
        if "subject" in request.path_params:
            parse.parse_subject(request.path_params["subject"])
        return caller

    # ---- schemas --------------------------------------------------------------------------

    async def root(self, request: Request, caller: Caller) -> Any:
        return {}

    async def schema_types(self, request: Request, caller: Caller) -> Any:
        return list(SUPPORTED_TYPES)

    async def schemas(self, request: Request, caller: Caller) -> Any:
        found = self.service.list_schemas(
            prefix=request.query_params.get("subjectPrefix", ""),
            deleted=parse.flag(request.query_params.get("deleted")),
            latest_only=parse.flag(request.query_params.get("latestOnly")),
        )
        return _page([v.to_json() for v in found], request)

    async def schema_by_id(self, request: Request, caller: Caller) -> Any:
        schema_id = parse.parse_schema_id(request.path_params["id"])
        return self.service.schema_by_id(schema_id).to_json()

    async def schema_text_by_id(self, request: Request, caller: Caller) -> Any:
        schema_id = parse.parse_schema_id(request.path_params["id"])
        return raw_json(self.service.schema_by_id(schema_id).schema)

    async def subjects_by_id(self, request: Request, caller: Caller) -> Any:
        schema_id = parse.parse_schema_id(request.path_params["id"])
        deleted = parse.flag(request.query_params.get("deleted"))
        return _page(self.service.subjects_for_id(schema_id, deleted=deleted), request)

    async def versions_by_id(self, request: Request, caller: Caller) -> Any:
        schema_id = parse.parse_schema_id(request.path_params["id"])
        deleted = parse.flag(request.query_params.get("deleted"))
        return _page(self.service.versions_for_id(schema_id, deleted=deleted), request)

    # ---- subjects -------------------------------------------------------------------------

    async def subjects(self, request: Request, caller: Caller) -> Any:
        found = self.service.state.subjects(
            deleted=parse.flag(request.query_params.get("deleted")),
            prefix=request.query_params.get("subjectPrefix", ""),
        )
        return _page(found, request)

    async def list_versions(self, request: Request, caller: Caller) -> Any:
        subject = request.path_params["subject"]
        deleted = parse.flag(request.query_params.get("deleted"))
        versions = self.service.state.versions(subject, deleted=deleted)
        return _page([v.version for v in versions], request)

    async def register(self, request: Request, caller: Caller) -> Any:
        body = parse.schema_request(await self.body(request))
        schema_id = await self.service.register(
            request.path_params["subject"],
            body,
            normalize=parse.flag(request.query_params.get("normalize")),
            actor=caller.name,
        )
        return {"id": schema_id}

    async def lookup(self, request: Request, caller: Caller) -> Any:
        body = parse.schema_request(await self.body(request))
        found = await self.service.lookup(
            request.path_params["subject"],
            body,
            normalize=parse.flag(request.query_params.get("normalize")),
            deleted=parse.flag(request.query_params.get("deleted")),
        )
        return found.to_json()

    async def delete_subject(self, request: Request, caller: Caller) -> Any:
        return await self.service.delete_subject(
            request.path_params["subject"],
            permanent=parse.flag(request.query_params.get("permanent")),
            actor=caller.name,
        )

    async def get_version(self, request: Request, caller: Caller) -> Any:
        version = parse.parse_version(request.path_params["version"])
        deleted = parse.flag(request.query_params.get("deleted"))
        return self.service.version(
            request.path_params["subject"], version, deleted=deleted
        ).to_json()

    async def get_version_schema(self, request: Request, caller: Caller) -> Any:
        version = parse.parse_version(request.path_params["version"])
        deleted = parse.flag(request.query_params.get("deleted"))
        found = self.service.version(request.path_params["subject"], version, deleted=deleted)
        return raw_json(found.schema)

    async def referenced_by(self, request: Request, caller: Caller) -> Any:
        version = parse.parse_version(request.path_params["version"])
        return _page(self.service.referenced_by(request.path_params["subject"], version), request)

    async def delete_version(self, request: Request, caller: Caller) -> Any:
        version = parse.parse_version(request.path_params["version"])
        return await self.service.delete_version(
            request.path_params["subject"],
            version,
            permanent=parse.flag(request.query_params.get("permanent")),
            actor=caller.name,
        )

    # ---- compatibility --------------------------------------------------------------------

    async def compatibility(self, request: Request, caller: Caller) -> Any:
        raw = request.path_params.get("version")
        version: int | str | None = "all" if raw is None else parse.parse_version(raw)
        body = parse.schema_request(await self.body(request))
        messages = await self.service.check_compatibility(
            request.path_params["subject"], version, body
        )
        answer: dict[str, Any] = {"is_compatible": not messages}
        if parse.flag(request.query_params.get("verbose")):
            answer["messages"] = messages
        return answer

    # ---- config and mode ------------------------------------------------------------------

    async def get_config(self, request: Request, caller: Caller) -> Any:
        level = self.service.get_config(
            request.path_params.get("subject"),
            default_to_global=parse.flag(request.query_params.get("defaultToGlobal")),
        )
        return {"compatibilityLevel": level}

    async def put_config(self, request: Request, caller: Caller) -> Any:
        level = parse.compatibility_request(await self.body(request))
        subject = request.path_params.get("subject")
        await self.service.set_config(subject, level, actor=caller.name)
        return {"compatibility": level.value}

    async def delete_config(self, request: Request, caller: Caller) -> Any:
        before = await self.service.delete_config(
            request.path_params.get("subject"), actor=caller.name
        )
        return {"compatibilityLevel": before}

    async def get_mode(self, request: Request, caller: Caller) -> Any:
        mode = self.service.get_mode(
            request.path_params.get("subject"),
            default_to_global=parse.flag(request.query_params.get("defaultToGlobal")),
        )
        return {"mode": mode}

    async def put_mode(self, request: Request, caller: Caller) -> Any:
        mode = parse.mode_request(await self.body(request))
        await self.service.set_mode(
            request.path_params.get("subject"),
            mode,
            force=parse.flag(request.query_params.get("force")),
            actor=caller.name,
        )
        return {"mode": mode.value}

    async def delete_mode(self, request: Request, caller: Caller) -> Any:
        before = await self.service.delete_mode(request.path_params["subject"], actor=caller.name)
        return {"mode": before}

    # ---- misc -----------------------------------------------------------------------------

    async def contexts(self, request: Request, caller: Caller) -> Any:
        return ["."]

    async def metadata_id(self, request: Request, caller: Caller) -> Any:
        return {
            "scope": {
                "path": [],
                "clusters": {
                    "kafka-cluster": self.cluster_id,
                    "schema-registry-cluster": "schema-registry",
                },
            }
        }

    async def metadata_version(self, request: Request, caller: Caller) -> Any:
        try:
            version = importlib.metadata.version("tradesense-streaming")
        except importlib.metadata.PackageNotFoundError:
            version = "0+unknown"
        return {"version": version, "commitId": ""}

    async def associations(self, request: Request, caller: Caller) -> Any:
        # confluent-kafka >= 2.14 asks first; "not found" makes it use TopicNameStrategy.
        raise SubjectNotFound(request.path_params.get("rest", ""))


def create_app(
    service: RegistryService,
    *,
    authenticator: Authenticator | None = None,
    authorizer: Authorizer | None = None,
    max_body_bytes: int = MAX_BODY_BYTES,
    body_timeout_s: float = BODY_TIMEOUT_S,
    ready_wait_s: float = 10.0,
    cluster_id: str = "",
    also_ready: Callable[[], bool] | None = None,
) -> Starlette:
    """The ASGI app serving ``service``; see :mod:`streaming.registry.openapi` for the API.

    ``also_ready`` joins ``/ready`` (e.g. the revocation list being current), so a load
    balancer routes away from an instance that would refuse every token.
    """
    api = _Api(
        service,
        authenticator=authenticator,
        authorizer=authorizer,
        max_body_bytes=max_body_bytes,
        body_timeout_s=body_timeout_s,
        ready_wait_s=ready_wait_s,
        cluster_id=cluster_id,
    )
    e = api.endpoint

    async def ready(request: Request) -> Response:
        if service.store.ready and (also_ready is None or also_ready()):
            return SchemaResponse({"ready": True})
        return _error(503, {"error_code": 50003, "message": "not ready", "ready": False})

    count = RequestCount()

    async def health(request: Request) -> Response:
        # requests_total: API requests so far, so `streaming top` can show a rate.
        return SchemaResponse({"status": "ok", "requests_total": count.total})

    document = openapi_document()

    async def openapi(request: Request) -> Response:
        return JSONResponse(document)

    def allowed(path: str) -> str:
        """Every method some route serves on ``path`` (Starlette names only the first's)."""
        methods = {
            method
            for route in routes
            if isinstance(route, Route) and route.path_regex.fullmatch(path)
            for method in route.methods or ()
        }
        return ", ".join(sorted(methods))

    async def http_exception(request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        phrase = exc.detail if isinstance(exc, HTTPException) else "Internal Server Error"
        if status in (404, 405) and authenticator is not None:
            # Deny by default: an unrouted request needs ADMIN, so the caller learns
            # nothing about routing before authenticating (401) and being allowed (403).
            try:
                await api.guard(request, ADMIN, None)
            except RegistryError as err:
                return registry_error_response(err)
            except SecurityError as err:
                error = http_error(err)
                return _error(error.status_code, error.body, error.headers)
        headers = dict(exc.headers or {}) if isinstance(exc, HTTPException) else {}
        if status == 405:
            headers["Allow"] = allowed(request.scope["path"])
        body = {"error_code": status, "message": f"HTTP {status} {phrase}"}
        return _error(status, body, headers)

    s, v = "/subjects/{subject}", "/subjects/{subject}/versions/{version}"
    routes = [
        Route("/ready", ready, methods=["GET"]),
        Route("/health", health, methods=["GET"]),
        Route("/openapi.json", openapi, methods=["GET"]),
        Route("/", e(READ, api.root, subject_param=None), methods=["GET"]),
        Route("/schemas/types", e(READ, api.schema_types, subject_param=None), methods=["GET"]),
        Route("/schemas", e(READ, api.schemas, subject_param=None), methods=["GET"]),
        Route("/schemas/ids/{id}", e(READ, api.schema_by_id, subject_param=None), methods=["GET"]),
        Route(
            "/schemas/ids/{id}/schema",
            e(READ, api.schema_text_by_id, subject_param=None),
            methods=["GET"],
        ),
        Route(
            "/schemas/ids/{id}/subjects",
            e(READ, api.subjects_by_id, subject_param=None),
            methods=["GET"],
        ),
        Route(
            "/schemas/ids/{id}/versions",
            e(READ, api.versions_by_id, subject_param=None),
            methods=["GET"],
        ),
        Route("/subjects", e(READ, api.subjects, subject_param=None), methods=["GET"]),
        Route(f"{s}/versions", e(READ, api.list_versions), methods=["GET"]),
        Route(f"{s}/versions", e(WRITE, api.register), methods=["POST"]),
        Route(s, e(READ, api.lookup), methods=["POST"]),
        Route(s, e(ADMIN, api.delete_subject), methods=["DELETE"]),
        Route(v, e(READ, api.get_version), methods=["GET"]),
        Route(v, e(ADMIN, api.delete_version), methods=["DELETE"]),
        Route(f"{v}/schema", e(READ, api.get_version_schema), methods=["GET"]),
        Route(f"{v}/referencedby", e(READ, api.referenced_by), methods=["GET"]),
        Route(
            "/compatibility/subjects/{subject}/versions/{version}",
            e(READ, api.compatibility),
            methods=["POST"],
        ),
        Route(
            "/compatibility/subjects/{subject}/versions",
            e(READ, api.compatibility),
            methods=["POST"],
        ),
        Route("/config", e(READ, api.get_config, subject_param=None), methods=["GET"]),
        Route("/config", e(ADMIN, api.put_config, subject_param=None), methods=["PUT"]),
        Route("/config", e(ADMIN, api.delete_config, subject_param=None), methods=["DELETE"]),
        Route("/config/{subject}", e(READ, api.get_config), methods=["GET"]),
        Route("/config/{subject}", e(ADMIN, api.put_config), methods=["PUT"]),
        Route("/config/{subject}", e(ADMIN, api.delete_config), methods=["DELETE"]),
        Route("/mode", e(READ, api.get_mode, subject_param=None), methods=["GET"]),
        Route("/mode", e(ADMIN, api.put_mode, subject_param=None), methods=["PUT"]),
        Route("/mode/{subject}", e(READ, api.get_mode), methods=["GET"]),
        Route("/mode/{subject}", e(ADMIN, api.put_mode), methods=["PUT"]),
        Route("/mode/{subject}", e(ADMIN, api.delete_mode), methods=["DELETE"]),
        Route("/contexts", e(READ, api.contexts, subject_param=None), methods=["GET"]),
        Route("/v1/metadata/id", e(READ, api.metadata_id, subject_param=None), methods=["GET"]),
        Route(
            "/v1/metadata/version",
            e(READ, api.metadata_version, subject_param=None),
            methods=["GET"],
        ),
        Route(
            "/associations/{rest:path}",
            e(READ, api.associations, subject_param=None),
            methods=["GET", "POST", "PUT", "DELETE"],
        ),
    ]
    return Starlette(
        routes=routes,
        exception_handlers={HTTPException: http_exception},
        middleware=[Middleware(CountRequests, count=count)],
    )


__all__ = [
    "BODY_TIMEOUT_S",
    "MAX_BODY_BYTES",
    "MEDIA_TYPE",
    "Authenticator",
    "Authorizer",
    "Caller",
    "create_app",
    "registry_error_response",
]
