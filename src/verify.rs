//! `verify`: replays the whole log and checks it against itself and the materialized state.
//!
//! It checks, and reports each failure by record:
//! - the global log: positions gapless from 1, each pointing at the event record that carries it;
//! - every stream: sequences gapless from 1, each record's checksum chained to the previous one,
//!   the stored chain head equal to the last record's;
//! - §4.2: every time-driven transition recorded exactly when due and in due order, none missed
//!   before a later event (replay asks [`next_due`] before every event);
//! - §5: every invariant after every event (asserted by `apply`);
//! - every stored figure delta and checkpoint equal to what replay computes;
//! - materialized = replay: every row of every table equal to what the replay rebuilt (a name row
//!   a file written before canonical names lost their rows still holds is redundant, not a
//!   difference).

use crate::domain::apply::{apply, next_due};
use crate::domain::event::Event;
use crate::domain::state::*;
use crate::error::StorageError;
use crate::storage::codec::{self, chain};
use crate::storage::{self as st, Checkpoint, HeaderPrefix, ReadTables, row};
use redb::{ReadableTable, ReadableTableMetadata};
use std::collections::BTreeMap;

/// What `verify` found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    pub events: u64,
    pub wallets: u64,
    /// One line per problem, naming the record. Empty when the ledger is sound.
    pub problems: Vec<String>,
}

impl Report {
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

/// Files written before canonical names (`lot-N` of lot N, …) lost their rows still hold one for
/// each. Such a row gives the same answer as the record it names, so it is redundant, not a
/// difference; a row that names another number, or a record with another id, is still reported.
fn redundant_name_row(k: &[u8], v: &[u8], c: &Changes) -> bool {
    if k.len() < 10 || k[8] != row::NAME {
        return false;
    }
    let w = u64::from_be_bytes(k[..8].try_into().expect("sized"));
    let kind = match k[9] {
        x if x == NameKind::Lot as u8 => NameKind::Lot,
        x if x == NameKind::Hold as u8 => NameKind::Hold,
        x if x == NameKind::Redemption as u8 => NameKind::Redemption,
        _ => return false,
    };
    let (Ok(id), Ok(no)) = (
        std::str::from_utf8(&k[10..]),
        <[u8; 4]>::try_from(v).map(u32::from_be_bytes),
    ) else {
        return false;
    };
    if kind.canonical_no(id) != Some(no) {
        return false;
    }
    match kind {
        NameKind::Lot => c.lots.get(&(w, no)).is_some_and(|l| l.id == id),
        NameKind::Hold => c.holds.get(&(w, no)).is_some_and(|h| h.id == id),
        NameKind::Redemption => c.redemptions.get(&(w, no)).is_some_and(|r| r.id == id),
    }
}

fn kind_name(kind: u8) -> &'static str {
    row::name(kind).unwrap_or("row")
}

type Stored = (u64, u64, i64, Event, Option<Delta>);

/// Event records checked in sequence order, stream after stream: the chain, and what replay needs.
#[derive(Default)]
struct EventPass {
    by_pos: BTreeMap<u64, Stored>,
    /// Stream, last seq, last checksum.
    current: Option<(u64, u64, [u8; 16])>,
    heads_seen: BTreeMap<u64, (u64, [u8; 16])>,
}

