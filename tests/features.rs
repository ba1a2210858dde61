//! Every feature kind on hand-made event sequences, through the public state + feature API.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use leadscore::event::Event;
use leadscore::features::{Context, FeatureSet, FeatureSpec};
use leadscore::site::{Site, SiteTables};
use leadscore::state::{StateConfig, VisitorState};

const SITE: &str = r#"{
  "timezone_offset_minutes": 60,
  "page_rules": [
    {"prefix": "/pricing", "tags": ["product", "pricing"]},
    {"prefix": "/products", "tags": ["product"]},
    {"prefix": "/demo", "tags": ["demo"]},
    {"prefix": "/blog", "tags": ["info"]}
  ],
  "page_stats": {"columns": ["bounce_rate", "page_value"],
                 "pages": {"/pricing": [0.1, 40.0], "/products/a": [0.3, 10.0], "/blog/x": [0.5, 0.0]}},
  "special_days": [{"month": 2, "day": 14}, {"month": 5, "weekday": 7, "nth": 2}]
}"#;

fn features(decls: &str) -> (FeatureSet, StateConfig) {
    let specs: Vec<FeatureSpec> = serde_json::from_str(decls).unwrap();
    let site = Site::new(serde_json::from_str::<SiteTables>(SITE).unwrap()).unwrap();
    let set = FeatureSet::new(&specs, &site).unwrap();
    let cfg = set.state_config(site);
    (set, cfg)
}

