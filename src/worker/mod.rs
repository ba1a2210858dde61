//! Cloudflare Worker front end (feature `worker`): HTTP API v1, a Durable Object per visitor
//! ([`visitor`]), the Queue consumer that delivers signed webhooks ([`delivery`]), the store of
//! deliveries that exhausted their retries ([`deadletter`]), and the learning loop's way in and
//! out: history ([`import`]), CRM outcomes ([`outcomes`]), the logs ([`logs`], Queue → R2) and
//! their export ([`export`]).
//!
//! The worker only routes, authenticates and validates envelopes; every event is parsed by the
//! core's [`Event::parse`] and scored by the core's [`Scorer`], built once per isolate.
//!
//! ```text
//! POST /v1/events ─► check origin, site key, size ─► parse events ─► VisitorObject(visitor_id)
//!                                                      state ─► score ─► policy ─► Queue ─► webhook
//!                                                        └─ events, score ─► logs Queue ─► R2
//! POST /v1/import ─► VisitorObject (own timestamps, no webhook) ─► logs Queue ─► R2
//! POST /v1/outcomes[/hubspot] ─► VisitorObject(visitor | lead:<id>) (idempotent by id) ─► logs Queue ─► R2
//! GET /v1/export/{log} ◄─ R2 (gzip NDJSON per log and day)
//! ```

pub mod arms;
pub mod deadletter;
pub mod delivery;
pub mod export;
pub mod import;
pub mod logs;
pub mod monitor;
pub mod outbox;
pub mod outcomes;
pub mod site;
// `#[durable_object]` generates JS glue (a class and its methods) that carries no docs.
#[allow(missing_docs)]
pub mod visitor;

use std::cell::OnceCell;
use std::rc::Rc;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use worker::*;

use crate::error_code::ErrorCode;
use crate::event::{Event, EventType};
use crate::identity::IdentitySecret;
use crate::model::Bundle;
use crate::score::{Score, ScoreOptions, Scorer};

pub use crate::event::limits::{MAX_BATCH_EVENTS, MAX_BODY_BYTES};
/// Longest request path (bytes) the worker answers; longer gets `414 uri_too_long`.
pub const MAX_PATH_BYTES: usize = 2048;

thread_local! {
    static SCORER: OnceCell<Rc<Scorer>> = const { OnceCell::new() };
}

/// The isolate's scorer: the embedded bundle is parsed and its plan built on first use only.
pub fn scorer() -> std::result::Result<Rc<Scorer>, ApiError> {
    SCORER.with(|cell| {
        if let Some(s) = cell.get() {
            return Ok(s.clone());
        }
        let s = Bundle::embedded()
            .and_then(|b| Scorer::new(b, None))
            .map(Rc::new)
            .map_err(|e| ApiError::new(500, ErrorCode::Model, e.to_string()))?;
        let _ = cell.set(s.clone());
        Ok(s)
    })
}

/// This isolate's wasm linear memory: the embedded models' plans, the site tables, the caches —
/// most of what the worker holds (benchmarked against the isolate's 128 MB).
fn wasm_memory_bytes() -> u32 {
    use wasm_bindgen::JsCast as _;
    wasm_bindgen::memory()
        .dyn_into::<js_sys::WebAssembly::Memory>()
        .map(|m| {
            m.buffer()
                .dyn_into::<js_sys::ArrayBuffer>()
                .map_or(0, |b| b.byte_length())
        })
        .unwrap_or(0)
}

/// An API error: status + `{"error":{"code","message"}}`.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// HTTP status.
    pub status: u16,
    /// Stable machine-readable code.
    pub code: ErrorCode,
    /// Human-readable detail.
    pub message: String,
    /// Seconds for `Retry-After` (429).
    pub retry_after: Option<u32>,
    /// Methods for `Allow` (405).
    pub allow: Option<&'static str>,
}

impl ApiError {
    /// An error without `Retry-After`.
    pub fn new(status: u16, code: ErrorCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            retry_after: None,
            allow: None,
        }
    }

    /// The JSON response.
    pub fn response(&self) -> Result<Response> {
        let body = serde_json::json!({"error": {"code": self.code, "message": self.message}});
        let mut r = Response::from_json(&body)?.with_status(self.status);
        if let Some(s) = self.retry_after {
            r.headers_mut().set("retry-after", &s.to_string())?;
        }
        if let Some(a) = self.allow {
            r.headers_mut().set("allow", a)?;
        }
        Ok(r)
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        ApiError::new(500, ErrorCode::Internal, e.to_string())
    }
}

