//! Helpers shared by the reliability tests (crash, faults, tamper, hostile, concurrency):
//! a seeded PRNG, a generator of long, realistic command scripts with explicit ids and times (so
//! that replaying a script always produces byte-identical logs), and a digest of a ledger's whole
//! log to compare a recovered ledger with a replay.
#![allow(dead_code)]

use chrono::{DateTime, Duration, Utc};
use std::fmt::Write as _;
use wallet_ledger::{FixedClock, Ledger};

/// SplitMix64: small, seedable, good enough to drive test choices deterministically.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x5DEE_CE66_D1CE_4E5B)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }
    /// True with probability `pct`/100.
    pub fn pct(&mut self, pct: u64) -> bool {
        self.below(100) < pct
    }
    pub fn pick<'a, T>(&mut self, v: &'a [T]) -> Option<&'a T> {
        if v.is_empty() {
            None
        } else {
            Some(&v[self.below(v.len() as u64) as usize])
        }
    }
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next_u64() as u8).collect()
    }
}

/// The seed of a test: `RELIABILITY_SEED` when set (to reproduce or explore), else `default`.
pub fn seed(default: u64) -> u64 {
    std::env::var("RELIABILITY_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

pub fn t0() -> DateTime<Utc> {
    "2026-01-01T00:00:00Z".parse().unwrap()
}

pub fn rfc(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// A ledger in memory with a clock pinned far after every scripted instant.
pub fn memory_ledger() -> Ledger {
    Ledger::in_memory(Box::new(FixedClock(far_future()))).unwrap()
}

pub fn far_future() -> DateTime<Utc> {
    "2030-01-01T00:00:00Z".parse().unwrap()
}

pub fn program_lines(at: DateTime<Utc>) -> Vec<String> {
    let at = rfc(at);
    vec![
        format!(
            r#"{{"op":"define_program","at":"{at}","program":1,"name":"Cash","unit":"USD","pockets":[{{"pocket":"main","name":"Main","kind":"CASH","asset":"USD","scale":2}},{{"pocket":"pts","name":"Points","kind":"POINTS","asset":"PTS","scale":0}}]}}"#
        ),
        format!(
            r#"{{"op":"define_program","at":"{at}","program":2,"name":"Coins","unit":"Promo Coins","order":"earliest_issuance","pockets":[{{"pocket":"coins","name":"Coins","kind":"GIFT_PPI","asset":"PTS","scale":3}}]}}"#
        ),
    ]
}

pub fn holder_uuid(i: usize) -> String {
    format!(
        "37b08803-c1af-4e10-849f-{:012x}",
        0x5302_6400_0000u64 + i as u64
    )
}

pub fn wallet_uuid(i: usize) -> String {
    format!(
        "550e8400-e29b-41d4-a716-{:012x}",
        0x4466_5544_0000u64 + i as u64
    )
}

/// What the generator remembers of a wallet, to aim most commands at things that exist.
#[derive(Clone, Debug, Default)]
struct WalletGen {
    uuid: String,
    program: u64,
    lots: Vec<String>,
    promised: Vec<String>,
    holds: Vec<String>,
    redemptions: Vec<String>,
    frozen: bool,
}

/// Generates realistic command lines: explicit ids and strictly increasing explicit times, so
/// that the same lines always produce the same log, byte for byte. Some commands are meant to
/// fail (insufficient funds, unknown ids, frozen wallets): rejections are part of the workload.
pub struct ScriptGen {
    rng: Rng,
    now: DateTime<Utc>,
    wallets: Vec<WalletGen>,
    n: usize,
    /// Percentage of top-level lines that carry an idempotency key.
    pub key_pct: u64,
    /// Percentage of lines that are batches.
    pub batch_pct: u64,
}

impl ScriptGen {
    pub fn new(seed: u64) -> ScriptGen {
        ScriptGen {
            rng: Rng::new(seed),
            now: t0(),
            wallets: Vec::new(),
            n: 0,
            key_pct: 30,
            batch_pct: 12,
        }
    }

    /// The set-up lines: two programs, `holders` holders and `wallets` wallets spread over them.
    pub fn setup(&mut self, holders: usize, wallets: usize) -> Vec<String> {
        let mut out = program_lines(self.now);
        let at = rfc(self.now);
        for h in 0..holders {
            out.push(format!(
                r#"{{"op":"register_holder","at":"{at}","holder":"{}","identity":"user-{h}","email":"User{h}@Example.com"}}"#,
                holder_uuid(h)
            ));
        }
        for w in 0..wallets {
            let program = 1 + (w % 2) as u64;
            let uuid = wallet_uuid(w);
            out.push(format!(
                r#"{{"op":"open_wallet","at":"{at}","wallet":"{uuid}","holder":"{}","program":{program},"external_id":"ext-{w}"}}"#,
                holder_uuid(w % holders.max(1))
            ));
            self.wallets.push(WalletGen {
                uuid,
                program,
                ..Default::default()
            });
        }
        out
    }

    /// Wallet UUIDs the script uses.
    pub fn wallet_ids(&self) -> Vec<String> {
        self.wallets.iter().map(|w| w.uuid.clone()).collect()
    }

    fn amount(&mut self, w: usize, big: bool) -> String {
        let max = if big { 50_000 } else { 9_000 };
        let cents = self.rng.range(1, max);
        if self.wallets[w].program == 1 {
            format!("{}.{:02}", cents / 100, cents % 100)
        } else {
            format!("{}.{:03}", cents / 1000, cents % 1000)
        }
    }

    /// One command object (without `at`/`key`), as the fields after `"op"`.
    fn command(&mut self, in_batch: bool) -> String {
        let wi = self.rng.below(self.wallets.len() as u64) as usize;
        let uuid = self.wallets[wi].uuid.clone();
        self.n += 1;
        let n = self.n;
        let now = self.now;
        let roll = self.rng.below(100);
        let w = &self.wallets[wi];
        let lot = self.rng.pick(&w.lots).cloned();
        let promised = self.rng.pick(&w.promised).cloned();
        let hold = self.rng.pick(&w.holds).cloned();
        let red = self.rng.pick(&w.redemptions).cloned();
        if w.frozen && !in_batch && self.rng.pct(60) {
            self.wallets[wi].frozen = false;
            return format!(r#""op":"unfreeze","wallet":"{uuid}""#);
        }
        match roll {
            0..=29 => {
                let amount = self.amount(wi, true);
                let id = format!("L{n}");
                let mut extra = String::new();
                let promise = self.rng.pct(15);
                if promise {
                    let a = now + Duration::hours(self.rng.range(1, 30) as i64);
                    write!(extra, r#","activates_at":"{}""#, rfc(a)).unwrap();
                }
                if self.rng.pct(45) {
                    let e = now + Duration::hours(self.rng.range(40, 300) as i64);
                    write!(extra, r#","expires_at":"{}""#, rfc(e)).unwrap();
                }
                let w = &mut self.wallets[wi];
                w.lots.push(id.clone());
                if promise {
                    w.promised.push(id.clone());
                }
                format!(
                    r#""op":"credit","wallet":"{uuid}","amount":"{amount}","lot":"{id}"{extra}"#
                )
            }
            30..=44 => {
                let amount = self.amount(wi, false);
                let id = format!("R{n}");
                self.wallets[wi].redemptions.push(id.clone());
                format!(
                    r#""op":"redeem","wallet":"{uuid}","amount":"{amount}","redemption":"{id}""#
                )
            }
            45..=54 => {
                let amount = self.amount(wi, false);
                let id = format!("H{n}");
                let mut extra = String::new();
                if self.rng.pct(40) {
                    let e = now + Duration::hours(self.rng.range(1, 48) as i64);
                    write!(extra, r#","expires_at":"{}""#, rfc(e)).unwrap();
                }
                self.wallets[wi].holds.push(id.clone());
                format!(r#""op":"hold","wallet":"{uuid}","amount":"{amount}","hold":"{id}"{extra}"#)
            }
            55..=61 => match hold {
                Some(h) => {
                    let id = format!("C{n}");
                    self.wallets[wi].redemptions.push(id.clone());
                    if self.rng.pct(50) {
                        let amount = self.amount(wi, false);
                        format!(
                            r#""op":"capture","wallet":"{uuid}","hold":"{h}","amount":"{amount}","redemption":"{id}""#
                        )
                    } else {
                        format!(
                            r#""op":"capture","wallet":"{uuid}","hold":"{h}","redemption":"{id}""#
                        )
                    }
                }
                None => format!(r#""op":"release","wallet":"{uuid}","hold":"H0""#),
            },
            62..=66 => match hold {
                Some(h) => format!(r#""op":"release","wallet":"{uuid}","hold":"{h}""#),
                None => r#""op":"sweep""#.to_string(),
            },
            67..=72 => match red {
                Some(r) if self.rng.pct(50) => {
                    let amount = self.amount(wi, false);
                    format!(
                        r#""op":"refund","wallet":"{uuid}","redemption":"{r}","amount":"{amount}""#
                    )
                }
                Some(r) => format!(r#""op":"refund","wallet":"{uuid}","redemption":"{r}""#),
                None => format!(r#""op":"refund","wallet":"{uuid}","redemption":"nope""#),
            },
            73..=76 => {
                let amount = self.amount(wi, false);
                format!(r#""op":"expire","wallet":"{uuid}","amount":"{amount}""#)
            }
            77..=80 => match lot {
                Some(l) if self.rng.pct(50) => {
                    let amount = self.amount(wi, false);
                    format!(
                        r#""op":"reverse_credit","wallet":"{uuid}","lot":"{l}","amount":"{amount}""#
                    )
                }
                Some(l) => format!(r#""op":"reverse_credit","wallet":"{uuid}","lot":"{l}""#),
                None => format!(r#""op":"reverse_credit","wallet":"{uuid}","lot":"L0""#),
            },
            81..=83 => match promised {
                Some(l) => format!(r#""op":"activate","wallet":"{uuid}","lot":"{l}""#),
                None => r#""op":"sweep""#.to_string(),
            },
            84..=87 if !in_batch => {
                let frozen = self.wallets[wi].frozen;
                self.wallets[wi].frozen = !frozen;
                let op = if frozen { "unfreeze" } else { "freeze" };
                format!(r#""op":"{op}","wallet":"{uuid}","reason":"check {n}""#)
            }
            88..=89 => format!(
                r#""op":"link_payment_method","wallet":"{uuid}","method":{{"account_name":"Holder {n}","account_number":"000{n}","account_type":"checking","bank_code":"021","bank_name":"Bank"}}"#
            ),
            90..=91 => format!(
                r#""op":"issue_card","wallet":"{uuid}","card":"card-{n}","masked_pan":"4111********{:04}","status":"ACTIVE""#,
                n % 10_000
            ),
            92..=95 if self.wallets[wi].program == 1 => {
                let amount = self.rng.range(1, 500);
                format!(r#""op":"credit","wallet":"{uuid}","pocket":"pts","amount":"{amount}""#)
            }
            _ => r#""op":"sweep""#.to_string(),
        }
    }

    /// The next top-level line. Time moves forward by 1..=240 minutes on every line.
    pub fn next_line(&mut self) -> String {
        self.now += Duration::minutes(self.rng.range(1, 240) as i64);
        let at = rfc(self.now);
        let key = if self.rng.pct(self.key_pct) {
            format!(r#","key":"k-{}""#, self.n + 1)
        } else {
            String::new()
        };
        if self.rng.pct(self.batch_pct) {
            let k = self.rng.range(2, 5);
            let items: Vec<String> = (0..k)
                .map(|_| format!("{{{}}}", self.command(true)))
                .collect();
            format!(
                r#"{{"op":"batch","at":"{at}"{key},"commands":[{}]}}"#,
                items.join(",")
            )
        } else {
            let body = self.command(false);
            format!(r#"{{{body},"at":"{at}"{key}}}"#)
        }
    }

    /// A whole script: set-up then `n` generated lines.
    pub fn script(seed: u64, holders: usize, wallets: usize, n: usize) -> (Vec<String>, Self) {
        let mut g = ScriptGen::new(seed);
        let mut lines = g.setup(holders, wallets);
        for _ in 0..n {
            lines.push(g.next_line());
        }
        (lines, g)
    }
}

/// Every event of the ledger, stream by stream (stream 0, then wallets 1..=`max_wallets`): one
/// line per event with its stream, sequence, position, instant, checksum and decoded event.
/// Two ledgers with equal digests hold byte-identical logs.
pub fn log_digest(ledger: &Ledger, max_wallets: u64) -> Vec<String> {
    let r = ledger.reader().expect("reader");
    let mut out = Vec::new();
    for stream in 0..=max_wallets {
        for (seq, rec) in r.events(stream).expect("events") {
            out.push(format!(
                "{stream}/{seq} @{} t={} sum={} {:?}",
                rec.position,
                rec.at,
                hex(&rec.checksum),
                rec.event
            ));
        }
    }
    out
}

/// Every log position present in the ledger.
pub fn positions(ledger: &Ledger, max_wallets: u64) -> std::collections::BTreeSet<u64> {
    let r = ledger.reader().expect("reader");
    let mut out = std::collections::BTreeSet::new();
    for stream in 0..=max_wallets {
        for (_, rec) in r.events(stream).expect("events") {
            out.insert(rec.position);
        }
    }
    out
}

/// The figures of every listed wallet as of `at`, as text (for readable failure diffs).
pub fn figures_digest(ledger: &Ledger, wallets: &[String], at: DateTime<Utc>) -> Vec<String> {
    wallets
        .iter()
        .map(|w| match ledger.snapshot(w.parse().unwrap(), Some(at)) {
            Ok(s) => format!(
                "{w} {:?} {:?}",
                s.status,
                s.pockets
                    .iter()
                    .map(|p| (p.pocket.clone(), p.units()))
                    .collect::<Vec<_>>()
            ),
            Err(e) => format!("{w} {e}"),
        })
        .collect()
}

pub fn hex(b: &[u8]) -> String {
    let mut s = String::with_capacity(b.len() * 2);
    for x in b {
        write!(s, "{x:02x}").unwrap();
    }
    s
}

pub fn unhex(s: &str) -> Vec<u8> {
    assert!(s.len().is_multiple_of(2), "odd hex length");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex digit"))
        .collect()
}

/// Asserts that `verify` finds nothing wrong.
pub fn assert_verified(ledger: &Ledger, what: &str) {
    let r = ledger
        .verify()
        .unwrap_or_else(|e| panic!("{what}: verify failed: {e}"));
    assert!(r.ok(), "{what}: verify found problems: {:#?}", r.problems);
}

/// The result line a ledger would print for `line` (SPEC §9), without the `line` number.
pub fn result_json(ledger: &Ledger, line: &str) -> serde_json::Value {
    let r = ledger.execute_line(line);
    let mut v = wallet_ledger::render::result_line(0, &r);
    v.as_object_mut().unwrap().remove("line");
    v
}

/// Everything a user reads from a ledger made by a [`ScriptGen`] script over `holders` holders and
/// the wallets `wallets`, as text lines (for readable failure diffs): every event of the log, each
/// wallet's history, its snapshot now and as of `instants`, and every name lookup (wallet by
/// UUID, external id and card, holder by UUID, identity and e-mail, a holder's wallets, the
/// programs). Two ledgers with equal digests answer every read the same way.
pub fn read_digest(
    ledger: &Ledger,
    holders: usize,
    wallets: &[String],
    cards: usize,
    instants: &[DateTime<Utc>],
) -> Vec<String> {
    let mut out = log_digest(ledger, wallets.len() as u64);
    for w in wallets {
        let id = w.parse().unwrap();
        out.push(format!("history {w}: {:?}", ledger.history(id)));
        out.push(format!("now {w}: {:?}", ledger.snapshot(id, None)));
        out.push(format!("figures {w}: {:?}", ledger.figures(id, None)));
        for t in instants {
            out.push(format!(
                "as of {t} {w}: {:?}",
                ledger.snapshot(id, Some(*t))
            ));
        }
    }
    let r = ledger.reader().expect("reader");
    for (i, w) in wallets.iter().enumerate() {
        out.push(format!(
            "wallet {w}: {:?}, ext-{i}: {:?}",
            r.wallet_number(w.parse().unwrap()),
            r.wallet_by_external(&format!("ext-{i}"))
        ));
    }
    for h in 0..holders {
        let id = holder_uuid(h).parse().unwrap();
        out.push(format!(
            "holder {h}: {:?} {:?} {:?} {:?} {:?}",
            r.holder(id),
            r.holder_by_identity(&format!("user-{h}")),
            r.holder_by_email(&format!("USER{h}@example.COM")),
            r.wallets_of(id),
            r.holder_by_identity(&format!("nobody-{h}")),
        ));
    }
    for c in 0..=cards {
        out.push(format!(
            "card-{c}: {:?}",
            r.wallet_by_card(&format!("card-{c}"))
        ));
    }
    for p in 0..=3 {
        out.push(format!("program {p}: {:?}", r.program(p)));
    }
    out
}
