//! Storage: the redb tables, their key layout, and the two things storage does — serve reads of
//! committed state through the domain's [`Backing`] port, and write a transaction's [`Changes`]
//! (records, indexes, event records with their checksum chain). Storage never decides.
//!
//! Everything that belongs to one wallet lives in one table, `wallet_rows`, under keys that start
//! with the wallet's number and a row kind ([`row`]): its header (with its chain head), lots,
//! names, holds, redemptions, slices, lifecycle events, index entries, checkpoints and events. A
//! command therefore modifies two tables (`wallet_rows` and the global `log`) rather than a dozen:
//! in redb every modified table costs copied pages and a root update at commit, and a wallet's rows
//! sit together in few pages. See `docs/design.md` for the whole layout and the commit strategy.

pub mod codec;
pub mod migrate;
pub mod pack;

use crate::domain::state::*;
use crate::error::StorageError;
use crate::model::{Holder, Program};
use codec::*;
use redb::{ReadableTable, TableDefinition};
use std::collections::{HashMap, HashSet};
use std::ops::Bound;

pub const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
pub const PROGRAMS: TableDefinition<u64, &[u8]> = TableDefinition::new("programs");
pub const HOLDERS: TableDefinition<u128, &[u8]> = TableDefinition::new("holders");
pub const HOLDER_IDENTITY: TableDefinition<&str, u128> = TableDefinition::new("holder_identity");
pub const HOLDER_EMAIL: TableDefinition<&str, u128> = TableDefinition::new("holder_email");
/// (holder u128 BE, wallet u64 BE) → ()
pub const HOLDER_WALLETS: TableDefinition<&[u8], ()> = TableDefinition::new("holder_wallets");
pub const WALLET_UUID: TableDefinition<u128, u64> = TableDefinition::new("wallet_uuid");
pub const WALLET_EXTERNAL: TableDefinition<&str, u64> = TableDefinition::new("wallet_external");
pub const CARDS: TableDefinition<&str, u64> = TableDefinition::new("cards");
/// (wallet u64 BE, row kind u8, …) → row; see [`row`]. Stream 0 (the ledger stream) keeps its
/// chain head and events here too.
pub const ROWS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("wallet_rows");
/// (earliest due instant i64 key, wallet) → (): the wallets `sweep` must visit
pub const NEXT_DUE: TableDefinition<&[u8], ()> = TableDefinition::new("next_due");
/// position → (stream, seq): the global change feed
pub const LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("log");
/// idempotency key → (fingerprint 32 bytes, encoded (instants, receipt))
pub const IDEM: TableDefinition<&str, &[u8]> = TableDefinition::new("idempotency");

/// Something done to every table of the file, whatever its key and value types; see
/// [`for_each_table`].
pub trait TableVisitor {
    fn visit<K: redb::Key + 'static, V: redb::Value + 'static>(
        &mut self,
        table: TableDefinition<'static, K, V>,
    ) -> Result<(), StorageError>;
}

/// Visits every table of the file, in one list: what compaction rebuilds (see [`pack`]) and what
/// statistics cover. A table added above must be added here too; `tests/compaction.rs` checks that
/// this list and the tables a new ledger creates are the same.
pub fn for_each_table(v: &mut impl TableVisitor) -> Result<(), StorageError> {
    v.visit(META)?;
    v.visit(PROGRAMS)?;
    v.visit(HOLDERS)?;
    v.visit(HOLDER_IDENTITY)?;
    v.visit(HOLDER_EMAIL)?;
    v.visit(HOLDER_WALLETS)?;
    v.visit(WALLET_UUID)?;
    v.visit(WALLET_EXTERNAL)?;
    v.visit(CARDS)?;
    v.visit(ROWS)?;
    v.visit(NEXT_DUE)?;
    v.visit(LOG)?;
    v.visit(IDEM)
}

/// The file format: the key layout of `wallet_rows` (see [`row`]), stored as `meta["schema"]`
/// (u32 BE). Distinct from the record envelope's [`codec::SCHEMA_VERSION`]: records are the same
/// in every format. Format 1 (kinds in the order below's v1 numbers, every key ascending) is
/// migrated on open ([`migrate`]); a build refuses a format it does not know.
pub const FORMAT_VERSION: u32 = 2;

/// Row kinds of `wallet_rows`, the byte after the wallet number in every key. Their order lays a
/// wallet's rows out so that the ends one command writes are adjacent (see `docs/design.md`):
///
/// `[rare: NAME HOLD LIFECYCLE CHECKPOINT] [SLICE ↑] [REDEMPTION ↓] [LOT ↑] [HEADER] [CONS ↓]
/// [DUE ↑] [EVENT ↓]`
///
/// so the newest lot, the header and the newest consumable entry share a leaf (a credit), the
/// oldest consumable and due entries share one (an expiry, a lot spent in full), the newest due
/// entry and the newest event share one, and the newest slices and redemption share one (a
/// redemption). "↓" kinds store the ordering part of the key bitwise-NOT (newest first): scans
/// that want ascending order iterate their range reversed. Keys are built and parsed only by the
/// functions below.
pub mod row {
    /// `[w][0][name kind u8][id bytes]` → number u32 BE
    pub const NAME: u8 = 0;
    /// `[w][1][hold u32]` → HoldRec
    pub const HOLD: u8 = 1;
    /// `[w][2][index u32]` → LifecycleRec
    pub const LIFECYCLE: u8 = 2;
    /// `[w][3][at i64 key][seq u64]` → Checkpoint
    pub const CHECKPOINT: u8 = 3;
    /// `[w][4][owner kind u8][owner u32][index u32]` → lot u32 BE, units u128 BE
    pub const SLICE: u8 = 4;
    /// `[w][5][!redemption u32]` → RedemptionRec (newest first)
    pub const REDEMPTION: u8 = 5;
    /// `[w][6][lot u32]` → Lot
    pub const LOT: u8 = 6;
    /// `[w][7]` → chain head (seq u64 BE, checksum 16), next due (flag u8, i64 BE), WalletState
    pub const HEADER: u8 = 7;
    /// `[w][8][!(pocket u16, order i64 key, lot u32)]` → (): active lots with free value, last
    /// consumed first
    pub const CONS: u8 = 8;
    /// `[w][9][at i64 key][kind u8][number u32]` → (): pending time-driven transitions
    pub const DUE: u8 = 9;
    /// `[w][10][!seq u64]` → event record (newest first)
    pub const EVENT: u8 = 10;

    /// The kinds of format 1, where every key was ascending: what [`super::migrate`] reads.
    pub mod v1 {
        pub const HEADER: u8 = 0;
        pub const LOT: u8 = 1;
        pub const NAME: u8 = 2;
        pub const HOLD: u8 = 3;
        pub const REDEMPTION: u8 = 4;
        pub const SLICE: u8 = 5;
        pub const LIFECYCLE: u8 = 6;
        pub const CONS: u8 = 7;
        pub const DUE: u8 = 8;
        pub const CHECKPOINT: u8 = 9;
        pub const EVENT: u8 = 10;
    }

    /// What a row of this kind is, for reports; `None` for an unknown kind.
    pub const fn name(kind: u8) -> Option<&'static str> {
        Some(match kind {
            NAME => "name",
            HOLD => "hold",
            LIFECYCLE => "lifecycle",
            CHECKPOINT => "checkpoint",
            SLICE => "slice",
            REDEMPTION => "redemption",
            LOT => "lot",
            HEADER => "header",
            CONS => "consumable index",
            DUE => "due index",
            EVENT => "event",
            _ => return None,
        })
    }

    /// Whether the part of a key of this kind after the kind byte is stored bitwise-NOT.
    pub fn descending(kind: u8) -> bool {
        super::descending_suffix_len(kind).is_some()
    }
}

/// For a kind stored descending, the length of every key's part after the kind byte (taken from
/// the key builders: inverting keys of one length reverses their order exactly, so a migration
/// checks it); `None` for an ascending kind.
pub(crate) fn descending_suffix_len(kind: u8) -> Option<usize> {
    let key_len = match kind {
        row::REDEMPTION => redemption_key(0, 0).len(),
        row::CONS => cons_k(&ConsKey {
            wallet: 0,
            pocket: 0,
            order: 0,
            lot: 0,
        })
        .len(),
        row::EVENT => event_k(0, 0).len(),
        _ => return None,
    };
    Some(key_len - 9)
}

