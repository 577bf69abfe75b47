//! Storage, file format 3: the log, the flushed projection, and the in-memory layer between them.
//! Storage never decides: it serves reads of state through the domain's
//! [`Backing`](crate::domain::state::Backing) port and writes what the domain produced.
//!
//! - [`log`]: the durable record. A command's durable commit appends its log records and nothing
//!   else.
//! - [`mem`]: the in-memory layer: every change the log holds that is not flushed yet, produced by
//!   the same `apply`, as persistent (structurally shared) maps so a reader's snapshot costs a few
//!   pointer copies.
//! - [`l2`] and [`flush`]: the projection in redb (one row per wallet holding its live lots and
//!   open holds, chunked rows for everything else) and the amortized write of the in-memory layer
//!   into it. Everything here can be rebuilt from the log.
//! - [`migrate`] (formats 1 and 2, [`v2`]) and [`pack`] (compaction).
//!
//! See `docs/design.md` for the file format and the commit strategy.

// Decoders of retired record forms, accessors and table constants of format 2 serve the
// migration's tests, the fuzz targets and the tamper tests (feature `internals`); a default build
// does not call them.
#![cfg_attr(not(any(test, feature = "internals")), allow(dead_code))]

pub mod codec;
#[cfg(unix)]
pub mod file;
pub mod flush;
pub mod l2;
pub mod log;
pub mod mem;
pub mod migrate;
pub mod pack;
pub mod v2;

use crate::domain::state::*;
use crate::error::StorageError;
use codec::*;
use redb::TableDefinition;

/// The file format, stored as `meta["schema"]` (u32 BE). Format 1 and 2 files are migrated on
/// open ([`migrate`]); a build refuses a format it does not know.
pub const FORMAT_VERSION: u32 = 3;

pub const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
/// `meta` keys.
pub const META_SCHEMA: &str = "schema";
/// The log key of the last record the projection reflects ([`log::LogKey::to_bytes`]).
pub const META_FLUSHED: &str = "flushed";
/// The ledger counters as of `flushed` ([`LedgerState`]).
pub const META_COUNTERS: &str = "counters";

pub use log::LOG;
/// wallet uuid (u128 BE) → wallet row ([`WalletRow`]): its header, live lots and open holds.
pub const WALLETS: TableDefinition<u128, &[u8]> = TableDefinition::new("wallets");
/// wallet number → wallet uuid.
pub const WALLET_NUMBERS: TableDefinition<u64, u128> = TableDefinition::new("wallet_numbers");
/// `[wallet u64][kind u8][…]` → chunked rows of what a wallet no longer changes often; see
/// [`kind`].
pub const ROWS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("wallet_rows");
pub const PROGRAMS: TableDefinition<u64, &[u8]> = TableDefinition::new("programs");
pub const HOLDERS: TableDefinition<u128, &[u8]> = TableDefinition::new("holders");
pub const HOLDER_IDENTITY: TableDefinition<&str, u128> = TableDefinition::new("holder_identity");
pub const HOLDER_EMAIL: TableDefinition<&str, u128> = TableDefinition::new("holder_email");
/// (holder u128 BE, wallet u64 BE) → ()
pub const HOLDER_WALLETS: TableDefinition<&[u8], ()> = TableDefinition::new("holder_wallets");
pub const WALLET_EXTERNAL: TableDefinition<&str, u64> = TableDefinition::new("wallet_external");
pub const CARDS: TableDefinition<&str, u64> = TableDefinition::new("cards");
/// (earliest due instant i64 key, wallet u64 BE) → (): the wallets `sweep` must visit. Exact: a
/// flush rewrites the entry of every wallet it writes.
pub const NEXT_DUE: TableDefinition<&[u8], ()> = TableDefinition::new("next_due");
/// idempotency key → fingerprint (32 bytes) ‖ encoded (instants, receipt): the projection of
/// the log's command records.
pub const IDEM: TableDefinition<&str, &[u8]> = TableDefinition::new("idempotency");

/// Something done to every table of the file, whatever its key and value types; see
/// [`for_each_table`].
pub trait TableVisitor {
    fn visit<K: redb::Key + 'static, V: redb::Value + 'static>(
        &mut self,
        table: TableDefinition<'static, K, V>,
    ) -> Result<(), StorageError>;
}

