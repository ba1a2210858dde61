//! One CRM destination's outbox (named `hubspot` or `salesforce`): each record's latest values,
//! flushed in batches by its alarm within the account's call budget, with the core's rules
//! ([`crate::crm::coalesce`], [`crate::crm::budget`]).
//!
//! Storage, one key per record so the outbox grows with the records waiting, not all ever written:
//! `w:<object>:<id>` a waiting write, `d:<object>:<id>` the score time last written, `g:<object>:<id>`
//! a record the CRM does not know; `a:<activity id>` a task or note waiting, `k:<activity id>` one
//! created (never created again); `counts`, `budget`, `token` (Salesforce), `dest` (its name).
//! Dead letters go to R2, one per record holding its latest values given up
//! (`crm/<destination>/dead/<object>/<id>.json`): a record the CRM does not know keeps collecting
//! its later scores there, so a replay once it is back writes the newest; an activity given up is
//! `crm/<destination>/dead/activity/<activity id>.json`.

use serde::{Deserialize, Serialize};
use wasm_bindgen::JsValue;
use worker::*;

use crate::crm::activities::{Activity, PendingActivity};
use crate::crm::budget::Budget;
use crate::crm::coalesce::{due, Counts, Offered, RecordState, RetryClock, Settled, Waiting};
use crate::crm::config::{Crm, Destination, HUBSPOT_TOKEN, SALESFORCE_SECRETS};
use crate::crm::salesforce::Token;
use crate::crm::{hubspot, Outcome, RecordKey, Write};
use crate::worker::bindings::DATA;
use crate::worker::crm::{destination, send};
use crate::worker::env::{var, var_num};
use crate::worker::http::{now_ms, ApiError, ApiResult};
use crate::worker::objects::store::{message, no_route};

/// Batches one alarm sends at most (then it wakes again at once): a bound on one invocation's calls.
const MAX_CALLS_PER_ALARM: usize = 20;
/// Tries per setup request when the CRM answers 429.
const SETUP_ATTEMPTS: usize = 5;

/// What `/offer` takes.
#[derive(Debug, Serialize, Deserialize)]
pub struct OfferRequest {
    /// The destination's name.
    pub destination: String,
    /// The writes.
    #[serde(default)]
    pub writes: Vec<Write>,
    /// Tasks and notes to create.
    #[serde(default)]
    pub activities: Vec<Activity>,
    /// A replay of dead letters: a record marked unknown is tried again.
    #[serde(default)]
    pub replay: bool,
}

/// What `/offer` answers.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct OfferAnswer {
    /// Writes now waiting (new records).
    pub waiting: u64,
    /// Folded into a waiting write.
    pub coalesced: u64,
    /// Dropped as older than what waits or was written.
    pub stale: u64,
    /// Dropped: the CRM does not know the record.
    pub gone: u64,
    /// Activities now waiting.
    #[serde(default)]
    pub activities: u64,
    /// Activities already waiting or created: not made twice.
    #[serde(default)]
    pub activities_known: u64,
}

/// The outbox's state, for `GET /v1/crm`.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct OutboxStatus {
    /// Counters since the outbox began.
    pub counts: Counts,
    /// Records waiting now.
    pub waiting: u64,
    /// Activities waiting now.
    #[serde(default)]
    pub activities_waiting: u64,
    /// Calls counted against the daily allocation (rolling 24 h).
    pub calls_last_24h: u64,
    /// The last call's trouble, if the last call had one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// When the alarm will flush next (ms), if set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_flush: Option<i64>,
}

/// A dead letter in R2: a write or an activity given up.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeadLetter {
    /// The destination.
    pub destination: String,
    /// The write that was given up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub write: Option<Write>,
    /// The activity that was given up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activity: Option<Activity>,
    /// Why.
    pub reason: String,
    /// When (ms).
    pub at: i64,
}

/// R2 prefix of a destination's dead letters.
pub fn dead_prefix(destination: &str) -> String {
    format!("crm/{destination}/dead/")
}

fn key_of(r: &RecordKey) -> String {
    format!("{}:{}", r.object.as_str(), r.id)
}

fn err(e: impl std::fmt::Display) -> Error {
    Error::RustError(e.to_string())
}

/// One destination's outbox.
#[durable_object]
pub struct CrmOutboxObject {
    state: State,
    env: Env,
}

impl DurableObject for CrmOutboxObject {
    fn new(state: State, env: Env) -> Self {
        CrmOutboxObject { state, env }
    }

