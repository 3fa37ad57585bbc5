"""Every benchmark runs end to end at a tiny size, so none rots between `make bench` runs.

Each runs as `make bench` runs it (a subprocess against the real stack) and must write its
section of the results file with every measure it promises and a chart. The numbers are
not checked: at this size they mean nothing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from streaming.testing import StackEndpoints

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def _sizes(*labels: str, rows: tuple[str, ...]) -> list[str]:
    return [row.format(label) for label in labels for row in rows]


PRODUCER_ROWS = (
    "typed send loop ÷ raw aiokafka send() ({})",
    "typed send loop ÷ confluent typed ({})",
    "typed send_many ÷ raw aiokafka send() ({})",
    "typed send_many ÷ confluent typed ({})",
    "raw aiokafka ÷ Kafka ProducerPerformance ({})",
)
CASES = {
    "producer": (
        ["--messages", "200", "--rounds", "1"],
        [
            *_sizes("100 B", rows=PRODUCER_ROWS),
            "typed send_many, marked fields encrypted ÷ in clear (UserRegistered)",
            *_sizes("1 KiB", rows=PRODUCER_ROWS),
        ],
    ),
    "consumer": (
        ["--messages", "300", "--rounds", "1", "--deadline", "60"],
        [
            "typed consumer ÷ raw getmany+fastavro",
            "typed consumer ÷ FastStream",
            "typed consumer ÷ raw getmany",
            "typed batch consumer ÷ raw getmany+fastavro",
            "typed batch consumer ÷ FastStream",
            "raw getmany ÷ Kafka ConsumerPerformance",
            "typed consumer ÷ raw getmany+fastavro, per CPU-second",
            "typed batch consumer ÷ raw getmany+fastavro, per CPU-second",
            "typed consumer ÷ FastStream, per CPU-second",
        ],
    ),
    "audit_sink": (
        ["--events", "300", "--batch", "100", "--rounds", "1", "--deadline", "60"],
        [
            "audit sink ÷ plain sink",
            "audit sink ÷ COPY",
            "plain sink ÷ COPY",
            "audit sink ÷ plain sink, per CPU-second",
            "audit sink rows per CPU-second",
            "plain sink rows per CPU-second",
        ],
    ),
    "registry": (
        ["--seconds", "1", "--rounds", "1", "--schemas", "3"],
        [
            "registry GET /schemas/ids req/s",
            "registry GET /schemas/ids p99 ms",
            "registry POST /subjects lookup req/s",
            "registry POST /subjects lookup p99 ms",
            "registry GET /schemas/ids server CPU per request",
            "registry POST /subjects server CPU per request",
        ],
    ),
    "latency": (
        ["--rates", "200", "--seconds", "0.5", "--rounds", "1"],
        _sizes(
            "200 msg/s",
            rows=(
                "e2e p50 typed ÷ raw ({})",
                "e2e p99 typed ÷ raw ({})",
                "e2e p50 typed ({})",
                "e2e p99 typed ({})",
                "e2e p50 raw ({})",
                "e2e p99 raw ({})",
            ),
        ),
    ),
    "memory": (
        ["--records", "500", "--registry-seconds", "1", "--deadline", "60"],
        [
            f"{service} RSS {measure}"
            for service in ("consumer", "sink", "registry")
            for measure in ("last ÷ first", "after warm-up", "at the end")
        ],
    ),
    "serde": (
        ["--records", "200", "--repeats", "1"],
        [
            f"serde {op}: ours ÷ bare fastavro, time per record"
            for op in (
                "serialize dict",
                "deserialize dict",
                "serialize event (typed)",
                "deserialize event (typed)",
            )
        ],
    ),
}
ROW_KEYS = {"name", "median", "min", "max", "n", "unit", "goal", "met"}


@pytest.mark.timeout(420)
@pytest.mark.parametrize("section", list(CASES))
def test_bench_writes_its_section_with_every_measure_and_a_chart(
    section: str, streaming_stack: StackEndpoints, tmp_path: Path
) -> None:
    args, names = CASES[section]
    out = tmp_path / "results.json"
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": streaming_stack.bootstrap_servers,
        "DATABASE_URL": streaming_stack.database_url,
    }

    done = subprocess.run(
        [sys.executable, "-m", f"bench.bench_{section}", *args, "--out", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=400,
        check=False,
    )

    assert done.returncode == 0, done.stderr[-3000:]
    payload = json.loads(out.read_text())["sections"][section]
    assert [row["name"] for row in payload["rows"]] == names
    assert all(set(row) >= ROW_KEYS for row in payload["rows"])
    assert {"dropped_rounds", "lost_records"} <= set(payload)
    assert out.with_suffix(".png").read_bytes()[:4] == b"\x89PNG"
