//! Visitor state through its public face: replays, order, sessions, clamping, size and codec, and
//! merging (one lead, several devices) as the features see it — a merge must give the features
//! one visitor sending both event streams would have.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use leadscore::event::{Event, EventType, Value};
use leadscore::features::{FeatureSet, FeatureSpec};
use leadscore::site::{Site, SiteTables};
use leadscore::state::{
    Apply, Merge, StateConfig, StateError, VisitorState, DEDUP_WINDOW, MAX_AGE_MS, MAX_FUTURE_MS,
    MAX_MERGED,
};
use proptest::prelude::*;

fn cfg() -> StateConfig {
    let t: SiteTables = serde_json::from_str(
        r#"{"page_rules":[{"prefix":"/pricing","tags":["product","pricing"]},
            {"prefix":"/products","tags":["product"]},{"prefix":"/demo","tags":["demo"]}],
            "page_stats":{"columns":["bounce_rate","exit_rate"],"pages":{"/pricing":[0.1,0.3],"/products/a":[0.2,0.5]}}}"#,
    )
    .unwrap();
    let mut c = StateConfig::pages_only(Site::new(t).unwrap(), vec![600.0]);
    c.traits = ["size", "plan", "role"].map(String::from).to_vec();
    c
}

fn ev(id: &str, kind: &str, ts: i64, extra: &str) -> Event {
    Event::parse(&format!(
        r#"{{"id":"{id}","type":"{kind}","ts":{ts},"visitor_id":"v"{extra}}}"#
    ))
    .unwrap()
}

const T0: i64 = 1_750_000_000_000;

#[test]
fn replays_change_nothing() {
    let c = cfg();
    let events: Vec<Event> = (0..100)
        .map(|i| {
            ev(
                &format!("e{i}"),
                "page",
                T0 + i * 1000,
                r#","path":"/products/a""#,
            )
        })
        .collect();
    let mut s = VisitorState::new(&c);
    for e in &events {
        assert_eq!(s.apply(e, &c, None), Apply::Applied);
    }
    let before = s.clone();
    for e in &events {
        assert_ne!(s.apply(e, &c, None), Apply::Applied, "{}", e.id);
    }
    assert_eq!(s, before);
    assert_eq!(s.session.counts.pages, 100);
}

