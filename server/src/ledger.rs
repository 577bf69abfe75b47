//! The server's only door into `wallet_ledger`: every call into the library is in this module,
//! so that when the library's public API is reshaped, adapting `walletd` is a change to this one
//! file. The rest of the server sees plain Rust and JSON values: "apply this command line",
//! "show this wallet", "answer this vendor request", "the body of this vendor error".
//!
//! Every function here blocks (redb reads, durable commits); the HTTP layer calls them on the
//! blocking pool, never on an async worker.

use chrono::{DateTime, Utc};
use serde_json::Value;
use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;
use wallet_ledger::views::{self, UsageError, cashfree, clevertap, cryptofuse, juicyway};
use wallet_ledger::{ErrorCode, Ledger, ReadError, render};

/// Largest request body: the ledger's own limit on one command line, so that any command the
/// ledger would accept fits, and nothing larger is ever buffered.
pub const MAX_BODY_BYTES: usize = wallet_ledger::limits::MAX_LINE_BYTES;

/// One ledger file, shared by every request. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    ledger: Ledger,
}

/// How a command ended, for the HTTP status and the metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Applied and durable.
    Applied,
    /// An idempotent replay: the stored receipt, nothing appended.
    Replayed,
    /// Refused; nothing was written.
    Rejected {
        /// The SPEC §7 code.
        code: &'static str,
        kind: Rejection,
    },
}

/// The kinds of refusal, each with its own HTTP status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rejection {
    /// The command itself is malformed: `invalid_command`, `invalid_amount`, `invalid_time`.
    Malformed,
    /// `idempotency_conflict`: the key was used for a different command.
    Conflict,
    /// The ledger's state refuses it (unknown wallet, insufficient funds, frozen, …).
    Refused,
    /// `storage`: I/O or corruption.
    Storage,
}

/// One command's result.
#[derive(Debug)]
pub struct Applied {
    /// Exactly the line `walletctl apply` prints for it.
    pub result: Value,
    /// The command's `op` (or `invalid`), for the metrics.
    pub op: &'static str,
    pub outcome: Outcome,
}

/// Why a `/v1` read produced no answer.
#[derive(Debug)]
pub struct ReadFailure {
    pub status: u16,
    /// `invalid_request` (the path is not a wallet id), or a SPEC §7 code.
    pub code: &'static str,
    pub message: String,
}

/// The four vendors, by the names `walletctl view` takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Vendor {
    CleverTap,
    Juicyway,
    Cashfree,
    Cryptofuse,
}

impl Vendor {
    /// Every vendor, in the order of SPEC §8.
    pub const ALL: [Vendor; 4] = [
        Vendor::CleverTap,
        Vendor::Juicyway,
        Vendor::Cashfree,
        Vendor::Cryptofuse,
    ];

    /// The name `views::answer` and the configuration use.
    pub fn name(self) -> &'static str {
        match self {
            Vendor::CleverTap => "clevertap",
            Vendor::Juicyway => "juicyway",
            Vendor::Cashfree => "cashfree",
            Vendor::Cryptofuse => "cryptofuse",
        }
    }
}

/// A vendor request, as the HTTP layer read it from the route.
#[derive(Clone, Copy, Debug)]
pub enum ViewRequest<'a> {
    /// The query parameters (absent ones `None`).
    CleverTap {
        object_id: Option<&'a str>,
        email: Option<&'a str>,
        identity: Option<&'a str>,
    },
    /// The path's wallet id.
    Juicyway { id: &'a str },
    /// The request body, as sent.
    Cashfree { body: &'a str },
    /// The path's wallet id.
    Cryptofuse { id: &'a str },
}

/// What the authenticated credential may see.
#[derive(Clone, Copy, Debug, Default)]
pub struct Access<'a> {
    /// The programs it may see; `None` is every program.
    pub scope: Option<&'a HashSet<u64>>,
    /// Juicyway: mask account numbers.
    pub mask: bool,
}

/// A vendor answer: HTTP status and body (JSON text).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    pub body: String,
}

/// HTTP-level failures, each answered in the vendor's own error shape.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VendorError {
    /// 401: missing or wrong credentials.
    Unauthorized,
    /// 403: the credential may not see this wallet's program (where the vendor documents 403).
    Forbidden,
    /// 400: a request the vendor's request type cannot be (bad `as_of`, unknown parameter…).
    BadRequest(String),
    /// 404: a path under the vendor's base that it does not serve.
    NoRoute(String),
    /// 405: a method the route does not serve.
    MethodNotAllowed(String),
    /// 408: the body did not arrive in time.
    Timeout(String),
    /// 413: the body exceeds [`MAX_BODY_BYTES`].
    TooLarge(String),
    /// 415: the body is not declared as JSON.
    UnsupportedMediaType(String),
    /// 500: the store failed (the vendor's documented 500 body where it has one).
    Internal,
}

