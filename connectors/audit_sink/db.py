"""``python -m connectors.audit_sink.db migrate`` (the same group as ``streaming db``)."""

from streaming.cli.db import app

if __name__ == "__main__":
    app(prog_name="streaming db")
