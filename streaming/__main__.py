"""``python -m streaming`` runs the CLI."""

from streaming.cli import main

main()
