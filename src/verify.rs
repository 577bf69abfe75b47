//! `verify`: replays the whole log and checks it against itself and the materialized state.
//!
//! It checks, and reports each failure by record:
//! - the global log: positions gapless from 1, each pointing at the event record that carries it;
//! - every stream: sequences gapless from 1, each record's checksum chained to the previous one,
//!   the stored chain head equal to the last record's;
//! - §4.2: every time-driven transition recorded exactly when due and in due order, none missed
//!   before a later event (replay asks [`next_due`] before every event);
//! - §5: every invariant after every event (asserted by `apply`);
//! - materialized = replay: every table equal, row for row, to what the replay rebuilt.

use crate::domain::apply::{apply, next_due};
use crate::domain::event::Event;
use crate::domain::state::*;
use crate::error::StorageError;
use crate::storage::codec::{self, chain, decode};
use crate::storage::{Checkpoint, ReadTables};
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

pub fn verify(t: &ReadTables) -> Result<Report, StorageError> {
    let mut p = Problems(Vec::new());
    let ledger = t.ledger()?;

    // 1. Streams: sequence, chain, head. Collect (position → (stream, seq, at, event)).
    type Stored = (u64, u64, i64, Event, Option<Delta>);
    let mut by_pos: BTreeMap<u64, Stored> = BTreeMap::new();
    let mut current: Option<(u64, u64, [u8; 16])> = None; // stream, last seq, last checksum
    let mut heads_seen: BTreeMap<u64, (u64, [u8; 16])> = BTreeMap::new();
    for r in t.events()?.iter()? {
        let (k, v) = r?;
        let k = k.value();
        if k.len() != 16 {
            p.push(format!("event key of {} bytes", k.len()));
            continue;
        }
        let stream = u64::from_be_bytes(k[..8].try_into().expect("sized"));
        let seq = u64::from_be_bytes(k[8..].try_into().expect("sized"));
        let what = format!("stream {stream} event {seq}");
        let (prev_seq, prev_sum) = match current {
            Some((s, q, c)) if s == stream => (q, c),
            _ => (0, [0u8; 16]),
        };
        if seq != prev_seq + 1 {
            p.push(format!(
                "{what}: sequence gap (previous record of the stream is {prev_seq}): a record was removed or moved"
            ));
        }
        match codec::decode_event(&what, v.value()) {
            Err(e) => {
                p.push(e.0);
                current = Some((stream, seq, [0xff; 16]));
            }
            Ok((rec, payload)) => {
                let expect = chain(&prev_sum, stream, seq, rec.position, rec.at, payload);
                if expect != rec.checksum {
                    p.push(format!(
                        "{what} (position {}): checksum mismatch: the record or one before it was altered, removed or reordered",
                        rec.position
                    ));
                }
                current = Some((stream, seq, rec.checksum));
                heads_seen.insert(stream, (seq, rec.checksum));
                if by_pos
                    .insert(rec.position, (stream, seq, rec.at, rec.event, rec.delta))
                    .is_some()
                {
                    p.push(format!("{what}: position {} is used twice", rec.position));
                }
            }
        }
    }
    for r in t.heads()?.iter()? {
        let (k, v) = r?;
        let stream = k.value();
        let head = crate::storage::head_from(v.value())?;
        match heads_seen.get(&stream) {
            Some(h) if *h == head => {}
            Some(h) => p.push(format!(
                "stream {stream}: chain head says sequence {} but the last record is {}: records were removed or altered",
                head.0, h.0
            )),
            None => p.push(format!("stream {stream}: chain head without records")),
        }
    }
    for s in heads_seen.keys() {
        if t.heads()?.get(*s)?.is_none() {
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
    // Checkpoints, compared with the replayed state when replay reaches their event.
    let mut checkpoints: BTreeMap<(u64, u64), Checkpoint> = BTreeMap::new();
    for r in t.checkpoints()?.iter()? {
        let (k, v) = r?;
        let k = k.value();
        let w = k
            .get(..8)
            .and_then(|b| b.try_into().ok())
            .map(u64::from_be_bytes);
        match (w, codec::decode::<Checkpoint>("checkpoint", v.value())) {
            (Some(w), Ok(c)) => {
                if checkpoints.insert((w, c.seq), c).is_some() {
                    p.push(format!("checkpoints: wallet {w} has two at one event"));
                }
            }
            (_, Err(e)) => p.push(e.0),
            (None, _) => p.push("checkpoints: a key of the wrong size".into()),
        }
    }
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

    // 4. Materialized = replay, table by table.
    if replayed_ledger != ledger {
        p.push(format!(
            "ledger counters: stored {ledger:?}, replay {replayed_ledger:?}"
        ));
    }
    compare_u64(&mut p, "programs", t.programs()?, &c.programs)?;
    compare_map(
        &mut p,
        "holders",
        t.holders()?
            .iter()?
            .map(|r| r.map(|(k, v)| (k.value().to_be_bytes(), v.value().to_vec()))),
        &c.holders,
        codec::encode,
    )?;
    compare_map(
        &mut p,
        "wallets",
        t.wallets()?
            .iter()?
            .map(|r| r.map(|(k, v)| (k.value(), v.value().to_vec()))),
        &c.wallets,
        codec::encode,
    )?;
    compare_map(
        &mut p,
        "lots",
        t.lots()?
            .iter()?
            .map(|r| r.map(|(k, v)| (split_w32(k.value()), v.value().to_vec()))),
        &c.lots,
        codec::encode,
    )?;
    compare_map(
        &mut p,
        "holds",
        t.holds()?
            .iter()?
            .map(|r| r.map(|(k, v)| (split_w32(k.value()), v.value().to_vec()))),
        &c.holds,
        codec::encode,
    )?;
    compare_map(
        &mut p,
        "redemptions",
        t.redemptions()?
            .iter()?
            .map(|r| r.map(|(k, v)| (split_w32(k.value()), v.value().to_vec()))),
        &c.redemptions,
        codec::encode,
    )?;
    compare_count(&mut p, "slices", t.slices()?.len()?, c.slices.len());
    for ((w, o, i), s) in &c.slices {
        let stored = t.slice(*w, *o, *i)?;
        if stored != Some(*s) {
            p.push(format!(
                "slices: wallet {w} {o:?} #{i}: stored {stored:?}, replay {s:?}"
            ));
        }
    }
    compare_count(&mut p, "names", t.names()?.len()?, c.names.len());
    for ((w, kind, id), no) in &c.names {
        let stored = t.name(*w, *kind, id)?;
        if stored != Some(*no) {
            p.push(format!(
                "names: wallet {w} {kind:?} {id:?}: stored {stored:?}, replay {no}"
            ));
        }
    }
    compare_count(
        &mut p,
        "lifecycle",
        t.lifecycle()?.len()?,
        c.lifecycle.len(),
    );
    for (w, idx, rec) in &c.lifecycle {
        let stored = t
            .lifecycle()?
            .get(&codec::k_w32(*w, *idx)[..])?
            .map(|v| v.value().to_vec());
        if stored.as_deref() != Some(&codec::encode(rec)[..]) {
            p.push(format!("lifecycle: wallet {w} #{idx} differs from replay"));
        }
    }
    compare_count(
        &mut p,
        "consumable index",
        t.cons()?.len()?,
        c.cons_add.len(),
    );
    for k in &c.cons_add {
        if t.cons()?.get(&crate::storage::cons_key(k)[..])?.is_none() {
            p.push(format!("consumable index: missing {k:?}"));
        }
    }
    compare_count(&mut p, "due index", t.due()?.len()?, c.due_add.len());
    for k in &c.due_add {
        if t.due()?.get(&crate::storage::due_key(k)[..])?.is_none() {
            p.push(format!("due index: missing {k:?}"));
        }
    }
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
    // The sweep index: each wallet's earliest due instant.
    let mut first_due: BTreeMap<u64, i64> = BTreeMap::new();
    for k in &c.due_add {
        first_due.entry(k.wallet).or_insert(k.at);
    }
    compare_count(
        &mut p,
        "sweep index (wallet_due)",
        t.wallet_due()?.len()?,
        first_due.len(),
    );
    compare_count(
        &mut p,
        "sweep index (next_due)",
        t.next_due()?.len()?,
        first_due.len(),
    );
    for (w, at) in &first_due {
        let stored = t
            .wallet_due()?
            .get(*w)?
            .map(|v| codec::i64_from_key(v.value()))
            .transpose();
        let stored = match stored {
            Ok(s) => s,
            Err(e) => {
                p.push(format!("sweep index: wallet {w}: {}", e.0));
                continue;
            }
        };
        let mut k = [0u8; 16];
        k[..8].copy_from_slice(&codec::i64_key(*at));
        k[8..].copy_from_slice(&w.to_be_bytes());
        if stored != Some(*at) || t.next_due()?.get(&k[..])?.is_none() {
            p.push(format!(
                "sweep index: wallet {w} should be due at {}, stored {stored:?}",
                crate::model::Instant(*at)
            ));
        }
    }
    Ok(Report {
        events,
        wallets: ledger.wallets,
        problems: p.0,
    })
}

fn split_w32(k: &[u8]) -> (u64, u32) {
    if k.len() != 12 {
        return (u64::MAX, u32::MAX);
    }
    (
        u64::from_be_bytes(k[..8].try_into().expect("sized")),
        u32::from_be_bytes(k[8..].try_into().expect("sized")),
    )
}

fn compare_count(p: &mut Problems, what: &str, stored: u64, replay: usize) {
    if stored != replay as u64 {
        p.push(format!("{what}: {stored} stored rows, replay has {replay}"));
    }
}

fn compare_u64(
    p: &mut Problems,
    what: &str,
    table: &redb::ReadOnlyTable<u64, &'static [u8]>,
    replay: &std::collections::HashMap<u64, crate::model::Program>,
) -> Result<(), StorageError> {
    compare_map(
        p,
        what,
        table
            .iter()?
            .map(|r| r.map(|(k, v)| (k.value(), v.value().to_vec()))),
        replay,
        codec::encode,
    )
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
                let shown = decode::<V>(what, &bytes)
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
