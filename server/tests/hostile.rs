//! What no well-behaved client sends: missing and wrong credentials on every route, wrong
//! methods, unknown routes, garbage, oversized and undeclared bodies, slow clients, and a
//! SIGTERM with a request in flight. Each gets a specific 4xx (or 5xx) JSON answer or a closed
//! connection, never a panic, and nothing is half-applied.

mod common;
#[path = "../../tests/views_support.rs"]
mod support;

use common::*;
use serde_json::json;
use std::time::{Duration, Instant};
use support::*;
use wallet_ledger::limits::MAX_LINE_BYTES;

/// A route: method, path, body, the right credentials, and wrong ones.
struct Route {
    method: &'static str,
    path: String,
    body: Option<String>,
    good: Vec<(&'static str, String)>,
    wrong: Vec<Vec<(&'static str, String)>>,
}

fn routes() -> Vec<Route> {
    let json_ct = ("Content-Type", "application/json".to_string());
    let bearer = |t: &str| ("Authorization", format!("Bearer {t}"));
    vec![
        Route {
            method: "POST",
            path: "/v1/commands".into(),
            body: Some(
                json!({"op":"credit","at":"2025-08-01T00:00:00Z","wallet":JW_WALLET,
                    "amount":"1"})
                .to_string(),
            ),
            good: vec![bearer(API_TOKEN), json_ct.clone()],
            wrong: vec![
                vec![json_ct.clone()],
                vec![bearer("wrong"), json_ct.clone()],
                vec![bearer(JUICYWAY_KEY), json_ct.clone()],
                vec![("Authorization", API_TOKEN.into()), json_ct.clone()],
            ],
        },
        Route {
            method: "GET",
            path: format!("/v1/wallets/{JW_WALLET}"),
            body: None,
            good: vec![bearer(API_TOKEN)],
            wrong: vec![
                vec![],
                vec![bearer("wrong")],
                vec![bearer("CRYPTOFUSE_KEY")],
            ],
        },
        Route {
            method: "GET",
            path: format!("/v1/wallets/{JW_WALLET}/history"),
            body: None,
            good: vec![bearer(API_TOKEN)],
            wrong: vec![vec![], vec![bearer(&format!("{API_TOKEN}x"))]],
        },
        Route {
            method: "GET",
            path: format!("/clevertap/1/promo/wallets?objectId={JW_CUSTOMER}"),
            body: None,
            good: vec![
                ("X-CleverTap-Account-Id", "ACCOUNT_ID".into()),
                ("X-CleverTap-Passcode", "PASSCODE".into()),
            ],
            wrong: vec![
                vec![],
                vec![
                    ("X-CleverTap-Account-Id", "ACCOUNT_ID".into()),
                    ("X-CleverTap-Passcode", "PASSCODE0".into()),
                ],
                vec![bearer(API_TOKEN)],
            ],
        },
        Route {
            method: "GET",
            path: format!("/juicyway/wallets/{JW_WALLET}"),
            body: None,
            good: vec![bearer(JUICYWAY_KEY)],
            wrong: vec![vec![], vec![bearer("wrong")], vec![bearer(API_TOKEN)]],
        },
        Route {
            method: "POST",
            path: "/cashfree/ppi/wallet/details".into(),
            body: Some(r#"{"user_id":"u","wallet_id":"w"}"#.into()),
            good: vec![
                json_ct.clone(),
                ("x-api-version", "2025-11-01".into()),
                ("x-client-id", "CF_CLIENT_ID".into()),
                ("x-client-secret", "CF_CLIENT_SECRET".into()),
            ],
            wrong: vec![
                vec![json_ct.clone(), ("x-api-version", "2025-11-01".into())],
                vec![
                    json_ct.clone(),
                    ("x-api-version", "2025-11-01".into()),
                    ("x-client-id", "CF_CLIENT_ID".into()),
                    ("x-client-secret", "CF_CLIENT_SECRE".into()),
                ],
            ],
        },
        Route {
            method: "GET",
            path: format!("/cryptofuse/wallets/{JW_WALLET}/"),
            body: None,
            good: vec![("X-API-Key", "CRYPTOFUSE_KEY".into())],
            wrong: vec![
                vec![],
                vec![("X-API-Key", "CRYPTOFUSE_KEY2".into())],
                vec![bearer(JUICYWAY_KEY)],
            ],
        },
    ]
}

fn send_route(s: &Server, r: &Route, headers: &[(&'static str, String)]) -> Resp {
    let h: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
    http(r.method, &s.url(&r.path), &h, r.body.as_deref())
}

fn events(s: &Server) -> usize {
    let r = http(
        "GET",
        &s.url(&format!("/v1/wallets/{JW_WALLET}/history")),
        &[("Authorization", &format!("Bearer {API_TOKEN}"))],
        None,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    r.json().as_array().unwrap().len()
}

fn assert_no_panic(s: &Server) {
    let log = s.log_text();
    assert!(!log.contains("panic"), "walletd logged a panic:\n{log}");
}

#[test]
fn every_route_refuses_missing_and_wrong_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &config(""));
    apply_all(&s, &juicyway_commands());
    let before = events(&s);
    for route in routes() {
        for wrong in &route.wrong {
            let r = send_route(&s, &route, wrong);
            assert_eq!(
                r.status, 401,
                "{} {} {wrong:?}: {}",
                route.method, route.path, r.body
            );
            assert_eq!(r.header("content-type"), Some("application/json"));
            r.json();
        }
        // The same request with the right credentials is answered (the 401 was the
        // credentials, nothing else).
        let r = send_route(&s, &route, &route.good);
        assert_ne!(r.status, 401, "{} {}: {}", route.method, route.path, r.body);
    }
    // Only the one authorized command was applied.
    assert_eq!(events(&s), before + 1);
    assert_no_panic(&s);
}

#[test]
fn wrong_methods_and_unknown_routes_get_json() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &config(""));
    for route in routes() {
        let path = route.path.split('?').next().unwrap().to_string();
        let wrong: &[&str] = if route.method == "GET" {
            &["POST", "PUT", "DELETE", "PATCH"]
        } else {
            &["GET", "PUT", "DELETE"]
        };
        for m in wrong {
            let r = http(m, &s.url(&path), &[], None);
            assert_eq!(r.status, 405, "{m} {path}: {}", r.body);
            assert!(r.header("allow").is_some(), "{m} {path}: no Allow header");
            assert!(r.body.contains("not allowed"), "{}", r.body);
            r.json();
        }
    }
    for (path, status) in [
        ("/", 404),
        ("/v2/commands", 404),
        ("/juicyway/wallets", 404),
        ("/juicyway/wallets/a/b", 404),
        (
            "/cryptofuse/wallets/550e8400-e29b-41d4-a716-446655440000",
            404,
        ),
        ("/clevertap/1/promo/wallet", 404),
        ("/metrics/x", 404),
    ] {
        let r = http("GET", &s.url(path), &[], None);
        assert_eq!(r.status, status, "{path}: {}", r.body);
        assert!(r.body.contains("no route"), "{path}: {}", r.body);
        r.json();
    }
    // Under a vendor's base, its own error shape.
    let r = http("GET", &s.url("/cryptofuse/nothing"), &[], None);
    assert_eq!(r.json()["error"]["details"], json!({}));
    let r = http("GET", &s.url("/clevertap/nothing"), &[], None);
    assert_eq!(
        (r.json()["status"].as_str(), r.json()["code"].as_u64()),
        (Some("fail"), Some(404))
    );
    assert_no_panic(&s);
}

#[test]
fn garbage_oversized_and_undeclared_bodies() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &config(""));
    apply_all(&s, &juicyway_commands());
    let before = events(&s);
    let auth = format!("Bearer {API_TOKEN}");
    let post = |ct: Option<&str>, body: &[u8]| {
        let mut h = vec![("Authorization", auth.as_str())];
        if let Some(ct) = ct {
            h.push(("Content-Type", ct));
        }
        send(&agent(), "POST", &s.url("/v1/commands"), &h, Some(body)).unwrap()
    };
    let command = json!({"op":"credit","at":"2025-08-01T00:00:00Z","wallet":JW_WALLET,
        "amount":"1"})
    .to_string();
    // Undeclared or not JSON: 415, nothing applied.
    for ct in [
        None,
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
    ] {
        let r = post(ct, command.as_bytes());
        assert_eq!(r.status, 415, "{ct:?}: {}", r.body);
        assert_eq!(r.json()["error"]["code"], "unsupported_media_type");
    }
    // Not UTF-8.
    let r = post(Some("application/json"), &[0xff, 0xfe, b'{', 0x80]);
    assert_eq!(
        (r.status, r.json()["error"]["code"].clone()),
        (400, json!("invalid_request"))
    );
    // Garbage, truncated, nested, oversized numbers, a batch with a failing command: each its
    // ledger error, nothing applied.
    let deep = format!("{{\"op\":{}{}}}", "[".repeat(10_000), "]".repeat(10_000));
    let batch = json!({"op":"batch","at":"2025-08-01T00:00:00Z","commands":[
        {"op":"credit","wallet":JW_WALLET,"amount":"1"},
        {"op":"redeem","wallet":JW_WALLET,"amount":"1000"}]})
    .to_string();
    for body in [
        "garbage",
        "{\"op\":\"credit\",",
        "{}",
        "null",
        "\u{0}",
        &deep,
        &command.replace("\"1\"", "1e400"),
        &command.replace("\"1\"", &"9".repeat(100)),
        &command.replace("credit", "credit\u{0}"),
        &batch,
    ] {
        let r = post(Some("application/json"), body.as_bytes());
        assert!(
            [400, 422].contains(&r.status),
            "{}: {} {}",
            &body[..body.len().min(60)],
            r.status,
            r.body
        );
        assert_eq!(r.json()["ok"], false, "{}", r.body);
    }
    // A declared length over the limit: 413 before a byte of body is read.
    let head = format!(
        "POST /v1/commands HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        MAX_LINE_BYTES + 1
    );
    let answer = raw(&s.addr, head.as_bytes(), Duration::from_secs(5));
    assert_eq!(raw_status(&answer), Some(413), "{answer}");
    assert!(raw_body(&answer).contains("payload_too_large"), "{answer}");
    // A chunked body that grows past the limit: 413 once it does.
    let mut chunked = format!(
        "POST /v1/commands HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\n\
         Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    .into_bytes();
    let chunk = vec![b' '; 64 * 1024];
    for _ in 0..(MAX_LINE_BYTES / chunk.len() + 2) {
        chunked.extend(format!("{:x}\r\n", chunk.len()).as_bytes());
        chunked.extend(&chunk);
        chunked.extend(b"\r\n");
    }
    let answer = raw(&s.addr, &chunked, Duration::from_secs(5));
    assert_eq!(
        raw_status(&answer),
        Some(413),
        "{}",
        &answer[..answer.len().min(300)]
    );
    // Exactly at the limit is read, and refused by the ledger as a command, not as a size.
    let mut at_limit = command.clone().into_bytes();
    at_limit.resize(MAX_LINE_BYTES, b' ');
    let r = post(Some("application/json"), &at_limit);
    assert_eq!(r.status, 200, "{}", r.body);
    // Cashfree's oversized and undeclared bodies, in its shape.
    let cf = |ct: &str, body: &[u8]| {
        send(
            &agent(),
            "POST",
            &s.url("/cashfree/ppi/wallet/details"),
            &[
                ("Content-Type", ct),
                ("x-api-version", "2025-11-01"),
                ("x-client-id", "CF_CLIENT_ID"),
                ("x-client-secret", "CF_CLIENT_SECRET"),
            ],
            Some(body),
        )
        .unwrap()
    };
    let r = cf("text/plain", b"{}");
    assert_eq!(r.status, 415);
    assert_eq!(r.json()["type"], "invalid_request_error");
    let head = format!(
        "POST /cashfree/ppi/wallet/details HTTP/1.1\r\nHost: x\r\n\
         x-api-version: 2025-11-01\r\nx-client-id: CF_CLIENT_ID\r\n\
         x-client-secret: CF_CLIENT_SECRET\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n",
        MAX_LINE_BYTES * 4
    );
    let answer = raw(&s.addr, head.as_bytes(), Duration::from_secs(5));
    assert_eq!(raw_status(&answer), Some(413), "{answer}");
    assert!(
        raw_body(&answer).contains("invalid_request_error"),
        "{answer}"
    );
    let r = cf("application/json", &[0xff; 10]);
    assert_eq!(r.status, 400);
    // Only the one command at the limit was applied.
    assert_eq!(events(&s), before + 1);
    assert_no_panic(&s);
}

#[test]
fn slow_clients_are_cut_off() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &config(""));
    // The body never finishes: 408 after the body read timeout (1 s here).
    let started = Instant::now();
    let head = format!(
        "POST /v1/commands HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {API_TOKEN}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"op\":"
    );
    let answer = raw(&s.addr, head.as_bytes(), Duration::from_secs(10));
    assert_eq!(raw_status(&answer), Some(408), "{answer}");
    assert!(raw_body(&answer).contains("request_timeout"), "{answer}");
    assert!(started.elapsed() < Duration::from_secs(5));
    // The head never finishes: the connection is closed after the header read timeout.
    let started = Instant::now();
    let answer = raw(
        &s.addr,
        b"GET /healthz HTTP/1.1\r\nHost: x\r\n",
        Duration::from_secs(10),
    );
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(5),
        "closed after {waited:?}: {answer:?}"
    );
    assert!(raw_status(&answer).is_none_or(|c| c == 408), "{answer}");
    // Meanwhile everyone else is served.
    assert_eq!(http("GET", &s.url("/healthz"), &[], None).status, 200);
    assert_no_panic(&s);
}

