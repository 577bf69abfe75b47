//! The flushed projection: reading the redb tables a flush wrote (everything derived from the log
//! up to [`L2::flushed`]), through one read transaction.
//!
//! [`L2`] opens every table once and is shared (`Arc`) by every reader and by the writer until
//! the next flush replaces it. [`Cached`] is a [`Backing`] over it that decodes each wallet row
//! and chunk once per use (a command group, or one read call), since a command reads the same
//! lots and indexes several times.

use super::log::{LOG, LogKey};
use super::*;
use crate::model::{Holder, Program};
use redb::{ReadOnlyTable, ReadTransaction, ReadableDatabase, ReadableTable};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::ops::Bound;
use std::sync::Arc;

/// The flushed tables as of one read transaction.
pub struct L2 {
    meta: ReadOnlyTable<&'static str, &'static [u8]>,
    log: ReadOnlyTable<(u64, u32), &'static [u8]>,
    wallets: ReadOnlyTable<u128, &'static [u8]>,
    numbers: ReadOnlyTable<u64, u128>,
    rows: ReadOnlyTable<&'static [u8], &'static [u8]>,
    programs: ReadOnlyTable<u64, &'static [u8]>,
    holders: ReadOnlyTable<u128, &'static [u8]>,
    identity: ReadOnlyTable<&'static str, u128>,
    email: ReadOnlyTable<&'static str, u128>,
    holder_wallets: ReadOnlyTable<&'static [u8], ()>,
    external: ReadOnlyTable<&'static str, u64>,
    cards: ReadOnlyTable<&'static str, u64>,
    next_due: ReadOnlyTable<&'static [u8], ()>,
    idem: ReadOnlyTable<&'static str, &'static [u8]>,
    flushed: LogKey,
    counters: LedgerState,
    /// Kept so the snapshot lives as long as the tables read from it.
    _txn: ReadTransaction,
}

type R<T> = Result<T, StorageError>;

/// A log record as a range over the log yields it.
pub type LogEntry = (LogKey, redb::AccessGuard<'static, &'static [u8]>);

/// A stored idempotency record: fingerprint hash, instants as submitted, receipt.
pub type IdemRecord = ([u8; 32], Vec<Option<i64>>, crate::command::Receipt);

pub fn decode_idem(key: &str, v: &[u8]) -> R<IdemRecord> {
    if v.len() < 32 {
        return Err(StorageError(format!(
            "idempotency record of key {key:?} is truncated"
        )));
    }
    let mut hash = [0u8; 32];
    hash.copy_from_slice(&v[..32]);
    let (instants, receipt): (Vec<Option<i64>>, super::log::StoredReceipt) =
        decode("idempotency record", &v[32..])?;
    Ok((hash, instants, receipt.receipt()?))
}

pub fn encode_idem(
    hash: &[u8; 32],
    instants: &[Option<i64>],
    receipt: &crate::command::Receipt,
) -> Vec<u8> {
    let mut v = hash.to_vec();
    v.extend_from_slice(&encode(&(
        instants.to_vec(),
        super::log::StoredReceipt::from(receipt),
    )));
    v
}

/// A holder row: a [`HolderRec`], or a bare [`Holder`] as rows were written before they kept
/// the registration instant (its prefix: the two never decode as each other, since a decode
/// must use every byte). The old form reads as registered at [`HolderRec::UNKNOWN_SINCE`].
pub fn decode_holder(v: &[u8]) -> R<HolderRec> {
    match decode::<HolderRec>("holder", v) {
        Ok(r) => Ok(r),
        Err(e) => match decode::<Holder>("holder", v) {
            Ok(holder) => Ok(HolderRec {
                holder,
                registered_at: HolderRec::UNKNOWN_SINCE,
            }),
            Err(_) => Err(e),
        },
    }
}

impl L2 {
    /// A snapshot of the flushed tables as of now.
    pub fn open(db: &redb::Database) -> R<L2> {
        L2::of(db.begin_read()?)
    }

