//! The tract op that runs our [`Forest`] kernel in place of tract's `TreeEnsembleClassifier`: an
//! inference-time expansion into two typed ops (probabilities, label).

use std::sync::Arc;

use tract_onnx::model::ParsingContext;
use tract_onnx::pb::NodeProto;
use tract_onnx::tract_hir::internal::*;

use crate::model::forest::{ClassLabels, Forest};

thread_local! {
    /// The forest [`Plan::build`] already parsed, with the address of the node it came from.
    /// Why: parsing the trees is the costliest step of loading, and an op builder is a plain `fn`
    /// that cannot capture it; handing it over here saves parsing the same node twice.
    pub(super) static PARSED: std::cell::RefCell<Option<(usize, Arc<Forest>)>> = const { std::cell::RefCell::new(None) };
}

/// Op builder registered for `TreeEnsembleClassifier`: the forest [`Plan::build`] handed over,
/// or the node parsed into a [`Forest`].
pub(super) fn build_forest_op(
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
    pub(super) forest: Arc<Forest>,
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
