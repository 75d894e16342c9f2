"""Consumer groups (classic rebalance protocol) against a real ringlog broker.

Real clients join real groups: confluent-kafka (librdkafka 2.16) and kafka-python members each run in
their own process (tests/e2e/group_worker.py, so one can be SIGKILLed without leaving the group),
kcat -G joins as a balanced consumer, AdminClient lists/describes groups, and hand-built frames
(kafka_wire.py) check the error codes of JoinGroup/SyncGroup/Heartbeat/LeaveGroup/OffsetCommit/
OffsetFetch/OffsetDelete/DescribeGroups/ListGroups/DeleteGroups/FindCoordinator.

Every test starts its own broker with group.initial.rebalance.delay.ms=0, so joins complete at once.
"""

from __future__ import annotations

import collections
import json
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Set

import pytest
from confluent_kafka import (
    OFFSET_INVALID,
    Consumer,
    ConsumerGroupState,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
)

import kafka_wire as kw
from conftest import admin_for, consumer_conf, create_topic, high_watermarks, producer_conf

WORKER = Path(__file__).resolve().with_name("group_worker.py")

FAST = {"group.initial.rebalance.delay.ms": 0}
SESSION_MS = 6000
CONFLUENT_MEMBER = {"session.timeout.ms": SESSION_MS, "heartbeat.interval.ms": 500}
KAFKA_PYTHON_MEMBER = {"session_timeout_ms": SESSION_MS, "heartbeat_interval_ms": 500}


# ----------------------------------------------------------------------------------------------
# Group members in their own processes
# ----------------------------------------------------------------------------------------------

class Member:
    """One group_worker.py process and its JSON-lines event log (read incrementally)."""

    def __init__(self, workdir: Path, name: str, spec: dict):
        self.name = name
        self.spec = dict(spec, name=name)
        self.workdir = workdir
        self.proc: Optional[subprocess.Popen] = None
        self.incarnation = 0
        self.events_path = self.log_path = None
        self._events: List[dict] = []
        self._past: List[List[dict]] = []  # events of earlier incarnations (processes)
        self.killed: Set[int] = set()  # incarnations ended by SIGKILL
        self._offset = 0
        self._partial = b""

    def start(self) -> "Member":
        assert self.proc is None or self.proc.poll() is not None, f"{self.name} already running"
        if self.incarnation:
            self._past.append(list(self.events()))
        self.incarnation += 1
        tag = self.name if self.incarnation == 1 else f"{self.name}.{self.incarnation}"
        self.events_path = self.workdir / f"{tag}.events.jsonl"
        self.log_path = self.workdir / f"{tag}.log"
        self._events, self._offset, self._partial = [], 0, b""
        spec = dict(self.spec, events=str(self.events_path))
        cmd = [sys.executable, str(WORKER), json.dumps(spec)]
        if shutil.which("setpriv"):
            cmd = ["setpriv", "--pdeathsig", "KILL", "--"] + cmd
        with open(self.log_path, "wb") as logf:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT,
                                         cwd=str(self.workdir))
        return self

    # -- events ---------------------------------------------------------------------------------
    def events(self) -> List[dict]:
        """All complete events so far (a torn last line, e.g. after SIGKILL, is skipped)."""
        if self.events_path is None or not self.events_path.exists():
            return self._events
        with open(self.events_path, "rb") as f:
            f.seek(self._offset)
            data = f.read()
        self._offset += len(data)
        data = self._partial + data
        lines = data.split(b"\n")
        self._partial = lines.pop()
        for line in lines:
            if line.strip():
                try:
                    self._events.append(json.loads(line))
                except ValueError:
                    pass
        return self._events

    def of(self, ev: str) -> List[dict]:
        return [e for e in self.events() if e["ev"] == ev]

    def assignment(self) -> Optional[Set[int]]:
        """Latest assignment snapshot (consumer.assignment()), None before the first."""
        for e in reversed(self.events()):
            if e["ev"] == "assignment":
                return set(e["parts"])
        return None

    def incarnations(self) -> List[tuple]:
        """[(incarnation number, its events)] for every process this member has run."""
        return list(enumerate(self._past, 1)) + [(self.incarnation, self.events())]

    def records(self) -> List[tuple]:
        """Every record processed, by any incarnation."""
        return [(e["p"], e["o"], e["v"]) for _i, evs in self.incarnations() for e in evs if e["ev"] == "rec"]

    # -- process control ------------------------------------------------------------------------
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def assert_running(self):
        if not self.running():
            raise AssertionError(f"member {self.name} exited (rc={self.proc.returncode if self.proc else None})\n"
                                 f"{self.describe()}")
        crashes = self.of("crash")
        assert not crashes, f"member {self.name} crashed: {crashes}\n{self.describe()}"

    def kill(self):
        """SIGKILL: no LeaveGroup, no commit, nothing."""
        if self.running():
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=15)
            self.killed.add(self.incarnation)

    def stop(self, timeout: float = 45.0):
        """SIGTERM: the worker leaves its poll loop and close()s the consumer (LeaveGroup)."""
        if not self.running():
            raise AssertionError(f"member {self.name} not running at stop\n{self.describe()}")
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=15)
            raise AssertionError(f"member {self.name} did not close within {timeout}s\n{self.describe()}")
        assert rc == 0, f"member {self.name} exited rc={rc}\n{self.describe()}"
        assert self.of("closed"), f"member {self.name} exited without closing its consumer\n{self.describe()}"

    def cleanup(self):
        if self.running():
            self.proc.kill()
            self.proc.wait(timeout=15)

    def describe(self) -> str:
        evs = self.events()
        counts = collections.Counter(e["ev"] for e in evs)
        interesting = [e for e in evs if e["ev"] not in ("rec", "assignment", "commit")][-15:]
        try:
            log = self.log_path.read_text(errors="replace")[-2000:] if self.log_path else ""
        except FileNotFoundError:
            log = ""
        return (f"--- member {self.name} (incarnation {self.incarnation}): counts={dict(counts)} "
                f"assignment={sorted(self.assignment() or [])}\n    last events: {interesting}\n"
                f"    log tail: {log}")


@pytest.fixture
def member_factory(tmp_path):
    """member_factory(broker, name, group, topic, client='confluent', conf=None, start=True, **spec)."""
    made: List[Member] = []

    def make(broker, name, group, topic, client="confluent", conf=None, start=True, **spec) -> Member:
        base = CONFLUENT_MEMBER if client == "confluent" else KAFKA_PYTHON_MEMBER
        full = dict(client=client, bootstrap=broker.bootstrap, group=group, topics=[topic],
                    conf=dict(base, **(conf or {})), commit=True)
        full.update(spec)
        m = Member(tmp_path, name, full)
        made.append(m)
        if start:
            m.start()
        return m

    try:
        yield make
    finally:
        for m in made:
            m.cleanup()


def describe_all(members: Iterable[Member]) -> str:
    return "\n".join(m.describe() for m in members)


def wait_for(pred, timeout: float, what: str, members: Iterable[Member] = (), interval: float = 0.1,
             running: Iterable[Member] = ()):
    members = list(members)
    running = list(running)
    deadline = time.monotonic() + timeout
    while True:
        for m in running:
            m.assert_running()
        if pred():
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}\n{describe_all(members)}")
        time.sleep(interval)


