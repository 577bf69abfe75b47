//! The typed command API (SPEC §3). A [`Request`] is one command with its instant and optional
//! idempotency key; [`Command::Batch`] nests requests. The JSON form is parsed by [`crate::json`].
//!
//! Every struct derives `Default` so callers write only the fields they use:
//!
//! ```
//! use wallet_ledger::command::{Command, Credit, Request};
//! use rust_decimal::Decimal;
//! let wallet = uuid::Uuid::nil();
//! let req = Request::new(Command::Credit(Credit {
//!     wallet,
//!     amount: Decimal::new(1250, 2),
//!     lot: Some("L1".into()),
//!     ..Default::default()
//! }));
//! assert_eq!(req.command.op(), "credit");
//! ```

use crate::model::{Order, PaymentMethod};
use bincode::{Decode, Encode};
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use uuid::Uuid;

/// One command, when it takes effect, and its idempotency key.
#[derive(Clone, Debug, PartialEq)]
pub struct Request {
    /// The instant the command takes effect; `None` means the ledger's clock.
    pub at: Option<DateTime<Utc>>,
    /// Idempotency key (≤ 128 bytes). Not allowed on commands inside a batch.
    pub key: Option<String>,
    pub command: Command,
}

impl Request {
    pub fn new(command: Command) -> Request {
        Request {
            at: None,
            key: None,
            command,
        }
    }
    pub fn at(mut self, at: DateTime<Utc>) -> Request {
        self.at = Some(at);
        self
    }
    pub fn key(mut self, key: impl Into<String>) -> Request {
        self.key = Some(key.into());
        self
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum Command {
    DefineProgram(DefineProgram),
    RegisterHolder(RegisterHolder),
    OpenWallet(OpenWallet),
    Credit(Credit),
    Activate(Activate),
    ReverseCredit(ReverseCredit),
    Redeem(Redeem),
    Refund(Refund),
    Expire(Expire),
    Hold(Hold),
    Capture(Capture),
    Release(Release),
    Freeze(Lifecycle),
    Unfreeze(Lifecycle),
    Close(Lifecycle),
    LinkPaymentMethod(LinkPaymentMethod),
    IssueCard(IssueCard),
    Sweep,
    Batch(Vec<Request>),
}

impl Command {
    /// The `op` name of SPEC §9.
    pub fn op(&self) -> &'static str {
        match self {
            Command::DefineProgram(_) => "define_program",
            Command::RegisterHolder(_) => "register_holder",
            Command::OpenWallet(_) => "open_wallet",
            Command::Credit(_) => "credit",
            Command::Activate(_) => "activate",
            Command::ReverseCredit(_) => "reverse_credit",
            Command::Redeem(_) => "redeem",
            Command::Refund(_) => "refund",
            Command::Expire(_) => "expire",
            Command::Hold(_) => "hold",
            Command::Capture(_) => "capture",
            Command::Release(_) => "release",
            Command::Freeze(_) => "freeze",
            Command::Unfreeze(_) => "unfreeze",
            Command::Close(_) => "close",
            Command::LinkPaymentMethod(_) => "link_payment_method",
            Command::IssueCard(_) => "issue_card",
            Command::Sweep => "sweep",
            Command::Batch(_) => "batch",
        }
    }

    /// The wallet the command is about, if any.
    pub fn wallet(&self) -> Option<Uuid> {
        match self {
            Command::OpenWallet(c) => c.wallet,
            Command::Credit(c) => Some(c.wallet),
            Command::Activate(c) => Some(c.wallet),
            Command::ReverseCredit(c) => Some(c.wallet),
            Command::Redeem(c) => Some(c.wallet),
            Command::Refund(c) => Some(c.wallet),
            Command::Expire(c) => Some(c.wallet),
            Command::Hold(c) => Some(c.wallet),
            Command::Capture(c) => Some(c.wallet),
            Command::Release(c) => Some(c.wallet),
            Command::Freeze(c) | Command::Unfreeze(c) | Command::Close(c) => Some(c.wallet),
            Command::LinkPaymentMethod(c) => Some(c.wallet),
            Command::IssueCard(c) => Some(c.wallet),
            _ => None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Default, Encode, Decode)]
pub struct PocketSpec {
    pub pocket: String,
    pub name: String,
    pub kind: String,
    pub asset: String,
    pub scale: u32,
}

#[derive(Clone, Debug, PartialEq, Default)]
pub struct DefineProgram {
    pub program: u64,
    pub name: String,
    pub unit: String,
    pub order: Order,
    pub pockets: Vec<PocketSpec>,
}

#[derive(Clone, Debug, PartialEq, Default)]
pub struct RegisterHolder {
    /// Generated (v4) when absent.
    pub holder: Option<Uuid>,
    pub identity: Option<String>,
    pub email: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Default)]
pub struct OpenWallet {
    /// Generated (v7) when absent.
    pub wallet: Option<Uuid>,
    pub holder: Uuid,
    pub program: u64,
    pub name: Option<String>,
    pub external_id: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Default)]
