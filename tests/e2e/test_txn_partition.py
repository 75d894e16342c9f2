"""The partition side of transactions, driven with raw requests against the real binary:
transactional batches written by hand with a producer id from InitProducerId (the partition
added to the transaction with AddPartitionsToTxn, so KIP-890's verification passes),
WriteTxnMarkers sent directly to commit or abort them, and what read_committed and
read_uncommitted fetches, ListOffsets and DescribeProducers then answer; across a SIGKILL and a
clean restart (the .txnindex files), and on a cluster across a leader's SIGKILL."""

from __future__ import annotations

import struct
import threading
import time

from confluent_kafka.admin import NewTopic

import kafka_wire as kw
from conftest import create_topic, wait_until

TOPIC = "tx"
API_LIST_OFFSETS = 2
API_INIT_PRODUCER_ID = 22
API_ADD_PARTITIONS_TO_TXN = 24
API_WRITE_TXN_MARKERS = 27
API_DESCRIBE_PRODUCERS = 61
ERR_INVALID_PRODUCER_EPOCH = 47
ERR_INVALID_TXN_STATE = 48
ERR_TRANSACTIONAL_ID_AUTHORIZATION_FAILED = 53
# Answers a client retries: coordinator loading, not available, not the coordinator, concurrent transactions.
RETRIABLE = {14, 15, 16, 51}
TXN_ID = "tx-e2e"
# Produce answers a producer retries: not leader, timed out, not enough replicas (before or after
# the append), the coordinator's transient states during KIP-890 verification.
RETRIABLE_PRODUCE = {6, 7, 19, 20} | RETRIABLE
TRANSACTIONAL = 0x10
CONTROL = 0x20


