//! Shared workloads for the criterion benches (`benches/*.rs`), `examples/perf_report.rs` and
//! `examples/layout_probe.rs`, and the interleaved-measurement harness of the two examples.
//!
//! Three engines run the same operations:
//! - **ours**: wallet-ledger through its public API (`Ledger::execute`, `Ledger::snapshot`);
//! - **theirs**: SQLite (rusqlite, bundled) with the schema, indexes and statements we would ship
//!   for the same semantics (lots with expiry, redemptions consuming lots in earliest-expiry order
//!   inside one transaction, due expiries recorded before each command, balance reads that derive
//!   expiries due since the last event). WAL, `synchronous=FULL`, prepared statements;
//! - **raw**: redb with no ledger logic — the same number of durable commits inserting comparable
//!   bytes: the floor the storage engine sets.
//!
//! The operation mix: every wallet alternates `credit 100.00` (a lot expiring 6 hours later) and
//! `redeem 30.00`, one command per minute of ledger time, so lots expire mid-history and every
//! command first records the expiries due on its wallet (SPEC §4.2) — on both engines.
//!
//! Fixtures are cached in `target/bench-fixtures/`, keyed by their size, so repeated runs reuse
//! them; each append run works on a fresh copy.

#![allow(dead_code)]

use chrono::{DateTime, TimeZone, Utc};
use redb::{ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};
use rusqlite::config::DbConfig;
use rusqlite::{Connection, OptionalExtension, params};
use rust_decimal::Decimal;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use uuid::Uuid;
use wallet_ledger::command::{
    Command, Credit, DefineProgram, OpenWallet, PocketSpec, Redeem, RegisterHolder, Request,
};
use wallet_ledger::{FixedClock, Ledger};

// ---- the workload ------------------------------------------------------------------------------

/// 2026-01-01T00:00:00Z, in seconds.
pub const T0: i64 = 1_767_225_600;
/// Ledger time between two commands on one wallet.
pub const STEP: i64 = 60;
/// A lot expires this long after it is credited.
pub const TTL: i64 = 6 * 3600;
/// Credit and redemption amounts, in cents (the pocket has scale 2).
pub const CREDIT_CENTS: i64 = 10_000;
pub const REDEEM_CENTS: i64 = 3_000;
/// A read "after the last event" happens this long after it: a few lots' expiries fall due in
/// between and are derived by the read (2–3 with the mix above).
pub const READ_DELTA: i64 = 5 * 60;
/// Wallets are opened before any command.
pub const OPEN_AT: i64 = T0 - 86_400;
/// Most commands in one `Command::Batch` (src/limits.rs).
pub const MAX_BATCH: usize = 10_000;
/// Bump when the workload, the SQLite schema or how the files are compacted changes: cached
/// fixtures are keyed by it (and by wallet-ledger's record schema version). 2: `Ledger::compact`
/// and the raw log floor pack their leaves full.
pub const FIXTURE_VERSION: u32 = 3;

const NS: i64 = 1_000_000_000;

pub fn ns(secs: i64) -> i64 {
    secs * NS
}

pub fn datetime(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(secs, 0).single().expect("in range")
}

pub fn datetime_ns(t: i64) -> DateTime<Utc> {
    Utc.timestamp_nanos(t)
}

pub fn wallet_uuid(w: u32) -> Uuid {
    Uuid::from_u128(0x01900000_0000_7000_8000_000000000000 + u128::from(w))
}

pub fn holder_uuid() -> Uuid {
    Uuid::from_u128(0x37b08803_c1af_4e10_849f_530264bac7f8)
}

/// One command of the mix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Credit {
        wallet: u32,
        at: i64,
        cents: i64,
        expires: i64,
    },
    Redeem {
        wallet: u32,
        at: i64,
        cents: i64,
    },
}

impl Op {
    /// The `k`-th command (from 0) on wallet `w`.
    pub fn nth(wallet: u32, k: u64) -> Op {
        let at = T0 + k as i64 * STEP;
        if k.is_multiple_of(2) {
            Op::Credit {
                wallet,
                at,
                cents: CREDIT_CENTS,
                expires: at + TTL,
            }
        } else {
            Op::Redeem {
                wallet,
                at,
                cents: REDEEM_CENTS,
            }
        }
    }

    pub fn wallet(&self) -> u32 {
        match *self {
            Op::Credit { wallet, .. } | Op::Redeem { wallet, .. } => wallet,
        }
    }

    pub fn at(&self) -> i64 {
        match *self {
            Op::Credit { at, .. } | Op::Redeem { at, .. } => at,
        }
    }

    /// The typed request wallet-ledger executes.
    pub fn request(&self) -> Request {
        match *self {
            Op::Credit {
                wallet,
                at,
                cents,
                expires,
            } => Request::new(Command::Credit(Credit {
                wallet: wallet_uuid(wallet),
                amount: Decimal::new(cents, 2),
                expires_at: Some(datetime(expires)),
                ..Default::default()
            }))
            .at(datetime(at)),
            Op::Redeem { wallet, at, cents } => Request::new(Command::Redeem(Redeem {
                wallet: wallet_uuid(wallet),
                amount: Decimal::new(cents, 2),
                ..Default::default()
            }))
            .at(datetime(at)),
        }
    }
}

/// Per-wallet command counters: hands out each wallet's next command.
#[derive(Clone, Debug)]
pub struct Clocks {
    next: Vec<u64>,
    rr: usize,
}

impl Clocks {
    /// `wallets` wallets (numbered from `first`) whose next command is the `start`-th.
    pub fn new(wallets: u32, start: u64) -> Clocks {
        Clocks {
            next: vec![start; wallets as usize],
            rr: 0,
        }
    }

    pub fn next_for(&mut self, w: u32) -> Op {
        let k = &mut self.next[w as usize];
        let op = Op::nth(w, *k);
        *k += 1;
        op
    }

    /// The next command, round-robin over the wallets.
    pub fn next_rr(&mut self) -> Op {
        let w = self.rr as u32;
        self.rr = (self.rr + 1) % self.next.len();
        self.next_for(w)
    }

    pub fn take_rr(&mut self, n: usize) -> Vec<Op> {
        (0..n).map(|_| self.next_rr()).collect()
    }

    /// `per_thread` commands for each of `threads` threads; thread `t` owns the wallets
    /// `w ≡ t (mod threads)`, so no two threads ever touch one wallet.
    pub fn take_threads(&mut self, threads: usize, per_thread: usize) -> Vec<Vec<Op>> {
        let wallets = self.next.len();
        assert!(wallets >= threads);
        (0..threads)
            .map(|t| {
                let mine: Vec<u32> = (t..wallets).step_by(threads).map(|w| w as u32).collect();
                (0..per_thread)
                    .map(|i| self.next_for(mine[i % mine.len()]))
                    .collect()
            })
            .collect()
    }
}