/// Visits every table of the file, in one list: what compaction rebuilds (see [`pack`]), what a
/// new ledger creates and what statistics cover.
pub fn for_each_table(v: &mut impl TableVisitor) -> Result<(), StorageError> {
    v.visit(META)?;
    v.visit(LOG)?;
    v.visit(WALLETS)?;
    v.visit(WALLET_NUMBERS)?;
    v.visit(ROWS)?;
    v.visit(PROGRAMS)?;
    v.visit(HOLDERS)?;
    v.visit(HOLDER_IDENTITY)?;
    v.visit(HOLDER_EMAIL)?;
    v.visit(HOLDER_WALLETS)?;
    v.visit(WALLET_EXTERNAL)?;
    v.visit(CARDS)?;
    v.visit(NEXT_DUE)?;
    v.visit(IDEM)
}

/// Creates every table of [`for_each_table`] that does not exist yet.
pub fn create_tables(txn: &redb::WriteTransaction) -> Result<(), StorageError> {
    struct Create<'a>(&'a redb::WriteTransaction);
    impl TableVisitor for Create<'_> {
        fn visit<K: redb::Key + 'static, V: redb::Value + 'static>(
            &mut self,
            table: TableDefinition<'static, K, V>,
        ) -> Result<(), StorageError> {
            self.0.open_table(table)?;
            Ok(())
        }
    }
    for_each_table(&mut Create(txn))
}

/// Row kinds of `wallet_rows`, the byte after the wallet number. Records a wallet keeps changing
/// (its header, live lots, open holds) are in its wallet row instead; these are what it writes
/// once or seldom, chunked so that one row holds up to [`CHUNK`] records and a flush rewrites a
/// chunk once however many of its records changed.
pub mod kind {
    /// `[w][0][name kind u8][id bytes]` → number u32 BE (client-chosen ids only).
    pub const NAME: u8 = 0;
    /// `[w][1][chunk u32]` → lots of numbers `chunk·16 ..` that are no longer live.
    pub const LOTS: u8 = 1;
    /// `[w][2][chunk u32]` → holds that ended.
    pub const HOLDS: u8 = 2;
    /// `[w][3][chunk u32]` → redemption records.
    pub const REDEMPTIONS: u8 = 3;
    /// `[w][4][owner kind u8][owner u32][chunk u32]` → slices `chunk·16 ..` of one hold or
    /// redemption, in order.
    pub const SLICES: u8 = 4;
    /// `[w][5][chunk u32]` → lifecycle events `chunk·16 ..`, in order.
    pub const LIFECYCLE: u8 = 5;
    /// `[w][6][at i64 key][seq u64]` → checkpoint.
    pub const CHECKPOINT: u8 = 6;
    /// `[w][7][chunk u64]` → log positions of the wallet's events `chunk·128 + 1 ..`, in order.
    pub const EVENTS: u8 = 7;

    pub const fn name(kind: u8) -> Option<&'static str> {
        Some(match kind {
            NAME => "name",
            LOTS => "lot chunk",
            HOLDS => "hold chunk",
            REDEMPTIONS => "redemption chunk",
            SLICES => "slice chunk",
            LIFECYCLE => "lifecycle chunk",
            CHECKPOINT => "checkpoint",
            EVENTS => "event index chunk",
            _ => return None,
        })
    }
}

/// Records per chunk row (lots, holds, redemptions, slices, lifecycle events).
pub const CHUNK: u32 = 16;
/// Event positions per event-index row.
pub const EVENT_CHUNK: u64 = 128;

// ---- keys ------------------------------------------------------------------------------------

fn fixed_key<const N: usize>(w: u64, kind: u8, rest: &[&[u8]]) -> [u8; N] {
    let mut k = [0u8; N];
    k[..8].copy_from_slice(&w.to_be_bytes());
    k[8] = kind;
    let mut at = 9;
    for r in rest {
        k[at..at + r.len()].copy_from_slice(r);
        at += r.len();
    }
    debug_assert_eq!(at, N, "fixed key size");
    k
}

/// The key of chunk `chunk` of kind `kind` (lots, holds, redemptions, lifecycle).
pub fn chunk_key(w: u64, kind: u8, chunk: u32) -> [u8; 13] {
    fixed_key(w, kind, &[&chunk.to_be_bytes()])
}

