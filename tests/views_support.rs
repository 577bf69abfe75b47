//! Helpers shared by the `views_*` tests (included with `#[path]`; as a target of its own it
//! holds no tests).
#![allow(dead_code)]

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use wallet_ledger::{FixedClock, Ledger, views};

pub fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .unwrap_or_else(|e| panic!("{s}: {e}"))
        .with_timezone(&Utc)
}

/// An in-memory ledger whose clock says `now`.
pub fn ledger(now: &str) -> Ledger {
    Ledger::in_memory(Box::new(FixedClock(t(now)))).expect("in-memory ledger")
}

/// Executes command lines in order; any failure fails the test, naming the line.
pub fn run(l: &Ledger, lines: &[Value]) {
    for line in lines {
        let text = line.to_string();
        if let Err(e) = l.execute_line(&text) {
            panic!("{text}\n  -> {e}");
        }
    }
}

/// `views::answer` as of `as_of`; a usage error fails the test.
pub fn view(l: &Ledger, vendor: &str, request: &str, as_of: &str) -> (u16, String) {
    let r = l.reader().expect("reader");
    views::answer(&r, vendor, request, Some(t(as_of)))
        .unwrap_or_else(|e| panic!("{vendor} {request}: {e}"))
}

/// `views::answer` expecting a usage error.
pub fn view_usage_error(l: &Ledger, vendor: &str, request: &str) -> views::UsageError {
    let r = l.reader().expect("reader");
    match views::answer(&r, vendor, request, None) {
        Ok(a) => panic!("{vendor} {request}: expected a usage error, got {a:?}"),
        Err(e) => e,
    }
}

/// Removes the whitespace outside string literals: a pretty-printed sample becomes the exact
/// bytes a compact serializer writes, field order and number spelling untouched.
pub fn minify(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    let (mut in_string, mut escaped) = (false, false);
    for c in json.chars() {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
        } else if c == '"' {
            in_string = true;
            out.push(c);
        } else if !c.is_whitespace() {
            out.push(c);
        }
    }
    out
}

/// Replaces the single occurrence of `"key":"found"` with `"key":"with"` (a ledger-assigned id
/// by the sample's), failing when it does not occur exactly once.
pub fn replace_field(body: &str, key: &str, found: &str, with: &str) -> String {
    let needle = format!("\"{key}\":\"{found}\"");
    assert_eq!(
        body.matches(&needle).count(),
        1,
        "{needle} should occur once in {body}"
    );
    body.replace(&needle, &format!("\"{key}\":\"{with}\""))
}

/// A UUID in the canonical lowercase hyphenated form.
pub fn is_uuid(s: &str) -> bool {
    s.len() == 36
        && s.bytes().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_digit() || (b'a'..=b'f').contains(&b),
        })
}

pub fn json(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

/// The ledger-assigned number of a wallet.
pub fn wallet_number(l: &Ledger, wallet: &str) -> u64 {
    l.reader()
        .unwrap()
        .wallet_number(wallet.parse().unwrap())
        .unwrap()
        .expect("wallet exists")
}

// ---- the fixtures of the golden tests ---------------------------------------------------------
//
// The vendor documents' samples and the commands that rebuild each of them. Shared with
// walletd's HTTP tests (`server/tests/`), which post the same commands and must answer the same
// bodies.

/// The sample response of `clevertap-get-wallet-details.txt`, as printed there.
pub const CLEVERTAP_SAMPLE: &str = r#"{
"status": "success",
"records": [
{
"walletId": 1000,
"totalRedeemedPoints": 0,
"totalCreditedPoints": 0,
"activePoints": 0,
"walletName": "CleverTap Wallet",
"totalPromisedPoints": 0,
"loyaltyPointsName": "Points",
"expiredPoints": 0
},
{
"walletId": 1003,
"totalRedeemedPoints": 0,
"totalCreditedPoints": 0,
"activePoints": 0,
"walletName": "Promo Wallet",
"totalPromisedPoints": 0,
"loyaltyPointsName": "Promo Coins",
"expiredPoints": 0
},
{
"walletId": 1020,
"totalRedeemedPoints": 129,
"totalCreditedPoints": 388.579,
"activePoints": 0,
"walletName": "test",
"totalPromisedPoints": 129.526,
"loyaltyPointsName": "Offer",
"expiredPoints": 259.053
}
]
}"#;

