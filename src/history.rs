//! Typed, readable history: a wallet's events as an application reads them — pocket keys and
//! the client's lot, hold and redemption ids instead of internal numbers, [`Decimal`] amounts,
//! [`Uuid`]s and [`DateTime<Utc>`] instants — with the **allocations** each event made: which
//! lots a redemption, hold, capture, refund, forfeit (`expire`), expiry or release took value
//! from or returned value to, and how much.
//!
//! Allocations are not stored in the log (events record intent; `apply` derives which lots are
//! touched, see ARCHITECTURE.md, "How allocations stay bounded"), so a history read replays the
//! wallet's stream through the same `apply` in a throw-away overlay and observes every lot each
//! event wrote. **Cost**: [`Ledger::history`] replays the whole stream; [`Ledger::history_page`]
//! replays it from its first event up to the last event of the page, so reading a long history
//! page by page costs O(pages × length). Memory follows the wallet's lots, never the file.
//!
//! A [`HistoryEntry`] serializes (serde) to exactly the JSON object `walletctl history` prints
//! per event: the event's own fields, then `allocations` (only for an event that made any), then
//! `seq`, `position`, `at` and `event` (its name).
//!
//! ```
//! use wallet_ledger::{FixedClock, Ledger};
//! use wallet_ledger::history::{Destination, HistoryEvent};
//! let ledger = Ledger::in_memory(Box::new(FixedClock("2026-01-01T00:00:00Z".parse().unwrap()))).unwrap();
//! let w = "550e8400-e29b-41d4-a716-446655440000";
//! for line in [
//!     r#"{"op":"define_program","program":1,"name":"Cash","unit":"USD","pockets":[{"pocket":"main","name":"Main","kind":"CASH","asset":"USD","scale":2}]}"#.to_string(),
//!     r#"{"op":"register_holder","holder":"37b08803-c1af-4e10-849f-530264bac7f8"}"#.to_string(),
//!     format!(r#"{{"op":"open_wallet","wallet":"{w}","holder":"37b08803-c1af-4e10-849f-530264bac7f8","program":1}}"#),
//!     format!(r#"{{"op":"credit","wallet":"{w}","amount":"10","lot":"A"}}"#),
//!     format!(r#"{{"op":"credit","wallet":"{w}","amount":"20","lot":"B"}}"#),
//!     format!(r#"{{"op":"redeem","wallet":"{w}","amount":"12.5","redemption":"R1"}}"#),
//! ] {
//!     ledger.execute_line(&line).unwrap();
//! }
//! let history = ledger.history(w.parse().unwrap()).unwrap();
//! let last = history.last().unwrap();
//! assert!(matches!(&last.event, HistoryEvent::Redeemed { redemption, .. } if redemption == "R1"));
//! // Lot A gave all its 10, lot B 2.5.
//! let taken: Vec<(&str, String)> =
//!     last.allocations.iter().map(|a| (a.lot.as_str(), a.amount.to_string())).collect();
//! assert_eq!(taken, [("A", "10".to_string()), ("B", "2.5".to_string())]);
//! assert!(last.allocations.iter().all(|a| a.to == Destination::Redeemed));
//! assert_eq!(
//!     serde_json::to_string(last).unwrap(),
//!     r#"{"pocket":"main","redemption":"R1","amount":"12.5","allocations":[{"lot":"A","amount":"10","to":"redeemed"},{"lot":"B","amount":"2.5","to":"redeemed"}],"seq":4,"position":6,"at":"2026-01-01T00:00:00Z","event":"redeemed"}"#
//! );
//! ```

use crate::domain::apply::apply;
use crate::domain::event::Event;
use crate::domain::state::{Backing, Empty, HoldRec, Lot, RedemptionRec, Tx};
use crate::error::{ReadError, StorageError};
use crate::ledger::{Ledger, Reader, guard};
use crate::limits::MAX_HISTORY_PAGE;
use crate::model::{
    LifecycleAction, Order, PaymentMethod, PocketTemplate, Program, units_to_decimal, uuid_of,
};
use crate::storage::log::{self as logrec, Body, LogKey};
use crate::storage::mem::Layered;
use chrono::{DateTime, SecondsFormat, Utc};
use rust_decimal::Decimal;
use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};
use std::collections::HashMap;
use uuid::Uuid;

