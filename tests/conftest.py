"""Suite-wide wiring. Fixtures come from the ``streaming.testing`` pytest plugin."""

from __future__ import annotations

from pathlib import Path

import pytest

INTEGRATION_DIRS = ("integration", "transport", "clients_contract", "faults")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        parts = Path(str(item.fspath)).parts
        if any(d in parts for d in INTEGRATION_DIRS):
            item.add_marker(pytest.mark.integration)
