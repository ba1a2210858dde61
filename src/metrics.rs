//! Model metrics: pure functions over probabilities, labels and counts (no I/O), so that the
//! publish gate (`leadscore compare`, [`crate::compare`]) and the live model-health monitor judge a
//! model by the same numbers.
//!
//! Every metric reports its sample size (`rows`, `positives`) beside its value, and a value that is
//! undefined on its sample (an AUC without positives or without negatives, any mean over no rows) is
//! `None` — never NaN — so that JSON output stays valid and a reader cannot mistake "unknown" for a
//! number. Probabilities outside [0, 1] (or NaN) are refused with the index of the first bad one.
//!
//! Definitions (each checked against scikit-learn on the same numbers by the unit tests, from
//! `tests/fixtures/metrics/reference.json`, made by `tests/fixtures/metrics/make_reference.py`):
//! - [`auc`]: the exact ROC AUC, as the Mann–Whitney U statistic over positive × negative pairs,
//!   a tied pair counting one half (= sklearn's `roc_auc_score`). O(n log n): one sort.
//! - [`auc_binned`]: the same statistic from counts of positives and negatives per integer score
//!   (0..=100 for `ai_score`, [`ScoreCounts`]): exact for integer scores, so it equals [`auc`] on them.
//! - [`brier`]: mean (p − y)² (= `brier_score_loss`).
//! - [`log_loss`]: −mean(y·ln p + (1 − y)·ln(1 − p)) with p clipped to [1e-15, 1 − 1e-15]
//!   ([`LOG_LOSS_EPS`]: sklearn's `log_loss` default `eps` before 1.3; sklearn ≥ 1.5 clips at the
//!   float64 epsilon 2.2e-16 instead — the two differ only for p within 1e-15 of 0 or 1).
//! - [`calibration`]: the calibration curve over [`ECE_BINS`] equal-width bins and the expected
//!   calibration error, ECE = Σ_b (n_b / n) · |mean p_b − positive rate_b|. Bin b (0-based) holds
//!   b/10 < p ≤ (b+1)/10, the first also p = 0: sklearn's `calibration_curve(strategy="uniform")`
//!   binning (its edges are `np.linspace`'s, which differ from the doubles k/10 by one ulp at 0.3,
//!   0.6 and 0.7; ours are k/10) and the ECE of Naeini et al. (2015) / Guo et al. (2017).
//! - [`wilson`]: the Wilson score interval of a rate, z = [`WILSON_Z`] (1.96) by default.
//! - [`auc_variance_binned`]: DeLong et al. (1988)'s variance of the AUC of integer scores, from
//!   their counts (the reference script writes it out from its definition, pair by pair), and
//!   [`auc_difference`]: two AUCs of independent samples (two experiment arms) compared with it.
//! - [`chi_square_sf`]: the χ² survival function (= SciPy's `chi2.sf`), for the experiments'
//!   sample-ratio-mismatch test.

use serde::{Deserialize, Serialize};

/// Clip of probabilities in [`log_loss`]: p ∈ [ε, 1 − ε], so a confident miss costs ln(1/ε) ≈ 34.5
/// instead of infinity.
pub const LOG_LOSS_EPS: f64 = 1e-15;

/// Number of equal-width probability bins of [`calibration`] (and so of the ECE).
pub const ECE_BINS: usize = 10;

/// Two-sided normal quantile for a 95 % interval (the conventional rounding of 1.95996…).
pub const Z95: f64 = 1.96;

/// The normal quantile of a 95 % Wilson interval.
pub const WILSON_Z: f64 = Z95;

/// Number of integer scores [`ScoreCounts`] holds: `ai_score` 0..=100.
pub const SCORE_BINS: usize = 101;

