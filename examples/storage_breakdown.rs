//! Where a ledger file's bytes go: per table (stored, redb metadata, fragmentation) and, for
//! `wallet_rows`, per row kind (keys and values as stored), per event of the log.
//!
//! ```text
//! cargo run --release --example storage_breakdown -- LEDGER_FILE [--compact]
//! ```
//!
//! With `--compact` the file is compacted in place (`Ledger::compact`) after a first report, and
//! reported again: run it on a copy.

use redb::{ReadableDatabase, ReadableTable, ReadableTableMetadata, TableHandle};
use std::path::Path;
use wallet_ledger::internals::storage::{self, TableVisitor};

struct Stats<'a>(
    &'a redb::ReadTransaction,
    Vec<(String, u64, redb::TableStats)>,
);

impl TableVisitor for Stats<'_> {
    fn visit<K: redb::Key + 'static, V: redb::Value + 'static>(
        &mut self,
        table: redb::TableDefinition<'static, K, V>,
    ) -> Result<(), wallet_ledger::StorageError> {
        let t = self.0.open_table(table)?;
        self.1
            .push((table.name().to_string(), t.len()?, t.stats()?));
        Ok(())
    }
}

fn report(path: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let file = std::fs::metadata(path)?.len();
    let db = redb::Database::open(path)?;
    let rt = db.begin_read()?;
    let events = rt.open_table(storage::LOG)?.len()?;
    let per = |b: u64| b as f64 / events.max(1) as f64;
    println!(
        "{}: {file} bytes, {events} events, {:.1} bytes/event",
        path.display(),
        per(file)
    );
    let mut stats = Stats(&rt, Vec::new());
    storage::for_each_table(&mut stats)?;
    println!(
        "  {:<16} {:>10} {:>7} {:>7} {:>7} {:>7} {:>6}   (bytes/event)",
        "table", "entries", "stored", "meta", "frag", "leaves", "height"
    );
    let (mut stored, mut meta, mut frag) = (0, 0, 0);
    for (name, len, s) in &stats.1 {
        stored += s.stored_bytes();
        meta += s.metadata_bytes();
        frag += s.fragmented_bytes();
        if *len > 0 {
            println!(
                "  {name:<16} {len:>10} {:>7.1} {:>7.1} {:>7.1} {:>7} {:>6}",
                per(s.stored_bytes()),
                per(s.metadata_bytes()),
                per(s.fragmented_bytes()),
                s.leaf_pages(),
                s.tree_height()
            );
        }
    }
    println!(
        "  {:<16} {:>10} {:>7.1} {:>7.1} {:>7.1}   other (free pages, redb's own tables, header): {:.1}",
        "all tables",
        "",
        per(stored),
        per(meta),
        per(frag),
        per(file.saturating_sub(stored + meta + frag))
    );
    // wallet_rows by row kind: the byte after the wallet number.
    let mut by_kind = [(0u64, 0u64, 0u64); 256];
    for e in rt.open_table(storage::ROWS)?.iter()? {
        let (k, v) = e?;
        let (k, v) = (k.value(), v.value());
        let kind = k.get(8).copied().unwrap_or(255) as usize;
        by_kind[kind].0 += 1;
        by_kind[kind].1 += k.len() as u64;
        by_kind[kind].2 += v.len() as u64;
    }
    println!(
        "  wallet_rows by row kind: {:>10} {:>8} {:>8} {:>8} {:>8}   (bytes/event; per row: key, value)",
        "rows", "keys", "values", "key", "value"
    );
    for (kind, (n, kb, vb)) in by_kind.iter().enumerate().filter(|(_, c)| c.0 > 0) {
        println!(
            "  {:<22} {n:>12} {:>8.1} {:>8.1} {:>8.1} {:>8.1}",
            storage::kind::name(kind as u8).unwrap_or("?"),
            per(*kb),
            per(*vb),
            *kb as f64 / *n as f64,
            *vb as f64 / *n as f64
        );
    }
    // Log records by event variant: count, figure-delta bytes, the rest.
    let mut by_event: std::collections::BTreeMap<String, (u64, u64, u64)> = Default::default();
    for e in rt.open_table(storage::LOG)?.iter()? {
        let (k, v) = e?;
        let key = storage::log::LogKey::from_tuple(k.value());
        let v = v.value();
        let name = match storage::log::decode(key, v)?.body {
            storage::log::Body::Event { event, delta, .. } => {
                let name = format!("{event:?}");
                let name = name
                    .split(|c: char| !c.is_alphanumeric())
                    .next()
                    .unwrap_or("?")
                    .to_string();
                let d = storage::codec::encode(&delta).len() as u64 - 1;
                let c = by_event.entry(name).or_default();
                c.0 += 1;
                c.1 += d;
                c.2 += v.len() as u64 - d;
                continue;
            }
            storage::log::Body::Command(_) => "command record".to_string(),
        };
        let c = by_event.entry(name).or_default();
        c.0 += 1;
        c.2 += v.len() as u64;
    }
    println!(
        "  log records: key 12 bytes (position u64, sub u32); value = header 26 bytes (version 1, \
         kind 1, at 8, checksum 16) + stream + seq + figure delta + event, by event:"
    );
    println!(
        "  {:<22} {:>12} {:>8} {:>8}   (bytes per record)",
        "event", "records", "delta", "rest"
    );
    for (name, (n, d, e)) in &by_event {
        println!(
            "  {name:<22} {n:>12} {:>8.1} {:>8.1}",
            *d as f64 / *n as f64,
            *e as f64 / *n as f64
        );
    }
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(path) = args.iter().find(|a| !a.starts_with("--")) else {
        eprintln!("usage: storage_breakdown LEDGER_FILE [--compact]");
        std::process::exit(2);
    };
    let path = Path::new(path);
    report(path)?;
    if args.iter().any(|a| a == "--compact") {
        let started = std::time::Instant::now();
        wallet_ledger::Ledger::open(path)?.compact()?;
        println!("compacted in {:.1}s", started.elapsed().as_secs_f64());
        report(path)?;
    }
    Ok(())
}
