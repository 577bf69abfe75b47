//! Typed history (`Ledger::history`, `Ledger::history_page`): readable events with the
//! allocations each made, derived by replay, and pages that add up to the whole.

use rust_decimal::Decimal;
use serde_json::json;
use wallet_ledger::{Destination, ErrorCode, FixedClock, HistoryEvent, Ledger};

const W: &str = "550e8400-e29b-41d4-a716-446655440000";
const H: &str = "37b08803-c1af-4e10-849f-530264bac7f8";

fn run(l: &Ledger, lines: &[serde_json::Value]) {
    for line in lines {
        let line = line.to_string();
        l.execute_line(&line)
            .unwrap_or_else(|e| panic!("{line}: {e}"));
    }
}

/// Credits A (100, expiring Mar 1) and B (50); redeems 30 (R1); holds 80 (H1); captures 50 of
/// it (C1) on Feb 1; refunds 25 of C1 on Mar 2 (after A expired); forfeits 5 on Mar 3.
fn ledger() -> Ledger {
    let l = Ledger::in_memory(Box::new(FixedClock(
        "2026-06-01T00:00:00Z".parse().unwrap(),
    )))
    .unwrap();
    let t = |d: &str| format!("2026-{d}T00:00:00Z");
    run(
        &l,
        &[
            json!({"op":"define_program","at":t("01-01"),"program":1,"name":"P","unit":"U",
                "pockets":[{"pocket":"main","name":"Main","kind":"CASH","asset":"USD","scale":2}]}),
            json!({"op":"register_holder","at":t("01-01"),"holder":H}),
            json!({"op":"open_wallet","at":t("01-01"),"wallet":W,"holder":H,"program":1}),
            json!({"op":"credit","at":t("01-01"),"wallet":W,"amount":"100","lot":"A",
                "expires_at":t("03-01")}),
            json!({"op":"credit","at":t("01-01"),"wallet":W,"amount":"50","lot":"B"}),
            json!({"op":"redeem","at":t("01-10"),"wallet":W,"amount":"30","redemption":"R1"}),
            json!({"op":"hold","at":t("01-20"),"wallet":W,"amount":"80","hold":"H1"}),
            json!({"op":"capture","at":t("02-01"),"wallet":W,"hold":"H1","amount":"50",
                "redemption":"C1"}),
            json!({"op":"refund","at":t("03-02"),"wallet":W,"redemption":"C1","amount":"25"}),
            json!({"op":"expire","at":t("03-03"),"wallet":W,"amount":"5"}),
        ],
    );
    l
}

fn allocs(e: &wallet_ledger::HistoryEntry) -> Vec<(String, String, Destination)> {
    e.allocations
        .iter()
        .map(|a| (a.lot.clone(), a.amount.to_string(), a.to))
        .collect()
}

fn a(lot: &str, amount: &str, to: Destination) -> (String, String, Destination) {
    (lot.to_string(), amount.to_string(), to)
}

