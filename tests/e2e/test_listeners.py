"""Kafka's listener table: `listeners`, `advertised.listeners`, `listener.security.protocol.map`.

A broker with several PLAINTEXT listeners tells each client the endpoint of the listener that
client came in on (Metadata, DescribeCluster, FindCoordinator), as Kafka does, and serves produce
and consume on every listener. A listener of a protocol Ringlog does not serve yet (SSL, SASL_*),
or one whose name is missing from the protocol map, stops the broker at start-up with one line
naming it.
"""

import socket
import subprocess

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

import kafka_wire as kw
from conftest import TcpProxy, create_topic, free_port, strip_ansi

T = 30
API_METADATA = 3
API_DESCRIBE_CLUSTER = 60


def with_listeners(broker_factory, listeners, protocol_map=None, advertised=None):
    """A broker (not started) whose listener table is set by --override, after the fixture's own."""
    b = broker_factory(start=False, listen_flags=False)
    for key, value in (("listeners", listeners), ("listener.security.protocol.map", protocol_map),
                       ("advertised.listeners", advertised)):
        if value is not None:
            b.extra_args += ["--override", f"{key}={value}"]
    return b


def metadata_brokers(port):
    """Metadata v1 on a fresh connection to `port`: [(node_id, host, port)]."""
    with kw.connect(port) as s:
        data = kw.roundtrip(s, kw.frame(API_METADATA, 1, 7, kw.i32(-1)))
    r = kw.Reader(data)
    assert r.i32() == 7
    brokers = []
    for _ in range(r.i32()):
        brokers.append((r.i32(), r.string(), r.i32()))
        r.nullable_string()  # rack
    return brokers


def describe_cluster_brokers(port):
    """DescribeCluster v0 on a fresh connection to `port`: [(broker_id, host, port)]."""
    with kw.connect(port) as s:
        data = kw.roundtrip(s, kw.flexible_frame(API_DESCRIBE_CLUSTER, 0, 8, kw.i8(0) + kw.NO_TAGS))
    r = kw.Reader(data)
    assert r.i32() == 8
    r.skip_tags()
    r.i32()  # throttle_time_ms
    assert r.i16() == 0, "DescribeCluster error code"
    r.compact_nullable_string()  # error message
    r.compact_string()  # cluster id
    r.i32()  # controller id
    brokers = []
    for _ in range(r.compact_array_len()):
        brokers.append((r.i32(), r.compact_string(), r.i32()))
        r.compact_nullable_string()  # rack
        r.skip_tags()
    return brokers


def coordinator_endpoints(port):
    """FindCoordinator v2 and v4 for a group, on one connection to `port`: [(node_id, host, port)]."""
    with kw.connect(port) as s:
        _, v2 = kw.parse_find_coordinator_v2(
            kw.roundtrip(s, kw.frame(kw.API_FIND_COORDINATOR, 2, 9, kw.find_coordinator_v2_body("g"))))
        _, v4 = kw.parse_find_coordinator_v4(
            kw.roundtrip(s, kw.flexible_frame(kw.API_FIND_COORDINATOR, 4, 10, kw.find_coordinator_v4_body(["g"]))))
    assert v2["error_code"] == 0 and v4[0]["error_code"] == 0, (v2, v4)
    return [(v2["node_id"], v2["host"], v2["port"]), (v4[0]["node_id"], v4[0]["host"], v4[0]["port"])]


def test_each_listener_advertises_its_own_endpoint(broker_factory):
    internal, extra = free_port(), free_port()
    b = with_listeners(
        broker_factory,
        listeners=None,  # set below, once the fixture has picked the first port
        protocol_map="PLAINTEXT:PLAINTEXT,INTERNAL:PLAINTEXT,EXTRA:PLAINTEXT",
        advertised="PLAINTEXT://public.example:19092,INTERNAL://internal.example:29093",
    )
    b.extra_args += ["--override",
                     f"listeners=PLAINTEXT://127.0.0.1:{b.port},internal://127.0.0.1:{internal},EXTRA://127.0.0.1:{extra}"]
    b.start()
    expected = {
        b.port: (0, "public.example", 19092),
        internal: (0, "internal.example", 29093),
        # No advertised.listeners entry: the listener's own address, as Kafka.
        extra: (0, "127.0.0.1", extra),
    }
    for port, endpoint in expected.items():
        assert metadata_brokers(port) == [endpoint], f"Metadata on listener port {port}"
        assert describe_cluster_brokers(port) == [endpoint], f"DescribeCluster on listener port {port}"
        assert coordinator_endpoints(port) == [endpoint, endpoint], f"FindCoordinator on listener port {port}"
    events = [line for line in b.log_text().splitlines() if "shard listening" in line]
    for name in ("PLAINTEXT", "INTERNAL", "EXTRA"):
        assert any(f"listener={name}" in line for line in events), events


