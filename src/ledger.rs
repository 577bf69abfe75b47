//! The ledger handle: transactions, idempotency, the clock, and reads at any instant.
//!
//! Invariants kept here:
//! - a command runs in one redb write transaction; its events, the materialized state and its
//!   idempotency record commit together, durably ([`redb::Durability::Immediate`]), before
//!   `execute` returns `Ok` — or nothing is written at all;
//! - a read at an instant at or after a wallet's last event costs O(transitions due since),
//!   never O(history): it starts from the materialized state and derives due transitions in a
//!   throw-away overlay. Only a read *before* the last event replays the wallet's stream.

use crate::command::{Receipt, Request};
use crate::domain::apply::{advance, apply};
use crate::domain::state::{Backing, Empty, LifecycleRec, Scratch, Tx, WalletState};
use crate::domain::{self, IdSource};
use crate::error::{CommandError, ErrorCode, OpenError, ReadError, StorageError};
use crate::json::AmountNotes;
use crate::model::{
    Card, Figures, Holder, Instant, ParsedAmount, PaymentMethod, Program, Status, uuid_of,
};
use crate::storage::codec::{self, EventRecord};
use crate::storage::{self, ReadTables, WriteTables};
use chrono::{DateTime, Utc};
use redb::{Database, ReadableDatabase, ReadableTable};
use std::collections::{HashMap, VecDeque};
use std::path::Path;
use std::sync::{Arc, Mutex};
use uuid::Uuid;

/// Where "now" comes from. Inject a fixed clock in tests.
pub trait Clock: Send + Sync {
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

/// The database, closed under a guard: redb's close runs a last commit, which can panic on a
/// damaged file, and a handle going out of scope must not abort the embedding process.
struct Db(Option<Database>);

impl std::ops::Deref for Db {
    type Target = Database;
    fn deref(&self) -> &Database {
        self.0.as_ref().expect("present until dropped")
    }
}

impl std::ops::DerefMut for Db {
    fn deref_mut(&mut self) -> &mut Database {
        self.0.as_mut().expect("present until dropped")
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        if let Some(db) = self.0.take() {
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || drop(db)));
        }
    }
}

struct Inner {
    /// A read transaction with its tables open, kept between `read_wallet` calls while no group
    /// was committed since it began: opening a transaction and two tables was a fifth of a
    /// figures read. Declared first so it is dropped before the database it reads.
    idle_reader: Mutex<Option<(u64, Box<ReadTables>)>>,
    /// Groups that reached redb's commit (whatever its outcome). A reader kept from an earlier
    /// count may miss a commit and is not used again.
    commits: std::sync::atomic::AtomicU64,
    db: Db,
    clock: Box<dyn Clock>,
    /// Commands waiting for a group commit, in arrival order.
    queue: Mutex<VecDeque<Job>>,
    /// Held by the caller that is committing a group.
    commit: Mutex<()>,
    /// Completed groups (a generation counter), and the signal that one completed.
    groups: Mutex<u64>,
    group_done: std::sync::Condvar,
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

/// A handle on one ledger file. `Send + Sync` and cheap to clone: clones share the database.
/// Writes are serialized by redb; reads run concurrently with writes on consistent snapshots.
#[derive(Clone)]
pub struct Ledger {
    inner: Arc<Inner>,
}

/// The figures and profile of one wallet as of an instant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WalletSnapshot {
    pub as_of: Instant,
    pub wallet: Uuid,
    pub number: u64,
    pub holder: Uuid,
    pub program: u64,
    pub name: String,
    pub external_id: Option<String>,
    pub status: Status,
    pub created_at: Instant,
    /// Time of the last event at or before `as_of` (derived transitions included).
    pub updated_at: Instant,
    pub pockets: Vec<PocketSnapshot>,
    pub payment_methods: Vec<PaymentMethod>,
    pub cards: Vec<Card>,
    /// Lifecycle events at or before `as_of`.
    pub lifecycle: Vec<LifecycleEntry>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PocketSnapshot {
    pub pocket: String,
    pub name: String,
    pub kind: String,
    pub asset: String,
    pub scale: u32,
    pub number: u64,
    pub uuid: Uuid,
    /// In units at `scale`; see [`crate::model::units_to_decimal`].
    pub figures: Figures,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LifecycleEntry {
    pub action: crate::model::LifecycleAction,
    pub id: Uuid,
    pub at: Instant,
    pub reason: Option<String>,
}

/// One event of a wallet's history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HistoryEntry {
    pub seq: u64,
    pub position: u64,
    pub at: Instant,
    pub event: crate::domain::event::Event,
}

impl WalletSnapshot {
    fn build(ws: WalletState, lifecycle: Vec<LifecycleRec>, as_of: i64) -> WalletSnapshot {
        WalletSnapshot {
            as_of: Instant(as_of),
            wallet: uuid_of(ws.uuid),
            number: ws.number,
            holder: uuid_of(ws.holder),
            program: ws.program,
            name: ws.name,
            external_id: ws.external_id,
            status: ws.status,
            created_at: Instant(ws.created_at),
            updated_at: Instant(ws.updated_at),
            pockets: ws
                .pockets
                .into_iter()
                .map(|p| PocketSnapshot {
                    pocket: p.key,
                    name: p.name,
                    kind: p.kind,
                    asset: p.asset,
                    scale: p.scale,
                    number: p.number,
                    uuid: uuid_of(p.uuid),
                    figures: p.figures,
                })
                .collect(),
            payment_methods: ws.methods,
            cards: ws.cards,
            lifecycle: lifecycle
                .into_iter()
                .filter(|l| l.at <= as_of)
                .map(|l| LifecycleEntry {
                    action: l.action,
                    id: uuid_of(l.event_id),
                    at: Instant(l.at),
                    reason: l.reason,
                })
                .collect(),
        }
    }
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

impl Ledger {
    /// Opens (or creates) the ledger file at `path` with the system clock.
    pub fn open(path: impl AsRef<Path>) -> Result<Ledger, OpenError> {
        Ledger::open_with_clock(path, Box::new(SystemClock))
    }