    async fn fetch(&self, req: Request) -> Result<Response> {
        console_error_panic_hook::set_once();
        self.route(req).await.or_else(|e| e.response())
    }

    async fn alarm(&self) -> Result<Response> {
        console_error_panic_hook::set_once();
        if let Err(e) = self.flush().await {
            console_error!("crm outbox: flush failed ({e}); again in 10 s");
            self.state.storage().set_alarm(10_000i64).await?;
        }
        Response::ok("ok")
    }
}

impl CrmOutboxObject {
    async fn route(&self, mut req: Request) -> ApiResult<Response> {
        match (req.method(), req.path().as_str()) {
            (Method::Post, "/offer") => {
                let r: OfferRequest = message(&mut req).await?;
                Ok(Response::from_json(&self.offer(r).await?)?)
            }
            (Method::Get, "/status") => Ok(Response::from_json(&self.status().await?)?),
            (Method::Post, "/setup") => {
                let name: String = message(&mut req).await?;
                Ok(Response::from_json(&self.setup(&name).await?)?)
            }
            _ => Err(no_route()),
        }
    }

    /// A configured destination, or 503 naming why it is not (the configuration changed under a
    /// queued write: the queue retries it).
    fn configured(&self, name: &str) -> ApiResult<Destination> {
        destination(&self.env, name)
            .map_err(|e| ApiError::new(503, crate::error_code::ErrorCode::Internal, e))
    }

    async fn record(&self, key: &RecordKey) -> Result<RecordState> {
        let k = key_of(key);
        let s = self.state.storage();
        Ok(RecordState {
            waiting: s.get(&format!("w:{k}")).await?,
            written_at: s.get(&format!("d:{k}")).await?,
            gone: s.get::<bool>(&format!("g:{k}")).await?.unwrap_or(false),
        })
    }

    async fn save_record(
        &self,
        key: &RecordKey,
        before: &RecordState,
        rs: &RecordState,
    ) -> Result<()> {
        let k = key_of(key);
        let s = self.state.storage();
        if rs.waiting != before.waiting {
            match &rs.waiting {
                Some(w) => s.put(&format!("w:{k}"), w).await?,
                None => {
                    s.delete(&format!("w:{k}")).await?;
                }
            }
        }
        if rs.written_at != before.written_at {
            if let Some(t) = rs.written_at {
                s.put(&format!("d:{k}"), t).await?;
            }
        }
        if rs.gone != before.gone {
            if rs.gone {
                s.put(&format!("g:{k}"), true).await?;
            } else {
                s.delete(&format!("g:{k}")).await?;
            }
        }
        Ok(())
    }

    /// The call budget as stored (a new one before the first call).
    async fn budget(&self) -> Result<Budget> {
        self.stored_or_default("budget").await
    }

    async fn counts(&self) -> Result<Counts> {
        self.stored_or_default("counts").await
    }

    /// A stored value, or its default before it was first stored.
    async fn stored_or_default<T: serde::de::DeserializeOwned + Default>(
        &self,
        key: &str,
    ) -> Result<T> {
        Ok(self.state.storage().get(key).await?.unwrap_or_default())
    }

    async fn offer(&self, r: OfferRequest) -> ApiResult<OfferAnswer> {
        let dest = self.configured(&r.destination)?;
        self.state.storage().put("dest", &r.destination).await?;
        let now = now_ms();
        let mut counts = self.counts().await?;
        let mut answer = OfferAnswer::default();
        let mut earliest: Option<i64> = None;
        for w in r.writes {
            let key = w.record.clone();
            let before = self.record(&key).await?;
            let mut rs = before.clone();
            if r.replay {
                rs.gone = false;
            }
            match rs.offer(w.clone(), now, &mut counts) {
                Offered::Waiting => answer.waiting += 1,
                Offered::Coalesced => answer.coalesced += 1,
                Offered::Stale => answer.stale += 1,
                Offered::Gone => {
                    answer.gone += 1;
                    self.dead_letter(&r.destination, &w, "the CRM does not know the record", now)
                        .await?;
                }
            }
            self.save_record(&key, &before, &rs).await?;
            if let Some(t) = rs.due_at(dest.flush_ms) {
                earliest = Some(earliest.map_or(t, |e| e.min(t)));
            }
        }
        for a in r.activities {
            let s = self.state.storage();
            let known = s.get::<bool>(&format!("k:{}", a.id)).await?.is_some()
                || s.get::<PendingActivity>(&format!("a:{}", a.id))
                    .await?
                    .is_some();
            if known {
                answer.activities_known += 1;
                continue;
            }
            s.put(&format!("a:{}", a.id), PendingActivity::new(a, now))
                .await?;
            answer.activities += 1;
            earliest = Some(now); // an alert goes at once
        }
        self.state.storage().put("counts", counts).await?;
        if let Some(t) = earliest {
            let current = self.state.storage().get_alarm().await?;
            if current.is_none_or(|c| c > t) {
                self.state.storage().set_alarm((t - now).max(0)).await?;
            }
        }
        Ok(answer)
    }

