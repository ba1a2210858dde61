//! Outcomes: what the CRM learned about a lead or visitor after it was scored (qualified, an
//! opportunity, a customer, disqualified). They are the labels of the learning loop: `leadscore
//! dataset` turns them and the logged events into training rows ([`crate::dataset`]).
//!
//! An outcome is a fact with its own time (`ts`, when it happened in the CRM), idempotent by `id`:
//! the same outcome sent twice is one outcome.
//!
//! [`hubspot`] reads HubSpot's own webhooks (signature v3, events, a stage → outcome table) into
//! outcomes.

pub mod hubspot;

use serde::{Deserialize, Serialize};

use crate::error_code::ErrorCode;
use crate::event::{check_id, check_visitor_id, limits, EventError};

/// Most outcomes in one `POST /v1/outcomes` batch.
pub const MAX_BATCH_OUTCOMES: usize = 1000;
/// Largest outcome value (e.g. a deal amount) accepted, in absolute value.
pub const MAX_VALUE: f64 = 1e15;

/// The documented outcome types, in funnel order. `won` and `lost` are accepted as the names of
/// `customer` and `disqualified` (CRMs say both) and stored under the canonical name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutcomeType {
    /// Marketing or sales accepted the lead (MQL/SQL).
    Qualified,
    /// An opportunity (deal) was opened.
    Opportunity,
    /// The lead became a customer (a deal was won).
    #[serde(alias = "won")]
    Customer,
    /// The lead was disqualified (a deal was lost, or the lead is not a fit).
    #[serde(alias = "lost")]
    Disqualified,
}

impl OutcomeType {
    /// Every type, in funnel order.
    pub const ALL: [OutcomeType; 4] = [
        OutcomeType::Qualified,
        OutcomeType::Opportunity,
        OutcomeType::Customer,
        OutcomeType::Disqualified,
    ];

    /// The canonical name.
    pub fn as_str(self) -> &'static str {
        match self {
            OutcomeType::Qualified => "qualified",
            OutcomeType::Opportunity => "opportunity",
            OutcomeType::Customer => "customer",
            OutcomeType::Disqualified => "disqualified",
        }
    }

    /// Reads a canonical name or an alias (`won`, `lost`).
    pub fn parse(s: &str) -> Option<OutcomeType> {
        serde_json::from_value(serde_json::Value::String(s.to_string())).ok()
    }
}

/// One outcome, as `POST /v1/outcomes` takes it and the outcome log keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Outcome {
    /// Unique id given by the sender (the CRM's event or record id): the idempotency key.
    pub id: String,
    /// The lead it is about (as identify events name it); exactly one of `lead_id`, `visitor_id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lead_id: Option<String>,
    /// The visitor it is about, where the CRM knows the visitor rather than a lead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub visitor_id: Option<String>,
    /// What happened.
    #[serde(rename = "type")]
    pub kind: OutcomeType,
    /// When it happened (ms since the Unix epoch), not when it was sent.
    pub ts: i64,
    /// Optional amount (a deal's value), for reports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
}

/// Why an outcome was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum OutcomeError {
    /// Not JSON, or JSON that is not an outcome (unknown type or field, wrong value type).
    #[error("invalid outcome: {0}")]
    Schema(String),
    /// A field breaks a limit or a rule.
    #[error(transparent)]
    Field(#[from] EventError),
}

impl OutcomeError {
    /// Stable machine-readable code.
    pub fn code(&self) -> ErrorCode {
        match self {
            OutcomeError::Schema(_) => ErrorCode::InvalidField,
            OutcomeError::Field(e) => e.code(),
        }
    }
}

impl Outcome {
    /// Reads one outcome from a JSON value and checks it ([`Outcome::validate`]).
    pub fn from_value(v: serde_json::Value) -> Result<Outcome, OutcomeError> {
        let o: Outcome =
            serde_json::from_value(v).map_err(|e| OutcomeError::Schema(e.to_string()))?;
        o.validate()?;
        Ok(o)
    }

