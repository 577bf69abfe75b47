//! Layout probe: the write-cost ceiling of a "one live-state row per wallet" layout, measured with
//! plain redb tables and no ledger logic, in the same run as SQLite (`common::Sql`, the tuned
//! baseline), raw redb (`common::Raw::commit(1, 512)`) and wallet-ledger itself (`common::Ours`).
//!
//! What it models (no ledger code, no decoding, no checksums): every command
//! - appends one event row (100 bytes) keyed `wallet u64 BE ‖ seq u64 BE` in a table `rows` shared
//!   by all wallets,
//! - reads and rewrites the wallet's live-state row (S bytes: header, figures, live lots, their
//!   consumption order, due schedule, open holds), keyed `wallet ‖ 0xFF`, so it sorts right after
//!   the wallet's newest event,
//! - appends one `log` row (position u64 → wallet ‖ seq, 16 bytes) in a second table (the
//!   `-nolog` layouts leave this out).
//!
//! Commands go round-robin over 128 wallets, pre-populated with 600 events each, built in
//! round-robin commits of 1,000 commands like the quick aged fixture (`aged_fixture`). Workloads:
//! `single` (one durable commit per command), `group` (16 commands on 16 distinct wallets per
//! durable commit: a full group commit, one thread), `batch` (1,000 commands per commit). The
//! durable workloads run in one interleave (SQLite single, raw redb, ours single and 16 threads,
//! every layout single and group), the batch ones in another, 5 rounds plus a warm-up round.
//! Pages per commit are bytes handed to write/pwrite (`/proc/self/io` `wchar`) ÷ 4096 ÷ commits
//! (for `group/ours16`: per command); CPU per command is `CLOCK_PROCESS_CPUTIME_ID` (all threads,
//! kernel included). Check the pages with strace on one contender at a time:
//!
//! ```text
//! nice cargo run --release --example layout_probe                   # everything, quick sizes
//! nice cargo run --release --example layout_probe -- --only single/p600
//! strace -f -e trace=pwrite64,fdatasync -o /tmp/st.txt \
//!     target/release/examples/layout_probe --only single/p600       # after one plain run (fixtures)
//! ```
//!
//! `--only ID[,ID]` runs those contenders (`single/*`: every id starting with `single/`; ids:
//! `single/sqlite`, `single/raw`, `single/ours`, `group/ours16`, `single/pS[-nolog]`,
//! `group/pS[-nolog]`, `batch/sqlite`, `batch/raw`, `batch/ours`, `batch/pS[-nolog]`);
//! `--live 200,600,2000,8000` (the default) the live row sizes; `--no-ours` leaves wallet-ledger
//! out. Probe fixtures are cached in `target/bench-fixtures/layout-probe-v1-w128-k600/`.
//!
//! `--work-us N` makes every probe command spin N µs of thread CPU inside its write transaction: a
//! stand-in for what the real command adds (decode the live state, decide, apply, encode, SHA-256).
//! `CARGO_TARGET_DIR=/dev/shm/…` puts fixtures and scratch files on tmpfs (flushes cost nothing:
//! the CPU-only ceiling; copy `target/bench-fixtures/` there first).
//!
//! ## Figures (2026-11-21 12:37–12:39 UTC, base commit `c4378ec`, quick sizes, load ≈ 1.0)
//!
//! Three runs each of `--work-us 0`, `15`, `25`, interleaved; ranges over the three. Ratios are
//! against SQLite single (≈ 2,500–3,500 commands/s) or batch (≈ 19,000–25,000), raw redb single
//! (≈ 3,500–4,800 commits/s) and, for group, the same layout's single rate in the same run.
//!
//! | layout | work µs | single / SQLite | single / raw | group-16 / single | batch / SQLite |
//! |---|---|---|---|---|---|
//! | S = 200–2000, `log` | 0 | 0.78–1.10 | 0.56–0.80 | 6.8–9.7 (one outlier 1.7) | 7.1–8.0 |
//! | S = 200–2000, `log` | 15 | 0.83–1.04 | 0.70–0.83 | 5.1–6.0 | 1.8–2.1 |
//! | S = 200–2000, `log` | 25 | 0.82–0.97 | 0.63–0.73 | 4.4–5.5 | 1.16–1.49 |
//! | S = 200–2000, no `log` | 0 | 1.13–1.36 | 0.87–0.98 | 6.7–7.5 | 8.1–9.7 |
//! | S = 200–2000, no `log` | 15 | 1.01–1.17 | 0.81–0.90 | 4.3–5.5 | 1.9–2.1 |
//! | S = 200–2000, no `log` | 25 | 0.88–1.10 | 0.68–0.82 | 4.2–5.0 | 1.20–1.52 |
//! | S = 8000 (`log` / none) | 0 | 0.81–0.92 / 0.95–1.07 | 0.63–0.66 / 0.69–0.78 | 4.9–5.7 | 2.0–2.5 |
//! | wallet-ledger today | – | 0.60–0.70 | 0.45–0.51 | 2.0–2.5 (16 threads) | 1.13–1.22 |
//!
//! Pages written per durable commit (strace, one contender per process; 4 KiB `pwrite64`s ÷
//! `fdatasync`s as BENCHMARKS.md counts them, then pages ÷ the commits that wrote pages, which
//! leaves out the header-only syncs at open and close): single 9.8 / 10.0 with `log` and 6.9 / 7.0
//! without, for S = 200, 600 and 2000 alike (raw redb 5.8 / 6.0, wallet-ledger 15.1 / 15.6, SQLite
//! ≈ 13.7 4 KiB WAL and checkpoint writes per `fsync`); S = 3000: 10.6 / 11.0; S = 8000: 13.1 per
//! commit (some pages 8 KiB). Group-16: 32–33 per commit with `log` (2.0 per command), 28–29
//! without (wallet-ledger, 16 threads: 62 per commit of ≈ 8 commands). Batch-1000: 256–271 with
//! `log`, 246–252 without (wallet-ledger 983, raw redb 146).
//!
//! The live row must share a 4 KiB leaf with the newest events. From S ≈ 3,000 the event leaves it
//! leaves behind are emptier (8.8 rows per leaf at 3,000, 3.0 at 3,800), and from S ≈ 3,900 every
//! event gets a leaf of its own (76,928 leaves for 76,928 rows): batch writes 5× the pages
//! (1,324–1,452 per commit) and falls to 1.5–2.6× SQLite with no work at all.

