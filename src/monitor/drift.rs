//! Distribution drift between a frozen baseline and a live window, from counts per bin.
//!
//! Definitions (checked against direct computations on raw samples and against SciPy by the unit
//! tests, from `tests/fixtures/monitor/reference.json`, made by
//! `tests/fixtures/monitor/make_reference.py`):
//! - [`psi`]: population stability index Σ_b (q_b − p_b) · ln(q_b / p_b) over the baseline's
//!   shares p and the window's q, a share of 0 replaced by [`PSI_EPS`] (so an empty bin costs a
//!   bounded amount instead of infinity). Rule of thumb: < 0.1 stable, 0.1–0.25 a warning, ≥ 0.25
//!   drift ([`PSI_WARN`], [`PSI_ALERT`]).
//! - [`js_divergence`]: Jensen–Shannon divergence in bits, ½ KL(p‖m) + ½ KL(q‖m) with m = ½(p + q),
//!   0 · ln 0 = 0; bounded by 1, defined on empty bins (= SciPy's `jensenshannon(p, q, base=2)²`).
//! - [`ks`]: the two-sample Kolmogorov–Smirnov statistic sup_k |F_p(k) − F_q(k)| from the CDFs of
//!   two integer histograms (`ai_score` 0..=100): exact on integer data (= SciPy's `ks_2samp`
//!   statistic on the raw scores). No p-value: on a window of 10⁵ scores any difference is
//!   "significant"; the statistic is judged by its size.
//!
//! Every judgement needs a minimum sample ([`Gate`]): on small windows PSI's 0.1 rule fires most
//! of the time on unchanged data, so below it a metric says "insufficient data" and never alerts.

use serde::{Deserialize, Serialize};

/// Share that replaces an empty bin's 0 in [`psi`].
pub const PSI_EPS: f64 = 1e-4;
/// PSI at which a shift is worth a warning.
pub const PSI_WARN: f64 = 0.1;
/// PSI at which a shift is drift.
pub const PSI_ALERT: f64 = 0.25;
/// Scores a window needs before its drift is judged.
pub const MIN_SCORES: u64 = 1_000;
/// Positives a window needs before its realized AUC and calibration are judged.
pub const MIN_POSITIVES: u64 = 100;

/// Why two histograms cannot be compared.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DriftError {
    /// Different numbers of bins.
    #[error("baseline has {baseline} bins but the window {window}")]
    Bins {
        /// Baseline bins.
        baseline: usize,
        /// Window bins.
        window: usize,
    },
    /// A share that is negative or not finite, or shares that do not sum to 1.
    #[error("baseline shares must be finite, non-negative and sum to 1 (sum {0})")]
    Shares(f64),
}

/// The shares of a histogram of counts (`None` when it is empty).
pub fn shares(counts: &[u64]) -> Option<Vec<f64>> {
    let n: u64 = counts.iter().sum();
    (n > 0).then(|| counts.iter().map(|&c| c as f64 / n as f64).collect())
}

fn check(baseline: &[f64], window: usize) -> Result<(), DriftError> {
    if baseline.len() != window {
        return Err(DriftError::Bins {
            baseline: baseline.len(),
            window,
        });
    }
    let sum: f64 = baseline.iter().sum();
    if baseline.iter().any(|p| !p.is_finite() || *p < 0.0) || (sum - 1.0).abs() > 1e-6 {
        return Err(DriftError::Shares(sum));
    }
    Ok(())
}

/// PSI of a window's counts against the baseline's shares (`None` for an empty window).
pub fn psi(baseline: &[f64], window: &[u64], eps: f64) -> Result<Option<f64>, DriftError> {
    check(baseline, window.len())?;
    Ok(shares(window).map(|q| {
        baseline
            .iter()
            .zip(q)
            .map(|(&p, q)| {
                let (p, q) = (p.max(eps), q.max(eps));
                (q - p) * (q / p).ln()
            })
            .sum()
    }))
}

/// Jensen–Shannon divergence (bits) of a window's counts from the baseline's shares.
pub fn js_divergence(baseline: &[f64], window: &[u64]) -> Result<Option<f64>, DriftError> {
    check(baseline, window.len())?;
    Ok(shares(window).map(|q| {
        let kl = |a: f64, m: f64| if a > 0.0 { a * (a / m).log2() } else { 0.0 };
        baseline
            .iter()
            .zip(q)
            .map(|(&p, q)| {
                let m = 0.5 * (p + q);
                0.5 * kl(p, m) + 0.5 * kl(q, m)
            })
            .sum::<f64>()
            .max(0.0)
    }))
}

