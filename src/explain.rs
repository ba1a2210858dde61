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
//! Contributions are per feature, in margin (log-odds) units; `Σ contributions + base value` is the
//! forest's margin for the row (up to `f32` accumulation in the kernel), including for NaN inputs,
//! which follow each node's missing-value rule exactly as in scoring.

use crate::model::error::ModelError;
use crate::model::forest::{Forest, Mode, Node};

/// Relative tolerance when checking that a node's cover equals the sum of its children's.
const COVER_TOLERANCE: f64 = 1e-6;

/// Feature index marking a leaf in [`ShapNode`].
const LEAF: u32 = u32::MAX;

/// Largest quadrature size with a fixed-size (unrolled, allocation-free) implementation; larger
/// trees (more than 16 distinct features on a path) take the slice-based one.
const FAST_M: usize = 8;

/// One node prepared for TreeSHAP (32 bytes); indices are global within [`Covers::nodes`].
#[derive(Debug, Clone, Copy, PartialEq)]
struct ShapNode {
    /// Branch: cover(true child) / cover(node). Leaf: the leaf value.
    a: f64,
    /// Branch: cover(false child) / cover(node).
    b: f64,
    threshold: f32,
    /// Input column, or [`LEAF`].
    feature: u32,
    /// Global index of the true child (the false child is the next node).
    true_child: u32,
    mode: Mode,
    missing_tracks_true: bool,
    /// Branch: its feature is split on again below it (x-independent; lets most nodes skip the
    /// same-feature bookkeeping).
    repeated_below: bool,
    /// Branch: its feature is split on above it.
    repeated_above: bool,
    /// Branch: zero fraction its feature already has on the path to it (product of the cover
    /// ratios of the earlier splits on it; 1 when none). The path is fixed, so this is too.
    z_outer: f64,
    /// Branch with `repeated_above` (in a tree of at most [`FAST_M`] points): offset in
    /// [`Covers::recips`] of `1 / q_outer(t_k)` at the tree's `m` quadrature points for an outer one
    /// fraction of 1, then of 0 (`q_outer = z_outer + (o − z_outer) t`), so that no division is
    /// left at run time.
    recips: u32,
}

impl ShapNode {
    /// Hot child (the row's side), its cover ratio, cold child, its cover ratio. Same rule as
    /// [`crate::model::forest::Branch::goes_true`].
    #[inline(always)]
    fn split(&self, node: usize, x: &[f32]) -> (usize, f64, usize, f64) {
        if self.goes_true(x) {
            (self.true_child as usize, self.a, node + 1, self.b)
        } else {
            (node + 1, self.b, self.true_child as usize, self.a)
        }
    }

    #[inline(always)]
    fn goes_true(&self, x: &[f32]) -> bool {
        let v = x.get(self.feature as usize).copied().unwrap_or(f32::NAN);
        self.mode.compare(v, self.threshold) || (self.missing_tracks_true && v.is_nan())
    }
}

/// A Gauss–Legendre rule on [0, 1].
#[derive(Debug, Clone, PartialEq)]
struct Quadrature {
    t: Vec<f64>,
    w: Vec<f64>,
    /// `1 / (1 - t)`.
    inv_1mt: Vec<f64>,
}