/// The figures both engines compute, in cents.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Figs {
    pub credited: i64,
    pub redeemed: i64,
    pub expired: i64,
}

impl Figs {
    pub fn balance(&self) -> i64 {
        self.credited - self.redeemed - self.expired
    }
}

/// What the append and read workloads ask of an engine (wallet-ledger or SQLite), so one piece
/// of harness code serves both.
pub trait Engine: Sync {
    /// One command, one durable commit (when the engine was opened durable). Returns the events
    /// appended.
    fn exec(&self, op: &Op) -> u64;
    /// Commands in one transaction, one commit.
    fn exec_batch(&self, ops: &[Op]) -> u64;
    /// The wallet's figures at `t` (ns), at or after its last event.
    fn figures(&self, w: u32, t: i64) -> Figs;
}

impl Engine for Ours {
    fn exec(&self, op: &Op) -> u64 {
        Ours::exec(self, op)
    }
    fn exec_batch(&self, ops: &[Op]) -> u64 {
        Ours::exec_batch(self, ops)
    }
    fn figures(&self, w: u32, t: i64) -> Figs {
        Ours::figures(self, w, t)
    }
}

impl Engine for Sql {
    fn exec(&self, op: &Op) -> u64 {
        Sql::exec(self, op)
    }
    fn exec_batch(&self, ops: &[Op]) -> u64 {
        Sql::exec_batch(self, ops)
    }
    fn figures(&self, w: u32, t: i64) -> Figs {
        Sql::figures(self, w, t)
    }
}

// ---- ours ----------------------------------------------------------------------------------------

pub struct Ours {
    pub ledger: Ledger,
}

impl Ours {
    pub fn open(path: &Path) -> Ours {
        let clock = FixedClock(datetime(OPEN_AT));
        Ours {
            ledger: Ledger::open_with_clock(path, Box::new(clock)).expect("open ledger"),
        }
    }

    /// A new ledger with the program, one holder and `wallets` open wallets.
    pub fn create(path: &Path, wallets: u32) -> Ours {
        let o = Ours::open(path);
        let setup = vec![
            Request::new(Command::DefineProgram(DefineProgram {
                program: 1,
                name: "Bench".into(),
                unit: "Coins".into(),
                order: Default::default(),
                pockets: vec![PocketSpec {
                    pocket: "main".into(),
                    name: "Main".into(),
                    kind: "POINTS".into(),
                    asset: "PTS".into(),
                    scale: 2,
                }],
            }))
            .at(datetime(OPEN_AT)),
            Request::new(Command::RegisterHolder(RegisterHolder {
                holder: Some(holder_uuid()),
                ..Default::default()
            }))
            .at(datetime(OPEN_AT)),
        ];
        o.execute(Request::new(Command::Batch(setup)).at(datetime(OPEN_AT)));
        let mut w = 0;
        while w < wallets {
            let end = (w + MAX_BATCH as u32).min(wallets);
            let opens = (w..end)
                .map(|i| {
                    Request::new(Command::OpenWallet(OpenWallet {
                        wallet: Some(wallet_uuid(i)),
                        holder: holder_uuid(),
                        program: 1,
                        ..Default::default()
                    }))
                    .at(datetime(OPEN_AT))
                })
                .collect();
            o.execute(Request::new(Command::Batch(opens)).at(datetime(OPEN_AT)));
            w = end;
        }
        o
    }

    fn execute(&self, req: Request) -> u64 {
        match self.ledger.execute(&req) {
            Ok(r) => r.events,
            Err(e) => panic!("ours: {} failed: {e}", req.command.op()),
        }
    }

    /// One command, one durable commit. Returns the events appended.
    pub fn exec(&self, op: &Op) -> u64 {
        self.execute(op.request())
    }

    /// One `Command::Batch`: one transaction, one durable commit.
    pub fn exec_batch(&self, ops: &[Op]) -> u64 {
        let items = ops.iter().map(Op::request).collect();
        let at = ops.iter().map(Op::at).max().unwrap_or(OPEN_AT);
        self.execute(Request::new(Command::Batch(items)).at(datetime(at)))
    }

    /// The wallet's figures at `t` (nanoseconds) through `Ledger::figures` (the figures-only
    /// read): at or after its last event it derives the transitions due since; before it, it
    /// replays the wallet's stream.
    pub fn figures(&self, w: u32, t: i64) -> Figs {
        let s = self
            .ledger
            .figures(wallet_uuid(w), Some(datetime_ns(t)))
            .expect("figures");
        let f = s.pockets[0].units();
        Figs {
            credited: f.credited as i64,
            redeemed: f.redeemed as i64,
            expired: f.expired as i64,
        }
    }
}

// ---- theirs: SQLite ------------------------------------------------------------------------------

