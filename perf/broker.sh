# Sourced by the perf/ scripts: start and stop one release broker for a measurement.
# The caller sets DIR (data directory; the log goes to $DIR.log), CORES, PORT and ADMIN.

BIN="${RINGLOG_BIN:-target/release/ringlog}"
BENCH=target/release/ringlog-bench
[ -x "$BIN" ] && [ -x "$BENCH" ] || { echo "$0: build first: cargo build --release --workspace" >&2; exit 2; }

BROKER_PID=""

# Starts the broker and waits until /health says every shard listens (start-up may scan GiBs).
start_broker() {
    "$BIN" serve --listen 127.0.0.1:"$PORT" --data-dir "$DIR" --cores "$CORES" \
        --admin-listen 127.0.0.1:"$ADMIN" >>"$DIR.log" 2>&1 &
    BROKER_PID=$!
    for _ in $(seq 600); do
        curl -sf "127.0.0.1:$ADMIN/health" >/dev/null 2>&1 && return 0
        kill -0 "$BROKER_PID" 2>/dev/null || break
        sleep 0.1
    done
    echo "$0: broker did not start; see $DIR.log" >&2
    exit 1
}

# Stops it with SIGTERM (a clean stop: everything synced, clean-shutdown markers written).
stop_broker() {
    [ -n "$BROKER_PID" ] || return 0
    kill -TERM "$BROKER_PID" 2>/dev/null || true
    wait "$BROKER_PID" 2>/dev/null || true
    BROKER_PID=""
}
trap stop_broker EXIT