/// One event of a wallet's history, with the allocations it made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HistoryEntry {
    /// The event's sequence number in its wallet's stream (gapless from 1).
    pub seq: u64,
    /// The event's global position in the ledger's log (strictly increasing; see
    /// [`Ledger::changes`]).
    pub position: u64,
    /// When the event took effect.
    pub at: DateTime<Utc>,
    /// What happened.
    pub event: HistoryEvent,
    /// Which lots the event took value from or returned value to, in the order `apply` touched
    /// them (consumption order for a redemption, hold or forfeit; the hold's slices for a
    /// capture or release; last consumed first for a refund). Empty for an event that moves no
    /// lot's value (a credit, activation or reversal names its one lot itself).
    pub allocations: Vec<Allocation>,
}

/// Part of one lot's value that an event moved, and where it went.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Allocation {
    /// The lot's id, as the client gave it or the ledger assigned it (`lot-N`).
    pub lot: String,
    /// How much, at the pocket's scale.
    pub amount: Decimal,
    /// Where the value went.
    pub to: Destination,
}

/// Where value an event moved went, seen from the lot: SPEC §5's per-lot identity
/// `amount = free + held + spent − refunded + expired`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Destination {
    /// Spent: by a redemption, or by the captured part of a hold (`"redeemed"`).
    Redeemed,
    /// Reserved by a hold (`"held"`).
    Held,
    /// Back in the lot's free value: released from a hold, or restored by a refund (`"free"`).
    Free,
    /// Expired: by the lot's expiry, by `expire` (a forfeit), or returned into a lot that had
    /// expired by then (`"expired"`).
    Expired,
}

impl Destination {
    /// The name JSON uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Destination::Redeemed => "redeemed",
            Destination::Held => "held",
            Destination::Free => "free",
            Destination::Expired => "expired",
        }
    }
}

/// What happened, as an application reads it. The variant names follow the events' JSON names
/// ([`HistoryEvent::name`]); amounts are at the pocket's scale, without trailing zeros.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum HistoryEvent {
    /// A program was defined (ledger stream: only in the change feed).
    ProgramDefined {
        /// The client's program id.
        program: u64,
        /// Display name.
        name: String,
        /// Display name of its points or currency.
        unit: String,
        /// Consumption order of its lots.
        order: Order,
        /// Pocket templates, in order.
        pockets: Vec<PocketTemplate>,
    },
    /// A holder was registered (ledger stream: only in the change feed).
    HolderRegistered {
        /// The holder's id.
        holder: Uuid,
        /// The client's user id, if given.
        identity: Option<String>,
        /// The holder's email as given (trimmed), if any.
        email: Option<String>,
    },
    /// The wallet was opened (lifecycle `create`).
    WalletOpened {
        /// The wallet's id.
        wallet: Uuid,
        /// The number the ledger assigned (sequential from 1; vendor shapes print it).
        number: u64,
        /// Its holder.
        holder: Uuid,
        /// Its program.
        program: u64,
        /// Its name.
        name: String,
        /// Its external id, if given.
        external_id: Option<String>,
    },
    /// A credit: a new lot.
    Credited {
        /// The pocket's key.
        pocket: String,
        /// The lot's id.
        lot: String,
        /// Its amount.
        amount: Decimal,
        /// When it becomes spendable (its instant when credited active).
        activates_at: DateTime<Utc>,
        /// When its free value expires, if ever.
        expires_at: Option<DateTime<Utc>>,
    },
    /// A promised lot became active: by time, or early by `activate`.
    Activated {
        /// The pocket's key.
        pocket: String,
        /// The lot's id.
        lot: String,
        /// `true` for the `activate` command, `false` when its activation time came.
        early: bool,
    },
    /// `reverse_credit`: part or all of a lot's free value taken back.
    CreditReversed {
        /// The pocket's key.
        pocket: String,
        /// The lot's id.
        lot: String,
        /// How much.
        amount: Decimal,
    },
    /// A redemption.
    Redeemed {
        /// The pocket's key.
        pocket: String,
        /// The redemption's id.
        redemption: String,
        /// How much.
        amount: Decimal,
    },
    /// A refund of (part of) a redemption.
    Refunded {
        /// The pocket's key.
        pocket: String,
        /// The redemption's id.
        redemption: String,
        /// How much.
        amount: Decimal,
    },
    /// The `expire` command: available value forfeited in consumption order.
    Forfeited {
        /// The pocket's key.
        pocket: String,
        /// How much.
        amount: Decimal,
    },
    /// A lot's free value expired (its expiry time came).
    Expired {
        /// The pocket's key.
        pocket: String,
        /// The lot's id.
        lot: String,
    },
    /// A hold was placed.
    Held {
        /// The pocket's key.
        pocket: String,
        /// The hold's id.
        hold: String,
        /// How much.
        amount: Decimal,
        /// When it times out, if ever.
        expires_at: Option<DateTime<Utc>>,
    },
    /// A hold was captured: the amount became a redemption, the rest was released.
    Captured {
        /// The pocket's key.
        pocket: String,
        /// The hold's id.
        hold: String,
        /// The redemption it became.
        redemption: String,
        /// How much was captured.
        amount: Decimal,
    },
    /// A hold was released: by `release`, or by its time-out.
    Released {
        /// The pocket's key.
        pocket: String,
        /// The hold's id.
        hold: String,
        /// `true` when it timed out.
        timed_out: bool,
    },
    /// A lifecycle event other than `create`: `freeze`, `unfreeze` or `delete` (close).
    Lifecycle {
        /// What happened.
        action: LifecycleAction,
        /// The reason given, if any.
        reason: Option<String>,
        /// The lifecycle event's id (Juicyway's `events[].id`).
        id: Uuid,
    },
    /// A payment method was linked.
    PaymentMethodLinked {
        /// The method, as linked.
        method: PaymentMethod,
    },
    /// A card was issued.
    CardIssued {
        /// The card id.
        card: String,
        /// The masked PAN, if given.
        masked_pan: Option<String>,
        /// The card's status, if given.
        status: Option<String>,
    },
}

