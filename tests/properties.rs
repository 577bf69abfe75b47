//! Property tests of SPEC §5 over random command sequences, run in lock step with an independent
//! reference model (`tests/model/mod.rs`).
//!
//! Every sequence starts from the same small ledger: two programs (one per consumption order),
//! each with two pockets of different scales, one holder, three open wallets, and a fourth wallet
//! that a generated `open_wallet` may open; a fifth wallet id is never opened. The generated steps
//! are credits with and without `activates_at`/`expires_at`, activations, reversals, redemptions,
//! refunds (partial and full), expiries, holds with and without a time-out, captures (partial and
//! full), releases, lifecycle changes, payment methods and cards, sweeps, batches that may fail
//! part way, idempotency keys reused with the same and with different payloads, at times that
//! advance irregularly and are sometimes backdated.
//!
//! Each invariant of §5 is its own property with 256 cases stated explicitly (CI runs at least
//! 256 cases each; `WALLET_PROPTEST_CASES=N` runs more), and every property ends with `verify()`.
//! Failure persistence is off so that no regression file is written into the shared tree: a
//! failure prints its shrunk sequence of steps, which belongs in a plain regression test.
//!
//! The generated steps refer to lots, holds and redemptions the way a client would: by ids
//! learned from earlier receipts (auto-assigned ones included) or by fixed names that may not
//! exist. `the_generator_reaches_every_outcome` guards the generator's weights, so that the
//! properties are not vacuous.

mod model;

use chrono::{DateTime, Duration, Utc};
use model::{Fail, MFigures, Model, Predicted, ns};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use rust_decimal::Decimal;
use std::collections::BTreeMap;
use std::fmt;
use uuid::Uuid;
use wallet_ledger::command::*;
use wallet_ledger::internals::model::{Figures, Order, Status};
use wallet_ledger::limits::MAX_UNITS;
use wallet_ledger::{CommandError, ErrorCode, FixedClock, Ledger, ReadError, WalletSnapshot};
use wallet_ledger::{HistoryEntry, HistoryEvent};

// ---- the fixed starting ledger -------------------------------------------------------------

const HOLDER: Uuid = Uuid::from_u128(0x37b0_8803_c1af_4e10_849f_5302_64ba_c7f8);
/// W0, W2: program 1 (earliest_expiry); W1, W3: program 2 (earliest_issuance). W3 is opened only
/// by a generated step; W4 is never opened.
const WALLETS: [Uuid; 5] = [
    Uuid::from_u128(0x550e_8400_e29b_41d4_a716_4466_5544_0000),
    Uuid::from_u128(0x550e_8400_e29b_41d4_a716_4466_5544_0001),
    Uuid::from_u128(0x550e_8400_e29b_41d4_a716_4466_5544_0002),
    Uuid::from_u128(0x550e_8400_e29b_41d4_a716_4466_5544_0003),
    Uuid::from_u128(0x550e_8400_e29b_41d4_a716_4466_5544_0004),
];
const PROGRAM_OF: [u64; 5] = [1, 2, 1, 2, 1];
const POCKETS_1: [&str; 2] = ["main", "pts"];
const POCKETS_2: [&str; 2] = ["cash", "btc"];

fn t0() -> DateTime<Utc> {
    "2026-01-01T00:00:00Z".parse().unwrap()
}

fn hours(h: i64) -> Duration {
    Duration::hours(h)
}

fn pocket_spec(key: &str, scale: u32) -> PocketSpec {
    PocketSpec {
        pocket: key.into(),
        name: key.to_uppercase(),
        kind: "POINTS".into(),
        asset: key.to_uppercase(),
        scale,
    }
}

fn setup_requests() -> Vec<Request> {
    let at = t0();
    let mut v = vec![
        Request::new(Command::DefineProgram(DefineProgram {
            program: 1,
            name: "Expiry first".into(),
            unit: "Coins".into(),
            order: Order::EarliestExpiry,
            pockets: vec![pocket_spec("main", 2), pocket_spec("pts", 0)],
        })),
        Request::new(Command::DefineProgram(DefineProgram {
            program: 2,
            name: "Issuance first".into(),
            unit: "Cash".into(),
            order: Order::EarliestIssuance,
            pockets: vec![pocket_spec("cash", 3), pocket_spec("btc", 8)],
        })),
        Request::new(Command::RegisterHolder(RegisterHolder {
            holder: Some(HOLDER),
            identity: Some("alice".into()),
            email: Some("alice@example.com".into()),
        })),
    ];
    for (i, ext) in [(0, None), (1, None), (2, Some("ext-2"))] {
        v.push(Request::new(Command::OpenWallet(OpenWallet {
            wallet: Some(WALLETS[i]),
            holder: HOLDER,
            program: PROGRAM_OF[i],
            name: None,
            external_id: ext.map(String::from),
        })));
    }
    // Starting funds, so that spending is possible from the first step: lots with and without
    // expiry in every pocket of W0 and W1.
    let credit = |w: usize, pocket: &str, amount: Decimal, lot: &str, days: Option<i64>| {
        Request::new(Command::Credit(Credit {
            wallet: WALLETS[w],
            pocket: Some(pocket.into()),
            amount,
            lot: Some(lot.into()),
            activates_at: None,
            expires_at: days.map(|d| at + Duration::days(d)),
        }))
    };
    v.extend([
        credit(0, "main", Decimal::new(50000, 2), "S1", Some(10)),
        credit(0, "main", Decimal::new(30000, 2), "S2", None),
        credit(0, "pts", Decimal::new(1000, 0), "S3", Some(5)),
        credit(1, "cash", Decimal::new(800, 0), "S1", Some(7)),
        credit(1, "cash", Decimal::new(200, 0), "S2", Some(3)),
        credit(1, "btc", Decimal::new(25, 1), "S3", None),
    ]);
    // And promised value, to activate early or see activate by time.
    for (w, pocket, lot, days) in [(0, "main", "P1", 3), (1, "cash", "P2", 2)] {
        v.push(Request::new(Command::Credit(Credit {
            wallet: WALLETS[w],
            pocket: Some(pocket.into()),
            amount: Decimal::new(120, 0),
            lot: Some(lot.into()),
            activates_at: Some(at + Duration::days(days)),
            expires_at: Some(at + Duration::days(20)),
        })));
    }
    v.into_iter().map(|r| r.at(at)).collect()
}

// ---- generated steps -----------------------------------------------------------------------

/// An amount `mantissa × 10^−scale`, shown as the decimal.
#[derive(Clone, Copy)]
struct Amt(u32, u8);

impl Amt {
    fn dec(self) -> Decimal {
        Decimal::new(i64::from(self.0), u32::from(self.1))
    }
}