fn owner_bytes(o: Owner) -> (u8, u32) {
    match o {
        Owner::Hold(n) => (0, n),
        Owner::Redemption(n) => (1, n),
    }
}

pub fn slices_key(w: u64, o: Owner, chunk: u32) -> [u8; 18] {
    let (k, n) = owner_bytes(o);
    fixed_key(
        w,
        kind::SLICES,
        &[&[k], &n.to_be_bytes(), &chunk.to_be_bytes()],
    )
}

pub fn name_key(w: u64, k: NameKind, id: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(10 + id.len());
    key.extend_from_slice(&w.to_be_bytes());
    key.push(kind::NAME);
    key.push(k as u8);
    key.extend_from_slice(id.as_bytes());
    key
}

pub fn checkpoint_key(w: u64, at: i64, seq: u64) -> [u8; 25] {
    fixed_key(w, kind::CHECKPOINT, &[&i64_key(at), &seq.to_be_bytes()])
}

pub fn events_key(w: u64, chunk: u64) -> [u8; 17] {
    fixed_key(w, kind::EVENTS, &[&chunk.to_be_bytes()])
}

pub fn next_due_key(at: i64, w: u64) -> [u8; 16] {
    k_ww(u64::from_be_bytes(i64_key(at)), w)
}

pub fn holder_wallet_key(h: [u8; 16], w: u64) -> [u8; 24] {
    let mut k = [0u8; 24];
    k[..16].copy_from_slice(&h);
    k[16..].copy_from_slice(&w.to_be_bytes());
    k
}

/// Which chunk a record number falls in, and where in it.
pub fn chunk_of(no: u32) -> (u32, usize) {
    (no / CHUNK, (no % CHUNK) as usize)
}

// ---- the wallet row --------------------------------------------------------------------------

/// The figures a read at a later instant would derive, precomputed at flush for the wallet's
/// next few time-driven transitions (none of them a hold time-out, whose effect depends on slices
/// the wallet row does not hold): a read of current figures then needs no lot at all.
#[derive(Clone, Debug, Default, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub struct Schedule {
    /// The instant of the first transition not covered; `None` when every pending transition is.
    /// A read at or after it derives through the overlay instead.
    pub horizon: Option<i64>,
    /// Covered transitions in due order: their instant and how they change one pocket.
    pub steps: Vec<(i64, Delta)>,
}

/// Transitions a [`Schedule`] covers at most.
pub const SCHEDULE_STEPS: usize = 8;

impl Schedule {
    /// `ws`'s figures and last-event time as of `at` (≥ its last event), if the schedule covers
    /// `at`.
    pub fn figures_at(&self, ws: &mut WalletState, at: i64) -> Result<bool, StorageError> {
        if self.horizon.is_some_and(|h| at >= h) {
            return Ok(false);
        }
        for (t, d) in &self.steps {
            if *t > at {
                break;
            }
            let p = ws
                .pockets
                .get_mut(d.pocket as usize)
                .ok_or_else(|| StorageError(format!("schedule names pocket {}", d.pocket)))?;
            d.add_to(&mut p.figures)
                .map_err(|e| StorageError(format!("wallet {}: schedule: {e}", ws.number)))?;
            ws.updated_at = ws.updated_at.max(*t);
        }
        Ok(true)
    }
}

/// A wallet row: what every command on the wallet reads and a flush rewrites.
///
/// ```text
/// [version u8 = 1][number u64 BE] ‖ bincode(WalletState) ‖ bincode(Schedule) ‖ lots ‖ seq(open holds)
/// lots = count ‖ compact lot …   (codec::put_lots_seq);  seq(T) = bincode(count) ‖ bincode(T) …
/// ```
///
/// Live lots are those with an index entry (consumable, or a transition due) or held value, in
/// number order; a lot that is none of these moves to its lot chunk. Open holds likewise.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WalletRow {
    pub ws: WalletState,
    pub schedule: Schedule,
    pub lots: Vec<Lot>,
    pub holds: Vec<HoldRec>,
}

const ROW_HEAD: usize = 1 + 8;