impl HistoryEvent {
    /// The event's name, as JSON's `"event"` field gives it (`"credited"`, `"redeemed"`, …).
    pub fn name(&self) -> &'static str {
        match self {
            HistoryEvent::ProgramDefined { .. } => "program_defined",
            HistoryEvent::HolderRegistered { .. } => "holder_registered",
            HistoryEvent::WalletOpened { .. } => "wallet_opened",
            HistoryEvent::Credited { .. } => "credited",
            HistoryEvent::Activated { .. } => "activated",
            HistoryEvent::CreditReversed { .. } => "credit_reversed",
            HistoryEvent::Redeemed { .. } => "redeemed",
            HistoryEvent::Refunded { .. } => "refunded",
            HistoryEvent::Forfeited { .. } => "forfeited",
            HistoryEvent::Expired { .. } => "expired",
            HistoryEvent::Held { .. } => "held",
            HistoryEvent::Captured { .. } => "captured",
            HistoryEvent::Released { .. } => "released",
            HistoryEvent::Lifecycle { .. } => "lifecycle",
            HistoryEvent::PaymentMethodLinked { .. } => "payment_method_linked",
            HistoryEvent::CardIssued { .. } => "card_issued",
        }
    }

    /// Writes the event's own fields into `m`, in the order `walletctl history` prints them.
    /// `wallet_opened`'s `wallet` is left out when `wallet` is false (a change line states the
    /// wallet once, in front).
    pub(crate) fn write_fields<M: SerializeMap>(
        &self,
        m: &mut M,
        wallet: bool,
    ) -> Result<(), M::Error> {
        match self {
            HistoryEvent::ProgramDefined {
                program,
                name,
                unit,
                order,
                pockets,
            } => {
                m.serialize_entry("program", program)?;
                m.serialize_entry("name", name)?;
                m.serialize_entry("unit", unit)?;
                m.serialize_entry("order", order.as_str())?;
                m.serialize_entry("pockets", &Pockets(pockets))?;
            }
            HistoryEvent::HolderRegistered {
                holder,
                identity,
                email,
            } => {
                m.serialize_entry("holder", &holder.to_string())?;
                m.serialize_entry("identity", identity)?;
                m.serialize_entry("email", email)?;
            }
            HistoryEvent::WalletOpened {
                wallet: id,
                number,
                holder,
                program,
                name,
                external_id,
            } => {
                if wallet {
                    m.serialize_entry("wallet", &id.to_string())?;
                }
                m.serialize_entry("number", number)?;
                m.serialize_entry("holder", &holder.to_string())?;
                m.serialize_entry("program", program)?;
                m.serialize_entry("name", name)?;
                m.serialize_entry("external_id", external_id)?;
            }
            HistoryEvent::Credited {
                pocket,
                lot,
                amount,
                activates_at,
                expires_at,
            } => {
                m.serialize_entry("pocket", pocket)?;
                m.serialize_entry("lot", lot)?;
                m.serialize_entry("amount", &amount_text(*amount))?;
                m.serialize_entry("activates_at", &time_text(*activates_at))?;
                m.serialize_entry("expires_at", &expires_at.map(time_text))?;
            }
            HistoryEvent::Activated { pocket, lot, early } => {
                m.serialize_entry("pocket", pocket)?;
                m.serialize_entry("lot", lot)?;
                m.serialize_entry("early", early)?;
            }
            HistoryEvent::CreditReversed {
                pocket,
                lot,
                amount,
            } => {
                m.serialize_entry("pocket", pocket)?;
                m.serialize_entry("lot", lot)?;
                m.serialize_entry("amount", &amount_text(*amount))?;
            }
            HistoryEvent::Redeemed {
                pocket,
                redemption,
                amount,
            }
            | HistoryEvent::Refunded {
                pocket,
                redemption,
                amount,
            } => {
                m.serialize_entry("pocket", pocket)?;
                m.serialize_entry("redemption", redemption)?;
                m.serialize_entry("amount", &amount_text(*amount))?;
            }
            HistoryEvent::Forfeited { pocket, amount } => {
                m.serialize_entry("pocket", pocket)?;
                m.serialize_entry("amount", &amount_text(*amount))?;
            }
            HistoryEvent::Expired { pocket, lot } => {
                m.serialize_entry("pocket", pocket)?;
                m.serialize_entry("lot", lot)?;
            }
            HistoryEvent::Held {
                pocket,
                hold,
                amount,
                expires_at,
            } => {
                m.serialize_entry("pocket", pocket)?;
                m.serialize_entry("hold", hold)?;
                m.serialize_entry("amount", &amount_text(*amount))?;
                m.serialize_entry("expires_at", &expires_at.map(time_text))?;
            }
            HistoryEvent::Captured {
                pocket,
                hold,
                redemption,
                amount,
            } => {
                m.serialize_entry("pocket", pocket)?;
                m.serialize_entry("hold", hold)?;
                m.serialize_entry("redemption", redemption)?;
                m.serialize_entry("amount", &amount_text(*amount))?;
            }
            HistoryEvent::Released {
                pocket,
                hold,
                timed_out,
            } => {
                m.serialize_entry("pocket", pocket)?;
                m.serialize_entry("hold", hold)?;
                m.serialize_entry("timed_out", timed_out)?;
            }
            HistoryEvent::Lifecycle { action, reason, id } => {
                m.serialize_entry("action", action.as_str())?;
                m.serialize_entry("reason", reason)?;
                m.serialize_entry("id", &id.to_string())?;
            }
            HistoryEvent::PaymentMethodLinked { method } => {
                m.serialize_entry("method", method)?;
            }
            HistoryEvent::CardIssued {
                card,
                masked_pan,
                status,
            } => {
                m.serialize_entry("card", card)?;
                m.serialize_entry("masked_pan", masked_pan)?;
                m.serialize_entry("status", status)?;
            }
        }
        Ok(())
    }
}

