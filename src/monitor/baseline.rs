//! The baseline a model is watched against, frozen by the trainer into `card.json` (`baseline`):
//! per feature its bins and the training rows' share of each, the training rows' `ai_score`
//! histogram, the held-out rows' accuracy (AUC, Brier, ECE, conversion by tier), and the same per
//! segment.
//!
//! Distributions come from the training rows (the traffic the model learned from: a window of new
//! traffic is judged against it), accuracy from the held-out rows (what the model achieves on rows
//! it has not seen: a live window's realized AUC is judged against that). Rows are scored through
//! [`Scorer::score_vector`], so the histogram is of the scores the bundle serves.
//!
//! Two baselines come from elsewhere. A **new normal** ([`Baseline::adopt`]): a drift that is
//! real and accepted (a season, a new channel mix) makes a window of live decisions the
//! distributions' reference, in the same bins; the held-out accuracy stays, since what the model
//! achieved on unseen rows is still the bar its live accuracy is held to. A bundle **without
//! training rows** (a day-zero scorecard) is watched by [`Baseline::live_only`]: its live
//! accuracy is measured (the live gate needs it), its distributions are not judged until a window
//! is adopted.

use serde::{Deserialize, Serialize};

use super::bins::{counts, Binning};
use super::drift::shares;
use super::window::Decision;
use crate::compare::{evaluate, CompareError, ModelReport};
use crate::dataset::csv::{HeldOut, HeldOutError};
use crate::features::FeatureSpec;
use crate::metrics::SCORE_BINS;
use crate::model::card::Card;
use crate::score::{ScoreOptions, Scorer};

/// One feature's frozen bins and training shares.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeatureBaseline {
    /// Feature name (card order).
    pub name: String,
    /// Its bins.
    pub bins: Binning,
    /// Training share of each bin (sums to 1).
    pub shares: Vec<f64>,
    /// A calendar feature ([`crate::features::FeatureSpec::is_calendar`]), from the card's spec.
    #[serde(skip)]
    pub calendar: bool,
}

/// Held-out accuracy of the whole set or of one segment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Accuracy {
    /// Held-out rows.
    pub rows: u64,
    /// Positives among them.
    pub positives: u64,
    /// AUC of the integer `ai_score` (what the live monitor measures from binned counts).
    pub auc: Option<f64>,
    /// Brier score of the calibrated probability.
    pub brier: Option<f64>,
    /// Expected calibration error.
    pub ece: Option<f64>,
    /// Share of rows per tier (hot, warm, cold).
    pub tier_shares: [Option<f64>; 3],
    /// Conversion per tier (hot, warm, cold).
    pub tier_conversion: [Option<f64>; 3],
}

impl Accuracy {
    /// No held-out rows (a bundle trained on none).
    pub fn none() -> Accuracy {
        Accuracy {
            rows: 0,
            positives: 0,
            auc: None,
            brier: None,
            ece: None,
            tier_shares: [None; 3],
            tier_conversion: [None; 3],
        }
    }

    fn of(r: &ModelReport) -> Accuracy {
        let t = [r.tiers.hot.rate, r.tiers.warm.rate, r.tiers.cold.rate];
        let share = |rows: u64| (r.rows > 0).then(|| rows as f64 / r.rows as f64);
        Accuracy {
            rows: r.rows,
            positives: r.positives,
            auc: r.auc_ai_score.value,
            brier: r.brier.value,
            ece: r.calibration.ece,
            tier_shares: t.map(|x| share(x.rows)),
            tier_conversion: t.map(|x| x.rate),
        }
    }
}

/// One segment: the rows where a coded feature has one value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SegmentBaseline {
    /// The coded feature.
    pub feature: String,
    /// Its value (the code).
    pub value: f32,
    /// The value's display name from the card, where it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// Share of the training rows in the segment.
    pub train_share: f64,
    /// Held-out accuracy within the segment.
    pub holdout: Accuracy,
}

/// The whole baseline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Baseline {
    /// Training rows the distributions come from.
    pub train_rows: u64,
    /// Per feature, in the card's order.
    pub features: Vec<FeatureBaseline>,
    /// Training share of each `ai_score` 0..=100.
    pub score: Vec<f64>,
    /// Held-out accuracy.
    pub holdout: Accuracy,
    /// Per segment value.
    pub segments: Vec<SegmentBaseline>,
}

