//! Model health on the edge: live aggregates in D1, the scheduled alert run, `GET /v1/monitor`.
//!
//! - **Aggregates** ([`record`]): the logs queue's consumer folds each batch's score records into
//!   decisions — each (window, model version, arm, visitor)'s latest score, the unit
//!   [`crate::monitor::window`] judges — and its outcomes into `outcomes`, in one D1 batch per queue
//!   batch (never a write per request). Upserts keep the later score, so a redelivered or
//!   reordered batch changes nothing.
//! - **Alerts** ([`scheduled`], a cron trigger; locally `wrangler dev --test-scheduled` and
//!   `GET /__scheduled`): every closed window (its end ≤ now) of every embedded model (and arm) not
//!   yet judged is assessed by [`crate::monitor::health::assess_window`] against that model's own
//!   baseline, and with an experiment running each closed window's assignment counts are tested
//!   for sample-ratio mismatch ([`crate::monitor::arms`]); each alert it raises goes out once per
//!   window, signed and delivered like score events (the score-events Queue, Standard Webhooks,
//!   retries, DLQ), its `webhook-id` derived from (type, model, arm, window) so a receiver de-dups
//!   a repeat. Drift is judged once, when the window closes; accuracy once every decision of the
//!   window is labelled (until then it is looked at again on every run).
//! - **Reading** ([`get`]): the same assessment over `from..to`, as JSON.
//!
//! Config (`[vars]`): `MONITOR_WINDOW` (default `1d`), `MONITOR_OUTCOME_WINDOW` (`30d`),
//! `MONITOR_LABEL` (`customer`), `MONITOR_MIN_SCORES` (1000), `MONITOR_MIN_POSITIVES` (100).

use std::collections::BTreeMap;

use serde::Deserialize;
use wasm_bindgen::JsValue;
use worker::*;

use super::arms::{self, EMBEDDED};
use super::bindings::{MONITOR, SCORE_EVENTS};
use super::env::{var, var_num};
use super::http::{now_ms, query, ApiError, ApiResult};
use super::outbox::Delivery;
use super::registry;
use crate::dataset::parse_window;
use crate::error_code::ErrorCode;
use crate::experiment::Experiment;
use crate::log::Record;
use crate::model::card::Card;
use crate::monitor::accuracy::Labelled;
use crate::monitor::arms::{compare, ArmCounts, ExperimentWindow};
use crate::monitor::baseline::Baseline;
use crate::monitor::drift::{Gate, Level};
use crate::monitor::health::{self, Alert, WindowHealth};
use crate::monitor::report::Report;
use crate::monitor::window::{self, Conversions, Decision, Decisions, WindowKey};
use crate::outcome::{Outcome, OutcomeType};
use crate::registry::AdoptedBaseline;

/// Most windows one scheduled run assesses (the rest wait for the next run).
pub const MAX_WINDOWS_PER_RUN: usize = 24;
/// Most decisions read for one assessment.
pub const MAX_DECISIONS: usize = 200_000;
/// Decisions read per query.
const PAGE: usize = 500;

/// The database. Its tables come from wrangler's D1 migrations (`src/worker/migrations/`),
/// applied before the worker runs: locally by the stack, in production by `make deploy`.
async fn db(env: &Env) -> Result<D1Database> {
    env.d1(MONITOR)
}

/// How this deployment judges windows.
struct Settings {
    window_ms: i64,
    label: OutcomeType,
    gate: Gate,
    outcome_window_ms: i64,
}

