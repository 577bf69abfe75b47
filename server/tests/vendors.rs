//! The four vendor endpoints over real HTTP: each vendor's documented request, sent as its
//! document's `curl` line sends it (same method, path, headers and body; only the base URL and
//! the credentials differ, plus `as_of` to pin the instant), answers the golden body the views
//! tests hold (`tests/views_support.rs`), and byte for byte what `walletctl view` prints as its
//! body for the same ledger (`views::answer` on a ledger built from the same commands: every id
//! the ledger assigns is derived from the commands, so the two ledgers agree). Every documented
//! error status and body, 401 and 403 included, and the credentials' program scopes.

mod common;
#[path = "../../tests/views_support.rs"]
mod support;

use common::*;
use serde_json::{Value, json};
use support::*;

/// A server holding `commands`, and a library ledger holding the same.
fn fixture(commands: &[Value]) -> (tempfile::TempDir, Server, wallet_ledger::Ledger) {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &config(""));
    apply_all(&server, commands);
    let mirror = ledger("2026-06-01T00:00:00Z");
    run(&mirror, commands);
    (dir, server, mirror)
}

/// The answer must be JSON, and exactly what `walletctl view VENDOR REQUEST --as-of AT` prints
/// as its status and body.
fn assert_as_view(r: &Resp, mirror: &wallet_ledger::Ledger, vendor: &str, req: &str, at: &str) {
    assert_eq!(r.header("content-type"), Some("application/json"), "{r:?}");
    let (status, body) = view(mirror, vendor, req, at);
    assert_eq!(
        r.pair(),
        (status, body.as_str()),
        "{vendor} {req} as of {at}"
    );
}

// ---- CleverTap -------------------------------------------------------------------------------

const CT: [(&str, &str); 3] = [
    ("X-CleverTap-Account-Id", "ACCOUNT_ID"),
    ("X-CleverTap-Passcode", "PASSCODE"),
    ("Content-Type", "application/json"),
];

