//! Day zero: a points scorecard ("a pricing page visit gets 15 points") compiled into a model the
//! engine serves like any other: a `TreeEnsembleClassifier` of stumps, one per rule, loaded by the
//! same tract path and explained by the same TreeSHAP.
//!
//! **The compiled model.** Rule i is tree i: its root tests the rule (`feature op value`; a missing
//! value never fires), the true leaf holds `per_point · points`, the false leaf 0. The ensemble's
//! base value is `intercept`, and the output is σ(intercept + per_point · Σ points of the rules that
//! fire): the documented mapping of points to a probability until outcomes exist to calibrate one
//! (the card's calibration is `none`). Each stump's node covers put all of the weight on its false
//! leaf, so TreeSHAP's expected value of every tree is 0 and a lead's contribution from a feature is
//! exactly `per_point ·` the points its rules gave: the factors *are* the points, and the base is a
//! lead with none.
//!
//! **Checked like a trained bundle.** [`compile`] also writes golden vectors computed from the rules
//! alone (not through the forest or TreeSHAP), so `leadscore check` replays the bundle against them.

use serde::{Deserialize, Serialize};
use serde_json::json;
use tract_onnx::pb::attribute_proto::AttributeType;
use tract_onnx::pb::tensor_shape_proto::{dimension::Value as Dim, Dimension};
use tract_onnx::pb::type_proto::{Tensor, Value as TypeValue};
use tract_onnx::pb::{
    AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorShapeProto,
    TypeProto, ValueInfoProto,
};

use crate::features::FeatureSpec;
use crate::model::card::{Template, Tiers};
use crate::model::sha256_hex;

/// Most rules a scorecard holds.
pub const MAX_RULES: usize = 64;

/// How a rule compares its feature with its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    /// `>=`
    #[serde(rename = ">=")]
    Gte,
    /// `>`
    #[serde(rename = ">")]
    Gt,
    /// `<=`
    #[serde(rename = "<=")]
    Lte,
    /// `<`
    #[serde(rename = "<")]
    Lt,
    /// `==`
    #[serde(rename = "==")]
    Eq,
    /// `!=`
    #[serde(rename = "!=")]
    Neq,
}

impl Op {
    /// The ONNX node mode that tests it.
    fn mode(self) -> &'static str {
        match self {
            Op::Gte => "BRANCH_GTE",
            Op::Gt => "BRANCH_GT",
            Op::Lte => "BRANCH_LEQ",
            Op::Lt => "BRANCH_LT",
            Op::Eq => "BRANCH_EQ",
            Op::Neq => "BRANCH_NEQ",
        }
    }

    /// Whether `x op value` (f32, as the forest compares; a missing value never fires).
    fn fires(self, x: f32, value: f32) -> bool {
        !x.is_nan()
            && match self {
                Op::Gte => x >= value,
                Op::Gt => x > value,
                Op::Lte => x <= value,
                Op::Lt => x < value,
                Op::Eq => x == value,
                Op::Neq => x != value,
            }
    }
}

/// One rule: points when the card's feature compares so with the value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// A feature of the template, by name.
    pub feature: String,
    /// The comparison.
    pub op: Op,
    /// What the feature is compared with.
    pub value: f64,
    /// Points given when it holds (negative points take away).
    pub points: f64,
    /// Why, for people ("A pricing page visit gets 15 points").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub why: Option<String>,
}

/// Points to a probability: log-odds = `intercept + per_point · points`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PointsScale {
    /// Log-odds of a lead with no points.
    pub intercept: f64,
    /// Log-odds one point adds.
    pub per_point: f64,
}

/// A scorecard file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scorecard {
    /// Bundle name (the model version's prefix).
    pub name: String,
    /// The mapping of points to a probability.
    pub scale: PointsScale,
    /// Tier thresholds on ai_score.
    pub tiers: Tiers,
    /// The rules, at most [`MAX_RULES`].
    pub rules: Vec<Rule>,
}

