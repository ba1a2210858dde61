//! Experiment arms compared per window: visitors and conversion (Wilson interval) per arm from the
//! arms' own window assessments, and the sample-ratio-mismatch χ² test of the assignment counts
//! against the configured weights ([`crate::experiment::srm`]; alert at p < 0.001, judged only
//! with at least [`SRM_MIN_VISITORS`] visitors).

use serde::{Deserialize, Serialize};

use super::drift::Level;
use super::health::{Alert, Moved, WindowHealth};
use crate::experiment::{srm, Experiment, ExperimentError, Srm, SRM_MIN_VISITORS, SRM_P};
use crate::metrics::{wilson95, Rate};

/// Alert type: the arms' visitor counts do not fit the weights.
pub const SAMPLE_RATIO_MISMATCH: &str = "experiment.sample_ratio_mismatch";

/// One arm in one window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArmWindow {
    /// Arm (bundle name).
    pub arm: String,
    /// Its model version in this window (`None` when it had no visitors).
    pub model: Option<String>,
    /// Configured share.
    pub weight: f64,
    /// Visitors (decisions) assigned to it.
    pub visitors: u64,
    /// Conversion of its labelled decisions.
    pub conversion: Rate,
}

/// One window of an experiment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExperimentWindow {
    /// Experiment key.
    pub key: String,
    /// Window start (ms).
    pub window_start: i64,
    /// Window end, exclusive (ms).
    pub window_end: i64,
    /// Per arm, in the experiment's order.
    pub arms: Vec<ArmWindow>,
    /// The SRM test.
    pub srm: Srm,
    /// `insufficient_data`, `ok` or `alert` (mismatch).
    pub level: Level,
}

/// One arm's counts in one window.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ArmCounts {
    /// Arm (bundle name).
    pub arm: String,
    /// Its model version.
    pub model: Option<String>,
    /// Visitors (decisions).
    pub visitors: u64,
    /// Labelled decisions.
    pub labelled: u64,
    /// Positives among them.
    pub positives: u64,
}

impl ArmCounts {
    /// The counts of an arm's window assessment (`None` outside an experiment).
    pub fn of(w: &WindowHealth) -> Option<ArmCounts> {
        Some(ArmCounts {
            arm: w.arm.clone()?,
            model: Some(w.model_version.clone()),
            visitors: w.decisions,
            labelled: w.accuracy.live.auc.rows,
            positives: w.accuracy.live.auc.positives,
        })
    }
}

/// Compares the arms of one window from their counts (any order; arms without counts had no
/// visitors).
pub fn compare(
    exp: &Experiment,
    start: i64,
    end: i64,
    counts: &[ArmCounts],
) -> Result<ExperimentWindow, ExperimentError> {
    let shares = exp.shares();
    let arms: Vec<ArmWindow> = exp
        .arms
        .iter()
        .zip(&shares)
        .map(|(a, &weight)| {
            let mine = counts.iter().filter(|c| c.arm == a.model);
            let (visitors, labelled, positives) = mine.clone().fold((0, 0, 0), |(v, l, p), c| {
                (v + c.visitors, l + c.labelled, p + c.positives)
            });
            ArmWindow {
                arm: a.model.clone(),
                model: mine.filter_map(|c| c.model.clone()).next(),
                weight,
                visitors,
                conversion: wilson95(positives, labelled),
            }
        })
        .collect();
    let observed: Vec<u64> = arms.iter().map(|a| a.visitors).collect();
    let s = srm(exp, &observed, SRM_MIN_VISITORS)?;
    let level = match s.mismatch {
        None => Level::InsufficientData,
        Some(true) => Level::Alert,
        Some(false) => Level::Ok,
    };
    Ok(ExperimentWindow {
        key: exp.key.clone(),
        window_start: start,
        window_end: end,
        arms,
        srm: s,
        level,
    })
}

impl ExperimentWindow {
    /// The SRM alert, when the test found a mismatch: each arm's observed share against its weight.
    pub fn alert(&self) -> Option<Alert> {
        if self.level != Level::Alert {
            return None;
        }
        let total = self.srm.visitors.max(1) as f64;
        let mut moved: Vec<Moved> = self
            .arms
            .iter()
            .map(|a| Moved {
                what: a.arm.clone(),
                metric: "share".into(),
                value: a.visitors as f64 / total,
                baseline: a.weight,
                rows: a.visitors,
                level: Level::Alert,
            })
            .collect();
        moved.push(Moved {
            what: "srm".into(),
            metric: "p_value".into(),
            value: self.srm.p_value.unwrap_or(0.0),
            baseline: SRM_P,
            rows: self.srm.visitors,
            level: Level::Alert,
        });
        Some(Alert {
            kind: SAMPLE_RATIO_MISMATCH.into(),
            level: Level::Alert,
            window_start: self.window_start,
            window_end: self.window_end,
            model_version: self.key.clone(),
            arm: None,
            moved,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::experiment::Arm;

    fn exp() -> Experiment {
        Experiment {
            key: "model-ab".into(),
            arms: ["default", "candidate"]
                .map(|m| Arm {
                    model: m.into(),
                    weight: 0.5,
                })
                .to_vec(),
        }
    }

    fn counts(a: u64, b: u64) -> Vec<ArmCounts> {
        vec![
            ArmCounts {
                arm: "default".into(),
                model: Some("d-1".into()),
                visitors: a,
                labelled: a,
                positives: a / 10,
            },
            ArmCounts {
                arm: "candidate".into(),
                model: Some("c-1".into()),
                visitors: b,
                labelled: b,
                positives: b / 8,
            },
        ]
    }

    #[test]
    fn a_fair_split_passes_and_a_60_40_split_alerts() {
        let fair = compare(&exp(), 0, 10, &counts(1010, 990)).unwrap();
        assert_eq!(fair.level, Level::Ok);
        assert!(fair.alert().is_none());
        assert_eq!(fair.arms[1].conversion.positives, 123);
        let skew = compare(&exp(), 0, 10, &counts(1200, 800)).unwrap();
        assert_eq!(skew.level, Level::Alert);
        let a = skew.alert().unwrap();
        assert_eq!(a.kind, SAMPLE_RATIO_MISMATCH);
        assert_eq!(a.moved[0].what, "default");
        assert!((a.moved[0].value - 0.6).abs() < 1e-12 && a.moved[0].baseline == 0.5);
        let small = compare(&exp(), 0, 10, &counts(60, 40)).unwrap();
        assert_eq!(
            small.level,
            Level::InsufficientData,
            "too few visitors never alert"
        );
    }
}
