//! The per-visitor Durable Object: the only writer of a visitor's state, so batches apply in
//! order and a replayed batch counts once (the core's de-duplication).
//!
//! Stored under one key: the core's compact state plus what was last sent to the CRM, the
//! visitor's CRM consent, a rate window and the pending (debounced) send. An alarm fires either
//! when a debounced send is due or when the visitor has been idle for the retention period
//! (then everything is deleted).
//!
//! **Leads.** A lead id gets its own directory object (`lead:<id>`) listing the lead's visitors
//! (at most [`MAX_LEAD_VISITORS`], the oldest dropped first) and naming the *merged view*: the
//! visitor that joined the lead last. When an identify event (from `POST /v1/identify` or in a
//! batch) is applied to visitor V with lead L:
//! 1. V joins `lead:L`; if V is new to the lead it becomes the merged view, and the directory
//!    answers with the lead's other visitors, the previous merged view first;
//! 2. V fetches each one's state (internal `GET /state`) that its state has not absorbed yet and
//!    merges them into its own with the core's [`VisitorState::merge`], the most complete state
//!    first (so a previous merged view brings its sources along and they are not fetched again);
//! 3. V's score, stored state and webhooks from then on cover the lead's whole history, and
//!    `GET /v1/score/L` answers with V's score.
//!
//! Replays count nothing twice: a merged state remembers its sources, so a repeated identify
//! (same or new event id) finds nothing left to merge. The other devices keep their own objects:
//! their later events update their own state, score and webhooks (with their `visitor_id`), not
//! the merged view, which holds each of them as it was when merged (a state is an aggregate, so
//! merging it again would count its earlier part twice). A device already in the lead that
//! identifies again does not take over the merged view. The webhook of V is sent by V's policy
//! like any other change of V's score.

use std::cell::RefCell;

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use worker::*;

use super::{now_ms, scorer, var_num, ApiError, ApplyRequest, ApplyResponse};
use crate::event::{Event, EventType};
use crate::explain::ShapMemo;
use crate::score::{Score, ScoreOptions, Scorer};
use crate::state::{Merge, Outcome, VisitorState};
use crate::webhook::{make_event, webhook_id, Decision, Policy, SentState};

/// Durable Object binding name (wrangler.toml).
pub const BINDING: &str = "VISITORS";
/// Queue producer binding name (wrangler.toml).
pub const QUEUE: &str = "SCORE_EVENTS";
const KEY: &str = "v";
/// Most visitor ids a lead directory entry keeps (the core merges at most as many sources).
pub const MAX_LEAD_VISITORS: usize = crate::state::MAX_MERGED;

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
}

/// A lead directory entry's answer to a visitor joining it.
#[derive(Debug, Default, Serialize, Deserialize)]
struct LeadMembers {
    /// The lead's other visitors, the merged view first, then the newest first.
    others: Vec<String>,
}

/// A visitor object's state, for merging into another visitor of the same lead.
#[derive(Debug, Serialize, Deserialize)]
struct Exported {
    visitor_id: String,
    /// As [`Record::state`].
    state: String,
}

/// A message on the score-events queue: the webhook id is fixed here, once, so every retry of
/// this delivery carries the same `webhook-id`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Delivery {
    /// `webhook-id`.
    pub id: String,
    /// JSON body to sign and send.
    pub body: String,
    /// When it was first enqueued (ms), for backoff.
    pub enqueued: i64,
}

/// Sends an apply request to the visitor's object and returns its answer.
pub async fn call(env: &Env, req: &ApplyRequest) -> std::result::Result<ApplyResponse, ApiError> {
    let ns = env.durable_object(BINDING)?;
    let stub = ns.id_from_name(&req.visitor_id)?.get_stub()?;
    let body =
        serde_json::to_string(req).map_err(|e| ApiError::new(500, "internal", e.to_string()))?;
    let mut init = RequestInit::new();
    init.with_method(Method::Post).with_body(Some(body.into()));
    let r = Request::new_with_init("https://visitor/apply", &init)?;
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
            code: String,
            message: String,
        }
        let (code, message) = serde_json::from_str::<E>(&text)
            .map(|e| (e.error.code, e.error.message))
            .unwrap_or_else(|_| ("internal".into(), text.clone()));
        let code: &'static str = match code.as_str() {
            "rate_limited" => "rate_limited",
            "invalid_field" => "invalid_field",
            _ => "internal",
        };
        let mut err = ApiError::new(status, code, message);
        if status == 429 {
            err.retry_after = resp
                .headers()
                .get("retry-after")?
                .and_then(|v| v.parse().ok());
        }
        return Err(err);
    }
    serde_json::from_str(&text).map_err(|e| ApiError::new(500, "internal", e.to_string()))
}

