//! Every limit the ledger enforces, in one place.
//!
//! TigerBeetle's rule: put a limit on everything, so that no input can make a command's cost, a
//! record's size or the memory a parse needs grow without bound. Each limit is checked where input
//! enters (the JSON parser or the typed API) and reported with a specific error code.

/// Longest client-supplied id (wallet external id, lot, hold, redemption, card, holder identity,
/// email, pocket key), in bytes. SPEC §2.
pub const MAX_ID_BYTES: usize = 64;

/// Longest idempotency key, in bytes. SPEC §6.
pub const MAX_KEY_BYTES: usize = 128;

/// Longest free-text field (program name, unit, wallet name, pocket name/kind/asset, reason,
/// payment-method fields), in bytes. Free text is stored in events, so it must be bounded.
pub const MAX_TEXT_BYTES: usize = 256;

/// Longest JSON command line `walletctl apply` and [`crate::json::parse_line`] accept, in bytes.
/// A batch of [`MAX_BATCH_COMMANDS`] ordinary commands fits comfortably.
pub const MAX_LINE_BYTES: usize = 1 << 20;

/// Most commands in one `batch`. One batch is one write transaction; bounding it bounds the
/// transaction's memory (the overlay holds every change until commit).
pub const MAX_BATCH_COMMANDS: usize = 10_000;

/// Most pockets a program may define.
pub const MAX_POCKETS: usize = 32;

/// Largest pocket scale (decimal places). SPEC §2.
pub const MAX_SCALE: u32 = 18;

/// Most characters in an amount's text form (digits plus one dot).
pub const MAX_AMOUNT_CHARS: usize = 64;

/// Largest amount in pocket units (minor units at the pocket's scale): 2^96 − 1, the largest
/// mantissa a `rust_decimal::Decimal` holds, so that every stored figure prints exactly.
/// A pocket's lifetime credits are bounded by it too (`amount_overflow`), which bounds every figure.
pub const MAX_UNITS: u128 = (1u128 << 96) - 1;

/// Most lots one wallet may ever receive. Lot numbers are `u32`; this keeps them far from wrap-around
/// and bounds the per-wallet indexes. A wallet that needs more should be rotated.
pub const MAX_LOTS_PER_WALLET: u32 = 10_000_000;

/// Most holds one wallet may ever place (open or ended).
pub const MAX_HOLDS_PER_WALLET: u32 = 10_000_000;

/// Most holds open at once in one wallet. Each open hold is a due-index entry and pins lot slices.
pub const MAX_OPEN_HOLDS_PER_WALLET: u32 = 10_000;

/// Most redemptions (including captures) one wallet may ever record.
pub const MAX_REDEMPTIONS_PER_WALLET: u32 = 10_000_000;

/// Most payment methods linked to one wallet, and most cards issued to one wallet.
pub const MAX_METHODS_PER_WALLET: usize = 16;

/// Most lifecycle events (create, freeze, unfreeze, delete) of one wallet: they are listed whole
/// in the Juicyway view.
pub const MAX_LIFECYCLE_EVENTS: u32 = 1_000;

/// Largest stored event record, in bytes. Events record intent, never allocation lists, so the
/// largest is an `open_wallet` with [`MAX_POCKETS`] pockets of maximal text.
pub const MAX_EVENT_BYTES: usize = 64 * 1024;

/// Most events `history` returns in one page.
pub const MAX_HISTORY_PAGE: usize = 10_000;
