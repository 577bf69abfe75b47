//! Vendor views (SPEC §8): each vendor's "get wallet details" answered from the ledger.
//!
//! One module per vendor, each with a typed request, a typed success body, a typed error body
//! (all serde types, fields in the vendor's order) and one pure function
//! `answer(&Source, &Request) -> Result<(status, Response), StorageError>`. A [`Source`] is a
//! consistent read of the ledger ([`Reader`]) pinned to one instant; figures come from the
//! materialized state ([`Reader::snapshot`]), so answering costs no replay of a wallet's history
//! when the instant is at or after the wallet's last event.
//!
//! No HTTP framework is involved: an HTTP layer maps its route onto the request type, calls
//! `answer`, and writes the status and the serialized body. Storage failures are returned as
//! `Err` so that layer can choose its 500 (CleverTap and Cryptofuse document one:
//! [`clevertap::Failure::system_error`], [`cryptofuse::ErrorBody::server_error`]).
//!
//! [`answer`] is the dispatcher `walletctl view` uses: vendor name and request as JSON text in,
//! status and body JSON text out.
//!
//! ```
//! use wallet_ledger::{FixedClock, Ledger, views};
//! let ledger = Ledger::in_memory(Box::new(FixedClock("2026-01-01T00:00:00Z".parse().unwrap()))).unwrap();
//! for line in [
//!     r#"{"op":"define_program","program":1,"name":"Cash","unit":"USD","pockets":[{"pocket":"main","name":"Main","kind":"CASH","asset":"USD","scale":2}]}"#,
//!     r#"{"op":"register_holder","holder":"37b08803-c1af-4e10-849f-530264bac7f8","identity":"u1"}"#,
//!     r#"{"op":"open_wallet","wallet":"550e8400-e29b-41d4-a716-446655440000","holder":"37b08803-c1af-4e10-849f-530264bac7f8","program":1}"#,
//!     r#"{"op":"credit","wallet":"550e8400-e29b-41d4-a716-446655440000","amount":"12.50"}"#,
//! ] {
//!     ledger.execute_line(line).unwrap();
//! }
//! let reader = ledger.reader().unwrap();
//! let (status, body) = views::answer(&reader, "clevertap", r#"{"identity":"u1"}"#, None).unwrap();
//! assert_eq!(status, 200);
//! assert!(body.contains(r#""activePoints":12.5,"#));
//! ```

pub mod cashfree;
pub mod clevertap;
pub mod cryptofuse;
pub mod juicyway;

use crate::error::{ReadError, StorageError};
use crate::ledger::Reader;
use crate::model::Instant;
#[cfg(test)]
use crate::model::units_to_decimal;
use crate::snapshot::WalletSnapshot;
use chrono::{DateTime, SecondsFormat, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;
use std::fmt;
use uuid::Uuid;

/// The vendors [`answer`] knows, by the names `walletctl view` takes.
pub const VENDORS: [&str; 4] = ["clevertap", "juicyway", "cashfree", "cryptofuse"];

/// The ledger as of one instant: what every view reads from.
pub struct Source<'r> {
    reader: &'r Reader,
    at: DateTime<Utc>,
}

impl<'r> Source<'r> {
    /// Pins `reader` to `as_of` (default: the reader's now). An instant the ledger cannot
    /// represent (outside 1677..2262) is refused here, so no view meets it later.
    pub fn new(reader: &'r Reader, as_of: Option<DateTime<Utc>>) -> Result<Source<'r>, UsageError> {
        let at = as_of.unwrap_or_else(|| reader.now());
        if Instant::from_datetime(at).is_none() {
            return Err(UsageError::InvalidTime(format!(
                "{} is outside 1677-09-21..2262-04-11",
                at.to_rfc3339_opts(SecondsFormat::AutoSi, true)
            )));
        }
        Ok(Source { reader, at })
    }

    /// The instant the views answer for.
    pub fn at(&self) -> DateTime<Utc> {
        self.at
    }

    /// The underlying read transaction (look-ups by id, holder, program).
    pub fn reader(&self) -> &'r Reader {
        self.reader
    }

