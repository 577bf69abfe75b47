//! What a new user does with the crate, written only against its public, documented API: typed
//! commands (no JSON lines), typed results (no `serde_json::Value`), wallet ids (no internal
//! numbers), one error type. If this file needs `wallet_ledger::internals`, the API has a gap.

use wallet_ledger::views::{self, cashfree};
use wallet_ledger::{
    Allocation, Capture, Command, Credit, DateTime, Decimal, DefineProgram, Destination, Error,
    ErrorCode, FixedClock, HistoryEvent, Hold, IssueCard, Ledger, LifecycleAction, LifecycleChange,
    OpenOptions, OpenWallet, PocketSpec, Redeem, RegisterHolder, Request, Status, Utc, Uuid,
};

fn d(s: &str) -> Decimal {
    s.parse().unwrap()
}

fn t(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

/// A program with a points pocket (2 places) and a BTC pocket (8 places).
fn program() -> DefineProgram {
    let pocket = |key: &str, kind: &str, asset: &str, scale| PocketSpec {
        pocket: key.into(),
        name: key.to_uppercase(),
        kind: kind.into(),
        asset: asset.into(),
        scale,
    };
    DefineProgram {
        program: 7,
        name: "Loyalty".into(),
        unit: "Points".into(),
        pockets: vec![
            pocket("points", "POINTS", "PTS", 2),
            pocket("btc", "CRYPTO", "BTC", 8),
        ],
        ..Default::default()
    }
}

/// Sets up a holder and a wallet on January 1st; returns their ids.
fn open(ledger: &Ledger) -> Result<(Uuid, Uuid), Error> {
    let at = t("2026-01-01T00:00:00Z");
    ledger.execute(&Request::from(program()).at(at))?;
    let holder = ledger
        .execute(
            &Request::from(RegisterHolder {
                identity: Some("user-1".into()),
                email: Some("User1@Example.com".into()),
                ..Default::default()
            })
            .at(at),
        )?
        .holder
        .expect("a holder id");
    let wallet = ledger
        .execute(
            &Request::from(OpenWallet {
                holder,
                program: 7,
                name: Some("Main wallet".into()),
                external_id: Some("ext-1".into()),
                ..Default::default()
            })
            .at(at),
        )?
        .wallet
        .expect("a wallet id");
    Ok((holder, wallet))
}

#[test]
fn a_newcomer_runs_a_wallet_through_its_life_with_the_typed_api() -> Result<(), Error> {
    // "Now" is January 9th; earlier commands give their own `at`.
    let t0 = t("2026-01-09T00:00:00Z");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wallets.redb");
    let ledger = OpenOptions::new()
        .clock(Box::new(FixedClock(t0)))
        .open(&path)?;
    let (holder, wallet) = open(&ledger)?;

    // Look-ups by the application's own ids.
    let reader = ledger.reader()?;
    assert_eq!(reader.wallet_by_external("ext-1")?, Some(wallet));
    assert_eq!(reader.wallets_of(holder)?, vec![wallet]);
    assert_eq!(reader.holder_by_email("user1@example.COM")?, Some(holder));
    let profile = reader.holder(holder)?.expect("registered");
    assert_eq!(profile.identity.as_deref(), Some("user-1"));
    drop(reader);

    // 100 points expiring at the end of January, 40 promised from February 1st.
    let credit = Credit {
        wallet,
        amount: d("100"),
        lot: Some("jan".into()),
        expires_at: Some(t("2026-01-31T00:00:00Z")),
        ..Default::default()
    };
    let r = ledger.execute(&Request::from(credit).at(t("2026-01-02T00:00:00Z")))?;
    assert_eq!(r.lot.as_deref(), Some("jan"));
    assert_eq!(r.wallet, Some(wallet));
    assert_eq!(r.at, t("2026-01-02T00:00:00Z"));
    ledger.execute(
        &Request::from(Credit {
            wallet,
            amount: d("40"),
            activates_at: Some(t("2026-02-01T00:00:00Z")),
            ..Default::default()
        })
        .at(t("2026-01-03T00:00:00Z")),
    )?;
    ledger.execute(
        &Request::from(Credit {
            wallet,
            pocket: Some("btc".into()),
            amount: d("0.025"),
            ..Default::default()
        })
        .at(t("2026-01-03T00:00:00Z")),
    )?;

    // A keyed redemption, retried: one execution.
    let redeem = Request::from(Redeem {
        wallet,
        amount: d("30.5"),
        redemption: Some("order-1".into()),
        ..Default::default()
    })
    .at(t("2026-01-04T00:00:00Z"))
    .key("checkout-1");
    let first = ledger.execute(&redeem)?;
    let retry = ledger.execute(&redeem)?;
    assert!(!first.replayed && retry.replayed);
    assert_eq!(retry.first_position, first.first_position);

    // Hold 20, capture 15: the rest of the hold is released.
    let hold = ledger
        .execute(
            &Request::from(Hold {
                wallet,
                amount: d("20"),
                ..Default::default()
            })
            .at(t("2026-01-05T00:00:00Z")),
        )?
        .hold
        .expect("a hold id");
    let mid_hold = ledger.figures(wallet, Some(t("2026-01-05T12:00:00Z")))?;
    assert_eq!(mid_hold.pockets[0].figures().on_hold, d("20"));
    ledger.execute(
        &Request::from(Capture {
            wallet,
            hold,
            amount: Some(d("15")),
            ..Default::default()
        })
        .at(t("2026-01-06T00:00:00Z")),
    )?;

    // Figures now (January 10th): 100 − 30.5 − 15 = 54.5, 40 promised, nothing on hold.
    let now = ledger.snapshot(wallet, Some(t("2026-01-10T00:00:00Z")))?;
    let points = now.pocket("points").expect("points pocket").figures();
    assert_eq!(points.balance, d("54.5"));
    assert_eq!(points.promised, d("40"));
    assert_eq!(points.on_hold, d("0"));
    assert_eq!(points.redeemed, d("45.5"));
    assert_eq!(points.total, d("94.5"));
    assert_eq!(now.pocket("btc").unwrap().figures().available, d("0.025"));
    assert_eq!(now.status, Status::Active);
    assert_eq!(now.lifecycle[0].action, LifecycleAction::Create);
    assert_eq!(now.updated_at, t("2026-01-06T00:00:00Z"));

    // As of an earlier instant, and after the expiry and the activation.
    let earlier = ledger.figures(wallet, Some(t("2026-01-03T12:00:00Z")))?;
    assert_eq!(earlier.pockets[0].figures().balance, d("100"));
    let february = ledger.figures(wallet, Some(t("2026-02-02T00:00:00Z")))?;
    let feb = february.pockets[0].figures();
    assert_eq!(
        (feb.balance, feb.expired, feb.promised),
        (d("40"), d("54.5"), d("0"))
    );
    let before_opening = ledger.figures(wallet, Some(t("2025-12-31T00:00:00Z")));
    assert_eq!(
        Error::from(before_opening.unwrap_err()).code(),
        ErrorCode::UnknownWallet
    );

    // Cashfree's view of it, typed.
    ledger.execute(
        &Request::from(IssueCard {
            wallet,
            card: "CARD-1".into(),
            masked_pan: Some("4111XXXXXXXX1111".into()),
            status: Some("ACTIVE".into()),
        })
        .at(t("2026-01-07T00:00:00Z")),
    )?;
    let reader = ledger.reader()?;
    let source = views::Source::new(&reader, Some(t("2026-01-10T00:00:00Z")))?;
    let request = cashfree::Request {
        user_id: Some("user-1".into()),
        wallet_id: Some("ext-1".into()),
        ..Default::default()
    };
    let (status, body) = cashfree::answer(&source, &request)?;
    assert_eq!(status, 200);
    let cashfree::Response::Success(ok) = body else {
        panic!("expected a success, got {body:?}");
    };
    assert_eq!(ok.wallet_id.as_deref(), Some("ext-1"));
    assert_eq!(ok.sub_wallets.len(), 2);
    assert_eq!(ok.sub_wallets[0].balance, views::Number(d("54.5")));
    assert_eq!(ok.card.expect("the card").card_id, "CARD-1");
    drop(reader);

    // Refusals: a stable code, the offending value named, nothing written.
    let before = ledger.figures(wallet, None)?;
    let e = ledger
        .execute(
            &Redeem {
                wallet,
                amount: d("1000"),
                ..Default::default()
            }
            .into(),
        )
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::InsufficientFunds);
    assert!(e.message.contains("1000"), "{e}");
    let e = ledger
        .execute(
            &Credit {
                wallet,
                amount: d("1.001"),
                ..Default::default()
            }
            .into(),
        )
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::ScaleExceeded);
    let e = ledger
        .execute(&Request::from(Command::Freeze(LifecycleChange {
            wallet: Uuid::nil(),
            reason: None,
        })))
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::UnknownWallet);
    assert_eq!(ledger.figures(wallet, None)?, before);
    // A vendor usage error converts into the same `Error`.
    let reader = ledger.reader()?;
    let usage = views::answer(&reader, "paypal", "{}", None).unwrap_err();
    assert_eq!(Error::from(usage).code(), ErrorCode::InvalidCommand);
    drop(reader);

    // A second thread on a clone of the handle.
    let other = ledger.clone();
    std::thread::spawn(move || -> Result<(), Error> {
        other.execute(
            &Request::from(Redeem {
                wallet,
                amount: d("4.5"),
                ..Default::default()
            })
            .at(t("2026-01-08T00:00:00Z")),
        )?;
        Ok(())
    })
    .join()
    .unwrap()?;
    let after = ledger.figures(wallet, Some(t("2026-01-10T00:00:00Z")))?;
    assert_eq!(after.pockets[0].figures().balance, d("50"));

    // History, typed: the capture took its 15 from lot "jan"; paged, it is the same history.
    let history = ledger.history(wallet)?;
    let captured = history
        .iter()
        .find(|h| matches!(h.event, HistoryEvent::Captured { .. }))
        .expect("the capture");
    assert_eq!(captured.at, t("2026-01-06T00:00:00Z"));
    assert!(captured.allocations.contains(&Allocation {
        lot: "jan".into(),
        amount: d("15"),
        to: Destination::Redeemed,
    }));
    let mut paged = Vec::new();
    loop {
        let after = paged
            .last()
            .map_or(0, |h: &wallet_ledger::HistoryEntry| h.seq);
        let page = ledger.history_page(wallet, after, 3)?;
        if page.is_empty() {
            break;
        }
        paged.extend(page);
    }
    assert_eq!(paged, history);

    // The change feed: every event from position 0 on, in order, then caught up.
    let mut feed = Vec::new();
    loop {
        let after = feed
            .last()
            .map_or(0, |c: &wallet_ledger::Change| c.position);
        let page = ledger.changes(after, 4)?;
        if page.is_empty() {
            break;
        }
        feed.extend(page);
    }
    assert_eq!(
        feed.iter().map(|c| c.position).collect::<Vec<_>>(),
        (1..=ledger.last_position()).collect::<Vec<_>>()
    );
    assert_eq!(
        feed.iter().filter(|c| c.wallet == Some(wallet)).count(),
        history.len()
    );
    assert!(!ledger.wait_for(
        ledger.last_position() + 1,
        std::time::Duration::from_millis(5)
    ));

    assert!(ledger.verify()?.ok());
    drop(ledger);

    // Reopened, the ledger holds exactly what was acknowledged.
    let reopened = OpenOptions::new()
        .clock(Box::new(FixedClock(t0)))
        .open(&path)?;
    assert_eq!(
        reopened.figures(wallet, Some(t("2026-01-10T00:00:00Z")))?,
        after
    );
    assert!(reopened.verify()?.ok());
    Ok(())
}
