"""``dev up --observability``: a real trace backend (Jaeger) and Prometheus beside the stack.

Jaeger v2 is an OpenTelemetry Collector distribution, so one process takes every OTLP
signal the stack's processes send: traces into its in-memory store (UI and the
``/api/traces`` / ``/api/v3`` query API), metrics re-exposed for Prometheus (its
``prometheus`` exporter, scraped as the ``otel-collector`` job, as in ``deploy/``).
Prometheus also scrapes the ``/metrics`` of every service the stack starts (file service
discovery, job ``tradesense-streaming``, what the shipped dashboards select on).

Jaeger is built once from its Go module with the local Go toolchain and cached under the
user cache dir (``make install`` does it ahead of time; a few minutes on two cores);
``STREAMING_JAEGER_BIN`` names a binary of your own instead. Prometheus is Debian's.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

import platformdirs

from streaming.devstack.procs import (
    Progress,
    free_port,
    pid_alive,
    port_open,
    require_tool,
    spawn,
    tail,
    wait_until,
)
from streaming.errors import DevStackError

#: The Go module version of Jaeger (its v2 binary, ``cmd/jaeger``, is built from it).
JAEGER_MODULE = "github.com/jaegertracing/jaeger"
JAEGER_VERSION = "v1.76.0"
JAEGER_BIN_ENV = "STREAMING_JAEGER_BIN"
# A module of our own that requires Jaeger (its go.mod has a replace directive, so
# `go install pkg@version` refuses it); the replace is copied from Jaeger's go.mod.
_BUILD_GO_MOD = """module tradesense-streaming/jaeger-build

go 1.24.6