/// Why a metric could not be computed: the input breaks the metric's domain.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MetricsError {
    /// Scores and labels differ in length.
    #[error("{scores} scores but {labels} labels")]
    LengthMismatch {
        /// Number of scores (or of positive counts).
        scores: usize,
        /// Number of labels (or of negative counts).
        labels: usize,
    },
    /// A probability is NaN or outside [0, 1].
    #[error("probability {value} at index {index} is not within [0, 1]")]
    NotProbability {
        /// Position in the input.
        index: usize,
        /// The value.
        value: f64,
    },
    /// A score to rank is NaN or infinite.
    #[error("score {value} at index {index} is not finite")]
    NotFinite {
        /// Position in the input.
        index: usize,
        /// The value.
        value: f64,
    },
    /// An integer score beyond [`SCORE_BINS`] − 1.
    #[error("score {0} is above 100")]
    ScoreRange(u32),
    /// More positives than rows for a rate.
    #[error("{positives} positives out of {rows} rows")]
    Counts {
        /// Positives.
        positives: u64,
        /// Rows.
        rows: u64,
    },
    /// A Wilson z that is not a finite positive number.
    #[error("z = {0} must be finite and positive")]
    BadZ(f64),
}

/// A metric's value and the sample it was computed on; why: a number without its sample size
/// cannot be judged (an AUC on 30 positives is noise).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Metric {
    /// The value, `None` where undefined on this sample.
    pub value: Option<f64>,
    /// Rows.
    pub rows: u64,
    /// Rows labelled positive.
    pub positives: u64,
}

/// One probability bin of the calibration curve.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CalibrationBin {
    /// Lower edge (exclusive, except 0 for the first bin).
    pub lower: f64,
    /// Upper edge (inclusive).
    pub upper: f64,
    /// Rows whose probability falls in the bin.
    pub rows: u64,
    /// Positives among them.
    pub positives: u64,
    /// Mean predicted probability (`None` for an empty bin).
    pub mean_p: Option<f64>,
    /// Observed positive rate (`None` for an empty bin).
    pub rate: Option<f64>,
}

/// The calibration curve and its expected calibration error.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CalibrationCurve {
    /// Expected calibration error (`None` without rows).
    pub ece: Option<f64>,
    /// Rows.
    pub rows: u64,
    /// Positives.
    pub positives: u64,
    /// The [`ECE_BINS`] bins in probability order, empty ones included.
    pub bins: Vec<CalibrationBin>,
}

/// A rate with its Wilson score interval; why: a tier's conversion on 40 rows means little without
/// its interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Rate {
    /// Rows.
    pub rows: u64,
    /// Positives.
    pub positives: u64,
    /// positives / rows (`None` without rows).
    pub rate: Option<f64>,
    /// Lower end of the interval.
    pub low: Option<f64>,
    /// Upper end of the interval.
    pub high: Option<f64>,
}

/// Counts of positives and negatives per integer score 0..=100: what a live monitor can keep per
/// period in constant space and still get the exact AUC of integer scores ([`ScoreCounts::auc`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScoreCounts {
    positives: Vec<u64>,
    negatives: Vec<u64>,
}

impl Default for ScoreCounts {
    fn default() -> Self {
        ScoreCounts::new()
    }
}

impl ScoreCounts {
    /// No rows yet.
    pub fn new() -> ScoreCounts {
        ScoreCounts {
            positives: vec![0; SCORE_BINS],
            negatives: vec![0; SCORE_BINS],
        }
    }

    /// Counts one scored row with its label.
    pub fn add(&mut self, score: u8, positive: bool) -> Result<(), MetricsError> {
        let i = usize::from(score);
        let side = if positive {
            &mut self.positives
        } else {
            &mut self.negatives
        };
        let n = side
            .get_mut(i)
            .ok_or(MetricsError::ScoreRange(u32::from(score)))?;
        *n = n.saturating_add(1);
        Ok(())
    }

    /// Adds another period's counts (the AUC of the union).
    pub fn merge(&mut self, other: &ScoreCounts) {
        for (a, b) in self.positives.iter_mut().zip(&other.positives) {
            *a = a.saturating_add(*b);
        }
        for (a, b) in self.negatives.iter_mut().zip(&other.negatives) {
            *a = a.saturating_add(*b);
        }
    }

    /// Positives per score, index = score.
    pub fn positives(&self) -> &[u64] {
        &self.positives
    }

    /// Negatives per score, index = score.
    pub fn negatives(&self) -> &[u64] {
        &self.negatives
    }

    /// The exact AUC of the counted rows (ties within a score count half).
    pub fn auc(&self) -> Metric {
        mann_whitney(
            self.positives
                .iter()
                .copied()
                .zip(self.negatives.iter().copied()),
        )
    }

