//! From a visitor object's score to CRM writes on the queue: only a **verified** lead with CRM
//! consent is written (a claimed lead id could otherwise write a score onto anyone's record), only
//! when what a record shows would change (score, tier, sub-scores, reasons, model), and to each
//! destination whose record ids the lead id can be.

use serde::{Deserialize, Serialize};
use worker::{Env, Error, Result};

use super::super::bindings::CRM_WRITES;
use super::super::outbox::Delivery;
use super::destinations;
use crate::crm::Write;
use crate::crm::{fields::reasons_text, RecordKey};
use crate::hash::fnv1a64;
use crate::score::{Score, Tier};
use crate::webhook::{ScoreData, SentState};

/// What a visitor object remembers of its last CRM write.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Mark {
    /// The tier last written (routing is set on entering a tier).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tier: Option<Tier>,
    /// A digest of the values last written (0: none yet; < 2^53).
    #[serde(default)]
    pub digest: u64,
}

/// A CRM-writes queue message: one record's values for one destination.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CrmMessage {
    /// `hubspot` or `salesforce`.
    pub destination: String,
    /// The values.
    pub write: Write,
}

/// What a record shows, as one number: a new score, tier, sub-score, reason or model changes it.
/// 53 bits, so that storage (JavaScript numbers) keeps it exactly.
fn digest(d: &ScoreData) -> u64 {
    let shown = format!(
        "{}|{}|{}|{}|{}|{}",
        d.ai_score,
        d.tier,
        d.fit_score,
        d.engagement_score,
        d.model_version,
        reasons_text(d, crate::crm::fields::MAX_REASONS_CHARS)
    );
    (fnv1a64(&shown) & ((1 << 53) - 1)).max(1)
}

/// Queues the score's writes when the lead is verified and what its records show changed;
/// `sub_scores`: whether the card has fit features. Returns whether anything was queued. A
/// configuration error writes nothing (`GET /v1/crm` says why).
pub async fn score_changed(
    env: &Env,
    mark: &mut Mark,
    score: &Score,
    verified_lead: Option<&str>,
    sub_scores: bool,
    now: i64,
) -> Result<bool> {
    let Some(lead) = verified_lead.filter(|l| score.lead_id.as_deref() == Some(*l)) else {
        return Ok(false);
    };
    let Ok(dests) = destinations(env) else {
        return Ok(false);
    };
    if dests.is_empty() {
        return Ok(false);
    }
    let data = ScoreData::of(score, true, &SentState::default());
    let d = digest(&data);
    if d == mark.digest {
        return Ok(false);
    }
    let mut messages = Vec::new();
    for dest in &dests {
        if dest.id_problem(lead).is_some() {
            continue; // not one of this CRM's ids (a lead known by another system's id)
        }
        let fields = dest.spec.values(&data, score.tier, mark.tier, sub_scores);
        let write = Write {
            record: RecordKey {
                object: dest.lead_object,
                id: lead.to_string(),
            },
            scored_at: score.score_timestamp,
            fields,
        };
        let msg = CrmMessage {
            destination: dest.crm.as_str().to_string(),
            write,
        };
        messages.push(Delivery {
            id: format!("crm_{}_{lead}_{}", dest.crm.as_str(), score.score_timestamp),
            body: serde_json::to_string(&msg).map_err(|e| Error::RustError(e.to_string()))?,
            enqueued: now,
        });
    }
    if messages.is_empty() {
        return Ok(false);
    }
    env.queue(CRM_WRITES)?.send_batch(messages).await?;
    mark.tier = Some(score.tier);
    mark.digest = d;
    Ok(true)
}
