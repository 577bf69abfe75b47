//! The ledger handle: the clock, idempotency, the group commit of the log, the in-memory layer
//! and its flushes, recovery, and reads at any instant.
//!
//! Invariants kept here:
//! - a command's durable write is its log records (and, when keyed, its command record): one
//!   redb write transaction appending at the log's end, committed with
//!   [`redb::Durability::Immediate`] before `execute` returns `Ok`; a command that fails writes
//!   nothing;
//! - everything else is derived: the group's changes (from the same `apply` that replay runs) are
//!   merged into the in-memory layer only after its log records are durable, and written into the
//!   projection tables by a flush, whose transaction records the log key it covers;
//! - `open` replays the log after that key through `apply`, so reopening after a crash gives
//!   exactly the commands whose log records were durable;
//! - a read sees every command acknowledged before it began: readers take the published view
//!   (the layer as of the last durable group, over the projection's read transaction), which the
//!   writer replaces after each group and never mutates;
//! - a read at an instant at or after a wallet's last event costs O(transitions due since),
//!   never O(history).

use crate::command::{Receipt, Request};
use crate::domain::apply::{advance, apply};
use crate::domain::event::Event;
use crate::domain::state::{
    Backing, Checkpoint, Delta, LEDGER_STREAM, LifecycleRec, Scratch, Tx, WalletState,
};
use crate::domain::{self, IdSource};
use crate::error::{CommandError, ErrorCode, OpenError, ReadError, StorageError};
use crate::json::AmountNotes;
use crate::model::{Figures, Instant, ParsedAmount, Program, Status, uuid_of};
use crate::snapshot::{HolderProfile, WalletSnapshot};
use crate::storage;
use crate::storage::l2::{Cached, IdemRecord, L2};
use crate::storage::log::{self as logrec, Body, CommandRecord, LogKey};
use crate::storage::mem::{Layered, Mem};
use chrono::{DateTime, Utc};
use redb::{Database, ReadableDatabase, ReadableTable};
use std::collections::VecDeque;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock, Weak};
use uuid::Uuid;

/// Where "now" comes from. Inject a fixed clock in tests.
pub trait Clock: Send + Sync {
    /// The current instant: the default `at` of commands and the default instant of reads.
    fn now(&self) -> DateTime<Utc>;
}

/// The system clock.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that always says the same instant (tests, scripts that pin time).
pub struct FixedClock(pub DateTime<Utc>);

impl Clock for FixedClock {
    fn now(&self) -> DateTime<Utc> {
        self.0
    }
}

struct RandomIds;

impl IdSource for RandomIds {
    fn holder_id(&mut self) -> Uuid {
        Uuid::new_v4()
    }
    fn wallet_id(&mut self) -> Uuid {
        Uuid::now_v7()
    }
}

/// Default memory budget of the in-memory layer: changes acknowledged but not yet written into
/// the projection tables. Reaching it triggers a flush; it also bounds what `open` replays after
/// a crash.
pub const DEFAULT_MEMORY_BUDGET: usize = 64 << 20;

/// Most events the in-memory layer holds before a flush, whatever their size: bounds the replay
/// `open` does after a crash (≈ 0.2 s per 100,000 events here).
pub const MAX_UNFLUSHED_EVENTS: u64 = 100_000;

/// How a ledger is opened: the clock and the in-memory layer's budget.
///
/// ```
/// use wallet_ledger::OpenOptions;
/// let ledger = OpenOptions::new().memory_budget(8 << 20).in_memory().unwrap();
/// assert_eq!(ledger.memory_budget(), 8 << 20);
/// ```
pub struct OpenOptions {
    clock: Box<dyn Clock>,
    memory_budget: usize,
    max_unflushed_events: u64,
    cache_size: Option<usize>,
    progress: Option<Box<ProgressFn>>,
}

/// Long work whose progress [`OpenOptions::progress`] and [`Ledger::compact_with_progress`]
/// report.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Stage {
    /// Rewriting a file of an older format (`open`); units are log records.
    Migrate,
    /// Replaying the log after the last flush (`open`, after a crash or a migration); units are
    /// log records.
    Replay,
    /// Rewriting every table (`compact`); units are table entries.
    Compact,
}

/// A progress callback: `(stage, done, total)`, called every few thousand units and once
/// with `done == total` at the end of a stage.
pub type ProgressFn = dyn FnMut(Stage, u64, u64) + Send;

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions::new()
    }
}

impl OpenOptions {
    /// The defaults: the system clock, a [`DEFAULT_MEMORY_BUDGET`] in-memory layer flushed
    /// after at most [`MAX_UNFLUSHED_EVENTS`] events, redb's default page cache.
    pub fn new() -> OpenOptions {
        OpenOptions {
            clock: Box::new(SystemClock),
            memory_budget: DEFAULT_MEMORY_BUDGET,
            max_unflushed_events: MAX_UNFLUSHED_EVENTS,
            cache_size: None,
            progress: None,
        }
    }

    /// Reports the progress of long work `open` may do: migrating a file of an older format,
    /// and replaying the log after the last flush (see [`Stage`]). Not called when there is
    /// none. `walletctl` draws a progress bar with it.
    pub fn progress(mut self, f: impl FnMut(Stage, u64, u64) + Send + 'static) -> OpenOptions {
        self.progress = Some(Box::new(f));
        self
    }

    /// Bytes of redb's page cache (default: redb's, 1 GiB). The cache holds pages read and
    /// pages waiting to be written; a small one bounds the memory of a process that reads a
    /// large file once (`walletctl verify` uses 8 MiB) at the price of more reads.
    pub fn cache_size(mut self, bytes: usize) -> OpenOptions {
        self.cache_size = Some(bytes);
        self
    }

    fn builder(&self) -> redb::Builder {
        let mut b = Database::builder();
        if let Some(c) = self.cache_size {
            b.set_cache_size(c);
        }
        b
    }

    /// The clock commands without `at` take their instant from (default: the system clock).
    pub fn clock(mut self, clock: Box<dyn Clock>) -> OpenOptions {
        self.clock = clock;
        self
    }

    /// Bytes the in-memory layer may hold before it is flushed (default
    /// [`DEFAULT_MEMORY_BUDGET`]; at least 1 MiB). The decode caches of the flushed tables get a
    /// quarter of it again.
    pub fn memory_budget(mut self, bytes: usize) -> OpenOptions {
        self.memory_budget = bytes.max(1 << 20);
        self
    }

    /// Events the in-memory layer may hold before it is flushed (default
    /// [`MAX_UNFLUSHED_EVENTS`]; at least 1).
    pub fn max_unflushed_events(mut self, events: u64) -> OpenOptions {
        self.max_unflushed_events = events.max(1);
        self
    }

    /// Opens (or creates) the ledger file at `path`.
    pub fn open(self, path: impl AsRef<Path>) -> Result<Ledger, OpenError> {
        let path = path.as_ref();
        if path.exists() {
            return guard(|| {
                let db = create_file(&self.builder(), path)?;
                Ledger::init(db, self)
            });
        }
        // A new ledger is created under a temporary name and renamed into place once its first
        // commit is durable: a crash or I/O error during creation leaves no half-made file at
        // `path` that would refuse to open later.
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(format!(".creating-{}", std::process::id()));
        let tmp = std::path::PathBuf::from(tmp);
        let made = guard(|| {
            let db = create_file(&self.builder(), &tmp)?;
            Ledger::init(db, self)
        });
        let renamed = made.and_then(|l| {
            std::fs::rename(&tmp, path).map_err(|e| {
                OpenError::Storage(StorageError(format!(
                    "cannot create {}: {e}",
                    path.display()
                )))
            })?;
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
                && let Ok(d) = std::fs::File::open(dir)
            {
                // Make the rename itself durable.
                let _ = d.sync_all();
            }
            Ok(l)
        });
        if renamed.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        renamed
    }

    /// Opens a ledger over any redb storage backend (in-memory, fault-injecting, …).
    pub fn open_backend(self, backend: impl redb::StorageBackend) -> Result<Ledger, OpenError> {
        guard(|| {
            let db = self
                .builder()
                .create_with_backend(backend)
                .map_err(|e| OpenError::Storage(e.into()))?;
            Ledger::init(db, self)
        })
    }

    /// A ledger held in memory only (tests, examples).
    pub fn in_memory(self) -> Result<Ledger, OpenError> {
        self.open_backend(redb::backends::InMemoryBackend::new())
    }
}

/// Opens (or creates) a ledger file. On Unix through [`storage::file::PrefilledFile`], which
/// zero-fills each growth of the file so later commits overwrite allocated blocks.
fn create_file(builder: &redb::Builder, path: &Path) -> Result<Database, OpenError> {
    #[cfg(unix)]
    {
        let file = storage::file::PrefilledFile::open(path).map_err(open_error)?;
        builder.create_with_backend(file).map_err(open_error)
    }
    #[cfg(not(unix))]
    {
        builder.create(path).map_err(open_error)
    }
}

/// `AlreadyOpen` for a file another handle holds; `Storage` for anything else.
fn open_error(e: redb::DatabaseError) -> OpenError {
    match e {
        redb::DatabaseError::DatabaseAlreadyOpen => OpenError::AlreadyOpen,
        e => OpenError::Storage(e.into()),
    }
}

/// The database, closed under a guard: redb's close runs a last commit, which can panic on a
/// damaged file, and a handle going out of scope must not abort the embedding process.
struct Db(Option<Database>);

impl std::ops::Deref for Db {
    type Target = Database;
    fn deref(&self) -> &Database {
        self.0.as_ref().expect("present until dropped")
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        if let Some(db) = self.0.take() {
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || drop(db)));
        }
    }
}

/// The log table, read-only.
pub(crate) type LogTable = redb::ReadOnlyTable<(u64, u32), &'static [u8]>;

/// What readers read: the in-memory layer as of the last durable group, over the projection's
/// read transaction. Immutable once published.
struct View {
    mem: Mem,
    l2: Arc<L2>,
    /// For reads of log records appended after the projection's read transaction began (history,
    /// as-of reads): a read transaction begun on first need, which sees at least every record
    /// the layer reflects.
    db: Weak<Db>,
    log: OnceLock<Result<LogTable, StorageError>>,
}

impl View {
    fn new(mem: Mem, l2: Arc<L2>, db: Weak<Db>) -> View {
        View {
            mem,
            l2,
            db,
            log: OnceLock::new(),
        }
    }

