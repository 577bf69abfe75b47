//! Concurrency: many threads, each with a clone of one `Ledger` on a temp file, writing and reading
//! at once. The tests do not assume how `execute` schedules writers (one transaction per command
//! or concurrent callers gathered into one group commit): they check only what every caller is
//! promised.
//!
//! - every read (one `Reader`: one consistent snapshot) sees §5 invariants hold in every pocket,
//!   and money is conserved across wallets that only trade with each other (a transfer is a batch:
//!   redeem here, credit there), so no reader ever sees half a batch;
//! - `verify` run concurrently with writers passes;
//! - no acknowledged command is lost: after all threads finish, the file is reopened and every
//!   acknowledged receipt's positions are there, and each private wallet's stream equals a
//!   single-threaded replay of the lines its thread had acknowledged;
//! - idempotency holds under concurrent retries of one key: exactly one execution, every other
//!   sender of the same command gets the same receipt marked as a replay, every sender of a
//!   different command gets `idempotency_conflict`.

mod common;

use common::*;
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Barrier, Mutex};
use wallet_ledger::internals::model::Figures;
use wallet_ledger::{ErrorCode, FixedClock, Ledger, Receipt};

/// The clock of every test here: after every explicit instant the scripts use.
fn clock() -> Box<FixedClock> {
    Box::new(FixedClock("2026-09-01T00:00:00Z".parse().unwrap()))
}

fn file_ledger(dir: &tempfile::TempDir) -> (Ledger, std::path::PathBuf) {
    let path = dir.path().join("concurrent.redb");
    (Ledger::open_with_clock(&path, clock()).unwrap(), path)
}

fn check_figures(f: &Figures, what: &str) {
    if let Err(e) = f.check() {
        panic!("{what}: a reader saw broken invariants: {e} in {f:?}");
    }
    assert_eq!(f.balance(), f.available() + f.on_hold, "{what}");
    assert_eq!(f.credited, f.balance() + f.redeemed + f.expired, "{what}");
    assert_eq!(f.total(), f.balance() + f.promised, "{what}");
}

/// Transfer wallets: programs 1 (scale 2), wallets 0..TRADERS each credited 1000.00 at setup.
const TRADERS: usize = 4;
const START_UNITS: u128 = 100_000;
/// Private wallets, one per time-travelling writer thread.
const PRIVATE: usize = 2;

fn private_uuid(t: usize) -> String {
    wallet_uuid(100 + t)
}

