"""Transactions with the official Java client (kafka-clients 4.x, tests/java TxnClient) against the
real binary: commit and abort seen through read_committed and read_uncommitted, consume-transform-
produce with sendOffsetsToTransaction, fencing by a second producer with the same transactional.id,
and the coordinator aborting a transaction left open past its timeout."""

import json
import subprocess
from typing import Dict, List

import pytest
from confluent_kafka import TopicPartition

from conftest import REPO_ROOT, admin_for, create_topic

JAR = REPO_ROOT / "tests" / "java" / "target" / "failover-client.jar"

# The coordinator looks for timed-out transactions this often (Kafka's default is 10 s).
TXN_BROKER_CONFIG = {"transaction.abort.timed.out.transaction.cleanup.interval.ms": 500}

pytestmark = pytest.mark.skipif(not JAR.exists(), reason=f"{JAR} missing (scripts/test.sh builds it)")


def txn_client(broker, mode: str, timeout: float = 120, **opts) -> Dict:
    """Runs one TxnClient mode in a JVM and returns its JSON line."""
    args = ["java", "-cp", str(JAR), "ringlog.TxnClient", broker.bootstrap, mode]
    for k, v in opts.items():
        args += [f"--{k.replace('_', '-')}", str(v)]
    done = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"TxnClient {mode} failed ({done.returncode}):\n{done.stderr[-4000:]}\n{broker.log_tail()}"
    return json.loads(done.stdout.strip().splitlines()[-1])


def read_values(broker, topic: str, isolation: str) -> List[str]:
    return txn_client(broker, "consume", topic=topic, isolation=isolation, idle_ms=2500)["values"]


def test_commit_and_abort_through_both_isolation_levels(broker_factory):
    broker = broker_factory(config=TXN_BROKER_CONFIG)
    create_topic(broker, "txn-java", 2)
    n = 50
    assert txn_client(broker, "commit-abort", topic="txn-java", txn_id="java-ca", count=n) == {"committed": n + 1, "aborted": n}

    committed = read_values(broker, "txn-java", "read_committed")
    assert sorted(committed) == sorted([f"c-{i}" for i in range(n)] + ["end"]), "read_committed sees exactly the committed records"
    everything = read_values(broker, "txn-java", "read_uncommitted")
    assert sorted(everything) == sorted([f"c-{i}" for i in range(n)] + [f"a-{i}" for i in range(n)] + ["end"])


def test_consume_transform_produce_commits_offsets_atomically(broker_factory):
    broker = broker_factory(config=TXN_BROKER_CONFIG)
    create_topic(broker, "ctp-in", 2)
    create_topic(broker, "ctp-out", 2)
    from confluent_kafka import Producer
    p = Producer({"bootstrap.servers": broker.bootstrap})
    n = 60
    for i in range(n):
        p.produce("ctp-in", key=f"k{i}", value=f"v{i}")
    assert p.flush(30) == 0

    got = txn_client(broker, "transform", input="ctp-in", output="ctp-out", group="ctp", txn_id="java-ctp", count=n,
                     abort_first="true")
    assert got["aborted"] == 1 and got["produced"] == n, got

    out = read_values(broker, "ctp-out", "read_committed")
    assert sorted(out) == sorted(f"v{i}!" for i in range(n)), "each input exactly once in the committed output"
    assert len(read_values(broker, "ctp-out", "read_uncommitted")) > n, "the aborted transaction's records are in the log"

    admin = admin_for(broker)
    from confluent_kafka import ConsumerGroupTopicPartitions
    fut = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions("ctp", [TopicPartition("ctp-in", 0), TopicPartition("ctp-in", 1)])])
    offsets = {tp.partition: tp.offset for tp in fut["ctp"].result(timeout=15).topic_partitions}
    # Every input record was consumed once, so the committed offsets add up to the input size.
    assert sum(offsets.values()) == n, offsets


def test_a_second_producer_fences_the_first(broker_factory):
    broker = broker_factory(config=TXN_BROKER_CONFIG)
    create_topic(broker, "txn-fence", 1)
    got = txn_client(broker, "fence", topic="txn-fence", txn_id="java-fence")
    assert got["first_error"] in ("ProducerFencedException", "InvalidProducerEpochException"), got
    assert read_values(broker, "txn-fence", "read_committed") == ["live"], "the zombie's records were aborted"


def test_a_transaction_left_open_is_aborted_after_its_timeout(broker_factory):
    broker = broker_factory(config=TXN_BROKER_CONFIG)
    create_topic(broker, "txn-timeout", 1)
    got = txn_client(broker, "timeout", topic="txn-timeout", txn_id="java-timeout", timeout_ms=2000, wait_ms=6000)
    assert got["commit_error"] != "none", "the coordinator aborted the transaction, so its commit fails"
    assert read_values(broker, "txn-timeout", "read_committed") == []
    assert read_values(broker, "txn-timeout", "read_uncommitted") == ["timed-out"]
    # The abort marker moved the last stable offset past the record: a later transaction is readable.
    assert txn_client(broker, "commit-abort", topic="txn-timeout", txn_id="java-after", count=1)["committed"] == 2
    assert sorted(read_values(broker, "txn-timeout", "read_committed")) == ["c-0", "end"]