/// The schema we would ship for the same semantics. Amounts in cents, instants in nanoseconds
/// (the ledger's resolution). Every wallet keeps its running figures; lots are clustered by
/// wallet; one index serves consumption order, due expiries and as-of reads; the event log is
/// clustered by (wallet, at, seq) — `at` never decreases within a wallet, so that is log order —
/// with a unique index on the global position (the change feed).
pub const SQL_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS wallets(
  id INTEGER PRIMARY KEY,
  uuid BLOB NOT NULL UNIQUE,
  seq INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  credited INTEGER NOT NULL,
  redeemed INTEGER NOT NULL,
  expired INTEGER NOT NULL,
  lots INTEGER NOT NULL,
  redemptions INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS lots(
  wallet INTEGER NOT NULL,
  no INTEGER NOT NULL,
  id TEXT NOT NULL,
  amount INTEGER NOT NULL,
  free INTEGER NOT NULL,
  spent INTEGER NOT NULL,
  expired INTEGER NOT NULL,
  issued_at INTEGER NOT NULL,
  expires_at INTEGER NOT NULL,
  PRIMARY KEY(wallet, no)) WITHOUT ROWID;
CREATE UNIQUE INDEX IF NOT EXISTS lots_id ON lots(wallet, id);
CREATE INDEX IF NOT EXISTS lots_expiry ON lots(wallet, expires_at, no);
CREATE TABLE IF NOT EXISTS redemptions(
  wallet INTEGER NOT NULL,
  no INTEGER NOT NULL,
  id TEXT NOT NULL,
  amount INTEGER NOT NULL,
  at INTEGER NOT NULL,
  PRIMARY KEY(wallet, no)) WITHOUT ROWID;
CREATE UNIQUE INDEX IF NOT EXISTS redemptions_id ON redemptions(wallet, id);
CREATE TABLE IF NOT EXISTS allocations(
  wallet INTEGER NOT NULL,
  lot INTEGER NOT NULL,
  redemption INTEGER NOT NULL,
  amount INTEGER NOT NULL,
  at INTEGER NOT NULL,
  PRIMARY KEY(wallet, lot, redemption)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS events(
  wallet INTEGER NOT NULL,
  at INTEGER NOT NULL,
  seq INTEGER NOT NULL,
  position INTEGER NOT NULL,
  kind INTEGER NOT NULL,
  lot INTEGER,
  amount INTEGER NOT NULL,
  PRIMARY KEY(wallet, at, seq)) WITHOUT ROWID;
CREATE UNIQUE INDEX IF NOT EXISTS events_log ON events(position);
";

const EV_OPEN: i64 = 0;
const EV_CREDIT: i64 = 1;
const EV_REDEEM: i64 = 2;
const EV_EXPIRED: i64 = 3;

const SQL_READ: &str = "
SELECT w.credited, w.redeemed, w.expired, w.updated_at,
  (SELECT COALESCE(SUM(l.free), 0) FROM lots l
    WHERE l.wallet = w.id AND l.expires_at > w.updated_at AND l.expires_at <= ?2 AND l.free > 0)
FROM wallets w WHERE w.uuid = ?1";

const SQL_AS_OF_EVENTS: &str = "
SELECT COALESCE(SUM(CASE kind WHEN 1 THEN amount ELSE 0 END), 0),
       COALESCE(SUM(CASE kind WHEN 2 THEN amount ELSE 0 END), 0),
       COALESCE(SUM(CASE kind WHEN 3 THEN amount ELSE 0 END), 0),
       COUNT(*), COALESCE(MAX(at), 0)
FROM events WHERE wallet = ?1 AND at <= ?2";

const SQL_AS_OF_DUE: &str = "
SELECT COALESCE(SUM(l.amount - (SELECT COALESCE(SUM(a.amount), 0) FROM allocations a
                                 WHERE a.wallet = l.wallet AND a.lot = l.no AND a.at <= ?3)), 0)
FROM lots l
WHERE l.wallet = ?1 AND l.expires_at > ?2 AND l.expires_at <= ?3 AND l.issued_at <= ?3";

pub struct Sql {
    pub conn: Mutex<Connection>,
}

#[derive(Debug)]
struct WalletRow {
    id: i64,
    seq: i64,
    updated_at: i64,
    credited: i64,
    redeemed: i64,
    expired: i64,
    lots: i64,
    redemptions: i64,
}

fn sql_err(e: rusqlite::Error) -> String {
    e.to_string()
}

impl Sql {
    /// Opens with the tuning we would ship: WAL, `synchronous=FULL` when `durable` (a commit
    /// survives power loss), 1 GiB page cache (redb's default cache size), memory-mapped reads,
    /// statements prepared once and cached, query-planner stability (no re-prepare per bind).
    pub fn open(path: &Path, durable: bool) -> Sql {
        let conn = Connection::open(path).expect("open sqlite");
        conn.pragma_update(None, "journal_mode", "WAL").unwrap();
        conn.pragma_update(None, "synchronous", if durable { "FULL" } else { "OFF" })
            .unwrap();
        conn.pragma_update(None, "cache_size", -1_048_576i64)
            .unwrap();
        conn.pragma_update(None, "mmap_size", 1i64 << 30).unwrap();
        conn.pragma_update(None, "temp_store", "MEMORY").unwrap();
        conn.busy_timeout(Duration::from_secs(30)).unwrap();
        conn.set_prepared_statement_cache_capacity(64);
        // The bundled build enables STAT4, under which a statement with a range on an indexed
        // column (`expires_at > ?`) is re-prepared on every new binding: ~75k instructions per
        // step, half of all the time a command took. Query-planner stability turns that off.
        conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)
            .unwrap();
        conn.execute_batch(SQL_SCHEMA).expect("schema");
        Sql {
            conn: Mutex::new(conn),
        }
    }

    pub fn create(path: &Path, wallets: u32, durable: bool) -> Sql {
        let s = Sql::open(path, durable);
        {
            let c = s.lock();
            let mut w = 0;
            while w < wallets {
                let end = (w + MAX_BATCH as u32).min(wallets);
                c.execute_batch("BEGIN IMMEDIATE").unwrap();
                let mut pos = max_position(&c).unwrap();
                let mut ins = c
                    .prepare_cached(
                        "INSERT INTO wallets(id, uuid, seq, updated_at, credited, redeemed, expired, lots, redemptions)
                         VALUES (?1, ?2, 1, ?3, 0, 0, 0, 0, 0)",
                    )
                    .unwrap();
                for i in w..end {
                    let id = i64::from(i) + 1;
                    ins.execute(params![id, &wallet_uuid(i).as_bytes()[..], ns(OPEN_AT)])
                        .unwrap();
                    pos += 1;
                    insert_event(&c, id, ns(OPEN_AT), 1, pos, EV_OPEN, None, 0).unwrap();
                }
                drop(ins);
                c.execute_batch("COMMIT").unwrap();
                w = end;
            }
        }
        s
    }

    pub fn lock(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// One command in one transaction (durable when opened so). Returns the events appended.
    pub fn exec(&self, op: &Op) -> u64 {
        let c = self.lock();
        c.execute_batch("BEGIN IMMEDIATE").unwrap();
        match apply(&c, op) {
            Ok(n) => {
                c.execute_batch("COMMIT").unwrap();
                n
            }
            Err(e) => {
                c.execute_batch("ROLLBACK").unwrap();
                panic!("sqlite: {op:?} failed: {e}");
            }
        }
    }

    /// Commands in one transaction, all or nothing.
    pub fn exec_batch(&self, ops: &[Op]) -> u64 {
        let c = self.lock();
        c.execute_batch("BEGIN IMMEDIATE").unwrap();
        let mut n = 0;
        for op in ops {
            match apply(&c, op) {
                Ok(k) => n += k,
                Err(e) => {
                    c.execute_batch("ROLLBACK").unwrap();
                    panic!("sqlite: {op:?} failed: {e}");
                }
            }
        }
        c.execute_batch("COMMIT").unwrap();
        n
    }

    /// The wallet's figures at `t` (ns) at or after its last event: the running figures plus the
    /// free value of lots whose expiry fell due since.
    pub fn figures(&self, w: u32, t: i64) -> Figs {
        let c = self.lock();
        let mut st = c.prepare_cached(SQL_READ).unwrap();
        let (credited, redeemed, expired, updated_at, due): (i64, i64, i64, i64, i64) = st
            .query_row(params![&wallet_uuid(w).as_bytes()[..], t], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })
            .unwrap();
        assert!(
            t >= updated_at,
            "a read before the last event needs figures_as_of"
        );
        Figs {
            credited,
            redeemed,
            expired: expired + due,
        }
    }

    /// The wallet's figures as of any `t` (ns), computed from the event log: sums of the events
    /// up to `t`, plus the lots whose expiry fell due after the last of them (their free value
    /// at `t` from the allocations made by then). Returns the figures and the events counted.
    pub fn figures_as_of(&self, w: u32, t: i64) -> (Figs, u64) {
        let c = self.lock();
        c.execute_batch("BEGIN").unwrap();
        let id: i64 = c
            .prepare_cached("SELECT id FROM wallets WHERE uuid = ?1")
            .unwrap()
            .query_row(params![&wallet_uuid(w).as_bytes()[..]], |r| r.get(0))
            .unwrap();
        let (credited, redeemed, expired, count, last): (i64, i64, i64, i64, i64) = c
            .prepare_cached(SQL_AS_OF_EVENTS)
            .unwrap()
            .query_row(params![id, t], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })
            .unwrap();
        let due: i64 = c
            .prepare_cached(SQL_AS_OF_DUE)
            .unwrap()
            .query_row(params![id, last, t], |r| r.get(0))
            .unwrap();
        c.execute_batch("COMMIT").unwrap();
        (
            Figs {
                credited,
                redeemed,
                expired: expired + due,
            },
            count as u64,
        )
    }

    /// Events of wallet `w` at or before `t` (ns), and the total in the log.
    pub fn count_events(&self, w: u32, t: i64) -> (u64, u64) {
        let c = self.lock();
        let upto: i64 = c
            .query_row(
                "SELECT COUNT(*) FROM events WHERE wallet = ?1 AND at <= ?2",
                params![i64::from(w) + 1, t],
                |r| r.get(0),
            )
            .unwrap();
        (upto as u64, max_position(&c).unwrap() as u64)
    }

    /// Checkpoints the WAL into the main file and compacts it (VACUUM).
    pub fn vacuum(&self) {
        let c = self.lock();
        c.execute_batch(
            "PRAGMA wal_checkpoint(TRUNCATE); VACUUM; PRAGMA wal_checkpoint(TRUNCATE);",
        )
        .unwrap();
    }

    pub fn checkpoint(&self) {
        let c = self.lock();
        c.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);").unwrap();
    }
}

