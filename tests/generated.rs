//! Files generated from the Rust sources and committed for other languages: each must equal what
//! the code generates now. `make generate` (this test with `LEADSCORE_BLESS=1`) rewrites them.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use std::path::Path;

#[test]
fn committed_generated_files_are_fresh() {
    let root = &crate::support::root();
    let files = [
        (
            "www/tracker/limits.js",
            leadscore::event::limits::js_module(),
        ),
        (
            "www/event.schema.json",
            leadscore::event::schema::json_schema(),
        ),
        ("models/train/contract.json", trainer_contract()),
    ];
    let bless = std::env::var_os("LEADSCORE_BLESS").is_some();
    // The OpenAPI document is hand-written but for its numbers: the error codes' line and every
    // limit on a line marked `# limits: NAME …` (see `fill_limits`).
    let openapi = root.join("www/openapi.yaml");
    let text = std::fs::read_to_string(&openapi).unwrap();
    let marker = "# generated from src/error_code.rs";
    let want_line = leadscore::error_code::ErrorCode::openapi_enum_line();
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let at = lines
        .iter()
        .position(|l| l.ends_with(marker))
        .expect("www/openapi.yaml lists the error codes on a line ending with the marker");
    lines[at] = want_line;
    let values = openapi_values(root);
    for (i, line) in lines.iter_mut().enumerate() {
        *line = fill_limits(line, &values)
            .unwrap_or_else(|e| panic!("www/openapi.yaml:{}: {e}", i + 1));
    }
    let fresh = lines.join("\n") + "\n";
    let openapi_stale = fresh != text;
    if openapi_stale && bless {
        std::fs::write(&openapi, &fresh).unwrap();
    }
    let mut stale = Vec::new();
    for (rel, want) in &files {
        let path = root.join(rel);
        let have = std::fs::read_to_string(&path).unwrap_or_default();
        if have != *want {
            if bless {
                std::fs::write(&path, want).unwrap();
            } else {
                stale.push(*rel);
            }
        }
    }
    if openapi_stale && !bless {
        stale.push("www/openapi.yaml (error codes or limits)");
    }
    assert!(
        stale.is_empty(),
        "stale generated files: {stale:?}; run `make generate` and commit the result"
    );
}

/// `models/train/contract.json`: what the trainer (Python) must agree on with the engine, so it
/// reads these instead of restating them: the card schema version it writes, the leading columns
/// of `leadscore dataset`'s CSV ([`leadscore::dataset::csv::KEY_COLUMNS`]), and the live names of the kinds
/// whose values are fixed names (an `encoding: auto` learned from a CRM's labels cannot match them).
fn trainer_contract() -> String {
    use leadscore::event::{channel, useragent};
    let leading = leadscore::dataset::csv::KEY_COLUMNS;
    let contract = serde_json::json!({
        "$comment": "Generated from the Rust sources by `make generate` (tests/generated.rs): do not edit. Read by models/train/train.py.",
        "card_schema_version": leadscore::model::card::CARD_SCHEMA_VERSION,
        "dataset_leading_columns": leading,
        "fixed_name_kinds": {
            "channel": channel::CHANNELS,
            "os": useragent::OS,
            "browser": useragent::BROWSERS,
            "device": useragent::DEVICES,
            // src/features/mod.rs names these inline (kind `visitor_type`).
            "visitor_type": ["new", "returning", "unknown"],
        },
    });
    serde_json::to_string_pretty(&contract).unwrap() + "\n"
}

