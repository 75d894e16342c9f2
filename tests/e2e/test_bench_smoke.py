"""The load harness (perf/, `ringlog-bench`) runs a few seconds against the real broker and
writes a well-formed report: Markdown tables, JSON summary and two SVG charts."""

import json
import os
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

from conftest import high_watermarks

BENCH = Path(os.environ.get("RINGLOG_BENCH_BIN", Path(__file__).resolve().parents[2] / "target/release/ringlog-bench"))
WORKLOAD = Path(__file__).resolve().parents[2] / "perf/workloads/smoke.toml"


def test_bench_smoke_writes_a_report(broker, tmp_path):
    out = tmp_path / "report"
    run = subprocess.run(
        [str(BENCH), "--workload", str(WORKLOAD), "--bootstrap", broker.bootstrap, "--out", str(out),
         "--duration", "3", "--warmup", "1"],
        capture_output=True, text=True, timeout=120,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["errors"] == 0
    assert summary["publish_msgs_per_s"] > 100, summary["publish_msgs_per_s"]
    assert summary["consume_msgs_per_s"] > 100, summary["consume_msgs_per_s"]
    assert summary["publish_latency"]["count"] > 300
    assert summary["e2e_latency"]["count"] > 300
    assert len(summary["samples"]) == 3
    percentiles = [p for p, _ in summary["e2e_latency"]["percentiles"]]
    assert percentiles == [50.0, 90.0, 99.0, 99.9, 99.99, 100.0]
    values = [v for _, v in summary["e2e_latency"]["percentiles"]]
    assert values == sorted(values) and values[0] > 0, values
    report = (out / "report.md").read_text()
    assert "| publish (acknowledged) |" in report and "| end-to-end |" in report
    for svg in ("latency.svg", "throughput.svg"):
        root = ET.parse(out / svg).getroot()
        assert root.tag.endswith("svg")
        assert any(el.tag.endswith("polyline") or el.tag.endswith("path") for el in root.iter()), f"{svg} has no line"


def test_bench_round_robin_spreads_records_evenly_and_random_keys_reach_every_partition(broker, tmp_path):
    """The harness hands records to librdkafka in bursts with per-record partitions and keys; check
    where they landed with the broker's own high watermarks."""
    text = WORKLOAD.read_text()
    for keys in ("round-robin", "random"):
        topic = f"bench-{keys}"
        workload = tmp_path / f"{keys}.toml"
        workload.write_text(
            text.replace('topic = "bench-smoke"', f'topic = "{topic}"')
            .replace("partitions = 2", "partitions = 4")
            .replace('key_distribution = "random"', f'key_distribution = "{keys}"')
        )
        run = subprocess.run(
            [str(BENCH), "--workload", str(workload), "--bootstrap", broker.bootstrap, "--out",
             str(tmp_path / keys), "--duration", "2", "--warmup", "0"],
            capture_output=True, text=True, timeout=120,
        )
        assert run.returncode == 0, run.stderr[-2000:]
        summary = json.loads((tmp_path / keys / "summary.json").read_text())
        assert summary["errors"] == 0
        marks = high_watermarks(broker, topic, range(4))
        # 2 s at the workload's 2000 records/s.
        assert sum(marks.values()) >= 0.9 * 2000 * 2, marks
        if keys == "round-robin":
            assert max(marks.values()) - min(marks.values()) <= 1, marks
        else:
            assert min(marks.values()) > 0, marks
