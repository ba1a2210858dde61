//! The model plan: tract parses and runs the ONNX graph, with `TreeEnsembleClassifier` served by our
//! flat [`Forest`] kernel instead of tract's built-in op.
//!
//! Why: tract-onnx 0.23.9's op costs milliseconds per row (it walks every earlier leaf per lookup
//! and builds an error per leaf visit), misreads `BRANCH_GTE` and gets the binary label wrong; its
//! ONNX framework lets a program register its own builder for an op name, so the model still loads
//! and runs through tract while the trees run in our kernel. tract's own op stays reachable through
//! [`TractModel::load_reference`] for tests.
//!
//! Loading prepares the graph before tract sees it:
//! * it must contain exactly one `TreeEnsembleClassifier` and otherwise only the ops onnxmltools
//!   wraps around it ([`ALLOWED_OPS`]); anything else is refused with the list of offenders;
//! * only the probabilities output is kept: the output fed to a `ZipMap` when there is one (the
//!   `ZipMap` is dropped, i.e. the output is re-pointed to its input), else the output named
//!   `probabilities`, else the only float output. The `label` output (a `Cast` to INT64 that tract
//!   maps to TDim, and wrong with tract's own op) is pruned with everything it alone needs;
//! * the single graph input gets the fact `f32 [N, F]` with a symbolic `N`, so one plan serves one
//!   row or a batch; `F` is the declared width (or the trees' width when the file leaves it open).

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fmt;
use std::sync::{Arc, Mutex};

use tract_onnx::model::ParsingContext;
use tract_onnx::pb::tensor_shape_proto::dimension::Value as DimValue;
use tract_onnx::pb::type_proto::Value as TypeValue;
use tract_onnx::pb::{ModelProto, NodeProto, ValueInfoProto};
use tract_onnx::tract_hir::internal::*;

use crate::model::error::ModelError;
use crate::model::forest::{decode_model, find_tree_node, ClassLabels, Forest, OP_TYPE};

/// Op types a served graph may contain; why: the onnxmltools wrapping (`Identity`, `Cast` for the
/// label, `Mul` by a constant one) is harmless, anything else means a model we did not validate.
/// `ZipMap` is accepted too but removed before parsing, and `Mul` must be by a constant 1, which is
/// folded away (see [`fold_mul_by_one`]).
pub const ALLOWED_OPS: &[&str] = &[OP_TYPE, "Identity", "Cast", "Mul", "Constant"];

/// ONNX `TensorProto.DataType.FLOAT`.
const ONNX_FLOAT: i32 = 1;

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
pub struct TractModel {
    plan: Arc<TypedRunnableModel>,
    /// A reusable plan state (saves rebuilding per-node state on every call); `None` while in use.
    state: Mutex<Option<TypedSimpleState>>,
    forest: Arc<Forest>,
    width: usize,
    declared_width: Option<usize>,
    /// The file as decoded, kept to rebuild the plan for another input width.
    proto: ModelProto,
    kernel: Kernel,
}

impl fmt::Debug for TractModel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TractModel")
            .field("kernel", &self.kernel)
            .field("n_features", &self.width)
            .field("n_trees", &self.forest.n_trees())
            .field("n_nodes", &self.forest.n_nodes())
            .finish()
    }
}

impl TractModel {
    /// Parses, validates and optimizes a model with our tree kernel; why: the production path.
    pub fn load(onnx_bytes: &[u8]) -> Result<TractModel, ModelError> {
        TractModel::build(decode_model(onnx_bytes)?, Kernel::Forest, None)
    }

    /// Same graph preparation, but with tract's built-in `TreeEnsembleClassifier`; why: an
    /// independent reference for tests. Slow (ms per row); use only its probabilities.
    pub fn load_reference(onnx_bytes: &[u8]) -> Result<TractModel, ModelError> {
        TractModel::build(decode_model(onnx_bytes)?, Kernel::TractBuiltin, None)
    }