def wait_for_split(members: List[Member], n_partitions: int, timeout: float, stable_s: float = 1.0,
                   what: str = "") -> Dict[str, Set[int]]:
    """Wait until every member owns at least one partition, the owned sets are disjoint and together
    cover 0..n-1, and this holds for stable_s seconds. Returns {member name: partitions}."""
    deadline = time.monotonic() + timeout
    since = None
    while True:
        for m in members:
            m.assert_running()
        snaps = {m.name: m.assignment() for m in members}
        ok = all(snaps.values()) and sorted(p for s in snaps.values() for p in s) == list(range(n_partitions))
        now = time.monotonic()
        if ok:
            since = since if since is not None else now
            if now - since >= stable_s:
                return snaps
        else:
            since = None
        if now > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {[m.name for m in members]} to own "
                                 f"disjoint, complete assignments of {n_partitions} partitions {what}; "
                                 f"last: { {k: sorted(v or []) for k, v in snaps.items()} }\n{describe_all(members)}")
        time.sleep(0.1)


# ----------------------------------------------------------------------------------------------
# Producing in the background, and checking what the group processed
# ----------------------------------------------------------------------------------------------

class BackgroundProducer(threading.Thread):
    """Produces "<prefix>-<seq>" round-robin over the partitions at a bounded rate until stopped.
    acked: {(partition, offset): value}. Delivery callbacks run on this thread."""

    def __init__(self, broker, topic: str, n_partitions: int, rate: float = 200.0, prefix: str = "r"):
        super().__init__(daemon=True)
        self.topic, self.n, self.rate, self.prefix = topic, n_partitions, rate, prefix
        self.producer = Producer(producer_conf(broker, **{"message.timeout.ms": 60000}))
        self.acked: Dict[tuple, str] = {}
        self.failed: List[str] = []
        self.seq = 0
        self.remaining = None
        self.exc = None
        self._halt = threading.Event()

    def _on_delivery(self, err, msg):
        if err is not None:
            self.failed.append(str(err))
        else:
            self.acked[(msg.partition(), msg.offset())] = msg.value().decode()

    def run(self):
        try:
            interval = 1.0 / self.rate
            next_t = time.monotonic()
            while not self._halt.is_set():
                value = f"{self.prefix}-{self.seq:07d}"
                self.producer.produce(self.topic, value=value.encode(), partition=self.seq % self.n,
                                      on_delivery=self._on_delivery)
                self.seq += 1
                self.producer.poll(0)
                next_t += interval
                delay = next_t - time.monotonic()
                if delay > 0:
                    self.producer.poll(delay)
            self.remaining = self.producer.flush(60)
        except BaseException as e:  # surfaced by finish()
            self.exc = e

    def wait_acked(self, n: int, timeout: float = 30.0):
        deadline = time.monotonic() + timeout
        while len(self.acked) < n:
            assert self.exc is None, f"producer thread failed: {self.exc!r}"
            assert not self.failed, f"delivery failures: {self.failed[:5]}"
            assert time.monotonic() < deadline, f"only {len(self.acked)} of {n} records acknowledged in {timeout}s"
            time.sleep(0.05)

    def halt(self):
        """Stop without checking anything (the test is failing already)."""
        self._halt.set()
        self.join(15)

    def finish(self) -> Dict[tuple, str]:
        self._halt.set()
        self.join(90)
        assert not self.is_alive(), "producer thread did not finish"
        assert self.exc is None, f"producer thread failed: {self.exc!r}"
        assert self.remaining == 0, f"{self.remaining} records not delivered"
        assert not self.failed, f"delivery failures: {self.failed[:5]}"
        assert len(self.acked) == self.seq, f"{self.seq} produced, {len(self.acked)} acknowledged"
        return dict(self.acked)


def produce_n(broker, topic: str, n_partitions: int, n: int, prefix: str = "m") -> Dict[tuple, str]:
    """Produce n records round-robin and wait for all acks: {(partition, offset): value}."""
    p = Producer(producer_conf(broker))
    acked, errors = {}, []

    def cb(err, msg):
        if err is not None:
            errors.append(err)
        else:
            acked[(msg.partition(), msg.offset())] = msg.value().decode()

    for i in range(n):
        p.produce(topic, value=f"{prefix}-{i:06d}".encode(), partition=i % n_partitions, on_delivery=cb)
    assert p.flush(60) == 0
    assert not errors, errors[:5]
    assert len(acked) == n
    return acked


def processed_keys(members: Iterable[Member]) -> Set[tuple]:
    return {(p, o) for m in members for p, o, _v in m.records()}


def wait_all_processed(members: List[Member], acked: Dict[tuple, str], timeout: float = 60.0,
                       running: Iterable[Member] = ()):
    want = set(acked)
    wait_for(lambda: want <= processed_keys(members), timeout,
             f"all {len(want)} acknowledged records to be processed by the group "
             f"(missing now: {len(want - processed_keys(members))})", members, running=running)


def classify_processings(events: List[dict]) -> List[tuple]:
    """[(partition, offset, value, outcome)] for every record one worker process processed, in order
    (events: that process's event log). outcome is
    'committed' when a successful commit of m covered it (commit offset > record offset) while m
    owned the partition, 'failed' when a failed commit covered it, and 'uncommitted' when no commit
    did (a killed process). The commit of the batch in flight when a rebalance callback fires (on
    kafka-python's IO thread, concurrently with processing) still counts for that batch."""
    out = []
    pending: Dict[int, List[int]] = collections.defaultdict(list)  # partition -> indexes into out
    closing: Dict[int, List[int]] = collections.defaultdict(list)  # ownership ended, one commit may follow

    def mark(idxs, upto, outcome):
        rest = []
        for i in idxs:
            if out[i][1] < upto:
                out[i] = out[i][:3] + (outcome,)
            else:
                rest.append(i)
        return rest

    for e in events:
        ev = e["ev"]
        if ev == "rec":
            out.append((e["p"], e["o"], e["v"], "uncommitted"))
            pending[e["p"]].append(len(out) - 1)
        elif ev in ("commit", "commit_failed"):
            outcome = "committed" if ev == "commit" else "failed"
            for p, o in e["offsets"].items():
                p = int(p)
                pending[p] = mark(pending[p], o, outcome)
                mark(closing.pop(p, []), o, outcome)
        elif ev in ("revoke", "lost", "assign"):
            for p in e["parts"]:
                closing[p] = [i for i in pending[p] if out[i][3] == "uncommitted"]
                pending[p] = []
    return out


def check_at_least_once(members: List[Member], acked: Dict[tuple, str]) -> dict:
    """Every acknowledged record was processed, with its produced value, and nothing else was; a
    record processed k > 1 times has at least k-1 processings that were not committed (at-least-once:
    only uncommitted work is redone). Only a SIGKILLed process may leave processed records
    uncommitted; any other process only if its commit failed."""
    processings = collections.defaultdict(list)  # (p, o) -> [(member/incarnation, outcome)]
    unexplained = []
    for m in members:
        for inc, events in m.incarnations():
            who = f"{m.name}#{inc}"
            for p, o, v, outcome in classify_processings(events):
                assert acked.get((p, o)) == v, f"{who} processed {p}/{o} = {v!r}, produced {acked.get((p, o))!r}"
                processings[(p, o)].append((who, outcome))
                if outcome == "uncommitted" and inc not in m.killed:
                    unexplained.append((who, p, o))
    missing = sorted(set(acked) - set(processings))
    assert not missing, f"{len(missing)} acknowledged records never processed, e.g. {missing[:10]}\n{describe_all(members)}"
    bad = {k: v for k, v in processings.items()
           if len(v) > 1 and sum(outcome != "committed" for _n, outcome in v) < len(v) - 1}
    assert not bad, (f"{len(bad)} records processed again although their earlier processing was committed "
                     f"(a committed offset was lost or ignored), e.g. {sorted(bad.items())[:10]}\n{describe_all(members)}")
    assert not unexplained, f"processes that were not killed left records uncommitted without a failed commit: {unexplained[:10]}"
    dups = {k: v for k, v in processings.items() if len(v) > 1}
    return {"records": len(acked), "processed_twice_or_more": len(dups),
            "redone_after": collections.Counter(o for v in dups.values() for _n, o in v if o != "committed")}


