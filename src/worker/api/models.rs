//! The model registry's routes: upload, list and read bundles, activate a version, roll back,
//! start and end the experiment, adopt a window as a version's drift baseline or reset it
//! ([`crate::registry`] for the rules, [`crate::worker::registry`] for the store). Every change is
//! recorded in the registry's history with its time and caller.

use base64::Engine as _;
use serde::Deserialize;
use worker::{Env, Request, Response};

use crate::error_code::ErrorCode;
use crate::experiment::Experiment;
use crate::registry::{accept, ChangeError, UploadError, MAX_UPLOAD_BYTES};
use crate::worker::arms::{self, EMBEDDED};
use crate::worker::body::{body_text, body_text_up_to};
use crate::worker::http::{bad_json, json, now_ms, query, ApiError, ApiResult};
use crate::worker::monitor;
use crate::worker::registry::{self, StateVersion};
use crate::worker::site;

/// Changes the registry's answers list (the latest first).
const HISTORY_SHOWN: usize = 20;
/// Longest `X-Leadscore-Actor` kept.
const MAX_ACTOR: usize = 64;

/// Who made a change: the caller's `X-Leadscore-Actor` (printable ASCII, at most 64), else the
/// credential it used.
fn actor(req: &Request) -> ApiResult<String> {
    let given = req.headers().get("x-leadscore-actor")?.unwrap_or_default();
    let clean: String = given
        .chars()
        .filter(|c| c.is_ascii_graphic() || *c == ' ')
        .take(MAX_ACTOR)
        .collect();
    Ok(if clean.trim().is_empty() {
        "api token".into()
    } else {
        clean.trim().to_string()
    })
}

fn change_error(e: ChangeError) -> ApiError {
    let code = match e {
        ChangeError::NothingToRollBack => ErrorCode::Conflict,
        _ => ErrorCode::InvalidConfig,
    };
    let status = if code == ErrorCode::Conflict {
        409
    } else {
        400
    };
    ApiError::new(status, code, e.to_string())
}

/// The registry's state as the answers show it.
fn summary(s: &StateVersion) -> serde_json::Value {
    let st = &s.state;
    serde_json::json!({
        "active": st.active_or_default(),
        "can_roll_back_to": st.replaced.last().map(|v| v.as_deref().unwrap_or(crate::registry::EMBEDDED_DEFAULT)),
        "experiment": st.experiment,
        "baselines": st.baselines,
        "history": st.history.iter().rev().take(HISTORY_SHOWN).collect::<Vec<_>>(),
    })
}

/// `PUT /v1/models/{name}`: checks the bundle completely and stores it under its version.
pub async fn put(req: &mut Request, env: &Env, name: &str) -> ApiResult<Response> {
    let text = body_text_up_to(req, MAX_UPLOAD_BYTES).await?;
    let site = site::current(env).await?;
    let accepted =
        accept(name, text.as_bytes(), site.as_deref().map(|s| &s.tables)).map_err(|e| {
            let code = match e {
                UploadError::TooLarge(_) => ErrorCode::BodyTooLarge,
                UploadError::Json(_) => ErrorCode::InvalidJson,
                _ => ErrorCode::InvalidBundle,
            };
            ApiError::new(e.status(), code, e.to_string())
        })?;
    let created = registry::put_bundle(env, &accepted.version, text.into_bytes()).await?;
    registry::put_served(env, &accepted.version, accepted.served).await?;
    let mut r = json(&serde_json::json!({
        "version": accepted.version,
        "name": accepted.name,
        "features": accepted.features,
        "trees": accepted.trees,
        "golden_rows": accepted.golden_rows,
        "golden_max_abs_dp": accepted.golden_max_dp,
        "created": created,
        "bundle": format!("/v1/models/{}", accepted.version),
    }))?;
    if created {
        r = r.with_status(201);
    }
    Ok(r)
}

/// `GET /v1/models`: the stored versions, the embedded bundles, and the registry's state.
pub async fn list(env: &Env) -> ApiResult<Response> {
    let state = registry::state(env).await?;
    let embedded: Vec<serde_json::Value> = EMBEDDED
        .iter()
        .map(|&(name, ..)| {
            arms::card_scorer(name)
                .map(|s| serde_json::json!({"name": name, "version": s.card().model_version}))
        })
        .collect::<ApiResult<_>>()?;
    let mut body = summary(&state);
    body["versions"] =
        serde_json::to_value(registry::list(env).await?).map_err(ApiError::internal)?;
    body["embedded"] = embedded.into();
    json(&body)
}

