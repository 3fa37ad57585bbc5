"""Issue 16: the operator commands as a person runs them, in a child process against the
real broker and registry; what they wrote is read back with confluent-kafka."""

from __future__ import annotations

import base64
import io
import json
import random
import re
import shlex
import signal
import subprocess
import time
import uuid

import fastavro
import httpx
import pytest
from confluent_kafka import Consumer
from confluent_kafka import TopicPartition as CTopicPartition

from streaming.cli._common import ExitCode
from streaming.clients.producer import EventProducer
from streaming.errors import TopicError
from streaming.events import OrderPlaced
from streaming.events.fake import fake_events
from streaming.serde.client import SchemaRegistryClient
from streaming.testing import StackEndpoints, eventually_sync
from streaming.transport.kafka import KafkaTransport
from tests.integration.replay.operator import (
    STREAMING,
    cli,
    cli_env,
    create_topic,
    delete_topics,
    end_offsets,
    one_line,
    produce,
    read_values,
    said,
    startup_s,
    topics,
)

ISO_8601 = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)")


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def _commit(bootstrap: str, group: str, topic: str, offsets: dict[int, int]) -> None:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        consumer.commit(
            offsets=[CTopicPartition(topic, p, o) for p, o in offsets.items()], asynchronous=False
        )
    finally:
        consumer.close()


# -- 2. a replay cannot double ----------------------------------------------------------


def test_the_same_replay_twice_writes_the_range_once(streaming_stack: StackEndpoints) -> None:
    bs = streaming_stack.bootstrap_servers
    source = create_topic(bs, _name("op-replay"), 2)
    copy = f"{source}-copy"
    produce(bs, source, [(f"k{i}".encode(), f"v{i}".encode()) for i in range(50)])
    env = cli_env(bs)
    args = ["replay", "--topic", source, "--to", copy, "--create-target", "--audit", "log"]
    try:
        first = cli(*args, "--json", env=env)
        assert first.returncode == 0, first.stderr
        assert json.loads(first.stdout)["written"] == 50
        again = cli(*args, env=env)
        assert again.returncode == 0, again.stderr
        assert "already finished" in again.stderr and "nothing to do" in again.stderr
        assert len(read_values(bs, copy)) == 50
        # a deliberate re-run names a new id
        forced = cli(*args, "--replay-id", _name("on-purpose"), "--json", env=env)
        assert forced.returncode == 0, forced.stderr
        assert json.loads(forced.stdout)["written"] == 50
        assert len(read_values(bs, copy)) == 100
    finally:
        delete_topics(bs, source, copy)


def test_sigint_mid_replay_prints_the_command_that_resumes_it(
    streaming_stack: StackEndpoints,
) -> None:
    bs = streaming_stack.bootstrap_servers
    source = create_topic(bs, _name("op-sigint"), 2)
    copy = f"{source}-copy"
    sent = [f"v{i}".encode() for i in range(3_000)]
    produce(bs, source, [(f"k{i % 97}".encode(), v) for i, v in enumerate(sent)])
    env = cli_env(bs)
    args = ["replay", "--topic", source, "--to", copy, "--create-target", "--audit", "log"]
    proc = subprocess.Popen(
        [*STREAMING, *args, "--rate", "200"],  # ~15 s: time to be interrupted, even if slow
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # A shell that runs the suite in the background hands its children SIGINT ignored,
        # and Python keeps an ignored SIGINT ignored: give the replay Ctrl-C as a terminal does.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        eventually_sync(
            lambda: sum(end_offsets(bs, copy).values()) if copy in topics(bs) else 0,
            until=lambda n: n > 0,
            timeout_s=60,
            what="the replay's first batches in the target",
        )
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
        assert proc.returncode == ExitCode.INTERRUPTED, stderr
        lines = [line for line in stderr.splitlines() if "resume with:" in line]
        assert len(lines) == 1, stderr
        command = shlex.split(lines[0].split("resume with:", 1)[1])
        assert command[:2] == ["streaming", "replay"], command
        assert len(read_values(bs, copy)) < len(sent), "the replay was not interrupted"
        resumed = cli(*command[1:], "--json", env=env)
        assert resumed.returncode == 0, resumed.stderr
        assert json.loads(resumed.stdout)["resumed"] is True
        assert sorted(read_values(bs, copy)) == sorted(sent)  # each record exactly once
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        delete_topics(bs, source, copy)


# -- 3. a snapshot name is not silently replaced ----------------------------------------