/// A checkpoint is written at least every this many events of a wallet, so a read at an earlier
/// instant sums at most this many figure deltas (plus one transaction's) from the nearest one.
pub const CHECKPOINT_EVERY: u64 = 1024;

/// A wallet's figures and profile after one of its events: where as-of reads start.
#[derive(Clone, Debug, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub struct Checkpoint {
    pub seq: u64,
    pub at: i64,
    pub figures: Vec<crate::model::Figures>,
    pub methods: Vec<crate::model::PaymentMethod>,
    pub cards: Vec<crate::model::Card>,
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

// ---- keys ------------------------------------------------------------------------------------

/// `[w][kind][rest]`.
pub fn row_key(w: u64, kind: u8, rest: &[&[u8]]) -> Vec<u8> {
    let mut k = Vec::with_capacity(9 + rest.iter().map(|r| r.len()).sum::<usize>());
    k.extend_from_slice(&w.to_be_bytes());
    k.push(kind);
    for r in rest {
        k.extend_from_slice(r);
    }
    k
}

/// `[w][kind][rest]` of a fixed size, on the stack: reads build several keys each, and an
/// allocation per key was a measurable share of a read.
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

fn header_k(w: u64) -> [u8; 9] {
    fixed_key(w, row::HEADER, &[])
}

pub fn header_key(w: u64) -> Vec<u8> {
    header_k(w).to_vec()
}

fn event_k(w: u64, seq: u64) -> [u8; 17] {
    fixed_key(w, row::EVENT, &[&(!seq).to_be_bytes()])
}

/// The key of event `seq` of stream `w` (events are stored newest first).
pub fn event_key(w: u64, seq: u64) -> Vec<u8> {
    event_k(w, seq).to_vec()
}

/// The keys bounding the events `from..=to` of stream `w`, in byte order: (the key of `to`, the
/// key of `from`). Iterate the range reversed for ascending sequence numbers.
pub fn event_bounds(w: u64, from: u64, to: u64) -> (Vec<u8>, Vec<u8>) {
    (event_key(w, to), event_key(w, from))
}

/// The (stream, sequence number) of an event key; `None` for any other key.
pub fn event_of(k: &[u8]) -> Option<(u64, u64)> {
    if k.len() != 17 || k[8] != row::EVENT {
        return None;
    }
    Some((
        u64::from_be_bytes(k[..8].try_into().expect("sized")),
        !u64::from_be_bytes(k[9..].try_into().expect("sized")),
    ))
}

pub fn checkpoint_key(w: u64, at: i64, seq: u64) -> Vec<u8> {
    row_key(w, row::CHECKPOINT, &[&i64_key(at), &seq.to_be_bytes()])
}

pub(crate) fn lot_key(w: u64, no: u32) -> [u8; 13] {
    fixed_key(w, row::LOT, &[&no.to_be_bytes()])
}

pub(crate) fn hold_key(w: u64, no: u32) -> [u8; 13] {
    fixed_key(w, row::HOLD, &[&no.to_be_bytes()])
}

pub(crate) fn redemption_key(w: u64, no: u32) -> [u8; 13] {
    fixed_key(w, row::REDEMPTION, &[&(!no).to_be_bytes()])
}

pub(crate) fn lifecycle_key(w: u64, idx: u32) -> [u8; 13] {
    fixed_key(w, row::LIFECYCLE, &[&idx.to_be_bytes()])
}

pub(crate) fn name_key(w: u64, kind: NameKind, id: &str) -> Vec<u8> {
    row_key(w, row::NAME, &[&[kind as u8], id.as_bytes()])
}

fn owner_bytes(o: Owner) -> (u8, u32) {
    match o {
        Owner::Hold(n) => (0, n),
        Owner::Redemption(n) => (1, n),
    }
}

pub(crate) fn slice_key(w: u64, o: Owner, idx: u32) -> [u8; 18] {
    let (kind, n) = owner_bytes(o);
    fixed_key(
        w,
        row::SLICE,
        &[&[kind], &n.to_be_bytes(), &idx.to_be_bytes()],
    )
}

pub(crate) fn slice_val(s: &Slice) -> [u8; 20] {
    let mut v = [0u8; 20];
    v[..4].copy_from_slice(&s.lot.to_be_bytes());
    v[4..].copy_from_slice(&s.units.to_be_bytes());
    v
}

fn slice_from(b: &[u8]) -> Result<Slice, StorageError> {
    if b.len() != 20 {
        return Err(StorageError(format!("slice record of {} bytes", b.len())));
    }
    Ok(Slice {
        lot: u32::from_be_bytes(b[..4].try_into().expect("sized")),
        units: u128::from_be_bytes(b[4..].try_into().expect("sized")),
    })
}

pub fn cons_key(k: &ConsKey) -> Vec<u8> {
    cons_k(k).to_vec()
}

/// `[w][CONS][!(pocket, order, lot)]`: the last lot to be consumed first.
fn cons_k(k: &ConsKey) -> [u8; 23] {
    let mut key: [u8; 23] = fixed_key(
        k.wallet,
        row::CONS,
        &[
            &k.pocket.to_be_bytes(),
            &i64_key(k.order),
            &k.lot.to_be_bytes(),
        ],
    );
    invert(&mut key[9..]);
    key
}

/// Bitwise NOT of every byte: the ordering part of a descending key.
fn invert(b: &mut [u8]) {
    for x in b {
        *x = !*x;
    }
}

fn cons_from(b: &[u8]) -> Result<ConsKey, StorageError> {
    if b.len() != 23 || b[8] != row::CONS {
        return Err(StorageError(format!("consumable key of {} bytes", b.len())));
    }
    let mut r = [0u8; 14];
    r.copy_from_slice(&b[9..]);
    invert(&mut r);
    Ok(ConsKey {
        wallet: u64::from_be_bytes(b[..8].try_into().expect("sized")),
        pocket: u16::from_be_bytes(r[..2].try_into().expect("sized")),
        order: i64_from_key(&r[2..10])?,
        lot: u32::from_be_bytes(r[10..].try_into().expect("sized")),
    })
}

pub fn due_key(k: &DueKey) -> Vec<u8> {
    due_k(k).to_vec()
}

fn due_k(k: &DueKey) -> [u8; 22] {
    fixed_key(
        k.wallet,
        row::DUE,
        &[&i64_key(k.at), &[k.kind as u8], &k.no.to_be_bytes()],
    )
}

/// Whether `k` is a `wallet_rows` key of wallet `w` and row kind `kind`.
fn is_row_of(k: &[u8], w: u64, kind: u8) -> bool {
    k.len() > 9 && k[..8] == w.to_be_bytes() && k[8] == kind
}

/// The lot number of a `[w][LOT][lot u32]` key.
fn lot_no_of(b: &[u8]) -> Result<u32, StorageError> {
    match b {
        [_, _, _, _, _, _, _, _, row::LOT, n @ ..] if n.len() == 4 => {
            Ok(u32::from_be_bytes(n.try_into().expect("sized")))
        }
        _ => Err(StorageError(format!("lot key of {} bytes", b.len()))),
    }
}

fn due_from(b: &[u8]) -> Result<DueKey, StorageError> {
    if b.len() != 22 || b[8] != row::DUE {
        return Err(StorageError(format!("due key of {} bytes", b.len())));
    }
    Ok(DueKey {
        wallet: u64::from_be_bytes(b[..8].try_into().expect("sized")),
        at: i64_from_key(&b[9..17])?,
        kind: match b[17] {
            0 => DueKind::Activation,
            1 => DueKind::HoldTimeout,
            2 => DueKind::Expiry,
            k => return Err(StorageError(format!("due key with kind {k}"))),
        },
        no: u32::from_be_bytes(b[18..].try_into().expect("sized")),
    })
}

pub(crate) fn next_due_key(at: i64, w: u64) -> [u8; 16] {
    k_ww(u64::from_be_bytes(i64_key(at)), w)
}

/// The fixed part of a header row: the stream's chain head and the wallet's earliest due instant.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HeaderPrefix {
    pub seq: u64,
    pub checksum: [u8; 16],
    pub next_due: Option<i64>,
}

const HEADER_PREFIX: usize = 8 + 16 + 9;

impl HeaderPrefix {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.seq.to_be_bytes());
        out.extend_from_slice(&self.checksum);
        match self.next_due {
            Some(d) => {
                out.push(1);
                out.extend_from_slice(&d.to_be_bytes());
            }
            None => out.extend_from_slice(&[0; 9]),
        }
    }
}