def committed_offsets(broker, group: str, topic: str, partitions: Iterable[int]) -> Dict[int, tuple]:
    """{partition: (offset, metadata)} read with Consumer.committed() (OffsetFetch), outside the group."""
    c = Consumer(consumer_conf(broker, **{"group.id": group}))
    try:
        tps = c.committed([TopicPartition(topic, p) for p in partitions], timeout=20)
        for tp in tps:
            assert tp.error is None, f"committed(): {tp}: {tp.error}"
        return {tp.partition: (tp.offset, tp.metadata) for tp in tps}
    finally:
        c.close()


def assert_committed_at_end(broker, group: str, topic: str, n_partitions: int):
    hw = high_watermarks(broker, topic, range(n_partitions))
    got = {p: off for p, (off, _md) in committed_offsets(broker, group, topic, range(n_partitions)).items()}
    assert got == hw, f"committed offsets {got} != high watermarks {hw}"


def describe_group(broker, group: str, timeout: float = 20.0):
    admin = admin_for(broker)
    return admin.describe_consumer_groups([group], request_timeout=timeout)[group].result(timeout=timeout)


# ----------------------------------------------------------------------------------------------
# 1-2. A member killed without leaving: the others take over after session.timeout.ms
# ----------------------------------------------------------------------------------------------

def run_kill_one_member(broker, member_factory, clients: List[str], n_partitions: int, topic: str, group: str,
                        conf: Optional[Dict[str, dict]] = None):
    create_topic(broker, topic, n_partitions)
    prod = BackgroundProducer(broker, topic, n_partitions, rate=150)
    prod.start()
    try:
        prod.wait_acked(60)
        members = [member_factory(broker, f"{c.replace('-', '')}{i}", group, topic, client=c,
                                  conf=(conf or {}).get(c))
                   for i, c in enumerate(clients)]
        snaps = wait_for_split(members, n_partitions, timeout=60, what="before the kill")
        # Everyone is processing and has committed something of its own.
        wait_for(lambda: all(len(m.of("commit")) >= 3 for m in members), 30,
                 "every member to commit at least 3 times", members, running=members)
        victim, survivors = members[0], members[1:]
        victim_parts = snaps[victim.name]
        t_kill = time.monotonic()
        victim.kill()
        wait_for_split(survivors, n_partitions, timeout=SESSION_MS / 1000 + 30, stable_s=0.5,
                       what=f"after SIGKILL of {victim.name} (owned {sorted(victim_parts)})")
        takeover_s = time.monotonic() - t_kill
        # Records produced after the takeover reach the survivors too.
        mark = len(prod.acked)
        prod.wait_acked(mark + 150, 30)
    except BaseException:
        prod.halt()
        raise
    acked = prod.finish()
    wait_all_processed(members, acked, timeout=60, running=survivors)
    for m in survivors:
        m.stop()
    stats = check_at_least_once(members, acked)
    assert_committed_at_end(broker, group, topic, n_partitions)
    broker.assert_alive()
    print(f"takeover after {takeover_s:.1f}s; {stats}")
    return takeover_s


def test_confluent_three_members_one_killed(broker_factory, member_factory):
    """Three confluent-kafka members on 12 partitions split them disjointly; after one is SIGKILLed
    the other two own all 12 once its session times out; nothing acknowledged is lost and only the
    killed member's uncommitted records are processed twice."""
    broker = broker_factory(config=FAST)
    run_kill_one_member(broker, member_factory, ["confluent"] * 3, 12, "grp-confluent", "g-confluent")


def test_kafka_python_two_members_one_killed(broker_factory, member_factory):
    """The same with kafka-python (its own protocol code and group coordinator client)."""
    broker = broker_factory(config=FAST)
    run_kill_one_member(broker, member_factory, ["kafka-python"] * 2, 6, "grp-kpy", "g-kpy")


def test_mixed_clients_share_one_group(broker_factory, member_factory):
    """A confluent-kafka and a kafka-python member, both with the 'range' assignor, in one group:
    3 + 3 partitions; when kafka-python closes (LeaveGroup) the confluent member takes over all 6
    without waiting for a session timeout."""
    broker = broker_factory(config=FAST)
    topic, group, n = "grp-mixed", "g-mixed", 6
    session = 10000
    create_topic(broker, topic, n)
    prod = BackgroundProducer(broker, topic, n, rate=100)
    prod.start()
    try:
        prod.wait_acked(30)
        # The librdkafka member joins first and so leads (computes the assignment) for both.
        rd = member_factory(broker, "rd", group, topic, client="confluent",
                            conf={"partition.assignment.strategy": "range", "session.timeout.ms": session})
        wait_for_split([rd], n, timeout=30)
        kp = member_factory(broker, "kp", group, topic, client="kafka-python",
                            conf={"partition_assignment_strategy": ["range"], "session_timeout_ms": session})
        snaps = wait_for_split([rd, kp], n, timeout=60, what="with both clients")
        assert sorted(len(s) for s in snaps.values()) == [3, 3], snaps

        desc = describe_group(broker, group)
        assert desc.state == ConsumerGroupState.STABLE, desc.state
        assert desc.partition_assignor == "range", desc.partition_assignor
        assert sorted(m.client_id for m in desc.members) == ["kp", "rd"], [m.client_id for m in desc.members]
        by_client = {m.client_id: {tp.partition for tp in m.assignment.topic_partitions} for m in desc.members}
        assert by_client == {"rd": snaps["rd"], "kp": snaps["kp"]}, (by_client, snaps)

        wait_for(lambda: len(kp.of("commit")) >= 2 and len(rd.of("commit")) >= 2, 30,
                 "both members to commit", [rd, kp], running=[rd, kp])
        t0 = time.monotonic()
        kp.stop()
        wait_for_split([rd], n, timeout=30, stable_s=0.5, what="after kafka-python left")
        took = time.monotonic() - t0
        assert took < session / 1000, (f"takeover took {took:.1f}s, not less than the {session} ms session timeout: "
                                       f"LeaveGroup did not trigger a rebalance")
        mark = len(prod.acked)
        prod.wait_acked(mark + 60, 30)
    except BaseException:
        prod.halt()
        raise
    acked = prod.finish()
    wait_all_processed([rd, kp], acked, timeout=60, running=[rd])
    rd.stop()
    check_at_least_once([rd, kp], acked)
    assert_committed_at_end(broker, group, topic, n)


# ----------------------------------------------------------------------------------------------
# 3. cooperative-sticky: incremental rebalance
# ----------------------------------------------------------------------------------------------

