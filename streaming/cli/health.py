"""``streaming health``: one JSON health document (:mod:`streaming.health`)."""

from __future__ import annotations

from typing import Annotated

import typer

from streaming.cli._common import ExitCode, emit_json, run
from streaming.config import load_settings


def health(
    registry: Annotated[
        bool | None, typer.Option(help="Check the registry (default: when REGISTRY_URL is set).")
    ] = None,
) -> None:
    """Print a JSON health document; exit 0 only when every component is healthy."""
    from streaming.health import check_health

    settings = load_settings()
    with_registry = registry if registry is not None else settings.registry.configured
    report = run(lambda: check_health(settings, registry=with_registry), telemetry=False)
    emit_json(report)
    if not report["healthy"]:
        raise typer.Exit(ExitCode.FAILED)


__all__ = ["health"]