/// Splits a header row into its prefix and the encoded `WalletState` (empty for stream 0).
pub fn header_from(b: &[u8]) -> Result<(HeaderPrefix, &[u8]), StorageError> {
    if b.len() < HEADER_PREFIX {
        return Err(StorageError(format!("header row of {} bytes", b.len())));
    }
    let mut checksum = [0u8; 16];
    checksum.copy_from_slice(&b[8..24]);
    let next_due = match b[24] {
        0 => None,
        1 => Some(i64::from_be_bytes(b[25..33].try_into().expect("sized"))),
        f => return Err(StorageError(format!("header row with due flag {f}"))),
    };
    Ok((
        HeaderPrefix {
            seq: u64::from_be_bytes(b[..8].try_into().expect("sized")),
            checksum,
            next_due,
        },
        &b[HEADER_PREFIX..],
    ))
}

/// Opens every table of a transaction on first use: a read that needs two tables opens two
/// (opening a table costs a look-up in redb's table tree). Generated twice: over a read
/// transaction and over a write transaction.
macro_rules! tables {
    ($name:ident [$($lt:lifetime)?], $tbl:ident, $txn:ty, $due:ty) => {
        pub struct $name<$($lt)?> {
            txn: $txn,
            /// What look-ups keep between calls: in a read transaction, the scans one read call
            /// continues (see `due_scan`, `lot_read`); in a write transaction, the due keys read
            /// ahead (see [`DueAhead`]).
            #[allow(dead_code)]
            cursors: $due,
            meta: std::cell::OnceCell<redb::$tbl<$($lt,)? &'static str, &'static [u8]>>,
            programs: std::cell::OnceCell<redb::$tbl<$($lt,)? u64, &'static [u8]>>,
            holders: std::cell::OnceCell<redb::$tbl<$($lt,)? u128, &'static [u8]>>,
            holder_identity: std::cell::OnceCell<redb::$tbl<$($lt,)? &'static str, u128>>,
            holder_email: std::cell::OnceCell<redb::$tbl<$($lt,)? &'static str, u128>>,
            holder_wallets: std::cell::OnceCell<redb::$tbl<$($lt,)? &'static [u8], ()>>,
            wallet_uuid: std::cell::OnceCell<redb::$tbl<$($lt,)? u128, u64>>,
            wallet_external: std::cell::OnceCell<redb::$tbl<$($lt,)? &'static str, u64>>,
            cards: std::cell::OnceCell<redb::$tbl<$($lt,)? &'static str, u64>>,
            rows: std::cell::OnceCell<redb::$tbl<$($lt,)? &'static [u8], &'static [u8]>>,
            next_due: std::cell::OnceCell<redb::$tbl<$($lt,)? &'static [u8], ()>>,
            log: std::cell::OnceCell<redb::$tbl<$($lt,)? u64, &'static [u8]>>,
            idem: std::cell::OnceCell<redb::$tbl<$($lt,)? &'static str, &'static [u8]>>,
        }

        impl<$($lt)?> $name<$($lt)?> {
            /// Opens every table (creating it in a write transaction).
            pub fn open_all(&self) -> Result<(), StorageError> {
                self.meta()?;
                self.programs()?;
                self.holders()?;
                self.holder_identity()?;
                self.holder_email()?;
                self.holder_wallets()?;
                self.wallet_uuid()?;
                self.wallet_external()?;
                self.cards()?;
                self.rows()?;
                self.next_due()?;
                self.log()?;
                self.idem()?;
                Ok(())
            }

            pub fn open(txn: $txn) -> Result<Self, StorageError> {
                Ok($name {
                    txn,
                    cursors: Default::default(),
                    meta: std::cell::OnceCell::new(),
                    programs: std::cell::OnceCell::new(),
                    holders: std::cell::OnceCell::new(),
                    holder_identity: std::cell::OnceCell::new(),
                    holder_email: std::cell::OnceCell::new(),
                    holder_wallets: std::cell::OnceCell::new(),
                    wallet_uuid: std::cell::OnceCell::new(),
                    wallet_external: std::cell::OnceCell::new(),
                    cards: std::cell::OnceCell::new(),
                    rows: std::cell::OnceCell::new(),
                    next_due: std::cell::OnceCell::new(),
                    log: std::cell::OnceCell::new(),
                    idem: std::cell::OnceCell::new(),
                })
            }

            /// The `meta` table, opened on first use.
            pub fn meta(&self) -> Result<&redb::$tbl<$($lt,)? &'static str, &'static [u8]>, StorageError> {
                if let Some(t) = self.meta.get() {
                    return Ok(t);
                }
                let t = self.txn.open_table(META)?;
                Ok(self.meta.get_or_init(|| t))
            }

            #[allow(dead_code)]
            pub(crate) fn meta_mut(&mut self) -> Result<&mut redb::$tbl<$($lt,)? &'static str, &'static [u8]>, StorageError> {
                self.meta()?;
                Ok(self.meta.get_mut().expect("opened above"))
            }

            /// The `programs` table, opened on first use.
            pub fn programs(&self) -> Result<&redb::$tbl<$($lt,)? u64, &'static [u8]>, StorageError> {
                if let Some(t) = self.programs.get() {
                    return Ok(t);
                }
                let t = self.txn.open_table(PROGRAMS)?;
                Ok(self.programs.get_or_init(|| t))
            }

            #[allow(dead_code)]
            pub(crate) fn programs_mut(&mut self) -> Result<&mut redb::$tbl<$($lt,)? u64, &'static [u8]>, StorageError> {
                self.programs()?;
                Ok(self.programs.get_mut().expect("opened above"))
            }

            /// The `holders` table, opened on first use.
            pub fn holders(&self) -> Result<&redb::$tbl<$($lt,)? u128, &'static [u8]>, StorageError> {
                if let Some(t) = self.holders.get() {
                    return Ok(t);
                }
                let t = self.txn.open_table(HOLDERS)?;
                Ok(self.holders.get_or_init(|| t))
            }

            #[allow(dead_code)]
            pub(crate) fn holders_mut(&mut self) -> Result<&mut redb::$tbl<$($lt,)? u128, &'static [u8]>, StorageError> {
                self.holders()?;
                Ok(self.holders.get_mut().expect("opened above"))
            }

            /// The `holder_identity` table, opened on first use.
            pub fn holder_identity(&self) -> Result<&redb::$tbl<$($lt,)? &'static str, u128>, StorageError> {
                if let Some(t) = self.holder_identity.get() {
                    return Ok(t);
                }
                let t = self.txn.open_table(HOLDER_IDENTITY)?;
                Ok(self.holder_identity.get_or_init(|| t))
            }

            #[allow(dead_code)]
            pub(crate) fn holder_identity_mut(&mut self) -> Result<&mut redb::$tbl<$($lt,)? &'static str, u128>, StorageError> {
                self.holder_identity()?;
                Ok(self.holder_identity.get_mut().expect("opened above"))
            }

            /// The `holder_email` table, opened on first use.
            pub fn holder_email(&self) -> Result<&redb::$tbl<$($lt,)? &'static str, u128>, StorageError> {
                if let Some(t) = self.holder_email.get() {
                    return Ok(t);
                }
                let t = self.txn.open_table(HOLDER_EMAIL)?;
                Ok(self.holder_email.get_or_init(|| t))
            }

            #[allow(dead_code)]
            pub(crate) fn holder_email_mut(&mut self) -> Result<&mut redb::$tbl<$($lt,)? &'static str, u128>, StorageError> {
                self.holder_email()?;
                Ok(self.holder_email.get_mut().expect("opened above"))
            }

            /// The `holder_wallets` table, opened on first use.
            pub fn holder_wallets(&self) -> Result<&redb::$tbl<$($lt,)? &'static [u8], ()>, StorageError> {
                if let Some(t) = self.holder_wallets.get() {
                    return Ok(t);
                }
                let t = self.txn.open_table(HOLDER_WALLETS)?;
                Ok(self.holder_wallets.get_or_init(|| t))
            }

            #[allow(dead_code)]
            pub(crate) fn holder_wallets_mut(&mut self) -> Result<&mut redb::$tbl<$($lt,)? &'static [u8], ()>, StorageError> {
                self.holder_wallets()?;
                Ok(self.holder_wallets.get_mut().expect("opened above"))
            }

            /// The `wallet_uuid` table, opened on first use.
            pub fn wallet_uuid(&self) -> Result<&redb::$tbl<$($lt,)? u128, u64>, StorageError> {
                if let Some(t) = self.wallet_uuid.get() {
                    return Ok(t);
                }
                let t = self.txn.open_table(WALLET_UUID)?;
                Ok(self.wallet_uuid.get_or_init(|| t))
            }

            #[allow(dead_code)]
            pub(crate) fn wallet_uuid_mut(&mut self) -> Result<&mut redb::$tbl<$($lt,)? u128, u64>, StorageError> {
                self.wallet_uuid()?;
                Ok(self.wallet_uuid.get_mut().expect("opened above"))
            }

            /// The `wallet_external` table, opened on first use.
            pub fn wallet_external(&self) -> Result<&redb::$tbl<$($lt,)? &'static str, u64>, StorageError> {
                if let Some(t) = self.wallet_external.get() {
                    return Ok(t);
                }
                let t = self.txn.open_table(WALLET_EXTERNAL)?;
                Ok(self.wallet_external.get_or_init(|| t))
            }

            #[allow(dead_code)]
            pub(crate) fn wallet_external_mut(&mut self) -> Result<&mut redb::$tbl<$($lt,)? &'static str, u64>, StorageError> {
                self.wallet_external()?;
                Ok(self.wallet_external.get_mut().expect("opened above"))
            }

            /// The `cards` table, opened on first use.
            pub fn cards(&self) -> Result<&redb::$tbl<$($lt,)? &'static str, u64>, StorageError> {
                if let Some(t) = self.cards.get() {
                    return Ok(t);
                }
                let t = self.txn.open_table(CARDS)?;
                Ok(self.cards.get_or_init(|| t))
            }

            #[allow(dead_code)]
            pub(crate) fn cards_mut(&mut self) -> Result<&mut redb::$tbl<$($lt,)? &'static str, u64>, StorageError> {
                self.cards()?;
                Ok(self.cards.get_mut().expect("opened above"))
            }

            /// The `rows` table, opened on first use.
            pub fn rows(&self) -> Result<&redb::$tbl<$($lt,)? &'static [u8], &'static [u8]>, StorageError> {
                if let Some(t) = self.rows.get() {
                    return Ok(t);
                }
                let t = self.txn.open_table(ROWS)?;
                Ok(self.rows.get_or_init(|| t))
            }

            #[allow(dead_code)]
            pub(crate) fn rows_mut(&mut self) -> Result<&mut redb::$tbl<$($lt,)? &'static [u8], &'static [u8]>, StorageError> {
                self.rows()?;
                Ok(self.rows.get_mut().expect("opened above"))
            }

            /// The `next_due` table, opened on first use.
            pub fn next_due(&self) -> Result<&redb::$tbl<$($lt,)? &'static [u8], ()>, StorageError> {
                if let Some(t) = self.next_due.get() {
                    return Ok(t);
                }
                let t = self.txn.open_table(NEXT_DUE)?;
                Ok(self.next_due.get_or_init(|| t))
            }

            #[allow(dead_code)]
            pub(crate) fn next_due_mut(&mut self) -> Result<&mut redb::$tbl<$($lt,)? &'static [u8], ()>, StorageError> {
                self.next_due()?;
                Ok(self.next_due.get_mut().expect("opened above"))
            }

            /// The `log` table, opened on first use.
            pub fn log(&self) -> Result<&redb::$tbl<$($lt,)? u64, &'static [u8]>, StorageError> {
                if let Some(t) = self.log.get() {
                    return Ok(t);
                }
                let t = self.txn.open_table(LOG)?;
                Ok(self.log.get_or_init(|| t))
            }

            #[allow(dead_code)]
            pub(crate) fn log_mut(&mut self) -> Result<&mut redb::$tbl<$($lt,)? u64, &'static [u8]>, StorageError> {
                self.log()?;
                Ok(self.log.get_mut().expect("opened above"))
            }

            /// The `idem` table, opened on first use.
            pub fn idem(&self) -> Result<&redb::$tbl<$($lt,)? &'static str, &'static [u8]>, StorageError> {
                if let Some(t) = self.idem.get() {
                    return Ok(t);
                }
                let t = self.txn.open_table(IDEM)?;
                Ok(self.idem.get_or_init(|| t))
            }

            #[allow(dead_code)]
            pub(crate) fn idem_mut(&mut self) -> Result<&mut redb::$tbl<$($lt,)? &'static str, &'static [u8]>, StorageError> {
                self.idem()?;
                Ok(self.idem.get_mut().expect("opened above"))
            }

            /// The header row of stream `w`, split.
            pub fn header(&self, w: u64) -> R<Option<(HeaderPrefix, Vec<u8>)>> {
                match self.rows()?.get(&header_k(w)[..])? {
                    Some(v) => {
                        let (p, rest) = header_from(v.value())?;
                        Ok(Some((p, rest.to_vec())))
                    }
                    None => Ok(None),
                }
            }

            /// Lot `no` of wallet `w` by one descent of the tree.
            fn lot_get(&self, w: u64, no: u32) -> R<Option<Lot>> {
                self.rows()?.get(&lot_key(w, no)[..])?.map(|v| decode_lot(v.value())).transpose()
            }

            fn row<T: bincode::Decode<()>>(&self, key: &[u8], what: &str) -> R<Option<T>> {
                match self.rows()?.get(key)? {
                    Some(v) => Ok(Some(decode(what, v.value())?)),
                    None => Ok(None),
                }
            }
        }

        impl<$($lt)?> Backing for $name<$($lt)?> {
            fn ledger(&self) -> R<LedgerState> {
                let position = self.log()?.last()?.map(|(k, _)| k.value()).unwrap_or(0);
                let ledger_seq = self.header(LEDGER_STREAM)?.map_or(0, |(p, _)| p.seq);
                let (wallets, pockets): (u64, u64) = match self.meta()?.get("counters")? {
                    Some(v) => decode("ledger counters", v.value())?,
                    None => (0, 0),
                };
                Ok(LedgerState { position, ledger_seq, wallets, pockets })
            }
            fn program(&self, id: u64) -> R<Option<Program>> {
                self.programs()?.get(id)?.map(|v| decode_named(|| format!("program {id}"), v.value())).transpose()
            }
            fn holder(&self, id: [u8; 16]) -> R<Option<Holder>> {
                self.holders()?
                    .get(u128::from_be_bytes(id))?
                    .map(|v| decode("holder", v.value()))
                    .transpose()
            }
            fn holder_by_identity(&self, s: &str) -> R<Option<[u8; 16]>> {
                Ok(self.holder_identity()?.get(s)?.map(|v| v.value().to_be_bytes()))
            }
            fn holder_by_email(&self, s: &str) -> R<Option<[u8; 16]>> {
                Ok(self.holder_email()?.get(s)?.map(|v| v.value().to_be_bytes()))
            }
            fn wallet_by_uuid(&self, id: [u8; 16]) -> R<Option<u64>> {
                Ok(self.wallet_uuid()?.get(u128::from_be_bytes(id))?.map(|v| v.value()))
            }
            fn wallet_by_external(&self, s: &str) -> R<Option<u64>> {
                Ok(self.wallet_external()?.get(s)?.map(|v| v.value()))
            }
            fn wallet_by_card(&self, s: &str) -> R<Option<u64>> {
                Ok(self.cards()?.get(s)?.map(|v| v.value()))
            }
            fn wallet(&self, no: u64) -> R<Option<WalletState>> {
                if no == LEDGER_STREAM {
                    return Ok(None);
                }
                match self.rows()?.get(&header_k(no)[..])? {
                    Some(v) => {
                        let (_, body) = header_from(v.value())?;
                        Ok(Some(decode_wallet(|| format!("wallet {no}"), body)?))
                    }
                    None => Ok(None),
                }
            }
            fn lot(&self, w: u64, no: u32) -> R<Option<Lot>> {
                self.lot_read(w, no)
            }
            fn name(&self, w: u64, kind: NameKind, id: &str) -> R<Option<u32>> {
                match self.rows()?.get(&name_key(w, kind, id)[..])? {
                    Some(v) => {
                        let b: [u8; 4] = v.value().try_into().map_err(|_| {
                            StorageError(format!("wallet {w}: name row of the wrong size"))
                        })?;
                        Ok(Some(u32::from_be_bytes(b)))
                    }
                    None => Ok(None),
                }
            }
            fn hold(&self, w: u64, no: u32) -> R<Option<HoldRec>> {
                self.row(&hold_key(w, no), "hold")
            }
            fn redemption(&self, w: u64, no: u32) -> R<Option<RedemptionRec>> {
                self.row(&redemption_key(w, no), "redemption")
            }
            fn slice(&self, w: u64, o: Owner, idx: u32) -> R<Option<Slice>> {
                self.rows()?.get(&slice_key(w, o, idx)[..])?.map(|v| slice_from(v.value())).transpose()
            }
            fn cons_next(
                &self,
                w: u64,
                pocket: u16,
                after: Option<ConsKey>,
                skip: &dyn Fn(&ConsKey) -> bool,
            ) -> R<Option<ConsKey>> {
                // Stored descending: the pocket's keys run from its last lot in consumption
                // order (lowest key) to its first; ascending order is the range reversed.
                let lo = cons_k(&ConsKey { wallet: w, pocket, order: i64::MAX, lot: u32::MAX });
                let hi_key;
                let hi = match after {
                    Some(a) => {
                        hi_key = cons_k(&a);
                        Bound::Excluded(&hi_key[..])
                    }
                    None => {
                        hi_key = cons_k(&ConsKey { wallet: w, pocket, order: i64::MIN, lot: 0 });
                        Bound::Included(&hi_key[..])
                    }
                };
                for r in self.rows()?.range::<&[u8]>((Bound::Included(&lo[..]), hi))?.rev() {
                    let k = cons_from(r?.0.value())?;
                    if !skip(&k) {
                        return Ok(Some(k));
                    }
                }
                Ok(None)
            }
            fn due_next(
                &self,
                w: u64,
                after: Option<DueKey>,
                skip: &dyn Fn(&DueKey) -> bool,
            ) -> R<Option<DueKey>> {
                self.due_scan(w, after, skip)
            }
            fn wallets_due(&self, upto: i64) -> R<Vec<u64>> {
                let hi = next_due_key(upto, u64::MAX);
                let mut out = Vec::new();
                for r in self.next_due()?.range::<&[u8]>(..=&hi[..])? {
                    let (k, _) = r?;
                    let b = k.value();
                    if b.len() != 16 {
                        return Err(StorageError(format!("next_due key of {} bytes", b.len())));
                    }
                    out.push(u64::from_be_bytes(b[8..].try_into().expect("sized")));
                }
                Ok(out)
            }
        }
    };
}