/// The sample response of `bank-get-wallet.txt`, as printed there.
pub const JUICYWAY_SAMPLE: &str = r#"{
  "data": {
    "account_id": "f55ca88c-71aa-4dab-a10a-4d818c11e8e6",
    "balance": {
      "amount": 0,
      "currency": "USD"
    },
    "customer_id": "a08bf5a3-8459-4e65-a5bb-34a1feef94cf",
    "events": [
      {
        "action": "create",
        "id": "6a2a5833-609d-4dff-a4e6-0eaf452d7826",
        "inserted_at": "2025-07-24T08:08:07Z",
        "reason": null,
        "wallet_id": "55a76a42-ed3a-4d0b-b74c-2887d64612f6"
      }
    ],
    "id": "3d2e3f3e-3b3c-4907-a4fd-e241203440d7",
    "payment_methods": [
      {
        "account_name": "Prosacco Erdman",
        "account_number": "3515200757",
        "account_type": "savings",
        "address": null,
        "bank_address": "9896 Bulah Roads, Suite 256, North Carolina, Kansas, 09819, US",
        "bank_code": "035",
        "bank_name": "Wema Bank"
      }
    ],
    "status": "active"
  }
}"#;

/// The sample response of `cashfree-ppi-wallet-details.txt`, as printed there.
pub const CASHFREE_SAMPLE: &str = r#"{
  "user_id": "USER827364",
  "cf_program_id": "9876543210987654321",
  "wallet_id": "WALLET936721",
  "cf_wallet_id": "1234567890123456783",
  "wallet_name": "Gift Wallet",
  "sub_wallets": [
    {
      "cf_sub_wallet_id": "35246543210987654321",
      "name": "Gift Wallet",
      "type": "GIFT_PPI",
      "status": "ACTIVE",
      "balance": 0,
      "available_balance": 0,
      "funds_on_hold": 0
    },
    {
      "cf_sub_wallet_id": "54252453468535350359",
      "name": "Cashfree Wallet",
      "type": "CLOSED_LOOP_PPI",
      "status": "ACTIVE",
      "balance": 0,
      "available_balance": 0,
      "funds_on_hold": 0
    }
  ]
}"#;

/// The sample response of `crypto-get-wallet.txt`, as printed there.
pub const CRYPTOFUSE_SAMPLE: &str = r#"{
"id": "550e8400-e29b-41d4-a716-446655440000",
"name": "Player 12345",
"external_id": "player-12345",
"wallet_id": "w_abc123def456",
"created": "2025-03-15T14:30:00.000Z",
"updated": "2025-04-20T08:15:30.000Z",
"balances": [
{
"currency": "USDTTRC20",
"amount": "1500.75",
"pending_amount": "0.00",
"available_balance": "1500.75"
},
{
"currency": "BTC",
"amount": "0.025",
"pending_amount": "0.01",
"available_balance": "0.015"
}
]
}"#;

pub const KRISHNA: &str = "37b08803-c1af-4e10-849f-530264bac7f8";

pub const W1000: &str = "0198a000-0000-7000-8000-000000001000";

pub const W1003: &str = "0198a000-0000-7000-8000-000000001003";

pub const W1020: &str = "0198a000-0000-7000-8000-000000001020";

pub const JW_WALLET: &str = "3d2e3f3e-3b3c-4907-a4fd-e241203440d7";