    /// Opens (or creates) the ledger file with an injected clock.
    pub fn open_with_clock(
        path: impl AsRef<Path>,
        clock: Box<dyn Clock>,
    ) -> Result<Ledger, OpenError> {
        let path = path.as_ref();
        if path.exists() {
            return guard(|| {
                let db = Database::create(path).map_err(|e| OpenError::Storage(e.into()))?;
                Ledger::init(db, clock)
            });
        }
        // A new ledger is created under a temporary name and renamed into place once its first
        // commit is durable: a crash or I/O error during creation leaves no half-made file at
        // `path` that would refuse to open later.
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(format!(".creating-{}", std::process::id()));
        let tmp = std::path::PathBuf::from(tmp);
        let made = guard(|| {
            let db = Database::create(&tmp).map_err(|e| OpenError::Storage(e.into()))?;
            Ledger::init(db, clock)
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
    pub fn open_with_backend(
        backend: impl redb::StorageBackend,
        clock: Box<dyn Clock>,
    ) -> Result<Ledger, OpenError> {
        guard(|| {
            let db = Database::builder()
                .create_with_backend(backend)
                .map_err(|e| OpenError::Storage(e.into()))?;
            Ledger::init(db, clock)
        })
    }

    /// A ledger held in memory only (tests, examples).
    pub fn in_memory(clock: Box<dyn Clock>) -> Result<Ledger, OpenError> {
        Ledger::open_with_backend(redb::backends::InMemoryBackend::new(), clock)
    }

    fn init(db: Database, clock: Box<dyn Clock>) -> Result<Ledger, OpenError> {
        // Create every table and stamp the file format, or check it; a format 1 file is
        // migrated first, in a transaction of its own.
        if Ledger::format_of(&db)? == Some(1) {
            Ledger::migrate_v1(&db)?;
        }
        let txn = db.begin_write().map_err(StorageError::from)?;
        {
            let mut t = WriteTables::open(&txn)?;
            // Creates the tables a read transaction expects to find.
            t.open_all()?;
            let found = t
                .meta()?
                .get("schema")
                .map_err(StorageError::from)?
                .map(|v| v.value().to_vec());
            match found {
                None => {
                    t.meta_mut()?
                        .insert("schema", &storage::FORMAT_VERSION.to_be_bytes()[..])
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
        Ok(Ledger {
            inner: Arc::new(Inner {
                idle_reader: Mutex::new(None),
                commits: std::sync::atomic::AtomicU64::new(0),
                db: Db(Some(db)),
                clock,
                queue: Mutex::new(VecDeque::new()),
                commit: Mutex::new(()),
                groups: Mutex::new(0),
                group_done: std::sync::Condvar::new(),
                callers: std::sync::atomic::AtomicUsize::new(0),
                arrived: std::sync::Condvar::new(),
                leased: Arc::new(std::sync::atomic::AtomicUsize::new(0)),
                observer: std::sync::RwLock::new(None),
            }),
        })
    }

    /// The file format a file is stamped with; `None` for a new (empty) file.
    fn format_of(db: &Database) -> Result<Option<u32>, OpenError> {
        let txn = db.begin_read().map_err(StorageError::from)?;
        let meta = match txn.open_table(storage::META) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(StorageError::from(e).into()),
        };
        match meta.get("schema").map_err(StorageError::from)? {
            Some(v) => Ok(Some(format_marker(v.value())?)),
            None => Ok(None),
        }
    }

    /// Rewrites a format 1 file's keys into format 2 and stamps it, in one durable write
    /// transaction (`storage::migrate`): a failure leaves the format 1 file as it was, and the
    /// next open migrates it again.
    fn migrate_v1(db: &Database) -> Result<(), OpenError> {
        // The snapshot the rewrite reads, begun before the write transaction (no commit in
        // between: this handle is not shared yet).
        let old = db.begin_read().map_err(StorageError::from)?;
        let txn = db.begin_write().map_err(StorageError::from)?;
        storage::migrate::v1_to_v2(&old, &txn)?;
        drop(old);
        txn.open_table(storage::META)
            .map_err(StorageError::from)?
            .insert("schema", &storage::FORMAT_VERSION.to_be_bytes()[..])
            .map_err(StorageError::from)?;
        txn.commit().map_err(StorageError::from)?;
        Ok(())
    }

    /// The clock's current instant.
    pub fn now(&self) -> DateTime<Utc> {
        self.inner.clock.now()
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
    /// waiting commands into one write transaction and one fsync. Each command runs under its
    /// own savepoint, so one that fails is rolled back alone and never fails the others; every
    /// caller is answered only after the commit that holds its command is durable.
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
            });
        }
        self.inner.arrived.notify_all();
        loop {
            if let Some(r) = lock(&slot).take() {
                return r;
            }
            // The generation of completed groups before trying to lead: waiting below until it
            // moves cannot miss a group that completes in between.
            let seen = *lock(&self.inner.groups);
            let leader = match self.inner.commit.try_lock() {
                Ok(g) => Some(g),
                // Poisoned only if a panic escaped a group (guard() catches them); leading on
                // is still safe, the lock protects no data.
                Err(std::sync::TryLockError::Poisoned(e)) => Some(e.into_inner()),
                Err(std::sync::TryLockError::WouldBlock) => None,
            };
            let led = match leader {
                Some(_leader) => {
                    let jobs: Vec<Job> = {
                        let mut q = self.gather();
                        let n = q.len().min(MAX_GROUP_COMMANDS);
                        q.drain(..n).collect()
                    };
                    if !jobs.is_empty() {
                        let answered = Answer(&jobs);
                        let started = std::time::Instant::now();
                        let results = guard(|| self.commit_group(&jobs));
                        let stats = CommitStats {
                            commands: jobs.len(),
                            elapsed: started.elapsed(),
                        };
                        // Before anyone is answered, so that a read that follows an answer
                        // cannot run on a transaction that began before the commit.
                        self.retire_readers();
                        answered.fill(results);
                        self.observe(&stats);
                    }
                    true
                }
                None => false,
            };
            if led {
                // Announced only after the commit lock is released: a caller that saw the old
                // generation and failed to lead is then sure to see it move.
                *lock(&self.inner.groups) += 1;
                self.inner.group_done.notify_all();
                continue;
            }
            // Another caller is committing a group, perhaps with this command in it: wait for it
            // to finish rather than queueing on the commit lock (answered callers queued there
            // would hand the lock on one at a time and shrink every later group to one command).
            let mut g = lock(&self.inner.groups);
            while *g == seen {
                g = self
                    .inner
                    .group_done
                    .wait(g)
                    .unwrap_or_else(|e| e.into_inner());
            }
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

    /// The queue, once every caller inside `submit` has queued its command, or after
    /// `GATHER_WAIT_US`. Why wait: callers answered by the previous group resubmit within
    /// microseconds, and a leader that starts at once commits a group of one or two, then the
    /// rest pay a second commit (groups alternated 2 and 14 under 16 threads). A lone caller
    /// never waits (it is the only caller and has queued), nor does one whose peers are doing
    /// other work (they are not inside `submit`).
    fn gather(&self) -> std::sync::MutexGuard<'_, VecDeque<Job>> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_micros(GATHER_WAIT_US);
        let mut q = lock(&self.inner.queue);
        loop {
            let callers = self.inner.callers.load(std::sync::atomic::Ordering::SeqCst);
            let now = std::time::Instant::now();
            if q.len() >= callers.min(MAX_GROUP_COMMANDS) || now >= deadline {
                return q;
            }
            q = self
                .inner
                .arrived
                .wait_timeout(q, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Runs `jobs` in one write transaction. `Err` (storage) fails the whole group.
    fn commit_group(
        &self,
        jobs: &[Job],
    ) -> Result<Vec<Result<Receipt, CommandError>>, CommandError> {
        let txn = self.inner.db.begin_write()?;
        let mut keys: HashMap<String, (Fingerprint, Receipt)> = HashMap::new();
        let results = {
            let mut t = WriteTables::open(&txn)?;
            let (results, changes) = {
                let mut tx = Tx::new(&t)?;
                let mut results = Vec::with_capacity(jobs.len());
                for job in jobs {
                    let fp = job
                        .req
                        .key
                        .as_ref()
                        .map(|_| Fingerprint::of(&job.req, &job.notes));
                    let r = match (&job.req.key, &fp) {
                        (Some(k), Some(fp)) => match keys.get(k) {
                            Some((seen, receipt)) => {
                                Some(replay_answer(k, seen, fp, receipt.clone()))
                            }
                            None => idempotent_answer(&t, k, fp)?,
                        },
                        _ => None,
                    };
                    let r = match r {
                        Some(answer) => answer,
                        None => {
                            domain::execute(&mut tx, &job.req, &job.notes, job.now, &mut RandomIds)
                        }
                    };
                    match &r {
                        Err(e) if e.code == ErrorCode::Storage => return Err(e.clone()),
                        Ok(receipt) if !receipt.replayed => {
                            if let (Some(k), Some(fp)) = (&job.req.key, fp) {
                                keys.insert(k.clone(), (fp, receipt.clone()));
                            }
                        }
                        _ => {}
                    }
                    results.push(r);
                }
                (results, tx.into_changes()?)
            };
            if changes.events.is_empty() && keys.is_empty() && changes.sweep_exact.is_empty() {
                // Nothing to make durable: every command failed or was a replay.
                drop(t);
                txn.abort()?;
                return Ok(results);
            }
            t.write(changes)?;
            for (k, (fp, receipt)) in keys {
                let mut v = fp.hash.to_vec();
                v.extend_from_slice(&codec::encode(&(fp.instants, receipt)));
                t.idem_mut()?.insert(k.as_str(), &v[..])?;
            }
            results
        };
        txn.commit()?;
        Ok(results)
    }

    /// Executes a command given as one JSON line (SPEC §9).
    pub fn execute_line(&self, line: &str) -> Result<Receipt, CommandError> {
        match crate::json::parse_line_noted(line) {
            Ok((req, notes)) => self.submit(req, notes),
            Err((Some(key), e)) => {
                // Step 0 first: a known key with a command that does not even parse cannot be
                // the command stored under it.
                let txn = self.inner.db.begin_read()?;
                let t = ReadTables::open(txn)?;
                if t.idem()?.get(key.as_str()).ok().flatten().is_some() {
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

    /// A consistent read view of the ledger at one moment.
    pub fn reader(&self) -> Result<Reader, StorageError> {
        guard(|| {
            let txn = self.inner.db.begin_read()?;
            let t = Box::new(ReadTables::open(txn)?);
            Ok(Reader {
                t,
                now: self.now(),
                _lease: Some(Lease::take(&self.inner.leased)),
            })
        })
    }

    /// The wallet's figures and profile as of `as_of` (default: now).
    pub fn snapshot(
        &self,
        wallet: Uuid,
        as_of: Option<DateTime<Utc>>,
    ) -> Result<WalletSnapshot, ReadError> {
        self.read_wallet(wallet, |r, w| r.snapshot(w, as_of))
    }

    /// The wallet's figures as of `as_of` (default: now), without its lifecycle events: the
    /// cheapest read of current figures.
    pub fn figures(
        &self,
        wallet: Uuid,
        as_of: Option<DateTime<Utc>>,
    ) -> Result<WalletSnapshot, ReadError> {
        self.read_wallet(wallet, |r, w| r.figures(w, as_of))
    }

    /// Runs `f` on a reader that sees every commit made before the call, and the wallet's number
    /// (`unknown_wallet` when there is none).
    fn read_wallet<T>(
        &self,
        wallet: Uuid,
        f: impl FnOnce(&Reader, u64) -> Result<T, ReadError>,
    ) -> Result<T, ReadError> {
        guard(|| {
            let (r, generation) = self.current_reader()?;
            let out = r
                .wallet_number(wallet)
                .map_err(ReadError::from)
                .and_then(|w| w.ok_or_else(|| ReadError::UnknownWallet(wallet.to_string())))
                .and_then(|w| f(&r, w));
            self.keep_reader(r, generation);
            out
        })
    }

    /// The idle reader if no group was committed since it began, else a fresh one; with the
    /// commit count it is current for.
    fn current_reader(&self) -> Result<(Reader, u64), StorageError> {
        use std::sync::atomic::Ordering::SeqCst;
        // Read before the transaction begins: a commit counted after this may or may not be in
        // the snapshot, which is then only kept if no commit was counted meanwhile.
        let generation = self.inner.commits.load(SeqCst);
        let idle = lock(&self.inner.idle_reader).take();
        let t = match idle {
            Some((g, t)) if g == generation => t,
            _ => Box::new(ReadTables::open(self.inner.db.begin_read()?)?),
        };
        Ok((
            Reader {
                t,
                now: self.now(),
                _lease: None,
            },
            generation,
        ))
    }

    /// Keeps `r` for the next read if no group was committed since `generation`.
    fn keep_reader(&self, r: Reader, generation: u64) {
        use std::sync::atomic::Ordering::SeqCst;
        let mut t = r.t;
        t.forget_cursors();
        let mut idle = lock(&self.inner.idle_reader);
        // Checked under the lock `retire_readers` takes after counting, so a reader that began
        // before a commit is either refused here or dropped there.
        if self.inner.commits.load(SeqCst) == generation {
            *idle = Some((generation, t));
        }
    }

    /// Counts a commit and drops the idle reader, whose snapshot may predate it (and would keep
    /// redb from reusing the pages the commit freed).
    fn retire_readers(&self) {
        use std::sync::atomic::Ordering::SeqCst;
        self.inner.commits.fetch_add(1, SeqCst);
        let stale = lock(&self.inner.idle_reader).take();
        drop(stale);
    }

    /// Every event of a wallet, in order.
    pub fn history(&self, wallet: Uuid) -> Result<Vec<HistoryEntry>, ReadError> {
        self.read_wallet(wallet, |r, w| {
            Ok(r.events(w)?
                .into_iter()
                .map(|(seq, rec)| HistoryEntry {
                    seq,
                    position: rec.position,
                    at: Instant(rec.at),
                    event: rec.event,
                })
                .collect())
        })
    }

    /// Replays the whole log and compares it with the materialized state; see [`crate::verify`].
    pub fn verify(&self) -> Result<crate::verify::Report, StorageError> {
        guard(|| {
            let txn = self.inner.db.begin_read()?;
            let t = ReadTables::open(txn)?;
            crate::verify::verify(&t)
        })
    }

    /// Compacts the file the way SQLite's `VACUUM` does: every table is rebuilt with its B-tree
    /// leaves packed full, then the pages are moved to the front of the file and the file is
    /// truncated. Needs the only handle on the ledger (no clone alive) and no [`Reader`] from
    /// [`Ledger::reader`] still open (redb cannot move pages under a read transaction); either
    /// is refused before anything is written.
    ///
    /// redb splits a full leaf in two halves, so tables written in random key order (many
    /// wallets, interleaved) fill their leaves about half; redb's own compaction moves pages but
    /// never repacks a leaf. Here, in one write transaction, each table is deleted and written
    /// again in key order from a read transaction begun before it (streamed, ~1 MiB buffered at a
    /// time: memory does not grow with the file); that transaction commits durably (two-phase),
    /// then redb's compaction moves the packed pages into the space the old ones left.
    ///
    /// **Space**: the old pages are freed only by that commit, so the rebuilt tables (about the
    /// live data: the size the file has after compaction) are written beside them first, and
    /// redb extends a file smaller than 4 GiB by doubling it. Plan for up to twice the file's
    /// size while it runs (a 657 MB file peaked at 1.31 GB and ended at 425 MB).
    ///
    /// **Failure and crashes**: the rebuild is one transaction. An error before it commits (I/O,
    /// a full disk) aborts it and a crash before it is durable rolls it back: the file holds
    /// exactly what it held. After the commit only pages move, each step its own transaction, so
    /// an error or crash then leaves the rebuilt (same) data in a file that is not yet as small
    /// as it can be. After an error, drop the handle and open the file again (redb refuses
    /// further writes on a handle after an I/O error), then `compact` again to finish. A refusal
    /// (a clone or a `Reader` alive) writes nothing and leaves the handle as usable as before.
    pub fn compact(&mut self) -> Result<(), StorageError> {
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
        // Compaction needs no transaction in progress.
        *inner
            .idle_reader
            .get_mut()
            .unwrap_or_else(|e| e.into_inner()) = None;
        guard(|| {
            let db = &mut inner.db;
            {
                let old = db.begin_read().map_err(|e| {
                    StorageError(format!("compaction: cannot begin a read transaction: {e}"))
                })?;
                let mut new = db.begin_write().map_err(|e| {
                    StorageError(format!("compaction: cannot begin a write transaction: {e}"))
                })?;
                new.set_two_phase_commit(true);
                let rebuilt = crate::storage::pack::rebuild(&old, &new);
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
            Ok(())
        })
    }
}

/// Runs `f`, turning a panic into a `storage` error. redb trusts the lengths it finds in pages it
/// reads (it checks page checksums only when repairing after a crash), so a damaged file can make
/// it panic; an embedding process must get an error it can report, not an abort.
fn guard<T, E: From<StorageError>>(f: impl FnOnce() -> Result<T, E>) -> Result<T, E> {
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
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic elsewhere must not wedge every later caller: the data under these locks (a queue
    // and answer slots) stays consistent across a panic.
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
                }
            }
            Err(e) => {
                for job in self.0 {
                    *lock(&job.slot) = Some(Err(e.clone()));
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

fn idempotent_answer(
    t: &WriteTables,
    key: &str,
    fp: &Fingerprint,
) -> Result<Option<Result<Receipt, CommandError>>, CommandError> {
    let Some(v) = t.idem()?.get(key)? else {
        return Ok(None);
    };
    let v = v.value();
    if v.len() < 32 {
        return Err(StorageError(format!("idempotency record of key {key:?} is truncated")).into());
    }
    let mut hash = [0u8; 32];
    hash.copy_from_slice(&v[..32]);
    let (instants, receipt): (Vec<Option<i64>>, Receipt) =
        codec::decode("idempotency record", &v[32..])?;
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

/// A consistent read-only view (one redb read transaction). Views and the CLI read through it.
pub struct Reader {
    /// Boxed: the tables are large, and a kept reader moves in and out of the idle slot.
    t: Box<ReadTables>,
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
    /// The instant reads default to.
    pub fn now(&self) -> DateTime<Utc> {
        self.now
    }

    pub fn wallet_number(&self, id: Uuid) -> Result<Option<u64>, StorageError> {
        self.t.wallet_by_uuid(*id.as_bytes())
    }
    pub fn wallet_by_external(&self, ext: &str) -> Result<Option<u64>, StorageError> {
        self.t.wallet_by_external(ext)
    }
    pub fn wallet_by_card(&self, card: &str) -> Result<Option<u64>, StorageError> {
        self.t.wallet_by_card(card)
    }
    pub fn holder(&self, id: Uuid) -> Result<Option<Holder>, StorageError> {
        self.t.holder(*id.as_bytes())
    }
    pub fn holder_by_identity(&self, identity: &str) -> Result<Option<Uuid>, StorageError> {
        Ok(self.t.holder_by_identity(identity)?.map(uuid_of))
    }
    pub fn holder_by_email(&self, email: &str) -> Result<Option<Uuid>, StorageError> {
        Ok(self
            .t
            .holder_by_email(&crate::model::normalize_email(email))?
            .map(uuid_of))
    }
    pub fn program(&self, id: u64) -> Result<Option<Program>, StorageError> {
        self.t.program(id)
    }
    /// Wallet numbers of a holder, in opening order.
    pub fn wallets_of(&self, holder: Uuid) -> Result<Vec<u64>, StorageError> {
        self.t.wallets_of(*holder.as_bytes())
    }

    /// A stream's events with their sequence numbers, decoded (no checksum verification).
    pub fn events(&self, stream: u64) -> Result<Vec<(u64, EventRecord)>, StorageError> {
        guard(|| self.events_inner(stream))
    }

    fn events_inner(&self, stream: u64) -> Result<Vec<(u64, EventRecord)>, StorageError> {
        let mut out = Vec::new();
        self.each_event(stream, 1, |seq, bytes| {
            let (rec, _) = codec::decode_event("event", bytes)
                .map_err(|e| StorageError(format!("stream {stream} event {seq}: {}", e.0)))?;
            out.push((seq, rec));
            Ok(true)
        })?;
        Ok(out)
    }

    /// Calls `f(seq, record bytes)` for the events of `stream` from sequence `from`, in order,
    /// until it returns `false`. The record names itself only on error: no per-event formatting.
    fn each_event(
        &self,
        stream: u64,
        from: u64,
        mut f: impl FnMut(u64, &[u8]) -> Result<bool, StorageError>,
    ) -> Result<(), StorageError> {
        // Stored newest first: ascending sequence numbers are the range reversed.
        let (lo, hi) = crate::storage::event_bounds(stream, from, u64::MAX);
        for r in self.t.rows()?.range::<&[u8]>(&lo[..]..=&hi[..])?.rev() {
            let (k, v) = r?;
            let (_, seq) = crate::storage::event_of(k.value())
                .ok_or_else(|| StorageError("event key of the wrong size".into()))?;
            if !f(seq, v.value())? {
                break;
            }
        }
        Ok(())
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

    /// Wallet `w` as of `as_of` (default: the reader's now).
    pub fn snapshot(
        &self,
        w: u64,
        as_of: Option<DateTime<Utc>>,
    ) -> Result<WalletSnapshot, ReadError> {
        guard(|| self.snapshot_inner(w, as_of, true))
    }

    /// Like [`Reader::snapshot`] without the lifecycle events (left empty): the figures-only read
    /// for hot paths, one table fewer.
    pub fn figures(
        &self,
        w: u64,
        as_of: Option<DateTime<Utc>>,
    ) -> Result<WalletSnapshot, ReadError> {
        guard(|| self.snapshot_inner(w, as_of, false))
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
        let ws = self
            .t
            .wallet(w)?
            .ok_or_else(|| ReadError::UnknownWallet(format!("number {w}")))?;
        if at >= ws.updated_at {
            let lifecycle = if with_lifecycle {
                self.t.lifecycle_of(w)?
            } else {
                Vec::new()
            };
            // Materialized state plus transitions due since the last event: O(due), no replay,
            // and nothing at all when the earliest pending transition lies after `at`.
            if ws.next_due.is_none_or(|d| d > at) {
                return Ok(WalletSnapshot::build(ws, lifecycle, at));
            }
            let mut tx = Tx::reading(&*self.t, take_scratch());
            tx.seed_wallet(ws);
            advance(&mut tx, w, at, false)?;
            // The overlay is discarded: move the header out rather than clone it.
            let ws = tx.take_wallet(w)?;
            // Not on an error path above: that overlay's containers are simply dropped.
            keep_scratch(tx.into_scratch());
            return Ok(WalletSnapshot::build(ws, lifecycle, at));
        }
        self.as_of(w, ws, with_lifecycle, at)
    }

    /// Wallet `w` as of `as_of`, always by replaying its stream from the first event, never from
    /// the materialized state. `verify` and the property tests compare it with [`Reader::snapshot`].
    pub fn snapshot_replayed(
        &self,
        w: u64,
        as_of: DateTime<Utc>,
    ) -> Result<WalletSnapshot, ReadError> {
        guard(|| self.snapshot_replayed_inner(w, as_of))
    }

    fn snapshot_replayed_inner(
        &self,
        w: u64,
        as_of: DateTime<Utc>,
    ) -> Result<WalletSnapshot, ReadError> {
        let at = Instant::from_datetime(as_of)
            .ok_or_else(|| ReadError::InvalidTime(format!("{as_of} is outside 1677..2262")))?
            .0;
        let ws = self
            .t
            .wallet(w)?
            .ok_or_else(|| ReadError::UnknownWallet(format!("number {w}")))?;
        let lifecycle = self.t.lifecycle_of(w)?;
        self.replay(w, &ws, lifecycle, at)
    }

    /// Wallet `w` as of an instant before its last event: the nearest checkpoint at or before
    /// `at`, plus the figure deltas of the events after it up to `at` (at most
    /// [`crate::storage::CHECKPOINT_EVERY`] and one transaction's). Every event at or before `at`
    /// is included, and so is every transition due by then: one was recorded at its due time
    /// before the next event, which lies after `at`. Cost O(log n + K), never O(history).
    fn as_of(
        &self,
        w: u64,
        ws: WalletState,
        with_lifecycle: bool,
        at: i64,
    ) -> Result<WalletSnapshot, ReadError> {
        use crate::domain::event::Event;
        use crate::storage::{Checkpoint, checkpoint_key};
        Self::existed_at(&ws, at)?;
        let lo = checkpoint_key(w, i64::MIN, 0);
        let hi = checkpoint_key(w, at, u64::MAX);
        let cp: Option<Checkpoint> = match self
            .t
            .rows()?
            .range::<&[u8]>(&lo[..]..=&hi[..])
            .map_err(StorageError::from)?
            .next_back()
        {
            Some(r) => Some(codec::decode(
                "checkpoint",
                r.map_err(StorageError::from)?.1.value(),
            )?),
            None => None,
        };
        let mut start = match cp {
            Some(c) => c,
            None => Checkpoint {
                seq: 0,
                at: ws.created_at,
                figures: vec![Figures::default(); ws.pockets.len()],
                methods: Vec::new(),
                cards: Vec::new(),
            },
        };
        self.each_event(w, start.seq + 1, |seq, bytes| {
            let (eat, delta, tag) = codec::peek_event(bytes)
                .map_err(|e| StorageError(format!("wallet {w} event {seq}: {}", e.0)))?;
            if eat > at {
                return Ok(false);
            }
            if let Some(d) = delta {
                let f = start.figures.get_mut(d.pocket as usize).ok_or_else(|| {
                    StorageError(format!("wallet {w}: a delta names pocket {}", d.pocket))
                })?;
                d.add_to(f)
                    .map_err(|e| StorageError(format!("wallet {w}: {e}")))?;
            }
            if tag == Event::TAG_PAYMENT_METHOD_LINKED || tag == Event::TAG_CARD_ISSUED {
                let (rec, _) = codec::decode_event("event", bytes)
                    .map_err(|e| StorageError(format!("wallet {w}: {}", e.0)))?;
                match rec.event {
                    Event::PaymentMethodLinked(m) => start.methods.push(m),
                    Event::CardIssued(c) => start.cards.push(c),
                    _ => {}
                }
            }
            start.at = eat;
            Ok(true)
        })?;
        let lifecycle = self.t.lifecycle_of(w)?;
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

    fn replay(
        &self,
        w: u64,
        ws: &WalletState,
        lifecycle: Vec<LifecycleRec>,
        at: i64,
    ) -> Result<WalletSnapshot, ReadError> {
        Self::existed_at(ws, at)?;
        let empty = Empty;
        let mut tx = Tx::without_undo(&empty)?;
        // Stream the wallet's events, stopping at the first one after `at`.
        self.each_event(w, 1, |seq, bytes| {
            let (rec, _) = codec::decode_event("event", bytes)
                .map_err(|e| StorageError(format!("wallet {w} event {seq}: {}", e.0)))?;
            if rec.at > at {
                return Ok(false);
            }
            apply(&mut tx, w, rec.at, &rec.event)?;
            Ok(true)
        })?;
        advance(&mut tx, w, at, false)?;
        let ws = tx.wallet_req(w)?;
        Ok(WalletSnapshot::build(ws, lifecycle, at))
    }
}

/// Helper for views: a figure as an exact decimal.
pub fn decimal(units: u128, scale: u32) -> rust_decimal::Decimal {
    crate::model::units_to_decimal(units, scale)
}
