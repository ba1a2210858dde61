//! The CRM destinations of a deployment (`CRM_DESTINATIONS`, JSON), validated whole before anything
//! is written: an unknown key, a malformed field map, an object type the CRM has not, a limit out of
//! range or a missing secret is an error that names it.
//!
//! ```json
//! {"hubspot": {"base_url": "https://api.hubapi.com", "lead_object": "contact",
//!              "limits": {"burst": 100, "interval_ms": 10000, "daily": 250000}},
//!  "salesforce": {"login_url": "https://acme.my.salesforce.com", "lead_object": "lead",
//!                 "limits": {"burst": 25, "interval_ms": 1000, "daily": 20000}}}
//! ```
//! Omitted: `fields` (the CRM's default names), `api_version`, `reasons_max_chars` (255), `flush_ms`
//! (5 s), `routing` (hot → senior_ae in 4 h, warm → bdr in 24 h, cold → nurture), `account_object`
//! (accounts not written), `alerts` (no tasks or notes; `{"on": ["hot", "spike"], "as": "task"}`).

use serde::Deserialize;

use super::activities::Alerts;
use super::budget::Limits;
use super::fields::{FieldMap, Spec};
use super::routing::Routing;
use super::{hubspot, salesforce, CrmError, CrmObject};

/// The secret HubSpot's token is kept in.
pub const HUBSPOT_TOKEN: &str = "HUBSPOT_TOKEN";
/// The secrets Salesforce's client credentials are kept in.
pub const SALESFORCE_SECRETS: [&str; 2] = ["SALESFORCE_CLIENT_ID", "SALESFORCE_CLIENT_SECRET"];
/// Default flush window: a record's score changes within it are written once.
pub const DEFAULT_FLUSH_MS: i64 = 5_000;
/// Longest flush window.
pub const MAX_FLUSH_MS: i64 = 3_600_000;

/// Which CRM a destination is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Crm {
    /// HubSpot.
    Hubspot,
    /// Salesforce.
    Salesforce,
}

impl Crm {
    /// Its name in configuration and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Crm::Hubspot => "hubspot",
            Crm::Salesforce => "salesforce",
        }
    }
}

/// One destination, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct Destination {
    /// Which CRM.
    pub crm: Crm,
    /// Where API calls go (HubSpot's API host; Salesforce's My Domain, for the token).
    pub base_url: String,
    /// The API version path segment.
    pub api_version: String,
    /// The record a lead is written to.
    pub lead_object: CrmObject,
    /// The record an account is written to, if accounts are written.
    pub account_object: Option<CrmObject>,
    /// What is written.
    pub spec: Spec,
    /// The account's call limits.
    pub limits: Limits,
    /// A record's changes within this window (ms) are written once.
    pub flush_ms: i64,
    /// The alerts that become a task or note on the record, if any.
    pub alerts: Option<Alerts>,
}

impl Destination {
    /// Records per call.
    pub fn batch_size(&self) -> usize {
        match self.crm {
            Crm::Hubspot => hubspot::MAX_INPUTS,
            Crm::Salesforce => salesforce::MAX_RECORDS,
        }
    }

    /// Why `id` cannot be one of this CRM's record ids, if it cannot.
    pub fn id_problem(&self, id: &str) -> Option<String> {
        match self.crm {
            Crm::Hubspot => hubspot::id_problem(id),
            Crm::Salesforce => salesforce::id_problem(id),
        }
    }