replace github.com/Shopify/sarama => github.com/Shopify/sarama v1.33.0
"""
_GO_FIX = (
    "install Go 1.24+ (https://go.dev/doc/install; 'make install' builds Jaeger with it) "
    f"or point {JAEGER_BIN_ENV} at a Jaeger v2 binary"
)

#: The scrape job of services' own /metrics and of the collector's re-exposed OTLP metrics.
SERVICES_JOB = "tradesense-streaming"
COLLECTOR_JOB = "otel-collector"
SCRAPE_INTERVAL = "5s"


def jaeger_cache_dir() -> Path:
    return Path(platformdirs.user_cache_dir("tradesense-streaming")) / "jaeger" / JAEGER_VERSION


def jaeger_binary() -> Path:
    """Where the Jaeger binary is (or will be, once built)."""
    override = os.environ.get(JAEGER_BIN_ENV)
    return Path(override) if override else jaeger_cache_dir() / "jaeger"


def _go() -> str:
    found = shutil.which("go") or (
        "/usr/local/go/bin/go" if Path("/usr/local/go/bin/go").is_file() else None
    )
    if found is None:
        raise DevStackError(f"go not found, needed to build Jaeger once: {_GO_FIX}")
    return found


def ensure_jaeger(progress: Progress = lambda _: None) -> Path:
    """The Jaeger binary, built from its Go module into the cache the first time."""
    binary = jaeger_binary()
    if binary.is_file() and os.access(binary, os.X_OK):
        return binary
    if os.environ.get(JAEGER_BIN_ENV):
        raise DevStackError(f"{JAEGER_BIN_ENV}={binary} is not an executable file")
    go = _go()
    progress(f"building Jaeger ({JAEGER_MODULE} {JAEGER_VERSION}) with Go, once; takes minutes")
    started = time.monotonic()
    binary.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="jaeger-build-") as tmp:
        (Path(tmp) / "go.mod").write_text(_BUILD_GO_MOD)
        partial = binary.with_name(f".{binary.name}.partial")
        pkg = f"{JAEGER_MODULE}/cmd/jaeger"
        for argv in (
            [go, "get", "-tool", f"{pkg}@{JAEGER_VERSION}"],
            [go, "build", "-trimpath", "-o", str(partial), pkg],
        ):
            done = subprocess.run(
                argv,
                cwd=tmp,
                capture_output=True,
                text=True,
                check=False,
                env={**os.environ, "GOFLAGS": "-buildvcs=false"},
            )
            if done.returncode != 0:
                raise DevStackError(
                    f"building Jaeger failed ({' '.join(argv[1:3])}): "
                    f"{done.stderr.strip()[-2000:]}\n{_GO_FIX}"
                )
        partial.replace(binary)
    progress(f"built Jaeger in {time.monotonic() - started:.0f}s: {binary}")
    return binary


# --------------------------------------------------------------------------- configs


def jaeger_config(
    *, otlp_http: int, otlp_grpc: int, query_http: int, query_grpc: int, metrics: int
) -> dict[str, object]:
    """Jaeger v2 (a collector): OTLP in on loopback, traces to memory, metrics to a
    Prometheus exporter; no telemetry of its own on fixed ports."""
    loopback = "127.0.0.1"
    return {
        "service": {
            "extensions": ["jaeger_storage", "jaeger_query"],
            "pipelines": {
                "traces": {
                    "receivers": ["otlp"],
                    "processors": ["batch"],
                    "exporters": ["jaeger_storage_exporter"],
                },
                "metrics": {
                    "receivers": ["otlp"],
                    "processors": ["batch"],
                    "exporters": ["prometheus"],
                },
            },
            "telemetry": {"metrics": {"level": "none"}, "logs": {"level": "warn"}},
        },
        "extensions": {
            "jaeger_storage": {"backends": {"memstore": {"memory": {"max_traces": 100_000}}}},
            "jaeger_query": {
                "storage": {"traces": "memstore"},
                "http": {"endpoint": f"{loopback}:{query_http}"},
                "grpc": {"endpoint": f"{loopback}:{query_grpc}"},
            },
        },
        "receivers": {
            "otlp": {
                "protocols": {
                    "grpc": {"endpoint": f"{loopback}:{otlp_grpc}"},
                    "http": {"endpoint": f"{loopback}:{otlp_http}"},
                }
            }
        },
        "processors": {"batch": {"timeout": "200ms"}},
        "exporters": {
            "jaeger_storage_exporter": {"trace_storage": "memstore"},
            "prometheus": {
                "endpoint": f"{loopback}:{metrics}",
                "resource_to_telemetry_conversion": {"enabled": True},
            },
        },
    }


def prometheus_config(targets_dir: Path, collector_metrics: str | None) -> dict[str, object]:
    """The shipped layout (deploy/prometheus): services' own /metrics by file service
    discovery, the collector's re-exposed OTLP metrics (its /metrics URL) statically."""
    jobs: list[dict[str, object]] = [
        {
            "job_name": SERVICES_JOB,
            "file_sd_configs": [{"files": [str(targets_dir / "*.json")], "refresh_interval": "5s"}],
        }
    ]
    if collector_metrics:
        jobs.append(
            {
                "job_name": COLLECTOR_JOB,
                "honor_labels": True,
                "static_configs": [{"targets": [urlsplit(collector_metrics).netloc]}],
            }
        )
    return {
        "global": {"scrape_interval": SCRAPE_INTERVAL, "evaluation_interval": SCRAPE_INTERVAL},
        "scrape_configs": jobs,
    }


def write_scrape_targets(targets_dir: Path, targets: dict[str, str]) -> None:
    """One file-SD file per service (``name -> its /metrics URL``), replaced atomically;
    files of services no longer running are removed."""
    targets_dir.mkdir(parents=True, exist_ok=True)
    for stale in targets_dir.glob("*.json"):
        if stale.stem not in targets:
            stale.unlink()
    for name, url in targets.items():
        path = targets_dir / f"{name}.json"
        tmp = path.with_suffix(".tmp")
        target = urlsplit(url).netloc
        tmp.write_text(json.dumps([{"targets": [target], "labels": {"service": name}}]))
        tmp.replace(path)


# --------------------------------------------------------------------------- processes


