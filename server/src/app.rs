//! Routes and handlers. Each handler authenticates, reads and checks its input, then runs the
//! ledger call on the blocking pool (`App::blocking`): a durable commit waits on an fsync and
//! must not hold an async worker, and callers parked there concurrently are what the ledger
//! gathers into one group commit.

use crate::auth;
use crate::config::{Config, VendorConfig};
use crate::ledger::{
    Access, Answer, MAX_BODY_BYTES, Outcome, Rejection, Store, Vendor, VendorError, ViewRequest,
    vendor_error,
};
use crate::metrics::Metrics;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{MatchedPath, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use std::borrow::Cow;
use std::sync::Arc;
use std::time::Instant;

/// Shared by every handler.
#[derive(Clone)]
pub struct App {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    config: Config,
    metrics: Metrics,
}

impl App {
    /// The state for a ledger and a configuration; group commits are reported to `metrics`.
    pub fn new(store: Store, config: Config, metrics: Metrics) -> App {
        let m = metrics.clone();
        store.on_commit(move |commands, elapsed| m.commit(commands, elapsed.as_secs_f64()));
        App {
            inner: Arc::new(Inner {
                store,
                config,
                metrics,
            }),
        }
    }

    fn vendor(&self, v: Vendor) -> &VendorConfig {
        self.inner.config.vendor(v)
    }

    /// Runs a ledger call on the blocking pool. `None` if it panicked (answered as a 500).
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Store, &Config) -> T + Send + 'static,
    ) -> Option<T> {
        let app = self.clone();
        match tokio::task::spawn_blocking(move || f(&app.inner.store, &app.inner.config)).await {
            Ok(v) => Some(v),
            Err(e) => {
                tracing::error!(error = %e, "a ledger call panicked");
                None
            }
        }
    }
}

/// The router: the ledger API, health and metrics, and each vendor under its base path.
pub fn router(app: App) -> Router {
    let c = &app.inner.config;
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/v1/commands", post(commands))
        .route("/v1/wallets/{id}", get(show))
        .route("/v1/wallets/{id}/history", get(history))
        .route(
            &format!("{}/1/promo/wallets", c.clevertap.base_path),
            get(clevertap),
        )
        .route(
            &format!("{}/wallets/{{id}}", c.juicyway.base_path),
            get(juicyway),
        )
        .route(
            &format!("{}/ppi/wallet/details", c.cashfree.base_path),
            post(cashfree),
        )
        .route(
            &format!("{}/wallets/{{id}}/", c.cryptofuse.base_path),
            get(cryptofuse),
        )
        .fallback(no_route)
        .method_not_allowed_fallback(wrong_method)
        .layer(middleware::from_fn_with_state(app.clone(), observe))
        .layer(
            tower_http::trace::TraceLayer::new_for_http()
                // The path only: a query may carry a user's email or identity.
                .make_span_with(|req: &Request| {
                    tracing::info_span!("request", method = %req.method(), path = %req.uri().path())
                })
                .on_request(())
                .on_response(
                    tower_http::trace::DefaultOnResponse::new()
                        .level(tracing::Level::INFO)
                        .latency_unit(tower_http::LatencyUnit::Micros),
                ),
        )
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(
            |_: Box<dyn std::any::Any + Send>| {
                error(500, "internal_error", "the request handler failed")
            },
        ))
        .with_state(app)
}

