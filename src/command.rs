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
    /// What to do.
    pub command: Command,
}

impl Request {
    /// `command`, taking effect at the ledger's clock, without a key.
    pub fn new(command: Command) -> Request {
        Request {
            at: None,
            key: None,
            command,
        }
    }
    /// Takes effect at `at` instead of the ledger's clock (SPEC §4: not before the wallet's
    /// last event).
    pub fn at(mut self, at: DateTime<Utc>) -> Request {
        self.at = Some(at);
        self
    }
    /// With an idempotency key: a retry with the same key and command answers the stored
    /// receipt (`replayed: true`) instead of running again; the same key with a different
    /// command is `idempotency_conflict`.
    pub fn key(mut self, key: impl Into<String>) -> Request {
        self.key = Some(key.into());
        self
    }
}

/// Every command of SPEC §3. Each typed struct converts into one with `.into()`.
#[derive(Clone, Debug, PartialEq)]
pub enum Command {
    /// Defines a program: its unit, consumption order and pockets.
    DefineProgram(DefineProgram),
    /// Registers a holder.
    RegisterHolder(RegisterHolder),
    /// Opens a wallet for a holder under a program.
    OpenWallet(OpenWallet),
    /// Credits a new lot, active now or promised until `activates_at`.
    Credit(Credit),
    /// Activates a promised lot early.
    Activate(Activate),
    /// Takes back a lot's promised or unspent value.
    ReverseCredit(ReverseCredit),
    /// Spends available value, consuming lots in the program's order.
    Redeem(Redeem),
    /// Gives back (part of) a redemption.
    Refund(Refund),
    /// Forfeits available value.
    Expire(Expire),
    /// Reserves available value.
    Hold(Hold),
    /// Turns (part of) a hold into a redemption and releases the rest.
    Capture(Capture),
    /// Ends a hold, giving its value back.
    Release(Release),
    /// `active` → `frozen`.
    Freeze(Lifecycle),
    /// `frozen` → `active`.
    Unfreeze(Lifecycle),
    /// Closes an empty wallet for good.
    Close(Lifecycle),
    /// Links a bank account to a wallet.
    LinkPaymentMethod(LinkPaymentMethod),
    /// Issues a card on a wallet.
    IssueCard(IssueCard),
    /// Records every transition due by `at` (lots activating or expiring, holds expiring).
    /// Reads derive them anyway; a sweep only makes them events.
    Sweep,
    /// Several commands applied all or nothing, in one transaction.
    Batch(Vec<Request>),
}

impl Command {
    /// Every `op` name of SPEC §3, as [`Command::op`] gives them.
    pub const OPS: [&'static str; 19] = [
        "define_program",
        "register_holder",
        "open_wallet",
        "credit",
        "activate",
        "reverse_credit",
        "redeem",
        "refund",
        "expire",
        "hold",
        "capture",
        "release",
        "freeze",
        "unfreeze",
        "close",
        "link_payment_method",
        "issue_card",
        "sweep",
        "batch",
    ];

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

/// Typed commands convert into a [`Command`] and into a [`Request`] taking effect now, so
/// `ledger.execute(&Credit { .. }.into())` needs no wrapping.
macro_rules! into_command {
    ($($t:ident),*) => {$(
        impl From<$t> for Command {
            fn from(c: $t) -> Command {
                Command::$t(c)
            }
        }
        impl From<$t> for Request {
            fn from(c: $t) -> Request {
                Request::new(Command::$t(c))
            }
        }
    )*};
}
into_command!(
    DefineProgram,
    RegisterHolder,
    OpenWallet,
    Credit,
    Activate,
    ReverseCredit,
    Redeem,
    Refund,
    Expire,
    Hold,
    Capture,
    Release,
    LinkPaymentMethod,
    IssueCard
);

impl From<Command> for Request {
    fn from(c: Command) -> Request {
        Request::new(c)
    }
}

/// One pocket of a program being defined.
#[derive(Clone, Debug, PartialEq, Default, Encode, Decode)]
pub struct PocketSpec {
    /// Its key within the program (`"main"`); commands name it in `pocket`.
    pub pocket: String,
    /// Display name.
    pub name: String,
    /// Kind, free text the vendor views print (`"CASH"`, `"POINTS"`).
    pub kind: String,
    /// The asset amounts are in (`"USD"`, `"BTC"`).
    pub asset: String,
    /// Decimal places amounts may have, at most [`crate::limits::MAX_SCALE`].
    pub scale: u32,
}

/// `define_program`: a program is the template wallets are opened from.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct DefineProgram {
    /// The program's id, chosen by the application.
    pub program: u64,
    /// Display name.
    pub name: String,
    /// The unit's name (CleverTap prints it as the points' name).
    pub unit: String,
    /// The order lots are consumed in (SPEC §4.3).
    pub order: Order,
    /// Its pockets; the first is the default for commands that name none.
    pub pockets: Vec<PocketSpec>,
}