impl Settings {
    fn of(env: &Env) -> Settings {
        let ms = |name: &str, default: i64| {
            var(env, name)
                .and_then(|v| parse_window(&v).ok())
                .unwrap_or(default)
        };
        Settings {
            window_ms: ms("MONITOR_WINDOW", window::DEFAULT_WINDOW_MS),
            outcome_window_ms: ms("MONITOR_OUTCOME_WINDOW", window::DEFAULT_OUTCOME_WINDOW_MS),
            label: var(env, "MONITOR_LABEL")
                .and_then(|v| OutcomeType::parse(&v))
                .unwrap_or(OutcomeType::Customer),
            gate: Gate {
                min_scores: var_num(env, "MONITOR_MIN_SCORES", Gate::default().min_scores),
                min_positives: var_num(env, "MONITOR_MIN_POSITIVES", Gate::default().min_positives),
                ..Gate::default()
            },
        }
    }

    fn options(&self, as_of: i64) -> health::Options {
        health::Options {
            gate: self.gate,
            outcome_window_ms: self.outcome_window_ms,
            as_of,
            auc_drop: health::AUC_DROP,
            ece_factor: health::ECE_FACTOR,
        }
    }
}

fn num(v: i64) -> JsValue {
    JsValue::from_f64(v as f64)
}

fn text(s: &str) -> JsValue {
    JsValue::from_str(s)
}

fn opt_text(s: Option<&str>) -> JsValue {
    s.map_or(JsValue::NULL, JsValue::from_str)
}

/// Folds one logs batch's records into D1 (one `batch` call; nothing when there are none).
/// Returns the statements written.
pub async fn record(env: &Env, lines: &[&str]) -> Result<usize> {
    let s = Settings::of(env);
    // The batch's latest score per (window, model, arm, visitor): the upsert's own rule.
    type Key = (i64, String, String, String);
    let mut latest: BTreeMap<Key, (i64, Option<String>, &str)> = BTreeMap::new();
    let mut outcomes: Vec<Outcome> = Vec::new();
    for line in lines {
        match serde_json::from_str::<Record>(line) {
            Ok(Record::Score(r)) => {
                let key = (
                    window::window_start(r.ts, s.window_ms),
                    r.model_version,
                    r.arm.unwrap_or_default(),
                    r.visitor_id,
                );
                match latest.get(&key) {
                    Some((ts, _, _)) if *ts > r.ts => {}
                    _ => {
                        latest.insert(key, (r.ts, r.lead_id, line));
                    }
                }
            }
            Ok(Record::Outcome(r)) => outcomes.push(r.outcome),
            _ => {}
        }
    }
    let d = db(env).await?;
    let upsert = d.prepare(
        "INSERT INTO decisions (window_start, model, arm, visitor_id, lead_id, ts, record) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) \
         ON CONFLICT (window_start, model, arm, visitor_id) DO UPDATE SET lead_id = excluded.lead_id, \
         ts = excluded.ts, record = excluded.record WHERE excluded.ts >= decisions.ts",
    );
    let insert_outcome = d.prepare(
        "INSERT OR IGNORE INTO outcomes (id, visitor_id, lead_id, type, ts) VALUES (?1, ?2, ?3, ?4, ?5)",
    );
    let mut stmts = Vec::new();
    for ((start, model, arm, visitor), (ts, lead, json)) in &latest {
        stmts.push(upsert.clone().bind(&[
            num(*start),
            text(model),
            text(arm),
            text(visitor),
            opt_text(lead.as_deref()),
            num(*ts),
            text(json),
        ])?);
    }
    for o in &outcomes {
        stmts.push(insert_outcome.clone().bind(&[
            text(&o.id),
            opt_text(o.visitor_id.as_deref()),
            opt_text(o.lead_id.as_deref()),
            text(o.kind.as_str()),
            num(o.ts),
        ])?);
    }
    let n = stmts.len();
    if n > 0 {
        d.batch(stmts).await?;
    }
    Ok(n)
}

#[derive(Deserialize)]
struct RecordRow {
    window_start: f64,
    arm: String,
    visitor_id: String,
    record: String,
}

#[derive(Deserialize)]
struct OutcomeRow {
    id: String,
    visitor_id: Option<String>,
    lead_id: Option<String>,
    #[serde(rename = "type")]
    kind: String,
    ts: f64,
}

