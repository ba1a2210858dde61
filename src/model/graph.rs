//! Graph rewriting before tract sees a model: validation and pruning to one probabilities output.
//!
//! * the graph must contain exactly one `TreeEnsembleClassifier` and otherwise only the ops onnxmltools
//!   wraps around it ([`ALLOWED_OPS`]); anything else is refused with the list of offenders;
//! * only the probabilities output is kept: the output fed to a `ZipMap` when there is one (the
//!   `ZipMap` is dropped, i.e. the output is re-pointed to its input), else the output named
//!   `probabilities`, else the only float output. The `label` output (a `Cast` to INT64 that tract
//!   maps to TDim, and wrong with tract's own op) is pruned with everything it alone needs;
//! * a `Mul` by a constant one is folded away ([`fold_mul_by_one`]).

use std::collections::{BTreeSet, HashMap, HashSet};

use tract_onnx::pb::tensor_shape_proto::dimension::Value as DimValue;
use tract_onnx::pb::type_proto::Value as TypeValue;
use tract_onnx::pb::{ModelProto, NodeProto, ValueInfoProto};
use tract_onnx::tract_hir::internal::*;

use crate::model::error::ModelError;
use crate::model::forest::OP_TYPE;

/// Op types a served graph may contain; why: the onnxmltools wrapping (`Identity`, `Cast` for the
/// label, `Mul` by a constant one) is harmless, anything else means a model we did not validate.
/// `ZipMap` is accepted too but removed before parsing, and `Mul` must be by a constant 1, which is
/// folded away (see [`fold_mul_by_one`]).
pub const ALLOWED_OPS: &[&str] = &[OP_TYPE, "Identity", "Cast", "Mul", "Constant"];

/// ONNX `TensorProto.DataType.FLOAT`.
const ONNX_FLOAT: i32 = 1;

/// Validates the graph and rewires it to a single probabilities output; returns the declared input
/// width (when the file gives a concrete one).
pub(super) fn prepare_graph(proto: &mut ModelProto) -> Result<Option<usize>, ModelError> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::forest::decode_model;

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
