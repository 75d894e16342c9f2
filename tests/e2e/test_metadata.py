"""Metadata as records: the metadata log (data/meta/metadata.log, frames of length | crc32c | JSON
payload) keeps every acknowledged change across a SIGKILL, and a damaged tail (garbage bytes, or a
frame cut in half) is dropped at start-up instead of being served.

CreateTopics requests are sent as raw protocol frames (v2), one topic per request, so each
acknowledgement is known exactly. The log is read and written here with the documented format,
which also checks that format."""

import json
import socket
import struct
import threading
import time
import uuid
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from confluent_kafka import KafkaError, KafkaException, Producer
from confluent_kafka.admin import NewPartitions

import kafka_wire as kw
from conftest import admin_for, parse_log_events, producer_conf, wait_until

API_CREATE_TOPICS = 19
PARTITIONS = 3


def create_topics_v2_body(name: str, partitions: int = PARTITIONS, timeout_ms: int = 30000,
                          replication_factor: int = 1) -> bytes:
    topic = kw.string(name) + kw.i32(partitions) + kw.i16(replication_factor) + kw.array([]) + kw.array([])
    return kw.array([topic]) + kw.i32(timeout_ms) + kw.i8(0)


def parse_create_topics_v2(data: bytes) -> Tuple[int, str, int]:
    """(correlation id, topic name, error code) of a one-topic CreateTopics v2 response."""
    r = kw.Reader(data)
    correlation_id = r.i32()
    r.i32()  # throttle_time_ms
    assert r.i32() == 1, "one topic per response"
    name = r.string()
    error_code = r.i16()
    r.nullable_string()
    return correlation_id, name, error_code


class Burst(threading.Thread):
    """Sends CreateTopics for `names` on one connection, pipelined `depth` deep, and records every
    topic whose CreateTopics was answered with NONE. Ends when all are answered or the broker dies."""

    def __init__(self, port: int, names: List[str], depth: int = 8):
        super().__init__(daemon=True)
        self.port = port
        self.names = names
        self.depth = depth
        self.acked: List[str] = []
        self.refused: List[Tuple[str, int]] = []
        self.closed = False
        self.error: Optional[BaseException] = None

    def run(self):
        try:
            sock = kw.connect(self.port)
        except OSError as e:
            self.error = e
            return
        sent = answered = 0
        try:
            while answered < len(self.names):
                while sent < len(self.names) and sent - answered < self.depth:
                    sock.sendall(kw.frame(API_CREATE_TOPICS, 2, sent, create_topics_v2_body(self.names[sent])))
                    sent += 1
                cid, name, code = parse_create_topics_v2(kw.read_response(sock, timeout=30))
                assert (cid, name) == (answered, self.names[answered]), (cid, name, answered)
                answered += 1
                (self.acked.append(name) if code == 0 else self.refused.append((name, code)))
        except (kw.Closed, ConnectionError, socket.timeout, OSError):
            self.closed = True
        except BaseException as e:  # noqa: BLE001 - reported by the test
            self.error = e
        finally:
            sock.close()


def topics_served(broker) -> Dict[str, int]:
    """Topic name -> partition count, for every topic Metadata lists without an error (leader 0)."""
    md = admin_for(broker).list_topics(timeout=15)
    out = {}
    for name, t in md.topics.items():
        if t.error is not None or name.startswith("__"):
            continue
        assert all(p.leader == 0 and p.error is None for p in t.partitions.values()), (name, t.partitions)
        out[name] = len(t.partitions)
    return out


def produce_to_each(broker, topics: List[str]) -> None:
    """One acks=all record to partition 0 of each topic: each must be delivered (the partitions are open)."""
    failed = []
    delivered = []
    p = Producer(producer_conf(broker, **{"message.timeout.ms": 30000}))
    for t in topics:
        p.produce(t, b"v-" + t.encode(), partition=0,
                  on_delivery=lambda err, msg: (failed if err else delivered).append((msg.topic(), err)))
    assert p.flush(60) == 0, "records left undelivered"
    assert not failed, failed[:5]
    assert len(delivered) == len(topics)


