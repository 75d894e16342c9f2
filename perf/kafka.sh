#!/usr/bin/env bash
# Apache Kafka 4.x as the side-by-side peer for the cluster benchmarks (issue 17): N KRaft nodes on
# this machine, each a combined broker and controller of one static quorum, with the port layout of
# perf/cluster.sh (node n: Kafka port BASE+10n, controller port BASE+10n+1). The jars come from Maven
# Central (perf/kafka/pom.xml) and are cached in perf/kafka/lib/VERSION (git-ignored).
#
#   perf/kafka.sh fetch                 fetch the jars (once)
#   perf/kafka.sh format N DIR BASE     write DIR/nodeK/server.properties and format each log dir
#   perf/kafka.sh node DIR K            run node K in the foreground (exec: the caller gets java's pid)
#   perf/kafka.sh run [N]               N nodes (default 3) on DIR/BASE until interrupted
#   . perf/kafka.sh                     sourced: kafka_start N, kafka_stop, KAFKA_PIDS, KAFKA_BOOTSTRAP
#
# KAFKA_OVERRIDES: space-separated KEY=VALUE broker configs appended to every server.properties
# (e.g. "broker.session.timeout.ms=2000 broker.heartbeat.interval.ms=200"). KAFKA_VERSION (4.4.0),
# KAFKA_HEAP (-Xmx1g -Xms1g). Needs java 17+ and mvn.

KAFKA_REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
KAFKA_VERSION="${KAFKA_VERSION:-4.4.0}"
KAFKA_LIB="$KAFKA_REPO/perf/kafka/lib/$KAFKA_VERSION"
KAFKA_HEAP="${KAFKA_HEAP:--Xmx1g -Xms1g}"
# The GC flags bin/kafka-run-class.sh uses by default.
KAFKA_JVM_FLAGS="-server -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35 \
-XX:+ExplicitGCInvokesConcurrent -Djava.awt.headless=true -Dorg.slf4j.simpleLogger.defaultLogLevel=warn"
KAFKA_PIDS=()
KAFKA_BOOTSTRAP=""

# Copies kafka_2.13 and every runtime jar it needs into $KAFKA_LIB, once. A fetch goes to a scratch
# folder first, so an interrupted one never looks complete.
kafka_fetch() {
    [ -f "$KAFKA_LIB/kafka_2.13-$KAFKA_VERSION.jar" ] && return 0
    local scratch="$KAFKA_LIB.partial" log="$KAFKA_REPO/perf/kafka/lib/fetch.log"
    command -v mvn >/dev/null 2>&1 || { echo "perf/kafka.sh: mvn not found; install Maven to fetch Apache Kafka $KAFKA_VERSION" >&2; return 1; }
    mkdir -p "$KAFKA_REPO/perf/kafka/lib" && rm -rf "$scratch"
    if ! mvn -B -q -f "$KAFKA_REPO/perf/kafka/pom.xml" -Dkafka.version="$KAFKA_VERSION" \
        dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$scratch" >"$log" 2>&1 \
        || [ ! -f "$scratch/kafka_2.13-$KAFKA_VERSION.jar" ]; then
        echo "perf/kafka.sh: Maven could not fetch org.apache.kafka:kafka_2.13:$KAFKA_VERSION from Maven Central (see $log)" >&2
        rm -rf "$scratch"
        return 1
    fi
    mv "$scratch" "$KAFKA_LIB"
}

# kafka_format N DIR BASE: one server.properties per node and a formatted log dir (static quorum of
# N voters, as Ringlog's controller.quorum.voters). Internal topics get min(N, 3) replicas.
kafka_format() {
    local size=$1 dir=$2 base=$3 n voters="" rf isr pair
    rf=$((size < 3 ? size : 3)) isr=$((size < 2 ? 1 : 2))
    for n in $(seq "$size"); do voters+="${voters:+,}$n@127.0.0.1:$((base + n * 10 + 1))"; done
    local cluster_id
    cluster_id=$(java -cp "$KAFKA_LIB/*" kafka.tools.StorageTool random-uuid 2>/dev/null | head -1)
    [ -n "$cluster_id" ] || { echo "perf/kafka.sh: kafka.tools.StorageTool random-uuid failed" >&2; return 1; }
    for n in $(seq "$size"); do
        mkdir -p "$dir/node$n/data"
        cat >"$dir/node$n/server.properties" <<EOF
process.roles=broker,controller
node.id=$n
controller.quorum.voters=$voters
controller.listener.names=CONTROLLER
listeners=PLAINTEXT://127.0.0.1:$((base + n * 10)),CONTROLLER://127.0.0.1:$((base + n * 10 + 1))
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$dir/node$n/data
offsets.topic.replication.factor=$rf
transaction.state.log.replication.factor=$rf
transaction.state.log.min.isr=$isr
share.coordinator.state.topic.replication.factor=$rf
share.coordinator.state.topic.min.isr=$isr
group.initial.rebalance.delay.ms=0
EOF
        for pair in ${KAFKA_OVERRIDES:-}; do echo "$pair" >>"$dir/node$n/server.properties"; done
        java -cp "$KAFKA_LIB/*" $KAFKA_JVM_FLAGS kafka.tools.StorageTool format -t "$cluster_id" \
            -c "$dir/node$n/server.properties" >>"$dir/node$n.log" 2>&1 \
            || { echo "perf/kafka.sh: formatting node $n failed; see $dir/node$n.log" >&2; return 1; }
    done
}

