//! `POST /v1/outcomes` (bearer): CRM outcomes (`{"outcomes": [{id, lead_id | visitor_id, type, ts,
//! value?}, …]}`, see [`crate::outcome`]). Each valid outcome goes to its lead's object
//! or its visitor's, which keeps it (idempotent by `id`) and logs it; invalid ones
//! are listed in `rejected` with their index, and the rest is accepted.

use futures_util::future::join_all;
use serde::{Deserialize, Serialize};
use worker::*;

use crate::error_code::ErrorCode;
use crate::event::limits::MAX_OUTCOMES_BODY_BYTES;
use crate::log::OutcomeSource;
use crate::outcome::{Outcome, Subject, MAX_BATCH_OUTCOMES};
use crate::worker::batch::{self, Rejected};
use crate::worker::body::body_text_up_to;
use crate::worker::env::var;
use crate::worker::http::{bad_json, check_json_content_type, now_ms, ApiError, ApiResult};
use crate::worker::objects::client::{self, DealOutcome, DealUpdate, OutcomesRequest};

/// Objects called at once.
const CONCURRENCY: usize = 16;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct OutcomesBatch {
    outcomes: Vec<serde_json::Value>,
}

/// The answer.
#[derive(Debug, Default, Serialize)]
struct OutcomesAnswer {
    accepted: u32,
    duplicates: u32,
    rejected: Vec<Rejected>,
}

/// Groups outcomes by the object that keeps them and sends each group there.
async fn keep(
    env: &Env,
    outcomes: Vec<Outcome>,
    source: OutcomeSource,
    answer: &mut OutcomesAnswer,
) -> ApiResult<()> {
    let now = now_ms();
    // One request per object: (lead, visitor) names it.
    let mut groups: Vec<(Option<String>, OutcomesRequest)> = Vec::new();
    for o in outcomes {
        let (lead, visitor) = match o.subject() {
            Subject::Lead(l) => (Some(l.to_string()), None),
            Subject::Visitor(v) => (None, Some(v.to_string())),
        };
        match groups
            .iter_mut()
            .find(|(v, g)| g.lead == lead && *v == visitor)
        {
            Some((_, g)) => g.outcomes.push(o),
            None => groups.push((
                visitor,
                OutcomesRequest {
                    lead,
                    outcomes: vec![o],
                    received_at: now,
                    source,
                },
            )),
        }
    }
    let mut first_error = None;
    for chunk in groups.chunks(CONCURRENCY) {
        for r in join_all(
            chunk
                .iter()
                .map(|(v, g)| client::keep_outcomes(env, v.as_deref(), g)),
        )
        .await
        {
            match r {
                Ok(r) => {
                    answer.accepted += r.accepted;
                    answer.duplicates += r.duplicates;
                }
                Err(e) => first_error = first_error.or(Some(e)),
            }
        }
    }
    match first_error {
        None => Ok(()),
        Some(e) => Err(ApiError::new(
            503,
            ErrorCode::Internal,
            format!(
                "outcomes not all kept ({}); outcomes are idempotent: send the batch again",
                e.message
            ),
        )),
    }
}

/// The route (the caller checked the bearer token).
pub async fn post(req: &mut Request, env: &Env) -> ApiResult<Response> {
    check_json_content_type(req)?;
    let text = body_text_up_to(req, MAX_OUTCOMES_BODY_BYTES).await?;
    let batch: OutcomesBatch = serde_json::from_str(&text).map_err(bad_json)?;
    batch::check_len(
        batch.outcomes.len(),
        MAX_BATCH_OUTCOMES,
        "outcomes",
        "batch",
        ErrorCode::InvalidField,
    )?;
    let (good, rejected) = batch::partition(batch.outcomes, |v| {
        Outcome::from_value(v).map_err(|e| (e.code(), e.to_string()))
    });
    if good.is_empty() {
        return Err(batch::every_item_invalid(
            ErrorCode::InvalidField,
            "outcome",
            &rejected,
        ));
    }
    let mut answer = OutcomesAnswer {
        rejected,
        ..OutcomesAnswer::default()
    };
    keep(env, good, OutcomeSource::Api, &mut answer).await?;
    Ok(Response::from_json(&answer)?)
}