#[test]
fn clevertap_documented_request_and_errors() {
    let (_dir, s, mirror) = fixture(&clevertap_commands());
    let at = "2026-03-02T00:00:00Z";
    let url = |q: &str| s.url(&format!("/clevertap/1/promo/wallets?{q}&as_of={at}"));
    // The sample, made consistent exactly as the golden test does (see views_golden.rs).
    let expected = minify(CLEVERTAP_SAMPLE)
        .replace(r#""expiredPoints":259.053"#, r#""expiredPoints":259.579"#);
    // The document's curl: GET ?identity=krishna123 with its three headers.
    let r = http("GET", &url("identity=krishna123"), &CT, None);
    assert_eq!(r.pair(), (200, expected.as_str()));
    assert_as_view(&r, &mirror, "clevertap", r#"{"identity":"krishna123"}"#, at);
    // objectId (32 hex digits, the doc's form) and email find the same user.
    for q in [
        "objectId=37b08803c1af4e10849f530264bac7f8",
        "email=%20%20krishna%40example.COM%20",
    ] {
        assert_eq!(
            http("GET", &url(q), &CT, None).pair(),
            (200, expected.as_str())
        );
    }
    // as_of answers at an instant: on Jan 5 at noon nothing has expired or been promised.
    let r = http(
        "GET",
        &s.url("/clevertap/1/promo/wallets?identity=krishna123&as_of=2026-01-05T12:00:00%2B00:00"),
        &CT,
        None,
    );
    assert_as_view(
        &r,
        &mirror,
        "clevertap",
        r#"{"identity":"krishna123"}"#,
        "2026-01-05T12:00:00Z",
    );
    assert!(r.body.contains(r#""activePoints":259.579,"#), "{}", r.body);

    // 400 Invalid identity: all three missing, or none resolving.
    let invalid = r#"{"status":"fail","error":"Invalid identity","code":400}"#;
    for q in [
        "",
        "identity=KMN%40123",
        "identity=KRISHNA123",
        "email=nobody%40example.com",
        "objectId=00000000000000000000000000000000",
        "objectId=not-a-guid&email=&identity=",
    ] {
        assert_eq!(
            http("GET", &url(q), &CT, None).pair(),
            (400, invalid),
            "{q}"
        );
    }
    // 401 Invalid credentials: wrong or missing passcode or account.
    let unauthorized = r#"{"status":"fail","error":"Invalid credentials","code":401}"#;
    for headers in [
        vec![],
        vec![("X-CleverTap-Account-Id", "ACCOUNT_ID")],
        vec![("X-CleverTap-Passcode", "PASSCODE")],
        vec![
            ("X-CleverTap-Account-Id", "ACCOUNT_ID"),
            ("X-CleverTap-Passcode", "passcode"),
        ],
        vec![
            ("X-CleverTap-Account-Id", "OTHER_ACCOUNT"),
            ("X-CleverTap-Passcode", "PASSCODE"),
        ],
        // Another credential's passcode with this account id.
        vec![
            ("X-CleverTap-Account-Id", "ACCOUNT_ID"),
            ("X-CleverTap-Passcode", "SCOPED_PASSCODE"),
        ],
        vec![("Authorization", &format!("Bearer {API_TOKEN}"))],
    ] {
        let r = http("GET", &url("identity=krishna123"), &headers, None);
        assert_eq!(r.pair(), (401, unauthorized), "{headers:?}");
        assert_eq!(r.header("content-type"), Some("application/json"));
    }
    // A credential scoped to programs 999 and 1020 sees only wallet 1020's record; one scoped
    // to 999 alone sees no record, which CleverTap answers as an unknown user.
    let scoped = [
        ("X-CleverTap-Account-Id", "SCOPED_ACCOUNT"),
        ("X-CleverTap-Passcode", "SCOPED_PASSCODE"),
    ];
    let r = http("GET", &url("identity=krishna123"), &scoped, None);
    assert_eq!(r.status, 200);
    let records = r.json()["records"].as_array().unwrap().clone();
    assert_eq!(records.len(), 1, "{}", r.body);
    assert_eq!(records[0], json(&expected)["records"][2]);
    let nothing = [
        ("X-CleverTap-Account-Id", "NOTHING_ACCOUNT"),
        ("X-CleverTap-Passcode", "NOTHING_PASSCODE"),
    ];
    assert_eq!(
        http("GET", &url("identity=krishna123"), &nothing, None).pair(),
        (400, invalid)
    );
    // Parameters CleverTap does not define, given twice, or a bad as_of: its 400 shape.
    for q in [
        "identity=krishna123&limit=5",
        "identity=krishna123&identity=krishna123",
        "identity=krishna123&as_of=yesterday",
    ] {
        let r = http(
            "GET",
            &s.url(&format!("/clevertap/1/promo/wallets?{q}")),
            &CT,
            None,
        );
        let v = r.json();
        assert_eq!(
            (r.status, &v["status"], &v["code"]),
            (400, &json!("fail"), &json!(400)),
            "{q}"
        );
    }
}

// ---- Juicyway ----------------------------------------------------------------------------------

#[test]
fn juicyway_documented_request_and_errors() {
    let (_dir, s, mirror) = fixture(&juicyway_commands());
    let at = "2025-08-01T00:00:00Z";
    let url = |id: &str| s.url(&format!("/juicyway/wallets/{id}?as_of={at}"));
    let bearer = format!("Bearer {JUICYWAY_KEY}");
    // The document's curl: GET /wallets/{id} with Authorization: Bearer.
    let r = http("GET", &url(JW_WALLET), &[("Authorization", &bearer)], None);
    assert_as_view(
        &r,
        &mirror,
        "juicyway",
        &json!({"id": JW_WALLET}).to_string(),
        at,
    );
    // The golden: the ledger's own ids (first pocket's UUID, the event's) are UUIDs, put in
    // the sample's place; the sample's inconsistent events[0].wallet_id is the wallet's id.
    let v = r.json();
    let account = v["data"]["account_id"].as_str().unwrap();
    let event = v["data"]["events"][0]["id"].as_str().unwrap();
    assert!(is_uuid(account) && is_uuid(event), "{v}");
    let body = replace_field(
        &r.body,
        "account_id",
        account,
        "f55ca88c-71aa-4dab-a10a-4d818c11e8e6",
    );
    let body = replace_field(&body, "id", event, "6a2a5833-609d-4dff-a4e6-0eaf452d7826");
    let expected =
        minify(JUICYWAY_SAMPLE).replace("55a76a42-ed3a-4d0b-b74c-2887d64612f6", JW_WALLET);
    assert_eq!(body, expected);
    // A credential configured to mask sees "******" + the last 4 digits.
    let r = http(
        "GET",
        &url(JW_WALLET),
        &[("Authorization", "Bearer JUICYWAY_MASKED_KEY")],
        None,
    );
    assert_as_view(
        &r,
        &mirror,
        "juicyway",
        &json!({"id": JW_WALLET, "mask": true}).to_string(),
        at,
    );
    assert!(r.body.contains(r#""account_number":"******0757""#));

    // 404: unknown or malformed ids, and the wallet before it was created.
    let not_found = r#"{"error":{"code":"not_found","message":"Wallet not found"}}"#;
    for id in [
        "55a76a42-ed3a-4d0b-b74c-2887d64612f6",
        "3d2e3f3e",
        "%7B3d2e3f3e-3b3c-4907-a4fd-e241203440d7%7D",
        "3d2e3f3e-3b3c-4907-a4fd-e241203440d7%20",
        "%FF%FE",
    ] {
        let r = http("GET", &url(id), &[("Authorization", &bearer)], None);
        assert_eq!(r.pair(), (404, not_found), "{id}");
    }
    let r = http(
        "GET",
        &s.url(&format!(
            "/juicyway/wallets/{JW_WALLET}?as_of=2025-07-24T08:08:07Z"
        )),
        &[("Authorization", &bearer)],
        None,
    );
    assert_eq!(r.pair(), (404, not_found));
    // 401 Unauthorized: missing, wrong, another scheme, another vendor's key.
    for h in [
        vec![],
        vec![("Authorization", "Bearer wrong")],
        vec![("Authorization", JUICYWAY_KEY)],
        vec![("Authorization", "Basic WU9VUl9BUElfS0VZ")],
        vec![("Authorization", "Bearer CRYPTOFUSE_KEY")],
        vec![("X-API-Key", JUICYWAY_KEY)],
    ] {
        let r = http("GET", &url(JW_WALLET), &h, None);
        assert_eq!(
            r.pair(),
            (
                401,
                r#"{"error":{"code":"unauthorized","message":"Unauthorized"}}"#
            ),
            "{h:?}"
        );
        assert!(r.header("www-authenticate").is_some());
    }
    // 403 Access denied: a key scoped to other programs; an unknown wallet is still 404.
    let scoped = [("Authorization", "Bearer JUICYWAY_SCOPED_KEY")];
    assert_eq!(
        http("GET", &url(JW_WALLET), &scoped, None).pair(),
        (
            403,
            r#"{"error":{"code":"forbidden","message":"Access denied"}}"#
        )
    );
    assert_eq!(
        http(
            "GET",
            &url("55a76a42-ed3a-4d0b-b74c-2887d64612f6"),
            &scoped,
            None
        )
        .pair(),
        (404, not_found)
    );
}

// ---- Cashfree ----------------------------------------------------------------------------------

/// The document's curl body, as printed there.
const CASHFREE_CURL_BODY: &str = r#"
{
  "user_id": "USER827364",
  "wallet_id": "WALLET936721"
}
"#;

fn cashfree_headers<'a>(id: &'a str, secret: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("Content-Type", "application/json"),
        ("x-api-version", "2025-11-01"),
        ("x-client-id", id),
        ("x-client-secret", secret),
    ]
}

#[test]
fn cashfree_documented_request_and_errors() {
    let (_dir, s, mirror) = fixture(&cashfree_commands());
    let at = "2026-02-01T00:00:00Z";
    let url = s.url(&format!("/cashfree/ppi/wallet/details?as_of={at}"));
    let ok = cashfree_headers("CF_CLIENT_ID", "CF_CLIENT_SECRET");
    // The document's curl: POST, its four headers, its body.
    let r = http("POST", &url, &ok, Some(CASHFREE_CURL_BODY));
    assert_as_view(&r, &mirror, "cashfree", CASHFREE_CURL_BODY, at);
    // The golden: the ledger's wallet and pocket numbers in the sample's place.
    let v = r.json();
    let mut body = replace_field(
        &r.body,
        "cf_wallet_id",
        v["cf_wallet_id"].as_str().unwrap(),
        "1234567890123456783",
    );
    for (sub, sample) in v["sub_wallets"]
        .as_array()
        .unwrap()
        .iter()
        .zip(["35246543210987654321", "54252453468535350359"])
    {
        let id = sub["cf_sub_wallet_id"].as_str().unwrap();
        assert!(id.bytes().all(|b| b.is_ascii_digit()), "{id}");
        body = replace_field(&body, "cf_sub_wallet_id", id, sample);
    }
    assert_eq!(body, minify(CASHFREE_SAMPLE));

    // Every documented 400 and 404, as the view answers them.
    let err = |status: u16, code: &str, message: &str| {
        (
            status,
            format!(r#"{{"message":"{message}","code":"{code}","type":"invalid_request_error"}}"#),
        )
    };
    for (req, expected) in [
        (
            json!({"wallet_id":"WALLET936721"}),
            err(400, "request_invalid", "user_id is required"),
        ),
        (
            json!({"user_id":"USER827364"}),
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
        (
            json!({"user_id":"USER999999","wallet_id":"WALLET936721"}),
            err(
                404,
                "user_not_found",
                r#"user_id \"USER999999\" does not exist"#,
            ),
        ),
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
    ] {
        let text = req.to_string();
        let r = http("POST", &url, &ok, Some(&text));
        assert_eq!((r.status, r.body.clone()), expected, "{req}");
        assert_as_view(&r, &mirror, "cashfree", &text, at);
    }
    // A body that is not the request type (malformed, unknown field): Cashfree's 400.
    for bad in ["{", "[]", r#"{"user_id":"USER827364","wallet":"x"}"#, ""] {
        let r = http("POST", &url, &ok, Some(bad));
        assert_eq!(r.status, 400, "{bad}: {}", r.body);
        assert_eq!(r.json()["type"], "invalid_request_error");
        assert_as_view(&r, &mirror, "cashfree", bad, at);
    }
    // 401: Cashfree's authentication error, for a missing or wrong id or secret.
    let unauthorized = r#"{"message":"authentication Failed","code":"request_failed","type":"authentication_error"}"#;
    for (id, secret) in [
        ("CF_CLIENT_ID", "wrong"),
        ("wrong", "CF_CLIENT_SECRET"),
        ("CF_CLIENT_ID", ""),
        ("CF_CLIENT_ID", "CF_SCOPED_SECRET"),
    ] {
        let r = http(
            "POST",
            &url,
            &cashfree_headers(id, secret),
            Some(CASHFREE_CURL_BODY),
        );
        assert_eq!(r.pair(), (401, unauthorized), "{id} {secret}");
    }
    let r = http(
        "POST",
        &url,
        &[
            ("Content-Type", "application/json"),
            ("x-api-version", "2025-11-01"),
        ],
        Some(CASHFREE_CURL_BODY),
    );
    assert_eq!(r.pair(), (401, unauthorized));
    // x-api-version is required, as a date.
    for version in [None, Some("latest")] {
        let mut h = vec![
            ("Content-Type", "application/json"),
            ("x-client-id", "CF_CLIENT_ID"),
            ("x-client-secret", "CF_CLIENT_SECRET"),
        ];
        if let Some(v) = version {
            h.push(("x-api-version", v));
        }
        let r = http("POST", &url, &h, Some(CASHFREE_CURL_BODY));
        assert_eq!(r.status, 400, "{version:?}");
        assert_eq!(r.json()["code"], "request_invalid");
        assert!(r.body.contains("x-api-version"), "{}", r.body);
    }
    // A credential scoped to other programs gets what an unknown wallet gets.
    let r = http(
        "POST",
        &url,
        &cashfree_headers("CF_SCOPED_ID", "CF_SCOPED_SECRET"),
        Some(CASHFREE_CURL_BODY),
    );
    assert_eq!(
        (r.status, r.body),
        err(
            404,
            "wallet_not_found",
            r#"wallet_id \"WALLET936721\" does not exist for user_id \"USER827364\""#
        )
    );

    // The documented combinations (by card, with a sub-wallet) once the wallet has a card.
    apply_all(&s, &cashfree_more_commands());
    run(&mirror, &cashfree_more_commands());
    let snap = mirror.snapshot(CF_WALLET.parse().unwrap(), None).unwrap();
    for req in [
        json!({"user_id":"USER827364","wallet_id":"WALLET936721"}),
        json!({"user_id":"USER827364","card_id":"CARDR827364"}),
        json!({"user_id":"USER827364","wallet_id":"WALLET936721",
            "cf_sub_wallet_id": snap.pockets[0].number().to_string()}),
        json!({"user_id":"USER827364","card_id":"CARDR827364",
            "cf_sub_wallet_id": snap.pockets[1].number().to_string()}),
    ] {
        let text = req.to_string();
        let r = http("POST", &url, &ok, Some(&text));
        assert_eq!(r.status, 200, "{req}: {}", r.body);
        assert!(r.body.contains(r#""card":{"card_id":"CARDR827364""#));
        assert_as_view(&r, &mirror, "cashfree", &text, at);
    }
    // By card with a scoped credential: the card's not-found answer.
    let r = http(
        "POST",
        &url,
        &cashfree_headers("CF_SCOPED_ID", "CF_SCOPED_SECRET"),
        Some(r#"{"user_id":"USER827364","card_id":"CARDR827364"}"#),
    );
    assert_eq!(
        (r.status, r.body),
        err(
            404,
            "card_not_found",
            r#"card_id \"CARDR827364\" does not exist for user_id \"USER827364\""#
        )
    );
}

// ---- Cryptofuse --------------------------------------------------------------------------------

#[test]
fn cryptofuse_documented_request_and_errors() {
    let (_dir, s, mirror) = fixture(&cryptofuse_commands());
    let at = "2025-05-01T00:00:00Z";
    let url = |id: &str| s.url(&format!("/cryptofuse/wallets/{id}/?as_of={at}"));
    // The document's curl: GET /wallets/{id}/ with X-API-Key.
    let r = http(
        "GET",
        &url(CF_PLAYER),
        &[("X-API-Key", "CRYPTOFUSE_KEY")],
        None,
    );
    assert_as_view(
        &r,
        &mirror,
        "cryptofuse",
        &json!({"id": CF_PLAYER}).to_string(),
        at,
    );
    let wallet_id = r.json()["wallet_id"].as_str().unwrap().to_string();
    assert!(
        wallet_id.len() == 14 && wallet_id.starts_with("w_"),
        "{wallet_id}"
    );
    assert_eq!(
        replace_field(&r.body, "wallet_id", &wallet_id, "w_abc123def456"),
        minify(CRYPTOFUSE_SAMPLE)
    );
    // The other documented authentication: an OAuth bearer token.
    let r2 = http(
        "GET",
        &url(CF_PLAYER),
        &[("Authorization", "Bearer CRYPTOFUSE_KEY")],
        None,
    );
    assert_eq!(r2.pair(), r.pair());

    let key = [("X-API-Key", "CRYPTOFUSE_KEY")];
    let invalid =
        r#"{"error":{"code":"invalid_request","message":"Invalid wallet ID format","details":{}}}"#;
    let not_found = r#"{"error":{"code":"not_found","message":"Wallet not found","details":{}}}"#;
    for id in [
        "player-12345",
        "550e8400",
        "550e8400-e29b-41d4-a716-44665544000g",
        "w_000000000001",
    ] {
        assert_eq!(
            http("GET", &url(id), &key, None).pair(),
            (400, invalid),
            "{id}"
        );
    }
    for id in [
        "550e8400-e29b-41d4-a716-446655440001",
        "00000000000000000000000000000000",
    ] {
        assert_eq!(
            http("GET", &url(id), &key, None).pair(),
            (404, not_found),
            "{id}"
        );
    }
    // 401 unauthorized.
    let unauthorized =
        r#"{"error":{"code":"unauthorized","message":"Authentication failed","details":{}}}"#;
    for h in [
        vec![],
        vec![("X-API-Key", "wrong")],
        vec![("Authorization", "Bearer wrong")],
        vec![("X-API-Key", JUICYWAY_KEY)],
        // X-API-Key decides when both are sent.
        vec![
            ("X-API-Key", "wrong"),
            ("Authorization", "Bearer CRYPTOFUSE_KEY"),
        ],
    ] {
        assert_eq!(
            http("GET", &url(CF_PLAYER), &h, None).pair(),
            (401, unauthorized),
            "{h:?}"
        );
    }
    // 403 forbidden: a key scoped to other programs.
    assert_eq!(
        http(
            "GET",
            &url(CF_PLAYER),
            &[("X-API-Key", "CRYPTOFUSE_SCOPED_KEY")],
            None
        )
        .pair(),
        (
            403,
            r#"{"error":{"code":"forbidden","message":"User doesn't have required permissions","details":{}}}"#
        )
    );
    // A bad as_of: the documented 400 shape.
    let r = http(
        "GET",
        &s.url(&format!(
            "/cryptofuse/wallets/{CF_PLAYER}/?as_of=2025-05-01"
        )),
        &key,
        None,
    );
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"]["code"], "invalid_request");
    // Without as_of: now.
    let r = http(
        "GET",
        &s.url(&format!("/cryptofuse/wallets/{CF_PLAYER}/")),
        &key,
        None,
    );
    assert_eq!(r.status, 200);
}

/// Each vendor under a base path of its own choosing: a client changes only its base URL.
#[test]
fn base_paths_are_configurable() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(
        dir.path(),
        &config("").replacen(
            "[[juicyway.credentials]]",
            "[juicyway]\nbase_path = \"/bank/v2\"\n[[juicyway.credentials]]",
            1,
        ),
    );
    apply_all(&s, &juicyway_commands());
    let bearer = format!("Bearer {JUICYWAY_KEY}");
    let r = http(
        "GET",
        &s.url(&format!("/bank/v2/wallets/{JW_WALLET}")),
        &[("Authorization", &bearer)],
        None,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["data"]["id"], JW_WALLET);
    let r = http(
        "GET",
        &s.url(&format!("/juicyway/wallets/{JW_WALLET}")),
        &[("Authorization", &bearer)],
        None,
    );
    assert_eq!(r.status, 404);
}

/// `examples/scripts/vendor_samples.jsonl` (the README's walletd demo) is these fixtures.
#[test]
fn the_readme_demo_script_is_the_fixtures() {
    let file: Vec<Value> = include_str!("../../examples/scripts/vendor_samples.jsonl")
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let fixtures: Vec<Value> = [
        clevertap_commands(),
        juicyway_commands(),
        cashfree_commands(),
        cryptofuse_commands(),
    ]
    .concat();
    assert_eq!(file, fixtures);
}
