#!/usr/bin/env bash
# Times 1,000 single-topic CreateTopics against each broker binary in turn (perf/create_topics.py),
# each with a fresh data directory and --cores 2. Alternate the binaries to compare in one sitting:
#   perf/create_topics_ab.sh /tmp/base/ringlog target/release/ringlog /tmp/base/ringlog target/release/ringlog
set -u
cd "$(dirname "$0")/.."
DIR=/tmp/ringlog-create-topics
PORT=19111
for bin in "$@"; do
    rm -rf "$DIR" && mkdir -p "$DIR"
    "$bin" serve --listen 127.0.0.1:$PORT --data-dir "$DIR" --cores 2 --admin-listen 127.0.0.1:$((PORT + 1)) > "$DIR.log" 2>&1 &
    pid=$!
    for _ in $(seq 100); do (echo > /dev/tcp/127.0.0.1/$PORT) 2>/dev/null && break; sleep 0.1; done
    sleep 1
    printf 'bin=%s ' "$bin"
    python3 perf/create_topics.py --bootstrap 127.0.0.1:$PORT --count "${COUNT:-1000}"
    kill -TERM "$pid"
    wait "$pid"
done
rm -rf "$DIR" "$DIR.log"
