"""Bad input at the registry's HTTP API: schemathesis against its own OpenAPI document.

Every operation gets generated requests (valid and invalid); all of schemathesis' checks
run on every response: no 5xx, status codes, headers and bodies as documented, invalid
data refused. One is tuned: a request the document calls valid may still be refused
with 422, because what the document cannot say (a ``schema`` string must be Avro, a
subject must be addressable) is checked by the server; such a refusal must carry a
Confluent error code, which an extra check asserts for every 4xx.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.config import SchemathesisConfig
from schemathesis.core.failures import FailureGroup

from streaming.devstack.procs import wait_until
from tests.faults.cluster import Cluster
from tests.faults.conftest import SIZES, subprocess_env
from tests.faults.report import record_bad_input
from tests.faults.workloads import RegistryProcess


def _summary(exc: BaseException) -> str:
    """The failure's title lines (schemathesis puts a curl reproducer after them)."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    return " ".join(lines[:4])[:300]


def _ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/ready", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture(scope="module")
def api_url(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A registry process of its own (own store topic) on the three-broker cluster."""
    log = tmp_path_factory.mktemp("api") / "registry.log"
    registry = RegistryProcess(subprocess_env(cluster), f"_schemas-api-{uuid.uuid4().hex[:8]}", log)
    try:
        wait_until(
            lambda: _ready(registry.url) or registry.proc.poll() is not None,
            timeout_s=60,
            what=f"the registry on {registry.url}",
        )
        assert registry.proc.poll() is None, log.read_text()[-2000:]
        yield registry.url
    finally:
        registry.close()


@pytest.fixture(scope="module")
def api_schema(api_url: str) -> schemathesis.BaseSchema:
    accepted = ["2xx", "401", "403", "404", "409", "422"]
    config = SchemathesisConfig.from_dict(
        {"checks": {"positive_data_acceptance": {"expected-statuses": accepted}}}
    )
    return schemathesis.openapi.from_url(f"{api_url}/openapi.json", config=config)


@schemathesis.check
def refusals_carry_a_confluent_error_code(
    ctx: object, response: schemathesis.Response, case: schemathesis.Case
) -> bool | None:
    """Every 4xx body is Confluent's ``{"error_code": int, "message": str}``."""
    if 400 <= response.status_code < 500:
        body = response.json()
        assert isinstance(body, dict), f"{response.status_code} body is not an object"
        assert isinstance(body.get("error_code"), int), f"no error_code in {body}"
        assert isinstance(body.get("message"), str), f"no message in {body}"
    return None


def test_registry_api_answers_as_its_openapi_document_says(
    api_schema: schemathesis.BaseSchema,
) -> None:
    # Driven by hand, one hypothesis run per operation: schemathesis' pytest loader
    # (from_fixture) reads a node attribute pytest 9 no longer has.
    failures: list[str] = []
    cases = 0
    for loaded in api_schema.get_all_operations():
        operation = loaded.ok()

        @settings(
            max_examples=SIZES.api_examples,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            database=None,
        )
        @given(case=operation.as_strategy())
        def check(case: schemathesis.Case) -> None:
            nonlocal cases
            cases += 1
            case.call_and_validate(additional_checks=[refusals_carry_a_confluent_error_code])

        try:
            check()
        except (FailureGroup, Exception) as exc:  # every operation runs; all are listed below
            failures.append(f"{operation.label}: {_summary(exc)}")
    record_bad_input(
        "schemathesis on the registry API (all checks)",
        cases,
        cases,
        f"FAILED {len(failures)} operations: " + " / ".join(failures)[:600]
        if failures
        else f"{cases} generated requests, every check passed",
    )
    assert not failures, "\n".join(failures)
