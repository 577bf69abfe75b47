//! `walletctl tail`, `stats` and the progress bar of long work: kept beside the main file so
//! that it stays the argument parsing and the original commands.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::{IsTerminal, Write};
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime};
use wallet_ledger::Ledger;
use wallet_ledger::OpenOptions;

/// Most events one read of the feed returns (then `tail` reads again).
const PAGE: usize = 1000;

/// How often `tail --follow` looks whether the file changed, and how often it reads it anyway.
const LOOK_EVERY: Duration = Duration::from_millis(100);
const READ_ANYWAY_EVERY: Duration = Duration::from_secs(2);

/// How long a command waits for another `walletctl` (a `tail --follow` reading, an `apply`
/// writing) to release the file before giving up.
pub const WAIT_FOR_FILE: Duration = Duration::from_secs(10);

/// Whether an open failed because another process has the file open (redb locks it).
pub fn is_locked(e: &wallet_ledger::OpenError) -> bool {
    matches!(e, wallet_ledger::OpenError::AlreadyOpen)
}

/// Opens the ledger, waiting up to `patience` while another process has the file open.
pub fn open_waiting(
    db: &str,
    options: impl Fn() -> OpenOptions,
    patience: Option<Duration>,
) -> Result<Ledger, wallet_ledger::OpenError> {
    let started = Instant::now();
    loop {
        match options().open(db) {
            Err(e) if is_locked(&e) && patience.is_none_or(|p| started.elapsed() < p) => {
                std::thread::sleep(Duration::from_millis(20));
            }
            r => return r,
        }
    }
}

/// Prints every event after `after` as one JSON line each; returns the last position printed
/// (or `after`), or `None` when stdout is closed.
fn print_changes(ledger: &Ledger, mut after: u64) -> Result<Option<u64>, ExitCode> {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    loop {
        let page = ledger.changes(after, PAGE).map_err(fatal)?;
        for c in &page {
            let line = serde_json::to_string(c).map_err(fatal)?;
            if writeln!(out, "{line}").is_err() {
                return Ok(None);
            }
            after = c.position;
        }
        if out.flush().is_err() {
            return Ok(None);
        }
        if page.len() < PAGE {
            return Ok(Some(after));
        }
    }
}

fn fatal(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("walletctl: {msg}");
    ExitCode::from(2)
}

/// The file's size and modification time: what a commit by another process changes.
fn stamp(db: &str) -> Option<(u64, SystemTime)> {
    let m = std::fs::metadata(db).ok()?;
    Some((m.len(), m.modified().ok()?))
}

/// `tail [--from P] [--follow]`. Without `--follow`, prints what is there and exits. With it,
/// the file is held only while it is read, so other processes (a `walletctl apply`) can write
/// between reads: redb lets one process at a time open a file. It is read again when its size
/// or modification time changes (looked at every 100 ms; this process's own open changes them
/// too, so it looks from after its own close), and every 2 s in any case. Within one process
/// [`Ledger::wait_for`] wakes a reader at the commit instead.
pub fn tail(
    ledger: Ledger,
    db: &str,
    options: impl Fn() -> OpenOptions,
    from: u64,
    follow: bool,
) -> ExitCode {
    let mut after = match print_changes(&ledger, from) {
        Ok(Some(p)) => p,
        Ok(None) => return ExitCode::SUCCESS,
        Err(code) => return code,
    };
    if !follow {
        return ExitCode::SUCCESS;
    }
    drop(ledger);
    loop {
        let seen = stamp(db);
        let since = Instant::now();
        while stamp(db) == seen && since.elapsed() < READ_ANYWAY_EVERY {
            std::thread::sleep(LOOK_EVERY);
        }
        let ledger = match open_waiting(db, &options, None) {
            Ok(l) => l,
            Err(e) => return fatal(format!("{db}: {e}")),
        };
        after = match print_changes(&ledger, after) {
            Ok(Some(p)) => p,
            Ok(None) => return ExitCode::SUCCESS,
            Err(code) => return code,
        };
    }
}

/// `stats`: one JSON object.
pub fn stats(ledger: &Ledger, db: &str) -> ExitCode {
    let s = match ledger.stats() {
        Ok(s) => s,
        Err(e) => return fatal(e),
    };
    let file_bytes = std::fs::metadata(Path::new(db)).map(|m| m.len()).ok();
    let tables: serde_json::Map<String, serde_json::Value> = s
        .tables
        .iter()
        .map(|t| {
            (
                t.name.clone(),
                serde_json::json!({"entries": t.entries, "bytes": t.bytes(),
                    "stored_bytes": t.stored_bytes, "metadata_bytes": t.metadata_bytes,
                    "fragmented_bytes": t.fragmented_bytes}),
            )
        })
        .collect();
    let out = serde_json::json!({
        "events": s.events,
        "wallets": s.wallets,
        "holders": s.holders,
        "programs": s.programs,
        "file_bytes": file_bytes,
        "tables": tables,
        "unflushed": {"events": s.unflushed.events, "bytes": s.unflushed.bytes,
            "wallets": s.unflushed.wallets},
    });
    println!("{out}");
    ExitCode::SUCCESS
}

/// A progress bar on stderr when it is a terminal; hidden (draws nothing) otherwise, so piped
/// and captured output stay clean.
pub fn progress_bar(what: &str) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(
        Some(0),
        if std::io::stderr().is_terminal() {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        },
    );
    if let Ok(style) = ProgressStyle::with_template(
        "{msg} [{elapsed_precise}] {wide_bar} {percent:>3}% {pos}/{len} (eta {eta})",
    ) {
        bar.set_style(style);
    }
    bar.set_message(what.to_string());
    bar
}