//! What the probe leaves out, which a real implementation pays: decoding and re-encoding the live
//! state (grows with S), decide/apply and the SHA-256 chain (only `--work-us` stands in for them),
//! idempotency rows, name rows for client ids, the `next_due` sweep index, checkpoints, the bench
//! mix's ≈ 1.5 events per command (recorded expiries), and the threads of a real group commit
//! (the probe runs a group's CPU serially on one thread; a leader could overlap deciding the next
//! group with flushing this one, so group figures with work are pessimistic, those without are
//! not).

#[path = "../benches/common/mod.rs"]
mod common;

use common::*;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const ROWS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("rows");
const LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("log");
const EVENT_BYTES: usize = 100;
const LIVE_KIND: u8 = 0xFF;
const GROUP: usize = 16;
const ROUNDS: usize = 5;

#[derive(Clone, Copy, Debug)]
struct Layout {
    live: usize,
    log: bool,
}

impl Layout {
    fn name(&self) -> String {
        format!("p{}{}", self.live, if self.log { "" } else { "-nolog" })
    }
}

/// One probe file: the `rows` and `log` tables, and where each wallet's stream is.
struct Probe {
    db: Database,
    layout: Layout,
    next_seq: Vec<u64>,
    pos: u64,
    rr: usize,
    live: Vec<u8>,
    event: [u8; EVENT_BYTES],
    /// Stand-in for what the real command adds per command (decode the live state, decide,
    /// apply, encode, SHA-256): this much CPU, spun inside the write transaction.
    work: Duration,
}

fn event_key(w: u64, seq: u64) -> [u8; 16] {
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(&w.to_be_bytes());
    k[8..].copy_from_slice(&seq.to_be_bytes());
    k
}

fn live_key(w: u64) -> [u8; 9] {
    let mut k = [LIVE_KIND; 9];
    k[..8].copy_from_slice(&w.to_be_bytes());
    k
}

