//! The flush: writes the in-memory layer into the projection tables, in one write transaction
//! that also records the log key it covers (`meta["flushed"]`). Each wallet's row is written once
//! however many commands changed it, and each chunk once however many of its records changed: a
//! flush of many commands writes each dirty page once.
//!
//! A flush reads the projection as it was before ([`Cached`], a read transaction begun before the
//! write transaction, with no other write of these tables in between: log appends touch only the
//! log) and never writes the log. It decides nothing: every record it writes is one the layer
//! holds, or one moved between a wallet row and its chunk because it stopped (or started again)
//! being live.

use super::l2::{Cached, encode_idem, next_in};
use super::mem::{Mem, WalletMem};
use super::*;
use crate::domain::apply::{apply, next_due};
use crate::domain::event::Event;
use crate::model::Program;
use redb::{ReadableTable, Table, WriteTransaction};
use std::collections::BTreeMap;

type R<T> = Result<T, StorageError>;

/// What a flush wrote.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Flushed {
    pub wallets: usize,
    pub rows: usize,
}

struct Tables<'t> {
    meta: Table<'t, &'static str, &'static [u8]>,
    wallets: Table<'t, u128, &'static [u8]>,
    numbers: Table<'t, u64, u128>,
    rows: Table<'t, &'static [u8], &'static [u8]>,
    programs: Table<'t, u64, &'static [u8]>,
    holders: Table<'t, u128, &'static [u8]>,
    identity: Table<'t, &'static str, u128>,
    email: Table<'t, &'static str, u128>,
    holder_wallets: Table<'t, &'static [u8], ()>,
    external: Table<'t, &'static str, u64>,
    cards: Table<'t, &'static str, u64>,
    next_due: Table<'t, &'static [u8], ()>,
    idem: Table<'t, &'static str, &'static [u8]>,
}

/// Writes `mem` over the projection `base` reads, into `txn` (not committed here).
pub fn flush(txn: &WriteTransaction, mem: &Mem, base: &Cached) -> R<Flushed> {
    let mut t = Tables {
        meta: txn.open_table(META)?,
        wallets: txn.open_table(WALLETS)?,
        numbers: txn.open_table(WALLET_NUMBERS)?,
        rows: txn.open_table(ROWS)?,
        programs: txn.open_table(PROGRAMS)?,
        holders: txn.open_table(HOLDERS)?,
        identity: txn.open_table(HOLDER_IDENTITY)?,
        email: txn.open_table(HOLDER_EMAIL)?,
        holder_wallets: txn.open_table(HOLDER_WALLETS)?,
        external: txn.open_table(WALLET_EXTERNAL)?,
        cards: txn.open_table(CARDS)?,
        next_due: txn.open_table(NEXT_DUE)?,
        idem: txn.open_table(IDEM)?,
    };
    let mut done = Flushed::default();
    let mut programs: Vec<(&u64, &std::sync::Arc<Program>)> = mem.programs.iter().collect();
    programs.sort_unstable_by_key(|(k, _)| **k);
    for (k, p) in programs {
        t.programs.insert(*k, &encode(&**p)[..])?;
        done.rows += 1;
    }
    let mut holders: Vec<(&[u8; 16], &std::sync::Arc<HolderRec>)> = mem.holders.iter().collect();
    holders.sort_unstable_by_key(|(k, _)| **k);
    for (k, h) in holders {
        t.holders
            .insert(u128::from_be_bytes(*k), &encode(&**h)[..])?;
        done.rows += 1;
    }
    for (k, v) in mem.identities.iter() {
        t.identity.insert(k.as_str(), u128::from_be_bytes(*v))?;
    }
    for (k, v) in mem.emails.iter() {
        t.email.insert(k.as_str(), u128::from_be_bytes(*v))?;
    }
    for (k, v) in mem.externals.iter() {
        t.external.insert(k.as_str(), *v)?;
    }
    for (k, v) in mem.cards.iter() {
        t.cards.insert(k.as_str(), *v)?;
    }
    for (h, w) in mem.holder_wallets.iter() {
        t.holder_wallets
            .insert(&holder_wallet_key(*h, *w)[..], ())?;
    }
    for (k, rec) in mem.idem.iter() {
        let (hash, instants, receipt) = &**rec;
        t.idem
            .insert(k.as_str(), &encode_idem(hash, instants, receipt)[..])?;
    }
    let mut wallets: Vec<(&u64, &std::sync::Arc<WalletMem>)> = mem.wallets.iter().collect();
    wallets.sort_unstable_by_key(|(w, _)| **w);
    for (w, wm) in wallets {
        done.rows += flush_wallet(&mut t, base, *w, wm)?;
        done.wallets += 1;
    }
    t.meta.insert(META_FLUSHED, &mem.last.to_bytes()[..])?;
    if let Some(l) = mem.ledger {
        t.meta.insert(META_COUNTERS, &encode(&l)[..])?;
    }
    Ok(done)
}

