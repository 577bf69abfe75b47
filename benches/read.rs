//! Criterion benches of the read workloads on the read fixture (a wallet with 1,000,000 events
//! among 100,000 wallets at `BENCH_SIZE=full`; 100,000 among 10,000 by default): its figures at
//! an instant after its last event (due expiries derived), and as of mid-history (replay).
//!
//! ```text
//! cargo bench --bench read
//! BENCH_SIZE=full cargo bench --bench read
//! ```

mod common;

use common::*;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::time::Duration;

fn read_wallet(c: &mut Criterion) {
    let size = Size::from_env();
    let f = read_fixture(&size);
    let ours = Ours::open(&f.ours());
    let theirs = Sql::open(&f.theirs(), true);
    assert_eq!(
        ours.figures(f.big, f.t_read),
        theirs.figures(f.big, f.t_read),
        "both engines read the same figures"
    );
    let mut g = c.benchmark_group("read_wallet_1m_events");
    g.throughput(Throughput::Elements(1));
    g.bench_function("ours", |b| b.iter(|| ours.figures(f.big, f.t_read)));
    g.bench_function("sqlite", |b| b.iter(|| theirs.figures(f.big, f.t_read)));
    g.finish();
}

fn replay_as_of(c: &mut Criterion) {
    let size = Size::from_env();
    let f = read_fixture(&size);
    let ours = Ours::open(&f.ours());
    let theirs = Sql::open(&f.theirs(), true);
    assert_eq!(
        ours.figures(f.big, f.t_mid),
        theirs.figures_as_of(f.big, f.t_mid).0,
        "both engines compute the same figures"
    );
    let mut g = c.benchmark_group("replay_as_of_1m_events");
    g.throughput(Throughput::Elements(f.events_to_mid))
        .sample_size(10)
        .measurement_time(Duration::from_secs(10));
    g.bench_function("ours", |b| b.iter(|| ours.figures(f.big, f.t_mid)));
    g.bench_function("sqlite", |b| {
        b.iter(|| theirs.figures_as_of(f.big, f.t_mid))
    });
    g.finish();
}

criterion_group!(benches, read_wallet, replay_as_of);
criterion_main!(benches);