impl Probe {
    fn create(path: &Path, layout: Layout, wallets: u32) -> Probe {
        Probe {
            db: Database::create(path).expect("probe redb"),
            layout,
            next_seq: vec![1; wallets as usize],
            pos: 0,
            rr: 0,
            live: Vec::new(),
            event: [0x5A; EVENT_BYTES],
            work: Duration::ZERO,
        }
    }

    /// Opens a copy of a built fixture: each wallet's next sequence number from its newest event.
    fn open(path: &Path, layout: Layout, wallets: u32) -> Probe {
        let mut p = Probe::create(path, layout, wallets);
        {
            let txn = p.db.begin_read().unwrap();
            let rows = txn.open_table(ROWS).unwrap();
            for (i, next) in p.next_seq.iter_mut().enumerate() {
                let w = i as u64 + 1;
                // Events sort before the live row (`wallet ‖ 0xFF`): sequence numbers stay < 2^56.
                let (lo, hi) = (event_key(w, 0), live_key(w));
                if let Some(last) = rows.range::<&[u8]>(&lo[..]..&hi[..]).unwrap().next_back() {
                    let k = last.unwrap().0.value().to_vec();
                    *next = u64::from_be_bytes(k[8..16].try_into().unwrap()) + 1;
                }
            }
            if layout.log {
                let log = txn.open_table(LOG).unwrap();
                p.pos = log.last().unwrap().map_or(0, |(k, _)| k.value());
            }
        }
        p
    }

    /// One write transaction holding `commands` commands (round-robin over the wallets), committed
    /// durably (redb's default durability).
    fn commit(&mut self, commands: usize) {
        let txn = self.db.begin_write().unwrap();
        {
            let mut rows = txn.open_table(ROWS).unwrap();
            let mut log = self.layout.log.then(|| txn.open_table(LOG).unwrap());
            for _ in 0..commands {
                let i = self.rr;
                self.rr = (self.rr + 1) % self.next_seq.len();
                let w = i as u64 + 1;
                let seq = self.next_seq[i];
                self.next_seq[i] += 1;
                if !self.work.is_zero() {
                    let t = thread_cpu_time();
                    while thread_cpu_time() - t < self.work {
                        std::hint::spin_loop();
                    }
                }
                self.event[..8].copy_from_slice(&seq.to_be_bytes());
                rows.insert(&event_key(w, seq)[..], &self.event[..])
                    .unwrap();
                // Read-modify-write of the live state (the real one would decode and re-encode it).
                let lk = live_key(w);
                self.live.clear();
                match rows.get(&lk[..]).unwrap() {
                    Some(v) => self.live.extend_from_slice(v.value()),
                    None => self.live.resize(self.layout.live, 0xC3),
                }
                self.live[..8].copy_from_slice(&seq.to_be_bytes());
                rows.insert(&lk[..], &self.live[..]).unwrap();
                if let Some(log) = log.as_mut() {
                    self.pos += 1;
                    log.insert(self.pos, &event_key(w, seq)[..]).unwrap();
                }
            }
        }
        txn.commit().unwrap();
    }
}

/// The cached, built probe file of a layout: `wallets` wallets with `age` events each, written in
/// round-robin commits of 1,000 commands (as `aged_fixture` builds the ledger's).
fn probe_fixture(size: &Size, layout: Layout) -> PathBuf {
    let dir = fixtures_dir().join(format!(
        "layout-probe-v1-w{}-k{}",
        size.append_wallets, size.append_age
    ));
    let file = dir.join(format!("{}.redb", layout.name()));
    let done = dir.join(format!("{}.done", layout.name()));
    if done.exists() {
        describe(&file);
        return file;
    }
    std::fs::create_dir_all(&dir).unwrap();
    let _ = std::fs::remove_file(&file);
    let t = Instant::now();
    {
        let mut p = Probe::create(&file, layout, size.append_wallets);
        let mut left = size.append_wallets as usize * size.append_age as usize;
        while left > 0 {
            let n = left.min(1000);
            p.commit(n);
            left -= n;
        }
    }
    describe(&file);
    std::fs::write(&done, b"").unwrap();
    eprintln!(
        "# built {} in {:.1}s",
        file.display(),
        t.elapsed().as_secs_f64()
    );
    file
}

