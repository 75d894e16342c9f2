"""Crash safety: SIGKILL the broker under an acks=all producer, restart it, and check that every
acknowledged record survived (plain producer), or survived exactly once and in order (idempotent)."""

import threading
import time

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, Producer, TopicPartition

from conftest import consume_batches, consumer_conf, create_topic, journal_files, parse_log_events, producer_conf, wait_until


def payload(i: int) -> bytes:
    return b"rec-%010d-" % i + (b"%010d" % i) * 5


def parse_payload(v: bytes) -> int:
    """Index of a well-formed payload; AssertionError for anything malformed."""
    assert v is not None and len(v) == 65 and v.startswith(b"rec-") and v[14:15] == b"-", f"malformed payload {v!r}"
    i = int(v[4:14])
    assert v == payload(i), f"malformed payload {v!r}"
    return i


class NumberedProducer(threading.Thread):
    """Produces payload(0), payload(1), ... to partition i % n_partitions at a bounded rate until
    stopped, then flushes. Delivery callbacks run on this thread (poll/flush)."""

    def __init__(self, broker, topic, n_partitions, rate_per_s=40_000, max_records=2_000_000, **conf):
        super().__init__(daemon=True)
        self.topic = topic
        self.n_partitions = n_partitions
        self.rate = rate_per_s
        self.max_records = max_records
        self.acked = []      # (index, partition, offset) in callback order
        self.failed = []     # (index, error)
        self.client_errors = []
        self.fatal = None
        self.exc = None
        self.produced = 0
        self.remaining = None
        self.stop_evt = threading.Event()
        base = {
            "acks": "all",
            "message.timeout.ms": 120_000,
            "queue.buffering.max.messages": 100_000,
            "error_cb": self._on_error,
        }
        base.update(conf)
        self.producer = Producer(producer_conf(broker, **base))

    def _on_error(self, err):
        self.client_errors.append(err)
        if err.fatal():
            self.fatal = err

    def _on_delivery(self, err, msg):
        i = int(msg.value()[4:14])
        if err is None:
            self.acked.append((i, msg.partition(), msg.offset()))
        else:
            self.failed.append((i, err))

    def run(self):
        p = self.producer
        try:
            i = 0
            chunk = 200
            t0 = time.monotonic()
            while not self.stop_evt.is_set() and i < self.max_records and self.fatal is None:
                try:
                    p.produce(self.topic, payload(i), partition=i % self.n_partitions, on_delivery=self._on_delivery)
                except BufferError:
                    p.poll(0.05)
                    continue
                i += 1
                if i % chunk == 0:
                    p.poll(0)
                    ahead = i / self.rate - (time.monotonic() - t0)
                    if ahead > 0:
                        time.sleep(ahead)
            self.produced = i
            self.remaining = p.flush(150)
        except KafkaException as e:
            self.exc = e
        except Exception as e:  # noqa: BLE001 - surfaced by the test
            self.exc = e

    def wait_acks(self, n, timeout, what):
        """Wait until at least n records are acknowledged; fail early if the producer died."""
        def ok():
            assert self.fatal is None, f"fatal producer error while waiting for {what}: {self.fatal}"
            assert self.exc is None, f"producer raised while waiting for {what}: {self.exc!r}"
            if len(self.acked) >= n:
                return True
            assert self.is_alive(), f"producer thread ended while waiting for {what}"
            return False
        wait_until(ok, timeout, what=what)

    def finish(self, timeout=200):
        self.stop_evt.set()
        self.join(timeout)
        assert not self.is_alive(), "producer thread did not finish"
        assert self.exc is None, f"producer raised: {self.exc!r}"


def read_topic(broker, topic, n_partitions):
    """{partition: [(offset, index)]}, every payload checked for well-formedness, CRCs checked by
    librdkafka (check.crcs=true makes a corrupt batch a consumer error, which fails the read)."""
    out = {p: [] for p in range(n_partitions)}
    for msgs in consume_batches(broker, topic, range(n_partitions), timeout=240, **{"check.crcs": True}):
        for m in msgs:
            out[m.partition()].append((m.offset(), parse_payload(m.value())))
    return out


