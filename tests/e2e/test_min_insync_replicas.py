"""min.insync.replicas: an acks=all produce to a partition with fewer in-sync replicas gets
NOT_ENOUGH_REPLICAS and appends nothing, as in Kafka; acks=1 is not held to it. On one broker
every partition has one in-sync replica, so the topic asks for two."""

import pytest
from confluent_kafka import KafkaException
from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource, NewTopic

import kafka_wire as kw
from conftest import admin_for, create_topic

ERR_NOT_ENOUGH_REPLICAS = 19
ERR_INVALID_CONFIG = 40


def produce(sock, topic: str, acks: int, correlation_id: int) -> dict:
    batch = kw.record_batch([(b"k", b"v")])
    frame = kw.frame(kw.API_PRODUCE, 8, correlation_id, kw.produce_body([(topic, [(0, batch)])], acks=acks))
    _, parts = kw.parse_produce_response(8, kw.roundtrip(sock, frame))
    return parts[(topic, 0)]


def test_acks_all_needs_min_insync_replicas_in_sync(broker):
    topic = "needs-two"
    create_topic(broker, topic, 1, config={"min.insync.replicas": "2"})
    sock = kw.connect(broker.port)
    refused = produce(sock, topic, -1, 1)
    assert (refused["error_code"], refused["base_offset"]) == (ERR_NOT_ENOUGH_REPLICAS, -1), refused
    assert "min.insync.replicas 2" in (refused["error_message"] or ""), refused
    # acks=1 is answered by the leader alone, whatever min.insync.replicas says.
    accepted = produce(sock, topic, 1, 2)
    assert (accepted["error_code"], accepted["base_offset"]) == (0, 0), accepted

    # Lowered to one, acks=all goes through, after the acks=1 record: the refused one was never appended.
    admin = admin_for(broker)
    lowered = ConfigEntry("min.insync.replicas", "1", incremental_operation=AlterConfigOpType.SET)
    resource = ConfigResource(ConfigResource.Type.TOPIC, topic, incremental_configs=[lowered])
    for fut in admin.incremental_alter_configs([resource]).values():
        fut.result(timeout=30)
    after = produce(sock, topic, -1, 3)
    assert (after["error_code"], after["base_offset"]) == (0, 1), after
    sock.close()


def test_min_insync_replicas_below_one_is_an_invalid_config(broker):
    admin = admin_for(broker)
    futures = admin.create_topics([NewTopic("zero-isr", 1, 1, config={"min.insync.replicas": "0"})])
    with pytest.raises(KafkaException) as err:
        futures["zero-isr"].result(timeout=30)
    assert err.value.args[0].code() == ERR_INVALID_CONFIG