tables!(ReadTables [], ReadOnlyTable, redb::ReadTransaction, ReadCursors);
tables!(WriteTables ['t], Table, &'t redb::WriteTransaction, std::cell::RefCell<DueAhead>);

/// The keys bounding wallet `w`'s due keys strictly after `after` (all of them when `None`):
/// (low, whether low is included, high).
fn due_bounds(w: u64, after: Option<DueKey>) -> ([u8; 22], bool, [u8; 22]) {
    let hi = due_k(&DueKey {
        wallet: w,
        at: i64::MAX,
        kind: DueKind::Expiry,
        no: u32::MAX,
    });
    match after {
        Some(a) => (due_k(&a), false, hi),
        None => (
            due_k(&DueKey {
                wallet: w,
                at: i64::MIN,
                kind: DueKind::Activation,
                no: 0,
            }),
            true,
            hi,
        ),
    }
}

fn low_bound(lo: &[u8], included: bool) -> Bound<&[u8]> {
    if included {
        Bound::Included(lo)
    } else {
        Bound::Excluded(lo)
    }
}

type RowRange = redb::Range<'static, &'static [u8], &'static [u8]>;

/// One wallet's due index as read so far in a read transaction: the keys one range scan has
/// returned, and the scan itself to continue. Deriving k transitions asks for the next due key
/// k + 1 times, each time just after the key it last got; without this each ask was a fresh
/// descent of the tree. Valid because committed keys cannot change under a read transaction.
pub struct DueCursor {
    wallet: u64,
    /// The scan covers the keys strictly after this one (all of the wallet's when `None`).
    from: Option<DueKey>,
    /// The keys the scan returned, ascending.
    seen: Vec<DueKey>,
    /// The rest of the scan; `None` once it has ended.
    rest: Option<RowRange>,
}

/// Lots read one after another whose numbers are close (expiries of lots credited in turn, the
/// common case when a program gives every credit the same lifetime) are read by one range scan
/// over the wallet's lot rows instead of one descent of the tree each: a step within a leaf is
/// a fraction of a descent. A lot more than this many numbers past the last one read is read
/// with a fresh descent, so a step never walks more than this many rows.
const LOT_STEPS: u32 = 8;

/// A range scan over wallet `wallet`'s lot rows, just past lot `last`.
pub struct LotCursor {
    wallet: u64,
    last: u32,
    rest: RowRange,
}

/// What a read transaction keeps from one look-up to the next within one read call (dropped by
/// [`ReadTables::forget_cursors`]). Separate cells: a due scan's `skip` may read a lot.
#[derive(Default)]
pub struct ReadCursors {
    due: std::cell::RefCell<Option<DueCursor>>,
    lot: std::cell::RefCell<Option<LotCursor>>,
    /// An emptied `DueCursor::seen`, kept for the next scan.
    seen_spare: std::cell::RefCell<Vec<DueKey>>,
}

impl ReadTables {
    /// Drops the cursors (and the pages their scans hold) before the tables are kept idle.
    pub fn forget_cursors(&mut self) {
        if let Some(c) = self.cursors.due.get_mut().take() {
            // Its allocation serves the next read's scan, unless a long one grew it.
            let mut seen = c.seen;
            seen.clear();
            if seen.capacity() <= 64 {
                *self.cursors.seen_spare.get_mut() = seen;
            }
        }
        *self.cursors.lot.get_mut() = None;
    }

    /// Lot `no` of wallet `w`: by stepping the lot cursor when `no` lies a few numbers past the
    /// lot it last returned, else by starting a new scan at `no`. Committed rows cannot change
    /// under a read transaction, so a scan begun for an earlier lot is still exact.
    fn lot_read(&self, w: u64, no: u32) -> R<Option<Lot>> {
        let Ok(mut cell) = self.cursors.lot.try_borrow_mut() else {
            return self.lot_get(w, no);
        };
        let ahead = cell
            .as_ref()
            .is_some_and(|c| c.wallet == w && c.last < no && no - c.last <= LOT_STEPS);
        if !ahead {
            // Behind the cursor (or the same lot again): a plain get, keeping the cursor for
            // the lots after it.
            if cell.as_ref().is_some_and(|c| c.wallet == w && c.last >= no) {
                return self.lot_get(w, no);
            }
            let lo = lot_key(w, no);
            *cell = Some(LotCursor {
                wallet: w,
                // Only `no` itself is wanted from the new scan.
                last: no.wrapping_sub(1),
                // Open-ended (see `due_scan`): stopped at the first key that is not a lot of `w`.
                rest: self.rows()?.range::<&[u8]>(&lo[..]..)?,
            });
        }
        let c = cell.as_mut().expect("set above");
        loop {
            let step = match c.rest.next() {
                None => None,
                Some(r) => match r.map_err(StorageError::from).and_then(|(k, v)| {
                    let k = k.value();
                    if !is_row_of(k, w, row::LOT) {
                        return Ok(None);
                    }
                    let n = lot_no_of(k)?;
                    Ok(Some((
                        n,
                        (n == no).then(|| decode_lot(v.value())).transpose()?,
                    )))
                }) {
                    Ok(x) => x,
                    Err(e) => {
                        // A scan that failed part-way is not resumed.
                        *cell = None;
                        return Err(e);
                    }
                },
            };
            match step {
                // Lots are never deleted, so this skips at most LOT_STEPS - 1 rows.
                Some((n, _)) if n < no => c.last = n,
                Some((n, lot)) if n == no => {
                    c.last = n;
                    return Ok(lot);
                }
                // Past `no` (the scan consumed a row it cannot give back) or at its end.
                _ => {
                    *cell = None;
                    return Ok(None);
                }
            }
        }
    }

    fn due_scan(
        &self,
        w: u64,
        after: Option<DueKey>,
        skip: &dyn Fn(&DueKey) -> bool,
    ) -> R<Option<DueKey>> {
        // `skip` might read through this backing again; rather than fail, that nested look-up
        // scans without the cursor.
        let Ok(mut cell) = self.cursors.due.try_borrow_mut() else {
            return self.due_scan_fresh(w, after, skip);
        };
        let reusable = cell
            .as_ref()
            .is_some_and(|c| c.wallet == w && c.from <= after);
        if !reusable {
            let mut seen = cell
                .take()
                .map(|c| c.seen)
                .unwrap_or_else(|| std::mem::take(&mut *self.cursors.seen_spare.borrow_mut()));
            seen.clear();
            let (lo, incl, _) = due_bounds(w, after);
            // Open-ended, and stopped at the first key past the wallet's due rows: an upper
            // bound costs redb an allocation per scan.
            let rest = self
                .rows()?
                .range::<&[u8]>((low_bound(&lo, incl), Bound::Unbounded))?;
            *cell = Some(DueCursor {
                wallet: w,
                from: after,
                seen,
                rest: Some(rest),
            });
        }
        let Some(c) = cell.as_mut() else {
            return Ok(None);
        };
        let start = c.seen.partition_point(|k| Some(*k) <= after);
        if let Some(k) = c.seen[start..].iter().find(|k| !skip(k)) {
            return Ok(Some(*k));
        }
        while let Some(r) = c.rest.as_mut().and_then(|it| it.next()) {
            let k = match r.map_err(StorageError::from).and_then(|(k, _)| {
                let k = k.value();
                is_row_of(k, w, row::DUE).then(|| due_from(k)).transpose()
            }) {
                Ok(Some(k)) => k,
                Ok(None) => break,
                Err(e) => {
                    // A scan that failed part-way is not resumed.
                    *cell = None;
                    return Err(e);
                }
            };
            c.seen.push(k);
            // A key at or before `after` is only there because this scan began earlier and
            // has not reached `after` yet (an ask further ahead than the last answer).
            if Some(k) > after && !skip(&k) {
                return Ok(Some(k));
            }
        }
        c.rest = None;
        Ok(None)
    }

    /// One range scan, as [`WriteTables`] does.
    fn due_scan_fresh(
        &self,
        w: u64,
        after: Option<DueKey>,
        skip: &dyn Fn(&DueKey) -> bool,
    ) -> R<Option<DueKey>> {
        scan_due(self.rows()?, w, after, skip)
    }
}

/// Committed due keys read ahead, per wallet, in a write transaction. Every command asks for
/// its wallet's first due key at least once (to record what fell due), and each ask was a fresh
/// range scan: the descent cost more than the rest of recording an expiry. A scan that cannot
/// stay open across the transaction's later inserts (the table is borrowed mutably by them)
/// instead reads a few keys ahead. The committed keys do not change until `write`, which
/// forgets them all.
#[derive(Default)]
pub struct DueAhead(NumMap<u64, Ahead>);

/// The committed due keys of one wallet strictly after `from`, ascending and without gaps:
/// `keys` are all there are up to the last of them, and all there are at all once `done`.
pub struct Ahead {
    from: Option<DueKey>,
    keys: Vec<DueKey>,
    done: bool,
}

/// Fewest new event records of one stream in a transaction that are written as one run.
const EVENT_RUN_MIN: usize = 4;

/// Keys read per scan: a command usually needs the first one or two, a batch a few per wallet.
const DUE_READ_AHEAD: usize = 16;

impl WriteTables<'_> {
    /// A get per lot: a write transaction reads each lot it changes once, into its overlay.
    fn lot_read(&self, w: u64, no: u32) -> R<Option<Lot>> {
        self.lot_get(w, no)
    }

    /// The overlay's merge skips the keys this transaction deleted; this serves the committed
    /// keys below it from [`DueAhead`], scanning only to read further ahead.
    fn due_scan(
        &self,
        w: u64,
        after: Option<DueKey>,
        skip: &dyn Fn(&DueKey) -> bool,
    ) -> R<Option<DueKey>> {
        // `skip` might read through this backing again; that nested look-up scans afresh.
        let Ok(mut ahead) = self.cursors.try_borrow_mut() else {
            return scan_due(self.rows()?, w, after, skip);
        };
        let a = ahead.0.entry(w).or_insert_with(|| Ahead {
            from: after,
            keys: Vec::new(),
            done: false,
        });
        // `None` (the wallet's first key) sorts before every key, so it covers any `after`.
        if a.from > after {
            *a = Ahead {
                from: after,
                keys: Vec::new(),
                done: false,
            };
        }
        let mut i = after.map_or(0, |k| a.keys.partition_point(|x| *x <= k));
        loop {
            // A key at or before `after` is only here when `after` lies past the keys read so
            // far (an ask further ahead than the last answer): never an answer.
            if let Some(k) = a.keys[i..].iter().find(|k| Some(**k) > after && !skip(k)) {
                return Ok(Some(*k));
            }
            i = a.keys.len();
            if a.done {
                return Ok(None);
            }
            let (lo, incl, hi) = due_bounds(w, a.keys.last().copied().or(a.from));
            let mut read = 0;
            for r in self
                .rows()?
                .range::<&[u8]>((low_bound(&lo, incl), Bound::Included(&hi[..])))?
            {
                match r
                    .map_err(StorageError::from)
                    .and_then(|(k, _)| due_from(k.value()))
                {
                    Ok(k) => a.keys.push(k),
                    Err(e) => {
                        ahead.0.remove(&w);
                        return Err(e);
                    }
                }
                read += 1;
                if read == DUE_READ_AHEAD {
                    break;
                }
            }
            a.done = read < DUE_READ_AHEAD;
        }
    }
}

