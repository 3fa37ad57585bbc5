"""The OTel SDK's per-signal exporter variables, as `dev env` exports them."""

from __future__ import annotations

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from streaming.config import OtelSettings
from streaming.telemetry import configure_telemetry


def _exporting(traces: str, metrics: str, monkeypatch: pytest.MonkeyPatch) -> tuple[bool, bool]:
    """Whether spans / metrics would go to the OTLP endpoint."""
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", traces)
    monkeypatch.setenv("OTEL_METRICS_EXPORTER", metrics)
    t = configure_telemetry(OtelSettings(), set_global=False)
    try:
        assert isinstance(t.tracer_provider, TracerProvider)
        assert isinstance(t.meter_provider, MeterProvider)
        processors = t.tracer_provider._active_span_processor._span_processors  # no public accessor
        readers = t.meter_provider._metric_readers  # nor here
        return (
            any(isinstance(p, BatchSpanProcessor) for p in processors),
            any(isinstance(r, PeriodicExportingMetricReader) for r in readers),
        )
    finally:
        t.shutdown()


def test_both_signals_go_over_otlp_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    assert _exporting("otlp", "otlp", monkeypatch) == (True, True)


def test_none_keeps_one_signal_off_the_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    assert _exporting("otlp", "none", monkeypatch) == (True, False)
    assert _exporting("none", "otlp", monkeypatch) == (False, True)
