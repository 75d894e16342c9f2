"""CreateTopics with a manual replica assignment (num_partitions and replication_factor -1), as
kafka-python's and sarama's admin clients send it: the topic gets exactly the assigned
partitions, each led by its first replica; bad assignments get Kafka's error codes."""

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient

ERR_INVALID_REPLICA_ASSIGNMENT = 39
ERR_INVALID_REQUEST = 42


def codes(response):
    """{topic: (error_code, num_partitions, replication_factor)} of a CreateTopics response."""
    return {t["name"]: (t["error_code"], t.get("num_partitions"), t.get("replication_factor")) for t in response["topics"]}


def test_a_manual_assignment_decides_the_partitions_and_bad_ones_are_refused(broker):
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap, client_id="assignment-test")
    try:
        # num.partitions is 1 by default: three partitions can only come from the assignment.
        ok = admin.create_topics({"assigned": {"assignments": {0: [0], 1: [0], 2: [0]}}}, raise_errors=False)
        assert codes(ok)["assigned"] == (0, 3, 1), codes(ok)
        refused = admin.create_topics(
            {
                "unknown-broker": {"assignments": {0: [0], 1: [5]}},
                "repeated-broker": {"assignments": {0: [0, 0]}},
                "gap": {"assignments": {0: [0], 2: [0]}},
                "both-set": {"num_partitions": 2, "assignments": {0: [0], 1: [0]}},
            },
            raise_errors=False,
        )
        got = {name: c[0] for name, c in codes(refused).items()}
        assert got == {
            "unknown-broker": ERR_INVALID_REPLICA_ASSIGNMENT,
            "repeated-broker": ERR_INVALID_REPLICA_ASSIGNMENT,
            "gap": ERR_INVALID_REPLICA_ASSIGNMENT,
            "both-set": ERR_INVALID_REQUEST,
        }, got
        described = admin.describe_topics(["assigned"])
        partitions = sorted(described[0]["partitions"], key=lambda p: p["partition_index"])
        assert [(p["partition_index"], p["leader_id"], p["replica_nodes"], p["isr_nodes"]) for p in partitions] == [
            (i, 0, [0], [0]) for i in range(3)
        ], partitions
        assert set(admin.list_topics()) >= {"assigned"}
        assert not {"unknown-broker", "repeated-broker", "gap", "both-set"} & set(admin.list_topics())
    finally:
        admin.close()

    # Every assigned partition takes and serves records.
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, acks="all")
    for p in range(3):
        producer.send("assigned", value=b"v%d" % p, partition=p).get(timeout=30)
    producer.close()
    consumer = KafkaConsumer(bootstrap_servers=broker.bootstrap, enable_auto_commit=False, consumer_timeout_ms=10000)
    consumer.assign([TopicPartition("assigned", p) for p in range(3)])
    consumer.seek_to_beginning()
    got = []
    for m in consumer:
        got.append((m.partition, m.value))
        if len(got) == 3:
            break
    got.sort()
    consumer.close()
    assert got == [(p, b"v%d" % p) for p in range(3)], got
