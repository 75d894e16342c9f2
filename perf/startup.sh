#!/usr/bin/env bash
# Start-up time over a 5 GiB backlog: how long the broker takes from exec to /health, after a
# clean stop (SIGTERM) and after a crash (SIGKILL), and how many bytes of .log files its recovery
# read (the "partition log recovered" lines' bytes_read, summed).
#
#   perf/startup.sh [DATA_DIR]      (default /tmp/ringlog-startup; REUSE=1 keeps its backlog)
#
# Fills the backlog as perf/catchup.sh does (perf/workloads/backlog-fill-5g.toml), then, REPS
# times (default 2): a clean stop and start, then a SIGKILL and start. The page cache is dropped
# (when root) before each start, so recovery reads from the disk.
set -euo pipefail
cd "$(dirname "$0")/.."

DIR="${1:-/tmp/ringlog-startup}"
CORES="${CORES:-2}"
REPS="${REPS:-2}"
PORT=19295
ADMIN=19794
# shellcheck source=perf/broker.sh
. perf/broker.sh

fill_backlog startup-fill
echo "== backlog: $(du -sh "$DIR" | cut -f1) in $(ls -d "$DIR"/*/ | wc -l) partition directories"

# Starts the broker on the backlog and prints the time to /health and the bytes recovery read.
timed_start() {
    sync
    if [ -w /proc/sys/vm/drop_caches ]; then echo 3 >/proc/sys/vm/drop_caches; fi
    local lines t0 t1
    lines=$(wc -l <"$DIR.log")
    t0=$(date +%s%N)
    start_broker
    t1=$(date +%s%N)
    tail -n +"$((lines + 1))" "$DIR.log" | awk -v ms=$(((t1 - t0) / 1000000)) -v how="$1" '
        /partition log recovered/ { n++; for (i = 1; i <= NF; i++) if ($i ~ /^bytes_read=/) { split($i, kv, "="); b += kv[2] } }
        END { printf "start-up after %s: %d ms, %d partitions, %.1f MB of .log files read\n", how, ms, n, b / 1e6 }'
}

start_broker
stop_broker
for _ in $(seq "$REPS"); do
    timed_start "a clean stop"
    kill -KILL "$BROKER_PID"
    wait "$BROKER_PID" 2>/dev/null || true
    BROKER_PID=""
    timed_start "a crash"
    stop_broker
done
