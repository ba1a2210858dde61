//! The per-visitor Durable Object: the only writer of a visitor's state, so batches apply in
//! order and a replayed batch counts once (the core's de-duplication).
//!
//! Stored under one key: the core's compact state plus what was last sent to the CRM, the
//! visitor's CRM consent, a rate window and the pending (debounced) send. An alarm fires either
//! when a debounced send is due or when the visitor has been idle for the retention period
//! (then everything is deleted).
//!
//! **Leads.** A lead id gets its own directory object (`lead:<id>`; no visitor id may start with
//! `lead:`) listing the lead's visitors (at most [`crate::lead::MAX_LEAD_VISITORS`], the oldest dropped first)
//! and naming the *merged view*: the CRM-consented visitor that joined the lead last. Only a
//! **verified** identify (the site backend's signature of the lead id, or a bearer caller; see
//! [`crate::identity`]) joins a lead. When one is applied to visitor V with lead L:
//! 1. V joins `lead:L`; if V is new to the lead and has CRM consent it becomes the merged view, and
//!    the directory answers with the lead's other visitors, the previous merged view first;
//! 2. V fetches each one's state (internal `GET /state`) that its state has not absorbed yet and
//!    merges those **with CRM consent** into its own with the core's [`VisitorState::merge`], the
//!    most complete state first (so a previous merged view brings its sources along and they are
//!    not fetched again); a visitor without consent is never merged (its behaviour must not reach
//!    the CRM through another device) and may be merged later, once it consents;
//! 3. then, once, V's score goes through the webhook policy: the CRM hears of the merged score, not
//!    of the pre-merge one first; `GET /v1/score/L` answers with V's score.
//!
//! An unverified identify (a form fill, a claim) tags V's own state with the lead id and traits —
//! its webhooks say `"verified": false` — and reads or changes nothing of any other visitor. A
//! claim never replaces a lead V has verified.
//!
//! Replays count nothing twice: a merged state remembers its sources, so a repeated identify
//! (same or new event id) finds nothing left to merge. The other devices keep their own objects:
//! their later events update their own state, score and webhooks (with their `visitor_id`), not
//! the merged view, which holds each of them as it was when merged (a state is an aggregate, so
//! merging it again would count its earlier part twice). A device already in the lead that
//! identifies again does not take over the merged view.

mod lead;

use std::cell::RefCell;

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use worker::*;

use super::arms;
use super::logs;
use super::outbox::{Delivery, QUEUE};
use super::{now_ms, query, var_num, ApiError, ApplyRequest, ApplyResponse};
use crate::error_code::ErrorCode;
use crate::event::{Event, EventType};
use crate::explain::ShapMemo;
use crate::log::{EventSource, Record as LogRecord};
use crate::rate_limit::RateWindow;
use crate::score::{Score, ScoreOptions};
use crate::state::VisitorState;
use crate::webhook::{make_event, webhook_id, Decision, Policy, SentState};

/// If a batch that merges a lead stops half-way (the isolate dies while fetching the lead's
/// states), its score change is still sent: by the alarm, this long after the batch.
const MERGE_GRACE_MS: i64 = 10_000;

/// Durable Object binding name (wrangler.toml).
pub const BINDING: &str = "VISITORS";
const KEY: &str = "v";