/// KS statistic between the baseline's shares and a window's counts over the same ordered bins.
pub fn ks(baseline: &[f64], window: &[u64]) -> Result<Option<f64>, DriftError> {
    check(baseline, window.len())?;
    Ok(shares(window).map(|q| {
        let (mut fp, mut fq, mut d) = (0.0f64, 0.0f64, 0.0f64);
        for (p, q) in baseline.iter().zip(q) {
            fp += p;
            fq += q;
            d = d.max((fp - fq).abs());
        }
        d
    }))
}

/// What a drift judgement concluded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    /// Too few rows to judge: never alerts.
    InsufficientData,
    /// Below the warning line.
    Ok,
    /// Between the warning and the alert lines.
    Warning,
    /// At or above the alert line.
    Alert,
}

/// The minimum samples and the lines a metric is judged by.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Gate {
    /// Scores a window needs ([`MIN_SCORES`]).
    pub min_scores: u64,
    /// Positives a window needs for AUC and calibration ([`MIN_POSITIVES`]).
    pub min_positives: u64,
    /// PSI warning line ([`PSI_WARN`]).
    pub psi_warn: f64,
    /// PSI alert line ([`PSI_ALERT`]).
    pub psi_alert: f64,
}

impl Default for Gate {
    fn default() -> Gate {
        Gate {
            min_scores: MIN_SCORES,
            min_positives: MIN_POSITIVES,
            psi_warn: PSI_WARN,
            psi_alert: PSI_ALERT,
        }
    }
}

/// One distribution's drift: the values, the window's size and the verdict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Drift {
    /// Rows in the window.
    pub rows: u64,
    /// PSI (`None` for an empty window).
    pub psi: Option<f64>,
    /// Jensen–Shannon divergence, bits.
    pub js: Option<f64>,
    /// KS statistic over the ordered bins.
    pub ks: Option<f64>,
    /// The verdict on PSI.
    pub level: Level,
}

impl Gate {
    /// The drift of a window's counts from the baseline's shares, judged on PSI.
    pub fn drift(&self, baseline: &[f64], window: &[u64]) -> Result<Drift, DriftError> {
        let rows = window.iter().sum();
        let psi = psi(baseline, window, PSI_EPS)?;
        let level = match psi {
            _ if rows < self.min_scores => Level::InsufficientData,
            Some(v) if v >= self.psi_alert => Level::Alert,
            Some(v) if v >= self.psi_warn => Level::Warning,
            _ => Level::Ok,
        };
        Ok(Drift {
            rows,
            psi,
            js: js_divergence(baseline, window)?,
            ks: ks(baseline, window)?,
            level,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identical_distributions_do_not_drift() {
        let counts = [10u64, 20, 30, 40];
        let base = shares(&counts).unwrap();
        let w: Vec<u64> = counts.iter().map(|c| c * 50).collect();
        let d = Gate::default().drift(&base, &w).unwrap();
        assert_eq!(d.rows, 5_000);
        assert!(d.psi.unwrap().abs() < 1e-12 && d.js.unwrap().abs() < 1e-12);
        assert!(d.ks.unwrap().abs() < 1e-12);
        assert_eq!(d.level, Level::Ok);
    }

    #[test]
    fn small_windows_never_alert() {
        let base = [0.5, 0.5];
        let d = Gate::default().drift(&base, &[999, 0]).unwrap();
        assert!(d.psi.unwrap() > 0.25);
        assert_eq!(d.level, Level::InsufficientData);
        let d = Gate::default().drift(&base, &[1000, 0]).unwrap();
        assert_eq!(d.level, Level::Alert);
    }

    #[test]
    fn empty_windows_and_bad_baselines() {
        assert_eq!(psi(&[1.0], &[0], PSI_EPS).unwrap(), None);
        assert!(matches!(
            psi(&[0.5, 0.5], &[1], PSI_EPS),
            Err(DriftError::Bins { .. })
        ));
        assert!(matches!(
            psi(&[0.5, 0.6], &[1, 1], PSI_EPS),
            Err(DriftError::Shares(_))
        ));
        assert!(js_divergence(&[f64::NAN, 1.0], &[1, 1]).is_err());
    }

    #[test]
    fn js_is_bounded_by_one_bit() {
        let v = js_divergence(&[1.0, 0.0], &[0, 7]).unwrap().unwrap();
        assert!((v - 1.0).abs() < 1e-12);
    }
}
