//! Hostile input: arbitrary bytes, strings, JSON trees and mutated command lines fed to the JSON
//! parser and the ledger, and arbitrary bytes fed to the record decoders. Every input must end in
//! a result — an error with a code, never a panic — without unbounded allocation: a length prefix
//! claiming 2^60 bytes is refused at once. A tracking allocator measures the largest single
//! allocation each decode makes. Then every documented limit of `src/limits.rs` is checked to
//! produce its error.

mod common;

use common::*;
use proptest::prelude::*;
use proptest::test_runner::Config;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use wallet_ledger::internals::domain::event::Event;
use wallet_ledger::internals::domain::state::{
    HoldRec, LedgerState, LifecycleRec, Lot, RedemptionRec, WalletState,
};
use wallet_ledger::internals::model::{Holder, Program};
use wallet_ledger::internals::storage::codec;
use wallet_ledger::internals::storage::log::StoredReceipt;
use wallet_ledger::json::parse_line;
use wallet_ledger::limits::*;
use wallet_ledger::{ErrorCode, Ledger};

// ---- a tracking allocator: the largest single allocation made on this thread -----------------

struct Tracking;

thread_local! {
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

fn note(size: usize) {
    let _ = LARGEST.try_with(|m| {
        if size > m.get() {
            m.set(size)
        }
    });
}

unsafe impl GlobalAlloc for Tracking {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOC: Tracking = Tracking;

/// Runs `f`; returns its value and the largest single allocation it made.
fn largest_allocation<T>(f: impl FnOnce() -> T) -> (T, usize) {
    LARGEST.with(|m| m.set(0));
    let v = f();
    (v, LARGEST.with(|m| m.get()))
}

#[test]
fn the_allocation_tracker_sees_large_allocations() {
    let (v, big) = largest_allocation(|| vec![7u8; 3 << 20]);
    assert_eq!(v.len(), 3 << 20);
    assert!(big >= 3 << 20, "tracker saw {big}");
    let (_, small) = largest_allocation(|| 1 + 1);
    assert_eq!(small, 0);
}

/// What one decode may allocate at most: the decoder's own limit (1 MiB) with slack.
const DECODE_ALLOC_BOUND: usize = 2 << 20;

fn config(cases: u32) -> Config {
    Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    }
}

// ---- decoders -----------------------------------------------------------------------------------

/// Runs every decoder on `bytes`: each must return (Ok or Err), within the allocation bound.
fn decode_all(bytes: &[u8]) {
    macro_rules! each {
        ($($t:ty),*) => {$(
            let (_, big) = largest_allocation(|| codec::decode::<$t>("fuzz", bytes).is_ok());
            assert!(big <= DECODE_ALLOC_BOUND, "decode::<{}> of {} bytes allocated {big} bytes at once",
                stringify!($t), bytes.len());
        )*};
    }
    each!(
        WalletState,
        Lot,
        HoldRec,
        RedemptionRec,
        LedgerState,
        LifecycleRec,
        Program,
        Holder,
        StoredReceipt,
        Event,
        String,
        Vec<u8>
    );
    let (_, big) = largest_allocation(|| codec::decode_event("fuzz", bytes).is_ok());
    assert!(
        big <= DECODE_ALLOC_BOUND,
        "decode_event of {} bytes allocated {big} bytes at once",
        bytes.len()
    );
}

/// A sample of real event records (every variant), to mutate.
fn sample_records() -> Vec<Vec<u8>> {
    use wallet_ledger::internals::model::*;
    let evs = [
        Event::ProgramDefined(Program {
            program: 7,
            name: "P".into(),
            unit: "U".into(),
            order: Order::EarliestExpiry,
            pockets: vec![PocketTemplate {
                pocket: "main".into(),
                name: "Main".into(),
                kind: "CASH".into(),
                asset: "USD".into(),
                scale: 2,
            }],
        }),
        Event::Credited {
            pocket: 0,
            lot: 1,
            id: "L1".into(),
            units: 10_000,
            activates_at: 5,
            expires_at: Some(99),
        },
        Event::Held {
            pocket: 0,
            hold: 1,
            id: "H1".into(),
            units: 700,
            expires_at: None,
        },
        Event::PaymentMethodLinked(PaymentMethod {
            account_name: "A".into(),
            account_number: "1234".into(),
            account_type: "checking".into(),
            address: Some("x".into()),
            bank_address: None,
            bank_code: "021".into(),
            bank_name: "B".into(),
        }),
        Event::Lifecycle {
            action: LifecycleAction::Freeze,
            reason: Some("r".into()),
            event_id: [3; 16],
        },
    ];
    evs.iter()
        .enumerate()
        .map(|(i, e)| codec::encode_event(&[0; 16], 1, i as u64 + 1, i as u64 + 1, 0, &None, e).0)
        .collect()
}

proptest! {
    #![proptest_config(config(3000))]

    #[test]
    fn decoders_survive_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        decode_all(&bytes);
    }

    /// Past the version byte (and for events the 33-byte header), so the payload decoder runs.
    #[test]
    fn decoders_survive_arbitrary_payloads(
        header in prop::collection::vec(any::<u8>(), 32..=32),
        variant in 0u8..20,
        body in prop::collection::vec(any::<u8>(), 0..300),
    ) {
        let mut rec = vec![codec::SCHEMA_VERSION];
        rec.extend_from_slice(&header);
        rec.push(variant);
        rec.extend_from_slice(&body);
        decode_all(&rec);
        let mut val = vec![codec::SCHEMA_VERSION, variant];
        val.extend_from_slice(&body);
        decode_all(&val);
    }

    #[test]
    fn mutated_real_records_never_panic(
        which in 0usize..5,
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..6),
    ) {
        let mut rec = sample_records()[which].clone();
        for (at, byte, kind) in edits {
            if rec.is_empty() { break; }
            let i = at.index(rec.len());
            match kind {
                0 => rec[i] = byte,
                1 => rec.truncate(i),
                _ => rec.insert(i, byte),
            }
        }
        decode_all(&rec);
    }
}

