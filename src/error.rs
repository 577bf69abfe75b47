//! Errors: one stable code per failure (SPEC §7), a message naming the offending value, and one
//! error type per operation (open, command, read, verify) that converts into the umbrella [`Error`].

use std::fmt;

/// The stable error codes of SPEC §7, in their reporting order where that order matters.
///
/// The string form ([`ErrorCode::as_str`]) is the wire contract: scripts match on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    InvalidCommand,
    InvalidAmount,
    ScaleExceeded,
    AmountOverflow,
    InvalidTime,
    Backdated,
    UnknownProgram,
    DuplicateProgram,
    UnknownHolder,
    DuplicateHolder,
    IdentityTaken,
    UnknownWallet,
    DuplicateWallet,
    ExternalIdTaken,
    UnknownPocket,
    UnknownLot,
    DuplicateLot,
    LotNotPromised,
    UnknownRedemption,
    DuplicateRedemption,
    RefundExceedsRedemption,
    UnknownHold,
    DuplicateHold,
    HoldClosed,
    CaptureExceedsHold,
    InsufficientFunds,
    WalletFrozen,
    WalletClosed,
    WalletNotEmpty,
    InvalidTransition,
    DuplicateCard,
    IdempotencyConflict,
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
pub struct StorageError(pub String);

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
    /// The file could not be opened or created (I/O, locked by another process, not a redb file).
    #[error("cannot open ledger file: {0}")]
    Storage(#[from] StorageError),
    /// The file was written by a newer, incompatible version of wallet-ledger: its file format
    /// (`meta["schema"]`, the key layout) is not one this build reads or migrates.
    #[error(
        "ledger file has format version {found}, this build reads version {supported}: upgrade wallet-ledger"
    )]
    UnsupportedSchema { found: u32, supported: u32 },
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

/// The umbrella error: every operation's error converts into it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error(transparent)]
    Open(#[from] OpenError),
    #[error(transparent)]
    Command(#[from] CommandError),
    #[error(transparent)]
    Read(#[from] ReadError),
    #[error(transparent)]
    Storage(#[from] StorageError),
}
