//! Promotion by live results: once an experiment's candidate arm and the active arm have enough
//! labelled outcomes, pooled over the closed windows both served in ([`pool`]), promote the
//! candidate if its realized AUC is at least the active's minus a margin and its calibration (ECE)
//! no worse than the active's plus a margin, otherwise end the experiment. Never a decision on too
//! little data: below the minimums the answer is to wait, and the next window adds to the pool. A
//! pure rule; the cron run applies it (`AUTO_PROMOTE`, `worker/promote.rs`).
//!
//! Why pooled, and only over shared windows: one window rarely holds enough positives for both
//! arms, and judging each window alone on its own few outcomes both waits for ever and decides
//! on noise; the arms are compared on the same windows only, because an arm's earlier windows
//! (the active version served alone, or as a candidate before) come from another period, and live
//! AUC moves with the period.

use std::collections::BTreeMap;

use serde::Serialize;

use super::accuracy::Labelled;
use crate::metrics::{auc_difference, AucDifference};

/// Webhook: the candidate became the active version.
pub const PROMOTED: &str = "model.promoted";
/// Webhook: the experiment ended with the active version kept.
pub const REJECTED: &str = "model.rejected";
/// Webhook: the active version was rolled back after a performance alert.
pub const ROLLED_BACK: &str = "model.rolled_back";

/// What a live decision needs (documented minimums: README "Promotion by live results").
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct LiveCriteria {
    /// Labelled decisions each arm needs, pooled over the shared windows.
    pub min_rows: u64,
    /// Positives each arm needs, pooled over the shared windows.
    pub min_positives: u64,
    /// How far the candidate's AUC may fall below the active's.
    pub auc_margin: f64,
    /// How far the candidate's ECE may rise above the active's.
    pub ece_margin: f64,
}

impl Default for LiveCriteria {
    fn default() -> Self {
        LiveCriteria {
            min_rows: 300,
            min_positives: 30,
            auc_margin: 0.01,
            ece_margin: 0.02,
        }
    }
}

/// The live gate's answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum LiveDecision {
    /// Too little labelled data in an arm: no decision.
    Wait {
        /// Why.
        reason: String,
    },
    /// The candidate replaces the active version.
    Promote {
        /// The checks, one sentence each.
        reasons: Vec<String>,
        /// The candidate's AUC minus the active's, with its standard error and 95 % interval.
        auc_difference: Option<AucDifference>,
    },
    /// The experiment ends; the active version stays.
    Reject {
        /// The checks, one sentence each.
        reasons: Vec<String>,
        /// The candidate's AUC minus the active's, with its standard error and 95 % interval.
        auc_difference: Option<AucDifference>,
    },
}

/// Both arms' labelled decisions, pooled over the windows where both have them.
#[derive(Debug, Clone, PartialEq)]
pub struct Pooled {
    /// The active arm's.
    pub active: Labelled,
    /// The candidate arm's.
    pub candidate: Labelled,
    /// The windows pooled (their starts).
    pub windows: Vec<i64>,
}

/// Pools `rows` (a closed, fully labelled window's start, its arm, its counts) of the two arms over
/// the windows both have; `None` when they share none.
pub fn pool(rows: &[(i64, String, Labelled)], active: &str, candidate: &str) -> Option<Pooled> {
    let mut by_window: BTreeMap<i64, (Option<&Labelled>, Option<&Labelled>)> = BTreeMap::new();
    for (start, arm, l) in rows {
        let slot = by_window.entry(*start).or_default();
        if arm == active {
            slot.0 = Some(l);
        } else if arm == candidate {
            slot.1 = Some(l);
        }
    }
    let mut p = Pooled {
        active: Labelled::default(),
        candidate: Labelled::default(),
        windows: Vec::new(),
    };
    for (start, pair) in by_window {
        if let (Some(a), Some(c)) = pair {
            p.active.merge(a);
            p.candidate.merge(c);
            p.windows.push(start);
        }
    }
    (!p.windows.is_empty()).then_some(p)
}