    /// Rebuilds the plan for an input width of `n` (e.g. the card's feature count, which may exceed
    /// the features the trees read); why: the plan checks shapes against the width it was built
    /// for. Fails when `n` is smaller than the trees need or contradicts the width the file declares.
    pub fn with_input_width(self, n: usize) -> Result<TractModel, ModelError> {
        if n == self.width {
            return Ok(self);
        }
        TractModel::build(self.proto, self.kernel, Some(n))
    }

    fn build(
        original: ModelProto,
        kernel: Kernel,
        width: Option<usize>,
    ) -> Result<TractModel, ModelError> {
        let mut proto = original.clone();
        find_tree_node(&proto)?; // the clearest error first, for a graph without (one) tree op
        let declared_width = prepare_graph(&mut proto)?;
        let tree_node = find_tree_node(&proto)?;
        let parsed = Arc::new(Forest::from_node(tree_node)?);
        let need = parsed.n_features();
        if let Some(d) = declared_width {
            if d < need {
                return Err(ModelError::Onnx(format!(
                    "the graph input declares {d} features but the trees read feature index {}",
                    need - 1
                )));
            }
        }
        let width = match (width, declared_width) {
            (Some(w), Some(d)) if w != d => {
                return Err(ModelError::Onnx(format!(
                    "the graph input declares {d} features, not {w}"
                )))
            }
            (Some(w), _) if w < need => {
                return Err(ModelError::Onnx(format!(
                    "an input width of {w} is too small: the trees read feature index {}",
                    need - 1
                )))
            }
            (Some(w), _) => w,
            (None, Some(d)) => d,
            (None, None) => need.max(1),
        };

        let onnx = framework(kernel)?.with_ignore_value_info(true);
        let tract_err = |e: TractError| ModelError::Tract(format!("{e:#}"));
        if kernel == Kernel::Forest {
            PARSED.with(|p| {
                p.replace(Some((
                    std::ptr::from_ref(tree_node) as usize,
                    parsed.clone(),
                )))
            });
        }
        let model = onnx.model_for_proto_model(&proto);
        PARSED.with(|p| p.take());
        let mut model = model.map_err(tract_err)?;
        let n = model.symbols.sym("N");
        model
            .set_input_fact(0, f32::fact(&[n.to_dim(), width.to_dim()]).into())
            .map_err(tract_err)?;
        model
            .set_output_fact(0, InferenceFact::default())
            .map_err(tract_err)?;
        // Typed, not optimized: the graph is one tree op (plus trivial wrappers), which tract's
        // optimizer cannot improve, while linking it (codegen for every op family, FFT, matmul
        // kernels) roughly doubles the wasm module.
        let typed = match kernel {
            Kernel::Forest => model.into_typed().map_err(tract_err)?,
            #[cfg(not(target_arch = "wasm32"))]
            Kernel::TractBuiltin => model.into_optimized().map_err(tract_err)?,
            #[cfg(target_arch = "wasm32")]
            Kernel::TractBuiltin => model.into_typed().map_err(tract_err)?,
        };

        let forest = match kernel {
            Kernel::Forest => {
                let mut ops = typed.nodes().iter().filter_map(|n| n.op_as::<ForestOp>());
                match (ops.next(), ops.next()) {
                    (Some(op), None) => op.forest.clone(),
                    _ => {
                        return Err(ModelError::Tract(
                            "the optimized plan does not hold exactly one forest kernel".into(),
                        ))
                    }
                }
            }
            Kernel::TractBuiltin => parsed,
        };
        let output = typed.output_fact(0).map_err(tract_err)?;
        if output.datum_type != f32::datum_type()
            || output.rank() != 2
            || output.shape[1] != 2.to_dim()
        {
            return Err(ModelError::Onnx(format!(
                "the probabilities output is {output:?}, expected f32 [N, 2]"
            )));
        }
        let plan = typed.into_runnable().map_err(tract_err)?;
        let state = plan.spawn().map_err(tract_err)?;
        Ok(TractModel {
            plan,
            state: Mutex::new(Some(state)),
            forest,
            width,
            declared_width,
            proto: original,
            kernel,
        })
    }

    /// Input width the plan expects (one value per feature, in card order).
    pub fn n_features(&self) -> usize {
        self.width
    }

    /// Input width the ONNX file declares, if it declares one.
    pub fn declared_width(&self) -> Option<usize> {
        self.declared_width
    }

