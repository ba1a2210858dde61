//! A binary tree ensemble in a flat, cache-friendly node array: the runtime that scores. Parsing an
//! ONNX `TreeEnsembleClassifier` (ai.onnx.ml) into it lives apart, in [`onnx`] (as tract keeps
//! conversion apart from its runtime ops), and so does its bytes form for loads, [`encoded`].
//!
//! Why our own: tract's built-in op walks every earlier leaf on each lookup and misreads `BRANCH_GTE`
//! (see `TOOLCHAIN.md`); this representation scores a row in a few µs and is shared by the tract op
//! ([`super::plan`]) and TreeSHAP ([`crate::explain`]), so the trees that score are the trees that
//! explain.
//!
//! Semantics copied from onnxruntime (checked numerically by `tests/kernel.rs`):
//! * a branch goes to its true child when `cmp(x, threshold) || (missing_tracks_true && x.is_nan())`;
//! * the margin is accumulated in `f32`, tree by tree in the order trees first appear in the node
//!   list, starting from 0, and the base value is added last;
//! * only *binary* models whose leaves carry weights for a single class id are served:
//!   - weights on class 0 (what onnxmltools emits for LightGBM and XGBoost): margin `s = Σw + base`,
//!     probabilities `[σ(-s), σ(s)]` with `LOGISTIC`, `[1 - s, s]` (all weights ≥ 0) or `[-s, s]`
//!     with `NONE`;
//!   - weights on class 1: margin `s = Σw`, probabilities `[σ(0), σ(s)]` / `[0, s]`; onnxruntime
//!     ignores `base_values` here, so a non-zero base is rejected as ambiguous;
//!   - the label is `classlabels[1]` when `s > 0.5` (all weights ≥ 0) or `s > 0` (otherwise).
//!
//! Rejected with a clear [`ModelError::Onnx`]: more than two classes, weights on both classes,
//! `SOFTMAX`/`SOFTMAX_ZERO`/`PROBIT`, double-precision `*_as_tensor` attributes, unknown modes,
//! children missing or in another tree, nodes with two parents (shared subtrees, which onnxmltools
//! emits for categorical set splits), cycles, unreachable nodes and mismatched attribute lengths.

mod encoded;
mod onnx;

pub use encoded::EncodedForest;
pub(crate) use onnx::{decode_model, find_tree_node, onnx_err};

use crate::model::error::ModelError;

/// The ONNX op type this module parses.
pub const OP_TYPE: &str = "TreeEnsembleClassifier";

/// Sentinel feature index marking a leaf in the packed array.
const LEAF: u32 = u32::MAX;
/// Bits of `Packed::link` holding the true child's index.
const LINK_MASK: u32 = (1 << 28) - 1;
/// Bit position of the 3-bit mode in `Packed::link`.
const MODE_SHIFT: u32 = 28;
/// Bit of `Packed::link` set when NaN goes to the true child.
const MISSING_BIT: u32 = 1 << 31;
/// Largest node count the packed link can address.
const MAX_NODES: usize = LINK_MASK as usize;
/// Deepest tree accepted (TreeSHAP's scratch grows with the square of the depth).
pub const MAX_DEPTH: usize = 512;

/// Comparison a branch node applies between the feature value and its threshold; why: ONNX allows
/// six, and LightGBM, XGBoost and hand-made models each use different ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    /// `x <= threshold` (LightGBM).
    Leq = 0,
    /// `x < threshold` (XGBoost).
    Lt = 1,
    /// `x >= threshold`.
    Gte = 2,
    /// `x > threshold`.
    Gt = 3,
    /// `x == threshold`.
    Eq = 4,
    /// `x != threshold`.
    Neq = 5,
}

impl Mode {
    /// Parses an ONNX `nodes_modes` entry; `Ok(None)` is `LEAF`. Why: one place knows the spellings.
    pub fn parse(s: &str) -> Result<Option<Mode>, ModelError> {
        Ok(Some(match s {
            "BRANCH_LEQ" => Mode::Leq,
            "BRANCH_LT" => Mode::Lt,
            "BRANCH_GTE" => Mode::Gte,
            "BRANCH_GT" => Mode::Gt,
            "BRANCH_EQ" => Mode::Eq,
            "BRANCH_NEQ" => Mode::Neq,
            "LEAF" => return Ok(None),
            other => {
                return Err(onnx_err(format!(
                    "{OP_TYPE}: unsupported node mode {other:?} (expected BRANCH_LEQ, BRANCH_LT, \
                     BRANCH_GTE, BRANCH_GT, BRANCH_EQ, BRANCH_NEQ or LEAF)"
                )))
            }
        }))
    }

