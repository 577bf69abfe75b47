//! `Ledger::execute_line` on arbitrary lines against a ledger with programs, a holder and
//! wallets with money in them. Input: lines separated by `\n`, executed in order on a fresh
//! in-memory ledger. Every line gets a result (never a panic, never a `storage` error), and the
//! ledger stays sound: `verify` passes after the lines.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wallet_ledger::{ErrorCode, FixedClock, Ledger};

const SETUP: &[&str] = &[
    r#"{"op":"define_program","at":"2026-01-01T00:00:00Z","program":1,"name":"Cash","unit":"USD","pockets":[{"pocket":"main","name":"Main","kind":"CASH","asset":"USD","scale":2},{"pocket":"pts","name":"Points","kind":"POINTS","asset":"PTS","scale":0}]}"#,
    r#"{"op":"register_holder","at":"2026-01-01T00:00:00Z","holder":"37b08803-c1af-4e10-849f-530264bac7f8","identity":"u1"}"#,
    r#"{"op":"open_wallet","at":"2026-01-01T00:00:00Z","wallet":"550e8400-e29b-41d4-a716-446655440000","holder":"37b08803-c1af-4e10-849f-530264bac7f8","program":1}"#,
    r#"{"op":"open_wallet","at":"2026-01-01T00:00:00Z","wallet":"550e8400-e29b-41d4-a716-446655440001","holder":"37b08803-c1af-4e10-849f-530264bac7f8","program":1}"#,
    r#"{"op":"credit","at":"2026-01-01T00:00:00Z","wallet":"550e8400-e29b-41d4-a716-446655440000","amount":"100","lot":"A","expires_at":"2026-03-01T00:00:00Z"}"#,
    r#"{"op":"credit","at":"2026-01-01T00:00:00Z","wallet":"550e8400-e29b-41d4-a716-446655440000","amount":"50","lot":"B"}"#,
    r#"{"op":"hold","at":"2026-01-02T00:00:00Z","wallet":"550e8400-e29b-41d4-a716-446655440000","amount":"20","hold":"H","expires_at":"2026-01-05T00:00:00Z"}"#,
    r#"{"op":"redeem","at":"2026-01-02T00:00:00Z","wallet":"550e8400-e29b-41d4-a716-446655440000","amount":"10","redemption":"R"}"#,
];

fuzz_target!(|data: &[u8]| {
    let clock = FixedClock("2026-02-01T00:00:00Z".parse().unwrap());
    let ledger = Ledger::in_memory(Box::new(clock)).unwrap();
    for line in SETUP {
        ledger.execute_line(line).unwrap();
    }
    let text = String::from_utf8_lossy(data);
    for line in text.split('\n').take(16) {
        if let Err(e) = ledger.execute_line(line) {
            assert_ne!(e.code, ErrorCode::Storage, "a line caused a storage error: {e}");
        }
    }
    let report = ledger.verify().unwrap();
    assert!(report.ok(), "{:?}", report.problems);
});
