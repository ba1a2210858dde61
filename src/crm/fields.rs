//! What a CRM record receives from a score, and under which field names.
//!
//! Every value is text: both CRMs take numbers and times as strings, and an empty string clears a
//! field (each CRM module writes "clear" its own way). The reasons are the score's key factors as
//! one readable line, whole reasons only, within the field's length.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::routing::Routing;
use super::CrmError;
use crate::account::AccountScore;
use crate::calendar::iso_utc;
use crate::score::Tier;
use crate::webhook::ScoreData;

/// A value leadscore writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Value {
    /// The 0–100 score.
    Score,
    /// `hot`, `warm` or `cold`.
    Tier,
    /// The fit sub-score (0–100), where the card has fit features.
    Fit,
    /// The engagement sub-score (0–100), where the card has fit features.
    Engagement,
    /// The top reasons as one text.
    Reasons,
    /// The model version that scored.
    ModelVersion,
    /// When the score was computed (ISO 8601 UTC).
    ScoredAt,
    /// The owner tier, set on entering a tier ([`Routing`]).
    OwnerTier,
    /// When the owner must have acted (ISO 8601 UTC; empty: no SLA), set on entering a tier.
    SlaDue,
}

impl Value {
    /// Every value, in the order a setup creates their fields.
    pub const ALL: [Value; 9] = [
        Value::Score,
        Value::Tier,
        Value::Fit,
        Value::Engagement,
        Value::Reasons,
        Value::ModelVersion,
        Value::ScoredAt,
        Value::OwnerTier,
        Value::SlaDue,
    ];

    /// The name configuration uses (`"score"`, `"sla_due"`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Value::Score => "score",
            Value::Tier => "tier",
            Value::Fit => "fit",
            Value::Engagement => "engagement",
            Value::Reasons => "reasons",
            Value::ModelVersion => "model_version",
            Value::ScoredAt => "scored_at",
            Value::OwnerTier => "owner_tier",
            Value::SlaDue => "sla_due",
        }
    }

    /// What the field means, for the CRM's field description and the README.
    pub fn description(self) -> &'static str {
        match self {
            Value::Score => {
                "leadscore: the lead's 0–100 score (calibrated probability of converting × 100)"
            }
            Value::Tier => "leadscore: hot, warm or cold, by the model card's thresholds",
            Value::Fit => "leadscore: the part of the score from who the lead is (0–100)",
            Value::Engagement => "leadscore: the part of the score from what the lead does (0–100)",
            Value::Reasons => "leadscore: the score's top reasons, + raises it, − lowers it",
            Value::ModelVersion => "leadscore: the model version that scored",
            Value::ScoredAt => {
                "leadscore: when the score shown was computed (the last time it changed)"
            }
            Value::OwnerTier => "leadscore: who should work the lead, set when it entered its tier",
            Value::SlaDue => {
                "leadscore: when the owner should have acted, set when it entered its tier"
            }
        }
    }

    /// Whether the value is a number, a time or text (for the fields a setup creates).
    pub fn kind(self) -> Kind {
        match self {
            Value::Score | Value::Fit | Value::Engagement => Kind::Number,
            Value::ScoredAt | Value::SlaDue => Kind::Time,
            Value::Tier | Value::ModelVersion | Value::OwnerTier => Kind::Text,
            Value::Reasons => Kind::LongText,
        }
    }
}

/// A field's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A whole number.
    Number,
    /// A date and time.
    Time,
    /// A short text.
    Text,
    /// A text that may hold several sentences.
    LongText,
}

/// Which CRM field each value goes to; a value not mapped is not written.
pub type FieldMap = BTreeMap<Value, String>;

/// Longest reasons text a configuration may ask for.
pub const MAX_REASONS_CHARS: usize = 65_536;

/// What a destination writes.
#[derive(Debug, Clone, PartialEq)]
pub struct Spec {
    /// CRM field names.
    pub fields: FieldMap,
    /// The reasons field's length (characters).
    pub reasons_max_chars: usize,
    /// Who works the lead and by when.
    pub routing: Routing,
}

impl Spec {
    /// Checks the field map with the CRM's rule for a field name (`name_ok` says why a name is
    /// wrong), the reasons length and the routing.
    pub fn validate(&self, name_rule: impl Fn(&str) -> Option<String>) -> Result<(), CrmError> {
        if self.fields.is_empty() {
            return Err(CrmError::Config("fields: map at least one value".into()));
        }
        let mut seen = BTreeMap::new();
        for (v, name) in &self.fields {
            if let Some(why) = name_rule(name) {
                return Err(CrmError::Config(format!(
                    "fields.{}: {name:?} {why}",
                    v.as_str()
                )));
            }
            if let Some(other) = seen.insert(name.to_ascii_lowercase(), *v) {
                return Err(CrmError::Config(format!(
                    "fields.{} and fields.{} both write {name:?}",
                    other.as_str(),
                    v.as_str()
                )));
            }
        }
        if !(1..=MAX_REASONS_CHARS).contains(&self.reasons_max_chars) {
            return Err(CrmError::Config(format!(
                "reasons_max_chars must be 1–{MAX_REASONS_CHARS}, got {}",
                self.reasons_max_chars
            )));
        }
        self.routing.validate()
    }

