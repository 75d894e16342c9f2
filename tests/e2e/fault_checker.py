"""Jepsen-style fault-injection checker for a Ringlog cluster (issue 17's acceptance).

Idempotent acks=all producers send unique values ("p<producer>-<seq>") to a topic with RF=3,
6 partitions and min.insync.replicas=2, while consumers read every partition concurrently and a
nemesis SIGKILLs, pauses (SIGSTOP/SIGCONT) and, given a network hook, partitions one broker at a
time. Then everything is healed, every ISR waits to be full, a fresh consumer drains every
partition, each replica's segment files are read, and queue_checker.check counts the anomalies.

Library: `run_checker(cluster, ...)` on a started tests/e2e/cluster.Cluster returns the summary.
CLI (from tests/e2e, starts its own cluster):
    RINGLOG_BIN=target/debug/ringlog python -m fault_checker --duration 60 --out summary.json
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Dict, List, Optional, Protocol

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import NewTopic

import kafka_wire as kw
import queue_checker
from conftest import UNUSED_GROUP, wait_until

TOPIC = "jepsen-queue"
PARTITIONS = 6
# librdkafka errors raised before a message left the client: the broker never saw it. Every other
# failure may have been appended (a timed-out or retried request) and is indeterminate.
DEFINITE_FAILURES = {KafkaError._PURGE_QUEUE, KafkaError.MSG_SIZE_TOO_LARGE, KafkaError._UNKNOWN_PARTITION,
                     KafkaError._UNKNOWN_TOPIC, KafkaError._INVALID_ARG}


def log(msg: str) -> None:
    print(f"[fault_checker {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


class NetworkFaults(Protocol):
    """The hook a network-namespace harness provides: cut one node off from every other, and heal it."""

    def partition(self, node: int) -> None: ...

    def heal(self, node: int) -> None: ...


class QueueProducer:
    """One idempotent acks=all producer thread sending p<id>-<seq> round-robin over the partitions at
    `rate` msgs/s, recording every attempt, acknowledgement and failure."""

    def __init__(self, pid: int, bootstrap: str, topic: str, rate: float, partitions: int = PARTITIONS):
        self.pid, self.bootstrap, self.topic, self.rate, self.partitions = pid, bootstrap, topic, rate, partitions
        self.attempted: Dict[bytes, int] = {}
        self.acked: List[tuple] = []  # (partition, offset, value)
        self.definite: set = set()
        self.indeterminate: set = set()
        self.errors: Dict[str, int] = {}
        self.fatal: List[str] = []
        self.stop_flag = threading.Event()
        self.thread = threading.Thread(target=self._run, name=f"producer-{pid}", daemon=True)
        self.p = self._client()

    def _client(self) -> Producer:
        return Producer({"bootstrap.servers": self.bootstrap, "acks": "all", "enable.idempotence": True,
                         "linger.ms": 5, "message.timeout.ms": 30000, "topic.metadata.refresh.interval.ms": 1000,
                         "reconnect.backoff.ms": 50, "reconnect.backoff.max.ms": 1000,
                         "error_cb": self._on_error})

    def _on_error(self, err: KafkaError) -> None:
        if err.fatal():
            self.fatal.append(str(err))

    def _on_delivery(self, err, msg) -> None:
        value = msg.value()
        if err is None:
            self.acked.append((msg.partition(), msg.offset(), value))
            return
        name = err.name()
        self.errors[name] = self.errors.get(name, 0) + 1
        (self.definite if err.code() in DEFINITE_FAILURES else self.indeterminate).add(value)

    def _run(self) -> None:
        seq, start, fatal_handled = 0, time.monotonic(), 0
        while not self.stop_flag.is_set():
            if len(self.fatal) > fatal_handled:
                # A fatal idempotence error kills the client; it is reported, and a new client goes on.
                fatal_handled = len(self.fatal)
                log(f"producer {self.pid} fatal error {self.fatal[-1]}; new client")
                self._flush(30)
                self.p = self._client()
            wait = start + seq / self.rate - time.monotonic()
            if wait > 0:
                # Computed once: a negative timeout would make poll() block until the next event.
                self._poll(min(0.05, wait))
                continue
            value = f"p{self.pid}-{seq}".encode()
            partition = seq % self.partitions
            try:
                self.p.produce(self.topic, value=value, partition=partition, on_delivery=self._on_delivery)
            except BufferError:
                self._poll(0.05)
                continue
            except KafkaException as e:  # the client is in a fatal state; error_cb has it
                self._note_fatal(e)
                continue
            self.attempted[value] = partition
            seq += 1
            self._poll(0)

    def _note_fatal(self, e: KafkaException) -> None:
        if not self.fatal or self.fatal[-1] != str(e.args[0]):
            self.fatal.append(str(e.args[0]))

    def _poll(self, timeout: float) -> None:
        try:
            self.p.poll(timeout)
        except KafkaException as e:
            self._note_fatal(e)

    def _flush(self, timeout: float) -> int:
        try:
            return self.p.flush(timeout)
        except KafkaException as e:
            self._note_fatal(e)
            return len(self.p)

    def start(self) -> "QueueProducer":
        self.thread.start()
        return self

    def finish(self, timeout: float = 60.0) -> None:
        self.stop_flag.set()
        t0 = time.monotonic()
        self.thread.join(timeout=30)
        t1, queued = time.monotonic(), len(self.p)
        left = self._flush(timeout)
        log(f"producer {self.pid} stopped join_s={t1 - t0:.1f} queued={queued} flush_s={time.monotonic() - t1:.1f} "
            f"left={left} thread_alive={self.thread.is_alive()}")
        done = {v for _, _, v in self.acked} | self.definite | self.indeterminate
        self.indeterminate |= set(self.attempted) - done


class QueueConsumer:
    """One consumer thread reading every partition from the beginning (assign, no group), recording
    every (partition, offset, value) in the order it saw them. An offset reset is a seek: noted."""

    def __init__(self, name: str, bootstrap: str, topic: str, partitions: int = PARTITIONS):
        self.name, self.topic, self.partitions = name, topic, partitions
        self.reads: List[tuple] = []
        self.position: Dict[int, int] = {}  # partition -> last offset read
        self.seeks: List[tuple] = []  # (index into reads, partition)
        self.errors: Counter = Counter()
        self.crashed: Optional[str] = None
        self.stop_flag = threading.Event()
        self.c = Consumer({"bootstrap.servers": bootstrap, "group.id": UNUSED_GROUP, "enable.auto.commit": False,
                           "enable.auto.offset.store": False, "auto.offset.reset": "error",
                           "enable.partition.eof": False, "topic.metadata.refresh.interval.ms": 1000,
                           "reconnect.backoff.ms": 50, "reconnect.backoff.max.ms": 1000})
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)

    def _run(self) -> None:
        self.c.assign([TopicPartition(self.topic, p, OFFSET_BEGINNING) for p in range(self.partitions)])
        try:
            while not self.stop_flag.is_set():
                for m in self.c.consume(num_messages=500, timeout=0.2):
                    err = m.error()
                    if err is None:
                        self.reads.append((m.partition(), m.offset(), m.value()))
                        self.position[m.partition()] = m.offset()
                        continue
                    self.errors[err.name()] += 1
                    if err.code() == KafkaError._AUTO_OFFSET_RESET and m.partition() is not None:
                        # The broker said our position is out of range; start that partition over.
                        log(f"{self.name}: offset reset on partition {m.partition()}: {err}")
                        self.seeks.append((len(self.reads), m.partition()))
                        # seek() fails on a partition in this error state; assigning it anew works.
                        tp = TopicPartition(self.topic, m.partition(), OFFSET_BEGINNING)
                        self.c.incremental_unassign([tp])
                        self.c.incremental_assign([tp])
        except Exception as e:  # noqa: BLE001 - a dead reader is reported, not silently short
            self.crashed = repr(e)
            log(f"{self.name} stopped reading: {e!r}")
        finally:
            self.c.close()

    def start(self) -> "QueueConsumer":
        self.thread.start()
        return self

    def finish(self) -> None:
        self.stop_flag.set()
        self.thread.join(timeout=30)


class Nemesis:
    """Faults in rounds, one broker at a time: kill (SIGKILL, restart after `fault_s`), pause
    (SIGSTOP, SIGCONT after `fault_s`), and partition (via `net`, skipped when there is none).
    Between rounds it waits for every ISR to be full again, then stays quiet for `quiet_s`."""

    def __init__(self, cluster, topic: str, rng: random.Random, net: Optional[NetworkFaults] = None,
                 fault_s=(2.0, 4.0), quiet_s=(2.0, 4.0), recover_timeout: float = 60.0):
        self.cluster, self.topic, self.rng, self.net = cluster, topic, rng, net
        self.fault_s, self.quiet_s, self.recover_timeout = fault_s, quiet_s, recover_timeout
        self.kinds = ["kill", "pause"] + (["partition"] if net is not None else [])
        self.counts: Counter = Counter()
        self.rounds: List[dict] = []
        self.recovery_timeouts = 0
        self.faulty: Optional[tuple] = None  # (kind, node) while a fault is active

    def run(self, duration: float) -> None:
        deadline = time.monotonic() + duration
        i = 0
        # Every kind at least once, even if that overruns the duration.
        while time.monotonic() < deadline or any(self.counts[k] == 0 for k in self.kinds):
            kind = self.kinds[i % len(self.kinds)]
            i += 1
            node = self.rng.choice([b.node_id for b in self.cluster.brokers])
            hold = self.rng.uniform(*self.fault_s)
            t0 = time.monotonic()
            log(f"nemesis round={i} fault={kind} node={node} hold_s={hold:.1f}")
            self.inject(kind, node)
            time.sleep(hold)
            self.heal_all()
            recovered = self.wait_isr_full(self.recover_timeout)
            self.rounds.append({"fault": kind, "node": node, "hold_s": round(hold, 1),
                                "isr_full_after_s": round(time.monotonic() - t0, 1) if recovered else None})
            time.sleep(self.rng.uniform(*self.quiet_s))

    def inject(self, kind: str, node: int) -> None:
        b = self.cluster.broker(node)
        self.faulty = (kind, node)
        if kind == "kill":
            b.kill()
        elif kind == "pause":
            b.proc.send_signal(signal.SIGSTOP)
        else:
            self.net.partition(node)
        self.counts[kind] += 1

    def heal_all(self) -> None:
        """Undo the active fault, if any (also the cleanup path)."""
        if self.faulty is None:
            return
        kind, node = self.faulty
        b = self.cluster.broker(node)
        if kind == "kill":
            b.start()
        elif kind == "pause" and b.running():
            b.proc.send_signal(signal.SIGCONT)
        elif kind == "partition":
            self.net.heal(node)
        self.faulty = None

    def wait_isr_full(self, timeout: float) -> bool:
        full = sorted(b.node_id for b in self.cluster.brokers)

        def isr_full():
            try:
                return all(sorted(s["isrs"]) == full for s in self.cluster.partition_state(self.topic).values())
            except Exception:
                return False
        try:
            wait_until(isr_full, timeout, interval=0.25, what="every ISR full")
            return True
        except AssertionError:
            self.recovery_timeouts += 1
            log(f"nemesis: ISRs not full after {timeout}s: {self.cluster.partition_state(self.topic)}")
            return False


def create_queue_topic(cluster, topic: str = TOPIC) -> None:
    admin = cluster.admin()  # kept alive until the future resolves
    futures = admin.create_topics([NewTopic(topic, PARTITIONS, 3, config={"min.insync.replicas": "2"})])
    futures[topic].result(timeout=30)
    wait_until(lambda: len(cluster.partition_state(topic)) == PARTITIONS
               and all(s["leader"] >= 0 for s in cluster.partition_state(topic).values()), 30,
               what=f"{topic}'s partitions have leaders")


def drain(bootstrap: str, topic: str, timeout: float = 120.0) -> Dict[int, List[tuple]]:
    """{partition: [(offset, value)]} from offset 0 to the high watermark, read by a fresh consumer."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": UNUSED_GROUP, "enable.auto.commit": False,
                  "auto.offset.reset": "earliest", "enable.partition.eof": False})
    try:
        highs = {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=30, cached=False)[1]
                 for p in range(PARTITIONS)}
        out: Dict[int, List[tuple]] = {p: [] for p in range(PARTITIONS)}
        c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(PARTITIONS)])
        deadline = time.monotonic() + timeout
        pending = {p for p in range(PARTITIONS) if highs[p] > 0}
        while pending:
            if time.monotonic() > deadline:
                raise AssertionError(f"drain timed out: high watermarks {highs}, read {({p: len(r) for p, r in out.items()})}")
            for m in c.consume(num_messages=1000, timeout=0.5):
                if m.error() is not None:
                    log(f"drain: {m.error()}")
                    continue
                if m.offset() < highs[m.partition()]:
                    out[m.partition()].append((m.offset(), m.value()))
                if m.offset() + 1 >= highs[m.partition()]:
                    pending.discard(m.partition())
        log(f"drain: high watermarks {highs}")
        return out
    finally:
        c.close()


