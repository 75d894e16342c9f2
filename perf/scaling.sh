#!/usr/bin/env bash
# Issue 4's scaling run: the same produce workloads at --cores 1, 2, 4, ... up to the machine's
# CPU count, each with a fresh broker.
#
#   perf/scaling.sh [DATA_DIR]      (default /tmp/ringlog-scaling)
#
# Environment:
#   CORES_LIST  core counts to run (default: 1 2 4 8 16, cut at `nproc`)
#   WORKLOADS   workload files (default: the issue's two 8-partition workloads, then the
#               32-partition, 8-producer scale-* workloads)
#   DURATION, WARMUP  seconds per run (default 15 and 3)
#   RINGLOG_BIN, RINGLOG_BENCH  binaries to use (default target/release/...)
#
# With N cores the broker is confined to CPUs 0..N-1 (taskset; shards follow the process's CPU
# mask) and the clients to the CPUs left, so at N < nproc broker and clients do not share a core.
# At N = nproc they share every CPU, as on the 2-core machine. Prints one table row per run and
# leaves each run's report in perf/out/scale-c<N>-<workload>/.
set -euo pipefail
cd "$(dirname "$0")/.."

DIR="${1:-/tmp/ringlog-scaling}"
PORT=19096
ADMIN=19645
NCPU=$(nproc)
DURATION="${DURATION:-15}"
WARMUP="${WARMUP:-3}"
CORES_LIST="${CORES_LIST:-$(for n in 1 2 4 8 16; do [ "$n" -le "$NCPU" ] && echo -n "$n "; done)}"
WORKLOADS="${WORKLOADS:-perf/workloads/produce-acks1-1k.toml perf/workloads/produce-acksall-1k.toml perf/workloads/scale-acks1-1k.toml perf/workloads/scale-acksall-1k.toml}"
# shellcheck source=perf/broker.sh
. perf/broker.sh

mkdir -p perf/out "$(dirname "$DIR")"
echo "== machine: $NCPU CPUs, $(uname -r), data on $(df -T "$(dirname "$DIR")" | awk 'NR==2{print $2" "$1}')"
echo "== disk (perf/disk_limit.py, O_DIRECT 1 MiB, 4 in flight): $(python3 perf/disk_limit.py "$(dirname "$DIR")")"
if command -v iperf3 >/dev/null 2>&1; then
    iperf3 -s -1 -p 15201 >/dev/null 2>&1 &
    sleep 0.5
    echo "== loopback (iperf3, 1 stream, 3 s): $(iperf3 -c 127.0.0.1 -p 15201 -t 3 -J | python3 -c 'import json,sys; print("%.1f MB/s" % (json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"] / 8e6))')"
fi

printf '| cores | workload | publish MB/s | consume MB/s | errors | broker CPU s (user+sys) | client CPU s | broker CPUs | client CPUs |\n'
printf '|---|---|---|---|---|---|---|---|---|\n'
for n in $CORES_LIST; do
    BROKER_CPUS="0-$((n - 1))"
    CLIENT_CPUS="$n-$((NCPU - 1))"
    [ "$n" -lt "$NCPU" ] || CLIENT_CPUS="0-$((NCPU - 1))"
    for workload in $WORKLOADS; do
        name=$(basename "$workload" .toml)
        out="perf/out/scale-c$n-$name"
        rm -rf "$DIR" "$DIR.log" && mkdir -p "$DIR"
        CORES=$n start_broker
        # bash's `time` keyword (user and system seconds of the client): no GNU time needed.
        client_cpu=$( { TIMEFORMAT='%U %S'; time taskset -c "$CLIENT_CPUS" "$BENCH" --workload "$workload" \
            --bootstrap 127.0.0.1:$PORT --out "$out" --duration "$DURATION" --warmup "$WARMUP" >"$out.log" 2>&1; } 2>&1 \
            | awk '{printf "%.1f", $1 + $2}') || client_cpu="failed (see $out.log)"
        broker_cpu=$(awk -v t="$(broker_cpu_ticks)" -v hz="$(getconf CLK_TCK)" 'BEGIN {printf "%.1f", t / hz}')
        stop_broker
        python3 - "$out/summary.json" "$n" "$name" "$broker_cpu" "$client_cpu" "$BROKER_CPUS" "$CLIENT_CPUS" <<'EOF'
import json, sys
path, n, name, bcpu, ccpu, bcpus, ccpus = sys.argv[1:]
try:
    s = json.load(open(path))
    print("| %s | %s | %.1f | %.1f | %d | %s | %s | %s | %s |" % (n, name, s["publish_mb_per_s"], s["consume_mb_per_s"], s["errors"], bcpu, ccpu, bcpus, ccpus))
except (OSError, ValueError, KeyError) as e:
    print("| %s | %s | no report (%s) | | | %s | %s | %s | %s |" % (n, name, e, bcpu, ccpu, bcpus, ccpus))
EOF
    done
done
rm -rf "$DIR" "$DIR.log"
