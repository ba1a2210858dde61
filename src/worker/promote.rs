//! The live gate, applied by the scheduled run (`AUTO_PROMOTE = "true"`): when the registry's
//! experiment pits the active version against one candidate and the closed, fully labelled windows
//! both arms served in hold enough outcomes, pooled (D1 `judged.labelled`, each arm's counts per
//! window), the core's rule ([`crate::monitor::promote`]) promotes the candidate (it becomes
//! active, the experiment ends) or rejects it (the experiment ends), recorded in the registry's
//! history by "live gate" and told by a signed `model.promoted` / `model.rejected`.
//! With `ROLLBACK_ON_DEGRADED = "true"`, a `model.performance_degraded` alert on the active version
//! rolls it back (`model.rolled_back`). The minimums: `PROMOTE_MIN_ROWS` (300),
//! `PROMOTE_MIN_POSITIVES` (30), margins `PROMOTE_AUC_MARGIN` (0.01), `PROMOTE_ECE_MARGIN` (0.02).

use worker::*;

use super::arms;
use super::env::{var, var_num};
use super::outbox::Delivery;
use super::registry;
use crate::monitor::accuracy::Labelled;
use crate::monitor::health::PERFORMANCE_DEGRADED;
use crate::monitor::promote::{
    decide, pool, LiveCriteria, LiveDecision, PROMOTED, REJECTED, ROLLED_BACK,
};

/// Who the registry's history names for the gate's changes.
const BY: &str = "live gate";

fn on(env: &Env, name: &str) -> bool {
    var(env, name).is_some_and(|v| v.trim() == "true")
}

fn criteria(env: &Env) -> LiveCriteria {
    let d = LiveCriteria::default();
    LiveCriteria {
        min_rows: var_num(env, "PROMOTE_MIN_ROWS", d.min_rows),
        min_positives: var_num(env, "PROMOTE_MIN_POSITIVES", d.min_positives),
        auc_margin: var_num(env, "PROMOTE_AUC_MARGIN", d.auc_margin),
        ece_margin: var_num(env, "PROMOTE_ECE_MARGIN", d.ece_margin),
    }
}

async fn tell(queue: &Queue, kind: &str, now: i64, data: serde_json::Value) -> Result<String> {
    let id = format!("{}_{now}", kind.replace('.', "_"));
    let body = serde_json::json!({"type": kind, "timestamp": now, "data": data});
    queue
        .send(Delivery {
            id: id.clone(),
            body: body.to_string(),
            // The retry schedule counts in real time, whatever time the run judges as of.
            enqueued: super::http::now_ms(),
        })
        .await?;
    Ok(id)
}

fn api_error(e: super::http::ApiError) -> Error {
    Error::RustError(e.message)
}

/// An arm's judged window, as D1 keeps it.
#[derive(serde::Deserialize)]
struct ArmWindow {
    window_start: f64,
    arm: String,
    labelled: String,
}

/// Judges the experiment on its arms' closed, fully labelled windows, pooled; returns what it
/// decided, if anything.
pub async fn judge(
    env: &Env,
    d: &D1Database,
    queue: &Queue,
    now: i64,
) -> Result<Option<serde_json::Value>> {
    if !on(env, "AUTO_PROMOTE") {
        return Ok(None);
    }
    let dep = arms::deployment(env).await;
    let Some(exp) = dep.registry.state.experiment.clone() else {
        return Ok(None);
    };
    let active = dep.active().to_string();
    let others: Vec<&str> = exp
        .arms
        .iter()
        .map(|a| a.model.as_str())
        .filter(|m| *m != active)
        .collect();
    let ([candidate], true) = (others.as_slice(), exp.arms.len() == 2) else {
        return Ok(None); // the gate judges an active version against one candidate
    };
    let found = d
        .prepare(
            "SELECT window_start, arm, labelled FROM judged \
             WHERE accuracy = 1 AND labelled IS NOT NULL AND (arm = ?1 OR arm = ?2)",
        )
        .bind(&[
            wasm_bindgen::JsValue::from_str(&active),
            wasm_bindgen::JsValue::from_str(candidate),
        ])?
        .all()
        .await?
        .results::<ArmWindow>()?;
    let mut rows = Vec::with_capacity(found.len());
    for w in found {
        let l: Labelled =
            serde_json::from_str(&w.labelled).map_err(|e| Error::RustError(e.to_string()))?;
        rows.push((w.window_start as i64, w.arm, l));
    }
    let Some(pooled) = pool(&rows, &active, candidate) else {
        return Ok(None);
    };
    let (a, b) = (pooled.active.accuracy(), pooled.candidate.accuracy());
    let c = criteria(env);
    let decision = decide(&pooled.active, &pooled.candidate, &c);
    let (kind, promote) = match &decision {
        LiveDecision::Wait { .. } => return Ok(None),
        LiveDecision::Promote { .. } => (PROMOTED, true),
        LiveDecision::Reject { .. } => (REJECTED, false),
    };
    let reason = format!(
        "{kind}: {} windows pooled, from {}",
        pooled.windows.len(),
        pooled.windows[0]
    );
    let cand = candidate.to_string();
    registry::change(env, |s| {
        s.end_experiment(now, BY, Some(reason.clone()));
        if promote {
            s.activate(&cand, now, BY, Some(reason.clone()));
        }
        Ok(())
    })
    .await
    .map_err(api_error)?;
    let data = serde_json::json!({
        "experiment": exp.key, "candidate": cand, "active_before": active,
        "windows": pooled.windows, "window_start": pooled.windows[0],
        "decision": decision, "criteria": c,
        "arms": {"active": a, "candidate": b},
    });
    let id = tell(queue, kind, now, data).await?;
    Ok(Some(
        serde_json::json!({"type": kind, "candidate": cand, "webhook_id": id}),
    ))
}

/// Rolls the active version back after a performance alert on it (`alerts`: (type, model
/// version, arm) of the alerts this run sent), when so configured and there is one to go back to.
pub async fn roll_back_on_degraded(
    env: &Env,
    queue: &Queue,
    now: i64,
    alerts: &[(String, String, Option<String>)],
) -> Result<Option<serde_json::Value>> {
    if !on(env, "ROLLBACK_ON_DEGRADED") {
        return Ok(None);
    }
    let dep = arms::deployment(env).await;
    let Some(active) = dep.registry.state.active.clone() else {
        return Ok(None); // the embedded default has nothing before it
    };
    let hit = alerts.iter().any(|(kind, model, arm)| {
        kind == PERFORMANCE_DEGRADED && *model == active && arm.is_none()
    });
    if !hit || dep.registry.state.replaced.is_empty() {
        return Ok(None);
    }
    let reason = format!("{PERFORMANCE_DEGRADED} on {active}");
    registry::change(env, |s| {
        s.rollback(now, BY, Some(reason.clone()))
            .map_err(|e| super::http::ApiError::internal(e.to_string()))
    })
    .await
    .map_err(api_error)?;
    let back = arms::deployment(env).await.active().to_string();
    let id = tell(
        queue,
        ROLLED_BACK,
        now,
        serde_json::json!({"rolled_back": active, "active": back, "reason": reason}),
    )
    .await?;
    Ok(Some(
        serde_json::json!({"type": ROLLED_BACK, "active": back, "webhook_id": id}),
    ))
}
