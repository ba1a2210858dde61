//! Scoring: features → model probability → calibrated 0–100 score, tier, confidence and top factors.
//!
//! [`Scorer`] is the one object every front end holds: it owns the bundle (plan built once), the
//! compiled features and the site tables, and turns a [`VisitorState`] into a [`Score`].
//!
//! `score_confidence` (0–1) is how much to trust the *tier*: the product of
//! - evidence: 1 − exp(−page views / `evidence_pages`), since a one-page visitor's score rests on little;
//! - margin: 1 − exp(−d / `margin_logit`), where d is the distance, in calibrated log-odds, from the
//!   score to the nearest tier boundary, since a score on a boundary could flip tier with one event.

use serde::{Deserialize, Serialize};

use crate::event::Event;
use crate::explain::{tree_shap, tree_shap_memo, Explainer, ShapMemo};
use crate::features::{Context, FeatureSet, FeatureSpec, Featurizer};
use crate::model::card::{Calibration, Card, Tiers};
use crate::model::error::ModelError;
use crate::model::plan::Plan;
use crate::model::Bundle;
use crate::site::{Site, SiteTables};
use crate::state::{Apply, StateConfig, VisitorState};

/// Number of `key_factors` reported.
pub const KEY_FACTORS: usize = 5;

/// Hot, warm or cold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Tier {
    /// `ai_score ≥ tiers.hot`.
    Hot,
    /// `ai_score ≥ tiers.warm`.
    Warm,
    /// Below warm.
    Cold,
}

impl Tier {
    /// Tier of a 0–100 score.
    pub fn of(score: u8, t: Tiers) -> Tier {
        if score >= t.hot {
            Tier::Hot
        } else if score >= t.warm {
            Tier::Warm
        } else {
            Tier::Cold
        }
    }

    /// Lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Hot => "hot",
            Tier::Warm => "warm",
            Tier::Cold => "cold",
        }
    }
}

/// One feature's part in a score: its value and its TreeSHAP contribution in model log-odds, with
/// the card's names for both so that a salesperson can read it ("Traffic source: Email").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Factor {
    /// Feature name.
    pub feature: String,
    /// The card's label for the feature (its name when the card has none).
    #[serde(default)]
    pub label: String,
    /// Feature value fed to the model (the f32 input, as its shortest decimal: `47.3`, not
    /// `47.29999923706055`, whichever serializer — JSON, JS objects — reports it); NaN for a
    /// missing input, which JSON writes as `null`.
    #[serde(deserialize_with = "f64_or_nan")]
    pub value: f64,
    /// The card's name for this value of a coded feature (`"Email"` for channel 8), if it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display: Option<String>,
    /// Contribution to the raw log-odds (positive raises the score).
    pub impact: f64,
    /// `fit` (who the lead is) or `engagement` (what they do): the card's `group`.
    #[serde(default)]
    pub group: Group,
    /// The factor as a sentence a salesperson reads ("3 webinars in the last 30 days",
    /// "Industry: Logistics"): the card's `sentence`, else "label: value".
    #[serde(default)]
    pub text: String,
}

/// Which sub-score a feature's contribution goes to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Group {
    /// Who the lead is: traits, firmographics.
    Fit,
    /// What the lead does.
    #[default]
    Engagement,
}

/// A sub-score: one group's share of the explanation. `log_odds` is the sum of its features'
/// TreeSHAP contributions, so `fit.log_odds + engagement.log_odds + base = margin` exactly (the
/// model's raw log-odds); `score` is what the model would say with the other group at its
/// average: round(100 · calibrated σ(base + log_odds)).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct SubScore {
    /// 0–100.
    pub score: u8,
    /// Sum of the group's contributions (raw log-odds).
    pub log_odds: f64,
}

