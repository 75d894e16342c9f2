"""Log compaction against the real binary (issue 18): a compacted topic with many updates per key
shrinks to one record per key, with offsets and order kept; tombstones go after
delete.retention.ms; a consumer reading while the cleaner works sees the latest value of every key
and no error; __consumer_offsets stays bounded under a long commit loop, and a restart replays
the compacted log to the last committed offsets.

Segments roll by segment.ms (segment.bytes cannot go under 1 MiB in Kafka 4), and the broker's
log.cleaner.backoff.ms is small, so the cleaner runs within the test's time."""

import threading
import time
from pathlib import Path

from confluent_kafka import Consumer, Producer, TopicPartition

from conftest import (consume_all, consumer_conf, create_topic, high_watermarks, parse_log_events, producer_conf,
                      read_until_idle, wait_until)

CLEANER = {"log.cleaner.backoff.ms": 100, "log.segment.delete.delay.ms": 500}
COMPACTED = {
    "cleanup.policy": "compact",
    "segment.ms": "300",
    "min.cleanable.dirty.ratio": "0.01",
    "delete.retention.ms": "2000",
    "file.delete.delay.ms": "500",
}


def produce(broker, topic, records, rounds_apart: float = 0.0, acks: str = "all"):
    """Produces [(key, value)] in order (value None is a tombstone); returns {key: offset of its
    last record}. Sleeps `rounds_apart` after each flush of 20 records, so segments roll."""
    p = Producer(producer_conf(broker, **{"linger.ms": 2, "compression.type": "none", "acks": acks}))
    last = {}

    def on_delivery(err, msg):
        assert err is None, err
        last[msg.key()] = max(last.get(msg.key(), -1), msg.offset())

    for i, (k, v) in enumerate(records):
        p.produce(topic, v, key=k, partition=0, on_delivery=on_delivery)
        if i % 20 == 19:
            p.flush(30)
            time.sleep(rounds_apart)
    p.flush(30)
    return last


def roll(broker, topic, acks: str = "all"):
    """Moves every record so far out of the active segment: waits past segment.ms, then appends."""
    time.sleep(0.4)
    return produce(broker, topic, [(b"~roll", b"r")], acks=acks)[b"~roll"]


def partition_bytes(broker, name: str) -> int:
    d = Path(broker.data_dir) / name
    return sum(f.stat().st_size for f in d.iterdir() if f.is_file())


def cleaned_events(broker, topic):
    return [e for e in parse_log_events(broker.log_text(), "log cleaned") if e.get("partition", "").startswith(topic)]


def test_updates_shrink_to_one_record_per_key_with_offsets_and_order_kept(broker_factory):
    broker = broker_factory(config=CLEANER)
    topic = "compacted-updates"
    create_topic(broker, topic, 1, config=COMPACTED)
    pad = b"p" * 100
    records = [(f"k{i % 20:02d}".encode(), f"v{i}-".encode() + pad) for i in range(1000)]
    written = sum(len(k) + len(v) for k, v in records)
    latest = produce(broker, topic, records, rounds_apart=0.02)
    roll_offset = roll(broker, topic)
    expected = sorted((off, k) for k, off in latest.items())

    def compacted():
        got = consume_all(broker, topic, [0])[0]
        return [(o, k) for o, k, _ in got if k != b"~roll"] == expected

    wait_until(compacted, timeout=60, what="one record per key")
    got = consume_all(broker, topic, [0])[0]
    assert [o for o, _, _ in got] == sorted(o for o, _, _ in got), "order kept"
    values = {k: v for _, k, v in got}
    for i in range(980, 1000):
        assert values[f"k{i % 20:02d}".encode()] == f"v{i}-".encode() + pad, "each key keeps its latest value"
    assert got[-1][0] == roll_offset, "offsets kept"
    assert len(cleaned_events(broker, topic)) >= 1, "the cleaner logged its passes"
    wait_until(lambda: partition_bytes(broker, f"{topic}-0") < written / 10, timeout=30,
               what=f"the partition under a tenth of the {written} bytes written, on disk")


