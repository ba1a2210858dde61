//! `card.json`: everything about a model except its trees. Format: `models/README.md`.

use serde::{Deserialize, Serialize};

use crate::features::FeatureSpec;
use crate::site::SiteTables;

use super::error::ModelError;

/// The only card schema this build reads.
pub const CARD_SCHEMA_VERSION: u32 = 1;

/// A model card.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Card {
    /// Card format version.
    pub schema_version: u32,
    /// Bundle name.
    pub name: String,
    /// Version string carried on every score.
    pub model_version: String,
    /// Facts about the ONNX file (`"model"` in card.json).
    #[serde(rename = "model")]
    pub onnx_file: ModelFile,
    /// Model inputs, in order.
    pub features: Vec<FeatureSpec>,
    /// Site tables.
    pub site: SiteTables,
    /// How its training rows are taken (the template's, kept for retraining).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows: Option<RowDefaults>,
    /// Probability calibration.
    pub calibration: Calibration,
    /// Tier thresholds on `ai_score`.
    pub tiers: Tiers,
    /// Tier thresholds of the segments of one feature that had enough data (`tiers` elsewhere).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segment_tiers: Option<SegmentTiers>,
    /// Score-confidence parameters.
    #[serde(default)]
    pub confidence: ConfidenceParams,
    /// Data for explanations.
    pub explain: Explain,
    /// Training provenance (free form, shown by `GET /v1/model`).
    #[serde(default)]
    pub training: serde_json::Value,
    /// Holdout and validation metrics (free form).
    #[serde(default)]
    pub metrics: serde_json::Value,
    /// What the model is watched against (`crate::monitor::baseline`, which reads it: the card
    /// keeps it as JSON so that the model layer does not depend on the monitor).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline: Option<serde_json::Value>,
}

/// What building training rows needs of a card: its features and site tables. Any `card.json`
/// reads as one, and so does a template the trainer has not turned into a model yet, so that a
/// site's first model with its own features is built from its logs.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Template {
    /// Model inputs, in order.
    pub features: Vec<FeatureSpec>,
    /// Site tables.
    pub site: SiteTables,
    /// How its training rows are taken.
    #[serde(default)]
    pub rows: Option<RowDefaults>,
}

/// How a card's training rows are taken unless `leadscore dataset` is told otherwise (the
/// `dataset` module parses each): the right decision times depend on the data's shape, so the
/// card that knows its data carries them (models/README.md, "Decision times").
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RowDefaults {
    /// `visitor`, `lead` or `account`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
    /// `episodes`, `events` or `snapshots:DAYS,…`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decisions: Option<String>,
    /// The label window, e.g. `60d`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<String>,
}

impl Template {
    /// The template's featurizer, its site tables replaced by `site` where given.
    pub fn featurizer(
        self,
        site: Option<SiteTables>,
    ) -> Result<crate::features::Featurizer, ModelError> {
        let site = crate::site::Site::new(site.unwrap_or(self.site))?;
        Ok(crate::features::Featurizer::new(&self.features, site)?)
    }
}

/// Facts about `model.onnx`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelFile {
    /// File name inside the bundle.
    pub file: String,
    /// Hex sha256 of the file (checked by `leadscore check`).
    #[serde(default)]
    pub sha256: Option<String>,
    /// Input width.
    pub n_features: usize,
    /// Number of trees.
    #[serde(default)]
    pub n_trees: Option<usize>,
}

/// Calibration of the model probability.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "method", rename_all = "snake_case")]
pub enum Calibration {
    /// p' = sigmoid(a · logit(p) + b).
    Platt {
        /// Slope on the logit.
        a: f64,
        /// Intercept.
        b: f64,
    },
    /// p' = the piecewise-linear curve through the breakpoints (x = the model's raw probability,
    /// y = calibrated probability), flat beyond the first and last; why: isotonic regression fits
    /// any monotone miscalibration where Platt can only fit a sigmoid. Applied as `numpy.interp`.
    Isotonic {
        /// Raw probabilities, strictly increasing, in [0, 1].
        x: Vec<f64>,
        /// Calibrated probabilities, non-decreasing, in [0, 1]; one per `x`.
        y: Vec<f64>,
    },
    /// p' = p.
    None,
}

impl Calibration {
    /// Why a calibration cannot be applied, if it cannot.
    fn problem(&self) -> Option<String> {
        match self {
            Calibration::Platt { a, b } => (!a.is_finite() || !b.is_finite() || *a <= 0.0)
                .then(|| "platt calibration needs finite a > 0 and finite b".into()),
            Calibration::Isotonic { x, y } => isotonic_problem(x, y),
            Calibration::None => None,
        }
    }
}

fn isotonic_problem(x: &[f64], y: &[f64]) -> Option<String> {
    let e = |m: String| Some(format!("isotonic calibration: {m}"));
    if x.len() != y.len() {
        return e(format!(
            "x has {} breakpoints but y has {}",
            x.len(),
            y.len()
        ));
    }
    if x.is_empty() {
        return e("needs at least one breakpoint".into());
    }
    for (name, v) in [("x", x), ("y", y)] {
        if let Some((i, b)) = v
            .iter()
            .enumerate()
            .find(|(_, b)| !(0.0..=1.0).contains(*b))
        {
            return e(format!("{name}[{i}] = {b} is outside [0, 1]"));
        }
    }
    for i in 1..x.len() {
        if x[i] <= x[i - 1] {
            return e(format!(
                "x must be strictly increasing, but x[{i}] = {} follows x[{}] = {}",
                x[i],
                i - 1,
                x[i - 1]
            ));
        }
        if y[i] < y[i - 1] {
            return e(format!(
                "y must be non-decreasing, but y[{i}] = {} follows y[{}] = {}",
                y[i],
                i - 1,
                y[i - 1]
            ));
        }
    }
    None
}