impl fmt::Debug for Amt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.dec())
    }
}

/// Which pocket a command names: omitted (the first), the first or second by key, or a key the
/// wallet does not have.
#[derive(Clone, Copy, Debug)]
enum Pocket {
    Omitted,
    First,
    Second,
    Unknown,
}

/// One generated command. `w` indexes [`WALLETS`]; times are hours relative to the command's `at`.
#[derive(Clone, Debug)]
enum Op {
    Credit {
        w: usize,
        pocket: Pocket,
        amount: Amt,
        lot: Option<&'static str>,
        activates: Option<i16>,
        expires: Option<i16>,
    },
    Activate {
        w: usize,
        pocket: Pocket,
        lot: Ref,
    },
    Reverse {
        w: usize,
        pocket: Pocket,
        lot: Ref,
        amount: Option<Amt>,
    },
    Redeem {
        w: usize,
        pocket: Pocket,
        amount: Amt,
        redemption: Option<&'static str>,
    },
    Refund {
        w: usize,
        pocket: Pocket,
        redemption: Ref,
        amount: Option<Amt>,
    },
    Expire {
        w: usize,
        pocket: Pocket,
        amount: Option<Amt>,
    },
    Hold {
        w: usize,
        pocket: Pocket,
        amount: Amt,
        hold: Option<&'static str>,
        expires: Option<i16>,
    },
    Capture {
        w: usize,
        pocket: Pocket,
        hold: Ref,
        amount: Option<Amt>,
        redemption: Option<&'static str>,
    },
    Release {
        w: usize,
        pocket: Pocket,
        hold: Ref,
    },
    Freeze(usize),
    Unfreeze(usize),
    /// `unfreeze` if the wallet is frozen (as a client reading its status would), else `sweep`:
    /// keeps frozen spells short.
    Thaw(usize),
    Close(usize),
    Link(usize),
    Card(usize, &'static str),
    OpenW3 {
        external: bool,
    },
    Sweep,
}

/// A reference to a lot, hold or redemption: one the client knows from an earlier receipt of
/// that wallet (the `n`-th, modulo how many there are; auto-assigned ids included), or a fixed
/// name that may or may not exist.
#[derive(Clone, Copy, Debug)]
enum Ref {
    Known(u8),
    Named(&'static str),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Object {
    Lot,
    Hold,
    Redemption,
}

#[derive(Clone, Copy, Debug)]
enum Dt {
    Same,
    Fwd(u16),
    Back(u16),
    /// Jump exactly to a boundary: the `n`-th (modulo) instant not before the cursor among the
    /// `activates_at` / `expires_at` times named by earlier requests.
    Due(u8),
}

#[derive(Clone, Debug)]
enum Kind {
    One(Op),
    /// Inner commands with an optional own `at` (hours after the batch's).
    Batch(Vec<(Option<u8>, Op)>),
    /// Re-submits an earlier request (same key, same payload), at its own time or at this step's.
    Repeat {
        back: u8,
        same_time: bool,
        /// Only among earlier requests that carried a key.
        keyed: bool,
    },
}

#[derive(Clone, Debug)]
struct Step {
    dt: Dt,
    key: Option<&'static str>,
    kind: Kind,
    /// A read instant, in hours from the clock cursor (negative: in the past).
    probe: i16,
}

const LOTS: [&str; 5] = ["A", "B", "C", "D", "E"];
const HOLDS: [&str; 3] = ["H0", "H1", "H2"];
const REDEMPTIONS: [&str; 4] = ["R0", "R1", "R2", "H0"];
const REFUNDABLE: [&str; 5] = ["R0", "R1", "R2", "H0", "H1"];
const CARDS: [&str; 2] = ["card-1", "card-2"];
const KEYS: [&str; 6] = ["k0", "k1", "k2", "k3", "k4", "k5"];

fn wallet() -> impl Strategy<Value = usize> {
    prop_oneof![12 => Just(0usize), 8 => Just(1), 1 => Just(2), 1 => Just(3), 1 => Just(4)]
}

/// `close` succeeds only on an empty wallet and ends it: mostly aim it at the quiet W2.
fn wallet_to_close() -> impl Strategy<Value = usize> {
    prop_oneof![1 => Just(0usize), 1 => Just(1), 8 => Just(2), 2 => Just(3)]
}

fn pocket() -> impl Strategy<Value = Pocket> {
    prop_oneof![
        8 => Just(Pocket::Omitted),
        2 => Just(Pocket::First),
        3 => Just(Pocket::Second),
        1 => Just(Pocket::Unknown),
    ]
}

/// Amounts taken out (redeem, hold, refund, …): smaller than credits on average, so that both
/// success and `insufficient_funds` are common.
fn amt() -> impl Strategy<Value = Amt> {
    prop_oneof![
        4 => (1u32..=100).prop_map(|m| Amt(m, 0)),
        1 => (1u32..=10_000, 0u8..=3).prop_map(|(m, s)| Amt(m, s)),
    ]
}

fn credit_amt() -> impl Strategy<Value = Amt> {
    prop_oneof![
        3 => (1u32..=1000).prop_map(|m| Amt(m, 0)),
        2 => (1u32..=100_000, 0u8..=3).prop_map(|(m, s)| Amt(m, s)),
    ]
}

fn opt_amt() -> impl Strategy<Value = Option<Amt>> {
    prop::option::weighted(0.5, amt())
}

fn pick(names: &'static [&'static str]) -> impl Strategy<Value = &'static str> {
    prop::sample::select(names)
}

/// Mostly one of the few most recent objects the client knows of (likelier still open or free).
fn known_or(names: &'static [&'static str]) -> impl Strategy<Value = Ref> {
    prop_oneof![
        6 => (0u8..3).prop_map(Ref::Known),
        2 => any::<u8>().prop_map(Ref::Known),
        2 => pick(names).prop_map(Ref::Named),
    ]
}

