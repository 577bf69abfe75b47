//! # wallet-ledger
//!
//! An embeddable ledger engine for wallets. It keeps an append-only event log in one
//! [redb](https://docs.rs/redb) file (credits, promised credits, redemptions, expiries, holds,
//! refunds, lifecycle changes) and derives every figure of every pocket from it, at any instant:
//! promised, credited, redeemed, expired, balance, on hold, available, pending, total. On top of
//! the figures it answers "get wallet details" as four vendors do ([`views`]).
//!
//! ## Example
//!
//! From an empty ledger to figures, with the typed API:
//!
//! ```
//! use wallet_ledger::{
//!     Capture, Credit, DateTime, Decimal, DefineProgram, ErrorCode, FixedClock, Hold, Ledger,
//!     OpenWallet, PocketSpec, Redeem, RegisterHolder, Request, Utc,
//! };
//! # fn main() -> Result<(), wallet_ledger::Error> {
//! let t0: DateTime<Utc> = "2026-01-01T00:00:00Z".parse().unwrap();
//! let ledger = Ledger::in_memory(Box::new(FixedClock(t0)))?; // Ledger::open("wallets.redb")
//!
//! ledger.execute(&DefineProgram {
//!     program: 1,
//!     name: "Cash".into(),
//!     unit: "USD".into(),
//!     pockets: vec![PocketSpec {
//!         pocket: "main".into(),
//!         name: "Main".into(),
//!         kind: "CASH".into(),
//!         asset: "USD".into(),
//!         scale: 2,
//!     }],
//!     ..Default::default()
//! }.into())?;
//! let holder = ledger.execute(&RegisterHolder::default().into())?.holder.unwrap();
//! let wallet = ledger
//!     .execute(&OpenWallet { holder, program: 1, ..Default::default() }.into())?
//!     .wallet
//!     .unwrap();
//!
//! // 100.00 now, expiring in 30 days; 25 promised, active in a week.
//! let d = |s: &str| s.parse::<Decimal>().unwrap();
//! let days = wallet_ledger::chrono::Duration::days;
//! ledger.execute(&Credit {
//!     wallet,
//!     amount: d("100"),
//!     expires_at: Some(t0 + days(30)),
//!     ..Default::default()
//! }.into())?;
//! ledger.execute(&Credit {
//!     wallet,
//!     amount: d("25"),
//!     activates_at: Some(t0 + days(7)),
//!     ..Default::default()
//! }.into())?;
//! // A keyed command: a retry with the same key answers the same receipt and changes nothing.
//! let spend = Request::from(Redeem { wallet, amount: d("30.5"), ..Default::default() }).key("order-1");
//! assert!(!ledger.execute(&spend)?.replayed);
//! assert!(ledger.execute(&spend)?.replayed);
//! // Hold 20, capture 15 of it: the other 5 are released.
//! let hold = ledger.execute(&Hold { wallet, amount: d("20"), ..Default::default() }.into())?;
//! ledger.execute(&Capture {
//!     wallet,
//!     hold: hold.hold.unwrap(),
//!     amount: Some(d("15")),
//!     ..Default::default()
//! }.into())?;
//!
//! let now = ledger.figures(wallet, None)?.pockets[0].figures();
//! assert_eq!((now.balance, now.promised, now.on_hold), (d("54.5"), d("25"), d("0")));
//! // The same wallet in 10 days (the promised lot is active) and in 31 (the first lot expired).
//! let later = ledger.figures(wallet, Some(t0 + days(10)))?.pockets[0].figures();
//! assert_eq!((later.balance, later.promised), (d("79.5"), d("0")));
//! let expired = ledger.figures(wallet, Some(t0 + days(31)))?.pockets[0].figures();
//! assert_eq!((expired.balance, expired.expired), (d("25"), d("54.5")));
//!
//! // Every refusal has a stable code and names the offending value.
//! let e = ledger.execute(&Redeem { wallet, amount: d("1000"), ..Default::default() }.into());
//! assert_eq!(e.unwrap_err().code, ErrorCode::InsufficientFunds);
//! assert!(ledger.verify()?.ok());
//! # Ok(())
//! # }
//! ```
//!
//! ## Concepts
//!
//! - A **program** ([`DefineProgram`]) is a template: a unit, a lot consumption order and one or
//!   more **pockets**, each with an asset and a scale (decimal places). Commands that name no
//!   pocket use the first.
//! - A **holder** ([`RegisterHolder`]) owns **wallets** ([`OpenWallet`]); a wallet has one
//!   pocket per pocket of its program.
//! - Value arrives in **lots** ([`Credit`]): active from `activates_at` (until then *promised*)
//!   until `expires_at`. [`Redeem`], [`Hold`] and [`Expire`] take value from active lots in the
//!   program's [`Order`]; [`Refund`] gives a redemption back to the lots it came from;
//!   [`Capture`] turns a hold into a redemption and **releases the rest of the hold**.
//! - Time-driven changes (a lot activating or expiring, a hold expiring) need no command: every
//!   read derives them at the instant asked. [`Command::Sweep`] records them as events.
//! - The **figures** ([`PocketFigures`]) are SPEC §5's: `balance = credited − redeemed − expired`,
//!   `available = balance − on_hold`, `pending = promised + on_hold`, `total = balance + promised`.
//!
//! ## Commands
//!
//! [`Ledger::execute`] takes a [`Request`]: a [`Command`] (every typed command converts into one
//! with `.into()`), an optional instant ([`Request::at`]; default: the ledger's [`Clock`]) and an
//! optional idempotency key ([`Request::key`]). It returns a [`Receipt`] (the ids used or
//! assigned, the instant, the log positions written) once the command is durable, or a
//! [`CommandError`] after writing nothing. [`Command::Batch`] applies several commands all or
//! nothing. [`Ledger::execute_line`] takes the same commands as JSON lines ([`json`], SPEC §9).
//!
//! ## Reads
//!
//! [`Ledger::figures`] and [`Ledger::snapshot`] read one wallet at an instant (default: now);
//! [`Ledger::history`] its events. [`Ledger::reader`] gives a [`Reader`]: one consistent view for
//! several reads, look-ups by external id, card, identity or email, and the vendor views. A read
//! at or after a wallet's last event costs O(transitions due since), never O(history); a read
//! at an earlier instant starts from the nearest checkpoint.
//!
//! ## Errors
//!
//! Each operation has its own error type ([`CommandError`], [`ReadError`], [`OpenError`],
//! [`views::UsageError`], [`StorageError`]); all convert into [`Error`], and each has a `code()`
//! (or `code` field) giving the stable [`ErrorCode`] of SPEC §7.
//!
//! ## Durability and concurrency
//!
//! `execute` returns `Ok` only after the command's log records are committed with an fsync.
//! [`Ledger`] is `Send + Sync` and cheap to clone; concurrent callers are group-committed (one
//! fsync for many commands), and reads run beside writes on consistent snapshots. Everything
//! but the log is derived: an in-memory layer (bounded by [`OpenOptions::memory_budget`]) is
//! flushed to projection tables in batches, and reopening replays the log after the last flush.
//! [`Ledger::verify`] replays the whole log and compares.
//!
//! ## Performance
//!
//! See `BENCHMARKS.md`: single appends, group commits, reads now and as of earlier instants,
//! storage per event and recovery, each against SQLite or raw redb measured in the same run.
//!
//! ## Untrusted input
//!
//! Every input is bounded ([`limits`]): ids, text, lines, batches, pockets, lots per wallet. The
//! JSON parser reads amounts from their text, never through a float, and refuses unknown or
//! repeated fields. No input makes the ledger panic; a damaged file is a `storage` error.
//!
//! ## Features
//!
//! None that an application needs. (`internals` exposes storage and domain internals to the
//! crate's own tests and benchmarks; it has no stability promise.)

