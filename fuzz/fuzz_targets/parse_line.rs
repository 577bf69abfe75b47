//! `json::parse_line` on arbitrary input: a result for every line, never a panic. A failure is
//! one of the codes the parser owns (SPEC §7 steps 1–2).
#![no_main]

use libfuzzer_sys::fuzz_target;
use wallet_ledger::ErrorCode;

fuzz_target!(|data: &[u8]| {
    let line = String::from_utf8_lossy(data);
    if let Err((_, e)) = wallet_ledger::json::parse_line(&line) {
        assert!(
            matches!(
                e.code,
                ErrorCode::InvalidCommand | ErrorCode::InvalidAmount | ErrorCode::InvalidTime
            ),
            "parse_line failed with {e}"
        );
    }
});
