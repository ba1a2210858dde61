//! Frozen bins of a feature: fitted once on the training rows and kept in the card, so that every
//! later window is counted in the same bins. Refitting bins to each window (as some monitoring
//! tools do) moves the edges with the data and makes PSI unstable.
//!
//! - Numeric features: up to [`QUANTILE_BINS`] bins between the distinct deciles of the training
//!   values (the inverted-CDF quantile: the smallest value whose share at or below it reaches k/10,
//!   = NumPy's `quantile(method="inverted_cdf")`); bin i holds edge[i−1] < x ≤ edge[i], the last
//!   x > the last edge.
//! - Coded features (a card `values` table: channel, visitor type, …): one bin per known code in
//!   numeric order, then one for any other value.
//! - Both end with a bin for a missing value (NaN), which the engine does not produce today but a
//!   candidate's feature kind may.

use serde::{Deserialize, Serialize};

use crate::features::FeatureSpec;

/// Number of quantile bins of a numeric feature (fewer where deciles coincide).
pub const QUANTILE_BINS: usize = 10;

/// How a feature's values are binned.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum Binning {
    /// Upper-inclusive edges; `edges.len() + 1` value bins.
    Quantile {
        /// Bin edges, strictly increasing.
        edges: Vec<f32>,
    },
    /// One bin per code, then one for any other value.
    Codes {
        /// The known codes, increasing.
        codes: Vec<f32>,
    },
}

impl Binning {
    /// Bins for a feature from its training values: codes where the card names them, else deciles.
    pub fn fit(spec: &FeatureSpec, values: &[f32]) -> Binning {
        if let Some(names) = &spec.values {
            let mut codes: Vec<f32> = names.keys().filter_map(|k| k.parse().ok()).collect();
            codes.sort_by(f32::total_cmp);
            codes.dedup();
            return Binning::Codes { codes };
        }
        let mut sorted: Vec<f32> = values.iter().copied().filter(|v| !v.is_nan()).collect();
        sorted.sort_by(f32::total_cmp);
        let mut edges = Vec::new();
        if !sorted.is_empty() {
            let n = sorted.len();
            for k in 1..QUANTILE_BINS {
                // Smallest index i with (i + 1) / n ≥ k / 10, in integers.
                let i = (k * n).div_ceil(QUANTILE_BINS).saturating_sub(1);
                let e = sorted[i.min(n - 1)];
                if edges.last().is_none_or(|l: &f32| e > *l) {
                    edges.push(e);
                }
            }
        }
        Binning::Quantile { edges }
    }

    /// Number of bins, the missing-value bin included.
    pub fn len(&self) -> usize {
        match self {
            Binning::Quantile { edges } => edges.len() + 2,
            Binning::Codes { codes } => codes.len() + 2,
        }
    }

    /// Never true: every binning has at least its missing-value bin.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The bin of a value.
    pub fn bin(&self, x: f32) -> usize {
        if x.is_nan() {
            return self.len() - 1;
        }
        match self {
            Binning::Quantile { edges } => edges.partition_point(|e| *e < x),
            Binning::Codes { codes } => codes.iter().position(|c| *c == x).unwrap_or(codes.len()),
        }
    }

    /// A short label per bin, for reports ("≤ 3", "(3, 7]", "> 12", "8", "other", "missing").
    pub fn labels(&self) -> Vec<String> {
        let mut out: Vec<String> = match self {
            Binning::Quantile { edges } => {
                let mut v = Vec::with_capacity(edges.len() + 1);
                for (i, e) in edges.iter().enumerate() {
                    v.push(match i {
                        0 => format!("≤ {e}"),
                        _ => format!("({}, {e}]", edges[i - 1]),
                    });
                }
                v.push(match edges.last() {
                    Some(l) => format!("> {l}"),
                    None => "any".to_string(),
                });
                v
            }
            Binning::Codes { codes } => {
                let mut v: Vec<String> = codes.iter().map(|c| c.to_string()).collect();
                v.push("other".to_string());
                v
            }
        };
        out.push("missing".to_string());
        out
    }
}

/// Counts of values per bin.
pub fn counts(binning: &Binning, values: impl IntoIterator<Item = f32>) -> Vec<u64> {
    let mut c = vec![0u64; binning.len()];
    for x in values {
        c[binning.bin(x)] += 1;
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(values: Option<&[(&str, &str)]>) -> FeatureSpec {
        let mut s: FeatureSpec = serde_json::from_str(r#"{"name":"f","kind":"weekend"}"#).unwrap();
        s.values = values.map(|v| {
            v.iter()
                .map(|(k, n)| (k.to_string(), n.to_string()))
                .collect()
        });
        s
    }

    #[test]
    fn deciles_of_one_to_hundred() {
        let v: Vec<f32> = (1..=100).map(|i| i as f32).collect();
        let b = Binning::fit(&spec(None), &v);
        assert_eq!(
            b,
            Binning::Quantile {
                edges: vec![10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0, 90.0]
            }
        );
        assert_eq!(
            counts(&b, v.iter().copied()),
            [vec![10u64; 10], vec![0]].concat()
        );
        assert_eq!(b.bin(f32::NAN), 10);
        assert_eq!(b.bin(-5.0), 0);
        assert_eq!(b.bin(1e9), 9);
    }

    #[test]
    fn mostly_zero_features_get_few_bins() {
        let mut v = vec![0.0f32; 90];
        v.extend((1..=10).map(|i| i as f32));
        let b = Binning::fit(&spec(None), &v);
        assert_eq!(b, Binning::Quantile { edges: vec![0.0] });
        assert_eq!(counts(&b, v.iter().copied()), vec![90, 10, 0]);
        assert_eq!(b.labels(), ["≤ 0", "> 0", "missing"]);
    }

    #[test]
    fn codes_come_from_the_card() {
        let b = Binning::fit(
            &spec(Some(&[("1", "Yes"), ("0", "No"), ("10", "Ten")])),
            &[],
        );
        assert_eq!(
            b,
            Binning::Codes {
                codes: vec![0.0, 1.0, 10.0]
            }
        );
        assert_eq!(counts(&b, [0.0, 1.0, 1.0, 10.0, 3.0]), vec![1, 2, 1, 1, 0]);
        assert_eq!(b.labels(), ["0", "1", "10", "other", "missing"]);
    }

    #[test]
    fn no_training_values_is_one_bin() {
        let b = Binning::fit(&spec(None), &[]);
        assert_eq!(b.len(), 2);
        assert_eq!(b.bin(3.0), 0);
    }
}
