"""The ``streaming`` command: one module per command group; :func:`main` is the entry point."""

from streaming.cli.main import app, main

__all__ = ["app", "main"]