/// The decisions of windows [from, to) of one model (every arm) and the label outcomes of
/// their visitors and leads.
async fn load(
    d: &D1Database,
    s: &Settings,
    model: &str,
    arm: Option<&str>,
    from: i64,
    to: i64,
    names: &[String],
) -> Result<(Decisions, Conversions, u64, u64)> {
    let filter =
        "window_start >= ?1 AND window_start < ?2 AND model = ?3 AND (?4 IS NULL OR arm = ?4)";
    let args = [num(from), num(to), text(model), opt_text(arm)];
    // Pages of PAGE rows in key order: one huge result would hit the runtime's response limits.
    let mut decisions = Decisions::new(s.window_ms);
    let mut scores = 0u64;
    let mut after = (i64::MIN, String::new(), String::new());
    loop {
        let rows = d
            .prepare(format!(
                "SELECT window_start, arm, visitor_id, record FROM decisions WHERE {filter} \
                 AND (window_start, arm, visitor_id) > (?5, ?6, ?7) \
                 ORDER BY window_start, arm, visitor_id LIMIT {PAGE}"
            ))
            .bind(&[
                args[0].clone(),
                args[1].clone(),
                args[2].clone(),
                args[3].clone(),
                num(after.0),
                text(&after.1),
                text(&after.2),
            ])?
            .all()
            .await?
            .results::<RecordRow>()?;
        let n = rows.len();
        for r in rows {
            after = (r.window_start as i64, r.arm, r.visitor_id);
            if let Ok(Record::Score(sr)) = serde_json::from_str::<Record>(&r.record) {
                scores += 1;
                decisions.add(Decision::of(&sr, names));
            }
        }
        if n < PAGE || scores as usize >= MAX_DECISIONS {
            break;
        }
    }
    let outcomes = d
        .prepare(format!(
            "SELECT id, visitor_id, lead_id, type, ts FROM outcomes WHERE type = ?5 AND \
             (visitor_id IN (SELECT visitor_id FROM decisions WHERE {filter}) OR \
              lead_id IN (SELECT lead_id FROM decisions WHERE {filter} AND lead_id IS NOT NULL))"
        ))
        .bind(&[
            args[0].clone(),
            args[1].clone(),
            args[2].clone(),
            args[3].clone(),
            text(s.label.as_str()),
        ])?
        .all()
        .await?
        .results::<OutcomeRow>()?;
    let mut conv = Conversions::new(s.label);
    let outcome_rows = outcomes.len() as u64;
    for o in outcomes {
        if let Some(kind) = OutcomeType::parse(&o.kind) {
            conv.add(&Outcome {
                id: o.id,
                lead_id: o.lead_id,
                visitor_id: o.visitor_id,
                kind,
                ts: o.ts as i64,
                value: None,
            });
        }
    }
    Ok((decisions, conv, scores, outcome_rows))
}

/// One served model's baseline.
struct Monitored {
    baseline: Baseline,
    model: String,
    names: Vec<String>,
}

/// What a version is watched against: the baseline adopted for it (the registry's state), else
/// its card's, else none to judge drift by ([`Baseline::live_only`]: a scorecard's live accuracy
/// is still measured). An adopted baseline that cannot be read leaves the card's in its place.
async fn baseline_of(
    env: &Env,
    dep: &arms::Deployment,
    card: &Card,
) -> std::result::Result<Baseline, String> {
    if let Some(a) = dep.registry.state.baselines.get(&card.model_version) {
        let adopted = match registry::text(env, &a.key).await {
            Ok(Some(t)) => serde_json::from_str(&t)
                .map_err(|e| e.to_string())
                .and_then(|v| Baseline::parse_for(card, v).map_err(|e| e.to_string())),
            Ok(None) => Err("not stored".into()),
            Err(e) => Err(e.message),
        };
        match adopted {
            Ok(b) => return Ok(b),
            Err(e) => console_error!("monitor: baseline {} of {}: {e}", a.key, a.model),
        }
    }
    Ok(Baseline::of(card)
        .map_err(|e| e.to_string())?
        .unwrap_or_else(Baseline::live_only))
}