    /// A lead's record fields for `score`: `previous_tier` is the tier last written to this record
    /// (routing is set on entering a tier); `sub_scores` whether the card has fit features.
    pub fn values(
        &self,
        score: &ScoreData,
        tier: Tier,
        previous_tier: Option<Tier>,
        sub_scores: bool,
    ) -> BTreeMap<String, String> {
        self.fields_of(
            &Shown {
                score: score.ai_score,
                tier,
                fit: sub_scores.then_some(score.fit_score),
                engagement: sub_scores.then_some(score.engagement_score),
                reasons: reasons_text(score, self.reasons_max_chars),
                model_version: Some(&score.model_version),
                scored_at: score.score_timestamp,
            },
            previous_tier,
        )
    }

    /// An account's record fields (a company): its score, tier, engaged members as the reasons, the
    /// time and, on entering a tier, its routing. An account score is a roll-up of its members'
    /// scores, not a model's: it has no sub-scores and no model version of its own.
    pub fn account_values(
        &self,
        account: &AccountScore,
        previous_tier: Option<Tier>,
    ) -> BTreeMap<String, String> {
        self.fields_of(
            &Shown {
                score: account.ai_score,
                tier: account.tier,
                fit: None,
                engagement: None,
                reasons: account_reasons_text(account, self.reasons_max_chars),
                model_version: None,
                scored_at: account.score_timestamp,
            },
            previous_tier,
        )
    }

    fn fields_of(&self, s: &Shown, previous_tier: Option<Tier>) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        let assignment = self.routing.on_entering(s.tier, previous_tier, s.scored_at);
        for (v, name) in &self.fields {
            let text = match v {
                Value::Score => Some(s.score.to_string()),
                Value::Tier => Some(s.tier.as_str().to_string()),
                Value::Fit => s.fit.map(|x| x.to_string()),
                Value::Engagement => s.engagement.map(|x| x.to_string()),
                Value::Reasons => Some(s.reasons.clone()),
                Value::ModelVersion => s.model_version.map(str::to_string),
                Value::ScoredAt => Some(iso_utc(s.scored_at)),
                Value::OwnerTier => assignment.as_ref().map(|a| a.owner_tier.clone()),
                Value::SlaDue => assignment
                    .as_ref()
                    .map(|a| a.due_at.map(iso_utc).unwrap_or_default()),
            };
            if let Some(t) = text {
                out.insert(name.clone(), t);
            }
        }
        out
    }
}

/// What a record shows, whichever kind of record it is.
struct Shown<'a> {
    score: u8,
    tier: Tier,
    fit: Option<u8>,
    engagement: Option<u8>,
    reasons: String,
    model_version: Option<&'a str>,
    scored_at: i64,
}

/// Whole parts joined by `; ` within `max_chars` (a first part longer than that is cut, ending in
/// `…`).
fn within(parts: impl IntoIterator<Item = String>, max_chars: usize) -> String {
    let mut out = String::new();
    let mut used = 0;
    for part in parts {
        let sep = if out.is_empty() { "" } else { "; " };
        let n = sep.chars().count() + part.chars().count();
        if used + n <= max_chars {
            out.push_str(sep);
            out.push_str(&part);
            used += n;
        } else {
            if out.is_empty() && max_chars > 0 {
                out = part.chars().take(max_chars - 1).collect();
                out.push('…');
            }
            break;
        }
    }
    out
}

/// An account's reasons — `2 of 3 members engaged; roles: champion, economic_buyer; 5001: 82 hot;
/// 5002: 40 warm` — whole parts within `max_chars`.
pub fn account_reasons_text(a: &AccountScore, max_chars: usize) -> String {
    let mut parts = vec![format!(
        "{} of {} members engaged",
        a.engaged_members, a.members
    )];
    if !a.buyer_roles.is_empty() {
        parts.push(format!("roles: {}", a.buyer_roles.join(", ")));
    }
    parts.extend(
        a.top_members
            .iter()
            .map(|m| format!("{}: {} {}", m.id, m.ai_score, m.tier.as_str())),
    );
    within(parts, max_chars)
}

