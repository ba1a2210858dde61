//! Parsing: an ONNX `TreeEnsembleClassifier` node (or a whole model file) into a [`Forest`], with
//! every check the module docs of [`super`] list.

use std::collections::HashMap;

use tract_onnx::pb::attribute_proto::AttributeType;
use tract_onnx::pb::{AttributeProto, ModelProto, NodeProto};

use super::*;
use crate::model::error::ModelError;

pub(crate) fn onnx_err(msg: impl Into<String>) -> ModelError {
    ModelError::Onnx(msg.into())
}

/// Typed access to a node's attributes with strict type checks.
struct Attrs<'a> {
    node: &'a NodeProto,
}

impl<'a> Attrs<'a> {
    fn get(&self, name: &str, ty: AttributeType) -> Result<Option<&'a AttributeProto>, ModelError> {
        let mut found = self.node.attribute.iter().filter(|a| a.name == name);
        let Some(a) = found.next() else {
            return Ok(None);
        };
        if found.next().is_some() {
            return Err(onnx_err(format!(
                "{OP_TYPE}: attribute {name} is given twice"
            )));
        }
        if a.r#type != ty as i32 {
            return Err(onnx_err(format!(
                "{OP_TYPE}: attribute {name} has type {} but {} was expected",
                a.r#type,
                ty.as_str_name()
            )));
        }
        Ok(Some(a))
    }

    fn ints(&self, name: &str) -> Result<Option<&'a [i64]>, ModelError> {
        Ok(self
            .get(name, AttributeType::Ints)?
            .map(|a| a.ints.as_slice()))
    }

    fn req_ints(&self, name: &str) -> Result<&'a [i64], ModelError> {
        self.ints(name)?
            .ok_or_else(|| onnx_err(format!("{OP_TYPE}: missing attribute {name}")))
    }

    fn floats(&self, name: &str) -> Result<Option<&'a [f32]>, ModelError> {
        Ok(self
            .get(name, AttributeType::Floats)?
            .map(|a| a.floats.as_slice()))
    }

    fn req_floats(&self, name: &str) -> Result<&'a [f32], ModelError> {
        self.floats(name)?
            .ok_or_else(|| onnx_err(format!("{OP_TYPE}: missing attribute {name}")))
    }

    fn strings(&self, name: &str) -> Result<Option<Vec<&'a str>>, ModelError> {
        let Some(a) = self.get(name, AttributeType::Strings)? else {
            return Ok(None);
        };
        a.strings
            .iter()
            .map(|s| {
                std::str::from_utf8(s)
                    .map_err(|_| onnx_err(format!("{OP_TYPE}: attribute {name} is not UTF-8")))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }

    fn string(&self, name: &str) -> Result<Option<&'a str>, ModelError> {
        let Some(a) = self.get(name, AttributeType::String)? else {
            return Ok(None);
        };
        std::str::from_utf8(&a.s)
            .map(Some)
            .map_err(|_| onnx_err(format!("{OP_TYPE}: attribute {name} is not UTF-8")))
    }

    fn present(&self, name: &str) -> bool {
        self.node.attribute.iter().any(|a| a.name == name)
    }
}

fn check_len(name: &str, len: usize, want: usize, what: &str) -> Result<(), ModelError> {
    if len != want {
        return Err(onnx_err(format!(
            "{OP_TYPE}: attribute {name} has {len} entries but {what} has {want}"
        )));
    }
    Ok(())
}

impl Forest {
    /// Parses the single `TreeEnsembleClassifier` of an ONNX model; why: tests, tools and the card
    /// check can read the trees without building a tract plan.
    pub fn from_onnx_bytes(bytes: &[u8]) -> Result<Forest, ModelError> {
        let proto = decode_model(bytes)?;
        Forest::from_node(find_tree_node(&proto)?)
    }

