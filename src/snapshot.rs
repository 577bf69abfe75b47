//! What reads return: a wallet's profile and figures at one instant, in the types an application
//! uses (ids as [`Uuid`], instants as [`DateTime<Utc>`], amounts as [`Decimal`]).
//!
//! Inside the ledger a pocket's figures are integers in units of its scale (so sums are exact and
//! cheap); they become decimals here, in [`PocketSnapshot::figures`], and nowhere else.

use crate::domain::state::{HolderRec, LifecycleRec, WalletState};
use crate::model::{
    Card, Figures, Instant, LifecycleAction, PaymentMethod, Status, units_to_decimal, uuid_of,
};
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use uuid::Uuid;

/// A wallet's profile and figures as of an instant.
///
/// ```
/// use wallet_ledger::{Credit, Decimal, FixedClock, Ledger, OpenWallet, RegisterHolder};
/// # use wallet_ledger::{DefineProgram, PocketSpec};
///
/// let clock = FixedClock("2026-01-01T00:00:00Z".parse().unwrap());
/// let ledger = Ledger::in_memory(Box::new(clock)).unwrap();
/// # ledger.execute(&DefineProgram { program: 1, pockets: vec![PocketSpec { pocket: "main".into(),
/// #     name: "Main".into(), kind: "CASH".into(), asset: "USD".into(), scale: 2 }],
/// #     ..Default::default() }.into()).unwrap();
/// let holder = ledger.execute(&RegisterHolder::default().into()).unwrap().holder.unwrap();
/// let open = OpenWallet { holder, program: 1, ..Default::default() };
/// let wallet = ledger.execute(&open.into()).unwrap().wallet.unwrap();
/// let credit = Credit { wallet, amount: Decimal::new(1250, 2), ..Default::default() };
/// ledger.execute(&credit.into()).unwrap();
///
/// let snap = ledger.snapshot(wallet, None).unwrap();
/// let main = snap.pocket("main").unwrap();
/// assert_eq!(main.figures().balance, Decimal::new(1250, 2));
/// assert_eq!(main.figures().available.to_string(), "12.5");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WalletSnapshot {
    /// The instant the snapshot describes.
    pub as_of: DateTime<Utc>,
    /// The wallet's id.
    pub wallet: Uuid,
    /// The holder who owns it.
    pub holder: Uuid,
    /// The program it was opened under.
    pub program: u64,
    /// Its display name (`""` when none was given).
    pub name: String,
    /// The application's own id for it, unique across the ledger.
    pub external_id: Option<String>,
    /// Its status at `as_of`.
    pub status: Status,
    /// When it was opened.
    pub created_at: DateTime<Utc>,
    /// Time of the last event at or before `as_of`, derived transitions (a promised lot
    /// activating, a lot or hold expiring) included.
    pub updated_at: DateTime<Utc>,
    /// One per pocket of the program, in the program's order.
    pub pockets: Vec<PocketSnapshot>,
    /// Bank accounts linked at or before `as_of`.
    pub payment_methods: Vec<PaymentMethod>,
    /// Cards issued at or before `as_of`.
    pub cards: Vec<Card>,
    /// Lifecycle events (create, freeze, unfreeze, delete) at or before `as_of`, oldest first.
    /// Empty from the figures-only reads ([`crate::Ledger::figures`], [`crate::Reader::figures`]).
    pub lifecycle: Vec<LifecycleEntry>,
    /// The wallet's internal number: the vendor views that print one (Cashfree, Cryptofuse)
    /// read it here.
    pub(crate) number: u64,
}

/// One pocket of a wallet: its definition and its figures.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PocketSnapshot {
    /// The pocket's key within the program (`"main"`, `"gift"`).
    pub pocket: String,
    /// Its display name.
    pub name: String,
    /// Its kind as the program defines it (`"CASH"`, `"POINTS"`, …).
    pub kind: String,
    /// The asset its amounts are in (`"USD"`, `"BTC"`, …).
    pub asset: String,
    /// The number of decimal places its amounts may have.
    pub scale: u32,
    /// The pocket's own id.
    pub uuid: Uuid,
    pub(crate) number: u64,
    /// The figures in units at `scale`.
    pub(crate) units: Figures,
}

