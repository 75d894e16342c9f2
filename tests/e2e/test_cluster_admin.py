"""Issue 17's admin surface on a three-broker cluster: preferred leader election (ElectLeaders), a
KIP-455 reassignment that moves a partition from brokers [1, 2] to [2, 3] under an `acks=all`
producer with nothing lost, and KIP-951's leader hint on a produce sent to a follower."""


from confluent_kafka import ElectionType, TopicPartition
from confluent_kafka.admin import NewTopic
from kafka import KafkaAdminClient
from kafka import TopicPartition as KTopicPartition
from kafka.protocol.consumer import FetchRequest, FetchResponse
from kafka.protocol.producer import ProduceRequest, ProduceResponse

import kafka_wire as kw
from conftest import wait_until
from test_cluster_failover import ContinuousProducer, controller_of, replica_records

UNKNOWN_TOPIC_OR_PARTITION = 3
NOT_LEADER_OR_FOLLOWER = 6
PREFERRED_LEADER_NOT_AVAILABLE = 80
ELECTION_NOT_NEEDED = 84


def create_assigned(cluster, name, assignment, config=None):
    """A topic whose partition i is on `assignment[i]` (first replica: the preferred leader)."""
    admin = cluster.admin()  # kept: the futures fail if the client is collected first
    futures = admin.create_topics([NewTopic(name, len(assignment), replica_assignment=assignment, config=config or {})])
    futures[name].result(timeout=30)
    wait_until(lambda: [s["leader"] for _, s in sorted(cluster.partition_state(name).items())] == [a[0] for a in assignment],
               30, what=f"{name}'s partitions led by their preferred replicas")


def kafka_python_admin(cluster):
    return KafkaAdminClient(bootstrap_servers=cluster.bootstrap, request_timeout_ms=30000)


def test_preferred_election_moves_leadership_back(cluster_factory):
    cluster = cluster_factory(size=3)
    # The preferred leader is not the active controller, so killing it moves only leaderships
    # (the controller's own failover is test_cluster_failover's business).
    wait_until(lambda: controller_of(cluster) is not None, 15, what="an active controller")
    controller = controller_of(cluster)
    preferred, second = [b for b in (1, 2, 3) if b != controller]
    create_assigned(cluster, "pref", [[preferred, second, controller]])
    admin = cluster.admin()
    tp = TopicPartition("pref", 0)
    result = admin.elect_leaders(ElectionType.PREFERRED, [tp]).result(timeout=30)
    assert result[tp] is not None and result[tp].code() == ELECTION_NOT_NEEDED, result

    # The preferred leader dies: leadership moves on; it restarts and rejoins the ISR, but the
    # new leader keeps leading.
    cluster.broker(preferred).kill()
    wait_until(lambda: cluster.partition_state("pref")[0]["leader"] == second, 15,
               what=f"broker {second} leads after {preferred}'s SIGKILL")
    cluster.broker(preferred).start()
    # Until the preferred replica is unfenced and back in the ISR (as the controller sees it; a
    # restarted broker may answer Metadata from its snapshot before it has caught up), the
    # election is refused as PREFERRED_LEADER_NOT_AVAILABLE; then it succeeds.
    admin = cluster.admin()
    refusals = []

    def elected():
        result = admin.elect_leaders(ElectionType.PREFERRED, [tp]).result(timeout=30)
        if result[tp] is None:
            return True
        refusals.append(result[tp].code())
        return False
    wait_until(elected, 45, interval=0.5, what=f"the preferred election succeeds once broker {preferred} is in sync")
    assert set(refusals) <= {PREFERRED_LEADER_NOT_AVAILABLE}, refusals
    wait_until(lambda: cluster.partition_state("pref")[0]["leader"] == preferred, 10, what="the preferred replica leads again")
    assert sorted(cluster.partition_state("pref")[0]["isrs"]) == [1, 2, 3]

    # An unclean election is made only for a leaderless partition: with a leader in place, none is needed.
    result = admin.elect_leaders(ElectionType.UNCLEAN, [tp]).result(timeout=30)
    assert result[tp] is not None and result[tp].code() == ELECTION_NOT_NEEDED, result


