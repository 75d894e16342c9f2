"""Kafka Streams with processing.guarantee=exactly_once_v2 (tests/java WordCountApp: a word count
with a repartition topic and a RocksDB store) against the real binary, including a SIGKILL and
restart of the broker mid-run: the final counts must be exact, neither lost nor counted twice."""

import collections
import subprocess
import time
from typing import Dict

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


def latest_counts(broker, topic: str) -> Dict[str, int]:
    """The last committed count of each word in the output (read_committed, in offset order)."""
    return {m.key().decode(): int(m.value().decode()) for m in read_until_idle(broker, topic, range(2), "read_committed")}


def produce_lines(broker, first: int, last: int) -> None:
    p = Producer(producer_conf(broker))
    for i in range(first, last):
        p.produce("wc-input", key=str(i), value=line(i))
    assert p.flush(60) == 0


def test_exactly_once_word_count_survives_a_broker_kill(broker_factory, tmp_path):
    broker = broker_factory(config={"transaction.abort.timed.out.transaction.cleanup.interval.ms": 1000})
    create_topic(broker, "wc-input", 2)
    create_topic(broker, "wc-output", 2)
    app_log = open(tmp_path / "streams.log", "w+")
    app = subprocess.Popen(
        ["java", "-cp", str(JAR), "ringlog.WordCountApp", broker.bootstrap, "wc-eos", "wc-input", "wc-output", str(tmp_path / "state")],
        stdout=app_log, stderr=subprocess.STDOUT, text=True)
    try:
        def app_text() -> str:
            app_log.flush()
            return (tmp_path / "streams.log").read_text()

        wait_until(lambda: "state=RUNNING" in app_text(), 90, what="the Streams app to run")
        half = LINES // 2
        produce_lines(broker, 0, half)
        wait_until(lambda: latest_counts(broker, "wc-output") == expected_counts(half), 120,
                   interval=1.0, what="the first half's counts")

        # Kill the broker while the app is mid-stream (more input under way), then bring it back.
        produce_lines(broker, half, half + 50)
        broker.kill()
        time.sleep(1)
        broker.start()
        produce_lines(broker, half + 50, LINES)

        want = expected_counts(LINES)
        try:
            wait_until(lambda: latest_counts(broker, "wc-output") == want, 180, interval=2.0, what="exact final counts")
        except AssertionError:
            got = latest_counts(broker, "wc-output")
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
