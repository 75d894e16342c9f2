"""Issue 17: group coordinators move with `__consumer_offsets` leadership. On a three-broker cluster
a consumer group commits offsets (acks=all on the RF=3 offsets topic), the broker that coordinates
it is SIGKILLed, and the group carries on with the new coordinator: the offsets committed before
the kill are there, a live member keeps consuming and committing, and a new member resumes exactly
where the last commit left off (nothing below a commit is read twice, nothing is skipped). Run
with confluent-kafka (librdkafka) and with kafka-python."""

import time

from confluent_kafka import Consumer, KafkaException, Producer
from confluent_kafka import TopicPartition as CkTopicPartition

from conftest import wait_until
from test_cluster_failover import create_topic

TOPIC_PARTITIONS = 3
RECORDS = 600
OFFSETS_TOPIC = "__consumer_offsets"


def java_hash(s):
    """Java's String.hashCode (ASCII names: one UTF-16 unit per character)."""
    h = 0
    for ch in s:
        h = (31 * h + ord(ch)) & 0xFFFFFFFF
    return h


def coordinator_of(cluster, group):
    """The broker that leads the group's `__consumer_offsets` partition (Kafka's rule)."""
    state = cluster.partition_state(OFFSETS_TOPIC)
    return state[(java_hash(group) & 0x7FFFFFFF) % len(state)]["leader"]


