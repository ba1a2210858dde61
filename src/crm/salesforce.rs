//! Salesforce: Lead and Contact fields through sObject Collections, with an OAuth 2.0
//! client-credentials token.
//!
//! As Salesforce documents them (developer.salesforce.com, REST API v68.0):
//! * `PATCH /services/data/v68.0/composite/sobjects`, body `{"allOrNone": false, "records":
//!   [{"attributes": {"type": "Lead"}, "id", <Field__c>: …}]}`, at most [`MAX_RECORDS`] records;
//!   `200` with one `{id, success, errors: [{statusCode, message, fields}]}` per record, in order;
//! * `POST` of the same path with `[{"attributes": {"type": "Task"}, "WhoId", "Subject", …}]` creates
//!   tasks and notes (alerts for sales), answered the same way;
//! * `POST https://<MyDomain>.my.salesforce.com/services/oauth2/token` with
//!   `grant_type=client_credentials&client_id=…&client_secret=…` (an External Client App with the
//!   client-credentials flow and a run-as user): `{access_token, instance_url, token_type, issued_at}`,
//!   no `expires_in` and no refresh token — a `401 INVALID_SESSION_ID` means: get a new one;
//! * the daily API allocation (`403 REQUEST_LIMIT_EXCEEDED` when spent; `Sforce-Limit-Info:
//!   api-usage=used/max` on every answer), which leadscore keeps under its own budget.

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value as Json};

use super::activities::{Activity, ActivityKind};
use super::fields::{FieldMap, Value};
use super::{CrmError, CrmObject, Outcome, Write};
use crate::calendar::day_of;

/// The REST API version leadscore writes with (configurable per destination).
pub const API_VERSION: &str = "v68.0";
/// Records per sObject Collections call.
pub const MAX_RECORDS: usize = 200;
/// A Text field's largest length.
pub const MAX_TEXT_CHARS: usize = 255;

/// The sObject type name.
pub fn sobject(object: CrmObject) -> &'static str {
    match object {
        CrmObject::Lead => "Lead",
        CrmObject::Contact => "Contact",
        CrmObject::Company => "Account",
    }
}

/// Why a name cannot be a custom field's API name (`Name__c`: a letter first, letters, digits and
/// single underscores), if it cannot.
pub fn name_problem(name: &str) -> Option<String> {
    let stem = name.strip_suffix("__c").unwrap_or("");
    let ok = !stem.is_empty()
        && stem.len() <= 40
        && stem.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && stem.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !stem.contains("__")
        && !stem.ends_with('_');
    (!ok).then(|| {
        "is not a custom field API name (Name__c: letters, digits, single _; ≤ 40 before __c)"
            .into()
    })
}

/// Why an id cannot be a Salesforce record id (15 or 18 letters and digits), if it cannot.
pub fn id_problem(id: &str) -> Option<String> {
    let ok = matches!(id.len(), 15 | 18) && id.bytes().all(|b| b.is_ascii_alphanumeric());
    (!ok).then(|| format!("{id:?} is not a Salesforce record id (15 or 18 letters and digits)"))
}

/// The mapped fields that are Number fields.
pub fn number_fields(fields: &FieldMap) -> std::collections::BTreeSet<String> {
    fields
        .iter()
        .filter(|(v, _)| v.kind() == super::fields::Kind::Number)
        .map(|(_, name)| name.clone())
        .collect()
}

/// The fields leadscore writes, by default (created by the customer in Object Manager).
pub fn default_fields() -> FieldMap {
    Value::ALL
        .iter()
        .map(|v| {
            let stem: String = v
                .as_str()
                .split('_')
                .map(|w| {
                    let mut c = w.chars();
                    c.next()
                        .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                        .unwrap_or_default()
                })
                .collect::<Vec<_>>()
                .join("_");
            (*v, format!("Leadscore_{stem}__c"))
        })
        .collect()
}

