//! The publish gate, `leadscore compare`, run as a user would: exit codes, verdicts, the record.
//!
//! Two datasets:
//! - the UCI Online Shoppers sessions (`../shared/data/`, read, never copied), written here as a
//!   `leadscore dataset` CSV through the card's `column`/`encoding` (the engine reproduces those
//!   columns exactly: tests/parity.rs), with a decision time per month, so that December is the
//!   held-out slice the default model was reported on: its metrics must be the card's.
//! - `tests/fixtures/compare/sample_dataset.csv` (see `make_dataset.py` beside it): 30 rows from the
//!   sample journeys with hand-assigned labels, small enough to compute its AUC by hand.
//!
//! The repository has one real bundle, so the second bundle is `models/default` itself (→ promote)
//! or a copy of it in a temp dir with its card perturbed: calibration shifted (same ranking, worse
//! calibration → keep), or two features' declarations swapped (the model reads one column where it
//! expects the other: worse ranking → keep).
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde_json::Value;

use crate::support::{default_dir, leadscore, root, scratch, text};

fn tmp(name: &str) -> PathBuf {
    scratch("compare", name)
}

/// Runs `leadscore compare` and returns its exit code, JSON (if any) and stderr.
fn compare(
    active: &Path,
    candidate: &Path,
    dataset: &Path,
    extra: &[&str],
) -> (i32, Value, String) {
    let (a, c, d) = (
        active.to_str().unwrap(),
        candidate.to_str().unwrap(),
        dataset.to_str().unwrap(),
    );
    let mut args = vec!["compare", "--active", a, "--candidate", c, "--dataset", d];
    args.extend_from_slice(extra);
    let out = leadscore(&args);
    let json = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (out.status.code().unwrap(), json, text(&out.stderr))
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "June", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];
/// 2026-01-01T00:00Z; month m's rows are decided at T0 + (m − 1) · 31 days (+ row index ms).
const T0: i64 = 1_767_225_600_000;
const DAY: i64 = 86_400_000;
/// The first decision time of December's rows.
const DEC_FROM: i64 = T0 + 11 * 31 * DAY;

fn default_card() -> Value {
    serde_json::from_str(&std::fs::read_to_string(default_dir().join("card.json")).unwrap())
        .unwrap()
}

/// The shoppers dataset as a `leadscore dataset` CSV (written once per test run).
fn shoppers() -> &'static Path {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let src = std::env::var_os("LEADSCORE_SHOPPERS_CSV").map_or_else(
            || root().join("../shared/data/online_shoppers/online_shoppers_intention.csv"),
            PathBuf::from,
        );
        let raw = std::fs::read_to_string(&src).unwrap();
        let mut lines = raw.lines();
        let header: Vec<&str> = lines.next().unwrap().split(',').collect();
        let col = |n: &str| header.iter().position(|h| *h == n).unwrap();
        let card = default_card();
        let feats = card["features"].as_array().unwrap();
        let mut out = String::from("subject_kind,subject_id,decision_ts,outcome_ts,label");
        for f in feats {
            out += &format!(",{}", f["name"].as_str().unwrap());
        }
        out.push('\n');
        for (i, line) in lines.enumerate() {
            let cells: Vec<&str> = line.split(',').collect();
            let month = MONTHS
                .iter()
                .position(|m| *m == cells[col("Month")])
                .unwrap() as i64;
            let ts = T0 + month * 31 * DAY + i as i64;
            let label = cells[col("Revenue")] == "TRUE";
            let outcome = if label {
                (ts + 1).to_string()
            } else {
                String::new()
            };
            out += &format!("visitor,shoppers-{i},{ts},{outcome},{}", u8::from(label));
            for f in feats {
                let mut sum = 0f64;
                for part in f["column"].as_str().unwrap().split('+') {
                    let cell = cells[col(part.trim())];
                    sum += match f.get("encoding") {
                        Some(enc) => enc[cell].as_f64().unwrap(),
                        None => cell.parse::<f64>().unwrap(),
                    };
                }
                // The shortest decimal of the f32, as `leadscore dataset` writes it.
                out += &format!(",{}", sum as f32);
            }
            out.push('\n');
        }
        let path = tmp("shoppers").join("shoppers_dataset.csv");
        std::fs::write(&path, out).unwrap();
        path
    })
}

/// A copy of the default bundle whose card `edit` changes (card re-serialized; model untouched).
fn bundle_copy(name: &str, edit: impl FnOnce(&mut Value)) -> PathBuf {
    let dir = tmp(name);
    for f in ["model.onnx", "golden.json"] {
        std::fs::copy(default_dir().join(f), dir.join(f)).unwrap();
    }
    let mut card = default_card();
    edit(&mut card);
    std::fs::write(
        dir.join("card.json"),
        serde_json::to_string_pretty(&card).unwrap(),
    )
    .unwrap();
    dir
}

