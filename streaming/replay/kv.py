"""The read side shared by compacted tables and state stores: latest value per key."""

from __future__ import annotations

from collections.abc import Iterator


class KeyValueView:
    """Read access to ``self._data`` (bytes key -> latest bytes value)."""

    def __init__(self) -> None:
        self._data: dict[bytes, bytes] = {}

    def get(self, key: bytes) -> bytes | None:
        return self._data.get(key)

    def __contains__(self, key: object) -> bool:
        return key in self._data

    def __len__(self) -> int:
        return len(self._data)

    def __iter__(self) -> Iterator[bytes]:
        return iter(dict(self._data))  # a copy: the map may change while iterating

    def snapshot(self) -> dict[bytes, bytes]:
        """A copy of the current map."""
        return dict(self._data)


__all__ = ["KeyValueView"]
