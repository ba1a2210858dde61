//! `PUT`, `GET` and `DELETE /v1/site`: the deployment's site tables ([`crate::worker::site`]).

use std::rc::Rc;

use worker::{Env, Request, Response};

use crate::error_code::ErrorCode;
use crate::site::SiteTables;
use crate::worker::bindings::DATA;
use crate::worker::body::body_text_up_to;
use crate::worker::http::{json, query, ApiError, ApiResult};
use crate::worker::site::{current, remember, SiteVersion, Summary, KEY};

/// Largest tables a PUT takes (a shop's 15,000 page statistics are ~0.7 MB).
pub const MAX_SITE_BYTES: usize = 4 * 1024 * 1024;

/// `PUT /v1/site`: `accepts` checks the tables against every bundle that may score with them (the
/// router passes [`crate::worker::arms::accept_site`]); stores them and answers their version.
pub async fn put(
    req: &mut Request,
    env: &Env,
    accepts: impl AsyncFn(&SiteTables) -> ApiResult<()>,
) -> ApiResult<Response> {
    let text = body_text_up_to(req, MAX_SITE_BYTES).await?;
    let tables: SiteTables = serde_json::from_str(&text).map_err(|e| {
        ApiError::new(
            400,
            ErrorCode::InvalidConfig,
            format!("site tables, line {} column {}: {e}", e.line(), e.column()),
        )
    })?;
    accepts(&tables).await?;
    let canonical = serde_json::to_string(&tables).map_err(ApiError::internal)?;
    let obj = env
        .bucket(DATA)?
        .put(KEY, canonical)
        .execute()
        .await?
        .ok_or_else(|| ApiError::internal("the site tables were not stored"))?;
    let site = Rc::new(SiteVersion {
        version: obj.etag(),
        tables,
    });
    remember(Some(site.clone()));
    json(&Summary::of(Some(&site)))
}

/// `DELETE /v1/site`: back to each card's own tables.
pub async fn delete(env: &Env) -> ApiResult<Response> {
    env.bucket(DATA)?.delete(KEY).await?;
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
    let body = serde_json::to_string(&site.tables).map_err(ApiError::internal)?;
    let mut r = Response::ok(body)?;
    let h = r.headers_mut();
    h.set("content-type", "application/json")?;
    h.set("etag", &format!("\"{}\"", site.version))?;
    // A given version never changes: the page asks for it by `?v=` from `GET /v1/config`, and
    // only the version asked for may be kept (a stale `v` gets the current tables, uncached).
    let asked = query(req, "v")?;
    if asked.as_deref() == Some(site.version.as_str()) {
        h.set("cache-control", "public, max-age=31536000, immutable")?;
    } else {
        h.set("cache-control", "no-store")?;
    }
    Ok(r)
}
