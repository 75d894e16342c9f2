"""Issue 17's acceptance on a three-broker cluster on this machine: replicated partitions, leader
failover under an `acks=all` idempotent producer, the active controller's failover, and
`min.insync.replicas` with brokers down. Every broker is a real `ringlog` process; SIGKILL gives
none of them a chance to flush what was not already durable."""

import threading
import time

import pytest
from confluent_kafka import KafkaError, Producer
from confluent_kafka.admin import NewTopic

import kafka_wire as kw
from conftest import wait_until

PARTITIONS = 6


def create_topic(cluster, name, partitions=PARTITIONS, rf=3, config=None):
    admin = cluster.admin()
    futures = admin.create_topics([NewTopic(name, partitions, rf, config=config or {})])
    futures[name].result(timeout=30)
    wait_until(lambda: len(cluster.partition_state(name)) == partitions
               and all(p["leader"] >= 0 for p in cluster.partition_state(name).values()), 30,
               what=f"{name}'s partitions have leaders")


class ContinuousProducer:
    """An idempotent acks=all producer writing unique values round-robin over the partitions,
    recording every acknowledgement (partition, offset, value) and every error."""

    def __init__(self, bootstrap, topic, partitions=PARTITIONS, conf=None):
        self.p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True,
                           "linger.ms": 2, "message.timeout.ms": 60000, "topic.metadata.refresh.interval.ms": 1000,
                           **(conf or {})})
        self.topic, self.partitions = topic, partitions
        self.acked = []  # (partition, offset, value, monotonic time)
        self.errors = []
        self.stop_flag = threading.Event()
        self.sent = 0
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _on_delivery(self, err, msg):
        if err is not None:
            self.errors.append(err)
        else:
            self.acked.append((msg.partition(), msg.offset(), msg.value(), time.monotonic()))

    def _run(self):
        while not self.stop_flag.is_set():
            value = f"v{self.sent:08d}".encode()
            try:
                self.p.produce(self.topic, value=value, partition=self.sent % self.partitions, on_delivery=self._on_delivery)
                self.sent += 1
            except BufferError:
                pass
            self.p.poll(0.001 if self.sent % 20 else 0.01)

    def start(self):
        self.thread.start()
        return self

    def finish(self, timeout=60):
        self.stop_flag.set()
        self.thread.join(timeout=10)
        left = self.p.flush(timeout)
        assert left == 0, f"{left} records never acknowledged nor failed"


def acked_after(prod, t, partition):
    return [a for a in prod.acked if a[3] > t and a[0] == partition]


def replica_records(broker, topic, partition):
    return [(o, v) for (o, _, _, v) in kw.partition_log_records(broker.data_dir / f"{topic}-{partition}")]


def check_every_replica(cluster, prod, topic, partitions=PARTITIONS):
    """Every acknowledged record is present exactly once, at its acknowledged offset, in order, on
    every replica; and the replicas hold the same records."""
    for b in cluster.brokers:
        b.stop()
    for p in range(partitions):
        acked = sorted((o, v) for (pp, o, v, _) in prod.acked if pp == p)
        assert acked, f"nothing acknowledged on partition {p}"
        copies = {b.node_id: replica_records(b, topic, p) for b in cluster.brokers}
        for node, records in copies.items():
            values = [v for _, v in records]
            assert len(values) == len(set(values)), f"node {node} partition {p}: duplicated values"
            offsets = [o for o, _ in records]
            assert offsets == list(range(offsets[0], offsets[0] + len(offsets))) if offsets else True, \
                f"node {node} partition {p}: offsets not contiguous"
            by_offset = dict(records)
            lost = [(o, v) for o, v in acked if by_offset.get(o) != v]
            assert not lost, f"node {node} partition {p}: {len(lost)} acknowledged records missing, first {lost[:3]}"
        reference = copies[cluster.brokers[0].node_id]
        for node, records in copies.items():
            assert records == reference, f"partition {p}: node {node}'s log differs from node {cluster.brokers[0].node_id}'s"