    /// The parsed trees (the very ones the plan runs); why: TreeSHAP must explain what scored.
    pub fn forest(&self) -> &Forest {
        &self.forest
    }

    /// Shared handle to the parsed trees.
    pub fn forest_arc(&self) -> Arc<Forest> {
        self.forest.clone()
    }

    /// Positive-class probability of one row, through the tract plan; why: the per-event call.
    pub fn predict(&self, x: &[f32]) -> Result<f32, ModelError> {
        let out = self.run(x, 1)?;
        let probs = plain_f32(&out)?;
        probs
            .get(1)
            .copied()
            .ok_or_else(|| ModelError::Tract("the plan returned no probability".into()))
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
            return Err(ModelError::Tract(format!(
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
        if n_rows.checked_mul(self.width) != Some(rows.len()) {
            return Err(ModelError::Tract(format!(
                "expected {n_rows} × {} feature values, got {}",
                self.width,
                rows.len()
            )));
        }
        let tract_err = |e: TractError| ModelError::Tract(format!("{e:#}"));
        let input = Tensor::from_shape(&[n_rows, self.width], rows).map_err(tract_err)?;
        // Reuse the cached state when free; a concurrent caller spawns its own.
        let cached = self.state.try_lock().ok().and_then(|mut s| s.take());
        let mut state = match cached {
            Some(s) => s,
            None => self.plan.spawn().map_err(tract_err)?,
        };
        let result = state.run(tvec!(input.into_tvalue()));
        if let Ok(mut slot) = self.state.try_lock() {
            if slot.is_none() {
                *slot = Some(state);
            }
        }
        let mut out = result.map_err(tract_err)?;
        if out.len() != 1 {
            return Err(ModelError::Tract(format!(
                "the plan returned {} outputs",
                out.len()
            )));
        }
        Ok(out.remove(0))
    }
}

fn plain_f32(t: &TValue) -> Result<&[f32], ModelError> {
    t.as_plain_ram()
        .ok_or_else(|| ModelError::Tract("output tensor is not in memory".into()))?
        .as_slice::<f32>()
        .map_err(|e| ModelError::Tract(format!("{e:#}")))
}

/// Never called: it only makes the module reference `__wasm_call_ctors`.
///
/// Why: tract registers runtimes, model transforms and linalg kernels through `inventory` static
/// constructors, none of which our plan (one tree op, `Identity`, `Const`, `Cast`) uses. A module
/// that never references `__wasm_call_ctors` gets *every* export wrapped by wasm-ld so that it runs
/// all constructors first (tens of µs per JS→wasm call); referencing it switches the wrapping off,
/// and since nothing calls it, `www/wasm-gc.mjs` can drop the constructors and all they alone reach
/// from the browser module (measured: 1.42 → 0.8 MB gzipped; 0.66 MB with [`fold_mul_by_one`]).
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
/// Production registers exactly the ops [`ALLOWED_OPS`] names; why: `tract_onnx::onnx()` registers
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

/// Validates the graph and rewires it to a single probabilities output; returns the declared input
/// width (when the file gives a concrete one).
fn prepare_graph(proto: &mut ModelProto) -> Result<Option<usize>, ModelError> {
    let onnx = |m: String| ModelError::Onnx(m);
    let graph = proto
        .graph
        .as_mut()
        .ok_or_else(|| onnx("the model has no graph".into()))?;

    // Unsupported ops, listed.
    let bad: BTreeSet<&str> = graph
        .node
        .iter()
        .map(|n| n.op_type.as_str())
        .filter(|op| !ALLOWED_OPS.contains(op) && *op != "ZipMap")
        .collect();
    if !bad.is_empty() {
        return Err(onnx(format!(
            "unsupported op type(s) in the graph: {} (allowed: {}, ZipMap)",
            bad.into_iter().collect::<Vec<_>>().join(", "),
            ALLOWED_OPS.join(", ")
        )));
    }

    // The single real input.
    let inits: HashSet<&str> = graph.initializer.iter().map(|t| t.name.as_str()).collect();
    let inputs: Vec<&ValueInfoProto> = graph
        .input
        .iter()
        .filter(|i| !inits.contains(i.name.as_str()))
        .collect();
    let input = match inputs.as_slice() {
        [i] => *i,
        _ => {
            return Err(onnx(format!(
                "the graph has {} inputs; exactly one (the feature matrix) is supported",
                inputs.len()
            )))
        }
    };
    let declared_width = match input.r#type.as_ref().and_then(|t| t.value.as_ref()) {
        Some(TypeValue::TensorType(t)) => {
            if t.elem_type != ONNX_FLOAT {
                return Err(onnx(format!(
                    "input {:?} has element type {} but float32 is required",
                    input.name, t.elem_type
                )));
            }
            match t.shape.as_ref().map(|s| s.dim.as_slice()) {
                None => None,
                Some([_, w]) => match w.value {
                    Some(DimValue::DimValue(w)) if w > 0 => Some(w as usize),
                    Some(DimValue::DimValue(w)) => {
                        return Err(onnx(format!("input {:?} declares width {w}", input.name)))
                    }
                    _ => None,
                },
                Some(dims) => {
                    return Err(onnx(format!(
                        "input {:?} has rank {}; a [N, F] matrix is required",
                        input.name,
                        dims.len()
                    )))
                }
            }
        }
        None => None,
    };
    let input_name = input.name.clone();
    // Only the one input stays (initializers listed as inputs are constants, tract loads them).
    graph
        .input
        .retain(|i| i.name == input_name || inits.contains(i.name.as_str()));

    // Which tensor holds the probabilities.
    let zipmaps: Vec<&NodeProto> = graph
        .node
        .iter()
        .filter(|n| n.op_type == "ZipMap")
        .collect();
    let probs =
        match zipmaps.as_slice() {
            [] => {
                let named: Vec<&ValueInfoProto> = graph
                    .output
                    .iter()
                    .filter(|o| o.name == "probabilities")
                    .collect();
                let floats: Vec<&ValueInfoProto> = graph
                    .output
                    .iter()
                    .filter(|o| {
                        matches!(o.r#type.as_ref().and_then(|t| t.value.as_ref()),
                        Some(TypeValue::TensorType(t)) if t.elem_type == ONNX_FLOAT)
                    })
                    .collect();
                match (named.as_slice(), floats.as_slice()) {
                    ([o], _) | ([], [o]) => o.name.clone(),
                    _ => return Err(onnx(
                        "cannot tell which graph output holds the probabilities (no output named \
                         \"probabilities\" and not exactly one float output)"
                            .into(),
                    )),
                }
            }
            [z] => z
                .input
                .first()
                .cloned()
                .ok_or_else(|| onnx("the ZipMap node has no input".into()))?,
            _ => {
                return Err(onnx(format!(
                    "the graph has {} ZipMap nodes",
                    zipmaps.len()
                )))
            }
        };

    // Keep only what the probabilities need.
    let producer: HashMap<&str, usize> = graph
        .node
        .iter()
        .enumerate()
        .flat_map(|(i, n)| n.output.iter().map(move |o| (o.as_str(), i)))
        .collect();
    let mut keep = vec![false; graph.node.len()];
    let mut todo: Vec<&str> = vec![probs.as_str()];
    let mut seen: HashSet<&str> = HashSet::new();
    while let Some(name) = todo.pop() {
        if !seen.insert(name) {
            continue;
        }
        if let Some(&i) = producer.get(name) {
            if !keep[i] {
                keep[i] = true;
                todo.extend(
                    graph.node[i]
                        .input
                        .iter()
                        .map(String::as_str)
                        .filter(|s| !s.is_empty()),
                );
            }
        }
    }
    let tree_kept = graph
        .node
        .iter()
        .zip(&keep)
        .any(|(n, k)| *k && n.op_type == OP_TYPE);
    if !tree_kept {
        return Err(onnx(format!(
            "the probabilities output {probs:?} does not depend on the {OP_TYPE} node"
        )));
    }
    let mut k = keep.into_iter();
    graph.node.retain(|_| k.next().unwrap_or(false));
    graph.output = vec![ValueInfoProto {
        name: probs,
        ..Default::default()
    }];
    fold_mul_by_one(graph)?;
    Ok(declared_width)
}

/// Turns each `Mul` by a constant one (onnxmltools multiplies the probabilities by an initializer
/// `one`) into an `Identity` and drops the constants nothing reads any more; refuses any other
/// `Mul`. Why: tract's element-wise arithmetic (every datum type, broadcasting, its rewrites) is
/// about a sixth of the browser module, for a multiplication that changes nothing.
fn fold_mul_by_one(graph: &mut tract_onnx::pb::GraphProto) -> Result<(), ModelError> {
    let constant_one = |name: &str, graph: &tract_onnx::pb::GraphProto| -> bool {
        let tensor = graph
            .initializer
            .iter()
            .find(|t| t.name == name)
            .or_else(|| {
                graph
                    .node
                    .iter()
                    .filter(|n| n.op_type == "Constant" && n.output.iter().any(|o| o == name))
                    .flat_map(|n| n.attribute.iter())
                    .find(|a| a.name == "value")
                    .and_then(|a| a.t.as_ref())
            });
        tensor.is_some_and(all_ones)
    };
    let mut folds = Vec::new();
    for (i, node) in graph.node.iter().enumerate() {
        if node.op_type != "Mul" {
            continue;
        }
        let other = match node.input.as_slice() {
            [a, b] if constant_one(b, graph) => a.clone(),
            [a, b] if constant_one(a, graph) => b.clone(),
            _ => {
                return Err(ModelError::Onnx(format!(
                    "Mul node {:?}: only a multiplication by a constant 1 is supported",
                    node.name
                )))
            }
        };
        folds.push((i, other));
    }
    for (i, other) in folds {
        if let Some(node) = graph.node.get_mut(i) {
            node.op_type = "Identity".into();
            node.input = vec![other];
        }
    }
    let read: HashSet<String> = graph.node.iter().flat_map(|n| n.input.clone()).collect();
    graph
        .node
        .retain(|n| n.op_type != "Constant" || n.output.iter().any(|o| read.contains(o)));
    let unread = |name: &str| !read.contains(name);
    let dropped: HashSet<String> = graph
        .initializer
        .iter()
        .filter(|t| unread(&t.name))
        .map(|t| t.name.clone())
        .collect();
    graph.initializer.retain(|t| !dropped.contains(&t.name));
    graph.input.retain(|i| !dropped.contains(&i.name));
    Ok(())
}

/// A float or double tensor, non-empty, every value exactly 1 — read by tract's own ONNX tensor
/// loader (the one constants go through), so what is checked is what tract would load.
fn all_ones(t: &tract_onnx::pb::TensorProto) -> bool {
    let loaded =
        tract_onnx::tensor::load_tensor(&tract_onnx::data_resolver::MmapDataResolver, t, None);
    let Ok(tensor) = loaded else { return false };
    if ![f32::datum_type(), f64::datum_type()].contains(&tensor.datum_type()) {
        return false;
    }
    let Ok(values) = tensor.cast_to::<f64>() else {
        return false;
    };
    let ones = values.try_as_plain_ram().and_then(|v| {
        v.as_slice::<f64>()
            .map(|v| !v.is_empty() && v.iter().all(|&x| x == 1.0))
    });
    ones.unwrap_or(false)
}

thread_local! {
    /// The forest [`TractModel::build`] already parsed, with the address of the node it came from.
    /// Why: parsing the trees is the costliest step of loading, and an op builder is a plain `fn`
    /// that cannot capture it; handing it over here saves parsing the same node twice.
    static PARSED: std::cell::RefCell<Option<(usize, Arc<Forest>)>> = const { std::cell::RefCell::new(None) };
}

/// Op builder registered for `TreeEnsembleClassifier`: the forest [`TractModel::build`] handed over,
/// or the node parsed into a [`Forest`].
fn build_forest_op(
    _ctx: &ParsingContext,
    node: &NodeProto,
) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    let handed = PARSED.with(|p| match &*p.borrow() {
        Some((at, forest)) if *at == std::ptr::from_ref(node) as usize => Some(forest.clone()),
        _ => None,
    });
    let forest = match handed {
        Some(f) => f,
        None => Arc::new(Forest::from_node(node).map_err(|e| format_err!("{e}"))?),
    };
    Ok((expand(ForestExpansion { forest }), vec![]))
}

/// Inference-time face of the kernel: the two ONNX outputs (label, probabilities).
#[derive(Debug, Clone)]
struct ForestExpansion {
    forest: Arc<Forest>,
}

impl Expansion for ForestExpansion {
    fn name(&self) -> StaticName {
        "LeadscoreTreeEnsembleClassifier".into()
    }

