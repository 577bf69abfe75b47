//! The JSON command format (SPEC §9): one command per line, `"op"` plus the fields of §3.
//!
//! The parser is strict and total: unknown or repeated fields, wrong types and oversize lines
//! are `invalid_command`; amounts are taken from the raw JSON text (string or number) and parsed
//! exactly, never through a float; nothing panics and nothing allocates beyond the line's size.
//! Errors come in SPEC §7 order: structure and ids, then amounts, then times.
//!
//! [`canonical`] prints a request back in one deterministic form (sorted fields, normalized
//! amounts, UTC times): the idempotency fingerprint is taken over it, so `"10"`, `10` and `10.0`
//! are the same amount.

use crate::command::*;
use crate::domain::decide::{check_amounts, check_structure};
use crate::error::{CommandError, ErrorCode};
use crate::limits::MAX_LINE_BYTES;
use crate::model::{
    Instant, Order, ParsedAmount, PaymentMethod, classify_amount, parse_uuid, quoted,
};
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::de::{Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use std::fmt;

fn invalid(msg: impl Into<String>) -> CommandError {
    CommandError::new(ErrorCode::InvalidCommand, msg)
}

/// A JSON object with its values kept raw, refusing repeated keys.
struct RawObject<'a>(Vec<(String, &'a RawValue)>);

impl<'de: 'a, 'a> serde::Deserialize<'de> for RawObject<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = RawObject<'a>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<M: MapAccess<'de>>(self, mut m: M) -> Result<Self::Value, M::Error> {
                let mut out: Vec<(String, &'a RawValue)> = Vec::new();
                while let Some((k, v)) = m.next_entry::<String, &'a RawValue>()? {
                    if out.iter().any(|(e, _)| *e == k) {
                        return Err(serde::de::Error::custom(format!(
                            "field `{k}` appears twice"
                        )));
                    }
                    out.push((k, v));
                }
                Ok(RawObject(out))
            }
        }
        d.deserialize_map(V(std::marker::PhantomData))
    }
}

/// Deferred errors of later §7 steps, reported only if the structure is sound, and the
/// amounts no `Decimal` can hold, which belong to later steps still.
#[derive(Default)]
struct Deferred {
    amount: Option<CommandError>,
    time: Option<CommandError>,
    /// Index 0: the command itself; index i + 1: item i of a batch.
    notes: Vec<Option<ParsedAmount>>,
}

/// Amounts a parsed line spelled exactly but a `Decimal` cannot hold, by command: index 0 is the
/// line's command, index i + 1 item i of a batch. The request carries `1` in their place.
pub type AmountNotes = Vec<Option<ParsedAmount>>;

struct Fields<'a> {
    what: String,
    fields: Vec<(String, &'a RawValue)>,
    used: Vec<bool>,
}

impl<'a> Fields<'a> {
    fn parse(what: &str, raw: &'a str) -> Result<Fields<'a>, CommandError> {
        let obj: RawObject<'a> = serde_json::from_str(raw)
            .map_err(|e| invalid(format!("{what} is not a JSON object: {e}")))?;
        let n = obj.0.len();
        Ok(Fields {
            what: what.to_string(),
            fields: obj.0,
            used: vec![false; n],
        })
    }

    fn raw(&mut self, name: &str) -> Option<&'a RawValue> {
        let i = self.fields.iter().position(|(k, _)| k == name)?;
        self.used[i] = true;
        let v = self.fields[i].1;
        // JSON null means absent.
        (v.get() != "null").then_some(v)
    }

    fn finish(&self) -> Result<(), CommandError> {
        if let Some(i) = self.used.iter().position(|u| !u) {
            return Err(invalid(format!(
                "{}: unknown field `{}`",
                self.what, self.fields[i].0
            )));
        }
        Ok(())
    }

    fn opt_str(&mut self, name: &str) -> Result<Option<String>, CommandError> {
        match self.raw(name) {
            None => Ok(None),
            Some(v) => serde_json::from_str::<String>(v.get())
                .map(Some)
                .map_err(|_| {
                    invalid(format!(
                        "{}: field `{name}` must be a string, not {}",
                        self.what,
                        quoted(v.get())
                    ))
                }),
        }
    }

