//! Request rules, status mappings, instants and bad input of the vendor views (SPEC §8).

#[path = "views_support.rs"]
mod support;

use proptest::prelude::*;
use serde_json::{Value, json};
use support::*;
use wallet_ledger::views::{self, UsageError};

const A: &str = "aaaaaaaa-0000-4000-8000-00000000000a";
const B: &str = "bbbbbbbb-0000-4000-8000-00000000000b";
const C: &str = "cccccccc-0000-4000-8000-00000000000c";
const NOW: &str = "2026-06-01T00:00:00Z";

fn wallet(n: u32) -> String {
    format!("0198c000-0000-7000-8000-{n:012}")
}

/// Three holders; program 2 has two pockets (the first shown by single-balance vendors),
/// program 1 one.
fn base() -> wallet_ledger::Ledger {
    let l = ledger(NOW);
    run(
        &l,
        &[
            json!({"op":"define_program","at":"2026-01-01T00:00:00Z","program":2,"name":"Two",
                "unit":"Stars","pockets":[
                {"pocket":"first","name":"First","kind":"K1","asset":"STR","scale":2},
                {"pocket":"second","name":"Second","kind":"K2","asset":"BTC","scale":8}]}),
            json!({"op":"define_program","at":"2026-01-01T00:00:00Z","program":1,"name":"One",
                "unit":"Coins","pockets":[
                {"pocket":"main","name":"Main","kind":"K","asset":"USD","scale":2}]}),
            json!({"op":"register_holder","at":"2026-01-01T00:00:00Z","holder":A,
                "identity":"alice","email":"alice@example.com"}),
            json!({"op":"register_holder","at":"2026-01-01T00:00:00Z","holder":B,
                "identity":"bob","email":"bob@example.com"}),
            json!({"op":"register_holder","at":"2026-01-01T00:00:00Z","holder":C,
                "identity":"carol"}),
        ],
    );
    l
}

fn open(l: &wallet_ledger::Ledger, w: &str, holder: &str, program: u64, at: &str) {
    run(
        l,
        &[json!({"op":"open_wallet","at":at,"wallet":w,"holder":holder,"program":program})],
    );
}

