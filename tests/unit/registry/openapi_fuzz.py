"""Hypothesis strategies that build HTTP requests from the registry's OpenAPI document.

Each request picks a documented operation, fills its path and query parameters with a
mix of plausible and hostile values, and sends a body that is valid, almost valid, or
garbage. Property: the registry answers every one of them without a 5xx.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from hypothesis import strategies as st

from streaming.registry.openapi import openapi_document

SUBJECTS = ["alpha", "beta", "gamma-value"]
NAMES = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,6}", fullmatch=True)
PRIMITIVES = ["null", "boolean", "int", "long", "float", "double", "bytes", "string"]
CONTENT_TYPES = [
    "application/vnd.schemaregistry.v1+json",
    "application/json",
    "application/octet-stream",
    "text/plain",
    "",
]


@dataclass(frozen=True)
class Call:
    method: str
    path: str
    params: dict[str, str]
    body: bytes | None
    content_type: str


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**40), 2**40)
    | st.floats(allow_nan=False)
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=12,
)


def _avro_like() -> st.SearchStrategy[Any]:
    def extend(inner: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
        field = st.fixed_dictionaries(
            {"name": NAMES, "type": inner},
            optional={"default": json_values, "aliases": st.lists(NAMES, max_size=2)},
        )
        return st.one_of(
            st.fixed_dictionaries(
                {"type": st.just("record"), "name": NAMES, "fields": st.lists(field, max_size=4)},
                optional={"namespace": NAMES, "aliases": st.lists(NAMES, max_size=2)},
            ),
            st.fixed_dictionaries({"type": st.just("array"), "items": inner}),
            st.fixed_dictionaries({"type": st.just("map"), "values": inner}),
            st.lists(inner, min_size=1, max_size=3),
        )

    leaves = st.one_of(
        st.sampled_from(PRIMITIVES),
        NAMES,
        st.fixed_dictionaries(
            {"type": st.just("enum"), "name": NAMES, "symbols": st.lists(NAMES, max_size=4)}
        ),
        st.fixed_dictionaries(
            {"type": st.just("fixed"), "name": NAMES, "size": st.integers(-2, 40)}
        ),
        st.fixed_dictionaries(
            {
                "type": st.sampled_from(["int", "long", "bytes"]),
                "logicalType": st.sampled_from(["date", "timestamp-millis", "decimal"]),
            },
            optional={"precision": st.integers(-1, 40), "scale": st.integers(-1, 40)},
        ),
    )
    return st.recursive(leaves, extend, max_leaves=10)


def _schema_body() -> st.SearchStrategy[bytes]:
    schema_text = st.one_of(_avro_like().map(json.dumps), st.text(max_size=30))
    reference = st.fixed_dictionaries(
        {"name": NAMES, "subject": st.sampled_from(SUBJECTS), "version": st.integers(-2, 4)}
    )
    body = st.fixed_dictionaries(
        {"schema": schema_text},
        optional={
            "schemaType": st.sampled_from(["AVRO", "JSON", "PROTOBUF", "avro", ""]),
            "references": st.lists(reference, max_size=2),
            "id": st.integers(-3, 2**33),
            "version": st.integers(-3, 5),
            "metadata": json_values,
        },
    )
    return st.one_of(
        body.map(lambda b: json.dumps(b).encode()),
        json_values.map(lambda v: json.dumps(v).encode()),
        st.binary(max_size=40),
    )


def _config_body() -> st.SearchStrategy[bytes]:
    value = (
        st.sampled_from(
            ["FULL", "none", "BACKWARD_TRANSITIVE", "SIDEWAYS", "READONLY", "IMPORT", "READWRITE"]
        )
        | json_values
    )
    keys = st.sampled_from(["compatibility", "mode", "compatibilityLevel", "other"])
    return st.dictionaries(keys, value, max_size=2).map(
        lambda d: json.dumps(d).encode()
    ) | st.binary(max_size=20)


def _path_value(name: str) -> st.SearchStrategy[str]:
    if name == "version":
        hostile = st.sampled_from(["latest", "-1", "0", "1", "2", "3", "2147483648", "abc", "1.0"])
        return hostile | st.integers(-5, 2**40).map(str)
    if name == "id":
        return st.integers(-3, 2**40).map(str) | st.sampled_from(["x", "1e3", "01"])
    hostile_text = st.text(st.characters(exclude_categories=["Cs"]), min_size=1, max_size=12)
    return st.sampled_from(SUBJECTS) | hostile_text


def _query_value(kind: str) -> st.SearchStrategy[str]:
    if kind == "boolean":
        return st.sampled_from(["true", "false", "True", "False", "", "maybe"])
    if kind == "integer":
        return st.integers(-5, 2**40).map(str) | st.sampled_from(["x", ""])
    return st.sampled_from(SUBJECTS) | st.text(max_size=6)


def _operations() -> list[tuple[str, str, dict[str, Any]]]:
    doc = openapi_document()
    return [
        (method.upper(), path, op)
        for path, item in doc["paths"].items()
        for method, op in item.items()
    ]


@st.composite
def calls(draw: st.DrawFn) -> Call:
    method, template, op = draw(st.sampled_from(_operations()))
    path = template
    params: dict[str, str] = {}
    for param in op.get("parameters", []):
        if param["in"] == "path":
            value = draw(_path_value(param["name"]))
            path = path.replace("{" + param["name"] + "}", quote(value, safe=""))
        elif draw(st.booleans()):
            params[param["name"]] = draw(_query_value(param["schema"]["type"]))
    body = None
    if "requestBody" in op:
        body = draw(_config_body() if template.startswith(("/config", "/mode")) else _schema_body())
    return Call(method, path, params, body, draw(st.sampled_from(CONTENT_TYPES)))


def send(client: Any, call: Call) -> Any:
    """Send ``call`` with a sync httpx-style client; return the response."""
    headers = {"Content-Type": call.content_type} if call.content_type else {}
    return client.request(
        call.method, call.path, params=call.params, content=call.body, headers=headers
    )