    fn req_str(&mut self, name: &str) -> Result<String, CommandError> {
        self.opt_str(name)?
            .ok_or_else(|| invalid(format!("{}: missing field `{name}`", self.what)))
    }

    fn opt_uuid(&mut self, name: &str) -> Result<Option<uuid::Uuid>, CommandError> {
        self.opt_str(name)?
            .map(|s| parse_uuid(name, &s))
            .transpose()
    }

    fn req_uuid(&mut self, name: &str) -> Result<uuid::Uuid, CommandError> {
        let s = self.req_str(name)?;
        parse_uuid(name, &s)
    }

    /// A JSON integer; with `digit_string`, also a string of decimal digits — for ids such as
    /// program ids, which may exceed 2^53 and so cannot travel exactly as numbers through every
    /// JSON producer. Elsewhere `"7"` is a mistyped field (SPEC §7 step 1).
    fn req_u64(&mut self, name: &str, digit_string: bool) -> Result<u64, CommandError> {
        let v = self
            .raw(name)
            .ok_or_else(|| invalid(format!("{}: missing field `{name}`", self.what)))?;
        let text = v.get();
        let digits = match text.strip_prefix('"').and_then(|t| t.strip_suffix('"')) {
            Some(inner) if digit_string => inner,
            _ => text,
        };
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid(format!(
                "{}: field `{name}` must be a non-negative integer (a JSON number), not {}",
                self.what,
                quoted(text)
            )));
        }
        digits.parse::<u64>().map_err(|_| {
            invalid(format!(
                "{}: field `{name}` {} does not fit in 64 bits",
                self.what,
                quoted(text)
            ))
        })
    }

    fn req_u32(&mut self, name: &str) -> Result<u32, CommandError> {
        let v = self.req_u64(name, false)?;
        u32::try_from(v)
            .map_err(|_| invalid(format!("{}: field `{name}` {v} is too large", self.what)))
    }

    /// An amount: a JSON string or number, parsed exactly from its text. A bad value is
    /// deferred (step 2); the placeholder keeps the structure checks going.
    fn amount(&mut self, name: &str, d: &mut Deferred) -> Result<Option<Decimal>, CommandError> {
        let Some(v) = self.raw(name) else {
            return Ok(None);
        };
        let text = v.get();
        let s: String = if text.starts_with('"') {
            serde_json::from_str(text).map_err(|_| invalid(format!("{}: bad string", self.what)))?
        } else if text.starts_with(|c: char| c == '-' || c.is_ascii_digit()) {
            text.to_string()
        } else {
            return Err(invalid(format!(
                "{}: field `{name}` must be a decimal string or number, not {}",
                self.what,
                quoted(text)
            )));
        };
        match classify_amount(name, &s) {
            Ok(ParsedAmount::Exact(a)) => Ok(Some(a)),
            Ok(unrepresentable) => {
                d.notes[0] = Some(unrepresentable);
                Ok(Some(Decimal::ONE))
            }
            Err(e) => {
                d.amount.get_or_insert(e);
                Ok(Some(Decimal::ONE))
            }
        }
    }

    fn req_amount(&mut self, name: &str, d: &mut Deferred) -> Result<Decimal, CommandError> {
        self.amount(name, d)?
            .ok_or_else(|| invalid(format!("{}: missing field `{name}`", self.what)))
    }

    fn time(
        &mut self,
        name: &str,
        d: &mut Deferred,
    ) -> Result<Option<DateTime<Utc>>, CommandError> {
        let Some(s) = self.opt_str(name)? else {
            return Ok(None);
        };
        match Instant::parse(name, &s) {
            Ok(i) => Ok(Some(i.to_datetime())),
            Err(e) => {
                d.time.get_or_insert(e);
                Ok(Some(DateTime::<Utc>::UNIX_EPOCH))
            }
        }
    }
}