impl EventPass {
    fn check(&mut self, p: &mut Problems, stream: u64, seq: u64, v: &[u8]) {
        let what = format!("stream {stream} event {seq}");
        let (prev_seq, prev_sum) = match self.current {
            Some((s, q, c)) if s == stream => (q, c),
            _ => (0, [0u8; 16]),
        };
        if seq != prev_seq + 1 {
            p.push(format!(
                "{what}: sequence gap (previous record of the stream is {prev_seq}): a record was removed or moved"
            ));
        }
        match codec::decode_event(&what, v) {
            Err(e) => {
                p.push(e.0);
                self.current = Some((stream, seq, [0xff; 16]));
            }
            Ok((rec, payload)) => {
                let expect = chain(&prev_sum, stream, seq, rec.position, rec.at, payload);
                if expect != rec.checksum {
                    p.push(format!(
                        "{what} (position {}): checksum mismatch: the record or one before it was altered, removed or reordered",
                        rec.position
                    ));
                }
                self.current = Some((stream, seq, rec.checksum));
                self.heads_seen.insert(stream, (seq, rec.checksum));
                if self
                    .by_pos
                    .insert(rec.position, (stream, seq, rec.at, rec.event, rec.delta))
                    .is_some()
                {
                    p.push(format!("{what}: position {} is used twice", rec.position));
                }
            }
        }
    }
}

