//! A deliberately naive reference model of the ledger (SPEC §2–§7), written from the spec and not
//! from the crate's source: lots in a `Vec`, holds and redemptions in `Vec`s, every time-driven
//! transition found by scanning, figures summed from scratch. The property tests run it in lock
//! step with the real ledger and compare outcomes (ok, or the error code and batch index) and
//! figures at arbitrary instants.
//!
//! Points where the spec leaves room, and the choice the model makes:
//! - a partial `capture` captures the hold's slices in slice order (= consumption order) and
//!   releases the rest;
//! - a lot, hold or redemption named with a pocket other than its own is `unknown_*`;
//! - a promised lot reversed to zero has no activation event due (so a closed wallet never
//!   receives one), but at its `activates_at` it is active all the same (`lot_not_promised`);
//! - ids the ledger assigns are not predicted: the model takes them from the ledger's receipt
//!   (as a client would) and only checks that they are new in the wallet.

#![allow(dead_code)]

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use std::collections::{BTreeMap, BTreeSet};
use uuid::Uuid;
use wallet_ledger::ErrorCode;
use wallet_ledger::command::{Command, Receipt, Request};
use wallet_ledger::internals::model::{Order, Status};

/// Nanoseconds since the epoch, like the ledger's instants.
pub type Time = i64;

