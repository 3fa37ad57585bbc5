"""Canonical JSON: the one byte form of a value that the audit chain hashes and signs.

RFC 8785 style: sorted keys, no whitespace, ECMAScript number form; big integers,
decimals, bytes, UUIDs and datetimes as strings. Also the two timestamp forms the chain
uses (:func:`format_timestamp` in payloads, :func:`column_time` for the columns a row MAC
binds). Pure and I/O-free; the sink calls it per row, hence the hand-written fast path.
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import enum
import math
import re
import uuid
from collections.abc import Mapping
from json.encoder import encode_basestring as json_string  # the C escaper when available
from typing import Any

import orjson

from streaming.errors import SerializationError

_MAX_SAFE_INT = 2**53 - 1


class CanonicalizationError(SerializationError, ValueError):
    """A value has no canonical JSON form (NaN, infinity, a non-string key, ...)."""


def _es_number(value: float) -> str:
    """ECMAScript Number::toString of a finite float (what RFC 8785 prescribes)."""
    if value == 0:
        return "0"
    sign = "-" if value < 0 else ""
    digits_tuple = decimal.Decimal(repr(abs(value))).normalize().as_tuple()
    digits = "".join(str(d) for d in digits_tuple.digits)
    exponent = digits_tuple.exponent
    assert isinstance(exponent, int)
    k = len(digits)
    n = exponent + k  # value = 0.digits * 10**n
    if k <= n <= 21:
        text = digits + "0" * (n - k)
    elif 0 < n <= 21:
        text = digits[:n] + "." + digits[n:]
    elif -6 < n <= 0:
        text = "0." + "0" * (-n) + digits
    else:
        mantissa = digits[0] + ("." + digits[1:] if k > 1 else "")
        e = n - 1
        text = f"{mantissa}e{'+' if e > 0 else '-'}{abs(e)}"
    return sign + text


def _utf16_key(key: str) -> bytes:
    return key.encode("utf-16-be", "surrogatepass")


def _key_prefix(key: object) -> str:
    if not isinstance(key, str):
        raise CanonicalizationError(f"object key {key!r} is not a string")
    return json_string(key) + ":"


def _int_text(value: int) -> str:
    return str(value) if -_MAX_SAFE_INT <= value <= _MAX_SAFE_INT else '"' + str(value) + '"'


def _dict_text(mapping: Mapping[Any, Any]) -> str:
    """One JSON object; exact-type checks first because this loop is the sink's hot path."""
    try:
        keys = sorted(mapping)
    except TypeError:
        raise CanonicalizationError("object keys are not all strings") from None
    parts: list[str] = []
    append = parts.append
    utf16 = False
    for key in keys:
        prefix = _KEY_PREFIXES.get(key)
        if prefix is None:
            prefix = _key_prefix(key)
            if not key.isascii() and max(key) >= "\ue000":
                utf16 = True  # code-point order != UTF-16 order past U+E000
            elif len(_KEY_PREFIXES) < _KEY_CACHE_SIZE:
                _KEY_PREFIXES[key] = prefix
        item = mapping[key]
        kind = type(item)
        if kind is str:
            append(prefix + json_string(item))
        elif item is None:
            append(prefix + "null")
        elif kind is dict:
            append(prefix + _dict_text(item))
        elif kind is int:
            append(prefix + _int_text(item))
        else:
            append(prefix + _text(item))
    if utf16:
        order = sorted(range(len(keys)), key=lambda i: _utf16_key(keys[i]))
        parts = [parts[i] for i in order]
    return "{" + ",".join(parts) + "}"


