//! Exact TreeSHAP (Lundberg, Erion & Lee 2018, Algorithm 2: polynomial time, path-dependent) over
//! the very [`Forest`] that scores, with node covers from the card.
//!
//! Why this variant: it is what LightGBM's `predict(pred_contrib=True)` and shap's `TreeExplainer`
//! (`feature_perturbation="tree_path_dependent"`) compute, so explanations match the training-side
//! tools, and it needs no background data at run time: only how many training rows went through
//! each node. LightGBM weights children by row counts (`internal_count` / `leaf_count`, not the
//! hessian sums `internal_weight`); `tests/kernel.rs` checks this against `pred_contrib`.
//!
//! Contributions are per feature, in margin (log-odds) units; `Σ contributions + base value` is the
//! forest's margin for the row (up to `f32` accumulation in the kernel), including for NaN inputs,
//! which follow each node's missing-value rule exactly as in scoring.

use crate::model::error::ModelError;
use crate::model::forest::{Branch, Forest, Node};

/// Relative tolerance when checking that a node's cover equals the sum of its children's.
const COVER_TOLERANCE: f64 = 1e-6;

/// One node prepared for TreeSHAP; indices are global within [`Covers::nodes`].
#[derive(Debug, Clone, Copy, PartialEq)]
enum ShapNode {
    Branch {
        branch: Branch,
        /// Global index of the true child (the false child is the next node).
        true_child: u32,
        /// cover(true child) / cover(node).
        frac_true: f64,
        /// cover(false child) / cover(node).
        frac_false: f64,
    },
    Leaf {
        value: f64,
    },
}

/// Node covers (training rows through each node), validated against a forest and turned into the
/// split fractions TreeSHAP needs; why: computed once per model, reused for every explanation.
#[derive(Debug, Clone, PartialEq)]
pub struct Covers {
    nodes: Vec<ShapNode>,
    tree_starts: Vec<usize>,
    base_value: f64,
    max_depth: usize,
    n_features: usize,
}

impl Covers {
    /// Builds covers from `node_covers[t][onnx_node_id]` (tree `t` in forest order, whose ONNX tree
    /// id must be `t`; node ids must be `0..len`). Checks lengths, that every cover is finite and
    /// positive, and that every branch's cover is the sum of its children's (relative 1e-6); why: a
    /// card built for another model must not produce plausible-looking explanations.
    pub fn new(forest: &Forest, node_covers: &[Vec<f64>]) -> Result<Covers, ModelError> {
        let card = |m: String| ModelError::Card(format!("explain.node_covers: {m}"));
        if node_covers.len() != forest.n_trees() {
            return Err(card(format!(
                "{} trees but the model has {}",
                node_covers.len(),
                forest.n_trees()
            )));
        }
        let mut nodes = Vec::with_capacity(forest.n_nodes());
        let mut tree_starts = Vec::with_capacity(forest.n_trees() + 1);
        let mut base_value = f64::from(forest.base());
        for (t, (tree, covers)) in forest.trees().zip(node_covers).enumerate() {
            if tree.onnx_tree_id() != t as i64 {
                return Err(card(format!(
                    "covers are indexed by tree id, but the tree at position {t} has id {}",
                    tree.onnx_tree_id()
                )));
            }
            if covers.len() != tree.len() {
                return Err(card(format!(
                    "tree {t} has {} nodes but {} covers",
                    tree.len(),
                    covers.len()
                )));
            }
            let cover_of = |local: usize| -> Result<f64, ModelError> {
                let node = tree
                    .node(local)
                    .ok_or_else(|| card(format!("tree {t}: node {local} is missing")))?;
                let id = node.onnx_id();
                let c = usize::try_from(id)
                    .ok()
                    .and_then(|i| covers.get(i).copied())
                    .ok_or_else(|| {
                        card(format!(
                            "tree {t}: node id {id} is outside 0..{}",
                            covers.len()
                        ))
                    })?;
                if !(c.is_finite() && c > 0.0) {
                    return Err(card(format!(
                        "tree {t}, node {id}: cover {c} is not positive"
                    )));
                }
                Ok(c)
            };
            let start = nodes.len();
            tree_starts.push(start);
            let root_cover = cover_of(0)?;
            for (local, node) in tree.nodes().enumerate() {
                let c = cover_of(local)?;
                match node {
                    Node::Leaf(leaf) => {
                        let value = f64::from(leaf.value);
                        base_value += c / root_cover * value;
                        nodes.push(ShapNode::Leaf { value });
                    }
                    Node::Branch(branch) => {
                        let ct = cover_of(branch.true_child)?;
                        let cf = cover_of(branch.false_child)?;
                        if (c - (ct + cf)).abs() > COVER_TOLERANCE * c {
                            return Err(card(format!(
                                "tree {t}, node {}: cover {c} is not the sum of its children's \
                                 ({ct} + {cf})",
                                branch.onnx_id
                            )));
                        }
                        nodes.push(ShapNode::Branch {
                            branch,
                            true_child: (start + branch.true_child) as u32,
                            frac_true: ct / c,
                            frac_false: cf / c,
                        });
                    }
                }
            }
        }
        tree_starts.push(nodes.len());
        Ok(Covers {
            nodes,
            tree_starts,
            base_value,
            max_depth: forest.max_depth(),
            n_features: forest.n_features(),
        })
    }