    fn nboutputs(&self) -> TractResult<usize> {
        Ok(2)
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        check_input_arity(inputs, 1)?;
        check_output_arity(outputs, 2)?;
        s.equals(&inputs[0].datum_type, f32::datum_type())?;
        s.equals(&inputs[0].rank, 2)?;
        s.equals(&outputs[0].datum_type, label_datum_type(&self.forest))?;
        s.equals(&outputs[0].rank, 1)?;
        s.equals(&outputs[0].shape[0], &inputs[0].shape[0])?;
        s.equals(&outputs[1].datum_type, f32::datum_type())?;
        s.equals(&outputs[1].rank, 2)?;
        s.equals(&outputs[1].shape[0], &inputs[0].shape[0])?;
        s.equals(&outputs[1].shape[1], 2.to_dim())?;
        Ok(())
    }

    fn wire(
        &self,
        prefix: &str,
        model: &mut TypedModel,
        inputs: &[OutletId],
    ) -> TractResult<TVec<OutletId>> {
        let probs = model.wire_node(
            format!("{prefix}.forest"),
            ForestOp {
                forest: self.forest.clone(),
            },
            inputs,
        )?[0];
        let label = model.wire_node(
            format!("{prefix}.label"),
            ForestLabelOp {
                forest: self.forest.clone(),
            },
            inputs,
        )?[0];
        Ok(tvec!(label, probs))
    }
}

fn label_datum_type(forest: &Forest) -> DatumType {
    match forest.class_labels() {
        ClassLabels::Int(_) => i64::datum_type(),
        ClassLabels::Str(_) => String::datum_type(),
    }
}

/// Checks a `[N, F]` f32 input against the forest and returns `(rows, width, data)`.
fn rows_of<'a>(forest: &Forest, x: &'a Tensor) -> TractResult<(usize, usize, &'a [f32])> {
    let &[n, w] = x.shape() else {
        bail!("expected a [N, F] input, got shape {:?}", x.shape())
    };
    ensure!(
        w >= forest.n_features(),
        "input has {w} features but the trees read feature index {}",
        forest.n_features().saturating_sub(1)
    );
    let data = x.try_as_plain_ram()?.as_slice::<f32>()?;
    ensure!(data.len() == n * w, "input is not contiguous");
    Ok((n, w, data))
}

