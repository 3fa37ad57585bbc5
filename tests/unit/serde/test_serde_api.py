"""The serde package surface is deliberate: unique, importable, errors share one root."""

import streaming.serde as serde
from streaming.errors import SerializationError


def test_all_is_unique_and_importable() -> None:
    assert len(serde.__all__) == len(set(serde.__all__))  # ruff RUF022 keeps it sorted
    assert [name for name in serde.__all__ if not hasattr(serde, name)] == []


def test_every_exported_error_is_a_serialization_error() -> None:
    for name in serde.__all__:
        obj = getattr(serde, name)
        if isinstance(obj, type) and issubclass(obj, Exception):
            assert issubclass(obj, SerializationError), name
