"""Issue 17's client acceptance: the Java client (Apache kafka-clients 4.x), librdkafka
(confluent-kafka) and kafka-python each produce and consume across a leader failover on a real
three-broker cluster, with no application error beyond retriable ones.

For each client: a topic with RF=3 and three partitions (one led by each broker), a consumer group
member of that client that joins first and reads from the start, and an idempotent acks=all
producer of that client writing a paced run of unique values. A quarter of the way in, the group's
coordinator (a group id is picked whose coordinator is not the active controller) is SIGKILLed: it
also leads one partition of the topic. The producer must get every record acknowledged with no
failure reported to the application (retries inside the client are fine), writes must resume
through the new leader within 10 s, and the same consumer must read every acknowledged value at
least once. Retries, client warnings and re-reads are printed with the outcome (-s).

The Java client is tests/java's jar (built by scripts/test.sh); without it, or without `java`,
that test is skipped with the reason (it fails instead when CI is set).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Dict, List, Optional

import pytest
from confluent_kafka import Consumer, KafkaError, Producer
from confluent_kafka.admin import NewTopic
from kafka import KafkaConsumer, KafkaProducer

import kafka_wire as kw
from conftest import REPO_ROOT, wait_until

JAR = REPO_ROOT / "tests" / "java" / "target" / "failover-client.jar"
PARTITIONS = 3
# Paced so the run lasts ~12 s: the kill lands a quarter in and most records go through new leaders.
RECORDS = 4000
INTERVAL_S = 0.003


def create_topic(cluster, name):
    admin = cluster.admin()
    futures = admin.create_topics([NewTopic(name, PARTITIONS, 3, config={"min.insync.replicas": "2"})])
    futures[name].result(timeout=30)
    wait_until(lambda: all(s["leader"] >= 0 for s in cluster.partition_state(name).values())
               and len(cluster.partition_state(name)) == PARTITIONS, 30, what=f"{name}'s partitions have leaders")


def group_coordinator(cluster, group) -> Optional[int]:
    """The broker id a live broker names as the group's coordinator (FindCoordinator v2), or None."""
    for b in cluster.brokers:
        if not b.running():
            continue
        try:
            with kw.connect(b.port) as s:
                _, fc = kw.parse_find_coordinator_v2(
                    kw.roundtrip(s, kw.frame(kw.API_FIND_COORDINATOR, 2, 1, kw.find_coordinator_v2_body(group))))
            if fc["error_code"] == 0:
                return fc["node_id"]
        except OSError:
            continue
    return None


def active_controller(cluster) -> Optional[int]:
    admin = cluster.admin()  # held: a dropped AdminClient fails its futures with _DESTROY
    try:
        return admin.describe_cluster(request_timeout=5).result(timeout=10).controller.id
    except Exception:
        return None


def group_coordinated_off_the_controller(cluster, base: str) -> str:
    """A group id whose coordinator is not the active controller, so that killing the coordinator
    tests the group's and the partitions' failover without the controller's own (Raft election
    first, then a fresh session timeout: test_cluster_failover.py covers it)."""
    controller = None

    def known():
        nonlocal controller
        controller = active_controller(cluster)
        return controller is not None
    wait_until(known, 15, interval=0.2, what="the active controller named by DescribeCluster")
    # Coordinators are known once every broker has acted on __consumer_offsets' leaders.
    deadline = time.monotonic() + 30
    while True:
        for i in range(30):
            group = f"{base}-{i}"
            coordinator = group_coordinator(cluster, group)
            if coordinator is not None and coordinator != controller:
                return group
        if time.monotonic() > deadline:
            raise AssertionError(f"no group id among {base}-0..29 is coordinated off the controller {controller}")
        time.sleep(0.5)


def value_of(i: int, prefix: str) -> str:
    return f"{prefix}{i:08d}"


# ------------------------------------------------------------------------------------------------
# One producer and one consumer per client, behind the same small interface:
#   start(); acked {value: (partition, offset)}; failures [str]; fatal [str]; done (Event)
#   consumer: seen {value}; errors [str]; fatal [str]; stop()
# ------------------------------------------------------------------------------------------------