    /// The log as of at least this view.
    fn log(&self) -> Result<&LogTable, StorageError> {
        let t = self.log.get_or_init(|| {
            let db = self
                .db
                .upgrade()
                .ok_or_else(|| StorageError("the ledger is closed".into()))?;
            Ok(db.begin_read()?.open_table(crate::storage::LOG)?)
        });
        t.as_ref().map_err(Clone::clone)
    }
}

/// The writer's state, under the commit lock.
struct Writer {
    /// The layer, including every durable group.
    mem: Mem,
    /// The projection as of the last flush, with its decode caches.
    base: Cached,
    /// The checksum and key of the last log record.
    head: [u8; 16],
    last: LogKey,
    /// The ticket the next decided group takes: groups commit in the order they were decided.
    next_ticket: u64,
}

struct Budget {
    memory: usize,
    events: u64,
}

impl Budget {
    fn cache(&self) -> usize {
        self.memory / 4
    }
}

struct Inner {
    /// What readers read (see [`View`]). `None` only while compacting.
    published: Mutex<Option<Arc<View>>>,
    /// The commit lock and the writer's state. `None` only while compacting.
    writer: Mutex<Option<Writer>>,
    db: Arc<Db>,
    clock: Box<dyn Clock>,
    budget: Budget,
    /// Commands waiting for a group commit, in arrival order.
    queue: Mutex<VecDeque<Job>>,
    /// Completed groups (a generation counter), and the signal that one completed.
    /// Callers inside `submit` (queued, committing, or answered and about to return), and the
    /// signal that one queued a command or left: a leader waits for these to gather.
    callers: std::sync::atomic::AtomicUsize,
    arrived: std::sync::Condvar,
    /// Readers handed out by [`Ledger::reader`] and not dropped yet: each holds a read
    /// transaction, under which redb cannot move pages, so `compact` refuses before it rewrites
    /// anything rather than fail halfway.
    leased: Arc<std::sync::atomic::AtomicUsize>,
    /// Told about every group commit (see [`Ledger::on_commit`]).
    observer: std::sync::RwLock<Option<Arc<CommitObserver>>>,
    /// The ticket of the next group to commit, and the signal that it moved: a group decided
    /// while the one before it is being made durable waits here for its turn.
    turn: Mutex<u64>,
    turn_moved: std::sync::Condvar,
    /// Commands taken from the queue into a group not answered yet (the gathering leader does
    /// not wait for them to queue again).
    in_flight: std::sync::atomic::AtomicUsize,
    /// How many commands the last group gathered (see `gather`).
    last_group: std::sync::atomic::AtomicUsize,
    /// Set when a commit or flush failed: the handle refuses further writes (redb refuses writes
    /// on a database after an I/O error, and the layer may hold groups that are not durable).
    poisoned: Mutex<Option<String>>,
    /// The last published position, for [`Ledger::wait_for`].
    feed: crate::feed::Feed,
}

/// A function [`Ledger::on_commit`] calls after each group commit.
pub type CommitObserver = dyn Fn(&CommitStats) + Send + Sync;

/// What one group commit did, for an embedding application's metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct CommitStats {
    /// Commands (or batches) the group carried: 1 for a lone caller, more when concurrent
    /// callers were gathered into one write transaction.
    pub commands: usize,
    /// From the start of the write transaction to its durable commit (or its abort, when every
    /// command failed or was a replay and nothing was written).
    pub elapsed: std::time::Duration,
}

impl Drop for Inner {
    /// A clean close writes the in-memory layer into the projection (durably), so the next
    /// open replays nothing. A failure here loses nothing: the log is durable, and the next
    /// open replays it.
    fn drop(&mut self) {
        let inner: &mut Inner = self;
        let db = inner.db.clone();
        let writer = inner
            .writer
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .as_mut();
        let poisoned = inner
            .poisoned
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .is_some();
        if let Some(w) = writer
            && !poisoned
            && !w.mem.is_empty()
        {
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                flush(&db, w, redb::Durability::Immediate, 0)
            }));
        }
        *inner.published.get_mut().unwrap_or_else(|e| e.into_inner()) = None;
        *inner.writer.get_mut().unwrap_or_else(|e| e.into_inner()) = None;
    }
}

/// A handle on one ledger file. `Send + Sync` and cheap to clone: clones share the database.
/// Commands are group-committed; reads run concurrently with writes on consistent snapshots.
#[derive(Clone)]
pub struct Ledger {
    inner: Arc<Inner>,
}

/// An event as the log stores it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredEvent {
    pub position: u64,
    pub at: i64,
    /// The record's chained checksum.
    pub checksum: [u8; 16],
    /// How the event changed its pocket's figures (as `apply` computed it when it was written).
    pub delta: Option<Delta>,
    pub event: Event,
}

/// What idempotency compares (SPEC §6): a hash of the command in canonical form without key and
/// instants, and the instants as submitted, compared only where both requests gave one.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Fingerprint {
    hash: [u8; 32],
    instants: Vec<Option<i64>>,
}

impl Fingerprint {
    fn of(req: &Request, notes: &[Option<ParsedAmount>]) -> Fingerprint {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        h.update(crate::json::canonical(req).as_bytes());
        // Unrepresentable amounts stand as `1` in the request: hash their text too.
        for (i, n) in notes.iter().enumerate() {
            if let Some(ParsedAmount::TooPrecise(t) | ParsedAmount::TooLarge(t)) = n {
                h.update(format!("\n#{i}:{t}").as_bytes());
            }
        }
        Fingerprint {
            hash: h.finalize().into(),
            instants: crate::json::instants(req),
        }
    }

    fn same_command(&self, other: &Fingerprint) -> bool {
        self.hash == other.hash
            && self.instants.len() == other.instants.len()
            && self
                .instants
                .iter()
                .zip(&other.instants)
                .all(|(a, b)| a.is_none() || b.is_none() || a == b)
    }
}

/// The value of `meta["schema"]`: the file format, u32 BE.
fn format_marker(v: &[u8]) -> Result<u32, StorageError> {
    v.try_into()
        .map(u32::from_be_bytes)
        .map_err(|_| StorageError("schema marker is corrupt".into()))
}

/// The key and checksum of the last record of the log, reading the log through `l2`.
fn log_head(l2: &L2) -> Result<(LogKey, [u8; 16]), StorageError> {
    match l2.log_last()? {
        Some((k, bytes)) => Ok((k, logrec::decode(k, &bytes)?.checksum)),
        None => Ok((LogKey::ZERO, [0; 16])),
    }
}

/// Writes the layer into the projection tables and starts a new, empty layer over them. The
/// flush transaction needs no fsync of its own (`Durability::None`): the next durable commit
/// makes it durable, and until then a crash only means `open` replays more of the log.
fn flush(
    db: &Database,
    w: &mut Writer,
    durability: redb::Durability,
    cache: usize,
) -> Result<(), StorageError> {
    let mut txn = db.begin_write()?;
    txn.set_durability(durability)
        .map_err(|e| StorageError(format!("flush: {e}")))?;
    if let Err(e) = storage::flush::flush(&txn, &w.mem, &w.base) {
        let _ = txn.abort();
        return Err(e);
    }
    txn.commit()?;
    let l2 = Arc::new(L2::open(db)?);
    if l2.flushed() != w.mem.last {
        return Err(StorageError(format!(
            "flush: the projection says it covers {}, the layer covered {}",
            l2.flushed(),
            w.mem.last
        )));
    }
    w.base = Cached::new(l2, cache.max(1 << 20));
    w.mem = Mem::empty(w.last);
    Ok(())
}

impl Ledger {
    /// Opens (or creates) the ledger file at `path` with the system clock.
    pub fn open(path: impl AsRef<Path>) -> Result<Ledger, OpenError> {
        OpenOptions::new().open(path)
    }

    /// Opens (or creates) the ledger file with an injected clock.
    pub fn open_with_clock(
        path: impl AsRef<Path>,
        clock: Box<dyn Clock>,
    ) -> Result<Ledger, OpenError> {
        OpenOptions::new().clock(clock).open(path)
    }

    /// Opens a ledger over any redb storage backend (in-memory, fault-injecting, …).
    pub fn open_with_backend(
        backend: impl redb::StorageBackend,
        clock: Box<dyn Clock>,
    ) -> Result<Ledger, OpenError> {
        OpenOptions::new().clock(clock).open_backend(backend)
    }

    /// A ledger held in memory only (tests, examples).
    pub fn in_memory(clock: Box<dyn Clock>) -> Result<Ledger, OpenError> {
        OpenOptions::new().clock(clock).in_memory()
    }

    fn init(db: Database, mut opts: OpenOptions) -> Result<Ledger, OpenError> {
        let mut no_progress = |_: Stage, _: u64, _: u64| {};
        let progress: &mut ProgressFn = match opts.progress.as_deref_mut() {
            Some(f) => f,
            None => &mut no_progress,
        };
        // Migrate a file of an older format first, each step in a transaction of its own.
        match Ledger::format_of(&db)? {
            Some(1) => {
                Ledger::migrate(&db, 1, progress)?;
                Ledger::migrate(&db, 2, progress)?;
            }
            Some(2) => Ledger::migrate(&db, 2, progress)?,
            _ => {}
        }
        let txn = db.begin_write().map_err(StorageError::from)?;
        {
            storage::create_tables(&txn)?;
            let mut meta = txn.open_table(storage::META).map_err(StorageError::from)?;
            let found = meta
                .get(storage::META_SCHEMA)
                .map_err(StorageError::from)?
                .map(|v| v.value().to_vec());
            match found {
                None => {
                    meta.insert(
                        storage::META_SCHEMA,
                        &storage::FORMAT_VERSION.to_be_bytes()[..],
                    )
                    .map_err(StorageError::from)?;
                }
                Some(v) => {
                    let found = format_marker(&v)?;
                    if found != storage::FORMAT_VERSION {
                        return Err(OpenError::UnsupportedSchema {
                            found,
                            supported: storage::FORMAT_VERSION,
                        });
                    }
                }
            }
        }
        txn.commit().map_err(StorageError::from)?;
        let budget = Budget {
            memory: opts.memory_budget,
            events: opts.max_unflushed_events,
        };
        let db = Arc::new(Db(Some(db)));
        let mut w = Ledger::recover(&db, &budget, progress)?;
        let view = Arc::new(View::new(
            w.mem.clone(),
            w.base.l2().clone(),
            Arc::downgrade(&db),
        ));
        // A recovered layer at its budget is flushed now rather than by the first command.
        if w.mem.bytes >= budget.memory || w.mem.events >= budget.events {
            flush(&db, &mut w, redb::Durability::Immediate, budget.cache())?;
        }
        let view = if w.mem.is_empty() {
            Arc::new(View::new(
                w.mem.clone(),
                w.base.l2().clone(),
                Arc::downgrade(&db),
            ))
        } else {
            view
        };
        let feed = crate::feed::Feed::new(view.mem.last.position);
        Ok(Ledger {
            inner: Arc::new(Inner {
                feed,
                published: Mutex::new(Some(view)),
                writer: Mutex::new(Some(w)),
                db,
                clock: opts.clock,
                budget,
                queue: Mutex::new(VecDeque::new()),
                callers: std::sync::atomic::AtomicUsize::new(0),
                arrived: std::sync::Condvar::new(),
                leased: Arc::new(std::sync::atomic::AtomicUsize::new(0)),
                observer: std::sync::RwLock::new(None),
                turn: Mutex::new(0),
                turn_moved: std::sync::Condvar::new(),
                in_flight: std::sync::atomic::AtomicUsize::new(0),
                last_group: std::sync::atomic::AtomicUsize::new(0),
                poisoned: Mutex::new(None),
            }),
        })
    }

