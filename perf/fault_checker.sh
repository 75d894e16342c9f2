#!/usr/bin/env bash
# The fault-injection checker's long form (issue 17): a 3-broker cluster of the release binary,
# idempotent acks=all producers and concurrent consumers on a topic with RF=3, 6 partitions and
# min.insync.replicas=2, while a nemesis SIGKILLs and pauses one broker at a time, for MINUTES
# minutes (default 10); then heal, drain, and count Jepsen's queue anomalies
# (tests/e2e/fault_checker.py; tests/e2e/test_fault_checker.py is the short form).
#
#   perf/fault_checker.sh [MINUTES] [extra fault_checker args, e.g. --seed 7 --rate 200]
#
# Writes perf/out/fault-checker-<UTC time>/summary.json and history.json (the raw acks, reads
# and drain), and keeps the brokers' logs and data beside them (cluster/nodeN/broker.log).
# Exits 1 when any anomaly count is not 0.
# Needs `cargo build --release` (RINGLOG_BIN overrides the binary) and the e2e venv
# (PYTHON overrides; default .venv/bin/python, else python3).
set -euo pipefail
cd "$(dirname "$0")/.."

MINUTES="${1:-10}"
shift || true
BIN="${RINGLOG_BIN:-$PWD/target/release/ringlog}"
PY="${PYTHON:-$PWD/.venv/bin/python}"
[ -x "$PY" ] || PY=python3
[ -x "$BIN" ] || { echo "no ringlog binary at $BIN (cargo build --release)" >&2; exit 2; }
OUT="$PWD/perf/out/fault-checker-$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$OUT"
echo "== fault checker: ${MINUTES} min against $BIN; output in $OUT"
cd tests/e2e
set +e
RINGLOG_BIN="$BIN" "$PY" -m fault_checker --duration "$(awk "BEGIN {print $MINUTES * 60}")" --workdir "$OUT/cluster" \
    --out "$OUT/summary.json" "$@" > "$OUT/stdout.json" 2> "$OUT/checker.log"
rc=$?
set -e
grep '^\[fault_checker' "$OUT/checker.log" | tail -5
if [ -f "$OUT/summary.json" ]; then
    "$PY" - "$OUT/summary.json" <<'EOF'
import json, sys
s = json.load(open(sys.argv[1]))
c, n = s["context"], s["nemesis"]
print(f"valid={s['valid']} anomalies={s['anomalies']}")
print(f"acknowledged={c['acknowledged']} attempted={c['attempted']} indeterminate={c['indeterminate']} "
      f"drained={c['drained']} faults={n['counts']} isr_recovery_timeouts={n['isr_recovery_timeouts']} "
      f"offset_resets={s['consumer_offset_resets']} producer_fatal={len(s['producer_fatal_errors'])}")
EOF
fi
exit $rc
