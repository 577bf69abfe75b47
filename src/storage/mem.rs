//! The in-memory layer: every change the durable log holds that the flushed projection does not
//! reflect yet, produced by the same `apply` (a command group's [`Changes`] are merged in after
//! its log records are durable).
//!
//! It is made of persistent maps (`imbl`): a clone shares structure, so a reader's snapshot is a
//! few pointer copies and never blocks the writer, and merging a group costs O(what changed ×
//! log n). Each wallet present keeps its *complete* consumable and due indexes (taken from the
//! flushed row when the wallet first enters the layer), so an index look-up never merges layers.
//!
//! Invariants: a wallet in [`Mem::wallets`] is in [`Mem::uuids`]; its `positions` are those of
//! events `first_seq ..= ws.seq`, gapless; its indexes equal what its lots and holds imply.

use super::l2::{Cached, IdemRecord};
use super::log::LogKey;
use crate::domain::state::*;
use crate::error::StorageError;
use crate::model::Program;
use imbl::{HashMap as PMap, OrdMap, OrdSet, Vector};
use std::ops::Bound::{Excluded, Included};
use std::sync::Arc;

type R<T> = Result<T, StorageError>;

/// One wallet's part of the layer.
#[derive(Clone, Debug)]
pub struct WalletMem {
    pub ws: Arc<WalletState>,
    /// Records changed since the flush.
    pub lots: OrdMap<u32, Arc<Lot>>,
    pub holds: OrdMap<u32, Arc<HoldRec>>,
    pub redemptions: OrdMap<u32, Arc<RedemptionRec>>,
    pub slices: OrdMap<(Owner, u32), Slice>,
    pub names: PMap<(NameKind, String), u32>,
    pub lifecycle: OrdMap<u32, Arc<LifecycleRec>>,
    pub checkpoints: OrdMap<u64, Arc<Checkpoint>>,
    /// Log positions of events `first_seq ..`.
    pub positions: Vector<u64>,
    pub first_seq: u64,
    /// The wallet's whole consumable and due indexes.
    pub cons: KeySet<ConsKey>,
    pub due: KeySet<DueKey>,
    /// Whether the flushed projection has the wallet (a flush then rewrites its row rather than
    /// adding one).
    pub flushed: bool,
}

impl WalletMem {
    fn new_wallet(ws: WalletState) -> WalletMem {
        WalletMem {
            ws: Arc::new(ws),
            lots: OrdMap::new(),
            holds: OrdMap::new(),
            redemptions: OrdMap::new(),
            slices: OrdMap::new(),
            names: PMap::new(),
            lifecycle: OrdMap::new(),
            checkpoints: OrdMap::new(),
            positions: Vector::new(),
            first_seq: 1,
            cons: KeySet::default(),
            due: KeySet::default(),
            flushed: false,
        }
    }

    fn from_flushed(img: &super::WalletImage) -> WalletMem {
        WalletMem {
            first_seq: img.ws.seq + 1,
            cons: KeySet::over(img.cons.clone()),
            due: KeySet::over(img.due.clone()),
            flushed: true,
            ..WalletMem::new_wallet(img.ws.clone())
        }
    }

    /// Log positions of events `from..=to` this layer holds.
    pub fn positions_between(&self, from: u64, to: u64) -> Vec<u64> {
        let lo = from.max(self.first_seq);
        if lo > to {
            return Vec::new();
        }
        let a = (lo - self.first_seq) as usize;
        let b = ((to - self.first_seq + 1) as usize).min(self.positions.len());
        if a >= b {
            return Vec::new();
        }
        self.positions.clone().slice(a..b).into_iter().collect()
    }
}

/// A sorted set of index keys as the flushed row had them (`base`, shared with the decoded
/// image: a wallet entering the layer costs no copy of its index) with the layer's changes on
/// top: `add` (keys not in `base`) and `del` (keys of `base` removed). Once the changes outgrow
/// a quarter of `base` they are folded into a new `base`, so a scan never skips more than that
/// many removed keys.
#[derive(Clone, Debug)]
pub struct KeySet<K: Ord + Copy> {
    base: Arc<[K]>,
    add: OrdSet<K>,
    del: OrdSet<K>,
}