/// Tier thresholds (inclusive lower bounds on `ai_score`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Tiers {
    /// `ai_score ≥ hot` → hot.
    pub hot: u8,
    /// `ai_score ≥ warm` → warm.
    pub warm: u8,
}

impl Tiers {
    fn problem(self) -> Option<String> {
        (self.hot > 100 || self.warm > self.hot).then(|| "tiers need 0 ≤ warm ≤ hot ≤ 100".into())
    }
}

/// Per-segment tiers: the trainer sets them by the global rule within each value of `feature`
/// that had at least `min_positives` positive training rows, so that a segment converting
/// differently (a channel, returning visitors) gets its own hot and warm lines.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SegmentTiers {
    /// The feature (a coded one: channel, visitor type, a trait).
    pub feature: String,
    /// Positives a segment needed.
    pub min_positives: u64,
    /// The segments that had them.
    pub segments: Vec<SegmentTier>,
}

/// One segment's thresholds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SegmentTier {
    /// The feature's value (code).
    pub value: f32,
    /// Its name, for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// `ai_score ≥ hot` → hot.
    pub hot: u8,
    /// `ai_score ≥ warm` → warm.
    pub warm: u8,
    /// Training rows in the segment.
    pub rows: u64,
    /// Positive training rows in the segment.
    pub positives: u64,
}

/// Parameters of `score_confidence` (see `score.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ConfidenceParams {
    /// Page views at which evidence reaches 63 % (1 − 1/e).
    #[serde(default = "default_evidence_pages")]
    pub evidence_pages: f64,
    /// Logit distance to the nearest tier boundary at which the margin factor reaches 63 %.
    #[serde(default = "default_margin_logit")]
    pub margin_logit: f64,
}

fn default_evidence_pages() -> f64 {
    3.0
}
fn default_margin_logit() -> f64 {
    0.5
}

impl Default for ConfidenceParams {
    fn default() -> Self {
        ConfidenceParams {
            evidence_pages: default_evidence_pages(),
            margin_logit: default_margin_logit(),
        }
    }
}

/// Training-time data TreeSHAP needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Explain {
    /// Per tree, per ONNX node id: number of training rows through the node.
    pub node_covers: Vec<Vec<f64>>,
}

impl Card {
    /// Parses and checks a card's own consistency (the model file is checked when loaded).
    pub fn parse(text: &str) -> Result<Card, ModelError> {
        // Straight into the struct (no JSON tree first: it doubled the time of a model's load);
        // a card that does not read is read again as a tree only to say why the clearest way.
        let card = match serde_json::from_str::<Card>(text) {
            Ok(card) => card,
            Err(e) => {
                let v: serde_json::Value = serde_json::from_str(text)?;
                Card::supported(v.get("schema_version").and_then(|s| s.as_u64()))?;
                return Err(e.into());
            }
        };
        Card::supported(Some(u64::from(card.schema_version)))?;
        card.check()?;
        Ok(card)
    }

    /// Refuses a `schema_version` that is missing or not this build's.
    fn supported(schema_version: Option<u64>) -> Result<(), ModelError> {
        match schema_version {
            Some(n) if n == u64::from(CARD_SCHEMA_VERSION) => Ok(()),
            Some(n) => Err(ModelError::Card(format!(
                "schema_version {n} is not supported (this build reads {CARD_SCHEMA_VERSION})"
            ))),
            None => Err(ModelError::Card("missing schema_version".into())),
        }
    }

    fn check(&self) -> Result<(), ModelError> {
        let bad = |m: String| Err(ModelError::Card(m));
        if self.model_version.is_empty() || self.model_version.len() > 64 {
            return bad("model_version must be 1 to 64 characters".into());
        }
        if self.features.len() != self.onnx_file.n_features {
            return bad(format!(
                "{} features listed but model.n_features is {}",
                self.features.len(),
                self.onnx_file.n_features
            ));
        }
        if let Some(m) = self.tiers.problem() {
            return bad(m);
        }
        if let Some(st) = &self.segment_tiers {
            if !self.features.iter().any(|f| f.name == st.feature) {
                return bad(format!("segment_tiers: no feature `{}`", st.feature));
            }
            for t in &st.segments {
                if let Some(m) = (Tiers {
                    hot: t.hot,
                    warm: t.warm,
                })
                .problem()
                {
                    return bad(format!("segment_tiers {} = {}: {m}", st.feature, t.value));
                }
            }
        }
        if let Some(m) = self.calibration.problem() {
            return bad(m);
        }
        for f in &self.features {
            let bad_key = f
                .values
                .iter()
                .flatten()
                .map(|(k, _)| k)
                .find(|k| !k.parse::<f32>().is_ok_and(f32::is_finite));
            if let Some(k) = bad_key {
                return bad(format!(
                    "feature `{}`: values key {k:?} is not a number (keys are feature values, e.g. \"8\")",
                    f.name
                ));
            }
        }
        let c = self.confidence;
        if !(c.evidence_pages > 0.0 && c.margin_logit > 0.0) {
            return bad("confidence parameters must be positive".into());
        }
        Ok(())
    }
}
