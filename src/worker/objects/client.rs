//! How the worker and the objects call an object: the internal routes' messages and one function
//! per call. Everything crosses as JSON of typed messages — events arrive parsed and validated by
//! the route that took them, so an object never parses an event again.

use serde::{de::DeserializeOwned, Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;
use worker::{Env, Method, Request, RequestInit};

use crate::crm::activities::Activity;
use crate::crm::Write;
use crate::error_code::ErrorCode;
use crate::event::{Event, EventError};
use crate::log::OutcomeSource;
use crate::outcome::{Outcome, OutcomeType};
use crate::score::Score;
use crate::worker::bindings::{ACCOUNTS, CRM_OUTBOXES, DEALS, LEADS, VISITORS};
use crate::worker::http::{ApiError, ApiResult};
use crate::worker::objects::crm_outbox::{OfferAnswer, OfferRequest, OutboxStatus};

/// An event as the route that took it validated it: parsed, beside the exact text it was parsed
/// from. It crosses to its object as that text and arrives parsed from it again, so no float is
/// printed and read back on the way (serde_json's default reader is not exact for every 17-digit
/// decimal) and the object's event is bit for bit the one the route checked.
#[derive(Debug, Clone)]
pub struct CheckedEvent {
    /// The event.
    pub event: Event,
    raw: Box<RawValue>,
}

impl CheckedEvent {
    /// [`Event::parse`], keeping the text.
    pub fn parse(text: &str) -> Result<CheckedEvent, EventError> {
        let event = Event::parse(text)?;
        let raw =
            RawValue::from_string(text.to_string()).map_err(|e| EventError::Json(e.to_string()))?;
        Ok(CheckedEvent { event, raw })
    }
}

impl Serialize for CheckedEvent {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.raw.serialize(s)
    }
}

impl<'de> Deserialize<'de> for CheckedEvent {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<CheckedEvent, D::Error> {
        let raw = Box::<RawValue>::deserialize(d)?;
        let event = serde_json::from_str(raw.get()).map_err(serde::de::Error::custom)?;
        Ok(CheckedEvent { event, raw })
    }
}

/// What the worker asks a visitor's object to do with a batch.
#[derive(Debug, Serialize, Deserialize)]
pub struct ApplyRequest {
    /// The visitor.
    pub visitor_id: String,
    /// Whether this visitor may be forwarded to the CRM (consent and no GPC); `None` keeps what
    /// the visitor's last batch said.
    pub crm: Option<bool>,
    /// Validated events of this visitor, in the batch's order.
    pub events: Vec<CheckedEvent>,
    /// Receive time (ms).
    pub now: i64,
    /// The lead id this request proved (a checked `lead_signature`, or a bearer caller): only a
    /// verified lead joins a lead and merges the lead's other visitors.
    #[serde(default)]
    pub verified_lead: Option<String>,
    /// Whether this visitor may be logged for retraining (analytics consent and no GPC); `None`
    /// keeps what the visitor's last batch said.
    #[serde(default)]
    pub analytics: Option<bool>,
    /// History (`POST /v1/import`): applied at its own timestamps (no clamping), always logged, no
    /// rate limit, never forwarded to the CRM, no score answered.
    #[serde(default)]
    pub import: bool,
    /// The account this request proved (a group event with a checked `account_signature`, or a
    /// bearer caller's): only a verified group makes the visitor a member of the account.
    #[serde(default)]
    pub verified_account: Option<String>,
}

impl ApplyRequest {
    /// The account of the batch's last group event: what a bearer caller's batch proves.
    pub fn group_account(events: &[CheckedEvent]) -> Option<String> {
        events
            .iter()
            .rev()
            .find(|e| e.event.kind == crate::event::EventType::Group)
            .and_then(|e| e.event.account_id.clone())
    }
}

/// A member joins an account (a verified group event), with the account's traits.
#[derive(Debug, Serialize, Deserialize)]
pub struct AccountJoin {
    /// The account.
    pub account: String,
    /// Its traits, from the group event.
    #[serde(default)]
    pub traits: std::collections::BTreeMap<String, crate::event::Value>,
}

/// A member's latest score for its account.
#[derive(Debug, Serialize, Deserialize)]
pub struct AccountMember {
    /// The account.
    pub account: String,
    /// The member.
    pub member: crate::account::Member,
    /// From history (an import): the account keeps it, and sends nothing for it.
    #[serde(default)]
    pub history: bool,
    /// The visitor id this member was known by before it proved its lead: no longer a member.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replaces: Option<String>,
}

