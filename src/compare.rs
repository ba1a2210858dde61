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
//! - **Record**: [`record_in_card`] writes the verdict into the candidate's `card.json` under
//!   `metrics.publish_gate` by splicing text, so that every other byte of the file stays as the
//!   trainer wrote it (a parse-and-reserialize would reorder keys: serde_json's maps are sorted).
//!
//! This module does no I/O: the rows come from [`crate::dataset::csv`], which owns the dataset's
//! CSV (columns, writing, reading back).

use std::ops::Range;

use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::value::RawValue;
use serde_json::Value;

use crate::dataset::csv::{HeldOut, HeldOutError};
use crate::metrics::{self, CalibrationCurve, Metric, MetricsError, Rate, WILSON_Z};
use crate::model::card::Card;
use crate::model::error::ModelError;
use crate::score::{ScoreOptions, Scorer, Tier};

/// Where the verdict goes in the candidate card (under `metrics`).
pub const RECORD_KEY: &str = "publish_gate";

/// Why a comparison could not be made.
#[derive(Debug, thiserror::Error)]
pub enum CompareError {
    /// The held-out rows are unusable, or do not fit a bundle.
    #[error(transparent)]
    Rows(#[from] HeldOutError),
    /// A card field the gate reads is malformed, or the card cannot take the record.
    #[error("card.json: {0}")]
    Card(String),
    /// Scoring a row failed.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// A metric refused its input (a bug: probabilities come from the scorer).
    #[error(transparent)]
    Metrics(#[from] MetricsError),
    /// The card's JSON could not be parsed or written.
    #[error("card.json: {0}")]
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

/// What `--record` writes under `metrics.publish_gate`: the verdict and what it was judged on.
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

/// A JSON object's entries in file order, each value as its exact text.
struct Entries<'a>(Vec<(String, &'a RawValue)>);

impl<'de> Deserialize<'de> for Entries<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Entries<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Self::Value, A::Error> {
                let mut v = Vec::new();
                while let Some((k, raw)) = m.next_entry::<String, &'de RawValue>()? {
                    v.push((k, raw));
                }
                Ok(Entries(v))
            }
        }
        d.deserialize_map(V)
    }
}

impl<'a> Entries<'a> {
    fn parse(text: &'a str) -> Result<Entries<'a>, CompareError> {
        Ok(serde_json::from_str(text)?)
    }

    /// The one value under `key` (two are refused: which one counts would be the parser's choice).
    fn get(&self, key: &str) -> Result<Option<&'a RawValue>, CompareError> {
        let mut found = self.0.iter().filter(|(k, _)| k == key);
        match (found.next(), found.next()) {
            (Some((_, v)), None) => Ok(Some(v)),
            (None, _) => Ok(None),
            (Some(_), Some(_)) => Err(CompareError::Card(format!("key `{key}` appears twice"))),
        }
    }
}

/// Byte range of `part`, a slice borrowed from `text`.
fn span(text: &str, part: &str) -> Result<Range<usize>, CompareError> {
    let start = (part.as_ptr() as usize).wrapping_sub(text.as_ptr() as usize);
    let end = start.wrapping_add(part.len());
    match text.get(start..end) {
        Some(s) if s.as_ptr() == part.as_ptr() => Ok(start..end),
        _ => Err(CompareError::Card(
            "cannot locate a value in the card text".into(),
        )),
    }
}

/// The leading whitespace of the line that holds byte `pos`, and where that line starts.
fn line_indent(text: &str, pos: usize) -> (usize, &str) {
    let start = text[..pos].rfind('\n').map_or(0, |i| i + 1);
    let rest = &text[start..];
    let n = rest.len() - rest.trim_start_matches([' ', '\t']).len();
    (start, &rest[..n])
}

/// How the new value is laid out: compact, or pretty with an indent unit and the indent of the
/// line it starts on.
struct Layout {
    pretty: Option<(String, String)>,
    ascii: bool,
}

impl Layout {
    fn value<T: Serialize>(&self, v: &T) -> Result<String, CompareError> {
        let s = match &self.pretty {
            None => serde_json::to_string(v)?,
            Some((unit, base)) => {
                let mut out = Vec::new();
                let fmt = serde_json::ser::PrettyFormatter::with_indent(unit.as_bytes());
                let mut ser = serde_json::Serializer::with_formatter(&mut out, fmt);
                v.serialize(&mut ser)?;
                let s = String::from_utf8(out)
                    .map_err(|_| CompareError::Card("serialized JSON is not UTF-8".into()))?;
                // JSON strings hold no raw newline, so every newline is layout.
                s.replace('\n', &format!("\n{base}"))
            }
        };
        Ok(if self.ascii { escape_non_ascii(&s) } else { s })
    }