def test_clients_on_each_listener_see_it_and_produce_and_consume(broker_factory):
    # Each listener is reached through a proxy on another port and advertises the proxy, so a
    # client that is told the wrong listener's endpoint, or the bind address, would notice.
    internal = free_port()
    b = with_listeners(broker_factory, listeners=None, protocol_map="PLAINTEXT:PLAINTEXT,INTERNAL:PLAINTEXT")
    outer, inner = TcpProxy(b.port), TcpProxy(internal)
    try:
        b.extra_args += [
            "--override", f"listeners=PLAINTEXT://127.0.0.1:{b.port},INTERNAL://127.0.0.1:{internal}",
            "--override", f"advertised.listeners=PLAINTEXT://127.0.0.1:{outer.port},INTERNAL://127.0.0.1:{inner.port}",
        ]
        b.advertised_port = outer.port  # conftest helpers bootstrap through the PLAINTEXT listener
        b.start()
        topic = "two-listeners"
        create_topic(b, topic, 2)
        sent = {}
        for name, proxy in (("plain", outer), ("internal", inner)):
            bootstrap = f"127.0.0.1:{proxy.port}"
            md = AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=T)
            assert [(i, m.host, m.port) for i, m in md.brokers.items()] == [(0, "127.0.0.1", proxy.port)], (name, md.brokers)
            producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5})
            values = [f"{name}-{i}".encode() for i in range(200)]
            for i, v in enumerate(values):
                producer.produce(topic, value=v, partition=i % 2)
            assert producer.flush(T) == 0, f"{name}: messages left unsent"
            sent[name] = values
        everything = sorted(sent["plain"] + sent["internal"])
        for name, proxy in (("plain", outer), ("internal", inner)):
            consumer = Consumer({"bootstrap.servers": f"127.0.0.1:{proxy.port}", "group.id": f"g-{name}",
                                 "enable.auto.commit": False, "auto.offset.reset": "earliest"})
            consumer.assign([TopicPartition(topic, p, 0) for p in (0, 1)])
            got = []
            for _ in range(300):
                got += [m.value() for m in consumer.consume(100, timeout=0.2) if m.error() is None]
                if len(got) >= len(everything):
                    break
            consumer.close()
            assert sorted(got) == everything, f"{name}: consumed {len(got)} of {len(everything)}"
    finally:
        outer.close()
        inner.close()


@pytest.mark.parametrize("listeners_of, protocol_map, named", [
    (lambda a, c: f"PLAINTEXT://127.0.0.1:{a},SSL://127.0.0.1:{c}", None, "listener SSL: security protocol SSL is not supported"),
    (lambda a, c: f"SASL_PLAINTEXT://127.0.0.1:{a}", None, "listener SASL_PLAINTEXT: security protocol SASL_PLAINTEXT is not supported"),
    (lambda a, c: f"PLAINTEXT://127.0.0.1:{a},SECURE://127.0.0.1:{c}", "PLAINTEXT:PLAINTEXT,SECURE:SASL_SSL",
     "listener SECURE: security protocol SASL_SSL is not supported"),
    (lambda a, c: f"PLAINTEXT://127.0.0.1:{a},INTERNAL://127.0.0.1:{c}", None,
     "listener INTERNAL: no security protocol for this name in listener.security.protocol.map"),
    (lambda a, c: f"PLAINTEXT://0.0.0.0:{a}", None,
     "listener PLAINTEXT: advertised.listeners cannot use the nonroutable meta-address 0.0.0.0"),
])
def test_a_listener_that_cannot_be_served_stops_the_start(broker_factory, listeners_of, protocol_map, named):
    other = free_port()
    b = with_listeners(broker_factory, listeners=None, protocol_map=protocol_map)
    b.extra_args += ["--override", f"listeners={listeners_of(b.port, other)}"]
    done = subprocess.run(b.command(), capture_output=True, timeout=60, env=b.env)
    stderr = strip_ansi(done.stderr.decode(errors="replace"))
    assert done.returncode != 0, (done.returncode, stderr[-1000:])
    lines = [line for line in stderr.splitlines() if named in line]
    assert len(lines) == 1, f"want one line naming the listener ({named!r}):\n{stderr[-1000:]}"
    # Nothing was bound on the way.
    for port in (b.port, other):
        with socket.socket() as s:
            assert s.connect_ex(("127.0.0.1", port)) != 0, f"something listens on {port}"
