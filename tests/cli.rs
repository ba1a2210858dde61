//! The `leadscore` command line, run as a user would.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use std::path::Path;

use crate::support::{root, run, text};

const SAMPLE: &str = "tests/fixtures/sample_events.ndjson";

#[test]
fn score_prints_one_line_per_visitor_and_reports_bad_lines() {
    let out = run(
        &["score", "--model", "models/default", "--events", SAMPLE],
        "",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let lines: Vec<serde_json::Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let ids: Vec<&str> = lines
        .iter()
        .map(|l| l["visitor_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["v-cold", "v-warm", "v-hot"]);
    for l in &lines {
        for key in [
            "ai_score",
            "tier",
            "probability",
            "raw_probability",
            "score_confidence",
            "key_factors",
            "model_version",
            "score_timestamp",
        ] {
            assert!(l.get(key).is_some(), "missing {key} in {l}");
        }
        assert!(l["key_factors"].as_array().unwrap().len() <= 5);
        assert!(l.get("contributions").is_none());
    }
    let hot = &lines[2];
    assert_eq!(hot["lead_id"], "lead-42");
    assert!(hot["ai_score"].as_u64().unwrap() > lines[0]["ai_score"].as_u64().unwrap());
    let err = text(&out.stderr);
    assert!(err.contains("line 9: invalid event: invalid type"), "{err}");
    assert!(
        err.contains("1 duplicates") && err.contains("1 bad lines"),
        "{err}"
    );
}

#[test]
fn each_and_all_factors() {
    let out = run(
        &[
            "score",
            "--model",
            "models/default",
            "--events",
            SAMPLE,
            "--each",
            "--all-factors",
        ],
        "",
    );
    assert!(out.status.success());
    let lines: Vec<serde_json::Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // One line per good event (24 good lines, one of them a duplicate, which still reports the score).
    assert_eq!(lines.len(), 24);
    for l in &lines {
        let contrib = l["contributions"].as_array().unwrap();
        assert_eq!(contrib.len(), 13);
        let sum: f64 = contrib
            .iter()
            .map(|c| c["impact"].as_f64().unwrap())
            .sum::<f64>()
            + l["base_value"].as_f64().unwrap();
        let p = l["raw_probability"].as_f64().unwrap();
        // Σφ + base is the raw margin; the f32 probability carries ~1e-7 relative precision.
        assert!(
            (1.0 / (1.0 + (-sum).exp()) - p).abs() < 1e-6,
            "{sum} vs {p}"
        );
    }
}

#[test]
fn strict_stops_at_the_first_bad_line() {
    let out = run(
        &[
            "score",
            "--model",
            "models/default",
            "--events",
            SAMPLE,
            "--strict",
        ],
        "",
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("line 9:"));
}

#[test]
fn features_csv_from_stdin() {
    let events = "{\"id\":\"a\",\"type\":\"page\",\"ts\":1763900000000,\"visitor_id\":\"x,1\",\"path\":\"/pricing\"}\n\nnot json\n";
    let out = run(&["features", "--model", "models/default"], events);
    assert!(out.status.success());
    let csv = text(&out.stdout);
    let mut lines = csv.lines();
    let header = lines.next().unwrap();
    assert!(header.starts_with("visitor_id,admin_pages,"), "{header}");
    assert_eq!(header.split(',').count(), 14);
    let row = lines.next().unwrap();
    assert!(row.starts_with("\"x,1\","), "{row}");
    assert!(text(&out.stderr).contains("line 3:"));
}

#[test]
fn site_table_replaces_the_cards() {
    let dir = std::env::temp_dir().join(format!("leadscore-site-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let site = dir.join("site.json");
    std::fs::write(
        &site,
        r#"{"page_rules":[{"prefix":"/x","tags":["product_related"]},{"prefix":"/a","tags":["administrative"]},{"prefix":"/i","tags":["informational"]}],
           "page_stats":{"columns":["bounce_rate","exit_rate","page_value"],"pages":{"/x":[0.5,0.5,7]}}}"#,
    )
    .unwrap();
    let events = "{\"id\":\"a\",\"type\":\"page\",\"ts\":1763900000000,\"visitor_id\":\"v\",\"path\":\"/x\"}\n";
    let out = run(
        &[
            "features",
            "--model",
            "models/default",
            "--site-table",
            site.to_str().unwrap(),
        ],
        events,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let row = text(&out.stdout).lines().nth(1).unwrap().to_string();
    // product_pages = 1 and page_value = 7 under the replacement table.
    let cells: Vec<&str> = row.split(',').collect();
    assert_eq!(cells[5], "1");
    assert_eq!(cells[9], "7");
    std::fs::write(&site, "{\"page_rules\": 3}").unwrap();
    let out = run(
        &[
            "features",
            "--model",
            "models/default",
            "--site-table",
            site.to_str().unwrap(),
        ],
        events,
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("site.json"));
}

#[test]
fn check_passes_on_the_default_bundle_and_fails_on_a_broken_one() {
    let out = run(&["check", "--model", "models/default"], "");
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert!(text(&out.stdout).contains("golden: 306 rows"));

    // Same bundle, golden vectors tampered with: check must fail.
    let dir = std::env::temp_dir().join(format!("leadscore-check-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for f in ["card.json", "model.onnx"] {
        std::fs::copy(root().join("models/default").join(f), dir.join(f)).unwrap();
    }
    let mut golden: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("models/default/golden.json")).unwrap(),
    )
    .unwrap();
    golden["rows"][0]["lgb_prob"] = serde_json::json!(0.5);
    std::fs::write(dir.join("golden.json"), golden.to_string()).unwrap();
    let out = run(&["check", "--model", dir.to_str().unwrap()], "");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    assert!(text(&out.stdout).contains("FAIL"));

    // Without golden.json the bundle cannot be checked: a failure that says so, not a pass.
    std::fs::remove_file(dir.join("golden.json")).unwrap();
    let out = run(&["check", "--model", dir.to_str().unwrap()], "");
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("FAIL no golden.json") && !stdout.ends_with("ok\n"),
        "{stdout}"
    );
    std::fs::remove_dir_all(&dir).unwrap();

    // A missing bundle is a clear error, not a panic.
    let out = run(
        &[
            "check",
            "--model",
            Path::new("/nonexistent").to_str().unwrap(),
        ],
        "",
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("/nonexistent/card.json"));
}

/// Score records of the default model: `n` visitors, the i-th scored `score(i)`.
fn score_lines(n: usize, score: impl Fn(usize) -> u8) -> String {
    let card: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("models/default/card.json")).unwrap(),
    )
    .unwrap();
    let version = card["model_version"].as_str().unwrap();
    let features: serde_json::Map<String, serde_json::Value> = card["features"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["name"].as_str().unwrap().to_string(),
                serde_json::json!(0.0),
            )
        })
        .collect();
    (0..n)
        .map(|i| {
            let s = score(i);
            let tier = if s >= 60 { "hot" } else if s >= 40 { "warm" } else { "cold" };
            serde_json::json!({"log": "score", "id": format!("v{i}/1"), "visitor_id": format!("v{i}"),
                "ts": 1_000 + i as i64, "model_version": version, "features": features,
                "raw_probability": f64::from(s) / 100.0, "probability": f64::from(s) / 100.0,
                "ai_score": s, "tier": tier})
            .to_string()
                + "\n"
        })
        .collect()
}

