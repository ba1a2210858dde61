//! The deployment's site tables: what this site's pages are (page rules, per-page statistics,
//! calendar).
//!
//! Every card ships the tables it was made for (the default's: the demo site). A deployment
//! replaces them with its own site's by `PUT /v1/site` (bearer), kept in R2 at [`KEY`]; every
//! embedded bundle then scores with them (a PUT is refused unless each bundle accepts them), in
//! the Durable Objects, in `POST /v1/score` and — through `GET /v1/config` and `GET /v1/site` —
//! in the page, so the page and the worker agree. `DELETE /v1/site` returns to the cards' tables.
//!
//! Each isolate reads the tables on first use and checks R2 for a newer version at most every
//! [`REFRESH_MS`] (a head request), so a change reaches every isolate within that time; the isolate
//! that took the PUT uses it at once. The version is the stored object's etag.

use std::cell::RefCell;
use std::rc::Rc;

use serde::Serialize;
use worker::{Env, Request, Response};

use super::deadletter::BUCKET;
use super::{body_text_up_to, json, now_ms, ApiError, ApiResult};
use crate::error_code::ErrorCode;
use crate::site::SiteTables;

/// Where the deployment's tables live in the data bucket.
pub const KEY: &str = "config/site.json";
/// Largest tables a PUT takes (a shop's 15,000 page statistics are ~0.7 MB).
pub const MAX_SITE_BYTES: usize = 4 * 1024 * 1024;
/// How long an isolate trusts its copy before asking R2 whether it changed.
pub const REFRESH_MS: i64 = 60_000;

/// One version of the deployment's tables.
#[derive(Debug)]
pub struct SiteVersion {
    /// The stored object's etag.
    pub version: String,
    /// The tables.
    pub tables: SiteTables,
}

struct Cached {
    site: Option<Rc<SiteVersion>>,
    checked_ms: i64,
}

thread_local! {
    static CACHE: RefCell<Option<Cached>> = const { RefCell::new(None) };
}

fn remember(site: Option<Rc<SiteVersion>>) {
    CACHE.with_borrow_mut(|c| {
        *c = Some(Cached {
            site,
            checked_ms: now_ms(),
        })
    });
}

/// The deployment's tables (`None`: each card's own).
pub async fn current(env: &Env) -> ApiResult<Option<Rc<SiteVersion>>> {
    let now = now_ms();
    let (fresh, known) = CACHE.with_borrow(|c| match c {
        Some(c) => (now - c.checked_ms < REFRESH_MS, Some(c.site.clone())),
        None => (false, None),
    });
    if let (true, Some(site)) = (fresh, &known) {
        return Ok(site.clone());
    }
    let bucket = env.bucket(BUCKET)?;
    let site = match bucket.head(KEY).await? {
        None => None,
        Some(head) => match known.flatten() {
            Some(s) if s.version == head.etag() => Some(s),
            _ => {
                let obj = bucket.get(KEY).execute().await?;
                match obj {
                    None => None,
                    Some(obj) => {
                        let version = obj.etag();
                        let text = match obj.body() {
                            Some(b) => b.text().await?,
                            None => String::new(),
                        };
                        let tables: SiteTables = serde_json::from_str(&text).map_err(|e| {
                            ApiError::new(
                                500,
                                ErrorCode::InvalidConfig,
                                format!("stored site tables {KEY} do not parse: {e}"),
                            )
                        })?;
                        Some(Rc::new(SiteVersion { version, tables }))
                    }
                }
            }
        },
    };
    remember(site.clone());
    Ok(site)
}

/// What `PUT /v1/site` answers and `GET /v1/config` reports.
#[derive(Debug, Serialize)]
struct Summary {
    version: Option<String>,
    page_rules: usize,
    pages_with_stats: usize,
    special_days: usize,
}

impl Summary {
    fn of(site: Option<&SiteVersion>) -> Summary {
        Summary {
            version: site.map(|s| s.version.clone()),
            page_rules: site.map_or(0, |s| s.tables.page_rules.len()),
            pages_with_stats: site.map_or(0, |s| s.tables.page_stats.pages.len()),
            special_days: site.map_or(0, |s| s.tables.special_days.len()),
        }
    }
}

/// `PUT /v1/site`: `accepts` checks the tables against every embedded bundle (the router passes
/// [`super::arms::accept_site`]); stores them and answers their version.
pub async fn put(
    req: &mut Request,
    env: &Env,
    accepts: impl Fn(&SiteTables) -> ApiResult<()>,
) -> ApiResult<Response> {
    let text = body_text_up_to(req, MAX_SITE_BYTES).await?;
    let tables: SiteTables = serde_json::from_str(&text).map_err(|e| {
        ApiError::new(
            400,
            ErrorCode::InvalidConfig,
            format!("site tables, line {} column {}: {e}", e.line(), e.column()),
        )
    })?;
    accepts(&tables)?;
    let canonical = serde_json::to_string(&tables)
        .map_err(|e| ApiError::new(500, ErrorCode::Internal, e.to_string()))?;
    let obj = env
        .bucket(BUCKET)?
        .put(KEY, canonical)
        .execute()
        .await?
        .ok_or_else(|| {
            ApiError::new(500, ErrorCode::Internal, "the site tables were not stored")
        })?;
    let site = Rc::new(SiteVersion {
        version: obj.etag(),
        tables,
    });
    remember(Some(site.clone()));
    json(&Summary::of(Some(&site)))
}

/// `DELETE /v1/site`: back to each card's own tables.
pub async fn delete(env: &Env) -> ApiResult<Response> {
    env.bucket(BUCKET)?.delete(KEY).await?;
    remember(None);
    json(&Summary::of(None))
}

/// `GET /v1/site[?v=]`: the deployment's tables (404 when the cards' own are in use), for the page.
pub async fn get(req: &Request, env: &Env) -> ApiResult<Response> {
    let Some(site) = current(env).await? else {
        return Err(ApiError::new(
            404,
            ErrorCode::NotFound,
            "no site tables are configured: each model's card holds its own",
        ));
    };
    let body = serde_json::to_string(&site.tables)
        .map_err(|e| ApiError::new(500, ErrorCode::Internal, e.to_string()))?;
    let mut r = Response::ok(body)?;
    let h = r.headers_mut();
    h.set("content-type", "application/json")?;
    h.set("etag", &format!("\"{}\"", site.version))?;
    // A given version never changes: the page asks for it by `?v=` from `GET /v1/config`, and
    // only the version asked for may be kept (a stale `v` gets the current tables, uncached).
    let asked = super::query(req, "v")?;
    if asked.as_deref() == Some(site.version.as_str()) {
        h.set("cache-control", "public, max-age=31536000, immutable")?;
    } else {
        h.set("cache-control", "no-store")?;
    }
    Ok(r)
}

/// The site part of `GET /v1/config`.
pub async fn summary(env: &Env) -> ApiResult<serde_json::Value> {
    let site = current(env).await?;
    serde_json::to_value(Summary::of(site.as_deref()))
        .map_err(|e| ApiError::new(500, ErrorCode::Internal, e.to_string()))
}
