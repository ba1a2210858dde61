//! `POST /v1/score` (stateless: one visitor's events, or a feature vector) and
//! `GET /v1/score/{id}` (a lead's or a visitor's current score). Both bearer-only.

use serde::Deserialize;
use serde_json::value::RawValue;
use worker::{Env, Request, Response};

use crate::error_code::ErrorCode;
use crate::event::limits::MAX_BATCH_EVENTS;
use crate::event::Event;
use crate::score::ScoreOptions;
use crate::worker::arms;
use crate::worker::body::body_text;
use crate::worker::http::{bad_json, json, now_ms, ApiError, ApiResult};
use crate::worker::objects::client::{self, ScoreOf};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Stateless<'a> {
    #[serde(default, borrow)]
    events: Option<Vec<&'a RawValue>>,
    #[serde(default)]
    features: Option<serde_json::Map<String, serde_json::Value>>,
}

/// Parses a stateless batch: every event valid and all of one visitor (the state is one
/// visitor's; two visitors' events in one state would score a person who does not exist).
fn parse_one_visitor(events: &[&RawValue]) -> ApiResult<Vec<Event>> {
    if events.is_empty() {
        return Err(ApiError::new(
            400,
            ErrorCode::InvalidEvent,
            "`events` is empty: give at least one event",
        ));
    }
    if events.len() > MAX_BATCH_EVENTS {
        return Err(ApiError::new(
            400,
            ErrorCode::TooManyEvents,
            format!("at most {MAX_BATCH_EVENTS} events"),
        ));
    }
    let mut parsed: Vec<Event> = Vec::with_capacity(events.len());
    for (i, raw) in events.iter().enumerate() {
        let e = Event::parse(raw.get())
            .map_err(|e| ApiError::new(400, e.code(), format!("events[{i}]: {e}")))?;
        if let Some(first) = parsed.first().filter(|f| f.visitor_id != e.visitor_id) {
            return Err(ApiError::new(
                400,
                ErrorCode::InvalidField,
                format!(
                    "events[{i}]: field `visitor_id`: `{}` differs from events[0]'s `{}`; score one visitor per request",
                    e.visitor_id, first.visitor_id
                ),
            ));
        }
        parsed.push(e);
    }
    Ok(parsed)
}

/// `POST /v1/score` (the caller checked the bearer token).
pub async fn post(req: &mut Request, env: &Env) -> ApiResult<Response> {
    let text = body_text(req).await?;
    let body: Stateless = serde_json::from_str(&text).map_err(bad_json)?;
    let dep = arms::deployment(env).await;
    let s = arms::scorer_for(env, &dep, None).await?;
    let now = now_ms();
    let score = match (body.events, body.features) {
        (Some(events), None) => {
            let parsed = parse_one_visitor(&events)?;
            let mut state = s.new_state();
            s.apply_all(&mut state, &parsed, Some(now));
            let (visitor, last) = parsed
                .last()
                .map_or(("", now), |e| (e.visitor_id.as_str(), e.ts));
            s.score(&state, visitor, last.min(now), ScoreOptions::default())
        }
        (None, Some(map)) => {
            let x = s
                .features()
                .vector_from_named(map.iter().map(|(k, v)| (k.as_str(), v.as_f64())))
                .map_err(|m| ApiError::new(400, ErrorCode::InvalidField, m))?;
            s.score_vector(&x, ScoreOptions::default()).map(|mut sc| {
                sc.score_timestamp = now;
                sc
            })
        }
        _ => {
            return Err(ApiError::new(
                400,
                ErrorCode::InvalidField,
                "give exactly one of `events` or `features`",
            ))
        }
    }
    .map_err(|e| ApiError::new(400, ErrorCode::InvalidInput, e.to_string()))?;
    json(&serde_json::json!({ "score": score }))
}

/// `GET /v1/score/{id}[?kind=]` (the caller checked the bearer token). `kind`: `lead` (a
/// verified lead's merged view), `visitor`, or none (a lead first, then a visitor).
pub async fn get(env: &Env, id: &str, kind: Option<&str>) -> ApiResult<Response> {
    let kinds: &[ScoreOf] = match kind {
        None => &[ScoreOf::Lead, ScoreOf::Visitor],
        Some("lead") => &[ScoreOf::Lead],
        Some("visitor") => &[ScoreOf::Visitor],
        Some("account") => &[],
        Some(other) => {
            return Err(ApiError::new(
                400,
                ErrorCode::InvalidField,
                format!("`kind` must be `lead`, `visitor` or `account`, not `{other}`"),
            ))
        }
    };
    if !id.is_empty() {
        crate::event::check_id("id", id)
            .map_err(|e| ApiError::new(400, e.code(), e.to_string()))?;
    }
    if kind == Some("account") {
        if let Some(score) = client::account_score(env, id).await? {
            return json(&serde_json::json!({ "score": score, "kind": "account" }));
        }
    }
    for &k in kinds {
        if let Some(score) = client::score(env, id, k).await? {
            return json(&serde_json::json!({ "score": score, "kind": k.as_str() }));
        }
    }
    Err(ApiError::new(
        404,
        ErrorCode::NotFound,
        format!("no {} `{id}`", kind.unwrap_or("visitor or lead")),
    ))
}