/// `{"event": name, …its fields}`.
impl Serialize for HistoryEvent {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("event", self.name())?;
        self.write_fields(&mut m, true)?;
        m.end()
    }
}

/// `walletctl history`'s object: the event's fields, `allocations` when there are any, then
/// `seq`, `position`, `at` and `event`.
impl Serialize for HistoryEntry {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        self.event.write_fields(&mut m, true)?;
        if !self.allocations.is_empty() {
            m.serialize_entry("allocations", &self.allocations)?;
        }
        m.serialize_entry("seq", &self.seq)?;
        m.serialize_entry("position", &self.position)?;
        m.serialize_entry("at", &time_text(self.at))?;
        m.serialize_entry("event", self.event.name())?;
        m.end()
    }
}

/// `{"lot","amount","to"}`.
impl Serialize for Allocation {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(3))?;
        m.serialize_entry("lot", &self.lot)?;
        m.serialize_entry("amount", &amount_text(self.amount))?;
        m.serialize_entry("to", self.to.as_str())?;
        m.end()
    }
}

impl Serialize for Destination {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// Pocket templates as `[{"pocket","name","kind","asset","scale"}]`.
struct Pockets<'a>(&'a [PocketTemplate]);

impl Serialize for Pockets<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for p in self.0 {
            seq.serialize_element(&serde_json::json!({"pocket": p.pocket, "name": p.name,
                "kind": p.kind, "asset": p.asset, "scale": p.scale}))?;
        }
        seq.end()
    }
}

