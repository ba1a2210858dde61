//! Per-tree memo: a visitor's next explanation recomputes only the trees its new events change.

use super::linear::explain_tree;
use super::*;

/// Which rows a tree cannot tell apart: a tree's contributions depend on the row only through the
/// side each of its splits sends it to.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct TreeKey {
    /// Global indices of the tree's nodes.
    pub(super) nodes: (usize, usize),
    /// Bit `f` (bit 63 for every `f ≥ 63`): the tree splits on feature `f`.
    pub(super) features: u64,
    /// The tree has at most 64 branches, so its decisions fit one `u64`.
    pub(super) fits: bool,
}

impl TreeKey {
    /// `tree`: one tree's nodes, the root (global index `start`) first.
    pub(super) fn of(tree: &[ShapNode], start: usize) -> TreeKey {
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
    pub(super) fn decisions(&self, nodes: &[ShapNode], x: &[f32]) -> u64 {
        let tree = nodes.get(self.nodes.0..self.nodes.1).unwrap_or_default();
        tree.iter()
            .filter(|n| n.feature != LEAF)
            .fold(0u64, |k, n| (k << 1) | u64::from(n.goes_true(x)))
    }
}

pub(super) fn feature_bit(f: usize) -> u64 {
    1u64 << f.min(63)
}

/// The last explained row of one visitor, tree by tree; why: between two events of a visitor most
/// trees send the row down the same sides, and then their contributions are the same, so
/// [`tree_shap_memo`] recomputes only the others. Exact: a tree whose decisions are unchanged would
/// repeat the very same floating-point operations.
#[derive(Debug, Clone, Default)]
pub struct ShapMemo {
    /// The row last explained.
    pub(super) x: Vec<f32>,
    /// Per tree: its decisions for `x` (meaningful when `known`).
    pub(super) keys: Vec<u64>,
    pub(super) known: Vec<bool>,
    /// Per tree, `n_features` contributions each.
    pub(super) phi: Vec<f64>,
    pub(super) scratch: TreeShapScratch,
    pub(super) recomputed: usize,
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
    covers: &Explainer,
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