    /// Rebuilds the in-memory layer: replays, through `apply`, every log record after the one the
    /// projection covers, checking the checksum chain on the way. A layer that reaches the budget
    /// is flushed as it goes, so memory stays bounded however long the tail (a migrated file's
    /// whole log is such a tail).
    fn recover(
        db: &Arc<Db>,
        budget: &Budget,
        progress: &mut ProgressFn,
    ) -> Result<Writer, StorageError> {
        let l2 = Arc::new(L2::open(db)?);
        let flushed = l2.flushed();
        let (last, head) = log_head(&l2)?;
        let mut w = Writer {
            mem: Mem::empty(flushed),
            base: Cached::new(l2.clone(), budget.cache().max(1 << 20)),
            head: [0; 16],
            last: flushed,
            next_ticket: 0,
        };
        // The chain head at the flushed key.
        w.head = if flushed == LogKey::ZERO {
            [0; 16]
        } else {
            match l2.log_record(flushed)? {
                Some(b) => logrec::decode(flushed, &b)?.checksum,
                None => {
                    return Err(StorageError(format!(
                        "the projection covers log {flushed}, which the log does not hold"
                    )));
                }
            }
        };
        if last == flushed {
            w.head = head;
            return Ok(w);
        }
        const STEP: usize = 4096;
        let mut after = flushed;
        // Records to replay: one per event position, plus the (few) command records.
        let total = last.position - flushed.position;
        progress(Stage::Replay, 0, total);
        loop {
            // One read transaction per step: a flush in between commits new projection tables.
            let mut batch: Vec<(LogKey, Vec<u8>)> = Vec::with_capacity(STEP);
            for r in w.base.l2().log_after(after)? {
                let (k, v) = r?;
                batch.push((k, v.value().to_vec()));
                if batch.len() == STEP {
                    break;
                }
            }
            if batch.is_empty() {
                break;
            }
            after = batch.last().expect("non-empty").0;
            let (changes, keys) = {
                let layered = Layered {
                    mem: &w.mem,
                    base: &w.base,
                };
                let mut tx = Tx::without_undo(&layered)?;
                let mut keys = Vec::new();
                for (k, bytes) in &batch {
                    let rec = logrec::decode(*k, bytes)?;
                    let expect = logrec::chain(&w.head, *k, bytes);
                    if expect != rec.checksum {
                        return Err(StorageError(format!(
                            "log {k}: checksum mismatch: the log is damaged (run `walletctl verify`)"
                        )));
                    }
                    w.head = rec.checksum;
                    match rec.body {
                        Body::Event {
                            stream,
                            seq,
                            delta: _,
                            event,
                        } => {
                            let delta = apply(&mut tx, stream, rec.at, &event)?;
                            tx.record(stream, rec.at, event, delta)?;
                            let p = tx.events().last().expect("just recorded");
                            if p.position != k.position || p.seq != seq || k.sub != 0 {
                                return Err(StorageError(format!(
                                    "log {k}: replay places this event at position {} (stream {stream} event {})",
                                    p.position, p.seq
                                )));
                            }
                        }
                        Body::Command(c) => {
                            let receipt = c.receipt.receipt()?;
                            keys.push((c.key, (c.hash, c.instants, receipt)));
                        }
                    }
                }
                (tx.into_changes()?, keys)
            };
            w.mem.merge(changes, keys, after, &w.base)?;
            w.last = after;
            progress(
                Stage::Replay,
                (after.position - flushed.position).min(total),
                total,
            );
            if w.mem.bytes >= budget.memory || w.mem.events >= budget.events {
                flush(db, &mut w, redb::Durability::None, budget.cache())?;
            }
        }
        if w.last != last {
            return Err(StorageError(format!(
                "recovery ended at log {} but the log ends at {last}",
                w.last
            )));
        }
        Ok(w)
    }

