//! State: the records the projection keeps, the read-only [`Backing`] port through which committed
//! state is read, and [`Tx`], the copy-on-write overlay in which commands are decided and applied.
//!
//! The same `Tx` serves three callers: the write path (over a redb write transaction), reads at a
//! later instant (over a read transaction, discarded afterwards) and replay (over [`Empty`]). It
//! keeps the lot indexes (consumable order, due transitions) by diffing each record's index keys
//! on every write, so the indexes cannot disagree with the records whichever path wrote them.
//!
//! Every mutation pushes an undo entry, so a failed command inside a transaction rolls back to a
//! [`Savepoint`] and leaves no trace.

use crate::domain::event::Event;
use crate::error::StorageError;
use crate::model::{Card, Figures, Holder, LifecycleAction, Order, PaymentMethod, Program, Status};
use bincode::{Decode, Encode};
use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap, HashSet};

pub type R<T> = Result<T, StorageError>;

/// The ledger stream's number: programs and holders are events on stream 0.
pub const LEDGER_STREAM: u64 = 0;

/// Ledger-wide counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Encode, Decode)]
pub struct LedgerState {
    /// Global position of the last event (0: empty log).
    pub position: u64,
    /// Sequence of the last event on the ledger stream.
    pub ledger_seq: u64,
    /// Number of the last wallet opened.
    pub wallets: u64,
    /// Number of the last pocket opened (pocket numbers are ledger-wide).
    pub pockets: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct PocketState {
    pub key: String,
    pub name: String,
    pub kind: String,
    pub asset: String,
    pub scale: u32,
    pub number: u64,
    pub uuid: [u8; 16],
    pub figures: Figures,
    /// Σ of every credit ever made to the pocket (never reduced): bounds every figure by
    /// `MAX_UNITS` (`amount_overflow`).
    pub issued: u128,
}

/// A holder as the projection keeps it: the registration's payload (the event's, unchanged) and
/// the instant of the registration, so that a view or look-up at an earlier instant does not find
/// the holder.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct HolderRec {
    pub holder: Holder,
    /// The `holder_registered` event's instant (ns). [`HolderRec::UNKNOWN_SINCE`] for a row
    /// written by a build that did not keep it.
    pub registered_at: i64,
}

impl HolderRec {
    /// The `registered_at` of a holder row written before rows kept the instant: such a holder
    /// is found at every instant, as it was then. The log has the instant; a rebuild of the
    /// projection (migration, compaction does not) restores it.
    pub const UNKNOWN_SINCE: i64 = i64::MIN;

    /// Whether the holder was registered at or before `at` (ns).
    pub fn registered_by(&self, at: i64) -> bool {
        self.registered_at <= at
    }
}

/// The materialized header of a wallet: everything but its lots, holds and redemptions.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct WalletState {
    pub uuid: [u8; 16],
    pub number: u64,
    pub holder: [u8; 16],
    pub program: u64,
    pub name: String,
    pub external_id: Option<String>,
    pub status: Status,
    pub order: Order,
    pub created_at: i64,
    /// Time of the last event.
    pub updated_at: i64,
    /// Sequence of the last event (gapless from 1).
    pub seq: u64,
    pub pockets: Vec<PocketState>,
    pub lots: u32,
    pub holds: u32,
    pub open_holds: u32,
    pub redemptions: u32,
    pub lifecycle: u32,
    pub methods: Vec<PaymentMethod>,
    pub cards: Vec<Card>,
    /// The earliest pending time-driven transition (activation, hold time-out, expiry), if any:
    /// a read at an instant before it needs no derivation at all. Kept by [`Tx::into_changes`]
    /// from the due index, on the write path and in replay alike.
    pub next_due: Option<i64>,
}

impl WalletState {
    pub fn pocket_index(&self, key: &str) -> Option<u16> {
        self.pockets
            .iter()
            .position(|p| p.key == key)
            .map(|i| i as u16)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct Lot {
    pub no: u32,
    pub id: String,
    pub pocket: u16,
    /// Net of reversals.
    pub amount: u128,
    /// Unspent and not held.
    pub free: u128,
    pub held: u128,
    /// Redeemed or captured (refunds do not reduce it; see `refunded`).
    pub spent: u128,
    pub refunded: u128,
    pub expired: u128,
    pub issued_at: i64,
    pub activates_at: i64,
    pub expires_at: Option<i64>,
    pub activated: bool,
    /// Position in the program's consumption order (expiry or 0), then `no`.
    pub order_key: i64,
}

impl Lot {
    /// SPEC §5 per lot: `amount = free + held + spent − refunded + expired`.
    pub fn check(&self) -> Result<(), String> {
        let rhs = self
            .free
            .checked_add(self.held)
            .and_then(|v| v.checked_add(self.spent))
            .and_then(|v| v.checked_add(self.expired))
            .and_then(|v| v.checked_sub(self.refunded));
        if rhs != Some(self.amount) {
            return Err(format!(
                "lot {:?}: amount {} != free {} + held {} + spent {} - refunded {} + expired {}",
                self.id, self.amount, self.free, self.held, self.spent, self.refunded, self.expired
            ));
        }
        if !self.activated && (self.held | self.spent | self.expired) != 0 {
            return Err(format!("lot {:?} is promised but has been used", self.id));
        }
        Ok(())
    }

    pub fn cons_key(&self, w: u64) -> Option<ConsKey> {
        (self.activated && self.free > 0).then_some(ConsKey {
            wallet: w,
            pocket: self.pocket,
            order: self.order_key,
            lot: self.no,
        })
    }

    pub fn due_key(&self, w: u64) -> Option<DueKey> {
        // A promised lot reversed to zero has nothing to activate: no transition is due, so a
        // closed wallet never receives one.
        if !self.activated && self.amount > 0 {
            Some(DueKey {
                wallet: w,
                at: self.activates_at,
                kind: DueKind::Activation,
                no: self.no,
            })
        } else if self.activated && self.free > 0 {
            self.expires_at.map(|e| DueKey {
                wallet: w,
                at: e,
                kind: DueKind::Expiry,
                no: self.no,
            })
        } else {
            None
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Encode, Decode)]
pub enum HoldState {
    Open,
    Captured,
    Released,
}

#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct HoldRec {
    pub no: u32,
    pub id: String,
    pub pocket: u16,
    pub amount: u128,
    pub expires_at: Option<i64>,
    pub state: HoldState,
    /// Number of lot slices (rows in the slice table under this hold).
    pub slices: u32,
}

impl HoldRec {
    pub fn due_key(&self, w: u64) -> Option<DueKey> {
        if self.state != HoldState::Open {
            return None;
        }
        self.expires_at.map(|e| DueKey {
            wallet: w,
            at: e,
            kind: DueKind::HoldTimeout,
            no: self.no,
        })
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct RedemptionRec {
    pub no: u32,
    pub id: String,
    pub pocket: u16,
    pub amount: u128,
    pub refunded: u128,
    /// Number of allocations (rows in the slice table under this redemption).
    pub allocs: u32,
    /// Refunds restore allocations last-consumed first: allocations at index ≥ `refund_pos` are
    /// fully restored, and `refund_part` units of allocation `refund_pos − 1` are.
    pub refund_pos: u32,
    pub refund_part: u128,
}

/// One slice of a lot reserved by a hold, or consumed by a redemption (an allocation).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Encode, Decode)]
pub struct Slice {
    pub lot: u32,
    pub units: u128,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Encode, Decode)]
pub enum Owner {
    Hold(u32),
    Redemption(u32),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Encode, Decode)]
pub enum NameKind {
    Lot,
    Hold,
    Redemption,
}

impl NameKind {
    /// The prefix of the ids the ledger assigns to records of this kind (`lot-N`, …).
    pub fn prefix(self) -> &'static str {
        match self {
            NameKind::Lot => "lot",
            NameKind::Hold => "hold",
            NameKind::Redemption => "redemption",
        }
    }

    /// `{prefix}-{no}`: the id the ledger assigns record `no`. Built by hand: every lot a read
    /// decodes from a row names itself this way, and `format!` cost more than the decode.
    pub fn canonical_name(self, no: u32) -> String {
        let prefix = self.prefix();
        let mut digits = [0u8; 10];
        let mut i = digits.len();
        let mut n = no;
        loop {
            i -= 1;
            digits[i] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        let mut s = String::with_capacity(prefix.len() + 1 + digits.len() - i);
        s.push_str(prefix);
        s.push('-');
        for d in &digits[i..] {
            s.push(char::from(*d));
        }
        s
    }

    /// `N` when `id` is exactly `{prefix}-{N}` with `N` in canonical decimal (no sign, no leading
    /// zero, ≥ 1, fits u32). A record whose id is the canonical name of its own number has no name
    /// row: the record is found by its number and its stored id confirms the name (see
    /// [`Tx::name`]). Strict, so that exactly one string maps to each number.
    pub fn canonical_no(self, id: &str) -> Option<u32> {
        let digits = id.strip_prefix(self.prefix())?.strip_prefix('-')?;
        let first = *digits.as_bytes().first()?;
        if first == b'0' || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        digits.parse().ok()
    }
}

/// A lifecycle event, kept for the Juicyway view.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct LifecycleRec {
    pub action: LifecycleAction,
    pub event_id: [u8; 16],
    pub at: i64,
    pub reason: Option<String>,
}

/// A lot's index keys as they were when it was read for an update.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LotKeys(Option<ConsKey>, Option<DueKey>);

impl LotKeys {
    /// A lot that does not exist yet has no index entries.
    pub const NEW: LotKeys = LotKeys(None, None);
}

/// Key of the consumable index: active lots with free value, in consumption order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConsKey {
    pub wallet: u64,
    pub pocket: u16,
    pub order: i64,
    pub lot: u32,
}

