#!/usr/bin/env bash
# Alternating A/B of two broker builds on one workload, in one sitting. On this VM the disk and the
# CPU vary between sittings by more than most changes gain (perf/RESULTS.md), so a change is judged
# only against its base, run for run, in turn.
#
#   perf/ab.sh PAIRS WORKLOAD BIN_A BIN_B [harness args...]
#
# For example, a base built in a worktree against this checkout:
#   git worktree add /tmp/wt-base main~1
#   (cd /tmp/wt-base && CARGO_TARGET_DIR=/tmp/wt-target cargo build --release --bin ringlog)
#   perf/ab.sh 3 perf/workloads/produce-acks1-1k.toml /tmp/wt-target/release/ringlog \
#       target/release/ringlog --duration 15 --warmup 3
#
# Each run gets a fresh broker with CORES shards (default 1) and BROKER_CONFIG (default
# perf/virtio-disk.toml), and prints what perf/run-all.sh prints per run. Reports go to
# perf/out/ab-<a|b>-<pair>/. CONFIG_A and CONFIG_B, when set, replace BROKER_CONFIG on one side;
# OVERRIDES_A and OVERRIDES_B add KEY=VALUE broker configs to one side (BROKER_OVERRIDES in
# perf/broker.sh): one build, two configs. Needs `cargo build --release --workspace` (for the
# harness) and curl.
set -euo pipefail
cd "$(dirname "$0")/.."

[ $# -ge 4 ] || { sed -n '6p' "$0" >&2; exit 2; }
PAIRS=$1 WORKLOAD=$2 BIN_A=$3 BIN_B=$4
shift 4
DIR=/tmp/ringlog-ab
PORT=19097
ADMIN=19646
BROKER_CONFIG="${BROKER_CONFIG-perf/virtio-disk.toml}"
# shellcheck source=perf/broker.sh
RINGLOG_BIN="$BIN_A" . perf/broker.sh
[ -x "$BIN_B" ] || { echo "$0: $BIN_B is not an executable" >&2; exit 2; }

for pair in $(seq "$PAIRS"); do
    BIN="$BIN_A" BROKER_CONFIG="${CONFIG_A:-$BROKER_CONFIG}" BROKER_OVERRIDES="${OVERRIDES_A:-}" measure "${CORES:-1}" "$WORKLOAD" "ab-a-$pair" "$@"
    BIN="$BIN_B" BROKER_CONFIG="${CONFIG_B:-$BROKER_CONFIG}" BROKER_OVERRIDES="${OVERRIDES_B:-}" measure "${CORES:-1}" "$WORKLOAD" "ab-b-$pair" "$@"
done
rm -rf "$DIR" "$DIR.log"