impl WalletRow {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(256 + 64 * self.lots.len());
        out.push(SCHEMA_VERSION);
        out.extend_from_slice(&self.ws.number.to_be_bytes());
        encode_into(&self.ws, &mut out);
        encode_into(&self.schedule, &mut out);
        put_lots_seq(&mut out, &self.lots);
        encode_seq(&self.holds, &mut out);
        out
    }

    /// The wallet number, from the fixed head only.
    pub fn number_of(bytes: &[u8]) -> Result<u64, StorageError> {
        head(bytes).map(|(n, _)| n)
    }

    /// The header and schedule, without the lots and holds.
    pub fn decode_head(bytes: &[u8]) -> Result<(WalletState, Schedule), StorageError> {
        let (n, body) = head(bytes)?;
        let what = || format!("wallet {n} row");
        let (ws, used) = decode_wallet_prefix(&what, body)?;
        let (schedule, _) = decode_prefix::<Schedule>(&what, &body[used..])?;
        Ok((ws, schedule))
    }

    pub fn decode(bytes: &[u8]) -> Result<WalletRow, StorageError> {
        let (n, body) = head(bytes)?;
        let what = || format!("wallet {n} row");
        let (ws, a) = decode_wallet_prefix(&what, body)?;
        let (schedule, b) = decode_prefix::<Schedule>(&what, &body[a..])?;
        let (lots, c) = get_lots_seq(&what, &body[a + b..])?;
        let rest = &body[a + b + c..];
        let (holds, d) = decode_seq::<HoldRec>(&what, rest)?;
        if d != rest.len() {
            return Err(StorageError(format!(
                "{}: {} trailing bytes",
                what(),
                rest.len() - d
            )));
        }
        if ws.number != n {
            return Err(StorageError(format!(
                "{}: holds the header of wallet {}",
                what(),
                ws.number
            )));
        }
        Ok(WalletRow {
            ws,
            schedule,
            lots,
            holds,
        })
    }
}

fn head(bytes: &[u8]) -> Result<(u64, &[u8]), StorageError> {
    if bytes.len() < ROW_HEAD {
        return Err(StorageError(format!(
            "wallet row of {} bytes is shorter than its head",
            bytes.len()
        )));
    }
    if bytes[0] != SCHEMA_VERSION {
        return Err(StorageError(format!(
            "wallet row: schema version {}, this build reads {SCHEMA_VERSION}",
            bytes[0]
        )));
    }
    let n = u64::from_be_bytes(bytes[1..9].try_into().expect("sized"));
    Ok((n, &bytes[ROW_HEAD..]))
}

/// The live lots of a wallet row, decoded on demand: their compact records as the row holds
/// them, and where each starts. A command on a wallet reads a few of its lots; decoding all of
/// them (their ids included) when the wallet is first read cost more than the command.
#[derive(Clone, Debug, Default)]
pub struct LiveLots {
    bytes: std::sync::Arc<[u8]>,
    /// (lot number, offset in `bytes`), by number.
    at: Vec<(u32, u32)>,
}

impl LiveLots {
    fn of(lots: &[Lot]) -> LiveLots {
        let mut bytes = Vec::with_capacity(48 * lots.len());
        let mut at = Vec::with_capacity(lots.len());
        for l in lots {
            at.push((l.no, bytes.len() as u32));
            put_lot(&mut bytes, l);
        }
        at.sort_unstable();
        LiveLots {
            bytes: bytes.into(),
            at,
        }
    }

    fn index(&self, no: u32) -> Option<usize> {
        self.at.binary_search_by_key(&no, |(n, _)| *n).ok()
    }

    pub fn contains(&self, no: u32) -> bool {
        self.index(no).is_some()
    }

    pub fn len(&self) -> usize {
        self.at.len()
    }

    pub fn is_empty(&self) -> bool {
        self.at.is_empty()
    }

    pub fn get(&self, no: u32) -> Result<Option<Lot>, StorageError> {
        let Some(i) = self.index(no) else {
            return Ok(None);
        };
        let off = self.at[i].1 as usize;
        lot_at(&self.bytes[off..])
            .filter(|l| l.no == no)
            .map(Some)
            .ok_or_else(|| StorageError(format!("live lot {no}: a damaged record")))
    }

