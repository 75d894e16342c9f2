"""Fetch from disk through the zero-copy read path, seen on the wire.

After a restart the batch cache is empty, so every fetch below is served by the connection's
shard from the segment files: by direct-I/O reads (read ahead) whose buffers go into the
response, or, with `cold_read_splice = true`, large ranges mostly by io_uring splice from the
file to the socket. Each test runs both ways. Raw Fetch v4 requests check what a client library
would hide: whole batches only,
the KIP-74 rules for limits smaller than a batch, the response-wide max_bytes, huge limits, and
that a full read-back returns every offset exactly once, in order.
"""

import socket
import struct
import time

import pytest
from confluent_kafka import Producer

import kafka_wire as kw
from conftest import create_topic, metric_total, producer_conf

TOPIC = "fetch-disk"
PER_PARTITION = 4000
# Both cold-read paths: direct reads (the default) and splices from the page cache.
COLD_READ_PATHS = pytest.mark.parametrize("splice", [False, True], ids=["dma", "splice"])


def splice_args(splice):
    return ["--override", f"cold_read_splice={'true' if splice else 'false'}"]


def fetch(sock, correlation, offsets, partition_max_bytes, max_bytes=64 << 20, collect=None):
    body = kw.fetch_v4_body(TOPIC, offsets, partition_max_bytes, max_bytes=max_bytes)
    frame = kw.roundtrip(sock, kw.frame(kw.API_FETCH, 4, correlation, body))
    return kw.parse_fetch_v4(frame, offsets, collect)


@COLD_READ_PATHS
def test_disk_reads_after_restart(broker_factory, splice):
    broker = broker_factory(cores=2, extra_args=splice_args(splice))
    create_topic(broker, TOPIC, 2)
    producer = Producer(producer_conf(broker, **{"linger.ms": 5, "batch.size": 16384}))
    for i in range(PER_PARTITION):
        for partition in (0, 1):
            producer.produce(TOPIC, value=b"%08d" % i + b"x" * 992, partition=partition)
        producer.poll(0)
    assert producer.flush(30) == 0
    broker.stop()
    broker.start()

    sock = kw.connect(broker.port)
    # The response-wide limit: the first partition with data gets it whole, the next gets none.
    parts, _ = fetch(sock, 1, {0: 0, 1: 0}, 1 << 20, max_bytes=1)
    assert parts[0][0] == kw.ERR_NONE and parts[0][2] > 0 and parts[0][3][0] == 0
    assert parts[1][0] == kw.ERR_NONE and parts[1][2] == 0
    assert parts[0][1] == parts[1][1] == PER_PARTITION

    # A partition limit below one batch still returns the whole batch holding the offset.
    offsets = {0: 7}
    parts, got = fetch(sock, 2, offsets, 1)
    (base,) = parts[0][3]
    assert base <= 7 < offsets[0], (base, offsets)
    assert got == parts[0][2], "whole batches only"

    # Limits at i32::MAX are capped (Kafka's fetch.max.bytes, 55 MiB), not allocated.
    parts, got = fetch(sock, 3, {0: 0, 1: 0}, 2**31 - 1, max_bytes=2**31 - 1)
    assert all(error == kw.ERR_NONE and size > 0 for (error, _hw, size, _b) in parts.values())
    assert got == sum(size for (_e, _hw, size, _b) in parts.values()) <= 55 << 20

    # Read everything back from disk: every offset once, in order, in whole batches. 64 KiB
    # limits are served by DMA reads; with splicing on, 1 MiB limits leave most of each range in
    # the file, for the kernel to splice to the socket. Both must deliver the same bytes.
    read_back = {}
    for limit in (64 << 10, 1 << 20):
        offsets = {0: 0, 1: 0}
        collected = {}
        correlation = 4
        total = 0
        while any(offsets[p] < PER_PARTITION for p in offsets):
            before = dict(offsets)
            parts, got = fetch(sock, correlation, offsets, limit, collect=collected)
            correlation += 1
            total += got
            assert got == sum(size for (_e, _hw, size, _b) in parts.values()), "whole batches only"
            for p, (error, hw, size, bases) in parts.items():
                assert error == kw.ERR_NONE and hw == PER_PARTITION
                assert size <= limit or len(bases) == 1, "over the partition limit"
                if bases:
                    assert bases[0] == before[p], f"partition {p} resumed at {bases[0]}, not {before[p]}"
            assert offsets != before, "no progress"
        assert offsets == {0: PER_PARTITION, 1: PER_PARTITION}
        assert total > 2 * PER_PARTITION * 1000
        read_back[limit] = collected
    assert read_back[64 << 10] == read_back[1 << 20], "small and large limits return the same bytes"
    sock.close()
    spliced = metric_total(broker, "ringlog_spliced_bytes_total")
    if splice:
        assert spliced > 2 * PER_PARTITION * 1000, f"the 1 MiB read-back was spliced, got {spliced} bytes"
    else:
        assert spliced == 0, f"direct reads only, yet {spliced} bytes were spliced"


@COLD_READ_PATHS
def test_cold_reads_survive_clients_that_hang_up_or_stall(broker_factory, splice):
    """Clients that close mid-response (with a reset) leave the broker serving, and a client that
    stops reading for longer than the splice path's 500 ms send timeout still gets every byte, in
    order."""
    broker = broker_factory(cores=1, extra_args=splice_args(splice))
    create_topic(broker, TOPIC, 1)
    producer = Producer(producer_conf(broker, **{"linger.ms": 5, "batch.size": 65536}))
    for i in range(PER_PARTITION * 2):
        producer.produce(TOPIC, value=b"%08d" % i + b"x" * 992, partition=0)
        producer.poll(0)
    assert producer.flush(30) == 0
    broker.stop()
    broker.start()
    body = kw.fetch_v4_body(TOPIC, {0: 0}, 8 << 20, max_bytes=8 << 20)

    for correlation in range(20):
        sock = kw.connect(broker.port)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.sendall(kw.frame(kw.API_FETCH, 4, correlation, body))
        sock.recv(1000)
        sock.close()  # a reset while the broker is still sending

    # A stalled reader: a small receive buffer, and nothing read for 1.5 s.
    sock = socket.create_connection(("127.0.0.1", broker.port))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    sock.sendall(kw.frame(kw.API_FETCH, 4, 99, body))
    time.sleep(1.5)
    sock.settimeout(15)
    (size,) = struct.unpack(">i", _recv_exactly(sock, 4))
    response = _recv_exactly(sock, size)
    offsets = {0: 0}
    parts, got = kw.parse_fetch_v4(response, offsets)
    assert parts[0][0] == kw.ERR_NONE and got == parts[0][2] > 7 << 20, parts[0][:3]
    assert offsets[0] > PER_PARTITION, "most of the partition came back whole"
    sock.close()
    assert broker.running()


def _recv_exactly(sock, n):
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        assert chunk, "connection closed early"
        buf.extend(chunk)
    return bytes(buf)