def test_cooperative_sticky_incremental_rebalance(broker_factory, member_factory):
    """Two confluent members with partition.assignment.strategy=cooperative-sticky: when the second
    joins, the first is only asked to give up the partitions that move (incremental on_revoke) and
    keeps the rest the whole time; the callbacks see incremental lists."""
    broker = broker_factory(config=FAST)
    topic, group, n = "grp-coop", "g-coop", 6
    create_topic(broker, topic, n)
    conf = {"partition.assignment.strategy": "cooperative-sticky"}
    prod = BackgroundProducer(broker, topic, n, rate=100)
    prod.start()
    try:
        prod.wait_acked(30)
        a = member_factory(broker, "a", group, topic, conf=conf)
        wait_for_split([a], n, timeout=30)
        wait_for(lambda: len(a.of("commit")) >= 2, 20, "a to commit", [a], running=[a])
        a_mark = len(a.events())
        b = member_factory(broker, "b", group, topic, conf=conf)
        snaps = wait_for_split([a, b], n, timeout=60, what="after b joined")
        assert sorted(len(s) for s in snaps.values()) == [3, 3], snaps
        desc = describe_group(broker, group)
        assert desc.partition_assignor == "cooperative-sticky", desc.partition_assignor
        assert desc.state == ConsumerGroupState.STABLE, desc.state
        mark = len(prod.acked)
        prod.wait_acked(mark + 60, 30)
    except BaseException:
        prod.halt()
        raise
    acked = prod.finish()
    wait_all_processed([a, b], acked, timeout=60, running=[a, b])

    all_parts = set(range(n))
    a_events = a.events()
    first = a.of("assign")[0]
    assert set(first["parts"]) == all_parts, f"a's first assignment {first}"
    later = a_events[a_mark:]
    revoked = [set(e["parts"]) for e in later if e["ev"] == "revoke"]
    gained = [set(e["parts"]) for e in later if e["ev"] == "assign"]
    assert not [e for e in later if e["ev"] == "lost"], "a lost partitions"
    assert revoked, f"a saw no revoke when b joined: {later[:20]}"
    moved = set().union(*revoked)
    assert moved == snaps["b"], f"a revoked {sorted(moved)} but b owns {sorted(snaps['b'])}"
    assert all(r != all_parts for r in revoked), f"a had its whole assignment revoked (eager, not incremental): {revoked}"
    assert not set().union(*gained), f"a was (re)assigned partitions it already had: {gained}"
    # a never stopped owning the partitions it keeps.
    kept = all_parts - moved
    snapshots = [set(e["parts"]) for e in later if e["ev"] == "assignment"]
    assert snapshots and all(kept <= s for s in snapshots), \
        f"a's assignment dropped a kept partition {sorted(kept)} during the rebalance: {snapshots}"
    # b: only assigns, together exactly its partitions, no revoke.
    assert set().union(*[set(e["parts"]) for e in b.of("assign")]) == snaps["b"], b.of("assign")
    assert not b.of("revoke"), b.of("revoke")
    a.stop()
    b.stop()
    check_at_least_once([a, b], acked)


# ----------------------------------------------------------------------------------------------
# 4. Committed offsets and metadata survive restart and SIGKILL
# ----------------------------------------------------------------------------------------------

def test_committed_offsets_survive_restart_and_kill(broker_factory):
    """Offsets committed with metadata strings (from outside the group, generation -1) read back
    identically after a clean restart and after SIGKILL; a new group member resumes each partition
    at exactly the committed offset, and its own member commits survive SIGKILL too."""
    broker = broker_factory(config=FAST)
    topic, group, n = "grp-offsets", "g-offsets", 3
    create_topic(broker, topic, n)
    produce_n(broker, topic, n, 90)  # 30 per partition
    parts = list(range(n))

    def commit(offsets):
        c = Consumer(consumer_conf(broker, **{"group.id": group}))
        try:
            res = c.commit(offsets=[TopicPartition(topic, p, o, md) for p, (o, md) in offsets.items()],
                           asynchronous=False)
            for tp in res:
                assert tp.error is None, f"commit {tp}: {tp.error}"
        finally:
            c.close()

    expected = {0: (5, "m0"), 1: (17, "meta for partition 1: {\"k\": [1, 2]}"), 2: (0, "zero")}
    commit(expected)
    assert committed_offsets(broker, group, topic, parts) == expected

    broker.restart()
    assert committed_offsets(broker, group, topic, parts) == expected, "after a clean restart"

    expected[0] = (8, "after-restart")
    commit({0: expected[0]})
    broker.restart(kill=True)
    assert committed_offsets(broker, group, topic, parts) == expected, "after SIGKILL and restart"

    # A group member resumes each partition exactly at the committed offset.
    c = Consumer(consumer_conf(broker, **{"group.id": group, **CONFLUENT_MEMBER, "enable.auto.offset.store": True}))
    first: Dict[int, int] = {}
    got: Dict[int, List[int]] = collections.defaultdict(list)
    try:
        c.subscribe([topic])
        deadline = time.monotonic() + 60
        while sum(len(v) for v in got.values()) < 3 * 30 - sum(o for o, _ in expected.values()):
            assert time.monotonic() < deadline, f"resume timed out: first={first} got={ {p: len(v) for p, v in got.items()} }"
            m = c.poll(0.5)
            if m is None:
                continue
            assert m.error() is None, m.error()
            first.setdefault(m.partition(), m.offset())
            got[m.partition()].append(m.offset())
        assert first == {p: o for p, (o, _md) in expected.items()}, f"first offsets {first}, committed {expected}"
        for p in parts:
            assert got[p] == list(range(expected[p][0], 30)), f"partition {p}: {got[p]}"
        # Commit as a member (generation and member id set), then leave.
        res = c.commit(asynchronous=False)
        assert all(tp.error is None for tp in res), res
    finally:
        c.close()
    assert {p: o for p, (o, _md) in committed_offsets(broker, group, topic, parts).items()} == {p: 30 for p in parts}
    broker.restart(kill=True)
    assert {p: o for p, (o, _md) in committed_offsets(broker, group, topic, parts).items()} == {p: 30 for p in parts}
    # The group itself (now Empty) is still known after the restart.
    desc = describe_group(broker, group)
    assert desc.state == ConsumerGroupState.EMPTY, desc.state


# ----------------------------------------------------------------------------------------------
# 5. kcat -G and AdminClient list/describe
# ----------------------------------------------------------------------------------------------

class LineReader(threading.Thread):
    def __init__(self, stream):
        super().__init__(daemon=True)
        self.stream = stream
        self.lines: List[str] = []

    def run(self):
        for line in iter(self.stream.readline, b""):
            self.lines.append(line.decode(errors="replace").rstrip("\n"))


def group_states(broker, states=None) -> Dict[str, ConsumerGroupState]:
    admin = admin_for(broker)
    kwargs = {"request_timeout": 15}
    if states is not None:
        kwargs["states"] = set(states)
    res = admin.list_consumer_groups(**kwargs).result(timeout=20)
    assert not res.errors, res.errors
    return {g.group_id: g.state for g in res.valid}


