//! JSON renderings shared by `walletctl` and applications: the `show` shape of SPEC §9, history
//! entries, and command results. Amounts are exact decimal strings without trailing zeros.

use crate::command::Receipt;
use crate::domain::event::Event;
use crate::error::CommandError;
use crate::ledger::HistoryEntry;
use crate::model::{format_units, uuid_of};
use crate::snapshot::WalletSnapshot;
use serde_json::{Map, Value, json};

/// `{"wallet","status","as_of","pockets":[{"pocket","asset","promised",…,"total"}]}`.
pub fn snapshot(s: &WalletSnapshot) -> Value {
    let pockets: Vec<Value> = s
        .pockets
        .iter()
        .map(|p| {
            let f = p.figures();
            let a = |d: rust_decimal::Decimal| Value::String(d.to_string());
            json!({
                "pocket": p.pocket,
                "asset": p.asset,
                "promised": a(f.promised),
                "credited": a(f.credited),
                "redeemed": a(f.redeemed),
                "expired": a(f.expired),
                "balance": a(f.balance),
                "on_hold": a(f.on_hold),
                "available": a(f.available),
                "pending": a(f.pending),
                "total": a(f.total),
            })
        })
        .collect();
    json!({
        "wallet": s.wallet.to_string(),
        "status": s.status.as_str(),
        "as_of": crate::model::rfc3339::text(s.as_of),
        "pockets": pockets,
    })
}

/// A command's result line: `{"line":N,"ok":true,…receipt}` or
/// `{"line":N,"ok":false,"error":{"code","message"[,"index"]}}`.
pub fn result_line(line: usize, r: &Result<Receipt, CommandError>) -> Value {
    let mut m = Map::new();
    m.insert("line".into(), json!(line));
    match r {
        Ok(receipt) => {
            m.insert("ok".into(), json!(true));
            if let Value::Object(fields) = serde_json::to_value(receipt).expect("plain struct") {
                m.extend(fields);
            }
        }
        Err(e) => {
            m.insert("ok".into(), json!(false));
            m.insert("error".into(), error(e));
        }
    }
    Value::Object(m)
}

/// `{"code","message"[,"index"]}`.
pub fn error(e: &CommandError) -> Value {
    let mut err = json!({"code": e.code.as_str(), "message": e.message});
    if let Some(i) = e.index {
        err["index"] = json!(i);
    }
    err
}

/// A wallet's history as JSON values, one per event. Walking the stream in order lets every
/// entry name its lot, hold or redemption and print amounts at the pocket's scale.
pub fn history(entries: &[HistoryEntry]) -> Vec<Value> {
    use std::collections::HashMap;
    let mut pockets: Vec<(String, u32)> = Vec::new();
    let mut lots: HashMap<u32, (u16, String)> = HashMap::new();
    let mut holds: HashMap<u32, (u16, String)> = HashMap::new();
    let mut reds: HashMap<u32, (u16, String)> = HashMap::new();
    let mut out = Vec::with_capacity(entries.len());
    for h in entries {
        let key = |pockets: &Vec<(String, u32)>, p: u16| {
            pockets
                .get(p as usize)
                .map(|x| x.0.clone())
                .unwrap_or_default()
        };
        let amt = |pockets: &Vec<(String, u32)>, p: u16, u: u128| {
            Value::String(format_units(u, pockets.get(p as usize).map_or(0, |x| x.1)))
        };
        let t = |ns: i64| Value::String(crate::model::Instant(ns).rfc3339());
        let unknown = (u16::MAX, String::new());
        let mut v = match &h.event {
            Event::ProgramDefined(p) => json!({"program": p.program}),
            Event::HolderRegistered(x) => json!({"holder": uuid_of(x.holder).to_string()}),
            Event::WalletOpened {
                wallet,
                number,
                holder,
                program,
                name,
                external_id,
                pockets: ps,
                ..
            } => {
                pockets = ps
                    .iter()
                    .map(|p| (p.template.pocket.clone(), p.template.scale))
                    .collect();
                json!({"wallet": uuid_of(*wallet).to_string(), "number": number,
                    "holder": uuid_of(*holder).to_string(), "program": program, "name": name,
                    "external_id": external_id})
            }
            Event::Credited {
                pocket,
                lot,
                id,
                units,
                activates_at,
                expires_at,
            } => {
                lots.insert(*lot, (*pocket, id.clone()));
                json!({"pocket": key(&pockets, *pocket), "lot": id,
                    "amount": amt(&pockets, *pocket, *units),
                    "activates_at": t(*activates_at), "expires_at": expires_at.map(t)})
            }
            Event::Activated { lot, early } => {
                let (p, id) = lots.get(lot).unwrap_or(&unknown);
                json!({"pocket": key(&pockets, *p), "lot": id, "early": early})
            }
            Event::Reversed { lot, units } => {
                let (p, id) = lots.get(lot).unwrap_or(&unknown);
                json!({"pocket": key(&pockets, *p), "lot": id, "amount": amt(&pockets, *p, *units)})
            }
            Event::Redeemed {
                pocket,
                redemption,
                id,
                units,
            } => {
                reds.insert(*redemption, (*pocket, id.clone()));
                json!({"pocket": key(&pockets, *pocket), "redemption": id,
                    "amount": amt(&pockets, *pocket, *units)})
            }
            Event::Refunded { redemption, units } => {
                let (p, id) = reds.get(redemption).unwrap_or(&unknown);
                json!({"pocket": key(&pockets, *p), "redemption": id,
                    "amount": amt(&pockets, *p, *units)})
            }
            Event::Forfeited { pocket, units } => {
                json!({"pocket": key(&pockets, *pocket), "amount": amt(&pockets, *pocket, *units)})
            }
            Event::Expired { lot } => {
                let (p, id) = lots.get(lot).unwrap_or(&unknown);
                json!({"pocket": key(&pockets, *p), "lot": id})
            }
            Event::Held {
                pocket,
                hold,
                id,
                units,
                expires_at,
            } => {
                holds.insert(*hold, (*pocket, id.clone()));
                json!({"pocket": key(&pockets, *pocket), "hold": id,
                    "amount": amt(&pockets, *pocket, *units), "expires_at": expires_at.map(t)})
            }
            Event::Captured {
                hold,
                redemption,
                id,
                units,
            } => {
                let (p, hid) = holds.get(hold).cloned().unwrap_or(unknown.clone());
                reds.insert(*redemption, (p, id.clone()));
                json!({"pocket": key(&pockets, p), "hold": hid, "redemption": id,
                    "amount": amt(&pockets, p, *units)})
            }
            Event::Released { hold, timed_out } => {
                let (p, id) = holds.get(hold).unwrap_or(&unknown);
                json!({"pocket": key(&pockets, *p), "hold": id, "timed_out": timed_out})
            }
            Event::Lifecycle {
                action,
                reason,
                event_id,
            } => json!({"action": action.as_str(), "reason": reason,
                "id": uuid_of(*event_id).to_string()}),
            Event::PaymentMethodLinked(m) => json!({"method": m}),
            Event::CardIssued(c) => json!({"card": c.card, "masked_pan": c.masked_pan,
                "status": c.status}),
        };
        v["seq"] = json!(h.seq);
        v["position"] = json!(h.position);
        v["at"] = json!(h.at.rfc3339());
        v["event"] = json!(h.event.name());
        out.push(v);
    }
    out
}