/// Which member asks for its colleagues.
#[derive(Debug, Serialize, Deserialize)]
pub struct ColleaguesRequest {
    /// The member's id (its verified lead, else its visitor id).
    pub member: String,
}

/// A visitor object's answer to an [`ApplyRequest`].
#[derive(Debug, Serialize, Deserialize)]
pub struct ApplyResponse {
    /// The visitor's score after the batch (none for an import).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score: Option<Score>,
    /// Events counted.
    pub accepted: u32,
    /// Events already applied before (replays).
    pub duplicates: u32,
    /// Events older than the de-duplication window, refused.
    pub stale: u32,
}

/// What `POST /v1/outcomes` asks a visitor or lead object to keep.
#[derive(Debug, Serialize, Deserialize)]
pub struct OutcomesRequest {
    /// The lead, for a lead's object (its object learns its own name from it).
    pub lead: Option<String>,
    /// Validated outcomes about it.
    pub outcomes: Vec<Outcome>,
    /// Receive time (ms).
    pub received_at: i64,
    /// Which route took them.
    pub source: OutcomeSource,
}

/// A visitor or lead object's answer to [`OutcomesRequest`].
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct OutcomesResponse {
    /// Outcomes kept for the first time.
    pub accepted: u32,
    /// Outcomes it already had (re-sends; logged again all the same).
    pub duplicates: u32,
}

/// A HubSpot deal's outcome, before it is given to the deal's contacts' leads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DealOutcome {
    /// `hubspot:<eventId>`.
    pub id: String,
    /// What it means.
    #[serde(rename = "type")]
    pub kind: OutcomeType,
    /// `occurredAt`.
    pub ts: i64,
}

/// What the HubSpot route tells a deal's object: a contact linked or unlinked, or an outcome.
#[derive(Debug, Serialize, Deserialize)]
pub struct DealUpdate {
    /// The deal's id.
    pub deal: String,
    /// A contact linked (`false`) or unlinked (`true`).
    pub link: Option<(String, bool)>,
    /// An outcome of the deal.
    pub outcome: Option<DealOutcome>,
}

/// A deal object's answer: the outcomes each contact must now receive.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct DealAnswer {
    /// (contact id, outcome).
    pub due: Vec<(String, DealOutcome)>,
}

/// What a visitor tells its lead's object when it joins.
#[derive(Debug, Serialize, Deserialize)]
pub struct Join {
    /// The lead (its object learns its own name from its first join).
    pub lead: String,
    /// The visitor joining.
    pub visitor: String,
    /// Its CRM consent: only a consented visitor becomes the lead's merged view.
    pub crm: bool,
}

/// A lead object's answer to a visitor joining it.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct LeadMembers {
    /// The lead's other visitors, the merged view first, then the newest first.
    pub others: Vec<String>,
}

/// A visitor object's state, for merging into another visitor of the same lead.
#[derive(Debug, Serialize, Deserialize)]
pub struct Exported {
    /// Whose state.
    pub visitor_id: String,
    /// The core's state, postcard bytes in base64.
    pub state: String,
    /// The visitor's CRM consent: a state without it is never merged.
    #[serde(default)]
    pub crm: bool,
}

/// Which object `GET /v1/score/{id}` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScoreOf {
    /// A verified lead's merged view.
    Lead,
    /// A visitor id.
    Visitor,
}

impl ScoreOf {
    /// `lead` or `visitor`.
    pub fn as_str(self) -> &'static str {
        match self {
            ScoreOf::Lead => "lead",
            ScoreOf::Visitor => "visitor",
        }
    }
}

/// An internal route's URL (the host is never looked at); `lead`: asked on behalf of that lead.
fn url(route: &str, lead: Option<&str>) -> String {
    match lead {
        Some(l) => {
            let l = percent_encoding::utf8_percent_encode(l, percent_encoding::NON_ALPHANUMERIC);
            format!("https://object/{route}?lead={l}")
        }
        None => format!("https://object/{route}"),
    }
}