def _http_ok(url: str) -> bool:
    import httpx

    try:
        return httpx.get(url, timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False


def start_jaeger(state_dir: Path, progress: Progress) -> tuple[int, str, dict[str, str]]:
    """Start Jaeger; return its pid, log file and endpoints (``ui``, ``otlp_http``,
    ``otlp_grpc``, ``metrics``)."""
    binary = ensure_jaeger(progress)
    root = state_dir / "jaeger"
    root.mkdir(parents=True, exist_ok=True)
    ports = {k: free_port() for k in ("otlp_http", "otlp_grpc", "query_http", "query_grpc")}
    ports["metrics"] = free_port()
    config = root / "config.yaml"
    config.write_text(json.dumps(jaeger_config(**ports), indent=2))  # JSON is YAML
    log_path = root / "jaeger.log"
    progress(f"starting Jaeger on 127.0.0.1:{ports['query_http']} (OTLP :{ports['otlp_http']})")
    pid = spawn([str(binary), "--config", str(config)], log_path=log_path)
    ui = f"http://127.0.0.1:{ports['query_http']}"
    endpoints = {
        "ui": ui,
        "otlp_http": f"http://127.0.0.1:{ports['otlp_http']}",
        "otlp_grpc": f"http://127.0.0.1:{ports['otlp_grpc']}",
        "metrics": f"http://127.0.0.1:{ports['metrics']}/metrics",
    }
    wait_until(
        lambda: (
            not pid_alive(pid)
            or (_http_ok(f"{ui}/api/services") and port_open("127.0.0.1", ports["otlp_http"]))
        ),
        timeout_s=60,
        what=f"Jaeger on {ui}",
    )
    if not pid_alive(pid):
        raise DevStackError(f"Jaeger exited; last log lines:\n{tail(log_path)}")
    return pid, str(log_path), endpoints


def start_prometheus(
    state_dir: Path, collector_metrics: str | None, progress: Progress
) -> tuple[int, str, str]:
    """Start Debian's Prometheus on a free port; return its pid, log file and URL."""
    binary = require_tool(
        "prometheus",
        "install it (apt-get install prometheus; 'make install' does) to use --observability",
    )
    root = state_dir / "prometheus"
    targets = root / "targets"
    targets.mkdir(parents=True, exist_ok=True)
    config = root / "prometheus.yml"
    config.write_text(json.dumps(prometheus_config(targets, collector_metrics), indent=2))
    shutil.rmtree(root / "data", ignore_errors=True)  # a new stack starts with no series
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log_path = root / "prometheus.log"
    progress(f"starting Prometheus on {url}")
    pid = spawn(
        [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={root / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ],
        log_path=log_path,
    )
    wait_until(
        lambda: not pid_alive(pid) or _http_ok(f"{url}/-/ready"),
        timeout_s=60,
        what=f"Prometheus on {url}",
    )
    if not pid_alive(pid):
        raise DevStackError(f"Prometheus exited; last log lines:\n{tail(log_path)}")
    return pid, str(log_path), url


def otel_env(otlp_http: str) -> dict[str, str]:
    """What a process needs to send traces and metrics to the stack's collector (the
    OpenTelemetry SDK environment variables; logs stay local)."""
    return {
        "OTEL_EXPORTER_OTLP_ENDPOINT": otlp_http,
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_TRACES_EXPORTER": "otlp",
        "OTEL_METRICS_EXPORTER": "otlp",
        "OTEL_LOGS_EXPORTER": "none",
    }


def main() -> None:
    """``python -m streaming.devstack.observability``: build Jaeger now (make install)."""
    print(ensure_jaeger(lambda m: print(m, file=sys.stderr)))


if __name__ == "__main__":
    main()


__all__ = [
    "COLLECTOR_JOB",
    "JAEGER_VERSION",
    "SERVICES_JOB",
    "ensure_jaeger",
    "jaeger_binary",
    "jaeger_config",
    "otel_env",
    "prometheus_config",
    "start_jaeger",
    "start_prometheus",
    "write_scrape_targets",
]