/// Reads a chunk of `Vec<T>` through the write transaction's table.
fn read_chunk<T: bincode::Decode<()>>(
    rows: &Table<&'static [u8], &'static [u8]>,
    key: &[u8],
    what: &str,
) -> R<Vec<T>> {
    match rows.get(key)? {
        Some(v) => decode(what, v.value()),
        None => Ok(Vec::new()),
    }
}

fn write_chunk<T: bincode::Encode>(
    rows: &mut Table<&'static [u8], &'static [u8]>,
    key: &[u8],
    v: &[T],
) -> R<()> {
    if v.is_empty() {
        rows.remove(key)?;
    } else {
        rows.insert(key, &encode(&v)[..])?;
    }
    Ok(())
}

/// Applies changes by number to a chunk sorted by number: `Some` puts, `None` removes.
fn patch_by_no<T: Clone>(chunk: &mut Vec<T>, no: impl Fn(&T) -> u32, changes: &[(u32, Option<T>)]) {
    for (n, v) in changes {
        let i = chunk.partition_point(|x| no(x) < *n);
        let here = chunk.get(i).is_some_and(|x| no(x) == *n);
        match (v, here) {
            (Some(v), true) => chunk[i] = v.clone(),
            (Some(v), false) => chunk.insert(i, v.clone()),
            (None, true) => {
                chunk.remove(i);
            }
            (None, false) => {}
        }
    }
}

/// Appends to a dense chunk (`idx` in order from the chunk's start): records `base + i`.
fn patch_dense<T: Clone>(chunk: &mut Vec<T>, at: usize, v: &T, what: &dyn Fn() -> String) -> R<()> {
    match at.cmp(&chunk.len()) {
        std::cmp::Ordering::Less => {
            chunk[at] = v.clone();
            Ok(())
        }
        std::cmp::Ordering::Equal => {
            chunk.push(v.clone());
            Ok(())
        }
        std::cmp::Ordering::Greater => Err(StorageError(format!(
            "{}: record {at} of a chunk of {} would leave a gap",
            what(),
            chunk.len()
        ))),
    }
}