    /// Expected margin over the training rows (the SHAP base value); why: shown next to the
    /// contributions, which explain the distance from it.
    pub fn base_value(&self) -> f64 {
        self.base_value
    }

    fn matches(&self, forest: &Forest) -> bool {
        self.nodes.len() == forest.n_nodes()
            && self.tree_starts.len() == forest.n_trees() + 1
            && self.n_features == forest.n_features()
            && self.max_depth == forest.max_depth()
    }
}

/// One element of TreeSHAP's unique path.
#[derive(Debug, Clone, Copy, Default)]
struct PathElement {
    feature: u32,
    zero_fraction: f64,
    one_fraction: f64,
    pweight: f64,
}

/// Feature index of the path's root element (matches no feature).
const NO_FEATURE: u32 = u32::MAX;

/// Reusable TreeSHAP working memory; why: explaining a row then allocates nothing.
#[derive(Debug, Clone, Default)]
pub struct TreeShapScratch {
    path: Vec<PathElement>,
}

impl TreeShapScratch {
    /// Scratch sized for `covers`' deepest tree.
    pub fn new(covers: &Covers) -> TreeShapScratch {
        let mut s = TreeShapScratch::default();
        s.reserve(covers.max_depth);
        s
    }

    fn reserve(&mut self, max_depth: usize) {
        let need = (max_depth + 2) * (max_depth + 3) / 2;
        if self.path.len() < need {
            self.path.resize(need, PathElement::default());
        }
    }
}

/// SHAP contributions of one row: writes one value per feature into `out` (features the trees never
/// read, and any extra slots, get 0) and returns the base value; `base + Σ out` is the forest's
/// margin. Requires `x.len()` and `out.len()` ≥ `forest.n_features()` and `covers` built for
/// `forest`; otherwise fills `out` with NaN and returns NaN. Why: the per-score explanation.
pub fn tree_shap(forest: &Forest, covers: &Covers, x: &[f32], out: &mut [f64]) -> f64 {
    let mut scratch = TreeShapScratch::new(covers);
    tree_shap_with(forest, covers, x, out, &mut scratch)
}

/// [`tree_shap`] with caller-owned scratch; why: no allocation per explained row.
pub fn tree_shap_with(
    forest: &Forest,
    covers: &Covers,
    x: &[f32],
    out: &mut [f64],
    scratch: &mut TreeShapScratch,
) -> f64 {
    let nf = forest.n_features();
    if !covers.matches(forest) || x.len() < nf || out.len() < nf {
        out.fill(f64::NAN);
        return f64::NAN;
    }
    out.fill(0.0);
    scratch.reserve(covers.max_depth);
    let walker = Walker {
        nodes: &covers.nodes,
        x,
    };
    for w in covers.tree_starts.windows(2) {
        walker.recurse(w[0], &mut scratch.path, 0, 0, 1.0, 1.0, NO_FEATURE, out);
    }
    covers.base_value
}

struct Walker<'a> {
    nodes: &'a [ShapNode],
    x: &'a [f32],
}

impl Walker<'_> {
    /// Algorithm 2's RECURSE. The parent's path is `path[parent..parent + depth]`; this node's path
    /// is built right after it.
    #[allow(clippy::too_many_arguments)]
    fn recurse(
        &self,
        node: usize,
        path: &mut [PathElement],
        parent: usize,
        depth: usize,
        zero_fraction: f64,
        one_fraction: f64,
        feature: u32,
        phi: &mut [f64],
    ) {
        let start = parent + depth;
        if path.len() < start + depth + 1 {
            return; // unreachable: scratch is sized for the deepest tree
        }
        if depth > 0 {
            path.copy_within(parent..parent + depth, start);
        }
        let here = &mut path[start..start + depth + 1];
        extend_path(here, depth, zero_fraction, one_fraction, feature);

        match self.nodes.get(node) {
            None => {}
            Some(ShapNode::Leaf { value }) => {
                for i in 1..=depth {
                    let w = unwound_path_sum(here, depth, i);
                    let el = here[i];
                    if let Some(p) = phi.get_mut(el.feature as usize) {
                        *p += w * (el.one_fraction - el.zero_fraction) * value;
                    }
                }
            }
            Some(ShapNode::Branch {
                branch,
                true_child,
                frac_true,
                frac_false,
            }) => {
                let xv = self.x.get(branch.feature).copied().unwrap_or(f32::NAN);
                let (hot, hot_frac, cold, cold_frac) = if branch.goes_true(xv) {
                    (*true_child as usize, *frac_true, node + 1, *frac_false)
                } else {
                    (node + 1, *frac_false, *true_child as usize, *frac_true)
                };
                let f = branch.feature as u32;
                let mut incoming_zero = 1.0;
                let mut incoming_one = 1.0;
                let mut depth = depth;
                if let Some(k) = here.iter().position(|e| e.feature == f) {
                    incoming_zero = here[k].zero_fraction;
                    incoming_one = here[k].one_fraction;
                    unwind_path(here, depth, k);
                    depth -= 1;
                }
                self.recurse(
                    hot,
                    path,
                    start,
                    depth + 1,
                    hot_frac * incoming_zero,
                    incoming_one,
                    f,
                    phi,
                );
                self.recurse(
                    cold,
                    path,
                    start,
                    depth + 1,
                    cold_frac * incoming_zero,
                    0.0,
                    f,
                    phi,
                );
            }
        }
    }
}