/// `register_holder`: the owner of wallets.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct RegisterHolder {
    /// Generated (v4) when absent.
    pub holder: Option<Uuid>,
    /// The application's identity for the holder, unique across holders.
    pub identity: Option<String>,
    /// Email, unique across holders compared case-insensitively.
    pub email: Option<String>,
}

/// `open_wallet`: a wallet for a holder, with the program's pockets, all zero.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct OpenWallet {
    /// Generated (v7) when absent.
    pub wallet: Option<Uuid>,
    /// The holder who owns it.
    pub holder: Uuid,
    /// The program it is opened under.
    pub program: u64,
    /// Display name.
    pub name: Option<String>,
    /// The application's own id for it, unique across wallets.
    pub external_id: Option<String>,
}

/// `credit`: a new lot of value, active from `activates_at` (default: now) until `expires_at`
/// (default: never). A lot that activates later is **promised** until then.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Credit {
    /// The wallet credited.
    pub wallet: Uuid,
    /// Default: the program's first pocket.
    pub pocket: Option<String>,
    /// A positive amount with at most the pocket's scale in decimal places.
    pub amount: Decimal,
    /// Assigned (`lot-N`) when absent.
    pub lot: Option<String>,
    /// When the lot becomes active; after `at` it is promised until then.
    pub activates_at: Option<DateTime<Utc>>,
    /// When what is left of the lot expires; must be after both `at` and `activates_at`.
    pub expires_at: Option<DateTime<Utc>>,
}

/// `activate`: a promised lot becomes active now.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Activate {
    /// The wallet.
    pub wallet: Uuid,
    /// Default: the program's first pocket.
    pub pocket: Option<String>,
    /// The promised lot.
    pub lot: String,
}

/// `reverse_credit`: takes back (part of) a lot's free value, promised or active.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct ReverseCredit {
    /// The wallet.
    pub wallet: Uuid,
    /// Default: the program's first pocket.
    pub pocket: Option<String>,
    /// The lot.
    pub lot: String,
    /// Default: all of the lot's free value.
    pub amount: Option<Decimal>,
}

/// `redeem`: spends available value, taking it from lots in the program's order.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Redeem {
    /// The wallet.
    pub wallet: Uuid,
    /// Default: the program's first pocket.
    pub pocket: Option<String>,
    /// At most the pocket's available figure.
    pub amount: Decimal,
    /// Assigned (`redemption-N`) when absent.
    pub redemption: Option<String>,
}

/// `refund`: gives back (part of) a redemption to the lots it came from, last consumed first;
/// value whose lot has expired by then expires at once instead.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Refund {
    /// The wallet.
    pub wallet: Uuid,
    /// Default: the program's first pocket.
    pub pocket: Option<String>,
    /// The redemption (or captured hold) refunded.
    pub redemption: String,
    /// Default: everything not yet refunded.
    pub amount: Option<Decimal>,
}