/// The first due key of `w` after `after` for which `skip` is false, by one range scan.
fn scan_due(
    rows: &impl ReadableTable<&'static [u8], &'static [u8]>,
    w: u64,
    after: Option<DueKey>,
    skip: &dyn Fn(&DueKey) -> bool,
) -> R<Option<DueKey>> {
    let (lo, incl, hi) = due_bounds(w, after);
    for r in rows.range::<&[u8]>((low_bound(&lo, incl), Bound::Included(&hi[..])))? {
        let k = due_from(r?.0.value())?;
        if !skip(&k) {
            return Ok(Some(k));
        }
    }
    Ok(None)
}

impl Drop for WriteTables<'_> {
    /// A panic inside redb (a damaged file) can poison the transaction's table lock, and each
    /// open table's drop takes that lock with `unwrap`: a second panic while unwinding aborts the
    /// process before `guard` can turn the first into an error. While unwinding, the open tables
    /// are leaked instead; the transaction itself is never committed.
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        std::mem::forget(std::mem::take(&mut self.meta));
        std::mem::forget(std::mem::take(&mut self.programs));
        std::mem::forget(std::mem::take(&mut self.holders));
        std::mem::forget(std::mem::take(&mut self.holder_identity));
        std::mem::forget(std::mem::take(&mut self.holder_email));
        std::mem::forget(std::mem::take(&mut self.holder_wallets));
        std::mem::forget(std::mem::take(&mut self.wallet_uuid));
        std::mem::forget(std::mem::take(&mut self.wallet_external));
        std::mem::forget(std::mem::take(&mut self.cards));
        std::mem::forget(std::mem::take(&mut self.rows));
        std::mem::forget(std::mem::take(&mut self.next_due));
        std::mem::forget(std::mem::take(&mut self.log));
        std::mem::forget(std::mem::take(&mut self.idem));
    }
}

