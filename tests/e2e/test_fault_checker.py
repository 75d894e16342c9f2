"""Issue 17's fault-injection checker, short form: idempotent acks=all producers and concurrent
consumers on a 3-broker cluster (RF=3, 6 partitions, min.insync.replicas=2) while a nemesis kills
and pauses brokers one at a time; then a full drain and Jepsen's queue-checker counts, each of
which must be 0. The long form is perf/fault_checker.sh. The first tests feed the checker
hand-made histories, so a checker that cannot see an anomaly fails here, not silently in CI."""

import json

import fault_checker
import queue_checker

A, B, C = b"p0-0", b"p0-1", b"p1-0"
SENT = {A: 0, B: 0, C: 1}


def counts(**kw):
    args = dict(attempted=SENT, acked=[(0, 0, A), (0, 1, B), (1, 0, C)], definite_failures=set(),
                reads={"r": [(0, 0, A), (0, 1, B), (1, 0, C)]}, final={0: [(0, A), (1, B)], 1: [(0, C)]})
    args.update(kw)
    return queue_checker.check(**args)["anomalies"]


def only(result, name, n=1):
    assert result[name] == n, result
    assert all(v == 0 for k, v in result.items() if k != name), result


def test_a_clean_history_has_no_anomalies():
    assert all(v == 0 for v in counts().values())


def test_the_checker_counts_each_anomaly():
    only(counts(final={0: [(0, A)], 1: [(0, C)]}, reads={}), "lost")
    only(counts(final={0: [(0, A), (1, B), (2, A)], 1: [(0, C)]}, reads={}), "duplicated")
    only(counts(final={0: [(0, A), (1, B)], 1: [(0, C), (1, b"p9-9")]}), "unexpected")
    # Read at offset 1 what the drain has at offset 1 as another value (and the read value is gone).
    r = counts(acked=[(0, 0, A), (1, 0, C)], reads={"r": [(0, 0, A), (0, 1, b"p0-2")]},
               attempted={**SENT, b"p0-2": 0})
    assert r["inconsistent_offsets"] == 1 and r["read_but_lost"] == 1, r
    only(counts(reads={"r": [(0, 1, B), (0, 0, A), (1, 0, C)]}), "non_monotonic")
    only(counts(reads={"r": [(0, 0, A), (0, 0, A)]}), "non_monotonic")
    only(counts(definite_failures={B}), "failed_but_read")
    only(counts(replicas={2: {0: [(0, A)], 1: [(0, C)]}}), "replica_divergence")


def test_a_seek_allows_a_reader_to_go_back():
    assert counts(reads={"r": [(0, 0, A), (0, 1, B), (0, 0, A)]}, seeks={"r": [(2, 0)]})["non_monotonic"] == 0
    # The seek's partition is read again only after another partition's record.
    assert counts(reads={"r": [(0, 0, A), (0, 1, B), (1, 0, C), (0, 0, A)]}, seeks={"r": [(2, 0)]})["non_monotonic"] == 0
    # Without the seek the same reads are non-monotonic.
    assert counts(reads={"r": [(0, 0, A), (0, 1, B), (1, 0, C), (0, 0, A)]})["non_monotonic"] == 1


def test_kills_and_pauses_lose_duplicate_and_reorder_nothing(cluster_factory, tmp_path):
    cluster = cluster_factory(size=3)
    result = fault_checker.run_checker(cluster, duration=50, producers=3, consumers=2, rate=100, seed=17,
                                       history_path=tmp_path / "history.json")
    # Kept with the brokers' logs (pytest keeps a failed test's tmp_path) as the run's evidence.
    (tmp_path / "summary.json").write_text(json.dumps(result, indent=2, sort_keys=True))
    print(json.dumps(result, indent=2, sort_keys=True))
    nemesis = result["nemesis"]
    assert nemesis["counts"]["kill"] >= 1 and nemesis["counts"]["pause"] >= 1, nemesis
    # Liveness: after each healed fault every ISR was full again within a minute.
    assert nemesis["isr_recovery_timeouts"] == 0 and nemesis["isr_full_at_end"], nemesis
    assert result["context"]["acknowledged"] >= 2000, result["context"]
    assert result["anomalies"] == {k: 0 for k in queue_checker.ANOMALIES}, \
        json.dumps({k: result[k] for k in ("anomalies", "examples")}, indent=1)
    assert not result["producer_fatal_errors"], result["producer_fatal_errors"]
    # The concurrent readers saw everything (a reader that died checks nothing).
    assert not result["consumer_crashes"] and result["consumers_caught_up"], result["consumer_crashes"]
    # A consumer reads only committed records, so no broker may report its position truncated.
    assert result["consumer_offset_resets"] == 0, result["consumer_errors"]
