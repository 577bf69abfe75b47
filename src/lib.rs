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
//! assert_eq!(wallet_ledger::model::format_units(main.figures.balance(), main.scale), "69.5");
//! assert!(ledger.verify().unwrap().ok());
//! ```

pub mod command;
pub mod domain;
pub mod error;
pub mod feed;
pub mod history;
pub mod json;
pub mod ledger;
pub mod limits;
pub mod model;
pub mod render;
pub mod stats;
pub mod storage;
pub mod verify;
pub mod views;

pub use command::{Command, Receipt, Request};
pub use error::{CommandError, Error, ErrorCode, OpenError, ReadError, StorageError};
pub use feed::Change;
pub use history::{Allocation, Destination, HistoryEntry, HistoryEvent};
pub use ledger::{
    Clock, CommitObserver, CommitStats, FixedClock, Ledger, Reader, SystemClock, WalletSnapshot,
};
pub use stats::{LedgerStats, TableStats};
