//! The change feed: every event of the ledger in log order, from any position on.
//!
//! Every event has a global position, gapless from 1 and strictly increasing in commit order
//! (SPEC §6). [`Ledger::changes`] reads the events after a position, in pages, through the
//! published view: it returns only acknowledged events (durable and answered), never one of a
//! group still being committed, and never skips one, since a group's positions become visible
//! together and after every earlier group's. So a consumer that remembers the last position it
//! processed and restarts from it misses nothing and sees nothing twice.
//!
//! [`Ledger::wait_for`] blocks until a position is acknowledged (or a timeout), woken by the
//! commit that publishes it: a tailing consumer needs no polling loop.
//!
//! Each [`Change`] carries the typed event ([`HistoryEvent`]) but not its allocations: those
//! need a replay of the wallet's stream ([`Ledger::history_page`] gives them).
//!
//! ```
//! use std::time::Duration;
//! use wallet_ledger::{FixedClock, Ledger};
//! let ledger = Ledger::in_memory(Box::new(FixedClock("2026-01-01T00:00:00Z".parse().unwrap()))).unwrap();
//! ledger.execute_line(r#"{"op":"define_program","program":1,"name":"Cash","unit":"USD","pockets":[{"pocket":"main","name":"Main","kind":"CASH","asset":"USD","scale":2}]}"#).unwrap();
//! ledger.execute_line(r#"{"op":"register_holder","holder":"37b08803-c1af-4e10-849f-530264bac7f8"}"#).unwrap();
//! let mut after = 0;
//! let page = ledger.changes(after, 100).unwrap();
//! assert_eq!(page.iter().map(|c| c.position).collect::<Vec<_>>(), [1, 2]);
//! assert_eq!(page[1].event.name(), "holder_registered");
//! assert_eq!(page[1].wallet, None); // a ledger-stream event
//! after = page.last().unwrap().position;
//! // Nothing new: waiting for position 3 times out.
//! assert!(!ledger.wait_for(after + 1, Duration::from_millis(10)));
//! assert!(ledger.changes(after, 100).unwrap().is_empty());
//! ```

use crate::domain::state::{Backing, LEDGER_STREAM};
use crate::error::StorageError;
use crate::history::{HistoryEvent, WalletNames, ledger_event, time_text, wallet_event};
use crate::ledger::{Ledger, guard};
use crate::limits::MAX_HISTORY_PAGE;
use crate::storage::log::{self as logrec, Body, LogKey};
use chrono::{DateTime, Utc};
use serde::ser::{Serialize, SerializeMap, Serializer};
use std::collections::HashMap;
use std::sync::{Condvar, Mutex};
use std::time::Duration;
use uuid::Uuid;

/// One event of the change feed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    /// The event's global position (gapless from 1): resume after it.
    pub position: u64,
    /// The wallet whose stream holds the event; `None` for the ledger stream (programs,
    /// holders).
    pub wallet: Option<Uuid>,
    /// The event's sequence number in its stream (the wallet's, or the ledger stream's).
    pub seq: u64,
    /// When the event took effect.
    pub at: DateTime<Utc>,
    /// What happened.
    pub event: HistoryEvent,
}

/// `walletctl tail`'s object: `{"position","wallet","seq","at","event",…the event's fields}`
/// (`wallet` is `null` for a ledger-stream event; `wallet_opened` does not repeat it).
impl Serialize for Change {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("position", &self.position)?;
        m.serialize_entry("wallet", &self.wallet.map(|w| w.to_string()))?;
        m.serialize_entry("seq", &self.seq)?;
        m.serialize_entry("at", &time_text(self.at))?;
        m.serialize_entry("event", self.event.name())?;
        self.event.write_fields(&mut m, false)?;
        m.end()
    }
}