/// An amount as printed: plain notation, no trailing zeros.
fn amount_text(d: Decimal) -> String {
    d.normalize().to_string()
}

/// An instant as printed: RFC 3339 UTC, `Z`, as many fractional digits as needed.
pub(crate) fn time_text(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

fn instant(ns: i64) -> DateTime<Utc> {
    crate::model::Instant(ns).to_datetime()
}

// ---- naming what an event refers to ----------------------------------------------------------

/// Lot, hold and redemption records by number: the overlay of a replay, or the published state
/// (ids and pockets never change once assigned, so the current record names a past event's).
pub(crate) trait Names {
    fn lot(&self, w: u64, no: u32) -> Result<Option<Lot>, StorageError>;
    fn hold(&self, w: u64, no: u32) -> Result<Option<HoldRec>, StorageError>;
    fn redemption(&self, w: u64, no: u32) -> Result<Option<RedemptionRec>, StorageError>;
}

impl Names for Tx<'_> {
    fn lot(&self, w: u64, no: u32) -> Result<Option<Lot>, StorageError> {
        Tx::lot(self, w, no)
    }
    fn hold(&self, w: u64, no: u32) -> Result<Option<HoldRec>, StorageError> {
        Tx::hold(self, w, no)
    }
    fn redemption(&self, w: u64, no: u32) -> Result<Option<RedemptionRec>, StorageError> {
        Tx::redemption(self, w, no)
    }
}

impl Names for Layered<'_> {
    fn lot(&self, w: u64, no: u32) -> Result<Option<Lot>, StorageError> {
        Backing::lot(self, w, no)
    }
    fn hold(&self, w: u64, no: u32) -> Result<Option<HoldRec>, StorageError> {
        Backing::hold(self, w, no)
    }
    fn redemption(&self, w: u64, no: u32) -> Result<Option<RedemptionRec>, StorageError> {
        Backing::redemption(self, w, no)
    }
}

/// What naming a wallet's events needs of the wallet: its id and its pockets' keys and scales
/// (fixed when it is opened).
pub(crate) struct WalletNames {
    pub(crate) number: u64,
    pub(crate) uuid: Uuid,
    pockets: Vec<(String, u32)>,
}

impl WalletNames {
    pub(crate) fn of(ws: &crate::domain::state::WalletState) -> WalletNames {
        WalletNames {
            number: ws.number,
            uuid: uuid_of(ws.uuid),
            pockets: ws
                .pockets
                .iter()
                .map(|p| (p.key.clone(), p.scale))
                .collect(),
        }
    }

    fn pocket(&self, p: u16, position: u64) -> Result<&(String, u32), StorageError> {
        self.pockets.get(p as usize).ok_or_else(|| {
            StorageError(format!(
                "wallet {}: the event at position {position} names pocket index {p}, which the wallet does not have",
                self.uuid
            ))
        })
    }

    fn amount(&self, p: u16, units: u128, position: u64) -> Result<Decimal, StorageError> {
        Ok(units_to_decimal(units, self.pocket(p, position)?.1))
    }

    fn missing(&self, what: &str, no: u32, position: u64) -> StorageError {
        StorageError(format!(
            "wallet {}: the event at position {position} names {what} number {no}, which the wallet does not hold",
            self.uuid
        ))
    }
}

/// A program's defining event as the feed shows it.
fn program_defined(p: &Program) -> HistoryEvent {
    HistoryEvent::ProgramDefined {
        program: p.program,
        name: p.name.clone(),
        unit: p.unit.clone(),
        order: p.order,
        pockets: p.pockets.clone(),
    }
}