    /// The file format a file is stamped with; `None` for a new (empty) file.
    fn format_of(db: &Database) -> Result<Option<u32>, OpenError> {
        let txn = db.begin_read().map_err(StorageError::from)?;
        let meta = match txn.open_table(storage::META) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(StorageError::from(e).into()),
        };
        match meta.get(storage::META_SCHEMA).map_err(StorageError::from)? {
            Some(v) => Ok(Some(format_marker(v.value())?)),
            None => Ok(None),
        }
    }

    /// Migrates a file of format `from` to `from + 1` in one durable write transaction
    /// (`storage::migrate`): a failure leaves the file as it was, and the next open migrates it
    /// again.
    fn migrate(db: &Database, from: u32, progress: &mut ProgressFn) -> Result<(), OpenError> {
        // The snapshot the rewrite reads, begun before the write transaction (no commit in
        // between: this handle is not shared yet).
        let old = db.begin_read().map_err(StorageError::from)?;
        let mut txn = db.begin_write().map_err(StorageError::from)?;
        txn.set_two_phase_commit(true);
        match from {
            1 => {
                storage::migrate::v1_to_v2(&old, &txn)?;
            }
            2 => {
                storage::migrate::v2_to_v3(&old, &txn, &mut |done, total| {
                    progress(Stage::Migrate, done, total)
                })?;
            }
            _ => unreachable!("only formats 1 and 2 are migrated"),
        }
        drop(old);
        txn.open_table(storage::META)
            .map_err(StorageError::from)?
            .insert(storage::META_SCHEMA, &(from + 1).to_be_bytes()[..])
            .map_err(StorageError::from)?;
        txn.commit().map_err(StorageError::from)?;
        Ok(())
    }

    /// A read transaction on the file as of its last commit.
    pub(crate) fn begin_read(&self) -> Result<redb::ReadTransaction, StorageError> {
        Ok(self.inner.db.begin_read()?)
    }

    pub(crate) fn feed(&self) -> &crate::feed::Feed {
        &self.inner.feed
    }

    /// The clock's current instant.
    pub fn now(&self) -> DateTime<Utc> {
        self.inner.clock.now()
    }

    /// The in-memory layer's budget in bytes (see [`OpenOptions::memory_budget`]).
    pub fn memory_budget(&self) -> usize {
        self.inner.budget.memory
    }

    /// What the in-memory layer holds now: acknowledged commands not yet written into the
    /// projection tables (what `open` would replay after a crash).
    pub fn unflushed(&self) -> Unflushed {
        let v = self.view();
        match v {
            Ok(v) => Unflushed {
                bytes: v.mem.bytes,
                events: v.mem.events,
                wallets: v.mem.wallets.len(),
            },
            Err(_) => Unflushed::default(),
        }
    }

    /// Writes the in-memory layer into the projection tables now, durably. Never needed for
    /// correctness (the log is durable; a flush happens by itself at the budget, and on close).
    pub fn flush(&self) -> Result<(), StorageError> {
        guard(|| {
            let mut g = lock(&self.inner.writer);
            let w = g
                .as_mut()
                .ok_or_else(|| StorageError("the ledger is closed".into()))?;
            self.wait_committed(w.next_ticket);
            if let Some(why) = self.poisoned() {
                return Err(StorageError(why));
            }
            if let Err(e) = flush(
                &self.inner.db,
                w,
                redb::Durability::Immediate,
                self.inner.budget.cache(),
            ) {
                self.poison(format!(
                    "a flush failed ({e}); reopen the ledger (nothing acknowledged is lost)"
                ));
                return Err(e);
            }
            self.publish(w);
            Ok(())
        })
    }

    fn now_ns(&self) -> Result<i64, CommandError> {
        Instant::from_datetime(self.now())
            .map(|i| i.0)
            .ok_or_else(|| {
                CommandError::new(ErrorCode::InvalidTime, "the clock is outside 1677..2262")
            })
    }

    /// Executes one command (or batch) atomically and durably.
    ///
    /// Returns the receipt once the commit is durable. With a `key`, a repeat of the same
    /// command returns the stored receipt marked `replayed`, and a different command with that
    /// key fails with `idempotency_conflict`.
    ///
    /// Concurrent callers are group-committed: whoever takes the commit lock drains the queue of
    /// waiting commands, decides them in memory and appends their log records in one write
    /// transaction and one fsync. Each command runs under its own savepoint, so one that fails
    /// is rolled back alone and never fails the others; every caller is answered only after the
    /// commit that holds its command is durable.
    pub fn execute(&self, req: &Request) -> Result<Receipt, CommandError> {
        self.submit(req.clone(), Vec::new())
    }

    fn submit(&self, req: Request, notes: AmountNotes) -> Result<Receipt, CommandError> {
        let _caller = Caller::enter(&self.inner);
        let slot: Slot = Arc::new(Mutex::new(None));
        {
            let mut queue = lock(&self.inner.queue);
            // The clock is read under the queue lock: commands are applied in queue order, so
            // the instants of commands that leave `at` to the clock never run backwards. Read
            // before the lock, a caller overtaken by a later reading was `backdated` against
            // it on the same wallet.
            let now = self.now_ns()?;
            queue.push_back(Job {
                req,
                notes,
                now,
                slot: slot.clone(),
                waiter: std::thread::current(),
            });
        }
        self.inner.arrived.notify_all();
        loop {
            if let Some(r) = lock(&slot).take() {
                return r;
            }
            let flush_due = match self.inner.writer.try_lock() {
                Ok(g) => self.lead(g),
                // Poisoned only if a panic escaped a group (guard() catches them); leading on
                // is still safe: a group that fails part-way poisons the handle.
                Err(std::sync::TryLockError::Poisoned(e)) => self.lead(e.into_inner()),
                Err(std::sync::TryLockError::WouldBlock) => {
                    // Another caller leads. This one is woken when its command is answered, or
                    // when the leader hands the next group over (see `hand_over`); the timeout
                    // is only a safety net.
                    std::thread::park_timeout(std::time::Duration::from_millis(10));
                    continue;
                }
            };
            if flush_due {
                // The group's callers are answered; the flush holds the writer (redb has one)
                // and this caller pays its time.
                let _ = self.flush_if_due();
                self.hand_over();
            }
        }
    }

    /// Wakes the caller of the oldest queued command to lead the next group (called when the
    /// writer is released). Waking one caller rather than all: sixteen threads woken per group,
    /// on two cores, cost more than the group's commit.
    fn hand_over(&self) {
        if let Some(j) = lock(&self.inner.queue).front() {
            j.waiter.unpark();
        }
    }

    /// Calls `observer` after every group commit, on the committing thread, once its callers
    /// have their answers; replaces any earlier observer. It runs while the next group waits
    /// for the commit lock, so it must be cheap (count, record a histogram sample) and must not
    /// call back into the ledger's write path. A panic in it is caught and ignored.
    pub fn on_commit(&self, observer: impl Fn(&CommitStats) + Send + Sync + 'static) {
        let mut slot = self
            .inner
            .observer
            .write()
            .unwrap_or_else(|e| e.into_inner());
        *slot = Some(Arc::new(observer));
    }

    fn observe(&self, stats: &CommitStats) {
        let observer = self
            .inner
            .observer
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        if let Some(f) = observer {
            // Metrics must never take the ledger down with them.
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(stats)));
        }
    }

    /// Leads one group: gathers the queue, decides the group in memory and commits it under the
    /// writer lock, then hands the lock to the oldest queued caller and answers the group.
    /// Returns whether the layer reached its budget.
    fn lead(&self, mut g: std::sync::MutexGuard<'_, Option<Writer>>) -> bool {
        use std::sync::atomic::Ordering::SeqCst;
        let jobs: Vec<Job> = {
            let mut q = self.gather();
            let n = q.len().min(MAX_GROUP_COMMANDS);
            q.drain(..n).collect()
        };
        if jobs.is_empty() {
            return false;
        }
        self.inner.in_flight.fetch_add(jobs.len(), SeqCst);
        let answered = Answer(&jobs);
        let started = std::time::Instant::now();
        let Some(w) = g.as_mut() else {
            answered.fill(Err(CommandError::new(
                ErrorCode::Storage,
                "the ledger is closed",
            )));
            self.inner.in_flight.fetch_sub(jobs.len(), SeqCst);
            return false;
        };
        let prepared = self.decide_group(w, &jobs);
        let flush_due =
            w.mem.bytes >= self.inner.budget.memory || w.mem.events >= self.inner.budget.events;
        // The writer is held until the group is durable. Releasing it after deciding, so that
        // the next group is decided during this one's fsync, was measured slower here: with 16
        // callers half of them are always in flight, so groups halve and commits double, and a
        // commit (its page writes and fsync) costs far more than deciding a group.
        let results = self.commit_prepared(prepared);
        drop(g);
        self.hand_over();
        answered.fill(results);
        self.inner.in_flight.fetch_sub(jobs.len(), SeqCst);
        self.observe(&CommitStats {
            commands: jobs.len(),
            elapsed: started.elapsed(),
        });
        flush_due && self.poisoned().is_none()
    }

    fn poisoned(&self) -> Option<String> {
        lock(&self.inner.poisoned).clone()
    }

    /// Refuses every later write on this handle (the first reason is kept).
    fn poison(&self, why: String) {
        let mut p = lock(&self.inner.poisoned);
        if p.is_none() {
            *p = Some(why);
        }
    }

    /// Waits until every group with a ticket below `ticket` has been committed (or failed).
    fn wait_committed(&self, ticket: u64) {
        let mut t = lock(&self.inner.turn);
        while *t < ticket {
            t = self
                .inner
                .turn_moved
                .wait(t)
                .unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Flushes the layer if it is at its budget (another caller may have flushed it already).
    fn flush_if_due(&self) -> Result<(), StorageError> {
        guard(|| {
            let mut g = lock(&self.inner.writer);
            let Some(w) = g.as_mut() else {
                return Ok(());
            };
            if w.mem.bytes < self.inner.budget.memory && w.mem.events < self.inner.budget.events {
                return Ok(());
            }
            // Only durable groups are flushed: the layer holds no group that could still fail.
            self.wait_committed(w.next_ticket);
            if self.poisoned().is_some() {
                return Ok(());
            }
            if let Err(e) = flush(
                &self.inner.db,
                w,
                redb::Durability::None,
                self.inner.budget.cache(),
            ) {
                self.poison(format!(
                    "a flush failed ({e}); reopen the ledger (nothing acknowledged is lost)"
                ));
                return Err(e);
            }
            self.publish(w);
            Ok(())
        })
    }

    /// The queue, once every caller inside `submit` has queued its command, or after
    /// `GATHER_WAIT_US`. Why wait: callers answered by the previous group resubmit within
    /// microseconds, and a leader that starts at once commits a group of one or two, then the
    /// rest pay a second commit (groups alternated 2 and 14 under 16 threads). A lone caller
    /// never waits (it is the only caller and has queued), nor does one whose peers are doing
    /// other work (they are not inside `submit`).
    fn gather(&self) -> std::sync::MutexGuard<'_, VecDeque<Job>> {
        use std::sync::atomic::Ordering::SeqCst;
        let started = std::time::Instant::now();
        let deadline = started + std::time::Duration::from_micros(GATHER_WAIT_US);
        // Callers answered by the last group return, then call again: they are not inside
        // `submit` for a moment, and a leader that starts without them commits a group of a
        // few, then another. Expect as many as the last group held, for a while.
        let expected = self.inner.last_group.load(SeqCst).min(MAX_GROUP_COMMANDS);
        let patience = started + std::time::Duration::from_micros(GATHER_EXPECT_US);
        let mut q = lock(&self.inner.queue);
        loop {
            let callers = self.inner.callers.load(SeqCst);
            let in_flight = self.inner.in_flight.load(SeqCst);
            let now = std::time::Instant::now();
            // Callers whose commands are in a group being committed will not queue again
            // before it is durable: waiting for them would only delay this group.
            let coming = callers.saturating_sub(in_flight).min(MAX_GROUP_COMMANDS);
            let all_in = q.len() >= coming;
            if (all_in && (q.len() >= expected || now >= patience)) || now >= deadline {
                self.inner.last_group.store(q.len(), SeqCst);
                return q;
            }
            let until = if all_in { patience } else { deadline };
            q = self
                .inner
                .arrived
                .wait_timeout(q, until.saturating_duration_since(now))
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Replaces the published view with the writer's layer.
    fn publish(&self, w: &Writer) {
        let v = Arc::new(View::new(
            w.mem.clone(),
            w.base.l2().clone(),
            Arc::downgrade(&self.inner.db),
        ));
        *lock(&self.inner.published) = Some(v);
    }

    fn view(&self) -> Result<Arc<View>, StorageError> {
        lock(&self.inner.published)
            .clone()
            .ok_or_else(|| StorageError("the ledger is closed".into()))
    }

    /// Decides `jobs` in memory and prepares the group's log records; merges its changes into
    /// the writer's layer at once (the next group is decided on top of them) but publishes
    /// nothing: [`Ledger::commit_prepared`] makes the group durable, then visible. Takes the
    /// group's ticket whatever happens, so that the groups after it keep their turns.
    fn decide_group(&self, w: &mut Writer, jobs: &[Job]) -> Prepared {
        let ticket = w.next_ticket;
        w.next_ticket += 1;
        let prev_last = w.last;
        match guard(|| self.decide_inner(w, jobs)) {
            Ok((records, results, view)) => Prepared {
                ticket,
                prev_last,
                records,
                results: Ok(results),
                view,
            },
            Err(e) => {
                // The layer may hold part of the group: nothing later may be decided on it.
                self.poison(format!(
                    "a group could not be decided ({}); reopen the ledger (every acknowledged \
                     command is durable)",
                    e.message
                ));
                Prepared {
                    ticket,
                    prev_last,
                    records: Vec::new(),
                    results: Err(e),
                    view: None,
                }
            }
        }
    }

    #[allow(clippy::type_complexity)]
    fn decide_inner(
        &self,
        w: &mut Writer,
        jobs: &[Job],
    ) -> Result<
        (
            Vec<(LogKey, Vec<u8>)>,
            Vec<Result<Receipt, CommandError>>,
            Option<Arc<View>>,
        ),
        CommandError,
    > {
        if let Some(why) = self.poisoned() {
            return Err(CommandError::new(ErrorCode::Storage, why));
        }
        // Keys new in this group, in order, with what the log records of them.
        let mut keys: Vec<(String, Fingerprint, usize)> = Vec::new();
        let (results, changes) = {
            let layered = Layered {
                mem: &w.mem,
                base: &w.base,
            };
            let mut tx = Tx::new(&layered)?;
            let mut results: Vec<Result<Receipt, CommandError>> = Vec::with_capacity(jobs.len());
            for job in jobs {
                let fp = job
                    .req
                    .key
                    .as_ref()
                    .map(|_| Fingerprint::of(&job.req, &job.notes));
                let known = match (&job.req.key, &fp) {
                    (Some(k), Some(fp)) => match keys.iter().find(|(kk, _, _)| kk == k) {
                        Some((_, seen, i)) => {
                            let receipt = results[*i]
                                .clone()
                                .expect("a key is kept only for a success");
                            Some(replay_answer(k, seen, fp, receipt))
                        }
                        None => stored_answer(&w.mem, w.base.l2(), k, fp)?,
                    },
                    _ => None,
                };
                let r = match known {
                    Some(answer) => answer,
                    None => domain::execute(&mut tx, &job.req, &job.notes, job.now, &mut RandomIds),
                };
                match &r {
                    Err(e) if e.code == ErrorCode::Storage => return Err(e.clone()),
                    Ok(receipt) if !receipt.replayed => {
                        if let (Some(k), Some(fp)) = (&job.req.key, fp) {
                            keys.push((k.clone(), fp, results.len()));
                        }
                    }
                    _ => {}
                }
                results.push(r);
            }
            (results, tx.into_changes()?)
        };
        if changes.events.is_empty() && keys.is_empty() {
            // Nothing to make durable: every command failed, was a replay, or changed nothing.
            return Ok((Vec::new(), results, None));
        }

        // The log records, chained: each command's events, then its command record if keyed.
        let mut records: Vec<(LogKey, Vec<u8>)> =
            Vec::with_capacity(changes.events.len() + keys.len());
        let mut head = w.head;
        let mut last = w.last;
        let mut events = changes.events.iter().peekable();
        let mut push_events_upto = |upto: u64,
                                    records: &mut Vec<(LogKey, Vec<u8>)>,
                                    head: &mut [u8; 16],
                                    last: &mut LogKey|
         -> Result<(), StorageError> {
            while let Some(p) = events.next_if(|p| p.position <= upto) {
                let k = LogKey::event(p.position);
                if k <= *last {
                    return Err(StorageError(format!(
                        "event position {} does not follow the log's end ({last})",
                        p.position
                    )));
                }
                let (bytes, sum) =
                    logrec::encode_event(head, k, p.at, p.stream, p.seq, &p.delta, &p.event);
                *head = sum;
                *last = k;
                records.push((k, bytes));
            }
            Ok(())
        };
        let mut idem: Vec<(String, IdemRecord)> = Vec::with_capacity(keys.len());
        for (k, fp, i) in keys {
            let receipt = results[i]
                .clone()
                .expect("a key is kept only for a success");
            let upto = receipt.last_position.unwrap_or(last.position);
            push_events_upto(upto, &mut records, &mut head, &mut last)?;
            let key = if last.position == upto {
                LogKey {
                    position: upto,
                    sub: last.sub.checked_add(1).ok_or_else(|| {
                        StorageError("too many command records at one log position".into())
                    })?,
                }
            } else {
                LogKey {
                    position: upto,
                    sub: 1,
                }
            };
            let rec = CommandRecord {
                key: k.clone(),
                hash: fp.hash,
                instants: fp.instants.clone(),
                receipt: logrec::StoredReceipt::from(&receipt),
            };
            // The command's own instant, as its receipt states it: the record must not depend on
            // the clock of whoever wrote it (a replica rebuilding from the log gets these bytes).
            let at = Instant::from_datetime(receipt.at).map_or(0, |i| i.0);
            let (bytes, sum) = logrec::encode_command(&head, key, at, &rec);
            head = sum;
            last = key;
            records.push((key, bytes));
            idem.push((k, (fp.hash, fp.instants, receipt)));
        }
        push_events_upto(u64::MAX, &mut records, &mut head, &mut last)?;

        w.mem.merge(changes, idem, last, &w.base)?;
        w.head = head;
        w.last = last;
        let view = Arc::new(View::new(
            w.mem.clone(),
            w.base.l2().clone(),
            Arc::downgrade(&self.inner.db),
        ));
        Ok((records, results, Some(view)))
    }

    /// Makes a decided group durable in its turn (after every group decided before it), then
    /// publishes the layer as of it and returns its callers' answers. A group whose turn comes
    /// after a failure fails too: it was decided on a layer that holds what failed.
    fn commit_prepared(
        &self,
        p: Prepared,
    ) -> Result<Vec<Result<Receipt, CommandError>>, CommandError> {
        self.wait_committed(p.ticket);
        let out = guard(|| {
            let results = p.results?;
            if let Some(why) = self.poisoned() {
                return Err(CommandError::new(ErrorCode::Storage, why));
            }
            if !p.records.is_empty()
                && let Err(e) = self.append(p.prev_last, &p.records)
            {
                self.poison(format!(
                    "a group commit failed ({}); reopen the ledger (every acknowledged command \
                     is durable)",
                    e.message
                ));
                return Err(e);
            }
            if let Some(v) = p.view {
                let last = v.mem.last.position;
                *lock(&self.inner.published) = Some(v);
                self.inner.feed.published(last);
            }
            Ok(results)
        });
        *lock(&self.inner.turn) = p.ticket + 1;
        self.inner.turn_moved.notify_all();
        out
    }

    /// The durable write: the log only, appended at its end (after `prev_last`). A long run goes
    /// in through a cursor (redb packs it into leaves in one splice); a short one is cheaper as
    /// plain inserts, which append to the last leaf. Either way a record already stored at a key
    /// (a damaged file) fails the commit rather than being overwritten: the log is append-only.
    fn append(&self, prev_last: LogKey, records: &[(LogKey, Vec<u8>)]) -> Result<(), CommandError> {
        let txn = self.inner.db.begin_write()?;
        {
            let mut log = txn.open_table(storage::LOG)?;
            if records.len() < LOG_RUN_MIN {
                // Only at the end: a record past it (a damaged or forged file) is refused, as the
                // cursor below refuses it.
                let end = log.last()?.map(|(k, _)| LogKey::from_tuple(k.value()));
                if end.unwrap_or(LogKey::ZERO) != prev_last {
                    return Err(StorageError(format!(
                        "the log ends at {} where this handle wrote up to {prev_last}: the file is \
                         damaged or written by another process (run `walletctl verify`)",
                        end.unwrap_or(LogKey::ZERO)
                    ))
                    .into());
                }
                for (k, bytes) in records {
                    if log.insert(k.tuple(), &bytes[..])?.is_some() {
                        return Err(StorageError(format!(
                            "log {k} is already stored: the file is damaged (run `walletctl verify`)"
                        ))
                        .into());
                    }
                }
            } else {
                let mut at_end = log.upper_bound_mut(std::ops::Bound::<(u64, u32)>::Unbounded)?;
                for (k, bytes) in records {
                    at_end
                        .insert_before(k.tuple(), &bytes[..])
                        .map_err(|e| StorageError(format!("log {k}: {}", redb::Error::from(e))))?;
                }
                at_end.close()?;
            }
        }
        txn.commit()?;
        Ok(())
    }

    /// Runs JSON command lines as one command group, exactly as a group of concurrent callers is
    /// committed (each under its own savepoint, one durable commit). For tests of the group
    /// path, which concurrent callers reach only by timing. A line that does not parse gets its
    /// error and is left out of the group.
    #[doc(hidden)]
    pub fn execute_lines_as_group(&self, lines: &[&str]) -> Vec<Result<Receipt, CommandError>> {
        let now = match self.now_ns() {
            Ok(n) => n,
            Err(e) => return lines.iter().map(|_| Err(e.clone())).collect(),
        };
        let mut out: Vec<Option<Result<Receipt, CommandError>>> = vec![None; lines.len()];
        let mut jobs = Vec::new();
        let mut at = Vec::new();
        for (i, line) in lines.iter().enumerate() {
            match crate::json::parse_line_noted(line) {
                Ok((req, notes)) => {
                    jobs.push(Job {
                        req,
                        notes,
                        now,
                        slot: Arc::new(Mutex::new(None)),
                        waiter: std::thread::current(),
                    });
                    at.push(i);
                }
                Err((_, e)) => out[i] = Some(Err(e)),
            }
        }
        let flush_due = {
            let mut g = lock(&self.inner.writer);
            match g.as_mut() {
                Some(w) => {
                    let p = self.decide_group(w, &jobs);
                    let due = w.mem.bytes >= self.inner.budget.memory
                        || w.mem.events >= self.inner.budget.events;
                    drop(g);
                    Answer(&jobs).fill(self.commit_prepared(p));
                    due && self.poisoned().is_none()
                }
                None => {
                    Answer(&jobs).fill(Err(CommandError::new(
                        ErrorCode::Storage,
                        "the ledger is closed",
                    )));
                    false
                }
            }
        };
        if flush_due {
            let _ = self.flush_if_due();
        }
        for (job, i) in jobs.iter().zip(at) {
            out[i] = lock(&job.slot).take();
        }
        out.into_iter()
            .map(|r| r.unwrap_or_else(|| Err(CommandError::new(ErrorCode::Storage, "unanswered"))))
            .collect()
    }

    /// Executes a command given as one JSON line (SPEC §9).
    pub fn execute_line(&self, line: &str) -> Result<Receipt, CommandError> {
        match crate::json::parse_line_noted(line) {
            Ok((req, notes)) => self.submit(req, notes),
            Err((Some(key), e)) => {
                // Step 0 first: a known key with a command that does not even parse cannot be
                // the command stored under it.
                let v = self.view()?;
                let known = v.mem.idem.contains_key(&key)
                    || v.l2.idem_record(&key).ok().flatten().is_some();
                if known {
                    return Err(CommandError::new(
                        ErrorCode::IdempotencyConflict,
                        format!(
                            "key {} was used for a different command",
                            crate::model::quoted(&key)
                        ),
                    ));
                }
                Err(e)
            }
            Err((None, e)) => Err(e),
        }
    }

    /// A consistent read view of the ledger at one moment: every command acknowledged before
    /// the call, and nothing after.
    pub fn reader(&self) -> Result<Reader, StorageError> {
        let view = self.view()?;
        Ok(Reader::new(
            view,
            self.now(),
            Some(Lease::take(&self.inner.leased)),
            self.inner.budget.cache(),
        ))
    }

    pub(crate) fn quick_reader(&self) -> Result<Reader, StorageError> {
        Ok(Reader::new(self.view()?, self.now(), None, 8 << 20))
    }

    /// The wallet's figures and profile as of `as_of` (default: now).
    pub fn snapshot(
        &self,
        wallet: Uuid,
        as_of: Option<DateTime<Utc>>,
    ) -> Result<WalletSnapshot, ReadError> {
        guard(|| {
            let r = self.quick_reader()?;
            let w = r
                .wallet_number(wallet)?
                .ok_or_else(|| ReadError::UnknownWallet(wallet.to_string()))?;
            r.snapshot_inner(w, as_of, true)
        })
    }

    /// The wallet's figures as of `as_of` (default: now), without its lifecycle events: the
    /// cheapest read of current figures. A wallet the in-memory layer does not hold is read
    /// from its row alone when the instant is within its precomputed schedule.
    pub fn figures(
        &self,
        wallet: Uuid,
        as_of: Option<DateTime<Utc>>,
    ) -> Result<WalletSnapshot, ReadError> {
        guard(|| {
            let t = as_of.unwrap_or_else(|| self.now());
            let at = Instant::from_datetime(t)
                .ok_or_else(|| ReadError::InvalidTime(format!("{t} is outside 1677..2262")))?
                .0;
            let view = self.view()?;
            let id = *wallet.as_bytes();
            if let Some(w) = view.mem.uuids.get(&id) {
                if let Some(m) = view.mem.wallets.get(w)
                    && at >= m.ws.updated_at
                    && m.ws.next_due.is_none_or(|d| d > at)
                {
                    return Ok(WalletSnapshot::build((*m.ws).clone(), Vec::new(), at));
                }
            } else if let Some((mut ws, schedule)) = view.l2.head_by_uuid(id)?
                && at >= ws.updated_at
                && (ws.next_due.is_none_or(|d| d > at) || schedule.figures_at(&mut ws, at)?)
            {
                return Ok(WalletSnapshot::build(ws, Vec::new(), at));
            }
            let r = Reader::new(view, self.now(), None, 8 << 20);
            let w = r
                .wallet_number(wallet)?
                .ok_or_else(|| ReadError::UnknownWallet(wallet.to_string()))?;
            r.snapshot_inner(w, Some(t), false)
        })
    }

    /// Replays the whole log, checking its checksum chain, and compares every wallet's replay
    /// with the stored figures (SPEC §5: the materialized figures equal the replay of the log).
    /// Memory stays bounded whatever the log's length.
    pub fn verify(&self) -> Result<crate::verify::Report, StorageError> {
        self.verify_with_progress(|_, _| {})
    }

    /// [`Ledger::verify`], calling `progress(done, total)` as it goes (every few thousand
    /// events, and once at the end with `done == total`), for a progress bar. The units are
    /// events, each counted twice (read in the log pass, replayed in its wallet's).
    pub fn verify_with_progress(
        &self,
        mut progress: impl FnMut(u64, u64),
    ) -> Result<crate::verify::Report, StorageError> {
        guard(|| {
            let view = self.view()?;
            let log = view.log()?;
            crate::verify::verify_with_progress(&view.l2, &view.mem, log, &mut progress)
        })
    }

    /// Compacts the file the way SQLite's `VACUUM` does: every table is rebuilt with its B-tree
    /// leaves packed full, then the pages are moved to the front of the file and the file is
    /// truncated. The in-memory layer is flushed first. Needs the only handle on the ledger (no
    /// clone alive) and no [`Reader`] from [`Ledger::reader`] still open (redb cannot move pages
    /// under a read transaction); either is refused before anything is written.
    ///
    /// **Space**: the old pages are freed only by the rebuild's commit, so plan for up to twice
    /// the file's size while it runs. **Failure and crashes**: the rebuild is one transaction; an
    /// error or crash before it commits leaves the file as it was. After an error, drop the
    /// handle and open the file again. A refusal writes nothing and leaves the handle usable.
    pub fn compact(&mut self) -> Result<(), StorageError> {
        self.compact_with_progress(|_, _| {})
    }

    /// [`Ledger::compact`], calling `progress(done, total)` as it goes (units: table entries
    /// rewritten; every few thousand, and once at the end with `done == total`).
    pub fn compact_with_progress(
        &mut self,
        mut progress: impl FnMut(u64, u64),
    ) -> Result<(), StorageError> {
        // `get_mut` rather than consuming the handle: a refusal leaves the caller a working
        // handle instead of making them reopen the file.
        let inner = Arc::get_mut(&mut self.inner).ok_or_else(|| {
            StorageError(
                "compact needs the only handle on the ledger (drop its clones first); nothing \
                 was changed"
                    .into(),
            )
        })?;
        let leased = inner.leased.load(std::sync::atomic::Ordering::SeqCst);
        if leased > 0 {
            return Err(StorageError(format!(
                "compact needs every Reader dropped first ({leased} still open): redb cannot move \
                 pages under a read transaction; nothing was changed"
            )));
        }
        let cache = inner.budget.cache();
        guard(|| {
            // Flush, then drop every read transaction (the writer's and the published view's).
            {
                let w = inner
                    .writer
                    .get_mut()
                    .unwrap_or_else(|e| e.into_inner())
                    .as_mut()
                    .ok_or_else(|| StorageError("the ledger is closed".into()))?;
                if let Some(why) = inner.poisoned.get_mut().unwrap_or_else(|e| e.into_inner()) {
                    return Err(StorageError(why.clone()));
                }
                if !w.mem.is_empty() {
                    flush(&inner.db, w, redb::Durability::Immediate, cache)?;
                }
            }
            let (head, last) = {
                let w = inner
                    .writer
                    .get_mut()
                    .unwrap_or_else(|e| e.into_inner())
                    .take()
                    .expect("checked above");
                (w.head, w.last)
            };
            *inner.published.get_mut().unwrap_or_else(|e| e.into_inner()) = None;
            let db = Arc::get_mut(&mut inner.db)
                .ok_or_else(|| StorageError("compact: the database is still shared".into()))?;
            let db = db.0.as_mut().expect("present until dropped");
            {
                let old = db.begin_read().map_err(|e| {
                    StorageError(format!("compaction: cannot begin a read transaction: {e}"))
                })?;
                let mut new = db.begin_write().map_err(|e| {
                    StorageError(format!("compaction: cannot begin a write transaction: {e}"))
                })?;
                new.set_two_phase_commit(true);
                let rebuilt = crate::storage::pack::rebuild(&old, &new, &mut progress);
                drop(old);
                if let Err(e) = rebuilt {
                    // Nothing of it was committed; the abort's own error adds nothing.
                    let _ = new.abort();
                    return Err(e);
                }
                new.commit().map_err(|e| {
                    StorageError(format!("compaction: committing the rebuilt tables: {e}"))
                })?;
            }
            // redb's compaction relocates pages towards the front until nothing moves; it loops
            // itself, and one more call that moves nothing is cheap.
            while db
                .compact()
                .map_err(|e| StorageError(format!("compaction: moving pages: {e}")))?
            {}
            let l2 = Arc::new(L2::open(db)?);
            let w = Writer {
                mem: Mem::empty(l2.flushed()),
                base: Cached::new(l2.clone(), cache.max(1 << 20)),
                head,
                last,
                next_ticket: *inner.turn.get_mut().unwrap_or_else(|e| e.into_inner()),
            };
            *inner.published.get_mut().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(
                View::new(w.mem.clone(), l2, Arc::downgrade(&inner.db)),
            ));
            *inner.writer.get_mut().unwrap_or_else(|e| e.into_inner()) = Some(w);
            Ok(())
        })
    }
}

/// What the in-memory layer holds (see [`Ledger::unflushed`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Unflushed {
    /// Approximate bytes, compared with the memory budget.
    pub bytes: usize,
    /// Events the layer holds (the log records a reopen would replay).
    pub events: u64,
    /// Wallets the layer holds state of.
    pub wallets: usize,
}

