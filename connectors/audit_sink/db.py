"""``python -m connectors.audit_sink.db migrate`` (the same app as ``streaming db``)."""

from connectors.audit_sink.cli import db_app

if __name__ == "__main__":
    db_app(prog_name="streaming db")