/// What one visitor object keeps.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Record {
    visitor_id: String,
    /// Core state, postcard bytes in base64 (storage values are structured-cloned JS).
    state: String,
    sent: SentState,
    /// Consent to forward to the CRM (latest batch's).
    crm: bool,
    /// Rate limiting: start of the current minute window and events counted in it.
    rate_window: i64,
    rate_count: u32,
    /// A debounced send is due at this time.
    pending: Option<i64>,
    /// Last activity (ms).
    seen: i64,
    /// Lead directory entries: the lead's merged view (the visitor that joined last).
    #[serde(default)]
    lead_of: Option<String>,
    /// Lead directory entries: the lead's visitors, in the order they joined.
    #[serde(default)]
    lead_visitors: Vec<String>,
    /// The lead id this visitor proved (see [`crate::identity`]); a claimed lead id is only in
    /// the core state.
    #[serde(default)]
    verified_lead: Option<String>,
    /// Lead directory entries: the lead id the entry is for.
    #[serde(default)]
    lead: Option<String>,
    /// Consent to log this visitor for retraining (latest batch's; see [`super::logs`]).
    #[serde(default)]
    analytics: bool,
    /// Scores logged so far: the next score record's id is `<visitor>/<n + 1>`.
    #[serde(default)]
    scores_logged: u64,
    /// The latest CRM outcomes about this visitor or lead (at most [`MAX_KEPT_OUTCOMES`]): their
    /// ids make a replayed outcome a duplicate.
    #[serde(default)]
    outcomes: Vec<KeptOutcome>,
    /// A HubSpot deal's object (`lead:hubspot-deal:<id>`): the contacts associated with it.
    #[serde(default)]
    deal_contacts: Vec<String>,
    /// A HubSpot deal's object: its outcomes so far (each contact that joins later gets them).
    #[serde(default)]
    deal_outcomes: Vec<DealOutcome>,
    /// The experiment arm (bundle name) pinned on first sight ([`super::arms`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    arm: Option<String>,
    /// The key of the experiment that pinned `arm`: the arm scores only while it runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    experiment: Option<String>,
}

impl Record {
    /// Not seen yet: its first batch pins an arm ([`arms::assign`]).
    fn unseen(&self) -> bool {
        self.experiment.is_none() && self.state.is_empty()
    }

    /// The arm scoring this visitor now ([`arms::scoring`]).
    fn scoring_arm(&self, env: &Env) -> Option<String> {
        arms::scoring(env, self.experiment.as_deref(), self.arm.as_deref())
    }
}

/// A HubSpot deal's outcome, before it is given to the deal's contacts' leads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DealOutcome {
    /// `hubspot:<eventId>`.
    pub id: String,
    /// What it means.
    #[serde(rename = "type")]
    pub kind: crate::outcome::OutcomeType,
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

/// Sends a [`DealUpdate`] to the deal's object.
pub async fn update_deal(
    env: &Env,
    update: &DealUpdate,
) -> std::result::Result<DealAnswer, ApiError> {
    let name = format!(
        "{}hubspot-deal:{}",
        crate::event::RESERVED_VISITOR_PREFIX,
        update.deal
    );
    post_to_object(env, &name, "deal", update).await
}

/// Outcomes a visitor or lead object remembers (the outcome log keeps them all).
pub const MAX_KEPT_OUTCOMES: usize = 32;

/// An outcome as its object keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct KeptOutcome {
    id: String,
    #[serde(rename = "type")]
    kind: crate::outcome::OutcomeType,
    ts: i64,
}

impl Record {
    /// Whether this record is a lead directory entry (older entries knew only `lead_of`).
    fn is_lead_entry(&self) -> bool {
        self.lead.is_some() || self.lead_of.is_some() || !self.lead_visitors.is_empty()
    }
}

/// Which object `GET /v1/score/{id}` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A verified lead's merged view (the `lead:<id>` directory).
    Lead,
    /// A visitor id.
    Visitor,
}

impl Kind {
    /// `lead` or `visitor`.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Lead => "lead",
            Kind::Visitor => "visitor",
        }
    }
}

/// Retention as milliseconds; `RETENTION_DAYS` may be fractional (tests use seconds' worth).
fn retention_ms(env: &Env) -> i64 {
    let days = Some(var_num(env, "RETENTION_DAYS", 30.0f64))
        .filter(|d| d.is_finite() && *d >= 0.0)
        .unwrap_or(30.0);
    (days * 86_400_000.0) as i64
}

/// An internal route of another object, asked on behalf of `lead`.
fn for_lead_url(route: &str, lead: &str) -> String {
    let lead = percent_encoding::utf8_percent_encode(lead, percent_encoding::NON_ALPHANUMERIC);
    format!("https://visitor/{route}?lead={lead}")
}

