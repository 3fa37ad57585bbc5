"""The two hot requests answered from precomputed bytes, in front of the Starlette app.

Every confluent deserializer asks ``GET /schemas/ids/{id}`` and every serializer the
``POST /subjects/{subject}`` lookup; on a busy platform they are nearly all of the
registry's traffic and their answers only change when ``_schemas`` does. This plain ASGI
layer answers them without routing, middleware, request objects or a schema parse:

- ``GET /schemas/ids/{id}``: the JSON body per id, rendered once;
- ``POST /subjects/{subject}``: the 200 body the full app gave for the same subject,
  query string and request body bytes (captured on the first miss).

Both caches belong to one :attr:`RegistryState.generation`: any applied ``_schemas``
record empties them, so a cached answer is never older than the state it came from.
Everything else, and every request the fast path cannot answer exactly as the full app
would (not ready, unknown id, errors, odd content types or sizes, a failed auth check),
goes to the full app unchanged. With an authenticator the same hooks run first.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from streaming.errors import SecurityError
from streaming.registry.errors import BodyTimeout, RegistryError, SchemaNotFound
from streaming.registry.request_count import PROBES, RequestCount

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

IDS_PREFIX = "/schemas/ids/"
SUBJECTS_PREFIX = "/subjects/"
MAX_LOOKUP_BODY = 256 * 1024
"""Larger lookup bodies take the full path (and are not cached)."""
MAX_LOOKUP_CACHE_BYTES = 32 * 1024 * 1024
"""Bound on cached lookup keys + answers: distinct spellings of a schema are unbounded."""


class HotPaths:
    """ASGI app: answers cached hot requests itself and passes the rest to ``app``.

    ``render(obj)`` must be the full app's JSON rendering and ``media_type`` its content
    type, so both paths send identical bytes; ``error(exc)`` renders a registry or
    security error exactly as the full app does; ``count`` takes one per API request
    (probes excepted) for ``/health``.
    """

    def __init__(
        self,
        app: ASGIApp,
        api: Any,
        *,
        render: Callable[[Any], bytes],
        media_type: str,
        accepted_types: tuple[str, ...],
        error: Callable[[Exception], Any],
        count: RequestCount | None = None,
    ) -> None:
        self.app = app
        self._count = count
        self._api = api
        self._render = render
        self._content_type = media_type.encode()
        self._accepted = {t.encode() for t in accepted_types} | {b"*/*", b""}
        self._error = error
        self._generation = -1
        self._by_id: dict[int, bytes] = {}
        self._lookups: dict[tuple[str, bytes, bytes], bytes] = {}
        self._lookup_bytes = 0

    @property
    def routes(self) -> Any:
        """The full app's routes (what the OpenAPI document is checked against)."""
        return getattr(self.app, "routes", [])

    # ---- cache ----------------------------------------------------------------------------

    def _fresh(self) -> int:
        generation: int = self._api.service.state.generation
        if generation != self._generation:
            self._by_id.clear()
            self._lookups.clear()
            self._lookup_bytes = 0
            self._generation = generation
        return generation

    def _schema_bytes(self, schema_id: int) -> bytes | None:
        body = self._by_id.get(schema_id)
        if body is None:
            try:
                found = self._api.service.schema_by_id(schema_id)
            except SchemaNotFound:
                return None
            body = self._by_id[schema_id] = self._render(found.to_json())
        return body

    def _remember(self, key: tuple[str, bytes, bytes], answer: bytes) -> None:
        size = len(key[0]) + len(key[1]) + len(key[2]) + len(answer)
        if self._lookup_bytes + size > MAX_LOOKUP_CACHE_BYTES:
            self._lookups.clear()
            self._lookup_bytes = 0
        self._lookups[key] = answer
        self._lookup_bytes += size

    # ---- ASGI -----------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self._count is not None and scope["path"] not in PROBES:
            self._count.total += 1  # here, so answers from the caches count too
        if self._api.service.store.ready:
            method, path = scope["method"], scope["path"]
            if method == "GET" and path.startswith(IDS_PREFIX):
                raw = path[len(IDS_PREFIX) :]
                if raw.isascii() and raw.isdigit() and len(raw) <= 10:
                    await self._get_by_id(scope, receive, send, int(raw))
                    return
            elif method == "POST" and path.startswith(SUBJECTS_PREFIX):
                subject = path[len(SUBJECTS_PREFIX) :]
                if subject and "/" not in subject:
                    await self._lookup(scope, receive, send, subject)
                    return
        await self.app(scope, receive, send)

    async def _get_by_id(self, scope: Scope, receive: Receive, send: Send, schema_id: int) -> None:
        self._fresh()
        body = self._schema_bytes(schema_id)
        if body is None or not await self._allowed(scope, send, None):
            if body is None:
                await self.app(scope, receive, send)
            return
        await self._send(send, body)

    async def _lookup(self, scope: Scope, receive: Receive, send: Send, subject: str) -> None:
        length = content_type = None
        for name, value in scope["headers"]:
            if name == b"content-length":
                length = value
            elif name == b"content-type":
                content_type = value.split(b";", 1)[0].strip().lower()
        if (
            length is None
            or not length.isdigit()
            or int(length) > MAX_LOOKUP_BODY
            or content_type not in self._accepted
        ):
            await self.app(scope, receive, send)
            return
        if not await self._allowed(scope, send, subject):
            return
        try:
            body = await self._read(receive)
        except BodyTimeout as exc:
            await self._error(exc)(scope, receive, send)
            return
        if body is None:
            return  # the client went away
        generation = self._fresh()
        key = (subject, scope.get("query_string", b""), body)
        answer = self._lookups.get(key)
        if answer is not None:
            await self._send(send, answer)
            return
        await self.app(scope, _replay(body, receive), self._capture(send, key, generation))

    async def _read(self, receive: Receive) -> bytes | None:
        chunks: list[bytes] = []
        try:
            async with asyncio.timeout(self._api.body_timeout_s):
                while True:
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        return None
                    chunks.append(message.get("body", b""))
                    if not message.get("more_body", False):
                        return b"".join(chunks)
        except TimeoutError as exc:
            raise BodyTimeout(self._api.body_timeout_s) from exc

    def _capture(self, send: Send, key: tuple[str, bytes, bytes], generation: int) -> Send:
        status = 0
        parts: list[bytes] = []

        async def capture(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body" and status == 200:
                parts.append(message.get("body", b""))
                if not message.get("more_body", False) and self._fresh() == generation:
                    self._remember(key, b"".join(parts))
            await send(message)

        return capture

    async def _allowed(self, scope: Scope, send: Send, subject: str | None) -> bool:
        """Run the auth hooks like the full app; on refusal send its error answer."""
        api = self._api
        if api.authenticator is None:
            return True
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        try:
            principal = await api.authenticator(headers)
            if api.authorizer is not None:
                await api.authorizer(principal, subject, "read")
        except (RegistryError, SecurityError) as exc:
            await self._error(exc)(scope, _closed, send)
            return False
        return True

    async def _send(self, send: Send, body: bytes) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-length", str(len(body)).encode()),
                    (b"content-type", self._content_type),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def _replay(body: bytes, then: Receive) -> Receive:
    """A ``receive`` that hands the already-read body to the full app, then ``then``."""
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await then()

    return receive


async def _closed() -> Message:
    return {"type": "http.disconnect"}


__all__ = ["HotPaths"]