def test_tombstones_disappear_after_delete_retention(broker_factory):
    broker = broker_factory(config=CLEANER)
    topic = "compacted-tombstones"
    create_topic(broker, topic, 1, config=COMPACTED)
    produce(broker, topic, [(b"a", b"1"), (b"b", b"2"), (b"a", b"3")])
    produce(broker, topic, [(b"a", None)])
    roll(broker, topic)

    def records_of(key):
        return [(o, v) for o, k, v in consume_all(broker, topic, [0])[0] if k == key]

    # First the cleaner keeps the tombstone alone (its horizon is 2 s away), then drops it.
    wait_until(lambda: [v for _, v in records_of(b"a")] == [None], timeout=30, what="only a's tombstone left")
    seen_tombstone_at = time.monotonic()
    wait_until(lambda: records_of(b"a") == [], timeout=30, what="the tombstone removed after delete.retention.ms")
    assert time.monotonic() - seen_tombstone_at > 0.5, "kept until its delete horizon"
    assert [v for _, v in records_of(b"b")] == [b"2"]


def test_a_consumer_reading_during_cleaning_sees_the_latest_values_and_no_error(broker_factory):
    broker = broker_factory(config={**CLEANER, "log.cleaner.backoff.ms": 300})
    topic = "compacted-reads"
    create_topic(broker, topic, 1, config=COMPACTED)
    keys = 200
    records = [(f"key-{i % keys:04d}".encode(), f"value-{i}-".encode() + b"x" * 200) for i in range(6000)]
    latest_offset = produce(broker, topic, records, rounds_apart=0.005)
    latest_value = dict(records)
    # Other keys keep arriving, so segments keep rolling and the cleaner keeps cleaning while
    # the reads below run.
    stop = threading.Event()

    def background():
        i = 0
        while not stop.is_set():
            produce(broker, topic, [(f"bg-{i % 50}".encode(), b"b" * 200) for i in range(i, i + 20)])
            i += 20
            time.sleep(0.05)

    writer = threading.Thread(target=background, daemon=True)
    writer.start()
    passes, overlapped = 0, 0
    try:
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline and (overlapped < 3 or passes < 5):
            before = len(cleaned_events(broker, topic))
            got = consume_all(broker, topic, [0])[0]  # fails on any consumer error
            offsets = [o for o, _, _ in got]
            assert offsets == sorted(set(offsets)), "offsets increase, none twice"
            last = {}
            for o, k, v in got:
                last[k] = (o, v)
            for k, v in latest_value.items():
                assert last[k] == (latest_offset[k], v), f"{k} reads back its latest value"
            passes += 1
            overlapped += len(cleaned_events(broker, topic)) > before
    finally:
        stop.set()
        writer.join(30)
    assert overlapped >= 1, f"no cleaning pass overlapped the {passes} reads"
    wait_until(lambda: len([k for _, k, _ in consume_all(broker, topic, [0])[0] if k.startswith(b"key-")]) == keys,
               timeout=30, what="the main keys compacted to one record each")


