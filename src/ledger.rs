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
use crate::domain::state::{Backing, Empty, LifecycleRec, Tx, WalletState};
use crate::domain::{self, IdSource};
use crate::error::{CommandError, ErrorCode, OpenError, ReadError, StorageError};
use crate::model::{Card, Figures, Holder, Instant, PaymentMethod, Program, Status, uuid_of};
use crate::storage::codec::{self, EventRecord};
use crate::storage::{ReadTables, WriteTables};
use chrono::{DateTime, Utc};
use redb::{Database, ReadableDatabase, ReadableTable};
use std::path::Path;
use std::sync::Arc;
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

struct Inner {
    db: Database,
    clock: Box<dyn Clock>,
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

fn fingerprint(req: &Request) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    let text = crate::json::canonical(req);
    Sha256::digest(text.as_bytes()).into()
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
        let db = Database::create(path).map_err(|e| OpenError::Storage(e.into()))?;
        Ledger::init(db, clock)
    }

    /// Opens a ledger over any redb storage backend (in-memory, fault-injecting, …).
    pub fn open_with_backend(
        backend: impl redb::StorageBackend,
        clock: Box<dyn Clock>,
    ) -> Result<Ledger, OpenError> {
        let db = Database::builder()
            .create_with_backend(backend)
            .map_err(|e| OpenError::Storage(e.into()))?;
        Ledger::init(db, clock)
    }

    /// A ledger held in memory only (tests, examples).
    pub fn in_memory(clock: Box<dyn Clock>) -> Result<Ledger, OpenError> {
        Ledger::open_with_backend(redb::backends::InMemoryBackend::new(), clock)
    }

    fn init(db: Database, clock: Box<dyn Clock>) -> Result<Ledger, OpenError> {
        // Create every table and stamp the schema version, or check it.
        let txn = db.begin_write().map_err(StorageError::from)?;
        {
            let mut t = WriteTables::open(&txn)?;
            let found = t
                .meta
                .get("schema")
                .map_err(StorageError::from)?
                .map(|v| v.value().to_vec());
            match found {
                None => {
                    t.meta
                        .insert(
                            "schema",
                            &u32::from(codec::SCHEMA_VERSION).to_be_bytes()[..],
                        )
                        .map_err(StorageError::from)?;
                }
                Some(v) => {
                    let found = v
                        .as_slice()
                        .try_into()
                        .map(u32::from_be_bytes)
                        .map_err(|_| StorageError("schema marker is corrupt".into()))?;
                    if found != u32::from(codec::SCHEMA_VERSION) {
                        return Err(OpenError::UnsupportedSchema {
                            found,
                            supported: u32::from(codec::SCHEMA_VERSION),
                        });
                    }
                }
            }
        }
        txn.commit().map_err(StorageError::from)?;
        Ok(Ledger {
            inner: Arc::new(Inner { db, clock }),
        })
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
    pub fn execute(&self, req: &Request) -> Result<Receipt, CommandError> {
        let now = self.now_ns()?;
        let txn = self.inner.db.begin_write()?;
        let receipt = {
            let mut t = WriteTables::open(&txn)?;
            let fp = req.key.as_ref().map(|_| fingerprint(req));
            if let (Some(k), Some(fp)) = (&req.key, &fp)
                && let Some(r) = idempotent_answer(&t, k, fp)?
            {
                return r;
            }
            let (receipt, changes) = {
                let mut tx = Tx::new(&t)?;
                let receipt = domain::execute(&mut tx, req, now, &mut RandomIds)?;
                (receipt, tx.into_changes())
            };
            t.write(changes)?;
            if let (Some(k), Some(fp)) = (&req.key, &fp) {
                let mut v = fp.to_vec();
                v.extend_from_slice(&codec::encode(&receipt));
                t.idem.insert(k.as_str(), &v[..])?;
            }
            receipt
        };
        txn.commit()?;
        Ok(receipt)
    }

    /// Executes a command given as one JSON line (SPEC §9).
    pub fn execute_line(&self, line: &str) -> Result<Receipt, CommandError> {
        match crate::json::parse_line(line) {
            Ok(req) => self.execute(&req),
            Err((Some(key), e)) => {
                // Step 0 first: a known key with a command that does not even parse cannot be
                // the command stored under it.
                let txn = self.inner.db.begin_read()?;
                let t = ReadTables::open(&txn)?;
                if t.idem.get(key.as_str()).ok().flatten().is_some() {
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
        let txn = self.inner.db.begin_read()?;
        let t = ReadTables::open(&txn)?;
        Ok(Reader { t, now: self.now() })
    }

    /// The wallet's figures and profile as of `as_of` (default: now).
    pub fn snapshot(
        &self,
        wallet: Uuid,
        as_of: Option<DateTime<Utc>>,
    ) -> Result<WalletSnapshot, ReadError> {
        let r = self.reader()?;
        let w = r
            .wallet_number(wallet)?
            .ok_or_else(|| ReadError::UnknownWallet(wallet.to_string()))?;
        r.snapshot(w, as_of)
    }

    /// Every event of a wallet, in order.
    pub fn history(&self, wallet: Uuid) -> Result<Vec<HistoryEntry>, ReadError> {
        let r = self.reader()?;
        let w = r
            .wallet_number(wallet)?
            .ok_or_else(|| ReadError::UnknownWallet(wallet.to_string()))?;
        Ok(r.events(w)?
            .into_iter()
            .map(|(seq, rec)| HistoryEntry {
                seq,
                position: rec.position,
                at: Instant(rec.at),
                event: rec.event,
            })
            .collect())
    }

    /// Replays the whole log and compares it with the materialized state; see [`crate::verify`].
    pub fn verify(&self) -> Result<crate::verify::Report, StorageError> {
        let txn = self.inner.db.begin_read()?;
        let t = ReadTables::open(&txn)?;
        crate::verify::verify(&t)
    }

    /// Compacts the file (exclusive access needed: no other clone may be alive).
    pub fn compact(self) -> Result<bool, StorageError> {
        let mut inner = Arc::try_unwrap(self.inner)
            .map_err(|_| StorageError("compact needs the only handle on the ledger".into()))?;
        inner
            .db
            .compact()
            .map_err(|e| StorageError(format!("compaction failed: {e}")))
    }
}

fn idempotent_answer(
    t: &WriteTables,
    key: &str,
    fp: &[u8; 32],
) -> Result<Option<Result<Receipt, CommandError>>, CommandError> {
    let Some(v) = t.idem.get(key)? else {
        return Ok(None);
    };
    let v = v.value();
    if v.len() < 32 {
        return Err(StorageError(format!("idempotency record of key {key:?} is truncated")).into());
    }
    if &v[..32] != fp {
        return Ok(Some(Err(CommandError::new(
            ErrorCode::IdempotencyConflict,
            format!(
                "key {} was used for a different command",
                crate::model::quoted(key)
            ),
        ))));
    }
    let mut r: Receipt = codec::decode("idempotency receipt", &v[32..])?;
    r.replayed = true;
    Ok(Some(Ok(r)))
}

/// A consistent read-only view (one redb read transaction). Views and the CLI read through it.
pub struct Reader {
    t: ReadTables,
    now: DateTime<Utc>,
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
        let lo = crate::storage::codec::k_ww(stream, 0);
        let hi = crate::storage::codec::k_ww(stream, u64::MAX);
        let mut out = Vec::new();
        for r in self.t.events.range::<&[u8]>(&lo[..]..=&hi[..])? {
            let (k, v) = r?;
            let seq = u64::from_be_bytes(
                k.value()[8..16]
                    .try_into()
                    .map_err(|_| StorageError("event key of the wrong size".into()))?,
            );
            let (rec, _) = codec::decode_event(&format!("stream {stream} event {seq}"), v.value())?;
            out.push((seq, rec));
        }
        Ok(out)
    }

    /// Wallet `w` as of `as_of` (default: the reader's now).
    pub fn snapshot(
        &self,
        w: u64,
        as_of: Option<DateTime<Utc>>,
    ) -> Result<WalletSnapshot, ReadError> {
        let t = as_of.unwrap_or(self.now);
        let at = Instant::from_datetime(t)
            .ok_or_else(|| ReadError::InvalidTime(format!("{t} is outside 1677..2262")))?
            .0;
        let ws = self
            .t
            .wallet(w)?
            .ok_or_else(|| ReadError::UnknownWallet(format!("number {w}")))?;
        let lifecycle = self.t.lifecycle_of(w)?;
        if at >= ws.updated_at {
            // Materialized state plus transitions due since the last event: O(due), no replay.
            let mut tx = Tx::new(&self.t)?;
            advance(&mut tx, w, at, false)?;
            let ws = tx.wallet_req(w)?;
            return Ok(WalletSnapshot::build(ws, lifecycle, at));
        }
        self.replay(w, &ws, lifecycle, at)
    }

    /// Wallet `w` as of `as_of`, always by replaying its stream from the first event, never from
    /// the materialized state. `verify` and the property tests compare it with [`Reader::snapshot`].
    pub fn snapshot_replayed(
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

    fn replay(
        &self,
        w: u64,
        ws: &WalletState,
        lifecycle: Vec<LifecycleRec>,
        at: i64,
    ) -> Result<WalletSnapshot, ReadError> {
        if at < ws.created_at {
            return Err(ReadError::UnknownWallet(format!(
                "{} did not exist yet at {}",
                uuid_of(ws.uuid),
                Instant(at)
            )));
        }
        let empty = Empty;
        let mut tx = Tx::new(&empty)?;
        for (_, rec) in self.events(w)? {
            if rec.at > at {
                break;
            }
            apply(&mut tx, w, rec.at, &rec.event)?;
            tx.forget_undo();
        }
        advance(&mut tx, w, at, false)?;
        let ws = tx.wallet_req(w)?;
        Ok(WalletSnapshot::build(ws, lifecycle, at))
    }
}

/// Helper for views: a figure as an exact decimal.
pub fn decimal(units: u128, scale: u32) -> rust_decimal::Decimal {
    crate::model::units_to_decimal(units, scale)
}
