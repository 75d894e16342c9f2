"""A tailing consumer reads records from their append on, before their write completes: from the
append journal's copy (the default), or with `visible_on_append`. It must still get every record
exactly once and in order, also when records leave a small batch cache before they are written
(the fetch then waits for the write), and the log must read back the same from disk after a
restart."""

import threading
import time

import pytest

from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

from conftest import consume_all, consumer_conf, create_topic, journal_files, metric_total, producer_conf, wait_until

TOPIC = "visible-on-append"
PARTITIONS = 4
PER_PARTITION = 5000


@pytest.mark.parametrize("early", [{}, {"visible_on_append": True, "append_journal_dir": ""}], ids=["journal", "visible_on_append"])
def test_tailing_consumer_gets_every_record_once_in_order(broker_factory, early):
    # A 256 KiB cache per shard holds well under a second of this producer's data.
    broker = broker_factory(cores=2, config={**early, "batch_cache_bytes": 256 << 10})
    create_topic(broker, TOPIC, PARTITIONS)
    consumer = Consumer(consumer_conf(broker))
    consumer.assign([TopicPartition(TOPIC, p, OFFSET_BEGINNING) for p in range(PARTITIONS)])

    delivered = []

    def produce():
        producer = Producer(producer_conf(broker, **{"linger.ms": 1, "acks": "1"}))
        for i in range(PER_PARTITION):
            for part in range(PARTITIONS):
                producer.produce(TOPIC, value=b"%d-%08d|" % (part, i) + b"v" * 500, partition=part,
                                 on_delivery=lambda err, _msg: delivered.append(err))
            producer.poll(0)
        producer.flush(60)

    # The consumer fetches at the log end before anything is produced: it tails the partitions,
    # so their appends go to the append journal.
    wait_until(lambda: metric_total(broker, "ringlog_requests_total", 'api_key="1"') > 0, 30, what="a first fetch")
    writer = threading.Thread(target=produce)
    writer.start()
    seen = {p: [] for p in range(PARTITIONS)}
    deadline = time.monotonic() + 120
    while sum(map(len, seen.values())) < PARTITIONS * PER_PARTITION and time.monotonic() < deadline:
        for m in consumer.consume(num_messages=5000, timeout=0.5):
            assert m.error() is None, m.error()
            seen[m.partition()].append((m.offset(), m.value()))
    writer.join()
    consumer.close()

    assert len(delivered) == PARTITIONS * PER_PARTITION and all(e is None for e in delivered)
    for part, msgs in seen.items():
        assert [o for o, _ in msgs] == list(range(PER_PARTITION)), f"partition {part}: every offset once, in order"
        assert [v.split(b"|")[0] for _, v in msgs] == [b"%d-%08d" % (part, i) for i in range(PER_PARTITION)]

    journaled = metric_total(broker, "ringlog_journal_batches_total")
    assert len(journal_files(broker)) == (0 if early else 2), "one journal per shard"
    assert (journaled > 0) == (not early), f"{journaled} batches journaled"
    broker.stop()
    assert not journal_files(broker), "a clean stop removes the journals"
    broker.start()
    back = consume_all(broker, TOPIC, range(PARTITIONS))
    for part in range(PARTITIONS):
        assert [(o, v) for o, _key, v in back[part]] == seen[part], f"partition {part} reads back the same from disk"