class Client:
    def __init__(self, broker, topic: str = TOPIC):
        self.sock = kw.connect(broker.port)
        self.corr = 0
        self.topic = topic
        self.node_id = getattr(broker, "node_id", None)

    def call(self, api: int, version: int, body: bytes, flexible: bool = False, timeout: float = 15.0) -> kw.Reader:
        self.corr += 1
        frame = (kw.flexible_frame if flexible else kw.frame)(api, version, self.corr, body)
        r = kw.Reader(kw.roundtrip(self.sock, frame, timeout))
        assert r.i32() == self.corr
        if flexible:
            r.skip_tags()
        return r

    def init_producer_id(self, transactional_id: str = TXN_ID) -> int:
        """The producer id for `transactional_id` (epoch 0). A build without the transaction
        coordinator refuses transactional ids: then an idempotent id stands in (nothing verifies)."""
        deadline = time.monotonic() + 30
        while True:
            r = self.call(API_INIT_PRODUCER_ID, 0, kw.nullable_string(transactional_id) + kw.i32(60000))
            r.i32()
            error, pid, epoch = r.i16(), r.i64(), r.i16()
            if error == ERR_TRANSACTIONAL_ID_AUTHORIZATION_FAILED and transactional_id is not None:
                self.transactional = False
                return self.init_producer_id(None)
            if error not in RETRIABLE or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert (error, epoch) == (0, 0), (error, epoch)
        return pid

    def add_partition(self, pid: int, transactional_id: str = TXN_ID) -> None:
        """AddPartitionsToTxn v2 for partition 0 of the topic (nothing to add without a coordinator)."""
        if not getattr(self, "transactional", True):
            return
        deadline = time.monotonic() + 30
        while True:
            body = kw.string(transactional_id) + kw.i64(pid) + kw.i16(0) + kw.array([kw.string(self.topic) + kw.array([kw.i32(0)])])
            r = self.call(API_ADD_PARTITIONS_TO_TXN, 2, body)
            r.i32()
            assert r.i32() == 1 and r.string() == self.topic
            assert r.i32() == 1 and r.i32() == 0
            error = r.i16()
            if error not in RETRIABLE or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert error == 0, error

    def produce(self, batch: bytes) -> dict:
        body = kw.produce_body([(self.topic, [(0, batch)])], acks=-1, transactional_id=TXN_ID)
        _, out = kw.parse_produce_response(3, kw.roundtrip(self.sock, kw.frame(kw.API_PRODUCE, 3, self._next(), body)))
        return out[(self.topic, 0)]

    def append(self, batch: bytes) -> int:
        """Produces `batch` and answers its base offset, retrying what a producer retries (a
        retry of a written batch is answered as a duplicate); any other error fails the test."""
        deadline = time.monotonic() + 20
        while True:
            out = self.produce(batch)
            if out["error_code"] not in RETRIABLE_PRODUCE or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert out["error_code"] == 0, out
        return out["base_offset"]

    def _next(self) -> int:
        self.corr += 1
        return self.corr

    def marker(self, pid: int, epoch: int, commit: bool, coordinator_epoch: int = 0) -> int:
        topics = kw.compact_array([kw.compact_string(self.topic) + kw.compact_array([kw.i32(0)]) + kw.NO_TAGS])
        marker = kw.i64(pid) + kw.i16(epoch) + kw.i8(1 if commit else 0) + topics + kw.i32(coordinator_epoch) + kw.NO_TAGS
        r = self.call(API_WRITE_TXN_MARKERS, 1, kw.compact_array([marker]) + kw.NO_TAGS, flexible=True, timeout=40)
        assert r.compact_array_len() == 1
        assert r.i64() == pid
        assert r.compact_array_len() == 1 and r.compact_string() == self.topic
        assert r.compact_array_len() == 1 and r.i32() == 0
        return r.i16()

    def fetch(self, offset: int, read_committed: bool, max_wait_ms: int = 0, min_bytes: int = 0):
        """(error, high watermark, last stable offset, aborted [(pid, first)] or None, batches)."""
        body = (struct.pack(">iiiib", -1, max_wait_ms, min_bytes, 1 << 20, 1 if read_committed else 0)
                + kw.i32(1) + kw.string(self.topic) + kw.i32(1) + struct.pack(">iqi", 0, offset, 1 << 20))
        r = self.call(kw.API_FETCH, 4, body, timeout=30)
        r.i32()
        assert r.i32() == 1 and r.string() == self.topic
        assert r.i32() == 1 and r.i32() == 0
        error, hw, lso = r.i16(), r.i64(), r.i64()
        n = r.i32()
        aborted = None if n < 0 else [(r.i64(), r.i64()) for _ in range(n)]
        records = r.bytes() or b""
        return error, hw, lso, aborted, parse_batches(records)

    def list_latest(self, read_committed: bool) -> int:
        return self.list_offset(-1, read_committed)

    def list_offset(self, timestamp: int, read_committed: bool) -> int:
        """ListOffsets v2 for `timestamp` (-1 latest, -3 max timestamp): the offset, -1 for none."""
        body = kw.i32(-1) + kw.i8(1 if read_committed else 0) + kw.array([kw.string(self.topic) + kw.array([kw.i32(0) + kw.i64(timestamp)])])
        r = self.call(API_LIST_OFFSETS, 2, body)
        r.i32()
        assert r.i32() == 1 and r.string() == self.topic
        assert r.i32() == 1 and r.i32() == 0
        assert r.i16() == 0
        r.i64()
        return r.i64()

    def describe_producers(self):
        body = kw.compact_array([kw.compact_string(self.topic) + kw.compact_array([kw.i32(0)]) + kw.uvarint(0)]) + kw.uvarint(0)
        r = self.call(API_DESCRIBE_PRODUCERS, 0, body, flexible=True)
        r.i32()
        assert r.compact_array_len() == 1 and r.compact_string() == self.topic
        assert r.compact_array_len() == 1 and r.i32() == 0
        assert r.i16() == 0
        r.compact_nullable_string()
        out = {}
        for _ in range(r.compact_array_len()):
            pid, epoch, last_seq, _ts, coord, start = r.i64(), r.i32(), r.i32(), r.i64(), r.i32(), r.i64()
            r.skip_tags()
            out[pid] = (epoch, last_seq, coord, start)
        return out


def transaction_coordinator(c: Client) -> int:
    """The node id of TXN_ID's coordinator (FindCoordinator v2, key type 1), or the node `c`
    talks to on a build without the transaction coordinator."""
    deadline = time.monotonic() + 30
    while True:
        _, out = kw.parse_find_coordinator_v2(kw.roundtrip(c.sock, kw.frame(kw.API_FIND_COORDINATOR, 2, c._next(),
                                                                           kw.find_coordinator_v2_body(TXN_ID, 1))))
        if out["error_code"] == 0:
            return out["node_id"]
        if out["error_code"] not in RETRIABLE or time.monotonic() > deadline:
            return c.node_id
        time.sleep(0.2)


def parse_batches(data: bytes):
    """[(base offset, attributes, producer id, [(offset, value)])] of the whole batches in `data`."""
    out = []
    at = 0
    while at + 61 <= len(data):
        base, length = struct.unpack_from(">qi", data, at)
        if at + 12 + length > len(data):
            break
        attrs, _delta = struct.unpack_from(">hi", data, at + 21)
        (pid,) = struct.unpack_from(">q", data, at + 43)
        values = [(offset, v) for offset, _epoch, _k, v in kw.segment_records(data[at:at + 12 + length])]
        out.append((base, attrs, pid, values))
        at += 12 + length
    return out


def committed_view(batches, aborted):
    """What a read_committed consumer keeps: Kafka's client logic over the aborted list."""
    pending = sorted(aborted or [], key=lambda a: a[1])
    aborting = set()
    kept = []
    for base, attrs, pid, values in batches:
        while pending and pending[0][1] <= base:
            aborting.add(pending.pop(0)[0])
        if attrs & CONTROL:
            aborting.discard(pid)
            continue
        if attrs & TRANSACTIONAL and pid in aborting:
            continue
        kept += [v for _, v in values]
    return kept


