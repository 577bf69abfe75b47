//! Rebuilding compaction: every table rewritten with full leaves, like SQLite's `VACUUM`.
//!
//! redb splits a full leaf at its midpoint, so a table written in random key order (the rows of
//! many wallets, interleaved) ends up with leaves about half full, and `Database::compact` only
//! moves pages towards the front of the file: it never repacks a leaf. [`rebuild`] streams each
//! table from a read transaction into the same table, deleted and recreated in one write
//! transaction, through a cursor that inserts in ascending key order; redb buffers those inserts
//! (about 1 MiB at a time) and packs them into full leaves. Memory stays bounded whatever the
//! file's size: no table is ever collected.
//!
//! Nothing here commits: the caller commits the write transaction (all tables at once) or drops
//! it, and then nothing changed.

use super::{TableVisitor, for_each_table};
use crate::error::StorageError;
use redb::{
    MultimapTableHandle, ReadTransaction, ReadableTable, ReadableTableMetadata, TableDefinition,
    TableError, TableHandle, WriteTransaction,
};
use std::ops::Bound;

/// What [`rebuild`] rewrote.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Rebuilt {
    /// Tables rewritten (every table of the file).
    pub tables: usize,
    /// Entries rewritten, over all tables.
    pub entries: u64,
}

/// Rewrites every table `old` holds into `new`, packed: each table is deleted in `new`, created
/// again and filled, in key order, with the entries `old` reads. `old` must be a snapshot of the
/// state `new` began from (begun before it, with no commit in between), or entries committed in
/// between are lost. A table of the file that [`for_each_table`] does not list is an error (it
/// could not be rebuilt), as is any entry count that differs after the copy.
pub fn rebuild(
    old: &ReadTransaction,
    new: &WriteTransaction,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Rebuilt, StorageError> {
    let mut count = Count { old, total: 0 };
    for_each_table(&mut count)?;
    progress(0, count.total);
    let mut copy = Copy {
        old,
        new,
        done: Rebuilt::default(),
        names: Vec::new(),
        total: count.total,
        progress,
    };
    for_each_table(&mut copy)?;
    let done = copy.done.entries;
    (copy.progress)(done, done.max(count.total));
    let listed = |what: &str, e: redb::StorageError| {
        StorageError(format!(
            "compaction: cannot list the {what} of the file: {e}"
        ))
    };
    for t in old.list_tables().map_err(|e| listed("tables", e))? {
        if !copy.names.iter().any(|n| *n == t.name()) {
            return Err(StorageError(format!(
                "compaction: the file holds a table this build does not know: {:?}",
                t.name()
            )));
        }
    }
    if let Some(t) = old
        .list_multimap_tables()
        .map_err(|e| listed("multimap tables", e))?
        .next()
    {
        return Err(StorageError(format!(
            "compaction: the file holds a multimap table this build does not know: {:?}",
            t.name()
        )));
    }
    Ok(copy.done)
}

/// Counts the entries [`Copy`] will copy, for progress reports.
struct Count<'a> {
    old: &'a ReadTransaction,
    total: u64,
}

impl TableVisitor for Count<'_> {
    fn visit<K: redb::Key + 'static, V: redb::Value + 'static>(
        &mut self,
        table: TableDefinition<'static, K, V>,
    ) -> Result<(), StorageError> {
        match self.old.open_table(table) {
            Ok(t) => {
                self.total += t.len().map_err(|e| {
                    StorageError(format!(
                        "compaction of table {}: counting: {e}",
                        table.name()
                    ))
                })?;
                Ok(())
            }
            Err(TableError::TableDoesNotExist(_)) => Ok(()),
            Err(e) => Err(StorageError(format!(
                "compaction of table {}: opening it to read: {e}",
                table.name()
            ))),
        }
    }
}

struct Copy<'a> {
    old: &'a ReadTransaction,
    new: &'a WriteTransaction,
    done: Rebuilt,
    names: Vec<String>,
    total: u64,
    progress: &'a mut dyn FnMut(u64, u64),
}

impl TableVisitor for Copy<'_> {
    fn visit<K: redb::Key + 'static, V: redb::Value + 'static>(
        &mut self,
        table: TableDefinition<'static, K, V>,
    ) -> Result<(), StorageError> {
        let name = table.name();
        let failed = |step: &str, e: &dyn std::fmt::Display| {
            StorageError(format!("compaction of table {name}: {step}: {e}"))
        };
        self.names.push(name.to_string());
        let src = match self.old.open_table(table) {
            Ok(t) => t,
            // Not in this file (none is missing from a file `Ledger::open` made): nothing to do.
            Err(TableError::TableDoesNotExist(_)) => return Ok(()),
            Err(e) => return Err(failed("opening it to read", &e)),
        };
        let expected = src.len().map_err(|e| failed("counting entries", &e))?;
        self.new
            .delete_table(table)
            .map_err(|e| failed("deleting it", &e))?;
        let mut dst = self
            .new
            .open_table(table)
            .map_err(|e| failed("creating it again", &e))?;
        let mut copied = 0u64;
        {
            // The gap after the last key of an empty table: every insert goes before it, in
            // ascending order, so redb appends whole runs as packed leaves.
            let mut at = dst
                .upper_bound_mut(Bound::<K::SelfType<'static>>::Unbounded)
                .map_err(|e| failed("opening a cursor", &e))?;
            for entry in src.iter().map_err(|e| failed("reading", &e))? {
                let (k, v) = entry.map_err(|e| failed("reading", &e))?;
                at.insert_before(k.value(), v.value())
                    .map_err(|e| failed("writing", &e))?;
                copied += 1;
                if copied.is_multiple_of(4096) {
                    (self.progress)(self.done.entries + copied, self.total);
                }
            }
            // Applies the last buffered run; only `close` reports a deferred error.
            at.close().map_err(|e| failed("writing", &e))?;
        }
        let written = dst.len().map_err(|e| failed("counting entries", &e))?;
        if copied != expected || written != expected {
            return Err(StorageError(format!(
                "compaction of table {name}: {expected} entries to copy, {copied} read, {written} written"
            )));
        }
        self.done.tables += 1;
        self.done.entries += written;
        Ok(())
    }
}
