//! `POST /v1/leads/events` (bearer, server to server): what the CRM or the marketing tool knows
//! about a lead — an email opened, a meeting held, a webinar attended — sent by lead id.
//!
//! The events go where the lead's score lives: its merged view (the consented web visitor that
//! proved it is the lead) when it has one, else the lead's own stream
//! ([`crate::event::lead_stream`]: a visitor id no page may use), which joins the lead like a
//! verified visitor, so a lead with no browser has a score. Live (the default) they are scored
//! and may send webhooks, like a page's; `history: true` applies them as `/v1/import` does (at
//! their own times, logged, never forwarded). Each event has no `visitor_id` (the batch's
//! `lead_id` addresses it); ids de-duplicate as everywhere, so a batch sent twice counts once.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use worker::{Env, Request, Response};

use crate::error_code::ErrorCode;
use crate::event::limits::{MAX_IMPORT_BODY_BYTES, MAX_IMPORT_EVENTS, MAX_LEAD_ID_LEN};
use crate::event::{check_id, lead_stream};
use crate::worker::batch::{self, Rejected};
use crate::worker::body::body_text_up_to;
use crate::worker::http::{bad_json, check_json_content_type, now_ms, ApiError, ApiResult};
use crate::worker::objects::client::{self, ApplyRequest, ApplyResponse, CheckedEvent, Join};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LeadBatch<'a> {
    lead_id: String,
    /// Apply as history (`/v1/import`'s rules) rather than live.
    #[serde(default)]
    history: bool,
    #[serde(borrow)]
    events: Vec<&'a RawValue>,
}

/// `POST /v1/leads/events` answer.
#[derive(Debug, Serialize)]
struct LeadEventsResponse {
    lead_id: String,
    /// Where the events were applied: the lead's merged view, or its own stream.
    visitor_id: String,
    /// Events counted (the stream's opening identify once, on its first batch).
    accepted: u32,
    duplicates: u32,
    stale: u32,
    rejected: Vec<Rejected>,
    /// The lead's score after the batch (live only).
    #[serde(skip_serializing_if = "Option::is_none")]
    score: Option<crate::score::Score>,
}

fn bad_lead(message: String) -> ApiError {
    ApiError::new(400, ErrorCode::InvalidField, message)
}

/// One item: an event without a visitor, addressed to `target` for `lead`.
fn checked(raw: &RawValue, lead: &str, target: &str) -> Result<CheckedEvent, (ErrorCode, String)> {
    let invalid = |m: &str| (ErrorCode::InvalidField, m.to_string());
    let obj: serde_json::Map<String, serde_json::Value> = serde_json::from_str(raw.get())
        .map_err(|e| (ErrorCode::InvalidField, format!("invalid event: {e}")))?;
    if obj.contains_key("visitor_id") {
        return Err(invalid(
            "field `visitor_id`: a lead's events are addressed by the batch's `lead_id`",
        ));
    }
    if obj.contains_key("lead_signature") {
        return Err(invalid(
            "field `lead_signature`: a bearer caller's lead is proven already",
        ));
    }
    addressed(obj, lead, target)
}

/// An event object (no visitor) addressed to `target`, checked: its `lead_id`, if any, must be
/// `lead`'s.
fn addressed(
    mut obj: serde_json::Map<String, serde_json::Value>,
    lead: &str,
    target: &str,
) -> Result<CheckedEvent, (ErrorCode, String)> {
    match obj.get("lead_id") {
        Some(serde_json::Value::String(l)) if l != lead => {
            return Err((
                ErrorCode::InvalidField,
                "field `lead_id`: differs from the batch's lead_id".into(),
            ))
        }
        _ => {}
    }
    obj.insert("visitor_id".into(), target.into());
    let text = serde_json::Value::Object(obj).to_string();
    CheckedEvent::parse(&text).map_err(|e| (e.code(), e.to_string()))
}

/// An event as an object without its visitor, for [`apply_for_lead`].
pub fn without_visitor(
    event: &crate::event::Event,
) -> ApiResult<serde_json::Map<String, serde_json::Value>> {
    match serde_json::to_value(event).map_err(ApiError::internal)? {
        serde_json::Value::Object(mut m) => {
            m.remove("visitor_id");
            Ok(m)
        }
        _ => Err(ApiError::internal("an event is not a JSON object")),
    }
}