fn max_position(c: &Connection) -> rusqlite::Result<i64> {
    c.prepare_cached("SELECT COALESCE(MAX(position), 0) FROM events")?
        .query_row([], |r| r.get(0))
}

#[allow(clippy::too_many_arguments)]
fn insert_event(
    c: &Connection,
    wallet: i64,
    at: i64,
    seq: i64,
    position: i64,
    kind: i64,
    lot: Option<i64>,
    amount: i64,
) -> rusqlite::Result<()> {
    c.prepare_cached(
        "INSERT INTO events(wallet, at, seq, position, kind, lot, amount)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![wallet, at, seq, position, kind, lot, amount])?;
    Ok(())
}

/// The command, inside the caller's transaction: due expiries first (SPEC §4.2), then the
/// command's checks and effects. Returns the events appended.
fn apply(c: &Connection, op: &Op) -> Result<u64, String> {
    let at = ns(op.at());
    let mut w: WalletRow = c
        .prepare_cached(
            "SELECT id, seq, updated_at, credited, redeemed, expired, lots, redemptions
             FROM wallets WHERE uuid = ?1",
        )
        .map_err(sql_err)?
        .query_row(params![&wallet_uuid(op.wallet()).as_bytes()[..]], |r| {
            Ok(WalletRow {
                id: r.get(0)?,
                seq: r.get(1)?,
                updated_at: r.get(2)?,
                credited: r.get(3)?,
                redeemed: r.get(4)?,
                expired: r.get(5)?,
                lots: r.get(6)?,
                redemptions: r.get(7)?,
            })
        })
        .optional()
        .map_err(sql_err)?
        .ok_or("unknown_wallet")?;
    if at < w.updated_at {
        return Err("backdated".into());
    }
    let mut pos = max_position(c).map_err(sql_err)?;
    let mut events = 0u64;
    // Expiries due since the last event, in due order.
    let due: Vec<(i64, i64, i64)> = {
        let mut st = c
            .prepare_cached(
                "SELECT no, free, expires_at FROM lots
                 WHERE wallet = ?1 AND expires_at > ?2 AND expires_at <= ?3 AND free > 0
                 ORDER BY expires_at, no",
            )
            .map_err(sql_err)?;
        st.query_map(params![w.id, w.updated_at, at], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .map_err(sql_err)?
        .collect::<Result<_, _>>()
        .map_err(sql_err)?
    };
    for (no, free, exp) in due {
        c.prepare_cached(
            "UPDATE lots SET expired = expired + free, free = 0 WHERE wallet = ?1 AND no = ?2",
        )
        .map_err(sql_err)?
        .execute(params![w.id, no])
        .map_err(sql_err)?;
        w.seq += 1;
        pos += 1;
        insert_event(c, w.id, exp, w.seq, pos, EV_EXPIRED, Some(no), free).map_err(sql_err)?;
        w.expired += free;
        events += 1;
    }
    match *op {
        Op::Credit { cents, expires, .. } => {
            let no = w.lots + 1;
            c.prepare_cached(
                "INSERT INTO lots(wallet, no, id, amount, free, spent, expired, issued_at, expires_at)
                 VALUES (?1, ?2, ?3, ?4, ?4, 0, 0, ?5, ?6)",
            )
            .map_err(sql_err)?
            .execute(params![
                w.id,
                no,
                format!("lot-{no}"),
                cents,
                at,
                ns(expires)
            ])
            .map_err(|e| format!("duplicate_lot: {e}"))?;
            w.seq += 1;
            pos += 1;
            insert_event(c, w.id, at, w.seq, pos, EV_CREDIT, Some(no), cents).map_err(sql_err)?;
            w.credited += cents;
            w.lots = no;
        }
        Op::Redeem { cents, .. } => {
            let available = w.credited - w.redeemed - w.expired;
            if cents > available {
                return Err(format!("insufficient_funds: {cents} > {available}"));
            }
            let no = w.redemptions + 1;
            // Consumption order: earliest expiry first, ties by credit order.
            let mut takes = Vec::new();
            {
                let mut st = c
                    .prepare_cached(
                        "SELECT no, free FROM lots
                         WHERE wallet = ?1 AND expires_at > ?2 AND free > 0
                         ORDER BY expires_at, no",
                    )
                    .map_err(sql_err)?;
                let mut rows = st.query(params![w.id, at]).map_err(sql_err)?;
                let mut left = cents;
                while left > 0 {
                    let r = rows.next().map_err(sql_err)?.ok_or("lots do not cover")?;
                    let (lot, free): (i64, i64) =
                        (r.get(0).map_err(sql_err)?, r.get(1).map_err(sql_err)?);
                    let take = free.min(left);
                    left -= take;
                    takes.push((lot, take));
                }
            }
            for (lot, take) in takes {
                c.prepare_cached(
                    "UPDATE lots SET free = free - ?3, spent = spent + ?3 WHERE wallet = ?1 AND no = ?2",
                )
                .map_err(sql_err)?
                .execute(params![w.id, lot, take])
                .map_err(sql_err)?;
                c.prepare_cached(
                    "INSERT INTO allocations(wallet, lot, redemption, amount, at) VALUES (?1, ?2, ?3, ?4, ?5)",
                )
                .map_err(sql_err)?
                .execute(params![w.id, lot, no, take, at])
                .map_err(sql_err)?;
            }
            c.prepare_cached(
                "INSERT INTO redemptions(wallet, no, id, amount, at) VALUES (?1, ?2, ?3, ?4, ?5)",
            )
            .map_err(sql_err)?
            .execute(params![w.id, no, format!("redemption-{no}"), cents, at])
            .map_err(|e| format!("duplicate_redemption: {e}"))?;
            w.seq += 1;
            pos += 1;
            insert_event(c, w.id, at, w.seq, pos, EV_REDEEM, None, cents).map_err(sql_err)?;
            w.redeemed += cents;
            w.redemptions = no;
        }
    }
    events += 1;
    c.prepare_cached(
        "UPDATE wallets SET seq = ?2, updated_at = ?3, credited = ?4, redeemed = ?5, expired = ?6,
         lots = ?7, redemptions = ?8 WHERE id = ?1",
    )
    .map_err(sql_err)?
    .execute(params![
        w.id,
        w.seq,
        at,
        w.credited,
        w.redeemed,
        w.expired,
        w.lots,
        w.redemptions
    ])
    .map_err(sql_err)?;
    Ok(events)
}

// ---- raw redb: the floor -------------------------------------------------------------------------

/// Bytes the raw baseline inserts per command: about what wallet-ledger stores per command of
/// this mix (event record, log entry, lot or redemption records, index keys, wallet header),
/// measured with redb's table stats on the fixture (BENCHMARKS.md).
pub const RAW_BYTES_PER_COMMAND: usize = 512;

const RAW: TableDefinition<u64, &[u8]> = TableDefinition::new("raw");

pub struct Raw {
    pub db: redb::Database,
    next: Mutex<u64>,
}

impl Raw {
    pub fn create(path: &Path) -> Raw {
        let db = redb::Database::create(path).expect("raw redb");
        Raw {
            db,
            next: Mutex::new(0),
        }
    }

    /// One durable commit inserting `rows` values of `bytes` bytes.
    pub fn commit(&self, rows: usize, bytes: usize) {
        let mut next = self.next.lock().unwrap();
        let value = vec![0xA5u8; bytes];
        let txn = self.db.begin_write().unwrap();
        {
            let mut t = txn.open_table(RAW).unwrap();
            for _ in 0..rows {
                *next += 1;
                t.insert(*next, &value[..]).unwrap();
            }
        }
        txn.commit().unwrap();
    }

    /// One read transaction and one point get: the floor of a read.
    pub fn get(&self, key: u64) -> usize {
        let txn = self.db.begin_read().unwrap();
        let t = txn.open_table(RAW).unwrap();
        t.get(key).unwrap().map_or(0, |v| v.value().len())
    }
}

// ---- fixtures ------------------------------------------------------------------------------------

pub fn fixtures_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    target.join("bench-fixtures")
}

/// A scratch directory next to the fixtures (same disk), removed on drop.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(tag: &str) -> Scratch {
        static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let p = fixtures_dir().join(format!("scratch-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        Scratch(p)
    }
    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn file_size(p: &Path) -> u64 {
    std::fs::metadata(p).map_or(0, |m| m.len())
}

/// The disk space a file takes: its allocated blocks (a file with holes takes less than its
/// length); 0 if there is no such file.
fn file_allocated(p: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(p).map_or(0, |m| m.blocks() * 512)
}

/// A SQLite database's write-ahead log, beside the main file.
pub fn wal_path(db: &Path) -> PathBuf {
    let mut p = db.as_os_str().to_owned();
    p.push("-wal");
    PathBuf::from(p)
}

/// The files of both engines as a workload left them, both still open: no compaction, no
/// VACUUM, no checkpoint.
#[derive(Clone, Copy, Debug)]
pub struct AsWritten {
    /// The redb file's length, and the disk space it takes.
    pub ours: u64,
    pub ours_allocated: u64,
    /// SQLite's main file plus its WAL (length, disk space), and the WAL's length alone.
    pub sql: u64,
    pub sql_allocated: u64,
    pub sql_wal: u64,
}

impl AsWritten {
    pub fn measure(ours: &Path, sql: &Path) -> AsWritten {
        let wal = wal_path(sql);
        AsWritten {
            ours: file_size(ours),
            ours_allocated: file_allocated(ours),
            sql: file_size(sql) + file_size(&wal),
            sql_allocated: file_allocated(sql) + file_allocated(&wal),
            sql_wal: file_size(&wal),
        }
    }
}

/// Sizes of one run.
#[derive(Clone, Copy, Debug)]
pub struct Size {
    pub name: &'static str,
    /// Append workloads: wallets, and commands each has had before the measurement (so lots
    /// expire during it).
    pub append_wallets: u32,
    pub append_age: u64,
    pub single_cmds: usize,
    pub group_threads: usize,
    pub group_per_thread: usize,
    pub batch_size: usize,
    pub batches: usize,
    /// Read fixture: wallets, events of the big wallet, commands of every other wallet.
    pub wallets: u32,
    pub big_events: u64,
    pub small_cmds: u64,
    pub reads: usize,
    pub replays: usize,
}

impl Size {
    pub fn quick() -> Size {
        Size {
            name: "quick",
            append_wallets: 128,
            append_age: 600,
            single_cmds: 200,
            group_threads: 16,
            group_per_thread: 100,
            batch_size: 1000,
            batches: 20,
            wallets: 10_000,
            big_events: 100_000,
            small_cmds: 8,
            reads: 20_000,
            replays: 10,
        }
    }

    pub fn full() -> Size {
        Size {
            name: "full",
            single_cmds: 1000,
            group_per_thread: 100,
            batches: 100,
            wallets: 100_000,
            big_events: 1_000_000,
            reads: 100_000,
            replays: 5,
            ..Size::quick()
        }
    }

    /// `BENCH_SIZE=quick|full` (default quick) for the criterion benches.
    pub fn from_env() -> Size {
        match std::env::var("BENCH_SIZE").as_deref() {
            Ok("full") => Size::full(),
            _ => Size::quick(),
        }
    }
}

/// The append fixture: `append_wallets` wallets that have each had `append_age` commands.
pub struct AgedFixture {
    pub dir: PathBuf,
}

impl AgedFixture {
    pub fn ours(&self) -> PathBuf {
        self.dir.join("ours.redb")
    }
    pub fn theirs(&self) -> PathBuf {
        self.dir.join("theirs.sqlite")
    }

    /// Copies both files into `scratch` (flushed, see `copy_flushed`): (ours, theirs).
    pub fn copy_into(&self, scratch: &Scratch) -> (PathBuf, PathBuf) {
        (
            copy_flushed(&self.ours(), scratch, "ours.redb"),
            copy_flushed(&self.theirs(), scratch, "theirs.sqlite"),
        )
    }
}

/// Copies `from` into `scratch` as `name` and flushes the copy, or the first measured fsync would
/// pay for writing it.
pub fn copy_flushed(from: &Path, scratch: &Scratch, name: &str) -> PathBuf {
    let to = scratch.path(name);
    std::fs::copy(from, &to).unwrap();
    std::fs::File::open(&to).unwrap().sync_all().unwrap();
    to
}

pub fn aged_fixture(size: &Size) -> AgedFixture {
    aged_fixture_at(size.append_wallets, size.append_age)
}

/// `wallets` wallets that have each had `age` commands, applied round-robin in commits of 1,000
/// commands; the two engines are built side by side, one thread each.
pub fn aged_fixture_at(wallets: u32, age: u64) -> AgedFixture {
    let dir = fixtures_dir().join(format!(
        "aged-w{wallets}-k{age}-v{FIXTURE_VERSION}-f{}",
        wallet_ledger::internals::storage::FORMAT_VERSION
    ));
    if dir.join("done").exists() {
        let f = AgedFixture { dir: dir.clone() };
        // A cached file written by an older build of the ledger (the record format may change
        // between commits) must not be measured: both engines must still read the same figures.
        let last = ns(T0 + (age as i64 - 1) * STEP + 1);
        if still_agrees(&dir, || {
            let (o, s) = (Ours::open(&f.ours()), Sql::open(&f.theirs(), false));
            o.figures(0, last) == s.figures(0, last)
        }) {
            return f;
        }
    }
    let started = Instant::now();
    eprintln!(
        "# building {} (cached for later runs)...",
        dir.file_name().unwrap().to_string_lossy()
    );
    let tmp = dir.with_extension("tmp");
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).unwrap();
    let total = wallets as usize * age as usize;
    let build = |e: &dyn Engine| {
        let mut clocks = Clocks::new(wallets, 0);
        let mut done = 0;
        while done < total {
            let n = (total - done).min(1000);
            e.exec_batch(&clocks.take_rr(n));
            done += n;
        }
    };
    std::thread::scope(|s| {
        s.spawn(|| build(&Ours::create(&tmp.join("ours.redb"), wallets)));
        s.spawn(|| {
            let theirs = Sql::create(&tmp.join("theirs.sqlite"), wallets, false);
            build(&theirs);
            theirs.checkpoint();
        });
    });
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::rename(&tmp, &dir).unwrap();
    std::fs::write(dir.join("done"), b"").unwrap();
    eprintln!(
        "# built {} in {:.1}s",
        dir.display(),
        started.elapsed().as_secs_f64()
    );
    AgedFixture { dir }
}

/// The read fixture: `wallets` wallets; wallet 0 has `big_events` events, every other wallet
/// `small_cmds` commands. Both engines hold the same commands; both files are compacted.
#[derive(Clone, Debug)]
pub struct ReadFixture {
    pub dir: PathBuf,
    pub big: u32,
    /// Events of the big wallet, and in the whole log (ours; SQLite's has 2 fewer: it does not
    /// log the program and holder definitions).
    pub big_events: u64,
    pub total_events: u64,
    pub total_events_sql: u64,
    /// The read instant after the big wallet's last event, and the mid-history instant (ns).
    pub t_read: i64,
    pub t_mid: i64,
    /// Events of the big wallet at or before `t_mid`.
    pub events_to_mid: u64,
    pub ours_bytes: u64,
    pub sql_bytes: u64,
    /// The same event records alone in a compacted redb file: the floor of a log.
    pub raw_log_bytes: u64,
    /// Both files as the build left them, before compaction and before SQLite's final checkpoint.
    pub as_written: AsWritten,
    pub build_secs: f64,
}

impl ReadFixture {
    pub fn ours(&self) -> PathBuf {
        self.dir.join("ours.redb")
    }
    pub fn theirs(&self) -> PathBuf {
        self.dir.join("theirs.sqlite")
    }

    fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "big": self.big, "big_events": self.big_events, "total_events": self.total_events,
            "total_events_sql": self.total_events_sql, "t_read": self.t_read, "t_mid": self.t_mid,
            "events_to_mid": self.events_to_mid, "ours_bytes": self.ours_bytes,
            "sql_bytes": self.sql_bytes, "raw_log_bytes": self.raw_log_bytes,
            "ours_written": self.as_written.ours,
            "ours_written_allocated": self.as_written.ours_allocated,
            "sql_written": self.as_written.sql,
            "sql_written_allocated": self.as_written.sql_allocated,
            "sql_wal_written": self.as_written.sql_wal,
            "build_secs": self.build_secs,
        })
    }

    fn from_json(dir: PathBuf, v: &serde_json::Value) -> Option<ReadFixture> {
        let u = |k: &str| v.get(k).and_then(|x| x.as_u64());
        let i = |k: &str| v.get(k).and_then(|x| x.as_i64());
        Some(ReadFixture {
            dir,
            big: u("big")? as u32,
            big_events: u("big_events")?,
            total_events: u("total_events")?,
            total_events_sql: u("total_events_sql")?,
            t_read: i("t_read")?,
            t_mid: i("t_mid")?,
            events_to_mid: u("events_to_mid")?,
            ours_bytes: u("ours_bytes")?,
            sql_bytes: u("sql_bytes")?,
            raw_log_bytes: u("raw_log_bytes")?,
            as_written: AsWritten {
                ours: u("ours_written")?,
                ours_allocated: u("ours_written_allocated")?,
                sql: u("sql_written")?,
                sql_allocated: u("sql_written_allocated")?,
                sql_wal: u("sql_wal_written")?,
            },
            build_secs: v.get("build_secs")?.as_f64()?,
        })
    }
}

