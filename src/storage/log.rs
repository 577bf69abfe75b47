//! The log: the one durable record of everything the ledger did, and the only thing a command's
//! durable commit writes (file format 3; see `docs/design.md`, "The log").
//!
//! One table, keyed `(position u64, sub u32)`, appended at its end:
//! - `(P, 0)` is the event at global position `P` (positions are gapless from 1);
//! - `(P, n ≥ 1)` is a *command record*: the idempotency key of a keyed command, its fingerprint
//!   and its receipt, written after the command's last event (`P` is the position of the last
//!   event at or before it), so that the idempotency table can be rebuilt from the log alone.
//!
//! Every record carries the record version and a checksum chained to the record before it in key
//! order, whatever its kind: altering, removing, inserting or reordering any record breaks the
//! chain (SPEC §6).
//!
//! ```text
//! record   = [version u8 = 2][kind u8][at i64 BE][checksum 16 bytes][body]
//! event    body = bincode(stream u64) ‖ bincode(seq u64) ‖ delta ‖ bincode(stored Event)
//! command  body = bincode(CommandRecord)
//! checksum = SHA-256(previous checksum ‖ position u64 BE ‖ sub u32 BE ‖ version ‖ kind ‖ at ‖ body)[0..16]
//! ```
//!
//! `delta` is the figure delta in compact form (`codec::put_delta`). The *stored* event is the
//! event with what the record already says left out: an id that is the canonical name of the
//! record's own number (`lot-N`, `redemption-N`, `hold-N`) is stored empty (no client id is
//! empty), and a credit's activation instant is stored relative to the record's `at`.
//!
//! Decoding is total and bounded (records over [`MAX_RECORD_BYTES`] are refused before any
//! decoding; trailing bytes are an error).

use crate::command::Receipt;
use crate::domain::event::Event;
use crate::domain::state::{Delta, NameKind};
use crate::error::StorageError;
use crate::limits::MAX_EVENT_BYTES;
use bincode::{Decode, Encode};
use redb::TableDefinition;
use sha2::{Digest, Sha256};

/// `(position, sub)` → record.
pub const LOG: TableDefinition<(u64, u32), &[u8]> = TableDefinition::new("log");

/// The version byte of every log record. Version 1 was the per-stream event record of file
/// formats 1 and 2 (`codec::decode_event`), read only by the migration.
pub const LOG_VERSION: u8 = 2;

/// Record kinds.
pub const KIND_EVENT: u8 = 0;
pub const KIND_COMMAND: u8 = 1;

const HEADER: usize = 1 + 1 + 8 + 16;

/// Largest record accepted: an event is bounded by [`MAX_EVENT_BYTES`]; a command record holds
/// a receipt, which for a batch lists one small receipt per command.
pub const MAX_RECORD_BYTES: usize = 4 << 20;

/// Bounds what a damaged record can make the decoder allocate.
const DECODE_LIMIT: usize = MAX_RECORD_BYTES;

fn config() -> impl bincode::config::Config {
    bincode::config::standard()
}

fn limited() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<DECODE_LIMIT>()
}

/// Where a record sits in the log.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LogKey {
    pub position: u64,
    pub sub: u32,
}

impl LogKey {
    pub const ZERO: LogKey = LogKey {
        position: 0,
        sub: 0,
    };

    pub fn event(position: u64) -> LogKey {
        LogKey { position, sub: 0 }
    }

    pub fn tuple(self) -> (u64, u32) {
        (self.position, self.sub)
    }

    pub fn from_tuple((position, sub): (u64, u32)) -> LogKey {
        LogKey { position, sub }
    }

    /// Bytes for `meta` (position BE ‖ sub BE).
    pub fn to_bytes(self) -> [u8; 12] {
        let mut b = [0u8; 12];
        b[..8].copy_from_slice(&self.position.to_be_bytes());
        b[8..].copy_from_slice(&self.sub.to_be_bytes());
        b
    }

    pub fn from_bytes(b: &[u8]) -> Result<LogKey, StorageError> {
        if b.len() != 12 {
            return Err(StorageError(format!("a log key of {} bytes", b.len())));
        }
        Ok(LogKey {
            position: u64::from_be_bytes(b[..8].try_into().expect("sized")),
            sub: u32::from_be_bytes(b[8..].try_into().expect("sized")),
        })
    }
}

