//! Runs every benchmark workload once and prints one JSON line per workload:
//! `{"workload","ours","theirs","baseline","unit","ratio"}`, where `ours` is wallet-ledger,
//! `theirs` SQLite doing the same work, `baseline` what the row is held against (raw redb, our
//! own single-command rate for group commit, our rate into the small ledger for growth, the
//! 1,000 ms budget for recovery), and `ratio > 1` is better for us. Details (latency
//! percentiles, secondary ratios, per-table storage) go to stderr. Each workload's function
//! says what it measures; BENCHMARKS.md has the table.
//!
//! ```text
//! cargo run --release --example perf_report -- --quick            # small sizes, < 90 s
//! cargo run --release --example perf_report                       # full sizes
//! cargo run --release --example perf_report -- --only read_wallet_1m_events --engine ours
//! ```
//!
//! `--only NAME[,NAME]` runs some workloads; `--engine ours|theirs|baseline` runs one engine
//! (for peak-memory measurements with `/usr/bin/time -v`). Fixtures are built on first use and
//! cached in `target/bench-fixtures/`. See BENCHMARKS.md. Rows read from one measurement
//! (`append_single_durable` and `append_single_vs_raw_redb`; `append_group_commit_16` and
//! `append_group_vs_sqlite_16`) share it: it runs once, for whichever comes first.

#[path = "../benches/common/mod.rs"]
mod common;

use common::*;
use std::collections::HashMap;
use std::io::Write;
use std::time::{Duration, Instant};

const WORKLOADS: [&str; 12] = [
    "append_single_durable",
    "append_single_vs_raw_redb",
    "append_batch_1000",
    "append_group_commit_16",
    "append_group_vs_sqlite_16",
    "append_growth_10x",
    "read_wallet_1m_events",
    "read_random_wallet_100k",
    "replay_as_of_1m_events",
    "storage_bytes_per_event",
    "storage_as_written",
    "recovery_open",
];

#[derive(Clone, Copy)]
struct Engines {
    ours: bool,
    theirs: bool,
    baseline: bool,
}

struct Row {
    workload: &'static str,
    ours: Option<f64>,
    theirs: Option<f64>,
    baseline: Option<f64>,
    unit: &'static str,
    ratio: Option<f64>,
}

fn round(v: f64) -> f64 {
    if v.abs() >= 100.0 {
        v.round()
    } else {
        (v * 1000.0).round() / 1000.0
    }
}

fn div(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b != 0.0 => Some(a / b),
        _ => None,
    }
}

fn emit(r: &Row) {
    let line = serde_json::json!({
        "workload": r.workload,
        "ours": r.ours.map(round),
        "theirs": r.theirs.map(round),
        "baseline": r.baseline.map(round),
        "unit": r.unit,
        "ratio": r.ratio.map(|v| (v * 1000.0).round() / 1000.0),
    });
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}").unwrap();
    out.flush().unwrap();
}

fn main() {
    let mut quick = false;
    let mut only: Option<Vec<String>> = None;
    let mut engines = Engines {
        ours: true,
        theirs: true,
        baseline: true,
    };
    let mut child = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--quick" => quick = true,
            "--only" => {
                let v = args.next().unwrap_or_else(|| usage("--only needs a name"));
                only = Some(v.split(',').map(str::to_string).collect());
            }
            "--engine" => {
                let v = args
                    .next()
                    .unwrap_or_else(|| usage("--engine needs a name"));
                engines = Engines {
                    ours: v == "ours",
                    theirs: v == "theirs",
                    baseline: v == "baseline",
                };
                if !(engines.ours || engines.theirs || engines.baseline) {
                    usage("--engine is ours, theirs or baseline");
                }
            }
            "--bench" => {} // passed by `cargo bench`-style runners; ignored
            // Hidden: `recovery_open`'s child process.
            "--child-write" => {
                let Some(path) = args.next() else {
                    usage("--child-write needs a path")
                };
                child = Some(std::path::PathBuf::from(path));
            }
            other => usage(&format!("unknown argument {other}")),
        }
    }
    if let Some(o) = &only
        && let Some(bad) = o.iter().find(|n| !WORKLOADS.contains(&n.as_str()))
    {
        usage(&format!("unknown workload {bad}"));
    }
    let size = if quick { Size::quick() } else { Size::full() };
    if let Some(path) = child {
        recovery_child(&size, &path);
    }
    let started = Instant::now();
    eprintln!("# size {size:?}");
    // Measurements that more than one row is read from, taken once per run.
    let mut measured: HashMap<&str, Rates> = HashMap::new();
    for w in WORKLOADS {
        if only.as_ref().is_some_and(|o| !o.iter().any(|n| n == w)) {
            continue;
        }
        let t = Instant::now();
        let row = match w {
            "append_single_durable" | "append_single_vs_raw_redb" => single_row(
                w,
                measured
                    .entry("single")
                    .or_insert_with(|| append_single(&size, engines)),
            ),
            "append_batch_1000" => append_batch(&size, engines),
            "append_group_commit_16" | "append_group_vs_sqlite_16" => group_row(
                w,
                measured
                    .entry("group")
                    .or_insert_with(|| append_group(&size, engines)),
            ),
            "append_growth_10x" => append_growth(&size, engines),
            "read_wallet_1m_events" => read_wallet(&size, engines),
            "read_random_wallet_100k" => read_random(&size, engines),
            "replay_as_of_1m_events" => replay_as_of(&size, engines),
            "storage_bytes_per_event" => storage(&size),
            "storage_as_written" => storage_as_written(&size),
            "recovery_open" => recovery_open(&size, engines),
            _ => unreachable!(),
        };
        emit(&row);
        eprintln!("# {w} took {:.1}s", t.elapsed().as_secs_f64());
    }
    eprintln!("# total {:.1}s", started.elapsed().as_secs_f64());
}