def txn_batch(pid: int, epoch: int, seq: int, values):
    return kw.record_batch([(None, v) for v in values], producer_id=pid, producer_epoch=epoch, base_sequence=seq,
                           attributes=TRANSACTIONAL)


def test_markers_commit_and_abort_and_read_committed_sees_only_committed(broker):
    create_topic(broker, TOPIC, 1)
    c = Client(broker)
    pid = c.init_producer_id()
    c.add_partition(pid)

    assert c.append(txn_batch(pid, 0, 0, [b"a0", b"a1"])) == 0
    assert c.append(kw.record_batch([(None, b"p2")])) == 2
    error, hw, lso, aborted, batches = c.fetch(0, read_committed=False)
    assert (error, hw, lso) == (0, 3, 0), "an open transaction holds the last stable offset at its first offset"
    assert aborted is None, "read_uncommitted: a null aborted list, as Kafka sends"
    assert [v for b in batches for _, v in b[3]] == [b"a0", b"a1", b"p2"]
    error, hw, lso, aborted, batches = c.fetch(0, read_committed=True)
    assert (error, lso, batches, aborted) == (0, 0, [], []), "read_committed stops at the LSO"
    assert (c.list_latest(False), c.list_latest(True)) == (3, 0)

    assert c.marker(pid, 0, commit=False) == 0
    assert c.append(txn_batch(pid, 0, 2, [b"c4", b"c5"])) == 4
    assert c.marker(pid, 0, commit=True) == 0
    error, hw, lso, aborted, batches = c.fetch(0, read_committed=True)
    assert (error, hw, lso) == (0, 7, 7)
    assert aborted == [(pid, 0)]
    assert [b[0] for b in batches if b[1] & CONTROL] == [3, 6], "markers are control batches at 3 and 6"
    assert committed_view(batches, aborted) == [b"p2", b"c4", b"c5"]
    assert c.fetch(4, read_committed=True)[3] == [], "an abort whose marker is before the fetch is not listed"
    assert c.list_latest(True) == 7

    assert c.append(txn_batch(pid, 0, 4, [b"d7"])) == 7
    assert c.produce(kw.record_batch([(None, b"x")], producer_id=pid, producer_epoch=0, base_sequence=5))["error_code"] \
        == ERR_INVALID_TXN_STATE, "a plain batch inside an open transaction"
    producers = c.describe_producers()
    assert producers[pid] == (0, 4, 0, 7)
    assert c.list_latest(True) == 7

    # SIGKILL: the open transaction and the aborted list are rebuilt from the log.
    broker.restart(kill=True)
    c = Client(broker)
    error, hw, lso, aborted, batches = c.fetch(0, read_committed=True)
    assert (error, hw, lso, aborted) == (0, 8, 7, [(pid, 0)])
    assert c.marker(pid, 0, commit=False) == 0
    error, hw, lso, aborted, batches = c.fetch(0, read_committed=True)
    assert (hw, lso, aborted) == (9, 9, [(pid, 0), (pid, 7)])
    assert committed_view(batches, aborted) == [b"p2", b"c4", b"c5"]

    # A clean stop writes the active segment's .txnindex in Kafka's layout; a restart reads it.
    broker.stop()
    index = (broker.data_dir / f"{TOPIC}-0" / f"{0:020}.txnindex").read_bytes()
    assert len(index) == 2 * 34
    assert struct.unpack(">hqqqq", index[:34]) == (0, pid, 0, 3, 4)
    assert struct.unpack(">hqqq", index[34:60]) == (0, pid, 7, 8)
    broker.start()
    c = Client(broker)
    error, hw, lso, aborted, batches = c.fetch(0, read_committed=True)
    assert (hw, lso, aborted) == (9, 9, [(pid, 0), (pid, 7)])

    # A marker with a newer epoch (transaction version 2 bumps it), then an older one: fenced.
    assert c.marker(pid, 1, commit=True) == 0
    assert c.marker(pid, 0, commit=False) == ERR_INVALID_PRODUCER_EPOCH
    assert c.describe_producers()[pid][0] == 1


