# Sourced by the perf/ scripts: start and stop one release broker for a measurement.
# The caller sets DIR (data directory; the log goes to $DIR.log), CORES, PORT and ADMIN. It may set
# BROKER_CPUS (a taskset list) to confine the broker, BROKER_CONFIG (a TOML file for --config) and
# BROKER_OVERRIDES (space-separated KEY=VALUE broker configs, each passed with --override).
# RINGLOG_BIN and RINGLOG_BENCH point at other builds (an A/B run, or binaries carried to another
# machine).

BIN="${RINGLOG_BIN:-target/release/ringlog}"
BENCH="${RINGLOG_BENCH:-target/release/ringlog-bench}"
[ -x "$BIN" ] && [ -x "$BENCH" ] || { echo "$0: build first: cargo build --release --workspace" >&2; exit 2; }

BROKER_PID=""

# GETs an admin URL: curl where there is one, else Python (the lent many-core machine has no curl).
http_get() {
    if command -v curl >/dev/null 2>&1; then
        curl -sf "$1"
    else
        python3 -c 'import sys, urllib.request; sys.stdout.write(urllib.request.urlopen(sys.argv[1], timeout=2).read().decode())' "$1" 2>/dev/null
    fi
}

# Starts the broker and waits until /health says every shard listens (start-up may scan GiBs).
start_broker() {
    local overrides=() pair
    for pair in ${BROKER_OVERRIDES:-}; do overrides+=(--override "$pair"); done
    ${BROKER_CPUS:+taskset -c "$BROKER_CPUS"} "$BIN" serve --listen 127.0.0.1:"$PORT" --data-dir "$DIR" --cores "$CORES" \
        --admin-listen 127.0.0.1:"$ADMIN" ${BROKER_CONFIG:+--config "$BROKER_CONFIG"} "${overrides[@]}" >>"$DIR.log" 2>&1 &
    BROKER_PID=$!
    for _ in $(seq 600); do
        http_get "http://127.0.0.1:$ADMIN/health" >/dev/null 2>&1 && return 0
        kill -0 "$BROKER_PID" 2>/dev/null || break
        sleep 0.1
    done
    echo "$0: broker did not start; see $DIR.log" >&2
    exit 1
}

# Prints the running broker's CPU time so far (user + system), in clock ticks.
broker_cpu_ticks() {
    awk '{print $14 + $15}' "/proc/$BROKER_PID/stat"
}

# Stops it with SIGTERM (a clean stop: everything synced, clean-shutdown markers written).
stop_broker() {
    [ -n "$BROKER_PID" ] || return 0
    kill -TERM "$BROKER_PID" 2>/dev/null || true
    wait "$BROKER_PID" 2>/dev/null || true
    BROKER_PID=""
}
trap stop_broker EXIT

# measure CORES WORKLOAD OUT [harness args...]: one measured run on a fresh broker. Prints the
# harness's summary line, client and broker CPU seconds, and the broker's fdatasync and
# write-until-visible percentiles; the report goes to perf/out/OUT/.
measure() {
    local cores=$1 workload=$2 out=$3
    shift 3
    rm -rf "$DIR" "$DIR.log" && mkdir -p "$DIR"
    CORES=$cores start_broker
    echo "== $out: --cores $cores $workload $*"
    /usr/bin/time -f "client CPU: %U s user, %S s system, %e s wall" \
        "$BENCH" --workload "$workload" --bootstrap 127.0.0.1:"$PORT" --out "perf/out/$out" "$@" 2>&1 | tail -2
    awk '{printf "broker CPU: %.2f s user, %.2f s system\n", $14/100, $15/100}' "/proc/$BROKER_PID/stat"
    http_get "http://127.0.0.1:$ADMIN/metrics" | grep -E '(fsync|append_visible)_latency_seconds\{shard="0",quantile="0.(5|99)"' \
        | sed 's/^ringlog_//' | tr '\n' ' ' || true
    echo
    stop_broker
}

# fill_backlog OUT: a fresh 5 GiB backlog in $DIR from perf/workloads/backlog-fill-5g.toml (report
# in perf/out/OUT), the broker stopped cleanly after; with REUSE=1, the backlog already there.
fill_backlog() {
    if [ "${REUSE:-0}" = 1 ] && [ -d "$DIR" ]; then
        echo "== reusing the backlog in $DIR"
        return 0
    fi
    rm -rf "$DIR" "$DIR.log"
    mkdir -p "$DIR"
    start_broker
    echo "== filling the backlog"
    "$BENCH" --workload perf/workloads/backlog-fill-5g.toml --bootstrap 127.0.0.1:"$PORT" --out "perf/out/$1" | tail -1
    stop_broker
}