/// Counts every answered request by route template (or `unmatched`), method and status.
async fn observe(State(app): State<App>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let method = match *req.method() {
        Method::GET
        | Method::HEAD
        | Method::POST
        | Method::PUT
        | Method::DELETE
        | Method::PATCH
        | Method::OPTIONS => req.method().as_str().to_string(),
        _ => "other".into(),
    };
    let started = Instant::now();
    let resp = next.run(req).await;
    app.inner.metrics.request(
        &route,
        &method,
        resp.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    resp
}

// ---- responses ------------------------------------------------------------------------------

fn status(code: u16) -> StatusCode {
    StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

/// A JSON body sent as is (already serialized: vendor bodies are spliced byte for byte).
fn json_text(code: u16, body: String) -> Response {
    (
        status(code),
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response()
}

/// walletd's own error body: `{"error":{"code","message"}}`.
fn error(code: u16, err: &str, message: &str) -> Response {
    json_text(
        code,
        json!({"error": {"code": err, "message": message}}).to_string(),
    )
}

fn unauthorized_bearer(mut r: Response) -> Response {
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"walletd\""),
    );
    r
}

fn vendor_answer(a: Answer) -> Response {
    json_text(a.status, a.body)
}

fn vendor_failure(v: Vendor, e: VendorError) -> Response {
    let bearer = matches!(v, Vendor::Juicyway | Vendor::Cryptofuse);
    let unauthorized = e == VendorError::Unauthorized;
    let r = vendor_answer(vendor_error(v, &e));
    if bearer && unauthorized {
        unauthorized_bearer(r)
    } else {
        r
    }
}

// ---- input ----------------------------------------------------------------------------------

/// Why a request body could not be read.
enum BodyError {
    TooLarge,
    Timeout,
    Unreadable(String),
}

impl BodyError {
    fn describe(&self, limit: std::time::Duration) -> (u16, &'static str, String) {
        match self {
            BodyError::TooLarge => (
                413,
                "payload_too_large",
                format!("the request body exceeds {MAX_BODY_BYTES} bytes"),
            ),
            BodyError::Timeout => (
                408,
                "request_timeout",
                format!(
                    "the request body did not arrive within {} ms",
                    limit.as_millis()
                ),
            ),
            BodyError::Unreadable(e) => (400, "invalid_request", format!("unreadable body: {e}")),
        }
    }
}

/// The whole body, at most [`MAX_BODY_BYTES`], within the configured read timeout. A declared
/// length over the limit is refused before anything is read.
async fn read_body(body: Body, headers: &HeaderMap, app: &App) -> Result<Bytes, BodyError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        return Err(BodyError::TooLarge);
    }
    let limited = http_body_util::Limited::new(body, MAX_BODY_BYTES);
    let timeout = app.inner.config.limits.body_read_timeout;
    match tokio::time::timeout(timeout, limited.collect()).await {
        Err(_) => Err(BodyError::Timeout),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => Err(BodyError::TooLarge),
        Ok(Err(e)) => Err(BodyError::Unreadable(e.to_string())),
        Ok(Ok(c)) => Ok(c.to_bytes()),
    }
}

/// Whether the body is declared as JSON (`application/json`, parameters allowed).
fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"))
}

/// The query parameters, each at most once and each one of `allowed`.
fn query(uri: &Uri, allowed: &[&str]) -> Result<Vec<(String, String)>, String> {
    let Query(pairs) = Query::<Vec<(String, String)>>::try_from_uri(uri)
        .map_err(|e| format!("malformed query string: {e}"))?;
    for (i, (k, _)) in pairs.iter().enumerate() {
        if !allowed.contains(&k.as_str()) {
            return Err(format!(
                "unknown query parameter {k:?}; this route takes {}",
                if allowed.is_empty() {
                    "none".to_string()
                } else {
                    allowed.join(", ")
                }
            ));
        }
        if pairs[..i].iter().any(|(p, _)| p == k) {
            return Err(format!("query parameter {k:?} is given more than once"));
        }
    }
    Ok(pairs)
}

fn param<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// `as_of` (RFC 3339 with an offset, within the ledger's 1677..2262), as `walletctl --as-of`.
fn as_of(pairs: &[(String, String)]) -> Result<Option<DateTime<Utc>>, String> {
    let Some(text) = param(pairs, "as_of") else {
        return Ok(None);
    };
    match DateTime::parse_from_rfc3339(text) {
        Ok(t) if t.timestamp_nanos_opt().is_some() => Ok(Some(t.with_timezone(&Utc))),
        Ok(_) => Err(format!(
            "as_of {text:?} is outside the instants the ledger represents (1677-09-21..2262-04-11)"
        )),
        Err(e) => Err(format!(
            "as_of {text:?} is not an RFC 3339 time with an offset ({e}); in a query, write \
             \"+\" as %2B"
        )),
    }
}

// ---- health and metrics ---------------------------------------------------------------------

async fn healthz(State(app): State<App>) -> Response {
    match app.blocking(|store, _| store.check()).await {
        Some(Ok(())) => json_text(200, json!({"status": "ok"}).to_string()),
        Some(Err(e)) => json_text(
            503,
            json!({"status": "unavailable", "error": e}).to_string(),
        ),
        None => json_text(
            503,
            json!({"status": "unavailable", "error": "health check failed"}).to_string(),
        ),
    }
}

