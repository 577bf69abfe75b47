//! Errors: one stable code per failure (SPEC §7), a message naming the offending value, and one
//! error type per operation (open, command, read, verify) that converts into the umbrella [`Error`].

use std::fmt;

/// The stable error codes of SPEC §7, in their reporting order where that order matters.
///
/// The string form ([`ErrorCode::as_str`]) is the wire contract: scripts match on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// Malformed line, unknown op, missing or mistyped field, bad id, oversize input.
    InvalidCommand,
    /// An amount that is not a positive decimal in plain notation.
    InvalidAmount,
    /// An amount with more decimal places than the pocket's scale.
    ScaleExceeded,
    /// A figure would exceed the unit limit ([`crate::limits::MAX_UNITS`]).
    AmountOverflow,
    /// A time that is not RFC 3339 with an offset, outside 1677..2262, or out of order with the command's other times.
    InvalidTime,
    /// `at` is before the wallet's (or the ledger's) last event.
    Backdated,
    /// No program has that id.
    UnknownProgram,
    /// A program with that id is already defined.
    DuplicateProgram,
    /// No holder has that id.
    UnknownHolder,
    /// A holder with that id is already registered.
    DuplicateHolder,
    /// Another holder has that identity or email.
    IdentityTaken,
    /// No wallet has that id (or it did not exist yet at the instant read).
    UnknownWallet,
    /// A wallet with that id is already open.
    DuplicateWallet,
    /// Another wallet has that external id.
    ExternalIdTaken,
    /// The wallet's program has no pocket with that key.
    UnknownPocket,
    /// The pocket has no lot with that id.
    UnknownLot,
    /// The pocket already has a lot with that id.
    DuplicateLot,
    /// `activate` on a lot that is not promised at `at`.
    LotNotPromised,
    /// The pocket has no redemption with that id.
    UnknownRedemption,
    /// The pocket already has a redemption with that id.
    DuplicateRedemption,
    /// A refund larger than what is left of the redemption.
    RefundExceedsRedemption,
    /// The pocket has no hold with that id.
    UnknownHold,
    /// The pocket already has a hold with that id.
    DuplicateHold,
    /// The hold was already captured, released or expired at `at`.
    HoldClosed,
    /// A capture larger than the hold.
    CaptureExceedsHold,
    /// More than is available (or nothing left to reverse, expire or refund).
    InsufficientFunds,
    /// The wallet is frozen.
    WalletFrozen,
    /// The wallet is closed.
    WalletClosed,
    /// `close` on a wallet with a balance, promised value or open holds.
    WalletNotEmpty,
    /// A lifecycle change not allowed from the current status.
    InvalidTransition,
    /// A card with that id is already issued.
    DuplicateCard,
    /// The idempotency key was used for a different command.
    IdempotencyConflict,
    /// I/O failure or corruption; the message says which.
    Storage,
}

impl ErrorCode {
    /// Every code, for tests and documentation.
    pub const ALL: [ErrorCode; 33] = [
        ErrorCode::InvalidCommand,
        ErrorCode::InvalidAmount,
        ErrorCode::ScaleExceeded,
        ErrorCode::AmountOverflow,
        ErrorCode::InvalidTime,
        ErrorCode::Backdated,
        ErrorCode::UnknownProgram,
        ErrorCode::DuplicateProgram,
        ErrorCode::UnknownHolder,
        ErrorCode::DuplicateHolder,
        ErrorCode::IdentityTaken,
        ErrorCode::UnknownWallet,
        ErrorCode::DuplicateWallet,
        ErrorCode::ExternalIdTaken,
        ErrorCode::UnknownPocket,
        ErrorCode::UnknownLot,
        ErrorCode::DuplicateLot,
        ErrorCode::LotNotPromised,
        ErrorCode::UnknownRedemption,
        ErrorCode::DuplicateRedemption,
        ErrorCode::RefundExceedsRedemption,
        ErrorCode::UnknownHold,
        ErrorCode::DuplicateHold,
        ErrorCode::HoldClosed,
        ErrorCode::CaptureExceedsHold,
        ErrorCode::InsufficientFunds,
        ErrorCode::WalletFrozen,
        ErrorCode::WalletClosed,
        ErrorCode::WalletNotEmpty,
        ErrorCode::InvalidTransition,
        ErrorCode::DuplicateCard,
        ErrorCode::IdempotencyConflict,
        ErrorCode::Storage,
    ];