/// The pocket named with a reference: mostly left to the object's own.
fn ref_pocket() -> impl Strategy<Value = Pocket> {
    prop_oneof![
        12 => Just(Pocket::Omitted),
        1 => Just(Pocket::First),
        1 => Just(Pocket::Second),
        1 => Just(Pocket::Unknown),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        10 => (
            wallet(),
            pocket(),
            credit_amt(),
            prop::option::weighted(0.7, pick(&LOTS)),
            prop::option::weighted(0.4, -24i16..=300),
            prop::option::weighted(0.6, 1i16..=600),
        )
            .prop_map(|(w, pocket, amount, lot, activates, expires)| Op::Credit {
                w,
                pocket,
                amount,
                lot,
                activates,
                expires,
            }),
        3 => (wallet(), ref_pocket(), known_or(&LOTS))
            .prop_map(|(w, pocket, lot)| Op::Activate { w, pocket, lot }),
        3 => (wallet(), ref_pocket(), known_or(&LOTS), opt_amt())
            .prop_map(|(w, pocket, lot, amount)| Op::Reverse { w, pocket, lot, amount }),
        6 => (wallet(), pocket(), amt(), prop::option::weighted(0.7, pick(&REDEMPTIONS)))
            .prop_map(|(w, pocket, amount, redemption)| Op::Redeem {
                w,
                pocket,
                amount,
                redemption,
            }),
        4 => (wallet(), ref_pocket(), known_or(&REFUNDABLE), opt_amt())
            .prop_map(|(w, pocket, redemption, amount)| Op::Refund {
                w,
                pocket,
                redemption,
                amount,
            }),
        2 => (wallet(), pocket(), opt_amt())
            .prop_map(|(w, pocket, amount)| Op::Expire { w, pocket, amount }),
        8 => (
            wallet(),
            pocket(),
            amt(),
            prop::option::weighted(0.8, pick(&HOLDS)),
            prop::option::weighted(0.5, -2i16..=300),
        )
            .prop_map(|(w, pocket, amount, hold, expires)| Op::Hold {
                w,
                pocket,
                amount,
                hold,
                expires,
            }),
        4 => (
            wallet(),
            ref_pocket(),
            known_or(&HOLDS),
            opt_amt(),
            prop::option::weighted(0.3, pick(&REDEMPTIONS)),
        )
            .prop_map(|(w, pocket, hold, amount, redemption)| Op::Capture {
                w,
                pocket,
                hold,
                amount,
                redemption,
            }),
        3 => (wallet(), ref_pocket(), known_or(&HOLDS))
            .prop_map(|(w, pocket, hold)| Op::Release { w, pocket, hold }),
        1 => wallet().prop_map(Op::Freeze),
        1 => wallet().prop_map(Op::Unfreeze),
        4 => wallet().prop_map(Op::Thaw),
        1 => wallet_to_close().prop_map(Op::Close),
        1 => wallet().prop_map(Op::Link),
        1 => (wallet(), pick(&CARDS)).prop_map(|(w, c)| Op::Card(w, c)),
        2 => any::<bool>().prop_map(|external| Op::OpenW3 { external }),
        2 => Just(Op::Sweep),
    ]
}

fn dt() -> impl Strategy<Value = Dt> {
    prop_oneof![
        3 => Just(Dt::Same),
        6 => (1u16..=12).prop_map(Dt::Fwd),
        2 => (12u16..=120).prop_map(Dt::Fwd),
        1 => (1u16..=48).prop_map(Dt::Back),
        2 => (0u8..4).prop_map(Dt::Due),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    let kind = prop_oneof![
        14 => op().prop_map(Kind::One),
        2 => prop::collection::vec((prop::option::weighted(0.25, 0u8..=6), op()), 2..=4)
            .prop_map(Kind::Batch),
        2 => (0u8..8, any::<bool>(), prop::bool::weighted(0.7))
            .prop_map(|(back, same_time, keyed)| Kind::Repeat { back, same_time, keyed }),
    ];
    (
        dt(),
        prop::option::weighted(0.1, pick(&KEYS)),
        kind,
        -300i16..=400,
    )
        .prop_map(|(dt, key, kind, probe)| Step {
            dt,
            key,
            kind,
            probe,
        })
}

fn steps() -> impl Strategy<Value = Vec<Step>> {
    prop::collection::vec(step(), 1..64)
}

fn pocket_key(w: usize, p: Pocket) -> Option<String> {
    let keys = if PROGRAM_OF[w] == 1 {
        POCKETS_1
    } else {
        POCKETS_2
    };
    match p {
        Pocket::Omitted => None,
        Pocket::First => Some(keys[0].into()),
        Pocket::Second => Some(keys[1].into()),
        Pocket::Unknown => Some("nope".into()),
    }
}

/// Ids the client learned from receipts: (wallet index, kind) → [(id, pocket key)].
type Known = BTreeMap<(usize, Object), Vec<(String, String)>>;

fn resolve(
    known: &Known,
    w: usize,
    what: Object,
    r: Ref,
    pocket: Pocket,
) -> (String, Option<String>) {
    let fallback = match what {
        Object::Lot => "A",
        Object::Hold => "H0",
        Object::Redemption => "R0",
    };
    match (r, known.get(&(w, what))) {
        (Ref::Known(i), Some(v)) if !v.is_empty() => {
            // Counted from the most recent.
            let (id, pk) = &v[v.len() - 1 - i as usize % v.len()];
            let pocket = match pocket {
                // Name the object's own pocket, leaving it out when it is the first one.
                Pocket::Omitted => {
                    (pocket_key(w, Pocket::First).as_ref() != Some(pk)).then(|| pk.clone())
                }
                p => pocket_key(w, p),
            };
            (id.clone(), pocket)
        }
        (Ref::Known(_), _) => (fallback.into(), pocket_key(w, pocket)),
        (Ref::Named(n), _) => (n.into(), pocket_key(w, pocket)),
    }
}

/// What the client knows when it writes a request: ids from receipts, and each wallet's status.
struct Ctx<'a> {
    known: &'a Known,
    status: [Option<Status>; 5],
}