impl<K: Ord + Copy> Default for KeySet<K> {
    fn default() -> Self {
        KeySet {
            base: Arc::from(Vec::new()),
            add: OrdSet::new(),
            del: OrdSet::new(),
        }
    }
}

impl<K: Ord + Copy + std::fmt::Debug> KeySet<K> {
    pub fn over(base: Arc<[K]>) -> KeySet<K> {
        KeySet {
            base,
            ..KeySet::default()
        }
    }

    fn in_base(&self, k: &K) -> bool {
        self.base.binary_search(k).is_ok()
    }

    pub fn insert(&mut self, k: K) {
        if self.in_base(&k) {
            self.del.remove(&k);
        } else {
            self.add.insert(k);
        }
        self.fold_if_large();
    }

    pub fn remove(&mut self, k: &K) {
        if self.in_base(k) {
            self.del.insert(*k);
        } else {
            self.add.remove(k);
        }
        self.fold_if_large();
    }

    fn fold_if_large(&mut self) {
        let changes = self.add.len() + self.del.len();
        if changes > 32 && changes * 4 > self.base.len() {
            let v: Vec<K> = self.iter().collect();
            *self = KeySet::over(Arc::from(v));
        }
    }

    pub fn contains(&self, k: &K) -> bool {
        self.add.contains(k) || (self.in_base(k) && !self.del.contains(k))
    }

    /// Every key, ascending.
    pub fn iter(&self) -> impl Iterator<Item = K> + '_ {
        let mut base = self
            .base
            .iter()
            .copied()
            .filter(|k| !self.del.contains(k))
            .peekable();
        let mut add = self.add.iter().copied().peekable();
        std::iter::from_fn(move || match (base.peek(), add.peek()) {
            (Some(b), Some(a)) if a < b => add.next(),
            (Some(_), _) => base.next(),
            (None, _) => add.next(),
        })
    }

    pub fn len(&self) -> usize {
        self.base.len() - self.del.len() + self.add.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The first key after `after` (from `lo` when `None`), up to `hi`, that `skip` refuses.
    pub fn next(&self, lo: K, hi: K, after: Option<K>, skip: &dyn Fn(&K) -> bool) -> Option<K> {
        let a = match after {
            Some(a) => self
                .add
                .range((Excluded(a), Included(hi)))
                .find(|k| !skip(k)),
            None => self
                .add
                .range((Included(lo), Included(hi)))
                .find(|k| !skip(k)),
        }
        .copied();
        let start = match after {
            Some(a) => self.base.partition_point(|k| *k <= a),
            None => self.base.partition_point(|k| *k < lo),
        };
        let b = self.base[start..]
            .iter()
            .take_while(|k| **k <= hi)
            .find(|k| !self.del.contains(*k) && !skip(k))
            .copied();
        match (a, b) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, None) => a,
            (None, b) => b,
        }
    }
}

/// The layer. `Clone` is cheap (structure is shared).
#[derive(Clone, Debug, Default)]
pub struct Mem {
    /// The ledger counters, when anything changed them since the flush.
    pub ledger: Option<LedgerState>,
    pub programs: PMap<u64, Arc<Program>>,
    pub holders: PMap<[u8; 16], Arc<HolderRec>>,
    pub identities: PMap<String, [u8; 16]>,
    pub emails: PMap<String, [u8; 16]>,
    /// Every wallet in `wallets`, by uuid.
    pub uuids: PMap<[u8; 16], u64>,
    pub externals: PMap<String, u64>,
    pub cards: PMap<String, u64>,
    pub holder_wallets: OrdSet<([u8; 16], u64)>,
    pub wallets: PMap<u64, Arc<WalletMem>>,
    /// Idempotency records of keyed commands since the flush.
    pub idem: PMap<String, Arc<IdemRecord>>,
    /// The log key of the last record the layer reflects.
    pub last: LogKey,
    /// Approximate heap bytes: compared with the memory budget.
    pub bytes: usize,
    /// Events since the flush.
    pub events: u64,
}

