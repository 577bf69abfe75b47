//! `walletctl`: the command line of SPEC §9.
//!
//! ```text
//! walletctl [--db PATH] [--flush-every N] apply FILE|-
//! walletctl [--db PATH] show WALLET [--as-of T]
//! walletctl [--db PATH] history WALLET
//! walletctl [--db PATH] verify
//! walletctl [--db PATH] view VENDOR REQUEST [--as-of T]
//! walletctl [--db PATH] tail [--from P] [--follow]
//! walletctl [--db PATH] stats
//! ```
//!
//! Exit codes: 0 success; 1 a command was rejected (apply) or verification found problems;
//! 2 usage or storage failure. Every result is printed only after its commit is durable.

use std::io::{BufRead, Write};
use std::process::ExitCode;
use wallet_ledger::views::{self, UsageError};
use wallet_ledger::{ErrorCode, Ledger, render};

#[path = "walletctl/more.rs"]
mod more;

const USAGE: &str = "usage: walletctl [--db PATH] <command>

commands:
  apply FILE|-                      apply JSON command lines, print one result per line
  show WALLET [--as-of T]           print a wallet's figures (RFC 3339 instant T)
  history WALLET                    print a wallet's events, one JSON object per line
  verify                            replay the log and check it against the stored state
  view VENDOR REQUEST [--as-of T]   answer a vendor's get-wallet request (clevertap,
                                    juicyway, cashfree, cryptofuse); REQUEST is JSON
  tail [--from P] [--follow]        print every event after position P (default 0), one JSON
                                    object per line; --follow keeps waiting for new ones
  stats                             print the ledger's size (events, wallets, holders, file
                                    bytes, bytes by table) as JSON
  compact                           rewrite every table packed and shrink the file (needs up
                                    to twice the file's size free while it runs)

options:
  --db PATH           ledger file (default ./wallets.redb)
  --flush-every N     write the in-memory layer into the projection tables after every N
                      events (default: at the memory budget, and on exit)

A command waits up to 10 s for another walletctl to release the file (one process at a time
may open it).";

fn usage(msg: &str) -> ExitCode {
    eprintln!("walletctl: {msg}\n\n{USAGE}");
    ExitCode::from(2)
}

fn fatal(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("walletctl: {msg}");
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mut db = "./wallets.redb".to_string();
    let mut as_of: Option<String> = None;
    let mut flush_every: Option<u64> = None;
    let mut from: Option<String> = None;
    let mut follow = false;
    // Options may appear anywhere.
    let mut i = 0;
    while i < args.len() {
        match args[i].as_str() {
            "--follow" => {
                follow = true;
                args.remove(i);
            }
            "--db" | "--as-of" | "--flush-every" | "--from" => {
                if i + 1 >= args.len() {
                    return usage(&format!("{} needs a value", args[i]));
                }
                let v = args.remove(i + 1);
                match args.remove(i).as_str() {
                    "--db" => db = v,
                    "--as-of" => as_of = Some(v),
                    "--from" => from = Some(v),
                    _ => match v.parse::<u64>() {
                        Ok(n) if n > 0 => flush_every = Some(n),
                        _ => {
                            return usage(&format!(
                                "--flush-every {v:?} is not a number of events (1 or more)"
                            ));
                        }
                    },
                }
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            s if s.starts_with("--") => return usage(&format!("unknown option {s}")),
            _ => i += 1,
        }
    }
    let Some(cmd) = args.first().cloned() else {
        return usage("no command given");
    };
    let as_of = match as_of.as_deref().map(chrono::DateTime::parse_from_rfc3339) {
        None => None,
        Some(Ok(t)) if t.timestamp_nanos_opt().is_some() => Some(t.with_timezone(&chrono::Utc)),
        Some(Ok(t)) => {
            return usage(&format!(
                "--as-of {t} is outside the instants the ledger represents (1677-09-21..2262-04-11)"
            ));
        }
        Some(Err(e)) => {
            return usage(&format!(
                "--as-of {:?} is not an RFC 3339 time with an offset ({e})",
                as_of.unwrap_or_default()
            ));
        }
    };
    let want = |n: usize| -> Result<(), ExitCode> {
        if args.len() != n + 1 {
            Err(usage(&format!("{cmd} takes {n} argument(s)")))
        } else {
            Ok(())
        }
    };
    if as_of.is_some() && !matches!(cmd.as_str(), "show" | "view") {
        return usage(&format!("--as-of does not apply to {cmd}"));
    }
    if (from.is_some() || follow) && cmd != "tail" {
        return usage(&format!("--from and --follow do not apply to {cmd}"));
    }
    let from = match from.as_deref().map(str::parse::<u64>) {
        None => 0,
        Some(Ok(p)) => p,
        Some(Err(_)) => {
            return usage(&format!(
                "--from {:?} is not a log position (0 or more)",
                from.unwrap_or_default()
            ));
        }
    };
    let check = match cmd.as_str() {
        "apply" | "show" | "history" => want(1),
        "verify" | "tail" | "stats" | "compact" => want(0),
        "view" => want(2),
        other => return usage(&format!("unknown command {other:?}")),
    };
    if let Err(code) = check {
        return code;
    }
    // Migrating an older file or replaying a long log tail can take a while: a bar on a
    // terminal, drawn only if open has such work to do.
    let open_bar = more::progress_bar("opening");
    let options = || {
        let bar = open_bar.clone();
        let mut options = wallet_ledger::OpenOptions::new().progress(move |stage, done, total| {
            bar.set_message(match stage {
                wallet_ledger::Stage::Migrate => "migrating",
                wallet_ledger::Stage::Replay => "replaying the log",
                _ => "opening",
            });
            bar.set_length(total);
            bar.set_position(done);
        });
        if let Some(n) = flush_every {
            options = options.max_unflushed_events(n);
        }
        if cmd == "verify" {
            // Verify reads the whole file once: a small page cache keeps its memory to the
            // live state rather than the file's size.
            options = options.cache_size(8 << 20);
        }
        options
    };
    let ledger = match more::open_waiting(&db, options, Some(more::WAIT_FOR_FILE)) {
        Ok(l) => l,
        Err(e) => return fatal(format!("{db}: {e}")),
    };
    open_bar.finish_and_clear();
    match cmd.as_str() {
        "apply" => apply(&ledger, &args[1]),
        "show" => show(&ledger, &args[1], as_of),
        "history" => history(&ledger, &args[1]),
        "verify" => verify(&ledger),
        "view" => view(&ledger, &args[1], &args[2], as_of),
        "tail" => more::tail(ledger, &db, options, from, follow),
        "stats" => more::stats(&ledger, &db),
        "compact" => compact(ledger, &db),
        _ => unreachable!("checked above"),
    }
}

fn apply(ledger: &Ledger, file: &str) -> ExitCode {
    let reader: Box<dyn BufRead> = if file == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        match std::fs::File::open(file) {
            Ok(f) => Box::new(std::io::BufReader::new(f)),
            Err(e) => return fatal(format!("{file}: {e}")),
        }
    };
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut rejected = false;
    for (n, line) in reader.split(b'\n').enumerate() {
        let n = n + 1;
        let bytes = match line {
            Ok(b) => b,
            Err(e) => return fatal(format!("{file}: read error at line {n}: {e}")),
        };
        let result = match String::from_utf8(bytes) {
            Err(_) => Err(wallet_ledger::CommandError::new(
                ErrorCode::InvalidCommand,
                format!("line {n} is not UTF-8"),
            )),
            Ok(text) => {
                let text = text.trim_end_matches('\r');
                if text.trim().is_empty() {
                    continue; // Blank lines separate nothing and are skipped.
                }
                ledger.execute_line(text)
            }
        };
        let storage_failed = matches!(&result, Err(e) if e.code == ErrorCode::Storage);
        rejected |= result.is_err();
        if writeln!(out, "{}", render::result_line(n, &result)).is_err() {
            return ExitCode::from(2);
        }
        if storage_failed {
            let _ = out.flush();
            return fatal("storage failure; stopping");
        }
    }
    let _ = out.flush();
    ExitCode::from(u8::from(rejected))
}

fn parse_wallet(s: &str) -> Result<uuid::Uuid, ExitCode> {
    uuid::Uuid::try_parse(s).map_err(|_| usage(&format!("WALLET {s:?} is not a UUID")))
}

fn show(ledger: &Ledger, wallet: &str, as_of: Option<chrono::DateTime<chrono::Utc>>) -> ExitCode {
    let w = match parse_wallet(wallet) {
        Ok(w) => w,
        Err(c) => return c,
    };
    match ledger.snapshot(w, as_of) {
        Ok(s) => {
            println!("{}", render::snapshot(&s));
            ExitCode::SUCCESS
        }
        Err(e) if e.code() == ErrorCode::Storage => fatal(e),
        Err(e) => {
            eprintln!("walletctl: {e}");
            ExitCode::from(1)
        }
    }
}

fn history(ledger: &Ledger, wallet: &str) -> ExitCode {
    let w = match parse_wallet(wallet) {
        Ok(w) => w,
        Err(c) => return c,
    };
    match ledger.history(w) {
        Ok(entries) => {
            let stdout = std::io::stdout();
            let mut out = stdout.lock();
            for v in render::history(&entries) {
                if writeln!(out, "{v}").is_err() {
                    return ExitCode::from(2);
                }
            }
            ExitCode::SUCCESS
        }
        Err(e) if e.code() == ErrorCode::Storage => fatal(e),
        Err(e) => {
            eprintln!("walletctl: {e}");
            ExitCode::from(1)
        }
    }
}

fn verify(ledger: &Ledger) -> ExitCode {
    let bar = more::progress_bar("verify");
    let result = ledger.verify_with_progress(|done, total| {
        bar.set_length(total);
        bar.set_position(done);
    });
    bar.finish_and_clear();
    match result {
        Ok(r) => {
            println!(
                "{}",
                serde_json::json!({"ok": r.ok(), "events": r.events, "wallets": r.wallets,
                    "problems": r.problems})
            );
            ExitCode::from(u8::from(!r.ok()))
        }
        Err(e) => {
            println!(
                "{}",
                serde_json::json!({"ok": false, "problems": [e.to_string()]})
            );
            ExitCode::from(2)
        }
    }
}

fn compact(mut ledger: Ledger, db: &str) -> ExitCode {
    let size = || std::fs::metadata(db).map(|m| m.len()).unwrap_or(0);
    let before = size();
    let bar = more::progress_bar("compact");
    let result = ledger.compact_with_progress(|done, total| {
        bar.set_length(total);
        bar.set_position(done);
    });
    bar.finish_and_clear();
    drop(ledger);
    match result {
        Ok(()) => {
            println!(
                "{}",
                serde_json::json!({"ok": true, "file_bytes_before": before,
                    "file_bytes_after": size()})
            );
            ExitCode::SUCCESS
        }
        Err(e) => fatal(format!("{db}: compact: {e}")),
    }
}

fn view(
    ledger: &Ledger,
    vendor: &str,
    request: &str,
    as_of: Option<chrono::DateTime<chrono::Utc>>,
) -> ExitCode {
    let reader = match ledger.reader() {
        Ok(r) => r,
        Err(e) => return fatal(e),
    };
    match views::answer(&reader, vendor, request, as_of) {
        Ok((status, body)) => {
            // The body is already JSON text in the vendor's field order: splice it in as is.
            println!("{{\"status\":{status},\"body\":{body}}}");
            ExitCode::SUCCESS
        }
        Err(e @ (UsageError::UnknownVendor(_) | UsageError::BadRequest { .. })) => {
            usage(&e.to_string())
        }
        Err(e) => fatal(e),
    }
}