fn command(op: &Op, at: DateTime<Utc>, ctx: &Ctx) -> Command {
    let known = ctx.known;
    let s = |x: &str| x.to_string();
    match *op {
        Op::Credit {
            w,
            pocket,
            amount,
            lot,
            activates,
            expires,
        } => Command::Credit(Credit {
            wallet: WALLETS[w],
            pocket: pocket_key(w, pocket),
            amount: amount.dec(),
            lot: lot.map(s),
            activates_at: activates.map(|h| at + hours(h.into())),
            expires_at: expires.map(|h| at + hours(h.into())),
        }),
        Op::Activate { w, pocket, lot } => {
            let (lot, pocket) = resolve(known, w, Object::Lot, lot, pocket);
            Command::Activate(Activate {
                wallet: WALLETS[w],
                pocket,
                lot,
            })
        }
        Op::Reverse {
            w,
            pocket,
            lot,
            amount,
        } => {
            let (lot, pocket) = resolve(known, w, Object::Lot, lot, pocket);
            Command::ReverseCredit(ReverseCredit {
                wallet: WALLETS[w],
                pocket,
                lot,
                amount: amount.map(Amt::dec),
            })
        }
        Op::Redeem {
            w,
            pocket,
            amount,
            redemption,
        } => Command::Redeem(Redeem {
            wallet: WALLETS[w],
            pocket: pocket_key(w, pocket),
            amount: amount.dec(),
            redemption: redemption.map(s),
        }),
        Op::Refund {
            w,
            pocket,
            redemption,
            amount,
        } => {
            let (redemption, pocket) = resolve(known, w, Object::Redemption, redemption, pocket);
            Command::Refund(Refund {
                wallet: WALLETS[w],
                pocket,
                redemption,
                amount: amount.map(Amt::dec),
            })
        }
        Op::Expire { w, pocket, amount } => Command::Expire(Expire {
            wallet: WALLETS[w],
            pocket: pocket_key(w, pocket),
            amount: amount.map(Amt::dec),
        }),
        Op::Hold {
            w,
            pocket,
            amount,
            hold,
            expires,
        } => Command::Hold(Hold {
            wallet: WALLETS[w],
            pocket: pocket_key(w, pocket),
            amount: amount.dec(),
            hold: hold.map(s),
            expires_at: expires.map(|h| at + hours(h.into())),
        }),
        Op::Capture {
            w,
            pocket,
            hold,
            amount,
            redemption,
        } => {
            let (hold, pocket) = resolve(known, w, Object::Hold, hold, pocket);
            Command::Capture(Capture {
                wallet: WALLETS[w],
                pocket,
                hold,
                amount: amount.map(Amt::dec),
                redemption: redemption.map(s),
            })
        }
        Op::Release { w, pocket, hold } => {
            let (hold, pocket) = resolve(known, w, Object::Hold, hold, pocket);
            Command::Release(Release {
                wallet: WALLETS[w],
                pocket,
                hold,
            })
        }
        Op::Freeze(w) => Command::Freeze(Lifecycle {
            wallet: WALLETS[w],
            reason: Some("test".into()),
        }),
        Op::Thaw(w) if ctx.status[w] != Some(Status::Frozen) => Command::Sweep,
        Op::Unfreeze(w) | Op::Thaw(w) => Command::Unfreeze(Lifecycle {
            wallet: WALLETS[w],
            reason: None,
        }),
        Op::Close(w) => Command::Close(Lifecycle {
            wallet: WALLETS[w],
            reason: None,
        }),
        Op::Link(w) => Command::LinkPaymentMethod(LinkPaymentMethod {
            wallet: WALLETS[w],
            method: wallet_ledger::internals::model::PaymentMethod {
                account_name: "Alice".into(),
                account_number: "0123456789".into(),
                account_type: "savings".into(),
                address: None,
                bank_address: None,
                bank_code: "058".into(),
                bank_name: "Bank".into(),
            },
        }),
        Op::Card(w, card) => Command::IssueCard(IssueCard {
            wallet: WALLETS[w],
            card: s(card),
            masked_pan: Some("4111********1111".into()),
            status: None,
        }),
        Op::OpenW3 { external } => Command::OpenWallet(OpenWallet {
            wallet: Some(WALLETS[3]),
            holder: HOLDER,
            program: 2,
            name: None,
            external_id: external.then(|| "ext-2".into()),
        }),
        Op::Sweep => Command::Sweep,
    }
}

// ---- the harness ---------------------------------------------------------------------------

fn show(req: &Request) -> String {
    wallet_ledger::json::to_value(req).to_string()
}

macro_rules! ensure {
    ($cond:expr, $($fmt:tt)+) => {
        if !$cond {
            return Err(TestCaseError::fail(format!($($fmt)+)));
        }
    };
}

