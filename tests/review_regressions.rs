//! Regressions from the spec-compliance review: each test is one confirmed finding, with the
//! input that showed it.

use wallet_ledger::{ErrorCode, FixedClock, Ledger};

const W: &str = "550e8400-e29b-41d4-a716-446655440000";
const H: &str = "37b08803-c1af-4e10-849f-530264bac7f8";

fn ledger(scale: u32) -> Ledger {
    let l = Ledger::in_memory(Box::new(FixedClock(
        "2026-01-02T00:00:00Z".parse().unwrap(),
    )))
    .unwrap();
    for line in [
        format!(
            r#"{{"op":"define_program","at":"2026-01-01T00:00:00Z","program":1,"name":"P","unit":"PTS","pockets":[{{"pocket":"main","name":"Main","kind":"POINTS","asset":"PTS","scale":{scale}}}]}}"#
        ),
        format!(r#"{{"op":"register_holder","at":"2026-01-01T00:00:00Z","holder":"{H}"}}"#),
        format!(
            r#"{{"op":"open_wallet","at":"2026-01-01T00:00:00Z","wallet":"{W}","holder":"{H}","program":1}}"#
        ),
    ] {
        l.execute_line(&line).unwrap();
    }
    l
}

fn code(r: Result<wallet_ledger::Receipt, wallet_ledger::CommandError>) -> ErrorCode {
    r.unwrap_err().code
}

/// SPEC §6: an `at` left to the clock is not compared — in either direction, and inside batches.
#[test]
fn an_omitted_at_is_not_compared_for_idempotency() {
    let l = ledger(2);
    let first = l
        .execute_line(&format!(
            r#"{{"op":"credit","at":"2026-01-02T00:00:00Z","wallet":"{W}","amount":"100","lot":"A","key":"k1"}}"#
        ))
        .unwrap();
    let again = l
        .execute_line(&format!(
            r#"{{"op":"credit","wallet":"{W}","amount":"100","lot":"A","key":"k1"}}"#
        ))
        .unwrap();
    assert!(again.replayed);
    assert_eq!(again.first_position, first.first_position);

    // Left to the clock first, explicit on the retry.
    l.execute_line(&format!(
        r#"{{"op":"credit","wallet":"{W}","amount":"5","lot":"B","key":"k2"}}"#
    ))
    .unwrap();
    let r = l
        .execute_line(&format!(
            r#"{{"op":"credit","at":"2026-01-02T00:00:00Z","wallet":"{W}","amount":"5","lot":"B","key":"k2"}}"#
        ))
        .unwrap();
    assert!(r.replayed);

    // Both given and different: a different command.
    assert_eq!(
        code(l.execute_line(&format!(
            r#"{{"op":"credit","at":"2026-01-03T00:00:00Z","wallet":"{W}","amount":"100","lot":"A","key":"k1"}}"#
        ))),
        ErrorCode::IdempotencyConflict
    );

    // Inside a batch: the inner command's `at` omitted first, explicit on the retry.
    let batch = |inner_at: &str| {
        format!(
            r#"{{"op":"batch","at":"2026-01-05T00:00:00Z","key":"k3","commands":[{{"op":"redeem",{inner_at}"wallet":"{W}","amount":"1"}}]}}"#
        )
    };
    let b1 = l.execute_line(&batch("")).unwrap();
    let b2 = l
        .execute_line(&batch(r#""at":"2026-01-05T00:00:00Z","#))
        .unwrap();
    assert!(b2.replayed);
    assert_eq!(b1.first_position, b2.first_position);
    assert!(l.verify().unwrap().ok());
}

/// SPEC §3: a failing batch reports the failing command's `index`, for amount and time errors too.
#[test]
fn batch_amount_and_time_errors_carry_the_index() {
    let l = ledger(2);
    for (inner, want) in [
        (r#""amount":"0""#, ErrorCode::InvalidAmount),
        (r#""amount":"1","at":"bad""#, ErrorCode::InvalidTime),
    ] {
        let e = l
            .execute_line(&format!(
                r#"{{"op":"batch","commands":[{{"op":"credit","wallet":"{W}","amount":"1"}},{{"op":"credit","wallet":"{W}",{inner}}}]}}"#
            ))
            .unwrap_err();
        assert_eq!((e.code, e.index), (want, Some(1)), "{inner}");
    }
}

/// SPEC §4.3: lots without expiry come last, even after a lot expiring at the latest instant —
/// which is therefore refused as an expiry.
#[test]
fn the_latest_instant_cannot_be_an_expiry() {
    let l = ledger(2);
    assert_eq!(
        code(l.execute_line(&format!(
            r#"{{"op":"credit","wallet":"{W}","amount":"10","expires_at":"2262-04-11T23:47:16.854775807Z"}}"#
        ))),
        ErrorCode::InvalidTime
    );
    l.execute_line(&format!(
        r#"{{"op":"credit","wallet":"{W}","amount":"10","lot":"late","expires_at":"2262-04-11T23:47:16.854775806Z"}}"#
    ))
    .unwrap();
    l.execute_line(&format!(
        r#"{{"op":"credit","wallet":"{W}","amount":"10","lot":"never"}}"#
    ))
    .unwrap();
    l.execute_line(&format!(
        r#"{{"op":"redeem","wallet":"{W}","amount":"10"}}"#
    ))
    .unwrap();
    // The expiring lot was consumed; the one that never expires is intact.
    l.execute_line(&format!(
        r#"{{"op":"reverse_credit","wallet":"{W}","lot":"never","amount":"10"}}"#
    ))
    .unwrap();
}

/// SPEC §7: a valid decimal no `Decimal` holds is reported at its own step, after existence.
#[test]
fn unrepresentable_amounts_are_reported_at_their_step() {
    let l = ledger(2);
    let too_precise = format!("1.{}1", "0".repeat(28));
    let too_large = "79228162514264337593543950336"; // 2^96
    let other = "00000000-0000-4000-8000-000000000000";
    // Existence (step 3) first.
    assert_eq!(
        code(l.execute_line(&format!(
            r#"{{"op":"credit","wallet":"{other}","amount":"{too_precise}"}}"#
        ))),
        ErrorCode::UnknownWallet
    );
    // Then scale (step 6): more than 28 places exceeds every pocket's scale.
    let e = l
        .execute_line(&format!(
            r#"{{"op":"credit","wallet":"{W}","amount":"{too_precise}"}}"#
        ))
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::ScaleExceeded);
    assert!(e.message.contains(&too_precise), "{}", e.message);
    // Too large: the quantity error of its command (step 8).
    assert_eq!(
        code(l.execute_line(&format!(
            r#"{{"op":"redeem","wallet":"{W}","amount":"{too_large}"}}"#
        ))),
        ErrorCode::InsufficientFunds
    );
    let e = l
        .execute_line(&format!(
            r#"{{"op":"credit","wallet":"{W}","amount":"{too_large}"}}"#
        ))
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::AmountOverflow);
    assert!(e.message.contains(too_large), "{}", e.message);
    // A stored key is never matched by a placeholder: 2^96 is not "1".
    l.execute_line(&format!(
        r#"{{"op":"credit","wallet":"{W}","amount":"1","key":"one"}}"#
    ))
    .unwrap();
    assert_eq!(
        code(l.execute_line(&format!(
            r#"{{"op":"credit","wallet":"{W}","amount":"{too_large}","key":"one"}}"#
        ))),
        ErrorCode::IdempotencyConflict
    );
    // The typed parser cannot carry such an amount and says so.
    let (_, e) = wallet_ledger::json::parse_line(&format!(
        r#"{{"op":"credit","wallet":"{W}","amount":"{too_large}"}}"#
    ))
    .unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidAmount);
}

/// SPEC §3: closed is terminal — no time-driven event reaches a closed wallet.
#[test]
fn a_closed_wallet_receives_no_time_driven_events() {
    let l = ledger(2);
    for line in [
        format!(
            r#"{{"op":"credit","at":"2026-01-02T00:00:00Z","wallet":"{W}","amount":"10","lot":"P","activates_at":"2026-01-10T00:00:00Z"}}"#
        ),
        format!(
            r#"{{"op":"reverse_credit","at":"2026-01-02T00:00:00Z","wallet":"{W}","lot":"P"}}"#
        ),
        format!(r#"{{"op":"close","at":"2026-01-03T00:00:00Z","wallet":"{W}"}}"#),
        r#"{"op":"sweep","at":"2026-01-11T00:00:00Z"}"#.to_string(),
    ] {
        l.execute_line(&line).unwrap();
    }
    let h = l.history(W.parse().unwrap()).unwrap();
    assert_eq!(h.last().unwrap().event.name(), "lifecycle");
    assert!(l.verify().unwrap().ok());
}

/// SPEC §7 step 1: a number sent as a string where an integer is required is mistyped — except a
/// program id, which may exceed 2^53 (Cashfree's are 19 digits) and may be a digit string.
#[test]
fn integers_must_be_json_numbers_except_program_ids() {
    let l = ledger(2);
    let line = r#"{"op":"define_program","program":7,"name":"n","unit":"u","pockets":[{"pocket":"p","name":"n","kind":"k","asset":"a","scale":"2"}]}"#;
    assert_eq!(code(l.execute_line(line)), ErrorCode::InvalidCommand);
    for bad in [r#""7a""#, r#""""#, r#""-7""#, "7.0", "true"] {
        let line = format!(
            r#"{{"op":"define_program","program":{bad},"name":"n","unit":"u","pockets":[{{"pocket":"p","name":"n","kind":"k","asset":"a","scale":2}}]}}"#
        );
        assert_eq!(
            code(l.execute_line(&line)),
            ErrorCode::InvalidCommand,
            "{bad}"
        );
    }
    let r = l
        .execute_line(r#"{"op":"define_program","program":"9876543210987654321","name":"n","unit":"u","pockets":[{"pocket":"p","name":"n","kind":"k","asset":"a","scale":2}]}"#)
        .unwrap();
    assert_eq!(r.program, Some(9_876_543_210_987_654_321));
}

/// SPEC §8: Cryptofuse strings keep two decimal places even for the largest amount.
#[test]
fn cryptofuse_pads_the_largest_amount() {
    let l = ledger(0);
    l.execute_line(&format!(
        r#"{{"op":"credit","wallet":"{W}","amount":"79228162514264337593543950335"}}"#
    ))
    .unwrap();
    let r = l.reader().unwrap();
    let (status, body) =
        wallet_ledger::views::answer(&r, "cryptofuse", &format!(r#"{{"id":"{W}"}}"#), None)
            .unwrap();
    assert_eq!(status, 200);
    assert!(
        body.contains(r#""amount":"79228162514264337593543950335.00""#),
        "{body}"
    );
}

/// SPEC §9: an `--as-of` the ledger cannot represent is a usage error (exit 2).
#[test]
fn show_as_of_out_of_range_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("w.redb");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_walletctl"))
        .args(["--db", db.to_str().unwrap(), "show", W])
        .args(["--as-of", "9999-01-01T00:00:00Z"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

/// The lifecycle-event limit never strands a wallet frozen with money in it: a freeze is refused
/// while there is no room left to unfreeze and close afterwards.
#[test]
fn the_lifecycle_limit_never_strands_a_frozen_wallet() {
    let l = ledger(2);
    l.execute_line(&format!(r#"{{"op":"credit","wallet":"{W}","amount":"5"}}"#))
        .unwrap();
    let max = wallet_ledger::limits::MAX_LIFECYCLE_EVENTS;
    // `create` is event 1; alternate freeze/unfreeze until a freeze is refused.
    let mut n = 1;
    let mut frozen = false;
    loop {
        let op = if frozen { "unfreeze" } else { "freeze" };
        match l.execute_line(&format!(r#"{{"op":"{op}","wallet":"{W}"}}"#)) {
            Ok(_) => {
                n += 1;
                frozen = !frozen;
            }
            Err(e) => {
                assert_eq!((e.code, op), (ErrorCode::InvalidTransition, "freeze"));
                break;
            }
        }
        assert!(n <= max, "the limit was not enforced");
    }
    assert!(!frozen);
    // Room is left to spend the money and close.
    l.execute_line(&format!(r#"{{"op":"redeem","wallet":"{W}","amount":"5"}}"#))
        .unwrap();
    l.execute_line(&format!(r#"{{"op":"close","wallet":"{W}"}}"#))
        .unwrap();
    assert!(l.verify().unwrap().ok());
}

/// Receipt of a command that succeeds.
fn ok(l: &Ledger, line: String) -> wallet_ledger::Receipt {
    l.execute_line(&line)
        .unwrap_or_else(|e| panic!("{line}: {e:?}"))
}

/// Credited units of the wallet's first pocket.
fn credited(l: &Ledger) -> u128 {
    l.snapshot(W.parse().unwrap(), None).unwrap().pockets[0]
        .units()
        .credited
}

/// Assigned ids `lot-N`, `hold-N`, `redemption-N` have no name row (they are found from record N
/// itself), yet clash with explicit ids exactly as before: both ways, with the suffix loop, and
/// only for the one canonical spelling.
#[test]
fn assigned_ids_and_explicit_look_alikes_stay_unique() {
    let l = ledger(0);
    let credit = |lot: Option<&str>, amount: u32| {
        let lot = lot.map_or(String::new(), |id| format!(r#","lot":"{id}""#));
        l.execute_line(&format!(
            r#"{{"op":"credit","wallet":"{W}","amount":"{amount}"{lot}}}"#
        ))
        .map(|r| r.lot.unwrap())
    };
    assert_eq!(credit(None, 1).unwrap(), "lot-1");
    // An explicit id equal to an assigned one is taken.
    assert_eq!(
        credit(Some("lot-1"), 1).unwrap_err().code,
        ErrorCode::DuplicateLot
    );
    // Lot 2 takes lot 3's canonical name, so lot 3 gets a suffix.
    assert_eq!(credit(Some("lot-3"), 20).unwrap(), "lot-3");
    assert_eq!(credit(None, 300).unwrap(), "lot-3-2");
    // A client may give a lot the canonical name of its own number.
    assert_eq!(credit(Some("lot-4"), 4000).unwrap(), "lot-4");
    assert_eq!(
        credit(Some("lot-4"), 1).unwrap_err().code,
        ErrorCode::DuplicateLot
    );
    assert_eq!(credit(None, 50_000).unwrap(), "lot-5");
    // Other spellings of a number are different ids.
    for id in [
        "lot-01",
        "lot-+1",
        "lot-0",
        "lot-4294967297",
        "LOT-1",
        "lot--1",
        "lot-1.0",
    ] {
        assert_eq!(
            code(l.execute_line(&format!(
                r#"{{"op":"reverse_credit","wallet":"{W}","lot":"{id}"}}"#
            ))),
            ErrorCode::UnknownLot,
            "{id}"
        );
    }
    assert_eq!(credit(Some("lot-01"), 7).unwrap(), "lot-01");
    // Each id finds its own record: "lot-3" is lot 2 (20), "lot-3-2" lot 3 (300).
    for (id, amount) in [
        ("lot-3", 20),
        ("lot-3-2", 300),
        ("lot-4", 4000),
        ("lot-5", 50_000),
    ] {
        let before = credited(&l);
        ok(
            &l,
            format!(r#"{{"op":"reverse_credit","wallet":"{W}","lot":"{id}"}}"#),
        );
        assert_eq!(before - credited(&l), amount, "{id}");
    }

    // Holds and redemptions alike.
    ok(
        &l,
        format!(r#"{{"op":"credit","wallet":"{W}","amount":"100"}}"#),
    );
    let hold = |id: &str| {
        l.execute_line(&format!(
            r#"{{"op":"hold","wallet":"{W}","amount":"1"{id}}}"#
        ))
    };
    assert_eq!(hold("").unwrap().hold.unwrap(), "hold-1");
    assert_eq!(code(hold(r#","hold":"hold-1""#)), ErrorCode::DuplicateHold);
    assert_eq!(hold(r#","hold":"hold-3""#).unwrap().hold.unwrap(), "hold-3");
    assert_eq!(hold("").unwrap().hold.unwrap(), "hold-3-2");
    let redeem = |id: &str| {
        l.execute_line(&format!(
            r#"{{"op":"redeem","wallet":"{W}","amount":"1"{id}}}"#
        ))
    };
    assert_eq!(redeem("").unwrap().redemption.unwrap(), "redemption-1");
    assert_eq!(
        code(redeem(r#","redemption":"redemption-1""#)),
        ErrorCode::DuplicateRedemption
    );
    // A capture names its redemption after the hold unless told otherwise.
    let c = ok(
        &l,
        format!(r#"{{"op":"capture","wallet":"{W}","hold":"hold-1"}}"#),
    );
    assert_eq!(c.redemption.unwrap(), "hold-1");
    let c = ok(
        &l,
        format!(r#"{{"op":"capture","wallet":"{W}","hold":"hold-3","redemption":"redemption-3"}}"#),
    );
    assert_eq!(c.redemption.unwrap(), "redemption-3");
    assert_eq!(
        code(l.execute_line(&format!(
            r#"{{"op":"capture","wallet":"{W}","hold":"hold-3-2","redemption":"redemption-1"}}"#
        ))),
        ErrorCode::DuplicateRedemption
    );
    assert_eq!(redeem("").unwrap().redemption.unwrap(), "redemption-4");
    for id in ["redemption-1", "hold-1", "redemption-3", "redemption-4"] {
        ok(
            &l,
            format!(r#"{{"op":"refund","wallet":"{W}","redemption":"{id}"}}"#),
        );
    }
    assert_eq!(
        code(l.execute_line(&format!(
            r#"{{"op":"refund","wallet":"{W}","redemption":"redemption-2"}}"#
        ))),
        ErrorCode::UnknownRedemption
    );
    ok(
        &l,
        format!(r#"{{"op":"release","wallet":"{W}","hold":"hold-3-2"}}"#),
    );
    assert_eq!(
        code(l.execute_line(&format!(
            r#"{{"op":"release","wallet":"{W}","hold":"hold-2"}}"#
        ))),
        ErrorCode::UnknownHold
    );
    assert!(l.verify().unwrap().ok());
}

/// Assigned ids are found after the file is reopened (from the records; they have no rows), and
/// still clash with explicit ids.
#[test]
fn assigned_ids_are_found_after_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("l.ledger");
    let open = || {
        Ledger::open_with_clock(
            &path,
            Box::new(FixedClock("2026-01-02T00:00:00Z".parse().unwrap())),
        )
        .unwrap()
    };
    {
        let l = open();
        for line in [
            r#"{"op":"define_program","at":"2026-01-01T00:00:00Z","program":1,"name":"P","unit":"PTS","pockets":[{"pocket":"main","name":"Main","kind":"POINTS","asset":"PTS","scale":0}]}"#.to_string(),
            format!(r#"{{"op":"register_holder","at":"2026-01-01T00:00:00Z","holder":"{H}"}}"#),
            format!(
                r#"{{"op":"open_wallet","at":"2026-01-01T00:00:00Z","wallet":"{W}","holder":"{H}","program":1}}"#
            ),
            format!(r#"{{"op":"credit","wallet":"{W}","amount":"10"}}"#),
            format!(r#"{{"op":"credit","wallet":"{W}","amount":"20"}}"#),
            format!(r#"{{"op":"hold","wallet":"{W}","amount":"3"}}"#),
            format!(r#"{{"op":"redeem","wallet":"{W}","amount":"4"}}"#),
        ] {
            ok(&l, line);
        }
    }
    let l = open();
    assert!(l.verify().unwrap().ok());
    for (line, want) in [
        (
            format!(r#"{{"op":"credit","wallet":"{W}","amount":"1","lot":"lot-2"}}"#),
            ErrorCode::DuplicateLot,
        ),
        (
            format!(r#"{{"op":"hold","wallet":"{W}","amount":"1","hold":"hold-1"}}"#),
            ErrorCode::DuplicateHold,
        ),
        (
            format!(r#"{{"op":"redeem","wallet":"{W}","amount":"1","redemption":"redemption-1"}}"#),
            ErrorCode::DuplicateRedemption,
        ),
    ] {
        assert_eq!(code(l.execute_line(&line)), want, "{line}");
    }
    let before = credited(&l);
    ok(
        &l,
        format!(r#"{{"op":"reverse_credit","wallet":"{W}","lot":"lot-2","amount":"5"}}"#),
    );
    assert_eq!(before - credited(&l), 5);
    ok(
        &l,
        format!(r#"{{"op":"capture","wallet":"{W}","hold":"hold-1"}}"#),
    );
    ok(
        &l,
        format!(r#"{{"op":"refund","wallet":"{W}","redemption":"redemption-1"}}"#),
    );
    let r = ok(
        &l,
        format!(r#"{{"op":"credit","wallet":"{W}","amount":"1"}}"#),
    );
    assert_eq!(r.lot.unwrap(), "lot-3");
    drop(l);
    assert!(open().verify().unwrap().ok());
}

/// A failed batch takes its assigned ids back with its records: they are free again afterwards,
/// and inside a batch an id assigned by an earlier command is found by a later one.
#[test]
fn a_failed_batch_frees_the_ids_it_assigned() {
    let l = ledger(0);
    let batch = |cmds: &[String]| {
        l.execute_line(&format!(
            r#"{{"op":"batch","commands":[{}]}}"#,
            cmds.join(",")
        ))
    };
    let credit = format!(r#"{{"op":"credit","wallet":"{W}","amount":"10"}}"#);
    let credit_as =
        |id: &str| format!(r#"{{"op":"credit","wallet":"{W}","amount":"10","lot":"{id}"}}"#);
    let reverse = |id: &str| format!(r#"{{"op":"reverse_credit","wallet":"{W}","lot":"{id}"}}"#);
    // The second command clashes with the id the first was just assigned.
    let e = batch(&[credit.clone(), credit_as("lot-1")]).unwrap_err();
    assert_eq!((e.code, e.index), (ErrorCode::DuplicateLot, Some(1)));
    // A later command finds it; a failure after that still undoes both.
    let e = batch(&[
        credit.clone(),
        reverse("lot-1"),
        format!(r#"{{"op":"redeem","wallet":"{W}","amount":"1"}}"#),
    ])
    .unwrap_err();
    assert_eq!((e.code, e.index), (ErrorCode::InsufficientFunds, Some(2)));
    assert_eq!(
        code(l.execute_line(&reverse("lot-1"))),
        ErrorCode::UnknownLot
    );
    // Nothing of it remains: lot 1 is still to come, and "lot-1" still free.
    assert_eq!(ok(&l, credit_as("lot-1")).lot.unwrap(), "lot-1");
    let r = batch(&[credit.clone(), reverse("lot-2")]).unwrap();
    assert_eq!(r.first_position.map(|p| p + 1), r.last_position);
    assert_eq!(ok(&l, credit.clone()).lot.unwrap(), "lot-3");
    assert_eq!(credited(&l), 20);
    assert!(l.verify().unwrap().ok());
}

/// An assigned id is found only in its own pocket.
#[test]
fn assigned_ids_are_scoped_to_their_pocket() {
    let l = Ledger::in_memory(Box::new(FixedClock(
        "2026-01-02T00:00:00Z".parse().unwrap(),
    )))
    .unwrap();
    for line in [
        r#"{"op":"define_program","at":"2026-01-01T00:00:00Z","program":1,"name":"P","unit":"PTS","pockets":[{"pocket":"main","name":"Main","kind":"POINTS","asset":"PTS","scale":0},{"pocket":"pts","name":"Pts","kind":"POINTS","asset":"PTS","scale":0}]}"#.to_string(),
        format!(r#"{{"op":"register_holder","at":"2026-01-01T00:00:00Z","holder":"{H}"}}"#),
        format!(
            r#"{{"op":"open_wallet","at":"2026-01-01T00:00:00Z","wallet":"{W}","holder":"{H}","program":1}}"#
        ),
        format!(r#"{{"op":"credit","wallet":"{W}","pocket":"pts","amount":"10"}}"#),
        format!(r#"{{"op":"hold","wallet":"{W}","pocket":"pts","amount":"1"}}"#),
        format!(r#"{{"op":"redeem","wallet":"{W}","pocket":"pts","amount":"1"}}"#),
    ] {
        ok(&l, line);
    }
    for (op, field, id, want) in [
        ("reverse_credit", "lot", "lot-1", ErrorCode::UnknownLot),
        ("release", "hold", "hold-1", ErrorCode::UnknownHold),
        (
            "refund",
            "redemption",
            "redemption-1",
            ErrorCode::UnknownRedemption,
        ),
    ] {
        for pocket in [r#""pocket":"main","#, ""] {
            assert_eq!(
                code(l.execute_line(&format!(
                    r#"{{"op":"{op}",{pocket}"wallet":"{W}","{field}":"{id}"}}"#
                ))),
                want,
                "{op} {pocket}"
            );
        }
        ok(
            &l,
            format!(r#"{{"op":"{op}","pocket":"pts","wallet":"{W}","{field}":"{id}"}}"#),
        );
    }
    assert!(l.verify().unwrap().ok());
}
