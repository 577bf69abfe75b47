//! A wallet's history must not make commands or records grow: 100,000 small credits are redeemed
//! in full by one command whose event record stays a few dozen bytes, refunded in full by one
//! command, and the ledger still verifies. (Speed is measured in benches/, not asserted here.)

use wallet_ledger::command::{Command, Credit, Redeem, Refund, Request};
use wallet_ledger::internals::domain::event::Event;
use wallet_ledger::internals::storage::codec::encode_event;
use wallet_ledger::{FixedClock, Ledger};

const W: &str = "550e8400-e29b-41d4-a716-446655440000";
const H: &str = "37b08803-c1af-4e10-849f-530264bac7f8";
const LOTS: usize = 100_000;

fn setup() -> Ledger {
    let clock = FixedClock("2026-01-01T00:00:00Z".parse().unwrap());
    let l = Ledger::in_memory(Box::new(clock)).unwrap();
    for line in [
        r#"{"op":"define_program","program":1,"name":"P","unit":"PTS","pockets":[{"pocket":"main","name":"Main","kind":"POINTS","asset":"PTS","scale":2}]}"#.to_string(),
        format!(r#"{{"op":"register_holder","holder":"{H}"}}"#),
        format!(r#"{{"op":"open_wallet","wallet":"{W}","holder":"{H}","program":1}}"#),
    ] {
        l.execute_line(&line).unwrap();
    }
    l
}

#[test]
fn one_command_redeems_and_refunds_100k_lots_with_bounded_records() {
    let l = setup();
    let wallet = W.parse().unwrap();
    // 100,000 credits of 0.01 with distinct expiries, in batches of 10,000.
    for chunk in 0..LOTS / 10_000 {
        let items = (0..10_000)
            .map(|i| {
                let n = chunk * 10_000 + i;
                Request::new(Command::Credit(Credit {
                    wallet,
                    amount: rust_decimal::Decimal::new(1, 2),
                    expires_at: Some(
                        "2027-01-01T00:00:00Z"
                            .parse::<chrono::DateTime<chrono::Utc>>()
                            .unwrap()
                            + chrono::Duration::seconds(n as i64),
                    ),
                    ..Default::default()
                }))
            })
            .collect();
        l.execute(&Request::new(Command::Batch(items))).unwrap();
    }
    let before = l.snapshot(wallet, None).unwrap().pockets[0].units();
    assert_eq!(before.available(), LOTS as u128);

    let r = l
        .execute(&Request::new(Command::Redeem(Redeem {
            wallet,
            amount: rust_decimal::Decimal::new(LOTS as i64, 2),
            redemption: Some("everything".into()),
            ..Default::default()
        })))
        .unwrap();
    assert_eq!(r.events, 1, "one event records the whole redemption");
    let after = l.snapshot(wallet, None).unwrap().pockets[0].units();
    assert_eq!((after.available(), after.redeemed), (0, LOTS as u128));

    // The record is bounded whatever the number of lots it consumed.
    let r = l.reader().unwrap();
    let no = r.wallet_number(wallet).unwrap().unwrap();
    let (seq, last) = r.events(no).unwrap().pop().unwrap();
    assert!(matches!(last.event, Event::Redeemed { .. }));
    let delta = Some(wallet_ledger::internals::domain::state::Delta {
        pocket: 0,
        redeemed: LOTS as i128,
        ..Default::default()
    });
    let (bytes, _) = encode_event(
        &[0; 16],
        1,
        seq,
        last.position,
        last.at,
        &delta,
        &last.event,
    );
    assert!(
        bytes.len() < 100,
        "redemption record is {} bytes",
        bytes.len()
    );

    // History derives the 100,000 allocations by replay: one 0.01 from each lot, in credit
    // order.
    let h = l.history(wallet).unwrap();
    let typed = h.last().unwrap();
    assert_eq!(typed.event.name(), "redeemed");
    assert_eq!(typed.allocations.len(), LOTS);
    assert!(
        typed
            .allocations
            .iter()
            .all(|a| a.amount == rust_decimal::Decimal::new(1, 2)
                && a.to == wallet_ledger::Destination::Redeemed)
    );
    assert_eq!(typed.allocations[LOTS - 1].lot, format!("lot-{LOTS}"));
    drop(r);

    // A later redemption does not walk the spent lots: the consumable index is empty.
    let e = l
        .execute(&Request::new(Command::Redeem(Redeem {
            wallet,
            amount: rust_decimal::Decimal::new(1, 2),
            ..Default::default()
        })))
        .unwrap_err();
    assert_eq!(e.code, wallet_ledger::ErrorCode::InsufficientFunds);

    // One refund restores all 100,000 allocations, last consumed first.
    l.execute(&Request::new(Command::Refund(Refund {
        wallet,
        redemption: "everything".into(),
        ..Default::default()
    })))
    .unwrap();
    let refunded = l.snapshot(wallet, None).unwrap().pockets[0].units();
    assert_eq!(refunded, before);

    let report = l.verify().unwrap();
    assert!(report.ok(), "{:?}", report.problems);
}