fn usage(msg: &str) -> ! {
    eprintln!(
        "perf_report: {msg}\nusage: perf_report [--quick] [--only NAME[,NAME]] [--engine ours|theirs|baseline]\nworkloads: {}",
        WORKLOADS.join(", ")
    );
    std::process::exit(2)
}

/// Rates (commands/s) of one interleaved measurement, by contender name.
struct Rates(Vec<(String, f64)>);

impl Rates {
    fn of(&self, name: &str) -> Option<f64> {
        self.0.iter().find(|(n, _)| n == name).map(|&(_, r)| r)
    }
}

/// Runs the contenders interleaved (`common::interleave`), prints each one's rate and CPU and
/// returns the rates.
fn interleave(rounds: usize, cs: &mut [Contender]) -> Rates {
    common::interleave(rounds, cs);
    for c in cs.iter() {
        eprintln!(
            "#   {:>22}: {:>9.0} commands/s ({} commands in {:.2}s; CPU {:.1} µs/command)",
            c.name,
            c.rate(),
            c.commands,
            c.time.as_secs_f64(),
            c.cpu_us()
        );
    }
    Rates(cs.iter().map(|c| (c.name.clone(), c.rate())).collect())
}

const ROUNDS: usize = 5;

/// Runs, in round `r`, every command of `rounds[r]` as its own durable commit.
fn singles<'a>(name: &str, e: &'a dyn Engine, rounds: &'a [Vec<Op>]) -> Contender<'a> {
    Contender::new(name, move |r| {
        rounds[r].iter().for_each(|x| {
            e.exec(x);
        });
        rounds[r].len()
    })
}

/// Runs, in round `r`, every batch of `rounds[r]` as one transaction.
fn batches<'a>(name: &str, e: &'a dyn Engine, rounds: &'a [Vec<Vec<Op>>]) -> Contender<'a> {
    Contender::new(name, move |r| {
        rounds[r]
            .iter()
            .map(|b| {
                e.exec_batch(b);
                b.len()
            })
            .sum()
    })
}

/// Runs, in round `r`, `rounds[r][t]` on thread `t`, all threads at once; `exec(t, op)` runs one
/// command on thread `t`.
fn threads<'a>(
    name: &str,
    rounds: &'a [Vec<Vec<Op>>],
    exec: impl Fn(usize, &Op) + Sync + 'a,
) -> Contender<'a> {
    Contender::new(name, move |r| {
        run_threads_indexed(&rounds[r], &exec);
        rounds[r].iter().map(Vec::len).sum()
    })
}

/// The warm-up round and `ROUNDS` measured rounds of `per_round` batches of `b` commands each,
/// round-robin over the wallets.
fn batch_rounds(clocks: &mut Clocks, per_round: usize, b: usize) -> Vec<Vec<Vec<Op>>> {
    (0..=ROUNDS)
        .map(|_| (0..per_round).map(|_| clocks.take_rr(b)).collect())
        .collect()
}

/// Fresh, flushed copies of the aged fixture in `scratch`, opened for the engines asked for
/// (SQLite durable).
fn open_copy(aged: &AgedFixture, scratch: &Scratch, e: Engines) -> (Option<Ours>, Option<Sql>) {
    let (op, tp) = aged.copy_into(scratch);
    (
        e.ours.then(|| Ours::open(&op)),
        e.theirs.then(|| Sql::open(&tp, true)),
    )
}

fn as_engine<E: Engine>(e: &Option<E>) -> Option<&dyn Engine> {
    e.as_ref().map(|e| e as &dyn Engine)
}

/// After an append run on two engines: both files hold the same figures (a few wallets, read
/// after the last command).
fn check_same(a: Option<&dyn Engine>, b: Option<&dyn Engine>, wallets: u32, ops: &[Op]) {
    let (Some(a), Some(b)) = (a, b) else {
        return;
    };
    let t = ns(ops.iter().map(Op::at).max().unwrap_or(T0) + 1);
    for w in (0..wallets).step_by((wallets as usize / 4).max(1)) {
        assert_eq!(
            a.figures(w, t),
            b.figures(w, t),
            "wallet {w}: both engines agree"
        );
    }
}