def test_a_second_snapshot_of_the_same_name_is_refused_unless_forced(
    streaming_stack: StackEndpoints,
) -> None:
    bs = streaming_stack.bootstrap_servers
    topic, group = create_topic(bs, _name("op-snap")), _name("g")
    produce(bs, topic, [(None, b"x")] * 10)
    _commit(bs, group, topic, {0: 3})
    env = cli_env(bs)
    snap = ["offsets", "snapshot", "-g", group, "-n", "pre"]
    try:
        assert cli(*snap, env=env).returncode == 0
        _commit(bs, group, topic, {0: 7})
        second = cli(*snap, env=env)
        assert second.returncode == ExitCode.REFUSED, second.stderr
        assert "--force" in one_line(second.stderr) and "'pre'" in second.stderr

        def committed() -> int:
            listed = cli("offsets", "list", "-g", group, "--json", env=env)
            return int(json.loads(listed.stdout)[0]["partitions"][0]["committed"])

        assert committed() == 3
        forced = cli(*snap, "--force", env=env)
        assert forced.returncode == 0, forced.stderr
        assert committed() == 7
    finally:
        cli("offsets", "delete", "-g", group, "-n", "pre", env=env)
        delete_topics(bs, topic)


# -- 4. table dump decodes Avro ---------------------------------------------------------


ORDER = {
    "type": "record",
    "name": "OpOrder",
    "fields": [
        {"name": "id", "type": "string"},
        {"name": "qty", "type": "int"},
        {"name": "price", "type": "double"},
    ],
}


def test_table_dump_decodes_avro_through_the_registry_and_raw_keeps_bytes(
    streaming_stack: StackEndpoints, registry_url: str
) -> None:
    bs = streaming_stack.bootstrap_servers
    topic = create_topic(bs, _name("op-table"), config={"cleanup.policy": "compact"})
    registered = httpx.post(
        f"{registry_url}/subjects/{topic}-value/versions",
        json={"schema": json.dumps(ORDER)},
        timeout=10,
    )
    registered.raise_for_status()
    schema_id = int(registered.json()["id"])
    body = io.BytesIO()
    fastavro.schemaless_writer(
        body, fastavro.parse_schema(ORDER), {"id": "o-1", "qty": 3, "price": 2.5}
    )
    framed = b"\x00" + schema_id.to_bytes(4, "big") + body.getvalue()
    produce(bs, topic, [(b"k1", framed), (b"k2", b"plain text")])
    env = cli_env(bs, REGISTRY_URL=registry_url)
    try:
        dump = cli("table", "dump", "--topic", topic, "--json", env=env)
        assert dump.returncode == 0, dump.stderr
        assert json.loads(dump.stdout) == {
            "k1": {"id": "o-1", "qty": 3, "price": 2.5},
            "k2": "plain text",
        }
        raw = cli("table", "dump", "--topic", topic, "--raw", "--json", env=env)
        assert raw.returncode == 0, raw.stderr
        assert json.loads(raw.stdout)["k1"] == "base64:" + base64.b64encode(framed).decode()
    finally:
        delete_topics(bs, topic)


# -- 5. bounds are validated; per-partition bounds --------------------------------------


def test_contradictory_bounds_exit_2_and_per_partition_bounds_are_exact(
    streaming_stack: StackEndpoints,
) -> None:
    bs = streaming_stack.bootstrap_servers
    source = create_topic(bs, _name("op-bounds"), 2)
    copy = f"{source}-copy"
    for p in (0, 1):
        produce(bs, source, [(None, f"p{p}-{i}".encode()) for i in range(10)], partition=p)
    env = cli_env(bs)
    base = ["replay", "--topic", source, "--to", copy, "--audit", "log"]
    try:
        backwards = cli(*base, "--from", "50", "--until", "10", env=env)
        assert backwards.returncode == ExitCode.USAGE, backwards.stderr
        assert "--from 50" in one_line(backwards.stderr)
        both = cli(*base, "--from", "0", "--from-snapshot", "g:s", env=env)
        assert both.returncode == ExitCode.USAGE, both.stderr
        assert "--from-snapshot" in one_line(both.stderr)
        malformed = cli(*base, "--from", "0:x", env=env)
        assert malformed.returncode == ExitCode.USAGE, malformed.stderr
        assert "P:OFFSET" in one_line(malformed.stderr)
        per_partition_backwards = cli(*base, "--from", "0:5", "--until", "0:2", env=env)
        assert per_partition_backwards.returncode == ExitCode.USAGE
        assert copy not in topics(bs)

        done = cli(
            *base, "--create-target", "--from", "0:5,1:8", "--until", "0:9", "--json", env=env
        )
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["written"] == 6
        assert sorted(read_values(bs, copy)) == sorted(
            [f"p0-{i}".encode() for i in range(5, 9)] + [b"p1-8", b"p1-9"]
        )
    finally:
        delete_topics(bs, source, copy)


# -- 6. piped output is neither wrapped nor truncated -----------------------------------