/// A score, as every front end reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Score {
    /// Visitor the score is for.
    pub visitor_id: String,
    /// Lead id, once identified.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lead_id: Option<String>,
    /// round(100 · probability).
    pub ai_score: u8,
    /// Tier from the card's thresholds (the visitor's segment's, where the card has them).
    pub tier: Tier,
    /// The thresholds the tier came from (not serialized: the card holds them; the CRM policy
    /// uses them to see a threshold crossed).
    #[serde(skip)]
    pub tiers: Tiers,
    /// Calibrated probability of converting.
    pub probability: f64,
    /// Model output before calibration.
    pub raw_probability: f64,
    /// Trust in the tier, 0–1 (see module docs).
    pub score_confidence: f64,
    /// Top factors by absolute impact.
    pub key_factors: Vec<Factor>,
    /// Fit: the part of the score that comes from who the lead is.
    #[serde(default)]
    pub fit: SubScore,
    /// Engagement: the part that comes from what the lead does.
    #[serde(default)]
    pub engagement: SubScore,
    /// Model version of the card.
    pub model_version: String,
    /// The experiment arm (bundle name) that chose the model, where an experiment runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arm: Option<String>,
    /// When the score was computed (ms since the epoch; the latest event time in offline runs).
    pub score_timestamp: i64,
    /// Every feature's contribution (with `--all-factors`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub contributions: Option<Vec<Factor>>,
    /// TreeSHAP base value: contributions + base = raw log-odds (with `--all-factors`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub base_value: Option<f64>,
}

/// What to include in a score.
#[derive(Debug, Clone, Copy, Default)]
pub struct ScoreOptions {
    /// Include every contribution and the base value.
    pub all_factors: bool,
}

/// What a batch of events did to one visitor's state; why: every front end (CLI, worker, browser)
/// reports the same three counts, counted one way.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tally {
    /// Events counted into the state.
    pub applied: u32,
    /// Events whose id was applied before (nothing changed).
    pub duplicates: u32,
    /// Events older than the de-duplication window, refused.
    pub stale: u32,
}

impl Tally {
    /// Counts one outcome; returns it (for callers that also act on it).
    pub fn count(&mut self, outcome: Apply) -> Apply {
        let n = match outcome {
            Apply::Applied => &mut self.applied,
            Apply::Duplicate => &mut self.duplicates,
            Apply::Stale => &mut self.stale,
        };
        *n = n.saturating_add(1);
        outcome
    }
}

/// A loaded model ready to score visitors.
#[derive(Debug)]
pub struct Scorer {
    card: Card,
    /// The segment feature's index and each segment's thresholds (card `segment_tiers`).
    segment_tiers: Option<(usize, Vec<(f32, Tiers)>)>,
    plan: Plan,
    explainer: Explainer,
    featurizer: Featurizer,
    names: Vec<FactorNames>,
}

/// What a factor says about one feature, read from its card entry once.
#[derive(Debug, Clone)]
struct FactorNames {
    label: String,
    /// (value, display name), from the card's `values`.
    values: Vec<(f32, String)>,
    group: Group,
    sentence: Option<String>,
}

impl FactorNames {
    fn of(spec: &FeatureSpec) -> FactorNames {
        let values = spec
            .values
            .iter()
            .flatten()
            .filter_map(|(k, v)| Some((k.parse::<f32>().ok()?, v.clone())))
            .collect();
        FactorNames {
            label: spec.label.clone().unwrap_or_else(|| spec.name.clone()),
            values,
            group: if spec.is_fit() {
                Group::Fit
            } else {
                Group::Engagement
            },
            sentence: spec.sentence.clone(),
        }
    }

    /// The factor as a sentence: the value's display name, else its shortest decimal
    /// ("unknown" for a missing input), put in the card's sentence or after the label.
    fn text(&self, x: f32) -> String {
        let value = match self.display(x) {
            Some(d) => d,
            None if x.is_nan() => "unknown".into(),
            None => readable(x),
        };
        match &self.sentence {
            Some(t) => t.replace("{value}", &value).replace("{label}", &self.label),
            None => format!("{}: {value}", self.label),
        }
    }

    fn display(&self, x: f32) -> Option<String> {
        self.values
            .iter()
            .find(|(v, _)| *v == x)
            .map(|(_, d)| d.clone())
    }
}