pub(crate) type ApiResult<T> = std::result::Result<T, ApiError>;

/// Deployment settings from wrangler vars and secrets.
#[derive(Debug, Clone)]
pub struct Config {
    /// Site keys the snippet may use.
    pub site_keys: Vec<String>,
    /// Origins allowed to call the browser endpoints (CORS).
    pub allowed_origins: Vec<String>,
    /// Server-to-server bearer token (secret).
    pub api_token: Option<String>,
    /// Key the site's backend signs lead ids with (secret); none ⇒ no identify is verified.
    pub identity: Option<IdentitySecret>,
}

impl Config {
    /// Reads the settings; missing optional ones get safe defaults (no token ⇒ no server API).
    pub fn from_env(env: &Env) -> Config {
        let list = |name: &str| -> Vec<String> {
            var(env, name)
                .map(|v| {
                    v.split(',')
                        .map(|s| s.trim().to_string())
                        .filter(|s| !s.is_empty())
                        .collect()
                })
                .unwrap_or_default()
        };
        Config {
            site_keys: list("SITE_KEYS"),
            allowed_origins: list("ALLOWED_ORIGINS"),
            api_token: env
                .secret("API_TOKEN")
                .ok()
                .map(|s| s.to_string())
                .filter(|s| !s.is_empty()),
            identity: env
                .secret("IDENTITY_SECRET")
                .ok()
                .and_then(|s| IdentitySecret::new(&s.to_string()).ok()),
        }
    }

    /// Checks a lead signature: `Ok(())` when it signs `lead`, else the error to answer.
    fn verify_lead(&self, lead: &str, signature: &str) -> ApiResult<()> {
        match &self.identity {
            None => Err(ApiError::new(
                403,
                ErrorCode::InvalidSignature,
                "lead signatures cannot be checked: IDENTITY_SECRET is not configured",
            )),
            Some(k) if crate::identity::verify(k, lead, signature) => Ok(()),
            Some(_) => Err(ApiError::new(
                403,
                ErrorCode::InvalidSignature,
                "`lead_signature` does not sign this lead id",
            )),
        }
    }
}

/// A wrangler var (or secret) as a string.
pub fn var(env: &Env, name: &str) -> Option<String> {
    env.var(name)
        .map(|v| v.to_string())
        .or_else(|_| env.secret(name).map(|v| v.to_string()))
        .ok()
}

/// A numeric var with a default.
pub fn var_num<T: std::str::FromStr>(env: &Env, name: &str, default: T) -> T {
    var(env, name)
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

/// A batch from the snippet.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Batch<'a> {
    site_key: String,
    visitor_id: String,
    #[serde(default)]
    consent: Option<Consent>,
    #[serde(borrow)]
    events: Vec<&'a RawValue>,
}

/// Consent flags sent by the snippet.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Consent {
    #[serde(default)]
    crm: bool,
    /// The visitor allowed analytics (the tracker sends nothing otherwise; an older tracker that
    /// does not say so is not logged).
    #[serde(default)]
    analytics: bool,
}

/// What the worker asks a visitor's Durable Object to do.
#[derive(Debug, Serialize, Deserialize)]
pub struct ApplyRequest {
    /// The visitor.
    pub visitor_id: String,
    /// Whether this visitor may be forwarded to the CRM (consent and no GPC).
    pub crm: Option<bool>,
    /// Validated events, as JSON text (an identify event carries the lead id).
    pub events: Vec<String>,
    /// Receive time (ms).
    pub now: i64,
    /// The lead id this request proved (a checked `lead_signature`, or a bearer caller): only a
    /// verified lead joins a lead directory and merges the lead's other visitors.
    #[serde(default)]
    pub verified_lead: Option<String>,
    /// Whether this visitor may be logged for retraining (analytics consent and no GPC); `None`
    /// keeps what the visitor's last batch said.
    #[serde(default)]
    pub analytics: Option<bool>,
    /// History (`POST /v1/import`): applied at its own timestamps (no clamping), always logged, no
    /// rate limit, never forwarded to the CRM, no score computed.
    #[serde(default)]
    pub import: bool,
}