async fn metrics(State(app): State<App>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        app.inner.metrics.render(),
    )
        .into_response()
}

// ---- the ledger API (/v1) -------------------------------------------------------------------

fn v1_authorized(app: &App, headers: &HeaderMap) -> Result<(), Response> {
    match auth::bearer(headers) {
        Some(t) if auth::token_ok(&app.inner.config.api_tokens, t) => Ok(()),
        _ => Err(unauthorized_bearer(error(
            401,
            "unauthorized",
            "missing or wrong bearer token",
        ))),
    }
}

fn status_of(outcome: Outcome) -> u16 {
    match outcome {
        Outcome::Applied | Outcome::Replayed => 200,
        Outcome::Rejected { kind, .. } => match kind {
            Rejection::Malformed => 400,
            Rejection::Conflict => 409,
            Rejection::Refused => 422,
            Rejection::Storage => 500,
        },
    }
}

fn outcome_label(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Applied => "applied",
        Outcome::Replayed => "replayed",
        Outcome::Rejected { code, .. } => code,
    }
}

/// The command line with the `Idempotency-Key` header as its `key`. A line that already has a
/// key must have the same one; a line that is not an object is left for the ledger to refuse.
fn with_key<'a>(line: &'a str, key: &str) -> Result<Cow<'a, str>, String> {
    #[derive(serde::Deserialize)]
    struct Probe {
        key: Option<String>,
    }
    if let Ok(Probe { key: Some(k) }) = serde_json::from_str::<Probe>(line) {
        return if k == key {
            Ok(Cow::Borrowed(line))
        } else {
            Err(format!(
                "the Idempotency-Key header {key:?} differs from the command's key {k:?}"
            ))
        };
    }
    let Some(rest) = line.trim_start().strip_prefix('{') else {
        return Ok(Cow::Borrowed(line));
    };
    let quoted = serde_json::to_string(key).map_err(|e| e.to_string())?;
    let sep = if rest.trim_start().starts_with('}') {
        ""
    } else {
        ","
    };
    Ok(Cow::Owned(format!("{{\"key\":{quoted}{sep}{rest}")))
}

/// `POST /v1/commands`: one command (an object) or an array of them, answered with the result
/// objects `walletctl apply` prints, each only after its commit is durable.
async fn commands(State(app): State<App>, headers: HeaderMap, body: Body) -> Response {
    if let Err(r) = v1_authorized(&app, &headers) {
        return r;
    }
    if !is_json(&headers) {
        return error(
            415,
            "unsupported_media_type",
            "send the command with Content-Type: application/json",
        );
    }
    let limit = app.inner.config.limits.body_read_timeout;
    let bytes = match read_body(body, &headers, &app).await {
        Ok(b) => b,
        Err(e) => {
            let (code, err, msg) = e.describe(limit);
            return error(code, err, &msg);
        }
    };
    let Ok(text) = String::from_utf8(bytes.into()) else {
        return error(400, "invalid_request", "the request body is not UTF-8");
    };
    let key = match headers.get("idempotency-key").map(|v| v.to_str()) {
        None => None,
        Some(Ok(k)) => Some(k.to_string()),
        Some(Err(_)) => {
            return error(
                400,
                "invalid_request",
                "the Idempotency-Key header must be visible ASCII",
            );
        }
    };
    let is_array = text.trim_start().starts_with('[')
        && serde_json::from_str::<Vec<&serde_json::value::RawValue>>(&text).is_ok();
    if !is_array {
        let line = match &key {
            None => text,
            Some(k) => match with_key(&text, k) {
                Ok(l) => l.into_owned(),
                Err(m) => return error(400, "invalid_request", &m),
            },
        };
        let Some(applied) = app.blocking(move |store, _| store.apply(&line, 1)).await else {
            return error(500, "internal_error", "the command's handler failed");
        };
        app.inner
            .metrics
            .command(applied.op, outcome_label(applied.outcome));
        return json_text(status_of(applied.outcome), applied.result.to_string());
    }
    if key.is_some() {
        return error(
            400,
            "invalid_request",
            "an Idempotency-Key header names one command: give each command of an array its own \"key\"",
        );
    }
    let metrics = app.inner.metrics.clone();
    let done = app
        .blocking(move |store, _| {
            let items: Vec<&serde_json::value::RawValue> =
                serde_json::from_str(&text).unwrap_or_default();
            let mut results = Vec::with_capacity(items.len());
            let mut storage_failed = false;
            for (i, item) in items.iter().enumerate() {
                let applied = store.apply(item.get(), i + 1);
                metrics.command(applied.op, outcome_label(applied.outcome));
                results.push(applied.result);
                // As `walletctl apply`: a storage failure stops the run; later commands are not
                // attempted.
                if matches!(
                    applied.outcome,
                    Outcome::Rejected {
                        kind: Rejection::Storage,
                        ..
                    }
                ) {
                    storage_failed = true;
                    break;
                }
            }
            (results, storage_failed)
        })
        .await;
    match done {
        Some((results, storage_failed)) => json_text(
            if storage_failed { 500 } else { 200 },
            Value::Array(results).to_string(),
        ),
        None => error(500, "internal_error", "the commands' handler failed"),
    }
}