/// One command per durable commit, round-robin over the aged fixture's wallets: ours, SQLite
/// and raw redb (one 512-byte insert per commit).
fn append_single(size: &Size, e: Engines) -> Rates {
    let aged = aged_fixture(size);
    let n = size.single_cmds;
    let per_round = n.div_ceil(ROUNDS);
    let mut clocks = Clocks::new(size.append_wallets, size.append_age);
    let rounds: Vec<Vec<Op>> = (0..=ROUNDS).map(|_| clocks.take_rr(per_round)).collect();
    let scratch = Scratch::new("single");
    let (ours, theirs) = open_copy(&aged, &scratch, e);
    let raw = e.baseline.then(|| Raw::create(&scratch.path("raw.redb")));
    let mut cs = Vec::new();
    if let Some(o) = &ours {
        cs.push(singles("ours", o, &rounds));
    }
    if let Some(s) = &theirs {
        cs.push(singles("SQLite", s, &rounds));
    }
    if let Some(raw) = &raw {
        cs.push(Contender::new("raw redb", |r| {
            for _ in &rounds[r] {
                raw.commit(1, RAW_BYTES_PER_COMMAND);
            }
            rounds[r].len()
        }));
    }
    eprintln!(
        "# append_single_durable: {ROUNDS} rounds of {per_round} commands, one durable commit each"
    );
    let rates = interleave(ROUNDS, &mut cs);
    drop(cs);
    check_same(
        as_engine(&ours),
        as_engine(&theirs),
        size.append_wallets,
        &rounds.concat(),
    );
    rates
}

/// `append_single_durable` (ratio against SQLite) and `append_single_vs_raw_redb` (against raw
/// redb's durable commits): two rows of one measurement.
fn single_row(workload: &'static str, m: &Rates) -> Row {
    let (ours, theirs, baseline) = (m.of("ours"), m.of("SQLite"), m.of("raw redb"));
    Row {
        workload,
        ours,
        theirs,
        baseline,
        unit: "commands/s",
        ratio: if workload == "append_single_vs_raw_redb" {
            div(ours, baseline)
        } else {
            div(ours, theirs)
        },
    }
}

fn append_batch(size: &Size, e: Engines) -> Row {
    let aged = aged_fixture(size);
    let b = size.batch_size;
    let per_round = size.batches.div_ceil(ROUNDS);
    let mut clocks = Clocks::new(size.append_wallets, size.append_age);
    let rounds = batch_rounds(&mut clocks, per_round, b);
    let scratch = Scratch::new("batch");
    let (ours, theirs) = open_copy(&aged, &scratch, e);
    let raw = e.baseline.then(|| Raw::create(&scratch.path("raw.redb")));
    let mut cs = Vec::new();
    if let Some(o) = &ours {
        cs.push(batches("ours", o, &rounds));
    }
    if let Some(s) = &theirs {
        cs.push(batches("SQLite", s, &rounds));
    }
    if let Some(raw) = &raw {
        cs.push(Contender::new("raw redb", |r| {
            for _ in &rounds[r] {
                raw.commit(b, RAW_BYTES_PER_COMMAND);
            }
            rounds[r].len() * b
        }));
    }
    eprintln!("# append_batch_1000: {ROUNDS} rounds of {per_round} batches of {b} commands");
    let m = interleave(ROUNDS, &mut cs);
    let rates = (m.of("ours"), m.of("SQLite"), m.of("raw redb"));
    drop(cs);
    check_same(
        as_engine(&ours),
        as_engine(&theirs),
        size.append_wallets,
        &rounds.concat().concat(),
    );
    let (ours, theirs, baseline) = rates;
    eprintln!("#   ours/raw redb = {:?}", div(ours, baseline).map(round));
    Row {
        workload: "append_batch_1000",
        ours,
        theirs,
        baseline,
        unit: "commands/s",
        ratio: div(ours, theirs),
    }
}

/// 16 threads, each command individually durable, each thread on wallets of its own: ours
/// (clones of one `Ledger`), SQLite with one connection behind a mutex, SQLite with a connection
/// per thread (WAL, `synchronous=FULL`, the 30 s busy timeout of `Sql::open`: writers wait on the
/// database lock), and ours on one thread (the single-command rate, same run, same file).
fn append_group(size: &Size, e: Engines) -> Rates {
    let aged = aged_fixture(size);
    let threads_n = size.group_threads;
    let per = size.group_per_thread.div_ceil(ROUNDS);
    let mut clocks = Clocks::new(size.append_wallets, size.append_age);
    // Our own single-command rate, measured in the same run on the same file. Commands are
    // generated in the order they run, so no wallet ever sees a command older than its last.
    let single_per_round = size.single_cmds.div_ceil(ROUNDS);
    let mut rounds: Vec<Vec<Vec<Op>>> = Vec::new();
    let mut single_rounds: Vec<Vec<Op>> = Vec::new();
    for _ in 0..=ROUNDS {
        rounds.push(clocks.take_threads(threads_n, per));
        single_rounds.push(clocks.take_rr(single_per_round));
    }
    let scratch = Scratch::new("group");
    let (ours, theirs) = open_copy(&aged, &scratch, e);
    // The connection-per-thread SQLite works on a copy of its own.
    let pool: Vec<Sql> = if e.theirs {
        let path = copy_flushed(&aged.theirs(), &scratch, "pool.sqlite");
        (0..threads_n).map(|_| Sql::open(&path, true)).collect()
    } else {
        Vec::new()
    };
    let mut cs = Vec::new();
    if let Some(o) = &ours {
        cs.push(threads(GROUP_OURS, &rounds, |_, x| {
            o.exec(x);
        }));
    }
    if let Some(s) = &theirs {
        cs.push(threads(GROUP_SQL_SHARED, &rounds, |_, x| {
            s.exec(x);
        }));
    }
    if !pool.is_empty() {
        cs.push(threads(GROUP_SQL_POOL, &rounds, |t, x| {
            pool[t].exec(x);
        }));
    }
    if let Some(o) = &ours {
        cs.push(singles(GROUP_OURS_SINGLE, o, &single_rounds));
    }
    eprintln!(
        "# append_group_commit_16, append_group_vs_sqlite_16: {ROUNDS} rounds of {threads_n} threads x {per} commands, each individually durable"
    );
    let m = interleave(ROUNDS, &mut cs);
    drop(cs);
    let all: Vec<Op> = rounds.concat().concat();
    check_same(
        as_engine(&theirs),
        pool.first().map(|s| s as &dyn Engine),
        size.append_wallets,
        &all,
    );
    eprintln!(
        "#   ours 16 threads / SQLite 16 threads, one connection = {:?}; / SQLite 16 threads, a connection each = {:?}",
        div(m.of(GROUP_OURS), m.of(GROUP_SQL_SHARED)).map(round),
        div(m.of(GROUP_OURS), m.of(GROUP_SQL_POOL)).map(round),
    );
    m
}