impl Scorer {
    /// Builds a scorer from a bundle, optionally replacing its site tables.
    pub fn new(bundle: Bundle, site: Option<SiteTables>) -> Result<Scorer, ModelError> {
        let Bundle { mut card, plan } = bundle;
        let explainer = Explainer::new(plan.forest(), &card.explain.node_covers)?;
        if let Some(s) = site {
            card.site = s;
        }
        let site = Site::new(card.site.clone())?;
        let featurizer = Featurizer::new(&card.features, site)?;
        let names = card.features.iter().map(FactorNames::of).collect();
        let segment_tiers = card.segment_tiers.as_ref().and_then(|st| {
            let j = card.features.iter().position(|f| f.name == st.feature)?;
            let t = st.segments.iter().map(|s| {
                (
                    s.value,
                    Tiers {
                        hot: s.hot,
                        warm: s.warm,
                    },
                )
            });
            Some((j, t.collect()))
        });
        Ok(Scorer {
            card,
            segment_tiers,
            plan,
            explainer,
            featurizer,
            names,
        })
    }

    /// The tier thresholds for a feature vector: its segment's where the card has them, else the
    /// card's global ones.
    pub fn tiers_for(&self, x: &[f32]) -> Tiers {
        self.segment_tiers
            .as_ref()
            .and_then(|(j, segs)| {
                let v = x.get(*j)?;
                segs.iter().find(|(s, _)| s == v).map(|(_, t)| *t)
            })
            .unwrap_or(self.card.tiers)
    }

    /// What turns events into this model's inputs.
    pub fn featurizer(&self) -> &Featurizer {
        &self.featurizer
    }

    /// The model card.
    pub fn card(&self) -> &Card {
        &self.card
    }

    /// Number of trees in the model.
    pub fn n_trees(&self) -> usize {
        self.plan.forest().n_trees()
    }

    /// Model probability (uncalibrated) of a feature vector: the hot path without explanation.
    pub fn probability(&self, x: &[f32]) -> Result<f64, ModelError> {
        Ok(f64::from(self.plan.predict(x)?))
    }

    /// The parsed trees and their covers (for TreeSHAP and the exact margin).
    pub fn trees(&self) -> (&crate::model::forest::Forest, &Explainer) {
        (self.plan.forest(), &self.explainer)
    }

    /// Compiled features.
    pub fn features(&self) -> &FeatureSet {
        self.featurizer.features()
    }

    /// State configuration (site tables and decay half-lives).
    pub fn state_config(&self) -> &StateConfig {
        self.featurizer.state_config()
    }

    /// A fresh, empty visitor state.
    pub fn new_state(&self) -> VisitorState {
        self.featurizer.new_state()
    }

    /// Applies one event to a visitor's state (`now`: receive time, for clock clamping).
    pub fn apply(&self, state: &mut VisitorState, event: &Event, now: Option<i64>) -> Apply {
        self.featurizer.apply(state, event, now)
    }

