"""Suite-wide wiring. Fixtures come from the ``streaming.testing`` pytest plugin.

Tests under the directories below talk to real services and are marked ``integration``
whole. The contract suites (``tests/transport``, ``tests/clients_contract``) are not
listed: each of their tests runs once in memory (unit) and once on Kafka, and their
fixtures mark only the Kafka half, so ``make unit`` (``-m "not integration"``) runs the
in-memory half.
"""

from __future__ import annotations

from pathlib import Path

import pytest

INTEGRATION_DIRS = ("integration", "faults")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        parts = Path(str(item.fspath)).parts
        if any(d in parts for d in INTEGRATION_DIRS):
            item.add_marker(pytest.mark.integration)
