//! The configuration file (TOML) and the command line.
//!
//! Secrets (API tokens, passcodes, client secrets) come from the file or from environment
//! variables named in it (`{ env = "NAME" }`), never from the command line, where every user of
//! the machine could read them in the process list. Every table refuses unknown keys, so a typo
//! is an error at start rather than a credential silently left out.

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use std::collections::HashSet;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Where the ledger file and the listening socket default to (SPEC §10, the issue).
pub const DEFAULT_DB: &str = "./wallets.redb";
/// The default listening address: loopback only, so a fresh start exposes nothing.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

/// A secret as written in the file: a literal string or `{ env = "NAME" }`.
#[derive(Clone, PartialEq, Eq)]
enum SecretSpec {
    Literal(String),
    Env(String),
}

impl<'de> Deserialize<'de> for SecretSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = SecretSpec;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(r#"a string, or a table { env = "VARIABLE" }"#)
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<SecretSpec, E> {
                Ok(SecretSpec::Literal(s.to_string()))
            }
            fn visit_map<M: MapAccess<'de>>(self, mut m: M) -> Result<SecretSpec, M::Error> {
                let mut env = None;
                while let Some(k) = m.next_key::<String>()? {
                    if k != "env" || env.is_some() {
                        return Err(de::Error::custom(format!(
                            "unexpected key `{k}` in a secret: write {{ env = \"VARIABLE\" }}"
                        )));
                    }
                    env = Some(m.next_value::<String>()?);
                }
                env.map(SecretSpec::Env)
                    .ok_or_else(|| de::Error::custom("a secret table needs `env`"))
            }
        }
        d.deserialize_any(V)
    }
}

/// A resolved secret. Its `Debug` never shows it, so it cannot leak into a log line.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Vec<u8>);

impl Secret {
    /// The secret's bytes, for a constant-time comparison.
    pub fn bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// Reads secrets' environment variables. A trait object so tests can resolve without touching
/// the process environment.
pub type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

impl SecretSpec {
    fn resolve(&self, what: &str, env: Env) -> Result<Secret, String> {
        let value = match self {
            SecretSpec::Literal(s) => s.clone(),
            SecretSpec::Env(name) => env(name).ok_or_else(|| {
                format!("{what}: environment variable {name} is not set (or not UTF-8)")
            })?,
        };
        if value.is_empty() {
            return Err(format!("{what} is empty"));
        }
        Ok(Secret(value.into_bytes()))
    }
}

/// A program id in the file: an integer, or a string of digits for ids above 2^63 − 1, which a
/// TOML integer cannot hold (Cashfree's sample program id is one).
#[derive(Clone, Copy)]
struct ProgramId(u64);

impl<'de> Deserialize<'de> for ProgramId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = ProgramId;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a program id: a non-negative integer or a string of digits")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<ProgramId, E> {
                u64::try_from(v)
                    .map(ProgramId)
                    .map_err(|_| E::custom(format!("program id {v} is negative")))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<ProgramId, E> {
                Ok(ProgramId(v))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<ProgramId, E> {
                if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(E::custom(format!(
                        "program id {s:?} is not a string of digits"
                    )));
                }
                s.parse()
                    .map(ProgramId)
                    .map_err(|_| E::custom(format!("program id {s:?} does not fit in 64 bits")))
            }
        }
        d.deserialize_any(V)
    }
}

