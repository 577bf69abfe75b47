//! Model: the ledger's vocabulary. Instants, exact amounts, ids and the small value types that
//! events and state are made of. No I/O, no policy: every function here is total and pure.
//!
//! Invariants kept here:
//! - an [`Instant`] is always a representable UTC nanosecond count (`i64`), so ordering is exact;
//! - an amount in pocket units is ≤ [`crate::limits::MAX_UNITS`], so it always prints exactly as a
//!   `Decimal` at the pocket's scale;
//! - a client id passes [`check_id`] before it reaches the domain.

use crate::error::{CommandError, ErrorCode, fail};
use crate::limits::{MAX_AMOUNT_CHARS, MAX_ID_BYTES, MAX_SCALE, MAX_TEXT_BYTES, MAX_UNITS};
use bincode::{Decode, Encode};
use chrono::{DateTime, SecondsFormat, TimeZone, Utc};
use rust_decimal::Decimal;
use std::fmt;

/// An instant: nanoseconds since the Unix epoch, UTC. Covers 1677-09-21 to 2262-04-11; a time
/// outside that range is `invalid_time`. Integer nanoseconds keep every RFC 3339 input exact.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Encode, Decode)]
pub struct Instant(pub i64);

impl Instant {
    /// Converts a chrono time; `None` when it is outside the representable range.
    pub fn from_datetime(t: DateTime<Utc>) -> Option<Instant> {
        t.timestamp_nanos_opt().map(Instant)
    }

    /// Parses RFC 3339 with an offset (`Z` or `±hh:mm`), converting to UTC.
    pub fn parse(field: &str, s: &str) -> Result<Instant, CommandError> {
        let shown = shorten(s);
        let t = DateTime::parse_from_rfc3339(s).map_err(|e| {
            CommandError::new(
                ErrorCode::InvalidTime,
                format!("{field} {shown:?} is not an RFC 3339 time with an offset ({e})"),
            )
        })?;
        Instant::from_datetime(t.with_timezone(&Utc)).ok_or_else(|| {
            CommandError::new(
                ErrorCode::InvalidTime,
                format!("{field} {shown:?} is outside 1677-09-21..2262-04-11"),
            )
        })
    }

    pub fn to_datetime(self) -> DateTime<Utc> {
        Utc.timestamp_nanos(self.0)
    }

    /// RFC 3339 in UTC with as many fractional digits as needed (`2026-01-01T00:00:00Z`).
    pub fn rfc3339(self) -> String {
        self.to_datetime()
            .to_rfc3339_opts(SecondsFormat::AutoSi, true)
    }
}

impl fmt::Display for Instant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.rfc3339())
    }
}

/// Serde for instants as the ledger prints them: RFC 3339 in UTC with `Z`, fractional seconds
/// only as many as needed (`2026-01-01T00:00:00Z`, `…00:00:00.5Z`).
pub mod rfc3339 {
    use chrono::{DateTime, SecondsFormat, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    /// `t` as the ledger prints instants.
    pub fn text(t: DateTime<Utc>) -> String {
        t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
    }

    /// Serializes `t` as the ledger prints instants.
    pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&text(*t))
    }

    /// Parses an RFC 3339 instant with an offset.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let s = String::deserialize(d)?;
        DateTime::parse_from_rfc3339(&s)
            .map(|t| t.with_timezone(&Utc))
            .map_err(serde::de::Error::custom)
    }
}

/// Lot consumption order of a program (SPEC §4.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Encode, Decode)]
pub enum Order {
    /// `expires_at` ascending, lots without expiry last; ties by credit order.
    #[default]
    EarliestExpiry,
    /// Credit order.
    EarliestIssuance,
}

impl Order {
    /// The name in the JSON command format.
    pub fn as_str(self) -> &'static str {
        match self {
            Order::EarliestExpiry => "earliest_expiry",
            Order::EarliestIssuance => "earliest_issuance",
        }
    }
}

/// One pocket template of a program.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct PocketTemplate {
    /// Key used in commands (`"gift"`, `"BTC"`).
    pub pocket: String,
    /// Display name.
    pub name: String,
    /// Free text such as `GIFT_PPI`.
    pub kind: String,
    /// Asset or currency code (`"USD"`, `"PTS"`).
    pub asset: String,
    /// Decimal places, 0..=18.
    pub scale: u32,
}