/// The typed kernel: `f32 [N, F]` → probabilities `f32 [N, 2]`.
#[derive(Debug, Clone)]
pub struct ForestOp {
    forest: Arc<Forest>,
}

impl PartialEq for ForestOp {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.forest, &other.forest)
    }
}

impl Eq for ForestOp {}

impl Op for ForestOp {
    fn name(&self) -> StaticName {
        "LeadscoreForest".into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        Ok(vec![format!(
            "{} trees, {} nodes, {} features",
            self.forest.n_trees(),
            self.forest.n_nodes(),
            self.forest.n_features()
        )])
    }

    op_as_typed_op!();
}

impl EvalOp for ForestOp {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let x = args_1!(inputs);
        let (n, w, data) = rows_of(&self.forest, &x)?;
        let mut out = Tensor::zero::<f32>(&[n, 2])?;
        {
            let mut view = out.try_as_plain_ram_mut()?;
            let o = view.as_slice_mut::<f32>()?;
            if w > 0 {
                for (row, pair) in data.chunks_exact(w).zip(o.chunks_exact_mut(2)) {
                    pair.copy_from_slice(&self.forest.probabilities(row));
                }
            } else {
                let p = self.forest.probabilities(&[]);
                for pair in o.chunks_exact_mut(2) {
                    pair.copy_from_slice(&p);
                }
            }
        }
        Ok(tvec!(out.into_tvalue()))
    }
}

