//! Criterion benchmarks of the scoring core, native. `make bench` runs them and regenerates
//! BENCHMARKS.md from criterion's estimates (benches/report.py).
//!
//! Inputs are the hand-made sample journeys (tests/fixtures/sample_events.ndjson) scored with the
//! embedded default model: the same path an event takes in the worker.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test
#![allow(missing_docs)] // criterion_group! generates an undocumented public function

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use leadscore::dataset::{Inputs, Options};
use leadscore::event::Event;
use leadscore::explain::{tree_shap, ShapMemo};
use leadscore::log::{pack, EventSource, Record};
use leadscore::model::Bundle;
use leadscore::outcome::OutcomeType;
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
    // A training set from the event log as the worker writes it: the sample journeys repeated
    // under fresh visitor and lead ids, one `{"log":"event",…}` line each, and a won outcome for
    // every other copy's lead. Parsing, de-duplication, episodes, labels and features per event.
    let sample_lines: Vec<&str> = include_str!("../tests/fixtures/sample_events.ndjson")
        .lines()
        .filter(|l| Event::parse(l).is_ok())
        .collect();
    let (mut log, mut outcomes) = (String::new(), String::new());
    let copies = 50_000 / sample_lines.len() + 1;
    for k in 0..copies {
        for l in &sample_lines {
            let l = l
                .replace("\"visitor_id\":\"v-", &format!("\"visitor_id\":\"c{k}-v-"))
                .replace("\"lead-42\"", &format!("\"lead-{k}\""));
            log.push_str(&format!(
                "{{\"log\":\"event\",\"received_at\":1763900400000,\"source\":\"live\",\"event\":{l}}}\n"
            ));
        }
        if k % 2 == 0 {
            outcomes.push_str(&format!(
                "{{\"id\":\"won-{k}\",\"lead_id\":\"lead-{k}\",\"type\":\"won\",\"ts\":1764072000000}}\n"
            ));
        }
    }
    let n_events = copies * sample_lines.len();
    println!("dataset_events: {n_events} events per iteration");
    c.bench_function("dataset_events", |b| {
        b.iter(|| {
            let mut inputs = Inputs::new(Options::new(OutcomeType::Customer)).unwrap();
            for l in black_box(&log).lines() {
                inputs.add_event_line(l).unwrap();
            }
            for l in outcomes.lines() {
                inputs.add_outcome_line(l).unwrap();
            }
            inputs.build(scorer.featurizer()).unwrap()
        })
    });
    // The worker's CPU per 10-event batch, without and with logging (the visitor has analytics
    // consent): decode the state, parse and apply the events, score with the memo, encode the
    // state; logging adds a record per event and one per score, serialized into queue messages.
    // The memo has seen the same batch before, so scoring is at its cheapest and the logging
    // share at its largest.
    let batch: Vec<String> = (0..10)
        .map(|i| {
            let mut e = hot[i % hot.len()].clone();
            e.id = format!("batch-{i}");
            e.ts = hot[0].ts + 1000 * i as i64;
            serde_json::to_string(&e).expect("json")
        })
        .collect();
    let start = scorer.new_state().to_bytes();
    let worker_batch = |log: bool, memo: &mut ShapMemo| {
        let mut s = VisitorState::from_bytes(&start, scorer.state_config()).expect("state");
        let events: Vec<Event> = batch.iter().filter_map(|l| Event::parse(l).ok()).collect();
        let now = hot[0].ts + 60_000;
        let mut records = Vec::new();
        scorer.apply_all_with(&mut s, &events, Some(now), |e| {
            if log {
                records.push(Record::event(e, now, EventSource::Live));
            }
        });
        let score = scorer
            .score_with_memo(&s, "v-hot", now, ScoreOptions::default(), memo)
            .expect("score");
        if log {
            records.push(Record::score(&scorer, &s, Default::default(), &score, 1));
        }
        let messages = pack(records).expect("pack");
        (s.to_bytes(), score, messages)
    };
    let mut memo = ShapMemo::default();
    c.bench_function("worker_batch_not_logged", |b| {
        b.iter(|| worker_batch(black_box(false), &mut memo))
    });
    c.bench_function("worker_batch_logged", |b| {
        b.iter(|| worker_batch(black_box(true), &mut memo))
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

/// The cost of B2B signals: a card reading ten signals (named touches with prop filters, a page tag,
/// a form type), with decays and windows, on the default site; per event and per feature vector.
fn b2b(c: &mut Criterion) {
    use leadscore::features::{FeatureSet, FeatureSpec};
    let site = leadscore::site::Site::new(
        Bundle::embedded()
            .expect("embedded bundle")
            .card
            .site
            .clone(),
    )
    .expect("site");
    let touches = [
        "email_opened",
        "email_clicked",
        "webinar_attended",
        "content_download",
        "meeting_held",
        "call_logged",
        "demo_held",
        "linkedin_message",
    ];
    let mut specs: Vec<serde_json::Value> = touches
        .iter()
        .flat_map(|t| {
            [
                serde_json::json!({"name": format!("{t}_30d"), "kind": "event_count",
                    "params": {"event": t, "where": {"direction": "inbound"}, "window_days": 30}}),
                serde_json::json!({"name": format!("{t}_heat"), "kind": "event_decayed",
                    "params": {"event": t, "where": {"direction": "inbound"}, "half_life_days": 14}}),
            ]
        })
        .collect();
    specs.push(
        serde_json::json!({"name": "pricing_7d", "kind": "event_count",
        "params": {"page": "product_related", "window_days": 7}}),
    );
    specs.push(
        serde_json::json!({"name": "demo_forms", "kind": "event_count",
        "params": {"type": "form_submit", "where": {"form": "demo"}}}),
    );
    specs.push(
        serde_json::json!({"name": "days_in_funnel", "kind": "days_since",
        "params": {"from": "first_seen"}}),
    );
    let specs: Vec<FeatureSpec> =
        serde_json::from_value(serde_json::Value::Array(specs)).expect("specs");
    let set = FeatureSet::new(&specs, &site).expect("features");
    let cfg = set.state_config(site);
    let mut state = VisitorState::new(&cfg);
    let t0 = 1_763_900_000_000i64;
    let touch = |i: u64| {
        let t = touches[i as usize % touches.len()];
        Event::parse(&format!(
            r#"{{"id":"t{i}","type":"custom","name":"{t}","ts":{},"visitor_id":"l","props":{{"direction":"inbound"}}}}"#,
            t0 + i as i64 * 3_600_000
        ))
        .expect("event")
    };
    for i in 0..200 {
        state.apply(&touch(i), &cfg, None);
    }
    println!(
        "b2b state: {} bytes serialized with {} signals (budget {})",
        state.to_bytes().len(),
        set.signals().len(),
        cfg.budget_bytes()
    );
    c.bench_function("b2b_state_update_per_touch", |b| {
        // A fresh id and a later time each time, so the touch is applied (as state_update_per_event).
        let mut s = state.clone();
        let mut e = touch(1000);
        let mut i = 0u64;
        b.iter(|| {
            i += 1;
            e.id = format!("bench-{i}");
            e.ts += 60_000;
            s.apply(black_box(&e), &cfg, None)
        })
    });
    c.bench_function("b2b_features_per_lead", |b| {
        let mut out = vec![0.0; set.len()];
        b.iter(|| set.compute(black_box(&state), &cfg, &mut out))
    });
}

criterion_group!(core, benches, b2b);
criterion_main!(core);
