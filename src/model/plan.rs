//! The model plan: tract parses and runs the ONNX graph, with `TreeEnsembleClassifier` served by our
//! flat [`Forest`] kernel ([`super::tree_op`]) instead of tract's built-in op.
//!
//! Why: tract-onnx 0.23.9's op costs milliseconds per row (it walks every earlier leaf per lookup
//! and builds an error per leaf visit), misreads `BRANCH_GTE` and gets the binary label wrong; its
//! ONNX framework lets a program register its own builder for an op name, so the model still loads
//! and runs through tract while the trees run in our kernel. tract's own op stays reachable through
//! [`Plan::load_reference`] for tests.
//!
//! Loading first rewrites the graph ([`super::graph`]), then types it with the input fact
//! `f32 [N, F]` (symbolic `N`: one plan serves one row or a batch).

use std::fmt;
use std::sync::{Arc, Mutex};

use tract_onnx::pb::{ModelProto, NodeProto};
use tract_onnx::tract_hir::internal::*;

use super::graph::prepare_graph;
use super::tree_op::{build_forest_op, ForestOp, PARSED};
use crate::model::error::ModelError;
use crate::model::forest::{decode_model, find_tree_node, EncodedForest, Forest, OP_TYPE};

/// The input width a plan is built for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Width {
    /// What the file declares, else what the trees read.
    Own,
    /// A caller's width.
    Given(usize),
    /// The card's feature count (errors name the card).
    Card(usize),
}

/// Which implementation of `TreeEnsembleClassifier` a plan uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kernel {
    /// Our [`Forest`] kernel.
    Forest,
    /// tract's built-in op (tests only).
    TractBuiltin,
}

/// A loaded model: the optimized tract plan plus the parsed trees; why: build once at start-up,
/// then score every event with no further parsing.
pub struct Plan {
    plan: Arc<TypedRunnableModel>,
    /// A reusable plan state (saves rebuilding per-node state on every call); `None` while in use.
    state: Mutex<Option<TypedSimpleState>>,
    forest: Arc<Forest>,
    parts: Parts,
}

impl fmt::Debug for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Plan")
            .field("kernel", &self.parts.kernel)
            .field("n_features", &self.parts.width)
            .field("n_trees", &self.forest.n_trees())
            .field("n_nodes", &self.forest.n_nodes())
            .finish()
    }
}

impl Plan {
    /// Parses, validates and optimizes a model with our tree kernel; why: the production path.
    pub fn load(onnx_bytes: &[u8]) -> Result<Plan, ModelError> {
        Plan::build(decode_model(onnx_bytes)?, Kernel::Forest, Width::Own, false)
    }

    /// [`Plan::load`], but typed by tract-onnx's parsing and inference even where the graph is the
    /// tree op alone; why: tests check the direct wiring against tract's own reading of the file.
    pub fn load_through_tract_onnx(onnx_bytes: &[u8]) -> Result<Plan, ModelError> {
        Plan::build(decode_model(onnx_bytes)?, Kernel::Forest, Width::Own, true)
    }

    /// [`Plan::load`] for a card of `n` features; why: one build at the card's width instead of
    /// a build at the file's width and another at the card's.
    pub fn load_for_card(onnx_bytes: &[u8], n: usize) -> Result<Plan, ModelError> {
        Plan::build(
            decode_model(onnx_bytes)?,
            Kernel::Forest,
            Width::Card(n),
            false,
        )
    }

    /// Same graph preparation, but with tract's built-in `TreeEnsembleClassifier`; why: an
    /// independent reference for tests. Slow (ms per row); use only its probabilities.
    pub fn load_reference(onnx_bytes: &[u8]) -> Result<Plan, ModelError> {
        Plan::build(
            decode_model(onnx_bytes)?,
            Kernel::TractBuiltin,
            Width::Own,
            true,
        )
    }

