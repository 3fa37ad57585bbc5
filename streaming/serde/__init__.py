"""Confluent wire-format Avro serde: what every producer and consumer needs.

``AvroSerializer``/``AvroDeserializer`` frame fastavro schemaless bodies with the
schema id from a :class:`SchemaRegistry` (HTTP :class:`SchemaRegistryClient` or
:class:`InMemorySchemaRegistryClient`). Knows nothing of the registry server.
"""

from streaming.serde.avro import AvroDeserializer, AvroRecord, AvroSerializer, Decoded
from streaming.serde.catalog import LocalSchema, SchemaCatalog, default_catalog
from streaming.serde.client import (
    COMPATIBILITY_LEVELS,
    SchemaRegistry,
    SchemaRegistryClient,
)
from streaming.serde.context import MessageField, SerializationContext
from streaming.serde.errors import (
    BadMagicByteError,
    CorruptRecordError,
    DeserializationError,
    IncompatibleSchemaError,
    InvalidSchemaError,
    InvalidVersionError,
    RegistryAuthError,
    RegistryError,
    RegistryUnavailableError,
    SchemaLoadError,
    SchemaLookupError,
    SchemaMismatchError,
    SchemaNotFoundError,
    SerializeError,
    SubjectNotFoundError,
    TruncatedRecordError,
    UnknownSchemaIdError,
    VersionNotFoundError,
)
from streaming.serde.memory import InMemorySchemaRegistryClient
from streaming.serde.schema import CompatibilityResult, RegisteredSchema, Schema, SchemaReference
from streaming.serde.strategies import (
    SubjectNameStrategy,
    record_name_strategy,
    topic_name_strategy,
    topic_record_name_strategy,
)
from streaming.serde.wire import HEADER_SIZE, MAGIC_BYTE, frame, unframe

__all__ = [
    "COMPATIBILITY_LEVELS",
    "HEADER_SIZE",
    "MAGIC_BYTE",
    "AvroDeserializer",
    "AvroRecord",
    "AvroSerializer",
    "BadMagicByteError",
    "CompatibilityResult",
    "CorruptRecordError",
    "Decoded",
    "DeserializationError",
    "InMemorySchemaRegistryClient",
    "IncompatibleSchemaError",
    "InvalidSchemaError",
    "InvalidVersionError",
    "LocalSchema",
    "MessageField",
    "RegisteredSchema",
    "RegistryAuthError",
    "RegistryError",
    "RegistryUnavailableError",
    "Schema",
    "SchemaCatalog",
    "SchemaLoadError",
    "SchemaLookupError",
    "SchemaMismatchError",
    "SchemaNotFoundError",
    "SchemaReference",
    "SchemaRegistry",
    "SchemaRegistryClient",
    "SerializationContext",
    "SerializeError",
    "SubjectNameStrategy",
    "SubjectNotFoundError",
    "TruncatedRecordError",
    "UnknownSchemaIdError",
    "VersionNotFoundError",
    "default_catalog",
    "frame",
    "record_name_strategy",
    "topic_name_strategy",
    "topic_record_name_strategy",
    "unframe",
]
