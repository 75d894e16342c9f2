"""Kafka Streams with processing.guarantee=exactly_once_v2 (tests/java WordCountApp: a word count
with a repartition topic and a RocksDB store) against the real binary, including a SIGKILL and
restart of the broker mid-run: the final counts must be exact, neither lost nor counted twice."""

import collections
import subprocess
import time
from typing import Callable, Dict

import pytest
from confluent_kafka import Producer

from conftest import REPO_ROOT, create_topic, producer_conf, read_until_idle, wait_until

JAR = REPO_ROOT / "tests" / "java" / "target" / "failover-client.jar"

pytestmark = pytest.mark.skipif(not JAR.exists(), reason=f"{JAR} missing (scripts/test.sh builds it)")

LINES = 600


def line(i: int) -> str:
    return f"w{i % 7} x{i % 11} y{i % 13} w{i % 5}"


def expected_counts(n: int) -> Dict[str, int]:
    return dict(collections.Counter(w for i in range(n) for w in line(i).split()))


def latest_counts(target, topic: str, partitions: int) -> Dict[str, int]:
    """The last committed count of each word in the output (read_committed, in offset order)."""
    got = read_until_idle(target, topic, range(partitions), "read_committed")
    return {m.key().decode(): int(m.value().decode()) for m in got}


def produce_lines(target, first: int, last: int) -> None:
    p = Producer(producer_conf(target))
    for i in range(first, last):
        p.produce("wc-input", key=str(i), value=line(i))
    assert p.flush(60) == 0


def run_word_count(target, tmp_path, partitions: int, disrupt: Callable[[], None]) -> None:
    """Runs the app against `target` (a broker or a cluster: what has `.bootstrap`) over wc-input
    and wc-output of `partitions` partitions: the first half of the input is counted exactly; then,
    with more input under way, `disrupt()`; the final counts must be exact."""
    app_log = open(tmp_path / "streams.log", "w+")
    app = subprocess.Popen(
        ["java", "-cp", str(JAR), "ringlog.WordCountApp", target.bootstrap, "wc-eos", "wc-input", "wc-output", str(tmp_path / "state")],
        stdout=app_log, stderr=subprocess.STDOUT, text=True)
    try:
        def app_text() -> str:
            app_log.flush()
            return (tmp_path / "streams.log").read_text()

        wait_until(lambda: "state=RUNNING" in app_text(), 90, what="the Streams app to run")
        half = LINES // 2
        produce_lines(target, 0, half)
        wait_until(lambda: latest_counts(target, "wc-output", partitions) == expected_counts(half), 120,
                   interval=1.0, what="the first half's counts")

        produce_lines(target, half, half + 50)
        disrupt()
        produce_lines(target, half + 50, LINES)

        want = expected_counts(LINES)
        try:
            wait_until(lambda: latest_counts(target, "wc-output", partitions) == want, 180, interval=2.0,
                       what="exact final counts")
        except AssertionError:
            got = latest_counts(target, "wc-output", partitions)
            diff = {w: (got.get(w), n) for w, n in want.items() if got.get(w) != n}
            raise AssertionError(f"counts differ (got, want): {diff}\n--- app log tail:\n{app_text()[-3000:]}")
        assert "uncaught=" not in app_text() or "state=RUNNING" in app_text()
    finally:
        app.terminate()
        try:
            app.wait(timeout=20)
        except subprocess.TimeoutExpired:
            app.kill()
        app_log.close()


def test_exactly_once_word_count_survives_a_broker_kill(broker_factory, tmp_path):
    broker = broker_factory(config={"transaction.abort.timed.out.transaction.cleanup.interval.ms": 1000})
    create_topic(broker, "wc-input", 2)
    create_topic(broker, "wc-output", 2)

    def kill_and_restart():
        broker.kill()
        time.sleep(1)
        broker.start()

    run_word_count(broker, tmp_path, 2, kill_and_restart)


def test_exactly_once_word_count_on_a_cluster_survives_its_coordinators_kill(cluster_factory, tmp_path):
    """The same on three brokers, every topic replicated three times (the app's repartition and
    changelog topics, __transaction_state and __consumer_offsets too): the broker that coordinates
    the app's group is SIGKILLed mid-stream and restarted, so the group, the partitions it leads
    and the transaction coordinators it held move to the others and back."""
    from test_cluster_clients import PARTITIONS, create_topic as create_replicated_topic, group_coordinator

    cluster = cluster_factory(size=3, config={"transaction.abort.timed.out.transaction.cleanup.interval.ms": 1000,
                                              "default.replication.factor": 3})
    create_replicated_topic(cluster, "wc-input")
    create_replicated_topic(cluster, "wc-output")

    def kill_the_coordinator_and_restart_it():
        internal = [t for t in cluster.admin().list_topics(timeout=10).topics if t.startswith("wc-eos-")]
        assert internal, "the app made its repartition and changelog topics"
        for t in internal:
            assert all(len(s["replicas"]) == 3 for s in cluster.partition_state(t).values()), (t, cluster.partition_state(t))
        victim_id = group_coordinator(cluster, "wc-eos")
        assert victim_id is not None, "the app's group has a coordinator"
        victim = cluster.broker(victim_id)
        print(f"killing broker {victim_id}, the coordinator of group wc-eos")
        victim.kill()
        time.sleep(1)
        victim.start()

    run_word_count(cluster, tmp_path, PARTITIONS, kill_the_coordinator_and_restart_it)