/// Runs `f`, turning a panic into a `storage` error. redb trusts the lengths it finds in pages it
/// reads (it checks page checksums only when repairing after a crash), so a damaged file can make
/// it panic; an embedding process must get an error it can report, not an abort.
pub(crate) fn guard<T, E: From<StorageError>>(f: impl FnOnce() -> Result<T, E>) -> Result<T, E> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(payload) => {
            let why = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            Err(E::from(StorageError(format!(
                "the ledger file is damaged (the storage engine failed: {why}); run `walletctl verify` and restore from a backup"
            ))))
        }
    }
}

/// A group decided and merged into the writer's layer, waiting for its durable commit.
struct Prepared {
    ticket: u64,
    /// The log's last key before this group's records.
    prev_last: LogKey,
    records: Vec<(LogKey, Vec<u8>)>,
    results: Result<Vec<Result<Receipt, CommandError>>, CommandError>,
    /// What readers see once the group is durable (`None` when it wrote nothing).
    view: Option<Arc<View>>,
}

/// Longest a leader waits for as many commands as the last group held, once every caller inside
/// `submit` has queued: about the time an answered caller takes to call again.
pub const GATHER_EXPECT_US: u64 = 250;

/// Fewest log records a commit appends through a cursor run (below, plain inserts cost less).
const LOG_RUN_MIN: usize = 4;

