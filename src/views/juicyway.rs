//! Juicyway-style bank wallet `GET /wallets/{id}` (`bank-get-wallet.txt`), SPEC §8.
//!
//! `{"data":{…}}` with the fields in the sample's (alphabetical) order: the first pocket's
//! balance as a JSON number, linked payment methods, and the lifecycle events only. An unknown
//! or malformed id is 404 `not_found`.

use super::{Number, Source, first_pocket, parse_uuid_text, rfc3339_seconds};
use crate::error::StorageError;
use crate::model::Status;
use crate::snapshot::WalletSnapshot;
use serde::{Deserialize, Serialize};

/// The path parameter, plus the `mask` option.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Request {
    /// The wallet UUID (plain or hyphenated, any case).
    pub id: String,
    /// Show each `account_number` as `******` + its last 4 digits.
    #[serde(default, deserialize_with = "super::bool_or_null")]
    pub mask: bool,
}

/// `{"data":{…}}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Success {
    /// The wallet.
    pub data: Wallet,
}

/// The wallet, fields in the order of Juicyway's sample.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Wallet {
    /// The first pocket's UUID.
    pub account_id: String,
    /// The first pocket's balance.
    pub balance: Balance,
    /// The holder's UUID.
    pub customer_id: String,
    /// Lifecycle events, oldest first.
    pub events: Vec<Event>,
    /// The wallet's UUID.
    pub id: String,
    /// Linked bank accounts, oldest first.
    pub payment_methods: Vec<PaymentMethod>,
    /// The wallet's status.
    pub status: WalletStatus,
}

/// An amount in a currency.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Balance {
    /// The first pocket's balance.
    pub amount: Number,
    /// The first pocket's asset.
    pub currency: String,
}

/// One lifecycle event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// `create`, `freeze`, `unfreeze` or `delete`.
    pub action: String,
    /// The event's UUID.
    pub id: String,
    /// RFC 3339, whole seconds, `Z`.
    pub inserted_at: String,
    /// The reason given with the command.
    pub reason: Option<String>,
    /// The wallet's UUID.
    pub wallet_id: String,
}

/// A linked bank account.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentMethod {
    /// The account holder's name.
    pub account_name: String,
    /// The account number, masked when the request asked.
    pub account_number: String,
    /// The account's type.
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

/// A wallet's status as Juicyway names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WalletStatus {
    /// Active.
    Active,
    /// Frozen.
    Frozen,
    /// A closed wallet.
    Deleted,
}

impl From<Status> for WalletStatus {
    fn from(s: Status) -> Self {
        match s {
            Status::Active => WalletStatus::Active,
            Status::Frozen => WalletStatus::Frozen,
            Status::Closed => WalletStatus::Deleted,
        }
    }
}

/// `{"error":{"code":…,"message":…}}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// The error's code and message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    /// Always `not_found`.
    pub code: String,
    /// What went wrong.
    pub message: String,
}

impl ErrorBody {
    /// 404: unknown or malformed id.
    pub fn not_found() -> ErrorBody {
        ErrorBody {
            error: ErrorDetail {
                code: "not_found".into(),
                message: "Wallet not found".into(),
            },
        }
    }
}

/// The body of an answer: [`super::Response`] with this vendor's success and error types.
pub type Response = super::Response<Success, ErrorBody>;

/// `******` + the last 4 characters; a number of 4 characters or fewer is hidden entirely.
pub fn mask_account_number(n: &str) -> String {
    let chars: Vec<char> = n.chars().collect();
    if chars.len() <= 4 {
        "******".to_string()
    } else {
        let last: String = chars[chars.len() - 4..].iter().collect();
        format!("******{last}")
    }
}

/// The body for a wallet snapshot.
pub fn render(s: &WalletSnapshot, mask: bool) -> Result<Success, StorageError> {
    let p = first_pocket(s)?;
    let wallet_id = s.wallet.to_string();
    Ok(Success {
        data: Wallet {
            account_id: p.uuid.to_string(),
            balance: Balance {
                amount: Number(p.figures().balance),
                currency: p.asset.clone(),
            },
            customer_id: s.holder.to_string(),
            events: s
                .lifecycle
                .iter()
                .map(|l| Event {
                    action: l.action.as_str().to_string(),
                    id: l.id.to_string(),
                    inserted_at: rfc3339_seconds(l.at),
                    reason: l.reason.clone(),
                    wallet_id: wallet_id.clone(),
                })
                .collect(),
            id: wallet_id.clone(),
            payment_methods: s
                .payment_methods
                .iter()
                .map(|m| PaymentMethod {
                    account_name: m.account_name.clone(),
                    account_number: if mask {
                        mask_account_number(&m.account_number)
                    } else {
                        m.account_number.clone()
                    },
                    account_type: m.account_type.clone(),
                    address: m.address.clone(),
                    bank_address: m.bank_address.clone(),
                    bank_code: m.bank_code.clone(),
                    bank_name: m.bank_name.clone(),
                })
                .collect(),
            status: s.status.into(),
        },
    })
}

/// Answers the request as of the source's instant.
pub fn answer(src: &Source, req: &Request) -> Result<(u16, Response), StorageError> {
    let snapshot = match parse_uuid_text(&req.id) {
        Some(id) => src.wallet_by_uuid(id)?,
        None => None,
    };
    match snapshot {
        Some(s) => Ok((200, Response::Success(render(&s, req.mask)?))),
        None => Ok((404, Response::Error(ErrorBody::not_found()))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masking_keeps_the_last_four_characters() {
        assert_eq!(mask_account_number("3515200757"), "******0757");
        assert_eq!(mask_account_number("12345"), "******2345");
        assert_eq!(mask_account_number("1234"), "******");
        assert_eq!(mask_account_number(""), "******");
        assert_eq!(mask_account_number("ab€dé12"), "******dé12");
    }
}
