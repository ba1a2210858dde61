//! HubSpot: contacts and companies updated through the date-versioned CRM objects API, the
//! leadscore properties created once through the properties API (`setup`).
//!
//! As HubSpot documents them (developers.hubspot.com, API version `2026-03`):
//! * `POST /crm/objects/2026-03/{contacts|companies}/batch/update`, body
//!   `{"inputs":[{"id","properties"}]}`, at most [`MAX_INPUTS`] inputs; `200` when every input was
//!   updated, `207` with `errors[{status, category, message, context: {ids}}]` when some were not;
//! * `POST /crm/objects/2026-03/{tasks|notes}/batch/create`, each input with its `associations` (task
//!   → contact 204, note → contact 202, task → company 192, note → company 190) and an
//!   `objectWriteTraceId` that its result echoes;
//! * `POST /crm/properties/2026-03/{objectType}/groups` and `…/{objectType}` create a property
//!   group and a property (`409` when it already exists: setup is idempotent);
//! * `429` with `{"errorType":"RATE_LIMIT","policyName":"TEN_SECONDLY_ROLLING"|"DAILY"}` (the burst
//!   limit per 10 s or the daily limit), `Retry-After` honoured when sent;
//! * `Authorization: Bearer <token>`: a static auth token of a HubSpot app installed in the portal
//!   (or a legacy private app's token), kept as the `HUBSPOT_TOKEN` secret.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{json, Value as Json};

use super::activities::{Activity, ActivityKind};
use super::fields::{FieldMap, Kind, Value};
use super::{CrmError, CrmObject, Outcome, Write};
use crate::calendar::{iso_utc, DAY_MS};
use crate::webhook::parse_retry_after;

/// The API version leadscore writes with (a path segment; configurable per destination).
pub const API_VERSION: &str = "2026-03";
/// Inputs per batch update.
pub const MAX_INPUTS: usize = 100;
/// The documented burst limit of the lowest tier (calls per 10 s per app).
pub const DEFAULT_BURST: u32 = 100;
/// The burst limit's interval.
pub const BURST_INTERVAL_MS: i64 = 10_000;
/// The property group leadscore's properties are created in.
pub const GROUP: &str = "leadscore";
/// Longest property name HubSpot accepts.
pub const MAX_NAME_CHARS: usize = 100;
/// A single-line or multi-line text property's limit.
pub const MAX_TEXT_CHARS: usize = 65_536;

/// The object type's path segment.
pub fn object_type(object: CrmObject) -> Result<&'static str, CrmError> {
    match object {
        CrmObject::Contact => Ok("contacts"),
        CrmObject::Company => Ok("companies"),
        CrmObject::Lead => Err(CrmError::Config(
            "HubSpot writes contacts and companies; a lead is a contact there".into(),
        )),
    }
}

/// Why a name cannot be a HubSpot property's internal name (lowercase letters, digits and `_`,
/// starting with a letter), if it cannot.
pub fn name_problem(name: &str) -> Option<String> {
    let ok = name.len() <= MAX_NAME_CHARS
        && name.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    (!ok).then(|| {
        format!("is not a HubSpot internal property name (a–z, 0–9, _; a letter first; ≤ {MAX_NAME_CHARS})")
    })
}

/// Why an id cannot be a HubSpot record id (its numeric id, as digits), if it cannot.
pub fn id_problem(id: &str) -> Option<String> {
    let ok = !id.is_empty() && id.len() <= 20 && id.bytes().all(|b| b.is_ascii_digit());
    (!ok).then(|| format!("{id:?} is not a HubSpot record id (digits)"))
}

/// The properties leadscore writes, by default.
pub fn default_fields() -> FieldMap {
    Value::ALL
        .iter()
        .map(|v| (*v, format!("leadscore_{}", v.as_str())))
        .collect()
}