    /// The bare comparison (no missing-value rule); why: scoring and TreeSHAP must agree exactly.
    #[inline(always)]
    pub fn compare(self, x: f32, threshold: f32) -> bool {
        match self {
            Mode::Leq => x <= threshold,
            Mode::Lt => x < threshold,
            Mode::Gte => x >= threshold,
            Mode::Gt => x > threshold,
            Mode::Eq => x == threshold,
            Mode::Neq => x != threshold,
        }
    }

    fn from_bits(b: u32) -> Mode {
        match b & 7 {
            0 => Mode::Leq,
            1 => Mode::Lt,
            2 => Mode::Gte,
            3 => Mode::Gt,
            4 => Mode::Eq,
            _ => Mode::Neq,
        }
    }
}

/// The ONNX `post_transform` applied to the margin; why: `probability` must match onnxruntime.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PostTransform {
    /// Probabilities are the raw scores.
    None,
    /// Probabilities are `logistic(score)`.
    Logistic,
}

/// onnxruntime's `f32` logistic (`1 / (1 + exp(-|v|))`, mirrored for negative `v`); why: same
/// formula, same rounding, so probabilities match it bit for bit where `expf` agrees.
#[inline]
pub fn logistic(v: f32) -> f32 {
    let a = 1.0 / (1.0 + (-v.abs()).exp());
    if v < 0.0 {
        1.0 - a
    } else {
        a
    }
}

/// Class labels of the classifier; why: the label output of the tract op needs them.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ClassLabels {
    /// `classlabels_int64s`.
    Int([i64; 2]),
    /// `classlabels_strings`.
    Str([String; 2]),
}

/// How onnxruntime fills the first probability column (see the module doc); why: the tract op
/// outputs both columns like the ONNX graph promises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Layout {
    /// Weights on class 0: column 0 is `σ(-s)`, `1 - s` or `-s`.
    WeightsOnClass0 { all_weights_positive: bool },
    /// Weights on class 1: column 0 is `σ(0)` or `0`.
    WeightsOnClass1 { all_weights_positive: bool },
}

/// One packed node, 12 bytes. Branch: `value` is the threshold, `feature` the input index and
/// `link` the true child's absolute index (bits 0–27), the mode (bits 28–30) and the
/// missing-goes-true flag (bit 31); the false child is the next node. Leaf: `feature == LEAF` and
/// `value` is the positive-class contribution.
#[derive(Debug, Clone, Copy, PartialEq)]
#[repr(C)]
struct Packed {
    value: f32,
    feature: u32,
    link: u32,
}

/// A branch node as TreeSHAP and tests see it; indices are local to the tree (root is 0, the false
/// child is always `self + 1`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Branch {
    /// Input column compared.
    pub feature: usize,
    /// Threshold (f32, as stored in ONNX).
    pub threshold: f32,
    /// Comparison.
    pub mode: Mode,
    /// NaN goes to the true child.
    pub missing_tracks_true: bool,
    /// Local index of the true child.
    pub true_child: usize,
    /// Local index of the false child (always this node's index + 1).
    pub false_child: usize,
    /// Node id in the ONNX file (what the card's covers are indexed by).
    pub onnx_id: i64,
}

impl Branch {
    /// Whether `x` (the whole row's value for `self.feature`) goes to the true child; why: the one
    /// decision rule shared by scoring and TreeSHAP.
    #[inline(always)]
    pub fn goes_true(&self, x: f32) -> bool {
        self.mode.compare(x, self.threshold) || (self.missing_tracks_true && x.is_nan())
    }
}

/// A leaf as TreeSHAP and tests see it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Leaf {
    /// Contribution to the positive-class margin (sum of the leaf's class weights).
    pub value: f32,
    /// Node id in the ONNX file.
    pub onnx_id: i64,
}

/// A decoded node; why: TreeSHAP walks trees structurally, not through the packed encoding.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Node {
    /// Internal node.
    Branch(Branch),
    /// Leaf.
    Leaf(Leaf),
}

impl Node {
    /// The node's id in the ONNX file.
    pub fn onnx_id(&self) -> i64 {
        match self {
            Node::Branch(b) => b.onnx_id,
            Node::Leaf(l) => l.onnx_id,
        }
    }
}

/// One tree of a [`Forest`], borrowed; why: gives TreeSHAP structural access without copying.
#[derive(Debug, Clone, Copy)]
pub struct Tree<'a> {
    nodes: &'a [Packed],
    onnx_ids: &'a [i64],
    onnx_tree_id: i64,
    depth: usize,
    /// Global index of the root: links in `Packed` are global.
    root_global: usize,
}

