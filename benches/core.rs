//! Criterion benchmarks of the scoring core, native. `make bench` runs them and regenerates
//! BENCHMARKS.md from criterion's estimates (benches/report.py).
//!
//! Inputs are the hand-made sample journeys (tests/fixtures/sample_events.ndjson) scored with the
//! embedded default model: the same path an event takes in the worker.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test
#![allow(missing_docs)] // criterion_group! generates an undocumented public function

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use leadscore::event::Event;
use leadscore::explain::{tree_shap, ShapMemo};
use leadscore::model::Bundle;
use leadscore::score::{ScoreOptions, Scorer};
use leadscore::state::VisitorState;

fn sample() -> (Scorer, Vec<Event>, VisitorState) {
    let scorer = Scorer::new(Bundle::embedded().expect("embedded bundle"), None).expect("scorer");
    let text = include_str!("../tests/fixtures/sample_events.ndjson");
    let events: Vec<Event> = text.lines().filter_map(|l| Event::parse(l).ok()).collect();
    let mut state = scorer.new_state();
    for e in events.iter().filter(|e| e.visitor_id == "v-hot") {
        scorer.apply(&mut state, e, None);
    }
    (scorer, events, state)
}

fn benches(c: &mut Criterion) {
    let (scorer, events, state) = sample();
    let hot: Vec<Event> = events
        .iter()
        .filter(|e| e.visitor_id == "v-hot")
        .cloned()
        .collect();
    let page = hot
        .iter()
        .find(|e| e.url.is_some())
        .cloned()
        .expect("a page event");
    let line = serde_json::to_string(&page).expect("json");

    c.bench_function("event_parse", |b| b.iter(|| Event::parse(black_box(&line))));
    c.bench_function("state_update_per_event", |b| {
        // A fresh id each time so the event is applied, not de-duplicated.
        let mut s = state.clone();
        let mut e = page.clone();
        let mut i = 0u64;
        b.iter(|| {
            i += 1;
            e.id = format!("bench-{i}");
            e.ts += 1000;
            scorer.apply(&mut s, black_box(&e), None)
        })
    });
    c.bench_function("features_per_visitor", |b| {
        b.iter(|| scorer.feature_vector(black_box(&state)))
    });
    let x = scorer.feature_vector(&state);
    c.bench_function("features_and_score_per_visitor", |b| {
        b.iter(|| {
            let x = scorer.feature_vector(black_box(&state));
            scorer.probability(&x)
        })
    });
    c.bench_function("model_predict_row", |b| {
        b.iter(|| scorer.probability(black_box(&x)))
    });
    let (forest, covers) = scorer.trees();
    let mut phi = vec![0.0; x.len()];
    c.bench_function("treeshap_row", |b| {
        b.iter(|| tree_shap(forest, covers, black_box(&x), &mut phi))
    });
    c.bench_function("score_with_treeshap_per_visitor", |b| {
        b.iter(|| scorer.score(black_box(&state), "v-hot", 0, ScoreOptions::default()))
    });
    // Every sample journey event by event, as the browser and the worker score: the memo keeps
    // each tree's last contributions, so an event recomputes only the trees it changed.
    let mut steps: Vec<(bool, VisitorState)> = Vec::new();
    for v in ["v-hot", "v-warm", "v-cold"] {
        let mut s = scorer.new_state();
        for (k, e) in events.iter().filter(|e| e.visitor_id == v).enumerate() {
            scorer.apply(&mut s, e, None);
            steps.push((k == 0, s.clone()));
        }
    }
    c.bench_function("score_with_treeshap_per_event_memo", |b| {
        let mut memo = ShapMemo::default();
        let mut i = 0;
        b.iter(|| {
            let (first, s) = &steps[i % steps.len()];
            i += 1;
            if *first {
                memo.clear();
            }
            scorer.score_with_memo(black_box(s), "v", 0, ScoreOptions::default(), &mut memo)
        })
    });
    let bytes = state.to_bytes();
    println!("state size: {} bytes serialized (postcard)", bytes.len());
    c.bench_function("state_serialize", |b| {
        b.iter(|| black_box(&state).to_bytes())
    });
    c.bench_function("state_deserialize", |b| {
        b.iter(|| VisitorState::from_bytes(black_box(&bytes), scorer.state_config()))
    });
}

criterion_group!(core, benches);
criterion_main!(core);