    /// Every live lot, by number.
    pub fn all(&self) -> Result<Vec<Lot>, StorageError> {
        self.at
            .iter()
            .map(|(no, _)| {
                self.get(*no)?
                    .ok_or_else(|| StorageError(format!("lot {no}")))
            })
            .collect()
    }
}

/// A wallet's flushed state, decoded once: its header, live lots (decoded on demand) and open
/// holds, and the index keys they carry (sorted), which is everything a command on the wallet
/// reads but closed lots and holds, redemptions and slices.
#[derive(Clone, Debug)]
pub struct WalletImage {
    pub ws: WalletState,
    pub schedule: Schedule,
    pub lots: LiveLots,
    pub holds: std::collections::BTreeMap<u32, HoldRec>,
    /// Sorted; shared with the in-memory layer's index of the wallet.
    pub cons: std::sync::Arc<[ConsKey]>,
    pub due: std::sync::Arc<[DueKey]>,
}

impl WalletImage {
    pub fn of(row: WalletRow) -> WalletImage {
        let lots = LiveLots::of(&row.lots);
        WalletImage::assemble(row.ws, row.schedule, lots, &row.lots, row.holds)
    }

    fn assemble(
        ws: WalletState,
        schedule: Schedule,
        lots: LiveLots,
        keyed: &[Lot],
        holds_v: Vec<HoldRec>,
    ) -> WalletImage {
        let w = ws.number;
        let mut cons = Vec::with_capacity(keyed.len());
        let mut due = Vec::with_capacity(keyed.len() + holds_v.len());
        for l in keyed {
            if let Some(k) = l.cons_key(w) {
                cons.push(k);
            }
            if let Some(k) = l.due_key(w) {
                due.push(k);
            }
        }
        let mut holds = std::collections::BTreeMap::new();
        for h in holds_v {
            if let Some(k) = h.due_key(w) {
                due.push(k);
            }
            holds.insert(h.no, h);
        }
        cons.sort_unstable();
        due.sort_unstable();
        WalletImage {
            ws,
            schedule,
            lots,
            holds,
            cons: cons.into(),
            due: due.into(),
        }
    }

    /// A wallet row's image, its lots indexed but not decoded.
    pub fn from_row_bytes(bytes: &[u8]) -> Result<WalletImage, StorageError> {
        let (n, body) = head(bytes)?;
        let what = || format!("wallet {n} row");
        let (ws, a) = decode_wallet_prefix(&what, body)?;
        let (schedule, b) = decode_prefix::<Schedule>(&what, &body[a..])?;
        let section = &body[a + b..];
        let (scanned, c) = scan_lots_seq(&what, section)?;
        let rest = &section[c..];
        let (holds, d) = decode_seq::<HoldRec>(&what, rest)?;
        if d != rest.len() {
            return Err(StorageError(format!(
                "{}: {} trailing bytes",
                what(),
                rest.len() - d
            )));
        }
        if ws.number != n {
            return Err(StorageError(format!(
                "{}: holds the header of wallet {}",
                what(),
                ws.number
            )));
        }
        // The lots section without its count: each lot's record at the offset scanned.
        let first = scanned.first().map_or(c, |(o, _)| *o);
        let mut at: Vec<(u32, u32)> = scanned
            .iter()
            .map(|(o, l)| (l.no, (o - first) as u32))
            .collect();
        at.sort_unstable();
        if at.windows(2).any(|p| p[0].0 == p[1].0) {
            return Err(StorageError(format!("{}: a lot twice", what())));
        }
        let lots = LiveLots {
            bytes: section[first..c].into(),
            at,
        };
        let keyed: Vec<Lot> = scanned.into_iter().map(|(_, l)| l).collect();
        Ok(WalletImage::assemble(ws, schedule, lots, &keyed, holds))
    }

    /// Approximate heap bytes, for cache budgets.
    pub fn bytes(&self) -> usize {
        512 + self.lots.bytes.len()
            + self.lots.len() * 8
            + self.holds.len() * 120
            + (self.cons.len() + self.due.len()) * 24
    }
}

/// Whether a lot belongs in its wallet row (it can still change by time or consumption, or is
/// held) rather than in its lot chunk.
pub fn lot_is_live(w: u64, l: &Lot) -> bool {
    l.cons_key(w).is_some() || l.due_key(w).is_some() || l.held > 0
}