impl std::fmt::Display for LogKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.sub == 0 {
            write!(f, "position {}", self.position)
        } else {
            write!(f, "command record {}.{}", self.position, self.sub)
        }
    }
}

/// What the log keeps of a keyed command: enough to answer its retries (SPEC §6) after the
/// idempotency table is rebuilt from the log.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct CommandRecord {
    pub key: String,
    /// SHA-256 of the canonical command without key and instants.
    pub hash: [u8; 32],
    /// The instants as submitted (`None`: left to the clock).
    pub instants: Vec<Option<i64>>,
    pub receipt: StoredReceipt,
}

/// A receipt as records store it: ids and the instant as text, so that the record's bytes do
/// not depend on how the public [`Receipt`] type is spelled.
#[derive(Clone, Debug, PartialEq, Eq, Default, Encode, Decode)]
pub struct StoredReceipt {
    pub op: String,
    pub program: Option<u64>,
    pub holder: Option<String>,
    pub wallet: Option<String>,
    pub pocket: Option<String>,
    pub lot: Option<String>,
    pub hold: Option<String>,
    pub redemption: Option<String>,
    pub card: Option<String>,
    pub at: String,
    pub first_position: Option<u64>,
    pub last_position: Option<u64>,
    pub events: u64,
    pub commands: Vec<StoredReceipt>,
    pub replayed: bool,
}

impl From<&Receipt> for StoredReceipt {
    fn from(r: &Receipt) -> StoredReceipt {
        StoredReceipt {
            op: r.op.clone(),
            program: r.program,
            holder: r.holder.map(|u| u.to_string()),
            wallet: r.wallet.map(|u| u.to_string()),
            pocket: r.pocket.clone(),
            lot: r.lot.clone(),
            hold: r.hold.clone(),
            redemption: r.redemption.clone(),
            card: r.card.clone(),
            at: r.at.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
            first_position: r.first_position,
            last_position: r.last_position,
            events: r.events,
            commands: r.commands.iter().map(StoredReceipt::from).collect(),
            replayed: r.replayed,
        }
    }
}

impl StoredReceipt {
    /// The receipt it stores; `Err` names a field a damaged record got wrong.
    pub fn receipt(&self) -> Result<Receipt, StorageError> {
        let uuid = |what: &str, v: &Option<String>| -> Result<Option<uuid::Uuid>, StorageError> {
            v.as_deref()
                .map(|s| {
                    uuid::Uuid::parse_str(s)
                        .map_err(|_| StorageError(format!("a stored receipt's {what} {s:?}")))
                })
                .transpose()
        };
        Ok(Receipt {
            op: self.op.clone(),
            program: self.program,
            holder: uuid("holder", &self.holder)?,
            wallet: uuid("wallet", &self.wallet)?,
            pocket: self.pocket.clone(),
            lot: self.lot.clone(),
            hold: self.hold.clone(),
            redemption: self.redemption.clone(),
            card: self.card.clone(),
            at: chrono::DateTime::parse_from_rfc3339(&self.at)
                .map(|t| t.with_timezone(&chrono::Utc))
                .map_err(|_| StorageError(format!("a stored receipt's instant {:?}", self.at)))?,
            first_position: self.first_position,
            last_position: self.last_position,
            events: self.events,
            commands: self
                .commands
                .iter()
                .map(StoredReceipt::receipt)
                .collect::<Result<_, _>>()?,
            replayed: self.replayed,
        })
    }
}

/// A record's body, decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
#[allow(clippy::large_enum_variant)] // events are the hot case; command records are boxed
pub enum Body {
    Event {
        stream: u64,
        seq: u64,
        delta: Option<Delta>,
        event: Event,
    },
    Command(Box<CommandRecord>),
}

/// A log record, decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    pub at: i64,
    pub checksum: [u8; 16],
    pub body: Body,
}

