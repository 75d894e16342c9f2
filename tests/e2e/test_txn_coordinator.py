"""The transaction coordinator, through real clients against one broker: confluent-kafka's
transactional producer (librdkafka) initialises, commits, aborts, is fenced by a second producer
with the same transactional.id, and has a transaction left open past its timeout aborted; the
coordinator's state is read back with kafka-python's DescribeTransactions and ListTransactions,
and survives a SIGKILL.

EndTxn is answered once the decision (PrepareCommit/PrepareAbort) is durable; the markers are then
written by the partition side (Router::write_txn_markers) and the Complete state follows, which
these tests wait for."""

import time
import uuid

import pytest
from confluent_kafka import KafkaError, KafkaException, Producer
from kafka.admin import KafkaAdminClient
from kafka.errors import TransactionalIdNotFoundError

from conftest import create_topic, wait_until

T = 15  # seconds: per client call


def txn_producer(broker, transactional_id: str, **extra) -> Producer:
    conf = {
        "bootstrap.servers": broker.bootstrap,
        "transactional.id": transactional_id,
        "transaction.timeout.ms": 60000,
        "socket.timeout.ms": 10000,
    }
    conf.update(extra)
    return Producer(conf)


def admin(broker) -> KafkaAdminClient:
    return KafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=T * 1000)


def describe(broker, transactional_id: str):
    a = admin(broker)
    try:
        return a.describe_transactions([transactional_id])[transactional_id]
    finally:
        a.close()


def state_of(broker, transactional_id: str) -> str:
    return describe(broker, transactional_id).state.value


def wait_for_state(broker, transactional_id: str, state: str, timeout: float = 10):
    """Waits until the id's transaction is in `state` (the markers of a decision land)."""
    wait_until(lambda: state_of(broker, transactional_id) == state, timeout, interval=0.1, what=f"{transactional_id} in {state}")


def produce_some(p: Producer, topic: str, n: int = 5):
    for i in range(n):
        p.produce(topic, key=f"k{i}".encode(), value=f"v{i}".encode())
    assert p.flush(T) == 0, "records left unsent"


def test_init_commit_and_abort_reach_their_decisions(broker):
    create_topic(broker, "txn-orders", 2)
    tid = f"tx-{uuid.uuid4().hex[:8]}"
    p = txn_producer(broker, tid)
    p.init_transactions(T)
    d = describe(broker, tid)
    assert (d.state.value, d.producer_epoch, d.transaction_timeout_ms) == ("Empty", 0, 60000)
    assert d.producer_id >= 0

    p.begin_transaction()
    produce_some(p, "txn-orders")
    d = describe(broker, tid)
    assert d.state.value == "Ongoing"
    assert {(tp.topic, tp.partition) for tp in d.topic_partitions} <= {("txn-orders", 0), ("txn-orders", 1)}
    assert d.topic_partitions, "the produced partitions are in the transaction"
    assert d.transaction_start_time_ms > 0

    p.commit_transaction(T)
    assert state_of(broker, tid) in ("PrepareCommit", "CompleteCommit")
    wait_for_state(broker, tid, "CompleteCommit")
    assert not describe(broker, tid).topic_partitions, "a completed transaction holds no partitions"

    # Abort, with another id (a prepared commit of the first id waits for its markers).
    tid2 = f"tx-{uuid.uuid4().hex[:8]}"
    p2 = txn_producer(broker, tid2)
    p2.init_transactions(T)
    p2.begin_transaction()
    produce_some(p2, "txn-orders")
    p2.abort_transaction(T)
    assert state_of(broker, tid2) in ("PrepareAbort", "CompleteAbort")
    wait_for_state(broker, tid2, "CompleteAbort")
    # The first id's producer goes on with its next transaction at the same epoch (TV1).
    p.begin_transaction()
    produce_some(p, "txn-orders", 1)
    p.commit_transaction(T)
    wait_for_state(broker, tid, "CompleteCommit")
    assert describe(broker, tid).producer_epoch == 0


