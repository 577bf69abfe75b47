//! Record encoding: our own envelope around bincode 2.0.1, so the on-disk format is ours and a
//! change of encoder cannot pass unnoticed.
//!
//! Every value record is `[schema version: u8][bincode standard() payload]`. Event records are
//! `[version: u8][position: u64 BE][at: i64 BE][checksum: 16 bytes][payload]`, the payload being
//! `bincode(Option<Delta>) ‖ bincode(Event)` (the figure change `apply` made, then the event), and
//! the checksum the first 16 bytes of SHA-256 over the previous record's checksum of the same
//! stream, the stream, the sequence, the position, the time and the payload: altering, removing
//! or reordering a record breaks the chain (SPEC §6).
//!
//! Decoding never trusts its input: lengths are bounded by a decode limit, trailing bytes are
//! rejected, and every failure is a [`StorageError`] naming the record.

use crate::domain::event::Event;
use crate::domain::state::{Delta, Lot, PocketState, RedemptionRec, Slice, WalletState};
use crate::error::StorageError;
use crate::limits::MAX_EVENT_BYTES;
use crate::model::{Card, Figures, Order, PaymentMethod, Status};
use bincode::{Decode, Encode};
use sha2::{Digest, Sha256};

/// The schema version written into every record.
pub const SCHEMA_VERSION: u8 = 1;

/// Bounds what a hostile or corrupt record can make the decoder allocate.
const DECODE_LIMIT: usize = 1 << 20;

fn config() -> impl bincode::config::Config {
    bincode::config::standard()
}

fn limited() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<DECODE_LIMIT>()
}

pub fn encode<T: Encode>(v: &T) -> Vec<u8> {
    let mut out = vec![SCHEMA_VERSION];
    bincode::encode_into_std_write(v, &mut out, config()).expect("writing to a Vec cannot fail");
    out
}

pub fn decode<T: Decode<()>>(what: &str, bytes: &[u8]) -> Result<T, StorageError> {
    decode_body(bytes).map_err(|e| StorageError(format!("{what}: {e}")))
}

/// [`decode`] for a record whose name must be formatted: only a failure formats it.
pub fn decode_named<T: Decode<()>>(
    what: impl FnOnce() -> String,
    bytes: &[u8],
) -> Result<T, StorageError> {
    decode_body(bytes).map_err(|e| StorageError(format!("{}: {e}", what())))
}

/// Decodes a value record; the error says what is wrong, without the record's name.
fn decode_body<T: Decode<()>>(bytes: &[u8]) -> Result<T, String> {
    let Some((&v, body)) = bytes.split_first() else {
        return Err("empty record".into());
    };
    if v != SCHEMA_VERSION {
        return Err(format!(
            "schema version {v}, this build reads {SCHEMA_VERSION}"
        ));
    }
    let (val, used) = bincode::decode_from_slice(body, limited())
        .map_err(|e| format!("undecodable record ({e})"))?;
    if used != body.len() {
        return Err(format!(
            "{} trailing bytes after the record",
            body.len() - used
        ));
    }
    Ok(val)
}

/// Decodes a lot record, which every derived transition reads: [`decode`]'s result, by a
/// direct reader of the payload when it can (see [`Quick`]), else by bincode.
pub fn decode_lot(bytes: &[u8]) -> Result<Lot, StorageError> {
    match quick_lot(bytes) {
        Some(l) => Ok(l),
        None => decode("lot", bytes),
    }
}

fn quick_lot(bytes: &[u8]) -> Option<Lot> {
    let (&v, body) = bytes.split_first()?;
    // bincode counts what it reads against the decode limit (strings twice): under half of it
    // the limit cannot be what fails.
    if v != SCHEMA_VERSION || body.len() > DECODE_LIMIT / 2 {
        return None;
    }
    let mut q = Quick(body);
    let lot = quick_lot_body(&mut q)?;
    q.0.is_empty().then_some(lot)
}

fn quick_lot_body(q: &mut Quick) -> Option<Lot> {
    // Fields in declaration order, as bincode's derive reads them (struct expressions evaluate
    // their fields in the order written).
    Some(Lot {
        no: q.u32()?,
        id: q.string()?,
        pocket: q.u16()?,
        amount: q.u128()?,
        free: q.u128()?,
        held: q.u128()?,
        spent: q.u128()?,
        refunded: q.u128()?,
        expired: q.u128()?,
        issued_at: q.i64()?,
        activates_at: q.i64()?,
        expires_at: q.option(Quick::i64)?,
        activated: q.bool()?,
        order_key: q.i64()?,
    })
}

/// Decodes the `WalletState` of a header row (`what` names it only on failure), which every
/// read decodes: like [`decode_lot`], directly when it can, else by bincode.
pub fn decode_wallet(
    what: impl FnOnce() -> String,
    bytes: &[u8],
) -> Result<WalletState, StorageError> {
    match quick_wallet(bytes) {
        Some(ws) => Ok(ws),
        None => decode_named(what, bytes),
    }
}

/// The largest element of a vector in a `WalletState`: bincode claims `len × size` against the
/// decode limit for each vector it reads.
const LARGEST_ELEMENT: usize = {
    let (p, m, c) = (
        std::mem::size_of::<PocketState>(),
        std::mem::size_of::<PaymentMethod>(),
        std::mem::size_of::<Card>(),
    );
    let pm = if p > m { p } else { m };
    if pm > c { pm } else { c }
};