/// Runs `check` on a cached fixture; `false` (also on a panic, e.g. a record this build cannot
/// decode) means it is stale and gets rebuilt.
fn still_agrees(dir: &Path, check: impl FnOnce() -> bool) -> bool {
    let ok = std::panic::catch_unwind(std::panic::AssertUnwindSafe(check)).unwrap_or(false);
    if !ok {
        eprintln!(
            "# cached {} no longer agrees with this build; rebuilding it",
            dir.display()
        );
    }
    ok
}

/// Commands per batch when building the big wallet.
pub const BIG_BATCH: usize = 2_000;

pub fn read_fixture(size: &Size) -> ReadFixture {
    let dir = fixtures_dir().join(format!(
        "read-w{}-e{}-s{}-v{FIXTURE_VERSION}-f{}",
        size.wallets,
        size.big_events,
        size.small_cmds,
        wallet_ledger::internals::storage::FORMAT_VERSION
    ));
    if let Ok(text) = std::fs::read_to_string(dir.join("meta.json"))
        && let Ok(v) = serde_json::from_str::<serde_json::Value>(&text)
        && let Some(f) = ReadFixture::from_json(dir.clone(), &v)
        && still_agrees(&dir, || {
            let (o, s) = (Ours::open(&f.ours()), Sql::open(&f.theirs(), false));
            o.figures(f.big, f.t_read) == s.figures(f.big, f.t_read)
                && o.figures(f.big, f.t_mid) == s.figures_as_of(f.big, f.t_mid).0
        })
    {
        return f;
    }
    let started = Instant::now();
    let tmp = dir.with_extension("tmp");
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).unwrap();
    let ours_path = tmp.join("ours.redb");
    let sql_path = tmp.join("theirs.sqlite");
    eprintln!(
        "# building {} (cached for later runs)...",
        dir.file_name().unwrap().to_string_lossy()
    );
    let big = 0u32;
    let (big_events, last_k, as_written) = {
        let ours = Ours::create(&ours_path, size.wallets);
        let theirs = Sql::create(&sql_path, size.wallets, false);
        // Every other wallet: `small_cmds` commands, in batches across wallets.
        for k in 0..size.small_cmds {
            let mut w = 1u32;
            while w < size.wallets {
                let end = (w + MAX_BATCH as u32).min(size.wallets);
                let ops: Vec<Op> = (w..end).map(|i| Op::nth(i, k)).collect();
                ours.exec_batch(&ops);
                theirs.exec_batch(&ops);
                w = end;
            }
        }
        eprintln!(
            "#   small wallets done at {:.1}s",
            started.elapsed().as_secs_f64()
        );
        // The big wallet, until it has `big_events` events (its `wallet_opened` included).
        let mut events = 1u64;
        let mut k = 0u64;
        let mut last_report = Instant::now();
        while events < size.big_events {
            let left = size.big_events - events;
            let n = ((left / 3).max(1) as usize).min(BIG_BATCH);
            let ops: Vec<Op> = (0..n as u64).map(|i| Op::nth(big, k + i)).collect();
            let a = ours.exec_batch(&ops);
            let b = theirs.exec_batch(&ops);
            assert_eq!(a, b, "both engines append the same events");
            events += a;
            k += n as u64;
            if last_report.elapsed() > Duration::from_secs(10) {
                eprintln!(
                    "#   big wallet: {events} events at {:.1}s",
                    started.elapsed().as_secs_f64()
                );
                last_report = Instant::now();
            }
        }
        let as_written = AsWritten::measure(&ours_path, &sql_path);
        theirs.checkpoint();
        (events, k - 1, as_written)
    };
    let last_at = T0 + last_k as i64 * STEP;
    let t_read = ns(last_at + READ_DELTA);
    let t_mid = ns(T0 + (last_k as i64 / 2) * STEP) + NS / 2;
    // Compact both, then check that they agree.
    Ours::open(&ours_path)
        .ledger
        .compact()
        .expect("compact ours");
    let theirs = Sql::open(&sql_path, false);
    theirs.vacuum();
    let (events_to_mid, total_events_sql) = theirs.count_events(big, t_mid);
    let ours = Ours::open(&ours_path);
    let a = ours.figures(big, t_read);
    let b = theirs.figures(big, t_read);
    assert_eq!(a, b, "figures at the read instant agree");
    let a_mid = ours.figures(big, t_mid);
    let (b_mid, n_mid) = theirs.figures_as_of(big, t_mid);
    assert_eq!(a_mid, b_mid, "figures as of mid-history agree");
    assert_eq!(n_mid, events_to_mid);
    drop(ours);
    drop(theirs);
    let (total_events, raw_log_bytes) = copy_log(&ours_path, &tmp.join("raw-log.redb"));
    let ours_bytes = file_size(&ours_path);
    let sql_bytes = file_size(&sql_path);
    let _ = std::fs::remove_file(tmp.join("raw-log.redb"));
    let f = ReadFixture {
        dir: dir.clone(),
        big,
        big_events,
        total_events,
        total_events_sql,
        t_read,
        t_mid,
        events_to_mid,
        ours_bytes,
        sql_bytes,
        raw_log_bytes,
        as_written,
        build_secs: started.elapsed().as_secs_f64(),
    };
    std::fs::write(tmp.join("meta.json"), f.to_json().to_string()).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::rename(&tmp, &dir).unwrap();
    eprintln!(
        "# built {} in {:.1}s",
        dir.display(),
        started.elapsed().as_secs_f64()
    );
    f
}

