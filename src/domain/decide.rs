//! `decide`: checks a command against the state, in the order of SPEC §7, and returns the events
//! that record it. Pure: it reads the overlay and never changes it. Time-driven transitions due by
//! the command's instant are applied (by [`crate::domain::apply::advance`]) before `decide` runs,
//! so every check sees the state as of `at`.
//!
//! Stateless checks (steps 1 and 2) live in [`check_structure`], [`check_amounts`] and
//! [`check_times`], so the JSON parser can interleave its own syntax errors in the same order.

use crate::command::*;
use crate::domain::event::{Event, OpenedPocket};
use crate::domain::state::{HoldState, LEDGER_STREAM, NameKind, Tx, WalletState};
use crate::error::{CommandError, ErrorCode, fail};
use crate::limits::*;
use crate::model::*;
use sha2::{Digest, Sha256};

/// What `decide` concluded: the stream the events go to, the events, and the receipt's ids.
#[derive(Debug)]
pub struct Decision {
    pub stream: u64,
    pub events: Vec<Event>,
    pub receipt: Receipt,
}

/// A UUID derived from its parts (SHA-256, v4 layout), so that ids the ledger assigns itself are
/// a pure function of the log and replay reproduces them.
pub fn derive_uuid(parts: &[&[u8]]) -> [u8; 16] {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u32).to_le_bytes());
        h.update(p);
    }
    let d = h.finalize();
    let mut b = [0u8; 16];
    b.copy_from_slice(&d[..16]);
    *uuid::Builder::from_random_bytes(b).as_uuid().as_bytes()
}

// ---- step 1: structure ---------------------------------------------------------------------

fn opt_id(field: &str, v: &Option<String>) -> Result<(), CommandError> {
    match v {
        Some(s) => check_id(field, s),
        None => Ok(()),
    }
}

fn opt_text(field: &str, v: &Option<String>) -> Result<(), CommandError> {
    match v {
        Some(s) => check_text(field, s),
        None => Ok(()),
    }
}

