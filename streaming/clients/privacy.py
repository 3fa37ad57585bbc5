"""The consumer step that decrypts personal data, right after decoding.

:class:`RevealMiddleware` runs :class:`~streaming.privacy.reveal.FieldRevealer` on the
decoded event, so handlers and the user's middlewares see clear text (this process
holds the KEK) or typed :class:`~streaming.privacy.tokens.EncryptedValue` markers (it
does not, or the subject was shredded). A key list that cannot be confirmed current
rewinds the partition instead of dead-lettering; an altered ciphertext is the record's
fault and is routed like any failure (the DLQ keeps the raw, encrypted bytes).
"""

from __future__ import annotations

from streaming.clients.middlewares import CallNext, Message, TransientProcessingError
from streaming.errors import StreamingError
from streaming.events import Event
from streaming.privacy.reveal import FieldRevealer


class RevealMiddleware:
    """Decrypt (or mark) the marked fields of ``message.event``."""

    __slots__ = ("_revealer",)

    def __init__(self, revealer: FieldRevealer) -> None:
        self._revealer = revealer

    async def __call__(self, message: Message, call_next: CallNext) -> None:
        event = message.event
        if event is not None:
            revealed = await self.reveal(event)
            if revealed is not event:
                message = Message(message.record, message.group, message.attempt, revealed)
        await call_next(message)

    async def reveal(self, event: Event) -> Event:
        """``event`` with its marked fields decrypted or typed (itself when none are)."""
        try:
            return await self._revealer.reveal(event)
        except StreamingError as exc:
            if exc.retriable:  # the key list is not current: rewind, not poison
                raise TransientProcessingError(f"cannot decrypt now: {exc}") from exc
            raise


__all__ = ["RevealMiddleware"]