    /// DeLong's variance of [`ScoreCounts::auc`] ([`auc_variance_binned`]).
    pub fn auc_variance(&self) -> Option<f64> {
        delong_variance(&self.positives, &self.negatives)
    }
}

/// An AUC minus another measured on an independent sample (another experiment arm's visitors),
/// with the standard error of the difference (DeLong's variances added) and its 95 % normal
/// interval; why: a live gate that says how sure it is.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AucDifference {
    /// The difference.
    pub value: f64,
    /// Its standard error.
    pub se: f64,
    /// Lower end of the 95 % interval.
    pub low: f64,
    /// Upper end of the 95 % interval.
    pub high: f64,
}

/// `b`'s AUC minus `a`'s, the two counted on independent samples; `None` where either AUC or its
/// variance is undefined (fewer than two positives or two negatives).
pub fn auc_difference(a: &ScoreCounts, b: &ScoreCounts) -> Option<AucDifference> {
    let value = b.auc().value? - a.auc().value?;
    let se = (a.auc_variance()? + b.auc_variance()?).sqrt();
    Some(AucDifference {
        value,
        se,
        low: value - Z95 * se,
        high: value + Z95 * se,
    })
}

/// DeLong, DeLong & Clarke-Pearson (1988)'s variance of the AUC from counts per integer score
/// (index = score, ascending): with ψ(x, y) = 1, ½ or 0 as a positive's score x is above, equal
/// to or below a negative's y, each positive's V10 = mean ψ over the negatives and each negative's
/// V01 = mean ψ over the positives, var = s²(V10)/m + s²(V01)/n (sample variances, m positives,
/// n negatives). Rows of one score share their V, so one pass over the scores is exact. `None`
/// with fewer than two positives or two negatives.
pub fn auc_variance_binned(
    positives: &[u64],
    negatives: &[u64],
) -> Result<Option<f64>, MetricsError> {
    check_lengths(positives.len(), negatives.len())?;
    Ok(delong_variance(positives, negatives))
}

fn delong_variance(positives: &[u64], negatives: &[u64]) -> Option<f64> {
    let m: u64 = positives.iter().sum();
    let n: u64 = negatives.iter().sum();
    if m < 2 || n < 2 {
        return None;
    }
    let (mf, nf) = (m as f64, n as f64);
    let auc = mann_whitney(positives.iter().copied().zip(negatives.iter().copied())).value?;
    let (mut below, mut above) = (0u64, m); // negatives below this score; positives above it
    let (mut s10, mut s01) = (0.0, 0.0);
    for (&p, &q) in positives.iter().zip(negatives) {
        above -= p;
        let v10 = (below as f64 + 0.5 * q as f64) / nf;
        let v01 = (above as f64 + 0.5 * p as f64) / mf;
        s10 += p as f64 * (v10 - auc).powi(2);
        s01 += q as f64 * (v01 - auc).powi(2);
        below += q;
    }
    Some(s10 / (mf - 1.0) / mf + s01 / (nf - 1.0) / nf)
}

/// Mann–Whitney over groups of tied scores given in ascending score order: each (positives,
/// negatives) pair is one score value. 2U is accumulated in integers, so the result is exact up
/// to the final division.
fn mann_whitney(groups: impl Iterator<Item = (u64, u64)>) -> Metric {
    let (mut pos, mut neg, mut u2) = (0u64, 0u64, 0u128);
    for (p, n) in groups {
        // Each positive beats every negative below it (2 halves) and ties those beside it (1 half).
        u2 += 2 * u128::from(p) * u128::from(neg) + u128::from(p) * u128::from(n);
        pos += p;
        neg += n;
    }
    let pairs = 2 * u128::from(pos) * u128::from(neg);
    Metric {
        value: (pairs > 0).then(|| u2 as f64 / pairs as f64),
        rows: pos + neg,
        positives: pos,
    }
}

fn check_lengths(scores: usize, labels: usize) -> Result<(), MetricsError> {
    if scores == labels {
        Ok(())
    } else {
        Err(MetricsError::LengthMismatch { scores, labels })
    }
}