impl TypedOp for ForestOp {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let x = inputs[0];
        ensure!(
            x.datum_type == f32::datum_type(),
            "forest input must be f32, got {:?}",
            x.datum_type
        );
        ensure!(
            x.rank() == 2,
            "forest input must be [N, F], got {:?}",
            x.shape
        );
        if let Ok(w) = x.shape[1].to_usize() {
            ensure!(
                w >= self.forest.n_features(),
                "input has {w} features but the trees read feature index {}",
                self.forest.n_features().saturating_sub(1)
            );
        }
        Ok(tvec!(f32::fact(&[x.shape[0].clone(), 2.to_dim()])))
    }

    as_op!();
}

/// The label output (onnxruntime's rule), only evaluated if a plan asks for it.
#[derive(Debug, Clone)]
pub struct ForestLabelOp {
    forest: Arc<Forest>,
}

impl PartialEq for ForestLabelOp {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.forest, &other.forest)
    }
}

impl Eq for ForestLabelOp {}

impl Op for ForestLabelOp {
    fn name(&self) -> StaticName {
        "LeadscoreForestLabel".into()
    }

    op_as_typed_op!();
}

impl EvalOp for ForestLabelOp {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let x = args_1!(inputs);
        let (n, w, data) = rows_of(&self.forest, &x)?;
        let idx: Vec<usize> = (0..n)
            .map(|r| {
                let row = data.get(r * w..(r + 1) * w).unwrap_or(&[]);
                self.forest.label_index(self.forest.margin(row))
            })
            .collect();
        let t = match self.forest.class_labels() {
            ClassLabels::Int(l) => tensor1(&idx.iter().map(|&i| l[i]).collect::<Vec<i64>>()),
            ClassLabels::Str(l) => {
                tensor1(&idx.iter().map(|&i| l[i].clone()).collect::<Vec<String>>())
            }
        };
        Ok(tvec!(t.into_tvalue()))
    }
}