/// The sObject Collections path.
pub fn collections_path(version: &str) -> String {
    format!("/services/data/{version}/composite/sobjects")
}

/// The token request's form body.
pub fn token_form(client_id: &str, client_secret: &str) -> String {
    let enc = |s: &str| -> String {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect()
    };
    format!(
        "grant_type=client_credentials&client_id={}&client_secret={}",
        enc(client_id),
        enc(client_secret)
    )
}

/// A token, as the token endpoint answers it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Token {
    /// The bearer token.
    pub access_token: String,
    /// The org's instance, where API calls go.
    pub instance_url: String,
}

/// Reads the token endpoint's answer.
pub fn read_token(status: u16, body: &str) -> Result<Token, CrmError> {
    if status != 200 {
        let why = serde_json::from_str::<Json>(body)
            .ok()
            .and_then(|j| {
                Some(format!(
                    "{}: {}",
                    j.get("error")?.as_str()?,
                    j.get("error_description")
                        .and_then(Json::as_str)
                        .unwrap_or("")
                ))
            })
            .unwrap_or_else(|| body.chars().take(200).collect());
        return Err(CrmError::Answer(format!(
            "Salesforce token {status}: {why}"
        )));
    }
    let t: Token = serde_json::from_str(body)
        .map_err(|e| CrmError::Answer(format!("Salesforce token: {e}")))?;
    if t.access_token.is_empty() || !t.instance_url.starts_with("http") {
        return Err(CrmError::Answer(
            "Salesforce token: no access_token or instance_url".into(),
        ));
    }
    Ok(t)
}

/// The body of an update of `writes` (distinct ids, at most [`MAX_RECORDS`]); an empty value
/// clears the field (`null`, as Salesforce clears); the fields in `numbers` go as JSON numbers (a
/// Number field takes no string).
pub fn collections_body(
    writes: &[Write],
    numbers: &std::collections::BTreeSet<String>,
) -> Result<String, CrmError> {
    if writes.is_empty() || writes.len() > MAX_RECORDS {
        return Err(CrmError::Request(format!(
            "an sObject Collections update takes 1–{MAX_RECORDS} records, not {}",
            writes.len()
        )));
    }
    let mut ids = std::collections::BTreeSet::new();
    let mut records = Vec::with_capacity(writes.len());
    for w in writes {
        if let Some(why) = id_problem(&w.record.id) {
            return Err(CrmError::Request(why));
        }
        if !ids.insert(w.record.id.as_str()) {
            return Err(CrmError::Request(format!(
                "record {} appears twice in one call",
                w.record.id
            )));
        }
        let mut r = Map::new();
        r.insert(
            "attributes".into(),
            json!({"type": sobject(w.record.object)}),
        );
        r.insert("id".into(), json!(w.record.id));
        for (k, v) in &w.fields {
            let value = match (v.is_empty(), numbers.contains(k)) {
                (true, _) => Json::Null,
                (false, true) => v
                    .parse::<i64>()
                    .ok()
                    .map(|x| Json::Number(x.into()))
                    .or_else(|| {
                        v.parse::<f64>()
                            .ok()
                            .and_then(|x| serde_json::Number::from_f64(x).map(Json::Number))
                    })
                    .ok_or_else(|| CrmError::Request(format!("{k}: {v:?} is not a number")))?,
                (false, false) => json!(v),
            };
            r.insert(k.clone(), value);
        }
        records.push(Json::Object(r));
    }
    Ok(json!({"allOrNone": false, "records": records}).to_string())
}