def test_a_killed_leader_fails_over_and_rejoins_with_nothing_lost(cluster_factory):
    cluster = cluster_factory(size=3)
    create_topic(cluster, "orders", config={"min.insync.replicas": "2"})
    prod = ContinuousProducer(cluster.bootstrap, "orders").start()
    wait_until(lambda: len({a[0] for a in prod.acked}) == PARTITIONS, 30, what="writes on every partition")
    time.sleep(1)

    victim_id = cluster.partition_state("orders")[0]["leader"]
    victim = cluster.broker(victim_id)
    led = [p for p, s in cluster.partition_state("orders").items() if s["leader"] == victim_id]
    killed_at = time.monotonic()
    victim.kill()

    # Within 10 s every partition (those the victim led included) acknowledges writes again.
    wait_until(lambda: all(acked_after(prod, killed_at + 0.5, p) for p in range(PARTITIONS)), 10,
               what="writes acknowledged on every partition after the leader's SIGKILL")
    first = min(a[3] for p in led for a in acked_after(prod, killed_at + 0.5, p))
    print(f"failover: first write through a new leader {first - killed_at:.2f}s after the SIGKILL")
    state = cluster.partition_state("orders")
    assert all(s["leader"] != victim_id for s in state.values()), state

    victim.start()
    wait_until(lambda: all(sorted(s["isrs"]) == [1, 2, 3] for s in cluster.partition_state("orders").values()), 45,
               what="the restarted broker rejoins every ISR")
    time.sleep(1)
    prod.finish()
    fatal = [e for e in prod.errors if not e.retriable()]
    assert not fatal, fatal[:5]
    print(f"acknowledged {len(prod.acked)} records, {len(prod.errors)} retriable errors")
    check_every_replica(cluster, prod, "orders")


def test_killing_the_active_controller_elects_another(cluster_factory):
    cluster = cluster_factory(size=3)
    create_topic(cluster, "before")
    active = controller_of(cluster)
    cluster.broker(active).kill()
    wait_until(lambda: controller_of(cluster) not in (None, active), 15, what="a new active controller")
    # The new controller fences the dead broker (its port refuses connections, or after a
    # session) and moves its leaderships; replicas go to the two live brokers only.
    wait_until(lambda: active not in cluster.live_brokers(), 10, what="the dead broker fenced")
    create_topic(cluster, "after", rf=2)
    assert all(active not in s["replicas"] for s in cluster.partition_state("after").values())
    wait_until(lambda: all(s["leader"] not in (active, -1) for s in cluster.partition_state("before").values()), 10,
               what="every partition led by a live broker")


def controller_of(cluster):
    try:
        admin = cluster.admin()
        return admin.describe_cluster(request_timeout=5).result(timeout=10).controller.id
    except Exception:
        return None


def test_min_insync_replicas_with_two_brokers_down_refuses_acks_all(cluster_factory):
    # Five voters, so the quorum outlives two dead brokers and can shrink the ISR (with three
    # voters, two down leave no quorum: the ISR cannot change and acks=all times out instead).
    cluster = cluster_factory(size=5)
    create_topic(cluster, "guarded", partitions=1, config={"min.insync.replicas": "2"})
    state = cluster.partition_state("guarded")[0]
    leader = state["leader"]
    others = [cluster.broker(r) for r in state["replicas"] if r != leader]
    for b in others:
        b.kill()
    wait_until(lambda: cluster.partition_state("guarded")[0]["isrs"] == [leader], 20, what="the ISR shrinks to the leader")
    errors = []
    p = Producer({"bootstrap.servers": cluster.broker(leader).bootstrap, "acks": "all", "message.timeout.ms": 5000,
                  "retries": 0})
    p.produce("guarded", value=b"must-not-be-acked", partition=0, on_delivery=lambda err, msg: errors.append(err))
    p.flush(15)
    assert errors and errors[0] is not None and errors[0].code() == KafkaError.NOT_ENOUGH_REPLICAS, errors