/// Every number `www/openapi.yaml` may take from the code, by the name its `# limits:` markers use.
/// The worker's own constants (feature `worker`, not built for these tests) are read from its
/// source, so a renamed or moved constant fails here rather than leaving a stale number.
fn openapi_values(root: &Path) -> Vec<(&'static str, f64)> {
    use leadscore::event::limits;
    use leadscore::outcome::{self, hubspot};
    let mut v = vec![
        ("limits::MAX_BODY_BYTES", limits::MAX_BODY_BYTES as f64),
        ("limits::MAX_BATCH_EVENTS", limits::MAX_BATCH_EVENTS as f64),
        ("limits::MAX_ID_LEN", limits::MAX_ID_LEN as f64),
        ("limits::MAX_LEAD_ID_LEN", limits::MAX_LEAD_ID_LEN as f64),
        ("limits::MAX_MAP_ENTRIES", limits::MAX_MAP_ENTRIES as f64),
        ("limits::MAX_VALUE_LEN", limits::MAX_VALUE_LEN as f64),
        (
            "limits::MAX_IMPORT_EVENTS",
            limits::MAX_IMPORT_EVENTS as f64,
        ),
        (
            "limits::MAX_IMPORT_BODY_BYTES",
            limits::MAX_IMPORT_BODY_BYTES as f64,
        ),
        (
            "limits::MAX_OUTCOMES_BODY_BYTES",
            limits::MAX_OUTCOMES_BODY_BYTES as f64,
        ),
        (
            "outcome::MAX_BATCH_OUTCOMES",
            outcome::MAX_BATCH_OUTCOMES as f64,
        ),
        ("outcome::MAX_VALUE", outcome::MAX_VALUE),
        ("hubspot::MAX_EVENTS", hubspot::MAX_EVENTS as f64),
        (
            "hubspot::MAX_HUBSPOT_BODY_BYTES",
            hubspot::MAX_HUBSPOT_BODY_BYTES as f64,
        ),
        ("hubspot::MAX_SKEW_MS", hubspot::MAX_SKEW_MS as f64),
        ("limits::MAX_EVENT_BYTES", limits::MAX_EVENT_BYTES as f64),
        ("state::MAX_AGE_MS", leadscore::state::MAX_AGE_MS as f64),
        (
            "state::MAX_FUTURE_MS",
            leadscore::state::MAX_FUTURE_MS as f64,
        ),
        ("score::KEY_FACTORS", leadscore::score::KEY_FACTORS as f64),
        (
            "account::MAX_MEMBERS",
            leadscore::account::MAX_MEMBERS as f64,
        ),
        (
            "account::TOP_MEMBERS",
            leadscore::account::TOP_MEMBERS as f64,
        ),
        (
            "registry::MAX_UPLOAD_BYTES",
            leadscore::registry::MAX_UPLOAD_BYTES as f64,
        ),
    ];
    for (name, konst) in [
        ("worker::MAX_SITE_BYTES", "MAX_SITE_BYTES"),
        ("worker::MAX_EXPORT_DAYS", "MAX_EXPORT_DAYS"),
        ("worker::MAX_PAGE", "MAX_PAGE"),
    ] {
        v.push((name, worker_const(root, konst)));
    }
    v
}

/// A `const NAME: T = a * b …;` of src/worker/ (any file), evaluated.
fn worker_const(root: &Path, name: &str) -> f64 {
    fn walk(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    let mut files = Vec::new();
    walk(&root.join("src/worker"), &mut files);
    let needle = format!("const {name}:");
    let mut found = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        for line in text.lines().filter(|l| l.contains(&needle)) {
            let expr = line.split_once('=').and_then(|(_, e)| e.split(';').next());
            let value = expr.and_then(|e| {
                e.split('*')
                    .map(|f| f.trim().replace('_', "").parse::<f64>().ok())
                    .product::<Option<f64>>()
            });
            found.push((f.display().to_string(), value));
        }
    }
    match found.as_slice() {
        [(_, Some(v))] => *v,
        _ => panic!(
            "src/worker/ should define `const {name}` once, as a product of integers: {found:?}"
        ),
    }
}

/// One line of the OpenAPI document with its limits filled in. A line ending in
/// `# limits: NAME …` names, in order, the number each of its numbers is (`-`: leave it as
/// written); `NAME/KiB`, `/MiB`, `/min` and `/day` scale bytes and ms. A number keeps its style: `1,000`
/// stays grouped, `1e15` exponential.
fn fill_limits(line: &str, values: &[(&str, f64)]) -> Result<String, String> {
    let Some((content, names)) = line.split_once(" # limits: ") else {
        return Ok(line.to_string());
    };
    let names: Vec<&str> = names.split_whitespace().collect();
    let spans = number_spans(content);
    if spans.len() != names.len() {
        return Err(format!(
            "{} numbers but {} names in the `# limits:` marker",
            spans.len(),
            names.len()
        ));
    }
    let mut out = String::new();
    let mut from = 0;
    for (&(s, e), name) in spans.iter().zip(&names) {
        out.push_str(&content[from..s]);
        let old = &content[s..e];
        out.push_str(&if *name == "-" {
            old.to_string()
        } else {
            render(limit_value(name, values)?, old)
        });
        from = e;
    }
    out.push_str(&content[from..]);
    Ok(format!("{out} # limits: {}", names.join(" ")))
}

