//! `Ledger::stats` (the ledger's size) and `Ledger::verify_with_progress` (the progress a bar
//! shows): library-side, without the CLI.

use serde_json::json;
use wallet_ledger::{FixedClock, Ledger};

const H: &str = "37b08803-c1af-4e10-849f-530264bac7f8";

fn ledger(events: usize) -> (tempfile::TempDir, Ledger) {
    let dir = tempfile::tempdir().unwrap();
    let l = wallet_ledger::OpenOptions::new()
        .clock(Box::new(FixedClock(
            "2026-01-01T00:00:00Z".parse().unwrap(),
        )))
        .max_unflushed_events(1000)
        .open(dir.path().join("s.redb"))
        .unwrap();
    let run = |v: serde_json::Value| {
        l.execute_line(&v.to_string()).unwrap();
    };
    run(
        json!({"op":"define_program","program":1,"name":"P","unit":"U","pockets":[
        {"pocket":"main","name":"Main","kind":"CASH","asset":"USD","scale":2}]}),
    );
    run(json!({"op":"register_holder","holder":H}));
    for w in 0..3 {
        run(
            json!({"op":"open_wallet","wallet":format!("0198c000-0000-7000-8000-{w:012}"),
                "holder":H,"program":1}),
        );
    }
    for i in 0..events {
        run(
            json!({"op":"credit","wallet":format!("0198c000-0000-7000-8000-{:012}", i % 3),
            "amount":"1","key":format!("k{i}")}),
        );
    }
    (dir, l)
}

#[test]
fn stats_count_what_the_ledger_holds() {
    let (_dir, l) = ledger(2500);
    let s = l.stats().unwrap();
    assert_eq!(
        (s.events, s.wallets, s.holders, s.programs),
        (2505, 3, 1, 1)
    );
    let log = s.tables.iter().find(|t| t.name == "log").unwrap();
    // Every event and every keyed command's record.
    assert_eq!(log.entries, 2505 + 2500);
    assert!(log.stored_bytes > 0 && log.bytes() >= log.stored_bytes);
    assert_eq!(s.unflushed, l.unflushed());
    // Some events are still only in the in-memory layer (flushes happen every 1,000).
    assert!(s.unflushed.events > 0 && s.unflushed.events < 1000);
    let idem = s.tables.iter().find(|t| t.name == "idempotency").unwrap();
    assert_eq!(idem.entries + s.unflushed.events, 2500);
}

#[test]
fn verify_reports_its_progress_up_to_the_total() {
    let (_dir, l) = ledger(10_000);
    let mut calls: Vec<(u64, u64)> = Vec::new();
    let report = l
        .verify_with_progress(|done, total| calls.push((done, total)))
        .unwrap();
    assert!(report.ok(), "{:?}", report.problems);
    let total = 2 * 10_005;
    assert!(calls.len() > 2, "{calls:?}");
    assert!(calls.iter().all(|(_, t)| *t == total));
    assert!(calls.windows(2).all(|w| w[0].0 <= w[1].0), "{calls:?}");
    assert_eq!(calls.first(), Some(&(0, total)));
    assert_eq!(calls.last(), Some(&(total, total)));
    assert_eq!(report, l.verify().unwrap());
}
