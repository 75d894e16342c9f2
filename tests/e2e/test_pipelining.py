"""Pipelined requests on one raw connection. The broker runs up to 256 requests and 16 MiB of
request bytes per connection at once, and pauses reading beyond either (net/connection.rs). These
tests send past both bounds without waiting for answers, and check that every request is answered,
in request order, with its records at the offsets that order implies."""

import threading
import time

import kafka_wire as kw
from conftest import consume_all, create_topic, high_watermarks

PRODUCE_V = 7


def send_all(sock, frames, failures):
    try:
        for f in frames:
            sock.sendall(f)
    except OSError as e:  # reported by the reader's assertions, which then see a closed socket
        failures.append(e)


def test_pipelined_produces_past_the_in_flight_bounds_answer_in_order(broker):
    topic = "pipelined"
    create_topic(broker, topic, 2)
    requests, records_per_request = 600, 4
    value = b"v" * 10_000
    # 600 requests of ~40 KiB: past the 256-request bound and, at 24 MiB, past the 16 MiB one.
    # They alternate between two partitions, so each partition's offsets follow request order.
    frames = []
    for i in range(requests):
        batch = kw.record_batch([(str(i).encode(), value)] * records_per_request)
        body = kw.produce_body([(topic, [(i % 2, batch)])], acks=1)
        frames.append(kw.frame(kw.API_PRODUCE, PRODUCE_V, i, body))
    assert sum(map(len, frames)) > 16 << 20

    sock = kw.connect(broker.port)
    failures = []
    sender = threading.Thread(target=send_all, args=(sock, frames, failures))
    sender.start()
    try:
        for i in range(requests):
            corr, parts = kw.parse_produce_response(PRODUCE_V, kw.read_response(sock, timeout=60))
            assert corr == i, f"response {i} carried correlation id {corr}: answers out of order"
            part = parts[(topic, i % 2)]
            assert part["error_code"] == kw.ERR_NONE, f"request {i}: {part}"
            assert part["base_offset"] == (i // 2) * records_per_request, f"request {i}: {part}"
    finally:
        sender.join(timeout=60)
        sock.close()
    assert not failures, failures
    per_partition = requests // 2 * records_per_request
    assert high_watermarks(broker, topic, [0, 1]) == {0: per_partition, 1: per_partition}


def test_a_request_larger_than_the_in_flight_byte_bound_is_served(broker):
    """A 20 MiB request (under socket.request.max.bytes, over the 16 MiB in-flight bound) waits for
    the whole bound and then runs alone; it must not wait forever."""
    topic = "pipelined-large"
    create_topic(broker, topic, 1)
    batches = b"".join(kw.record_batch([(None, bytes([n]) * 1_000_000)]) for n in range(20))
    assert len(batches) > 16 << 20
    sock = kw.connect(broker.port)
    try:
        sock.sendall(kw.frame(kw.API_PRODUCE, PRODUCE_V, 1, kw.produce_body([(topic, [(0, batches)])], acks=1)))
        # A small request behind it on the same connection is answered after it, in order.
        small = kw.record_batch([(None, b"after")])
        sock.sendall(kw.frame(kw.API_PRODUCE, PRODUCE_V, 2, kw.produce_body([(topic, [(0, small)])], acks=1)))
        corr, parts = kw.parse_produce_response(PRODUCE_V, kw.read_response(sock, timeout=60))
        assert (corr, parts[(topic, 0)]["error_code"], parts[(topic, 0)]["base_offset"]) == (1, kw.ERR_NONE, 0), parts
        corr, parts = kw.parse_produce_response(PRODUCE_V, kw.read_response(sock, timeout=60))
        assert (corr, parts[(topic, 0)]["error_code"], parts[(topic, 0)]["base_offset"]) == (2, kw.ERR_NONE, 20), parts
    finally:
        sock.close()
    assert high_watermarks(broker, topic, [0]) == {0: 21}


def test_a_frame_that_trickles_in_is_read_whole(broker):
    """A produce frame sent in pieces with pauses between them: the broker reads what the socket
    holds, then waits for the rest. The records must land byte for byte, and the next frame on the
    connection must still be read from its own start."""
    topic = "trickled"
    create_topic(broker, topic, 1)
    values = [bytes([i % 251]) * 30_000 for i in range(4)]
    frames = [
        kw.frame(kw.API_PRODUCE, PRODUCE_V, corr, kw.produce_body([(topic, [(0, kw.record_batch([(None, v) for v in values]))])], acks=1))
        for corr in (1, 2)
    ]
    sock = kw.connect(broker.port)
    first = frames[0]
    # Header and a few bytes, half the rest, then the rest together with the whole second frame.
    pieces = [first[:9], first[9:len(first) // 2], first[len(first) // 2:] + frames[1]]
    for piece in pieces:
        sock.sendall(piece)
        time.sleep(0.2)
    for corr in (1, 2):
        got_corr, parts = kw.parse_produce_response(PRODUCE_V, kw.read_response(sock))
        assert got_corr == corr
        assert parts[(topic, 0)]["error_code"] == kw.ERR_NONE
        assert parts[(topic, 0)]["base_offset"] == (corr - 1) * len(values)
    sock.close()
    back = consume_all(broker, topic, [0])[0]
    assert [v for _o, _k, v in back] == values * 2
