"""kcat (librdkafka CLI) against a real ringlog broker: metadata listing, 100k keyed produce, read back."""

import collections
import re
import shutil
import subprocess

import pytest

from conftest import create_topic

N_MESSAGES = 100_000
N_PARTITIONS = 6
N_KEYS = 1000


def kcat(*args, timeout=300, input=None):
    exe = shutil.which("kcat")
    if exe is None:
        pytest.fail("kcat not installed (scripts/test.sh installs it with apt-get)")
    return subprocess.run([exe, *args], capture_output=True, timeout=timeout, input=input)


def test_kcat_metadata_lists_broker_and_topic(broker):
    create_topic(broker, "kcat-meta", 6)
    r = kcat("-b", broker.bootstrap, "-L", "-m", "15", timeout=60)
    out = r.stdout.decode(errors="replace")
    assert r.returncode == 0, f"kcat -L failed rc={r.returncode}: {r.stderr.decode(errors='replace')}"
    assert re.search(r"^\s*1 brokers:\s*$", out, re.M), out
    assert re.search(rf"^\s*broker 0 at 127\.0\.0\.1:{broker.port}\b", out, re.M), out
    assert re.search(r'^\s*topic "kcat-meta" with 6 partitions:', out, re.M), out
    for p in range(6):
        assert re.search(rf"^\s*partition {p}, leader 0, replicas: 0, isrs: 0", out, re.M), out


def test_kcat_produce_consume_100k_keyed(broker, tmp_path):
    topic = "kcat-100k"
    create_topic(broker, topic, N_PARTITIONS)

    # Key i -> one of N_KEYS keys (deterministic); value carries the global sequence number.
    produced = []  # (key, value) in production order
    lines = []
    for seq in range(N_MESSAGES):
        key = "key-%04d" % ((seq * 7919) % N_KEYS)
        value = "seq-%07d-%s" % (seq, "x" * (seq % 17))
        produced.append((key, value))
        lines.append(f"{key}:{value}\n")
    infile = tmp_path / "input.txt"
    infile.write_text("".join(lines))

    r = kcat("-b", broker.bootstrap, "-P", "-t", topic, "-K:", "-l", str(infile),
             "-X", "acks=all", timeout=300)
    assert r.returncode == 0, f"kcat -P failed rc={r.returncode}: {r.stderr.decode(errors='replace')[-3000:]}"
    assert b"Delivery failed" not in r.stderr, r.stderr.decode(errors="replace")[-3000:]

    r = kcat("-b", broker.bootstrap, "-C", "-t", topic, "-o", "beginning", "-e", "-q",
             "-f", r"%p %o %k %s\n", timeout=300)
    assert r.returncode == 0, f"kcat -C failed rc={r.returncode}: {r.stderr.decode(errors='replace')[-3000:]}"
    out = r.stdout.decode()
    consumed = collections.defaultdict(list)  # partition -> [(offset, key, value)]
    n_lines = 0
    for line in out.splitlines():
        if not line:
            continue
        n_lines += 1
        p, o, k, v = line.split(" ", 3)
        consumed[int(p)].append((int(o), k, v))
    assert n_lines == N_MESSAGES, f"consumed {n_lines} messages, produced {N_MESSAGES}"

    # Same multiset of (key, value).
    got = collections.Counter((k, v) for recs in consumed.values() for _o, k, v in recs)
    assert got == collections.Counter(produced)

    # Every key lives in exactly one partition (kcat's default partitioner is per-key deterministic).
    key_part = {}
    for p, recs in consumed.items():
        for _o, k, _v in recs:
            assert key_part.setdefault(k, p) == p, f"key {k} found in partitions {key_part[k]} and {p}"
    assert set(consumed) <= set(range(N_PARTITIONS))
    assert len(consumed) == N_PARTITIONS, f"only partitions {sorted(consumed)} got data"

    for p in range(N_PARTITIONS):
        recs = consumed[p]
        # Offsets of a fresh, non-transactional partition are dense from 0.
        assert [o for o, _k, _v in recs] == list(range(len(recs))), f"partition {p}: offsets not 0..n-1"
        # Order within the partition is the production order of the keys that landed there.
        expected = [v for k, v in produced if key_part[k] == p]
        actual = [v for _o, _k, v in recs]
        assert actual == expected, f"partition {p}: consumed order differs from produced order"
        seqs = [int(v[4:11]) for v in actual]
        assert all(a < b for a, b in zip(seqs, seqs[1:])), f"partition {p}: sequence numbers not increasing"
