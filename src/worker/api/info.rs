//! What the worker says about itself: `GET /healthz`, `GET /v1/model` and `GET /v1/config` (what
//! the page needs to score as the worker does).

use worker::{Env, Request, Response};

use crate::worker::arms;
use crate::worker::http::{json, query, ApiError, ApiResult};
use crate::worker::objects::client;
use crate::worker::site;

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

/// `GET /healthz`.
pub fn healthz() -> ApiResult<Response> {
    let s = arms::default_scorer()?;
    json(&serde_json::json!({
        "ok": true,
        "model_version": s.card().model_version,
        "wasm_memory_bytes": wasm_memory_bytes(),
    }))
}

/// `GET /v1/model`: the active model's card summary.
pub async fn model(env: &Env) -> ApiResult<Response> {
    let dep = arms::deployment(env).await;
    let s = arms::scorer_for(env, &dep, None).await?;
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

/// The URL of the bundle a page loads to score with `name` (`None`: the embedded default, which
/// the page's module embeds).
fn bundle_url(name: &str) -> Option<String> {
    (name != crate::registry::EMBEDDED_DEFAULT).then(|| format!("/v1/models/{name}"))
}

/// `GET /v1/config[?visitor_id=]`: the deployment's site tables version, the active model, the
/// experiment, the registry's latest changes and, for a visitor, the arm and the bundle that
/// score it (`bundle`: `GET /v1/models/{version}`, immutable; `null`: the embedded default).
pub async fn config(req: &Request, env: &Env) -> ApiResult<Response> {
    let models: serde_json::Map<String, serde_json::Value> = arms::EMBEDDED
        .iter()
        .map(|&(name, ..)| {
            arms::card_scorer(name)
                .map(|s| (name.to_string(), s.card().model_version.clone().into()))
        })
        .collect::<ApiResult<_>>()?;
    let dep = arms::deployment(env).await;
    let visitor = query(req, "visitor_id")?;
    let reg = &dep.registry.state;
    let mut body = serde_json::json!({
        "site": site::summary(env).await?,
        "active": dep.active(),
        "experiment": dep.experiment.as_deref(),
        "models": models,
        "registry": {
            "version": dep.registry.etag,
            "changes": reg.history.iter().rev().take(5).collect::<Vec<_>>(),
        },
    });
    if let Some(v) = &visitor {
        crate::event::check_visitor_id(v).map_err(|e| {
            ApiError::new(
                400,
                crate::error_code::ErrorCode::InvalidField,
                e.to_string(),
            )
        })?;
        let arm = match dep.experiment {
            Some(_) => client::arm(env, v).await?,
            None => None,
        };
        let scoring = dep.bundle_for(arm.as_deref()).to_string();
        body["bundle"] = bundle_url(&scoring).into();
        body["scoring"] = scoring.into();
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