fn quick_wallet(bytes: &[u8]) -> Option<WalletState> {
    let (&v, body) = bytes.split_first()?;
    // Every element takes at least one byte, so bincode's claims stay under
    // `body × (1 + LARGEST_ELEMENT)`: below the limit it cannot be what fails.
    if v != SCHEMA_VERSION || body.len().saturating_mul(1 + LARGEST_ELEMENT) > DECODE_LIMIT {
        return None;
    }
    let mut q = Quick(body);
    let ws = quick_wallet_body(&mut q)?;
    q.0.is_empty().then_some(ws)
}

fn quick_wallet_body(q: &mut Quick) -> Option<WalletState> {
    Some(WalletState {
        uuid: q.take()?,
        number: q.u64()?,
        holder: q.take()?,
        program: q.u64()?,
        name: q.string()?,
        external_id: q.option(Quick::string)?,
        status: match q.u32()? {
            0 => Status::Active,
            1 => Status::Frozen,
            2 => Status::Closed,
            _ => return None,
        },
        order: match q.u32()? {
            0 => Order::EarliestExpiry,
            1 => Order::EarliestIssuance,
            _ => return None,
        },
        created_at: q.i64()?,
        updated_at: q.i64()?,
        seq: q.u64()?,
        pockets: q.vec(|q| {
            Some(PocketState {
                key: q.string()?,
                name: q.string()?,
                kind: q.string()?,
                asset: q.string()?,
                scale: q.u32()?,
                number: q.u64()?,
                uuid: q.take()?,
                figures: Figures {
                    promised: q.u128()?,
                    credited: q.u128()?,
                    redeemed: q.u128()?,
                    expired: q.u128()?,
                    on_hold: q.u128()?,
                },
                issued: q.u128()?,
            })
        })?,
        lots: q.u32()?,
        holds: q.u32()?,
        open_holds: q.u32()?,
        redemptions: q.u32()?,
        lifecycle: q.u32()?,
        methods: q.vec(|q| {
            Some(PaymentMethod {
                account_name: q.string()?,
                account_number: q.string()?,
                account_type: q.string()?,
                address: q.option(Quick::string)?,
                bank_address: q.option(Quick::string)?,
                bank_code: q.string()?,
                bank_name: q.string()?,
            })
        })?,
        cards: q.vec(|q| {
            Some(Card {
                card: q.string()?,
                masked_pan: q.option(Quick::string)?,
                status: q.option(Quick::string)?,
            })
        })?,
        next_due: q.option(Quick::i64)?,
    })
}

/// Appends `v`'s bincode encoding (no version byte: the enclosing record has one).
pub fn encode_into<T: Encode>(v: &T, out: &mut Vec<u8>) {
    bincode::encode_into_std_write(v, out, config()).expect("writing to a Vec cannot fail");
}

/// Decodes a `T` from the start of `bytes` (part of a record whose version was checked),
/// returning it and the bytes it took.
pub fn decode_prefix<T: Decode<()>>(
    what: &dyn Fn() -> String,
    bytes: &[u8],
) -> Result<(T, usize), StorageError> {
    bincode::decode_from_slice(bytes, limited())
        .map_err(|e| StorageError(format!("{}: undecodable record ({e})", what())))
}

/// [`decode_prefix`] of a `WalletState`, by the direct reader when it can (see [`Quick`]).
pub fn decode_wallet_prefix(
    what: &dyn Fn() -> String,
    bytes: &[u8],
) -> Result<(WalletState, usize), StorageError> {
    if bytes.len().saturating_mul(1 + LARGEST_ELEMENT) <= DECODE_LIMIT {
        let mut q = Quick(bytes);
        if let Some(ws) = quick_wallet_body(&mut q) {
            return Ok((ws, bytes.len() - q.0.len()));
        }
    }
    decode_prefix(what, bytes)
}

/// Appends a sequence as its length then each element, every element a bincode encoding of its
/// own: unlike a bincode `Vec`, whose whole length counts against one decode limit, a sequence
/// of any length decodes (each element is bounded by the limit instead).
pub fn encode_seq<T: Encode>(items: &[T], out: &mut Vec<u8>) {
    encode_into(&(items.len() as u64), out);
    for i in items {
        encode_into(i, out);
    }
}

/// Decodes a sequence written by [`encode_seq`] from the start of `bytes`, each element by
/// `element` (which returns it and the bytes it took).
pub fn decode_seq_with<T>(
    what: &dyn Fn() -> String,
    bytes: &[u8],
    mut element: impl FnMut(&[u8]) -> Result<(T, usize), StorageError>,
) -> Result<(Vec<T>, usize), StorageError> {
    let (n, mut at): (u64, usize) = decode_prefix(what, bytes)?;
    // Every element takes at least one byte: a longer count is a damaged record.
    if n > (bytes.len() - at) as u64 {
        return Err(StorageError(format!(
            "{}: a sequence of {n} elements in {} bytes",
            what(),
            bytes.len() - at
        )));
    }
    let mut out = Vec::with_capacity(n as usize);
    for _ in 0..n {
        let (v, used) = element(&bytes[at..])?;
        out.push(v);
        at += used;
    }
    Ok((out, at))
}