/// `POST` path of a batch update.
pub fn batch_update_path(version: &str, object: CrmObject) -> Result<String, CrmError> {
    Ok(format!(
        "/crm/objects/{version}/{}/batch/update",
        object_type(object)?
    ))
}

/// The body of a batch update of `writes` (one object type, distinct ids, at most [`MAX_INPUTS`]).
/// An empty value clears the property, as HubSpot documents.
pub fn batch_update_body(writes: &[Write]) -> Result<String, CrmError> {
    if writes.is_empty() || writes.len() > MAX_INPUTS {
        return Err(CrmError::Request(format!(
            "a batch update takes 1–{MAX_INPUTS} inputs, not {}",
            writes.len()
        )));
    }
    let object = writes[0].record.object;
    let mut ids = std::collections::BTreeSet::new();
    let mut inputs = Vec::with_capacity(writes.len());
    for w in writes {
        if w.record.object != object {
            return Err(CrmError::Request(
                "a batch update writes one object type".into(),
            ));
        }
        if let Some(why) = id_problem(&w.record.id) {
            return Err(CrmError::Request(why));
        }
        if !ids.insert(w.record.id.as_str()) {
            return Err(CrmError::Request(format!(
                "record {} appears twice in one batch",
                w.record.id
            )));
        }
        inputs.push(json!({"id": w.record.id, "properties": w.fields}));
    }
    Ok(json!({ "inputs": inputs }).to_string())
}

/// One batch's answer, read per input.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    /// One outcome per sent write, in order.
    pub outcomes: Vec<Outcome>,
    /// No call to this portal before this time (ms): its limits said to wait.
    pub hold_until: Option<i64>,
}

#[derive(Deserialize)]
struct BatchBody {
    #[serde(default)]
    results: Vec<ResultItem>,
    #[serde(default)]
    errors: Vec<ErrorItem>,
}

#[derive(Deserialize)]
struct ResultItem {
    id: String,
}

#[derive(Deserialize)]
struct ErrorItem {
    #[serde(default)]
    category: String,
    #[serde(default)]
    message: String,
    #[serde(default)]
    context: BTreeMap<String, Json>,
}

#[derive(Deserialize)]
struct LimitBody {
    #[serde(default, rename = "policyName")]
    policy_name: String,
    #[serde(default)]
    message: String,
}

fn all(n: usize, o: Outcome) -> Vec<Outcome> {
    vec![o; n]
}

fn message_of(body: &str) -> String {
    let m = serde_json::from_str::<Json>(body)
        .ok()
        .and_then(|j| j.get("message").and_then(Json::as_str).map(str::to_string));
    let text = m.unwrap_or_else(|| body.chars().take(200).collect());
    text.chars().take(300).collect()
}

/// Reads a batch update's answer (`status`, its `Retry-After` header, its body) for `sent`, at `now`.
pub fn read_batch_update(
    status: u16,
    retry_after: Option<&str>,
    body: &str,
    sent: &[Write],
    now: i64,
) -> Answer {
    match status {
        200 | 207 => read_multi_status(status, body, sent),
        _ => read_failure(status, retry_after, body, sent.len(), now),
    }
}