/// Approximate sizes of what the layer stores, for its budget (persistent-map nodes included).
mod cost {
    pub const WALLET: usize = 640;
    pub const LOT: usize = 240;
    pub const HOLD: usize = 200;
    pub const REDEMPTION: usize = 200;
    pub const SLICE: usize = 64;
    pub const NAME: usize = 160;
    pub const LIFECYCLE: usize = 160;
    pub const CHECKPOINT: usize = 256;
    pub const INDEX_KEY: usize = 48;
    pub const POSITION: usize = 12;
    pub const GLOBAL: usize = 256;
}

impl Mem {
    /// An empty layer over a projection flushed up to `last`.
    pub fn empty(last: LogKey) -> Mem {
        Mem {
            last,
            ..Mem::default()
        }
    }

    pub fn is_empty(&self) -> bool {
        self.wallets.is_empty()
            && self.ledger.is_none()
            && self.programs.is_empty()
            && self.holders.is_empty()
            && self.idem.is_empty()
    }

    /// Merges a command group's changes (decided over a [`Layered`] view of this layer and
    /// `base`), the idempotency records it made, and the key of its last log record.
    pub fn merge(
        &mut self,
        c: Changes,
        keys: Vec<(String, IdemRecord)>,
        last: LogKey,
        base: &Cached,
    ) -> R<()> {
        let mut bytes = 0usize;
        if let Some(l) = c.ledger {
            self.ledger = Some(l);
        }
        for (k, p) in c.programs {
            self.programs.insert(k, Arc::new(p));
            bytes += cost::GLOBAL;
        }
        for (k, h) in c.holders {
            self.holders.insert(k, Arc::new(h));
            bytes += cost::GLOBAL;
        }
        for (k, v) in c.identities {
            self.identities.insert(k, v);
            bytes += cost::GLOBAL;
        }
        for (k, v) in c.emails {
            self.emails.insert(k, v);
            bytes += cost::GLOBAL;
        }
        for (k, v) in c.wallet_uuids {
            self.uuids.insert(k, v);
        }
        for (k, v) in c.externals {
            self.externals.insert(k, v);
            bytes += cost::GLOBAL;
        }
        for (k, v) in c.cards {
            self.cards.insert(k, v);
            bytes += cost::GLOBAL;
        }
        for hw in c.holder_wallets {
            self.holder_wallets.insert(hw);
            bytes += cost::GLOBAL;
        }
        for (k, rec) in keys {
            self.idem.insert(k, Arc::new(rec));
            bytes += cost::GLOBAL;
        }

        // Every wallet a group changes has its header among the changes (`apply` rewrites it
        // with every event), so these are all the wallets touched.
        let mut touched: NumMap<u64, WalletMem> = NumMap::default();
        for (w, ws) in c.wallets {
            let mut wm = match self.wallets.get(&w) {
                Some(m) => (**m).clone(),
                None => match base.image(w)? {
                    Some(img) => WalletMem::from_flushed(&img),
                    None => WalletMem::new_wallet(ws.clone()),
                },
            };
            wm.ws = Arc::new(ws);
            bytes += cost::WALLET;
            touched.insert(w, wm);
        }
        fn wallet(touched: &mut NumMap<u64, WalletMem>, w: u64) -> R<&mut WalletMem> {
            touched.get_mut(&w).ok_or_else(|| {
                StorageError(format!(
                    "wallet {w} changed without its header: the group's changes are inconsistent"
                ))
            })
        }
        for ((w, no), l) in c.lots {
            wallet(&mut touched, w)?.lots.insert(no, Arc::new(l));
            bytes += cost::LOT;
        }
        for ((w, no), h) in c.holds {
            wallet(&mut touched, w)?.holds.insert(no, Arc::new(h));
            bytes += cost::HOLD;
        }
        for ((w, no), r) in c.redemptions {
            wallet(&mut touched, w)?.redemptions.insert(no, Arc::new(r));
            bytes += cost::REDEMPTION;
        }
        for ((w, o, i), s) in c.slices {
            wallet(&mut touched, w)?.slices.insert((o, i), s);
            bytes += cost::SLICE;
        }
        for ((w, k, id), no) in c.names {
            wallet(&mut touched, w)?.names.insert((k, id), no);
            bytes += cost::NAME;
        }
        for (w, idx, rec) in c.lifecycle {
            wallet(&mut touched, w)?
                .lifecycle
                .insert(idx, Arc::new(rec));
            bytes += cost::LIFECYCLE;
        }
        for (w, cp) in c.checkpoints {
            wallet(&mut touched, w)?
                .checkpoints
                .insert(cp.seq, Arc::new(cp));
            bytes += cost::CHECKPOINT;
        }
        for k in c.cons_del {
            wallet(&mut touched, k.wallet)?.cons.remove(&k);
        }
        for k in c.cons_add {
            wallet(&mut touched, k.wallet)?.cons.insert(k);
            bytes += cost::INDEX_KEY;
        }
        for k in c.due_del {
            wallet(&mut touched, k.wallet)?.due.remove(&k);
        }
        for k in c.due_add {
            wallet(&mut touched, k.wallet)?.due.insert(k);
            bytes += cost::INDEX_KEY;
        }
        let mut events = 0u64;
        for p in &c.events {
            events += 1;
            if p.stream == LEDGER_STREAM {
                continue;
            }
            let wm = wallet(&mut touched, p.stream)?;
            let expect = wm.first_seq + wm.positions.len() as u64;
            if p.seq != expect {
                return Err(StorageError(format!(
                    "wallet {}: event {} follows event {} in the layer",
                    p.stream,
                    p.seq,
                    expect - 1
                )));
            }
            wm.positions.push_back(p.position);
            bytes += cost::POSITION;
        }
        for (w, wm) in touched {
            self.uuids.insert(wm.ws.uuid, w);
            self.wallets.insert(w, Arc::new(wm));
        }
        self.last = last;
        self.bytes += bytes;
        self.events += events;
        Ok(())
    }
}