pub fn decode_seq<T: Decode<()>>(
    what: &dyn Fn() -> String,
    bytes: &[u8],
) -> Result<(Vec<T>, usize), StorageError> {
    decode_seq_with(what, bytes, |b| decode_prefix(what, b))
}

/// A reader of bincode `standard()` encodings (varint integers, zigzag signed, one-byte bools
/// and option tags, length-prefixed UTF-8 strings). For each type it accepts exactly what
/// bincode 2.0.1 accepts, with the same value; anything else it declines (`None`) and the caller
/// decodes with bincode, which gives its own error. It skips the generic decoder's per-field
/// limit accounting and zeroed string buffers: most of the cost of decoding a small record.
struct Quick<'a>(&'a [u8]);

impl Quick<'_> {
    #[inline]
    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (head, rest) = self.0.split_first_chunk::<N>()?;
        self.0 = rest;
        Some(*head)
    }

    #[inline]
    fn byte(&mut self) -> Option<u8> {
        self.take::<1>().map(|[b]| b)
    }

    /// A varint whose width marker is at most `widest` (251: u16, 252: u32, 253: u64, 254: u128):
    /// bincode refuses a wider marker than the type, not a wider marker than the value needs.
    #[inline]
    fn varint(&mut self, widest: u8) -> Option<u128> {
        let b = self.byte()?;
        let v = match b {
            0..=250 => u128::from(b),
            251 => u128::from(u16::from_le_bytes(self.take()?)),
            252 => u128::from(u32::from_le_bytes(self.take()?)),
            253 => u128::from(u64::from_le_bytes(self.take()?)),
            254 => u128::from_le_bytes(self.take()?),
            _ => return None,
        };
        (b <= widest).then_some(v)
    }

    #[inline]
    fn u16(&mut self) -> Option<u16> {
        self.varint(251).and_then(|v| u16::try_from(v).ok())
    }

    #[inline]
    fn u32(&mut self) -> Option<u32> {
        self.varint(252).and_then(|v| u32::try_from(v).ok())
    }

    #[inline]
    fn u64(&mut self) -> Option<u64> {
        self.varint(253).and_then(|v| u64::try_from(v).ok())
    }

    #[inline]
    fn u128(&mut self) -> Option<u128> {
        self.varint(254)
    }

    /// A zigzag varint of an `i128`, as bincode writes it.
    #[inline]
    fn i128(&mut self) -> Option<i128> {
        let b = self.byte()?;
        let n: u128 = match b {
            0..=250 => u128::from(b),
            251 => u128::from(u16::from_le_bytes(self.take()?)),
            252 => u128::from(u32::from_le_bytes(self.take()?)),
            253 => u128::from(u64::from_le_bytes(self.take()?)),
            254 => u128::from_le_bytes(self.take()?),
            _ => return None,
        };
        Some(if n.is_multiple_of(2) {
            (n / 2) as i128
        } else {
            !(n / 2) as i128
        })
    }

    #[inline]
    fn i64(&mut self) -> Option<i64> {
        let n = self.u64()?;
        Some(if n % 2 == 0 {
            (n / 2) as i64
        } else {
            !(n / 2) as i64
        })
    }

    #[inline]
    fn bool(&mut self) -> Option<bool> {
        match self.byte()? {
            0 => Some(false),
            1 => Some(true),
            _ => None,
        }
    }

    #[inline]
    fn option<T>(&mut self, value: impl FnOnce(&mut Self) -> Option<T>) -> Option<Option<T>> {
        match self.byte()? {
            0 => Some(None),
            1 => value(self).map(Some),
            _ => None,
        }
    }

    /// A length-prefixed sequence. The length is checked against the bytes left (every element
    /// takes at least one) before anything is allocated.
    #[inline]
    fn vec<T>(&mut self, mut element: impl FnMut(&mut Self) -> Option<T>) -> Option<Vec<T>> {
        let n = usize::try_from(self.u64()?).ok()?;
        if n > self.0.len() {
            return None;
        }
        let mut v = Vec::with_capacity(n);
        for _ in 0..n {
            v.push(element(self)?);
        }
        Some(v)
    }

    #[inline]
    fn skip_string(&mut self) -> Option<()> {
        let n = usize::try_from(self.u64()?).ok()?;
        if n > self.0.len() {
            return None;
        }
        let (s, rest) = self.0.split_at(n);
        std::str::from_utf8(s).ok()?;
        self.0 = rest;
        Some(())
    }

    #[inline]
    fn string(&mut self) -> Option<String> {
        let n = usize::try_from(self.u64()?).ok()?;
        if n > self.0.len() {
            return None;
        }
        let (s, rest) = self.0.split_at(n);
        self.0 = rest;
        std::str::from_utf8(s).ok().map(str::to_owned)
    }
}

// ---- compact projection records (file format 3) ----------------------------------------------
//
// Lots and redemptions are most of the projection's bytes, so rows and chunks store them in a
// compact form of their own rather than as bincode structs: what follows from other fields (an id
// that is the canonical name of the record's number, an activation at issue, the consumption-order
// key of the program's order) is a flag, not bytes. Integers are bincode `standard()` varints.

/// Allocations kept inside their redemption's record when there are at most this many; more go
/// to slice chunks.
pub const INLINE_SLICES: u32 = 8;

