//! The bundle check (`leadscore check`): a bundle loads and validates, its baseline (if any) reads
//! back, and its golden vectors — rows the trainer scored with its own library, with onnxruntime
//! and with the library's TreeSHAP — replay through the scorer within tolerance.
//!
//! It lives in the library, on bytes, so every front end runs the same check: the CLI on a bundle
//! directory, the worker on an uploaded bundle. It does no I/O and compiles for wasm32; the front
//! end reads the files and prints the [`Report`].

use serde::Deserialize;

use crate::model::card::Card;
use crate::model::error::ModelError;
use crate::model::Bundle;
use crate::monitor::baseline::{Baseline, BaselineError};
use crate::score::{ScoreOptions, Scorer};

/// Largest tolerated |Δ| between tract and LightGBM/onnxruntime probabilities.
pub const PROB_TOL: f64 = 1e-5;
/// Largest tolerated |Δ| between our TreeSHAP and LightGBM's pred_contrib.
pub const SHAP_TOL: f64 = 1e-5;
/// Largest tolerated |Σφ + base − margin| (TreeSHAP is additive; the kernel sums leaves in f32).
pub const SUM_TOL: f64 = 1e-4;
/// Out-of-tolerance rows a report keeps in detail (the rest are counted).
pub const FAILURES_KEPT: usize = 5;

/// Why a bundle could not be checked at all (as opposed to a check that ran and failed).
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// The card or the model does not load, or scoring a golden row failed.
    #[error(transparent)]
    Model(#[from] ModelError),
}

/// Golden vectors written by the training pipeline next to the model (`golden.json`).
#[derive(Debug, Clone, Deserialize)]
pub struct Golden {
    /// Feature names, in the order of each row's `x`.
    pub features: Vec<String>,
    /// The rows.
    pub rows: Vec<GoldenRow>,
}

/// One golden row.
#[derive(Debug, Clone, Deserialize)]
pub struct GoldenRow {
    /// Index of the row in the training table.
    pub row: usize,
    /// Model input (float32, as the model reads it); `null` is a missing input (NaN).
    #[serde(deserialize_with = "f32s_or_nan")]
    pub x: Vec<f32>,
    /// The training library's probability.
    pub lgb_prob: f64,
    /// onnxruntime's probability.
    pub ort_prob: f64,
    /// The training library's TreeSHAP contributions, the base value last.
    pub lgb_contrib: Vec<f64>,
}

/// A golden row's inputs: numbers, `null` for a missing one (JSON has no NaN).
fn f32s_or_nan<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<f32>, D::Error> {
    let v: Vec<Option<f32>> = serde::Deserialize::deserialize(d)?;
    Ok(v.into_iter().map(|x| x.unwrap_or(f32::NAN)).collect())
}

/// What the card's baseline looks like.
#[derive(Debug)]
pub enum BaselineCheck {
    /// A baseline that reads back.
    Present {
        /// Training rows it was taken from.
        train_rows: u64,
        /// Held-out rows of its accuracy.
        holdout_rows: u64,
        /// Segments.
        segments: usize,
    },
    /// No baseline: the bundle cannot be monitored for drift (not a failure).
    Absent,
    /// A baseline that does not read back: a failure (the golden vectors are then not replayed).
    Invalid(BaselineError),
}

/// A golden row out of tolerance.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RowFailure {
    /// The row's index in the training table.
    pub row: usize,
    /// Our raw probability.
    pub p: f64,
    /// The training library's.
    pub lgb_prob: f64,
    /// onnxruntime's.
    pub ort_prob: f64,
    /// Largest |Δ| of a TreeSHAP contribution or of the base value.
    pub shap_delta: f64,
    /// |Σφ + base − margin|, or |fit + engagement + base − margin| where larger.
    pub sum_delta: f64,
}