/// 256 cases per property (CI runs at least that many). `WALLET_PROPTEST_CASES=N` raises it
/// for a longer local hunt; it never lowers it.
fn config() -> ProptestConfig {
    let mut c = ProptestConfig::with_cases(256);
    if let Some(n) = std::env::var("WALLET_PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse::<u32>().ok())
    {
        c.cases = c.cases.max(n);
    }
    c.failure_persistence = None;
    c
}

/// A ledger (and optionally the model) driven by generated steps.
struct Harness {
    ledger: Ledger,
    model: Option<Model>,
    cursor: DateTime<Utc>,
    /// Every generated request submitted so far (for `Repeat`).
    sent: Vec<Request>,
    known: Known,
    /// Every `activates_at` / `expires_at` named so far.
    boundaries: Vec<DateTime<Utc>>,
    n: usize,
}

struct Outcome {
    at: DateTime<Utc>,
    result: Result<Receipt, CommandError>,
}

/// A new in-memory ledger; every other one flushes its in-memory layer after every 7 events, so
/// the properties hold across flushes as well as within the layer.
fn new_ledger() -> Ledger {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let o = wallet_ledger::OpenOptions::new().clock(Box::new(FixedClock(t0())));
    let o = if n.is_multiple_of(2) {
        o.max_unflushed_events(7)
    } else {
        o
    };
    o.in_memory().unwrap()
}

impl Harness {
    fn new(with_model: bool) -> Harness {
        let mut h = Harness {
            ledger: new_ledger(),
            model: with_model.then(Model::new),
            cursor: t0() + hours(1),
            sent: Vec::new(),
            known: Known::new(),
            boundaries: Vec::new(),
            n: 0,
        };
        for r in setup_requests() {
            h.note_boundaries(&r);
            let receipt = h.ledger.execute(&r).expect("setup succeeds");
            h.learn(&receipt);
            if let Some(m) = &mut h.model {
                m.execute(&r, Some(&receipt))
                    .expect("the model accepts the setup");
            }
        }
        h
    }

    /// The request of a step; moves the clock cursor.
    fn request(&mut self, step: &Step) -> Request {
        let at = match step.dt {
            Dt::Same => self.cursor,
            Dt::Fwd(h) => {
                self.cursor += hours(h.into());
                self.cursor
            }
            Dt::Back(h) => self.cursor - hours(h.into()),
            Dt::Due(n) => {
                let mut due: Vec<DateTime<Utc>> = self
                    .boundaries
                    .iter()
                    .copied()
                    .filter(|t| *t >= self.cursor)
                    .collect();
                due.sort();
                due.dedup();
                if !due.is_empty() {
                    self.cursor = due[n as usize % due.len()];
                }
                self.cursor
            }
        };
        match &step.kind {
            Kind::One(op) => Request {
                at: Some(at),
                key: step.key.map(String::from),
                command: command(op, at, &self.ctx()),
            },
            Kind::Batch(items) => Request {
                at: Some(at),
                key: step.key.map(String::from),
                command: Command::Batch({
                    let ctx = self.ctx();
                    items
                        .iter()
                        .map(|(off, op)| {
                            let iat = off.map(|h| at + hours(h.into()));
                            Request {
                                at: iat,
                                key: None,
                                command: command(op, iat.unwrap_or(at), &ctx),
                            }
                        })
                        .collect()
                }),
            },
            Kind::Repeat {
                back,
                same_time,
                keyed,
            } => {
                let pool: Vec<&Request> = self
                    .sent
                    .iter()
                    .filter(|r| !keyed || r.key.is_some())
                    .collect();
                if pool.is_empty() {
                    return Request::new(Command::Sweep).at(at);
                }
                let mut r = pool[pool.len() - 1 - (*back as usize % pool.len())].clone();
                if !same_time {
                    r.at = Some(at);
                }
                r
            }
        }
    }

    fn ctx(&self) -> Ctx<'_> {
        let far = self.cursor + hours(100_000);
        Ctx {
            known: &self.known,
            status: std::array::from_fn(|w| self.snap(w, far).ok().map(|s| s.status)),
        }
    }

    fn note_boundaries(&mut self, req: &Request) {
        match &req.command {
            Command::Credit(c) => self
                .boundaries
                .extend(c.activates_at.iter().chain(&c.expires_at).copied()),
            Command::Hold(c) => self.boundaries.extend(c.expires_at),
            Command::Batch(items) => items.iter().for_each(|r| self.note_boundaries(r)),
            _ => {}
        }
    }

    /// Learns the ids a receipt names, as a client would.
    fn learn(&mut self, r: &Receipt) {
        for inner in &r.commands {
            self.learn(inner);
        }
        let Some(w) = r
            .wallet
            .as_ref()
            .and_then(|id| WALLETS.iter().position(|x| x == id))
        else {
            return;
        };
        let found = match r.op.as_str() {
            "credit" => r.lot.clone().map(|id| (Object::Lot, id)),
            "hold" => r.hold.clone().map(|id| (Object::Hold, id)),
            "redeem" | "capture" => r.redemption.clone().map(|id| (Object::Redemption, id)),
            _ => None,
        };
        if let (Some((what, id)), Some(pocket)) = (found, r.pocket.clone()) {
            let v = self.known.entry((w, what)).or_default();
            if !v.iter().any(|(x, _)| *x == id) {
                v.push((id, pocket));
            }
        }
    }

    fn probe(&self, step: &Step) -> DateTime<Utc> {
        self.cursor + hours(step.probe.into())
    }

    /// Submits a request to the ledger (and the model, comparing their outcomes).
    fn submit(&mut self, req: &Request) -> Result<Outcome, TestCaseError> {
        self.n += 1;
        self.note_boundaries(req);
        let result = self.ledger.execute(req);
        if let Ok(r) = &result {
            self.learn(r);
        }
        if let Some(m) = &mut self.model {
            let predicted = m.execute(req, result.as_ref().ok());
            let agree = match (&result, &predicted) {
                (Ok(r), Ok(Predicted::Done { events })) => !r.replayed && r.events == *events,
                (Ok(r), Ok(Predicted::Replayed(orig))) => r == orig.as_ref(),
                (Err(e), Err(Fail { code, index })) => e.code == *code && e.index == *index,
                _ => false,
            };
            ensure!(
                agree,
                "request #{} {}\n ledger: {:?}\n model:  {:?}",
                self.n,
                show(req),
                result,
                predicted
            );
            if let Ok(r) = &result
                && !r.replayed
            {
                m.remember(req, r);
            }
        }
        self.sent.push(req.clone());
        Ok(Outcome {
            at: req.at.expect("generated requests carry `at`"),
            result,
        })
    }

    fn snap(&self, w: usize, t: DateTime<Utc>) -> Result<WalletSnapshot, ReadError> {
        self.ledger.snapshot(WALLETS[w], Some(t))
    }

    fn histories(&self) -> Vec<Result<Vec<HistoryEntry>, ReadError>> {
        WALLETS.iter().map(|w| self.ledger.history(*w)).collect()
    }

    fn verify(&self) -> Result<u64, TestCaseError> {
        let r = self.ledger.verify().unwrap();
        ensure!(r.ok(), "verify failed: {:?}", r.problems);
        Ok(r.events)
    }

    /// Model and ledger agree on a wallet's status and every pocket's figures as of `t`.
    fn matches_model(&self, w: usize, t: DateTime<Utc>) -> Result<(), TestCaseError> {
        let m = self.model.as_ref().expect("harness with model");
        let mine = m.wallet_at(WALLETS[w], ns(&t));
        let theirs = self.snap(w, t);
        match (mine, theirs) {
            (None, Err(e)) if e.code() == ErrorCode::UnknownWallet => Ok(()),
            (Some(mw), Ok(s)) => {
                ensure!(
                    s.status == mw.status,
                    "wallet {w} at {t}: status {:?}, model {:?}",
                    s.status,
                    mw.status
                );
                for (p, f) in s.pockets.iter().zip(mw.figures()) {
                    ensure!(
                        same_figures(&p.units(), &f),
                        "wallet {w} pocket {} at {t}:\n ledger {:?}\n model  {:?}",
                        p.pocket,
                        p.units(),
                        f
                    );
                }
                Ok(())
            }
            (mine, theirs) => Err(TestCaseError::fail(format!(
                "wallet {w} at {t}: model {:?}, ledger {:?}",
                mine.map(|_| "exists"),
                theirs.map(|_| "exists")
            ))),
        }
    }

    /// The figures of one wallet's pockets from the model.
    fn model_figures(&self, w: usize, t: DateTime<Utc>) -> Option<Vec<MFigures>> {
        self.model.as_ref()?.figures_at(WALLETS[w], ns(&t))
    }
}

fn same_figures(l: &Figures, m: &MFigures) -> bool {
    l.promised == m.promised
        && l.credited == m.credited
        && l.redeemed == m.redeemed
        && l.expired == m.expired
        && l.on_hold == m.on_hold
}

/// Instants every property reads at: the command's `at`, the step's probe (past or future), a
/// point far in the future (every time-out and expiry due), and just before `at`.
fn instants(h: &Harness, step: &Step, at: DateTime<Utc>) -> Vec<DateTime<Utc>> {
    vec![
        at,
        h.probe(step),
        h.cursor + hours(2000),
        at - Duration::nanoseconds(1),
    ]
}

/// The four stored figures as rendered by `show`, as exact decimals.
fn rendered(s: &WalletSnapshot) -> Vec<BTreeMap<String, Decimal>> {
    let v = wallet_ledger::render::snapshot(s);
    v["pockets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            p.as_object()
                .unwrap()
                .iter()
                .filter(|(k, _)| !matches!(k.as_str(), "pocket" | "asset"))
                .map(|(k, v)| (k.clone(), v.as_str().unwrap().parse::<Decimal>().unwrap()))
                .collect()
        })
        .collect()
}

// ---- §5 invariants, one property each --------------------------------------------------------