fn flush_wallet(t: &mut Tables, base: &Cached, w: u64, wm: &WalletMem) -> R<usize> {
    let mut rows = 0usize;
    let prev = if wm.flushed { base.image(w)? } else { None };
    if wm.flushed && prev.is_none() {
        return Err(StorageError(format!(
            "wallet {w} is marked flushed but the projection has no row for it"
        )));
    }
    let prev_lots = prev.as_ref().map_or(0, |p| p.ws.lots);
    let prev_holds = prev.as_ref().map_or(0, |p| p.ws.holds);

    // Lots: the live ones stay in the wallet row, the rest go to (or stay in) their chunks.
    let mut live: BTreeMap<u32, Lot> = match &prev {
        Some(p) => p.lots.all()?.into_iter().map(|l| (l.no, l)).collect(),
        None => BTreeMap::new(),
    };
    let mut closed: BTreeMap<u32, Vec<(u32, Option<Lot>)>> = BTreeMap::new();
    for (no, lot) in wm.lots.iter() {
        let was_closed = *no <= prev_lots && !prev.as_ref().is_some_and(|p| p.lots.contains(*no));
        if lot_is_live(w, lot) {
            live.insert(*no, (**lot).clone());
            if was_closed {
                closed.entry(chunk_of(*no).0).or_default().push((*no, None));
            }
        } else {
            live.remove(no);
            closed
                .entry(chunk_of(*no).0)
                .or_default()
                .push((*no, Some((**lot).clone())));
        }
    }
    for (c, changes) in closed {
        let key = chunk_key(w, kind::LOTS, c);
        let mut v: Vec<Lot> = match t.rows.get(&key[..])? {
            Some(b) => decode_lots("lot chunk", b.value())?,
            None => Vec::new(),
        };
        patch_by_no(&mut v, |l| l.no, &changes);
        if v.is_empty() {
            t.rows.remove(&key[..])?;
        } else {
            t.rows.insert(&key[..], &encode_lots(&v)[..])?;
        }
        rows += 1;
    }

    // Holds: open ones in the row, ended ones in chunks.
    let mut open: BTreeMap<u32, HoldRec> =
        prev.as_ref().map(|p| p.holds.clone()).unwrap_or_default();
    let mut ended: BTreeMap<u32, Vec<(u32, Option<HoldRec>)>> = BTreeMap::new();
    for (no, h) in wm.holds.iter() {
        let was_ended =
            *no <= prev_holds && !prev.as_ref().is_some_and(|p| p.holds.contains_key(no));
        if hold_is_open(h) {
            open.insert(*no, (**h).clone());
            if was_ended {
                ended.entry(chunk_of(*no).0).or_default().push((*no, None));
            }
        } else {
            open.remove(no);
            ended
                .entry(chunk_of(*no).0)
                .or_default()
                .push((*no, Some((**h).clone())));
        }
    }
    for (c, changes) in ended {
        let key = chunk_key(w, kind::HOLDS, c);
        let mut v: Vec<HoldRec> = read_chunk(&t.rows, &key, "hold chunk")?;
        patch_by_no(&mut v, |h| h.no, &changes);
        write_chunk(&mut t.rows, &key, &v)?;
        rows += 1;
    }

    // Redemptions, with their allocations inline when there are few (all of a redemption's
    // allocations are made by the one event that creates it, so they are all in this layer with
    // it; a refund changes only the record, and keeps the allocations stored before).
    let mut reds: BTreeMap<u32, Vec<(u32, Option<RedemptionRec>)>> = BTreeMap::new();
    for (no, r) in wm.redemptions.iter() {
        reds.entry(chunk_of(*no).0)
            .or_default()
            .push((*no, Some((**r).clone())));
    }
    let inline = |r: &RedemptionRec| r.allocs <= INLINE_SLICES;
    for (c, changes) in reds {
        let key = chunk_key(w, kind::REDEMPTIONS, c);
        let mut v: Vec<StoredRedemption> = match t.rows.get(&key[..])? {
            Some(b) => decode_redemptions("redemption chunk", b.value())?,
            None => Vec::new(),
        };
        for (no, r) in changes {
            let r = r.expect("redemptions are never removed");
            let i = v.partition_point(|x| x.rec.no < no);
            let old = v.get(i).filter(|x| x.rec.no == no);
            let slices = if inline(&r) {
                let mine: Vec<Slice> = wm
                    .slices
                    .range((Owner::Redemption(no), 0)..=(Owner::Redemption(no), u32::MAX))
                    .map(|(_, s)| *s)
                    .collect();
                let slices = match old.and_then(|o| o.slices.clone()) {
                    Some(s) if mine.is_empty() => s,
                    _ => mine,
                };
                if slices.len() != r.allocs as usize {
                    return Err(StorageError(format!(
                        "wallet {w} redemption {no}: {} allocations, {} to store",
                        r.allocs,
                        slices.len()
                    )));
                }
                Some(slices)
            } else {
                None
            };
            let stored = StoredRedemption { rec: r, slices };
            if old.is_some() {
                v[i] = stored;
            } else {
                v.insert(i, stored);
            }
        }
        t.rows.insert(&key[..], &encode_redemptions(&v)[..])?;
        rows += 1;
    }

    // Slices: dense per owner; a redemption's few allocations went inline above.
    let mut slices: BTreeMap<(Owner, u32), Vec<(usize, Slice)>> = BTreeMap::new();
    for ((o, idx), s) in wm.slices.iter() {
        if let Owner::Redemption(no) = o
            && wm.redemptions.get(no).is_some_and(|r| inline(r))
        {
            continue;
        }
        let (c, i) = chunk_of(*idx);
        slices.entry((*o, c)).or_default().push((i, *s));
    }
    for ((o, c), changes) in slices {
        let key = slices_key(w, o, c);
        let mut v: Vec<Slice> = read_chunk(&t.rows, &key, "slice chunk")?;
        for (i, s) in changes {
            patch_dense(&mut v, i, &s, &|| format!("wallet {w} slices of {o:?}"))?;
        }
        write_chunk(&mut t.rows, &key, &v)?;
        rows += 1;
    }

    // Names of client-chosen ids.
    for ((k, id), no) in wm.names.iter() {
        t.rows
            .insert(&name_key(w, *k, id)[..], &no.to_be_bytes()[..])?;
        rows += 1;
    }

    // Lifecycle events: dense.
    let mut life: BTreeMap<u32, Vec<(usize, LifecycleRec)>> = BTreeMap::new();
    for (idx, rec) in wm.lifecycle.iter() {
        let (c, i) = chunk_of(*idx);
        life.entry(c).or_default().push((i, (**rec).clone()));
    }
    for (c, changes) in life {
        let key = chunk_key(w, kind::LIFECYCLE, c);
        let mut v: Vec<LifecycleRec> = read_chunk(&t.rows, &key, "lifecycle chunk")?;
        for (i, r) in changes {
            patch_dense(&mut v, i, &r, &|| format!("wallet {w} lifecycle"))?;
        }
        write_chunk(&mut t.rows, &key, &v)?;
        rows += 1;
    }

    for cp in wm.checkpoints.values() {
        t.rows
            .insert(&checkpoint_key(w, cp.at, cp.seq)[..], &encode(&**cp)[..])?;
        rows += 1;
    }

    // Event positions: the index chunks of events first_seq ..
    if !wm.positions.is_empty() {
        let mut seq = wm.first_seq;
        let mut it = wm.positions.iter().peekable();
        while it.peek().is_some() {
            let c = (seq - 1) / EVENT_CHUNK;
            let key = events_key(w, c);
            let mut v = match t.rows.get(&key[..])? {
                Some(b) => decode_positions("event index chunk", b.value())?,
                None => Vec::new(),
            };
            let start = (seq - 1 - c * EVENT_CHUNK) as usize;
            if start != v.len() {
                return Err(StorageError(format!(
                    "wallet {w}: event {seq} would be entry {start} of an index chunk of {}",
                    v.len()
                )));
            }
            while v.len() < EVENT_CHUNK as usize {
                match it.next() {
                    Some(p) => {
                        v.push(*p);
                        seq += 1;
                    }
                    None => break,
                }
            }
            t.rows.insert(&key[..], &encode_positions(&v)[..])?;
            rows += 1;
        }
        if seq != wm.ws.seq + 1 {
            return Err(StorageError(format!(
                "wallet {w}: the layer indexes events up to {}, the header says {}",
                seq - 1,
                wm.ws.seq
            )));
        }
    }

    // The wallet row, with the figures of its next transitions precomputed.
    let ws = (*wm.ws).clone();
    let row = WalletRow {
        schedule: Schedule::default(),
        ws,
        lots: live.into_values().collect(),
        holds: open.into_values().collect(),
    };
    let mut row = row;
    let img = WalletImage::of(row.clone());
    row.schedule = schedule_of(w, &img)?;
    let uuid = u128::from_be_bytes(row.ws.uuid);
    t.wallets.insert(uuid, &row.encode()[..])?;
    rows += 1;
    if prev.is_none() {
        t.numbers.insert(w, uuid)?;
        rows += 1;
    }
    // The sweep index entry, exact.
    let old = prev.as_ref().and_then(|p| p.ws.next_due);
    if old != row.ws.next_due || prev.is_none() {
        if let Some(o) = old {
            t.next_due.remove(&next_due_key(o, w)[..])?;
        }
        if let Some(n) = row.ws.next_due {
            t.next_due.insert(&next_due_key(n, w)[..], ())?;
        }
        rows += 1;
    }
    Ok(rows)
}

