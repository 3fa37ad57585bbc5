"""Pure parts of the local Kafka launcher."""

from __future__ import annotations

import base64
from pathlib import Path

from streaming.devstack.kafka import _random_cluster_id, _server_properties


def test_cluster_ids_are_16_byte_base64url_never_starting_with_dash() -> None:
    for _ in range(2000):
        cluster_id = _random_cluster_id()
        assert not cluster_id.startswith("-")
        assert len(base64.urlsafe_b64decode(cluster_id + "==")) == 16


def test_server_properties_scale_replication_with_the_quorum(tmp_path: Path) -> None:
    single = _server_properties(1, 9092, 9093, "1@127.0.0.1:9093", tmp_path, 1)
    triple = _server_properties(2, 9094, 9095, "1@h:1,2@h:2,3@h:3", tmp_path, 3)
    assert "offsets.topic.replication.factor=1" in single
    assert "transaction.state.log.min.isr=1" in single
    assert "offsets.topic.replication.factor=3" in triple
    assert "transaction.state.log.min.isr=2" in triple
    assert "node.id=2" in triple
    assert "auto.create.topics.enable=false" in triple