def test_consumer_offsets_stay_bounded_under_a_long_commit_loop(broker_factory):
    config = {**CLEANER, "offsets.topic.num.partitions": 1, "offsets.topic.segment.bytes": 1048576}
    broker = broker_factory(config=config)
    topic = "committed"
    create_topic(broker, topic, 50)
    group = "commit-loop"
    c = Consumer(consumer_conf(broker, **{"group.id": group}))
    commits = 1500
    try:
        for i in range(commits):
            c.commit(offsets=[TopicPartition(topic, p, i + 1) for p in range(50)], asynchronous=False)
    finally:
        c.close()
    records = high_watermarks(broker, "__consumer_offsets", [0])[0]
    assert records >= commits * 50, "every commit appended its records"
    written = records * 60  # an offset commit record is at least ~60 bytes with its key and value
    size = partition_bytes(broker, "__consumer_offsets-0")
    print(f"__consumer_offsets-0: {size} bytes on disk after {commits * 50} offset commits (>{written} bytes written)")
    wait_until(lambda: partition_bytes(broker, "__consumer_offsets-0") < 3 * 1048576, timeout=30,
               what=f"__consumer_offsets-0 under 3 MiB (now {partition_bytes(broker, '__consumer_offsets-0')})")
    assert written > 4 * 1048576
    assert cleaned_events(broker, "__consumer_offsets"), "the cleaner compacted __consumer_offsets"

    broker.restart()
    c = Consumer(consumer_conf(broker, **{"group.id": group}))
    try:
        committed = c.committed([TopicPartition(topic, p) for p in range(50)], timeout=30)
        assert [tp.offset for tp in committed] == [commits] * 50, "the replay finds the last commits"
    finally:
        c.close()


def test_a_follower_that_was_down_catches_up_across_the_holes_the_cleaner_left(cluster_factory):
    """A replica fetching a cleaned range gets batches with gaps between their offsets; it must
    take them (Kafka does) and rejoin the ISR, not refuse them as out of order."""
    from confluent_kafka.admin import NewTopic

    cluster = cluster_factory(size=3, config=CLEANER)
    topic = "compacted-replicated"
    admin = cluster.admin()
    admin.create_topics([NewTopic(topic, 1, 3, config=COMPACTED)])[topic].result(timeout=30)
    wait_until(lambda: sorted(cluster.partition_state(topic)[0]["isrs"]) == [1, 2, 3], 30, what="a full ISR")
    leader = cluster.partition_state(topic)[0]["leader"]
    follower = next(n for n in (1, 2, 3) if n != leader)
    cluster.broker(follower).stop()
    entry = cluster.broker(leader)
    latest = produce(entry, topic, [(f"k{i % 20:02d}".encode(), f"v{i}".encode()) for i in range(600)],
                     rounds_apart=0.02, acks="1")
    roll(entry, topic, acks="1")
    expected = sorted((off, k) for k, off in latest.items())
    wait_until(lambda: [(o, k) for o, k, _ in consume_all(entry, topic, [0])[0] if k != b"~roll"] == expected,
               timeout=60, what="the leader's log compacted to one record per key")
    cluster.broker(follower).start()
    wait_until(lambda: follower in cluster.partition_state(topic)[0]["isrs"], 60,
               what=f"node {follower} back in the ISR after fetching across the holes")
    assert "OffsetMismatch" not in cluster.broker(follower).log_text()


def all_batches(broker, topic):
    """Every batch of partition 0 with a read_uncommitted fetch, control batches too:
    [(base offset, attributes, producer id, [(offset, value)])], and the aborted list a
    read_committed fetch from offset 0 answers."""
    from test_txn_partition import Client

    c = Client(broker, topic)
    seen, offset = {}, 0
    while True:
        err, hw, _, _, batches = c.fetch(offset, read_committed=False)
        assert err == 0, err
        for b in batches:
            seen[b[0]] = b
        if not batches or offset >= hw:
            break
        offset = max(max([o for o, _ in b[3]] + [b[0]]) for b in batches) + 1
        if offset >= hw:
            break
    err, _, _, aborted, _ = c.fetch(0, read_committed=True)
    assert err == 0, err
    return [seen[k] for k in sorted(seen)], aborted