/// A length prefix claiming 2^60 bytes (bincode varint: 253 then a u64 LE) is refused at once,
/// in every place a length appears.
#[test]
fn huge_length_prefixes_are_refused_quickly() {
    let huge = {
        let mut v = vec![253u8];
        v.extend_from_slice(&(1u64 << 60).to_le_bytes());
        v
    };
    let header = |payload: &[u8]| {
        let mut r = vec![codec::SCHEMA_VERSION];
        r.extend_from_slice(&[0; 32]);
        r.push(0); // no figure delta; the event follows
        r.extend_from_slice(payload);
        r
    };
    let cases: Vec<(&str, Vec<u8>)> = vec![
        // Event::Credited (variant 3) { pocket: 0, lot: 0, id: <huge string> }.
        (
            "event id string",
            header(&[&[3u8, 0, 0][..], &huge].concat()),
        ),
        // Event::WalletOpened (variant 2): wallet [u8;16], number, holder, program, name <huge>.
        (
            "wallet name",
            header(&[&[2u8][..], &[0; 16], &[1], &[0; 16], &[1], &huge].concat()),
        ),
        // Event::ProgramDefined (variant 0): program, name "", unit "", order 0, pockets <huge>.
        (
            "pocket list",
            header(&[&[0u8, 1, 0, 0, 0][..], &huge].concat()),
        ),
    ];
    let mut slow = Vec::new();
    for (what, rec) in &cases {
        let start = std::time::Instant::now();
        let (r, big) = largest_allocation(|| codec::decode_event(what, rec));
        let e = r.expect_err(what);
        assert!(e.0.contains(what), "the error names the record: {e}");
        assert!(
            e.0.contains("LimitExceeded"),
            "refused by the decode limit: {e}"
        );
        assert!(
            big <= DECODE_ALLOC_BOUND,
            "{what}: allocated {big} bytes at once"
        );
        slow.push((what, start.elapsed()));
    }
    // Plain values: a Vec<u8> or String of 2^60 bytes.
    for what in ["vec", "string"] {
        let rec = [&[codec::SCHEMA_VERSION][..], &huge].concat();
        let start = std::time::Instant::now();
        let (r, big) = largest_allocation(|| {
            if what == "vec" {
                codec::decode::<Vec<u8>>(what, &rec).map(|_| ())
            } else {
                codec::decode::<String>(what, &rec).map(|_| ())
            }
        });
        assert!(r.is_err(), "{what}: a 2^60-byte claim decoded");
        assert!(
            big <= DECODE_ALLOC_BOUND,
            "{what}: allocated {big} bytes at once"
        );
        slow.push((&"plain", start.elapsed()));
    }
    for (what, t) in slow {
        assert!(t.as_millis() < 100, "{what}: refusing the claim took {t:?}");
    }
    // An event record longer than the limit is refused before decoding.
    let long = header(&vec![0u8; MAX_EVENT_BYTES + 1]);
    let e = codec::decode_event("long", &long).unwrap_err();
    assert!(e.0.contains("exceeds the limit"), "{e}");
}

