//! The CRM outcomes a visitor or lead object remembers: their ids make a re-sent outcome a
//! duplicate in the answer. Every outcome of a request is logged, duplicates too: a log message
//! lost in a crash after the answer (the local queue lives in memory) is written by the re-send,
//! and log readers de-duplicate by [`crate::log::Record::key`].

use serde::{Deserialize, Serialize};
use worker::{Env, Response};

use super::client::{OutcomesRequest, OutcomesResponse};
use super::store::{Kept, Store};
use crate::log::{OutcomeRecord, Record as LogRecord};
use crate::outcome::OutcomeType;
use crate::worker::http::ApiResult;
use crate::worker::logs;

/// Outcomes an object remembers (the outcome log keeps them all).
pub const MAX_KEPT_OUTCOMES: usize = 32;

/// An outcome as its object keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeptOutcome {
    id: String,
    #[serde(rename = "type")]
    kind: OutcomeType,
    ts: i64,
}

/// The latest [`MAX_KEPT_OUTCOMES`] outcomes of one object, oldest first.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct KeptOutcomes(Vec<KeptOutcome>);

impl KeptOutcomes {
    /// Keeps the outcomes not seen before; answers the counts and the log records of every
    /// outcome of the request.
    pub fn keep(&mut self, req: OutcomesRequest) -> (OutcomesResponse, Vec<LogRecord>) {
        let mut answer = OutcomesResponse::default();
        let mut records = Vec::with_capacity(req.outcomes.len());
        for o in req.outcomes {
            if self.0.iter().any(|k| k.id == o.id) {
                answer.duplicates += 1;
            } else {
                answer.accepted += 1;
                self.0.push(KeptOutcome {
                    id: o.id.clone(),
                    kind: o.kind,
                    ts: o.ts,
                });
                if self.0.len() > MAX_KEPT_OUTCOMES {
                    self.0.remove(0);
                }
            }
            records.push(LogRecord::Outcome(OutcomeRecord {
                received_at: req.received_at,
                source: req.source,
                outcome: o,
            }));
        }
        (answer, records)
    }
}

/// Keeps a request's outcomes in an object's record (`kept` picks its [`KeptOutcomes`]): the log
/// first (at least once), then the record, saved when an outcome was new.
pub async fn keep_in<R: Kept>(
    env: &Env,
    store: &Store<R>,
    mut rec: R,
    kept: impl FnOnce(&mut R) -> &mut KeptOutcomes,
    req: OutcomesRequest,
) -> ApiResult<Response> {
    let received_at = req.received_at;
    let (answer, records) = kept(&mut rec).keep(req);
    logs::send(env, records).await?;
    if answer.accepted > 0 {
        rec.touch(received_at);
        store.save(env, &rec).await?;
    }
    Ok(Response::from_json(&answer)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::OutcomeSource;
    use crate::outcome::Outcome;

    fn request(ids: &[&str]) -> OutcomesRequest {
        OutcomesRequest {
            lead: Some("l1".into()),
            outcomes: ids
                .iter()
                .map(|id| Outcome {
                    id: id.to_string(),
                    lead_id: Some("l1".into()),
                    visitor_id: None,
                    kind: OutcomeType::Customer,
                    ts: 1,
                    value: None,
                })
                .collect(),
            received_at: 5,
            source: OutcomeSource::Api,
        }
    }

    #[test]
    fn a_resent_outcome_is_a_duplicate_and_logged_again() {
        let mut kept = KeptOutcomes::default();
        let (a, logged) = kept.keep(request(&["o1", "o2"]));
        assert_eq!((a.accepted, a.duplicates, logged.len()), (2, 0, 2));
        let (a, logged) = kept.keep(request(&["o2", "o3"]));
        assert_eq!((a.accepted, a.duplicates), (1, 1));
        let keys: Vec<String> = logged.iter().map(LogRecord::key).collect();
        assert_eq!(keys, ["o2", "o3"]);
    }

    #[test]
    fn only_the_latest_are_remembered() {
        let mut kept = KeptOutcomes::default();
        let ids: Vec<String> = (0..=MAX_KEPT_OUTCOMES).map(|i| format!("o{i}")).collect();
        let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
        kept.keep(request(&refs));
        assert_eq!(kept.0.len(), MAX_KEPT_OUTCOMES);
        let (a, _) = kept.keep(request(&["o0"]));
        assert_eq!(a.accepted, 1, "the oldest was forgotten");
    }
}
