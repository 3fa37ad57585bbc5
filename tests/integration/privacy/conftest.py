"""The audit sink's fixtures (keys, a private schema, topics), shared with these tests."""

from tests.integration.audit.conftest import audit_setup, drop_schema

__all__ = ["audit_setup", "drop_schema"]
