"""Issue 17's network-partition acceptance: three combined nodes, each in its own network namespace
(tests/e2e/netns.py). The active controller, which also leads a partition, is cut off from everyone
while an acks=all producer writes to it. The cut-off leader must not acknowledge acks=all writes (its ISR cannot shrink
without the controller quorum); the majority elects a new leader and keeps acknowledging; after
the heal the old leader truncates its divergent tail, and every acknowledged record is on every
replica exactly once."""

import json
import os
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest

from conftest import clusters_of, parse_log_events, wait_until
from netns import NetnsCluster, netns_unavailable, sweep_stale
from test_cluster_failover import (ContinuousProducer, acked_after, check_every_replica, controller_of, create_topic,
                                  replica_records)

PARTITIONS = 3
HERE = Path(__file__).resolve().parent


@pytest.fixture
def netns_cluster_factory(tmp_path, request):
    """netns_cluster_factory(size=3, config=None) -> a started NetnsCluster; skips without root or
    `ip netns`. Every cluster's brokers, namespaces and links are removed afterwards."""
    reason = netns_unavailable()
    if reason:
        # A skip reason alone is hidden by `pytest -q`; the warning shows in its summary.
        warnings.warn(f"network-partition tests skipped: {reason}")
        pytest.skip(reason)
    swept = sweep_stale()
    if swept:
        print(f"swept stale namespaces and links: {swept}")
    yield from clusters_of(NetnsCluster, tmp_path, request, "netns")


def produce_from_inside(cluster, node_id, topic, partition, count, timeout_ms):
    """Starts tests/e2e/netns_producer.py in node_id's namespace against that node; its last stdout
    line is the JSON report."""
    spec = {"bootstrap": cluster.broker(node_id).bootstrap, "topic": topic, "partition": partition, "count": count,
            "prefix": "cut-", "conf": {"message.timeout.ms": timeout_ms, "request.timeout.ms": timeout_ms}}
    return cluster.exec_in(node_id, [sys.executable, str(HERE / "netns_producer.py"), json.dumps(spec)],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_a_leader_cut_off_from_everyone_acknowledges_nothing_and_its_tail_is_truncated(netns_cluster_factory, request):
    cluster = netns_cluster_factory(size=3, rust_log=os.environ.get("RINGLOG_PARTITION_LOG", "info"))
    create_topic(cluster, "ledger", partitions=PARTITIONS, config={"min.insync.replicas": "2"})
    # A short request timeout: requests in flight to the cut leader never get an answer, and an
    # idempotent producer holds the partition until they time out.
    prod = ContinuousProducer(cluster.bootstrap, "ledger", partitions=PARTITIONS,
                              conf={"request.timeout.ms": 4000}).start()
    # Stopped before the cluster's teardown, so a failed test leaves no client retrying in the background.
    request.addfinalizer(prod.stop_flag.set)
    wait_until(lambda: len({a[0] for a in prod.acked}) == PARTITIONS, 30, what="writes on every partition")
    time.sleep(0.5)

    # The victim is the active controller and the leader of `target`: the harder case, where the
    # majority must elect a new controller before it can fence the victim and move its leaderships.
    victim = controller_of(cluster)
    before = cluster.partition_state("ledger")
    led = sorted(p for p, s in before.items() if s["leader"] == victim)
    assert victim is not None and led, f"controller {victim} leads none of {before}"
    target = led[0]
    assert sorted(before[target]["isrs"]) == [1, 2, 3], before
    cut_at = time.monotonic()
    cluster.cut(victim)

    # The only client that still reaches the cut leader runs in its namespace: every acks=all
    # write it sends lands in the leader's log (the divergent tail) and must not be acknowledged.
    inside = produce_from_inside(cluster, victim, "ledger", target, count=20, timeout_ms=6000)

    # The majority side fences the silent broker, elects new leaders and carries on.
    wait_until(lambda: all(acked_after(prod, cut_at + 0.5, p) for p in range(PARTITIONS)), 30,
               what="acks=all writes acknowledged on every partition by the majority side")
    first = min(a[3] for p in led for a in acked_after(prod, cut_at + 0.5, p))
    print(f"partition: first write through a new leader {first - cut_at:.2f}s after the cut")
    during = cluster.partition_state("ledger")
    assert all(s["leader"] not in (victim, -1) for s in during.values()), during
    assert all(victim not in s["isrs"] for p, s in during.items() if p in led), during

    out, err = inside.communicate(timeout=60)
    assert inside.returncode == 0, f"in-namespace producer failed: {err}"
    report = json.loads(out.strip().splitlines()[-1])
    print(f"cut-off leader: {len(report['acked'])} acknowledged, errors {sorted({e for _, e in report['errors']})}")
    assert report["acked"] == [], f"the cut-off leader acknowledged acks=all writes: {report['acked'][:5]}"
    assert len(report["errors"]) == 20 and report["unresolved"] == 0, report

    healed_at = time.monotonic()
    cluster.heal(victim)
    # Every node must agree: right after the heal the old leader still serves its stale view
    # (itself the leader, the old ISR) until it catches up with the quorum.
    def rejoined():
        state = cluster.agreed_partition_state("ledger")
        return state is not None and state[target]["leader"] != victim \
            and all(sorted(s["isrs"]) == [1, 2, 3] for s in state.values())
    wait_until(rejoined, 30, interval=0.2, what="every node agrees the healed broker is back in every ISR")
    print(f"heal: back in every ISR {time.monotonic() - healed_at:.2f}s after the heal")
    time.sleep(1)
    prod.finish()
    fatal = [e for e in prod.errors if not e.retriable()]
    assert not fatal, fatal[:5]
    print(f"majority side: acknowledged {len(prod.acked)} records, {len(prod.errors)} retriable errors")

    # The old leader cut its divergent tail of `target` (where the in-namespace writes went).
    cuts = [e for e in parse_log_events(cluster.broker(victim).log_text(), "truncated follower log")
            if e.get("topic") == "ledger" and e.get("partition") == str(target)]
    assert cuts and int(cuts[-1]["from"]) > int(cuts[-1]["to"]), f"node {victim} never truncated ledger-{target}: {cuts}"
    print(f"old leader truncated ledger-{target} from {cuts[-1]['from']} to {cuts[-1]['to']}")

    check_every_replica(cluster, prod, "ledger", partitions=PARTITIONS)
    for b in cluster.brokers:
        for p in range(PARTITIONS):
            stray = [v for _, v in replica_records(b, "ledger", p) if v is not None and v.startswith(b"cut-")]
            assert not stray, f"node {b.node_id} partition {p} kept unacknowledged records {stray[:3]}"
