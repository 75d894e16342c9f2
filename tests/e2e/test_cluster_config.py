"""The cluster settings as KRaft names them. Combined nodes are served, alone or as voters of a
quorum (tests/e2e/test_cluster_failover.py runs three), and so are broker-only and controller-only
nodes (tests/e2e/test_cluster_roles.py); a configuration Kafka refuses, or this build cannot serve
(a controller of a quorum named only by bootstrap servers), stops the start with one line, instead
of starting a node that would run alone while its operator believes it is replicated.
`default.replication.factor` decides a new topic's replicas, and more than the registered
brokers is refused, as in Kafka."""

import subprocess

import pytest
from kafka.admin import KafkaAdminClient

import kafka_wire as kw
from conftest import strip_ansi

ERR_INVALID_REPLICATION_FACTOR = 38


@pytest.mark.parametrize("overrides, named", [
    (["process.roles=broker"], "process.roles=broker: name the quorum in controller.quorum.voters"),
    (["process.roles=controller"], "process.roles=controller: name the quorum in controller.quorum.voters"),
    (["process.roles=broker", "controller.quorum.voters=0@127.0.0.1:19093"],
     "process.roles=broker: node.id 0 must not be among controller.quorum.voters (0)"),
    (["process.roles=controller", "controller.quorum.voters=0@127.0.0.1:19093", "controller.listener.names=CONTROLLER"],
     "process.roles=controller: listeners may name only controller listeners (controller.listener.names=CONTROLLER); found PLAINTEXT"),
    (["controller.quorum.voters=3@127.0.0.1:19093"], "node.id 0 is not among controller.quorum.voters (3)"),
    (["controller.quorum.bootstrap.servers=127.0.0.1:19093"],
     "a controller of a quorum known only by bootstrap servers is not served yet"),
])
def test_a_quorum_this_build_cannot_serve_stops_the_start(broker_factory, overrides, named):
    b = broker_factory(start=False)
    for o in overrides:
        b.extra_args += ["--override", o]
    done = subprocess.run(b.command(), capture_output=True, timeout=60, env=b.env)
    stderr = strip_ansi(done.stderr.decode(errors="replace"))
    assert done.returncode != 0, (done.returncode, stderr[-1000:])
    assert len([line for line in stderr.splitlines() if named in line]) == 1, stderr[-1000:]


def test_a_single_voter_quorum_of_this_node_is_served(broker_factory):
    b = broker_factory(config={"process.roles": "broker,controller", "controller.quorum.voters": "0@127.0.0.1:19093",
                               "controller.listener.names": "CONTROLLER"})
    admin = KafkaAdminClient(bootstrap_servers=b.bootstrap, client_id="quorum-of-one")
    try:
        created = admin.create_topics({"served": {"num_partitions": 2}}, raise_errors=False)
        assert created["topics"][0]["error_code"] == 0, created
    finally:
        admin.close()


def test_default_replication_factor_beyond_the_brokers_is_refused(broker_factory):
    b = broker_factory(config={"default.replication.factor": 3})
    admin = KafkaAdminClient(bootstrap_servers=b.bootstrap, client_id="rf-default")
    try:
        # -1 asks for the default: three replicas, on a cluster of one broker.
        refused = admin.create_topics({"three-copies": {"num_partitions": 1}}, raise_errors=False)
        assert refused["topics"][0]["error_code"] == ERR_INVALID_REPLICATION_FACTOR, refused
        # An explicit factor of one still works.
        one = admin.create_topics({"one-copy": {"num_partitions": 1, "replication_factor": 1}}, raise_errors=False)
        assert one["topics"][0]["error_code"] == 0, one
        assert "three-copies" not in admin.list_topics()
    finally:
        admin.close()
    # Auto-creation follows the same default: Metadata reports the refusal for the topic.
    sock = kw.connect(b.port)
    body = kw.array([kw.string("auto-three")])
    r = kw.Reader(kw.roundtrip(sock, kw.frame(kw.API_METADATA, 1, 1, body)))
    assert r.i32() == 1
    for _ in range(r.i32()):  # brokers: node id, host, port, rack
        r.i32(), r.string(), r.i32(), r.nullable_string()
    r.i32()  # controller id
    assert r.i32() == 1
    assert (r.i16(), r.string()) == (ERR_INVALID_REPLICATION_FACTOR, "auto-three")
    sock.close()
