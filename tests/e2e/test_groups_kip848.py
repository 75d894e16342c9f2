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
    seen = {}
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        for c in (c1, c2):
            m = c.poll(0.2)
            if m is not None and m.error() is None:
                seen.setdefault(m.value(), 0)
                seen[m.value()] += 1
        a1, a2 = _assigned(c1), _assigned(c2)
        if len(seen) == n and a1 and a2 and len(a1) + len(a2) == 6:
            break
    a1, a2 = _assigned(c1), _assigned(c2)
    assert len(seen) == n, f"read {len(seen)} of {n} records"
    assert set(a1).isdisjoint(a2), f"overlapping assignments {a1} {a2}"
    assert sorted(a1 + a2) == list(range(6)), f"assignments {a1} {a2} do not cover the topic"
    assert all(count == 1 for count in seen.values()), "no record delivered twice without a failure"

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
