"""A Ringlog cluster (three nodes by default) whose nodes each live in their own network namespace,
so a test can cut real links: a node cut off sees its peers' packets vanish (no RST, no refusal),
as in a switch failure, not a process death.

Topology (all made with iproute2; needs root):

    root namespace (pytest, clients)  10.A.B.254 --veth "rootleg"--+
                                                                   |  bridge br0 in the hub
    node namespace 1                  10.A.B.1   --veth "n1"-------+  namespace (its own, so the
    node namespace 2                  10.A.B.2   --veth "n2"-------+  host's iptables never see
    node namespace 3                  10.A.B.3   --veth "n3"-------+  the bridged traffic)

`cut(node)` sets the hub's end of the node's veth down: nothing reaches it or leaves it, for the
other nodes and the clients alike. `cut_between(a, b)` drops only a<->b traffic (neighbour entries
that send it nowhere). Every node has its own port space, so the ports are fixed.

Names carry the pid and a per-process sequence number (`ringlog-<pid>-<seq>-...`), and the /24 is
derived from them, so parallel runs do not collide; `sweep_stale()` deletes what a dead run left.
"""

from __future__ import annotations

import itertools
import os
import re
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Set, Tuple

from confluent_kafka.admin import AdminClient

from cluster import FAST_FAILOVER, Cluster
from conftest import Broker, wait_until

KAFKA_PORT = 9092
CONTROLLER_PORT = 9093
ADMIN_PORT = 9644

_NAME_RE = re.compile(r"^ringlog-(\d+)-(\d+)-(hub|n\d+)$")
_ROOT_LINK_RE = re.compile(r"^rl(\d+)x(\d+)$")
_seq = itertools.count()
# A locally administered unicast MAC that no veth has: frames sent to it reach nobody.
_NOWHERE_MAC = "02:00:00:00:de:ad"


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    """Runs `ip args...`; with check, a failure raises with ip's own message."""
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if check and done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)} failed (rc={done.returncode}): {done.stderr.strip()}")
    return done


def netns_unavailable() -> Optional[str]:
    """Why this machine cannot run a NetnsCluster (None when it can): not root, no iproute2, or
    the kernel refuses a namespace (an unprivileged container)."""
    if os.geteuid() != 0:
        return "network namespaces need root (ip netns add); run the partition tests as root"
    if shutil.which("ip") is None:
        return "iproute2 (ip) not installed"
    probe = f"ringlog-{os.getpid()}-probe"
    made = _ip("netns", "add", probe, check=False)
    if made.returncode != 0:
        return f"ip netns add failed: {made.stderr.strip()}"
    try:
        veth = _ip("-n", probe, "link", "add", "p0", "type", "veth", "peer", "name", "p1", check=False)
        if veth.returncode != 0:
            return f"veth pairs unavailable: {veth.stderr.strip()}"
        bridge = _ip("-n", probe, "link", "add", "b0", "type", "bridge", check=False)
        if bridge.returncode != 0:
            return f"bridges unavailable: {bridge.stderr.strip()}"
    finally:
        _ip("netns", "del", probe, check=False)
    return None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep_stale() -> List[str]:
    """Deletes the namespaces and root-side links of runs whose process is gone. Returns their names."""
    swept = []
    listed = _ip("netns", "list", check=False).stdout
    for line in listed.splitlines():
        name = line.split()[0] if line.split() else ""
        m = _NAME_RE.match(name)
        if m and not _pid_alive(int(m.group(1))):
            _ip("netns", "del", name, check=False)
            swept.append(name)
    for line in _ip("-o", "link", "show", check=False).stdout.splitlines():
        parts = line.split(":")
        if len(parts) < 2:
            continue
        name = parts[1].strip().split("@")[0]
        m = _ROOT_LINK_RE.match(name)
        if m and not _pid_alive(int(m.group(1))):
            _ip("link", "del", name, check=False)
            swept.append(name)
    return swept


def _subnet_for(pid: int, seq: int) -> str:
    """A 10.A.B.0/24 from (pid, seq) that no route of this host already covers."""
    routes = _ip("-4", "route", "show", "table", "all", check=False).stdout
    used = set(re.findall(r"\b(10\.\d+\.\d+)\.\d+", routes))
    for attempt in range(256):
        v = (pid * 16 + seq + attempt * 7919) % (120 * 256)
        prefix = f"10.{128 + v // 256}.{v % 256}"
        if prefix not in used:
            return prefix
    raise RuntimeError("no free 10.x.y.0/24 for a NetnsCluster")


class NetnsBroker(Broker):
    """A Broker run with `ip netns exec <ns>`, listening on its namespace's address."""

    def __init__(self, workdir: Path, netns: str, host: str, **kwargs):
        super().__init__(workdir, listen_flags=False, **kwargs)
        self.netns = netns
        self.host = host
        self.port = self.advertised_port = KAFKA_PORT
        self.admin_port = ADMIN_PORT
        self.controller_port = CONTROLLER_PORT
        self.listeners = f"PLAINTEXT://{host}:{KAFKA_PORT},CONTROLLER://{host}:{CONTROLLER_PORT}"

    def command(self) -> List[str]:
        cmd = super().command()
        # setpriv stays outermost: `ip netns exec` execs the broker in place, so the parent-death
        # signal set by setpriv survives into ringlog.
        if cmd[0] == "setpriv":
            head, tail = cmd[:cmd.index("--") + 1], cmd[cmd.index("--") + 1:]
        else:
            head, tail = [], cmd
        return head + ["ip", "netns", "exec", self.netns] + tail