def check_acked_present(prod, consumed):
    at = {(p, o): i for p, recs in consumed.items() for o, i in recs}
    present = {i for recs in consumed.values() for _o, i in recs}
    assert all(i < prod.produced for i in present), "consumed an index that was never produced"
    for p, recs in consumed.items():
        for o, i in recs:
            assert i % prod.n_partitions == p, f"record {i} found in partition {p}"
    missing = [i for i, _p, _o in prod.acked if i not in present]
    assert not missing, f"{len(missing)} acknowledged records lost, e.g. {missing[:20]}"
    wrong = [(i, p, o, at.get((p, o))) for i, p, o in prod.acked if o >= 0 and at.get((p, o)) != i]
    assert not wrong, f"{len(wrong)} acks name an offset that holds another record, e.g. {wrong[:10]}"


def test_sigkill_keeps_acknowledged_records(broker):
    topic, n_parts = "crash-acks-all", 3
    create_topic(broker, topic, n_parts)
    prod = NumberedProducer(broker, topic, n_parts)
    prod.start()
    try:
        prod.wait_acks(2000, 60, "first acknowledgements")
        time.sleep(1.5)
        broker.kill()
        acked_at_kill = len(prod.acked)
        time.sleep(0.5)
        broker.start()
        # The producer must recover on its own (reconnect + retry) and get new acks.
        prod.wait_acks(acked_at_kill + 5000, 90, "acks after restart")
        time.sleep(1.0)
    finally:
        prod.finish()
    assert prod.remaining == 0, f"{prod.remaining} records left undelivered after flush"
    assert prod.fatal is None, f"fatal producer error {prod.fatal}"
    assert len(prod.acked) > acked_at_kill > 0

    consumed = read_topic(broker, topic, n_parts)
    check_acked_present(prod, consumed)


def test_idempotent_producer_exactly_once_across_sigkills(proxied_broker):
    """Idempotent producer through a TCP proxy. Three faults, each followed by the producer making
    progress again: (1) a Produce response is dropped and the connection cut, so the producer retries
    batches the broker already appended (in-memory deduplication); (2) the same, but the broker is
    SIGKILLed and restarted before the retry can reach it (producer state must be recovered from the
    log); (3) a plain SIGKILL + restart; (4) as (2), but a clean stop (SIGTERM), after which start-up
    reads the producer state from its snapshot instead of the log. Afterwards every record is in the
    log exactly once, in order."""
    broker, proxy = proxied_broker
    topic = "crash-idempotent"
    create_topic(broker, topic, 1)
    prod = NumberedProducer(broker, topic, 1, rate_per_s=30_000, **{
        "enable.idempotence": True,
        "max.in.flight.requests.per.connection": 5,
    })
    prod.start()
    try:
        prod.wait_acks(2000, 60, "first acknowledgements")
        for fault in ("cut", "cut+kill", "kill", "cut+stop"):
            time.sleep(1.0)
            acked_before = len(prod.acked)
            if fault == "cut":
                proxy.cut()
            elif fault in ("cut+kill", "cut+stop"):
                proxy.cut(hold=True)
                if fault == "cut+kill":
                    broker.kill()
                else:
                    assert broker.stop() == 0, broker.log_tail()
                broker.start()
                proxy.release()
            else:
                broker.kill()
                time.sleep(0.3)
                broker.start()
            prod.wait_acks(acked_before + 3000, 90, f"acks after fault {fault!r}")
        time.sleep(1.0)
    finally:
        prod.finish()
    assert proxy.cuts == 3
    assert prod.fatal is None, f"fatal idempotent-producer error: {prod.fatal}"
    assert prod.remaining == 0, f"{prod.remaining} records left undelivered after flush"

    consumed = read_topic(broker, topic, 1)
    seq = [i for _o, i in consumed[0]]
    # Exactly once and in produced order: the log holds strictly increasing indices.
    dups = len(seq) - len(set(seq))
    assert dups == 0, f"{dups} duplicated records in the log"
    assert all(a < b for a, b in zip(seq, seq[1:])), "records out of produced order"
    assert [o for o, _i in consumed[0]] == list(range(len(seq))), "offsets not dense from 0"
    check_acked_present(prod, consumed)
    # The acks, taken in the order the callbacks fired, are in produced order too.
    acked_idx = [i for i, _p, _o in prod.acked]
    assert acked_idx == sorted(acked_idx), "delivery reports out of order"
    # With idempotence and a 120 s message timeout, every record must get through.
    assert prod.failed == [], f"{len(prod.failed)} records failed, e.g. {prod.failed[:5]}"
    assert len(prod.acked) == prod.produced == len(seq)


