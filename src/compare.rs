//! The publish gate: score the active and the candidate bundle on the same held-out rows of a
//! training set (`leadscore dataset`'s CSV), compare them with [`crate::metrics`] and decide whether
//! the candidate may replace the active model. The last step of the learning loop
//! (log → outcome → dataset → train → compare); `leadscore compare` is its front end.
//!
//! - **Rows**: those with `decision_ts ≥ holdout_from` — by default the candidate card's
//!   `training.holdout_from` (the first decision time the trainer held out), else every row. Each
//!   bundle reads the columns named by its own card's features; a missing column is an error naming
//!   it. Both are scored through [`Scorer::score_vector`], so the probabilities, scores and tiers
//!   judged are the ones served.
//! - **Verdict** ([`GateVerdict`]): *insufficient data* unless the rows reach `min_rows` and
//!   `min_positives` and both AUCs are defined; else *promote* only if the candidate's AUC is not
//!   below the active's by more than `auc_margin` and its ECE is not above the active's by more than
//!   `ece_margin`; else *keep the active*. Every check is spelled out in the reasons.
//! - **Record**: [`Record`], written as [`RECORD_FILE`] (`gate.json`) beside the candidate's
//!   `card.json`: the trainer's card is never rewritten, and loading or checking a bundle does not
//!   read the record.
//!
//! This module does no I/O: the rows come from [`crate::dataset::csv`], which owns the dataset's
//! CSV (columns, writing, reading back).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::dataset::csv::{HeldOut, HeldOutError};
use crate::metrics::{self, CalibrationCurve, Metric, MetricsError, Rate, WILSON_Z};
use crate::model::card::Card;
use crate::model::error::ModelError;
use crate::score::{ScoreOptions, Scorer, Tier};

/// The file `--record` writes in the candidate's bundle directory, beside `card.json`.
pub const RECORD_FILE: &str = "gate.json";

/// Why a comparison could not be made.
#[derive(Debug, thiserror::Error)]
pub enum CompareError {
    /// The held-out rows are unusable, or do not fit a bundle.
    #[error(transparent)]
    Rows(#[from] HeldOutError),
    /// A card field the gate reads is malformed.
    #[error("card.json: {0}")]
    Card(String),
    /// Scoring a row failed.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// A metric refused its input (a bug: probabilities come from the scorer).
    #[error(transparent)]
    Metrics(#[from] MetricsError),
    /// The record could not be serialized.
    #[error("gate.json: {0}")]
    Json(#[from] serde_json::Error),
}

/// What the gate requires; why: a verdict on too little data or on noise-sized differences would
/// flip from one week to the next.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Criteria {
    /// Fewest held-out rows.
    pub min_rows: u64,
    /// Fewest held-out positives.
    pub min_positives: u64,
    /// How far the candidate's AUC may fall below the active's.
    pub auc_margin: f64,
    /// How far the candidate's ECE may rise above the active's.
    pub ece_margin: f64,
}

impl Default for Criteria {
    fn default() -> Self {
        Criteria {
            min_rows: 1000,
            min_positives: 120,
            auc_margin: 0.005,
            ece_margin: 0.01,
        }
    }
}

/// The candidate card's `training.holdout_from` (ms), if it records one.
pub fn card_holdout_from(card: &Card) -> Result<Option<i64>, CompareError> {
    match card.training.get("holdout_from") {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v.as_i64().map(Some).ok_or_else(|| {
            CompareError::Card(format!(
                "training.holdout_from is {v}, not an integer time in ms"
            ))
        }),
    }
}

/// One tier's conversion on the held-out rows.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TierRate {
    /// Lowest `ai_score` of the tier (0 for cold).
    pub from_score: u8,
    /// Conversion with its Wilson 95 % interval.
    #[serde(flatten)]
    pub rate: Rate,
}

/// Conversion per tier.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TierRates {
    /// Hot.
    pub hot: TierRate,
    /// Warm.
    pub warm: TierRate,
    /// Cold.
    pub cold: TierRate,
}

/// One bundle's metrics on the held-out rows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelReport {
    /// The card's model version.
    pub model_version: String,
    /// Rows scored.
    pub rows: u64,
    /// Positives among them.
    pub positives: u64,
    /// AUC of the calibrated probability.
    pub auc: Metric,
    /// AUC of the integer `ai_score` (what a live monitor sees; ties within a score count half).
    pub auc_ai_score: Metric,
    /// Brier score of the calibrated probability.
    pub brier: Metric,
    /// Log loss of the calibrated probability.
    pub log_loss: Metric,
    /// ECE and the calibration curve.
    pub calibration: CalibrationCurve,
    /// Conversion per tier.
    pub tiers: TierRates,
}