    /// Rebuilds the plan for an input width of `n` (e.g. the card's feature count, which may exceed
    /// the features the trees read); why: the plan checks shapes against the width it was built
    /// for. Fails when `n` is smaller than the trees need or contradicts the width the file declares.
    pub fn with_input_width(self, n: usize) -> Result<Plan, ModelError> {
        if n == self.parts.width {
            return Ok(self);
        }
        match self.parts.proto {
            Some(proto) => Plan::build(
                proto,
                self.parts.kernel,
                Width::Given(n),
                self.parts.via_tract,
            ),
            None => Plan::from_forest(self.forest, self.parts.declared_width, Width::Given(n)),
        }
    }

    fn build(
        original: ModelProto,
        kernel: Kernel,
        asked: Width,
        via_tract: bool,
    ) -> Result<Plan, ModelError> {
        let mut proto = original.clone();
        find_tree_node(&proto)?; // the clearest error first, for a graph without (one) tree op
        let declared_width = prepare_graph(&mut proto)?;
        let tree_node = find_tree_node(&proto)?;
        let parsed = Arc::new(Forest::from_node(tree_node)?);
        let width = input_width(asked, declared_width, parsed.n_features())?;
        let direct = kernel == Kernel::Forest && !via_tract && forest_alone(&proto, tree_node);
        let typed = if direct {
            typed_forest(parsed.clone(), width)?
        } else {
            typed_by_tract(&proto, tree_node, &parsed, kernel, width)?
        };
        let parts = Parts {
            width,
            declared_width,
            proto: Some(original),
            kernel,
            via_tract,
            direct,
        };
        Plan::finish(typed, parsed, parts)
    }

    /// The plan of trees read from their bytes ([`EncodedForest`]) for a card of `n` features,
    /// wired directly; why: a load that never parses ONNX. The bytes are derived only from a
    /// graph that is the tree op alone ([`Plan::encoded`]), so the plan is the one the file gives.
    pub fn from_encoded(encoded: EncodedForest, n: usize) -> Result<Plan, ModelError> {
        let EncodedForest {
            forest,
            declared_width,
            ..
        } = encoded;
        Plan::from_forest(Arc::new(forest), declared_width, Width::Card(n))
    }

    fn from_forest(
        forest: Arc<Forest>,
        declared_width: Option<usize>,
        asked: Width,
    ) -> Result<Plan, ModelError> {
        let width = input_width(asked, declared_width, forest.n_features())?;
        let typed = typed_forest(forest.clone(), width)?;
        let parts = Parts {
            width,
            declared_width,
            proto: None,
            kernel: Kernel::Forest,
            via_tract: false,
            direct: true,
        };
        Plan::finish(typed, forest, parts)
    }

    /// The trees of an ONNX file as bytes ([`EncodedForest`]), after the same checks as a load;
    /// refused for a graph that is more than the tree op (it needs tract-onnx's typing).
    pub fn encoded(onnx_bytes: &[u8]) -> Result<Vec<u8>, ModelError> {
        Plan::load(onnx_bytes)?.encode(onnx_bytes)
    }

    /// [`Plan::encoded`] of a plan already loaded from `onnx_bytes` (at any input width).
    pub fn encode(&self, onnx_bytes: &[u8]) -> Result<Vec<u8>, ModelError> {
        if !self.wired_directly() {
            return Err(ModelError::Onnx(
                "the graph is more than the tree op: it has no encoded forest".into(),
            ));
        }
        EncodedForest {
            onnx_sha256: crate::model::sha256_hex(onnx_bytes),
            declared_width: self.parts.declared_width,
            forest: Forest::clone(&self.forest),
        }
        .to_bytes()
    }

    fn finish(typed: TypedModel, parsed: Arc<Forest>, parts: Parts) -> Result<Plan, ModelError> {
        let forest = match parts.kernel {
            Kernel::Forest => {
                let mut ops = typed.nodes().iter().filter_map(|n| n.op_as::<ForestOp>());
                match (ops.next(), ops.next()) {
                    (Some(op), None) => op.forest.clone(),
                    _ => {
                        return Err(ModelError::Plan(
                            "the optimized plan does not hold exactly one forest kernel".into(),
                        ))
                    }
                }
            }
            Kernel::TractBuiltin => parsed,
        };
        let output = typed.output_fact(0)?;
        if output.datum_type != f32::datum_type()
            || output.rank() != 2
            || output.shape[1] != 2.to_dim()
        {
            return Err(ModelError::Onnx(format!(
                "the probabilities output is {output:?}, expected f32 [N, 2]"
            )));
        }
        // The plain order: tract's memory-saving order search buys nothing on a graph of one to
        // three nodes and was a tenth of a cold load in wasm.
        let options = RunOptions {
            skip_order_opt_ram: true,
            ..RunOptions::default()
        };
        let plan = typed.into_runnable_with_options(&options)?;
        let state = plan.spawn()?;
        Ok(Plan {
            plan,
            state: Mutex::new(Some(state)),
            forest,
            parts,
        })
    }