/// A scorecard that cannot be compiled; each names the rule at fault (1-based).
#[derive(Debug, thiserror::Error)]
pub enum ScorecardError {
    /// The file is not a scorecard.
    #[error("not a scorecard: {0}")]
    Parse(#[from] serde_json::Error),
    /// Something the rules or the scale say cannot be served.
    #[error("{0}")]
    Invalid(String),
}

/// A compiled scorecard: the three files of a bundle.
#[derive(Debug, Clone)]
pub struct Compiled {
    /// `card.json`.
    pub card: String,
    /// `model.onnx`.
    pub onnx: Vec<u8>,
    /// `golden.json`.
    pub golden: String,
}

impl Scorecard {
    /// Reads a scorecard file.
    pub fn parse(text: &str) -> Result<Scorecard, ScorecardError> {
        Ok(serde_json::from_str(text)?)
    }

    fn validate(&self, features: &[FeatureSpec]) -> Result<Vec<usize>, ScorecardError> {
        let bad = |m: String| Err(ScorecardError::Invalid(m));
        if self.name.is_empty()
            || !self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return bad(format!(
                "name {:?}: letters, digits, - and _ only",
                self.name
            ));
        }
        let PointsScale {
            intercept,
            per_point,
        } = self.scale;
        if !intercept.is_finite() || !per_point.is_finite() || per_point <= 0.0 {
            return bad("scale: intercept must be finite and per_point a positive number".into());
        }
        if self.rules.is_empty() || self.rules.len() > MAX_RULES {
            return bad(format!(
                "give 1 to {MAX_RULES} rules (got {})",
                self.rules.len()
            ));
        }
        self.rules
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let at = || format!("rule {} ({} {:?} {})", i + 1, r.feature, r.op, r.value);
                let invalid = |m: String| ScorecardError::Invalid(format!("{}: {m}", at()));
                let f = features
                    .iter()
                    .position(|f| f.name == r.feature)
                    .ok_or_else(|| {
                        invalid(format!("the template has no feature {:?}", r.feature))
                    })?;
                if !r.value.is_finite() || !(r.value as f32).is_finite() {
                    return Err(invalid("value must be a finite number".into()));
                }
                if !r.points.is_finite() || r.points == 0.0 {
                    return Err(invalid(
                        "points must be a finite number other than 0".into(),
                    ));
                }
                Ok(f)
            })
            .collect()
    }
}

/// Compiles a scorecard for a template (its features, site and rows) into a bundle. `date`:
/// YYYYMMDD in the model version.
pub fn compile(
    sc: &Scorecard,
    template_json: &str,
    date: &str,
) -> Result<Compiled, ScorecardError> {
    let template: Template = serde_json::from_str(template_json)?;
    let at = sc.validate(&template.features)?;
    let n = template.features.len();
    let leaves: Vec<f32> = sc
        .rules
        .iter()
        .map(|r| (sc.scale.per_point * r.points) as f32)
        .collect();
    let onnx = stumps_onnx(sc, &at, &leaves, n);
    let sha = sha256_hex(&onnx);
    let mut card: serde_json::Value = serde_json::from_str(template_json)?;
    let obj = card
        .as_object_mut()
        .ok_or_else(|| ScorecardError::Invalid("the template is not a JSON object".into()))?;
    for k in [
        "about",
        "display_names",
        "train",
        "part_names",
        "monitor",
        "training",
        "calibration",
    ] {
        obj.remove(k);
    }
    let version = format!("{}-{date}-{}", sc.name, &sha[..8]);
    obj.insert(
        "schema_version".into(),
        json!(crate::model::card::CARD_SCHEMA_VERSION),
    );
    obj.insert("name".into(), json!(sc.name));
    obj.insert("model_version".into(), json!(version));
    obj.insert(
        "model".into(),
        json!({"file": "model.onnx", "sha256": sha, "n_features": n, "n_trees": sc.rules.len()}),
    );
    obj.insert("calibration".into(), json!({"method": "none"}));
    obj.insert("tiers".into(), serde_json::to_value(sc.tiers)?);
    // Covers: the root and the false leaf carry the weight, the true leaf none (see the module docs).
    let covers: Vec<[f64; 3]> = sc.rules.iter().map(|_| [1.0, 0.0, 1.0]).collect();
    obj.insert("explain".into(), json!({ "node_covers": covers }));
    obj.insert(
        "training".into(),
        json!({"scorecard": sc, "note": "day-zero rules compiled into stumps (leadscore scorecard): \
               no outcomes were used; probability = σ(intercept + per_point · points)"}),
    );
    obj.insert("metrics".into(), json!({}));
    let card_text = serde_json::to_string_pretty(&card)? + "\n";
    let golden = golden(sc, &at, &template.features)?;
    Ok(Compiled {
        card: card_text,
        onnx,
        golden,
    })
}