/// Parses one command line. On failure, returns the line's `key` if one could be read, so the
/// caller can answer step 0 (idempotency) first.
///
/// An amount no `Decimal` can hold (more than 28 places, or beyond 2^96 − 1) is `invalid_amount`
/// here, since the typed request cannot carry it; [`crate::Ledger::execute_line`] uses
/// [`parse_line_noted`] instead and reports it at the step SPEC §7 assigns it.
pub fn parse_line(line: &str) -> Result<Request, (Option<String>, CommandError)> {
    let (req, notes) = parse_line_noted(line)?;
    for (i, n) in notes.iter().enumerate() {
        if let Some(ParsedAmount::TooPrecise(t) | ParsedAmount::TooLarge(t)) = n {
            let e = CommandError::new(
                ErrorCode::InvalidAmount,
                format!("amount {} cannot be held by a Decimal", quoted(t)),
            );
            return Err((req.key.clone(), if i == 0 { e } else { e.at_index(i - 1) }));
        }
    }
    Ok(req)
}

/// [`parse_line`], returning the unrepresentable amounts beside the request instead of failing.
#[doc(hidden)]
pub fn parse_line_noted(
    line: &str,
) -> Result<(Request, AmountNotes), (Option<String>, CommandError)> {
    if line.len() > MAX_LINE_BYTES {
        return Err((
            None,
            invalid(format!(
                "line of {} bytes exceeds the limit of {MAX_LINE_BYTES}",
                line.len()
            )),
        ));
    }
    let mut d = Deferred {
        notes: vec![None],
        ..Deferred::default()
    };
    let mut f = Fields::parse("command", line).map_err(|e| (None, e))?;
    let key = f.opt_str("key").ok().flatten();
    let r = (|| {
        let req = request(&mut f, &mut d, false)?;
        // Step 1 on the typed request (ids, templates, batch shape), then the deferred steps.
        check_structure(&req, false)?;
        if let Some(e) = d.amount.take() {
            return Err(e);
        }
        check_amounts(&req.command)?;
        if let Some(e) = d.time.take() {
            return Err(e);
        }
        Ok((req, std::mem::take(&mut d.notes)))
    })();
    r.map_err(|e| (key, e))
}

