//! The ledger's size: what `walletctl stats` prints.
//!
//! ```
//! use wallet_ledger::{FixedClock, Ledger};
//! let ledger = Ledger::in_memory(Box::new(FixedClock("2026-01-01T00:00:00Z".parse().unwrap()))).unwrap();
//! ledger.execute_line(r#"{"op":"register_holder","holder":"37b08803-c1af-4e10-849f-530264bac7f8"}"#).unwrap();
//! let s = ledger.stats().unwrap();
//! assert_eq!((s.events, s.holders, s.wallets), (1, 1, 0));
//! assert_eq!(s.tables.iter().find(|t| t.name == "log").unwrap().entries, 1);
//! ```

use crate::domain::state::Backing;
use crate::error::StorageError;
use crate::ledger::{Ledger, Unflushed, guard};
use crate::storage::{self, TableVisitor};
use redb::{ReadableTableMetadata, TableHandle};

/// Counts and sizes of a ledger ([`Ledger::stats`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct LedgerStats {
    /// Events in the log (the last position).
    pub events: u64,
    /// Wallets opened.
    pub wallets: u64,
    /// Holders registered.
    pub holders: u64,
    /// Programs defined.
    pub programs: u64,
    /// Every table of the file, in the file's table order.
    pub tables: Vec<TableStats>,
    /// What the in-memory layer holds (acknowledged, not yet in the projection tables).
    pub unflushed: Unflushed,
}

/// One redb table's size, as redb counts it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TableStats {
    /// The table's name (`log`, `wallets`, `wallet_rows`, …).
    pub name: String,
    /// Entries (rows).
    pub entries: u64,
    /// Bytes of keys and values stored.
    pub stored_bytes: u64,
    /// Bytes of the B-tree's own bookkeeping (branch pages, headers).
    pub metadata_bytes: u64,
    /// Bytes of its pages left unused.
    pub fragmented_bytes: u64,
}

impl TableStats {
    /// Every byte of the file the table takes: stored, metadata and fragmented.
    pub fn bytes(&self) -> u64 {
        self.stored_bytes + self.metadata_bytes + self.fragmented_bytes
    }
}

struct Collect<'a>(&'a redb::ReadTransaction, Vec<TableStats>);

impl TableVisitor for Collect<'_> {
    fn visit<K: redb::Key + 'static, V: redb::Value + 'static>(
        &mut self,
        table: redb::TableDefinition<'static, K, V>,
    ) -> Result<(), StorageError> {
        let t = self.0.open_table(table)?;
        let s = t.stats()?;
        self.1.push(TableStats {
            name: table.name().to_string(),
            entries: t.len()?,
            stored_bytes: s.stored_bytes(),
            metadata_bytes: s.metadata_bytes(),
            fragmented_bytes: s.fragmented_bytes(),
        });
        Ok(())
    }
}

impl Ledger {
    /// The ledger's size: its counts as of now (every acknowledged command), and the bytes of
    /// each table as of the file's last commit (the projection tables lag the in-memory layer
    /// until the next flush). Cost: redb walks every page of every table to count its bytes, so
    /// this reads the whole file once.
    pub fn stats(&self) -> Result<LedgerStats, StorageError> {
        guard(|| {
            let r = self.quick_reader()?;
            let counters = r.layered().ledger()?;
            let (mem, l2) = r.parts();
            // The layer holds what was added since the flush; a key the projection also has was
            // written again, not added.
            let holders = l2.holders().len()?
                + mem
                    .holders
                    .keys()
                    .filter(|k| l2.holder(**k).ok().flatten().is_none())
                    .count() as u64;
            let programs = l2.programs().len()?
                + mem
                    .programs
                    .keys()
                    .filter(|k| l2.program(**k).ok().flatten().is_none())
                    .count() as u64;
            let txn = self.begin_read()?;
            let mut tables = Collect(&txn, Vec::new());
            storage::for_each_table(&mut tables)?;
            Ok(LedgerStats {
                events: mem.last.position,
                wallets: counters.wallets,
                holders,
                programs,
                tables: tables.1,
                unflushed: self.unflushed(),
            })
        })
    }
}
