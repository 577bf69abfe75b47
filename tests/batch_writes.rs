//! The write path of a group that holds many commands: decided in one overlay over the
//! in-memory layer (each command under its own savepoint, a failed one rolled back alone), its
//! log records appended as one run, its changes merged into the layer, which flushes behind.
//! Each test runs the same commands one by one in a reference ledger and requires a
//! byte-identical log, the same figures, and a clean `verify` — so a record written twice, lost,
//! stale, or left over from a rolled-back command fails it. The grouped ledger flushes after
//! every few events, so groups are decided over a layer and a projection that keep changing.

mod common;

use chrono::{DateTime, Duration, Utc};
use common::*;
use std::path::Path;
use wallet_ledger::OpenOptions;
use wallet_ledger::{FixedClock, Ledger};

const H: &str = "37b08803-c1af-4e10-849f-530264bac7f8";
/// More lots than one read-ahead holds (16), so recording their expiries extends it twice.
const LOTS_W1: i64 = 40;
const LOTS_W2: i64 = 20;

fn w(i: usize) -> String {
    wallet_uuid(i)
}

fn open(path: &Path) -> Ledger {
    Ledger::open_with_clock(path, Box::new(FixedClock(far_future()))).unwrap()
}

fn at(t: DateTime<Utc>) -> String {
    rfc(t)
}

fn credit(i: usize, t: DateTime<Utc>, amount: &str, expires: DateTime<Utc>) -> String {
    format!(
        r#"{{"op":"credit","at":"{}","wallet":"{}","amount":"{amount}","expires_at":"{}"}}"#,
        at(t),
        w(i),
        at(expires)
    )
}

fn redeem(i: usize, t: DateTime<Utc>, amount: &str) -> String {
    format!(
        r#"{{"op":"redeem","at":"{}","wallet":"{}","amount":"{amount}"}}"#,
        at(t),
        w(i)
    )
}

/// Three wallets; wallets 1 and 2 hold many lots that expire a minute apart from day 1 on.
fn history() -> Vec<String> {
    let t = t0();
    let mut v = program_lines(t);
    v.push(format!(
        r#"{{"op":"register_holder","at":"{}","holder":"{H}"}}"#,
        at(t)
    ));
    for i in 1..=3 {
        v.push(format!(
            r#"{{"op":"open_wallet","at":"{}","wallet":"{}","holder":"{H}","program":1}}"#,
            at(t),
            w(i)
        ));
    }
    let day = t + Duration::days(1);
    for k in 0..LOTS_W1 {
        v.push(credit(
            1,
            t + Duration::minutes(k),
            "10",
            day + Duration::minutes(k),
        ));
    }
    for k in 0..LOTS_W2 {
        v.push(credit(
            2,
            t + Duration::minutes(k),
            "10",
            day + Duration::minutes(k),
        ));
    }
    v.push(credit(3, t, "10", day + Duration::days(30)));
    v
}

fn run(l: &Ledger, lines: &[String]) {
    for line in lines {
        l.execute_line(line)
            .unwrap_or_else(|e| panic!("{line}: {e}"));
    }
}

/// The ledger whose commands run as groups: it flushes after every 7 events.
fn open_grouped(path: &Path) -> Ledger {
    OpenOptions::new()
        .clock(Box::new(FixedClock(far_future())))
        .max_unflushed_events(7)
        .open(path)
        .unwrap()
}

/// Runs `lines` as one group, the way concurrent callers are committed: each command under its
/// own savepoint, a failed one rolled back while the others go on. Returns which succeeded.
fn one_transaction(path: &Path, lines: &[String]) -> Vec<bool> {
    let l = open_grouped(path);
    let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
    l.execute_lines_as_group(&refs)
        .iter()
        .map(|r| r.is_ok())
        .collect()
}