pub fn ns(t: &DateTime<Utc>) -> Time {
    t.timestamp_nanos_opt().expect("test times are in range")
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MLot {
    pub name: String,
    pub pocket: usize,
    pub amount: u128,
    pub free: u128,
    pub held: u128,
    pub spent: u128,
    pub refunded: u128,
    pub expired: u128,
    pub activated: bool,
    pub activates_at: Time,
    pub expires_at: Option<Time>,
}

impl MLot {
    /// SPEC §5 per lot: `amount = free + held + spent − refunded + expired`.
    pub fn balanced(&self) -> bool {
        self.free + self.held + self.spent + self.expired == self.amount + self.refunded
    }

    fn expired_by(&self, t: Time) -> bool {
        self.expires_at.is_some_and(|e| e <= t)
    }

    /// Value coming back from a hold or a refund: free again, or expired at once (§4.4).
    fn give_back(&mut self, units: u128, at: Time) {
        if self.expired_by(at) {
            self.expired += units;
        } else {
            self.free += units;
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HoldState {
    Open,
    Captured,
    Released,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MHold {
    pub name: String,
    pub pocket: usize,
    pub amount: u128,
    /// (lot index, units) in consumption order.
    pub slices: Vec<(usize, u128)>,
    pub expires_at: Option<Time>,
    pub state: HoldState,
    /// How many times the hold ended (must stay ≤ 1).
    pub ends: u32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MAlloc {
    pub lot: usize,
    pub units: u128,
    pub refunded: u128,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MRedemption {
    pub name: String,
    pub pocket: usize,
    pub amount: u128,
    pub refunded: u128,
    pub allocs: Vec<MAlloc>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MPocket {
    pub key: String,
    pub scale: u32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MWallet {
    pub status: Status,
    pub order: Order,
    pub pockets: Vec<MPocket>,
    pub lots: Vec<MLot>,
    pub holds: Vec<MHold>,
    pub reds: Vec<MRedemption>,
    pub methods: usize,
    pub created_at: Time,
    /// Time of the wallet's last recorded event (commands and recorded transitions).
    pub last: Time,
}

/// Figures of one pocket (SPEC §5) plus the lot-level sums they must agree with.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MFigures {
    pub promised: u128,
    pub credited: u128,
    pub redeemed: u128,
    pub expired: u128,
    pub on_hold: u128,
    /// Σ free of active lots (what `available` must be).
    pub free_active: u128,
    /// Σ held of all lots (what `on_hold` must be).
    pub held: u128,
}

impl MFigures {
    pub fn balance(&self) -> u128 {
        self.credited - self.redeemed - self.expired
    }
}

/// One transition due by time (§4.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Due {
    Activation(usize),
    HoldTimeout(usize),
    Expiry(usize),
}

impl MWallet {
    fn pocket_of(&self, p: &Option<String>) -> Result<usize, ErrorCode> {
        match p {
            None => Ok(0),
            Some(k) => self
                .pockets
                .iter()
                .position(|x| &x.key == k)
                .ok_or(ErrorCode::UnknownPocket),
        }
    }

    fn units(&self, pocket: usize, d: Decimal) -> Result<u128, ErrorCode> {
        to_units(d, self.pockets[pocket].scale)
    }

    fn lot_named(&self, name: &str) -> Option<usize> {
        self.lots.iter().position(|l| l.name == name)
    }
    fn hold_named(&self, name: &str) -> Option<usize> {
        self.holds.iter().position(|h| h.name == name)
    }
    fn red_named(&self, name: &str) -> Option<usize> {
        self.reds.iter().position(|r| r.name == name)
    }

    /// The earliest transition due at or before `t`, with its instant. Ties: activations, then
    /// hold time-outs, then expiries, then lot or hold order.
    fn next_due(&self, t: Time) -> Option<(Time, Due)> {
        let mut best: Option<(Time, Due)> = None;
        let mut offer = |c: (Time, Due)| {
            if c.0 <= t && best.is_none_or(|b| c < b) {
                best = Some(c);
            }
        };
        for (i, l) in self.lots.iter().enumerate() {
            if !l.activated {
                // A promised lot reversed to zero has nothing to activate: no event is due (so a
                // closed wallet receives none). It is still active by time (see `activate`).
                if l.amount > 0 {
                    offer((l.activates_at, Due::Activation(i)));
                }
            } else if l.free > 0
                && let Some(e) = l.expires_at
            {
                offer((e, Due::Expiry(i)));
            }
        }
        for (i, h) in self.holds.iter().enumerate() {
            if h.state == HoldState::Open
                && let Some(e) = h.expires_at
            {
                offer((e, Due::HoldTimeout(i)));
            }
        }
        best
    }

    /// Applies every transition due at or before `t`. Returns how many, and the last one's time.
    pub fn advance(&mut self, t: Time) -> (u64, Option<Time>) {
        let mut n = 0;
        let mut last = None;
        while let Some((at, due)) = self.next_due(t) {
            match due {
                Due::Activation(i) => self.lots[i].activated = true,
                Due::HoldTimeout(i) => self.end_hold(i, 0, at),
                Due::Expiry(i) => {
                    let l = &mut self.lots[i];
                    l.expired += l.free;
                    l.free = 0;
                }
            }
            n += 1;
            last = Some(at);
        }
        (n, last)
    }

    /// Ends hold `i`: the first `capture` units (in slice order) are spent, the rest go back.
    /// Returns the allocations of the captured part.
    fn end_hold_alloc(&mut self, i: usize, capture: u128, at: Time) -> Vec<MAlloc> {
        let mut left = capture;
        let mut allocs = Vec::new();
        let slices = self.holds[i].slices.clone();
        for (lot, units) in slices {
            let take = units.min(left);
            left -= take;
            let l = &mut self.lots[lot];
            l.held -= units;
            l.spent += take;
            if take > 0 {
                allocs.push(MAlloc {
                    lot,
                    units: take,
                    refunded: 0,
                });
            }
            l.give_back(units - take, at);
        }
        assert_eq!(left, 0, "model: capture beyond the hold");
        let h = &mut self.holds[i];
        h.state = if capture > 0 {
            HoldState::Captured
        } else {
            HoldState::Released
        };
        h.ends += 1;
        allocs
    }

    fn end_hold(&mut self, i: usize, capture: u128, at: Time) {
        self.end_hold_alloc(i, capture, at);
    }

    /// The pocket's active lots with free value, in the program's consumption order (§4.3).
    fn consumable(&self, pocket: usize) -> Vec<usize> {
        let mut v: Vec<usize> = (0..self.lots.len())
            .filter(|&i| {
                let l = &self.lots[i];
                l.pocket == pocket && l.activated && l.free > 0
            })
            .collect();
        if self.order == Order::EarliestExpiry {
            v.sort_by_key(|&i| (self.lots[i].expires_at.unwrap_or(Time::MAX), i));
        }
        v
    }

    /// Takes `units` of free value in consumption order; returns (lot, units) taken.
    fn consume(&mut self, pocket: usize, units: u128) -> Vec<(usize, u128)> {
        let mut left = units;
        let mut out = Vec::new();
        for i in self.consumable(pocket) {
            if left == 0 {
                break;
            }
            let take = self.lots[i].free.min(left);
            self.lots[i].free -= take;
            left -= take;
            out.push((i, take));
        }
        assert_eq!(left, 0, "model: consumed beyond what is available");
        out
    }

    /// Figures of every pocket, as the wallet stands (call `advance` first).
    pub fn figures(&self) -> Vec<MFigures> {
        let mut f = vec![MFigures::default(); self.pockets.len()];
        for l in &self.lots {
            let p = &mut f[l.pocket];
            if l.activated {
                p.credited += l.amount;
                p.free_active += l.free;
            } else {
                p.promised += l.free;
            }
            p.expired += l.expired;
            p.held += l.held;
        }
        for r in &self.reds {
            f[r.pocket].redeemed += r.amount - r.refunded;
        }
        for h in &self.holds {
            if h.state == HoldState::Open {
                f[h.pocket].on_hold += h.amount;
            }
        }
        f
    }

    /// Internal consistency of the model itself (SPEC §5, per lot and per pocket).
    pub fn self_check(&self) -> Result<(), String> {
        for l in &self.lots {
            if !l.balanced() {
                return Err(format!("model lot {l:?} does not balance"));
            }
        }
        for h in &self.holds {
            if h.ends > 1 {
                return Err(format!("model hold {:?} ended {} times", h.name, h.ends));
            }
        }
        for (i, f) in self.figures().iter().enumerate() {
            if f.redeemed + f.expired > f.credited
                || f.on_hold != f.held
                || f.balance() != f.free_active + f.held
            {
                return Err(format!("model pocket {i} is inconsistent: {f:?}"));
            }
        }
        Ok(())
    }
}

/// A positive decimal in units at `scale`: more places than `scale` is `scale_exceeded`.
pub fn to_units(d: Decimal, scale: u32) -> Result<u128, ErrorCode> {
    if d <= Decimal::ZERO {
        return Err(ErrorCode::InvalidAmount);
    }
    let d = d.normalize();
    if d.scale() > scale {
        return Err(ErrorCode::ScaleExceeded);
    }
    Ok(d.mantissa() as u128 * 10u128.pow(scale - d.scale()))
}

/// What the model expects a successful request to return.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Predicted {
    /// A new command: this many events appended.
    Done { events: u64 },
    /// An idempotent replay: exactly this receipt.
    Replayed(Box<Receipt>),
}

/// What the model expects a failing request to report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fail {
    pub code: ErrorCode,
    pub index: Option<usize>,
}

#[derive(Clone, Debug, Default)]
pub struct Model {
    programs: BTreeMap<u64, (Order, Vec<MPocket>)>,
    holders: BTreeSet<Uuid>,
    identities: BTreeSet<String>,
    emails: BTreeSet<String>,
    pub wallets: BTreeMap<Uuid, MWallet>,
    externals: BTreeSet<String>,
    cards: BTreeSet<String>,
    /// Key → (request as submitted without its key, the receipt the ledger returned).
    keys: BTreeMap<String, (Request, Receipt)>,
    /// Every successful state of each wallet with the time of the command that produced it.
    timeline: BTreeMap<Uuid, Vec<(Time, MWallet)>>,
    auto: u64,
}

fn without_key(r: &Request) -> Request {
    Request {
        key: None,
        ..r.clone()
    }
}

fn moves_value(c: &Command) -> bool {
    matches!(
        c,
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

/// SPEC §7 step 2, first half: every amount given is positive.
fn step2_amounts(cmd: &Command) -> Result<(), ErrorCode> {
    let amount_ok = |d: &Decimal| {
        if *d > Decimal::ZERO {
            Ok(())
        } else {
            Err(ErrorCode::InvalidAmount)
        }
    };
    match cmd {
        Command::Credit(c) => amount_ok(&c.amount),
        Command::Redeem(c) => amount_ok(&c.amount),
        Command::Hold(c) => amount_ok(&c.amount),
        Command::ReverseCredit(c) => c.amount.as_ref().map_or(Ok(()), amount_ok),
        Command::Refund(c) => c.amount.as_ref().map_or(Ok(()), amount_ok),
        Command::Expire(c) => c.amount.as_ref().map_or(Ok(()), amount_ok),
        Command::Capture(c) => c.amount.as_ref().map_or(Ok(()), amount_ok),
        _ => Ok(()),
    }
}

/// SPEC §7 step 2, second half: the command's own times are in order.
fn step2_times(cmd: &Command, at: Time) -> Result<(), ErrorCode> {
    let in_order = match cmd {
        Command::Credit(c) => c
            .expires_at
            .as_ref()
            .is_none_or(|e| ns(e) > c.activates_at.as_ref().map_or(at, ns).max(at)),
        Command::Hold(c) => c.expires_at.as_ref().is_none_or(|e| ns(e) > at),
        _ => true,
    };
    if in_order {
        Ok(())
    } else {
        Err(ErrorCode::InvalidTime)
    }
}

impl Model {
    pub fn new() -> Model {
        Model::default()
    }

    /// Predicts the outcome of `req` and, when it succeeds, applies it. `receipt` is the ledger's
    /// answer when it accepted the request: ids the ledger assigned are taken from it (the model
    /// does not predict them, only checks that they are new).
    pub fn execute(&mut self, req: &Request, receipt: Option<&Receipt>) -> Result<Predicted, Fail> {
        if let Some(k) = &req.key
            && let Some((orig, receipt)) = self.keys.get(k)
        {
            return if *orig == without_key(req) {
                let mut r = receipt.clone();
                r.replayed = true;
                Ok(Predicted::Replayed(Box::new(r)))
            } else {
                Err(Fail {
                    code: ErrorCode::IdempotencyConflict,
                    index: None,
                })
            };
        }
        let at = ns(req.at.as_ref().expect("the tests always give `at`"));
        let before = self.clone();
        let r = match &req.command {
            Command::Batch(items) => {
                // Steps 1 and 2 are properties of the request: every item's structure, then
                // every item's amounts, then every item's times, before any item runs.
                let iat = |item: &Request| item.at.as_ref().map(ns).unwrap_or(at);
                let stateless = items
                    .iter()
                    .enumerate()
                    .find_map(|(i, item)| {
                        (item.key.is_some() || matches!(item.command, Command::Batch(_)))
                            .then_some((i, ErrorCode::InvalidCommand))
                    })
                    .or_else(|| {
                        items.iter().enumerate().find_map(|(i, item)| {
                            step2_amounts(&item.command).err().map(|c| (i, c))
                        })
                    })
                    .or_else(|| {
                        items.iter().enumerate().find_map(|(i, item)| {
                            step2_times(&item.command, iat(item)).err().map(|c| (i, c))
                        })
                    });
                if let Some((i, code)) = stateless {
                    return Err(Fail {
                        code,
                        index: Some(i),
                    });
                }
                let mut events = 0;
                let mut failed = None;
                for (i, item) in items.iter().enumerate() {
                    let r = self.one(
                        &item.command,
                        iat(item),
                        receipt.and_then(|r| r.commands.get(i)),
                    );
                    match r {
                        Ok(n) => events += n,
                        Err(code) => {
                            failed = Some(Fail {
                                code,
                                index: Some(i),
                            });
                            break;
                        }
                    }
                }
                match failed {
                    Some(f) => Err(f),
                    None => Ok(Predicted::Done { events }),
                }
            }
            cmd => self
                .one(cmd, at, receipt)
                .map(|events| Predicted::Done { events })
                .map_err(|code| Fail { code, index: None }),
        };
        if r.is_err() {
            *self = before;
        }
        r
    }

    /// Records the receipt of a successful keyed request (the ledger's, which the model does not
    /// try to predict beyond its event count).
    pub fn remember(&mut self, req: &Request, receipt: &Receipt) {
        if let Some(k) = &req.key {
            self.keys
                .entry(k.clone())
                .or_insert_with(|| (without_key(req), receipt.clone()));
        }
    }

    /// The id the ledger assigned (from its receipt), or a placeholder no client id can equal
    /// when the ledger refused a request the model accepts (the outcomes then differ anyway).
    fn assigned(&mut self, given: Option<&String>) -> String {
        match given {
            Some(id) => id.clone(),
            None => {
                self.auto += 1;
                format!("\u{1}auto-{}", self.auto)
            }
        }
    }

    /// One non-batch command at `at`; returns the number of events it appends.
    fn one(
        &mut self,
        cmd: &Command,
        at: Time,
        receipt: Option<&Receipt>,
    ) -> Result<u64, ErrorCode> {
        use ErrorCode as E;
        // Step 2 (amounts, then times).
        step2_amounts(cmd)?;
        step2_times(cmd, at)?;
        match cmd {
            Command::DefineProgram(c) => {
                if self.programs.contains_key(&c.program) {
                    return Err(E::DuplicateProgram);
                }
                let pockets = c
                    .pockets
                    .iter()
                    .map(|p| MPocket {
                        key: p.pocket.clone(),
                        scale: p.scale,
                    })
                    .collect();
                self.programs.insert(c.program, (c.order, pockets));
                Ok(1)
            }
            Command::RegisterHolder(c) => {
                let id = c.holder.expect("the tests always name holders");
                if self.holders.contains(&id) {
                    return Err(E::DuplicateHolder);
                }
                if c.identity
                    .as_ref()
                    .is_some_and(|i| self.identities.contains(i))
                {
                    return Err(E::IdentityTaken);
                }
                let email = c.email.as_ref().map(|e| e.trim().to_lowercase());
                if email.as_ref().is_some_and(|e| self.emails.contains(e)) {
                    return Err(E::IdentityTaken);
                }
                self.holders.insert(id);
                self.identities.extend(c.identity.clone());
                self.emails.extend(email);
                Ok(1)
            }
            Command::OpenWallet(c) => {
                let id = c.wallet.expect("the tests always name wallets");
                if self.wallets.contains_key(&id) {
                    return Err(E::DuplicateWallet);
                }
                if c.external_id
                    .as_ref()
                    .is_some_and(|e| self.externals.contains(e))
                {
                    return Err(E::ExternalIdTaken);
                }
                if !self.holders.contains(&c.holder) {
                    return Err(E::UnknownHolder);
                }
                let Some((order, pockets)) = self.programs.get(&c.program).cloned() else {
                    return Err(E::UnknownProgram);
                };
                self.externals.extend(c.external_id.clone());
                let w = MWallet {
                    status: Status::Active,
                    order,
                    pockets,
                    lots: Vec::new(),
                    holds: Vec::new(),
                    reds: Vec::new(),
                    methods: 0,
                    created_at: at,
                    last: at,
                };
                self.timeline.insert(id, vec![(at, w.clone())]);
                self.wallets.insert(id, w);
                Ok(1)
            }
            Command::Sweep => {
                let mut n = 0;
                for w in self.wallets.values_mut() {
                    let (k, last) = w.advance(at);
                    n += k;
                    if let Some(t) = last {
                        w.last = w.last.max(t);
                    }
                }
                Ok(n)
            }
            Command::Batch(_) => Err(E::InvalidCommand),
            cmd => {
                let wid = cmd.wallet().expect("a wallet command");
                let Some(w0) = self.wallets.get(&wid) else {
                    return Err(E::UnknownWallet);
                };
                if at < w0.last {
                    return Err(E::Backdated);
                }
                let mut w = w0.clone();
                let (due, _) = w.advance(at);
                match (w.status, cmd) {
                    (Status::Closed, _) => return Err(E::WalletClosed),
                    (Status::Frozen, c) if moves_value(c) => return Err(E::WalletFrozen),
                    (Status::Frozen, Command::Freeze(_)) => return Err(E::InvalidTransition),
                    (Status::Active, Command::Unfreeze(_)) => return Err(E::InvalidTransition),
                    _ => {}
                }
                self.wallet_command(&mut w, cmd, at, receipt)?;
                if let Err(e) = w.self_check() {
                    panic!("{e}");
                }
                w.last = at;
                self.timeline
                    .get_mut(&wid)
                    .expect("opened wallets have a timeline")
                    .push((at, w.clone()));
                self.wallets.insert(wid, w);
                Ok(due + 1)
            }
        }
    }

    /// Steps 6–8 and the effect of a command on an active (or frozen, for release) wallet.
    fn wallet_command(
        &mut self,
        w: &mut MWallet,
        cmd: &Command,
        at: Time,
        receipt: Option<&Receipt>,
    ) -> Result<(), ErrorCode> {
        use ErrorCode as E;
        match cmd {
            Command::Freeze(_) => w.status = Status::Frozen,
            Command::Unfreeze(_) => w.status = Status::Active,
            Command::Close(_) => {
                if w.figures()
                    .iter()
                    .any(|f| f.balance() != 0 || f.promised != 0 || f.on_hold != 0)
                {
                    return Err(E::WalletNotEmpty);
                }
                w.status = Status::Closed;
            }
            Command::LinkPaymentMethod(_) => w.methods += 1,
            Command::IssueCard(c) => {
                if self.cards.contains(&c.card) {
                    return Err(E::DuplicateCard);
                }
                self.cards.insert(c.card.clone());
            }
            Command::Credit(c) => {
                let p = w.pocket_of(&c.pocket)?;
                let u = w.units(p, c.amount)?;
                if c.lot.as_ref().is_some_and(|n| w.lot_named(n).is_some()) {
                    return Err(E::DuplicateLot);
                }
                let name = match &c.lot {
                    Some(n) => n.clone(),
                    None => {
                        let id = self.assigned(receipt.and_then(|r| r.lot.as_ref()));
                        assert!(
                            w.lot_named(&id).is_none(),
                            "the ledger reassigned lot id {id:?}"
                        );
                        id
                    }
                };
                let act = c.activates_at.as_ref().map_or(at, ns).max(at);
                w.lots.push(MLot {
                    name,
                    pocket: p,
                    amount: u,
                    free: u,
                    held: 0,
                    spent: 0,
                    refunded: 0,
                    expired: 0,
                    activated: act <= at,
                    activates_at: act,
                    expires_at: c.expires_at.as_ref().map(ns),
                });
            }
            Command::Activate(c) => {
                let p = w.pocket_of(&c.pocket)?;
                let i = w
                    .lot_named(&c.lot)
                    .filter(|&i| w.lots[i].pocket == p)
                    .ok_or(E::UnknownLot)?;
                // Promised means `activates_at` > `at` (§4.1), recorded or not.
                if w.lots[i].activated || w.lots[i].activates_at <= at {
                    return Err(E::LotNotPromised);
                }
                w.lots[i].activated = true;
                w.lots[i].activates_at = at;
            }
            Command::ReverseCredit(c) => {
                let p = w.pocket_of(&c.pocket)?;
                let want = c.amount.map(|a| w.units(p, a)).transpose()?;
                let i = w
                    .lot_named(&c.lot)
                    .filter(|&i| w.lots[i].pocket == p)
                    .ok_or(E::UnknownLot)?;
                let free = w.lots[i].free;
                let want = want.unwrap_or(free);
                if want > free || want == 0 {
                    return Err(E::InsufficientFunds);
                }
                w.lots[i].amount -= want;
                w.lots[i].free -= want;
            }
            Command::Redeem(c) => {
                let p = w.pocket_of(&c.pocket)?;
                let u = w.units(p, c.amount)?;
                if c.redemption
                    .as_ref()
                    .is_some_and(|n| w.red_named(n).is_some())
                {
                    return Err(E::DuplicateRedemption);
                }
                if u > w.figures()[p].free_active {
                    return Err(E::InsufficientFunds);
                }
                let name = match &c.redemption {
                    Some(n) => n.clone(),
                    None => {
                        let id = self.assigned(receipt.and_then(|r| r.redemption.as_ref()));
                        assert!(
                            w.red_named(&id).is_none(),
                            "the ledger reassigned redemption id {id:?}"
                        );
                        id
                    }
                };
                let taken = w.consume(p, u);
                for &(i, t) in &taken {
                    w.lots[i].spent += t;
                }
                w.reds.push(MRedemption {
                    name,
                    pocket: p,
                    amount: u,
                    refunded: 0,
                    allocs: taken
                        .into_iter()
                        .map(|(lot, units)| MAlloc {
                            lot,
                            units,
                            refunded: 0,
                        })
                        .collect(),
                });
            }
            Command::Refund(c) => {
                let p = w.pocket_of(&c.pocket)?;
                let want = c.amount.map(|a| w.units(p, a)).transpose()?;
                let r = w
                    .red_named(&c.redemption)
                    .filter(|&r| w.reds[r].pocket == p)
                    .ok_or(E::UnknownRedemption)?;
                let left = w.reds[r].amount - w.reds[r].refunded;
                let want = want.unwrap_or(left);
                if want > left || want == 0 {
                    return Err(E::RefundExceedsRedemption);
                }
                let mut rest = want;
                for k in (0..w.reds[r].allocs.len()).rev() {
                    let a = &mut w.reds[r].allocs[k];
                    let take = (a.units - a.refunded).min(rest);
                    if take == 0 {
                        continue;
                    }
                    a.refunded += take;
                    rest -= take;
                    let lot = a.lot;
                    w.lots[lot].refunded += take;
                    w.lots[lot].give_back(take, at);
                    if rest == 0 {
                        break;
                    }
                }
                w.reds[r].refunded += want;
            }
            Command::Expire(c) => {
                let p = w.pocket_of(&c.pocket)?;
                let want = c.amount.map(|a| w.units(p, a)).transpose()?;
                let avail = w.figures()[p].free_active;
                let want = want.unwrap_or(avail);
                if want > avail || want == 0 {
                    return Err(E::InsufficientFunds);
                }
                for (i, t) in w.consume(p, want) {
                    w.lots[i].expired += t;
                }
            }
            Command::Hold(c) => {
                let p = w.pocket_of(&c.pocket)?;
                let u = w.units(p, c.amount)?;
                if c.hold.as_ref().is_some_and(|n| w.hold_named(n).is_some()) {
                    return Err(E::DuplicateHold);
                }
                if u > w.figures()[p].free_active {
                    return Err(E::InsufficientFunds);
                }
                let name = match &c.hold {
                    Some(n) => n.clone(),
                    None => {
                        let id = self.assigned(receipt.and_then(|r| r.hold.as_ref()));
                        assert!(
                            w.hold_named(&id).is_none(),
                            "the ledger reassigned hold id {id:?}"
                        );
                        id
                    }
                };
                let slices = w.consume(p, u);
                for &(i, t) in &slices {
                    w.lots[i].held += t;
                }
                w.holds.push(MHold {
                    name,
                    pocket: p,
                    amount: u,
                    slices,
                    expires_at: c.expires_at.as_ref().map(ns),
                    state: HoldState::Open,
                    ends: 0,
                });
            }
            Command::Capture(c) => {
                let p = w.pocket_of(&c.pocket)?;
                let want = c.amount.map(|a| w.units(p, a)).transpose()?;
                let h = w
                    .hold_named(&c.hold)
                    .filter(|&h| w.holds[h].pocket == p)
                    .ok_or(E::UnknownHold)?;
                if w.holds[h].state != HoldState::Open {
                    return Err(E::HoldClosed);
                }
                let rid = c.redemption.clone().unwrap_or_else(|| c.hold.clone());
                if w.red_named(&rid).is_some() {
                    return Err(E::DuplicateRedemption);
                }
                let want = want.unwrap_or(w.holds[h].amount);
                if want > w.holds[h].amount {
                    return Err(E::CaptureExceedsHold);
                }
                let allocs = w.end_hold_alloc(h, want, at);
                w.reds.push(MRedemption {
                    name: rid,
                    pocket: p,
                    amount: want,
                    refunded: 0,
                    allocs,
                });
            }
            Command::Release(c) => {
                let p = w.pocket_of(&c.pocket)?;
                let h = w
                    .hold_named(&c.hold)
                    .filter(|&h| w.holds[h].pocket == p)
                    .ok_or(E::UnknownHold)?;
                if w.holds[h].state != HoldState::Open {
                    return Err(E::HoldClosed);
                }
                w.end_hold(h, 0, at);
            }
            Command::DefineProgram(_)
            | Command::RegisterHolder(_)
            | Command::OpenWallet(_)
            | Command::Sweep
            | Command::Batch(_) => unreachable!("not a wallet command"),
        }
        Ok(())
    }

    /// The wallet as of `t` (every event at or before `t`, plus the transitions due by `t`), or
    /// `None` when it did not exist yet.
    pub fn wallet_at(&self, wid: Uuid, t: Time) -> Option<MWallet> {
        let tl = self.timeline.get(&wid)?;
        let (_, w) = tl.iter().rev().find(|(at, _)| *at <= t)?;
        let mut w = w.clone();
        w.advance(t);
        Some(w)
    }

    /// Figures of every pocket of a wallet as of `t`.
    pub fn figures_at(&self, wid: Uuid, t: Time) -> Option<Vec<MFigures>> {
        self.wallet_at(wid, t).map(|w| w.figures())
    }

    /// How many transitions a `sweep` at `t` would record across the ledger.
    pub fn due_count(&self, t: Time) -> u64 {
        self.wallets.values().map(|w| w.clone().advance(t).0).sum()
    }
}
