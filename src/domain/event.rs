//! Events: what happened, as stored in the log. They record intent and the values the decision
//! fixed, never allocation lists: which lots a redemption, hold or forfeit consumed follows
//! deterministically from the state and the event, so `apply` recomputes them. That keeps every
//! event record bounded (see ARCHITECTURE.md, "How allocations stay bounded").

use crate::model::{Card, Holder, LifecycleAction, Order, PaymentMethod, PocketTemplate, Program};
use bincode::{Decode, Encode};

/// One pocket as opened in a wallet: the program's template plus the ledger-assigned identities.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct OpenedPocket {
    pub template: PocketTemplate,
    pub number: u64,
    pub uuid: [u8; 16],
}

#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub enum Event {
    // Ledger stream (stream 0).
    ProgramDefined(Program),
    HolderRegistered(Holder),

    // Wallet streams.
    WalletOpened {
        wallet: [u8; 16],
        number: u64,
        holder: [u8; 16],
        program: u64,
        name: String,
        external_id: Option<String>,
        order: Order,
        pockets: Vec<OpenedPocket>,
        /// The lifecycle event id of `create`.
        event_id: [u8; 16],
    },
    Credited {
        pocket: u16,
        lot: u32,
        id: String,
        units: u128,
        activates_at: i64,
        expires_at: Option<i64>,
    },
    /// A promised lot becomes active: by time (`early == false`) or by `activate`.
    Activated {
        lot: u32,
        early: bool,
    },
    Reversed {
        lot: u32,
        units: u128,
    },
    Redeemed {
        pocket: u16,
        redemption: u32,
        id: String,
        units: u128,
    },
    Refunded {
        redemption: u32,
        units: u128,
    },
    /// The `expire` command: forfeits available value in consumption order.
    Forfeited {
        pocket: u16,
        units: u128,
    },
    /// A lot's free value expires by time.
    Expired {
        lot: u32,
    },
    Held {
        pocket: u16,
        hold: u32,
        id: String,
        units: u128,
        expires_at: Option<i64>,
    },
    Captured {
        hold: u32,
        redemption: u32,
        id: String,
        units: u128,
    },
    /// A hold ends released: by `release` or by its time-out.
    Released {
        hold: u32,
        timed_out: bool,
    },
    Lifecycle {
        action: LifecycleAction,
        reason: Option<String>,
        event_id: [u8; 16],
    },
    PaymentMethodLinked(PaymentMethod),
    CardIssued(Card),
}

impl Event {
    /// The variant index bincode writes first in the payload, for the variants an as-of read
    /// must decode (the profile changes); checked against the encoding by a unit test.
    pub const TAG_PAYMENT_METHOD_LINKED: u8 = 14;
    pub const TAG_CARD_ISSUED: u8 = 15;

    /// Short name, used by `history`.
    pub fn name(&self) -> &'static str {
        match self {
            Event::ProgramDefined(_) => "program_defined",
            Event::HolderRegistered(_) => "holder_registered",
            Event::WalletOpened { .. } => "wallet_opened",
            Event::Credited { .. } => "credited",
            Event::Activated { .. } => "activated",
            Event::Reversed { .. } => "credit_reversed",
            Event::Redeemed { .. } => "redeemed",
            Event::Refunded { .. } => "refunded",
            Event::Forfeited { .. } => "forfeited",
            Event::Expired { .. } => "expired",
            Event::Held { .. } => "held",
            Event::Captured { .. } => "captured",
            Event::Released { .. } => "released",
            Event::Lifecycle { .. } => "lifecycle",
            Event::PaymentMethodLinked(_) => "payment_method_linked",
            Event::CardIssued(_) => "card_issued",
        }
    }
}
