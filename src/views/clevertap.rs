//! CleverTap "Get Wallet Details" (`GET /1/promo/wallets?objectId=|email=|identity=`), SPEC §8.
//!
//! The user is found by `objectId` (holder UUID), then `email`, then `identity`: the first
//! present parameter that resolves to a holder wins. Answer: one record per non-closed wallet of
//! the holder, ordered by program id then wallet number, with the first pocket's figures as JSON
//! numbers. Nobody found: 400 `Invalid identity`.

use super::{Number, Source, first_pocket, parse_uuid_text};
use crate::error::StorageError;
use crate::model::Status;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use uuid::Uuid;

/// The query parameters. Absent and JSON `null` are the same; an empty value resolves nobody.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Request {
    /// Holder UUID: 32 hex digits, any case, hyphens accepted.
    #[serde(rename = "objectId", default, skip_serializing_if = "Option::is_none")]
    pub object_id: Option<String>,
    /// Compared case-insensitively after trimming.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// The holder's identity, exact (case-sensitive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<String>,
}

/// `{"status":"success","records":[…]}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Success {
    /// Always `"success"`.
    pub status: String,
    /// One per wallet of the holder, by program.
    pub records: Vec<Record>,
}

/// One wallet, fields in the order of CleverTap's sample.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Record {
    /// The program id.
    pub wallet_id: u64,
    /// The first pocket's redeemed figure.
    pub total_redeemed_points: Number,
    /// The first pocket's credited figure.
    pub total_credited_points: Number,
    /// The first pocket's balance.
    pub active_points: Number,
    /// The wallet's name.
    pub wallet_name: String,
    /// The first pocket's promised figure.
    pub total_promised_points: Number,
    /// The program's unit.
    pub loyalty_points_name: String,
    /// The first pocket's expired figure.
    pub expired_points: Number,
}

/// `{"status":"fail","error":…,"code":…}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    /// Always `"fail"`.
    pub status: String,
    /// What went wrong.
    pub error: String,
    /// The HTTP status.
    pub code: u16,
}

impl Failure {
    fn new(code: u16, error: &str) -> Failure {
        Failure {
            status: "fail".into(),
            error: error.into(),
            code,
        }
    }
    /// 400: no parameter resolves to a user.
    pub fn invalid_identity() -> Failure {
        Failure::new(400, "Invalid identity")
    }
    /// 401, for the HTTP layer's authentication.
    pub fn invalid_credentials() -> Failure {
        Failure::new(401, "Invalid credentials")
    }
    /// 500, for the HTTP layer when the store fails.
    pub fn system_error() -> Failure {
        Failure::new(
            500,
            "Request couldn't be processed due to a system error. Try again.",
        )
    }
}

/// The body: a success or a failure.
/// The body of an answer: [`super::Response`] with this vendor's success and error types.
pub type Response = super::Response<Success, Failure>;

/// The holder the request names, trying `objectId`, `email`, `identity` in that order.
pub fn resolve(src: &Source, req: &Request) -> Result<Option<Uuid>, StorageError> {
    // Each look-up is at the source's instant: a holder registered later is nobody yet.
    if let Some(id) = req.object_id.as_deref().and_then(parse_uuid_text)
        && src.holder_exists(id)?
    {
        return Ok(Some(id));
    }
    if let Some(email) = req.email.as_deref()
        && !email.trim().is_empty()
        && let Some(h) = src.holder_by_email(email)?
    {
        return Ok(Some(h));
    }
    if let Some(identity) = req.identity.as_deref()
        && !identity.is_empty()
        && let Some(h) = src.holder_by_identity(identity)?
    {
        return Ok(Some(h));
    }
    Ok(None)
}

/// Answers the request as of the source's instant.
pub fn answer(src: &Source, req: &Request) -> Result<(u16, Response), StorageError> {
    let Some(holder) = resolve(src, req)? else {
        let f = Failure::invalid_identity();
        return Ok((f.code, Response::Error(f)));
    };
    let mut wallets = Vec::new();
    for w in src.reader().numbers_of(holder)? {
        // A wallet opened after the instant is not there yet; a closed one is not shown.
        if let Some(s) = src.wallet(w)?
            && s.status != Status::Closed
        {
            wallets.push(s);
        }
    }
    wallets.sort_by_key(|s| (s.program, s.number));
    let mut units: HashMap<u64, String> = HashMap::new();
    let mut records = Vec::with_capacity(wallets.len());
    for s in &wallets {
        let unit = match units.get(&s.program) {
            Some(u) => u.clone(),
            None => {
                let p = src.reader().program(s.program)?.ok_or_else(|| {
                    StorageError(format!(
                        "wallet {} names program {}, which is missing",
                        s.wallet, s.program
                    ))
                })?;
                units.insert(s.program, p.unit.clone());
                p.unit
            }
        };
        let p = first_pocket(s)?;
        let f = p.figures();
        records.push(Record {
            wallet_id: s.program,
            total_redeemed_points: Number(f.redeemed),
            total_credited_points: Number(f.credited),
            active_points: Number(f.balance),
            wallet_name: s.name.clone(),
            total_promised_points: Number(f.promised),
            loyalty_points_name: unit,
            expired_points: Number(f.expired),
        });
    }
    Ok((
        200,
        Response::Success(Success {
            status: "success".into(),
            records,
        }),
    ))
}