fn read_answer(r: Option<Result<Value, crate::ledger::ReadFailure>>) -> Response {
    match r {
        Some(Ok(v)) => json_text(200, v.to_string()),
        Some(Err(f)) => error(f.status, f.code, &f.message),
        None => error(500, "internal_error", "the read's handler failed"),
    }
}

/// The `/v1` wallet routes' preamble: the bearer token, then the path's wallet id as text.
fn v1_wallet_id(
    app: &App,
    headers: &HeaderMap,
    path: Result<Path<String>, axum::extract::rejection::PathRejection>,
) -> Result<String, Response> {
    v1_authorized(app, headers)?;
    match path {
        Ok(Path(id)) => Ok(id),
        Err(_) => Err(error(
            400,
            "invalid_request",
            "the wallet id is not valid UTF-8 text",
        )),
    }
}

/// `GET /v1/wallets/{id}`: `walletctl show`'s JSON, `?as_of=` optional.
async fn show(
    State(app): State<App>,
    headers: HeaderMap,
    uri: Uri,
    path: Result<Path<String>, axum::extract::rejection::PathRejection>,
) -> Response {
    let id = match v1_wallet_id(&app, &headers, path) {
        Ok(id) => id,
        Err(r) => return r,
    };
    let at = match query(&uri, &["as_of"]).and_then(|q| as_of(&q)) {
        Ok(t) => t,
        Err(m) => return error(400, "invalid_request", &m),
    };
    read_answer(app.blocking(move |store, _| store.show(&id, at)).await)
}

/// `GET /v1/wallets/{id}/history`: `walletctl history`'s objects, as one array.
async fn history(
    State(app): State<App>,
    headers: HeaderMap,
    uri: Uri,
    path: Result<Path<String>, axum::extract::rejection::PathRejection>,
) -> Response {
    let id = match v1_wallet_id(&app, &headers, path) {
        Ok(id) => id,
        Err(r) => return r,
    };
    if let Err(m) = query(&uri, &[]) {
        return error(400, "invalid_request", &m);
    }
    read_answer(app.blocking(move |store, _| store.history(&id)).await)
}

// ---- vendors --------------------------------------------------------------------------------

/// Runs a view for the credential at `cred` of `vendor`'s list.
async fn view(
    app: &App,
    vendor: Vendor,
    cred: usize,
    make: impl FnOnce(&Store, Access) -> Result<Answer, VendorError> + Send + 'static,
) -> Response {
    let answered = app
        .blocking(move |store, config| {
            let c = &config.vendor(vendor).credentials[cred];
            make(
                store,
                Access {
                    scope: c.scope.as_ref(),
                    mask: c.mask,
                },
            )
        })
        .await;
    match answered {
        Some(Ok(a)) => vendor_answer(a),
        Some(Err(e)) => vendor_failure(vendor, e),
        None => vendor_failure(vendor, VendorError::Internal),
    }
}

