//! The per-visitor Durable Object: the only writer of a visitor's state, so batches apply in
//! order and a replayed batch counts once (the core's de-duplication).
//!
//! Stored under one key: the core's compact state plus what was last sent to the CRM, the
//! visitor's CRM consent, a rate window and the pending (debounced) send. An alarm fires either
//! when a debounced send is due or when the visitor has been idle for the retention period
//! (then everything is deleted). How a verified identify merges a lead's visitors: [`super`].

use std::cell::RefCell;

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use worker::*;

use super::client::{
    self, AccountJoin, AccountMember, ApplyRequest, ApplyResponse, Exported, Join, OutcomesRequest,
};
use super::kept::{keep_in, KeptOutcomes};
use super::store::{message, no_route, Kept, Store};
use crate::account::Member;
use crate::alert::{RecentScores, SpikeRule, SCORE_SPIKED};
use crate::error_code::ErrorCode;
use crate::event::{Event, EventType};
use crate::explain::ShapMemo;
use crate::features::Context;
use crate::lead::claim_counts;
use crate::log::{EventSource, Record as LogRecord};
use crate::rate_limit::RateWindow;
use crate::score::{Score, ScoreOptions, Scorer};
use crate::state::{Merge, VisitorState};
use crate::webhook::{
    make_event, webhook_id, Policy, ScoreData, ScoreEvent, SendDecision, SentState,
};
use crate::worker::arms::{self, Deployment};
use crate::worker::crm::produce::{self, Mark};
use crate::worker::env::{var, var_num};
use crate::worker::http::{now_ms, query, ApiError, ApiResult};
use crate::worker::logs;
use crate::worker::outbox::enqueue;

/// If a batch that merges a lead stops half-way (the isolate dies while fetching the lead's
/// states), its score change is still sent: by the alarm, this long after the batch.
const MERGE_GRACE_MS: i64 = 10_000;

/// What one visitor object keeps.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct VisitorRecord {
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
    /// The lead id this visitor proved (see [`crate::identity`]); a claimed lead id is only in
    /// the core state.
    #[serde(default)]
    verified_lead: Option<String>,
    /// Consent to log this visitor for retraining (latest batch's; see [`crate::worker::logs`]).
    #[serde(default)]
    analytics: bool,
    /// Scores logged so far: the next score record's id is `<visitor>/<n + 1>`.
    #[serde(default)]
    scores_logged: u64,
    /// The latest CRM outcomes about this visitor.
    #[serde(default)]
    outcomes: KeptOutcomes,
    /// The experiment arm (bundle name) pinned on first sight ([`arms`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    arm: Option<String>,
    /// The key of the experiment that pinned `arm`: the arm scores only while it runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    experiment: Option<String>,
    /// The account this visitor proved it belongs to (a verified group): its scores go there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    account: Option<String>,
    /// What was last written to the lead's CRM records.
    #[serde(default)]
    crm_mark: Mark,
    /// Recent scores, for the spike alert ([`crate::alert`]).
    #[serde(default)]
    recent: RecentScores,
}

impl Kept for VisitorRecord {
    fn seen(&self) -> i64 {
        self.seen
    }
    fn touch(&mut self, at: i64) {
        self.seen = self.seen.max(at);
    }
    fn due(&self) -> Option<i64> {
        self.pending
    }
}

impl VisitorRecord {
    /// Not seen yet: its first batch pins an arm ([`arms::Deployment::assign`]).
    fn unseen(&self) -> bool {
        self.experiment.is_none() && self.state.is_empty()
    }

    /// The arm scoring this visitor now ([`arms::Deployment::scoring`]).
    fn scoring_arm(&self, dep: &Deployment) -> Option<String> {
        dep.scoring(self.experiment.as_deref(), self.arm.as_deref())
    }

    /// The core state; a state that cannot be read back (never written by this engine) starts
    /// over rather than failing every later request.
    fn decode_state(&self, sc: &Scorer) -> VisitorState {
        decode_state(&self.state, sc)
    }

    fn encode_state(&mut self, vs: &VisitorState) {
        self.state = base64::engine::general_purpose::STANDARD.encode(vs.to_bytes());
    }
}