    /// Input width the plan expects (one value per feature, in card order).
    pub fn n_features(&self) -> usize {
        self.parts.width
    }

    /// Whether the typed model was wired directly (the graph is the tree op alone) rather than
    /// typed by tract-onnx's inference.
    pub fn wired_directly(&self) -> bool {
        self.parts.direct
    }

    /// Input width the ONNX file declares, if it declares one.
    pub fn declared_width(&self) -> Option<usize> {
        self.parts.declared_width
    }

    /// The parsed trees (the very ones the plan runs); why: TreeSHAP must explain what scored.
    pub fn forest(&self) -> &Forest {
        &self.forest
    }

    /// Positive-class probability of one row, through the tract plan; why: the per-event call.
    pub fn predict(&self, x: &[f32]) -> Result<f32, ModelError> {
        let out = self.run(x, 1)?;
        let probs = plain_f32(&out)?;
        probs
            .get(1)
            .copied()
            .ok_or_else(|| ModelError::Plan("the plan returned no probability".into()))
    }

    /// Positive-class probabilities of `n_rows` rows laid out row-major in `rows`; why: backfills
    /// and evaluation score many rows with one plan run.
    pub fn predict_batch(&self, rows: &[f32], n_rows: usize) -> Result<Vec<f32>, ModelError> {
        if n_rows == 0 && rows.is_empty() {
            return Ok(Vec::new());
        }
        let out = self.run(rows, n_rows)?;
        let probs = plain_f32(&out)?;
        if probs.len() != 2 * n_rows {
            return Err(ModelError::Plan(format!(
                "the plan returned {} values for {n_rows} rows",
                probs.len()
            )));
        }
        Ok(probs.chunks_exact(2).map(|p| p[1]).collect())
    }

    /// Both probability columns for `n_rows` rows (row-major `[p0, p1]` pairs); why: tests compare
    /// the whole output with onnxruntime.
    pub fn probabilities(&self, rows: &[f32], n_rows: usize) -> Result<Vec<f32>, ModelError> {
        let out = self.run(rows, n_rows)?;
        Ok(plain_f32(&out)?.to_vec())
    }

    fn run(&self, rows: &[f32], n_rows: usize) -> Result<TValue, ModelError> {
        if n_rows.checked_mul(self.parts.width) != Some(rows.len()) {
            return Err(ModelError::Plan(format!(
                "expected {n_rows} × {} feature values, got {}",
                self.parts.width,
                rows.len()
            )));
        }
        let input = Tensor::from_shape(&[n_rows, self.parts.width], rows)?;
        // Reuse the cached state when free; a concurrent caller spawns its own.
        let cached = self.state.try_lock().ok().and_then(|mut s| s.take());
        let mut state = match cached {
            Some(s) => s,
            None => self.plan.spawn()?,
        };
        let result = state.run(tvec!(input.into_tvalue()));
        if let Ok(mut slot) = self.state.try_lock() {
            if slot.is_none() {
                *slot = Some(state);
            }
        }
        let mut out = result?;
        if out.len() != 1 {
            return Err(ModelError::Plan(format!(
                "the plan returned {} outputs",
                out.len()
            )));
        }
        Ok(out.remove(0))
    }
}