#[test]
fn order_inside_the_window_does_not_matter() {
    let c = cfg();
    let mut events = vec![
        ev(
            "a",
            "page",
            T0,
            r#","path":"/pricing","url":"https://s.example/pricing?utm_medium=email""#,
        ),
        ev(
            "b",
            "page_end",
            T0 + 5000,
            r#","path":"/pricing","engaged_ms":4000.5"#,
        ),
        ev("c", "page", T0 + 6000, r#","path":"/products/a""#),
        ev("d", "scroll", T0 + 7000, r#","props":{"depth":60}"#),
        ev(
            "e",
            "page_end",
            T0 + 9000,
            r#","path":"/products/a","engaged_ms":2500"#,
        ),
        ev("f", "form_submit", T0 + 9500, r#","props":{"form":"demo"}"#),
    ];
    let mut fwd = VisitorState::new(&c);
    for e in &events {
        fwd.apply(e, &c, None);
    }
    events.swap(1, 4);
    events.swap(0, 3);
    let mut mixed = VisitorState::new(&c);
    for e in &events {
        mixed.apply(e, &c, None);
    }
    assert_eq!(fwd.session.views, mixed.session.views);
    assert_eq!(fwd.session.engaged_ms, mixed.session.engaged_ms);
    assert_eq!(fwd.session.stat_sums, mixed.session.stat_sums);
    assert_eq!(fwd.session.start, mixed.session.start);
    assert_eq!(fwd.sessions, 1);
    assert_eq!(mixed.sessions, 1);
    assert!((fwd.velocity(0, &c) - mixed.velocity(0, &c)).abs() < 1e-9);
    assert_eq!(fwd.session.engaged_ms.iter().sum::<f64>(), 6500.5);
}

#[test]
fn sessions_split_on_inactivity_but_not_on_long_engagement() {
    let c = cfg();
    let mut s = VisitorState::new(&c);
    s.apply(&ev("a", "page", T0, r#","path":"/""#), &c, None);
    // 2 hours of engagement on one page ending now: same session.
    s.apply(
        &ev("b", "page_end", T0 + 7_200_000, r#","engaged_ms":7199000"#),
        &c,
        None,
    );
    assert_eq!(s.sessions, 1);
    s.apply(
        &ev(
            "c",
            "page",
            T0 + 7_200_000 + 31 * 60_000,
            r#","path":"/demo""#,
        ),
        &c,
        None,
    );
    assert_eq!(s.sessions, 2);
    assert_eq!(s.session.counts.pages, 1);
    assert_eq!(s.total.pages, 2);
    // A late event from the first session counts for the visitor only.
    s.apply(
        &ev("d", "page", T0 + 1000, r#","path":"/pricing""#),
        &c,
        None,
    );
    assert_eq!(s.session.counts.pages, 1);
    assert_eq!(s.total.pages, 3);
}

#[test]
fn clock_is_clamped_to_the_receive_time() {
    let c = cfg();
    let mut s = VisitorState::new(&c);
    let now = T0;
    s.apply(
        &ev("a", "page", T0 + 86_400_000, r#","path":"/""#),
        &c,
        Some(now),
    );
    assert_eq!(s.last_ts, now + MAX_FUTURE_MS);
    s.apply(
        &ev("b", "page", T0 - 30 * 86_400_000, r#","path":"/""#),
        &c,
        Some(now),
    );
    assert_eq!(s.first_ts, now - MAX_AGE_MS);
}

#[test]
fn stays_small_under_any_load() {
    let c = cfg();
    let mut s = VisitorState::new(&c);
    for i in 0..500 {
        let long = "x".repeat(200);
        s.apply(
            &ev(
                &format!("p{i}"),
                "page",
                T0 + i * 10,
                r#","path":"/pricing""#,
            ),
            &c,
            None,
        );
        // Declared traits at the longest value, and undeclared ones (dropped, counted).
        let val = "x".repeat(leadscore::event::limits::MAX_TRAIT_VALUE_LEN);
        let key = "k".repeat(60);
        let t = format!(
            r#","lead_id":"{}","traits":{{"size":"{val}","plan":"{val}","role":"{val}","{i}{key}":"{val}"}}"#,
            &long[..64]
        );
        s.apply(
            &ev(&format!("i{i}"), "identify", T0 + i * 10 + 5, &t),
            &c,
            None,
        );
    }
    assert_eq!(s.traits.len(), 3);
    assert_eq!(s.traits_dropped, 500);
    // … and after absorbing as many other visitors as allowed.
    for k in 0..MAX_MERGED {
        let mut o = VisitorState::new(&c);
        let t = r#","path":"/pricing","tz_offset":-600"#;
        o.apply(
            &ev(&format!("o{k}"), "page", T0 + 9_000 + k as i64, t),
            &c,
            None,
        );
        assert_eq!(
            s.merge("me", &format!("o{k}"), &o, &c).unwrap(),
            Merge::Merged
        );
    }
    let bytes = s.to_bytes();
    assert!(bytes.len() <= c.budget_bytes(), "{} bytes", bytes.len());
    assert_eq!(VisitorState::from_bytes(&bytes, &c).unwrap(), s);
    assert!(VisitorState::from_bytes(&bytes[..bytes.len() / 2], &c).is_err());
    assert!(matches!(
        VisitorState::from_bytes(&[9, 0], &c),
        Err(StateError::Version(9))
    ));
}

/// Every feature kind the test site can serve (no special days: the site has none).
const SPECS: &str = r#"[
  {"name":"pv","kind":"page_views","params":{"categories":["product"]}},
  {"name":"pv_v","kind":"page_views","params":{"categories":["product","demo"],"scope":"visitor"}},
  {"name":"es","kind":"engaged_seconds","params":{"categories":["product"]}},
  {"name":"es_v","kind":"engaged_seconds","params":{"categories":["pricing"],"scope":"visitor"}},
  {"name":"bounce","kind":"page_stat_mean","params":{"stat":"bounce_rate"}},
  {"name":"exit","kind":"page_stat_mean","params":{"stat":"exit_rate"}},
  {"name":"vd","kind":"visited_category","params":{"category":"demo","scope":"visitor"}},
  {"name":"fs","kind":"form_started"},
  {"name":"fsub","kind":"form_submitted","params":{"scope":"visitor"}},
  {"name":"cta","kind":"cta_clicks","params":{"scope":"visitor"}},
  {"name":"cta_s","kind":"cta_clicks"},
  {"name":"pps","kind":"pages_per_session"},
  {"name":"sessions","kind":"sessions"},
  {"name":"vt","kind":"visitor_type","params":{"codes":{"new":0,"returning":1,"unknown":2}}},
  {"name":"wk","kind":"weekend"},
  {"name":"hour","kind":"hour_of_day"},
  {"name":"ch_first","kind":"channel","params":{"touch":"first","scope":"visitor","codes":{"direct":1,"email":2,"organic_google":3}}},
  {"name":"ch_sess","kind":"channel","params":{"touch":"first","codes":{"direct":1,"email":2,"organic_google":3}}},
  {"name":"uch","kind":"unique_channels","params":{"scope":"visitor"}},
  {"name":"uch_s","kind":"unique_channels"},
  {"name":"os","kind":"os","params":{"codes":{"windows":1,"macos":2}}},
  {"name":"scroll_max","kind":"scroll_depth","params":{"agg":"max","scope":"visitor"}},
  {"name":"scroll_mean","kind":"scroll_depth","params":{"agg":"mean"}},
  {"name":"vel","kind":"engagement_velocity","params":{"half_life_seconds":600}},
  {"name":"qc","kind":"quick_conversion","params":{"categories":["demo"],"within_pages":3}},
  {"name":"size","kind":"trait","params":{"name":"size","default":-1}},
  {"name":"su","kind":"event_count","params":{"event":"signup"}},
  {"name":"su_s","kind":"event_count","params":{"event":"signup","scope":"session"}},
  {"name":"su_w","kind":"event_count","params":{"event":"signup","window_days":0.05}},
  {"name":"su_dec","kind":"event_decayed","params":{"event":"signup","half_life_days":0.01}},
  {"name":"su_since","kind":"days_since_event","params":{"event":"signup"}},
  {"name":"su_first","kind":"days_since_event","params":{"event":"signup","which":"first"}},
  {"name":"pr_w","kind":"event_count","params":{"page":"pricing","window_days":0.02}},
  {"name":"cta_demo","kind":"event_count","params":{"type":"click","where":{"cta":"demo"}}},
  {"name":"seq","kind":"event_sequence","params":{"first":{"page":"pricing"},"then":{"event":"signup"},"within_days":0.02}},
  {"name":"since_first","kind":"days_since","params":{"from":"first_seen"}},
  {"name":"since_id","kind":"days_since","params":{"from":"identify"}},
  {"name":"since_visit","kind":"days_since","params":{"from":"last_visit"}}
]"#;
/// Features whose merge is approximate when the visitors' events interleave in time (`su_s`:
/// whether a touch falls inside the web session depends on the interleaving).
const OVERLAP_APPROX: [&str; 4] = ["qc", "os", "size", "su_s"];

fn setup() -> (FeatureSet, StateConfig) {
    let c = cfg();
    let specs: Vec<FeatureSpec> = serde_json::from_str(SPECS).unwrap();
    let set = FeatureSet::new(&specs, &c.site).unwrap();
    assert_eq!(set.half_lives(), &c.half_lives[..]);
    assert_eq!(set.signals().len(), 3); // signup, pricing pages, demo clicks: shared by kinds
    let c = set.state_config(c.site);
    (set, c)
}

fn features(set: &FeatureSet, c: &StateConfig, s: &VisitorState) -> Vec<f32> {
    let mut out = vec![0.0; set.len()];
    set.compute(s, c, &mut out);
    out
}

fn assert_close(set: &FeatureSet, got: &[f32], want: &[f32], skip: &[&str]) {
    for ((name, g), w) in set.names().iter().zip(got).zip(want) {
        if skip.contains(&name.as_str()) {
            continue;
        }
        let tol = 1e-5 * w.abs().max(1.0);
        let both_missing = g.is_nan() && w.is_nan();
        assert!(
            both_missing || (g - w).abs() <= tol,
            "{name}: merged {g}, replayed {w}"
        );
    }
}

/// One generated event: (kind, path, seconds since the previous event, engaged ms, extra).
type Step = (u8, u8, u32, u32, u8);

fn step(max_gap_s: u32) -> impl Strategy<Value = Step> {
    (0u8..9, 0u8..5, 1..max_gap_s, 0u32..60_000, 0u8..100)
}

const PATHS: [&str; 5] = ["/", "/pricing", "/products/a", "/demo", "/blog"];
const UAS: [&str; 2] = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/120.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_1) AppleWebKit/605.1.15 Version/17.1 Safari/605.1.15",
];

/// Events of visitor `v` from `start`, in time order; the first is a page view.
fn events(v: &str, start: i64, steps: &[Step]) -> Vec<Event> {
    let mut ts = start;
    steps
        .iter()
        .enumerate()
        .map(|(i, &(k, p, gap, engaged, x))| {
            if i > 0 {
                ts += i64::from(gap) * 1000;
            }
            let path = PATHS[usize::from(p)];
            let kind = if i == 0 { 0 } else { k };
            let ua = if x % 7 == 0 {
                format!(r#","ua":"{}""#, UAS[usize::from(x % 2)])
            } else {
                String::new()
            };
            let extra = match kind {
                0 => {
                    let q = ["", "?utm_medium=email", "?gclid=x"][usize::from(x % 3)];
                    let r = if x % 5 == 0 {
                        r#","referrer":"https://www.google.com/""#
                    } else {
                        ""
                    };
                    format!(
                        r#","url":"https://s.example{path}{q}"{r},"tz_offset":{}"#,
                        i16::from(x % 3) * 60
                    )
                }
                1 | 2 => format!(
                    r#","path":"{path}","engaged_ms":{}"#,
                    engaged.min(gap * 1000)
                ),
                3 => format!(r#","props":{{"depth":{x}}}"#),
                4 => r#","props":{"cta":"demo"}"#.to_string(),
                7 => format!(r#","lead_id":"l@x","traits":{{"size":{x},"plan":"p{x}"}}"#),
                8 => r#","name":"signup""#.to_string(),
                _ => String::new(),
            };
            let kind = [
                "page",
                "engaged",
                "page_end",
                "scroll",
                "click",
                "form_start",
                "form_submit",
                "identify",
                "custom",
            ][usize::from(kind)];
            Event::parse(&format!(
                r#"{{"id":"{v}-{i}","type":"{kind}","ts":{ts},"visitor_id":"{v}"{extra}{ua}}}"#
            ))
            .unwrap()
        })
        .collect()
}

fn replay(c: &StateConfig, evs: &[&Event]) -> VisitorState {
    let mut s = VisitorState::new(c);
    for e in evs {
        s.apply(e, c, None);
    }
    s
}

/// Both merge directions and the replay of both streams in time order.
fn merged_and_replayed(
    c: &StateConfig,
    a: &[Event],
    b: &[Event],
) -> (VisitorState, VisitorState, VisitorState) {
    let sa = replay(c, &a.iter().collect::<Vec<_>>());
    let sb = replay(c, &b.iter().collect::<Vec<_>>());
    let mut all: Vec<&Event> = a.iter().chain(b).collect();
    all.sort_by_key(|e| e.ts);
    let one = replay(c, &all);
    let mut ab = sa.clone();
    assert_eq!(ab.merge("a", "b", &sb, c).unwrap(), Merge::Merged);
    let mut ba = sb.clone();
    assert_eq!(ba.merge("b", "a", &sa, c).unwrap(), Merge::Merged);
    (ab, ba, one)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Disjoint in time (B starts after A's last activity + the timeout): exact.
    #[test]
    fn disjoint_visitors_merge_like_one_replay(
        sa in prop::collection::vec(step(3000), 1..40),
        sb in prop::collection::vec(step(3000), 1..40),
        pause_s in 1_801i64..400_000,
    ) {
        let (set, c) = setup();
        let a = events("a", T0, &sa);
        let a_end = a.iter().map(|e| e.ts).max().unwrap();
        let b = events("b", a_end + pause_s * 1000, &sb);
        let (ab, ba, one) = merged_and_replayed(&c, &a, &b);
        let want = features(&set, &c, &one);
        assert_close(&set, &features(&set, &c, &ab), &want, &[]);
        assert_close(&set, &features(&set, &c, &ba), &want, &[]);
        prop_assert_eq!(ab.sessions, one.sessions);
        prop_assert_eq!(&ab.session.views, &one.session.views);
        prop_assert_eq!(&ab.views, &one.views);
        prop_assert_eq!(&ab.total, &one.total);
    }

    /// Two single-session visitors whose sessions overlap become one session: exact except
    /// for the first-reached page index and the user agent.
    #[test]
    fn overlapping_sessions_merge_into_one(
        sa in prop::collection::vec(step(1200), 1..30),
        sb in prop::collection::vec(step(1200), 1..30),
        offset_s in 0i64..3000,
    ) {
        let (set, c) = setup();
        let a = events("a", T0, &sa);
        let b = events("b", T0 + offset_s * 1000, &sb);
        let single = |evs: &[Event]| replay(&c, &evs.iter().collect::<Vec<_>>()).sessions == 1;
        prop_assume!(single(&a) && single(&b));
        // The last web activity (a custom event or an identify does not extend a session).
        let a_end = a
            .iter()
            .filter(|e| !matches!(e.kind, EventType::Custom | EventType::Identify))
            .map(|e| e.ts)
            .max()
            .unwrap();
        prop_assume!(b[0].ts <= a_end + c.site.session_timeout_ms());
        // Both sessions starting in the same millisecond leave "the first event" (its time zone:
        // the hour feature) undefined between the two streams.
        prop_assume!(b[0].ts != a[0].ts);
        let (ab, ba, one) = merged_and_replayed(&c, &a, &b);
        prop_assert_eq!(one.sessions, 1);
        let want = features(&set, &c, &one);
        assert_close(&set, &features(&set, &c, &ab), &want, &OVERLAP_APPROX);
        assert_close(&set, &features(&set, &c, &ba), &want, &OVERLAP_APPROX);
    }

    /// An empty state on either side changes nothing; merging twice counts once.
    #[test]
    fn empty_is_neutral_and_merging_is_idempotent(
        sa in prop::collection::vec(step(3000), 1..40),
        sb in prop::collection::vec(step(3000), 1..40),
    ) {
        let (set, c) = setup();
        let a = replay(&c, &events("a", T0, &sa).iter().collect::<Vec<_>>());
        let b = replay(&c, &events("b", T0 + 3_600_000, &sb).iter().collect::<Vec<_>>());
        let empty = VisitorState::new(&c);
        let mut x = a.clone();
        prop_assert_eq!(x.merge("a", "e", &empty, &c).unwrap(), Merge::Empty);
        prop_assert_eq!(&x, &a);
        let mut e = empty.clone();
        prop_assert_eq!(e.merge("e", "a", &a, &c).unwrap(), Merge::Merged);
        // Missing inputs (NaN) compare equal to each other.
        let bits = |v: Vec<f32>| v.iter().map(|x| if x.is_nan() { None } else { Some(x.to_bits()) }).collect::<Vec<_>>();
        prop_assert_eq!(bits(features(&set, &c, &e)), bits(features(&set, &c, &a)));
        // The same state but for what it remembers merging (and no stale bound of its own).
        prop_assert_eq!(VisitorState { merged: vec![], stale_before: a.stale_before, ..e }, a.clone());

        let mut ab = a.clone();
        prop_assert_eq!(ab.merge("a", "b", &b, &c).unwrap(), Merge::Merged);
        let once = ab.clone();
        prop_assert_eq!(ab.merge("a", "b", &b, &c).unwrap(), Merge::AlreadyMerged);
        prop_assert_eq!(ab.merge("a", "a", &b, &c).unwrap(), Merge::AlreadyMerged);
        prop_assert_eq!(&ab, &once);
        prop_assert!(ab.has_merged("b") && !ab.has_merged("a"));
        // A state that contains B already: B is not counted again through it either way.
        let mut z = replay(&c, &events("z", T0 + 9_000_000, &sb).iter().collect::<Vec<_>>());
        prop_assert_eq!(z.merge("z", "a", &ab, &c).unwrap(), Merge::Merged);
        let zab = z.clone();
        prop_assert_eq!(z.merge("z", "b", &b, &c).unwrap(), Merge::AlreadyMerged);
        prop_assert_eq!(z.merge("z", "a", &a, &c).unwrap(), Merge::AlreadyMerged);
        prop_assert_eq!(&z, &zab);
        let mut b2 = b.clone();
        prop_assert_eq!(b2.merge("b", "z", &z, &c).unwrap(), Merge::Overlap);
        prop_assert_eq!(&b2, &b);
        let mut a2 = a.clone();
        prop_assert_eq!(a2.merge("a", "z", &z, &c).unwrap(), Merge::Overlap);
    }
}

#[test]
fn bounded_sources_and_dedup_memory() {
    let c = cfg();
    let visitor = |v: &str, start: i64, n: i64| {
        let mut s = VisitorState::new(&c);
        for i in 0..n {
            s.apply(
                &ev(
                    &format!("{v}{i}"),
                    "page",
                    start + i * 1000,
                    r#","path":"/pricing""#,
                ),
                &c,
                None,
            );
        }
        s
    };
    let mut s = visitor("me", T0, 20);
    let own_ids = s.recent_ids.clone();
    let stale = s.stale_before;
    for k in 0..MAX_MERGED {
        let o = visitor(&format!("o{k}"), T0 + 10_000_000 * (k as i64 + 1), 20);
        assert_eq!(
            s.merge("me", &format!("o{k}"), &o, &c).unwrap(),
            Merge::Merged
        );
    }
    assert_eq!(s.merged.len(), MAX_MERGED);
    let extra = visitor("x", T0, 3);
    assert_eq!(s.merge("me", "x", &extra, &c).unwrap(), Merge::Full);
    // This visitor's own de-duplication is untouched: a replay of its events counts nothing.
    assert_eq!(s.recent_ids, own_ids);
    assert_eq!(s.stale_before, stale);
    assert_eq!(s.total.pages, 20 * (MAX_MERGED as u32 + 1));
    for i in 0..20 {
        let e = ev(
            &format!("me{i}"),
            "page",
            T0 + i * 1000,
            r#","path":"/pricing""#,
        );
        assert_ne!(s.apply(&e, &c, None), Apply::Applied);
    }
    // A small state takes the other's newest ids into its free slots.
    let mut small = visitor("s", T0, 3);
    let other = visitor("t", T0 + 5000, 20);
    small.merge("s", "t", &other, &c).unwrap();
    assert_eq!(small.recent_ids.len(), DEDUP_WINDOW);
    let e = ev("t19", "page", T0 + 5000 + 19_000, r#","path":"/pricing""#);
    assert_eq!(small.apply(&e, &c, None), Apply::Duplicate);
    // A shape mismatch is an error, not a panic.
    let mut bad = visitor("b", T0, 2);
    bad.views.pop();
    assert!(matches!(
        s.clone().merge("me", "b", &bad, &c),
        Err(StateError::Shape(_))
    ));
}

#[test]
fn traits_union_newer_wins_and_lead_id_kept() {
    let c = cfg();
    let mut old = VisitorState::new(&c);
    old.apply(
        &ev(
            "a",
            "identify",
            T0,
            r#","lead_id":"old","traits":{"size":10,"plan":"free"}"#,
        ),
        &c,
        None,
    );
    let mut new = VisitorState::new(&c);
    new.apply(
        &ev(
            "b",
            "identify",
            T0 + 1000,
            r#","traits":{"size":250,"role":"cto"}"#,
        ),
        &c,
        None,
    );
    let mut n = new.clone();
    n.merge("b", "a", &old, &c).unwrap();
    assert_eq!(n.trait_value("size"), Some(Value::Num(250.0)));
    assert_eq!(n.trait_value("plan"), Some(Value::Str("free".into())));
    assert_eq!(n.trait_value("role"), Some(Value::Str("cto".into())));
    assert_eq!(n.lead_id.as_deref(), Some("old"));
    let mut o = old.clone();
    o.merge("a", "b", &new, &c).unwrap();
    assert_eq!(o.trait_value("size"), Some(Value::Num(250.0)));
    assert_eq!(o.lead_id.as_deref(), Some("old"));
}

#[test]
fn reads_version_1_and_2_states() {
    let c = cfg();
    let mut s = VisitorState::new(&c);
    s.apply(&ev("a", "page", T0, r#","path":"/pricing""#), &c, None);
    let mut old = s.to_bytes();
    // Version 3 added three trailing fields, each empty here (one 0 byte): signals, identify
    // time, dropped traits.
    for _ in 0..3 {
        assert_eq!(old.pop(), Some(0));
    }
    old[0] = 2;
    assert_eq!(VisitorState::from_bytes(&old, &c).unwrap(), s);
    assert_eq!(old.pop(), Some(0)); // the empty `merged` list
    old[0] = 1;
    assert_eq!(VisitorState::from_bytes(&old, &c).unwrap(), s);
}

/// A state outlives a change of model: the signals both cards read keep their counts, the
/// others start from zero, and none is taken for another.
#[test]
fn signal_counts_follow_their_definition_across_cards() {
    let (set, c) = setup();
    let mut s = VisitorState::new(&c);
    s.apply(&ev("p", "page", T0, r#","path":"/pricing""#), &c, None);
    s.apply(
        &ev("s", "custom", T0 + 1000, r#","name":"signup""#),
        &c,
        None,
    );
    let bytes = s.to_bytes();
    let other: Vec<FeatureSpec> = serde_json::from_str(
        r#"[{"name":"w","kind":"event_count","params":{"event":"webinar"}},
            {"name":"su","kind":"event_count","params":{"event":"signup"}}]"#,
    )
    .unwrap();
    let set2 = FeatureSet::new(&other, &c.site).unwrap();
    let mut c2 = set2.state_config(c.site.clone());
    c2.half_lives.clone_from(&c.half_lives); // what a change of half-lives does is another rule
    let s2 = VisitorState::from_bytes(&bytes, &c2).unwrap();
    let mut out = vec![0.0; 2];
    set2.compute(&s2, &c2, &mut out);
    assert_eq!(out, vec![0.0, 1.0]);
    let back = VisitorState::from_bytes(&s2.to_bytes(), &c).unwrap();
    let f = features(&set, &c, &back);
    let su = set.names().iter().position(|n| n == "su").unwrap();
    let pr = set.names().iter().position(|n| n == "pr_w").unwrap();
    assert_eq!((f[su], f[pr]), (1.0, 0.0)); // the pricing signal was not in the other card
}
