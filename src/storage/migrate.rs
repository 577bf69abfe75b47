//! File format migrations, run by `Ledger::open` on a file of an older format, one step at a
//! time (1 → 2 → 3), each in one durable write transaction.
//!
//! Format 1 → 2 changes only the keys of `wallet_rows` (the row kinds' order, and three kinds
//! stored descending; see [`super::row`]): every record is byte for byte the same. [`v1_to_v2`]
//! streams the table from a read transaction into the same table, deleted and recreated in one
//! write transaction, like [`super::pack`]: a wallet's rows are read kind by kind in the new
//! order (a descending kind's range reversed), so the new keys arrive in ascending order and go
//! in through a cursor at the table's end, packed. Memory stays bounded whatever the file's size.
//!
//! Nothing here commits: the caller stamps the new format and commits (durably), or drops the
//! write transaction, and then the file is the format 1 file it was.

use super::v2::{ROWS, row};
use crate::error::StorageError;
use redb::{ReadTransaction, ReadableTableMetadata, WriteTransaction};
use std::ops::Bound;

/// The format 1 kind of each format 2 kind, in format 2 order.
const V1_OF: [(u8, u8); 11] = [
    (row::NAME, row::v1::NAME),
    (row::HOLD, row::v1::HOLD),
    (row::LIFECYCLE, row::v1::LIFECYCLE),
    (row::CHECKPOINT, row::v1::CHECKPOINT),
    (row::SLICE, row::v1::SLICE),
    (row::REDEMPTION, row::v1::REDEMPTION),
    (row::LOT, row::v1::LOT),
    (row::HEADER, row::v1::HEADER),
    (row::CONS, row::v1::CONS),
    (row::DUE, row::v1::DUE),
    (row::EVENT, row::v1::EVENT),
];

/// Rewrites `wallet_rows` as `old` (a snapshot of the state `new` began from) holds it, in format
/// 1, into format 2 in `new`. Returns the number of rows. A key this cannot place (a short key,
/// an unknown kind, a descending kind's key of the wrong size) fails it, as does any difference
/// in the entry count: nothing is dropped silently.
pub fn v1_to_v2(old: &ReadTransaction, new: &WriteTransaction) -> Result<u64, StorageError> {
    let failed = |step: &str, e: &dyn std::fmt::Display| {
        StorageError(format!("migrating wallet_rows to format 2: {step}: {e}"))
    };
    let src = match old.open_table(ROWS) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(0),
        Err(e) => return Err(failed("opening it to read", &e)),
    };
    let expected = src.len().map_err(|e| failed("counting rows", &e))?;
    new.delete_table(ROWS)
        .map_err(|e| failed("deleting it", &e))?;
    let mut dst = new
        .open_table(ROWS)
        .map_err(|e| failed("creating it again", &e))?;
    let mut copied = 0u64;
    {
        let mut at = dst
            .upper_bound_mut(Bound::<&[u8]>::Unbounded)
            .map_err(|e| failed("opening a cursor", &e))?;
        let mut last: Vec<u8> = Vec::new();
        let mut key = Vec::with_capacity(64);
        // The wallets, ascending: the first key, then the first key past each wallet's rows.
        let mut next = first_wallet(&src, None).map_err(|e| failed("reading", &e))?;
        while let Some(w) = next {
            for (kind, v1) in V1_OF {
                let lo = [&w.to_be_bytes()[..], &[v1]].concat();
                let hi = [&w.to_be_bytes()[..], &[v1 + 1]].concat();
                let range = src
                    .range::<&[u8]>(&lo[..]..&hi[..])
                    .map_err(|e| failed("reading", &e))?;
                let mut put = |r: Result<_, redb::StorageError>| -> Result<(), StorageError> {
                    let (k, v): (redb::AccessGuard<&[u8]>, redb::AccessGuard<&[u8]>) =
                        r.map_err(|e| failed("reading", &e))?;
                    let k = k.value();
                    key.clear();
                    key.extend_from_slice(&k[..8]);
                    key.push(kind);
                    if let Some(len) = super::v2::descending_suffix_len(kind) {
                        if k.len() - 9 != len {
                            return Err(StorageError(format!(
                                "migrating wallet_rows to format 2: wallet {w}: a key of kind {v1} of {} bytes",
                                k.len()
                            )));
                        }
                        key.extend(k[9..].iter().map(|b| !b));
                    } else {
                        key.extend_from_slice(&k[9..]);
                    }
                    if !last.is_empty() && key <= last {
                        return Err(StorageError(format!(
                            "migrating wallet_rows to format 2: wallet {w}: keys out of order at {:02x?}",
                            k
                        )));
                    }
                    at.insert_before(&key[..], v.value())
                        .map_err(|e| failed("writing", &e))?;
                    last.clear();
                    last.extend_from_slice(&key);
                    copied += 1;
                    Ok(())
                };
                if row::descending(kind) {
                    for r in range.rev() {
                        put(r)?;
                    }
                } else {
                    for r in range {
                        put(r)?;
                    }
                }
            }
            next = match w.checked_add(1) {
                Some(n) => first_wallet(&src, Some(n)).map_err(|e| failed("reading", &e))?,
                None => None,
            };
        }
        // Applies the last buffered run; only `close` reports a deferred error.
        at.close().map_err(|e| failed("writing", &e))?;
    }
    let written = dst.len().map_err(|e| failed("counting rows", &e))?;
    if copied != expected || written != expected {
        return Err(StorageError(format!(
            "migrating wallet_rows to format 2: {expected} rows to copy, {copied} placed, {written} written (a row of an unknown kind or a short key?)"
        )));
    }
    Ok(written)
}