impl ConsKey {
    /// The lowest and highest keys of pocket `pocket` of wallet `w`: the bounds of its lots.
    pub fn bounds(w: u64, pocket: u16) -> (ConsKey, ConsKey) {
        (
            ConsKey {
                wallet: w,
                pocket,
                order: i64::MIN,
                lot: 0,
            },
            ConsKey {
                wallet: w,
                pocket,
                order: i64::MAX,
                lot: u32::MAX,
            },
        )
    }
}

/// Ties at one instant: activations, then hold time-outs, then expiries (SPEC §4.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DueKind {
    Activation = 0,
    HoldTimeout = 1,
    Expiry = 2,
}

/// Key of the due index: a time-driven transition of one wallet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DueKey {
    pub wallet: u64,
    pub at: i64,
    pub kind: DueKind,
    pub no: u32,
}

impl DueKey {
    /// The lowest and highest keys of wallet `w`: the bounds of its due transitions.
    pub fn bounds(w: u64) -> (DueKey, DueKey) {
        (
            DueKey {
                wallet: w,
                at: i64::MIN,
                kind: DueKind::Activation,
                no: 0,
            },
            DueKey {
                wallet: w,
                at: i64::MAX,
                kind: DueKind::Expiry,
                no: u32::MAX,
            },
        )
    }
}

/// Read-only access to committed state. Implemented by storage (over a redb transaction) and by
/// [`Empty`] (for replay). Never decides anything.
pub trait Backing {
    fn ledger(&self) -> R<LedgerState>;
    fn program(&self, id: u64) -> R<Option<Program>>;
    fn holder(&self, id: [u8; 16]) -> R<Option<HolderRec>>;
    fn holder_by_identity(&self, identity: &str) -> R<Option<[u8; 16]>>;
    fn holder_by_email(&self, normalized: &str) -> R<Option<[u8; 16]>>;
    fn wallet_by_uuid(&self, id: [u8; 16]) -> R<Option<u64>>;
    fn wallet_by_external(&self, ext: &str) -> R<Option<u64>>;
    fn wallet_by_card(&self, card: &str) -> R<Option<u64>>;
    fn wallet(&self, no: u64) -> R<Option<WalletState>>;
    fn lot(&self, w: u64, no: u32) -> R<Option<Lot>>;
    /// The name row of `id`, if any. Ids that are their record's canonical name
    /// ([`NameKind::canonical_no`]) have none: look ids up with [`Tx::name`].
    fn name(&self, w: u64, kind: NameKind, id: &str) -> R<Option<u32>>;
    fn hold(&self, w: u64, no: u32) -> R<Option<HoldRec>>;
    fn redemption(&self, w: u64, no: u32) -> R<Option<RedemptionRec>>;
    fn slice(&self, w: u64, owner: Owner, idx: u32) -> R<Option<Slice>>;
    /// First consumable key of `(w, pocket)` strictly after `after` (or the first) for which
    /// `skip` is false. One range scan: the overlay passes the keys it has deleted as `skip`.
    fn cons_next(
        &self,
        w: u64,
        pocket: u16,
        after: Option<ConsKey>,
        skip: &dyn Fn(&ConsKey) -> bool,
    ) -> R<Option<ConsKey>>;
    /// First due key of `w` strictly after `after` (or the first) for which `skip` is false.
    fn due_next(
        &self,
        w: u64,
        after: Option<DueKey>,
        skip: &dyn Fn(&DueKey) -> bool,
    ) -> R<Option<DueKey>>;
    /// Wallets whose earliest due transition is at or before `upto` (for `sweep`).
    fn wallets_due(&self, upto: i64) -> R<Vec<u64>>;
}

/// The empty ledger: replay starts here.
pub struct Empty;