/// The embedded bundle named `id` (by name or by version): its index in [`EMBEDDED`], and whether
/// it was named by version (immutable).
fn embedded(id: &str) -> ApiResult<Option<(usize, bool)>> {
    for (i, &(name, ..)) in EMBEDDED.iter().enumerate() {
        let sc = arms::card_scorer(name)?;
        let by_version = id == sc.card().model_version;
        if id == name || by_version {
            return Ok(Some((i, by_version)));
        }
    }
    Ok(None)
}

/// The bundle named `id` as uploaded: `{"card", "model", "golden"?}`.
async fn uploaded_bundle(env: &Env, id: &str) -> ApiResult<Option<(bool, String)>> {
    if let Some((i, immutable)) = embedded(id)? {
        let (name, _, onnx, _) = EMBEDDED[i];
        let card =
            serde_json::to_string(arms::card_scorer(name)?.card()).map_err(ApiError::internal)?;
        let model = base64::engine::general_purpose::STANDARD.encode(onnx);
        return Ok(Some((
            immutable,
            format!(r#"{{"card":{card},"model":"{model}"}}"#),
        )));
    }
    Ok(match registry::bundle(env, id).await? {
        Some(bytes) => Some((true, String::from_utf8(bytes).map_err(ApiError::internal)?)),
        None => None,
    })
}

/// The bundle named `id` in its serving form, as JSON: `{"card", "forest"}` (the encoded forest in
/// base64): what the page loads (no ONNX to parse, no golden vectors to download).
async fn served_bundle(env: &Env, id: &str) -> ApiResult<Option<(bool, String)>> {
    let json = |card: &str, forest: &[u8]| {
        let forest = base64::engine::general_purpose::STANDARD.encode(forest);
        format!(r#"{{"card":{card},"forest":"{forest}"}}"#)
    };
    if let Some((i, immutable)) = embedded(id)? {
        let (_, card, _, forest) = EMBEDDED[i];
        return Ok(Some((immutable, json(card, forest))));
    }
    let Some(bytes) = registry::served(env, id).await? else {
        return Ok(None);
    };
    let (card, forest) = crate::registry::served_split(&bytes)
        .map_err(|e| ApiError::new(500, ErrorCode::Model, format!("{id}: {e}")))?;
    Ok(Some((true, json(card, forest))))
}

/// `GET /v1/models/{version}[?form=served]`: a bundle as uploaded (card and model; a stored one
/// also has its golden vectors), or with `form=served` as the page loads it (card and encoded
/// forest). A version never changes, so it may be kept for good; an embedded bundle asked by name
/// may change with a deploy.
pub async fn get(req: &Request, env: &Env, id: &str) -> ApiResult<Response> {
    let found = match query(req, "form")?.as_deref() {
        None => uploaded_bundle(env, id).await?,
        Some("served") => served_bundle(env, id).await?,
        Some(other) => {
            return Err(ApiError::new(
                400,
                ErrorCode::InvalidField,
                format!("form: {other:?} is not a form of a bundle (served, or none)"),
            ))
        }
    };
    let (immutable, body) = found.ok_or_else(|| not_found(id))?;
    let mut r = Response::ok(body)?;
    let h = r.headers_mut();
    h.set("content-type", "application/json")?;
    h.set(
        "cache-control",
        if immutable {
            "public, max-age=31536000, immutable"
        } else {
            "max-age=60"
        },
    )?;
    // The page loads bundles cross-origin, like its other worker requests.
    h.set("access-control-allow-origin", "*")?;
    Ok(r)
}

fn not_found(id: &str) -> ApiError {
    ApiError::new(404, ErrorCode::NotFound, format!("no model {id}"))
}

/// Whether a bundle can be named: embedded (by name) or stored.
async fn known(env: &Env, name: &str) -> ApiResult<bool> {
    Ok(arms::is_embedded(name) || registry::stored(env, name).await?)
}

/// Why a caller changed something.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Why {
    #[serde(default)]
    reason: Option<String>,
}

async fn why(req: &mut Request) -> ApiResult<Option<String>> {
    let text = body_text(req).await?;
    if text.trim().is_empty() {
        return Ok(None);
    }
    let w: Why = serde_json::from_str(&text).map_err(bad_json)?;
    Ok(w.reason.map(|r| r.chars().take(500).collect()))
}

/// `POST /v1/models/{version}/activate`: the version scores everyone without an arm, in every
/// isolate within a minute.
pub async fn activate(req: &mut Request, env: &Env, version: &str) -> ApiResult<Response> {
    need_known(env, version).await?;
    let by = actor(req)?;
    let reason = why(req).await?;
    let at = now_ms();
    let (changed, state) =
        registry::change(env, |s| Ok(s.activate(version, at, &by, reason.clone()))).await?;
    let mut body = summary(&state);
    body["changed"] = changed.into();
    json(&body)
}

/// What `POST /v1/models/{version}/baseline` takes: the windows starting in [from, to) (ms or
/// `YYYY-MM-DD`), and why.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewNormal {
    from: serde_json::Value,
    to: serde_json::Value,
    #[serde(default)]
    reason: Option<String>,
}