// ---- the JSON parser and the ledger ---------------------------------------------------------

/// A parse failure must be `invalid_command`, `invalid_amount` or `invalid_time` (SPEC §7 steps
/// 1–2): the parser knows nothing else.
fn check_parse(line: &str) {
    let (r, big) = largest_allocation(|| parse_line(line));
    if let Err((_, e)) = r {
        assert!(
            matches!(
                e.code,
                ErrorCode::InvalidCommand | ErrorCode::InvalidAmount | ErrorCode::InvalidTime
            ),
            "parse_line({line:?}) failed with {e}"
        );
        assert!(!e.message.is_empty());
    }
    assert!(
        big <= 64 * line.len() + (64 << 10),
        "parse_line of a {}-byte line allocated {big} bytes at once",
        line.len()
    );
}

const FIELDS: &[&str] = &[
    "op",
    "at",
    "key",
    "wallet",
    "pocket",
    "amount",
    "lot",
    "hold",
    "redemption",
    "expires_at",
    "activates_at",
    "program",
    "name",
    "unit",
    "pockets",
    "order",
    "holder",
    "identity",
    "email",
    "external_id",
    "reason",
    "method",
    "card",
    "commands",
    "scale",
    "kind",
    "asset",
];

const OPS: &[&str] = &wallet_ledger::Command::OPS;

fn json_leaf() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::Value;
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f)
            .map(Value::Number)
            .unwrap_or(Value::Null)),
        prop::sample::select(OPS).prop_map(Value::from),
        prop::sample::select(vec![
            "550e8400-e29b-41d4-a716-446655440000",
            "2026-01-01T00:00:00Z",
            "9999-99-99T99:99:99Z",
            "12.50",
            "0",
            "-1",
            "1e5",
            "0.0000000000000000000000000000001",
            "79228162514264337593543950336",
            "",
            " ",
            "\u{0}",
            "main",
            "earliest_issuance",
        ])
        .prop_map(Value::from),
        ".{0,80}".prop_map(Value::from),
    ]
}

fn json_value() -> impl Strategy<Value = serde_json::Value> {
    json_leaf().prop_recursive(5, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(serde_json::Value::Array),
            prop::collection::vec(
                (
                    prop_oneof![
                        prop::sample::select(FIELDS).prop_map(String::from),
                        ".{0,10}"
                    ],
                    inner
                ),
                0..8
            )
            .prop_map(|kv| serde_json::Value::Object(kv.into_iter().collect())),
        ]
    })
}

/// A command-shaped object: a real op and mostly real field names with arbitrary values.
fn command_object() -> impl Strategy<Value = serde_json::Value> {
    (
        prop::sample::select(OPS),
        prop::collection::vec((prop::sample::select(FIELDS), json_value()), 0..8),
    )
        .prop_map(|(op, fields)| {
            let mut m = serde_json::Map::new();
            m.insert("op".into(), op.into());
            for (k, v) in fields {
                m.insert(k.to_string(), v);
            }
            serde_json::Value::Object(m)
        })
}

