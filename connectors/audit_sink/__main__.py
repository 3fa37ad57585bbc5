"""``python -m connectors.audit_sink <command>`` (the same app as ``streaming audit``)."""

from connectors.audit_sink.cli import app

app(prog_name="streaming audit")
