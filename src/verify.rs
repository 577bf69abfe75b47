//! `verify`: replays the whole log and checks it against itself, the projection tables and the
//! in-memory layer.
//!
//! Two passes, so that memory follows live state (wallets, holders), never history:
//! 1. **The log, streamed in key order**: every record's checksum chained to the one before;
//!    events at gapless positions from 1, each stream's sequence gapless from 1; command records
//!    after an event, each equal to the idempotency record the projection (or the layer) keeps
//!    for its key; the ledger stream replayed (programs, holders). Per wallet only its event
//!    count is kept.
//! 2. **Wallet by wallet**: the wallet's events, found through its event index, replayed through
//!    the same `apply` into an empty overlay, checking on the way every time-driven transition
//!    (recorded exactly when due and in due order, none missed before a later event), every
//!    stored figure delta, every checkpoint and the §5 invariants (asserted by `apply`); then
//!    every record the ledger holds for the wallet (header, lots, holds, redemptions, slices,
//!    names, lifecycle events, indexes, the precomputed schedule, its sweep-index entry) equal
//!    to the replay's, and no stored row the replay does not have.
//!
//! Finally the global tables (programs, holders and their look-ups, wallet look-ups) against
//! what the replays produced, by count and by look-up.

use crate::domain::apply::{apply, next_due};
use crate::domain::event::Event;
use crate::domain::state::*;
use crate::error::StorageError;
use crate::storage::l2::{Cached, L2};
use crate::storage::log::{self as logrec, Body, LogKey};
use crate::storage::mem::{Layered, Mem};
use crate::storage::{self as st, WalletImage, codec, kind};
use redb::{ReadOnlyTable, ReadableTable, ReadableTableMetadata};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// What `verify` found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// Events replayed.
    pub events: u64,
    /// Wallets compared.
    pub wallets: u64,
    /// One line per problem, naming the record. Empty when the ledger is sound.
    pub problems: Vec<String>,
}