pub const JW_CUSTOMER: &str = "a08bf5a3-8459-4e65-a5bb-34a1feef94cf";

pub const CF_WALLET: &str = "0198b000-0000-7000-8000-000000936721";

pub const CF_OTHER_WALLET: &str = "0198b000-0000-7000-8000-000000000002";

pub const CF_PLAYER: &str = "550e8400-e29b-41d4-a716-446655440000";

/// The holders of the Cashfree fixture (users USER827364 and USER000002).
pub const CF_USER: &str = "0198b000-0000-4000-8000-000000827364";
pub const CF_OTHER_USER: &str = "0198b000-0000-4000-8000-000000000002";

/// Holder krishna123 with wallets in programs 1000, 1003 and 1020, opened in the order 1020,
/// 1000, 1003 so that the record order (program id) differs from the opening order.
pub fn clevertap_commands() -> Vec<Value> {
    let program = |id: u64, name: &str, unit: &str, scale: u32| {
        json!({"op":"define_program","at":"2026-01-01T00:00:00Z","program":id,"name":name,
            "unit":unit,"pockets":[{"pocket":"main","name":unit,"kind":"POINTS","asset":"PTS",
            "scale":scale}]})
    };
    let open = |w: &str, p: u64| {
        json!({"op":"open_wallet","at":"2026-01-01T00:00:00Z","wallet":w,"holder":KRISHNA,
            "program":p})
    };
    vec![
        program(1000, "CleverTap Wallet", "Points", 0),
        program(1003, "Promo Wallet", "Promo Coins", 2),
        program(1020, "test", "Offer", 3),
        json!({"op":"register_holder","at":"2026-01-01T00:00:00Z","holder":KRISHNA,
            "identity":"krishna123","email":"Krishna@Example.com"}),
        open(W1020, 1020),
        open(W1000, 1000),
        open(W1003, 1003),
        // 388.579 credited, expiring Mar 1; 129 redeemed; the other 259.579 expires unspent.
        json!({"op":"credit","at":"2026-01-02T00:00:00Z","wallet":W1020,"amount":"388.579",
            "lot":"A","expires_at":"2026-03-01T00:00:00Z"}),
        json!({"op":"redeem","at":"2026-01-05T00:00:00Z","wallet":W1020,"amount":129}),
        // 129.526 promised: it activates on Apr 1.
        json!({"op":"credit","at":"2026-01-06T00:00:00Z","wallet":W1020,"amount":"129.526",
            "lot":"P","activates_at":"2026-04-01T00:00:00Z"}),
    ]
}

/// The bank wallet of the Juicyway sample, with its payment method.
pub fn juicyway_commands() -> Vec<Value> {
    vec![
        json!({"op":"define_program","at":"2025-07-01T00:00:00Z","program":1,
            "name":"Bank","unit":"USD","pockets":[{"pocket":"usd","name":"USD account",
            "kind":"BANK","asset":"USD","scale":2}]}),
        json!({"op":"register_holder","at":"2025-07-01T00:00:00Z","holder":JW_CUSTOMER}),
        // Created at 08:08:07.654: the sample's `inserted_at` shows whole seconds.
        json!({"op":"open_wallet","at":"2025-07-24T08:08:07.654Z","wallet":JW_WALLET,
            "holder":JW_CUSTOMER,"program":1}),
        json!({"op":"link_payment_method","at":"2025-07-24T08:10:00Z","wallet":JW_WALLET,
            "method":{"account_name":"Prosacco Erdman","account_number":"3515200757",
            "account_type":"savings",
            "bank_address":"9896 Bulah Roads, Suite 256, North Carolina, Kansas, 09819, US",
            "bank_code":"035","bank_name":"Wema Bank"}}),
    ]
}

