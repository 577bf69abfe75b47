//! The main job of the README: opens `./wallets.redb`, runs a short story through every kind of
//! event, and prints the figures.
//!
//! Every command carries an idempotency key and a fixed instant, so running it again replays the
//! same receipts (`"replayed": true`) and appends nothing.
//!
//! ```text
//! cargo run --release --example quickstart
//! ```

use wallet_ledger::{Ledger, render};

const W: &str = "0190f5a2-0000-7000-8000-000000000001";
const W2: &str = "0190f5a2-0000-7000-8000-000000000002";
const H: &str = "37b08803-c1af-4e10-849f-530264bac7f8";

fn main() {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "./wallets.redb".into());
    let ledger = match Ledger::open(&path) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("quickstart: cannot open {path}: {e}");
            std::process::exit(2);
        }
    };
    let story = [
        r#"{"op":"define_program","at":"2026-01-01T00:00:00Z","program":1000,"name":"Promo Wallet","unit":"Promo Coins","pockets":[{"pocket":"coins","name":"Promo Coins","kind":"POINTS","asset":"PTS","scale":3},{"pocket":"cash","name":"Cashback","kind":"CLOSED_LOOP_PPI","asset":"INR","scale":2}]}"#.to_string(),
        format!(r#"{{"op":"register_holder","at":"2026-01-01T00:00:00Z","holder":"{H}","identity":"krishna123","email":"krishna@example.com"}}"#),
        format!(r#"{{"op":"open_wallet","at":"2026-01-01T00:00:00Z","wallet":"{W}","holder":"{H}","program":1000,"external_id":"WALLET936721"}}"#),
        format!(r#"{{"op":"open_wallet","at":"2026-01-01T00:00:00Z","wallet":"{W2}","holder":"{H}","program":1000,"name":"Spare"}}"#),
        // Credits: one expiring, one forever, one promised until February.
        format!(r#"{{"op":"credit","at":"2026-01-02T00:00:00Z","wallet":"{W}","amount":"100","lot":"welcome","expires_at":"2026-03-01T00:00:00Z"}}"#),
        format!(r#"{{"op":"credit","at":"2026-01-02T00:00:00Z","wallet":"{W}","amount":50.25,"lot":"forever"}}"#),
        format!(r#"{{"op":"credit","at":"2026-01-02T00:00:00Z","wallet":"{W}","amount":"20","lot":"february","activates_at":"2026-02-01T00:00:00Z"}}"#),
        format!(r#"{{"op":"credit","at":"2026-01-02T00:00:00Z","wallet":"{W}","amount":"5","lot":"early","activates_at":"2026-04-01T00:00:00Z"}}"#),
        format!(r#"{{"op":"activate","at":"2026-01-03T00:00:00Z","wallet":"{W}","lot":"early"}}"#),
        format!(r#"{{"op":"credit","at":"2026-01-03T00:00:00Z","wallet":"{W}","amount":"10","lot":"mistake"}}"#),
        format!(r#"{{"op":"reverse_credit","at":"2026-01-03T00:00:00Z","wallet":"{W}","lot":"mistake"}}"#),
        // Spend, refund part of it, forfeit a little.
        format!(r#"{{"op":"redeem","at":"2026-01-10T00:00:00Z","wallet":"{W}","amount":"30.5","redemption":"order-1"}}"#),
        format!(r#"{{"op":"refund","at":"2026-01-11T00:00:00Z","wallet":"{W}","redemption":"order-1","amount":"10.5"}}"#),
        format!(r#"{{"op":"expire","at":"2026-01-12T00:00:00Z","wallet":"{W}","amount":"0.25"}}"#),
        // Holds: one captured in part, one released, one that times out.
        format!(r#"{{"op":"hold","at":"2026-01-20T00:00:00Z","wallet":"{W}","amount":"40","hold":"cart-1"}}"#),
        format!(r#"{{"op":"capture","at":"2026-01-21T00:00:00Z","wallet":"{W}","hold":"cart-1","amount":"25","redemption":"order-2"}}"#),
        format!(r#"{{"op":"hold","at":"2026-01-22T00:00:00Z","wallet":"{W}","amount":"15","hold":"cart-2"}}"#),
        format!(r#"{{"op":"release","at":"2026-01-23T00:00:00Z","wallet":"{W}","hold":"cart-2"}}"#),
        format!(r#"{{"op":"hold","at":"2026-01-24T00:00:00Z","wallet":"{W}","amount":"5","hold":"cart-3","expires_at":"2026-01-25T00:00:00Z"}}"#),
        // Profile: a bank account and a card.
        format!(r#"{{"op":"link_payment_method","at":"2026-01-26T00:00:00Z","wallet":"{W}","method":{{"account_name":"Prosacco Erdman","account_number":"3515200757","account_type":"savings","bank_address":"9896 Bulah Roads","bank_code":"035","bank_name":"Wema Bank"}}}}"#),
        format!(r#"{{"op":"issue_card","at":"2026-01-26T00:00:00Z","wallet":"{W}","card":"CARDR827364","masked_pan":"XXXX-XXXX-XXXX-1234","status":"ACTIVE"}}"#),
        // Lifecycle: freeze and unfreeze; the spare wallet is closed.
        format!(r#"{{"op":"freeze","at":"2026-01-27T00:00:00Z","wallet":"{W}","reason":"suspicious login"}}"#),
        format!(r#"{{"op":"unfreeze","at":"2026-01-28T00:00:00Z","wallet":"{W}","reason":"verified"}}"#),
        format!(r#"{{"op":"close","at":"2026-01-28T00:00:00Z","wallet":"{W2}","reason":"duplicate"}}"#),
        // A batch: all or nothing.
        format!(r#"{{"op":"batch","at":"2026-02-15T00:00:00Z","commands":[{{"op":"credit","wallet":"{W}","pocket":"cash","amount":"99.99","lot":"cashback-1"}},{{"op":"redeem","wallet":"{W}","pocket":"cash","amount":"9.99","redemption":"order-3"}}]}}"#),
        // March: the welcome lot's free value has expired; sweep records it.
        r#"{"op":"sweep","at":"2026-03-02T00:00:00Z"}"#.to_string(),
    ];
    let mut failed = false;
    for (i, line) in story.iter().enumerate() {
        // Key every command so a second run is an idempotent replay.
        let keyed = line.replacen('{', &format!(r#"{{"key":"quickstart-{i}","#), 1);
        let r = ledger.execute_line(&keyed);
        failed |= r.is_err();
        println!("{}", render::result_line(i + 1, &r));
    }
    for w in [W, W2] {
        let s = ledger
            .snapshot(
                w.parse().expect("uuid"),
                Some("2026-03-02T00:00:00Z".parse().expect("time")),
            )
            .expect("wallet exists");
        println!("{}", render::snapshot(&s));
    }
    let report = ledger.verify().expect("verify runs");
    println!(
        "{}",
        serde_json::json!({"verify": if report.ok() { "ok" } else { "FAILED" }, "events": report.events, "problems": report.problems})
    );
    if failed || !report.ok() {
        std::process::exit(1);
    }
}
