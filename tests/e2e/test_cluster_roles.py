"""KRaft's node roles (issue 17): controller-only voters that serve no Kafka listener, and
broker-only nodes that are not voters but follow the quorum's log as openraft learners.

Three clusters: one controller-only voter and two broker-only nodes (produce/consume, a metadata
change reaching the learners, a killed learner fenced, its restart); three combined voters and one
broker-only node (which binds an ephemeral port for the quorum's log, having no CONTROLLER
listener, and knows the quorum by controller.quorum.bootstrap.servers alone); and three
controller-only voters under two broker-only nodes, whose active controller is killed."""

import socket
import struct
import time

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import NewTopic

import kafka_wire as kw
from conftest import wait_until


def create_topic(cluster, name, partitions, rf):
    admin = cluster.admin()  # kept alive until the answer comes
    admin.create_topics([NewTopic(name, partitions, rf)])[name].result(timeout=30)
    wait_until(lambda: len(cluster.partition_state(name)) == partitions
               and all(p["leader"] >= 0 and len(p["isrs"]) == rf for p in cluster.partition_state(name).values()),
               30, what=f"{name}'s partitions have leaders and full ISRs")


def produce(bootstrap, topic, partitions, count):
    """acks=all, idempotent; returns the acknowledged values per partition, in offset order."""
    acked, errors = {}, []
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True, "linger.ms": 2})

    def on_delivery(err, msg):
        if err is not None:
            errors.append(err)
        else:
            acked.setdefault(msg.partition(), []).append((msg.offset(), msg.value()))

    for i in range(count):
        p.produce(topic, value=f"v{i:05d}".encode(), partition=i % partitions, on_delivery=on_delivery)
        p.poll(0)
    assert p.flush(60) == 0, "records never acknowledged nor failed"
    assert errors == [], errors
    return {part: [v for _, v in sorted(vals)] for part, vals in acked.items()}