/// A pocket's figures (SPEC §5) as exact decimals, normalized (`12.5`, not `12.50`).
///
/// `balance = credited − redeemed − expired`, `available = balance − on_hold`,
/// `pending = promised + on_hold` and `total = balance + promised` hold exactly.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct PocketFigures {
    /// Unspent value of lots that are not active yet.
    pub promised: Decimal,
    /// Value of active lots, net of reversals.
    pub credited: Decimal,
    /// Value redeemed or captured, net of refunds.
    pub redeemed: Decimal,
    /// Value forfeited by lot expiry or `expire`.
    pub expired: Decimal,
    /// `credited − redeemed − expired`.
    pub balance: Decimal,
    /// Value reserved by open holds.
    pub on_hold: Decimal,
    /// `balance − on_hold`: what a redemption or hold may take now.
    pub available: Decimal,
    /// `promised + on_hold`.
    pub pending: Decimal,
    /// `balance + promised`.
    pub total: Decimal,
}

impl PocketFigures {
    /// The one place units become decimals.
    pub(crate) fn from_units(f: &Figures, scale: u32) -> PocketFigures {
        let d = |u: u128| units_to_decimal(u, scale);
        PocketFigures {
            promised: d(f.promised),
            credited: d(f.credited),
            redeemed: d(f.redeemed),
            expired: d(f.expired),
            balance: d(f.balance()),
            on_hold: d(f.on_hold),
            available: d(f.available()),
            pending: d(f.pending()),
            total: d(f.total()),
        }
    }
}

impl PocketSnapshot {
    /// The pocket's figures as exact decimals.
    pub fn figures(&self) -> PocketFigures {
        PocketFigures::from_units(&self.units, self.scale)
    }

    /// The figures in units at `scale` (internal; for the crate's tests and benchmarks).
    #[doc(hidden)]
    pub fn units(&self) -> Figures {
        self.units
    }

    /// The pocket's internal number, which Cashfree prints as `cf_sub_wallet_id`.
    #[doc(hidden)]
    pub fn number(&self) -> u64 {
        self.number
    }
}

impl WalletSnapshot {
    /// The pocket with key `pocket`, if the program has one.
    pub fn pocket(&self, pocket: &str) -> Option<&PocketSnapshot> {
        self.pockets.iter().find(|p| p.pocket == pocket)
    }

    /// The wallet's internal number, which Cashfree and Cryptofuse print.
    #[doc(hidden)]
    pub fn number(&self) -> u64 {
        self.number
    }

    pub(crate) fn build(
        ws: WalletState,
        lifecycle: Vec<LifecycleRec>,
        as_of: i64,
    ) -> WalletSnapshot {
        WalletSnapshot {
            as_of: Instant(as_of).to_datetime(),
            wallet: uuid_of(ws.uuid),
            number: ws.number,
            holder: uuid_of(ws.holder),
            program: ws.program,
            name: ws.name,
            external_id: ws.external_id,
            status: ws.status,
            created_at: Instant(ws.created_at).to_datetime(),
            updated_at: Instant(ws.updated_at).to_datetime(),
            pockets: ws
                .pockets
                .into_iter()
                .map(|p| PocketSnapshot {
                    pocket: p.key,
                    name: p.name,
                    kind: p.kind,
                    asset: p.asset,
                    scale: p.scale,
                    number: p.number,
                    uuid: uuid_of(p.uuid),
                    units: p.figures,
                })
                .collect(),
            payment_methods: ws.methods,
            cards: ws.cards,
            lifecycle: lifecycle
                .into_iter()
                .filter(|l| l.at <= as_of)
                .map(|l| LifecycleEntry {
                    action: l.action,
                    id: uuid_of(l.event_id),
                    at: Instant(l.at).to_datetime(),
                    reason: l.reason,
                })
                .collect(),
        }
    }
}

/// One lifecycle event of a wallet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LifecycleEntry {
    /// What happened.
    pub action: LifecycleAction,
    /// The event's id (Juicyway prints it).
    pub id: Uuid,
    /// When.
    pub at: DateTime<Utc>,
    /// The reason given with `freeze`, `unfreeze` or `close`.
    pub reason: Option<String>,
}

/// A holder's profile.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct HolderProfile {
    /// The holder's id.
    pub holder: Uuid,
    /// The application's identity for the holder (CleverTap looks holders up by it).
    pub identity: Option<String>,
    /// The holder's email as given (look-ups compare it case-insensitively).
    pub email: Option<String>,
    /// When the holder was registered: views and look-ups dated earlier do not find them.
    /// (`None` only for a holder recorded by a build that did not keep the instant.)
    pub registered_at: Option<DateTime<Utc>>,
}

impl From<HolderRec> for HolderProfile {
    fn from(r: HolderRec) -> HolderProfile {
        HolderProfile {
            holder: uuid_of(r.holder.holder),
            identity: r.holder.identity,
            email: r.holder.email,
            registered_at: (r.registered_at != HolderRec::UNKNOWN_SINCE)
                .then(|| Instant(r.registered_at).to_datetime()),
        }
    }
}
