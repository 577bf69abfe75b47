//! File format 2 (and 1): the tables and key layout the migration to format 3 reads
//! ([`super::migrate`]). Nothing here writes a format 2 file any more.
//!
//! Format 2 kept every wallet's rows in one table, `wallet_rows`, keyed `[wallet u64][row kind
//! u8][…]` (see [`row`]), with each stream's event records (record version 1,
//! [`super::codec::decode_event`]) chained per stream, and a global `log` table mapping each
//! position to its (stream, sequence).

use super::codec::*;
use crate::domain::state::*;
use crate::error::StorageError;
use redb::TableDefinition;

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

pub(crate) fn redemption_key(w: u64, no: u32) -> [u8; 13] {
    fixed_key(w, row::REDEMPTION, &[&(!no).to_be_bytes()])
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

/// The fixed part of a header row: the stream's chain head and the wallet's earliest due instant.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HeaderPrefix {
    pub seq: u64,
    pub checksum: [u8; 16],
    pub next_due: Option<i64>,
}

const HEADER_PREFIX: usize = 8 + 16 + 9;

impl HeaderPrefix {
    pub fn encode(&self, out: &mut Vec<u8>) {
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