/// A program: the template wallets are opened from.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct Program {
    /// Its id.
    pub program: u64,
    /// Display name.
    pub name: String,
    /// The unit's name (CleverTap's points name).
    pub unit: String,
    /// The order lots are consumed in.
    pub order: Order,
    /// Its pockets, in order; the first is the default pocket.
    pub pockets: Vec<PocketTemplate>,
}

/// A holder: the owner of wallets.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct Holder {
    pub holder: [u8; 16],
    pub identity: Option<String>,
    /// As given (trimmed); compared case-insensitively through [`normalize_email`].
    pub email: Option<String>,
}

/// Lifecycle status of a wallet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Encode, Decode)]
pub enum Status {
    /// Open for every command.
    Active,
    /// Refuses value commands until unfrozen.
    Frozen,
    /// Closed for good.
    Closed,
}

impl Status {
    /// `"active"`, `"frozen"` or `"closed"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Active => "active",
            Status::Frozen => "frozen",
            Status::Closed => "closed",
        }
    }
}

/// A bank account linked to a wallet (Juicyway `payment_methods`).
#[derive(
    Clone, Debug, Default, PartialEq, Eq, Encode, Decode, serde::Serialize, serde::Deserialize,
)]
pub struct PaymentMethod {
    /// The account holder's name.
    pub account_name: String,
    /// The account number (Juicyway masks it in views).
    pub account_number: String,
    /// The account's type, free text (`"NUBAN"`).
    pub account_type: String,
    /// The holder's address.
    pub address: Option<String>,
    /// The bank's address.
    pub bank_address: Option<String>,
    /// The bank's code.
    pub bank_code: String,
    /// The bank's name.
    pub bank_name: String,
}

/// A card issued on a wallet (Cashfree look-ups by card).
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct Card {
    /// The card's id.
    pub card: String,
    /// The masked card number.
    pub masked_pan: Option<String>,
    /// The card's status as issued.
    pub status: Option<String>,
}

/// Lifecycle actions, as Juicyway names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Encode, Decode)]
pub enum LifecycleAction {
    /// The wallet was opened.
    Create,
    /// It was frozen.
    Freeze,
    /// It was unfrozen.
    Unfreeze,
    /// It was closed.
    Delete,
}

impl LifecycleAction {
    /// Juicyway's name for it.
    pub fn as_str(self) -> &'static str {
        match self {
            LifecycleAction::Create => "create",
            LifecycleAction::Freeze => "freeze",
            LifecycleAction::Unfreeze => "unfreeze",
            LifecycleAction::Delete => "delete",
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Ids and text

fn shorten(s: &str) -> String {
    // Messages name the offending value, but never echo a megabyte back.
    if s.len() <= 80 {
        s.to_string()
    } else {
        let mut end = 80;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}…", &s[..end])
    }
}

/// The shortened, quoted form used in messages.
pub(crate) fn quoted(s: &str) -> String {
    format!("{:?}", shorten(s))
}

/// A client id: non-empty, ≤ 64 bytes, printable (no control characters, no whitespace other than
/// the plain space inside). Violations are `invalid_command` (SPEC §7 step 1).
pub fn check_id(field: &str, s: &str) -> Result<(), CommandError> {
    if s.is_empty() {
        return fail(
            ErrorCode::InvalidCommand,
            format!("{field} must not be empty"),
        );
    }
    if s.len() > MAX_ID_BYTES {
        return fail(
            ErrorCode::InvalidCommand,
            format!(
                "{field} {} is {} bytes; the limit is {MAX_ID_BYTES}",
                quoted(s),
                s.len()
            ),
        );
    }
    if s.chars().any(|c| c.is_control()) || s.trim() != s {
        return fail(
            ErrorCode::InvalidCommand,
            format!(
                "{field} {} must be printable, without control characters or surrounding spaces",
                quoted(s)
            ),
        );
    }
    Ok(())
}

/// Free text: ≤ 256 bytes, no control characters.
pub fn check_text(field: &str, s: &str) -> Result<(), CommandError> {
    if s.len() > MAX_TEXT_BYTES {
        return fail(
            ErrorCode::InvalidCommand,
            format!(
                "{field} {} is {} bytes; the limit is {MAX_TEXT_BYTES}",
                quoted(s),
                s.len()
            ),
        );
    }
    if s.chars().any(|c| c.is_control()) {
        return fail(
            ErrorCode::InvalidCommand,
            format!("{field} {} contains control characters", quoted(s)),
        );
    }
    Ok(())
}

/// Emails are unique compared case-insensitively after trimming (SPEC §2).
pub fn normalize_email(s: &str) -> String {
    s.trim().to_lowercase()
}

// ---------------------------------------------------------------------------------------------
// Amounts

/// An amount as written: exact, or a valid positive decimal that no `Decimal` can hold.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ParsedAmount {
    Exact(Decimal),
    /// More than 28 decimal places after dropping trailing zeros: more than any pocket's scale
    /// allows, so it is `scale_exceeded` wherever it gets that far (SPEC §7 step 6).
    TooPrecise(String),
    /// Beyond 2^96 − 1 in the last place: more than any figure can hold, so it is the quantity
    /// error (or `amount_overflow` for a credit) wherever it gets that far (step 8).
    TooLarge(String),
}