class TailingConsumer(threading.Thread):
    """Reads the topic from the beginning as it grows, recording {(partition, offset): index}."""

    def __init__(self, broker, topic, n_partitions):
        super().__init__(daemon=True)
        self.consumer = Consumer(consumer_conf(broker, **{"fetch.wait.max.ms": 10, "check.crcs": True}))
        self.consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(n_partitions)])
        self.seen = {}
        self.errors = []
        self.stop_evt = threading.Event()

    def run(self):
        while not self.stop_evt.is_set():
            for m in self.consumer.consume(num_messages=1000, timeout=0.05):
                if m.error() is None:
                    self.seen[(m.partition(), m.offset())] = parse_payload(m.value())
                else:
                    self.errors.append(m.error())
        self.consumer.close()


def test_records_a_consumer_saw_survive_a_sigkill(broker_factory):
    """The append journal (on by default, in /dev/shm) lets a consumer read a record before its
    O_DIRECT write completes, yet no record a consumer has seen may vanish when the broker process
    dies: the next start writes back what the journal holds. Each segment write is held back
    200 ms (fault injection), so when the broker is SIGKILLed under a producer and a tailing
    consumer, the consumer has certainly seen records that are not written yet. After the restart,
    every record the consumer saw must be there, at the offset it was seen at, and the restart's
    log must say it wrote batches back. Two rounds: the second crash hits a log that already holds
    written-back batches."""
    broker = broker_factory(cores=1, config={"fault_injection_write_delay_ms": 200})
    topic, n_parts = "crash-seen-records", 4
    create_topic(broker, topic, n_parts)
    assert len(journal_files(broker)) == 1, "the default append journal lives in /dev/shm"
    replayed = "appended batches the crashed broker had not written, from its append journal"
    for round_no in (1, 2):
        prod = NumberedProducer(broker, topic, n_parts, rate_per_s=20_000, **{"linger.ms": 1})
        tail = TailingConsumer(broker, topic, n_parts)
        tail.start()
        prod.start()
        try:
            wait_until(lambda: len(tail.seen) > 10_000 * round_no, 60, what="the consumer to tail the log")
            broker.kill()
            time.sleep(0.3)
        finally:
            tail.stop_evt.set()
            tail.join(30)
            # No retries after the restart: they would produce the lost records again, at the
            # same offsets, and hide the loss.
            prod.producer.purge()
            prod.finish()
        seen = dict(tail.seen)
        before = len(parse_log_events(broker.log_text(), replayed))
        broker.start()
        events = parse_log_events(broker.log_text(), replayed)[before:]
        assert not tail.errors, f"consumer errors: {tail.errors[:5]}"
        assert sum(int(e["batches"]) for e in events) > 0, f"round {round_no}: nothing written back; the kill caught no unwritten batch"
        now = {(p, o): i for p, recs in read_topic(broker, topic, n_parts).items() for o, i in recs}
        lost = [(k, i) for k, i in seen.items() if now.get(k) != i]
        assert not lost, f"round {round_no}: {len(lost)} of {len(seen)} records the consumer saw are gone or changed, e.g. {lost[:10]}"
