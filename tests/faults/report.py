"""The fault table: each fault test records one row, ``make faults`` renders them.

Rows are appended as JSON lines to ``$FAULTS_RESULTS`` (nothing is written when it is
unset, e.g. in ``make test``), before the test asserts, so a failing fault still shows
its numbers. ``python -m tests.faults.report`` prints the table and writes
``tests/faults/REPORT.md`` stamped with the commit it ran on.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

REPORT = Path(__file__).with_name("REPORT.md")
COLUMNS = (
    "fault",
    "acknowledged",
    "delivered",
    "lost",
    "duplicated",
    "offsets moved back",
    "recovery s",
    "promise",
    "notes",
)


@dataclass(frozen=True)
class FaultResult:
    """One fault run. ``None`` means "does not apply" (e.g. no consumer group involved)."""

    fault: str
    acknowledged: int
    delivered: int
    lost: int
    duplicated: int
    offsets_moved_back: int | None
    recovery_s: float | None
    promise: str  # "exactly-once" or "at-least-once": what ``duplicated`` is judged by
    notes: str = ""

    def cells(self) -> list[str]:
        back = "-" if self.offsets_moved_back is None else str(self.offsets_moved_back)
        recovery = "-" if self.recovery_s is None else f"{self.recovery_s:.1f}"
        return [
            self.fault,
            str(self.acknowledged),
            str(self.delivered),
            str(self.lost),
            str(self.duplicated),
            back,
            recovery,
            self.promise,
            self.notes,
        ]


def record(result: FaultResult) -> FaultResult:
    """Append ``result`` to ``$FAULTS_RESULTS`` when set; return it for chaining."""
    path = os.environ.get("FAULTS_RESULTS")
    if path:
        with open(path, "a", encoding="utf-8") as out:
            out.write(json.dumps(asdict(result)) + "\n")
    return result


def record_bad_input(fault: str, inputs: int, accounted: int, notes: str) -> FaultResult:
    """A fuzzing row: ``accounted`` inputs were decoded, refused with a typed error or
    answered as documented; the rest count as lost. No group, no recovery."""
    return record(
        FaultResult(
            fault=f"bad input: {fault}",
            acknowledged=inputs,
            delivered=accounted,
            lost=inputs - accounted,
            duplicated=0,
            offsets_moved_back=None,
            recovery_s=None,
            promise="exactly-once",
            notes=notes,
        )
    )


def record_failure(fault: str, promise: str, exc: BaseException) -> None:
    """A row for a fault whose run broke off before it could count (FAILED in notes)."""
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    record(FaultResult(fault, 0, 0, 0, 0, None, None, promise, f"FAILED: {first[:300]}"))


def load(path: Path) -> list[FaultResult]:
    if not path.exists():
        return []
    return [FaultResult(**json.loads(line)) for line in path.read_text().splitlines() if line]


def markdown(rows: list[FaultResult]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(c.replace("|", "/") for c in r.cells()) + " |" for r in rows]
    return "\n".join(lines)


def _commit() -> str:
    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], capture_output=True, text=True, check=False
        ).stdout.strip()

    sha = git("rev-parse", "HEAD") or "unknown"
    return sha + (" (with uncommitted changes)" if git("status", "--porcelain", "--", ".") else "")


def render(results: Path, outcome: str) -> str:
    rows = load(results)
    failed = [
        r
        for r in rows
        if r.lost
        or r.offsets_moved_back
        or (r.duplicated and r.promise == "exactly-once")
        or "FAILED" in r.notes
    ]
    body = [
        "# Fault report",
        "",
        f"Commit: `{_commit()}`  ",
        f"Run: {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')} by `make faults` "
        f"(pytest: {outcome})",
        "",
        "Three local brokers (`streaming dev up --brokers 3`), topics with RF=3 and "
        "`min.insync.replicas=2`. `lost` = acknowledged but never delivered; `duplicated` = "
        "deliveries beyond the first (must be 0 where the promise is exactly-once, reported "
        "where it is at-least-once); `offsets moved back` = steps back in a group's committed "
        "offsets sampled every 100 ms by an independent AdminClient (must be 0); `recovery s` "
        "= seconds from the fault until the workload made progress again.",
        "",
        markdown(rows),
        "",
        f"{len(rows)} rows, {len(failed)} breaking a promise"
        + (": " + ", ".join(r.fault for r in failed) if failed else "."),
        "",
    ]
    return "\n".join(body)


def main(argv: list[str]) -> int:
    results = Path(argv[0]) if argv else Path(".faults/results.jsonl")
    outcome = argv[1] if len(argv) > 1 else "unknown"
    text = render(results, outcome)
    REPORT.write_text(text)
    rows = load(results)
    widths = [max([len(c), *(len(r.cells()[i]) for r in rows)]) for i, c in enumerate(COLUMNS)]
    print("  ".join(c.ljust(w) for c, w in zip(COLUMNS, widths, strict=True)))
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r.cells(), widths, strict=True)))
    print(f"\nwrote {REPORT}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