/// Reads an answer that is not a batch result (limits, outages, auth, configuration) for `n`
/// inputs: every input shares it.
fn read_failure(status: u16, retry_after: Option<&str>, body: &str, n: usize, now: i64) -> Answer {
    let retry = |after_ms: Option<i64>, reason: String| Outcome::Retry { after_ms, reason };
    match status {
        429 => {
            let limit: Option<LimitBody> = serde_json::from_str(body).ok();
            let (policy, said) = limit
                .map(|l| (l.policy_name, l.message))
                .unwrap_or_default();
            let policy = policy.as_str();
            let told = parse_retry_after(retry_after, now).map(|s| i64::from(s) * 1000);
            // A daily limit lasts until midnight in the portal's time zone, which we do not know: wait
            // for the next UTC midnight; if the portal's day has not ended, its next 429 says so again.
            let wait = told.unwrap_or(match policy {
                "DAILY" => (now.div_euclid(DAY_MS) + 1) * DAY_MS - now,
                _ => BURST_INTERVAL_MS,
            });
            let why = format!(
                "HubSpot 429 {}: {}",
                if policy.is_empty() {
                    "RATE_LIMIT"
                } else {
                    policy
                },
                said
            );
            Answer {
                outcomes: all(n, retry(Some(wait), why)),
                hold_until: Some(now + wait),
            }
        }
        401 | 403 => Answer {
            // The token is wrong, expired or lacks a scope: kept and retried while it is fixed.
            outcomes: all(
                n,
                retry(None, format!("HubSpot {status}: {}", message_of(body))),
            ),
            hold_until: None,
        },
        408 | 500..=599 => Answer {
            outcomes: all(
                n,
                retry(
                    parse_retry_after(retry_after, now).map(|s| i64::from(s) * 1000),
                    format!("HubSpot {status}: {}", message_of(body)),
                ),
            ),
            hold_until: None,
        },
        _ => Answer {
            // 400 (a property that does not exist, a value it refuses), 404: configuration.
            outcomes: all(
                n,
                Outcome::Refused {
                    reason: format!("HubSpot {status}: {}", message_of(body)),
                },
            ),
            hold_until: None,
        },
    }
}

