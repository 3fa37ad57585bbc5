"""`dev up --observability` without processes: state, exported env, generated configs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from streaming.devstack import DevStack, Service, StackState
from streaming.devstack.observability import (
    COLLECTOR_JOB,
    JAEGER_BIN_ENV,
    SERVICES_JOB,
    ensure_jaeger,
    jaeger_binary,
    jaeger_config,
    prometheus_config,
    write_scrape_targets,
)
from streaming.errors import DevStackError

OTLP = "http://127.0.0.1:4318"


def _observed_state() -> StackState:
    return StackState(
        kafka=Service("kafka", "external", "127.0.0.1:9092"),
        jaeger=Service(
            "jaeger",
            "local",
            "http://127.0.0.1:16686",
            [1],
            endpoints={
                "ui": "http://127.0.0.1:16686",
                "otlp_http": OTLP,
                "metrics": "http://x:1/metrics",
            },
        ),
        prometheus=Service("prometheus", "local", "http://127.0.0.1:9090", [2]),
    )


def test_state_with_jaeger_and_prometheus_survives_a_save_and_load(tmp_path: Path) -> None:
    stack = DevStack(tmp_path)
    stack._save(_observed_state())
    loaded = stack.load()
    assert loaded is not None and loaded.jaeger is not None and loaded.prometheus is not None
    assert loaded.jaeger.endpoints["otlp_http"] == OTLP
    # stopped in reverse start order: Prometheus, Jaeger, then the rest
    assert [s.name for s in loaded.services()] == ["kafka", "jaeger", "prometheus"]


def test_dev_env_points_the_otel_sdk_variables_at_jaeger_only_when_it_runs() -> None:
    env = _observed_state().env()
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == OTLP
    assert env["OTEL_EXPORTER_OTLP_PROTOCOL"] == "http/protobuf"
    assert env["OTEL_TRACES_EXPORTER"] == env["OTEL_METRICS_EXPORTER"] == "otlp"
    plain = StackState(kafka=Service("kafka", "external", "127.0.0.1:9092")).env()
    assert not [k for k in plain if k.startswith("OTEL_")]


def test_jaeger_takes_otlp_traces_into_storage_and_metrics_out_for_prometheus() -> None:
    config = jaeger_config(otlp_http=1, otlp_grpc=2, query_http=3, query_grpc=4, metrics=5)
    pipelines = config["service"]["pipelines"]  # type: ignore[index]
    assert pipelines["traces"]["exporters"] == ["jaeger_storage_exporter"]
    assert pipelines["metrics"]["exporters"] == ["prometheus"]
    assert config["exporters"]["prometheus"]["endpoint"] == "127.0.0.1:5"  # type: ignore[index]
    query = config["extensions"]["jaeger_query"]  # type: ignore[index]
    assert query["http"]["endpoint"] == "127.0.0.1:3"


def test_prometheus_scrapes_service_targets_and_the_collector(tmp_path: Path) -> None:
    config = prometheus_config(tmp_path, "http://127.0.0.1:5/metrics")
    jobs = {j["job_name"]: j for j in config["scrape_configs"]}  # type: ignore[attr-defined]
    assert set(jobs) == {SERVICES_JOB, COLLECTOR_JOB}
    assert jobs[COLLECTOR_JOB]["static_configs"] == [{"targets": ["127.0.0.1:5"]}]
    (tmp_path / "gone.json").write_text("[]")
    write_scrape_targets(tmp_path, {"registry": "http://127.0.0.1:7/metrics"})
    assert json.loads((tmp_path / "registry.json").read_text())[0]["targets"] == ["127.0.0.1:7"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["registry.json"]


def test_a_jaeger_binary_named_by_the_environment_must_exist(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(JAEGER_BIN_ENV, str(tmp_path / "nope"))
    assert jaeger_binary() == tmp_path / "nope"
    with pytest.raises(DevStackError, match=JAEGER_BIN_ENV):
        ensure_jaeger()