def test_kcat_group_member_and_admin_describe(broker_factory, member_factory, tmp_path):
    kcat = shutil.which("kcat")
    if kcat is None:
        pytest.fail("kcat not installed (scripts/test.sh installs it with apt-get)")
    broker = broker_factory(config=FAST)
    topic, group, n = "grp-kcat", "g-kcat", 4
    create_topic(broker, topic, n)
    first = produce_n(broker, topic, n, 40, prefix="k1")

    errf = open(tmp_path / "kcat.stderr", "wb")
    proc = subprocess.Popen(
        [kcat, "-b", broker.bootstrap, "-G", group, "-X", "client.id=kcat-e2e",
         "-X", "auto.offset.reset=earliest", "-X", "session.timeout.ms=6000", "-X", "heartbeat.interval.ms=500",
         "-f", "%p %o %s\\n", "-u", topic],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=errf)
    reader = LineReader(proc.stdout)
    reader.start()
    other = None
    try:
        def kcat_err():
            return (tmp_path / "kcat.stderr").read_text(errors="replace")[-3000:]

        def kcat_has(keys):
            return keys <= {(int(p), int(o)) for p, o, _v in (ln.split(" ", 2) for ln in list(reader.lines) if ln.count(" ") >= 2)}

        wait_for(lambda: kcat_has(set(first)) or proc.poll() is not None, 45, "kcat -G to print the first 40 records")
        assert proc.poll() is None, f"kcat exited rc={proc.returncode}: {kcat_err()}"
        for ln in reader.lines:
            p, o, v = ln.split(" ", 2)
            assert first[(int(p), int(o))] == v, ln

        # A second member (confluent-kafka) joins; the two split the 4 partitions.
        other = member_factory(broker, "cf", group, topic)

        def stable_with_two():
            d = describe_group(broker, group)
            if d.state != ConsumerGroupState.STABLE or len(d.members) != 2:
                return False
            owned = [tp.partition for m in d.members for tp in m.assignment.topic_partitions]
            return sorted(owned) == list(range(n)) and other.assignment()

        wait_for(stable_with_two, 60, "Stable group with kcat and cf splitting 4 partitions", [other], interval=0.5,
                 running=[other])
        desc = describe_group(broker, group)
        assert desc.group_id == group
        assert not desc.is_simple_consumer_group
        assert desc.coordinator.id == 0, desc.coordinator
        assert desc.partition_assignor in ("range", "roundrobin"), desc.partition_assignor
        assert sorted(m.client_id for m in desc.members) == ["cf", "kcat-e2e"], [m.client_id for m in desc.members]
        assert all(m.member_id for m in desc.members) and len({m.member_id for m in desc.members}) == 2

        listed = group_states(broker)
        assert listed.get(group) == ConsumerGroupState.STABLE, listed
        assert group in group_states(broker, [ConsumerGroupState.STABLE])
        assert group not in group_states(broker, [ConsumerGroupState.EMPTY])

        # More records: the group (kcat + cf) reads all of them.
        second = produce_n(broker, topic, n, 40, prefix="k2")
        wait_for(lambda: set(second) <= ({k for k in processed_keys([other])} | {
            (int(p), int(o)) for p, o, _v in (ln.split(" ", 2) for ln in list(reader.lines))}),
            45, "kcat + cf to read the second 40 records", [other], running=[other])
        assert proc.poll() is None, f"kcat exited rc={proc.returncode}: {kcat_err()}"
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        errf.close()
    other.stop()

    def empty():
        d = describe_group(broker, group)
        return d.state == ConsumerGroupState.EMPTY and not d.members

    wait_for(empty, 20, "group to be Empty after kcat and cf closed", interval=0.5)
    assert group_states(broker).get(group) == ConsumerGroupState.EMPTY
    assert group in group_states(broker, [ConsumerGroupState.EMPTY])
    assert group not in group_states(broker, [ConsumerGroupState.STABLE])


# ----------------------------------------------------------------------------------------------
# 6. Static membership
# ----------------------------------------------------------------------------------------------

def test_static_member_restart_keeps_assignment_without_rebalance(broker_factory, member_factory):
    """Two static members (group.instance.id); one is SIGKILLed and restarted within its session
    timeout with the same instance id: it gets the same partitions back and the other member sees
    no rebalance at all (no on_revoke/on_assign), not even when the old session would have expired."""
    broker = broker_factory(config=FAST)
    topic, group, n = "grp-static", "g-static", 6
    session_ms = 10000
    create_topic(broker, topic, n)
    prod = BackgroundProducer(broker, topic, n, rate=60)
    prod.start()
    try:
        prod.wait_acked(20)
        b = member_factory(broker, "b", group, topic,
                           conf={"group.instance.id": "static-2", "session.timeout.ms": session_ms})
        wait_for_split([b], n, timeout=30)
        a = member_factory(broker, "a", group, topic,
                           conf={"group.instance.id": "static-1", "session.timeout.ms": session_ms})
        snaps = wait_for_split([a, b], n, timeout=60, what="static members")
        desc = describe_group(broker, group)
        assert sorted(m.group_instance_id for m in desc.members) == ["static-1", "static-2"], \
            [(m.member_id, m.group_instance_id) for m in desc.members]
        old_member_id = {m.group_instance_id: m.member_id for m in desc.members}["static-1"]
        wait_for(lambda: len(a.of("commit")) >= 2, 20, "a to commit", [a], running=[a, b])

        b_rebalances = len([e for e in b.events() if e["ev"] in ("assign", "revoke", "lost")])
        a_parts = snaps["a"]
        t_kill = time.monotonic()
        a.kill()
        time.sleep(1.0)
        a.start()  # same name, same group.instance.id, a new process
        wait_for(lambda: a.assignment() == a_parts, session_ms / 1000 - 2, "restarted a to get its partitions back",
                 [a, b], running=[a, b])
        rejoin_s = time.monotonic() - t_kill
        assert rejoin_s < session_ms / 1000, f"rejoined only after {rejoin_s:.1f}s"
        # Stay past the point where the old member's session would have expired.
        deadline = t_kill + session_ms / 1000 + 4
        while time.monotonic() < deadline:
            a.assert_running()
            b.assert_running()
            assert a.assignment() == a_parts, f"a's assignment changed: {a.assignment()}"
            assert b.assignment() == snaps["b"], f"b's assignment changed: {b.assignment()}"
            time.sleep(0.2)
        b_events = [e for e in b.events() if e["ev"] in ("assign", "revoke", "lost")]
        assert len(b_events) == b_rebalances, f"b saw a rebalance: {b_events[b_rebalances:]}"
        a_events = [e for e in a.events() if e["ev"] in ("assign", "revoke", "lost")]
        assert [(e["ev"], set(e["parts"])) for e in a_events] == [("assign", a_parts)], a_events
        desc = describe_group(broker, group)
        assert desc.state == ConsumerGroupState.STABLE, desc.state
        members = {m.group_instance_id: m.member_id for m in desc.members}
        assert sorted(members) == ["static-1", "static-2"], members
        assert members["static-1"] != old_member_id, "the rejoined static member kept its old member id"
        mark = len(prod.acked)
        prod.wait_acked(mark + 30, 30)
    except BaseException:
        prod.halt()
        raise
    acked = prod.finish()
    wait_all_processed([a, b], acked, timeout=60, running=[a, b])
    a.stop()
    b.stop()
    check_at_least_once([a, b], acked)
    assert_committed_at_end(broker, group, topic, n)


# ----------------------------------------------------------------------------------------------
# 7. Raw protocol: error codes and state transitions
# ----------------------------------------------------------------------------------------------