def test_a_reassignment_moves_a_partition_under_load_with_nothing_lost(cluster_factory):
    cluster = cluster_factory(size=3)
    create_assigned(cluster, "moving", [[1, 2]])
    prod = ContinuousProducer(cluster.bootstrap, "moving", partitions=1).start()
    wait_until(lambda: len(prod.acked) > 200, 30, what="writes acknowledged before the move")

    # Broker 3 is down when the move starts, so the reassignment is observably pending: it cannot
    # complete before broker 3 is back and has caught up.
    cluster.broker(3).kill()
    wait_until(lambda: cluster.live_brokers() == [1, 2], 15, what="broker 3 fenced")
    wait_until(lambda: controller_of(cluster) in (1, 2), 15, what="an active controller among the live brokers")
    admin = kafka_python_admin(cluster)
    tp = KTopicPartition("moving", 0)
    assert admin.alter_partition_reassignments({tp: [2, 3]}) == {tp: None}
    pending = admin.list_partition_reassignments()
    assert pending == {tp: {"replicas": [2, 3, 1], "adding_replicas": [3], "removing_replicas": [1]}}, pending
    # Metadata may come from a broker a moment behind the controller: wait for it, not once.
    wait_until(lambda: (lambda st: (st["leader"], st["replicas"]) == (1, [2, 3, 1]))(cluster.partition_state("moving")[0]),
               10, what="Metadata shows the adding replica")

    acked_before = len(prod.acked)
    cluster.broker(3).start()
    wait_until(lambda: admin.list_partition_reassignments() == {}, 45, what="the reassignment completes")
    wait_until(lambda: (lambda st: (st["leader"], st["replicas"], sorted(st["isrs"])) == (2, [2, 3], [2, 3]))(
        cluster.partition_state("moving")[0]), 10, what="Metadata shows the target replicas, led by broker 2")
    wait_until(lambda: not (cluster.broker(1).data_dir / "moving-0").exists(), 15,
               what="broker 1's replica directory deleted")

    # Writes carry on through the new leader.
    moved_at = len(prod.acked)
    wait_until(lambda: len(prod.acked) > moved_at + 200, 30, what="writes acknowledged after the move")
    prod.finish()
    assert moved_at > acked_before, "writes were acknowledged while the reassignment was in flight"
    fatal = [e for e in prod.errors if not e.retriable()]
    assert not fatal, fatal[:5]
    print(f"acknowledged {len(prod.acked)} records, {len(prod.errors)} retriable errors")

    for b in cluster.brokers:
        b.stop()
    acked = sorted((o, v) for (_, o, v, _) in prod.acked)
    for node in (2, 3):
        records = replica_records(cluster.broker(node), "moving", 0)
        values = [v for _, v in records]
        assert len(values) == len(set(values)), f"node {node}: duplicated values"
        by_offset = dict(records)
        lost = [(o, v) for o, v in acked if by_offset.get(o) != v]
        assert not lost, f"node {node}: {len(lost)} acknowledged records missing, first {lost[:3]}"
    assert replica_records(cluster.broker(3), "moving", 0) == replica_records(cluster.broker(2), "moving", 0)


def test_cancelling_a_reassignment_reverts_it(cluster_factory):
    cluster = cluster_factory(size=3)
    create_assigned(cluster, "stay", [[1, 2]])
    cluster.broker(3).kill()
    wait_until(lambda: cluster.live_brokers() == [1, 2], 15, what="broker 3 fenced")
    wait_until(lambda: controller_of(cluster) in (1, 2), 15, what="an active controller among the live brokers")
    admin = kafka_python_admin(cluster)
    tp = KTopicPartition("stay", 0)
    assert admin.alter_partition_reassignments({tp: [3]}) == {tp: None}
    assert tp in admin.list_partition_reassignments()
    assert admin.alter_partition_reassignments({tp: None}) == {tp: None}
    assert admin.list_partition_reassignments() == {}
    wait_until(lambda: (lambda st: (st["leader"], st["replicas"]) == (1, [1, 2]))(cluster.partition_state("stay")[0]),
               10, what="Metadata shows the original replicas again")
    errors = admin.alter_partition_reassignments({tp: None})
    assert errors[tp] is not None and errors[tp].errno == 85, errors  # NO_REASSIGNMENT_IN_PROGRESS


