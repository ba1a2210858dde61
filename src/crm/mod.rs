//! Sink: scores written into CRM records — HubSpot contacts and companies, Salesforce Leads and
//! Contacts — beside the generic webhook ([`crate::webhook`]), from the same score events.
//!
//! The rules live here, pure and tested natively; the worker only stores and moves bytes:
//! * [`fields`]: what a record receives (score, tier, fit, engagement, the reasons as one text within
//!   the field's length, model version, last-scored time) and, on entering a tier, its owner tier and
//!   SLA due time ([`routing`]);
//! * [`coalesce`]: per record only its latest score waits for the flush, and a score older than one
//!   already waiting or written is dropped — an older score never overwrites a newer one;
//! * [`budget`]: a token bucket per CRM account that never exceeds its burst limit, a daily allocation,
//!   and the CRM's own `Retry-After`;
//! * [`hubspot`], [`salesforce`]: the requests as each CRM documents them and their answers read per
//!   record ([`Outcome`]);
//! * [`activities`]: a lead entering hot or its score spiking as a task or note for its owner;
//! * [`config`]: the destinations a deployment writes to, validated with a clear error.
//!
//! Invariant: a write carries the score time of the values it holds; every decision about order
//! (coalescing, retries, stale answers) compares score times, never arrival or send times.

pub mod activities;
pub mod budget;
pub mod coalesce;
pub mod config;
pub mod fields;
pub mod hubspot;
pub mod routing;
pub mod salesforce;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A CRM record type leadscore writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CrmObject {
    /// A person: a HubSpot contact, a Salesforce Contact.
    Contact,
    /// A Salesforce Lead.
    Lead,
    /// An account: a HubSpot company, a Salesforce Account.
    Company,
}

impl CrmObject {
    /// The name configuration and reports use.
    pub fn as_str(self) -> &'static str {
        match self {
            CrmObject::Contact => "contact",
            CrmObject::Lead => "lead",
            CrmObject::Company => "company",
        }
    }
}

/// The record a write goes to: its type and the CRM's id for it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RecordKey {
    /// Record type.
    pub object: CrmObject,
    /// The CRM's id (HubSpot's numeric id as digits, Salesforce's 15/18-character id).
    pub id: String,
}

/// One record's values, as of one score.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Write {
    /// Where it goes.
    pub record: RecordKey,
    /// When the score these values come from was computed (ms): what orders writes.
    pub scored_at: i64,
    /// CRM field name → value (as text: both CRMs accept numbers and times as strings).
    pub fields: BTreeMap<String, String>,
}

impl Write {
    /// Folds `newer` into this write: its values win, fields only this one has stay (an owner tier set
    /// on entering hot is still written when a later score in the same flush does not set it).
    pub fn absorb(&mut self, newer: Write) {
        self.scored_at = newer.scored_at;
        self.fields.extend(newer.fields);
    }
}

/// What became of one record's write.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    /// The CRM holds the values (for HubSpot, possibly under a merged record's new id).
    Written {
        /// The id the CRM answered with, when it is not the one written to (a merge).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        now_id: Option<String>,
    },
    /// Not written this time; try again (rate limit, outage, expired token).
    Retry {
        /// Not before this many ms from now, when the CRM said so.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        after_ms: Option<i64>,
        /// Why, as the CRM said it.
        reason: String,
    },
    /// The CRM does not know the record (deleted, merged away, never existed): reported, not retried.
    Gone {
        /// Why, as the CRM said it.
        reason: String,
    },
    /// The CRM refused the values (a field missing or too long, a permission): kept as a dead letter
    /// to replay once the configuration is fixed, not retried on its own.
    Refused {
        /// Why, as the CRM said it.
        reason: String,
    },
}

/// Why a destination cannot be used (configuration, answers that are not what the CRM documents).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CrmError {
    /// The destinations' configuration is wrong.
    #[error("CRM configuration: {0}")]
    Config(String),
    /// A request would break the CRM's documented limits.
    #[error("CRM request: {0}")]
    Request(String),
    /// The CRM answered something its documentation does not describe.
    #[error("CRM answer: {0}")]
    Answer(String),
}