    pub fn of(txn: ReadTransaction) -> R<L2> {
        let meta = txn.open_table(META)?;
        let flushed = match meta.get(META_FLUSHED)? {
            Some(v) => LogKey::from_bytes(v.value())?,
            None => LogKey::ZERO,
        };
        let counters = match meta.get(META_COUNTERS)? {
            Some(v) => decode("ledger counters", v.value())?,
            None => LedgerState::default(),
        };
        Ok(L2 {
            log: txn.open_table(LOG)?,
            wallets: txn.open_table(WALLETS)?,
            numbers: txn.open_table(WALLET_NUMBERS)?,
            rows: txn.open_table(ROWS)?,
            programs: txn.open_table(PROGRAMS)?,
            holders: txn.open_table(HOLDERS)?,
            identity: txn.open_table(HOLDER_IDENTITY)?,
            email: txn.open_table(HOLDER_EMAIL)?,
            holder_wallets: txn.open_table(HOLDER_WALLETS)?,
            external: txn.open_table(WALLET_EXTERNAL)?,
            cards: txn.open_table(CARDS)?,
            next_due: txn.open_table(NEXT_DUE)?,
            idem: txn.open_table(IDEM)?,
            meta,
            flushed,
            counters,
            _txn: txn,
        })
    }

    /// The log key of the last record the projection reflects.
    pub fn flushed(&self) -> LogKey {
        self.flushed
    }

    /// The ledger counters as of [`L2::flushed`].
    pub fn counters(&self) -> LedgerState {
        self.counters
    }

    pub fn meta(&self) -> &ReadOnlyTable<&'static str, &'static [u8]> {
        &self.meta
    }

