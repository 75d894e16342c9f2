"""Fault-injection checker for transactions (issue 18's acceptance), on the nemesis of
fault_checker.py: transactional producers (confluent-kafka) send batches of unique values
("t<producer>-<seq>") to a RF=3 topic and commit most transactions and abort the rest, while
read_committed consumers read every partition and brokers are SIGKILLed and paused one at a time.
Then everything is healed and a fresh read_committed consumer drains the topic.

It counts: aborted values any read_committed reader saw (must be 0), committed values missing from
the drain (must be 0), values read twice in the drain, and values never sent.

Library: `run_txn_checker(cluster, ...)` on a started tests/e2e/cluster.Cluster returns the summary.
CLI (from tests/e2e): RINGLOG_BIN=target/debug/ringlog python -m txn_checker --duration 60
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Dict, List, Optional, Set

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, Producer, TopicPartition

from conftest import UNUSED_GROUP, wait_until
from fault_checker import PARTITIONS, Nemesis, create_queue_topic, log

TOPIC = "jepsen-txn"


class TxnWorkload:
    """One transactional producer thread: transactions of `size` values over random partitions;
    a fraction `abort_ratio` is aborted on purpose. Each value ends committed, aborted, or
    indeterminate (the commit's outcome was never learned)."""

    def __init__(self, pid: int, bootstrap: str, topic: str, rng: random.Random, size: int = 10, abort_ratio: float = 0.25):
        self.pid, self.bootstrap, self.topic, self.rng = pid, bootstrap, topic, rng
        self.size, self.abort_ratio = size, abort_ratio
        self.committed: Set[bytes] = set()
        self.aborted: Set[bytes] = set()
        self.indeterminate: Set[bytes] = set()
        self.errors: Counter = Counter()
        self.new_clients = 0
        self.stop_flag = threading.Event()
        self.thread = threading.Thread(target=self._run, name=f"txn-producer-{pid}", daemon=True)
        self.p: Optional[Producer] = None

    def _client(self) -> Producer:
        p = Producer({"bootstrap.servers": self.bootstrap, "transactional.id": f"txn-checker-{self.pid}",
                      "transaction.timeout.ms": 20000, "message.timeout.ms": 20000, "linger.ms": 5,
                      "topic.metadata.refresh.interval.ms": 1000, "reconnect.backoff.ms": 50,
                      "reconnect.backoff.max.ms": 1000})
        p.init_transactions(60)
        return p

    def _one_transaction(self, seq: int) -> int:
        values = [f"t{self.pid}-{seq + i}".encode() for i in range(self.size)]
        abort = self.rng.random() < self.abort_ratio
        try:
            self.p.begin_transaction()
            for v in values:
                self.p.produce(self.topic, value=v, partition=self.rng.randrange(PARTITIONS))
            if abort:
                self.p.abort_transaction(60)
                self.aborted.update(values)
                return len(values)
            self._commit(values)
        except KafkaException as e:
            err = e.args[0]
            self.errors[err.name()] += 1
            if err.txn_requires_abort():
                try:
                    self.p.abort_transaction(60)
                    self.aborted.update(values)
                    return len(values)
                except KafkaException as e2:
                    self.errors[e2.args[0].name()] += 1
            # Fatal, or the abort failed: what happened to these values is unknown; a new client goes on.
            self.indeterminate.update(values)
            self.p = None
        return len(values)

    def _commit(self, values: List[bytes]) -> None:
        for attempt in range(5):
            try:
                self.p.commit_transaction(60)
                self.committed.update(values)
                return
            except KafkaException as e:
                err = e.args[0]
                if not err.retriable() or attempt == 4:
                    raise
                self.errors[err.name()] += 1

    def _run(self) -> None:
        seq = 0
        while not self.stop_flag.is_set():
            if self.p is None:
                try:
                    self.p = self._client()
                    self.new_clients += 1
                except KafkaException as e:
                    self.errors[e.args[0].name()] += 1
                    time.sleep(0.5)
                    continue
            seq += self._one_transaction(seq)

    def start(self) -> "TxnWorkload":
        self.thread.start()
        return self

    def finish(self) -> None:
        self.stop_flag.set()
        self.thread.join(timeout=180)


class CommittedReader:
    """A read_committed consumer thread reading every partition from the beginning."""

    def __init__(self, name: str, bootstrap: str, topic: str):
        self.name = name
        self.values: List[bytes] = []
        self.errors: Counter = Counter()
        self.stop_flag = threading.Event()
        self.c = Consumer({"bootstrap.servers": bootstrap, "group.id": UNUSED_GROUP, "enable.auto.commit": False,
                           "isolation.level": "read_committed", "auto.offset.reset": "earliest",
                           "enable.partition.eof": False, "topic.metadata.refresh.interval.ms": 1000})
        self.c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(PARTITIONS)])
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)

    def _run(self) -> None:
        try:
            while not self.stop_flag.is_set():
                for m in self.c.consume(num_messages=500, timeout=0.2):
                    if m.error() is None:
                        self.values.append(m.value())
                    else:
                        self.errors[m.error().name()] += 1
        finally:
            self.c.close()

    def start(self) -> "CommittedReader":
        self.thread.start()
        return self

    def finish(self) -> None:
        self.stop_flag.set()
        self.thread.join(timeout=30)