class JavaProducer:
    """FailoverClient's produce mode in a JVM; its JSON lines are parsed as they come."""

    def __init__(self, bootstrap, topic, prefix, workdir: Path):
        self.cmd = ["java", "-jar", str(JAR), bootstrap, topic, "produce", str(RECORDS),
                    "--partitions", str(PARTITIONS), "--interval-ms", str(INTERVAL_S * 1000), "--prefix", prefix]
        self.stderr_path = workdir / "java-producer.stderr"
        self.acked: Dict[str, tuple] = {}  # value -> (partition, offset, monotonic time acknowledged)
        self.failures: List[str] = []
        self.fatal: List[str] = []
        self.summary: Optional[dict] = None
        self.done = threading.Event()

    def start(self):
        self.proc = subprocess.Popen(self.cmd, stdout=subprocess.PIPE, stderr=open(self.stderr_path, "wb"),
                                     stdin=subprocess.DEVNULL, text=True)
        threading.Thread(target=self._read, daemon=True).start()
        return self

    def _read(self):
        for line in self.proc.stdout:
            ev = json.loads(line)
            kind = ev["event"]
            if kind == "ack":
                # The JVM's own clock: a line read late must not look like a late acknowledgement.
                at = time.monotonic() - (time.time() - ev["ts_ms"] / 1000)
                self.acked[ev["value"]] = (ev["partition"], ev["offset"], at)
            elif kind == "failure":
                self.failures.append(f"{ev['value']}: {ev['error']} (retriable={ev['retriable']})")
            elif kind == "fatal":
                self.fatal.append(ev["error"])
            elif kind == "summary":
                self.summary = ev
        self.proc.wait()
        if self.proc.returncode not in (0, 1):
            self.fatal.append(f"java producer exited rc={self.proc.returncode}")
        self.done.set()

    def retries_logged(self) -> int:
        """The client's own WARN lines about retried produce requests (its retriable errors)."""
        return count_lines(self.stderr_path, ("retrying",))

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


class JavaConsumer:
    """FailoverClient's consume mode: a classic-protocol group member until it has every value."""

    def __init__(self, bootstrap, topic, group, prefix, workdir: Path):
        self.cmd = ["java", "-jar", str(JAR), bootstrap, topic, "consume", str(RECORDS), "--group", group,
                    "--timeout-s", "150", "--prefix", prefix]
        self.stderr_path = workdir / "java-consumer.stderr"
        self.records = 0  # every record read, re-reads included (from the summary line)
        self.assigned = threading.Event()
        self.seen: set = set()
        self.errors: List[str] = []
        self.fatal: List[str] = []

    def start(self):
        self.proc = subprocess.Popen(self.cmd, stdout=subprocess.PIPE, stderr=open(self.stderr_path, "wb"),
                                     stdin=subprocess.DEVNULL, text=True)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        return self

    def _read(self):
        for line in self.proc.stdout:
            ev = json.loads(line)
            if ev["event"] == "record":
                self.seen.add(ev["value"])
            elif ev["event"] == "summary":
                self.records = ev["records"]
            elif ev["event"] == "assigned":
                self.assigned.set()
            elif ev["event"] in ("retriable", "commit_failed"):
                self.errors.append(ev["error"])
            elif ev["event"] == "fatal":
                self.fatal.append(ev["error"])
        self.proc.wait()
        if self.proc.returncode not in (0, 1):
            self.fatal.append(f"java consumer exited rc={self.proc.returncode}")

    def warnings_logged(self) -> int:
        """The client's WARN/ERROR lines: failed connections, a commit refused by a new coordinator."""
        return count_lines(self.stderr_path, (" WARN ", " ERROR "))

    def stop(self):
        # With every value read it commits, closes and prints its summary by itself.
        try:
            self.proc.wait(timeout=20 if len(self.seen) >= RECORDS else 0.1)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.reader.join(timeout=5)