fn request(f: &mut Fields, d: &mut Deferred, in_batch: bool) -> Result<Request, CommandError> {
    let op = f.req_str("op")?;
    f.what = format!("{op} command");
    let key = f.opt_str("key")?;
    let at = f.time("at", d)?;
    let command = match op.as_str() {
        "define_program" => {
            let program = f.req_u64("program", true)?;
            let name = f.req_str("name")?;
            let unit = f.req_str("unit")?;
            let order = match f.opt_str("order")?.as_deref() {
                None | Some("earliest_expiry") => Order::EarliestExpiry,
                Some("earliest_issuance") => Order::EarliestIssuance,
                Some(o) => {
                    return Err(invalid(format!(
                        "order {} is neither \"earliest_expiry\" nor \"earliest_issuance\"",
                        quoted(o)
                    )));
                }
            };
            let raw = f
                .raw("pockets")
                .ok_or_else(|| invalid("define_program command: missing field `pockets`"))?;
            let items: Vec<&RawValue> = serde_json::from_str(raw.get()).map_err(|_| {
                invalid("define_program command: `pockets` must be an array of objects")
            })?;
            let mut pockets = Vec::with_capacity(items.len().min(crate::limits::MAX_POCKETS + 1));
            for (i, item) in items.iter().enumerate() {
                if i > crate::limits::MAX_POCKETS {
                    break; // check_structure reports the count.
                }
                let mut p = Fields::parse(&format!("pockets[{i}]"), item.get())?;
                let spec = PocketSpec {
                    pocket: p.req_str("pocket")?,
                    name: p.req_str("name")?,
                    kind: p.req_str("kind")?,
                    asset: p.req_str("asset")?,
                    scale: p.req_u32("scale")?,
                };
                p.finish()?;
                pockets.push(spec);
            }
            Command::DefineProgram(DefineProgram {
                program,
                name,
                unit,
                order,
                pockets,
            })
        }
        "register_holder" => Command::RegisterHolder(RegisterHolder {
            holder: f.opt_uuid("holder")?,
            identity: f.opt_str("identity")?,
            email: f.opt_str("email")?,
        }),
        "open_wallet" => Command::OpenWallet(OpenWallet {
            wallet: f.opt_uuid("wallet")?,
            holder: f.req_uuid("holder")?,
            program: f.req_u64("program", true)?,
            name: f.opt_str("name")?,
            external_id: f.opt_str("external_id")?,
        }),
        "credit" => Command::Credit(Credit {
            wallet: f.req_uuid("wallet")?,
            pocket: f.opt_str("pocket")?,
            amount: f.req_amount("amount", d)?,
            lot: f.opt_str("lot")?,
            activates_at: f.time("activates_at", d)?,
            expires_at: f.time("expires_at", d)?,
        }),
        "activate" => Command::Activate(Activate {
            wallet: f.req_uuid("wallet")?,
            pocket: f.opt_str("pocket")?,
            lot: f.req_str("lot")?,
        }),
        "reverse_credit" => Command::ReverseCredit(ReverseCredit {
            wallet: f.req_uuid("wallet")?,
            pocket: f.opt_str("pocket")?,
            lot: f.req_str("lot")?,
            amount: f.amount("amount", d)?,
        }),
        "redeem" => Command::Redeem(Redeem {
            wallet: f.req_uuid("wallet")?,
            pocket: f.opt_str("pocket")?,
            amount: f.req_amount("amount", d)?,
            redemption: f.opt_str("redemption")?,
        }),
        "refund" => Command::Refund(Refund {
            wallet: f.req_uuid("wallet")?,
            pocket: f.opt_str("pocket")?,
            redemption: f.req_str("redemption")?,
            amount: f.amount("amount", d)?,
        }),
        "expire" => Command::Expire(Expire {
            wallet: f.req_uuid("wallet")?,
            pocket: f.opt_str("pocket")?,
            amount: f.amount("amount", d)?,
        }),
        "hold" => Command::Hold(Hold {
            wallet: f.req_uuid("wallet")?,
            pocket: f.opt_str("pocket")?,
            amount: f.req_amount("amount", d)?,
            hold: f.opt_str("hold")?,
            expires_at: f.time("expires_at", d)?,
        }),
        "capture" => Command::Capture(Capture {
            wallet: f.req_uuid("wallet")?,
            pocket: f.opt_str("pocket")?,
            hold: f.req_str("hold")?,
            amount: f.amount("amount", d)?,
            redemption: f.opt_str("redemption")?,
        }),
        "release" => Command::Release(Release {
            wallet: f.req_uuid("wallet")?,
            pocket: f.opt_str("pocket")?,
            hold: f.req_str("hold")?,
        }),
        "freeze" | "unfreeze" | "close" => {
            let l = Lifecycle {
                wallet: f.req_uuid("wallet")?,
                reason: f.opt_str("reason")?,
            };
            match op.as_str() {
                "freeze" => Command::Freeze(l),
                "unfreeze" => Command::Unfreeze(l),
                _ => Command::Close(l),
            }
        }
        "link_payment_method" => {
            let wallet = f.req_uuid("wallet")?;
            let raw = f
                .raw("method")
                .ok_or_else(|| invalid("link_payment_method command: missing field `method`"))?;
            let mut m = Fields::parse("method", raw.get())?;
            let method = PaymentMethod {
                account_name: m.req_str("account_name")?,
                account_number: m.req_str("account_number")?,
                account_type: m.req_str("account_type")?,
                address: m.opt_str("address")?,
                bank_address: m.opt_str("bank_address")?,
                bank_code: m.req_str("bank_code")?,
                bank_name: m.req_str("bank_name")?,
            };
            m.finish()?;
            Command::LinkPaymentMethod(LinkPaymentMethod { wallet, method })
        }
        "issue_card" => Command::IssueCard(IssueCard {
            wallet: f.req_uuid("wallet")?,
            card: f.req_str("card")?,
            masked_pan: f.opt_str("masked_pan")?,
            status: f.opt_str("status")?,
        }),
        "sweep" => Command::Sweep,
        "batch" => {
            if in_batch {
                return Err(invalid("a batch cannot contain a batch"));
            }
            let raw = f
                .raw("commands")
                .ok_or_else(|| invalid("batch command: missing field `commands`"))?;
            let items: Vec<&RawValue> = serde_json::from_str(raw.get())
                .map_err(|_| invalid("batch command: `commands` must be an array of objects"))?;
            if items.len() > crate::limits::MAX_BATCH_COMMANDS {
                return Err(invalid(format!(
                    "a batch of {} commands exceeds the limit of {}",
                    items.len(),
                    crate::limits::MAX_BATCH_COMMANDS
                )));
            }
            let mut reqs = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                // Each item defers its own errors, so they keep the item's index.
                let mut di = Deferred {
                    notes: vec![None],
                    ..Deferred::default()
                };
                let r = (|| {
                    let mut g = Fields::parse(&format!("commands[{i}]"), item.get())?;
                    let r = request(&mut g, &mut di, true)?;
                    g.finish()?;
                    Ok(r)
                })();
                reqs.push(r.map_err(|e: CommandError| e.at_index(i))?);
                if d.amount.is_none() {
                    d.amount = di.amount.map(|e| e.at_index(i));
                }
                if d.time.is_none() {
                    d.time = di.time.map(|e| e.at_index(i));
                }
                d.notes.push(di.notes.swap_remove(0));
            }
            Command::Batch(reqs)
        }
        other => {
            return Err(invalid(format!(
                "unknown op {}; see SPEC §3 for the commands",
                quoted(other)
            )));
        }
    };
    f.finish()?;
    Ok(Request { at, key, command })
}