/// Golden rows from the rules alone: for each feature the values around its thresholds and a
/// missing one; the row with nothing, one per rule value, then a fixed pseudo-random mix.
fn golden(
    sc: &Scorecard,
    at: &[usize],
    features: &[FeatureSpec],
) -> Result<String, ScorecardError> {
    let n = features.len();
    let mut candidates: Vec<Vec<f32>> = vec![vec![f32::NAN]; n];
    for (r, &f) in sc.rules.iter().zip(at) {
        let v = r.value as f32;
        for c in [v - 1.0, v, v + 1.0, v + 0.5] {
            if !candidates[f].contains(&c) {
                candidates[f].push(c);
            }
        }
    }
    let mut rows: Vec<Vec<f32>> = vec![vec![f32::NAN; n]];
    for (r, &f) in sc.rules.iter().zip(at) {
        let mut x = vec![f32::NAN; n];
        x[f] = r.value as f32;
        rows.push(x);
    }
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..48 {
        let x = (0..n)
            .map(|f| {
                seed = seed
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                let c = &candidates[f];
                c[(seed >> 33) as usize % c.len()]
            })
            .collect();
        rows.push(x);
    }
    let out: Vec<serde_json::Value> = rows
        .iter()
        .enumerate()
        .map(|(i, x)| {
            let mut contrib = vec![0.0f64; n + 1];
            for (r, &f) in sc.rules.iter().zip(at) {
                if r.op.fires(x[f], r.value as f32) {
                    contrib[f] += f64::from((sc.scale.per_point * r.points) as f32);
                }
            }
            contrib[n] = sc.scale.intercept;
            let margin: f64 = contrib.iter().sum();
            let p = 1.0 / (1.0 + (-margin).exp());
            let xs: Vec<Option<f32>> = x.iter().map(|v| (!v.is_nan()).then_some(*v)).collect();
            json!({"row": i, "x": xs, "lgb_prob": p, "ort_prob": p, "lgb_contrib": contrib})
        })
        .collect();
    let names: Vec<&str> = features.iter().map(|f| f.name.as_str()).collect();
    Ok(serde_json::to_string(&json!({"features": names, "rows": out}))? + "\n")
}

fn attr_ints(name: &str, v: Vec<i64>) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: AttributeType::Ints as i32,
        ints: v,
        ..AttributeProto::default()
    }
}

fn attr_floats(name: &str, v: Vec<f32>) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: AttributeType::Floats as i32,
        floats: v,
        ..AttributeProto::default()
    }
}

fn attr_strings(name: &str, v: Vec<&str>) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: AttributeType::Strings as i32,
        strings: v.into_iter().map(|s| s.as_bytes().to_vec()).collect(),
        ..AttributeProto::default()
    }
}

fn attr_string(name: &str, v: &str) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: AttributeType::String as i32,
        s: v.as_bytes().to_vec(),
        ..AttributeProto::default()
    }
}

