"""One consumer-group member in its own process, for tests/e2e/test_groups.py.

    python group_worker.py '<json spec>'

spec: {"client": "confluent" | "kafka-python", "bootstrap": ..., "group": ..., "topics": [...],
       "events": "/path/events.jsonl", "name": "c1", "conf": {client config overrides},
       "commit": true (commit synchronously after processing each polled batch)}

Every event is one JSON line, appended and flushed at once, so a SIGKILL loses at most a torn
last line (readers skip it). Events ("ev"):
  start                                     process is up, consumer created
  assign    parts=[p...]                    rebalance callback: partitions added (incremental list
                                            for cooperative, the whole assignment for eager)
  revoke    parts=[p...]                    rebalance callback: partitions taken away
  lost      parts=[p...]                    partitions lost (session expired etc.)
  assignment parts=[p...]                   snapshot of consumer.assignment(), every ~0.25 s
  rec       p, o, v                         a record was processed (value decoded as text)
  commit    offsets={p: next_offset}        synchronous commit succeeded
  commit_failed offsets={...} err=...       synchronous commit raised
  error     err=...                         consumer error / error_cb
  closed                                    consumer.close() returned (graceful stop on SIGTERM)
Topics are not named in events: a worker subscribes to one topic.
"""

import json
import os
import signal
import sys
import threading
import time


class Events:
    def __init__(self, path):
        self.lock = threading.Lock()
        self.f = open(path, "a", buffering=1)

    def emit(self, ev, **fields):
        fields["ev"] = ev
        fields["t"] = time.time()
        line = json.dumps(fields, sort_keys=True) + "\n"
        with self.lock:
            self.f.write(line)
            self.f.flush()


stop = threading.Event()


def on_term(signum, frame):
    stop.set()


def run_confluent(spec, events):
    from confluent_kafka import Consumer, KafkaException, TopicPartition

    conf = {
        "bootstrap.servers": spec["bootstrap"],
        "group.id": spec["group"],
        "client.id": spec["name"],
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "enable.partition.eof": False,
        "reconnect.backoff.ms": 50,
        "reconnect.backoff.max.ms": 1000,
        "error_cb": lambda err: events.emit("error", err=str(err)),
    }
    conf.update(spec.get("conf", {}))
    consumer = Consumer(conf)
    events.emit("start", pid=os.getpid())

    def parts(tps):
        return sorted(tp.partition for tp in tps)

    consumer.subscribe(
        spec["topics"],
        on_assign=lambda c, tps: events.emit("assign", parts=parts(tps)),
        on_revoke=lambda c, tps: events.emit("revoke", parts=parts(tps)),
        on_lost=lambda c, tps: events.emit("lost", parts=parts(tps)),
    )
    topic = spec["topics"][0]
    last_snapshot = 0.0
    while not stop.is_set():
        msgs = consumer.consume(num_messages=int(spec.get("batch", 50)), timeout=0.2)
        now = time.monotonic()
        if now - last_snapshot >= 0.25:
            last_snapshot = now
            try:
                events.emit("assignment", parts=parts(consumer.assignment()))
            except KafkaException as e:
                events.emit("error", err=f"assignment(): {e}")
        nxt = {}
        for m in msgs:
            if m.error() is not None:
                events.emit("error", err=str(m.error()))
                continue
            v = m.value()
            events.emit("rec", p=m.partition(), o=m.offset(), v=None if v is None else v.decode(errors="replace"))
            nxt[m.partition()] = m.offset() + 1
        if nxt and spec.get("commit", True):
            try:
                consumer.commit(offsets=[TopicPartition(topic, p, o) for p, o in sorted(nxt.items())],
                                asynchronous=False)
                events.emit("commit", offsets={str(p): o for p, o in nxt.items()})
            except KafkaException as e:
                events.emit("commit_failed", offsets={str(p): o for p, o in nxt.items()}, err=str(e))
    consumer.close()
    events.emit("closed")


def run_kafka_python(spec, events):
    from kafka import KafkaConsumer, OffsetAndMetadata, TopicPartition
    from kafka.consumer.subscription_state import ConsumerRebalanceListener
    from kafka.coordinator.assignors.range import RangePartitionAssignor
    from kafka.coordinator.assignors.roundrobin import RoundRobinPartitionAssignor

    assignors = {"range": RangePartitionAssignor, "roundrobin": RoundRobinPartitionAssignor}
    conf = dict(
        bootstrap_servers=spec["bootstrap"],
        group_id=spec["group"],
        client_id=spec["name"],
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        session_timeout_ms=6000,
        heartbeat_interval_ms=500,
        request_timeout_ms=30000,
    )
    extra = dict(spec.get("conf", {}))
    if "partition_assignment_strategy" in extra:
        extra["partition_assignment_strategy"] = tuple(assignors[n] for n in extra["partition_assignment_strategy"])
    conf.update(extra)
    consumer = KafkaConsumer(**conf)
    events.emit("start", pid=os.getpid())

    def parts(tps):
        return sorted(tp.partition for tp in tps)

    class Listener(ConsumerRebalanceListener):
        def on_partitions_revoked(self, revoked):
            events.emit("revoke", parts=parts(revoked))

        def on_partitions_assigned(self, assigned):
            events.emit("assign", parts=parts(assigned))

        def on_partitions_lost(self, lost):
            events.emit("lost", parts=parts(lost))

    topic = spec["topics"][0]
    consumer.subscribe(topics=spec["topics"], listener=Listener())
    last_snapshot = 0.0
    while not stop.is_set():
        batch = consumer.poll(timeout_ms=200, max_records=int(spec.get("batch", 50)))
        now = time.monotonic()
        if now - last_snapshot >= 0.25:
            last_snapshot = now
            events.emit("assignment", parts=parts(consumer.assignment()))
        nxt = {}
        for tp, recs in batch.items():
            for rec in recs:
                v = rec.value
                events.emit("rec", p=tp.partition, o=rec.offset, v=None if v is None else v.decode(errors="replace"))
                nxt[tp.partition] = rec.offset + 1
        if nxt and spec.get("commit", True):
            try:
                consumer.commit({TopicPartition(topic, p): OffsetAndMetadata(o, "", -1) for p, o in nxt.items()})
                events.emit("commit", offsets={str(p): o for p, o in nxt.items()})
            except Exception as e:  # CommitFailedError, KafkaError subclasses
                events.emit("commit_failed", offsets={str(p): o for p, o in nxt.items()}, err=repr(e))
    consumer.close()
    events.emit("closed")


def main():
    spec = json.loads(sys.argv[1])
    events = Events(spec["events"])
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    try:
        if spec["client"] == "confluent":
            run_confluent(spec, events)
        elif spec["client"] == "kafka-python":
            run_kafka_python(spec, events)
        else:
            raise SystemExit(f"unknown client {spec['client']!r}")
    except BaseException as e:
        events.emit("crash", err=repr(e))
        raise


if __name__ == "__main__":
    main()
