//! SPEC §7 error codes, their reporting order, and the time rules of §4.
//!
//! 1. One test per error code of [`ErrorCode::ALL`]: the code is reported, the message names the
//!    offending value, and the refused command changed nothing (same `verify` event count, same
//!    figures). `every_code_has_a_test` fails when a code is added without a scenario here.
//! 2. One test per overlap of §7's order: two or more errors apply at once and the earlier step
//!    wins.
//! 3. The clock rules of §4.1 at their boundaries, the fate of value that comes back to expired
//!    lots (§4.4), what a frozen wallet accepts (§3), and the batch `index` of a failing command.
//!
//! Commands are written as JSON lines (SPEC §9) so that the parser's share of the order is tested
//! too; `$W`, `$W2`, `$H` stand for the ids of the base ledger.

use rust_decimal::Decimal;
use std::collections::BTreeMap;
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use wallet_ledger::command::{Command, Credit, Request};
use wallet_ledger::{CommandError, ErrorCode, FixedClock, Ledger, Receipt};

const W: &str = "550e8400-e29b-41d4-a716-446655440000";
const W2: &str = "550e8400-e29b-41d4-a716-446655440001";
const H: &str = "37b08803-c1af-4e10-849f-530264bac7f8";
const UNKNOWN: &str = "9f0c1a2b-3c4d-4e5f-8a9b-0c1d2e3f4a5b";
/// 2^96 − 1: the largest amount in units (`limits::MAX_UNITS`).
const MAX: &str = "79228162514264337593543950335";

fn fill(s: &str) -> String {
    s.replace("$W2", W2)
        .replace("$W", W)
        .replace("$H", H)
        .replace("$U", UNKNOWN)
}

/// The clock of the base ledger: lines without `at` take effect then, after every explicit time.
const CLOCK: &str = "2026-12-31T00:00:00Z";

/// Program 1 (`earliest_expiry`): pockets `main` (scale 2) and `pts` (scale 0). Holder `$H`
/// (identity `krishna123`, email `alice@example.com`), wallet `$W` (external id `ext-1`).
/// Program 2 (`earliest_issuance`): pocket `cash` (scale 3); wallet `$W2`. All on 2026-01-01.
fn base() -> Ledger {
    let l = Ledger::in_memory(Box::new(FixedClock(CLOCK.parse().unwrap()))).unwrap();
    for s in [
        r#"{"op":"define_program","at":"2026-01-01T00:00:00Z","program":1,"name":"Coins","unit":"Coins","pockets":[{"pocket":"main","name":"Main","kind":"POINTS","asset":"PTS","scale":2},{"pocket":"pts","name":"Points","kind":"POINTS","asset":"P","scale":0}]}"#,
        r#"{"op":"define_program","at":"2026-01-01T00:00:00Z","program":2,"name":"Cash","unit":"USD","order":"earliest_issuance","pockets":[{"pocket":"cash","name":"Cash","kind":"CASH","asset":"USD","scale":3}]}"#,
        r#"{"op":"register_holder","at":"2026-01-01T00:00:00Z","holder":"$H","identity":"krishna123","email":"alice@example.com"}"#,
        r#"{"op":"open_wallet","at":"2026-01-01T00:00:00Z","wallet":"$W","holder":"$H","program":1,"external_id":"ext-1"}"#,
        r#"{"op":"open_wallet","at":"2026-01-01T00:00:00Z","wallet":"$W2","holder":"$H","program":2}"#,
    ] {
        ok(&l, s);
    }
    l
}

fn ok(l: &Ledger, line: &str) -> Receipt {
    let line = fill(line);
    l.execute_line(&line)
        .unwrap_or_else(|e| panic!("{line}\nwas refused: {e}"))
}

/// Everything a refused command must leave as it was: the log's length and the figures,
/// status and history of both wallets.
fn state(l: &Ledger) -> (u64, Vec<String>) {
    let report = l.verify().unwrap();
    assert!(report.ok(), "{:?}", report.problems);
    let mut v = Vec::new();
    for w in [W, W2] {
        let w = w.parse().unwrap();
        let snap = l.snapshot(w, Some("2027-01-01T00:00:00Z".parse().unwrap()));
        v.push(format!("{snap:?}"));
        v.push(format!("{:?}", l.history(w)));
    }
    (report.events, v)
}

/// Runs `line`, which must fail with `code` and a message containing every needle, and change
/// nothing.
fn fails(l: &Ledger, line: &str, code: ErrorCode, needles: &[&str]) -> CommandError {
    let line = fill(line);
    let before = state(l);
    let e = match l.execute_line(&line) {
        Ok(r) => panic!("{line}\nsucceeded: {r:?}\nexpected {code}"),
        Err(e) => e,
    };
    assert_eq!(e.code, code, "{line}\n{e}");
    for n in needles {
        let n = fill(n);
        assert!(
            e.message.contains(&n),
            "{code}: the message {:?} does not name {n:?}",
            e.message
        );
    }
    assert_eq!(
        state(l),
        before,
        "{line} was refused but changed the ledger"
    );
    e
}