/// The body of a create of `acts` (at most [`MAX_RECORDS`]; `POST` to [`collections_path`]): a
/// Task (`WhoId` a Lead or Contact, `WhatId` an Account) due on its date, or a Note on the record.
pub fn activities_body(acts: &[Activity]) -> Result<String, CrmError> {
    if acts.is_empty() || acts.len() > MAX_RECORDS {
        return Err(CrmError::Request(format!(
            "an sObject Collections create takes 1–{MAX_RECORDS} records, not {}",
            acts.len()
        )));
    }
    let mut records = Vec::with_capacity(acts.len());
    for a in acts {
        if let Some(why) = id_problem(&a.record.id) {
            return Err(CrmError::Request(why));
        }
        let mut r = match a.kind {
            ActivityKind::Task => {
                let on = if a.record.object == CrmObject::Company {
                    "WhatId"
                } else {
                    "WhoId"
                };
                json!({"attributes": {"type": "Task"}, on: a.record.id, "Subject": a.subject,
                       "Description": a.body, "ActivityDate": day_of(a.due_at),
                       "Priority": "High", "Status": "Not Started"})
            }
            ActivityKind::Note => json!({"attributes": {"type": "Note"}, "ParentId": a.record.id,
                                         "Title": a.subject, "Body": a.body}),
        };
        if let (Some(owner), Some(map)) = (&a.owner_id, r.as_object_mut()) {
            map.insert("OwnerId".into(), json!(owner));
        }
        records.push(r);
    }
    Ok(json!({"allOrNone": false, "records": records}).to_string())
}

#[derive(Deserialize)]
struct SaveResult {
    #[serde(default)]
    success: bool,
    #[serde(default)]
    errors: Vec<SaveError>,
}

#[derive(Deserialize)]
struct SaveError {
    #[serde(default, rename = "statusCode")]
    status_code: String,
    #[serde(default)]
    message: String,
}

/// An answer, read per record.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    /// One outcome per sent write, in order.
    pub outcomes: Vec<Outcome>,
    /// The token was refused: get a new one before the next call.
    pub token_expired: bool,
    /// The org's daily allocation is spent: no call before this time (ms).
    pub hold_until: Option<i64>,
    /// `Sforce-Limit-Info`'s (used, max), when sent.
    pub api_usage: Option<(u64, u64)>,
}

/// `api-usage=used/max` from a `Sforce-Limit-Info` header.
pub fn parse_limit_info(header: Option<&str>) -> Option<(u64, u64)> {
    let v = header?
        .split(',')
        .find_map(|p| p.trim().strip_prefix("api-usage="))?;
    let (used, max) = v.split_once('/')?;
    Some((used.trim().parse().ok()?, max.trim().parse().ok()?))
}

/// Reads an sObject Collections answer (an update or a create) for `n` records sent, at `now`.
pub fn read_collections(
    status: u16,
    limit_info: Option<&str>,
    body: &str,
    n: usize,
    now: i64,
) -> Answer {
    let mut a = Answer {
        outcomes: Vec::with_capacity(n),
        token_expired: false,
        hold_until: None,
        api_usage: parse_limit_info(limit_info),
    };
    let first_error = || -> String {
        serde_json::from_str::<Vec<Json>>(body)
            .ok()
            .and_then(|v| {
                let e = v.first()?;
                Some(format!(
                    "{}: {}",
                    e.get("errorCode")?.as_str()?,
                    e.get("message").and_then(Json::as_str).unwrap_or("")
                ))
            })
            .unwrap_or_else(|| body.chars().take(200).collect())
    };
    let all = |o: Outcome| vec![o; n];
    match status {
        200 => match serde_json::from_str::<Vec<SaveResult>>(body) {
            Ok(results) if results.len() == n => {
                a.outcomes = results.iter().map(per_record).collect();
            }
            _ => {
                a.outcomes = all(Outcome::Retry {
                    after_ms: None,
                    reason: "Salesforce 200: not one result per record".into(),
                })
            }
        },
        401 => {
            a.token_expired = true;
            a.outcomes = all(Outcome::Retry {
                after_ms: None,
                reason: format!("Salesforce 401: {}", first_error()),
            });
        }
        403 if body.contains("REQUEST_LIMIT_EXCEEDED") => {
            // A rolling 24 h: try again in an hour.
            let hold = now + 3_600_000;
            a.hold_until = Some(hold);
            a.outcomes = all(Outcome::Retry {
                after_ms: Some(3_600_000),
                reason: format!("Salesforce 403: {}", first_error()),
            });
        }
        403 => {
            a.outcomes = all(Outcome::Retry {
                after_ms: None,
                reason: format!("Salesforce 403 (a permission): {}", first_error()),
            })
        }
        408 | 500..=599 => {
            a.outcomes = all(Outcome::Retry {
                after_ms: None,
                reason: format!("Salesforce {status}: {}", first_error()),
            })
        }
        _ => {
            a.outcomes = all(Outcome::Refused {
                reason: format!("Salesforce {status}: {}", first_error()),
            })
        }
    }
    a
}

