//! Point-in-time training sets (`leadscore::dataset`, `leadscore dataset`): each rule of the row
//! definition on a hand-made journey, its consequences as properties of random journeys, and the
//! command line end to end on the sample journeys.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use std::io::Write;
use std::path::{Path, PathBuf};

use std::sync::LazyLock;

use leadscore::dataset::{self, By, Dataset, Options, Row, Shard, SubjectKind};
use leadscore::event::Event;
use leadscore::model::Bundle;
use leadscore::outcome::{Outcome, OutcomeType};
use leadscore::score::Scorer;
use leadscore::state::VisitorState;
use proptest::prelude::*;

use crate::support::{leadscore, root, text};

static SCORER: LazyLock<Scorer> =
    LazyLock::new(|| Scorer::new(Bundle::embedded().unwrap(), None).unwrap());

const T0: i64 = 1_770_000_000_000;
const MIN: i64 = 60_000;
const HOUR: i64 = 3_600_000;
const DAY: i64 = 86_400_000;

fn event(kind: &str, visitor: &str, id: &str, ts: i64, extra: &str) -> Event {
    let text =
        format!(r#"{{"id":"{id}","type":"{kind}","ts":{ts},"visitor_id":"{visitor}"{extra}}}"#);
    Event::parse(&text).unwrap_or_else(|e| panic!("{text}: {e}"))
}

fn page(visitor: &str, id: &str, ts: i64) -> Event {
    event("page", visitor, id, ts, r#","path":"/products/a""#)
}

fn identify(visitor: &str, id: &str, ts: i64, lead: &str) -> Event {
    event(
        "identify",
        visitor,
        id,
        ts,
        &format!(r#","lead_id":"{lead}""#),
    )
}

fn outcome(id: &str, who: (&str, &str), kind: OutcomeType, ts: i64) -> Outcome {
    let (field, name) = who;
    let text = format!(
        r#"{{"id":"{id}","{field}":"{name}","type":"{}","ts":{ts}}}"#,
        kind.as_str()
    );
    let o: Outcome = serde_json::from_str(&text).unwrap();
    o.validate().unwrap();
    o
}

fn won_by_visitor(id: &str, visitor: &str, ts: i64) -> Outcome {
    outcome(id, ("visitor_id", visitor), OutcomeType::Customer, ts)
}

fn won_by_lead(id: &str, lead: &str, ts: i64) -> Outcome {
    outcome(id, ("lead_id", lead), OutcomeType::Customer, ts)
}

fn opts(window: i64, as_of: Option<i64>) -> Options {
    Options {
        window_ms: window,
        as_of,
        ..Options::new(OutcomeType::Customer)
    }
}

fn build(events: &[Event], outcomes: &[Outcome], opts: &Options) -> Dataset {
    dataset::build(
        SCORER.featurizer(),
        events.to_vec(),
        outcomes.to_vec(),
        opts,
    )
    .unwrap()
}

/// The feature vector of one visitor's state after these events, applied in this order.
fn features_of(events: &[&Event]) -> Vec<f32> {
    let mut s = SCORER.new_state();
    for e in events {
        SCORER.apply(&mut s, e, None);
    }
    SCORER.feature_vector(&s)
}

fn state_of(events: &[&Event]) -> VisitorState {
    let mut s = SCORER.new_state();
    for e in events {
        SCORER.apply(&mut s, e, None);
    }
    s
}

fn summary(d: &Dataset) -> (u64, u64, u64, u64) {
    let s = &d.summary;
    (
        s.positives,
        s.negatives,
        s.censored,
        s.events_after_conversion_ignored,
    )
}

#[test]
fn a_positive_is_an_outcome_within_the_window_after_the_last_event() {
    let e = [page("v", "1", T0), page("v", "2", T0 + HOUR)];
    let d = T0 + HOUR;
    for (t, positive) in [(d + 1, true), (d + DAY, true), (d + DAY + 1, false)] {
        let set = build(&e, &[won_by_visitor("o", "v", t)], &opts(DAY, None));
        if positive {
            assert_eq!(set.rows.len(), 1, "{t}");
            let row = &set.rows[0];
            assert_eq!(
                (row.kind, row.subject_id.as_str(), row.decision_ts),
                (SubjectKind::Visitor, "v", d)
            );
            assert_eq!((row.outcome_ts, row.label()), (Some(t), 1));
            assert_eq!(row.features, features_of(&[&e[0], &e[1]]));
            assert_eq!(summary(&set), (1, 0, 0, 0));
        } else {
            // The window (d, d + W] ends before the outcome, and as-of (the outcome) is after it.
            assert_eq!(set.rows[0].label(), 0, "{t}");
            assert_eq!(summary(&set), (0, 1, 0, 0));
        }
    }
}

#[test]
fn an_outcome_beyond_the_window_makes_a_negative_then_nothing() {
    let e = [
        page("v", "1", T0),
        page("v", "2", T0 + 3 * DAY),
        page("v", "3", T0 + 3 * DAY + HOUR),
    ];
    let set = build(
        &e,
        &[won_by_visitor("o", "v", T0 + 2 * DAY)],
        &opts(DAY, None),
    );
    assert_eq!(set.rows.len(), 1);
    assert_eq!(
        (set.rows[0].decision_ts, set.rows[0].outcome_ts),
        (T0, None)
    );
    assert_eq!(set.rows[0].features, features_of(&[&e[0]]));
    // The two events after the outcome make no row; the subject has converted.
    assert_eq!(summary(&set), (0, 1, 0, 2));
}

#[test]
fn a_gap_longer_than_the_window_starts_an_episode_whose_state_has_everything_before() {
    let e = [
        page("v", "1", T0),
        page("v", "2", T0 + HOUR),
        page("v", "3", T0 + HOUR + DAY + 1),
        event(
            "click",
            "v",
            "4",
            T0 + 2 * HOUR + DAY,
            r#","props":{"cta":"demo"}"#,
        ),
    ];
    let set = build(&e, &[], &opts(DAY, Some(T0 + 30 * DAY)));
    let rows: Vec<(i64, Option<i64>)> = set
        .rows
        .iter()
        .map(|r| (r.decision_ts, r.outcome_ts))
        .collect();
    assert_eq!(rows, [(T0 + HOUR, None), (T0 + 2 * HOUR + DAY, None)]);
    assert_eq!(set.rows[0].features, features_of(&[&e[0], &e[1]]));
    assert_eq!(
        set.rows[1].features,
        features_of(&e.iter().collect::<Vec<_>>())
    );
    assert_ne!(set.rows[0].features, set.rows[1].features);
    // A gap of exactly W does not split.
    let e = [page("v", "1", T0), page("v", "2", T0 + DAY)];
    let set = build(&e, &[], &opts(DAY, Some(T0 + 30 * DAY)));
    assert_eq!(set.rows.len(), 1);
}

#[test]
fn a_last_episode_whose_window_is_not_over_is_censored() {
    let e = [page("v", "1", T0), page("v", "2", T0 + 3 * DAY)];
    // As of 12 h after the last event: the first episode is a negative, the last censored.
    let set = build(&e, &[], &opts(DAY, Some(T0 + 3 * DAY + 12 * HOUR)));
    assert_eq!(set.rows.len(), 1);
    assert_eq!(set.rows[0].decision_ts, T0);
    assert_eq!(summary(&set), (0, 1, 1, 0));
    // Once as-of reaches d + W, it is observed.
    let set = build(&e, &[], &opts(DAY, Some(T0 + 4 * DAY)));
    assert_eq!(summary(&set), (0, 2, 0, 0));
    // By default as-of is the latest record: here the last event, so its episode is censored.
    let set = build(&e, &[], &opts(DAY, None));
    assert_eq!(set.summary.as_of, T0 + 3 * DAY);
    assert_eq!(summary(&set), (0, 1, 1, 0));
    // Records after as-of do not exist for the build.
    let set = build(&e, &[], &opts(DAY, Some(T0 + 2 * DAY)));
    assert_eq!(set.summary.after_as_of_ignored, 1);
    assert_eq!(summary(&set), (0, 1, 0, 0));
}

#[test]
fn closed_windows_keep_a_positive_only_once_its_window_is_over() {
    // Two episodes; the last converts 2 h after its end, within W = 1 day.
    let e = [page("v", "1", T0), page("v", "2", T0 + 3 * DAY)];
    let won = [won_by_visitor("o", "v", T0 + 3 * DAY + 2 * HOUR)];
    let as_of = Some(T0 + 3 * DAY + 12 * HOUR); // before the last window's end
    let closed = |as_of| Options {
        closed_windows: true,
        ..opts(DAY, as_of)
    };
    // By default the conversion is written although its window is still open.
    let set = build(&e, &won, &opts(DAY, as_of));
    assert_eq!(summary(&set), (1, 1, 0, 0));
    assert_eq!(set.summary.positives_in_open_windows, 0);
    // Closed windows only: it is counted, not written; the closed first episode stays.
    let set = build(&e, &won, &closed(as_of));
    assert_eq!(summary(&set), (0, 1, 0, 0));
    assert_eq!(set.summary.positives_in_open_windows, 1);
    assert_eq!(set.rows.len(), 1);
    assert_eq!(set.rows[0].decision_ts, T0);
    // Once as-of reaches d + W the row is the same positive either way.
    let later = Some(T0 + 4 * DAY);
    assert_eq!(
        build(&e, &won, &closed(later)).rows,
        build(&e, &won, &opts(DAY, later)).rows
    );
    assert_eq!(summary(&build(&e, &won, &closed(later))), (1, 1, 0, 0));
}

#[test]
fn an_event_at_the_outcome_time_is_not_seen() {
    let e = [page("v", "1", T0), page("v", "2", T0 + HOUR)];
    let set = build(&e, &[won_by_visitor("o", "v", T0 + HOUR)], &opts(DAY, None));
    assert_eq!(set.rows.len(), 1);
    let row = &set.rows[0];
    assert_eq!((row.decision_ts, row.outcome_ts), (T0, Some(T0 + HOUR)));
    assert_eq!(row.features, features_of(&[&e[0]]));
    assert_eq!(summary(&set), (1, 0, 0, 1));
    // An outcome at or before the first event: converted before any event, no row.
    let set = build(&e, &[won_by_visitor("o", "v", T0)], &opts(DAY, None));
    assert!(set.rows.is_empty());
    assert_eq!(set.summary.converted_before_any_event, 1);
}

#[test]
fn events_after_conversion_make_no_rows_and_later_outcomes_change_nothing() {
    let e = [
        page("v", "1", T0),
        page("v", "2", T0 + 2 * HOUR),
        page("v", "3", T0 + 5 * DAY),
    ];
    let o = [
        won_by_visitor("o1", "v", T0 + HOUR),
        won_by_visitor("o2", "v", T0 + 4 * DAY),
        outcome(
            "q",
            ("visitor_id", "v"),
            OutcomeType::Qualified,
            T0 + 30 * MIN,
        ),
    ];
    let set = build(&e, &o, &opts(DAY, Some(T0 + 30 * DAY)));
    assert_eq!(set.rows.len(), 1);
    assert_eq!(set.rows[0].outcome_ts, Some(T0 + HOUR));
    assert_eq!(summary(&set), (1, 0, 0, 2));
    assert_eq!(set.summary.outcomes_of_other_types, 1);
    // The other type labels its own sets.
    let q = Options {
        label: OutcomeType::Qualified,
        ..opts(DAY, Some(T0 + 30 * DAY))
    };
    let set = build(&e, &o, &q);
    assert_eq!(set.rows[0].outcome_ts, Some(T0 + 30 * MIN));
}

#[test]
fn by_lead_a_visitor_joins_at_its_identify_with_its_earlier_events() {
    // Two devices of one lead in one 30-minute session of the site; W = 10 min.
    let a = [
        page("a", "1", T0),
        identify("a", "2", T0 + MIN, "L"),
        page("a", "3", T0 + 2 * MIN),
    ];
    let b = [
        page("b", "1", T0 + 5 * MIN),
        identify("b", "2", T0 + 20 * MIN, "L"),
        page("b", "3", T0 + 21 * MIN),
    ];
    let events: Vec<Event> = a.iter().chain(&b).cloned().collect();
    let o = Options {
        by: By::Lead,
        ..opts(10 * MIN, Some(T0 + 30 * DAY))
    };
    let set = build(&events, &[], &o);
    let lead: Vec<&Row> = set
        .rows
        .iter()
        .filter(|r| r.kind == SubjectKind::Lead)
        .collect();
    // The lead's episodes are its members' events from their joins on: 1–2 min (a), then
    // 20–21 min (b), more than W apart.
    let ds: Vec<i64> = lead.iter().map(|r| r.decision_ts).collect();
    assert_eq!(ds, [T0 + 2 * MIN, T0 + 21 * MIN]);
    assert!(lead.iter().all(|r| r.subject_id == "L"));
    // At 2 min only a had joined: a's state, its page before the identify included; b's page
    // at 5 min is not the lead's yet.
    assert_eq!(lead[0].features, features_of(&[&a[0], &a[1], &a[2]]));
    // At 21 min both: b (the latest to join) with a merged into it, b's early page included:
    // one session of four pages, not b's two.
    let mut merged = state_of(&[&b[0], &b[1], &b[2]]);
    merged
        .merge(
            "b",
            "a",
            &state_of(&[&a[0], &a[1], &a[2]]),
            SCORER.state_config(),
        )
        .unwrap();
    assert_eq!(merged.session.counts.pages, 4);
    assert_eq!(lead[1].features, SCORER.feature_vector(&merged));
    assert_ne!(lead[1].features, features_of(&[&b[0], &b[1], &b[2]]));
    // Before their identifies a and b were their own subjects, observed until then: a's page
    // is less than W before its identify (censored), b's 15 min before (a negative).
    let own: Vec<(&str, i64)> = set
        .rows
        .iter()
        .filter(|r| r.kind == SubjectKind::Visitor)
        .map(|r| (r.subject_id.as_str(), r.decision_ts))
        .collect();
    assert_eq!(own, [("b", T0 + 5 * MIN)]);
    assert_eq!(set.rows[1].features, features_of(&[&b[0]]));
    assert_eq!(set.summary.censored, 1);
    assert_eq!(set.summary.subjects, 3);

    // A visitor outcome after the identify labels the lead; one before it, the visitor.
    let o2 = [won_by_visitor("o", "b", T0 + 25 * MIN)];
    let set2 = build(&events, &o2, &o);
    let last = set2.rows.last().unwrap();
    assert_eq!(
        (last.kind, last.decision_ts, last.outcome_ts),
        (SubjectKind::Lead, T0 + 21 * MIN, Some(T0 + 25 * MIN))
    );
    let o3 = [won_by_visitor("o", "b", T0 + 7 * MIN)];
    let set3 = build(&events, &o3, &o);
    let b_row = set3
        .rows
        .iter()
        .find(|r| r.subject_id == "b")
        .expect("b's own row");
    assert_eq!(
        (b_row.decision_ts, b_row.outcome_ts),
        (T0 + 5 * MIN, Some(T0 + 7 * MIN))
    );
    assert_eq!(set3.rows.len(), set.rows.len());
}

#[test]
fn by_visitor_a_lead_outcome_labels_the_visitors_identified_by_then() {
    let events = [
        page("a", "1", T0),
        identify("a", "2", T0 + HOUR, "L"),
        page("a", "3", T0 + 3 * HOUR),
        page("c", "1", T0),
        identify("c", "2", T0 + 3 * HOUR, "L"),
        page("n", "1", T0),
    ];
    let o = [
        won_by_lead("o", "L", T0 + 2 * HOUR),
        won_by_lead("x", "nobody", T0),
    ];
    let set = build(&events, &o, &opts(DAY, Some(T0 + 30 * DAY)));
    let rows: Vec<(&str, i64, Option<i64>)> = set
        .rows
        .iter()
        .map(|r| (r.subject_id.as_str(), r.decision_ts, r.outcome_ts))
        .collect();
    assert_eq!(
        rows,
        [
            // c identified after the outcome: not labelled by it.
            ("n", T0, None),
            ("a", T0 + HOUR, Some(T0 + 2 * HOUR)),
            ("c", T0 + 3 * HOUR, None),
        ]
    );
    assert_eq!(set.summary.events_after_conversion_ignored, 1);
    assert_eq!(set.summary.outcomes_unmatched, 1);
}

#[test]
fn account_features_count_the_colleagues_active_by_each_decision() {
    let specs: Vec<leadscore::features::FeatureSpec> = serde_json::from_str(
        r#"[{"name":"colleagues","kind":"colleagues"},
            {"name":"colleagues_7d","kind":"colleagues","params":{"window_days":7}}]"#,
    )
    .unwrap();
    let site = leadscore::site::Site::new(SCORER.card().site.clone()).unwrap();
    let f = leadscore::features::Featurizer::new(&specs, site).unwrap();
    let group = |v: &str, id: &str, ts: i64, acc: &str| {
        event("group", v, id, ts, &format!(r#","account_id":"{acc}""#))
    };
    let events = [
        identify("a", "a1", T0, "L1"),
        group("a", "a2", T0 + MIN, "acme"),
        page("a", "a3", T0 + 2 * MIN),
        identify("b", "b1", T0 + DAY, "L2"),
        group("b", "b2", T0 + DAY + MIN, "acme"),
        page("b", "b3", T0 + 10 * DAY),
        // A visitor not identified is a member by itself; a later one is not seen before it joins.
        page("c", "c1", T0 + 2 * DAY),
        group("c", "c2", T0 + 2 * DAY + MIN, "acme"),
        group("d", "d1", T0 + 20 * DAY, "acme"),
        group("e", "e1", T0, "globex"),
    ];
    let o = Options {
        by: By::Lead,
        decisions: dataset::Decisions::Events,
        window_ms: 30 * DAY,
        as_of: Some(T0 + 100 * DAY),
        ..Options::new(OutcomeType::Customer)
    };
    let set = dataset::build(&f, events.to_vec(), Vec::<Outcome>::new(), &o).unwrap();
    let at = |who: &str, d: i64| {
        set.rows
            .iter()
            .find(|r| r.subject_id == who && r.decision_ts == d)
            .unwrap_or_else(|| panic!("no row of {who} at {d}"))
            .features
            .clone()
    };
    // No account yet: missing. Joined alone: 0.
    assert!(at("L1", T0).iter().all(|v| v.is_nan()));
    assert_eq!(at("L1", T0 + 2 * MIN), [0.0, 0.0]);
    // L2 joins: L1 is a colleague, active a day ago.
    assert!(at("L2", T0 + DAY).iter().all(|v| v.is_nan()));
    assert_eq!(at("L2", T0 + DAY + MIN), [1.0, 1.0]);
    // Ten days on: L1 (10 days) and c (8 days) are colleagues, neither within 7 days; d joins
    // later and is not counted.
    assert_eq!(at("L2", T0 + 10 * DAY), [2.0, 0.0]);
    assert_eq!(at("c", T0 + 2 * DAY + MIN), [2.0, 2.0]);
    // Another account's members are nobody's colleagues here.
    assert_eq!(at("e", T0), [0.0, 0.0]);
    // By visitor the same rule: visitor b is lead L2 to the account.
    let by_visitor = dataset::build(
        &f,
        events.to_vec(),
        Vec::<Outcome>::new(),
        &Options {
            by: By::Visitor,
            ..o
        },
    )
    .unwrap();
    let b = by_visitor
        .rows
        .iter()
        .find(|r| r.subject_id == "b" && r.decision_ts == T0 + 10 * DAY)
        .unwrap();
    assert_eq!(b.features, [2.0, 0.0]);
    // A shard by visitor without every visitor's events is refused, not silently wrong.
    let shard = Options {
        by: By::Visitor,
        shard: Some(Shard::new(0, 2).unwrap()),
        ..o
    };
    assert!(dataset::build(&f, events.to_vec(), Vec::<Outcome>::new(), &shard).is_err());
    let all = Options {
        all_visitors: true,
        ..shard
    };
    let part = dataset::build(&f, events.to_vec(), Vec::<Outcome>::new(), &all).unwrap();
    let text = |r: &Row| format!("{r:?}"); // NaN features compare by their text
    assert!(!part.rows.is_empty());
    assert!(part
        .rows
        .iter()
        .all(|r| by_visitor.rows.iter().any(|x| text(x) == text(r))));
}

#[test]
fn by_account_the_members_merge_and_a_lead_outcome_labels_its_account() {
    let group = |v: &str, id: &str, ts: i64, acc: &str| {
        event("group", v, id, ts, &format!(r#","account_id":"{acc}""#))
    };
    let events = [
        identify("a", "a1", T0, "L1"),
        group("a", "a2", T0 + MIN, "acme"),
        page("a", "a3", T0 + 2 * MIN),
        identify("b", "b1", T0 + DAY, "L2"),
        group("b", "b2", T0 + DAY + MIN, "acme"),
        page("b", "b3", T0 + DAY + 2 * MIN),
        group("e", "e1", T0, "globex"),
        page("e", "e2", T0 + MIN),
        page("lonely", "z1", T0),
    ];
    let o = Options {
        by: By::Account,
        decisions: dataset::Decisions::Events,
        window_ms: 30 * DAY,
        as_of: Some(T0 + 100 * DAY),
        ..Options::new(OutcomeType::Customer)
    };
    let won = [
        won_by_lead("o1", "L2", T0 + 5 * DAY),
        won_by_lead("o2", "nobody", T0 + 5 * DAY),
    ];
    let set = build(&events, &won, &o);
    assert!(set.rows.iter().all(|r| r.kind == SubjectKind::Account));
    let acme: Vec<&Row> = set.rows.iter().filter(|r| r.subject_id == "acme").collect();
    let globex: Vec<&Row> = set
        .rows
        .iter()
        .filter(|r| r.subject_id == "globex")
        .collect();
    // acme: a row at each member event from its joins on, all before L2's win: positive.
    assert_eq!(
        acme.iter().map(|r| r.decision_ts).collect::<Vec<_>>(),
        [T0 + MIN, T0 + 2 * MIN, T0 + DAY + MIN, T0 + DAY + 2 * MIN]
    );
    assert!(acme.iter().all(|r| r.outcome_ts == Some(T0 + 5 * DAY)));
    // Its last row merges both members' states as the worker does, the latest joiner first.
    let last = acme.last().unwrap();
    let mut other_order = state_of(&[&events[3], &events[4], &events[5]]);
    other_order
        .merge(
            "b",
            "a",
            &state_of(&[&events[0], &events[1], &events[2]]),
            SCORER.state_config(),
        )
        .unwrap();
    assert_eq!(last.features, SCORER.feature_vector(&other_order));
    assert_eq!(globex.len(), 2);
    assert!(globex.iter().all(|r| r.label() == 0));
    // The visitor with no account makes no row; the outcome of an unknown lead is unmatched.
    assert!(set.rows.iter().all(|r| r.subject_id != "lonely"));
    assert_eq!(set.summary.outcomes_unmatched, 1);
}

#[test]
fn served_decisions_are_where_the_score_log_says_a_score_was_served() {
    let e = [
        page("v", "1", T0),
        page("v", "2", T0 + HOUR),
        page("v", "3", T0 + 2 * HOUR),
    ];
    let score = |n: u32, ts: i64| {
        format!(
            r#"{{"log":"score","id":"v/{n}","visitor_id":"v","ts":{ts},"model_version":"m","features":{{}},"raw_probability":0.1,"probability":0.1,"ai_score":10,"tier":"cold"}}"#
        )
    };
    let o = Options {
        decisions: dataset::Decisions::Served,
        window_ms: DAY,
        as_of: Some(T0 + 10 * DAY),
        ..Options::new(OutcomeType::Customer)
    };
    let mut inputs = dataset::Inputs::new(o).unwrap();
    for ev in &e {
        inputs.add_event(ev.clone());
    }
    // Served after the first two events, twice the same record (a copy), and after the outcome.
    for line in [
        score(1, T0 + 1000),
        score(2, T0 + HOUR + 5),
        score(2, T0 + HOUR + 5),
        score(3, T0 + 3 * HOUR),
    ] {
        inputs.add_score_line(&line).unwrap();
    }
    inputs.add_outcome(won_by_visitor("o", "v", T0 + 2 * HOUR + 1));
    assert!(inputs.add_score_line(r#"{"log":"outcome"}"#).is_err());
    let set = inputs.build(SCORER.featurizer()).unwrap();
    assert_eq!(
        set.rows.iter().map(|r| r.decision_ts).collect::<Vec<_>>(),
        [T0 + 1000, T0 + HOUR + 5]
    );
    assert_eq!(set.rows[0].features, features_of(&[&e[0]]));
    assert_eq!(
        set.rows[1].features,
        SCORER
            .featurizer()
            .vector_at(&state_of(&[&e[0], &e[1]]), T0 + HOUR + 5)
    );
    assert!(set.rows.iter().all(|r| r.label() == 1));
    assert_eq!(set.summary.scores_read, 3);
    // Scores are served to members, never to accounts.
    let by_account = Options {
        by: By::Account,
        ..o
    };
    assert!(dataset::Inputs::new(by_account)
        .unwrap()
        .build(SCORER.featurizer())
        .is_err());
}

#[test]
fn copies_of_records_are_dropped_keeping_the_first() {
    let e = [page("v", "1", T0), page("v", "2", T0 + HOUR)];
    let o = [won_by_visitor("o", "v", T0 + 2 * HOUR)];
    let once = build(&e, &o, &opts(DAY, None));
    let twice: Vec<Event> = e.iter().chain(&e).chain(&e[..1]).cloned().collect();
    let oo: Vec<Outcome> = o.iter().chain(&o).cloned().collect();
    let set = build(&twice, &oo, &opts(DAY, None));
    assert_eq!(set.rows, once.rows);
    assert_eq!(set.summary.duplicates_dropped, 4);
    assert_eq!(set.summary.events_read, 5);
    // Event ids are unique per visitor: the same id from another visitor is another event.
    let other = [page("v", "1", T0), page("w", "1", T0)];
    assert_eq!(build(&other, &[], &opts(DAY, Some(T0 + DAY))).rows.len(), 2);
}

// ---- properties --------------------------------------------------------------------------

/// One random journey: visitors v0..v3 with events on even minutes (distinct per visitor),
/// some identifying as l0/l1; outcomes on odd minutes, so no outcome shares an event's ts.
#[derive(Debug, Clone)]
struct Journey {
    events: Vec<Event>,
    outcomes: Vec<Outcome>,
}

const SPAN_MIN: i64 = 8 * 24 * 60;

fn journey() -> impl Strategy<Value = Journey> {
    let visitor = (
        prop::collection::btree_set(0..SPAN_MIN / 2, 1..7),
        prop::collection::vec(0u8..5, 7),
    );
    let outcomes = prop::collection::vec((0u8..6, any::<bool>(), 0..SPAN_MIN / 2), 0..4);
    (prop::collection::vec(visitor, 1..4), outcomes).prop_map(|(vs, os)| {
        let mut events = Vec::new();
        for (i, (minutes, kinds)) in vs.into_iter().enumerate() {
            let v = format!("v{i}");
            for (k, m) in minutes.into_iter().enumerate() {
                let ts = T0 + 2 * m * MIN;
                let id = format!("{v}-{k}");
                events.push(match kinds[k] {
                    0 | 1 => page(&v, &id, ts),
                    2 => event("engaged", &v, &id, ts, r#","engaged_ms":5000"#),
                    3 => event("click", &v, &id, ts, r#","props":{"cta":"demo"}"#),
                    _ => identify(&v, &id, ts, if i % 2 == 0 { "l0" } else { "l1" }),
                });
            }
        }
        let outcomes = os
            .into_iter()
            .enumerate()
            .map(|(j, (who, customer, m))| {
                let kind = if customer {
                    OutcomeType::Customer
                } else {
                    OutcomeType::Qualified
                };
                let ts = T0 + (2 * m + 1) * MIN;
                let id = format!("o{j}");
                match who {
                    0..=3 => outcome(&id, ("visitor_id", &format!("v{who}")), kind, ts),
                    _ => outcome(&id, ("lead_id", &format!("l{}", who - 4)), kind, ts),
                }
            })
            .collect();
        Journey { events, outcomes }
    })
}

fn prop_opts(by_lead: bool) -> Options {
    Options {
        by: if by_lead { By::Lead } else { By::Visitor },
        ..opts(DAY, None)
    }
}

fn find<'a>(rows: &'a [Row], like: &Row) -> Option<&'a Row> {
    rows.iter().find(|r| {
        (r.kind, &r.subject_id, r.decision_ts) == (like.kind, &like.subject_id, like.decision_ts)
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, .. ProptestConfig::default() })]

    /// Whatever happens after a row's window, the row is the same.
    #[test]
    fn later_records_never_change_a_row(
        j in journey(),
        by_lead in any::<bool>(),
        pick in any::<prop::sample::Index>(),
        extra in prop::collection::vec((0u8..4, 0u8..3, 0..SPAN_MIN), 1..5),
    ) {
        let o = prop_opts(by_lead);
        let base = build(&j.events, &j.outcomes, &o);
        prop_assume!(!base.rows.is_empty());
        let row = &base.rows[pick.index(base.rows.len())];
        let after = row.decision_ts + DAY;
        let (mut events, mut outcomes) = (j.events.clone(), j.outcomes.clone());
        for (n, (who, what, m)) in extra.into_iter().enumerate() {
            let ts = after + 1 + 2 * m * MIN;
            let v = format!("v{who}");
            match what {
                0 => events.push(page(&v, &format!("late-{n}"), ts)),
                1 => events.push(identify(&v, &format!("late-{n}"), ts, "l0")),
                _ => outcomes.push(won_by_lead(&format!("late-{n}"), "l1", ts)),
            }
            outcomes.push(won_by_visitor(&format!("late-v-{n}"), &v, ts + 2 * DAY));
        }
        let later = build(&events, &outcomes, &o);
        prop_assert_eq!(find(&later.rows, row), Some(row));
    }

    /// A positive row is the same without any event at or after its outcome.
    #[test]
    fn events_after_a_positive_never_change_it(j in journey(), by_lead in any::<bool>()) {
        let o = prop_opts(by_lead);
        let base = build(&j.events, &j.outcomes, &o);
        for row in base.rows.iter().filter(|r| r.label() == 1) {
            let t = row.outcome_ts.unwrap();
            let kept: Vec<Event> = j.events.iter().filter(|e| e.ts < t).cloned().collect();
            let cut = build(&kept, &j.outcomes, &o);
            prop_assert_eq!(find(&cut.rows, row), Some(row));
        }
    }

    /// Line order and repeated lines do not matter, nor does sharding.
    #[test]
    fn order_copies_and_shards_do_not_matter(
        j in journey(),
        by_lead in any::<bool>(),
        seed in any::<u64>(),
        n in 2u64..5,
    ) {
        let o = prop_opts(by_lead);
        let base = build(&j.events, &j.outcomes, &o);
        // Shuffle (a small LCG on the seed) and repeat some lines.
        let mut rng = seed | 1;
        let mut next = move |m: usize| {
            rng = rng.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            (rng >> 33) as usize % m.max(1)
        };
        let mut events = j.events.clone();
        for k in 0..events.len() / 2 + 1 {
            let i = next(j.events.len());
            events.push(j.events[(i + k) % j.events.len()].clone());
        }
        let mut outcomes = j.outcomes.clone();
        outcomes.extend(j.outcomes.iter().take(2).cloned());
        for i in (1..events.len()).rev() {
            events.swap(i, next(i + 1));
        }
        for i in (1..outcomes.len()).rev() {
            outcomes.swap(i, next(i + 1));
        }
        let shuffled = build(&events, &outcomes, &o);
        prop_assert_eq!(&shuffled.rows, &base.rows);

        let mut union: Vec<Row> = Vec::new();
        for i in 0..n {
            let so = Options { shard: Some(Shard::new(i, n).unwrap()), ..o };
            let part = build(&events, &outcomes, &so);
            prop_assert!(part.rows.iter().all(|r| Shard::new(i, n).unwrap().keeps(&r.subject_id)));
            union.extend(part.rows);
        }
        union.sort_by(|a, b| (a.decision_ts, a.kind, &a.subject_id).cmp(&(b.decision_ts, b.kind, &b.subject_id)));
        prop_assert_eq!(&union, &base.rows);
    }
}

// ---- the command line --------------------------------------------------------------------

const SAMPLE: &str = "tests/fixtures/sample_events.ndjson";
const OUTCOMES: &str = "tests/fixtures/sample_outcomes.ndjson";

/// A fresh directory with the sample journeys minus their one broken line (line 9).
fn sample_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("leadscore-dataset-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let good: String = std::fs::read_to_string(root().join(SAMPLE))
        .unwrap()
        .lines()
        .filter(|l| !l.contains(r#""id":"broken""#))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(dir.join("events.ndjson"), good).unwrap();
    dir
}

fn dataset_cli(events: &Path, outcomes: &str, extra: &[&str]) -> (String, serde_json::Value) {
    let mut args = vec![
        "dataset",
        "--model",
        "models/default",
        "--events",
        events.to_str().unwrap(),
        "--outcomes",
        outcomes,
        "--label",
        "customer",
        "--out",
        "-",
    ];
    args.extend(extra);
    let out = leadscore(&args);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let summary = serde_json::from_str(text(&out.stderr).trim()).unwrap();
    (text(&out.stdout), summary)
}

#[test]
fn cli_builds_the_sample_set_from_files_or_gzip_directories() {
    let dir = sample_dir("cli");
    let (csv, summary) = dataset_cli(&dir.join("events.ndjson"), OUTCOMES, &[]);
    let lines: Vec<&str> = csv.lines().collect();
    let names = SCORER.features().names().join(",");
    assert_eq!(
        lines[0],
        format!("subject_kind,subject_id,decision_ts,outcome_ts,label,{names}")
    );
    // v-hot (lead-42 since its identify) won two days after its last event; v-cold and v-warm
    // have no outcome and less than 90 days of observation since: censored.
    assert_eq!(lines.len(), 2, "{csv}");
    assert!(
        lines[1].starts_with("visitor,v-hot,1763900300000,1764072000000,1,"),
        "{}",
        lines[1]
    );
    assert_eq!(summary["subjects"], 3);
    assert_eq!(summary["positives"], 1);
    assert_eq!(summary["censored"], 2);
    assert_eq!(summary["events_read"], 24);
    assert_eq!(
        summary["duplicates_dropped"], 2,
        "one event line, one outcome line"
    );
    assert_eq!(summary["outcomes_of_other_types"], 1);
    assert_eq!(summary["outcomes_unmatched"], 1, "lead-99");
    assert_eq!(summary["as_of"], 1_764_072_000_000i64);
    assert!(summary["events_per_second"].as_f64().unwrap() > 0.0);

    // The same log as a directory tree of gzip and plain objects, split mid-journey: the same
    // bytes out (files are read in path order), to a file as to stdout.
    let logs = dir.join("logs");
    let text_in = std::fs::read_to_string(dir.join("events.ndjson")).unwrap();
    let (first, second) = text_in.split_at(text_in.len() / 2);
    let first_end = first.rfind('\n').unwrap() + 1;
    let (a, b) = text_in.split_at(first_end);
    assert!(!second.is_empty());
    std::fs::create_dir_all(logs.join("events/dt=2025-11-23")).unwrap();
    let gz = std::fs::File::create(logs.join("events/dt=2025-11-23/0001.ndjson.gz")).unwrap();
    let mut enc = flate2::write::GzEncoder::new(gz, flate2::Compression::default());
    enc.write_all(a.as_bytes()).unwrap();
    enc.finish().unwrap();
    std::fs::write(logs.join("events/dt=2025-11-23/0002.ndjson"), b).unwrap();
    std::fs::write(logs.join("events/dt=2025-11-23/notes.txt"), "not a log").unwrap();
    let out_file = dir.join("set.csv");
    let out = leadscore(&[
        "dataset",
        "--model",
        "models/default",
        "--events",
        logs.join("events").to_str().unwrap(),
        "--outcomes",
        OUTCOMES,
        "--label",
        "won",
        "--out",
        out_file.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(std::fs::read_to_string(&out_file).unwrap(), csv);

    // By lead, as of 2027, one-day window: v-hot before its identify (two episodes: the first a
    // negative, the second censored by the identify), lead-42 from it on (a negative: the win
    // came two days later); v-cold and v-warm observed.
    let (csv, summary) = dataset_cli(
        &dir.join("events.ndjson"),
        OUTCOMES,
        &["--by", "lead", "--window", "1d", "--as-of", "2027-01-01"],
    );
    let keys: Vec<String> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').take(5).collect::<Vec<_>>().join(","))
        .collect();
    assert_eq!(
        keys,
        [
            "visitor,v-hot,1763640840000,,0",
            "visitor,v-cold,1763900025000,,0",
            "lead,lead-42,1763900300000,,0",
            "visitor,v-warm,1763900320000,,0",
        ]
    );
    assert_eq!(summary["censored"], 1);
    assert_eq!(summary["subjects"], 4);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn cli_names_the_file_and_line_of_a_bad_line_and_writes_nothing() {
    let dir = sample_dir("bad");
    let out_file = dir.join("set.csv");
    let args = |strict: &'static str| {
        [
            "dataset",
            "--model",
            "models/default",
            "--events",
            SAMPLE,
            "--outcomes",
            OUTCOMES,
            "--label",
            "customer",
            "--out",
            out_file.to_str().unwrap(),
            strict,
        ]
    };
    // By default a bad line is named, skipped and counted; the rest is built.
    let out = leadscore(&args("--window=90d"));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(
        err.contains("tests/fixtures/sample_events.ndjson:9: invalid event: invalid type")
            && err.contains("(skipped)"),
        "{err}"
    );
    let summary: serde_json::Value =
        serde_json::from_str(err.lines().last().unwrap_or_default()).unwrap();
    assert_eq!(summary["lines_rejected"], 1);
    std::fs::remove_file(&out_file).unwrap();
    // --strict: the first bad line stops the run, and nothing is written.
    let out = leadscore(&args("--strict"));
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains("tests/fixtures/sample_events.ndjson:9: invalid event: invalid type"),
        "{err}"
    );
    assert!(!out_file.exists());
    // Outcomes are checked as strictly; so are the options.
    let bad = dir.join("outcomes.ndjson");
    std::fs::write(
        &bad,
        "{\"id\":\"o\",\"visitor_id\":\"v\",\"type\":\"sale\",\"ts\":1764000000000}\n",
    )
    .unwrap();
    let events = dir.join("events.ndjson");
    for (outcomes, extra, want) in [
        (
            bad.to_str().unwrap(),
            "--window=90d",
            "outcomes.ndjson:1: invalid outcome: unknown variant `sale`",
        ),
        (OUTCOMES, "--window=0d", "window \"0d\""),
        (OUTCOMES, "--shard=3/3", "shard 3/3"),
        (OUTCOMES, "--as-of=tomorrow", "as-of \"tomorrow\""),
        (
            SAMPLE,
            "--window=90d",
            "sample_events.ndjson:1: invalid outcome",
        ),
    ] {
        let out = leadscore(&[
            "dataset",
            "--model",
            "models/default",
            "--events",
            events.to_str().unwrap(),
            "--outcomes",
            outcomes,
            "--label",
            "customer",
            "--out",
            "-",
            extra,
            "--strict",
        ]);
        assert_eq!(out.status.code(), Some(2), "{want}");
        let err = text(&out.stderr);
        assert!(err.contains(want), "{want}: {err}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A visitor with one episode, no outcome and its window observed gets the row `leadscore
/// features` computes for it: the same engine, the same number text.
#[test]
fn cli_rows_match_leadscore_features_for_one_episode_visitors() {
    let dir = sample_dir("features");
    let events = dir.join("events.ndjson");
    let none = dir.join("no-outcomes.ndjson");
    std::fs::write(&none, "").unwrap();
    let (csv, summary) = dataset_cli(&events, none.to_str().unwrap(), &["--as-of", "2030-01-01"]);
    assert_eq!(summary["negatives"], 3);
    let out = leadscore(&[
        "features",
        "--model",
        "models/default",
        "--events",
        events.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let features = text(&out.stdout);
    let by_id: std::collections::HashMap<&str, &str> = features
        .lines()
        .skip(1)
        .map(|l| l.split_once(',').unwrap())
        .collect();
    assert_eq!(by_id.len(), 3);
    for line in csv.lines().skip(1) {
        let cols: Vec<&str> = line.splitn(6, ',').collect();
        assert_eq!(cols[4], "0");
        assert_eq!(cols[5], by_id[cols[1]], "{}", cols[1]);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn cli_takes_the_cards_rows_unless_a_flag_says_otherwise() {
    let dir = sample_dir("rows");
    let events = dir.join("events.ndjson");
    let card = std::fs::read_to_string(root().join("models/default/card.json")).unwrap();
    assert!(card.contains(r#""decisions": "episodes""#));
    let every_event = dir.join("card.json");
    std::fs::write(
        &every_event,
        card.replace(r#""decisions": "episodes""#, r#""decisions": "events""#),
    )
    .unwrap();
    let run = |model: &str, extra: &[&str]| {
        let mut args = vec![
            "dataset",
            "--model",
            model,
            "--events",
            events.to_str().unwrap(),
            "--outcomes",
            OUTCOMES,
            "--label",
            "customer",
            "--out",
            "-",
        ];
        args.extend(extra);
        leadscore(&args)
    };
    let rows = |out: std::process::Output| -> u64 {
        assert!(out.status.success(), "{}", text(&out.stderr));
        let summary: serde_json::Value = serde_json::from_str(text(&out.stderr).trim()).unwrap();
        summary["rows"].as_u64().unwrap()
    };
    let episodes = rows(run("models/default", &[]));
    let card_path = every_event.to_str().unwrap();
    assert!(
        rows(run(card_path, &[])) > episodes,
        "the card's `rows` say events"
    );
    assert_eq!(rows(run(card_path, &["--decisions", "episodes"])), episodes);
    for (extra, needle) in [
        (&["--decisions", "served"][..], "give --scores"),
        (&["--scores", OUTCOMES][..], "only with --decisions served"),
        (&["--by", "team"][..], "expected visitor, lead or account"),
        (
            &["--decisions", "weekly"][..],
            "expected episodes, events, served",
        ),
    ] {
        let out = run("models/default", extra);
        assert!(!out.status.success(), "{extra:?}");
        assert!(
            text(&out.stderr).contains(needle),
            "{extra:?}: {}",
            text(&out.stderr)
        );
    }
}
