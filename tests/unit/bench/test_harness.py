"""The bench harness's bookkeeping: lossy rounds dropped, ratios with spread, reports."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench import harness, report
from bench.bench_registry import parse_wrk
from bench.harness import Run


def _runs(*runs: Run) -> harness.Contender:
    queue: Iterator[Run] = iter(runs)

    async def contender() -> Run:
        return next(queue)

    return contender


async def test_a_round_where_any_contender_lost_records_is_dropped_and_counted() -> None:
    got = await harness.interleave(
        {
            "a": _runs(Run(10, 5, 5), Run(20, 5, 3), Run(30, 5, 5)),
            "b": _runs(Run(5, 5, 5), Run(5, 5, 5), Run(10, 5, 5)),
        },
        3,
    )

    assert got.runs == {"a": [10, 30], "b": [5, 10]}
    assert (got.dropped, got.lost_records) == (1, 2)


async def test_interleave_shuffles_the_order_per_round() -> None:
    order: list[str] = []

    def contender(name: str) -> harness.Contender:
        async def run() -> Run:
            order.append(name)
            return Run(1.0)

        return run

    await harness.interleave({n: contender(n) for n in "abcd"}, 6)

    rounds = {tuple(order[i : i + 4]) for i in range(0, len(order), 4)}
    assert len(rounds) > 1


async def test_ratio_is_the_median_of_per_round_ratios_with_min_and_max_and_its_goal() -> None:
    got = await harness.interleave(
        {
            "typed": _runs(Run(6), Run(3), Run(9)),
            "faststream": _runs(Run(2), Run(3), Run(3)),
        },
        3,
    )

    row = got.ratio("typed consumer ÷ FastStream", "typed", "faststream")

    assert (row["median"], row["min"], row["max"], row["n"]) == (3.0, 1.0, 3.0, 3)
    assert (row["goal"], row["met"]) == (">= 2", True)


async def test_extra_values_of_a_run_are_kept_per_round_beside_its_value() -> None:
    got = await harness.interleave(
        {"get": _runs(Run(9000, extra={"p99_ms": 12.0}), Run(8000, extra={"p99_ms": 8.0}))}, 2
    )

    row = got.measure("registry GET /schemas/ids p99 ms", "get p99_ms", "ms")

    assert (row["median"], row["met"], row["unit"]) == (10.0, True, "ms")


def test_a_measure_without_rounds_reports_nothing_rather_than_zero() -> None:
    row = harness.entry("typed consumer ÷ raw getmany+fastavro", [])

    assert (row["median"], row["n"], row["met"]) == (None, 0, None)


def test_publish_merges_sections_and_draws_the_chart(tmp_path: Path) -> None:
    out = tmp_path / "2026-01-01.json"
    row = harness.entry("audit sink ÷ plain sink", [0.5, 0.8, 0.75])

    harness.publish("audit_sink", {"rows": [row], "dropped_rounds": 1, "lost_records": 7}, out)
    harness.publish("serde", {"rows": [harness.entry("serde x", [1.2])]}, out)

    data = json.loads(out.read_text())
    assert set(data["sections"]) == {"audit_sink", "serde"}
    assert data["sections"]["audit_sink"]["rows"][0]["met"] is True
    assert out.with_suffix(".png").read_bytes()[:4] == b"\x89PNG"
    table = report.markdown(data)
    assert "| audit sink ÷ plain sink | 0.750 | 0.500 - 0.800 | 3 | >= 0.7 | yes |" in table
    assert "audit_sink: 1 dropped round(s), 7 lost record(s)" in table


WRK = """Running 5s test @ http://127.0.0.1:8081
  2 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.20ms  300.00us   9.80ms   90.00%
  Latency Distribution
     50%    1.10ms
     75%    1.30ms
     90%    1.60ms
     99%  850.00us
  40000 requests in 5.00s, 8.00MB read
  Non-2xx or 3xx responses: 3
  Socket errors: connect 0, read 1, write 0, timeout 2
Requests/sec:   8000.12
Transfer/sec:      1.60MB
"""


def test_wrk_report_gives_rate_p99_in_ms_and_failures() -> None:
    got = parse_wrk(WRK)

    assert got == {"requests_per_s": 8000.12, "p99_ms": 0.85, "requests": 40000, "failed": 6}


def test_an_unreadable_wrk_report_is_a_clear_error() -> None:
    with pytest.raises(SystemExit, match="could not read wrk's report"):
        parse_wrk("unable to connect to 127.0.0.1:1 Connection refused")