/// Node covers (training rows through each node), validated against a forest and turned into the
/// split fractions TreeSHAP needs; why: computed once per model, reused for every explanation.
#[derive(Debug, Clone, PartialEq)]
pub struct Covers {
    nodes: Vec<ShapNode>,
    /// Per tree: first node and quadrature size.
    trees: Vec<(usize, usize)>,
    /// Per tree: what [`tree_shap_memo`] needs to tell whether a row changes the tree's values.
    memo_keys: Vec<TreeKey>,
    base_value: f64,
    max_depth: usize,
    n_features: usize,
    /// `quadratures[m - 1]` has `m` points.
    quadratures: Vec<Quadrature>,
    /// Per branch with its feature above it, `2 m` precomputed reciprocals (see
    /// [`ShapNode::recips`]).
    recips: Vec<f64>,
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
                if !(c.is_finite() && c > 0.0) {
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
        Ok(Covers {
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

    fn matches(&self, forest: &Forest) -> bool {
        self.nodes.len() == forest.n_nodes()
            && self.trees.len() == forest.n_trees()
            && self.n_features == forest.n_features()
            && self.max_depth == forest.max_depth()
    }

    fn max_m(&self) -> usize {
        self.quadratures.len()
    }
}

/// Marks branches whose feature is split on again below / above them, sets their outer zero
/// fraction and returns the largest number of distinct features on a root-to-leaf path (`nodes` is
/// one tree, `start` its global offset).
fn analyse_tree(nodes: &mut [ShapNode], start: usize) -> usize {
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

/// One element of Algorithm 2's unique path.
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
    /// Per feature: (zero fraction, one fraction) while the feature is on the current path.
    on_path: Vec<Option<(f64, f64)>>,
    /// Per feature: its one fraction on the current path (1 when not on it); fixed-size evaluation.
    one: Vec<f64>,
    /// Per feature: sums of deeper same-feature subtrees still to subtract (`stride` values each).
    acc: Vec<f64>,
    stride: usize,
    /// Slice-based evaluation (m > FAST_M): per depth, path polynomial, subtree sum, 1 / edge
    /// factor and saved accumulator (m values each).
    levels: Vec<f64>,
    /// Algorithm 2's unique paths, one per depth, packed.
    path: Vec<PathElement>,
    /// One tree's contributions, added to the row's in tree order.
    tree_phi: Vec<f64>,
}

impl TreeShapScratch {
    /// Scratch sized for `covers`.
    pub fn new(covers: &Covers) -> TreeShapScratch {
        let mut s = TreeShapScratch::default();
        s.reserve(covers);
        s
    }

    fn reserve(&mut self, covers: &Covers) {
        let stride = covers.max_m().max(FAST_M);
        let nf = covers.n_features;
        if self.stride != stride || self.on_path.len() != nf {
            self.stride = stride;
            self.on_path = vec![None; nf];
            self.one = vec![1.0; nf];
            self.acc = vec![0.0; nf * stride];
            self.tree_phi = vec![0.0; nf];
        }
        let d = covers.max_depth;
        let m = covers.max_m();
        if m > FAST_M && self.levels.len() < (d + 2) * 4 * m {
            self.levels.resize((d + 2) * 4 * m, 0.0);
        }
    }

    fn set_one(&mut self, f: usize, o: f64) {
        if let Some(slot) = self.one.get_mut(f) {
            *slot = o;
        }
    }

    fn reserve_path(&mut self, max_depth: usize) {
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
    if !prepare(forest, covers, x, out) {
        return f64::NAN;
    }
    scratch.reserve(covers);
    // Tree by tree, then summed in tree order: the very additions `tree_shap_memo` makes, so both
    // give the same bits.
    let mut phi = std::mem::take(&mut scratch.tree_phi);
    for &(start, m) in &covers.trees {
        phi.fill(0.0);
        explain_tree(covers, start, m, x, scratch, &mut phi);
        for (o, p) in out.iter_mut().zip(&phi) {
            *o += p;
        }
    }
    scratch.tree_phi = phi;
    covers.base_value
}

/// Adds one tree's contributions for `x` into `phi` (zeroed by the caller).
fn explain_tree(
    covers: &Covers,
    start: usize,
    m: usize,
    x: &[f32],
    scratch: &mut TreeShapScratch,
    phi: &mut [f64],
) {
    let Some(quad) = covers.quadratures.get(m - 1) else {
        return;
    };
    let (nodes, r) = (&covers.nodes, &covers.recips);
    match m {
        1 => Fixed::<1>::new(nodes, r, quad, x).tree(start, scratch, phi),
        2 => Fixed::<2>::new(nodes, r, quad, x).tree(start, scratch, phi),
        3 => Fixed::<3>::new(nodes, r, quad, x).tree(start, scratch, phi),
        4 => Fixed::<4>::new(nodes, r, quad, x).tree(start, scratch, phi),
        5 => Fixed::<5>::new(nodes, r, quad, x).tree(start, scratch, phi),
        6 => Fixed::<6>::new(nodes, r, quad, x).tree(start, scratch, phi),
        7 => Fixed::<7>::new(nodes, r, quad, x).tree(start, scratch, phi),
        8 => Fixed::<8>::new(nodes, r, quad, x).tree(start, scratch, phi),
        _ => Sliced { nodes, quad, x, m }.tree(start, scratch, phi),
    }
}

/// Which rows a tree cannot tell apart: a tree's contributions depend on the row only through the
/// side each of its splits sends it to.
#[derive(Debug, Clone, Copy, PartialEq)]
struct TreeKey {
    /// Global indices of the tree's nodes.
    nodes: (usize, usize),
    /// Bit `f` (bit 63 for every `f ≥ 63`): the tree splits on feature `f`.
    features: u64,
    /// The tree has at most 64 branches, so its decisions fit one `u64`.
    fits: bool,
}

impl TreeKey {
    /// `tree`: one tree's nodes, the root (global index `start`) first.
    fn of(tree: &[ShapNode], start: usize) -> TreeKey {
        let branches = tree.iter().filter(|n| n.feature != LEAF);
        TreeKey {
            nodes: (start, start + tree.len()),
            features: branches
                .clone()
                .fold(0, |m, n| m | feature_bit(n.feature as usize)),
            fits: branches.count() <= 64,
        }
    }

    /// The row's decisions at every split, in node order.
    fn decisions(&self, nodes: &[ShapNode], x: &[f32]) -> u64 {
        let tree = nodes.get(self.nodes.0..self.nodes.1).unwrap_or_default();
        tree.iter()
            .filter(|n| n.feature != LEAF)
            .fold(0u64, |k, n| (k << 1) | u64::from(n.goes_true(x)))
    }
}

fn feature_bit(f: usize) -> u64 {
    1u64 << f.min(63)
}

/// The last explained row of one visitor, tree by tree; why: between two events of a visitor most
/// trees send the row down the same sides, and then their contributions are the same, so
/// [`tree_shap_memo`] recomputes only the others. Exact: a tree whose decisions are unchanged would
/// repeat the very same floating-point operations.
#[derive(Debug, Clone, Default)]
pub struct ShapMemo {
    /// The row last explained.
    x: Vec<f32>,
    /// Per tree: its decisions for `x` (meaningful when `known`).
    keys: Vec<u64>,
    known: Vec<bool>,
    /// Per tree, `n_features` contributions each.
    phi: Vec<f64>,
    scratch: TreeShapScratch,
    recomputed: usize,
}

impl ShapMemo {
    /// Trees the last [`tree_shap_memo`] call had to recompute; why: benchmarks report it.
    pub fn recomputed(&self) -> usize {
        self.recomputed
    }

    /// Forgets the last row (the next call recomputes every tree).
    pub fn clear(&mut self) {
        self.x.clear();
        self.known.fill(false);
    }
}

/// [`tree_shap`] for the next row of the same visitor: the same values to the bit, recomputing only
/// the trees whose split decisions differ from the previous row's (see [`ShapMemo`]).
pub fn tree_shap_memo(
    forest: &Forest,
    covers: &Covers,
    x: &[f32],
    out: &mut [f64],
    memo: &mut ShapMemo,
) -> f64 {
    if !prepare(forest, covers, x, out) {
        return f64::NAN;
    }
    let nf = covers.n_features;
    let nt = covers.trees.len();
    if memo.known.len() != nt || memo.phi.len() != nt * nf {
        memo.keys = vec![0; nt];
        memo.known = vec![false; nt];
        memo.phi = vec![0.0; nt * nf];
        memo.x.clear();
    }
    memo.scratch.reserve(covers);
    let Some(x) = x.get(..nf) else {
        return f64::NAN; // unreachable: `prepare` checked the width
    };
    let changed = if memo.x.len() == nf {
        x.iter()
            .zip(&memo.x)
            .enumerate()
            .filter(|(_, (a, b))| a.to_bits() != b.to_bits())
            .fold(0, |m, (f, _)| m | feature_bit(f))
    } else {
        u64::MAX
    };
    memo.recomputed = 0;
    for (t, (&(start, m), key)) in covers.trees.iter().zip(&covers.memo_keys).enumerate() {
        if memo.known[t] && key.features & changed == 0 {
            continue;
        }
        let k = key.decisions(&covers.nodes, x);
        if memo.known[t] && memo.keys[t] == k {
            continue;
        }
        let Some(phi) = memo.phi.get_mut(t * nf..(t + 1) * nf) else {
            continue;
        };
        phi.fill(0.0);
        explain_tree(covers, start, m, x, &mut memo.scratch, phi);
        memo.keys[t] = k;
        memo.known[t] = key.fits;
        memo.recomputed += 1;
    }
    memo.x.clear();
    memo.x.extend_from_slice(x);
    for phi in memo.phi.chunks_exact(nf) {
        for (o, p) in out.iter_mut().zip(phi) {
            *o += p;
        }
    }
    covers.base_value
}

/// Algorithm 2 of Lundberg et al. verbatim (as in LightGBM's `pred_contrib`); same contract and
/// same values as [`tree_shap`], slower. Why: an independent implementation to cross-check against.
pub fn tree_shap_reference(forest: &Forest, covers: &Covers, x: &[f32], out: &mut [f64]) -> f64 {
    if !prepare(forest, covers, x, out) {
        return f64::NAN;
    }
    let mut scratch = TreeShapScratch::default();
    scratch.reserve_path(covers.max_depth);
    let walker = Walker {
        nodes: &covers.nodes,
        x,
    };
    for &(start, _) in &covers.trees {
        walker.recurse(start, &mut scratch.path, 0, 0, 1.0, 1.0, NO_FEATURE, out);
    }
    covers.base_value
}

/// Checks the shapes and zeroes `out` (or fills it with NaN and returns false).
fn prepare(forest: &Forest, covers: &Covers, x: &[f32], out: &mut [f64]) -> bool {
    let nf = forest.n_features();
    if !covers.matches(forest) || x.len() < nf || out.len() < nf {
        out.fill(f64::NAN);
        return false;
    }
    out.fill(0.0);
    true
}

/// The polynomial evaluation with `M` quadrature points in fixed-size arrays.
///
/// It carries the path polynomial `p` down and, up, the subtree sum divided by it,
/// `S_n = G_n / p_n` (`G_n = Σ_l v_l P_l` over the leaves below `n`). Why: the edge integral
/// `∫ G_c / q_c` becomes `∫ p_n S_c` (times `1 / q_outer` for a repeated feature), so no
/// reciprocal of an edge factor is needed, and a leaf child is just `S = v`, with no call and no
/// polynomial of its own.
struct Fixed<'a, const M: usize> {
    nodes: &'a [ShapNode],
    recips: &'a [f64],
    x: &'a [f32],
    t: [f64; M],
    w: [f64; M],
}

impl<'a, const M: usize> Fixed<'a, M> {
    fn new(nodes: &'a [ShapNode], recips: &'a [f64], quad: &Quadrature, x: &'a [f32]) -> Self {
        let arr = |v: &[f64]| -> [f64; M] {
            let mut a = [0.0; M];
            for (a, v) in a.iter_mut().zip(v) {
                *a = *v;
            }
            a
        };
        Fixed {
            nodes,
            recips,
            x,
            t: arr(&quad.t),
            w: arr(&quad.w),
        }
    }

    fn tree(&self, root: usize, s: &mut TreeShapScratch, phi: &mut [f64]) {
        // A tree that is a single leaf contributes nothing.
        self.child(root, &[1.0; M], &[1.0; M], s, phi);
    }

    /// `S` of node `c`, whose path polynomial is `p · q` (`q`: the edge factor into `c`).
    #[inline(always)]
    fn child(
        &self,
        c: usize,
        p: &[f64; M],
        q: &[f64; M],
        s: &mut TreeShapScratch,
        phi: &mut [f64],
    ) -> [f64; M] {
        match self.nodes.get(c) {
            None => [0.0; M],
            Some(n) if n.feature == LEAF => [n.a; M],
            Some(n) => {
                let mut pc = [0.0; M];
                for k in 0..M {
                    pc[k] = p[k] * q[k];
                }
                if n.repeated_above || n.repeated_below {
                    self.general(c, n, &pc, s, phi)
                } else {
                    self.simple(c, n, &pc, s, phi)
                }
            }
        }
    }

    /// A split whose feature occurs nowhere else on its paths (the common case): one fraction 1
    /// on the hot edge, 0 on the cold one, no same-feature bookkeeping.
    fn simple(
        &self,
        node: usize,
        n: &ShapNode,
        p: &[f64; M],
        s: &mut TreeShapScratch,
        phi: &mut [f64],
    ) -> [f64; M] {
        // Children in a fixed order (true, false) whatever the row: the row only picks which
        // edge has one fraction 1, without data-dependent branches.
        let (o_true, o_false) = if n.goes_true(self.x) {
            (1.0, 0.0)
        } else {
            (0.0, 1.0)
        };
        // Edge factors q = z + (o − z) t.
        let (dt, df) = (o_true - n.a, o_false - n.b);
        let qt = self.t.map(|t| n.a + dt * t);
        let qf = self.t.map(|t| n.b + df * t);
        let st = self.child(n.true_child as usize, p, &qt, s, phi);
        let sf = self.child(node + 1, p, &qf, s, phi);
        // φ_f += Σ_edges (o − z) ∫ p S_child; S = Σ_edges q S_child.
        let mut sn = [0.0; M];
        let mut integral = 0.0;
        for k in 0..M {
            sn[k] = qt[k] * st[k] + qf[k] * sf[k];
            integral += self.w[k] * p[k] * (dt * st[k] + df * sf[k]);
        }
        if let Some(out) = phi.get_mut(n.feature as usize) {
            *out += integral;
        }
        sn
    }

    /// A split on a feature that occurs again above or below it: the feature's outer factor
    /// `q_outer = z0 + (o0 − z0) t` is replaced (not multiplied) along the path. Each edge
    /// integrates its whole subtree; a split with the feature above then takes its own subtree
    /// back out of the outer edge's integral, so each leaf counts once, for its last split on the
    /// feature. Zero fractions are static, one fractions (0 or 1) come from the path.
    #[inline(never)]
    fn general(
        &self,
        node: usize,
        n: &ShapNode,
        p: &[f64; M],
        s: &mut TreeShapScratch,
        phi: &mut [f64],
    ) -> [f64; M] {
        let f = n.feature as usize;
        // The one fraction the feature has on the path (1 when it is not on it: every split on
        // it restores the slot on the way up).
        let o0 = s.one.get(f).copied().unwrap_or(1.0);
        let z0 = n.z_outer;
        let inv_outer = if n.repeated_above {
            let at = n.recips as usize + if o0 == 1.0 { 0 } else { M };
            let r: Option<&[f64; M]> = self.recips.get(at..at + M).and_then(|r| r.try_into().ok());
            r.copied().unwrap_or([1.0; M]) // the fallback is unreachable: tables are built
        } else {
            [1.0; M]
        };
        let mut pq = [0.0; M];
        for k in 0..M {
            pq[k] = p[k] * inv_outer[k];
        }
        // The hot edge inherits the outer one fraction, the cold edge gets 0.
        let (o_true, o_false) = if n.goes_true(self.x) {
            (o0, 0.0)
        } else {
            (0.0, o0)
        };
        let (zt, zf) = (n.a * z0, n.b * z0);
        let (dt, df) = (o_true - zt, o_false - zf);
        let qt = self.t.map(|t| zt + dt * t);
        let qf = self.t.map(|t| zf + df * t);
        if n.repeated_below {
            s.set_one(f, o_true);
        }
        let st = self.child(n.true_child as usize, &pq, &qt, s, phi);
        if n.repeated_below {
            s.set_one(f, o_false);
        }
        let sf = self.child(node + 1, &pq, &qf, s, phi);
        if n.repeated_below {
            s.set_one(f, o0);
        }
        // The outer edge's share of this subtree, taken back out (0 without a split above).
        let e0 = if n.repeated_above { o0 - z0 } else { 0.0 };
        let mut sn = [0.0; M];
        let mut integral = 0.0;
        for k in 0..M {
            sn[k] = inv_outer[k] * (qt[k] * st[k] + qf[k] * sf[k]);
            integral += self.w[k] * pq[k] * (dt * st[k] + df * sf[k] - e0 * sn[k]);
        }
        if let Some(out) = phi.get_mut(f) {
            *out += integral;
        }
        sn
    }
}

/// The same evaluation for any `m`, with per-depth slots in scratch: at depth `k`,
/// `levels[k*4m..]` holds the path polynomial, the subtree sum, `1 / q(t)` for the edge being
/// explored and the saved same-feature accumulator.
struct Sliced<'a> {
    nodes: &'a [ShapNode],
    quad: &'a Quadrature,
    x: &'a [f32],
    m: usize,
}

impl Sliced<'_> {
    fn tree(&self, root: usize, s: &mut TreeShapScratch, phi: &mut [f64]) {
        if let Some(p) = s.levels.get_mut(..self.m) {
            p.fill(1.0);
        }
        self.recurse(root, 0, s, phi);
    }

    fn recurse(&self, node: usize, level: usize, s: &mut TreeShapScratch, phi: &mut [f64]) {
        let m = self.m;
        let (pb, gb, rb, sb, cb) = {
            let b = level * 4 * m;
            (b, b + m, b + 2 * m, b + 3 * m, b + 4 * m)
        };
        let f = self.nodes.get(node).map_or(0, |n| n.feature as usize);
        let acc_range = f * s.stride..f * s.stride + m;
        if s.levels.len() < cb + 2 * m || (f != LEAF as usize && s.acc.len() < acc_range.end) {
            return; // unreachable: scratch is sized for the deepest tree
        }
        let Some(n) = self.nodes.get(node) else {
            return;
        };
        if n.feature == LEAF {
            for k in 0..m {
                s.levels[gb + k] = n.a * s.levels[pb + k];
            }
            return;
        }
        let (hot, hot_frac, cold, cold_frac) = n.split(node, self.x);
        let outer = s.on_path.get(f).copied().flatten();
        let (z0, o0) = outer.unwrap_or((1.0, 1.0));
        if outer.is_some() {
            s.levels[sb..sb + m].copy_from_slice(&s.acc[acc_range.clone()]);
        }
        s.levels[gb..gb + m].fill(0.0);
        let Quadrature { t, w, inv_1mt } = self.quad;
        for (c, frac, o) in [(hot, hot_frac, o0), (cold, cold_frac, 0.0)] {
            let z = frac * z0;
            let lv = &mut s.levels;
            let inv_z = 1.0 / z;
            for k in 0..m {
                let q = z + (o - z) * t[k];
                lv[rb + k] = if o == 0.0 {
                    inv_z * inv_1mt[k]
                } else {
                    1.0 / q
                };
                let child_p = lv[pb + k] * q;
                lv[cb + k] = if outer.is_some() {
                    child_p / (z0 + (o0 - z0) * t[k])
                } else {
                    child_p
                };
            }
            s.acc[acc_range.clone()].fill(0.0);
            if let Some(slot) = s.on_path.get_mut(f) {
                *slot = Some((z, o));
            }
            self.recurse(c, level + 1, s, phi);
            let lv = &mut s.levels;
            let acc = &s.acc[acc_range.clone()];
            let mut integral = 0.0;
            for k in 0..m {
                let child_g = lv[cb + m + k];
                integral += w[k] * (child_g - acc[k]) * lv[rb + k];
                lv[gb + k] += child_g;
            }
            if let Some(out) = phi.get_mut(f) {
                *out += (o - z) * integral;
            }
        }
        if let Some(slot) = s.on_path.get_mut(f) {
            *slot = outer;
        }
        let lv = &s.levels;
        let acc = &mut s.acc[acc_range];
        for k in 0..m {
            acc[k] = if outer.is_some() {
                lv[sb + k] + lv[gb + k]
            } else {
                0.0
            };
        }
    }
}

/// `m`-point Gauss–Legendre rule on [0, 1] (exact for polynomials of degree < 2m); nodes by Newton
/// iteration on the Legendre polynomial.
fn gauss_legendre(m: usize) -> (Vec<f64>, Vec<f64>) {
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
            Some(n) if n.feature == LEAF => {
                let value = n.a;
                for i in 1..=depth {
                    let w = unwound_path_sum(here, depth, i);
                    let el = here[i];
                    if let Some(p) = phi.get_mut(el.feature as usize) {
                        *p += w * (el.one_fraction - el.zero_fraction) * value;
                    }
                }
            }
            Some(n) => {
                let (hot, hot_frac, cold, cold_frac) = n.split(node, self.x);
                let f = n.feature;
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
