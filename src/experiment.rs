//! A/B arms of model versions: which bundle scores a visitor, and whether the split is healthy.
//!
//! Assignment is GrowthBook's hash version 2, so that any GrowthBook SDK (or the tracker) places a
//! visitor in the same arm: `bucket = fnv1a32(str(fnv1a32(key + id))) mod 10,000 / 10,000`, the
//! experiment key as seed, FNV-1a over UTF-16 code units as JavaScript's `charCodeAt` reads them.
//! The arms' weights become consecutive ranges of [0, 1) (GrowthBook's `getBucketRanges` at full
//! coverage) and the bucket picks the range holding it. The worker pins the arm in the visitor's
//! Durable Object on first sight, so changing weights later moves no one.
//!
//! Health: a sample-ratio-mismatch χ² test of the assignment counts against the weights
//! ([`srm`]); p < [`SRM_P`] means the assignment is broken (a bug, a bot, a redirect), not that an
//! arm is better.

use serde::{Deserialize, Serialize};

use crate::metrics::chi_square_sf;

/// p-value below which assignment counts are a sample-ratio mismatch.
pub const SRM_P: f64 = 0.001;
/// Visitors an experiment needs before its SRM test is judged.
pub const SRM_MIN_VISITORS: u64 = 1_000;

/// Why an experiment's configuration is unusable.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ExperimentError {
    /// No arms.
    #[error("experiment {0:?} has no arms")]
    NoArms(String),
    /// A weight that is negative or not finite, or weights summing to 0.
    #[error("experiment {0:?}: weights must be finite, non-negative and not all 0")]
    Weights(String),
    /// An empty key (the hash seed).
    #[error("an experiment needs a key")]
    NoKey,
}

/// One arm: a bundle and its share of visitors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Arm {
    /// Bundle name (`models/<name>/`, embedded in the worker).
    pub model: String,
    /// Relative weight (normalized over the arms).
    pub weight: f64,
}

/// An experiment: a key (the hash seed) and its arms.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Experiment {
    /// Key, also the hash seed: a new key reshuffles everyone.
    pub key: String,
    /// Arms in order (arm index = position).
    pub arms: Vec<Arm>,
}

/// FNV-1a, 32 bits, over UTF-16 code units (JavaScript's `charCodeAt`).
pub use crate::hash::fnv1a32;

/// GrowthBook's hash version 2 of `value` with `seed`: a bucket in [0, 1) in steps of 1/10,000.
pub fn bucket(seed: &str, value: &str) -> f64 {
    let inner = fnv1a32(&format!("{seed}{value}"));
    f64::from(fnv1a32(&inner.to_string()) % 10_000) / 10_000.0
}

impl Experiment {
    /// Checks the configuration.
    pub fn validate(&self) -> Result<(), ExperimentError> {
        if self.key.is_empty() {
            return Err(ExperimentError::NoKey);
        }
        if self.arms.is_empty() {
            return Err(ExperimentError::NoArms(self.key.clone()));
        }
        let sum: f64 = self.arms.iter().map(|a| a.weight).sum();
        if self
            .arms
            .iter()
            .any(|a| !a.weight.is_finite() || a.weight < 0.0)
            || sum <= 0.0
        {
            return Err(ExperimentError::Weights(self.key.clone()));
        }
        Ok(())
    }

    /// The arms' normalized weights.
    pub fn shares(&self) -> Vec<f64> {
        let sum: f64 = self.arms.iter().map(|a| a.weight).sum();
        self.arms.iter().map(|a| a.weight / sum).collect()
    }

    /// The arms' ranges of [0, 1): `[start, start + share)`, consecutive.
    pub fn ranges(&self) -> Vec<(f64, f64)> {
        let mut start = 0.0;
        self.shares()
            .into_iter()
            .map(|w| {
                let r = (start, start + w);
                start += w;
                r
            })
            .collect()
    }

    /// The arm of a visitor (its index), or `None` for an invalid experiment.
    pub fn assign(&self, visitor_id: &str) -> Option<usize> {
        self.validate().ok()?;
        let n = bucket(&self.key, visitor_id);
        let ranges = self.ranges();
        ranges
            .iter()
            .position(|&(lo, hi)| n >= lo && n < hi)
            // Rounding can leave the last range ending just below 1.
            .or_else(|| ranges.iter().rposition(|&(lo, hi)| hi > lo))
    }
}

