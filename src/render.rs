//! JSON renderings shared by `walletctl` and applications: the `show` shape of SPEC §9, history
//! entries, and command results. Amounts are exact decimal strings without trailing zeros.

use crate::command::Receipt;
use crate::error::CommandError;
use crate::history::HistoryEntry;
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

/// A wallet's history as JSON values, one per event: each entry as it serializes (see
/// [`HistoryEntry`]).
pub fn history(entries: &[HistoryEntry]) -> Vec<Value> {
    entries
        .iter()
        .map(|h| serde_json::to_value(h).expect("a history entry is plain data"))
        .collect()
}