// ---- the file, as written -------------------------------------------------------------------

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct File {
    listen: Option<String>,
    db: Option<PathBuf>,
    #[serde(default)]
    limits: LimitsFile,
    #[serde(default)]
    api: ApiFile,
    #[serde(default)]
    clevertap: VendorFile<CleverTapCredFile>,
    #[serde(default)]
    juicyway: VendorFile<KeyCredFile>,
    #[serde(default)]
    cashfree: VendorFile<CashfreeCredFile>,
    #[serde(default)]
    cryptofuse: VendorFile<KeyCredFile>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct LimitsFile {
    header_read_timeout_ms: Option<u64>,
    body_read_timeout_ms: Option<u64>,
    shutdown_grace_ms: Option<u64>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ApiFile {
    #[serde(default)]
    tokens: Vec<SecretSpec>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct VendorFile<C> {
    base_path: Option<String>,
    #[serde(default = "Vec::new")]
    credentials: Vec<C>,
}

impl<C> Default for VendorFile<C> {
    fn default() -> Self {
        VendorFile {
            base_path: None,
            credentials: Vec::new(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CleverTapCredFile {
    account_id: String,
    passcode: SecretSpec,
    programs: Option<Vec<ProgramId>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyCredFile {
    key: SecretSpec,
    programs: Option<Vec<ProgramId>>,
    /// Juicyway only: show account numbers as `******` + their last 4 digits.
    #[serde(default)]
    mask_account_numbers: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CashfreeCredFile {
    client_id: String,
    client_secret: SecretSpec,
    programs: Option<Vec<ProgramId>>,
}

// ---- the resolved configuration ---------------------------------------------------------------

/// The programs a credential may see: `None` is every program.
pub type Scope = Option<HashSet<u64>>;

/// One vendor credential: an id (CleverTap's account id, Cashfree's client id; empty for the
/// token-only vendors), a secret, and the programs it may see.
#[derive(Clone, Debug)]
pub struct Credential {
    pub id: String,
    pub secret: Secret,
    pub scope: Scope,
    /// Juicyway: mask account numbers for this credential.
    pub mask: bool,
}

/// One vendor's mount point and credentials.
#[derive(Clone, Debug)]
pub struct VendorConfig {
    pub base_path: String,
    pub credentials: Vec<Credential>,
}

/// Timeouts that bound what a slow or silent client can hold.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// A client must send a request's head (line and headers) within this, or the connection
    /// is closed; an idle keep-alive connection is closed after it too.
    pub header_read_timeout: Duration,
    /// A client must send the whole body within this, or gets a 408.
    pub body_read_timeout: Duration,
    /// How long SIGTERM waits for in-flight requests before exiting anyway.
    pub shutdown_grace: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(10),
            shutdown_grace: Duration::from_secs(30),
        }
    }
}

/// Everything `walletd` runs with.
#[derive(Clone, Debug)]
pub struct Config {
    pub listen: String,
    pub db: PathBuf,
    pub limits: Limits,
    /// Bearer tokens of the `/v1` ledger API.
    pub api_tokens: Vec<Secret>,
    pub clevertap: VendorConfig,
    pub juicyway: VendorConfig,
    pub cashfree: VendorConfig,
    pub cryptofuse: VendorConfig,
}

impl Default for Config {
    fn default() -> Self {
        let vendor = |base: &str| VendorConfig {
            base_path: base.into(),
            credentials: Vec::new(),
        };
        Config {
            listen: DEFAULT_LISTEN.into(),
            db: DEFAULT_DB.into(),
            limits: Limits::default(),
            api_tokens: Vec::new(),
            clevertap: vendor("/clevertap"),
            juicyway: vendor("/juicyway"),
            cashfree: vendor("/cashfree"),
            cryptofuse: vendor("/cryptofuse"),
        }
    }
}

fn scope(programs: Option<Vec<ProgramId>>) -> Scope {
    programs.map(|p| p.into_iter().map(|p| p.0).collect())
}

/// Paths the server itself answers, which no vendor base may shadow.
const RESERVED: [&str; 3] = ["/v1", "/healthz", "/metrics"];

fn base_path(given: Option<String>, default: &str, what: &str) -> Result<String, String> {
    let base = given.unwrap_or_else(|| default.to_string());
    let ok = base.len() > 1
        && base.starts_with('/')
        && !base.ends_with('/')
        && base.split('/').skip(1).all(|seg| {
            !seg.is_empty()
                && seg
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
        });
    if !ok {
        return Err(format!(
            "{what}.base_path {base:?} must be like \"/name\" or \"/a/b\": segments of letters, \
             digits and -._~, no trailing slash"
        ));
    }
    if RESERVED
        .iter()
        .any(|r| base == *r || base.starts_with(&format!("{r}/")))
    {
        return Err(format!(
            "{what}.base_path {base:?} is taken by walletd's own routes"
        ));
    }
    Ok(base)
}

impl Config {
    /// The mount point and credentials of `vendor`.
    pub fn vendor(&self, vendor: crate::ledger::Vendor) -> &VendorConfig {
        use crate::ledger::Vendor;
        match vendor {
            Vendor::CleverTap => &self.clevertap,
            Vendor::Juicyway => &self.juicyway,
            Vendor::Cashfree => &self.cashfree,
            Vendor::Cryptofuse => &self.cryptofuse,
        }
    }

    /// Parses a configuration file's text, resolving secrets through `env`.
    pub fn parse(text: &str, env: Env) -> Result<Config, String> {
        let f: File = toml::from_str(text).map_err(|e| e.to_string())?;
        let d = Config::default();
        let secret_list = |what: &str, specs: Vec<SecretSpec>| -> Result<Vec<Secret>, String> {
            specs
                .iter()
                .enumerate()
                .map(|(i, s)| s.resolve(&format!("{what}[{i}]"), env))
                .collect()
        };
        let limits = {
            let ms = |v: Option<u64>, default: Duration, what: &str| match v {
                None => Ok(default),
                Some(0) => Err(format!("limits.{what} must be at least 1")),
                Some(v) => Ok(Duration::from_millis(v)),
            };
            Limits {
                header_read_timeout: ms(
                    f.limits.header_read_timeout_ms,
                    d.limits.header_read_timeout,
                    "header_read_timeout_ms",
                )?,
                body_read_timeout: ms(
                    f.limits.body_read_timeout_ms,
                    d.limits.body_read_timeout,
                    "body_read_timeout_ms",
                )?,
                shutdown_grace: ms(
                    f.limits.shutdown_grace_ms,
                    d.limits.shutdown_grace,
                    "shutdown_grace_ms",
                )?,
            }
        };
        let clevertap = VendorConfig {
            base_path: base_path(f.clevertap.base_path, "/clevertap", "clevertap")?,
            credentials: f
                .clevertap
                .credentials
                .into_iter()
                .enumerate()
                .map(|(i, c)| {
                    if c.account_id.is_empty() {
                        return Err(format!("clevertap.credentials[{i}].account_id is empty"));
                    }
                    Ok(Credential {
                        id: c.account_id,
                        secret: c
                            .passcode
                            .resolve(&format!("clevertap.credentials[{i}].passcode"), env)?,
                        scope: scope(c.programs),
                        mask: false,
                    })
                })
                .collect::<Result<_, String>>()?,
        };
        let keyed = |v: VendorFile<KeyCredFile>,
                     name: &str,
                     default: &str,
                     masks: bool|
         -> Result<VendorConfig, String> {
            Ok(VendorConfig {
                base_path: base_path(v.base_path, default, name)?,
                credentials: v
                    .credentials
                    .into_iter()
                    .enumerate()
                    .map(|(i, c)| {
                        if c.mask_account_numbers && !masks {
                            return Err(format!(
                                "{name}.credentials[{i}].mask_account_numbers applies to juicyway only"
                            ));
                        }
                        Ok(Credential {
                            id: String::new(),
                            secret: c.key.resolve(&format!("{name}.credentials[{i}].key"), env)?,
                            scope: scope(c.programs),
                            mask: c.mask_account_numbers,
                        })
                    })
                    .collect::<Result<_, String>>()?,
            })
        };
        let juicyway = keyed(f.juicyway, "juicyway", "/juicyway", true)?;
        let cryptofuse = keyed(f.cryptofuse, "cryptofuse", "/cryptofuse", false)?;
        let cashfree = VendorConfig {
            base_path: base_path(f.cashfree.base_path, "/cashfree", "cashfree")?,
            credentials: f
                .cashfree
                .credentials
                .into_iter()
                .enumerate()
                .map(|(i, c)| {
                    if c.client_id.is_empty() {
                        return Err(format!("cashfree.credentials[{i}].client_id is empty"));
                    }
                    Ok(Credential {
                        id: c.client_id,
                        secret: c
                            .client_secret
                            .resolve(&format!("cashfree.credentials[{i}].client_secret"), env)?,
                        scope: scope(c.programs),
                        mask: false,
                    })
                })
                .collect::<Result<_, String>>()?,
        };
        let bases = [
            &clevertap.base_path,
            &juicyway.base_path,
            &cashfree.base_path,
            &cryptofuse.base_path,
        ];
        for (i, a) in bases.iter().enumerate() {
            for b in &bases[i + 1..] {
                if a == b {
                    return Err(format!("two vendors share the base path {a:?}"));
                }
            }
        }
        Ok(Config {
            listen: f.listen.unwrap_or(d.listen),
            db: f.db.unwrap_or(d.db),
            limits,
            api_tokens: secret_list("api.tokens", f.api.tokens)?,
            clevertap,
            juicyway,
            cashfree,
            cryptofuse,
        })
    }

    /// The address to listen on, parsed.
    pub fn listen_addr(&self) -> Result<SocketAddr, String> {
        self.listen
            .parse()
            .map_err(|e| format!("listen address {:?}: {e}", self.listen))
    }
}

/// `walletd`'s command line: where things are, never secrets.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Args {
    pub db: Option<PathBuf>,
    pub config: Option<PathBuf>,
    pub listen: Option<String>,
    pub help: bool,
}

/// The usage text.
pub const USAGE: &str = "usage: walletd [--db PATH] [--config FILE] [--listen ADDR]

options:
  --db PATH       ledger file (default ./wallets.redb, or `db` in the config file)
  --config FILE   TOML configuration: credentials, base paths, limits (see docs/walletd.md)
  --listen ADDR   address to listen on (default 127.0.0.1:8080, or `listen` in the config file)

Secrets are read from the config file or from environment variables it names, never from the
command line. Logging: RUST_LOG (default info); WALLETD_LOG_FORMAT=json for JSON lines.";

impl Args {
    /// Parses the arguments after the program name.
    pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Args, String> {
        let mut out = Args::default();
        let mut it = args.into_iter();
        while let Some(a) = it.next() {
            let (name, inline) = match a.split_once('=') {
                Some((n, v)) if n.starts_with("--") => (n.to_string(), Some(v.to_string())),
                _ => (a.clone(), None),
            };
            let mut value = |name: &str| {
                inline
                    .clone()
                    .or_else(|| it.next())
                    .ok_or_else(|| format!("{name} needs a value"))
            };
            match name.as_str() {
                "--db" => out.db = Some(value("--db")?.into()),
                "--config" => out.config = Some(value("--config")?.into()),
                "--listen" => out.listen = Some(value("--listen")?),
                "-h" | "--help" => out.help = true,
                other => return Err(format!("unknown argument {other:?}")),
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        (name == "PASS").then(|| "from-env".to_string())
    }

    #[test]
    fn a_full_file_resolves() {
        let c = Config::parse(
            r#"
            listen = "0.0.0.0:9000"
            [api]
            tokens = ["t1", { env = "PASS" }]
            [clevertap]
            base_path = "/ct"
            [[clevertap.credentials]]
            account_id = "ACC"
            passcode = { env = "PASS" }
            programs = [1000, "9876543210987654321"]
            [[juicyway.credentials]]
            key = "k"
            mask_account_numbers = true
            "#,
            &env,
        )
        .unwrap();
        assert_eq!(c.listen, "0.0.0.0:9000");
        assert_eq!(c.db, PathBuf::from(DEFAULT_DB));
        assert_eq!(c.api_tokens[1].bytes(), b"from-env");
        assert_eq!(c.clevertap.base_path, "/ct");
        assert_eq!(c.cashfree.base_path, "/cashfree");
        let cred = &c.clevertap.credentials[0];
        assert_eq!(cred.secret.bytes(), b"from-env");
        assert_eq!(
            cred.scope,
            Some([1000, 9_876_543_210_987_654_321].into_iter().collect())
        );
        assert!(c.juicyway.credentials[0].mask);
        assert_eq!(c.juicyway.credentials[0].scope, None);
        // Secrets never reach a Debug rendering.
        assert!(!format!("{c:?}").contains("from-env"));
    }

    #[test]
    fn mistakes_are_refused_with_their_place() {
        for (text, needle) in [
            ("lisen = \"x\"", "lisen"),
            ("[api]\ntokens = [{ env = \"NOPE\" }]", "NOPE"),
            ("[api]\ntokens = [\"\"]", "empty"),
            ("[api]\ntokens = [{ envv = \"PASS\" }]", "envv"),
            ("[juicyway]\nbase_path = \"/v1\"", "taken"),
            ("[juicyway]\nbase_path = \"juicy\"", "base_path"),
            ("[juicyway]\nbase_path = \"/a/\"", "base_path"),
            ("[juicyway]\nbase_path = \"/cashfree\"", "share"),
            (
                "[[cryptofuse.credentials]]\nkey = \"k\"\nmask_account_numbers = true",
                "juicyway only",
            ),
            (
                "[[cashfree.credentials]]\nclient_id = \"c\"\nclient_secret = \"s\"\nprograms = [-1]",
                "negative",
            ),
            (
                "[[cashfree.credentials]]\nclient_id = \"c\"\nclient_secret = \"s\"\nprograms = [\"1x\"]",
                "digits",
            ),
            ("[limits]\nbody_read_timeout_ms = 0", "at least 1"),
        ] {
            let e = Config::parse(text, &env).unwrap_err();
            assert!(e.contains(needle), "{text:?}: {e}");
        }
    }

    /// The committed sample parses, given its environment variables.
    #[test]
    fn the_sample_config_parses() {
        let text = include_str!("../walletd.example.toml");
        let c = Config::parse(text, &|_| Some("secret".to_string())).unwrap();
        assert_eq!(c.clevertap.credentials[0].id, "ACCOUNT_ID");
        assert_eq!(
            c.cashfree.credentials[0].scope,
            Some([9_876_543_210_987_654_321].into_iter().collect())
        );
        assert_eq!(c.listen, DEFAULT_LISTEN);
        assert!(Config::parse(text, &|_| None).is_err());
    }

    #[test]
    fn arguments() {
        let a = Args::parse(
            [
                "--db",
                "x.redb",
                "--config=c.toml",
                "--listen",
                "127.0.0.1:0",
            ]
            .map(String::from),
        )
        .unwrap();
        assert_eq!(a.db, Some("x.redb".into()));
        assert_eq!(a.config, Some("c.toml".into()));
        assert_eq!(a.listen.as_deref(), Some("127.0.0.1:0"));
        assert!(Args::parse(["--token".to_string(), "s".into()]).is_err());
        assert!(Args::parse(["--db".to_string()]).is_err());
    }
}
