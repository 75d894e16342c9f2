#!/usr/bin/env bash
# Issue 18's transactional throughput: transactions of 100 records against the same workload
# without transactions, RF=1 and RF=3, on a 3-broker cluster, for Ringlog and (PEERS) Apache Kafka
# 4.x side by side on this machine. Each pair runs back to back (the disk drifts over minutes).
#
#   perf/txn.sh                 # both peers
#   PEERS=ringlog perf/txn.sh   # Ringlog only
#
# Prints each run's summary line; the ratio is txn MB/s / idem MB/s of the same peer and RF.
set -euo pipefail
cd "$(dirname "$0")/.."
for peer in ${PEERS:-ringlog kafka}; do
    for rf in 1 3; do
        for kind in idem txn; do
            PEER=$peer perf/cluster.sh "perf/workloads/$kind-100-rf$rf.toml" "$peer-$kind-100-rf$rf" | grep -v '^broker'
        done
    done
done
