//! A window's health against the card's baseline: drift of every feature and of the score, live
//! accuracy once outcomes are in, per-segment figures, and the alerts they raise. The worker's
//! scheduled handler and `leadscore monitor` both call [`assess`], so they report the same numbers.
//!
//! Alerts (each names what moved, by how much, on how many rows):
//! - [`DRIFT_DETECTED`]: PSI at or above the alert line (0.25) on a feature or the score, level
//!   `alert`; between the warning (0.1) and alert lines, level `warning`. Only on windows with at
//!   least `min_scores` decisions. Calendar features (weekend, hour, special day) are reported and
//!   never alert: a window's dates set their distribution (every Saturday, every December).
//! - [`PERFORMANCE_DEGRADED`]: realized AUC at least `auc_drop` (0.05) below the card's held-out
//!   AUC, or ECE at least `ece_factor` (2) times the card's — only once every decision of the
//!   window is labelled and at least `min_positives` are positive.

use serde::{Deserialize, Serialize};

use super::accuracy::{Accuracy, Labelled};
use super::baseline::Baseline;
use super::drift::{Drift, DriftError, Gate, Level};
use super::window::{Conversions, Decision, Decisions, Label, WindowKey};
use crate::metrics::{MetricsError, SCORE_BINS};

/// Alert type: a feature's or the score's distribution moved.
pub const DRIFT_DETECTED: &str = "model.drift_detected";
/// Alert type: realized accuracy fell.
pub const PERFORMANCE_DEGRADED: &str = "model.performance_degraded";
/// Default drop of realized AUC below the card's that alerts.
pub const AUC_DROP: f64 = 0.05;
/// Default ratio of realized ECE to the card's that alerts.
pub const ECE_FACTOR: f64 = 2.0;

/// How windows are judged.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Options {
    /// Minimum samples and PSI lines.
    pub gate: Gate,
    /// Outcome window W (ms).
    pub outcome_window_ms: i64,
    /// Labels are known up to this time (ms).
    pub as_of: i64,
    /// AUC drop that alerts.
    pub auc_drop: f64,
    /// ECE ratio that alerts.
    pub ece_factor: f64,
}

/// Why a window could not be assessed.
#[derive(Debug, thiserror::Error)]
pub enum HealthError {
    /// Counts that do not fit the baseline.
    #[error(transparent)]
    Drift(#[from] DriftError),
    /// A decision outside the metrics' domain (a probability outside [0, 1]).
    #[error("visitor {visitor}: {source}")]
    Metrics {
        /// The decision's visitor.
        visitor: String,
        /// What was wrong.
        source: MetricsError,
    },
}

/// One distribution against its baseline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Distribution {
    /// Feature name, or `ai_score`.
    pub name: String,
    /// PSI, JS, KS and the verdict.
    pub drift: Drift,
    /// Bin labels.
    pub bins: Vec<String>,
    /// Baseline share per bin.
    pub baseline: Vec<f64>,
    /// Window count per bin.
    pub live: Vec<u64>,
    /// A calendar feature: its drift is reported, never alerted on (the window's dates set it).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub calendar: bool,
}

/// Accuracy of labelled decisions beside the card's held-out figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LiveAccuracy {
    /// Decisions whose outcome window is still open.
    pub pending: u64,
    /// Decisions of visitors that converted in an earlier window (not counted).
    pub converted_before: u64,
    /// `insufficient_data` until every decision is labelled and enough are positive; then `ok`
    /// or `alert`.
    pub level: Level,
    /// The metrics of the labelled decisions.
    pub live: Accuracy,
    /// The card's held-out AUC (of `ai_score`).
    pub baseline_auc: Option<f64>,
    /// The card's held-out ECE.
    pub baseline_ece: Option<f64>,
    /// The labelled decisions' counts (kept to pool windows: [`super::promote::pool`]).
    #[serde(skip)]
    pub labelled: Labelled,
}

