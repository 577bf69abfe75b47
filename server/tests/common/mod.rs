//! Shared by walletd's HTTP tests: a `walletd` child process on an ephemeral port over a ledger
//! file in a scratch directory, a real HTTP client (ureq) over TCP, and raw-socket helpers for
//! what no well-behaved client sends.
#![allow(dead_code)]

use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// The `/v1` bearer token of [`config`].
pub const API_TOKEN: &str = "test-api-token";

/// Every vendor with one unscoped credential and one scoped to a program none of the fixtures
/// use (999), so that the scoped one sees nothing. Short read timeouts keep the slow-client
/// tests short. The Juicyway key comes from an environment variable, as a deployment's would.
pub fn config(extra: &str) -> String {
    format!(
        r#"
[limits]
header_read_timeout_ms = 1000
body_read_timeout_ms = 1000
shutdown_grace_ms = 5000

[api]
tokens = ["{API_TOKEN}"]

[[clevertap.credentials]]
account_id = "ACCOUNT_ID"
passcode = "PASSCODE"
[[clevertap.credentials]]
account_id = "SCOPED_ACCOUNT"
passcode = "SCOPED_PASSCODE"
programs = [999, 1020]
[[clevertap.credentials]]
account_id = "NOTHING_ACCOUNT"
passcode = "NOTHING_PASSCODE"
programs = [999]

[[juicyway.credentials]]
key = {{ env = "WALLETD_TEST_JUICYWAY_KEY" }}
[[juicyway.credentials]]
key = "JUICYWAY_SCOPED_KEY"
programs = [999]
[[juicyway.credentials]]
key = "JUICYWAY_MASKED_KEY"
mask_account_numbers = true

[[cashfree.credentials]]
client_id = "CF_CLIENT_ID"
client_secret = "CF_CLIENT_SECRET"
[[cashfree.credentials]]
client_id = "CF_SCOPED_ID"
client_secret = "CF_SCOPED_SECRET"
programs = [999]

[[cryptofuse.credentials]]
key = "CRYPTOFUSE_KEY"
[[cryptofuse.credentials]]
key = "CRYPTOFUSE_SCOPED_KEY"
programs = ["999"]
{extra}
"#
    )
}

/// The value of `WALLETD_TEST_JUICYWAY_KEY` the servers are started with.
pub const JUICYWAY_KEY: &str = "YOUR_API_KEY_FROM_ENV";

/// A running `walletd`.
pub struct Server {
    child: Child,
    pub addr: String,
    pub base: String,
    pub db: PathBuf,
    pub config: PathBuf,
    pub log: PathBuf,
}

impl Server {
    /// Starts `walletd` on `dir/wallets.redb` with `config_text`, on an ephemeral port.
    pub fn start(dir: &Path, config_text: &str) -> Server {
        let config = dir.join("walletd.toml");
        std::fs::write(&config, config_text).unwrap();
        Server::start_with(dir, &config)
    }

    /// Starts `walletd` on `dir/wallets.redb` with the config file already at `config`.
    pub fn start_with(dir: &Path, config: &Path) -> Server {
        let db = dir.join("wallets.redb");
        let n = std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0);
        let log = dir.join(format!("walletd-{n}.log"));
        let mut child = Command::new(env!("CARGO_BIN_EXE_walletd"))
            .args(["--db".as_ref(), db.as_os_str()])
            .args(["--config".as_ref(), config.as_os_str()])
            .args(["--listen", "127.0.0.1:0"])
            .env("WALLETD_TEST_JUICYWAY_KEY", JUICYWAY_KEY)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("walletd starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let Some(addr) = line.trim().strip_prefix("walletd listening on ") else {
            let _ = child.wait();
            panic!(
                "walletd did not start: {line:?}\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        };
        let addr = addr.to_string();
        Server {
            child,
            base: format!("http://{addr}"),
            addr,
            db,
            config: config.to_path_buf(),
            log,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM (through `sh`, whose `kill` builtin every machine has).
    pub fn sigterm(&self) {
        let ok = Command::new("sh")
            .args(["-c", &format!("kill -TERM {}", self.child.id())])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -TERM failed");
    }

    /// Waits for the process to exit, at most `limit`.
    pub fn wait(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "walletd did not exit within {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// SIGTERM, then the exit status.
    pub fn stop(mut self) -> ExitStatus {
        self.sigterm();
        self.wait(Duration::from_secs(10))
    }

    /// SIGKILL: no shutdown at all.
    pub fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// What the server logged so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One answer.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {} {}", self.status, self.body))
    }
    /// Status and body, for comparisons.
    pub fn pair(&self) -> (u16, &str) {
        (self.status, &self.body)
    }
}

/// An HTTP client that reports every status as an answer (not an error).
pub fn agent() -> ureq::Agent {
    ureq::Agent::new_with_config(
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(30)))
            .build(),
    )
}

/// Sends one request with `agent`.
pub fn send(
    agent: &ureq::Agent,
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> Result<Resp, ureq::Error> {
    let mut b = ureq::http::Request::builder().method(method).uri(url);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let mut r = match body {
        Some(body) => agent.run(b.body(body.to_vec()).unwrap())?,
        None => agent.run(b.body(()).unwrap())?,
    };
    let status = r.status().as_u16();
    let headers = r
        .headers()
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
        .collect();
    let body = r
        .body_mut()
        .with_config()
        .limit(64 << 20)
        .read_to_string()?;
    Ok(Resp {
        status,
        headers,
        body,
    })
}

/// [`send`] with a fresh agent, failing the test on a transport error.
pub fn http(method: &str, url: &str, headers: &[(&str, &str)], body: Option<&str>) -> Resp {
    send(&agent(), method, url, headers, body.map(str::as_bytes))
        .unwrap_or_else(|e| panic!("{method} {url}: {e}"))
}

/// `POST /v1/commands` with the API token.
pub fn post_commands(s: &Server, body: &str) -> Resp {
    http(
        "POST",
        &s.url("/v1/commands"),
        &[
            ("Authorization", &format!("Bearer {API_TOKEN}")),
            ("Content-Type", "application/json"),
        ],
        Some(body),
    )
}

/// Posts `commands` as one array; every one must succeed.
pub fn apply_all(s: &Server, commands: &[Value]) {
    let r = post_commands(s, &Value::Array(commands.to_vec()).to_string());
    assert_eq!(r.status, 200, "{}", r.body);
    for (i, res) in r.json().as_array().unwrap().iter().enumerate() {
        assert_eq!(res["ok"], true, "command {i} {}: {res}", commands[i]);
    }
}

/// Writes `bytes` on a fresh connection and reads until the server closes it (or `limit`).
pub fn raw(addr: &str, bytes: &[u8], limit: Duration) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(limit)).unwrap();
    // The server may answer and close before it has read everything (an oversized body).
    let _ = s.write_all(bytes);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// The status code of a raw HTTP/1.1 answer.
pub fn raw_status(answer: &str) -> Option<u16> {
    answer.split(' ').nth(1)?.parse().ok()
}

/// The body of a raw answer (after the blank line).
pub fn raw_body(answer: &str) -> &str {
    answer.split_once("\r\n\r\n").map_or("", |(_, b)| b)
}
