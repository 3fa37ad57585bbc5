"""Per-subject data keys in the compacted ``_streaming.subject-keys`` topic.

Every record is one key generation of one subject, keyed ``<subject>/<key id>`` and
holding the data key wrapped by the KEK; shredding writes a tombstone for each
generation. Every process tails the topic (:class:`~streaming.transport.tail.TailedTopic`,
the revocation list's mechanism) and uses its copy only while it was confirmed current
within ``max_lag_s``: after ``streaming audit shred`` reports done, no process encrypts
or decrypts with the shredded key later than that bound.

Creation is race-free without coordination: a producer that finds no key writes a
candidate (acks=all) *before* encrypting anything with it, reads the topic back to its
end and uses the first generation it finds. Two producers racing may each write a
candidate; because each generation has its own record key, compaction keeps all of
them, so any value ever written under any of them decrypts, and later writers converge
on the first. A subject that returns after a shred gets a fresh generation; values under
the old one read as shredded.
"""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import structlog
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from streaming.config import SecuritySettings
from streaming.core.topics import SUBJECT_KEYS_CONFIG, SUBJECT_KEYS_TOPIC
from streaming.errors import ConfigError
from streaming.privacy.errors import SubjectKeysUnavailableError
from streaming.privacy.provider import EnvKeyProvider, KeyProvider
from streaming.transport.base import OutgoingRecord, Record, TransportFactory
from streaming.transport.tail import TailedTopic

log = structlog.get_logger(__name__)

_CREATE_ATTEMPTS = 3
_MISSING_MEMORY = 10_000


def wrap_context(subject: str, key_id: str) -> bytes:
    """Authenticated with the wrapped key: a wrapped key moved to another subject fails."""
    return json.dumps(["tradesense.pii.subject-key.v1", subject, key_id]).encode("utf-8")


@dataclass(frozen=True, slots=True)
class KeyGeneration:
    """One wrapped data key of one subject, as the topic holds it."""

    subject: str
    key_id: str
    kek_id: str
    wrapped: bytes
    created_ms: int

    def record_key(self) -> bytes:
        return record_key(self.subject, self.key_id)

    def value(self) -> bytes:
        return json.dumps(
            {
                "v": 1,
                "subject": self.subject,
                "key_id": self.key_id,
                "kek_id": self.kek_id,
                "wrapped": base64.b64encode(self.wrapped).decode("ascii"),
                "created_ms": self.created_ms,
            },
            separators=(",", ":"),
        ).encode("utf-8")

    @classmethod
    def parse(cls, value: bytes) -> KeyGeneration | None:
        try:
            doc = json.loads(value)
            return cls(
                str(doc["subject"]),
                str(doc["key_id"]),
                str(doc["kek_id"]),
                base64.b64decode(doc["wrapped"], validate=True),
                int(doc["created_ms"]),
            )
        except (ValueError, KeyError, TypeError):
            return None


def record_key(subject: str, key_id: str) -> bytes:
    return f"{subject}/{key_id}".encode()