/// The scalar metrics of a report, as recorded in the card.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelSummary {
    /// The card's model version.
    pub model_version: String,
    /// Rows scored.
    pub rows: u64,
    /// Positives among them.
    pub positives: u64,
    /// AUC.
    pub auc: Option<f64>,
    /// Brier score.
    pub brier: Option<f64>,
    /// Log loss.
    pub log_loss: Option<f64>,
    /// Expected calibration error.
    pub ece: Option<f64>,
}

impl ModelReport {
    /// The scalars, without curve and tiers.
    pub fn summary(&self) -> ModelSummary {
        ModelSummary {
            model_version: self.model_version.clone(),
            rows: self.rows,
            positives: self.positives,
            auc: self.auc.value,
            brier: self.brier.value,
            log_loss: self.log_loss.value,
            ece: self.calibration.ece,
        }
    }
}

/// Scores every held-out row with one bundle and measures the result.
pub fn evaluate(scorer: &Scorer, rows: &HeldOut) -> Result<ModelReport, CompareError> {
    let (mut p, mut scores) = (
        Vec::with_capacity(rows.len()),
        Vec::with_capacity(rows.len()),
    );
    let mut tier_counts = [(0u64, 0u64); 3];
    for (x, &label) in rows.feature_vectors(scorer)?.iter().zip(rows.labels()) {
        let s = scorer.score_vector(x, ScoreOptions::default())?;
        let t = match s.tier {
            Tier::Hot => 0,
            Tier::Warm => 1,
            Tier::Cold => 2,
        };
        tier_counts[t].0 += 1;
        tier_counts[t].1 += u64::from(label);
        p.push(s.probability);
        scores.push(s.ai_score);
    }
    let y = rows.labels();
    let mut counts = metrics::ScoreCounts::new();
    for (&s, &label) in scores.iter().zip(y) {
        counts.add(s, label)?;
    }
    let tiers = scorer.card().tiers;
    let tier = |i: usize, from_score: u8| -> Result<TierRate, MetricsError> {
        Ok(TierRate {
            from_score,
            rate: metrics::wilson(tier_counts[i].1, tier_counts[i].0, WILSON_Z)?,
        })
    };
    Ok(ModelReport {
        model_version: scorer.card().model_version.clone(),
        rows: rows.len() as u64,
        positives: rows.positives(),
        auc: metrics::auc(&p, y)?,
        auc_ai_score: counts.auc(),
        brier: metrics::brier(&p, y)?,
        log_loss: metrics::log_loss(&p, y)?,
        calibration: metrics::calibration(&p, y)?,
        tiers: TierRates {
            hot: tier(0, tiers.hot)?,
            warm: tier(1, tiers.warm)?,
            cold: tier(2, 0)?,
        },
    })
}

/// What the gate says to do with the candidate (the `verdict` of its output and record).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GateVerdict {
    /// The candidate may replace the active model.
    Promote,
    /// The candidate is worse: keep the active model.
    KeepActive,
    /// Too little held-out data to judge.
    InsufficientData,
}

impl GateVerdict {
    /// The CLI's exit code: 0 promote, 3 keep the active, 4 insufficient data (2 is bad input).
    pub fn exit_code(self) -> u8 {
        match self {
            GateVerdict::Promote => 0,
            GateVerdict::KeepActive => 3,
            GateVerdict::InsufficientData => 4,
        }
    }
}

/// Held-out rows and positives against the minimums.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Sufficiency {
    /// Held-out rows.
    pub rows: u64,
    /// Required rows.
    pub min_rows: u64,
    /// Held-out positives.
    pub positives: u64,
    /// Required positives.
    pub min_positives: u64,
    /// Both minimums met and both AUCs defined.
    pub sufficient: bool,
}

/// The verdict and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    /// What to do.
    pub verdict: GateVerdict,
    /// One sentence per check, with its numbers and its result.
    pub reasons: Vec<String>,
    /// Data sufficiency.
    pub data_sufficiency: Sufficiency,
}

fn num(v: Option<f64>) -> String {
    v.map_or_else(|| "undefined".to_string(), |v| format!("{v:.4}"))
}

