//! A read that derives due transitions (`Ledger::figures` at or after a wallet's last event)
//! reuses things between calls: the overlay's emptied containers (per thread) and, within one
//! call, range scans over the wallet's lots and due index. Nothing of one read may leak into the
//! next: every read must equal a replay of the log, whatever was read before it.

use wallet_ledger::{FixedClock, Ledger};

const H: &str = "37b08803-c1af-4e10-849f-530264bac7f8";

fn wallet(i: u32) -> String {
    format!("550e8400-e29b-41d4-a716-4466554400{i:02}")
}

fn at(minute: u32) -> String {
    format!("2026-01-02T{:02}:{:02}:00Z", minute / 60, minute % 60)
}

/// Wallet 1: 40 lots expiring a minute apart (many consecutive expiries in one read). Wallet 2:
/// lots expiring far apart, promised lots and holds that time out. Wallet 3: no lots.
fn ledger() -> Ledger {
    let clock = Box::new(FixedClock("2026-01-05T00:00:00Z".parse().unwrap()));
    let l = Ledger::in_memory(clock).unwrap();
    let mut lines = vec![
        r#"{"op":"define_program","at":"2026-01-01T00:00:00Z","program":1,"name":"P","unit":"PTS","pockets":[{"pocket":"main","name":"Main","kind":"POINTS","asset":"PTS","scale":0}]}"#.to_string(),
        format!(r#"{{"op":"register_holder","at":"2026-01-01T00:00:00Z","holder":"{H}"}}"#),
    ];
    for i in 1..=3 {
        lines.push(format!(
            r#"{{"op":"open_wallet","at":"2026-01-01T00:00:00Z","wallet":"{}","holder":"{H}","program":1}}"#,
            wallet(i)
        ));
    }
    let w1 = wallet(1);
    for n in 1..=40 {
        lines.push(format!(
            r#"{{"op":"credit","at":"{}","wallet":"{w1}","amount":"{n}","expires_at":"{}"}}"#,
            at(n),
            at(100 + n)
        ));
    }
    lines.push(format!(
        r#"{{"op":"redeem","at":"{}","wallet":"{w1}","amount":"15"}}"#,
        at(41)
    ));
    let w2 = wallet(2);
    for n in 1..=12 {
        let expiry = at(100 + 17 * n);
        let activates = if n % 3 == 0 {
            format!(r#","activates_at":"{}""#, at(60 + 10 * n))
        } else {
            String::new()
        };
        lines.push(format!(
            r#"{{"op":"credit","at":"{}","wallet":"{w2}","amount":"{}","expires_at":"{expiry}"{activates}}}"#,
            at(n),
            10 * n
        ));
    }
    for n in 0..4 {
        lines.push(format!(
            r#"{{"op":"hold","at":"{}","wallet":"{w2}","amount":"7","expires_at":"{}"}}"#,
            at(20 + n),
            at(90 + 25 * n)
        ));
    }
    for line in lines {
        l.execute_line(&line).unwrap();
    }
    l
}

#[test]
fn reads_that_derive_transitions_equal_a_replay_in_any_order() {
    let l = ledger();
    let ids: Vec<uuid::Uuid> = (1..=3).map(|i| wallet(i).parse().unwrap()).collect();
    let r = l.reader().unwrap();
    // Instants from before the first due transition to after the last, visited forwards,
    // backwards and interleaved across wallets, so each read follows reads that derived more,
    // fewer or other transitions.
    let mut minutes: Vec<u32> = (40..420).step_by(7).collect();
    let back: Vec<u32> = minutes.iter().rev().copied().collect();
    minutes.extend(back);
    minutes.extend((0..60).map(|i| 40 + (i * 97) % 380));
    for (i, m) in minutes.iter().enumerate() {
        let t = at(*m).parse().unwrap();
        for k in [i % 3, (i + 1) % 3, (i + 2) % 3] {
            let got = l.figures(ids[k], Some(t)).unwrap();
            let want = r.snapshot_replayed(ids[k], t).unwrap();
            assert_eq!(got.pockets, want.pockets, "wallet {} at {}", k + 1, at(*m));
            assert_eq!(
                got.updated_at,
                want.updated_at,
                "wallet {} at {}",
                k + 1,
                at(*m)
            );
        }
    }
}

#[test]
fn reads_on_several_threads_each_equal_a_replay() {
    let l = ledger();
    let ids: Vec<uuid::Uuid> = (1..=3).map(|i| wallet(i).parse().unwrap()).collect();
    std::thread::scope(|s| {
        for th in 0..4u32 {
            let (l, ids) = (&l, &ids);
            s.spawn(move || {
                let r = l.reader().unwrap();
                for j in 0..150u32 {
                    let k = ((th + j) % 3) as usize;
                    let t = at(40 + (j * 37 + th * 11) % 380).parse().unwrap();
                    assert_eq!(
                        l.figures(ids[k], Some(t)).unwrap().pockets,
                        r.snapshot_replayed(ids[k], t).unwrap().pockets
                    );
                }
            });
        }
    });
}