    /// Parses and validates one `TreeEnsembleClassifier` node; why: the tract op builder calls it
    /// with the node tract hands over.
    pub fn from_node(node: &NodeProto) -> Result<Forest, ModelError> {
        if node.op_type != OP_TYPE {
            return Err(onnx_err(format!(
                "expected a {OP_TYPE} node, got {}",
                node.op_type
            )));
        }
        let at = Attrs { node };
        for name in [
            "nodes_values_as_tensor",
            "class_weights_as_tensor",
            "base_values_as_tensor",
        ] {
            if at.present(name) {
                return Err(onnx_err(format!(
                    "{OP_TYPE}: {name} (double precision) is not supported; export with float \
                     attributes"
                )));
            }
        }

        // Classes and output semantics.
        let labels = match (
            at.ints("classlabels_int64s")?,
            at.strings("classlabels_strings")?,
        ) {
            (Some(l), None) => match l {
                [a, b] => ClassLabels::Int([*a, *b]),
                _ => return Err(n_classes_err(l.len())),
            },
            (None, Some(l)) => match l.as_slice() {
                [a, b] => ClassLabels::Str([a.to_string(), b.to_string()]),
                _ => return Err(n_classes_err(l.len())),
            },
            (Some(_), Some(_)) => {
                return Err(onnx_err(format!(
                    "{OP_TYPE}: both classlabels_int64s and classlabels_strings are set"
                )))
            }
            (None, None) => {
                return Err(onnx_err(format!(
                    "{OP_TYPE}: neither classlabels_int64s nor classlabels_strings is set"
                )))
            }
        };
        let post = match at.string("post_transform")?.unwrap_or("NONE") {
            "NONE" => PostTransform::None,
            "LOGISTIC" => PostTransform::Logistic,
            other => {
                return Err(onnx_err(format!(
                    "{OP_TYPE}: post_transform {other:?} is not supported for a binary model \
                     (NONE or LOGISTIC)"
                )))
            }
        };

        // Nodes.
        let tree_ids = at.req_ints("nodes_treeids")?;
        let n = tree_ids.len();
        if n == 0 {
            return Err(onnx_err(format!("{OP_TYPE}: the ensemble has no nodes")));
        }
        if n > MAX_NODES {
            return Err(onnx_err(format!(
                "{OP_TYPE}: {n} nodes is more than {MAX_NODES}"
            )));
        }
        let node_ids = at.req_ints("nodes_nodeids")?;
        let feature_ids = at.req_ints("nodes_featureids")?;
        let values = at.req_floats("nodes_values")?;
        let modes = at
            .strings("nodes_modes")?
            .ok_or_else(|| onnx_err(format!("{OP_TYPE}: missing attribute nodes_modes")))?;
        let true_ids = at.req_ints("nodes_truenodeids")?;
        let false_ids = at.req_ints("nodes_falsenodeids")?;
        let missing = at.ints("nodes_missing_value_tracks_true")?.unwrap_or(&[]);
        for (name, len) in [
            ("nodes_nodeids", node_ids.len()),
            ("nodes_featureids", feature_ids.len()),
            ("nodes_values", values.len()),
            ("nodes_modes", modes.len()),
            ("nodes_truenodeids", true_ids.len()),
            ("nodes_falsenodeids", false_ids.len()),
        ] {
            check_len(name, len, n, "nodes_treeids")?;
        }
        if !missing.is_empty() {
            check_len(
                "nodes_missing_value_tracks_true",
                missing.len(),
                n,
                "nodes_treeids",
            )?;
        }
        let modes = modes
            .iter()
            .map(|m| Mode::parse(m))
            .collect::<Result<Vec<_>, _>>()?;

        // Leaf weights.
        let c_tree = at.req_ints("class_treeids")?;
        let c_node = at.req_ints("class_nodeids")?;
        let c_ids = at.req_ints("class_ids")?;
        let c_w = at.req_floats("class_weights")?;
        check_len("class_nodeids", c_node.len(), c_tree.len(), "class_treeids")?;
        check_len("class_ids", c_ids.len(), c_tree.len(), "class_treeids")?;
        check_len("class_weights", c_w.len(), c_tree.len(), "class_treeids")?;
        if c_tree.is_empty() {
            return Err(onnx_err(format!(
                "{OP_TYPE}: no leaf carries a class weight"
            )));
        }
        let mut has_class = [false; 2];
        for &c in c_ids {
            match c {
                0 | 1 => has_class[c as usize] = true,
                _ => {
                    return Err(onnx_err(format!(
                        "{OP_TYPE}: class_ids contains {c} but the model has 2 classes"
                    )))
                }
            }
        }
        let all_weights_positive = !c_w.iter().any(|w| *w < 0.0);
        let layout = match has_class {
            [true, false] => Layout::WeightsOnClass0 {
                all_weights_positive,
            },
            [false, true] => Layout::WeightsOnClass1 {
                all_weights_positive,
            },
            _ => {
                return Err(onnx_err(format!(
                "{OP_TYPE}: leaves carry weights for both classes; only the single-score binary \
                     layout (LightGBM/XGBoost) is supported"
            )))
            }
        };
        let base_values = at.floats("base_values")?.unwrap_or(&[]);
        let base = match (layout, base_values) {
            (_, b) if b.iter().all(|v| *v == 0.0) => 0.0,
            (Layout::WeightsOnClass0 { .. }, [b]) => *b,
            (Layout::WeightsOnClass1 { .. }, [_]) => {
                return Err(onnx_err(format!(
                "{OP_TYPE}: base_values with weights on class 1: onnxruntime ignores it, refusing \
                     an ambiguous model"
            )))
            }
            (_, b) => {
                return Err(onnx_err(format!(
                "{OP_TYPE}: base_values of length {} is not supported for a single-score binary \
                     model (give at most one value)",
                b.len()
            )))
            }
        };
        if !base.is_finite() {
            return Err(onnx_err(format!(
                "{OP_TYPE}: base value {base} is not finite"
            )));
        }

        // Group nodes by tree, in order of first appearance (onnxruntime's summation order).
        let mut tree_index: HashMap<i64, usize> = HashMap::new();
        let mut members: Vec<Vec<usize>> = Vec::new();
        for (i, &t) in tree_ids.iter().enumerate() {
            let k = *tree_index.entry(t).or_insert_with(|| {
                members.push(Vec::new());
                members.len() - 1
            });
            members[k].push(i);
        }
        let mut order_ids: Vec<i64> = vec![0; members.len()];
        for (&t, &k) in &tree_index {
            order_ids[k] = t;
        }

        // (tree, node id) -> attribute position.
        let mut pos: HashMap<(i64, i64), usize> = HashMap::with_capacity(n);
        for i in 0..n {
            if pos.insert((tree_ids[i], node_ids[i]), i).is_some() {
                return Err(onnx_err(format!(
                    "{OP_TYPE}: node {} appears twice in tree {}",
                    node_ids[i], tree_ids[i]
                )));
            }
        }

        // Leaf values: sum of the weights on the weighted class, in attribute order.
        let mut leaf_value = vec![0.0f32; n];
        for j in 0..c_tree.len() {
            let Some(&i) = pos.get(&(c_tree[j], c_node[j])) else {
                return Err(onnx_err(format!(
                    "{OP_TYPE}: class weight {j} refers to node {} of tree {}, which does not exist",
                    c_node[j], c_tree[j]
                )));
            };
            if modes[i].is_some() {
                return Err(onnx_err(format!(
                    "{OP_TYPE}: class weight {j} is attached to branch node {} of tree {}",
                    c_node[j], c_tree[j]
                )));
            }
            if !c_w[j].is_finite() {
                return Err(onnx_err(format!(
                    "{OP_TYPE}: class weight {j} is not finite"
                )));
            }
            leaf_value[i] += c_w[j];
        }

        // Children.
        let mut parents = vec![0u32; n];
        let mut children = vec![(0usize, 0usize); n];
        for i in 0..n {
            if modes[i].is_none() {
                continue;
            }
            let f = feature_ids[i];
            if f < 0 || f >= i64::from(u32::MAX) {
                return Err(onnx_err(format!(
                    "{OP_TYPE}: node {} of tree {} reads feature {f}",
                    node_ids[i], tree_ids[i]
                )));
            }
            if values[i].is_nan() {
                return Err(onnx_err(format!(
                    "{OP_TYPE}: node {} of tree {} has a NaN threshold",
                    node_ids[i], tree_ids[i]
                )));
            }
            let mut child = |id: i64, which: &str| -> Result<usize, ModelError> {
                let c = pos.get(&(tree_ids[i], id)).copied().ok_or_else(|| {
                    onnx_err(format!(
                        "{OP_TYPE}: node {} of tree {}: {which} child {id} is out of range (no such \
                         node in the tree)",
                        node_ids[i], tree_ids[i]
                    ))
                })?;
                if c == i {
                    return Err(onnx_err(format!(
                        "{OP_TYPE}: node {} of tree {} is its own {which} child",
                        node_ids[i], tree_ids[i]
                    )));
                }
                parents[c] += 1;
                if parents[c] > 1 {
                    return Err(onnx_err(format!(
                        "{OP_TYPE}: node {id} of tree {} has more than one parent (shared subtrees, \
                         e.g. categorical set splits, are not supported)",
                        tree_ids[i]
                    )));
                }
                Ok(c)
            };
            let t = child(true_ids[i], "true")?;
            let f = child(false_ids[i], "false")?;
            children[i] = (t, f);
        }

        // Flatten each tree in pre-order, false child next.
        let mut nodes: Vec<Packed> = Vec::with_capacity(n);
        let mut onnx_ids: Vec<i64> = Vec::with_capacity(n);
        let mut tree_starts: Vec<u32> = Vec::with_capacity(members.len() + 1);
        let mut depths: Vec<usize> = Vec::with_capacity(members.len());
        let mut stack: Vec<(usize, Option<usize>, usize)> = Vec::new();
        for (k, m) in members.iter().enumerate() {
            let roots: Vec<usize> = m.iter().copied().filter(|&i| parents[i] == 0).collect();
            let root = match roots.as_slice() {
                [r] => *r,
                [] => {
                    return Err(onnx_err(format!(
                        "{OP_TYPE}: tree {} has no root (its nodes form a cycle)",
                        order_ids[k]
                    )))
                }
                _ => {
                    return Err(onnx_err(format!(
                        "{OP_TYPE}: tree {} has {} roots (unreachable nodes)",
                        order_ids[k],
                        roots.len()
                    )))
                }
            };
            let start = nodes.len();
            tree_starts.push(start as u32);
            let mut depth = 0usize;
            stack.clear();
            stack.push((root, None, 0));
            while let Some((i, true_parent, d)) = stack.pop() {
                if d > MAX_DEPTH {
                    return Err(onnx_err(format!(
                        "{OP_TYPE}: tree {} is deeper than {MAX_DEPTH}",
                        order_ids[k]
                    )));
                }
                depth = depth.max(d);
                let here = nodes.len();
                if let Some(p) = true_parent {
                    let parent: &mut Packed = &mut nodes[p];
                    parent.link |= here as u32;
                }
                onnx_ids.push(node_ids[i]);
                match modes[i] {
                    None => nodes.push(Packed {
                        value: leaf_value[i],
                        feature: LEAF,
                        link: 0,
                    }),
                    Some(mode) => {
                        let miss = missing.get(i).is_some_and(|&v| v != 0);
                        nodes.push(Packed {
                            value: values[i],
                            feature: feature_ids[i] as u32,
                            link: ((mode as u32) << MODE_SHIFT)
                                | if miss { MISSING_BIT } else { 0 },
                        });
                        let (t, f) = children[i];
                        stack.push((t, Some(here), d + 1));
                        stack.push((f, None, d + 1));
                    }
                }
            }
            if nodes.len() - start != m.len() {
                return Err(onnx_err(format!(
                    "{OP_TYPE}: tree {} has {} nodes but only {} are reachable from its root (cycle \
                     or unreachable nodes)",
                    order_ids[k],
                    m.len(),
                    nodes.len() - start
                )));
            }
            depths.push(depth);
        }
        tree_starts.push(nodes.len() as u32);

        Ok(Forest::new(Trees {
            nodes,
            onnx_ids,
            tree_starts,
            tree_ids: order_ids,
            depths,
            base,
            post,
            layout,
            labels,
        }))
    }
}

