//! Bundle validation: every way a card can disagree with itself or its model fails with a clear message.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use std::path::Path;

use leadscore::model::card::Card;
use leadscore::model::Bundle;
use leadscore::score::Scorer;
use serde_json::{json, Value};

use crate::support::default_dir;

fn card_json() -> Value {
    serde_json::from_str(&std::fs::read_to_string(default_dir().join("card.json")).unwrap())
        .unwrap()
}

fn onnx() -> Vec<u8> {
    std::fs::read(default_dir().join("model.onnx")).unwrap()
}

/// Loads a bundle (and builds its scorer) from a modified card; returns the error text.
fn load_err(card: Value, onnx: &[u8]) -> String {
    let parsed = match Card::parse(&card.to_string()) {
        Ok(c) => c,
        Err(e) => return e.to_string(),
    };
    match Bundle::from_parts(parsed, onnx).and_then(|b| Scorer::new(b, None)) {
        Ok(_) => panic!("bundle unexpectedly loaded"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn the_default_bundle_loads_from_disk_and_embedded() {
    let disk = Scorer::new(Bundle::load(&default_dir()).unwrap(), None).unwrap();
    let emb = Scorer::new(Bundle::embedded().unwrap(), None).unwrap();
    assert_eq!(disk.card(), emb.card());
    assert_eq!(disk.features().len(), disk.card().onnx_file.n_features);
}

#[test]
fn card_errors_are_clear() {
    type Edit = Box<dyn Fn(&mut Value)>;
    let cases: Vec<(Edit, &str)> = vec![
        (
            Box::new(|c| c["schema_version"] = json!(2)),
            "schema_version 2 is not supported",
        ),
        (
            Box::new(|c| {
                c.as_object_mut()
                    .unwrap()
                    .remove("schema_version")
                    .map(|_| ())
                    .unwrap()
            }),
            "missing schema_version",
        ),
        (
            Box::new(|c| c["model"]["n_features"] = json!(12)),
            "13 features listed but model.n_features is 12",
        ),
        (
            Box::new(|c| c["tiers"] = json!({"hot": 30, "warm": 60})),
            "tiers need",
        ),
        (
            Box::new(|c| c["calibration"] = json!({"method": "platt", "a": -1, "b": 0})),
            "platt",
        ),
        (
            Box::new(|c| c["calibration"] = json!({"method": "isotonic"})),
            "missing field `x`",
        ),
        (
            Box::new(|c| c["calibration"] = json!({"method": "spline"})),
            "unknown variant `spline`",
        ),
        (
            Box::new(|c| {
                c["calibration"] =
                    json!({"method": "isotonic", "x": [0.1, 0.5], "y": [0.1, 0.2, 0.3]})
            }),
            "isotonic calibration: x has 2 breakpoints but y has 3",
        ),
        (
            Box::new(|c| {
                c["calibration"] = json!({"method": "isotonic", "x": [0.1, 0.5, 0.4], "y": [0.1, 0.2, 0.3]})
            }),
            "isotonic calibration: x must be strictly increasing, but x[2] = 0.4 follows x[1] = 0.5",
        ),
        (
            Box::new(|c| {
                c["calibration"] = json!({"method": "isotonic", "x": [0.1, 0.2], "y": [0.3, 0.2]})
            }),
            "isotonic calibration: y must be non-decreasing, but y[1] = 0.2 follows y[0] = 0.3",
        ),
        (
            Box::new(|c| {
                c["calibration"] = json!({"method": "isotonic", "x": [0.1, 1.5], "y": [0.1, 0.2]})
            }),
            "isotonic calibration: x[1] = 1.5 is outside [0, 1]",
        ),
        (
            Box::new(|c| {
                c["calibration"] = json!({"method": "isotonic", "x": [0.1, 0.5], "y": [-0.1, 0.2]})
            }),
            "isotonic calibration: y[0] = -0.1 is outside [0, 1]",
        ),
        (
            Box::new(|c| c["calibration"] = json!({"method": "isotonic", "x": [], "y": []})),
            "isotonic calibration: needs at least one breakpoint",
        ),
        (
            Box::new(|c| c["features"][10]["values"] = json!({"email": "Email"})),
            "feature `channel`: values key \"email\" is not a number",
        ),
        (
            Box::new(|c| c["features"][10]["colour"] = json!("red")),
            "unknown field `colour`",
        ),
        (
            Box::new(|c| c["model"]["sha256"] = json!("00")),
            "model.sha256 is 00",
        ),
        (
            Box::new(|c| c["model"]["n_trees"] = json!(3)),
            "model.n_trees is 3",
        ),
        (
            Box::new(|c| c["features"][0]["kind"] = json!("telepathy")),
            "unknown kind `telepathy`",
        ),
        (
            Box::new(|c| c["features"][0]["params"]["categories"] = json!(["nope"])),
            "tag `nope`",
        ),
        (
            Box::new(|c| c["site"]["page_rules"][0]["prefix"] = json!("account")),
            "page_rules[0]",
        ),
        (
            Box::new(|c| c["explain"]["node_covers"][0] = json!([1.0, 2.0])),
            "cover",
        ),
        (
            Box::new(|c| {
                c["explain"]["node_covers"]
                    .as_array_mut()
                    .unwrap()
                    .truncate(3)
            }),
            "cover",
        ),
    ];
    let bytes = onnx();
    for (i, (edit, needle)) in cases.iter().enumerate() {
        let mut c = card_json();
        edit(&mut c);
        let e = load_err(c, &bytes);
        assert!(
            e.to_lowercase().contains(&needle.to_lowercase()),
            "case {i}: {e}"
        );
    }
}

#[test]
fn model_errors_are_clear() {
    // A card whose model is a different (smaller) file: the trees no longer match the card.
    let other =
        std::fs::read(crate::support::root().join("tests/fixtures/trees/lgbm.onnx")).unwrap();
    let mut c = card_json();
    c["model"].as_object_mut().unwrap().remove("sha256");
    c["model"].as_object_mut().unwrap().remove("n_trees");
    let e = load_err(c, &other);
    assert!(e.contains("declares 5 features, not 13"), "{e}");
    let e = load_err(card_json(), b"not an onnx file");
    assert!(e.contains("model.sha256"), "{e}");
    let mut c = card_json();
    c["model"].as_object_mut().unwrap().remove("sha256");
    let e = load_err(c, b"not an onnx file");
    assert!(e.starts_with("model.onnx") || e.starts_with("tract"), "{e}");
}

#[test]
fn missing_files_name_the_path() {
    let e = Bundle::load(Path::new("/nonexistent/bundle"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("/nonexistent/bundle/card.json"), "{e}");
}

#[test]
fn an_isotonic_card_scores_through_its_breakpoints() {
    let mut c = card_json();
    c["calibration"] = json!({"method": "isotonic", "x": [0.0, 0.5, 1.0], "y": [0.0, 0.2, 0.9]});
    let card = Card::parse(&c.to_string()).unwrap();
    let s = Scorer::new(Bundle::from_parts(card, &onnx()).unwrap(), None).unwrap();
    let x = [
        3.0, 40.0, 0.0, 0.0, 12.0, 600.0, 0.01, 0.02, 25.0, 0.0, 2.0, 1.0, 0.0,
    ];
    let score = s.score_vector(&x, Default::default()).unwrap();
    let p = score.raw_probability;
    let want = if p <= 0.5 {
        0.4 * p
    } else {
        0.2 + 1.4 * (p - 0.5)
    };
    assert!(
        (score.probability - want).abs() < 1e-12,
        "{p} → {}",
        score.probability
    );
}

/// Factors carry the card's label for the feature and, for a coded value, its display name.
#[test]
fn factors_carry_labels_and_display_names() {
    let mut c = card_json();
    c["features"][10]["label"] = json!("Traffic source");
    c["features"][10]["values"] = json!({"8": "Email", "2": "Google search"});
    c["features"][11].as_object_mut().unwrap().remove("label");
    let card = Card::parse(&c.to_string()).unwrap();
    let s = Scorer::new(Bundle::from_parts(card, &onnx()).unwrap(), None).unwrap();
    let x = [
        3.0, 40.0, 0.0, 0.0, 12.0, 600.0, 0.01, 0.02, 25.0, 0.0, 8.0, 1.0, 0.0,
    ];
    let opts = leadscore::score::ScoreOptions { all_factors: true };
    let all = s.score_vector(&x, opts).unwrap().contributions.unwrap();
    let channel = &all[10];
    assert_eq!(channel.feature, "channel");
    assert_eq!(channel.label, "Traffic source");
    assert_eq!(channel.display.as_deref(), Some("Email"));
    assert_eq!(all[11].label, "visitor_type", "no label: the name");
    let text = serde_json::to_string(channel).unwrap();
    assert!(
        text.starts_with(r#"{"feature":"channel","label":"Traffic source","value":8.0,"display":"Email","impact":"#),
        "{text}"
    );
    // A value without a display name has no `display` field.
    let x2 = [
        3.0, 40.0, 0.0, 0.0, 12.0, 600.0, 0.01, 0.02, 25.0, 0.0, 5.0, 1.0, 0.0,
    ];
    let f = &s.score_vector(&x2, opts).unwrap().contributions.unwrap()[10];
    assert!(f.display.is_none());
    assert!(serde_json::to_value(f).unwrap().get("display").is_none());
}

#[test]
fn the_committed_rules_bundle_is_the_starter_scorecard_compiled() {
    let dir = std::env::temp_dir().join(format!("leadscore-rules-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let out = crate::support::leadscore(&[
        "scorecard",
        "--rules",
        "models/train/b2b.scorecard.json",
        "--template",
        "models/train/b2b.card.json",
        "--out",
        dir.to_str().unwrap(),
        "--date",
        "20240501",
    ]);
    assert!(
        out.status.success(),
        "{}",
        crate::support::text(&out.stderr)
    );
    assert!(crate::support::text(&out.stdout).contains("ok"));
    let root = crate::support::root();
    for f in ["card.json", "model.onnx", "golden.json"] {
        assert_eq!(
            std::fs::read(dir.join(f)).unwrap(),
            std::fs::read(root.join("models/b2b-rules").join(f)).unwrap(),
            "models/b2b-rules/{f} is stale: run make b2b-example"
        );
    }
    // A rule naming a feature the template lacks: refused with the rule's number, nothing written.
    let bad = dir.join("bad.json");
    let text = std::fs::read_to_string(root.join("models/train/b2b.scorecard.json"))
        .unwrap()
        .replacen("pricing_views_7d", "pricing_views_8d", 1);
    std::fs::write(&bad, text).unwrap();
    let bad_out = dir.join("bad-bundle");
    let out = crate::support::leadscore(&[
        "scorecard",
        "--rules",
        bad.to_str().unwrap(),
        "--template",
        "models/train/b2b.card.json",
        "--out",
        bad_out.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(
        crate::support::text(&out.stderr).contains("rule 1"),
        "{}",
        crate::support::text(&out.stderr)
    );
    assert!(!bad_out.exists());
}
