#!/usr/bin/env bash
# Every issue-4 measurement in one sitting, in the order perf/RESULTS.md reports them:
# machine limits, produce throughput (acks=1, acks=all) at --cores 2 and 1, end-to-end latency
# at 25% of the measured max acks=all rate at --cores 2 and 1 (with the append journal, the
# default, and without it), then the catch-up read.
#
#   perf/run-all.sh [DATA_DIR]      (default /tmp/ringlog-perf; needs ~11 GiB free, ~15 minutes)
#
# Each run gets a fresh broker. Reports go to perf/out/<run>/; this script prints the harness's
# summary line, client and broker CPU seconds, and the broker's fdatasync and write-until-visible
# percentiles per run (`measure` in perf/broker.sh).
# Needs `cargo build --release --workspace`, fio, iperf3 and curl.
set -euo pipefail
cd "$(dirname "$0")/.."

DIR="${1:-/tmp/ringlog-perf}"
PORT=19095
ADMIN=19644
CORES=2
# This VM's disk config (sync linger); BROKER_CONFIG= (empty) runs the broker's defaults.
BROKER_CONFIG="${BROKER_CONFIG-perf/virtio-disk.toml}"
# shellcheck source=perf/broker.sh
. perf/broker.sh

scripts/limits.sh --out perf/limits.env "$(dirname "$DIR")" | tail -16
for cores in 2 1; do
    measure "$cores" perf/workloads/produce-acks1-1k.toml "acks1-c$cores" --duration 20 --warmup 3
    measure "$cores" perf/workloads/produce-acksall-1k.toml "acksall-c$cores" --duration 20 --warmup 3
done
MAX=$(python3 -c "import json; print(int(json.load(open('perf/out/acksall-c2/summary.json'))['publish_msgs_per_s']))")
RATE=$((MAX / 4))
echo "== latency rate: $RATE msg/s (25% of $MAX)"
for cores in 2 1; do
    measure "$cores" perf/workloads/e2e-latency-acksall-1k.toml "latency-c$cores" --rate "$RATE" --duration 60 --warmup 5
done
# The same without the append journal: consumers see records once they are written.
for cores in 2 1; do
    BROKER_OVERRIDES="append_journal_dir=" measure "$cores" perf/workloads/e2e-latency-acksall-1k.toml \
        "latency-nojournal-c$cores" --rate "$RATE" --duration 60 --warmup 5
done
rm -rf "$DIR" "$DIR.log"
perf/catchup.sh