/// A visitor object's state, for merging into another visitor of the same lead.
#[derive(Debug, Serialize, Deserialize)]
struct Exported {
    visitor_id: String,
    /// As [`Record::state`].
    state: String,
    /// The visitor's CRM consent: a state without it is never merged.
    #[serde(default)]
    crm: bool,
}

/// What `POST /v1/outcomes` asks a visitor or lead object to keep.
#[derive(Debug, Serialize, Deserialize)]
pub struct OutcomesRequest {
    /// The object's name: a visitor id or `lead:<id>`.
    pub object: String,
    /// The lead, for a lead's object.
    pub lead: Option<String>,
    /// Validated outcomes about it.
    pub outcomes: Vec<crate::outcome::Outcome>,
    /// Receive time (ms).
    pub received_at: i64,
    /// Which route took them.
    pub source: crate::log::OutcomeSource,
}

/// A visitor or lead object's answer to [`OutcomesRequest`].
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct OutcomesResponse {
    /// Outcomes kept and logged.
    pub accepted: u32,
    /// Outcomes it already had (replays).
    pub duplicates: u32,
}

/// Sends outcomes to their visitor's or lead's object.
pub async fn keep_outcomes(
    env: &Env,
    req: &OutcomesRequest,
) -> std::result::Result<OutcomesResponse, ApiError> {
    post_to_object(env, &req.object, "outcomes", req).await
}

/// Sends an apply request to the visitor's object and returns its answer.
pub async fn call(env: &Env, req: &ApplyRequest) -> std::result::Result<ApplyResponse, ApiError> {
    post_to_object(env, &req.visitor_id, "apply", req).await
}

/// POSTs `req` as JSON to an internal route of the object named `name` and reads its JSON answer.
/// An error answer is passed on with the object's own status and code (an unknown code reads as
/// internal) and, for 429, its `Retry-After`.
async fn post_to_object<Req: Serialize, Resp: serde::de::DeserializeOwned>(
    env: &Env,
    name: &str,
    route: &str,
    req: &Req,
) -> std::result::Result<Resp, ApiError> {
    let ns = env.durable_object(BINDING)?;
    let stub = ns.id_from_name(name)?.get_stub()?;
    let body = serde_json::to_string(req)
        .map_err(|e| ApiError::new(500, ErrorCode::Internal, e.to_string()))?;
    let mut init = RequestInit::new();
    init.with_method(Method::Post).with_body(Some(body.into()));
    let r = Request::new_with_init(&format!("https://visitor/{route}"), &init)?;
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
    serde_json::from_str(&text).map_err(|e| ApiError::new(500, ErrorCode::Internal, e.to_string()))
}

/// The current score of a lead (its merged view) or of a visitor, if known.
pub async fn lookup(
    env: &Env,
    id: &str,
    kind: Kind,
) -> std::result::Result<Option<Score>, ApiError> {
    let ns = env.durable_object(BINDING)?;
    let name = match kind {
        Kind::Lead => format!("lead:{id}"),
        Kind::Visitor if id.starts_with(crate::event::RESERVED_VISITOR_PREFIX) => return Ok(None),
        Kind::Visitor => id.to_string(),
    };
    let stub = ns.id_from_name(&name)?.get_stub()?;
    let mut resp = stub.fetch_with_str("https://visitor/score").await?;
    if resp.status_code() != 200 {
        return Ok(None);
    }
    let text = resp.text().await?;
    let score: Score = serde_json::from_str(&text)
        .map_err(|e| ApiError::new(500, ErrorCode::Internal, e.to_string()))?;
    Ok(Some(score))
}

