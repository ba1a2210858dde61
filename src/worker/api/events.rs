//! `POST /v1/events` (the snippet's batches) and `POST /v1/identify` (a visitor tied to a lead).

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use worker::{Env, Request, Response};

use crate::error_code::ErrorCode;
use crate::event::limits::MAX_BATCH_EVENTS;
use crate::event::{check_visitor_id, EventType};
use crate::worker::batch::{self, Rejected};
use crate::worker::body::body_text;
use crate::worker::env::Config;
use crate::worker::http::{bad_json, check_json_content_type, check_origin, json, now_ms};
use crate::worker::http::{bearer, ApiError, ApiResult};
use crate::worker::objects::client::{self, ApplyRequest, ApplyResponse, CheckedEvent};

/// A batch from the snippet.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Batch<'a> {
    site_key: String,
    visitor_id: String,
    #[serde(default)]
    consent: Option<Consent>,
    #[serde(borrow)]
    events: Vec<&'a RawValue>,
}

/// Consent flags sent by the snippet.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Consent {
    #[serde(default)]
    crm: bool,
    /// The visitor allowed analytics (the tracker sends nothing otherwise; an older tracker that
    /// does not say so is not logged).
    #[serde(default)]
    analytics: bool,
}

/// `POST /v1/events` answer.
#[derive(Debug, Serialize)]
struct EventsResponse {
    #[serde(flatten)]
    applied: ApplyResponse,
    rejected: Vec<Rejected>,
}

fn invalid_visitor(e: crate::event::EventError) -> ApiError {
    ApiError::new(400, ErrorCode::InvalidField, e.to_string())
}

/// `POST /v1/events`.
pub async fn post_events(req: &mut Request, env: &Env, cfg: &Config) -> ApiResult<Response> {
    check_origin(req, &cfg.allowed_origins)?;
    check_json_content_type(req)?;
    let gpc = req
        .headers()
        .get("sec-gpc")?
        .is_some_and(|v| v.trim() == "1");
    let text = body_text(req).await?;
    let batch: Batch = serde_json::from_str(&text).map_err(bad_json)?;
    cfg.check_site_key(&batch.site_key)?;
    check_visitor_id(&batch.visitor_id).map_err(invalid_visitor)?;
    batch::check_len(
        batch.events.len(),
        MAX_BATCH_EVENTS,
        "events",
        "batch",
        ErrorCode::InvalidEvent,
    )?;
    let mut verified_lead = None;
    let mut verified_account = None;
    let (events, rejected) = batch::partition(&batch.events, |raw| {
        let checked = CheckedEvent::parse(raw.get()).map_err(|e| (e.code(), e.to_string()))?;
        let e = &checked.event;
        if e.visitor_id != batch.visitor_id {
            return Err((
                ErrorCode::InvalidField,
                "field `visitor_id`: differs from the batch's visitor_id".into(),
            ));
        }
        // A signed identify proves its lead; a wrong signature refuses the event (it would
        // otherwise pass as a claim and hide the site's misconfiguration).
        if let (EventType::Identify, Some(lead), Some(sig)) =
            (e.kind, &e.lead_id, &e.lead_signature)
        {
            cfg.verify_lead(lead, sig)
                .map_err(|e| (e.code, e.message))?;
            verified_lead = Some(lead.clone());
        }
        // A page's claim of a company is no proof: a group needs the backend's signature.
        if let (EventType::Group, Some(account)) = (e.kind, &e.account_id) {
            let Some(sig) = &e.account_signature else {
                return Err((
                    ErrorCode::InvalidSignature,
                    "a group from a page needs `account_signature` (the site backend's HMAC of `account:<account_id>`)".into(),
                ));
            };
            cfg.verify_account(account, sig)
                .map_err(|e| (e.code, e.message))?;
            verified_account = Some(account.clone());
        }
        Ok(checked)
    });
    if events.is_empty() {
        return Err(batch::every_item_invalid(
            ErrorCode::InvalidEvent,
            "event",
            &rejected,
        ));
    }
    let consent = batch.consent.unwrap_or_default();
    let started = now_ms();
    let applied = client::apply(
        env,
        &ApplyRequest {
            visitor_id: batch.visitor_id.clone(),
            crm: Some(consent.crm && !gpc),
            events,
            now: started,
            verified_lead,
            analytics: Some(consent.analytics && !gpc),
            import: false,
            verified_account,
        },
    )
    .await?;
    let mut r = Response::from_json(&EventsResponse { applied, rejected })?;
    r.headers_mut()
        .set("server-timing", &format!("do;dur={}", now_ms() - started))?;
    Ok(r)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Identify {
    #[serde(default)]
    site_key: Option<String>,
    visitor_id: String,
    lead_id: String,
    /// The site backend's signature of `lead_id` (see [`crate::identity`]).
    #[serde(default)]
    lead_signature: Option<String>,
    #[serde(default)]
    traits: Option<serde_json::Map<String, serde_json::Value>>,
}

/// `POST /v1/identify`: ties a visitor to a lead. Verified (a good `lead_signature`, or a bearer
/// caller): the visitor joins the lead and merges its other devices. Otherwise a claim: the
/// visitor is tagged with the lead id and traits, and nothing of any other visitor is read or
/// changed.
pub async fn post_identify(req: &mut Request, env: &Env, cfg: &Config) -> ApiResult<Response> {
    check_json_content_type(req)?;
    let text = body_text(req).await?;
    let body: Identify = serde_json::from_str(&text).map_err(bad_json)?;
    let trusted_server = match &body.site_key {
        Some(k) => {
            check_origin(req, &cfg.allowed_origins)?;
            cfg.check_site_key(k)?;
            false
        }
        None => {
            bearer(req, cfg.api_token.as_deref())?;
            true
        }
    };
    check_visitor_id(&body.visitor_id).map_err(invalid_visitor)?;
    if let Some(sig) = &body.lead_signature {
        cfg.verify_lead(&body.lead_id, sig)?;
    }
    let verified = trusted_server || body.lead_signature.is_some();
    let now = now_ms();
    // An identify event through the core's own validation (lead id and trait limits).
    let mut ev = serde_json::json!({
        "id": format!("identify-{}", crate::webhook::webhook_id(&body.lead_id, now as u64)),
        "type": "identify",
        "ts": now,
        "visitor_id": body.visitor_id,
        "lead_id": body.lead_id,
    });
    if let Some(t) = body.traits {
        ev["traits"] = serde_json::Value::Object(t);
    }
    let event = CheckedEvent::parse(&ev.to_string())
        .map_err(|e| ApiError::new(400, e.code(), e.to_string()))?;
    let applied = client::apply(
        env,
        &ApplyRequest {
            visitor_id: body.visitor_id.clone(),
            crm: None,
            events: vec![event],
            now,
            verified_lead: verified.then(|| body.lead_id.clone()),
            analytics: None,
            import: false,
            verified_account: None,
        },
    )
    .await?;
    json(&serde_json::json!({"score": applied.score, "verified": verified}))
}
