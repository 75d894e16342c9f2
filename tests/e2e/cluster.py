"""A multi-broker Ringlog cluster for end-to-end tests: N real `ringlog` processes on this machine,
each a combined broker and controller (`process.roles=broker,controller`) and a voter of one
`controller.quorum.voters`, with its own Kafka port, controller port, admin port and data dir.
`roles` gives each node its own `process.roles` instead: controller-only nodes listen on their
controller port only; broker-only nodes are not voters (they join as learners), and listen on a
CONTROLLER port too unless `learner_listener=False` (they then bind an ephemeral one), and know
the quorum by `controller.quorum.bootstrap.servers` alone when `learner_bootstrap=True`.

Timeouts are shortened from Kafka's defaults (heartbeat 2 s, session 9 s, replica lag 30 s) so a
failover happens within a test's patience; the code paths are the same.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Dict, List, Optional

from confluent_kafka.admin import AdminClient

from conftest import Broker, free_port, wait_until

FAST_FAILOVER = {
    "broker.heartbeat.interval.ms": 200,
    "broker.session.timeout.ms": 2000,
    "replica.lag.time.max.ms": 3000,
}


class MetadataView:
    """What a cluster with a `bootstrap` address answers through Kafka's Metadata; Ringlog's
    Cluster and perf/kafka_cluster.py's KafkaCluster share it."""

    def admin(self) -> AdminClient:
        return AdminClient({"bootstrap.servers": self.bootstrap})

    def partition_state(self, topic: str) -> Dict[int, dict]:
        """{partition: {leader, replicas, isrs}} as Metadata reports it."""
        md = self.admin().list_topics(topic=topic, timeout=10)
        t = md.topics[topic]
        return {p: {"leader": pm.leader, "replicas": list(pm.replicas), "isrs": list(pm.isrs)}
                for p, pm in t.partitions.items()}


class Cluster(MetadataView):
    """N combined nodes, ids 1..N. `start()` starts them all and waits for one active controller."""

    def __init__(self, workdir: Path, size: int = 3, config: Optional[Dict[str, object]] = None, cores: int = 1,
                 roles: Optional[List[str]] = None, learner_listener: bool = True, learner_bootstrap: bool = False):
        self.brokers: List[Broker] = []
        self.roles = roles or ["broker,controller"] * size
        size = len(self.roles)
        ports = [(free_port(), free_port()) for _ in range(size)]
        voters = ",".join(f"{i + 1}@127.0.0.1:{c}" for i, (_, c) in enumerate(ports) if "controller" in self.roles[i])
        broker_count = sum("broker" in r for r in self.roles)
        for i, (kafka_port, controller_port) in enumerate(ports):
            role = self.roles[i]
            node_config = {
                "node.id": i + 1,
                "process.roles": role,
                # Kafka's default 3 would wait for a third broker that a small roles cluster lacks.
                **({"offsets.topic.replication.factor": min(3, broker_count)} if roles else {}),
                "controller.quorum.voters": voters,
                "controller.listener.names": "CONTROLLER",
                "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
                "inter.broker.listener.name": "PLAINTEXT",
                **FAST_FAILOVER,
                **(config or {}),
            }
            if role == "broker" and learner_bootstrap:
                del node_config["controller.quorum.voters"]
                node_config["controller.quorum.bootstrap.servers"] = ",".join(
                    f"127.0.0.1:{c}" for j, (_, c) in enumerate(ports) if "controller" in self.roles[j])
            b = Broker(workdir / f"node{i + 1}", cores=cores, config=node_config, listen_flags=False)
            b.port = kafka_port
            b.advertised_port = kafka_port
            b.listeners = f"PLAINTEXT://127.0.0.1:{kafka_port},CONTROLLER://127.0.0.1:{controller_port}"
            if role == "controller":
                b.listeners = f"CONTROLLER://127.0.0.1:{controller_port}"
            elif role == "broker" and not learner_listener:
                b.listeners = f"PLAINTEXT://127.0.0.1:{kafka_port}"
            b.roles = role
            b.node_id = i + 1
            b.controller_port = controller_port
            self.brokers.append(b)

    @property
    def bootstrap(self) -> str:
        return ",".join(b.bootstrap for b in self.brokers if b.running() and "broker" in getattr(b, "roles", "broker"))

    def broker(self, node_id: int) -> Broker:
        return self.brokers[node_id - 1]

    def start(self, timeout: float = 60.0) -> "Cluster":
        # All at once: a node waits for a quorum before it is ready.
        for b in self.brokers:
            b.starts += 1
            with open(b.log_path, "ab") as logf:
                import subprocess

                b.proc = subprocess.Popen(b.command(), stdin=subprocess.DEVNULL, stdout=logf, stderr=logf,
                                          env=b.env, cwd=str(b.workdir))
        for b in self.brokers:
            b.wait_ready(timeout)
        self.wait_for_brokers(sum("broker" in getattr(b, "roles", "broker") for b in self.brokers), timeout)
        self.wait_for_offsets_topic(timeout)
        return self

    def wait_for_offsets_topic(self, timeout: float = 30.0):
        """The active controller creates __consumer_offsets once enough brokers are up; groups
        have coordinators once every partition of it has a leader."""
        def ready():
            try:
                admin = self.admin()
                # All topics: asking for this one by name would ask the broker to create it.
                t = admin.list_topics(timeout=5).topics.get("__consumer_offsets")
                return t is not None and t.error is None and len(t.partitions) > 0 \
                    and all(p.leader >= 0 for p in t.partitions.values())
            except Exception:
                return False
        wait_until(ready, timeout, interval=0.2, what="__consumer_offsets with a leader for every partition")

    def live_brokers(self) -> List[int]:
        """Broker ids the cluster's metadata lists (fenced brokers are left out, as in Kafka)."""
        admin = self.admin()
        md = admin.list_topics(timeout=10)
        return sorted(md.brokers.keys())

    def wait_for_brokers(self, count: int, timeout: float = 30.0):
        def enough():
            try:
                return len(self.live_brokers()) >= count
            except Exception:
                return False
        wait_until(enough, timeout, interval=0.2, what=f"{count} live brokers in the metadata")

    def cleanup(self):
        for b in self.brokers:
            b.cleanup()
