#!/usr/bin/env bash
# Produce p99 on a partition of the same shard with and without the log cleaner compacting a big
# topic (issue 18's target: within 20% of p99 without compaction).
#
#   perf/compaction.sh [SIZE_MB] [SECONDS]        (defaults: 256 MiB, 10 s; the issue's figure is 2048)
#
# One shard (--cores 1), so the cleaner and the probed partition share it. The topic `big`
# (compacted, 32 MiB segments, 1 KiB values, each key written about four times, and
# min.compaction.lag.ms so high that nothing is cleanable) is filled once; then the data directory
# is copied for two runs of the probe (one record at a time, acks=all, to topic `probe`), which
# after 1 s sets big's min.compaction.lag.ms to 0:
#   off: log.cleaner.enable=false;  on: the cleaner compacts `big` from then on.
# Each run prints the percentiles after that point; the "on" run also those of the samples taken
# while a cleaning pass ran (from the broker log's "log cleaned" lines).
# CLEANER_OVERRIDES adds broker configs to both runs (e.g. log.cleaner.io.max.bytes.per.second=5e7).
# RINGLOG_BIN picks the broker (default target/release/ringlog); PYTHON one with confluent_kafka.
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE_MB=${1:-256}
SECONDS_RUN=${2:-10}
BIN=${RINGLOG_BIN:-target/release/ringlog}
PYTHON=${PYTHON:-python3}
WORK=${WORK:-$(mktemp -d /tmp/ringlog-compaction.XXXX)}
PORT=${PORT:-19392}
ADMIN=${ADMIN:-19644}
PID=""

start() { # start DIR [KEY=VALUE...]
    local dir=$1 overrides=()
    shift
    for kv in "$@"; do overrides+=(--override "$kv"); done
    "$BIN" serve --listen 127.0.0.1:$PORT --data-dir "$dir" --cores 1 --admin-listen 127.0.0.1:$ADMIN \
        "${overrides[@]}" >>"$dir.log" 2>&1 &
    PID=$!
    for _ in $(seq 600); do
        curl -sf "http://127.0.0.1:$ADMIN/health" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    echo "broker did not start; see $dir.log" >&2
    exit 1
}
stop() { [ -n "$PID" ] && kill -TERM "$PID" && wait "$PID" || true; PID=""; }
trap stop EXIT

start "$WORK/fill" log.cleaner.enable=false
$PYTHON perf/compaction_probe.py fill 127.0.0.1:$PORT "$SIZE_MB"
stop
for mode in off on; do
    rm -rf "$WORK/$mode" "$WORK/$mode.log"
    cp -r "$WORK/fill" "$WORK/$mode"
    sync  # the copy's writeback must not land in the measurement
    enable=$([ $mode = on ] && echo true || echo false)
    start "$WORK/$mode" log.cleaner.enable=$enable log.cleaner.backoff.ms=100 ${CLEANER_OVERRIDES:-}
    echo -n "cleaner $mode: "
    SAMPLES="$WORK/$mode.samples" $PYTHON perf/compaction_probe.py probe 127.0.0.1:$PORT "$SECONDS_RUN"
    stop
    [ $mode = on ] && echo -n "cleaner on: " && $PYTHON perf/compaction_probe.py window "$WORK/$mode.samples" "$WORK/$mode.log"
    grep -h "log cleaned" "$WORK/$mode.log" | grep "partition=big" | sed 's/.*log cleaned /  cleaned: /' | head -5 || true
done
du -sh "$WORK/fill" "$WORK/on" | sed 's/^/  on disk: /'
[ -n "${KEEP:-}" ] || rm -rf "$WORK"
