//! File format migrations, run by `Ledger::open` on a file of an older format.
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

use super::{ROWS, row};
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
                    if let Some(len) = super::descending_suffix_len(kind) {
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