    pub fn log(&self) -> &ReadOnlyTable<(u64, u32), &'static [u8]> {
        &self.log
    }

    pub fn wallets(&self) -> &ReadOnlyTable<u128, &'static [u8]> {
        &self.wallets
    }

    pub fn numbers(&self) -> &ReadOnlyTable<u64, u128> {
        &self.numbers
    }

    pub fn rows(&self) -> &ReadOnlyTable<&'static [u8], &'static [u8]> {
        &self.rows
    }

    pub fn next_due(&self) -> &ReadOnlyTable<&'static [u8], ()> {
        &self.next_due
    }

    pub fn idem(&self) -> &ReadOnlyTable<&'static str, &'static [u8]> {
        &self.idem
    }

    pub fn holder_wallets(&self) -> &ReadOnlyTable<&'static [u8], ()> {
        &self.holder_wallets
    }

    pub fn programs(&self) -> &ReadOnlyTable<u64, &'static [u8]> {
        &self.programs
    }

    pub fn holders(&self) -> &ReadOnlyTable<u128, &'static [u8]> {
        &self.holders
    }

    pub fn identities(&self) -> &ReadOnlyTable<&'static str, u128> {
        &self.identity
    }

    pub fn emails(&self) -> &ReadOnlyTable<&'static str, u128> {
        &self.email
    }

    pub fn externals(&self) -> &ReadOnlyTable<&'static str, u64> {
        &self.external
    }

    pub fn card_table(&self) -> &ReadOnlyTable<&'static str, u64> {
        &self.cards
    }

    /// The log record at `key`, if any.
    pub fn log_record(&self, key: LogKey) -> R<Option<Vec<u8>>> {
        Ok(self.log.get(key.tuple())?.map(|v| v.value().to_vec()))
    }

    /// Calls `f` with the record at `key` without copying it; `None` when there is none.
    pub fn with_log_record<T>(&self, key: LogKey, f: impl FnOnce(&[u8]) -> R<T>) -> R<Option<T>> {
        match self.log.get(key.tuple())? {
            Some(v) => f(v.value()).map(Some),
            None => Ok(None),
        }
    }

    /// The last record of the log, if any (its key and bytes).
    pub fn log_last(&self) -> R<Option<(LogKey, Vec<u8>)>> {
        Ok(self
            .log
            .last()?
            .map(|(k, v)| (LogKey::from_tuple(k.value()), v.value().to_vec())))
    }

    /// The records strictly after `after`, in key order.
    pub fn log_after(&self, after: LogKey) -> R<impl Iterator<Item = R<LogEntry>> + '_> {
        let it = self
            .log
            .range::<(u64, u32)>((Bound::Excluded(after.tuple()), Bound::Unbounded))?;
        Ok(it.map(|r| {
            let (k, v) = r?;
            Ok((LogKey::from_tuple(k.value()), v))
        }))
    }

    /// The header and schedule of the wallet with this uuid, and its number, without decoding
    /// its lots: what a read of current figures needs.
    pub fn head_by_uuid(&self, id: [u8; 16]) -> R<Option<(WalletState, Schedule)>> {
        match self.wallets.get(u128::from_be_bytes(id))? {
            Some(v) => WalletRow::decode_head(v.value()).map(Some),
            None => Ok(None),
        }
    }

    pub fn number_of(&self, id: [u8; 16]) -> R<Option<u64>> {
        match self.wallets.get(u128::from_be_bytes(id))? {
            Some(v) => WalletRow::number_of(v.value()).map(Some),
            None => Ok(None),
        }
    }

    pub fn uuid_of(&self, no: u64) -> R<Option<[u8; 16]>> {
        Ok(self.numbers.get(no)?.map(|v| v.value().to_be_bytes()))
    }

    /// Wallet `no`'s row, decoded.
    pub fn row(&self, no: u64) -> R<Option<WalletRow>> {
        let Some(id) = self.uuid_of(no)? else {
            return Ok(None);
        };
        match self.wallets.get(u128::from_be_bytes(id))? {
            Some(v) => {
                let row = WalletRow::decode(v.value())?;
                if row.ws.number != no {
                    return Err(StorageError(format!(
                        "wallet number {no} maps to the row of wallet {}",
                        row.ws.number
                    )));
                }
                Ok(Some(row))
            }
            None => Err(StorageError(format!(
                "wallet number {no} maps to a uuid without a wallet row"
            ))),
        }
    }

    /// Wallet `no`'s row as an image (its lots indexed, decoded on demand).
    pub fn image(&self, no: u64) -> R<Option<WalletImage>> {
        let Some(id) = self.uuid_of(no)? else {
            return Ok(None);
        };
        match self.wallets.get(u128::from_be_bytes(id))? {
            Some(v) => {
                let img = WalletImage::from_row_bytes(v.value())?;
                if img.ws.number != no {
                    return Err(StorageError(format!(
                        "wallet number {no} maps to the row of wallet {}",
                        img.ws.number
                    )));
                }
                Ok(Some(img))
            }
            None => Err(StorageError(format!(
                "wallet number {no} maps to a uuid without a wallet row"
            ))),
        }
    }

    /// A chunk row of `Vec<T>`, or empty when absent.
    pub fn chunk<T: bincode::Decode<()>>(&self, key: &[u8], what: &str) -> R<Vec<T>> {
        match self.rows.get(key)? {
            Some(v) => decode(what, v.value()),
            None => Ok(Vec::new()),
        }
    }

    /// Lot chunk `c` of wallet `w` (closed lots), or empty.
    pub fn lot_chunk(&self, w: u64, c: u32) -> R<Vec<Lot>> {
        match self.rows.get(&chunk_key(w, kind::LOTS, c)[..])? {
            Some(v) => decode_lots("lot chunk", v.value()),
            None => Ok(Vec::new()),
        }
    }

    /// Redemption chunk `c` of wallet `w`, or empty.
    pub fn redemption_chunk(&self, w: u64, c: u32) -> R<Vec<StoredRedemption>> {
        match self.rows.get(&chunk_key(w, kind::REDEMPTIONS, c)[..])? {
            Some(v) => decode_redemptions("redemption chunk", v.value()),
            None => Ok(Vec::new()),
        }
    }

    pub fn name(&self, w: u64, k: NameKind, id: &str) -> R<Option<u32>> {
        match self.rows.get(&name_key(w, k, id)[..])? {
            Some(v) => {
                let b: [u8; 4] = v
                    .value()
                    .try_into()
                    .map_err(|_| StorageError(format!("wallet {w}: name row of the wrong size")))?;
                Ok(Some(u32::from_be_bytes(b)))
            }
            None => Ok(None),
        }
    }

    /// Lifecycle events `0..count` of wallet `w`.
    pub fn lifecycle(&self, w: u64, count: u32) -> R<Vec<LifecycleRec>> {
        let mut out = Vec::with_capacity(count as usize);
        let mut chunk = 0;
        while (out.len() as u32) < count {
            let part: Vec<LifecycleRec> =
                self.chunk(&chunk_key(w, kind::LIFECYCLE, chunk), "lifecycle chunk")?;
            if part.is_empty() {
                break;
            }
            out.extend(part);
            chunk += 1;
        }
        out.truncate(count as usize);
        Ok(out)
    }

    /// The latest checkpoint of wallet `w` at or before `at`.
    pub fn checkpoint_before(&self, w: u64, at: i64) -> R<Option<Checkpoint>> {
        let lo = checkpoint_key(w, i64::MIN, 0);
        let hi = checkpoint_key(w, at, u64::MAX);
        match self.rows.range::<&[u8]>(&lo[..]..=&hi[..])?.next_back() {
            Some(r) => Ok(Some(decode("checkpoint", r?.1.value())?)),
            None => Ok(None),
        }
    }

    /// Every stored checkpoint of wallet `w`, in order.
    pub fn checkpoints(&self, w: u64) -> R<Vec<Checkpoint>> {
        let lo = checkpoint_key(w, i64::MIN, 0);
        let hi = checkpoint_key(w, i64::MAX, u64::MAX);
        let mut out = Vec::new();
        for r in self.rows.range::<&[u8]>(&lo[..]..=&hi[..])? {
            out.push(decode("checkpoint", r?.1.value())?);
        }
        Ok(out)
    }

    /// Positions of wallet `w`'s events `from..=to` that the flushed index holds, in order
    /// (fewer when the index ends sooner).
    pub fn positions(&self, w: u64, from: u64, to: u64) -> R<Vec<u64>> {
        let mut out = Vec::new();
        if from == 0 || from > to {
            return Ok(out);
        }
        let mut seq = from;
        while seq <= to {
            let chunk = (seq - 1) / EVENT_CHUNK;
            let part = match self.rows.get(&events_key(w, chunk)[..])? {
                Some(v) => decode_positions("event index chunk", v.value())?,
                None => break,
            };
            let base = chunk * EVENT_CHUNK + 1;
            let start = (seq - base) as usize;
            if start >= part.len() {
                break;
            }
            for p in &part[start..] {
                if seq > to {
                    break;
                }
                out.push(*p);
                seq += 1;
            }
            if seq < base + EVENT_CHUNK {
                break;
            }
        }
        Ok(out)
    }

    pub fn program(&self, id: u64) -> R<Option<Program>> {
        self.programs
            .get(id)?
            .map(|v| decode_named(|| format!("program {id}"), v.value()))
            .transpose()
    }

    pub fn holder(&self, id: [u8; 16]) -> R<Option<HolderRec>> {
        self.holders
            .get(u128::from_be_bytes(id))?
            .map(|v| decode_holder(v.value()))
            .transpose()
    }

    pub fn holder_by_identity(&self, s: &str) -> R<Option<[u8; 16]>> {
        Ok(self.identity.get(s)?.map(|v| v.value().to_be_bytes()))
    }

    pub fn holder_by_email(&self, s: &str) -> R<Option<[u8; 16]>> {
        Ok(self.email.get(s)?.map(|v| v.value().to_be_bytes()))
    }

    pub fn wallet_by_external(&self, s: &str) -> R<Option<u64>> {
        Ok(self.external.get(s)?.map(|v| v.value()))
    }

    pub fn wallet_by_card(&self, s: &str) -> R<Option<u64>> {
        Ok(self.cards.get(s)?.map(|v| v.value()))
    }

    /// Wallet numbers of a holder, ascending.
    pub fn wallets_of(&self, holder: [u8; 16]) -> R<Vec<u64>> {
        let lo = holder_wallet_key(holder, 0);
        let hi = holder_wallet_key(holder, u64::MAX);
        let mut out = Vec::new();
        for r in self.holder_wallets.range::<&[u8]>(&lo[..]..=&hi[..])? {
            let (k, _) = r?;
            let k = k.value();
            if k.len() != 24 {
                return Err(StorageError(format!(
                    "holder wallets key of {} bytes",
                    k.len()
                )));
            }
            out.push(u64::from_be_bytes(k[16..].try_into().expect("sized")));
        }
        Ok(out)
    }

    /// Wallets whose earliest due transition is at or before `upto`, with that instant.
    pub fn wallets_due(&self, upto: i64) -> R<Vec<(i64, u64)>> {
        let hi = next_due_key(upto, u64::MAX);
        let mut out = Vec::new();
        for r in self.next_due.range::<&[u8]>(..=&hi[..])? {
            let (k, _) = r?;
            let b = k.value();
            if b.len() != 16 {
                return Err(StorageError(format!("next_due key of {} bytes", b.len())));
            }
            let at = i64_from_key(&b[..8])?;
            out.push((at, u64::from_be_bytes(b[8..].try_into().expect("sized"))));
        }
        Ok(out)
    }

    pub fn idem_record(&self, key: &str) -> R<Option<IdemRecord>> {
        match self.idem.get(key)? {
            Some(v) => decode_idem(key, v.value()).map(Some),
            None => Ok(None),
        }
    }
}