pub fn hold_is_open(h: &HoldRec) -> bool {
    h.state == HoldState::Open
}

// ---- chunks ----------------------------------------------------------------------------------

/// The positions of a wallet's events `first_seq ..`, stored as the first position then the
/// differences (varints: a few bytes each).
pub fn encode_positions(positions: &[u64]) -> Vec<u8> {
    let mut d = Vec::with_capacity(positions.len());
    let mut prev = 0u64;
    for &p in positions {
        d.push(p.wrapping_sub(prev));
        prev = p;
    }
    encode(&d)
}

pub fn decode_positions(what: &str, bytes: &[u8]) -> Result<Vec<u64>, StorageError> {
    let d: Vec<u64> = decode(what, bytes)?;
    let mut out = Vec::with_capacity(d.len());
    let mut prev = 0u64;
    for x in d {
        prev = prev.wrapping_add(x);
        out.push(prev);
    }
    if out.windows(2).any(|w| w[0] >= w[1]) {
        return Err(StorageError(format!("{what}: positions out of order")));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Figures, Order, Status};

    fn ws(n: u64) -> WalletState {
        WalletState {
            uuid: [7; 16],
            number: n,
            holder: [8; 16],
            program: 1,
            name: "W".into(),
            external_id: None,
            status: Status::Active,
            order: Order::EarliestExpiry,
            created_at: 0,
            updated_at: 5,
            seq: 3,
            pockets: vec![PocketState {
                key: "main".into(),
                name: "Main".into(),
                kind: "K".into(),
                asset: "PTS".into(),
                scale: 2,
                number: 1,
                uuid: [9; 16],
                figures: Figures {
                    credited: 100,
                    ..Figures::default()
                },
                issued: 100,
            }],
            lots: 1,
            holds: 0,
            open_holds: 0,
            redemptions: 0,
            lifecycle: 1,
            methods: vec![],
            cards: vec![],
            next_due: Some(10),
        }
    }

    fn lot(no: u32) -> Lot {
        Lot {
            no,
            id: format!("lot-{no}"),
            pocket: 0,
            amount: 100,
            free: 100,
            held: 0,
            spent: 0,
            refunded: 0,
            expired: 0,
            issued_at: 1,
            activates_at: 1,
            expires_at: Some(10),
            activated: true,
            order_key: 10,
        }
    }

    #[test]
    fn wallet_rows_round_trip_and_index_their_live_lots() {
        let row = WalletRow {
            ws: ws(42),
            schedule: Schedule {
                horizon: None,
                steps: vec![(
                    10,
                    Delta {
                        pocket: 0,
                        expired: 100,
                        ..Delta::default()
                    },
                )],
            },
            lots: vec![lot(1)],
            holds: vec![],
        };
        let b = row.encode();
        assert_eq!(WalletRow::number_of(&b).unwrap(), 42);
        assert_eq!(WalletRow::decode(&b).unwrap(), row);
        let (h, s) = WalletRow::decode_head(&b).unwrap();
        assert_eq!((h, s), (row.ws.clone(), row.schedule.clone()));
        let img = WalletImage::of(row);
        assert_eq!(img.cons.len(), 1);
        assert_eq!(img.due[0].at, 10);
        for n in 0..b.len() {
            assert!(WalletRow::decode(&b[..n]).is_err());
        }
    }

    #[test]
    fn a_schedule_covers_reads_before_its_horizon_only() {
        let s = Schedule {
            horizon: Some(20),
            steps: vec![(
                10,
                Delta {
                    pocket: 0,
                    credited: 0,
                    expired: 100,
                    ..Delta::default()
                },
            )],
        };
        let mut w = ws(1);
        assert!(s.figures_at(&mut w, 9).unwrap());
        assert_eq!(w.pockets[0].figures.expired, 0);
        assert!(s.figures_at(&mut w, 10).unwrap());
        assert_eq!((w.pockets[0].figures.expired, w.updated_at), (100, 10));
        assert!(!s.figures_at(&mut ws(1), 20).unwrap());
    }

    #[test]
    fn positions_round_trip() {
        let p = vec![3, 9, 10, 4000, 1 << 40];
        assert_eq!(decode_positions("t", &encode_positions(&p)).unwrap(), p);
    }
}