fn check_probabilities(p: &[f64], y: &[bool]) -> Result<(), MetricsError> {
    check_lengths(p.len(), y.len())?;
    match p.iter().position(|v| !(0.0..=1.0).contains(v)) {
        Some(index) => Err(MetricsError::NotProbability {
            index,
            value: p[index],
        }),
        None => Ok(()),
    }
}

fn count_positives(y: &[bool]) -> u64 {
    y.iter().filter(|&&b| b).count() as u64
}

/// ROC AUC of any finite scores (higher = more likely positive): exact, ties count half.
pub fn auc(scores: &[f64], labels: &[bool]) -> Result<Metric, MetricsError> {
    check_lengths(scores.len(), labels.len())?;
    if let Some(index) = scores.iter().position(|s| !s.is_finite()) {
        return Err(MetricsError::NotFinite {
            index,
            value: scores[index],
        });
    }
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_unstable_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    let mut groups = Vec::new();
    let mut i = 0;
    while i < order.len() {
        let s = scores[order[i]];
        let (mut p, mut n) = (0u64, 0u64);
        // -0.0 and 0.0 are one score (total_cmp would split them).
        while i < order.len() && scores[order[i]] == s {
            if labels[order[i]] {
                p += 1;
            } else {
                n += 1;
            }
            i += 1;
        }
        groups.push((p, n));
    }
    Ok(mann_whitney(groups.into_iter()))
}

/// ROC AUC from counts per integer score (index = score, ascending): exact for integer scores.
pub fn auc_binned(positives: &[u64], negatives: &[u64]) -> Result<Metric, MetricsError> {
    check_lengths(positives.len(), negatives.len())?;
    Ok(mann_whitney(
        positives.iter().copied().zip(negatives.iter().copied()),
    ))
}

/// Brier score: mean squared error of the probabilities.
pub fn brier(p: &[f64], y: &[bool]) -> Result<Metric, MetricsError> {
    check_probabilities(p, y)?;
    let sum: f64 = p
        .iter()
        .zip(y)
        .map(|(&p, &y)| {
            let d = p - f64::from(u8::from(y));
            d * d
        })
        .sum();
    Ok(mean(sum, p.len(), count_positives(y)))
}

/// Log loss (cross-entropy, natural log), p clipped to [[`LOG_LOSS_EPS`], 1 − [`LOG_LOSS_EPS`]].
pub fn log_loss(p: &[f64], y: &[bool]) -> Result<Metric, MetricsError> {
    check_probabilities(p, y)?;
    let sum: f64 = p
        .iter()
        .zip(y)
        .map(|(&p, &y)| {
            let p = p.clamp(LOG_LOSS_EPS, 1.0 - LOG_LOSS_EPS);
            -if y { p.ln() } else { (1.0 - p).ln() }
        })
        .sum();
    Ok(mean(sum, p.len(), count_positives(y)))
}

fn mean(sum: f64, rows: usize, positives: u64) -> Metric {
    Metric {
        value: (rows > 0).then(|| sum / rows as f64),
        rows: rows as u64,
        positives,
    }
}

/// Index of p's calibration bin: b/10 < p ≤ (b+1)/10, with 0 in the first bin.
pub fn calibration_bin(p: f64) -> usize {
    (1..ECE_BINS)
        .take_while(|&k| (k as f64 / ECE_BINS as f64) < p)
        .count()
}

/// Calibration curve over [`ECE_BINS`] equal-width bins, and the expected calibration error.
pub fn calibration(p: &[f64], y: &[bool]) -> Result<CalibrationCurve, MetricsError> {
    check_probabilities(p, y)?;
    let mut sums = [0f64; ECE_BINS];
    let mut rows = [0u64; ECE_BINS];
    let mut pos = [0u64; ECE_BINS];
    for (&p, &y) in p.iter().zip(y) {
        let b = calibration_bin(p);
        sums[b] += p;
        rows[b] += 1;
        pos[b] += u64::from(y);
    }
    Ok(curve(&sums, &rows, &pos))
}