pub fn verify(t: &ReadTables) -> Result<Report, StorageError> {
    let mut p = Problems(Vec::new());
    let ledger = t.ledger()?;

    // 1. One pass over the wallet rows: events (chain checked on the way), headers, checkpoints,
    //    and the other rows, kept to compare with the replay.
    let mut events = EventPass::default();
    let mut scanned: Option<u64> = None;
    let mut headers: BTreeMap<u64, (HeaderPrefix, Vec<u8>)> = BTreeMap::new();
    let mut checkpoints: BTreeMap<(u64, u64), Checkpoint> = BTreeMap::new();
    let mut other: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
    for r in t.rows()?.iter()? {
        let (k, v) = r?;
        let (k, v) = (k.value(), v.value());
        if k.len() < 9 {
            p.push(format!("wallet rows: a key of {} bytes", k.len()));
            continue;
        }
        let stream = u64::from_be_bytes(k[..8].try_into().expect("sized"));
        match k[8] {
            row::EVENT => {
                // Events are stored newest first: the first of a stream's rows met here starts
                // one reversed scan of them all, in sequence order; the rest are skipped.
                if st::event_of(k).is_none() {
                    p.push(format!(
                        "stream {stream}: an event key of {} bytes",
                        k.len()
                    ));
                } else if scanned != Some(stream) {
                    scanned = Some(stream);
                    let (lo, hi) = st::event_bounds(stream, 0, u64::MAX);
                    for r in t.rows()?.range::<&[u8]>(&lo[..]..=&hi[..])?.rev() {
                        let (k, v) = r?;
                        // A key of another size is reported by the pass over every row.
                        if let Some((_, seq)) = st::event_of(k.value()) {
                            events.check(&mut p, stream, seq, v.value());
                        }
                    }
                }
            }
            row::HEADER => match st::header_from(v) {
                Ok((prefix, body)) => {
                    headers.insert(stream, (prefix, body.to_vec()));
                }
                Err(e) => p.push(format!("stream {stream} header: {}", e.0)),
            },
            row::CHECKPOINT => match codec::decode::<Checkpoint>("checkpoint", v) {
                Ok(c) => {
                    if checkpoints.insert((stream, c.seq), c).is_some() {
                        p.push(format!("checkpoints: wallet {stream} has two at one event"));
                    }
                }
                Err(e) => p.push(format!("wallet {stream}: {}", e.0)),
            },
            row::LOT
            | row::NAME
            | row::HOLD
            | row::REDEMPTION
            | row::SLICE
            | row::LIFECYCLE
            | row::CONS
            | row::DUE => {
                other.insert(k.to_vec(), v.to_vec());
            }
            kind => p.push(format!("wallet {stream}: a row of unknown kind {kind}")),
        }
    }
    let EventPass {
        by_pos, heads_seen, ..
    } = events;
    for (s, (prefix, _)) in &headers {
        match heads_seen.get(s) {
            Some(h) if *h == (prefix.seq, prefix.checksum) => {}
            Some(h) => p.push(format!(
                "stream {s}: chain head says sequence {} but the last record is {}: records were removed or altered",
                prefix.seq, h.0
            )),
            None => p.push(format!("stream {s}: chain head without records")),
        }
    }
    for s in heads_seen.keys() {
        if !headers.contains_key(s) {
            p.push(format!("stream {s}: records without a chain head"));
        }
    }

    // 2. Global log: gapless positions pointing at the right records.
    let mut expect_pos = 1u64;
    for r in t.log()?.iter()? {
        let (k, v) = r?;
        let pos = k.value();
        if pos != expect_pos {
            p.push(format!(
                "global log: position {pos} follows {}",
                expect_pos - 1
            ));
        }
        expect_pos = pos + 1;
        let v = v.value();
        let target = (v.len() == 16).then(|| {
            (
                u64::from_be_bytes(v[..8].try_into().expect("sized")),
                u64::from_be_bytes(v[8..].try_into().expect("sized")),
            )
        });
        match (target, by_pos.get(&pos)) {
            (Some((s, q)), Some((s2, q2, _, _, _))) if (s, q) == (*s2, *q2) => {}
            (t, _) => p.push(format!(
                "global log: position {pos} points at {t:?}, which does not carry that position"
            )),
        }
    }
    if expect_pos - 1 != ledger.position || by_pos.len() as u64 != ledger.position {
        p.push(format!(
            "global log: the ledger says {} events, the log has {} positions and {} records",
            ledger.position,
            expect_pos - 1,
            by_pos.len()
        ));
    }

    // 3. Replay in global order through the same `apply`.
    let empty = Empty;
    let mut tx = Tx::without_undo(&empty)?;
    let mut events = 0u64;
    let mut checkpoints_seen = 0usize;
    for (pos, (stream, seq, at, ev, stored_delta)) in &by_pos {
        let what = format!(
            "position {pos} (stream {stream} event {seq}, {})",
            ev.name()
        );
        if *stream != LEDGER_STREAM && !matches!(ev, Event::WalletOpened { .. }) {
            match next_due(&tx, *stream, *at) {
                Ok(Some((due_at, due_ev))) => {
                    if !is_time_driven(ev) || due_at != *at || &due_ev != ev {
                        p.push(format!(
                            "{what}: a transition due at {} ({}) was not recorded before it",
                            crate::model::Instant(due_at),
                            due_ev.name()
                        ));
                    }
                }
                Ok(None) if is_time_driven(ev) => {
                    p.push(format!("{what}: recorded as due, but nothing was due then"));
                }
                Ok(None) => {}
                Err(e) => p.push(format!("{what}: {}", e.0)),
            }
        }
        let delta = match apply(&mut tx, *stream, *at, ev) {
            Ok(d) => d,
            Err(e) => {
                p.push(format!("{what}: {}", e.0));
                // State past a failed apply is meaningless; stop comparing.
                return Ok(Report {
                    events,
                    wallets: ledger.wallets,
                    problems: p.0,
                });
            }
        };
        if delta != *stored_delta {
            p.push(format!(
                "{what}: stored figure delta {stored_delta:?}, replay gives {delta:?}"
            ));
        }
        if let Some(c) = checkpoints.get(&(*stream, *seq)) {
            checkpoints_seen += 1;
            let ws = tx.wallet_req(*stream)?;
            if *c != Checkpoint::of(&ws) {
                p.push(format!(
                    "checkpoint of wallet {stream} at event {seq} differs from replay"
                ));
            }
        }
        tx.set_position(*pos)?;
        events += 1;
    }
    if checkpoints_seen != checkpoints.len() {
        p.push(format!(
            "checkpoints: {} stored, {checkpoints_seen} at events the log has",
            checkpoints.len()
        ));
    }
    let replayed_ledger = tx.ledger()?;
    let c = tx.into_changes()?;

    // 4. Materialized = replay, row by row.
    if replayed_ledger != ledger {
        p.push(format!(
            "ledger counters: stored {ledger:?}, replay {replayed_ledger:?}"
        ));
    }
    // Wallet headers (and their earliest due instant).
    let wallet_headers = headers.iter().filter(|(w, _)| **w != LEDGER_STREAM).count();
    compare_count(
        &mut p,
        "wallet headers",
        wallet_headers as u64,
        c.wallets.len(),
    );
    for (w, ws) in &c.wallets {
        match headers.get(w) {
            None => p.push(format!("wallet {w}: no header row")),
            Some((prefix, body)) => {
                if *body != codec::encode(ws) {
                    let shown = codec::decode::<WalletState>("wallet", body)
                        .map(|s| format!("{s:?}"))
                        .unwrap_or_else(|e| e.0);
                    p.push(format!("wallet {w}: stored {shown}, replay {ws:?}"));
                }
                // The sweep entry may be early (a lower bound), never late or missing.
                let late = match (prefix.next_due, ws.next_due) {
                    (_, None) => false,
                    (None, Some(_)) => true,
                    (Some(s), Some(n)) => s > n,
                };
                if late {
                    p.push(format!(
                        "wallet {w}: header says next due {:?}, replay {:?}",
                        prefix.next_due, ws.next_due
                    ));
                }
            }
        }
    }
    // Every other wallet row, rebuilt from the replay with the same key layout.
    let mut expected: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
    for ((w, no), l) in &c.lots {
        expected.insert(st::lot_key(*w, *no).to_vec(), codec::encode(l));
    }
    for ((w, kind, id), no) in &c.names {
        expected.insert(st::name_key(*w, *kind, id), no.to_be_bytes().to_vec());
    }
    for ((w, no), h) in &c.holds {
        expected.insert(st::hold_key(*w, *no).to_vec(), codec::encode(h));
    }
    for ((w, no), r) in &c.redemptions {
        expected.insert(st::redemption_key(*w, *no).to_vec(), codec::encode(r));
    }
    for ((w, o, i), s) in &c.slices {
        expected.insert(
            st::slice_key(*w, *o, *i).to_vec(),
            st::slice_val(s).to_vec(),
        );
    }
    for (w, idx, rec) in &c.lifecycle {
        expected.insert(st::lifecycle_key(*w, *idx).to_vec(), codec::encode(rec));
    }
    for k in &c.cons_add {
        expected.insert(st::cons_key(k), Vec::new());
    }
    for k in &c.due_add {
        expected.insert(st::due_key(k), Vec::new());
    }
    let describe = |k: &[u8]| {
        format!(
            "wallet {} {} row {:02x?}",
            u64::from_be_bytes(k[..8].try_into().expect("sized")),
            kind_name(k[8]),
            &k[9..]
        )
    };
    for (k, v) in &other {
        match expected.get(k) {
            None if redundant_name_row(k, v, &c) => {}
            None => p.push(format!(
                "{}: stored, but the replay has no such row",
                describe(k)
            )),
            Some(e) if e != v => p.push(format!("{}: differs from the replay", describe(k))),
            Some(_) => {}
        }
    }
    for k in expected.keys() {
        if !other.contains_key(k) {
            p.push(format!("{}: missing", describe(k)));
        }
    }
    // The sweep index: one entry per wallet whose header records one, at that instant (checked
    // above to be no later than the wallet's earliest due instant).
    let mut due_wallets = 0u64;
    for (w, (prefix, _)) in &headers {
        if let Some(at) = prefix.next_due {
            due_wallets += 1;
            if t.next_due()?.get(&st::next_due_key(at, *w)[..])?.is_none() {
                p.push(format!(
                    "sweep index: wallet {w} should be due at {}",
                    crate::model::Instant(at)
                ));
            }
        }
    }
    compare_count(
        &mut p,
        "sweep index",
        t.next_due()?.len()?,
        due_wallets as usize,
    );
    // Global tables.
    compare_map(
        &mut p,
        "programs",
        t.programs()?
            .iter()?
            .map(|r| r.map(|(k, v)| (k.value(), v.value().to_vec()))),
        &c.programs,
        codec::encode,
    )?;
    compare_map(
        &mut p,
        "holders",
        t.holders()?
            .iter()?
            .map(|r| r.map(|(k, v)| (k.value().to_be_bytes(), v.value().to_vec()))),
        &c.holders,
        codec::encode,
    )?;
    compare_count(
        &mut p,
        "holder identities",
        t.holder_identity()?.len()?,
        c.identities.len(),
    );
    for (k, v) in &c.identities {
        if t.holder_by_identity(k)? != Some(*v) {
            p.push(format!("holder identities: {k:?} differs from replay"));
        }
    }
    compare_count(
        &mut p,
        "holder emails",
        t.holder_email()?.len()?,
        c.emails.len(),
    );
    for (k, v) in &c.emails {
        if t.holder_by_email(k)? != Some(*v) {
            p.push(format!("holder emails: {k:?} differs from replay"));
        }
    }
    compare_count(
        &mut p,
        "wallet uuids",
        t.wallet_uuid()?.len()?,
        c.wallet_uuids.len(),
    );
    for (k, v) in &c.wallet_uuids {
        if t.wallet_by_uuid(*k)? != Some(*v) {
            p.push(format!(
                "wallet uuids: {} differs from replay",
                crate::model::uuid_of(*k)
            ));
        }
    }
    compare_count(
        &mut p,
        "external ids",
        t.wallet_external()?.len()?,
        c.externals.len(),
    );
    for (k, v) in &c.externals {
        if t.wallet_by_external(k)? != Some(*v) {
            p.push(format!("external ids: {k:?} differs from replay"));
        }
    }
    compare_count(&mut p, "cards", t.cards()?.len()?, c.cards.len());
    for (k, v) in &c.cards {
        if t.wallet_by_card(k)? != Some(*v) {
            p.push(format!("cards: {k:?} differs from replay"));
        }
    }
    compare_count(
        &mut p,
        "holder wallets",
        t.holder_wallets()?.len()?,
        c.holder_wallets.len(),
    );
    for (h, w) in &c.holder_wallets {
        let mut k = [0u8; 24];
        k[..16].copy_from_slice(h);
        k[16..].copy_from_slice(&w.to_be_bytes());
        if t.holder_wallets()?.get(&k[..])?.is_none() {
            p.push(format!("holder wallets: wallet {w} missing"));
        }
    }
    Ok(Report {
        events,
        wallets: ledger.wallets,
        problems: p.0,
    })
}

