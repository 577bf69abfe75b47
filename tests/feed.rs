//! The change feed (`Ledger::changes`, `Ledger::wait_for`): every event in position order,
//! in pages, from any position; restarts without gaps or repeats; concurrent writers tailed
//! by a consumer that waits instead of polling.

use serde_json::json;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use wallet_ledger::{Change, FixedClock, HistoryEvent, Ledger};

const H: &str = "37b08803-c1af-4e10-849f-530264bac7f8";

fn wallet(n: usize) -> String {
    format!("0198c000-0000-7000-8000-{n:012}")
}

fn clock() -> Box<FixedClock> {
    Box::new(FixedClock("2026-01-01T00:00:00Z".parse().unwrap()))
}

fn run(l: &Ledger, line: serde_json::Value) -> wallet_ledger::Receipt {
    let line = line.to_string();
    l.execute_line(&line)
        .unwrap_or_else(|e| panic!("{line}: {e}"))
}

/// A program, a holder and `wallets` wallets.
fn setup(l: &Ledger, wallets: usize) {
    run(
        l,
        json!({"op":"define_program","program":1,"name":"P","unit":"U","pockets":[
            {"pocket":"main","name":"Main","kind":"CASH","asset":"USD","scale":2}]}),
    );
    run(
        l,
        json!({"op":"register_holder","holder":H,"identity":"h1"}),
    );
    for w in 0..wallets {
        run(
            l,
            json!({"op":"open_wallet","wallet":wallet(w),"holder":H,"program":1}),
        );
    }
}

/// Every change after `after`, read in pages of `page`.
fn read_all(l: &Ledger, after: u64, page: usize) -> Vec<Change> {
    let mut out = Vec::new();
    let mut after = after;
    loop {
        let p = l.changes(after, page).unwrap();
        assert!(p.len() <= page);
        let Some(last) = p.last() else { break };
        after = last.position;
        out.extend(p);
    }
    out
}

/// Positions `first..` with no gap, and each stream's sequence numbers with no gap either.
fn assert_gapless(changes: &[Change], first: u64) {
    for (i, c) in changes.iter().enumerate() {
        assert_eq!(c.position, first + i as u64, "{c:?}");
    }
    // From the first position on, a stream's first event is its first; after a later one, the
    // stream's events in sequence from wherever it stood.
    let mut seqs: HashMap<Option<uuid::Uuid>, u64> = HashMap::new();
    for c in changes {
        let s = seqs
            .entry(c.wallet)
            .or_insert(if first == 1 { 0 } else { c.seq - 1 });
        assert_eq!(c.seq, *s + 1, "{c:?}");
        *s = c.seq;
    }
}

