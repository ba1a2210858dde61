//! `GET /v1/crm`, `POST /v1/crm/setup`, `GET /v1/crm/dead` and `POST /v1/crm/replay` (bearer): the
//! CRM destinations, their outboxes, HubSpot's property setup, and the writes given up.

use serde::Deserialize;
use serde_json::json;
use worker::*;

use crate::error_code::ErrorCode;
use crate::worker::bindings::DATA;
use crate::worker::crm::{destination, destinations};
use crate::worker::http::{bad_json, query, ApiError, ApiResult};
use crate::worker::objects::client;
use crate::worker::objects::crm_outbox::{dead_prefix, DeadLetter};

/// Most dead letters listed or replayed per request.
pub const MAX_DEAD_PAGE: usize = 200;

/// `GET /v1/crm`: each destination (what it writes, its limits) and its outbox; a configuration
/// error as `{"error": …}` beside no destinations.
pub async fn get(env: &Env) -> ApiResult<Response> {
    let dests = match destinations(env) {
        Ok(d) => d,
        Err(e) => {
            return Ok(Response::from_json(
                &json!({"destinations": [], "configuration_error": e}),
            )?)
        }
    };
    let mut out = Vec::new();
    for d in dests {
        let name = d.crm.as_str();
        let outbox = client::crm_status(env, name).await?;
        let ratio = (outbox.counts.calls > 0)
            .then(|| outbox.counts.offered as f64 / outbox.counts.calls as f64);
        let fields: serde_json::Map<String, serde_json::Value> = d
            .spec
            .fields
            .iter()
            .map(|(v, f)| (v.as_str().to_string(), json!(f)))
            .collect();
        out.push(json!({
            "name": name, "base_url": d.base_url, "api_version": d.api_version,
            "lead_object": d.lead_object.as_str(),
            "account_object": d.account_object.map(|o| o.as_str()), "fields": fields,
            "reasons_max_chars": d.spec.reasons_max_chars, "routing": d.spec.routing,
            "limits": d.limits, "flush_ms": d.flush_ms, "alerts": d.alerts,
            "outbox": outbox, "score_changes_per_call": ratio,
        }));
    }
    Ok(Response::from_json(
        &json!({"destinations": out, "configuration_error": null}),
    )?)
}

fn which(req: &Request, env: &Env) -> ApiResult<String> {
    let name = query(req, "destination")?.ok_or_else(|| {
        ApiError::new(
            400,
            ErrorCode::InvalidField,
            "`destination` (hubspot or salesforce) is required",
        )
    })?;
    destination(env, &name).map_err(|e| ApiError::new(400, ErrorCode::InvalidField, e))?;
    Ok(name)
}

/// `POST /v1/crm/setup?destination=hubspot`: creates the leadscore property group and properties
/// (idempotent: an existing one answers `409`, counted as done).
pub async fn setup(req: &Request, env: &Env) -> ApiResult<Response> {
    let name = which(req, env)?;
    let steps = client::crm_setup(env, &name).await?;
    let done = steps
        .iter()
        .all(|(_, s, _)| crate::crm::hubspot::setup_done(*s));
    let steps: Vec<_> = steps
        .into_iter()
        .map(|(step, status, message)| json!({"step": step, "status": status, "message": message}))
        .collect();
    let status = if done { 200 } else { 502 };
    Ok(Response::from_json(&json!({"done": done, "steps": steps}))?.with_status(status))
}

async fn letters(env: &Env, name: &str) -> ApiResult<Vec<(String, DeadLetter)>> {
    let bucket = env.bucket(DATA)?;
    let listed = bucket
        .list()
        .prefix(dead_prefix(name))
        .limit(MAX_DEAD_PAGE as u32)
        .execute()
        .await?;
    let mut out = Vec::new();
    for o in listed.objects() {
        let Some(obj) = bucket.get(o.key()).execute().await? else {
            continue;
        };
        let Some(body) = obj.body() else { continue };
        let text = body.text().await?;
        let letter: DeadLetter = serde_json::from_str(&text).map_err(ApiError::internal)?;
        out.push((o.key(), letter));
    }
    Ok(out)
}

/// `GET /v1/crm/dead?destination=`: the writes given up (at most [`MAX_DEAD_PAGE`]), with why.
pub async fn dead(req: &Request, env: &Env) -> ApiResult<Response> {
    let name = which(req, env)?;
    let list: Vec<_> = letters(env, &name)
        .await?
        .into_iter()
        .map(|(_, l)| l)
        .collect();
    Ok(Response::from_json(
        &json!({"destination": name, "dead": list}),
    )?)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReplayBody {
    destination: String,
}

/// `POST /v1/crm/replay {"destination"}`: every kept dead letter back into the outbox (a record the
/// CRM did not know is tried again; one with a newer score written stays as it is), each deleted
/// once the outbox has it.
pub async fn replay(text: &str, env: &Env) -> ApiResult<Response> {
    let body: ReplayBody = serde_json::from_str(text).map_err(bad_json)?;
    destination(env, &body.destination)
        .map_err(|e| ApiError::new(400, ErrorCode::InvalidField, e))?;
    let found = letters(env, &body.destination).await?;
    let writes: Vec<_> = found.iter().filter_map(|(_, l)| l.write.clone()).collect();
    let activities: Vec<_> = found
        .iter()
        .filter_map(|(_, l)| l.activity.clone())
        .collect();
    if found.is_empty() {
        return Ok(Response::from_json(&json!({"replayed": 0}))?);
    }
    let answer = client::crm_offer(env, &body.destination, writes, activities, true).await?;
    let bucket = env.bucket(DATA)?;
    for (key, _) in &found {
        bucket.delete(key).await?;
    }
    Ok(Response::from_json(
        &json!({"replayed": found.len(), "outbox": answer}),
    )?)
}
