//! Alerts for sales as CRM activities: a lead entering hot, or its score spiking, becomes a task
//! (or a timeline note) on its record, for its owner — where a destination is configured so
//! (`"alerts": {"on": ["hot", "spike"], "as": "task"}`).
//!
//! An activity is created, not updated, so writing it twice is not harmless: each has an id made
//! from its alert (the lead and the score time), and the outbox keeps the ids it created, so a
//! queue's redelivery or a replay never makes a second task. (A call that gets no answer may have
//! created it: the one case that can double an activity, as with any create API without an
//! idempotency key.)

use serde::{Deserialize, Serialize};

use super::coalesce::{retry_wait, RetryClock, Settled};
use super::fields::reasons_text;
use super::routing::Routing;
use super::{CrmError, Outcome, RecordKey};
use crate::calendar::iso_utc;
use crate::score::Tier;
use crate::webhook::ScoreData;

/// What makes an activity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Alert {
    /// The lead entered hot (the tier last written to its record was not hot).
    Hot,
    /// The score rose by `SPIKE_POINTS` within `SPIKE_WITHIN` (`lead.score_spiked`).
    Spike,
}

impl Alert {
    /// Its name in configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            Alert::Hot => "hot",
            Alert::Spike => "spike",
        }
    }
}

/// What is created.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActivityKind {
    /// A task due by the tier's SLA (HubSpot task, Salesforce Task).
    #[default]
    Task,
    /// A note on the record's timeline (HubSpot note, Salesforce Note).
    Note,
}

impl ActivityKind {
    /// Its name in configuration and dead letters.
    pub fn as_str(self) -> &'static str {
        match self {
            ActivityKind::Task => "task",
            ActivityKind::Note => "note",
        }
    }
}

/// A destination's alerts (`"alerts"` in `CRM_DESTINATIONS`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Alerts {
    /// The alerts that make an activity.
    pub on: Vec<Alert>,
    /// A task or a note.
    #[serde(default, rename = "as")]
    pub kind: ActivityKind,
    /// The CRM user the activity is assigned to (HubSpot owner id, Salesforce User id); none: the
    /// CRM's default (HubSpot: unassigned, Salesforce: the integration user).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner_id: Option<String>,
}

/// Longest subject (Salesforce's Task.Subject holds 255, Note.Title 80).
pub const MAX_SUBJECT_CHARS: usize = 80;
/// Longest body (Salesforce's Task.Description and Note.Body hold 32,000).
pub const MAX_BODY_CHARS: usize = 32_000;

/// One activity to create.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Activity {
    /// One per alert (`hot_<lead>_<score time>`, `spike_<lead>_<score time>`): the outbox creates
    /// an id once.
    pub id: String,
    /// Why.
    pub alert: Alert,
    /// A task or a note.
    pub kind: ActivityKind,
    /// The record it is on.
    pub record: RecordKey,
    /// One line: `Hot lead: score 87 (was 55)`.
    pub subject: String,
    /// The reasons, the model and the time.
    pub body: String,
    /// When a task is due (ms): the tier's SLA from the score time, or the score time.
    pub due_at: i64,
    /// The score time (ms): a note's time on the timeline.
    pub at: i64,
    /// Assigned to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner_id: Option<String>,
}

impl Alerts {
    /// Checks the configuration; `owner_rule` says why an id cannot be one of the CRM's users.
    pub fn validate(&self, owner_rule: impl Fn(&str) -> Option<String>) -> Result<(), CrmError> {
        if self.on.is_empty() {
            return Err(CrmError::Config(
                "alerts.on: name at least one alert (\"hot\", \"spike\")".into(),
            ));
        }
        if let Some(why) = self.owner_id.as_deref().and_then(owner_rule) {
            return Err(CrmError::Config(format!("alerts.owner_id: {why}")));
        }
        Ok(())
    }

    /// The activity for `alert` on `record` from `score` (its tier `tier`), if this destination
    /// makes one for it.
    pub fn activity(
        &self,
        alert: Alert,
        score: &ScoreData,
        tier: Tier,
        record: RecordKey,
        routing: &Routing,
    ) -> Option<Activity> {
        if !self.on.contains(&alert) {
            return None;
        }
        let at = score.score_timestamp;
        let subject = match (alert, score.previous_score) {
            (Alert::Hot, Some(p)) => format!("Hot lead: score {} (was {p})", score.ai_score),
            (Alert::Hot, None) => format!("Hot lead: score {}", score.ai_score),
            (Alert::Spike, Some(p)) => format!("Score spike: {p} → {}", score.ai_score),
            (Alert::Spike, None) => format!("Score spike: {}", score.ai_score),
        };
        let reasons = reasons_text(score, MAX_BODY_CHARS - 200);
        let body = format!(
            "{reasons}\n\nleadscore {} ({}), model {}, scored {}.",
            score.ai_score,
            tier.as_str(),
            score.model_version,
            iso_utc(at)
        );
        let due_at = routing
            .on_entering(tier, None, at)
            .and_then(|a| a.due_at)
            .unwrap_or(at);
        Some(Activity {
            id: format!("{}_{}_{at}", alert.as_str(), record.id),
            alert,
            kind: self.kind,
            record,
            subject: subject.chars().take(MAX_SUBJECT_CHARS).collect(),
            body: body.chars().take(MAX_BODY_CHARS).collect(),
            due_at,
            at,
            owner_id: self.owner_id.clone(),
        })
    }
}