# Runs node K of a formatted DIR in this process (exec), so a caller's pid is the JVM's.
kafka_node() {
    local dir=$1 n=$2
    # shellcheck disable=SC2086 # flags are word lists
    exec java $KAFKA_HEAP $KAFKA_JVM_FLAGS -Dkafka.logs.dir="$dir/node$n" -cp "$KAFKA_LIB/*" \
        kafka.Kafka "$dir/node$n/server.properties"
}

# kafka_wait_ports N BASE: waits (up to 70 s) until every node's ports can be bound. A broker that
# just stopped on them (a Ringlog run before this one) can leave TIME_WAIT sockets that block the
# bind for a minute when its listener did not set SO_REUSEADDR.
kafka_wait_ports() {
    local size=$1 base=$2 waited=0
    while ! python3 - "$size" "$base" 2>/dev/null <<'PY'
import socket, sys
size, base = int(sys.argv[1]), int(sys.argv[2])
for port in [base + n * 10 + k for n in range(1, size + 1) for k in (0, 1)]:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))
PY
    do
        [ $waited = 0 ] && echo "perf/kafka.sh: ports $((base + 10))..$((base + size * 10 + 1)) still in use; waiting" >&2
        waited=$((waited + 1))
        [ $waited -le 70 ] || { echo "perf/kafka.sh: ports $((base + 10))..$((base + size * 10 + 1)) still in use after 70 s" >&2; return 1; }
        sleep 1
    done
}

# kafka_start N: fetches, formats and starts N nodes on $DIR and $BASE (defaults as perf/cluster.sh),
# logs in $DIR/nodeK.log; returns once every broker is in the metadata. PIDs in KAFKA_PIDS.
kafka_start() {
    local size=$1 n
    DIR="${DIR:-/tmp/kafka-cluster}" BASE="${BASE:-${BASE_PORT:-19100}}"
    kafka_fetch || return 1
    kafka_wait_ports "$size" "$BASE" || return 1
    rm -rf "$DIR" && mkdir -p "$DIR"
    kafka_format "$size" "$DIR" "$BASE" || return 1
    KAFKA_BOOTSTRAP=""
    for n in $(seq "$size"); do
        ( kafka_node "$DIR" "$n" ) >>"$DIR/node$n.log" 2>&1 &
        KAFKA_PIDS+=($!)
        KAFKA_BOOTSTRAP+="${KAFKA_BOOTSTRAP:+,}127.0.0.1:$((BASE + n * 10))"
    done
    for _ in $(seq 300); do
        [ "$(kcat -b "$KAFKA_BOOTSTRAP" -L -J -m 2 2>/dev/null | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["brokers"]))' 2>/dev/null)" = "$size" ] && return 0
        for pid in "${KAFKA_PIDS[@]}"; do
            kill -0 "$pid" 2>/dev/null || { echo "perf/kafka.sh: a Kafka node exited at start-up; see $DIR/node*.log" >&2; return 1; }
        done
        sleep 0.2
    done
    echo "perf/kafka.sh: $size Kafka brokers did not all register within 60 s; see $DIR/node*.log" >&2
    return 1
}

# Stops every node with SIGTERM (a controlled shutdown), SIGKILL after 30 s: with the whole quorum
# stopping at once the last node's controlled shutdown can wait on a controller that is gone.
kafka_stop() {
    local pid
    for pid in "${KAFKA_PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for _ in $(seq 300); do
        local alive=0
        for pid in "${KAFKA_PIDS[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
        [ $alive = 0 ] && break
        sleep 0.1
    done
    for pid in "${KAFKA_PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
    KAFKA_PIDS=()
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    set -euo pipefail
    case "${1:-}" in
        fetch) kafka_fetch ;;
        format) [ $# = 4 ] || { sed -n '8p' "$0" >&2; exit 2; }; kafka_fetch; kafka_format "$2" "$3" "$4" ;;
        node) [ $# = 3 ] || { sed -n '9p' "$0" >&2; exit 2; }; kafka_node "$2" "$3" ;;
        run)
            trap 'kafka_stop; rm -rf "$DIR"' EXIT
            trap 'exit 130' INT TERM
            kafka_start "${2:-3}"
            echo "Kafka $KAFKA_VERSION: ${2:-3} brokers at $KAFKA_BOOTSTRAP (data in $DIR); Ctrl-C stops them"
            wait
            ;;
        *) sed -n '7,11p' "$0" >&2; exit 2 ;;
    esac
fi
