//! From a visitor object's score to CRM writes on the queue: only a **verified** lead with CRM
//! consent is written (a claimed lead id could otherwise write a score onto anyone's record), only
//! when what a record shows would change (score, tier, sub-scores, reasons, model), and to each
//! destination whose record ids the lead id can be; an account's score to the destinations that
//! write accounts, when what its company shows changes. A lead entering hot, or its score spiking,
//! is also a task or note where a destination's `alerts` say so ([`crate::crm::activities`]).

use serde::{Deserialize, Serialize};
use worker::{Env, Error, Result};

use super::super::bindings::CRM_WRITES;
use super::super::outbox::Delivery;
use super::destinations;
use crate::account::AccountScore;
use crate::crm::activities::{Activity, Alert};
use crate::crm::config::Destination;
use crate::crm::fields::{account_reasons_text, reasons_text};
use crate::crm::{RecordKey, Write};
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
    /// The score last written (a hot alert says what it was).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score: Option<u8>,
}

/// A CRM-writes queue message: one record's values, or one activity, for one destination.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CrmMessage {
    /// `hubspot` or `salesforce`.
    pub destination: String,
    /// What to write.
    #[serde(flatten)]
    pub item: CrmItem,
}

/// What a message carries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CrmItem {
    /// A record's values.
    Write(Write),
    /// A task or note to create.
    Activity(Activity),
}

impl CrmItem {
    fn record(&self) -> &RecordKey {
        match self {
            CrmItem::Write(w) => &w.record,
            CrmItem::Activity(a) => &a.record,
        }
    }

    /// The queue message's id: one per record and score time (and alert).
    fn id(&self, dest: &str) -> String {
        match self {
            CrmItem::Write(w) => format!(
                "crm_{dest}_{}_{}_{}",
                w.record.object.as_str(),
                w.record.id,
                w.scored_at
            ),
            CrmItem::Activity(a) => format!("crm_{dest}_{}", a.id),
        }
    }
}

/// What a record shows, as one number: 53 bits, so that storage (JavaScript numbers) keeps it
/// exactly.
fn digest(shown: &str) -> u64 {
    (fnv1a64(shown) & ((1 << 53) - 1)).max(1)
}

/// Queues the score's writes when the lead is verified and what its records show changed (a new
/// score, tier, sub-score, reason or model), and a hot alert's activity on entering hot;
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
    let mut data = ScoreData::of(score, true, &SentState::default());
    let shown = digest(&format!(
        "{}|{}|{}|{}|{}|{}",
        data.ai_score,
        data.tier,
        data.fit_score,
        data.engagement_score,
        data.model_version,
        reasons_text(&data, crate::crm::fields::MAX_REASONS_CHARS)
    ));
    if shown == mark.digest {
        return Ok(false);
    }
    let previous = mark.tier;
    let entered_hot = score.tier == Tier::Hot && previous != Some(Tier::Hot);
    data.previous_score = mark.score;
    let queued = queue(env, now, |dest| {
        let record = RecordKey {
            object: dest.lead_object,
            id: lead.to_string(),
        };
        let mut items = vec![CrmItem::Write(Write {
            record: record.clone(),
            scored_at: score.score_timestamp,
            fields: dest.spec.values(&data, score.tier, previous, sub_scores),
        })];
        if entered_hot {
            items.extend(alert_activity(dest, Alert::Hot, &data, score.tier, record));
        }
        items
    })
    .await?;
    if queued {
        *mark = Mark {
            tier: Some(score.tier),
            digest: shown,
            score: Some(score.ai_score),
        };
    }
    Ok(queued)
}

/// Queues a score spike's activity (`data.previous_score`: where it rose from) to the destinations
/// whose alerts take spikes, for a verified lead; one whose alerts take hot, when this same score
/// enters hot (`mark`: its record's last write), makes the hot alert's activity alone.
pub async fn spiked(
    env: &Env,
    mark: &Mark,
    data: &ScoreData,
    tier: Tier,
    verified_lead: &str,
    now: i64,
) -> Result<bool> {
    let entering_hot = tier == Tier::Hot && mark.tier != Some(Tier::Hot);
    queue(env, now, |dest| {
        let hot_too = dest
            .alerts
            .as_ref()
            .is_some_and(|a| a.on.contains(&Alert::Hot));
        if entering_hot && hot_too {
            return Vec::new();
        }
        let record = RecordKey {
            object: dest.lead_object,
            id: verified_lead.to_string(),
        };
        alert_activity(dest, Alert::Spike, data, tier, record)
            .into_iter()
            .collect()
    })
    .await
}

fn alert_activity(
    dest: &Destination,
    alert: Alert,
    data: &ScoreData,
    tier: Tier,
    record: RecordKey,
) -> Option<CrmItem> {
    let a = dest.alerts.as_ref()?;
    a.activity(alert, data, tier, record, &dest.spec.routing)
        .map(CrmItem::Activity)
}

/// Queues an account's writes to the destinations that write accounts (`account_object`) when
/// what its record shows changed. The account is a verified group's: its id is the CRM's.
pub async fn account_changed(
    env: &Env,
    mark: &mut Mark,
    account: &AccountScore,
    now: i64,
) -> Result<bool> {
    let shown = digest(&format!(
        "{}|{}|{}",
        account.ai_score,
        account.tier.as_str(),
        account_reasons_text(account, crate::crm::fields::MAX_REASONS_CHARS)
    ));
    if shown == mark.digest {
        return Ok(false);
    }
    let previous = mark.tier;
    let queued = queue(env, now, |dest| {
        dest.account_object
            .map(|object| {
                CrmItem::Write(Write {
                    record: RecordKey {
                        object,
                        id: account.account_id.clone(),
                    },
                    scored_at: account.score_timestamp,
                    fields: dest.spec.account_values(account, previous),
                })
            })
            .into_iter()
            .collect()
    })
    .await?;
    if queued {
        *mark = Mark {
            tier: Some(account.tier),
            digest: shown,
            score: Some(account.ai_score),
        };
    }
    Ok(queued)
}

/// Sends each destination's items (`items_for`) whose record id is one of that CRM's ids; whether
/// anything was sent.
async fn queue(
    env: &Env,
    now: i64,
    items_for: impl Fn(&Destination) -> Vec<CrmItem>,
) -> Result<bool> {
    let Ok(dests) = destinations(env) else {
        return Ok(false);
    };
    let mut messages = Vec::new();
    for dest in &dests {
        for item in items_for(dest) {
            if dest.id_problem(&item.record().id).is_some() {
                continue; // not one of this CRM's ids (known by another system's id)
            }
            let name = dest.crm.as_str();
            let id = item.id(name);
            let msg = CrmMessage {
                destination: name.to_string(),
                item,
            };
            messages.push(Delivery {
                id,
                body: serde_json::to_string(&msg).map_err(|e| Error::RustError(e.to_string()))?,
                enqueued: now,
            });
        }
    }
    if messages.is_empty() {
        return Ok(false);
    }
    env.queue(CRM_WRITES)?.send_batch(messages).await?;
    Ok(true)
}