/// SPEC §7 step 1 for a typed request: ids, texts, pocket templates, batch shape.
pub fn check_structure(req: &Request, in_batch: bool) -> Result<(), CommandError> {
    if let Some(k) = &req.key {
        if in_batch {
            return fail(
                ErrorCode::InvalidCommand,
                format!(
                    "key {} is not allowed on a command inside a batch; put it on the batch",
                    quoted(k)
                ),
            );
        }
        if k.is_empty() || k.len() > MAX_KEY_BYTES {
            return fail(
                ErrorCode::InvalidCommand,
                format!(
                    "key {} must be 1 to {MAX_KEY_BYTES} bytes (it is {})",
                    quoted(k),
                    k.len()
                ),
            );
        }
    }
    match &req.command {
        Command::DefineProgram(c) => {
            check_text("name", &c.name)?;
            check_text("unit", &c.unit)?;
            if c.pockets.is_empty() {
                return fail(
                    ErrorCode::InvalidCommand,
                    format!("program {} needs at least one pocket", c.program),
                );
            }
            if c.pockets.len() > MAX_POCKETS {
                return fail(
                    ErrorCode::InvalidCommand,
                    format!(
                        "program {} has {} pockets; the limit is {MAX_POCKETS}",
                        c.program,
                        c.pockets.len()
                    ),
                );
            }
            for (i, p) in c.pockets.iter().enumerate() {
                check_id("pocket", &p.pocket)?;
                check_text("pocket name", &p.name)?;
                check_text("pocket kind", &p.kind)?;
                check_text("pocket asset", &p.asset)?;
                if p.scale > MAX_SCALE {
                    return fail(
                        ErrorCode::InvalidCommand,
                        format!(
                            "pocket {} has scale {}; the limit is {MAX_SCALE}",
                            quoted(&p.pocket),
                            p.scale
                        ),
                    );
                }
                if c.pockets[..i].iter().any(|q| q.pocket == p.pocket) {
                    return fail(
                        ErrorCode::InvalidCommand,
                        format!("pocket key {} appears twice", quoted(&p.pocket)),
                    );
                }
            }
        }
        Command::RegisterHolder(c) => {
            opt_id("identity", &c.identity)?;
            if let Some(e) = &c.email {
                check_id("email", e.trim())?;
            }
        }
        Command::OpenWallet(c) => {
            opt_text("name", &c.name)?;
            opt_id("external_id", &c.external_id)?;
        }
        Command::Credit(c) => {
            opt_id("pocket", &c.pocket)?;
            opt_id("lot", &c.lot)?;
        }
        Command::Activate(c) => {
            opt_id("pocket", &c.pocket)?;
            check_id("lot", &c.lot)?;
        }
        Command::ReverseCredit(c) => {
            opt_id("pocket", &c.pocket)?;
            check_id("lot", &c.lot)?;
        }
        Command::Redeem(c) => {
            opt_id("pocket", &c.pocket)?;
            opt_id("redemption", &c.redemption)?;
        }
        Command::Refund(c) => {
            opt_id("pocket", &c.pocket)?;
            check_id("redemption", &c.redemption)?;
        }
        Command::Expire(c) => opt_id("pocket", &c.pocket)?,
        Command::Hold(c) => {
            opt_id("pocket", &c.pocket)?;
            opt_id("hold", &c.hold)?;
        }
        Command::Capture(c) => {
            opt_id("pocket", &c.pocket)?;
            check_id("hold", &c.hold)?;
            opt_id("redemption", &c.redemption)?;
        }
        Command::Release(c) => {
            opt_id("pocket", &c.pocket)?;
            check_id("hold", &c.hold)?;
        }
        Command::Freeze(c) | Command::Unfreeze(c) | Command::Close(c) => {
            opt_text("reason", &c.reason)?
        }
        Command::LinkPaymentMethod(c) => {
            let m = &c.method;
            check_text("account_name", &m.account_name)?;
            check_id("account_number", &m.account_number)?;
            check_text("account_type", &m.account_type)?;
            opt_text("address", &m.address)?;
            opt_text("bank_address", &m.bank_address)?;
            check_text("bank_code", &m.bank_code)?;
            check_text("bank_name", &m.bank_name)?;
        }
        Command::IssueCard(c) => {
            check_id("card", &c.card)?;
            opt_text("masked_pan", &c.masked_pan)?;
            opt_text("status", &c.status)?;
        }
        Command::Sweep => {}
        Command::Batch(items) => {
            if in_batch {
                return fail(ErrorCode::InvalidCommand, "a batch cannot contain a batch");
            }
            if items.is_empty() {
                return fail(
                    ErrorCode::InvalidCommand,
                    "a batch needs at least one command",
                );
            }
            if items.len() > MAX_BATCH_COMMANDS {
                return fail(
                    ErrorCode::InvalidCommand,
                    format!(
                        "a batch of {} commands exceeds the limit of {MAX_BATCH_COMMANDS}",
                        items.len()
                    ),
                );
            }
            for (i, r) in items.iter().enumerate() {
                check_structure(r, true).map_err(|e| e.at_index(i))?;
            }
        }
    }
    Ok(())
}

// ---- step 2: amounts, then times --------------------------------------------------------------

/// SPEC §7 step 2, first half: every amount present is positive.
pub fn check_amounts(cmd: &Command) -> Result<(), CommandError> {
    let one = |d: &rust_decimal::Decimal| check_amount("amount", *d).map(|_| ());
    let opt = |d: &Option<rust_decimal::Decimal>| d.as_ref().map_or(Ok(()), one);
    match cmd {
        Command::Credit(c) => one(&c.amount),
        Command::Redeem(c) => one(&c.amount),
        Command::Hold(c) => one(&c.amount),
        Command::ReverseCredit(c) => opt(&c.amount),
        Command::Refund(c) => opt(&c.amount),
        Command::Expire(c) => opt(&c.amount),
        Command::Capture(c) => opt(&c.amount),
        _ => Ok(()),
    }
}

/// An expiry must be a real instant: the last representable one stands for "never" in the
/// consumption order (lots without expiry come last, SPEC §4.3), so it cannot be chosen.
fn expiry(field: &str, t: &chrono::DateTime<chrono::Utc>) -> Result<i64, CommandError> {
    let e = instant(field, t)?;
    if e == i64::MAX {
        return fail(
            ErrorCode::InvalidTime,
            format!(
                "{field} {t} is the last representable instant, reserved for \"never\"; omit {field} for no expiry"
            ),
        );
    }
    Ok(e)
}

fn instant(field: &str, t: &chrono::DateTime<chrono::Utc>) -> Result<i64, CommandError> {
    Instant::from_datetime(*t).map(|i| i.0).ok_or_else(|| {
        CommandError::new(
            ErrorCode::InvalidTime,
            format!("{field} {t} is outside 1677-09-21..2262-04-11"),
        )
    })
}