fn put<T: Encode>(out: &mut Vec<u8>, v: T) {
    encode_into(&v, out);
}

const LOT_ACTIVATED: u8 = 1;
const LOT_CANONICAL_ID: u8 = 2;
const LOT_ACTIVATES_AT_ISSUE: u8 = 4;
const LOT_EXPIRES: u8 = 8;
const LOT_ORDER_BY_EXPIRY: u8 = 16;
const LOT_ORDER_ZERO: u8 = 32;

/// Appends a lot in its compact form.
pub fn put_lot(out: &mut Vec<u8>, l: &Lot) {
    use crate::domain::state::NameKind;
    let mut flags = 0u8;
    if l.activated {
        flags |= LOT_ACTIVATED;
    }
    let canonical = NameKind::Lot.canonical_no(&l.id) == Some(l.no);
    if canonical {
        flags |= LOT_CANONICAL_ID;
    }
    if l.activates_at == l.issued_at {
        flags |= LOT_ACTIVATES_AT_ISSUE;
    }
    if l.expires_at.is_some() {
        flags |= LOT_EXPIRES;
    }
    if l.order_key == l.expires_at.unwrap_or(i64::MAX) {
        flags |= LOT_ORDER_BY_EXPIRY;
    } else if l.order_key == 0 {
        flags |= LOT_ORDER_ZERO;
    }
    put(out, l.no);
    out.push(flags);
    if !canonical {
        put(out, l.id.as_str());
    }
    put(out, l.pocket);
    for v in [l.amount, l.free, l.held, l.spent, l.refunded, l.expired] {
        put(out, v);
    }
    put(out, l.issued_at);
    if flags & LOT_ACTIVATES_AT_ISSUE == 0 {
        put(out, l.activates_at);
    }
    if let Some(e) = l.expires_at {
        put(out, e);
    }
    if flags & (LOT_ORDER_BY_EXPIRY | LOT_ORDER_ZERO) == 0 {
        put(out, l.order_key);
    }
}

fn get_lot(q: &mut Quick) -> Option<Lot> {
    get_lot_with(q, true)
}

/// A compact lot; with `with_id` false its id is left empty (no allocation): enough to derive its
/// index keys.
fn get_lot_with(q: &mut Quick, with_id: bool) -> Option<Lot> {
    let no = q.u32()?;
    let flags = q.byte()?;
    if flags & !63 != 0 {
        return None;
    }
    let id = if !with_id {
        if flags & LOT_CANONICAL_ID == 0 {
            q.skip_string()?;
        }
        String::new()
    } else if flags & LOT_CANONICAL_ID != 0 {
        crate::domain::state::NameKind::Lot.canonical_name(no)
    } else {
        q.string()?
    };
    let pocket = q.u16()?;
    let mut v = [0u128; 6];
    for x in &mut v {
        *x = q.u128()?;
    }
    let issued_at = q.i64()?;
    let activates_at = if flags & LOT_ACTIVATES_AT_ISSUE != 0 {
        issued_at
    } else {
        q.i64()?
    };
    let expires_at = if flags & LOT_EXPIRES != 0 {
        Some(q.i64()?)
    } else {
        None
    };
    let order_key = if flags & LOT_ORDER_BY_EXPIRY != 0 {
        expires_at.unwrap_or(i64::MAX)
    } else if flags & LOT_ORDER_ZERO != 0 {
        0
    } else {
        q.i64()?
    };
    Some(Lot {
        no,
        id,
        pocket,
        amount: v[0],
        free: v[1],
        held: v[2],
        spent: v[3],
        refunded: v[4],
        expired: v[5],
        issued_at,
        activates_at,
        expires_at,
        activated: flags & LOT_ACTIVATED != 0,
        order_key,
    })
}

const RED_CANONICAL_ID: u8 = 1;
const RED_INLINE: u8 = 2;

/// A redemption as a chunk stores it: the record, and its allocations when they are inline.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredRedemption {
    pub rec: RedemptionRec,
    pub slices: Option<Vec<Slice>>,
}

pub fn put_redemption(out: &mut Vec<u8>, r: &StoredRedemption) {
    use crate::domain::state::NameKind;
    let canonical = NameKind::Redemption.canonical_no(&r.rec.id) == Some(r.rec.no);
    let mut flags = 0u8;
    if canonical {
        flags |= RED_CANONICAL_ID;
    }
    if r.slices.is_some() {
        flags |= RED_INLINE;
    }
    put(out, r.rec.no);
    out.push(flags);
    if !canonical {
        put(out, r.rec.id.as_str());
    }
    put(out, r.rec.pocket);
    put(out, r.rec.amount);
    put(out, r.rec.refunded);
    put(out, r.rec.allocs);
    put(out, r.rec.refund_pos);
    put(out, r.rec.refund_part);
    if let Some(v) = &r.slices {
        for s in v {
            put(out, s.lot);
            put(out, s.units);
        }
    }
}

