//! Crash test (SPEC §6 durability): `walletctl apply -` is fed a long generated script and killed
//! with SIGKILL at random points, again and again, on the same ledger file.
//!
//! After every kill the test reopens the file and checks that:
//! - `verify` passes (checksum chain, invariants, materialized state = replay);
//! - every command `walletctl` reported before the kill is present: its log positions exist, and
//!   a model ledger (in memory) fed exactly the acknowledged lines printed the same result lines;
//! - nothing is half-applied: the file's whole log equals, byte for byte (positions, checksums),
//!   the model's log after the acknowledged lines, or after those plus the one line that was in
//!   flight when the process died (a batch is all there or not at all);
//! - the next run resumes: the in-flight line is sent again when it was not committed, or when it
//!   carries an idempotency key (then it must come back as a replay).
//!
//! Half the runs flush the in-memory layer every few events (`--flush-every`), so kills land in
//! flushes as well as in commits.
//!
//! The choices (script, kill points) are seeded; `RELIABILITY_SEED` overrides the seed. The
//! exact instant of each kill still depends on scheduling, which is the point.

mod common;

use common::*;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use wallet_ledger::{FixedClock, Ledger};

const WALLETS: usize = 6;
/// Kills per run of the test (CI): at least 20.
const MIN_KILLS: usize = 40;

fn walletctl() -> Command {
    Command::new(env!("CARGO_BIN_EXE_walletctl"))
}

struct RunResult {
    /// Result lines the process printed, parsed, in order.
    results: Vec<serde_json::Value>,
    killed: bool,
}

/// Runs `walletctl apply -` on `lines`, killing it once it has printed `kill_after` results
/// (plus a random delay of up to `jitter_us`); `None` lets it finish.
fn run(
    db: &std::path::Path,
    lines: &[String],
    kill_after: Option<usize>,
    jitter_us: u64,
    flush_every: Option<u64>,
) -> RunResult {
    let mut cmd = walletctl();
    cmd.arg("--db").arg(db);
    // Half the runs flush every few events, so kills land in flushes as well as commits.
    if let Some(n) = flush_every {
        cmd.arg("--flush-every").arg(n.to_string());
    }
    let mut child = cmd
        .arg("apply")
        .arg("-")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn walletctl");
    let mut stdin = child.stdin.take().unwrap();
    let input = lines.join("\n") + "\n";
    let writer = std::thread::spawn(move || {
        // The child may die before it reads everything: a broken pipe is expected.
        let _ = stdin.write_all(input.as_bytes());
    });
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut results = Vec::new();
    let mut killed = false;
    if kill_after == Some(0) {
        std::thread::sleep(Duration::from_micros(jitter_us));
        let _ = child.kill();
        killed = true;
    }
    let mut buf = String::new();
    loop {
        buf.clear();
        match out.read_line(&mut buf) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) => panic!("reading walletctl output: {e}"),
        }
        // Only complete lines count as acknowledged.
        if buf.ends_with('\n') {
            results.push(serde_json::from_str(buf.trim_end()).expect("result line is JSON"));
        }
        if !killed && kill_after == Some(results.len()) {
            std::thread::sleep(Duration::from_micros(jitter_us));
            let _ = child.kill(); // SIGKILL on Unix
            killed = true;
        }
    }
    let status = child.wait().expect("wait");
    writer.join().unwrap();
    if !killed {
        assert!(
            matches!(status.code(), Some(0) | Some(1)),
            "walletctl exited with {status:?} without being killed"
        );
    }
    RunResult { results, killed }
}

fn open(db: &std::path::Path) -> Ledger {
    Ledger::open_with_clock(db, Box::new(FixedClock(far_future())))
        .unwrap_or_else(|e| panic!("reopening {} after a kill: {e}", db.display()))
}

fn without_line(v: &serde_json::Value) -> serde_json::Value {
    let mut v = v.clone();
    v.as_object_mut().unwrap().remove("line");
    v
}