    /// Every value stored under `prefix`.
    async fn list<T: serde::de::DeserializeOwned>(&self, prefix: &str) -> Result<Vec<T>> {
        let map = self
            .state
            .storage()
            .list_with_options(ListOptions::new().prefix(prefix))
            .await?;
        let mut out = Vec::new();
        for v in map.values() {
            let v: JsValue = v?;
            out.push(serde_wasm_bindgen::from_value::<T>(v).map_err(err)?);
        }
        Ok(out)
    }

    async fn waiting(&self) -> Result<Vec<Waiting>> {
        self.list("w:").await
    }

    async fn pending_activities(&self) -> Result<Vec<PendingActivity>> {
        self.list("a:").await
    }

    async fn status(&self) -> ApiResult<OutboxStatus> {
        let budget = self.budget().await?;
        Ok(OutboxStatus {
            counts: self.counts().await?,
            waiting: self.waiting().await?.len() as u64,
            activities_waiting: self.pending_activities().await?.len() as u64,
            calls_last_24h: budget.used_daily(),
            last_error: self.state.storage().get("last_error").await?,
            next_flush: self.state.storage().get_alarm().await?,
        })
    }

    /// HubSpot's setup (the property group, then each property, for the lead's and the account's
    /// record types), paced by the same call budget as the writes and waiting out a 429.
    async fn setup(&self, name: &str) -> ApiResult<Vec<(String, u16, String)>> {
        let dest = self.configured(name)?;
        if dest.crm != Crm::Hubspot {
            // Salesforce's custom fields are made in Setup → Object Manager (README).
            return Ok(Vec::new());
        }
        let token = var(&self.env, HUBSPOT_TOKEN).unwrap_or_default();
        let mut objects = vec![dest.lead_object];
        objects.extend(dest.account_object);
        let mut steps = Vec::new();
        for object in objects {
            let bad = |e: crate::crm::CrmError| {
                ApiError::new(
                    400,
                    crate::error_code::ErrorCode::InvalidField,
                    e.to_string(),
                )
            };
            let mut reqs = vec![hubspot::group_request(&dest.api_version, object).map_err(bad)?];
            reqs.extend(
                hubspot::property_requests(&dest.api_version, object, &dest.spec.fields)
                    .map_err(bad)?,
            );
            for (path, body) in reqs {
                let what = serde_json::from_str::<serde_json::Value>(&body)
                    .ok()
                    .and_then(|v| v["name"].as_str().map(str::to_string))
                    .unwrap_or_default();
                let step = format!("{} {what}", object.as_str());
                let mut answer = (0, String::new());
                for _ in 0..SETUP_ATTEMPTS {
                    self.wait_for_budget(&dest).await?;
                    answer = send::hubspot_post(&dest, &token, &path, body.clone()).await;
                    if answer.0 != 429 {
                        break;
                    }
                }
                steps.push((step, answer.0, answer.1));
            }
        }
        Ok(steps)
    }

    /// Takes one call from the budget, waiting until it allows one.
    async fn wait_for_budget(&self, dest: &Destination) -> Result<()> {
        loop {
            // Read again after each wait: the alarm's flush takes calls from it meanwhile.
            let mut budget = self.budget().await?;
            let now = now_ms();
            match budget.take(&dest.limits, now) {
                Ok(()) => return self.state.storage().put("budget", &budget).await,
                Err(t) => {
                    Delay::from(std::time::Duration::from_millis(
                        (t - now).clamp(1, 60_000) as u64
                    ))
                    .await
                }
            }
        }
    }

