"""Transactions with confluent-kafka (librdkafka) against the real binary: commit and abort seen
through both isolation levels, send_offsets_to_transaction, and fencing by transactional.id."""

import time
from typing import List

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition

from conftest import consumer_conf, create_topic, producer_conf, read_until_idle

TXN_BROKER_CONFIG = {"transaction.abort.timed.out.transaction.cleanup.interval.ms": 500}


def txn_producer(broker, txn_id: str, **extra) -> Producer:
    p = Producer(producer_conf(broker, **{"transactional.id": txn_id, **extra}))
    p.init_transactions(30)
    return p


def read_values(broker, topic: str, partitions: int, isolation: str) -> List[bytes]:
    return [m.value() for m in read_until_idle(broker, topic, range(partitions), isolation)]


def test_commit_and_abort(broker_factory):
    broker = broker_factory(config=TXN_BROKER_CONFIG)
    create_topic(broker, "rd-txn", 3)
    p = txn_producer(broker, "rd-ca")
    n = 90
    p.begin_transaction()
    for i in range(n):
        p.produce("rd-txn", key=f"k{i}", value=f"c{i}")
    p.commit_transaction(30)
    p.begin_transaction()
    for i in range(n):
        p.produce("rd-txn", key=f"k{i}", value=f"a{i}")
    p.flush(30)
    p.abort_transaction(30)
    p.begin_transaction()
    p.produce("rd-txn", key="end", value="end")
    p.commit_transaction(30)

    committed = read_values(broker, "rd-txn", 3, "read_committed")
    assert sorted(committed) == sorted([f"c{i}".encode() for i in range(n)] + [b"end"])
    everything = read_values(broker, "rd-txn", 3, "read_uncommitted")
    assert len(everything) == 2 * n + 1 and set(everything) >= {f"a{i}".encode() for i in range(n)}


def test_send_offsets_to_transaction(broker_factory):
    broker = broker_factory(config=TXN_BROKER_CONFIG)
    create_topic(broker, "rd-in", 1)
    create_topic(broker, "rd-out", 1)
    plain = Producer(producer_conf(broker))
    for i in range(20):
        plain.produce("rd-in", value=f"v{i}")
    assert plain.flush(30) == 0

    group = "rd-ctp"
    consumer = Consumer(consumer_conf(broker, **{"group.id": group, "isolation.level": "read_committed"}))
    consumer.subscribe(["rd-in"])
    p = txn_producer(broker, "rd-ctp")
    seen = 0
    aborted = False
    deadline = time.monotonic() + 60
    while seen < 20 and time.monotonic() < deadline:
        msgs = [m for m in consumer.consume(num_messages=5, timeout=1.0) if m.error() is None]
        if not msgs:
            continue
        p.begin_transaction()
        for m in msgs:
            p.produce("rd-out", value=m.value() + b"!")
        p.send_offsets_to_transaction([TopicPartition("rd-in", 0, msgs[-1].offset() + 1)], consumer.consumer_group_metadata(), 30)
        if not aborted:
            # The first transaction is aborted: its offsets must not count, and the input is re-read.
            p.abort_transaction(30)
            aborted = True
            committed = consumer.committed([TopicPartition("rd-in", 0)], timeout=15)[0].offset
            consumer.seek(TopicPartition("rd-in", 0, max(committed, 0)))
            continue
        p.commit_transaction(30)
        seen += len(msgs)
    consumer.close()
    assert seen == 20
    out = read_values(broker, "rd-out", 1, "read_committed")
    assert sorted(out) == sorted(f"v{i}!".encode() for i in range(20))

    check = Consumer(consumer_conf(broker, **{"group.id": group}))
    try:
        assert check.committed([TopicPartition("rd-in", 0)], timeout=15)[0].offset == 20
    finally:
        check.close()


def test_a_second_producer_fences_the_first(broker_factory):
    broker = broker_factory(config=TXN_BROKER_CONFIG)
    create_topic(broker, "rd-fence", 1)
    zombie = txn_producer(broker, "rd-fence")
    zombie.begin_transaction()
    zombie.produce("rd-fence", value=b"zombie")
    zombie.flush(30)
    live = txn_producer(broker, "rd-fence")
    try:
        zombie.commit_transaction(30)
        fenced = None
    except KafkaException as e:
        fenced = e.args[0]
    assert fenced is not None and fenced.fatal(), f"the first producer is fenced: {fenced}"
    live.begin_transaction()
    live.produce("rd-fence", value=b"live")
    live.commit_transaction(30)
    assert read_values(broker, "rd-fence", 1, "read_committed") == [b"live"]
