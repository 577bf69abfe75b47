//! # wallet-ledger
//!
//! An embeddable ledger engine for wallets: an append-only event log in one redb file, and a
//! projection that derives every balance figure (active, promised, credited, redeemed, expired,
//! balance, available, on-hold, pending, total) from it, at any instant.
//!
//! ```
//! use wallet_ledger::{Ledger, FixedClock};
//! let clock = FixedClock("2026-01-01T00:00:00Z".parse().unwrap());
//! let ledger = Ledger::in_memory(Box::new(clock)).unwrap();
//! let w = "550e8400-e29b-41d4-a716-446655440000";
//! for line in [
//!     r#"{"op":"define_program","program":1,"name":"Cash","unit":"USD","pockets":[{"pocket":"main","name":"Main","kind":"CASH","asset":"USD","scale":2}]}"#,
//!     r#"{"op":"register_holder","holder":"37b08803-c1af-4e10-849f-530264bac7f8"}"#,
//!     &format!(r#"{{"op":"open_wallet","wallet":"{w}","holder":"37b08803-c1af-4e10-849f-530264bac7f8","program":1}}"#),
//!     &format!(r#"{{"op":"credit","wallet":"{w}","amount":"100"}}"#),
//!     &format!(r#"{{"op":"redeem","wallet":"{w}","amount":"30.5"}}"#),
//! ] {
//!     ledger.execute_line(line).unwrap();
//! }
//! let snap = ledger.snapshot(w.parse().unwrap(), None).unwrap();
//! let main = &snap.pockets[0];
//! assert_eq!(main.figures.balance(), 6950);
//! assert!(ledger.verify().unwrap().ok());
//! ```

pub mod command;
mod domain;
mod error;
pub mod json;
mod ledger;
pub mod limits;
mod model;
pub mod render;
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
pub use ledger::{
    Clock, CommitObserver, CommitStats, DEFAULT_MEMORY_BUDGET, FixedClock, HistoryEntry, Ledger,
    LifecycleEntry, MAX_UNFLUSHED_EVENTS, OpenOptions, PocketSnapshot, Reader, SystemClock,
    Unflushed, WalletSnapshot,
};
pub use model::{
    Card, Figures, LifecycleAction, Order, PaymentMethod, PocketTemplate, Program, Status,
};
pub use verify::Report as VerifyReport;
pub use views::UsageError;

/// The crate's internals, for its own tests, benchmarks and fuzz targets: not part of the API,
/// and free to change in any release.
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
}