const GROUP_OURS: &str = "ours, 16 threads";
const GROUP_SQL_SHARED: &str = "SQLite, 16 threads, 1 connection";
const GROUP_SQL_POOL: &str = "SQLite, 16 threads, 16 connections";
const GROUP_OURS_SINGLE: &str = "ours, 1 thread";

/// `append_group_commit_16`: ours on 16 threads against our own single-thread rate (theirs:
/// SQLite's 16 threads sharing one connection). `append_group_vs_sqlite_16`: ours on 16 threads
/// against SQLite's faster 16-thread set-up, a connection each or one shared (baseline: SQLite's
/// 16 threads with a connection each). Two rows of one measurement.
fn group_row(workload: &'static str, m: &Rates) -> Row {
    let ours = m.of(GROUP_OURS);
    let (theirs, baseline) = if workload == "append_group_vs_sqlite_16" {
        // SQLite's 16 threads as you would ship them: the faster of a connection each (WAL
        // writers queue on the busy timeout's sleeps) and one connection shared behind a mutex.
        let best = match (m.of(GROUP_SQL_POOL), m.of(GROUP_SQL_SHARED)) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        (best, m.of(GROUP_SQL_POOL))
    } else {
        (m.of(GROUP_SQL_SHARED), m.of(GROUP_OURS_SINGLE))
    };
    Row {
        workload,
        ours,
        theirs,
        baseline,
        unit: "commands/s",
        ratio: if workload == "append_group_vs_sqlite_16" {
            div(ours, theirs)
        } else {
            div(ours, baseline)
        },
    }
}

/// `append_growth_10x`: the ledger holding this many times the small one's commands.
const GROWTH: u64 = 10;
/// `append_growth_10x`: batches of `batch_size` per run (the warm-up round adds a fifth), at both
/// sizes: the run adds ≈ 190 commands to each of the small ledger's 128 wallets (600 → ≈ 790), so
/// the two ledgers stay 8–10× apart. `append_batch_1000`'s full-size 100 batches would more than
/// double the small one.
const GROWTH_BATCHES: usize = 20;

/// `append_growth_10x`: `append_batch_1000`'s workload (batches of 1,000 commands, round-robin
/// over the 128 wallets) into two ledgers with the same wallets: the aged fixture (`append_age`
/// commands per wallet) and one aged `GROWTH` times longer, each engine on fresh copies, all four
/// interleaved. ratio = ours into the big one / ours into the small one; theirs = SQLite into the
/// big one, baseline = ours into the small one. SQLite's own big / small ratio goes to stderr.
/// Both ledgers are in steady state (lots expire during the run); see `GROWTH_BATCHES` for how
/// much the run itself adds.
fn append_growth(size: &Size, e: Engines) -> Row {
    let ages = [size.append_age, size.append_age * GROWTH];
    let label = |k: u64| format!("{k} commands/wallet");
    let b = size.batch_size;
    let per_round = GROWTH_BATCHES.div_ceil(ROUNDS);
    let fixtures = ages.map(|k| aged_fixture_at(size.append_wallets, k));
    let scratch = ages.map(|k| Scratch::new(&format!("growth-{k}")));
    let rounds = ages.map(|k| batch_rounds(&mut Clocks::new(size.append_wallets, k), per_round, b));
    let opened: Vec<(Option<Ours>, Option<Sql>)> = (0..2)
        .map(|i| open_copy(&fixtures[i], &scratch[i], e))
        .collect();
    let mut cs = Vec::new();
    for (i, (ours, theirs)) in opened.iter().enumerate() {
        if let Some(o) = ours {
            cs.push(batches(&format!("ours, {}", label(ages[i])), o, &rounds[i]));
        }
        if let Some(s) = theirs {
            cs.push(batches(
                &format!("SQLite, {}", label(ages[i])),
                s,
                &rounds[i],
            ));
        }
    }
    eprintln!(
        "# append_growth_10x: {ROUNDS} rounds of {per_round} batches of {b} commands into {} and {} commands per wallet ({} wallets)",
        ages[0], ages[1], size.append_wallets
    );
    let m = interleave(ROUNDS, &mut cs);
    drop(cs);
    for (i, (ours, theirs)) in opened.iter().enumerate() {
        check_same(
            as_engine(ours),
            as_engine(theirs),
            size.append_wallets,
            &rounds[i].concat().concat(),
        );
    }
    let [ours_small, ours_big] = ages.map(|k| m.of(&format!("ours, {}", label(k))));
    let [sql_small, sql_big] = ages.map(|k| m.of(&format!("SQLite, {}", label(k))));
    eprintln!(
        "#   big / small: ours {:?}, SQLite {:?}; ours / SQLite: small {:?}, big {:?}",
        div(ours_big, ours_small).map(round),
        div(sql_big, sql_small).map(round),
        div(ours_small, sql_small).map(round),
        div(ours_big, sql_big).map(round),
    );
    Row {
        workload: "append_growth_10x",
        ours: ours_big,
        theirs: sql_big,
        baseline: ours_small,
        unit: "commands/s",
        ratio: div(ours_big, ours_small),
    }
}