/// Copies wallet-ledger's event records (the log's event slots, keys and values as stored) into a
/// fresh redb file with nothing else, packed the way `Ledger::compact` packs (ascending inserts
/// through a cursor, so leaves are full rather than split in halves), compacts it, and returns
/// (events, bytes): the floor of an event log in redb.
fn copy_log(ours: &Path, raw: &Path) -> (u64, u64) {
    let src = redb::Database::open(ours).expect("open ours");
    let dst_db = redb::Database::create(raw).expect("raw log");
    let rt = src.begin_read().unwrap();
    let log = rt
        .open_table(wallet_ledger::internals::storage::LOG)
        .unwrap();
    let mut n = 0u64;
    let mut it = log
        .iter()
        .unwrap()
        .filter(|r| r.as_ref().map(|(k, _)| k.value().1 == 0).unwrap_or(true))
        .peekable();
    while it.peek().is_some() {
        let txn = dst_db.begin_write().unwrap();
        {
            let mut t = txn
                .open_table(redb::TableDefinition::<(u64, u32), &[u8]>::new("events"))
                .unwrap();
            // Keys arrive in ascending order, after every key already in the table.
            let mut at = t
                .upper_bound_mut(std::ops::Bound::<(u64, u32)>::Unbounded)
                .unwrap();
            for r in it.by_ref().take(100_000) {
                let (k, v) = r.unwrap();
                at.insert_before(k.value(), v.value()).unwrap();
                n += 1;
            }
            at.close().unwrap();
        }
        txn.commit().unwrap();
    }
    drop(it);
    drop(log);
    drop(rt);
    let mut dst_db = dst_db;
    while dst_db.compact().unwrap() {}
    drop(dst_db);
    (n, file_size(raw))
}

