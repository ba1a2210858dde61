//! Deliveries that exhausted the retry schedule: the dead-letter queue's consumer keeps each one
//! in R2 (`deliveries/failed/<webhook-id>.json`, binding `DATA`), where it stays until an operator
//! lists it (`GET /v1/deliveries/failed`) and replays it (`POST /v1/deliveries/replay`): the same
//! `webhook-id` and body go back on the score-events queue with a fresh retry schedule, and the
//! object is deleted only once the queue has the message. Nothing is dropped on the way: an
//! object that cannot be written leaves its message on the dead-letter queue to be retried.

use serde::{Deserialize, Serialize};
use worker::*;

use super::outbox::{Delivery, QUEUE};
use super::{now_ms, query, ApiError, ApiResult};
use crate::error_code::ErrorCode;

/// R2 binding (wrangler.toml).
pub const BUCKET: &str = "DATA";
/// Key prefix of kept deliveries.
pub const PREFIX: &str = "deliveries/failed/";
/// Most deliveries listed or replayed per request.
pub const MAX_PAGE: u32 = 100;

/// A delivery kept after its last retry.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Failed {
    /// The delivery, as it was queued.
    pub delivery: Delivery,
    /// When the dead-letter queue handed it over (ms).
    pub failed_at: i64,
}

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

fn key(id: &str) -> String {
    format!("{PREFIX}{id}.json")
}

/// The dead-letter queue's consumer: each message into R2, acked once written.
pub async fn keep(batch: MessageBatch<Delivery>, env: &Env) -> Result<()> {
    let bucket = env.bucket(BUCKET)?;
    for msg in batch.messages()? {
        let failed = Failed {
            delivery: msg.body().clone(),
            failed_at: now_ms(),
        };
        let text = serde_json::to_string(&failed).map_err(|e| Error::RustError(e.to_string()))?;
        match bucket.put(key(&failed.delivery.id), text).execute().await {
            Ok(_) => {
                console_warn!("webhook {} kept as failed", failed.delivery.id);
                msg.ack();
            }
            Err(e) => {
                console_error!("webhook {}: not kept ({e}); retrying", failed.delivery.id);
                msg.retry();
            }
        }
    }
    Ok(())
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
    let bucket = env.bucket(BUCKET)?;
    let mut l = bucket.list().prefix(PREFIX).limit(limit);
    if let Some(c) = query(req, "cursor")? {
        l = l.cursor(c);
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
    let cursor = objects.truncated().then(|| objects.cursor()).flatten();
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
    let body: Replay = serde_json::from_str(text)
        .map_err(|e| ApiError::new(400, ErrorCode::InvalidJson, e.to_string()))?;
    let bucket = env.bucket(BUCKET)?;
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
    let queue = env.queue(QUEUE)?;
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
