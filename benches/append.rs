//! Criterion benches of the append workloads: one durable command per commit, batches of 1,000
//! commands, and 16 threads each committing its own commands. Each engine works on its own copy
//! of the aged fixture (see `common`). `BENCH_SIZE=full` for the full sizes (default: quick).
//!
//! ```text
//! cargo bench --bench append
//! ```

mod common;

use common::*;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::cell::RefCell;
use std::time::{Duration, Instant};

fn single_durable(c: &mut Criterion) {
    let size = Size::from_env();
    let aged = aged_fixture(&size);
    let scratch = Scratch::new("bench-single");
    let (op, tp) = aged.copy_into(&scratch);
    let ours = Ours::open(&op);
    let theirs = Sql::open(&tp, true);
    let raw = Raw::create(&scratch.path("raw.redb"));
    let mut g = c.benchmark_group("append_single_durable");
    g.throughput(Throughput::Elements(1))
        .sample_size(10)
        .measurement_time(Duration::from_secs(5));
    let clocks = RefCell::new(Clocks::new(size.append_wallets, size.append_age));
    g.bench_function("ours", |b| {
        b.iter_custom(|iters| {
            let ops = clocks.borrow_mut().take_rr(iters as usize);
            let t = Instant::now();
            for op in &ops {
                ours.exec(op);
            }
            t.elapsed()
        })
    });
    let clocks = RefCell::new(Clocks::new(size.append_wallets, size.append_age));
    g.bench_function("sqlite", |b| {
        b.iter_custom(|iters| {
            let ops = clocks.borrow_mut().take_rr(iters as usize);
            let t = Instant::now();
            for op in &ops {
                theirs.exec(op);
            }
            t.elapsed()
        })
    });
    g.bench_function("raw_redb", |b| {
        b.iter(|| raw.commit(1, RAW_BYTES_PER_COMMAND));
    });
    g.finish();
}

fn batch_1000(c: &mut Criterion) {
    let size = Size::from_env();
    let aged = aged_fixture(&size);
    let scratch = Scratch::new("bench-batch");
    let (op, tp) = aged.copy_into(&scratch);
    let ours = Ours::open(&op);
    let theirs = Sql::open(&tp, true);
    let raw = Raw::create(&scratch.path("raw.redb"));
    let b = size.batch_size;
    let mut g = c.benchmark_group("append_batch_1000");
    g.throughput(Throughput::Elements(b as u64))
        .sample_size(10)
        .measurement_time(Duration::from_secs(10));
    let clocks = RefCell::new(Clocks::new(size.append_wallets, size.append_age));
    g.bench_function("ours", |bn| {
        bn.iter_custom(|iters| {
            let batches: Vec<Vec<Op>> =
                (0..iters).map(|_| clocks.borrow_mut().take_rr(b)).collect();
            let t = Instant::now();
            for ops in &batches {
                ours.exec_batch(ops);
            }
            t.elapsed()
        })
    });
    let clocks = RefCell::new(Clocks::new(size.append_wallets, size.append_age));
    g.bench_function("sqlite", |bn| {
        bn.iter_custom(|iters| {
            let batches: Vec<Vec<Op>> =
                (0..iters).map(|_| clocks.borrow_mut().take_rr(b)).collect();
            let t = Instant::now();
            for ops in &batches {
                theirs.exec_batch(ops);
            }
            t.elapsed()
        })
    });
    g.bench_function("raw_redb", |bn| {
        bn.iter(|| raw.commit(b, RAW_BYTES_PER_COMMAND));
    });
    g.finish();
}

/// Runs at least `iters` commands on `threads` threads and scales the wall time to `iters`.
fn threaded(
    iters: u64,
    threads: usize,
    clocks: &RefCell<Clocks>,
    f: impl Fn(&Op) + Sync,
) -> Duration {
    let per = (iters as usize).div_ceil(threads);
    let work = clocks.borrow_mut().take_threads(threads, per);
    let ran = (per * threads) as f64;
    run_threads(work, f).mul_f64(iters as f64 / ran)
}

fn group_commit_16(c: &mut Criterion) {
    let size = Size::from_env();
    let aged = aged_fixture(&size);
    let scratch = Scratch::new("bench-group");
    let (op, tp) = aged.copy_into(&scratch);
    let ours = Ours::open(&op);
    let theirs = Sql::open(&tp, true);
    let threads = size.group_threads;
    let mut g = c.benchmark_group("append_group_commit_16");
    g.throughput(Throughput::Elements(1))
        .sample_size(10)
        .measurement_time(Duration::from_secs(5));
    let clocks = RefCell::new(Clocks::new(size.append_wallets, size.append_age));
    g.bench_function("ours_16_threads", |b| {
        b.iter_custom(|iters| {
            threaded(iters, threads, &clocks, |x| {
                ours.exec(x);
            })
        })
    });
    g.bench_function("ours_1_thread", |b| {
        b.iter_custom(|iters| {
            let ops = clocks.borrow_mut().take_rr(iters as usize);
            let t = Instant::now();
            for op in &ops {
                ours.exec(op);
            }
            t.elapsed()
        })
    });
    // SQLite as we would ship it: one connection behind a mutex.
    let clocks = RefCell::new(Clocks::new(size.append_wallets, size.append_age));
    g.bench_function("sqlite_16_threads", |b| {
        b.iter_custom(|iters| {
            threaded(iters, threads, &clocks, |x| {
                theirs.exec(x);
            })
        })
    });
    g.finish();
}

criterion_group!(benches, single_durable, batch_1000, group_commit_16);
criterion_main!(benches);
