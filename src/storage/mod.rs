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
/// idempotency key → (fingerprint 32 bytes, encoded receipt)
pub const IDEM: TableDefinition<&str, &[u8]> = TableDefinition::new("idempotency");

const _: Option<Bytes> = None;

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

/// Opens every table of a transaction. Generated twice: read-only and writable.
macro_rules! tables {
    ($name:ident [$($lt:lifetime)?], $tbl:ident, $txn:ty) => {
        pub struct $name<$($lt)?> {
            pub meta: redb::$tbl<$($lt,)? &'static str, &'static [u8]>,
            pub programs: redb::$tbl<$($lt,)? u64, &'static [u8]>,
            pub holders: redb::$tbl<$($lt,)? u128, &'static [u8]>,
            pub holder_identity: redb::$tbl<$($lt,)? &'static str, u128>,
            pub holder_email: redb::$tbl<$($lt,)? &'static str, u128>,
            pub holder_wallets: redb::$tbl<$($lt,)? &'static [u8], ()>,
            pub wallet_uuid: redb::$tbl<$($lt,)? u128, u64>,
            pub wallet_external: redb::$tbl<$($lt,)? &'static str, u64>,
            pub cards: redb::$tbl<$($lt,)? &'static str, u64>,
            pub wallets: redb::$tbl<$($lt,)? u64, &'static [u8]>,
            pub lots: redb::$tbl<$($lt,)? &'static [u8], &'static [u8]>,
            pub names: redb::$tbl<$($lt,)? &'static [u8], u32>,
            pub holds: redb::$tbl<$($lt,)? &'static [u8], &'static [u8]>,
            pub redemptions: redb::$tbl<$($lt,)? &'static [u8], &'static [u8]>,
            pub slices: redb::$tbl<$($lt,)? &'static [u8], &'static [u8]>,
            pub lifecycle: redb::$tbl<$($lt,)? &'static [u8], &'static [u8]>,
            pub cons: redb::$tbl<$($lt,)? &'static [u8], ()>,
            pub due: redb::$tbl<$($lt,)? &'static [u8], ()>,
            pub wallet_due: redb::$tbl<$($lt,)? u64, &'static [u8]>,
            pub next_due: redb::$tbl<$($lt,)? &'static [u8], ()>,
            pub events: redb::$tbl<$($lt,)? &'static [u8], &'static [u8]>,
            pub log: redb::$tbl<$($lt,)? u64, &'static [u8]>,
            pub heads: redb::$tbl<$($lt,)? u64, &'static [u8]>,
            pub idem: redb::$tbl<$($lt,)? &'static str, &'static [u8]>,
        }

        impl<$($lt)?> $name<$($lt)?> {
            pub fn open(txn: $txn) -> Result<Self, StorageError> {
                Ok($name {
                    meta: txn.open_table(META)?,
                    programs: txn.open_table(PROGRAMS)?,
                    holders: txn.open_table(HOLDERS)?,
                    holder_identity: txn.open_table(HOLDER_IDENTITY)?,
                    holder_email: txn.open_table(HOLDER_EMAIL)?,
                    holder_wallets: txn.open_table(HOLDER_WALLETS)?,
                    wallet_uuid: txn.open_table(WALLET_UUID)?,
                    wallet_external: txn.open_table(WALLET_EXTERNAL)?,
                    cards: txn.open_table(CARDS)?,
                    wallets: txn.open_table(WALLETS)?,
                    lots: txn.open_table(LOTS)?,
                    names: txn.open_table(NAMES)?,
                    holds: txn.open_table(HOLDS)?,
                    redemptions: txn.open_table(REDEMPTIONS)?,
                    slices: txn.open_table(SLICES)?,
                    lifecycle: txn.open_table(LIFECYCLE)?,
                    cons: txn.open_table(CONS)?,
                    due: txn.open_table(DUE)?,
                    wallet_due: txn.open_table(WALLET_DUE)?,
                    next_due: txn.open_table(NEXT_DUE)?,
                    events: txn.open_table(EVENTS)?,
                    log: txn.open_table(LOG)?,
                    heads: txn.open_table(HEADS)?,
                    idem: txn.open_table(IDEM)?,
                })
            }
        }

        impl<$($lt)?> Backing for $name<$($lt)?> {
            fn ledger(&self) -> R<LedgerState> {
                match self.meta.get("ledger")? {
                    Some(v) => decode("ledger counters", v.value()),
                    None => Ok(LedgerState::default()),
                }
            }
            fn program(&self, id: u64) -> R<Option<Program>> {
                self.programs.get(id)?.map(|v| decode(&format!("program {id}"), v.value())).transpose()
            }
            fn holder(&self, id: [u8; 16]) -> R<Option<Holder>> {
                self.holders
                    .get(u128::from_be_bytes(id))?
                    .map(|v| decode("holder", v.value()))
                    .transpose()
            }
            fn holder_by_identity(&self, s: &str) -> R<Option<[u8; 16]>> {
                Ok(self.holder_identity.get(s)?.map(|v| v.value().to_be_bytes()))
            }
            fn holder_by_email(&self, s: &str) -> R<Option<[u8; 16]>> {
                Ok(self.holder_email.get(s)?.map(|v| v.value().to_be_bytes()))
            }
            fn wallet_by_uuid(&self, id: [u8; 16]) -> R<Option<u64>> {
                Ok(self.wallet_uuid.get(u128::from_be_bytes(id))?.map(|v| v.value()))
            }
            fn wallet_by_external(&self, s: &str) -> R<Option<u64>> {
                Ok(self.wallet_external.get(s)?.map(|v| v.value()))
            }
            fn wallet_by_card(&self, s: &str) -> R<Option<u64>> {
                Ok(self.cards.get(s)?.map(|v| v.value()))
            }
            fn wallet(&self, no: u64) -> R<Option<WalletState>> {
                self.wallets.get(no)?.map(|v| decode(&format!("wallet {no}"), v.value())).transpose()
            }
            fn lot(&self, w: u64, no: u32) -> R<Option<Lot>> {
                self.lots
                    .get(&k_w32(w, no)[..])?
                    .map(|v| decode(&format!("wallet {w} lot {no}"), v.value()))
                    .transpose()
            }
            fn name(&self, w: u64, kind: NameKind, id: &str) -> R<Option<u32>> {
                Ok(self.names.get(&name_key(w, kind, id)[..])?.map(|v| v.value()))
            }
            fn hold(&self, w: u64, no: u32) -> R<Option<HoldRec>> {
                self.holds
                    .get(&k_w32(w, no)[..])?
                    .map(|v| decode(&format!("wallet {w} hold {no}"), v.value()))
                    .transpose()
            }
            fn redemption(&self, w: u64, no: u32) -> R<Option<RedemptionRec>> {
                self.redemptions
                    .get(&k_w32(w, no)[..])?
                    .map(|v| decode(&format!("wallet {w} redemption {no}"), v.value()))
                    .transpose()
            }
            fn slice(&self, w: u64, o: Owner, idx: u32) -> R<Option<Slice>> {
                self.slices.get(&slice_key(w, o, idx)[..])?.map(|v| slice_from(v.value())).transpose()
            }
            fn cons_next(&self, w: u64, pocket: u16, after: Option<ConsKey>) -> R<Option<ConsKey>> {
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
                let mut it = self.cons.range::<&[u8]>((lo, Bound::Included(&hi[..])))?;
                match it.next() {
                    Some(r) => Ok(Some(cons_from(r?.0.value())?)),
                    None => Ok(None),
                }
            }
            fn due_next(&self, w: u64, after: Option<DueKey>) -> R<Option<DueKey>> {
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
                let mut it = self.due.range::<&[u8]>((lo, Bound::Included(&hi[..])))?;
                match it.next() {
                    Some(r) => Ok(Some(due_from(r?.0.value())?)),
                    None => Ok(None),
                }
            }
            fn wallets_due(&self, upto: i64) -> R<Vec<u64>> {
                let hi = k_ww(u64::from_be_bytes(i64_key(upto)), u64::MAX);
                let mut out = Vec::new();
                for r in self.next_due.range::<&[u8]>(..=&hi[..])? {
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

tables!(ReadTables [], ReadOnlyTable, &redb::ReadTransaction);
tables!(WriteTables ['t], Table, &'t redb::WriteTransaction);

impl ReadTables {
    /// Lifecycle events of wallet `w`, in order.
    pub fn lifecycle_of(&self, w: u64) -> R<Vec<LifecycleRec>> {
        let lo = k_w32(w, 0);
        let hi = k_w32(w, u32::MAX);
        let mut out = Vec::new();
        for r in self.lifecycle.range::<&[u8]>(&lo[..]..=&hi[..])? {
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
        for r in self.holder_wallets.range::<&[u8]>(&lo[..]..=&hi[..])? {
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
            .events
            .get(&k_ww(stream, seq)[..])?
            .map(|v| v.value().to_vec()))
    }
}

impl WriteTables<'_> {
    /// Writes a transaction's changes: records, indexes, and the event records chained to each
    /// stream's head. Called once per write transaction, after every command in it succeeded.
    pub fn write(&mut self, c: Changes) -> R<()> {
        if let Some(l) = &c.ledger {
            self.meta.insert("ledger", &encode(l)[..])?;
        }
        for (id, p) in &c.programs {
            self.programs.insert(*id, &encode(p)[..])?;
        }
        for (id, h) in &c.holders {
            self.holders
                .insert(u128::from_be_bytes(*id), &encode(h)[..])?;
        }
        for (k, v) in &c.identities {
            self.holder_identity
                .insert(k.as_str(), u128::from_be_bytes(*v))?;
        }
        for (k, v) in &c.emails {
            self.holder_email
                .insert(k.as_str(), u128::from_be_bytes(*v))?;
        }
        for (k, v) in &c.wallet_uuids {
            self.wallet_uuid.insert(u128::from_be_bytes(*k), *v)?;
        }
        for (k, v) in &c.externals {
            self.wallet_external.insert(k.as_str(), *v)?;
        }
        for (k, v) in &c.cards {
            self.cards.insert(k.as_str(), *v)?;
        }
        for (h, w) in &c.holder_wallets {
            let mut k = [0u8; 24];
            k[..16].copy_from_slice(h);
            k[16..].copy_from_slice(&w.to_be_bytes());
            self.holder_wallets.insert(&k[..], ())?;
        }
        for (no, ws) in &c.wallets {
            self.wallets.insert(*no, &encode(ws)[..])?;
        }
        for ((w, no), l) in &c.lots {
            self.lots.insert(&k_w32(*w, *no)[..], &encode(l)[..])?;
        }
        for ((w, kind, id), no) in &c.names {
            self.names.insert(&name_key(*w, *kind, id)[..], *no)?;
        }
        for ((w, no), h) in &c.holds {
            self.holds.insert(&k_w32(*w, *no)[..], &encode(h)[..])?;
        }
        for ((w, no), r) in &c.redemptions {
            self.redemptions
                .insert(&k_w32(*w, *no)[..], &encode(r)[..])?;
        }
        for ((w, o, idx), s) in &c.slices {
            self.slices
                .insert(&slice_key(*w, *o, *idx)[..], &slice_val(s)[..])?;
        }
        for (w, idx, rec) in &c.lifecycle {
            self.lifecycle
                .insert(&k_w32(*w, *idx)[..], &encode(rec)[..])?;
        }
        for k in &c.cons_del {
            self.cons.remove(&cons_key(k)[..])?;
        }
        for k in &c.cons_add {
            self.cons.insert(&cons_key(k)[..], ())?;
        }
        for k in &c.due_del {
            self.due.remove(&due_key(k)[..])?;
        }
        for k in &c.due_add {
            self.due.insert(&due_key(k)[..], ())?;
        }
        // Keep each touched wallet's earliest due instant in the sweep index.
        for w in c.wallets.keys() {
            let first = self.due_next(*w, None)?.map(|k| k.at);
            let old = self
                .wallet_due
                .get(*w)?
                .map(|v| i64_from_key(v.value()))
                .transpose()?;
            if old == first {
                continue;
            }
            if let Some(o) = old {
                self.next_due
                    .remove(&k_ww(u64::from_be_bytes(i64_key(o)), *w)[..])?;
                self.wallet_due.remove(*w)?;
            }
            if let Some(f) = first {
                self.next_due
                    .insert(&k_ww(u64::from_be_bytes(i64_key(f)), *w)[..], ())?;
                self.wallet_due.insert(*w, &i64_key(f)[..])?;
            }
        }
        // Events, chained per stream.
        let mut heads: std::collections::HashMap<u64, (u64, [u8; 16])> = Default::default();
        for p in &c.events {
            let (seq, prev) = match heads.get(&p.stream) {
                Some(h) => *h,
                None => match self.heads.get(p.stream)? {
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
            let (bytes, sum) = encode_event(&prev, p.stream, p.seq, p.position, p.at, &p.event);
            self.events.insert(&k_ww(p.stream, p.seq)[..], &bytes[..])?;
            self.log.insert(p.position, &k_ww(p.stream, p.seq)[..])?;
            heads.insert(p.stream, (p.seq, sum));
        }
        for (s, (seq, sum)) in heads {
            self.heads.insert(s, &head_val(seq, &sum)[..])?;
        }
        Ok(())
    }
}
