#!/usr/bin/env bash
# Measures this machine's own limits, in one run, so benchmark figures can be stated as ratios of them:
#   - O_DIRECT sequential write bandwidth (fio, bs=1M and bs=128k) and read bandwidth (bs=1M)
#   - O_DIRECT sequential write bandwidth into never-written blocks (one pass over a fresh file):
#     what an appending log gets, and the disk bound its benchmarks are stated against
#   - 4 KiB O_DIRECT write + fdatasync latency (p50/p99/p99.9) and rate, over written blocks (the
#     floor) and into fallocate'd, never-written space (what a preallocating log segment pays)
#   - loopback TCP bandwidth (iperf3, 1 and 2 streams)
#   - memcpy bandwidth (256 MiB buffers, well past any cache)
# Prints a summary on stdout and writes KEY=VALUE lines (MB = 10^6 bytes, GB = 10^9 bytes).
# Runs as root on Debian 12 from a clean clone; installs fio, iperf3, gcc, python3 with apt when missing.
set -euo pipefail

usage() {
    cat <<'EOF'
Usage: scripts/limits.sh [--quick] [--out FILE] [DIR]

  DIR         directory on the disk to measure (default: ./data/limits-tmp under the repository);
              a scratch directory is made inside it and removed afterwards, and DIR itself too
              when this script created it
  --out FILE  KEY=VALUE results file (default: perf/limits.env under the repository)
  --quick     ~3 s per measurement and a smaller file (for smoke tests), ~30 s in all
              (the full run takes ~80 s)
  -h, --help  this text

Relative DIR and FILE are taken from the current directory.
EOF
}

# --- arguments ----------------------------------------------------------------------------------
QUICK=0
OUT=""
DIR=""
while (($#)); do
    case "$1" in
        --quick) QUICK=1 ;;
        --out) [ $# -ge 2 ] || { usage >&2; exit 2; }; OUT="$2"; shift ;;
        --out=*) OUT="${1#--out=}" ;;
        -h | --help) usage; exit 0 ;;
        -*) echo "limits.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
        *) [ -z "$DIR" ] || { usage >&2; exit 2; }; DIR="$1" ;;
    esac
    shift
done
# User paths are relative to the caller's directory; the defaults to the repository root.
[ -z "$OUT" ] || OUT="$(realpath -m -- "$OUT")"
[ -z "$DIR" ] || DIR="$(realpath -m -- "$DIR")"
cd "$(dirname "${BASH_SOURCE[0]}")/.."
REPO="$PWD"
OUT="${OUT:-$REPO/perf/limits.env}"
DIR="${DIR:-$REPO/data/limits-tmp}"

if ((QUICK)); then
    RT=3           # seconds per fio job
    SYNC_RT=3      # write+fdatasync, over written blocks
    PREALLOC_RT=2  # write+fdatasync, into fallocate'd space
    NET_T=3        # iperf3 -t
    NET_OMIT=0     # iperf3 -O (seconds left out at the start)
    MEMCPY_S=0.5
    WANT_SIZE=$((256 << 20))
    WANT_NEW_SIZE=$((512 << 20))
else
    RT=10
    SYNC_RT=10
    PREALLOC_RT=5
    NET_T=6
    NET_OMIT=1
    MEMCPY_S=2
    WANT_SIZE=$((2 << 30))
    WANT_NEW_SIZE=$((8 << 30))
fi
IODEPTH=16
SYNC_SIZE=$((64 << 20)) # region the 4 KiB write+fdatasync job cycles over

