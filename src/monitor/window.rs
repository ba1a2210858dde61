//! Windows of live traffic: which served scores a window judges, and how they are labelled.
//!
//! # The decision rule
//!
//! Windows are fixed spans of score time (`ts`), aligned to the Unix epoch (a day window starts at
//! 00:00 UTC), so imported history forms its windows exactly as live traffic would. Within a
//! window, each (model version, arm, visitor) counts **once, by its last score** — its *decision*.
//! Why not every score: a visitor is scored on every event, so most scores are of half-finished
//! visits, while the baseline (like every training row) is a visit at its decision time, the last
//! event of its episode ([`crate::dataset`]); counting every score would report drift on unchanged
//! traffic.
//!
//! **Labels** (the learning loop's rule, [`crate::dataset`], with W the outcome window): let t\* be
//! the time of the subject's first outcome of the label type (by its visitor id, or by the lead id
//! the score carried). The decision of a window starting at s, scored at d, is
//! - *converted before*: t\* ≤ s (it converted in an earlier window; not counted, as the dataset
//!   makes no rows after t\*);
//! - **positive**: s < t\* ≤ d + W;
//! - **negative**: otherwise, once d + W ≤ as-of (its window fully observed);
//! - *pending*: otherwise (counted, not labelled).
//!
//! One difference from the dataset: a score after t\* in the same window is still the decision
//! (the live consumer keeps only each visitor's latest score per window, and outcomes arrive after
//! the scores they follow), so a visit that converts and goes on browsing is judged on its later
//! state. Online Shoppers sessions end at the purchase.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use crate::log::ScoreRecord;
use crate::outcome::{Outcome, OutcomeType, Subject};

/// Default window: one day.
pub const DEFAULT_WINDOW_MS: i64 = 86_400_000;
/// Default outcome window W: 30 days after a decision.
pub const DEFAULT_OUTCOME_WINDOW_MS: i64 = 30 * 86_400_000;

/// One decision: a visitor's last score in a window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    /// The visitor.
    pub visitor_id: String,
    /// Its lead, where the score knew it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lead_id: Option<String>,
    /// Score time (ms).
    pub ts: i64,
    /// The bundle that scored.
    pub model_version: String,
    /// The experiment arm, where one ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arm: Option<String>,
    /// Feature values in the card's order (NaN where the record lacks one: the missing bin).
    pub features: Vec<f32>,
    /// Calibrated probability.
    pub probability: f64,
    /// 0–100.
    pub ai_score: u8,
    /// hot / warm / cold.
    pub tier: String,
}

impl Decision {
    /// A logged score as a decision, its features put in the order of `names` (the card's).
    pub fn of(r: &ScoreRecord, names: &[String]) -> Decision {
        Decision {
            visitor_id: r.visitor_id.clone(),
            lead_id: r.lead_id.clone(),
            ts: r.ts,
            model_version: r.model_version.clone(),
            arm: r.arm.clone(),
            features: names
                .iter()
                .map(|n| r.features.get(n).map_or(f32::NAN, |&v| v as f32))
                .collect(),
            probability: r.probability,
            ai_score: r.ai_score,
            tier: r.tier.clone(),
        }
    }

    /// 0 hot, 1 warm, 2 cold (anything else counts as cold).
    pub fn tier_index(&self) -> usize {
        match self.tier.as_str() {
            "hot" => 0,
            "warm" => 1,
            _ => 2,
        }
    }
}

/// The start of the window holding `ts`.
pub fn window_start(ts: i64, window_ms: i64) -> i64 {
    ts.div_euclid(window_ms.max(1)) * window_ms.max(1)
}

/// A window of one model version and arm.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct WindowKey {
    /// Window start (ms).
    pub start: i64,
    /// The bundle.
    pub model_version: String,
    /// The arm (`None` outside experiments).
    pub arm: Option<String>,
}

/// Every window's decisions: each (window, model, arm, visitor)'s latest score.
#[derive(Debug, Clone, Default)]
pub struct Decisions {
    window_ms: i64,
    windows: BTreeMap<WindowKey, BTreeMap<String, Decision>>,
}

impl Decisions {
    /// No scores yet; windows of `window_ms`.
    pub fn new(window_ms: i64) -> Decisions {
        Decisions {
            window_ms: window_ms.max(1),
            windows: BTreeMap::new(),
        }
    }

    /// Counts a score: it replaces its visitor's decision in its window unless that one is later
    /// (equal times: the later added wins, as the later logged score is).
    pub fn add(&mut self, d: Decision) {
        let key = WindowKey {
            start: window_start(d.ts, self.window_ms),
            model_version: d.model_version.clone(),
            arm: d.arm.clone(),
        };
        let w = self.windows.entry(key).or_default();
        match w.get(&d.visitor_id) {
            Some(old) if old.ts > d.ts => {}
            _ => {
                w.insert(d.visitor_id.clone(), d);
            }
        }
    }

    /// The window length (ms).
    pub fn window_ms(&self) -> i64 {
        self.window_ms
    }

    /// Windows in (start, model, arm) order, each with its decisions in visitor order.
    pub fn windows(&self) -> impl Iterator<Item = (&WindowKey, impl Iterator<Item = &Decision>)> {
        self.windows.iter().map(|(k, w)| (k, w.values()))
    }
}

