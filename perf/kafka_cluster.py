"""Apache Kafka 4.x as the peer of tests/e2e/cluster.py for perf/failover.py: N KRaft nodes on this
machine, each a combined broker and controller of one static quorum, with the same surface the
failover measurement uses (bootstrap, admin, partition_state, broker(id).kill/start, cleanup).

perf/kafka.sh does the work that must match perf/cluster.sh's Kafka runs: it fetches the jars,
writes each node's server.properties, formats the log dirs and runs a node (exec, so the pid this
class holds is the JVM's).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "e2e"))
from cluster import MetadataView  # noqa: E402  (Metadata reads shared with Ringlog's harness)

KAFKA_SH = Path(__file__).resolve().parent / "kafka.sh"


def _wait_until(pred, timeout: float, interval: float = 0.1, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def _free_base() -> int:
    """A port base whose node ports (base+10n, base+10n+1 for n in 1..3) are all free now."""
    for base in range(19400, 30000, 100):
        ports = [base + n * 10 + k for n in (1, 2, 3) for k in (0, 1)]
        try:
            for port in ports:
                with socket.socket() as s:
                    s.bind(("127.0.0.1", port))
        except OSError:
            continue
        return base
    raise RuntimeError("no free port base for a Kafka cluster")


class KafkaNode:
    """One Kafka JVM: node `node_id` of the formatted cluster directory."""

    def __init__(self, workdir: Path, node_id: int, port: int):
        self.workdir = workdir
        self.node_id = node_id
        self.port = port
        self.log_path = workdir / f"node{node_id}.log"
        self.proc: Optional[subprocess.Popen] = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout: float = 60.0) -> "KafkaNode":
        """Starts the JVM and waits until its Kafka port accepts connections."""
        self.spawn()
        self.wait_listening(timeout)
        return self

    def spawn(self) -> None:
        """Starts the JVM without waiting (a node opens its Kafka port only once a quorum is up)."""
        with open(self.log_path, "ab") as logf:
            self.proc = subprocess.Popen(["bash", str(KAFKA_SH), "node", str(self.workdir), str(self.node_id)],
                                         stdin=subprocess.DEVNULL, stdout=logf, stderr=logf)

    def wait_listening(self, timeout: float) -> None:
        def listening():
            if not self.running():
                raise AssertionError(f"Kafka node {self.node_id} exited; see {self.log_path}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return True
            except OSError:
                return False
        _wait_until(listening, timeout, what=f"Kafka node {self.node_id} to listen")

    def kill(self) -> None:
        """SIGKILL, as the Ringlog harness does: no controlled shutdown."""
        if self.running():
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=30)

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM (a controlled shutdown), SIGKILL if it takes longer than `timeout`."""
        if self.running():
            self.proc.terminate()
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()


class KafkaCluster(MetadataView):
    """N Kafka nodes, ids 1..N, in `workdir`; `config` adds broker configs (KAFKA_OVERRIDES)."""

    def __init__(self, workdir: Path, size: int = 3, config: Optional[Dict[str, object]] = None):
        self.workdir = workdir
        self.size = size
        self.config = config or {}
        self.base = _free_base()
        self.brokers: List[KafkaNode] = [KafkaNode(workdir, n, self.base + n * 10) for n in range(1, size + 1)]

    @property
    def bootstrap(self) -> str:
        return ",".join(b.bootstrap for b in self.brokers if b.running())

    def broker(self, node_id: int) -> KafkaNode:
        return self.brokers[node_id - 1]

    def start(self, timeout: float = 90.0) -> "KafkaCluster":
        """Fetches the jars if needed, formats every node, starts them all and waits until every
        broker is registered (a node waits for a controller quorum before it is ready)."""
        overrides = " ".join(f"{k}={v}" for k, v in self.config.items())
        env = {**os.environ, "KAFKA_OVERRIDES": overrides}
        subprocess.run(["bash", str(KAFKA_SH), "format", str(self.size), str(self.workdir), str(self.base)],
                       env=env, check=True)
        # All at once, as a quorum needs; a failed start stops whatever did start.
        try:
            for b in self.brokers:
                b.spawn()
            for b in self.brokers:
                b.wait_listening(timeout)
            _wait_until(lambda: self._broker_count() >= self.size, timeout, interval=0.2,
                        what=f"{self.size} registered Kafka brokers")
        except BaseException:
            self.cleanup()
            raise
        return self

    def _broker_count(self) -> int:
        try:
            return len(self.admin().list_topics(timeout=5).brokers)
        except Exception:
            return 0

    def cleanup(self):
        """Stops every node (all at once: the quorum goes away together)."""
        for b in self.brokers:
            if b.running():
                b.proc.terminate()
        for b in self.brokers:
            b.stop(timeout=30)