/// Parses an amount in plain notation (`12`, `12.50`): ASCII digits, at most one dot with digits on
/// both sides, positive. Anything else (exponent, sign, spaces, underscores, zero) is
/// `invalid_amount`. An exact result is normalized (trailing zeros dropped).
pub fn classify_amount(field: &str, s: &str) -> Result<ParsedAmount, CommandError> {
    let bad = |why: &str| {
        CommandError::new(
            ErrorCode::InvalidAmount,
            format!(
                "{field} {} is not a positive decimal in plain notation ({why})",
                quoted(s)
            ),
        )
    };
    if s.is_empty() {
        return Err(bad("empty"));
    }
    if s.len() > MAX_AMOUNT_CHARS {
        return Err(bad("too long"));
    }
    let (int, frac) = match s.split_once('.') {
        Some((i, f)) => (i, f),
        None => (s, ""),
    };
    if int.is_empty() || (s.contains('.') && frac.is_empty()) {
        return Err(bad("digits are needed on both sides of the dot"));
    }
    if !int.bytes().all(|b| b.is_ascii_digit()) || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad("only digits and one dot are allowed"));
    }
    let frac = frac.trim_end_matches('0');
    let int = int.trim_start_matches('0');
    if int.is_empty() && frac.is_empty() {
        return Err(bad("zero"));
    }
    if frac.len() > 28 {
        return Ok(ParsedAmount::TooPrecise(s.to_string()));
    }
    let digits = format!("{int}{frac}");
    let digits = digits.trim_start_matches('0');
    // 2^96 − 1 has 29 digits; anything longer cannot be a Decimal mantissa.
    let mantissa = (digits.len() <= 29)
        .then(|| digits.parse::<u128>().ok())
        .flatten()
        .filter(|m| *m <= MAX_UNITS);
    match mantissa {
        Some(m) => Ok(ParsedAmount::Exact(Decimal::from_i128_with_scale(
            m as i128,
            frac.len() as u32,
        ))),
        None => Ok(ParsedAmount::TooLarge(s.to_string())),
    }
}

/// [`classify_amount`] for callers that need a `Decimal`: an amount no `Decimal` can hold is
/// `invalid_amount` here. (`Ledger::execute_line` instead carries it to the error SPEC §7
/// assigns it.)
#[cfg(test)]
pub fn parse_amount(field: &str, s: &str) -> Result<Decimal, CommandError> {
    match classify_amount(field, s)? {
        ParsedAmount::Exact(d) => Ok(d),
        ParsedAmount::TooPrecise(_) => fail(
            ErrorCode::InvalidAmount,
            format!("{field} {} has more than 28 decimal places", quoted(s)),
        ),
        ParsedAmount::TooLarge(_) => fail(
            ErrorCode::InvalidAmount,
            format!("{field} {} exceeds 2^96 - 1 in its last place", quoted(s)),
        ),
    }
}