/// Where `lead`'s events go: its merged view, else its own stream.
async fn target_of(env: &Env, lead: &str) -> ApiResult<String> {
    Ok(client::lead_view(env, lead)
        .await?
        .unwrap_or_else(|| lead_stream(lead)))
}

/// Applies checked events (addressed to `target`, [`target_of`]) for `lead`: the stream opens
/// with its identify and joins the lead; a web visitor keeps its own consent.
async fn apply_checked(
    env: &Env,
    lead: &str,
    target: &str,
    mut events: Vec<CheckedEvent>,
    history: bool,
) -> ApiResult<ApplyResponse> {
    let stream = lead_stream(lead);
    let own_stream = target == stream;
    if let (true, Some(first)) = (own_stream, events.iter().map(|e| e.event.ts).min()) {
        // The stream names its lead once: one identify, the same id on every batch.
        let open = serde_json::json!({
            "id": format!("{stream}#identify"), "type": "identify", "ts": first,
            "visitor_id": stream, "lead_id": lead,
        });
        let open = CheckedEvent::parse(&open.to_string())
            .map_err(|e| ApiError::new(400, e.code(), e.to_string()))?;
        events.insert(0, open);
        if history {
            // History never merges (an import applies, logs and stops): the stream joins here.
            let join = Join {
                lead: lead.to_string(),
                visitor: stream.clone(),
                crm: true,
            };
            client::join_lead(env, &join).await?;
        }
    }
    let verified_account = ApplyRequest::group_account(&events);
    client::apply(
        env,
        &ApplyRequest {
            visitor_id: target.to_string(),
            // The CRM's own lead: forwarded and logged. A web visitor keeps its own consent.
            crm: own_stream.then_some(true),
            events,
            now: now_ms(),
            verified_lead: Some(lead.to_string()),
            analytics: own_stream.then_some(true),
            import: history,
            verified_account,
        },
    )
    .await
}

/// Applies event objects (without a visitor) about `lead` where its score lives; the answer's
/// visitor is where they went. For other routes that learn of a lead's events (Segment's
/// messages with only a `userId`).
pub async fn apply_for_lead(
    env: &Env,
    lead: &str,
    events: Vec<serde_json::Map<String, serde_json::Value>>,
    history: bool,
) -> ApiResult<(String, ApplyResponse)> {
    let target = target_of(env, lead).await?;
    let checked = events
        .into_iter()
        .map(|o| addressed(o, lead, &target).map_err(|(code, m)| ApiError::new(400, code, m)))
        .collect::<ApiResult<Vec<_>>>()?;
    let r = apply_checked(env, lead, &target, checked, history).await?;
    Ok((target, r))
}

/// The route (the caller checked the bearer token).
pub async fn post(req: &mut Request, env: &Env) -> ApiResult<Response> {
    check_json_content_type(req)?;
    let text = body_text_up_to(req, MAX_IMPORT_BODY_BYTES).await?;
    let b: LeadBatch = serde_json::from_str(&text).map_err(bad_json)?;
    check_id("lead_id", &b.lead_id).map_err(|e| bad_lead(e.to_string()))?;
    if b.lead_id.len() > MAX_LEAD_ID_LEN {
        return Err(bad_lead(format!(
            "field `lead_id`: is {} bytes, more than {MAX_LEAD_ID_LEN}",
            b.lead_id.len()
        )));
    }
    batch::check_len(
        b.events.len(),
        MAX_IMPORT_EVENTS,
        "events",
        "lead batch",
        ErrorCode::InvalidEvent,
    )?;
    let lead = b.lead_id.as_str();
    let target = target_of(env, lead).await?;
    let (events, rejected) = batch::partition(&b.events, |raw| checked(raw, lead, &target));
    if events.is_empty() {
        return Err(batch::every_item_invalid(
            ErrorCode::InvalidEvent,
            "event",
            &rejected,
        ));
    }
    let applied = apply_checked(env, lead, &target, events, b.history).await?;
    Ok(Response::from_json(&LeadEventsResponse {
        lead_id: b.lead_id.clone(),
        visitor_id: target,
        accepted: applied.accepted,
        duplicates: applied.duplicates,
        stale: applied.stale,
        rejected,
        score: applied.score,
    })?)
}
