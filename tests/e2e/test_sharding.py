"""Shard-per-core: with --cores 2 an 8-partition topic is split 4/4 over the shards, and one client
connection (held by one shard) reaches the owner shards of all partitions through the router."""

import collections
import shutil
import subprocess

import pytest

from conftest import consume_all, create_topic, high_watermarks, parse_log_events, wait_until

TOPIC = "sharded-8"
N_PARTITIONS = 8
N_MESSAGES = 4000


def test_one_connection_reaches_both_shards(broker_factory, tmp_path):
    kcat = shutil.which("kcat")
    if kcat is None:
        pytest.fail("kcat not installed (scripts/test.sh installs it with apt-get)")
    broker = broker_factory(cores=2, rust_log="ringlog=debug")
    create_topic(broker, TOPIC, N_PARTITIONS)

    # Owner shards, from the `partition ready` lines.
    def ready_events():
        return [e for e in parse_log_events(broker.log_text(), "partition ready")
                if e.get("topic") == TOPIC and {"partition", "shard"} <= e.keys()]

    wait_until(lambda: len({e.get("partition") for e in ready_events()}) == N_PARTITIONS, 15,
               what="partition ready for all 8 partitions")
    owner = {}
    for e in ready_events():
        p, sh = int(e["partition"]), int(e["shard"])
        assert owner.setdefault(p, sh) == sh, f"partition {p} opened on shards {owner[p]} and {sh}"
    assert sorted(owner) == list(range(N_PARTITIONS))
    per_shard = collections.Counter(owner.values())
    assert per_shard == {0: 4, 1: 4}, f"partitions per shard: {dict(per_shard)} (owners {owner})"

    # One kcat producer process = one broker connection. Many distinct keys spread the messages over
    # all 8 partitions (keyed partitioning; keyless messages would be sticky-partitioned).
    infile = tmp_path / "lines.txt"
    infile.write_text("".join(f"key-{i}:value-{i}\n" for i in range(N_MESSAGES)))
    r = subprocess.run([kcat, "-b", broker.bootstrap, "-P", "-t", TOPIC, "-p", "-1", "-K:", "-l", str(infile)],
                       capture_output=True, timeout=120)
    assert r.returncode == 0, r.stderr.decode(errors="replace")[-3000:]

    highs = high_watermarks(broker, TOPIC, range(N_PARTITIONS))
    assert sum(highs.values()) == N_MESSAGES, highs
    assert all(h > 0 for h in highs.values()), f"some partition got no data: {highs}"

    def append_events():
        return [e for e in parse_log_events(broker.log_text(), "append")
                if e.get("topic") == TOPIC and {"partition", "shard", "conn_shard"} <= e.keys()]

    wait_until(lambda: {int(e["partition"]) for e in append_events()} == set(range(N_PARTITIONS)), 10,
               what="append log lines for all 8 partitions")
    events = append_events()
    for e in events:
        p = int(e["partition"])
        assert int(e["shard"]) == owner[p], f"partition {p} appended on shard {e['shard']}, owner is {owner[p]}"
    conn_shards = {int(e["conn_shard"]) for e in events}
    assert len(conn_shards) == 1, f"one kcat connection, but appends came from conn_shards {conn_shards}"
    (conn_shard,) = conn_shards
    assert conn_shard in (0, 1)
    shards_hit = {int(e["shard"]) for e in events if int(e["conn_shard"]) == conn_shard}
    assert shards_hit == {0, 1}, f"connection on shard {conn_shard} only reached shards {shards_hit}"

    # And the data routed across cores reads back intact.
    got = consume_all(broker, TOPIC, range(N_PARTITIONS), timeout=60)
    values = sorted(v for recs in got.values() for _o, _k, v in recs)
    assert values == sorted(f"value-{i}".encode() for i in range(N_MESSAGES))
    for recs in got.values():
        for _o, k, v in recs:
            assert k[len("key-"):] == v[len("value-"):]
