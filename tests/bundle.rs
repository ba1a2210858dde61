//! Bundle validation: every way a card can disagree with itself or its model fails with a clear message.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use std::path::{Path, PathBuf};

use leadscore::model::card::Card;
use leadscore::model::Bundle;
use leadscore::score::Scorer;
use serde_json::{json, Value};

fn default_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("models/default")
}

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
            "isotonic",
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
        std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/trees/lgbm.onnx"))
            .unwrap();
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