    fn newline(&self, indent: &str) -> String {
        match self.pretty {
            Some(_) => format!("\n{indent}"),
            None => " ".into(),
        }
    }

    /// `{"publish_gate": record}` as a new object whose braces sit at `outer` indent.
    fn object<T: Serialize>(&self, outer: &str, record: &T) -> Result<String, CompareError> {
        let key = format!("\"{RECORD_KEY}\": ");
        Ok(match &self.pretty {
            Some((unit, _)) => {
                let inner = format!("{outer}{unit}");
                let body = Layout {
                    pretty: Some((unit.clone(), inner.clone())),
                    ascii: self.ascii,
                }
                .value(record)?;
                format!("{{\n{inner}{key}{body}\n{outer}}}")
            }
            None => format!("{{{key}{}}}", self.value(record)?),
        })
    }
}

/// `\uXXXX` for every non-ASCII character (only strings can hold one), as a card written with
/// Python's `ensure_ascii` has them.
fn escape_non_ascii(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            let mut buf = [0u16; 2];
            for u in c.encode_utf16(&mut buf) {
                out.push_str(&format!("\\u{u:04x}"));
            }
        }
    }
    out
}

/// The card's JSON with `metrics.publish_gate` removed and an emptied `metrics` dropped: what must
/// not change when the record is written.
fn without_record(mut v: Value) -> Value {
    if let Some(top) = v.as_object_mut() {
        let drop_metrics = match top.get_mut("metrics") {
            Some(Value::Object(m)) => {
                m.remove(RECORD_KEY);
                m.is_empty()
            }
            Some(Value::Null) => true,
            _ => false,
        };
        if drop_metrics {
            top.remove("metrics");
        }
    }
    v
}

