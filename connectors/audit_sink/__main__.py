"""``python -m connectors.audit_sink <command>`` (the same group as ``streaming audit``)."""

from streaming.cli.audit import app

app(prog_name="streaming audit")