/// Which chunk a [`Cached`] decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum ChunkId {
    Lots(u64, u32),
    Holds(u64, u32),
    Redemptions(u64, u32),
    Slices(u64, Owner, u32),
}

enum Chunk {
    Lots(Vec<Lot>),
    Holds(Vec<HoldRec>),
    Redemptions(Vec<StoredRedemption>),
    Slices(Vec<Slice>),
}

/// A [`Backing`] over the flushed tables that decodes each wallet row and chunk once, for
/// single-threaded use. Entries are dropped all at once when they pass a memory bound; the
/// tables under it never change, so nothing here goes stale.
pub struct Cached {
    l2: Arc<L2>,
    images: RefCell<NumMap<u64, Arc<WalletImage>>>,
    /// Numbers looked up by uuid (including misses).
    uuids: RefCell<HashMap<[u8; 16], Option<u64>>>,
    chunks: RefCell<HashMap<ChunkId, Arc<Chunk>>>,
    bytes: Cell<usize>,
    limit: usize,
}

impl Cached {
    pub fn new(l2: Arc<L2>, limit_bytes: usize) -> Cached {
        Cached {
            l2,
            images: RefCell::default(),
            uuids: RefCell::default(),
            chunks: RefCell::default(),
            bytes: Cell::new(0),
            limit: limit_bytes,
        }
    }