def setup(cluster, topic):
    """A RF=3 topic with RECORDS records spread evenly; the offsets topic has leaders."""
    wait_until(lambda: _offsets_ready(cluster), 60, what="__consumer_offsets has a leader on every partition")
    create_topic(cluster, topic, partitions=TOPIC_PARTITIONS)
    p = Producer({"bootstrap.servers": cluster.bootstrap, "acks": "all", "enable.idempotence": True})
    for i in range(RECORDS):
        p.produce(topic, value=f"r{i:04d}".encode(), partition=i % TOPIC_PARTITIONS)
    assert p.flush(60) == 0
    return {p: RECORDS // TOPIC_PARTITIONS for p in range(TOPIC_PARTITIONS)}


def _offsets_ready(cluster):
    try:
        state = cluster.partition_state(OFFSETS_TOPIC)
    except Exception:
        return False
    return bool(state) and all(s["leader"] >= 0 for s in state.values())


def probe_committed(cluster, group, topic):
    """The group's committed offsets as its (current) coordinator answers OffsetFetch, or None
    while it cannot answer (no coordinator yet, loading)."""
    c = Consumer({"bootstrap.servers": cluster.bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        tps = c.committed([CkTopicPartition(topic, p) for p in range(TOPIC_PARTITIONS)], timeout=5)
        if any(tp.error for tp in tps):
            return None
        return {tp.partition: max(tp.offset, 0) for tp in tps}  # no commit yet: read from 0
    except KafkaException:
        return None
    finally:
        c.close()


def check_resumption(consumed_before_commit, first_member, second_member, committed, ends):
    """Every record read at least once; records below the last commit of the first member read
    exactly once; the second member starts exactly at that commit and reads to the end once."""
    assert committed == positions(first_member), "the first member's last commit is not its position"
    for p in range(TOPIC_PARTITIONS):
        first = [o for (pp, o) in first_member if pp == p]
        second = [o for (pp, o) in second_member if pp == p]
        assert second == list(range(committed[p], ends[p])), \
            f"partition {p}: the new member read {second[:3]}..{second[-3:]}, not {committed[p]}..{ends[p]} once each"
        below = [o for o in first if o < consumed_before_commit[p]]
        assert sorted(below) == list(range(consumed_before_commit[p])), \
            f"partition {p}: records below the pre-kill commit read more than once or skipped"
        assert set(first) | set(second) == set(range(ends[p])), f"partition {p}: records skipped"


# confluent-kafka -----------------------------------------------------------------------------

def ck_consumer(cluster, group, topic):
    c = Consumer({"bootstrap.servers": cluster.bootstrap, "group.id": group, "enable.auto.commit": False,
                  "auto.offset.reset": "earliest", "session.timeout.ms": 10000, "heartbeat.interval.ms": 500,
                  "topic.metadata.refresh.interval.ms": 1000})
    c.subscribe([topic])
    return c


def ck_consume(c, n, out, timeout=60):
    """Polls until `n` more records (appended to `out` as (partition, offset)) or the timeout."""
    want = len(out) + n
    deadline = time.monotonic() + timeout
    while len(out) < want and time.monotonic() < deadline:
        msg = c.poll(0.2)
        if msg is None or msg.error():
            continue
        out.append((msg.partition(), msg.offset()))
    assert len(out) >= want, f"read {len(out)} records, wanted {want}"


def ck_drain(c, out, seconds=1.5):
    """Polls for `seconds` more: anything read twice would show up."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        msg = c.poll(0.2)
        if msg is not None and not msg.error():
            out.append((msg.partition(), msg.offset()))


def ck_commit(c, timeout=40):
    """Commits the consumer's positions synchronously, retrying while the coordinator moves."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = c.commit(asynchronous=False)
            if not any(tp.error for tp in result):
                # What was committed: the positions (librdkafka leaves unchanged ones out of the
                # result; a partition nothing was read from starts at 0).
                return {tp.partition: max(tp.offset, 0) for tp in c.position(c.assignment())}
            err = [tp.error for tp in result if tp.error]
        except KafkaException as e:
            err = e.args[0]
        assert time.monotonic() < deadline, f"commit kept failing: {err}"
        time.sleep(0.2)


def positions(consumed):
    """The next offset to read per partition after `consumed` (0 where none was read)."""
    out = {p: 0 for p in range(TOPIC_PARTITIONS)}
    for p, o in consumed:
        out[p] = max(out.get(p, -1), o + 1)
    return out


def test_confluent_group_resumes_from_committed_offsets_after_the_coordinator_dies(cluster_factory):
    cluster = cluster_factory(size=3)
    topic, group = "moving-ck", "group-ck"
    ends = setup(cluster, topic)

    a = ck_consumer(cluster, group, topic)
    first = []
    ck_consume(a, 200, first)
    before = ck_commit(a)
    assert before == positions(first), (before, positions(first))
    ck_consume(a, 15, first)  # read but not committed: may be read again, nothing else may

    victim = coordinator_of(cluster, group)
    cluster.broker(victim).kill()
    # acks=all: the commit made before the kill is on the new coordinator.
    wait_until(lambda: coordinator_of(cluster, group) not in (victim, -1), 20, what="a new leader of the group's partition")
    wait_until(lambda: probe_committed(cluster, group, topic) is not None, 30, what="the new coordinator answers OffsetFetch")
    assert probe_committed(cluster, group, topic) == before

    # The live member finds the new coordinator, keeps reading and commits there.
    ck_consume(a, 185, first)
    final = ck_commit(a)
    a.close()
    assert probe_committed(cluster, group, topic) == final

    b = ck_consumer(cluster, group, topic)
    second = []
    ck_consume(b, RECORDS - sum(final.values()), second)
    ck_drain(b, second)
    b.close()
    dupes_in_first = len(first) - len(set(first))
    print(f"coordinator {victim} killed; the member read {dupes_in_first} records twice (all after its last commit)")
    check_resumption(before, first, second, final, ends)


# kafka-python --------------------------------------------------------------------------------

def kp_consumer(cluster, group, topic):
    from kafka import KafkaConsumer

    return KafkaConsumer(topic, bootstrap_servers=cluster.bootstrap.split(","), group_id=group,
                         enable_auto_commit=False, auto_offset_reset="earliest", session_timeout_ms=10000,
                         heartbeat_interval_ms=500, metadata_max_age_ms=1000, request_timeout_ms=20000)


def kp_consume(c, n, out, timeout=60):
    want = len(out) + n
    deadline = time.monotonic() + timeout
    while len(out) < want and time.monotonic() < deadline:
        for records in c.poll(timeout_ms=200, max_records=50).values():
            out.extend((r.partition, r.offset) for r in records)
    assert len(out) >= want, f"read {len(out)} records, wanted {want}"


def kp_drain(c, out, seconds=1.5):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for records in c.poll(timeout_ms=200).values():
            out.extend((r.partition, r.offset) for r in records)


def kp_commit(c, timeout=40):
    """Commits the consumed positions synchronously, retrying while the coordinator moves."""
    from kafka import OffsetAndMetadata
    from kafka.errors import KafkaError

    offsets = {tp: OffsetAndMetadata(c.position(tp), "", -1) for tp in c.assignment()}
    assert len(offsets) == TOPIC_PARTITIONS, f"the only member holds {len(offsets)} partitions"
    deadline = time.monotonic() + timeout
    while True:
        try:
            c.commit(offsets)
            return {tp.partition: om.offset for tp, om in offsets.items()}
        except KafkaError as e:
            assert time.monotonic() < deadline, f"commit kept failing: {e!r}"
            time.sleep(0.2)


def test_kafka_python_group_resumes_from_committed_offsets_after_the_coordinator_dies(cluster_factory):
    cluster = cluster_factory(size=3)
    topic, group = "moving-kp", "group-kp"
    ends = setup(cluster, topic)

    a = kp_consumer(cluster, group, topic)
    first = []
    kp_consume(a, 200, first)
    before = kp_commit(a)
    assert before == positions(first), (before, positions(first))
    kp_consume(a, 15, first)

    victim = coordinator_of(cluster, group)
    cluster.broker(victim).kill()
    wait_until(lambda: coordinator_of(cluster, group) not in (victim, -1), 20, what="a new leader of the group's partition")
    wait_until(lambda: probe_committed(cluster, group, topic) is not None, 30, what="the new coordinator answers OffsetFetch")
    assert probe_committed(cluster, group, topic) == before

    kp_consume(a, 185, first)
    final = kp_commit(a)
    a.close(autocommit=False)
    assert probe_committed(cluster, group, topic) == final

    b = kp_consumer(cluster, group, topic)
    second = []
    kp_consume(b, RECORDS - sum(final.values()), second)
    kp_drain(b, second)
    b.close(autocommit=False)
    print(f"coordinator {victim} killed; the member read {len(first) - len(set(first))} records twice")
    check_resumption(before, first, second, final, ends)
