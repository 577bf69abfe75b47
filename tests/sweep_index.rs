//! The sweep index (`next_due` table): one entry per wallet with a time-driven transition
//! pending, at its earliest due instant, exact. A flush rewrites the entry of every wallet it
//! writes, and the in-memory layer's wallets are looked up by their exact header, so `sweep`
//! visits exactly the wallets with something due. These tests pin what users rely on: `sweep`
//! records exactly what is due, whatever was flushed when; and `verify` reports a missing, late
//! or early entry.

mod common;

use common::*;
use redb::{Database, ReadableTable, TableDefinition};
use std::path::Path;
use wallet_ledger::OpenOptions;
use wallet_ledger::{FixedClock, Ledger};

const NEXT_DUE: TableDefinition<&[u8], ()> = TableDefinition::new("next_due");
const W: &str = "550e8400-e29b-41d4-a716-446655440000";
const V: &str = "550e8400-e29b-41d4-a716-446655440001";
const H: &str = "37b08803-c1af-4e10-849f-530264bac7f8";

fn open(path: &Path) -> Ledger {
    Ledger::open_with_clock(path, Box::new(FixedClock(far_future()))).unwrap()
}

/// A ledger that flushes after every `n` events.
fn open_flushing(path: &Path, n: u64) -> Ledger {
    OpenOptions::new()
        .clock(Box::new(FixedClock(far_future())))
        .max_unflushed_events(n)
        .open(path)
        .unwrap()
}

fn ns(t: &str) -> i64 {
    t.parse::<chrono::DateTime<chrono::Utc>>()
        .unwrap()
        .timestamp_nanos_opt()
        .unwrap()
}

/// Wallet W with lot A expiring Jan 3 and lot B expiring Jan 6, then a redemption on Jan 4 that
/// records A's expiry first: W's earliest due instant moves from Jan 3 to Jan 6. Wallet V has a
/// lot that never expires: nothing is ever due on it.
fn history(l: &Ledger) {
    for line in [
        r#"{"op":"define_program","at":"2026-01-01T00:00:00Z","program":1,"name":"P","unit":"PTS","pockets":[{"pocket":"main","name":"Main","kind":"POINTS","asset":"PTS","scale":2}]}"#.to_string(),
        format!(r#"{{"op":"register_holder","at":"2026-01-01T00:00:00Z","holder":"{H}"}}"#),
        format!(r#"{{"op":"open_wallet","at":"2026-01-01T00:00:00Z","wallet":"{W}","holder":"{H}","program":1}}"#),
        format!(r#"{{"op":"open_wallet","at":"2026-01-01T00:00:00Z","wallet":"{V}","holder":"{H}","program":1}}"#),
        format!(r#"{{"op":"credit","at":"2026-01-02T00:00:00Z","wallet":"{V}","amount":"3"}}"#),
        format!(r#"{{"op":"credit","at":"2026-01-02T00:00:00Z","wallet":"{W}","amount":"10","lot":"A","expires_at":"2026-01-03T00:00:00Z"}}"#),
        format!(r#"{{"op":"credit","at":"2026-01-02T00:00:00Z","wallet":"{W}","amount":"20","lot":"B","expires_at":"2026-01-06T00:00:00Z"}}"#),
        format!(r#"{{"op":"redeem","at":"2026-01-04T00:00:00Z","wallet":"{W}","amount":"5"}}"#),
    ] {
        l.execute_line(&line).unwrap_or_else(|e| panic!("{line}: {e}"));
    }
}

/// The entries of the `next_due` table: (instant, wallet number).
fn sweep_entries(path: &Path) -> Vec<(i64, u64)> {
    let db = Database::open(path).unwrap();
    let txn = redb::ReadableDatabase::begin_read(&db).unwrap();
    let t = txn.open_table(NEXT_DUE).unwrap();
    t.iter()
        .unwrap()
        .map(|r| {
            let k = r.unwrap().0.value().to_vec();
            let at = (u64::from_be_bytes(k[..8].try_into().unwrap()) ^ (1 << 63)) as i64;
            (at, u64::from_be_bytes(k[8..].try_into().unwrap()))
        })
        .collect()
}

#[test]
fn the_sweep_index_is_exact_and_sweep_records_exactly_what_is_due() {
    for flush_every in [1, 3, 1_000_000] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("l.redb");
        let l = open_flushing(&path, flush_every);
        history(&l);
        assert_verified(&l, "after the redemption");
        drop(l);
        // W (number 1) is due on Jan 6 (B's expiry); V has nothing due.
        assert_eq!(
            sweep_entries(&path),
            [(ns("2026-01-06T00:00:00Z"), 1)],
            "flushing every {flush_every} events"
        );
        let l = open_flushing(&path, flush_every);
        let r = l
            .execute_line(r#"{"op":"sweep","at":"2026-01-05T00:00:00Z"}"#)
            .unwrap();
        assert_eq!(r.events, 0, "nothing is due on Jan 5");
        let r = l
            .execute_line(r#"{"op":"sweep","at":"2026-01-07T00:00:00Z"}"#)
            .unwrap();
        assert_eq!(r.events, 1, "B's expiry");
        assert_verified(&l, "after the sweep that recorded B's expiry");
        drop(l);
        assert!(sweep_entries(&path).is_empty(), "nothing left due");
    }
}

#[test]
fn a_missing_late_or_early_sweep_entry_is_reported_by_verify() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("l.redb");
    history(&open(&path));
    let (at, w) = sweep_entries(&path).remove(0);
    let key = |at: i64| {
        let mut k = ((at as u64) ^ (1 << 63)).to_be_bytes().to_vec();
        k.extend_from_slice(&w.to_be_bytes());
        k
    };
    for (what, new) in [
        ("missing", None),
        ("late", Some(ns("2026-01-08T00:00:00Z"))),
        ("early", Some(ns("2026-01-05T00:00:00Z"))),
    ] {
        let copy = dir.path().join(format!("{what}.redb"));
        std::fs::copy(&path, &copy).unwrap();
        {
            let db = Database::open(&copy).unwrap();
            let txn = db.begin_write().unwrap();
            {
                let mut t = txn.open_table(NEXT_DUE).unwrap();
                t.remove(&key(at)[..]).unwrap();
                if let Some(n) = new {
                    t.insert(&key(n)[..], ()).unwrap();
                }
            }
            txn.commit().unwrap();
        }
        let r = open(&copy).verify().unwrap();
        assert!(
            r.problems.iter().any(|p| p.contains("sweep index")),
            "{what}: {:#?}",
            r.problems
        );
    }
}
