//! Native side of the side-by-side benchmark (`make bench` → benches/compare.mjs → BENCHMARKS.md):
//! per-row latency of the default model on the December holdout vectors (benches/vectors.py), each
//! call timed, rows replayed `passes` times.
//!
//! Prints one JSON object: for each engine its p50/p99 (per call, clock included), its mean without
//! per-call clocks, and the probabilities of one pass (to check against LightGBM). Under
//! `cargo test --all-targets` (no `--bench` argument), or without the vectors file, it measures
//! nothing and exits successfully.

use std::hint::black_box;
use std::time::Instant;

use leadscore::model::Bundle;
use leadscore::score::{ScoreOptions, Scorer};

const VECTORS: &str = "target/bench/dec_vectors.json";

#[derive(serde::Deserialize)]
struct Vectors {
    rows: Vec<Vec<f32>>,
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
    let q = |p: f64| ns[((ns.len() - 1) as f64 * p).round() as usize];
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
    println!(
        "{{\"load_ms\":{load_ms},\"tract\":{tract},\"kernel\":{kernel},\"score_treeshap\":{explained}}}"
    );
}