class NetnsCluster(Cluster):
    """`size` combined nodes (ids 1..size), each in its own network namespace, joined by a bridge
    in a hub namespace that the root namespace reaches too. Same interface as cluster.Cluster
    (brokers, broker(), bootstrap, start, admin, live_brokers, wait_for_brokers, partition_state,
    cleanup) plus cut/heal, cut_between/heal_between, exec_in and agreed_partition_state."""

    def __init__(self, workdir: Path, size: int = 3, config: Optional[Dict[str, object]] = None, cores: int = 1,
                 rust_log: str = "info"):
        pid, seq = os.getpid(), next(_seq)
        self.prefix = f"ringlog-{pid}-{seq}"
        self.hub = f"{self.prefix}-hub"
        self.root_link = f"rl{pid}x{seq}"
        self.subnet = _subnet_for(pid, seq)
        self.client_ip = f"{self.subnet}.254"
        self.namespaces: List[str] = []
        self.cut_nodes: Set[int] = set()
        self.cut_pairs: Set[Tuple[int, int]] = set()
        self.spawned: List[subprocess.Popen] = []
        self.brokers: List[NetnsBroker] = []
        try:
            self._build_network(size)
            self._make_brokers(Path(workdir), size, config, cores, rust_log)
        except BaseException:
            # Nothing owns the namespaces yet: a half-built cluster must not leak them.
            self._teardown_network()
            raise

    def _make_brokers(self, workdir: Path, size: int, config: Optional[Dict[str, object]], cores: int, rust_log: str):
        voters = ",".join(f"{i}@{self.host(i)}:{CONTROLLER_PORT}" for i in range(1, size + 1))
        for i in range(1, size + 1):
            node_config = {
                "node.id": i,
                "process.roles": "broker,controller",
                "controller.quorum.voters": voters,
                "controller.listener.names": "CONTROLLER",
                "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
                "inter.broker.listener.name": "PLAINTEXT",
                **FAST_FAILOVER,
                **(config or {}),
            }
            b = NetnsBroker(workdir / f"node{i}", self.node_ns(i), self.host(i), cores=cores, config=node_config,
                            rust_log=rust_log)
            b.node_id = i
            self.brokers.append(b)

    # -- network ---------------------------------------------------------------------------------

    def host(self, node_id: int) -> str:
        return f"{self.subnet}.{node_id}"

    def node_ns(self, node_id: int) -> str:
        return f"{self.prefix}-n{node_id}"

    def _build_network(self, size: int):
        _ip("netns", "add", self.hub)
        self.namespaces.append(self.hub)
        _ip("-n", self.hub, "link", "set", "lo", "up")
        _ip("-n", self.hub, "link", "add", "br0", "type", "bridge")
        _ip("-n", self.hub, "link", "set", "br0", "up")
        # The root namespace's leg: clients in pytest reach every node through it.
        _ip("link", "add", self.root_link, "type", "veth", "peer", "name", "rootleg", "netns", self.hub)
        _ip("addr", "add", f"{self.client_ip}/24", "dev", self.root_link)
        _ip("link", "set", self.root_link, "up")
        _ip("-n", self.hub, "link", "set", "rootleg", "master", "br0", "up")
        for i in range(1, size + 1):
            ns = self.node_ns(i)
            _ip("netns", "add", ns)
            self.namespaces.append(ns)
            _ip("-n", ns, "link", "set", "lo", "up")
            _ip("-n", self.hub, "link", "add", f"n{i}", "type", "veth", "peer", "name", "eth0", "netns", ns)
            _ip("-n", ns, "addr", "add", f"{self.host(i)}/24", "dev", "eth0")
            _ip("-n", ns, "link", "set", "eth0", "up")
            _ip("-n", self.hub, "link", "set", f"n{i}", "master", "br0", "up")
        for i in range(1, size + 1):
            wait_until(lambda i=i: self._reachable(self.host(i)), 10, what=f"node {i}'s namespace reachable")

    @staticmethod
    def _reachable(host: str) -> bool:
        # Nothing listens yet: a refusal (RST) proves the path works both ways.
        try:
            with socket.create_connection((host, KAFKA_PORT), timeout=0.5):
                return True
        except ConnectionRefusedError:
            return True
        except OSError:
            return False

    def cut(self, node_id: int):
        """Isolates node `node_id` completely: its hub-side link goes down, so packets from and to
        it (other nodes, clients) are dropped silently."""
        _ip("-n", self.hub, "link", "set", f"n{node_id}", "down")
        self.cut_nodes.add(node_id)

    def heal(self, node_id: int):
        """Undoes cut(node_id)."""
        _ip("-n", self.hub, "link", "set", f"n{node_id}", "up")
        self.cut_nodes.discard(node_id)

    def cut_between(self, a: int, b: int):
        """Drops traffic between nodes a and b only, both ways and silently; clients and the third
        node still reach both. Each side's neighbour entry for the other points at a MAC no port
        has (the bridge floods it, nobody takes it): this kernel has no tc actions (gact, police)
        to drop with a filter, and a blackhole route would fail connect() at once, not time out."""
        for src, dst in ((a, b), (b, a)):
            _ip("-n", self.node_ns(src), "neigh", "replace", self.host(dst), "lladdr", _NOWHERE_MAC, "dev", "eth0",
                "nud", "permanent")
        self.cut_pairs.add((min(a, b), max(a, b)))

    def heal_between(self, a: int, b: int):
        """Undoes cut_between(a, b): the neighbour entries go, and ARP finds the real MACs again."""
        for src, dst in ((a, b), (b, a)):
            _ip("-n", self.node_ns(src), "neigh", "del", self.host(dst), "dev", "eth0", check=False)
        self.cut_pairs.discard((min(a, b), max(a, b)))

    def exec_in(self, node_id: int, argv: Sequence[str], **popen_kwargs) -> subprocess.Popen:
        """Starts `argv` inside node `node_id`'s namespace (a client that can reach a cut node);
        cleanup() kills it if it still runs (a live process would keep the namespace alive)."""
        proc = subprocess.Popen(["ip", "netns", "exec", self.node_ns(node_id), *argv], **popen_kwargs)
        self.spawned.append(proc)
        return proc

    def _teardown_network(self):
        # Deleting a namespace destroys the veth ends inside it, and with them their peers.
        for ns in reversed(self.namespaces):
            _ip("netns", "del", ns, check=False)
        self.namespaces.clear()
        _ip("link", "del", self.root_link, check=False)

    # -- the Cluster interface -------------------------------------------------------------------

    @property
    def bootstrap(self) -> str:
        """Every running node that is not cut off (a cut node would only stall a new client)."""
        return ",".join(b.bootstrap for b in self.brokers if b.running() and b.node_id not in self.cut_nodes)

    def broker(self, node_id: int) -> NetnsBroker:
        return self.brokers[node_id - 1]

    def start(self, timeout: float = 60.0) -> "NetnsCluster":
        # All at once: a node waits for a quorum before it is ready.
        for b in self.brokers:
            b.starts += 1
            with open(b.log_path, "ab") as logf:
                logf.write(f"===== ringlog start #{b.starts}: {' '.join(b.command())}\n".encode())
                logf.flush()
                b.proc = subprocess.Popen(b.command(), stdin=subprocess.DEVNULL, stdout=logf, stderr=logf,
                                          env=b.env, cwd=str(b.workdir))
        for b in self.brokers:
            b.wait_ready(timeout)
        self.wait_for_brokers(len(self.brokers), timeout)
        return self

    def admin(self) -> AdminClient:
        return AdminClient({"bootstrap.servers": self.bootstrap, "socket.timeout.ms": 5000})

    def partition_state(self, topic: str, node_id: Optional[int] = None) -> Dict[int, dict]:
        """{partition: {leader, replicas, isrs}} as Metadata reports it: from any node not cut off,
        or from node `node_id` alone (a node just healed serves its stale view until it catches up)."""
        if node_id is None:
            admin = self.admin()
        else:
            admin = AdminClient({"bootstrap.servers": self.broker(node_id).bootstrap, "socket.timeout.ms": 5000})
        md = admin.list_topics(topic=topic, timeout=10)
        # A fresh client knows only its bootstrap broker (id -1 until learned), so it asks that one.
        if node_id is not None and md.orig_broker_id not in (-1, node_id):
            raise RuntimeError(f"metadata came from node {md.orig_broker_id} ({md.orig_broker_name}), not {node_id}")
        t = md.topics[topic]
        return {p: {"leader": pm.leader, "replicas": list(pm.replicas), "isrs": list(pm.isrs)}
                for p, pm in t.partitions.items()}

    def agreed_partition_state(self, topic: str) -> Optional[Dict[int, dict]]:
        """The partition state when every running node not cut off reports the same one (ISRs
        compared as sets), else None: a settled cluster, not one node's stale view."""
        views = []
        for b in self.brokers:
            if not b.running() or b.node_id in self.cut_nodes:
                continue
            try:
                views.append(self.partition_state(topic, b.node_id))
            except Exception:
                return None
        norm = [{p: (s["leader"], sorted(s["isrs"])) for p, s in v.items()} for v in views]
        if not views or any(n != norm[0] for n in norm):
            return None
        return views[0]

    def cleanup(self):
        """Stops every broker, then deletes the namespaces and links; safe after any failure."""
        try:
            for n in list(self.cut_nodes):
                self.heal(n)
            for a, b in list(self.cut_pairs):
                self.heal_between(a, b)
        except Exception:
            pass
        try:
            for proc in self.spawned:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait(timeout=10)
            for b in self.brokers:
                b.cleanup()
        finally:
            self._teardown_network()
