//! `models/train/train.py`, run as a user would: bad CSVs are refused with the file, line and column
//! (exit 2, no traceback); a table (cold start, `"encoding": "auto"`) and a point-in-time dataset
//! (LightGBM and XGBoost) train into bundles that pass `leadscore check` and load in the scorer.
//!
//! Small synthetic data made here (seeded), so each training run takes seconds; the default model's
//! configuration is `make train` (models/train/README.md). Needs the project venv (`make test`
//! creates it), as the parity test does.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use leadscore::model::Bundle;
use leadscore::score::{ScoreOptions, Scorer};
use serde_json::{json, Value};

use crate::support::{root, text};

fn scratch(name: &str) -> PathBuf {
    crate::support::scratch("trainer", name)
}

fn train(args: &[&str]) -> Output {
    let python = root().join(".venv/bin/python");
    assert!(
        python.exists(),
        "no .venv: run `make test` (it creates the Python venv train.py needs)"
    );
    Command::new(python)
        .arg(root().join("models/train/train.py"))
        .args(args)
        .args(["--leadscore", env!("CARGO_BIN_EXE_leadscore")])
        .current_dir(root())
        .output()
        .unwrap()
}

/// A deterministic pseudo-random stream (64-bit LCG, top bits).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

const SOURCES: [&str; 4] = ["Email", "Direct", "Search", "Social"];

/// Rows of (pages, seconds, source, converted) with a known dependence of the label on all three.
fn synthetic(n: usize, seed: u64) -> Vec<(u32, f64, &'static str, bool)> {
    let mut r = Lcg(seed);
    (0..n)
        .map(|_| {
            let pages = (r.next() * 12.0) as u32;
            let seconds = (r.next() * 600.0 * f64::from(pages.min(6))).round() / 4.0;
            let s = (r.next() * 4.0) as usize;
            let z = -3.0 + 0.35 * f64::from(pages) + 0.002 * seconds + [0.8, 0.0, 0.4, -0.6][s];
            let converted = r.next() < 1.0 / (1.0 + (-z).exp());
            (pages, seconds, SOURCES[s], converted)
        })
        .collect()
}

/// The default card's site tables, and features over three table columns.
fn template(encoding_auto: bool) -> Value {
    let card: Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("models/default/card.json")).unwrap(),
    )
    .unwrap();
    // "auto" on a trait (live values are whatever the site sends): a kind whose live values are the
    // engine's fixed names (channel) is refused with it (`auto_on_a_fixed_name_kind_is_refused`).
    let channel = if encoding_auto {
        json!({"name": "channel", "kind": "trait", "label": "Traffic source",
               "params": {"name": "source", "codes": {"direct": 0, "email": 1, "search": 2, "social": 3}},
               "column": "source", "encoding": "auto",
               "values": {"0": "Direct", "1": "Email", "2": "Search", "3": "Social"}})
    } else {
        json!({"name": "channel", "kind": "channel",
               "params": {"touch": "first", "scope": "session", "default": 0,
                          "codes": {"direct": 0, "email": 1, "organic_google": 2, "social_facebook": 3}}})
    };
    json!({
        "features": [
            {"name": "product_pages", "kind": "page_views", "label": "Product pages viewed",
             "params": {"categories": ["product_related"], "scope": "session"}, "column": "pages"},
            {"name": "product_seconds", "kind": "engaged_seconds",
             "params": {"categories": ["product_related"], "scope": "session"}, "column": "seconds"},
            channel,
        ],
        "site": card["site"],
        "train": {"max_trees": 300, "params": {"lightgbm": {"min_data_in_leaf": 40}}},
    })
}

fn write_table(dir: &Path, rows: &[(u32, f64, &str, bool)]) -> PathBuf {
    let mut s = String::from("id,pages,seconds,source,converted\n");
    for (i, (p, sec, src, y)) in rows.iter().enumerate() {
        s += &format!("{i},{p},{sec},{src},{}\n", if *y { "Yes" } else { "no" });
    }
    let path = dir.join("data.csv");
    std::fs::write(&path, s).unwrap();
    path
}

fn write_json(path: &Path, v: &Value) -> String {
    std::fs::write(path, serde_json::to_string_pretty(v).unwrap()).unwrap();
    path.to_str().unwrap().to_string()
}

