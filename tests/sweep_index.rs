//! The sweep index (`next_due` table, and the instant in each wallet header's prefix) holds a
//! lower bound of each wallet's earliest due instant: it is moved earlier when a command brings
//! a due transition forward, but left early when the earliest one is recorded, so a command
//! does not rewrite two more B-tree leaves. These tests pin what users rely on: `sweep` still
//! records exactly what is due, `verify` accepts an early entry, and it reports a missing or
//! late one (which would make `sweep` miss a wallet).

mod common;

use common::*;
use redb::{Database, ReadableTable, TableDefinition};
use std::path::Path;
use wallet_ledger::{FixedClock, Ledger};

const ROWS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("wallet_rows");
const NEXT_DUE: TableDefinition<&[u8], ()> = TableDefinition::new("next_due");
const W: &str = "550e8400-e29b-41d4-a716-446655440000";
const H: &str = "37b08803-c1af-4e10-849f-530264bac7f8";

fn open(path: &Path) -> Ledger {
    Ledger::open_with_clock(path, Box::new(FixedClock(far_future()))).unwrap()
}

/// A wallet with lot A expiring Jan 3 and lot B expiring Jan 6, then a redemption on Jan 4 that
/// records A's expiry first: the wallet's earliest due instant moves from Jan 3 to Jan 6.
fn history(l: &Ledger) {
    for line in [
        r#"{"op":"define_program","at":"2026-01-01T00:00:00Z","program":1,"name":"P","unit":"PTS","pockets":[{"pocket":"main","name":"Main","kind":"POINTS","asset":"PTS","scale":2}]}"#.to_string(),
        format!(r#"{{"op":"register_holder","at":"2026-01-01T00:00:00Z","holder":"{H}"}}"#),
        format!(r#"{{"op":"open_wallet","at":"2026-01-01T00:00:00Z","wallet":"{W}","holder":"{H}","program":1}}"#),
        format!(r#"{{"op":"credit","at":"2026-01-02T00:00:00Z","wallet":"{W}","amount":"10","lot":"A","expires_at":"2026-01-03T00:00:00Z"}}"#),
        format!(r#"{{"op":"credit","at":"2026-01-02T00:00:00Z","wallet":"{W}","amount":"20","lot":"B","expires_at":"2026-01-06T00:00:00Z"}}"#),
        format!(r#"{{"op":"redeem","at":"2026-01-04T00:00:00Z","wallet":"{W}","amount":"5"}}"#),
    ] {
        l.execute_line(&line).unwrap_or_else(|e| panic!("{line}: {e}"));
    }
}

/// The instants in the `next_due` table (its keys start with the instant, big-endian with the
/// sign bit flipped, then the wallet number).
fn sweep_entries(path: &Path) -> Vec<Vec<u8>> {
    let db = Database::open(path).unwrap();
    let txn = redb::ReadableDatabase::begin_read(&db).unwrap();
    let t = txn.open_table(NEXT_DUE).unwrap();
    t.iter()
        .unwrap()
        .map(|r| r.unwrap().0.value().to_vec())
        .collect()
}

#[test]
fn an_early_sweep_entry_verifies_and_sweep_records_exactly_what_is_due() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("l.redb");
    let l = open(&path);
    history(&l);
    assert_verified(&l, "after the redemption");
    drop(l);
    let early = sweep_entries(&path);
    assert_eq!(early.len(), 1, "one wallet, one entry");

    // A sweep on Jan 5 visits the wallet (its entry is still Jan 3) and records nothing...
    let l = open(&path);
    let r = l
        .execute_line(r#"{"op":"sweep","at":"2026-01-05T00:00:00Z"}"#)
        .unwrap();
    assert_eq!(r.events, 0, "nothing is due on Jan 5");
    assert_verified(&l, "after an empty sweep");
    drop(l);
    // ...but refreshes the entry to the exact instant, so later sweeps skip the wallet.
    let exact = sweep_entries(&path);
    assert_eq!(exact.len(), 1);
    assert!(exact[0] > early[0], "the entry moved later, to Jan 6");

    // B's expiry is still found.
    let l = open(&path);
    let r = l
        .execute_line(r#"{"op":"sweep","at":"2026-01-07T00:00:00Z"}"#)
        .unwrap();
    assert_eq!(r.events, 1, "B's expiry");
    assert_verified(&l, "after the sweep that recorded B's expiry");
    drop(l);
    assert!(sweep_entries(&path).is_empty(), "nothing left due");
}

#[test]
fn a_missing_or_late_sweep_entry_is_reported_by_verify() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("l.redb");
    history(&open(&path));
    let entry = sweep_entries(&path).remove(0);

    // Missing: sweep would never visit the wallet.
    {
        let db = Database::open(&path).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(NEXT_DUE)
            .unwrap()
            .remove(&entry[..])
            .unwrap();
        txn.commit().unwrap();
    }
    let r = open(&path).verify().unwrap();
    assert!(
        r.problems.iter().any(|p| p.contains("sweep index")),
        "{:#?}",
        r.problems
    );

    // Late: header and entry both moved past the wallet's earliest due instant (Jan 6).
    {
        let db = Database::open(&path).unwrap();
        let txn = db.begin_write().unwrap();
        let late: i64 = "2026-01-08T00:00:00Z"
            .parse::<chrono::DateTime<chrono::Utc>>()
            .unwrap()
            .timestamp_nanos_opt()
            .unwrap();
        let mut k = ((late as u64) ^ (1 << 63)).to_be_bytes().to_vec();
        k.extend_from_slice(&entry[8..]);
        txn.open_table(NEXT_DUE)
            .unwrap()
            .insert(&k[..], ())
            .unwrap();
        {
            let mut rows = txn.open_table(ROWS).unwrap();
            let w = u64::from_be_bytes(entry[8..16].try_into().unwrap());
            let hk = wallet_ledger::storage::header_key(w);
            let mut v = rows.get(&hk[..]).unwrap().unwrap().value().to_vec();
            assert_eq!(v[24], 1, "the header records an instant");
            v[25..33].copy_from_slice(&late.to_be_bytes());
            rows.insert(&hk[..], &v[..]).unwrap();
        }
        txn.commit().unwrap();
    }
    let r = open(&path).verify().unwrap();
    assert!(
        r.problems.iter().any(|p| p.contains("next due")),
        "{:#?}",
        r.problems
    );
}