impl<'a> Tree<'a> {
    /// Number of nodes (branches and leaves).
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Never true (a tree has at least its root); present for API symmetry with `len`.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// The tree id in the ONNX file.
    pub fn onnx_tree_id(&self) -> i64 {
        self.onnx_tree_id
    }

    /// Longest root-to-leaf path, in edges (0 for a single leaf); why: sizes TreeSHAP scratch.
    pub fn depth(&self) -> usize {
        self.depth
    }

    /// Node `i` (local index, `0` is the root); `None` when out of range.
    pub fn node(&self, i: usize) -> Option<Node> {
        let p = self.nodes.get(i)?;
        let onnx_id = self.onnx_ids.get(i).copied().unwrap_or(-1);
        Some(if p.feature == LEAF {
            Node::Leaf(Leaf {
                value: p.value,
                onnx_id,
            })
        } else {
            Node::Branch(Branch {
                feature: p.feature as usize,
                threshold: p.value,
                mode: Mode::from_bits(p.link >> MODE_SHIFT),
                missing_tracks_true: p.link & MISSING_BIT != 0,
                true_child: ((p.link & LINK_MASK) as usize).wrapping_sub(self.root_global),
                false_child: i + 1,
                onnx_id,
            })
        })
    }

    /// All nodes in local order (pre-order, false child first).
    pub fn nodes(&self) -> impl Iterator<Item = Node> + '_ {
        (0..self.nodes.len()).filter_map(move |i| self.node(i))
    }
}

const _: () = assert!(std::mem::size_of::<Packed>() == 12);

/// A binary tree ensemble, flattened; built from an ONNX `TreeEnsembleClassifier` node.
#[derive(Debug, Clone, PartialEq)]
pub struct Forest {
    trees: Trees,
    /// Input width the trees read (max feature id + 1).
    n_features: usize,
    /// All nodes share this mode (the common case), so traversal can skip per-node dispatch.
    uniform_mode: Option<Mode>,
}

/// What a reader of trees (the ONNX node, the encoded bytes) fills in; [`Forest::new`] derives
/// the rest, so both readers derive it the same way.
#[derive(Debug, Clone, PartialEq)]
struct Trees {
    nodes: Vec<Packed>,
    onnx_ids: Vec<i64>,
    /// Start of each tree in `nodes`, plus the total at the end.
    tree_starts: Vec<u32>,
    tree_ids: Vec<i64>,
    depths: Vec<usize>,
    base: f32,
    post: PostTransform,
    layout: Layout,
    labels: ClassLabels,
}

impl Forest {
    /// The forest of `trees`, with what their nodes determine: the input width they read and the
    /// mode every branch shares (if one).
    fn new(trees: Trees) -> Forest {
        let mut n_features = 0;
        let mut uniform_mode = None;
        let mut mixed = false;
        for p in trees.nodes.iter().filter(|p| p.feature != LEAF) {
            n_features = n_features.max(p.feature as usize + 1);
            let m = Mode::from_bits(p.link >> MODE_SHIFT);
            match uniform_mode {
                None => uniform_mode = Some(m),
                Some(u) if u != m => mixed = true,
                _ => {}
            }
        }
        Forest {
            trees,
            n_features,
            uniform_mode: if mixed { None } else { uniform_mode },
        }
    }

    /// Input width the trees need (max feature id + 1; 0 for an ensemble of bare leaves).
    pub fn n_features(&self) -> usize {
        self.n_features
    }

    /// Number of trees.
    pub fn n_trees(&self) -> usize {
        self.trees.depths.len()
    }

    /// Total node count (branches and leaves).
    pub fn n_nodes(&self) -> usize {
        self.trees.nodes.len()
    }

    /// Deepest tree's depth in edges; why: sizes TreeSHAP scratch once.
    pub fn max_depth(&self) -> usize {
        self.trees.depths.iter().copied().max().unwrap_or(0)
    }

    /// Base value added to the margin.
    pub fn base(&self) -> f32 {
        self.trees.base
    }

    /// The post transform.
    pub fn post_transform(&self) -> PostTransform {
        self.trees.post
    }

    /// Class labels.
    pub fn class_labels(&self) -> &ClassLabels {
        &self.trees.labels
    }