def raw_produce_v11(broker, topic, partition):
    """Produce v11 (flexible, KIP-951 fields) of one record; the decoded response."""
    T = ProduceRequest.TopicProduceData
    req = ProduceRequest(transactional_id=None, acks=-1, timeout_ms=5000, topic_data=[
        T(name=topic, partition_data=[T.PartitionProduceData(index=partition, records=kw.record_batch([(None, b"raw")]))]),
    ])
    req.API_VERSION = 11
    req.with_header(correlation_id=11, client_id="e2e-raw")
    with kw.connect(broker.port) as sock:
        data = kw.roundtrip(sock, req.encode(header=True, framed=True))
    return ProduceResponse.decode(data, version=11, header=True)


def raw_fetch_v16(broker, topic_id, partition):
    """A consumer's Fetch v16 (topic ids, KIP-951 fields) from offset 0; the decoded response."""
    T = FetchRequest.FetchTopic
    req = FetchRequest(max_wait_ms=0, min_bytes=0, max_bytes=1 << 20, isolation_level=0, session_id=0, session_epoch=-1,
                       topics=[T(topic_id=topic_id, partitions=[T.FetchPartition(partition=partition, current_leader_epoch=-1,
                                                                                  fetch_offset=0, last_fetched_epoch=-1,
                                                                                  log_start_offset=-1, partition_max_bytes=1 << 20)])],
                       forgotten_topics_data=[], rack_id="")
    req.API_VERSION = 16
    req.with_header(correlation_id=16, client_id="e2e-raw")
    with kw.connect(broker.port) as sock:
        data = kw.roundtrip(sock, req.encode(header=True, framed=True))
    return FetchResponse.decode(data, version=16, header=True)


def test_a_produce_to_a_follower_names_the_leader(cluster_factory):
    cluster = cluster_factory(size=3)
    create_assigned(cluster, "hinted", [[1, 2, 3]])
    # Broker 2 may apply the new topic's metadata a moment after the broker that answered above.
    answers = []
    wait_until(lambda: answers.append(raw_produce_v11(cluster.broker(2), "hinted", 0))
               or answers[-1].responses[0].partition_responses[0].error_code != UNKNOWN_TOPIC_OR_PARTITION,
               10, what="broker 2 knows the topic")
    resp = answers[-1]
    part = resp.responses[0].partition_responses[0]
    assert part.error_code == NOT_LEADER_OR_FOLLOWER, part
    assert (part.current_leader.leader_id, part.current_leader.leader_epoch) == (1, 0), part
    endpoints = [(e.node_id, e.host, e.port) for e in resp.node_endpoints]
    assert endpoints == [(1, "127.0.0.1", cluster.broker(1).port)], endpoints

    # The leader itself accepts it (once its log is open), and sends no hint.
    answers = []
    wait_until(lambda: answers.append(raw_produce_v11(cluster.broker(1), "hinted", 0))
               or answers[-1].responses[0].partition_responses[0].error_code != UNKNOWN_TOPIC_OR_PARTITION,
               10, what="broker 1 has opened its log")
    resp = answers[-1]
    part = resp.responses[0].partition_responses[0]
    assert part.error_code == 0 and part.current_leader is None and not resp.node_endpoints, resp


def test_a_fetch_from_a_follower_names_the_leader(cluster_factory):
    cluster = cluster_factory(size=3)
    create_assigned(cluster, "fetched", [[3, 1, 2]])
    described = kafka_python_admin(cluster).describe_topics(["fetched"])
    topic_id = described[0]["topic_id"]
    answers = []
    wait_until(lambda: answers.append(raw_fetch_v16(cluster.broker(1), topic_id, 0))
               or answers[-1].responses[0].partitions[0].error_code != UNKNOWN_TOPIC_OR_PARTITION,
               10, what="broker 1 has opened its replica")
    resp = answers[-1]
    part = resp.responses[0].partitions[0]
    assert part.error_code == NOT_LEADER_OR_FOLLOWER, part
    assert (part.current_leader.leader_id, part.current_leader.leader_epoch) == (3, 0), part
    endpoints = [(e.node_id, e.host, e.port) for e in resp.node_endpoints]
    assert endpoints == [(3, "127.0.0.1", cluster.broker(3).port)], endpoints