    /// Checks every limit and rule.
    pub fn validate(&self) -> Result<(), OutcomeError> {
        let field = |field: &'static str, message: &str| {
            OutcomeError::Field(EventError::Field {
                field,
                message: message.to_string(),
            })
        };
        check_id("id", &self.id)?;
        match (&self.lead_id, &self.visitor_id) {
            (Some(lead), None) => {
                check_id("lead_id", lead)?;
                if lead.len() > limits::MAX_LEAD_ID_LEN {
                    return Err(field("lead_id", "is longer than the lead id limit"));
                }
            }
            (None, Some(v)) => check_visitor_id(v)?,
            _ => {
                return Err(field(
                    "lead_id",
                    "exactly one of `lead_id` and `visitor_id` names whom the outcome is about",
                ))
            }
        }
        if !(limits::MIN_TS..=limits::MAX_TS).contains(&self.ts) {
            return Err(field(
                "ts",
                "must be ms since the Unix epoch, between 2000 and 2100",
            ));
        }
        if let Some(v) = self.value {
            if !v.is_finite() || v.abs() > MAX_VALUE {
                return Err(field("value", "must be a finite number within ±1e15"));
            }
        }
        Ok(())
    }

    /// Whom the outcome is about: the lead, else the visitor.
    pub fn subject(&self) -> Subject<'_> {
        match (&self.lead_id, &self.visitor_id) {
            (Some(l), _) => Subject::Lead(l),
            (None, Some(v)) => Subject::Visitor(v),
            (None, None) => Subject::Visitor(""),
        }
    }
}

/// Whom an outcome is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subject<'a> {
    /// A lead id.
    Lead(&'a str),
    /// A visitor id.
    Visitor(&'a str),
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn aliases_read_as_canonical_types() {
        assert_eq!(OutcomeType::parse("won"), Some(OutcomeType::Customer));
        assert_eq!(OutcomeType::parse("lost"), Some(OutcomeType::Disqualified));
        assert_eq!(OutcomeType::parse("customer"), Some(OutcomeType::Customer));
        assert_eq!(OutcomeType::parse("sale"), None);
        for t in OutcomeType::ALL {
            assert_eq!(OutcomeType::parse(t.as_str()), Some(t));
            assert_eq!(serde_json::to_value(t).unwrap(), json!(t.as_str()));
        }
        let o = Outcome::from_value(
            json!({"id":"o1","lead_id":"a@b.c","type":"won","ts":1_700_000_000_000i64}),
        )
        .unwrap();
        assert_eq!(serde_json::to_value(&o).unwrap()["type"], "customer");
    }

    #[test]
    fn refuses_what_breaks_a_rule() {
        let base =
            json!({"id":"o1","visitor_id":"v1","type":"qualified","ts":1_700_000_000_000i64});
        assert!(Outcome::from_value(base.clone()).is_ok());
        let with = |k: &str, v: serde_json::Value| {
            let mut b = base.clone();
            b[k] = v;
            Outcome::from_value(b)
        };
        assert!(matches!(
            with("type", json!("sale")),
            Err(OutcomeError::Schema(_))
        ));
        assert!(matches!(
            with("extra", json!(1)),
            Err(OutcomeError::Schema(_))
        ));
        assert!(with("ts", json!(5)).is_err());
        assert!(with("value", json!(1e16)).is_err());
        assert!(with("id", json!("")).is_err());
        assert!(
            with("lead_id", json!("a@b.c")).is_err(),
            "both lead and visitor"
        );
        assert!(
            with(
                "visitor_id",
                json!(format!("{}x", crate::event::RESERVED_VISITOR_PREFIX))
            )
            .is_err(),
            "reserved prefix"
        );
        let mut none = base.clone();
        none.as_object_mut().unwrap().remove("visitor_id");
        assert!(
            Outcome::from_value(none).is_err(),
            "neither lead nor visitor"
        );
        assert_eq!(
            with("ts", json!(5)).unwrap_err().code(),
            ErrorCode::InvalidField
        );
    }
}
