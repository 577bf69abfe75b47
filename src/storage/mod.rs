//! Storage: the redb tables, their key layout, and the two things storage does — serve reads of
//! committed state through the domain's [`Backing`] port, and write a transaction's [`Changes`]
//! (records, indexes, event records with their checksum chain). Storage never decides.
//!
//! See `docs/design.md` for the file format and the commit strategy.

pub mod codec;

use crate::domain::state::*;
use crate::error::StorageError;
use crate::model::{Holder, Program};
use codec::*;
use redb::{ReadableTable, TableDefinition};
use std::ops::Bound;

type Bytes = &'static [u8];

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
pub const WALLETS: TableDefinition<u64, &[u8]> = TableDefinition::new("wallets");
/// (wallet, lot no) → Lot
pub const LOTS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("lots");
/// (wallet, kind, id) → number
pub const NAMES: TableDefinition<&[u8], u32> = TableDefinition::new("names");
pub const HOLDS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("holds");
pub const REDEMPTIONS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("redemptions");
/// (wallet, owner kind, owner no, idx) → (lot u32 BE, units u128 BE)
pub const SLICES: TableDefinition<&[u8], &[u8]> = TableDefinition::new("slices");
/// (wallet, idx) → LifecycleRec
pub const LIFECYCLE: TableDefinition<&[u8], &[u8]> = TableDefinition::new("lifecycle");
/// (wallet, pocket u16, order i64 key, lot) → ()
pub const CONS: TableDefinition<&[u8], ()> = TableDefinition::new("consumable");
/// (wallet, at i64 key, kind u8, no) → ()
pub const DUE: TableDefinition<&[u8], ()> = TableDefinition::new("due");
/// wallet → its earliest due instant (i64 key bytes), mirrored in NEXT_DUE
pub const WALLET_DUE: TableDefinition<u64, &[u8]> = TableDefinition::new("wallet_due");
/// (at i64 key, wallet) → ()
pub const NEXT_DUE: TableDefinition<&[u8], ()> = TableDefinition::new("next_due");
/// (stream, seq) → event record
pub const EVENTS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("events");
/// position → (stream, seq)
pub const LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("log");
/// stream → (seq u64 BE, checksum 16 bytes): the head of each stream's chain
pub const HEADS: TableDefinition<u64, &[u8]> = TableDefinition::new("heads");
/// (wallet, at i64 key, seq) → Checkpoint: a wallet's figures and profile after event `seq`,
/// written when a transaction carries the wallet past a multiple of [`CHECKPOINT_EVERY`] events
pub const CHECKPOINTS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("checkpoints");
/// idempotency key → (fingerprint 32 bytes, encoded receipt)
pub const IDEM: TableDefinition<&str, &[u8]> = TableDefinition::new("idempotency");

const _: Option<Bytes> = None;

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

pub fn checkpoint_key(w: u64, at: i64, seq: u64) -> [u8; 24] {
    let mut k = [0u8; 24];
    k[..8].copy_from_slice(&w.to_be_bytes());
    k[8..16].copy_from_slice(&i64_key(at));
    k[16..].copy_from_slice(&seq.to_be_bytes());
    k
}

fn name_key(w: u64, kind: NameKind, id: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(9 + id.len());
    k.extend_from_slice(&w.to_be_bytes());
    k.push(kind as u8);
    k.extend_from_slice(id.as_bytes());
    k
}

fn owner_bytes(o: Owner) -> (u8, u32) {
    match o {
        Owner::Hold(n) => (0, n),
        Owner::Redemption(n) => (1, n),
    }
}

fn slice_key(w: u64, o: Owner, idx: u32) -> [u8; 17] {
    let (kind, n) = owner_bytes(o);
    let mut k = [0u8; 17];
    k[..8].copy_from_slice(&w.to_be_bytes());
    k[8] = kind;
    k[9..13].copy_from_slice(&n.to_be_bytes());
    k[13..].copy_from_slice(&idx.to_be_bytes());
    k
}