    pub fn l2(&self) -> &Arc<L2> {
        &self.l2
    }

    /// Bytes the decoded entries take, approximately.
    pub fn bytes(&self) -> usize {
        self.bytes.get()
    }

    fn charge(&self, n: usize) {
        let b = self.bytes.get() + n;
        if b > self.limit {
            self.images.borrow_mut().clear();
            self.chunks.borrow_mut().clear();
            self.uuids.borrow_mut().clear();
            self.bytes.set(n);
        } else {
            self.bytes.set(b);
        }
    }

    /// Wallet `no`'s flushed state, decoded once.
    pub fn image(&self, no: u64) -> R<Option<Arc<WalletImage>>> {
        if let Some(i) = self.images.borrow().get(&no) {
            return Ok(Some(i.clone()));
        }
        let Some(img) = self.l2.image(no)? else {
            return Ok(None);
        };
        let img = Arc::new(img);
        self.charge(img.bytes());
        self.images.borrow_mut().insert(no, img.clone());
        Ok(Some(img))
    }

    fn chunk(&self, id: ChunkId) -> R<Arc<Chunk>> {
        if let Some(c) = self.chunks.borrow().get(&id) {
            return Ok(c.clone());
        }
        let (c, n) = match id {
            ChunkId::Lots(w, c) => {
                let v = self.l2.lot_chunk(w, c)?;
                let n = v.len() * 160;
                (Chunk::Lots(v), n)
            }
            ChunkId::Holds(w, c) => {
                let v: Vec<HoldRec> = self.l2.chunk(&chunk_key(w, kind::HOLDS, c), "hold chunk")?;
                let n = v.len() * 120;
                (Chunk::Holds(v), n)
            }
            ChunkId::Redemptions(w, c) => {
                let v = self.l2.redemption_chunk(w, c)?;
                let n = v.len() * 160;
                (Chunk::Redemptions(v), n)
            }
            ChunkId::Slices(w, o, c) => {
                let v: Vec<Slice> = self.l2.chunk(&slices_key(w, o, c), "slice chunk")?;
                let n = v.len() * 32;
                (Chunk::Slices(v), n)
            }
        };
        let c = Arc::new(c);
        self.charge(n + 64);
        self.chunks.borrow_mut().insert(id, c.clone());
        Ok(c)
    }