impl VendorError {
    /// The HTTP status.
    pub fn status(&self) -> u16 {
        match self {
            VendorError::Unauthorized => 401,
            VendorError::Forbidden => 403,
            VendorError::BadRequest(_) => 400,
            VendorError::NoRoute(_) => 404,
            VendorError::MethodNotAllowed(_) => 405,
            VendorError::Timeout(_) => 408,
            VendorError::TooLarge(_) => 413,
            VendorError::UnsupportedMediaType(_) => 415,
            VendorError::Internal => 500,
        }
    }
}

fn json_text<T: serde::Serialize>(v: &T) -> String {
    // Every body here is plain data (strings and numbers): serialization cannot fail.
    serde_json::to_string(v).unwrap_or_else(|_| "{}".into())
}

/// The body `vendor` answers `e` with: its documented body where it documents one (CleverTap
/// 401 and 500, Cryptofuse 401, 403 and 500, Juicyway 403 "Access denied"), else the vendor's
/// error shape with a message naming the problem.
pub fn vendor_error(vendor: Vendor, e: &VendorError) -> Answer {
    let status = e.status();
    // (code, message) for the shapes that carry a code.
    let (code, message): (&str, String) = match e {
        VendorError::Unauthorized => match vendor {
            Vendor::Cryptofuse => ("unauthorized", "Authentication failed".into()),
            _ => ("unauthorized", "Unauthorized".into()),
        },
        VendorError::Forbidden => match vendor {
            Vendor::Cryptofuse => ("forbidden", "User doesn't have required permissions".into()),
            _ => ("forbidden", "Access denied".into()),
        },
        VendorError::BadRequest(m) => match vendor {
            Vendor::Juicyway => ("bad_request", m.clone()),
            _ => ("invalid_request", m.clone()),
        },
        VendorError::NoRoute(m) => ("not_found", m.clone()),
        VendorError::MethodNotAllowed(m) => ("method_not_allowed", m.clone()),
        VendorError::Timeout(m) => ("request_timeout", m.clone()),
        VendorError::TooLarge(m) => ("payload_too_large", m.clone()),
        VendorError::UnsupportedMediaType(m) => ("unsupported_media_type", m.clone()),
        VendorError::Internal => match vendor {
            Vendor::Cryptofuse => ("server_error", "Internal server error".into()),
            _ => ("internal_error", "Internal server error".into()),
        },
    };
    let body = match vendor {
        Vendor::CleverTap => json_text(&match e {
            VendorError::Unauthorized => clevertap::Failure::invalid_credentials(),
            VendorError::Internal => clevertap::Failure::system_error(),
            _ => clevertap::Failure {
                status: "fail".into(),
                error: message,
                code: status,
            },
        }),
        Vendor::Juicyway => json_text(&juicyway::ErrorBody {
            error: juicyway::ErrorDetail {
                code: code.into(),
                message,
            },
        }),
        Vendor::Cashfree => json_text(&match e {
            // Cashfree's own answer to bad credentials.
            VendorError::Unauthorized => cashfree::ErrorBody {
                message: "authentication Failed".into(),
                code: "request_failed".into(),
                kind: "authentication_error".into(),
            },
            VendorError::Internal => cashfree::ErrorBody {
                message,
                code: code.into(),
                kind: "api_error".into(),
            },
            // Its request errors are `request_invalid`, as the view's own 400s.
            VendorError::BadRequest(_) => cashfree::ErrorBody::new(message, "request_invalid"),
            _ => cashfree::ErrorBody::new(message, code),
        }),
        Vendor::Cryptofuse => json_text(&cryptofuse::ErrorBody {
            error: cryptofuse::ErrorDetail {
                code: code.into(),
                message,
                details: cryptofuse::Details {},
            },
        }),
    };
    Answer { status, body }
}

/// Why a wallet id in a `/v1` path is not one.
fn parse_wallet(id: &str) -> Result<uuid::Uuid, ReadFailure> {
    // The same parsing as `walletctl show` and `history`.
    uuid::Uuid::try_parse(id).map_err(|_| ReadFailure {
        status: 400,
        code: "invalid_request",
        message: format!("wallet {id:?} is not a UUID"),
    })
}

fn read_failure(e: ReadError) -> ReadFailure {
    let message = e.to_string();
    match e.code() {
        ErrorCode::UnknownWallet => ReadFailure {
            status: 404,
            code: "unknown_wallet",
            message,
        },
        ErrorCode::InvalidTime => ReadFailure {
            status: 400,
            code: "invalid_time",
            message,
        },
        _ => ReadFailure {
            status: 500,
            code: "storage",
            message,
        },
    }
}

