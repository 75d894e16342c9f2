"""A cross-core call that goes unanswered reaches the client as a Kafka error code, never as a
success: the broker runs with `fault_injection_unanswered_shard = 1`, so shard 1 drops every
data-plane request (produce, fetch, offsets, groups) it is sent, from any shard, unanswered."""

import kafka_wire as kw
from conftest import create_topic

ERR_KAFKA_STORAGE_ERROR = 56
PARTITIONS = 4


def test_a_partition_whose_owner_shard_does_not_answer_gets_an_error_code(broker_factory):
    broker = broker_factory(cores=2, config={"fault_injection_unanswered_shard": 1})
    topic = "owner-refuses"
    # The balancer spreads a topic's partitions over both shards.
    create_topic(broker, topic, PARTITIONS)
    sock = kw.connect(broker.port)

    batch = kw.record_batch([(b"key", b"value")])
    produce = kw.frame(kw.API_PRODUCE, 8, 1, kw.produce_body([(topic, [(p, batch) for p in range(PARTITIONS)])], acks=-1))
    _, parts = kw.parse_produce_response(8, kw.roundtrip(sock, produce))
    codes = {p: parts[(topic, p)]["error_code"] for p in range(PARTITIONS)}
    refused = sorted(p for p, c in codes.items() if c == ERR_KAFKA_STORAGE_ERROR)
    served = sorted(p for p, c in codes.items() if c == kw.ERR_NONE)
    assert refused and served and len(refused) + len(served) == PARTITIONS, codes
    for p in refused:
        assert parts[(topic, p)]["base_offset"] == -1
    for p in served:
        assert parts[(topic, p)]["base_offset"] == 0

    # Fetch: the refused partitions carry the error and no records (not NONE with a high
    # watermark of -1, as before); the served ones their one record.
    offsets = {p: 0 for p in range(PARTITIONS)}
    fetch = kw.frame(kw.API_FETCH, 4, 2, kw.fetch_v4_body(topic, offsets, 1 << 20, max_wait_ms=0))
    fetched, _ = kw.parse_fetch_v4(kw.roundtrip(sock, fetch), offsets)
    for p in refused:
        error, hw, size, _ = fetched[p]
        assert (error, size) == (ERR_KAFKA_STORAGE_ERROR, 0), fetched
    for p in served:
        error, hw, size, bases = fetched[p]
        assert (error, hw, bases) == (kw.ERR_NONE, 1, [0]), fetched
    sock.close()
    broker.assert_alive()