def drain_committed(bootstrap: str, topic: str, idle_s: float = 5.0, timeout: float = 120.0) -> List[bytes]:
    """Every value a fresh read_committed consumer reads, until nothing new for idle_s."""
    reader = CommittedReader("drain", bootstrap, topic)
    deadline = time.monotonic() + timeout
    reader.start()
    last, seen = time.monotonic(), 0
    while time.monotonic() - last < idle_s and time.monotonic() < deadline:
        time.sleep(0.5)
        if len(reader.values) != seen:
            seen, last = len(reader.values), time.monotonic()
    reader.finish()
    return reader.values


def run_txn_checker(cluster, duration: float = 30.0, producers: int = 2, consumers: int = 2,
                    seed: Optional[int] = None, topic: str = TOPIC) -> dict:
    seed = seed if seed is not None else random.randrange(1 << 30)
    rng = random.Random(seed)
    log(f"txn checker start seed={seed} duration_s={duration} producers={producers} consumers={consumers}")
    create_queue_topic(cluster, topic)
    bootstrap = ",".join(b.bootstrap for b in cluster.brokers)
    prods = [TxnWorkload(i, bootstrap, topic, random.Random(rng.random())).start() for i in range(producers)]
    readers = [CommittedReader(f"reader-{i}", bootstrap, topic).start() for i in range(consumers)]
    nemesis = Nemesis(cluster, topic, rng)
    started = time.monotonic()
    try:
        wait_until(lambda: sum(len(p.committed) for p in prods) >= 20, 60, what="first committed transactions")
        nemesis.run(duration)
    finally:
        nemesis.heal_all()
        for p in prods:
            p.finish()
    isr_full = nemesis.wait_isr_full(60)
    final = drain_committed(bootstrap, topic)
    for r in readers:
        r.finish()

    committed = set().union(*(p.committed for p in prods))
    aborted = set().union(*(p.aborted for p in prods))
    indeterminate = set().union(*(p.indeterminate for p in prods))
    sent = committed | aborted | indeterminate
    final_set = set(final)
    read_by_readers = set().union(*(set(r.values) for r in readers))
    anomalies = {
        "aborted_read": len(aborted & (final_set | read_by_readers)),
        "committed_lost": len(committed - final_set),
        "duplicated": sum(n - 1 for n in Counter(final).values() if n > 1),
        "unexpected": len(final_set - sent),
    }
    result = {
        "valid": all(v == 0 for v in anomalies.values()),
        "anomalies": anomalies,
        "context": {"committed": len(committed), "aborted": len(aborted), "indeterminate": len(indeterminate),
                    "indeterminate_present": len(indeterminate & final_set), "drained": len(final),
                    "reader_values": [len(r.values) for r in readers]},
        "producer_errors": dict(sum((p.errors for p in prods), Counter())),
        "producer_new_clients": [p.new_clients for p in prods],
        "reader_errors": dict(sum((r.errors for r in readers), Counter())),
        "nemesis": {"counts": dict(nemesis.counts), "rounds": nemesis.rounds, "isr_full_at_end": isr_full},
        "config": {"seed": seed, "duration_s": duration, "producers": producers, "consumers": consumers,
                   "wall_s": round(time.monotonic() - started, 1)},
    }
    log(f"txn checker done valid={result['valid']} anomalies={anomalies} context={result['context']}")
    return result


def main(argv: Optional[List[str]] = None) -> int:
    from cluster import Cluster

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=float, default=60.0)
    ap.add_argument("--producers", type=int, default=2)
    ap.add_argument("--consumers", type=int, default=2)
    ap.add_argument("--seed", type=int)
    ap.add_argument("--out")
    args = ap.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="ringlog-txn-checker-"))
    cluster = Cluster(workdir, size=3, cores=1)
    try:
        cluster.start()
        result = run_txn_checker(cluster, duration=args.duration, producers=args.producers,
                                 consumers=args.consumers, seed=args.seed)
    finally:
        cluster.cleanup()
    text = json.dumps(result, indent=2, sort_keys=True)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    return 0 if result["valid"] else 1


if __name__ == "__main__":
    sys.exit(main())