/// Applies NDJSON-ish events (one per string) to a fresh state.
fn replay(decls: &str, events: &[&str]) -> (FeatureSet, StateConfig, VisitorState) {
    let (set, cfg) = features(decls);
    let mut s = VisitorState::new(&cfg);
    for (i, e) in events.iter().enumerate() {
        let text = format!(r#"{{"id":"e{i}","visitor_id":"v",{e}}}"#);
        let ev = Event::parse(&text).unwrap_or_else(|err| panic!("{text}: {err}"));
        s.apply(&ev, &cfg, None);
    }
    (set, cfg, s)
}

/// The features after applying NDJSON-ish events (one per string).
fn run(decls: &str, events: &[&str]) -> Vec<f32> {
    let (set, cfg, s) = replay(decls, events);
    let mut out = vec![0.0; set.len()];
    set.compute(&s, &cfg, &mut out);
    out
}

// 2026-02-07 10:00 UTC = 11:00 local (UTC+1), a Saturday, 7 days before Valentine's.
const T: i64 = 1_770_458_400_000;

fn ts(offset_s: i64) -> i64 {
    T + offset_s * 1000
}

#[test]
fn page_views_engaged_time_and_stats() {
    let decls = r#"[
      {"name":"product_pages","kind":"page_views","params":{"categories":["product"]}},
      {"name":"pricing_pages","kind":"page_views","params":{"categories":["pricing"]}},
      {"name":"product_or_pricing","kind":"page_views","params":{"categories":["product","pricing"]}},
      {"name":"product_secs","kind":"engaged_seconds","params":{"categories":["product"]}},
      {"name":"bounce","kind":"page_stat_mean","params":{"stat":"bounce_rate"}},
      {"name":"value","kind":"page_stat_mean","params":{"stat":"page_value"}},
      {"name":"pricing_seen","kind":"visited_category","params":{"category":"pricing"}},
      {"name":"demo_seen","kind":"visited_category","params":{"category":"demo"}}
    ]"#;
    let e = [
        format!(r#""type":"page","ts":{},"path":"/products/a""#, ts(0)),
        format!(
            r#""type":"page_end","ts":{},"path":"/products/a","engaged_ms":1500.25"#,
            ts(2)
        ),
        format!(r#""type":"page","ts":{},"path":"/pricing""#, ts(3)),
        format!(
            r#""type":"engaged","ts":{},"path":"/pricing","engaged_ms":1000"#,
            ts(4)
        ),
        format!(
            r#""type":"page_end","ts":{},"path":"/pricing","engaged_ms":500"#,
            ts(5)
        ),
        format!(r#""type":"page","ts":{},"path":"/unknown""#, ts(6)),
    ];
    let refs: Vec<&str> = e.iter().map(String::as_str).collect();
    let f = run(decls, &refs);
    assert_eq!(f, vec![2.0, 1.0, 2.0, 3.00025, 0.2, 25.0, 1.0, 0.0]);
}

#[test]
fn forms_clicks_scroll_sessions() {
    let decls = r#"[
      {"name":"form_started","kind":"form_started"},
      {"name":"form_submitted","kind":"form_submitted"},
      {"name":"cta","kind":"cta_clicks","params":{"scope":"visitor"}},
      {"name":"scroll_mean","kind":"scroll_depth","params":{"agg":"mean"}},
      {"name":"scroll_max","kind":"scroll_depth","params":{"agg":"max","scope":"visitor"}},
      {"name":"sessions","kind":"sessions"},
      {"name":"pps","kind":"pages_per_session"},
      {"name":"vt","kind":"visitor_type","params":{"codes":{"new":0,"returning":1,"unknown":2}}},
      {"name":"pages_all","kind":"page_views","params":{"categories":["product","info","demo","pricing","other"],"scope":"visitor"}}
    ]"#;
    let e = [
        format!(r#""type":"page","ts":{},"path":"/blog/x""#, ts(0)),
        format!(r#""type":"scroll","ts":{},"props":{{"depth":90}}"#, ts(1)),
        format!(
            r#""type":"click","ts":{},"props":{{"cta":"pricing"}}"#,
            ts(2)
        ),
        // Next session, 2 hours later.
        format!(r#""type":"page","ts":{},"path":"/demo""#, ts(7200)),
        format!(r#""type":"page","ts":{},"path":"/pricing""#, ts(7210)),
        format!(
            r#""type":"scroll","ts":{},"props":{{"depth":20}}"#,
            ts(7211)
        ),
        format!(
            r#""type":"scroll","ts":{},"props":{{"depth":40}}"#,
            ts(7212)
        ),
        format!(
            r#""type":"form_start","ts":{},"props":{{"form":"demo"}}"#,
            ts(7220)
        ),
        format!(
            r#""type":"click","ts":{},"props":{{"cta":"demo"}}"#,
            ts(7221)
        ),
        format!(r#""type":"click","ts":{}"#, ts(7222)), // not a marked CTA
    ];
    let refs: Vec<&str> = e.iter().map(String::as_str).collect();
    let f = run(decls, &refs);
    assert_eq!(f, vec![1.0, 0.0, 2.0, 30.0, 90.0, 2.0, 1.5, 1.0, 3.0]);
    // The first session alone: a new visitor.
    let f = run(decls, &refs[..3]);
    assert_eq!(f[5..8], [1.0, 1.0, 0.0]);
    // A page saying the id is not persistent makes the type unknown.
    let e = format!(
        r#""type":"page","ts":{},"path":"/","props":{{"id_persistent":false}}"#,
        ts(0)
    );
    assert_eq!(run(decls, &[&e])[7], 2.0);
}

#[test]
fn calendar_features_use_local_time() {
    let decls = r#"[
      {"name":"weekend","kind":"weekend"},
      {"name":"hour","kind":"hour_of_day"},
      {"name":"special","kind":"special_day"}
    ]"#;
    let e = format!(r#""type":"page","ts":{},"path":"/""#, ts(0));
    assert_eq!(run(decls, &[&e]), vec![1.0, 11.0, 1.0]);
    // Same instant seen from UTC−11: Friday 23:00 on Feb 6, 8 days before → 0.8.
    let e = format!(
        r#""type":"page","ts":{},"path":"/","tz_offset":-660"#,
        ts(0)
    );
    assert_eq!(run(decls, &[&e]), vec![0.0, 23.0, 0.8]);
}

#[test]
fn channels_and_user_agents() {
    let decls = r#"[
      {"name":"first","kind":"channel","params":{"touch":"first","scope":"visitor","codes":{"organic_google":2,"email":8,"direct":1},"default":0}},
      {"name":"last","kind":"channel","params":{"touch":"last","codes":{"organic_google":2,"email":8,"direct":1}}},
      {"name":"n","kind":"unique_channels","params":{"scope":"visitor"}},
      {"name":"os","kind":"os","params":{"codes":{"windows":2,"ios":3}}},
      {"name":"browser","kind":"browser","params":{"codes":{"chrome":2,"safari":1}}},
      {"name":"device","kind":"device","params":{"codes":{"desktop":0,"mobile":1,"tablet":2}}}
    ]"#;
    let win = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";
    let iphone = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1";
    let e = [
        format!(
            r#""type":"page","ts":{},"url":"https://s.example/","referrer":"https://www.google.com/","ua":"{win}""#,
            ts(0)
        ),
        format!(
            r#""type":"page","ts":{},"url":"https://s.example/x","referrer":"https://s.example/","ua":"{win}""#,
            ts(10)
        ),
        format!(
            r#""type":"page","ts":{},"url":"https://s.example/?utm_medium=email","ua":"{iphone}""#,
            ts(9000)
        ),
        format!(
            r#""type":"page","ts":{},"url":"https://s.example/b","referrer":"https://www.bing.com/""#,
            ts(9010)
        ),
    ];
    let refs: Vec<&str> = e.iter().map(String::as_str).collect();
    assert_eq!(run(decls, &refs[..2]), vec![2.0, 2.0, 1.0, 2.0, 2.0, 0.0]);
    assert_eq!(run(decls, &refs), vec![2.0, 8.0, 2.0, 3.0, 1.0, 1.0]);
}

#[test]
fn velocity_quick_conversion_and_traits() {
    let decls = r#"[
      {"name":"velocity","kind":"engagement_velocity","params":{"half_life_seconds":60}},
      {"name":"quick","kind":"quick_conversion","params":{"categories":["pricing","demo"],"within_pages":2}},
      {"name":"employees","kind":"trait","params":{"name":"company_size","default":-1}},
      {"name":"industry","kind":"trait","params":{"name":"industry","codes":{"software":1,"retail":2},"default":0}}
    ]"#;
    let e = [
        format!(r#""type":"page","ts":{},"path":"/blog/x""#, ts(0)),
        format!(
            r#""type":"page_end","ts":{},"path":"/blog/x","engaged_ms":10000"#,
            ts(10)
        ),
        format!(r#""type":"page","ts":{},"path":"/products/a""#, ts(11)),
        format!(r#""type":"page","ts":{},"path":"/pricing""#, ts(12)),
        format!(
            r#""type":"page_end","ts":{},"path":"/pricing","engaged_ms":10000"#,
            ts(70)
        ),
        format!(
            r#""type":"identify","ts":{},"lead_id":"L1","traits":{{"company_size":"250","industry":"Software"}}"#,
            ts(70)
        ),
    ];
    let refs: Vec<&str> = e.iter().map(String::as_str).collect();
    let f = run(decls, &refs);
    // 10 s decayed over 60 s (one half-life) + 10 s fresh.
    assert!((f[0] - 15.0).abs() < 1e-4, "{}", f[0]);
    assert_eq!(f[1..], [0.0, 250.0, 1.0]);
    let f = run(decls, &refs[..4]);
    assert_eq!(f[1..], [0.0, -1.0, 0.0]);
    // Pricing as the 2nd page: quick.
    let mut quick = refs.clone();
    quick.remove(2);
    assert_eq!(run(decls, &quick)[1], 1.0);
}

/// A B2B journey: a touch and an identify before the first page, webinars over weeks, a demo
/// request after the pricing page. Days are exact (the events are whole days apart).
#[test]
fn signals_and_time_in_the_funnel() {
    let decls = r#"[
      {"name":"webinars","kind":"event_count","params":{"event":"webinar_attended"}},
      {"name":"webinars_30d","kind":"event_count","params":{"event":"webinar_attended","window_days":30}},
      {"name":"webinars_session","kind":"event_count","params":{"event":"webinar_attended","scope":"session"}},
      {"name":"inbound_emails","kind":"event_count","params":{"event":"email","where":{"direction":"inbound"}}},
      {"name":"webinar_heat","kind":"event_decayed","params":{"event":"webinar_attended","half_life_days":7}},
      {"name":"days_since_webinar","kind":"days_since_event","params":{"event":"webinar_attended"}},
      {"name":"days_since_first_webinar","kind":"days_since_event","params":{"event":"webinar_attended","which":"first"}},
      {"name":"pricing_7d","kind":"event_count","params":{"page":"pricing","window_days":7}},
      {"name":"demo_requests","kind":"event_count","params":{"type":"form_submit","where":{"form":"demo"}}},
      {"name":"pricing_then_demo","kind":"event_sequence","params":{"first":{"page":"pricing"},"then":{"type":"form_submit","where":{"form":"demo"}},"within_days":14}},
      {"name":"demo_then_pricing","kind":"event_sequence","params":{"first":{"type":"form_submit","where":{"form":"demo"}},"then":{"page":"pricing"},"within_days":14}},
      {"name":"days_in_funnel","kind":"days_since","params":{"from":"first_seen"}},
      {"name":"days_since_identify","kind":"days_since","params":{"from":"identify"}},
      {"name":"days_since_visit","kind":"days_since","params":{"from":"last_visit"}},
      {"name":"sessions","kind":"sessions"},
      {"name":"first_channel","kind":"channel","params":{"touch":"first","scope":"visitor","codes":{"direct":1,"email":2}}}
    ]"#;
    let d = |days: i64| ts(days * 86_400);
    let e = [
        format!(r#""type":"identify","ts":{},"lead_id":"L1""#, d(0)),
        format!(
            r#""type":"custom","name":"email","ts":{},"props":{{"direction":"outbound"}}"#,
            d(0)
        ),
        format!(
            r#""type":"custom","name":"email","ts":{},"props":{{"direction":"Inbound"}}"#,
            d(1)
        ),
        format!(r#""type":"custom","name":"webinar_attended","ts":{}"#, d(2)),
        format!(
            r#""type":"page","ts":{},"url":"https://s.example/pricing?utm_medium=email""#,
            d(20)
        ),
        format!(
            r#""type":"custom","name":"webinar_attended","ts":{}"#,
            d(30)
        ),
        format!(r#""type":"page","ts":{},"path":"/pricing""#, d(40)),
        format!(
            r#""type":"form_submit","ts":{},"path":"/demo","props":{{"form":"demo"}}"#,
            d(45)
        ),
    ];
    let refs: Vec<&str> = e.iter().map(String::as_str).collect();
    let f = run(decls, &refs);
    let heat = 0.5f32.powf(43.0 / 7.0) + 0.5f32.powf(15.0 / 7.0);
    assert!((f[4] - heat).abs() < 1e-6, "{} vs {heat}", f[4]);
    let want = [
        2.0, 1.0, 0.0, 1.0, f[4], 15.0, 43.0, 1.0, 1.0, 1.0, 0.0, 45.0, 45.0, 0.0, 3.0, 2.0,
    ];
    assert_eq!(f, want);
    // Before anything but touches: no session, no visit, no channel but the default.
    let f = run(decls, &refs[..4]);
    assert_eq!(f[14], 0.0);
    assert!(f[13].is_nan());
    assert_eq!(f[15], 0.0);
    // As of a later time (a snapshot): windows and "days since" move, counts do not.
    let (set, cfg, s) = replay(decls, &refs);
    let mut later = vec![0.0; set.len()];
    set.compute_at(&s, &cfg, d(75), &mut later);
    assert_eq!(later[..4], [2.0, 0.0, 0.0, 1.0]);
    assert_eq!(
        (later[5], later[7], later[11], later[13]),
        (45.0, 0.0, 75.0, 30.0)
    );
}

#[test]
fn colleagues_are_read_from_the_context_as_of_the_decision() {
    let decls = r#"[
      {"name":"colleagues","kind":"colleagues"},
      {"name":"colleagues_14d","kind":"colleagues","params":{"window_days":14}},
      {"name":"sessions","kind":"sessions"}
    ]"#;
    let (set, cfg, s) = replay(
        decls,
        &[&format!(r#""type":"page","ts":{},"path":"/""#, ts(0))],
    );
    assert!(set.reads_account());
    let day = 86_400_000;
    let mut x = vec![0.0; set.len()];
    // No account: missing, never 0 (the browser has no context).
    set.compute(&s, &cfg, &mut x);
    assert!(x[0].is_nan() && x[1].is_nan());
    assert_eq!(x[2], 1.0);
    // Colleagues active 1 and 20 days ago, and one active after the decision (not seen).
    let times = [ts(0) - day, ts(0) - 20 * day, ts(0) + day];
    let ctx = Context {
        colleagues: Some(&times),
    };
    set.compute_in(&s, &cfg, ts(0), ctx, &mut x);
    assert_eq!(x[..2], [2.0, 1.0]);
    // Exactly 14 days ago still counts; an account with no one else is 0.
    let edge = [ts(0) - 14 * day];
    set.compute_in(
        &s,
        &cfg,
        ts(0),
        Context {
            colleagues: Some(&edge),
        },
        &mut x,
    );
    assert_eq!(x[..2], [1.0, 1.0]);
    set.compute_in(
        &s,
        &cfg,
        ts(0),
        Context {
            colleagues: Some(&[]),
        },
        &mut x,
    );
    assert_eq!(x[..2], [0.0, 0.0]);
    let (plain, _) = features(r#"[{"name":"sessions","kind":"sessions"}]"#);
    assert!(!plain.reads_account());
}

#[test]
fn bad_declarations_are_refused() {
    let site = Site::new(serde_json::from_str::<SiteTables>(SITE).unwrap()).unwrap();
    for (decl, needle) in [
        (r#"[{"name":"a","kind":"nope"}]"#, "unknown kind"),
        (
            r#"[{"name":"a","kind":"page_views","params":{"categories":["nope"]}}]"#,
            "not in the site",
        ),
        (
            r#"[{"name":"a","kind":"page_stat_mean","params":{"stat":"x"}}]"#,
            "not a page_stats column",
        ),
        (
            r#"[{"name":"a","kind":"weekend","params":{"x":1}}]"#,
            "unknown parameter",
        ),
        (
            r#"[{"name":"a","kind":"os","params":{"codes":{"amiga":1}}}]"#,
            "unknown value",
        ),
        (
            r#"[{"name":"a","kind":"weekend"},{"name":"a","kind":"weekend"}]"#,
            "duplicate",
        ),
        (
            r#"[{"name":"a","kind":"scroll_depth","params":{"agg":"median"}}]"#,
            "agg",
        ),
        (
            r#"[{"name":"a","kind":"engagement_velocity","params":{"half_life_seconds":-1}}]"#,
            "half_life",
        ),
        (r#"[{"name":"a","kind":"event_count"}]"#, "exactly one"),
        (
            r#"[{"name":"a","kind":"colleagues","params":{"window_days":0}}]"#,
            "window_days",
        ),
        (
            r#"[{"name":"a","kind":"colleagues","params":{"scope":"session"}}]"#,
            "unknown parameter",
        ),
        (
            r#"[{"name":"a","kind":"event_count","params":{"event":"x","page":"pricing"}}]"#,
            "exactly one",
        ),
        (
            r#"[{"name":"a","kind":"event_count","params":{"event":"x","scope":"session","window_days":3}}]"#,
            "not both",
        ),
        (
            r#"[{"name":"a","kind":"event_count","params":{"event":"x","window_days":0}}]"#,
            "window_days",
        ),
        (
            r#"[{"name":"a","kind":"event_count","params":{"page":"nope"}}]"#,
            "not in the site",
        ),
        (
            r#"[{"name":"a","kind":"event_count","params":{"type":"custom"}}]"#,
            "cannot be",
        ),
        (
            r#"[{"name":"a","kind":"event_count","params":{"type":"pageview"}}]"#,
            "event type",
        ),
        (
            r#"[{"name":"a","kind":"event_count","params":{"event":"x","where":{"k":[1]}}}]"#,
            "where.k",
        ),
        (
            r#"[{"name":"a","kind":"event_count","params":{"event":"x","colour":"red"}}]"#,
            "unknown parameter",
        ),
        (
            r#"[{"name":"a","kind":"event_decayed","params":{"event":"x"}}]"#,
            "half_life_days",
        ),
        (
            r#"[{"name":"a","kind":"days_since","params":{"from":"birth"}}]"#,
            "`from`",
        ),
        (
            r#"[{"name":"a","kind":"event_sequence","params":{"first":{"event":"x"},"within_days":3}}]"#,
            "`then`",
        ),
        (r#"[{"name":"a","kind":"weekend","group":"who"}]"#, "group"),
    ] {
        let specs: Vec<FeatureSpec> = serde_json::from_str(decl).unwrap();
        let e = FeatureSet::new(&specs, &site).unwrap_err().to_string();
        assert!(e.contains(needle), "{decl}: {e}");
    }
}
