//! `Ledger::figures`, `snapshot` and `history` keep their read transaction between calls while
//! nothing is committed. These tests pin what that must not change: a read that follows an
//! answered command sees it, and a kept transaction never gets in the way of compaction.

use wallet_ledger::{FixedClock, Ledger};

const W: &str = "550e8400-e29b-41d4-a716-446655440000";
const H: &str = "37b08803-c1af-4e10-849f-530264bac7f8";

fn set_up(l: &Ledger) {
    for line in [
        r#"{"op":"define_program","at":"2026-01-01T00:00:00Z","program":1,"name":"P","unit":"PTS","pockets":[{"pocket":"main","name":"Main","kind":"POINTS","asset":"PTS","scale":0}]}"#.to_string(),
        format!(r#"{{"op":"register_holder","at":"2026-01-01T00:00:00Z","holder":"{H}"}}"#),
        format!(
            r#"{{"op":"open_wallet","at":"2026-01-01T00:00:00Z","wallet":"{W}","holder":"{H}","program":1}}"#
        ),
    ] {
        l.execute_line(&line).unwrap();
    }
}

fn credit(l: &Ledger, i: u32) {
    l.execute_line(&format!(
        r#"{{"op":"credit","at":"2026-01-02T00:00:{i:02}Z","wallet":"{W}","amount":"{i}","lot":"L{i}"}}"#
    ))
    .unwrap();
}

fn clock() -> Box<FixedClock> {
    Box::new(FixedClock("2026-02-01T00:00:00Z".parse().unwrap()))
}

#[test]
fn a_read_after_an_answer_sees_the_command() {
    let l = Ledger::in_memory(clock()).unwrap();
    set_up(&l);
    let w = W.parse().unwrap();
    let mut expect = 0u128;
    for i in 1..=20 {
        // Two reads in a row: the second runs on the transaction the first kept.
        for _ in 0..2 {
            let f = l.figures(w, None).unwrap();
            assert_eq!(f.pockets[0].units().credited, expect);
            assert_eq!(l.history(w).unwrap().len() as u32, i);
        }
        credit(&l, i);
        expect += u128::from(i);
        assert_eq!(
            l.figures(w, None).unwrap().pockets[0].units().credited,
            expect
        );
        assert_eq!(
            l.snapshot(w, None).unwrap().pockets[0].units().credited,
            expect
        );
    }
}

#[test]
fn a_kept_read_transaction_does_not_block_compaction() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fresh.redb");
    let mut l = Ledger::open_with_clock(&path, clock()).unwrap();
    set_up(&l);
    credit(&l, 1);
    let w = W.parse().unwrap();
    l.figures(w, None).unwrap();
    l.compact().unwrap();
    drop(l);
    let l = Ledger::open_with_clock(&path, clock()).unwrap();
    assert_eq!(l.figures(w, None).unwrap().pockets[0].units().credited, 1);
}
