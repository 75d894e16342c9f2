"""Shared fixtures and helpers for Ringlog's end-to-end tests.

Every test starts its own real `ringlog` broker process (binary from $RINGLOG_BIN, default
target/release/ringlog) on its own free port with its own data directory, and drives it with real
Kafka clients (kcat, confluent-kafka, kafka-python) or hand-built protocol frames. Nothing is mocked.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.request
from pathlib import Path
from typing import Callable, Dict, Iterable, Iterator, List, Optional

import pytest
from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, NewTopic

REPO_ROOT = Path(__file__).resolve().parents[2]
RINGLOG_BIN = Path(os.environ.get("RINGLOG_BIN", REPO_ROOT / "target" / "release" / "ringlog"))
DEFAULT_CORES = int(os.environ.get("RINGLOG_TEST_CORES", "1"))
# Hard per-test limit (seconds); a hung client or broker fails the test instead of hanging CI.
TEST_TIMEOUT_S = int(os.environ.get("RINGLOG_TEST_TIMEOUT", "600"))
READY_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 30.0

# A group.id that librdkafka insists on for consumers; consumers here only use assign(), never join.
UNUSED_GROUP = "ringlog-e2e-unused-group"

_ANSI_RE = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")
_FIELD_RE = re.compile(r'([A-Za-z_][A-Za-z0-9_.]*)=("(?:[^"\\]|\\.)*"|\S+)')


def strip_ansi(text: str) -> str:
    return _ANSI_RE.sub("", text)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    raise TypeError(f"unsupported TOML value {v!r}")


def render_config(config: Dict[str, object]) -> str:
    """Broker config file: top-level quoted Kafka config names."""
    return "".join(f'"{k}" = {_toml_value(v)}\n' for k, v in config.items())


def parse_log_events(text: str, message: str) -> List[Dict[str, str]]:
    """Fields of every log line whose event message is `message` (tracing fmt: `... message k=v k="v"`).

    Only the fields after the message are taken, so span fields in the line prefix are ignored.
    Quoted values (tracing prints &str fields with Debug) are unquoted.
    """
    pat = re.compile(r"(?:^|[\s:])" + re.escape(message) + r"(?=\s|$)(.*)$")
    events = []
    for line in strip_ansi(text).splitlines():
        m = None
        for m in pat.finditer(line):
            pass
        if m is None:
            continue
        fields = {}
        for k, v in _FIELD_RE.findall(m.group(1)):
            if len(v) >= 2 and v[0] == '"' and v[-1] == '"':
                v = v[1:-1]
            fields[k] = v
        events.append(fields)
    return events


def wait_until(pred: Callable[[], bool], timeout: float, interval: float = 0.1, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        if pred():
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


class Broker:
    """One real ringlog process: own port, own data dir, stderr captured to a log file."""

    def __init__(
        self,
        workdir: Path,
        cores: int = DEFAULT_CORES,
        config: Optional[Dict[str, object]] = None,
        rust_log: str = "info",
        env: Optional[Dict[str, str]] = None,
        advertised_port: Optional[int] = None,
        extra_args: Optional[List[str]] = None,
        listen_flags: bool = True,
        listeners: Optional[str] = None,
    ):
        if not RINGLOG_BIN.exists():
            pytest.fail(f"ringlog binary not found at {RINGLOG_BIN} (build with cargo build --release or set RINGLOG_BIN)")
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.admin_port = free_port()  # /metrics and /health
        # Clients bootstrap from, and the broker advertises, this port; a TcpProxy may sit on it.
        self.advertised_port = advertised_port or self.port
        self.data_dir = self.workdir / "data"
        self.data_dir.mkdir(exist_ok=True)
        self.log_path = self.workdir / "broker.log"
        self.cores = cores
        self.config_path: Optional[Path] = None
        self.extra_args = list(extra_args or [])
        # Without the flags, the listener comes from the `listeners` config (advertised follows it).
        self.listen_flags = listen_flags
        # With listen_flags off: the whole `listeners` value (a cluster node adds its CONTROLLER).
        self.listeners = listeners or f"PLAINTEXT://127.0.0.1:{self.port}"
        # Where this process's listeners and admin port are reached (a network namespace's
        # broker, tests/e2e/netns.py, has its own address).
        self.host = "127.0.0.1"
        if config is not None:
            self.config_path = self.workdir / "ringlog.toml"
            self.config_path.write_text(render_config(config))
        self.env = dict(os.environ)
        self.env["RUST_LOG"] = rust_log
        self.env["NO_COLOR"] = "1"
        self.env.setdefault("RUST_BACKTRACE", "1")
        if env:
            self.env.update(env)
        self.proc: Optional[subprocess.Popen] = None
        self.starts = 0

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.advertised_port}"

    def command(self) -> List[str]:
        if self.listen_flags:
            listen = ["--listen", f"127.0.0.1:{self.port}", "--advertised-listener", f"127.0.0.1:{self.advertised_port}"]
        else:
            listen = ["--override", f"listeners={self.listeners}"]
        cmd = [
            str(RINGLOG_BIN), "serve", *listen,
            "--data-dir", str(self.data_dir),
            "--cores", str(self.cores),
            "--admin-listen", f"{self.host}:{self.admin_port}",
        ]
        if self.config_path is not None:
            cmd += ["--config", str(self.config_path)]
        cmd += self.extra_args
        # Kill the broker if the test runner itself dies, so no orphan keeps the port or a core.
        if shutil.which("setpriv"):
            cmd = ["setpriv", "--pdeathsig", "KILL", "--"] + cmd
        return cmd

    def start(self, timeout: float = READY_TIMEOUT_S) -> "Broker":
        assert not self.running(), "broker already running"
        self.starts += 1
        with open(self.log_path, "ab") as logf:
            logf.write(f"===== ringlog start #{self.starts}: {' '.join(self.command())}\n".encode())
            logf.flush()
            self.proc = subprocess.Popen(
                self.command(), stdin=subprocess.DEVNULL, stdout=logf, stderr=logf, env=self.env,
                cwd=str(self.workdir),
            )
        self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float = READY_TIMEOUT_S):
        deadline = time.monotonic() + timeout
        while True:
            if self.proc is None or self.proc.poll() is not None:
                rc = None if self.proc is None else self.proc.returncode
                raise RuntimeError(f"ringlog exited (rc={rc}) before accepting connections:\n{self.log_tail(60)}")
            # /health answers 200 only once every shard listens (503 while shards recover).
            try:
                with socket.create_connection((self.host, self.admin_port), timeout=0.5) as s:
                    s.sendall(b"GET /health HTTP/1.0\r\n\r\n")
                    if s.recv(64).startswith(b"HTTP/1.1 200"):
                        return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"ringlog not accepting on {self.host}:{self.port} after {timeout}s:\n{self.log_tail(60)}")
            time.sleep(0.05)

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> Optional[int]:
        """SIGTERM and wait (SIGKILL if it does not exit in time). Returns the exit status."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=timeout)
                raise AssertionError(f"ringlog did not exit within {timeout}s of SIGTERM")
        return self.proc.returncode

    def kill(self) -> None:
        """SIGKILL: no chance to flush anything that was not already durable."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=STOP_TIMEOUT_S)

    def restart(self, kill: bool = False, timeout: float = READY_TIMEOUT_S) -> "Broker":
        """Stop (SIGTERM, or SIGKILL when kill=True) and start again on the same port and data dir."""
        if kill:
            self.kill()
        else:
            self.stop()
        return self.start(timeout)

    def cleanup(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            try:
                self.stop(timeout=10)
            except Exception:
                self.proc.kill()
                self.proc.wait(timeout=10)

    def log_text(self) -> str:
        try:
            return strip_ansi(self.log_path.read_text(errors="replace"))
        except FileNotFoundError:
            return ""

    def log_tail(self, n: int = 80) -> str:
        return "\n".join(self.log_text().splitlines()[-n:])

    def assert_alive(self):
        assert self.running(), f"ringlog died (rc={self.proc.returncode if self.proc else None}):\n{self.log_tail(60)}"
        with socket.create_connection((self.host, self.port), timeout=5):
            pass


class TcpProxy:
    """Loopback TCP proxy in front of a broker, for faults a client cannot tell from a network
    failure. cut() drops the next broker->client chunk (in practice: a Produce response, sent after
    the broker made the batch durable) and closes that connection, so the client retries requests
    the broker has already appended. With hold=True new connections are refused until release()."""

    def __init__(self, target_port: int):
        self.target_port = target_port
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(64)
        self.port = self.lsock.getsockname()[1]
        self.lock = threading.Lock()
        self.pairs: List[tuple] = []
        self.hold = False
        self.closed = False
        self.cuts = 0
        self._cut_pending = threading.Event()
        self._cut_done = threading.Event()
        threading.Thread(target=self._accept_loop, daemon=True).start()

    def _accept_loop(self):
        while not self.closed:
            try:
                client, _ = self.lsock.accept()
            except OSError:
                return
            if self.hold or self.closed:
                client.close()
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            for sock in (client, upstream):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            pair = (client, upstream)
            with self.lock:
                self.pairs.append(pair)
            threading.Thread(target=self._pump, args=(client, upstream, pair, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, pair, True), daemon=True).start()

    def _close_pair(self, pair):
        with self.lock:
            if pair in self.pairs:
                self.pairs.remove(pair)
        for sock in pair:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()

    def _pump(self, src, dst, pair, from_broker):
        while True:
            try:
                data = src.recv(65536)
            except OSError:
                break
            if not data:
                break
            if from_broker and self._cut_pending.is_set():
                with self.lock:
                    cut = self._cut_pending.is_set()
                    self._cut_pending.clear()
                if cut:
                    self.cuts += 1
                    self._close_pair(pair)
                    self._cut_done.set()
                    return
            try:
                dst.sendall(data)
            except OSError:
                break
        self._close_pair(pair)

    def cut(self, hold: bool = False, timeout: float = 30.0) -> None:
        self.hold = hold
        self._cut_done.clear()
        self._cut_pending.set()
        if not self._cut_done.wait(timeout):
            self._cut_pending.clear()
            raise AssertionError(f"no broker->client traffic to cut within {timeout}s")

    def release(self) -> None:
        self.hold = False

    def close(self) -> None:
        self.closed = True
        self.lsock.close()
        with self.lock:
            pairs = list(self.pairs)
        for pair in pairs:
            self._close_pair(pair)


# ----------------------------------------------------------------------------------------------
# pytest plumbing: per-test broker factory, hard timeout, broker log on failure
# ----------------------------------------------------------------------------------------------

@pytest.fixture
def broker_factory(tmp_path, request) -> Iterator[Callable[..., Broker]]:
    """broker_factory(cores=1, config=None, rust_log='info') -> started Broker. All are cleaned up."""
    brokers: List[Broker] = []
    request.node._ringlog_brokers = brokers

    def make(start: bool = True, **kwargs) -> Broker:
        b = Broker(tmp_path / f"broker{len(brokers)}", **kwargs)
        brokers.append(b)
        if start:
            b.start()
        return b

    try:
        yield make
    finally:
        for b in brokers:
            b.cleanup()
        # Keep a failed test's data for inspection; drop a passed test's (the 1M-record test writes
        # ~100 MB, and pytest keeps the last three runs' temp dirs).
        if not getattr(request.node, "_ringlog_failed", False):
            for b in brokers:
                shutil.rmtree(b.data_dir, ignore_errors=True)


@pytest.fixture
def proxied_broker(broker_factory) -> Iterator[tuple]:
    """(broker, proxy): a started broker that advertises, and is reached only through, a TcpProxy."""
    b = broker_factory(start=False)
    proxy = TcpProxy(b.port)
    b.advertised_port = proxy.port
    try:
        b.start()
        yield b, proxy
    finally:
        proxy.close()


@pytest.fixture
def broker(broker_factory) -> Broker:
    return broker_factory()


class _TestTimeout(Exception):
    pass


@pytest.fixture(autouse=True)
def _hard_timeout():
    def on_alarm(signum, frame):
        raise _TestTimeout(f"test exceeded {TEST_TIMEOUT_S}s (RINGLOG_TEST_TIMEOUT)")

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(TEST_TIMEOUT_S)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.failed:
        item._ringlog_failed = True
        for b in getattr(item, "_ringlog_brokers", []):
            rep.sections.append((f"ringlog log {b.log_path} (last 80 lines)", b.log_tail(80)))


# ----------------------------------------------------------------------------------------------
# Kafka client helpers (confluent-kafka)
# ----------------------------------------------------------------------------------------------

def admin_for(broker: Broker) -> AdminClient:
    return AdminClient({"bootstrap.servers": broker.bootstrap, "socket.timeout.ms": 10000})


def error_of(fut, timeout: float = 15.0) -> Optional[KafkaError]:
    """The KafkaError an admin future fails with, or None when it succeeds."""
    try:
        fut.result(timeout=timeout)
    except KafkaException as e:
        return e.args[0]
    return None


def create_topics(broker: Broker, topics: Dict[str, int], config: Optional[Dict[str, str]] = None,
                  timeout: float = 30.0) -> None:
    """Create topics {name: num_partitions} through AdminClient.create_topics and wait for the
    futures, then wait until metadata shows every partition with leader 0."""
    admin = admin_for(broker)
    new = [NewTopic(name, num_partitions=n, replication_factor=1, config=dict(config or {}))
           for name, n in topics.items()]
    futures = admin.create_topics(new, operation_timeout=timeout, request_timeout=timeout)
    for name, fut in futures.items():
        fut.result(timeout=timeout)  # raises KafkaException on a per-topic error
    for name, n in topics.items():
        wait_for_topic(broker, name, n, timeout=timeout, admin=admin)


def create_topic(broker: Broker, name: str, num_partitions: int, config: Optional[Dict[str, str]] = None,
                 timeout: float = 30.0) -> None:
    create_topics(broker, {name: num_partitions}, config=config, timeout=timeout)


def wait_for_topic(broker: Broker, name: str, num_partitions: int, timeout: float = 30.0,
                   admin: Optional[AdminClient] = None) -> None:
    admin = admin or admin_for(broker)
    last = None

    def ready():
        nonlocal last
        md = admin.list_topics(topic=name, timeout=10)
        t = md.topics.get(name)
        last = t
        if t is None or t.error is not None or len(t.partitions) != num_partitions:
            return False
        return all(p.leader == 0 and p.error is None for p in t.partitions.values())

    try:
        wait_until(ready, timeout, interval=0.2, what=f"topic {name} with {num_partitions} partitions")
    except AssertionError as e:
        raise AssertionError(f"{e}; last metadata: {last!r} "
                             f"{getattr(last, 'error', None)} {getattr(last, 'partitions', None)}") from None


def producer_conf(broker: Broker, **extra) -> dict:
    conf = {
        "bootstrap.servers": broker.bootstrap,
        "acks": "all",
        "linger.ms": 5,
        "reconnect.backoff.ms": 50,
        "reconnect.backoff.max.ms": 1000,
    }
    conf.update(extra)
    return conf


def consumer_conf(broker: Broker, **extra) -> dict:
    conf = {
        "bootstrap.servers": broker.bootstrap,
        "group.id": UNUSED_GROUP,  # required by librdkafka; we never subscribe(), so no group join
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        "enable.partition.eof": False,
        "reconnect.backoff.ms": 50,
        "reconnect.backoff.max.ms": 1000,
    }
    conf.update(extra)
    return conf


def high_watermarks(broker: Broker, topic: str, partitions: Iterable[int], timeout: float = 15.0,
                    consumer: Optional[Consumer] = None) -> Dict[int, int]:
    own = consumer is None
    c = consumer or Consumer(consumer_conf(broker))
    try:
        return {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout, cached=False)[1]
                for p in partitions}
    finally:
        if own:
            c.close()


def consume_batches(broker: Broker, topic: str, partitions: Iterable[int], timeout: float = 180.0,
                    batch: int = 10000, **conf_extra) -> Iterator[list]:
    """Read every partition from the beginning up to its high watermark (taken at start) with
    assign() and no group; yields lists of confluent_kafka.Message. A message error fails the test.
    Asserts that every partition reached its high watermark before `timeout`."""
    partitions = list(partitions)
    c = Consumer(consumer_conf(broker, **conf_extra))
    try:
        highs = high_watermarks(broker, topic, partitions, consumer=c)
        next_off = {p: 0 for p in partitions}
        c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        pending = {p for p in partitions if highs[p] > 0}
        deadline = time.monotonic() + timeout
        while pending:
            if time.monotonic() > deadline:
                raise AssertionError(f"consume timed out: high watermarks {highs}, next offsets {next_off}")
            msgs = c.consume(num_messages=batch, timeout=1.0)
            good = []
            for m in msgs:
                err = m.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        continue
                    raise AssertionError(f"consumer error on {m.topic()}[{m.partition()}]: {err}")
                p = m.partition()
                next_off[p] = m.offset() + 1
                good.append(m)
            for p in list(pending):
                if next_off[p] >= highs[p]:
                    pending.discard(p)
            if good:
                yield good
    finally:
        c.close()


def consume_all(broker: Broker, topic: str, partitions: Iterable[int], timeout: float = 180.0,
                **conf_extra) -> Dict[int, List[tuple]]:
    """{partition: [(offset, key, value), ...]} for everything up to the high watermarks."""
    out: Dict[int, List[tuple]] = {p: [] for p in partitions}
    for msgs in consume_batches(broker, topic, list(out), timeout=timeout, **conf_extra):
        for m in msgs:
            out[m.partition()].append((m.offset(), m.key(), m.value()))
    return out


def read_until_idle(broker: Broker, topic: str, partitions: Iterable[int], isolation: str = "read_uncommitted",
                    idle_s: float = 2.0) -> list:
    """Every message of `partitions` from the beginning until nothing new arrives for idle_s
    (a read_committed reader never reaches a high watermark that ends in a marker). A message
    error fails the test."""
    c = Consumer(consumer_conf(broker, **{"isolation.level": isolation}))
    try:
        c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        out = []
        idle_until = time.monotonic() + idle_s
        while time.monotonic() < idle_until:
            for m in c.consume(num_messages=1000, timeout=0.2):
                assert m.error() is None, f"consumer error on {m.topic()}[{m.partition()}]: {m.error()}"
                out.append(m)
                idle_until = time.monotonic() + idle_s
        return out
    finally:
        c.close()


def metric_total(broker: Broker, name: str, label: str = "") -> float:
    """A counter from the broker's /metrics, summed over its shards (and over the series whose
    labels include `label`, e.g. 'api_key="1"')."""
    with urllib.request.urlopen(f"http://127.0.0.1:{broker.admin_port}/metrics", timeout=10) as r:
        text = r.read().decode()
    series = re.findall(r"^" + re.escape(name) + r"\{([^}]*)\} (\S+)$", text, re.M)
    return sum(float(v) for labels, v in series if label in labels)


def journal_files(broker: Broker) -> List[Path]:
    """The broker's append journals in /dev/shm (the default `append_journal_dir`): each names its
    data directory in its header page."""
    owner = str(broker.data_dir.resolve()).encode()
    return [j for j in Path("/dev/shm").glob("ringlog-*.journal") if owner in j.read_bytes()[:4096]]


_health_seq = [0]


def assert_clients_work(broker: Broker, n: int = 20) -> None:
    """A fresh confluent-kafka producer and consumer (new connections) can create a topic, produce
    and read back n records: the broker is up and serving other clients."""
    broker.assert_alive()
    _health_seq[0] += 1
    topic = f"health-{_health_seq[0]}-{int(time.time() * 1000) % 100000}"
    create_topic(broker, topic, 1)
    p = Producer(producer_conf(broker))
    results = []
    for i in range(n):
        p.produce(topic, value=b"health-%d" % i, key=b"k%d" % i, partition=0,
                  on_delivery=lambda err, msg: results.append(err))
    remaining = p.flush(30)
    assert remaining == 0, f"{remaining} health records not delivered"
    assert results == [None] * n, f"health delivery errors: {results}"
    got = consume_all(broker, topic, [0], timeout=60)[0]
    assert [(o, v) for o, _k, v in got] == [(i, b"health-%d" % i) for i in range(n)]


def clusters_of(cls, tmp_path, request, prefix: str):
    """Body of a cluster fixture: yields make(size=3, start=True, **kwargs) -> a `cls` cluster in
    its own directory, its brokers' logs shown when the test fails; all are cleaned up."""
    clusters = []

    def make(size: int = 3, start: bool = True, **kwargs):
        c = cls(tmp_path / f"{prefix}{len(clusters)}", size=size, **kwargs)
        clusters.append(c)
        request.node._ringlog_brokers = [b for cl in clusters for b in cl.brokers]
        if start:
            c.start()
        return c

    try:
        yield make
    finally:
        for c in clusters:
            c.cleanup()


@pytest.fixture
def cluster_factory(tmp_path, request):
    """cluster_factory(size=3, config=None) -> a started Cluster (tests/e2e/cluster.py). All are cleaned up."""
    from cluster import Cluster

    yield from clusters_of(Cluster, tmp_path, request, "cluster")