/// An activity waiting in the outbox.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PendingActivity {
    /// What to create.
    pub activity: Activity,
    /// Not sent before this time (ms): a retry's wait.
    pub not_before: i64,
    /// When the first failed attempt was (ms), if one failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failing_since: Option<i64>,
    /// Failed attempts so far.
    #[serde(default)]
    pub attempts: u32,
}

impl PendingActivity {
    /// Waits for its first send from `now`.
    pub fn new(activity: Activity, now: i64) -> Self {
        PendingActivity {
            activity,
            not_before: now,
            failing_since: None,
            attempts: 0,
        }
    }

    /// Records what became of a send at `now`: created, retried on the webhooks' schedule, or
    /// given up (a dead letter).
    pub fn settle(&mut self, outcome: &Outcome, now: i64, clock: RetryClock) -> Settled {
        match outcome {
            Outcome::Written { .. } => Settled::Written,
            Outcome::Retry { after_ms, reason } => match retry_wait(
                &mut self.failing_since,
                &mut self.attempts,
                *after_ms,
                reason,
                now,
                clock,
            ) {
                Ok(at) => {
                    self.not_before = at;
                    Settled::Retry(at)
                }
                Err(why) => Settled::DeadLetter(why),
            },
            Outcome::Gone { reason } | Outcome::Refused { reason } => {
                Settled::DeadLetter(reason.clone())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crm::CrmObject;

    fn score(previous: Option<u8>) -> ScoreData {
        ScoreData {
            lead_id: Some("5001".into()),
            visitor_id: "v".into(),
            ai_score: 87,
            tier: "hot".into(),
            score_timestamp: 1_796_591_663_786,
            model_version: "m-1".into(),
            arm: None,
            key_factors: Vec::new(),
            fit_score: 40,
            engagement_score: 71,
            score_confidence: 0.9,
            previous_score: previous,
            previous_tier: None,
            verified: true,
        }
    }

    fn record() -> RecordKey {
        RecordKey {
            object: CrmObject::Contact,
            id: "5001".into(),
        }
    }

    #[test]
    fn an_alert_makes_one_activity_due_by_its_sla() {
        let alerts = Alerts {
            on: vec![Alert::Hot],
            kind: ActivityKind::Task,
            owner_id: Some("64492917".into()),
        };
        let a = alerts
            .activity(
                Alert::Hot,
                &score(Some(55)),
                Tier::Hot,
                record(),
                &Routing::default(),
            )
            .unwrap();
        assert_eq!(a.subject, "Hot lead: score 87 (was 55)");
        assert_eq!(a.id, "hot_5001_1796591663786");
        assert_eq!(a.due_at - a.at, 4 * 3_600_000, "hot's SLA: 4 h");
        assert!(a
            .body
            .ends_with("leadscore 87 (hot), model m-1, scored 2026-12-06T21:14:23.786Z."));
        assert!(alerts
            .activity(
                Alert::Spike,
                &score(None),
                Tier::Hot,
                record(),
                &Routing::default()
            )
            .is_none());
        assert!(Alerts {
            on: Vec::new(),
            kind: ActivityKind::Note,
            owner_id: None
        }
        .validate(|_| None)
        .is_err());
    }

    #[test]
    fn a_failing_activity_is_retried_then_given_up() {
        let a = Alerts {
            on: vec![Alert::Spike],
            kind: ActivityKind::Note,
            owner_id: None,
        }
        .activity(
            Alert::Spike,
            &score(Some(40)),
            Tier::Hot,
            record(),
            &Routing::default(),
        )
        .unwrap();
        assert_eq!(a.subject, "Score spike: 40 → 87");
        let mut p = PendingActivity::new(a, 0);
        let clock = RetryClock::default();
        let down = Outcome::Retry {
            after_ms: None,
            reason: "503".into(),
        };
        assert!(matches!(p.settle(&down, 0, clock), Settled::Retry(t) if t >= 5_000));
        let end = clock.give_up_after_ms();
        assert!(matches!(
            p.settle(&down, end, clock),
            Settled::DeadLetter(_)
        ));
        let refused = Outcome::Refused {
            reason: "no such owner".into(),
        };
        assert_eq!(
            p.settle(&refused, end, clock),
            Settled::DeadLetter("no such owner".into())
        );
    }
}