impl Backing for Empty {
    fn ledger(&self) -> R<LedgerState> {
        Ok(LedgerState::default())
    }
    fn program(&self, _: u64) -> R<Option<Program>> {
        Ok(None)
    }
    fn holder(&self, _: [u8; 16]) -> R<Option<HolderRec>> {
        Ok(None)
    }
    fn holder_by_identity(&self, _: &str) -> R<Option<[u8; 16]>> {
        Ok(None)
    }
    fn holder_by_email(&self, _: &str) -> R<Option<[u8; 16]>> {
        Ok(None)
    }
    fn wallet_by_uuid(&self, _: [u8; 16]) -> R<Option<u64>> {
        Ok(None)
    }
    fn wallet_by_external(&self, _: &str) -> R<Option<u64>> {
        Ok(None)
    }
    fn wallet_by_card(&self, _: &str) -> R<Option<u64>> {
        Ok(None)
    }
    fn wallet(&self, _: u64) -> R<Option<WalletState>> {
        Ok(None)
    }
    fn lot(&self, _: u64, _: u32) -> R<Option<Lot>> {
        Ok(None)
    }
    fn name(&self, _: u64, _: NameKind, _: &str) -> R<Option<u32>> {
        Ok(None)
    }
    fn hold(&self, _: u64, _: u32) -> R<Option<HoldRec>> {
        Ok(None)
    }
    fn redemption(&self, _: u64, _: u32) -> R<Option<RedemptionRec>> {
        Ok(None)
    }
    fn slice(&self, _: u64, _: Owner, _: u32) -> R<Option<Slice>> {
        Ok(None)
    }
    fn cons_next(
        &self,
        _: u64,
        _: u16,
        _: Option<ConsKey>,
        _: &dyn Fn(&ConsKey) -> bool,
    ) -> R<Option<ConsKey>> {
        Ok(None)
    }
    fn due_next(
        &self,
        _: u64,
        _: Option<DueKey>,
        _: &dyn Fn(&DueKey) -> bool,
    ) -> R<Option<DueKey>> {
        Ok(None)
    }
    fn wallets_due(&self, _: i64) -> R<Vec<u64>> {
        Ok(Vec::new())
    }
}

/// How one event changed the figures of the one pocket it touched, signed. Stored beside each
/// event (and checked against `apply` by `verify`), it lets a read at an earlier instant start
/// from a checkpoint and sum deltas instead of replaying the wallet's history.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Encode, Decode)]
pub struct Delta {
    pub pocket: u16,
    pub promised: i128,
    pub credited: i128,
    pub redeemed: i128,
    pub expired: i128,
    pub on_hold: i128,
}

impl Delta {
    pub fn between(pocket: u16, a: &Figures, b: &Figures) -> Delta {
        let d = |x: u128, y: u128| y as i128 - x as i128;
        Delta {
            pocket,
            promised: d(a.promised, b.promised),
            credited: d(a.credited, b.credited),
            redeemed: d(a.redeemed, b.redeemed),
            expired: d(a.expired, b.expired),
            on_hold: d(a.on_hold, b.on_hold),
        }
    }

    /// Adds the delta to `f`; `Err` when a figure would leave its range (a corrupt record).
    pub fn add_to(&self, f: &mut Figures) -> Result<(), String> {
        let add = |x: &mut u128, d: i128, what: &str| -> Result<(), String> {
            let v = (*x as i128)
                .checked_add(d)
                .filter(|v| (0..=crate::limits::MAX_UNITS as i128).contains(v))
                .ok_or_else(|| format!("{what} {x} {d:+} leaves its range"))?;
            *x = v as u128;
            Ok(())
        };
        add(&mut f.promised, self.promised, "promised")?;
        add(&mut f.credited, self.credited, "credited")?;
        add(&mut f.redeemed, self.redeemed, "redeemed")?;
        add(&mut f.expired, self.expired, "expired")?;
        add(&mut f.on_hold, self.on_hold, "on_hold")?;
        f.check()
    }
}

/// A checkpoint is taken after every this many events of a wallet, so a read at an earlier
/// instant sums at most this many figure deltas from the nearest one.
pub const CHECKPOINT_EVERY: u64 = 256;

/// A wallet's figures and profile after one of its events: where as-of reads start.
#[derive(Clone, Debug, Default, PartialEq, Eq, Encode, Decode)]
pub struct Checkpoint {
    pub seq: u64,
    pub at: i64,
    pub figures: Vec<Figures>,
    pub methods: Vec<PaymentMethod>,
    pub cards: Vec<Card>,
}

impl Checkpoint {
    pub fn of(ws: &WalletState) -> Checkpoint {
        Checkpoint {
            seq: ws.seq,
            at: ws.updated_at,
            figures: ws.pockets.iter().map(|p| p.figures).collect(),
            methods: ws.methods.clone(),
            cards: ws.cards.clone(),
        }
    }
}

/// An event decided and applied in this transaction, waiting to be written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pending {
    pub stream: u64,
    pub seq: u64,
    pub position: u64,
    pub at: i64,
    pub event: Event,
    pub delta: Option<Delta>,
}

/// A fast hasher (FxHash's multiply-rotate) for the overlay's maps keyed by ledger-assigned
/// numbers. Maps keyed by client-chosen strings or UUIDs keep std's randomized SipHash, so a
/// client cannot craft collisions.
#[derive(Default, Clone, Copy)]
pub struct NumHasher(u64);

