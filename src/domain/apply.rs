//! `apply`: the one function that changes state. The write path, reads at a later instant and
//! replay all call it, so stored and replayed figures cannot drift apart.
//!
//! `apply` trusts that `decide` checked the event; an event that does not fit the state (which
//! only a corrupted or tampered log can produce) is a [`StorageError`], never a panic. The §5
//! invariants are asserted on every pocket and lot it touches.

use crate::domain::event::Event;
use crate::domain::state::{
    Delta, DueKind, HoldRec, HoldState, LEDGER_STREAM, LifecycleRec, Lot, LotKeys, NameKind, Owner,
    PocketState, R, RedemptionRec, Slice, Tx, WalletState,
};
use crate::error::StorageError;
use crate::model::{Figures, LifecycleAction, Order, Status};

fn corrupt(msg: String) -> StorageError {
    StorageError(format!("log does not fit state: {msg}"))
}

fn sub(a: u128, b: u128, what: &str) -> R<u128> {
    a.checked_sub(b)
        .ok_or_else(|| corrupt(format!("{what}: {a} - {b} underflows")))
}

fn add(a: u128, b: u128, what: &str) -> R<u128> {
    a.checked_add(b)
        .ok_or_else(|| corrupt(format!("{what}: {a} + {b} overflows")))
}

fn pocket_mut(ws: &mut WalletState, p: u16) -> R<&mut PocketState> {
    let n = ws.number;
    ws.pockets
        .get_mut(p as usize)
        .ok_or_else(|| corrupt(format!("wallet {n} has no pocket index {p}")))
}

fn check_figures(ws: &WalletState) -> R<()> {
    for p in &ws.pockets {
        p.figures
            .check()
            .map_err(|e| corrupt(format!("wallet {} pocket {:?}: {e}", ws.number, p.key)))?;
    }
    Ok(())
}

fn put_lot_checked(tx: &mut Tx, w: u64, old: LotKeys, lot: Lot) -> R<()> {
    lot.check().map_err(corrupt)?;
    tx.put_lot(w, old, lot);
    Ok(())
}