class Raw:
    """One raw connection; each call sends one request and parses its response."""

    def __init__(self, broker):
        self.sock = kw.connect(broker.port)
        self.corr = 0

    def call(self, api_key, version, body, parse, flexible=False, timeout=20.0):
        self.corr += 1
        make = kw.flexible_frame if flexible else kw.frame
        data = kw.roundtrip(self.sock, make(api_key, version, self.corr, body), timeout=timeout)
        corr, *rest = parse(data)
        assert corr == self.corr, f"correlation id {corr}, expected {self.corr}"
        return rest[0] if len(rest) == 1 else tuple(rest)

    def send(self, api_key, version, body):
        """Send without reading (for a JoinGroup that parks until the rebalance completes)."""
        self.corr += 1
        self.sock.sendall(kw.frame(api_key, version, self.corr, body))
        return self.corr

    def read(self, corr, parse, timeout=20.0):
        got, *rest = parse(kw.read_response(self.sock, timeout))
        assert got == corr, f"correlation id {got}, expected {corr}"
        return rest[0] if len(rest) == 1 else tuple(rest)

    # convenience wrappers
    def join(self, group, member_id="", topics=("t",), instance=None, session_ms=10000, rebalance_ms=10000,
             protocols=None):
        protocols = protocols or [("range", kw.consumer_subscription(list(topics)))]
        return self.call(kw.API_JOIN_GROUP, 5, kw.join_group_v5_body(
            group, member_id, session_ms, rebalance_ms, instance, "consumer", protocols), kw.parse_join_group_v5)

    def join_new(self, group, **kw_args):
        """JoinGroup v5 as a new dynamic member: MEMBER_ID_REQUIRED first, then the real join."""
        r = self.join(group, "", **kw_args)
        assert r["error_code"] == kw.ERR_MEMBER_ID_REQUIRED, r
        assert r["member_id"], f"MEMBER_ID_REQUIRED without a member id: {r}"
        r2 = self.join(group, r["member_id"], **kw_args)
        assert r2["error_code"] == 0, r2
        assert r2["member_id"] == r["member_id"], (r, r2)
        return r2

    def sync(self, group, generation, member_id, assignments=(), instance=None):
        return self.call(kw.API_SYNC_GROUP, 3, kw.sync_group_v3_body(group, generation, member_id, assignments, instance),
                         kw.parse_sync_group_v3)

    def heartbeat(self, group, generation, member_id, instance=None):
        return self.call(kw.API_HEARTBEAT, 3, kw.heartbeat_v3_body(group, generation, member_id, instance),
                         kw.parse_heartbeat_v3)["error_code"]

    def describe(self, group):
        return self.call(kw.API_DESCRIBE_GROUPS, 4, kw.describe_groups_v4_body([group]),
                         kw.parse_describe_groups_v4)[group]

    def commit(self, group, topics, generation=-1, member_id="", instance=None):
        return self.call(kw.API_OFFSET_COMMIT, 7, kw.offset_commit_v7_body(group, topics, generation, member_id, instance),
                         kw.parse_offset_commit_v7)

    def fetch(self, group, topics):
        err, parts = self.call(kw.API_OFFSET_FETCH, 5, kw.offset_fetch_v5_body(group, topics), kw.parse_offset_fetch_v5)
        assert err == 0, f"OffsetFetch v5 error {err}"
        return parts

    def leave(self, group, members):
        return self.call(kw.API_LEAVE_GROUP, 3, kw.leave_group_v3_body(group, members), kw.parse_leave_group_v3)

    def list_groups(self):
        err, groups = self.call(kw.API_LIST_GROUPS, 2, b"", kw.parse_list_groups_v2)
        assert err == 0, f"ListGroups v2 error {err}"
        return groups

    def close(self):
        self.sock.close()


def raw_when_serving(broker, timeout: float = 15.0) -> Raw:
    """A Raw connection once the broker answers on it. Right after a restart the port can accept a
    connection before the broker serves it (and reset it); real clients reconnect, so do we."""
    deadline = time.monotonic() + timeout
    while True:
        r = None
        try:
            r = Raw(broker)
            r.call(kw.API_VERSIONS, 0, b"", lambda d: kw.parse_api_versions_v0(d)[:2])
            return r
        except (OSError, kw.Closed):
            if r is not None:
                r.close()
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def wait_state(raw: Raw, group: str, state: str, timeout: float):
    last = {}

    def ok():
        nonlocal last
        last = raw.describe(group)
        return last["error_code"] == 0 and last["state"] == state

    wait_for(ok, timeout, f"group {group} to be {state} (last: {last})", interval=0.2)
    return last


def test_raw_group_lifecycle_and_error_codes(broker_factory):
    """Hand-built frames through one member's life: FindCoordinator v2/v4, the error codes of bad
    joins, MEMBER_ID_REQUIRED, SyncGroup, DescribeGroups states, Heartbeat/OffsetCommit errors,
    OffsetFetch, LeaveGroup v3, and a later generation for the next member."""
    broker = broker_factory(config=FAST)
    create_topic(broker, "raw-t", 2)
    r = Raw(broker)
    g = "raw-g"

    # FindCoordinator: the coordinator is broker 0, this broker's advertised address.
    fc = r.call(kw.API_FIND_COORDINATOR, 2, kw.find_coordinator_v2_body(g), kw.parse_find_coordinator_v2)
    assert (fc["error_code"], fc["node_id"], fc["host"], fc["port"]) == (0, 0, "127.0.0.1", broker.port), fc
    coords = r.call(kw.API_FIND_COORDINATOR, 4, kw.find_coordinator_v4_body([g, "other-group"]),
                    kw.parse_find_coordinator_v4, flexible=True)
    assert sorted(c["key"] for c in coords) == sorted([g, "other-group"]), coords
    for c in coords:
        assert (c["error_code"], c["node_id"], c["host"], c["port"]) == (0, 0, "127.0.0.1", broker.port), c

    # Unknown group: heartbeat says UNKNOWN_MEMBER_ID; DescribeGroups says Dead (no error).
    assert r.heartbeat("no-such-group", 1, "nobody") == kw.ERR_UNKNOWN_MEMBER_ID
    d = r.describe("no-such-group")
    assert (d["error_code"], d["state"], d["members"]) == (0, "Dead", []), d

    # Bad joins.
    assert r.join("")["error_code"] == kw.ERR_INVALID_GROUP_ID
    assert r.join(g, session_ms=1000)["error_code"] == kw.ERR_INVALID_SESSION_TIMEOUT  # < group.min (6000)
    assert r.join(g, session_ms=1800001)["error_code"] == kw.ERR_INVALID_SESSION_TIMEOUT  # > group.max
    assert r.join(g, "made-up-member-id")["error_code"] == kw.ERR_UNKNOWN_MEMBER_ID

    # A real member: MEMBER_ID_REQUIRED, rejoin, leader of generation >= 1, SyncGroup.
    sub = kw.consumer_subscription(["raw-t"])
    j = r.join_new(g, topics=["raw-t"])
    me, gen = j["member_id"], j["generation_id"]
    assert gen >= 1 and j["leader"] == me and j["protocol_name"] == "range", j
    assert [(m["member_id"], m["metadata"]) for m in j["members"]] == [(me, sub)], j["members"]
    d = r.describe(g)
    assert d["state"] == "CompletingRebalance", d
    assignment = kw.consumer_assignment([("raw-t", [0, 1])])
    s = r.sync(g, gen, me, [(me, assignment)])
    assert (s["error_code"], s["assignment"]) == (0, assignment), s
    d = r.describe(g)
    assert (d["error_code"], d["state"], d["protocol_type"], d["protocol"]) == (0, "Stable", "consumer", "range"), d
    assert [(m["member_id"], m["client_id"], m["metadata"], m["assignment"]) for m in d["members"]] == \
        [(me, "ringlog-e2e-raw", sub, assignment)], d["members"]
    assert r.list_groups().get(g) == "consumer"

    # Heartbeats: right generation ok, wrong generation ILLEGAL_GENERATION, unknown member.
    assert r.heartbeat(g, gen, me) == 0
    assert r.heartbeat(g, gen + 1, me) == kw.ERR_ILLEGAL_GENERATION
    assert r.heartbeat(g, gen, "someone-else") == kw.ERR_UNKNOWN_MEMBER_ID
    assert r.sync(g, gen + 1, me)["error_code"] == kw.ERR_ILLEGAL_GENERATION

    # OffsetCommit as the member: per-partition answers, UNKNOWN_TOPIC_OR_PARTITION for a missing topic.
    res = r.commit(g, [("raw-t", [(0, 5, "md-zero"), (1, 7, None)]), ("no-such-topic", [(0, 1, "x")])], gen, me)
    assert res == {("raw-t", 0): 0, ("raw-t", 1): 0, ("no-such-topic", 0): kw.ERR_UNKNOWN_TOPIC_OR_PARTITION}, res
    res = r.commit(g, [("raw-t", [(0, 6, None)])], gen + 1, me)
    assert res == {("raw-t", 0): kw.ERR_ILLEGAL_GENERATION}, res
    res = r.commit(g, [("raw-t", [(0, 6, None)])], gen, "someone-else")
    assert res == {("raw-t", 0): kw.ERR_UNKNOWN_MEMBER_ID}, res
    # A "simple" commit (generation -1, no member id) is refused while the group has members.
    res = r.commit(g, [("raw-t", [(0, 6, None)])])
    assert res[("raw-t", 0)] != 0, f"a commit from outside the group was accepted while it has a member: {res}"

    f = r.fetch(g, [("raw-t", [0, 1])])
    assert (f[("raw-t", 0)]["offset"], f[("raw-t", 0)]["metadata"], f[("raw-t", 0)]["error_code"]) == (5, "md-zero", 0), f
    assert (f[("raw-t", 1)]["offset"], f[("raw-t", 1)]["error_code"]) == (7, 0), f
    assert f[("raw-t", 1)]["metadata"] in ("", None), f
    f = r.fetch(g, None)  # all committed partitions of the group
    assert {k: v["offset"] for k, v in f.items()} == {("raw-t", 0): 5, ("raw-t", 1): 7}, f
    f = r.fetch("no-offsets-here", [("raw-t", [0])])
    assert (f[("raw-t", 0)]["offset"], f[("raw-t", 0)]["error_code"]) == (-1, 0), f

    # LeaveGroup v3 (batch form): an unknown member gets its own error, the real one leaves.
    lv = r.leave(g, [("someone-else", None)])
    assert lv["error_code"] == 0 and [m["error_code"] for m in lv["members"]] == [kw.ERR_UNKNOWN_MEMBER_ID], lv
    lv = r.leave(g, [(me, None)])
    assert lv["error_code"] == 0 and [m["error_code"] for m in lv["members"]] == [0], lv
    d = r.describe(g)
    assert (d["state"], d["members"]) == ("Empty", []), d
    assert r.heartbeat(g, gen, me) == kw.ERR_UNKNOWN_MEMBER_ID
    # Offsets stay with the empty group; now a simple commit is accepted.
    assert r.fetch(g, [("raw-t", [0])])[("raw-t", 0)]["offset"] == 5
    assert r.commit(g, [("raw-t", [(0, 9, "simple")])]) == {("raw-t", 0): 0}
    # A new member starts a later generation.
    j2 = r.join_new(g, topics=["raw-t"])
    assert j2["generation_id"] > gen and j2["leader"] == j2["member_id"], j2
    r.close()