/// Judges the arms' labelled decisions (pooled: [`pool`]). The rule compares point estimates with
/// margins; the difference's interval (DeLong) is reported beside it, so a reader sees how sure a
/// decision on these numbers is.
pub fn decide(active_arm: &Labelled, candidate_arm: &Labelled, c: &LiveCriteria) -> LiveDecision {
    let (active, candidate) = (&active_arm.accuracy(), &candidate_arm.accuracy());
    for (arm, a) in [("active", active), ("candidate", candidate)] {
        if a.auc.rows < c.min_rows || a.auc.positives < c.min_positives {
            return LiveDecision::Wait {
                reason: format!(
                    "the {arm} arm has {} labelled decisions and {} positives; the gate needs {} and {}",
                    a.auc.rows, a.auc.positives, c.min_rows, c.min_positives
                ),
            };
        }
    }
    let (Some(auc_a), Some(auc_c)) = (active.auc.value, candidate.auc.value) else {
        return LiveDecision::Wait {
            reason: "an arm's AUC is undefined (one class only)".into(),
        };
    };
    let (ece_a, ece_c) = (
        active.calibration.ece.unwrap_or(f64::INFINITY),
        candidate.calibration.ece.unwrap_or(f64::INFINITY),
    );
    let auc_ok = auc_c >= auc_a - c.auc_margin;
    let ece_ok = ece_c <= ece_a + c.ece_margin;
    let difference = auc_difference(active_arm.scores(), candidate_arm.scores());
    let interval = match difference {
        Some(d) => format!(
            "; difference {:+.4}, 95 % interval {:+.4} to {:+.4}",
            d.value, d.low, d.high
        ),
        None => String::new(),
    };
    let reasons = vec![
        format!(
            "auc: candidate {auc_c:.4} vs active {auc_a:.4} (margin {}): {}{interval}",
            c.auc_margin,
            if auc_ok { "ok" } else { "worse" }
        ),
        format!(
            "ece: candidate {ece_c:.4} vs active {ece_a:.4} (margin {}): {}",
            c.ece_margin,
            if ece_ok { "ok" } else { "worse" }
        ),
    ];
    if auc_ok && ece_ok {
        LiveDecision::Promote {
            reasons,
            auc_difference: difference,
        }
    } else {
        LiveDecision::Reject {
            reasons,
            auc_difference: difference,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::monitor::accuracy::Labelled;

    /// 1,000 decisions, 100 positive: positives split evenly between a high and a low probability,
    /// negatives with `high_negatives` of 900 at the high one (fewer: better ranking).
    fn arm(n_scale: u64, high_negatives: u64, (high, low): (f64, f64)) -> Labelled {
        let mut l = Labelled::default();
        let mut add = |p: f64, pos: bool, k: u64| {
            for _ in 0..k * n_scale {
                let _ = l.add((p * 100.0).round() as u8, p, 2, pos);
            }
        };
        add(high, true, 50);
        add(low, true, 50);
        add(high, false, high_negatives);
        add(low, false, 900 - high_negatives);
        l
    }

    #[test]
    fn the_live_gate_waits_for_data_then_promotes_or_rejects() {
        let c = LiveCriteria::default();
        let good = arm(1, 90, (0.3, 0.1)); // AUC 0.7, ECE ≈ 0.044
        let weak = arm(1, 450, (0.3, 0.1)); // AUC 0.5, ECE 0.1
        let small = LiveCriteria {
            min_rows: 2000,
            ..c
        };
        assert!(matches!(
            decide(&weak, &good, &small),
            LiveDecision::Wait { .. }
        ));
        let LiveDecision::Promote {
            reasons,
            auc_difference: Some(d),
        } = decide(&weak, &good, &c)
        else {
            panic!("promoted, with the difference's interval");
        };
        // 0.7 − 0.5, its interval the arms' DeLong variances added (1,000 decisions each).
        assert!((d.value - 0.2).abs() < 1e-12, "{d:?}");
        let se =
            (weak.scores().auc_variance().unwrap() + good.scores().auc_variance().unwrap()).sqrt();
        assert_eq!(
            (d.se, d.low, d.high),
            (se, d.value - 1.96 * se, d.value + 1.96 * se)
        );
        assert!(
            reasons[0].contains("difference +0.2000, 95 % interval"),
            "{reasons:?}"
        );
        assert!(matches!(
            decide(&good, &weak, &c),
            LiveDecision::Reject { .. }
        ));
        // As good at ranking, far worse calibrated: rejected.
        let uncalibrated = arm(1, 90, (0.9, 0.7));
        assert!(matches!(
            decide(&good, &uncalibrated, &c),
            LiveDecision::Reject { .. }
        ));
        assert_eq!(good.accuracy().auc.value, uncalibrated.accuracy().auc.value);
        // Within the AUC margin counts as as good.
        assert!(matches!(
            decide(&good, &good, &c),
            LiveDecision::Promote { .. }
        ));
    }

    fn labelled(rows: &[(u8, bool)]) -> Labelled {
        let mut l = Labelled::default();
        for &(score, y) in rows {
            l.add(score, f64::from(score) / 100.0, 0, y).unwrap();
        }
        l
    }

    #[test]
    fn arms_are_pooled_over_the_windows_both_served_in() {
        let a = |rows: &[(u8, bool)]| labelled(rows);
        let rows = vec![
            // The active version alone, before the experiment: not pooled.
            (0, "v1".to_string(), a(&[(90, false), (10, true)])),
            (7, "v1".to_string(), a(&[(80, true), (20, false)])),
            (7, "v2".to_string(), a(&[(70, true)])),
            (14, "v1".to_string(), a(&[(30, false)])),
            (14, "v2".to_string(), a(&[(60, true), (40, false)])),
            (14, "other".to_string(), a(&[(50, true)])),
            // The candidate's newest window, its active counterpart not labelled yet: waits.
            (21, "v2".to_string(), a(&[(10, false)])),
        ];
        let p = pool(&rows, "v1", "v2").unwrap();
        assert_eq!(p.windows, vec![7, 14]);
        assert_eq!((p.active.rows(), p.candidate.rows()), (3, 3));
        // The pooled counts are the counts of the pooled rows: AUC as on the raw rows.
        let raw = labelled(&[(80, true), (20, false), (30, false)]);
        assert_eq!(p.active.accuracy(), raw.accuracy());
        assert_eq!(p.active.accuracy().auc.value, Some(1.0));
        assert!(pool(&rows, "v1", "v3").is_none());
    }
}