/// A per-item rejection (events, outcomes): the rest of the batch is accepted.
#[derive(Debug, Serialize)]
pub(crate) struct Rejected {
    pub(crate) index: usize,
    pub(crate) code: ErrorCode,
    pub(crate) message: String,
}

/// The size rule every batch route applies: not empty (`empty`: the code that says so), at most
/// `max` items. `noun` names the items ("events"), `per` the batch ("batch", "import batch").
pub(crate) fn check_batch_len(
    n: usize,
    max: usize,
    noun: &str,
    per: &str,
    empty: ErrorCode,
) -> ApiResult<()> {
    if n == 0 {
        return Err(ApiError::new(
            400,
            empty,
            format!("the batch has no {noun}"),
        ));
    }
    if n > max {
        return Err(ApiError::new(
            400,
            ErrorCode::TooManyEvents,
            format!("{n} {noun}; at most {max} per {per}"),
        ));
    }
    Ok(())
}

/// The answer to a batch none of whose items is valid: the first rejection, by index (`noun`:
/// "event" or "outcome", whose batch field is the plural).
pub(crate) fn every_item_invalid(code: ErrorCode, noun: &str, rejected: &[Rejected]) -> ApiError {
    let (index, message) = rejected
        .first()
        .map_or((0, ""), |r| (r.index, r.message.as_str()));
    ApiError::new(
        400,
        code,
        format!("every {noun} is invalid; {noun}s[{index}]: {message}"),
    )
}

/// The Durable Object's answer.
#[derive(Debug, Serialize, Deserialize)]
pub struct ApplyResponse {
    /// The visitor's score after the batch (none for an import).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score: Option<Score>,
    /// Events counted.
    pub accepted: u32,
    /// Events already applied before (replays).
    pub duplicates: u32,
    /// Events older than the de-duplication window, refused.
    pub stale: u32,
}

#[event(fetch)]
async fn fetch(req: Request, env: Env, _ctx: Context) -> Result<Response> {
    console_error_panic_hook::set_once();
    let cfg = Config::from_env(&env);
    let origin = req.headers().get("origin")?;
    let result = route(req, &env, &cfg).await;
    let mut resp = match result {
        Ok(r) => r,
        Err(e) => e.response()?,
    };
    if let Some(o) = origin.filter(|o| cfg.allowed_origins.iter().any(|a| a == o)) {
        let h = resp.headers_mut();
        h.set("access-control-allow-origin", &o)?;
        h.set("vary", "Origin")?;
    }
    Ok(resp)
}

/// The methods each API path answers (for `405` and its `Allow` header).
fn allowed_methods(path: &str) -> Option<&'static str> {
    match path {
        "/healthz" | "/v1/model" | "/v1/config" | "/v1/deliveries/failed" | "/v1/monitor" => {
            Some("GET, HEAD")
        }
        "/v1/site" => Some("GET, HEAD, PUT, DELETE"),
        "/v1/events" | "/v1/identify" => Some("POST, OPTIONS"),
        "/v1/score"
        | "/v1/deliveries/replay"
        | "/v1/import"
        | "/v1/outcomes"
        | "/v1/outcomes/hubspot" => Some("POST"),
        p if p.starts_with("/v1/score/") || p.starts_with("/v1/export/") => Some("GET, HEAD"),
        _ => None,
    }
}