impl ReadTables {
    /// Lifecycle events of wallet `w`, in order.
    pub fn lifecycle_of(&self, w: u64) -> R<Vec<LifecycleRec>> {
        let lo = lifecycle_key(w, 0);
        let hi = lifecycle_key(w, u32::MAX);
        let mut out = Vec::new();
        for r in self.rows()?.range::<&[u8]>(&lo[..]..=&hi[..])? {
            let (_, v) = r?;
            out.push(decode_named(|| format!("wallet {w} lifecycle"), v.value())?);
        }
        Ok(out)
    }

    /// Wallet numbers of a holder, ascending.
    pub fn wallets_of(&self, holder: [u8; 16]) -> R<Vec<u64>> {
        let mut lo = [0u8; 24];
        lo[..16].copy_from_slice(&holder);
        let mut hi = lo;
        hi[16..].copy_from_slice(&u64::MAX.to_be_bytes());
        let mut out = Vec::new();
        for r in self.holder_wallets()?.range::<&[u8]>(&lo[..]..=&hi[..])? {
            let (k, _) = r?;
            let w = k
                .value()
                .get(16..24)
                .and_then(|b| b.try_into().ok())
                .map(u64::from_be_bytes)
                .ok_or_else(|| StorageError("holder_wallets key of the wrong size".into()))?;
            out.push(w);
        }
        Ok(out)
    }

    /// Event `seq` of `stream`, raw.
    pub fn event_raw(&self, stream: u64, seq: u64) -> R<Option<Vec<u8>>> {
        Ok(self
            .rows()?
            .get(&event_k(stream, seq)[..])?
            .map(|v| v.value().to_vec()))
    }
}

