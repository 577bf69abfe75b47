#!/usr/bin/env bash
# Reproduces the figures of BENCHMARKS.md: the report (one JSON line per workload), then the
# peak memory (max RSS) of every workload, one engine per process.
#
#   benches/measure.sh            # full sizes (first run builds the fixtures: ~3 minutes)
#   benches/measure.sh --quick    # small sizes
#
# Output: target/bench-fixtures/report[-quick].jsonl and memory[-quick].tsv (under
# $CARGO_TARGET_DIR when set).
set -euo pipefail
cd "$(dirname "$0")/.."
size=${1:-}
suffix=${size:+-quick}
cargo build --release --example perf_report
target=${CARGO_TARGET_DIR:-target}
bin=$target/release/examples/perf_report
out=$target/bench-fixtures
mkdir -p "$out"

echo "== machine"
echo "nproc: $(nproc)"
grep -m1 'model name' /proc/cpuinfo || true
echo "load: $(cut -d' ' -f1-3 /proc/loadavg)"

echo "== report"
$bin $size | tee "$out/report$suffix.jsonl"

echo "== peak memory (max RSS, KiB), one engine per process"
printf 'workload\tours\ttheirs\tbaseline\n' | tee "$out/memory$suffix.tsv"
# Rows that share a measurement with one of these (append_single_vs_raw_redb,
# append_group_vs_sqlite_16) or read only fixture metadata (storage_*) are left out, as is
# recovery_open (its writer is a child process).
for w in append_single_durable append_batch_1000 append_group_commit_16 append_growth_10x \
         read_wallet_1m_events read_random_wallet_100k replay_as_of_1m_events; do
  row="$w"
  for e in ours theirs baseline; do
    if [ "$e" = baseline ] && { [ "$w" = append_group_commit_16 ] || [ "$w" = append_growth_10x ]; }; then
      row="$row\t-"   # the baseline of these rows is ours (one thread; the small ledger)
      continue
    fi
    /usr/bin/time -f '%M' -o "$out/rss.txt" $bin $size --only "$w" --engine "$e" > /dev/null 2>&1
    row="$row\t$(tail -1 "$out/rss.txt")"
  done
  printf "$row\n" | tee -a "$out/memory$suffix.tsv"
done