/// Applies one event of stream `stream` that took effect at `at` (nanoseconds). Returns how it
/// changed the figures of the one pocket it touched, if any: stored beside the event, it lets a
/// read at an earlier instant sum figures instead of replaying (see [`Delta`]).
pub fn apply(tx: &mut Tx, stream: u64, at: i64, ev: &Event) -> R<Option<Delta>> {
    if stream == LEDGER_STREAM {
        let mut l = tx.ledger()?;
        l.ledger_seq += 1;
        tx.set_ledger(l);
        return match ev {
            Event::ProgramDefined(p) => {
                tx.put_program(p.clone());
                Ok(None)
            }
            Event::HolderRegistered(h) => {
                tx.put_holder(h.clone(), at);
                Ok(None)
            }
            other => Err(corrupt(format!(
                "event {} on the ledger stream",
                other.name()
            ))),
        };
    }
    if let Event::WalletOpened {
        wallet,
        number,
        holder,
        program,
        name,
        external_id,
        order,
        pockets,
        event_id,
    } = ev
    {
        if *number != stream {
            return Err(corrupt(format!(
                "wallet_opened for number {number} on stream {stream}"
            )));
        }
        let ws = WalletState {
            uuid: *wallet,
            number: *number,
            holder: *holder,
            program: *program,
            name: name.clone(),
            external_id: external_id.clone(),
            status: Status::Active,
            order: *order,
            created_at: at,
            updated_at: at,
            seq: 1,
            pockets: pockets
                .iter()
                .map(|p| PocketState {
                    key: p.template.pocket.clone(),
                    name: p.template.name.clone(),
                    kind: p.template.kind.clone(),
                    asset: p.template.asset.clone(),
                    scale: p.template.scale,
                    number: p.number,
                    uuid: p.uuid,
                    figures: Figures::default(),
                    issued: 0,
                })
                .collect(),
            lots: 0,
            holds: 0,
            open_holds: 0,
            redemptions: 0,
            lifecycle: 1,
            methods: Vec::new(),
            cards: Vec::new(),
            next_due: None,
        };
        let mut l = tx.ledger()?;
        l.wallets = l.wallets.max(*number);
        l.pockets = l
            .pockets
            .max(pockets.iter().map(|p| p.number).max().unwrap_or(0));
        tx.set_ledger(l);
        tx.index_wallet(&ws);
        tx.push_lifecycle(
            stream,
            0,
            LifecycleRec {
                action: LifecycleAction::Create,
                event_id: *event_id,
                at,
                reason: None,
            },
        );
        tx.put_wallet(ws);
        return Ok(None);
    }

    let w = stream;
    let mut ws = tx.take_wallet(w)?;
    let before = Before::of(&ws);
    if at < ws.updated_at {
        return Err(corrupt(format!(
            "wallet {w}: event at {at} precedes the last event at {}",
            ws.updated_at
        )));
    }
    ws.seq += 1;
    ws.updated_at = at;

    match ev {
        Event::ProgramDefined(_) | Event::HolderRegistered(_) | Event::WalletOpened { .. } => {
            return Err(corrupt(format!("event {} on wallet stream {w}", ev.name())));
        }
        Event::Credited {
            pocket,
            lot,
            id,
            units,
            activates_at,
            expires_at,
        } => {
            if *lot != ws.lots + 1 {
                return Err(corrupt(format!(
                    "wallet {w}: lot number {lot} out of sequence"
                )));
            }
            let promised = *activates_at > at;
            let order = ws.order;
            let p = pocket_mut(&mut ws, *pocket)?;
            p.issued = add(p.issued, *units, "issued")?;
            if promised {
                p.figures.promised = add(p.figures.promised, *units, "promised")?;
            } else {
                p.figures.credited = add(p.figures.credited, *units, "credited")?;
            }
            ws.lots = *lot;
            tx.put_name(w, NameKind::Lot, id, *lot);
            put_lot_checked(
                tx,
                w,
                LotKeys::NEW,
                Lot {
                    no: *lot,
                    id: id.clone(),
                    pocket: *pocket,
                    amount: *units,
                    free: *units,
                    held: 0,
                    spent: 0,
                    refunded: 0,
                    expired: 0,
                    issued_at: at,
                    activates_at: (*activates_at).max(at),
                    expires_at: *expires_at,
                    activated: !promised,
                    order_key: match order {
                        Order::EarliestExpiry => expires_at.unwrap_or(i64::MAX),
                        Order::EarliestIssuance => 0,
                    },
                },
            )?;
        }
        Event::Activated { lot, early } => {
            let (mut l, l_keys) = tx.lot_for_update(w, *lot)?;
            if l.activated {
                return Err(corrupt(format!(
                    "wallet {w}: lot {:?} activated twice",
                    l.id
                )));
            }
            if !*early && l.activates_at != at {
                return Err(corrupt(format!(
                    "wallet {w}: lot {:?} activated by time at {at}, due at {}",
                    l.id, l.activates_at
                )));
            }
            l.activated = true;
            l.activates_at = at;
            let p = pocket_mut(&mut ws, l.pocket)?;
            p.figures.promised = sub(p.figures.promised, l.amount, "promised")?;
            p.figures.credited = add(p.figures.credited, l.amount, "credited")?;
            put_lot_checked(tx, w, l_keys, l)?;
        }
        Event::Reversed { lot, units } => {
            let (mut l, l_keys) = tx.lot_for_update(w, *lot)?;
            l.amount = sub(l.amount, *units, "lot amount")?;
            l.free = sub(l.free, *units, "lot free")?;
            let p = pocket_mut(&mut ws, l.pocket)?;
            if l.activated {
                p.figures.credited = sub(p.figures.credited, *units, "credited")?;
            } else {
                p.figures.promised = sub(p.figures.promised, *units, "promised")?;
            }
            put_lot_checked(tx, w, l_keys, l)?;
        }
        Event::Redeemed {
            pocket,
            redemption,
            id,
            units,
        } => {
            if *redemption != ws.redemptions + 1 {
                return Err(corrupt(format!(
                    "wallet {w}: redemption number {redemption} out of sequence"
                )));
            }
            let n = consume(tx, w, *pocket, *units, Use::Redeem(*redemption))?;
            let p = pocket_mut(&mut ws, *pocket)?;
            p.figures.redeemed = add(p.figures.redeemed, *units, "redeemed")?;
            ws.redemptions = *redemption;
            tx.put_name(w, NameKind::Redemption, id, *redemption);
            tx.put_redemption(
                w,
                RedemptionRec {
                    no: *redemption,
                    id: id.clone(),
                    pocket: *pocket,
                    amount: *units,
                    refunded: 0,
                    allocs: n,
                    refund_pos: n,
                    refund_part: 0,
                },
            );
        }
        Event::Forfeited { pocket, units } => {
            consume(tx, w, *pocket, *units, Use::Forfeit)?;
            let p = pocket_mut(&mut ws, *pocket)?;
            p.figures.expired = add(p.figures.expired, *units, "expired")?;
        }
        Event::Held {
            pocket,
            hold,
            id,
            units,
            expires_at,
        } => {
            if *hold != ws.holds + 1 {
                return Err(corrupt(format!(
                    "wallet {w}: hold number {hold} out of sequence"
                )));
            }
            let n = consume(tx, w, *pocket, *units, Use::Hold(*hold))?;
            let p = pocket_mut(&mut ws, *pocket)?;
            p.figures.on_hold = add(p.figures.on_hold, *units, "on_hold")?;
            ws.holds = *hold;
            ws.open_holds += 1;
            tx.put_name(w, NameKind::Hold, id, *hold);
            tx.put_hold(
                w,
                HoldRec {
                    no: *hold,
                    id: id.clone(),
                    pocket: *pocket,
                    amount: *units,
                    expires_at: *expires_at,
                    state: HoldState::Open,
                    slices: n,
                },
            )?;
        }
        Event::Captured {
            hold,
            redemption,
            id,
            units,
        } => {
            let mut h = tx.hold_req(w, *hold)?;
            if h.state != HoldState::Open {
                return Err(corrupt(format!("wallet {w}: hold {:?} is not open", h.id)));
            }
            if *redemption != ws.redemptions + 1 {
                return Err(corrupt(format!(
                    "wallet {w}: redemption number {redemption} out of sequence"
                )));
            }
            let mut left = *units;
            let mut allocs = 0u32;
            let mut expired_now = 0u128;
            for i in 0..h.slices {
                let s = tx.slice(w, Owner::Hold(h.no), i)?;
                let (mut l, l_keys) = tx.lot_for_update(w, s.lot)?;
                let take = s.units.min(left);
                left -= take;
                l.held = sub(l.held, s.units, "lot held")?;
                if take > 0 {
                    l.spent = add(l.spent, take, "lot spent")?;
                    tx.put_slice(
                        w,
                        Owner::Redemption(*redemption),
                        allocs,
                        Slice {
                            lot: s.lot,
                            units: take,
                        },
                    );
                    allocs += 1;
                }
                expired_now = add(
                    expired_now,
                    return_to_lot(&mut l, s.units - take, at)?,
                    "expired",
                )?;
                put_lot_checked(tx, w, l_keys, l)?;
            }
            if left != 0 {
                return Err(corrupt(format!(
                    "wallet {w}: capture of {units} exceeds hold {:?}",
                    h.id
                )));
            }
            let p = pocket_mut(&mut ws, h.pocket)?;
            p.figures.on_hold = sub(p.figures.on_hold, h.amount, "on_hold")?;
            p.figures.redeemed = add(p.figures.redeemed, *units, "redeemed")?;
            p.figures.expired = add(p.figures.expired, expired_now, "expired")?;
            ws.redemptions = *redemption;
            ws.open_holds -= 1;
            tx.put_name(w, NameKind::Redemption, id, *redemption);
            tx.put_redemption(
                w,
                RedemptionRec {
                    no: *redemption,
                    id: id.clone(),
                    pocket: h.pocket,
                    amount: *units,
                    refunded: 0,
                    allocs,
                    refund_pos: allocs,
                    refund_part: 0,
                },
            );
            h.state = HoldState::Captured;
            tx.put_hold(w, h)?;
        }
        Event::Released { hold, timed_out } => {
            let mut h = tx.hold_req(w, *hold)?;
            if h.state != HoldState::Open {
                return Err(corrupt(format!("wallet {w}: hold {:?} is not open", h.id)));
            }
            if *timed_out && h.expires_at != Some(at) {
                return Err(corrupt(format!(
                    "wallet {w}: hold {:?} timed out at {at}, due at {:?}",
                    h.id, h.expires_at
                )));
            }
            let mut expired_now = 0u128;
            for i in 0..h.slices {
                let s = tx.slice(w, Owner::Hold(h.no), i)?;
                let (mut l, l_keys) = tx.lot_for_update(w, s.lot)?;
                l.held = sub(l.held, s.units, "lot held")?;
                expired_now = add(expired_now, return_to_lot(&mut l, s.units, at)?, "expired")?;
                put_lot_checked(tx, w, l_keys, l)?;
            }
            let p = pocket_mut(&mut ws, h.pocket)?;
            p.figures.on_hold = sub(p.figures.on_hold, h.amount, "on_hold")?;
            p.figures.expired = add(p.figures.expired, expired_now, "expired")?;
            ws.open_holds -= 1;
            h.state = HoldState::Released;
            tx.put_hold(w, h)?;
        }
        Event::Refunded { redemption, units } => {
            let mut r = tx.redemption_req(w, *redemption)?;
            let mut left = *units;
            let mut expired_now = 0u128;
            while left > 0 {
                if r.refund_pos == 0 {
                    return Err(corrupt(format!(
                        "wallet {w}: refund exceeds redemption {:?}",
                        r.id
                    )));
                }
                let s = tx.slice(w, Owner::Redemption(r.no), r.refund_pos - 1)?;
                let avail = sub(s.units, r.refund_part, "allocation")?;
                let take = avail.min(left);
                left -= take;
                let (mut l, l_keys) = tx.lot_for_update(w, s.lot)?;
                l.refunded = add(l.refunded, take, "lot refunded")?;
                expired_now = add(expired_now, return_to_lot(&mut l, take, at)?, "expired")?;
                put_lot_checked(tx, w, l_keys, l)?;
                if take == avail {
                    r.refund_pos -= 1;
                    r.refund_part = 0;
                } else {
                    r.refund_part += take;
                }
            }
            r.refunded = add(r.refunded, *units, "refunded")?;
            if r.refunded > r.amount {
                return Err(corrupt(format!(
                    "wallet {w}: redemption {:?} over-refunded",
                    r.id
                )));
            }
            let p = pocket_mut(&mut ws, r.pocket)?;
            p.figures.redeemed = sub(p.figures.redeemed, *units, "redeemed")?;
            p.figures.expired = add(p.figures.expired, expired_now, "expired")?;
            tx.put_redemption(w, r);
        }
        Event::Expired { lot } => {
            let (mut l, l_keys) = tx.lot_for_update(w, *lot)?;
            if !l.activated || l.expires_at.is_none_or(|e| e > at) || l.free == 0 {
                return Err(corrupt(format!(
                    "wallet {w}: lot {:?} cannot expire at {at}",
                    l.id
                )));
            }
            let x = l.free;
            l.free = 0;
            l.expired = add(l.expired, x, "lot expired")?;
            let p = pocket_mut(&mut ws, l.pocket)?;
            p.figures.expired = add(p.figures.expired, x, "expired")?;
            put_lot_checked(tx, w, l_keys, l)?;
        }
        Event::Lifecycle {
            action,
            reason,
            event_id,
        } => {
            ws.status = match (action, ws.status) {
                (LifecycleAction::Freeze, Status::Active) => Status::Frozen,
                (LifecycleAction::Unfreeze, Status::Frozen) => Status::Active,
                (LifecycleAction::Delete, Status::Active | Status::Frozen) => Status::Closed,
                (a, s) => {
                    return Err(corrupt(format!(
                        "wallet {w}: lifecycle {} from {}",
                        a.as_str(),
                        s.as_str()
                    )));
                }
            };
            tx.push_lifecycle(
                w,
                ws.lifecycle,
                LifecycleRec {
                    action: *action,
                    event_id: *event_id,
                    at,
                    reason: reason.clone(),
                },
            );
            ws.lifecycle += 1;
        }
        Event::PaymentMethodLinked(m) => ws.methods.push(m.clone()),
        Event::CardIssued(c) => {
            tx.index_card(&c.card, w);
            ws.cards.push(c.clone());
        }
    }
    check_figures(&ws)?;
    let mut delta = None;
    for (i, (b, p)) in before.as_slice().iter().zip(&ws.pockets).enumerate() {
        if *b != p.figures {
            if delta.is_some() {
                return Err(corrupt(format!(
                    "wallet {w}: event {} changed two pockets",
                    ev.name()
                )));
            }
            delta = Some(Delta::between(i as u16, b, &p.figures));
        }
    }
    tx.put_wallet(ws);
    Ok(delta)
}