/// Each feature's bins (`bins_of` its values) and the shares of its values (`column(j)`) in them.
fn distributions(
    card: &Card,
    column: impl Fn(usize) -> Vec<f32>,
    bins_of: impl Fn(&FeatureSpec, &[f32]) -> Binning,
) -> Result<Vec<FeatureBaseline>, BaselineError> {
    card.features
        .iter()
        .enumerate()
        .map(|(j, spec)| {
            let values = column(j);
            let bins = bins_of(spec, &values);
            let c = counts(&bins, values.iter().copied());
            Ok(FeatureBaseline {
                name: spec.name.clone(),
                shares: shares(&c).ok_or(BaselineError::NoRows)?,
                bins,
                calendar: spec.is_calendar(),
            })
        })
        .collect()
}

/// Why a baseline could not be made or read.
#[derive(Debug, thiserror::Error)]
pub enum BaselineError {
    /// Reading or scoring the rows failed.
    #[error(transparent)]
    Rows(#[from] CompareError),
    /// The rows do not fit the bundle.
    #[error(transparent)]
    HeldOut(#[from] HeldOutError),
    /// No training rows.
    #[error("no training rows to take a baseline from")]
    NoRows,
    /// A segment names a feature the card does not have, or one without coded values.
    #[error("segment feature `{0}` is not a coded feature of the card (one with `values`)")]
    Segment(String),
    /// The card's `baseline` does not parse or does not fit its features.
    #[error("card.json baseline: {0}")]
    Card(String),
    /// Too few decisions to take a new normal from.
    #[error("{have} decisions in the window; a baseline needs at least {need}")]
    TooFew {
        /// Decisions found.
        have: u64,
        /// The minimum (the monitor's `min_scores`).
        need: u64,
    },
}

impl Baseline {
    /// Freezes the baseline of a bundle from its training and held-out rows; `segments` name coded
    /// features (each value with held-out rows is a segment).
    pub fn build(
        scorer: &Scorer,
        train: &HeldOut,
        holdout: &HeldOut,
        segments: &[String],
    ) -> Result<Baseline, BaselineError> {
        let x = train.feature_vectors(scorer)?;
        if x.is_empty() {
            return Err(BaselineError::NoRows);
        }
        let card = scorer.card();
        let features = distributions(card, |j| x.iter().map(|r| r[j]).collect(), Binning::fit)?;
        let mut hist = vec![0u64; SCORE_BINS];
        for r in &x {
            hist[usize::from(
                scorer
                    .score_vector(r, ScoreOptions::default())
                    .map_err(CompareError::from)?
                    .ai_score,
            )] += 1;
        }
        let hx = holdout.feature_vectors(scorer)?;
        let mut out = Vec::new();
        for name in segments {
            let j = card
                .features
                .iter()
                .position(|f| &f.name == name && f.values.is_some())
                .ok_or_else(|| BaselineError::Segment(name.clone()))?;
            let spec = &card.features[j];
            let Binning::Codes { codes } = Binning::fit(spec, &[]) else {
                return Err(BaselineError::Segment(name.clone()));
            };
            for code in codes {
                let rows = holdout.subset(|r| hx[r][j] == code);
                if rows.is_empty() {
                    continue;
                }
                let in_train = x.iter().filter(|r| r[j] == code).count();
                out.push(SegmentBaseline {
                    feature: name.clone(),
                    value: code,
                    label: spec
                        .values
                        .as_ref()
                        .and_then(|v| v.get(&code.to_string()).cloned()),
                    train_share: in_train as f64 / x.len() as f64,
                    holdout: Accuracy::of(&evaluate(scorer, &rows)?),
                });
            }
        }
        Ok(Baseline {
            train_rows: x.len() as u64,
            features,
            score: shares(&hist).ok_or(BaselineError::NoRows)?,
            holdout: Accuracy::of(&evaluate(scorer, holdout)?),
            segments: out,
        })
    }

    /// No distributions to judge and no held-out accuracy: what a bundle trained on no rows is
    /// watched by (its live accuracy is still measured).
    pub fn live_only() -> Baseline {
        Baseline {
            train_rows: 0,
            features: Vec::new(),
            score: Vec::new(),
            holdout: Accuracy::none(),
            segments: Vec::new(),
        }
    }

    /// Whether there are distributions to judge drift against.
    pub fn judges_drift(&self) -> bool {
        !self.score.is_empty()
    }

    /// A new normal: the window's `decisions` (features in the card's order) as the reference of
    /// every distribution, counted in `current`'s bins where it has them (fitted on the window
    /// otherwise); `current`'s held-out accuracy and segments stay, each segment's share now the
    /// window's. Refused below `min_decisions`: a reference of a few visits would alert on noise.
    pub fn adopt(
        card: &Card,
        current: &Baseline,
        decisions: &[&Decision],
        min_decisions: u64,
    ) -> Result<Baseline, BaselineError> {
        let n = decisions.len() as u64;
        if n < min_decisions.max(1) {
            return Err(BaselineError::TooFew {
                have: n,
                need: min_decisions.max(1),
            });
        }
        let value = |d: &Decision, j: usize| d.features.get(j).copied().unwrap_or(f32::NAN);
        let features = distributions(
            card,
            |j| decisions.iter().map(|d| value(d, j)).collect(),
            |spec, values| match current.features.iter().find(|f| f.name == spec.name) {
                Some(f) => f.bins.clone(),
                None => Binning::fit(spec, values),
            },
        )?;
        let mut hist = vec![0u64; SCORE_BINS];
        for d in decisions {
            if let Some(c) = hist.get_mut(usize::from(d.ai_score)) {
                *c += 1;
            }
        }
        let segments = current
            .segments
            .iter()
            .map(|s| {
                let j = card.features.iter().position(|f| f.name == s.feature);
                let hits = decisions
                    .iter()
                    .filter(|d| j.is_some_and(|j| value(d, j) == s.value))
                    .count();
                SegmentBaseline {
                    train_share: hits as f64 / n as f64,
                    ..s.clone()
                }
            })
            .collect();
        Ok(Baseline {
            train_rows: n,
            features,
            score: shares(&hist).ok_or(BaselineError::NoRows)?,
            holdout: current.holdout.clone(),
            segments,
        })
    }

    /// The card's baseline (`None` for a card trained before baselines), checked against its
    /// features: one entry per feature, in order, shares fitting the bins.
    pub fn of(card: &Card) -> Result<Option<Baseline>, BaselineError> {
        let Some(v) = card.baseline.as_ref() else {
            return Ok(None);
        };
        Baseline::parse_for(card, v.clone()).map(Some)
    }

    /// A stored baseline (the card's, or an adopted one) checked against the card's features.
    pub fn parse_for(card: &Card, v: serde_json::Value) -> Result<Baseline, BaselineError> {
        let mut b: Baseline =
            serde_json::from_value(v).map_err(|e| BaselineError::Card(e.to_string()))?;
        let names: Vec<&str> = card.features.iter().map(|f| f.name.as_str()).collect();
        let have: Vec<&str> = b.features.iter().map(|f| f.name.as_str()).collect();
        if names != have {
            return Err(BaselineError::Card(format!(
                "features {have:?}, the card has {names:?}"
            )));
        }
        for f in &b.features {
            if f.shares.len() != f.bins.len() {
                return Err(BaselineError::Card(format!(
                    "`{}` has {} shares for {} bins",
                    f.name,
                    f.shares.len(),
                    f.bins.len()
                )));
            }
        }
        for (f, spec) in b.features.iter_mut().zip(&card.features) {
            f.calendar = spec.is_calendar();
        }
        if b.score.len() != SCORE_BINS {
            return Err(BaselineError::Card(format!(
                "{} score shares, not {SCORE_BINS}",
                b.score.len()
            )));
        }
        Ok(b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Bundle;

    #[test]
    fn the_default_card_carries_a_baseline_that_fits_its_features() {
        let card = Bundle::embedded().unwrap().card;
        let b = Baseline::of(&card).unwrap().expect("a baseline");
        assert_eq!(b.features.len(), card.features.len());
        for f in &b.features {
            let sum: f64 = f.shares.iter().sum();
            assert!((sum - 1.0).abs() < 1e-9, "{}: shares sum to {sum}", f.name);
        }
        assert!((b.score.iter().sum::<f64>() - 1.0).abs() < 1e-9);
        assert!(b.holdout.positives >= 100 && b.holdout.auc.is_some());
        assert!(b.segments.iter().any(|s| s.feature == "visitor_type"));
    }

    #[test]
    fn a_baseline_that_does_not_fit_the_card_is_refused() {
        let mut card = Bundle::embedded().unwrap().card;
        let mut v = card.baseline.clone().unwrap();
        v["features"].as_array_mut().unwrap().pop();
        card.baseline = Some(v);
        let e = Baseline::of(&card).unwrap_err().to_string();
        assert!(e.contains("features"), "{e}");
        let mut card = Bundle::embedded().unwrap().card;
        card.baseline.as_mut().unwrap()["score"] = serde_json::json!([1.0]);
        assert!(Baseline::of(&card).unwrap_err().to_string().contains("101"));
    }
}