/// Checks a typed amount: positive (else `invalid_amount`). Returns it normalized.
pub fn check_amount(field: &str, d: Decimal) -> Result<Decimal, CommandError> {
    if d <= Decimal::ZERO {
        return fail(
            ErrorCode::InvalidAmount,
            format!("{field} {d} is not a positive amount"),
        );
    }
    Ok(d.normalize())
}

/// An amount converted to pocket units. `Huge` is a valid decimal that exceeds
/// [`MAX_UNITS`] at the pocket's scale: debits report it as the quantity error, credits as
/// `amount_overflow` (SPEC §7 step 8), so the conversion itself never fails late.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Units {
    Fits(u128),
    Huge,
}

impl Units {
    /// For comparisons: `Huge` exceeds every stored figure.
    pub fn saturated(self) -> u128 {
        match self {
            Units::Fits(u) => u,
            Units::Huge => u128::MAX,
        }
    }
}

/// Converts a positive decimal to units at `scale`. More decimal places than `scale` (after
/// dropping trailing zeros) is `scale_exceeded`, never rounded.
pub fn to_units(field: &str, d: Decimal, scale: u32) -> Result<Units, CommandError> {
    let d = d.normalize();
    if d.scale() > scale {
        return fail(
            ErrorCode::ScaleExceeded,
            format!(
                "{field} {d} has {} decimal places; this pocket allows {scale}",
                d.scale()
            ),
        );
    }
    let mantissa = d.mantissa();
    if mantissa <= 0 {
        return fail(
            ErrorCode::InvalidAmount,
            format!("{field} {d} is not a positive amount"),
        );
    }
    let factor = 10u128.pow(scale - d.scale());
    Ok(match (mantissa as u128).checked_mul(factor) {
        Some(u) if u <= MAX_UNITS => Units::Fits(u),
        _ => Units::Huge,
    })
}

/// Units at `scale` as an exact, normalized decimal (`129.526`, `0`, `70`).
pub fn units_to_decimal(units: u128, scale: u32) -> Decimal {
    debug_assert!(units <= MAX_UNITS && scale <= MAX_SCALE);
    Decimal::from_i128_with_scale(units as i128, scale).normalize()
}

/// Units at `scale` in plain notation without trailing zeros.
pub fn format_units(units: u128, scale: u32) -> String {
    units_to_decimal(units, scale).to_string()
}

/// A pocket's figures at an instant (SPEC §5), in units at the pocket's scale. The stored five
/// are kept; `balance`, `available`, `pending` and `total` are derived so they cannot drift.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Encode, Decode)]
pub struct Figures {
    pub promised: u128,
    pub credited: u128,
    pub redeemed: u128,
    pub expired: u128,
    pub on_hold: u128,
}

impl Figures {
    /// `credited − redeemed − expired`. The invariant `redeemed + expired ≤ credited` is asserted
    /// by [`Figures::check`] wherever state changes.
    pub fn balance(&self) -> u128 {
        self.credited - self.redeemed - self.expired
    }
    pub fn available(&self) -> u128 {
        self.balance() - self.on_hold
    }
    pub fn pending(&self) -> u128 {
        self.promised + self.on_hold
    }
    pub fn total(&self) -> u128 {
        self.balance() + self.promised
    }

    /// The §5 invariants that the five stored figures must satisfy; `Err` names the broken one.
    pub fn check(&self) -> Result<(), String> {
        let spent = self
            .redeemed
            .checked_add(self.expired)
            .ok_or("redeemed + expired overflows")?;
        if spent > self.credited {
            return Err(format!(
                "redeemed {} + expired {} exceeds credited {}",
                self.redeemed, self.expired, self.credited
            ));
        }
        let balance = self.credited - spent;
        if self.on_hold > balance {
            return Err(format!(
                "on_hold {} exceeds balance {balance}",
                self.on_hold
            ));
        }
        if self.credited > MAX_UNITS || self.promised > MAX_UNITS {
            return Err("a figure exceeds the unit limit".into());
        }
        Ok(())
    }
}

