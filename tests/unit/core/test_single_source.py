"""Each shared mechanism exists once: nothing outside ``streaming/core`` re-spells it.

Reads the source of ``streaming/`` and ``connectors/`` (AST, so comments and docstrings
may still mention names) and fails on a header name or internal topic name written as a
string literal, a hand-written compaction config, or hand-rolled exponential backoff.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

from streaming.core import headers, topics

ROOT = Path(__file__).resolve().parents[3]
HEADER_NAMES = {v for k, v in vars(headers).items() if k.startswith(("H_", "HTTP_"))}
TOPIC_NAMES = {
    topics.SCHEMAS_TOPIC,
    topics.REVOCATIONS_TOPIC,
    topics.SUBJECT_KEYS_TOPIC,
    *topics.COMMAND_TOPICS,
}
ALLOWED = {
    # the registry's HTTP request header, not a Kafka record header
    ("streaming/registry/app.py", "content-type"),
    # the bundled-schemas directory inside the wheel, not the topic
    ("streaming/serde/catalog.py", "_schemas"),
    # the in-memory broker emulates compaction by reading the policy
    ("streaming/transport/_memory_broker.py", "compact"),
}


def _sources() -> Iterator[tuple[str, ast.AST]]:
    for package in ("streaming", "connectors"):
        for path in sorted((ROOT / package).rglob("*.py")):
            relative = path.relative_to(ROOT).as_posix()
            if not relative.startswith("streaming/core/"):
                yield relative, ast.parse(path.read_text(encoding="utf-8"))


def _findings() -> list[tuple[str, int, str]]:
    found = []
    for path, tree in _sources():
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                text = node.value
                if text in HEADER_NAMES | TOPIC_NAMES or text == "compact":
                    found.append((path, node.lineno, text))
            elif (
                isinstance(node, ast.BinOp)
                and isinstance(node.op, ast.Pow)
                and isinstance(node.left, ast.Constant)
                and node.left.value == 2
                and not isinstance(node.right, ast.Constant)
            ):
                found.append((path, node.lineno, "2 ** n (use streaming.core.backoff)"))
    return [f for f in found if (f[0], f[2]) not in ALLOWED]


def test_headers_topics_compaction_and_backoff_are_only_spelt_in_core() -> None:
    assert _findings() == []