fn compare_count(p: &mut Problems, what: &str, stored: u64, replay: usize) {
    if stored != replay as u64 {
        p.push(format!("{what}: {stored} stored rows, replay has {replay}"));
    }
}

/// Compares stored rows (key, encoded value) with the replay's map, both ways.
fn compare_map<K, V, S: std::hash::BuildHasher>(
    p: &mut Problems,
    what: &str,
    stored: impl Iterator<Item = Result<(K, Vec<u8>), redb::StorageError>>,
    replay: &std::collections::HashMap<K, V, S>,
    enc: impl Fn(&V) -> Vec<u8>,
) -> Result<(), StorageError>
where
    K: std::hash::Hash + Eq + std::fmt::Debug,
    V: bincode::Decode<()> + std::fmt::Debug,
{
    let mut n = 0usize;
    for r in stored {
        let (k, bytes) = r?;
        n += 1;
        match replay.get(&k) {
            None => p.push(format!(
                "{what}: {k:?} is stored but the replay has no such record"
            )),
            Some(v) if enc(v) != bytes => {
                let shown = codec::decode::<V>(what, &bytes)
                    .map(|s| format!("{s:?}"))
                    .unwrap_or_else(|e| e.0);
                p.push(format!("{what}: {k:?}: stored {shown}, replay {v:?}"));
            }
            Some(_) => {}
        }
    }
    if n != replay.len() {
        p.push(format!(
            "{what}: {n} stored records, replay has {}",
            replay.len()
        ));
    }
    Ok(())
}