fn limit_value(name: &str, values: &[(&str, f64)]) -> Result<f64, String> {
    let (base, unit) = name.split_once('/').unwrap_or((name, ""));
    let v = values
        .iter()
        .find(|(n, _)| *n == base)
        .map(|(_, v)| *v)
        .ok_or_else(|| format!("no limit named `{base}` (tests/generated.rs, openapi_values)"))?;
    let div = match unit {
        "" => 1.0,
        "KiB" => 1024.0,
        "MiB" => 1024.0 * 1024.0,
        "min" => 60_000.0,
        "day" => 86_400_000.0,
        other => return Err(format!("unknown unit `{other}` in `{name}`")),
    };
    let scaled = v / div;
    if unit.is_empty() || scaled.fract() == 0.0 {
        Ok(scaled)
    } else {
        Err(format!("`{name}` is not a whole number of {unit}"))
    }
}

fn render(v: f64, old: &str) -> String {
    if old.contains('e') {
        return format!("{v:e}");
    }
    let digits = format!("{v}");
    if !old.contains(',') {
        return digits;
    }
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Byte ranges of the numbers that are words of their own ("64 KiB", "1,000", "1e15"; not the
/// digits of "v1", "sha256" or "5xx").
fn number_spans(text: &str) -> Vec<(usize, usize)> {
    let b = text.as_bytes();
    let word = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i].is_ascii_digit() && (i == 0 || !(word(b[i - 1]) || b[i - 1] == b'.')) {
            let s = i;
            while i < b.len()
                && (b[i].is_ascii_digit()
                    || (matches!(b[i], b',' | b'.' | b'e')
                        && b.get(i + 1).is_some_and(u8::is_ascii_digit)))
            {
                i += 1;
            }
            if i == b.len() || !word(b[i]) {
                out.push((s, i));
            }
        } else {
            i += 1;
        }
    }
    out
}

#[test]
fn openapi_markers_fill_numbers_in_their_style() {
    let values = [("a", 1000.0), ("b", 65536.0), ("c", 1e15)];
    let line = "x: { maxItems: 5, y: \"over 1,0, 64 KiB, 1e9 in v1\" } # limits: a a b/KiB c";
    assert_eq!(
        fill_limits(line, &values).unwrap(),
        "x: { maxItems: 1000, y: \"over 1,000, 64 KiB, 1e15 in v1\" } # limits: a a b/KiB c"
    );
    assert!(fill_limits("n: 1 # limits: a a", &values).is_err());
    assert!(fill_limits("n: 1 # limits: zz", &values).is_err());
}

/// Each committed bundle's `forest.bin` (what loads read instead of its ONNX file) is the one its
/// `model.onnx` gives now; `make generate` rewrites them (after retraining a bundle, say).
#[test]
fn committed_forests_are_derived_from_their_models() {
    let models = crate::support::root().join("models");
    let bless = std::env::var_os("LEADSCORE_BLESS").is_some();
    let mut stale = Vec::new();
    let mut seen = 0;
    for dir in std::fs::read_dir(&models).unwrap() {
        let dir = dir.unwrap().path();
        let Ok(onnx) = std::fs::read(dir.join("model.onnx")) else {
            continue;
        };
        seen += 1;
        let want = leadscore::model::plan::Plan::encoded(&onnx).unwrap();
        let path = dir.join("forest.bin");
        if std::fs::read(&path).ok().as_deref() != Some(want.as_slice()) {
            if bless {
                std::fs::write(&path, &want).unwrap();
            } else {
                stale.push(path.display().to_string());
            }
        }
    }
    assert!(seen >= 4, "only {seen} bundles under models/");
    assert!(stale.is_empty(), "stale (run `make generate`): {stale:?}");
}
