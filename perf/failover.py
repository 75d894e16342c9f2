#!/usr/bin/env python3
"""Failover time on a 3-broker cluster (issue 17): from a partition leader's SIGKILL to the first
write acknowledged through its new leader, over N rounds; prints each round and p50/max.

    perf/failover.py [--rounds 10] [--session-ms 2000] [--peer ringlog|kafka]

Uses the e2e cluster harness (tests/e2e/cluster.py) and the release binary (RINGLOG_BIN to
override); --peer kafka runs the same rounds, client and settings against three Apache Kafka 4.x
KRaft nodes (perf/kafka_cluster.py, jars fetched by perf/kafka.sh). broker.session.timeout.ms
bounds the time: the controller fences a broker that stops
heartbeating after that long (Kafka's default is 9000 ms; --session-ms sets it).
"""

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "e2e"))
sys.path.insert(0, str(REPO / "perf"))
os.environ.setdefault("RINGLOG_BIN", str(REPO / "target" / "release" / "ringlog"))

from confluent_kafka import Producer  # noqa: E402
from confluent_kafka.admin import NewTopic  # noqa: E402

import cluster as cl  # noqa: E402
import kafka_cluster  # noqa: E402
from conftest import wait_until  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--session-ms", type=int, default=2000)
    ap.add_argument("--peer", choices=["ringlog", "kafka"], default="ringlog")
    ap.add_argument("--keep", action="store_true", help="keep the brokers' logs and data, and print where")
    args = ap.parse_args()
    config = {"broker.session.timeout.ms": args.session_ms, "broker.heartbeat.interval.ms": max(50, args.session_ms // 10)}
    work = Path(tempfile.mkdtemp(prefix=f"{args.peer}-failover-"))
    try:
        if args.peer == "kafka":
            # The Ringlog harness's shortened timeouts too, so both peers run with the same settings.
            c = kafka_cluster.KafkaCluster(work, size=3, config={**cl.FAST_FAILOVER, **config}).start()
        else:
            c = cl.Cluster(work, size=3, config=config).start()
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    times = []
    try:
        admin = c.admin()
        admin.create_topics([NewTopic("failover", 1, 3, config={"min.insync.replicas": "2"})])["failover"].result(30)
        wait_until(lambda: c.partition_state("failover")[0]["leader"] >= 0, 30, what="a leader")
        for r in range(args.rounds):
            wait_until(lambda: sorted(c.partition_state("failover")[0]["isrs"]) == [1, 2, 3], 60, what="a full ISR")
            acked = []
            p = Producer({"bootstrap.servers": c.bootstrap, "acks": "all", "enable.idempotence": True,
                          "linger.ms": 0, "topic.metadata.refresh.interval.ms": 500, "retry.backoff.ms": 20,
                          "retry.backoff.max.ms": 100})
            leader = c.partition_state("failover")[0]["leader"]
            p.produce("failover", b"warm", partition=0)
            p.flush(10)
            killed, killed_wall = time.monotonic(), time.time()
            c.broker(leader).kill()
            p.produce("failover", b"after", partition=0, on_delivery=lambda e, m: acked.append((e, time.monotonic())))
            deadline = time.monotonic() + 60
            while not acked and time.monotonic() < deadline:
                p.poll(0.005)
            err, at = acked[0] if acked else ("timeout", None)
            took = None if at is None or err is not None else at - killed
            times.append(took)
            kill_utc = time.strftime("%H:%M:%S", time.gmtime(killed_wall)) + f"{killed_wall % 1:.3f}"[1:]
            print(json.dumps({"round": r + 1, "killed": leader, "killed_at_utc": kill_utc, "first_ack_s": took,
                              "error": str(err) if err else None}), flush=True)
            c.broker(leader).start(timeout=60)
        ok = [t for t in times if t is not None]
        summary = {"peer": args.peer, "rounds": len(times), "failed": len(times) - len(ok), "session_ms": args.session_ms,
                   "p50_s": round(statistics.median(ok), 3) if ok else None, "max_s": round(max(ok), 3) if ok else None}
        print(json.dumps(summary))
    finally:
        c.cleanup()
        if args.keep:
            print(json.dumps({"kept": str(work)}))
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