fn get_redemption(q: &mut Quick) -> Option<StoredRedemption> {
    let no = q.u32()?;
    let flags = q.byte()?;
    if flags & !3 != 0 {
        return None;
    }
    let id = if flags & RED_CANONICAL_ID != 0 {
        crate::domain::state::NameKind::Redemption.canonical_name(no)
    } else {
        q.string()?
    };
    let rec = RedemptionRec {
        no,
        id,
        pocket: q.u16()?,
        amount: q.u128()?,
        refunded: q.u128()?,
        allocs: q.u32()?,
        refund_pos: q.u32()?,
        refund_part: q.u128()?,
    };
    let slices = if flags & RED_INLINE != 0 {
        if rec.allocs > INLINE_SLICES {
            return None;
        }
        let mut v = Vec::with_capacity(rec.allocs as usize);
        for _ in 0..rec.allocs {
            v.push(Slice {
                lot: q.u32()?,
                units: q.u128()?,
            });
        }
        Some(v)
    } else {
        None
    };
    Some(StoredRedemption { rec, slices })
}

/// Encodes a chunk of records (a version byte, the count, the records) with `each`.
pub fn encode_chunk<T>(items: &[T], each: impl Fn(&mut Vec<u8>, &T)) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + 48 * items.len());
    out.push(SCHEMA_VERSION);
    put(&mut out, items.len() as u64);
    for i in items {
        each(&mut out, i);
    }
    out
}

fn decode_chunk<T>(
    what: &str,
    bytes: &[u8],
    each: impl Fn(&mut Quick) -> Option<T>,
) -> Result<Vec<T>, StorageError> {
    let bad = || StorageError(format!("{what}: a damaged record"));
    let (&v, body) = bytes.split_first().ok_or_else(bad)?;
    if v != SCHEMA_VERSION {
        return Err(StorageError(format!(
            "{what}: schema version {v}, this build reads {SCHEMA_VERSION}"
        )));
    }
    let mut q = Quick(body);
    let n = usize::try_from(q.u64().ok_or_else(bad)?).map_err(|_| bad())?;
    if n > body.len() {
        return Err(bad());
    }
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(each(&mut q).ok_or_else(bad)?);
    }
    if !q.0.is_empty() {
        return Err(StorageError(format!("{what}: trailing bytes")));
    }
    Ok(out)
}

pub fn encode_lots(lots: &[Lot]) -> Vec<u8> {
    encode_chunk(lots, put_lot)
}

pub fn decode_lots(what: &str, bytes: &[u8]) -> Result<Vec<Lot>, StorageError> {
    decode_chunk(what, bytes, get_lot)
}

pub fn encode_redemptions(reds: &[StoredRedemption]) -> Vec<u8> {
    encode_chunk(reds, put_redemption)
}

pub fn decode_redemptions(what: &str, bytes: &[u8]) -> Result<Vec<StoredRedemption>, StorageError> {
    decode_chunk(what, bytes, get_redemption)
}

/// A sequence of compact lots written by [`put_lots_seq`] inside a larger record, from the start
/// of `bytes`: the lots and the bytes they took.
pub fn get_lots_seq(
    what: &dyn Fn() -> String,
    bytes: &[u8],
) -> Result<(Vec<Lot>, usize), StorageError> {
    let bad = || StorageError(format!("{}: damaged lots", what()));
    let mut q = Quick(bytes);
    let n = usize::try_from(q.u64().ok_or_else(bad)?).map_err(|_| bad())?;
    if n > bytes.len() {
        return Err(bad());
    }
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(get_lot(&mut q).ok_or_else(bad)?);
    }
    Ok((out, bytes.len() - q.0.len()))
}

/// The compact lot at the start of `bytes`.
pub fn lot_at(bytes: &[u8]) -> Option<Lot> {
    get_lot(&mut Quick(bytes))
}

/// A sequence of compact lots (as [`put_lots_seq`] writes it) without building their ids: each
/// lot's offset in `bytes` and the lot with an empty id (enough for its index keys); and the
/// bytes the sequence took.
pub fn scan_lots_seq(
    what: &dyn Fn() -> String,
    bytes: &[u8],
) -> Result<(Vec<(usize, Lot)>, usize), StorageError> {
    let bad = || StorageError(format!("{}: damaged lots", what()));
    let mut q = Quick(bytes);
    let n = usize::try_from(q.u64().ok_or_else(bad)?).map_err(|_| bad())?;
    if n > bytes.len() {
        return Err(bad());
    }
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let at = bytes.len() - q.0.len();
        out.push((at, get_lot_with(&mut q, false).ok_or_else(bad)?));
    }
    Ok((out, bytes.len() - q.0.len()))
}

pub fn put_lots_seq(out: &mut Vec<u8>, lots: &[Lot]) {
    put(out, lots.len() as u64);
    for l in lots {
        put_lot(out, l);
    }
}

/// A figure delta in compact form: `0x80` for none; else a byte whose bits 0–4 say which of
/// promised, credited, redeemed, expired and on_hold change, the pocket, then those changes
/// (zigzag varints). A delta usually changes one or two figures: five to seven bytes.
pub fn put_delta(out: &mut Vec<u8>, d: &Option<Delta>) {
    let Some(d) = d else {
        out.push(0x80);
        return;
    };
    let fields = [d.promised, d.credited, d.redeemed, d.expired, d.on_hold];
    let mask = fields
        .iter()
        .enumerate()
        .fold(0u8, |m, (i, v)| if *v != 0 { m | (1 << i) } else { m });
    out.push(mask);
    put(out, d.pocket);
    for v in fields.into_iter().filter(|v| *v != 0) {
        put(out, v);
    }
}

