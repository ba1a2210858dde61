//! When the worker asks for a retrain (`model.retrain_requested`, a signed webhook any job runner can
//! answer with `leadscore retrain`): on a schedule, after an alert on the served model, or once enough
//! new labelled outcomes have come in. A pure rule; the cron run applies it (`worker/monitor.rs`).

use serde::Serialize;

use super::health::{DRIFT_DETECTED, PERFORMANCE_DEGRADED};

/// The webhook's type.
pub const RETRAIN_REQUESTED: &str = "model.retrain_requested";

/// What asks for a retrain (each part off when `None` / false).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct RetrainPolicy {
    /// `RETRAIN_EVERY`: at most this long between requests (ms).
    pub every_ms: Option<i64>,
    /// `RETRAIN_AFTER_OUTCOMES`: this many new labelled outcomes since the last request.
    pub after_outcomes: Option<u64>,
    /// `RETRAIN_ON_ALERT`: a drift or performance alert sent by this run.
    pub on_alert: bool,
}

/// Why a retrain is requested.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RetrainReason {
    /// `RETRAIN_EVERY` has passed since the last request (or none was made).
    Schedule,
    /// The run sent these alerts about the served model.
    Alert,
    /// `RETRAIN_AFTER_OUTCOMES` new labelled outcomes came in.
    Outcomes,
}

impl RetrainPolicy {
    /// The reason to request a retrain now, if any: `last`: the last request (ms); `new_outcomes`:
    /// labelled outcomes received since it; `alerts`: the types of the alerts this run sent.
    pub fn reason(
        &self,
        now: i64,
        last: Option<i64>,
        new_outcomes: u64,
        alerts: &[&str],
    ) -> Option<RetrainReason> {
        if self.on_alert
            && alerts
                .iter()
                .any(|a| *a == DRIFT_DETECTED || *a == PERFORMANCE_DEGRADED)
        {
            return Some(RetrainReason::Alert);
        }
        if self
            .after_outcomes
            .is_some_and(|n| n > 0 && new_outcomes >= n)
        {
            return Some(RetrainReason::Outcomes);
        }
        match (self.every_ms, last) {
            (Some(_), None) => Some(RetrainReason::Schedule),
            (Some(every), Some(t)) if now.saturating_sub(t) >= every => {
                Some(RetrainReason::Schedule)
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_retrain_is_asked_for_by_schedule_alert_or_outcomes_and_never_otherwise() {
        let day = 86_400_000;
        let off = RetrainPolicy::default();
        assert_eq!(
            off.reason(10 * day, None, 1_000_000, &[DRIFT_DETECTED]),
            None
        );
        let p = RetrainPolicy {
            every_ms: Some(7 * day),
            after_outcomes: Some(500),
            on_alert: true,
        };
        assert_eq!(p.reason(day, None, 0, &[]), Some(RetrainReason::Schedule));
        assert_eq!(p.reason(8 * day, Some(2 * day), 0, &[]), None);
        assert_eq!(
            p.reason(9 * day, Some(2 * day), 0, &[]),
            Some(RetrainReason::Schedule)
        );
        assert_eq!(p.reason(3 * day, Some(2 * day), 499, &[]), None);
        assert_eq!(
            p.reason(3 * day, Some(2 * day), 500, &[]),
            Some(RetrainReason::Outcomes)
        );
        assert_eq!(
            p.reason(3 * day, Some(2 * day), 0, &[PERFORMANCE_DEGRADED]),
            Some(RetrainReason::Alert)
        );
        // An assignment (SRM) alert is about the split, not the model.
        assert_eq!(
            p.reason(3 * day, Some(2 * day), 0, &["experiment.srm_detected"]),
            None
        );
    }
}