impl std::hash::Hasher for NumHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut b = [0u8; 8];
            b[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(b));
        }
    }
    fn write_u8(&mut self, i: u8) {
        self.write_u64(u64::from(i));
    }
    fn write_u16(&mut self, i: u16) {
        self.write_u64(u64::from(i));
    }
    fn write_u32(&mut self, i: u32) {
        self.write_u64(u64::from(i));
    }
    fn write_u64(&mut self, i: u64) {
        self.0 = (self.0.rotate_left(5) ^ i).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
    fn write_i64(&mut self, i: i64) {
        self.write_u64(i as u64);
    }
    fn write_usize(&mut self, i: usize) {
        self.write_u64(i as u64);
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

type NumBuild = std::hash::BuildHasherDefault<NumHasher>;
/// A map keyed by ledger-assigned numbers.
pub type NumMap<K, V> = HashMap<K, V, NumBuild>;
/// A set of ledger-assigned keys.
pub type NumSet<K> = HashSet<K, NumBuild>;

/// Everything a transaction changed, handed to storage to write.
#[derive(Default)]
pub struct Changes {
    pub ledger: Option<LedgerState>,
    pub programs: HashMap<u64, Program>,
    pub holders: HashMap<[u8; 16], HolderRec>,
    pub identities: HashMap<String, [u8; 16]>,
    pub emails: HashMap<String, [u8; 16]>,
    pub wallet_uuids: HashMap<[u8; 16], u64>,
    pub externals: HashMap<String, u64>,
    pub cards: HashMap<String, u64>,
    pub holder_wallets: Vec<([u8; 16], u64)>,
    pub wallets: NumMap<u64, WalletState>,
    pub lots: NumMap<(u64, u32), Lot>,
    pub names: HashMap<(u64, NameKind, String), u32>,
    pub holds: NumMap<(u64, u32), HoldRec>,
    pub redemptions: NumMap<(u64, u32), RedemptionRec>,
    pub slices: NumMap<(u64, Owner, u32), Slice>,
    pub lifecycle: Vec<(u64, u32, LifecycleRec)>,
    pub cons_add: BTreeSet<ConsKey>,
    pub cons_del: NumSet<ConsKey>,
    pub due_add: BTreeSet<DueKey>,
    pub due_del: NumSet<DueKey>,
    pub events: Vec<Pending>,
    /// A wallet's figures and profile after every [`CHECKPOINT_EVERY`]-th event: where as-of
    /// reads start (see [`Checkpoint`]).
    pub checkpoints: Vec<(u64, Checkpoint)>,
}

impl Changes {
    /// Empties every container, keeping its allocation. Returns whether the capacity kept is
    /// at most [`Scratch::MAX_CAPACITY`] entries in all.
    fn clear(&mut self) -> bool {
        // Destructured, so that a field added to `Changes` must be cleared here too.
        let Changes {
            ledger,
            programs,
            holders,
            identities,
            emails,
            wallet_uuids,
            externals,
            cards,
            holder_wallets,
            wallets,
            lots,
            names,
            holds,
            redemptions,
            slices,
            lifecycle,
            cons_add,
            cons_del,
            due_add,
            due_del,
            events,
            checkpoints,
        } = self;
        *ledger = None;
        programs.clear();
        holders.clear();
        identities.clear();
        emails.clear();
        wallet_uuids.clear();
        externals.clear();
        cards.clear();
        holder_wallets.clear();
        wallets.clear();
        lots.clear();
        names.clear();
        holds.clear();
        redemptions.clear();
        slices.clear();
        lifecycle.clear();
        cons_add.clear();
        cons_del.clear();
        due_add.clear();
        due_del.clear();
        events.clear();
        checkpoints.clear();
        let kept = programs.capacity()
            + holders.capacity()
            + identities.capacity()
            + emails.capacity()
            + wallet_uuids.capacity()
            + externals.capacity()
            + cards.capacity()
            + holder_wallets.capacity()
            + wallets.capacity()
            + lots.capacity()
            + names.capacity()
            + holds.capacity()
            + redemptions.capacity()
            + slices.capacity()
            + lifecycle.capacity()
            + cons_del.capacity()
            + due_del.capacity()
            + events.capacity()
            + checkpoints.capacity();
        kept <= Scratch::MAX_CAPACITY
    }

    fn is_empty(&self) -> bool {
        self.ledger.is_none()
            && self.programs.is_empty()
            && self.holders.is_empty()
            && self.identities.is_empty()
            && self.emails.is_empty()
            && self.wallet_uuids.is_empty()
            && self.externals.is_empty()
            && self.cards.is_empty()
            && self.holder_wallets.is_empty()
            && self.wallets.is_empty()
            && self.lots.is_empty()
            && self.names.is_empty()
            && self.holds.is_empty()
            && self.redemptions.is_empty()
            && self.slices.is_empty()
            && self.lifecycle.is_empty()
            && self.cons_add.is_empty()
            && self.cons_del.is_empty()
            && self.due_add.is_empty()
            && self.due_del.is_empty()
            && self.events.is_empty()
            && self.checkpoints.is_empty()
    }
}

/// The containers of a read-only overlay, empty, lent from one read to the next on the same
/// thread: a read deriving a couple of expiries otherwise spends a fifth of its time allocating
/// and freeing the overlay's maps. It holds no state (every container is emptied when the
/// overlay ends, and [`Tx::reading`] checks it in debug builds) and is bounded
/// ([`Scratch::MAX_CAPACITY`]).
#[derive(Default)]
pub struct Scratch {
    /// Boxed, as in [`Tx`]: the containers move between the overlay and the thread's slot on
    /// every read, and `Changes` is a kilobyte of headers.
    c: Box<Changes>,
    cons_floor: NumMap<(u64, u16), Floor<ConsKey>>,
    due_floor: NumMap<(u64, u16), Floor<DueKey>>,
    uuids: HashMap<[u8; 16], Option<u64>>,
}

impl Scratch {
    /// Entries of capacity, over all containers, beyond which a scratch is dropped rather than
    /// kept.
    pub const MAX_CAPACITY: usize = 256;

    fn is_empty(&self) -> bool {
        self.c.is_empty()
            && self.cons_floor.is_empty()
            && self.due_floor.is_empty()
            && self.uuids.is_empty()
    }

    fn clear(&mut self) -> bool {
        self.cons_floor.clear();
        self.due_floor.clear();
        self.uuids.clear();
        let small =
            self.cons_floor.capacity() + self.due_floor.capacity() + self.uuids.capacity() <= 64;
        self.c.clear() && small
    }
}

enum Undo {
    Ledger(Option<LedgerState>),
    Program(u64),
    Holder([u8; 16]),
    Identity(String),
    Email(String),
    WalletUuid([u8; 16]),
    External(String),
    Card(String),
    HolderWallet,
    Wallet(u64, Option<WalletState>),
    Lot((u64, u32), Option<Lot>),
    Name((u64, NameKind, String)),
    Hold((u64, u32), Option<HoldRec>),
    Redemption((u64, u32), Option<RedemptionRec>),
    Slice((u64, Owner, u32), Option<Slice>),
    Lifecycle,
    Checkpoint,
    ConsAdd(ConsKey, bool, bool),
    ConsDel(ConsKey, bool, bool),
    DueAdd(DueKey, bool, bool),
    DueDel(DueKey, bool, bool),
    Event,
}

/// A point to roll back to.
#[derive(Clone, Copy, Debug)]
pub struct Savepoint(usize);

/// The copy-on-write overlay over a [`Backing`].
pub struct Tx<'b> {
    base: &'b dyn Backing,
    /// The ledger counters, read from the base on first use (reads never need them).
    ledger: std::cell::Cell<Option<LedgerState>>,
    /// Boxed: a read-only overlay's containers are lent from one read to the next
    /// ([`Scratch`]), and moving a pointer costs less than moving a kilobyte of map headers.
    c: Box<Changes>,
    undo: Vec<Undo>,
    /// Replay never rolls back, so it skips the undo log (see [`Tx::without_undo`]).
    undo_on: bool,
    /// Look-up caches over the committed index ranges (see [`Floor`]); forgotten on rollback.
    cons_floor: Floors<ConsKey>,
    due_floor: Floors<DueKey>,
    /// Committed wallet numbers by uuid, as looked up so far: every command looks its wallet
    /// up twice (to record what fell due, then to decide), and a batch or group usually holds
    /// several commands per wallet. Committed rows do not change under the overlay, so neither
    /// a rollback nor the overlay's own wallets can make an entry wrong.
    uuids: RefCell<HashMap<[u8; 16], Option<u64>>>,
    /// Every lot write with the overlay's value before it, while [`Tx::watch_lots`] is on: how
    /// history learns which lots an event took from or returned to (events do not list them).
    lot_writes: Option<Vec<(Option<Lot>, Lot)>>,
}

impl<'b> Tx<'b> {
    pub fn new(base: &'b dyn Backing) -> R<Tx<'b>> {
        Ok(Tx {
            ledger: std::cell::Cell::new(None),
            base,
            c: Box::default(),
            undo: Vec::new(),
            undo_on: true,
            cons_floor: RefCell::default(),
            due_floor: RefCell::default(),
            uuids: RefCell::default(),
            lot_writes: None,
        })
    }

    /// An overlay that keeps no undo log: for replay, which applies a known-good log and never
    /// rolls back. [`Tx::rollback`] on it is a no-op.
    pub fn without_undo(base: &'b dyn Backing) -> R<Tx<'b>> {
        let mut tx = Tx::new(base)?;
        tx.undo_on = false;
        Ok(tx)
    }

    /// A read-only overlay (as [`Tx::without_undo`]) in the emptied containers of an earlier
    /// one (see [`Scratch`]).
    ///
    /// A scratch that is not empty (a bug where it is emptied) is dropped, not used: checked in
    /// every build (`debug_assert!` is off under `cargo test --release`), since a stale entry
    /// would be served as committed state.
    pub fn reading(base: &'b dyn Backing, scratch: Scratch) -> Tx<'b> {
        let Scratch {
            c,
            cons_floor,
            due_floor,
            uuids,
        } = if scratch.is_empty() {
            scratch
        } else {
            Scratch::default()
        };
        Tx {
            ledger: std::cell::Cell::new(None),
            base,
            c,
            undo: Vec::new(),
            undo_on: false,
            cons_floor: RefCell::new(cons_floor),
            due_floor: RefCell::new(due_floor),
            uuids: RefCell::new(uuids),
            lot_writes: None,
        }
    }

    /// From now on, records every lot written with the value the overlay held before
    /// ([`Tx::take_lot_writes`]). Over [`Empty`] (replay) that is the lot's value before the
    /// write; `None` for a new lot.
    pub fn watch_lots(&mut self) {
        self.lot_writes.get_or_insert_with(Vec::new);
    }

    /// The lot writes recorded since the last call, in write order (empty when not watching).
    pub fn take_lot_writes(&mut self) -> Vec<(Option<Lot>, Lot)> {
        self.lot_writes
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default()
    }

    /// Ends a read-only overlay, handing back its containers emptied for the next one; `None`
    /// when they grew past [`Scratch::MAX_CAPACITY`] (a read that derived many transitions), so
    /// what is kept stays small.
    pub fn into_scratch(self) -> Option<Scratch> {
        debug_assert!(!self.undo_on && self.undo.is_empty());
        let mut s = Scratch {
            c: self.c,
            cons_floor: self.cons_floor.into_inner(),
            due_floor: self.due_floor.into_inner(),
            uuids: self.uuids.into_inner(),
        };
        s.clear().then_some(s)
    }

    fn log(&mut self, u: Undo) {
        if self.undo_on {
            self.undo.push(u);
        }
    }

    pub fn savepoint(&self) -> Savepoint {
        Savepoint(self.undo.len())
    }

    /// Undoes every change made since `sp`.
    pub fn rollback(&mut self, sp: Savepoint) {
        // A rollback can take keys out of the delete set, which floors assume never happens.
        self.cons_floor.get_mut().clear();
        self.due_floor.get_mut().clear();
        while self.undo.len() > sp.0 {
            let u = self.undo.pop().expect("length checked");
            let c = &mut self.c;
            match u {
                Undo::Ledger(l) => self.ledger.set(l),
                Undo::Program(k) => {
                    c.programs.remove(&k);
                }
                Undo::Holder(k) => {
                    c.holders.remove(&k);
                }
                Undo::Identity(k) => {
                    c.identities.remove(&k);
                }
                Undo::Email(k) => {
                    c.emails.remove(&k);
                }
                Undo::WalletUuid(k) => {
                    c.wallet_uuids.remove(&k);
                }
                Undo::External(k) => {
                    c.externals.remove(&k);
                }
                Undo::Card(k) => {
                    c.cards.remove(&k);
                }
                Undo::HolderWallet => {
                    c.holder_wallets.pop();
                }
                Undo::Wallet(k, old) => restore(&mut c.wallets, k, old),
                Undo::Lot(k, old) => restore(&mut c.lots, k, old),
                Undo::Name(k) => {
                    c.names.remove(&k);
                }
                Undo::Hold(k, old) => restore(&mut c.holds, k, old),
                Undo::Redemption(k, old) => restore(&mut c.redemptions, k, old),
                Undo::Slice(k, old) => restore(&mut c.slices, k, old),
                Undo::Lifecycle => {
                    c.lifecycle.pop();
                }
                Undo::Checkpoint => {
                    c.checkpoints.pop();
                }
                Undo::ConsAdd(k, was_add, was_del) | Undo::ConsDel(k, was_add, was_del) => {
                    set_flag(&mut c.cons_add, k, was_add);
                    set_flag_h(&mut c.cons_del, k, was_del);
                }
                Undo::DueAdd(k, was_add, was_del) | Undo::DueDel(k, was_add, was_del) => {
                    set_flag(&mut c.due_add, k, was_add);
                    set_flag_h(&mut c.due_del, k, was_del);
                }
                Undo::Event => {
                    c.events.pop();
                }
            }
        }
    }

    /// Hands the changes to storage. The ledger counters are included when they moved.
    pub fn into_changes(mut self) -> R<Changes> {
        if self.c.events.is_empty() && self.c.programs.is_empty() {
            self.c.ledger = None;
        } else {
            self.c.ledger = self.ledger.get();
        }
        let touched: Vec<u64> = self.c.wallets.keys().copied().collect();
        for w in touched {
            let first = self.due_next(w, None)?.map(|k| k.at);
            if let Some(ws) = self.c.wallets.get_mut(&w) {
                ws.next_due = first;
            }
        }
        Ok(*self.c)
    }

    /// Seeds a read-only overlay with a header the caller already decoded, so deriving due
    /// transitions does not decode it again. Not for overlays that will be written.
    pub fn seed_wallet(&mut self, ws: WalletState) {
        debug_assert!(self.c.events.is_empty());
        self.c.wallets.entry(ws.number).or_insert(ws);
    }

    pub fn events(&self) -> &[Pending] {
        &self.c.events
    }

    // ---- reads -------------------------------------------------------------------------

    pub fn ledger(&self) -> R<LedgerState> {
        match self.ledger.get() {
            Some(l) => Ok(l),
            None => {
                let l = self.base.ledger()?;
                self.ledger.set(Some(l));
                Ok(l)
            }
        }
    }
    pub fn program(&self, id: u64) -> R<Option<Program>> {
        match self.c.programs.get(&id) {
            Some(p) => Ok(Some(p.clone())),
            None => self.base.program(id),
        }
    }
    pub fn holder(&self, id: [u8; 16]) -> R<Option<HolderRec>> {
        match self.c.holders.get(&id) {
            Some(h) => Ok(Some(h.clone())),
            None => self.base.holder(id),
        }
    }
    pub fn holder_by_identity(&self, s: &str) -> R<Option<[u8; 16]>> {
        match self.c.identities.get(s) {
            Some(h) => Ok(Some(*h)),
            None => self.base.holder_by_identity(s),
        }
    }
    pub fn holder_by_email(&self, normalized: &str) -> R<Option<[u8; 16]>> {
        match self.c.emails.get(normalized) {
            Some(h) => Ok(Some(*h)),
            None => self.base.holder_by_email(normalized),
        }
    }
    pub fn wallet_by_uuid(&self, id: [u8; 16]) -> R<Option<u64>> {
        if let Some(w) = self.c.wallet_uuids.get(&id) {
            return Ok(Some(*w));
        }
        if let Some(w) = self.uuids.borrow().get(&id) {
            return Ok(*w);
        }
        let w = self.base.wallet_by_uuid(id)?;
        self.uuids.borrow_mut().insert(id, w);
        Ok(w)
    }
    pub fn wallet_by_external(&self, s: &str) -> R<Option<u64>> {
        match self.c.externals.get(s) {
            Some(w) => Ok(Some(*w)),
            None => self.base.wallet_by_external(s),
        }
    }
    pub fn wallet_by_card(&self, s: &str) -> R<Option<u64>> {
        match self.c.cards.get(s) {
            Some(w) => Ok(Some(*w)),
            None => self.base.wallet_by_card(s),
        }
    }
    pub fn wallet(&self, no: u64) -> R<Option<WalletState>> {
        match self.c.wallets.get(&no) {
            Some(w) => Ok(Some(w.clone())),
            None => self.base.wallet(no),
        }
    }
    /// The wallet, which must exist: a missing one is corruption, not a user error.
    pub fn wallet_req(&self, no: u64) -> R<WalletState> {
        self.wallet(no)?
            .ok_or_else(|| StorageError(format!("wallet number {no} is referenced but missing")))
    }
    pub fn lot(&self, w: u64, no: u32) -> R<Option<Lot>> {
        match self.c.lots.get(&(w, no)) {
            Some(l) => Ok(Some(l.clone())),
            None => self.base.lot(w, no),
        }
    }
    pub fn lot_req(&self, w: u64, no: u32) -> R<Lot> {
        self.lot(w, no)?
            .ok_or_else(|| StorageError(format!("wallet {w}: lot number {no} is missing")))
    }
    /// The number of the record of `kind` named `id` in wallet `w`: its name row, or else, for a
    /// canonical name `{prefix}-{N}`, record N when its stored id is exactly `id` (such names
    /// have no row). Ids are unique per wallet and kind, so at most one of the two answers.
    pub fn name(&self, w: u64, kind: NameKind, id: &str) -> R<Option<u32>> {
        if let Some(n) = self.name_row(w, kind, id)? {
            return Ok(Some(n));
        }
        let Some(no) = kind.canonical_no(id) else {
            return Ok(None);
        };
        let named = match kind {
            NameKind::Lot => self.lot(w, no)?.is_some_and(|l| l.id == id),
            NameKind::Hold => self.hold(w, no)?.is_some_and(|h| h.id == id),
            NameKind::Redemption => self.redemption(w, no)?.is_some_and(|r| r.id == id),
        };
        Ok(named.then_some(no))
    }

    /// The name row of `id` only (overlay, then committed): enough when record N of a canonical
    /// name `{prefix}-{N}` is known not to exist yet.
    pub fn name_row(&self, w: u64, kind: NameKind, id: &str) -> R<Option<u32>> {
        match self.c.names.get(&(w, kind, id.to_string())) {
            Some(n) => Ok(Some(*n)),
            None => self.base.name(w, kind, id),
        }
    }
    pub fn hold(&self, w: u64, no: u32) -> R<Option<HoldRec>> {
        match self.c.holds.get(&(w, no)) {
            Some(h) => Ok(Some(h.clone())),
            None => self.base.hold(w, no),
        }
    }
    pub fn hold_req(&self, w: u64, no: u32) -> R<HoldRec> {
        self.hold(w, no)?
            .ok_or_else(|| StorageError(format!("wallet {w}: hold number {no} is missing")))
    }
    pub fn redemption(&self, w: u64, no: u32) -> R<Option<RedemptionRec>> {
        match self.c.redemptions.get(&(w, no)) {
            Some(r) => Ok(Some(r.clone())),
            None => self.base.redemption(w, no),
        }
    }
    pub fn redemption_req(&self, w: u64, no: u32) -> R<RedemptionRec> {
        self.redemption(w, no)?
            .ok_or_else(|| StorageError(format!("wallet {w}: redemption number {no} is missing")))
    }
    pub fn slice(&self, w: u64, owner: Owner, idx: u32) -> R<Slice> {
        match self.c.slices.get(&(w, owner, idx)) {
            Some(s) => Ok(*s),
            None => self.base.slice(w, owner, idx)?.ok_or_else(|| {
                StorageError(format!("wallet {w}: slice {idx} of {owner:?} is missing"))
            }),
        }
    }

    /// Next consumable lot of `(w, pocket)` after `after`, merging committed and overlay keys.
    pub fn cons_next(&self, w: u64, pocket: u16, after: Option<ConsKey>) -> R<Option<ConsKey>> {
        let (lo, hi) = ConsKey::bounds(w, pocket);
        merged_next(
            &self.cons_floor,
            (w, pocket),
            after,
            (lo, hi),
            &self.c.cons_add,
            &self.c.cons_del,
            ConsKey::pred,
            |after, skip| self.base.cons_next(w, pocket, after, skip),
        )
    }

    /// Next due transition of `w` after `after`, merging committed and overlay keys.
    pub fn due_next(&self, w: u64, after: Option<DueKey>) -> R<Option<DueKey>> {
        let (lo, hi) = DueKey::bounds(w);
        merged_next(
            &self.due_floor,
            (w, 0),
            after,
            (lo, hi),
            &self.c.due_add,
            &self.c.due_del,
            DueKey::pred,
            |after, skip| self.base.due_next(w, after, skip),
        )
    }

    /// Wallets that may have transitions due by `upto`: the committed sweep index plus every
    /// wallet changed in this overlay. Ascending, without repeats.
    pub fn wallets_due(&self, upto: i64) -> R<Vec<u64>> {
        let mut v = self.base.wallets_due(upto)?;
        v.extend(self.c.wallets.keys().copied());
        v.sort_unstable();
        v.dedup();
        Ok(v)
    }

    // ---- writes (used by `apply` only) -------------------------------------------------

    pub(crate) fn set_ledger(&mut self, l: LedgerState) {
        let old = self.ledger.get();
        self.log(Undo::Ledger(old));
        self.ledger.set(Some(l));
    }
    pub(crate) fn put_program(&mut self, p: Program) {
        self.log(Undo::Program(p.program));
        self.c.programs.insert(p.program, p);
    }
    /// Registers holder `h` at `at` (ns).
    pub(crate) fn put_holder(&mut self, h: Holder, at: i64) {
        if let Some(i) = &h.identity {
            self.log(Undo::Identity(i.clone()));
            self.c.identities.insert(i.clone(), h.holder);
        }
        if let Some(e) = &h.email {
            let n = crate::model::normalize_email(e);
            self.log(Undo::Email(n.clone()));
            self.c.emails.insert(n, h.holder);
        }
        self.log(Undo::Holder(h.holder));
        self.c.holders.insert(
            h.holder,
            HolderRec {
                holder: h,
                registered_at: at,
            },
        );
    }
    pub(crate) fn index_wallet(&mut self, ws: &WalletState) {
        self.log(Undo::WalletUuid(ws.uuid));
        self.c.wallet_uuids.insert(ws.uuid, ws.number);
        if let Some(e) = &ws.external_id {
            self.log(Undo::External(e.clone()));
            self.c.externals.insert(e.clone(), ws.number);
        }
        self.log(Undo::HolderWallet);
        self.c.holder_wallets.push((ws.holder, ws.number));
    }
    pub(crate) fn index_card(&mut self, card: &str, w: u64) {
        self.log(Undo::Card(card.to_string()));
        self.c.cards.insert(card.to_string(), w);
    }
    /// The wallet's header for `apply` to change and hand back with [`Tx::put_wallet`], or for a
    /// read to keep once it is done with the overlay. Without an undo log (replay, reads) it is
    /// moved out of the overlay rather than cloned.
    pub(crate) fn take_wallet(&mut self, no: u64) -> R<WalletState> {
        if !self.undo_on
            && let Some(ws) = self.c.wallets.remove(&no)
        {
            return Ok(ws);
        }
        self.wallet_req(no)
    }

    pub(crate) fn put_wallet(&mut self, ws: WalletState) {
        let no = ws.number;
        let old = self.c.wallets.insert(no, ws);
        self.log(Undo::Wallet(no, old));
    }
    /// Records that `id` names record `no`. A canonical name of the record's own number gets no
    /// row: [`Tx::name`] finds it from the record, and each row not written saves a copied B-tree
    /// leaf in every command that assigns an id.
    pub(crate) fn put_name(&mut self, w: u64, kind: NameKind, id: &str, no: u32) {
        if kind.canonical_no(id) == Some(no) {
            return;
        }
        let k = (w, kind, id.to_string());
        self.log(Undo::Name(k.clone()));
        self.c.names.insert(k, no);
    }
    /// Reads a lot to change it, with the index keys it has now: [`Tx::put_lot`] diffs the new
    /// value's keys against them instead of reading the lot a second time.
    pub(crate) fn lot_for_update(&self, w: u64, no: u32) -> R<(Lot, LotKeys)> {
        let l = self.lot_req(w, no)?;
        let keys = LotKeys(l.cons_key(w), l.due_key(w));
        Ok((l, keys))
    }

    /// Stores a lot read by [`Tx::lot_for_update`] (`old` its keys then), or a new one
    /// ([`LotKeys::NEW`]), moving its index entries.
    pub(crate) fn put_lot(&mut self, w: u64, old: LotKeys, lot: Lot) {
        self.reindex_cons(old.0, lot.cons_key(w));
        self.reindex_due(old.1, lot.due_key(w));
        let k = (w, lot.no);
        if let Some(writes) = self.lot_writes.as_mut() {
            writes.push((self.c.lots.get(&k).cloned(), lot.clone()));
        }
        let prev = self.c.lots.insert(k, lot);
        self.log(Undo::Lot(k, prev));
    }
    pub(crate) fn put_hold(&mut self, w: u64, h: HoldRec) -> R<()> {
        let old = self.hold(w, h.no)?;
        self.reindex_due(old.and_then(|o| o.due_key(w)), h.due_key(w));
        let k = (w, h.no);
        let prev = self.c.holds.insert(k, h);
        self.log(Undo::Hold(k, prev));
        Ok(())
    }
    pub(crate) fn put_redemption(&mut self, w: u64, r: RedemptionRec) {
        let k = (w, r.no);
        let prev = self.c.redemptions.insert(k, r);
        self.log(Undo::Redemption(k, prev));
    }
    pub(crate) fn put_slice(&mut self, w: u64, owner: Owner, idx: u32, s: Slice) {
        let k = (w, owner, idx);
        let prev = self.c.slices.insert(k, s);
        self.log(Undo::Slice(k, prev));
    }
    pub(crate) fn push_lifecycle(&mut self, w: u64, idx: u32, rec: LifecycleRec) {
        self.log(Undo::Lifecycle);
        self.c.lifecycle.push((w, idx, rec));
    }
    /// Queues an applied event for writing, assigning its sequence and global position. Call
    /// after `apply`, which advanced the stream's sequence.
    pub(crate) fn record(
        &mut self,
        stream: u64,
        at: i64,
        event: Event,
        delta: Option<Delta>,
    ) -> R<()> {
        let mut l = self.ledger()?;
        l.position += 1;
        self.set_ledger(l);
        let seq = if stream == LEDGER_STREAM {
            l.ledger_seq
        } else {
            self.c.wallets.get(&stream).map_or(0, |w| w.seq)
        };
        self.push_event(Pending {
            stream,
            seq,
            position: l.position,
            at,
            event,
            delta,
        });
        if stream != LEDGER_STREAM && seq % CHECKPOINT_EVERY == 0 {
            let cp = Checkpoint::of(&self.wallet_req(stream)?);
            self.log(Undo::Checkpoint);
            self.c.checkpoints.push((stream, cp));
        }
        Ok(())
    }

    pub(crate) fn push_event(&mut self, p: Pending) {
        self.log(Undo::Event);
        self.c.events.push(p);
    }

    fn reindex_cons(&mut self, old: Option<ConsKey>, new: Option<ConsKey>) {
        if old == new {
            return;
        }
        if let Some(k) = old {
            if self.undo_on {
                let (a, d) = (self.c.cons_add.contains(&k), self.c.cons_del.contains(&k));
                self.undo.push(Undo::ConsDel(k, a, d));
            }
            // Always record the deletion: the key may also be committed below the overlay.
            self.c.cons_add.remove(&k);
            self.c.cons_del.insert(k);
        }
        if let Some(k) = new {
            if self.undo_on {
                let (a, d) = (self.c.cons_add.contains(&k), self.c.cons_del.contains(&k));
                self.undo.push(Undo::ConsAdd(k, a, d));
            }
            self.c.cons_del.remove(&k);
            self.c.cons_add.insert(k);
        }
    }

    fn reindex_due(&mut self, old: Option<DueKey>, new: Option<DueKey>) {
        if old == new {
            return;
        }
        if let Some(k) = old {
            // Without an undo log (replay, reads) the lookups that record the old flags are
            // wasted: one per index change of every derived transition.
            if self.undo_on {
                let (a, d) = (self.c.due_add.contains(&k), self.c.due_del.contains(&k));
                self.undo.push(Undo::DueDel(k, a, d));
            }
            self.c.due_add.remove(&k);
            self.c.due_del.insert(k);
        }
        if let Some(k) = new {
            if self.undo_on {
                let (a, d) = (self.c.due_add.contains(&k), self.c.due_del.contains(&k));
                self.undo.push(Undo::DueAdd(k, a, d));
            }
            self.c.due_del.remove(&k);
            self.c.due_add.insert(k);
        }
    }
}

/// What the overlay knows about the committed keys of one index range: every committed key
/// strictly below `Below(k)` (or every one, for `All`) is deleted or re-added in the overlay.
/// Keys only ever enter the overlay's delete/add sets (until a rollback, which forgets every
/// floor), so a floor stays true once learned. It turns the skip over keys a transaction already
/// consumed from O(consumed) per look-up into amortized O(1).
#[derive(Clone, Copy, Debug)]
enum Floor<K> {
    Below(K),
    All,
}

type Floors<K> = RefCell<NumMap<(u64, u16), Floor<K>>>;

/// The next key after `after` in `(lo, hi)`, merging the committed keys (minus the overlay's
/// deletions) with the overlay's additions.
#[allow(clippy::too_many_arguments)]
fn merged_next<K: Copy + Ord + std::hash::Hash>(
    floors: &Floors<K>,
    scope: (u64, u16),
    after: Option<K>,
    (lo, hi): (K, K),
    add: &BTreeSet<K>,
    del: &NumSet<K>,
    pred: fn(K) -> Option<K>,
    base_next: impl Fn(Option<K>, &dyn Fn(&K) -> bool) -> R<Option<K>>,
) -> R<Option<K>> {
    use std::ops::Bound::{Excluded, Included};
    let floor = floors.borrow().get(&scope).copied();
    // Where the committed scan starts (exclusive), and whether it starts inside the range the
    // floor already covers, so that what it finds extends the floor.
    let (start, contiguous) = match (floor, after) {
        (Some(Floor::All), a) => (None, a.is_none()),
        (Some(Floor::Below(f)), None) => (pred(f), true),
        (Some(Floor::Below(f)), Some(a)) if a < f => (pred(f), true),
        (Some(Floor::Below(f)), Some(a)) => {
            (Some(a), a == f && (del.contains(&a) || add.contains(&a)))
        }
        (None, a) => (a, a.is_none()),
    };
    let base = if matches!(floor, Some(Floor::All)) {
        None
    } else {
        let skip = |k: &K| del.contains(k);
        let found = base_next(start, &skip)?;
        if contiguous {
            floors.borrow_mut().insert(
                scope,
                match found {
                    Some(k) => Floor::Below(k),
                    None => Floor::All,
                },
            );
        }
        found
    };
    let overlay = match after {
        Some(a) => add.range((Excluded(a), Included(hi))).next().copied(),
        None => add.range(lo..=hi).next().copied(),
    };
    Ok(min_opt(base, overlay))
}

impl ConsKey {
    /// The key just before this one in the index order (`None` at the very first).
    fn pred(k: ConsKey) -> Option<ConsKey> {
        if k.lot > 0 {
            Some(ConsKey {
                lot: k.lot - 1,
                ..k
            })
        } else if k.order > i64::MIN {
            Some(ConsKey {
                order: k.order - 1,
                lot: u32::MAX,
                ..k
            })
        } else {
            None
        }
    }
}

impl DueKey {
    /// The key just before this one in the index order (`None` at the very first).
    fn pred(k: DueKey) -> Option<DueKey> {
        if k.no > 0 {
            Some(DueKey { no: k.no - 1, ..k })
        } else if k.kind != DueKind::Activation {
            Some(DueKey {
                kind: if k.kind == DueKind::Expiry {
                    DueKind::HoldTimeout
                } else {
                    DueKind::Activation
                },
                no: u32::MAX,
                ..k
            })
        } else if k.at > i64::MIN {
            Some(DueKey {
                at: k.at - 1,
                kind: DueKind::Expiry,
                no: u32::MAX,
                ..k
            })
        } else {
            None
        }
    }
}

fn restore<K: std::hash::Hash + Eq, V, S: std::hash::BuildHasher>(
    m: &mut HashMap<K, V, S>,
    k: K,
    old: Option<V>,
) {
    match old {
        Some(v) => {
            m.insert(k, v);
        }
        None => {
            m.remove(&k);
        }
    }
}

fn set_flag<K: Ord>(s: &mut BTreeSet<K>, k: K, on: bool) {
    if on {
        s.insert(k);
    } else {
        s.remove(&k);
    }
}

fn set_flag_h<K: std::hash::Hash + Eq, S: std::hash::BuildHasher>(
    s: &mut HashSet<K, S>,
    k: K,
    on: bool,
) {
    if on {
        s.insert(k);
    } else {
        s.remove(&k);
    }
}

fn min_opt<T: Ord>(a: Option<T>, b: Option<T>) -> Option<T> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, None) => a,
        (None, b) => b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A lent `Scratch` must never carry state into the next read, whatever happened to the read
    /// that lent it, and in release builds too (where `debug_assert!` is compiled out and
    /// `cargo test --release` runs): a read overlay starts empty.
    #[test]
    fn a_read_overlay_starts_empty_whatever_scratch_it_is_lent() {
        let id = [7u8; 16];
        let mut s = Scratch::default();
        s.uuids.insert(id, Some(5));
        s.c.wallet_uuids.insert([8u8; 16], 6);
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let tx = Tx::reading(&Empty, s);
            (
                tx.wallet_by_uuid(id).unwrap(),
                tx.wallet_by_uuid([8u8; 16]).unwrap(),
                tx.c.is_empty(),
            )
        }));
        assert_eq!(r.ok(), Some((None, None, true)), "a stale scratch leaked");
    }

    /// What a read overlay hands back is empty, whatever it held (checked here in every build,
    /// since `Tx::reading` silently drops a scratch that is not).
    #[test]
    fn a_read_overlay_hands_back_its_containers_empty() {
        let mut tx = Tx::reading(&Empty, Scratch::default());
        tx.c.wallet_uuids.insert([1; 16], 1);
        tx.c.externals.insert("e".into(), 1);
        tx.c.checkpoints.push((1, Checkpoint::default()));
        let due = DueKey {
            wallet: 1,
            at: 0,
            kind: DueKind::Expiry,
            no: 1,
        };
        tx.c.due_add.insert(due);
        tx.c.due_del.insert(due);
        tx.due_floor.borrow_mut().insert((1, 0), Floor::All);
        tx.uuids.borrow_mut().insert([2; 16], None);
        assert!(tx.wallet_by_uuid([3; 16]).unwrap().is_none());
        let s = tx.into_scratch().expect("small containers are kept");
        assert!(s.is_empty(), "a container was handed back with state in it");
    }
}
