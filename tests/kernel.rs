//! The tree kernel and TreeSHAP against independent references: onnxruntime (synthetic models using
//! every branch mode, NaN tracking, shuffled ids, base values), tract's built-in op and LightGBM
//! (`raw_score`, `pred_contrib`). Fixtures: `tests/fixtures/trees/make_trees.py`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use std::path::PathBuf;

use leadscore::explain::{
    tree_shap, tree_shap_memo, tree_shap_reference, tree_shap_with, Explainer, ShapMemo,
    TreeShapScratch,
};
use leadscore::model::error::ModelError;
use leadscore::model::forest::{Forest, Node};
use leadscore::model::plan::Plan;
use serde::Deserialize;

fn dir() -> PathBuf {
    crate::support::root().join("tests/fixtures/trees")
}

fn read(name: &str) -> Vec<u8> {
    let p = dir().join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn json<T: serde::de::DeserializeOwned>(name: &str) -> T {
    serde_json::from_slice(&read(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// Rows with JSON `null` as NaN, flattened row-major.
fn flatten(rows: &[Vec<Option<f32>>]) -> Vec<f32> {
    rows.iter()
        .flatten()
        .map(|v| v.unwrap_or(f32::NAN))
        .collect()
}

#[derive(Deserialize)]
struct Synth {
    model: String,
    n_features: usize,
    n_trees: usize,
    inputs: Vec<Vec<Option<f32>>>,
    probabilities: Vec<[f32; 2]>,
    labels: Vec<serde_json::Value>,
}

#[derive(Deserialize)]
struct Lgbm {
    model: String,
    model_zipmap: String,
    n_features: usize,
    n_trees: usize,
    inputs: Vec<Vec<Option<f32>>>,
    raw_score: Vec<f64>,
    probability: Vec<f64>,
    pred_contrib: Vec<Vec<f64>>,
    ort_probabilities: Vec<[f32; 2]>,
    lgbm_agrees: Vec<bool>,
    covers_count: Vec<Vec<f64>>,
    covers_weight: Vec<Vec<f64>>,
}

const SYNTH: &[&str] = &[
    "synth_mixed.json",
    "synth_gte_none.json",
    "synth_lt_class1.json",
    "synth_eq_none_mixed.json",
    "synth_many_trees.json",
];

#[test]
fn kernel_matches_onnxruntime_on_synthetic_models() {
    for name in SYNTH {
        let f: Synth = json(name);
        let bytes = read(&f.model);
        let model = Plan::load(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(model.n_features(), f.n_features, "{name}");
        assert_eq!(model.forest().n_trees(), f.n_trees, "{name}");
        let rows = flatten(&f.inputs);
        let n = f.inputs.len();
        let got = model.probabilities(&rows, n).expect("plan runs");
        let mut max = 0f32;
        let mut exact = 0;
        for (r, want) in f.probabilities.iter().enumerate() {
            for c in 0..2 {
                let d = (got[2 * r + c] - want[c]).abs();
                assert!(
                    d <= 1e-6,
                    "{name} row {r} col {c}: {} vs {}",
                    got[2 * r + c],
                    want[c]
                );
                max = max.max(d);
                exact += usize::from(got[2 * r + c].to_bits() == want[c].to_bits());
            }
        }
        println!(
            "{name}: max |Δ| {max:e}, {exact}/{} values bit-identical",
            2 * n
        );
        // Same f32 accumulation order and logistic formula as onnxruntime: only a libm `expf`
        // differing in the last bit may break bit equality.
        assert!(
            10 * exact >= 9 * 2 * n,
            "{name}: only {exact}/{} values bit-identical",
            2 * n
        );

        // Single rows through the plan, and the bare forest, agree with the batch.
        let forest = Forest::from_onnx_bytes(&bytes).expect("parses");
        for (r, row) in rows.chunks_exact(f.n_features).enumerate() {
            let p = model.predict(row).expect("plan runs");
            assert_eq!(p.to_bits(), got[2 * r + 1].to_bits(), "{name} row {r}");
            assert_eq!(
                forest.probabilities(row),
                [got[2 * r], got[2 * r + 1]],
                "{name} row {r}"
            );
            // onnxruntime's label rule.
            let want = &f.labels[r];
            let idx = forest.label_index(forest.margin(row));
            let label = match forest.class_labels() {
                leadscore::model::forest::ClassLabels::Int(l) => serde_json::Value::from(l[idx]),
                leadscore::model::forest::ClassLabels::Str(l) => {
                    serde_json::Value::from(l[idx].clone())
                }
            };
            assert_eq!(&label, want, "{name} row {r} label");
        }
        assert_eq!(model.predict_batch(&rows, n).expect("batch").len(), n);
    }
}

#[test]
fn kernel_matches_onnxruntime_and_tract_builtin_on_lightgbm() {
    let f: Lgbm = json("lgbm.json");
    let bytes = read(&f.model);
    let ours = Plan::load(&bytes).expect("loads");
    let reference = Plan::load_reference(&bytes).expect("tract's own op loads");
    let zipmap = Plan::load(&read(&f.model_zipmap)).expect("ZipMap export loads");
    assert_eq!(ours.n_features(), f.n_features);
    assert_eq!(ours.forest().n_trees(), f.n_trees);
    let rows = flatten(&f.inputs);
    let n = f.inputs.len();
    let got = ours.probabilities(&rows, n).expect("runs");
    let tract = reference.predict_batch(&rows, n).expect("runs");
    let zip = zipmap.predict_batch(&rows, n).expect("runs");
    for r in 0..n {
        for c in 0..2 {
            let d = (got[2 * r + c] - f.ort_probabilities[r][c]).abs();
            assert!(d <= 1e-6, "row {r} col {c}: {d:e}");
        }
        let p = got[2 * r + 1];
        assert!(
            (p - tract[r]).abs() <= 1e-6,
            "row {r}: ours {p} vs tract {}",
            tract[r]
        );
        assert_eq!(
            p.to_bits(),
            zip[r].to_bits(),
            "row {r}: ZipMap export differs"
        );
        if f.lgbm_agrees[r] {
            assert!(
                (f64::from(p) - f.probability[r]).abs() <= 1e-6,
                "row {r} vs LightGBM"
            );
        }
    }
    // The margin is LightGBM's raw score (f32 accumulation vs f64).
    let forest = ours.forest();
    for (r, row) in rows
        .chunks_exact(f.n_features)
        .enumerate()
        .filter(|(r, _)| f.lgbm_agrees[*r])
    {
        let m = f64::from(forest.margin(row));
        assert!(
            (m - f.raw_score[r]).abs() <= 1e-6 * f.raw_score[r].abs().max(1.0),
            "row {r}"
        );
    }
    assert!(f.lgbm_agrees.iter().filter(|a| **a).count() >= 95);
}

#[test]
fn tree_shap_matches_lightgbm_pred_contrib() {
    let f: Lgbm = json("lgbm.json");
    let model = Plan::load(&read(&f.model)).expect("loads");
    let forest = model.forest();
    let covers = Explainer::new(forest, &f.covers_count).expect("covers match the trees");
    let rows = flatten(&f.inputs);
    let p = f.n_features;
    let mut scratch = TreeShapScratch::new(&covers);
    let mut checked = 0;
    for (r, row) in rows.chunks_exact(p).enumerate() {
        let mut phi = vec![0.0; p];
        let base = tree_shap(forest, &covers, row, &mut phi);
        let mut again = vec![0.0; p];
        assert_eq!(
            tree_shap_with(forest, &covers, row, &mut again, &mut scratch),
            base
        );
        assert_eq!(phi, again);
        // Additivity holds on every row, including those where LightGBM routes differently.
        let margin = f64::from(forest.margin(row));
        let total = base + phi.iter().sum::<f64>();
        assert!(
            (total - margin).abs() <= 1e-6 * margin.abs().max(1.0),
            "row {r}: {total} vs {margin}"
        );
        if !f.lgbm_agrees[r] {
            continue;
        }
        let want = &f.pred_contrib[r];
        assert!(
            (base - want[p]).abs() <= 1e-6,
            "row {r}: base {base} vs {}",
            want[p]
        );
        for j in 0..p {
            assert!(
                (phi[j] - want[j]).abs() <= 1e-6,
                "row {r} feature {j}: {} vs {}",
                phi[j],
                want[j]
            );
        }
        checked += 1;
    }
    assert!(checked >= 95);
}

/// Rows with JSON `null` as NaN.
fn rows_of(inputs: &[Vec<Option<f32>>]) -> Vec<Vec<f32>> {
    inputs
        .iter()
        .map(|r| r.iter().map(|v| v.unwrap_or(f32::NAN)).collect())
        .collect()
}

/// A synthetic fixture, its forest, covers from routing its rows, and the rows.
fn synthetic(name: &str) -> (Synth, Forest, Explainer, Vec<Vec<f32>>) {
    let f: Synth = json(name);
    let forest = Forest::from_onnx_bytes(&read(&f.model)).expect("parses");
    let rows = rows_of(&f.inputs);
    let covers = Explainer::new(&forest, &route_covers(&forest, &rows)).expect("consistent");
    (f, forest, covers, rows)
}

/// The fast evaluation against Algorithm 2 verbatim, on models with every branch mode, repeated
/// features along paths, NaN and shuffled node ids (covers from routing the fixture's rows).
#[test]
fn tree_shap_matches_algorithm_2_on_synthetic_models() {
    for name in SYNTH {
        let (f, forest, covers, rows) = synthetic(name);
        let mut scratch = TreeShapScratch::new(&covers);
        for (r, x) in rows.iter().enumerate() {
            let mut fast = vec![0.0; f.n_features];
            let mut slow = vec![0.0; f.n_features];
            let base = tree_shap_with(&forest, &covers, x, &mut fast, &mut scratch);
            assert_eq!(tree_shap_reference(&forest, &covers, x, &mut slow), base);
            for (a, b) in fast.iter().zip(&slow) {
                assert!(
                    (a - b).abs() <= 1e-9 * b.abs().max(1.0),
                    "{name} row {r}: {fast:?} vs {slow:?}"
                );
            }
            let margin = f64::from(forest.margin(x));
            let total = base + fast.iter().sum::<f64>();
            assert!(
                (total - margin).abs() <= 1e-5 * margin.abs().max(1.0),
                "{name} row {r}"
            );
        }
    }
}

/// The per-visitor memo gives [`tree_shap`]'s values to the bit, whatever changed between rows: a
/// walk where one feature at a time takes the next row's value (NaN included), on every fixture.
#[test]
fn tree_shap_memo_is_tree_shap_to_the_bit() {
    let lgbm: Lgbm = json("lgbm.json");
    let mut cases: Vec<(String, Forest, Explainer, Vec<Vec<f32>>)> = Vec::new();
    let forest = Forest::from_onnx_bytes(&read(&lgbm.model)).expect("parses");
    let covers = Explainer::new(&forest, &lgbm.covers_count).expect("covers");
    cases.push(("lgbm".into(), forest, covers, rows_of(&lgbm.inputs)));
    for name in SYNTH {
        let (_, forest, covers, rows) = synthetic(name);
        cases.push((name.to_string(), forest, covers, rows));
    }
    for (name, forest, covers, rows) in &cases {
        let p = forest.n_features();
        let mut memo = ShapMemo::default();
        let (mut saved, mut steps) = (0usize, 0usize);
        let mut x = rows[0].clone();
        for (r, next) in rows.iter().enumerate().skip(1).take(40) {
            for j in 0..p {
                x[j] = next[j];
                let mut want = vec![0.0; p];
                let mut got = vec![0.0; p];
                let base = tree_shap(forest, covers, &x, &mut want);
                assert_eq!(
                    tree_shap_memo(forest, covers, &x, &mut got, &mut memo),
                    base
                );
                let bits = |v: &[f64]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&got), bits(&want), "{name} row {r} feature {j}");
                saved += forest.n_trees() - memo.recomputed();
                steps += 1;
            }
            // The same row again: nothing to recompute.
            let mut again = vec![0.0; p];
            tree_shap_memo(forest, covers, &x, &mut again, &mut memo);
            assert_eq!(memo.recomputed(), 0, "{name} row {r}");
        }
        assert!(
            saved > 0,
            "{name}: the memo never skipped a tree in {steps} steps"
        );
    }
}

/// LightGBM's TreeSHAP weights children by row counts; hessian sums give other values. This pins
/// down which per-node statistic the card must carry.
#[test]
fn lightgbm_covers_are_row_counts_not_hessian_sums() {
    let f: Lgbm = json("lgbm.json");
    let forest = Forest::from_onnx_bytes(&read(&f.model)).expect("parses");
    let covers =
        Explainer::new(&forest, &f.covers_weight).expect("hessian sums are consistent too");
    let rows = flatten(&f.inputs);
    let p = f.n_features;
    let mut worst = 0f64;
    for (r, row) in rows
        .chunks_exact(p)
        .enumerate()
        .filter(|(r, _)| f.lgbm_agrees[*r])
    {
        let mut phi = vec![0.0; p];
        tree_shap(&forest, &covers, row, &mut phi);
        for (got, want) in phi.iter().zip(&f.pred_contrib[r]) {
            worst = worst.max((got - want).abs());
        }
    }
    assert!(
        worst > 1e-3,
        "hessian covers unexpectedly reproduce pred_contrib ({worst:e})"
    );
}

#[test]
fn covers_must_fit_the_forest() {
    let f: Lgbm = json("lgbm.json");
    let forest = Forest::from_onnx_bytes(&read(&f.model)).expect("parses");
    let mut bad = f.covers_count.clone();
    bad[3][0] += 1.0; // root no longer the sum of its children
    assert!(matches!(
        Explainer::new(&forest, &bad),
        Err(ModelError::Card(_))
    ));
    let mut bad = f.covers_count.clone();
    bad.pop();
    assert!(matches!(
        Explainer::new(&forest, &bad),
        Err(ModelError::Card(_))
    ));
    let mut bad = f.covers_count.clone();
    bad[0].push(1.0);
    assert!(matches!(
        Explainer::new(&forest, &bad),
        Err(ModelError::Card(_))
    ));
    let mut bad = f.covers_count.clone();
    let leaf = forest
        .tree(0)
        .and_then(|t| {
            t.nodes()
                .find_map(|n| matches!(n, Node::Leaf(_)).then(|| n.onnx_id()))
        })
        .expect("tree 0 has a leaf");
    bad[0][leaf as usize] = 0.0;
    assert!(matches!(
        Explainer::new(&forest, &bad),
        Err(ModelError::Card(_))
    ));
}

#[test]
fn broken_models_are_rejected_with_clear_errors() {
    let cases: std::collections::BTreeMap<String, String> = json("broken/index.json");
    assert!(cases.len() >= 10);
    for (name, expect) in cases {
        let bytes = read(&format!("broken/{name}.onnx"));
        match Plan::load(&bytes) {
            Ok(m) => panic!("{name}: loaded {m:?}"),
            Err(e @ ModelError::Onnx(_)) => {
                let msg = e.to_string();
                assert!(
                    msg.contains(&expect),
                    "{name}: {msg:?} does not mention {expect:?}"
                );
            }
            Err(e) => panic!("{name}: wrong error kind: {e:?}"),
        }
    }
}

#[test]
fn input_width_is_checked() {
    let f: Synth = json("synth_mixed.json");
    let model = Plan::load(&read(&f.model)).expect("loads");
    let w = model.n_features();
    assert!(model.predict(&vec![0.0; w + 1]).is_err());
    assert!(model.predict(&vec![0.0; w - 1]).is_err());
    assert!(model.predict_batch(&vec![0.0; 2 * w], 3).is_err());
    assert!(model.predict_batch(&[], 0).expect("empty batch").is_empty());
    // The file declares its width: another one is refused.
    let e = Plan::load(&read(&f.model)).and_then(|m| m.with_input_width(w + 2));
    assert!(matches!(e, Err(ModelError::Onnx(_))));
    let same = Plan::load(&read(&f.model)).and_then(|m| m.with_input_width(w));
    assert!(same.is_ok());
}

/// The direct wiring (source → kernel, no tract-onnx inference) is what tract-onnx's own reading of
/// the file gives: the same probabilities, bit for bit, on every fixture and committed model, and the
/// onnxmltools graphs (with ZipMap or without) do take it.
#[test]
fn the_direct_wiring_equals_tract_onnx_reading_the_graph() {
    let root = crate::support::root();
    let mut models: Vec<(String, PathBuf, usize)> = Vec::new();
    for name in [
        "synth_mixed",
        "synth_eq_none_mixed",
        "synth_gte_none",
        "synth_lt_class1",
        "synth_many_trees",
    ] {
        let f: Synth = json(&format!("{name}.json"));
        models.push((name.into(), dir().join(&f.model), f.n_features));
    }
    let l: Lgbm = json("lgbm.json");
    models.push(("lgbm".into(), dir().join(&l.model), l.n_features));
    models.push((
        "lgbm_zipmap".into(),
        dir().join(&l.model_zipmap),
        l.n_features,
    ));
    for m in ["default", "candidate", "b2b-example", "b2b-rules"] {
        let card: serde_json::Value = serde_json::from_slice(
            &std::fs::read(root.join("models").join(m).join("card.json")).unwrap(),
        )
        .unwrap();
        let width = card["features"].as_array().unwrap().len();
        models.push((
            m.into(),
            root.join("models").join(m).join("model.onnx"),
            width,
        ));
    }
    for (name, path, width) in models {
        let bytes = std::fs::read(&path).unwrap();
        let direct = Plan::load(&bytes)
            .and_then(|p| p.with_input_width(width))
            .unwrap();
        let tract = Plan::load_through_tract_onnx(&bytes)
            .and_then(|p| p.with_input_width(width))
            .unwrap();
        assert!(direct.wired_directly(), "{name}: not wired directly");
        assert!(!tract.wired_directly(), "{name}");
        // Rows over each feature's range, missing values included.
        let n = 64;
        let rows: Vec<f32> = (0..n * width)
            .map(|i| match (i * 7919) % 13 {
                0 => f32::NAN,
                k => (k as f32 - 4.0) * ((i % 5) as f32 + 0.5),
            })
            .collect();
        let a = direct.probabilities(&rows, n).unwrap();
        let b = tract.probabilities(&rows, n).unwrap();
        assert_eq!(
            a.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            b.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            "{name}"
        );
    }
}

/// Node covers from routing rows through each tree: leaf = hits + 1, branch = sum of children.
fn route_covers(forest: &Forest, rows: &[Vec<f32>]) -> Vec<Vec<f64>> {
    forest
        .trees()
        .map(|tree| {
            let mut local = vec![0.0f64; tree.len()];
            for x in rows {
                let mut i = 0;
                while let Some(Node::Branch(b)) = tree.node(i) {
                    i = if b.goes_true(x[b.feature]) {
                        b.true_child
                    } else {
                        b.false_child
                    };
                }
                local[i] += 1.0;
            }
            // Children come after their parent in local order: fill bottom-up.
            for i in (0..tree.len()).rev() {
                match tree.node(i) {
                    Some(Node::Leaf(_)) => local[i] += 1.0,
                    Some(Node::Branch(b)) => local[i] = local[b.true_child] + local[b.false_child],
                    None => {}
                }
            }
            let mut by_id = vec![0.0; tree.len()];
            for (i, n) in tree.nodes().enumerate() {
                by_id[n.onnx_id() as usize] = local[i];
            }
            by_id
        })
        .collect()
}

/// Front ends score a visitor event after event with a memo: the scores are the scores, to the bit.
#[test]
fn scores_with_the_memo_are_the_scores() {
    use leadscore::event::Event;
    use leadscore::model::Bundle;
    use leadscore::score::{ScoreOptions, Scorer};
    let scorer = Scorer::new(Bundle::embedded().expect("bundle"), None).expect("scorer");
    let text =
        std::fs::read_to_string(crate::support::root().join("tests/fixtures/sample_events.ndjson"))
            .expect("sample events");
    let events: Vec<Event> = text
        .lines()
        .filter_map(|l| Event::parse(l).ok()) // the fixture also holds bad lines, for the CLI
        .collect();
    let mut skipped = 0;
    for v in ["v-hot", "v-warm", "v-cold"] {
        let mut state = scorer.new_state();
        let mut memo = ShapMemo::default();
        for e in events.iter().filter(|e| e.visitor_id == v) {
            scorer.apply(&mut state, e, None);
            let opts = ScoreOptions { all_factors: true };
            let a = scorer.score(&state, v, 0, opts).expect("score");
            let b = scorer
                .score_with_memo(&state, v, 0, opts, &mut memo)
                .expect("score");
            assert_eq!(
                serde_json::to_string(&a).expect("json"),
                serde_json::to_string(&b).expect("json"),
                "{v} after {}",
                e.id
            );
            skipped += scorer.n_trees() - memo.recomputed();
        }
    }
    assert!(skipped > 0, "the memo never skipped a tree");
}
