"""confluent-kafka (librdkafka) at volume: 1,000,000 x 100-byte records with acks=all, read back in full
with assign() (no group), then again after a broker restart."""

import time

from confluent_kafka import Producer

from conftest import consume_batches, create_topic, high_watermarks, producer_conf

N_RECORDS = 1_000_000
N_PARTITIONS = 8
TOPIC = "confluent-1m"


def payload(i: int) -> bytes:
    # 100 bytes that encode the index: ten copies of the 10-digit index.
    return (b"%010d" % i) * 10


def produce_all(broker):
    delivered = [0]
    errors = []

    def on_delivery(err, msg):
        if err is None:
            delivered[0] += 1
        elif len(errors) < 100:
            errors.append((err, msg.partition()))

    p = Producer(producer_conf(
        broker,
        **{
            "acks": "all",
            "linger.ms": 5,
            "batch.size": 1_000_000,
            "compression.type": "none",
            "queue.buffering.max.messages": 500_000,
            "queue.buffering.max.kbytes": 1_048_576,
            "message.timeout.ms": 180_000,
            "on_delivery": on_delivery,
        },
    ))
    deadline = time.monotonic() + 300
    produce = p.produce
    for i in range(N_RECORDS):
        while True:
            try:
                produce(TOPIC, payload(i), partition=i % N_PARTITIONS)
                break
            except BufferError:
                assert time.monotonic() < deadline, f"producer queue stuck at record {i}"
                p.poll(0.05)
        if i % 5000 == 0:
            p.poll(0)
    remaining = p.flush(180)
    assert remaining == 0, f"{remaining} records still undelivered after flush"
    assert errors == [], f"delivery errors (first {len(errors)}): {errors}"
    assert delivered[0] == N_RECORDS, f"{delivered[0]} successful delivery reports, expected {N_RECORDS}"


def verify_all(broker):
    per_part = N_RECORDS // N_PARTITIONS
    highs = high_watermarks(broker, TOPIC, range(N_PARTITIONS))
    assert highs == {p: per_part for p in range(N_PARTITIONS)}, f"high watermarks {highs}"

    seen = bytearray(N_RECORDS)
    count = 0
    for msgs in consume_batches(broker, TOPIC, range(N_PARTITIONS), timeout=300, **{"check.crcs": True}):
        for m in msgs:
            v = m.value()
            head = v[:10]
            assert len(v) == 100 and v == head * 10, f"malformed payload at {m.partition()}@{m.offset()}: {v!r}"
            i = int(head)
            # Record i went to partition i % 8 and, being produced in order, must sit at offset i // 8.
            assert m.partition() == i % N_PARTITIONS, f"record {i} in partition {m.partition()}"
            assert m.offset() == i // N_PARTITIONS, f"record {i} at offset {m.offset()}, expected {i // N_PARTITIONS}"
            assert not seen[i], f"record {i} read twice"
            seen[i] = 1
            count += 1
    assert count == N_RECORDS, f"read {count} records, expected {N_RECORDS}"
    assert seen.count(0) == 0


def test_confluent_1m_acks_all_then_restart(broker_factory):
    # Two shards: at this volume the produce and fetch paths also cross cores through the router.
    broker = broker_factory(cores=2)
    create_topic(broker, TOPIC, N_PARTITIONS)
    produce_all(broker)
    verify_all(broker)
    broker.restart()
    verify_all(broker)
