"""Produce latency on one shard while the log cleaner compacts a big topic on the same shard
(issue 18: p99 within 20% of p99 without compaction). Driven by perf/compaction.sh.

    compaction_probe.py fill BOOTSTRAP SIZE_MB        fills topic `big` (compacted, 32 MiB segments)
    compaction_probe.py probe BOOTSTRAP SECONDS       produces one record at a time to `probe`,
                                                     acks=all, for 1 s, then sets `big`'s
                                                     min.compaction.lag.ms to 0 (the cleaner may
                                                     start) and goes on for SECONDS; prints the
                                                     latency percentiles after that point
    compaction_probe.py window SAMPLES BROKER_LOG     the percentiles of the samples taken while
                                                     a "log cleaned" pass of `big` ran
"""

import datetime
import json
import os
import re
import sys
import time

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, NewTopic, ResourceType

VALUE = 1024


def create(bootstrap, name, config):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    fut = admin.create_topics([NewTopic(name, num_partitions=1, replication_factor=1, config=config)])[name]
    try:
        fut.result(timeout=30)
    except Exception as e:  # already there on a second run
        if "TOPIC_ALREADY_EXISTS" not in str(e):
            raise


def fill(bootstrap, size_mb):
    # Nothing is cleanable until the probe lowers min.compaction.lag.ms.
    create(bootstrap, "big", {"cleanup.policy": "compact", "segment.bytes": str(32 << 20),
                              "min.compaction.lag.ms": str(1 << 50)})
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 20, "batch.size": 1 << 20,
                  "queue.buffering.max.kbytes": 1 << 20, "compression.type": "none"})
    records = size_mb * (1 << 20) // (VALUE + 8)
    keys = max(1, records // 4)  # each key written about four times
    value = b"v" * VALUE
    start = time.monotonic()
    for i in range(records):
        while True:
            try:
                p.produce("big", value, key=b"%08d" % (i * 7919 % keys), partition=0)
                break
            except BufferError:
                p.poll(0.01)
        if i % 10_000 == 0:
            p.poll(0)
    p.flush(120)
    print(f"filled big with {records} records ({size_mb} MiB) over {keys} keys in {time.monotonic() - start:.1f} s")


def percentiles(lat):
    lat = sorted(lat)
    if not lat:
        return "samples=0"

    def pct(q):
        return lat[min(len(lat) - 1, int(q * len(lat)))]

    return f"samples={len(lat)} p50={pct(0.50):.2f}ms p99={pct(0.99):.2f}ms p999={pct(0.999):.2f}ms max={lat[-1]:.2f}ms"


def probe(bootstrap, seconds):
    create(bootstrap, "probe", {})
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 0, "compression.type": "none"})
    errors = []
    p.produce("probe", b"warm-up", partition=0)
    p.flush(30)
    samples = []  # (wall time s, latency ms)
    altered = None
    start = time.monotonic()
    while time.monotonic() < start + 1 + seconds:
        if altered is None and time.monotonic() > start + 1:
            admin = AdminClient({"bootstrap.servers": bootstrap})
            res = ConfigResource(ResourceType.TOPIC, "big", incremental_configs=[
                ConfigEntry("min.compaction.lag.ms", "0", incremental_operation=AlterConfigOpType.SET)])
            admin.incremental_alter_configs([res])[res].result(timeout=30)
            altered = time.time()
        t0 = time.perf_counter()
        p.produce("probe", b"x" * 100, partition=0, on_delivery=lambda err, msg: err and errors.append(err))
        p.flush(30)
        samples.append((time.time(), (time.perf_counter() - t0) * 1000))
        time.sleep(0.002)
    with open(os.environ.get("SAMPLES", "/dev/null"), "w") as f:
        json.dump(samples, f)
    print(f"errors={len(errors)} after the alter: {percentiles([ms for t, ms in samples if t >= altered])}")


def window(samples_path, log_path):
    """Samples taken while a cleaning pass of `big` ran: from each "log cleaning started" line to
    the "log cleaned" line after it (or the last sample, for a pass still running)."""
    samples = json.load(open(samples_path))
    passes, started = [], None

    def at(line):
        return datetime.datetime.fromisoformat(line.split()[0].replace("Z", "+00:00")).timestamp()

    for line in open(log_path):
        if "partition=big-0" not in line:
            continue
        if "log cleaning started" in line:
            started = at(line)
        elif "log cleaned" in line and started is not None:
            passes.append((started, at(line)))
            started = None
    if started is not None and samples:
        passes.append((started, samples[-1][0]))
    during = [ms for t, ms in samples if any(a <= t <= b for a, b in passes)]
    print(f"while cleaning ({sum(b - a for a, b in passes):.1f} s in {len(passes)} passes): {percentiles(during)}")


if __name__ == "__main__":
    if sys.argv[1] == "window":
        window(sys.argv[2], sys.argv[3])
    else:
        {"fill": fill, "probe": probe}[sys.argv[1]](sys.argv[2], int(sys.argv[3]))