    /// Wallet number `w` as of the instant, from the materialized state (no replay when the
    /// instant is at or after its last event). `None` when there is no such wallet or it did not
    /// exist yet at the instant.
    pub(crate) fn wallet(&self, w: u64) -> Result<Option<WalletSnapshot>, StorageError> {
        match self.reader.snapshot_of_number(w, Some(self.at)) {
            Ok(s) => Ok(Some(s)),
            Err(ReadError::UnknownWallet(_)) => Ok(None),
            Err(ReadError::Storage(e)) => Err(e),
            // `new` checked the instant; anything else is a fault of the store.
            Err(e) => Err(StorageError(format!("snapshot of wallet {w}: {e}"))),
        }
    }

    /// Whether holder `id` exists at the instant (registered at or before it).
    pub fn holder_exists(&self, id: Uuid) -> Result<bool, StorageError> {
        self.reader.holder_exists_at(id, self.at)
    }

    /// The holder with this identity at the instant: one registered later is not found.
    pub fn holder_by_identity(&self, identity: &str) -> Result<Option<Uuid>, StorageError> {
        self.registered(self.reader.holder_by_identity(identity)?)
    }

    /// The holder with this email (compared case-insensitively after trimming) at the instant:
    /// one registered later is not found.
    pub fn holder_by_email(&self, email: &str) -> Result<Option<Uuid>, StorageError> {
        self.registered(self.reader.holder_by_email(email)?)
    }

    fn registered(&self, h: Option<Uuid>) -> Result<Option<Uuid>, StorageError> {
        match h {
            Some(h) if self.holder_exists(h)? => Ok(Some(h)),
            _ => Ok(None),
        }
    }

    /// The wallet with this UUID as of the instant.
    pub fn wallet_by_uuid(&self, id: Uuid) -> Result<Option<WalletSnapshot>, StorageError> {
        match self.reader.wallet_number(id)? {
            Some(w) => self.wallet(w),
            None => Ok(None),
        }
    }
}

/// Why [`answer`] produced no HTTP answer at all (`walletctl view` exits 2).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UsageError {
    /// The vendor name is not one of [`VENDORS`].
    #[error("unknown vendor {0:?}: expected one of clevertap, juicyway, cashfree, cryptofuse")]
    UnknownVendor(String),
    /// The request is not what the vendor's request type can be (not a JSON object, a missing
    /// or mistyped field, an unknown field) and the vendor documents no error for it.
    #[error("{vendor} request: {message}")]
    BadRequest {
        /// The vendor asked.
        vendor: &'static str,
        /// What is wrong with the request.
        message: String,
    },
    /// The instant is not representable.
    #[error("invalid_time: {0}")]
    InvalidTime(String),
    /// I/O or corruption met while reading.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The answer could not be serialized (a bug: every body is plain data).
    #[error("cannot serialize the answer: {0}")]
    Render(String),
}

impl UsageError {
    /// The SPEC §7 code: `invalid_command` for an unknown vendor or a malformed request,
    /// `invalid_time`, or `storage` (which includes a body that could not be serialized, a bug).
    pub fn code(&self) -> crate::ErrorCode {
        use crate::ErrorCode;
        match self {
            UsageError::UnknownVendor(_) | UsageError::BadRequest { .. } => {
                ErrorCode::InvalidCommand
            }
            UsageError::InvalidTime(_) => ErrorCode::InvalidTime,
            UsageError::Storage(_) | UsageError::Render(_) => ErrorCode::Storage,
        }
    }
}