/// The typed form of a ledger-stream event (`None` for a wallet event on the ledger stream,
/// which only a damaged log holds).
pub(crate) fn ledger_event(ev: &Event) -> Option<HistoryEvent> {
    match ev {
        Event::ProgramDefined(p) => Some(program_defined(p)),
        Event::HolderRegistered(h) => Some(HistoryEvent::HolderRegistered {
            holder: uuid_of(h.holder),
            identity: h.identity.clone(),
            email: h.email.clone(),
        }),
        _ => None,
    }
}

/// The typed form of event `ev` of wallet `wallet`, stored at `position`, naming its lots,
/// holds and redemptions through `names` (which must hold every record the event refers to).
pub(crate) fn wallet_event(
    names: &dyn Names,
    wallet: &WalletNames,
    position: u64,
    ev: &Event,
) -> Result<HistoryEvent, StorageError> {
    let w = wallet.number;
    // (pocket key, lot id, scale) of lot `no`.
    let lot_of = |no: u32| -> Result<(String, String, u32), StorageError> {
        let l = names
            .lot(w, no)?
            .ok_or_else(|| wallet.missing("lot", no, position))?;
        let (key, scale) = wallet.pocket(l.pocket, position)?;
        Ok((key.clone(), l.id, *scale))
    };
    Ok(match ev {
        Event::ProgramDefined(_) | Event::HolderRegistered(_) => {
            return Err(StorageError(format!(
                "wallet {}: a ledger event ({}) at position {position} on its stream",
                wallet.uuid,
                ev.name()
            )));
        }
        Event::WalletOpened {
            wallet: id,
            number,
            holder,
            program,
            name,
            external_id,
            ..
        } => HistoryEvent::WalletOpened {
            wallet: uuid_of(*id),
            number: *number,
            holder: uuid_of(*holder),
            program: *program,
            name: name.clone(),
            external_id: external_id.clone(),
        },
        Event::Credited {
            pocket,
            id,
            units,
            activates_at,
            expires_at,
            ..
        } => HistoryEvent::Credited {
            pocket: wallet.pocket(*pocket, position)?.0.clone(),
            lot: id.clone(),
            amount: wallet.amount(*pocket, *units, position)?,
            activates_at: instant(*activates_at),
            expires_at: expires_at.map(instant),
        },
        Event::Activated { lot, early } => {
            let (pocket, lot, _) = lot_of(*lot)?;
            HistoryEvent::Activated {
                pocket,
                lot,
                early: *early,
            }
        }
        Event::Reversed { lot, units } => {
            let (pocket, lot, scale) = lot_of(*lot)?;
            HistoryEvent::CreditReversed {
                pocket,
                lot,
                amount: units_to_decimal(*units, scale),
            }
        }
        Event::Redeemed {
            pocket, id, units, ..
        } => HistoryEvent::Redeemed {
            pocket: wallet.pocket(*pocket, position)?.0.clone(),
            redemption: id.clone(),
            amount: wallet.amount(*pocket, *units, position)?,
        },
        Event::Refunded { redemption, units } => {
            let r = names
                .redemption(w, *redemption)?
                .ok_or_else(|| wallet.missing("redemption", *redemption, position))?;
            HistoryEvent::Refunded {
                pocket: wallet.pocket(r.pocket, position)?.0.clone(),
                redemption: r.id,
                amount: wallet.amount(r.pocket, *units, position)?,
            }
        }
        Event::Forfeited { pocket, units } => HistoryEvent::Forfeited {
            pocket: wallet.pocket(*pocket, position)?.0.clone(),
            amount: wallet.amount(*pocket, *units, position)?,
        },
        Event::Expired { lot } => {
            let (pocket, lot, _) = lot_of(*lot)?;
            HistoryEvent::Expired { pocket, lot }
        }
        Event::Held {
            pocket,
            id,
            units,
            expires_at,
            ..
        } => HistoryEvent::Held {
            pocket: wallet.pocket(*pocket, position)?.0.clone(),
            hold: id.clone(),
            amount: wallet.amount(*pocket, *units, position)?,
            expires_at: expires_at.map(instant),
        },
        Event::Captured {
            hold, id, units, ..
        } => {
            let h = names
                .hold(w, *hold)?
                .ok_or_else(|| wallet.missing("hold", *hold, position))?;
            HistoryEvent::Captured {
                pocket: wallet.pocket(h.pocket, position)?.0.clone(),
                hold: h.id,
                redemption: id.clone(),
                amount: wallet.amount(h.pocket, *units, position)?,
            }
        }
        Event::Released { hold, timed_out } => {
            let h = names
                .hold(w, *hold)?
                .ok_or_else(|| wallet.missing("hold", *hold, position))?;
            HistoryEvent::Released {
                pocket: wallet.pocket(h.pocket, position)?.0.clone(),
                hold: h.id,
                timed_out: *timed_out,
            }
        }
        Event::Lifecycle {
            action,
            reason,
            event_id,
        } => HistoryEvent::Lifecycle {
            action: *action,
            reason: reason.clone(),
            id: uuid_of(*event_id),
        },
        Event::PaymentMethodLinked(m) => HistoryEvent::PaymentMethodLinked { method: m.clone() },
        Event::CardIssued(c) => HistoryEvent::CardIssued {
            card: c.card.clone(),
            masked_pan: c.masked_pan.clone(),
            status: c.status.clone(),
        },
    })
}