/// Every bundle that may be scoring ([`super::arms::EMBEDDED`], the registry's active version and
/// its experiment's arms) with what it is watched against ([`baseline_of`]).
async fn monitored(env: &Env) -> std::result::Result<Vec<Monitored>, String> {
    let dep = arms::deployment(env).await;
    let mut names: Vec<String> = EMBEDDED.iter().map(|(n, ..)| n.to_string()).collect();
    names.push(dep.active().to_string());
    if let Some(exp) = &dep.experiment {
        names.extend(exp.arms.iter().map(|a| a.model.clone()));
    }
    let mut out: Vec<Monitored> = Vec::new();
    for name in names {
        let sc = match arms::named_scorer(env, &name).await {
            Ok(sc) => sc,
            Err(e) if arms::is_embedded(&name) => return Err(e.message),
            Err(e) => {
                // What scores in its place is the default, which is monitored.
                console_error!("monitor: model {name} not loaded: {}", e.message);
                continue;
            }
        };
        let card = sc.card();
        if out.iter().any(|m| m.model == card.model_version) {
            continue;
        }
        let baseline = baseline_of(env, &dep, card).await?;
        let names = baseline.features.iter().map(|f| f.name.clone()).collect();
        out.push(Monitored {
            baseline,
            model: card.model_version.clone(),
            names,
        });
    }
    Ok(out)
}

/// A new normal: the decisions of `name`'s windows that start in [from, to) become its drift
/// baseline, in the bins of the one it replaces (at least `MONITOR_MIN_SCORES` decisions; the
/// held-out accuracy bar stays). Stored in R2, then recorded in the registry's state and history
/// with `by` and `at`; every isolate's monitor uses it from its next run. Alerts already sent stay
/// sent. Returns the record.
pub async fn adopt_baseline(
    env: &Env,
    name: &str,
    (from, to): (i64, i64),
    (at, by): (i64, &str),
    reason: Option<String>,
) -> ApiResult<AdoptedBaseline> {
    let sc = arms::named_scorer(env, name).await?;
    let card = sc.card();
    let dep = arms::deployment(env).await;
    let current = baseline_of(env, &dep, card)
        .await
        .map_err(ApiError::internal)?;
    let s = Settings::of(env);
    let names: Vec<String> = card.features.iter().map(|f| f.name.clone()).collect();
    let (decisions, _, _, _) = load(
        &db(env).await?,
        &s,
        &card.model_version,
        None,
        from,
        to,
        &names,
    )
    .await?;
    let all: Vec<&Decision> = decisions.windows().flat_map(|(_, w)| w).collect();
    let baseline = Baseline::adopt(card, &current, &all, s.gate.min_scores)
        .map_err(|e| ApiError::new(422, ErrorCode::InsufficientData, e.to_string()))?;
    let adopted = AdoptedBaseline {
        model: card.model_version.clone(),
        key: registry::baseline_key(&card.model_version, at),
        from,
        to,
        decisions: all.len() as u64,
    };
    let text = serde_json::to_string(&baseline).map_err(ApiError::internal)?;
    registry::put_text(env, &adopted.key, text).await?;
    registry::change(env, |st| {
        st.adopt_baseline(adopted.clone(), at, by, reason.clone());
        Ok(())
    })
    .await?;
    Ok(adopted)
}

/// The experiment's windows from the arms' assessments.
fn experiments(
    exp: Option<&Experiment>,
    windows: &[WindowHealth],
    window_ms: i64,
) -> Vec<ExperimentWindow> {
    let Some(exp) = exp else { return Vec::new() };
    let mut starts: Vec<i64> = windows
        .iter()
        .filter(|w| w.arm.is_some())
        .map(|w| w.start)
        .collect();
    starts.dedup();
    starts
        .into_iter()
        .filter_map(|start| {
            let counts: Vec<ArmCounts> = windows
                .iter()
                .filter(|w| w.start == start)
                .filter_map(ArmCounts::of)
                .collect();
            compare(exp, start, start + window_ms, &counts).ok()
        })
        .collect()
}

