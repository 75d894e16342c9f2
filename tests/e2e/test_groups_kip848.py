"""KIP-848 consumer groups (`group.protocol=consumer`) with confluent-kafka (librdkafka 2.16):
server-side assignment, incremental hand-over, a peer leaving, commits with member epochs."""

import time

from confluent_kafka import Consumer, Producer, TopicPartition

from conftest import admin_for, create_topic, producer_conf


def _consumer(broker, group):
    c = Consumer({
        "bootstrap.servers": broker.bootstrap,
        "group.id": group,
        "group.protocol": "consumer",
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
    })
    c.subscribe(["kip848"])
    return c


def _assigned(c):
    return sorted(tp.partition for tp in c.assignment())


def test_kip848_members_split_partitions_and_survive_a_leave(broker_factory):
    broker = broker_factory(cores=2)
    create_topic(broker, "kip848", 6)
    p = Producer(producer_conf(broker))
    n = 1200
    for i in range(n):
        p.produce("kip848", value=b"%06d" % i, partition=i % 6)
    assert p.flush(30) == 0

    c1, c2 = _consumer(broker, "g848"), _consumer(broker, "g848")
    # Nothing is committed, so a partition that moves from the first member to
    # the second while the group forms is read again from earliest, as in Kafka.
    # Hence the counts are per member: no member may see a record twice, and
    # each member reads its final partitions to the end.
    seen = ({}, {})
    last = ({}, {})
    per_partition = n // 6

    def drained(i, c):
        return all(last[i].get(q) == per_partition - 1 for q in _assigned(c))

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        for i, c in enumerate((c1, c2)):
            m = c.poll(0.2)
            if m is not None and m.error() is None:
                seen[i][m.value()] = seen[i].get(m.value(), 0) + 1
                last[i][m.partition()] = m.offset()
        a1, a2 = _assigned(c1), _assigned(c2)
        if a1 and a2 and len(a1) + len(a2) == 6 and drained(0, c1) and drained(1, c2):
            break
    a1, a2 = _assigned(c1), _assigned(c2)
    read = set(seen[0]) | set(seen[1])
    assert len(read) == n, f"read {len(read)} of {n} records"
    assert set(a1).isdisjoint(a2), f"overlapping assignments {a1} {a2}"
    assert sorted(a1 + a2) == list(range(6)), f"assignments {a1} {a2} do not cover the topic"
    assert drained(0, c1) and drained(1, c2), f"members did not reach the end: {last}"
    for i in (0, 1):
        twice = [v for v, count in seen[i].items() if count > 1]
        assert not twice, f"member {i + 1} got {len(twice)} records twice, e.g. {twice[:3]}"

    # Commits carry the member epoch (OffsetCommit v9) and come back from the coordinator.
    c1.commit(asynchronous=False)
    committed = c1.committed([TopicPartition("kip848", q) for q in a1], timeout=10)
    assert [tp.offset for tp in committed] == [n // 6] * len(a1)

    # The admin client lists groups from the brokers it knows; give its metadata a moment.
    admin = admin_for(broker)
    deadline = time.monotonic() + 15
    listed = []
    while time.monotonic() < deadline and "g848" not in listed:
        listed = [g.group_id for g in admin.list_consumer_groups(request_timeout=10).result().valid]
        time.sleep(0.2)
    assert "g848" in listed

    # The peer leaves (member epoch -1): the survivor gets every partition.
    c2.close()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and _assigned(c1) != list(range(6)):
        c1.poll(0.2)
    assert _assigned(c1) == list(range(6)), f"survivor owns {_assigned(c1)}"
    c1.close()
