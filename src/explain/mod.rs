//! Exact TreeSHAP (Lundberg, Erion & Lee 2018, Algorithm 2: polynomial time, path-dependent) over
//! the very [`Forest`] that scores, with node covers from the card.
//!
//! Why this variant: it is what LightGBM's `predict(pred_contrib=True)` and shap's `TreeExplainer`
//! (`feature_perturbation="tree_path_dependent"`) compute, so explanations match the training-side
//! tools, and it needs no background data at run time: only how many training rows went through
//! each node. LightGBM weights children by row counts (`internal_count` / `leaf_count`, not the
//! hessian sums `internal_weight`); `tests/kernel.rs` checks this against `pred_contrib`.
//!
//! Two evaluations of the same values are provided:
//! * [`tree_shap`] / [`tree_shap_with`] (production) compute Algorithm 2's values the Linear
//!   TreeSHAP way (Yu et al. 2022). For a leaf with value `v` and distinct path features `F`, each
//!   with zero fraction `z` (product of cover ratios on its splits) and one fraction `o` (1 when the
//!   row follows all its splits, else 0), the Shapley weights are Beta integrals, so
//!   `φ_i = v (o_i − z_i) ∫₀¹ Π_{j∈F, j≠i} (z_j + (o_j − z_j) t) dt`. Sums of these path polynomials
//!   are carried up the tree (one per node rather than one per leaf and path element; divided by
//!   the node's own path polynomial, which leaves no division at run time) and
//!   integrated exactly with an `m`-point Gauss–Legendre rule, `2m ≥` the tree's largest number of
//!   distinct features on a path: O(nodes · m) per tree instead of O(leaves · depth²).
//! * [`tree_shap_reference`] is Algorithm 2 verbatim (EXTEND / UNWIND / UNWOUND-SUM, as in LightGBM
//!   and shap), kept as an independent cross-check.
//!
//! Files: `compile.rs` (covers → [`Explainer`]), `linear.rs` (production), `memo.rs` (per-tree
//! reuse across a visitor's events), `reference.rs` (Algorithm 2 verbatim).
//!
//! Contributions are per feature, in margin (log-odds) units; `Σ contributions + base value` is the
//! forest's margin for the row (up to `f32` accumulation in the kernel), including for NaN inputs,
//! which follow each node's missing-value rule exactly as in scoring.

mod compile;
mod linear;
mod memo;
mod reference;

pub use linear::{tree_shap, tree_shap_with, TreeShapScratch};
pub use memo::{tree_shap_memo, ShapMemo};
pub use reference::tree_shap_reference;

use crate::model::forest::{Forest, Mode};
use memo::TreeKey;

/// Relative tolerance when checking that a node's cover equals the sum of its children's.
const COVER_TOLERANCE: f64 = 1e-6;

/// Feature index marking a leaf in [`ShapNode`].
const LEAF: u32 = u32::MAX;

/// Largest quadrature size with a fixed-size (unrolled, allocation-free) implementation; larger
/// trees (more than 16 distinct features on a path) take the slice-based one.
const FAST_M: usize = 8;

/// One node prepared for TreeSHAP (32 bytes); indices are global within [`Explainer::nodes`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct ShapNode {
    /// Branch: cover(true child) / cover(node). Leaf: the leaf value.
    pub(super) a: f64,
    /// Branch: cover(false child) / cover(node).
    pub(super) b: f64,
    pub(super) threshold: f32,
    /// Input column, or [`LEAF`].
    pub(super) feature: u32,
    /// Global index of the true child (the false child is the next node).
    pub(super) true_child: u32,
    pub(super) mode: Mode,
    pub(super) missing_tracks_true: bool,
    /// Branch: its feature is split on again below it (x-independent; lets most nodes skip the
    /// same-feature bookkeeping).
    pub(super) repeated_below: bool,
    /// Branch: its feature is split on above it.
    pub(super) repeated_above: bool,
    /// Branch: zero fraction its feature already has on the path to it (product of the cover
    /// ratios of the earlier splits on it; 1 when none). The path is fixed, so this is too.
    pub(super) z_outer: f64,
    /// Branch with `repeated_above` (in a tree of at most [`FAST_M`] points): offset in
    /// [`Explainer::recips`] of `1 / q_outer(t_k)` at the tree's `m` quadrature points for an outer one
    /// fraction of 1, then of 0 (`q_outer = z_outer + (o − z_outer) t`), so that no division is
    /// left at run time.
    pub(super) recips: u32,
}

impl ShapNode {
    /// Hot child (the row's side), its cover ratio, cold child, its cover ratio. Same rule as
    /// [`crate::model::forest::Branch::goes_true`].
    #[inline(always)]
    pub(super) fn split(&self, node: usize, x: &[f32]) -> (usize, f64, usize, f64) {
        if self.goes_true(x) {
            (self.true_child as usize, self.a, node + 1, self.b)
        } else {
            (node + 1, self.b, self.true_child as usize, self.a)
        }
    }

    #[inline(always)]
    pub(super) fn goes_true(&self, x: &[f32]) -> bool {
        let v = x.get(self.feature as usize).copied().unwrap_or(f32::NAN);
        self.mode.compare(v, self.threshold) || (self.missing_tracks_true && v.is_nan())
    }
}