def count_lines(path: Path, needles) -> int:
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return 0
    return sum(1 for line in text.splitlines() if any(n in line for n in needles))


class PacedProducer:
    """Sends RECORDS values round-robin over the partitions at INTERVAL_S from a thread; the
    subclass sends one record and delivers outcomes to _acked/_failed."""

    def __init__(self, prefix):
        self.prefix = prefix
        self.acked: Dict[str, tuple] = {}  # value -> (partition, offset, monotonic time acknowledged)
        self.failures: List[str] = []
        self.fatal: List[str] = []
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self):
        self.thread.start()
        return self

    def _run(self):
        start = time.monotonic()
        try:
            for i in range(RECORDS):
                self.send(value_of(i, self.prefix), i % PARTITIONS)
                wait = start + (i + 1) * INTERVAL_S - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
            self.flush()
        except Exception as e:  # an exception out of send() or flush() is the application's error
            self.fatal.append(repr(e))
        finally:
            self.done.set()

    def _acked(self, value, partition, offset):
        self.acked[value] = (partition, offset, time.monotonic())


class ConfluentProducer(PacedProducer):
    def __init__(self, bootstrap, topic, prefix, workdir):
        super().__init__(prefix)
        self.topic = topic
        self.client_errors: List[KafkaError] = []
        self.p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True,
                           "linger.ms": 2, "message.timeout.ms": 120000, "request.timeout.ms": 10000,
                           "reconnect.backoff.max.ms": 1000, "error_cb": self._on_error})

    def _on_error(self, err: KafkaError):
        # Client-level errors (a dead broker's connection, all brokers down): fatal ones are fatal.
        self.client_errors.append(err)
        if err.fatal():
            self.fatal.append(str(err))

    def send(self, value, partition):
        def on_delivery(err, msg, value=value):
            if err is None:
                self._acked(value, msg.partition(), msg.offset())
            else:
                self.failures.append(f"{value}: {err} (retriable={err.retriable()}, fatal={err.fatal()})")
        while True:
            try:
                self.p.produce(self.topic, value=value.encode(), partition=partition, on_delivery=on_delivery)
                break
            except BufferError:  # the local queue is full: wait for acknowledgements, as an application would
                self.p.poll(0.05)
        self.p.poll(0)

    def flush(self):
        left = self.p.flush(150)
        if left:
            self.fatal.append(f"{left} records neither acknowledged nor failed after flush")

    def retries_logged(self) -> int:
        return len(self.client_errors)

    def close(self):
        # Without this the handle outlives the test and keeps reconnecting to the stopped cluster.
        self.p.close()


class KafkaPythonProducer(PacedProducer):
    def __init__(self, bootstrap, topic, prefix, workdir):
        super().__init__(prefix)
        self.topic = topic
        self.warnings = WarningCounter("kafka.producer")
        self.p = KafkaProducer(bootstrap_servers=bootstrap.split(","), acks="all", enable_idempotence=True,
                               linger_ms=2, delivery_timeout_ms=120000, request_timeout_ms=10000,
                               reconnect_backoff_max_ms=1000)

    def send(self, value, partition):
        fut = self.p.send(self.topic, value=value.encode(), partition=partition)
        fut.add_callback(lambda md, value=value: self._acked(value, md.partition, md.offset))
        fut.add_errback(lambda e, value=value: self.failures.append(
            f"{value}: {e!r} (retriable={getattr(e, 'retriable', False)})"))

    def flush(self):
        self.p.flush(timeout=150)

    def retries_logged(self) -> int:
        return self.warnings.count

    def close(self):
        self.warnings.detach()
        self.p.close(timeout=5)


class WarningCounter(logging.Handler):
    """Counts a kafka-python logger's WARNING-and-above records (its retried requests and lost connections)."""

    def __init__(self, logger_name):
        super().__init__(level=logging.WARNING)
        self.count = 0
        self.kinds: Counter = Counter()
        self.logger = logging.getLogger(logger_name)
        self.logger.addHandler(self)

    def emit(self, record):
        self.count += 1
        self.kinds[str(record.msg)[:60]] += 1

    def detach(self):
        self.logger.removeHandler(self)