async fn route(mut req: Request, env: &Env, cfg: &Config) -> ApiResult<Response> {
    let path = req.path();
    if path.len() > MAX_PATH_BYTES {
        return Err(ApiError::new(
            414,
            ErrorCode::UriTooLong,
            format!(
                "the path is {} bytes; the limit is {MAX_PATH_BYTES}",
                path.len()
            ),
        ));
    }
    // HEAD is GET without a body (the runtime drops the body).
    let method = match req.method() {
        Method::Head => Method::Get,
        m => m,
    };
    match (method, path.as_str()) {
        (Method::Options, p) if p.starts_with("/v1/") => preflight(&req, cfg),
        (Method::Get, "/healthz") => {
            let s = scorer()?;
            json(&serde_json::json!({
                "ok": true,
                "model_version": s.card().model_version,
                "wasm_memory_bytes": wasm_memory_bytes(),
            }))
        }
        (Method::Get, "/v1/model") => model_summary(),
        (Method::Get, "/v1/config") => config(&req, env).await,
        (Method::Get, "/v1/site") => site::get(&req, env).await,
        (Method::Put, "/v1/site") => {
            bearer(&req, cfg)?;
            site::put(&mut req, env, arms::accept_site).await
        }
        (Method::Delete, "/v1/site") => {
            bearer(&req, cfg)?;
            site::delete(env).await
        }
        (Method::Post, "/v1/events") => post_events(&mut req, env, cfg).await,
        (Method::Post, "/v1/identify") => post_identify(&mut req, env, cfg).await,
        (Method::Post, "/v1/score") => {
            bearer(&req, cfg)?;
            post_score(&mut req, env).await
        }
        (Method::Get, p) if p.starts_with("/v1/score/") => {
            bearer(&req, cfg)?;
            let id = decode_path(&p["/v1/score/".len()..])?;
            let kind = query(&req, "kind")?;
            get_score(env, &id, kind.as_deref()).await
        }
        (Method::Post, "/v1/import") => {
            bearer(&req, cfg)?;
            import::import(&mut req, env).await
        }
        (Method::Post, "/v1/outcomes/hubspot") => outcomes::hubspot(&mut req, env).await,
        (Method::Post, "/v1/outcomes") => {
            bearer(&req, cfg)?;
            outcomes::post(&mut req, env).await
        }
        (Method::Get, p) if p.starts_with("/v1/export/") => {
            bearer(&req, cfg)?;
            export::export(&req, env, &p["/v1/export/".len()..]).await
        }
        (Method::Get, "/v1/monitor") => {
            bearer(&req, cfg)?;
            monitor::get(&req, env).await
        }
        (Method::Get, "/v1/deliveries/failed") => {
            bearer(&req, cfg)?;
            deadletter::list(&req, env).await
        }
        (Method::Post, "/v1/deliveries/replay") => {
            bearer(&req, cfg)?;
            let text = body_text(&mut req).await?;
            deadletter::replay(&text, env).await
        }
        (m, p) => match allowed_methods(p) {
            Some(allow) => {
                let mut e = ApiError::new(
                    405,
                    ErrorCode::MethodNotAllowed,
                    format!("{m:?} is not allowed on {p}; allowed: {allow}"),
                );
                e.allow = Some(allow);
                Err(e)
            }
            None => Err(ApiError::new(
                404,
                ErrorCode::NotFound,
                format!("no route for {p}"),
            )),
        },
    }
}

/// A query parameter, percent-decoded.
pub(crate) fn query(req: &Request, key: &str) -> ApiResult<Option<String>> {
    let url = req.url()?;
    Ok(url
        .query_pairs()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned()))
}

fn json<T: Serialize>(v: &T) -> ApiResult<Response> {
    Ok(Response::from_json(v)?)
}

fn preflight(req: &Request, cfg: &Config) -> ApiResult<Response> {
    check_origin(req, cfg)?;
    let mut r = Response::empty()?.with_status(204);
    let h = r.headers_mut();
    h.set("access-control-allow-methods", "POST, GET, OPTIONS")?;
    h.set(
        "access-control-allow-headers",
        "content-type, authorization",
    )?;
    h.set("access-control-max-age", "86400")?;
    Ok(r)
}

/// Browsers send `Origin` on cross-site and on same-origin POSTs; when present it must be listed.
fn check_origin(req: &Request, cfg: &Config) -> ApiResult<()> {
    match req.headers().get("origin")? {
        Some(o) if !cfg.allowed_origins.iter().any(|a| a == &o) => Err(ApiError::new(
            403,
            ErrorCode::OriginNotAllowed,
            format!("origin {o} is not allowed"),
        )),
        _ => Ok(()),
    }
}

/// `Authorization: Bearer <API_TOKEN>`; the scheme is case-insensitive (RFC 7235), the token is
/// compared in constant time.
pub(crate) fn bearer(req: &Request, cfg: &Config) -> ApiResult<()> {
    use subtle::ConstantTimeEq as _;
    let got = req.headers().get("authorization")?.unwrap_or_default();
    let token = got
        .trim()
        .split_once(' ')
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map_or("", |(_, t)| t.trim());
    match &cfg.api_token {
        Some(t) if !token.is_empty() && bool::from(t.as_bytes().ct_eq(token.as_bytes())) => Ok(()),
        _ => Err(ApiError::new(
            401,
            ErrorCode::Unauthorized,
            "a valid `Authorization: Bearer <API_TOKEN>` is required",
        )),
    }
}