fn read_multi_status(status: u16, body: &str, sent: &[Write]) -> Answer {
    let n = sent.len();
    let Ok(parsed) = serde_json::from_str::<BatchBody>(body) else {
        // Not the documented shape: the writes are idempotent, so send them again.
        return Answer {
            outcomes: all(
                n,
                Outcome::Retry {
                    after_ms: None,
                    reason: format!("HubSpot {status}: an answer that is not a batch result"),
                },
            ),
            hold_until: None,
        };
    };
    let written: std::collections::BTreeSet<&str> =
        parsed.results.iter().map(|r| r.id.as_str()).collect();
    let mut by_id: BTreeMap<String, Outcome> = BTreeMap::new();
    let mut unattributed: Option<Outcome> = None;
    for e in &parsed.errors {
        let reason = format!("{}: {}", e.category, e.message);
        let outcome = match e.category.as_str() {
            "OBJECT_NOT_FOUND" => Outcome::Gone { reason },
            "RATE_LIMITS" | "RATE_LIMIT" => Outcome::Retry {
                after_ms: Some(BURST_INTERVAL_MS),
                reason,
            },
            _ => Outcome::Refused { reason },
        };
        let ids: Vec<String> = match e.context.get("ids").or_else(|| e.context.get("id")) {
            Some(Json::Array(a)) => a
                .iter()
                .filter_map(|v| match v {
                    Json::String(s) => Some(s.clone()),
                    Json::Number(x) => Some(x.to_string()),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        };
        if ids.is_empty() {
            unattributed.get_or_insert(outcome);
        } else {
            for id in ids {
                by_id.entry(id).or_insert_with(|| outcome.clone());
            }
        }
    }
    // A merged record answers under its new id: when exactly one input is neither written nor in
    // error and exactly one result id was not sent, that is the same record.
    let sent_ids: std::collections::BTreeSet<&str> =
        sent.iter().map(|w| w.record.id.as_str()).collect();
    let extra: Vec<&str> = written.difference(&sent_ids).copied().collect();
    let missing: Vec<&str> = sent_ids
        .iter()
        .filter(|id| !written.contains(*id) && !by_id.contains_key(**id))
        .copied()
        .collect();
    let merged = match (extra.as_slice(), missing.as_slice()) {
        ([new], [old]) => Some((old.to_string(), new.to_string())),
        _ => None,
    };
    let outcomes = sent
        .iter()
        .map(|w| {
            let id = w.record.id.as_str();
            if let Some(o) = by_id.get(id) {
                return o.clone();
            }
            if written.contains(id) {
                return Outcome::Written { now_id: None };
            }
            if let Some((old, new)) = &merged {
                if old == id {
                    return Outcome::Written {
                        now_id: Some(new.clone()),
                    };
                }
            }
            match (&unattributed, status) {
                (Some(o), _) => o.clone(),
                // A 200 is "every input was updated", whatever the results list.
                (None, 200) => Outcome::Written { now_id: None },
                (None, _) => Outcome::Retry {
                    after_ms: None,
                    reason: "HubSpot 207: the input is neither in the results nor in the errors"
                        .into(),
                },
            }
        })
        .collect();
    Answer {
        outcomes,
        hold_until: None,
    }
}

/// `POST` path of a batch create of tasks or notes.
pub fn activities_path(version: &str, kind: ActivityKind) -> String {
    let objects = match kind {
        ActivityKind::Task => "tasks",
        ActivityKind::Note => "notes",
    };
    format!("/crm/objects/{version}/{objects}/batch/create")
}

/// The association type of an activity to its record (HubSpot-defined ids).
fn association_type(kind: ActivityKind, object: CrmObject) -> Result<u32, CrmError> {
    match (kind, object) {
        (ActivityKind::Task, CrmObject::Contact) => Ok(204),
        (ActivityKind::Note, CrmObject::Contact) => Ok(202),
        (ActivityKind::Task, CrmObject::Company) => Ok(192),
        (ActivityKind::Note, CrmObject::Company) => Ok(190),
        (_, CrmObject::Lead) => Err(CrmError::Request(
            "HubSpot activities go on contacts and companies".into(),
        )),
    }
}

/// The body of a batch create of `acts` (one kind, at most [`MAX_INPUTS`]): each input associated
/// with its record and carrying its id as `objectWriteTraceId`, so the answer is read per input.
pub fn activities_body(acts: &[Activity]) -> Result<String, CrmError> {
    if acts.is_empty() || acts.len() > MAX_INPUTS {
        return Err(CrmError::Request(format!(
            "a batch create takes 1–{MAX_INPUTS} inputs, not {}",
            acts.len()
        )));
    }
    let kind = acts[0].kind;
    let mut inputs = Vec::with_capacity(acts.len());
    for a in acts {
        if a.kind != kind {
            return Err(CrmError::Request("a batch create makes one kind".into()));
        }
        if let Some(why) = id_problem(&a.record.id) {
            return Err(CrmError::Request(why));
        }
        let mut p = match kind {
            ActivityKind::Task => json!({
                "hs_timestamp": iso_utc(a.due_at), "hs_task_subject": a.subject,
                "hs_task_body": a.body, "hs_task_status": "NOT_STARTED",
                "hs_task_priority": "HIGH", "hs_task_type": "TODO"}),
            ActivityKind::Note => json!({
                "hs_timestamp": iso_utc(a.at),
                "hs_note_body": format!("{}\n\n{}", a.subject, a.body)}),
        };
        if let (Some(owner), Some(map)) = (&a.owner_id, p.as_object_mut()) {
            map.insert("hubspot_owner_id".into(), json!(owner));
        }
        let types = json!([{"associationCategory": "HUBSPOT_DEFINED",
                            "associationTypeId": association_type(kind, a.record.object)?}]);
        inputs.push(json!({"properties": p, "objectWriteTraceId": a.id,
                           "associations": [{"to": {"id": a.record.id}, "types": types}]}));
    }
    Ok(json!({ "inputs": inputs }).to_string())
}

#[derive(Deserialize)]
struct CreatedBody {
    #[serde(default)]
    results: Vec<CreatedItem>,
    #[serde(default)]
    errors: Vec<ErrorItem>,
}

#[derive(Deserialize)]
struct CreatedItem {
    #[serde(default, rename = "objectWriteTraceId")]
    trace: Option<String>,
}

/// Reads a batch create's answer for `sent`: an input is created when a result carries its
/// `objectWriteTraceId` (or when every input has a result); one in error is refused, with why.
pub fn read_activities_create(
    status: u16,
    retry_after: Option<&str>,
    body: &str,
    sent: &[Activity],
    now: i64,
) -> Answer {
    let n = sent.len();
    if !matches!(status, 200 | 201 | 207) {
        return read_failure(status, retry_after, body, n, now);
    }
    let Ok(parsed) = serde_json::from_str::<CreatedBody>(body) else {
        // Not the documented shape: whether anything was made is unknown; sending again could
        // double it, so keep them as dead letters to look at and replay.
        return Answer {
            outcomes: all(
                n,
                Outcome::Refused {
                    reason: format!("HubSpot {status}: an answer that is not a batch result"),
                },
            ),
            hold_until: None,
        };
    };
    let made: std::collections::BTreeSet<&str> = parsed
        .results
        .iter()
        .filter_map(|r| r.trace.as_deref())
        .collect();
    let every = parsed.errors.is_empty() && parsed.results.len() == n;
    let error_of = |id: &str| {
        parsed
            .errors
            .iter()
            .find(|e| e.context.values().any(|v| v.to_string().contains(id)))
            .or(parsed.errors.first())
            .map(|e| format!("{}: {}", e.category, e.message))
    };
    let outcomes = sent
        .iter()
        .map(|a| {
            if every || made.contains(a.id.as_str()) {
                return Outcome::Written { now_id: None };
            }
            let reason = error_of(&a.id)
                .unwrap_or_else(|| format!("HubSpot {status}: the input is not in the results"));
            if reason.starts_with("RATE_LIMIT") {
                Outcome::Retry {
                    after_ms: Some(BURST_INTERVAL_MS),
                    reason,
                }
            } else {
                Outcome::Refused { reason }
            }
        })
        .collect();
    Answer {
        outcomes,
        hold_until: None,
    }
}

/// The property group's `POST` (path, body).
pub fn group_request(version: &str, object: CrmObject) -> Result<(String, String), CrmError> {
    Ok((
        format!("/crm/properties/{version}/{}/groups", object_type(object)?),
        json!({"name": GROUP, "label": "leadscore", "displayOrder": -1}).to_string(),
    ))
}

/// Each mapped value's property `POST` (path, body): number, datetime or text, in the leadscore group.
pub fn property_requests(
    version: &str,
    object: CrmObject,
    fields: &FieldMap,
) -> Result<Vec<(String, String)>, CrmError> {
    let path = format!("/crm/properties/{version}/{}", object_type(object)?);
    Ok(fields
        .iter()
        .map(|(v, name)| {
            let (kind, field_type) = match v.kind() {
                Kind::Number => ("number", "number"),
                Kind::Time => ("datetime", "date"),
                Kind::Text => ("string", "text"),
                Kind::LongText => ("string", "textarea"),
            };
            let label = format!("leadscore {}", v.as_str().replace('_', " "));
            let body = json!({"name": name, "label": label, "type": kind, "fieldType": field_type,
                              "groupName": GROUP, "description": v.description(), "formField": false});
            (path.clone(), body.to_string())
        })
        .collect())
}

/// Whether a setup step's answer means the thing exists now (`409`: it already did).
pub fn setup_done(status: u16) -> bool {
    matches!(status, 200 | 201 | 409)
}

#[cfg(test)]
mod tests {
    use super::super::RecordKey;
    use super::*;

    fn w(id: &str) -> Write {
        Write {
            record: RecordKey {
                object: CrmObject::Contact,
                id: id.into(),
            },
            scored_at: 1,
            fields: [("leadscore_score".to_string(), "87".to_string())].into(),
        }
    }

    fn activity(id: &str, kind: ActivityKind) -> Activity {
        Activity {
            id: format!("hot_{id}_1"),
            alert: crate::crm::activities::Alert::Hot,
            kind,
            record: RecordKey {
                object: CrmObject::Contact,
                id: id.into(),
            },
            subject: "Hot lead: score 87".into(),
            body: "+ 3 webinars".into(),
            due_at: 14_400_000,
            at: 0,
            owner_id: Some("64492917".into()),
        }
    }

    #[test]
    fn activities_are_created_on_their_records_and_read_by_trace_id() {
        let sent = [
            activity("101", ActivityKind::Task),
            activity("102", ActivityKind::Task),
        ];
        let body: Json = serde_json::from_str(&activities_body(&sent).unwrap()).unwrap();
        let first = &body["inputs"][0];
        assert_eq!(first["objectWriteTraceId"], "hot_101_1");
        assert_eq!(
            first["properties"]["hs_timestamp"],
            "1970-01-01T04:00:00.000Z"
        );
        assert_eq!(first["properties"]["hubspot_owner_id"], "64492917");
        assert_eq!(first["associations"][0]["to"]["id"], "101");
        assert_eq!(
            first["associations"][0]["types"][0]["associationTypeId"],
            204
        );
        assert_eq!(
            activities_path("2026-03", ActivityKind::Note),
            "/crm/objects/2026-03/notes/batch/create"
        );
        let note: Json =
            serde_json::from_str(&activities_body(&[activity("101", ActivityKind::Note)]).unwrap())
                .unwrap();
        assert_eq!(
            note["inputs"][0]["associations"][0]["types"][0]["associationTypeId"],
            202
        );
        assert!(activities_body(&[
            activity("101", ActivityKind::Task),
            activity("1", ActivityKind::Note)
        ])
        .is_err());
        // 207: one created, one whose record is missing.
        let answer = r#"{"status":"COMPLETE","results":[{"id":"9","objectWriteTraceId":"hot_101_1"}],
            "numErrors":1,"errors":[{"status":"error","category":"VALIDATION_ERROR","message":"no such contact",
            "context":{"objectWriteTraceId":["hot_102_1"]}}]}"#;
        let a = read_activities_create(207, None, answer, &sent, 0);
        assert_eq!(a.outcomes[0], Outcome::Written { now_id: None });
        assert!(
            matches!(&a.outcomes[1], Outcome::Refused { reason } if reason.contains("no such contact"))
        );
        // A limit: both retried.
        let limited = read_activities_create(
            429,
            Some("3"),
            r#"{"errorType":"RATE_LIMIT","policyName":"TEN_SECONDLY_ROLLING"}"#,
            &sent,
            0,
        );
        assert!(limited
            .outcomes
            .iter()
            .all(|o| matches!(o, Outcome::Retry { .. })));
        assert_eq!(limited.hold_until, Some(3_000));
    }

    #[test]
    fn the_batch_is_the_documented_shape_within_its_limits() {
        let body: Json =
            serde_json::from_str(&batch_update_body(&[w("51"), w("52")]).unwrap()).unwrap();
        assert_eq!(
            body,
            json!({"inputs": [{"id": "51", "properties": {"leadscore_score": "87"}},
                              {"id": "52", "properties": {"leadscore_score": "87"}}]})
        );
        assert_eq!(
            batch_update_path(API_VERSION, CrmObject::Company).unwrap(),
            "/crm/objects/2026-03/companies/batch/update"
        );
        let many: Vec<Write> = (0..101).map(|i| w(&i.to_string())).collect();
        assert!(batch_update_body(&many).is_err());
        assert!(batch_update_body(&many[..100]).is_ok());
        assert!(
            batch_update_body(&[w("51"), w("51")]).is_err(),
            "one input per record"
        );
        assert!(batch_update_body(&[w("../x")]).is_err());
        assert!(batch_update_path(API_VERSION, CrmObject::Lead).is_err());
    }

    #[test]
    fn a_207_is_read_per_record_and_a_merge_keeps_its_write() {
        let sent = [w("1"), w("2"), w("3"), w("4")];
        let body = json!({"status": "COMPLETE", "numErrors": 2,
            "results": [{"id": "1", "properties": {}}, {"id": "99", "properties": {}}],
            "errors": [
                {"status": "error", "category": "OBJECT_NOT_FOUND",
                 "message": "Could not get some CONTACT objects, they may be deleted or not exist. Check that ids are valid.",
                 "context": {"ids": ["2"]}},
                {"status": "error", "category": "VALIDATION_ERROR", "message": "Property values were not valid",
                 "context": {"ids": ["3"]}}]});
        let a = read_batch_update(207, None, &body.to_string(), &sent, 0);
        assert_eq!(a.outcomes[0], Outcome::Written { now_id: None });
        assert!(
            matches!(&a.outcomes[1], Outcome::Gone { reason } if reason.starts_with("OBJECT_NOT_FOUND"))
        );
        assert!(matches!(&a.outcomes[2], Outcome::Refused { .. }));
        assert_eq!(
            a.outcomes[3],
            Outcome::Written {
                now_id: Some("99".into())
            },
            "merged into 99"
        );
    }

    #[test]
    fn limits_outages_and_configuration_errors() {
        let sent = [w("1"), w("2")];
        let burst = json!({"status": "error", "message": "You have reached your ten_secondly_rolling limit.",
                           "errorType": "RATE_LIMIT", "policyName": "TEN_SECONDLY_ROLLING"});
        let a = read_batch_update(429, None, &burst.to_string(), &sent, 1_000);
        assert_eq!(a.hold_until, Some(11_000));
        assert!(matches!(
            &a.outcomes[1],
            Outcome::Retry {
                after_ms: Some(10_000),
                ..
            }
        ));
        let a = read_batch_update(429, Some("3"), &burst.to_string(), &sent, 1_000);
        assert_eq!(a.hold_until, Some(4_000), "Retry-After wins");
        let daily = json!({"errorType": "RATE_LIMIT", "policyName": "DAILY", "message": "daily"});
        let a = read_batch_update(429, None, &daily.to_string(), &sent, DAY_MS + 5);
        assert_eq!(a.hold_until, Some(2 * DAY_MS));
        for s in [500, 502, 503, 401, 403] {
            let a = read_batch_update(s, None, "{\"message\":\"down\"}", &sent, 0);
            assert!(
                a.outcomes
                    .iter()
                    .all(|o| matches!(o, Outcome::Retry { .. })),
                "{s}"
            );
        }
        let a = read_batch_update(
            400,
            None,
            r#"{"status":"error","message":"Property \"leadscore_score\" does not exist","category":"VALIDATION_ERROR"}"#,
            &sent,
            0,
        );
        assert!(
            matches!(&a.outcomes[0], Outcome::Refused { reason } if reason.contains("does not exist"))
        );
        let a = read_batch_update(207, None, "not json", &sent, 0);
        assert!(matches!(&a.outcomes[0], Outcome::Retry { .. }));
    }

    #[test]
    fn setup_creates_the_group_and_one_property_per_mapped_value() {
        let reqs = property_requests(API_VERSION, CrmObject::Contact, &default_fields()).unwrap();
        assert_eq!(reqs.len(), Value::ALL.len());
        let score: Json = serde_json::from_str(&reqs[0].1).unwrap();
        assert_eq!(reqs[0].0, "/crm/properties/2026-03/contacts");
        assert_eq!(
            (score["name"].as_str(), score["type"].as_str()),
            (Some("leadscore_score"), Some("number"))
        );
        assert_eq!(score["groupName"], GROUP);
        let (path, _) = group_request(API_VERSION, CrmObject::Company).unwrap();
        assert_eq!(path, "/crm/properties/2026-03/companies/groups");
        assert!(setup_done(409) && !setup_done(400));
        assert!(name_problem("leadscore_score").is_none());
        assert!(name_problem("LeadScore").is_some() && name_problem("1x").is_some());
    }
}