/// The replay of the golden rows.
#[derive(Debug, Clone, PartialEq)]
pub struct Replay {
    /// Rows replayed.
    pub rows: usize,
    /// Largest |Δp| against the training library.
    pub worst_lgb: f64,
    /// Largest |Δp| against onnxruntime.
    pub worst_ort: f64,
    /// Largest |Δ TreeSHAP| against the library's contributions.
    pub worst_shap: f64,
    /// Largest |Σφ + base − margin| (or |fit + engagement + base − margin|).
    pub worst_sum: f64,
    /// Rows out of tolerance.
    pub failures: usize,
    /// The first [`FAILURES_KEPT`] of them.
    pub first_failures: Vec<RowFailure>,
}

/// What became of the golden vectors.
#[derive(Debug)]
pub enum GoldenCheck {
    /// Not replayed: an earlier part of the check failed.
    NotRun,
    /// The bundle has no `golden.json`: a failure (a bundle is checked against its vectors).
    Missing,
    /// `golden.json` does not parse: a failure (the CLI reports it as bad input, exit 2).
    Unreadable(serde_json::Error),
    /// `golden.json` lists other features than the card.
    FeaturesDiffer,
    /// Replayed (failed if any row is out of tolerance).
    Replayed(Replay),
}

/// The result of a check that ran.
#[derive(Debug)]
pub struct Report {
    /// The card's model version.
    pub model_version: String,
    /// Features the card lists.
    pub features: usize,
    /// Trees in the model.
    pub trees: usize,
    /// The baseline.
    pub baseline: BaselineCheck,
    /// The golden vectors.
    pub golden: GoldenCheck,
}

impl Report {
    /// Whether the bundle passes.
    pub fn passed(&self) -> bool {
        self.failure().is_none()
    }

    /// Why the bundle fails, in one sentence (`None`: it passes): what the worker answers an
    /// upload with, and what the CLI's `FAIL` lines detail.
    pub fn failure(&self) -> Option<String> {
        if let BaselineCheck::Invalid(e) = &self.baseline {
            return Some(format!("baseline: {e}"));
        }
        match &self.golden {
            GoldenCheck::NotRun => Some("the golden vectors were not replayed".into()),
            GoldenCheck::Missing => {
                Some("no golden vectors: a bundle is checked against them".into())
            }
            GoldenCheck::Unreadable(e) => Some(format!("golden.json does not parse: {e}")),
            GoldenCheck::FeaturesDiffer => {
                Some("golden.json lists other features than the card".into())
            }
            GoldenCheck::Replayed(r) if r.failures > 0 => {
                let first = r.first_failures.first().map_or(String::new(), |f| {
                    format!(
                        " (first: row {}, p {} against the library's {}, TreeSHAP Δ {:e})",
                        f.row, f.p, f.lgb_prob, f.shap_delta
                    )
                });
                Some(format!(
                    "{} of {} golden rows out of tolerance ({PROB_TOL:e} probability, \
                     {SHAP_TOL:e} TreeSHAP, {SUM_TOL:e} additivity){first}",
                    r.failures, r.rows
                ))
            }
            GoldenCheck::Replayed(_) => None,
        }
    }
}

/// Checks a bundle given as bytes: `card.json`, its model file, and `golden.json` if the bundle
/// has one (`None`: the check fails with [`GoldenCheck::Missing`]).
pub fn check_bytes(card: &[u8], onnx: &[u8], golden: Option<&[u8]>) -> Result<Report, CheckError> {
    let text =
        std::str::from_utf8(card).map_err(|_| ModelError::Card("card.json is not UTF-8".into()))?;
    let bundle = Bundle::from_parts(Card::parse(text)?, onnx)?;
    check(bundle, golden)
}