/// The arm that scores this visitor now, or the one its first sight will pin (`GET /v1/config`
/// tells the page, which then loads that arm's bundle).
pub async fn arm(env: &Env, visitor_id: &str) -> std::result::Result<Option<String>, ApiError> {
    let stub = env
        .durable_object(BINDING)?
        .id_from_name(visitor_id)?
        .get_stub()?;
    // Visitor ids are word characters and `-` (checked by the caller): nothing to escape.
    let mut resp = stub
        .fetch_with_str(&format!("https://visitor/arm?vid={visitor_id}"))
        .await?;
    let text = resp.text().await?;
    if resp.status_code() != 200 {
        return Err(ApiError::new(500, ErrorCode::Internal, text));
    }
    serde_json::from_str(&text).map_err(|e| ApiError::new(500, ErrorCode::Internal, e.to_string()))
}

/// One visitor (or one lead directory entry).
#[durable_object]
pub struct VisitorObject {
    state: State,
    env: Env,
    cache: RefCell<Option<Record>>,
    /// The last explanation, tree by tree, while this object stays in memory: a batch's score
    /// recomputes TreeSHAP only for the trees its events changed.
    memo: RefCell<ShapMemo>,
}

impl DurableObject for VisitorObject {
    fn new(state: State, env: Env) -> Self {
        VisitorObject {
            state,
            env,
            cache: RefCell::new(None),
            memo: RefCell::new(ShapMemo::default()),
        }
    }

    async fn fetch(&self, mut req: Request) -> Result<Response> {
        console_error_panic_hook::set_once();
        let for_lead = query(&req, "lead").ok().flatten();
        let result = match (req.method(), req.path().as_str()) {
            (Method::Post, "/apply") => match req.text().await {
                Ok(text) => self.apply(&text).await,
                Err(e) => Err(ApiError::from(e)),
            },
            (Method::Get, "/score") => self.current(for_lead.as_deref()).await,
            (Method::Get, "/arm") => {
                let vid = query(&req, "vid").ok().flatten().unwrap_or_default();
                self.arm(&vid).await
            }
            (Method::Post, "/lead") => match req.text().await {
                Ok(text) => self.join_lead(&text).await,
                Err(e) => Err(ApiError::from(e)),
            },
            (Method::Get, "/state") => self.export(for_lead.as_deref()).await,
            (Method::Post, "/deal") => match req.text().await {
                Ok(text) => self.update_deal(&text).await,
                Err(e) => Err(ApiError::from(e)),
            },
            (Method::Post, "/outcomes") => match req.text().await {
                Ok(text) => self.keep_outcomes(&text).await,
                Err(e) => Err(ApiError::from(e)),
            },
            _ => Err(ApiError::new(
                404,
                ErrorCode::NotFound,
                "no such object route",
            )),
        };
        match result {
            Ok(r) => Ok(r),
            Err(e) => e.response(),
        }
    }

    async fn alarm(&self) -> Result<Response> {
        console_error_panic_hook::set_once();
        let Some(mut rec) = self.load().await? else {
            return Response::ok("empty");
        };
        let now = now_ms();
        if now >= rec.seen + retention_ms(&self.env) {
            self.state.storage().delete_alarm().await?;
            self.state.storage().delete_all().await?;
            *self.cache.borrow_mut() = None;
            return Response::ok("expired");
        }
        if rec.pending.is_some_and(|p| p <= now) {
            rec.pending = None;
            if let Ok(sc) = arms::scorer_for(&self.env, rec.scoring_arm(&self.env).as_deref()).await
            {
                let vs = decode_state(&rec, &sc);
                if let Ok(mut score) = sc.score(&vs, &rec.visitor_id, now, ScoreOptions::default())
                {
                    score.arm = rec.scoring_arm(&self.env);
                    self.maybe_send(&mut rec, &score, now).await?;
                }
            }
        }
        self.save(&rec).await?;
        Response::ok("ok")
    }
}

fn decode_state(rec: &Record, sc: &crate::score::Scorer) -> VisitorState {
    base64::engine::general_purpose::STANDARD
        .decode(&rec.state)
        .ok()
        .and_then(|b| VisitorState::from_bytes(&b, sc.state_config()).ok())
        .unwrap_or_else(|| sc.new_state())
}