def test_old_transaction_markers_go_once_their_transactions_are_cleaned(broker_factory):
    """Kafka's cleaner removes aborted records, then the abort marker (and its .txnindex entry)
    once no batch of its transaction is left and delete.retention.ms has passed; a commit marker
    goes the same way once its records are all superseded. A read_committed consumer (librdkafka
    and the Java client) reads the right values before and after, including a later transaction
    of the producer whose abort marker went."""
    broker = broker_factory(config=CLEANER)
    topic = "compacted-txn"
    create_topic(broker, topic, 1, config={**COMPACTED, "delete.retention.ms": "1000"})
    p = Producer(producer_conf(broker, **{"transactional.id": "compact-txn", "linger.ms": 2}))
    p.init_transactions(30)
    for keys, value, commit in ((range(10), b"a", True), (range(10), b"b", False), (range(10), b"c", True),
                                (range(10, 15), b"d", True)):
        p.begin_transaction()
        for i in keys:
            p.produce(topic, value, key=f"k{i}".encode(), partition=0)
        p.flush(30)  # written before the abort, which would otherwise purge them unsent
        if commit:
            p.commit_transaction(30)
        else:
            p.abort_transaction(30)
    expected = {f"k{i}".encode(): b"c" for i in range(10)} | {f"k{i}".encode(): b"d" for i in range(10, 15)}
    # EndTxn is answered once the decision is logged; the markers follow (as Kafka's), so the last
    # commit's marker may land a moment after commit_transaction returns.
    wait_until(lambda: len([b for b in all_batches(broker, topic)[0] if b[1] & 0x20]) == 4, timeout=30,
               what="the four transaction markers written")
    batches, aborted = all_batches(broker, topic)
    markers_before = [b[0] for b in batches if b[1] & 0x20]
    assert len(markers_before) == 4 and len(aborted) == 1, (batches, aborted)
    (pid,) = {b[2] for b in batches}
    b_marker = markers_before[1]

    def read_committed_values():
        got = read_until_idle(broker, topic, [0], isolation="read_committed", idle_s=1.0)
        return {m.key(): m.value() for m in got if m.key().startswith(b"k")}

    def cleaned_to_the_end():
        roll(broker, topic)  # new dirty data: the cleaner makes another pass
        batches, aborted = all_batches(broker, topic)
        return [b[0] for b in batches if b[1] & 0x20 and b[2] == pid] == markers_before[2:] and aborted == []

    wait_until(cleaned_to_the_end, timeout=60, what="the markers of the superseded and the aborted transaction removed")
    batches, aborted = all_batches(broker, topic)
    values = [v for b in batches if b[2] == pid for _, v in b[3]]
    assert b"b" not in values and b"a" not in values, values
    assert b_marker not in [b[0] for b in batches]
    assert read_committed_values() == expected
    java = read_java_committed(broker, topic)
    if java is not None:
        assert sorted(java) == sorted(v.decode() for v in expected.values()), java
    print(f"markers before: {markers_before}, after: {[b[0] for b in batches if b[1] & 0x20]}")


def read_java_committed(broker, topic):
    """The values the Java client's read_committed consumer reads, or None without its jar."""
    from test_txn_java import JAR, read_values

    if not JAR.exists():
        return None
    return [v for v in read_values(broker, topic, "read_committed") if v != "r"]


def test_max_compaction_lag_rolls_the_active_segment_and_forces_a_clean(broker_factory):
    """KIP-354: with max.compaction.lag.ms, a compacted topic's active segment rolls at that lag
    (Kafka's maxSegmentMs) and the log is cleaned whatever its dirty ratio."""
    broker = broker_factory(config=CLEANER)
    topic = "compacted-max-lag"
    create_topic(broker, topic, 1, config={"cleanup.policy": "compact", "min.cleanable.dirty.ratio": "0.99",
                                           "max.compaction.lag.ms": "1000", "delete.retention.ms": "1000"})
    latest = produce(broker, topic, [(f"k{i % 5}".encode(), f"v{i}".encode()) for i in range(100)])
    time.sleep(1.2)
    produce(broker, topic, [(b"later", b"x")])  # rolls: the first segment is older than the lag
    expected = sorted((off, k) for k, off in latest.items())
    wait_until(lambda: [(o, k) for o, k, _ in consume_all(broker, topic, [0])[0] if k != b"later"] == expected,
               timeout=30, what="one record per key, though segment.ms (7 days) never passed")