fn time_of(v: &serde_json::Value, key: &str) -> ApiResult<i64> {
    let bad = |m: String| ApiError::new(400, ErrorCode::InvalidField, format!("{key}: {m}"));
    match v {
        serde_json::Value::Number(n) => n
            .as_i64()
            .ok_or_else(|| bad(format!("{n} is not a time in ms"))),
        serde_json::Value::String(t) => {
            crate::dataset::parse_as_of(t).map_err(|e| bad(e.to_string()))
        }
        other => Err(bad(format!("{other} is neither ms nor a YYYY-MM-DD date"))),
    }
}

async fn need_known(env: &Env, name: &str) -> ApiResult<()> {
    if known(env, name).await? {
        return Ok(());
    }
    Err(ApiError::new(
        404,
        ErrorCode::NotFound,
        format!("no model {name}: upload it first (PUT /v1/models/{{name}})"),
    ))
}

/// `POST /v1/models/{version}/baseline`: a new normal accepted — the version's decisions in the
/// windows starting in [from, to) become its drift baseline (recorded with who and when).
pub async fn adopt_baseline(req: &mut Request, env: &Env, name: &str) -> ApiResult<Response> {
    need_known(env, name).await?;
    let by = actor(req)?;
    let text = body_text(req).await?;
    let w: NewNormal = serde_json::from_str(&text).map_err(bad_json)?;
    let (from, to) = (time_of(&w.from, "from")?, time_of(&w.to, "to")?);
    if from >= to {
        return Err(ApiError::new(
            400,
            ErrorCode::InvalidField,
            format!("from ({from}) must be before to ({to})"),
        ));
    }
    let reason = w.reason.map(|r| r.chars().take(500).collect());
    let adopted = monitor::adopt_baseline(env, name, (from, to), (now_ms(), &by), reason).await?;
    let mut body = summary(&*registry::state(env).await?);
    body["adopted"] = serde_json::to_value(&adopted).map_err(ApiError::internal)?;
    Ok(json(&body)?.with_status(201))
}

/// `DELETE /v1/models/{version}/baseline`: the version is watched against its card's own
/// baseline again.
pub async fn reset_baseline(req: &mut Request, env: &Env, name: &str) -> ApiResult<Response> {
    need_known(env, name).await?;
    let by = actor(req)?;
    let reason = why(req).await?;
    let model = arms::named_scorer(env, name)
        .await?
        .card()
        .model_version
        .clone();
    let at = now_ms();
    let (changed, state) = registry::change(env, |s| {
        Ok(s.reset_baseline(&model, at, &by, reason.clone()))
    })
    .await?;
    let mut body = summary(&state);
    body["changed"] = changed.into();
    json(&body)
}

/// `POST /v1/models/rollback`: the version the active one replaced comes back.
pub async fn rollback(req: &mut Request, env: &Env) -> ApiResult<Response> {
    let by = actor(req)?;
    let reason = why(req).await?;
    let at = now_ms();
    let ((), state) = registry::change(env, |s| {
        s.rollback(at, &by, reason.clone()).map_err(change_error)
    })
    .await?;
    json(&summary(&state))
}

/// `PUT /v1/experiment`: arms by version (or embedded name) and weight, and the key.
pub async fn put_experiment(req: &mut Request, env: &Env) -> ApiResult<Response> {
    let by = actor(req)?;
    let text = body_text(req).await?;
    let exp: Experiment = serde_json::from_str(&text).map_err(bad_json)?;
    let mut stored = Vec::new();
    for a in &exp.arms {
        if known(env, &a.model).await? {
            stored.push(a.model.clone());
        }
    }
    let at = now_ms();
    let ((), state) = registry::change(env, |s| {
        s.set_experiment(exp.clone(), |m| stored.iter().any(|x| x == m), at, &by)
            .map_err(change_error)
    })
    .await?;
    json(&summary(&state))
}

/// `DELETE /v1/experiment`: everyone returns to the active version.
pub async fn delete_experiment(req: &mut Request, env: &Env) -> ApiResult<Response> {
    let by = actor(req)?;
    let reason = why(req).await?;
    let at = now_ms();
    let (ended, state) =
        registry::change(env, |s| Ok(s.end_experiment(at, &by, reason.clone()))).await?;
    let mut body = summary(&state);
    body["changed"] = ended.into();
    json(&body)
}