/// The chained checksum of the record at `key` whose bytes are `bytes` (its own checksum field
/// is skipped), after a record whose checksum was `prev` (16 zero bytes before the first).
pub fn chain(prev: &[u8; 16], key: LogKey, bytes: &[u8]) -> [u8; 16] {
    let mut h = Sha256::new();
    h.update(prev);
    h.update(key.position.to_be_bytes());
    h.update(key.sub.to_be_bytes());
    h.update(&bytes[..10.min(bytes.len())]);
    if bytes.len() > HEADER {
        h.update(&bytes[HEADER..]);
    }
    let d = h.finalize();
    let mut c = [0u8; 16];
    c.copy_from_slice(&d[..16]);
    c
}

fn finish(mut out: Vec<u8>, prev: &[u8; 16], key: LogKey) -> (Vec<u8>, [u8; 16]) {
    let sum = chain(prev, key, &out);
    out[10..HEADER].copy_from_slice(&sum);
    (out, sum)
}

fn header(kind: u8, at: i64, capacity: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER + capacity);
    out.push(LOG_VERSION);
    out.push(kind);
    out.extend_from_slice(&at.to_be_bytes());
    out.extend_from_slice(&[0; 16]);
    out
}

/// Encodes an event record chained to `prev`; returns the bytes and its checksum.
pub fn encode_event(
    prev: &[u8; 16],
    key: LogKey,
    at: i64,
    stream: u64,
    seq: u64,
    delta: &Option<Delta>,
    event: &Event,
) -> (Vec<u8>, [u8; 16]) {
    debug_assert_eq!(key.sub, 0, "events sit at sub 0");
    let mut out = header(KIND_EVENT, at, 64);
    let c = config();
    bincode::encode_into_std_write(stream, &mut out, c).expect("Vec write");
    bincode::encode_into_std_write(seq, &mut out, c).expect("Vec write");
    crate::storage::codec::put_delta(&mut out, delta);
    bincode::encode_into_std_write(&*stored(event, at), &mut out, c).expect("Vec write");
    debug_assert!(
        out.len() <= HEADER + MAX_EVENT_BYTES,
        "events are bounded by input limits"
    );
    finish(out, prev, key)
}

fn canonical(kind: NameKind, no: u32, id: &str) -> bool {
    kind.canonical_no(id) == Some(no)
}

/// The event as stored: what the record already says left out (see the module docs).
fn stored(ev: &Event, at: i64) -> std::borrow::Cow<'_, Event> {
    use std::borrow::Cow;
    match ev {
        Event::Credited {
            pocket,
            lot,
            id,
            units,
            activates_at,
            expires_at,
        } => Cow::Owned(Event::Credited {
            pocket: *pocket,
            lot: *lot,
            id: if canonical(NameKind::Lot, *lot, id) {
                String::new()
            } else {
                id.clone()
            },
            units: *units,
            activates_at: activates_at.wrapping_sub(at),
            expires_at: *expires_at,
        }),
        Event::Redeemed {
            pocket,
            redemption,
            id,
            units,
        } if canonical(NameKind::Redemption, *redemption, id) => Cow::Owned(Event::Redeemed {
            pocket: *pocket,
            redemption: *redemption,
            id: String::new(),
            units: *units,
        }),
        Event::Held {
            pocket,
            hold,
            id,
            units,
            expires_at,
        } if canonical(NameKind::Hold, *hold, id) => Cow::Owned(Event::Held {
            pocket: *pocket,
            hold: *hold,
            id: String::new(),
            units: *units,
            expires_at: *expires_at,
        }),
        Event::Captured {
            hold,
            redemption,
            id,
            units,
        } if canonical(NameKind::Redemption, *redemption, id) => Cow::Owned(Event::Captured {
            hold: *hold,
            redemption: *redemption,
            id: String::new(),
            units: *units,
        }),
        e => Cow::Borrowed(e),
    }
}