fn load(dir: &Path) -> (Value, Scorer) {
    let card =
        serde_json::from_str(&std::fs::read_to_string(dir.join("card.json")).unwrap()).unwrap();
    (card, Scorer::new(Bundle::load(dir).unwrap(), None).unwrap())
}

/// A trainer run that succeeded and whose bundle passed `leadscore check`: its stdout and stderr.
fn trained(out: &Output) -> (String, String) {
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("golden: ") && stdout.ends_with("ok\n"),
        "{stdout}"
    );
    (stdout, stderr)
}
#[test]
fn bad_tables_and_datasets_name_the_file_line_and_column() {
    let dir = scratch("errors");
    let good = synthetic(40, 1);
    let tpl = write_json(&dir.join("t.json"), &template(true));
    let table = |name: &str, edit: &dyn Fn(&mut Vec<String>)| -> String {
        let text = std::fs::read_to_string(write_table(&dir, &good)).unwrap();
        let mut lines: Vec<String> = text.lines().map(String::from).collect();
        edit(&mut lines);
        let p = dir.join(name);
        std::fs::write(&p, lines.join("\n") + "\n").unwrap();
        p.to_str().unwrap().to_string()
    };
    let good = table("good.csv", &|_| {});
    let bad_label = table("label.csv", &|l| l[16] = "15,3,20,Email,maybe".into());
    let bad_cell = table("cell.csv", &|l| l[8] = "7,abc,20,Email,yes".into());
    let ragged = table("ragged.csv", &|l| l[5] = "4,3,20".into());
    let no_column = table("nocol.csv", &|l| {
        for line in l.iter_mut() {
            let cells: Vec<&str> = line.split(',').collect();
            *line = [cells[0], cells[1], cells[3], cells[4]].join(",");
        }
    });
    let mut dataset = String::from("subject_kind,subject_id,decision_ts,outcome_ts,label,product_pages,product_seconds,channel\n");
    dataset += "visitor,a,1000,,0,1,2,0\nvisitor,b,2000.5,,1,1,2,0\n";
    let ds = dir.join("ds.csv");
    std::fs::write(&ds, &dataset).unwrap();
    let ds_header = dir.join("ds_header.csv");
    std::fs::write(&ds_header, dataset.replace("product_seconds", "seconds")).unwrap();
    let ds_tpl = write_json(&dir.join("ds.json"), &template(false));

    let cases: Vec<(Vec<&str>, String)> = vec![
        (
            vec!["--table", &bad_label, "--label", "converted"],
            format!(
                r#"{bad_label}:17: column "converted": "maybe" is not 0/1, true/false or yes/no"#
            ),
        ),
        (
            vec!["--table", &bad_cell, "--label", "converted"],
            format!(r#"{bad_cell}:9: column "pages": "abc" is not a number"#),
        ),
        (
            vec!["--table", &ragged, "--label", "converted"],
            format!("{ragged}:6: 3 cells, the header has 5"),
        ),
        (
            vec!["--table", &no_column, "--label", "converted"],
            format!(r#"{no_column}:1: no column "seconds" (feature 'product_seconds')"#),
        ),
        (
            vec!["--table", &bad_cell, "--label", "bought"],
            format!(r#"{bad_cell}:1: no column "bought" (the --label column)"#),
        ),
        (
            vec![
                "--table",
                &good,
                "--label",
                "converted",
                "--split",
                "time:when",
            ],
            format!(r#"{good}:1: no column "when" (the --split time column)"#),
        ),
        (
            vec!["--dataset", ds.to_str().unwrap()],
            format!(
                r#"{}:3: column "decision_ts": "2000.5" is not an integer (ms)"#,
                ds.display()
            ),
        ),
        (
            vec!["--dataset", ds_header.to_str().unwrap()],
            format!(
                r#"{}:1: column 7 is "seconds" but "product_seconds" was expected"#,
                ds_header.display()
            ),
        ),
    ];
    for (args, want) in cases {
        let tpl_for = if args[0] == "--dataset" {
            &ds_tpl
        } else {
            &tpl
        };
        let mut all = args.clone();
        all.extend(["--card", tpl_for, "--name", "x", "--out"]);
        let out_dir = dir.join("out");
        all.push(out_dir.to_str().unwrap());
        let out = train(&all);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(!err.contains("Traceback"), "{args:?}: {err}");
        // The error is the last line (after any warnings); each line names the script.
        assert!(
            err.lines().all(|l| l.starts_with("train.py: ")),
            "{args:?}: {err}"
        );
        let last = err.lines().last().unwrap_or_default();
        assert!(
            last.starts_with(&format!("train.py: {want}")),
            "{args:?}:\n{err}\nwanted: {want}"
        );
    }
}

/// Cold start: a CSV, a template mapping its columns, `"encoding": "auto"` learned and written into
/// the card; random split, Platt, tiers by capacity.
#[test]
fn a_table_trains_a_bundle_that_passes_check() {
    let dir = scratch("table");
    let data = write_table(&dir, &synthetic(3000, 7));
    let mut t = template(true);
    // Tiers of its own for each traffic source with ≥ 250 positive fit rows (Social has fewer).
    t["tiers"] = json!({"segment": "channel", "min_segment_positives": 250});
    let tpl = write_json(&dir.join("t.json"), &t);
    let out_dir = dir.join("bundle");
    let out = train(&[
        "--table",
        data.to_str().unwrap(),
        "--label",
        "converted",
        "--card",
        &tpl,
        "--name",
        "cold",
        "--split",
        "random",
        "--calibration",
        "platt",
        "--hot-share",
        "0.1",
        "--warm-share",
        "0.2",
        "--date",
        "20261203",
        "--out",
        out_dir.to_str().unwrap(),
    ]);
    trained(&out);
    let (card, scorer) = load(&out_dir);
    assert_eq!(
        card["model_version"].as_str().unwrap()[..14],
        *"cold-20261203-"
    );
    // "auto": the sorted distinct values of the column.
    assert_eq!(
        card["features"][2]["encoding"],
        json!({"Direct": 0, "Email": 1, "Search": 2, "Social": 3})
    );
    assert!(card["features"][0].get("encoding").is_none());
    assert_eq!(card["calibration"]["method"], "platt");
    let sel = &card["training"]["calibration_selection"];
    assert_eq!(
        (sel["asked"].as_str(), sel["chosen"].as_str()),
        (Some("platt"), Some("platt"))
    );
    // Held out: 20 % of 3000 rows; hot ≈ 10 %, hot + warm ≈ 30 % of them.
    let split = &card["training"]["split"];
    assert_eq!(
        (
            split["rows"]["train"].as_u64(),
            split["rows"]["holdout"].as_u64()
        ),
        (Some(2400), Some(600))
    );
    assert!(card["training"]["holdout_from"].is_null());
    let tiers = &card["metrics"]["holdout"]["tiers"];
    let share = |t: &str| tiers[t]["rows"].as_f64().unwrap() / 600.0;
    assert!((share("hot") - 0.1).abs() < 0.04, "{tiers}");
    assert!((share("hot") + share("warm") - 0.3).abs() < 0.04, "{tiers}");
    let rate = |t: &str| tiers[t]["conversion"].as_f64().unwrap();
    assert!(
        rate("hot") > rate("warm") && rate("warm") > rate("cold"),
        "{tiers}"
    );
    // Per-segment tiers: each listed source had the positives; the others use the global lines,
    // and the scorer serves whichever applies.
    let st = &card["segment_tiers"];
    assert_eq!(st["feature"], "channel");
    let segs = st["segments"].as_array().unwrap();
    assert!(!segs.is_empty() && segs.len() < 4, "{st}");
    for g in segs {
        assert!(g["positives"].as_u64().unwrap() >= 250, "{g}");
        let x = [9.0, 900.0, g["value"].as_f64().unwrap() as f32];
        let t = scorer.tiers_for(&x);
        assert_eq!(
            (u64::from(t.hot), u64::from(t.warm)),
            (g["hot"].as_u64().unwrap(), g["warm"].as_u64().unwrap())
        );
    }
    let listed: Vec<f64> = segs.iter().map(|g| g["value"].as_f64().unwrap()).collect();
    let other = (0..4).map(f64::from).find(|v| !listed.contains(v)).unwrap();
    let t = scorer.tiers_for(&[9.0, 900.0, other as f32]);
    assert_eq!(
        (u64::from(t.hot), u64::from(t.warm)),
        (
            card["tiers"]["hot"].as_u64().unwrap(),
            card["tiers"]["warm"].as_u64().unwrap()
        )
    );
    assert!(card["training"]["tiers"]
        .as_str()
        .unwrap()
        .contains("per segment of channel"));
    // Scores carry the template's labels and value names.
    let s = scorer
        .score_vector(&[9.0, 900.0, 1.0], ScoreOptions { all_factors: true })
        .unwrap();
    let f = &s.contributions.unwrap()[2];
    assert_eq!(
        (f.label.as_str(), f.display.as_deref()),
        ("Traffic source", Some("Email"))
    );
}

/// `"encoding": "auto"` numbers a CSV's labels in sorted order; on `channel`, whose live values are
/// the engine's fixed names numbered by `params.codes`, the two would not agree: refused, with the fix.
#[test]
fn auto_on_a_fixed_name_kind_is_refused() {
    let dir = scratch("auto-fixed");
    let data = write_table(&dir, &synthetic(40, 3));
    let mut t = template(true);
    t["features"][2] = json!({"name": "channel", "kind": "channel",
        "params": {"touch": "first", "scope": "session", "default": 0,
                   "codes": {"direct": 0, "email": 1, "organic_google": 2, "social_facebook": 3}},
        "column": "source", "encoding": "auto"});
    let tpl = write_json(&dir.join("t.json"), &t);
    let out_dir = dir.join("out");
    let out = train(&[
        "--table",
        data.to_str().unwrap(),
        "--label",
        "converted",
        "--card",
        &tpl,
        "--name",
        "x",
        "--out",
        out_dir.to_str().unwrap(),
    ]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    let last = err.lines().last().unwrap_or_default();
    assert!(
        last.starts_with(
            r#"train.py: feature 'channel' (kind channel): "encoding": "auto" would number the CSV's values (Direct, Email, Search, Social)"#
        ),
        "{err}"
    );
    assert!(
        last.contains("fixed names (direct, organic_google,")
            && last.contains(r#"Fix: replace "auto" with an explicit "encoding""#),
        "{err}"
    );
    assert!(!out_dir.join("card.json").exists());
}

/// A CRM export with empty numeric cells: they are missing values (NaN to LightGBM, which learns a
/// branch for them), except where the engine serves a value for an absent input (a trait's
/// `default`), which the trainer uses so training and serving agree; the card's `training.missing`
/// says, per feature, how many cells were empty, how they were trained and what is served live.
#[test]
fn empty_numeric_cells_are_missing_values_and_the_card_says_what_is_served() {
    let dir = scratch("missing");
    let rows = synthetic(2000, 11);
    let mut csv = String::from("id,pages,seconds,source,employees,rating,converted\n");
    let (mut empty_seconds, mut empty_employees, mut empty_rating) = (0, 0, 0);
    for (i, (p, sec, src, y)) in rows.iter().enumerate() {
        let seconds = if i % 7 == 3 {
            empty_seconds += 1;
            String::new()
        } else {
            sec.to_string()
        };
        let employees = if i % 5 == 1 {
            empty_employees += 1;
            String::new()
        } else {
            (10 * (i % 13)).to_string()
        };
        let rating = if i % 3 == 0 {
            empty_rating += 1;
            " ".to_string()
        } else {
            (p % 4).to_string()
        };
        let label = if *y { "yes" } else { "no" };
        csv += &format!("{i},{p},{seconds},{src},{employees},{rating},{label}\n");
    }
    let data = dir.join("crm.csv");
    std::fs::write(&data, csv).unwrap();
    let mut t = template(false);
    t["features"][2] = json!({"name": "employees", "kind": "trait",
        "params": {"name": "employees", "default": 0}, "column": "employees"});
    t["features"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "rating", "kind": "trait", "params": {"name": "rating"}, "column": "rating"}));
    t["features"][0]["column"] = json!("pages");
    t["features"][1]["column"] = json!("seconds");
    let tpl = write_json(&dir.join("t.json"), &t);
    let out_dir = dir.join("bundle");
    let out = train(&[
        "--table",
        data.to_str().unwrap(),
        "--label",
        "converted",
        "--card",
        &tpl,
        "--name",
        "crm",
        "--date",
        "20261203",
        "--out",
        out_dir.to_str().unwrap(),
    ]);
    let (_, stderr) = trained(&out);
    assert!(
        stderr.contains("'product_seconds': ")
            && stderr.contains("no live visitor takes the missing branch"),
        "{stderr}"
    );
    let (card, scorer) = load(&out_dir);
    assert_eq!(
        card["training"]["missing"],
        json!([
            {"feature": "product_seconds", "column": "seconds", "empty_cells": empty_seconds,
             "trained_as": "missing", "served_when_absent": "never absent (computed from the visitor's events)"},
            {"feature": "employees", "column": "employees", "empty_cells": empty_employees,
             "trained_as": 0.0, "served_when_absent": 0.0},
            {"feature": "rating", "column": "rating", "empty_cells": empty_rating,
             "trained_as": "missing", "served_when_absent": "missing"},
        ])
    );
    assert!(card["training"]["baseline_rows"]
        .as_str()
        .unwrap()
        .contains("without a missing value"));
    // A visitor who never sent `rating` is scored through the trees' missing branches, as trained.
    let with = |r: f32| {
        scorer
            .score_vector(&[6.0, 900.0, 50.0, r], ScoreOptions::default())
            .unwrap()
            .raw_probability
    };
    let missing = with(f32::NAN);
    assert!(missing.is_finite() && missing > 0.0 && missing < 1.0);
}

/// A point-in-time dataset (`leadscore dataset`'s format), subjects with several decisions: the
/// latest 20 % by decision_ts held out (`training.holdout_from`), folds grouped by subject, isotonic
/// calibration; the same data with XGBoost (whose TreeSHAP covers are its hessian sums) and
/// `--calibration auto`.
#[test]
fn a_dataset_trains_with_lightgbm_and_xgboost() {
    let dir = scratch("dataset");
    let rows = synthetic(3000, 11);
    let mut s = String::from("subject_kind,subject_id,decision_ts,outcome_ts,label,product_pages,product_seconds,channel\n");
    for (i, (p, sec, src, y)) in rows.iter().enumerate() {
        let ts = 1_760_000_000_000i64 + 3_600_000 * (i as i64 / 2); // two decisions per hour
        let code = SOURCES.iter().position(|x| x == src).unwrap();
        let outcome = if *y {
            (ts + 60_000).to_string()
        } else {
            String::new()
        };
        s += &format!(
            "lead,L{},{ts},{outcome},{},{p},{sec},{code}\n",
            i % 1000,
            u8::from(*y)
        );
    }
    let data = dir.join("dataset.csv");
    std::fs::write(&data, s).unwrap();
    let tpl = write_json(&dir.join("t.json"), &template(false));
    for (lib, cal) in [("lightgbm", "isotonic"), ("xgboost", "auto")] {
        let out_dir = dir.join(lib);
        let out = train(&[
            "--dataset",
            data.to_str().unwrap(),
            "--card",
            &tpl,
            "--name",
            "ds",
            "--library",
            lib,
            "--calibration",
            cal,
            "--out",
            out_dir.to_str().unwrap(),
        ]);
        let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
        assert!(out.status.success(), "{lib}: {stdout}\n{stderr}");
        assert!(stdout.ends_with("ok\n"), "{lib}: {stdout}");
        let (card, scorer) = load(&out_dir);
        let t = &card["training"];
        assert_eq!(t["library"], lib);
        let sel = &t["calibration_selection"];
        let chosen = if cal == "auto" {
            sel["auto_picks"].as_str().unwrap()
        } else {
            cal
        };
        assert_eq!(card["calibration"]["method"], chosen);
        assert_eq!(sel["chosen"], chosen);
        if chosen == "isotonic" {
            let c = &card["calibration"];
            assert_eq!(
                c["x"].as_array().unwrap().len(),
                c["y"].as_array().unwrap().len()
            );
        }
        // Rows 2400.. are the latest 600; their first decision is row 2400's.
        assert_eq!(
            t["holdout_from"].as_i64(),
            Some(1_760_000_000_000 + 3_600_000 * 1200)
        );
        assert_eq!(t["split"]["rows"], json!({"train": 2400, "holdout": 600}));
        assert!(
            t["split"]["rule"]
                .as_str()
                .unwrap()
                .contains("grouped by subject"),
            "{t}"
        );
        assert_eq!(
            card["model_version"].as_str().unwrap()[..12],
            *"ds-20251210-",
            "the latest decision's date"
        );
        let p = scorer
            .score_vector(&[9.0, 900.0, 1.0], ScoreOptions::default())
            .unwrap();
        let q = scorer
            .score_vector(&[0.0, 0.0, 3.0], ScoreOptions::default())
            .unwrap();
        assert!(
            p.probability > q.probability,
            "{lib}: {} vs {}",
            p.probability,
            q.probability
        );
    }
}