/// Reads a delta written by [`put_delta`] from the start of `bytes`: it and the bytes it took.
pub fn get_delta(bytes: &[u8]) -> Option<(Option<Delta>, usize)> {
    let mut q = Quick(bytes);
    let mask = q.byte()?;
    if mask == 0x80 {
        return Some((None, 1));
    }
    if mask & !31 != 0 {
        return None;
    }
    let pocket = q.u16()?;
    let mut f = [0i128; 5];
    for (i, x) in f.iter_mut().enumerate() {
        if mask & (1 << i) != 0 {
            *x = q.i128()?;
            if *x == 0 {
                // Not what `put_delta` writes: one encoding per delta.
                return None;
            }
        }
    }
    let d = Delta {
        pocket,
        promised: f[0],
        credited: f[1],
        redeemed: f[2],
        expired: f[3],
        on_hold: f[4],
    };
    Some((Some(d), bytes.len() - q.0.len()))
}

/// A stored event, decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventRecord {
    pub version: u8,
    pub position: u64,
    pub at: i64,
    pub checksum: [u8; 16],
    /// How the event changed its pocket's figures (as `apply` computed it when it was written).
    pub delta: Option<Delta>,
    pub event: Event,
}

const EVENT_HEADER: usize = 1 + 8 + 8 + 16;

pub fn chain(
    prev: &[u8; 16],
    stream: u64,
    seq: u64,
    position: u64,
    at: i64,
    payload: &[u8],
) -> [u8; 16] {
    let mut h = Sha256::new();
    h.update(prev);
    h.update(stream.to_be_bytes());
    h.update(seq.to_be_bytes());
    h.update(position.to_be_bytes());
    h.update(at.to_be_bytes());
    h.update(payload);
    let d = h.finalize();
    let mut c = [0u8; 16];
    c.copy_from_slice(&d[..16]);
    c
}

/// Encodes an event record chained to `prev`; returns the bytes and the new checksum.
#[allow(clippy::too_many_arguments)]
pub fn encode_event(
    prev: &[u8; 16],
    stream: u64,
    seq: u64,
    position: u64,
    at: i64,
    delta: &Option<Delta>,
    event: &Event,
) -> (Vec<u8>, [u8; 16]) {
    let mut payload = Vec::with_capacity(64);
    bincode::encode_into_std_write(delta, &mut payload, config()).expect("Vec write");
    bincode::encode_into_std_write(event, &mut payload, config()).expect("Vec write");
    debug_assert!(
        payload.len() <= MAX_EVENT_BYTES,
        "events are bounded by input limits"
    );
    let sum = chain(prev, stream, seq, position, at, &payload);
    let mut out = Vec::with_capacity(EVENT_HEADER + payload.len());
    out.push(SCHEMA_VERSION);
    out.extend_from_slice(&position.to_be_bytes());
    out.extend_from_slice(&at.to_be_bytes());
    out.extend_from_slice(&sum);
    out.extend_from_slice(&payload);
    (out, sum)
}

/// Decodes an event record. `what` names it in errors. The checksum is returned, not verified:
/// verification needs the previous record (see `verify`).
pub fn decode_event<'a>(
    what: &str,
    bytes: &'a [u8],
) -> Result<(EventRecord, &'a [u8]), StorageError> {
    if bytes.len() < EVENT_HEADER {
        return Err(StorageError(format!(
            "{what}: record of {} bytes is shorter than the {EVENT_HEADER}-byte header",
            bytes.len()
        )));
    }
    if bytes.len() > MAX_EVENT_BYTES + EVENT_HEADER {
        return Err(StorageError(format!(
            "{what}: record of {} bytes exceeds the limit",
            bytes.len()
        )));
    }
    let version = bytes[0];
    if version != SCHEMA_VERSION {
        return Err(StorageError(format!(
            "{what}: schema version {version}, this build reads {SCHEMA_VERSION}"
        )));
    }
    let position = u64::from_be_bytes(bytes[1..9].try_into().expect("sized"));
    let at = i64::from_be_bytes(bytes[9..17].try_into().expect("sized"));
    let mut checksum = [0u8; 16];
    checksum.copy_from_slice(&bytes[17..33]);
    let payload = &bytes[EVENT_HEADER..];
    let (delta, used_delta): (Option<Delta>, usize) =
        bincode::decode_from_slice(payload, limited())
            .map_err(|e| StorageError(format!("{what}: undecodable figure delta ({e})")))?;
    let body = &payload[used_delta..];
    let (event, used) = bincode::decode_from_slice(body, limited())
        .map_err(|e| StorageError(format!("{what}: undecodable event ({e})")))?;
    if used != body.len() {
        return Err(StorageError(format!(
            "{what}: {} trailing bytes after the event",
            body.len() - used
        )));
    }
    Ok((
        EventRecord {
            version,
            position,
            at,
            checksum,
            delta,
            event,
        },
        payload,
    ))
}