#[test]
fn sigkill_at_random_points_loses_nothing_acknowledged() {
    let seed = seed(0xC0FFEE);
    let (lines, g) = ScriptGen::script(seed, 4, WALLETS, 3000);
    let wallets = g.wallet_ids();
    let max_w = WALLETS as u64;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("crash.redb");
    let mut rng = Rng::new(seed ^ 0xDEAD);
    // The model: a ledger in memory fed exactly the lines the file has committed.
    let model = memory_ledger();
    let mut next = 0usize;
    let mut kills = 0usize;
    let mut in_flight_committed = 0usize;
    let mut in_flight_absent = 0usize;
    let mut acked_total = 0usize;
    let mut resend_unseen = false;
    let mut unseen_replays = 0usize;
    let started = Instant::now();
    while next < lines.len() {
        let remaining = &lines[next..];
        let (kill_after, jitter) = if kills < MIN_KILLS + 20 {
            // Mostly mid-stream kills; a few right at start-up (before or while opening).
            let k = if rng.pct(8) {
                0
            } else {
                rng.range(1, 70) as usize
            };
            (Some(k), rng.below(3000))
        } else {
            (None, 0)
        };
        let flush_every = rng.pct(50).then(|| rng.range(1, 6));
        let r = run(&db, remaining, kill_after, jitter, flush_every);
        let resent_unseen = std::mem::take(&mut resend_unseen);
        kills += usize::from(r.killed);

        let real = open(&db);
        assert_verified(&real, &format!("after kill {kills}"));

        // Every acknowledged line, in order, with the result the model gives it.
        for (i, res) in r.results.iter().enumerate() {
            assert_eq!(
                res["line"].as_u64(),
                Some(i as u64 + 1),
                "result lines come in order"
            );
            let line = &remaining[i];
            let mut expect = result_json(&model, line);
            if i == 0 && resent_unseen && res["replayed"] == true && expect["replayed"].is_null() {
                // The re-sent line had been committed without appending an event (a keyed sweep
                // with nothing due): only its key was stored, invisible in the log. The model
                // has now executed it, identically.
                assert_eq!(expect["events"], 0, "kill {kills}: {line}");
                expect["replayed"] = true.into();
                unseen_replays += 1;
            }
            assert_eq!(
                without_line(res),
                expect,
                "kill {kills}: acknowledged line {} ({line}) differs from the model's result",
                next + i
            );
        }
        acked_total += r.results.len();
        // Acknowledged successes are present at the positions their receipts name.
        let present = positions(&real, max_w);
        for res in &r.results {
            if let (Some(a), Some(b)) = (
                res["first_position"].as_u64(),
                res["last_position"].as_u64(),
            ) {
                for p in a..=b {
                    assert!(
                        present.contains(&p),
                        "acknowledged {res} but position {p} is missing"
                    );
                }
            }
        }
        let acked_end = next + r.results.len();
        let real_log = log_digest(&real, max_w);
        let mut model_log = log_digest(&model, max_w);
        let mut resume = acked_end;
        if real_log != model_log {
            // The line in flight must then be committed, whole.
            assert!(
                r.killed && acked_end < lines.len(),
                "the file differs from the model although nothing was in flight"
            );
            let line = &lines[acked_end];
            let res = model.execute_line(line);
            assert!(
                res.is_ok(),
                "kill {kills}: the file holds more than the acknowledged lines, but the line in \
                 flight ({line}) fails on the model: {res:?}"
            );
            model_log = log_digest(&model, max_w);
            assert!(
                real_log == model_log,
                "kill {kills}: the file is neither the acknowledged state nor that plus line {} \
                 ({line}): half-applied?\nfile tail: {:#?}\nmodel tail: {:#?}",
                acked_end,
                &real_log[real_log.len().saturating_sub(6)..],
                &model_log[model_log.len().saturating_sub(6)..]
            );
            in_flight_committed += 1;
            // A keyed line is sent again: it must be answered as a replay.
            if !line.contains(r#""key":"#) {
                resume = acked_end + 1;
            }
        } else if r.killed && acked_end < lines.len() {
            in_flight_absent += 1;
            // Sent again next run; if it is keyed and was committed without an event, the
            // ledger will answer it as a replay.
            resend_unseen = lines[acked_end].contains(r#""key":"#);
        }
        assert_eq!(
            figures_digest(&real, &wallets, far_future()),
            figures_digest(&model, &wallets, far_future())
        );
        drop(real);
        next = resume;
    }
    // The whole script is in, exactly once.
    let real = open(&db);
    assert_verified(&real, "at the end");
    assert_eq!(log_digest(&real, max_w), log_digest(&model, max_w));
    assert!(
        kills >= MIN_KILLS,
        "only {kills} kills (need {MIN_KILLS}); the script is too short"
    );
    eprintln!(
        "crash: seed {seed}, {} lines, {kills} kills, {acked_total} results read, in-flight line \
         committed {in_flight_committed}x / absent {in_flight_absent}x ({unseen_replays}x committed \
         without events), {} events, {:?}",
        lines.len(),
        log_digest(&real, max_w).len(),
        started.elapsed()
    );
}

/// The generated workload must mostly succeed, or the crash test would prove little.
#[test]
fn the_generated_script_is_mostly_accepted() {
    let (lines, _) = ScriptGen::script(seed(0xC0FFEE), 4, WALLETS, 1400);
    let model = memory_ledger();
    let mut ok = 0;
    let mut codes = std::collections::BTreeMap::<String, usize>::new();
    for l in &lines {
        match model.execute_line(l) {
            Ok(_) => ok += 1,
            Err(e) => *codes.entry(e.code.to_string()).or_default() += 1,
        }
    }
    assert_verified(&model, "script");
    eprintln!("{ok}/{} accepted; rejections: {codes:?}", lines.len());
    assert!(
        ok * 100 >= lines.len() * 55,
        "only {ok} of {} lines accepted: {codes:?}",
        lines.len()
    );
}

/// A process killed while it creates a new ledger file leaves nothing that refuses to open: the
/// next open finds no ledger (and creates one), or the ledger with what was acknowledged.
#[test]
fn a_kill_while_the_file_is_being_created_leaves_a_file_that_opens() {
    let (lines, _) = ScriptGen::script(seed(0xF1E5), 1, 1, 0);
    let mut rng = Rng::new(seed(0xF1E5));
    let mut outcomes = std::collections::BTreeMap::<usize, usize>::new();
    for trial in 0..30 {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("new.redb");
        // Kill at once, or after a few microseconds to a few milliseconds: before, during or
        // after the creation of the file.
        let jitter = if trial < 5 { 0 } else { rng.below(8000) };
        let r = run(&db, &lines, Some(0), jitter, None);
        let l = open(&db);
        assert_verified(&l, &format!("trial {trial} (killed after {jitter} µs)"));
        let model = memory_ledger();
        for line in &lines[..r.results.len()] {
            model.execute_line(line).unwrap();
        }
        let got = log_digest(&l, 1);
        let acked = log_digest(&model, 1);
        if got != acked {
            model.execute_line(&lines[r.results.len()]).unwrap();
            assert_eq!(got, log_digest(&model, 1), "trial {trial}: half-applied");
        }
        *outcomes.entry(r.results.len()).or_default() += 1;
    }
    eprintln!("kills during creation: results read before the kill → trials: {outcomes:?}");
}