/// One segment of the window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Segment {
    /// The coded feature.
    pub feature: String,
    /// Its code.
    pub value: f32,
    /// Its display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// Decisions in the segment.
    pub decisions: u64,
    /// Their share of the window.
    pub share: Option<f64>,
    /// The segment's share of the training rows.
    pub train_share: f64,
    /// Accuracy within the segment.
    pub accuracy: LiveAccuracy,
}

/// Something that moved by how much.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Moved {
    /// `ai_score`, a feature name, or `auc` / `ece`.
    pub what: String,
    /// `psi`, `auc` or `ece`.
    pub metric: String,
    /// The window's value.
    pub value: f64,
    /// The baseline's value (0 for PSI, which is already a distance from it).
    pub baseline: f64,
    /// Rows the value is computed on.
    pub rows: u64,
    /// `warning` or `alert`.
    pub level: Level,
}

/// An alert, as the webhook's `data`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// [`DRIFT_DETECTED`] or [`PERFORMANCE_DEGRADED`].
    #[serde(rename = "type")]
    pub kind: String,
    /// `alert`, or `warning` when nothing reached the alert line.
    pub level: Level,
    /// The window.
    pub window_start: i64,
    /// Its end (exclusive).
    pub window_end: i64,
    /// The bundle.
    pub model_version: String,
    /// The arm.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arm: Option<String>,
    /// What moved, largest first.
    pub moved: Vec<Moved>,
}

/// One window's health.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WindowHealth {
    /// Start (ms).
    pub start: i64,
    /// End, exclusive (ms).
    pub end: i64,
    /// The bundle.
    pub model_version: String,
    /// The arm.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arm: Option<String>,
    /// Decisions (visitors) in the window.
    pub decisions: u64,
    /// The score's distribution.
    pub score: Distribution,
    /// Each feature's, in the card's order.
    pub features: Vec<Distribution>,
    /// Decisions per tier (hot, warm, cold).
    pub tiers: [u64; 3],
    /// The card's held-out tier shares.
    pub baseline_tier_shares: [Option<f64>; 3],
    /// Accuracy.
    pub accuracy: LiveAccuracy,
    /// Per segment.
    pub segments: Vec<Segment>,
    /// What this window raises.
    pub alerts: Vec<Alert>,
}

struct LabelTally {
    labelled: Labelled,
    pending: u64,
    converted_before: u64,
}

impl LabelTally {
    fn new() -> LabelTally {
        LabelTally {
            labelled: Labelled::default(),
            pending: 0,
            converted_before: 0,
        }
    }

    fn add(&mut self, d: &Decision, label: Label) -> Result<(), HealthError> {
        let y = match label {
            Label::Pending => {
                self.pending += 1;
                return Ok(());
            }
            Label::ConvertedBefore => {
                self.converted_before += 1;
                return Ok(());
            }
            Label::Positive => true,
            Label::Negative => false,
        };
        self.labelled
            .add(d.ai_score, d.probability, d.tier_index(), y)
            .map_err(|source| HealthError::Metrics {
                visitor: d.visitor_id.clone(),
                source,
            })
    }

    fn judge(
        &self,
        o: &Options,
        baseline_auc: Option<f64>,
        baseline_ece: Option<f64>,
    ) -> LiveAccuracy {
        let live = self.labelled.accuracy();
        let enough = self.pending == 0 && live.auc.positives >= o.gate.min_positives;
        let dropped =
            matches!((live.auc.value, baseline_auc), (Some(v), Some(b)) if v <= b - o.auc_drop);
        let worse = matches!((live.calibration.ece, baseline_ece), (Some(v), Some(b)) if v >= b * o.ece_factor);
        LiveAccuracy {
            pending: self.pending,
            converted_before: self.converted_before,
            level: match () {
                _ if !enough => Level::InsufficientData,
                _ if dropped || worse => Level::Alert,
                _ => Level::Ok,
            },
            live,
            baseline_auc,
            baseline_ece,
            labelled: self.labelled.clone(),
        }
    }
}