    /// Applies events in order to one visitor's state and counts what each did.
    pub fn apply_all<'a>(
        &self,
        state: &mut VisitorState,
        events: impl IntoIterator<Item = &'a Event>,
        now: Option<i64>,
    ) -> Tally {
        self.apply_all_with(state, events, now, |_| {})
    }

    /// [`Scorer::apply_all`], handing each event that was counted (not a duplicate, not stale) to
    /// `applied`: what the worker logs.
    pub fn apply_all_with<'a>(
        &self,
        state: &mut VisitorState,
        events: impl IntoIterator<Item = &'a Event>,
        now: Option<i64>,
        mut applied: impl FnMut(&'a Event),
    ) -> Tally {
        let mut tally = Tally::default();
        for e in events {
            if tally.count(self.featurizer.apply(state, e, now)) == Apply::Applied {
                applied(e);
            }
        }
        tally
    }

    /// The feature vector of a state.
    pub fn feature_vector(&self, state: &VisitorState) -> Vec<f32> {
        self.featurizer.vector(state)
    }

    /// The feature vector of a state with what it does not hold (its account).
    pub fn feature_vector_in(&self, state: &VisitorState, ctx: Context<'_>) -> Vec<f32> {
        self.featurizer.vector_in(state, state.last_ts, ctx)
    }

    /// Scores a visitor's state.
    pub fn score(
        &self,
        state: &VisitorState,
        visitor_id: &str,
        at: i64,
        opts: ScoreOptions,
    ) -> Result<Score, ModelError> {
        self.score_in(state, visitor_id, at, opts, Context::default(), None)
    }

    /// [`Scorer::score`] for a front end that scores one visitor event after event: the same score,
    /// with TreeSHAP recomputed only for the trees the new events changed (see [`ShapMemo`]).
    pub fn score_with_memo(
        &self,
        state: &VisitorState,
        visitor_id: &str,
        at: i64,
        opts: ScoreOptions,
        memo: &mut ShapMemo,
    ) -> Result<Score, ModelError> {
        self.score_in(state, visitor_id, at, opts, Context::default(), Some(memo))
    }

    /// [`Scorer::score`] with the subject's [`Context`] (its account), reusing `memo` if given.
    pub fn score_in(
        &self,
        state: &VisitorState,
        visitor_id: &str,
        at: i64,
        opts: ScoreOptions,
        ctx: Context<'_>,
        memo: Option<&mut ShapMemo>,
    ) -> Result<Score, ModelError> {
        let x = self.feature_vector_in(state, ctx);
        let mut s = self.score_x(&x, opts, memo)?;
        s.visitor_id = visitor_id.to_string();
        s.lead_id = state.lead_id.clone();
        s.score_timestamp = at;
        s.score_confidence = self.confidence(s.probability, f64::from(state.total.pages), s.tiers);
        Ok(s)
    }

    /// Scores a raw feature vector (stateless scoring; confidence assumes full evidence).
    pub fn score_vector(&self, x: &[f32], opts: ScoreOptions) -> Result<Score, ModelError> {
        self.score_x(x, opts, None)
    }

    fn score_x(
        &self,
        x: &[f32],
        opts: ScoreOptions,
        memo: Option<&mut ShapMemo>,
    ) -> Result<Score, ModelError> {
        if x.len() != self.featurizer.features().len() {
            return Err(ModelError::Card(format!(
                "expected {} features, got {}",
                self.featurizer.features().len(),
                x.len()
            )));
        }
        let raw = f64::from(self.plan.predict(x)?);
        let probability = calibrate(raw, &self.card.calibration);
        let ai_score = (probability * 100.0).round().clamp(0.0, 100.0) as u8;
        let tiers = self.tiers_for(x);
        let mut phi = vec![0.0; x.len()];
        let forest = self.plan.forest();
        let base = match memo {
            Some(memo) => tree_shap_memo(forest, &self.explainer, x, &mut phi, memo),
            None => tree_shap(forest, &self.explainer, x, &mut phi),
        };
        // Factors are built only for what is reported: five by default, every one on request.
        let names = self.featurizer.features().names();
        let factor = |i: usize| Factor {
            feature: names[i].clone(),
            label: self.names[i].label.clone(),
            value: shortest_f64(x[i]),
            display: self.names[i].display(x[i]),
            impact: phi[i],
            group: self.names[i].group,
            text: self.names[i].text(x[i]),
        };
        let part = |g: Group| {
            // + 0.0: an empty sum is −0.0, which JSON would print as such.
            let log_odds = (0..x.len())
                .filter(|&i| self.names[i].group == g)
                .map(|i| phi[i])
                .sum::<f64>()
                + 0.0;
            let p = calibrate(sigmoid(base + log_odds), &self.card.calibration);
            SubScore {
                score: (p * 100.0).round().clamp(0.0, 100.0) as u8,
                log_odds,
            }
        };
        let mut order: Vec<usize> = (0..x.len()).filter(|&i| phi[i] != 0.0).collect();
        order.sort_by(|&a, &b| {
            phi[b]
                .abs()
                .total_cmp(&phi[a].abs())
                .then_with(|| names[a].cmp(&names[b]))
        });
        let key = order.iter().take(KEY_FACTORS).map(|&i| factor(i)).collect();
        let (contributions, base_value) = if opts.all_factors {
            (Some((0..x.len()).map(factor).collect()), Some(base))
        } else {
            (None, None)
        };
        Ok(Score {
            visitor_id: String::new(),
            lead_id: None,
            ai_score,
            tier: Tier::of(ai_score, tiers),
            tiers,
            probability,
            raw_probability: raw,
            score_confidence: self.confidence(probability, f64::INFINITY, tiers),
            key_factors: key,
            fit: part(Group::Fit),
            engagement: part(Group::Engagement),
            model_version: self.card.model_version.clone(),
            arm: None,
            score_timestamp: 0,
            contributions,
            base_value,
        })
    }

    fn confidence(&self, p: f64, pages: f64, tiers: Tiers) -> f64 {
        let c = self.card.confidence;
        let evidence = 1.0 - (-pages / c.evidence_pages).exp();
        let l = logit(p);
        let d = [tiers.hot, tiers.warm]
            .iter()
            .filter(|&&t| t > 0 && t <= 100)
            .map(|&t| (l - logit((f64::from(t) - 0.5) / 100.0)).abs())
            .fold(f64::INFINITY, f64::min);
        let margin = if d.is_finite() {
            1.0 - (-d / c.margin_logit).exp()
        } else {
            1.0
        };
        ((evidence * margin) * 1000.0).round() / 1000.0
    }
}

