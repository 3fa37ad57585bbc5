"""structlog setup: JSON or console output, correlation and trace ids, secret masking.

Every line carries the current correlation id (from :mod:`streaming.context`) and, inside
a span, the OpenTelemetry ``trace_id``/``span_id``. Values under secret or PII keys,
``SecretStr`` values, bearer tokens and JWTs anywhere in a line are masked before
rendering. Stdlib logging (aiokafka, uvicorn, sqlalchemy) goes through the same chain.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Mapping, MutableMapping
from typing import Any, TextIO

import structlog
from pydantic import SecretBytes, SecretStr

from streaming.config import LoggingSettings
from streaming.context import current_execution_context

MASK = "***"
SECRET_KEYS = frozenset(
    {
        "password",
        "passwd",
        "secret",
        "token",
        "access_token",
        "refresh_token",
        "authorization",
        "api_key",
        "apikey",
        "pepper",
        "private_key",
        "encryption_key",
        "jwt_secret_key",
        "client_secret",
        "cookie",
        "set-cookie",
        "dsn",
        "database_url",
        "basic_auth_user_info",
        "key_material",
    }
)
PII_KEYS = frozenset(
    {
        "email",
        "ssn",
        "phone",
        "phone_number",
        "card_number",
        "iban",
        "date_of_birth",
        "tax_id",
        "national_id",
    }
)
_SECRET_FRAGMENTS = ("password", "secret", "token", "private_key", "pepper", "api_key")
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*")
_BEARER = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}")
_URL_PASSWORD = re.compile(r"(\w+://[^:/@\s]+:)[^@\s]+@")


def is_sensitive_key(key: str) -> bool:
    lowered = key.lower()
    return (
        lowered in SECRET_KEYS
        or lowered in PII_KEYS
        or any(f in lowered for f in _SECRET_FRAGMENTS)
    )


def mask_text(text: str) -> str:
    """Mask tokens and URL passwords that slipped into free text."""
    text = _JWT.sub(MASK, text)
    text = _BEARER.sub(lambda m: f"{m.group(1)} {MASK}", text)
    return _URL_PASSWORD.sub(lambda m: f"{m.group(1)}{MASK}@", text)


def mask_value(key: str, value: Any) -> Any:
    if isinstance(value, SecretStr | SecretBytes):
        return MASK
    if is_sensitive_key(key) and value not in (None, ""):
        return MASK
    if isinstance(value, Mapping):
        return {k: mask_value(str(k), v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(mask_value(key, v) for v in value)
    if isinstance(value, str):
        return mask_text(value)
    return value


def mask_secrets(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: mask secret and PII values before anything renders them."""
    for key in list(event_dict):
        event_dict[key] = mask_value(key, event_dict[key])
    return event_dict


def add_context_ids(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: correlation id from the execution context, trace ids from OTel."""
    ctx = current_execution_context()
    if ctx is not None:
        event_dict.setdefault("correlation_id", ctx.correlation_id)
        if ctx.user_id:
            event_dict.setdefault("user_id", ctx.user_id)
    from opentelemetry import trace

    span_ctx = trace.get_current_span().get_span_context()
    if span_ctx.is_valid:
        event_dict.setdefault("trace_id", format(span_ctx.trace_id, "032x"))
        event_dict.setdefault("span_id", format(span_ctx.span_id, "016x"))
    return event_dict


def configure_logging(
    settings: LoggingSettings | None = None, *, stream: TextIO | None = None
) -> None:
    """Configure structlog and stdlib logging once, at the process edge."""
    settings = settings or LoggingSettings()
    level = getattr(logging, settings.level)
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        add_context_ids,
        structlog.processors.StackInfoRenderer(),
        structlog.processors.format_exc_info,
        mask_secrets,
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if settings.format == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
    )
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level)
    for noisy in ("aiokafka", "kafka", "asyncio", "httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))


def get_logger(name: str | None = None) -> Any:
    return structlog.get_logger(name)


__all__ = [
    "MASK",
    "configure_logging",
    "get_logger",
    "is_sensitive_key",
    "mask_secrets",
    "mask_text",
    "mask_value",
]
