"""The load harness (perf/, `ringlog-bench`) runs a few seconds against the real broker and
writes a well-formed report: Markdown tables, JSON summary and two SVG charts."""

import json
import os
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

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
