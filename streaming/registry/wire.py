"""One ``send()`` per small response: uvicorn's httptools protocol behind a write proxy.

uvicorn writes a response's status line and headers, then its body, as two transport
writes; on a keep-alive connection each is its own ``send()`` system call and its own
TCP segment. Profiling the registry's hot GET under ``wrk`` put about two thirds of the
process's time in those two writes. :class:`OneSendHttpToolsProtocol` holds the header
block until the body's first write joins it (the same task step for every response the
registry sends) and flushes it on the next loop iteration at the latest, so nothing
waits and nothing is reordered: any later write or close sends what is held first.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

_STATUS = b"HTTP/1.1 "
_END = b"\r\n\r\n"


class _OneSend:
    """Transport proxy that joins a held header block with the write after it."""

    __slots__ = ("_held", "_loop", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._held: bytes | None = None

    def write(self, data: bytes) -> None:
        held = self._held
        if held is not None:
            self._held = None
            self._transport.write(held + data)
        elif data.endswith(_END) and data.startswith(_STATUS) and data[9:12] != b"100":
            self._held = data  # "100 Continue" must go now: the client waits for it
            self._loop.call_soon(self.flush)
        else:
            self._transport.write(data)

    def flush(self) -> None:
        held = self._held
        if held is not None:
            self._held = None
            if not self._transport.is_closing():  # a reset peer: nobody to send to
                self._transport.write(held)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class OneSendHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol writing each small response in one ``send()``."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(_OneSend(transport, self.loop))  # type: ignore[arg-type]


__all__ = ["OneSendHttpToolsProtocol"]