def test_raw_rebalance_in_progress_with_two_members(broker_factory):
    """A second member's join parks until the first rejoins; meanwhile the first's heartbeat says
    REBALANCE_IN_PROGRESS and DescribeGroups says PreparingRebalance. Both then get the same new
    generation, the leader's SyncGroup hands out both assignments."""
    broker = broker_factory(config=FAST)
    create_topic(broker, "rb-t", 4)
    g = "rb-g"
    r1, r2, obs = Raw(broker), Raw(broker), Raw(broker)
    j1 = r1.join_new(g, topics=["rb-t"])
    m1, gen1 = j1["member_id"], j1["generation_id"]
    assert r1.sync(g, gen1, m1, [(m1, kw.consumer_assignment([("rb-t", [0, 1, 2, 3])]))])["error_code"] == 0
    assert obs.describe(g)["state"] == "Stable"

    j = r2.join(g, "", topics=["rb-t"])
    assert j["error_code"] == kw.ERR_MEMBER_ID_REQUIRED, j
    m2 = j["member_id"]
    corr2 = r2.send(kw.API_JOIN_GROUP, 5, kw.join_group_v5_body(
        g, m2, 10000, 10000, None, "consumer", [("range", kw.consumer_subscription(["rb-t"]))]))

    wait_state(obs, g, "PreparingRebalance", 10)
    assert r1.heartbeat(g, gen1, m1) == kw.ERR_REBALANCE_IN_PROGRESS
    # A commit with the current generation is still accepted while the group prepares a rebalance.
    assert r1.commit(g, [("rb-t", [(0, 3, None)])], gen1, m1) == {("rb-t", 0): 0}

    j1b = r1.join(g, m1, topics=["rb-t"])
    j2 = r2.read(corr2, kw.parse_join_group_v5)
    assert j1b["error_code"] == 0 and j2["error_code"] == 0, (j1b, j2)
    gen2 = j1b["generation_id"]
    assert gen2 > gen1 and j2["generation_id"] == gen2, (j1b, j2)
    assert j1b["leader"] == m1 and j2["leader"] == m1, "the existing leader stays leader"
    assert sorted(m["member_id"] for m in j1b["members"]) == sorted([m1, m2]), j1b["members"]
    assert j2["members"] == [], "followers get no member list"
    assert obs.describe(g)["state"] == "CompletingRebalance"
    assert r1.heartbeat(g, gen1, m1) == kw.ERR_ILLEGAL_GENERATION

    a1 = kw.consumer_assignment([("rb-t", [0, 1])])
    a2 = kw.consumer_assignment([("rb-t", [2, 3])])
    corr_s2 = r2.send(kw.API_SYNC_GROUP, 3, kw.sync_group_v3_body(g, gen2, m2, []))
    s1 = r1.sync(g, gen2, m1, [(m1, a1), (m2, a2)])
    s2 = r2.read(corr_s2, kw.parse_sync_group_v3)
    assert (s1["error_code"], s1["assignment"]) == (0, a1), s1
    assert (s2["error_code"], s2["assignment"]) == (0, a2), s2
    d = obs.describe(g)
    assert d["state"] == "Stable" and {m["member_id"]: m["assignment"] for m in d["members"]} == {m1: a1, m2: a2}, d
    assert r1.heartbeat(g, gen2, m1) == 0 and r2.heartbeat(g, gen2, m2) == 0
    for r in (r1, r2, obs):
        r.close()


def test_raw_stalled_members_expire(broker_factory):
    """A member that never sends SyncGroup, and one that stops heartbeating, are removed after
    their session timeout: the group goes back to Empty and a new member can join and sync."""
    broker = broker_factory(config=dict(FAST, **{"group.min.session.timeout.ms": 1000}))
    create_topic(broker, "st-t", 1)
    g = "stall-g"
    r = Raw(broker)
    session = 1500

    j1 = r.join_new(g, topics=["st-t"], session_ms=session, rebalance_ms=session)
    assert r.describe(g)["state"] == "CompletingRebalance"
    t0 = time.monotonic()
    d = wait_state(r, g, "Empty", 15)  # never synced, never heartbeated
    assert d["members"] == [], d
    assert time.monotonic() - t0 >= session / 1000 * 0.5, "member removed long before its session timeout"
    assert r.heartbeat(g, j1["generation_id"], j1["member_id"]) == kw.ERR_UNKNOWN_MEMBER_ID

    j2 = r.join_new(g, topics=["st-t"], session_ms=session, rebalance_ms=session)
    assert j2["generation_id"] > j1["generation_id"] and j2["leader"] == j2["member_id"], (j1, j2)
    a = kw.consumer_assignment([("st-t", [0])])
    assert r.sync(g, j2["generation_id"], j2["member_id"], [(j2["member_id"], a)])["error_code"] == 0
    assert r.describe(g)["state"] == "Stable"
    # Keep it alive for longer than a session with heartbeats...
    end = time.monotonic() + session / 1000 * 2
    while time.monotonic() < end:
        assert r.heartbeat(g, j2["generation_id"], j2["member_id"]) == 0
        time.sleep(0.3)
    assert r.describe(g)["state"] == "Stable"
    # ...then stop heartbeating.
    d = wait_state(r, g, "Empty", 15)
    assert d["members"] == [], d

    j3 = r.join_new(g, topics=["st-t"], session_ms=session, rebalance_ms=session)
    assert j3["generation_id"] > j2["generation_id"], (j2, j3)
    s = r.sync(g, j3["generation_id"], j3["member_id"], [(j3["member_id"], a)])
    assert (s["error_code"], s["assignment"]) == (0, a), s
    assert r.describe(g)["state"] == "Stable"
    r.close()