def log_path(broker) -> Path:
    return broker.data_dir / "meta" / "metadata.log"


def read_frames(data: bytes) -> Tuple[List[dict], int]:
    """The whole, CRC-valid frames at the start of `data` (their JSON payloads) and where they end."""
    frames, pos = [], 0
    while pos + 8 <= len(data):
        length, crc = struct.unpack("<II", data[pos:pos + 8])
        payload = data[pos + 8:pos + 8 + length]
        if len(payload) < length or kw.crc32c(payload) != crc:
            break
        frames.append(json.loads(payload))
        pos += 8 + length
    return frames, pos


def next_offset(broker) -> int:
    """The offset the log's next record takes (after the checkpoint and every frame in the log)."""
    frames, end = read_frames(log_path(broker).read_bytes())
    assert end == log_path(broker).stat().st_size, "the log ends with whole frames"
    if frames:
        return frames[-1]["offset"] + len(frames[-1]["records"])
    ckpt, _ = read_frames((broker.data_dir / "meta" / "metadata.checkpoint").read_bytes())
    return ckpt[0]["end_offset"]


def topic_frame(offset: int, name: str, partitions: int) -> bytes:
    """A log frame that creates `name`, as the broker writes one (one frame: topic and partitions)."""
    topic_id = str(uuid.uuid4())
    records = [{"type": "Topic", "name": name, "topic_id": topic_id}] + [
        {"type": "Partition", "topic_id": topic_id, "partition": i, "replicas": [0], "isr": [0], "leader": 0,
         "leader_epoch": 0, "partition_epoch": 0, "owner_shard": 0}
        for i in range(partitions)
    ]
    payload = json.dumps({"offset": offset, "records": records}).encode()
    return struct.pack("<II", len(payload), kw.crc32c(payload)) + payload


def test_sigkill_during_create_topics_burst_loses_no_acknowledged_topic(broker_factory):
    broker = broker_factory(cores=2)
    names = [f"burst-{i:03d}" for i in range(200)]
    # Four connections (on both shards: shard 1 forwards its mutations to shard 0), 8 requests deep.
    bursts = [Burst(broker.port, names[i::4]) for i in range(4)]
    for b in bursts:
        b.start()
    # Kill once a quarter is acknowledged: the rest is queued, in flight or not yet sent.
    wait_until(lambda: sum(len(b.acked) for b in bursts) >= 50, timeout=60, interval=0.001,
               what="50 acknowledged CreateTopics")
    broker.kill()
    for b in bursts:
        b.join(timeout=30)
        assert not b.is_alive() and b.error is None, b.error
        assert not b.refused, b.refused[:5]
    acked = sorted(t for b in bursts for t in b.acked)
    assert 50 <= len(acked) < len(names), f"the kill did not land mid-burst ({len(acked)} acknowledged)"

    broker.start()
    served = topics_served(broker)
    print(f"acknowledged={len(acked)} served_after_restart={len(served)}")
    lost = [t for t in acked if t not in served]
    assert not lost, f"{len(lost)} acknowledged topics lost: {lost[:10]}"
    # Every topic there (acknowledged or caught in flight) is whole: all its partitions, no half topic.
    assert set(served) <= set(names), set(served) - set(names)
    half = {t: n for t, n in served.items() if n != PARTITIONS}
    assert not half, f"topics with a partial set of partitions: {half}"
    produce_to_each(broker, sorted(served))
    # The log after the restart holds whole frames only.
    data = log_path(broker).read_bytes()
    assert read_frames(data)[1] == len(data)
    # The topics not created can be created now: the names were free, the log goes on.
    missing = [t for t in names if t not in served]
    b = Burst(broker.port, missing)
    b.run()
    assert b.error is None and not b.refused and len(b.acked) == len(missing), (b.error, b.refused[:5])
    assert len(topics_served(broker)) == len(names)