/// `GET /v1/monitor?from=&to=&model=&arm=&as_of=` (bearer): every served model's windows in [from,
/// to) (ms or YYYY-MM-DD; default the last 30 days) and the experiment's arms, as [`Report`],
/// labelled as of `as_of` (default now).
pub async fn get(req: &Request, env: &Env) -> ApiResult<Response> {
    let bad = |m: String| ApiError::new(400, ErrorCode::InvalidField, m);
    let mut models = monitored(env).await.map_err(ApiError::internal)?;
    if let Some(m) = query(req, "model")? {
        models.retain(|x| x.model == m);
        if models.is_empty() {
            return Err(ApiError::new(
                404,
                ErrorCode::NotFound,
                format!("model {m:?} is not embedded here"),
            ));
        }
    }
    let time = |key: &str| -> ApiResult<Option<i64>> {
        query(req, key)?
            .map(|v| crate::dataset::parse_as_of(&v).map_err(|e| bad(format!("{key}: {e}"))))
            .transpose()
    };
    // Labels as known at `as_of` (default now): a past report as it read then.
    let now = time("as_of")?.unwrap_or_else(now_ms);
    let to = time("to")?.unwrap_or(now);
    let from = time("from")?.unwrap_or(to - 30 * 86_400_000);
    if from >= to {
        return Err(bad(format!("from ({from}) must be before to ({to})")));
    }
    let arm = query(req, "arm")?;
    let s = Settings::of(env);
    let d = db(env).await?;
    let mut windows = Vec::new();
    let (mut scores, mut outcomes) = (0, 0);
    for m in &models {
        let (decisions, conv, n, o) =
            load(&d, &s, &m.model, arm.as_deref(), from, to, &m.names).await?;
        scores += n;
        outcomes += o;
        windows.extend(
            health::assess(&m.baseline, &decisions, &conv, &s.options(now))
                .map_err(ApiError::internal)?,
        );
    }
    windows.sort_by(|a, b| {
        (a.start, &a.model_version, &a.arm).cmp(&(b.start, &b.model_version, &b.arm))
    });
    let exps = experiments(
        arms::deployment(env).await.experiment.as_deref(),
        &windows,
        s.window_ms,
    );
    let mut alerts = health::alerts_of(&windows);
    alerts.extend(exps.iter().filter_map(ExperimentWindow::alert));
    Ok(Response::from_json(&Report {
        model_version: models
            .iter()
            .map(|m| m.model.as_str())
            .collect::<Vec<_>>()
            .join(","),
        label: s.label,
        window_ms: s.window_ms,
        outcome_window_ms: s.outcome_window_ms,
        as_of: now,
        gate: s.gate,
        scores,
        other_models: 0,
        outcomes,
        windows,
        alerts,
        experiments: exps,
    })?)
}

#[derive(Deserialize)]
struct Pending {
    window_start: f64,
    arm: String,
    drift: Option<f64>,
}

#[derive(Deserialize)]
struct ArmCount {
    window_start: f64,
    arm: String,
    n: f64,
}

/// The alert's webhook body and its `webhook-id`.
fn alert_delivery(a: &Alert, now: i64) -> Result<Delivery> {
    let body = serde_json::json!({"type": a.kind, "timestamp": now, "data": a});
    // One id per (type, model, arm, window): a repeat is the same message to the receiver.
    let key = format!(
        "{}|{}|{}",
        a.kind,
        a.model_version,
        a.arm.as_deref().unwrap_or("")
    );
    Ok(Delivery {
        id: format!(
            "alert_{:08x}_{}",
            crate::experiment::fnv1a32(&key),
            a.window_start
        ),
        body: serde_json::to_string(&body).map_err(|e| Error::RustError(e.to_string()))?,
        // The retry schedule counts in real time, whatever time the run judges as of.
        enqueued: now_ms(),
    })
}