proptest! {
    #![proptest_config(config())]

    /// Every figure ≥ 0: checked arithmetic on the stored figures (a wrapped subtraction would
    /// show as a huge value), and every rendered figure is a non-negative decimal.
    #[test]
    fn every_figure_is_non_negative(steps in steps()) {
        let mut h = Harness::new(false);
        for step in &steps {
            let req = h.request(step);
            let out = h.submit(&req)?;
            for w in 0..WALLETS.len() {
                for t in instants(&h, step, out.at) {
                    let Ok(s) = h.snap(w, t) else { continue };
                    for p in &s.pockets {
                        let f = p.units();
                        let spent = f.redeemed.checked_add(f.expired);
                        prop_assert!(
                            spent.is_some_and(|x| x <= f.credited),
                            "wallet {} pocket {} at {}: redeemed + expired > credited: {:?}",
                            w, p.pocket, t, f
                        );
                        prop_assert!(f.credited <= MAX_UNITS && f.promised <= MAX_UNITS, "{:?}", f);
                        prop_assert!(f.on_hold <= f.credited - spent.unwrap(), "{:?}", f);
                    }
                    for (i, figs) in rendered(&s).iter().enumerate() {
                        prop_assert_eq!(figs.len(), 9);
                        for (k, v) in figs {
                            prop_assert!(
                                !v.is_sign_negative(),
                                "wallet {} pocket #{} at {}: {} = {}", w, i, t, k, v
                            );
                        }
                    }
                }
            }
        }
        h.verify()?;
    }

    /// `available` ≥ 0: on_hold never exceeds balance, and the rendered `available` is the
    /// non-negative difference.
    #[test]
    fn available_is_never_negative(steps in steps()) {
        let mut h = Harness::new(false);
        for step in &steps {
            let req = h.request(step);
            let out = h.submit(&req)?;
            for w in 0..WALLETS.len() {
                for t in instants(&h, step, out.at) {
                    let Ok(s) = h.snap(w, t) else { continue };
                    for (p, r) in s.pockets.iter().zip(rendered(&s)) {
                        let f = p.units();
                        let balance = f.credited.checked_sub(f.redeemed + f.expired);
                        prop_assert!(
                            balance.is_some_and(|b| f.on_hold <= b),
                            "wallet {} pocket {} at {}: on_hold above balance: {:?}", w, p.pocket, t, f
                        );
                        prop_assert!(r["available"] >= Decimal::ZERO);
                        prop_assert_eq!(r["available"], r["balance"] - r["on_hold"]);
                    }
                }
            }
        }
        h.verify()?;
    }

    /// `balance = available + on_hold`, where the model derives `available` as the free value of
    /// active lots and `on_hold` as the open holds, independently of the ledger's arithmetic.
    #[test]
    fn balance_is_available_plus_on_hold(steps in steps()) {
        let mut h = Harness::new(true);
        for step in &steps {
            let req = h.request(step);
            let out = h.submit(&req)?;
            for w in 0..WALLETS.len() {
                for t in instants(&h, step, out.at) {
                    let (Ok(s), Some(m)) = (h.snap(w, t), h.model_figures(w, t)) else { continue };
                    for ((p, r), mf) in s.pockets.iter().zip(rendered(&s)).zip(m) {
                        let f = p.units();
                        prop_assert_eq!(r["balance"], r["available"] + r["on_hold"]);
                        prop_assert_eq!(f.available(), mf.free_active, "wallet {} {} at {}", w, p.pocket, t);
                        prop_assert_eq!(f.on_hold, mf.held, "wallet {} {} at {}", w, p.pocket, t);
                        prop_assert_eq!(f.balance(), mf.free_active + mf.held);
                    }
                }
            }
        }
        h.verify()?;
    }

    /// `credited = balance + redeemed + expired` at random instants (past, present, future), with
    /// credited, redeemed and expired each checked against the model's sums over lots and
    /// redemptions.
    #[test]
    fn credited_is_balance_plus_redeemed_plus_expired(steps in steps()) {
        let mut h = Harness::new(true);
        for step in &steps {
            let req = h.request(step);
            let out = h.submit(&req)?;
            for w in 0..WALLETS.len() {
                for t in instants(&h, step, out.at) {
                    let (Ok(s), Some(m)) = (h.snap(w, t), h.model_figures(w, t)) else { continue };
                    for ((p, r), mf) in s.pockets.iter().zip(rendered(&s)).zip(m) {
                        prop_assert_eq!(r["credited"], r["balance"] + r["redeemed"] + r["expired"]);
                        prop_assert_eq!(r["total"], r["balance"] + r["promised"]);
                        prop_assert_eq!(r["pending"], r["promised"] + r["on_hold"]);
                        let f = p.units();
                        prop_assert_eq!(
                            (f.credited, f.redeemed, f.expired),
                            (mf.credited, mf.redeemed, mf.expired),
                            "wallet {} pocket {} at {}", w, p.pocket, t
                        );
                    }
                }
            }
        }
        h.verify()?;
    }

    /// Per lot `amount = free + held + spent − refunded + expired`: `verify` replays the log and
    /// checks every lot after every event, after every command; the model checks its own lots and
    /// must agree with the ledger on every outcome (so on every lot-level decision: what a
    /// reversal may take back, what a refund restores, what expires).
    #[test]
    fn every_lot_balances(steps in steps()) {
        let mut h = Harness::new(true);
        for step in &steps {
            let req = h.request(step);
            let out = h.submit(&req)?;
            h.verify()?;
            for w in 0..WALLETS.len() {
                h.matches_model(w, out.at)?;
            }
            let m = h.model.as_ref().unwrap();
            for (id, mw) in &m.wallets {
                if let Err(e) = mw.self_check() {
                    return Err(TestCaseError::fail(format!("wallet {id}: {e}")));
                }
            }
        }
    }

    /// A hold ends at most once: in every wallet's history each hold has at most one `captured`
    /// or `released` event, never before it was `held`, and the holds still open add up to the
    /// wallet's `on_hold` at its last event. And every history entry's allocations add up to
    /// what the event moved: a redemption's, hold's or forfeit's amount taken from lots (to
    /// `redeemed`, `held`, `expired`), a refund's returned (to `free` or `expired`), a capture's
    /// amount to `redeemed` and its whole hold accounted for, a release's whole hold returned,
    /// an expiry's lot expired; nothing for any other event.
    #[test]
    fn a_hold_ends_at_most_once(steps in steps()) {
        let mut h = Harness::new(false);
        for step in &steps {
            let req = h.request(step);
            h.submit(&req)?;
            for (w, hist) in h.histories().into_iter().enumerate() {
                let Ok(hist) = hist else { continue };
                let rendered = wallet_ledger::render::history(&hist);
                // (pocket, hold id) → (amount, ended)
                let mut holds: BTreeMap<(String, String), (Decimal, bool)> = BTreeMap::new();
                for v in &rendered {
                    let ev = v["event"].as_str().unwrap();
                    let key = || (v["pocket"].as_str().unwrap().to_string(), v["hold"].as_str().unwrap().to_string());
                    match ev {
                        "held" => {
                            let amount: Decimal = v["amount"].as_str().unwrap().parse().unwrap();
                            prop_assert!(holds.insert(key(), (amount, false)).is_none(), "hold placed twice: {}", v);
                        }
                        "captured" | "released" => {
                            let e = holds.get_mut(&key());
                            prop_assert!(e.is_some(), "wallet {}: {} of a hold never placed: {}", w, ev, v);
                            let e = e.unwrap();
                            prop_assert!(!e.1, "wallet {}: hold ended twice: {}", w, v);
                            e.1 = true;
                        }
                        _ => {}
                    }
                }
                check_allocations(w, &hist)?;
                let last = hist.last().unwrap().at;
                let s = h.snap(w, last).unwrap();
                for p in &s.pockets {
                    let open: Decimal = holds
                        .iter()
                        .filter(|((pk, _), (_, ended))| *pk == p.pocket && !ended)
                        .map(|(_, (a, _))| *a)
                        .sum();
                    prop_assert_eq!(
                        wallet_ledger::internals::model::units_to_decimal(p.units().on_hold, p.scale), open,
                        "wallet {} pocket {}", w, p.pocket
                    );
                }
            }
        }
        h.verify()?;
    }

    /// The materialized figures equal the replay of the log: `Reader::snapshot` (materialized
    /// state plus derived transitions, or a replay before the last event) equals
    /// `Reader::snapshot_replayed` at random instants — before the last event, at event times and
    /// just around them, and after the last event with transitions pending.
    #[test]
    fn materialized_figures_equal_replay(steps in steps()) {
        let mut h = Harness::new(false);
        for step in &steps {
            let req = h.request(step);
            let out = h.submit(&req)?;
            let r = h.ledger.reader().unwrap();
            for (w, id) in WALLETS.iter().enumerate() {
                if !r.contains_wallet(*id).unwrap() { continue }
                let no = *id;
                let hist = h.ledger.history(*id).unwrap();
                let pick = &hist[(step.probe.unsigned_abs() as usize) % hist.len()];
                let et = pick.at;
                let mut ts = instants(&h, step, out.at);
                ts.extend([et, et - Duration::nanoseconds(1), et + Duration::nanoseconds(1)]);
                ts.push(hist.last().unwrap().at);
                for t in ts {
                    let a = r.snapshot(no, Some(t));
                    let b = r.snapshot_replayed(no, t);
                    prop_assert_eq!(&a, &b, "wallet {} at {}", w, t);
                }
            }
        }
        h.verify()?;
    }

    /// `sweep` changes no figure: after every step a sweep at that step's `at`; the snapshots at
    /// `at`, at the probe and far in the future, and the replay at `at`, are the same before and
    /// after it. The sweep records exactly the transitions the model says are due, and nothing
    /// else.
    #[test]
    fn sweep_changes_no_figure(steps in steps()) {
        let mut h = Harness::new(true);
        for step in &steps {
            let req = h.request(step);
            let out = h.submit(&req)?;
            let at = out.at;
            let ts = instants(&h, step, at);
            let reads = |h: &Harness| -> Vec<Vec<Result<WalletSnapshot, ReadError>>> {
                let r = h.ledger.reader().unwrap();
                (0..WALLETS.len())
                    .map(|w| {
                        let mut v: Vec<_> = ts.iter().map(|t| h.snap(w, *t)).collect();
                        if r.contains_wallet(WALLETS[w]).unwrap() {
                            v.push(r.snapshot_replayed(WALLETS[w], at));
                        }
                        v
                    })
                    .collect()
            };
            let before = reads(&h);
            let lens: Vec<usize> = h.histories().iter().map(|r| r.as_ref().map_or(0, |v| v.len())).collect();
            let due = h.model.as_ref().unwrap().due_count(ns(&at));
            let sweep = h.submit(&Request::new(Command::Sweep).at(at))?;
            let receipt = sweep.result.map_err(|e| TestCaseError::fail(format!("sweep failed: {e}")))?;
            prop_assert_eq!(receipt.events, due);
            let after = reads(&h);
            prop_assert_eq!(before, after, "figures changed by a sweep at {}", at);
            let mut recorded = 0;
            for (hist, len) in h.histories().into_iter().zip(lens) {
                let Ok(hist) = hist else { continue };
                for e in &hist[len..] {
                    recorded += 1;
                    prop_assert!(e.at <= at);
                    prop_assert!(
                        matches!(
                            e.event,
                            HistoryEvent::Activated { early: false, .. }
                                | HistoryEvent::Expired { .. }
                                | HistoryEvent::Released { timed_out: true, .. }
                        ),
                        "sweep recorded {:?}", e.event
                    );
                }
            }
            prop_assert_eq!(recorded, due);
        }
        h.verify()?;
    }

    /// A failed command or batch changes nothing: every wallet's snapshots and history and the
    /// log's length are the same after it; and a twin ledger that only ever saw the successful
    /// requests (as JSON lines) gives identical receipts (same positions, same ids) and ends
    /// identical.
    #[test]
    fn a_failed_command_or_batch_changes_nothing(steps in steps()) {
        let mut h = Harness::new(false);
        let twin = new_ledger();
        for r in setup_requests() {
            twin.execute(&r).unwrap();
        }
        let state = |h: &Harness, ts: &[DateTime<Utc>]| {
            let snaps: Vec<Vec<_>> = (0..WALLETS.len())
                .map(|w| ts.iter().map(|t| h.snap(w, *t)).collect())
                .collect();
            (snaps, h.histories())
        };
        let mut failures = 0;
        for step in &steps {
            let req = h.request(step);
            let ts = instants(&h, step, req.at.unwrap());
            let before = state(&h, &ts);
            let events = h.verify()?;
            let out = h.submit(&req)?;
            match out.result {
                Err(e) => {
                    failures += 1;
                    prop_assert_eq!(&before, &state(&h, &ts), "{} changed the ledger", e);
                    prop_assert_eq!(h.verify()?, events);
                }
                Ok(receipt) => {
                    // The twin gets the request as a JSON line (SPEC §9): the typed API and the
                    // parser must agree too.
                    let again = twin.execute_line(&show(&req));
                    prop_assert_eq!(Ok(receipt), again, "twin differs on {}", show(&req));
                }
            }
        }
        for w in WALLETS {
            prop_assert_eq!(h.ledger.history(w), twin.history(w));
            prop_assert_eq!(h.ledger.snapshot(w, Some(h.cursor)), twin.snapshot(w, Some(h.cursor)));
        }
        prop_assert_eq!(h.ledger.verify().unwrap(), twin.verify().unwrap());
        let _ = failures;
        h.verify()?;
    }

    /// Idempotency: a known key with the same request returns the original receipt marked
    /// `replayed` and appends nothing; with a different request it is `idempotency_conflict`
    /// naming the key; a failed request records no key; a request without a key is never a
    /// replay.
    #[test]
    fn idempotent_replays_append_nothing(steps in steps()) {
        let mut h = Harness::new(false);
        let mut keys: BTreeMap<String, (Request, Receipt)> = BTreeMap::new();
        for step in &steps {
            let req = h.request(step);
            let events = h.verify()?;
            let out = h.submit(&req)?;
            let bare = Request { key: None, ..req.clone() };
            match (&req.key, keys.get(req.key.as_deref().unwrap_or(""))) {
                (Some(k), Some((orig, receipt))) if *orig == bare => {
                    let mut expect = receipt.clone();
                    expect.replayed = true;
                    prop_assert_eq!(&out.result, &Ok(expect), "replay of key {}", k);
                    prop_assert_eq!(h.verify()?, events, "a replay appended events");
                }
                (Some(k), Some(_)) => {
                    let e = out.result.as_ref().expect_err("a reused key with another payload");
                    prop_assert_eq!(e.code, ErrorCode::IdempotencyConflict);
                    prop_assert!(e.message.contains(k.as_str()), "{}", e.message);
                    prop_assert_eq!(h.verify()?, events);
                }
                (key, _) => {
                    if let Err(e) = &out.result {
                        prop_assert_ne!(e.code, ErrorCode::IdempotencyConflict, "{}", e);
                    }
                    if let Ok(r) = &out.result {
                        prop_assert!(!r.replayed, "a fresh request was answered as a replay");
                        if let Some(k) = key {
                            keys.insert(k.clone(), (bare, r.clone()));
                        }
                    }
                }
            }
        }
        h.verify()?;
    }

    /// Model-based test: after every command the ledger and the reference model agree on the
    /// outcome (error code and batch index included) and the number of events appended, and on
    /// every wallet's status and figures at the command's time, at a random past or future
    /// instant, far in the future, and just before the command.
    #[test]
    fn ledger_matches_reference_model(steps in steps()) {
        let mut h = Harness::new(true);
        for step in &steps {
            let req = h.request(step);
            let out = h.submit(&req)?;
            for w in 0..WALLETS.len() {
                for t in instants(&h, step, out.at) {
                    h.matches_model(w, t)?;
                }
            }
        }
        h.verify()?;
    }
}