    /// Tree `t` (in ONNX first-appearance order, which is tree id order for onnxmltools exports).
    pub fn tree(&self, t: usize) -> Option<Tree<'_>> {
        let s = *self.trees.tree_starts.get(t)? as usize;
        let e = *self.trees.tree_starts.get(t + 1)? as usize;
        Some(Tree {
            nodes: self.trees.nodes.get(s..e)?,
            onnx_ids: self.trees.onnx_ids.get(s..e)?,
            onnx_tree_id: *self.trees.tree_ids.get(t)?,
            depth: *self.trees.depths.get(t)?,
            root_global: s,
        })
    }

    /// All trees in order.
    pub fn trees(&self) -> impl Iterator<Item = Tree<'_>> + '_ {
        (0..self.n_trees()).filter_map(move |t| self.tree(t))
    }

    /// Raw positive-class score: `Σ leaf + base`, accumulated in `f32` in onnxruntime's order.
    /// Missing features (a row shorter than [`Forest::n_features`]) read as NaN.
    #[inline]
    pub fn margin(&self, x: &[f32]) -> f32 {
        if x.len() < self.n_features {
            let mut padded = x.to_vec();
            padded.resize(self.n_features, f32::NAN);
            return self.margin_checked(&padded);
        }
        self.margin_checked(x)
    }

    #[inline]
    fn margin_checked(&self, x: &[f32]) -> f32 {
        match self.uniform_mode {
            Some(Mode::Leq) => self.sum::<0>(x),
            Some(Mode::Lt) => self.sum::<1>(x),
            Some(Mode::Gte) => self.sum::<2>(x),
            Some(Mode::Gt) => self.sum::<3>(x),
            Some(Mode::Eq) => self.sum::<4>(x),
            Some(Mode::Neq) => self.sum::<5>(x),
            None => self.sum::<MIXED>(x),
        }
    }

    /// Sums the leaves reached by `x` (`x.len() >= n_features`), with the mode fixed at compile
    /// time (`M < 6`) or read per node (`M == MIXED`).
    #[inline(always)]
    fn sum<const M: u32>(&self, x: &[f32]) -> f32 {
        let nodes = self.trees.nodes.as_slice();
        let mut s = 0.0f32;
        for &root in &self.trees.tree_starts[..self.trees.tree_starts.len() - 1] {
            let mut i = root as usize;
            while let Some(p) = nodes.get(i) {
                if p.feature == LEAF {
                    s += p.value;
                    break;
                }
                let v = x.get(p.feature as usize).copied().unwrap_or(f32::NAN);
                let mode = if M == MIXED {
                    p.link >> MODE_SHIFT & 7
                } else {
                    M
                };
                let c = match mode {
                    0 => v <= p.value,
                    1 => v < p.value,
                    2 => v >= p.value,
                    3 => v > p.value,
                    4 => v == p.value,
                    _ => v != p.value,
                };
                let go_true = c || (p.link & MISSING_BIT != 0 && v.is_nan());
                i = if go_true {
                    (p.link & LINK_MASK) as usize
                } else {
                    i + 1
                };
            }
        }
        s + self.trees.base
    }

    /// Positive-class probability (`probabilities(x)[1]`), as onnxruntime computes it.
    #[inline]
    pub fn probability(&self, x: &[f32]) -> f32 {
        self.transform(self.margin(x))[1]
    }

    /// Both probability columns from a margin, exactly as onnxruntime lays them out (see the
    /// module doc); why: the tract op must output what the ONNX graph promises.
    #[inline]
    pub fn transform(&self, s: f32) -> [f32; 2] {
        match (self.trees.post, self.trees.layout) {
            (PostTransform::Logistic, Layout::WeightsOnClass0 { .. }) => {
                [logistic(-s), logistic(s)]
            }
            (PostTransform::Logistic, Layout::WeightsOnClass1 { .. }) => {
                [logistic(0.0), logistic(s)]
            }
            (
                PostTransform::None,
                Layout::WeightsOnClass0 {
                    all_weights_positive: true,
                },
            ) => [1.0 - s, s],
            (
                PostTransform::None,
                Layout::WeightsOnClass0 {
                    all_weights_positive: false,
                },
            ) => [-s, s],
            (PostTransform::None, Layout::WeightsOnClass1 { .. }) => [0.0, s],
        }
    }

    /// Both probability columns for a row.
    pub fn probabilities(&self, x: &[f32]) -> [f32; 2] {
        self.transform(self.margin(x))
    }

    /// Index (0 or 1) of the label onnxruntime predicts for a margin.
    pub fn label_index(&self, s: f32) -> usize {
        let (Layout::WeightsOnClass0 {
            all_weights_positive: all_positive,
        }
        | Layout::WeightsOnClass1 {
            all_weights_positive: all_positive,
        }) = self.trees.layout;
        let threshold = if all_positive { 0.5 } else { 0.0 };
        usize::from(s > threshold)
    }
}

/// Per-node mode dispatch marker for [`Forest::sum`].
const MIXED: u32 = 7;