/// A [`Backing`] over one wallet's image: enough to derive its time-driven transitions other
/// than hold time-outs (which read slices, and which [`schedule`] stops before).
struct ImageBacking<'a> {
    w: u64,
    img: &'a WalletImage,
}

impl Backing for ImageBacking<'_> {
    fn ledger(&self) -> R<LedgerState> {
        Ok(LedgerState::default())
    }
    fn program(&self, _: u64) -> R<Option<Program>> {
        Ok(None)
    }
    fn holder(&self, _: [u8; 16]) -> R<Option<HolderRec>> {
        Ok(None)
    }
    fn holder_by_identity(&self, _: &str) -> R<Option<[u8; 16]>> {
        Ok(None)
    }
    fn holder_by_email(&self, _: &str) -> R<Option<[u8; 16]>> {
        Ok(None)
    }
    fn wallet_by_uuid(&self, _: [u8; 16]) -> R<Option<u64>> {
        Ok(None)
    }
    fn wallet_by_external(&self, _: &str) -> R<Option<u64>> {
        Ok(None)
    }
    fn wallet_by_card(&self, _: &str) -> R<Option<u64>> {
        Ok(None)
    }
    fn wallet(&self, no: u64) -> R<Option<WalletState>> {
        Ok((no == self.w).then(|| self.img.ws.clone()))
    }
    fn lot(&self, w: u64, no: u32) -> R<Option<Lot>> {
        if w != self.w {
            return Ok(None);
        }
        self.img.lots.get(no)
    }
    fn name(&self, _: u64, _: NameKind, _: &str) -> R<Option<u32>> {
        Ok(None)
    }
    fn hold(&self, w: u64, no: u32) -> R<Option<HoldRec>> {
        Ok((w == self.w)
            .then(|| self.img.holds.get(&no).cloned())
            .flatten())
    }
    fn redemption(&self, _: u64, _: u32) -> R<Option<RedemptionRec>> {
        Ok(None)
    }
    fn slice(&self, _: u64, _: Owner, _: u32) -> R<Option<Slice>> {
        Ok(None)
    }
    fn cons_next(
        &self,
        w: u64,
        pocket: u16,
        after: Option<ConsKey>,
        skip: &dyn Fn(&ConsKey) -> bool,
    ) -> R<Option<ConsKey>> {
        if w != self.w {
            return Ok(None);
        }
        let (lo, hi) = ConsKey::bounds(w, pocket);
        Ok(next_in(&self.img.cons, lo, hi, after, skip))
    }
    fn due_next(
        &self,
        w: u64,
        after: Option<DueKey>,
        skip: &dyn Fn(&DueKey) -> bool,
    ) -> R<Option<DueKey>> {
        if w != self.w {
            return Ok(None);
        }
        let (lo, hi) = DueKey::bounds(w);
        Ok(next_in(&self.img.due, lo, hi, after, skip))
    }
    fn wallets_due(&self, _: i64) -> R<Vec<u64>> {
        Ok(Vec::new())
    }
}

/// Derives up to [`SCHEDULE_STEPS`] of the wallet's next time-driven transitions from its image
/// with the same `apply` a read would run, stopping before a hold time-out.
pub fn schedule_of(w: u64, img: &WalletImage) -> R<Schedule> {
    let ib = ImageBacking { w, img };
    let mut tx = Tx::reading(&ib, Scratch::default());
    let mut s = Schedule::default();
    while let Some((at, ev)) = next_due(&tx, w, i64::MAX)? {
        if s.steps.len() == SCHEDULE_STEPS || matches!(ev, Event::Released { .. }) {
            s.horizon = Some(at);
            break;
        }
        let d = apply(&mut tx, w, at, &ev)?;
        s.steps.push((at, d.unwrap_or_default()));
    }
    Ok(s)
}