    /// A lot no longer live (in its chunk), if the chunk has it.
    pub fn closed_lot(&self, w: u64, no: u32) -> R<Option<Lot>> {
        let (c, _) = chunk_of(no);
        match &*self.chunk(ChunkId::Lots(w, c))? {
            Chunk::Lots(v) => Ok(v.iter().find(|l| l.no == no).cloned()),
            _ => unreachable!("a lot chunk id holds lots"),
        }
    }

    /// A redemption as its chunk stores it (with its allocations when they are inline).
    pub fn stored_redemption(&self, w: u64, no: u32) -> R<Option<StoredRedemption>> {
        let (c, _) = chunk_of(no);
        match &*self.chunk(ChunkId::Redemptions(w, c))? {
            Chunk::Redemptions(v) => Ok(v.iter().find(|r| r.rec.no == no).cloned()),
            _ => unreachable!("a redemption chunk id holds redemptions"),
        }
    }

    pub fn closed_hold(&self, w: u64, no: u32) -> R<Option<HoldRec>> {
        let (c, _) = chunk_of(no);
        match &*self.chunk(ChunkId::Holds(w, c))? {
            Chunk::Holds(v) => Ok(v.iter().find(|h| h.no == no).cloned()),
            _ => unreachable!("a hold chunk id holds holds"),
        }
    }
}

/// The next key after `after` (or the first) in a sorted slice, within `(lo, hi)`, for which
/// `skip` is false.
pub(crate) fn next_in<K: Copy + Ord>(
    keys: &[K],
    lo: K,
    hi: K,
    after: Option<K>,
    skip: &dyn Fn(&K) -> bool,
) -> Option<K> {
    let start = match after {
        Some(a) => keys.partition_point(|k| *k <= a),
        None => keys.partition_point(|k| *k < lo),
    };
    keys[start..]
        .iter()
        .take_while(|k| **k <= hi)
        .find(|k| !skip(k))
        .copied()
}

