"""The package root's public surface is deliberate: unique, importable, one error root."""

from __future__ import annotations

import streaming


def test_all_is_unique() -> None:
    assert len(streaming.__all__) == len(set(streaming.__all__))  # order: ruff's RUF022


def test_every_exported_name_exists() -> None:
    missing = [name for name in streaming.__all__ if not hasattr(streaming, name)]
    assert missing == []


def test_exported_classes_claim_a_public_module() -> None:
    for name in streaming.__all__:
        obj = getattr(streaming, name)
        module = getattr(obj, "__module__", "streaming")
        if isinstance(module, str) and module.startswith("streaming"):
            assert not any(part.startswith("_") for part in module.split(".")), name


def test_errors_share_one_root() -> None:
    for name in streaming.__all__:
        obj = getattr(streaming, name)
        if isinstance(obj, type) and issubclass(obj, Exception):
            assert issubclass(obj, streaming.StreamingError), name