/// Per-table storage of a wallet-ledger file: (table, entries, stored bytes, metadata bytes,
/// fragmented bytes), for every table of the file.
pub fn table_stats(path: &Path) -> Vec<(String, u64, u64, u64, u64)> {
    use redb::TableHandle;
    struct Stats(redb::ReadTransaction, Vec<(String, u64, u64, u64, u64)>);
    impl wallet_ledger::internals::storage::TableVisitor for Stats {
        fn visit<K: redb::Key + 'static, V: redb::Value + 'static>(
            &mut self,
            table: redb::TableDefinition<'static, K, V>,
        ) -> Result<(), wallet_ledger::StorageError> {
            let t = self.0.open_table(table).unwrap();
            let s = t.stats().unwrap();
            self.1.push((
                table.name().to_string(),
                t.len().unwrap(),
                s.stored_bytes(),
                s.metadata_bytes(),
                s.fragmented_bytes(),
            ));
            Ok(())
        }
    }
    let db = redb::Database::open(path).expect("open");
    let mut stats = Stats(db.begin_read().unwrap(), Vec::new());
    wallet_ledger::internals::storage::for_each_table(&mut stats).unwrap();
    stats.1
}

// ---- measurement helpers -------------------------------------------------------------------------

pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i]
}

pub fn per_sec(n: f64, d: Duration) -> f64 {
    n / d.as_secs_f64()
}