/// The Cashfree sample's program, user and wallet, and another user's wallet with a card.
pub fn cashfree_commands() -> Vec<Value> {
    vec![
        json!({"op":"define_program","at":"2026-01-01T00:00:00Z",
            "program":"9876543210987654321","name":"Gift Program","unit":"INR","pockets":[
            {"pocket":"gift","name":"Gift Wallet","kind":"GIFT_PPI","asset":"INR","scale":2},
            {"pocket":"cashfree","name":"Cashfree Wallet","kind":"CLOSED_LOOP_PPI",
             "asset":"INR","scale":2}]}),
        json!({"op":"register_holder","at":"2026-01-01T00:00:00Z","holder":CF_USER,
            "identity":"USER827364"}),
        json!({"op":"register_holder","at":"2026-01-01T00:00:00Z","holder":CF_OTHER_USER,
            "identity":"USER000002"}),
        json!({"op":"open_wallet","at":"2026-01-01T00:00:00Z","wallet":CF_WALLET,
            "holder":CF_USER,"program":"9876543210987654321",
            "name":"Gift Wallet","external_id":"WALLET936721"}),
        json!({"op":"open_wallet","at":"2026-01-01T00:00:00Z","wallet":CF_OTHER_WALLET,
            "holder":CF_OTHER_USER,"program":"9876543210987654321",
            "external_id":"WALLET000002"}),
        json!({"op":"issue_card","at":"2026-01-01T00:00:00Z","wallet":CF_OTHER_WALLET,
            "card":"CARD000002","masked_pan":"4111XXXXXXXX0002","status":"ACTIVE"}),
    ]
}

/// After [`cashfree_commands`]: 500 credited to the gift pocket, 120.25 of it on hold, and a
/// card issued to the sample's wallet (the documented combinations by card and sub-wallet).
pub fn cashfree_more_commands() -> Vec<Value> {
    vec![
        json!({"op":"credit","at":"2026-01-10T00:00:00Z","wallet":CF_WALLET,"pocket":"gift",
            "amount":"500"}),
        json!({"op":"hold","at":"2026-01-11T00:00:00Z","wallet":CF_WALLET,"pocket":"gift",
            "amount":"120.25"}),
        json!({"op":"issue_card","at":"2026-01-12T00:00:00Z","wallet":CF_WALLET,
            "card":"CARDR827364","masked_pan":"4111XXXXXXXX1111","status":"ACTIVE"}),
    ]
}

/// The Cryptofuse sample's wallet: 1500.75 USDT, 0.025 BTC with 0.01 of it on hold.
pub fn cryptofuse_commands() -> Vec<Value> {
    vec![
        json!({"op":"define_program","at":"2025-03-01T00:00:00Z","program":7,
            "name":"Casino","unit":"USD","pockets":[
            {"pocket":"USDTTRC20","name":"Tether","kind":"CRYPTO","asset":"USDTTRC20","scale":6},
            {"pocket":"BTC","name":"Bitcoin","kind":"CRYPTO","asset":"BTC","scale":8}]}),
        json!({"op":"register_holder","at":"2025-03-01T00:00:00Z",
            "holder":"7f000000-0000-4000-8000-000000012345"}),
        json!({"op":"open_wallet","at":"2025-03-15T14:30:00Z","wallet":CF_PLAYER,
            "holder":"7f000000-0000-4000-8000-000000012345","program":7,
            "name":"Player 12345","external_id":"player-12345"}),
        json!({"op":"credit","at":"2025-04-01T00:00:00Z","wallet":CF_PLAYER,
            "pocket":"USDTTRC20","amount":"1500.750000"}),
        json!({"op":"credit","at":"2025-04-02T00:00:00Z","wallet":CF_PLAYER,"pocket":"BTC",
            "amount":"0.025"}),
        // 0.01 BTC pending on a withdrawal hold: pending 0.01, available 0.015, total 0.025.
        json!({"op":"hold","at":"2025-04-20T08:15:30Z","wallet":CF_PLAYER,"pocket":"BTC",
            "amount":"0.01"}),
    ]
}