/// Times one read per key (after reading every key of `warm`), prints the latency percentiles
/// and returns reads/s.
fn timed_reads<K: Copy, R>(
    name: &str,
    warm: &[K],
    keys: &[K],
    mut read: impl FnMut(K) -> R,
) -> f64 {
    for &k in warm {
        std::hint::black_box(read(k));
    }
    let lat = keys
        .iter()
        .map(|&k| {
            let t = Instant::now();
            std::hint::black_box(read(k));
            t.elapsed()
        })
        .collect();
    latency_report(name, lat)
}

fn latency_report(name: &str, mut lat: Vec<Duration>) -> f64 {
    let total: Duration = lat.iter().sum();
    lat.sort_unstable();
    eprintln!(
        "#   {name}: p50 {:.1} µs, p90 {:.1} µs, p99 {:.1} µs, max {:.1} µs",
        percentile(&lat, 0.5).as_secs_f64() * 1e6,
        percentile(&lat, 0.9).as_secs_f64() * 1e6,
        percentile(&lat, 0.99).as_secs_f64() * 1e6,
        lat.last().copied().unwrap_or_default().as_secs_f64() * 1e6,
    );
    per_sec(lat.len() as f64, total)
}

/// The figures of wallets `keys`, one read each, at `t`, on the read fixture `f` (after reading
/// `warm`): (ours, SQLite, raw redb) reads/s. Both engines must read the same figures (checked on
/// a sample of the keys). The raw redb floor is one read transaction and one point get in a table
/// of `raw_rows` 256-byte rows, for each of `raw_keys` (1-based).
fn read_rates(
    f: &ReadFixture,
    e: Engines,
    (warm, keys, t): (&[u32], &[u32], i64),
    (raw_rows, raw_keys): (u32, &[u64]),
) -> (Option<f64>, Option<f64>, Option<f64>) {
    let sample: Vec<u32> = keys
        .iter()
        .step_by((keys.len() / 16).max(1))
        .copied()
        .collect();
    let mut expect = None;
    let mut rate = |name: &str, engine: &dyn Engine| {
        let got: Vec<Figs> = sample.iter().map(|&w| engine.figures(w, t)).collect();
        match &expect {
            Some(x) => assert_eq!(&got, x, "both engines read the same figures"),
            None => expect = Some(got),
        }
        timed_reads(name, warm, keys, |w| engine.figures(w, t))
    };
    let ours = e.ours.then(|| rate("ours", &Ours::open(&f.ours())));
    let theirs = e
        .theirs
        .then(|| rate("SQLite", &Sql::open(&f.theirs(), true)));
    let baseline = e.baseline.then(|| {
        let scratch = Scratch::new("readraw");
        let raw = Raw::create(&scratch.path("raw.redb"));
        raw.commit(raw_rows as usize, 256);
        let warm = &raw_keys[..warm.len().min(raw_keys.len())];
        timed_reads("raw redb get", warm, raw_keys, |k| raw.get(k))
    });
    (ours, theirs, baseline)
}

fn read_wallet(size: &Size, e: Engines) -> Row {
    let f = read_fixture(size);
    let n = size.reads;
    let warm = (n / 10).max(100);
    eprintln!(
        "# read_wallet_1m_events: wallet with {} events among {} wallets; {n} reads at last event + {READ_DELTA}s",
        f.big_events, size.wallets
    );
    let raw_keys: Vec<u64> = (0..n as u64)
        .map(|i| 1 + (i * 7919) % u64::from(size.wallets))
        .collect();
    let (ours, theirs, baseline) = read_rates(
        &f,
        e,
        (&vec![f.big; warm], &vec![f.big; n], f.t_read),
        (size.wallets, &raw_keys),
    );
    Row {
        workload: "read_wallet_1m_events",
        ours,
        theirs,
        baseline,
        unit: "reads/s",
        ratio: div(ours, theirs),
    }
}