def test_piped_output_keeps_long_names_whole_and_prints_iso_times(
    streaming_stack: StackEndpoints,
) -> None:
    bs = streaming_stack.bootstrap_servers
    topic = create_topic(bs, _name("op-wide"))
    group = "payments-settlement-" * 6 + uuid.uuid4().hex
    produce(bs, topic, [(None, b"x")] * 3)
    _commit(bs, group, topic, {0: 2})
    env = {**cli_env(bs), "COLUMNS": "80"}
    try:
        assert (
            cli("offsets", "snapshot", "-g", group, "-n", "before-deploy", env=env).returncode == 0
        )
        listed = cli("offsets", "list", "-g", group, env=env)
        assert listed.returncode == 0, listed.stderr
        rows = [line for line in listed.stdout.splitlines() if group in line]
        assert len(rows) == 1, listed.stdout
        assert "before-deploy" in rows[0] and ISO_8601.search(rows[0]), rows[0]
        assert "…" not in listed.stdout
        bad = cli(
            "replay", "--topic", group, "--to", f"{group}-x", "--from", "9", "--until", "1", env=env
        )
        assert bad.returncode == ExitCode.USAGE
        assert group in one_line(bad.stderr) or "--from 9" in one_line(bad.stderr)
        # a long hint stays on one line too
        missing = cli("offsets", "reset", "-g", group, "--from-snapshot", "x" * 120, env=env)
        assert missing.returncode == ExitCode.USAGE
        assert f"offsets list --group {group}" in one_line(missing.stderr)
    finally:
        cli("offsets", "delete", "-g", group, "-n", "before-deploy", env=env)
        delete_topics(bs, topic)


# -- 7. producing to a missing topic fails fast -----------------------------------------


def test_produce_to_a_missing_topic_fails_within_3s_with_one_line(
    streaming_stack: StackEndpoints, registry_url: str
) -> None:
    bs = streaming_stack.bootstrap_servers
    missing = _name("op-missing")
    env = cli_env(bs, REGISTRY_URL=registry_url)
    floor = startup_s(env)
    started = time.perf_counter()
    done = cli("produce", "--topic", missing, "--type", "OrderPlaced", "--fake", "3", env=env)
    elapsed = time.perf_counter() - started - floor
    assert done.returncode == ExitCode.FAILED, done.stderr
    line = one_line(done.stderr)
    assert "create it first" in line and missing in line, line
    assert elapsed < 3.0, f"took {elapsed:.1f}s beyond start-up"
    assert missing not in topics(bs)


async def test_event_producer_to_a_missing_topic_raises_at_once(
    kafka_transport: KafkaTransport, schema_registry: SchemaRegistryClient
) -> None:
    missing = _name("op-missing")
    event = next(iter(fake_events(OrderPlaced, 1, rng=random.Random(1))))
    async with EventProducer(kafka_transport, schema_registry) as producer:
        started = time.perf_counter()
        with pytest.raises(TopicError, match="create it first"):
            await producer.send(missing, event)
        assert time.perf_counter() - started < 3.0


# -- 9. progress on a terminal, nothing extra when piped --------------------------------


def test_replay_progress_shows_on_a_terminal_and_nothing_extra_when_piped(
    streaming_stack: StackEndpoints,
) -> None:
    bs = streaming_stack.bootstrap_servers
    source = create_topic(bs, _name("op-progress"))
    produce(bs, source, [(None, f"v{i}".encode()) for i in range(3000)])
    env = cli_env(bs)
    try:
        piped = cli(
            "replay",
            "--topic",
            source,
            "--to",
            f"{source}-a",
            "--create-target",
            "--audit",
            "log",
            env=env,
        )
        assert piped.returncode == 0, piped.stderr
        lines = said(piped.stderr)
        assert len(lines) == 2, piped.stderr  # the id and the outcome, nothing else
        assert lines[-1].startswith("replayed 3000 records")
        assert "━" not in piped.stderr and "\r" not in piped.stderr and "\x1b" not in piped.stderr

        command = [
            *STREAMING,
            "replay",
            "--topic",
            source,
            "--to",
            f"{source}-b",
            "--create-target",
            "--audit",
            "log",
        ]
        tty = subprocess.run(
            ["script", "-q", "-e", "-c", shlex.join(command), "/dev/null"],
            capture_output=True,
            text=True,
            env={**env, "TERM": "xterm"},
            timeout=120,
            check=False,
        )
        assert tty.returncode == 0, tty.stdout
        assert re.search(r"3,?000/3,?000", tty.stdout), tty.stdout
        assert re.search(r"[\d,.]+ rec/s", tty.stdout), tty.stdout
    finally:
        delete_topics(bs, source, f"{source}-a", f"{source}-b")


def test_dlq_redrive_piped_prints_no_progress_artefacts(streaming_stack: StackEndpoints) -> None:
    bs = streaming_stack.bootstrap_servers
    topic, group = _name("op-dlq"), "g"
    create_topic(bs, topic)
    dlq = create_topic(bs, f"{topic}.{group}.dlq")
    produce(bs, dlq, [(None, f"v{i}".encode()) for i in range(200)])
    env = cli_env(bs)
    try:
        done = cli(
            "dlq", "redrive", "-t", topic, "-g", group, "--execute", "--audit", "log", env=env
        )
        assert done.returncode == 0, done.stderr
        assert [line[:11] for line in said(done.stderr)] == ["redrove 200"], done.stderr
        assert "━" not in done.stderr and "\r" not in done.stderr
    finally:
        delete_topics(bs, topic, dlq, f"{topic}.{group}.parking")