impl VisitorObject {
    /// [`arm`]: the pinned arm while its experiment runs; for a visitor not seen yet, the arm the
    /// first sight in [`Self::apply`] will pin.
    async fn arm(&self, visitor_id: &str) -> std::result::Result<Response, ApiError> {
        let rec = self.load().await?.unwrap_or_default();
        let arm = if rec.unseen() {
            arms::assign(&self.env, visitor_id).map(|(_, arm)| arm)
        } else {
            rec.scoring_arm(&self.env)
        };
        Ok(Response::from_json(&arm)?)
    }

    async fn load(&self) -> Result<Option<Record>> {
        if let Some(r) = self.cache.borrow().clone() {
            return Ok(Some(r));
        }
        let r: Option<Record> = self.state.storage().get(KEY).await?;
        *self.cache.borrow_mut() = r.clone();
        Ok(r)
    }

    async fn save(&self, rec: &Record) -> Result<()> {
        self.state.storage().put(KEY, rec).await?;
        *self.cache.borrow_mut() = Some(rec.clone());
        // One alarm serves both purposes: the earlier of a pending send and expiry. The runtime
        // takes an i64 as an offset from now (not as an epoch time), so pass the offset.
        let expiry = rec.seen + retention_ms(&self.env);
        let at = rec.pending.map_or(expiry, |p| p.min(expiry));
        let offset = (at - now_ms()).max(0);
        self.state
            .storage()
            .set_alarm(std::time::Duration::from_millis(offset as u64))
            .await?;
        Ok(())
    }

    async fn apply(&self, text: &str) -> std::result::Result<Response, ApiError> {
        let req: ApplyRequest = serde_json::from_str(text)
            .map_err(|e| ApiError::new(500, ErrorCode::Internal, e.to_string()))?;
        let now = req.now.max(now_ms());
        let mut rec = self.load().await?.unwrap_or_default();
        rec.visitor_id.clone_from(&req.visitor_id);
        if rec.unseen() {
            // First sight: the arm is pinned for good (later weights move no one).
            if let Some((key, arm)) = arms::assign(&self.env, &req.visitor_id) {
                rec.experiment = Some(key);
                rec.arm = Some(arm);
            }
        }
        let sc = arms::scorer_for(&self.env, rec.scoring_arm(&self.env).as_deref()).await?;

        if let Some(a) = req.analytics {
            rec.analytics = a;
        }
        let log = req.import || rec.analytics;
        if req.import {
            return self.import(rec, &req, &sc, now).await;
        }

        // Rate limit per visitor and minute, counted in events.
        let limit = var_num(&self.env, "RATE_LIMIT_PER_MIN", 600u32);
        let mut window = RateWindow {
            start: rec.rate_window,
            count: rec.rate_count,
        };
        let n = u32::try_from(req.events.len()).unwrap_or(u32::MAX);
        let admitted = window.admit(now, n, limit);
        (rec.rate_window, rec.rate_count) = (window.start, window.count);
        if let Err(retry_after) = admitted {
            let mut e = ApiError::new(
                429,
                ErrorCode::RateLimited,
                format!("more than {limit} events per minute for this visitor"),
            );
            e.retry_after = Some(retry_after);
            return Err(e);
        }

        let mut vs = decode_state(&rec, &sc);
        // Validated by the worker; an event that no longer parses is skipped, not counted.
        let mut events: Vec<Event> = req
            .events
            .iter()
            .filter_map(|t| Event::parse(t).ok())
            .collect();
        for ev in &mut events {
            if ev.kind == EventType::Identify && ev.lead_id.is_some() {
                // (`ev.lead_id` is set here, so equality with it implies `Some`.)
                let proven = req.verified_lead == ev.lead_id;
                let other_verified = rec.verified_lead.is_some() && rec.verified_lead != ev.lead_id;
                if !proven && other_verified {
                    ev.lead_id = None; // a claim never replaces a verified lead; traits still count
                }
            }
        }
        let mut records = Vec::new();
        let tally = sc.apply_all_with(&mut vs, &events, Some(now), |e| {
            if log {
                records.push(LogRecord::event(e, now, EventSource::Live));
            }
        });
        let (accepted, duplicates, stale) = (tally.applied, tally.duplicates, tally.stale);
        if let Some(c) = req.crm {
            rec.crm = c;
        }
        // A verified identify: the lead is proven for this visitor (the state's lead id is the
        // last identify's, so it is the verified one unless a later event of the batch differs).
        let merge_lead = match &req.verified_lead {
            Some(l) if vs.lead_id.as_ref() == Some(l) => {
                rec.verified_lead = Some(l.clone());
                Some(l.clone())
            }
            _ => None,
        };
        rec.seen = now;
        rec.state = base64::engine::general_purpose::STANDARD.encode(vs.to_bytes());
        let mut merged = false;
        // Every verified identify (not only a new lead id): a join that failed half-way is
        // retried by the next one, and merging is idempotent. The score change is sent once,
        // after the merge; the alarm sends it if the merge never finishes.
        if let Some(lead) = merge_lead {
            // Logged before the first save: a failed send fails the request, which the client
            // retries; once the state is saved, a retry would count as duplicates and log nothing.
            logs::send(&self.env, std::mem::take(&mut records)).await?;
            if accepted > 0 {
                rec.pending = Some(
                    rec.pending
                        .map_or(now + MERGE_GRACE_MS, |p| p.min(now + MERGE_GRACE_MS)),
                );
            }
            self.save(&rec).await?;
            merged = self
                .merge_lead(&sc, &lead, &req.visitor_id, rec.crm)
                .await?;
            rec = self.load().await?.unwrap_or(rec);
            vs = decode_state(&rec, &sc);
        }
        let opts = ScoreOptions::default();
        let mut score = sc
            .score_with_memo(&vs, &rec.visitor_id, now, opts, &mut self.memo.borrow_mut())
            .map_err(|e| ApiError::new(500, ErrorCode::Model, e.to_string()))?;
        score.arm = rec.scoring_arm(&self.env);
        if accepted > 0 || merged {
            self.maybe_send(&mut rec, &score, now).await?;
        }
        if log {
            rec.scores_logged += 1;
            records.push(LogRecord::score(&sc, &vs, &score, rec.scores_logged));
        }
        // Before the save, as above: at least once.
        logs::send(&self.env, records).await?;
        self.save(&rec).await?;
        let out = ApplyResponse {
            score: Some(score),
            accepted,
            duplicates,
            stale,
        };
        Ok(Response::from_json(&out)?)
    }