/// `POST /v1/outcomes/hubspot`: HubSpot's webhook subscriptions, signed with the app's client
/// secret (`HUBSPOT_CLIENT_SECRET`; `X-HubSpot-Signature-v3`, stale timestamps refused, see
/// [`crate::outcome::hubspot`]). Stages map to outcome types by `HUBSPOT_STAGE_MAP` (JSON; the
/// documented default otherwise). A contact is the lead whose id is the contact's HubSpot id; a
/// deal's outcomes go to the leads of the contacts associated with it (`deal.associationChange`
/// subscriptions; a contact linked later receives the deal's earlier outcomes). Retries carry the
/// same `eventId`, so they are duplicates. Any error answers non-2xx and HubSpot retries.
pub async fn hubspot(req: &mut Request, env: &Env) -> ApiResult<Response> {
    use crate::outcome::hubspot::{self as hs, EventKind, HubspotObject};
    let unauthorized = |m: String| ApiError::new(401, ErrorCode::InvalidSignature, m);
    let secret = var(env, "HUBSPOT_CLIENT_SECRET")
        .ok_or_else(|| {
            unauthorized("HubSpot outcomes are not configured (no HUBSPOT_CLIENT_SECRET)".into())
        })
        .and_then(|s| hs::ClientSecret::new(&s).map_err(|e| unauthorized(e.to_string())))?;
    let ts = req.headers().get(hs::TIMESTAMP_HEADER)?;
    let sig = req.headers().get(hs::SIGNATURE_HEADER)?;
    let uri = req.url()?.to_string();
    let body = body_text_up_to(req, hs::MAX_HUBSPOT_BODY_BYTES).await?;
    hs::verify_signature_v3(
        &secret,
        "POST",
        &uri,
        body.as_bytes(),
        ts.as_deref(),
        sig.as_deref(),
        now_ms(),
    )
    .map_err(|e| ApiError::new(401, e.code(), e.to_string()))?;
    let events = hs::parse_events(body.as_bytes())
        .map_err(|e| ApiError::new(400, e.code(), e.to_string()))?;
    let map = match var(env, "HUBSPOT_STAGE_MAP") {
        Some(t) => hs::StageMap::from_json(&t)
            .map_err(|e| ApiError::new(500, ErrorCode::InvalidConfig, e.to_string()))?,
        None => hs::StageMap::default(),
    };
    let bad = |e: crate::outcome::OutcomeError| ApiError::new(400, e.code(), e.to_string());
    let mut outcomes = Vec::new();
    let mut ignored = 0u32;
    let deal_outcome = |id: String, kind, ts| DealOutcome { id, kind, ts };
    let for_contact = |contact: &str, o: &DealOutcome| Outcome {
        id: format!("{}:{contact}", o.id),
        lead_id: Some(contact.to_string()),
        visitor_id: None,
        kind: o.kind,
        ts: o.ts,
        value: None,
    };
    for ev in &events {
        let update = match (&ev.kind, hs::to_outcome(ev, &map)) {
            (EventKind::DealContact(link), _) => DealUpdate {
                deal: link.deal_id.clone(),
                link: Some((link.contact_id.clone(), link.removed)),
                outcome: None,
            },
            (_, Some(o)) => match &o.object {
                HubspotObject::Contact(id) => {
                    outcomes.push(o.for_lead(id).map_err(bad)?);
                    continue;
                }
                HubspotObject::Deal(id) => DealUpdate {
                    deal: id.clone(),
                    link: None,
                    outcome: Some(deal_outcome(o.id.clone(), o.kind, o.ts)),
                },
            },
            _ => {
                ignored += 1;
                continue;
            }
        };
        for (contact, o) in client::update_deal(env, &update).await?.due {
            let o = for_contact(&contact, &o);
            o.validate().map_err(bad)?;
            outcomes.push(o);
        }
    }
    let mut answer = OutcomesAnswer::default();
    if !outcomes.is_empty() {
        keep(env, outcomes, OutcomeSource::Hubspot, &mut answer).await?;
    }
    Ok(Response::from_json(&serde_json::json!({
        "events": events.len(),
        "accepted": answer.accepted,
        "duplicates": answer.duplicates,
        "ignored": ignored,
    }))?)
}