/// A ledger with programs, holders and wallets, and the script generator that made them.
fn prepared() -> (Ledger, ScriptGen) {
    let l = memory_ledger();
    let mut g = ScriptGen::new(11);
    for line in g.setup(2, 3) {
        l.execute_line(&line).unwrap();
    }
    (l, g)
}

/// Executes a hostile line: any answer but a panic or a `storage` error is acceptable.
fn check_execute(l: &Ledger, line: &str) -> bool {
    match l.execute_line(line) {
        Ok(_) => true,
        Err(e) => {
            assert_ne!(
                e.code,
                ErrorCode::Storage,
                "a hostile line caused a storage error: {line}: {e}"
            );
            false
        }
    }
}

#[derive(Clone, Debug)]
enum Mutation {
    /// Replace bytes `at..at+len` by `with`.
    Splice(prop::sample::Index, usize, String),
    /// Set a top-level field to a JSON value (or remove it: None).
    Field(&'static str, Option<serde_json::Value>),
    /// Set a field of the first inner command of a batch.
    Inner(&'static str, serde_json::Value),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<prop::sample::Index>(), 0usize..12, ".{0,6}")
            .prop_map(|(i, n, s)| Mutation::Splice(i, n, s)),
        (prop::sample::select(FIELDS), prop::option::of(json_value()))
            .prop_map(|(f, v)| Mutation::Field(f, v)),
        (prop::sample::select(FIELDS), json_leaf()).prop_map(|(f, v)| Mutation::Inner(f, v)),
    ]
}

fn mutate(line: &str, m: &Mutation) -> String {
    match m {
        Mutation::Splice(at, n, with) => {
            let mut b = line.as_bytes().to_vec();
            let i = at.index(b.len().max(1)).min(b.len());
            let j = (i + n).min(b.len());
            b.splice(i..j, with.bytes());
            String::from_utf8_lossy(&b).into_owned()
        }
        Mutation::Field(f, v) => {
            let mut j: serde_json::Value = match serde_json::from_str(line) {
                Ok(j) => j,
                Err(_) => return line.to_string(),
            };
            if let Some(o) = j.as_object_mut() {
                match v {
                    Some(v) => {
                        o.insert(f.to_string(), v.clone());
                    }
                    None => {
                        o.remove(*f);
                    }
                }
            }
            j.to_string()
        }
        Mutation::Inner(f, v) => {
            let mut j: serde_json::Value = match serde_json::from_str(line) {
                Ok(j) => j,
                Err(_) => return line.to_string(),
            };
            if let Some(first) = j
                .get_mut("commands")
                .and_then(|c| c.as_array_mut())
                .and_then(|a| a.first_mut())
                .and_then(|c| c.as_object_mut())
            {
                first.insert(f.to_string(), v.clone());
            }
            j.to_string()
        }
    }
}

proptest! {
    #![proptest_config(config(1500))]

    #[test]
    fn parse_line_survives_arbitrary_strings(s in ".{0,300}") {
        check_parse(&s);
    }

    #[test]
    fn parse_line_survives_arbitrary_bytes(b in prop::collection::vec(any::<u8>(), 0..400)) {
        check_parse(&String::from_utf8_lossy(&b));
    }

    #[test]
    fn parse_line_survives_arbitrary_json(v in json_value()) {
        check_parse(&v.to_string());
    }

    #[test]
    fn parse_line_survives_command_shaped_json(v in command_object()) {
        check_parse(&v.to_string());
    }
}

proptest! {
    #![proptest_config(config(250))]

    /// Valid lines of a realistic workload, mutated, executed on a ledger with state: every
    /// answer is a result, and the ledger stays sound (verify) whatever was accepted.
    #[test]
    fn mutated_command_lines_never_break_the_ledger(
        seed in any::<u64>(),
        muts in prop::collection::vec(prop::collection::vec(mutation(), 0..4), 12),
    ) {
        let (l, _) = prepared();
        let mut g = ScriptGen::new(seed);
        g.setup(2, 3); // The same wallets as `prepared` (their ids do not depend on the seed).
        let mut accepted = 0;
        for ms in &muts {
            let mut line = g.next_line();
            for m in ms {
                line = mutate(&line, m);
            }
            check_parse(&line);
            accepted += usize::from(check_execute(&l, &line));
        }
        let r = l.verify().unwrap();
        prop_assert!(r.ok(), "after {accepted} accepted hostile lines: {:?}", r.problems);
    }

    #[test]
    fn execute_line_survives_arbitrary_json(vs in prop::collection::vec(command_object(), 1..8)) {
        let (l, _) = prepared();
        for v in &vs {
            check_execute(&l, &v.to_string());
        }
        let r = l.verify().unwrap();
        prop_assert!(r.ok(), "{:?}", r.problems);
    }

    #[test]
    fn execute_line_survives_arbitrary_bytes(b in prop::collection::vec(any::<u8>(), 0..300)) {
        let (l, _) = prepared();
        check_execute(&l, &String::from_utf8_lossy(&b));
    }
}

#[test]
fn deeply_nested_json_is_refused_without_overflowing_the_stack() {
    for depth in [100usize, 1_000, 100_000] {
        for (open, close) in [("[", "]"), ("{\"a\":", "}")] {
            let line = format!(
                r#"{{"op":"sweep","reason":{}1{}}}"#,
                open.repeat(depth),
                close.repeat(depth)
            );
            check_parse(&line);
            let (l, _) = prepared();
            check_execute(&l, &line);
        }
    }
}

// ---- the documented limits ------------------------------------------------------------------

fn code_of(l: &Ledger, line: &str) -> Result<(), (ErrorCode, String)> {
    l.execute_line(line)
        .map(|_| ())
        .map_err(|e| (e.code, e.message))
}

fn expect_code(l: &Ledger, line: &str, code: ErrorCode, mention: &str) {
    match code_of(l, line) {
        Ok(()) => panic!(
            "accepted, expected {code}: {}",
            &line[..line.len().min(200)]
        ),
        Err((c, m)) => {
            assert_eq!(c, code, "{m}");
            assert!(
                m.contains(mention),
                "message {m:?} does not mention {mention:?}"
            );
        }
    }
}

fn w0() -> String {
    wallet_uuid(0)
}
const AT: &str = "2026-01-01T00:00:00Z";

#[test]
fn the_line_length_limit() {
    let (l, _) = prepared();
    let pad = |n: usize| {
        let base = r#"{"op":"sweep","at":"2026-01-01T00:00:00Z"}"#;
        format!("{}{}", " ".repeat(n - base.len()), base)
    };
    assert_eq!(pad(MAX_LINE_BYTES).len(), MAX_LINE_BYTES);
    l.execute_line(&pad(MAX_LINE_BYTES))
        .expect("a line of exactly the limit is accepted");
    expect_code(
        &l,
        &pad(MAX_LINE_BYTES + 1),
        ErrorCode::InvalidCommand,
        &MAX_LINE_BYTES.to_string(),
    );
    // Far over the limit: refused before parsing, cheaply.
    let huge = format!(r#"{{"op":"sweep","reason":"{}"}}"#, "x".repeat(8 << 20));
    let start = std::time::Instant::now();
    let (_, big) = largest_allocation(|| parse_line(&huge));
    assert!(big < 4096, "an oversize line was copied ({big} bytes)");
    assert!(start.elapsed().as_millis() < 50);
}

#[test]
fn the_batch_size_limit() {
    let (l, _) = prepared();
    let batch = |n: usize| {
        format!(
            r#"{{"op":"batch","at":"{AT}","commands":[{}]}}"#,
            vec![r#"{"op":"sweep"}"#; n].join(",")
        )
    };
    l.execute_line(&batch(MAX_BATCH_COMMANDS))
        .expect("a batch at the limit is accepted");
    expect_code(
        &l,
        &batch(MAX_BATCH_COMMANDS + 1),
        ErrorCode::InvalidCommand,
        &MAX_BATCH_COMMANDS.to_string(),
    );
    expect_code(&l, &batch(0), ErrorCode::InvalidCommand, "at least one");
}

#[test]
fn the_id_key_and_text_limits() {
    let (l, _) = prepared();
    let w = w0();
    let credit = |lot: &str| {
        format!(r#"{{"op":"credit","at":"{AT}","wallet":"{w}","amount":"1","lot":"{lot}"}}"#)
    };
    l.execute_line(&credit(&"a".repeat(MAX_ID_BYTES))).unwrap();
    expect_code(
        &l,
        &credit(&"b".repeat(MAX_ID_BYTES + 1)),
        ErrorCode::InvalidCommand,
        "limit is 64",
    );
    // Bytes, not characters: 22 three-byte characters are 66 bytes.
    expect_code(
        &l,
        &credit(&"€".repeat(22)),
        ErrorCode::InvalidCommand,
        "66 bytes",
    );
    expect_code(&l, &credit(""), ErrorCode::InvalidCommand, "empty");
    expect_code(
        &l,
        &credit("a\\u0007b"),
        ErrorCode::InvalidCommand,
        "printable",
    );

    let keyed = |k: &str| format!(r#"{{"op":"sweep","at":"{AT}","key":"{k}"}}"#);
    l.execute_line(&keyed(&"k".repeat(MAX_KEY_BYTES))).unwrap();
    expect_code(
        &l,
        &keyed(&"q".repeat(MAX_KEY_BYTES + 1)),
        ErrorCode::InvalidCommand,
        "128",
    );

    let reason =
        |r: &str| format!(r#"{{"op":"freeze","at":"{AT}","wallet":"{w}","reason":"{r}"}}"#);
    expect_code(
        &l,
        &reason(&"r".repeat(MAX_TEXT_BYTES + 1)),
        ErrorCode::InvalidCommand,
        "limit is 256",
    );
    l.execute_line(&reason(&"r".repeat(MAX_TEXT_BYTES)))
        .unwrap();

    // Amounts, on another wallet (the one above is frozen now).
    let v = wallet_uuid(1);
    let amount =
        |a: &str| format!(r#"{{"op":"credit","at":"{AT}","wallet":"{v}","amount":"{a}"}}"#);
    let long = format!("1.{}", "0".repeat(MAX_AMOUNT_CHARS - 1));
    expect_code(&l, &amount(&long), ErrorCode::InvalidAmount, "too long");
    // 2^96: more than any figure can hold. Refused either as a malformed amount or as an
    // overflow (SPEC §5: checked arithmetic), never accepted and never rounded.
    let too_large = amount("79228162514264337593543950336");
    match code_of(&l, &too_large) {
        Err((ErrorCode::InvalidAmount | ErrorCode::AmountOverflow, _)) => {}
        other => panic!("a credit of 2^96 gave {other:?}"),
    }
    assert_verified(&l, "after the limit checks");
}

#[test]
fn the_program_template_limits() {
    let (l, _) = prepared();
    let program = |id: u64, pockets: usize, scale: u32| {
        let ps: Vec<String> = (0..pockets)
            .map(|i| {
                format!(r#"{{"pocket":"p{i}","name":"P","kind":"K","asset":"A","scale":{scale}}}"#)
            })
            .collect();
        format!(
            r#"{{"op":"define_program","at":"{AT}","program":{id},"name":"n","unit":"u","pockets":[{}]}}"#,
            ps.join(",")
        )
    };
    l.execute_line(&program(10, MAX_POCKETS, MAX_SCALE))
        .unwrap();
    expect_code(
        &l,
        &program(11, MAX_POCKETS + 1, 2),
        ErrorCode::InvalidCommand,
        "limit is 32",
    );
    expect_code(
        &l,
        &program(12, 1, MAX_SCALE + 1),
        ErrorCode::InvalidCommand,
        "limit is 18",
    );
    // A pockets array of a million entries is refused without building them all.
    let (r, big) = largest_allocation(|| code_of(&l, &program(13, 100_000, 2)));
    assert_eq!(r.unwrap_err().0, ErrorCode::InvalidCommand);
    assert!(big < 16 << 20, "allocated {big} bytes at once");
}

#[test]
fn the_open_holds_limit() {
    let (l, _) = prepared();
    let w = w0();
    l.execute_line(&format!(
        r#"{{"op":"credit","at":"{AT}","wallet":"{w}","amount":"1000000","lot":"big"}}"#
    ))
    .unwrap();
    let per_batch = 1000;
    for b in 0..(MAX_OPEN_HOLDS_PER_WALLET as usize / per_batch) {
        let items: Vec<String> = (0..per_batch)
            .map(|i| format!(r#"{{"op":"hold","wallet":"{w}","amount":"1","hold":"h{b}-{i}"}}"#))
            .collect();
        l.execute_line(&format!(
            r#"{{"op":"batch","at":"{AT}","commands":[{}]}}"#,
            items.join(",")
        ))
        .unwrap_or_else(|e| panic!("holds batch {b}: {e}"));
    }
    let hold = |id: &str| {
        format!(r#"{{"op":"hold","at":"{AT}","wallet":"{w}","amount":"1","hold":"{id}"}}"#)
    };
    expect_code(
        &l,
        &hold("one-too-many"),
        ErrorCode::AmountOverflow,
        "10000 allowed",
    );
    // The limit is on open holds: ending one makes room for one.
    l.execute_line(&format!(
        r#"{{"op":"release","at":"{AT}","wallet":"{w}","hold":"h0-0"}}"#
    ))
    .unwrap();
    l.execute_line(&hold("fits-again")).unwrap();
    expect_code(
        &l,
        &hold("and-again"),
        ErrorCode::AmountOverflow,
        "open holds",
    );
    assert_verified(&l, "10,000 open holds");
}

#[test]
fn the_per_wallet_list_limits() {
    let (l, _) = prepared();
    let w = w0();
    let link = |i: usize| {
        format!(
            r#"{{"op":"link_payment_method","at":"{AT}","wallet":"{w}","method":{{"account_name":"A","account_number":"{i:04}","account_type":"t","bank_code":"1","bank_name":"B"}}}}"#
        )
    };
    let card =
        |i: usize| format!(r#"{{"op":"issue_card","at":"{AT}","wallet":"{w}","card":"c{i}"}}"#);
    for i in 0..MAX_METHODS_PER_WALLET {
        l.execute_line(&link(i)).unwrap();
        l.execute_line(&card(i)).unwrap();
    }
    expect_code(
        &l,
        &link(99),
        ErrorCode::InvalidCommand,
        "16 payment methods",
    );
    expect_code(&l, &card(99), ErrorCode::InvalidCommand, "16 cards");
    // Lifecycle events: `create` plus freeze/unfreeze pairs up to the limit. A freeze needs room
    // for itself, its unfreeze and a close, so the wallet can never be stranded frozen.
    let v = wallet_uuid(1);
    let items: Vec<String> = (1..=MAX_LIFECYCLE_EVENTS - 3)
        .map(|i| {
            let op = if i % 2 == 1 { "freeze" } else { "unfreeze" };
            format!(r#"{{"op":"{op}","wallet":"{v}"}}"#)
        })
        .collect();
    l.execute_line(&format!(
        r#"{{"op":"batch","at":"{AT}","commands":[{}]}}"#,
        items.join(",")
    ))
    .unwrap();
    if (MAX_LIFECYCLE_EVENTS - 3) % 2 == 1 {
        // Ended frozen: the unfreeze always has room.
        l.execute_line(&format!(
            r#"{{"op":"unfreeze","at":"{AT}","wallet":"{v}"}}"#
        ))
        .unwrap();
    }
    expect_code(
        &l,
        &format!(r#"{{"op":"freeze","at":"{AT}","wallet":"{v}"}}"#),
        ErrorCode::InvalidTransition,
        "lifecycle events",
    );
    assert_verified(&l, "per-wallet limits");
}