// ---- interleaved measurement -----------------------------------------------------------------

#[repr(C)]
struct Timespec {
    sec: i64,
    nsec: i64,
}

unsafe extern "C" {
    fn clock_gettime(clock: i32, tp: *mut Timespec) -> i32;
}

fn clock(id: i32) -> Duration {
    let mut t = Timespec { sec: 0, nsec: 0 };
    // SAFETY: `t` is a valid, writable timespec for the call's duration.
    let rc = unsafe { clock_gettime(id, &mut t) };
    assert_eq!(rc, 0, "clock_gettime");
    Duration::new(t.sec as u64, t.nsec as u32)
}

/// CPU time of the calling thread (`CLOCK_THREAD_CPUTIME_ID`).
pub fn thread_cpu_time() -> Duration {
    clock(3)
}

/// CPU time this process has used so far, all threads, dead ones included, user and kernel
/// (`CLOCK_PROCESS_CPUTIME_ID`, nanosecond resolution; `/proc/self/stat` ticks are 10 ms).
pub fn cpu_time() -> Duration {
    clock(2)
}

/// Bytes this process has handed to write(2)/pwrite(2) so far (`wchar` of `/proc/self/io`).
pub fn written() -> u64 {
    std::fs::read_to_string("/proc/self/io")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("wchar:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// One engine in an interleaved measurement: runs round `r`, returns (commands, durable commits;
/// 0 when the caller does not count them).
pub struct Contender<'a> {
    pub name: String,
    run: Box<dyn FnMut(usize) -> (usize, usize) + 'a>,
    pub commands: usize,
    pub commits: usize,
    pub time: Duration,
    pub cpu: Duration,
    pub bytes: u64,
}

impl<'a> Contender<'a> {
    /// A contender whose rounds return the commands they ran.
    pub fn new(name: impl Into<String>, mut run: impl FnMut(usize) -> usize + 'a) -> Contender<'a> {
        Contender::counting_commits(name, move |r| (run(r), 0))
    }
    /// A contender whose rounds return (commands, durable commits).
    pub fn counting_commits(
        name: impl Into<String>,
        run: impl FnMut(usize) -> (usize, usize) + 'a,
    ) -> Contender<'a> {
        Contender {
            name: name.into(),
            run: Box::new(run),
            commands: 0,
            commits: 0,
            time: Duration::ZERO,
            cpu: Duration::ZERO,
            bytes: 0,
        }
    }
    pub fn rate(&self) -> f64 {
        per_sec(self.commands as f64, self.time)
    }
    pub fn cpu_us(&self) -> f64 {
        self.cpu.as_secs_f64() * 1e6 / self.commands.max(1) as f64
    }
    pub fn pages_per_commit(&self) -> f64 {
        self.bytes as f64 / 4096.0 / self.commits.max(1) as f64
    }
}

/// Durable workloads are bound by the disk's flush latency, which drifts on a shared machine:
/// the engines take turns, round by round (round 0 is a warm-up), so they share the drift.
pub fn interleave(rounds: usize, cs: &mut [Contender]) {
    for r in 0..=rounds {
        for c in cs.iter_mut() {
            let (t, cpu, w) = (Instant::now(), cpu_time(), written());
            let (n, k) = (c.run)(r);
            if r > 0 {
                c.time += t.elapsed();
                c.cpu += cpu_time().saturating_sub(cpu);
                c.bytes += written().saturating_sub(w);
                c.commands += n;
                c.commits += k;
            }
        }
    }
}

/// Runs `per_thread[t]` on thread `t`, all started together; returns the wall time.
pub fn run_threads<F>(per_thread: Vec<Vec<Op>>, f: F) -> Duration
where
    F: Fn(&Op) + Sync,
{
    run_threads_indexed(&per_thread, |_, op| f(op))
}

/// `run_threads`, with `f` told which thread (the index into `per_thread`) it runs on: for
/// per-thread resources such as one SQLite connection each.
pub fn run_threads_indexed<F>(per_thread: &[Vec<Op>], f: F) -> Duration
where
    F: Fn(usize, &Op) + Sync,
{
    let barrier = std::sync::Barrier::new(per_thread.len() + 1);
    std::thread::scope(|s| {
        for (t, ops) in per_thread.iter().enumerate() {
            let (barrier, f) = (&barrier, &f);
            s.spawn(move || {
                barrier.wait();
                for op in ops {
                    f(t, op);
                }
            });
        }
        barrier.wait();
        let t = Instant::now();
        // The scope joins every thread before returning.
        t
    })
    .elapsed()
}
