//! The ledger API under `/v1`: `POST /v1/commands` answers exactly the result lines
//! `walletctl apply` prints for the same lines (`render::result_line` of `execute_line`, which is
//! all `apply` does per line), whether the commands come one per request or as an array;
//! idempotent retries, by the command's `key` or the `Idempotency-Key` header, append nothing;
//! `GET /v1/wallets/{id}` and `/history` answer `walletctl show` and `history`.

mod common;

use common::*;
use serde_json::{Value, json};
use wallet_ledger::{Ledger, render};

const WALLET: &str = "550e8400-e29b-41d4-a716-446655440000";

/// The keyed script of the library's tests, then lines each rejected for another reason.
fn script() -> Vec<String> {
    let mut lines: Vec<String> = include_str!("../../tests/scripts/keyed.jsonl")
        .lines()
        .map(String::from)
        .collect();
    lines.extend(
        [
            json!({"op":"redeem","at":"2026-01-07T00:00:00Z","wallet":WALLET,"amount":"1000000"}),
            json!({"op":"redeem","at":"2026-01-01T00:00:00Z","wallet":WALLET,"amount":"1"}),
            json!({"op":"credit","at":"2026-01-07T00:00:00Z","wallet":WALLET,"amount":"-5"}),
            json!({"op":"credit","at":"2026-01-07T00:00:00Z","wallet":WALLET,"amount":"1",
                "colour":"red"}),
            json!({"op":"fly","at":"2026-01-07T00:00:00Z"}),
            json!({"op":"credit","at":"2026-01-07T00:00:00Z","wallet":WALLET,"amount":"1",
                "key":"k-credit-1"}),
            json!({"op":"credit","at":"2026-01-07T00:00:00Z","wallet":WALLET,"amount":"0.001"}),
            json!({"op":"credit","at":"2026-01-07T00:00:00Z",
                "wallet":"00000000-0000-4000-8000-000000000000","amount":"1"}),
            json!([1, 2]),
            json!("text"),
        ]
        .iter()
        .map(Value::to_string),
    );
    lines
}

/// What `walletctl apply` prints for `lines`, on a fresh ledger file.
fn walletctl_apply(lines: &[String]) -> Vec<Value> {
    let dir = tempfile::tempdir().unwrap();
    let l = Ledger::open(dir.path().join("w.redb")).unwrap();
    lines
        .iter()
        .enumerate()
        .map(|(i, line)| render::result_line(i + 1, &l.execute_line(line)))
        .collect()
}

#[test]
fn an_array_answers_what_walletctl_apply_prints() {
    let lines = script();
    let expected = walletctl_apply(&lines);
    assert!(expected.iter().any(|r| r["ok"] == false));
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &config(""));
    let r = post_commands(&s, &format!("[{}]", lines.join(",\n")));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.json(), Value::Array(expected));
}

#[test]
fn one_command_per_request_answers_what_walletctl_apply_prints() {
    // An array body is a list of commands (the other test), not one command.
    let mut lines: Vec<String> = script()
        .into_iter()
        .filter(|l| !l.starts_with('['))
        .collect();
    // Lines no array could carry: not JSON at all.
    lines.extend(["not json".to_string(), "{".into(), "".into()]);
    let expected = walletctl_apply(&lines);
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &config(""));
    for (line, mut want) in lines.iter().zip(expected) {
        // Each request is its own "file" of one line.
        want["line"] = json!(1);
        let r = post_commands(&s, line);
        assert_eq!(r.json(), want, "{line}");
        let code = want["error"]["code"].as_str().unwrap_or("");
        let status = match code {
            "" => 200,
            "invalid_command" | "invalid_amount" | "invalid_time" => 400,
            "idempotency_conflict" => 409,
            _ => 422,
        };
        assert_eq!(r.status, status, "{line}: {}", r.body);
    }
}

