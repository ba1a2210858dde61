//! The deployment's site tables: what this site's pages are (page rules, per-page statistics,
//! calendar).
//!
//! The store (R2 and this isolate's copy); the routes are in [`super::api::site`].
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
use worker::Env;

use super::bindings::DATA;
use super::http::{now_ms, ApiError, ApiResult};
use crate::error_code::ErrorCode;
use crate::site::SiteTables;

/// Where the deployment's tables live in the data bucket.
pub const KEY: &str = "config/site.json";
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

pub(super) fn remember(site: Option<Rc<SiteVersion>>) {
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
    let bucket = env.bucket(DATA)?;
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
pub(super) struct Summary {
    version: Option<String>,
    page_rules: usize,
    pages_with_stats: usize,
    special_days: usize,
}

impl Summary {
    /// The summary of these tables (`None`: the cards' own).
    pub(super) fn of(site: Option<&SiteVersion>) -> Summary {
        Summary {
            version: site.map(|s| s.version.clone()),
            page_rules: site.map_or(0, |s| s.tables.page_rules.len()),
            pages_with_stats: site.map_or(0, |s| s.tables.page_stats.pages.len()),
            special_days: site.map_or(0, |s| s.tables.special_days.len()),
        }
    }
}

/// The site part of `GET /v1/config`.
pub async fn summary(env: &Env) -> ApiResult<serde_json::Value> {
    let site = current(env).await?;
    serde_json::to_value(Summary::of(site.as_deref())).map_err(ApiError::internal)
}