impl TypedOp for ForestLabelOp {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let x = inputs[0];
        ensure!(
            x.rank() == 2,
            "forest input must be [N, F], got {:?}",
            x.shape
        );
        Ok(tvec!(
            label_datum_type(&self.forest).fact(&[x.shape[0].clone()])
        ))
    }

    as_op!();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_bytes_are_an_onnx_error() {
        let e = TractModel::load(b"definitely not protobuf").unwrap_err();
        assert!(matches!(e, ModelError::Onnx(_)), "{e}");
    }

    fn default_graph() -> ModelProto {
        decode_model(crate::model::embedded::ONNX).unwrap()
    }

    fn ops(proto: &ModelProto) -> Vec<String> {
        let g = proto.graph.as_ref().unwrap();
        g.node.iter().map(|n| n.op_type.clone()).collect()
    }

    #[test]
    fn a_mul_by_a_constant_one_is_folded_away() {
        let mut proto = default_graph();
        assert!(ops(&proto).contains(&"Mul".to_string()));
        prepare_graph(&mut proto).unwrap();
        assert_eq!(
            ops(&proto),
            ["TreeEnsembleClassifier", "Identity", "Identity"]
        );
        let g = proto.graph.as_ref().unwrap();
        assert!(g.initializer.is_empty(), "the constant one is dropped");
        assert_eq!(g.output[0].name, "probabilities");
        assert_eq!(g.node[2].input, ["lgbmprobabilities"]);
    }

    #[test]
    fn any_other_mul_is_refused() {
        for (float_data, raw_data) in [
            (vec![2.0f32], vec![]),
            (vec![], 0.5f32.to_le_bytes().to_vec()),
            (vec![1.0, 3.0], vec![]),
            (vec![], vec![]),
        ] {
            let mut proto = default_graph();
            let g = proto.graph.as_mut().unwrap();
            let one = g.initializer.iter_mut().find(|t| t.name == "one").unwrap();
            one.float_data = float_data;
            one.raw_data = raw_data;
            let e = prepare_graph(&mut proto).unwrap_err().to_string();
            assert!(e.contains("only a multiplication by a constant 1"), "{e}");
        }
    }
}