/// Answers `vendor`'s get-wallet request given as JSON text, as of `as_of` (default: the
/// reader's now). Returns the HTTP status and the body as compact JSON text in the vendor's
/// field order. Vendor errors (400, 404) are answers, not `Err`.
pub fn answer(
    reader: &Reader,
    vendor: &str,
    request_json: &str,
    as_of: Option<DateTime<Utc>>,
) -> Result<(u16, String), UsageError> {
    // The vendor is checked before anything is read, so a typo never touches the store.
    let vendor: &'static str = VENDORS
        .iter()
        .copied()
        .find(|v| *v == vendor)
        .ok_or_else(|| UsageError::UnknownVendor(vendor.to_string()))?;
    let src = Source::new(reader, as_of)?;
    let usage = |message: String| UsageError::BadRequest { vendor, message };
    match vendor {
        "clevertap" => {
            let req: clevertap::Request = parse_request(request_json).map_err(usage)?;
            let (status, body) = clevertap::answer(&src, &req)?;
            Ok((status, render(&body)?))
        }
        "juicyway" => {
            let req: juicyway::Request = parse_request(request_json).map_err(usage)?;
            let (status, body) = juicyway::answer(&src, &req)?;
            Ok((status, render(&body)?))
        }
        "cashfree" => {
            // Cashfree's request is a JSON body, and it documents a 400 for a bad one.
            let (status, body) = match cashfree::Request::from_json(request_json) {
                Ok(req) => cashfree::answer(&src, &req)?,
                Err(bad) => (400, cashfree::Response::Error(bad)),
            };
            Ok((status, render(&body)?))
        }
        "cryptofuse" => {
            let req: cryptofuse::Request = parse_request(request_json).map_err(usage)?;
            let (status, body) = cryptofuse::answer(&src, &req)?;
            Ok((status, render(&body)?))
        }
        _ => Err(UsageError::UnknownVendor(vendor.to_string())),
    }
}

/// Parses a request type strictly: a JSON object (serde would also take an array for a
/// struct), without unknown, repeated or mistyped fields.
fn parse_request<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, String> {
    if !text.trim_start().starts_with('{') {
        return Err("the request must be a JSON object".into());
    }
    serde_json::from_str(text).map_err(|e| e.to_string())
}

/// `null` reads as `false` (an optional flag given as null is not set).
fn bool_or_null<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    Ok(Option::<bool>::deserialize(d)?.unwrap_or(false))
}

fn render<T: Serialize>(body: &T) -> Result<String, UsageError> {
    serde_json::to_string(body).map_err(|e| UsageError::Render(e.to_string()))
}

// ---------------------------------------------------------------------------------------------
// Shared value types and formatting

/// An exact decimal written as a JSON **number** in plain notation without trailing zeros
/// (`129.526`, `0`, `70`): never through a float. Deserializes exactly from a JSON number too.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Number(pub Decimal);

impl fmt::Display for Number {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0.normalize(), f)
    }
}

impl Serialize for Number {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let raw = RawValue::from_string(self.to_string()).map_err(serde::ser::Error::custom)?;
        raw.serialize(s)
    }
}

impl<'de> Deserialize<'de> for Number {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Number, D::Error> {
        let raw: Box<RawValue> = Deserialize::deserialize(d)?;
        let text = raw.get();
        if !text.starts_with(|c: char| c == '-' || c.is_ascii_digit()) {
            return Err(serde::de::Error::custom(format!(
                "expected a JSON number, found {text}"
            )));
        }
        Decimal::from_str_exact(text)
            .or_else(|_| Decimal::from_scientific(text))
            .map(|d| Number(d.normalize()))
            .map_err(|e| serde::de::Error::custom(format!("number {text}: {e}")))
    }
}

/// A figure as a string with at least `min_places` decimal places (`"0.00"`, `"1500.75"`,
/// `"0.025"`).
pub fn amount_string(d: Decimal, min_places: u32) -> String {
    // Padded as text: `Decimal::rescale` cannot add places to a 29-digit mantissa.
    let mut out = d.normalize().to_string();
    let places = out.split_once('.').map_or(0, |(_, f)| f.len()) as u32;
    if places >= min_places {
        return out;
    }
    if places == 0 {
        out.push('.');
    }
    out.extend(std::iter::repeat_n('0', (min_places - places) as usize));
    out
}

/// RFC 3339 in UTC with whole seconds and `Z` (`2025-07-24T08:08:07Z`); finer digits are cut.
pub fn rfc3339_seconds(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// RFC 3339 in UTC with milliseconds and `Z` (`2025-03-15T14:30:00.000Z`); finer digits are cut.
pub fn rfc3339_millis(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// A UUID as a client writes it in a path or query: 32 hex digits, any case, either plain or
/// hyphenated 8-4-4-4-12. Braced and URN forms are not accepted.
pub fn parse_uuid_text(s: &str) -> Option<Uuid> {
    let plain = s.len() == 32 && s.bytes().all(|b| b.is_ascii_hexdigit());
    let hyphenated = s.len() == 36
        && s.bytes().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_hexdigit(),
        });
    if plain || hyphenated {
        Uuid::try_parse(s).ok()
    } else {
        None
    }
}