def test_garbage_and_torn_tail_of_the_metadata_log_are_dropped(broker_factory):
    broker = broker_factory()
    names = [f"keep-{i:02d}" for i in range(20)]
    b = Burst(broker.port, names)
    b.run()
    assert b.error is None and b.acked == names, (b.error, b.refused)
    broker.kill()

    # 1. Garbage after the last whole frame: the broker starts, warns, and serves every topic.
    good = log_path(broker).read_bytes()
    with open(log_path(broker), "ab") as f:
        f.write(bytes(range(256)) * 3 + b"\xff\xff\xff\x7f garbage")
    broker.start()
    assert sorted(topics_served(broker)) == names
    cuts = parse_log_events(broker.log_text(), "metadata log tail truncated")
    assert len(cuts) == 1 and int(cuts[0]["at_byte"]) == len(good), cuts
    produce_to_each(broker, names)
    broker.kill()

    # 2. A real frame cut in half (a torn write): the half-written topic is not served.
    offset = next_offset(broker)
    frame = topic_frame(offset, "ghost", 2)
    before = log_path(broker).stat().st_size
    with open(log_path(broker), "ab") as f:
        f.write(frame[: len(frame) // 2])
    broker.start()
    served = topics_served(broker)
    assert "ghost" not in served and sorted(served) == names
    cuts = parse_log_events(broker.log_text(), "metadata log tail truncated")
    assert len(cuts) == 2 and int(cuts[1]["at_byte"]) == before, cuts
    broker.kill()

    # 3. The same frame whole (at the log's new end): now it is applied. So step 2 dropped it for
    #    being torn, not for a format this test got wrong.
    with open(log_path(broker), "ab") as f:
        f.write(topic_frame(next_offset(broker), "ghost", 2))
    broker.start()
    served = topics_served(broker)
    assert served.get("ghost") == 2 and sorted(t for t in served if t != "ghost") == names
    assert len(parse_log_events(broker.log_text(), "metadata log tail truncated")) == 2
    produce_to_each(broker, names + ["ghost"])


def test_refusals_keep_their_wire_codes_and_the_broker_registers_itself(broker_factory):
    broker = broker_factory(cores=2)
    sock = kw.connect(broker.port)

    def create(name, partitions=PARTITIONS, rf=1):
        body = create_topics_v2_body(name, partitions, replication_factor=rf)
        return parse_create_topics_v2(kw.roundtrip(sock, kw.frame(API_CREATE_TOPICS, 2, 1, body)))[2]

    # The codes the JSON store answered with: NONE, TOPIC_ALREADY_EXISTS, INVALID_TOPIC_EXCEPTION,
    # INVALID_PARTITIONS, INVALID_REPLICATION_FACTOR.
    assert [create("kept"), create("kept"), create("bad/name"), create("zero", 0), create("rf3", rf=3)] == [0, 36, 17, 37, 38]
    sock.close()
    admin = admin_for(broker)

    def error_of(future):
        try:
            future.result(timeout=15)
        except KafkaException as e:
            return e.args[0].code()
        return None

    assert error_of(admin.delete_topics(["no-such-topic"], operation_timeout=15)["no-such-topic"]) == \
        KafkaError.UNKNOWN_TOPIC_OR_PART
    assert error_of(admin.create_partitions([NewPartitions("kept", 2)])["kept"]) == KafkaError.INVALID_PARTITIONS
    assert error_of(admin.create_partitions([NewPartitions("kept", 5)])["kept"]) is None

    broker.restart()
    served = topics_served(broker)
    assert served == {"kept": 5}, served
    # Metadata and DescribeCluster list the brokers of the registry: this one, as node.id 0.
    admin = admin_for(broker)
    md = admin.list_topics(timeout=15)
    assert [(b.id, b.host, b.port) for b in md.brokers.values()] == [(0, "127.0.0.1", broker.port)]
    nodes = admin.describe_cluster(request_timeout=15).result(timeout=15).nodes
    assert [(n.id, n.host, n.port) for n in nodes] == [(0, "127.0.0.1", broker.port)]
    # Each start registers again, with a new incarnation id.
    registered = parse_log_events(broker.log_text(), "broker registered")
    assert len(registered) == 2 and registered[0]["incarnation_id"] != registered[1]["incarnation_id"], registered