/// The shape of a probe file's `rows` table (stderr): entries, tree height, leaf and branch pages,
/// stored bytes.
fn describe(file: &Path) {
    use redb::ReadableTableMetadata;
    let db = Database::open(file).unwrap();
    let txn = db.begin_read().unwrap();
    let rows = txn.open_table(ROWS).unwrap();
    let st = rows.stats().unwrap();
    eprintln!(
        "# {}: rows {} entries, height {}, {} leaf + {} branch pages, {} stored bytes",
        file.display(),
        rows.len().unwrap(),
        st.tree_height(),
        st.leaf_pages(),
        st.branch_pages(),
        st.stored_bytes()
    );
}

/// Copies a file into the scratch directory and flushes the copy (so no timed fsync pays for it).
/// A fresh copy of each wanted layout's fixture in `scratch`, opened with the run's added work.
fn open_probes(
    size: &Size,
    args: &Args,
    fixtures: &[(Layout, PathBuf)],
    scratch: &Scratch,
    wanted: impl Fn(&Layout) -> bool,
) -> Vec<(Layout, Probe)> {
    fixtures
        .iter()
        .filter(|(l, _)| wanted(l))
        .map(|(l, f)| {
            let path = copy_flushed(f, scratch, &format!("{}.redb", l.name()));
            let mut p = Probe::open(&path, *l, size.append_wallets);
            p.work = args.work;
            (*l, p)
        })
        .collect()
}

fn rate(cs: &[Contender], id: &str) -> Option<f64> {
    cs.iter().find(|c| c.name == id).map(Contender::rate)
}

fn ratio(a: f64, b: Option<f64>) -> String {
    b.map_or("–".into(), |b| format!("{:.2}", a / b))
}

/// Prints one markdown table: rate, ratios against SQLite (same workload) and raw redb single,
/// the group/single ratio where there is one, pages per commit, CPU per command.
fn report(title: &str, cs: &[Contender], sqlite: &str, raw_single: Option<f64>) {
    let sql = rate(cs, sqlite);
    println!("\n### {title}\n");
    println!(
        "| contender | commands/s | vs SQLite | vs raw redb single | group / single | pages per commit | CPU µs per command | commands, commits |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for c in cs {
        let single = match c.name.split_once('/') {
            Some(("group", "ours16")) => rate(cs, "single/ours"),
            Some(("group", p)) => rate(cs, &format!("single/{p}")),
            _ => None,
        };
        // Our group leader decides how many commands share a commit: per command for that row.
        let per = if c.name == "group/ours16" {
            " per command"
        } else {
            ""
        };
        println!(
            "| {} | {:.0} | {} | {} | {} | {:.1}{per} | {:.0} | {}, {} |",
            c.name,
            c.rate(),
            ratio(c.rate(), sql),
            ratio(c.rate(), raw_single),
            ratio(c.rate(), single),
            c.pages_per_commit(),
            c.cpu_us(),
            c.commands,
            c.commits
        );
    }
}

struct Args {
    only: Option<Vec<String>>,
    live: Vec<usize>,
    ours: bool,
    work: Duration,
}

impl Args {
    fn wants(&self, id: &str) -> bool {
        self.only.as_ref().is_none_or(|o| {
            o.iter().any(|p| match p.strip_suffix('*') {
                Some(prefix) => id.starts_with(prefix),
                None => id == p,
            })
        })
    }
    fn layouts(&self) -> Vec<Layout> {
        [true, false]
            .into_iter()
            .flat_map(|log| self.live.iter().map(move |&live| Layout { live, log }))
            .collect()
    }
}

fn parse_args() -> Args {
    let mut a = Args {
        only: None,
        live: vec![200, 600, 2000, 8000],
        ours: true,
        work: Duration::ZERO,
    };
    let mut it = std::env::args().skip(1);
    while let Some(x) = it.next() {
        match x.as_str() {
            "--only" => {
                let v = it.next().expect("--only needs ids");
                a.only = Some(v.split(',').map(str::to_string).collect());
            }
            "--live" => {
                let v = it.next().expect("--live needs sizes");
                a.live = v.split(',').map(|s| s.parse().expect("a size")).collect();
            }
            "--no-ours" => a.ours = false,
            "--work-us" => {
                let v = it.next().expect("--work-us needs microseconds");
                a.work = Duration::from_micros(v.parse().expect("microseconds"));
            }
            "--bench" => {}
            other => {
                eprintln!(
                    "layout_probe: unknown argument {other}\nusage: layout_probe [--only ID[,ID]] [--live S[,S]] [--no-ours] [--work-us N]"
                );
                std::process::exit(2);
            }
        }
    }
    a
}