/// The figures of every pocket before an event, to find the one pocket it changed. Wallets
/// have few pockets: keeping them inline spares every `apply` (reads derive with it too) an
/// allocation.
struct Before {
    inline: [Figures; 4],
    /// Used instead when the wallet has more pockets than `inline` holds.
    heap: Vec<Figures>,
    n: usize,
}

impl Before {
    fn of(ws: &WalletState) -> Before {
        let n = ws.pockets.len();
        let mut b = Before {
            inline: [Figures::default(); 4],
            heap: Vec::new(),
            n,
        };
        if n <= b.inline.len() {
            for (f, p) in b.inline.iter_mut().zip(&ws.pockets) {
                *f = p.figures;
            }
        } else {
            b.heap = ws.pockets.iter().map(|p| p.figures).collect();
        }
        b
    }

    fn as_slice(&self) -> &[Figures] {
        self.inline.get(..self.n).unwrap_or(&self.heap)
    }
}

/// Returns `units` (released from a hold or restored by a refund) to a lot: to its free value,
/// or, when the lot has expired by `at`, expired at once (SPEC §4.4). Returns the units expired.
fn return_to_lot(l: &mut Lot, units: u128, at: i64) -> R<u128> {
    if units == 0 {
        return Ok(0);
    }
    if l.expires_at.is_some_and(|e| e <= at) {
        l.expired = add(l.expired, units, "lot expired")?;
        Ok(units)
    } else {
        l.free = add(l.free, units, "lot free")?;
        Ok(0)
    }
}