fn per_record(r: &SaveResult) -> Outcome {
    if r.success {
        return Outcome::Written { now_id: None };
    }
    let e = r.errors.first();
    let reason = e
        .map(|e| format!("{}: {}", e.status_code, e.message))
        .unwrap_or_else(|| "failed with no error".into());
    match e.map(|e| e.status_code.as_str()).unwrap_or("") {
        "ENTITY_IS_DELETED" | "INVALID_CROSS_REFERENCE_KEY" | "NOT_FOUND" | "MALFORMED_ID" => {
            Outcome::Gone { reason }
        }
        "UNABLE_TO_LOCK_ROW" | "REQUEST_LIMIT_EXCEEDED" | "SERVER_UNAVAILABLE" => Outcome::Retry {
            after_ms: None,
            reason,
        },
        _ => Outcome::Refused { reason },
    }
}

#[cfg(test)]
mod tests {
    use super::super::RecordKey;
    use super::*;

    const LEAD: &str = "00Q5e00000AbCdEFGH";

    fn w(id: &str, score: &str) -> Write {
        Write {
            record: RecordKey {
                object: CrmObject::Lead,
                id: id.into(),
            },
            scored_at: 1,
            fields: [
                ("Leadscore_Score__c".to_string(), score.to_string()),
                ("Leadscore_Sla_Due__c".to_string(), String::new()),
            ]
            .into(),
        }
    }

    #[test]
    fn a_task_is_on_its_lead_due_on_its_day_and_a_note_on_its_parent() {
        let act = |kind, object, id: &str| Activity {
            id: format!("hot_{id}_1"),
            alert: crate::crm::activities::Alert::Hot,
            kind,
            record: RecordKey {
                object,
                id: id.into(),
            },
            subject: "Hot lead: score 87".into(),
            body: "+ 3 webinars".into(),
            due_at: 1_796_591_663_786,
            at: 0,
            owner_id: None,
        };
        let body: Json = serde_json::from_str(
            &activities_body(&[
                act(ActivityKind::Task, CrmObject::Lead, LEAD),
                act(ActivityKind::Task, CrmObject::Company, "001xx000003DGb2AAG"),
                act(ActivityKind::Note, CrmObject::Lead, LEAD),
            ])
            .unwrap(),
        )
        .unwrap();
        let r = &body["records"];
        assert_eq!(body["allOrNone"], false);
        assert_eq!(
            (r[0]["attributes"]["type"].as_str(), r[0]["WhoId"].as_str()),
            (Some("Task"), Some(LEAD))
        );
        assert_eq!(r[0]["ActivityDate"], "2026-12-06");
        assert_eq!(r[0]["Status"], "Not Started");
        assert_eq!(r[1]["WhatId"], "001xx000003DGb2AAG");
        assert_eq!(
            (
                r[2]["attributes"]["type"].as_str(),
                r[2]["ParentId"].as_str()
            ),
            (Some("Note"), Some(LEAD))
        );
        assert!(r[2].get("id").is_none(), "a create carries no id");
    }