/// The current score of a visitor id or a lead id, if known.
pub async fn lookup(env: &Env, id: &str) -> std::result::Result<Option<Score>, ApiError> {
    let ns = env.durable_object(BINDING)?;
    for name in [format!("lead:{id}"), id.to_string()] {
        let stub = ns.id_from_name(&name)?.get_stub()?;
        let mut resp = stub.fetch_with_str("https://visitor/score").await?;
        if resp.status_code() == 200 {
            let text = resp.text().await?;
            let score: Score = serde_json::from_str(&text)
                .map_err(|e| ApiError::new(500, "internal", e.to_string()))?;
            return Ok(Some(score));
        }
    }
    Ok(None)
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
        let result = match (req.method(), req.path().as_str()) {
            (Method::Post, "/apply") => match req.text().await {
                Ok(text) => self.apply(&text).await,
                Err(e) => Err(ApiError::from(e)),
            },
            (Method::Get, "/score") => self.current().await,
            (Method::Post, "/lead") => match req.text().await {
                Ok(visitor) => self.join_lead(visitor).await,
                Err(e) => Err(ApiError::from(e)),
            },
            (Method::Get, "/state") => self.export().await,
            _ => Err(ApiError::new(404, "not_found", "no such object route")),
        };
        match result {
            Ok(r) => Ok(r),
            Err(e) => e.response(),
        }
    }

    async fn alarm(&self) -> Result<Response> {
        let Some(mut rec) = self.load().await? else {
            return Response::ok("empty");
        };
        let now = now_ms();
        let retention = var_num(&self.env, "RETENTION_DAYS", 30i64) * 86_400_000;
        if now >= rec.seen + retention {
            self.state.storage().delete_all().await?;
            *self.cache.borrow_mut() = None;
            return Response::ok("expired");
        }
        if rec.pending.is_some_and(|p| p <= now) {
            rec.pending = None;
            if let Ok(sc) = scorer() {
                let vs = decode_state(&rec, &sc);
                if let Ok(score) = sc.score(&vs, &rec.visitor_id, now, ScoreOptions::default()) {
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
        // One alarm serves both purposes: the earlier of a pending send and expiry.
        let retention = var_num(&self.env, "RETENTION_DAYS", 30i64) * 86_400_000;
        let at = rec
            .pending
            .map_or(rec.seen + retention, |p| p.min(rec.seen + retention));
        self.state.storage().set_alarm(at).await?;
        Ok(())
    }

    async fn apply(&self, text: &str) -> std::result::Result<Response, ApiError> {
        let req: ApplyRequest = serde_json::from_str(text)
            .map_err(|e| ApiError::new(500, "internal", e.to_string()))?;
        let sc = scorer()?;
        let now = req.now.max(now_ms());
        let mut rec = self.load().await?.unwrap_or_default();
        rec.visitor_id.clone_from(&req.visitor_id);

        // Rate limit per visitor and minute, counted in events.
        let limit = var_num(&self.env, "RATE_LIMIT_PER_MIN", 600u32);
        if now - rec.rate_window >= 60_000 {
            rec.rate_window = now;
            rec.rate_count = 0;
        }
        let n = req.events.len() as u32;
        if rec.rate_count + n > limit {
            let mut e = ApiError::new(
                429,
                "rate_limited",
                format!("more than {limit} events per minute for this visitor"),
            );
            e.retry_after = Some((((rec.rate_window + 60_000 - now) / 1000) as u32).max(1));
            return Err(e);
        }
        rec.rate_count += n;

        let mut vs = decode_state(&rec, &sc);
        let (mut accepted, mut duplicates, mut stale) = (0, 0, 0);
        let mut identified = false;
        for text in &req.events {
            let Ok(ev) = Event::parse(text) else { continue }; // validated by the worker
            match sc.apply(&mut vs, &ev, Some(now)) {
                Outcome::Applied => {
                    accepted += 1;
                    identified |= ev.kind == EventType::Identify && ev.lead_id.is_some();
                }
                Outcome::Duplicate => duplicates += 1,
                Outcome::Stale => stale += 1,
            }
        }
        if let Some(c) = req.crm {
            rec.crm = c;
        }
        rec.seen = now;
        rec.state = base64::engine::general_purpose::STANDARD.encode(vs.to_bytes());
        let opts = ScoreOptions::default();
        let mut score = sc
            .score_with_memo(&vs, &rec.visitor_id, now, opts, &mut self.memo.borrow_mut())
            .map_err(|e| ApiError::new(500, "model", e.to_string()))?;
        if accepted > 0 {
            self.maybe_send(&mut rec, &score, now).await?;
        }
        self.save(&rec).await?;
        // Every applied identify (not only a new lead id): a join that failed half-way is retried
        // by the next one, and merging is idempotent.
        if let (true, Some(lead)) = (identified, vs.lead_id.clone()) {
            if let Some(merged) = self.merge_lead(&sc, &lead, &req.visitor_id, now).await? {
                score = merged;
            }
        }
        let out = ApplyResponse {
            score,
            accepted,
            duplicates,
            stale,
        };
        Ok(Response::from_json(&out)?)
    }

    /// Applies the policy; enqueues a delivery or schedules a debounced one.
    async fn maybe_send(&self, rec: &mut Record, score: &Score, now: i64) -> Result<()> {
        if !rec.crm {
            return Ok(()); // no consent or GPC: never forwarded
        }
        let sc = match scorer() {
            Ok(s) => s,
            Err(e) => return Err(Error::RustError(e.message)),
        };
        let tiers = sc.card().tiers;
        let policy = Policy {
            delta: var_num(&self.env, "EMIT_DELTA", 10u8),
            thresholds: Vec::new(),
            debounce_ms: var_num(&self.env, "EMIT_DEBOUNCE_MS", 30_000i64),
        };
        match policy.decide(&rec.sent, score, tiers.hot, tiers.warm, now) {
            Decision::Nothing => {}
            Decision::Later(at) => rec.pending = Some(rec.pending.map_or(at, |p| p.min(at))),
            Decision::Send(kind) => {
                let id = webhook_id(&rec.visitor_id, rec.sent.seq);
                let ev = make_event(kind, score, &mut rec.sent, now);
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
                rec.pending = None;
            }
        }
        Ok(())
    }

    /// Joins `lead`'s directory entry and merges the states of the lead's other visitors that
    /// this visitor has not absorbed yet (see the module docs). Returns the new score when
    /// anything was merged.
    async fn merge_lead(
        &self,
        sc: &Scorer,
        lead: &str,
        visitor: &str,
        now: i64,
    ) -> std::result::Result<Option<Score>, ApiError> {
        let ns = self.env.durable_object(BINDING)?;
        let stub = ns.id_from_name(&format!("lead:{lead}"))?.get_stub()?;
        let mut init = RequestInit::new();
        init.with_method(Method::Post)
            .with_body(Some(visitor.to_string().into()));
        let mut resp = stub
            .fetch_with_request(Request::new_with_init("https://visitor/lead", &init)?)
            .await?;
        let members: LeadMembers = serde_json::from_str(&resp.text().await?)
            .map_err(|e| ApiError::new(500, "internal", format!("lead directory: {e}")))?;

        let mine = match self.load().await? {
            Some(rec) => decode_state(&rec, sc),
            None => return Ok(None),
        };
        let mut sources = Vec::new();
        for other in members.others {
            if other == visitor || mine.has_merged(&other) {
                continue;
            }
            let stub = ns.id_from_name(&other)?.get_stub()?;
            let mut resp = stub.fetch_with_str("https://visitor/state").await?;
            if resp.status_code() != 200 {
                continue; // expired (retention) or never sent an event
            }
            let Ok(ex) = serde_json::from_str::<Exported>(&resp.text().await?) else {
                continue;
            };
            let state = base64::engine::general_purpose::STANDARD
                .decode(&ex.state)
                .ok()
                .and_then(|b| VisitorState::from_bytes(&b, sc.state_config()).ok());
            if let Some(state) = state.filter(|_| ex.visitor_id == other) {
                sources.push((other, state));
            }
        }
        if sources.is_empty() {
            return Ok(None);
        }
        // The most complete state first: a previous merged view brings its own sources along.
        sources.sort_by_key(|(_, s)| std::cmp::Reverse(s.merged.len()));

        // Re-read: other requests to this object may have run while the states were fetched.
        let mut rec = self.load().await?.unwrap_or_default();
        let mut vs = decode_state(&rec, sc);
        let mut merged = 0;
        for (id, state) in &sources {
            match vs.merge(visitor, id, state, sc.state_config()) {
                Ok(Merge::Merged) => merged += 1,
                Ok(_) => {}
                Err(e) => return Err(ApiError::new(500, "internal", e.to_string())),
            }
        }
        if merged == 0 {
            return Ok(None);
        }
        rec.state = base64::engine::general_purpose::STANDARD.encode(vs.to_bytes());
        let score = sc
            .score(&vs, visitor, now, ScoreOptions::default())
            .map_err(|e| ApiError::new(500, "model", e.to_string()))?;
        self.maybe_send(&mut rec, &score, now).await?;
        self.save(&rec).await?;
        Ok(Some(score))
    }

    /// A lead directory entry: records `visitor` as one of the lead's visitors and answers with
    /// the others. A visitor new to the lead becomes its merged view.
    async fn join_lead(&self, visitor: String) -> std::result::Result<Response, ApiError> {
        let mut rec = self.load().await?.unwrap_or_default();
        if rec.lead_visitors.is_empty() {
            // Entries written before the list knew only the visitor they pointed at.
            rec.lead_visitors.extend(rec.lead_of.clone());
        }
        let mut others: Vec<String> = Vec::new();
        for v in rec.lead_of.iter().chain(rec.lead_visitors.iter().rev()) {
            if *v != visitor && !others.contains(v) {
                others.push(v.clone());
            }
        }
        if !rec.lead_visitors.contains(&visitor) {
            if rec.lead_visitors.len() >= MAX_LEAD_VISITORS {
                rec.lead_visitors.remove(0);
            }
            rec.lead_visitors.push(visitor.clone());
            rec.lead_of = Some(visitor);
        }
        rec.seen = now_ms();
        self.save(&rec).await?;
        Ok(Response::from_json(&LeadMembers { others })?)
    }

    /// A visitor object's state for another visitor of the same lead (lead entries have none).
    async fn export(&self) -> std::result::Result<Response, ApiError> {
        match self.load().await? {
            Some(rec) if rec.lead_of.is_none() && !rec.state.is_empty() => {
                Ok(Response::from_json(&Exported {
                    visitor_id: rec.visitor_id,
                    state: rec.state,
                })?)
            }
            _ => Err(ApiError::new(404, "not_found", "no visitor state")),
        }
    }

    async fn current(&self) -> std::result::Result<Response, ApiError> {
        let Some(rec) = self.load().await? else {
            return Err(ApiError::new(404, "not_found", "unknown"));
        };
        if let Some(v) = rec.lead_of {
            // A lead entry: answer with its visitor's score.
            let ns = self.env.durable_object(BINDING)?;
            let stub = ns.id_from_name(&v)?.get_stub()?;
            let mut resp = stub.fetch_with_str("https://visitor/score").await?;
            let status = resp.status_code();
            let text = resp.text().await?;
            return Ok(Response::ok(text)?
                .with_status(status)
                .with_headers(Headers::from_iter([("content-type", "application/json")])));
        }
        let sc = scorer()?;
        let vs = decode_state(&rec, &sc);
        let score = sc
            .score(&vs, &rec.visitor_id, now_ms(), ScoreOptions::default())
            .map_err(|e| ApiError::new(500, "model", e.to_string()))?;
        Ok(Response::from_json(&score)?)
    }
}
