"""The admin listener serves Prometheus /metrics (per-shard counters and latency summaries that
move with real traffic) and /health."""

import re
import urllib.error
import urllib.request

from confluent_kafka import Producer

from conftest import consume_all, create_topic, producer_conf, wait_until


def _get(broker, path):
    with urllib.request.urlopen(f"http://127.0.0.1:{broker.admin_port}{path}", timeout=10) as r:
        return r.status, r.read().decode()


def _value(text, name, **labels):
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    m = re.search(rf"^{re.escape(name)}\{{{re.escape(want)}\}} (\S+)$", text, re.M)
    return float(m.group(1)) if m else None


def test_metrics_and_health(broker_factory):
    broker = broker_factory(cores=2)
    assert _get(broker, "/health") == (200, "ok\n")
    try:
        _get(broker, "/nope")
        raise AssertionError("unknown path must be 404")
    except urllib.error.HTTPError as e:
        assert e.code == 404

    create_topic(broker, "metered", 4)
    p = Producer(producer_conf(broker))
    for i in range(2000):
        p.produce("metered", value=b"x" * 100, partition=i % 4)
    assert p.flush(30) == 0
    got = consume_all(broker, "metered", range(4))
    assert sum(len(v) for v in got.values()) == 2000

    def scraped():
        return _get(broker, "/metrics")[1]

    wait_until(lambda: (_value(scraped(), "ringlog_fsync_latency_seconds_count", shard="0") or 0)
               + (_value(scraped(), "ringlog_fsync_latency_seconds_count", shard="1") or 0) > 0,
               timeout=10, what="fsync latency samples")
    text = scraped()
    produce_requests = sum(_value(text, "ringlog_requests_total", shard=s, api_key="0") or 0 for s in ("0", "1"))
    assert produce_requests > 0, "produce requests are counted per API key"
    bytes_in = sum(_value(text, "ringlog_bytes_in_total", shard=s) for s in ("0", "1"))
    assert bytes_in > 2000 * 100, f"bytes in {bytes_in} covers the produced payload"
    bytes_out = sum(_value(text, "ringlog_bytes_out_total", shard=s) for s in ("0", "1"))
    assert bytes_out > 2000 * 100, f"bytes out {bytes_out} covers the consumed payload"
    hits = sum(_value(text, "ringlog_batch_cache_hits_total", shard=s) for s in ("0", "1"))
    assert hits > 0, "fresh data is served from the batch cache"
    for name in ("ringlog_produce_latency_seconds", "ringlog_fetch_latency_seconds"):
        count = sum(_value(text, f"{name}_count", shard=s) or 0 for s in ("0", "1"))
        assert count > 0, f"{name} has samples"
        p99 = [_value(text, name, shard=s, quantile="0.99") for s in ("0", "1")]
        assert any(v is not None and v > 0 for v in p99), f"{name} p99 {p99}"
    assert "# TYPE ringlog_cross_core_hop_latency_seconds summary" in text