fn assert_same(batched: &Ledger, reference: &Ledger, what: &str) {
    assert_verified(batched, what);
    assert_verified(reference, what);
    assert_eq!(
        log_digest(batched, 3),
        log_digest(reference, 3),
        "{what}: the logs differ"
    );
    let wallets: Vec<String> = (1..=3).map(w).collect();
    for t in [t0() + Duration::days(1), far_future()] {
        assert_eq!(
            figures_digest(batched, &wallets, t),
            figures_digest(reference, &wallets, t),
            "{what}: figures at {t}"
        );
    }
    let r = batched.reader().unwrap();
    for i in 1..=3 {
        let no: uuid::Uuid = w(i).parse().unwrap();
        for t in [
            t0() + Duration::days(1) + Duration::minutes(20),
            far_future(),
        ] {
            assert_eq!(
                r.snapshot(no, Some(t)).unwrap(),
                r.snapshot_replayed(no, t).unwrap(),
                "{what}: wallet {i} at {t}, stored and replayed"
            );
        }
    }
    let p = positions(batched, 3);
    assert_eq!(
        p.iter().copied().collect::<Vec<_>>(),
        (1..=p.len() as u64).collect::<Vec<_>>(),
        "{what}: log positions have gaps"
    );
}

#[test]
fn a_transaction_with_a_rolled_back_command_writes_what_one_by_one_writes() {
    let dir = tempfile::tempdir().unwrap();
    let (batched, reference) = (dir.path().join("b.redb"), dir.path().join("r.redb"));
    for p in [&batched, &reference] {
        run(&open(p), &history());
    }
    let day = t0() + Duration::days(1);
    let m = |k: i64| day + Duration::minutes(k);
    let lines = vec![
        // 31 expiries of wallet 1 recorded first: the read-ahead extends twice.
        redeem(1, m(30), "5"),
        // Fails after recording 11 expiries of wallet 2: they are rolled back with it.
        redeem(2, m(10), "100000"),
        // Records them again (6 more), through the keys read ahead before the rollback.
        redeem(2, m(16), "1"),
        credit(2, m(17), "7", m(60 * 24 * 9)),
        // Wallet 3 gets one event in the transaction: no run to write.
        credit(3, m(18), "3", m(60 * 24 * 9)),
        redeem(1, m(35), "2"),
        // Fails without recording anything new (nothing more is due), after a success.
        redeem(1, m(35), "100000"),
        credit(1, m(36), "4", m(37)),
        // Wallet 1's new lot expires inside the transaction, with all but one old one.
        redeem(1, m(38), "1"),
    ];
    let ok = one_transaction(&batched, &lines);
    assert_eq!(
        ok,
        [true, false, true, true, true, true, false, true, true],
        "which commands succeed"
    );
    let reference = open(&reference);
    let succeeded: Vec<String> = lines
        .iter()
        .zip(&ok)
        .filter(|(_, ok)| **ok)
        .map(|(l, _)| l.clone())
        .collect();
    run(&reference, &succeeded);
    let batched = open_grouped(&batched);
    assert_same(&batched, &reference, "after the transaction");

    // And the ledger goes on from there: more expiries, through the public batch path.
    let more = [
        credit(1, m(50), "5", m(60 * 24 * 9)),
        redeem(1, m(51), "1"),
        redeem(2, m(25), "1"),
        credit(3, m(50), "1", m(99)),
    ];
    let batch = format!(
        r#"{{"op":"batch","at":"{}","commands":[{}]}}"#,
        at(m(50)),
        more.join(",")
    );
    batched.execute_line(&batch).unwrap();
    run(&reference, &more);
    assert_same(&batched, &reference, "after a later batch");
}

#[test]
fn a_failed_batch_writes_nothing_and_the_next_one_writes_everything() {
    let dir = tempfile::tempdir().unwrap();
    let (batched, reference) = (dir.path().join("b.redb"), dir.path().join("r.redb"));
    for p in [&batched, &reference] {
        run(&open(p), &history());
    }
    let (batched, reference) = (open_grouped(&batched), open(&reference));
    let day = t0() + Duration::days(1);
    let m = |k: i64| day + Duration::minutes(k);
    let batch = |cmds: &[String]| {
        format!(
            r#"{{"op":"batch","at":"{}","commands":[{}]}}"#,
            at(m(60)),
            cmds.join(",")
        )
    };
    // Every wallet-1 expiry and many events per stream, then a failing last command.
    let mut cmds: Vec<String> = (0..8)
        .map(|k| credit(1, m(41 + k), "1", m(60 * 24 + k)))
        .collect();
    cmds.push(redeem(2, m(15), "3"));
    cmds.push(redeem(1, m(50), "100000"));
    assert!(batched.execute_line(&batch(&cmds)).is_err());
    assert_same(&batched, &reference, "after the failed batch");
    cmds.pop();
    batched.execute_line(&batch(&cmds)).unwrap();
    run(&reference, &cmds);
    assert_same(&batched, &reference, "after the batch");
}