enum Use {
    Redeem(u32),
    Hold(u32),
    Forfeit,
}

/// Takes `units` from the pocket's consumable lots in consumption order, touching only the lots it
/// takes from. Records allocations (redemption) or slices (hold). Returns the number of slices.
fn consume(tx: &mut Tx, w: u64, pocket: u16, units: u128, how: Use) -> R<u32> {
    let mut left = units;
    let mut n = 0u32;
    let mut after = None;
    while left > 0 {
        let k = tx.cons_next(w, pocket, after)?.ok_or_else(|| {
            corrupt(format!(
                "wallet {w}: pocket {pocket} lacks {left} of {units} to consume"
            ))
        })?;
        after = Some(k);
        let (mut l, l_keys) = tx.lot_for_update(w, k.lot)?;
        let take = l.free.min(left);
        left -= take;
        l.free -= take;
        match how {
            Use::Redeem(r) => {
                l.spent = add(l.spent, take, "lot spent")?;
                tx.put_slice(
                    w,
                    Owner::Redemption(r),
                    n,
                    Slice {
                        lot: l.no,
                        units: take,
                    },
                );
            }
            Use::Hold(h) => {
                l.held = add(l.held, take, "lot held")?;
                tx.put_slice(
                    w,
                    Owner::Hold(h),
                    n,
                    Slice {
                        lot: l.no,
                        units: take,
                    },
                );
            }
            Use::Forfeit => l.expired = add(l.expired, take, "lot expired")?,
        }
        n += 1;
        put_lot_checked(tx, w, l_keys, l)?;
    }
    Ok(n)
}

/// The next time-driven transition of wallet `w` due at or before `upto`, as the event that
/// records it and its instant. Pure: reads only.
pub fn next_due(tx: &Tx, w: u64, upto: i64) -> R<Option<(i64, Event)>> {
    let Some(k) = tx.due_next(w, None)? else {
        return Ok(None);
    };
    if k.at > upto {
        return Ok(None);
    }
    let ev = match k.kind {
        DueKind::Activation => Event::Activated {
            lot: k.no,
            early: false,
        },
        DueKind::HoldTimeout => Event::Released {
            hold: k.no,
            timed_out: true,
        },
        DueKind::Expiry => Event::Expired { lot: k.no },
    };
    Ok(Some((k.at, ev)))
}

/// Applies every transition of `w` due at or before `upto`, in due order; when `record` is set
/// the events are also queued for writing (write path), otherwise they only shape a read.
/// Returns how many were applied.
pub fn advance(tx: &mut Tx, w: u64, upto: i64, record: bool) -> R<u64> {
    let mut n = 0;
    while let Some((at, ev)) = next_due(tx, w, upto)? {
        let delta = apply(tx, w, at, &ev)?;
        if record {
            tx.record(w, at, ev, delta)?;
        }
        n += 1;
    }
    Ok(n)
}
