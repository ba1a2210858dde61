//! Linear TreeSHAP (Yu et al. 2022) over a compiled [`Explainer`]: the production evaluation.

use super::reference::PathElement;
use super::*;

/// Reusable TreeSHAP working memory; why: explaining a row then allocates nothing.
#[derive(Debug, Clone, Default)]
pub struct TreeShapScratch {
    /// Per feature: (zero fraction, one fraction) while the feature is on the current path.
    pub(super) on_path: Vec<Option<(f64, f64)>>,
    /// Per feature: its one fraction on the current path (1 when not on it); fixed-size evaluation.
    pub(super) one: Vec<f64>,
    /// Per feature: sums of deeper same-feature subtrees still to subtract (`stride` values each).
    pub(super) acc: Vec<f64>,
    pub(super) stride: usize,
    /// Slice-based evaluation (m > FAST_M): per depth, path polynomial, subtree sum, 1 / edge
    /// factor and saved accumulator (m values each).
    pub(super) levels: Vec<f64>,
    /// Algorithm 2's unique paths, one per depth, packed.
    pub(super) path: Vec<PathElement>,
    /// One tree's contributions, added to the row's in tree order.
    pub(super) tree_phi: Vec<f64>,
}

impl TreeShapScratch {
    /// Scratch sized for `covers`.
    pub fn new(covers: &Explainer) -> TreeShapScratch {
        let mut s = TreeShapScratch::default();
        s.reserve(covers);
        s
    }

    pub(super) fn reserve(&mut self, covers: &Explainer) {
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

    pub(super) fn set_one(&mut self, f: usize, o: f64) {
        if let Some(slot) = self.one.get_mut(f) {
            *slot = o;
        }
    }

    pub(super) fn reserve_path(&mut self, max_depth: usize) {
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
pub fn tree_shap(forest: &Forest, covers: &Explainer, x: &[f32], out: &mut [f64]) -> f64 {
    let mut scratch = TreeShapScratch::new(covers);
    tree_shap_with(forest, covers, x, out, &mut scratch)
}

/// [`tree_shap`] with caller-owned scratch; why: no allocation per explained row.
pub fn tree_shap_with(
    forest: &Forest,
    covers: &Explainer,
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
pub(super) fn explain_tree(
    covers: &Explainer,
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

/// The polynomial evaluation with `M` quadrature points in fixed-size arrays.
///
/// It carries the path polynomial `p` down and, up, the subtree sum divided by it,
/// `S_n = G_n / p_n` (`G_n = Σ_l v_l P_l` over the leaves below `n`). Why: the edge integral
/// `∫ G_c / q_c` becomes `∫ p_n S_c` (times `1 / q_outer` for a repeated feature), so no
/// reciprocal of an edge factor is needed, and a leaf child is just `S = v`, with no call and no
/// polynomial of its own.
pub(super) struct Fixed<'a, const M: usize> {
    pub(super) nodes: &'a [ShapNode],
    pub(super) recips: &'a [f64],
    pub(super) x: &'a [f32],
    pub(super) t: [f64; M],
    pub(super) w: [f64; M],
}

impl<'a, const M: usize> Fixed<'a, M> {
    pub(super) fn new(
        nodes: &'a [ShapNode],
        recips: &'a [f64],
        quad: &Quadrature,
        x: &'a [f32],
    ) -> Self {
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

    pub(super) fn tree(&self, root: usize, s: &mut TreeShapScratch, phi: &mut [f64]) {
        // A tree that is a single leaf contributes nothing.
        self.child(root, &[1.0; M], &[1.0; M], s, phi);
    }

    /// `S` of node `c`, whose path polynomial is `p · q` (`q`: the edge factor into `c`).
    #[inline(always)]
    pub(super) fn child(
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
    pub(super) fn simple(
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
    pub(super) fn general(
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
pub(super) struct Sliced<'a> {
    pub(super) nodes: &'a [ShapNode],
    pub(super) quad: &'a Quadrature,
    pub(super) x: &'a [f32],
    pub(super) m: usize,
}

impl Sliced<'_> {
    pub(super) fn tree(&self, root: usize, s: &mut TreeShapScratch, phi: &mut [f64]) {
        if let Some(p) = s.levels.get_mut(..self.m) {
            p.fill(1.0);
        }
        self.recurse(root, 0, s, phi);
    }

    pub(super) fn recurse(
        &self,
        node: usize,
        level: usize,
        s: &mut TreeShapScratch,
        phi: &mut [f64],
    ) {
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