class SubjectKeyLog:
    """The tailed subject-keys topic: create, look up and shred key generations.

    ``provider`` (the KEK) is needed to create or unwrap keys, not to shred. The tail
    starts on first use.
    """

    def __init__(
        self,
        transport: TransportFactory,
        provider: KeyProvider | None,
        *,
        topic: str = SUBJECT_KEYS_TOPIC,
        replication_factor: int | None = None,
        max_lag_s: float = 2.0,
        wait_s: float = 10.0,
        poll_timeout_ms: int = 100,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.provider = provider
        self.topic = topic
        self.wait_s = wait_s
        # subject -> {key id: generation}, in log order (the first is the one to use)
        self._keys: dict[str, dict[str, KeyGeneration]] = {}
        self._aes: dict[tuple[str, str], AESGCM] = {}
        self._missing: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._create_lock = asyncio.Lock()
        self._start_lock = asyncio.Lock()
        self._tail = TailedTopic(
            transport,
            topic=topic,
            apply=self._apply,
            unavailable=SubjectKeysUnavailableError,
            config=SUBJECT_KEYS_CONFIG,
            replication_factor=replication_factor,
            max_lag_s=max_lag_s,
            poll_timeout_ms=poll_timeout_ms,
            clock=clock,
        )

    @classmethod
    def from_settings(
        cls,
        transport: TransportFactory,
        security: SecuritySettings,
        *,
        require_kek: bool = False,
    ) -> SubjectKeyLog:
        provider = EnvKeyProvider.from_settings(security)
        if provider is None and require_kek:
            raise ConfigError(
                [
                    "SECURITY_PII_KEK is not set: reading personal data needs the key-encryption "
                    "key (32 bytes, base64 or hex)"
                ]
            )
        return cls(
            transport,
            provider,
            topic=security.pii_keys_topic,
            max_lag_s=security.pii_key_max_lag_s,
        )

    # -- lifecycle
    async def current(self) -> None:
        """Start the tail if needed and wait until the copy is within its bound."""
        if not self._tail.started:
            async with self._start_lock:
                await self._tail.start()
        await self._tail.wait_until_current(self.wait_s)

    async def stop(self) -> None:
        await self._tail.stop()

    # -- reading the tail
    def _apply(self, record: Record) -> None:
        if record.key is None:
            return
        subject, _, key_id = record.key.decode("utf-8", "replace").rpartition("/")
        if record.value is None:
            self._forget(subject, key_id)
            return
        generation = KeyGeneration.parse(record.value)
        if generation is None or generation.subject != subject or generation.key_id != key_id:
            log.warning("subject_keys.bad_record", topic=record.topic, offset=record.offset)
            return
        self._keys.setdefault(subject, {}).setdefault(key_id, generation)
        self._missing.pop((subject, key_id), None)

    def _forget(self, subject: str, key_id: str) -> None:
        kids = self._keys.get(subject)
        if kids is not None:
            kids.pop(key_id, None)
            if not kids:
                del self._keys[subject]
        self._aes.pop((subject, key_id), None)

    def generations(self, subject: str) -> list[KeyGeneration]:
        """The subject's live generations in this process's copy (oldest first)."""
        return list(self._keys.get(subject, {}).values())

    # -- keys
    def _require_provider(self) -> KeyProvider:
        if self.provider is None:
            raise ConfigError(["SECURITY_PII_KEK is not set: this process holds no KEK"])
        return self.provider

    def _aes_for(self, generation: KeyGeneration) -> AESGCM:
        index = (generation.subject, generation.key_id)
        aes = self._aes.get(index)
        if aes is None:
            provider = self._require_provider()
            data_key = provider.unwrap(
                generation.wrapped, wrap_context(generation.subject, generation.key_id)
            )
            aes = self._aes[index] = AESGCM(data_key)
        return aes

    async def encryption_key(self, subject: str) -> tuple[str, AESGCM]:
        """The key id and cipher to encrypt ``subject``'s data with (created if none)."""
        await self.current()
        for _ in range(_CREATE_ATTEMPTS):
            kids = self._keys.get(subject)
            if kids:
                generation = next(iter(kids.values()))
                return generation.key_id, self._aes_for(generation)
            async with self._create_lock:
                if not self._keys.get(subject):
                    await self._create(subject)
        raise SubjectKeysUnavailableError(
            f"no key for subject {subject!r} after {_CREATE_ATTEMPTS} attempts: it is being "
            "shredded while events for it are produced; retry"
        )

    async def _create(self, subject: str) -> None:
        """Write a candidate generation, then read the topic back to its end."""
        provider = self._require_provider()
        data_key = AESGCM.generate_key(bit_length=256)
        key_id = secrets.token_hex(8)
        wrapped = provider.wrap(data_key, wrap_context(subject, key_id))
        generation = KeyGeneration(
            subject, key_id, provider.key_id, wrapped, int(time.time() * 1000)
        )
        await self._tail.publish(
            OutgoingRecord(self.topic, generation.value(), generation.record_key(), partition=0)
        )
        self._aes[(subject, key_id)] = AESGCM(data_key)
        await self._tail.wait_current(self.wait_s)
        log.debug("subject_keys.created", subject=subject, key_id=key_id)

    async def decryption_key(self, subject: str, key_id: str) -> AESGCM | None:
        """The cipher of ``subject``'s generation ``key_id``; ``None`` when it is shredded.

        A generation not in this copy may have been created after the copy's last
        confirmation: the tail is asked for one more round before calling it shredded.
        """
        await self.current()
        generation = self._keys.get(subject, {}).get(key_id)
        if generation is None and (subject, key_id) not in self._missing:
            await self._tail.wait_current(self.wait_s)
            generation = self._keys.get(subject, {}).get(key_id)
            if generation is None:
                self._missing[(subject, key_id)] = None
                while len(self._missing) > _MISSING_MEMORY:
                    self._missing.popitem(last=False)
        return None if generation is None else self._aes_for(generation)

    async def shred(self, subject: str) -> list[str]:
        """Tombstone every generation of ``subject``; returns the key ids shredded."""
        if not self._tail.started:
            await self._tail.start()
        await self._tail.wait_current(self.wait_s)
        shredded = [g.key_id for g in self.generations(subject)]
        for key_id in shredded:
            await self._tail.publish(
                OutgoingRecord(self.topic, None, record_key(subject, key_id), partition=0)
            )
            self._forget(subject, key_id)
        await self._tail.wait_current(self.wait_s)
        return shredded


__all__ = ["KeyGeneration", "SubjectKeyLog", "record_key", "wrap_context"]