/// The event a stored one stands for (the inverse of [`stored`]).
fn restored(ev: Event, at: i64) -> Event {
    let name = |kind: NameKind, no: u32, id: String| {
        if id.is_empty() {
            kind.canonical_name(no)
        } else {
            id
        }
    };
    match ev {
        Event::Credited {
            pocket,
            lot,
            id,
            units,
            activates_at,
            expires_at,
        } => Event::Credited {
            pocket,
            lot,
            id: name(NameKind::Lot, lot, id),
            units,
            activates_at: activates_at.wrapping_add(at),
            expires_at,
        },
        Event::Redeemed {
            pocket,
            redemption,
            id,
            units,
        } => Event::Redeemed {
            pocket,
            redemption,
            id: name(NameKind::Redemption, redemption, id),
            units,
        },
        Event::Held {
            pocket,
            hold,
            id,
            units,
            expires_at,
        } => Event::Held {
            pocket,
            hold,
            id: name(NameKind::Hold, hold, id),
            units,
            expires_at,
        },
        Event::Captured {
            hold,
            redemption,
            id,
            units,
        } => Event::Captured {
            hold,
            redemption,
            id: name(NameKind::Redemption, redemption, id),
            units,
        },
        e => e,
    }
}

/// Encodes a command record chained to `prev`; returns the bytes and its checksum.
pub fn encode_command(
    prev: &[u8; 16],
    key: LogKey,
    at: i64,
    rec: &CommandRecord,
) -> (Vec<u8>, [u8; 16]) {
    debug_assert!(key.sub > 0, "command records sit after an event");
    let mut out = header(KIND_COMMAND, at, 256);
    bincode::encode_into_std_write(rec, &mut out, config()).expect("Vec write");
    finish(out, prev, key)
}

/// The fixed part of a record: version checked, kind, time and stored checksum.
fn split(what: &dyn Fn() -> String, bytes: &[u8]) -> Result<(u8, i64, [u8; 16]), StorageError> {
    if bytes.len() < HEADER {
        return Err(StorageError(format!(
            "{}: record of {} bytes is shorter than the {HEADER}-byte header",
            what(),
            bytes.len()
        )));
    }
    if bytes.len() > MAX_RECORD_BYTES {
        return Err(StorageError(format!(
            "{}: record of {} bytes exceeds the limit of {MAX_RECORD_BYTES}",
            what(),
            bytes.len()
        )));
    }
    if bytes[0] != LOG_VERSION {
        return Err(StorageError(format!(
            "{}: record version {}, this build reads {LOG_VERSION}",
            what(),
            bytes[0]
        )));
    }
    let at = i64::from_be_bytes(bytes[2..10].try_into().expect("sized"));
    let mut checksum = [0u8; 16];
    checksum.copy_from_slice(&bytes[10..HEADER]);
    Ok((bytes[1], at, checksum))
}

fn undecodable(what: &dyn Fn() -> String, part: &str, e: impl std::fmt::Display) -> StorageError {
    StorageError(format!("{}: undecodable {part} ({e})", what()))
}

/// Decodes the record stored at `key`. The checksum is returned, not verified: that needs the
/// record before it ([`chain`]).
pub fn decode(key: LogKey, bytes: &[u8]) -> Result<Record, StorageError> {
    let what = || format!("log {key}");
    let (kind, at, checksum) = split(&what, bytes)?;
    let body = &bytes[HEADER..];
    let body = match kind {
        KIND_EVENT => {
            if key.sub != 0 {
                return Err(StorageError(format!(
                    "{}: an event record off an event slot",
                    what()
                )));
            }
            let (stream, a): (u64, usize) = bincode::decode_from_slice(body, limited())
                .map_err(|e| undecodable(&what, "stream", e))?;
            let (seq, b): (u64, usize) = bincode::decode_from_slice(&body[a..], limited())
                .map_err(|e| undecodable(&what, "sequence", e))?;
            let (delta, c) = crate::storage::codec::get_delta(&body[a + b..])
                .ok_or_else(|| undecodable(&what, "figure delta", "damaged"))?;
            let rest = &body[a + b + c..];
            let (event, used): (Event, usize) = bincode::decode_from_slice(rest, limited())
                .map_err(|e| undecodable(&what, "event", e))?;
            let event = restored(event, at);
            if used != rest.len() {
                return Err(StorageError(format!(
                    "{}: {} trailing bytes after the event",
                    what(),
                    rest.len() - used
                )));
            }
            Body::Event {
                stream,
                seq,
                delta,
                event,
            }
        }
        KIND_COMMAND => {
            if key.sub == 0 {
                return Err(StorageError(format!(
                    "{}: a command record in an event slot",
                    what()
                )));
            }
            let (rec, used): (CommandRecord, usize) =
                bincode::decode_from_slice(body, limited())
                    .map_err(|e| undecodable(&what, "command record", e))?;
            if used != body.len() {
                return Err(StorageError(format!(
                    "{}: {} trailing bytes after the command record",
                    what(),
                    body.len() - used
                )));
            }
            Body::Command(Box::new(rec))
        }
        k => return Err(StorageError(format!("{}: unknown record kind {k}", what()))),
    };
    Ok(Record { at, checksum, body })
}