/// A number as a sentence says it: whole numbers as such, others to one decimal ("37.9 days",
/// not "37.905556"); the factor's `value` keeps the exact input.
fn readable(x: f32) -> String {
    let r = (f64::from(x) * 10.0).round() / 10.0;
    if r.fract() == 0.0 {
        format!("{r:.0}")
    } else {
        format!("{r:.1}")
    }
}

/// The f64 whose shortest decimal is the f32's (for display; NaN and infinities pass through).
pub fn shortest_f64(v: f32) -> f64 {
    if !v.is_finite() {
        return f64::from(v);
    }
    v.to_string().parse().unwrap_or(f64::from(v))
}

/// Reads a number that JSON may hold as `null`, as NaN: serde_json writes a NaN feature value (a
/// missing input) as `null`, and a record written must read back.
pub fn f64_or_nan<'de, D: serde::Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
}

/// [`f64_or_nan`] for each value of a map (a feature vector by name).
pub fn map_f64_or_nan<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<std::collections::BTreeMap<String, f64>, D::Error> {
    let m = std::collections::BTreeMap::<String, Option<f64>>::deserialize(d)?;
    Ok(m.into_iter()
        .map(|(k, v)| (k, v.unwrap_or(f64::NAN)))
        .collect())
}

/// log(p / (1 − p)), clamped away from ±∞.
pub fn logit(p: f64) -> f64 {
    let p = p.clamp(1e-12, 1.0 - 1e-12);
    (p / (1.0 - p)).ln()
}

/// 1 / (1 + e^−z).
pub fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

/// Applies a card's calibration to a model probability.
pub fn calibrate(p: f64, c: &Calibration) -> f64 {
    match c {
        Calibration::Platt { a, b } => sigmoid(a * logit(p) + b),
        Calibration::Isotonic { x, y } => interp(p, x, y),
        Calibration::None => p,
    }
}