/// POSTs `req` as JSON to an internal route of the object `name` of namespace `ns` and reads its
/// JSON answer. An error answer is passed on with the object's own status and code (an unknown
/// code reads as internal) and, for 429, its `Retry-After`.
async fn post<Req: Serialize, Resp: DeserializeOwned>(
    env: &Env,
    ns: &str,
    name: &str,
    route: &str,
    req: &Req,
) -> ApiResult<Resp> {
    let stub = env.durable_object(ns)?.id_from_name(name)?.get_stub()?;
    let body = serde_json::to_string(req).map_err(ApiError::internal)?;
    let mut init = RequestInit::new();
    init.with_method(Method::Post).with_body(Some(body.into()));
    let r = Request::new_with_init(&url(route, None), &init)?;
    let mut resp = stub.fetch_with_request(r).await?;
    let status = resp.status_code();
    let text = resp.text().await?;
    if status != 200 {
        #[derive(Deserialize)]
        struct E {
            error: EB,
        }
        #[derive(Deserialize)]
        struct EB {
            code: ErrorCode,
            message: String,
        }
        let (code, message) = serde_json::from_str::<E>(&text)
            .map(|e| (e.error.code, e.error.message))
            .unwrap_or_else(|_| (ErrorCode::Internal, text.clone()));
        let mut err = ApiError::new(status, code, message);
        if status == 429 {
            err.retry_after = resp
                .headers()
                .get("retry-after")?
                .and_then(|v| v.parse().ok());
        }
        return Err(err);
    }
    serde_json::from_str(&text).map_err(ApiError::internal)
}

/// GETs an internal route: its status and body.
async fn get(
    env: &Env,
    ns: &str,
    name: &str,
    route: &str,
    lead: Option<&str>,
) -> ApiResult<(u16, String)> {
    let stub = env.durable_object(ns)?.id_from_name(name)?.get_stub()?;
    let mut resp = stub.fetch_with_str(&url(route, lead)).await?;
    Ok((resp.status_code(), resp.text().await?))
}

/// Hands writes and activities to a destination's outbox (`replay`: dead letters, a record the
/// CRM did not know tried again).
pub async fn crm_offer(
    env: &Env,
    destination: &str,
    writes: Vec<Write>,
    activities: Vec<Activity>,
    replay: bool,
) -> ApiResult<OfferAnswer> {
    let req = OfferRequest {
        destination: destination.to_string(),
        writes,
        activities,
        replay,
    };
    post(env, CRM_OUTBOXES, destination, "offer", &req).await
}

/// A destination's outbox: counters, waiting records, budget used.
pub async fn crm_status(env: &Env, destination: &str) -> ApiResult<OutboxStatus> {
    let (status, text) = get(env, CRM_OUTBOXES, destination, "status", None).await?;
    if status != 200 {
        return Err(ApiError::internal(format!(
            "outbox status {status}: {text}"
        )));
    }
    serde_json::from_str(&text).map_err(ApiError::internal)
}

/// Runs a destination's setup (HubSpot: the property group and properties): `(step, status, message)`.
pub async fn crm_setup(env: &Env, destination: &str) -> ApiResult<Vec<(String, u16, String)>> {
    post(
        env,
        CRM_OUTBOXES,
        destination,
        "setup",
        &destination.to_string(),
    )
    .await
}

/// Applies a batch in its visitor's object.
pub async fn apply(env: &Env, req: &ApplyRequest) -> ApiResult<ApplyResponse> {
    post(env, VISITORS, &req.visitor_id, "apply", req).await
}

/// Sends outcomes to the object of the lead (`lead: Some`) or of the visitor they are about.
pub async fn keep_outcomes(
    env: &Env,
    visitor: Option<&str>,
    req: &OutcomesRequest,
) -> ApiResult<OutcomesResponse> {
    match (&req.lead, visitor) {
        (Some(l), _) => post(env, LEADS, l, "outcomes", req).await,
        (None, Some(v)) => post(env, VISITORS, v, "outcomes", req).await,
        (None, None) => Err(ApiError::internal(
            "an outcome with neither lead nor visitor",
        )),
    }
}

/// Sends a [`DealUpdate`] to its deal's object.
pub async fn update_deal(env: &Env, update: &DealUpdate) -> ApiResult<DealAnswer> {
    post(env, DEALS, &update.deal, "deal", update).await
}

/// The visitor whose state is `lead`'s merged view, if it has one.
pub async fn lead_view(env: &Env, lead: &str) -> ApiResult<Option<String>> {
    let (status, text) = get(env, LEADS, lead, "view", None).await?;
    if status != 200 {
        return Err(ApiError::internal(format!("lead view: HTTP {status}")));
    }
    let view: LeadView = serde_json::from_str(&text).map_err(ApiError::internal)?;
    Ok(view.merged_view)
}

/// A lead object's merged view.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct LeadView {
    /// The visitor whose state is the lead's score, if any.
    pub merged_view: Option<String>,
}

/// A member joins an account.
pub async fn account_join(env: &Env, join: &AccountJoin) -> ApiResult<serde_json::Value> {
    post(env, ACCOUNTS, &join.account, "join", join).await
}

