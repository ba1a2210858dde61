//! `POST /v1/import` (bearer, server to server): history. Events of any number of visitors, each
//! applied at its own timestamp — not clamped to the receive time, as analytics vendors' import
//! APIs take backfills — with the same validation and de-duplication as live events; logged like
//! them (source `import`), never forwarded to the CRM as a live score change. This is how a
//! customer loads history, and how a replay rebuilds the logs.
//!
//! Each visitor's events go to its object in the batch's order; the visitors are processed
//! [`CONCURRENCY`] at a time. An event older than what a visitor's state already holds beyond its
//! de-duplication window counts as stale (import history before live traffic, or into new visitor
//! ids). If any visitor's object fails, the answer is an error and the whole batch may be sent
//! again: what was applied counts as duplicates the second time.

use std::collections::HashMap;

use futures_util::future::join_all;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use worker::*;

use crate::error_code::ErrorCode;
use crate::event::check_visitor_id;
use crate::event::limits::{MAX_IMPORT_BODY_BYTES, MAX_IMPORT_EVENTS};
use crate::worker::batch::{self, Rejected};
use crate::worker::body::body_text_up_to;
use crate::worker::http::{bad_json, check_json_content_type, now_ms, ApiError, ApiResult};
use crate::worker::objects::client::CheckedEvent;
use crate::worker::objects::client::{self, ApplyRequest};

/// Visitor objects called at once.
pub const CONCURRENCY: usize = 16;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ImportBatch<'a> {
    #[serde(borrow)]
    events: Vec<&'a RawValue>,
}

/// `POST /v1/import` answer.
#[derive(Debug, Default, Serialize)]
struct ImportResponse {
    visitors: usize,
    accepted: u32,
    duplicates: u32,
    stale: u32,
    rejected: Vec<Rejected>,
}

/// The route (the caller checked the bearer token).
pub async fn import(req: &mut Request, env: &Env) -> ApiResult<Response> {
    check_json_content_type(req)?;
    let text = body_text_up_to(req, MAX_IMPORT_BODY_BYTES).await?;
    let batch: ImportBatch = serde_json::from_str(&text).map_err(bad_json)?;
    batch::check_len(
        batch.events.len(),
        MAX_IMPORT_EVENTS,
        "events",
        "import batch",
        ErrorCode::InvalidEvent,
    )?;
    let (events, rejected) = batch::partition(&batch.events, |raw| {
        let e = CheckedEvent::parse(raw.get()).map_err(|e| (e.code(), e.to_string()))?;
        // A lead's own stream is written by `/v1/leads/events` only (it opens with the lead).
        check_visitor_id(&e.event.visitor_id).map_err(|e| (e.code(), e.to_string()))?;
        Ok(e)
    });
    let mut out = ImportResponse {
        rejected,
        ..ImportResponse::default()
    };
    // Each visitor's events in the batch's order, the visitors in order of first appearance.
    let mut visitors: Vec<(String, Vec<CheckedEvent>)> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    for e in events {
        let v = &e.event.visitor_id;
        let k = *index.entry(v.clone()).or_insert_with(|| {
            visitors.push((v.clone(), Vec::new()));
            visitors.len() - 1
        });
        visitors[k].1.push(e);
    }
    if visitors.is_empty() {
        return Err(batch::every_item_invalid(
            ErrorCode::InvalidEvent,
            "event",
            &out.rejected,
        ));
    }
    let now = now_ms();
    out.visitors = visitors.len();
    let mut failed: Vec<(String, ApiError)> = Vec::new();
    for chunk in visitors.chunks(CONCURRENCY) {
        let calls = chunk.iter().map(|(visitor_id, events)| async move {
            let req = ApplyRequest {
                visitor_id: visitor_id.clone(),
                crm: None,
                events: events.clone(),
                now,
                verified_lead: None,
                analytics: None,
                import: true,
                // A bearer caller's group proves its account.
                verified_account: ApplyRequest::group_account(events),
            };
            (visitor_id, client::apply(env, &req).await)
        });
        for (visitor_id, result) in join_all(calls).await {
            match result {
                Ok(r) => {
                    out.accepted += r.accepted;
                    out.duplicates += r.duplicates;
                    out.stale += r.stale;
                }
                Err(e) => failed.push((visitor_id.clone(), e)),
            }
        }
    }
    if let Some((v, e)) = failed.first() {
        return Err(ApiError::new(
            503,
            ErrorCode::Internal,
            format!(
                "{} of {} visitors failed (first: {v}: {}); the import is idempotent: send the batch again",
                failed.len(),
                out.visitors,
                e.message
            ),
        ));
    }
    Ok(Response::from_json(&out)?)
}
