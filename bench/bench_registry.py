"""Registry throughput and p99 under ``wrk -t2 -c16``: GET by id and the POST lookup.

Not a test. Starts our registry in a subprocess on a fresh store topic, registers
``--schemas`` schemas, then per round (order shuffled) drives Debian's ``wrk`` for
``--seconds`` against:

- ``GET /schemas/ids/{id}``, cycling through the ids;
- ``POST /subjects/{subject}`` (the lookup every confluent serializer makes at start),
  cycling through the subjects with their schemas (a Lua script).

Requests per second and p99 come from wrk's ``--latency`` report; a run with non-2xx
answers or socket errors lost records and its round is dropped. The registry's own CPU
time per request (``/proc``) is reported beside them: on a shared 2-core machine it is
the figure that does not depend on what else runs, and 1e6 / it is the one-core bound. A Python load generator
cannot drive the server fast enough on 2 cores, which is why wrk does it.

    python -m bench.bench_registry [--seconds 5] [--rounds 3] [--threads 2] [--connections 16]
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

import httpx
import typer

from bench import harness
from bench.harness import Run

app = typer.Typer(add_completion=False)
CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"
_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def schema(n: int) -> str:
    return json.dumps(
        {"type": "record", "name": f"Bench{n}", "fields": [{"name": "v", "type": "long"}]}
    )


def lua_get(ids: list[int]) -> str:
    paths = ", ".join(f'"/schemas/ids/{i}"' for i in ids)
    return f"""local paths = {{{paths}}}
local i = 0
request = function()
  i = i % #paths + 1
  return wrk.format("GET", paths[i])
end
"""


def lua_post(subjects: list[str], bodies: list[str]) -> str:
    items = ",\n".join(
        f'  {{"/subjects/{s}", [==[{b}]==]}}' for s, b in zip(subjects, bodies, strict=True)
    )
    return f"""local items = {{
{items}
}}
local headers = {{["Content-Type"] = "{CONTENT_TYPE}"}}
local i = 0
request = function()
  i = i % #items + 1
  return wrk.format("POST", items[i][1], headers, items[i][2])
end
"""


def parse_wrk(out: str) -> dict[str, float]:
    """Requests/s, p99 (ms), request count and failures from ``wrk --latency`` output."""
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    p99 = re.search(r"^\s*99%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
    total = re.search(r"(\d+) requests in", out)
    if not (rps and p99 and total):
        raise SystemExit(f"could not read wrk's report:\n{out}")
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    socket_errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out
    )
    failed = int(non_2xx.group(1)) if non_2xx else 0
    if socket_errors:
        failed += sum(int(g) for g in socket_errors.groups())
    return {
        "requests_per_s": float(rps.group(1)),
        "p99_ms": float(p99.group(1)) * _UNITS[p99.group(2)],
        "requests": int(total.group(1)),
        "failed": failed,
    }


def cpu_seconds(pid: int) -> float:
    """User + system CPU the process has used (all threads), from ``/proc``."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def wrk(
    url: str, script: Path, seconds: float, threads: int, connections: int, pid: int | None = None
) -> Run:
    """One wrk run; ``value`` is requests/s, ``extra`` carries the p99 in ms and, with the
    server's ``pid``, its CPU time per request (what bounds it on a busy machine)."""
    exe = shutil.which("wrk")
    if exe is None:
        raise SystemExit("wrk not found: run scripts/system-deps.sh (apt-get install wrk)")
    proc = await asyncio.create_subprocess_exec(
        exe,
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "--latency",
        "-s",
        str(script),
        url,
        stdout=asyncio.subprocess.PIPE,
    )
    cpu_before = cpu_seconds(pid) if pid is not None else 0.0
    stdout, _ = await asyncio.wait_for(proc.communicate(), seconds + 60)
    got = parse_wrk(stdout.decode())
    extra = {"p99_ms": got["p99_ms"]}
    if pid is not None and got["requests"]:
        extra["cpu_us"] = (cpu_seconds(pid) - cpu_before) / got["requests"] * 1e6
    return Run(
        got["requests_per_s"],
        expected=int(got["requests"]),
        seen=int(got["requests"] - got["failed"]),
        extra=extra,
    )


async def register(url: str, count: int) -> tuple[Path, Path]:
    """Register ``count`` schemas; write the GET and POST Lua scripts for them."""
    subjects = [f"bench-{n}" for n in range(count)]
    bodies = [json.dumps({"schema": schema(n)}) for n in range(count)]
    ids = []
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        for subject, body in zip(subjects, bodies, strict=True):
            r = await client.post(
                f"/subjects/{subject}/versions",
                content=body,
                headers={"Content-Type": CONTENT_TYPE},
            )
            r.raise_for_status()
            ids.append(int(r.json()["id"]))
    folder = Path(tempfile.mkdtemp(prefix="bench-wrk-"))
    get, post = folder / "get.lua", folder / "post.lua"
    get.write_text(lua_get(ids))
    post.write_text(lua_post(subjects, bodies))
    return get, post


async def measure(
    seconds: float, rounds: int, threads: int, connections: int, schemas: int
) -> dict[str, Any]:
    bootstrap = harness.env("KAFKA_BOOTSTRAP_SERVERS")
    async with harness.registry_process(bootstrap) as (url, proc):
        get, post = await register(url, schemas)
        await wrk(url, get, 1, threads, connections)  # warm-up

        async def get_run() -> Run:
            return await wrk(url, get, seconds, threads, connections, proc.pid)

        async def post_run() -> Run:
            return await wrk(url, post, seconds, threads, connections, proc.pid)

        got = await harness.interleave({"get": get_run, "post": post_run}, rounds)
    return {
        "params": {
            "seconds": seconds,
            "rounds": rounds,
            "threads": threads,
            "connections": connections,
            "schemas": schemas,
        },
        "rows": [
            got.measure("registry GET /schemas/ids req/s", "get", "req/s"),
            got.measure("registry GET /schemas/ids p99 ms", "get p99_ms", "ms"),
            got.measure("registry POST /subjects lookup req/s", "post", "req/s"),
            got.measure("registry POST /subjects lookup p99 ms", "post p99_ms", "ms"),
            got.measure("registry GET /schemas/ids server CPU per request", "get cpu_us", "us"),
            got.measure("registry POST /subjects server CPU per request", "post cpu_us", "us"),
        ],
        **got.summary(),
    }


@app.command()
def main(
    seconds: float = typer.Option(5.0, min=1, help="Seconds per wrk run."),
    rounds: int = typer.Option(3, min=1, help="Interleaved rounds (medians)."),
    threads: int = typer.Option(2, min=1, help="wrk -t"),
    connections: int = typer.Option(16, min=1, help="wrk -c"),
    schemas: int = typer.Option(20, min=1, help="Schemas registered and cycled through."),
    out: Path | None = harness.OUT_OPTION,
) -> None:
    harness.run("registry", measure(seconds, rounds, threads, connections, schemas), out)


if __name__ == "__main__":
    app()