pub struct Credit {
    pub wallet: Uuid,
    pub pocket: Option<String>,
    pub amount: Decimal,
    /// Assigned (`lot-N`) when absent.
    pub lot: Option<String>,
    pub activates_at: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
}

#[derive(Clone, Debug, PartialEq, Default)]
pub struct Activate {
    pub wallet: Uuid,
    pub pocket: Option<String>,
    pub lot: String,
}

#[derive(Clone, Debug, PartialEq, Default)]
pub struct ReverseCredit {
    pub wallet: Uuid,
    pub pocket: Option<String>,
    pub lot: String,
    /// Default: all of the lot's free value.
    pub amount: Option<Decimal>,
}

#[derive(Clone, Debug, PartialEq, Default)]
pub struct Redeem {
    pub wallet: Uuid,
    pub pocket: Option<String>,
    pub amount: Decimal,
    /// Assigned (`redemption-N`) when absent.
    pub redemption: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Default)]
pub struct Refund {
    pub wallet: Uuid,
    pub pocket: Option<String>,
    pub redemption: String,
    /// Default: everything not yet refunded.
    pub amount: Option<Decimal>,
}

#[derive(Clone, Debug, PartialEq, Default)]
pub struct Expire {
    pub wallet: Uuid,
    pub pocket: Option<String>,
    /// Default: all available.
    pub amount: Option<Decimal>,
}

#[derive(Clone, Debug, PartialEq, Default)]
pub struct Hold {
    pub wallet: Uuid,
    pub pocket: Option<String>,
    pub amount: Decimal,
    /// Assigned (`hold-N`) when absent.
    pub hold: Option<String>,
    pub expires_at: Option<DateTime<Utc>>,
}

#[derive(Clone, Debug, PartialEq, Default)]
pub struct Capture {
    pub wallet: Uuid,
    pub pocket: Option<String>,
    pub hold: String,
    /// Default: the whole hold.
    pub amount: Option<Decimal>,
    /// Default: the hold id.
    pub redemption: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Default)]
pub struct Release {
    pub wallet: Uuid,
    pub pocket: Option<String>,
    pub hold: String,
}

/// `freeze`, `unfreeze` and `close`.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Lifecycle {
    pub wallet: Uuid,
    pub reason: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Default)]
pub struct LinkPaymentMethod {
    pub wallet: Uuid,
    pub method: PaymentMethodSpec,
}

/// The payment method as submitted.
pub type PaymentMethodSpec = PaymentMethod;

#[derive(Clone, Debug, PartialEq, Default)]
pub struct IssueCard {
    pub wallet: Uuid,
    pub card: String,
    pub masked_pan: Option<String>,
    pub status: Option<String>,
}

/// What a successful command did: the ids it used or assigned and where its events sit in the
/// log. Serializes to exactly the result objects `walletctl apply` prints (without `line` and
/// `ok`), ids as strings and the instant in RFC 3339.
#[derive(Clone, Debug, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct Receipt {
    /// The command's `op` (SPEC §9).
    pub op: String,
    /// The program defined.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub program: Option<u64>,
    /// The holder registered (given or generated).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub holder: Option<Uuid>,
    /// The wallet the command was about (given or, for `open_wallet`, generated).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wallet: Option<Uuid>,
    /// The pocket the command moved value in.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pocket: Option<String>,
    /// The lot credited, activated or reversed (given or assigned, `lot-N`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lot: Option<String>,
    /// The hold placed, captured or released.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hold: Option<String>,
    /// The redemption made, captured into or refunded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redemption: Option<String>,
    /// The card issued.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub card: Option<String>,
    /// When the command took effect.
    #[serde(with = "crate::model::rfc3339")]
    pub at: DateTime<Utc>,
    /// Global log positions of the first and last event appended (time-driven transitions
    /// recorded before the command included); absent when nothing was appended (`sweep` with
    /// nothing due).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_position: Option<u64>,
    /// See `first_position`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_position: Option<u64>,
    /// Number of events appended.
    pub events: u64,
    /// Receipts of a batch's commands, in order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub commands: Vec<Receipt>,
    /// True when this is the stored receipt of an earlier command with the same key.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub replayed: bool,
}