fn main() {
    let args = parse_args();
    let size = Size::quick();
    let started = Instant::now();
    let fixtures: Vec<(Layout, PathBuf)> = args
        .layouts()
        .into_iter()
        .filter(|l| {
            ["single", "group", "batch"]
                .iter()
                .any(|w| args.wants(&format!("{w}/{}", l.name())))
        })
        .map(|l| (l, probe_fixture(&size, l)))
        .collect();
    eprintln!(
        "# {} wallets x {} events; probe fixtures ready after {:.1}s",
        size.append_wallets,
        size.append_age,
        started.elapsed().as_secs_f64()
    );
    println!(
        "# layout probe, quick sizes; probes spin {} µs of CPU per command (--work-us)",
        args.work.as_micros()
    );
    let raw_single = durable(&size, &args, &fixtures);
    batch(&size, &args, &fixtures, raw_single);
    eprintln!("# total {:.1}s", started.elapsed().as_secs_f64());
}

/// single and group-16, one interleave. Returns the raw redb single rate.
fn durable(size: &Size, args: &Args, fixtures: &[(Layout, PathBuf)]) -> Option<f64> {
    let scratch = Scratch::new("probe-durable");
    let per_round = size.single_cmds.div_ceil(ROUNDS);
    let threads = size.group_threads;
    let per_thread = size.group_per_thread.div_ceil(ROUNDS);
    let group_commits = threads * per_thread / GROUP;

    let sql = args.wants("single/sqlite").then(|| {
        let mut clocks = Clocks::new(size.append_wallets, size.append_age);
        let rounds: Vec<Vec<Op>> = (0..=ROUNDS).map(|_| clocks.take_rr(per_round)).collect();
        let path = copy_flushed(&aged_fixture(size).theirs(), &scratch, "theirs.sqlite");
        (Sql::open(&path, true), rounds)
    });
    let raw = args
        .wants("single/raw")
        .then(|| Raw::create(&scratch.path("raw.redb")));
    // Ours as perf_report's group workload does it: 16 threads and 1 thread on one file, commands
    // generated in the order they run.
    let ours =
        (args.ours && (args.wants("single/ours") || args.wants("group/ours16"))).then(|| {
            let mut clocks = Clocks::new(size.append_wallets, size.append_age);
            let mut groups = Vec::new();
            let mut singles = Vec::new();
            for _ in 0..=ROUNDS {
                groups.push(clocks.take_threads(threads, per_thread));
                singles.push(clocks.take_rr(per_round));
            }
            let path = copy_flushed(&aged_fixture(size).ours(), &scratch, "ours.redb");
            (Ours::open(&path), groups, singles)
        });
    let mut probes = open_probes(size, args, fixtures, &scratch, |l| {
        args.wants(&format!("single/{}", l.name())) || args.wants(&format!("group/{}", l.name()))
    });

    let mut cs: Vec<Contender> = Vec::new();
    if let Some((s, rounds)) = &sql {
        cs.push(Contender::counting_commits("single/sqlite", move |r| {
            rounds[r].iter().for_each(|x| {
                s.exec(x);
            });
            (rounds[r].len(), rounds[r].len())
        }));
    }
    if let Some(raw) = &raw {
        cs.push(Contender::counting_commits("single/raw", move |_| {
            for _ in 0..per_round {
                raw.commit(1, RAW_BYTES_PER_COMMAND);
            }
            (per_round, per_round)
        }));
    }
    if let Some((o, groups, singles)) = &ours {
        // In the order the commands were generated: each round's group, then its singles.
        if args.wants("group/ours16") {
            cs.push(Contender::counting_commits("group/ours16", move |r| {
                run_threads(groups[r].clone(), |x| {
                    o.exec(x);
                });
                // Commits: not known from outside (the group leader decides); report per command.
                (threads * per_thread, threads * per_thread)
            }));
        }
        if args.wants("single/ours") {
            cs.push(Contender::counting_commits("single/ours", move |r| {
                singles[r].iter().for_each(|x| {
                    o.exec(x);
                });
                (singles[r].len(), singles[r].len())
            }));
        }
    }
    for (l, p) in probes.iter_mut() {
        // Each probe is borrowed by at most one closure at a time: split single and group by
        // sharing the probe through a RefCell.
        let cell = std::cell::RefCell::new(p);
        let cell = std::rc::Rc::new(cell);
        if args.wants(&format!("single/{}", l.name())) {
            let c = cell.clone();
            cs.push(Contender::counting_commits(
                format!("single/{}", l.name()),
                move |_| {
                    let mut p = c.borrow_mut();
                    for _ in 0..per_round {
                        p.commit(1);
                    }
                    (per_round, per_round)
                },
            ));
        }
        if args.wants(&format!("group/{}", l.name())) {
            let c = cell.clone();
            cs.push(Contender::counting_commits(
                format!("group/{}", l.name()),
                move |_| {
                    let mut p = c.borrow_mut();
                    for _ in 0..group_commits {
                        p.commit(GROUP);
                    }
                    (group_commits * GROUP, group_commits)
                },
            ));
        }
    }
    if cs.is_empty() {
        return None;
    }
    eprintln!(
        "# durable: {ROUNDS} rounds (+1 warm-up); single {per_round} commits/round, group {group_commits} commits of {GROUP}/round, ours16 {threads} threads x {per_thread}"
    );
    interleave(ROUNDS, &mut cs);
    let raw_single = rate(&cs, "single/raw");
    report(
        "durable: single and group-16",
        &cs,
        "single/sqlite",
        raw_single,
    );
    raw_single
}