impl Store {
    /// Opens (or creates) the ledger file.
    pub fn open(path: &Path) -> Result<Store, String> {
        Ledger::open(path)
            .map(|ledger| Store { ledger })
            .map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Calls `f(commands in the group, time to its durable commit)` after every group commit.
    pub fn on_commit(&self, f: impl Fn(usize, Duration) + Send + Sync + 'static) {
        self.ledger.on_commit(move |s| f(s.commands, s.elapsed));
    }

    /// Whether a read transaction can be opened: the health check.
    pub fn check(&self) -> Result<(), String> {
        self.ledger.reader().map(drop).map_err(|e| e.to_string())
    }

    /// Applies one command line (SPEC §9) as `walletctl apply` does, answering once its commit
    /// is durable. `n` is the result's `line`.
    pub fn apply(&self, line: &str, n: usize) -> Applied {
        let r = self.ledger.execute_line(line);
        let result = render::result_line(n, &r);
        let (op, outcome) = match &r {
            Ok(receipt) => (
                label(&receipt.op),
                if receipt.replayed {
                    Outcome::Replayed
                } else {
                    Outcome::Applied
                },
            ),
            Err(e) => {
                let kind = match e.code {
                    ErrorCode::InvalidCommand
                    | ErrorCode::InvalidAmount
                    | ErrorCode::InvalidTime => Rejection::Malformed,
                    ErrorCode::IdempotencyConflict => Rejection::Conflict,
                    ErrorCode::Storage => Rejection::Storage,
                    _ => Rejection::Refused,
                };
                (
                    label(&op_of(line)),
                    Outcome::Rejected {
                        code: e.code.as_str(),
                        kind,
                    },
                )
            }
        };
        Applied {
            result,
            op,
            outcome,
        }
    }

    /// `walletctl show WALLET [--as-of T]`'s JSON.
    pub fn show(&self, wallet: &str, as_of: Option<DateTime<Utc>>) -> Result<Value, ReadFailure> {
        let w = parse_wallet(wallet)?;
        self.ledger
            .snapshot(w, as_of)
            .map(|s| render::snapshot(&s))
            .map_err(read_failure)
    }

    /// `walletctl history WALLET`'s objects, as one JSON array.
    pub fn history(&self, wallet: &str) -> Result<Value, ReadFailure> {
        let w = parse_wallet(wallet)?;
        self.ledger
            .history(w)
            .map(|entries| Value::Array(render::history(&entries)))
            .map_err(read_failure)
    }

    /// Answers a vendor request as of `as_of` (default now) exactly as `walletctl view` does,
    /// then applies the credential's program scope: a wallet outside it gets the vendor's 403
    /// where it documents one (Juicyway, Cryptofuse), else the answer an unknown wallet gets
    /// (Cashfree's 404; CleverTap's records outside the scope are left out, and no record left
    /// is its 400 `Invalid identity`). `Err` is a failure to answer in the vendor's shape.
    pub fn view(
        &self,
        req: ViewRequest,
        as_of: Option<DateTime<Utc>>,
        access: Access,
    ) -> Result<Answer, VendorError> {
        let (vendor, request) = match req {
            ViewRequest::CleverTap {
                object_id,
                email,
                identity,
            } => {
                let mut m = serde_json::Map::new();
                for (k, v) in [
                    ("objectId", object_id),
                    ("email", email),
                    ("identity", identity),
                ] {
                    if let Some(v) = v {
                        m.insert(k.into(), v.into());
                    }
                }
                (Vendor::CleverTap, Value::Object(m).to_string())
            }
            ViewRequest::Juicyway { id } => (
                Vendor::Juicyway,
                serde_json::json!({"id": id, "mask": access.mask}).to_string(),
            ),
            ViewRequest::Cashfree { body } => (Vendor::Cashfree, body.to_string()),
            ViewRequest::Cryptofuse { id } => (
                Vendor::Cryptofuse,
                serde_json::json!({"id": id}).to_string(),
            ),
        };
        let reader = self.ledger.reader().map_err(|e| {
            tracing::error!(vendor = vendor.name(), error = %e, "cannot open a read transaction");
            VendorError::Internal
        })?;
        let usage = |e: UsageError| match e {
            UsageError::InvalidTime(m) => VendorError::BadRequest(format!("as_of: {m}")),
            UsageError::BadRequest { message, .. } => VendorError::BadRequest(message),
            other => {
                tracing::error!(vendor = vendor.name(), error = %other, "view failed");
                VendorError::Internal
            }
        };
        let (status, body) =
            views::answer(&reader, vendor.name(), &request, as_of).map_err(usage)?;
        let answer = Answer { status, body };
        let Some(scope) = access.scope else {
            return Ok(answer);
        };
        if answer.status != 200 {
            return Ok(answer);
        }
        let internal = |what: &str| {
            tracing::error!(vendor = vendor.name(), "{what}");
            VendorError::Internal
        };
        match req {
            ViewRequest::CleverTap { .. } => {
                let Ok(views::Response::Success(mut s)) =
                    clevertap::Response::from_body(200, &answer.body)
                else {
                    return Err(internal("cannot read back a CleverTap answer"));
                };
                s.records.retain(|r| scope.contains(&r.wallet_id));
                if s.records.is_empty() {
                    return Ok(Answer {
                        status: 400,
                        body: json_text(&clevertap::Failure::invalid_identity()),
                    });
                }
                Ok(Answer {
                    status: 200,
                    body: json_text(&s),
                })
            }
            ViewRequest::Cashfree { body } => {
                let Ok(views::Response::Success(s)) =
                    cashfree::Response::from_body(200, &answer.body)
                else {
                    return Err(internal("cannot read back a Cashfree answer"));
                };
                if s.cf_program_id
                    .parse::<u64>()
                    .is_ok_and(|p| scope.contains(&p))
                {
                    return Ok(answer);
                }
                let Ok(req) = cashfree::Request::from_json(body) else {
                    return Err(internal("a Cashfree request answered 200 does not parse"));
                };
                Ok(Answer {
                    status: 404,
                    body: json_text(&cashfree::wallet_not_found(&req)),
                })
            }
            ViewRequest::Juicyway { id } | ViewRequest::Cryptofuse { id } => {
                let program = views::Source::new(&reader, as_of)
                    .ok()
                    .and_then(|src| {
                        let id = views::parse_uuid_text(id)?;
                        src.wallet_by_uuid(id).ok().flatten()
                    })
                    .map(|s| s.program);
                match program {
                    Some(p) if scope.contains(&p) => Ok(answer),
                    Some(_) => Err(VendorError::Forbidden),
                    None => Err(internal("a wallet answered 200 cannot be read back")),
                }
            }
        }
    }
}

/// The metrics label for an op name.
fn label(op: &str) -> &'static str {
    // The label takes only SPEC's op names (anything else is `invalid`), so a client cannot
    // grow the metric without bound.
    wallet_ledger::Command::OPS
        .iter()
        .copied()
        .find(|o| *o == op)
        .unwrap_or("invalid")
}