/// Figures of a pocket as `show` renders them.
fn figures(l: &Ledger, wallet: &str, pocket: &str, at: &str) -> BTreeMap<String, String> {
    let snap = l
        .snapshot(wallet.parse().unwrap(), Some(at.parse().unwrap()))
        .unwrap();
    let v = wallet_ledger::render::snapshot(&snap);
    let p = v["pockets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["pocket"] == pocket)
        .unwrap_or_else(|| panic!("no pocket {pocket}"));
    p.as_object()
        .unwrap()
        .iter()
        .filter(|(k, _)| !matches!(k.as_str(), "pocket" | "asset"))
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
        .collect()
}

fn assert_figures(l: &Ledger, wallet: &str, pocket: &str, at: &str, want: &[(&str, &str)]) {
    let f = figures(l, wallet, pocket, at);
    for (k, v) in want {
        assert_eq!(f[*k], *v, "{k} of {pocket} at {at}: {f:?}");
    }
}

// ---- 1. every code ---------------------------------------------------------------------------

/// The scenario that provokes `code`: setup lines, the failing line, what its message must name.
fn scenario(code: ErrorCode) -> (Vec<&'static str>, &'static str, Vec<&'static str>) {
    use ErrorCode as E;
    let credit_l1 =
        r#"{"op":"credit","at":"2026-01-02T00:00:00Z","wallet":"$W","amount":"100","lot":"L1"}"#;
    let redeem_r1 = r#"{"op":"redeem","at":"2026-01-03T00:00:00Z","wallet":"$W","amount":"30","redemption":"R1"}"#;
    let hold_h1 =
        r#"{"op":"hold","at":"2026-01-03T00:00:00Z","wallet":"$W","amount":"60","hold":"H1"}"#;
    match code {
        E::InvalidCommand => (
            vec![],
            r#"{"op":"levitate","wallet":"$W"}"#,
            vec!["levitate"],
        ),
        E::InvalidAmount => (
            vec![],
            r#"{"op":"credit","wallet":"$W","amount":"-12.5"}"#,
            vec!["-12.5"],
        ),
        E::ScaleExceeded => (
            vec![],
            r#"{"op":"credit","wallet":"$W","amount":"12.345"}"#,
            vec!["12.345"],
        ),
        E::AmountOverflow => (
            vec![
                r#"{"op":"credit","at":"2026-01-02T00:00:00Z","wallet":"$W","pocket":"pts","amount":"79228162514264337593543950335"}"#,
            ],
            r#"{"op":"credit","at":"2026-01-02T00:00:00Z","wallet":"$W","pocket":"pts","amount":"8888"}"#,
            vec!["8888", "pts"],
        ),
        E::InvalidTime => (
            vec![],
            r#"{"op":"credit","at":"2026-01-05T00:00:00Z","wallet":"$W","amount":"1","expires_at":"2026-01-04T00:00:00Z"}"#,
            vec!["2026-01-04T00:00:00Z"],
        ),
        E::Backdated => (
            vec![credit_l1],
            r#"{"op":"redeem","at":"2026-01-01T12:00:00Z","wallet":"$W","amount":"1"}"#,
            vec!["2026-01-01T12:00:00Z", "$W"],
        ),
        E::UnknownProgram => (
            vec![],
            r#"{"op":"open_wallet","wallet":"$U","holder":"$H","program":4242}"#,
            vec!["4242"],
        ),
        E::DuplicateProgram => (
            vec![],
            r#"{"op":"define_program","program":2,"name":"Again","unit":"U","pockets":[{"pocket":"x","name":"X","kind":"K","asset":"A","scale":0}]}"#,
            vec!["program 2"],
        ),
        E::UnknownHolder => (
            vec![],
            r#"{"op":"open_wallet","wallet":"$U","holder":"$U","program":1}"#,
            vec!["$U"],
        ),
        E::DuplicateHolder => (
            vec![],
            r#"{"op":"register_holder","holder":"$H"}"#,
            vec!["$H"],
        ),
        E::IdentityTaken => (
            vec![],
            r#"{"op":"register_holder","holder":"$U","identity":"krishna123"}"#,
            vec!["krishna123"],
        ),
        E::UnknownWallet => (
            vec![],
            r#"{"op":"credit","wallet":"$U","amount":"1"}"#,
            vec!["$U"],
        ),
        E::DuplicateWallet => (
            vec![],
            r#"{"op":"open_wallet","wallet":"$W","holder":"$H","program":1}"#,
            vec!["$W"],
        ),
        E::ExternalIdTaken => (
            vec![],
            r#"{"op":"open_wallet","wallet":"$U","holder":"$H","program":1,"external_id":"ext-1"}"#,
            vec!["ext-1"],
        ),
        E::UnknownPocket => (
            vec![],
            r#"{"op":"credit","wallet":"$W","pocket":"gold","amount":"1"}"#,
            vec!["gold"],
        ),
        E::UnknownLot => (
            vec![credit_l1],
            r#"{"op":"reverse_credit","at":"2026-01-02T00:00:00Z","wallet":"$W","lot":"ghost-lot"}"#,
            vec!["ghost-lot"],
        ),
        E::DuplicateLot => (
            vec![credit_l1],
            r#"{"op":"credit","at":"2026-01-02T00:00:00Z","wallet":"$W","amount":"5","lot":"L1"}"#,
            vec!["L1"],
        ),
        E::LotNotPromised => (
            vec![credit_l1],
            r#"{"op":"activate","at":"2026-01-02T00:00:00Z","wallet":"$W","lot":"L1"}"#,
            vec!["L1"],
        ),
        E::UnknownRedemption => (
            vec![credit_l1],
            r#"{"op":"refund","at":"2026-01-02T00:00:00Z","wallet":"$W","redemption":"ghost-red"}"#,
            vec!["ghost-red"],
        ),
        E::DuplicateRedemption => (
            vec![credit_l1, redeem_r1],
            r#"{"op":"redeem","at":"2026-01-03T00:00:00Z","wallet":"$W","amount":"1","redemption":"R1"}"#,
            vec!["R1"],
        ),
        E::RefundExceedsRedemption => (
            vec![credit_l1, redeem_r1],
            r#"{"op":"refund","at":"2026-01-03T00:00:00Z","wallet":"$W","redemption":"R1","amount":"30.01"}"#,
            vec!["30.01", "R1"],
        ),
        E::UnknownHold => (
            vec![credit_l1],
            r#"{"op":"capture","at":"2026-01-02T00:00:00Z","wallet":"$W","hold":"ghost-hold"}"#,
            vec!["ghost-hold"],
        ),
        E::DuplicateHold => (
            vec![credit_l1, hold_h1],
            r#"{"op":"hold","at":"2026-01-03T00:00:00Z","wallet":"$W","amount":"1","hold":"H1"}"#,
            vec!["H1"],
        ),
        E::HoldClosed => (
            vec![
                credit_l1,
                hold_h1,
                r#"{"op":"release","at":"2026-01-03T00:00:00Z","wallet":"$W","hold":"H1"}"#,
            ],
            r#"{"op":"capture","at":"2026-01-03T00:00:00Z","wallet":"$W","hold":"H1"}"#,
            vec!["H1"],
        ),
        E::CaptureExceedsHold => (
            vec![credit_l1, hold_h1],
            r#"{"op":"capture","at":"2026-01-03T00:00:00Z","wallet":"$W","hold":"H1","amount":"60.5"}"#,
            vec!["60.5", "H1"],
        ),
        E::InsufficientFunds => (
            vec![credit_l1],
            r#"{"op":"redeem","at":"2026-01-02T00:00:00Z","wallet":"$W","amount":"100.01"}"#,
            vec!["100.01", "main"],
        ),
        E::WalletFrozen => (
            vec![r#"{"op":"freeze","at":"2026-01-02T00:00:00Z","wallet":"$W"}"#],
            r#"{"op":"credit","at":"2026-01-02T00:00:00Z","wallet":"$W","amount":"1"}"#,
            vec!["$W"],
        ),
        E::WalletClosed => (
            vec![r#"{"op":"close","at":"2026-01-02T00:00:00Z","wallet":"$W"}"#],
            r#"{"op":"link_payment_method","at":"2026-01-02T00:00:00Z","wallet":"$W","method":{"account_name":"A","account_number":"0123456789","account_type":"savings","bank_code":"058","bank_name":"B"}}"#,
            vec!["$W"],
        ),
        E::WalletNotEmpty => (
            vec![credit_l1],
            r#"{"op":"close","at":"2026-01-02T00:00:00Z","wallet":"$W"}"#,
            vec!["$W", "100"],
        ),
        E::InvalidTransition => (vec![], r#"{"op":"unfreeze","wallet":"$W"}"#, vec!["$W"]),
        E::DuplicateCard => (
            vec![r#"{"op":"issue_card","wallet":"$W2","card":"card-777"}"#],
            r#"{"op":"issue_card","wallet":"$W","card":"card-777"}"#,
            vec!["card-777"],
        ),
        E::IdempotencyConflict => (
            vec![
                r#"{"op":"credit","at":"2026-01-02T00:00:00Z","wallet":"$W","amount":"100","key":"order-77"}"#,
            ],
            r#"{"op":"credit","at":"2026-01-02T00:00:00Z","wallet":"$W","amount":"101","key":"order-77"}"#,
            vec!["order-77"],
        ),
        other => panic!("no scenario for {other}: add one to tests/errors.rs"),
    }
}

fn check_code(code: ErrorCode) {
    let (setup, line, needles) = scenario(code);
    let l = base();
    for s in setup {
        ok(&l, s);
    }
    fails(&l, line, code, &needles);
}

macro_rules! code_tests {
    ($($name:ident => $code:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                check_code(ErrorCode::$code);
            }
        )*
        const COVERED: &[ErrorCode] = &[$(ErrorCode::$code,)* ErrorCode::Storage];
    };
}

code_tests! {
    code_invalid_command => InvalidCommand,
    code_invalid_amount => InvalidAmount,
    code_scale_exceeded => ScaleExceeded,
    code_amount_overflow => AmountOverflow,
    code_invalid_time => InvalidTime,
    code_backdated => Backdated,
    code_unknown_program => UnknownProgram,
    code_duplicate_program => DuplicateProgram,
    code_unknown_holder => UnknownHolder,
    code_duplicate_holder => DuplicateHolder,
    code_identity_taken => IdentityTaken,
    code_unknown_wallet => UnknownWallet,
    code_duplicate_wallet => DuplicateWallet,
    code_external_id_taken => ExternalIdTaken,
    code_unknown_pocket => UnknownPocket,
    code_unknown_lot => UnknownLot,
    code_duplicate_lot => DuplicateLot,
    code_lot_not_promised => LotNotPromised,
    code_unknown_redemption => UnknownRedemption,
    code_duplicate_redemption => DuplicateRedemption,
    code_refund_exceeds_redemption => RefundExceedsRedemption,
    code_unknown_hold => UnknownHold,
    code_duplicate_hold => DuplicateHold,
    code_hold_closed => HoldClosed,
    code_capture_exceeds_hold => CaptureExceedsHold,
    code_insufficient_funds => InsufficientFunds,
    code_wallet_frozen => WalletFrozen,
    code_wallet_closed => WalletClosed,
    code_wallet_not_empty => WalletNotEmpty,
    code_invalid_transition => InvalidTransition,
    code_duplicate_card => DuplicateCard,
    code_idempotency_conflict => IdempotencyConflict,
}

#[test]
fn every_code_has_a_test() {
    for code in ErrorCode::ALL {
        assert!(COVERED.contains(&code), "no test for {code}");
    }
    assert_eq!(COVERED.len(), ErrorCode::ALL.len());
    // The wire names are snake_case and distinct.
    let names: std::collections::BTreeSet<&str> =
        ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
    assert_eq!(names.len(), ErrorCode::ALL.len());
    for n in names {
        assert!(
            n.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
            "{n}"
        );
    }
}

/// More messages naming their value, for codes with several causes.
#[test]
fn every_cause_of_a_code_names_its_value() {
    let l = base();
    ok(
        &l,
        r#"{"op":"credit","at":"2026-01-02T00:00:00Z","wallet":"$W","amount":"100","lot":"L1","expires_at":"2026-02-01T00:00:00Z"}"#,
    );
    use ErrorCode as E;
    for (line, code, needle) in [
        (
            r#"{"op":"credit","wallet":"$W"}"#,
            E::InvalidCommand,
            "amount",
        ),
        (
            r#"{"op":"credit","wallet":"not-a-uuid","amount":"1"}"#,
            E::InvalidCommand,
            "not-a-uuid",
        ),
        (
            r#"{"op":"credit","wallet":"$W","amount":"1","colour":"red"}"#,
            E::InvalidCommand,
            "colour",
        ),
        (
            r#"{"op":"credit","wallet":"$W","amount":"1","lot":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}"#,
            E::InvalidCommand,
            "lot",
        ),
        (
            r#"{"op":"batch","commands":[{"op":"sweep","key":"inner-key"}]}"#,
            E::InvalidCommand,
            "inner-key",
        ),
        (
            r#"{"op":"define_program","program":9,"name":"n","unit":"u","pockets":[{"pocket":"p","name":"P","kind":"K","asset":"A","scale":19}]}"#,
            E::InvalidCommand,
            "19",
        ),
        (
            r#"{"op":"define_program","program":9,"name":"n","unit":"u","pockets":[{"pocket":"dup","name":"P","kind":"K","asset":"A","scale":1},{"pocket":"dup","name":"Q","kind":"K","asset":"A","scale":1}]}"#,
            E::InvalidCommand,
            "dup",
        ),
        (
            r#"{"op":"credit","wallet":"$W","amount":"1e5"}"#,
            E::InvalidAmount,
            "1e5",
        ),
        (
            r#"{"op":"credit","wallet":"$W","amount":"0.00"}"#,
            E::InvalidAmount,
            "0.00",
        ),
        (
            r#"{"op":"redeem","wallet":"$W","amount":" 7"}"#,
            E::InvalidAmount,
            " 7",
        ),
        (
            r#"{"op":"refund","wallet":"$W","redemption":"R","amount":"0"}"#,
            E::InvalidAmount,
            "0",
        ),
        (
            r#"{"op":"redeem","wallet":"$W","pocket":"pts","amount":"0.5"}"#,
            E::ScaleExceeded,
            "0.5",
        ),
        (
            r#"{"op":"credit","wallet":"$W","amount":"79228162514264337593543950335"}"#,
            E::AmountOverflow,
            MAX,
        ),
        (
            r#"{"op":"credit","at":"yesterday","wallet":"$W","amount":"1"}"#,
            E::InvalidTime,
            "yesterday",
        ),
        (
            r#"{"op":"credit","at":"2026-01-03T00:00:00","wallet":"$W","amount":"1"}"#,
            E::InvalidTime,
            "2026-01-03T00:00:00",
        ),
        (
            r#"{"op":"credit","at":"2026-01-03T00:00:00Z","wallet":"$W","amount":"1","expires_at":"3000-01-01T00:00:00Z"}"#,
            E::InvalidTime,
            "3000-01-01T00:00:00Z",
        ),
        (
            r#"{"op":"credit","at":"2026-01-03T00:00:00Z","wallet":"$W","amount":"1","activates_at":"2026-01-10T00:00:00Z","expires_at":"2026-01-09T00:00:00Z"}"#,
            E::InvalidTime,
            "2026-01-09T00:00:00Z",
        ),
        (
            r#"{"op":"hold","at":"2026-01-03T00:00:00Z","wallet":"$W","amount":"1","expires_at":"2026-01-03T00:00:00Z"}"#,
            E::InvalidTime,
            "2026-01-03T00:00:00Z",
        ),
        (
            r#"{"op":"register_holder","holder":"$U","email":"  ALICE@example.COM "}"#,
            E::IdentityTaken,
            "ALICE@example.COM",
        ),
        (
            r#"{"op":"reverse_credit","at":"2026-01-03T00:00:00Z","wallet":"$W","lot":"L1","amount":"100.5"}"#,
            E::InsufficientFunds,
            "100.5",
        ),
        (
            r#"{"op":"hold","at":"2026-01-03T00:00:00Z","wallet":"$W","amount":"100.5"}"#,
            E::InsufficientFunds,
            "100.5",
        ),
        (
            r#"{"op":"expire","at":"2026-01-03T00:00:00Z","wallet":"$W","amount":"100.5"}"#,
            E::InsufficientFunds,
            "100.5",
        ),
    ] {
        fails(&l, line, code, &[needle]);
    }
}

// ---- storage ---------------------------------------------------------------------------------

/// An in-memory disk that starts refusing writes when told to. (The reliability issue's
/// `tests/faults.rs` fails every single write, resize and sync in turn; this is the §7 code.)
#[derive(Debug)]
struct BreakableDisk {
    inner: redb::backends::InMemoryBackend,
    broken: Arc<AtomicBool>,
}

impl BreakableDisk {
    fn check(&self) -> io::Result<()> {
        if self.broken.load(Ordering::SeqCst) {
            Err(io::Error::other("injected fault: the disk is full"))
        } else {
            Ok(())
        }
    }
}

impl redb::StorageBackend for BreakableDisk {
    fn len(&self) -> io::Result<u64> {
        self.inner.len()
    }
    fn read(&self, offset: u64, out: &mut [u8]) -> io::Result<()> {
        self.inner.read(offset, out)
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.check()?;
        self.inner.set_len(len)
    }
    fn sync_data(&self) -> io::Result<()> {
        self.check()?;
        self.inner.sync_data()
    }
    fn write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.check()?;
        self.inner.write(offset, data)
    }
}

#[test]
fn code_storage_says_what_failed() {
    let broken = Arc::new(AtomicBool::new(false));
    let disk = BreakableDisk {
        inner: redb::backends::InMemoryBackend::new(),
        broken: broken.clone(),
    };
    let l = Ledger::open_with_backend(
        disk,
        Box::new(FixedClock("2026-01-01T00:00:00Z".parse().unwrap())),
    )
    .unwrap();
    ok(
        &l,
        r#"{"op":"define_program","program":1,"name":"Coins","unit":"Coins","pockets":[{"pocket":"main","name":"Main","kind":"POINTS","asset":"PTS","scale":2}]}"#,
    );
    ok(&l, r#"{"op":"register_holder","holder":"$H"}"#);
    ok(
        &l,
        r#"{"op":"open_wallet","wallet":"$W","holder":"$H","program":1}"#,
    );
    broken.store(true, Ordering::SeqCst);
    let e = l
        .execute_line(&fill(r#"{"op":"credit","wallet":"$W","amount":"5"}"#))
        .expect_err("a commit on a failing disk");
    assert_eq!(e.code, ErrorCode::Storage, "{e}");
    assert!(e.message.contains("injected fault"), "{}", e.message);
}

#[test]
fn a_ledger_file_held_by_another_handle_does_not_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wallets.redb");
    let first = Ledger::open(&path).unwrap();
    let second = Ledger::open(&path);
    assert!(
        matches!(second, Err(wallet_ledger::OpenError::AlreadyOpen)),
        "{:?}",
        second.map(|_| ())
    );
    let e = wallet_ledger::Error::from(Ledger::open(&path).map(|_| ()).unwrap_err());
    assert_eq!(e.code(), ErrorCode::Storage);
    drop(first);
    Ledger::open(&path).expect("free again once the first handle is gone");
}

// ---- 2. overlaps: the earlier step of §7 wins -------------------------------------------------

#[test]
fn step_0_idempotency_comes_before_everything() {
    let l = base();
    let line = r#"{"op":"credit","at":"2026-01-02T00:00:00Z","wallet":"$W","amount":"100","lot":"L1","key":"k1"}"#;
    let first = ok(&l, line);
    assert!(!first.replayed);
    // The wallet is now frozen: the same credit would be wallet_frozen, and lot L1 exists, but the
    // key answers first with the original receipt.
    ok(
        &l,
        r#"{"op":"freeze","at":"2026-01-03T00:00:00Z","wallet":"$W"}"#,
    );
    let before = state(&l);
    let again = ok(&l, line);
    assert!(again.replayed);
    assert_eq!(
        Receipt {
            replayed: false,
            ..again
        },
        first
    );
    assert_eq!(state(&l), before, "a replay appended something");
    // The same key on a malformed line, an invalid amount, a bad time, an unknown wallet: all
    // idempotency_conflict.
    for other in [
        r#"{"op":"credit","key":"k1","wallet":"nope"}"#,
        r#"{"op":"credit","key":"k1","wallet":"$W","amount":"-1"}"#,
        r#"{"op":"credit","key":"k1","at":"soon","wallet":"$W","amount":"1"}"#,
        r#"{"op":"credit","key":"k1","wallet":"$U","amount":"1"}"#,
        r#"{"op":"credit","at":"2026-01-02T00:00:00Z","wallet":"$W","amount":"100","lot":"L2","key":"k1"}"#,
        r#"{"op":"credit","at":"2026-01-02T00:00:01Z","wallet":"$W","amount":"100","lot":"L1","key":"k1"}"#,
    ] {
        fails(&l, other, ErrorCode::IdempotencyConflict, &["k1"]);
    }
    // The same amount written differently is the same command.
    let same = r#"{"op":"credit","at":"2026-01-02T01:00:00+01:00","wallet":"$W","amount":100.00,"lot":"L1","key":"k1"}"#;
    assert!(ok(&l, same).replayed);
}

#[test]
fn step_0_a_failed_command_records_no_key() {
    let l = base();
    fails(
        &l,
        r#"{"op":"redeem","at":"2026-01-02T00:00:00Z","wallet":"$W","amount":"5","key":"k2"}"#,
        ErrorCode::InsufficientFunds,
        &["5"],
    );
    // The key is free: another command may use it, and then it is taken.
    let r = ok(
        &l,
        r#"{"op":"credit","at":"2026-01-02T00:00:00Z","wallet":"$W","amount":"5","key":"k2"}"#,
    );
    assert!(!r.replayed);
    fails(
        &l,
        r#"{"op":"redeem","at":"2026-01-02T00:00:00Z","wallet":"$W","amount":"5","key":"k2"}"#,
        ErrorCode::IdempotencyConflict,
        &["k2"],
    );
}

#[test]
fn step_0_an_at_left_to_the_clock_is_not_compared() {
    struct Ticking(std::sync::atomic::AtomicI64);
    impl wallet_ledger::Clock for Ticking {
        fn now(&self) -> chrono::DateTime<chrono::Utc> {
            let s = self.0.fetch_add(3600, Ordering::SeqCst);
            chrono::DateTime::from_timestamp(s, 0).unwrap()
        }
    }
    let start = "2026-01-01T00:00:00Z"
        .parse::<chrono::DateTime<chrono::Utc>>()
        .unwrap()
        .timestamp();
    let l = Ledger::in_memory(Box::new(Ticking(start.into()))).unwrap();
    ok(
        &l,
        r#"{"op":"define_program","program":1,"name":"C","unit":"C","pockets":[{"pocket":"main","name":"M","kind":"K","asset":"A","scale":2}]}"#,
    );
    ok(&l, r#"{"op":"register_holder","holder":"$H"}"#);
    ok(
        &l,
        r#"{"op":"open_wallet","wallet":"$W","holder":"$H","program":1}"#,
    );
    let line = r#"{"op":"credit","wallet":"$W","amount":"7","key":"clock-key"}"#;
    let first = ok(&l, line);
    let again = ok(&l, line);
    assert!(again.replayed, "{again:?}");
    assert_eq!(again.at, first.at, "the replay is the original receipt");
}

#[test]
fn step_1_invalid_command_beats_invalid_amount_beats_invalid_time() {
    let l = base();
    use ErrorCode as E;
    fails(
        &l,
        r#"{"op":"redeem","at":"whenever","wallet":"nope","amount":"abc"}"#,
        E::InvalidCommand,
        &["nope"],
    );
    fails(
        &l,
        r#"{"op":"redeem","at":"whenever","amount":"abc"}"#,
        E::InvalidCommand,
        &["wallet"],
    );
    fails(
        &l,
        r#"{"op":"credit","at":"whenever","wallet":"$W","amount":"abc","lot":""}"#,
        E::InvalidCommand,
        &["lot"],
    );
    fails(
        &l,
        r#"{"op":"redeem","at":"whenever","wallet":"$W","amount":"abc"}"#,
        E::InvalidAmount,
        &["abc"],
    );
    fails(
        &l,
        r#"{"op":"credit","at":"2026-01-05T00:00:00Z","wallet":"$W","amount":"0","expires_at":"2026-01-01T00:00:00Z"}"#,
        E::InvalidAmount,
        &["0"],
    );
    fails(
        &l,
        r#"{"op":"redeem","at":"whenever","wallet":"$W","amount":"1"}"#,
        E::InvalidTime,
        &["whenever"],
    );
    // The typed API answers alike.
    let typed = Request::new(Command::Credit(Credit {
        wallet: W.parse().unwrap(),
        amount: Decimal::ZERO,
        lot: Some(String::new()),
        ..Default::default()
    }));
    assert_eq!(l.execute(&typed).unwrap_err().code, E::InvalidCommand);
    let typed = Request::new(Command::Credit(Credit {
        wallet: W.parse().unwrap(),
        amount: Decimal::ZERO,
        expires_at: Some("2025-01-01T00:00:00Z".parse().unwrap()),
        ..Default::default()
    }));
    assert_eq!(l.execute(&typed).unwrap_err().code, E::InvalidAmount);
}

#[test]
fn step_2_invalid_time_beats_existence_and_state() {
    let l = base();
    use ErrorCode as E;
    fails(
        &l,
        r#"{"op":"hold","at":"2026-01-05T00:00:00Z","wallet":"$U","amount":"1","expires_at":"2026-01-04T00:00:00Z"}"#,
        E::InvalidTime,
        &["2026-01-04T00:00:00Z"],
    );
    fails(
        &l,
        r#"{"op":"open_wallet","at":"later","wallet":"$U","holder":"$U","program":99}"#,
        E::InvalidTime,
        &["later"],
    );
    fails(
        &l,
        r#"{"op":"define_program","at":"later","program":1,"name":"n","unit":"u","pockets":[{"pocket":"p","name":"P","kind":"K","asset":"A","scale":0}]}"#,
        E::InvalidTime,
        &["later"],
    );
    // A credit that is both backdated and out of order in its own times.
    ok(
        &l,
        r#"{"op":"credit","at":"2026-01-10T00:00:00Z","wallet":"$W","amount":"1"}"#,
    );
    fails(
        &l,
        r#"{"op":"credit","at":"2026-01-05T00:00:00Z","wallet":"$W","amount":"1","expires_at":"2026-01-05T00:00:00Z"}"#,
        E::InvalidTime,
        &["2026-01-05T00:00:00Z"],
    );
}

#[test]
fn step_3_duplicate_holder_before_identity_taken() {
    let l = base();
    use ErrorCode as E;
    fails(
        &l,
        r#"{"op":"register_holder","holder":"$H","identity":"krishna123","email":"alice@example.com"}"#,
        E::DuplicateHolder,
        &["$H"],
    );
    fails(
        &l,
        r#"{"op":"register_holder","holder":"$U","identity":"krishna123","email":"alice@example.com"}"#,
        E::IdentityTaken,
        &["krishna123"],
    );
    fails(
        &l,
        r#"{"op":"register_holder","holder":"$U","identity":"someone-else","email":"Alice@Example.com"}"#,
        E::IdentityTaken,
        &["Alice@Example.com"],
    );
    // Identities are case-sensitive.
    ok(
        &l,
        r#"{"op":"register_holder","holder":"$U","identity":"Krishna123"}"#,
    );
}

#[test]
fn step_3_open_wallet_checks_wallet_then_external_id_then_holder_then_program() {
    let l = base();
    use ErrorCode as E;
    fails(
        &l,
        r#"{"op":"open_wallet","wallet":"$W","holder":"$U","program":99,"external_id":"ext-1"}"#,
        E::DuplicateWallet,
        &["$W"],
    );
    fails(
        &l,
        r#"{"op":"open_wallet","wallet":"$U","holder":"$U","program":99,"external_id":"ext-1"}"#,
        E::ExternalIdTaken,
        &["ext-1"],
    );
    fails(
        &l,
        r#"{"op":"open_wallet","wallet":"$U","holder":"$U","program":99,"external_id":"ext-new"}"#,
        E::UnknownHolder,
        &["$U"],
    );
    fails(
        &l,
        r#"{"op":"open_wallet","wallet":"$U","holder":"$H","program":99,"external_id":"ext-new"}"#,
        E::UnknownProgram,
        &["99"],
    );
    ok(
        &l,
        r#"{"op":"open_wallet","wallet":"$U","holder":"$H","program":1,"external_id":"ext-new"}"#,
    );
}

#[test]
fn step_3_unknown_wallet_before_everything_about_it() {
    let l = base();
    fails(
        &l,
        r#"{"op":"refund","at":"2000-01-01T00:00:00Z","wallet":"$U","pocket":"gold","redemption":"R","amount":"1.23456"}"#,
        ErrorCode::UnknownWallet,
        &["$U"],
    );
    fails(
        &l,
        r#"{"op":"unfreeze","wallet":"$U"}"#,
        ErrorCode::UnknownWallet,
        &["$U"],
    );
}

#[test]
fn step_4_backdated_before_status() {
    let l = base();
    use ErrorCode as E;
    ok(
        &l,
        r#"{"op":"close","at":"2026-01-05T00:00:00Z","wallet":"$W"}"#,
    );
    fails(
        &l,
        r#"{"op":"credit","at":"2026-01-04T00:00:00Z","wallet":"$W","amount":"1"}"#,
        E::Backdated,
        &["2026-01-04T00:00:00Z"],
    );
    fails(
        &l,
        r#"{"op":"credit","at":"2026-01-05T00:00:00Z","wallet":"$W","amount":"1"}"#,
        E::WalletClosed,
        &["$W"],
    );
    ok(
        &l,
        r#"{"op":"freeze","at":"2026-01-05T00:00:00Z","wallet":"$W2"}"#,
    );
    fails(
        &l,
        r#"{"op":"freeze","at":"2026-01-04T00:00:00Z","wallet":"$W2"}"#,
        E::Backdated,
        &["$W2"],
    );
    fails(
        &l,
        r#"{"op":"redeem","at":"2026-01-04T00:00:00Z","wallet":"$W2","pocket":"gold","amount":"1"}"#,
        E::Backdated,
        &["$W2"],
    );
    // Equal times are allowed.
    fails(
        &l,
        r#"{"op":"freeze","at":"2026-01-05T00:00:00Z","wallet":"$W2"}"#,
        E::InvalidTransition,
        &["$W2"],
    );
}

#[test]
fn step_5_closed_before_frozen_before_transition() {
    let l = base();
    use ErrorCode as E;
    ok(
        &l,
        r#"{"op":"freeze","at":"2026-01-02T00:00:00Z","wallet":"$W"}"#,
    );
    ok(
        &l,
        r#"{"op":"close","at":"2026-01-03T00:00:00Z","wallet":"$W","reason":"done"}"#,
    );
    for line in [
        r#"{"op":"close","wallet":"$W"}"#,
        r#"{"op":"freeze","wallet":"$W"}"#,
        r#"{"op":"unfreeze","wallet":"$W"}"#,
        r#"{"op":"release","wallet":"$W","hold":"H"}"#,
        r#"{"op":"credit","wallet":"$W","pocket":"gold","amount":"1.234"}"#,
        r#"{"op":"issue_card","wallet":"$W","card":"c"}"#,
    ] {
        fails(
            &l,
            &line.replace("\"wallet\"", r#""at":"2026-01-04T00:00:00Z","wallet""#),
            E::WalletClosed,
            &["$W"],
        );
    }
    ok(
        &l,
        r#"{"op":"freeze","at":"2026-01-02T00:00:00Z","wallet":"$W2"}"#,
    );
    fails(
        &l,
        r#"{"op":"redeem","at":"2026-01-02T00:00:00Z","wallet":"$W2","pocket":"gold","amount":"1.23456"}"#,
        E::WalletFrozen,
        &["$W2"],
    );
    fails(
        &l,
        r#"{"op":"capture","at":"2026-01-02T00:00:00Z","wallet":"$W2","hold":"ghost"}"#,
        E::WalletFrozen,
        &["$W2"],
    );
    fails(
        &l,
        r#"{"op":"freeze","at":"2026-01-02T00:00:00Z","wallet":"$W2"}"#,
        E::InvalidTransition,
        &["$W2"],
    );
    fails(
        &l,
        r#"{"op":"unfreeze","at":"2026-01-03T00:00:00Z","wallet":"$W"}"#,
        E::WalletClosed,
        &["$W"],
    );
}

#[test]
fn step_6_unknown_pocket_before_scale_exceeded() {
    let l = base();
    fails(
        &l,
        r#"{"op":"credit","wallet":"$W","pocket":"gold","amount":"1.23456"}"#,
        ErrorCode::UnknownPocket,
        &["gold"],
    );
    fails(
        &l,
        r#"{"op":"credit","wallet":"$W","pocket":"pts","amount":"1.5"}"#,
        ErrorCode::ScaleExceeded,
        &["1.5"],
    );
    // Trailing zeros are dropped before the scale is checked.
    ok(
        &l,
        r#"{"op":"credit","wallet":"$W","pocket":"pts","amount":"2.000"}"#,
    );
}

#[test]
fn step_6_scale_exceeded_before_referenced_objects() {
    let l = base();
    use ErrorCode as E;
    fails(
        &l,
        r#"{"op":"reverse_credit","wallet":"$W","lot":"ghost","amount":"1.234"}"#,
        E::ScaleExceeded,
        &["1.234"],
    );
    fails(
        &l,
        r#"{"op":"refund","wallet":"$W","redemption":"ghost","amount":"1.234"}"#,
        E::ScaleExceeded,
        &["1.234"],
    );
    fails(
        &l,
        r#"{"op":"capture","wallet":"$W","hold":"ghost","amount":"1.234"}"#,
        E::ScaleExceeded,
        &["1.234"],
    );
    fails(
        &l,
        r#"{"op":"expire","wallet":"$W","amount":"1.234"}"#,
        E::ScaleExceeded,
        &["1.234"],
    );
}

#[test]
fn step_7_referenced_objects_then_their_state_then_new_ids() {
    let l = base();
    use ErrorCode as E;
    ok(
        &l,
        r#"{"op":"credit","at":"2026-01-02T00:00:00Z","wallet":"$W","amount":"100","lot":"L1"}"#,
    );
    ok(
        &l,
        r#"{"op":"redeem","at":"2026-01-02T00:00:00Z","wallet":"$W","amount":"10","redemption":"R1"}"#,
    );
    ok(
        &l,
        r#"{"op":"hold","at":"2026-01-02T00:00:00Z","wallet":"$W","amount":"10","hold":"H1"}"#,
    );
    ok(
        &l,
        r#"{"op":"hold","at":"2026-01-02T00:00:00Z","wallet":"$W","amount":"10","hold":"H2"}"#,
    );
    ok(
        &l,
        r#"{"op":"release","at":"2026-01-02T00:00:00Z","wallet":"$W","hold":"H2"}"#,
    );
    // Unknown hold, with a redemption id that is taken: the hold is reported.
    fails(
        &l,
        r#"{"op":"capture","wallet":"$W","hold":"ghost","redemption":"R1"}"#,
        E::UnknownHold,
        &["ghost"],
    );
    // A closed hold, with a redemption id that is taken and an amount beyond it: hold_closed.
    fails(
        &l,
        r#"{"op":"capture","wallet":"$W","hold":"H2","redemption":"R1","amount":"50"}"#,
        E::HoldClosed,
        &["H2"],
    );
    // An open hold, a taken redemption id and an amount beyond the hold: the new id is reported.
    fails(
        &l,
        r#"{"op":"capture","wallet":"$W","hold":"H1","redemption":"R1","amount":"50"}"#,
        E::DuplicateRedemption,
        &["R1"],
    );
    // Objects live in their pocket: named in another pocket, they are unknown there.
    fails(
        &l,
        r#"{"op":"activate","wallet":"$W","pocket":"pts","lot":"L1"}"#,
        E::UnknownLot,
        &["L1"],
    );
    fails(
        &l,
        r#"{"op":"release","wallet":"$W","pocket":"pts","hold":"H1"}"#,
        E::UnknownHold,
        &["H1"],
    );
    fails(
        &l,
        r#"{"op":"refund","wallet":"$W","pocket":"pts","redemption":"R1"}"#,
        E::UnknownRedemption,
        &["R1"],
    );
    // An active lot is not promised, whatever else is wrong with the request.
    fails(
        &l,
        r#"{"op":"activate","wallet":"$W","lot":"L1"}"#,
        E::LotNotPromised,
        &["L1"],
    );
    // Ids are unique in the wallet across pockets.
    fails(
        &l,
        r#"{"op":"credit","wallet":"$W","pocket":"pts","amount":"1","lot":"L1"}"#,
        E::DuplicateLot,
        &["L1"],
    );
}

#[test]
fn step_7_new_ids_before_quantities() {
    let l = base();
    use ErrorCode as E;
    ok(
        &l,
        r#"{"op":"credit","at":"2026-01-02T00:00:00Z","wallet":"$W","pocket":"pts","amount":"79228162514264337593543950335","lot":"L1"}"#,
    );
    ok(
        &l,
        r#"{"op":"redeem","at":"2026-01-02T00:00:00Z","wallet":"$W","pocket":"pts","amount":"1","redemption":"R1"}"#,
    );
    ok(
        &l,
        r#"{"op":"hold","at":"2026-01-02T00:00:00Z","wallet":"$W","pocket":"pts","amount":"1","hold":"H1"}"#,
    );
    // Each would also overflow or exceed what is there.
    fails(
        &l,
        r#"{"op":"credit","wallet":"$W","pocket":"pts","amount":"5","lot":"L1"}"#,
        E::DuplicateLot,
        &["L1"],
    );
    fails(
        &l,
        r#"{"op":"redeem","wallet":"$W","amount":"5","redemption":"R1"}"#,
        E::DuplicateRedemption,
        &["R1"],
    );
    fails(
        &l,
        r#"{"op":"hold","wallet":"$W","amount":"5","hold":"H1"}"#,
        E::DuplicateHold,
        &["H1"],
    );
    fails(
        &l,
        r#"{"op":"credit","wallet":"$W","pocket":"pts","amount":"5","lot":"L2"}"#,
        E::AmountOverflow,
        &["5"],
    );
}

#[test]
fn step_8_quantities() {
    let l = base();
    use ErrorCode as E;
    ok(
        &l,
        r#"{"op":"credit","at":"2026-01-02T00:00:00Z","wallet":"$W","amount":"100","lot":"L1"}"#,
    );
    ok(
        &l,
        r#"{"op":"redeem","at":"2026-01-02T00:00:00Z","wallet":"$W","amount":"30","redemption":"R1"}"#,
    );
    ok(
        &l,
        r#"{"op":"hold","at":"2026-01-02T00:00:00Z","wallet":"$W","amount":"50","hold":"H1"}"#,
    );
    fails(
        &l,
        r#"{"op":"capture","wallet":"$W","hold":"H1","amount":"50.01"}"#,
        E::CaptureExceedsHold,
        &["50.01", "H1"],
    );
    fails(
        &l,
        r#"{"op":"refund","wallet":"$W","redemption":"R1","amount":"31"}"#,
        E::RefundExceedsRedemption,
        &["31", "R1"],
    );
    // Available is 20 (balance 70, 50 on hold).
    fails(
        &l,
        r#"{"op":"redeem","wallet":"$W","amount":"20.01"}"#,
        E::InsufficientFunds,
        &["20.01", "20"],
    );
    fails(
        &l,
        r#"{"op":"close","wallet":"$W"}"#,
        E::WalletNotEmpty,
        &["$W", "main"],
    );
    // A debit too large for any pocket is insufficient, not an overflow.
    fails(
        &l,
        r#"{"op":"redeem","wallet":"$W","amount":"79228162514264337593543950335"}"#,
        E::InsufficientFunds,
        &[],
    );
    fails(
        &l,
        r#"{"op":"hold","wallet":"$W","amount":"79228162514264337593543950335"}"#,
        E::InsufficientFunds,
        &[],
    );
    // A capture beyond the hold by more than any pocket holds is still capture_exceeds_hold.
    fails(
        &l,
        r#"{"op":"capture","wallet":"$W","hold":"H1","amount":"79228162514264337593543950335"}"#,
        E::CaptureExceedsHold,
        &["H1"],
    );
    // Promised value or value on hold also keeps a wallet open.
    ok(
        &l,
        r#"{"op":"credit","at":"2026-01-02T00:00:00Z","wallet":"$W2","amount":"1","activates_at":"2026-02-01T00:00:00Z"}"#,
    );
    fails(
        &l,
        r#"{"op":"close","at":"2026-01-03T00:00:00Z","wallet":"$W2"}"#,
        E::WalletNotEmpty,
        &["$W2"],
    );
}

#[test]
fn omitted_amounts_resolving_to_zero_fail_as_exceeding() {
    let l = base();
    use ErrorCode as E;
    ok(
        &l,
        r#"{"op":"credit","at":"2026-01-02T00:00:00Z","wallet":"$W","amount":"10","lot":"L1"}"#,
    );
    ok(
        &l,
        r#"{"op":"redeem","at":"2026-01-02T00:00:00Z","wallet":"$W","amount":"10","redemption":"R1"}"#,
    );
    // Nothing free in L1, nothing available, nothing to expire.
    fails(
        &l,
        r#"{"op":"reverse_credit","wallet":"$W","lot":"L1"}"#,
        E::InsufficientFunds,
        &["L1"],
    );
    fails(
        &l,
        r#"{"op":"expire","wallet":"$W"}"#,
        E::InsufficientFunds,
        &["main"],
    );
    ok(
        &l,
        r#"{"op":"refund","at":"2026-01-03T00:00:00Z","wallet":"$W","redemption":"R1"}"#,
    );
    fails(
        &l,
        r#"{"op":"refund","wallet":"$W","redemption":"R1"}"#,
        E::RefundExceedsRedemption,
        &["R1"],
    );
    // With something there, the omitted amount is all of it.
    let r = ok(
        &l,
        r#"{"op":"expire","at":"2026-01-04T00:00:00Z","wallet":"$W"}"#,
    );
    assert_eq!(r.events, 1);
    assert_figures(
        &l,
        W,
        "main",
        "2026-01-04T00:00:00Z",
        &[
            ("credited", "10"),
            ("redeemed", "0"),
            ("expired", "10"),
            ("balance", "0"),
        ],
    );
    // And a promised lot can be reversed whole.
    ok(
        &l,
        r#"{"op":"credit","at":"2026-01-05T00:00:00Z","wallet":"$W","amount":"7","lot":"P","activates_at":"2026-02-01T00:00:00Z"}"#,
    );
    ok(
        &l,
        r#"{"op":"reverse_credit","at":"2026-01-05T00:00:00Z","wallet":"$W","lot":"P"}"#,
    );
    assert_figures(
        &l,
        W,
        "main",
        "2026-03-01T00:00:00Z",
        &[("promised", "0"), ("credited", "10"), ("total", "0")],
    );
    fails(
        &l,
        r#"{"op":"reverse_credit","wallet":"$W","lot":"P"}"#,
        E::InsufficientFunds,
        &["P"],
    );
}

// ---- 3. time rules (§4.1, §4.4), frozen wallets (§3), batch index ------------------------------

#[test]
fn value_that_expires_at_e_cannot_be_spent_at_e() {
    let l = base();
    ok(
        &l,
        r#"{"op":"credit","at":"2026-01-02T00:00:00Z","wallet":"$W","amount":"100","lot":"L1","expires_at":"2026-02-01T00:00:00Z"}"#,
    );
    let just_before = "2026-01-31T23:59:59.999999999Z";
    assert_figures(
        &l,
        W,
        "main",
        just_before,
        &[("balance", "100"), ("expired", "0"), ("available", "100")],
    );
    assert_figures(
        &l,
        W,
        "main",
        "2026-02-01T00:00:00Z",
        &[("balance", "0"), ("expired", "100"), ("credited", "100")],
    );
    for op in ["redeem", "hold", "expire"] {
        fails(
            &l,
            &format!(
                r#"{{"op":"{op}","at":"2026-02-01T00:00:00Z","wallet":"$W","amount":"0.01"}}"#
            ),
            ErrorCode::InsufficientFunds,
            &["0.01"],
        );
    }
    fails(
        &l,
        r#"{"op":"reverse_credit","at":"2026-02-01T00:00:00Z","wallet":"$W","lot":"L1"}"#,
        ErrorCode::InsufficientFunds,
        &["L1"],
    );
    // One nanosecond earlier all of it can be spent.
    let r = ok(
        &l,
        &format!(r#"{{"op":"redeem","at":"{just_before}","wallet":"$W","amount":"100"}}"#),
    );
    assert_eq!(r.events, 1);
    assert_figures(
        &l,
        W,
        "main",
        "2026-03-01T00:00:00Z",
        &[("redeemed", "100"), ("expired", "0"), ("balance", "0")],
    );
}

#[test]
fn value_that_activates_at_a_can_be_spent_at_a() {
    let l = base();
    ok(
        &l,
        r#"{"op":"credit","at":"2026-01-02T00:00:00Z","wallet":"$W","amount":"50","lot":"P","activates_at":"2026-02-01T00:00:00Z"}"#,
    );
    let just_before = "2026-01-31T23:59:59.999999999Z";
    assert_figures(
        &l,
        W,
        "main",
        just_before,
        &[
            ("promised", "50"),
            ("credited", "0"),
            ("total", "50"),
            ("pending", "50"),
            ("available", "0"),
        ],
    );
    assert_figures(
        &l,
        W,
        "main",
        "2026-02-01T00:00:00Z",
        &[("promised", "0"), ("credited", "50"), ("available", "50")],
    );
    fails(
        &l,
        &format!(r#"{{"op":"redeem","at":"{just_before}","wallet":"$W","amount":"0.01"}}"#),
        ErrorCode::InsufficientFunds,
        &["0.01"],
    );
    // Until A it can be activated early; at A it is no longer promised.
    fails(
        &l,
        r#"{"op":"activate","at":"2026-02-01T00:00:00Z","wallet":"$W","lot":"P"}"#,
        ErrorCode::LotNotPromised,
        &["P"],
    );
    let r = ok(
        &l,
        r#"{"op":"redeem","at":"2026-02-01T00:00:00Z","wallet":"$W","amount":"50"}"#,
    );
    assert_eq!(
        r.events, 2,
        "the activation due at A is recorded before the redemption"
    );
    let h = l.history(W.parse().unwrap()).unwrap();
    let names: Vec<&str> = h.iter().map(|e| e.event.name()).collect();
    assert_eq!(names[names.len() - 2..], ["activated", "redeemed"]);
}

#[test]
fn early_activation_makes_value_spendable_at_once() {
    let l = base();
    ok(
        &l,
        r#"{"op":"credit","at":"2026-01-02T00:00:00Z","wallet":"$W","amount":"50","lot":"P","activates_at":"2026-02-01T00:00:00Z","expires_at":"2026-03-01T00:00:00Z"}"#,
    );
    ok(
        &l,
        r#"{"op":"activate","at":"2026-01-10T00:00:00Z","wallet":"$W","lot":"P"}"#,
    );
    assert_figures(
        &l,
        W,
        "main",
        "2026-01-09T00:00:00Z",
        &[("promised", "50"), ("credited", "0")],
    );
    assert_figures(
        &l,
        W,
        "main",
        "2026-01-10T00:00:00Z",
        &[("promised", "0"), ("credited", "50")],
    );
    ok(
        &l,
        r#"{"op":"redeem","at":"2026-01-10T00:00:00Z","wallet":"$W","amount":"20"}"#,
    );
    // It still expires when it said it would.
    assert_figures(
        &l,
        W,
        "main",
        "2026-03-01T00:00:00Z",
        &[("expired", "30"), ("balance", "0")],
    );
}

#[test]
fn capture_at_the_holds_expiry_fails_hold_closed() {
    let setup = |l: &Ledger| {
        ok(
            l,
            r#"{"op":"credit","at":"2026-01-02T00:00:00Z","wallet":"$W","amount":"100"}"#,
        );
        ok(
            l,
            r#"{"op":"hold","at":"2026-01-03T00:00:00Z","wallet":"$W","amount":"40","hold":"H1","expires_at":"2026-01-10T00:00:00Z"}"#,
        );
    };
    let l = base();
    setup(&l);
    assert_figures(
        &l,
        W,
        "main",
        "2026-01-09T23:59:59.999999999Z",
        &[("on_hold", "40"), ("available", "60")],
    );
    assert_figures(
        &l,
        W,
        "main",
        "2026-01-10T00:00:00Z",
        &[("on_hold", "0"), ("available", "100")],
    );
    fails(
        &l,
        r#"{"op":"capture","at":"2026-01-10T00:00:00Z","wallet":"$W","hold":"H1"}"#,
        ErrorCode::HoldClosed,
        &["H1"],
    );
    fails(
        &l,
        r#"{"op":"release","at":"2026-01-10T00:00:00Z","wallet":"$W","hold":"H1"}"#,
        ErrorCode::HoldClosed,
        &["H1"],
    );
    // The time-out is recorded by the next command (or a sweep), at X, marked as a time-out.
    ok(
        &l,
        r#"{"op":"link_payment_method","at":"2026-01-11T00:00:00Z","wallet":"$W","method":{"account_name":"A","account_number":"0123456789","account_type":"savings","bank_code":"058","bank_name":"B"}}"#,
    );
    let h = wallet_ledger::render::history(&l.history(W.parse().unwrap()).unwrap());
    let released: Vec<_> = h.iter().filter(|e| e["event"] == "released").collect();
    assert_eq!(released.len(), 1);
    assert_eq!(released[0]["timed_out"], true);
    assert_eq!(released[0]["at"], "2026-01-10T00:00:00Z");
    // One nanosecond before X the capture succeeds.
    let l = base();
    setup(&l);
    ok(
        &l,
        r#"{"op":"capture","at":"2026-01-09T23:59:59.999999999Z","wallet":"$W","hold":"H1","amount":"15"}"#,
    );
    assert_figures(
        &l,
        W,
        "main",
        "2026-01-10T00:00:00Z",
        &[("redeemed", "15"), ("on_hold", "0"), ("available", "85")],
    );
    // A captured hold does not time out again.
    fails(
        &l,
        r#"{"op":"release","at":"2026-01-11T00:00:00Z","wallet":"$W","hold":"H1"}"#,
        ErrorCode::HoldClosed,
        &["H1"],
    );
}

#[test]
fn refunds_into_expired_lots_expire_at_once() {
    let l = base();
    ok(
        &l,
        r#"{"op":"credit","at":"2026-01-02T00:00:00Z","wallet":"$W","amount":"100","lot":"A","expires_at":"2026-02-01T00:00:00Z"}"#,
    );
    ok(
        &l,
        r#"{"op":"redeem","at":"2026-01-10T00:00:00Z","wallet":"$W","amount":"30","redemption":"R1"}"#,
    );
    // Before A expires a refund makes value free again…
    ok(
        &l,
        r#"{"op":"refund","at":"2026-01-20T00:00:00Z","wallet":"$W","redemption":"R1","amount":"10"}"#,
    );
    assert_figures(
        &l,
        W,
        "main",
        "2026-01-20T00:00:00Z",
        &[("redeemed", "20"), ("balance", "80"), ("expired", "0")],
    );
    // …which then expires with the lot.
    assert_figures(
        &l,
        W,
        "main",
        "2026-02-01T00:00:00Z",
        &[("redeemed", "20"), ("balance", "0"), ("expired", "80")],
    );
    // After it expired, refunded value is expired at once: redeemed falls, expired rises.
    ok(
        &l,
        r#"{"op":"refund","at":"2026-02-05T00:00:00Z","wallet":"$W","redemption":"R1","amount":"5"}"#,
    );
    assert_figures(
        &l,
        W,
        "main",
        "2026-02-05T00:00:00Z",
        &[
            ("credited", "100"),
            ("redeemed", "15"),
            ("expired", "85"),
            ("balance", "0"),
            ("available", "0"),
        ],
    );
    // Exactly at the lot's expiry counts as expired too.
    let l = base();
    ok(
        &l,
        r#"{"op":"credit","at":"2026-01-02T00:00:00Z","wallet":"$W","amount":"100","lot":"A","expires_at":"2026-02-01T00:00:00Z"}"#,
    );
    ok(
        &l,
        r#"{"op":"redeem","at":"2026-01-10T00:00:00Z","wallet":"$W","amount":"100","redemption":"R1"}"#,
    );
    ok(
        &l,
        r#"{"op":"refund","at":"2026-02-01T00:00:00Z","wallet":"$W","redemption":"R1"}"#,
    );
    assert_figures(
        &l,
        W,
        "main",
        "2026-02-01T00:00:00Z",
        &[("redeemed", "0"), ("expired", "100"), ("balance", "0")],
    );
    assert!(l.verify().unwrap().ok());
}

#[test]
fn refunds_restore_the_last_consumed_lot_first() {
    let l = base();
    // earliest_expiry: a redemption of 80 takes A's 50 (expiring), then B's 30 (no expiry).
    ok(
        &l,
        r#"{"op":"credit","at":"2026-01-02T00:00:00Z","wallet":"$W","amount":"50","lot":"B"}"#,
    );
    ok(
        &l,
        r#"{"op":"credit","at":"2026-01-02T00:00:00Z","wallet":"$W","amount":"50","lot":"A","expires_at":"2026-02-01T00:00:00Z"}"#,
    );
    ok(
        &l,
        r#"{"op":"redeem","at":"2026-01-03T00:00:00Z","wallet":"$W","amount":"80","redemption":"R1"}"#,
    );
    // After A expired, refunding 30 restores B's allocation: nothing expires.
    ok(
        &l,
        r#"{"op":"refund","at":"2026-02-02T00:00:00Z","wallet":"$W","redemption":"R1","amount":"30"}"#,
    );
    assert_figures(
        &l,
        W,
        "main",
        "2026-02-02T00:00:00Z",
        &[("redeemed", "50"), ("expired", "0"), ("balance", "50")],
    );
    // The next 20 come from A's allocation, and expire at once.
    ok(
        &l,
        r#"{"op":"refund","at":"2026-02-02T00:00:00Z","wallet":"$W","redemption":"R1","amount":"20"}"#,
    );
    assert_figures(
        &l,
        W,
        "main",
        "2026-02-02T00:00:00Z",
        &[("redeemed", "30"), ("expired", "20"), ("balance", "50")],
    );
    // B's 20 free, A fully spent or expired: spend exactly B's 50.
    fails(
        &l,
        r#"{"op":"redeem","at":"2026-02-02T00:00:00Z","wallet":"$W","amount":"50.01"}"#,
        ErrorCode::InsufficientFunds,
        &["50.01"],
    );
    ok(
        &l,
        r#"{"op":"reverse_credit","at":"2026-02-02T00:00:00Z","wallet":"$W","lot":"B","amount":"50"}"#,
    );
}

#[test]
fn release_of_held_value_after_its_lot_expired() {
    let l = base();
    ok(
        &l,
        r#"{"op":"credit","at":"2026-01-01T00:00:00Z","wallet":"$W","amount":"100","lot":"A","expires_at":"2026-03-01T00:00:00Z"}"#,
    );
    ok(
        &l,
        r#"{"op":"credit","at":"2026-01-01T00:00:00Z","wallet":"$W","amount":"50","lot":"B"}"#,
    );
    ok(
        &l,
        r#"{"op":"redeem","at":"2026-01-10T00:00:00Z","wallet":"$W","amount":"30","redemption":"R1"}"#,
    );
    ok(
        &l,
        r#"{"op":"hold","at":"2026-01-20T00:00:00Z","wallet":"$W","amount":"80","hold":"H1"}"#,
    );
    // Held value does not expire while held: on Mar 2 A's 70 is still in the balance.
    assert_figures(
        &l,
        W,
        "main",
        "2026-03-02T00:00:00Z",
        &[
            ("credited", "150"),
            ("expired", "0"),
            ("balance", "120"),
            ("on_hold", "80"),
            ("available", "40"),
        ],
    );
    ok(
        &l,
        r#"{"op":"release","at":"2026-03-03T00:00:00Z","wallet":"$W","hold":"H1"}"#,
    );
    assert_figures(
        &l,
        W,
        "main",
        "2026-03-03T00:00:00Z",
        &[
            ("credited", "150"),
            ("redeemed", "30"),
            ("expired", "70"),
            ("balance", "50"),
            ("on_hold", "0"),
            ("available", "50"),
        ],
    );
    // Released exactly at A's expiry, A's slice expires too; and a time-out after the expiry
    // does the same.
    for release in [
        r#"{"op":"release","at":"2026-03-01T00:00:00Z","wallet":"$W","hold":"H1"}"#,
        r#"{"op":"sweep","at":"2026-03-05T00:00:00Z"}"#,
    ] {
        let l = base();
        ok(
            &l,
            r#"{"op":"credit","at":"2026-01-01T00:00:00Z","wallet":"$W","amount":"100","lot":"A","expires_at":"2026-03-01T00:00:00Z"}"#,
        );
        ok(
            &l,
            r#"{"op":"credit","at":"2026-01-01T00:00:00Z","wallet":"$W","amount":"50","lot":"B"}"#,
        );
        ok(
            &l,
            r#"{"op":"hold","at":"2026-01-20T00:00:00Z","wallet":"$W","amount":"120","hold":"H1","expires_at":"2026-03-05T00:00:00Z"}"#,
        );
        ok(&l, release);
        assert_figures(
            &l,
            W,
            "main",
            "2026-03-05T00:00:00Z",
            &[("expired", "100"), ("balance", "50"), ("on_hold", "0")],
        );
        assert!(l.verify().unwrap().ok());
    }
}

#[test]
fn a_partial_capture_releases_the_rest() {
    let l = base();
    ok(
        &l,
        r#"{"op":"credit","at":"2026-01-01T00:00:00Z","wallet":"$W","amount":"100"}"#,
    );
    ok(
        &l,
        r#"{"op":"hold","at":"2026-01-02T00:00:00Z","wallet":"$W","amount":"80","hold":"H1"}"#,
    );
    let r = ok(
        &l,
        r#"{"op":"capture","at":"2026-01-03T00:00:00Z","wallet":"$W","hold":"H1","amount":"25.5"}"#,
    );
    assert_eq!(
        r.redemption.as_deref(),
        Some("H1"),
        "the redemption defaults to the hold id"
    );
    assert_figures(
        &l,
        W,
        "main",
        "2026-01-03T00:00:00Z",
        &[
            ("redeemed", "25.5"),
            ("on_hold", "0"),
            ("balance", "74.5"),
            ("available", "74.5"),
        ],
    );
    // The capture is a redemption: refundable under the hold's id.
    ok(
        &l,
        r#"{"op":"refund","at":"2026-01-04T00:00:00Z","wallet":"$W","redemption":"H1","amount":"0.5"}"#,
    );
    fails(
        &l,
        r#"{"op":"refund","at":"2026-01-04T00:00:00Z","wallet":"$W","redemption":"H1","amount":"25.01"}"#,
        ErrorCode::RefundExceedsRedemption,
        &["H1", "25"],
    );
}

#[test]
fn a_frozen_wallet_refuses_value_moves_and_accepts_the_rest() {
    let l = base();
    for s in [
        r#"{"op":"credit","at":"2026-01-02T00:00:00Z","wallet":"$W","amount":"100","lot":"L1","expires_at":"2026-01-25T00:00:00Z"}"#,
        r#"{"op":"credit","at":"2026-01-02T00:00:00Z","wallet":"$W","amount":"20","lot":"P1","activates_at":"2026-02-01T00:00:00Z"}"#,
        r#"{"op":"redeem","at":"2026-01-02T00:00:00Z","wallet":"$W","amount":"30","redemption":"R1"}"#,
        r#"{"op":"hold","at":"2026-01-02T00:00:00Z","wallet":"$W","amount":"20","hold":"H1"}"#,
        r#"{"op":"hold","at":"2026-01-02T00:00:00Z","wallet":"$W","amount":"10","hold":"H2","expires_at":"2026-01-20T00:00:00Z"}"#,
        r#"{"op":"freeze","at":"2026-01-03T00:00:00Z","wallet":"$W","reason":"kyc"}"#,
    ] {
        ok(&l, s);
    }
    for (op, rest) in [
        ("credit", r#""amount":"1""#),
        ("activate", r#""lot":"P1""#),
        ("reverse_credit", r#""lot":"L1""#),
        ("redeem", r#""amount":"1""#),
        ("refund", r#""redemption":"R1""#),
        ("expire", r#""amount":"1""#),
        ("hold", r#""amount":"1""#),
        ("capture", r#""hold":"H1""#),
    ] {
        let e = fails(
            &l,
            &format!(r#"{{"op":"{op}","at":"2026-01-04T00:00:00Z","wallet":"$W",{rest}}}"#),
            ErrorCode::WalletFrozen,
            &["$W"],
        );
        assert_eq!(e.index, None);
    }
    // Time still passes: H2 times out on Jan 20, L1's free value expires on Jan 25, P1 activates
    // on Feb 1, all while frozen.
    assert_figures(
        &l,
        W,
        "main",
        "2026-02-01T00:00:00Z",
        &[
            ("on_hold", "20"),
            ("expired", "50"),
            ("promised", "0"),
            ("credited", "120"),
            ("balance", "40"),
            ("available", "20"),
        ],
    );
    for s in [
        r#"{"op":"release","at":"2026-01-04T00:00:00Z","wallet":"$W","hold":"H1"}"#,
        r#"{"op":"link_payment_method","at":"2026-01-04T00:00:00Z","wallet":"$W","method":{"account_name":"A","account_number":"0123456789","account_type":"savings","bank_code":"058","bank_name":"B"}}"#,
        r#"{"op":"issue_card","at":"2026-01-04T00:00:00Z","wallet":"$W","card":"card-1"}"#,
        r#"{"op":"unfreeze","at":"2026-01-04T00:00:00Z","wallet":"$W"}"#,
    ] {
        ok(&l, s);
    }
    ok(
        &l,
        r#"{"op":"redeem","at":"2026-01-04T00:00:00Z","wallet":"$W","amount":"1"}"#,
    );
    // An empty frozen wallet can be closed.
    ok(
        &l,
        r#"{"op":"freeze","at":"2026-01-04T00:00:00Z","wallet":"$W2"}"#,
    );
    ok(
        &l,
        r#"{"op":"close","at":"2026-01-04T00:00:00Z","wallet":"$W2"}"#,
    );
    let snap = l.snapshot(W2.parse().unwrap(), None).unwrap();
    assert_eq!(snap.status, wallet_ledger::internals::model::Status::Closed);
    let actions: Vec<&str> = snap.lifecycle.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions, ["create", "freeze", "delete"]);
}

#[test]
fn a_failing_batch_reports_its_index_and_applies_nothing() {
    let l = base();
    ok(
        &l,
        r#"{"op":"credit","at":"2026-01-02T00:00:00Z","wallet":"$W","amount":"100"}"#,
    );
    let e = fails(
        &l,
        r#"{"op":"batch","at":"2026-01-03T00:00:00Z","commands":[{"op":"credit","wallet":"$W","amount":"10","lot":"B1"},{"op":"redeem","wallet":"$W","amount":"110"},{"op":"redeem","wallet":"$W","amount":"111"},{"op":"credit","wallet":"$W2","amount":"1"}]}"#,
        ErrorCode::InsufficientFunds,
        &["111"],
    );
    assert_eq!(e.index, Some(2));
    let e = fails(
        &l,
        r#"{"op":"batch","at":"2026-01-03T00:00:00Z","commands":[{"op":"credit","wallet":"$U","amount":"10"}]}"#,
        ErrorCode::UnknownWallet,
        &["$U"],
    );
    assert_eq!(e.index, Some(0));
    // Each command sees the ones before it: the lot B1 credited at index 0 is a duplicate at 1.
    let e = fails(
        &l,
        r#"{"op":"batch","at":"2026-01-03T00:00:00Z","commands":[{"op":"credit","wallet":"$W","amount":"10","lot":"B1"},{"op":"credit","wallet":"$W","amount":"10","lot":"B1"}]}"#,
        ErrorCode::DuplicateLot,
        &["B1"],
    );
    assert_eq!(e.index, Some(1));
    // Malformed inner commands are reported with their index too.
    for (line, code, index) in [
        (
            r#"{"op":"batch","commands":[{"op":"sweep"},{"op":"fly"}]}"#,
            ErrorCode::InvalidCommand,
            1,
        ),
        (
            r#"{"op":"batch","commands":[{"op":"sweep"},{"op":"sweep"},{"op":"sweep","key":"k"}]}"#,
            ErrorCode::InvalidCommand,
            2,
        ),
        (
            r#"{"op":"batch","commands":[{"op":"sweep"},{"op":"credit","wallet":"$W","amount":"1","lot":""}]}"#,
            ErrorCode::InvalidCommand,
            1,
        ),
    ] {
        let e = fails(&l, line, code, &[]);
        assert_eq!(e.index, Some(index), "{line}: {e:?}");
    }
    // The same batch without the failing command succeeds, with every command's receipt.
    let r = ok(
        &l,
        r#"{"op":"batch","at":"2026-01-03T00:00:00Z","commands":[{"op":"credit","wallet":"$W","amount":"10","lot":"B1"},{"op":"redeem","wallet":"$W","amount":"110"},{"op":"credit","wallet":"$W2","amount":"1"}]}"#,
    );
    assert_eq!(r.commands.len(), 3);
    assert_eq!(r.events, 3);
    assert_eq!(r.commands[0].lot.as_deref(), Some("B1"));
}

#[test]
fn a_failing_batch_reports_the_index_of_a_bad_amount_or_time() {
    let l = base();
    // Typed: the index of the command whose amount is not positive.
    let typed = Request::new(Command::Batch(vec![
        Request::new(Command::Credit(Credit {
            wallet: W.parse().unwrap(),
            amount: Decimal::ONE,
            ..Default::default()
        })),
        Request::new(Command::Credit(Credit {
            wallet: W.parse().unwrap(),
            amount: Decimal::ZERO,
            ..Default::default()
        })),
    ]));
    let e = l.execute(&typed).unwrap_err();
    assert_eq!((e.code, e.index), (ErrorCode::InvalidAmount, Some(1)));
    // JSON: the same batch, and one with a bad time, report the same index.
    let e = fails(
        &l,
        r#"{"op":"batch","commands":[{"op":"credit","wallet":"$W","amount":"1"},{"op":"credit","wallet":"$W","amount":"0"}]}"#,
        ErrorCode::InvalidAmount,
        &["0"],
    );
    assert_eq!(e.index, Some(1), "{e:?}");
    let e = fails(
        &l,
        r#"{"op":"batch","commands":[{"op":"credit","wallet":"$W","amount":"1"},{"op":"credit","at":"noon","wallet":"$W","amount":"1"}]}"#,
        ErrorCode::InvalidTime,
        &["noon"],
    );
    assert_eq!(e.index, Some(1), "{e:?}");
}

#[test]
fn a_batch_fails_alike_through_json_and_the_typed_api() {
    // Index 0 lacks funds; index 1 has an amount that is not positive. Whichever the ledger
    // reports, the JSON line and the typed request of the same batch must report the same code
    // and index.
    let l = base();
    let line = fill(
        r#"{"op":"batch","at":"2026-01-02T00:00:00Z","commands":[{"op":"redeem","wallet":"$W","amount":"5"},{"op":"credit","wallet":"$W","amount":"0"}]}"#,
    );
    let typed = Request::new(Command::Batch(vec![
        Request::new(Command::Redeem(wallet_ledger::command::Redeem {
            wallet: W.parse().unwrap(),
            amount: Decimal::new(5, 0),
            ..Default::default()
        })),
        Request::new(Command::Credit(Credit {
            wallet: W.parse().unwrap(),
            amount: Decimal::ZERO,
            ..Default::default()
        })),
    ]))
    .at("2026-01-02T00:00:00Z".parse().unwrap());
    let a = l.execute_line(&line).unwrap_err();
    let b = l.execute(&typed).unwrap_err();
    assert_eq!(
        (a.code, a.index),
        (b.code, b.index),
        "json {a:?}\ntyped {b:?}"
    );
}

#[test]
fn a_promised_lot_reversed_to_zero_is_still_active_by_time() {
    let l = base();
    ok(
        &l,
        r#"{"op":"credit","at":"2026-01-02T00:00:00Z","wallet":"$W","amount":"5","lot":"P","activates_at":"2026-02-01T00:00:00Z","expires_at":"2026-03-01T00:00:00Z"}"#,
    );
    ok(
        &l,
        r#"{"op":"reverse_credit","at":"2026-01-03T00:00:00Z","wallet":"$W","lot":"P"}"#,
    );
    assert_figures(
        &l,
        W,
        "main",
        "2026-01-03T00:00:00Z",
        &[("promised", "0"), ("credited", "0"), ("total", "0")],
    );
    // At and after A the lot is no longer promised, whether or not an event recorded it.
    fails(
        &l,
        r#"{"op":"activate","at":"2026-02-01T00:00:00Z","wallet":"$W","lot":"P"}"#,
        ErrorCode::LotNotPromised,
        &["P"],
    );
    fails(
        &l,
        r#"{"op":"reverse_credit","at":"2026-02-02T00:00:00Z","wallet":"$W","lot":"P","amount":"1"}"#,
        ErrorCode::InsufficientFunds,
        &["P"],
    );
    assert_figures(
        &l,
        W,
        "main",
        "2026-03-02T00:00:00Z",
        &[
            ("promised", "0"),
            ("credited", "0"),
            ("expired", "0"),
            ("total", "0"),
        ],
    );
    // Before A it can still be activated early (nothing to spend, but no error).
    let l = base();
    ok(
        &l,
        r#"{"op":"credit","at":"2026-01-02T00:00:00Z","wallet":"$W","amount":"5","lot":"P","activates_at":"2026-02-01T00:00:00Z"}"#,
    );
    ok(
        &l,
        r#"{"op":"reverse_credit","at":"2026-01-03T00:00:00Z","wallet":"$W","lot":"P"}"#,
    );
    ok(
        &l,
        r#"{"op":"activate","at":"2026-01-31T23:59:59Z","wallet":"$W","lot":"P"}"#,
    );
    assert!(l.verify().unwrap().ok());
}