impl Backing for Cached {
    fn ledger(&self) -> R<LedgerState> {
        Ok(self.l2.counters)
    }
    fn program(&self, id: u64) -> R<Option<Program>> {
        self.l2.program(id)
    }
    fn holder(&self, id: [u8; 16]) -> R<Option<HolderRec>> {
        self.l2.holder(id)
    }
    fn holder_by_identity(&self, s: &str) -> R<Option<[u8; 16]>> {
        self.l2.holder_by_identity(s)
    }
    fn holder_by_email(&self, s: &str) -> R<Option<[u8; 16]>> {
        self.l2.holder_by_email(s)
    }
    fn wallet_by_uuid(&self, id: [u8; 16]) -> R<Option<u64>> {
        if let Some(n) = self.uuids.borrow().get(&id) {
            return Ok(*n);
        }
        let n = self.l2.number_of(id)?;
        self.charge(48);
        self.uuids.borrow_mut().insert(id, n);
        Ok(n)
    }
    fn wallet_by_external(&self, s: &str) -> R<Option<u64>> {
        self.l2.wallet_by_external(s)
    }
    fn wallet_by_card(&self, s: &str) -> R<Option<u64>> {
        self.l2.wallet_by_card(s)
    }
    fn wallet(&self, no: u64) -> R<Option<WalletState>> {
        if no == LEDGER_STREAM {
            return Ok(None);
        }
        Ok(self.image(no)?.map(|i| i.ws.clone()))
    }
    fn lot(&self, w: u64, no: u32) -> R<Option<Lot>> {
        let Some(img) = self.image(w)? else {
            return Ok(None);
        };
        if let Some(l) = img.lots.get(no)? {
            return Ok(Some(l));
        }
        if no == 0 || no > img.ws.lots {
            return Ok(None);
        }
        self.closed_lot(w, no)
    }
    fn name(&self, w: u64, k: NameKind, id: &str) -> R<Option<u32>> {
        self.l2.name(w, k, id)
    }
    fn hold(&self, w: u64, no: u32) -> R<Option<HoldRec>> {
        let Some(img) = self.image(w)? else {
            return Ok(None);
        };
        if let Some(h) = img.holds.get(&no) {
            return Ok(Some(h.clone()));
        }
        if no == 0 || no > img.ws.holds {
            return Ok(None);
        }
        self.closed_hold(w, no)
    }
    fn redemption(&self, w: u64, no: u32) -> R<Option<RedemptionRec>> {
        Ok(self.stored_redemption(w, no)?.map(|r| r.rec))
    }
    fn slice(&self, w: u64, o: Owner, idx: u32) -> R<Option<Slice>> {
        // A redemption's few allocations are kept in its own record.
        if let Owner::Redemption(no) = o
            && let Some(r) = self.stored_redemption(w, no)?
            && let Some(v) = r.slices
        {
            return Ok(v.get(idx as usize).copied());
        }
        let (c, i) = chunk_of(idx);
        match &*self.chunk(ChunkId::Slices(w, o, c))? {
            Chunk::Slices(v) => Ok(v.get(i).copied()),
            _ => unreachable!("a slice chunk id holds slices"),
        }
    }
    fn cons_next(
        &self,
        w: u64,
        pocket: u16,
        after: Option<ConsKey>,
        skip: &dyn Fn(&ConsKey) -> bool,
    ) -> R<Option<ConsKey>> {
        let Some(img) = self.image(w)? else {
            return Ok(None);
        };
        let (lo, hi) = ConsKey::bounds(w, pocket);
        Ok(next_in(&img.cons, lo, hi, after, skip))
    }
    fn due_next(
        &self,
        w: u64,
        after: Option<DueKey>,
        skip: &dyn Fn(&DueKey) -> bool,
    ) -> R<Option<DueKey>> {
        let Some(img) = self.image(w)? else {
            return Ok(None);
        };
        let (lo, hi) = DueKey::bounds(w);
        Ok(next_in(&img.due, lo, hi, after, skip))
    }
    fn wallets_due(&self, upto: i64) -> R<Vec<u64>> {
        Ok(self
            .l2
            .wallets_due(upto)?
            .into_iter()
            .map(|(_, w)| w)
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A holder row of either form reads back; the old form as registered at an unknown
    /// instant. Neither form decodes as the other.
    #[test]
    fn holder_rows_of_both_forms_decode() {
        let holder = Holder {
            holder: [7; 16],
            identity: Some("u1".into()),
            email: None,
        };
        let rec = HolderRec {
            holder: holder.clone(),
            registered_at: 1_767_225_600_000_000_000,
        };
        assert_eq!(decode_holder(&encode(&rec)).unwrap(), rec);
        let old = decode_holder(&encode(&holder)).unwrap();
        assert_eq!(old.holder, holder);
        assert_eq!(old.registered_at, HolderRec::UNKNOWN_SINCE);
        assert!(decode::<Holder>("holder", &encode(&rec)).is_err());
        assert!(decode::<HolderRec>("holder", &encode(&holder)).is_err());
        assert!(decode_holder(&[1, 2, 3]).is_err());
    }
}
