//! Cashfree PPI `POST /ppi/wallet/details` (`cashfree-ppi-wallet-details.txt`), SPEC §8.
//!
//! `user_id` (holder identity) is required, with exactly one of `wallet_id` (wallet
//! external_id) or `card_id`, and optionally `cf_sub_wallet_id` (a pocket number as a string)
//! to show one sub-wallet. A bad request is 400; an unknown user, wallet, card or sub-wallet,
//! or a wallet of another user, is 404. Errors are
//! `{"message":…,"code":…,"type":"invalid_request_error"}`.

use super::{Number, Source};
use crate::error::StorageError;
use crate::model::{Card as LedgerCard, Status, quoted};
use crate::snapshot::WalletSnapshot;
use serde::{Deserialize, Serialize};

/// The request body. Absent and JSON `null` are the same.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Request {
    /// The holder's identity (required).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// The wallet's external id; one of `wallet_id` and `card_id` is required.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wallet_id: Option<String>,
    /// A card issued on the wallet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub card_id: Option<String>,
    /// Only this sub-wallet (pocket number, as a string).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cf_sub_wallet_id: Option<String>,
}

impl Request {
    /// Parses a request body. A body that is not a JSON object of string fields (or names a
    /// field Cashfree does not define) is Cashfree's 400 with this error body.
    pub fn from_json(text: &str) -> Result<Request, ErrorBody> {
        super::parse_request(text)
            .map_err(|e| ErrorBody::new(format!("request body is invalid: {e}"), "request_invalid"))
    }
}

/// The success body, fields in the order of Cashfree's sample.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Success {
    /// The holder's identity.
    pub user_id: String,
    /// The program id, as a string.
    pub cf_program_id: String,
    /// The wallet's external_id (`null` when it has none; only possible when found by card).
    pub wallet_id: Option<String>,
    /// The wallet number, as a string.
    pub cf_wallet_id: String,
    /// The wallet's name.
    pub wallet_name: String,
    /// One per pocket (or the one asked for).
    pub sub_wallets: Vec<SubWallet>,
    /// Present when the wallet has a card (the one asked for, else the latest issued).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub card: Option<Card>,
}

/// One pocket, as Cashfree's sub-wallet.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubWallet {
    /// The pocket number, as a string.
    pub cf_sub_wallet_id: String,
    /// The pocket's name.
    pub name: String,
    /// The pocket's kind.
    #[serde(rename = "type")]
    pub kind: String,
    /// The wallet's status.
    pub status: SubWalletStatus,
    /// The pocket's balance.
    pub balance: Number,
    /// The pocket's available figure.
    pub available_balance: Number,
    /// The pocket's on-hold figure.
    pub funds_on_hold: Number,
}

/// A sub-wallet's status, from its wallet's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum SubWalletStatus {
    /// The wallet is active.
    Active,
    /// The wallet is frozen.
    Blocked,
    /// The wallet is closed.
    Closed,
}

impl From<Status> for SubWalletStatus {
    fn from(s: Status) -> Self {
        match s {
            Status::Active => SubWalletStatus::Active,
            Status::Frozen => SubWalletStatus::Blocked,
            Status::Closed => SubWalletStatus::Closed,
        }
    }
}

/// The card in a success body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Card {
    /// The card's id.
    pub card_id: String,
    /// The masked card number.
    pub masked_pan: Option<String>,
    /// The card's status.
    pub status: Option<String>,
}

/// `{"message":…,"code":…,"type":"invalid_request_error"}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// What went wrong.
    pub message: String,
    /// Cashfree's error code (`user_not_found`, `wallet_not_found`, `request_invalid`).
    pub code: String,
    /// Always `invalid_request_error`.
    #[serde(rename = "type")]
    pub kind: String,
}

impl ErrorBody {
    /// A 400 or 404 body with `message` and `code`.
    pub fn new(message: impl Into<String>, code: &str) -> ErrorBody {
        ErrorBody {
            message: message.into(),
            code: code.into(),
            kind: "invalid_request_error".into(),
        }
    }
}

/// The body of an answer: [`super::Response`] with this vendor's success and error types.
pub type Response = super::Response<Success, ErrorBody>;

fn bad_request(message: String) -> (u16, Response) {
    (
        400,
        Response::Error(ErrorBody::new(message, "request_invalid")),
    )
}

fn not_found(code: &str, message: String) -> (u16, Response) {
    (404, Response::Error(ErrorBody::new(message, code)))
}

