//! Train/serve parity on all 12,330 sessions of the Online Shoppers dataset.
//!
//! `models/train/shoppers_events.py` expands every dataset row into events for visitor `shoppers-<row>`.
//! The Rust engine, fed those events, must reproduce each row's feature values exactly (bit for bit in
//! f32) as the card's `column`/`encoding` read them from the raw CSV, and tract's probabilities must match
//! LightGBM's and onnxruntime's (`models/default/parity_probs.csv`) within 1e-5.
//!
//! The converter output (~200 MB) is not committed: this test runs the converter into `target/parity/`
//! with the project venv (`make test` creates it), or reads `LEADSCORE_SHOPPERS_EVENTS` and
//! `LEADSCORE_SHOPPERS_TABLES` when set.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::Command;

use leadscore::event::Event;
use leadscore::model::Bundle;
use leadscore::score::Scorer;
use leadscore::site::SiteTables;

use crate::support::root;

fn dataset() -> PathBuf {
    std::env::var_os("LEADSCORE_SHOPPERS_CSV")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            root().join("../shared/data/online_shoppers/online_shoppers_intention.csv")
        })
}

/// Paths of the converted events and site tables, converting if needed.
fn converted() -> (PathBuf, PathBuf) {
    if let (Some(e), Some(t)) = (
        std::env::var_os("LEADSCORE_SHOPPERS_EVENTS"),
        std::env::var_os("LEADSCORE_SHOPPERS_TABLES"),
    ) {
        return (e.into(), t.into());
    }
    let dir = root().join("target/parity");
    let (events, tables) = (
        dir.join("shoppers.ndjson"),
        dir.join("shoppers_tables.json"),
    );
    let script = root().join("models/train/shoppers_events.py");
    let fresh = |p: &Path| {
        let (Ok(a), Ok(b)) = (std::fs::metadata(p), std::fs::metadata(&script)) else {
            return false;
        };
        matches!((a.modified(), b.modified()), (Ok(a), Ok(b)) if a >= b)
    };
    if !(fresh(&events) && fresh(&tables)) {
        std::fs::create_dir_all(&dir).unwrap();
        let python = root().join(".venv/bin/python");
        assert!(
            python.exists(),
            "no .venv: run `make test` (it creates the Python venv the converter needs)"
        );
        let status = Command::new(python)
            .arg(&script)
            .arg("--data")
            .arg(dataset())
            .arg("--out")
            .arg(&events)
            .arg("--out-tables")
            .arg(&tables)
            .status()
            .unwrap();
        assert!(status.success(), "converter failed");
    }
    (events, tables)
}

/// One dataset row's expected model inputs, read through the card's `column`/`encoding`.
fn expected_rows(scorer: &Scorer) -> Vec<Vec<f32>> {
    let text = std::fs::read_to_string(dataset()).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let col = |name: &str| {
        header
            .iter()
            .position(|h| *h == name)
            .unwrap_or_else(|| panic!("no column {name}"))
    };
    let specs = &scorer.card().features;
    lines
        .map(|line| {
            let cells: Vec<&str> = line.split(',').collect();
            specs
                .iter()
                .map(|f| {
                    let column = f
                        .column
                        .as_deref()
                        .unwrap_or_else(|| panic!("{} has no column", f.name));
                    let mut sum = 0f64;
                    for part in column.split('+') {
                        let cell = cells[col(part.trim())];
                        sum += match &f.encoding {
                            Some(enc) => *enc
                                .get(cell)
                                .unwrap_or_else(|| panic!("{}: no encoding for {cell}", f.name)),
                            None => cell.parse::<f64>().unwrap(),
                        };
                    }
                    sum as f32
                })
                .collect()
        })
        .collect()
}

#[test]
fn engine_reproduces_every_dataset_row_and_tract_matches_lightgbm_and_onnxruntime() {
    let (events, tables) = converted();
    let site: SiteTables = serde_json::from_str(&std::fs::read_to_string(tables).unwrap()).unwrap();
    let scorer = Scorer::new(
        Bundle::load(&root().join("models/default")).unwrap(),
        Some(site),
    )
    .unwrap();
    let expected = expected_rows(&scorer);
    assert_eq!(expected.len(), 12_330);

    let mut states = HashMap::new();
    let reader = BufReader::new(std::fs::File::open(&events).unwrap());
    for (i, line) in reader.lines().enumerate() {
        let line = line.unwrap();
        let e = Event::parse(&line).unwrap_or_else(|err| panic!("line {}: {err}", i + 1));
        let st = states
            .entry(e.visitor_id.clone())
            .or_insert_with(|| scorer.new_state());
        assert_eq!(
            scorer.apply(st, &e, None),
            leadscore::state::Apply::Applied,
            "line {}",
            i + 1
        );
    }
    assert_eq!(states.len(), 12_330);

    let probs = std::fs::read_to_string(root().join("models/default/parity_probs.csv")).unwrap();
    let probs: Vec<(f64, f64)> = probs
        .lines()
        .skip(1)
        .map(|l| {
            let c: Vec<&str> = l.split(',').collect();
            (c[1].parse().unwrap(), c[2].parse().unwrap())
        })
        .collect();
    assert_eq!(probs.len(), 12_330);

    let names = scorer.features().names();
    let mut mismatches = Vec::new();
    let (mut worst_lgb, mut worst_ort) = (0f64, 0f64);
    for (row, want) in expected.iter().enumerate() {
        let st = &states[&format!("shoppers-{row}")];
        let got = scorer.feature_vector(st);
        for (j, (g, w)) in got.iter().zip(want).enumerate() {
            if g.to_bits() != w.to_bits() {
                mismatches.push(format!("row {row} {}: engine {g} dataset {w}", names[j]));
            }
        }
        let p = f64::from(scorer_probability(&scorer, &got));
        worst_lgb = worst_lgb.max((p - probs[row].0).abs());
        worst_ort = worst_ort.max((p - probs[row].1).abs());
    }
    assert!(
        mismatches.is_empty(),
        "{} feature mismatches, first: {:?}",
        mismatches.len(),
        &mismatches[..mismatches.len().min(10)]
    );
    println!("parity: 12330 rows exact; max |Δp| tract vs LightGBM {worst_lgb:.2e}, vs onnxruntime {worst_ort:.2e}");
    assert!(worst_lgb <= 1e-5, "tract vs LightGBM {worst_lgb}");
    assert!(worst_ort <= 1e-5, "tract vs onnxruntime {worst_ort}");
}

fn scorer_probability(s: &Scorer, x: &[f32]) -> f32 {
    s.score_vector(x, Default::default())
        .unwrap()
        .raw_probability as f32
}
