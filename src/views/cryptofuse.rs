//! Cryptofuse `GET /wallets/{id}/` (`crypto-get-wallet.txt`), SPEC §8.
//!
//! One balance per pocket: `amount` = total, `pending_amount` = pending, `available_balance` =
//! available, as strings with at least two decimal places. Times are RFC 3339 with
//! milliseconds. An id that is not a UUID is 400 `invalid_request`; an unknown one 404
//! `not_found`.

use super::{Source, amount_string, parse_uuid_text, rfc3339_millis};
use crate::error::StorageError;
use crate::snapshot::WalletSnapshot;
use serde::{Deserialize, Serialize};

/// The path parameter.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Request {
    /// The wallet UUID (plain or hyphenated, any case).
    pub id: String,
}

/// The success body, fields in the order of Cryptofuse's sample.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Success {
    /// The wallet's UUID.
    pub id: String,
    /// The wallet's name.
    pub name: String,
    /// The wallet's external id.
    pub external_id: Option<String>,
    /// `w_` + the wallet number as 12 lowercase hex digits.
    pub wallet_id: String,
    /// When the wallet was opened: RFC 3339, milliseconds, `Z`.
    pub created: String,
    /// Time of the wallet's last event at or before the instant.
    pub updated: String,
    /// One per pocket.
    pub balances: Vec<Balance>,
}

/// One pocket's figures, as strings with at least two decimal places.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Balance {
    /// The pocket's asset.
    pub currency: String,
    /// Total: balance + promised.
    pub amount: String,
    /// Pending: promised + on hold.
    pub pending_amount: String,
    /// Available.
    pub available_balance: String,
}

/// `{"error":{"code":…,"message":…,"details":{}}}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// The error's code, message and (empty) details.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    /// `invalid_request`, `not_found` or `server_error`.
    pub code: String,
    /// What went wrong.
    pub message: String,
    /// Always empty.
    pub details: Details,
}

/// Always `{}`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Details {}

impl ErrorBody {
    fn new(code: &str, message: &str) -> ErrorBody {
        ErrorBody {
            error: ErrorDetail {
                code: code.into(),
                message: message.into(),
                details: Details {},
            },
        }
    }
    /// 400: the id is not a UUID.
    pub fn invalid_request() -> ErrorBody {
        ErrorBody::new("invalid_request", "Invalid wallet ID format")
    }
    /// 404: no wallet has that id.
    pub fn not_found() -> ErrorBody {
        ErrorBody::new("not_found", "Wallet not found")
    }
    /// 500, for the HTTP layer when the store fails.
    pub fn server_error() -> ErrorBody {
        ErrorBody::new("server_error", "Internal server error")
    }
}

/// The body of an answer: [`super::Response`] with this vendor's success and error types.
pub type Response = super::Response<Success, ErrorBody>;

/// `w_` + `number` as 12 lowercase hex digits (more digits past 2^48 − 1, never truncated).
pub fn system_wallet_id(number: u64) -> String {
    format!("w_{number:012x}")
}

/// The body for a wallet snapshot.
pub fn render(s: &WalletSnapshot) -> Success {
    Success {
        id: s.wallet.to_string(),
        name: s.name.clone(),
        external_id: s.external_id.clone(),
        wallet_id: system_wallet_id(s.number),
        created: rfc3339_millis(s.created_at),
        updated: rfc3339_millis(s.updated_at),
        balances: s
            .pockets
            .iter()
            .map(|p| {
                let f = p.figures();
                Balance {
                    currency: p.asset.clone(),
                    amount: amount_string(f.total, 2),
                    pending_amount: amount_string(f.pending, 2),
                    available_balance: amount_string(f.available, 2),
                }
            })
            .collect(),
    }
}

/// Answers the request as of the source's instant.
pub fn answer(src: &Source, req: &Request) -> Result<(u16, Response), StorageError> {
    let Some(id) = parse_uuid_text(&req.id) else {
        return Ok((400, Response::Error(ErrorBody::invalid_request())));
    };
    match src.wallet_by_uuid(id)? {
        Some(s) => Ok((200, Response::Success(render(&s)))),
        None => Ok((404, Response::Error(ErrorBody::not_found()))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_wallet_ids_are_12_lowercase_hex_digits() {
        assert_eq!(system_wallet_id(1), "w_000000000001");
        assert_eq!(system_wallet_id(0xabc123def456), "w_abc123def456");
        assert_eq!(system_wallet_id(u64::MAX), "w_ffffffffffffffff");
    }
}