/// EXTEND: adds a feature with its zero/one fractions to the path (`path[..=depth]`).
#[inline]
fn extend_path(path: &mut [PathElement], depth: usize, zero: f64, one: f64, feature: u32) {
    path[depth] = PathElement {
        feature,
        zero_fraction: zero,
        one_fraction: one,
        pweight: if depth == 0 { 1.0 } else { 0.0 },
    };
    let d1 = (depth + 1) as f64;
    for i in (0..depth).rev() {
        path[i + 1].pweight += one * path[i].pweight * (i + 1) as f64 / d1;
        path[i].pweight = zero * path[i].pweight * (depth - i) as f64 / d1;
    }
}

/// UNWIND: removes path element `k` (undoing its EXTEND).
#[inline]
fn unwind_path(path: &mut [PathElement], depth: usize, k: usize) {
    let one = path[k].one_fraction;
    let zero = path[k].zero_fraction;
    let d1 = (depth + 1) as f64;
    let mut next_one_portion = path[depth].pweight;
    for i in (0..depth).rev() {
        if one != 0.0 {
            let tmp = path[i].pweight;
            path[i].pweight = next_one_portion * d1 / ((i + 1) as f64 * one);
            next_one_portion = tmp - path[i].pweight * zero * (depth - i) as f64 / d1;
        } else {
            path[i].pweight = path[i].pweight * d1 / (zero * (depth - i) as f64);
        }
    }
    for i in k..depth {
        path[i].feature = path[i + 1].feature;
        path[i].zero_fraction = path[i + 1].zero_fraction;
        path[i].one_fraction = path[i + 1].one_fraction;
    }
}

/// UNWOUND-SUM: total permutation weight of the path with element `k` removed.
#[inline]
fn unwound_path_sum(path: &[PathElement], depth: usize, k: usize) -> f64 {
    let one = path[k].one_fraction;
    let zero = path[k].zero_fraction;
    let d1 = (depth + 1) as f64;
    let mut next_one_portion = path[depth].pweight;
    let mut total = 0.0;
    for i in (0..depth).rev() {
        if one != 0.0 {
            let tmp = next_one_portion * d1 / ((i + 1) as f64 * one);
            total += tmp;
            next_one_portion = path[i].pweight - tmp * zero * ((depth - i) as f64 / d1);
        } else if zero != 0.0 {
            total += (path[i].pweight / zero) / ((depth - i) as f64 / d1);
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let c = Covers::new(&forest, &covers).expect("covers are consistent");
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
            let (want, want_base) = brute_force(&forest, &covers, &x);
            assert!((base - want_base).abs() < 1e-12, "{base} vs {want_base}");
            for (a, b) in phi.iter().zip(&want) {
                assert!((a - b).abs() < 1e-12, "{x:?}: {phi:?} vs {want:?}");
            }
            let total = base + phi.iter().sum::<f64>();
            assert!((total - f64::from(forest.margin(&x))).abs() < 1e-6, "{x:?}");
        }
    }

    #[test]
    fn rejects_inconsistent_covers() {
        let (forest, mut covers) = toy();
        covers[0][1] = 5.0; // 5 ≠ 1 + 3
        let e = Covers::new(&forest, &covers).unwrap_err();
        assert!(e.to_string().contains("not the sum"), "{e}");
        covers[0][1] = 4.0;
        covers[1].pop();
        assert!(Covers::new(&forest, &covers).is_err());
        assert!(Covers::new(&forest, &covers[..1]).is_err());
    }

    #[test]
    fn short_rows_give_nan_not_a_panic() {
        let (forest, covers) = toy();
        let c = Covers::new(&forest, &covers).expect("covers are consistent");
        let mut phi = [0.0; 3];
        assert!(tree_shap(&forest, &c, &[0.0], &mut phi).is_nan());
        assert!(phi.iter().all(|p| p.is_nan()));
        let mut wide = [1.0; 5];
        let base = tree_shap(&forest, &c, &[0.2, 0.5, -3.0, 9.0, 9.0], &mut wide);
        assert!(base.is_finite() && wide[3] == 0.0 && wide[4] == 0.0);
    }
}
