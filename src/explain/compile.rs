//! Compiling node covers into an [`Explainer`]: validation against the trees, split fractions,
//! Gauss–Legendre quadratures, per-branch reciprocals.

use super::*;
use crate::model::error::ModelError;
use crate::model::forest::{Mode, Node};

impl Explainer {
    /// Compiles the explainer from `node_covers[t][onnx_node_id]` (tree `t` in forest order, whose ONNX tree
    /// id must be `t`; node ids must be `0..len`). Checks lengths, that every cover is finite and
    /// positive (a leaf's may be 0), and that every branch's cover is the sum of its children's (relative 1e-6); why: a
    /// card built for another model must not produce plausible-looking explanations.
    pub fn new(forest: &Forest, node_covers: &[Vec<f64>]) -> Result<Explainer, ModelError> {
        let card = |m: String| ModelError::Card(format!("explain.node_covers: {m}"));
        if node_covers.len() != forest.n_trees() {
            return Err(card(format!(
                "{} trees but the model has {}",
                node_covers.len(),
                forest.n_trees()
            )));
        }
        let mut nodes = Vec::with_capacity(forest.n_nodes());
        let mut trees = Vec::with_capacity(forest.n_trees());
        let mut base_value = f64::from(forest.base());
        let mut quadratures: Vec<Quadrature> = Vec::new();
        let mut recips: Vec<f64> = Vec::new();
        let mut memo_keys = Vec::with_capacity(forest.n_trees());
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
                // A leaf no training row reached may have cover 0 (a compiled scorecard's
                // fired leaf: its contribution is then exactly its value); a branch may not.
                let positive = c > 0.0 || (c == 0.0 && matches!(node, Node::Leaf(_)));
                if !(c.is_finite() && positive) {
                    return Err(card(format!(
                        "tree {t}, node {id}: cover {c} is not positive"
                    )));
                }
                Ok(c)
            };
            let start = nodes.len();
            let root_cover = cover_of(0)?;
            for (local, node) in tree.nodes().enumerate() {
                let c = cover_of(local)?;
                match node {
                    Node::Leaf(leaf) => {
                        let value = f64::from(leaf.value);
                        base_value += c / root_cover * value;
                        nodes.push(ShapNode {
                            a: value,
                            b: 0.0,
                            threshold: 0.0,
                            feature: LEAF,
                            true_child: 0,
                            mode: Mode::Leq,
                            missing_tracks_true: false,
                            repeated_below: false,
                            repeated_above: false,
                            z_outer: 1.0,
                            recips: u32::MAX,
                        });
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
                        nodes.push(ShapNode {
                            a: ct / c,
                            b: cf / c,
                            threshold: branch.threshold,
                            feature: branch.feature as u32,
                            true_child: (start + branch.true_child) as u32,
                            mode: branch.mode,
                            missing_tracks_true: branch.missing_tracks_true,
                            repeated_below: false,
                            repeated_above: false,
                            z_outer: 1.0,
                            recips: u32::MAX,
                        });
                    }
                }
            }
            // A leaf's path polynomial has one factor per distinct feature on its path; integrands
            // have degree below that, which m points integrate exactly when 2m >= it.
            let m = analyse_tree(&mut nodes[start..], start).div_ceil(2).max(1);
            while quadratures.len() < m {
                let (t, w) = gauss_legendre(quadratures.len() + 1);
                let inv_1mt = t.iter().map(|t| 1.0 / (1.0 - t)).collect();
                quadratures.push(Quadrature { t, w, inv_1mt });
            }
            if m <= FAST_M {
                let quad = &quadratures[m - 1];
                for n in nodes[start..].iter_mut().filter(|n| n.repeated_above) {
                    n.recips = u32::try_from(recips.len())
                        .map_err(|_| card("too many nodes for TreeSHAP".into()))?;
                    let z0 = n.z_outer;
                    for o in [1.0, 0.0] {
                        recips.extend(quad.t.iter().map(|t| 1.0 / (z0 + (o - z0) * t)));
                    }
                }
            }
            trees.push((start, m));
            memo_keys.push(TreeKey::of(&nodes[start..], start));
        }
        Ok(Explainer {
            nodes,
            trees,
            memo_keys,
            base_value,
            max_depth: forest.max_depth(),
            n_features: forest.n_features(),
            quadratures,
            recips,
        })
    }

    /// Expected margin over the training rows (the SHAP base value); why: shown next to the
    /// contributions, which explain the distance from it.
    pub fn base_value(&self) -> f64 {
        self.base_value
    }

    pub(super) fn matches(&self, forest: &Forest) -> bool {
        self.nodes.len() == forest.n_nodes()
            && self.trees.len() == forest.n_trees()
            && self.n_features == forest.n_features()
            && self.max_depth == forest.max_depth()
    }

    pub(super) fn max_m(&self) -> usize {
        self.quadratures.len()
    }
}

