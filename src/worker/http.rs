//! HTTP plumbing every handler shares: the error answer, JSON answers, query and path decoding,
//! the caller checks (origin, bearer token), the clock and a fetch with a timeout. Nothing here
//! knows a route.

use serde::Serialize;
use worker::{AbortController, Date, Delay, Error, Fetch, Request, Response, Result};

use crate::error_code::ErrorCode;

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
    pub allow: Option<String>,
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

    /// A 500 for what the worker itself got wrong (an internal message that does not parse).
    pub fn internal(message: impl std::fmt::Display) -> ApiError {
        ApiError::new(500, ErrorCode::Internal, message.to_string())
    }

    /// The JSON response.
    pub fn response(&self) -> Result<Response> {
        let body = serde_json::json!({"error": {"code": self.code, "message": self.message}});
        let mut r = Response::from_json(&body)?.with_status(self.status);
        if let Some(s) = self.retry_after {
            r.headers_mut().set("retry-after", &s.to_string())?;
        }
        if let Some(a) = &self.allow {
            r.headers_mut().set("allow", a)?;
        }
        Ok(r)
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        ApiError::internal(e)
    }
}

/// What a handler returns.
pub type ApiResult<T> = std::result::Result<T, ApiError>;

/// Longest request path (bytes) the worker answers; longer gets `414 uri_too_long`.
pub const MAX_PATH_BYTES: usize = 2048;

/// A JSON answer (serialized directly, not through `serde_json::Value`, so f32 values keep their
/// form).
pub fn json<T: Serialize>(v: &T) -> ApiResult<Response> {
    Ok(Response::from_json(v)?)
}

/// A request body that is not the JSON the route takes.
pub fn bad_json(e: serde_json::Error) -> ApiError {
    ApiError::new(400, ErrorCode::InvalidJson, e.to_string())
}

/// Sends `req`, giving up after `timeout`: `Ok(None)` when no answer came in time (the request is
/// aborted). Why here: the webhook delivery and the CRM calls wait the same way.
pub async fn fetch_within(req: Request, timeout: std::time::Duration) -> Result<Option<Response>> {
    use futures_util::future::{select, Either};
    let controller = AbortController::default();
    let signal = controller.signal();
    let send = Fetch::Request(req);
    let fut = send.send_with_signal(&signal);
    let timer = Delay::from(timeout);
    futures_util::pin_mut!(fut);
    futures_util::pin_mut!(timer);
    match select(fut, timer).await {
        Either::Left((r, _)) => r.map(Some),
        Either::Right(_) => {
            controller.abort();
            Ok(None)
        }
    }
}

/// The isolate's clock (ms since the epoch).
pub fn now_ms() -> i64 {
    Date::now().as_millis() as i64
}

/// A query parameter, percent-decoded.
pub fn query(req: &Request, key: &str) -> ApiResult<Option<String>> {
    let url = req.url()?;
    Ok(url
        .query_pairs()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned()))
}

/// A path segment, percent-decoded (ids such as `lead%40acme.com`); must be UTF-8.
pub fn decode_path(s: &str) -> ApiResult<String> {
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

/// The CORS preflight answer for the browser routes.
pub fn preflight(req: &Request, allowed_origins: &[String]) -> ApiResult<Response> {
    check_origin(req, allowed_origins)?;
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
pub fn check_origin(req: &Request, allowed_origins: &[String]) -> ApiResult<()> {
    match req.headers().get("origin")? {
        Some(o) if !allowed_origins.iter().any(|a| a == &o) => Err(ApiError::new(
            403,
            ErrorCode::OriginNotAllowed,
            format!("origin {o} is not allowed"),
        )),
        _ => Ok(()),
    }
}

/// `Authorization: Bearer <API_TOKEN>`; the scheme is case-insensitive (RFC 7235), the token is
/// compared in constant time. No configured token ⇒ every server route is closed.
pub fn bearer(req: &Request, api_token: Option<&str>) -> ApiResult<()> {
    use subtle::ConstantTimeEq as _;
    let got = req.headers().get("authorization")?.unwrap_or_default();
    let token = got
        .trim()
        .split_once(' ')
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map_or("", |(_, t)| t.trim());
    match api_token {
        Some(t) if !token.is_empty() && bool::from(t.as_bytes().ct_eq(token.as_bytes())) => Ok(()),
        _ => Err(ApiError::new(
            401,
            ErrorCode::Unauthorized,
            "a valid `Authorization: Bearer <API_TOKEN>` is required",
        )),
    }
}

/// A JSON body's `Content-Type`: `application/json`, or `text/plain` (what `sendBeacon` and a
/// preflight-free `fetch` can send, as the tracker does), or none. A form encoding is refused
/// before the body is read: its text is never JSON, and a site posting a form here is a mistake
/// to name, not a parse error to puzzle over.
pub fn check_json_content_type(req: &Request) -> ApiResult<()> {
    let ct = req.headers().get("content-type")?.unwrap_or_default();
    let essence = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if matches!(essence.as_str(), "" | "application/json" | "text/plain") {
        return Ok(());
    }
    Err(ApiError::new(
        415,
        ErrorCode::InvalidBody,
        format!("`Content-Type: {essence}`: send the JSON body as `application/json`"),
    ))
}