impl WriteTables<'_> {
    /// Writes a transaction's changes: records, indexes, and the event records chained to each
    /// stream's head. Called once per write transaction, after every command in it succeeded.
    pub fn write(&mut self, c: Changes) -> R<()> {
        // The keys read ahead stop being the committed ones from here on.
        self.cursors.get_mut().0.clear();
        if let Some(l) = &c.ledger {
            // Position and the ledger stream's sequence are derived (log, stream 0's head);
            // only the wallet and pocket counters are stored, and only when they move.
            let stored: (u64, u64) = match self.meta()?.get("counters")? {
                Some(v) => decode("ledger counters", v.value())?,
                None => (0, 0),
            };
            if stored != (l.wallets, l.pockets) {
                self.meta_mut()?
                    .insert("counters", &encode(&(l.wallets, l.pockets))[..])?;
            }
        }
        for (id, p) in &c.programs {
            self.programs_mut()?.insert(*id, &encode(p)[..])?;
        }
        for (id, h) in &c.holders {
            self.holders_mut()?
                .insert(u128::from_be_bytes(*id), &encode(h)[..])?;
        }
        for (k, v) in &c.identities {
            self.holder_identity_mut()?
                .insert(k.as_str(), u128::from_be_bytes(*v))?;
        }
        for (k, v) in &c.emails {
            self.holder_email_mut()?
                .insert(k.as_str(), u128::from_be_bytes(*v))?;
        }
        for (k, v) in &c.wallet_uuids {
            self.wallet_uuid_mut()?
                .insert(u128::from_be_bytes(*k), *v)?;
        }
        for (k, v) in &c.externals {
            self.wallet_external_mut()?.insert(k.as_str(), *v)?;
        }
        for (k, v) in &c.cards {
            self.cards_mut()?.insert(k.as_str(), *v)?;
        }
        for (h, w) in &c.holder_wallets {
            let mut k = [0u8; 24];
            k[..16].copy_from_slice(h);
            k[16..].copy_from_slice(&w.to_be_bytes());
            self.holder_wallets_mut()?.insert(&k[..], ())?;
        }
        let rows = self.rows_mut()?;
        for ((w, no), l) in &c.lots {
            rows.insert(&lot_key(*w, *no)[..], &encode(l)[..])?;
        }
        for ((w, kind, id), no) in &c.names {
            rows.insert(&name_key(*w, *kind, id)[..], &no.to_be_bytes()[..])?;
        }
        for ((w, no), h) in &c.holds {
            rows.insert(&hold_key(*w, *no)[..], &encode(h)[..])?;
        }
        for ((w, no), r) in &c.redemptions {
            rows.insert(&redemption_key(*w, *no)[..], &encode(r)[..])?;
        }
        for ((w, o, idx), s) in &c.slices {
            rows.insert(&slice_key(*w, *o, *idx)[..], &slice_val(s)[..])?;
        }
        for (w, idx, rec) in &c.lifecycle {
            rows.insert(&lifecycle_key(*w, *idx)[..], &encode(rec)[..])?;
        }
        for k in &c.cons_del {
            rows.remove(&cons_k(k)[..])?;
        }
        for k in &c.cons_add {
            rows.insert(&cons_k(k)[..], &[][..])?;
        }
        for k in &c.due_del {
            rows.remove(&due_k(k)[..])?;
        }
        for k in &c.due_add {
            rows.insert(&due_k(k)[..], &[][..])?;
        }
        // The stored header prefix (chain head, earliest due) of every stream this writes.
        let mut prefixes: HashMap<u64, HeaderPrefix> = HashMap::new();
        let streams: Vec<u64> = c
            .events
            .iter()
            .map(|p| p.stream)
            .chain(c.wallets.keys().copied())
            .collect();
        for s in streams {
            if let std::collections::hash_map::Entry::Vacant(e) = prefixes.entry(s) {
                let p = match rows.get(&header_k(s)[..])? {
                    Some(v) => header_from(v.value())?.0,
                    None => HeaderPrefix::default(),
                };
                e.insert(p);
            }
        }
        // Events, chained per stream, and the global log.
        let mut first_seq: HashMap<u64, u64> = HashMap::new();
        let mut records = Vec::with_capacity(c.events.len());
        for p in &c.events {
            let head = prefixes.get_mut(&p.stream).expect("collected above");
            if p.seq != head.seq + 1 {
                return Err(StorageError(format!(
                    "stream {}: event sequence {} does not follow {}",
                    p.stream, p.seq, head.seq
                )));
            }
            let (bytes, sum) = encode_event(
                &head.checksum,
                p.stream,
                p.seq,
                p.position,
                p.at,
                &p.delta,
                &p.event,
            );
            records.push((p.stream, p.seq, bytes));
            head.seq = p.seq;
            head.checksum = sum;
            first_seq.entry(p.stream).or_insert(p.seq);
        }
        // Key order: a stream's new records precede its last stored one (stored newest first;
        // sequences were checked above), so each stream's are one run for a cursor (see the log
        // below). A run costs a leaf rebuild, so short runs are inserted one by one. Either way
        // an event row already there (a damaged file: a row past the header's sequence) fails
        // the commit rather than being overwritten: the log is append-only.
        records.sort_unstable_by_key(|r| (r.0, r.1));
        for run in records.chunk_by(|a, b| a.0 == b.0) {
            if run.len() < EVENT_RUN_MIN {
                for (stream, seq, bytes) in run {
                    if rows
                        .insert(&event_k(*stream, *seq)[..], &bytes[..])?
                        .is_some()
                    {
                        return Err(StorageError(format!(
                            "stream {stream}: event {seq} is already stored, past the stream's \
                             head: the file is damaged (run `verify`)"
                        )));
                    }
                }
                continue;
            }
            // Stored newest first: the run's keys ascend from its last event to its first, and
            // all lie before the stream's newest stored event.
            let (stream, last, _) = run[run.len() - 1];
            let mut tail = rows.lower_bound_mut(Bound::Included(&event_k(stream, last)[..]))?;
            for (stream, seq, bytes) in run.iter().rev() {
                tail.insert_before(&event_k(*stream, *seq)[..], &bytes[..])
                    .map_err(|e| {
                        StorageError(format!(
                            "stream {stream}: event {seq}: {}",
                            redb::Error::from(e)
                        ))
                    })?;
            }
            tail.close()?;
        }
        // Headers: chain head, earliest due, state.
        // The sweep index entry (kept in the header prefix too) is a lower bound of the
        // wallet's earliest due instant, not a copy: moving it later on every expiry would
        // cost two more B-tree leaves per command, while an entry left early only makes a
        // `sweep` visit a wallet with nothing due yet (and refresh it, `sweep_exact`).
        let exact: HashSet<u64> = c.sweep_exact.iter().copied().collect();
        let mut sweep_moves: Vec<(u64, Option<i64>, Option<i64>)> = Vec::new();
        for (w, ws) in &c.wallets {
            let mut prefix = prefixes[w];
            let old = prefix.next_due;
            prefix.next_due = if exact.contains(w) {
                ws.next_due
            } else {
                match (old, ws.next_due) {
                    (Some(o), Some(n)) if o <= n => Some(o),
                    (o, None) => o,
                    (_, n) => n,
                }
            };
            if prefix.next_due != old {
                sweep_moves.push((*w, old, prefix.next_due));
            }
            let mut v = Vec::with_capacity(256);
            prefix.encode(&mut v);
            v.extend_from_slice(&encode(ws));
            rows.insert(&header_k(*w)[..], &v[..])?;
            // Checkpoints: a wallet carried past a multiple of CHECKPOINT_EVERY events by this
            // transaction gets one at its last event.
            if let Some(first) = first_seq.get(w)
                && (first - 1) / CHECKPOINT_EVERY != ws.seq / CHECKPOINT_EVERY
            {
                rows.insert(
                    &checkpoint_key(*w, ws.updated_at, ws.seq)[..],
                    &encode(&Checkpoint::of(ws))[..],
                )?;
            }
        }
        if first_seq.contains_key(&LEDGER_STREAM) {
            let mut v = Vec::with_capacity(HEADER_PREFIX);
            prefixes[&LEDGER_STREAM].encode(&mut v);
            rows.insert(&header_k(LEDGER_STREAM)[..], &v[..])?;
        }
        if !c.events.is_empty() {
            // Positions are new and ascending past the last one stored, so they go in as one
            // run at the table's end: redb packs a cursor's run into leaves in one splice,
            // where an insert each cost a descent of the tree and an in-place shuffle of a leaf.
            let mut at_end = self.log_mut()?.upper_bound_mut(Bound::<u64>::Unbounded)?;
            for p in &c.events {
                at_end
                    .insert_before(p.position, &k_ww(p.stream, p.seq)[..])
                    .map_err(|e| {
                        StorageError(format!(
                            "log position {}: {}",
                            p.position,
                            redb::Error::from(e)
                        ))
                    })?;
            }
            at_end.close()?;
        }
        for (w, old, new) in sweep_moves {
            let nd = self.next_due_mut()?;
            if let Some(o) = old {
                nd.remove(&next_due_key(o, w)[..])?;
            }
            if let Some(n) = new {
                nd.insert(&next_due_key(n, w)[..], ())?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    //! The read cursors (`lot_read`, `due_scan`) must answer exactly what a fresh look-up
    //! answers, whatever order the look-ups come in.
    use super::*;
    use crate::ledger::{FixedClock, Ledger};
    use redb::ReadableDatabase;

    const H: &str = "37b08803-c1af-4e10-849f-530264bac7f8";

    fn wallet(i: u32) -> String {
        format!("550e8400-e29b-41d4-a716-4466554400{i:02}")
    }

    /// Three wallets with 30, 12 and 0 lots; most expire, a few (every fifth) never do.
    fn fixture(path: &std::path::Path) {
        let clock = Box::new(FixedClock("2026-06-01T00:00:00Z".parse().unwrap()));
        let l = Ledger::open_with_clock(path, clock).unwrap();
        let mut lines = vec![
            r#"{"op":"define_program","at":"2026-01-01T00:00:00Z","program":1,"name":"P","unit":"PTS","pockets":[{"pocket":"main","name":"Main","kind":"POINTS","asset":"PTS","scale":0}]}"#.to_string(),
            format!(r#"{{"op":"register_holder","at":"2026-01-01T00:00:00Z","holder":"{H}"}}"#),
        ];
        for (i, lots) in [(1, 30), (2, 12), (3, 0)] {
            let w = wallet(i);
            lines.push(format!(
                r#"{{"op":"open_wallet","at":"2026-01-01T00:00:00Z","wallet":"{w}","holder":"{H}","program":1}}"#
            ));
            for n in 1..=lots {
                let expiry = if n % 5 == 0 {
                    String::new()
                } else {
                    format!(r#","expires_at":"2026-03-{:02}T00:00:00Z""#, 1 + n % 20)
                };
                lines.push(format!(
                    r#"{{"op":"credit","at":"2026-01-02T00:{n:02}:00Z","wallet":"{w}","amount":"{n}"{expiry}}}"#
                ));
            }
        }
        for line in lines {
            l.execute_line(&line).unwrap();
        }
    }

    fn open(path: &std::path::Path) -> (redb::Database, Vec<u64>) {
        let db = redb::Database::open(path).unwrap();
        let t = ReadTables::open(db.begin_read().unwrap()).unwrap();
        let ws = (1..=3)
            .map(|i| {
                let id: uuid::Uuid = wallet(i).parse().unwrap();
                t.wallet_by_uuid(*id.as_bytes()).unwrap().unwrap()
            })
            .collect();
        (db, ws)
    }

    /// A small deterministic generator (no dependency needed for this).
    struct Rng(u64);
    impl Rng {
        fn below(&mut self, n: u64) -> u64 {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (self.0 >> 33) % n
        }
    }

    #[test]
    fn the_lot_cursor_answers_what_a_get_answers_in_any_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("l.redb");
        fixture(&path);
        let (db, ws) = open(&path);
        let mut t = ReadTables::open(db.begin_read().unwrap()).unwrap();
        let check = |t: &ReadTables, w: u64, no: u32| {
            assert_eq!(
                t.lot(w, no).unwrap(),
                t.lot_get(w, no).unwrap(),
                "lot {w}/{no}"
            );
        };
        let (a, b, c) = (ws[0], ws[1], ws[2]);
        // Steps within the window, beyond it, backwards, the same lot twice, past the last lot
        // (the next row is of another kind), a wallet without lots, and switching wallets.
        let scripted: &[&[(u64, u32)]] = &[
            &[(a, 1), (a, 2), (a, 3), (a, 5), (a, 13), (a, 14)],
            &[(a, 7), (a, 4), (a, 8), (a, 8), (a, 16)],
            &[(a, 29), (a, 30), (a, 31), (a, 32), (a, 30)],
            &[(a, 2), (b, 3), (a, 4), (b, 4), (c, 1), (b, 12), (b, 13)],
            &[(a, 0), (a, 1), (a, u32::MAX), (b, u32::MAX - 1), (b, 1)],
        ];
        for seq in scripted {
            for &(w, no) in *seq {
                check(&t, w, no);
            }
            t.forget_cursors();
        }
        let mut rng = Rng(7);
        for _ in 0..2_000 {
            let w = ws[rng.below(3) as usize];
            check(&t, w, rng.below(36) as u32);
            if rng.below(50) == 0 {
                t.forget_cursors();
            }
        }
    }

    #[test]
    fn the_due_cursor_answers_what_a_fresh_scan_answers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("l.redb");
        fixture(&path);
        let (db, ws) = open(&path);
        let mut t = ReadTables::open(db.begin_read().unwrap()).unwrap();
        let mut rng = Rng(11);
        for _ in 0..2_000 {
            let w = ws[rng.below(3) as usize];
            // Keys of this wallet, to ask for the one after, plus the start of the index.
            let mut keys = vec![None];
            for k in scan_all_due(&t, w) {
                keys.push(Some(k));
            }
            let after = keys[rng.below(keys.len() as u64) as usize];
            let skip_odd = rng.below(2) == 0;
            let skip = move |k: &DueKey| skip_odd && k.no % 2 == 1;
            assert_eq!(
                t.due_next(w, after, &skip).unwrap(),
                scan_due(t.rows().unwrap(), w, after, &skip).unwrap(),
                "wallet {w} after {after:?}"
            );
            if rng.below(20) == 0 {
                t.forget_cursors();
            }
        }
    }

    /// The write transaction's read-ahead (`DueAhead`) must answer what a fresh scan answers
    /// too, including an ask further ahead than the keys it has read so far: a key at or
    /// before `after` is never an answer.
    #[test]
    fn the_due_read_ahead_answers_what_a_fresh_scan_answers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("l.redb");
        fixture(&path);
        let (db, ws) = open(&path);
        let keys: Vec<Vec<DueKey>> = {
            let t = ReadTables::open(db.begin_read().unwrap()).unwrap();
            ws.iter().map(|w| scan_all_due(&t, *w)).collect()
        };
        assert!(
            keys[0].len() > DUE_READ_AHEAD + 2,
            "the fixture has keys to read ahead"
        );
        let txn = db.begin_write().unwrap();
        {
            let t = WriteTables::open(&txn).unwrap();
            let none = |_: &DueKey| false;
            // Scripted: the first key, then straight past everything read ahead so far.
            let a = ws[0];
            let far = keys[0][DUE_READ_AHEAD + 1];
            assert_eq!(t.due_next(a, None, &none).unwrap(), Some(keys[0][0]));
            assert_eq!(
                t.due_next(a, Some(far), &none).unwrap(),
                scan_due(t.rows().unwrap(), a, Some(far), &none).unwrap(),
                "an ask past the keys read ahead"
            );
            let mut rng = Rng(13);
            for _ in 0..2_000 {
                let i = rng.below(3) as usize;
                let mut choices = vec![None];
                choices.extend(keys[i].iter().copied().map(Some));
                let after = choices[rng.below(choices.len() as u64) as usize];
                let skip_odd = rng.below(2) == 0;
                let skip = move |k: &DueKey| skip_odd && k.no % 2 == 1;
                assert_eq!(
                    t.due_next(ws[i], after, &skip).unwrap(),
                    scan_due(t.rows().unwrap(), ws[i], after, &skip).unwrap(),
                    "wallet {} after {after:?}",
                    ws[i]
                );
            }
        }
        txn.abort().unwrap();
    }

    fn scan_all_due(t: &ReadTables, w: u64) -> Vec<DueKey> {
        let mut out = Vec::new();
        let mut after = None;
        while let Some(k) = scan_due(t.rows().unwrap(), w, after, &|_| false).unwrap() {
            out.push(k);
            after = Some(k);
        }
        out
    }
}