/// A Gauss–Legendre rule on [0, 1].
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Quadrature {
    pub(super) t: Vec<f64>,
    pub(super) w: Vec<f64>,
    /// `1 / (1 - t)`.
    pub(super) inv_1mt: Vec<f64>,
}

/// The compiled explainer of one forest: its node covers (training rows through each node),
/// validated against the trees and turned into the split fractions, quadratures and reciprocals
/// TreeSHAP needs; why: compiled once per model, reused for every explanation.
#[derive(Debug, Clone, PartialEq)]
pub struct Explainer {
    pub(super) nodes: Vec<ShapNode>,
    /// Per tree: first node and quadrature size.
    pub(super) trees: Vec<(usize, usize)>,
    /// Per tree: what [`tree_shap_memo`] needs to tell whether a row changes the tree's values.
    pub(super) memo_keys: Vec<TreeKey>,
    pub(super) base_value: f64,
    pub(super) max_depth: usize,
    pub(super) n_features: usize,
    /// `quadratures[m - 1]` has `m` points.
    pub(super) quadratures: Vec<Quadrature>,
    /// Per branch with its feature above it, `2 m` precomputed reciprocals (see
    /// [`ShapNode::recips`]).
    pub(super) recips: Vec<f64>,
}

/// Checks the shapes and zeroes `out` (or fills it with NaN and returns false).
pub(super) fn prepare(forest: &Forest, covers: &Explainer, x: &[f32], out: &mut [f64]) -> bool {
    let nf = forest.n_features();
    if !covers.matches(forest) || x.len() < nf || out.len() < nf {
        out.fill(f64::NAN);
        return false;
    }
    out.fill(0.0);
    true
}

#[cfg(test)]
mod tests {
    use super::compile::gauss_legendre;
    use super::*;
    use crate::model::forest::Node;

    /// Brute-force Shapley values of the path-dependent value function, over all coalitions.
    fn brute_force(forest: &Forest, covers: &[Vec<f64>], x: &[f32]) -> (Vec<f64>, f64) {
        let m = forest.n_features();
        // E[f(x) | x_S] under the path-dependent rule, for one tree.
        fn cond(
            tree: &crate::model::forest::Tree<'_>,
            cov: &[f64],
            node: usize,
            x: &[f32],
            s: u32,
        ) -> f64 {
            match tree.node(node) {
                Some(Node::Leaf(l)) => f64::from(l.value),
                Some(Node::Branch(b)) => {
                    if s & (1 << b.feature) != 0 {
                        let next = if b.goes_true(x[b.feature]) {
                            b.true_child
                        } else {
                            b.false_child
                        };
                        cond(tree, cov, next, x, s)
                    } else {
                        let c = |i: usize| cov[tree.node(i).map_or(0, |n| n.onnx_id()) as usize];
                        let (ct, cf, cn) = (c(b.true_child), c(b.false_child), c(node));
                        (ct * cond(tree, cov, b.true_child, x, s)
                            + cf * cond(tree, cov, b.false_child, x, s))
                            / cn
                    }
                }
                None => f64::NAN,
            }
        }
        let v = |s: u32| -> f64 {
            forest
                .trees()
                .zip(covers)
                .map(|(t, c)| cond(&t, c, 0, x, s))
                .sum::<f64>()
                + f64::from(forest.base())
        };
        let fact = |n: usize| (1..=n).map(|k| k as f64).product::<f64>();
        let mut phi = vec![0.0; m];
        for (i, p) in phi.iter_mut().enumerate() {
            for s in 0u32..(1 << m) {
                if s & (1 << i) != 0 {
                    continue;
                }
                let k = s.count_ones() as usize;
                let w = fact(k) * fact(m - k - 1) / fact(m);
                *p += w * (v(s | (1 << i)) - v(s));
            }
        }
        (phi, v(0))
    }

    fn node(attrs: &mut Vec<tract_onnx::pb::AttributeProto>, name: &str, ints: Vec<i64>) {
        attrs.push(tract_onnx::pb::AttributeProto {
            name: name.into(),
            r#type: 7,
            ints,
            ..Default::default()
        });
    }