#![cfg_attr(not(feature = "internals"), deny(missing_docs))]

pub mod command;
mod domain;
mod error;
pub mod feed;
pub mod history;
pub mod json;
mod ledger;
pub mod limits;
mod model;
pub mod render;
mod snapshot;
mod stats;
mod storage;
mod verify;
pub mod views;

pub use command::Lifecycle as LifecycleChange;
pub use command::{
    Activate, Capture, Command, Credit, DefineProgram, Expire, Hold, IssueCard, LinkPaymentMethod,
    OpenWallet, PocketSpec, Receipt, Redeem, Refund, RegisterHolder, Release, Request,
    ReverseCredit,
};
pub use error::{CommandError, Error, ErrorCode, OpenError, ReadError, StorageError};
pub use feed::Change;
pub use history::{Allocation, Destination, HistoryEntry, HistoryEvent};
pub use ledger::{
    Clock, CommitObserver, CommitStats, DEFAULT_MEMORY_BUDGET, FixedClock, Ledger,
    MAX_UNFLUSHED_EVENTS, OpenOptions, ProgressFn, Reader, Stage, SystemClock, Unflushed,
};
pub use model::{Card, LifecycleAction, Order, PaymentMethod, PocketTemplate, Program, Status};
pub use snapshot::{HolderProfile, LifecycleEntry, PocketFigures, PocketSnapshot, WalletSnapshot};
pub use stats::{LedgerStats, TableStats};
pub use verify::Report as VerifyReport;

/// The crates whose types the API uses, re-exported so an application need not match versions.
pub use chrono;
pub use chrono::{DateTime, Utc};
pub use rust_decimal;
pub use rust_decimal::Decimal;
pub use uuid;
pub use uuid::Uuid;
pub use views::UsageError;

/// The crate's internals, for its own tests, benchmarks and fuzz targets (feature `internals`):
/// not part of the API, and free to change in any release.
#[cfg(feature = "internals")]
#[doc(hidden)]
pub mod internals {
    /// See `src/domain`.
    pub mod domain {
        pub use crate::domain::*;
    }
    /// See `src/storage`.
    pub mod storage {
        pub use crate::storage::*;
    }
    /// See `src/model.rs`.
    pub mod model {
        pub use crate::model::*;
    }
    /// See `src/verify.rs`.
    pub mod verify {
        pub use crate::verify::*;
    }
    /// See `src/ledger.rs`.
    pub mod ledger {
        pub use crate::ledger::*;
    }
    /// See `src/snapshot.rs`.
    pub mod snapshot {
        pub use crate::snapshot::*;
    }
}

/// The README's Rust examples, compiled and run by `cargo test` so they cannot go stale.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