/// CleverTap `GET /1/promo/wallets?objectId=|email=|identity=`, authenticated by
/// `X-CleverTap-Account-Id` and `X-CleverTap-Passcode`.
async fn clevertap(State(app): State<App>, headers: HeaderMap, uri: Uri) -> Response {
    let v = Vendor::CleverTap;
    let cred = match (
        auth::header(&headers, "x-clevertap-account-id"),
        auth::header(&headers, "x-clevertap-passcode"),
    ) {
        (Some(id), Some(pass)) => auth::find(&app.vendor(v).credentials, Some(id), pass),
        _ => None,
    };
    let Some(cred) = cred else {
        return vendor_failure(v, VendorError::Unauthorized);
    };
    let pairs = match query(&uri, &["objectId", "email", "identity", "as_of"]) {
        Ok(p) => p,
        Err(m) => return vendor_failure(v, VendorError::BadRequest(m)),
    };
    let at = match as_of(&pairs) {
        Ok(t) => t,
        Err(m) => return vendor_failure(v, VendorError::BadRequest(m)),
    };
    view(&app, v, cred, move |store, access| {
        store.view(
            ViewRequest::CleverTap {
                object_id: param(&pairs, "objectId"),
                email: param(&pairs, "email"),
                identity: param(&pairs, "identity"),
            },
            at,
            access,
        )
    })
    .await
}

/// The wallet id of a `/wallets/{id}` path. Axum has already percent-decoded it; one that does
/// not decode to UTF-8 is no wallet's.
fn path_id(path: Result<Path<String>, axum::extract::rejection::PathRejection>) -> String {
    path.map(|Path(id)| id).unwrap_or_default()
}

/// Juicyway-style `GET /wallets/{id}`, authenticated by `Authorization: Bearer`.
async fn juicyway(
    State(app): State<App>,
    headers: HeaderMap,
    uri: Uri,
    path: Result<Path<String>, axum::extract::rejection::PathRejection>,
) -> Response {
    let v = Vendor::Juicyway;
    let Some(cred) =
        auth::bearer(&headers).and_then(|t| auth::find(&app.vendor(v).credentials, None, t))
    else {
        return vendor_failure(v, VendorError::Unauthorized);
    };
    let at = match query(&uri, &["as_of"]).and_then(|q| as_of(&q)) {
        Ok(t) => t,
        Err(m) => return vendor_failure(v, VendorError::BadRequest(m)),
    };
    let id = path_id(path);
    view(&app, v, cred, move |store, access| {
        store.view(ViewRequest::Juicyway { id: &id }, at, access)
    })
    .await
}

/// Cryptofuse `GET /wallets/{id}/`, authenticated by `X-API-Key` or `Authorization: Bearer`
/// (`X-API-Key` decides when both are sent).
async fn cryptofuse(
    State(app): State<App>,
    headers: HeaderMap,
    uri: Uri,
    path: Result<Path<String>, axum::extract::rejection::PathRejection>,
) -> Response {
    let v = Vendor::Cryptofuse;
    let token = auth::header(&headers, "x-api-key").or_else(|| auth::bearer(&headers));
    let Some(cred) = token.and_then(|t| auth::find(&app.vendor(v).credentials, None, t)) else {
        return vendor_failure(v, VendorError::Unauthorized);
    };
    let at = match query(&uri, &["as_of"]).and_then(|q| as_of(&q)) {
        Ok(t) => t,
        Err(m) => return vendor_failure(v, VendorError::BadRequest(m)),
    };
    let id = path_id(path);
    view(&app, v, cred, move |store, access| {
        store.view(ViewRequest::Cryptofuse { id: &id }, at, access)
    })
    .await
}