#[test]
fn the_generator_reaches_every_outcome() {
    // Guards the generator's weights: over a fixed set of cases, the interesting outcomes all
    // occur, so the properties above are not vacuous.
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut replays = 0;
    let mut batch_failures = 0;
    for _ in 0..256 {
        let steps = steps().new_tree(&mut runner).unwrap().current();
        let mut h = Harness::new(true);
        for step in &steps {
            let req = h.request(step);
            let out = h.submit(&req).unwrap();
            match &out.result {
                Ok(r) => {
                    replays += usize::from(r.replayed);
                    *seen.entry(format!("ok {}", r.op)).or_default() += 1;
                }
                Err(e) => {
                    batch_failures += usize::from(e.index.is_some());
                    *seen.entry(e.code.to_string()).or_default() += 1;
                }
            }
        }
        h.verify().unwrap();
    }
    eprintln!(
        "outcomes over 256 sequences: {seen:?}; replays {replays}, batch failures {batch_failures}"
    );
    for want in [
        "ok credit",
        "ok activate",
        "ok reverse_credit",
        "ok redeem",
        "ok refund",
        "ok expire",
        "ok hold",
        "ok capture",
        "ok release",
        "ok freeze",
        "ok unfreeze",
        "ok sweep",
        "ok batch",
        "insufficient_funds",
        "backdated",
        "hold_closed",
        "idempotency_conflict",
        "wallet_frozen",
        "unknown_wallet",
        "scale_exceeded",
        "invalid_time",
    ] {
        assert!(seen.contains_key(want), "never saw {want}: {seen:?}");
    }
    assert!(replays > 0, "no idempotent replay: {seen:?}");
    assert!(batch_failures > 0, "no batch failed part way: {seen:?}");
}