def _text(value: Any) -> str:
    """The canonical JSON text of any supported value."""
    kind = type(value)
    if kind is str:
        return json_string(value)
    if kind is dict:
        return _dict_text(value)
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, str):
        return json_string(value)
    if isinstance(value, enum.Enum):
        return _text(value.value)
    if isinstance(value, int):
        return _int_text(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise CanonicalizationError(f"{value!r} has no JSON form")
        text = repr(value)
        # Shortest fixed-point digits read the same in ECMAScript; exponent forms and
        # integral values ("1.0" vs "1") need the exact conversion.
        return _es_number(value) if "e" in text or text.endswith(".0") else text
    if isinstance(value, decimal.Decimal):
        if not value.is_finite():
            raise CanonicalizationError(f"{value!r} has no JSON form")
        return json_string(str(value))
    if isinstance(value, bytes | bytearray | memoryview):
        return '"' + base64.b64encode(bytes(value)).decode("ascii") + '"'
    if isinstance(value, uuid.UUID):
        return '"' + str(value) + '"'
    if isinstance(value, dt.datetime):
        return json_string(format_timestamp(value))
    if isinstance(value, dt.date | dt.time):
        return json_string(value.isoformat())
    if isinstance(value, Mapping):
        return _dict_text(value)
    if isinstance(value, list | tuple):
        return "[" + ",".join([_text(item) for item in value]) + "]"
    raise CanonicalizationError(f"cannot canonicalize a {type(value).__name__}")


# '"key":' for keys seen before (audit records repeat the same few dozen field names).
_KEY_PREFIXES: dict[str, str] = {}
_KEY_CACHE_SIZE = 4096


def canonical_json(value: Any, *, floats: bool = True) -> bytes:
    """The canonical UTF-8 JSON bytes of ``value`` (RFC 8785 style).

    Strings go through the C JSON string escaper, which escapes exactly what RFC 8785
    asks for ('"', '\\', the short forms and other controls as lower-case \\u00xx). The
    rest is one Python pass writing text directly: converting to JSON-native types for
    ``json.dumps`` first cost more than writing the text, and the sink does this per row.

    ``floats=False`` is the caller's promise that ``value`` holds no float (the sink
    knows it from the Avro schemas that decoded it). orjson then writes the same bytes
    about five times faster: it escapes like the C escaper, sorts keys by code point
    and refuses integers beyond 2**53 - 1; floats are the one thing it writes
    differently (``1.0``, ``1e16``, NaN as ``null``), hence the promise. Whatever it
    refuses, and any output whose key order could differ (a character at or above
    U+E000), is written by the Python pass instead.
    """
    if not floats:
        try:
            out = orjson.dumps(value, default=_orjson_default, option=_ORJSON_OPTIONS)
        except orjson.JSONEncodeError:
            pass
        else:
            if out.isascii() or _UTF16_ORDER_RISK.search(out) is None:
                return out
    return _text(value).encode("utf-8", "surrogatepass")


# Sorted keys; integers outside +-(2**53 - 1) are refused (canonical JSON writes them as
# strings); datetimes, dataclasses and subclasses go to :func:`_orjson_default`.
_ORJSON_OPTIONS = (
    orjson.OPT_SORT_KEYS
    | orjson.OPT_STRICT_INTEGER
    | orjson.OPT_PASSTHROUGH_DATETIME
    | orjson.OPT_PASSTHROUGH_DATACLASS
)
# UTF-8 lead bytes of U+E000..U+10FFFF: past U+E000 code-point order (orjson's) and
# UTF-16 order (RFC 8785's) can disagree.
_UTF16_ORDER_RISK = re.compile(rb"[\xee-\xf4]")


def _orjson_default(value: Any) -> str:
    """The canonical string of the non-JSON types orjson leaves to us; else refuse."""
    if isinstance(value, dt.datetime):
        return format_timestamp(value)
    if isinstance(value, decimal.Decimal) and value.is_finite():
        return str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    raise TypeError  # orjson raises JSONEncodeError: the Python pass decides


def format_timestamp(value: dt.datetime) -> str:
    """UTC ISO 8601 with milliseconds and ``Z`` (naive datetimes are taken as UTC)."""
    if value.tzinfo is dt.UTC:  # what fastavro returns: skip the conversion
        return value.isoformat(timespec="milliseconds")[:-6] + "Z"
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def column_time(value: dt.datetime | None) -> str | None:
    """UTC ISO 8601 with microseconds (what PostgreSQL's timestamptz keeps) and ``Z``."""
    if value is None:
        return None
    if value.tzinfo is dt.UTC:  # what the sink and asyncpg hand over: skip the conversion
        return value.isoformat(timespec="microseconds")[:-6] + "Z"
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def parse_column_time(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


__all__ = [
    "CanonicalizationError",
    "canonical_json",
    "column_time",
    "format_timestamp",
    "json_string",
    "parse_column_time",
]