/// The result of a sample-ratio-mismatch test.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Srm {
    /// Visitors assigned, all arms.
    pub visitors: u64,
    /// Assigned per arm.
    pub observed: Vec<u64>,
    /// Expected per arm from the weights.
    pub expected: Vec<f64>,
    /// χ² statistic.
    pub chi_square: Option<f64>,
    /// Its p-value (df = arms − 1).
    pub p_value: Option<f64>,
    /// `Some(true)`: mismatch (p < [`SRM_P`]); `None`: too few visitors to judge.
    pub mismatch: Option<bool>,
}

/// χ² goodness-of-fit of assignment counts against the experiment's weights.
pub fn srm(exp: &Experiment, observed: &[u64], min_visitors: u64) -> Result<Srm, ExperimentError> {
    exp.validate()?;
    let visitors: u64 = observed.iter().sum();
    let expected: Vec<f64> = exp.shares().iter().map(|s| s * visitors as f64).collect();
    let mut chi = None;
    if observed.len() == expected.len() && visitors > 0 {
        let mut x = 0.0;
        for (o, e) in observed.iter().zip(&expected) {
            if *e > 0.0 {
                x += (*o as f64 - e).powi(2) / e;
            } else if *o > 0 {
                x = f64::INFINITY; // visitors in an arm of weight 0
            }
        }
        chi = Some(x);
    }
    let df = u32::try_from(
        expected
            .iter()
            .filter(|e| **e > 0.0)
            .count()
            .saturating_sub(1),
    )
    .unwrap_or(u32::MAX);
    let p_value = chi.and_then(|x| {
        if x.is_infinite() {
            Some(0.0)
        } else {
            chi_square_sf(x, df)
        }
    });
    let mismatch = (visitors >= min_visitors)
        .then_some(p_value.map(|p| p < SRM_P))
        .flatten();
    Ok(Srm {
        visitors,
        observed: observed.to_vec(),
        expected,
        chi_square: chi,
        p_value,
        mismatch,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exp(w: &[f64]) -> Experiment {
        Experiment {
            key: "model-test".into(),
            arms: w
                .iter()
                .enumerate()
                .map(|(i, &weight)| Arm {
                    model: format!("m{i}"),
                    weight,
                })
                .collect(),
        }
    }

    #[test]
    fn fnv_reference_vectors() {
        // draft-eastlake-fnv test vectors.
        assert_eq!(fnv1a32(""), 0x811c_9dc5);
        assert_eq!(fnv1a32("a"), 0xe40c_292c);
        assert_eq!(fnv1a32("foobar"), 0xbf9c_f968);
    }

    #[test]
    fn growthbook_hash_v2_vectors() {
        // GrowthBook SDK test cases (packages/sdk-js/test/cases.json): "hash" and the buckets
        // its experiment and sticky-bucket cases report for hash version 2.
        assert_eq!(bucket("seed", "a"), 0.0505);
        assert_eq!(bucket("feature-exp", "d123"), 0.6468);
        assert_eq!(bucket("feature-exp", "i123"), 0.9943);
        assert_eq!(bucket("feature", "123"), 0.5231);
        // "Uses seed and hash version": id "1", seed "foo", ranges [0, .5), [.5, 1) → arm 1.
        let e = Experiment {
            key: "foo".into(),
            ..exp(&[0.5, 0.5])
        };
        assert_eq!(e.assign("1"), Some(1));
    }

    #[test]
    fn weights_split_visitors_and_unknown_weights_are_refused() {
        let e = exp(&[1.0, 1.0]);
        let mut n = [0u64; 2];
        for i in 0..20_000 {
            n[e.assign(&format!("v-{i}")).unwrap()] += 1;
        }
        let s = srm(&e, &n, SRM_MIN_VISITORS).unwrap();
        assert_eq!(s.mismatch, Some(false), "{s:?}");
        assert!(exp(&[]).validate().is_err());
        assert!(exp(&[1.0, -1.0]).validate().is_err());
        assert!(exp(&[0.0, 0.0]).validate().is_err());
        assert_eq!(exp(&[0.0, 1.0]).assign("x"), Some(1));
    }

    #[test]
    fn srm_flags_a_sixty_forty_split_of_a_fifty_fifty_experiment() {
        let s = srm(&exp(&[1.0, 1.0]), &[6_000, 4_000], SRM_MIN_VISITORS).unwrap();
        assert_eq!(s.chi_square, Some(400.0));
        assert_eq!(s.mismatch, Some(true));
        let small = srm(&exp(&[1.0, 1.0]), &[60, 40], SRM_MIN_VISITORS).unwrap();
        assert_eq!(small.mismatch, None);
    }
}