/// The curve and ECE from per-bin sums of p, rows and positives (also what the live monitor keeps).
pub fn curve(
    sums: &[f64; ECE_BINS],
    rows: &[u64; ECE_BINS],
    pos: &[u64; ECE_BINS],
) -> CalibrationCurve {
    let total: u64 = rows.iter().sum();
    let n = total as f64;
    let mut ece = 0.0;
    let bins = (0..ECE_BINS)
        .map(|b| {
            let (mean_p, rate) = if rows[b] > 0 {
                let c = rows[b] as f64;
                let (m, r) = (sums[b] / c, pos[b] as f64 / c);
                ece += c / n * (m - r).abs();
                (Some(m), Some(r))
            } else {
                (None, None)
            };
            CalibrationBin {
                lower: b as f64 / ECE_BINS as f64,
                upper: (b + 1) as f64 / ECE_BINS as f64,
                rows: rows[b],
                positives: pos[b],
                mean_p,
                rate,
            }
        })
        .collect();
    CalibrationCurve {
        ece: (total > 0).then_some(ece),
        rows: total,
        positives: pos.iter().sum(),
        bins,
    }
}

/// [`wilson`] at [`WILSON_Z`] for counts that cannot break its domain (positives ≤ rows, as counted);
/// a pair that does gets no rate and no interval.
pub fn wilson95(positives: u64, rows: u64) -> Rate {
    wilson(positives, rows, WILSON_Z).unwrap_or(Rate {
        rows,
        positives,
        rate: None,
        low: None,
        high: None,
    })
}

/// Wilson score interval of positives / rows at normal quantile `z` ([`WILSON_Z`] for 95 %).
pub fn wilson(positives: u64, rows: u64, z: f64) -> Result<Rate, MetricsError> {
    if positives > rows {
        return Err(MetricsError::Counts { positives, rows });
    }
    if !(z.is_finite() && z > 0.0) {
        return Err(MetricsError::BadZ(z));
    }
    if rows == 0 {
        return Ok(Rate {
            rows,
            positives,
            rate: None,
            low: None,
            high: None,
        });
    }
    let n = rows as f64;
    let phat = positives as f64 / n;
    let z2 = z * z;
    let denom = 1.0 + z2 / n;
    let center = (phat + z2 / (2.0 * n)) / denom;
    let half = z / denom * (phat * (1.0 - phat) / n + z2 / (4.0 * n * n)).sqrt();
    Ok(Rate {
        rows,
        positives,
        rate: Some(phat),
        low: Some((center - half).max(0.0)),
        high: Some((center + half).min(1.0)),
    })
}

/// P(X ≥ x) for X χ²-distributed with `df` degrees of freedom: the regularized upper incomplete
/// gamma Q(df/2, x/2), by its series below a + 1 and its continued fraction above (Numerical
/// Recipes §6.2), ln Γ by Lanczos (g = 7, n = 9). Within 1e-12 of SciPy's `chi2.sf` on the tests'
/// cases. `None` for df = 0 or x not finite and ≥ 0.
pub fn chi_square_sf(x: f64, df: u32) -> Option<f64> {
    if df == 0 || !x.is_finite() || x < 0.0 {
        return None;
    }
    let (a, x) = (f64::from(df) / 2.0, x / 2.0);
    if x == 0.0 {
        return Some(1.0);
    }
    let front = (-x + a * x.ln() - ln_gamma(a)).exp();
    if x < a + 1.0 {
        // P(a, x) = e^{-x} x^a / Γ(a) · Σ x^n / (a (a+1) … (a+n))
        let (mut term, mut sum, mut ap) = (1.0 / a, 1.0 / a, a);
        for _ in 0..1000 {
            ap += 1.0;
            term *= x / ap;
            sum += term;
            if term.abs() < sum.abs() * 1e-16 {
                break;
            }
        }
        Some((1.0 - front * sum).clamp(0.0, 1.0))
    } else {
        // Lentz's method for Q(a, x) = e^{-x} x^a / Γ(a) · 1/(x+1-a- 1·(1-a)/(x+3-a- …))
        let tiny = 1e-300;
        let mut b = x + 1.0 - a;
        let mut c = 1.0 / tiny;
        let mut d = 1.0 / b;
        let mut h = d;
        for i in 1..1000 {
            let an = -f64::from(i) * (f64::from(i) - a);
            b += 2.0;
            d = an * d + b;
            if d.abs() < tiny {
                d = tiny;
            }
            c = b + an / c;
            if c.abs() < tiny {
                c = tiny;
            }
            d = 1.0 / d;
            let delta = d * c;
            h *= delta;
            if (delta - 1.0).abs() < 1e-16 {
                break;
            }
        }
        Some((front * h).clamp(0.0, 1.0))
    }
}