/// Most commands one group commit gathers into a transaction: bounds its memory and latency.
pub const MAX_GROUP_COMMANDS: usize = 1024;

/// Longest a group's leader waits for callers already inside `submit` to queue. About one
/// fsync here (0.2–4 ms): long enough for 15 answered callers to be rescheduled on two cores
/// and resubmit (200 µs was not), short enough to bound what a caller stuck elsewhere costs.
pub const GATHER_WAIT_US: u64 = 1000;

/// Counts a caller in `Inner::callers` for as long as it is inside `submit`, however it leaves.
struct Caller<'a>(&'a Inner);

impl<'a> Caller<'a> {
    fn enter(inner: &'a Inner) -> Caller<'a> {
        inner
            .callers
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Caller(inner)
    }
}

impl Drop for Caller<'_> {
    fn drop(&mut self) {
        self.0
            .callers
            .fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
        // Taking the queue lock orders this with a leader between its check and its wait.
        drop(lock(&self.0.queue));
        self.0.arrived.notify_all();
    }
}

type Slot = Arc<Mutex<Option<Result<Receipt, CommandError>>>>;

struct Job {
    req: Request,
    notes: AmountNotes,
    now: i64,
    slot: Slot,
    /// The caller, woken when its answer is in `slot` or when it should lead.
    waiter: std::thread::Thread,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic elsewhere must not wedge every later caller: the data under these locks stays
    // consistent across a panic (the writer poisons itself when a group fails part-way).
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Answers every job of a group exactly once — also if the group panics part way.
struct Answer<'a>(&'a [Job]);

impl Answer<'_> {
    fn fill(self, results: Result<Vec<Result<Receipt, CommandError>>, CommandError>) {
        match results {
            Ok(rs) => {
                for (job, r) in self.0.iter().zip(rs) {
                    *lock(&job.slot) = Some(r);
                    job.waiter.unpark();
                }
            }
            Err(e) => {
                for job in self.0 {
                    *lock(&job.slot) = Some(Err(e.clone()));
                    job.waiter.unpark();
                }
            }
        }
    }
}