export DEBIAN_FRONTEND=noninteractive
log() { printf '[%s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { printf 'limits.sh: %s\n' "$*" >&2; exit 1; }

# --- tools ----------------------------------------------------------------------------------------
missing=()
command -v fio >/dev/null 2>&1 || missing+=(fio)
command -v iperf3 >/dev/null 2>&1 || missing+=(iperf3)
command -v gcc >/dev/null 2>&1 || missing+=(gcc libc6-dev)
command -v python3 >/dev/null 2>&1 || missing+=(python3)
if ((${#missing[@]})); then
    log "apt-get install ${missing[*]}"
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
    # Update the package lists only when there are none, or when installing from them fails.
    if ! compgen -G "/var/lib/apt/lists/*_Packages*" >/dev/null; then
        $SUDO apt-get update -q >&2
    fi
    if ! $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}" >&2; then
        $SUDO apt-get update -q >&2
        $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
    fi
fi

# --- scratch space and cleanup ------------------------------------------------------------------
TMP=""
WORK=""
CREATED_DIRS=() # directories this script made, deepest first
IPERF_PID=""
cleanup() {
    local rc=$?
    if [ -n "$IPERF_PID" ]; then
        kill "$IPERF_PID" 2>/dev/null || true
        wait "$IPERF_PID" 2>/dev/null || true
    fi
    [ -z "$WORK" ] || rm -rf -- "$WORK"
    local d
    for d in "${CREATED_DIRS[@]}"; do rmdir -- "$d" 2>/dev/null || break; done
    [ -z "$TMP" ] || rm -rf -- "$TMP"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

TMP="$(mktemp -d /tmp/ringlog-limits.XXXXXX)"
d="$DIR"
while [ ! -e "$d" ]; do
    CREATED_DIRS+=("$d")
    d="$(dirname -- "$d")"
done
mkdir -p -- "$DIR"
WORK="$(mktemp -d "$DIR/limits.XXXXXX")"
DATA="$WORK/seq.dat"
PREALLOC="$WORK/prealloc.dat"

# The file is at most half the free space (the prealloc job's file replaces it, never joins it).
avail=$(df -B1 --output=avail -- "$WORK" | tail -n 1 | tr -d ' ')
SIZE=$WANT_SIZE
if ((SIZE > avail / 2)); then
    SIZE=$(((avail / 2) >> 20 << 20))
    ((SIZE >= 64 << 20)) || die "only $((avail >> 20)) MiB free under $DIR; need at least 128 MiB"
    log "only $((avail >> 20)) MiB free: using a $((SIZE >> 20)) MiB file"
fi

# --- python helpers (json, no jq) ---------------------------------------------------------------
cat >"$TMP/parse.py" <<'EOF'
import json, sys

def load(path):
    text = open(path).read()
    # fio can print warnings before the JSON document; start at the first brace.
    return json.loads(text[text.index("{"):])

def pct(stat, p):
    table = stat.get("percentile") or {}
    for key, value in table.items():
        if abs(float(key) - p) < 1e-6:
            return value / 1000.0
    return 0.0

cmd, path = sys.argv[1], sys.argv[2]
if cmd == "fio-bw":  # <MB/s> <io bytes>
    job = load(path)["jobs"][0]
    if job.get("error"):
        sys.exit("fio job error %s" % job["error"])
    d = job[sys.argv[3]]
    print("%.1f %d" % (d["bw_bytes"] / 1e6, d["io_bytes"]))
elif cmd == "fio-sync":  # KEY=VALUE lines for a write+fdatasync job
    job = load(path)["jobs"][0]
    if job.get("error"):
        sys.exit("fio job error %s" % job["error"])
    prefix = sys.argv[3]
    w, s = job["write"]["clat_ns"], job["sync"]["lat_ns"]
    iops = job["write"]["iops"]
    out = {"IOPS": "%.0f" % iops, "MEAN_US": "%.0f" % (1e6 / iops if iops else 0)}
    ranks = (("P50", 50.0), ("P99", 99.0), ("P999", 99.9))
    # Whole-operation percentile, taken as the write's plus the fdatasync's at the same rank
    # (fio times the two apart); the parts come as _WRITE_ and _SYNC_ keys.
    for name, p in ranks:
        out[name + "_US"] = "%.0f" % (pct(w, p) + pct(s, p))
    for part, stat in (("WRITE_", w), ("SYNC_", s)):
        for name, p in ranks:
            out[part + name + "_US"] = "%.0f" % pct(stat, p)
    for k, v in out.items():
        print("%s_%s=%s" % (prefix, k, v))
elif cmd == "iperf":  # <MB/s> <Gbit/s>
    doc = load(path)
    if doc.get("error"):
        sys.exit("iperf3: %s" % doc["error"])
    bps = doc["end"]["sum_received"]["bits_per_second"]
    print("%.1f %.2f" % (bps / 8e6, bps / 1e9))
EOF
py() { python3 "$TMP/parse.py" "$@"; }

declare -A R=()
KEYS=()
put() { # put KEY VALUE
    [ -n "${R[$1]+x}" ] || KEYS+=("$1")
    R[$1]="$2"
}

# --- context --------------------------------------------------------------------------------------
put DATE "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
put MODE "$([ "$QUICK" = 1 ] && echo quick || echo full)"
put HOST_NAME "$(hostname 2>/dev/null || cat /etc/hostname 2>/dev/null || echo unknown)"
put HOSTNAME_CORES "$(nproc)"
put CPU_MODEL "$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1 | tr -s ' \t' '__' | tr -cd 'A-Za-z0-9_.@()-')"
put MEM_TOTAL_MIB "$(awk '/^MemTotal:/ {print int($2 / 1024)}' /proc/meminfo)"
put KERNEL "$(uname -r)"
put DATA_DIR "$DIR"
src="$(findmnt -n -o SOURCE -T "$WORK" 2>/dev/null | head -n 1 || true)"
put DATA_FS "$(findmnt -n -o FSTYPE -T "$WORK" 2>/dev/null | head -n 1 || echo unknown)"
put DATA_DEV "${src:-unknown}"
rota=unknown
if [ -b "${src:-}" ]; then
    blk="$(lsblk -ndo PKNAME "$src" 2>/dev/null || true)"
    [ -n "$blk" ] || blk="$(basename "$(realpath "$src")")"
    [ ! -r "/sys/block/$blk/queue/rotational" ] || rota="$(cat "/sys/block/$blk/queue/rotational")"
    wc_mode="$(cat "/sys/block/$blk/queue/write_cache" 2>/dev/null | tr ' ' '_' || true)"
    put DATA_WRITE_CACHE "${wc_mode:-unknown}"
fi
put DATA_ROTATIONAL "$rota"
put FIO_VERSION "$(fio --version)"
put IPERF3_VERSION "$(iperf3 --version 2>/dev/null | head -n 1 | awk '{print $2}')"
put FILE_SIZE_MIB "$((SIZE >> 20))"

# --- fio ----------------------------------------------------------------------------------------
ENGINE=""
for e in io_uring libaio psync; do
    if fio --name=probe --filename="$WORK/probe" --size=1M --bs=4k --rw=write --direct=1 \
        --ioengine="$e" --iodepth=4 --output="$TMP/probe.out" >/dev/null 2>"$TMP/probe.err"; then
        ENGINE="$e"
        break
    fi
    log "fio ioengine=$e with direct=1 does not work here: $(tr '\n' ' ' <"$TMP/probe.err" | cut -c1-200)"
done
rm -f -- "$WORK/probe"
[ -n "$ENGINE" ] || die "fio cannot do O_DIRECT I/O under $DIR (filesystem without O_DIRECT?)"
put FIO_IOENGINE "$ENGINE"
log "disk: $DIR on ${R[DATA_DEV]} (${R[DATA_FS]}, rotational=$rota), fio $ENGINE, file $((SIZE >> 20)) MiB"

fio_run() { # fio_run NAME RUNTIME ARGS... -> $TMP/NAME.json; RUNTIME 0: one pass over --size
    local name="$1" runtime="$2" timed=()
    shift 2
    ((runtime == 0)) || timed=(--time_based --runtime="$runtime")
    if ! timeout $((runtime + 120)) fio --name="$name" --ioengine="$ENGINE" --direct=1 --numjobs=1 \
        "${timed[@]}" --output-format=json --output="$TMP/$name.json" \
        "$@" >"$TMP/$name.log" 2>&1; then
        cat "$TMP/$name.log" >&2
        die "fio job $name failed"
    fi
}

# bandwidth KEY JOB RW BS SIZE: one O_DIRECT sequential job; its MB/s goes to KEY and the bytes
# it moved to $BW_BYTES (a global: `put` must run in this shell, not in a subshell).
bandwidth() {
    local key=$1 job=$2 rw=$3 bs=$4 size=$5 mbps
    log "O_DIRECT sequential $rw, bs=$bs, iodepth=$IODEPTH, ${RT}s"
    fio_run "$job" "$RT" --filename="$DATA" --size="$size" --rw="$rw" --bs="$bs" --iodepth="$IODEPTH"
    read -r mbps BW_BYTES <<<"$(py fio-bw "$TMP/$job.json" "$rw")"
    put "$key" "$mbps"
}

bandwidth ODIRECT_WRITE_MBPS write1m write 1M "$SIZE"
bytes1=$BW_BYTES
bandwidth ODIRECT_WRITE_128K_MBPS write128k write 128k "$SIZE"
bytes2=$BW_BYTES

# Both writes start at offset 0; read only what they wrote, so no read lands on fallocate'd,
# never-written blocks (which the filesystem answers with zeros without touching the disk).
written=$((bytes1 > bytes2 ? bytes1 : bytes2))
RSIZE=$(((written < SIZE ? written : SIZE) >> 20 << 20))
((RSIZE >= 1 << 20)) || die "the write jobs wrote less than 1 MiB"
((RSIZE == SIZE)) || log "the writes covered only $((RSIZE >> 20)) MiB of the file: reading that"
put READ_SPAN_MIB "$((RSIZE >> 20))"

bandwidth ODIRECT_READ_MBPS read1m read 1M "$RSIZE"

# The jobs above wrap around one file, so after its first pass they rewrite blocks. A log never
# does: each segment is a new file. Where the disk is thin-provisioned (this VM's virtio disk,
# ext4 mounted with discard, so deleted segments' blocks go back to the host), a block's first
# write costs more than a rewrite: 1.3-1.7 GB/s against 2.0-3.5 GB/s here, with 1 or 3 writers
# and any queue depth (perf/RESULTS.md, session 17). One pass over a fresh, sparse file.
avail_now=$(df -B1 --output=avail -- "$WORK" | tail -n 1 | tr -d ' ')
NEW_SIZE=$(((WANT_NEW_SIZE < avail_now / 2 ? WANT_NEW_SIZE : avail_now / 2) >> 20 << 20))
log "O_DIRECT sequential write into never-written blocks, bs=1M, iodepth=$IODEPTH, one pass of $((NEW_SIZE >> 20)) MiB"
fio_run writenew 0 --filename="$WORK/new.dat" --size="$NEW_SIZE" --fallocate=none --rw=write --bs=1M \
    --iodepth="$IODEPTH"
read -r mbps _ <<<"$(py fio-bw "$TMP/writenew.json" write)"
put ODIRECT_WRITE_NEW_MBPS "$mbps"
put NEW_FILE_MIB "$((NEW_SIZE >> 20))"
rm -f -- "$WORK/new.dat"

# The floor: overwrite blocks already written, so fdatasync has no metadata to commit.
SSIZE=$((SYNC_SIZE < RSIZE ? SYNC_SIZE : RSIZE))
log "4 KiB O_DIRECT write + fdatasync over written blocks, iodepth=1, ${SYNC_RT}s"
fio_run fsync4k "$SYNC_RT" --filename="$DATA" --size="$SSIZE" --rw=write --bs=4k --iodepth=1 \
    --fdatasync=1
r="$(py fio-sync "$TMP/fsync4k.json" FSYNC_4K)"
while IFS='=' read -r k v; do put "$k" "$v"; done <<<"$r"

# What a log that preallocates pays: the first write into fallocate'd space converts unwritten
# extents, so each fdatasync also commits filesystem metadata (a journal commit on ext4/xfs).
rm -f -- "$DATA"
log "4 KiB O_DIRECT write + fdatasync into fallocate'd space, iodepth=1, ${PREALLOC_RT}s"
fio_run prealloc4k "$PREALLOC_RT" --filename="$PREALLOC" --size="$SIZE" --fallocate=native \
    --rw=write --bs=4k --iodepth=1 --fdatasync=1
r="$(py fio-sync "$TMP/prealloc4k.json" FSYNC_4K_PREALLOC)"
while IFS='=' read -r k v; do
    case "$k" in *_WRITE_* | *_SYNC_*) continue ;; esac
    put "$k" "$v"
done <<<"$r"
rm -f -- "$PREALLOC"

# --- iperf3 over loopback -----------------------------------------------------------------------
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
PORT=""
for _ in 1 2 3 4 5; do
    PORT="$(free_port)"
    : >"$TMP/iperf-server.log"
    iperf3 -s -B 127.0.0.1 -p "$PORT" --forceflush >"$TMP/iperf-server.log" 2>&1 &
    IPERF_PID=$!
    for _ in $(seq 50); do
        grep -q "Server listening" "$TMP/iperf-server.log" && break
        kill -0 "$IPERF_PID" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$IPERF_PID" 2>/dev/null && grep -q "Server listening" "$TMP/iperf-server.log"; then
        break
    fi
    kill "$IPERF_PID" 2>/dev/null || true
    wait "$IPERF_PID" 2>/dev/null || true
    IPERF_PID=""
done
[ -n "$IPERF_PID" ] || { cat "$TMP/iperf-server.log" >&2; die "iperf3 server did not start"; }

iperf_run() { # iperf_run NAME STREAMS -> "MB/s Gbit/s"
    local name="$1" streams="$2" try
    for try in 1 2 3 4 5; do
        if timeout $((NET_T + NET_OMIT + 30)) iperf3 -c 127.0.0.1 -p "$PORT" -t "$NET_T" \
            -O "$NET_OMIT" -P "$streams" -J >"$TMP/$name.json" 2>"$TMP/$name.err" &&
            py iperf "$TMP/$name.json" 2>>"$TMP/$name.err"; then
            return 0
        fi
        sleep 0.5 # the server may still be closing the previous test ("server is busy")
    done
    cat "$TMP/$name.err" "$TMP/$name.json" >&2
    die "iperf3 client ($name) failed"
}
log "loopback TCP, iperf3 on 127.0.0.1:$PORT, 1 stream, ${NET_T}s"
r="$(iperf_run tcp1 1)"
read -r mbps gbit <<<"$r"
put LOOPBACK_TCP_MBPS "$mbps"
put LOOPBACK_TCP_GBITS "$gbit"
log "loopback TCP, 2 streams (-P 2), ${NET_T}s"
r="$(iperf_run tcp2 2)"
read -r mbps gbit <<<"$r"
put LOOPBACK_TCP_P2_MBPS "$mbps"
put LOOPBACK_TCP_P2_GBITS "$gbit"
kill "$IPERF_PID" 2>/dev/null || true
wait "$IPERF_PID" 2>/dev/null || true
IPERF_PID=""

# --- memcpy ---------------------------------------------------------------------------------------
cat >"$TMP/memcpy.c" <<'EOF'
/* Copies a 256 MiB buffer back and forth for at least argv[1] seconds (3 copies at least).
 * Prints "<sustained GB/s> <best single copy GB/s> <copies>", counting bytes copied (not read+written). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
    const size_t n = (size_t)256 << 20;
    double min_secs = argc > 1 ? atof(argv[1]) : 2.0;
    unsigned char *a = aligned_alloc(4096, n), *b = aligned_alloc(4096, n);
    if (!a || !b) { perror("aligned_alloc"); return 1; }
    memset(a, 0x5a, n); /* fault every page in before timing */
    memset(b, 0xa5, n);
    memcpy(b, a, n);    /* warm-up */
    double best = 0, start = now(), end;
    int copies = 0;
    do {
        double t0 = now();
        if (copies & 1) memcpy(a, b, n); else memcpy(b, a, n);
        end = now();
        double rate = (double)n / (end - t0);
        if (rate > best) best = rate;
        copies++;
    } while (end - start < min_secs || copies < 3);
    unsigned long sum = 0; /* use the results so no copy can be optimised away */
    for (size_t i = 0; i < n; i += 4096) sum += a[i] ^ b[i];
    printf("%.2f %.2f %d\n", (double)n * copies / (end - start) / 1e9, best / 1e9, copies);
    return sum == 1 ? 2 : 0;
}
EOF
log "memcpy, 256 MiB buffers, ${MEMCPY_S}s"
gcc -O2 -o "$TMP/memcpy" "$TMP/memcpy.c"
r="$("$TMP/memcpy" "$MEMCPY_S")"
read -r gbps best _ <<<"$r"
put MEMCPY_GBPS "$gbps"
put MEMCPY_BEST_GBPS "$best"

# --- output -------------------------------------------------------------------------------------
mkdir -p -- "$(dirname -- "$OUT")"
{
    echo "# Ringlog machine limits (scripts/limits.sh); MB = 10^6 bytes, GB = 10^9 bytes."
    for k in "${KEYS[@]}"; do printf '%s=%s\n' "$k" "${R[$k]}"; done
} >"$OUT.tmp.$$"
mv -f -- "$OUT.tmp.$$" "$OUT"

cat <<EOF

Machine limits (${R[MODE]} run, ${R[DATE]})
  host            ${R[HOST_NAME]}: ${R[HOSTNAME_CORES]} cores, ${R[MEM_TOTAL_MIB]} MiB, kernel ${R[KERNEL]}
  disk            $DIR on ${R[DATA_DEV]} (${R[DATA_FS]}, rotational=${R[DATA_ROTATIONAL]}, cache=${R[DATA_WRITE_CACHE]:-unknown})
                  fio ${R[FIO_VERSION]}, ioengine=$ENGINE, iodepth=$IODEPTH, ${R[FILE_SIZE_MIB]} MiB file
  O_DIRECT write  bs=1M   ${R[ODIRECT_WRITE_MBPS]} MB/s
                  bs=128k ${R[ODIRECT_WRITE_128K_MBPS]} MB/s
                  bs=1M into never-written blocks ${R[ODIRECT_WRITE_NEW_MBPS]} MB/s (one pass, ${R[NEW_FILE_MIB]} MiB): an appending log's bound
  O_DIRECT read   bs=1M   ${R[ODIRECT_READ_MBPS]} MB/s (over ${R[READ_SPAN_MIB]} MiB)
  4 KiB write + fdatasync (O_DIRECT, iodepth=1)
    written blocks  ${R[FSYNC_4K_IOPS]} IOPS; p50 ${R[FSYNC_4K_P50_US]} us, p99 ${R[FSYNC_4K_P99_US]} us, p99.9 ${R[FSYNC_4K_P999_US]} us
                    (write p50/p99/p99.9 ${R[FSYNC_4K_WRITE_P50_US]}/${R[FSYNC_4K_WRITE_P99_US]}/${R[FSYNC_4K_WRITE_P999_US]} us; fdatasync ${R[FSYNC_4K_SYNC_P50_US]}/${R[FSYNC_4K_SYNC_P99_US]}/${R[FSYNC_4K_SYNC_P999_US]} us)
    fallocate'd     ${R[FSYNC_4K_PREALLOC_IOPS]} IOPS; p50 ${R[FSYNC_4K_PREALLOC_P50_US]} us, p99 ${R[FSYNC_4K_PREALLOC_P99_US]} us, p99.9 ${R[FSYNC_4K_PREALLOC_P999_US]} us
  loopback TCP    1 stream  ${R[LOOPBACK_TCP_GBITS]} Gbit/s = ${R[LOOPBACK_TCP_MBPS]} MB/s
                  2 streams ${R[LOOPBACK_TCP_P2_GBITS]} Gbit/s = ${R[LOOPBACK_TCP_P2_MBPS]} MB/s
  memcpy          ${R[MEMCPY_GBPS]} GB/s sustained (best copy ${R[MEMCPY_BEST_GBPS]} GB/s), bytes copied
  written to      $OUT
EOF