/// Cashfree PPI `POST /ppi/wallet/details`, authenticated by `x-client-id` and
/// `x-client-secret`, with `x-api-version` (YYYY-MM-DD) required.
async fn cashfree(State(app): State<App>, headers: HeaderMap, uri: Uri, body: Body) -> Response {
    let v = Vendor::Cashfree;
    let cred = match (
        auth::header(&headers, "x-client-id"),
        auth::header(&headers, "x-client-secret"),
    ) {
        (Some(id), Some(secret)) => auth::find(&app.vendor(v).credentials, Some(id), secret),
        _ => None,
    };
    let Some(cred) = cred else {
        return vendor_failure(v, VendorError::Unauthorized);
    };
    match auth::header(&headers, "x-api-version").map(std::str::from_utf8) {
        None => {
            return vendor_failure(
                v,
                VendorError::BadRequest("x-api-version header is required".into()),
            );
        }
        Some(Ok(ver)) if chrono::NaiveDate::parse_from_str(ver, "%Y-%m-%d").is_ok() => {}
        Some(_) => {
            return vendor_failure(
                v,
                VendorError::BadRequest(
                    "x-api-version must be a date in the format YYYY-MM-DD".into(),
                ),
            );
        }
    }
    let at = match query(&uri, &["as_of"]).and_then(|q| as_of(&q)) {
        Ok(t) => t,
        Err(m) => return vendor_failure(v, VendorError::BadRequest(m)),
    };
    if !is_json(&headers) {
        return vendor_failure(
            v,
            VendorError::UnsupportedMediaType(
                "send the request body with Content-Type: application/json".into(),
            ),
        );
    }
    let limit = app.inner.config.limits.body_read_timeout;
    let bytes = match read_body(body, &headers, &app).await {
        Ok(b) => b,
        Err(e) => {
            let (code, _, msg) = e.describe(limit);
            let e = match code {
                413 => VendorError::TooLarge(msg),
                408 => VendorError::Timeout(msg),
                _ => VendorError::BadRequest(msg),
            };
            return vendor_failure(v, e);
        }
    };
    let Ok(text) = String::from_utf8(bytes.into()) else {
        return vendor_failure(
            v,
            VendorError::BadRequest("the request body is not UTF-8".into()),
        );
    };
    view(&app, v, cred, move |store, access| {
        store.view(ViewRequest::Cashfree { body: &text }, at, access)
    })
    .await
}

// ---- everything else ------------------------------------------------------------------------

/// The vendor whose base path `path` is under.
fn vendor_of(app: &App, path: &str) -> Option<Vendor> {
    Vendor::ALL.into_iter().find(|v| {
        let base = &app.vendor(*v).base_path;
        path == base
            || path
                .strip_prefix(base.as_str())
                .is_some_and(|r| r.starts_with('/'))
    })
}

async fn no_route(State(app): State<App>, method: Method, uri: Uri) -> Response {
    let msg = format!("no route {method} {}", uri.path());
    match vendor_of(&app, uri.path()) {
        Some(v) => vendor_failure(v, VendorError::NoRoute(msg)),
        None => error(404, "not_found", &msg),
    }
}

async fn wrong_method(State(app): State<App>, method: Method, uri: Uri) -> Response {
    let msg = format!("{method} is not allowed on {}", uri.path());
    match vendor_of(&app, uri.path()) {
        Some(v) => vendor_failure(v, VendorError::MethodNotAllowed(msg)),
        None => error(405, "method_not_allowed", &msg),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_idempotency_key_header_becomes_the_commands_key() {
        assert_eq!(
            with_key(r#"{"op":"sweep"}"#, "k1").unwrap(),
            r#"{"key":"k1","op":"sweep"}"#
        );
        assert_eq!(with_key("  { }", "k").unwrap(), r#"{"key":"k" }"#);
        assert_eq!(
            with_key(r#"{"op":"sweep","key":"k1"}"#, "k1").unwrap(),
            r#"{"op":"sweep","key":"k1"}"#
        );
        assert!(
            with_key(r#"{"op":"sweep","key":"k2"}"#, "k1")
                .unwrap_err()
                .contains("differs")
        );
        // Quotes and backslashes in a key stay one JSON string.
        assert_eq!(
            with_key(r#"{"op":"sweep"}"#, r#"a"b\"#).unwrap(),
            r#"{"key":"a\"b\\","op":"sweep"}"#
        );
        // Not an object: left as it is for the ledger to refuse.
        assert_eq!(with_key("nonsense", "k").unwrap(), "nonsense");
    }

    #[test]
    fn as_of_is_rfc3339_within_range() {
        let q = |v: &str| vec![("as_of".to_string(), v.to_string())];
        assert!(as_of(&q("2026-01-01T00:00:00Z")).unwrap().is_some());
        assert!(
            as_of(&q("2026-01-01T00:00:00 01:00"))
                .unwrap_err()
                .contains("%2B")
        );
        assert!(
            as_of(&q("3000-01-01T00:00:00Z"))
                .unwrap_err()
                .contains("outside")
        );
        assert_eq!(as_of(&[]).unwrap(), None);
    }
}