fn distribution(
    name: &str,
    bins: Vec<String>,
    baseline: &[f64],
    live: Vec<u64>,
    gate: &Gate,
) -> Result<Distribution, DriftError> {
    Ok(Distribution {
        name: name.to_string(),
        drift: gate.drift(baseline, &live)?,
        bins,
        baseline: baseline.to_vec(),
        live,
        calendar: false,
    })
}

/// The score's histogram where there is no baseline to judge it against (reported, never
/// alerted on).
fn unjudged(name: &str, live: Vec<u64>) -> Distribution {
    Distribution {
        name: name.to_string(),
        drift: Drift {
            rows: live.iter().sum(),
            psi: None,
            js: None,
            ks: None,
            level: Level::InsufficientData,
        },
        bins: (0..live.len()).map(|s| s.to_string()).collect(),
        baseline: Vec::new(),
        live,
        calendar: false,
    }
}

/// Assesses one window's decisions.
pub fn assess_window<'a>(
    baseline: &Baseline,
    key: &WindowKey,
    window_ms: i64,
    decisions: impl Iterator<Item = &'a Decision>,
    conversions: &Conversions,
    o: &Options,
) -> Result<WindowHealth, HealthError> {
    let nf = baseline.features.len();
    let mut feature_counts: Vec<Vec<u64>> = baseline
        .features
        .iter()
        .map(|f| vec![0; f.bins.len()])
        .collect();
    let mut score = vec![0u64; SCORE_BINS];
    let mut tiers = [0u64; 3];
    let mut all = LabelTally::new();
    let seg_index: Vec<Option<usize>> = baseline
        .segments
        .iter()
        .map(|s| baseline.features.iter().position(|f| f.name == s.feature))
        .collect();
    let mut segs: Vec<(u64, LabelTally)> = baseline
        .segments
        .iter()
        .map(|_| (0, LabelTally::new()))
        .collect();
    let mut n = 0u64;
    for d in decisions {
        n += 1;
        for (j, f) in baseline.features.iter().enumerate() {
            let x = d.features.get(j).copied().unwrap_or(f32::NAN);
            feature_counts[j][f.bins.bin(x)] += 1;
        }
        if let Some(c) = score.get_mut(usize::from(d.ai_score)) {
            *c += 1;
        }
        tiers[d.tier_index()] += 1;
        let label = conversions.label(d, key.start, o.outcome_window_ms, o.as_of);
        all.add(d, label)?;
        for (k, s) in baseline.segments.iter().enumerate() {
            let hit = seg_index[k]
                .and_then(|j| d.features.get(j))
                .is_some_and(|&x| x == s.value);
            if hit {
                segs[k].0 += 1;
                segs[k].1.add(d, label)?;
            }
        }
    }
    let score = if baseline.judges_drift() {
        let labels = (0..score.len()).map(|s| s.to_string()).collect();
        distribution("ai_score", labels, &baseline.score, score, &o.gate)?
    } else {
        unjudged("ai_score", score)
    };
    let mut features = Vec::with_capacity(nf);
    for (f, c) in baseline.features.iter().zip(feature_counts) {
        let mut d = distribution(&f.name, f.bins.labels(), &f.shares, c, &o.gate)?;
        d.calendar = f.calendar;
        features.push(d);
    }
    let accuracy = all.judge(o, baseline.holdout.auc, baseline.holdout.ece);
    let segments = baseline
        .segments
        .iter()
        .zip(segs)
        .map(|(s, (count, t))| Segment {
            feature: s.feature.clone(),
            value: s.value,
            label: s.label.clone(),
            decisions: count,
            share: (n > 0).then(|| count as f64 / n as f64),
            train_share: s.train_share,
            accuracy: t.judge(o, s.holdout.auc, s.holdout.ece),
        })
        .collect();
    let mut h = WindowHealth {
        start: key.start,
        end: key.start.saturating_add(window_ms),
        model_version: key.model_version.clone(),
        arm: key.arm.clone(),
        decisions: n,
        score,
        features,
        tiers,
        baseline_tier_shares: baseline.holdout.tier_shares,
        accuracy,
        segments,
        alerts: Vec::new(),
    };
    h.alerts = alerts(&h, o);
    Ok(h)
}