/// Marks branches whose feature is split on again below / above them, sets their outer zero
/// fraction and returns the largest number of distinct features on a root-to-leaf path (`nodes` is
/// one tree, `start` its global offset).
pub(super) fn analyse_tree(nodes: &mut [ShapNode], start: usize) -> usize {
    let mut best = 0;
    // Depth first, keeping the current path as (branch, zero fraction its feature has below it
    // on the path's edge).
    let mut path: Vec<(usize, f64)> = Vec::new();
    let mut stack = vec![(0usize, 0usize, 1.0f64)];
    while let Some((i, len, edge_ratio)) = stack.pop() {
        path.truncate(len);
        if let Some(last) = path.last_mut() {
            last.1 = edge_ratio;
        }
        let Some(&n) = nodes.get(i) else { continue };
        if n.feature == LEAF {
            let mut features: Vec<u32> = path
                .iter()
                .filter_map(|&(j, _)| nodes.get(j))
                .map(|n| n.feature)
                .collect();
            features.sort_unstable();
            features.dedup();
            best = best.max(features.len());
            continue;
        }
        let mut z_outer = 1.0;
        let mut above = false;
        for &(j, ratio) in &path {
            if let Some(a) = nodes.get_mut(j) {
                if a.feature == n.feature {
                    a.repeated_below = true;
                    above = true;
                    z_outer *= ratio;
                }
            }
        }
        if let Some(b) = nodes.get_mut(i) {
            b.repeated_above = above;
            b.z_outer = z_outer;
        }
        path.push((i, 1.0));
        stack.push(((n.true_child as usize).wrapping_sub(start), path.len(), n.a));
        stack.push((i + 1, path.len(), n.b));
    }
    best
}

/// `m`-point Gauss–Legendre rule on [0, 1] (exact for polynomials of degree < 2m); nodes by Newton
/// iteration on the Legendre polynomial.
pub(super) fn gauss_legendre(m: usize) -> (Vec<f64>, Vec<f64>) {
    let mut t = Vec::with_capacity(m);
    let mut w = Vec::with_capacity(m);
    let legendre = |x: f64| {
        // (P_m(x), P_m'(x)) by the three-term recurrence.
        let (mut p0, mut p1) = (1.0, x);
        for n in 2..=m {
            let nf = n as f64;
            (p0, p1) = (p1, ((2.0 * nf - 1.0) * x * p1 - (nf - 1.0) * p0) / nf);
        }
        let d = m as f64 * (x * p1 - p0) / (x * x - 1.0);
        (p1, d)
    };
    for k in 0..m {
        let mut x = (std::f64::consts::PI * (k as f64 + 0.75) / (m as f64 + 0.5)).cos();
        for _ in 0..100 {
            let (p, d) = legendre(x);
            let dx = p / d;
            x -= dx;
            if dx.abs() < 1e-16 {
                break;
            }
        }
        let (_, d) = legendre(x);
        t.push((1.0 - x) / 2.0);
        w.push(1.0 / ((1.0 - x * x) * d * d));
    }
    (t, w)
}