/// `numpy.interp(p, x, y)`, operation for operation (so the trainer's metrics are what serving
/// computes): linear between breakpoints, `y[0]` / `y[n−1]` beyond the ends; `x` strictly
/// increasing (checked when the card is read). NaN passes through.
fn interp(p: f64, x: &[f64], y: &[f64]) -> f64 {
    let (Some(&x0), Some(&xn), Some(&y0), Some(&yn)) = (x.first(), x.last(), y.first(), y.last())
    else {
        return p;
    };
    if p.is_nan() {
        return p;
    }
    if p < x0 {
        return y0;
    }
    if p >= xn {
        return yn;
    }
    // x[j] <= p < x[j + 1]
    let j = x.partition_point(|&v| v <= p).saturating_sub(1);
    let (Some(&xj), Some(&xk), Some(&yj), Some(&yk)) =
        (x.get(j), x.get(j + 1), y.get(j), y.get(j + 1))
    else {
        return yn;
    };
    if xj == p {
        return yj;
    }
    let slope = (yk - yj) / (xk - xj);
    let v = slope * (p - xj) + yj;
    if v.is_nan() {
        let w = slope * (p - xk) + yk;
        if w.is_nan() && yj == yk {
            return yj;
        }
        return w;
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calibration_and_tiers() {
        let c = Calibration::Platt { a: 1.0, b: 0.0 };
        assert!((calibrate(0.3, &c) - 0.3).abs() < 1e-12);
        let c = Calibration::Platt { a: 2.0, b: 0.5 };
        let want = 1.0 / (1.0 + (-(2.0 * (0.3f64 / 0.7).ln() + 0.5)).exp());
        assert!((calibrate(0.3, &c) - want).abs() < 1e-12);
        assert_eq!(calibrate(0.42, &Calibration::None), 0.42);
        let t = Tiers { hot: 70, warm: 40 };
        assert_eq!(Tier::of(70, t), Tier::Hot);
        assert_eq!(Tier::of(69, t), Tier::Warm);
        assert_eq!(Tier::of(40, t), Tier::Warm);
        assert_eq!(Tier::of(39, t), Tier::Cold);
    }

    #[test]
    fn a_segment_scores_against_its_own_tiers_and_bad_ones_are_refused() {
        use crate::model::card::{SegmentTier, SegmentTiers};
        let mut b = Bundle::embedded().unwrap();
        let j = b
            .card
            .features
            .iter()
            .position(|f| f.name == "visitor_type")
            .unwrap();
        let seg = |value, hot, warm| SegmentTier {
            value,
            label: None,
            hot,
            warm,
            rows: 1,
            positives: 1,
        };
        b.card.segment_tiers = Some(SegmentTiers {
            feature: "visitor_type".into(),
            min_positives: 120,
            segments: vec![seg(0.0, 95, 90)],
        });
        let card = b.card.clone();
        let sc = Scorer::new(b, None).unwrap();
        let mut x = vec![0f32; sc.card().features.len()];
        let global = sc.card().tiers;
        x[j] = 1.0;
        assert_eq!(sc.tiers_for(&x), global, "a value without tiers of its own");
        x[j] = 0.0;
        assert_eq!(sc.tiers_for(&x), Tiers { hot: 95, warm: 90 });
        let s = sc.score_vector(&x, ScoreOptions::default()).unwrap();
        assert_eq!(s.tier, Tier::of(s.ai_score, Tiers { hot: 95, warm: 90 }));
        assert_eq!(s.tiers, Tiers { hot: 95, warm: 90 });
        // A card naming a missing feature, or a segment with warm above hot, does not load.
        for (feature, t) in [
            ("nope", seg(0.0, 95, 90)),
            ("visitor_type", seg(0.0, 40, 50)),
        ] {
            let mut c = card.clone();
            c.segment_tiers = Some(SegmentTiers {
                feature: feature.into(),
                min_positives: 1,
                segments: vec![t],
            });
            let text = serde_json::to_string(&c).unwrap();
            assert!(Card::parse(&text).is_err(), "{feature}");
        }
    }

    /// The reference is sklearn's IsotonicRegression fitted by `tests/fixtures/isotonic/
    /// make_reference.py`, queried through numpy.interp and through sklearn's own predict.
    #[test]
    fn isotonic_matches_sklearn_and_numpy() {
        use serde_json::value::RawValue;
        // Breakpoints through serde_json, as a card's are (15 significant digits, which its
        // default float parser reads exactly); queries and answers (17 digits) through the
        // correctly rounded `str::parse`.
        #[derive(Deserialize)]
        struct Reference {
            x: Vec<f64>,
            y: Vec<f64>,
            queries: Vec<Box<RawValue>>,
            interp: Vec<Box<RawValue>>,
            predict: Vec<Box<RawValue>>,
        }
        let exact = |v: &[Box<RawValue>]| -> Vec<f64> {
            v.iter().map(|r| r.get().parse().unwrap()).collect()
        };
        let r: Reference =
            serde_json::from_str(include_str!("../tests/fixtures/isotonic/reference.json"))
                .unwrap();
        let (queries, interp, predict) = (exact(&r.queries), exact(&r.interp), exact(&r.predict));
        assert!(r.x.len() > 20 && queries.len() > 2 * r.x.len());
        let c = Calibration::Isotonic {
            x: r.x.clone(),
            y: r.y.clone(),
        };
        for (k, q) in queries.iter().enumerate() {
            let got = calibrate(*q, &c);
            assert_eq!(got.to_bits(), interp[k].to_bits(), "query {k} = {q}");
            assert!((got - predict[k]).abs() < 1e-9, "query {k} = {q}");
        }
        // Flat beyond the ends, exact on the breakpoints.
        assert_eq!(calibrate(0.0, &c), r.y[0]);
        assert_eq!(calibrate(1.0, &c), r.y[r.y.len() - 1]);
        assert_eq!(calibrate(r.x[5], &c), r.y[5]);
    }

    #[test]
    fn isotonic_small_cases() {
        let c = Calibration::Isotonic {
            x: vec![0.2, 0.6],
            y: vec![0.1, 0.5],
        };
        assert_eq!(calibrate(0.0, &c), 0.1);
        assert!((calibrate(0.4, &c) - 0.3).abs() < 1e-15);
        assert_eq!(calibrate(0.9, &c), 0.5);
        let one = Calibration::Isotonic {
            x: vec![0.5],
            y: vec![0.25],
        };
        assert_eq!((calibrate(0.1, &one), calibrate(0.9, &one)), (0.25, 0.25));
    }

    /// A state saved before the site tables were checked may hold an infinite page-stat sum (a
    /// 1e308 statistic viewed twice), and a mean of 1e39 is infinite as the model's `f32`; JSON
    /// writes both as `null`, which no reader takes for an `f64`. Neither may leave a score or a
    /// state that cannot be read back.
    #[test]
    fn non_finite_sums_never_leave_a_score_or_state_unreadable() {
        let sc = Scorer::new(Bundle::embedded().unwrap(), None).unwrap();
        let page =
            r#"{"id":"a","type":"page","ts":1763900121000,"visitor_id":"v","path":"/pricing"}"#;
        let ev = Event::parse(page).unwrap();
        let opts = ScoreOptions { all_factors: true };
        for sum in [f64::INFINITY, f64::NEG_INFINITY, f64::NAN, 1e39, f64::MAX] {
            let mut st = sc.new_state();
            sc.apply(&mut st, &ev, None);
            st.session.stat_sums.iter_mut().for_each(|s| *s = sum);
            let back = VisitorState::from_bytes(&st.to_bytes(), sc.state_config()).unwrap();
            assert!(
                back.session.stat_sums.iter().all(|s| s.is_finite()),
                "{sum}"
            );
            for state in [&st, &back] {
                let x = sc.feature_vector(state);
                assert!(x.iter().all(|v| !v.is_infinite()), "{sum}: {x:?}");
                let score = sc.score(state, "v", 1, opts).unwrap();
                let json = serde_json::to_string(&score).unwrap();
                let read: Score = serde_json::from_str(&json)
                    .map_err(|e| format!("{sum}: {e}"))
                    .unwrap();
                assert_eq!(read.ai_score, score.ai_score);
            }
        }
    }

    /// A missing input (NaN, e.g. a trait never sent) is `null` in JSON, and reads back as NaN.
    #[test]
    fn a_missing_factor_value_reads_back() {
        let f = Factor {
            feature: "t".into(),
            label: "T".into(),
            value: f64::NAN,
            display: None,
            impact: 0.5,
            group: Group::Fit,
            text: "T: unknown".into(),
        };
        let json = serde_json::to_string(&f).unwrap();
        assert!(json.contains(r#""value":null"#), "{json}");
        let back: Factor = serde_json::from_str(&json).unwrap();
        assert!(back.value.is_nan() && back.impact == 0.5);
    }

    #[test]
    fn factors_read_as_sentences() {
        let spec = |sentence: Option<&str>| FeatureSpec {
            name: "webinars_30d".into(),
            kind: "event_count".into(),
            params: Default::default(),
            column: None,
            encoding: None,
            description: None,
            label: Some("Webinars".into()),
            values: Some([("0".to_string(), "none".to_string())].into()),
            group: None,
            sentence: sentence.map(String::from),
        };
        let n = FactorNames::of(&spec(Some("{value} webinars in the last 30 days")));
        assert_eq!(n.text(3.0), "3 webinars in the last 30 days");
        assert_eq!(n.text(0.0), "none webinars in the last 30 days");
        assert_eq!(n.text(37.905556), "37.9 webinars in the last 30 days");
        assert_eq!(n.group, Group::Engagement);
        let n = FactorNames::of(&spec(None));
        assert_eq!(n.text(f32::NAN), "Webinars: unknown");
        assert_eq!(n.text(1489.989), "Webinars: 1490");
    }

    #[test]
    fn factor_values_print_as_their_f32() {
        assert_eq!(shortest_f64(47.3).to_string(), "47.3");
        assert_eq!(shortest_f64(0.1) as f32, 0.1f32);
        assert_eq!(shortest_f64(1e-7) as f32, 1e-7f32);
        assert!(shortest_f64(f32::NAN).is_nan());
    }
}