// ---- canonical form -------------------------------------------------------------------------

fn put(m: &mut Map<String, Value>, k: &str, v: impl Into<Value>) {
    m.insert(k.to_string(), v.into());
}

fn put_opt<T: Into<Value>>(m: &mut Map<String, Value>, k: &str, v: Option<T>) {
    if let Some(v) = v {
        put(m, k, v);
    }
}

fn amt(d: &Decimal) -> String {
    d.normalize().to_string()
}

fn time(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

/// The request as a JSON value in canonical form (sorted keys, normalized amounts, UTC times).
pub fn to_value(req: &Request) -> Value {
    let mut m = Map::new();
    put(&mut m, "op", req.command.op());
    put_opt(&mut m, "at", req.at.as_ref().map(time));
    put_opt(&mut m, "key", req.key.clone());
    match &req.command {
        Command::DefineProgram(c) => {
            put(&mut m, "program", c.program);
            put(&mut m, "name", c.name.clone());
            put(&mut m, "unit", c.unit.clone());
            put(&mut m, "order", c.order.as_str());
            let ps: Vec<Value> = c
                .pockets
                .iter()
                .map(|p| {
                    serde_json::json!({"pocket": p.pocket, "name": p.name, "kind": p.kind,
                        "asset": p.asset, "scale": p.scale})
                })
                .collect();
            put(&mut m, "pockets", ps);
        }
        Command::RegisterHolder(c) => {
            put_opt(&mut m, "holder", c.holder.map(|u| u.to_string()));
            put_opt(&mut m, "identity", c.identity.clone());
            put_opt(&mut m, "email", c.email.clone());
        }
        Command::OpenWallet(c) => {
            put_opt(&mut m, "wallet", c.wallet.map(|u| u.to_string()));
            put(&mut m, "holder", c.holder.to_string());
            put(&mut m, "program", c.program);
            put_opt(&mut m, "name", c.name.clone());
            put_opt(&mut m, "external_id", c.external_id.clone());
        }
        Command::Credit(c) => {
            put(&mut m, "wallet", c.wallet.to_string());
            put_opt(&mut m, "pocket", c.pocket.clone());
            put(&mut m, "amount", amt(&c.amount));
            put_opt(&mut m, "lot", c.lot.clone());
            put_opt(&mut m, "activates_at", c.activates_at.as_ref().map(time));
            put_opt(&mut m, "expires_at", c.expires_at.as_ref().map(time));
        }
        Command::Activate(c) => {
            put(&mut m, "wallet", c.wallet.to_string());
            put_opt(&mut m, "pocket", c.pocket.clone());
            put(&mut m, "lot", c.lot.clone());
        }
        Command::ReverseCredit(c) => {
            put(&mut m, "wallet", c.wallet.to_string());
            put_opt(&mut m, "pocket", c.pocket.clone());
            put(&mut m, "lot", c.lot.clone());
            put_opt(&mut m, "amount", c.amount.as_ref().map(amt));
        }
        Command::Redeem(c) => {
            put(&mut m, "wallet", c.wallet.to_string());
            put_opt(&mut m, "pocket", c.pocket.clone());
            put(&mut m, "amount", amt(&c.amount));
            put_opt(&mut m, "redemption", c.redemption.clone());
        }
        Command::Refund(c) => {
            put(&mut m, "wallet", c.wallet.to_string());
            put_opt(&mut m, "pocket", c.pocket.clone());
            put(&mut m, "redemption", c.redemption.clone());
            put_opt(&mut m, "amount", c.amount.as_ref().map(amt));
        }
        Command::Expire(c) => {
            put(&mut m, "wallet", c.wallet.to_string());
            put_opt(&mut m, "pocket", c.pocket.clone());
            put_opt(&mut m, "amount", c.amount.as_ref().map(amt));
        }
        Command::Hold(c) => {
            put(&mut m, "wallet", c.wallet.to_string());
            put_opt(&mut m, "pocket", c.pocket.clone());
            put(&mut m, "amount", amt(&c.amount));
            put_opt(&mut m, "hold", c.hold.clone());
            put_opt(&mut m, "expires_at", c.expires_at.as_ref().map(time));
        }
        Command::Capture(c) => {
            put(&mut m, "wallet", c.wallet.to_string());
            put_opt(&mut m, "pocket", c.pocket.clone());
            put(&mut m, "hold", c.hold.clone());
            put_opt(&mut m, "amount", c.amount.as_ref().map(amt));
            put_opt(&mut m, "redemption", c.redemption.clone());
        }
        Command::Release(c) => {
            put(&mut m, "wallet", c.wallet.to_string());
            put_opt(&mut m, "pocket", c.pocket.clone());
            put(&mut m, "hold", c.hold.clone());
        }
        Command::Freeze(c) | Command::Unfreeze(c) | Command::Close(c) => {
            put(&mut m, "wallet", c.wallet.to_string());
            put_opt(&mut m, "reason", c.reason.clone());
        }
        Command::LinkPaymentMethod(c) => {
            put(&mut m, "wallet", c.wallet.to_string());
            put(
                &mut m,
                "method",
                serde_json::to_value(&c.method).expect("plain struct"),
            );
        }
        Command::IssueCard(c) => {
            put(&mut m, "wallet", c.wallet.to_string());
            put(&mut m, "card", c.card.clone());
            put_opt(&mut m, "masked_pan", c.masked_pan.clone());
            put_opt(&mut m, "status", c.status.clone());
        }
        Command::Sweep => {}
        Command::Batch(items) => {
            put(
                &mut m,
                "commands",
                items.iter().map(to_value).collect::<Vec<_>>(),
            );
        }
    }
    Value::Object(m)
}

/// The canonical text of a request without its `key` and without any `at`: what idempotency
/// fingerprints. The instants are compared separately, and only where both the stored and the
/// new request gave one (SPEC §6: an `at` left to the clock is not compared); see [`instants`].
#[doc(hidden)]
pub fn canonical(req: &Request) -> String {
    let mut v = to_value(req);
    if let Value::Object(m) = &mut v {
        m.shift_remove("key");
        m.shift_remove("at");
        if let Some(Value::Array(items)) = m.get_mut("commands") {
            for item in items {
                if let Value::Object(im) = item {
                    im.shift_remove("at");
                }
            }
        }
    }
    v.to_string()
}

/// The instants a request gave, as submitted: its own, then each batch item's (`None` where left
/// out). Compared position by position where both sides have one.
#[doc(hidden)]
pub fn instants(req: &Request) -> Vec<Option<i64>> {
    let at = |r: &Request| r.at.and_then(|t| t.timestamp_nanos_opt());
    let mut v = vec![at(req)];
    if let Command::Batch(items) = &req.command {
        v.extend(items.iter().map(at));
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    const W: &str = "550e8400-e29b-41d4-a716-446655440000";

    fn err(line: &str) -> CommandError {
        parse_line(line).unwrap_err().1
    }

    #[test]
    fn numbers_and_strings_are_both_exact_amounts() {
        let a = parse_line(&format!(
            r#"{{"op":"redeem","wallet":"{W}","amount":30.5}}"#
        ))
        .unwrap();
        let b = parse_line(&format!(
            r#"{{"op":"redeem","wallet":"{W}","amount":"30.50"}}"#
        ))
        .unwrap();
        assert_eq!(canonical(&a), canonical(&b));
        let big = parse_line(&format!(
            r#"{{"op":"redeem","wallet":"{W}","amount":0.1000000000000000055511151231257827}}"#
        ));
        // More than 28 places is refused rather than rounded.
        assert_eq!(big.unwrap_err().1.code, ErrorCode::InvalidAmount);
        let r = parse_line(&format!(
            r#"{{"op":"redeem","wallet":"{W}","amount":12345678901234567.125}}"#
        ))
        .unwrap();
        let Command::Redeem(c) = r.command else {
            panic!()
        };
        assert_eq!(c.amount.to_string(), "12345678901234567.125");
    }

    #[test]
    fn errors_follow_the_spec_order() {
        // invalid_command beats invalid_amount beats invalid_time.
        let e = err(r#"{"op":"redeem","wallet":"nope","amount":"abc","at":"yesterday"}"#);
        assert_eq!(e.code, ErrorCode::InvalidCommand);
        assert!(e.message.contains("nope"), "{}", e.message);
        let e = err(&format!(
            r#"{{"op":"redeem","wallet":"{W}","amount":"abc","at":"yesterday"}}"#
        ));
        assert_eq!(e.code, ErrorCode::InvalidAmount);
        let e = err(&format!(
            r#"{{"op":"redeem","wallet":"{W}","amount":"1","at":"yesterday"}}"#
        ));
        assert_eq!(e.code, ErrorCode::InvalidTime);
        assert!(e.message.contains("yesterday"));
    }

    #[test]
    fn malformed_lines_are_invalid_command() {
        for line in [
            "",
            "not json",
            "[]",
            r#"{"op":"fly"}"#,
            r#"{"op":"credit"}"#,
            r#"{"op":"credit","wallet":"550e8400-e29b-41d4-a716-446655440000","amount":"1","colour":"red"}"#,
            r#"{"op":"credit","wallet":"550e8400-e29b-41d4-a716-446655440000","amount":true}"#,
            r#"{"op":"sweep","op":"sweep"}"#,
            r#"{"op":"batch","commands":[{"op":"batch","commands":[]}]}"#,
            r#"{"op":"batch","commands":[{"op":"sweep","key":"k"}]}"#,
            r#"{"op":"define_program","program":-1,"name":"n","unit":"u","pockets":[]}"#,
        ] {
            assert_eq!(err(line).code, ErrorCode::InvalidCommand, "{line}");
        }
    }

    #[test]
    fn the_key_is_recovered_from_a_bad_line() {
        let (k, e) = parse_line(r#"{"op":"credit","key":"k1"}"#).unwrap_err();
        assert_eq!(k.as_deref(), Some("k1"));
        assert_eq!(e.code, ErrorCode::InvalidCommand);
    }
}