class PolledConsumer:
    """A group member polling from a thread until it has RECORDS distinct values or is stopped."""

    def __init__(self, prefix):
        self.prefix = prefix
        self.records = 0  # every record read, re-reads included
        self.assigned = threading.Event()
        self.seen: set = set()
        self.errors: List[str] = []
        self.fatal: List[str] = []
        self.stop_flag = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self):
        self.thread.start()
        return self

    def _run(self):
        try:
            while not self.stop_flag.is_set() and len(self.seen) < RECORDS:
                for value in self.poll():
                    self.records += 1
                    if value.startswith(self.prefix):
                        self.seen.add(value)
        except Exception as e:
            self.fatal.append(repr(e))
        finally:
            try:
                self.close()
            except Exception as e:
                self.errors.append(f"close: {e!r}")

    def stop(self):
        self.stop_flag.set()
        self.thread.join(timeout=30)

    def warnings_logged(self) -> int:
        return len(self.errors)


class ConfluentConsumer(PolledConsumer):
    def __init__(self, bootstrap, topic, group, prefix, workdir):
        super().__init__(prefix)
        self.c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "auto.offset.reset": "earliest",
                           "enable.auto.commit": True, "auto.commit.interval.ms": 500,
                           "reconnect.backoff.max.ms": 1000, "error_cb": self._on_error})
        self.c.subscribe([topic], on_assign=lambda consumer, partitions: partitions and self.assigned.set())

    def _on_error(self, err: KafkaError):
        if err.fatal():
            self.fatal.append(str(err))
        else:
            self.errors.append(str(err))

    def poll(self):
        out = []
        for m in self.c.consume(num_messages=500, timeout=0.2):
            if m.error() is not None:
                err = m.error()
                (self.fatal if err.fatal() else self.errors).append(str(err))
            else:
                out.append(m.value().decode())
        return out

    def close(self):
        self.c.close()


class KafkaPythonConsumer(PolledConsumer):
    def __init__(self, bootstrap, topic, group, prefix, workdir):
        super().__init__(prefix)
        self.warnings = WarningCounter("kafka.coordinator")
        self.c = KafkaConsumer(topic, bootstrap_servers=bootstrap.split(","), group_id=group,
                               auto_offset_reset="earliest", enable_auto_commit=True,
                               auto_commit_interval_ms=500, reconnect_backoff_max_ms=1000)

    def poll(self):
        batches = self.c.poll(timeout_ms=200)
        if self.c.assignment():
            self.assigned.set()
        return [r.value.decode() for records in batches.values() for r in records]

    def warnings_logged(self) -> int:
        return self.warnings.count

    def close(self):
        self.warnings.detach()
        self.c.close(autocommit=False)


CLIENTS = {
    "java": (JavaProducer, JavaConsumer),
    "librdkafka": (ConfluentProducer, ConfluentConsumer),
    "kafka-python": (KafkaPythonProducer, KafkaPythonConsumer),
}