    /// Keeps CRM outcomes about this visitor or lead: a known id is a duplicate; the others are
    /// remembered (the latest [`MAX_KEPT_OUTCOMES`]) and logged, the log first (at least once).
    async fn keep_outcomes(&self, text: &str) -> std::result::Result<Response, ApiError> {
        let req: OutcomesRequest = serde_json::from_str(text)
            .map_err(|e| ApiError::new(500, ErrorCode::Internal, e.to_string()))?;
        let mut rec = self.load().await?.unwrap_or_default();
        if rec.visitor_id.is_empty() && !rec.is_lead_entry() {
            match &req.lead {
                Some(l) => rec.lead = Some(l.clone()),
                None => rec.visitor_id.clone_from(&req.object),
            }
        }
        let (mut accepted, mut duplicates) = (0u32, 0u32);
        let mut records = Vec::new();
        for o in req.outcomes {
            if rec.outcomes.iter().any(|k| k.id == o.id) {
                duplicates += 1;
                continue;
            }
            accepted += 1;
            rec.outcomes.push(KeptOutcome {
                id: o.id.clone(),
                kind: o.kind,
                ts: o.ts,
            });
            if rec.outcomes.len() > MAX_KEPT_OUTCOMES {
                rec.outcomes.remove(0);
            }
            records.push(crate::log::Record::Outcome(crate::log::OutcomeRecord {
                received_at: req.received_at,
                source: req.source,
                outcome: o,
            }));
        }
        if accepted > 0 {
            rec.seen = rec.seen.max(req.received_at);
            logs::send(&self.env, records).await?;
            self.save(&rec).await?;
        }
        Ok(Response::from_json(&OutcomesResponse {
            accepted,
            duplicates,
        })?)
    }