    /// The secrets it needs.
    pub fn secrets(&self) -> &'static [&'static str] {
        match self.crm {
            Crm::Hubspot => &[HUBSPOT_TOKEN],
            Crm::Salesforce => &SALESFORCE_SECRETS,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    #[serde(default)]
    hubspot: Option<RawDestination>,
    #[serde(default)]
    salesforce: Option<RawDestination>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDestination {
    #[serde(default, alias = "login_url")]
    base_url: Option<String>,
    #[serde(default)]
    api_version: Option<String>,
    #[serde(default)]
    lead_object: Option<String>,
    #[serde(default)]
    account_object: Option<String>,
    #[serde(default)]
    fields: Option<std::collections::BTreeMap<String, String>>,
    #[serde(default)]
    reasons_max_chars: Option<usize>,
    #[serde(default)]
    routing: Option<Routing>,
    #[serde(default)]
    limits: Option<Limits>,
    #[serde(default)]
    flush_ms: Option<i64>,
    #[serde(default)]
    alerts: Option<Alerts>,
}

/// Parses and validates `CRM_DESTINATIONS`; `has_secret` says whether a secret is set. An empty
/// text is no destination.
pub fn parse(text: &str, has_secret: impl Fn(&str) -> bool) -> Result<Vec<Destination>, CrmError> {
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    let raw: Raw = serde_json::from_str(text)
        .map_err(|e| CrmError::Config(format!("CRM_DESTINATIONS: {e}")))?;
    let mut out = Vec::new();
    for (crm, r) in [
        (Crm::Hubspot, raw.hubspot),
        (Crm::Salesforce, raw.salesforce),
    ] {
        let Some(r) = r else { continue };
        let d = destination(crm, r)?;
        for s in d.secrets() {
            if !has_secret(s) {
                return Err(CrmError::Config(format!(
                    "{}: the secret {s} is not set (wrangler secret put {s}; locally .dev.vars)",
                    crm.as_str()
                )));
            }
        }
        out.push(d);
    }
    Ok(out)
}

fn object(crm: Crm, at: &str, name: &str) -> Result<CrmObject, CrmError> {
    let o = match name {
        "contact" => CrmObject::Contact,
        "lead" => CrmObject::Lead,
        "company" => CrmObject::Company,
        _ => {
            return Err(CrmError::Config(format!(
                "{}.{at}: unknown object type {name:?} (contact, lead or company)",
                crm.as_str()
            )))
        }
    };
    if crm == Crm::Hubspot && o == CrmObject::Lead {
        return Err(CrmError::Config(format!(
            "hubspot.{at}: HubSpot writes leads to contacts (\"contact\")"
        )));
    }
    Ok(o)
}

fn destination(crm: Crm, r: RawDestination) -> Result<Destination, CrmError> {
    let c = crm.as_str();
    let base_url = match (crm, r.base_url) {
        (_, Some(u)) => u.trim_end_matches('/').to_string(),
        (Crm::Hubspot, None) => "https://api.hubapi.com".into(),
        (Crm::Salesforce, None) => return Err(CrmError::Config(
            "salesforce.login_url: your org's My Domain URL (https://<domain>.my.salesforce.com)"
                .into(),
        )),
    };
    if !(base_url.starts_with("https://")
        || base_url.starts_with("http://127.0.0.1")
        || base_url.starts_with("http://localhost"))
    {
        return Err(CrmError::Config(format!(
            "{c}.base_url must be https:// (http only on this machine), got {base_url:?}"
        )));
    }
    let api_version = r.api_version.unwrap_or_else(|| {
        match crm {
            Crm::Hubspot => hubspot::API_VERSION,
            Crm::Salesforce => salesforce::API_VERSION,
        }
        .to_string()
    });
    let version_ok = match crm {
        Crm::Hubspot => {
            api_version.len() == 7
                && api_version.as_bytes()[4] == b'-'
                && api_version.bytes().filter(|b| b.is_ascii_digit()).count() == 6
        }
        Crm::Salesforce => api_version
            .strip_prefix('v')
            .and_then(|v| v.split_once('.'))
            .is_some_and(|(a, b)| a.parse::<u32>().is_ok() && b.parse::<u32>().is_ok()),
    };
    if !version_ok {
        return Err(CrmError::Config(format!(
            "{c}.api_version {api_version:?} is not a {} version",
            if crm == Crm::Hubspot {
                "YYYY-MM"
            } else {
                "vNN.N"
            }
        )));
    }
    let lead_object = object(
        crm,
        "lead_object",
        r.lead_object.as_deref().unwrap_or(if crm == Crm::Hubspot {
            "contact"
        } else {
            "lead"
        }),
    )?;
    if lead_object == CrmObject::Company {
        return Err(CrmError::Config(format!(
            "{c}.lead_object: a lead is a person, not a company"
        )));
    }
    let account_object = match r.account_object.as_deref() {
        None => None,
        Some(n) => match object(crm, "account_object", n)? {
            CrmObject::Company => Some(CrmObject::Company),
            _ => {
                return Err(CrmError::Config(format!(
                    "{c}.account_object: an account is written to a company"
                )))
            }
        },
    };
    let defaults = match crm {
        Crm::Hubspot => hubspot::default_fields(),
        Crm::Salesforce => salesforce::default_fields(),
    };
    let fields: FieldMap = match r.fields {
        None => defaults,
        Some(m) => {
            let mut out = FieldMap::new();
            for (k, v) in m {
                let value = crate::crm::fields::Value::ALL
                    .into_iter()
                    .find(|x| x.as_str() == k)
                    .ok_or_else(|| {
                        CrmError::Config(format!(
                            "{c}.fields: unknown value {k:?} (score, tier, fit, engagement, reasons, model_version, scored_at, owner_tier, sla_due)"
                        ))
                    })?;
                out.insert(value, v);
            }
            out
        }
    };
    let max_text = match crm {
        Crm::Hubspot => hubspot::MAX_TEXT_CHARS,
        Crm::Salesforce => salesforce::MAX_TEXT_CHARS,
    };
    let spec = Spec {
        fields,
        reasons_max_chars: r.reasons_max_chars.unwrap_or(255),
        routing: r.routing.unwrap_or_default(),
    };
    if crm == Crm::Salesforce && spec.reasons_max_chars > 131_072 {
        return Err(CrmError::Config(format!(
            "salesforce.reasons_max_chars: a Long Text Area holds at most 131072 (a Text field {max_text})"
        )));
    }
    let rule = |n: &str| match crm {
        Crm::Hubspot => hubspot::name_problem(n),
        Crm::Salesforce => salesforce::name_problem(n),
    };
    spec.validate(rule).map_err(|e| match e {
        CrmError::Config(m) => CrmError::Config(format!("{c}.{m}")),
        other => other,
    })?;
    let limits = r.limits.unwrap_or(match crm {
        Crm::Hubspot => Limits {
            burst: hubspot::DEFAULT_BURST,
            interval_ms: hubspot::BURST_INTERVAL_MS,
            daily: Some(250_000),
        },
        // No per-second limit; a modest concurrency and a budget under the smallest org's allocation.
        Crm::Salesforce => Limits {
            burst: 25,
            interval_ms: 1_000,
            daily: Some(15_000),
        },
    });
    limits.validate(&format!("{c}.limits"))?;
    let flush_ms = r.flush_ms.unwrap_or(DEFAULT_FLUSH_MS);
    if !(0..=MAX_FLUSH_MS).contains(&flush_ms) {
        return Err(CrmError::Config(format!(
            "{c}.flush_ms must be 0–{MAX_FLUSH_MS}, got {flush_ms}"
        )));
    }
    if let Some(a) = &r.alerts {
        a.validate(|id| match crm {
            Crm::Hubspot => hubspot::id_problem(id),
            Crm::Salesforce => salesforce::id_problem(id),
        })
        .map_err(|e| match e {
            CrmError::Config(m) => CrmError::Config(format!("{c}.{m}")),
            other => other,
        })?;
    }
    Ok(Destination {
        crm,
        base_url,
        api_version,
        lead_object,
        account_object,
        spec,
        limits,
        flush_ms,
        alerts: r.alerts,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn has(_: &str) -> bool {
        true
    }

    #[test]
    fn both_crms_with_their_defaults() {
        let d = parse(
            r#"{"hubspot": {"base_url": "http://127.0.0.1:8791"},
                "salesforce": {"login_url": "https://acme.my.salesforce.com/"}}"#,
            has,
        )
        .unwrap();
        assert_eq!(d.len(), 2);
        assert_eq!(
            (d[0].crm, d[0].lead_object, d[0].api_version.as_str()),
            (Crm::Hubspot, CrmObject::Contact, "2026-03")
        );
        assert_eq!(d[0].batch_size(), 100);
        assert_eq!(
            (d[1].lead_object, d[1].base_url.as_str()),
            (CrmObject::Lead, "https://acme.my.salesforce.com")
        );
        assert_eq!(d[1].spec.fields.len(), 9);
        assert!(parse("", has).unwrap().is_empty());
    }

    #[test]
    fn bad_configuration_names_what_is_wrong() {
        let err = |text: &str| parse(text, has).unwrap_err().to_string();
        assert!(
            err(r#"{"hubspot": {"lead_object": "deal"}}"#).contains("unknown object type \"deal\"")
        );
        assert!(err(r#"{"hubspot": {"lead_object": "lead"}}"#).contains("hubspot.lead_object"));
        assert!(err(r#"{"hubspot": {"fields": {"score": "Lead Score"}}}"#)
            .contains("hubspot.fields.score"));
        assert!(
            err(r#"{"hubspot": {"fields": {"color": "x"}}}"#).contains("unknown value \"color\"")
        );
        assert!(err(r#"{"salesforce": {"login_url": "https://a.my.salesforce.com", "fields": {"score": "Score"}}}"#)
            .contains("salesforce.fields.score"));
        assert!(err(r#"{"salesforce": {}}"#).contains("salesforce.login_url"));
        assert!(
            err(r#"{"hubspot": {"limits": {"burst": 0, "interval_ms": 10000}}}"#)
                .contains("hubspot.limits.burst")
        );
        assert!(err(r#"{"hubspot": {"base_url": "http://example.com"}}"#).contains("https://"));
        assert!(err(r#"{"pipedrive": {}}"#).contains("unknown field `pipedrive`"));
        assert!(err(r#"{"hubspot": {"api_version": "v3"}}"#).contains("YYYY-MM"));
        assert!(err(r#"{"hubspot": {"alerts": {"on": []}}}"#).contains("hubspot.alerts.on"));
        assert!(
            err(r#"{"hubspot": {"alerts": {"on": ["hot"], "owner_id": "bob"}}}"#)
                .contains("hubspot.alerts.owner_id")
        );
        assert!(err(r#"{"hubspot": {"alerts": {"on": ["cold"]}}}"#).contains("unknown variant"));
        let missing = parse(
            r#"{"salesforce": {"login_url": "https://a.my.salesforce.com"}}"#,
            |s| s != "SALESFORCE_CLIENT_SECRET",
        )
        .unwrap_err()
        .to_string();
        assert!(missing.contains("SALESFORCE_CLIENT_SECRET"), "{missing}");
    }
}