/// Each subject's first outcome of the label type: t\*.
#[derive(Debug, Clone)]
pub struct Conversions {
    label: OutcomeType,
    visitors: HashMap<String, i64>,
    leads: HashMap<String, i64>,
}

/// A decision's label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Label {
    /// Converted within its outcome window.
    Positive,
    /// Did not, and the window is fully observed.
    Negative,
    /// Not yet known.
    Pending,
    /// Converted before this window: not counted.
    ConvertedBefore,
}

impl Conversions {
    /// None yet; outcomes of type `label` count.
    pub fn new(label: OutcomeType) -> Conversions {
        Conversions {
            label,
            visitors: HashMap::new(),
            leads: HashMap::new(),
        }
    }

    /// Counts an outcome (others than the label type are ignored).
    pub fn add(&mut self, o: &Outcome) {
        if o.kind != self.label {
            return;
        }
        let (map, id) = match o.subject() {
            Subject::Lead(l) => (&mut self.leads, l),
            Subject::Visitor(v) => (&mut self.visitors, v),
        };
        let t = map.entry(id.to_string()).or_insert(o.ts);
        *t = (*t).min(o.ts);
    }

    /// t\* of a decision's visitor or lead.
    pub fn first(&self, d: &Decision) -> Option<i64> {
        let v = self.visitors.get(&d.visitor_id).copied();
        let l = d.lead_id.as_ref().and_then(|l| self.leads.get(l).copied());
        match (v, l) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The label of a decision in the window starting at `start` (module docs); an outcome after
    /// `as_of` is not known yet.
    pub fn label(&self, d: &Decision, start: i64, outcome_window_ms: i64, as_of: i64) -> Label {
        let end = d.ts.saturating_add(outcome_window_ms);
        match self.first(d).filter(|t| *t <= as_of) {
            Some(t) if t <= start => Label::ConvertedBefore,
            Some(t) if t <= end => Label::Positive,
            _ if end <= as_of => Label::Negative,
            _ => Label::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(visitor: &str, ts: i64, score: u8) -> Decision {
        Decision {
            visitor_id: visitor.into(),
            lead_id: None,
            ts,
            model_version: "m".into(),
            arm: None,
            features: vec![],
            probability: f64::from(score) / 100.0,
            ai_score: score,
            tier: "cold".into(),
        }
    }

    fn outcome(visitor: &str, kind: OutcomeType, ts: i64) -> Outcome {
        Outcome {
            id: format!("{visitor}-{ts}"),
            lead_id: None,
            visitor_id: Some(visitor.into()),
            kind,
            ts,
            value: None,
        }
    }

    #[test]
    fn each_visitor_counts_once_per_window_by_its_last_score() {
        let day = DEFAULT_WINDOW_MS;
        let mut ds = Decisions::new(day);
        for (v, ts, s) in [
            ("a", 10, 5),
            ("a", 30, 9),
            ("a", 20, 7),
            ("b", 5, 1),
            ("a", day + 1, 3),
        ] {
            ds.add(d(v, ts, s));
        }
        let got: Vec<(i64, Vec<(String, u8)>)> = ds
            .windows()
            .map(|(k, w)| {
                (
                    k.start,
                    w.map(|d| (d.visitor_id.clone(), d.ai_score)).collect(),
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                (0, vec![("a".into(), 9), ("b".into(), 1)]),
                (day, vec![("a".into(), 3)])
            ]
        );
        assert_eq!(window_start(-1, day), -day);
    }

    #[test]
    fn labels_follow_the_outcome_window_and_ignore_other_types() {
        let w = 100;
        let mut c = Conversions::new(OutcomeType::Customer);
        c.add(&outcome("p", OutcomeType::Customer, 150));
        c.add(&outcome("p", OutcomeType::Customer, 120));
        c.add(&outcome("q", OutcomeType::Qualified, 60));
        c.add(&outcome("late", OutcomeType::Customer, 500));
        c.add(&outcome("early", OutcomeType::Customer, 0));
        let as_of = 1_000;
        assert_eq!(
            c.label(&d("p", 50, 0), 0, w, as_of),
            Label::Positive,
            "t* = 120 ≤ 150"
        );
        assert_eq!(
            c.label(&d("q", 50, 0), 0, w, as_of),
            Label::Negative,
            "not the label type"
        );
        assert_eq!(
            c.label(&d("late", 50, 0), 0, w, as_of),
            Label::Negative,
            "after d + W"
        );
        assert_eq!(
            c.label(&d("early", 50, 0), 0, w, as_of),
            Label::ConvertedBefore
        );
        assert_eq!(
            c.label(&d("n", 950, 0), 900, w, as_of),
            Label::Pending,
            "window open"
        );
        assert_eq!(
            c.label(&d("n", 900, 0), 900, w, as_of),
            Label::Negative,
            "d + W = as-of"
        );
        // As of 130 the outcome at 120 is known, as of 110 it is not (yet).
        assert_eq!(c.label(&d("p", 50, 0), 0, w, 130), Label::Positive);
        assert_eq!(c.label(&d("p", 50, 0), 0, w, 110), Label::Pending);
        assert_eq!(c.label(&d("p", 5, 0), 0, w, 110), Label::Negative);
    }
}
