//! `walletd`: the wallet ledger over HTTP. The four vendors' "get wallet details" endpoints,
//! each under its own base path and with the vendor's own authentication and error bodies, and
//! the ledger's command API under `/v1`. See `docs/walletd.md` for the reference.
//!
//! Only [`ledger`] calls into the `wallet_ledger` library; everything else is HTTP.

pub mod app;
pub mod auth;
pub mod config;
pub mod ledger;
pub mod metrics;
pub mod serve;
