"""The one error tree: every public error is in it, drawn, and says ``retriable`` by class."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re

import asyncpg
import pytest
from sqlalchemy import exc as sa_exc

import connectors
import streaming
from streaming import errors
from streaming.config import DatabaseSettings
from streaming.db import translate_db_error, translate_sql_error
from streaming.errors import (
    BrokerUnavailableError,
    DatabaseError,
    DatabaseUnavailableError,
    DuplicateKeyError,
    PartialSendError,
    RetriablePartialSendError,
    StreamingError,
    TopicError,
)
from streaming.registry import errors as server
from streaming.serde.errors import ERROR_CODES, RegistryError, registry_error


def _public_errors() -> list[type[BaseException]]:
    found: dict[str, type[BaseException]] = {}
    for package in (streaming, connectors):
        for info in pkgutil.walk_packages(package.__path__, f"{package.__name__}."):
            if info.name.endswith("__main__"):
                continue
            module = importlib.import_module(info.name)
            for name, obj in vars(module).items():
                if (
                    inspect.isclass(obj)
                    and issubclass(obj, BaseException)
                    and obj.__module__ == module.__name__
                    and not name.startswith("_")
                ):
                    found[f"{obj.__module__}.{obj.__qualname__}"] = obj
    return sorted(found.values(), key=lambda c: c.__name__)


PUBLIC_ERRORS = _public_errors()
DRAWN = set(re.findall(r"\+-- (\w+)", errors.__doc__ or ""))


@pytest.mark.parametrize("error", PUBLIC_ERRORS, ids=lambda c: c.__name__)
def test_every_public_error_is_in_the_tree_and_drawn(error: type[BaseException]) -> None:
    assert issubclass(error, StreamingError)
    assert error is StreamingError or error.__name__ in DRAWN, "draw it in errors.py"


def test_the_drawing_names_only_errors_that_exist() -> None:
    names = {c.__name__ for c in PUBLIC_ERRORS}
    assert names >= DRAWN, DRAWN - names


def test_retriable_is_a_class_attribute() -> None:
    for error in PUBLIC_ERRORS:
        assert isinstance(inspect.getattr_static(error, "retriable"), bool), error


def test_a_partial_send_is_retriable_only_when_every_failure_is() -> None:
    flaky = {0: BrokerUnavailableError("down")}
    mixed = {0: BrokerUnavailableError("down"), 1: TopicError("gone")}
    assert type(PartialSendError.of("m", [None], flaky)) is RetriablePartialSendError
    assert PartialSendError.of("m", [None], flaky).retriable
    not_retriable = PartialSendError.of("m", [None, None], mixed)
    assert type(not_retriable) is PartialSendError and not not_retriable.retriable
    assert "retriable" not in vars(not_retriable)


def test_server_and_client_share_one_family_and_one_code_table() -> None:
    for name in server.__all__:
        cls = getattr(server, name)
        if not isinstance(cls, type) or name in {"RegistryError", "RequestError", "BodyTimeout"}:
            continue
        assert issubclass(cls, RegistryError), name
        assert ERROR_CODES[cls.error_code] in cls.__mro__, name  # the code lives on the family
    wire = server.SubjectNotFound("s")
    assert (server.http_status(wire), wire.body()) == (
        404,
        {"error_code": 40401, "message": "Subject 's' not found."},
    )
    parsed = registry_error(404, 40401, "Subject 's' not found.")
    assert isinstance(wire, type(parsed))
    assert isinstance(registry_error(503, 50003, "behind"), server.RegistryNotReadyError)


def test_request_errors_answer_their_plain_status() -> None:
    timeout = server.BodyTimeout(5)
    assert server.http_status(timeout) == 408
    assert timeout.body()["error_code"] == 408
    assert str(timeout) == timeout.message


def _unique_violation() -> asyncpg.UniqueViolationError:
    return asyncpg.UniqueViolationError("duplicate key value violates unique constraint")


def test_db_translates_a_unique_violation_to_duplicate_key() -> None:
    settings = DatabaseSettings()
    raw = _unique_violation()
    assert type(translate_db_error(raw, settings)) is DuplicateKeyError
    wrapped = sa_exc.IntegrityError("INSERT", {}, raw)
    assert type(translate_db_error(wrapped, settings)) is DuplicateKeyError
    assert type(translate_sql_error(wrapped, "record")) is DuplicateKeyError
    other = asyncpg.CheckViolationError("check failed")
    assert type(translate_db_error(other, settings)) is DatabaseError


def test_sql_errors_without_settings_keep_their_wording() -> None:
    lost = translate_sql_error(OSError("reset"), "check the revocation list")
    assert isinstance(lost, DatabaseUnavailableError) and lost.retriable
    assert str(lost) == "could not check the revocation list: PostgreSQL is unreachable"