/// A present, non-empty field.
fn given(v: &Option<String>) -> Option<&str> {
    v.as_deref().filter(|s| !s.is_empty())
}

/// The body for a wallet snapshot, with the requested card and sub-wallet.
pub fn render(
    user_id: &str,
    s: &WalletSnapshot,
    card: Option<&LedgerCard>,
    sub_wallet: Option<u64>,
) -> Success {
    let status = SubWalletStatus::from(s.status);
    Success {
        user_id: user_id.to_string(),
        cf_program_id: s.program.to_string(),
        wallet_id: s.external_id.clone(),
        cf_wallet_id: s.number.to_string(),
        wallet_name: s.name.clone(),
        sub_wallets: s
            .pockets
            .iter()
            .filter(|p| sub_wallet.is_none_or(|n| n == p.number))
            .map(|p| {
                let f = p.figures();
                SubWallet {
                    cf_sub_wallet_id: p.number.to_string(),
                    name: p.name.clone(),
                    kind: p.kind.clone(),
                    status,
                    balance: Number(f.balance),
                    available_balance: Number(f.available),
                    funds_on_hold: Number(f.on_hold),
                }
            })
            .collect(),
        card: card.map(|c| Card {
            card_id: c.card.clone(),
            masked_pan: c.masked_pan.clone(),
            status: c.status.clone(),
        }),
    }
}

/// The 404 `req` gets when the wallet or card it names is not one of its user's
/// (`wallet_not_found`, or `card_not_found` when it names a card). An HTTP layer that refuses a
/// credential the wallet's program answers this too, so a refusal tells no more than an unknown
/// wallet does.
pub fn wallet_not_found(req: &Request) -> ErrorBody {
    let user_id = given(&req.user_id).unwrap_or_default();
    let (code, what, id) = match given(&req.card_id) {
        Some(card) if given(&req.wallet_id).is_none() => ("card_not_found", "card_id", card),
        _ => (
            "wallet_not_found",
            "wallet_id",
            req.wallet_id.as_deref().unwrap_or_default(),
        ),
    };
    ErrorBody::new(
        format!(
            "{what} {} does not exist for user_id {}",
            quoted(id),
            quoted(user_id)
        ),
        code,
    )
}

/// Answers the request as of the source's instant.
pub fn answer(src: &Source, req: &Request) -> Result<(u16, Response), StorageError> {
    // 400s first: the request's shape, before anything is looked up.
    let Some(user_id) = given(&req.user_id) else {
        return Ok(bad_request("user_id is required".into()));
    };
    let by_card = match (given(&req.wallet_id), given(&req.card_id)) {
        (Some(_), Some(_)) => {
            return Ok(bad_request(
                "provide either wallet_id or card_id, not both".into(),
            ));
        }
        (None, None) => {
            return Ok(bad_request(
                "one of wallet_id or card_id is required".into(),
            ));
        }
        (None, Some(card)) => Some(card),
        (Some(_), None) => None,
    };
    let r = src.reader();
    // At the source's instant: a user registered later does not exist yet.
    let Some(holder) = src.holder_by_identity(user_id)? else {
        return Ok(not_found(
            "user_not_found",
            format!("user_id {} does not exist", quoted(user_id)),
        ));
    };
    // An unknown wallet or card and one of another user answer alike: nothing is disclosed.
    let wallet_missing = || Ok((404, Response::Error(wallet_not_found(req))));
    let number = match by_card {
        Some(card) => r.number_by_card(card)?,
        None => r.number_by_external(req.wallet_id.as_deref().unwrap_or_default())?,
    };
    let Some(number) = number else {
        return wallet_missing();
    };
    let Some(s) = src.wallet(number)? else {
        return wallet_missing();
    };
    if s.holder != holder {
        return wallet_missing();
    }
    // The card asked for, else the latest issued; one issued after the instant is not there.
    let card = match by_card {
        Some(id) => match s.cards.iter().find(|c| c.card == id) {
            Some(c) => Some(c),
            None => return wallet_missing(),
        },
        None => s.cards.last(),
    };
    let sub_wallet = match given(&req.cf_sub_wallet_id) {
        None => None,
        Some(id) => match s.pockets.iter().find(|p| p.number.to_string() == id) {
            Some(p) => Some(p.number),
            None => {
                return Ok(not_found(
                    "sub_wallet_not_found",
                    format!(
                        "cf_sub_wallet_id {} does not exist in this wallet",
                        quoted(id)
                    ),
                ));
            }
        },
    };
    Ok((
        200,
        Response::Success(render(user_id, &s, card, sub_wallet)),
    ))
}
