#!/usr/bin/env bash
# One measured run of a workload against a 3-broker cluster on this machine (issue 17's targets):
# by default three release Ringlog brokers, each a combined broker and controller of one quorum,
# each with one shard and its own data directory under $DIR (default /tmp/ringlog-cluster).
#
#   [PEER=kafka] perf/cluster.sh WORKLOAD OUT [harness args...]
#   perf/cluster.sh perf/workloads/cluster-produce-acksall-1k.toml cluster-produce
#   PEER=kafka perf/cluster.sh perf/workloads/cluster-e2e-latency-10k.toml kafka-cluster-latency
#
# Prints the harness's summary line and each broker's CPU seconds; the report goes to perf/out/OUT/.
# BROKER_CONFIG (a TOML file, default none) is passed to every Ringlog broker. perf/virtio-disk.toml's
# 3 ms sync linger, which helps one node on this VM, costs a cluster twice (the leader's and the
# followers' syncs are in series): e2e p50 6.41 -> 2.14 ms and 241 -> 314 MB/s without it (session 14). Needs
# `cargo build --release --workspace` (ringlog-bench is the client for both peers). PEER=kafka runs
# the same workload against three Apache Kafka 4.x KRaft nodes with the same ports (perf/kafka.sh;
# KAFKA_OVERRIDES passes broker configs), data under $DIR (default /tmp/kafka-cluster), deleted after.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 2 ] || { sed -n '6,8p' "$0" >&2; exit 2; }
WORKLOAD=$1 OUT=$2
shift 2
BIN="${RINGLOG_BIN:-target/release/ringlog}"
BENCH="${RINGLOG_BENCH:-target/release/ringlog-bench}"
[ -x "$BIN" ] && [ -x "$BENCH" ] || { echo "$0: build first: cargo build --release --workspace" >&2; exit 2; }
PEER="${PEER:-ringlog}"
# replica.fetch.max.bytes for both peers (Kafka's default is 1 MiB). A Ringlog follower fdatasyncs
# each round before it asks for more, so bigger rounds move more per sync: 1 MiB gave 296-327 MB/s
# and 4 MiB 362-406 MB/s on this VM (session 14; 8 MiB no more than 4).
REPLICA_FETCH_MAX_BYTES="${REPLICA_FETCH_MAX_BYTES:-4194304}"
export KAFKA_OVERRIDES="replica.fetch.max.bytes=$REPLICA_FETCH_MAX_BYTES ${KAFKA_OVERRIDES:-}"
BASE=${BASE_PORT:-19100}
BOOTSTRAP="127.0.0.1:$((BASE + 10)),127.0.0.1:$((BASE + 20)),127.0.0.1:$((BASE + 30))"
PIDS=()

# Three Ringlog nodes; returns once each one's /health answers.
start_ringlog() {
    DIR="${DIR:-/tmp/ringlog-cluster}"
    local broker_config="${BROKER_CONFIG-}" n kafka controller admin
    local voters="1@127.0.0.1:$((BASE + 11)),2@127.0.0.1:$((BASE + 21)),3@127.0.0.1:$((BASE + 31))"
    rm -rf "$DIR" && mkdir -p "$DIR"
    for n in 1 2 3; do
        kafka=$((BASE + n * 10)) controller=$((BASE + n * 10 + 1)) admin=$((BASE + n * 10 + 2))
        mkdir -p "$DIR/node$n"
        "$BIN" serve --data-dir "$DIR/node$n" --cores 1 --admin-listen 127.0.0.1:$admin \
            ${broker_config:+--config "$broker_config"} \
            --override node.id=$n --override process.roles=broker,controller \
            --override replica.fetch.max.bytes="$REPLICA_FETCH_MAX_BYTES" \
            --override controller.quorum.voters="$voters" --override controller.listener.names=CONTROLLER \
            --override listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT \
            --override listeners=PLAINTEXT://127.0.0.1:$kafka,CONTROLLER://127.0.0.1:$controller \
            >>"$DIR/node$n.log" 2>&1 &
        PIDS+=($!)
    done
    for n in 1 2 3; do
        for _ in $(seq 300); do
            curl -sf "http://127.0.0.1:$((BASE + n * 10 + 2))/health" >/dev/null 2>&1 && break
            kill -0 "${PIDS[$((n - 1))]}" 2>/dev/null || { echo "$0: node $n exited; see $DIR/node$n.log:" >&2; tail -3 "$DIR/node$n.log" >&2; exit 1; }
            sleep 0.1
        done
    done
}

case "$PEER" in
    ringlog)
        stop_all() {
            for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
            for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
            PIDS=()
        }
        trap stop_all EXIT
        start_ringlog
        ;;
    kafka)
        . perf/kafka.sh
        DIR="${DIR:-/tmp/kafka-cluster}"
        # A failed start leaves logs to read; a finished run deletes everything (the disk is tight).
        stop_all() { kafka_stop; [ "${KEEP_FAILED:-0}" = 1 ] || rm -rf "$DIR"; }
        trap stop_all EXIT
        kafka_start 3 || { KEEP_FAILED=1; exit 1; }
        PIDS=("${KAFKA_PIDS[@]}")
        ;;
    *) echo "$0: PEER must be ringlog or kafka, not $PEER" >&2; exit 2 ;;
esac
# Every broker registered and unfenced: the topic's replicas can be placed on all three.
for _ in $(seq 100); do
    [ "$(timeout 5 kcat -b "$BOOTSTRAP" -L -J 2>/dev/null | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["brokers"]))' 2>/dev/null)" = 3 ] && break
    sleep 0.2
done
echo "== $OUT: 3 $PEER brokers, $WORKLOAD $*"
/usr/bin/time -f "client CPU: %U s user, %S s system, %e s wall" \
    "$BENCH" --workload "$WORKLOAD" --bootstrap "$BOOTSTRAP" --out "perf/out/$OUT" "$@" 2>&1 | tail -2
for i in 0 1 2; do
    awk -v n=$((i + 1)) '{printf "broker %d CPU: %.2f s user, %.2f s system\n", n, $14/100, $15/100}' "/proc/${PIDS[$i]}/stat"
done
stop_all