impl Drop for Answer<'_> {
    fn drop(&mut self) {
        for job in self.0 {
            let mut s = lock(&job.slot);
            if s.is_none() {
                *s = Some(Err(CommandError::new(
                    ErrorCode::Storage,
                    "the transaction holding this command was abandoned (internal panic); nothing was written",
                )));
                job.waiter.unpark();
            }
        }
    }
}

fn replay_answer(
    key: &str,
    stored: &Fingerprint,
    fp: &Fingerprint,
    mut receipt: Receipt,
) -> Result<Receipt, CommandError> {
    if !stored.same_command(fp) {
        return Err(CommandError::new(
            ErrorCode::IdempotencyConflict,
            format!(
                "key {} was used for a different command",
                crate::model::quoted(key)
            ),
        ));
    }
    receipt.replayed = true;
    Ok(receipt)
}

/// The answer to a known key: from the layer, else the projection; `None` for a new key.
fn stored_answer(
    mem: &Mem,
    l2: &L2,
    key: &str,
    fp: &Fingerprint,
) -> Result<Option<Result<Receipt, CommandError>>, CommandError> {
    let (hash, instants, receipt) = match mem.idem.get(key) {
        Some(r) => (**r).clone(),
        None => match l2.idem_record(key)? {
            Some(r) => r,
            None => return Ok(None),
        },
    };
    let stored = Fingerprint { hash, instants };
    Ok(Some(replay_answer(key, &stored, fp, receipt)))
}

thread_local! {
    /// The emptied containers of this thread's last read overlay (see [`Scratch`]): no state.
    static SCRATCH: std::cell::Cell<Option<Scratch>> = const { std::cell::Cell::new(None) };
}

fn take_scratch() -> Scratch {
    SCRATCH.with(|s| s.take()).unwrap_or_default()
}

fn keep_scratch(s: Option<Scratch>) {
    SCRATCH.with(|cell| cell.set(s));
}

/// A consistent read-only view: the in-memory layer as of one durable group, over the
/// projection's read transaction. Views and the CLI read through it.
pub struct Reader {
    view: Arc<View>,
    base: Cached,
    now: DateTime<Utc>,
    /// Counts a reader handed to the caller (see `Inner::leased`); `None` for the ledger's own.
    _lease: Option<Lease>,
}

/// One count in `Inner::leased`, given back on drop.
struct Lease(Arc<std::sync::atomic::AtomicUsize>);