fn n_classes_err(n: usize) -> ModelError {
    onnx_err(format!(
        "{OP_TYPE}: {n} class labels; only binary classifiers (2 labels) are supported"
    ))
}

/// Decodes ONNX protobuf bytes; why: shared by [`Forest::from_onnx_bytes`] and the kernel loader.
pub(crate) fn decode_model(bytes: &[u8]) -> Result<ModelProto, ModelError> {
    use tract_onnx::tract_hir::prelude::Framework;
    let mut r = bytes;
    // An empty op register: decoding needs none, and naming `tract_onnx::onnx()` here would link
    // every ONNX op into the wasm builds.
    tract_onnx::model::Onnx::default()
        .proto_model_for_read(&mut r)
        .map_err(|e| onnx_err(format!("not a valid ONNX protobuf: {e}")))
}

/// The graph's single `TreeEnsembleClassifier` node.
pub(crate) fn find_tree_node(proto: &ModelProto) -> Result<&NodeProto, ModelError> {
    let graph = proto
        .graph
        .as_ref()
        .ok_or_else(|| onnx_err("the model has no graph"))?;
    let mut found = graph.node.iter().filter(|n| n.op_type == OP_TYPE);
    match (found.next(), found.next()) {
        (Some(n), None) => Ok(n),
        (None, _) => Err(onnx_err(format!("the graph has no {OP_TYPE} node"))),
        (Some(_), Some(_)) => Err(onnx_err(format!(
            "the graph has {} {OP_TYPE} nodes; exactly one is supported",
            graph.node.iter().filter(|n| n.op_type == OP_TYPE).count()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    enum V<'a> {
        I(&'a [i64]),
        F(&'a [f32]),
        S(&'a [&'a str]),
        One(&'a str),
    }

    fn node(attrs: &[(&str, V<'_>)]) -> NodeProto {
        let attribute = attrs
            .iter()
            .map(|(name, v)| {
                let mut a = AttributeProto {
                    name: name.to_string(),
                    ..Default::default()
                };
                match v {
                    V::I(x) => (a.r#type, a.ints) = (AttributeType::Ints as i32, x.to_vec()),
                    V::F(x) => (a.r#type, a.floats) = (AttributeType::Floats as i32, x.to_vec()),
                    V::S(x) => {
                        a.r#type = AttributeType::Strings as i32;
                        a.strings = x.iter().map(|s| s.as_bytes().to_vec()).collect();
                    }
                    V::One(x) => {
                        (a.r#type, a.s) = (AttributeType::String as i32, x.as_bytes().to_vec())
                    }
                }
                a
            })
            .collect();
        NodeProto {
            op_type: OP_TYPE.into(),
            attribute,
            ..Default::default()
        }
    }

    /// One split `x[0] <mode> 1.0` with leaves -1 (false) and +1 (true), NONE transform.
    fn stump(mode: &str, missing: i64) -> Forest {
        Forest::from_node(&node(&[
            ("nodes_treeids", V::I(&[0, 0, 0])),
            ("nodes_nodeids", V::I(&[0, 1, 2])),
            ("nodes_featureids", V::I(&[0, 0, 0])),
            ("nodes_values", V::F(&[1.0, 0.0, 0.0])),
            ("nodes_modes", V::S(&[mode, "LEAF", "LEAF"])),
            ("nodes_truenodeids", V::I(&[1, 0, 0])),
            ("nodes_falsenodeids", V::I(&[2, 0, 0])),
            ("nodes_missing_value_tracks_true", V::I(&[missing, 0, 0])),
            ("class_treeids", V::I(&[0, 0])),
            ("class_nodeids", V::I(&[1, 2])),
            ("class_ids", V::I(&[0, 0])),
            ("class_weights", V::F(&[1.0, -1.0])),
            ("classlabels_int64s", V::I(&[0, 1])),
        ]))
        .expect("stump parses")
    }

    #[test]
    fn all_six_modes_and_the_missing_rule() {
        // (mode, x = 0, x = 1, x = 2): true branch taken? NaN goes true only when tracked.
        let table = [
            ("BRANCH_LEQ", [true, true, false]),
            ("BRANCH_LT", [true, false, false]),
            ("BRANCH_GTE", [false, true, true]),
            ("BRANCH_GT", [false, false, true]),
            ("BRANCH_EQ", [false, true, false]),
            ("BRANCH_NEQ", [true, false, true]),
        ];
        for (mode, want) in table {
            for missing in [0, 1] {
                let f = stump(mode, missing);
                for (x, w) in [0.0f32, 1.0, 2.0].iter().zip(want) {
                    assert_eq!(f.margin(&[*x]), if w { 1.0 } else { -1.0 }, "{mode} x={x}");
                }
                let nan_true = missing == 1 || mode == "BRANCH_NEQ";
                assert_eq!(
                    f.margin(&[f32::NAN]),
                    if nan_true { 1.0 } else { -1.0 },
                    "{mode} NaN"
                );
                // A short row reads missing features as NaN.
                assert_eq!(f.margin(&[]), f.margin(&[f32::NAN]));
            }
        }
    }

    #[test]
    fn flattens_in_preorder_with_the_false_child_next() {
        // Shuffled ids, listed out of order (root first): 5 -> (t: 2, f: 9), 9 -> (t: 0, f: 7).
        let f = Forest::from_node(&node(&[
            ("nodes_treeids", V::I(&[4, 4, 4, 4, 4])),
            ("nodes_nodeids", V::I(&[5, 0, 7, 9, 2])),
            ("nodes_featureids", V::I(&[2, 0, 0, 1, 0])),
            ("nodes_values", V::F(&[0.5, 0.0, 0.0, -1.0, 0.0])),
            (
                "nodes_modes",
                V::S(&["BRANCH_LT", "LEAF", "LEAF", "BRANCH_GTE", "LEAF"]),
            ),
            ("nodes_truenodeids", V::I(&[2, 0, 0, 0, 0])),
            ("nodes_falsenodeids", V::I(&[9, 0, 0, 7, 0])),
            ("class_treeids", V::I(&[4, 4, 4])),
            ("class_nodeids", V::I(&[0, 7, 2])),
            ("class_ids", V::I(&[1, 1, 1])),
            ("class_weights", V::F(&[0.25, 0.5, 1.0])),
            ("classlabels_strings", V::S(&["no", "yes"])),
            ("post_transform", V::One("LOGISTIC")),
        ]))
        .expect("parses");
        assert_eq!(
            (f.n_trees(), f.n_nodes(), f.n_features(), f.max_depth()),
            (1, 5, 3, 2)
        );
        let t = f.tree(0).expect("tree 0");
        assert_eq!(t.onnx_tree_id(), 4);
        let ids: Vec<i64> = t.nodes().map(|n| n.onnx_id()).collect();
        assert_eq!(ids, [5, 9, 7, 0, 2]);
        let Some(Node::Branch(root)) = t.node(0) else {
            panic!("root is a branch")
        };
        assert_eq!(
            (root.feature, root.mode, root.true_child, root.false_child),
            (2, Mode::Lt, 4, 1)
        );
        let Some(Node::Branch(inner)) = t.node(1) else {
            panic!("node 1 is a branch")
        };
        assert_eq!(
            (
                inner.feature,
                inner.mode,
                inner.true_child,
                inner.false_child
            ),
            (1, Mode::Gte, 3, 2)
        );
        assert_eq!(f.margin(&[0.0, 0.0, 0.0]), 1.0);
        assert_eq!(f.margin(&[0.0, -1.0, 0.5]), 0.25);
        assert_eq!(f.margin(&[0.0, -2.0, 0.5]), 0.5);
        // Weights on class 1: onnxruntime's first column is logistic(0).
        assert_eq!(f.probabilities(&[0.0, -2.0, 0.5]), [0.5, logistic(0.5)]);
        assert_eq!(
            f.class_labels(),
            &ClassLabels::Str(["no".into(), "yes".into()])
        );
    }

    #[test]
    fn rejects_malformed_nodes() {
        let base: Vec<(&str, V<'_>)> = vec![
            ("nodes_treeids", V::I(&[0, 0, 0])),
            ("nodes_nodeids", V::I(&[0, 1, 2])),
            ("nodes_featureids", V::I(&[0, 0, 0])),
            ("nodes_values", V::F(&[1.0, 0.0, 0.0])),
            ("nodes_modes", V::S(&["BRANCH_LEQ", "LEAF", "LEAF"])),
            ("nodes_truenodeids", V::I(&[1, 0, 0])),
            ("nodes_falsenodeids", V::I(&[2, 0, 0])),
            ("class_treeids", V::I(&[0, 0])),
            ("class_nodeids", V::I(&[1, 2])),
            ("class_ids", V::I(&[0, 0])),
            ("class_weights", V::F(&[1.0, -1.0])),
            ("classlabels_int64s", V::I(&[0, 1])),
        ];
        let with = |name: &str, v: V<'static>| {
            let mut a: Vec<(&str, V<'_>)> = base
                .iter()
                .filter(|(n, _)| *n != name)
                .map(|(n, v)| {
                    (
                        *n,
                        match v {
                            V::I(x) => V::I(x),
                            V::F(x) => V::F(x),
                            V::S(x) => V::S(x),
                            V::One(x) => V::One(x),
                        },
                    )
                })
                .collect();
            a.push((name, v));
            Forest::from_node(&node(&a))
                .map(|_| ())
                .map_err(|e| e.to_string())
        };
        assert!(with("nodes_nodeids", V::I(&[0, 1, 1]))
            .unwrap_err()
            .contains("appears twice"));
        assert!(with("nodes_falsenodeids", V::I(&[-3, 0, 0]))
            .unwrap_err()
            .contains("out of range"));
        assert!(with("nodes_treeids", V::I(&[0, 0])).is_err());
        assert!(with("class_ids", V::I(&[0, 2]))
            .unwrap_err()
            .contains("class_ids contains 2"));
        assert!(with("nodes_values", V::F(&[f32::NAN, 0.0, 0.0]))
            .unwrap_err()
            .contains("NaN threshold"));
        assert!(with("nodes_featureids", V::I(&[-1, 0, 0]))
            .unwrap_err()
            .contains("reads feature -1"));
        assert!(with("post_transform", V::One("PROBIT"))
            .unwrap_err()
            .contains("PROBIT"));
        assert!(with("nodes_values_as_tensor", V::F(&[]))
            .unwrap_err()
            .contains("double precision"));
        assert!(with("classlabels_strings", V::S(&["a", "b"]))
            .unwrap_err()
            .contains("both"));
        assert!(with("base_values", V::F(&[0.1, 0.2]))
            .unwrap_err()
            .contains("length 2"));
        assert!(with("nodes_modes", V::I(&[0, 0, 0]))
            .unwrap_err()
            .contains("STRINGS"));
        assert!(with("base_values", V::F(&[0.0, 0.0])).is_ok());
    }
}
