"""The registry's OpenAPI 3.0 document, kept as data next to the routes it describes.

``tests/unit/registry/test_openapi.py`` checks that every route of the app appears here
(and nothing else), so the document cannot drift from the code; the property-based test
fuzzes the API from it.
"""

from __future__ import annotations

from typing import Any

from streaming.serde.compatibility import LEVELS

JSON = "application/vnd.schemaregistry.v1+json"

_ERROR = {
    "type": "object",
    "properties": {"error_code": {"type": "integer"}, "message": {"type": "string"}},
    "required": ["error_code", "message"],
}
_REFERENCE = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "subject": {"type": "string"},
        "version": {"type": "integer"},
    },
    "required": ["name", "subject", "version"],
}
_SCHEMA_REQUEST = {
    "type": "object",
    "properties": {
        "schema": {"type": "string", "description": "the Avro schema as a JSON string"},
        "schemaType": {"type": "string", "enum": ["AVRO"]},
        "references": {"type": "array", "items": {"$ref": "#/components/schemas/Reference"}},
        "id": {"type": "integer", "description": "only in IMPORT mode"},
        "version": {"type": "integer", "description": "only in IMPORT mode"},
    },
    "required": ["schema"],
}
_SCHEMA = {
    "type": "object",
    "properties": {
        "schema": {"type": "string"},
        "schemaType": {"type": "string"},
        "references": {"type": "array", "items": {"$ref": "#/components/schemas/Reference"}},
    },
    "required": ["schema"],
}
_SUBJECT_VERSION = {
    "type": "object",
    "properties": {
        "subject": {"type": "string"},
        "version": {"type": "integer"},
        "id": {"type": "integer"},
        "schema": {"type": "string"},
        "schemaType": {"type": "string"},
        "references": {"type": "array", "items": {"$ref": "#/components/schemas/Reference"}},
    },
    "required": ["subject", "version", "id", "schema"],
}
_MODES = ["READWRITE", "READONLY", "IMPORT"]


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _path(name: str, kind: str = "string", description: str = "") -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "schema": {"type": kind},
        "description": description,
    }


def _query(name: str, kind: str = "boolean") -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": {"type": kind}}


SUBJECT = {
    **_path("subject", description="subject name; not '.', '..' or with control characters"),
    "schema": {
        "type": "string",
        "pattern": r"^[^\u0000-\u001f\u007f-\u009f]+$",
        "not": {"enum": [".", ".."]},
    },
}
VERSION = _path("version", description='1..2^31-1, -1 or "latest"')
SCHEMA_ID = _path("id", "integer", "global schema id")
PAGE = [_query("offset", "integer"), _query("limit", "integer")]
DELETED = _query("deleted")


def _body(schema: dict[str, Any]) -> dict[str, Any]:
    return {
        "required": True,
        "content": {JSON: {"schema": schema}, "application/json": {"schema": schema}},
    }


_WHY = {
    400: "body is not JSON",
    401: "not authenticated (40101)",
    403: "not allowed (40301)",
    404: "not found (404xx)",
    408: "body not received in time; the connection is closed",
    409: "incompatible schema",
    413: "body larger than the limit (1 MiB)",
    415: "unsupported content type",
    422: "invalid input (422xx; 42208: a subject URLs cannot address)",
    500: "store error (50001, 50002)",
    503: "still reading _schemas (50003)",
}


def _op(
    summary: str,
    ok: dict[str, Any],
    errors: tuple[int, ...] = (),
    params: list[dict[str, Any]] | None = None,
    body: dict[str, Any] | None = None,
    *,
    guarded: bool = True,
    media: str = JSON,
) -> dict[str, Any]:
    """One operation with every status the server can answer it with.

    ``guarded`` operations pass the app's guard (auth, readiness: 401, 403, 503); a body
    adds its parsing errors; a subject in the path can be refused with 422/42208.
    """
    params = params or []
    statuses = {*errors, 500}
    if guarded:
        statuses |= {401, 403, 503}
    if SUBJECT in params:
        statuses.add(422)
    if body is not None:
        statuses |= {400, 408, 413, 415, 422}
    responses: dict[str, Any] = {"200": {"description": "OK", "content": {media: {"schema": ok}}}}
    for status in sorted(statuses):
        responses[str(status)] = {
            "description": _WHY.get(status, "error"),
            "content": {JSON: {"schema": _ref("Error")}},
        }
    op: dict[str, Any] = {"summary": summary, "parameters": params, "responses": responses}
    if body is not None:
        op["requestBody"] = _body(body)
    return op


_INTS = {"type": "array", "items": {"type": "integer"}}
_STRINGS = {"type": "array", "items": {"type": "string"}}
_CONFIG = {"type": "object", "properties": {"compatibilityLevel": {"type": "string"}}}
_CONFIG_PUT = {
    "type": "object",
    "properties": {"compatibility": {"type": "string", "enum": list(LEVELS)}},
    "required": ["compatibility"],
}
_MODE = {
    "type": "object",
    "properties": {"mode": {"type": "string", "enum": _MODES}},
    "required": ["mode"],
}
_COMPAT = {
    "type": "object",
    "properties": {"is_compatible": {"type": "boolean"}, "messages": _STRINGS},
}