impl Lease {
    fn take(count: &Arc<std::sync::atomic::AtomicUsize>) -> Lease {
        count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Lease(count.clone())
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Reader {
    fn new(view: Arc<View>, now: DateTime<Utc>, lease: Option<Lease>, cache: usize) -> Reader {
        let base = Cached::new(view.l2.clone(), cache.max(1 << 20));
        Reader {
            view,
            base,
            now,
            _lease: lease,
        }
    }

    pub(crate) fn layered(&self) -> Layered<'_> {
        Layered {
            mem: &self.view.mem,
            base: &self.base,
        }
    }

    /// The instant reads default to.
    pub fn now(&self) -> DateTime<Utc> {
        self.now
    }

    /// The layer and the projection this reader reads.
    pub(crate) fn parts(&self) -> (&Mem, &Arc<L2>) {
        (&self.view.mem, &self.view.l2)
    }

    /// The log as of at least this reader, and the key of the last record it reflects: a read of
    /// the log must stop there (the table may hold records of later groups).
    pub(crate) fn log(&self) -> Result<(&LogTable, LogKey), StorageError> {
        Ok((self.view.log()?, self.view.mem.last))
    }

    /// The wallet's internal number (internal; for the crate's tests).
    #[doc(hidden)]
    pub fn wallet_number(&self, id: Uuid) -> Result<Option<u64>, StorageError> {
        self.layered().wallet_by_uuid(*id.as_bytes())
    }

    /// The id of wallet number `w`.
    fn uuid_of_number(&self, w: u64) -> Result<Uuid, StorageError> {
        match self.layered().wallet(w)? {
            Some(ws) => Ok(uuid_of(ws.uuid)),
            None => Err(StorageError(format!(
                "wallet {w} is indexed but has no row"
            ))),
        }
    }

    /// Whether a wallet with this id has been opened (at any instant).
    pub fn contains_wallet(&self, id: Uuid) -> Result<bool, StorageError> {
        Ok(self.wallet_number(id)?.is_some())
    }

    /// The wallet with this `external_id`, if any.
    pub fn wallet_by_external(&self, external_id: &str) -> Result<Option<Uuid>, StorageError> {
        match self.number_by_external(external_id)? {
            Some(w) => Ok(Some(self.uuid_of_number(w)?)),
            None => Ok(None),
        }
    }

    /// The wallet a card was issued on, if any.
    pub fn wallet_by_card(&self, card: &str) -> Result<Option<Uuid>, StorageError> {
        match self.number_by_card(card)? {
            Some(w) => Ok(Some(self.uuid_of_number(w)?)),
            None => Ok(None),
        }
    }

    pub(crate) fn number_by_external(&self, ext: &str) -> Result<Option<u64>, StorageError> {
        self.layered().wallet_by_external(ext)
    }

    pub(crate) fn number_by_card(&self, card: &str) -> Result<Option<u64>, StorageError> {
        self.layered().wallet_by_card(card)
    }

    /// A holder's profile, if the holder is registered (at any instant).
    pub fn holder(&self, id: Uuid) -> Result<Option<HolderProfile>, StorageError> {
        Ok(self
            .layered()
            .holder(*id.as_bytes())?
            .map(HolderProfile::from))
    }

    /// When holder `id` was registered (`None`: no such holder). A holder is not found by a
    /// view or look-up dated before this instant. `None` too for a holder whose row was written
    /// before the projection kept the instant (it is found at every instant).
    pub fn holder_registered_at(&self, id: Uuid) -> Result<Option<DateTime<Utc>>, StorageError> {
        Ok(self
            .layered()
            .holder(*id.as_bytes())?
            .filter(|r| r.registered_at != crate::domain::state::HolderRec::UNKNOWN_SINCE)
            .map(|r| Instant(r.registered_at).to_datetime()))
    }
    /// Whether holder `id` exists and was registered at or before `at`.
    pub fn holder_exists_at(&self, id: Uuid, at: DateTime<Utc>) -> Result<bool, StorageError> {
        // An instant past the representable range is after every registration, one before it
        // before every one.
        let at = at.timestamp_nanos_opt().unwrap_or(if at.timestamp() < 0 {
            i64::MIN
        } else {
            i64::MAX
        });
        Ok(self
            .layered()
            .holder(*id.as_bytes())?
            .is_some_and(|r| r.registered_by(at)))
    }

    /// The holder registered with this identity, if any.
    pub fn holder_by_identity(&self, identity: &str) -> Result<Option<Uuid>, StorageError> {
        Ok(self.layered().holder_by_identity(identity)?.map(uuid_of))
    }

    /// The holder registered with this email, compared case-insensitively, if any.
    pub fn holder_by_email(&self, email: &str) -> Result<Option<Uuid>, StorageError> {
        Ok(self
            .layered()
            .holder_by_email(&crate::model::normalize_email(email))?
            .map(uuid_of))
    }

    /// A program's definition, if it is defined.
    pub fn program(&self, id: u64) -> Result<Option<Program>, StorageError> {
        self.layered().program(id)
    }

    /// A holder's wallets, in opening order.
    pub fn wallets_of(&self, holder: Uuid) -> Result<Vec<Uuid>, StorageError> {
        self.numbers_of(holder)?
            .into_iter()
            .map(|w| self.uuid_of_number(w))
            .collect()
    }

    /// Wallet numbers of a holder, in opening order.
    pub(crate) fn numbers_of(&self, holder: Uuid) -> Result<Vec<u64>, StorageError> {
        let h = *holder.as_bytes();
        let mut v = self.view.l2.wallets_of(h)?;
        for (hh, w) in self.view.mem.holder_wallets.range((h, 0)..=(h, u64::MAX)) {
            debug_assert_eq!(*hh, h);
            v.push(*w);
        }
        v.sort_unstable();
        v.dedup();
        Ok(v)
    }

    /// Positions of wallet `w`'s events `1..=seq`, in order: the flushed index, then the layer's.
    fn positions(&self, w: u64, seq: u64) -> Result<Vec<u64>, StorageError> {
        self.positions_between(w, 1, seq)
    }

    pub(crate) fn positions_between(
        &self,
        w: u64,
        from: u64,
        to: u64,
    ) -> Result<Vec<u64>, StorageError> {
        let (flushed_to, mem) = match self.view.mem.wallets.get(&w) {
            Some(m) => (m.first_seq - 1, Some(m)),
            None => (to, None),
        };
        let mut out = self.view.l2.positions(w, from, to.min(flushed_to))?;
        if let Some(m) = mem {
            out.extend(m.positions_between(from, to));
        }
        let want = (to + 1).saturating_sub(from) as usize;
        if out.len() != want {
            return Err(StorageError(format!(
                "wallet {w}: the event index holds {} of events {from}..={to}",
                out.len()
            )));
        }
        Ok(out)
    }

    /// A stream's events with their sequence numbers, decoded (no checksum verification). The
    /// ledger stream (0) has no index: its events are found by a scan of the whole log.
    /// Internal: for the crate's tests.
    #[doc(hidden)]
    pub fn events(&self, stream: u64) -> Result<Vec<(u64, StoredEvent)>, StorageError> {
        guard(|| {
            let log = self.view.log()?;
            let mut out = Vec::new();
            if stream == LEDGER_STREAM {
                let end = self.view.mem.last;
                for r in log.iter()? {
                    let (k, v) = r?;
                    let k = LogKey::from_tuple(k.value());
                    if k > end {
                        break;
                    }
                    if k.sub != 0 {
                        continue;
                    }
                    let rec = logrec::decode(k, v.value())?;
                    if let Body::Event {
                        stream: 0,
                        seq,
                        delta,
                        event,
                    } = rec.body
                    {
                        out.push((
                            seq,
                            StoredEvent {
                                position: k.position,
                                at: rec.at,
                                checksum: rec.checksum,
                                delta,
                                event,
                            },
                        ));
                    }
                }
                return Ok(out);
            }
            let Some(ws) = self.layered().wallet(stream)? else {
                return Ok(out);
            };
            for (i, p) in self.positions(stream, ws.seq)?.into_iter().enumerate() {
                let k = LogKey::event(p);
                let v = log
                    .get(k.tuple())?
                    .ok_or_else(|| StorageError(format!("wallet {stream}: log {k} is missing")))?;
                let rec = logrec::decode(k, v.value())?;
                match rec.body {
                    Body::Event {
                        stream: s,
                        seq,
                        delta,
                        event,
                    } if s == stream && seq == i as u64 + 1 => out.push((
                        seq,
                        StoredEvent {
                            position: p,
                            at: rec.at,
                            checksum: rec.checksum,
                            delta,
                            event,
                        },
                    )),
                    _ => {
                        return Err(StorageError(format!(
                            "wallet {stream}: its event index points at log {k}, which is not its event {}",
                            i + 1
                        )));
                    }
                }
            }
            Ok(out)
        })
    }

    /// Every lifecycle event of wallet `w` (the flushed chunks, then the layer's).
    fn lifecycle_of(&self, w: u64, ws: &WalletState) -> Result<Vec<LifecycleRec>, StorageError> {
        let mem = self.view.mem.wallets.get(&w);
        let flushed = match mem {
            Some(m) if !m.flushed => Vec::new(),
            _ => self.view.l2.lifecycle(w, ws.lifecycle)?,
        };
        let mut out = flushed;
        if let Some(m) = mem {
            for (idx, rec) in m.lifecycle.iter() {
                let i = *idx as usize;
                if i < out.len() {
                    out[i] = (**rec).clone();
                } else if i == out.len() {
                    out.push((**rec).clone());
                } else {
                    return Err(StorageError(format!(
                        "wallet {w}: lifecycle event {i} follows {} stored",
                        out.len()
                    )));
                }
            }
        }
        Ok(out)
    }

    /// `unknown_wallet` for an instant before the wallet was opened.
    fn existed_at(ws: &WalletState, at: i64) -> Result<(), ReadError> {
        if at < ws.created_at {
            return Err(ReadError::UnknownWallet(format!(
                "{} did not exist yet at {}",
                uuid_of(ws.uuid),
                Instant(at)
            )));
        }
        Ok(())
    }

    /// The wallet's figures and profile as of `as_of` (default: the reader's now).
    ///
    /// `unknown_wallet` when no wallet has that id, or it was opened after `as_of`.
    pub fn snapshot(
        &self,
        wallet: Uuid,
        as_of: Option<DateTime<Utc>>,
    ) -> Result<WalletSnapshot, ReadError> {
        guard(|| {
            let w = self.number_or_unknown(wallet)?;
            self.snapshot_inner(w, as_of, true)
        })
    }

    /// Like [`Reader::snapshot`] without the lifecycle events (left empty): the figures-only read
    /// for hot paths.
    pub fn figures(
        &self,
        wallet: Uuid,
        as_of: Option<DateTime<Utc>>,
    ) -> Result<WalletSnapshot, ReadError> {
        guard(|| {
            let w = self.number_or_unknown(wallet)?;
            self.snapshot_inner(w, as_of, false)
        })
    }

    fn number_or_unknown(&self, wallet: Uuid) -> Result<u64, ReadError> {
        self.wallet_number(wallet)?
            .ok_or_else(|| ReadError::UnknownWallet(wallet.to_string()))
    }

    /// Wallet number `w` as of `as_of` (the vendor views look wallets up by number).
    pub(crate) fn snapshot_of_number(
        &self,
        w: u64,
        as_of: Option<DateTime<Utc>>,
    ) -> Result<WalletSnapshot, ReadError> {
        guard(|| self.snapshot_inner(w, as_of, true))
    }

    fn snapshot_inner(
        &self,
        w: u64,
        as_of: Option<DateTime<Utc>>,
        with_lifecycle: bool,
    ) -> Result<WalletSnapshot, ReadError> {
        let t = as_of.unwrap_or(self.now);
        let at = Instant::from_datetime(t)
            .ok_or_else(|| ReadError::InvalidTime(format!("{t} is outside 1677..2262")))?
            .0;
        let layered = self.layered();
        let ws = layered
            .wallet(w)?
            .ok_or_else(|| ReadError::UnknownWallet(format!("number {w}")))?;
        if at >= ws.updated_at {
            let lifecycle = if with_lifecycle {
                self.lifecycle_of(w, &ws)?
            } else {
                Vec::new()
            };
            // Current state plus transitions due since the last event: O(due), no replay, and
            // nothing at all when the earliest pending transition lies after `at`.
            if ws.next_due.is_none_or(|d| d > at) {
                return Ok(WalletSnapshot::build(ws, lifecycle, at));
            }
            let mut tx = Tx::reading(&layered, take_scratch());
            tx.seed_wallet(ws);
            advance(&mut tx, w, at, false)?;
            // The overlay is discarded: move the header out rather than clone it.
            let ws = tx.take_wallet(w)?;
            keep_scratch(tx.into_scratch());
            return Ok(WalletSnapshot::build(ws, lifecycle, at));
        }
        self.as_of(w, ws, with_lifecycle, at)
    }

    /// Wallet `w` as of `as_of`, always by replaying its stream from the first event, never from
    /// the materialized state. `verify` and the property tests compare it with [`Reader::snapshot`].
    /// Internal: for `verify`'s tests, the property tests and the benchmarks.
    #[doc(hidden)]
    pub fn snapshot_replayed(
        &self,
        wallet: Uuid,
        as_of: DateTime<Utc>,
    ) -> Result<WalletSnapshot, ReadError> {
        guard(|| {
            let w = self.number_or_unknown(wallet)?;
            let at = Instant::from_datetime(as_of)
                .ok_or_else(|| ReadError::InvalidTime(format!("{as_of} is outside 1677..2262")))?
                .0;
            let ws = self
                .layered()
                .wallet(w)?
                .ok_or_else(|| ReadError::UnknownWallet(format!("number {w}")))?;
            let lifecycle = self.lifecycle_of(w, &ws)?;
            Self::existed_at(&ws, at)?;
            let empty = crate::domain::state::Empty;
            let mut tx = Tx::without_undo(&empty)?;
            for (_, rec) in self.events(w)? {
                if rec.at > at {
                    break;
                }
                apply(&mut tx, w, rec.at, &rec.event)?;
            }
            advance(&mut tx, w, at, false)?;
            let ws = tx.wallet_req(w)?;
            Ok(WalletSnapshot::build(ws, lifecycle, at))
        })
    }

    /// The latest checkpoint of `w` at or before `at`: the layer's or the projection's.
    fn checkpoint_before(&self, w: u64, at: i64) -> Result<Option<Checkpoint>, StorageError> {
        let mut best = self.view.l2.checkpoint_before(w, at)?;
        if let Some(m) = self.view.mem.wallets.get(&w) {
            for cp in m.checkpoints.values().rev() {
                if cp.at <= at {
                    if best.as_ref().is_none_or(|b| b.seq < cp.seq) {
                        best = Some((**cp).clone());
                    }
                    break;
                }
            }
        }
        Ok(best)
    }

    /// Wallet `w` as of an instant before its last event: the nearest checkpoint at or before
    /// `at`, plus the figure deltas of the events after it up to `at` (at most
    /// [`crate::domain::state::CHECKPOINT_EVERY`]). Every event at or before `at` is included,
    /// and so is every transition due by then: one was recorded at its due time before the next
    /// event, which lies after `at`. Cost O(log n + K), never O(history).
    fn as_of(
        &self,
        w: u64,
        ws: WalletState,
        with_lifecycle: bool,
        at: i64,
    ) -> Result<WalletSnapshot, ReadError> {
        Self::existed_at(&ws, at)?;
        let mut start = match self.checkpoint_before(w, at)? {
            Some(c) => c,
            None => Checkpoint {
                seq: 0,
                at: ws.created_at,
                figures: vec![Figures::default(); ws.pockets.len()],
                methods: Vec::new(),
                cards: Vec::new(),
            },
        };
        let log = self.view.log()?;
        // The events after the checkpoint, fetched a checkpoint's span at a time: the one after
        // `at` ends the read, so its cost follows the span, not the history after `at`.
        let mut from = start.seq + 1;
        'events: while from <= ws.seq {
            let to = ws
                .seq
                .min(from + crate::domain::state::CHECKPOINT_EVERY - 1);
            for p in self.positions_between(w, from, to)? {
                let k = LogKey::event(p);
                let v = log
                    .get(k.tuple())
                    .map_err(StorageError::from)?
                    .ok_or_else(|| StorageError(format!("wallet {w}: log {k} is missing")))?;
                let bytes = v.value();
                let peek = logrec::peek_event(k, bytes)?;
                if peek.at > at {
                    break 'events;
                }
                if let Some(d) = peek.delta {
                    let f = start.figures.get_mut(d.pocket as usize).ok_or_else(|| {
                        StorageError(format!("wallet {w}: a delta names pocket {}", d.pocket))
                    })?;
                    d.add_to(f)
                        .map_err(|e| StorageError(format!("wallet {w}: {e}")))?;
                }
                if (peek.tag == Event::TAG_PAYMENT_METHOD_LINKED
                    || peek.tag == Event::TAG_CARD_ISSUED)
                    && let Body::Event { event, .. } = logrec::decode(k, bytes)?.body
                {
                    match event {
                        Event::PaymentMethodLinked(m) => start.methods.push(m),
                        Event::CardIssued(c) => start.cards.push(c),
                        _ => {}
                    }
                }
                start.at = peek.at;
            }
            from = to + 1;
        }
        let lifecycle = self.lifecycle_of(w, &ws)?;
        let status = lifecycle
            .iter()
            .filter(|l| l.at <= at)
            .fold(Status::Active, |_, l| match l.action {
                crate::model::LifecycleAction::Create | crate::model::LifecycleAction::Unfreeze => {
                    Status::Active
                }
                crate::model::LifecycleAction::Freeze => Status::Frozen,
                crate::model::LifecycleAction::Delete => Status::Closed,
            });
        let mut ws = ws;
        for (p, f) in ws.pockets.iter_mut().zip(start.figures) {
            p.figures = f;
        }
        ws.methods = start.methods;
        ws.cards = start.cards;
        ws.updated_at = start.at;
        ws.status = status;
        let lifecycle = if with_lifecycle {
            lifecycle
        } else {
            Vec::new()
        };
        Ok(WalletSnapshot::build(ws, lifecycle, at))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A short wallet row is an error, not a panic.
    #[test]
    fn a_short_wallet_row_is_an_error() {
        let _ = storage::WalletRow::number_of(&[]).unwrap_err();
    }
}