/// A member's new score for its account: the account's score after it.
pub async fn account_member(
    env: &Env,
    m: &AccountMember,
) -> ApiResult<crate::account::AccountScore> {
    post(env, ACCOUNTS, &m.account, "member", m).await
}

/// The latest activity (ms) of every other member of `account`, for account features.
pub async fn account_colleagues(env: &Env, account: &str, member: &str) -> ApiResult<Vec<i64>> {
    let req = ColleaguesRequest {
        member: member.to_string(),
    };
    post(env, ACCOUNTS, account, "colleagues", &req).await
}

/// An account's score, if it has members.
pub async fn account_score(env: &Env, id: &str) -> ApiResult<Option<crate::account::AccountScore>> {
    let (status, text) = get(env, ACCOUNTS, id, "score", None).await?;
    if status != 200 {
        return Ok(None);
    }
    serde_json::from_str(&text)
        .map(Some)
        .map_err(ApiError::internal)
}

/// A verified visitor joins its lead's object; the answer names the lead's other visitors.
pub async fn join_lead(env: &Env, join: &Join) -> ApiResult<LeadMembers> {
    post(env, LEADS, &join.lead, "join", join).await
}

/// Another visitor's state, for `lead`'s merge: `None` when it has none to give (expired, never
/// sent an event, no longer this lead's).
pub async fn visitor_state(env: &Env, visitor: &str, lead: &str) -> ApiResult<Option<Exported>> {
    let (status, text) = get(env, VISITORS, visitor, "state", Some(lead)).await?;
    if status != 200 {
        return Ok(None);
    }
    Ok(serde_json::from_str(&text).ok())
}

/// The current score of a lead (its merged view) or of a visitor, if known.
pub async fn score(env: &Env, id: &str, of: ScoreOf) -> ApiResult<Option<Score>> {
    let (status, text) = match of {
        ScoreOf::Lead => get(env, LEADS, id, "score", None).await?,
        ScoreOf::Visitor if id.starts_with(crate::event::RESERVED_VISITOR_PREFIX) => {
            return Ok(None)
        }
        ScoreOf::Visitor => get(env, VISITORS, id, "score", None).await?,
    };
    if status != 200 {
        return Ok(None);
    }
    serde_json::from_str(&text)
        .map(Some)
        .map_err(ApiError::internal)
}

/// A lead's merged view's score, answered by the visitor only while it is that lead's, verified
/// and consented: (status, body) to pass on.
pub async fn score_for_lead(env: &Env, visitor: &str, lead: &str) -> ApiResult<(u16, String)> {
    get(env, VISITORS, visitor, "score", Some(lead)).await
}

/// The arm that scores this visitor now, or the one its first sight will pin (`GET /v1/config`
/// tells the page, which then loads that arm's bundle).
pub async fn arm(env: &Env, visitor_id: &str) -> ApiResult<Option<String>> {
    let vid = percent_encoding::utf8_percent_encode(visitor_id, percent_encoding::NON_ALPHANUMERIC);
    let (status, text) = get(env, VISITORS, visitor_id, &format!("arm?vid={vid}"), None).await?;
    if status != 200 {
        return Err(ApiError::internal(text));
    }
    serde_json::from_str(&text).map_err(ApiError::internal)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_reaches_its_object_with_the_bits_it_was_checked_with() {
        // 17 significant digits: a value printed and read back need not be the same double.
        let text = r#"{"id":"e1","type":"engaged","ts":1763900121000,"visitor_id":"v1","engaged_ms":7.0368744177664012e3,"props":{"depth":0.30000000000000004}}"#;
        let req = ApplyRequest {
            visitor_id: "v1".into(),
            crm: None,
            events: vec![CheckedEvent::parse(text).unwrap()],
            now: 0,
            verified_lead: None,
            analytics: None,
            import: false,
            verified_account: None,
        };
        let wire = serde_json::to_string(&req).unwrap();
        assert!(
            wire.contains(text),
            "the event crosses as its own text: {wire}"
        );
        let got: ApplyRequest = serde_json::from_str(&wire).unwrap();
        assert_eq!(got.events[0].event, Event::parse(text).unwrap());
        let bits = |e: &Event| e.engaged_ms.map(f64::to_bits);
        assert_eq!(
            bits(&got.events[0].event),
            bits(&Event::parse(text).unwrap())
        );
        assert!(CheckedEvent::parse(r#"{"id":"e1"}"#).is_err());
    }
}