/// Checks a loaded bundle against its golden vectors (`golden.json`'s bytes, if any).
pub fn check(bundle: Bundle, golden: Option<&[u8]>) -> Result<Report, CheckError> {
    let scorer = Scorer::new(bundle, None)?;
    let card = scorer.card();
    let mut report = Report {
        model_version: card.model_version.clone(),
        features: card.features.len(),
        trees: scorer.n_trees(),
        baseline: match Baseline::of(card) {
            Ok(Some(b)) => BaselineCheck::Present {
                train_rows: b.train_rows,
                holdout_rows: b.holdout.rows,
                segments: b.segments.len(),
            },
            Ok(None) => BaselineCheck::Absent,
            Err(e) => BaselineCheck::Invalid(e),
        },
        golden: GoldenCheck::NotRun,
    };
    if matches!(report.baseline, BaselineCheck::Invalid(_)) {
        return Ok(report);
    }
    report.golden = match golden {
        None => GoldenCheck::Missing,
        Some(bytes) => match serde_json::from_slice::<Golden>(bytes) {
            Err(e) => GoldenCheck::Unreadable(e),
            Ok(golden) if golden.features != *scorer.features().names() => {
                GoldenCheck::FeaturesDiffer
            }
            Ok(golden) => GoldenCheck::Replayed(replay(&scorer, &golden)?),
        },
    };
    Ok(report)
}

