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
use crate::domain::state::Delta;
use crate::error::StorageError;
use crate::limits::MAX_EVENT_BYTES;
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