def test_a_second_producer_with_the_same_id_fences_the_first(broker):
    create_topic(broker, "txn-fence", 1)
    tid = f"tx-{uuid.uuid4().hex[:8]}"
    first = txn_producer(broker, tid)
    first.init_transactions(T)
    epoch = describe(broker, tid).producer_epoch
    second = txn_producer(broker, tid)
    second.init_transactions(T)
    d = describe(broker, tid)
    assert d.producer_epoch == epoch + 1, "the new producer bumps the epoch"

    first.begin_transaction()
    first.produce("txn-fence", value=b"zombie")
    with pytest.raises(KafkaException) as err:
        first.flush(T)
        first.commit_transaction(T)
    e = err.value.args[0]
    assert e.fatal(), f"the fenced producer must get a fatal error, got {e}"
    assert e.code() in (KafkaError._FENCED, KafkaError.PRODUCER_FENCED, KafkaError.INVALID_PRODUCER_EPOCH), e
    # The fenced producer added nothing: the id's state is the second producer's.
    d = describe(broker, tid)
    assert (d.state.value, d.producer_epoch) == ("Empty", epoch + 1)


def test_a_transaction_left_open_past_its_timeout_is_aborted_and_its_producer_fenced(broker_factory):
    broker = broker_factory(config={"transaction.abort.timed.out.transaction.cleanup.interval.ms": 300})
    create_topic(broker, "txn-slow", 1)
    tid = f"tx-{uuid.uuid4().hex[:8]}"
    p = txn_producer(broker, tid, **{"transaction.timeout.ms": 2000, "message.timeout.ms": 2000, "socket.timeout.ms": 2000})
    p.init_transactions(T)
    epoch = describe(broker, tid).producer_epoch
    p.begin_transaction()
    produce_some(p, "txn-slow", 3)
    assert state_of(broker, tid) == "Ongoing"
    wait_for_state(broker, tid, "CompleteAbort")
    assert describe(broker, tid).producer_epoch == epoch + 1, "the abort bumps the epoch so the producer is fenced"
    assert "timed-out transaction aborted" in broker.log_text()
    with pytest.raises(KafkaException):
        p.commit_transaction(T)


def test_list_and_describe_transactions(broker):
    create_topic(broker, "txn-list", 1)
    open_id, idle_id = f"tx-open-{uuid.uuid4().hex[:6]}", f"tx-idle-{uuid.uuid4().hex[:6]}"
    p = txn_producer(broker, open_id)
    p.init_transactions(T)
    p.begin_transaction()
    produce_some(p, "txn-list", 2)
    q = txn_producer(broker, idle_id)
    q.init_transactions(T)

    a = admin(broker)
    try:
        listed = [t for per_broker in a.list_transactions().values() for t in per_broker]
        by_id = {t.transactional_id: t for t in listed}
        assert by_id[open_id].state.value == "Ongoing"
        assert by_id[idle_id].state.value == "Empty"
        ongoing = [t.transactional_id for b in a.list_transactions(state_filters=["Ongoing"]).values() for t in b]
        assert open_id in ongoing and idle_id not in ongoing
        pid = describe(broker, idle_id).producer_id
        by_pid = [t.transactional_id for b in a.list_transactions(producer_id_filters=[pid]).values() for t in b]
        assert by_pid == [idle_id]
        # v1: only transactions running longer than the filter.
        long_running = [t.transactional_id for b in a.list_transactions(state_filters=["Ongoing"], duration_filter_ms=3_600_000).values() for t in b]
        assert open_id not in long_running
        with pytest.raises(TransactionalIdNotFoundError):
            a.describe_transactions(["no-such-transactional-id"])
    finally:
        a.close()
    p.abort_transaction(T)