/// Judges the candidate against the active model on the same rows.
pub fn judge(active: &ModelReport, candidate: &ModelReport, c: &Criteria) -> Verdict {
    let (rows, positives) = (candidate.rows, candidate.positives);
    let mut reasons = Vec::new();
    let rows_ok = rows >= c.min_rows;
    reasons.push(format!(
        "rows: {rows} held-out rows, at least {} required: {}",
        c.min_rows,
        if rows_ok { "ok" } else { "too few" }
    ));
    let pos_ok = positives >= c.min_positives;
    reasons.push(format!(
        "positives: {positives} held-out positives, at least {} required: {}",
        c.min_positives,
        if pos_ok { "ok" } else { "too few" }
    ));
    let (aa, ca) = (active.auc.value, candidate.auc.value);
    let auc_defined = aa.is_some() && ca.is_some();
    if !auc_defined {
        reasons.push(format!(
            "auc: undefined on these rows ({} positives, {} negatives): both classes are needed",
            positives,
            rows - positives
        ));
    }
    let (ae, ce) = (active.calibration.ece, candidate.calibration.ece);
    let sufficient = rows_ok && pos_ok && auc_defined && ae.is_some() && ce.is_some();
    let mut better = true;
    if let (Some(a), Some(b)) = (aa, ca) {
        let ok = b >= a - c.auc_margin;
        better &= ok;
        reasons.push(format!(
            "auc: candidate {} vs active {} (difference {:+.4}, margin {}): {}",
            num(ca),
            num(aa),
            b - a,
            c.auc_margin,
            if ok {
                "ok, not below the active's by more than the margin"
            } else {
                "worse, below the active's by more than the margin"
            }
        ));
    }
    if let (Some(a), Some(b)) = (ae, ce) {
        let ok = b <= a + c.ece_margin;
        better &= ok;
        reasons.push(format!(
            "ece: candidate {} vs active {} (difference {:+.4}, margin {}): {}",
            num(ce),
            num(ae),
            b - a,
            c.ece_margin,
            if ok {
                "ok, not above the active's by more than the margin"
            } else {
                "worse, above the active's by more than the margin"
            }
        ));
    }
    let verdict = if !sufficient {
        GateVerdict::InsufficientData
    } else if better {
        GateVerdict::Promote
    } else {
        GateVerdict::KeepActive
    };
    Verdict {
        verdict,
        reasons,
        data_sufficiency: Sufficiency {
            rows,
            min_rows: c.min_rows,
            positives,
            min_positives: c.min_positives,
            sufficient,
        },
    }
}

/// The dataset a comparison ran on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatasetFacts {
    /// The file as given.
    pub file: String,
    /// Hex sha256 of the file's bytes.
    pub sha256: String,
    /// Data rows in the file.
    pub rows_read: u64,
    /// First decision time held out (`None`: every row).
    pub holdout_from: Option<i64>,
    /// Where `holdout_from` came from.
    pub holdout_from_source: String,
    /// Held-out rows.
    pub rows: u64,
    /// Held-out positives.
    pub positives: u64,
}

/// Everything `leadscore compare` prints.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    /// The dataset.
    pub dataset: DatasetFacts,
    /// What the gate required.
    pub criteria: Criteria,
    /// The active bundle's metrics.
    pub active: ModelReport,
    /// The candidate's metrics.
    pub candidate: ModelReport,
    /// The verdict, its reasons and the data sufficiency.
    #[serde(flatten)]
    pub verdict: Verdict,
}

/// What `--record` writes as `gate.json`: the verdict and what it was judged on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// The decision.
    pub verdict: GateVerdict,
    /// Its reasons, one per check.
    pub reasons: Vec<String>,
    /// The model the candidate was judged against.
    pub active_model_version: String,
    /// The rows it was judged on.
    pub dataset: RecordedDataset,
    /// What the gate required.
    pub criteria: Criteria,
    /// The active model's scalar metrics.
    pub active: ModelSummary,
    /// The candidate's.
    pub candidate: ModelSummary,
}

/// The dataset of a record: its content hash identifies it wherever the file is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordedDataset {
    /// File name without its directory.
    pub file_name: String,
    /// Hex sha256 of the file.
    pub sha256: String,
    /// First decision time held out (`None`: every row).
    pub holdout_from: Option<i64>,
    /// Held-out rows.
    pub rows: u64,
    /// Held-out positives.
    pub positives: u64,
}

impl Record {
    /// The record as `gate.json` holds it: pretty JSON and a final newline.
    pub fn to_json(&self) -> Result<String, CompareError> {
        Ok(serde_json::to_string_pretty(self)? + "\n")
    }
}

