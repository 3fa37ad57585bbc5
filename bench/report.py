"""Table, chart and README block from a results file (``bench/results/<date>.json``).

    python -m bench.report [results.json] [--readme]

Every section's ``rows`` are measures from :func:`bench.harness.entry`; the chart puts
each measure that has a goal on one axis as "fraction of its goal" (1.0 = goal met), with
the min-max of the kept rounds as whiskers.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

from rich.table import Table

from bench.harness import GOALS, RESULTS, ROOT, console

README = ROOT / "bench" / "README.md"
BEGIN, END = "<!-- bench-results:begin -->", "<!-- bench-results:end -->"


def rows(data: dict[str, Any], only: str | None = None) -> list[tuple[str, dict[str, Any]]]:
    return [
        (section, row)
        for section, payload in data.get("sections", {}).items()
        if only is None or section == only
        for row in payload.get("rows", [])
    ]


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.2f}" if abs(value) >= 1 else f"{value:.3f}"


def _cells(row: dict[str, Any]) -> list[str]:
    unit = f" {row['unit']}" if row.get("unit") else ""
    met = {True: "yes", False: "NO", None: ""}[row.get("met")]
    return [
        row["name"],
        _fmt(row["median"]) + unit,
        f"{_fmt(row['min'])} - {_fmt(row['max'])}",
        str(row["n"]),
        row.get("goal") or "",
        met,
    ]


HEADERS = ("measure", "median", "min - max", "rounds", "goal", "met")


def print_table(data: dict[str, Any], only: str | None = None) -> None:
    table = Table(*HEADERS, title=f"bench @ {data.get('commit', '?')}")
    for section, row in rows(data, only):
        table.add_row(*_cells(row), style=None if section == only or only is None else "dim")
    console.print(table)
    for section, payload in data.get("sections", {}).items():
        if (only is None or section == only) and payload.get("dropped_rounds"):
            console.print(
                f"{section}: {payload['dropped_rounds']} round(s) dropped, "
                f"{payload['lost_records']} record(s) lost"
            )


def markdown(data: dict[str, Any]) -> str:
    lines = ["| " + " | ".join(HEADERS) + " |", "|" + "---|" * len(HEADERS)]
    lines += ["| " + " | ".join(_cells(row)) + " |" for _, row in rows(data)]
    dropped = [
        f"{section}: {p['dropped_rounds']} dropped round(s), {p['lost_records']} lost record(s)"
        for section, p in data.get("sections", {}).items()
        if p.get("dropped_rounds")
    ]
    return "\n".join(lines + (["", *dropped] if dropped else []))


def _fraction(row: dict[str, Any], value: float) -> float:
    goal = GOALS[row["name"]]
    if goal.op == ">=":
        return value / goal.value
    return goal.value / value if value else float("inf")


def _load_note(data: dict[str, Any]) -> str:
    machine = data.get("machine", {})
    load, cpus = machine.get("loadavg_1m"), machine.get("cpus")
    if load is None or not cpus or load <= cpus:
        return ""
    return f" (load {load:.1f} on {cpus} CPUs: not representative)"


def chart(data: dict[str, Any], png: Path) -> None:
    """One horizontal bar per measure with a goal: the median as a fraction of its goal."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    goal_rows = [row for _, row in rows(data) if row["name"] in GOALS and row["median"]]
    height = 1.2 + 0.42 * max(1, len(goal_rows))
    fig, ax = plt.subplots(figsize=(10, height))
    names = [row["name"] for row in goal_rows]
    fractions = [_fraction(row, row["median"]) for row in goal_rows]
    lows = [min(_fraction(r, r["min"]), _fraction(r, r["max"])) for r in goal_rows]
    highs = [max(_fraction(r, r["min"]), _fraction(r, r["max"])) for r in goal_rows]
    errors = [
        [f - lo for f, lo in zip(fractions, lows, strict=True)],
        [hi - f for f, hi in zip(fractions, highs, strict=True)],
    ]
    colours = ["#2e7d32" if row["met"] else "#c62828" for row in goal_rows]
    ys = range(len(goal_rows))
    ax.barh(list(ys), fractions, xerr=errors, color=colours, capsize=3)
    ax.axvline(1.0, color="black", linestyle="--", linewidth=1)
    for y, row, hi in zip(ys, goal_rows, highs, strict=True):  # right of the whisker
        ax.text(hi, y, f"  {_fmt(row['median'])} (goal {row['goal']})", va="center", fontsize=8)
    ax.set_yticks(list(ys), names, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("median as a fraction of its goal (1.0 = goal met; whiskers: min-max)")
    ax.set_xlim(0, max([1.2, *highs]) * 1.35)
    ax.set_title(f"bench {png.stem} @ {data.get('commit', '?')}{_load_note(data)}", fontsize=10)
    fig.tight_layout()
    fig.savefig(png, dpi=110)
    plt.close(fig)


def update_readme(data: dict[str, Any], results: Path) -> None:
    """Replace the generated block of bench/README.md with this run's chart and table."""
    png = results.with_suffix(".png").resolve().relative_to(README.parent)
    load = data.get("machine", {}).get("loadavg_1m")
    block = "\n".join(
        [
            BEGIN,
            f"Run of {data.get('written_at', '?')} at commit `{data.get('commit', '?')}` "
            f"(1-minute load average when written: {load:.1f} on "
            f"{data.get('machine', {}).get('cpus', '?')} CPUs)"
            + (
                ". The machine was loaded: these numbers are not representative."
                if _load_note(data)
                else "."
            ),
            "",
            f"![ratios against their goals]({png})",
            "",
            markdown(data),
            END,
        ]
    )
    text = README.read_text()
    pattern = re.compile(re.escape(BEGIN) + ".*?" + re.escape(END), re.S)
    README.write_text(pattern.sub(lambda _: block, text) if pattern.search(text) else text + block)


def latest() -> Path:
    files = sorted(RESULTS.glob("*.json"))
    if not files:
        raise SystemExit("no results yet: run `make bench`")
    return files[-1]


def main(argv: list[str]) -> None:
    paths = [Path(a) for a in argv if not a.startswith("--")]
    results = paths[0] if paths else latest()
    data = json.loads(results.read_text())
    print_table(data)
    chart(data, results.with_suffix(".png"))
    if "--readme" in argv:
        update_readme(data, results)


if __name__ == "__main__":
    main(sys.argv[1:])