#[test]
fn changes_come_in_position_order_typed() {
    let l = Ledger::in_memory(clock()).unwrap();
    setup(&l, 2);
    let (w0, w1) = (wallet(0), wallet(1));
    // Keyed commands write command records between events: the feed skips them.
    run(
        &l,
        json!({"op":"credit","wallet":w0,"amount":"12.50","lot":"A","key":"k1",
            "expires_at":"2026-03-01T00:00:00Z"}),
    );
    run(
        &l,
        json!({"op":"credit","wallet":w1,"amount":"7","key":"k2"}),
    );
    run(
        &l,
        json!({"op":"hold","wallet":w0,"amount":"2.5","hold":"H1","key":"k3"}),
    );
    run(
        &l,
        json!({"op":"capture","wallet":w0,"hold":"H1","amount":"1"}),
    );
    run(&l, json!({"op":"freeze","wallet":w1,"reason":"audit"}));
    let all = read_all(&l, 0, 1000);
    assert_gapless(&all, 1);
    assert_eq!(all.len() as u64, l.last_position());
    let names: Vec<&str> = all.iter().map(|c| c.event.name()).collect();
    assert_eq!(
        names,
        [
            "program_defined",
            "holder_registered",
            "wallet_opened",
            "wallet_opened",
            "credited",
            "credited",
            "held",
            "captured",
            "lifecycle"
        ]
    );
    // Ledger-stream events belong to no wallet and count their own sequence.
    assert_eq!((all[0].wallet, all[0].seq), (None, 1));
    assert_eq!((all[1].wallet, all[1].seq), (None, 2));
    assert!(matches!(&all[1].event,
        HistoryEvent::HolderRegistered { holder, identity, .. }
            if holder.to_string() == H && identity.as_deref() == Some("h1")));
    let u0: uuid::Uuid = w0.parse().unwrap();
    let u1: uuid::Uuid = w1.parse().unwrap();
    assert_eq!((all[4].wallet, all[4].seq), (Some(u0), 2));
    assert_eq!((all[5].wallet, all[5].seq), (Some(u1), 2));
    assert!(matches!(&all[4].event,
        HistoryEvent::Credited { pocket, lot, amount, expires_at: Some(_), .. }
            if pocket == "main" && lot == "A" && amount.to_string() == "12.5"));
    // The assigned lot id, not a number.
    assert!(matches!(&all[5].event, HistoryEvent::Credited { lot, .. } if lot == "lot-1"));
    // A capture names its hold by the client's id and the redemption it became.
    assert!(matches!(&all[7].event,
        HistoryEvent::Captured { hold, redemption, .. } if hold == "H1" && redemption == "H1"));
    // The same events, typed alike, as the wallet's history (which adds allocations).
    let h0 = l.history(u0).unwrap();
    let from_feed: Vec<&Change> = all.iter().filter(|c| c.wallet == Some(u0)).collect();
    assert_eq!(h0.len(), from_feed.len());
    for (h, c) in h0.iter().zip(from_feed) {
        assert_eq!(
            (h.seq, h.position, h.at, &h.event),
            (c.seq, c.position, c.at, &c.event)
        );
    }
    // The tail line: position, wallet, seq, at, event, then the event's fields.
    assert_eq!(
        serde_json::to_string(&all[8]).unwrap(),
        format!(
            r#"{{"position":9,"wallet":"{w1}","seq":3,"at":"2026-01-01T00:00:00Z","event":"lifecycle","action":"freeze","reason":"audit","id":"{}"}}"#,
            match &all[8].event {
                HistoryEvent::Lifecycle { id, .. } => id.to_string(),
                e => panic!("{e:?}"),
            }
        )
    );
    // wallet_opened states its wallet once, in front.
    let opened = serde_json::to_value(&all[2]).unwrap();
    assert_eq!(opened["wallet"], json!(w0));
    assert_eq!(opened["number"], 1);
    assert_eq!(
        serde_json::to_string(&all[0]).unwrap(),
        r#"{"position":1,"wallet":null,"seq":1,"at":"2026-01-01T00:00:00Z","event":"program_defined","program":1,"name":"P","unit":"U","order":"earliest_expiry","pockets":[{"pocket":"main","name":"Main","kind":"CASH","asset":"USD","scale":2}]}"#
    );
}

#[test]
fn pages_of_any_size_add_up_to_the_whole_feed() {
    let l = Ledger::in_memory(clock()).unwrap();
    setup(&l, 3);
    for i in 0..20 {
        run(
            &l,
            json!({"op":"credit","wallet":wallet(i % 3),"amount":"1","key":format!("c{i}")}),
        );
    }
    let whole = read_all(&l, 0, 10_000);
    assert_eq!(whole.len(), 25);
    for page in [1, 2, 3, 7, 24, 25, 26] {
        assert_eq!(read_all(&l, 0, page), whole, "pages of {page}");
    }
    // From any position: exactly what follows it.
    for after in 0..=25u64 {
        assert_eq!(
            read_all(&l, after, 4),
            whole[after as usize..],
            "after {after}"
        );
    }
    assert!(l.changes(25, 10).unwrap().is_empty());
    assert!(l.changes(u64::MAX, 10).unwrap().is_empty());
    assert!(l.changes(0, 0).unwrap().is_empty());
    // A limit over the bound is cut to it, not refused.
    assert_eq!(l.changes(0, usize::MAX).unwrap(), whole);
}

/// A consumer that stops (the process dies, the file is reopened, maybe flushed in between)
/// and restarts after the last position it processed sees every event exactly once.
#[test]
fn a_restarted_consumer_misses_nothing_and_repeats_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("feed.redb");
    let mut seen: Vec<Change> = Vec::new();
    let mut cursor = 0u64;
    for round in 0..4 {
        let l = Ledger::open_with_clock(&path, clock()).unwrap();
        if round == 0 {
            setup(&l, 2);
        }
        for i in 0..5 {
            run(
                &l,
                json!({"op":"credit","wallet":wallet(i % 2),"amount":"1",
                    "key":format!("r{round}-{i}")}),
            );
        }
        // The consumer processes part of what is there, then "crashes" mid-page.
        let page = l.changes(cursor, 3).unwrap();
        cursor = page.last().map_or(cursor, |c| c.position);
        seen.extend(page);
        if round % 2 == 1 {
            l.flush().unwrap();
        }
        drop(l);
    }
    let l = Ledger::open_with_clock(&path, clock()).unwrap();
    seen.extend(read_all(&l, cursor, 2));
    assert_gapless(&seen, 1);
    assert_eq!(seen, read_all(&l, 0, 100));
    assert_eq!(seen.len() as u64, l.last_position());
}

