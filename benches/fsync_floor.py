#!/usr/bin/env python3
"""This disk's durable-write floor: 4 KiB pwrite + fdatasync, N times (default 2,000).

    benches/fsync_floor.py target [N]

Two patterns, on a scratch file in DIR (use the filesystem the benchmarks write to):
  overwrite  the same 64 blocks, rewritten in place (what a commit costs when its pages
             land in blocks the file already has)
  append     each write a new block at the end (the file grows: every fdatasync also
             commits the block allocation to the ext4 journal)
Prints writes+fdatasyncs per second and latency percentiles for each. On a shared VM the
result flips between a fast state (~0.1-0.2 ms) and a slow one (~4 ms); run it beside the
benchmark it is compared with.
"""
import os
import sys
import time


def main(d, n):
    buf = os.urandom(4096)
    for mode in ("overwrite", "append"):
        p = os.path.join(d, "fsync-floor.tmp")
        fd = os.open(p, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
        if mode == "overwrite":
            os.pwrite(fd, b"\0" * 4096 * 64, 0)
            os.fsync(fd)
        lat = []
        t0 = time.perf_counter()
        for i in range(n):
            off = (i % 64) * 4096 if mode == "overwrite" else i * 4096
            t = time.perf_counter()
            os.pwrite(fd, buf, off)
            os.fdatasync(fd)
            lat.append(time.perf_counter() - t)
        el = time.perf_counter() - t0
        os.close(fd)
        os.unlink(p)
        lat.sort()
        print(f"{mode}: {n / el:.0f} write+fdatasync/s, p50 {lat[n // 2] * 1e6:.0f} us, "
              f"p90 {lat[n * 9 // 10] * 1e6:.0f} us, p99 {lat[n * 99 // 100] * 1e6:.0f} us")


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 2000)