/// The ledger as of the layer over the flushed projection: what commands decide on and reads
/// read. Records: the layer's, else the projection's. Indexes: the layer's whole index of a
/// wallet it holds, else the projection's.
pub struct Layered<'a> {
    pub mem: &'a Mem,
    pub base: &'a Cached,
}

impl Layered<'_> {
    fn wm(&self, w: u64) -> Option<&Arc<WalletMem>> {
        self.mem.wallets.get(&w)
    }
}

impl Backing for Layered<'_> {
    fn ledger(&self) -> R<LedgerState> {
        match self.mem.ledger {
            Some(l) => Ok(l),
            None => self.base.ledger(),
        }
    }
    fn program(&self, id: u64) -> R<Option<Program>> {
        match self.mem.programs.get(&id) {
            Some(p) => Ok(Some((**p).clone())),
            None => self.base.program(id),
        }
    }
    fn holder(&self, id: [u8; 16]) -> R<Option<HolderRec>> {
        match self.mem.holders.get(&id) {
            Some(h) => Ok(Some((**h).clone())),
            None => self.base.holder(id),
        }
    }
    fn holder_by_identity(&self, s: &str) -> R<Option<[u8; 16]>> {
        match self.mem.identities.get(s) {
            Some(h) => Ok(Some(*h)),
            None => self.base.holder_by_identity(s),
        }
    }
    fn holder_by_email(&self, s: &str) -> R<Option<[u8; 16]>> {
        match self.mem.emails.get(s) {
            Some(h) => Ok(Some(*h)),
            None => self.base.holder_by_email(s),
        }
    }
    fn wallet_by_uuid(&self, id: [u8; 16]) -> R<Option<u64>> {
        match self.mem.uuids.get(&id) {
            Some(w) => Ok(Some(*w)),
            None => self.base.wallet_by_uuid(id),
        }
    }
    fn wallet_by_external(&self, s: &str) -> R<Option<u64>> {
        match self.mem.externals.get(s) {
            Some(w) => Ok(Some(*w)),
            None => self.base.wallet_by_external(s),
        }
    }
    fn wallet_by_card(&self, s: &str) -> R<Option<u64>> {
        match self.mem.cards.get(s) {
            Some(w) => Ok(Some(*w)),
            None => self.base.wallet_by_card(s),
        }
    }
    fn wallet(&self, no: u64) -> R<Option<WalletState>> {
        match self.wm(no) {
            Some(m) => Ok(Some((*m.ws).clone())),
            None => self.base.wallet(no),
        }
    }
    fn lot(&self, w: u64, no: u32) -> R<Option<Lot>> {
        if let Some(l) = self.wm(w).and_then(|m| m.lots.get(&no)) {
            return Ok(Some((**l).clone()));
        }
        self.base.lot(w, no)
    }
    fn name(&self, w: u64, k: NameKind, id: &str) -> R<Option<u32>> {
        if let Some(m) = self.wm(w)
            && let Some(n) = m.names.get(&(k, id.to_string()))
        {
            return Ok(Some(*n));
        }
        self.base.name(w, k, id)
    }
    fn hold(&self, w: u64, no: u32) -> R<Option<HoldRec>> {
        if let Some(h) = self.wm(w).and_then(|m| m.holds.get(&no)) {
            return Ok(Some((**h).clone()));
        }
        self.base.hold(w, no)
    }
    fn redemption(&self, w: u64, no: u32) -> R<Option<RedemptionRec>> {
        if let Some(r) = self.wm(w).and_then(|m| m.redemptions.get(&no)) {
            return Ok(Some((**r).clone()));
        }
        self.base.redemption(w, no)
    }
    fn slice(&self, w: u64, o: Owner, idx: u32) -> R<Option<Slice>> {
        if let Some(s) = self.wm(w).and_then(|m| m.slices.get(&(o, idx))) {
            return Ok(Some(*s));
        }
        self.base.slice(w, o, idx)
    }
    fn cons_next(
        &self,
        w: u64,
        pocket: u16,
        after: Option<ConsKey>,
        skip: &dyn Fn(&ConsKey) -> bool,
    ) -> R<Option<ConsKey>> {
        let Some(m) = self.wm(w) else {
            return self.base.cons_next(w, pocket, after, skip);
        };
        let (lo, hi) = ConsKey::bounds(w, pocket);
        Ok(m.cons.next(lo, hi, after, skip))
    }
    fn due_next(
        &self,
        w: u64,
        after: Option<DueKey>,
        skip: &dyn Fn(&DueKey) -> bool,
    ) -> R<Option<DueKey>> {
        let Some(m) = self.wm(w) else {
            return self.base.due_next(w, after, skip);
        };
        let (lo, hi) = DueKey::bounds(w);
        Ok(m.due.next(lo, hi, after, skip))
    }
    fn wallets_due(&self, upto: i64) -> R<Vec<u64>> {
        // The flushed sweep index is exact for the wallets the layer does not hold; the layer's
        // headers are exact for the rest.
        let mut v: Vec<u64> = self
            .base
            .l2()
            .wallets_due(upto)?
            .into_iter()
            .map(|(_, w)| w)
            .filter(|w| !self.mem.wallets.contains_key(w))
            .collect();
        for (w, m) in self.mem.wallets.iter() {
            if m.ws.next_due.is_some_and(|d| d <= upto) {
                v.push(*w);
            }
        }
        v.sort_unstable();
        v.dedup();
        Ok(v)
    }
}
