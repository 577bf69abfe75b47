//! The record decoders on arbitrary bytes: `decode_event` and `decode` of every stored record
//! type return a result, never panic, and never allocate beyond the decode limit (libFuzzer's
//! `-rss_limit_mb` / `-malloc_limit_mb` catch a runaway allocation).
#![no_main]

use libfuzzer_sys::fuzz_target;
use wallet_ledger::internals::domain::event::Event;
use wallet_ledger::internals::domain::state::{
    HoldRec, LedgerState, LifecycleRec, Lot, RedemptionRec, WalletState,
};
use wallet_ledger::internals::model::{Holder, Program};
use wallet_ledger::internals::storage::codec;

fuzz_target!(|data: &[u8]| {
    let _ = codec::decode_event("fuzz", data);
    // Past the 33-byte header the payload decoder runs: give it the input as a payload too.
    let mut rec = vec![codec::SCHEMA_VERSION];
    rec.extend_from_slice(&[0u8; 32]);
    rec.extend_from_slice(data);
    let _ = codec::decode_event("fuzz", &rec);
    let _ = codec::decode::<Event>("fuzz", data);
    let _ = codec::decode::<WalletState>("fuzz", data);
    let _ = codec::decode::<Lot>("fuzz", data);
    let _ = codec::decode::<HoldRec>("fuzz", data);
    let _ = codec::decode::<RedemptionRec>("fuzz", data);
    let _ = codec::decode::<LedgerState>("fuzz", data);
    let _ = codec::decode::<LifecycleRec>("fuzz", data);
    let _ = codec::decode::<Program>("fuzz", data);
    let _ = codec::decode::<Holder>("fuzz", data);
    let _ = codec::decode::<wallet_ledger::Receipt>("fuzz", data);
});