/// Every window's alerts, in window order.
pub fn alerts_of(windows: &[WindowHealth]) -> Vec<Alert> {
    windows
        .iter()
        .flat_map(|w| w.alerts.iter().cloned())
        .collect()
}

/// Every window's health, in (start, model, arm) order.
pub fn assess(
    baseline: &Baseline,
    decisions: &Decisions,
    conversions: &Conversions,
    o: &Options,
) -> Result<Vec<WindowHealth>, HealthError> {
    decisions
        .windows()
        .map(|(k, w)| assess_window(baseline, k, decisions.window_ms(), w, conversions, o))
        .collect()
}

fn alerts(h: &WindowHealth, o: &Options) -> Vec<Alert> {
    let alert = |kind: &str, mut moved: Vec<Moved>| {
        moved.sort_by(|a, b| b.value.total_cmp(&a.value));
        let level = if moved.iter().any(|m| m.level == Level::Alert) {
            Level::Alert
        } else {
            Level::Warning
        };
        Alert {
            kind: kind.to_string(),
            level,
            window_start: h.start,
            window_end: h.end,
            model_version: h.model_version.clone(),
            arm: h.arm.clone(),
            moved,
        }
    };
    let mut out = Vec::new();
    let drifted: Vec<Moved> = std::iter::once(&h.score)
        .chain(&h.features)
        .filter(|d| !d.calendar && matches!(d.drift.level, Level::Warning | Level::Alert))
        .filter_map(|d| {
            Some(Moved {
                what: d.name.clone(),
                metric: "psi".into(),
                value: d.drift.psi?,
                baseline: 0.0,
                rows: d.drift.rows,
                level: d.drift.level,
            })
        })
        .collect();
    if !drifted.is_empty() {
        out.push(alert(DRIFT_DETECTED, drifted));
    }
    let a = &h.accuracy;
    if a.level == Level::Alert {
        let mut moved = Vec::new();
        if let (Some(v), Some(b)) = (a.live.auc.value, a.baseline_auc) {
            if v <= b - o.auc_drop {
                moved.push(Moved {
                    what: "auc".into(),
                    metric: "auc".into(),
                    value: v,
                    baseline: b,
                    rows: a.live.auc.rows,
                    level: Level::Alert,
                });
            }
        }
        if let (Some(v), Some(b)) = (a.live.calibration.ece, a.baseline_ece) {
            if v >= b * o.ece_factor {
                moved.push(Moved {
                    what: "ece".into(),
                    metric: "ece".into(),
                    value: v,
                    baseline: b,
                    rows: a.live.calibration.rows,
                    level: Level::Alert,
                });
            }
        }
        out.push(alert(PERFORMANCE_DEGRADED, moved));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Bundle;
    use crate::monitor::bins::Binning;
    use crate::monitor::window::DEFAULT_OUTCOME_WINDOW_MS;
    use crate::outcome::Outcome;
    use crate::outcome::OutcomeType;

    fn setup() -> (Baseline, Vec<Decision>) {
        let card = Bundle::embedded().unwrap().card;
        let b = Baseline::of(&card).unwrap().unwrap();
        // Decisions that follow the baseline: per feature, values drawn bin by bin in the
        // training shares (a bin's upper edge, or a code), scores likewise.
        let n = 4000usize;
        let pick = |shares: &[f64], i: usize| {
            let u = (i as f64 + 0.5) / n as f64;
            let mut acc = 0.0;
            shares
                .iter()
                .position(|s| {
                    acc += s;
                    u < acc
                })
                .unwrap_or(shares.len() - 1)
        };
        let value = |bins: &Binning, k: usize| match bins {
            Binning::Quantile { edges } => match edges.get(k) {
                Some(&e) => e,
                None => edges.last().map_or(0.0, |l| l + 1.0),
            },
            Binning::Codes { codes } => codes.get(k).copied().unwrap_or(-1.0),
        };
        let decisions = (0..n)
            .map(|i| {
                // A different permutation of 0..n per feature (multipliers prime to n) keeps
                // the features independent of each other and of the score.
                const M: [usize; 15] = [1, 3, 7, 9, 11, 13, 17, 19, 21, 23, 27, 29, 31, 33, 37];
                let features = b
                    .features
                    .iter()
                    .enumerate()
                    .map(|(j, f)| value(&f.bins, pick(&f.shares, (i * M[j % 15] + j) % n)))
                    .collect();
                let s = pick(&b.score, (i * 39) % n) as u8;
                Decision {
                    visitor_id: format!("v{i}"),
                    lead_id: None,
                    ts: 1_000 + i as i64,
                    model_version: "default".into(),
                    arm: None,
                    features,
                    probability: f64::from(s) / 100.0,
                    ai_score: s,
                    tier: if s >= 70 { "hot" } else { "cold" }.into(),
                }
            })
            .collect();
        (b, decisions)
    }

    fn options() -> Options {
        Options {
            gate: Gate::default(),
            outcome_window_ms: DEFAULT_OUTCOME_WINDOW_MS,
            as_of: i64::MAX / 2,
            auc_drop: AUC_DROP,
            ece_factor: ECE_FACTOR,
        }
    }

    /// Sets feature `name` to 0 in every decision; returns its index.
    fn zeroed(b: &Baseline, ds: &mut [Decision], name: &str) -> usize {
        let j = b.features.iter().position(|f| f.name == name).unwrap();
        ds.iter_mut().for_each(|d| d.features[j] = 0.0);
        j
    }

    /// Each of these decisions' visitors converted just after it.
    fn converted(ds: &[&Decision]) -> Conversions {
        let mut conv = Conversions::new(OutcomeType::Customer);
        for d in ds {
            conv.add(&Outcome {
                id: format!("o-{}", d.visitor_id),
                lead_id: None,
                visitor_id: Some(d.visitor_id.clone()),
                kind: OutcomeType::Customer,
                ts: d.ts + 1,
                value: None,
            });
        }
        conv
    }

    fn run(b: &Baseline, ds: &[Decision], conv: &Conversions) -> WindowHealth {
        let mut all = Decisions::new(86_400_000);
        ds.iter().cloned().for_each(|d| all.add(d));
        let mut h = assess(b, &all, conv, &options()).unwrap();
        assert_eq!(h.len(), 1);
        h.remove(0)
    }

    #[test]
    fn baseline_like_traffic_raises_nothing_and_a_shift_names_its_feature() {
        let (b, mut ds) = setup();
        let conv = Conversions::new(OutcomeType::Customer);
        let h = run(&b, &ds, &conv);
        assert_eq!(h.decisions, 4000);
        for d in std::iter::once(&h.score).chain(&h.features) {
            assert!(d.drift.psi.unwrap() < 0.1, "{}: {:?}", d.name, d.drift.psi);
        }
        assert!(h.alerts.is_empty(), "{:?}", h.alerts);
        // Every visit's page value zeroed.
        zeroed(&b, &mut ds, "page_value");
        let h = run(&b, &ds, &conv);
        let a = &h.alerts[0];
        assert_eq!((a.kind.as_str(), a.level), (DRIFT_DETECTED, Level::Alert));
        assert_eq!(a.moved[0].what, "page_value");
        assert_eq!(a.moved.len(), 1, "only the shifted feature: {:?}", a.moved);
    }

    #[test]
    fn a_calendar_feature_drifts_in_the_report_and_never_alerts() {
        let (b, mut ds) = setup();
        let j = b.features.iter().position(|f| f.name == "weekend").unwrap();
        assert!(b.features[j].calendar);
        assert!(!b
            .features
            .iter()
            .any(|f| f.name == "page_value" && f.calendar));
        // A window of Saturdays only.
        ds.iter_mut().for_each(|d| d.features[j] = 1.0);
        let h = run(&b, &ds, &Conversions::new(OutcomeType::Customer));
        let w = &h.features[j];
        assert!(w.calendar);
        assert_eq!(
            w.drift.level,
            Level::Alert,
            "reported as moved: {:?}",
            w.drift
        );
        assert!(h.alerts.is_empty(), "{:?}", h.alerts);
    }

    #[test]
    fn too_few_decisions_never_alert_and_shuffled_labels_degrade() {
        let (b, ds) = setup();
        let j = b
            .features
            .iter()
            .position(|f| f.name == "page_value")
            .unwrap();
        let mut few: Vec<Decision> = ds[..999].to_vec();
        few.iter_mut().for_each(|d| d.features[j] = 0.0);
        let h = run(&b, &few, &Conversions::new(OutcomeType::Customer));
        assert_eq!(h.features[j].drift.level, Level::InsufficientData);
        assert!(h.alerts.is_empty());
        // Labels independent of the score: AUC ≈ 0.5.
        let picked: Vec<&Decision> = ds.iter().skip(3).step_by(7).collect();
        let h = run(&b, &ds, &converted(&picked));
        assert_eq!(h.accuracy.level, Level::Alert, "{:?}", h.accuracy.live.auc);
        let a = h
            .alerts
            .iter()
            .find(|a| a.kind == PERFORMANCE_DEGRADED)
            .unwrap();
        assert!(a.moved.iter().any(|m| m.what == "auc"));
        assert!(h.accuracy.live.auc.positives > 500);
    }

    #[test]
    fn an_adopted_window_is_the_new_normal_and_keeps_the_accuracy_bar() {
        let (b, mut ds) = setup();
        let card = Bundle::embedded().unwrap().card;
        let conv = Conversions::new(OutcomeType::Customer);
        let j = zeroed(&b, &mut ds, "page_value");
        assert_eq!(run(&b, &ds, &conv).alerts.len(), 1, "a real shift");
        let refs: Vec<&Decision> = ds.iter().collect();
        let e = Baseline::adopt(&card, &b, &refs[..999], 1000).unwrap_err();
        assert!(e.to_string().contains("999 decisions"), "{e}");
        let adopted = Baseline::adopt(&card, &b, &refs, 1000).unwrap();
        assert_eq!(adopted.train_rows, 4000);
        assert_eq!(adopted.holdout, b.holdout, "the accuracy bar stays");
        assert_eq!(
            adopted.features[j].bins, b.features[j].bins,
            "the same bins"
        );
        let h = run(&adopted, &ds, &conv);
        assert!(h.alerts.is_empty(), "accepted: {:?}", h.alerts);
        assert!(h.features[j].drift.psi.unwrap().abs() < 1e-12);
        // The old normal is now the shift.
        let (_, old) = setup();
        let h = run(&adopted, &old, &conv);
        assert_eq!(h.alerts[0].moved[0].what, "page_value");
    }

    #[test]
    fn a_bundle_without_a_baseline_is_judged_on_accuracy_only() {
        let (_, ds) = setup();
        let live = Baseline::live_only();
        let high: Vec<&Decision> = ds.iter().filter(|d| d.ai_score >= 50).collect();
        let conv = converted(&high);
        let h = run(&live, &ds, &conv);
        assert!(h.features.is_empty() && h.score.baseline.is_empty());
        assert_eq!(h.score.live.iter().sum::<u64>(), 4000);
        assert_eq!(h.score.drift.level, Level::InsufficientData);
        assert_eq!(
            h.accuracy.level,
            Level::Ok,
            "measured, nothing to fall below"
        );
        assert!(h.accuracy.live.auc.value.unwrap() > 0.99);
        assert!(h.alerts.is_empty());
        // Adopting a window gives it distributions, its bins fitted on the window.
        let card = Bundle::embedded().unwrap().card;
        let refs: Vec<&Decision> = ds.iter().collect();
        let adopted = Baseline::adopt(&card, &live, &refs, 1000).unwrap();
        assert_eq!(adopted.features.len(), card.features.len());
        assert!(adopted.judges_drift() && adopted.holdout.auc.is_none());
        let h = run(&adopted, &ds, &conv);
        assert!(h.alerts.is_empty(), "{:?}", h.alerts);
    }
}
