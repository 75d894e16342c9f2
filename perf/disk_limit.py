#!/usr/bin/env python3
"""O_DIRECT sequential bandwidth of a directory's disk, for machines without fio.

    perf/disk_limit.py DIR [--seconds 3] [--threads 4] [--block 1048576]

Each thread writes (then reads) its own 1 GiB region of one file with O_DIRECT, so the disk sees
`--threads` requests in flight, like fio's iodepth. Prints `write_mb_s=… read_mb_s=…`.
scripts/limits.sh (fio) is the reference where fio exists; this is the stand-in on the lent
many-core machine, which has neither fio nor a package registry.
"""
import argparse
import mmap
import os
import threading
import time

REGION = 1 << 30


def run(path, threads, block, seconds, write, extent=None):
    """Returns (MB/s, bytes each thread moved). Reads wrap within what `extent` says was written."""
    flags = (os.O_WRONLY | os.O_CREAT if write else os.O_RDONLY) | os.O_DIRECT
    fd = os.open(path, flags, 0o644)
    done = [0] * threads
    stop = time.monotonic() + seconds

    def worker(i):
        buf = mmap.mmap(-1, block)  # page-aligned, as O_DIRECT needs
        buf.write(os.urandom(block))
        pos = 0
        while time.monotonic() < stop:
            off = i * REGION + pos
            n = os.pwritev(fd, [buf], off) if write else os.preadv(fd, [buf], off)
            if n <= 0:
                raise OSError("short transfer at %d" % off)
            done[i] += n
            pos = (pos + block) % (REGION if write else max(block, min(REGION, extent[i])))

    start = time.monotonic()
    ts = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    elapsed = time.monotonic() - start
    os.close(fd)
    return sum(done) / elapsed / 1e6, done


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--seconds", type=float, default=3)
    ap.add_argument("--threads", type=int, default=4)
    ap.add_argument("--block", type=int, default=1 << 20)
    a = ap.parse_args()
    path = os.path.join(a.dir, "disk_limit.tmp")
    try:
        w, written = run(path, a.threads, a.block, a.seconds, True)
        os.sync()
        r, _ = run(path, a.threads, a.block, a.seconds, False, written)
    finally:
        if os.path.exists(path):
            os.unlink(path)
    print("write_mb_s=%.1f read_mb_s=%.1f" % (w, r))


if __name__ == "__main__":
    main()