    /// Sends what is due, within the budget, and sets the next alarm.
    async fn flush(&self) -> Result<()> {
        let Some(name) = self.state.storage().get::<String>("dest").await? else {
            return Ok(());
        };
        let dest = match destination(&self.env, &name) {
            Ok(d) => d,
            Err(e) => {
                // Configuration gone or broken: keep everything, look again in a minute.
                self.state.storage().put("last_error", e).await?;
                self.state.storage().set_alarm(60_000i64).await?;
                return Ok(());
            }
        };
        let clock = RetryClock {
            scale: var_num(&self.env, "DELIVERY_TIME_SCALE", 1.0f64),
            jitter: js_sys::Math::random(),
        };
        let mut budget = self.budget().await?;
        let mut counts = self.counts().await?;
        let mut wake: Option<i64> = None;
        for _ in 0..MAX_CALLS_PER_ALARM {
            let now = now_ms();
            let waiting = self.waiting().await?;
            let mut batch = due(&waiting, now, dest.flush_ms, dest.batch_size());
            if batch.is_empty() {
                break;
            }
            // One record type per call.
            let object = batch[0].record.object;
            batch.retain(|w| w.record.object == object);
            if let Err(t) = budget.take(&dest.limits, now) {
                wake = Some(t);
                break;
            }
            counts.calls += 1;
            let (outcomes, hold) = self.call(&dest, &batch).await?;
            if let Some(h) = hold {
                budget.hold(h);
            }
            let trouble = outcomes.iter().find_map(|o| match o {
                Outcome::Retry { reason, .. } => Some(reason.clone()),
                _ => None,
            });
            match &trouble {
                Some(t) => self.state.storage().put("last_error", t).await?,
                None => {
                    self.state.storage().delete("last_error").await?;
                }
            }
            let now = now_ms();
            for (w, o) in batch.iter().zip(&outcomes) {
                let before = self.record(&w.record).await?;
                let mut rs = before.clone();
                if let Settled::DeadLetter(reason) = rs.settle(w, o, now, clock, &mut counts) {
                    self.dead_letter(&name, w, &reason, now).await?;
                }
                self.save_record(&w.record, &before, &rs).await?;
            }
            self.state.storage().put("counts", counts).await?;
            self.state.storage().put("budget", &budget).await?;
            if hold.is_some() {
                wake = hold;
                break;
            }
        }
        if wake.is_none() {
            wake = self
                .flush_activities(&dest, &name, &mut budget, &mut counts, clock)
                .await?;
        }
        self.state.storage().put("counts", counts).await?;
        self.state.storage().put("budget", &budget).await?;
        let next_write = self
            .waiting()
            .await?
            .iter()
            .map(|w| (w.since + dest.flush_ms).max(w.not_before))
            .min();
        let next_activity = self
            .pending_activities()
            .await?
            .iter()
            .map(|p| p.not_before)
            .min();
        let next = match (next_write, next_activity) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let at = match (next, wake) {
            (Some(n), Some(w)) => Some(n.max(w)),
            (n, None) => n,
            (None, w) => w,
        };
        if let Some(at) = at {
            self.state
                .storage()
                .set_alarm((at - now_ms()).max(0))
                .await?;
        }
        Ok(())
    }

    /// Creates the activities that are due, in batches of one kind, within the budget; when the
    /// budget or the CRM says to wait, until when.
    async fn flush_activities(
        &self,
        dest: &Destination,
        name: &str,
        budget: &mut Budget,
        counts: &mut Counts,
        clock: RetryClock,
    ) -> Result<Option<i64>> {
        for _ in 0..MAX_CALLS_PER_ALARM {
            let now = now_ms();
            let mut due: Vec<PendingActivity> = self
                .pending_activities()
                .await?
                .into_iter()
                .filter(|p| p.not_before <= now)
                .collect();
            let Some(first) = due.first() else {
                return Ok(None);
            };
            let kind = first.activity.kind;
            due.retain(|p| p.activity.kind == kind);
            due.truncate(dest.batch_size());
            if let Err(t) = budget.take(&dest.limits, now) {
                return Ok(Some(t));
            }
            counts.calls += 1;
            let acts: Vec<Activity> = due.iter().map(|p| p.activity.clone()).collect();
            let (outcomes, hold) = match dest.crm {
                Crm::Hubspot => {
                    let token = var(&self.env, HUBSPOT_TOKEN).unwrap_or_default();
                    let a = send::hubspot_activities(dest, &token, &acts).await;
                    (a.outcomes, a.hold_until)
                }
                Crm::Salesforce => match self.salesforce_token(dest).await? {
                    Ok(token) => {
                        let a = send::salesforce_activities(dest, &token, &acts).await;
                        if a.token_expired {
                            self.state.storage().delete("token").await?;
                        }
                        (a.outcomes, a.hold_until)
                    }
                    Err(o) => (vec![o; acts.len()], None),
                },
            };
            if let Some(h) = hold {
                budget.hold(h);
            }
            let now = now_ms();
            let s = self.state.storage();
            for (mut p, o) in due.into_iter().zip(&outcomes) {
                let key = format!("a:{}", p.activity.id);
                match p.settle(o, now, clock) {
                    Settled::Written => {
                        s.put(&format!("k:{}", p.activity.id), true).await?;
                        s.delete(&key).await?;
                        counts.activities_created += 1;
                    }
                    Settled::Retry(_) => s.put(&key, &p).await?,
                    Settled::DeadLetter(reason) => {
                        self.dead_activity(name, &p.activity, &reason, now).await?;
                        s.delete(&key).await?;
                        counts.activities_dead += 1;
                    }
                }
            }
            if hold.is_some() {
                return Ok(hold);
            }
        }
        Ok(None)
    }