fn tensor_info(name: &str, elem: i32, dims: &[Option<i64>]) -> ValueInfoProto {
    let dim = dims
        .iter()
        .map(|d| Dimension {
            value: Some(match d {
                Some(v) => Dim::DimValue(*v),
                None => Dim::DimParam("N".into()),
            }),
            ..Dimension::default()
        })
        .collect();
    ValueInfoProto {
        name: name.into(),
        r#type: Some(TypeProto {
            value: Some(TypeValue::TensorType(Tensor {
                elem_type: elem,
                shape: Some(TensorShapeProto { dim }),
            })),
            ..TypeProto::default()
        }),
        ..ValueInfoProto::default()
    }
}

/// The ONNX model: input `input` [N, n] float, one `TreeEnsembleClassifier` (ai.onnx.ml) with
/// outputs `label` and `probabilities`, LightGBM's single-score layout (weights on class 0, the
/// intercept as base value, logistic).
fn stumps_onnx(sc: &Scorecard, at: &[usize], leaves: &[f32], n: usize) -> Vec<u8> {
    let k = sc.rules.len();
    let mut tree = Vec::with_capacity(3 * k);
    let mut node = Vec::with_capacity(3 * k);
    let (mut feat, mut vals, mut modes) = (Vec::new(), Vec::new(), Vec::new());
    let (mut t_ids, mut f_ids, mut missing) = (Vec::new(), Vec::new(), Vec::new());
    for (i, (r, &f)) in sc.rules.iter().zip(at).enumerate() {
        for (id, mode) in [(0, r.op.mode()), (1, "LEAF"), (2, "LEAF")] {
            tree.push(i as i64);
            node.push(id);
            feat.push(if id == 0 { f as i64 } else { 0 });
            vals.push(if id == 0 { r.value as f32 } else { 0.0 });
            modes.push(mode);
            t_ids.push(if id == 0 { 1 } else { 0 });
            f_ids.push(if id == 0 { 2 } else { 0 });
            missing.push(0);
        }
    }
    let class_trees: Vec<i64> = (0..k as i64).flat_map(|t| [t, t]).collect();
    let class_nodes: Vec<i64> = (0..k).flat_map(|_| [1, 2]).collect();
    let class_weights: Vec<f32> = leaves.iter().flat_map(|&w| [w, 0.0]).collect();
    let ensemble = NodeProto {
        name: "scorecard".into(),
        op_type: "TreeEnsembleClassifier".into(),
        domain: "ai.onnx.ml".into(),
        input: vec!["input".into()],
        output: vec!["label".into(), "probabilities".into()],
        attribute: vec![
            attr_ints("classlabels_int64s", vec![0, 1]),
            attr_ints("nodes_treeids", tree),
            attr_ints("nodes_nodeids", node),
            attr_ints("nodes_featureids", feat),
            attr_floats("nodes_values", vals),
            attr_strings("nodes_modes", modes),
            attr_ints("nodes_truenodeids", t_ids),
            attr_ints("nodes_falsenodeids", f_ids),
            attr_ints("nodes_missing_value_tracks_true", missing),
            attr_ints("class_treeids", class_trees),
            attr_ints("class_nodeids", class_nodes),
            attr_ints("class_ids", vec![0; 2 * k]),
            attr_floats("class_weights", class_weights),
            attr_floats("base_values", vec![sc.scale.intercept as f32]),
            attr_string("post_transform", "LOGISTIC"),
        ],
        ..NodeProto::default()
    };
    const FLOAT: i32 = 1;
    const INT64: i32 = 7;
    let model = ModelProto {
        ir_version: 8,
        producer_name: "leadscore scorecard".into(),
        opset_import: vec![
            OperatorSetIdProto {
                domain: String::new(),
                version: 15,
            },
            OperatorSetIdProto {
                domain: "ai.onnx.ml".into(),
                version: 3,
            },
        ],
        graph: Some(GraphProto {
            name: sc.name.clone(),
            node: vec![ensemble],
            input: vec![tensor_info("input", FLOAT, &[None, Some(n as i64)])],
            output: vec![
                tensor_info("label", INT64, &[None]),
                tensor_info("probabilities", FLOAT, &[None, Some(2)]),
            ],
            ..GraphProto::default()
        }),
        ..ModelProto::default()
    };
    prost::Message::encode_to_vec(&model)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test
    use super::*;
    use crate::bundle_check::{check, GoldenCheck};
    use crate::model::card::Card;
    use crate::model::Bundle;
    use crate::score::{ScoreOptions, Scorer};

    const TEMPLATE: &str = include_str!("../../models/train/b2b.card.json");
    const STARTER: &str = include_str!("../../models/train/b2b.scorecard.json");

    fn compiled() -> (Scorecard, Compiled) {
        let sc = Scorecard::parse(STARTER).unwrap();
        let c = compile(&sc, TEMPLATE, "20261206").unwrap();
        (sc, c)
    }

    #[test]
    fn the_starter_scorecard_compiles_to_a_bundle_that_passes_its_check() {
        let (sc, c) = compiled();
        let card = Card::parse(&c.card).unwrap();
        assert_eq!(card.onnx_file.n_trees, Some(sc.rules.len()));
        assert!(card.model_version.starts_with("b2b-rules-20261206-"));
        let report = check(
            Bundle::from_parts(card, &c.onnx).unwrap(),
            Some(c.golden.as_bytes()),
        )
        .unwrap();
        assert!(
            matches!(report.golden, GoldenCheck::Replayed(_)),
            "{report:?}"
        );
        assert!(report.passed(), "{report:?}");
    }

    #[test]
    fn contributions_are_exactly_the_points() {
        let (sc, c) = compiled();
        let card = Card::parse(&c.card).unwrap();
        let scorer = Scorer::new(Bundle::from_parts(card, &c.onnx).unwrap(), None).unwrap();
        let names = scorer.features().names().to_vec();
        let i = |n: &str| names.iter().position(|x| x == n).unwrap();
        let mut x = vec![0.0f32; names.len()];
        x[i("pricing_views_7d")] = 2.0; // 15 points
        x[i("seniority")] = 4.0; // 10 points
        x[i("days_since_activity")] = 45.0; // −15 points
        let s = scorer
            .score_vector(&x, ScoreOptions { all_factors: true })
            .unwrap();
        let per = sc.scale.per_point;
        let impact = |n: &str| {
            s.key_factors
                .iter()
                .find(|f| f.feature == n)
                .map_or(0.0, |f| f.impact)
        };
        assert!((impact("pricing_views_7d") - 15.0 * per).abs() < 1e-6);
        assert!((impact("seniority") - 10.0 * per).abs() < 1e-6);
        assert!((impact("days_since_activity") + 15.0 * per).abs() < 1e-6);
        assert!(
            impact("demo_views").abs() < 1e-12,
            "a rule that does not fire gives nothing"
        );
        let p = 1.0 / (1.0 + (-(sc.scale.intercept + 10.0 * per)).exp());
        assert!((s.probability - p).abs() < 1e-6, "{} vs {p}", s.probability);
    }

    #[test]
    fn bad_scorecards_name_the_rule_at_fault() {
        let sc = Scorecard::parse(STARTER).unwrap();
        let with = |f: &dyn Fn(&mut Scorecard)| {
            let mut s = sc.clone();
            f(&mut s);
            compile(&s, TEMPLATE, "20261206").unwrap_err().to_string()
        };
        assert!(with(&|s| s.rules[2].feature = "nope".into()).contains("rule 3"));
        assert!(with(&|s| s.rules[0].points = 0.0).contains("points"));
        assert!(with(&|s| s.rules[0].value = f64::INFINITY).contains("finite"));
        assert!(with(&|s| s.scale.per_point = -1.0).contains("per_point"));
        assert!(with(&|s| s.rules.clear()).contains("1 to"));
        assert!(with(&|s| s.name = "a b".into()).contains("name"));
        assert!(Scorecard::parse(r#"{"name":"x","scale":{"intercept":0,"per_point":1},"tiers":{"hot":1,"warm":0},"rules":[{"feature":"a","op":"~","value":1,"points":1}]}"#).is_err());
    }
}
