//! `GET /v1/deliveries/failed` and `POST /v1/deliveries/replay` (bearer): the deliveries that
//! exhausted their retries, kept in R2 by [`crate::worker::deadletter`].

use serde::{Deserialize, Serialize};
use worker::*;

use crate::error_code::ErrorCode;
use crate::worker::bindings::{DATA, SCORE_EVENTS};
use crate::worker::deadletter::{key, Failed, PREFIX};
use crate::worker::http::{bad_json, now_ms, query, ApiError, ApiResult};

/// Most deliveries listed or replayed per request.
pub const MAX_PAGE: u32 = 100;

/// What the list shows of a kept delivery (its body stays in R2).
#[derive(Debug, Serialize)]
struct Summary {
    id: String,
    #[serde(rename = "type")]
    kind: Option<String>,
    visitor_id: Option<String>,
    lead_id: Option<String>,
    enqueued: i64,
    failed_at: i64,
}

/// `GET /v1/deliveries/failed?limit=&cursor=`: kept deliveries, oldest key order, paginated.
pub async fn list(req: &Request, env: &Env) -> ApiResult<Response> {
    let limit = match query(req, "limit")? {
        None => MAX_PAGE,
        Some(v) => v
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=MAX_PAGE).contains(n))
            .ok_or_else(|| {
                ApiError::new(
                    400,
                    ErrorCode::InvalidField,
                    format!("`limit` must be 1 to {MAX_PAGE}"),
                )
            })?,
    };
    let bucket = env.bucket(DATA)?;
    let mut l = bucket.list().prefix(PREFIX).limit(limit);
    // The cursor is the last webhook id of the previous page (R2 lists keys in order): one the
    // caller can read, and one this route can check, where an opaque R2 cursor that is not one
    // is not refused by every R2 (the local one lists from the start).
    if let Some(after) = query(req, "cursor")? {
        if !is_webhook_id(&after) {
            return Err(ApiError::new(
                400,
                ErrorCode::InvalidField,
                "`cursor` is not one this list answered (the last webhook id of a page)",
            ));
        }
        l = l.start_after(key(&after));
    }
    let objects = l.execute().await?;
    let mut out = Vec::new();
    for o in objects.objects() {
        let Some(obj) = bucket.get(o.key()).execute().await? else {
            continue; // replayed meanwhile
        };
        let Some(body) = obj.body() else { continue };
        let Ok(f) = serde_json::from_str::<Failed>(&body.text().await?) else {
            continue;
        };
        let payload: serde_json::Value = serde_json::from_str(&f.delivery.body).unwrap_or_default();
        let s = |v: &serde_json::Value| v.as_str().map(str::to_string);
        out.push(Summary {
            id: f.delivery.id,
            kind: s(&payload["type"]),
            visitor_id: s(&payload["data"]["visitor_id"]),
            lead_id: s(&payload["data"]["lead_id"]),
            enqueued: f.delivery.enqueued,
            failed_at: f.failed_at,
        });
    }
    let cursor = objects
        .truncated()
        .then(|| objects.objects().last().map(|o| o.key()))
        .flatten()
        .and_then(|k| {
            k.strip_prefix(PREFIX)
                .and_then(|k| k.strip_suffix(".json"))
                .map(str::to_string)
        });
    Ok(Response::from_json(
        &serde_json::json!({"deliveries": out, "cursor": cursor}),
    )?)
}

/// `POST /v1/deliveries/replay` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Replay {
    /// Webhook ids to replay…
    #[serde(default)]
    ids: Option<Vec<String>>,
    /// …or every kept delivery (up to [`MAX_PAGE`] per call).
    #[serde(default)]
    all: bool,
}

/// Puts kept deliveries back on the queue (same `webhook-id`, same body, fresh schedule).
pub async fn replay(text: &str, env: &Env) -> ApiResult<Response> {
    let body: Replay = serde_json::from_str(text).map_err(bad_json)?;
    if let Some(bad) = body.ids.iter().flatten().find(|id| !is_webhook_id(id)) {
        let shown: String = bad.chars().take(80).collect();
        return Err(ApiError::new(
            400,
            ErrorCode::InvalidField,
            format!(
                "`ids`: {shown:?} is not a webhook id (`msg_` + 24 hex digits, or an alert's `alert_<hex>_<ms>`)"
            ),
        ));
    }
    let bucket = env.bucket(DATA)?;
    let ids: Vec<String> = match (body.ids, body.all) {
        (Some(ids), false) if !ids.is_empty() && ids.len() <= MAX_PAGE as usize => ids,
        (None, true) => bucket
            .list()
            .prefix(PREFIX)
            .limit(MAX_PAGE)
            .execute()
            .await?
            .objects()
            .iter()
            .filter_map(|o| {
                o.key()
                    .strip_prefix(PREFIX)
                    .and_then(|k| k.strip_suffix(".json"))
                    .map(str::to_string)
            })
            .collect(),
        _ => {
            return Err(ApiError::new(
                400,
                ErrorCode::InvalidField,
                format!("give `ids` (1 to {MAX_PAGE} webhook ids) or `all: true`"),
            ))
        }
    };
    let queue = env.queue(SCORE_EVENTS)?;
    let (mut replayed, mut missing) = (Vec::new(), Vec::new());
    for id in ids {
        let obj = bucket.get(key(&id)).execute().await?;
        let Some(body) = obj.as_ref().and_then(|o| o.body()) else {
            missing.push(id);
            continue;
        };
        let Ok(f) = serde_json::from_str::<Failed>(&body.text().await?) else {
            missing.push(id);
            continue;
        };
        let mut d = f.delivery;
        d.enqueued = now_ms();
        queue.send(d).await?;
        bucket.delete(key(&id)).await?;
        replayed.push(id);
    }
    Ok(Response::from_json(
        &serde_json::json!({"replayed": replayed, "missing": missing}),
    )?)
}

/// Whether `id` is a webhook id this worker makes (and so an R2 key it may have written): a score
/// event's `msg_` + 24 hex digits ([`crate::webhook::webhook_id`]) or an alert's `alert_` + 8 hex
/// digits + `_` + its window's start ([`crate::worker::monitor`]).
fn is_webhook_id(id: &str) -> bool {
    let hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit());
    if let Some(h) = id.strip_prefix("msg_") {
        return hex(h, 24);
    }
    id.strip_prefix("alert_")
        .and_then(|rest| rest.split_once('_'))
        .is_some_and(|(h, start)| {
            hex(h, 8)
                && (1..=20).contains(&start.len())
                && start.bytes().all(|b| b.is_ascii_digit())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_ids_this_worker_makes_are_webhook_ids() {
        assert!(is_webhook_id(&crate::webhook::webhook_id("v1", 3)));
        assert!(is_webhook_id("alert_0a1b2c3d_1796256000000"));
        for bad in [
            "garbage",
            "msg_",
            "msg_xyz",
            "alert_0a1b2c3d_",
            "../../config/site",
            &"x".repeat(2000),
        ] {
            assert!(!is_webhook_id(bad), "{bad}");
        }
    }
}
