//! Load, then a crash: 64 connections post keyed credits as fast as the server answers for a
//! bounded time (the measured phase: requests/s, p50/p99 latency, commands per group commit),
//! go on posting while the server is killed with SIGKILL, and then, after a restart on the same
//! file: every credit answered 2xx is there exactly once (its lot, named after its key, appears
//! once in its wallet's history), a retry of it is a replay that appends nothing, and the
//! library's `verify` passes on the file.
//!
//! `WALLETD_LOAD_SECS` sets the measured phase's length (default 2 s, to keep CI short); the
//! figures are printed on one `LOAD:` line (`-- --nocapture` to see them).

mod common;

use common::*;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const CONNECTIONS: usize = 64;
/// Wallets the connections share: four connections credit each one concurrently.
const WALLETS: usize = 16;

fn wallet(i: usize) -> String {
    format!("0198c000-0000-7000-8000-{:012}", i)
}

fn credit(conn: usize, n: usize) -> (String, String) {
    let key = format!("c{conn}-{n}");
    let body = json!({"op":"credit","wallet":wallet(conn % WALLETS),"amount":"1","lot":key,
        "key":key})
    .to_string();
    (key, body)
}

/// What one connection saw.
#[derive(Default)]
struct Seen {
    /// Keys answered 2xx, with the receipt.
    acked: Vec<(String, Value)>,
    /// Latencies of the measured phase.
    latencies: Vec<Duration>,
    /// Answers that were neither 2xx nor a transport error (none expected).
    refused: Vec<String>,
}

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("{name} missing from /metrics"))
}

