//! Native side of the side-by-side benchmark (`make bench` → benches/compare.mjs → BENCHMARKS.md):
//! per-row latency of the default model on the December holdout vectors (benches/vectors.py), each
//! call timed, rows replayed `passes` times.
//!
//! Prints one JSON object: for each engine its p50/p99 (per call, clock included), its mean without
//! per-call clocks, and the probabilities of one pass (to check against LightGBM); then `journeys`:
//! December visitors replayed event by event from the parity converter's events, each event's
//! score + TreeSHAP timed from scratch and with the visitor's [`ShapMemo`]. Under
//! `cargo test --all-targets` (no `--bench` argument), or without the vectors file, it measures
//! nothing and exits successfully.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use std::hint::black_box;
use std::time::Instant;

use leadscore::event::Event;
use leadscore::explain::ShapMemo;
use leadscore::model::Bundle;
use leadscore::score::{ScoreOptions, Scorer};
use leadscore::site::SiteTables;

const VECTORS: &str = "target/bench/dec_vectors.json";
const EVENTS: &str = "target/parity/shoppers.ndjson";
const TABLES: &str = "target/parity/shoppers_tables.json";
/// December visitors replayed (each event scored twice, once with the full TreeSHAP).
const JOURNEYS: usize = 300;

#[derive(serde::Deserialize)]
struct Vectors {
    rows: Vec<Vec<f32>>,
    ids: Vec<usize>,
}

/// The `p` quantile of sorted values (0 when there are none).
fn quantile(sorted: &[f64], p: f64) -> f64 {
    sorted
        .get(((sorted.len().max(1) - 1) as f64 * p).round() as usize)
        .copied()
        .unwrap_or(0.0)
}

fn quantiles(mut ns: Vec<f64>) -> String {
    ns.sort_by(|a, b| a.total_cmp(b));
    let q = |p: f64| quantile(&ns, p);
    let mean = ns.iter().sum::<f64>() / ns.len().max(1) as f64;
    format!(
        "{{\"calls\":{},\"p50_ns\":{},\"p99_ns\":{},\"mean_ns\":{mean}}}",
        ns.len(),
        q(0.5),
        q(0.99)
    )
}

/// Replays the first [`JOURNEYS`] December visitors event by event: after each event, the full
/// score from scratch and with the visitor's memo (which must agree), each timed.
fn journeys(ids: &[usize]) -> Option<String> {
    let tables: SiteTables = serde_json::from_str(&std::fs::read_to_string(TABLES).ok()?).ok()?;
    let scorer = Scorer::new(Bundle::embedded().ok()?, Some(tables)).ok()?;
    let wanted: std::collections::HashMap<String, usize> = ids
        .iter()
        .take(JOURNEYS)
        .enumerate()
        .map(|(k, id)| (format!("shoppers-{id}"), k))
        .collect();
    let mut by_visitor: Vec<Vec<Event>> = vec![Vec::new(); wanted.len()];
    for line in std::fs::read_to_string(EVENTS).ok()?.lines() {
        if let Ok(e) = Event::parse(line) {
            if let Some(&k) = wanted.get(&e.visitor_id) {
                by_visitor[k].push(e);
            }
        }
    }
    let opts = ScoreOptions::default();
    let (mut full, mut memo_ns, mut recomputed, mut mismatches) =
        (Vec::new(), Vec::new(), 0usize, 0usize);
    for events in &by_visitor {
        let mut state = scorer.new_state();
        let mut memo = ShapMemo::default();
        for e in events {
            scorer.apply(&mut state, e, None);
            let t = Instant::now();
            let a = scorer
                .score(black_box(&state), &e.visitor_id, 0, opts)
                .ok()?;
            full.push(t.elapsed().as_nanos() as f64);
            let t = Instant::now();
            let b = scorer
                .score_with_memo(black_box(&state), &e.visitor_id, 0, opts, &mut memo)
                .ok()?;
            memo_ns.push(t.elapsed().as_nanos() as f64);
            recomputed += memo.recomputed();
            if serde_json::to_string(&a).ok() != serde_json::to_string(&b).ok() {
                mismatches += 1;
            }
        }
    }
    let n = full.len();
    Some(format!(
        "{{\"visitors\":{},\"events\":{n},\"n_trees\":{},\"trees_recomputed_mean\":{},\"mismatches\":{mismatches},\"full\":{},\"memo\":{}}}",
        by_visitor.len(),
        scorer.n_trees(),
        recomputed as f64 / n.max(1) as f64,
        quantiles(full),
        quantiles(memo_ns)
    ))
}

/// Times `f` on every row, `passes` times; returns the JSON fields of one engine.
fn measure(rows: &[Vec<f32>], passes: usize, mut f: impl FnMut(&[f32]) -> f64) -> String {
    let first: Vec<f64> = rows.iter().map(|r| f(r)).collect();
    let mut ns = Vec::with_capacity(rows.len() * passes);
    for _ in 0..passes {
        for r in rows {
            let t = Instant::now();
            black_box(f(black_box(r)));
            ns.push(t.elapsed().as_nanos() as f64);
        }
    }
    let t = Instant::now();
    for _ in 0..passes {
        for r in rows {
            black_box(f(black_box(r)));
        }
    }
    let mean = t.elapsed().as_nanos() as f64 / (rows.len() * passes) as f64;
    ns.sort_by(|a, b| a.total_cmp(b));
    let q = |p: f64| quantile(&ns, p);
    let probs: Vec<String> = first.iter().map(|p| format!("{p:?}")).collect();
    let cdf: Vec<String> = (0..=100)
        .map(|i| q(f64::from(i) / 100.0).to_string())
        .collect();
    format!(
        "{{\"calls\":{},\"p50_ns\":{},\"p99_ns\":{},\"mean_ns\":{mean},\"cdf_ns\":[{}],\"probs\":[{}]}}",
        ns.len(),
        q(0.5),
        q(0.99),
        cdf.join(","),
        probs.join(",")
    )
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --all-targets` does not (then: build check only).
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let Ok(text) = std::fs::read_to_string(VECTORS) else {
        eprintln!("compare: no {VECTORS} (run `benches/vectors.py`); nothing to measure");
        return;
    };
    let passes = std::env::var("LEADSCORE_BENCH_PASSES")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(6usize)
        .max(1);
    let v: Vectors = serde_json::from_str(&text).expect("vectors JSON");
    let t = Instant::now();
    let scorer = Scorer::new(Bundle::embedded().expect("bundle"), None).expect("scorer");
    let load_ms = t.elapsed().as_secs_f64() * 1e3;
    let tract = measure(&v.rows, passes, |x| {
        scorer.probability(x).expect("probability")
    });
    let (forest, _) = scorer.trees();
    let kernel = measure(&v.rows, passes, |x| f64::from(forest.probability(x)));
    let explained = measure(&v.rows, passes, |x| {
        scorer
            .score_vector(x, ScoreOptions::default())
            .expect("score")
            .raw_probability
    });
    let journeys = journeys(&v.ids).unwrap_or_else(|| {
        eprintln!(
            "compare: no {EVENTS} / {TABLES} (run `benches/vectors.py`); journeys not measured"
        );
        "null".into()
    });
    println!(
        "{{\"load_ms\":{load_ms},\"tract\":{tract},\"kernel\":{kernel},\"score_treeshap\":{explained},\"journeys\":{journeys}}}"
    );
}