def test_raw_static_member_fenced(broker_factory):
    """A static member (group.instance.id) rejoining with an empty member id replaces its old member
    id; the old id is then fenced: FENCED_INSTANCE_ID."""
    broker = broker_factory(config=FAST)
    create_topic(broker, "fx-t", 2)
    g, inst = "fence-g", "raw-static"
    r = Raw(broker)

    def join_static():
        j = r.join(g, "", topics=["fx-t"], instance=inst)
        if j["error_code"] == kw.ERR_MEMBER_ID_REQUIRED:  # Kafka lets static members skip this step
            j = r.join(g, j["member_id"], topics=["fx-t"], instance=inst)
        assert j["error_code"] == 0, j
        return j

    j1 = join_static()
    m1 = j1["member_id"]
    a = kw.consumer_assignment([("fx-t", [0, 1])])
    assert r.sync(g, j1["generation_id"], m1, [(m1, a)], instance=inst)["error_code"] == 0
    assert r.heartbeat(g, j1["generation_id"], m1, inst) == 0

    j2 = join_static()
    m2 = j2["member_id"]
    assert m2 and m2 != m1, (j1, j2)
    s = r.sync(g, j2["generation_id"], m2, [(m2, a)] if j2["leader"] == m2 else [], instance=inst)
    assert (s["error_code"], s["assignment"]) == (0, a), s
    assert r.heartbeat(g, j2["generation_id"], m2, inst) == 0
    assert r.heartbeat(g, j2["generation_id"], m1, inst) == kw.ERR_FENCED_INSTANCE_ID
    res = r.commit(g, [("fx-t", [(0, 1, None)])], j2["generation_id"], m1, inst)
    assert res == {("fx-t", 0): kw.ERR_FENCED_INSTANCE_ID}, res
    d = r.describe(g)
    assert [(m["member_id"], m["group_instance_id"]) for m in d["members"]] == [(m2, inst)], d
    # Static leave (instance id, no member id needed) empties the group.
    lv = r.leave(g, [("", inst)])
    assert lv["error_code"] == 0 and [m["error_code"] for m in lv["members"]] == [0], lv
    assert r.describe(g)["state"] == "Empty"
    r.close()


def test_raw_delete_groups_offset_delete_and_multi_group_fetch(broker_factory):
    """OffsetFetch v8 (several groups in one request), OffsetDelete v0, DeleteGroups v1 with its three
    outcomes, durability of deletions across restart and SIGKILL, and AdminClient.delete_consumer_groups."""
    broker = broker_factory(config=FAST)
    create_topic(broker, "dg-t", 2)
    r = Raw(broker)

    # Two empty groups with offsets, one active group.
    assert r.commit("dg-empty", [("dg-t", [(0, 4, "e0"), (1, 6, "e1")])]) == {("dg-t", 0): 0, ("dg-t", 1): 0}
    assert r.commit("dg-od", [("dg-t", [(0, 2, "a"), (1, 3, "b")])]) == {("dg-t", 0): 0, ("dg-t", 1): 0}
    j = r.join_new("dg-active", topics=["dg-t"])
    a = kw.consumer_assignment([("dg-t", [0, 1])])
    assert r.sync("dg-active", j["generation_id"], j["member_id"], [(j["member_id"], a)])["error_code"] == 0
    assert r.commit("dg-active", [("dg-t", [(0, 1, None)])], j["generation_id"], j["member_id"]) == {("dg-t", 0): 0}

    # OffsetFetch v8: several groups in one request.
    groups = r.call(kw.API_OFFSET_FETCH, 8, kw.offset_fetch_v8_body(
        [("dg-empty", [("dg-t", [0, 1])]), ("dg-od", None), ("dg-nothing", [("dg-t", [0])])]),
        kw.parse_offset_fetch_v8, flexible=True)
    assert set(groups) == {"dg-empty", "dg-od", "dg-nothing"}, groups
    err, parts = groups["dg-empty"]
    assert err == 0 and {k: (v["offset"], v["metadata"], v["error_code"]) for k, v in parts.items()} == \
        {("dg-t", 0): (4, "e0", 0), ("dg-t", 1): (6, "e1", 0)}, groups["dg-empty"]
    err, parts = groups["dg-od"]
    assert err == 0 and {k: v["offset"] for k, v in parts.items()} == {("dg-t", 0): 2, ("dg-t", 1): 3}, groups["dg-od"]
    err, parts = groups["dg-nothing"]
    assert err == 0 and parts[("dg-t", 0)]["offset"] == -1, groups["dg-nothing"]

    # OffsetDelete on an empty group removes just that partition's offset.
    err, res = r.call(kw.API_OFFSET_DELETE, 0, kw.offset_delete_v0_body("dg-od", [("dg-t", [0])]),
                      kw.parse_offset_delete_v0)
    assert err == 0 and res == {("dg-t", 0): 0}, (err, res)
    f = r.fetch("dg-od", [("dg-t", [0, 1])])
    assert (f[("dg-t", 0)]["offset"], f[("dg-t", 1)]["offset"]) == (-1, 3), f
    err, _res = r.call(kw.API_OFFSET_DELETE, 0, kw.offset_delete_v0_body("dg-nope", [("dg-t", [0])]),
                       kw.parse_offset_delete_v0)
    assert err == kw.ERR_GROUP_ID_NOT_FOUND, err

    # DeleteGroups: empty group deleted, active group refused, unknown group not found.
    res = r.call(kw.API_DELETE_GROUPS, 1, kw.delete_groups_v1_body(["dg-empty", "dg-active", "dg-nope"]),
                 kw.parse_delete_groups_v1)
    assert res == {"dg-empty": 0, "dg-active": kw.ERR_NON_EMPTY_GROUP, "dg-nope": kw.ERR_GROUP_ID_NOT_FOUND}, res
    assert r.fetch("dg-empty", [("dg-t", [0])])[("dg-t", 0)]["offset"] == -1
    listed = r.list_groups()
    assert "dg-empty" not in listed and "dg-active" in listed, listed
    assert r.describe("dg-empty")["state"] == "Dead"
    r.close()

    # Deletions are durable: nothing comes back after a restart (clean, then SIGKILL).
    for kill in (False, True):
        broker.restart(kill=kill)
        r = raw_when_serving(broker)
        f = r.fetch("dg-empty", [("dg-t", [0, 1])])
        assert {k: (v["offset"], v["error_code"]) for k, v in f.items()} == {("dg-t", 0): (-1, 0), ("dg-t", 1): (-1, 0)}, \
            f"deleted group's offsets came back after restart (kill={kill}): {f}"
        f = r.fetch("dg-od", [("dg-t", [0, 1])])
        assert (f[("dg-t", 0)]["offset"], f[("dg-t", 1)]["offset"], f[("dg-t", 1)]["metadata"]) == (-1, 3, "b"), f
        assert r.fetch("dg-active", [("dg-t", [0])])[("dg-t", 0)]["offset"] == 1
        assert "dg-empty" not in r.list_groups()
        r.close()

    # AdminClient.delete_consumer_groups (DeleteGroups through librdkafka).
    admin = admin_for(broker)
    r = raw_when_serving(broker)
    assert r.commit("dg-admin", [("dg-t", [(0, 1, None)])]) == {("dg-t", 0): 0}
    r.close()
    futs = admin.delete_consumer_groups(["dg-admin", "dg-admin-nope"], request_timeout=15)
    futs["dg-admin"].result(timeout=20)
    with pytest.raises(KafkaException) as ei:
        futs["dg-admin-nope"].result(timeout=20)
    assert ei.value.args[0].code() == KafkaError.GROUP_ID_NOT_FOUND, ei.value
    assert committed_offsets(broker, "dg-admin", "dg-t", [0])[0][0] == OFFSET_INVALID