def consume(bootstrap, topic, partitions, expected):
    """Reads every partition from offset 0 until it has as many records as `expected` says."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "roles-reader", "enable.auto.commit": False,
                  "auto.offset.reset": "earliest"})
    c.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    got = {}
    deadline = time.monotonic() + 30
    try:
        while sum(len(v) for v in got.values()) < sum(len(v) for v in expected.values()) and time.monotonic() < deadline:
            msg = c.poll(0.5)
            if msg is None or msg.error():
                continue
            got.setdefault(msg.partition(), []).append(msg.value())
    finally:
        c.close()
    return got


def metadata_brokers(cluster):
    md = cluster.admin().list_topics(timeout=10)
    return sorted(md.brokers.keys()), md.controller_id


def cluster_id_of(broker):
    """The cluster id this broker itself answers (Metadata v2, no topics), on a raw connection."""
    with kw.connect(broker.port) as sock:
        data = kw.roundtrip(sock, kw.frame(3, 2, 7, kw.i32(0)))
    pos = 4  # correlation id
    (count,) = struct.unpack_from(">i", data, pos)
    pos += 4
    for _ in range(count):
        pos += 4  # node id
        (n,) = struct.unpack_from(">h", data, pos)
        pos += 2 + n + 4  # host, port
        (n,) = struct.unpack_from(">h", data, pos)
        pos += 2 + max(n, 0)  # rack
    (n,) = struct.unpack_from(">h", data, pos)
    return data[pos + 2:pos + 2 + n].decode()


def partition_dirs(broker, topic):
    return sorted(d.name for d in broker.data_dir.glob(f"{topic}-*") if d.is_dir())


def port_refuses(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return False
    except OSError:
        return True


def test_controller_only_voter_and_broker_only_nodes(cluster_factory):
    cluster = cluster_factory(roles=["controller", "broker", "broker"])
    controller, b2, b3 = cluster.brokers

    brokers, controller_id = metadata_brokers(cluster)
    assert brokers == [2, 3], "Metadata lists exactly the brokers, never the controller-only node"
    assert controller_id in (2, 3), "clients are told of a broker they can reach, not the controller-only node"
    admin = cluster.admin()  # kept alive until the answer comes
    described = admin.describe_cluster(request_timeout=10).result(timeout=15)
    assert sorted(n.id for n in described.nodes) == [2, 3]
    assert port_refuses(controller.port), "a controller-only node serves no Kafka listener"
    assert "controller listening" in controller.log_path.read_text()
    for b in (b2, b3):
        assert "joined the quorum as a learner" in b.log_path.read_text(), f"node {b.node_id} is a learner"
    assert partition_dirs(controller, "__consumer_offsets") == [], "a controller-only node hosts no partition"

    # An RF=2 topic lives on the two broker-only nodes; acks=all writes come back whole.
    create_topic(cluster, "roles", partitions=4, rf=2)
    assert all(sorted(p["replicas"]) == [2, 3] for p in cluster.partition_state("roles").values())
    acked = produce(cluster.bootstrap, "roles", 4, 400)
    assert consume(cluster.bootstrap, "roles", 4, acked) == acked

    # A later metadata change reaches both learners: each opens its replicas of the new topic.
    create_topic(cluster, "later", partitions=2, rf=2)
    for b in (b2, b3):
        wait_until(lambda b=b: partition_dirs(b, "later") == ["later-0", "later-1"], 15,
                   what=f"node {b.node_id} opened its replicas of a topic created after it joined")
    assert partition_dirs(controller, "later") == []

    # A killed broker-only node is fenced by the controller-only voter; its leaderships move.
    b3.kill()
    wait_until(lambda: metadata_brokers(cluster)[0] == [2], 20, what="broker 3 fenced")
    wait_until(lambda: all(p["leader"] == 2 and p["isrs"] == [2] for p in cluster.partition_state("roles").values()),
               20, what="every leadership on broker 2, which alone is in sync")
    assert produce(cluster.bootstrap, "roles", 4, 40), "the survivor leads and takes writes (min.insync.replicas=1)"

    # Restarted at the same address, it is still learner 3 (membership is in the Raft log): the
    # controller writes no second membership change for it, and it is a broker again.
    b3.start()
    wait_until(lambda: metadata_brokers(cluster)[0] == [2, 3], 30, what="broker 3 unfenced after its restart")
    added = [line for line in controller.log_path.read_text().splitlines()
             if "learner added to the quorum" in line and "node_id=3 " in line]
    assert len(added) == 1, added
    assert b3.log_path.read_text().count("joined the quorum as a learner") == 2, "it asked again, harmlessly"


def test_a_broker_only_node_joins_combined_voters(cluster_factory):
    cluster = cluster_factory(roles=["broker,controller"] * 3 + ["broker"], learner_listener=False, learner_bootstrap=True)
    learner = cluster.broker(4)
    assert metadata_brokers(cluster)[0] == [1, 2, 3, 4]
    text = learner.log_path.read_text()
    assert "joined the quorum as a learner" in text
    assert "controller.quorum.voters" not in learner.config_path.read_text(), "it knows the quorum by bootstrap servers"
    wait_until(lambda: cluster_id_of(learner) == cluster_id_of(cluster.broker(1)), 10,
               what="the learner answers the cluster id the voters derived")

    # Writes through the learner alone, to partitions it holds.
    create_topic(cluster, "mixed", partitions=4, rf=3)
    assert any(4 in p["replicas"] for p in cluster.partition_state("mixed").values())
    acked = produce(learner.bootstrap, "mixed", 4, 200)
    assert consume(learner.bootstrap, "mixed", 4, acked) == acked

    # The active controller dies: the new one keeps replicating the log to the learner.
    active = metadata_brokers(cluster)[1]
    assert active in (1, 2, 3), "the active controller is a voter"
    cluster.broker(active).kill()
    wait_until(lambda: metadata_brokers(cluster)[1] not in (active, -1), 30, what="a new active controller")
    assert metadata_brokers(cluster)[1] in (1, 2, 3), "a learner never campaigns: the new one is a voter"
    create_topic(cluster, "after-failover", partitions=3, rf=3)
    on_learner = [p for p, s in cluster.partition_state("after-failover").items() if 4 in s["replicas"]]
    assert on_learner, "three live brokers: every partition has a replica on the learner"
    wait_until(lambda: partition_dirs(learner, "after-failover") == [f"after-failover-{p}" for p in sorted(on_learner)],
               15, what="the learner follows the new active controller's log")

    # Restarted, the learner keeps its id, announces its new ephemeral port, and is a broker again.
    learner.kill()
    wait_until(lambda: 4 not in metadata_brokers(cluster)[0], 20, what="the learner fenced")
    learner.start()
    wait_until(lambda: 4 in metadata_brokers(cluster)[0], 30, what="the restarted learner unfenced")
    wait_until(lambda: all(4 in s["isrs"] for s in cluster.partition_state("mixed").values() if 4 in s["replicas"]),
               30, what="the restarted learner back in its partitions' ISRs")


def test_three_controller_only_voters_fail_over_under_two_broker_only_nodes(cluster_factory):
    cluster = cluster_factory(roles=["controller"] * 3 + ["broker"] * 2)
    assert metadata_brokers(cluster)[0] == [4, 5]
    create_topic(cluster, "before", partitions=2, rf=2)
    acked = produce(cluster.bootstrap, "before", 2, 100)
    assert consume(cluster.bootstrap, "before", 2, acked) == acked

    # The controller that added the learners was the active one (nothing failed since): kill it.
    active = [c for c in cluster.brokers[:3] if "learner added to the quorum" in c.log_path.read_text()]
    assert len(active) == 1, [c.node_id for c in active]
    active[0].kill()
    create_topic(cluster, "after", partitions=2, rf=2)  # needs a new active controller
    for b in cluster.brokers[3:]:
        wait_until(lambda b=b: partition_dirs(b, "after") == ["after-0", "after-1"], 15,
                   what=f"node {b.node_id} follows the new active controller's log")
    assert metadata_brokers(cluster)[0] == [4, 5], "the new active controller keeps both brokers unfenced"
    acked = produce(cluster.bootstrap, "after", 2, 100)
    assert consume(cluster.bootstrap, "after", 2, acked) == acked