fn batch(size: &Size, args: &Args, fixtures: &[(Layout, PathBuf)], raw_single: Option<f64>) {
    let scratch = Scratch::new("probe-batch");
    let b = size.batch_size;
    let per_round = size.batches.div_ceil(ROUNDS);
    let gen_rounds = || {
        let mut clocks = Clocks::new(size.append_wallets, size.append_age);
        (0..=ROUNDS)
            .map(|_| (0..per_round).map(|_| clocks.take_rr(b)).collect())
            .collect::<Vec<Vec<Vec<Op>>>>()
    };
    let sql = args.wants("batch/sqlite").then(|| {
        let path = copy_flushed(&aged_fixture(size).theirs(), &scratch, "theirs.sqlite");
        (Sql::open(&path, true), gen_rounds())
    });
    let raw = args
        .wants("batch/raw")
        .then(|| Raw::create(&scratch.path("raw.redb")));
    let ours = (args.ours && args.wants("batch/ours")).then(|| {
        let path = copy_flushed(&aged_fixture(size).ours(), &scratch, "ours.redb");
        (Ours::open(&path), gen_rounds())
    });
    let mut probes = open_probes(size, args, fixtures, &scratch, |l| {
        args.wants(&format!("batch/{}", l.name()))
    });
    let mut cs: Vec<Contender> = Vec::new();
    if let Some((s, rounds)) = &sql {
        cs.push(Contender::counting_commits("batch/sqlite", move |r| {
            rounds[r].iter().for_each(|x| {
                s.exec_batch(x);
            });
            (rounds[r].len() * b, rounds[r].len())
        }));
    }
    if let Some(raw) = &raw {
        cs.push(Contender::counting_commits("batch/raw", move |_| {
            for _ in 0..per_round {
                raw.commit(b, RAW_BYTES_PER_COMMAND);
            }
            (per_round * b, per_round)
        }));
    }
    if let Some((o, rounds)) = &ours {
        cs.push(Contender::counting_commits("batch/ours", move |r| {
            rounds[r].iter().for_each(|x| {
                o.exec_batch(x);
            });
            (rounds[r].len() * b, rounds[r].len())
        }));
    }
    for (l, p) in probes.iter_mut() {
        cs.push(Contender::counting_commits(
            format!("batch/{}", l.name()),
            move |_| {
                for _ in 0..per_round {
                    p.commit(b);
                }
                (per_round * b, per_round)
            },
        ));
    }
    if cs.is_empty() {
        return;
    }
    eprintln!("# batch: {ROUNDS} rounds (+1 warm-up) of {per_round} commits of {b} commands");
    interleave(ROUNDS, &mut cs);
    report("batch-1000", &cs, "batch/sqlite", raw_single);
}