/// The key factors as one line — `+ 3 webinars in the last 30 days; − No visit in 21 days` — with as
/// many whole reasons as fit in `max_chars` (a first reason longer than that is cut, ending in `…`).
pub fn reasons_text(score: &ScoreData, max_chars: usize) -> String {
    let parts = score.key_factors.iter().map(|f| {
        let said = if f.text.is_empty() { &f.label } else { &f.text };
        let sign = if f.impact >= 0.0 { '+' } else { '−' };
        format!("{sign} {said}")
    });
    within(parts, max_chars)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::score::Group;
    use crate::webhook::KeyFactor;

    fn score() -> ScoreData {
        let factor = |text: &str, impact: f64| KeyFactor {
            feature: "f".into(),
            label: "F".into(),
            value: 1.0,
            display: None,
            impact,
            group: Group::Engagement,
            text: text.into(),
        };
        ScoreData {
            lead_id: Some("51".into()),
            visitor_id: "v".into(),
            ai_score: 87,
            tier: "hot".into(),
            score_timestamp: 1_796_591_663_786,
            model_version: "m-1".into(),
            arm: None,
            key_factors: vec![
                factor("3 webinars in the last 30 days", 0.8),
                factor("No visit in 21 days", -0.2),
            ],
            fit_score: 40,
            engagement_score: 71,
            score_confidence: 0.9,
            previous_score: None,
            previous_tier: None,
            verified: true,
        }
    }

    fn spec() -> Spec {
        Spec {
            fields: Value::ALL
                .iter()
                .map(|v| (*v, format!("ls_{}", v.as_str())))
                .collect(),
            reasons_max_chars: 255,
            routing: Routing::default(),
        }
    }

    #[test]
    fn a_score_entering_hot_writes_every_value_and_the_routing() {
        let v = spec().values(&score(), Tier::Hot, Some(Tier::Warm), true);
        assert_eq!(v["ls_score"], "87");
        assert_eq!(v["ls_tier"], "hot");
        assert_eq!(
            (v["ls_fit"].as_str(), v["ls_engagement"].as_str()),
            ("40", "71")
        );
        assert_eq!(
            v["ls_reasons"],
            "+ 3 webinars in the last 30 days; − No visit in 21 days"
        );
        assert_eq!(v["ls_scored_at"], "2026-12-06T21:14:23.786Z");
        assert_eq!(v["ls_owner_tier"], "senior_ae");
        assert_eq!(v["ls_sla_due"], "2026-12-07T01:14:23.786Z");
        // Staying hot: no routing (the SLA clock keeps running); no fit features: no sub-scores.
        let again = spec().values(&score(), Tier::Hot, Some(Tier::Hot), false);
        assert!(!again.contains_key("ls_owner_tier") && !again.contains_key("ls_sla_due"));
        assert!(!again.contains_key("ls_fit"));
        // Cold has no SLA: its due time is cleared.
        let cold = spec().values(&score(), Tier::Cold, Some(Tier::Hot), true);
        assert_eq!(cold["ls_sla_due"], "");
    }

    #[test]
    fn reasons_keep_whole_reasons_within_the_length() {
        let s = score();
        let full = reasons_text(&s, 255);
        assert_eq!(reasons_text(&s, full.chars().count()), full);
        assert_eq!(
            reasons_text(&s, full.chars().count() - 1),
            "+ 3 webinars in the last 30 days"
        );
        let cut = reasons_text(&s, 10);
        assert_eq!(cut.chars().count(), 10);
        assert!(cut.ends_with('…'), "{cut}");
    }

    #[test]
    fn an_account_writes_its_roll_up_and_its_engaged_members() {
        let member = |id: &str, score: u8, tier: Tier| crate::account::Member {
            id: id.into(),
            probability: f64::from(score) / 100.0,
            ai_score: score,
            tier,
            buyer_role: None,
            active: 0,
        };
        let a = AccountScore {
            account_id: "8000750".into(),
            ai_score: 89,
            tier: Tier::Hot,
            probability: 0.89,
            members: 3,
            engaged_members: 2,
            buyer_roles: vec!["champion".into(), "economic_buyer".into()],
            top_members: vec![
                member("5001", 82, Tier::Hot),
                member("5002", 40, Tier::Warm),
            ],
            score_timestamp: 1_796_591_663_786,
        };
        let v = spec().account_values(&a, Some(Tier::Warm));
        assert_eq!(
            (v["ls_score"].as_str(), v["ls_tier"].as_str()),
            ("89", "hot")
        );
        assert_eq!(
            v["ls_reasons"],
            "2 of 3 members engaged; roles: champion, economic_buyer; 5001: 82 hot; 5002: 40 warm"
        );
        assert_eq!(v["ls_owner_tier"], "senior_ae");
        assert!(!v.contains_key("ls_fit") && !v.contains_key("ls_model_version"));
        assert_eq!(account_reasons_text(&a, 40), "2 of 3 members engaged");
    }

    #[test]
    fn bad_maps_are_refused_by_value() {
        let mut s = spec();
        s.fields.insert(Value::Tier, "LS_SCORE".into());
        let e = s.validate(|_| None).unwrap_err().to_string();
        assert!(e.contains("fields.score and fields.tier"), "{e}");
        let e = spec()
            .validate(|n| n.ends_with("reasons").then(|| "is not allowed".to_string()))
            .unwrap_err()
            .to_string();
        assert!(e.contains("fields.reasons"), "{e}");
        let mut s = spec();
        s.reasons_max_chars = 0;
        assert!(s.validate(|_| None).is_err());
        assert!(spec().validate(|_| None).is_ok());
    }
}