/// What a plan is, besides its tract model and trees.
struct Parts {
    width: usize,
    declared_width: Option<usize>,
    /// The file as decoded, kept to rebuild the plan for another input width (`None`: built from
    /// an encoded forest, rebuilt from the forest).
    proto: Option<ModelProto>,
    kernel: Kernel,
    /// Typed by tract-onnx even where the direct wiring applies.
    via_tract: bool,
    /// Wired directly (the tree op alone), not typed by tract-onnx.
    direct: bool,
}

/// The input width of a plan asked for `asked`, given what the file declares and the trees read.
fn input_width(
    asked: Width,
    declared_width: Option<usize>,
    need: usize,
) -> Result<usize, ModelError> {
    if let Some(d) = declared_width {
        if d < need {
            return Err(ModelError::Onnx(format!(
                "the graph input declares {d} features but the trees read feature index {}",
                need - 1
            )));
        }
    }
    Ok(match (asked, declared_width) {
        (Width::Card(w), _) if w < need => {
            return Err(ModelError::Card(format!(
                "the trees read feature index {} but the card lists {w} features",
                need - 1
            )))
        }
        (Width::Given(w) | Width::Card(w), Some(d)) if w != d => {
            return Err(ModelError::Onnx(format!(
                "the graph input declares {d} features, not {w}"
            )))
        }
        (Width::Given(w), _) if w < need => {
            return Err(ModelError::Onnx(format!(
                "an input width of {w} is too small: the trees read feature index {}",
                need - 1
            )))
        }
        (Width::Given(w) | Width::Card(w), _) => w,
        (Width::Own, Some(d)) => d,
        (Width::Own, None) => need.max(1),
    })
}

/// Whether the prepared graph is the tree op alone: its input the graph's input, its probabilities
/// reaching the graph's output through `Identity` nodes only. Why: then the typed model can be
/// wired directly (source → kernel), skipping tract-onnx's parsing and type inference, which is
/// most of a cold load's time in wasm (each function run once is compiled on first call).
fn forest_alone(proto: &ModelProto, tree: &NodeProto) -> bool {
    let Some(graph) = proto.graph.as_ref() else {
        return false;
    };
    let ([input], [output]) = (graph.input.as_slice(), graph.output.as_slice()) else {
        return false;
    };
    if !graph.initializer.is_empty() || tree.input.as_slice() != [input.name.clone()] {
        return false;
    }
    let Some(probs) = tree.output.get(1) else {
        return false;
    };
    let mut name = &output.name;
    let mut identities = 0;
    while name != probs {
        let mut from = graph.node.iter().filter(|n| n.output.contains(name));
        match (from.next(), from.next()) {
            (Some(n), None) if n.op_type == "Identity" && n.input.len() == 1 => {
                name = &n.input[0];
                identities += 1;
            }
            _ => return false,
        }
    }
    identities + 1 == graph.node.len()
}

/// The typed model of a tree op alone: `f32 [N, width]` → the kernel's probabilities.
fn typed_forest(forest: Arc<Forest>, width: usize) -> Result<TypedModel, ModelError> {
    let mut model = TypedModel::default();
    let n = model.symbols.sym("N");
    let x = model.add_source("input", f32::fact([n.to_dim(), width.to_dim()]))?;
    let probs = model.wire_node("forest", ForestOp { forest }, &[x])?;
    model.select_output_outlets(&probs)?;
    Ok(model)
}

/// The typed model by tract-onnx: parsed with our op builders, then typed by tract's inference.
fn typed_by_tract(
    proto: &ModelProto,
    tree_node: &NodeProto,
    parsed: &Arc<Forest>,
    kernel: Kernel,
    width: usize,
) -> Result<TypedModel, ModelError> {
    let onnx = framework(kernel)?.with_ignore_value_info(true);
    if kernel == Kernel::Forest {
        PARSED.with(|p| {
            p.replace(Some((
                std::ptr::from_ref(tree_node) as usize,
                parsed.clone(),
            )))
        });
    }
    let model = onnx.model_for_proto_model(proto);
    PARSED.with(|p| p.take());
    let mut model = model?;
    let n = model.symbols.sym("N");
    model.set_input_fact(0, f32::fact(&[n.to_dim(), width.to_dim()]).into())?;
    model.set_output_fact(0, InferenceFact::default())?;
    // Typed, not optimized: the graph is one tree op (plus trivial wrappers), which tract's
    // optimizer cannot improve, while linking it (codegen for every op family, FFT, matmul
    // kernels) roughly doubles the wasm module.
    Ok(match kernel {
        Kernel::Forest => model.into_typed()?,
        #[cfg(not(target_arch = "wasm32"))]
        Kernel::TractBuiltin => model.into_optimized()?,
        #[cfg(target_arch = "wasm32")]
        Kernel::TractBuiltin => model.into_typed()?,
    })
}

