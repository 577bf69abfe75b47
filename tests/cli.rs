//! `walletctl` end to end (SPEC §9): the real binary on scripts in a temporary directory.
//!
//! Covered: the worked example at the end of §9 (apply, then `show --as-of` on Mar 2 and Mar 3
//! 2026 printing exactly the spec's figures), the result line shapes, exit codes 0/1/2,
//! malformed lines that do not stop the run, amounts as JSON numbers and strings parsed exactly,
//! `history`, `verify` after every script, and re-applying a keyed script (every line a replay,
//! nothing appended).

use serde_json::{Value, json};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const W: &str = "550e8400-e29b-41d4-a716-446655440000";

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    /// stdout as JSON values, one per line.
    fn lines(&self) -> Vec<Value> {
        self.stdout
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l:?}")))
            .collect()
    }
    fn json(&self) -> Value {
        serde_json::from_str(self.stdout.trim())
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.stdout))
    }
}

fn walletctl_in(dir: &Path, args: &[&str], stdin: Option<&str>) -> Run {
    let mut child = Command::new(env!("CARGO_BIN_EXE_walletctl"))
        .args(args)
        .current_dir(dir)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("walletctl runs");
    if let Some(input) = stdin {
        // The binary may exit before reading (e.g. an unopenable file): a broken pipe is fine.
        let _ = child.stdin.take().unwrap().write_all(input.as_bytes());
    }
    let out = child.wait_with_output().unwrap();
    Run {
        code: out.status.code().expect("exited normally"),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

/// A temporary directory with a ledger file path in it.
struct Scratch {
    dir: tempfile::TempDir,
}

impl Scratch {
    fn new() -> Scratch {
        Scratch {
            dir: tempfile::tempdir().unwrap(),
        }
    }
    fn db(&self) -> PathBuf {
        self.dir.path().join("wallets.redb")
    }
    fn file(&self, name: &str, text: &str) -> PathBuf {
        let p = self.dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    }
    /// `walletctl --db <db> args…`
    fn run(&self, args: &[&str]) -> Run {
        let db = self.db();
        let mut all = vec!["--db", db.to_str().unwrap()];
        all.extend_from_slice(args);
        walletctl_in(self.dir.path(), &all, None)
    }
    fn apply(&self, path: &Path) -> Run {
        self.run(&["apply", path.to_str().unwrap()])
    }
    fn apply_text(&self, name: &str, text: &str) -> Run {
        let p = self.file(name, text);
        self.apply(&p)
    }
    fn verify_ok(&self) -> Value {
        let r = self.run(&["verify"]);
        assert_eq!(r.code, 0, "verify: {}{}", r.stdout, r.stderr);
        let v = r.json();
        assert_eq!(v["ok"], true, "{v}");
        v
    }
}

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn show(s: &Scratch, wallet: &str, as_of: &str) -> Value {
    let r = s.run(&["show", wallet, "--as-of", as_of]);
    assert_eq!(r.code, 0, "show: {}", r.stderr);
    r.json()
}

/// The base ledger most tests start from: one program with pockets of scale 2 and 3, a holder
/// and wallet `W`.
const BASE: &str = r#"{"op":"define_program","at":"2026-01-01T00:00:00Z","program":1,"name":"P","unit":"U","pockets":[{"pocket":"main","name":"Main","kind":"CASH","asset":"USD","scale":2},{"pocket":"fine","name":"Fine","kind":"CASH","asset":"MIL","scale":3}]}
{"op":"register_holder","at":"2026-01-01T00:00:00Z","holder":"37b08803-c1af-4e10-849f-530264bac7f8"}
{"op":"open_wallet","at":"2026-01-01T00:00:00Z","wallet":"550e8400-e29b-41d4-a716-446655440000","holder":"37b08803-c1af-4e10-849f-530264bac7f8","program":1}
"#;

#[test]
fn the_worked_example_of_section_9() {
    let s = Scratch::new();
    let r = s.apply(&repo("examples/scripts/worked_example.jsonl"));
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let lines = r.lines();
    assert_eq!(lines.len(), 9);
    for (i, l) in lines.iter().enumerate() {
        assert_eq!(l["line"], i + 1, "{l}");
        assert_eq!(l["ok"], true, "{l}");
    }
    let pocket = |f: [&str; 9]| {
        json!({"pocket":"main","asset":"USD","promised":f[0],"credited":f[1],"redeemed":f[2],
            "expired":f[3],"balance":f[4],"on_hold":f[5],"available":f[6],"pending":f[7],
            "total":f[8]})
    };
    // On Mar 2 the hold (A's 70, B's 10) is still open: A's held 70 has not expired; C (20)
    // activated on Feb 1.
    assert_eq!(
        show(&s, W, "2026-03-02T00:00:00Z"),
        json!({"wallet": W, "status": "active", "as_of": "2026-03-02T00:00:00Z",
            "pockets": [pocket(["0", "170", "30", "0", "140", "80", "60", "80", "140"])]})
    );
    // Released on Mar 3: A's 70 expires at once, B gets its 10 back. The spec's figures:
    // credited 170, redeemed 30, expired 70, promised 0, balance 70, on_hold 0, available 70.
    assert_eq!(
        show(&s, W, "2026-03-03T00:00:00Z"),
        json!({"wallet": W, "status": "active", "as_of": "2026-03-03T00:00:00Z",
            "pockets": [pocket(["0", "170", "30", "70", "70", "0", "70", "0", "70"])]})
    );
    // Before C activates, it is promised.
    let jan = show(&s, W, "2026-01-20T00:00:00Z");
    assert_eq!(
        jan["pockets"][0],
        pocket(["20", "150", "30", "0", "120", "80", "40", "100", "140"])
    );
    s.verify_ok();
}

#[test]
fn the_example_lines_of_section_9() {
    let s = Scratch::new();
    let r = s.apply(&repo("tests/scripts/spec_section9.jsonl"));
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let lines = r.lines();
    assert_eq!(lines[3]["lot"], "L1");
    assert_eq!(lines[3]["wallet"], W);
    let f = &show(&s, W, "2026-01-05T00:00:00Z")["pockets"][0];
    assert_eq!(f["asset"], "OFFER");
    assert_eq!(f["balance"], "69.5");
    assert_eq!(f["redeemed"], "30.5");
    // L1 expires on Mar 1 with what is left of it.
    let f = &show(&s, W, "2026-03-01T00:00:00Z")["pockets"][0];
    assert_eq!(
        (&f["expired"], &f["balance"]),
        (&json!("69.5"), &json!("0"))
    );
    s.verify_ok();
}

#[test]
fn result_lines_have_the_documented_shapes() {
    let s = Scratch::new();
    let script = format!(
        "{BASE}{}\n{}\n{}\n",
        r#"{"op":"credit","at":"2026-01-02T00:00:00Z","wallet":"550e8400-e29b-41d4-a716-446655440000","amount":"10","lot":"L1"}"#,
        r#"{"op":"redeem","at":"2026-01-02T00:00:00Z","wallet":"550e8400-e29b-41d4-a716-446655440000","amount":"11"}"#,
        r#"{"op":"batch","at":"2026-01-02T00:00:00Z","commands":[{"op":"redeem","wallet":"550e8400-e29b-41d4-a716-446655440000","amount":"1"},{"op":"hold","wallet":"550e8400-e29b-41d4-a716-446655440000","amount":"10"}]}"#,
    );
    let r = s.apply_text("shapes.jsonl", &script);
    assert_eq!(r.code, 1, "{}", r.stdout);
    let lines = r.lines();
    assert_eq!(lines.len(), 6);
    // Success: line, ok, then the receipt (ids used or assigned, log positions).
    let ok = lines[3].as_object().unwrap();
    let keys: Vec<&str> = ok.keys().map(String::as_str).take(2).collect();
    assert_eq!(keys, ["line", "ok"], "line and ok come first: {ok:?}");
    assert_eq!(ok["line"], 4);
    assert_eq!(ok["ok"], true);
    assert_eq!(ok["op"], "credit");
    assert_eq!(ok["wallet"], W);
    assert_eq!(ok["lot"], "L1");
    assert_eq!(ok["pocket"], "main");
    assert_eq!(ok["events"], 1);
    assert!(ok["first_position"].as_u64().is_some() && ok["last_position"] == ok["first_position"]);
    assert!(
        !ok.contains_key("replayed"),
        "replayed appears only on replays"
    );
    // Failure: exactly line, ok and error {code, message}.
    assert_eq!(
        lines[4],
        json!({"line": 5, "ok": false, "error": {"code": "insufficient_funds",
            "message": lines[4]["error"]["message"]}})
    );
    assert!(
        lines[4]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("11")
    );
    // A failing batch adds the index of the failing command.
    assert_eq!(lines[5]["error"]["code"], "insufficient_funds");
    assert_eq!(lines[5]["error"]["index"], 1);
    // Positions grow across successful lines.
    let last: Vec<u64> = lines[..4]
        .iter()
        .map(|l| l["last_position"].as_u64().unwrap())
        .collect();
    assert!(last.windows(2).all(|w| w[0] < w[1]), "{last:?}");
    s.verify_ok();
}

#[test]
fn malformed_lines_are_reported_and_the_run_goes_on() {
    let s = Scratch::new();
    let script = format!(
        "{BASE}not json at all\n\n{}\n{{\"op\":\"teleport\"}}\n{}\n\u{7f}\u{1}{{\n{}\n",
        r#"{"op":"credit","at":"2026-01-02T00:00:00Z","wallet":"550e8400-e29b-41d4-a716-446655440000","amount":"10"}"#,
        r#"{"op":"credit","at":"2026-01-02T00:00:00Z","wallet":"550e8400-e29b-41d4-a716-446655440000","amount":"5","colour":"red"}"#,
        r#"{"op":"credit","at":"2026-01-03T00:00:00Z","wallet":"550e8400-e29b-41d4-a716-446655440000","amount":"1"}"#,
    );
    let mut bytes = script.into_bytes();
    bytes.extend_from_slice(b"\xff\xfe not utf-8\n");
    bytes.extend_from_slice(
        br#"{"op":"credit","at":"2026-01-04T00:00:00Z","wallet":"550e8400-e29b-41d4-a716-446655440000","amount":"2"}"#,
    );
    let p = s.dir.path().join("malformed.jsonl");
    std::fs::write(&p, bytes).unwrap();
    let r = s.apply(&p);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    let lines = r.lines();
    let by_line: Vec<(u64, bool, Option<&str>)> = lines
        .iter()
        .map(|l| {
            (
                l["line"].as_u64().unwrap(),
                l["ok"].as_bool().unwrap(),
                l["error"]["code"].as_str(),
            )
        })
        .collect();
    // Line numbers are those of the file (the blank line 5 prints nothing); the last line has no
    // newline.
    assert_eq!(
        by_line,
        [
            (1, true, None),
            (2, true, None),
            (3, true, None),
            (4, false, Some("invalid_command")),
            (6, true, None),
            (7, false, Some("invalid_command")),
            (8, false, Some("invalid_command")),
            (9, false, Some("invalid_command")),
            (10, true, None),
            (11, false, Some("invalid_command")),
            (12, true, None),
        ]
    );
    assert!(
        lines[5]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("teleport")
    );
    assert!(
        lines[6]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("colour")
    );
    assert_eq!(
        show(&s, W, "2026-01-05T00:00:00Z")["pockets"][0]["balance"],
        "13"
    );
    s.verify_ok();
}

#[test]
fn amounts_are_json_numbers_or_strings_parsed_exactly() {
    let s = Scratch::new();
    let c = |at: &str, pocket: &str, amount: &str| {
        format!(
            r#"{{"op":"credit","at":"{at}","wallet":"{W}","pocket":"{pocket}","amount":{amount}}}"#
        )
    };
    let script = [
        BASE.trim_end().to_string(),
        // 0.1 + 0.2 as numbers: 0.3 exactly, not 0.30000000000000004.
        c("2026-01-02T00:00:00Z", "main", "0.1"),
        c("2026-01-02T00:00:00Z", "main", "0.2"),
        // More digits than an f64 holds, as a number and as a string.
        c("2026-01-02T00:00:00Z", "fine", "12345678901234567.125"),
        c("2026-01-02T00:00:00Z", "fine", r#""98765432109876543.21""#),
        // Trailing zeros beyond the scale are not more places.
        c("2026-01-02T00:00:00Z", "main", "1.000000"),
        c("2026-01-02T00:00:00Z", "main", r#""2.50""#),
        // Refused: exponents, signs, too many places, non-numbers.
        c("2026-01-03T00:00:00Z", "main", "1e2"),
        c("2026-01-03T00:00:00Z", "main", "-3"),
        c("2026-01-03T00:00:00Z", "main", r#""0.001""#),
        c("2026-01-03T00:00:00Z", "main", "0.001"),
        c("2026-01-03T00:00:00Z", "main", "true"),
        c("2026-01-03T00:00:00Z", "main", r#""""#),
    ]
    .join("\n");
    let r = s.apply_text("amounts.jsonl", &script);
    assert_eq!(r.code, 1);
    let codes: Vec<Value> = r.lines()[3..]
        .iter()
        .map(|l| l["error"]["code"].clone())
        .collect();
    assert_eq!(
        codes,
        [
            Value::Null,
            Value::Null,
            Value::Null,
            Value::Null,
            Value::Null,
            Value::Null,
            json!("invalid_amount"),
            json!("invalid_amount"),
            json!("scale_exceeded"),
            json!("scale_exceeded"),
            json!("invalid_command"),
            json!("invalid_amount"),
        ]
    );
    let v = show(&s, W, "2026-01-03T00:00:00Z");
    assert_eq!(v["pockets"][0]["credited"], "3.8");
    assert_eq!(
        v["pockets"][1]["credited"], "111111111011111110.335",
        "12345678901234567.125 + 98765432109876543.21"
    );
    s.verify_ok();
}

#[test]
fn exit_codes() {
    let s = Scratch::new();
    // 0: every line succeeded.
    assert_eq!(s.apply_text("base.jsonl", BASE).code, 0);
    // 1: some line was rejected.
    let r = s.apply_text(
        "one-bad.jsonl",
        r#"{"op":"credit","at":"2026-01-02T00:00:00Z","wallet":"550e8400-e29b-41d4-a716-446655440000","amount":"1"}
{"op":"redeem","at":"2026-01-02T00:00:00Z","wallet":"550e8400-e29b-41d4-a716-446655440000","amount":"2"}
"#,
    );
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert_eq!(r.lines().len(), 2);
    // 2: usage.
    for args in [
        vec![],
        vec!["frobnicate"],
        vec!["apply"],
        vec!["apply", "a", "b"],
        vec!["show"],
        vec!["show", "not-a-uuid"],
        vec!["verify", "extra"],
        vec!["--colour", "verify"],
        vec!["show", W, "--as-of", "tomorrow"],
        vec!["verify", "--as-of", "2026-01-01T00:00:00Z"],
        vec!["--db"],
    ] {
        let r = s.run(&args);
        assert_eq!(r.code, 2, "{args:?}: {}{}", r.stdout, r.stderr);
        assert!(!r.stderr.is_empty(), "{args:?} says why on stderr");
    }
    // 2: a script that cannot be read.
    let r = s.run(&["apply", "/nonexistent/script.jsonl"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    // 2: a ledger file that cannot be opened: a directory, a file that is not a ledger, a path
    // whose directory does not exist.
    let dir = s.dir.path().join("a-directory");
    std::fs::create_dir(&dir).unwrap();
    let garbage = s.file("garbage.redb", &"not a redb file\n".repeat(1000));
    let missing = s.dir.path().join("no/such/dir/wallets.redb");
    for db in [&dir, &garbage, &missing] {
        for args in [vec!["verify"], vec!["show", W], vec!["apply", "-"]] {
            let mut all = vec!["--db", db.to_str().unwrap()];
            all.extend(args.iter().copied());
            let r = walletctl_in(s.dir.path(), &all, Some(BASE));
            assert_eq!(r.code, 2, "{db:?} {args:?}: {}{}", r.stdout, r.stderr);
            assert!(r.stdout.is_empty(), "nothing applied: {}", r.stdout);
        }
    }
    assert_eq!(
        std::fs::read(&garbage).unwrap(),
        "not a redb file\n".repeat(1000).into_bytes(),
        "a file that is not a ledger is left alone"
    );
    // The good ledger is still fine.
    s.verify_ok();
}

#[test]
fn apply_reads_standard_input() {
    let s = Scratch::new();
    let db = s.db();
    let r = walletctl_in(
        s.dir.path(),
        &["--db", db.to_str().unwrap(), "apply", "-"],
        Some(BASE),
    );
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert_eq!(r.lines().len(), 3);
    // The default ledger file is ./wallets.redb.
    let r = walletctl_in(s.dir.path(), &["verify"], None);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert_eq!(r.json()["events"], 3);
}

#[test]
fn history_prints_the_wallets_events_in_order() {
    let s = Scratch::new();
    let applied = s.apply(&repo("examples/scripts/worked_example.jsonl"));
    assert_eq!(applied.code, 0);
    let receipts = applied.lines();
    let r = s.run(&["history", W]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let events = r.lines();
    let names: Vec<&str> = events
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    // C's activation on Feb 1 is recorded (before the release) when the release on Mar 3 runs;
    // A's held 70 had no free value to expire on Mar 1, and expires at the release.
    assert_eq!(
        names,
        [
            "wallet_opened",
            "credited",
            "credited",
            "credited",
            "redeemed",
            "held",
            "activated",
            "released"
        ]
    );
    let seqs: Vec<u64> = events.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, (1..=8).collect::<Vec<_>>());
    let positions: Vec<u64> = events
        .iter()
        .map(|e| e["position"].as_u64().unwrap())
        .collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{positions:?}");
    assert_eq!(events[6]["at"], "2026-02-01T00:00:00Z");
    assert_eq!(events[6]["lot"], "C");
    assert_eq!(events[5]["hold"], "H1");
    assert_eq!(events[5]["amount"], "80");
    assert_eq!(events[7]["at"], "2026-03-03T00:00:00Z");
    assert_eq!(events[7]["timed_out"], false);
    // Allocations, SPEC §9's worked example: the redemption took 30 from A; the hold A's 70,
    // then B's 10; at the release A's 70 expired at once and B got its 10 back. Events that
    // move no lot's value print none.
    assert_eq!(
        events[4]["allocations"],
        json!([{"lot":"A","amount":"30","to":"redeemed"}])
    );
    assert_eq!(
        events[5]["allocations"],
        json!([{"lot":"A","amount":"70","to":"held"},{"lot":"B","amount":"10","to":"held"}])
    );
    assert_eq!(
        events[7]["allocations"],
        json!([{"lot":"A","amount":"70","to":"expired"},{"lot":"B","amount":"10","to":"free"}])
    );
    for e in [&events[0], &events[1], &events[6]] {
        assert!(e.get("allocations").is_none(), "{e}");
    }
    // The exact line of a credit, byte for byte (the shape this file format has always printed).
    assert_eq!(
        r.stdout.lines().nth(1).unwrap(),
        r#"{"pocket":"main","lot":"A","amount":"100","activates_at":"2026-01-01T00:00:00Z","expires_at":"2026-03-01T00:00:00Z","seq":2,"position":4,"at":"2026-01-01T00:00:00Z","event":"credited"}"#
    );
    // The receipts name the same log positions: the release (line 9) appended the activation
    // due on Feb 1 and the release itself.
    let release = &receipts[8];
    assert_eq!(release["events"], 2);
    assert_eq!(release["first_position"], events[6]["position"]);
    assert_eq!(release["last_position"], events[7]["position"]);
    for (receipt, event) in receipts[2..8].iter().zip(&events[..6]) {
        assert_eq!(receipt["first_position"], event["position"], "{receipt}");
    }
    // An unknown wallet is not a usage error, and prints nothing on stdout.
    let r = s.run(&["history", "9f0c1a2b-3c4d-4e5f-8a9b-0c1d2e3f4a5b"]);
    assert_ne!(r.code, 0);
    assert!(r.stdout.is_empty());
}

#[test]
fn reapplying_a_keyed_script_appends_nothing() {
    let s = Scratch::new();
    let script = repo("tests/scripts/keyed.jsonl");
    let first = s.apply(&script);
    assert_eq!(first.code, 0, "{}{}", first.stdout, first.stderr);
    let before = s.verify_ok();
    let history = s.run(&["history", W]).stdout;
    let figures = show(&s, W, "2026-02-01T00:00:00Z");
    let second = s.apply(&script);
    assert_eq!(second.code, 0, "{}{}", second.stdout, second.stderr);
    let (a, b) = (first.lines(), second.lines());
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(y["replayed"], true, "{y}");
        // The original receipt, marked as a replay.
        let mut y = y.clone();
        y.as_object_mut().unwrap().remove("replayed");
        assert_eq!(*x, y);
    }
    assert_eq!(s.verify_ok()["events"], before["events"]);
    assert_eq!(s.run(&["history", W]).stdout, history);
    assert_eq!(show(&s, W, "2026-02-01T00:00:00Z"), figures);
    // The same key with another command is refused.
    let r = s.apply_text(
        "conflict.jsonl",
        r#"{"op":"credit","at":"2026-01-02T00:00:00Z","wallet":"550e8400-e29b-41d4-a716-446655440000","amount":"250.51","key":"k-credit-1"}"#,
    );
    assert_eq!(r.code, 1);
    assert_eq!(r.lines()[0]["error"]["code"], "idempotency_conflict");
    // The figures the script produced: 250.50 + 0.00000001 BTC; the 50 hold timed out on Jan 4;
    // the batch redeemed 10 and refunded 2.5.
    let p = &figures["pockets"];
    assert_eq!(p[0]["credited"], "250.5");
    assert_eq!(p[0]["redeemed"], "7.5");
    assert_eq!(p[0]["on_hold"], "0");
    assert_eq!(p[0]["balance"], "243");
    assert_eq!(p[1]["balance"], "0.00000001");
}

#[test]
fn verify_passes_after_every_script() {
    let scripts = [
        repo("examples/scripts/worked_example.jsonl"),
        repo("tests/scripts/spec_section9.jsonl"),
        repo("tests/scripts/keyed.jsonl"),
    ];
    let s = Scratch::new();
    for script in &scripts {
        // Applied one after the other into the same file: later scripts clash with earlier
        // ones (duplicate programs, wallets, backdating…), which must leave the file sound.
        let r = s.apply(script);
        assert!(r.code == 0 || r.code == 1, "{}", r.stderr);
        s.verify_ok();
    }
}

/// `tail` prints every event after a position, one JSON object per line, in position order:
/// from 0 the whole log; from P exactly what follows P, so a consumer restarting from the last
/// position it printed misses nothing and repeats nothing.
#[test]
fn tail_prints_the_log_from_a_position() {
    let s = Scratch::new();
    let applied = s.apply(&repo("examples/scripts/worked_example.jsonl"));
    assert_eq!(applied.code, 0);
    let r = s.run(&["tail"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let all = r.lines();
    assert_eq!(all.len(), 10);
    for (i, e) in all.iter().enumerate() {
        assert_eq!(e["position"], i as u64 + 1, "{e}");
    }
    // Ledger-stream events belong to no wallet.
    assert_eq!(all[0]["event"], "program_defined");
    assert_eq!(all[0]["wallet"], Value::Null);
    assert_eq!(all[1]["event"], "holder_registered");
    // A wallet's events: the same as `history` prints, with the wallet (and no allocations).
    let history = s.run(&["history", W]).lines();
    for (t, h) in all[2..].iter().zip(&history) {
        assert_eq!(t["wallet"], W);
        let mut h = h.clone();
        let m = h.as_object_mut().unwrap();
        m.remove("allocations");
        m.insert("wallet".into(), json!(W));
        assert_eq!(*t, h);
    }
    assert_eq!(
        r.stdout.lines().nth(3).unwrap(),
        r#"{"position":4,"wallet":"550e8400-e29b-41d4-a716-446655440000","seq":2,"at":"2026-01-01T00:00:00Z","event":"credited","pocket":"main","lot":"A","amount":"100","activates_at":"2026-01-01T00:00:00Z","expires_at":"2026-03-01T00:00:00Z"}"#
    );
    for from in [0usize, 1, 5, 9, 10, 99] {
        let r = s.run(&["tail", "--from", &from.to_string()]);
        assert_eq!(r.code, 0, "{}", r.stderr);
        assert_eq!(r.lines(), all[from.min(10)..], "--from {from}");
    }
    for bad in [
        vec!["tail", "--from", "-1"],
        vec!["tail", "--from"],
        vec!["tail", "x"],
        vec!["show", W, "--follow"],
    ] {
        let r = s.run(&bad);
        assert_eq!(r.code, 2, "{bad:?}");
        assert!(r.stdout.is_empty());
    }
}

/// `tail --follow` keeps printing what other processes append: it holds the file only while it
/// reads, so two `walletctl apply` runs write while it follows; it prints their events once
/// each, in order, and is then killed.
#[test]
fn tail_follow_prints_what_other_processes_append() {
    use std::io::BufRead;
    let s = Scratch::new();
    assert_eq!(s.apply_text("base.jsonl", BASE).code, 0);
    let db = s.db();
    let mut follower = Command::new(env!("CARGO_BIN_EXE_walletctl"))
        .args([
            "--db",
            db.to_str().unwrap(),
            "tail",
            "--follow",
            "--from",
            "1",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let stdout = follower.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let next = |what: &str| -> Value {
        let line = rx
            .recv_timeout(std::time::Duration::from_secs(60))
            .unwrap_or_else(|e| panic!("no line for {what}: {e}"));
        serde_json::from_str(&line).unwrap()
    };
    // What was there: positions 2 and 3.
    assert_eq!(next("the holder")["position"], 2);
    assert_eq!(next("the wallet")["position"], 3);
    for (i, amount) in ["1.5", "2"].iter().enumerate() {
        let r = s.apply_text(
            &format!("more{i}.jsonl"),
            &format!(
                r#"{{"op":"credit","at":"2026-01-0{}T00:00:00Z","wallet":"{W}","amount":"{amount}","lot":"L{i}"}}"#,
                i + 2
            ),
        );
        assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
        let e = next("a credit");
        assert_eq!(e["position"], 4 + i as u64, "{e}");
        assert_eq!(e["event"], "credited");
        assert_eq!(e["lot"], format!("L{i}"));
        assert_eq!(e["amount"], *amount);
    }
    follower.kill().unwrap();
    let _ = follower.wait();
    reader.join().unwrap();
    // Nothing else was printed (no repeat of an event already shown).
    assert!(rx.try_recv().is_err());
    s.verify_ok();
}

/// `stats`: the ledger's counts, the file's bytes and every table's.
#[test]
fn stats_prints_the_ledgers_size() {
    let s = Scratch::new();
    assert_eq!(
        s.apply(&repo("examples/scripts/worked_example.jsonl")).code,
        0
    );
    let r = s.run(&["stats"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v = r.json();
    assert_eq!(
        (&v["events"], &v["wallets"], &v["holders"], &v["programs"]),
        (&json!(10), &json!(1), &json!(1), &json!(1))
    );
    // The file's size while stats had it open (redb may trim the file on close).
    let file = v["file_bytes"].as_u64().unwrap();
    assert!(file > 0);
    let tables = v["tables"].as_object().unwrap();
    assert_eq!(tables["log"]["entries"], 10);
    assert!(tables["log"]["stored_bytes"].as_u64().unwrap() > 0);
    let mut sum = 0;
    for (name, t) in tables {
        let parts: u64 = ["stored_bytes", "metadata_bytes", "fragmented_bytes"]
            .iter()
            .map(|k| t[k].as_u64().unwrap())
            .sum();
        assert_eq!(t["bytes"], parts, "{name}");
        sum += parts;
    }
    assert!(sum <= file, "tables {sum} > file {file}");
    for name in ["meta", "wallets", "wallet_rows", "holders", "idempotency"] {
        assert!(tables.contains_key(name), "{name}");
    }
    // Closed cleanly by the apply: nothing left in memory.
    assert_eq!(v["unflushed"]["events"], 0);
    // Piped, verify draws no progress bar: stderr stays empty.
    let r = s.run(&["verify"]);
    assert_eq!(r.code, 0);
    assert_eq!(r.stderr, "");
}

/// `compact` rewrites the file and changes nothing a read answers; piped, it prints one JSON
/// object and no progress bar.
#[test]
fn compact_keeps_every_figure() {
    let s = Scratch::new();
    let r = s.apply(&repo("examples/scripts/worked_example.jsonl"));
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let before = show(&s, W, "2026-03-03T00:00:00Z");
    let r = s.run(&["compact"]);
    assert_eq!(r.code, 0, "compact: {}{}", r.stdout, r.stderr);
    assert_eq!(
        r.stderr, "",
        "no progress bar when stderr is not a terminal"
    );
    let v = r.json();
    assert_eq!(v["ok"], true, "{v}");
    assert!(v["file_bytes_after"].as_u64().unwrap() > 0, "{v}");
    assert_eq!(show(&s, W, "2026-03-03T00:00:00Z"), before);
    s.verify_ok();
}
