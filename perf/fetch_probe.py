#!/usr/bin/env python3
"""Raw Fetch probe: how fast the broker itself serves a catch-up read.

It speaks the Kafka protocol directly (Fetch v4, one request in flight, 1 MiB per partition:
what librdkafka asks for by default) and only walks batch headers, so the client costs almost
nothing and the figure is the broker's ceiling on this machine. It is not a client users run:
the user-facing figure is ringlog-bench's catch-up workload, which goes through librdkafka.

    perf/fetch_probe.py --port 9092 --topic bench-catchup --partitions 8

Prints MB/s of record-batch bytes (batch headers included) until every partition reaches its
high watermark.
"""

import argparse
import os
import socket
import struct
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "e2e"))
import kafka_wire as kw  # noqa: E402


def recv_frame(sock, buf):
    """Reads one response frame into `buf` (grown as needed); returns a memoryview of it."""
    head = kw.recv_exact(sock, 4)
    size = struct.unpack(">i", head)[0]
    if len(buf) < size:
        buf.extend(bytes(size - len(buf)))
    view = memoryview(buf)[:size]
    got = 0
    while got < size:
        n = sock.recv_into(view[got:], size - got)
        if n == 0:
            raise kw.Closed()
        got += n
    return view


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, default=9092)
    ap.add_argument("--topic", default="bench-catchup")
    ap.add_argument("--partitions", type=int, default=8)
    ap.add_argument("--partition-max-bytes", type=int, default=1 << 20)
    args = ap.parse_args()

    sock = kw.connect(args.port)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    offsets = {p: 0 for p in range(args.partitions)}
    buf = bytearray(16 << 20)
    total = 0
    correlation = 0
    start = time.monotonic()
    while True:
        correlation += 1
        body = kw.fetch_v4_body(args.topic, offsets, args.partition_max_bytes)
        sock.sendall(kw.frame(kw.API_FETCH, 4, correlation, body))
        parts, got = kw.parse_fetch_v4(recv_frame(sock, buf), offsets)
        for partition, (error, _hw, _size, _bases) in parts.items():
            if error != 0:
                raise RuntimeError(f"partition {partition}: error {error}")
        hws = {p: hw for p, (_e, hw, _s, _b) in parts.items()}
        total += got
        if all(offsets[p] >= hws.get(p, 0) for p in offsets):
            break
    elapsed = time.monotonic() - start
    print(f"fetch_probe: {total / 1e6:.1f} MB in {elapsed:.2f} s = {total / 1e6 / elapsed:.1f} MB/s "
          f"({correlation} fetches)")


if __name__ == "__main__":
    main()