fn plain_f32(t: &TValue) -> Result<&[f32], ModelError> {
    t.as_plain_ram()
        .ok_or_else(|| ModelError::Plan("output tensor is not in memory".into()))?
        .as_slice::<f32>()
        .map_err(ModelError::Tract)
}

/// Never called: it only makes the module reference `__wasm_call_ctors`.
///
/// Why: tract registers runtimes, model transforms and linalg kernels through `inventory` static
/// constructors, none of which our plan (one tree op, `Identity`, `Const`, `Cast`) uses. A module
/// that never references `__wasm_call_ctors` gets *every* export wrapped by wasm-ld so that it runs
/// all constructors first (tens of µs per JS→wasm call); referencing it switches the wrapping off,
/// and since nothing calls it, `www/wasm-gc.mjs` can drop the constructors and all they alone reach
/// from the browser module (with [`fold_mul_by_one`]; its size is measured in BENCHMARKS.md).
#[cfg(target_arch = "wasm32")]
#[doc(hidden)]
pub fn static_constructors_are_not_run() {
    extern "C" {
        fn __wasm_call_ctors();
    }
    // SAFETY: the linker-made constructor function, with no arguments. Never called (see above).
    unsafe { __wasm_call_ctors() }
}

/// The ONNX framework a kernel runs under.
///
/// Production registers exactly the ops [`super::graph::ALLOWED_OPS`] names; why: `tract_onnx::onnx()` registers
/// every ONNX op, and since ops are looked up at run time, all of them would be linked into the
/// wasm builds. tract's full set (with its own tree op) is kept for the native reference only.
fn framework(kernel: Kernel) -> Result<tract_onnx::model::Onnx, ModelError> {
    match kernel {
        Kernel::Forest => {
            let mut onnx = tract_onnx::model::Onnx::default();
            let reg = &mut onnx.op_register;
            reg.insert(OP_TYPE, build_forest_op);
            reg.insert("Identity", |_, _| {
                Ok((
                    Box::<tract_onnx::tract_hir::ops::identity::Identity>::default(),
                    vec![],
                ))
            });
            reg.insert("Cast", |_, node| {
                let mut to = node.get_attr::<DatumType>("to")?;
                if to == i64::datum_type() {
                    to = TDim::datum_type(); // as tract-onnx does
                }
                Ok((Box::new(tract_onnx::tract_hir::ops::cast::cast(to)), vec![]))
            });
            reg.insert("Constant", |ctx, node| {
                let value = if let Some(v) = node.get_attr_opt("value")? {
                    ctx.load_tensor(v)?
                } else if let Some(v) = node.get_attr_opt::<f32>("value_float")? {
                    tensor0(v)
                } else if let Some(v) = node.get_attr_opt::<i64>("value_int")? {
                    tensor0(v)
                } else {
                    bail!("Constant: only value, value_float and value_int are supported")
                };
                Ok((
                    Box::new(tract_onnx::tract_hir::ops::konst::Const::new(
                        value.into_arc_tensor(),
                    )?),
                    vec![],
                ))
            });
            Ok(onnx)
        }
        #[cfg(not(target_arch = "wasm32"))]
        Kernel::TractBuiltin => Ok(tract_onnx::onnx()),
        #[cfg(target_arch = "wasm32")]
        Kernel::TractBuiltin => Err(ModelError::Onnx(
            "tract's reference tree op is not built for wasm".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_bytes_are_an_onnx_error() {
        let e = Plan::load(b"definitely not protobuf").unwrap_err();
        assert!(matches!(e, ModelError::Onnx(_)), "{e}");
    }
}
