#!/usr/bin/env python3
"""Pages written per durable commit, from an strace log.

    strace -f -e trace=openat,pwrite64,fdatasync,fsync -o /tmp/st.txt \
        target/release/examples/perf_report --quick --only append_single_durable --engine ours
    benches/pages_per_commit.py /tmp/st.txt 'scratch-single.*/ours.redb$'

PATTERN (a regex) picks the file(s) whose writes and syncs are counted (raw redb:
'scratch-single.*/raw.redb$'; SQLite: 'scratch-single.*/theirs.sqlite(-wal)?$'). Each
fdatasync/fsync on them closes a commit. Prints the per-commit means over the measured
commits: the first three syncs (opening) are skipped, and syncs that wrote 100 pwrites or
more (a flush of the in-memory layer at close, a SQLite checkpoint) are counted apart.
"""
import re
import sys


def main(path, pattern):
    fds, cur, commits = set(), [0, 0], []
    for line in open(path):
        m = re.match(r'\d+\s+openat\(AT_FDCWD, "([^"]+)".*= (\d+)', line)
        if m:
            (fds.add if re.search(pattern, m.group(1)) else fds.discard)(m.group(2))
            continue
        m = re.match(r'\d+\s+pwrite64\((\d+), .*, \d+, \d+\)\s+= (\d+)', line)
        if m and m.group(1) in fds:
            cur[0] += 1
            cur[1] += int(m.group(2))
            continue
        m = re.match(r'\d+\s+f(?:data)?sync\((\d+)\)', line)
        if m and m.group(1) in fds:
            commits.append(tuple(cur))
            cur = [0, 0]
    body = commits[3:]
    small = [c for c in body if c[0] < 100]
    big = [c for c in body if c[0] >= 100]
    n = len(small)
    print(f"{n} commits: {sum(c[0] for c in small) / n:.2f} pwrites, "
          f"{sum(c[1] for c in small) / n / 4096:.2f} pages of 4 KiB, "
          f"{sum(c[1] for c in small) / n / 1024:.1f} KiB per commit")
    if big:
        print(f"{len(big)} large syncs apart (flush at close, checkpoints): "
              f"{', '.join(str(c[1] // 4096) for c in big)} pages")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