/// The lines of private writer `t`: a generated workload on its own wallet, with its own keys.
fn private_lines(t: usize, n: usize) -> Vec<String> {
    let (lines, _) = ScriptGen::script(seed(0xC0C0) + t as u64, 1, 1, n);
    let setup = ScriptGen::new(0).setup(1, 1).len();
    // No `sweep`: it records due transitions in every wallet, so another thread's sweep would
    // make this wallet's stream depend on the interleaving.
    lines[setup..]
        .iter()
        .filter(|l| !l.contains(r#""op":"sweep""#))
        .map(|l| {
            l.replace(&wallet_uuid(0), &private_uuid(t))
                .replace(r#""key":"k-"#, &format!(r#""key":"p{t}-"#))
        })
        .collect()
}

fn setup_lines() -> Vec<String> {
    let mut out = program_lines(t0());
    let h = holder_uuid(0);
    out.push(format!(
        r#"{{"op":"register_holder","at":"2026-01-01T00:00:00Z","holder":"{h}"}}"#
    ));
    for w in (0..TRADERS)
        .map(wallet_uuid)
        .chain((0..PRIVATE).map(private_uuid))
    {
        out.push(format!(
            r#"{{"op":"open_wallet","at":"2026-01-01T00:00:00Z","wallet":"{w}","holder":"{h}","program":1}}"#
        ));
    }
    for w in 0..TRADERS {
        out.push(format!(
            r#"{{"op":"credit","at":"2026-01-01T00:00:00Z","wallet":"{}","amount":"1000","lot":"seed"}}"#,
            wallet_uuid(w)
        ));
    }
    out
}

fn amount(units: u64) -> String {
    format!("{}.{:02}", units / 100, units % 100)
}

#[test]
fn readers_see_consistent_states_and_nothing_acknowledged_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    let (ledger, path) = file_ledger(&dir);
    for l in setup_lines() {
        ledger.execute_line(&l).unwrap();
    }
    let numbers: Vec<uuid::Uuid> = (0..TRADERS)
        .map(|w| wallet_uuid(w).parse().unwrap())
        .collect();
    let private_numbers: Vec<uuid::Uuid> = (0..PRIVATE)
        .map(|t| private_uuid(t).parse().unwrap())
        .collect();
    let traders = 3;
    let transfers_each = 250;
    let private_each = 250;
    let done = AtomicBool::new(false);
    let writers_left = AtomicUsize::new(traders + PRIVATE);
    let acked: Mutex<Vec<Receipt>> = Mutex::new(Vec::new());
    let private_acked: Mutex<Vec<Vec<String>>> = Mutex::new(vec![Vec::new(); PRIVATE]);
    let reads = AtomicUsize::new(0);
    let verifies = AtomicUsize::new(0);
    let rejected = AtomicUsize::new(0);
    std::thread::scope(|s| {
        // Traders: transfers between the shared wallets (batches), and holds that are released.
        for t in 0..traders {
            let l = ledger.clone();
            let (acked, writers_left, rejected) = (&acked, &writers_left, &rejected);
            s.spawn(move || {
                let mut rng = Rng::new(seed(0x7EAD) + t as u64);
                for i in 0..transfers_each {
                    let a = rng.below(TRADERS as u64) as usize;
                    let b = (a + 1 + rng.below(TRADERS as u64 - 1) as usize) % TRADERS;
                    let x = amount(rng.range(1, 10_000));
                    let line = if rng.pct(75) {
                        format!(
                            r#"{{"op":"batch","commands":[{{"op":"redeem","wallet":"{}","amount":"{x}"}},{{"op":"credit","wallet":"{}","amount":"{x}","lot":"t{t}-{i}"}}]}}"#,
                            wallet_uuid(a),
                            wallet_uuid(b)
                        )
                    } else if rng.pct(40) {
                        format!(
                            r#"{{"op":"hold","wallet":"{}","amount":"{x}","hold":"h{t}-{i}"}}"#,
                            wallet_uuid(a)
                        )
                    } else {
                        let j = rng.below(i as u64 + 1);
                        format!(
                            r#"{{"op":"release","wallet":"{}","hold":"h{t}-{j}"}}"#,
                            wallet_uuid(a)
                        )
                    };
                    match l.execute_line(&line) {
                        Ok(r) => acked.lock().unwrap().push(r),
                        Err(e) => {
                            assert!(
                                matches!(
                                    e.code,
                                    ErrorCode::InsufficientFunds
                                        | ErrorCode::UnknownHold
                                        | ErrorCode::HoldClosed
                                ),
                                "trader {t}: {line}: {e}"
                            );
                            rejected.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
                writers_left.fetch_sub(1, Ordering::SeqCst);
            });
        }
        // Private writers: a full generated workload with explicit, moving times on own wallet.
        for t in 0..PRIVATE {
            let l = ledger.clone();
            let (acked, private_acked, writers_left) = (&acked, &private_acked, &writers_left);
            s.spawn(move || {
                for line in private_lines(t, private_each) {
                    match l.execute_line(&line) {
                        Ok(r) => {
                            acked.lock().unwrap().push(r);
                            private_acked.lock().unwrap()[t].push(line);
                        }
                        Err(e) => assert_ne!(e.code, ErrorCode::Storage, "{e}"),
                    }
                }
                writers_left.fetch_sub(1, Ordering::SeqCst);
            });
        }
        // Readers: consistent snapshots; conservation across the traders; invariants everywhere.
        for rd in 0..2 {
            let l = ledger.clone();
            let (done, reads, verifies, numbers, private_numbers) =
                (&done, &reads, &verifies, &numbers, &private_numbers);
            s.spawn(move || {
                let mut n = 0u64;
                while !done.load(Ordering::SeqCst) {
                    let r = l.reader().unwrap();
                    let mut balance = 0u128;
                    let mut net = 0i128;
                    for w in numbers {
                        let snap = r.snapshot(*w, None).unwrap();
                        let f = snap.pockets[0].units();
                        check_figures(&f, &format!("reader {rd}, trader wallet {w}"));
                        balance += f.balance();
                        net += f.credited as i128 - f.redeemed as i128;
                    }
                    assert_eq!(
                        balance,
                        TRADERS as u128 * START_UNITS,
                        "reader {rd} saw money appear or vanish across the traders"
                    );
                    assert_eq!(net, (TRADERS as u128 * START_UNITS) as i128);
                    for w in private_numbers {
                        let snap = r.snapshot(*w, None).unwrap();
                        for p in &snap.pockets {
                            check_figures(&p.units(), &format!("reader {rd}, private wallet {w}"));
                        }
                    }
                    reads.fetch_add(1, Ordering::Relaxed);
                    n += 1;
                    if n.is_multiple_of(25) {
                        let rep = l.verify().unwrap();
                        assert!(rep.ok(), "verify during writes: {:?}", rep.problems);
                        verifies.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
        }
        while writers_left.load(Ordering::SeqCst) > 0 {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        done.store(true, Ordering::SeqCst);
    });
    drop(ledger);

    // Reopen the file: every acknowledged receipt is there.
    let l = Ledger::open_with_clock(&path, clock()).unwrap();
    assert_verified(&l, "after the concurrent run");
    let max_w = (TRADERS + PRIVATE) as u64;
    let present = positions(&l, max_w);
    let acked = acked.into_inner().unwrap();
    let mut claimed = BTreeSet::new();
    for r in &acked {
        if let (Some(a), Some(b)) = (r.first_position, r.last_position) {
            for p in a..=b {
                assert!(
                    present.contains(&p),
                    "acknowledged {r:?}: position {p} missing"
                );
            }
            let positions_claimed = b - a + 1;
            assert_eq!(
                positions_claimed, r.events,
                "a receipt's positions are contiguous"
            );
            for p in a..=b {
                assert!(claimed.insert(p), "position {p} claimed by two receipts");
            }
        }
    }
    // The traders' money is all there.
    let mut total = 0;
    for w in 0..TRADERS {
        let snap = l.snapshot(wallet_uuid(w).parse().unwrap(), None).unwrap();
        total += snap.pockets[0].units().balance();
    }
    assert_eq!(total, TRADERS as u128 * START_UNITS);
    // Each private wallet's stream equals a replay of its thread's acknowledged lines alone.
    let private_acked = private_acked.into_inner().unwrap();
    for (t, lines) in private_acked.iter().enumerate() {
        let model = Ledger::in_memory(clock()).unwrap();
        for line in setup_lines() {
            model.execute_line(&line).unwrap();
        }
        for line in lines {
            model
                .execute_line(line)
                .unwrap_or_else(|e| panic!("private {t}: acknowledged line fails alone: {e}"));
        }
        let stream = |l: &Ledger| -> Vec<String> {
            let r = l.reader().unwrap();
            let w = r
                .wallet_number(private_uuid(t).parse().unwrap())
                .unwrap()
                .unwrap();
            // Positions and checksums depend on the interleaving; the events and times do not.
            r.events(w)
                .unwrap()
                .into_iter()
                .map(|(seq, e)| format!("{seq} {} {:?}", e.at, e.event))
                .collect()
        };
        let (got, want) = (stream(&l), stream(&model));
        if let Some(i) = (0..got.len().max(want.len())).find(|i| got.get(*i) != want.get(*i)) {
            panic!(
                "private wallet {t}: its stream differs from a replay of its acknowledged lines \
                 at event {i}: file {:?}, replay {:?}",
                got.get(i),
                want.get(i)
            );
        }
    }
    let reads = reads.load(Ordering::Relaxed);
    let verifies = verifies.load(Ordering::Relaxed);
    eprintln!(
        "concurrency: {} acknowledged commands, {} rejected transfers, {} events, {reads} \
         consistent reads, {verifies} concurrent verifies",
        acked.len(),
        rejected.load(Ordering::Relaxed),
        present.len()
    );
    assert!(reads > 10, "the readers barely ran ({reads} reads)");
    assert!(verifies > 0, "no verify ran during the writes");
}

#[test]
fn concurrent_retries_of_one_key_execute_once() {
    let dir = tempfile::tempdir().unwrap();
    let (ledger, path) = file_ledger(&dir);
    for l in setup_lines() {
        ledger.execute_line(&l).unwrap();
    }
    let w = wallet_uuid(0);
    let senders = 6;
    let rounds = 40;
    let mut lots = Vec::new();
    let mut conflicts = 0;
    let mut replays = 0;
    for round in 0..rounds {
        let barrier = Barrier::new(senders);
        let same = format!(
            r#"{{"op":"credit","wallet":"{w}","amount":"5","lot":"idem-{round}","key":"retry-{round}"}}"#
        );
        // Two senders reuse the key for another command (in different places each round).
        let other = format!(
            r#"{{"op":"credit","wallet":"{w}","amount":"7","lot":"idem-{round}-b","key":"retry-{round}"}}"#
        );
        let results: Vec<(bool, Result<Receipt, wallet_ledger::CommandError>)> =
            std::thread::scope(|s| {
                let handles: Vec<_> = (0..senders)
                    .map(|i| {
                        let l = ledger.clone();
                        let (barrier, same, other) = (&barrier, &same, &other);
                        s.spawn(move || {
                            let is_other = (i + round) % senders < 2;
                            barrier.wait();
                            let line = if is_other { other } else { same };
                            (is_other, l.execute_line(line))
                        })
                    })
                    .collect();
                handles.into_iter().map(|h| h.join().unwrap()).collect()
            });
        let winners: Vec<_> = results
            .iter()
            .filter(|(_, r)| matches!(r, Ok(r) if !r.replayed))
            .collect();
        assert_eq!(winners.len(), 1, "round {round}: {results:#?}");
        let (winner_is_other, winner) = winners[0];
        let winner = winner.as_ref().unwrap();
        for (is_other, r) in &results {
            match r {
                Ok(r) if r.replayed => {
                    assert_eq!(is_other, winner_is_other, "round {round}");
                    let mut r = r.clone();
                    r.replayed = false;
                    assert_eq!(
                        &r, winner,
                        "round {round}: a replay differs from the original"
                    );
                    replays += 1;
                }
                Ok(_) => {}
                Err(e) => {
                    assert_eq!(e.code, ErrorCode::IdempotencyConflict, "round {round}: {e}");
                    assert_ne!(is_other, winner_is_other, "round {round}");
                    conflicts += 1;
                }
            }
        }
        lots.push(winner.lot.clone().unwrap());
    }
    drop(ledger);
    // Exactly one credit per round made it into the log.
    let l = Ledger::open_with_clock(&path, clock()).unwrap();
    assert_verified(&l, "after the retries");
    let history = l.history(w.parse().unwrap()).unwrap();
    let credited: Vec<String> = history
        .iter()
        .filter_map(|h| match &h.event {
            wallet_ledger::HistoryEvent::Credited { lot, .. } if lot.starts_with("idem-") => {
                Some(lot.clone())
            }
            _ => None,
        })
        .collect();
    assert_eq!(credited, lots, "one execution per key, in round order");
    eprintln!(
        "idempotency: {rounds} rounds of {senders} senders: {replays} replays, {conflicts} conflicts"
    );
}

/// `on_commit` hears about every group: the commands it reports add up to the commands executed
/// (failed ones and replays included), whatever the grouping was.
#[test]
fn the_commit_observer_counts_every_command() {
    let dir = tempfile::tempdir().unwrap();
    let (ledger, _) = file_ledger(&dir);
    let seen = std::sync::Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    ledger.on_commit(move |s| sink.lock().unwrap().push(s.commands));
    let setup = setup_lines();
    for l in &setup {
        ledger.execute_line(l).unwrap();
    }
    let (threads, each) = (8, 20);
    let barrier = Barrier::new(threads);
    std::thread::scope(|s| {
        for t in 0..threads {
            let (l, barrier) = (ledger.clone(), &barrier);
            s.spawn(move || {
                barrier.wait();
                for i in 0..each {
                    // Every other command is a replay of the one before it.
                    let line = format!(
                        r#"{{"op":"credit","wallet":"{}","amount":"1","key":"obs-{t}-{}"}}"#,
                        wallet_uuid(t % TRADERS),
                        i / 2
                    );
                    l.execute_line(&line).unwrap();
                }
            });
        }
    });
    // A line that fails to parse never reaches a group.
    assert!(ledger.execute_line("not json").is_err());
    let seen = seen.lock().unwrap();
    assert!(seen.iter().all(|&n| n >= 1), "{seen:?}");
    assert_eq!(seen.iter().sum::<usize>(), setup.len() + threads * each);
}

/// A clock that ticks one microsecond per reading and yields the thread right after, so that a
/// caller is likely to be overtaken between reading it and queueing its command.
struct TickingClock(std::sync::atomic::AtomicI64);

impl wallet_ledger::Clock for TickingClock {
    fn now(&self) -> chrono::DateTime<chrono::Utc> {
        let us = self.0.fetch_add(1, Ordering::SeqCst);
        std::thread::yield_now();
        chrono::DateTime::from_timestamp_micros(1_780_000_000_000_000 + us).unwrap()
    }
}

/// Commands that leave `at` to the clock, sent concurrently on one wallet, are never
/// `backdated` against each other: they are applied in the order their instants were read.
#[test]
fn clock_defaulted_commands_on_one_wallet_are_never_backdated() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::open_with_clock(
        dir.path().join("ticking.redb"),
        Box::new(TickingClock(std::sync::atomic::AtomicI64::new(0))),
    )
    .unwrap();
    let w = wallet_uuid(0);
    for l in [
        r#"{"op":"define_program","program":1,"name":"P","unit":"U","pockets":[{"pocket":"main","name":"M","kind":"K","asset":"A","scale":0}]}"#.to_string(),
        format!(r#"{{"op":"register_holder","holder":"{}"}}"#, holder_uuid(0)),
        format!(r#"{{"op":"open_wallet","wallet":"{w}","holder":"{}","program":1}}"#, holder_uuid(0)),
    ] {
        ledger.execute_line(&l).unwrap();
    }
    let (threads, each) = (8, 100);
    std::thread::scope(|s| {
        for _ in 0..threads {
            let (l, w) = (ledger.clone(), &w);
            s.spawn(move || {
                for _ in 0..each {
                    let line = format!(r#"{{"op":"credit","wallet":"{w}","amount":"1"}}"#);
                    if let Err(e) = l.execute_line(&line) {
                        panic!("{e}");
                    }
                }
            });
        }
    });
    let snap = ledger.snapshot(w.parse().unwrap(), None).unwrap();
    assert_eq!(snap.pockets[0].units().credited, threads * each);
}