fn history_len(s: &Server) -> usize {
    let r = http(
        "GET",
        &s.url(&format!("/v1/wallets/{WALLET}/history")),
        &[("Authorization", &format!("Bearer {API_TOKEN}"))],
        None,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    r.json().as_array().unwrap().len()
}

#[test]
fn idempotent_retries_append_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &config(""));
    let setup = script();
    post_commands(&s, &format!("[{}]", setup[..6].join(",")));
    let post_keyed = |body: &str, key: &str| {
        http(
            "POST",
            &s.url("/v1/commands"),
            &[
                ("Authorization", &format!("Bearer {API_TOKEN}")),
                ("Content-Type", "application/json; charset=utf-8"),
                ("Idempotency-Key", key),
            ],
            Some(body),
        )
    };
    // The key in the command.
    let keyed = json!({"op":"credit","at":"2026-01-10T00:00:00Z","wallet":WALLET,
        "amount":"5","key":"retry-1"})
    .to_string();
    let first = post_commands(&s, &keyed);
    assert_eq!(first.status, 200, "{}", first.body);
    let before = history_len(&s);
    // The key in the header, the command without one.
    let unkeyed = json!({"op":"credit","at":"2026-01-10T00:00:00Z","wallet":WALLET,
        "amount":"7"})
    .to_string();
    let by_header = post_keyed(&unkeyed, "retry-2");
    assert_eq!(by_header.status, 200, "{}", by_header.body);
    assert_eq!(by_header.json()["events"], 1);
    assert_eq!(history_len(&s), before + 1);
    for _ in 0..3 {
        for (r, original) in [
            (post_commands(&s, &keyed), &first),
            (post_keyed(&keyed, "retry-1"), &first),
            (post_keyed(&unkeyed, "retry-2"), &by_header),
        ] {
            assert_eq!(r.status, 200, "{}", r.body);
            let mut want = original.json();
            want["replayed"] = json!(true);
            assert_eq!(r.json(), want);
        }
    }
    assert_eq!(history_len(&s), before + 1, "a retry appended an event");
    // The same key with another command: 409, nothing appended.
    let other = json!({"op":"credit","at":"2026-01-10T00:00:00Z","wallet":WALLET,
        "amount":"8"})
    .to_string();
    let r = post_keyed(&other, "retry-2");
    assert_eq!(r.status, 409, "{}", r.body);
    assert_eq!(r.json()["error"]["code"], "idempotency_conflict");
    // A header that disagrees with the command's own key, or with an array: 400.
    let r = post_keyed(&keyed, "retry-3");
    assert_eq!(
        (r.status, r.json()["error"]["code"].clone()),
        (400, json!("invalid_request"))
    );
    let r = post_keyed(&format!("[{unkeyed}]"), "retry-4");
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(history_len(&s), before + 1);
}

#[test]
fn show_and_history_answer_what_walletctl_prints() {
    let lines: Vec<String> = include_str!("../../examples/scripts/worked_example.jsonl")
        .lines()
        .map(String::from)
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &config(""));
    let r = post_commands(&s, &format!("[{}]", lines.join(",")));
    assert_eq!(r.status, 200);
    let mirror = Ledger::open(dir.path().join("mirror.redb")).unwrap();
    for l in &lines {
        mirror.execute_line(l).unwrap();
    }
    let auth = format!("Bearer {API_TOKEN}");
    let get = |path: &str| http("GET", &s.url(path), &[("Authorization", &auth)], None);
    let w: uuid::Uuid = WALLET.parse().unwrap();
    // SPEC §9's worked example: on Mar 3, credited 170, redeemed 30, expired 70, balance 70.
    for at in ["2026-03-03T00:00:00Z", "2026-01-15T00:00:00Z"] {
        let r = get(&format!("/v1/wallets/{WALLET}?as_of={at}"));
        assert_eq!(r.status, 200, "{}", r.body);
        let want = render::snapshot(&mirror.snapshot(w, Some(at.parse().unwrap())).unwrap());
        assert_eq!(r.json(), want);
    }
    let r = get(&format!("/v1/wallets/{WALLET}?as_of=2026-03-03T00:00:00Z"));
    let p = &r.json()["pockets"][0];
    assert_eq!(
        [&p["credited"], &p["redeemed"], &p["expired"], &p["balance"]],
        [&json!("170"), &json!("30"), &json!("70"), &json!("70")]
    );
    let r = get(&format!("/v1/wallets/{WALLET}/history"));
    assert_eq!(r.status, 200);
    assert_eq!(
        r.json(),
        Value::Array(render::history(&mirror.history(w).unwrap()))
    );
    // Errors: `{"error":{"code","message"}}` with a specific status.
    for (path, status, code) in [
        (
            "/v1/wallets/00000000-0000-4000-8000-000000000000".to_string(),
            404,
            "unknown_wallet",
        ),
        ("/v1/wallets/nope".into(), 400, "invalid_request"),
        ("/v1/wallets/nope/history".into(), 400, "invalid_request"),
        ("/v1/wallets/%FF%FE".into(), 400, "invalid_request"),
        ("/v1/wallets/%FF/history".into(), 400, "invalid_request"),
        (
            format!("/v1/wallets/{WALLET}?as_of=2026-13-01T00:00:00Z"),
            400,
            "invalid_request",
        ),
        (
            format!("/v1/wallets/{WALLET}?at=now"),
            400,
            "invalid_request",
        ),
        (
            format!("/v1/wallets/{WALLET}?as_of=2025-01-01T00:00:00Z"),
            404,
            "unknown_wallet",
        ),
    ] {
        let r = get(&path);
        assert_eq!(
            (r.status, r.json()["error"]["code"].as_str()),
            (status, Some(code)),
            "{path}: {}",
            r.body
        );
    }
}
