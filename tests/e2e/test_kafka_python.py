"""kafka-python (pure-Python client, its own protocol code) against a real ringlog broker."""

import time

from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from conftest import create_topic

N_RECORDS = 20_000
N_PARTITIONS = 4
TOPIC = "kafka-python-20k"


def payload(i: int) -> bytes:
    return b"kp-%08d-" % i + bytes((i + j) % 251 for j in range(40))


def read_all(broker):
    # api_version is left to auto-detection: kafka-python 3.x sends ApiVersions and then uses the
    # per-API version ranges the broker advertises (no hard-coded broker version needed).
    consumer = KafkaConsumer(
        bootstrap_servers=broker.bootstrap,
        group_id=None,  # no group: assign() + explicit positions only
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        check_crcs=True,
        request_timeout_ms=30_000,
    )
    try:
        tps = [TopicPartition(TOPIC, p) for p in range(N_PARTITIONS)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        end = consumer.end_offsets(tps)
        assert {tp.partition: off for tp, off in end.items()} == {p: N_RECORDS // N_PARTITIONS for p in range(N_PARTITIONS)}
        got = {p: [] for p in range(N_PARTITIONS)}
        deadline = time.monotonic() + 120
        while sum(len(v) for v in got.values()) < N_RECORDS:
            assert time.monotonic() < deadline, f"timed out; read {[len(v) for v in got.values()]}"
            batch = consumer.poll(timeout_ms=1000, max_records=5000)
            for tp, recs in batch.items():
                assert tp.topic == TOPIC
                got[tp.partition].extend(recs)
        # Nothing beyond the end offsets shows up.
        extra = consumer.poll(timeout_ms=500)
        assert not any(extra.values()), f"unexpected extra records: {extra}"
        return got
    finally:
        consumer.close()


def verify(got):
    for p in range(N_PARTITIONS):
        recs = got[p]
        idx = list(range(p, N_RECORDS, N_PARTITIONS))
        assert [r.offset for r in recs] == list(range(len(idx))), f"partition {p}: offsets not dense from 0"
        assert [r.value for r in recs] == [payload(i) for i in idx], f"partition {p}: payloads/order differ"
        assert [r.key for r in recs] == [b"key-%d" % i for i in idx], f"partition {p}: keys differ"
        assert [list(r.headers) for r in recs] == [[("idx", str(i).encode())] for i in idx], f"partition {p}: headers differ"


def test_kafka_python_produce_consume_restart(broker):
    create_topic(broker, TOPIC, N_PARTITIONS)
    # kafka-python 3.x defaults to enable_idempotence=True, so this also exercises InitProducerId.
    producer = KafkaProducer(
        bootstrap_servers=broker.bootstrap,
        acks="all",
        linger_ms=5,
        batch_size=256 * 1024,
        request_timeout_ms=30_000,
        max_block_ms=60_000,
    )
    try:
        futures = [
            producer.send(TOPIC, key=b"key-%d" % i, value=payload(i), partition=i % N_PARTITIONS,
                          headers=[("idx", str(i).encode())])
            for i in range(N_RECORDS)
        ]
        producer.flush(timeout=120)
        for i, fut in enumerate(futures):
            md = fut.get(timeout=60)  # raises if the broker rejected the record
            assert (md.topic, md.partition, md.offset) == (TOPIC, i % N_PARTITIONS, i // N_PARTITIONS), \
                f"record {i}: acknowledged at {md}"
    finally:
        producer.close(timeout=30)

    verify(read_all(broker))
    broker.restart()
    verify(read_all(broker))