#[test]
fn every_event_names_its_lots_and_what_it_moved() {
    use Destination::*;
    let l = ledger();
    let h = l.history(W.parse().unwrap()).unwrap();
    let names: Vec<&str> = h.iter().map(|e| e.event.name()).collect();
    assert_eq!(
        names,
        [
            "wallet_opened",
            "credited",
            "credited",
            "redeemed",
            "held",
            "captured",
            "expired",
            "refunded",
            "forfeited"
        ]
    );
    assert_eq!(
        h.iter().map(|e| e.seq).collect::<Vec<_>>(),
        (1..=9).collect::<Vec<_>>()
    );
    assert!(allocs(&h[0]).is_empty() && allocs(&h[1]).is_empty() && allocs(&h[2]).is_empty());
    assert_eq!(allocs(&h[3]), [a("A", "30", Redeemed)]);
    assert_eq!(allocs(&h[4]), [a("A", "70", Held), a("B", "10", Held)]);
    // The capture spends 50 of A's 70 held and returns the other 20 and B's 10 (neither lot
    // had expired on Feb 1).
    assert_eq!(
        allocs(&h[5]),
        [
            a("A", "50", Redeemed),
            a("A", "20", Free),
            a("B", "10", Free)
        ]
    );
    assert!(matches!(&h[5].event,
        HistoryEvent::Captured { pocket, hold, redemption, amount }
            if pocket == "main" && hold == "H1" && redemption == "C1"
                && *amount == Decimal::new(50, 0)));
    // A's 20 free expired on Mar 1 (recorded before the refund of Mar 2)…
    assert_eq!(
        h[6].at,
        "2026-03-01T00:00:00Z"
            .parse::<chrono::DateTime<chrono::Utc>>()
            .unwrap()
    );
    assert_eq!(allocs(&h[6]), [a("A", "20", Expired)]);
    // …so the refund into A expires at once; the forfeit takes from B.
    assert_eq!(allocs(&h[7]), [a("A", "25", Expired)]);
    assert_eq!(allocs(&h[8]), [a("B", "5", Expired)]);

    // Serialized: the history line, allocations after the event's own fields.
    assert_eq!(
        serde_json::to_string(&h[5]).unwrap(),
        r#"{"pocket":"main","hold":"H1","redemption":"C1","amount":"50","allocations":[{"lot":"A","amount":"50","to":"redeemed"},{"lot":"A","amount":"20","to":"free"},{"lot":"B","amount":"10","to":"free"}],"seq":6,"position":8,"at":"2026-02-01T00:00:00Z","event":"captured"}"#
    );
    // The event alone names itself first.
    assert_eq!(
        serde_json::to_string(&h[8].event).unwrap(),
        r#"{"event":"forfeited","pocket":"main","amount":"5"}"#
    );
    // A history line and render::history agree.
    assert_eq!(
        wallet_ledger::render::history(&h)[3],
        serde_json::to_value(&h[3]).unwrap()
    );
}

#[test]
fn pages_add_up_to_the_whole_history() {
    let l = ledger();
    let w = W.parse().unwrap();
    let whole = l.history(w).unwrap();
    for size in 1..=whole.len() + 1 {
        let mut paged = Vec::new();
        let mut after = 0;
        loop {
            let page = l.history_page(w, after, size).unwrap();
            assert!(page.len() <= size);
            let Some(last) = page.last() else { break };
            after = last.seq;
            let short = page.len() < size;
            paged.extend(page);
            if short {
                break;
            }
        }
        assert_eq!(paged, whole, "pages of {size}");
    }
    // A page in the middle carries the same allocations as the whole history's entries.
    assert_eq!(l.history_page(w, 4, 2).unwrap(), whole[4..6]);
    assert!(l.history_page(w, 9, 10).unwrap().is_empty());
    assert!(l.history_page(w, u64::MAX, 10).unwrap().is_empty());
    assert!(l.history_page(w, 0, 0).unwrap().is_empty());
    // A limit over the bound is cut to it, not refused.
    assert_eq!(l.history_page(w, 0, usize::MAX).unwrap(), whole);
    // An unknown wallet is `unknown_wallet`.
    let e = l
        .history_page(
            "9f0c1a2b-3c4d-4e5f-8a9b-0c1d2e3f4a5b".parse().unwrap(),
            0,
            5,
        )
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::UnknownWallet);
}

/// A hold that times out returns its slices by time: the release's allocations say where each
/// went, and a read after a flush (history from the projection's event index) is the same.
#[test]
fn a_timed_out_hold_returns_its_slices() {
    use Destination::*;
    let l = ledger();
    run(
        &l,
        &[
            json!({"op":"hold","at":"2026-03-04T00:00:00Z","wallet":W,"amount":"40","hold":"H2",
                "expires_at":"2026-03-05T00:00:00Z"}),
            json!({"op":"link_payment_method","at":"2026-03-06T00:00:00Z","wallet":W,
                "method":{"account_name":"A","account_number":"0123456789",
                "account_type":"savings","bank_code":"058","bank_name":"B"}}),
        ],
    );
    let w = W.parse().unwrap();
    let before = l.history(w).unwrap();
    let n = before.len();
    assert_eq!(before[n - 3].event.name(), "held");
    assert_eq!(allocs(&before[n - 3]), [a("B", "40", Held)]);
    assert!(
        matches!(
            before[n - 2].event,
            HistoryEvent::Released {
                timed_out: true,
                ..
            }
        ),
        "{:?}",
        before[n - 2]
    );
    assert_eq!(allocs(&before[n - 2]), [a("B", "40", Free)]);
    assert!(allocs(&before[n - 1]).is_empty());
    l.flush().unwrap();
    assert_eq!(l.history(w).unwrap(), before);
    assert!(l.verify().unwrap().ok());
}