/// A path segment, percent-decoded (ids such as `lead%40acme.com`); must be UTF-8.
fn decode_path(s: &str) -> ApiResult<String> {
    percent_encoding::percent_decode_str(s)
        .decode_utf8()
        .map(|c| c.into_owned())
        .map_err(|_| {
            ApiError::new(
                400,
                ErrorCode::InvalidField,
                "the id in the path is not UTF-8",
            )
        })
}

/// Most bytes of an oversized body read (and dropped) before the connection is cut: answering
/// while the client is still sending makes some proxies (wrangler's local one among them) fail the
/// request with a 500 instead of passing the 413 on.
pub const MAX_DRAIN_BYTES: usize = 128 * 1024 * 1024;

/// Reads a body up to [`MAX_BODY_BYTES`], as text. The body is read chunk by chunk into one
/// reused buffer (a BYOB reader, so reading allocates nothing per chunk) and never kept beyond the
/// limit: a body with no (or a false) `content-length` costs no more memory than the limit. Past
/// it the chunks are only counted and dropped, up to [`MAX_DRAIN_BYTES`], then the stream is
/// cancelled.
async fn body_text(req: &mut Request) -> ApiResult<String> {
    body_text_up_to(req, MAX_BODY_BYTES).await
}

/// [`body_text`] with another limit (the server-to-server routes take larger batches).
pub(crate) async fn body_text_up_to(req: &mut Request, max: usize) -> ApiResult<String> {
    if let Some(n) = req
        .headers()
        .get("content-length")?
        .and_then(|v| v.parse::<usize>().ok())
    {
        if n > max {
            return Err(too_large(n, max));
        }
    }
    let Some(stream) = req.inner().body() else {
        return Ok(String::new());
    };
    let mut reader = BodyReader::new(&stream).map_err(body_error)?;
    let (mut bytes, mut total) = (Vec::new(), 0usize);
    while let Some(chunk) = reader.next().await.map_err(body_error)? {
        total += chunk.length() as usize;
        if total > MAX_DRAIN_BYTES {
            reader.cancel();
            break;
        }
        if total <= max {
            bytes.extend_from_slice(&chunk.to_vec());
        }
    }
    if total > max {
        return Err(ApiError::new(
            413,
            ErrorCode::BodyTooLarge,
            format!(
                "body is more than {max} bytes (the limit); {} read and dropped",
                total.min(MAX_DRAIN_BYTES + 1)
            ),
        ));
    }
    String::from_utf8(bytes)
        .map_err(|_| ApiError::new(400, ErrorCode::InvalidJson, "body is not UTF-8"))
}

fn body_error(e: wasm_bindgen::JsValue) -> ApiError {
    ApiError::new(
        400,
        ErrorCode::InvalidBody,
        format!("the body could not be read: {e:?}"),
    )
}

/// A request body's reader: BYOB into one 64 KiB buffer where the stream is a byte stream (request
/// bodies in workerd are), else the default reader. Called through JS so that a runtime without
/// BYOB falls back instead of trapping.
struct BodyReader {
    reader: js_sys::Object,
    read: js_sys::Function,
    /// BYOB: the buffer handed back by the last read, reused for the next one.
    buffer: Option<js_sys::ArrayBuffer>,
}

impl BodyReader {
    const CHUNK: u32 = 64 * 1024;

    fn new(stream: &web_sys::ReadableStream) -> std::result::Result<Self, wasm_bindgen::JsValue> {
        use wasm_bindgen::JsCast as _;
        let get_reader: js_sys::Function =
            js_sys::Reflect::get(stream, &"getReader".into())?.dyn_into()?;
        let opts = js_sys::Object::new();
        js_sys::Reflect::set(&opts, &"mode".into(), &"byob".into())?;
        let (reader, buffer) = match get_reader.call1(stream, &opts) {
            Ok(r) => (r, Some(js_sys::ArrayBuffer::new(Self::CHUNK))),
            Err(_) => (get_reader.call0(stream)?, None),
        };
        let reader: js_sys::Object = reader.dyn_into()?;
        let read: js_sys::Function = js_sys::Reflect::get(&reader, &"read".into())?.dyn_into()?;
        Ok(BodyReader {
            reader,
            read,
            buffer,
        })
    }