impl Comparison {
    /// What `--record` writes.
    pub fn record(&self) -> Record {
        let d = &self.dataset;
        Record {
            verdict: self.verdict.verdict,
            reasons: self.verdict.reasons.clone(),
            active_model_version: self.active.model_version.clone(),
            dataset: RecordedDataset {
                file_name: d.file.rsplit(['/', '\\']).next().unwrap_or_default().into(),
                sha256: d.sha256.clone(),
                holdout_from: d.holdout_from,
                rows: d.rows,
                positives: d.positives,
            },
            criteria: self.criteria,
            active: self.active.summary(),
            candidate: self.candidate.summary(),
        }
    }
}

/// Scores both bundles on the held-out rows and judges them (the whole gate but the reading).
pub fn gate(
    active: &Scorer,
    candidate: &Scorer,
    rows: &HeldOut,
    criteria: &Criteria,
    dataset: DatasetFacts,
) -> Result<Comparison, CompareError> {
    let a = evaluate(active, rows)?;
    let c = evaluate(candidate, rows)?;
    let verdict = judge(&a, &c, criteria);
    Ok(Comparison {
        dataset,
        criteria: *criteria,
        active: a,
        candidate: c,
        verdict,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::embedded;

    fn report(auc: Option<f64>, ece: f64, rows: u64, positives: u64) -> ModelReport {
        let m = |value| Metric {
            value,
            rows,
            positives,
        };
        let rate = TierRate {
            from_score: 0,
            rate: metrics::wilson(0, 0, WILSON_Z).unwrap(),
        };
        ModelReport {
            model_version: "m".into(),
            rows,
            positives,
            auc: m(auc),
            auc_ai_score: m(auc),
            brier: m(Some(0.1)),
            log_loss: m(Some(0.3)),
            calibration: CalibrationCurve {
                ece: Some(ece),
                rows,
                positives,
                bins: Vec::new(),
            },
            tiers: TierRates {
                hot: rate,
                warm: rate,
                cold: rate,
            },
        }
    }

    #[test]
    fn verdict_rules() {
        let c = Criteria::default();
        let a = report(Some(0.90), 0.02, 2000, 200);
        let judge_it = |cand: &ModelReport| judge(&a, cand, &c).verdict;
        assert_eq!(
            judge_it(&report(Some(0.90), 0.02, 2000, 200)),
            GateVerdict::Promote
        );
        // Within the margins either way.
        assert_eq!(
            judge_it(&report(Some(0.8951), 0.0299, 2000, 200)),
            GateVerdict::Promote
        );
        assert_eq!(
            judge_it(&report(Some(0.8949), 0.02, 2000, 200)),
            GateVerdict::KeepActive
        );
        assert_eq!(
            judge_it(&report(Some(0.95), 0.0301, 2000, 200)),
            GateVerdict::KeepActive
        );
        assert_eq!(
            judge_it(&report(Some(0.95), 0.0, 999, 200)),
            GateVerdict::InsufficientData
        );
        assert_eq!(
            judge_it(&report(Some(0.95), 0.0, 2000, 119)),
            GateVerdict::InsufficientData
        );
        let v = judge(
            &a,
            &report(None, 0.0, 2000, 2000),
            &Criteria {
                min_positives: 0,
                ..c
            },
        );
        assert_eq!(v.verdict, GateVerdict::InsufficientData);
        assert!(
            v.reasons.iter().any(|r| r.contains("undefined")),
            "{:?}",
            v.reasons
        );
        let v = judge(&a, &report(Some(0.8), 0.1, 2000, 200), &c);
        assert_eq!(v.reasons.len(), 4);
        assert!(
            v.reasons[2].starts_with("auc: candidate 0.8000 vs active 0.9000 (difference -0.1000"),
            "{}",
            v.reasons[2]
        );
        assert!(v.reasons[3].contains("worse, above"), "{}", v.reasons[3]);
        assert_eq!(
            [
                GateVerdict::Promote,
                GateVerdict::KeepActive,
                GateVerdict::InsufficientData
            ]
            .map(GateVerdict::exit_code),
            [0, 3, 4]
        );
    }

    #[test]
    fn holdout_from_must_be_an_integer() {
        let mut card = Card::parse(embedded::CARD).unwrap();
        assert_eq!(card_holdout_from(&card).unwrap(), None);
        card.training["holdout_from"] = 1_764_000_000_000i64.into();
        assert_eq!(card_holdout_from(&card).unwrap(), Some(1_764_000_000_000));
        card.training["holdout_from"] = "2026-12-01".into();
        assert!(card_holdout_from(&card).is_err());
    }
}