/// Writes `record` under `metrics.publish_gate` of a card's text, replacing an earlier record,
/// changing no other byte; the result is checked to parse as a card with nothing else changed.
pub fn record_in_card<T: Serialize>(text: &str, record: &T) -> Result<String, CompareError> {
    let top = Entries::parse(text)?;
    let open = text.len() - text.trim_start().len();
    let first = top
        .0
        .first()
        .ok_or_else(|| CompareError::Card("the card is an empty object".into()))?;
    let (first_line, unit) = line_indent(text, span(text, first.1.get())?.start);
    let pretty = first_line > open && !unit.is_empty();
    let ascii = text.is_ascii();
    let layout = |base: &str| Layout {
        pretty: pretty.then(|| (unit.to_string(), base.to_string())),
        ascii,
    };
    let key = format!("\"{RECORD_KEY}\": ");
    let (range, insert) = match top.get("metrics")? {
        None => {
            let last = top.0.last().map(|(_, v)| span(text, v.get())).transpose()?;
            let end = last.map_or(open + 1, |r| r.end);
            let l = layout(unit);
            let obj = l.object(unit, record)?;
            (end..end, format!(",{}\"metrics\": {obj}", l.newline(unit)))
        }
        Some(m) => {
            let m_span = span(text, m.get())?;
            let (_, m_indent) = line_indent(text, m_span.start);
            let inner_indent = format!("{m_indent}{unit}");
            match m.get().as_bytes().first() {
                Some(b'n') => (m_span, layout(m_indent).object(m_indent, record)?),
                Some(b'{') => {
                    let inner = Entries::parse(m.get())?;
                    match inner.get(RECORD_KEY)? {
                        Some(old) => {
                            let r = span(text, old.get())?;
                            let (_, ind) = line_indent(text, r.start);
                            (r, layout(ind).value(record)?)
                        }
                        None => match inner.0.last() {
                            Some((_, last)) => {
                                let r = span(text, last.get())?;
                                let first_inner = span(text, inner.0[0].1.get())?;
                                let (l0, _) = line_indent(text, m_span.start);
                                let (l1, ind) = line_indent(text, first_inner.start);
                                let ind = if l1 > l0 {
                                    ind.to_string()
                                } else {
                                    inner_indent
                                };
                                let l = layout(&ind);
                                let body = l.value(record)?;
                                (r.end..r.end, format!(",{}{key}{body}", l.newline(&ind)))
                            }
                            None => (m_span, layout(m_indent).object(m_indent, record)?),
                        },
                    }
                }
                _ => {
                    return Err(CompareError::Card(format!(
                        "metrics is {}, not an object: not overwritten",
                        m.get()
                    )))
                }
            }
        }
    };
    let out = format!("{}{insert}{}", &text[..range.start], &text[range.end..]);
    // The splice must be invisible but for the record: same JSON elsewhere, the record readable
    // back, still a valid card.
    let before: Value = serde_json::from_str(text)?;
    let after: Value = serde_json::from_str(&out)?;
    let written = after
        .get("metrics")
        .and_then(|m| m.get(RECORD_KEY))
        .cloned();
    if without_record(before) != without_record(after)
        // Through the same parser as the card (its float parsing is best-effort, not exact).
        || written != Some(serde_json::from_str(&serde_json::to_string(record)?)?)
    {
        return Err(CompareError::Card(
            "writing the record would change more than metrics.publish_gate".into(),
        ));
    }
    Card::parse(&out).map_err(|e| CompareError::Card(format!("the recorded card fails: {e}")))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::embedded;

    fn gate() -> Value {
        serde_json::json!({"verdict": "promote", "reasons": ["rows: ok ≥"], "n": 0.25})
    }

    /// The card minus the inserted text is the original: a pure insertion (or replacement).
    fn changed_span(before: &str, after: &str) -> (usize, usize) {
        let p = before
            .bytes()
            .zip(after.bytes())
            .take_while(|(a, b)| a == b)
            .count();
        let s = before
            .bytes()
            .rev()
            .zip(after.bytes().rev())
            .take_while(|(a, b)| a == b)
            .count()
            .min(before.len() - p)
            .min(after.len() - p);
        (p, before.len() - p - s)
    }

    #[test]
    fn record_is_inserted_into_the_default_card_and_nothing_else_changes() {
        let card = embedded::CARD;
        let out = record_in_card(card, &gate()).unwrap();
        let (at, removed) = changed_span(card, &out);
        assert_eq!(removed, 0, "a pure insertion");
        let inserted = &out[at..at + out.len() - card.len()];
        assert!(
            inserted.starts_with(",\n    \"publish_gate\": {\n      \"n\": 0.25,"),
            "{inserted}"
        );
        assert!(
            inserted.contains("\\u2265"),
            "ASCII card keeps ASCII: {inserted}"
        );
        let v: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["metrics"]["publish_gate"], gate());
        assert!(v["metrics"]["holdout"].is_object());
        // Recording again replaces the record only.
        let mut g2 = gate();
        g2["verdict"] = "keep_active".into();
        let out2 = record_in_card(&out, &g2).unwrap();
        let v2: Value = serde_json::from_str(&out2).unwrap();
        assert_eq!(v2["metrics"]["publish_gate"], g2);
        assert_eq!(out2.replace("keep_active", "promote"), out);
        Card::parse(&out2).unwrap();
    }

    fn tiny_card(metrics: Option<&str>, pretty: bool) -> String {
        let mut v: Value = serde_json::from_str(embedded::CARD).unwrap();
        let o = v.as_object_mut().unwrap();
        o.remove("metrics");
        let mut text = if pretty {
            serde_json::to_string_pretty(&v).unwrap()
        } else {
            serde_json::to_string(&v).unwrap()
        };
        if let Some(m) = metrics {
            let (end, sep) = if pretty {
                (text.rfind("\n}").unwrap(), ",\n  ")
            } else {
                (text.rfind('}').unwrap(), ",")
            };
            text.insert_str(end, &format!("{sep}\"metrics\": {m}"));
        }
        text
    }

    #[test]
    fn record_handles_absent_null_empty_and_compact_metrics() {
        for pretty in [true, false] {
            for m in [None, Some("null"), Some("{}"), Some("{\"a\": 1}")] {
                let card = tiny_card(m, pretty);
                let out = record_in_card(&card, &gate())
                    .unwrap_or_else(|e| panic!("{m:?} pretty {pretty}: {e}"));
                let v: Value = serde_json::from_str(&out).unwrap();
                assert_eq!(v["metrics"]["publish_gate"], gate(), "{m:?}");
                if m == Some("{\"a\": 1}") {
                    assert_eq!(v["metrics"]["a"], 1);
                    assert_eq!(changed_span(&card, &out).1, 0, "insertion only");
                }
                if pretty {
                    assert!(
                        out.contains("\n    \"publish_gate\": {\n"),
                        "{m:?}: {}",
                        &out[out.len() - 300..]
                    );
                } else {
                    assert!(!out.contains('\n'), "compact stays compact");
                }
                Card::parse(&out).unwrap();
            }
        }
    }

    #[test]
    fn record_refuses_what_it_cannot_write_safely() {
        let card = tiny_card(Some("[1]"), true);
        assert!(matches!(
            record_in_card(&card, &gate()),
            Err(CompareError::Card(_))
        ));
        let card = tiny_card(Some("{\"publish_gate\": 1, \"publish_gate\": 2}"), true);
        assert!(record_in_card(&card, &gate()).is_err());
        assert!(record_in_card("[]", &gate()).is_err());
        assert!(record_in_card("{}", &gate()).is_err());
        // Not a valid card after the splice: refused, not written.
        assert!(record_in_card("{\"x\": 1}", &gate()).is_err());
    }

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
