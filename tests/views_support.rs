//! Helpers shared by the `views_*` tests (included with `#[path]`; as a target of its own it
//! holds no tests).
#![allow(dead_code)]

use chrono::{DateTime, Utc};
use serde_json::Value;
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
