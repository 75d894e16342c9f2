#!/usr/bin/env bash
# Catch-up read benchmark (issue 4): a consumer reads a 5 GiB backlog from disk, compared in the
# same run with fio reading a copy of the same segment files with O_DIRECT.
#
#   perf/catchup.sh [--keep] [DATA_DIR]     (default DATA_DIR: /tmp/ringlog-catchup)
#
# Steps: start a fresh 2-shard broker, fill the backlog (perf/workloads/backlog-fill-5g.toml),
# stop it cleanly, drop the page cache (when root), start it again so its batch cache is empty,
# run perf/workloads/catchup-5g.toml, then fio over a copy of the topic's .log files made after
# the fill (bs=1M, iodepth=16, the files read round-robin like the consumer's partitions), REPS
# times (default 3). fio never reads the files the consumer has just read: this VM's host keeps
# what a run reads in its own cache, and fio over those files then read 1.5-2.7 GB/s of memory.
# The host may still hold the copy (it was just written): perf/RESULTS.md compares the catch-up
# with limits.sh's read as well. Needs twice the backlog's space (about 11 GiB).
# Prints both rates and their ratio per pair; the harness reports go to perf/out/catchup-<pair>.
# Each pair also runs perf/fetch_probe.py (raw Fetch requests, no per-record client work) on the
# same broker right after librdkafka: the broker's own ceiling.
# Needs a release build of the workspace and fio. WORKLOAD=... picks another catch-up
# workload; CORES=N the shard count; REUSE=1 keeps an existing backlog in DATA_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."

KEEP=0
if [ "${1:-}" = "--keep" ]; then KEEP=1; shift; fi
DIR="${1:-/tmp/ringlog-catchup}"
WORKLOAD="${WORKLOAD:-perf/workloads/catchup-5g.toml}"
CORES="${CORES:-2}"
REPS="${REPS:-3}"
PORT=19195
ADMIN=19694
command -v fio >/dev/null || { echo "catchup.sh: fio is required" >&2; exit 2; }
# shellcheck source=perf/broker.sh
. perf/broker.sh

fill_backlog catchup-fill

TOPIC=$(sed -n 's/^topic *= *"\(.*\)"/\1/p' "$WORKLOAD")
PARTITIONS=$(sed -n 's/^partitions *= *\([0-9]*\)/\1/p' "$WORKLOAD")
FILES=$(ls "$DIR/$TOPIC"-*/*.log | paste -sd:)
# Sizes from the inodes: reading the files here would warm the host's cache for the run.
BYTES=$(stat -c %s "$DIR/$TOPIC"-*/*.log | awk '{ s += $1 } END { printf "%.0f\n", s }')
# fio's copy of the backlog, written after it (so no less likely to sit in the host's write cache).
TWIN="$DIR.fio"
if [ "${REUSE:-0}" != 1 ] || [ ! -d "$TWIN" ]; then
    rm -rf "$TWIN"
    mkdir -p "$TWIN"
    for f in "$DIR/$TOPIC"-*/*.log; do cp "$f" "$TWIN/$(basename "$(dirname "$f")")-$(basename "$f")"; done
    sync
fi
TWIN_FILES=$(ls "$TWIN"/*.log | paste -sd:)
drop_caches() {
    sync
    if [ -w /proc/sys/vm/drop_caches ]; then echo 3 >/proc/sys/vm/drop_caches; fi
}

# This VM's disk bandwidth drifts by 2x within minutes, so each Ringlog run is paired with a
# fio run right after it, and the ratio is taken per pair.
echo "== $REPS pairs: catch-up read ($WORKLOAD, --cores $CORES), then fio over a copy of its $(echo "$FILES" | tr ':' '\n' | wc -l) segment files ($((BYTES >> 20)) MiB)"
printf '%-5s %16s %14s %14s %7s %18s\n' pair librdkafka_MB/s probe_MB/s fio_MB/s ratio broker_cpu_s
for rep in $(seq "$REPS"); do
    drop_caches
    start_broker
    sleep 1
    START_CPU=$(broker_cpu_ticks)
    "$BENCH" --workload "$WORKLOAD" --bootstrap 127.0.0.1:$PORT --out "perf/out/catchup-$rep" >/dev/null
    END_CPU=$(broker_cpu_ticks)
    PROBE_BW=$(python3 perf/fetch_probe.py --port $PORT --topic "$TOPIC" --partitions "$PARTITIONS" | sed -n 's/.*= \([0-9.]*\) MB\/s.*/\1/p')
    stop_broker
    drop_caches
    FIO_BW=$(fio --name=catchup-limit --readonly --filename="$TWIN_FILES" --rw=read --bs=1M --direct=1 \
        --ioengine=io_uring --iodepth=16 --output-format=json 2>/dev/null \
        | python3 -c 'import json,sys; print(round(json.load(sys.stdin)["jobs"][0]["read"]["bw_bytes"]/1e6,1))')
    RINGLOG_BW=$(python3 -c "import json; print(round(json.load(open('perf/out/catchup-$rep/summary.json'))['consume_mb_per_s'],1))")
    RATIO=$(python3 -c "print(f'{100*$RINGLOG_BW/$FIO_BW:.0f}%')")
    printf '%-5s %16s %14s %14s %7s %18s\n' "$rep" "$RINGLOG_BW" "$PROBE_BW" "$FIO_BW" "$RATIO" "$(python3 -c "print((${END_CPU}-${START_CPU})/$(getconf CLK_TCK))")"
done
[ "$KEEP" = 1 ] || rm -rf "$DIR" "$TWIN"