    /// The snake_case wire form.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidCommand => "invalid_command",
            ErrorCode::InvalidAmount => "invalid_amount",
            ErrorCode::ScaleExceeded => "scale_exceeded",
            ErrorCode::AmountOverflow => "amount_overflow",
            ErrorCode::InvalidTime => "invalid_time",
            ErrorCode::Backdated => "backdated",
            ErrorCode::UnknownProgram => "unknown_program",
            ErrorCode::DuplicateProgram => "duplicate_program",
            ErrorCode::UnknownHolder => "unknown_holder",
            ErrorCode::DuplicateHolder => "duplicate_holder",
            ErrorCode::IdentityTaken => "identity_taken",
            ErrorCode::UnknownWallet => "unknown_wallet",
            ErrorCode::DuplicateWallet => "duplicate_wallet",
            ErrorCode::ExternalIdTaken => "external_id_taken",
            ErrorCode::UnknownPocket => "unknown_pocket",
            ErrorCode::UnknownLot => "unknown_lot",
            ErrorCode::DuplicateLot => "duplicate_lot",
            ErrorCode::LotNotPromised => "lot_not_promised",
            ErrorCode::UnknownRedemption => "unknown_redemption",
            ErrorCode::DuplicateRedemption => "duplicate_redemption",
            ErrorCode::RefundExceedsRedemption => "refund_exceeds_redemption",
            ErrorCode::UnknownHold => "unknown_hold",
            ErrorCode::DuplicateHold => "duplicate_hold",
            ErrorCode::HoldClosed => "hold_closed",
            ErrorCode::CaptureExceedsHold => "capture_exceeds_hold",
            ErrorCode::InsufficientFunds => "insufficient_funds",
            ErrorCode::WalletFrozen => "wallet_frozen",
            ErrorCode::WalletClosed => "wallet_closed",
            ErrorCode::WalletNotEmpty => "wallet_not_empty",
            ErrorCode::InvalidTransition => "invalid_transition",
            ErrorCode::DuplicateCard => "duplicate_card",
            ErrorCode::IdempotencyConflict => "idempotency_conflict",
            ErrorCode::Storage => "storage",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a command (or batch) was refused. Nothing was written.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
#[non_exhaustive]
pub struct CommandError {
    /// The stable code.
    pub code: ErrorCode,
    /// What went wrong, naming the offending value.
    pub message: String,
    /// For a failed `batch`: the index (from 0) of the command that failed.
    pub index: Option<usize>,
}

impl CommandError {
    /// An error with `code` and `message` (no batch index).
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        CommandError {
            code,
            message: message.into(),
            index: None,
        }
    }

    pub(crate) fn at_index(mut self, index: usize) -> Self {
        // A nested failure keeps the outermost index: batches do not nest.
        if self.index.is_none() {
            self.index = Some(index);
        }
        self
    }
}

/// Shorthand used throughout the domain: `fail(ErrorCode::X, format!(..))`.
pub(crate) fn fail<T>(code: ErrorCode, message: impl Into<String>) -> Result<T, CommandError> {
    Err(CommandError::new(code, message))
}

/// An I/O failure or corruption found in the store. Carried inside [`CommandError`] (code
/// `storage`) when a command meets it, and returned directly by reads.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("storage: {0}")]
pub struct StorageError(
    /// What failed, and where.
    pub String,
);

impl From<StorageError> for CommandError {
    fn from(e: StorageError) -> Self {
        CommandError::new(ErrorCode::Storage, e.0)
    }
}

