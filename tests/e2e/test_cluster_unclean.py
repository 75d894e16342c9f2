"""Issue 17: `unclean.leader.election.enable`, as Kafka (KRaft) honours it. A partition whose
only in-sync replica is dead stays leaderless while unclean elections are off; switching the
topic's config, or the cluster-wide broker default, on (IncrementalAlterConfigs) elects the live
replica outside the ISR at once, and the records only the dead replica had are gone: unclean
election's price."""

import time

import pytest
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource, ResourceType
from kafka import KafkaAdminClient

from conftest import wait_until
from test_cluster_admin import create_assigned
from test_cluster_failover import controller_of, replica_records

TOPIC = "unclean"
UNCLEAN = "unclean.leader.election.enable"


def partition_zero(cluster):
    """(leader, leader_epoch, isr) of partition 0 as Metadata (v7+, with epochs) reports it;
    None when the client could not ask (a broker it picked has just died)."""
    try:
        admin = KafkaAdminClient(bootstrap_servers=cluster.bootstrap.split(","), request_timeout_ms=10000)
    except Exception:
        return None
    try:
        (t,) = admin.describe_topics([TOPIC])
    except Exception:
        return None
    finally:
        admin.close()
    (p,) = [p for p in t["partitions"] if p["partition_index"] == 0]
    return p["leader_id"], p["leader_epoch"], sorted(p["isr_nodes"])


def produce_acked(bootstrap, values):
    """Produces `values` to partition 0 with acks=all; returns the acknowledged offsets, in order."""
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True,
                  "message.timeout.ms": 30000, "topic.metadata.refresh.interval.ms": 500})
    acked, errors = [], []
    for v in values:
        p.produce(TOPIC, value=v, partition=0,
                  on_delivery=lambda err, msg: errors.append(err) if err else acked.append(msg.offset()))
    assert p.flush(45) == 0, "records left undelivered"
    assert not errors, errors
    return acked


def read_all(broker):
    """Every record of partition 0, read from `broker` (its leader), as (offset, value)."""
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "unclean-reader", "enable.auto.commit": False})
    try:
        low, high = c.get_watermark_offsets(TopicPartition(TOPIC, 0), timeout=10)
        c.assign([TopicPartition(TOPIC, 0, low)])
        out = []
        while len(out) < high - low:
            msg = c.poll(10)
            assert msg is not None, f"read {len(out)} of {high - low} records"
            assert msg.error() is None, msg.error()
            out.append((msg.offset(), msg.value()))
        return (low, high), out
    finally:
        c.close()


def set_unclean(cluster, value, where: str = "topic"):
    """Sets unclean.leader.election.enable on the topic, or as the cluster-wide broker default
    (the BROKER resource named "")."""
    if where != "topic":
        # On the wire: the Python clients refuse a BROKER resource named "".
        from test_dynamic_broker_configs import SET, incremental

        port = next(cluster.broker(b).port for b in cluster.live_brokers())
        assert incremental(port, "", [(UNCLEAN, SET, value)]) == (0, None)
        return
    admin = cluster.admin()
    res = ConfigResource(ResourceType.TOPIC, TOPIC, incremental_configs=[ConfigEntry(UNCLEAN, value, incremental_operation=AlterConfigOpType.SET)])
    admin.incremental_alter_configs([res])[res].result(timeout=30)


@pytest.mark.parametrize("where", ["topic", "cluster-default"])
def test_a_leaderless_partition_waits_until_unclean_election_is_switched_on(cluster_factory, where):
    # Five voters: the quorum outlives both replicas' brokers.
    cluster = cluster_factory(size=5)
    wait_until(lambda: controller_of(cluster) is not None, 15, what="an active controller")
    controller = controller_of(cluster)
    first, second = [b for b in (1, 2, 3, 4, 5) if b != controller][:2]
    # Off by default (Kafka's); the topic variant also says so on the topic.
    topic_config = {"min.insync.replicas": "1", **({UNCLEAN: "false"} if where == "topic" else {})}
    create_assigned(cluster, TOPIC, [[first, second]], config=topic_config)
    wait_until(lambda: partition_zero(cluster) == (first, 0, sorted([first, second])), 15, what="both replicas in sync")

    # Both replicas have the first batch.
    early = [f"early-{i}".encode() for i in range(100)]
    assert produce_acked(cluster.bootstrap, early) == list(range(100))

    # The follower dies: the ISR shrinks to the leader, which still acknowledges acks=all.
    cluster.broker(second).kill()
    wait_until(lambda: partition_zero(cluster) == (first, 0, [first]), 20, what=f"the ISR shrinks to {first}")
    doomed = [f"doomed-{i}".encode() for i in range(50)]
    assert produce_acked(cluster.bootstrap, doomed) == list(range(100, 150))

    # The leader dies too; the follower, behind, comes back: with unclean elections off the
    # partition waits for its last in-sync replica.
    cluster.broker(first).kill()
    wait_until(lambda: partition_zero(cluster) == (-1, 1, [first]), 20, what="the partition goes leaderless")
    cluster.broker(second).start()
    wait_until(lambda: second in cluster.live_brokers(), 20, what=f"broker {second} unfenced")
    # Given time to (wrongly) elect it: several heartbeats past its unfencing.
    time.sleep(3)
    assert partition_zero(cluster) == (-1, 1, [first]), "no unclean election with the config false"
    errors = []
    p = Producer({"bootstrap.servers": cluster.bootstrap, "acks": "all", "message.timeout.ms": 3000})
    p.produce(TOPIC, value=b"refused", partition=0, on_delivery=lambda err, msg: errors.append(err))
    p.flush(15)
    assert len(errors) == 1 and errors[0] is not None, errors
    assert errors[0].code() in (KafkaError._MSG_TIMED_OUT, KafkaError.LEADER_NOT_AVAILABLE,
                                KafkaError.NOT_LEADER_FOR_PARTITION), errors[0]

    # Switching the config on (the topic's, or the cluster-wide default) elects the live replica
    # outside the ISR, in the next epoch.
    set_unclean(cluster, "true", where)
    wait_until(lambda: partition_zero(cluster) == (second, 2, [second]), 20, what=f"broker {second} elected uncleanly")
    late = [f"late-{i}".encode() for i in range(10)]
    acked = produce_acked(cluster.bootstrap, late)
    # The new leader's log ended where it fell behind: the doomed records' offsets are reused.
    assert acked == list(range(100, 110)), acked
    (low, high), records = read_all(cluster.broker(second))
    assert (low, high) == (0, 110), (low, high)
    assert [v for _, v in records] == early + late, "the records only the dead leader had are gone"
    assert not any(v.startswith(b"doomed") for _, v in records)

    # The old leader returns: it truncates the doomed tail (KIP-101: its epoch-0 records past
    # offset 100 diverge from the new leader's epoch-2 log) and rejoins the ISR.
    cluster.broker(first).start()
    wait_until(lambda: partition_zero(cluster) == (second, 2, sorted([first, second])), 45,
               what=f"broker {first} back in the ISR")
    wait_until(lambda: replica_records(cluster.broker(first), TOPIC, 0) == replica_records(cluster.broker(second), TOPIC, 0),
               15, what="both replicas hold the same records")
    assert [v for _, v in replica_records(cluster.broker(first), TOPIC, 0)] == early + late