fn slice_val(s: &Slice) -> [u8; 20] {
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

pub fn cons_key(k: &ConsKey) -> [u8; 22] {
    let mut b = [0u8; 22];
    b[..8].copy_from_slice(&k.wallet.to_be_bytes());
    b[8..10].copy_from_slice(&k.pocket.to_be_bytes());
    b[10..18].copy_from_slice(&i64_key(k.order));
    b[18..].copy_from_slice(&k.lot.to_be_bytes());
    b
}

fn cons_from(b: &[u8]) -> Result<ConsKey, StorageError> {
    if b.len() != 22 {
        return Err(StorageError(format!("consumable key of {} bytes", b.len())));
    }
    Ok(ConsKey {
        wallet: u64::from_be_bytes(b[..8].try_into().expect("sized")),
        pocket: u16::from_be_bytes(b[8..10].try_into().expect("sized")),
        order: i64_from_key(&b[10..18])?,
        lot: u32::from_be_bytes(b[18..].try_into().expect("sized")),
    })
}

pub fn due_key(k: &DueKey) -> [u8; 21] {
    let mut b = [0u8; 21];
    b[..8].copy_from_slice(&k.wallet.to_be_bytes());
    b[8..16].copy_from_slice(&i64_key(k.at));
    b[16] = k.kind as u8;
    b[17..].copy_from_slice(&k.no.to_be_bytes());
    b
}

fn due_from(b: &[u8]) -> Result<DueKey, StorageError> {
    if b.len() != 21 {
        return Err(StorageError(format!("due key of {} bytes", b.len())));
    }
    Ok(DueKey {
        wallet: u64::from_be_bytes(b[..8].try_into().expect("sized")),
        at: i64_from_key(&b[8..16])?,
        kind: match b[16] {
            0 => DueKind::Activation,
            1 => DueKind::HoldTimeout,
            2 => DueKind::Expiry,
            k => return Err(StorageError(format!("due key with kind {k}"))),
        },
        no: u32::from_be_bytes(b[17..].try_into().expect("sized")),
    })
}

fn head_val(seq: u64, sum: &[u8; 16]) -> [u8; 24] {
    let mut v = [0u8; 24];
    v[..8].copy_from_slice(&seq.to_be_bytes());
    v[8..].copy_from_slice(sum);
    v
}

pub fn head_from(b: &[u8]) -> Result<(u64, [u8; 16]), StorageError> {
    if b.len() != 24 {
        return Err(StorageError(format!("chain head of {} bytes", b.len())));
    }
    let mut s = [0u8; 16];
    s.copy_from_slice(&b[8..]);
    Ok((u64::from_be_bytes(b[..8].try_into().expect("sized")), s))
}

/// The tables of one transaction, each opened on first use: a read that needs three tables
/// opens three, not all of them (opening a table costs a lookup in redb's table tree).
/// Generated twice: over a read transaction and over a write transaction.
macro_rules! tables {
    ($name:ident [$($lt:lifetime)?], $tbl:ident, $txn:ty) => {
        pub struct $name<$($lt)?> {
            txn: $txn,
            meta: std::cell::OnceCell<redb::$tbl<$($lt,)? &'static str, &'static [u8]>>,
            programs: std::cell::OnceCell<redb::$tbl<$($lt,)? u64, &'static [u8]>>,
            holders: std::cell::OnceCell<redb::$tbl<$($lt,)? u128, &'static [u8]>>,
            holder_identity: std::cell::OnceCell<redb::$tbl<$($lt,)? &'static str, u128>>,
            holder_email: std::cell::OnceCell<redb::$tbl<$($lt,)? &'static str, u128>>,
            holder_wallets: std::cell::OnceCell<redb::$tbl<$($lt,)? &'static [u8], ()>>,
            wallet_uuid: std::cell::OnceCell<redb::$tbl<$($lt,)? u128, u64>>,
            wallet_external: std::cell::OnceCell<redb::$tbl<$($lt,)? &'static str, u64>>,
            cards: std::cell::OnceCell<redb::$tbl<$($lt,)? &'static str, u64>>,
            wallets: std::cell::OnceCell<redb::$tbl<$($lt,)? u64, &'static [u8]>>,
            lots: std::cell::OnceCell<redb::$tbl<$($lt,)? &'static [u8], &'static [u8]>>,
            names: std::cell::OnceCell<redb::$tbl<$($lt,)? &'static [u8], u32>>,
            holds: std::cell::OnceCell<redb::$tbl<$($lt,)? &'static [u8], &'static [u8]>>,
            redemptions: std::cell::OnceCell<redb::$tbl<$($lt,)? &'static [u8], &'static [u8]>>,
            slices: std::cell::OnceCell<redb::$tbl<$($lt,)? &'static [u8], &'static [u8]>>,
            lifecycle: std::cell::OnceCell<redb::$tbl<$($lt,)? &'static [u8], &'static [u8]>>,
            cons: std::cell::OnceCell<redb::$tbl<$($lt,)? &'static [u8], ()>>,
            due: std::cell::OnceCell<redb::$tbl<$($lt,)? &'static [u8], ()>>,
            wallet_due: std::cell::OnceCell<redb::$tbl<$($lt,)? u64, &'static [u8]>>,
            next_due: std::cell::OnceCell<redb::$tbl<$($lt,)? &'static [u8], ()>>,
            events: std::cell::OnceCell<redb::$tbl<$($lt,)? &'static [u8], &'static [u8]>>,
            log: std::cell::OnceCell<redb::$tbl<$($lt,)? u64, &'static [u8]>>,
            heads: std::cell::OnceCell<redb::$tbl<$($lt,)? u64, &'static [u8]>>,
            idem: std::cell::OnceCell<redb::$tbl<$($lt,)? &'static str, &'static [u8]>>,
            checkpoints: std::cell::OnceCell<redb::$tbl<$($lt,)? &'static [u8], &'static [u8]>>,
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
                self.wallets()?;
                self.lots()?;
                self.names()?;
                self.holds()?;
                self.redemptions()?;
                self.slices()?;
                self.lifecycle()?;
                self.cons()?;
                self.due()?;
                self.wallet_due()?;
                self.next_due()?;
                self.events()?;
                self.log()?;
                self.heads()?;
                self.idem()?;
                self.checkpoints()?;
                Ok(())
            }

            pub fn open(txn: $txn) -> Result<Self, StorageError> {
                Ok($name {
                    txn,
                    meta: std::cell::OnceCell::new(),
                    programs: std::cell::OnceCell::new(),
                    holders: std::cell::OnceCell::new(),
                    holder_identity: std::cell::OnceCell::new(),
                    holder_email: std::cell::OnceCell::new(),
                    holder_wallets: std::cell::OnceCell::new(),
                    wallet_uuid: std::cell::OnceCell::new(),
                    wallet_external: std::cell::OnceCell::new(),
                    cards: std::cell::OnceCell::new(),
                    wallets: std::cell::OnceCell::new(),
                    lots: std::cell::OnceCell::new(),
                    names: std::cell::OnceCell::new(),
                    holds: std::cell::OnceCell::new(),
                    redemptions: std::cell::OnceCell::new(),
                    slices: std::cell::OnceCell::new(),
                    lifecycle: std::cell::OnceCell::new(),
                    cons: std::cell::OnceCell::new(),
                    due: std::cell::OnceCell::new(),
                    wallet_due: std::cell::OnceCell::new(),
                    next_due: std::cell::OnceCell::new(),
                    events: std::cell::OnceCell::new(),
                    log: std::cell::OnceCell::new(),
                    heads: std::cell::OnceCell::new(),
                    idem: std::cell::OnceCell::new(),
                    checkpoints: std::cell::OnceCell::new(),
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

            /// The `wallets` table, opened on first use.
            pub fn wallets(&self) -> Result<&redb::$tbl<$($lt,)? u64, &'static [u8]>, StorageError> {
                if let Some(t) = self.wallets.get() {
                    return Ok(t);
                }
                let t = self.txn.open_table(WALLETS)?;
                Ok(self.wallets.get_or_init(|| t))
            }

            #[allow(dead_code)]
            pub(crate) fn wallets_mut(&mut self) -> Result<&mut redb::$tbl<$($lt,)? u64, &'static [u8]>, StorageError> {
                self.wallets()?;
                Ok(self.wallets.get_mut().expect("opened above"))
            }

            /// The `lots` table, opened on first use.
            pub fn lots(&self) -> Result<&redb::$tbl<$($lt,)? &'static [u8], &'static [u8]>, StorageError> {
                if let Some(t) = self.lots.get() {
                    return Ok(t);
                }
                let t = self.txn.open_table(LOTS)?;
                Ok(self.lots.get_or_init(|| t))
            }

            #[allow(dead_code)]
            pub(crate) fn lots_mut(&mut self) -> Result<&mut redb::$tbl<$($lt,)? &'static [u8], &'static [u8]>, StorageError> {
                self.lots()?;
                Ok(self.lots.get_mut().expect("opened above"))
            }

            /// The `names` table, opened on first use.
            pub fn names(&self) -> Result<&redb::$tbl<$($lt,)? &'static [u8], u32>, StorageError> {
                if let Some(t) = self.names.get() {
                    return Ok(t);
                }
                let t = self.txn.open_table(NAMES)?;
                Ok(self.names.get_or_init(|| t))
            }

            #[allow(dead_code)]
            pub(crate) fn names_mut(&mut self) -> Result<&mut redb::$tbl<$($lt,)? &'static [u8], u32>, StorageError> {
                self.names()?;
                Ok(self.names.get_mut().expect("opened above"))
            }

            /// The `holds` table, opened on first use.
            pub fn holds(&self) -> Result<&redb::$tbl<$($lt,)? &'static [u8], &'static [u8]>, StorageError> {
                if let Some(t) = self.holds.get() {
                    return Ok(t);
                }
                let t = self.txn.open_table(HOLDS)?;
                Ok(self.holds.get_or_init(|| t))
            }

            #[allow(dead_code)]
            pub(crate) fn holds_mut(&mut self) -> Result<&mut redb::$tbl<$($lt,)? &'static [u8], &'static [u8]>, StorageError> {
                self.holds()?;
                Ok(self.holds.get_mut().expect("opened above"))
            }

            /// The `redemptions` table, opened on first use.
            pub fn redemptions(&self) -> Result<&redb::$tbl<$($lt,)? &'static [u8], &'static [u8]>, StorageError> {
                if let Some(t) = self.redemptions.get() {
                    return Ok(t);
                }
                let t = self.txn.open_table(REDEMPTIONS)?;
                Ok(self.redemptions.get_or_init(|| t))
            }

            #[allow(dead_code)]
            pub(crate) fn redemptions_mut(&mut self) -> Result<&mut redb::$tbl<$($lt,)? &'static [u8], &'static [u8]>, StorageError> {
                self.redemptions()?;
                Ok(self.redemptions.get_mut().expect("opened above"))
            }

            /// The `slices` table, opened on first use.
            pub fn slices(&self) -> Result<&redb::$tbl<$($lt,)? &'static [u8], &'static [u8]>, StorageError> {
                if let Some(t) = self.slices.get() {
                    return Ok(t);
                }
                let t = self.txn.open_table(SLICES)?;
                Ok(self.slices.get_or_init(|| t))
            }

            #[allow(dead_code)]
            pub(crate) fn slices_mut(&mut self) -> Result<&mut redb::$tbl<$($lt,)? &'static [u8], &'static [u8]>, StorageError> {
                self.slices()?;
                Ok(self.slices.get_mut().expect("opened above"))
            }

            /// The `lifecycle` table, opened on first use.
            pub fn lifecycle(&self) -> Result<&redb::$tbl<$($lt,)? &'static [u8], &'static [u8]>, StorageError> {
                if let Some(t) = self.lifecycle.get() {
                    return Ok(t);
                }
                let t = self.txn.open_table(LIFECYCLE)?;
                Ok(self.lifecycle.get_or_init(|| t))
            }

            #[allow(dead_code)]
            pub(crate) fn lifecycle_mut(&mut self) -> Result<&mut redb::$tbl<$($lt,)? &'static [u8], &'static [u8]>, StorageError> {
                self.lifecycle()?;
                Ok(self.lifecycle.get_mut().expect("opened above"))
            }

            /// The `cons` table, opened on first use.
            pub fn cons(&self) -> Result<&redb::$tbl<$($lt,)? &'static [u8], ()>, StorageError> {
                if let Some(t) = self.cons.get() {
                    return Ok(t);
                }
                let t = self.txn.open_table(CONS)?;
                Ok(self.cons.get_or_init(|| t))
            }

            #[allow(dead_code)]
            pub(crate) fn cons_mut(&mut self) -> Result<&mut redb::$tbl<$($lt,)? &'static [u8], ()>, StorageError> {
                self.cons()?;
                Ok(self.cons.get_mut().expect("opened above"))
            }

            /// The `due` table, opened on first use.
            pub fn due(&self) -> Result<&redb::$tbl<$($lt,)? &'static [u8], ()>, StorageError> {
                if let Some(t) = self.due.get() {
                    return Ok(t);
                }
                let t = self.txn.open_table(DUE)?;
                Ok(self.due.get_or_init(|| t))
            }

            #[allow(dead_code)]
            pub(crate) fn due_mut(&mut self) -> Result<&mut redb::$tbl<$($lt,)? &'static [u8], ()>, StorageError> {
                self.due()?;
                Ok(self.due.get_mut().expect("opened above"))
            }

            /// The `wallet_due` table, opened on first use.
            pub fn wallet_due(&self) -> Result<&redb::$tbl<$($lt,)? u64, &'static [u8]>, StorageError> {
                if let Some(t) = self.wallet_due.get() {
                    return Ok(t);
                }
                let t = self.txn.open_table(WALLET_DUE)?;
                Ok(self.wallet_due.get_or_init(|| t))
            }

            #[allow(dead_code)]
            pub(crate) fn wallet_due_mut(&mut self) -> Result<&mut redb::$tbl<$($lt,)? u64, &'static [u8]>, StorageError> {
                self.wallet_due()?;
                Ok(self.wallet_due.get_mut().expect("opened above"))
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

            /// The `events` table, opened on first use.
            pub fn events(&self) -> Result<&redb::$tbl<$($lt,)? &'static [u8], &'static [u8]>, StorageError> {
                if let Some(t) = self.events.get() {
                    return Ok(t);
                }
                let t = self.txn.open_table(EVENTS)?;
                Ok(self.events.get_or_init(|| t))
            }

            #[allow(dead_code)]
            pub(crate) fn events_mut(&mut self) -> Result<&mut redb::$tbl<$($lt,)? &'static [u8], &'static [u8]>, StorageError> {
                self.events()?;
                Ok(self.events.get_mut().expect("opened above"))
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

            /// The `heads` table, opened on first use.
            pub fn heads(&self) -> Result<&redb::$tbl<$($lt,)? u64, &'static [u8]>, StorageError> {
                if let Some(t) = self.heads.get() {
                    return Ok(t);
                }
                let t = self.txn.open_table(HEADS)?;
                Ok(self.heads.get_or_init(|| t))
            }

            #[allow(dead_code)]
            pub(crate) fn heads_mut(&mut self) -> Result<&mut redb::$tbl<$($lt,)? u64, &'static [u8]>, StorageError> {
                self.heads()?;
                Ok(self.heads.get_mut().expect("opened above"))
            }

            /// The `checkpoints` table, opened on first use.
            pub fn checkpoints(&self) -> Result<&redb::$tbl<$($lt,)? &'static [u8], &'static [u8]>, StorageError> {
                if let Some(t) = self.checkpoints.get() {
                    return Ok(t);
                }
                let t = self.txn.open_table(CHECKPOINTS)?;
                Ok(self.checkpoints.get_or_init(|| t))
            }

            #[allow(dead_code)]
            pub(crate) fn checkpoints_mut(&mut self) -> Result<&mut redb::$tbl<$($lt,)? &'static [u8], &'static [u8]>, StorageError> {
                self.checkpoints()?;
                Ok(self.checkpoints.get_mut().expect("opened above"))
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
                self.checkpoints()?;
                Ok(self.idem.get_mut().expect("opened above"))
            }
        }

        impl<$($lt)?> Backing for $name<$($lt)?> {
            fn ledger(&self) -> R<LedgerState> {
                match self.meta()?.get("ledger")? {
                    Some(v) => decode("ledger counters", v.value()),
                    None => Ok(LedgerState::default()),
                }
            }
            fn program(&self, id: u64) -> R<Option<Program>> {
                self.programs()?.get(id)?.map(|v| decode(&format!("program {id}"), v.value())).transpose()
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
                self.wallets()?.get(no)?.map(|v| decode(&format!("wallet {no}"), v.value())).transpose()
            }
            fn lot(&self, w: u64, no: u32) -> R<Option<Lot>> {
                self.lots()?
                    .get(&k_w32(w, no)[..])?
                    .map(|v| decode(&format!("wallet {w} lot {no}"), v.value()))
                    .transpose()
            }
            fn name(&self, w: u64, kind: NameKind, id: &str) -> R<Option<u32>> {
                Ok(self.names()?.get(&name_key(w, kind, id)[..])?.map(|v| v.value()))
            }
            fn hold(&self, w: u64, no: u32) -> R<Option<HoldRec>> {
                self.holds()?
                    .get(&k_w32(w, no)[..])?
                    .map(|v| decode(&format!("wallet {w} hold {no}"), v.value()))
                    .transpose()
            }
            fn redemption(&self, w: u64, no: u32) -> R<Option<RedemptionRec>> {
                self.redemptions()?
                    .get(&k_w32(w, no)[..])?
                    .map(|v| decode(&format!("wallet {w} redemption {no}"), v.value()))
                    .transpose()
            }
            fn slice(&self, w: u64, o: Owner, idx: u32) -> R<Option<Slice>> {
                self.slices()?.get(&slice_key(w, o, idx)[..])?.map(|v| slice_from(v.value())).transpose()
            }
            fn cons_next(
                &self,
                w: u64,
                pocket: u16,
                after: Option<ConsKey>,
                skip: &dyn Fn(&ConsKey) -> bool,
            ) -> R<Option<ConsKey>> {
                let hi = cons_key(&ConsKey { wallet: w, pocket, order: i64::MAX, lot: u32::MAX });
                let lo_key;
                let lo = match after {
                    Some(a) => {
                        lo_key = cons_key(&a);
                        Bound::Excluded(&lo_key[..])
                    }
                    None => {
                        lo_key = cons_key(&ConsKey { wallet: w, pocket, order: i64::MIN, lot: 0 });
                        Bound::Included(&lo_key[..])
                    }
                };
                for r in self.cons()?.range::<&[u8]>((lo, Bound::Included(&hi[..])))? {
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
                let hi = due_key(&DueKey { wallet: w, at: i64::MAX, kind: DueKind::Expiry, no: u32::MAX });
                let lo_key;
                let lo = match after {
                    Some(a) => {
                        lo_key = due_key(&a);
                        Bound::Excluded(&lo_key[..])
                    }
                    None => {
                        lo_key = due_key(&DueKey { wallet: w, at: i64::MIN, kind: DueKind::Activation, no: 0 });
                        Bound::Included(&lo_key[..])
                    }
                };
                for r in self.due()?.range::<&[u8]>((lo, Bound::Included(&hi[..])))? {
                    let k = due_from(r?.0.value())?;
                    if !skip(&k) {
                        return Ok(Some(k));
                    }
                }
                Ok(None)
            }
            fn wallets_due(&self, upto: i64) -> R<Vec<u64>> {
                let hi = k_ww(u64::from_be_bytes(i64_key(upto)), u64::MAX);
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

tables!(ReadTables [], ReadOnlyTable, redb::ReadTransaction);
tables!(WriteTables ['t], Table, &'t redb::WriteTransaction);

impl ReadTables {
    /// Lifecycle events of wallet `w`, in order.
    pub fn lifecycle_of(&self, w: u64) -> R<Vec<LifecycleRec>> {
        let lo = k_w32(w, 0);
        let hi = k_w32(w, u32::MAX);
        let mut out = Vec::new();
        for r in self.lifecycle()?.range::<&[u8]>(&lo[..]..=&hi[..])? {
            let (_, v) = r?;
            out.push(decode(&format!("wallet {w} lifecycle"), v.value())?);
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
            .events()?
            .get(&k_ww(stream, seq)[..])?
            .map(|v| v.value().to_vec()))
    }
}

impl WriteTables<'_> {
    /// Writes a transaction's changes: records, indexes, and the event records chained to each
    /// stream's head. Called once per write transaction, after every command in it succeeded.
    pub fn write(&mut self, c: Changes) -> R<()> {
        if let Some(l) = &c.ledger {
            self.meta_mut()?.insert("ledger", &encode(l)[..])?;
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
        for (no, ws) in &c.wallets {
            self.wallets_mut()?.insert(*no, &encode(ws)[..])?;
        }
        for ((w, no), l) in &c.lots {
            self.lots_mut()?
                .insert(&k_w32(*w, *no)[..], &encode(l)[..])?;
        }
        for ((w, kind, id), no) in &c.names {
            self.names_mut()?
                .insert(&name_key(*w, *kind, id)[..], *no)?;
        }
        for ((w, no), h) in &c.holds {
            self.holds_mut()?
                .insert(&k_w32(*w, *no)[..], &encode(h)[..])?;
        }
        for ((w, no), r) in &c.redemptions {
            self.redemptions_mut()?
                .insert(&k_w32(*w, *no)[..], &encode(r)[..])?;
        }
        for ((w, o, idx), s) in &c.slices {
            self.slices_mut()?
                .insert(&slice_key(*w, *o, *idx)[..], &slice_val(s)[..])?;
        }
        for (w, idx, rec) in &c.lifecycle {
            self.lifecycle_mut()?
                .insert(&k_w32(*w, *idx)[..], &encode(rec)[..])?;
        }
        for k in &c.cons_del {
            self.cons_mut()?.remove(&cons_key(k)[..])?;
        }
        for k in &c.cons_add {
            self.cons_mut()?.insert(&cons_key(k)[..], ())?;
        }
        for k in &c.due_del {
            self.due_mut()?.remove(&due_key(k)[..])?;
        }
        for k in &c.due_add {
            self.due_mut()?.insert(&due_key(k)[..], ())?;
        }
        // Keep each touched wallet's earliest due instant in the sweep index.
        for w in c.wallets.keys() {
            let first = self.due_next(*w, None, &|_| false)?.map(|k| k.at);
            let old = self
                .wallet_due()?
                .get(*w)?
                .map(|v| i64_from_key(v.value()))
                .transpose()?;
            if old == first {
                continue;
            }
            if let Some(o) = old {
                self.next_due_mut()?
                    .remove(&k_ww(u64::from_be_bytes(i64_key(o)), *w)[..])?;
                self.wallet_due_mut()?.remove(*w)?;
            }
            if let Some(f) = first {
                self.next_due_mut()?
                    .insert(&k_ww(u64::from_be_bytes(i64_key(f)), *w)[..], ())?;
                self.wallet_due_mut()?.insert(*w, &i64_key(f)[..])?;
            }
        }
        // Events, chained per stream.
        let mut heads: std::collections::HashMap<u64, (u64, [u8; 16])> = Default::default();
        for p in &c.events {
            let (seq, prev) = match heads.get(&p.stream) {
                Some(h) => *h,
                None => match self.heads()?.get(p.stream)? {
                    Some(v) => head_from(v.value())?,
                    None => (0, [0u8; 16]),
                },
            };
            if p.seq != seq + 1 {
                return Err(StorageError(format!(
                    "stream {}: event sequence {} does not follow {seq}",
                    p.stream, p.seq
                )));
            }
            let (bytes, sum) =
                encode_event(&prev, p.stream, p.seq, p.position, p.at, &p.delta, &p.event);
            self.events_mut()?
                .insert(&k_ww(p.stream, p.seq)[..], &bytes[..])?;
            self.log_mut()?
                .insert(p.position, &k_ww(p.stream, p.seq)[..])?;
            heads.insert(p.stream, (p.seq, sum));
        }
        for (s, (seq, sum)) in heads {
            self.heads_mut()?.insert(s, &head_val(seq, &sum)[..])?;
        }
        // Checkpoints: a wallet carried past a multiple of CHECKPOINT_EVERY events by this
        // transaction gets one at its last event.
        let mut first_seq: std::collections::HashMap<u64, u64> = Default::default();
        for p in &c.events {
            first_seq.entry(p.stream).or_insert(p.seq);
        }
        for (w, ws) in &c.wallets {
            let Some(first) = first_seq.get(w) else {
                continue;
            };
            if (first - 1) / CHECKPOINT_EVERY != ws.seq / CHECKPOINT_EVERY {
                self.checkpoints_mut()?.insert(
                    &checkpoint_key(*w, ws.updated_at, ws.seq)[..],
                    &encode(&Checkpoint::of(ws))[..],
                )?;
            }
        }
        Ok(())
    }
}