/// The part of an event record an as-of read needs — its time, its figure delta and the event's
/// variant index — without decoding the event. No checksum check (that is `verify`'s job).
pub fn peek_event(bytes: &[u8]) -> Result<(i64, Option<Delta>, u8), StorageError> {
    if bytes.len() < EVENT_HEADER || bytes[0] != SCHEMA_VERSION {
        return Err(StorageError(format!(
            "event record of {} bytes with a bad header",
            bytes.len()
        )));
    }
    let at = i64::from_be_bytes(bytes[9..17].try_into().expect("sized"));
    let payload = &bytes[EVENT_HEADER..];
    let (delta, used): (Option<Delta>, usize) = bincode::decode_from_slice(payload, limited())
        .map_err(|e| StorageError(format!("undecodable figure delta ({e})")))?;
    // bincode writes an enum's variant index as a varint: one byte below 251.
    let tag = *payload
        .get(used)
        .ok_or_else(|| StorageError("event record without an event".into()))?;
    Ok((at, delta, tag))
}

// ---- keys: big-endian so byte order is numeric order -----------------------------------------

/// Maps an `i64` to bytes that sort in numeric order.
pub fn i64_key(v: i64) -> [u8; 8] {
    ((v as u64) ^ (1 << 63)).to_be_bytes()
}

/// The inverse of [`i64_key`]; a slice of the wrong length (a corrupt record) is an error.
pub fn i64_from_key(b: &[u8]) -> Result<i64, StorageError> {
    let a: [u8; 8] = b
        .try_into()
        .map_err(|_| StorageError(format!("instant key of {} bytes, expected 8", b.len())))?;
    Ok((u64::from_be_bytes(a) ^ (1 << 63)) as i64)
}

pub fn k_w32(w: u64, n: u32) -> [u8; 12] {
    let mut k = [0u8; 12];
    k[..8].copy_from_slice(&w.to_be_bytes());
    k[8..].copy_from_slice(&n.to_be_bytes());
    k
}