#[test]
fn wait_for_returns_at_once_times_out_or_wakes_on_the_commit() {
    let l = Ledger::in_memory(clock()).unwrap();
    setup(&l, 1);
    let last = l.last_position();
    assert_eq!(last, 3);
    let t = Instant::now();
    assert!(l.wait_for(last, Duration::from_secs(30)));
    assert!(l.wait_for(0, Duration::ZERO));
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "an acknowledged position does not wait"
    );
    let t = Instant::now();
    assert!(!l.wait_for(last + 1, Duration::from_millis(50)));
    assert!(t.elapsed() >= Duration::from_millis(50));
    // A waiter is woken by the commit, long before its timeout.
    let writer = {
        let l = l.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            run(&l, json!({"op":"credit","wallet":wallet(0),"amount":"1"}));
        })
    };
    let t = Instant::now();
    assert!(l.wait_for(last + 1, Duration::from_secs(60)));
    assert!(t.elapsed() < Duration::from_secs(30));
    writer.join().unwrap();
    let c = l.changes(last, 10).unwrap();
    assert_eq!(c.len(), 1);
    assert_eq!(c[0].position, last + 1);
    // A failed command publishes nothing: the waiter for the next position keeps waiting.
    assert!(
        l.execute_line(&json!({"op":"redeem","wallet":wallet(0),"amount":"1000"}).to_string())
            .is_err()
    );
    assert!(!l.wait_for(last + 2, Duration::from_millis(20)));
}

/// Several threads write (single commands and batches, on their own wallets and a shared one)
/// while a consumer tails the feed, waiting with `wait_for` whenever it is caught up: it sees
/// every event once, in position order, with no gap, each stream in sequence order; and what it
/// saw is the feed read afterwards.
#[test]
fn a_tailing_consumer_keeps_up_with_concurrent_writers() {
    const WRITERS: usize = 4;
    const COMMANDS: usize = 60;
    let dir = tempfile::tempdir().unwrap();
    // A small layer budget: flushes happen while the consumer reads.
    let l = wallet_ledger::OpenOptions::new()
        .clock(clock())
        .max_unflushed_events(50)
        .open(dir.path().join("tail.redb"))
        .unwrap();
    setup(&l, WRITERS + 1);
    let start = l.last_position();
    let expected_events = WRITERS * COMMANDS + WRITERS * (COMMANDS / 10) * 2;
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let consumer = {
        let l = l.clone();
        let done = done.clone();
        std::thread::spawn(move || {
            let mut seen: Vec<Change> = Vec::new();
            let mut after = start;
            let mut waits = 0u32;
            loop {
                let page = l.changes(after, 7).unwrap();
                if let Some(last) = page.last() {
                    assert_eq!(page[0].position, after + 1, "a gap after {after}");
                    after = last.position;
                    seen.extend(page);
                    continue;
                }
                if done.load(std::sync::atomic::Ordering::SeqCst) && after == l.last_position() {
                    return (seen, waits);
                }
                // Caught up: sleep until the next position is acknowledged (the timeout only
                // lets the loop notice the writers are done).
                waits += 1;
                l.wait_for(after + 1, Duration::from_millis(200));
            }
        })
    };
    let writers: Vec<_> = (0..WRITERS)
        .map(|t| {
            let l = l.clone();
            std::thread::spawn(move || {
                for i in 0..COMMANDS {
                    run(
                        &l,
                        json!({"op":"credit","wallet":wallet(t),"amount":"1",
                            "key":format!("t{t}-{i}")}),
                    );
                    if i % 10 == 9 {
                        // A batch of two events, one on the shared wallet.
                        run(
                            &l,
                            json!({"op":"batch","commands":[
                                {"op":"credit","wallet":wallet(WRITERS),"amount":"2"},
                                {"op":"redeem","wallet":wallet(t),"amount":"1"}]}),
                        );
                    }
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    let (seen, waits) = consumer.join().unwrap();
    assert_eq!(seen.len(), expected_events);
    assert_gapless(&seen, start + 1);
    let mut per_wallet: HashMap<Option<uuid::Uuid>, Vec<u64>> = HashMap::new();
    for c in &seen {
        per_wallet.entry(c.wallet).or_default().push(c.seq);
    }
    for (w, seqs) in &per_wallet {
        // Each wallet's events after its opening (seq 1), in order, none missing.
        assert_eq!(
            *seqs,
            (2..2 + seqs.len() as u64).collect::<Vec<_>>(),
            "{w:?}"
        );
    }
    assert_eq!(seen, read_all(&l, start, 1000));
    eprintln!(
        "tail: {} events from {WRITERS} writers, the consumer waited {waits} times",
        seen.len()
    );
    assert!(l.verify().unwrap().ok());
}
