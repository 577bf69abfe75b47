//! Golden tests (SPEC §8): every sample response and documented error of the four vendor
//! documents, rebuilt through commands and compared byte for byte (field order and number
//! spelling included) with the sample as printed compactly. Ids the ledger assigns itself
//! (pocket and event UUIDs, wallet and pocket numbers) are checked for their form and for being
//! the ledger's own, then replaced by the sample's before the comparison.

#[path = "views_support.rs"]
mod support;

use rust_decimal::Decimal;
use serde_json::json;
use support::*;

// ---- CleverTap ---------------------------------------------------------------------------------

/// Holder krishna123 with wallets in programs 1000, 1003 and 1020, opened in the order 1020,
/// 1000, 1003 so that the record order (program id) differs from the opening order.
fn clevertap_ledger() -> wallet_ledger::Ledger {
    let l = ledger("2026-06-01T00:00:00Z");
    run(&l, &clevertap_commands());
    l
}

#[test]
fn clevertap_sample_response() {
    let l = clevertap_ledger();
    // The sample's wallet 1020 is internally inconsistent: activePoints must equal
    // totalCreditedPoints − totalRedeemedPoints − expiredPoints, and 388.579 − 129 − 259.053 is
    // 0.526, not 0. We keep its shape and every other figure and make it consistent by letting
    // 259.579 expire instead of 259.053 (388.579 − 129 − 259.579 = 0).
    let d = |s: &str| s.parse::<Decimal>().unwrap();
    assert_ne!(d("388.579") - d("129") - d("259.053"), Decimal::ZERO);
    assert_eq!(d("388.579") - d("129") - d("259.579"), Decimal::ZERO);
    let expected = minify(CLEVERTAP_SAMPLE)
        .replace(r#""expiredPoints":259.053"#, r#""expiredPoints":259.579"#);

    // Mar 2: lot A expired on Mar 1 (derived at read time, nothing written since Jan 6); lot P
    // is still promised.
    let (status, body) = view(
        &l,
        "clevertap",
        r#"{"identity":"krishna123"}"#,
        "2026-03-02T00:00:00Z",
    );
    assert_eq!(status, 200);
    assert_eq!(body, expected);
    // The same holder by objectId (the doc's example form: 32 hex digits) and by email.
    for req in [
        r#"{"objectId":"37b08803c1af4e10849f530264bac7f8"}"#,
        r#"{"email":"  krishna@example.COM "}"#,
    ] {
        assert_eq!(
            view(&l, "clevertap", req, "2026-03-02T00:00:00Z"),
            (200, expected.clone())
        );
    }
}

#[test]
fn clevertap_documented_errors() {
    let l = clevertap_ledger();
    let invalid = r#"{"status":"fail","error":"Invalid identity","code":400}"#;
    // All three missing, or none resolving to a user.
    for req in [
        r#"{}"#,
        r#"{"objectId":null,"email":null,"identity":null}"#,
        r#"{"identity":"KMN@123"}"#,
        r#"{"identity":"KRISHNA123"}"#,
        r#"{"email":"nobody@example.com"}"#,
        r#"{"objectId":"00000000000000000000000000000000"}"#,
        r#"{"objectId":"not-a-guid","email":"","identity":""}"#,
    ] {
        assert_eq!(
            view(&l, "clevertap", req, "2026-03-02T00:00:00Z"),
            (400, invalid.to_string()),
            "{req}"
        );
    }
    // 401 and 500 are the HTTP layer's; their bodies are typed here as documented.
    use wallet_ledger::views::clevertap::Failure;
    assert_eq!(
        serde_json::to_string(&Failure::invalid_credentials()).unwrap(),
        r#"{"status":"fail","error":"Invalid credentials","code":401}"#
    );
    assert_eq!(
        serde_json::to_string(&Failure::system_error()).unwrap(),
        r#"{"status":"fail","error":"Request couldn't be processed due to a system error. Try again.","code":500}"#
    );
}

// ---- Juicyway-style bank wallet ------------------------------------------------------------------

fn juicyway_ledger() -> wallet_ledger::Ledger {
    let l = ledger("2026-06-01T00:00:00Z");
    run(&l, &juicyway_commands());
    l
}

/// Checks the ledger-assigned ids of a Juicyway body (account_id = the first pocket's UUID, each
/// event id a UUID) and replaces them by the sample's.
fn juicyway_placeholders(l: &wallet_ledger::Ledger, body: &str) -> String {
    let v = json(body);
    let snap = l.snapshot(JW_WALLET.parse().unwrap(), None).unwrap();
    let account = v["data"]["account_id"].as_str().unwrap();
    assert!(is_uuid(account), "{account}");
    assert_eq!(account, snap.pockets[0].uuid.to_string());
    let event = v["data"]["events"][0]["id"].as_str().unwrap();
    assert!(is_uuid(event), "{event}");
    assert_eq!(event, snap.lifecycle[0].id.to_string());
    let body = replace_field(
        body,
        "account_id",
        account,
        "f55ca88c-71aa-4dab-a10a-4d818c11e8e6",
    );
    replace_field(&body, "id", event, "6a2a5833-609d-4dff-a4e6-0eaf452d7826")
}

#[test]
fn juicyway_sample_response() {
    let l = juicyway_ledger();
    // The sample is inconsistent: its events[0].wallet_id (55a76a42-…) is not its id
    // (3d2e3f3e-…), though the event is the creation of that very wallet. The ledger names the
    // wallet the event belongs to, so both are the wallet's id here.
    let expected =
        minify(JUICYWAY_SAMPLE).replace("55a76a42-ed3a-4d0b-b74c-2887d64612f6", JW_WALLET);
    let (status, body) = view(
        &l,
        "juicyway",
        &json!({"id": JW_WALLET}).to_string(),
        "2025-08-01T00:00:00Z",
    );
    assert_eq!(status, 200);
    assert_eq!(juicyway_placeholders(&l, &body), expected);

    // The mask option: "Sensitive fields may be partially masked".
    let (status, masked) = view(
        &l,
        "juicyway",
        &json!({"id": JW_WALLET, "mask": true}).to_string(),
        "2025-08-01T00:00:00Z",
    );
    assert_eq!(status, 200);
    assert_eq!(
        juicyway_placeholders(&l, &masked),
        expected.replace(
            r#""account_number":"3515200757""#,
            r#""account_number":"******0757""#
        )
    );
}

#[test]
fn juicyway_documented_errors() {
    let l = juicyway_ledger();
    let not_found = r#"{"error":{"code":"not_found","message":"Wallet not found"}}"#;
    for id in [
        // Unknown.
        "55a76a42-ed3a-4d0b-b74c-2887d64612f6",
        // Malformed.
        "3d2e3f3e",
        "",
        "{3d2e3f3e-3b3c-4907-a4fd-e241203440d7}",
        "3d2e3f3e-3b3c-4907-a4fd-e241203440d7 ",
    ] {
        assert_eq!(
            view(
                &l,
                "juicyway",
                &json!({ "id": id }).to_string(),
                "2025-08-01T00:00:00Z"
            ),
            (404, not_found.to_string()),
            "{id:?}"
        );
    }
    // Before it was created, the wallet is not found either.
    assert_eq!(
        view(
            &l,
            "juicyway",
            &json!({ "id": JW_WALLET }).to_string(),
            "2025-07-24T08:08:07Z"
        ),
        (404, not_found.to_string())
    );
}

// ---- Cashfree PPI ------------------------------------------------------------------------------

fn cashfree_ledger() -> wallet_ledger::Ledger {
    let l = ledger("2026-06-01T00:00:00Z");
    run(&l, &cashfree_commands());
    l
}

/// Checks the ledger-assigned numbers of a Cashfree body (cf_wallet_id = the wallet number,
/// cf_sub_wallet_id = each pocket's number, all digit strings) and replaces them by the
/// sample's.
fn cashfree_placeholders(l: &wallet_ledger::Ledger, body: &str) -> String {
    let snap = l.snapshot(CF_WALLET.parse().unwrap(), None).unwrap();
    let v = json(body);
    let mut body = replace_field(
        body,
        "cf_wallet_id",
        &snap.number().to_string(),
        "1234567890123456783",
    );
    let sample_ids = ["35246543210987654321", "54252453468535350359"];
    for (i, sub) in v["sub_wallets"].as_array().unwrap().iter().enumerate() {
        let id = sub["cf_sub_wallet_id"].as_str().unwrap();
        assert!(
            !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()),
            "{id}"
        );
        let pocket = snap
            .pockets
            .iter()
            .find(|p| p.number().to_string() == id)
            .unwrap();
        body = replace_field(&body, "cf_sub_wallet_id", id, sample_ids[i]);
        assert_eq!(sub["name"], pocket.name.as_str());
    }
    body
}