fn reasons(v: &Value) -> Vec<String> {
    v["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap().to_string())
        .collect()
}

fn metric(v: &Value, role: &str, name: &str) -> f64 {
    v[role][name]["value"].as_f64().unwrap()
}

#[test]
fn default_against_itself_on_december_promotes_with_the_cards_holdout_metrics() {
    let data = shoppers();
    // The holdout from the candidate card's training.holdout_from…
    let cand = bundle_copy("holdout_from", |c| {
        c["training"]["holdout_from"] = DEC_FROM.into()
    });
    let (code, v, err) = compare(&default_dir(), &cand, data, &[]);
    assert_eq!(code, 0, "{err}\n{v:#}");
    assert_eq!(v["verdict"], "promote");
    assert_eq!(v["dataset"]["holdout_from"], DEC_FROM);
    assert_eq!(
        v["dataset"]["holdout_from_source"],
        "the candidate card's training.holdout_from"
    );
    assert_eq!(v["dataset"]["rows_read"], 12_330);
    // …selects exactly December: the card's holdout (1727 sessions, 216 buyers) and its metrics,
    // which train.py computed with sklearn on LightGBM's probabilities (|Δp| ≤ 2.2e-7 from ours).
    let card = default_card();
    let h = &card["metrics"]["holdout"];
    for role in ["active", "candidate"] {
        assert_eq!(v[role]["rows"], 1727);
        assert_eq!(v[role]["positives"], 216);
        assert_eq!(v[role]["auc"]["rows"], 1727);
        assert_eq!(v[role]["model_version"], card["model_version"]);
        let close = |got: f64, want: &Value, tol: f64, what: &str| {
            let want = want.as_f64().unwrap();
            assert!(
                (got - want).abs() <= tol,
                "{role} {what}: {got} vs card {want}"
            );
        };
        close(metric(&v, role, "auc"), &h["auc"], 5e-5 + 1e-6, "auc"); // card: 4 decimals
        close(metric(&v, role, "brier"), &h["brier"], 5e-7 + 1e-6, "brier"); // 6 decimals
        close(
            metric(&v, role, "log_loss"),
            &h["logloss"],
            5e-7 + 2e-6,
            "log loss",
        );
    }
    // The same as an explicit --holdout-from on the default bundle itself.
    let (code, v2, err) = compare(
        &default_dir(),
        &default_dir(),
        data,
        &["--holdout-from", &DEC_FROM.to_string()],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(v2["dataset"]["holdout_from_source"], "--holdout-from");
    assert_eq!(v2["active"], v["active"]);
    assert_eq!(v2["candidate"]["auc"], v["candidate"]["auc"]);

    // Tiers: served tiers (round(100 p) against the card's thresholds), counted independently
    // here from LightGBM's probabilities (models/default/parity_probs.csv) through the card's Platt.
    let probs = std::fs::read_to_string(default_dir().join("parity_probs.csv")).unwrap();
    let (a, b) = (
        card["calibration"]["a"].as_f64().unwrap(),
        card["calibration"]["b"].as_f64().unwrap(),
    );
    let data_text = std::fs::read_to_string(data).unwrap();
    let mut want = [[0u64; 2]; 3];
    for (l, row) in probs.lines().skip(1).zip(data_text.lines().skip(1)) {
        let cells: Vec<&str> = row.split(',').collect();
        if cells[2].parse::<i64>().unwrap() < DEC_FROM {
            continue;
        }
        let raw: f64 = l.split(',').nth(1).unwrap().parse().unwrap();
        let p = 1.0 / (1.0 + (-(a * (raw / (1.0 - raw)).ln() + b)).exp());
        let s = (100.0 * p).round();
        let t = if s >= 60.0 {
            0
        } else if s >= 32.0 {
            1
        } else {
            2
        };
        want[t][0] += 1;
        want[t][1] += u64::from(cells[4] == "1");
    }
    for (t, name) in ["hot", "warm", "cold"].iter().enumerate() {
        let got = &v["active"]["tiers"][name];
        assert_eq!(
            [
                got["rows"].as_u64().unwrap(),
                got["positives"].as_u64().unwrap()
            ],
            want[t],
            "{name}"
        );
        let (lo, r, hi) = (
            got["low"].as_f64().unwrap(),
            got["rate"].as_f64().unwrap(),
            got["high"].as_f64().unwrap(),
        );
        assert!(lo < r && r < hi, "{name}: {got}");
    }
    assert_eq!(v["active"]["tiers"]["hot"]["from_score"], 60);
    // Every ECE bin's rows add up, and the ECE is the weighted gap of the curve.
    let bins = v["active"]["calibration"]["bins"].as_array().unwrap();
    assert_eq!(bins.len(), 10);
    let n: u64 = bins.iter().map(|b| b["rows"].as_u64().unwrap()).sum();
    assert_eq!(n, 1727);
    let ece: f64 = bins
        .iter()
        .filter(|b| b["rows"].as_u64().unwrap() > 0)
        .map(|b| {
            b["rows"].as_f64().unwrap() / 1727.0
                * (b["mean_p"].as_f64().unwrap() - b["rate"].as_f64().unwrap()).abs()
        })
        .sum();
    let got = v["active"]["calibration"]["ece"].as_f64().unwrap();
    assert!((ece - got).abs() < 1e-12 && got > 0.0, "{ece} vs {got}");
    let r = reasons(&v);
    assert!(
        r[0].starts_with("rows: 1727 held-out rows, at least 1000 required: ok"),
        "{r:?}"
    );
    assert!(
        r[1].starts_with("positives: 216 held-out positives, at least 120"),
        "{r:?}"
    );
    assert!(
        r[2].starts_with("auc: candidate 0.9107 vs active 0.9107 (difference +0.0000"),
        "{r:?}"
    );
}

#[test]
fn a_miscalibrated_copy_is_kept_on_calibration_alone() {
    // b + 1.5 in logit: every probability higher, the ranking (and so the AUC) the same.
    let cand = bundle_copy("miscalibrated", |c| {
        let b = c["calibration"]["b"].as_f64().unwrap();
        c["calibration"]["b"] = (b + 1.5).into();
        c["tiers"]["hot"] = 80.into();
    });
    let (code, v, err) = compare(
        &default_dir(),
        &cand,
        shoppers(),
        &["--holdout-from", &DEC_FROM.to_string()],
    );
    assert_eq!(code, 3, "{err}\n{:?}", v["reasons"]);
    assert_eq!(v["verdict"], "keep_active");
    assert_eq!(metric(&v, "active", "auc"), metric(&v, "candidate", "auc"));
    let (ea, ec) = (
        v["active"]["calibration"]["ece"].as_f64().unwrap(),
        v["candidate"]["calibration"]["ece"].as_f64().unwrap(),
    );
    assert!(ec > ea + 0.01, "{ec} vs {ea}");
    let r = reasons(&v);
    assert!(
        r.iter()
            .any(|s| s.starts_with("auc:") && s.contains("ok, not below")),
        "{r:?}"
    );
    assert!(
        r.iter()
            .any(|s| s.starts_with("ece:") && s.contains("worse, above")),
        "{r:?}"
    );
    assert_eq!(v["candidate"]["tiers"]["hot"]["from_score"], 80);
    // A looser ECE margin lets it through.
    let (code, v, _) = compare(
        &default_dir(),
        &cand,
        shoppers(),
        &[
            "--holdout-from",
            &DEC_FROM.to_string(),
            "--ece-margin",
            "0.5",
        ],
    );
    assert_eq!((code, v["verdict"].as_str()), (0, Some("promote")));
}

#[test]
fn a_copy_reading_the_wrong_columns_is_kept_on_auc() {
    // Swap the declarations of page_value and exit_rate: the trees read exit rates where they
    // split on page values.
    let cand = bundle_copy("swapped", |c| {
        let f = c["features"].as_array_mut().unwrap();
        let i = f.iter().position(|x| x["name"] == "page_value").unwrap();
        let j = f.iter().position(|x| x["name"] == "exit_rate").unwrap();
        f.swap(i, j);
    });
    let (code, v, err) = compare(
        &default_dir(),
        &cand,
        shoppers(),
        &["--holdout-from", &DEC_FROM.to_string()],
    );
    assert_eq!(code, 3, "{err}\n{:?}", v["reasons"]);
    let (a, c) = (metric(&v, "active", "auc"), metric(&v, "candidate", "auc"));
    assert!(c < a - 0.05, "candidate AUC {c} vs active {a}");
    let r = reasons(&v);
    assert!(
        r.iter()
            .any(|s| s.starts_with("auc:") && s.contains("worse, below")),
        "{r:?}"
    );
}

#[test]
fn too_little_data_is_insufficient_not_a_verdict() {
    let small = root().join("tests/fixtures/compare/sample_dataset.csv");
    let (code, v, err) = compare(&default_dir(), &default_dir(), &small, &[]);
    assert_eq!(code, 4, "{err}");
    assert_eq!(v["verdict"], "insufficient_data");
    assert_eq!(v["data_sufficiency"]["sufficient"], false);
    let r = reasons(&v);
    assert_eq!(
        r[0],
        "rows: 30 held-out rows, at least 1000 required: too few"
    );
    assert_eq!(
        r[1],
        "positives: 13 held-out positives, at least 120 required: too few"
    );
    // Hand count (make_dataset.py): the model scores v-cold < v-warm < v-hot, rows within a
    // visitor tie. Pairs won: 4·9 + 8·(9 + 6) = 156, tied halves: (1·9 + 4·6 + 8·2) / 2 = 24.5,
    // over 13 · 17 = 221 pairs.
    assert_eq!(metric(&v, "active", "auc"), 180.5 / 221.0);
    assert_eq!(
        v["active"]["auc_ai_score"]["value"],
        v["active"]["auc"]["value"]
    );
    // With the minimums lowered the same file is judged.
    let (code, v, _) = compare(
        &default_dir(),
        &default_dir(),
        &small,
        &["--min-rows", "30", "--min-positives", "13"],
    );
    assert_eq!((code, v["verdict"].as_str()), (0, Some("promote")));
    // Enough rows but a held-out slice with too few positives: insufficient on December too.
    let (code, v, _) = compare(
        &default_dir(),
        &default_dir(),
        shoppers(),
        &[
            "--holdout-from",
            &DEC_FROM.to_string(),
            "--min-positives",
            "217",
        ],
    );
    assert_eq!(code, 4);
    assert!(reasons(&v)[1].ends_with("at least 217 required: too few"));
    // A holdout after every row: no rows, nothing defined, still valid JSON.
    let (code, v, _) = compare(
        &default_dir(),
        &default_dir(),
        &small,
        &[
            "--holdout-from",
            "9999999999999",
            "--min-rows",
            "0",
            "--min-positives",
            "0",
        ],
    );
    assert_eq!(code, 4);
    assert_eq!(v["active"]["auc"]["value"], Value::Null);
    assert_eq!(v["active"]["calibration"]["ece"], Value::Null);
    assert!(reasons(&v).iter().any(|r| r.starts_with("auc: undefined")));
}

#[test]
fn the_small_fixture_still_holds_the_engines_features() {
    let out = leadscore(&[
        "features",
        "--model",
        "models/default",
        "--events",
        "tests/fixtures/sample_events.ndjson",
    ]);
    assert!(out.status.success());
    let features = text(&out.stdout);
    let mut lines = features.lines();
    let names = lines.next().unwrap().split_once(',').unwrap().1.to_string();
    let by_visitor: std::collections::HashMap<&str, &str> =
        lines.map(|l| l.split_once(',').unwrap()).collect();
    let fixture =
        std::fs::read_to_string(root().join("tests/fixtures/compare/sample_dataset.csv")).unwrap();
    let mut rows = fixture.lines();
    let header = rows.next().unwrap();
    assert_eq!(
        header,
        format!("subject_kind,subject_id,decision_ts,outcome_ts,label,{names}")
    );
    let mut n = 0;
    for row in rows {
        let cells: Vec<&str> = row.splitn(6, ',').collect();
        let visitor = cells[1].rsplit_once('-').unwrap().0;
        assert_eq!(
            cells[5], by_visitor[visitor],
            "{row}: regenerate with make_dataset.py"
        );
        n += 1;
    }
    assert_eq!(n, 30);
}

#[test]
fn bad_input_exits_2_naming_file_line_and_column() {
    let dir = tmp("bad");
    let small =
        std::fs::read_to_string(root().join("tests/fixtures/compare/sample_dataset.csv")).unwrap();
    // A missing feature column.
    let header = small.lines().next().unwrap();
    let i = header.split(',').position(|h| h == "page_value").unwrap();
    let dropped: String = small
        .lines()
        .map(|l| {
            let mut c: Vec<&str> = l.split(',').collect();
            c.remove(i);
            c.join(",") + "\n"
        })
        .collect();
    let path = dir.join("no_page_value.csv");
    std::fs::write(&path, dropped).unwrap();
    let (code, v, err) = compare(&default_dir(), &default_dir(), &path, &[]);
    assert_eq!(code, 2, "{err}");
    assert_eq!(v, Value::Null, "no verdict printed");
    let want = format!(
        "{}:1: column `page_value` is missing: a feature of the active bundle",
        path.display()
    );
    assert!(err.contains(&want), "{err}");
    // A bad label on line 5, a bad number on line 7, a short line 9.
    for (line, edit, msg) in [
        (5, ",0,0,0,1,18", ",2,0,0,1,18"),
        (7, ",0,0,1,18,0,0,0.006", ",0,0,1,18,0,0,abc"),
    ] {
        let mut lines: Vec<String> = small.lines().map(str::to_string).collect();
        assert!(lines[line - 1].contains(edit), "{}", lines[line - 1]);
        lines[line - 1] = lines[line - 1].replacen(edit, msg, 1);
        let path = dir.join(format!("bad_{line}.csv"));
        std::fs::write(&path, lines.join("\n") + "\n").unwrap();
        let (code, _, err) = compare(&default_dir(), &default_dir(), &path, &[]);
        assert_eq!(code, 2, "{err}");
        assert!(
            err.contains(&format!("{}:{line}: ", path.display())),
            "{err}"
        );
        assert!(
            err.contains(if line == 5 {
                "label \"2\""
            } else {
                "column `bounce_rate`: \"abc\""
            }),
            "{err}"
        );
    }
    let mut lines: Vec<String> = small.lines().map(str::to_string).collect();
    let cut = lines[8].rfind(',').unwrap();
    lines[8].truncate(cut);
    let path = dir.join("short.csv");
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    let (code, _, err) = compare(&default_dir(), &default_dir(), &path, &[]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains(&format!("{}:9", path.display())), "{err}");
    // A missing file, a malformed holdout_from in the candidate card.
    let (code, _, err) = compare(&default_dir(), &default_dir(), &dir.join("none.csv"), &[]);
    assert_eq!(code, 2);
    assert!(err.contains("none.csv"), "{err}");
    let cand = bundle_copy("bad_holdout", |c| {
        c["training"]["holdout_from"] = "December".into()
    });
    let (code, _, err) = compare(&default_dir(), &cand, &path, &[]);
    assert_eq!(code, 2);
    assert!(
        err.contains("card.json") && err.contains("training.holdout_from"),
        "{err}"
    );
}

#[test]
fn record_writes_gate_json_beside_the_card_and_the_bundle_still_checks() {
    let dir = tmp("record");
    for f in ["model.onnx", "golden.json", "card.json"] {
        std::fs::copy(default_dir().join(f), dir.join(f)).unwrap();
    }
    let read = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap();
    let data = shoppers();
    let holdout = DEC_FROM.to_string();
    let args = ["--holdout-from", holdout.as_str(), "--record"];
    let card = read("card.json");
    let (code, v, err) = compare(&default_dir(), &dir, data, &args);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("verdict recorded in") && err.contains("gate.json"),
        "{err}"
    );
    // The trainer's card is not touched.
    assert_eq!(read("card.json"), card);
    let written = read("gate.json");
    assert!(written.ends_with("}\n"), "{written}");
    let g: Value = serde_json::from_str(&written).unwrap();
    assert_eq!(g["verdict"], "promote");
    assert_eq!(g["reasons"], v["reasons"]);
    assert_eq!(g["active_model_version"], default_card()["model_version"]);
    let sha = leadscore::model::sha256_hex(&std::fs::read(data).unwrap());
    assert_eq!(g["dataset"]["sha256"], sha.as_str());
    assert_eq!(v["dataset"]["sha256"], sha.as_str());
    assert_eq!(g["dataset"]["holdout_from"], DEC_FROM);
    assert_eq!(g["active"]["auc"], v["active"]["auc"]["value"]);
    assert_eq!(g["candidate"]["ece"], v["candidate"]["calibration"]["ece"]);
    assert_eq!(g["criteria"]["min_rows"], 1000);
    // The bundle still passes its check.
    let out = leadscore(&["check", "--model", dir.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    // Recording again writes the same bytes (the gate is deterministic).
    let (code, _, _) = compare(&default_dir(), &dir, data, &args);
    assert_eq!(code, 0);
    assert_eq!(read("gate.json"), written);
    // A later, different verdict replaces the record.
    let mut later = args.to_vec();
    later.extend(["--min-rows", "5000"]);
    let (code, v, _) = compare(&default_dir(), &dir, data, &later);
    assert_eq!(code, 4);
    let g: Value = serde_json::from_str(&read("gate.json")).unwrap();
    assert_eq!(g["verdict"], "insufficient_data");
    assert_eq!(g["reasons"], v["reasons"]);
    assert_eq!(read("card.json"), card);
    // Without --record nothing is written.
    std::fs::remove_file(dir.join("gate.json")).unwrap();
    let (code, _, _) = compare(&default_dir(), &dir, data, &args[..2]);
    assert_eq!(code, 0);
    assert!(!dir.join("gate.json").exists());
}