macro_rules! storage_from {
    ($($t:ty),*) => {$(
        impl From<$t> for StorageError {
            fn from(e: $t) -> Self {
                StorageError(format!("{}: {e}", stringify!($t)))
            }
        }
        impl From<$t> for CommandError {
            fn from(e: $t) -> Self {
                CommandError::from(StorageError::from(e))
            }
        }
    )*};
}
storage_from!(
    redb::Error,
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

/// Why [`crate::Ledger::open`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// The file could not be opened or created (I/O, not a redb file, damaged).
    #[error("cannot open ledger file: {0}")]
    Storage(#[from] StorageError),
    /// Another handle has the file open: redb lets one process (and one `Ledger`) open a file
    /// at a time. Share the `Ledger` (it is cheap to clone) instead of opening the file twice.
    #[error("cannot open ledger file: another process or handle has it open")]
    AlreadyOpen,
    /// The file was written by a newer, incompatible version of wallet-ledger: its file format
    /// (`meta["schema"]`, the key layout) is not one this build reads or migrates.
    #[error(
        "ledger file has format version {found}, this build reads version {supported}: upgrade wallet-ledger"
    )]
    UnsupportedSchema {
        /// The file's format version.
        found: u32,
        /// The newest format this build reads.
        supported: u32,
    },
}

/// Why a read (figures, snapshot, history) failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReadError {
    /// No wallet has that id.
    #[error("unknown_wallet: no wallet {0}")]
    UnknownWallet(String),
    /// The requested instant is not representable.
    #[error("invalid_time: {0}")]
    InvalidTime(String),
    /// I/O or corruption.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

impl ReadError {
    /// The SPEC §7 code for this failure.
    pub fn code(&self) -> ErrorCode {
        match self {
            ReadError::UnknownWallet(_) => ErrorCode::UnknownWallet,
            ReadError::InvalidTime(_) => ErrorCode::InvalidTime,
            ReadError::Storage(_) => ErrorCode::Storage,
        }
    }
}

/// The umbrella error: every operation's error converts into it, so an application can `?`
/// everything into one type and match on [`Error::code`].
///
/// ```
/// use wallet_ledger::{Error, ErrorCode, FixedClock, Ledger};
///
/// fn figures_of_nobody(ledger: &Ledger) -> Result<(), Error> {
///     ledger.snapshot(uuid::Uuid::nil(), None)?;
///     Ok(())
/// }
///
/// let ledger = Ledger::in_memory(Box::new(FixedClock("2026-01-01T00:00:00Z".parse().unwrap()))).unwrap();
/// let e = figures_of_nobody(&ledger).unwrap_err();
/// assert_eq!(e.code(), ErrorCode::UnknownWallet);
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Opening the ledger file failed.
    #[error(transparent)]
    Open(#[from] OpenError),
    /// A command was refused; nothing was written.
    #[error(transparent)]
    Command(#[from] CommandError),
    /// A read failed.
    #[error(transparent)]
    Read(#[from] ReadError),
    /// A vendor view could not answer the request at all.
    #[error(transparent)]
    Usage(#[from] crate::views::UsageError),
    /// I/O failure or corruption.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

impl Error {
    /// The SPEC §7 code for this failure.
    pub fn code(&self) -> ErrorCode {
        match self {
            Error::Open(e) => e.code(),
            Error::Command(e) => e.code,
            Error::Read(e) => e.code(),
            Error::Usage(e) => e.code(),
            Error::Storage(e) => e.code(),
        }
    }
}

impl StorageError {
    /// Always [`ErrorCode::Storage`].
    pub fn code(&self) -> ErrorCode {
        ErrorCode::Storage
    }
}

impl OpenError {
    /// [`ErrorCode::Storage`]: the file cannot be used, whatever the reason.
    pub fn code(&self) -> ErrorCode {
        ErrorCode::Storage
    }
}