    /// Two trees over three features, with a repeated feature on a path and a NaN-tracking split.
    fn toy() -> (Forest, Vec<Vec<f64>>) {
        use tract_onnx::pb::{AttributeProto, NodeProto};
        let mut a = Vec::new();
        node(&mut a, "nodes_treeids", vec![0, 0, 0, 0, 0, 0, 0, 1, 1, 1]);
        node(&mut a, "nodes_nodeids", vec![0, 1, 2, 3, 4, 5, 6, 0, 1, 2]);
        node(
            &mut a,
            "nodes_featureids",
            vec![0, 1, 0, 0, 0, 0, 0, 2, 0, 0],
        );
        node(
            &mut a,
            "nodes_truenodeids",
            vec![1, 3, 5, 0, 0, 0, 0, 1, 0, 0],
        );
        node(
            &mut a,
            "nodes_falsenodeids",
            vec![2, 4, 6, 0, 0, 0, 0, 2, 0, 0],
        );
        node(
            &mut a,
            "nodes_missing_value_tracks_true",
            vec![1, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        );
        node(&mut a, "class_treeids", vec![0, 0, 0, 0, 1, 1]);
        node(&mut a, "class_nodeids", vec![3, 4, 5, 6, 1, 2]);
        node(&mut a, "class_ids", vec![0; 6]);
        node(&mut a, "classlabels_int64s", vec![0, 1]);
        let floats = |name: &str, floats: Vec<f32>| AttributeProto {
            name: name.into(),
            r#type: 6,
            floats,
            ..Default::default()
        };
        a.push(floats(
            "nodes_values",
            vec![0.5, 1.0, 2.0, 0.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0],
        ));
        a.push(floats(
            "class_weights",
            vec![0.3, -0.2, 0.7, 1.1, -0.4, 0.25],
        ));
        a.push(floats("base_values", vec![0.125]));
        let modes = [
            "BRANCH_LEQ",
            "BRANCH_LT",
            "BRANCH_GT",
            "LEAF",
            "LEAF",
            "LEAF",
            "LEAF",
        ];
        let modes2 = ["BRANCH_GTE", "LEAF", "LEAF"];
        a.push(AttributeProto {
            name: "nodes_modes".into(),
            r#type: 8,
            strings: modes
                .iter()
                .chain(&modes2)
                .map(|s| s.as_bytes().to_vec())
                .collect(),
            ..Default::default()
        });
        let n = NodeProto {
            op_type: "TreeEnsembleClassifier".into(),
            attribute: a,
            ..Default::default()
        };
        let forest = Forest::from_node(&n).expect("toy forest parses");
        let covers = vec![
            vec![10.0, 4.0, 6.0, 1.0, 3.0, 2.5, 3.5],
            vec![8.0, 5.0, 3.0],
        ];
        (forest, covers)
    }

    #[test]
    fn matches_brute_force_shapley_values_and_adds_up() {
        let (forest, covers) = toy();
        let c = Explainer::new(&forest, &covers).expect("covers are consistent");
        let rows: [[f32; 3]; 6] = [
            [0.2, 0.5, -3.0],
            [0.2, 2.0, 0.0],
            [f32::NAN, 2.0, 0.0],
            [3.0, 0.0, f32::NAN],
            [1.5, f32::NAN, -1.0],
            [0.5, 1.0, -1.0],
        ];
        for x in rows {
            let mut phi = [0.0; 3];
            let base = tree_shap(&forest, &c, &x, &mut phi);
            let mut classic = [0.0; 3];
            assert_eq!(tree_shap_reference(&forest, &c, &x, &mut classic), base);
            let (want, want_base) = brute_force(&forest, &covers, &x);
            for (a, b) in classic.iter().zip(&want) {
                assert!(
                    (a - b).abs() < 1e-12,
                    "{x:?}: Algorithm 2 {classic:?} vs {want:?}"
                );
            }
            assert!((base - want_base).abs() < 1e-12, "{base} vs {want_base}");
            for (a, b) in phi.iter().zip(&want) {
                assert!((a - b).abs() < 1e-12, "{x:?}: {phi:?} vs {want:?}");
            }
            let total = base + phi.iter().sum::<f64>();
            assert!((total - f64::from(forest.margin(&x))).abs() < 1e-6, "{x:?}");
        }
    }

    #[test]
    fn gauss_legendre_is_exact_to_degree_2m_minus_1() {
        for m in 1..=40 {
            let (t, w) = gauss_legendre(m);
            for k in 0..2 * m {
                let got: f64 = t.iter().zip(&w).map(|(t, w)| w * t.powi(k as i32)).sum();
                let want = 1.0 / (k as f64 + 1.0);
                assert!((got - want).abs() < 1e-13, "m={m} k={k}: {got} vs {want}");
            }
            assert!(t.iter().all(|t| *t > 0.0 && *t < 1.0));
        }
    }

    #[test]
    fn rejects_inconsistent_covers() {
        let (forest, mut covers) = toy();
        covers[0][1] = 5.0; // 5 ≠ 1 + 3
        let e = Explainer::new(&forest, &covers).unwrap_err();
        assert!(e.to_string().contains("not the sum"), "{e}");
        covers[0][1] = 4.0;
        covers[1].pop();
        assert!(Explainer::new(&forest, &covers).is_err());
        assert!(Explainer::new(&forest, &covers[..1]).is_err());
    }

    #[test]
    fn short_rows_give_nan_not_a_panic() {
        let (forest, covers) = toy();
        let c = Explainer::new(&forest, &covers).expect("covers are consistent");
        let mut phi = [0.0; 3];
        assert!(tree_shap(&forest, &c, &[0.0], &mut phi).is_nan());
        assert!(phi.iter().all(|p| p.is_nan()));
        let mut wide = [1.0; 5];
        let base = tree_shap(&forest, &c, &[0.2, 0.5, -3.0, 9.0, 9.0], &mut wide);
        assert!(base.is_finite() && wide[3] == 0.0 && wide[4] == 0.0);
    }
}
