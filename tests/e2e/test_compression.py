"""compression.type against the real binary: a topic set to a codec stores every batch with it,
whatever the producer sent, and kcat, confluent-kafka, kafka-python and the Java client all read
them back; `producer` keeps the producer's codec. Compressed batches are checked record by record
(a keyless record in a compressed batch on a compacted topic is refused)."""

import json
import struct
import subprocess
from pathlib import Path
from typing import List

from confluent_kafka import KafkaException, Producer
from kafka import KafkaConsumer, KafkaProducer

from conftest import REPO_ROOT, consume_all, create_topic, producer_conf

JAR = REPO_ROOT / "tests" / "java" / "target" / "failover-client.jar"
CODECS = {0: "none", 1: "gzip", 2: "snappy", 3: "lz4", 4: "zstd"}


def stored_batches(broker, topic: str, partition: int = 0) -> List[tuple]:
    """(codec, bytes) of every batch in the partition's segment files, in order."""
    batches = []
    for seg in sorted((broker.data_dir / f"{topic}-{partition}").glob("*.log")):
        data, pos = seg.read_bytes(), 0
        while pos + 12 <= len(data):
            length = struct.unpack_from(">i", data, pos + 8)[0]
            if length <= 0 or pos + 12 + length > len(data):
                break
            attributes = struct.unpack_from(">h", data, pos + 21)[0]
            batches.append((CODECS[attributes & 0x07], 12 + length))
            pos += 12 + length
    return batches


def stored_codecs(broker, topic: str, partition: int = 0) -> List[str]:
    """The codec of every batch in the partition's segment files, in order."""
    return [codec for codec, _ in stored_batches(broker, topic, partition)]


def produce_mixed(broker, topic: str) -> List[bytes]:
    """40 records in batches of four codecs: librdkafka (none, snappy, lz4) and kafka-python (gzip)."""
    values = []
    for codec in ("none", "snappy", "lz4"):
        p = Producer(producer_conf(broker, **{"compression.type": codec, "linger.ms": 50}))
        for i in range(10):
            v = f"{codec}-{i}-" + "x" * 200
            values.append(v.encode())
            p.produce(topic, key=f"k{i}", value=v, partition=0)
        assert p.flush(30) == 0
    kp = KafkaProducer(bootstrap_servers=broker.bootstrap, compression_type="gzip", linger_ms=50)
    for i in range(10):
        v = f"gzip-{i}-" + "y" * 200
        values.append(v.encode())
        kp.send(topic, key=f"k{i}".encode(), value=v.encode(), partition=0)
    kp.flush(30)
    kp.close()
    return values


def test_a_zstd_topic_stores_zstd_and_every_client_reads_it(broker_factory):
    broker = broker_factory()
    create_topic(broker, "zstd-topic", 1, config={"compression.type": "zstd"})
    sent = produce_mixed(broker, "zstd-topic")
    assert set(stored_codecs(broker, "zstd-topic")) == {"zstd"}, stored_codecs(broker, "zstd-topic")

    got = [v for (_, _, v) in consume_all(broker, "zstd-topic", [0])[0]]
    assert got == sent, "confluent-kafka reads every record, in order"

    kcat = subprocess.run(["kcat", "-b", broker.bootstrap, "-C", "-t", "zstd-topic", "-p", "0", "-o", "beginning", "-e", "-q",
                           "-f", "%s\\n"], capture_output=True, timeout=60)
    assert kcat.returncode == 0, kcat.stderr
    assert kcat.stdout.split(b"\n")[:-1] == sent, "kcat reads them"

    kc = KafkaConsumer("zstd-topic", bootstrap_servers=broker.bootstrap, auto_offset_reset="earliest",
                       consumer_timeout_ms=5000, enable_auto_commit=False)
    assert [m.value for m in kc] == sent, "kafka-python reads them"
    kc.close()

    if JAR.exists():
        java = subprocess.run(["java", "-cp", str(JAR), "ringlog.TxnClient", broker.bootstrap, "consume", "--topic", "zstd-topic",
                               "--isolation", "read_uncommitted", "--idle-ms", "2500"], capture_output=True, text=True, timeout=120)
        assert java.returncode == 0, java.stderr[-3000:]
        assert [v.encode() for v in json.loads(java.stdout.strip().splitlines()[-1])["values"]] == sent, "the Java client reads them"


def test_producer_keeps_each_batch_codec_and_uncompressed_unpacks(broker_factory):
    broker = broker_factory()
    create_topic(broker, "as-sent", 1)
    create_topic(broker, "plain", 1, config={"compression.type": "uncompressed"})
    produce_mixed(broker, "as-sent")
    assert stored_codecs(broker, "as-sent") and set(stored_codecs(broker, "as-sent")) == {"none", "gzip", "snappy", "lz4"}
    sent = produce_mixed(broker, "plain")
    assert set(stored_codecs(broker, "plain")) == {"none"}
    assert [v for (_, _, v) in consume_all(broker, "plain", [0])[0]] == sent


def test_a_keyless_record_in_a_compressed_batch_is_refused_on_a_compacted_topic(broker_factory):
    broker = broker_factory()
    create_topic(broker, "compact-gzip", 1, config={"cleanup.policy": "compact"})
    p = Producer(producer_conf(broker, **{"compression.type": "gzip", "linger.ms": 50, "retries": 0}))
    errors = []
    p.produce("compact-gzip", key=b"k", value=b"keyed", partition=0, on_delivery=lambda err, msg: errors.append(err))
    p.produce("compact-gzip", value=b"keyless", partition=0, on_delivery=lambda err, msg: errors.append(err))
    p.flush(30)
    assert len(errors) == 2 and all(e is not None and e.name() == "INVALID_RECORD" for e in errors), errors
    assert stored_codecs(broker, "compact-gzip") == [], "the whole batch was refused"


def test_the_topics_compression_level_is_the_one_used(broker_factory):
    """compression.zstd.level and compression.gzip.level (KIP-390) set how hard the broker
    recompresses: the same records take fewer bytes at the higher level, and read back the same."""
    broker = broker_factory()
    values = [f"record-{i % 997} value-{(i * 7919) % 1013} ".encode() * 40 for i in range(400)]
    sizes = {}
    for codec, level in (("zstd", 1), ("zstd", 19), ("gzip", 1), ("gzip", 9)):
        topic = f"{codec}-level-{level}"
        create_topic(broker, topic, 1, config={"compression.type": codec, f"compression.{codec}.level": str(level)})
        p = Producer(producer_conf(broker, **{"compression.type": "none", "linger.ms": 50, "batch.size": 1 << 20}))
        for v in values:
            p.produce(topic, value=v, partition=0)
        assert p.flush(30) == 0
        assert set(stored_codecs(broker, topic)) == {codec}
        assert [v for (_, _, v) in consume_all(broker, topic, [0])[0]] == values
        sizes[(codec, level)] = sum(n for _, n in stored_batches(broker, topic))
    print(f"stored bytes by (codec, level): {sizes}")
    assert sizes[("zstd", 19)] < sizes[("zstd", 1)], sizes
    assert sizes[("gzip", 9)] < sizes[("gzip", 1)], sizes
