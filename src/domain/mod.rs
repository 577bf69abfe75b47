//! The pure domain: events, state, `decide`, `apply` and the executor that strings them together.
//! No I/O: committed state is read through the [`state::Backing`] port, and changes accumulate
//! in a [`state::Tx`] overlay that storage writes only after the whole command succeeded.
//!
//! For every command the executor:
//! 1. runs the stateless checks (SPEC §7 steps 1–2);
//! 2. records the wallet's time-driven transitions due by `at` (§4.2), via `apply`;
//! 3. runs `decide` (steps 3–8) on the resulting state;
//! 4. applies and records the decided events.
//!
//! A failure at any point rolls the overlay back to where the command started.

pub mod apply;
pub mod decide;
pub mod event;
pub mod state;

use crate::command::{Command, Receipt, Request};
use crate::error::CommandError;
use crate::model::ParsedAmount;
use apply::{advance, apply};
use decide::{check_amounts, check_structure, check_times, decide, find_wallet, resolve_at};
use state::Tx;
use uuid::Uuid;

/// Where ids the ledger generates come from (randomness lives outside the domain).
pub trait IdSource {
    fn holder_id(&mut self) -> Uuid;
    fn wallet_id(&mut self) -> Uuid;
}

/// Step 2 only (the caller has done step 1).
pub fn precheck_values(req: &Request, now: i64) -> Result<i64, CommandError> {
    check_amounts(&req.command)?;
    let at = resolve_at(req.at.as_ref(), now)?;
    check_times(&req.command, at)?;
    Ok(at)
}

/// Executes a request in `tx`. On error the overlay is exactly as before the call.
///
/// `notes` are the amounts the JSON line spelled but no `Decimal` holds (see
/// [`crate::json::AmountNotes`]; empty for typed requests).
pub fn execute(
    tx: &mut Tx,
    req: &Request,
    notes: &[Option<ParsedAmount>],
    now: i64,
    ids: &mut dyn IdSource,
) -> Result<Receipt, CommandError> {
    let sp = tx.savepoint();
    let r = execute_inner(tx, req, notes, now, ids);
    if r.is_err() {
        tx.rollback(sp);
    }
    r
}

fn execute_inner(
    tx: &mut Tx,
    req: &Request,
    notes: &[Option<ParsedAmount>],
    now: i64,
    ids: &mut dyn IdSource,
) -> Result<Receipt, CommandError> {
    let note = |i: usize| notes.get(i).and_then(Option::as_ref);
    check_structure(req, false)?;
    match &req.command {
        Command::Batch(items) => {
            let at = precheck_values(req, now)?;
            // Step 2 for every item before any runs (amounts of all, then times of all), as
            // the JSON parser does, so both paths report the same first error.
            for (i, item) in items.iter().enumerate() {
                check_amounts(&item.command).map_err(|e| e.at_index(i))?;
            }
            let mut ats = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                // Inner commands default to the batch's instant.
                let iat = resolve_at(item.at.as_ref(), at)
                    .and_then(|iat| check_times(&item.command, iat).map(|_| iat))
                    .map_err(|e| e.at_index(i))?;
                ats.push(iat);
            }
            let first = tx.events().len();
            let mut receipts = Vec::with_capacity(items.len());
            for (i, (item, iat)) in items.iter().zip(ats).enumerate() {
                let r = one(tx, item, note(i + 1), iat, ids).map_err(|e| e.at_index(i))?;
                receipts.push(r);
            }
            let mut receipt = positions(
                tx,
                first,
                Receipt {
                    op: "batch".into(),
                    at: crate::model::Instant(at).to_datetime(),
                    ..Receipt::default()
                },
            );
            receipt.commands = receipts;
            Ok(receipt)
        }
        _ => {
            let at = precheck_values(req, now)?;
            one(tx, req, note(0), at, ids)
        }
    }
}

fn positions(tx: &Tx, first: usize, mut r: Receipt) -> Receipt {
    let evs = &tx.events()[first..];
    r.events = evs.len() as u64;
    r.first_position = evs.first().map(|e| e.position);
    r.last_position = evs.last().map(|e| e.position);
    r
}

fn one(
    tx: &mut Tx,
    req: &Request,
    note: Option<&ParsedAmount>,
    at: i64,
    ids: &mut dyn IdSource,
) -> Result<Receipt, CommandError> {
    let first = tx.events().len();
    if let Command::Sweep = req.command {
        return sweep(tx, at, first);
    }
    let mut cmd = req.command.clone();
    match &mut cmd {
        Command::RegisterHolder(c) if c.holder.is_none() => c.holder = Some(ids.holder_id()),
        Command::OpenWallet(c) if c.wallet.is_none() => c.wallet = Some(ids.wallet_id()),
        _ => {}
    }
    // §4.2: transitions due by `at` are recorded before the command. A backdated command finds
    // none (every due entry lies after the wallet's last event) and then fails in `decide`.
    if let Some(wid) = cmd.wallet()
        && !matches!(cmd, Command::OpenWallet(_))
        && let Ok(w) = find_wallet(tx, wid)
    {
        advance(tx, w, at, true)?;
    }
    let d = decide(tx, at, &cmd, note)?;
    for ev in d.events {
        let delta = apply(tx, d.stream, at, &ev)?;
        tx.record(d.stream, at, ev, delta)?;
    }
    Ok(positions(tx, first, d.receipt))
}

/// Records every transition due by `at` in every wallet that has one.
fn sweep(tx: &mut Tx, at: i64, first: usize) -> Result<Receipt, CommandError> {
    for w in tx.wallets_due(at)? {
        advance(tx, w, at, true)?;
    }
    Ok(positions(
        tx,
        first,
        Receipt {
            op: "sweep".into(),
            at: crate::model::Instant(at).to_datetime(),
            ..Receipt::default()
        },
    ))
}