def test_a_timeout_over_the_broker_maximum_is_refused(broker):
    p = txn_producer(broker, f"tx-{uuid.uuid4().hex[:8]}", **{"transaction.timeout.ms": 900001})
    with pytest.raises(KafkaException) as err:
        p.init_transactions(T)
    assert err.value.args[0].code() == KafkaError.INVALID_TRANSACTION_TIMEOUT, err.value


def test_transaction_state_survives_a_kill(broker):
    create_topic(broker, "txn-durable", 1)
    tid = f"tx-{uuid.uuid4().hex[:8]}"
    p = txn_producer(broker, tid)
    p.init_transactions(T)
    p.begin_transaction()
    produce_some(p, "txn-durable", 2)
    p.commit_transaction(T)
    before = describe(broker, tid)
    del p
    broker.restart(kill=True)
    after = describe(broker, tid)
    assert (after.producer_id, after.producer_epoch, after.transaction_timeout_ms) == (
        before.producer_id, before.producer_epoch, before.transaction_timeout_ms)
    assert after.state.value in ("PrepareCommit", "CompleteCommit")
    wait_for_state(broker, tid, "CompleteCommit")
    # A new producer of the id starts from the stored epoch.
    again = txn_producer(broker, tid)
    again.init_transactions(T)
    assert describe(broker, tid).producer_epoch == before.producer_epoch + 1


def java_hash(s: str) -> int:
    """Java's String.hashCode (ASCII: one UTF-16 unit per character)."""
    h = 0
    for ch in s:
        h = (31 * h + ord(ch)) & 0xFFFFFFFF
    return h


def test_cluster_coordinator_moves_with_transaction_state_leadership(cluster_factory):
    """Three brokers: `__transaction_state` is RF=3, min.isr 2; the coordinator's broker is
    SIGKILLed and the new leader of the id's partition serves the same producer id and epoch."""
    cluster = cluster_factory(size=3)

    def txn_state():
        try:
            t = cluster.admin().list_topics(timeout=5).topics.get("__transaction_state")
            return t is not None and t.error is None and len(t.partitions) == 50 and all(p.leader >= 0 for p in t.partitions.values())
        except Exception:
            return False

    wait_until(txn_state, 60, interval=0.2, what="__transaction_state with a leader on every partition")
    state = cluster.partition_state("__transaction_state")
    assert all(len(p["replicas"]) == 3 for p in state.values()), "RF=3 on three brokers"
    tid = f"tx-{uuid.uuid4().hex[:8]}"
    p = Producer({"bootstrap.servers": cluster.bootstrap, "transactional.id": tid, "socket.timeout.ms": 10000})
    p.init_transactions(30)

    def described():
        a = KafkaAdminClient(bootstrap_servers=cluster.bootstrap, request_timeout_ms=5000)
        try:
            return a.describe_transactions([tid])[tid]
        finally:
            a.close()

    before = described()
    partition = (java_hash(tid) & 0x7FFFFFFF) % 50
    coordinator = cluster.partition_state("__transaction_state")[partition]["leader"]
    assert before.coordinator_id == coordinator, "FindCoordinator(TRANSACTION) names the partition's leader"
    del p
    cluster.broker(coordinator).kill()

    def moved():
        try:
            return cluster.partition_state("__transaction_state")[partition]["leader"] not in (-1, coordinator)
        except Exception:
            return False

    wait_until(moved, 30, interval=0.2, what="a new leader of the id's __transaction_state partition")
    seen = {}

    def served():
        try:
            seen["d"] = described()
            return True
        except Exception:
            return False

    wait_until(served, 30, interval=0.5, what="the new coordinator serves the id")
    after = seen["d"]
    assert after.coordinator_id != coordinator
    assert (after.state.value, after.producer_id, after.producer_epoch) == ("Empty", before.producer_id, before.producer_epoch)
    # The new coordinator goes on from the replicated state: a new producer bumps the epoch.
    again = Producer({"bootstrap.servers": cluster.bootstrap, "transactional.id": tid, "socket.timeout.ms": 10000})
    again.init_transactions(30)
    assert described().producer_epoch == before.producer_epoch + 1