/// The allocations of one event from the lot writes `apply` made for it (each lot's value
/// before its first write and after its last): every part of a lot that grew, spent, held, free
/// or expired. A new lot (a credit) moved no value.
fn allocations(
    wallet: &WalletNames,
    position: u64,
    writes: Vec<(Option<Lot>, Lot)>,
) -> Result<Vec<Allocation>, StorageError> {
    let mut at: HashMap<u32, usize> = HashMap::new();
    let mut lots: Vec<(Option<Lot>, Lot)> = Vec::with_capacity(writes.len());
    for (before, after) in writes {
        match at.get(&after.no) {
            Some(&i) => lots[i].1 = after,
            None => {
                at.insert(after.no, lots.len());
                lots.push((before, after));
            }
        }
    }
    let mut out = Vec::new();
    for (before, after) in lots {
        let Some(b) = before else { continue };
        let scale = wallet.pocket(after.pocket, position)?.1;
        for (to, was, is) in [
            (Destination::Redeemed, b.spent, after.spent),
            (Destination::Held, b.held, after.held),
            (Destination::Free, b.free, after.free),
            (Destination::Expired, b.expired, after.expired),
        ] {
            if is > was {
                out.push(Allocation {
                    lot: after.id.clone(),
                    amount: units_to_decimal(is - was, scale),
                    to,
                });
            }
        }
    }
    Ok(out)
}

impl Reader {
    /// Events `after_seq + 1 ..` of wallet `w` (at most `limit`), replaying its stream from the
    /// first event to the page's last through `apply` to learn the allocations.
    pub(crate) fn history_of(
        &self,
        w: u64,
        after_seq: u64,
        limit: usize,
    ) -> Result<Vec<HistoryEntry>, ReadError> {
        let ws = self
            .layered()
            .wallet(w)?
            .ok_or_else(|| ReadError::UnknownWallet(format!("number {w}")))?;
        let end = ws
            .seq
            .min(after_seq.saturating_add(u64::try_from(limit).unwrap_or(u64::MAX)));
        if after_seq >= end {
            return Ok(Vec::new());
        }
        let names = WalletNames::of(&ws);
        let (log, _) = self.log()?;
        let empty = Empty;
        let mut tx = Tx::without_undo(&empty)?;
        let mut out = Vec::with_capacity((end - after_seq) as usize);
        for (i, p) in self.positions_between(w, 1, end)?.into_iter().enumerate() {
            let k = LogKey::event(p);
            let v = log
                .get(k.tuple())
                .map_err(StorageError::from)?
                .ok_or_else(|| {
                    StorageError(format!("wallet {}: log {k} is missing", names.uuid))
                })?;
            let rec = logrec::decode(k, v.value())?;
            let expect = i as u64 + 1;
            let event = match rec.body {
                Body::Event {
                    stream, seq, event, ..
                } if stream == w && seq == expect => event,
                _ => {
                    return Err(StorageError(format!(
                        "wallet {}: its event index points at log {k}, which is not its event {expect}",
                        names.uuid
                    ))
                    .into());
                }
            };
            let in_page = expect > after_seq;
            if in_page {
                tx.watch_lots();
            }
            apply(&mut tx, w, rec.at, &event)?;
            if in_page {
                let writes = tx.take_lot_writes();
                out.push(HistoryEntry {
                    seq: expect,
                    position: p,
                    at: instant(rec.at),
                    event: wallet_event(&tx, &names, p, &event)?,
                    allocations: allocations(&names, p, writes)?,
                });
            }
        }
        Ok(out)
    }
}