def openapi_document() -> dict[str, Any]:
    """A fresh copy of the document (callers may mutate it)."""
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "tradesense schema registry",
            "version": "1",
            "description": "Confluent Schema Registry compatible REST API (Avro).",
        },
        "paths": {
            "/": {"get": _op("empty object", {"type": "object"})},
            "/ready": {
                "get": _op(
                    "readiness: 200 once _schemas is read",
                    {"type": "object"},
                    (503,),
                    guarded=False,
                )
            },
            "/health": {
                "get": _op(
                    "liveness; requests_total counts API requests (probes excluded)",
                    {"type": "object"},
                    guarded=False,
                )
            },
            "/openapi.json": {
                "get": _op(
                    "this document", {"type": "object"}, guarded=False, media="application/json"
                )
            },
            "/schemas/types": {"get": _op("supported schema types", _STRINGS)},
            "/schemas": {
                "get": _op(
                    "list schemas",
                    {"type": "array", "items": _ref("SubjectVersion")},
                    params=[
                        _query("subjectPrefix", "string"),
                        DELETED,
                        _query("latestOnly"),
                        *PAGE,
                    ],
                )
            },
            "/schemas/ids/{id}": {
                "get": _op(
                    "schema by global id",
                    _ref("Schema"),
                    (404,),
                    [SCHEMA_ID, _query("subject", "string")],
                )
            },
            "/schemas/ids/{id}/schema": {
                "get": _op("the bare schema by global id", {}, (404,), [SCHEMA_ID])
            },
            "/schemas/ids/{id}/subjects": {
                "get": _op("subjects using an id", _STRINGS, (404,), [SCHEMA_ID, DELETED, *PAGE])
            },
            "/schemas/ids/{id}/versions": {
                "get": _op(
                    "subject versions using an id",
                    {"type": "array", "items": {"type": "object"}},
                    (404,),
                    [SCHEMA_ID, DELETED, *PAGE],
                )
            },
            "/subjects": {
                "get": _op(
                    "list subjects",
                    _STRINGS,
                    params=[DELETED, _query("subjectPrefix", "string"), *PAGE],
                )
            },
            "/subjects/{subject}": {
                "post": _op(
                    "look a schema up in a subject",
                    _ref("SubjectVersion"),
                    (404, 422),
                    [SUBJECT, _query("normalize"), DELETED],
                    _ref("SchemaRequest"),
                ),
                "delete": _op(
                    "delete a subject (soft, or permanent after soft)",
                    _INTS,
                    (404, 422),
                    [SUBJECT, _query("permanent")],
                ),
            },
            "/subjects/{subject}/versions": {
                "get": _op("list versions", _INTS, (404,), [SUBJECT, DELETED, *PAGE]),
                "post": _op(
                    "register a schema",
                    {"type": "object", "properties": {"id": {"type": "integer"}}},
                    (409, 422),
                    [SUBJECT, _query("normalize")],
                    _ref("SchemaRequest"),
                ),
            },
            "/subjects/{subject}/versions/{version}": {
                "get": _op(
                    "one version", _ref("SubjectVersion"), (404, 422), [SUBJECT, VERSION, DELETED]
                ),
                "delete": _op(
                    "delete a version (soft, or permanent after soft)",
                    {"type": "integer"},
                    (404, 422),
                    [SUBJECT, VERSION, _query("permanent")],
                ),
            },
            "/subjects/{subject}/versions/{version}/schema": {
                "get": _op("the bare schema of a version", {}, (404, 422), [SUBJECT, VERSION])
            },
            "/subjects/{subject}/versions/{version}/referencedby": {
                "get": _op("ids referencing a version", _INTS, (404, 422), [SUBJECT, VERSION])
            },
            "/compatibility/subjects/{subject}/versions/{version}": {
                "post": _op(
                    "test against one version",
                    _COMPAT,
                    (404, 422),
                    [SUBJECT, VERSION, _query("verbose")],
                    _ref("SchemaRequest"),
                )
            },
            "/compatibility/subjects/{subject}/versions": {
                "post": _op(
                    "test against the versions the level names",
                    _COMPAT,
                    (422,),
                    [SUBJECT, _query("verbose")],
                    _ref("SchemaRequest"),
                )
            },
            "/config": {
                "get": _op("global compatibility", _CONFIG),
                "put": _op("set global compatibility", _CONFIG_PUT, (422,), body=_CONFIG_PUT),
                "delete": _op("reset global compatibility", _CONFIG),
            },
            "/config/{subject}": {
                "get": _op(
                    "subject compatibility",
                    _CONFIG,
                    (404,),
                    [SUBJECT, _query("defaultToGlobal")],
                ),
                "put": _op(
                    "set subject compatibility", _CONFIG_PUT, (422,), [SUBJECT], _CONFIG_PUT
                ),
                "delete": _op("remove subject compatibility", _CONFIG, (404,), [SUBJECT]),
            },
            "/mode": {
                "get": _op("global mode", _MODE),
                "put": _op("set global mode", _MODE, (422,), [_query("force")], _MODE),
            },
            "/mode/{subject}": {
                "get": _op("subject mode", _MODE, (404,), [SUBJECT, _query("defaultToGlobal")]),
                "put": _op("set subject mode", _MODE, (422,), [SUBJECT, _query("force")], _MODE),
                "delete": _op("remove subject mode", _MODE, (404,), [SUBJECT]),
            },
            "/contexts": {"get": _op("contexts (only the default)", _STRINGS)},
            "/v1/metadata/id": {"get": _op("cluster ids", {"type": "object"})},
            "/v1/metadata/version": {"get": _op("server version", {"type": "object"})},
            "/associations/{rest}": {
                p: _op(
                    "not supported: always 404/40401 (clients fall back to TopicNameStrategy)",
                    {},
                    (404, 413, 415) if p in ("post", "put") else (404,),
                    [_path("rest")],
                )
                for p in ("get", "post", "put", "delete")
            },
        },
        "components": {
            "schemas": {
                "Error": _ERROR,
                "Reference": _REFERENCE,
                "SchemaRequest": _SCHEMA_REQUEST,
                "Schema": _SCHEMA,
                "SubjectVersion": _SUBJECT_VERSION,
            }
        },
    }


__all__ = ["openapi_document"]