/// SPEC §7 step 2, second half: every time is representable and the command's own times are in
/// order. `at` is the resolved instant of the command.
pub fn check_times(cmd: &Command, at: i64) -> Result<(), CommandError> {
    match cmd {
        Command::Credit(c) => {
            let act = c
                .activates_at
                .as_ref()
                .map(|t| instant("activates_at", t))
                .transpose()?;
            if let Some(e) = &c.expires_at {
                let e = expiry("expires_at", e)?;
                let floor = act.unwrap_or(at).max(at);
                if e <= floor {
                    return fail(
                        ErrorCode::InvalidTime,
                        format!(
                            "expires_at {} must be after {} (the later of at and activates_at)",
                            Instant(e),
                            Instant(floor)
                        ),
                    );
                }
            }
            Ok(())
        }
        Command::Hold(c) => {
            if let Some(e) = &c.expires_at {
                let e = expiry("expires_at", e)?;
                if e <= at {
                    return fail(
                        ErrorCode::InvalidTime,
                        format!(
                            "hold expires_at {} must be after at {}",
                            Instant(e),
                            Instant(at)
                        ),
                    );
                }
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// Converts a request's `at` (or the clock's `now`) to an instant: `invalid_time` when out of range.
pub fn resolve_at(
    at: Option<&chrono::DateTime<chrono::Utc>>,
    now: i64,
) -> Result<i64, CommandError> {
    match at {
        Some(t) => instant("at", t),
        None => Ok(now),
    }
}

// ---- steps 3..8 -----------------------------------------------------------------------------

/// Looks up the wallet a command names: `unknown_wallet` when there is none.
pub fn find_wallet(tx: &Tx, id: uuid::Uuid) -> Result<u64, CommandError> {
    tx.wallet_by_uuid(uuid_bytes(id))?
        .ok_or_else(|| CommandError::new(ErrorCode::UnknownWallet, format!("no wallet {id}")))
}

/// Does this command move value (and so fail on a frozen wallet)?
fn moves_value(cmd: &Command) -> bool {
    matches!(
        cmd,
        Command::Credit(_)
            | Command::Activate(_)
            | Command::ReverseCredit(_)
            | Command::Redeem(_)
            | Command::Refund(_)
            | Command::Expire(_)
            | Command::Hold(_)
            | Command::Capture(_)
    )
}

fn pocket_of(ws: &WalletState, p: &Option<String>) -> Result<u16, CommandError> {
    match p {
        None => Ok(0),
        Some(k) => ws.pocket_index(k).ok_or_else(|| {
            CommandError::new(
                ErrorCode::UnknownPocket,
                format!(
                    "wallet {} has no pocket {}; it has {}",
                    uuid_of(ws.uuid),
                    quoted(k),
                    ws.pockets
                        .iter()
                        .map(|p| quoted(&p.key))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )
        }),
    }
}

fn units(
    ws: &WalletState,
    pocket: u16,
    field: &str,
    d: rust_decimal::Decimal,
    note: Option<&ParsedAmount>,
) -> Result<Units, CommandError> {
    let scale = ws.pockets[pocket as usize].scale;
    match note {
        // More than 28 places is more than any pocket's scale (≤ 18).
        Some(ParsedAmount::TooPrecise(t)) => fail(
            ErrorCode::ScaleExceeded,
            format!("{field} {t} has more than 28 decimal places; this pocket allows {scale}"),
        ),
        Some(ParsedAmount::TooLarge(_)) => Ok(Units::Huge),
        _ => to_units(field, d, scale),
    }
}

fn show(ws: &WalletState, pocket: u16, u: u128) -> String {
    format_units(u, ws.pockets[pocket as usize].scale)
}

fn show_units(ws: &WalletState, pocket: u16, u: Units) -> String {
    match u {
        Units::Fits(u) => show(ws, pocket, u),
        Units::Huge => "an amount beyond the unit limit".to_string(),
    }
}

/// An id the client left out: `prefix-N`, or `prefix-N-K` for the first K that is free.
fn assign_name(tx: &Tx, w: u64, kind: NameKind, n: u32) -> Result<String, CommandError> {
    let prefix = kind.prefix();
    let base = format!("{prefix}-{n}");
    // Record n is the one being created, so only a name row (a client's id) can hold `base`.
    if tx.name_row(w, kind, &base)?.is_none() {
        return Ok(base);
    }
    for k in 2u32.. {
        let c = format!("{base}-{k}");
        if tx.name(w, kind, &c)?.is_none() {
            return Ok(c);
        }
    }
    unreachable!("u32 names exhausted")
}

fn insufficient(
    ws: &WalletState,
    pocket: u16,
    want: Units,
    have: u128,
    what: &str,
) -> CommandError {
    CommandError::new(
        ErrorCode::InsufficientFunds,
        format!(
            "{} asked, but pocket {} of wallet {} has {} {what}",
            show_units(ws, pocket, want),
            quoted(&ws.pockets[pocket as usize].key),
            uuid_of(ws.uuid),
            show(ws, pocket, have)
        ),
    )
}

/// Decides a single (non-batch, non-sweep) command at `at`. Ids the client omitted for new
/// wallets and holders must already be filled in by the caller (they come from randomness).
pub fn decide(
    tx: &Tx,
    at: i64,
    cmd: &Command,
    note: Option<&ParsedAmount>,
) -> Result<Decision, CommandError> {
    let mut receipt = Receipt {
        op: cmd.op().to_string(),
        at: Instant(at).to_datetime(),
        ..Receipt::default()
    };
    // Ledger-stream commands first: they have no wallet.
    match cmd {
        Command::DefineProgram(c) => {
            if tx.program(c.program)?.is_some() {
                return fail(
                    ErrorCode::DuplicateProgram,
                    format!("program {} is already defined", c.program),
                );
            }
            receipt.program = Some(c.program);
            return Ok(Decision {
                stream: LEDGER_STREAM,
                events: vec![Event::ProgramDefined(Program {
                    program: c.program,
                    name: c.name.clone(),
                    unit: c.unit.clone(),
                    order: c.order,
                    pockets: c
                        .pockets
                        .iter()
                        .map(|p| PocketTemplate {
                            pocket: p.pocket.clone(),
                            name: p.name.clone(),
                            kind: p.kind.clone(),
                            asset: p.asset.clone(),
                            scale: p.scale,
                        })
                        .collect(),
                })],
                receipt,
            });
        }
        Command::RegisterHolder(c) => {
            let id = c.holder.ok_or_else(|| {
                CommandError::new(ErrorCode::InvalidCommand, "holder id was not assigned")
            })?;
            if tx.holder(uuid_bytes(id))?.is_some() {
                return fail(
                    ErrorCode::DuplicateHolder,
                    format!("holder {id} already exists"),
                );
            }
            if let Some(i) = &c.identity
                && tx.holder_by_identity(i)?.is_some()
            {
                return fail(
                    ErrorCode::IdentityTaken,
                    format!("identity {} belongs to another holder", quoted(i)),
                );
            }
            let email = c.email.as_ref().map(|e| e.trim().to_string());
            if let Some(e) = &email
                && tx.holder_by_email(&normalize_email(e))?.is_some()
            {
                return fail(
                    ErrorCode::IdentityTaken,
                    format!("email {} belongs to another holder", quoted(e)),
                );
            }
            receipt.holder = Some(id);
            return Ok(Decision {
                stream: LEDGER_STREAM,
                events: vec![Event::HolderRegistered(Holder {
                    holder: uuid_bytes(id),
                    identity: c.identity.clone(),
                    email,
                })],
                receipt,
            });
        }
        Command::OpenWallet(c) => {
            let id = c.wallet.ok_or_else(|| {
                CommandError::new(ErrorCode::InvalidCommand, "wallet id was not assigned")
            })?;
            if tx.wallet_by_uuid(uuid_bytes(id))?.is_some() {
                return fail(
                    ErrorCode::DuplicateWallet,
                    format!("wallet {id} already exists"),
                );
            }
            if let Some(e) = &c.external_id
                && tx.wallet_by_external(e)?.is_some()
            {
                return fail(
                    ErrorCode::ExternalIdTaken,
                    format!("external_id {} belongs to another wallet", quoted(e)),
                );
            }
            if tx.holder(uuid_bytes(c.holder))?.is_none() {
                return fail(ErrorCode::UnknownHolder, format!("no holder {}", c.holder));
            }
            let Some(program) = tx.program(c.program)? else {
                return fail(
                    ErrorCode::UnknownProgram,
                    format!("no program {}", c.program),
                );
            };
            let l = tx.ledger()?;
            let number = l.wallets + 1;
            let wb = uuid_bytes(id);
            let pockets = program
                .pockets
                .iter()
                .enumerate()
                .map(|(i, t)| OpenedPocket {
                    template: t.clone(),
                    number: l.pockets + 1 + i as u64,
                    uuid: derive_uuid(&[b"pocket", &wb, &(i as u32).to_be_bytes()]),
                })
                .collect();
            receipt.wallet = Some(id);
            return Ok(Decision {
                stream: number,
                events: vec![Event::WalletOpened {
                    wallet: wb,
                    number,
                    holder: uuid_bytes(c.holder),
                    program: c.program,
                    name: c.name.clone().unwrap_or_else(|| program.name.clone()),
                    external_id: c.external_id.clone(),
                    order: program.order,
                    pockets,
                    event_id: derive_uuid(&[b"lifecycle", &wb, &1u64.to_be_bytes()]),
                }],
                receipt,
            });
        }
        Command::Sweep | Command::Batch(_) => {
            return fail(
                ErrorCode::InvalidCommand,
                format!("{} is not decided per wallet", cmd.op()),
            );
        }
        _ => {}
    }

    // Step 3: the wallet exists.
    let wid = cmd
        .wallet()
        .expect("every remaining command names a wallet");
    let w = find_wallet(tx, wid)?;
    let ws = tx.wallet_req(w)?;
    receipt.wallet = Some(wid);

    // Step 4: not backdated.
    if at < ws.updated_at {
        return fail(
            ErrorCode::Backdated,
            format!(
                "at {} is before wallet {wid}'s last event at {}",
                Instant(at),
                Instant(ws.updated_at)
            ),
        );
    }

    // Step 5: status.
    match (ws.status, cmd) {
        (Status::Closed, _) => {
            return fail(ErrorCode::WalletClosed, format!("wallet {wid} is closed"));
        }
        (Status::Frozen, c) if moves_value(c) => {
            return fail(
                ErrorCode::WalletFrozen,
                format!("wallet {wid} is frozen; unfreeze it to {}", c.op()),
            );
        }
        (Status::Frozen, Command::Freeze(_)) => {
            return fail(
                ErrorCode::InvalidTransition,
                format!("wallet {wid} is already frozen"),
            );
        }
        (Status::Active, Command::Unfreeze(_)) => {
            return fail(
                ErrorCode::InvalidTransition,
                format!("wallet {wid} is active, not frozen"),
            );
        }
        _ => {}
    }

    let lifecycle_event = |action: LifecycleAction,
                           reason: &Option<String>|
     -> Result<Event, CommandError> {
        // The limit must never strand a wallet: a freeze is allowed only while there is
        // room for it, its unfreeze and a close; an unfreeze only with room for a close.
        let room = match action {
            LifecycleAction::Freeze => 3,
            LifecycleAction::Unfreeze => 2,
            LifecycleAction::Create | LifecycleAction::Delete => 1,
        };
        if ws.lifecycle + room > MAX_LIFECYCLE_EVENTS {
            return fail(
                ErrorCode::InvalidTransition,
                format!(
                    "wallet {wid} has {} of its {MAX_LIFECYCLE_EVENTS} lifecycle events; a {} needs {room} free (room to unfreeze and close later)",
                    ws.lifecycle,
                    action.as_str()
                ),
            );
        }
        Ok(Event::Lifecycle {
            action,
            reason: reason.clone(),
            event_id: derive_uuid(&[b"lifecycle", &ws.uuid, &(ws.seq + 1).to_be_bytes()]),
        })
    };

    let events = match cmd {
        Command::Freeze(c) => vec![lifecycle_event(LifecycleAction::Freeze, &c.reason)?],
        Command::Unfreeze(c) => vec![lifecycle_event(LifecycleAction::Unfreeze, &c.reason)?],
        Command::Close(c) => {
            // Step 8 for close: nothing left in any pocket.
            for p in &ws.pockets {
                let f = p.figures;
                if f.balance() != 0 || f.promised != 0 || f.on_hold != 0 {
                    return fail(
                        ErrorCode::WalletNotEmpty,
                        format!(
                            "wallet {wid} pocket {} still has balance {}, promised {}, on_hold {}",
                            quoted(&p.key),
                            format_units(f.balance(), p.scale),
                            format_units(f.promised, p.scale),
                            format_units(f.on_hold, p.scale)
                        ),
                    );
                }
            }
            vec![lifecycle_event(LifecycleAction::Delete, &c.reason)?]
        }
        Command::LinkPaymentMethod(c) => {
            if ws.methods.len() >= MAX_METHODS_PER_WALLET {
                return fail(
                    ErrorCode::InvalidCommand,
                    format!(
                        "wallet {wid} already has {MAX_METHODS_PER_WALLET} payment methods, the limit"
                    ),
                );
            }
            vec![Event::PaymentMethodLinked(c.method.clone())]
        }
        Command::IssueCard(c) => {
            if tx.wallet_by_card(&c.card)?.is_some() {
                return fail(
                    ErrorCode::DuplicateCard,
                    format!("card {} is already issued", quoted(&c.card)),
                );
            }
            if ws.cards.len() >= MAX_METHODS_PER_WALLET {
                return fail(
                    ErrorCode::InvalidCommand,
                    format!("wallet {wid} already has {MAX_METHODS_PER_WALLET} cards, the limit"),
                );
            }
            receipt.card = Some(c.card.clone());
            vec![Event::CardIssued(Card {
                card: c.card.clone(),
                masked_pan: c.masked_pan.clone(),
                status: c.status.clone(),
            })]
        }
        Command::Credit(c) => {
            let p = pocket_of(&ws, &c.pocket)?;
            let u = units(&ws, p, "amount", c.amount, note)?;
            let no = ws.lots + 1;
            let id = match &c.lot {
                Some(id) => {
                    if tx.name(w, NameKind::Lot, id)?.is_some() {
                        return fail(
                            ErrorCode::DuplicateLot,
                            format!("wallet {wid} already has a lot {}", quoted(id)),
                        );
                    }
                    id.clone()
                }
                None => assign_name(tx, w, NameKind::Lot, no)?,
            };
            let pk = &ws.pockets[p as usize];
            let fits = match u {
                Units::Fits(u) => pk
                    .issued
                    .checked_add(u)
                    .filter(|t| *t <= MAX_UNITS)
                    .map(|_| u),
                Units::Huge => None,
            };
            let Some(u) = fits else {
                return fail(
                    ErrorCode::AmountOverflow,
                    format!(
                        "crediting {} to pocket {} would take its lifetime credits past {}",
                        match note {
                            Some(ParsedAmount::TooLarge(t)) => t.clone(),
                            _ => c.amount.to_string(),
                        },
                        quoted(&pk.key),
                        format_units(MAX_UNITS, pk.scale)
                    ),
                );
            };
            if no > MAX_LOTS_PER_WALLET {
                return fail(
                    ErrorCode::AmountOverflow,
                    format!("wallet {wid} has {MAX_LOTS_PER_WALLET} lots, the limit"),
                );
            }
            receipt.pocket = Some(pk.key.clone());
            receipt.lot = Some(id.clone());
            let activates_at = c
                .activates_at
                .as_ref()
                .map(|t| instant("activates_at", t))
                .transpose()?
                .unwrap_or(at)
                .max(at);
            let expires_at = c
                .expires_at
                .as_ref()
                .map(|t| instant("expires_at", t))
                .transpose()?;
            vec![Event::Credited {
                pocket: p,
                lot: no,
                id,
                units: u,
                activates_at,
                expires_at,
            }]
        }
        Command::Activate(c) => {
            let p = pocket_of(&ws, &c.pocket)?;
            let lot = find_lot(tx, &ws, w, p, &c.lot)?;
            // A lot past its activation time is active by time even if nothing recorded it
            // (a promised lot reversed to zero has no activation due).
            if lot.activated || lot.activates_at <= at {
                return fail(
                    ErrorCode::LotNotPromised,
                    format!("lot {} of wallet {wid} is already active", quoted(&c.lot)),
                );
            }
            receipt.pocket = Some(ws.pockets[p as usize].key.clone());
            receipt.lot = Some(lot.id.clone());
            vec![Event::Activated {
                lot: lot.no,
                early: true,
            }]
        }
        Command::ReverseCredit(c) => {
            let p = pocket_of(&ws, &c.pocket)?;
            let want = c
                .amount
                .map(|a| units(&ws, p, "amount", a, note))
                .transpose()?;
            let lot = find_lot(tx, &ws, w, p, &c.lot)?;
            let want = want.unwrap_or(Units::Fits(lot.free));
            if want.saturated() > lot.free || lot.free == 0 {
                return Err(insufficient(
                    &ws,
                    p,
                    want,
                    lot.free,
                    &format!("free in lot {}", quoted(&lot.id)),
                ));
            }
            receipt.pocket = Some(ws.pockets[p as usize].key.clone());
            receipt.lot = Some(lot.id.clone());
            vec![Event::Reversed {
                lot: lot.no,
                units: want.saturated(),
            }]
        }
        Command::Redeem(c) => {
            let p = pocket_of(&ws, &c.pocket)?;
            let u = units(&ws, p, "amount", c.amount, note)?;
            let no = ws.redemptions + 1;
            let id = match &c.redemption {
                Some(id) => {
                    if tx.name(w, NameKind::Redemption, id)?.is_some() {
                        return fail(
                            ErrorCode::DuplicateRedemption,
                            format!("wallet {wid} already has a redemption {}", quoted(id)),
                        );
                    }
                    id.clone()
                }
                None => assign_name(tx, w, NameKind::Redemption, no)?,
            };
            let avail = ws.pockets[p as usize].figures.available();
            if u.saturated() > avail {
                return Err(insufficient(&ws, p, u, avail, "available"));
            }
            if no > MAX_REDEMPTIONS_PER_WALLET {
                return fail(
                    ErrorCode::AmountOverflow,
                    format!("wallet {wid} has {MAX_REDEMPTIONS_PER_WALLET} redemptions, the limit"),
                );
            }
            receipt.pocket = Some(ws.pockets[p as usize].key.clone());
            receipt.redemption = Some(id.clone());
            vec![Event::Redeemed {
                pocket: p,
                redemption: no,
                id,
                units: u.saturated(),
            }]
        }
        Command::Refund(c) => {
            let p = pocket_of(&ws, &c.pocket)?;
            let want = c
                .amount
                .map(|a| units(&ws, p, "amount", a, note))
                .transpose()?;
            let r = match tx.name(w, NameKind::Redemption, &c.redemption)? {
                Some(no) => tx.redemption_req(w, no)?,
                None => {
                    return fail(
                        ErrorCode::UnknownRedemption,
                        format!("wallet {wid} has no redemption {}", quoted(&c.redemption)),
                    );
                }
            };
            if r.pocket != p {
                return fail(
                    ErrorCode::UnknownRedemption,
                    format!(
                        "redemption {} of wallet {wid} is not in pocket {}",
                        quoted(&c.redemption),
                        quoted(&ws.pockets[p as usize].key)
                    ),
                );
            }
            let left = r.amount - r.refunded;
            let want = want.unwrap_or(Units::Fits(left));
            if want.saturated() > left || left == 0 {
                return fail(
                    ErrorCode::RefundExceedsRedemption,
                    format!(
                        "refund of {} exceeds what is left of redemption {}: {}",
                        show_units(&ws, p, want),
                        quoted(&r.id),
                        show(&ws, p, left)
                    ),
                );
            }
            receipt.pocket = Some(ws.pockets[p as usize].key.clone());
            receipt.redemption = Some(r.id.clone());
            vec![Event::Refunded {
                redemption: r.no,
                units: want.saturated(),
            }]
        }
        Command::Expire(c) => {
            let p = pocket_of(&ws, &c.pocket)?;
            let want = c
                .amount
                .map(|a| units(&ws, p, "amount", a, note))
                .transpose()?;
            let avail = ws.pockets[p as usize].figures.available();
            let want = want.unwrap_or(Units::Fits(avail));
            if want.saturated() > avail || avail == 0 {
                return Err(insufficient(&ws, p, want, avail, "available"));
            }
            receipt.pocket = Some(ws.pockets[p as usize].key.clone());
            vec![Event::Forfeited {
                pocket: p,
                units: want.saturated(),
            }]
        }
        Command::Hold(c) => {
            let p = pocket_of(&ws, &c.pocket)?;
            let u = units(&ws, p, "amount", c.amount, note)?;
            let no = ws.holds + 1;
            let id = match &c.hold {
                Some(id) => {
                    if tx.name(w, NameKind::Hold, id)?.is_some() {
                        return fail(
                            ErrorCode::DuplicateHold,
                            format!("wallet {wid} already has a hold {}", quoted(id)),
                        );
                    }
                    id.clone()
                }
                None => assign_name(tx, w, NameKind::Hold, no)?,
            };
            let avail = ws.pockets[p as usize].figures.available();
            if u.saturated() > avail {
                return Err(insufficient(&ws, p, u, avail, "available"));
            }
            if ws.open_holds >= MAX_OPEN_HOLDS_PER_WALLET || no > MAX_HOLDS_PER_WALLET {
                return fail(
                    ErrorCode::AmountOverflow,
                    format!(
                        "wallet {wid} has {} open holds ({MAX_OPEN_HOLDS_PER_WALLET} allowed) and {} in all ({MAX_HOLDS_PER_WALLET} allowed)",
                        ws.open_holds, ws.holds
                    ),
                );
            }
            receipt.pocket = Some(ws.pockets[p as usize].key.clone());
            receipt.hold = Some(id.clone());
            vec![Event::Held {
                pocket: p,
                hold: no,
                id,
                units: u.saturated(),
                expires_at: c
                    .expires_at
                    .as_ref()
                    .map(|t| instant("expires_at", t))
                    .transpose()?,
            }]
        }
        Command::Capture(c) => {
            let p = pocket_of(&ws, &c.pocket)?;
            let want = c
                .amount
                .map(|a| units(&ws, p, "amount", a, note))
                .transpose()?;
            let h = find_hold(tx, &ws, w, p, &c.hold)?;
            let rid = c.redemption.clone().unwrap_or_else(|| h.id.clone());
            if tx.name(w, NameKind::Redemption, &rid)?.is_some() {
                return fail(
                    ErrorCode::DuplicateRedemption,
                    format!("wallet {wid} already has a redemption {}", quoted(&rid)),
                );
            }
            let want = want.unwrap_or(Units::Fits(h.amount));
            if want.saturated() > h.amount {
                return fail(
                    ErrorCode::CaptureExceedsHold,
                    format!(
                        "capture of {} exceeds hold {} of {}",
                        show_units(&ws, p, want),
                        quoted(&h.id),
                        show(&ws, p, h.amount)
                    ),
                );
            }
            let no = ws.redemptions + 1;
            if no > MAX_REDEMPTIONS_PER_WALLET {
                return fail(
                    ErrorCode::AmountOverflow,
                    format!("wallet {wid} has {MAX_REDEMPTIONS_PER_WALLET} redemptions, the limit"),
                );
            }
            receipt.pocket = Some(ws.pockets[p as usize].key.clone());
            receipt.hold = Some(h.id.clone());
            receipt.redemption = Some(rid.clone());
            vec![Event::Captured {
                hold: h.no,
                redemption: no,
                id: rid,
                units: want.saturated(),
            }]
        }
        Command::Release(c) => {
            let p = pocket_of(&ws, &c.pocket)?;
            let h = find_hold(tx, &ws, w, p, &c.hold)?;
            receipt.pocket = Some(ws.pockets[p as usize].key.clone());
            receipt.hold = Some(h.id.clone());
            vec![Event::Released {
                hold: h.no,
                timed_out: false,
            }]
        }
        Command::DefineProgram(_)
        | Command::RegisterHolder(_)
        | Command::OpenWallet(_)
        | Command::Sweep
        | Command::Batch(_) => unreachable!("handled above"),
    };
    Ok(Decision {
        stream: w,
        events,
        receipt,
    })
}

fn find_lot(
    tx: &Tx,
    ws: &WalletState,
    w: u64,
    p: u16,
    id: &str,
) -> Result<crate::domain::state::Lot, CommandError> {
    let missing = || {
        CommandError::new(
            ErrorCode::UnknownLot,
            format!(
                "wallet {} has no lot {} in pocket {}",
                uuid_of(ws.uuid),
                quoted(id),
                quoted(&ws.pockets[p as usize].key)
            ),
        )
    };
    let no = tx.name(w, NameKind::Lot, id)?.ok_or_else(missing)?;
    let lot = tx.lot_req(w, no)?;
    if lot.pocket != p {
        return Err(missing());
    }
    Ok(lot)
}

fn find_hold(
    tx: &Tx,
    ws: &WalletState,
    w: u64,
    p: u16,
    id: &str,
) -> Result<crate::domain::state::HoldRec, CommandError> {
    let missing = || {
        CommandError::new(
            ErrorCode::UnknownHold,
            format!(
                "wallet {} has no hold {} in pocket {}",
                uuid_of(ws.uuid),
                quoted(id),
                quoted(&ws.pockets[p as usize].key)
            ),
        )
    };
    let no = tx.name(w, NameKind::Hold, id)?.ok_or_else(missing)?;
    let h = tx.hold_req(w, no)?;
    if h.pocket != p {
        return Err(missing());
    }
    if h.state != HoldState::Open {
        let how = match h.state {
            HoldState::Captured => "captured",
            HoldState::Released => "released",
            HoldState::Open => unreachable!(),
        };
        return fail(
            ErrorCode::HoldClosed,
            format!(
                "hold {} of wallet {} was {how}",
                quoted(id),
                uuid_of(ws.uuid)
            ),
        );
    }
    Ok(h)
}
