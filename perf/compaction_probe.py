"""Produce latency on one shard while the log cleaner compacts a big topic on the same shard
(issue 18: p99 within 20% of p99 without compaction). Driven by perf/compaction.sh.

    compaction_probe.py fill BOOTSTRAP SIZE_MB        fills topic `big` (compacted, 32 MiB segments)
    compaction_probe.py probe BOOTSTRAP SECONDS       produces one record at a time to `probe`,
                                                     acks=all, and prints the latency percentiles
"""

import sys
import time

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

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
    create(bootstrap, "big", {"cleanup.policy": "compact", "segment.bytes": str(32 << 20)})
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


def probe(bootstrap, seconds):
    create(bootstrap, "probe", {})
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 0, "compression.type": "none"})
    lat = []
    done = []
    p.produce("probe", b"warm-up", partition=0)
    p.flush(30)
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        t0 = time.perf_counter()
        p.produce("probe", b"x" * 100, partition=0, on_delivery=lambda err, msg: done.append(err))
        p.flush(30)
        lat.append((time.perf_counter() - t0) * 1000)
        time.sleep(0.002)
    errors = [e for e in done if e is not None]
    lat.sort()

    def pct(q):
        return lat[min(len(lat) - 1, int(q * len(lat)))]

    print(f"probe samples={len(lat)} errors={len(errors)} p50={pct(0.50):.2f}ms p99={pct(0.99):.2f}ms "
          f"p999={pct(0.999):.2f}ms max={lat[-1]:.2f}ms")


if __name__ == "__main__":
    cmd, bootstrap, arg = sys.argv[1], sys.argv[2], int(sys.argv[3])
    {"fill": fill, "probe": probe}[cmd](bootstrap, arg)
