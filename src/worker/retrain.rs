//! The scheduled run's request for a new model: a signed `model.retrain_requested` webhook, through
//! the same queue, retries and dead letters as every webhook, so that any job runner can answer it
//! with `leadscore retrain`. When is the core's rule ([`crate::monitor::retrain`]), from
//! `RETRAIN_EVERY` (a duration), `RETRAIN_AFTER_OUTCOMES` (a count of new labelled outcomes) and
//! `RETRAIN_ON_ALERT` (`true`: after a drift or performance alert); none set, none is sent. Each
//! request is kept in D1 (`retrain_requests`) with how far into `outcomes` it had counted. While an
//! experiment runs, only an alert asks again: the live gate decides on the candidate first.

use serde::Deserialize;
use wasm_bindgen::JsValue;
use worker::*;

use super::arms;
use super::env::var;
use super::outbox::Delivery;
use crate::dataset::parse_window;
use crate::monitor::retrain::{RetrainPolicy, RetrainReason, RETRAIN_REQUESTED};
use crate::outcome::OutcomeType;

/// The deployment's policy (`RETRAIN_*` variables).
pub fn policy(env: &Env) -> RetrainPolicy {
    RetrainPolicy {
        every_ms: var(env, "RETRAIN_EVERY").and_then(|v| parse_window(&v).ok()),
        after_outcomes: var(env, "RETRAIN_AFTER_OUTCOMES").and_then(|v| v.trim().parse().ok()),
        on_alert: var(env, "RETRAIN_ON_ALERT").is_some_and(|v| v.trim() == "true"),
    }
}

#[derive(Deserialize)]
struct Last {
    at: Option<f64>,
    rowid: Option<f64>,
}

#[derive(Deserialize)]
struct Counted {
    n: f64,
    top: Option<f64>,
}

/// Sends `model.retrain_requested` when the policy says so; `alerts`: the types of the alerts
/// this run sent. Returns what was sent.
pub async fn request(
    env: &Env,
    d: &D1Database,
    queue: &Queue,
    label: OutcomeType,
    now: i64,
    alerts: &[&str],
) -> Result<Option<serde_json::Value>> {
    let p = policy(env);
    if p == RetrainPolicy::default() {
        return Ok(None);
    }
    let last = d
        .prepare("SELECT MAX(at) AS at, MAX(outcomes_rowid) AS rowid FROM retrain_requests")
        .first::<Last>(None)
        .await?;
    let last_at = last.as_ref().and_then(|l| l.at).map(|v| v as i64);
    let from_rowid = last.as_ref().and_then(|l| l.rowid).unwrap_or(0.0);
    let counted = d
        .prepare(
            "SELECT COUNT(*) AS n, MAX(rowid) AS top FROM outcomes WHERE type = ?1 AND rowid > ?2",
        )
        .bind(&[
            JsValue::from_str(label.as_str()),
            JsValue::from_f64(from_rowid),
        ])?
        .first::<Counted>(None)
        .await?;
    let new_outcomes = counted.as_ref().map_or(0, |c| c.n as u64);
    let Some(reason) = p.reason(now, last_at, new_outcomes, alerts) else {
        return Ok(None);
    };
    let dep = arms::deployment(env).await;
    if dep.experiment.is_some() && reason != RetrainReason::Alert {
        return Ok(None);
    }
    let body = serde_json::json!({
        "type": RETRAIN_REQUESTED,
        "timestamp": now,
        "data": {
            "reason": reason,
            "active": dep.active(),
            "label": label.as_str(),
            "new_labelled_outcomes": new_outcomes,
            "last_requested_at": last_at,
            "alerts": alerts,
        },
    });
    let id = format!("retrain_{now}");
    let text = serde_json::to_string(&body).map_err(|e| Error::RustError(e.to_string()))?;
    queue
        .send(Delivery {
            id: id.clone(),
            body: text.clone(),
            // The retry schedule counts in real time, whatever time the run judges as of.
            enqueued: super::http::now_ms(),
        })
        .await?;
    let top = counted.and_then(|c| c.top).unwrap_or(from_rowid);
    d.prepare(
        "INSERT OR IGNORE INTO retrain_requests (at, reason, outcomes_rowid, body) VALUES (?1, ?2, ?3, ?4)",
    )
    .bind(&[
        JsValue::from_f64(now as f64),
        JsValue::from_str(&serde_json::to_string(&reason).unwrap_or_default()),
        JsValue::from_f64(top),
        JsValue::from_str(&text),
    ])?
    .run()
    .await?;
    Ok(Some(
        serde_json::json!({"type": RETRAIN_REQUESTED, "reason": reason, "webhook_id": id}),
    ))
}