#[test]
fn load_then_sigkill_loses_nothing_acknowledged() {
    let secs: f64 = std::env::var("WALLETD_LOAD_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2.0);
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &config(""));
    let mut setup = vec![
        json!({"op":"define_program","program":1,"name":"Load","unit":"PTS",
            "pockets":[{"pocket":"main","name":"Main","kind":"POINTS","asset":"PTS","scale":0}]}),
        json!({"op":"register_holder","holder":"0198c000-0000-4000-8000-000000000001"}),
    ];
    for w in 0..WALLETS {
        setup.push(json!({"op":"open_wallet","wallet":wallet(w),
            "holder":"0198c000-0000-4000-8000-000000000001","program":1}));
    }
    apply_all(&server, &setup);

    let url = server.url("/v1/commands");
    let auth = format!("Bearer {API_TOKEN}");
    let seen: Vec<Mutex<Seen>> = (0..CONNECTIONS)
        .map(|_| Mutex::new(Seen::default()))
        .collect();
    let measuring = AtomicBool::new(true);
    let (elapsed, metrics_text) = std::thread::scope(|scope| {
        for (c, seen) in seen.iter().enumerate() {
            let (url, auth, measuring) = (&url, &auth, &measuring);
            scope.spawn(move || {
                // One agent: one kept-alive connection.
                let agent = agent();
                let mut seen = seen.lock().unwrap();
                for n in 0.. {
                    let (key, body) = credit(c, n);
                    let measured = measuring.load(Ordering::SeqCst);
                    let t = Instant::now();
                    let r = send(
                        &agent,
                        "POST",
                        url,
                        &[
                            ("Authorization", auth),
                            ("Content-Type", "application/json"),
                        ],
                        Some(body.as_bytes()),
                    );
                    let took = t.elapsed();
                    match r {
                        // The server is gone: this connection is done.
                        Err(_) => break,
                        Ok(r) if (200..300).contains(&r.status) => {
                            seen.acked.push((key, r.json()));
                            if measured {
                                seen.latencies.push(took);
                            }
                        }
                        Ok(r) => seen.refused.push(format!("{key}: {} {}", r.status, r.body)),
                    }
                }
            });
        }
        let started = Instant::now();
        std::thread::sleep(Duration::from_secs_f64(secs));
        measuring.store(false, Ordering::SeqCst);
        let elapsed = started.elapsed();
        let metrics_text = http("GET", &server.url("/metrics"), &[], None).body;
        // The crash, mid-load.
        std::thread::sleep(Duration::from_millis(300));
        server.kill();
        (elapsed, metrics_text)
    });

    let seen: Vec<Seen> = seen.into_iter().map(|m| m.into_inner().unwrap()).collect();
    let refused: Vec<&String> = seen.iter().flat_map(|s| &s.refused).collect();
    assert!(
        refused.is_empty(),
        "refused: {:?}",
        &refused[..refused.len().min(5)]
    );
    let mut latencies: Vec<Duration> = seen.iter().flat_map(|s| s.latencies.clone()).collect();
    latencies.sort();
    assert!(
        latencies.len() > CONNECTIONS,
        "too few requests: {}",
        latencies.len()
    );
    let pct = |p: f64| latencies[((latencies.len() - 1) as f64 * p) as usize];
    let groups = metric(&metrics_text, "walletd_commit_group_size_count");
    let grouped = metric(&metrics_text, "walletd_commit_group_size_sum");
    println!(
        "LOAD: {CONNECTIONS} connections, {:.1} s: {} requests, {:.0} requests/s, p50 {:.2} ms, \
         p99 {:.2} ms, {:.1} commands per group commit ({} commits)",
        elapsed.as_secs_f64(),
        latencies.len(),
        latencies.len() as f64 / elapsed.as_secs_f64(),
        pct(0.50).as_secs_f64() * 1e3,
        pct(0.99).as_secs_f64() * 1e3,
        grouped / groups,
        groups
    );
    // Concurrent requests share durable commits.
    assert!(
        grouped / groups >= 2.0,
        "{grouped} commands in {groups} group commits"
    );

    // Restart on the same file.
    let server = Server::start_with(dir.path(), &dir.path().join("walletd.toml"));
    let get = |path: &str| {
        let r = http(
            "GET",
            &server.url(path),
            &[("Authorization", &format!("Bearer {API_TOKEN}"))],
            None,
        );
        assert_eq!(r.status, 200, "{path}: {}", r.body);
        r.json()
    };
    // Every lot credited, per wallet, counted.
    let mut lots: HashMap<String, usize> = HashMap::new();
    let mut events = 0;
    for w in 0..WALLETS {
        let history = get(&format!("/v1/wallets/{}/history", wallet(w)));
        for e in history.as_array().unwrap() {
            events += 1;
            if e["event"] == "credited" {
                *lots
                    .entry(e["lot"].as_str().unwrap().to_string())
                    .or_default() += 1;
            }
        }
        // The figures agree with the history: every credit is 1.
        let show = get(&format!("/v1/wallets/{}", wallet(w)));
        let credited: usize = show["pockets"][0]["credited"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        let in_history = lots
            .keys()
            .filter(|k| {
                let c: usize = k[1..k.find('-').unwrap()].parse().unwrap();
                c % WALLETS == w
            })
            .count();
        assert_eq!(credited, in_history, "wallet {w}");
    }
    let acked: Vec<&(String, Value)> = seen.iter().flat_map(|s| &s.acked).collect();
    for (key, _) in &acked {
        assert_eq!(lots.get(key), Some(&1), "acknowledged credit {key}");
    }
    assert!(lots.values().all(|&n| n == 1), "a lot credited twice");
    // Retries of acknowledged credits are replays with the original receipt.
    let sample: Vec<_> = seen.iter().filter_map(|s| s.acked.last()).collect();
    for (key, receipt) in &sample {
        let c: usize = key[1..key.find('-').unwrap()].parse().unwrap();
        let n: usize = key[key.find('-').unwrap() + 1..].parse().unwrap();
        let r = post_commands(&server, &credit(c, n).1);
        assert_eq!(r.status, 200, "{}", r.body);
        let mut want = receipt.clone();
        want["replayed"] = json!(true);
        assert_eq!(r.json(), want);
    }
    let after: usize = (0..WALLETS)
        .map(|w| {
            get(&format!("/v1/wallets/{}/history", wallet(w)))
                .as_array()
                .unwrap()
                .len()
        })
        .sum();
    assert_eq!(after, events, "a retry appended events");
    assert!(server.stop().success());
    // The whole log replays and checks out.
    let ledger = wallet_ledger::Ledger::open(dir.path().join("wallets.redb")).unwrap();
    let report = ledger.verify().unwrap();
    assert!(report.ok(), "{:?}", report.problems);
    println!(
        "LOAD: after SIGKILL and restart: {} acknowledged credits present once each, {} \
         credits in all (committed but unanswered ones included), verify ok",
        acked.len(),
        lots.len()
    );
}