#[test]
fn sigterm_answers_requests_in_flight_then_exits() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Server::start(dir.path(), &config(""));
    apply_all(&s, &juicyway_commands());
    let before = events(&s);
    // An idle keep-alive connection must not hold the shutdown up.
    let idle = agent();
    assert_eq!(
        send(&idle, "GET", &s.url("/healthz"), &[], None)
            .unwrap()
            .status,
        200
    );
    // A request half sent when SIGTERM arrives.
    let body = json!({"op":"credit","at":"2025-08-01T00:00:00Z","wallet":JW_WALLET,
        "amount":"1","key":"in-flight"})
    .to_string();
    let (first, rest) = body.split_at(body.len() / 2);
    let mut conn = std::net::TcpStream::connect(&s.addr).unwrap();
    use std::io::{Read, Write};
    write!(
        conn,
        "POST /v1/commands HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {API_TOKEN}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{first}",
        body.len()
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(100));
    s.sigterm();
    // The listener closes: no new connection is accepted.
    let deadline = Instant::now() + Duration::from_secs(3);
    while std::net::TcpStream::connect(&s.addr).is_ok() {
        assert!(Instant::now() < deadline, "still accepting after SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    }
    // The request in flight is answered, after its durable commit.
    conn.write_all(rest.as_bytes()).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut answer = String::new();
    conn.read_to_string(&mut answer).unwrap();
    assert_eq!(raw_status(&answer), Some(200), "{answer}");
    assert!(raw_body(&answer).contains(r#""ok":true"#), "{answer}");
    let status = s.wait(Duration::from_secs(5));
    assert!(status.success(), "{status:?}");
    assert_no_panic(&s);
    // It is there after a restart.
    drop(s);
    let s = Server::start_with(dir.path(), &dir.path().join("walletd.toml"));
    assert_eq!(events(&s), before + 1);
}
