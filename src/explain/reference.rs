//! Algorithm 2 of Lundberg, Erion & Lee (2018) verbatim (EXTEND / UNWIND / UNWOUND-SUM): the
//! independent cross-check of the linear evaluation.

use super::*;

/// One element of Algorithm 2's unique path.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct PathElement {
    pub(super) feature: u32,
    pub(super) zero_fraction: f64,
    pub(super) one_fraction: f64,
    pub(super) pweight: f64,
}

/// Feature index of the path's root element (matches no feature).
pub(super) const NO_FEATURE: u32 = u32::MAX;

/// Algorithm 2 of Lundberg et al. verbatim (as in LightGBM's `pred_contrib`); same contract and
/// same values as [`tree_shap`], slower. Why: an independent implementation to cross-check against.
pub fn tree_shap_reference(forest: &Forest, covers: &Explainer, x: &[f32], out: &mut [f64]) -> f64 {
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

pub(super) struct Walker<'a> {
    pub(super) nodes: &'a [ShapNode],
    pub(super) x: &'a [f32],
}

impl Walker<'_> {
    /// Algorithm 2's RECURSE. The parent's path is `path[parent..parent + depth]`; this node's path
    /// is built right after it.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn recurse(
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
pub(super) fn extend_path(
    path: &mut [PathElement],
    depth: usize,
    zero: f64,
    one: f64,
    feature: u32,
) {
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
pub(super) fn unwind_path(path: &mut [PathElement], depth: usize, k: usize) {
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
pub(super) fn unwound_path_sum(path: &[PathElement], depth: usize, k: usize) -> f64 {
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
