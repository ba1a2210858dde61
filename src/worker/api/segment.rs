//! `POST /v1/segment`: a Segment or RudderStack stream, as their webhook destinations send it — one
//! Spec message, a JSON array of them, or `{"batch": […]}` — mapped to our events in the core
//! ([`crate::event::segment`]) and applied as live events with the same validation, consent and
//! limits as the snippet's.
//!
//! Authentication is what those destinations can do: Segment's Webhooks (Actions) signs the body
//! with a shared secret (`X-Signature`: hex HMAC-SHA1, `SEGMENT_SHARED_SECRET`), and both can add
//! a header (`Authorization: Bearer <API_TOKEN>`). A message's `anonymousId` is its visitor; a
//! message with only `userId` is about that lead and goes where `POST /v1/leads/events` sends a
//! lead's events. An `identify` with `userId` from this authenticated source proves its lead.
//! `messageId` is the event id: a message delivered twice counts once.

use std::collections::HashMap;

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;
use sha1::Sha1;
use worker::{Env, Request, Response};

use crate::error_code::ErrorCode;
use crate::event::limits::{MAX_IMPORT_BODY_BYTES, MAX_IMPORT_EVENTS};
use crate::event::segment::{self, Mapped};
use crate::event::{check_visitor_id, EventType};
use crate::worker::api::leads;
use crate::worker::batch::{self, Rejected};
use crate::worker::body::body_text_up_to;
use crate::worker::env::Config;
use crate::worker::http::{bad_json, bearer, check_json_content_type, now_ms, ApiError, ApiResult};
use crate::worker::objects::client::{self, ApplyRequest, CheckedEvent};

/// The body: one message, an array, or Segment's `{"batch": […]}`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Body {
    Batch { batch: Vec<Json> },
    Many(Vec<Json>),
    One(Json),
}

/// `POST /v1/segment` answer.
#[derive(Debug, Default, Serialize)]
struct SegmentResponse {
    accepted: u32,
    duplicates: u32,
    stale: u32,
    /// Visitors (`anonymousId`) and leads (`userId` only) the messages went to.
    visitors: usize,
    leads: usize,
    /// Properties and traits left out (nested objects, arrays, nulls, traits too long).
    dropped_properties: u32,
    rejected: Vec<Rejected>,
}

/// The caller is Segment (a good `X-Signature`) or holds the API token.
fn authenticate(req: &Request, text: &str, cfg: &Config, env: &Env) -> ApiResult<()> {
    let sig = req.headers().get("x-signature")?;
    let secret = crate::worker::env::var(env, "SEGMENT_SHARED_SECRET");
    match (sig, secret) {
        (Some(sig), Some(secret)) => {
            let mut mac = Hmac::<Sha1>::new_from_slice(secret.as_bytes())
                .map_err(|e| ApiError::internal(e.to_string()))?;
            mac.update(text.as_bytes());
            // verify_slice compares in constant time.
            match crate::hex::decode(sig.trim()).map(|s| mac.verify_slice(&s)) {
                Some(Ok(())) => Ok(()),
                _ => Err(ApiError::new(
                    401,
                    ErrorCode::InvalidSignature,
                    "X-Signature is not the hex HMAC-SHA1 of the body with SEGMENT_SHARED_SECRET",
                )),
            }
        }
        _ => bearer(req, cfg.api_token.as_deref()),
    }
}

/// The route.
pub async fn post(req: &mut Request, env: &Env, cfg: &Config) -> ApiResult<Response> {
    check_json_content_type(req)?;
    let text = body_text_up_to(req, MAX_IMPORT_BODY_BYTES).await?;
    authenticate(req, &text, cfg, env)?;
    let messages = match serde_json::from_str::<Body>(&text).map_err(bad_json)? {
        Body::Batch { batch } | Body::Many(batch) => batch,
        Body::One(m) => vec![m],
    };
    batch::check_len(
        messages.len(),
        MAX_IMPORT_EVENTS,
        "messages",
        "request",
        ErrorCode::InvalidEvent,
    )?;
    let (mapped, rejected) = batch::partition(&messages, |m| {
        let m = segment::map(m).map_err(|e| (e.code(), e.to_string()))?;
        if m.lead_only.is_none() {
            check_visitor_id(&m.event.visitor_id)
                .map_err(|e| (e.code(), format!("anonymousId: {e}")))?;
        }
        Ok(m)
    });
    let mut out = SegmentResponse {
        rejected,
        ..SegmentResponse::default()
    };
    if mapped.is_empty() {
        return Err(batch::every_item_invalid(
            ErrorCode::InvalidEvent,
            "message",
            &out.rejected,
        ));
    }
    // Each visitor's (or lead's) messages in the request's order.
    let mut visitors: Vec<(String, Vec<Mapped>)> = Vec::new();
    let mut leads_of: Vec<(String, Vec<Mapped>)> = Vec::new();
    let (mut vi, mut li): (HashMap<String, usize>, HashMap<String, usize>) = Default::default();
    for m in mapped {
        out.dropped_properties += m.dropped;
        let (list, index, key) = match &m.lead_only {
            Some(l) => (&mut leads_of, &mut li, l.clone()),
            None => (&mut visitors, &mut vi, m.event.visitor_id.clone()),
        };
        let k = *index.entry(key.clone()).or_insert_with(|| {
            list.push((key, Vec::new()));
            list.len() - 1
        });
        list[k].1.push(m);
    }
    out.visitors = visitors.len();
    out.leads = leads_of.len();
    let now = now_ms();
    for (visitor_id, msgs) in visitors {
        // The latest message that says so decides consent; a stream that says nothing was sent
        // with the site's consent already applied (Segment forwards only what it may).
        let consent = msgs.iter().rev().find_map(|m| m.consent);
        let verified_lead = msgs
            .iter()
            .rev()
            .find(|m| m.event.kind == EventType::Identify)
            .and_then(|m| m.event.lead_id.clone());
        let events = msgs
            .iter()
            .map(|m| {
                let text = serde_json::to_string(&m.event).map_err(ApiError::internal)?;
                CheckedEvent::parse(&text).map_err(|e| ApiError::new(400, e.code(), e.to_string()))
            })
            .collect::<ApiResult<Vec<_>>>()?;
        let verified_account = ApplyRequest::group_account(&events);
        let r = client::apply(
            env,
            &ApplyRequest {
                visitor_id,
                crm: Some(consent.is_none_or(|c| c.crm)),
                events,
                now,
                verified_lead,
                analytics: Some(consent.is_none_or(|c| c.analytics)),
                import: false,
                verified_account,
            },
        )
        .await?;
        out.accepted += r.accepted;
        out.duplicates += r.duplicates;
        out.stale += r.stale;
    }
    for (lead, msgs) in leads_of {
        let events = msgs
            .into_iter()
            .map(|m| leads::without_visitor(&m.event))
            .collect::<ApiResult<Vec<_>>>()?;
        let (_, r) = leads::apply_for_lead(env, &lead, events, false).await?;
        out.accepted += r.accepted;
        out.duplicates += r.duplicates;
        out.stale += r.stale;
    }
    Ok(Response::from_json(&out)?)
}