fn wallet_ids(body: &str) -> Vec<u64> {
    json(body)["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["walletId"].as_u64().unwrap())
        .collect()
}

// ---- CleverTap -----------------------------------------------------------------------------------

#[test]
fn clevertap_first_resolving_parameter_wins() {
    let l = base();
    open(&l, &wallet(1), A, 1, "2026-01-02T00:00:00Z");
    open(&l, &wallet(2), B, 2, "2026-01-02T00:00:00Z");
    open(&l, &wallet(3), C, 1, "2026-01-02T00:00:00Z");
    open(&l, &wallet(4), C, 2, "2026-01-02T00:00:00Z");
    let who = |req: Value| {
        let (status, body) = view(&l, "clevertap", &req.to_string(), NOW);
        assert_eq!(status, 200, "{req}: {body}");
        wallet_ids(&body)
    };
    // objectId over email over identity, when each resolves.
    assert_eq!(
        who(json!({"objectId":A,"email":"bob@example.com","identity":"carol"})),
        [1]
    );
    assert_eq!(
        who(json!({"email":"bob@example.com","identity":"carol"})),
        [2]
    );
    assert_eq!(who(json!({"identity":"carol"})), [1, 2]);
    // A present objectId that resolves nobody (unknown, malformed, empty) falls through.
    for object_id in [
        "dddddddd-0000-4000-8000-00000000000d",
        "not-a-uuid",
        "",
        "{aaaaaaaa-0000-4000-8000-00000000000a}",
    ] {
        assert_eq!(
            who(json!({"objectId":object_id,"email":"bob@example.com","identity":"carol"})),
            [2],
            "{object_id:?}"
        );
    }
    // Same for an email nobody has: identity decides.
    assert_eq!(
        who(json!({"objectId":"x","email":"eve@example.com","identity":"carol"})),
        [1, 2]
    );
    // objectId: 32 hex digits, any case, hyphens accepted.
    for object_id in [
        "aaaaaaaa00004000800000000000000a",
        "AAAAAAAA00004000800000000000000A",
        "AAAAAAAA-0000-4000-8000-00000000000A",
    ] {
        assert_eq!(who(json!({ "objectId": object_id })), [1], "{object_id}");
    }
    // Email: case-insensitive after trimming. Identity: exact.
    assert_eq!(who(json!({"email":"\tBOB@Example.Com  "})), [2]);
    assert_eq!(view(&l, "clevertap", r#"{"identity":"Carol"}"#, NOW).0, 400);
    assert_eq!(
        view(&l, "clevertap", r#"{"identity":" carol"}"#, NOW).0,
        400
    );
}

#[test]
fn clevertap_records_order_status_and_first_pocket() {
    let l = base();
    // Opened out of order: program 2 first, then 1, then 2 again, then 1 (to be closed).
    open(&l, &wallet(1), A, 2, "2026-01-02T00:00:00Z");
    open(&l, &wallet(2), A, 1, "2026-01-02T00:00:00Z");
    open(&l, &wallet(3), A, 2, "2026-01-02T00:00:00Z");
    run(
        &l,
        &[
            json!({"op":"open_wallet","at":"2026-01-02T00:00:00Z","wallet":wallet(4),
                "holder":A,"program":1,"name":"Four"}),
            json!({"op":"credit","at":"2026-01-03T00:00:00Z","wallet":wallet(1),
                "pocket":"first","amount":"10.10"}),
            // The second pocket is not what CleverTap shows.
            json!({"op":"credit","at":"2026-01-03T00:00:00Z","wallet":wallet(1),
                "pocket":"second","amount":"0.00000001"}),
            json!({"op":"freeze","at":"2026-01-04T00:00:00Z","wallet":wallet(3)}),
            json!({"op":"close","at":"2026-01-04T00:00:00Z","wallet":wallet(4)}),
        ],
    );
    run(
        &l,
        &[
            json!({"op":"open_wallet","at":"2026-02-01T00:00:00Z","wallet":wallet(5),
            "holder":A,"program":1,"name":"Five"}),
        ],
    );
    let rec = |name: &str, id: u64, active: &str, credited: &str, unit: &str| {
        format!(
            r#"{{"walletId":{id},"totalRedeemedPoints":0,"totalCreditedPoints":{credited},"activePoints":{active},"walletName":"{name}","totalPromisedPoints":0,"loyaltyPointsName":"{unit}","expiredPoints":0}}"#
        )
    };
    // Jan 10: the closed wallet 4 is left out, the frozen wallet 3 is shown, wallet 5 does not
    // exist yet. Order: program 1 (wallet 2), then program 2 (wallets 1, 3).
    let expected = format!(
        r#"{{"status":"success","records":[{},{},{}]}}"#,
        rec("One", 1, "0", "0", "Coins"),
        rec("Two", 2, "10.1", "10.1", "Stars"),
        rec("Two", 2, "0", "0", "Stars"),
    );
    let req = json!({"objectId":A}).to_string();
    assert_eq!(
        view(&l, "clevertap", &req, "2026-01-10T00:00:00Z"),
        (200, expected)
    );
    // Before the close, wallet 4 is there; from Feb 1, wallet 5 is.
    let names = |at: &str| -> Vec<(u64, String)> {
        let (_, body) = view(&l, "clevertap", &req, at);
        json(&body)["records"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                let name = r["walletName"].as_str().unwrap().to_string();
                (r["walletId"].as_u64().unwrap(), name)
            })
            .collect()
    };
    let named = |v: &[(u64, &str)]| -> Vec<(u64, String)> {
        v.iter().map(|(p, n)| (*p, n.to_string())).collect()
    };
    assert_eq!(
        names("2026-01-03T12:00:00Z"),
        named(&[(1, "One"), (1, "Four"), (2, "Two"), (2, "Two")])
    );
    assert_eq!(
        names("2026-02-01T00:00:00Z"),
        named(&[(1, "One"), (1, "Five"), (2, "Two"), (2, "Two")])
    );
    // A holder without wallets: success, no records.
    assert_eq!(
        view(&l, "clevertap", r#"{"identity":"bob"}"#, NOW),
        (200, r#"{"status":"success","records":[]}"#.to_string())
    );
}

#[test]
fn clevertap_figures_follow_the_instant() {
    let l = base();
    open(&l, &wallet(1), A, 1, "2026-01-02T00:00:00Z");
    run(
        &l,
        &[
            json!({"op":"credit","at":"2026-01-03T00:00:00Z","wallet":wallet(1),"amount":"100",
                "lot":"X","expires_at":"2026-02-01T00:00:00Z"}),
            json!({"op":"credit","at":"2026-01-03T00:00:00Z","wallet":wallet(1),"amount":"5.05",
                "lot":"P","activates_at":"2026-03-01T00:00:00Z"}),
            json!({"op":"redeem","at":"2026-01-04T00:00:00Z","wallet":wallet(1),"amount":"0.5"}),
        ],
    );
    let figures = |at: &str| {
        let (_, body) = view(&l, "clevertap", r#"{"identity":"alice"}"#, at);
        let v = json(&body);
        let r = &v["records"][0];
        [
            "activePoints",
            "totalPromisedPoints",
            "totalCreditedPoints",
            "totalRedeemedPoints",
            "expiredPoints",
        ]
        .map(|k| r[k].to_string())
    };
    // Before the redemption (a past instant: replayed), after it, after the expiry (derived at
    // read time), after the activation.
    assert_eq!(
        figures("2026-01-03T12:00:00Z"),
        ["100", "5.05", "100", "0", "0"]
    );
    assert_eq!(
        figures("2026-01-10T00:00:00Z"),
        ["99.5", "5.05", "100", "0.5", "0"]
    );
    assert_eq!(
        figures("2026-02-01T00:00:00Z"),
        ["0", "5.05", "100", "0.5", "99.5"]
    );
    assert_eq!(
        figures("2026-03-01T00:00:00Z"),
        ["5.05", "0", "105.05", "0.5", "99.5"]
    );
}

#[test]
fn clevertap_bad_requests_are_usage_errors() {
    let l = base();
    for req in [
        "",
        "not json",
        "[]",
        r#""alice""#,
        r#"{"identity":5}"#,
        r#"{"identity":["alice"]}"#,
        r#"{"Identity":"alice"}"#,
        r#"{"identity":"alice","identity":"bob"}"#,
        r#"{"identity":"alice"} trailing"#,
    ] {
        match view_usage_error(&l, "clevertap", req) {
            UsageError::BadRequest { vendor, message } => {
                assert_eq!(vendor, "clevertap");
                assert!(!message.is_empty());
            }
            e => panic!("{req}: {e:?}"),
        }
    }
}

// ---- Juicyway ------------------------------------------------------------------------------------

#[test]
fn juicyway_status_events_and_instants() {
    let l = base();
    let w = wallet(1);
    open(&l, &w, B, 2, "2026-01-02T10:00:00.999Z");
    run(
        &l,
        &[
            json!({"op":"credit","at":"2026-01-03T00:00:00Z","wallet":w,"pocket":"first",
                "amount":"12.50"}),
            json!({"op":"credit","at":"2026-01-03T00:00:00Z","wallet":w,"pocket":"second",
                "amount":"3"}),
            json!({"op":"freeze","at":"2026-01-04T00:00:00Z","wallet":w,"reason":"KYC review"}),
            json!({"op":"unfreeze","at":"2026-01-05T00:00:00Z","wallet":w}),
            json!({"op":"redeem","at":"2026-01-06T00:00:00Z","wallet":w,"amount":"12.50"}),
            json!({"op":"redeem","at":"2026-01-06T00:00:00Z","wallet":w,"pocket":"second",
                "amount":"3"}),
            json!({"op":"close","at":"2026-01-07T00:00:00Z","wallet":w,"reason":"customer request"}),
        ],
    );
    let req = json!({ "id": w }).to_string();
    let at = |t: &str| json(&view(&l, "juicyway", &req, t).1)["data"].clone();
    let actions = |d: &Value| -> Vec<(String, String, Value)> {
        d["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                assert_eq!(e["wallet_id"], w.as_str());
                assert!(is_uuid(e["id"].as_str().unwrap()));
                (
                    e["action"].as_str().unwrap().to_string(),
                    e["inserted_at"].as_str().unwrap().to_string(),
                    e["reason"].clone(),
                )
            })
            .collect()
    };
    let d = at("2026-01-03T12:00:00Z");
    assert_eq!(d["status"], "active");
    assert_eq!(
        d["balance"].to_string(),
        r#"{"amount":12.5,"currency":"STR"}"#
    );
    assert_eq!(d["customer_id"], B);
    assert_eq!(
        actions(&d),
        [("create".into(), "2026-01-02T10:00:00Z".into(), Value::Null)]
    );
    let d = at("2026-01-04T00:00:00Z");
    assert_eq!(d["status"], "frozen");
    assert_eq!(
        actions(&d)[1],
        (
            "freeze".into(),
            "2026-01-04T00:00:00Z".into(),
            json!("KYC review")
        )
    );
    let d = at("2026-01-05T00:00:00Z");
    assert_eq!(d["status"], "active");
    assert_eq!(actions(&d).len(), 3);
    let d = at(NOW);
    assert_eq!(d["status"], "deleted");
    assert_eq!(d["balance"].to_string(), r#"{"amount":0,"currency":"STR"}"#);
    let all: Vec<String> = actions(&d).into_iter().map(|a| a.0).collect();
    assert_eq!(all, ["create", "freeze", "unfreeze", "delete"]);
    assert_eq!(actions(&d)[3].2, json!("customer request"));
    // The id in any accepted form.
    for id in [w.to_uppercase(), w.replace('-', "")] {
        let (status, body) = view(&l, "juicyway", &json!({ "id": id }).to_string(), NOW);
        assert_eq!(status, 200);
        assert_eq!(json(&body)["data"]["id"], w.as_str());
    }
}

#[test]
fn juicyway_payment_methods_and_mask() {
    let l = base();
    let w = wallet(1);
    open(&l, &w, A, 1, "2026-01-02T00:00:00Z");
    let method = |name: &str, number: &str| {
        json!({"op":"link_payment_method","at":"2026-01-03T00:00:00Z","wallet":w,"method":{
            "account_name":name,"account_number":number,"account_type":"current",
            "address":"1 Main St","bank_code":"058","bank_name":"GTBank"}})
    };
    run(
        &l,
        &[method("First", "0123456789"), method("Second", "1234")],
    );
    let pm = |mask: bool| {
        let req = json!({"id": w, "mask": mask}).to_string();
        json(&view(&l, "juicyway", &req, NOW).1)["data"]["payment_methods"].to_string()
    };
    let expected = |n1: &str, n2: &str| {
        format!(
            r#"[{{"account_name":"First","account_number":"{n1}","account_type":"current","address":"1 Main St","bank_address":null,"bank_code":"058","bank_name":"GTBank"}},{{"account_name":"Second","account_number":"{n2}","account_type":"current","address":"1 Main St","bank_address":null,"bank_code":"058","bank_name":"GTBank"}}]"#
        )
    };
    assert_eq!(pm(false), expected("0123456789", "1234"));
    // Last 4 digits; a number of 4 digits or fewer is hidden entirely.
    assert_eq!(pm(true), expected("******6789", "******"));
    // mask: false and null are the default.
    assert_eq!(
        view(
            &l,
            "juicyway",
            &json!({"id": w, "mask": null}).to_string(),
            NOW
        ),
        view(&l, "juicyway", &json!({ "id": w }).to_string(), NOW)
    );
}

#[test]
fn juicyway_bad_requests_are_usage_errors() {
    let l = base();
    for req in [
        "",
        "{",
        "[]",
        r#"{}"#,
        r#"{"id":null}"#,
        r#"{"id":7}"#,
        r#"{"id":"x","mask":"yes"}"#,
        r#"{"id":"x","mask":1}"#,
        r#"{"id":"x","wallet":"y"}"#,
    ] {
        assert!(
            matches!(
                view_usage_error(&l, "juicyway", req),
                UsageError::BadRequest {
                    vendor: "juicyway",
                    ..
                }
            ),
            "{req}"
        );
    }
}

// ---- Cashfree ------------------------------------------------------------------------------------

#[test]
fn cashfree_status_cards_and_missing_external_id() {
    let l = base();
    let (w1, w2) = (wallet(1), wallet(2));
    run(
        &l,
        &[
            json!({"op":"open_wallet","at":"2026-01-02T00:00:00Z","wallet":w1,"holder":A,
                "program":2,"external_id":"EXT-1"}),
            // No external_id: only reachable by card.
            json!({"op":"open_wallet","at":"2026-01-02T00:00:00Z","wallet":w2,"holder":A,
                "program":1,"name":"Card only"}),
            json!({"op":"issue_card","at":"2026-01-02T00:00:00Z","wallet":w2,"card":"C-2"}),
            json!({"op":"issue_card","at":"2026-01-02T00:00:00Z","wallet":w1,"card":"C-1a",
                "masked_pan":"5555XXXXXXXX0001","status":"BLOCKED"}),
            json!({"op":"issue_card","at":"2026-01-03T00:00:00Z","wallet":w1,"card":"C-1b",
                "masked_pan":"5555XXXXXXXX0002","status":"ACTIVE"}),
            json!({"op":"freeze","at":"2026-01-04T00:00:00Z","wallet":w1}),
            json!({"op":"close","at":"2026-01-05T00:00:00Z","wallet":w2}),
        ],
    );
    let ask = |req: Value, at: &str| {
        let (status, body) = view(&l, "cashfree", &req.to_string(), at);
        assert_eq!(status, 200, "{req}: {body}");
        json(&body)
    };
    let statuses = |v: &Value| -> Vec<String> {
        v["sub_wallets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["status"].as_str().unwrap().to_string())
            .collect()
    };
    let by_wallet = json!({"user_id":"alice","wallet_id":"EXT-1"});
    // Found by wallet: the latest card issued by then.
    let v = ask(by_wallet.clone(), "2026-01-02T12:00:00Z");
    assert_eq!(statuses(&v), ["ACTIVE", "ACTIVE"]);
    assert_eq!(v["card"]["card_id"], "C-1a");
    let v = ask(by_wallet.clone(), NOW);
    assert_eq!(statuses(&v), ["BLOCKED", "BLOCKED"]);
    assert_eq!(
        v["card"].to_string(),
        r#"{"card_id":"C-1b","masked_pan":"5555XXXXXXXX0002","status":"ACTIVE"}"#
    );
    // Found by card: that card, even when a later one exists.
    let v = ask(json!({"user_id":"alice","card_id":"C-1a"}), NOW);
    assert_eq!(v["card"]["card_id"], "C-1a");
    // A wallet without external_id, a card without masked_pan or status, a closed wallet.
    let v = ask(json!({"user_id":"alice","card_id":"C-2"}), NOW);
    assert_eq!(v["wallet_id"], Value::Null);
    assert_eq!(v["wallet_name"], "Card only");
    assert_eq!(v["cf_program_id"], "1");
    assert_eq!(statuses(&v), ["CLOSED"]);
    assert_eq!(
        v["card"].to_string(),
        r#"{"card_id":"C-2","masked_pan":null,"status":null}"#
    );
    // Another user asking for alice's card.
    let (status, body) = view(&l, "cashfree", r#"{"user_id":"bob","card_id":"C-2"}"#, NOW);
    assert_eq!(
        (status, json(&body)["code"].clone()),
        (404, json!("card_not_found"))
    );
    // Before the wallet was opened it is not found.
    let (status, _) = view(
        &l,
        "cashfree",
        &by_wallet.to_string(),
        "2026-01-01T12:00:00Z",
    );
    assert_eq!(status, 404);
}

#[test]
fn cashfree_bad_bodies_are_its_400() {
    let l = base();
    for req in [
        "",
        "{",
        "[]",
        "null",
        r#"{"user_id":5,"wallet_id":"W"}"#,
        r#"{"user_id":"alice","wallet_id":["W"]}"#,
        r#"{"user_id":"alice","wallet_id":"W","cf_sub_wallet_id":1}"#,
        r#"{"user_id":"alice","walletId":"W"}"#,
        r#"{"user_id":"alice","user_id":"bob","wallet_id":"W"}"#,
    ] {
        let (status, body) = view(&l, "cashfree", req, NOW);
        assert_eq!(status, 400, "{req}");
        let v = json(&body);
        assert_eq!(v["code"], "request_invalid", "{req}");
        assert_eq!(v["type"], "invalid_request_error", "{req}");
        let message = v["message"].as_str().unwrap();
        assert!(
            message.starts_with("request body is invalid: "),
            "{message}"
        );
        // Fields in the documented order.
        assert!(body.starts_with(r#"{"message":"#), "{body}");
    }
}

// ---- Cryptofuse ----------------------------------------------------------------------------------

#[test]
fn cryptofuse_figures_ids_and_times() {
    let l = base();
    // Eleven wallets, so the last number (11) needs a hex letter.
    for n in 1..=11 {
        open(&l, &wallet(n), C, 2, "2026-01-02T03:04:05.678912Z");
    }
    let w = wallet(11);
    run(
        &l,
        &[
            json!({"op":"credit","at":"2026-01-03T00:00:00Z","wallet":w,"pocket":"first",
                "amount":"7","lot":"E","expires_at":"2026-02-01T00:00:00.5Z"}),
            json!({"op":"credit","at":"2026-01-03T00:00:00Z","wallet":w,"pocket":"first",
                "amount":"3","lot":"P","activates_at":"2026-03-01T00:00:00Z"}),
            json!({"op":"credit","at":"2026-01-04T00:00:00Z","wallet":w,"pocket":"second",
                "amount":"0.12345678"}),
            json!({"op":"hold","at":"2026-01-05T00:00:00Z","wallet":w,"pocket":"second",
                "amount":"0.1"}),
        ],
    );
    let (status, body) = view(
        &l,
        "cryptofuse",
        &json!({ "id": w }).to_string(),
        "2026-01-20T00:00:00Z",
    );
    assert_eq!(status, 200);
    assert_eq!(
        body,
        format!(
            r#"{{"id":"{w}","name":"Two","external_id":null,"wallet_id":"w_00000000000b","created":"2026-01-02T03:04:05.678Z","updated":"2026-01-05T00:00:00.000Z","balances":[{{"currency":"STR","amount":"10.00","pending_amount":"3.00","available_balance":"7.00"}},{{"currency":"BTC","amount":"0.12345678","pending_amount":"0.10","available_balance":"0.02345678"}}]}}"#
        )
    );
    // After lot E expires (a transition derived at read time), `updated` is the expiry.
    let (_, body) = view(
        &l,
        "cryptofuse",
        &json!({ "id": w }).to_string(),
        "2026-02-10T00:00:00Z",
    );
    let v = json(&body);
    assert_eq!(v["updated"], "2026-02-01T00:00:00.500Z");
    assert_eq!(
        v["balances"][0].to_string(),
        r#"{"currency":"STR","amount":"3.00","pending_amount":"3.00","available_balance":"0.00"}"#
    );
}

#[test]
fn cryptofuse_bad_requests_are_usage_errors() {
    let l = base();
    for req in [
        "",
        "{",
        r#"{}"#,
        r#"{"id":null}"#,
        r#"{"id":1}"#,
        r#"{"id":"x","mask":true}"#,
    ] {
        assert!(
            matches!(
                view_usage_error(&l, "cryptofuse", req),
                UsageError::BadRequest {
                    vendor: "cryptofuse",
                    ..
                }
            ),
            "{req}"
        );
    }
}

// ---- Dispatcher ----------------------------------------------------------------------------------

#[test]
fn dispatcher_refuses_unknown_vendors_and_instants() {
    let l = base();
    for vendor in ["", "CleverTap", "bank", "stripe"] {
        assert_eq!(
            view_usage_error(&l, vendor, r#"{"identity":"alice"}"#),
            UsageError::UnknownVendor(vendor.to_string())
        );
    }
    let r = l.reader().unwrap();
    let e = views::answer(
        &r,
        "clevertap",
        r#"{"identity":"alice"}"#,
        Some(t("3000-01-01T00:00:00Z")),
    )
    .unwrap_err();
    assert!(matches!(e, UsageError::InvalidTime(_)), "{e:?}");
    // Default instant: the reader's now.
    assert_eq!(
        views::answer(&r, "clevertap", r#"{"identity":"alice"}"#, None).unwrap(),
        view(&l, "clevertap", r#"{"identity":"alice"}"#, NOW)
    );
}

#[test]
fn typed_bodies_round_trip() {
    let l = base();
    open(&l, &wallet(1), A, 2, "2026-01-02T00:00:00Z");
    run(
        &l,
        &[
            json!({"op":"credit","at":"2026-01-03T00:00:00Z","wallet":wallet(1),
            "pocket":"first","amount":"0.01"}),
        ],
    );
    let id = json!({ "id": wallet(1) }).to_string();
    for (vendor, req) in [
        ("clevertap", r#"{"identity":"alice"}"#),
        ("clevertap", r#"{"identity":"nobody"}"#),
        ("juicyway", id.as_str()),
        ("juicyway", r#"{"id":"x"}"#),
        ("cryptofuse", id.as_str()),
        ("cryptofuse", r#"{"id":"x"}"#),
        ("cashfree", r#"{"user_id":"alice","card_id":"none"}"#),
    ] {
        let (status, body) = view(&l, vendor, req, NOW);
        let again = match vendor {
            "clevertap" => {
                let r = views::clevertap::Response::from_body(status, &body).unwrap();
                assert_eq!(
                    matches!(r, views::clevertap::Response::Success(_)),
                    status == 200
                );
                serde_json::to_string(&r)
            }
            "juicyway" => {
                serde_json::to_string(&views::juicyway::Response::from_body(status, &body).unwrap())
            }
            "cryptofuse" => serde_json::to_string(
                &views::cryptofuse::Response::from_body(status, &body).unwrap(),
            ),
            _ => {
                serde_json::to_string(&views::cashfree::Response::from_body(status, &body).unwrap())
            }
        };
        assert_eq!(again.unwrap(), body, "{vendor} {req}");
    }
    // Exact numbers survive the typed round trip.
    let (_, body) = view(&l, "clevertap", r#"{"identity":"alice"}"#, NOW);
    let views::clevertap::Response::Success(s) =
        views::clevertap::Response::from_body(200, &body).unwrap()
    else {
        panic!("{body}")
    };
    assert_eq!(s.records[0].active_points.to_string(), "0.01");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, .. ProptestConfig::default() })]

    /// Any request text, for any vendor: an answer (valid JSON body, a documented status) or a
    /// usage error, never a panic.
    #[test]
    fn any_request_is_answered_or_refused(
        text in prop_oneof![
            ".{0,64}",
            "\\{\"(id|identity|email|objectId|user_id|wallet_id|card_id|cf_sub_wallet_id|mask)\":(\"[^\"\\\\]{0,40}\"|[0-9.e-]{1,30}|true|null|\\[\\]|\\{\\})\\}",
        ],
        vendor in prop::sample::select(vec!["clevertap", "juicyway", "cashfree", "cryptofuse"]),
    ) {
        let l = base();
        open(&l, &wallet(1), A, 2, "2026-01-02T00:00:00Z");
        let r = l.reader().unwrap();
        match views::answer(&r, vendor, &text, None) {
            Ok((status, body)) => {
                prop_assert!([200u16, 400, 404].contains(&status), "{status}");
                prop_assert!(serde_json::from_str::<Value>(&body).is_ok(), "{body}");
            }
            Err(e) => prop_assert!(matches!(e, UsageError::BadRequest { .. }), "{e:?}"),
        }
    }
}

// ---- holders at an instant ------------------------------------------------------------------------

/// A holder registered on Feb 1 is nobody before then: CleverTap (by objectId, email or
/// identity) answers `Invalid identity` and Cashfree `user_not_found` for an earlier instant,
/// and both find the holder from the registration instant on — before and after the
/// registration is flushed into the projection tables.
#[test]
fn a_holder_is_not_found_before_its_registration() {
    const D: &str = "dddddddd-0000-4000-8000-00000000000d";
    let l = base();
    run(
        &l,
        &[
            json!({"op":"register_holder","at":"2026-02-01T00:00:00Z","holder":D,
                "identity":"dave","email":"dave@example.com"}),
            json!({"op":"open_wallet","at":"2026-02-02T00:00:00Z","wallet":wallet(9),"holder":D,
                "program":1,"external_id":"dave-1"}),
        ],
    );
    let before = "2026-01-31T23:59:59.999999999Z";
    let at = "2026-02-01T00:00:00Z";
    for flushed in [false, true] {
        if flushed {
            l.flush().unwrap();
        }
        for req in [
            json!({"objectId": D}),
            json!({"email": "DAVE@example.com "}),
            json!({"identity": "dave"}),
        ] {
            let (status, body) = view(&l, "clevertap", &req.to_string(), before);
            assert_eq!(
                (status, body.as_str()),
                (
                    400,
                    r#"{"status":"fail","error":"Invalid identity","code":400}"#
                ),
                "{req} before the registration (flushed: {flushed})"
            );
            // Registered, no wallet yet (it opens a day later).
            let (status, body) = view(&l, "clevertap", &req.to_string(), at);
            assert_eq!(
                (status, wallet_ids(&body)),
                (200, vec![]),
                "{req} at the registration: {body}"
            );
            let (status, body) = view(&l, "clevertap", &req.to_string(), NOW);
            assert_eq!((status, wallet_ids(&body)), (200, vec![1]), "{req}: {body}");
        }
        let req = json!({"user_id":"dave","wallet_id":"dave-1"}).to_string();
        let (status, body) = view(&l, "cashfree", &req, before);
        assert_eq!(status, 404, "{body}");
        assert_eq!(json(&body)["code"], "user_not_found", "{body}");
        assert_eq!(view(&l, "cashfree", &req, NOW).0, 200);

        let r = l.reader().unwrap();
        let d = D.parse().unwrap();
        assert_eq!(r.holder_registered_at(d).unwrap(), Some(t(at)));
        assert!(!r.holder_exists_at(d, t(before)).unwrap());
        assert!(r.holder_exists_at(d, t(at)).unwrap());
        // The look-ups without an instant still find the holder.
        assert!(r.holder(d).unwrap().is_some());
        assert_eq!(r.holder_by_identity("dave").unwrap(), Some(d));
        assert!(l.verify().unwrap().ok());
    }
}