/// `read_random_wallet_100k`: the read fixture it reads. Full size: the read fixture itself
/// (100,000 wallets of 8 commands, one of 1M events). Quick: 100,000 wallets of 2 commands each
/// (one credit, one redemption) and one of 1,000 events, whose last event is late enough that
/// every other wallet's lot has fallen due by the read instant, as at full size (a read derives
/// that expiry). It builds in about 10 s.
fn random_read_size(size: &Size) -> Size {
    match size.name {
        "quick" => Size {
            wallets: 100_000,
            big_events: 1_000,
            small_cmds: 2,
            ..*size
        },
        _ => *size,
    }
}

/// SplitMix64: a fixed, seeded sequence, the same in every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// `n` wallets drawn uniformly from `0..wallets`, none the same as the one before it.
    fn wallets(&mut self, wallets: u32, n: usize) -> Vec<u32> {
        let mut out: Vec<u32> = Vec::with_capacity(n);
        while out.len() < n {
            let w = (self.next() % u64::from(wallets)) as u32;
            if out.last() != Some(&w) {
                out.push(w);
            }
        }
        out
    }
}

/// `read_random_wallet_100k`: `reads` reads of current figures, each of a wallet drawn at random
/// from the fixture's 100,000 (never the one read just before), at the fixture's read instant
/// (after every wallet's last event; due lot expiries are derived). Every wallet is read once,
/// in order, before timing, so both engines read from memory as a running server would; the
/// timed sequence is the same in every run. Raw redb floor: random point gets in a table of
/// 100,000 rows.
fn read_random(size: &Size, e: Engines) -> Row {
    let rs = random_read_size(size);
    let f = read_fixture(&rs);
    let n = size.reads;
    eprintln!(
        "# read_random_wallet_100k: {n} reads of random wallets among {}, at wallet {}'s last event + {READ_DELTA}s",
        rs.wallets, f.big
    );
    let keys = Rng(0x5EED).wallets(rs.wallets, n);
    let warm: Vec<u32> = (0..rs.wallets).collect();
    let raw_keys: Vec<u64> = keys.iter().map(|&w| u64::from(w) + 1).collect();
    let (ours, theirs, baseline) =
        read_rates(&f, e, (&warm, &keys, f.t_read), (rs.wallets, &raw_keys));
    Row {
        workload: "read_random_wallet_100k",
        ours,
        theirs,
        baseline,
        unit: "reads/s",
        ratio: div(ours, theirs),
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort_unstable();
    v[v.len() / 2]
}

fn replay_as_of(size: &Size, e: Engines) -> Row {
    let f = read_fixture(size);
    let r = size.replays;
    let events = f.events_to_mid as f64;
    eprintln!(
        "# replay_as_of_1m_events: figures as of mid-history = {} of {} events; median of {r}",
        f.events_to_mid, f.big_events
    );
    let baseline = e.baseline.then(|| {
        // Floor: a range scan over as many stored log records, no decoding.
        use redb::{ReadableDatabase, ReadableTable};
        let db = redb::Database::open(f.ours()).unwrap();
        let mut times = Vec::new();
        for _ in 0..r + 1 {
            let t = Instant::now();
            let txn = db.begin_read().unwrap();
            let tbl = txn
                .open_table(wallet_ledger::internals::storage::LOG)
                .unwrap();
            let mut bytes = 0usize;
            for x in tbl.iter().unwrap().take(f.events_to_mid as usize) {
                let (_, v) = x.unwrap();
                bytes += v.value().len();
            }
            std::hint::black_box(bytes);
            times.push(t.elapsed());
        }
        per_sec(events, median(times[1..].to_vec()))
    });
    let mut expect = None;
    let ours = e.ours.then(|| {
        let o = Ours::open(&f.ours());
        expect = Some(o.figures(f.big, f.t_mid));
        let times = (0..r)
            .map(|_| {
                let t = Instant::now();
                std::hint::black_box(o.figures(f.big, f.t_mid));
                t.elapsed()
            })
            .collect::<Vec<_>>();
        let m = median(times);
        eprintln!("#   ours: {:.1} ms per as-of read", m.as_secs_f64() * 1e3);
        // For comparison, the path `verify` uses: a full replay of the stream up to the instant.
        let reader = o.ledger.reader().expect("reader");
        let t = Instant::now();
        let full = reader
            .snapshot_replayed(wallet_uuid(f.big), datetime_ns(f.t_mid))
            .expect("replay");
        let d = t.elapsed();
        assert_eq!(
            full.pockets[0].units().credited as i64,
            expect.map_or(0, |x| x.credited)
        );
        eprintln!(
            "#   ours, full replay (Reader::snapshot_replayed): {:.1} ms, {:.0} events/s",
            d.as_secs_f64() * 1e3,
            per_sec(events, d)
        );
        per_sec(events, m)
    });
    let theirs = e.theirs.then(|| {
        let s = Sql::open(&f.theirs(), true);
        let (got, counted) = s.figures_as_of(f.big, f.t_mid);
        assert_eq!(counted, f.events_to_mid);
        if let Some(x) = expect {
            assert_eq!(got, x, "both engines compute the same figures");
        }
        let times = (0..r)
            .map(|_| {
                let t = Instant::now();
                std::hint::black_box(s.figures_as_of(f.big, f.t_mid));
                t.elapsed()
            })
            .collect::<Vec<_>>();
        let m = median(times);
        eprintln!("#   SQLite: {:.1} ms per as-of read", m.as_secs_f64() * 1e3);
        per_sec(events, m)
    });
    Row {
        workload: "replay_as_of_1m_events",
        ours,
        theirs,
        baseline,
        unit: "events/s",
        ratio: div(ours, theirs),
    }
}

fn storage(size: &Size) -> Row {
    let f = read_fixture(size);
    let ours = f.ours_bytes as f64 / f.total_events as f64;
    let theirs = f.sql_bytes as f64 / f.total_events_sql as f64;
    let baseline = f.raw_log_bytes as f64 / f.total_events as f64;
    eprintln!(
        "# storage_bytes_per_event: {} events; ours {} bytes, SQLite {} bytes, event records alone in redb {} bytes (all compacted)",
        f.total_events, f.ours_bytes, f.sql_bytes, f.raw_log_bytes
    );
    eprintln!("#   ours per table: entries, stored bytes/event, metadata, fragmented");
    for (name, len, stored, meta, frag) in table_stats(&f.ours()) {
        if len > 0 {
            let per = |b: u64| b as f64 / f.total_events as f64;
            eprintln!(
                "#   {name:>15} {len:>9} {:>8.1} {:>8.1} {:>8.1}",
                per(stored),
                per(meta),
                per(frag)
            );
        }
    }
    Row {
        workload: "storage_bytes_per_event",
        ours: Some(ours),
        theirs: Some(theirs),
        baseline: Some(baseline),
        unit: "bytes/event",
        ratio: Some(theirs / ours),
    }
}

/// `storage_as_written`: the read fixture's files (the events of `storage_bytes_per_event`) as
/// its build left them, both engines still open: no compaction, no VACUUM, no checkpoint.
/// SQLite's bytes are its main file plus its WAL (`-wal`), lengths; ours the redb file's length.
/// ratio = SQLite's bytes per event / ours (each engine's own event count). baseline: the same
/// event records alone, packed (as in `storage_bytes_per_event`). Disk space actually taken
/// (redb leaves holes in a file it has grown) goes to stderr.
fn storage_as_written(size: &Size) -> Row {
    let f = read_fixture(size);
    let w = f.as_written;
    let per = |bytes: u64, events: u64| bytes as f64 / events as f64;
    let (ours, theirs) = (per(w.ours, f.total_events), per(w.sql, f.total_events_sql));
    eprintln!(
        "# storage_as_written: {} events; ours {} bytes as written ({} on disk; {} compacted), SQLite {} bytes = main {} + WAL {} ({} on disk; {} after VACUUM)",
        f.total_events,
        w.ours,
        w.ours_allocated,
        f.ours_bytes,
        w.sql,
        w.sql - w.sql_wal,
        w.sql_wal,
        w.sql_allocated,
        f.sql_bytes
    );
    eprintln!(
        "#   disk space, SQLite / ours: {:.3}",
        per(w.sql_allocated, f.total_events_sql) / per(w.ours_allocated, f.total_events)
    );
    Row {
        workload: "storage_as_written",
        ours: Some(ours),
        theirs: Some(theirs),
        baseline: Some(per(f.raw_log_bytes, f.total_events)),
        unit: "bytes/event",
        ratio: Some(theirs / ours),
    }
}

/// `recovery_open`: the child applies batches to a copy of the aged fixture until its in-memory
/// layer (what the open after the kill replays) is within one batch of its default budget, the
/// fullest it gets before a flush empties it. The same at both sizes: the budget is the point.
/// The child applies its commands in `Command::Batch`es of this many (round-robin over the
/// aged fixture's wallets, as `append_batch_1000`), each one durable commit.
const RECOVERY_BATCH: usize = 1_000;
/// Opens timed, each on its own copy of the killed file; the row reports their median.
const RECOVERY_OPENS: usize = 3;

/// The commands `recovery_open`'s child applies, and the acknowledged state it reports before
/// the kill: the figures of every 16th wallet just after the last command, as text.
fn recovery_commands(size: &Size, n: usize) -> Vec<Op> {
    Clocks::new(size.append_wallets, size.append_age).take_rr(n)
}

fn recovery_state(o: &Ours, size: &Size, ops: &[Op]) -> String {
    let t = ns(ops.iter().map(Op::at).max().unwrap_or(T0) + 1);
    let figs: Vec<Figs> = (0..size.append_wallets)
        .step_by(16)
        .map(|w| o.figures(w, t))
        .collect();
    format!("{figs:?}")
}

/// `--child-write PATH`: opens the ledger at PATH, applies `recovery_commands` in batches of
/// `RECOVERY_BATCH` until one more batch could make the in-memory layer reach its budget (and be
/// flushed), prints `ready`, the number of commands, the layer's size and the acknowledged state
/// on stdout, then waits to be killed (it exits by itself only if the parent goes away and stdin
/// closes).
fn recovery_child(size: &Size, path: &std::path::Path) -> ! {
    use std::io::Read;
    let o = Ours::open(path);
    let budget_bytes = o.ledger.memory_budget();
    let budget_events = wallet_ledger::MAX_UNFLUSHED_EVENTS;
    let mut clocks = Clocks::new(size.append_wallets, size.append_age);
    let mut ops: Vec<Op> = Vec::new();
    loop {
        let before = o.ledger.unflushed();
        let b = clocks.take_rr(RECOVERY_BATCH);
        o.exec_batch(&b);
        ops.extend(b);
        let after = o.ledger.unflushed();
        assert!(
            after.events > before.events,
            "a flush came before the budget was near"
        );
        // Stop when another batch of this size could reach the budget.
        let (de, db) = (after.events - before.events, after.bytes - before.bytes);
        if after.events + 2 * de >= budget_events || after.bytes + 2 * db >= budget_bytes {
            break;
        }
    }
    let layer = o.ledger.unflushed();
    println!(
        "ready {} {} {} {}",
        ops.len(),
        layer.events,
        layer.bytes,
        recovery_state(&o, size, &ops)
    );
    std::io::stdout().flush().unwrap();
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
    std::process::exit(1)
}

/// `recovery_open`: this binary re-executes itself (`--child-write`) to fill the in-memory layer
/// of a copy of the aged fixture to its budget, waits for its `ready`, kills it
/// with SIGKILL, copies the file as the kill left it `RECOVERY_OPENS` times, and times
/// `Ledger::open` on each copy; each must then read the state the child acknowledged.
/// ours = the median open, in ms; baseline = 1,000 ms, the budget; ratio = baseline / ours
/// (> 1: the open fits the budget). A clean open (the first copy, reopened) goes to stderr.
/// No SQLite figure: theirs is empty.
fn recovery_open(size: &Size, e: Engines) -> Row {
    let budget_ms = 1000.0;
    let ours = e.ours.then(|| {
        use std::io::BufRead;
        use std::os::unix::process::ExitStatusExt;
        let aged = aged_fixture(size);
        let scratch = Scratch::new("recovery");
        let path = copy_flushed(&aged.ours(), &scratch, "killed.redb");
        let started = Instant::now();
        let mut child = std::process::Command::new(std::env::current_exe().expect("own path"))
            .args((size.name == "quick").then_some("--quick"))
            .arg("--child-write")
            .arg(&path)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("start the child");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let wrote = started.elapsed();
        child.kill().expect("kill the child");
        let status = child.wait().unwrap();
        let rest = line
            .strip_prefix("ready ")
            .unwrap_or_else(|| panic!("the child did not get ready ({status}): {line:?}"))
            .trim_end();
        let mut f = rest.splitn(4, ' ');
        let mut num = || f.next().and_then(|x| x.parse::<usize>().ok()).expect("a count");
        let (n, layer_events, layer_bytes) = (num(), num(), num());
        let acknowledged = f.next().expect("the state");
        assert_eq!(status.signal(), Some(9), "the child died of SIGKILL");
        let copies: Vec<_> = (0..RECOVERY_OPENS)
            .map(|i| {
                let to = scratch.path(&format!("open-{i}.redb"));
                std::fs::copy(&path, &to).unwrap();
                to
            })
            .collect();
        let ops = recovery_commands(size, n);
        let times: Vec<Duration> = copies
            .iter()
            .map(|c| {
                let t = Instant::now();
                let ledger = wallet_ledger::Ledger::open(c).expect("open after a kill");
                let took = t.elapsed();
                let state = recovery_state(&Ours { ledger }, size, &ops);
                assert_eq!(state, acknowledged, "the open finds every acknowledged command");
                took
            })
            .collect();
        let t = Instant::now();
        drop(wallet_ledger::Ledger::open(&copies[0]).expect("clean open"));
        let clean = t.elapsed();
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        eprintln!(
            "# recovery_open: the child applied {n} commands in batches of {RECOVERY_BATCH} to the aged fixture in {:.1}s, was killed with {layer_events} events ({:.1} MiB) in its in-memory layer (budget {} events, {} MiB); file {} bytes",
            wrote.as_secs_f64(),
            layer_bytes as f64 / (1 << 20) as f64,
            wallet_ledger::MAX_UNFLUSHED_EVENTS,
            wallet_ledger::DEFAULT_MEMORY_BUDGET >> 20,
            std::fs::metadata(&path).map_or(0, |m| m.len())
        );
        eprintln!(
            "#   Ledger::open after the kill: {:?} ms; after a clean close: {:.1} ms",
            times.iter().map(|&d| round(ms(d))).collect::<Vec<_>>(),
            ms(clean)
        );
        ms(median(times))
    });
    Row {
        workload: "recovery_open",
        ours,
        theirs: None,
        baseline: Some(budget_ms),
        unit: "ms",
        ratio: ours.map(|o| budget_ms / o),
    }
}