#[test]
fn monitor_judges_windows_and_names_bad_lines() {
    let dir = std::env::temp_dir().join(format!("leadscore-monitor-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let scores = dir.join("scores.ndjson");
    // 1,200 visitors whose every feature is 0: far from the training distribution.
    std::fs::write(&scores, score_lines(1200, |i| (i % 100) as u8)).unwrap();
    let s = scores.to_str().unwrap();
    let out = run(&["monitor", "--model", "models/default", "--scores", s], "");
    assert_eq!(
        out.status.code(),
        Some(5),
        "alerts exit 5: {}",
        text(&out.stderr)
    );
    let r: serde_json::Value = serde_json::from_str(&text(&out.stdout)).unwrap();
    assert_eq!(r["windows"].as_array().unwrap().len(), 1);
    assert_eq!(r["windows"][0]["decisions"], 1200);
    assert_eq!(r["alerts"][0]["type"], "model.drift_detected");
    assert_eq!(
        r["windows"][0]["accuracy"]["pending"], 1200,
        "no outcomes: all pending"
    );
    assert_eq!(r["windows"][0]["accuracy"]["level"], "insufficient_data");
    // Too few decisions: judged insufficient, never an alert.
    std::fs::write(&scores, score_lines(999, |i| (i % 100) as u8)).unwrap();
    let out = run(&["monitor", "--model", "models/default", "--scores", s], "");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let r: serde_json::Value = serde_json::from_str(&text(&out.stdout)).unwrap();
    assert_eq!(
        r["windows"][0]["score"]["drift"]["level"],
        "insufficient_data"
    );
    assert_eq!(r["alerts"], serde_json::json!([]));
    // A bad line is named by file and line.
    let mut text_ = score_lines(2, |_| 10);
    text_.push_str("{\"log\":\"score\",\"id\":1}\n");
    std::fs::write(&scores, text_).unwrap();
    let out = run(&["monitor", "--model", "models/default", "--scores", s], "");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("scores.ndjson:3:"),
        "{}",
        text(&out.stderr)
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