    /// The kept Salesforce token, or a new one; `Err`: the outcome for every record (no token).
    async fn salesforce_token(
        &self,
        dest: &Destination,
    ) -> Result<std::result::Result<Token, Outcome>> {
        if let Some(t) = self.state.storage().get::<Token>("token").await? {
            return Ok(Ok(t));
        }
        let [id, secret] = SALESFORCE_SECRETS.map(|s| var(&self.env, s).unwrap_or_default());
        match send::salesforce_token(dest, &id, &secret).await {
            Ok(t) => {
                self.state.storage().put("token", &t).await?;
                Ok(Ok(t))
            }
            Err(why) => Ok(Err(Outcome::Retry {
                after_ms: None,
                reason: format!("no Salesforce token: {why}"),
            })),
        }
    }

    /// One call: the outcomes per write, and until when the CRM said to wait.
    async fn call(
        &self,
        dest: &Destination,
        batch: &[Write],
    ) -> Result<(Vec<Outcome>, Option<i64>)> {
        match dest.crm {
            Crm::Hubspot => {
                let token = var(&self.env, HUBSPOT_TOKEN).unwrap_or_default();
                let a = send::hubspot_batch(dest, &token, batch).await;
                Ok((a.outcomes, a.hold_until))
            }
            Crm::Salesforce => {
                let token = match self.salesforce_token(dest).await? {
                    Ok(t) => t,
                    Err(o) => return Ok((vec![o; batch.len()], None)),
                };
                let a = send::salesforce_batch(dest, &token, batch).await;
                if a.token_expired {
                    self.state.storage().delete("token").await?;
                }
                Ok((a.outcomes, a.hold_until))
            }
        }
    }

    /// Keeps an activity given up as a dead letter (replayed, it is created then).
    async fn dead_activity(&self, name: &str, a: &Activity, reason: &str, at: i64) -> Result<()> {
        let key = format!("{}activity/{}.json", dead_prefix(name), a.id);
        let letter = DeadLetter {
            destination: name.to_string(),
            write: None,
            activity: Some(a.clone()),
            reason: reason.to_string(),
            at,
        };
        let text = serde_json::to_string(&letter).map_err(err)?;
        self.env.bucket(DATA)?.put(key, text).execute().await?;
        console_warn!("crm {name}: activity {} given up: {reason}", a.id);
        Ok(())
    }

    /// Keeps a write given up as its record's dead letter, unless the one kept is newer.
    async fn dead_letter(&self, name: &str, w: &Write, reason: &str, at: i64) -> Result<()> {
        let key = format!(
            "{}{}/{}.json",
            dead_prefix(name),
            w.record.object.as_str(),
            w.record.id
        );
        let bucket = self.env.bucket(DATA)?;
        if let Some(obj) = bucket.get(&key).execute().await? {
            if let Some(body) = obj.body() {
                let kept: Option<DeadLetter> = serde_json::from_str(&body.text().await?).ok();
                let newer = kept
                    .and_then(|k| k.write)
                    .is_some_and(|k| k.scored_at > w.scored_at);
                if newer {
                    return Ok(()); // the newer values stay
                }
            }
        }
        let letter = DeadLetter {
            destination: name.to_string(),
            write: Some(w.clone()),
            activity: None,
            reason: reason.to_string(),
            at,
        };
        let text = serde_json::to_string(&letter).map_err(err)?;
        bucket.put(key, text).execute().await?;
        console_warn!(
            "crm {name}: {} {} given up: {reason}",
            w.record.object.as_str(),
            w.record.id
        );
        Ok(())
    }
}
