//! `POST /v1/outcomes` (bearer): CRM outcomes (`{"outcomes": [{id, lead_id | visitor_id, type, ts,
//! value?}, …]}`, see [`crate::outcome`]). Each valid outcome goes to its lead's object
//! (`lead:<id>`) or its visitor's, which keeps it (idempotent by `id`) and logs it; invalid ones
//! are listed in `rejected` with their index, and the rest is accepted.

use futures_util::future::join_all;
use serde::{Deserialize, Serialize};
use worker::*;

use super::visitor::{self, OutcomesRequest};
use super::{bad_json, body_text_up_to, now_ms, ApiError, ApiResult, Rejected};
use crate::error_code::ErrorCode;
use crate::event::limits::MAX_OUTCOMES_BODY_BYTES;
use crate::log::OutcomeSource;
use crate::outcome::{Outcome, Subject, MAX_BATCH_OUTCOMES};

/// Objects called at once.
const CONCURRENCY: usize = 16;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct OutcomesBatch {
    outcomes: Vec<serde_json::Value>,
}

/// The answer.
#[derive(Debug, Default, Serialize)]
pub(crate) struct OutcomesAnswer {
    pub(crate) accepted: u32,
    pub(crate) duplicates: u32,
    pub(crate) rejected: Vec<Rejected>,
}

/// Groups outcomes by the object that keeps them and sends each group there.
pub(crate) async fn keep(
    env: &Env,
    outcomes: Vec<Outcome>,
    source: OutcomeSource,
    answer: &mut OutcomesAnswer,
) -> ApiResult<()> {
    let now = now_ms();
    let mut groups: Vec<OutcomesRequest> = Vec::new();
    for o in outcomes {
        let (object, lead) = match o.subject() {
            Subject::Lead(l) => (format!("lead:{l}"), Some(l.to_string())),
            Subject::Visitor(v) => (v.to_string(), None),
        };
        match groups.iter_mut().find(|g| g.object == object) {
            Some(g) => g.outcomes.push(o),
            None => groups.push(OutcomesRequest {
                object,
                lead,
                outcomes: vec![o],
                received_at: now,
                source,
            }),
        }
    }
    let mut first_error = None;
    for chunk in groups.chunks(CONCURRENCY) {
        for r in join_all(chunk.iter().map(|g| visitor::keep_outcomes(env, g))).await {
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
    let text = body_text_up_to(req, MAX_OUTCOMES_BODY_BYTES).await?;
    let batch: OutcomesBatch = serde_json::from_str(&text).map_err(bad_json)?;
    if batch.outcomes.is_empty() {
        return Err(ApiError::new(
            400,
            ErrorCode::InvalidField,
            "the batch has no outcomes",
        ));
    }
    if batch.outcomes.len() > MAX_BATCH_OUTCOMES {
        return Err(ApiError::new(
            400,
            ErrorCode::TooManyEvents,
            format!(
                "{} outcomes; at most {MAX_BATCH_OUTCOMES} per batch",
                batch.outcomes.len()
            ),
        ));
    }
    let mut answer = OutcomesAnswer::default();
    let mut good = Vec::new();
    for (index, v) in batch.outcomes.into_iter().enumerate() {
        match Outcome::from_value(v) {
            Ok(o) => good.push(o),
            Err(e) => answer.rejected.push(Rejected {
                index,
                code: e.code(),
                message: e.to_string(),
            }),
        }
    }
    if good.is_empty() {
        let first = &answer.rejected[0];
        return Err(ApiError::new(
            400,
            ErrorCode::InvalidField,
            format!(
                "every outcome is invalid; outcomes[{}]: {}",
                first.index, first.message
            ),
        ));
    }
    keep(env, good, OutcomeSource::Api, &mut answer).await?;
    Ok(Response::from_json(&answer)?)
}