/// Sends an alert unless this (window, model, arm, type) already had one; returns what was sent.
async fn send_once(
    d: &D1Database,
    queue: &Queue,
    a: &Alert,
    arm: &str,
    now: i64,
) -> Result<Option<serde_json::Value>> {
    let sent_before = d
        .prepare(
            "SELECT COUNT(*) AS n FROM alerts WHERE window_start = ?1 AND model = ?2 AND arm = ?3 AND type = ?4",
        )
        .bind(&[num(a.window_start), text(&a.model_version), text(arm), text(&a.kind)])?
        .first::<f64>(Some("n"))
        .await?
        .unwrap_or(0.0)
        > 0.0;
    if sent_before {
        return Ok(None);
    }
    let delivery = alert_delivery(a, now)?;
    queue.send(delivery.clone()).await?;
    d.prepare(
        "INSERT OR IGNORE INTO alerts (window_start, model, arm, type, sent_at, body) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )
    .bind(&[
        num(a.window_start),
        text(&a.model_version),
        text(arm),
        text(&a.kind),
        num(now),
        text(&delivery.body),
    ])?
    .run()
    .await?;
    Ok(Some(serde_json::json!({
        "type": a.kind, "window_start": a.window_start, "model": a.model_version,
        "arm": a.arm, "webhook_id": delivery.id
    })))
}

/// Marks a window judged (`done`: its accuracy too, every decision labelled); `labelled`: an
/// experiment arm's counts, kept for the live gate.
async fn mark_judged(
    d: &D1Database,
    start: i64,
    model: &str,
    arm: &str,
    done: bool,
    labelled: Option<&Labelled>,
) -> Result<()> {
    let counts = match labelled {
        Some(l) => text(&serde_json::to_string(l).map_err(|e| Error::RustError(e.to_string()))?),
        None => JsValue::NULL,
    };
    d.prepare(
        "INSERT INTO judged (window_start, model, arm, drift, accuracy, labelled) VALUES (?1, ?2, ?3, 1, ?4, ?5) \
         ON CONFLICT (window_start, model, arm) DO UPDATE SET drift = 1, accuracy = excluded.accuracy, \
         labelled = excluded.labelled",
    )
    .bind(&[num(start), text(model), text(arm), num(i64::from(done)), counts])?
    .run()
    .await?;
    Ok(())
}

/// The scheduled run: judges every served model's closed windows and the experiment's
/// assignment, sends their alerts once, applies the live gate and the rollback on a performance
/// alert ([`super::promote`]), then asks for a retrain when the policy says so
/// ([`super::retrain`]). Everything is as of `now`, the run's scheduled time: windows closed by
/// then, outcomes labelled by then. Returns what it did.
pub async fn scheduled(env: &Env, now: i64) -> Result<serde_json::Value> {
    let s = Settings::of(env);
    let d = db(env).await?;
    let queue = env.queue(SCORE_EVENTS)?;
    let mut sent = Vec::new();
    let mut judged = 0usize;
    for m in monitored(env).await.map_err(Error::RustError)? {
        let open = d
            .prepare(
                "SELECT d.window_start AS window_start, d.arm AS arm, j.drift AS drift \
                 FROM (SELECT DISTINCT window_start, arm FROM decisions WHERE model = ?1 AND window_start + ?2 <= ?3) d \
                 LEFT JOIN judged j ON j.window_start = d.window_start AND j.model = ?1 AND j.arm = d.arm \
                 WHERE j.accuracy IS NULL OR j.accuracy = 0 ORDER BY d.window_start LIMIT ?4",
            )
            .bind(&[
                text(&m.model),
                num(s.window_ms),
                num(now),
                num(MAX_WINDOWS_PER_RUN as i64),
            ])?
            .all()
            .await?
            .results::<Pending>()?;
        for p in open {
            let start = p.window_start as i64;
            let (decisions, conv, _, _) =
                load(&d, &s, &m.model, Some(&p.arm), start, start + 1, &m.names).await?;
            let key = WindowKey {
                start,
                model_version: m.model.clone(),
                arm: (!p.arm.is_empty()).then(|| p.arm.clone()),
            };
            let Some((_, w)) = decisions.windows().find(|(k, _)| **k == key) else {
                continue;
            };
            let h =
                health::assess_window(&m.baseline, &key, s.window_ms, w, &conv, &s.options(now))
                    .map_err(|e| Error::RustError(e.to_string()))?;
            let drift_done = p.drift.is_some_and(|v| v > 0.0);
            for a in &h.alerts {
                let is_drift = a.kind == health::DRIFT_DETECTED;
                if (is_drift && drift_done) || (!is_drift && a.level != Level::Alert) {
                    continue;
                }
                sent.extend(send_once(&d, &queue, a, &p.arm, now).await?);
            }
            // An experiment arm's closed, fully labelled window: what the live gate pools.
            let done = h.accuracy.pending == 0;
            let counts = (!p.arm.is_empty() && done).then_some(&h.accuracy.labelled);
            mark_judged(&d, start, &m.model, &p.arm, done, counts).await?;
            judged += 1;
        }
    }
    // Assignment: each closed window's visitors per arm against the weights, once.
    if let Some(exp) = arms::deployment(env).await.experiment {
        let rows = d
            .prepare(
                "SELECT c.window_start AS window_start, c.arm AS arm, c.n AS n FROM \
                 (SELECT window_start, arm, COUNT(*) AS n FROM decisions WHERE arm != '' AND window_start + ?1 <= ?2 \
                  GROUP BY window_start, arm) c LEFT JOIN judged j ON j.window_start = c.window_start \
                 AND j.model = ?3 AND j.arm = '' WHERE j.window_start IS NULL ORDER BY c.window_start",
            )
            .bind(&[num(s.window_ms), num(now), text(&exp.key)])?
            .all()
            .await?
            .results::<ArmCount>()?;
        let mut by_window: BTreeMap<i64, Vec<ArmCounts>> = BTreeMap::new();
        for r in rows {
            by_window
                .entry(r.window_start as i64)
                .or_default()
                .push(ArmCounts {
                    arm: r.arm,
                    visitors: r.n as u64,
                    ..ArmCounts::default()
                });
        }
        for (start, counts) in by_window {
            let e = compare(&exp, start, start + s.window_ms, &counts)
                .map_err(|e| Error::RustError(e.to_string()))?;
            if let Some(a) = e.alert() {
                sent.extend(send_once(&d, &queue, &a, "", now).await?);
            }
            mark_judged(&d, start, &exp.key, "", true, None).await?;
            judged += 1;
        }
    }
    let alerts: Vec<(String, String, Option<String>)> = sent
        .iter()
        .map(|a| {
            let t = |k: &str| a[k].as_str().map(String::from);
            (
                t("type").unwrap_or_default(),
                t("model").unwrap_or_default(),
                t("arm"),
            )
        })
        .collect();
    let promotion = super::promote::judge(env, &d, &queue, now).await?;
    let rollback = super::promote::roll_back_on_degraded(env, &queue, now, &alerts).await?;
    let kinds: Vec<&str> = alerts.iter().map(|a| a.0.as_str()).collect();
    let retrain = super::retrain::request(env, &d, &queue, s.label, now, &kinds).await?;
    let out = serde_json::json!({
        "windows_judged": judged, "alerts_sent": sent, "promotion": promotion,
        "rollback": rollback, "retrain_requested": retrain,
    });
    console_log!("monitor: {out}");
    Ok(out)
}