/// Scores every golden row with its explanation and measures it against the trainer's figures.
pub fn replay(scorer: &Scorer, golden: &Golden) -> Result<Replay, ModelError> {
    let mut out = Replay {
        rows: golden.rows.len(),
        worst_lgb: 0.0,
        worst_ort: 0.0,
        worst_shap: 0.0,
        worst_sum: 0.0,
        failures: 0,
        first_failures: Vec::new(),
    };
    for g in &golden.rows {
        let score = scorer.score_vector(&g.x, ScoreOptions { all_factors: true })?;
        let p = score.raw_probability;
        let (dl, dor) = ((p - g.lgb_prob).abs(), (p - g.ort_prob).abs());
        let contrib = score.contributions.unwrap_or_default();
        let base = score.base_value.unwrap_or(f64::NAN);
        let mut ds = (base - g.lgb_contrib.last().copied().unwrap_or(f64::NAN)).abs();
        for (c, want) in contrib.iter().zip(&g.lgb_contrib) {
            ds = ds.max((c.impact - want).abs());
        }
        let sum = contrib.iter().map(|c| c.impact).sum::<f64>() + base;
        let margin = f64::from(scorer.trees().0.margin(&g.x));
        // The sub-scores split the same sum: fit + engagement + base = margin.
        let split = score.fit.log_odds + score.engagement.log_odds + base;
        let dsum = (sum - margin).abs().max((split - margin).abs());
        if dl > PROB_TOL
            || dor > PROB_TOL
            || ds > SHAP_TOL
            || !(ds.is_finite())
            || dsum.is_nan()
            || dsum > SUM_TOL
            || contrib.len() + 1 != g.lgb_contrib.len()
        {
            out.failures += 1;
            if out.first_failures.len() < FAILURES_KEPT {
                out.first_failures.push(RowFailure {
                    row: g.row,
                    p,
                    lgb_prob: g.lgb_prob,
                    ort_prob: g.ort_prob,
                    shap_delta: ds,
                    sum_delta: dsum,
                });
            }
        }
        out.worst_lgb = out.worst_lgb.max(dl);
        out.worst_ort = out.worst_ort.max(dor);
        out.worst_shap = out.worst_shap.max(ds);
        out.worst_sum = out.worst_sum.max(dsum);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::embedded;

    const GOLDEN: &[u8] = include_bytes!("../models/default/golden.json");

    #[test]
    fn the_embedded_bundle_passes_from_bytes() {
        let r = check_bytes(embedded::CARD.as_bytes(), embedded::ONNX, Some(GOLDEN)).unwrap();
        assert!(r.passed(), "{r:?}");
        let GoldenCheck::Replayed(g) = &r.golden else {
            panic!("{:?}", r.golden)
        };
        assert_eq!((g.rows, g.failures), (306, 0));
    }

    /// fit + engagement + base equals the training library's margin (the sum of its contributions,
    /// in f64: the engine's own f32 margin rounds to ~1e-6) on every golden row, and `fit` is the sum
    /// of the fit factors; returns the rows whose fit part is not zero.
    fn split_holds(card: crate::model::card::Card, onnx: &[u8], golden: &[u8]) -> usize {
        let n_fit = card.features.iter().filter(|f| f.is_fit()).count();
        let bytes = serde_json::to_vec(&card).unwrap();
        let r = check_bytes(&bytes, onnx, Some(golden)).unwrap();
        let GoldenCheck::Replayed(g) = &r.golden else {
            panic!("{:?}", r.golden)
        };
        assert_eq!(g.failures, 0);
        let scorer =
            crate::score::Scorer::new(crate::model::Bundle::from_parts(card, onnx).unwrap(), None)
                .unwrap();
        let golden: Golden = serde_json::from_slice(golden).unwrap();
        let mut fit_seen = 0;
        for row in &golden.rows {
            let s = scorer
                .score_vector(&row.x, crate::score::ScoreOptions { all_factors: true })
                .unwrap();
            let c = s.contributions.unwrap();
            let fit = c.iter().filter(|f| f.group == crate::score::Group::Fit);
            assert_eq!(fit.clone().count(), n_fit);
            assert_eq!(s.fit.log_odds, fit.map(|f| f.impact).sum::<f64>() + 0.0);
            let margin: f64 = row.lgb_contrib.iter().sum();
            let split = s.fit.log_odds + s.engagement.log_odds + s.base_value.unwrap();
            assert!(
                (split - margin).abs() <= 1e-6,
                "row {}: {split} vs {margin}",
                row.row
            );
            fit_seen += usize::from(s.fit.log_odds != 0.0);
        }
        fit_seen
    }

    /// The default model with two features tagged `fit`.
    #[test]
    fn fit_and_engagement_split_the_margin_exactly() {
        let mut card: crate::model::card::Card = serde_json::from_str(embedded::CARD).unwrap();
        for f in &mut card.features {
            if f.kind == "channel" || f.kind == "visitor_type" {
                f.group = Some("fit".into());
            }
        }
        assert!(split_holds(card, embedded::ONNX, GOLDEN) > 0);
    }

    /// The B2B example: its traits are fit, its touches, pages and time engagement.
    #[test]
    fn the_b2b_example_splits_fit_and_engagement_exactly() {
        let card = serde_json::from_str(include_str!("../models/b2b-example/card.json")).unwrap();
        let onnx = include_bytes!("../models/b2b-example/model.onnx");
        let golden = include_bytes!("../models/b2b-example/golden.json");
        assert!(split_holds(card, onnx, golden) > 0);
    }

    #[test]
    fn missing_or_tampered_golden_vectors_fail() {
        let r = check_bytes(embedded::CARD.as_bytes(), embedded::ONNX, None).unwrap();
        assert!(matches!(r.golden, GoldenCheck::Missing), "{:?}", r.golden);
        assert!(!r.passed());

        let mut g: serde_json::Value = serde_json::from_slice(GOLDEN).unwrap();
        g["rows"][0]["lgb_prob"] = serde_json::json!(0.5);
        let bytes = g.to_string().into_bytes();
        let r = check_bytes(embedded::CARD.as_bytes(), embedded::ONNX, Some(&bytes)).unwrap();
        let GoldenCheck::Replayed(rep) = &r.golden else {
            panic!("{:?}", r.golden)
        };
        assert_eq!(rep.failures, 1);
        assert!(!r.passed());

        g["features"][0] = serde_json::json!("other");
        let bytes = g.to_string().into_bytes();
        let r = check_bytes(embedded::CARD.as_bytes(), embedded::ONNX, Some(&bytes)).unwrap();
        assert!(
            matches!(r.golden, GoldenCheck::FeaturesDiffer),
            "{:?}",
            r.golden
        );

        let r = check_bytes(embedded::CARD.as_bytes(), embedded::ONNX, Some(b"{")).unwrap();
        assert!(
            matches!(r.golden, GoldenCheck::Unreadable(_)),
            "{:?}",
            r.golden
        );
        assert!(!r.passed());
        assert!(matches!(
            check_bytes(b"\xff", embedded::ONNX, Some(GOLDEN)),
            Err(CheckError::Model(ModelError::Card(_)))
        ));
    }
}