/// UUID helpers: the domain stores raw bytes so records stay compact and `Encode` is derived.
pub fn uuid_bytes(u: uuid::Uuid) -> [u8; 16] {
    *u.as_bytes()
}

pub fn uuid_of(b: [u8; 16]) -> uuid::Uuid {
    uuid::Uuid::from_bytes(b)
}

/// Parses a UUID written with or without hyphens, any case. Bad ids are `invalid_command`.
pub fn parse_uuid(field: &str, s: &str) -> Result<uuid::Uuid, CommandError> {
    uuid::Uuid::try_parse(s).map_err(|_| {
        CommandError::new(
            ErrorCode::InvalidCommand,
            format!("{field} {} is not a UUID", quoted(s)),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_parse_exactly_in_plain_notation_only() {
        assert_eq!(parse_amount("a", "12.50").unwrap().to_string(), "12.5");
        assert_eq!(parse_amount("a", "007").unwrap().to_string(), "7");
        assert_eq!(
            parse_amount("a", "0.000000000000000001")
                .unwrap()
                .to_string(),
            "0.000000000000000001"
        );
        for bad in [
            "", "0", "0.00", "-1", "+1", "1e5", "1.", ".5", " 1", "1_000", "abc", "1.2.3",
        ] {
            let e = parse_amount("amount", bad).unwrap_err();
            assert_eq!(e.code, ErrorCode::InvalidAmount, "{bad:?}");
            assert!(e.message.contains("amount"), "{}", e.message);
        }
    }

    #[test]
    fn unrepresentable_amounts_are_classified_not_rejected() {
        let p = "1.".to_string() + &"0".repeat(28) + "1";
        assert_eq!(
            classify_amount("a", &p).unwrap(),
            ParsedAmount::TooPrecise(p.clone())
        );
        let big = "79228162514264337593543950336";
        assert_eq!(
            classify_amount("a", big).unwrap(),
            ParsedAmount::TooLarge(big.into())
        );
        assert_eq!(
            parse_amount("a", big).unwrap_err().code,
            ErrorCode::InvalidAmount
        );
        assert_eq!(
            classify_amount("a", "0.000").unwrap_err().code,
            ErrorCode::InvalidAmount
        );
    }

    #[test]
    fn units_convert_without_rounding() {
        let d = parse_amount("a", "30.5").unwrap();
        assert_eq!(to_units("a", d, 2).unwrap(), Units::Fits(3050));
        let e = to_units("a", parse_amount("a", "0.001").unwrap(), 2).unwrap_err();
        assert_eq!(e.code, ErrorCode::ScaleExceeded);
        assert_eq!(
            to_units(
                "a",
                parse_amount("a", "79228162514264337593543950335").unwrap(),
                1
            )
            .unwrap(),
            Units::Huge
        );
        assert_eq!(format_units(3050, 2), "30.5");
        assert_eq!(format_units(0, 2), "0");
    }

    #[test]
    fn ids_are_bounded_and_printable() {
        assert!(check_id("lot", "L1").is_ok());
        assert_eq!(
            check_id("lot", "").unwrap_err().code,
            ErrorCode::InvalidCommand
        );
        assert_eq!(
            check_id("lot", &"x".repeat(65)).unwrap_err().code,
            ErrorCode::InvalidCommand
        );
        assert_eq!(
            check_id("lot", "a\nb").unwrap_err().code,
            ErrorCode::InvalidCommand
        );
    }

    #[test]
    fn instants_parse_rfc3339_with_offset() {
        let a = Instant::parse("at", "2026-01-01T01:00:00+01:00").unwrap();
        let b = Instant::parse("at", "2026-01-01T00:00:00Z").unwrap();
        assert_eq!(a, b);
        assert_eq!(b.rfc3339(), "2026-01-01T00:00:00Z");
        assert_eq!(
            Instant::parse("at", "2026-01-01T00:00:00")
                .unwrap_err()
                .code,
            ErrorCode::InvalidTime
        );
        assert_eq!(
            Instant::parse("at", "3000-01-01T00:00:00Z")
                .unwrap_err()
                .code,
            ErrorCode::InvalidTime
        );
    }
}