/// `expire`: forfeits available value now, in consumption order.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Expire {
    /// The wallet.
    pub wallet: Uuid,
    /// Default: the program's first pocket.
    pub pocket: Option<String>,
    /// Default: all available.
    pub amount: Option<Decimal>,
}

/// `hold`: reserves available value until captured, released or `expires_at`.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Hold {
    /// The wallet.
    pub wallet: Uuid,
    /// Default: the program's first pocket.
    pub pocket: Option<String>,
    /// At most the pocket's available figure.
    pub amount: Decimal,
    /// Assigned (`hold-N`) when absent.
    pub hold: Option<String>,
    /// When the hold releases itself if still open (default: never).
    pub expires_at: Option<DateTime<Utc>>,
}

/// `capture`: turns (part of) an open hold into a redemption. **The rest of the hold is
/// released**: a hold is captured at most once.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Capture {
    /// The wallet.
    pub wallet: Uuid,
    /// Default: the program's first pocket.
    pub pocket: Option<String>,
    /// The open hold.
    pub hold: String,
    /// Default: the whole hold.
    pub amount: Option<Decimal>,
    /// Default: the hold id.
    pub redemption: Option<String>,
}

/// `release`: ends an open hold, giving its value back.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Release {
    /// The wallet.
    pub wallet: Uuid,
    /// Default: the program's first pocket.
    pub pocket: Option<String>,
    /// The open hold.
    pub hold: String,
}

/// `freeze`, `unfreeze` and `close` (as [`Command::Freeze`], [`Command::Unfreeze`],
/// [`Command::Close`]).
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Lifecycle {
    /// The wallet.
    pub wallet: Uuid,
    /// Why, kept with the lifecycle event (Juicyway prints it).
    pub reason: Option<String>,
}

/// `link_payment_method`: a bank account for the wallet (Juicyway `payment_methods`).
#[derive(Clone, Debug, PartialEq, Default)]
pub struct LinkPaymentMethod {
    /// The wallet.
    pub wallet: Uuid,
    /// The account.
    pub method: PaymentMethodSpec,
}

/// The payment method as submitted.
pub type PaymentMethodSpec = PaymentMethod;

/// `issue_card`: a card on the wallet (Cashfree finds wallets by card).
#[derive(Clone, Debug, PartialEq, Default)]
pub struct IssueCard {
    /// The wallet.
    pub wallet: Uuid,
    /// The card's id, unique across the ledger.
    pub card: String,
    /// The masked card number as printed.
    pub masked_pan: Option<String>,
    /// The card's status as printed.
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

#[cfg(test)]
mod tests {
    use super::*;

    /// `OPS` is exactly the names `op` gives, and each is an op the JSON parser knows.
    #[test]
    fn ops_lists_every_command() {
        let all = [
            Command::DefineProgram(Default::default()),
            Command::RegisterHolder(Default::default()),
            Command::OpenWallet(Default::default()),
            Command::Credit(Default::default()),
            Command::Activate(Default::default()),
            Command::ReverseCredit(Default::default()),
            Command::Redeem(Default::default()),
            Command::Refund(Default::default()),
            Command::Expire(Default::default()),
            Command::Hold(Default::default()),
            Command::Capture(Default::default()),
            Command::Release(Default::default()),
            Command::Freeze(Default::default()),
            Command::Unfreeze(Default::default()),
            Command::Close(Default::default()),
            Command::LinkPaymentMethod(Default::default()),
            Command::IssueCard(Default::default()),
            Command::Sweep,
            Command::Batch(Vec::new()),
        ];
        let names: Vec<&str> = all.iter().map(Command::op).collect();
        assert_eq!(names, Command::OPS);
        for op in Command::OPS {
            let e = crate::json::parse_line(&format!(r#"{{"op":"{op}"}}"#));
            if let Err((_, e)) = e {
                assert!(!e.message.contains("unknown op"), "{op}: {e}");
            }
        }
    }
}