#[test]
fn cashfree_sample_response() {
    let l = cashfree_ledger();
    // The sample's cf_sub_wallet_id values have 20 digits and exceed u64::MAX: the ledger numbers
    // pockets itself (u64), so they are compared by form and replaced.
    assert!("35246543210987654321".parse::<u64>().is_err());
    assert!("54252453468535350359".parse::<u64>().is_err());
    let (status, body) = view(
        &l,
        "cashfree",
        r#"{"user_id":"USER827364","wallet_id":"WALLET936721"}"#,
        "2026-02-01T00:00:00Z",
    );
    assert_eq!(status, 200);
    assert_eq!(cashfree_placeholders(&l, &body), minify(CASHFREE_SAMPLE));
}

#[test]
fn cashfree_documented_combinations() {
    let l = cashfree_ledger();
    let at = "2026-02-01T00:00:00Z";
    run(&l, &cashfree_more_commands());
    let snap = l.snapshot(CF_WALLET.parse().unwrap(), None).unwrap();
    let (gift, cashfree) = (snap.pockets[0].number(), snap.pockets[1].number());
    let card = r#"{"card_id":"CARDR827364","masked_pan":"4111XXXXXXXX1111","status":"ACTIVE"}"#;
    let sub = |n: u64, name: &str, kind: &str, bal: &str, avail: &str, hold: &str| {
        format!(
            r#"{{"cf_sub_wallet_id":"{n}","name":"{name}","type":"{kind}","status":"ACTIVE","balance":{bal},"available_balance":{avail},"funds_on_hold":{hold}}}"#
        )
    };
    let gift_sub = sub(gift, "Gift Wallet", "GIFT_PPI", "500", "379.75", "120.25");
    let cash_sub = sub(
        cashfree,
        "Cashfree Wallet",
        "CLOSED_LOOP_PPI",
        "0",
        "0",
        "0",
    );
    let head = format!(
        r#"{{"user_id":"USER827364","cf_program_id":"9876543210987654321","wallet_id":"WALLET936721","cf_wallet_id":"{}","wallet_name":"Gift Wallet","#,
        snap.number()
    );
    let both = format!(r#"{head}"sub_wallets":[{gift_sub},{cash_sub}],"card":{card}}}"#);
    let only_gift = format!(r#"{head}"sub_wallets":[{gift_sub}],"card":{card}}}"#);
    let only_cash = format!(r#"{head}"sub_wallets":[{cash_sub}],"card":{card}}}"#);
    // By wallet (the wallet has a card: card details too), by card, and each with a sub-wallet.
    for (req, expected) in [
        (
            json!({"user_id":"USER827364","wallet_id":"WALLET936721"}),
            &both,
        ),
        (
            json!({"user_id":"USER827364","card_id":"CARDR827364"}),
            &both,
        ),
        (
            json!({"user_id":"USER827364","wallet_id":"WALLET936721",
                "cf_sub_wallet_id":gift.to_string()}),
            &only_gift,
        ),
        (
            json!({"user_id":"USER827364","card_id":"CARDR827364",
                "cf_sub_wallet_id":cashfree.to_string()}),
            &only_cash,
        ),
    ] {
        assert_eq!(
            view(&l, "cashfree", &req.to_string(), at),
            (200, expected.clone()),
            "{req}"
        );
    }
    // Before the card was issued, the wallet shows no card and the card finds nothing.
    let (status, body) = view(
        &l,
        "cashfree",
        r#"{"user_id":"USER827364","wallet_id":"WALLET936721"}"#,
        "2026-01-11T12:00:00Z",
    );
    assert_eq!(status, 200);
    assert_eq!(
        body,
        format!(r#"{head}"sub_wallets":[{gift_sub},{cash_sub}]}}"#)
    );
    let (status, body) = view(
        &l,
        "cashfree",
        r#"{"user_id":"USER827364","card_id":"CARDR827364"}"#,
        "2026-01-11T12:00:00Z",
    );
    assert_eq!(
        (status, json(&body)["code"].as_str()),
        (404, Some("card_not_found"))
    );
}

#[test]
fn cashfree_documented_errors() {
    let l = cashfree_ledger();
    let at = "2026-02-01T00:00:00Z";
    let err = |status: u16, code: &str, message: &str| {
        (
            status,
            format!(r#"{{"message":"{message}","code":"{code}","type":"invalid_request_error"}}"#),
        )
    };
    let cases = [
        // user_id is always required.
        (
            json!({"wallet_id":"WALLET936721"}),
            err(400, "request_invalid", "user_id is required"),
        ),
        (
            json!({"user_id":"","wallet_id":"WALLET936721"}),
            err(400, "request_invalid", "user_id is required"),
        ),
        // Exactly one of wallet_id / card_id.
        (
            json!({"user_id":"USER827364"}),
            err(
                400,
                "request_invalid",
                "one of wallet_id or card_id is required",
            ),
        ),
        (
            json!({"user_id":"USER827364","cf_sub_wallet_id":"1"}),
            err(
                400,
                "request_invalid",
                "one of wallet_id or card_id is required",
            ),
        ),
        (
            json!({"user_id":"USER827364","wallet_id":"WALLET936721","card_id":"CARD000002"}),
            err(
                400,
                "request_invalid",
                "provide either wallet_id or card_id, not both",
            ),
        ),
        // Unknown user, wallet, card.
        (
            json!({"user_id":"USER999999","wallet_id":"WALLET936721"}),
            err(
                404,
                "user_not_found",
                r#"user_id \"USER999999\" does not exist"#,
            ),
        ),
        (
            json!({"user_id":"USER827364","wallet_id":"WALLET000404"}),
            err(
                404,
                "wallet_not_found",
                r#"wallet_id \"WALLET000404\" does not exist for user_id \"USER827364\""#,
            ),
        ),
        (
            json!({"user_id":"USER827364","card_id":"CARD000404"}),
            err(
                404,
                "card_not_found",
                r#"card_id \"CARD000404\" does not exist for user_id \"USER827364\""#,
            ),
        ),
        // Another user's wallet and card answer exactly like unknown ones.
        (
            json!({"user_id":"USER827364","wallet_id":"WALLET000002"}),
            err(
                404,
                "wallet_not_found",
                r#"wallet_id \"WALLET000002\" does not exist for user_id \"USER827364\""#,
            ),
        ),
        (
            json!({"user_id":"USER827364","card_id":"CARD000002"}),
            err(
                404,
                "card_not_found",
                r#"card_id \"CARD000002\" does not exist for user_id \"USER827364\""#,
            ),
        ),
        // A sub-wallet that is not one of this wallet's.
        (
            json!({"user_id":"USER827364","wallet_id":"WALLET936721","cf_sub_wallet_id":"35246543210987654321"}),
            err(
                404,
                "sub_wallet_not_found",
                r#"cf_sub_wallet_id \"35246543210987654321\" does not exist in this wallet"#,
            ),
        ),
    ];
    for (req, expected) in cases {
        assert_eq!(
            view(&l, "cashfree", &req.to_string(), at),
            expected,
            "{req}"
        );
    }
    // The other user's own sub-wallet ids are not this wallet's either.
    let other = l.snapshot(CF_OTHER_WALLET.parse().unwrap(), None).unwrap();
    let req = json!({"user_id":"USER827364","wallet_id":"WALLET936721",
        "cf_sub_wallet_id": other.pockets[0].number().to_string()});
    assert_eq!(view(&l, "cashfree", &req.to_string(), at).0, 404);
}

// ---- Cryptofuse --------------------------------------------------------------------------------

fn cryptofuse_ledger() -> wallet_ledger::Ledger {
    let l = ledger("2026-06-01T00:00:00Z");
    run(&l, &cryptofuse_commands());
    l
}

#[test]
fn cryptofuse_sample_response() {
    let l = cryptofuse_ledger();
    let (status, body) = view(
        &l,
        "cryptofuse",
        &json!({"id": CF_PLAYER}).to_string(),
        "2025-05-01T00:00:00Z",
    );
    assert_eq!(status, 200);
    // wallet_id is "w_" + the ledger's wallet number as 12 lowercase hex digits.
    let wallet_id = json(&body)["wallet_id"].as_str().unwrap().to_string();
    assert_eq!(
        wallet_id,
        format!("w_{:012x}", wallet_number(&l, CF_PLAYER))
    );
    assert!(
        wallet_id.len() == 14
            && wallet_id[2..]
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
        "{wallet_id}"
    );
    let body = replace_field(&body, "wallet_id", &wallet_id, "w_abc123def456");
    assert_eq!(body, minify(CRYPTOFUSE_SAMPLE));
}

#[test]
fn cryptofuse_documented_errors() {
    let l = cryptofuse_ledger();
    let at = "2025-05-01T00:00:00Z";
    let invalid =
        r#"{"error":{"code":"invalid_request","message":"Invalid wallet ID format","details":{}}}"#;
    let not_found = r#"{"error":{"code":"not_found","message":"Wallet not found","details":{}}}"#;
    for id in [
        "",
        "player-12345",
        "550e8400",
        "550e8400-e29b-41d4-a716-44665544000g",
        "w_000000000001",
    ] {
        assert_eq!(
            view(&l, "cryptofuse", &json!({ "id": id }).to_string(), at),
            (400, invalid.to_string()),
            "{id:?}"
        );
    }
    for id in [
        "550e8400-e29b-41d4-a716-446655440001",
        "00000000000000000000000000000000",
    ] {
        assert_eq!(
            view(&l, "cryptofuse", &json!({ "id": id }).to_string(), at),
            (404, not_found.to_string()),
            "{id:?}"
        );
    }
    // The documented 500 body, for an HTTP layer whose store fails.
    assert_eq!(
        serde_json::to_string(&wallet_ledger::views::cryptofuse::ErrorBody::server_error())
            .unwrap(),
        r#"{"error":{"code":"server_error","message":"Internal server error","details":{}}}"#
    );
}