@pytest.mark.parametrize("client", list(CLIENTS))
def test_client_produces_and_consumes_across_a_leader_failover(client, cluster_factory, tmp_path):
    if client == "java":
        if shutil.which("java") is None or not JAR.exists():
            # CI runs scripts/test.sh, which builds the jar: there a missing one is a failure.
            (pytest.fail if os.environ.get("CI") else pytest.skip)(
                f"no java or no {JAR} (scripts/test.sh builds it with mvn)")
    producer_cls, consumer_cls = CLIENTS[client]
    cluster = cluster_factory(size=3)
    topic, prefix = f"failover-{client}", client[0]
    create_topic(cluster, topic)
    group = group_coordinated_off_the_controller(cluster, f"group-{client}")

    consumer = consumer_cls(cluster.bootstrap, topic, group, prefix, tmp_path).start()
    producer = None
    try:
        # The member joins first, so it reads while the producer writes and lives through the kill.
        join_started = time.monotonic()
        assert consumer.assigned.wait(40), f"{client}: the consumer got no partitions within 40 s"
        join_s = time.monotonic() - join_started
        producer = producer_cls(cluster.bootstrap, topic, prefix, tmp_path).start()
        wait_until(lambda: len({a[0] for a in producer.acked.values()}) == PARTITIONS
                   and len(producer.acked) >= RECORDS // 4 and consumer.seen, 40,
                   what=f"{client}: a quarter of the writes acknowledged, on every partition, and some read")
        # The victim is the group's coordinator, which also leads a partition of the topic (three
        # partitions over three brokers: each leads one); it is not the active controller.
        state = cluster.partition_state(topic)
        coordinator = group_coordinator(cluster, group)
        leaders = {s["leader"] for s in state.values()}
        victim = coordinator if coordinator in leaders else state[0]["leader"]
        controller = active_controller(cluster)
        led = [p for p, s in state.items() if s["leader"] == victim]
        acked_before, seen_before = len(producer.acked), len(consumer.seen)
        cluster.broker(victim).kill()
        killed_at = time.monotonic()

        # Writes go on through the new leaders and every record is acknowledged in the end.
        assert producer.done.wait(150), f"{client}: producer did not finish ({len(producer.acked)} acknowledged)"
        assert not producer.fatal, f"{client}: producer errors the application saw: {producer.fatal[:5]}"
        assert not producer.failures, f"{client}: {len(producer.failures)} records failed: {producer.failures[:5]}"
        expected = {value_of(i, prefix) for i in range(RECORDS)}
        assert set(producer.acked) == expected, \
            f"{client}: {len(expected - set(producer.acked))} records never acknowledged"
        assert acked_before < RECORDS * 3 // 4, f"{client}: the kill came too late ({acked_before} acknowledged before it)"
        # Responses the victim sent just before its death can be handled just after it: an
        # acknowledgement half a second after the kill came from a new leader.
        after = [t for (p, _, t) in producer.acked.values() if p in led and t > killed_at + 0.5]
        assert after, f"{client}: nothing acknowledged on partitions {led} after their leader's kill"
        failover_s = min(after) - killed_at
        assert failover_s < 10, f"{client}: first write through a new leader {failover_s:.1f}s after the kill"
        wait_until(lambda: all(s["leader"] not in (victim, -1) for s in cluster.partition_state(topic).values()),
                   15, what=f"{client}: every partition led by a live broker after broker {victim}'s kill")

        # The same group member, alive across the kill, reads every acknowledged value.
        deadline = time.monotonic() + 60
        while not (consumer.seen >= expected or consumer.fatal) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not consumer.fatal, f"{client}: consumer errors the application saw: {consumer.fatal[:5]}"
        missing = expected - consumer.seen
        assert not missing, (f"{client}: the group member missed {len(missing)} of {len(expected)} acknowledged values "
                             f"(e.g. {sorted(missing)[:3]}) within 60 s of the producer's end; broker {victim} was "
                             f"killed, the coordinator was {coordinator}, now {group_coordinator(cluster, group)}")
        print(f"\n{client}: killed broker {victim} (leader of partitions {led}, group coordinator was {coordinator}, "
              f"active controller {controller}; the coordinator is "
              f"now {group_coordinator(cluster, group)}) after {acked_before} acks and {seen_before} reads; "
              f"first ack through a new leader {failover_s:.2f}s after the kill; all {RECORDS} acknowledged, "
              f"{producer.retries_logged()} retries/errors logged by the producer; the consumer read every value, "
              f"{consumer.warnings_logged()} warnings/retriable errors on its side (it joined in {join_s:.1f}s)")
    finally:
        consumer.stop()
        print(f"{client}: the consumer read {consumer.records} records for {len(consumer.seen)} distinct values "
              f"(re-reads after the coordinator's failover show how far back its committed offsets were)")
        if isinstance(consumer, KafkaPythonConsumer):
            print(f"{client}: consumer warnings by kind {consumer.warnings.kinds.most_common(4)}")
        if producer is not None:
            producer.close()