/// ln Γ(z) for z > 0 (Lanczos approximation, g = 7; relative error below 1e-15).
fn ln_gamma(z: f64) -> f64 {
    const G: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if z < 0.5 {
        // Reflection: Γ(z) Γ(1 − z) = π / sin(πz).
        return (std::f64::consts::PI / (std::f64::consts::PI * z).sin()).ln() - ln_gamma(1.0 - z);
    }
    let z = z - 1.0;
    let mut a = G[0];
    let t = z + 7.5;
    for (i, g) in G.iter().enumerate().skip(1) {
        a += g / (z + i as f64);
    }
    0.5 * (2.0 * std::f64::consts::PI).ln() + (z + 0.5) * t.ln() - t + a.ln()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `tests/fixtures/metrics/reference.json`: inputs and sklearn's / Python's answers.
    #[derive(Deserialize)]
    struct Reference {
        cases: Vec<Case>,
        wilson: Vec<WilsonCase>,
    }

    #[derive(Deserialize)]
    struct Case {
        name: String,
        p: Vec<f64>,
        y: Vec<u8>,
        auc: f64,
        brier: f64,
        log_loss: f64,
        ece: f64,
        /// sklearn's calibration_curve: non-empty bins only.
        prob_true: Vec<f64>,
        prob_pred: Vec<f64>,
        bin_counts: Vec<u64>,
        /// ai_score = round(100 p), half away from zero.
        scores: Vec<u8>,
        /// sklearn's AUC of those integer scores.
        auc_int: f64,
        /// DeLong's variance of that AUC, from its definition (pair by pair).
        auc_int_var: f64,
    }

    #[derive(Deserialize)]
    struct WilsonCase {
        positives: u64,
        rows: u64,
        z: f64,
        low: f64,
        high: f64,
        /// "formula" (the script's own) or "scipy" (scipy.stats.binomtest's proportion_ci).
        source: String,
    }

    fn reference() -> Reference {
        let text = include_str!("../tests/fixtures/metrics/reference.json");
        serde_json::from_str(text).unwrap()
    }

    fn close(a: f64, b: f64, tol: f64, what: &str) {
        assert!(
            (a - b).abs() <= tol,
            "{what}: {a} vs {b} (|Δ| {:e})",
            (a - b).abs()
        );
    }

    #[test]
    fn metrics_equal_sklearn_on_the_reference_cases() {
        let r = reference();
        assert!(r.cases.len() >= 5);
        for c in &r.cases {
            let y: Vec<bool> = c.y.iter().map(|&v| v == 1).collect();
            let pos = y.iter().filter(|&&b| b).count() as u64;
            let name = &c.name;
            let a = auc(&c.p, &y).unwrap();
            close(a.value.unwrap(), c.auc, 1e-12, &format!("{name} auc"));
            assert_eq!((a.rows, a.positives), (c.p.len() as u64, pos), "{name}");
            let b = brier(&c.p, &y).unwrap();
            close(b.value.unwrap(), c.brier, 1e-12, &format!("{name} brier"));
            let l = log_loss(&c.p, &y).unwrap();
            close(
                l.value.unwrap(),
                c.log_loss,
                1e-10,
                &format!("{name} log loss"),
            );
            let cal = calibration(&c.p, &y).unwrap();
            close(cal.ece.unwrap(), c.ece, 1e-12, &format!("{name} ece"));
            assert_eq!((cal.rows, cal.positives), (c.p.len() as u64, pos));
            let full: Vec<&CalibrationBin> = cal.bins.iter().filter(|b| b.rows > 0).collect();
            assert_eq!(full.len(), c.prob_true.len(), "{name}: non-empty bins");
            assert_eq!(cal.bins.len(), ECE_BINS);
            for (i, bin) in full.iter().enumerate() {
                assert_eq!(bin.rows, c.bin_counts[i], "{name} bin {i}");
                close(
                    bin.rate.unwrap(),
                    c.prob_true[i],
                    1e-12,
                    &format!("{name} rate {i}"),
                );
                close(
                    bin.mean_p.unwrap(),
                    c.prob_pred[i],
                    1e-12,
                    &format!("{name} mean p {i}"),
                );
            }
            // Integer scores: the binned AUC is sklearn's on round(100 p), and equals ours row by row.
            let mut counts = ScoreCounts::new();
            let mut ints = Vec::new();
            for ((&p, &y), &s) in c.p.iter().zip(&y).zip(&c.scores) {
                assert_eq!((p * 100.0).round() as u8, s, "{name}: ai_score of {p}");
                counts.add(s, y).unwrap();
                ints.push(f64::from(s));
            }
            let binned = counts.auc();
            close(
                binned.value.unwrap(),
                c.auc_int,
                1e-12,
                &format!("{name} binned auc"),
            );
            let rows = auc(&ints, &y).unwrap();
            assert_eq!(
                binned, rows,
                "{name}: binned vs row-level AUC on integer scores"
            );
            close(
                counts.auc_variance().unwrap(),
                c.auc_int_var,
                1e-15,
                &format!("{name} DeLong variance"),
            );
        }
    }

    #[test]
    fn auc_differences_add_the_arms_variances_and_need_two_of_each_class() {
        let r = reference();
        let counts = |c: &Case| {
            let mut k = ScoreCounts::new();
            for (&s, &y) in c.scores.iter().zip(&c.y) {
                k.add(s, y == 1).unwrap();
            }
            k
        };
        let (a, b) = (counts(&r.cases[0]), counts(&r.cases[1]));
        let d = auc_difference(&a, &b).unwrap();
        close(
            d.value,
            r.cases[1].auc_int - r.cases[0].auc_int,
            1e-12,
            "difference",
        );
        let se = (r.cases[0].auc_int_var + r.cases[1].auc_int_var).sqrt();
        close(d.se, se, 1e-12, "se");
        close(d.low, d.value - 1.96 * se, 1e-12, "low");
        close(d.high, d.value + 1.96 * se, 1e-12, "high");
        // An arm against itself: no difference, an interval around 0.
        let same = auc_difference(&a, &a).unwrap();
        assert_eq!(same.value, 0.0);
        assert!(same.low < 0.0 && same.high > 0.0);
        // One positive: the sample variance of the positives' V10 is undefined.
        let mut one = ScoreCounts::new();
        for (s, y) in [(90, true), (10, false), (20, false)] {
            one.add(s, y).unwrap();
        }
        assert_eq!(one.auc_variance(), None);
        assert_eq!(auc_difference(&a, &one), None);
        assert_eq!(
            auc_variance_binned(&[0, 1], &[1]),
            Err(MetricsError::LengthMismatch {
                scores: 2,
                labels: 1
            })
        );
    }

    #[test]
    fn wilson_equals_python_and_scipy() {
        let r = reference();
        assert!(r.wilson.iter().any(|w| w.source == "scipy"));
        for w in &r.wilson {
            let got = wilson(w.positives, w.rows, w.z).unwrap();
            let what = format!("{}/{} z={} ({})", w.positives, w.rows, w.z, w.source);
            close(got.low.unwrap(), w.low, 1e-12, &what);
            close(got.high.unwrap(), w.high, 1e-12, &what);
            assert_eq!(got.rate, Some(w.positives as f64 / w.rows as f64));
        }
    }

    #[test]
    fn undefined_values_are_none_never_nan() {
        let none = |m: Metric| assert_eq!(m.value, None);
        none(auc(&[], &[]).unwrap());
        none(auc(&[0.1, 0.9], &[true, true]).unwrap());
        none(auc(&[0.1, 0.9], &[false, false]).unwrap());
        none(brier(&[], &[]).unwrap());
        none(log_loss(&[], &[]).unwrap());
        none(ScoreCounts::new().auc());
        let cal = calibration(&[], &[]).unwrap();
        assert_eq!(cal.ece, None);
        assert!(cal
            .bins
            .iter()
            .all(|b| b.mean_p.is_none() && b.rate.is_none()));
        let r = wilson(0, 0, WILSON_Z).unwrap();
        assert_eq!((r.rate, r.low, r.high), (None, None, None));
        // All one class: brier/log loss/ECE are defined, AUC is not.
        let m = auc(&[0.2, 0.4], &[true, true]).unwrap();
        assert_eq!((m.rows, m.positives), (2, 2));
        assert!(brier(&[0.2, 0.4], &[true, true]).unwrap().value.is_some());
        // No NaN reaches JSON: undefined is null.
        let json = serde_json::to_string(&auc(&[0.5], &[true]).unwrap()).unwrap();
        assert_eq!(json, r#"{"value":null,"rows":1,"positives":1}"#);
    }

    #[test]
    fn bad_input_is_refused() {
        for bad in [-0.01, 1.0001, f64::NAN, f64::INFINITY] {
            let e = brier(&[0.5, bad], &[true, false]).unwrap_err();
            assert!(
                matches!(e, MetricsError::NotProbability { index: 1, .. }),
                "{e}"
            );
            assert!(log_loss(&[bad], &[true]).is_err());
            assert!(calibration(&[bad], &[true]).is_err());
        }
        assert!(matches!(
            auc(&[0.1, f64::NAN], &[true, false]),
            Err(MetricsError::NotFinite { index: 1, .. })
        ));
        assert!(matches!(
            auc(&[0.1], &[true, false]),
            Err(MetricsError::LengthMismatch { .. })
        ));
        assert!(auc_binned(&[1, 2], &[1]).is_err());
        assert!(ScoreCounts::new().add(101, true).is_err());
        assert!(wilson(3, 2, WILSON_Z).is_err());
        assert!(wilson(1, 2, 0.0).is_err());
        assert!(wilson(1, 2, f64::NAN).is_err());
    }

    #[test]
    fn auc_counts_ties_half_and_any_order() {
        // One positive tied with one negative, above another negative: (1 + 0.5) / 2.
        let m = auc(&[0.3, 0.7, 0.7], &[false, true, false]).unwrap();
        assert_eq!(m.value, Some(0.75));
        // Scores need not be probabilities; -0.0 ties 0.0.
        let m = auc(&[-5.0, 0.0, -0.0, 12.0], &[false, true, false, true]).unwrap();
        assert_eq!(m.value, Some(0.875));
        let m = auc(&[0.9, 0.1], &[false, true]).unwrap();
        assert_eq!(m.value, Some(0.0));
    }

    #[test]
    fn calibration_bins_are_right_closed() {
        let cal = calibration(&[0.0, 0.1, 0.1000001, 1.0], &[false, false, true, true]).unwrap();
        let rows: Vec<u64> = cal.bins.iter().map(|b| b.rows).collect();
        assert_eq!(rows, [2, 1, 0, 0, 0, 0, 0, 0, 0, 1]);
        // Perfectly calibrated bins have ECE 0.
        let cal = calibration(&[0.5, 0.5], &[true, false]).unwrap();
        assert_eq!(cal.ece, Some(0.0));
    }

    #[test]
    fn log_loss_clips_certain_misses() {
        let l = log_loss(&[0.0, 1.0], &[true, false])
            .unwrap()
            .value
            .unwrap();
        // ln(1e-15) for the positive at 0; ln(1 − (1 − 1e-15)) for the negative at 1, where
        // 1 − 1e-15 is the double 0.999999999999999 (1 − 1.11e-15).
        let want = -(LOG_LOSS_EPS.ln() + (1.0 - (1.0 - LOG_LOSS_EPS)).ln()) / 2.0;
        close(l, want, 1e-12, "clipped log loss");
        assert!(l.is_finite() && l < 35.0);
        assert_eq!(
            log_loss(&[1.0, 0.0], &[true, false])
                .unwrap()
                .value
                .map(|v| v < 1e-14),
            Some(true)
        );
    }

    #[test]
    fn merged_counts_are_the_union() {
        let (mut a, mut b, mut all) = (ScoreCounts::new(), ScoreCounts::new(), ScoreCounts::new());
        for (i, s) in [3u8, 50, 50, 99, 0, 100].iter().enumerate() {
            let y = i % 2 == 0;
            if i < 3 {
                a.add(*s, y).unwrap()
            } else {
                b.add(*s, y).unwrap()
            }
            all.add(*s, y).unwrap();
        }
        a.merge(&b);
        assert_eq!(a, all);
        assert_eq!(
            a.auc(),
            auc_binned(all.positives(), all.negatives()).unwrap()
        );
    }
}