def test_list_offsets_by_timestamp_answers_only_below_the_last_stable_offset_for_read_committed(broker):
    """Kafka bounds timestamp and max-timestamp lookups by `lastFetchableOffset`: the last
    stable offset for read_committed, the high watermark otherwise."""
    create_topic(broker, TOPIC, 1)
    c = Client(broker)
    pid = c.init_producer_id()
    c.add_partition(pid)
    before = int(time.time() * 1000) - 60_000
    assert c.append(txn_batch(pid, 0, 0, [b"open"])) == 0
    assert c.list_offset(before, read_committed=False) == 0
    assert c.list_offset(before, read_committed=True) == -1, "the record is at the last stable offset"
    assert c.list_offset(-3, read_committed=True) == -1
    assert c.list_offset(-3, read_committed=False) == 0
    assert c.marker(pid, 0, commit=True) == 0
    assert c.list_offset(before, read_committed=True) == 0, "committed: below the last stable offset now"
    # The commit marker (offset 1) carries the newest timestamp; Kafka's segments count it too.
    assert c.list_offset(-3, read_committed=True) == 1
    assert c.list_latest(True) == 2


def test_a_parked_read_committed_fetch_wakes_when_a_marker_moves_the_lso(broker):
    create_topic(broker, TOPIC, 1)
    c = Client(broker)
    pid = c.init_producer_id()
    c.add_partition(pid)
    assert c.append(txn_batch(pid, 0, 0, [b"e0"])) == 0
    result = {}

    def long_poll():
        waiter = Client(broker)
        started = time.monotonic()
        result["fetch"] = waiter.fetch(0, read_committed=True, max_wait_ms=10000, min_bytes=1)
        result["waited"] = time.monotonic() - started

    t = threading.Thread(target=long_poll)
    t.start()
    time.sleep(1.0)
    assert "fetch" not in result, "nothing is stable: the fetch parks"
    assert c.marker(pid, 0, commit=True) == 0
    t.join(15)
    error, hw, lso, aborted, batches = result["fetch"]
    assert result["waited"] < 6, f"woken by the marker, not the timeout ({result['waited']:.1f}s)"
    assert (error, lso, aborted) == (0, 2, [])
    assert committed_view(batches, aborted) == [b"e0"]


def test_transaction_state_is_replicated_and_a_new_leader_serves_it(cluster_factory):
    cluster = cluster_factory()
    admin = cluster.admin()
    admin.create_topics([NewTopic("txr", 1, 3)])["txr"].result(timeout=30)
    wait_until(lambda: cluster.partition_state("txr").get(0, {}).get("leader", -1) >= 0
               and len(cluster.partition_state("txr")[0]["isrs"]) == 3, 30, what="txr led, with three in sync")
    leader = cluster.partition_state("txr")[0]["leader"]
    c = Client(cluster.broker(leader), "txr")
    coordinator = Client(cluster.broker(transaction_coordinator(c)), "txr")
    pid = coordinator.init_producer_id()
    coordinator.add_partition(pid)
    assert c.append(txn_batch(pid, 0, 0, [b"a0", b"a1"])) == 0
    assert c.marker(pid, 0, commit=False) == 0
    assert c.append(txn_batch(pid, 0, 2, [b"b3"])) == 3
    assert c.marker(pid, 0, commit=True) == 0
    assert c.append(txn_batch(pid, 0, 3, [b"c5"])) == 5
    error, hw, lso, aborted, batches = c.fetch(0, read_committed=True)
    assert (error, hw, lso, aborted) == (0, 6, 5, [(pid, 0)])

    cluster.broker(leader).kill()
    wait_until(lambda: cluster.partition_state("txr")[0]["leader"] not in (leader, -1), 30, what="a new leader")
    new_leader = cluster.partition_state("txr")[0]["leader"]
    c = Client(cluster.broker(new_leader), "txr")
    seen = {}

    def served():
        seen["fetch"] = c.fetch(0, read_committed=True)
        return seen["fetch"][0] == 0 and seen["fetch"][1] == 6

    wait_until(served, 20, what="the new leader serves the partition up to 6")
    error, hw, lso, aborted, batches = seen["fetch"]
    assert (lso, aborted) == (5, [(pid, 0)]), "the follower kept the open transaction and the abort"
    assert committed_view(batches, aborted) == [b"b3"]
    assert c.marker(pid, 0, commit=False) == 0
    error, hw, lso, aborted, batches = c.fetch(0, read_committed=True)
    assert (hw, lso, aborted) == (7, 7, [(pid, 0), (pid, 5)])
    assert committed_view(batches, aborted) == [b"b3"]


def test_an_idle_producer_expires_after_producer_id_expiration_ms(broker_factory):
    broker = broker_factory(config={"producer.id.expiration.ms": 1000, "log.retention.check.interval.ms": 200})
    create_topic(broker, TOPIC, 1)
    from confluent_kafka import Producer
    p = Producer({"bootstrap.servers": broker.bootstrap, "enable.idempotence": True})
    p.produce(TOPIC, value=b"once", partition=0)
    assert p.flush(30) == 0
    c = Client(broker)
    assert len(c.describe_producers()) == 1, "the idempotent producer has state here"
    wait_until(lambda: c.describe_producers() == {}, 15, what="the idle producer's state to expire")
    assert "idle producers expired" in broker.log_text()