/// What an as-of read needs of an event record — its time, stream, sequence, figure delta and
/// the event's variant index — without decoding the event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Peek {
    pub at: i64,
    pub stream: u64,
    pub seq: u64,
    pub delta: Option<Delta>,
    pub tag: u8,
}

pub fn peek_event(key: LogKey, bytes: &[u8]) -> Result<Peek, StorageError> {
    let what = || format!("log {key}");
    let (kind, at, _) = split(&what, bytes)?;
    if kind != KIND_EVENT {
        return Err(StorageError(format!("{}: not an event record", what())));
    }
    let body = &bytes[HEADER..];
    let (stream, a): (u64, usize) =
        bincode::decode_from_slice(body, limited()).map_err(|e| undecodable(&what, "stream", e))?;
    let (seq, b): (u64, usize) = bincode::decode_from_slice(&body[a..], limited())
        .map_err(|e| undecodable(&what, "sequence", e))?;
    let (delta, c) = crate::storage::codec::get_delta(&body[a + b..])
        .ok_or_else(|| undecodable(&what, "figure delta", "damaged"))?;
    // bincode writes an enum's variant index as a varint: one byte below 251.
    let tag = *body
        .get(a + b + c)
        .ok_or_else(|| StorageError(format!("{}: an event record without an event", what())))?;
    Ok(Peek {
        at,
        stream,
        seq,
        delta,
        tag,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn receipt() -> StoredReceipt {
        StoredReceipt {
            op: "credit".into(),
            at: "2026-01-01T00:00:00Z".into(),
            events: 1,
            first_position: Some(4),
            last_position: Some(4),
            ..StoredReceipt::default()
        }
    }

    #[test]
    fn records_round_trip_and_chain_in_key_order() {
        let ev = Event::Expired { lot: 7 };
        let delta = Some(Delta {
            pocket: 1,
            expired: 5,
            ..Delta::default()
        });
        let k1 = LogKey::event(4);
        let (b1, s1) = encode_event(&[0; 16], k1, -17, 3, 9, &delta, &ev);
        let r1 = decode(k1, &b1).unwrap();
        assert_eq!(r1.at, -17);
        assert_eq!(r1.checksum, s1);
        assert_eq!(
            r1.body,
            Body::Event {
                stream: 3,
                seq: 9,
                delta,
                event: ev.clone()
            }
        );
        assert_eq!(chain(&[0; 16], k1, &b1), s1);
        let p = peek_event(k1, &b1).unwrap();
        assert_eq!(
            (p.at, p.stream, p.seq, p.delta, p.tag),
            (-17, 3, 9, delta, 9)
        );

        let k2 = LogKey {
            position: 4,
            sub: 1,
        };
        let cmd = CommandRecord {
            key: "order-7".into(),
            hash: [3; 32],
            instants: vec![Some(5), None],
            receipt: receipt(),
        };
        let (b2, s2) = encode_command(&s1, k2, 5, &cmd);
        let r2 = decode(k2, &b2).unwrap();
        assert_eq!(r2.body, Body::Command(Box::new(cmd)));
        assert_eq!(chain(&s1, k2, &b2), s2);
        // Another predecessor, key or byte gives another checksum.
        assert_ne!(chain(&[1; 16], k1, &b1), s1);
        assert_ne!(chain(&[0; 16], LogKey::event(5), &b1), s1);
        let mut altered = b1.clone();
        *altered.last_mut().unwrap() ^= 1;
        assert_ne!(chain(&[0; 16], k1, &altered), s1);
        // The checksum field itself is not hashed: a record checks against its own bytes.
        let mut zeroed = b1.clone();
        zeroed[10..26].fill(0);
        assert_eq!(chain(&[0; 16], k1, &zeroed), s1);
    }

    #[test]
    fn a_record_in_the_wrong_slot_or_damaged_is_an_error_not_a_panic() {
        let (b, _) = encode_event(
            &[0; 16],
            LogKey::event(1),
            0,
            1,
            1,
            &None,
            &Event::Expired { lot: 1 },
        );
        assert!(
            decode(
                LogKey {
                    position: 1,
                    sub: 1
                },
                &b
            )
            .is_err()
        );
        for n in 0..b.len() {
            let _ = decode(LogKey::event(1), &b[..n]);
        }
        let mut v = b.clone();
        v[0] = 1;
        assert!(
            decode(LogKey::event(1), &v)
                .unwrap_err()
                .0
                .contains("record version 1")
        );
        let mut k = b.clone();
        k[1] = 9;
        assert!(
            decode(LogKey::event(1), &k)
                .unwrap_err()
                .0
                .contains("unknown record kind")
        );
        let mut long = b.clone();
        long.push(0);
        assert!(
            decode(LogKey::event(1), &long)
                .unwrap_err()
                .0
                .contains("trailing")
        );
    }

    #[test]
    fn keys_order_events_before_their_command_records() {
        let a = LogKey::event(4);
        let b = LogKey {
            position: 4,
            sub: 1,
        };
        let c = LogKey::event(5);
        assert!(a < b && b < c);
        assert_eq!(LogKey::from_bytes(&b.to_bytes()).unwrap(), b);
    }
}

#[cfg(test)]
mod pinned {
    //! The bytes of a command record and of an event record, written out by hand: a change of
    //! the record layout, of bincode's configuration or of the receipt's fields fails here.
    use super::*;

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    #[test]
    fn a_command_record_is_these_bytes() {
        let rec = CommandRecord {
            key: "order-7".into(),
            hash: [0xab; 32],
            instants: vec![Some(1_767_225_600_000_000_000), None],
            receipt: StoredReceipt {
                op: "credit".into(),
                wallet: Some("550e8400-e29b-41d4-a716-446655440000".into()),
                lot: Some("L1".into()),
                at: "2026-01-01T00:00:00Z".into(),
                first_position: Some(4),
                last_position: Some(4),
                events: 1,
                ..StoredReceipt::default()
            },
        };
        let (b, sum) = encode_command(
            &[7; 16],
            LogKey {
                position: 4,
                sub: 1,
            },
            5,
            &rec,
        );
        assert_eq!(hex(&sum), PINNED_COMMAND_SUM);
        assert_eq!(hex(&b), PINNED_COMMAND);
    }

    #[test]
    fn an_event_record_is_these_bytes() {
        let ev = Event::Redeemed {
            pocket: 0,
            redemption: 3,
            id: "R1".into(),
            units: 3000,
        };
        let d = Some(Delta {
            pocket: 0,
            redeemed: 3000,
            ..Delta::default()
        });
        let (b, _) = encode_event(
            &[7; 16],
            LogKey::event(9),
            1_767_225_600_000_000_000,
            2,
            5,
            &d,
            &ev,
        );
        assert_eq!(hex(&b), PINNED_EVENT);
    }

    const PINNED_COMMAND_SUM: &str = "6c72749682f0706194cde6cbd62414d4";
    const PINNED_COMMAND: &str = concat!(
        "020100000000000000056c72749682f0706194cde6cbd62414d4076f726465722d37abababababababab",
        "abababababababababababababababababababababababab0201fd0000f4dba3e40c3100066372656469",
        "740000012435353065383430302d653239622d343164342d613731362d34343636353534343030303000",
        "01024c3100000014323032362d30312d30315430303a30303a30305a01040104010000",
    );
    const PINNED_EVENT: &str =
        "020018867251edfa00005e4e8b3e275f3affcf24f4a3a11f894b02050400fb7017060003025231fbb80b";
}
