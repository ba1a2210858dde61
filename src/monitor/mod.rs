//! Model health: how a model's live traffic compares with what it was trained on, and how well it
//! ranks and calibrates once outcomes arrive. Pure functions over counts (no I/O), so the worker's
//! aggregates and `leadscore monitor` over exported logs reach the same numbers.
//!
//! The path: [`baseline`] (frozen by the trainer into the card, bins from [`bins`]) → [`window`]
//! (which scores a window judges, and their labels) → [`drift`] (PSI, Jensen–Shannon, KS against
//! the baseline) and [`accuracy`] (AUC, Brier, ECE, tier conversion from additive counts; the
//! metrics themselves are [`crate::metrics`]) → [`health`] (a window's verdicts and alerts) →
//! [`arms`] (an experiment's arms compared per window, sample-ratio mismatch) → [`report`] (all of
//! it, as the CLI prints and the worker answers) → [`promote`] (the live gate on an experiment's
//! arms) and [`retrain`] (when to ask for a new model). No module imports one after it on this
//! path.

pub mod accuracy;
pub mod arms;
pub mod baseline;
pub mod bins;
pub mod drift;
pub mod health;
pub mod promote;
pub mod report;
pub mod retrain;
pub mod window;

#[cfg(test)]
mod reference {
    //! Against `tests/fixtures/monitor/reference.json` (NumPy and SciPy on the raw samples).
    use serde::Deserialize;

    use super::bins::{counts, Binning};
    use super::drift::{js_divergence, ks, psi, shares, PSI_EPS};
    use crate::experiment::{srm, Arm, Experiment};
    use crate::features::FeatureSpec;
    use crate::metrics::chi_square_sf;

    #[derive(Deserialize)]
    struct Reference {
        features: Vec<FeatureCase>,
        scores: Vec<ScoreCase>,
        chi2: Vec<Chi2Case>,
        assignment: Vec<AssignmentCase>,
    }
    #[derive(Deserialize)]
    struct FeatureCase {
        name: String,
        base: Vec<f64>,
        window: Vec<f64>,
        edges: Vec<f64>,
        base_counts: Vec<u64>,
        window_counts: Vec<u64>,
        psi: f64,
        js: f64,
    }
    #[derive(Deserialize)]
    struct ScoreCase {
        name: String,
        base: Vec<usize>,
        window: Vec<usize>,
        psi: f64,
        js: f64,
        ks: f64,
    }
    #[derive(Deserialize)]
    struct Chi2Case {
        x: f64,
        df: u32,
        sf: f64,
    }
    #[derive(Deserialize)]
    struct AssignmentCase {
        observed: Vec<u64>,
        weights: Vec<f64>,
        chi_square: f64,
        p_value: f64,
    }

    fn reference() -> Reference {
        serde_json::from_str(include_str!("../../tests/fixtures/monitor/reference.json")).unwrap()
    }

    fn close(a: f64, b: f64, rel: f64, what: &str) {
        assert!(
            (a - b).abs() <= rel * b.abs().max(1e-300) || (a - b).abs() < 1e-15,
            "{what}: {a} vs {b}"
        );
    }

    #[test]
    fn frozen_bins_psi_and_js_match_numpy_and_scipy() {
        let spec: FeatureSpec = serde_json::from_str(r#"{"name":"f","kind":"weekend"}"#).unwrap();
        for c in reference().features {
            let base: Vec<f32> = c.base.iter().map(|&v| v as f32).collect();
            let b = Binning::fit(&spec, &base);
            let Binning::Quantile { edges } = &b else {
                panic!("{}: quantile bins", c.name)
            };
            let want: Vec<f32> = c.edges.iter().map(|&e| e as f32).collect();
            assert_eq!(edges, &want, "{}: edges", c.name);
            let bc = counts(&b, base.iter().copied());
            let wc = counts(&b, c.window.iter().map(|&v| v as f32));
            assert_eq!(bc, c.base_counts, "{}: baseline counts", c.name);
            assert_eq!(wc, c.window_counts, "{}: window counts", c.name);
            let p = shares(&bc).unwrap();
            close(
                psi(&p, &wc, PSI_EPS).unwrap().unwrap(),
                c.psi,
                1e-9,
                &c.name,
            );
            close(
                js_divergence(&p, &wc).unwrap().unwrap(),
                c.js,
                1e-9,
                &c.name,
            );
        }
    }

    #[test]
    fn score_psi_js_and_ks_match_scipy() {
        for c in reference().scores {
            let (mut bc, mut wc) = (vec![0u64; 101], vec![0u64; 101]);
            c.base.iter().for_each(|&s| bc[s] += 1);
            c.window.iter().for_each(|&s| wc[s] += 1);
            let p = shares(&bc).unwrap();
            close(
                psi(&p, &wc, PSI_EPS).unwrap().unwrap(),
                c.psi,
                1e-9,
                &c.name,
            );
            close(
                js_divergence(&p, &wc).unwrap().unwrap(),
                c.js,
                1e-9,
                &c.name,
            );
            close(ks(&p, &wc).unwrap().unwrap(), c.ks, 1e-12, &c.name);
        }
    }

    #[test]
    fn chi_square_survival_and_srm_match_scipy() {
        let r = reference();
        for c in r.chi2 {
            close(
                chi_square_sf(c.x, c.df).unwrap(),
                c.sf,
                1e-10,
                &format!("chi2.sf({}, {})", c.x, c.df),
            );
        }
        for c in r.assignment {
            let exp = Experiment {
                key: "k".into(),
                arms: c
                    .weights
                    .iter()
                    .map(|&weight| Arm {
                        model: "m".into(),
                        weight,
                    })
                    .collect(),
            };
            let s = srm(&exp, &c.observed, 0).unwrap();
            close(s.chi_square.unwrap(), c.chi_square, 1e-12, "chi-square");
            close(s.p_value.unwrap(), c.p_value, 1e-9, "p-value");
        }
    }
}