pub fn k_ww(a: u64, b: u64) -> [u8; 16] {
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(&a.to_be_bytes());
    k[8..].copy_from_slice(&b.to_be_bytes());
    k
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
        fn pick<T: Copy>(&mut self, choices: &[T]) -> T {
            choices[self.below(choices.len())]
        }
    }

    /// Values of every varint width, both signs, and ids of several lengths and scripts.
    fn lot(r: &mut Rng) -> Lot {
        let wide = [
            0,
            1,
            250,
            251,
            65_535,
            65_536,
            u32::MAX as u128,
            1 << 40,
            u64::MAX as u128,
            1 << 90,
        ];
        let signed = [0i64, 1, -1, 125, -126, 40_000, -40_000, i64::MAX, i64::MIN];
        let expiry = r.pick(&signed);
        Lot {
            no: r.pick(&[0, 7, 250, 251, 70_000, u32::MAX]),
            id: r
                .pick(&["", "L1", "é-lot", "a-much-longer-lot-id"])
                .repeat(1 + r.below(20)),
            pocket: r.pick(&[0, 3, 251, u16::MAX]),
            amount: r.pick(&wide),
            free: r.pick(&wide),
            held: r.pick(&wide),
            spent: r.pick(&wide),
            refunded: r.pick(&wide),
            expired: r.pick(&wide),
            issued_at: r.pick(&signed),
            activates_at: r.pick(&signed),
            expires_at: r.pick(&[None, Some(expiry)]),
            activated: r.pick(&[false, true]),
            order_key: r.pick(&signed),
        }
    }

    #[test]
    fn the_quick_lot_reader_agrees_with_bincode() {
        let mut r = Rng(0x9e37_79b9_7f4a_7c15);
        for _ in 0..2_000 {
            let l = lot(&mut r);
            let bytes = encode(&l);
            assert_eq!(quick_lot(&bytes), Some(l.clone()));
            assert_eq!(decode_lot(&bytes).unwrap(), l);
            // Damaged records: whatever the quick reader accepts, bincode accepts with the same
            // value; what it declines falls back to bincode's own verdict.
            for _ in 0..20 {
                let b = damage(&mut r, &bytes);
                let slow = decode::<Lot>("lot", &b);
                if let Some(q) = quick_lot(&b) {
                    assert_eq!(slow.as_ref().ok(), Some(&q), "bytes {b:?}");
                }
                assert_eq!(decode_lot(&b), slow);
            }
        }
    }

    fn text(r: &mut Rng) -> String {
        r.pick(&["", "a", "é-π", "Main Pocket"]).repeat(r.below(30))
    }

    fn opt_text(r: &mut Rng) -> Option<String> {
        let t = text(r);
        r.pick(&[None, Some(())]).map(|_| t)
    }

    fn wallet(r: &mut Rng) -> WalletState {
        let wide = [0, 1, 250, 251, 65_536, u64::MAX as u128, 1 << 95];
        let signed = [0i64, 1, -1, 40_000, -40_000, i64::MAX, i64::MIN];
        let nums = [0u64, 250, 251, 70_000, u32::MAX as u64, u64::MAX];
        let mut pockets = Vec::new();
        for _ in 0..r.below(5) {
            pockets.push(PocketState {
                key: text(r),
                name: text(r),
                kind: text(r),
                asset: text(r),
                scale: r.pick(&[0, 2, 18, 300]),
                number: r.pick(&nums),
                uuid: [r.next() as u8; 16],
                figures: Figures {
                    promised: r.pick(&wide),
                    credited: r.pick(&wide),
                    redeemed: r.pick(&wide),
                    expired: r.pick(&wide),
                    on_hold: r.pick(&wide),
                },
                issued: r.pick(&wide),
            });
        }
        let mut methods = Vec::new();
        for _ in 0..r.below(3) {
            methods.push(PaymentMethod {
                account_name: text(r),
                account_number: text(r),
                account_type: text(r),
                address: opt_text(r),
                bank_address: opt_text(r),
                bank_code: text(r),
                bank_name: text(r),
            });
        }
        let mut cards = Vec::new();
        for _ in 0..r.below(3) {
            cards.push(Card {
                card: text(r),
                masked_pan: opt_text(r),
                status: opt_text(r),
            });
        }
        let due = r.pick(&signed);
        WalletState {
            uuid: [r.next() as u8; 16],
            number: r.pick(&nums),
            holder: [r.next() as u8; 16],
            program: r.pick(&nums),
            name: text(r),
            external_id: opt_text(r),
            status: r.pick(&[Status::Active, Status::Frozen, Status::Closed]),
            order: r.pick(&[Order::EarliestExpiry, Order::EarliestIssuance]),
            created_at: r.pick(&signed),
            updated_at: r.pick(&signed),
            seq: r.pick(&nums),
            pockets,
            lots: r.pick(&[0, 251, u32::MAX]),
            holds: r.pick(&[0, 251, u32::MAX]),
            open_holds: r.pick(&[0, 251, u32::MAX]),
            redemptions: r.pick(&[0, 251, u32::MAX]),
            lifecycle: r.pick(&[0, 251, u32::MAX]),
            methods,
            cards,
            next_due: r.pick(&[None, Some(due)]),
        }
    }

    /// A copy of `bytes` truncated, extended by a byte, or with one byte changed.
    fn damage(r: &mut Rng, bytes: &[u8]) -> Vec<u8> {
        let mut b = bytes.to_vec();
        match r.below(4) {
            0 => b.truncate(r.below(b.len())),
            1 => b.push(r.next() as u8),
            _ => {
                let i = r.below(b.len());
                b[i] = r.next() as u8;
            }
        }
        b
    }

    #[test]
    fn the_quick_wallet_reader_agrees_with_bincode() {
        let mut r = Rng(0x2545_f491_4f6c_dd1d);
        let name = || "w".to_string();
        for _ in 0..1_000 {
            let ws = wallet(&mut r);
            let bytes = encode(&ws);
            assert_eq!(quick_wallet(&bytes), Some(ws.clone()));
            for _ in 0..20 {
                let b = damage(&mut r, &bytes);
                let slow = decode::<WalletState>("w", &b);
                if let Some(q) = quick_wallet(&b) {
                    assert_eq!(slow.as_ref().ok(), Some(&q), "bytes {b:?}");
                }
                assert_eq!(decode_wallet(name, &b), slow);
            }
        }
    }

    #[test]
    fn i64_keys_sort_numerically() {
        let vals = [i64::MIN, -5, -1, 0, 1, 7, i64::MAX];
        for w in vals.windows(2) {
            assert!(i64_key(w[0]) < i64_key(w[1]));
            assert_eq!(i64_from_key(&i64_key(w[0])).unwrap(), w[0]);
        }
    }

    #[test]
    fn event_records_round_trip_and_chain() {
        let ev = Event::Expired { lot: 7 };
        let delta = Some(Delta {
            pocket: 1,
            expired: 5,
            ..Delta::default()
        });
        let (bytes, sum) = encode_event(&[0; 16], 3, 9, 42, -17, &delta, &ev);
        let (rec, payload) = decode_event("t", &bytes).unwrap();
        assert_eq!((rec.event, rec.delta), (ev, delta));
        assert_eq!(peek_event(&bytes).unwrap(), (-17, delta, 9));
        assert_eq!((rec.position, rec.at, rec.checksum), (42, -17, sum));
        assert_eq!(chain(&[0; 16], 3, 9, 42, -17, payload), sum);
        // Any other position or predecessor gives another checksum.
        assert_ne!(chain(&[1; 16], 3, 9, 42, -17, payload), sum);
        assert_ne!(chain(&[0; 16], 3, 10, 42, -17, payload), sum);
    }

    #[test]
    fn variant_tags_match_the_encoding() {
        use crate::model::{Card, PaymentMethod};
        let tag = |ev: &Event| {
            let (bytes, _) = encode_event(&[0; 16], 1, 1, 1, 0, &None, ev);
            peek_event(&bytes).unwrap().2
        };
        assert_eq!(
            tag(&Event::PaymentMethodLinked(PaymentMethod::default())),
            Event::TAG_PAYMENT_METHOD_LINKED
        );
        let card = Card {
            card: "c".into(),
            masked_pan: None,
            status: None,
        };
        assert_eq!(tag(&Event::CardIssued(card)), Event::TAG_CARD_ISSUED);
    }

    #[test]
    fn decoding_rejects_garbage_without_panicking() {
        assert!(decode_event("t", &[]).is_err());
        assert!(decode_event("t", &[1; 40]).is_err());
        assert!(decode::<u64>("t", &[]).is_err());
        assert!(decode::<u64>("t", &[2, 0]).is_err());
        assert!(decode::<u64>("t", &[1, 0, 0]).is_err());
        assert!(decode::<Vec<u8>>("t", &[1, 252, 255, 255, 255, 255]).is_err());
    }
}
