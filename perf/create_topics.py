#!/usr/bin/env python3
"""Times N sequential single-topic CreateTopics against a running broker.

    perf/create_topics.py --bootstrap 127.0.0.1:9092 [--count 1000] [--partitions 1] [--prefix ct]

One connection, one CreateTopics (v2) request per topic, each sent after the previous answer: the
figure is the latency of one metadata change (validate, make durable, publish, open the
partitions), not throughput. Topic names are `<prefix>-<run id>-<i>`, so runs never collide.
Prints `count=… total_s=… mean_ms=… p50_ms=… p99_ms=… max_ms=…`; exits 1 if any request
is refused. Standard library only, so it runs wherever the broker does.
"""
import argparse
import socket
import struct
import sys
import time
import uuid

API_CREATE_TOPICS = 19
VERSION = 2


def string(s: str) -> bytes:
    b = s.encode()
    return struct.pack(">h", len(b)) + b


def request(correlation_id: int, topic: str, partitions: int) -> bytes:
    """CreateTopics v2, request header v1, one topic, no assignments or configs."""
    body = (struct.pack(">i", 1) + string(topic) + struct.pack(">ihii", partitions, 1, 0, 0)
            + struct.pack(">ib", 30000, 0))
    msg = struct.pack(">hhi", API_CREATE_TOPICS, VERSION, correlation_id) + string("perf-create-topics") + body
    return struct.pack(">i", len(msg)) + msg


def recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("broker closed the connection")
        buf += chunk
    return bytes(buf)


def error_code(response: bytes) -> int:
    """The one topic's error code: after correlation id, throttle time, array length, name."""
    (name_len,) = struct.unpack_from(">h", response, 12)
    (code,) = struct.unpack_from(">h", response, 14 + name_len)
    return code


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bootstrap", default="127.0.0.1:9092", help="host:port of the broker")
    ap.add_argument("--count", type=int, default=1000, help="CreateTopics requests (default 1000)")
    ap.add_argument("--partitions", type=int, default=1, help="partitions per topic (default 1)")
    ap.add_argument("--prefix", default="ct", help="topic name prefix (default ct)")
    args = ap.parse_args()
    host, port = args.bootstrap.rsplit(":", 1)
    run = uuid.uuid4().hex[:8]
    sock = socket.create_connection((host, int(port)), timeout=60)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    latencies = []
    failed = 0
    started = time.perf_counter()
    for i in range(args.count):
        t0 = time.perf_counter()
        sock.sendall(request(i, f"{args.prefix}-{run}-{i}", args.partitions))
        (size,) = struct.unpack(">i", recv_exact(sock, 4))
        response = recv_exact(sock, size)
        latencies.append(time.perf_counter() - t0)
        code = error_code(response)
        if code != 0:
            failed += 1
            print(f"topic {args.prefix}-{run}-{i}: error code {code}", file=sys.stderr)
    total = time.perf_counter() - started
    sock.close()
    ms = sorted(x * 1000 for x in latencies)

    def pct(p: float) -> float:
        return ms[min(len(ms) - 1, int(p / 100 * len(ms)))]

    print(f"count={args.count} partitions={args.partitions} total_s={total:.3f} mean_ms={sum(ms) / len(ms):.3f} "
          f"p50_ms={pct(50):.3f} p99_ms={pct(99):.3f} max_ms={ms[-1]:.3f} failed={failed}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