/// A visitor's stored state, decoded for this scorer (a fresh state when there is none).
pub(super) fn decode_state(b64: &str, sc: &Scorer) -> VisitorState {
    base64::engine::general_purpose::STANDARD
        .decode(b64)
        .ok()
        .and_then(|b| VisitorState::from_bytes(&b, sc.state_config()).ok())
        .unwrap_or_else(|| sc.new_state())
}

/// Who the visitor is to its account: its verified lead, else itself.
fn member_id(rec: &VisitorRecord) -> String {
    rec.verified_lead
        .clone()
        .unwrap_or_else(|| rec.visitor_id.clone())
}

/// One visitor.
#[durable_object]
pub struct VisitorObject {
    env: Env,
    store: Store<VisitorRecord>,
    /// The last explanation, tree by tree, while this object stays in memory: a batch's score
    /// recomputes TreeSHAP only for the trees its events changed.
    memo: RefCell<ShapMemo>,
}

impl DurableObject for VisitorObject {
    fn new(state: State, env: Env) -> Self {
        VisitorObject {
            env,
            store: Store::new(state),
            memo: RefCell::new(ShapMemo::default()),
        }
    }

    async fn fetch(&self, req: Request) -> Result<Response> {
        console_error_panic_hook::set_once();
        self.route(req).await.or_else(|e| e.response())
    }

    async fn alarm(&self) -> Result<Response> {
        console_error_panic_hook::set_once();
        let Some(mut rec) = self.store.load().await? else {
            return Response::ok("empty");
        };
        let now = now_ms();
        if self.store.expire_if_idle(&self.env, &rec, now).await? {
            return Response::ok("expired");
        }
        if rec.pending.is_some_and(|p| p <= now) {
            rec.pending = None;
            let dep = arms::deployment(&self.env).await;
            let arm = rec.scoring_arm(&dep);
            if let Ok(sc) = arms::scorer_for(&self.env, &dep, arm.as_deref()).await {
                let vs = rec.decode_state(&sc);
                let colleagues = self.colleagues(&rec, &sc).await;
                let ctx = Context {
                    colleagues: colleagues.as_deref(),
                };
                if let Ok(mut score) = self.score(&rec, &sc, &vs, ctx, now, false) {
                    score.arm = arm;
                    self.maybe_send(&mut rec, &score, now).await?;
                }
            }
        }
        self.store.save(&self.env, &rec).await?;
        Response::ok("ok")
    }
}

impl VisitorObject {
    async fn route(&self, mut req: Request) -> ApiResult<Response> {
        let lead = query(&req, "lead")?;
        match (req.method(), req.path().as_str()) {
            (Method::Post, "/apply") => self.apply(message(&mut req).await?).await,
            (Method::Post, "/outcomes") => self.keep_outcomes(message(&mut req).await?).await,
            (Method::Get, "/score") => self.current(lead.as_deref()).await,
            (Method::Get, "/arm") => {
                let vid = query(&req, "vid")?.unwrap_or_default();
                self.arm(&vid).await
            }
            (Method::Get, "/state") => self.export(lead.as_deref()).await,
            _ => Err(no_route()),
        }
    }

    /// The visitor's score at `at` (its caller names the arm); `memo`: reuse (and update) this
    /// object's explanation memo, for the scores of successive batches.
    fn score(
        &self,
        rec: &VisitorRecord,
        sc: &Scorer,
        vs: &VisitorState,
        ctx: Context<'_>,
        at: i64,
        memo: bool,
    ) -> ApiResult<Score> {
        let opts = ScoreOptions::default();
        let scored = if memo {
            let mut m = self.memo.borrow_mut();
            sc.score_in(vs, &rec.visitor_id, at, opts, ctx, Some(&mut m))
        } else {
            sc.score_in(vs, &rec.visitor_id, at, opts, ctx, None)
        };
        scored.map_err(|e| ApiError::new(500, ErrorCode::Model, e.to_string()))
    }