/// The last acknowledged position, and the signal that it moved: what [`Ledger::wait_for`]
/// waits on. Advanced where a group's view is published.
#[derive(Default)]
pub(crate) struct Feed {
    last: Mutex<u64>,
    moved: Condvar,
}

impl Feed {
    pub(crate) fn new(last: u64) -> Feed {
        Feed {
            last: Mutex::new(last),
            moved: Condvar::new(),
        }
    }

    /// Position `p` is acknowledged (published): wakes every waiter.
    pub(crate) fn published(&self, p: u64) {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        if p > *last {
            *last = p;
            self.moved.notify_all();
        }
    }

    fn last(&self) -> u64 {
        *self.last.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn wait_for(&self, p: u64, timeout: Duration) -> bool {
        let last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        let (last, _) = self
            .moved
            .wait_timeout_while(last, timeout, |last| *last < p)
            .unwrap_or_else(|e| e.into_inner());
        *last >= p
    }
}

impl Ledger {
    /// The events after global position `after` (0: from the first), in position order, at
    /// most `limit` and never more than [`MAX_HISTORY_PAGE`]; only events acknowledged when the
    /// call began. An empty page means the consumer is caught up: [`Ledger::wait_for`] the next
    /// position. Reading the page costs O(log n + page) (no replay).
    pub fn changes(&self, after: u64, limit: usize) -> Result<Vec<Change>, StorageError> {
        guard(|| {
            let limit = limit.min(MAX_HISTORY_PAGE);
            let Some(first) = after.checked_add(1) else {
                return Ok(Vec::new());
            };
            if limit == 0 {
                return Ok(Vec::new());
            }
            let r = self.quick_reader()?;
            let (log, end) = r.log()?;
            let layered = r.layered();
            let mut wallets: HashMap<u64, WalletNames> = HashMap::new();
            let mut out = Vec::with_capacity(limit.min(256));
            for item in log.range(LogKey::event(first).tuple()..)? {
                let (k, v) = item?;
                let k = LogKey::from_tuple(k.value());
                if k > end {
                    break;
                }
                if k.sub != 0 {
                    continue; // a command record: not an event
                }
                let rec = logrec::decode(k, v.value())?;
                let Body::Event {
                    stream, seq, event, ..
                } = rec.body
                else {
                    return Err(StorageError(format!("log {k}: not an event")));
                };
                let (wallet, event) = if stream == LEDGER_STREAM {
                    let typed = ledger_event(&event).ok_or_else(|| {
                        StorageError(format!(
                            "log {k}: a wallet event ({}) on the ledger stream",
                            event.name()
                        ))
                    })?;
                    (None, typed)
                } else {
                    let names = match wallets.entry(stream) {
                        std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                        std::collections::hash_map::Entry::Vacant(e) => {
                            let ws = layered.wallet(stream)?.ok_or_else(|| {
                                StorageError(format!(
                                    "log {k}: an event of wallet number {stream}, which the ledger does not hold"
                                ))
                            })?;
                            e.insert(WalletNames::of(&ws))
                        }
                    };
                    (
                        Some(names.uuid),
                        wallet_event(&layered, names, k.position, &event)?,
                    )
                };
                out.push(Change {
                    position: k.position,
                    wallet,
                    seq,
                    at: crate::model::Instant(rec.at).to_datetime(),
                    event,
                });
                if out.len() == limit {
                    break;
                }
            }
            Ok(out)
        })
    }

    /// The position of the last acknowledged event (0 for an empty ledger).
    pub fn last_position(&self) -> u64 {
        self.feed().last()
    }

    /// Blocks until the event at `position` is acknowledged (then [`Ledger::changes`] returns
    /// it), or `timeout` passes; returns whether it is. Woken by the commit that publishes the
    /// position, so it neither polls nor sleeps longer than needed. Returns at once for a
    /// position already acknowledged.
    pub fn wait_for(&self, position: u64, timeout: Duration) -> bool {
        self.feed().wait_for(position, timeout)
    }
}