    /// A HubSpot deal's links and outcomes: a new contact receives every outcome so far, a new
    /// outcome goes to every linked contact (at most [`MAX_KEPT_OUTCOMES`] of each are kept).
    async fn update_deal(&self, text: &str) -> std::result::Result<Response, ApiError> {
        let up: DealUpdate = serde_json::from_str(text)
            .map_err(|e| ApiError::new(500, ErrorCode::Internal, e.to_string()))?;
        let mut rec = self.load().await?.unwrap_or_default();
        rec.lead = Some(format!("hubspot-deal:{}", up.deal));
        let mut answer = DealAnswer::default();
        match up.link {
            Some((contact, true)) => rec.deal_contacts.retain(|c| c != &contact),
            Some((contact, false)) if !rec.deal_contacts.contains(&contact) => {
                for o in &rec.deal_outcomes {
                    answer.due.push((contact.clone(), o.clone()));
                }
                rec.deal_contacts.push(contact);
                if rec.deal_contacts.len() > MAX_KEPT_OUTCOMES {
                    rec.deal_contacts.remove(0);
                }
            }
            _ => {}
        }
        if let Some(o) = up.outcome {
            if !rec.deal_outcomes.iter().any(|k| k.id == o.id) {
                rec.deal_outcomes.push(o.clone());
                if rec.deal_outcomes.len() > MAX_KEPT_OUTCOMES {
                    rec.deal_outcomes.remove(0);
                }
            }
            // Every linked contact, also for a retried event: their objects de-duplicate by id.
            for c in &rec.deal_contacts {
                answer.due.push((c.clone(), o.clone()));
            }
        }
        rec.seen = now_ms();
        self.save(&rec).await?;
        Ok(Response::from_json(&answer)?)
    }

    /// History: applied at its own timestamps and logged, with one score at its last event's time
    /// (for the monitor); no rate limit, no webhook (the CRM hears of the visitor's next live
    /// change, scored on the whole history).
    async fn import(
        &self,
        mut rec: Record,
        req: &ApplyRequest,
        sc: &crate::score::Scorer,
        now: i64,
    ) -> std::result::Result<Response, ApiError> {
        let mut vs = decode_state(&rec, sc);
        let events: Vec<Event> = req
            .events
            .iter()
            .filter_map(|t| Event::parse(t).ok())
            .collect();
        let mut records = Vec::new();
        let tally = sc.apply_all_with(&mut vs, &events, None, |e| {
            records.push(LogRecord::event(e, now, EventSource::Import));
        });
        if tally.applied > 0 {
            // Scored at the history's own time (its last event), logged like a live score so
            // that the monitor's windows form from history as from live traffic; never sent.
            let mut score = sc
                .score_with_memo(
                    &vs,
                    &rec.visitor_id,
                    vs.last_ts,
                    ScoreOptions::default(),
                    &mut self.memo.borrow_mut(),
                )
                .map_err(|e| ApiError::new(500, ErrorCode::Model, e.to_string()))?;
            score.arm = rec.scoring_arm(&self.env);
            rec.scores_logged += 1;
            records.push(LogRecord::score(sc, &vs, &score, rec.scores_logged));
        }
        rec.seen = now;
        rec.state = base64::engine::general_purpose::STANDARD.encode(vs.to_bytes());
        logs::send(&self.env, records).await?;
        self.save(&rec).await?;
        Ok(Response::from_json(&ApplyResponse {
            score: None,
            accepted: tally.applied,
            duplicates: tally.duplicates,
            stale: tally.stale,
        })?)
    }