    #[test]
    fn the_body_is_the_documented_shape_and_empty_clears() {
        let numbers = number_fields(&default_fields());
        let body: Json =
            serde_json::from_str(&collections_body(&[w(LEAD, "87")], &numbers).unwrap()).unwrap();
        assert_eq!(
            body,
            json!({"allOrNone": false, "records": [{"attributes": {"type": "Lead"}, "id": LEAD,
                   "Leadscore_Score__c": 87, "Leadscore_Sla_Due__c": null}]})
        );
        let many: Vec<Write> = (0..201)
            .map(|i| w(&format!("00Q5e00000AbC{i:05}"), "1"))
            .collect();
        assert!(collections_body(&many, &numbers).is_err());
        assert!(collections_body(&many[..200], &numbers).is_ok());
        assert!(collections_body(&[w("short", "1")], &numbers).is_err());
        assert!(collections_body(&[w(LEAD, "high")], &numbers).is_err());
        assert_eq!(
            collections_path(API_VERSION),
            "/services/data/v68.0/composite/sobjects"
        );
    }

    #[test]
    fn results_are_read_per_record_in_order() {
        let sent = [
            w(LEAD, "1"),
            w("00Q5e00000AbCdEFGI", "2"),
            w("00Q5e00000AbCdEFGJ", "3"),
        ];
        let body = json!([
            {"id": LEAD, "success": true, "errors": []},
            {"id": null, "success": false, "errors": [{"statusCode": "ENTITY_IS_DELETED", "message": "entity is deleted", "fields": []}]},
            {"id": null, "success": false, "errors": [{"statusCode": "STRING_TOO_LONG", "message": "Leadscore Reasons: data value too large", "fields": ["Leadscore_Reasons__c"]}]}
        ]);
        let a = read_collections(
            200,
            Some("api-usage=18/15000"),
            &body.to_string(),
            sent.len(),
            0,
        );
        assert_eq!(a.outcomes[0], Outcome::Written { now_id: None });
        assert!(
            matches!(&a.outcomes[1], Outcome::Gone { reason } if reason.starts_with("ENTITY_IS_DELETED"))
        );
        assert!(matches!(&a.outcomes[2], Outcome::Refused { .. }));
        assert_eq!(a.api_usage, Some((18, 15_000)));
    }

    #[test]
    fn an_expired_token_and_a_spent_allocation_are_retried() {
        let sent = [w(LEAD, "1")];
        let a = read_collections(
            401,
            None,
            r#"[{"message":"Session expired or invalid","errorCode":"INVALID_SESSION_ID"}]"#,
            sent.len(),
            0,
        );
        assert!(a.token_expired);
        assert!(
            matches!(&a.outcomes[0], Outcome::Retry { reason, .. } if reason.contains("INVALID_SESSION_ID"))
        );
        let a = read_collections(
            403,
            None,
            r#"[{"message":"TotalRequests Limit exceeded.","errorCode":"REQUEST_LIMIT_EXCEEDED"}]"#,
            sent.len(),
            5,
        );
        assert_eq!(a.hold_until, Some(3_600_005));
        let t = read_token(200, r#"{"access_token":"00D!x","instance_url":"https://acme.my.salesforce.com","token_type":"Bearer","issued_at":"1"}"#).unwrap();
        assert_eq!(t.instance_url, "https://acme.my.salesforce.com");
        let e = read_token(
            400,
            r#"{"error":"invalid_client","error_description":"invalid client credentials"}"#,
        )
        .unwrap_err();
        assert!(e.to_string().contains("invalid_client"), "{e}");
        assert_eq!(
            token_form("a b", "s&x"),
            "grant_type=client_credentials&client_id=a%20b&client_secret=s%26x"
        );
    }

    #[test]
    fn field_names_are_custom_field_api_names() {
        for name in default_fields().values() {
            assert!(name_problem(name).is_none(), "{name}");
        }
        assert_eq!(default_fields()[&Value::SlaDue], "Leadscore_Sla_Due__c");
        for bad in ["Score", "Leadscore__Score__c", "_x__c", "x___c", "9x__c"] {
            assert!(name_problem(bad).is_some(), "{bad}");
        }
    }
}