/// The wallet number of the first key at or after wallet `from` (the first key when `None`).
fn first_wallet(
    t: &redb::ReadOnlyTable<&'static [u8], &'static [u8]>,
    from: Option<u64>,
) -> Result<Option<u64>, redb::StorageError> {
    let lo = from.map(u64::to_be_bytes);
    let mut it = match &lo {
        Some(b) => t.range::<&[u8]>(&b[..]..)?,
        None => t.range::<&[u8]>(..)?,
    };
    // A key shorter than a wallet number cannot be placed; `v1_to_v2`'s count reports it.
    for r in it.by_ref() {
        let (k, _) = r?;
        if let Some(b) = k.value().get(..8) {
            return Ok(Some(u64::from_be_bytes(b.try_into().expect("sized"))));
        }
    }
    Ok(None)
}

/// Format 2 → 3: the log becomes the one durable record.
///
/// Every event of the format 2 file (its record in `wallet_rows`, found through the old `log`
/// table's position → (stream, sequence) map) is written again, in position order, as a format
/// 3 log record chained to the one before it over the whole ledger; every idempotency record
/// becomes a command record placed after the last event of its command (after the log's end
/// for a command that appended nothing). Each old event record's per-stream chain is checked on
/// the way: a damaged file is not migrated. Then every projection table is deleted: `open`
/// rebuilds them by replaying the new log, exactly as after a crash, flushing as its memory
/// budget fills.
///
/// Memory: events are streamed; the idempotency keys are sorted by position in memory
/// (about 40 bytes each). Space: the new log is written beside the old tables, freed at commit.
/// Nothing here commits; the caller stamps format 3 and commits.
pub fn v2_to_v3(
    old: &ReadTransaction,
    new: &WriteTransaction,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<u64, StorageError> {
    use super::codec::{chain as v1_chain, decode_event};
    use super::log::{CommandRecord, LogKey, encode_command, encode_event};
    use super::v2;
    use redb::ReadableTable;
    let failed = |step: &str, e: &dyn std::fmt::Display| {
        StorageError(format!("migrating to format 3: {step}: {e}"))
    };
    let rows = match old.open_table(v2::ROWS) {
        Ok(t) => Some(t),
        Err(redb::TableError::TableDoesNotExist(_)) => None,
        Err(e) => return Err(failed("opening wallet_rows", &e)),
    };
    let idem = match old.open_table(v2::IDEM) {
        Ok(t) => Some(t),
        Err(redb::TableError::TableDoesNotExist(_)) => None,
        Err(e) => return Err(failed("opening the idempotency table", &e)),
    };
    let positions = match old.open_table(v2::LOG) {
        Ok(t) => Some(t),
        Err(redb::TableError::TableDoesNotExist(_)) => None,
        Err(e) => return Err(failed("opening the format 2 log", &e)),
    };
    // Idempotency records by the position of their command's last event.
    let mut keyed: Vec<(u64, String)> = Vec::new();
    if let Some(t) = &idem {
        for r in t
            .iter()
            .map_err(|e| failed("reading idempotency keys", &e))?
        {
            let (k, v) = r.map_err(|e| failed("reading idempotency keys", &e))?;
            let (_, _, receipt) = super::l2::decode_idem(k.value(), v.value())?;
            keyed.push((
                receipt.last_position.unwrap_or(u64::MAX),
                k.value().to_string(),
            ));
        }
    }
    keyed.sort();

    // Delete every format 2 table (the log too: its key type changes), then write the new log.
    for name in [
        "wallet_rows",
        "log",
        "idempotency",
        "next_due",
        "wallet_uuid",
        "programs",
        "holders",
        "holder_identity",
        "holder_email",
        "holder_wallets",
        "wallet_external",
        "cards",
    ] {
        let def: redb::TableDefinition<&[u8], &[u8]> = redb::TableDefinition::new(name);
        // The key types differ per table; deletion by name does not look at them.
        match new.delete_table(def) {
            Ok(_) => {}
            Err(e) => return Err(failed(&format!("deleting {name}"), &e)),
        }
    }
    super::create_tables(new)?;
    // Format 2 kept (wallets, pockets) under "counters"; format 3 keeps the whole ledger state
    // there as of the flush, which the replay writes.
    new.open_table(super::META)
        .map_err(|e| failed("opening meta", &e))?
        .remove(super::META_COUNTERS)
        .map_err(|e| failed("clearing the old counters", &e))?;
    let mut log = new
        .open_table(super::LOG)
        .map_err(|e| failed("creating the log", &e))?;
    let mut written = 0u64;
    {
        let mut at = log
            .upper_bound_mut(Bound::<(u64, u32)>::Unbounded)
            .map_err(|e| failed("opening a cursor", &e))?;
        let mut head = [0u8; 16];
        let mut last = LogKey::ZERO;
        // Per-stream chain heads of the old records, to check them as they are read.
        let mut old_heads: std::collections::HashMap<u64, (u64, [u8; 16])> = Default::default();
        let mut keys = keyed.into_iter().peekable();
        let mut put_commands = |upto: u64,
                                last: &mut LogKey,
                                head: &mut [u8; 16],
                                at: &mut redb::CursorMut<(u64, u32), &[u8]>|
         -> Result<u64, StorageError> {
            let mut n = 0;
            while let Some((_, key)) = keys.next_if(|(p, _)| *p <= upto) {
                let t = idem.as_ref().expect("keys come from the table");
                let v = t
                    .get(key.as_str())
                    .map_err(|e| failed("reading idempotency keys", &e))?
                    .ok_or_else(|| failed("reading idempotency keys", &"a key vanished"))?;
                let (hash, instants, receipt) = super::l2::decode_idem(&key, v.value())?;
                let k = LogKey {
                    position: last.position,
                    sub: last.sub + 1,
                };
                let rec = CommandRecord {
                    key: key.clone(),
                    hash,
                    instants,
                    receipt: super::log::StoredReceipt::from(&receipt),
                };
                let (bytes, sum) = encode_command(head, k, 0, &rec);
                at.insert_before(k.tuple(), &bytes[..])
                    .map_err(|e| failed("writing the log", &e))?;
                *head = sum;
                *last = k;
                n += 1;
            }
            Ok(n)
        };
        if let (Some(positions), Some(rows)) = (&positions, &rows) {
            let total = positions
                .len()
                .map_err(|e| failed("counting the format 2 log", &e))?;
            progress(0, total);
            for (expect, r) in (1u64..).zip(
                positions
                    .iter()
                    .map_err(|e| failed("reading the format 2 log", &e))?,
            ) {
                let (k, v) = r.map_err(|e| failed("reading the format 2 log", &e))?;
                let pos = k.value();
                if pos != expect {
                    return Err(failed(
                        "reading the format 2 log",
                        &format!("position {pos} follows {}", expect - 1),
                    ));
                }
                let v = v.value();
                if v.len() != 16 {
                    return Err(failed(
                        "reading the format 2 log",
                        &format!("position {pos}: an entry of {} bytes", v.len()),
                    ));
                }
                let stream = u64::from_be_bytes(v[..8].try_into().expect("sized"));
                let seq = u64::from_be_bytes(v[8..].try_into().expect("sized"));
                let ev = rows
                    .get(&v2::event_key(stream, seq)[..])
                    .map_err(|e| failed("reading an event", &e))?
                    .ok_or_else(|| {
                        failed(
                            "reading an event",
                            &format!(
                                "position {pos} names stream {stream} event {seq}, which is missing"
                            ),
                        )
                    })?;
                let what = format!("stream {stream} event {seq}");
                let (rec, payload) = decode_event(&what, ev.value())?;
                let (prev_seq, prev_sum) = old_heads.get(&stream).copied().unwrap_or((0, [0; 16]));
                if seq != prev_seq + 1
                    || rec.position != pos
                    || v1_chain(&prev_sum, stream, seq, pos, rec.at, payload) != rec.checksum
                {
                    return Err(failed(
                        "checking the format 2 log",
                        &format!(
                            "{what} at position {pos} does not chain: the file is damaged (run `walletctl verify` with the previous version)"
                        ),
                    ));
                }
                old_heads.insert(stream, (seq, rec.checksum));
                let key = LogKey::event(pos);
                let (bytes, sum) =
                    encode_event(&head, key, rec.at, stream, seq, &rec.delta, &rec.event);
                at.insert_before(key.tuple(), &bytes[..])
                    .map_err(|e| failed("writing the log", &e))?;
                head = sum;
                last = key;
                written += 1;
                written += put_commands(pos, &mut last, &mut head, &mut at)?;
                if pos.is_multiple_of(4096) || pos == total {
                    progress(pos, total);
                }
            }
        }
        written += put_commands(u64::MAX, &mut last, &mut head, &mut at)?;
        at.close().map_err(|e| failed("writing the log", &e))?;
    }
    Ok(written)
}