impl Report {
    /// True when `verify` found no problem.
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

const MAX_PROBLEMS: usize = 1000;

struct Problems(Vec<String>);

impl Problems {
    fn push(&mut self, s: String) {
        if self.0.len() < MAX_PROBLEMS {
            self.0.push(s);
        }
    }
}

fn is_time_driven(ev: &Event) -> bool {
    matches!(
        ev,
        Event::Activated { early: false, .. }
            | Event::Released {
                timed_out: true,
                ..
            }
            | Event::Expired { .. }
    )
}

/// How many units of work pass between two progress reports.
const PROGRESS_EVERY: u64 = 4096;

/// [`verify`], telling `progress(done, total)` how far it is now and then, in events: each
/// event is read once by the log pass and once by its wallet's replay, so `total` is twice the
/// number of events. The last call is `progress(total, total)`.
pub fn verify_with_progress(
    l2: &Arc<L2>,
    mem: &Mem,
    log: &ReadOnlyTable<(u64, u32), &'static [u8]>,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Report, StorageError> {
    let total = mem.last.position.saturating_mul(2);
    progress(0, total);
    let mut reported = 0u64;
    let mut report = |done: u64| {
        if done >= reported.saturating_add(PROGRESS_EVERY) || done == total {
            reported = done;
            progress(done.min(total), total);
        }
    };
    let mut p = Problems(Vec::new());
    // Each wallet's rows are read once: a small cache, dropped as it fills, is all this needs.
    let base = Cached::new(l2.clone(), 4 << 20);
    let view = Layered { mem, base: &base };
    let end = mem.last;

    // 1. The log, streamed.
    let mut head = [0u8; 16];
    let mut expect_pos = 1u64;
    let mut last = LogKey::ZERO;
    let mut counts: BTreeMap<u64, u64> = BTreeMap::new();
    let mut commands = 0u64;
    let empty = Empty;
    let mut ledger_tx = Tx::without_undo(&empty)?;
    for r in log.iter()? {
        let (k, v) = r?;
        let key = LogKey::from_tuple(k.value());
        if key > end {
            break;
        }
        report(key.position);
        let bytes = v.value();
        let rec = match logrec::decode(key, bytes) {
            Ok(r) => r,
            Err(e) => {
                p.push(e.0);
                head = [0xff; 16];
                last = key;
                continue;
            }
        };
        if logrec::chain(&head, key, bytes) != rec.checksum {
            p.push(format!(
                "log {key}: checksum mismatch: the record or one before it was altered, removed or reordered"
            ));
        }
        head = rec.checksum;
        match rec.body {
            Body::Event {
                stream,
                seq,
                delta: _,
                event,
            } => {
                if key.position != expect_pos {
                    p.push(format!(
                        "log {key}: follows position {} (a record was removed or moved)",
                        expect_pos - 1
                    ));
                }
                expect_pos = key.position + 1;
                let c = counts.entry(stream).or_insert(0);
                if seq != *c + 1 {
                    p.push(format!(
                        "log {key}: stream {stream} event {seq} follows event {c} of its stream"
                    ));
                }
                *c = seq;
                if stream == LEDGER_STREAM
                    && let Err(e) = apply(&mut ledger_tx, stream, rec.at, &event)
                {
                    p.push(format!("log {key}: {}", e.0));
                }
            }
            Body::Command(c) => {
                commands += 1;
                if key.position != expect_pos - 1 {
                    p.push(format!(
                        "log {key}: a command record not right after an event"
                    ));
                }
                let stored = match mem.idem.get(&c.key) {
                    Some(r) => Some((**r).clone()),
                    None => l2.idem_record(&c.key)?,
                };
                match stored {
                    Some((hash, instants, receipt))
                        if hash == c.hash
                            && instants == c.instants
                            && c.receipt.receipt().as_ref() == Ok(&receipt) => {}
                    Some(_) => p.push(format!(
                        "idempotency key {:?}: differs from its command record at log {key}",
                        c.key
                    )),
                    None => p.push(format!(
                        "idempotency key {:?}: recorded at log {key}, missing from the idempotency table",
                        c.key
                    )),
                }
            }
        }
        last = key;
    }
    if last != end {
        p.push(format!(
            "log: ends at {last}, but the ledger reflects records up to {end}"
        ));
    }
    let events: u64 = counts.values().sum();
    let idem_stored = l2.idem().len()?
        + mem
            .idem
            .keys()
            .filter(|k| l2.idem_record(k).ok().flatten().is_none())
            .count() as u64;
    if idem_stored != commands {
        p.push(format!(
            "idempotency table: {idem_stored} keys, the log records {commands}"
        ));
    }

    // 2. Wallet by wallet.
    let ledger = view.ledger()?;
    let wallets = counts.keys().filter(|s| **s != LEDGER_STREAM).count() as u64;
    let mut global = Global::default();
    // The ledger stream's events were replayed by the log pass.
    let mut done = end.position + counts.get(&LEDGER_STREAM).copied().unwrap_or(0);
    for w in 1..=ledger
        .wallets
        .max(counts.keys().copied().max().unwrap_or(0))
    {
        let n = counts.get(&w).copied().unwrap_or(0);
        if let Err(e) = check_wallet(&mut p, &view, log, w, n, &mut global) {
            p.push(format!("wallet {w}: {}", e.0));
        }
        done += n;
        report(done);
    }

    // Ledger counters.
    let replay_ledger = LedgerState {
        position: expect_pos - 1,
        ledger_seq: counts.get(&LEDGER_STREAM).copied().unwrap_or(0),
        wallets: global.max_wallet,
        pockets: global.max_pocket,
    };
    if ledger != replay_ledger {
        p.push(format!(
            "ledger counters: stored {ledger:?}, replay {replay_ledger:?}"
        ));
    }
    if ledger.wallets != wallets {
        p.push(format!(
            "ledger counters: {} wallets, the log opens {wallets}",
            ledger.wallets
        ));
    }

    // Global tables: programs and holders from the ledger stream's replay.
    let lc = ledger_tx.into_changes()?;
    check_global(&mut p, &view, l2, mem, &lc, &global)?;
    report(total);
    Ok(Report {
        events,
        wallets,
        problems: p.0,
    })
}

/// What the wallet replays found that the global tables must hold.
#[derive(Default)]
struct Global {
    max_wallet: u64,
    max_pocket: u64,
    uuids: u64,
    externals: Vec<(String, u64)>,
    cards: Vec<(String, u64)>,
    holder_wallets: u64,
}

/// Events of wallet `w` through its index (the projection's, then the layer's), `n` of them.
fn wallet_positions(view: &Layered, w: u64, n: u64) -> Result<Vec<u64>, StorageError> {
    let (flushed_to, m) = match view.mem.wallets.get(&w) {
        Some(m) => (m.first_seq - 1, Some(m)),
        None => (n, None),
    };
    let mut out = view.base.l2().positions(w, 1, n.min(flushed_to))?;
    if let Some(m) = m {
        out.extend(m.positions_between(1, n));
    }
    Ok(out)
}

fn check_wallet(
    p: &mut Problems,
    view: &Layered,
    log: &ReadOnlyTable<(u64, u32), &'static [u8]>,
    w: u64,
    n: u64,
    global: &mut Global,
) -> Result<(), StorageError> {
    let stored_ws = view.wallet(w)?;
    let Some(stored_ws) = stored_ws else {
        if n > 0 {
            p.push(format!(
                "wallet {w}: {n} events in the log, but no wallet row"
            ));
        }
        return Ok(());
    };
    global.max_wallet = global.max_wallet.max(w);
    if stored_ws.seq != n {
        p.push(format!(
            "wallet {w}: header says {} events, the log holds {n}",
            stored_ws.seq
        ));
    }
    let positions = wallet_positions(view, w, stored_ws.seq.min(n))?;
    if positions.len() as u64 != n.min(stored_ws.seq) {
        p.push(format!(
            "wallet {w}: the event index holds {} of its {n} events",
            positions.len()
        ));
    }
    let checkpoints = stored_checkpoints(view, w)?;
    let mut cps_seen = 0usize;
    let empty = Empty;
    let mut tx = Tx::without_undo(&empty)?;
    for (i, pos) in positions.iter().enumerate() {
        let seq = i as u64 + 1;
        let k = LogKey::event(*pos);
        let Some(v) = log.get(k.tuple())? else {
            p.push(format!(
                "wallet {w} event {seq}: indexed at log {k}, which is missing"
            ));
            return Ok(());
        };
        let rec = logrec::decode(k, v.value())?;
        let Body::Event {
            stream,
            seq: s,
            delta: stored_delta,
            event,
        } = rec.body
        else {
            p.push(format!(
                "wallet {w} event {seq}: indexed at {k}, a command record"
            ));
            return Ok(());
        };
        if (stream, s) != (w, seq) {
            p.push(format!(
                "wallet {w} event {seq}: indexed at {k}, which is stream {stream} event {s}"
            ));
            return Ok(());
        }
        let what = format!("wallet {w} event {seq} ({}, {k})", event.name());
        if !matches!(event, Event::WalletOpened { .. }) {
            match next_due(&tx, w, rec.at) {
                Ok(Some((due_at, due_ev))) => {
                    if !is_time_driven(&event) || due_at != rec.at || due_ev != event {
                        p.push(format!(
                            "{what}: a transition due at {} ({}) was not recorded before it",
                            crate::model::Instant(due_at),
                            due_ev.name()
                        ));
                    }
                }
                Ok(None) if is_time_driven(&event) => {
                    p.push(format!("{what}: recorded as due, but nothing was due then"));
                }
                Ok(None) => {}
                Err(e) => p.push(format!("{what}: {}", e.0)),
            }
        }
        let delta = match apply(&mut tx, w, rec.at, &event) {
            Ok(d) => d,
            Err(e) => {
                p.push(format!("{what}: {}", e.0));
                // State past a failed apply is meaningless; stop comparing this wallet.
                return Ok(());
            }
        };
        if delta != stored_delta {
            p.push(format!(
                "{what}: stored figure delta {stored_delta:?}, replay gives {delta:?}"
            ));
        }
        if seq.is_multiple_of(CHECKPOINT_EVERY) {
            let ws = tx.wallet_req(w)?;
            match checkpoints.get(&seq) {
                Some(c) if *c == Checkpoint::of(&ws) => {}
                Some(_) => p.push(format!("{what}: its checkpoint differs from replay")),
                None => p.push(format!("{what}: no checkpoint")),
            }
            cps_seen += 1;
        }
    }
    if cps_seen != checkpoints.len() {
        p.push(format!(
            "wallet {w}: {} checkpoints stored, {cps_seen} at events it has",
            checkpoints.len()
        ));
    }
    let c = tx.into_changes()?;
    let Some(ws) = c.wallets.get(&w) else {
        p.push(format!("wallet {w}: the replay opens no wallet"));
        return Ok(());
    };
    for pk in &ws.pockets {
        global.max_pocket = global.max_pocket.max(pk.number);
    }
    // Header (with its exact earliest due instant).
    if *ws != stored_ws {
        p.push(format!(
            "wallet {w}: header stored {stored_ws:?}, replay {ws:?}"
        ));
    }
    compare_records(p, view, w, &c, ws)?;
    // Look-ups of this wallet.
    global.uuids += 1;
    if view.wallet_by_uuid(ws.uuid)? != Some(w) {
        p.push(format!(
            "wallet {w}: its uuid {} does not look it up",
            crate::model::uuid_of(ws.uuid)
        ));
    }
    if let Some(e) = &ws.external_id {
        global.externals.push((e.clone(), w));
    }
    for card in c.cards.keys() {
        global.cards.push((card.clone(), w));
    }
    global.holder_wallets += c.holder_wallets.len() as u64;
    for (h, ww) in &c.holder_wallets {
        let stored = view.mem.holder_wallets.contains(&(*h, *ww))
            || view
                .base
                .l2()
                .holder_wallets()
                .get(&st::holder_wallet_key(*h, *ww)[..])?
                .is_some();
        if !stored {
            p.push(format!("holder wallets: wallet {ww} missing"));
        }
    }
    Ok(())
}

/// Checkpoints of `w` by sequence: the projection's and the layer's.
fn stored_checkpoints(view: &Layered, w: u64) -> Result<BTreeMap<u64, Checkpoint>, StorageError> {
    let mut out: BTreeMap<u64, Checkpoint> = view
        .base
        .l2()
        .checkpoints(w)?
        .into_iter()
        .map(|c| (c.seq, c))
        .collect();
    if let Some(m) = view.mem.wallets.get(&w) {
        for (s, c) in m.checkpoints.iter() {
            out.insert(*s, (**c).clone());
        }
    }
    Ok(out)
}

/// Every record of wallet `w` the ledger answers with equals the replay's; for a wallet the layer
/// does not hold, its stored rows are exactly those the replay implies.
fn compare_records(
    p: &mut Problems,
    view: &Layered,
    w: u64,
    c: &Changes,
    ws: &WalletState,
) -> Result<(), StorageError> {
    for no in 1..=ws.lots {
        let want = c.lots.get(&(w, no));
        let got = view.lot(w, no)?;
        if want != got.as_ref() {
            p.push(format!(
                "wallet {w} lot {no}: stored {got:?}, replay {want:?}"
            ));
        }
    }
    for no in 1..=ws.holds {
        let want = c.holds.get(&(w, no));
        let got = view.hold(w, no)?;
        if want != got.as_ref() {
            p.push(format!(
                "wallet {w} hold {no}: stored {got:?}, replay {want:?}"
            ));
        }
    }
    for no in 1..=ws.redemptions {
        let want = c.redemptions.get(&(w, no));
        let got = view.redemption(w, no)?;
        if want != got.as_ref() {
            p.push(format!(
                "wallet {w} redemption {no}: stored {got:?}, replay {want:?}"
            ));
        }
    }
    for ((ww, o, i), s) in &c.slices {
        if *ww != w {
            continue;
        }
        let got = view.slice(w, *o, *i)?;
        if got != Some(*s) {
            p.push(format!(
                "wallet {w} slice {i} of {o:?}: stored {got:?}, replay {s:?}"
            ));
        }
    }
    for ((ww, k, id), no) in &c.names {
        if *ww != w {
            continue;
        }
        if view.name(w, *k, id)? != Some(*no) {
            p.push(format!("wallet {w}: name {id:?} does not name {k:?} {no}"));
        }
    }
    // Lifecycle events.
    let mut life: Vec<&LifecycleRec> = c
        .lifecycle
        .iter()
        .filter(|(ww, _, _)| *ww == w)
        .map(|(_, _, r)| r)
        .collect();
    let stored_life = lifecycle_of(view, w, ws)?;
    if stored_life.len() != life.len()
        || stored_life.iter().zip(life.drain(..)).any(|(a, b)| a != b)
    {
        p.push(format!(
            "wallet {w}: {} lifecycle events stored differ from the replay's",
            stored_life.len()
        ));
    }
    // The complete indexes.
    let idx_cons: Vec<ConsKey> = c
        .cons_add
        .iter()
        .filter(|k| k.wallet == w)
        .copied()
        .collect();
    let idx_due: Vec<DueKey> = c
        .due_add
        .iter()
        .filter(|k| k.wallet == w)
        .copied()
        .collect();
    let (got_cons, got_due) = stored_index(view, w)?;
    if got_cons != idx_cons {
        p.push(format!(
            "wallet {w}: consumable index stored {got_cons:?}, replay {idx_cons:?}"
        ));
    }
    if got_due != idx_due {
        p.push(format!(
            "wallet {w}: due index stored {got_due:?}, replay {idx_due:?}"
        ));
    }
    if view.mem.wallets.contains_key(&w) {
        return Ok(());
    }
    // A flushed wallet: its rows, exactly.
    let l2 = view.base.l2();
    if let Some(row) = l2.row(w)? {
        let live: Vec<Lot> = c
            .lots
            .iter()
            .filter(|((ww, _), l)| *ww == w && st::lot_is_live(w, l))
            .map(|(_, l)| (l.no, l.clone()))
            .collect::<BTreeMap<u32, Lot>>()
            .into_values()
            .collect();
        let mut stored_live: Vec<Lot> = row.lots.clone();
        stored_live.sort_by_key(|l| l.no);
        let mut live_sorted = live;
        live_sorted.sort_by_key(|l| l.no);
        if stored_live != live_sorted {
            p.push(format!(
                "wallet {w}: its row holds lots {:?} as live, the replay {:?}",
                stored_live.iter().map(|l| l.no).collect::<Vec<_>>(),
                live_sorted.iter().map(|l| l.no).collect::<Vec<_>>()
            ));
        }
        // The schedule, recomputed from the row.
        if let Ok(s) = crate::storage::flush::schedule_of(w, &WalletImage::of(row.clone()))
            && s != row.schedule
        {
            p.push(format!(
                "wallet {w}: its row's schedule {:?} differs from the one its state gives {s:?}",
                row.schedule
            ));
        }
        // Its sweep-index entry.
        let entries = l2
            .wallets_due(i64::MAX)?
            .into_iter()
            .filter(|(_, ww)| *ww == w)
            .map(|(at, _)| at)
            .collect::<Vec<_>>();
        if entries != ws.next_due.into_iter().collect::<Vec<_>>() {
            p.push(format!(
                "wallet {w}: sweep index entries {entries:?}, its earliest due {:?}",
                ws.next_due
            ));
        }
    }
    // No stray row: every row of the wallet is one the replay implies.
    let lo = w.to_be_bytes();
    let hi = (w + 1).to_be_bytes();
    for r in l2.rows().range::<&[u8]>(&lo[..]..&hi[..])? {
        let (k, v) = r?;
        let k = k.value();
        let stray = match k.get(8).copied() {
            Some(kind::NAME) => {
                let ok = k.len() > 10
                    && [NameKind::Lot, NameKind::Hold, NameKind::Redemption]
                        .into_iter()
                        .find(|n| *n as u8 == k[9])
                        .and_then(|n| {
                            let id = std::str::from_utf8(&k[10..]).ok()?;
                            c.names.get(&(w, n, id.to_string())).copied()
                        })
                        .is_some_and(|no| v.value() == no.to_be_bytes());
                !ok
            }
            Some(kind::LOTS) => !match codec::decode_lots("lot chunk", v.value()) {
                Ok(lots) => {
                    !lots.is_empty()
                        && lots
                            .iter()
                            .all(|l| c.lots.get(&(w, l.no)) == Some(l) && !st::lot_is_live(w, l))
                }
                Err(_) => false,
            },
            Some(kind::HOLDS) => !chunk_ok::<HoldRec>(v.value(), |h| {
                c.holds.get(&(w, h.no)) == Some(h) && !st::hold_is_open(h)
            }),
            Some(kind::REDEMPTIONS) => {
                !match codec::decode_redemptions("redemption chunk", v.value()) {
                    Ok(reds) => {
                        !reds.is_empty()
                            && reds
                                .iter()
                                .all(|r| c.redemptions.get(&(w, r.rec.no)) == Some(&r.rec))
                    }
                    Err(_) => false,
                }
            }
            Some(kind::SLICES | kind::LIFECYCLE | kind::CHECKPOINT | kind::EVENTS) => false,
            _ => true,
        };
        if stray {
            p.push(format!(
                "wallet {w}: stored {} row {:02x?} is not what the replay gives",
                kind::name(k.get(8).copied().unwrap_or(255)).unwrap_or("unknown"),
                &k[9.min(k.len())..]
            ));
        }
    }
    Ok(())
}

fn chunk_ok<T: bincode::Decode<()>>(v: &[u8], each: impl Fn(&T) -> bool) -> bool {
    match codec::decode::<Vec<T>>("chunk", v) {
        Ok(items) => !items.is_empty() && items.iter().all(each),
        Err(_) => false,
    }
}

fn lifecycle_of(
    view: &Layered,
    w: u64,
    ws: &WalletState,
) -> Result<Vec<LifecycleRec>, StorageError> {
    let m = view.mem.wallets.get(&w);
    let mut out = match m {
        Some(m) if !m.flushed => Vec::new(),
        _ => view.base.l2().lifecycle(w, ws.lifecycle)?,
    };
    if let Some(m) = m {
        for (idx, rec) in m.lifecycle.iter() {
            let i = *idx as usize;
            if i < out.len() {
                out[i] = (**rec).clone();
            } else {
                out.push((**rec).clone());
            }
        }
    }
    Ok(out)
}

/// The wallet's whole consumable and due indexes as the ledger holds them.
fn stored_index(view: &Layered, w: u64) -> Result<(Vec<ConsKey>, Vec<DueKey>), StorageError> {
    if let Some(m) = view.mem.wallets.get(&w) {
        return Ok((m.cons.iter().collect(), m.due.iter().collect()));
    }
    match view.base.image(w)? {
        Some(img) => Ok((img.cons.to_vec(), img.due.to_vec())),
        None => Ok((Vec::new(), Vec::new())),
    }
}

fn check_global(
    p: &mut Problems,
    view: &Layered,
    l2: &L2,
    mem: &Mem,
    lc: &Changes,
    g: &Global,
) -> Result<(), StorageError> {
    // Programs and holders: each stored one equals the replay's, and none is extra.
    for (id, prog) in &lc.programs {
        if view.program(*id)?.as_ref() != Some(prog) {
            p.push(format!("program {id}: differs from replay"));
        }
    }
    let stored_programs = l2.programs().len()?
        + mem
            .programs
            .keys()
            .filter(|k| l2.program(**k).ok().flatten().is_none())
            .count() as u64;
    if stored_programs != lc.programs.len() as u64 {
        p.push(format!(
            "programs: {stored_programs} stored, replay has {}",
            lc.programs.len()
        ));
    }
    for (id, h) in &lc.holders {
        let same = match view.holder(*id)? {
            // A row written before rows kept the instant is not a difference (see
            // `HolderRec::UNKNOWN_SINCE`).
            Some(s) if s.registered_at == HolderRec::UNKNOWN_SINCE => s.holder == h.holder,
            s => s.as_ref() == Some(h),
        };
        if !same {
            p.push(format!(
                "holder {}: differs from replay",
                crate::model::uuid_of(*id)
            ));
        }
    }
    let stored_holders = l2.holders().len()?
        + mem
            .holders
            .keys()
            .filter(|k| l2.holder(**k).ok().flatten().is_none())
            .count() as u64;
    if stored_holders != lc.holders.len() as u64 {
        p.push(format!(
            "holders: {stored_holders} stored, replay has {}",
            lc.holders.len()
        ));
    }
    count_and_look_up(
        p,
        "holder identities",
        l2.identities().len()?,
        mem.identities
            .keys()
            .filter(|k| l2.holder_by_identity(k).ok().flatten().is_none())
            .count(),
        lc.identities
            .iter()
            .map(|(k, v)| (view.holder_by_identity(k), *v, k.clone())),
    )?;
    count_and_look_up(
        p,
        "holder emails",
        l2.emails().len()?,
        mem.emails
            .keys()
            .filter(|k| l2.holder_by_email(k).ok().flatten().is_none())
            .count(),
        lc.emails
            .iter()
            .map(|(k, v)| (view.holder_by_email(k), *v, k.clone())),
    )?;
    let ext: HashMap<String, u64> = g.externals.iter().cloned().collect();
    count_and_look_up(
        p,
        "external ids",
        l2.externals().len()?,
        mem.externals
            .keys()
            .filter(|k| l2.wallet_by_external(k).ok().flatten().is_none())
            .count(),
        ext.iter()
            .map(|(k, v)| (view.wallet_by_external(k), *v, k.clone())),
    )?;
    let cards: HashMap<String, u64> = g.cards.iter().cloned().collect();
    count_and_look_up(
        p,
        "cards",
        l2.card_table().len()?,
        mem.cards
            .keys()
            .filter(|k| l2.wallet_by_card(k).ok().flatten().is_none())
            .count(),
        cards
            .iter()
            .map(|(k, v)| (view.wallet_by_card(k), *v, k.clone())),
    )?;
    let hw = l2.holder_wallets().len()?
        + mem
            .holder_wallets
            .iter()
            .filter(|(h, w)| {
                l2.holder_wallets()
                    .get(&st::holder_wallet_key(*h, *w)[..])
                    .ok()
                    .flatten()
                    .is_none()
            })
            .count() as u64;
    if hw != g.holder_wallets {
        p.push(format!(
            "holder wallets: {hw} stored, replay has {}",
            g.holder_wallets
        ));
    }
    let flushed_wallets = l2.wallets().len()?;
    let numbers = l2.numbers().len()?;
    let new_wallets = mem.wallets.values().filter(|m| !m.flushed).count() as u64;
    if flushed_wallets != numbers || flushed_wallets + new_wallets != g.uuids {
        p.push(format!(
            "wallets: {flushed_wallets} rows and {numbers} numbers flushed, {new_wallets} new, replay has {}",
            g.uuids
        ));
    }
    Ok(())
}

fn count_and_look_up<T: PartialEq + std::fmt::Debug>(
    p: &mut Problems,
    what: &str,
    stored: u64,
    new: usize,
    replay: impl ExactSizeIterator<Item = (Result<Option<T>, StorageError>, T, String)>,
) -> Result<(), StorageError> {
    let n = replay.len();
    for (got, want, k) in replay {
        let got = got?;
        if got.as_ref() != Some(&want) {
            p.push(format!("{what}: {k:?} looks up {got:?}, replay {want:?}"));
        }
    }
    if stored + new as u64 != n as u64 {
        p.push(format!(
            "{what}: {} stored, replay has {n}",
            stored + new as u64
        ));
    }
    Ok(())
}