def stop_all(cluster, timeout: float = 30.0) -> List[int]:
    """SIGTERM every broker at once (one by one, the last has no quorum left for its shutdown),
    wait, and SIGKILL any still running after `timeout`. Returns the ids of those."""
    for b in cluster.brokers:
        if b.running():
            b.proc.send_signal(signal.SIGTERM)
    deadline, slow = time.monotonic() + timeout, []
    for b in cluster.brokers:
        try:
            b.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            log(f"node {b.node_id} still running {timeout}s after SIGTERM; SIGKILL")
            slow.append(b.node_id)
            b.kill()
    return slow


def replica_logs(cluster, topic: str) -> Dict[int, Dict[int, List[tuple]]]:
    """{node: {partition: [(offset, value)]}} from each (stopped) broker's segment files."""
    return {b.node_id: {p: [(o, v) for (o, _, _, v) in kw.partition_log_records(b.data_dir / f"{topic}-{p}")]
                        for p in range(PARTITIONS)}
            for b in cluster.brokers}


def run_checker(cluster, duration: float = 45.0, producers: int = 3, consumers: int = 2, rate: float = 150.0,
                net: Optional[NetworkFaults] = None, seed: Optional[int] = None, topic: str = TOPIC,
                fault_s=(2.0, 4.0), quiet_s=(2.0, 4.0), compare_replicas: bool = True,
                history_path: Optional[Path] = None) -> dict:
    """The whole run on a started cluster: workload + nemesis for `duration` seconds, heal, drain,
    check. Stops the brokers at the end when `compare_replicas` (their segment files are read).
    With `history_path`, the raw history (acks, reads, seeks, drain) is written there as JSON, so
    an anomaly can be re-checked and traced offset by offset."""
    seed = seed if seed is not None else random.randrange(1 << 30)
    rng = random.Random(seed)
    log(f"start seed={seed} duration_s={duration} producers={producers} consumers={consumers} rate={rate}")
    create_queue_topic(cluster, topic)
    bootstrap = ",".join(b.bootstrap for b in cluster.brokers)
    prods = [QueueProducer(i, bootstrap, topic, rate).start() for i in range(producers)]
    cons = [QueueConsumer(f"consumer-{i}", bootstrap, topic).start() for i in range(consumers)]
    nemesis = Nemesis(cluster, topic, rng, net=net, fault_s=fault_s, quiet_s=quiet_s)
    started = time.monotonic()
    try:
        wait_until(lambda: sum(len(p.acked) for p in prods) >= 50, 30, what="first acknowledgements")
        nemesis.run(duration)
    finally:
        nemesis.heal_all()
        log("nemesis done; stopping producers")
        for p in prods:
            p.finish()
    log("producers stopped; waiting for full ISRs")
    isr_full = nemesis.wait_isr_full(60)
    log(f"isr_full={isr_full}; draining")
    final = drain(bootstrap, topic)
    # Consumers keep reading until they have caught up with the drain (or give up).
    highs = {p: (r[-1][0] if r else -1) for p, r in final.items()}

    def caught_up():
        return all(c.position.get(p, -1) >= h for c in cons for p, h in highs.items())

    try:
        wait_until(caught_up, 30, interval=0.5, what="consumers caught up with the drain")
        consumers_caught_up = True
    except AssertionError as e:
        log(str(e))
        consumers_caught_up = False
    for c in cons:
        c.finish()
    log("consumers stopped")
    replicas, slow_stops = None, []
    if compare_replicas:
        slow_stops = stop_all(cluster)
        replicas = replica_logs(cluster, topic)

    attempted = {v: part for p in prods for v, part in p.attempted.items()}
    if history_path is not None:
        text = {"acked": [(p, o, v.decode()) for pr in prods for p, o, v in pr.acked],
                "reads": {c.name: [(p, o, v.decode()) for p, o, v in c.reads] for c in cons},
                "seeks": {c.name: c.seeks for c in cons},
                "final": {p: [(o, v.decode()) for o, v in r] for p, r in final.items()}}
        Path(history_path).write_text(json.dumps(text))
    result = queue_checker.check(
        attempted=attempted, acked=[a for p in prods for a in p.acked],
        definite_failures=set().union(*(p.definite for p in prods)),
        reads={c.name: c.reads for c in cons}, seeks={c.name: c.seeks for c in cons},
        final=final, replicas=replicas)
    result["context"]["indeterminate"] = sum(len(p.indeterminate) for p in prods)
    result["context"]["indeterminate_present"] = len(
        set().union(*(p.indeterminate for p in prods)) & {v for r in final.values() for _, v in r})
    result["producer_errors"] = dict(sum((Counter(p.errors) for p in prods), Counter()))
    result["producer_fatal_errors"] = [e for p in prods for e in p.fatal]
    result["consumer_errors"] = dict(sum((c.errors for c in cons), Counter()))
    result["sigterm_timeouts"] = slow_stops
    result["consumers_caught_up"] = consumers_caught_up
    result["consumer_crashes"] = [f"{c.name}: {c.crashed}" for c in cons if c.crashed]
    result["consumer_offset_resets"] = sum(len(c.seeks) for c in cons)
    result["nemesis"] = {"counts": {k: nemesis.counts[k] for k in ("kill", "pause", "partition")},
                         "partition_skipped": net is None, "rounds": nemesis.rounds,
                         "isr_recovery_timeouts": nemesis.recovery_timeouts, "isr_full_at_end": isr_full}
    result["config"] = {"seed": seed, "duration_s": duration, "producers": producers, "consumers": consumers,
                        "rate_per_producer": rate, "partitions": PARTITIONS, "replication_factor": 3,
                        "min_insync_replicas": 2, "wall_s": round(time.monotonic() - started, 1)}
    log(f"done valid={result['valid']} anomalies={result['anomalies']} acknowledged={result['context']['acknowledged']}")
    return result