    async fn next(
        &mut self,
    ) -> std::result::Result<Option<js_sys::Uint8Array>, wasm_bindgen::JsValue> {
        use wasm_bindgen::JsCast as _;
        let promise = match &self.buffer {
            Some(b) => self.read.call1(&self.reader, &js_sys::Uint8Array::new(b))?,
            None => self.read.call0(&self.reader)?,
        };
        let result = wasm_bindgen_futures::JsFuture::from(js_sys::Promise::from(promise)).await?;
        let done = js_sys::Reflect::get(&result, &"done".into())?
            .as_bool()
            .unwrap_or(true);
        if done {
            return Ok(None);
        }
        let view: js_sys::Uint8Array =
            js_sys::Reflect::get(&result, &"value".into())?.dyn_into()?;
        if self.buffer.is_some() {
            self.buffer = Some(view.buffer()); // the read transferred it: take it back
        }
        Ok(Some(view))
    }

    fn cancel(&self) {
        if let Ok(f) = js_sys::Reflect::get(&self.reader, &"cancel".into()) {
            if let Ok(f) = wasm_bindgen::JsCast::dyn_into::<js_sys::Function>(f) {
                let _ = f.call0(&self.reader);
            }
        }
    }
}

fn too_large(n: usize, max: usize) -> ApiError {
    ApiError::new(
        413,
        ErrorCode::BodyTooLarge,
        format!("body is {n} bytes; the limit is {max}"),
    )
}

pub(crate) fn bad_json(e: serde_json::Error) -> ApiError {
    ApiError::new(400, ErrorCode::InvalidJson, e.to_string())
}

pub(crate) fn now_ms() -> i64 {
    Date::now().as_millis() as i64
}

async fn post_events(req: &mut Request, env: &Env, cfg: &Config) -> ApiResult<Response> {
    check_origin(req, cfg)?;
    let gpc = req
        .headers()
        .get("sec-gpc")?
        .is_some_and(|v| v.trim() == "1");
    let text = body_text(req).await?;
    let batch: Batch = serde_json::from_str(&text).map_err(bad_json)?;
    if !cfg.site_keys.iter().any(|k| k == &batch.site_key) {
        return Err(ApiError::new(
            403,
            ErrorCode::InvalidSiteKey,
            "unknown site key",
        ));
    }
    crate::event::check_visitor_id(&batch.visitor_id)
        .map_err(|e| ApiError::new(400, ErrorCode::InvalidField, e.to_string()))?;
    check_batch_len(
        batch.events.len(),
        MAX_BATCH_EVENTS,
        "events",
        "batch",
        ErrorCode::InvalidEvent,
    )?;
    let mut good = Vec::with_capacity(batch.events.len());
    let mut rejected = Vec::new();
    let mut verified_lead = None;
    for (index, raw) in batch.events.iter().enumerate() {
        match Event::parse(raw.get()) {
            Ok(e) if e.visitor_id != batch.visitor_id => rejected.push(Rejected {
                index,
                code: ErrorCode::InvalidField,
                message: "field `visitor_id`: differs from the batch's visitor_id".into(),
            }),
            Ok(e) => {
                // A signed identify proves its lead; a wrong signature refuses the event (it
                // would otherwise pass as a claim and hide the site's misconfiguration).
                if let (EventType::Identify, Some(lead), Some(sig)) =
                    (e.kind, &e.lead_id, &e.lead_signature)
                {
                    if let Err(err) = cfg.verify_lead(lead, sig) {
                        rejected.push(Rejected {
                            index,
                            code: err.code,
                            message: err.message,
                        });
                        continue;
                    }
                    verified_lead = Some(lead.clone());
                }
                good.push(raw.get().to_string());
            }
            Err(e) => rejected.push(Rejected {
                index,
                code: e.code(),
                message: e.to_string(),
            }),
        }
    }
    if good.is_empty() {
        return Err(every_item_invalid(
            ErrorCode::InvalidEvent,
            "event",
            &rejected,
        ));
    }
    let consent = batch.consent.unwrap_or_default();
    let crm = consent.crm && !gpc;
    let analytics = consent.analytics && !gpc;
    let started = now_ms();
    let applied = visitor::call(
        env,
        &ApplyRequest {
            visitor_id: batch.visitor_id.clone(),
            crm: Some(crm),
            events: good,
            now: started,
            verified_lead,
            analytics: Some(analytics),
            import: false,
        },
    )
    .await?;
    // Serialized directly (not through serde_json::Value) so f32 factor values keep their form.
    let mut r = Response::from_json(&EventsResponse { applied, rejected })?;
    r.headers_mut()
        .set("server-timing", &format!("do;dur={}", now_ms() - started))?;
    Ok(r)
}