impl Ledger {
    /// Every event of a wallet, in order, typed, with the allocations each made (see the
    /// [module docs](crate::history)). Cost: one replay of the wallet's whole stream; for a
    /// long history read it in pages with [`Ledger::history_page`].
    pub fn history(&self, wallet: Uuid) -> Result<Vec<HistoryEntry>, ReadError> {
        self.history_range(wallet, 0, usize::MAX)
    }

    /// The wallet's events after sequence number `after_seq` (0: from the first), at most
    /// `limit` of them and never more than [`MAX_HISTORY_PAGE`]. A page shorter than that
    /// bound ends at the wallet's last event; the next page starts after the last `seq`
    /// returned.
    ///
    /// Cost: the wallet's stream is replayed from its first event to the page's last (which
    /// lots an event took from depends on every event before it), so the i-th page costs
    /// O(i × page): a whole history read page by page costs O(length² / page).
    pub fn history_page(
        &self,
        wallet: Uuid,
        after_seq: u64,
        limit: usize,
    ) -> Result<Vec<HistoryEntry>, ReadError> {
        self.history_range(wallet, after_seq, limit.min(MAX_HISTORY_PAGE))
    }

    fn history_range(
        &self,
        wallet: Uuid,
        after_seq: u64,
        limit: usize,
    ) -> Result<Vec<HistoryEntry>, ReadError> {
        guard(|| {
            let r = self.quick_reader()?;
            let w = r
                .wallet_number(wallet)?
                .ok_or_else(|| ReadError::UnknownWallet(wallet.to_string()))?;
            r.history_of(w, after_seq, limit)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lot(no: u32, free: u128, held: u128, spent: u128, expired: u128) -> Lot {
        Lot {
            no,
            id: format!("L{no}"),
            pocket: 0,
            amount: free + held + spent + expired,
            free,
            held,
            spent,
            refunded: 0,
            expired,
            issued_at: 0,
            activates_at: 0,
            expires_at: None,
            activated: true,
            order_key: 0,
        }
    }

    /// A capture that spends part of a lot's hold and returns the rest, and a lot written twice
    /// in one event, give one allocation per destination, from the lot's first value to its
    /// last; a new lot gives none.
    #[test]
    fn allocations_follow_each_lots_first_and_last_value() {
        let wallet = WalletNames {
            number: 1,
            uuid: Uuid::nil(),
            pockets: vec![("main".into(), 2)],
        };
        let writes = vec![
            (Some(lot(1, 0, 500, 0, 0)), lot(1, 200, 0, 300, 0)),
            (Some(lot(2, 100, 0, 0, 0)), lot(2, 60, 0, 0, 40)),
            (Some(lot(2, 60, 0, 0, 40)), lot(2, 0, 0, 0, 100)),
            (None, lot(3, 700, 0, 0, 0)),
        ];
        let got: Vec<(String, String, &str)> = allocations(&wallet, 9, writes)
            .unwrap()
            .into_iter()
            .map(|a| (a.lot, a.amount.to_string(), a.to.as_str()))
            .collect();
        let want = [
            ("L1", "3", "redeemed"),
            ("L1", "2", "free"),
            ("L2", "1", "expired"),
        ]
        .map(|(l, a, t)| (l.to_string(), a.to_string(), t));
        assert_eq!(got, want);
        // A lot on a pocket the wallet does not have is an error naming it, not a panic.
        let mut bad = lot(4, 1, 0, 0, 0);
        bad.pocket = 3;
        let e = allocations(&wallet, 9, vec![(Some(lot(4, 2, 0, 0, 0)), bad)]).unwrap_err();
        assert!(e.0.contains("pocket index 3"), "{e}");
    }
}