/// See `a_hold_ends_at_most_once`.
fn check_allocations(w: usize, hist: &[HistoryEntry]) -> Result<(), TestCaseError> {
    use wallet_ledger::Destination as D;
    let mut holds: BTreeMap<(String, String), Decimal> = BTreeMap::new();
    for e in hist {
        let a = &e.allocations;
        let sum = |to: &[D]| -> Decimal {
            a.iter()
                .filter(|x| to.contains(&x.to))
                .map(|x| x.amount)
                .sum()
        };
        let only = |to: &[D]| {
            a.iter()
                .all(|x| to.contains(&x.to) && x.amount > Decimal::ZERO)
        };
        let total = sum(&[D::Redeemed, D::Held, D::Free, D::Expired]);
        let ok = match &e.event {
            HistoryEvent::Redeemed { amount, .. } => only(&[D::Redeemed]) && total == *amount,
            HistoryEvent::Held {
                pocket,
                hold,
                amount,
                ..
            } => {
                holds.insert((pocket.clone(), hold.clone()), *amount);
                only(&[D::Held]) && total == *amount
            }
            HistoryEvent::Forfeited { amount, .. } => only(&[D::Expired]) && total == *amount,
            HistoryEvent::Refunded { amount, .. } => {
                only(&[D::Free, D::Expired]) && total == *amount
            }
            HistoryEvent::Captured {
                pocket,
                hold,
                amount,
                ..
            } => {
                let held = holds.get(&(pocket.clone(), hold.clone())).copied();
                only(&[D::Redeemed, D::Free, D::Expired])
                    && sum(&[D::Redeemed]) == *amount
                    && Some(total) == held
            }
            HistoryEvent::Released { pocket, hold, .. } => {
                let held = holds.get(&(pocket.clone(), hold.clone())).copied();
                only(&[D::Free, D::Expired]) && Some(total) == held
            }
            HistoryEvent::Expired { lot, .. } => {
                !a.is_empty() && only(&[D::Expired]) && a.iter().all(|x| x.lot == *lot)
            }
            _ => a.is_empty(),
        };
        prop_assert!(ok, "wallet {}: allocations {:?} of {:?}", w, a, e.event);
    }
    Ok(())
}