/// A wallet's first pocket: the one single-balance vendors show. A wallet without pockets
/// cannot be opened (a program has at least one), so its absence is corruption.
fn first_pocket(s: &WalletSnapshot) -> Result<&crate::snapshot::PocketSnapshot, StorageError> {
    s.pockets
        .first()
        .ok_or_else(|| StorageError(format!("wallet {} has no pockets", s.wallet)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn units(units: u128, scale: u32) -> Number {
        Number(units_to_decimal(units, scale))
    }

    #[test]
    fn numbers_print_exactly_and_parse_back() {
        let n = units(129_526, 3);
        assert_eq!(serde_json::to_string(&n).unwrap(), "129.526");
        assert_eq!(serde_json::to_string(&units(0, 18)).unwrap(), "0");
        assert_eq!(serde_json::to_string(&units(129_000, 3)).unwrap(), "129");
        let max = units(crate::limits::MAX_UNITS, 18);
        let text = serde_json::to_string(&max).unwrap();
        assert_eq!(text, "79228162514.264337593543950335");
        assert_eq!(serde_json::from_str::<Number>(&text).unwrap(), max);
        assert!(serde_json::from_str::<Number>("\"1\"").is_err());
        assert_eq!(
            serde_json::from_str::<Number>("1.50").unwrap(),
            units(15, 1)
        );
    }

    #[test]
    fn amount_strings_have_at_least_the_places_asked_for() {
        let a = |u: u128, scale: u32| amount_string(units_to_decimal(u, scale), 2);
        assert_eq!(a(0, 8), "0.00");
        assert_eq!(a(2_500_000, 8), "0.025");
        assert_eq!(a(150075, 2), "1500.75");
        assert_eq!(a(15, 0), "15.00");
        assert_eq!(
            a(crate::limits::MAX_UNITS, 0),
            "79228162514264337593543950335.00"
        );
    }

    #[test]
    fn uuid_text_forms() {
        let u = "37b08803-c1af-4e10-849f-530264bac7f8";
        assert_eq!(parse_uuid_text(u).unwrap().to_string(), u);
        assert_eq!(
            parse_uuid_text("37B08803C1AF4E10849F530264BAC7F8")
                .unwrap()
                .to_string(),
            u
        );
        for bad in [
            "",
            "37b08803c1af4e10849f530264bac7f",
            "{37b08803-c1af-4e10-849f-530264bac7f8}",
            "urn:uuid:37b08803-c1af-4e10-849f-530264bac7f8",
            "37b08803-c1af4e10-849f-530264bac7f8-",
            "37b08803-c1af-4e10-849f-530264bac7fg",
            "é7b08803-c1af-4e10-849f-530264bac7f",
        ] {
            assert_eq!(parse_uuid_text(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn timestamps_in_vendor_precision() {
        let t = Instant::parse("t", "2025-03-15T14:30:00.123456789Z")
            .unwrap()
            .to_datetime();
        assert_eq!(rfc3339_seconds(t), "2025-03-15T14:30:00Z");
        assert_eq!(rfc3339_millis(t), "2025-03-15T14:30:00.123Z");
        let t = Instant::parse("t", "2025-03-15T16:30:00+02:00")
            .unwrap()
            .to_datetime();
        assert_eq!(rfc3339_millis(t), "2025-03-15T14:30:00.000Z");
    }
}

/// A vendor's answer body: its success body or its error body, serialized bare. To read one back
/// use [`Response::from_body`]: the HTTP status says which it is (an untagged derive could not
/// read exact numbers).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(untagged)]
pub enum Response<S, E> {
    /// A 200 answer.
    Success(S),
    /// A 4xx or 5xx answer.
    Error(E),
}

impl<S: serde::de::DeserializeOwned, E: serde::de::DeserializeOwned> Response<S, E> {
    /// Reads a body back given its HTTP status: 200 is a success, anything else an error.
    pub fn from_body(status: u16, body: &str) -> serde_json::Result<Self> {
        if status == 200 {
            serde_json::from_str(body).map(Response::Success)
        } else {
            serde_json::from_str(body).map(Response::Error)
        }
    }
}