/// `POST /v1/events` answer.
#[derive(Debug, Serialize)]
struct EventsResponse {
    #[serde(flatten)]
    applied: ApplyResponse,
    rejected: Vec<Rejected>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Identify {
    #[serde(default)]
    site_key: Option<String>,
    visitor_id: String,
    lead_id: String,
    /// The site backend's signature of `lead_id` (see [`crate::identity`]).
    #[serde(default)]
    lead_signature: Option<String>,
    #[serde(default)]
    traits: Option<serde_json::Map<String, serde_json::Value>>,
}

/// Ties a visitor to a lead. Verified (a good `lead_signature`, or a bearer caller): the visitor
/// joins the lead and merges its other devices. Otherwise a claim: the visitor is tagged with the
/// lead id and traits, and nothing of any other visitor is read or changed.
async fn post_identify(req: &mut Request, env: &Env, cfg: &Config) -> ApiResult<Response> {
    let text = body_text(req).await?;
    let body: Identify = serde_json::from_str(&text).map_err(bad_json)?;
    let trusted_server = match &body.site_key {
        Some(k) => {
            check_origin(req, cfg)?;
            if !cfg.site_keys.iter().any(|s| s == k) {
                return Err(ApiError::new(
                    403,
                    ErrorCode::InvalidSiteKey,
                    "unknown site key",
                ));
            }
            false
        }
        None => {
            bearer(req, cfg)?;
            true
        }
    };
    crate::event::check_visitor_id(&body.visitor_id)
        .map_err(|e| ApiError::new(400, ErrorCode::InvalidField, e.to_string()))?;
    if let Some(sig) = &body.lead_signature {
        cfg.verify_lead(&body.lead_id, sig)?;
    }
    let verified = trusted_server || body.lead_signature.is_some();
    let now = now_ms();
    // An identify event through the core's own validation (lead id and trait limits).
    let mut ev = serde_json::json!({
        "id": format!("identify-{}", crate::webhook::webhook_id(&body.lead_id, now as u64)),
        "type": "identify",
        "ts": now,
        "visitor_id": body.visitor_id,
        "lead_id": body.lead_id,
    });
    if let Some(t) = body.traits {
        ev["traits"] = serde_json::Value::Object(t);
    }
    let text = ev.to_string();
    Event::parse(&text).map_err(|e| ApiError::new(400, e.code(), e.to_string()))?;
    let applied = visitor::call(
        env,
        &ApplyRequest {
            visitor_id: body.visitor_id.clone(),
            crm: None,
            events: vec![text],
            now,
            verified_lead: verified.then(|| body.lead_id.clone()),
            analytics: None,
            import: false,
        },
    )
    .await?;
    json(&serde_json::json!({"score": applied.score, "verified": verified}))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Stateless<'a> {
    #[serde(default, borrow)]
    events: Option<Vec<&'a RawValue>>,
    #[serde(default)]
    features: Option<serde_json::Map<String, serde_json::Value>>,
}

async fn post_score(req: &mut Request, env: &Env) -> ApiResult<Response> {
    let text = body_text(req).await?;
    let body: Stateless = serde_json::from_str(&text).map_err(bad_json)?;
    let s = arms::scorer_for(env, None).await?;
    let now = now_ms();
    let score = match (body.events, body.features) {
        (Some(events), None) => {
            if events.is_empty() {
                return Err(ApiError::new(
                    400,
                    ErrorCode::InvalidEvent,
                    "`events` is empty: give at least one event",
                ));
            }
            if events.len() > MAX_BATCH_EVENTS {
                return Err(ApiError::new(
                    400,
                    ErrorCode::TooManyEvents,
                    format!("at most {MAX_BATCH_EVENTS} events"),
                ));
            }
            let parsed = events
                .iter()
                .enumerate()
                .map(|(i, raw)| {
                    Event::parse(raw.get())
                        .map_err(|e| ApiError::new(400, e.code(), format!("events[{i}]: {e}")))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let mut state = s.new_state();
            s.apply_all(&mut state, &parsed, Some(now));
            let (visitor, last) = parsed
                .last()
                .map_or(("", now), |e| (e.visitor_id.as_str(), e.ts));
            s.score(&state, visitor, last.min(now), ScoreOptions::default())
        }
        (None, Some(map)) => {
            let x = s
                .features()
                .vector_from_named(map.iter().map(|(k, v)| (k.as_str(), v.as_f64())))
                .map_err(|m| ApiError::new(400, ErrorCode::InvalidField, m))?;
            s.score_vector(&x, ScoreOptions::default()).map(|mut sc| {
                sc.score_timestamp = now;
                sc
            })
        }
        _ => {
            return Err(ApiError::new(
                400,
                ErrorCode::InvalidField,
                "give exactly one of `events` or `features`",
            ))
        }
    }
    .map_err(|e| ApiError::new(400, ErrorCode::InvalidInput, e.to_string()))?;
    json(&serde_json::json!({ "score": score }))
}

/// `kind`: `lead` (a verified lead's merged view), `visitor`, or none (a lead first, then a visitor).
async fn get_score(env: &Env, id: &str, kind: Option<&str>) -> ApiResult<Response> {
    let kinds: &[visitor::Kind] = match kind {
        None => &[visitor::Kind::Lead, visitor::Kind::Visitor],
        Some("lead") => &[visitor::Kind::Lead],
        Some("visitor") => &[visitor::Kind::Visitor],
        Some(other) => {
            return Err(ApiError::new(
                400,
                ErrorCode::InvalidField,
                format!("`kind` must be `lead` or `visitor`, not `{other}`"),
            ))
        }
    };
    for &k in kinds {
        if let Some(score) = visitor::lookup(env, id, k).await? {
            return json(&serde_json::json!({ "score": score, "kind": k.as_str() }));
        }
    }
    Err(ApiError::new(
        404,
        ErrorCode::NotFound,
        format!("no {} `{id}`", kind.unwrap_or("visitor or lead")),
    ))
}

/// `GET /v1/config[?visitor_id=]`: what the page needs to score as the worker does — the
/// deployment's site tables version, the experiment and, for a visitor, the arm that scores it
/// (its bundle is in the assets under `/ls/models/<arm>/`; `null`: the default).
async fn config(req: &Request, env: &Env) -> ApiResult<Response> {
    let models: serde_json::Map<String, serde_json::Value> = arms::EMBEDDED
        .iter()
        .map(|&(name, _, _)| {
            arms::card_scorer(name)
                .map(|s| (name.to_string(), s.card().model_version.clone().into()))
        })
        .collect::<ApiResult<_>>()?;
    let experiment = arms::experiment(env);
    let visitor = query(req, "visitor_id")?;
    let mut body = serde_json::json!({
        "site": site::summary(env).await?,
        "experiment": experiment,
        "models": models,
    });
    if let Some(v) = &visitor {
        crate::event::check_visitor_id(v)
            .map_err(|e| ApiError::new(400, ErrorCode::InvalidField, e.to_string()))?;
        let arm = match experiment {
            Some(_) => visitor::arm(env, v).await?,
            None => None,
        };
        body["arm"] = arm.into();
    }
    let mut r = json(&body)?;
    // A visitor's arm is its own; the rest may be kept a minute.
    let cache = if visitor.is_some() {
        "private, no-store"
    } else {
        "max-age=60"
    };
    r.headers_mut().set("cache-control", cache)?;
    Ok(r)
}

fn model_summary() -> ApiResult<Response> {
    let s = scorer()?;
    let c = s.card();
    json(&serde_json::json!({
        "model_version": c.model_version,
        "name": c.name,
        "n_trees": s.n_trees(),
        "features": s.features().names(),
        "tiers": {"hot": c.tiers.hot, "warm": c.tiers.warm},
        "calibration": c.calibration,
        "metrics": c.metrics,
    }))
}