    /// Applies the policy; enqueues a delivery or schedules a debounced one.
    async fn maybe_send(&self, rec: &mut Record, score: &Score, now: i64) -> Result<()> {
        if !rec.crm {
            return Ok(()); // no consent or GPC: never forwarded
        }
        // The thresholds the score's tier came from: the visitor's segment's, else the card's.
        let tiers = score.tiers;
        let policy = Policy {
            delta: var_num(&self.env, "EMIT_DELTA", 10u8),
            thresholds: Vec::new(),
            debounce_ms: var_num(&self.env, "EMIT_DEBOUNCE_MS", 30_000i64),
        };
        match policy.decide(&rec.sent, score, tiers.hot, tiers.warm, now) {
            Decision::Nothing => {}
            Decision::Later(at) => rec.pending = Some(rec.pending.map_or(at, |p| p.min(at))),
            Decision::Send(kind) => {
                // `sent` advances on a copy and is kept only once the queue has the message: a
                // failed enqueue fails the request (nothing is saved, the client retries).
                let id = webhook_id(&rec.visitor_id, rec.sent.seq);
                let verified = rec.verified_lead.is_some() && rec.verified_lead == score.lead_id;
                let mut sent = rec.sent.clone();
                let ev = make_event(kind, score, verified, &mut sent, now);
                let body =
                    serde_json::to_string(&ev).map_err(|e| Error::RustError(e.to_string()))?;
                self.env
                    .queue(QUEUE)?
                    .send(Delivery {
                        id,
                        body,
                        enqueued: now,
                    })
                    .await?;
                rec.sent = sent;
                rec.pending = None;
            }
        }
        Ok(())
    }

    /// A visitor object's state for another visitor of the same lead (lead entries have none),
    /// only while this visitor's verified lead is that lead.
    async fn export(&self, lead: Option<&str>) -> std::result::Result<Response, ApiError> {
        match self.load().await? {
            Some(rec)
                if !rec.is_lead_entry()
                    && !rec.state.is_empty()
                    && lead.is_some()
                    && rec.verified_lead.as_deref() == lead =>
            {
                Ok(Response::from_json(&Exported {
                    visitor_id: rec.visitor_id,
                    state: rec.state,
                    crm: rec.crm,
                })?)
            }
            _ => Err(ApiError::new(404, ErrorCode::NotFound, "no visitor state")),
        }
    }

    /// This visitor's score; for a lead entry, its merged view's. `for_lead`: asked on behalf of
    /// that lead's entry, answered only while this visitor is the lead's, verified and consented.
    async fn current(&self, for_lead: Option<&str>) -> std::result::Result<Response, ApiError> {
        let Some(rec) = self.load().await? else {
            return Err(ApiError::new(404, ErrorCode::NotFound, "unknown"));
        };
        if rec.is_lead_entry() {
            // A lead entry: answer with its merged view's score.
            let Some(v) = rec.lead_of else {
                return Err(ApiError::new(
                    404,
                    ErrorCode::NotFound,
                    "no consented visitor",
                ));
            };
            let lead = rec.lead.unwrap_or_default();
            let ns = self.env.durable_object(BINDING)?;
            let stub = ns.id_from_name(&v)?.get_stub()?;
            let mut resp = stub.fetch_with_str(&for_lead_url("score", &lead)).await?;
            let status = resp.status_code();
            let text = resp.text().await?;
            return Ok(Response::ok(text)?
                .with_status(status)
                .with_headers(Headers::from_iter([("content-type", "application/json")])));
        }
        if let Some(lead) = for_lead {
            if rec.verified_lead.as_deref() != Some(lead) || !rec.crm {
                return Err(ApiError::new(
                    404,
                    ErrorCode::NotFound,
                    "not this lead's visitor",
                ));
            }
        }
        let sc = arms::scorer_for(&self.env, rec.scoring_arm(&self.env).as_deref()).await?;
        let vs = decode_state(&rec, &sc);
        let mut score = sc
            .score(&vs, &rec.visitor_id, now_ms(), ScoreOptions::default())
            .map_err(|e| ApiError::new(500, ErrorCode::Model, e.to_string()))?;
        score.arm = rec.scoring_arm(&self.env);
        Ok(Response::from_json(&score)?)
    }
}
