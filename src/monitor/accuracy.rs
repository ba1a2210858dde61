//! Live accuracy from labelled decisions, kept as additive counts: positives and negatives per
//! `ai_score` (the exact AUC of integer scores, [`ScoreCounts`]), and per calibration bin the rows,
//! positives and summed probability (the ECE of [`crate::metrics::calibration`]), and the summed
//! squared error (the Brier score). Two windows' counts add up to the union's, so the worker and
//! `leadscore monitor` may fold rows in any grouping and reach the same numbers as the metrics on
//! the raw rows (tested).

use serde::{Deserialize, Serialize};

use crate::metrics::{
    calibration_bin, curve, wilson95, CalibrationCurve, Metric, MetricsError, Rate, ScoreCounts,
    ECE_BINS,
};

/// Labelled rows, counted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Labelled {
    scores: ScoreCounts,
    bin_rows: [u64; ECE_BINS],
    bin_positives: [u64; ECE_BINS],
    bin_p_sum: [f64; ECE_BINS],
    squared_error: f64,
    tier_rows: [u64; 3],
    tier_positives: [u64; 3],
}

impl Default for Labelled {
    fn default() -> Self {
        Labelled {
            scores: ScoreCounts::new(),
            bin_rows: [0; ECE_BINS],
            bin_positives: [0; ECE_BINS],
            bin_p_sum: [0.0; ECE_BINS],
            squared_error: 0.0,
            tier_rows: [0; 3],
            tier_positives: [0; 3],
        }
    }
}

/// Live accuracy of one window (or segment, or arm).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Accuracy {
    /// AUC of `ai_score` (ties half).
    pub auc: Metric,
    /// Brier score of the calibrated probability.
    pub brier: Metric,
    /// Calibration curve and ECE.
    pub calibration: CalibrationCurve,
    /// Conversion per tier (hot, warm, cold), with Wilson intervals.
    pub tier_conversion: [Rate; 3],
}

impl Labelled {
    /// Counts one decision: its score, calibrated probability, tier index (0 hot, 1 warm, 2 cold)
    /// and label.
    pub fn add(
        &mut self,
        ai_score: u8,
        probability: f64,
        tier: usize,
        positive: bool,
    ) -> Result<(), MetricsError> {
        if !(0.0..=1.0).contains(&probability) {
            return Err(MetricsError::NotProbability {
                index: 0,
                value: probability,
            });
        }
        self.scores.add(ai_score, positive)?;
        let b = calibration_bin(probability);
        self.bin_rows[b] += 1;
        self.bin_positives[b] += u64::from(positive);
        self.bin_p_sum[b] += probability;
        let d = probability - f64::from(u8::from(positive));
        self.squared_error += d * d;
        let t = tier.min(2);
        self.tier_rows[t] += 1;
        self.tier_positives[t] += u64::from(positive);
        Ok(())
    }

    /// Adds another set's counts.
    pub fn merge(&mut self, other: &Labelled) {
        self.scores.merge(&other.scores);
        for b in 0..ECE_BINS {
            self.bin_rows[b] += other.bin_rows[b];
            self.bin_positives[b] += other.bin_positives[b];
            self.bin_p_sum[b] += other.bin_p_sum[b];
        }
        self.squared_error += other.squared_error;
        for t in 0..3 {
            self.tier_rows[t] += other.tier_rows[t];
            self.tier_positives[t] += other.tier_positives[t];
        }
    }

    /// Rows counted.
    pub fn rows(&self) -> u64 {
        self.bin_rows.iter().sum()
    }

    /// Positives counted.
    pub fn positives(&self) -> u64 {
        self.bin_positives.iter().sum()
    }

    /// Positives and negatives per `ai_score`.
    pub fn scores(&self) -> &ScoreCounts {
        &self.scores
    }

    /// The metrics of the counted rows.
    pub fn accuracy(&self) -> Accuracy {
        let (rows, positives) = (self.rows(), self.positives());
        let n = rows as f64;
        let rate = |t: usize| wilson95(self.tier_positives[t], self.tier_rows[t]);
        Accuracy {
            auc: self.scores.auc(),
            brier: Metric {
                value: (rows > 0).then(|| self.squared_error / n),
                rows,
                positives,
            },
            calibration: curve(&self.bin_p_sum, &self.bin_rows, &self.bin_positives),
            tier_conversion: [rate(0), rate(1), rate(2)],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{auc, brier, calibration};

    /// A deterministic spread of rows (an LCG), labels correlated with the probability.
    fn rows(n: usize, seed: u64) -> Vec<(u8, f64, usize, bool)> {
        let mut s = seed;
        let mut next = || {
            s = s
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (s >> 11) as f64 / (1u64 << 53) as f64
        };
        (0..n)
            .map(|_| {
                let p = next();
                let score = (p * 100.0).round() as u8;
                let tier = if score >= 70 {
                    0
                } else if score >= 30 {
                    1
                } else {
                    2
                };
                (score, p, tier, next() < p)
            })
            .collect()
    }

    #[test]
    fn counts_give_the_metrics_of_the_raw_rows_and_add_up() {
        let all = rows(5000, 7);
        let (mut a, mut b, mut whole) = (
            Labelled::default(),
            Labelled::default(),
            Labelled::default(),
        );
        for (i, &(s, p, t, y)) in all.iter().enumerate() {
            whole.add(s, p, t, y).unwrap();
            if i % 3 == 0 { &mut a } else { &mut b }
                .add(s, p, t, y)
                .unwrap();
        }
        a.merge(&b);
        let (m, w) = (a.accuracy(), whole.accuracy());
        assert_eq!(m.auc, w.auc);
        assert_eq!(m.tier_conversion, w.tier_conversion);
        let scores: Vec<f64> = all.iter().map(|r| f64::from(r.0)).collect();
        let p: Vec<f64> = all.iter().map(|r| r.1).collect();
        let y: Vec<bool> = all.iter().map(|r| r.3).collect();
        assert_eq!(
            w.auc,
            auc(&scores, &y).unwrap(),
            "exact AUC of integer scores"
        );
        let (b_raw, b_live) = (
            brier(&p, &y).unwrap().value.unwrap(),
            w.brier.value.unwrap(),
        );
        assert!((b_raw - b_live).abs() < 1e-12, "{b_raw} vs {b_live}");
        let c = calibration(&p, &y).unwrap();
        assert!((c.ece.unwrap() - w.calibration.ece.unwrap()).abs() < 1e-12);
        assert!((m.brier.value.unwrap() - b_live).abs() < 1e-12);
        for (x, y) in c.bins.iter().zip(&w.calibration.bins) {
            assert_eq!((x.rows, x.positives), (y.rows, y.positives));
        }
        let hot = &w.tier_conversion[0];
        assert!(hot.low.unwrap() < hot.rate.unwrap() && hot.rate.unwrap() < hot.high.unwrap());
        assert_eq!(w.auc.rows, 5000);
    }

    #[test]
    fn no_rows_means_no_values_and_bad_probabilities_are_refused() {
        let a = Labelled::default().accuracy();
        assert_eq!(
            (a.auc.value, a.brier.value, a.calibration.ece),
            (None, None, None)
        );
        assert!(Labelled::default().add(50, 1.5, 1, true).is_err());
        assert!(Labelled::default().add(101, 0.5, 1, true).is_err());
    }
}