    /// The other members' latest activity, when the card has account features and the visitor
    /// an account; `None` (the features missing) otherwise or when the account cannot answer:
    /// a score is never refused for its account.
    async fn colleagues(&self, rec: &VisitorRecord, sc: &Scorer) -> Option<Vec<i64>> {
        let account = rec.account.as_ref()?;
        if !sc.features().reads_account() {
            return None;
        }
        match client::account_colleagues(&self.env, account, &member_id(rec)).await {
            Ok(times) => Some(times),
            Err(e) => {
                console_error!("account {account}: colleagues unavailable: {}", e.message);
                None
            }
        }
    }

    /// [`client::arm`]: the pinned arm while its experiment runs; for a visitor not seen yet, the
    /// arm the first sight in [`Self::apply`] will pin.
    async fn arm(&self, visitor_id: &str) -> ApiResult<Response> {
        let rec = self.store.load().await?.unwrap_or_default();
        let dep = arms::deployment(&self.env).await;
        let arm = if rec.unseen() {
            dep.assign(visitor_id).map(|(_, arm)| arm)
        } else {
            rec.scoring_arm(&dep)
        };
        Ok(Response::from_json(&arm)?)
    }

    async fn apply(&self, req: ApplyRequest) -> ApiResult<Response> {
        let now = req.now.max(now_ms());
        let mut rec = self.store.load().await?.unwrap_or_default();
        rec.visitor_id.clone_from(&req.visitor_id);
        let dep = arms::deployment(&self.env).await;
        if rec.unseen() {
            // First sight: the arm is pinned for good (later weights move no one).
            if let Some((key, arm)) = dep.assign(&req.visitor_id) {
                rec.experiment = Some(key);
                rec.arm = Some(arm);
            }
        }
        let arm = rec.scoring_arm(&dep);
        let sc = arms::scorer_for(&self.env, &dep, arm.as_deref()).await?;
        if let Some(a) = req.analytics {
            rec.analytics = a;
        }
        if req.import {
            return self.import(rec, req, &sc, arm, now).await;
        }
        let log = rec.analytics;

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

        let mut vs = rec.decode_state(&sc);
        let group_join = account_join(&req);
        if let Some(j) = &group_join {
            rec.account = Some(j.account.clone());
        }
        let mut events: Vec<Event> = req.events.into_iter().map(|c| c.event).collect();
        for ev in events.iter_mut().filter(|e| e.kind == EventType::Identify) {
            if let Some(lead) = ev.lead_id.as_deref() {
                if !claim_counts(
                    lead,
                    req.verified_lead.as_deref(),
                    rec.verified_lead.as_deref(),
                ) {
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
        rec.encode_state(&vs);
        let mut merged = false;
        // Every verified identify (not only a new lead id): a join that failed half-way is
        // retried by the next one, and merging is idempotent. The score change is sent once,
        // after the merge; the alarm sends it if the merge never finishes.
        if let Some(lead) = merge_lead {
            // Logged before the first save: a failed send fails the request, which the client
            // retries; once the state is saved, a retry would count as duplicates and log nothing.
            logs::send(&self.env, std::mem::take(&mut records)).await?;
            if tally.applied > 0 {
                let grace = now + MERGE_GRACE_MS;
                rec.pending = Some(rec.pending.map_or(grace, |p| p.min(grace)));
            }
            self.store.save(&self.env, &rec).await?;
            merged = self
                .merge_lead(&sc, &lead, &req.visitor_id, rec.crm)
                .await?;
            rec = self.store.load().await?.unwrap_or(rec);
            vs = rec.decode_state(&sc);
        }
        let colleagues = self.colleagues(&rec, &sc).await;
        let ctx = Context {
            colleagues: colleagues.as_deref(),
        };
        let mut score = self.score(&rec, &sc, &vs, ctx, now, true)?;
        score.arm.clone_from(&arm);
        if tally.applied > 0 || merged {
            self.maybe_send(&mut rec, &score, now).await?;
            self.maybe_alert_spike(&mut rec, &score, now).await?;
            if rec.crm {
                // A failed enqueue fails the request, as a webhook's does: nothing is saved.
                let sub_scores = sc.card().features.iter().any(|f| f.is_fit());
                let lead = rec.verified_lead.clone();
                produce::score_changed(
                    &self.env,
                    &mut rec.crm_mark,
                    &score,
                    lead.as_deref(),
                    sub_scores,
                    now,
                )
                .await?;
            }
        }
        if log {
            rec.scores_logged += 1;
            records.push(LogRecord::score(&sc, &vs, ctx, &score, rec.scores_logged));
        }
        // Before the save, as above: at least once.
        logs::send(&self.env, records).await?;
        self.store.save(&self.env, &rec).await?;
        if tally.applied > 0 || merged {
            self.tell_account(&rec, group_join.as_ref(), &score, &vs, false)
                .await;
        }
        Ok(Response::from_json(&ApplyResponse {
            score: Some(score),
            accepted: tally.applied,
            duplicates: tally.duplicates,
            stale: tally.stale,
        })?)
    }

    /// History: applied at its own timestamps, with one score at its last event's time (for the
    /// monitor); no rate limit, no webhook (the CRM hears of the visitor's next live change,
    /// scored on the whole history). Every event of the request is logged, also those already
    /// applied: a re-sent import writes what a crash lost (readers de-duplicate by key).
    async fn import(
        &self,
        mut rec: VisitorRecord,
        req: ApplyRequest,
        sc: &Scorer,
        arm: Option<String>,
        now: i64,
    ) -> ApiResult<Response> {
        let mut vs = rec.decode_state(sc);
        let group_join = account_join(&req);
        if let Some(j) = &group_join {
            rec.account = Some(j.account.clone());
        }
        let events: Vec<Event> = req.events.into_iter().map(|c| c.event).collect();
        let tally = sc.apply_all(&mut vs, &events, None);
        // A lead's own stream's history (`/v1/leads/events`): its lead is proven and it is the
        // CRM's own, as live. `/v1/import` says neither.
        if let Some(l) = &req.verified_lead {
            if vs.lead_id.as_ref() == Some(l) {
                rec.verified_lead = Some(l.clone());
            }
        }
        if let Some(c) = req.crm {
            rec.crm = c;
        }
        let mut records: Vec<LogRecord> = events
            .iter()
            .map(|e| LogRecord::event(e, now, EventSource::Import))
            .collect();
        let mut history_score = None;
        if tally.applied > 0 {
            // Scored at the history's own time (its last event), logged like a live score so
            // that the monitor's windows form from history as from live traffic; never sent.
            let colleagues = self.colleagues(&rec, sc).await;
            let ctx = Context {
                colleagues: colleagues.as_deref(),
            };
            let mut score = self.score(&rec, sc, &vs, ctx, vs.last_ts, true)?;
            score.arm = arm;
            rec.scores_logged += 1;
            records.push(LogRecord::score(sc, &vs, ctx, &score, rec.scores_logged));
            history_score = Some(score);
        }
        rec.seen = now;
        rec.encode_state(&vs);
        logs::send(&self.env, records).await?;
        self.store.save(&self.env, &rec).await?;
        match &history_score {
            // History makes a member of the account (its activity counts for its colleagues'
            // features); the account sends nothing for it.
            Some(score) => {
                self.tell_account(&rec, group_join.as_ref(), score, &vs, true)
                    .await
            }
            None => {
                if let Some(j) = &group_join {
                    if let Err(e) = client::account_join(&self.env, j).await {
                        console_error!("account {}: join failed: {}", j.account, e.message);
                    }
                }
            }
        }
        Ok(Response::from_json(&ApplyResponse {
            score: None,
            accepted: tally.applied,
            duplicates: tally.duplicates,
            stale: tally.stale,
        })?)
    }

    /// Sends this visitor's new score to its account (and, on a verified group, joins it first):
    /// derived data, so a failure is logged and the next score sends again, never failing the
    /// visitor's request. `history`: the account keeps it and sends no webhook.
    async fn tell_account(
        &self,
        rec: &VisitorRecord,
        join: Option<&AccountJoin>,
        score: &Score,
        vs: &VisitorState,
        history: bool,
    ) {
        if let Some(j) = join {
            if let Err(e) = client::account_join(&self.env, j).await {
                console_error!("account {}: join failed: {}", j.account, e.message);
            }
        }
        let Some(account) = &rec.account else {
            return;
        };
        let member = AccountMember {
            account: account.clone(),
            history,
            replaces: rec
                .verified_lead
                .as_ref()
                .filter(|l| **l != rec.visitor_id)
                .map(|_| rec.visitor_id.clone()),
            member: Member {
                id: member_id(rec),
                probability: score.probability,
                ai_score: score.ai_score,
                tier: score.tier,
                buyer_role: vs
                    .trait_value("buyer_role")
                    .and_then(|v| v.as_str().map(String::from)),
                active: vs.last_ts,
            },
        };
        if let Err(e) = client::account_member(&self.env, &member).await {
            console_error!("account {account}: member update failed: {}", e.message);
        }
    }

    /// Keeps CRM outcomes about this visitor ([`keep_in`]).
    async fn keep_outcomes(&self, req: OutcomesRequest) -> ApiResult<Response> {
        let rec = self.store.load().await?.unwrap_or_default();
        keep_in(&self.env, &self.store, rec, |r| &mut r.outcomes, req).await
    }

    /// A score spike (`SPIKE_POINTS` within `SPIKE_WITHIN`, off when unset) becomes a signed
    /// `lead.score_spiked` webhook, its `previous_score` the window's lowest score, and a verified
    /// lead's task or note where a CRM destination's alerts take spikes.
    async fn maybe_alert_spike(
        &self,
        rec: &mut VisitorRecord,
        score: &Score,
        now: i64,
    ) -> Result<()> {
        let points = var_num(&self.env, "SPIKE_POINTS", 0u8);
        let within = var(&self.env, "SPIKE_WITHIN")
            .and_then(|w| crate::dataset::parse_window(w.trim()).ok())
            .unwrap_or(86_400_000);
        if points == 0 {
            return Ok(());
        }
        let rule = SpikeRule {
            points,
            within_ms: within,
        };
        let Some(spike) = rec
            .recent
            .record(&rule, score.ai_score, score.score_timestamp)
        else {
            return Ok(());
        };
        if !rec.crm {
            return Ok(()); // no consent or GPC: never forwarded
        }
        let verified = rec.verified_lead.is_some() && rec.verified_lead == score.lead_id;
        let mut data = ScoreData::of(score, verified, &rec.sent);
        data.previous_score = Some(spike.from_score);
        if let (true, Some(lead)) = (verified, &rec.verified_lead) {
            produce::spiked(&self.env, &rec.crm_mark, &data, score.tier, lead, now).await?;
        }
        let ev = ScoreEvent {
            kind: SCORE_SPIKED.to_string(),
            timestamp: now,
            data,
        };
        let body = serde_json::to_string(&ev).map_err(|e| Error::RustError(e.to_string()))?;
        let id = webhook_id(
            &format!("spike:{}", rec.visitor_id),
            score.score_timestamp as u64,
        );
        enqueue(&self.env, id, body, now).await
    }

    /// Applies the policy; enqueues a delivery or schedules a debounced one.
    async fn maybe_send(&self, rec: &mut VisitorRecord, score: &Score, now: i64) -> Result<()> {
        if !rec.crm {
            return Ok(()); // no consent or GPC: never forwarded
        }
        // The thresholds the score's tier came from: the visitor's segment's, else the card's.
        let tiers = score.tiers;
        let policy = Policy {
            delta: var_num(&self.env, "EMIT_DELTA", 10u8),
            debounce_ms: var_num(&self.env, "EMIT_DEBOUNCE_MS", 30_000i64),
        };
        match policy.decide(&rec.sent, score, tiers.hot, tiers.warm, now) {
            SendDecision::Nothing => {}
            SendDecision::Later(at) => rec.pending = Some(rec.pending.map_or(at, |p| p.min(at))),
            SendDecision::Send(kind) => {
                // `sent` advances on a copy and is kept only once the queue has the message: a
                // failed enqueue fails the request (nothing is saved, the client retries).
                let id = webhook_id(&rec.visitor_id, rec.sent.seq);
                let verified = rec.verified_lead.is_some() && rec.verified_lead == score.lead_id;
                let mut sent = rec.sent.clone();
                let ev = make_event(kind, score, verified, &mut sent, now);
                let body =
                    serde_json::to_string(&ev).map_err(|e| Error::RustError(e.to_string()))?;
                enqueue(&self.env, id, body, now).await?;
                rec.sent = sent;
                rec.pending = None;
            }
        }
        Ok(())
    }

    /// This visitor's state for another visitor of the same lead, only while this visitor's
    /// verified lead is that lead.
    async fn export(&self, lead: Option<&str>) -> ApiResult<Response> {
        match self.store.load().await? {
            Some(rec)
                if !rec.state.is_empty()
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

    /// This visitor's score. `lead`: asked on behalf of that lead, answered only while this
    /// visitor is the lead's, verified and consented.
    async fn current(&self, lead: Option<&str>) -> ApiResult<Response> {
        let Some(rec) = self.store.load().await? else {
            return Err(ApiError::new(404, ErrorCode::NotFound, "unknown"));
        };
        if let Some(lead) = lead {
            if rec.verified_lead.as_deref() != Some(lead) || !rec.crm {
                return Err(ApiError::new(
                    404,
                    ErrorCode::NotFound,
                    "not this lead's visitor",
                ));
            }
        }
        let dep = arms::deployment(&self.env).await;
        let arm = rec.scoring_arm(&dep);
        let sc = arms::scorer_for(&self.env, &dep, arm.as_deref()).await?;
        let vs = rec.decode_state(&sc);
        let colleagues = self.colleagues(&rec, &sc).await;
        let ctx = Context {
            colleagues: colleagues.as_deref(),
        };
        let mut score = self.score(&rec, &sc, &vs, ctx, now_ms(), false)?;
        score.arm = arm;
        Ok(Response::from_json(&score)?)
    }

    /// Joins `lead`'s object and merges the CRM-consented states of the lead's other visitors that
    /// this visitor has not absorbed yet (see [`super`]) into the stored record. Sends nothing:
    /// the caller scores and applies the policy once. Returns whether anything was merged.
    async fn merge_lead(
        &self,
        sc: &Scorer,
        lead: &str,
        visitor: &str,
        crm: bool,
    ) -> ApiResult<bool> {
        let join = Join {
            lead: lead.to_string(),
            visitor: visitor.to_string(),
            crm,
        };
        let members = client::join_lead(&self.env, &join).await?;
        let mine = match self.store.load().await? {
            Some(rec) => rec.decode_state(sc),
            None => return Ok(false),
        };
        let mut sources = Vec::new();
        for other in members.others {
            if other == visitor || mine.has_merged(&other) {
                continue;
            }
            let Some(ex) = client::visitor_state(&self.env, &other, lead).await? else {
                continue; // expired (retention), never sent an event, or no longer this lead's
            };
            if !ex.crm {
                continue; // no CRM consent: its behaviour must never reach the CRM
            }
            let state = base64::engine::general_purpose::STANDARD
                .decode(&ex.state)
                .ok()
                .and_then(|b| VisitorState::from_bytes(&b, sc.state_config()).ok());
            if let Some(state) = state.filter(|_| ex.visitor_id == other) {
                sources.push((other, state));
            }
        }
        if sources.is_empty() {
            return Ok(false);
        }
        // The most complete state first: a previous merged view brings its own sources along.
        sources.sort_by_key(|(_, s)| std::cmp::Reverse(s.merged.len()));

        // Re-read: other requests to this object may have run while the states were fetched.
        let mut rec = self.store.load().await?.unwrap_or_default();
        let mut vs = rec.decode_state(sc);
        let mut merged = 0;
        for (id, state) in &sources {
            match vs.merge(visitor, id, state, sc.state_config()) {
                Ok(Merge::Merged) => merged += 1,
                Ok(_) => {}
                Err(e) => return Err(ApiError::internal(e)),
            }
        }
        if merged == 0 {
            return Ok(false);
        }
        rec.encode_state(&vs);
        self.store.save(&self.env, &rec).await?;
        Ok(true)
    }
}

/// The verified group of a request, as the account's join: the last group event naming the
/// account the request proved.
fn account_join(req: &ApplyRequest) -> Option<AccountJoin> {
    let account = req.verified_account.as_ref()?;
    let ev = req
        .events
        .iter()
        .rev()
        .map(|c| &c.event)
        .find(|e| e.kind == EventType::Group && e.account_id.as_ref() == Some(account))?;
    Some(AccountJoin {
        account: account.clone(),
        traits: ev.traits.clone(),
    })
}