/// The `op` a (possibly malformed) line names, if it is an object with a string `op`.
fn op_of(line: &str) -> String {
    #[derive(serde::Deserialize)]
    struct Probe {
        op: String,
    }
    serde_json::from_str::<Probe>(line)
        .map(|p| p.op)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vendor_error_bodies_are_the_documented_ones() {
        let body = |v, e: VendorError| vendor_error(v, &e);
        assert_eq!(
            body(Vendor::CleverTap, VendorError::Unauthorized),
            Answer {
                status: 401,
                body: r#"{"status":"fail","error":"Invalid credentials","code":401}"#.into()
            }
        );
        assert_eq!(
            body(Vendor::CleverTap, VendorError::Internal).body,
            r#"{"status":"fail","error":"Request couldn't be processed due to a system error. Try again.","code":500}"#
        );
        assert_eq!(
            body(Vendor::Cryptofuse, VendorError::Forbidden),
            Answer {
                status: 403,
                body: r#"{"error":{"code":"forbidden","message":"User doesn't have required permissions","details":{}}}"#.into()
            }
        );
        assert_eq!(
            body(Vendor::Cryptofuse, VendorError::Unauthorized).body,
            r#"{"error":{"code":"unauthorized","message":"Authentication failed","details":{}}}"#
        );
        assert_eq!(
            body(Vendor::Cryptofuse, VendorError::Internal).body,
            r#"{"error":{"code":"server_error","message":"Internal server error","details":{}}}"#
        );
        assert_eq!(
            body(Vendor::Juicyway, VendorError::Forbidden),
            Answer {
                status: 403,
                body: r#"{"error":{"code":"forbidden","message":"Access denied"}}"#.into()
            }
        );
        assert_eq!(
            body(Vendor::Cashfree, VendorError::BadRequest("x".into())).body,
            r#"{"message":"x","code":"request_invalid","type":"invalid_request_error"}"#
        );
    }

    #[test]
    fn op_labels_are_bounded() {
        assert_eq!(label("credit"), "credit");
        assert_eq!(label("credit\n"), "invalid");
        assert_eq!(label(&op_of(r#"{"op":"fly"}"#)), "invalid");
        assert_eq!(label(&op_of(r#"{"op":"redeem","amount":"x"}"#)), "redeem");
        assert_eq!(label(&op_of("[")), "invalid");
    }
}