def main(argv: Optional[List[str]] = None) -> int:
    from cluster import Cluster

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=float, default=60.0, help="seconds of nemesis rounds")
    ap.add_argument("--producers", type=int, default=3)
    ap.add_argument("--consumers", type=int, default=2)
    ap.add_argument("--rate", type=float, default=150.0, help="msgs/s per producer")
    ap.add_argument("--seed", type=int)
    ap.add_argument("--cores", type=int, default=1, help="--cores of each broker")
    ap.add_argument("--workdir", help="cluster data dirs and logs (default: a new temp dir, kept)")
    ap.add_argument("--out", help="write the JSON summary here too")
    args = ap.parse_args(argv)
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="ringlog-fault-checker-"))
    cluster = Cluster(workdir, size=3, cores=args.cores)
    log(f"cluster workdir={workdir} binary={os.environ.get('RINGLOG_BIN')}")
    try:
        cluster.start()
        history = Path(args.out).with_name("history.json") if args.out else None
        result = run_checker(cluster, duration=args.duration, producers=args.producers, consumers=args.consumers,
                             rate=args.rate, seed=args.seed, history_path=history)
    finally:
        cluster.cleanup()
    result["workdir"] = str(workdir)
    text = json.dumps(result, indent=2, sort_keys=True)
    print(text)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text + "\n")
    return 0 if result["valid"] else 1


if __name__ == "__main__":
    sys.exit(main())
