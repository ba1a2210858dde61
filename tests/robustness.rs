//! Property tests: no input makes the parser, the state update, the state decoder or a merge of
//! two states panic, and the state stays within its 1 KB budget whatever arrives.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use leadscore::event::Event;
use leadscore::site::{Site, SiteTables};
use leadscore::state::{StateConfig, VisitorState, MAX_MERGED};
use proptest::prelude::*;

/// A site with the most page classes and stats allowed, so sizes are worst case.
fn cfg() -> StateConfig {
    let rules: Vec<String> = (0..leadscore::site::MAX_CLASSES - 1)
        .map(|i| format!(r#"{{"prefix":"/c{i}","tags":["t{i}"]}}"#))
        .collect();
    let text = format!(
        r#"{{"page_rules":[{}],"page_stats":{{"columns":["a","b","c","d"],"pages":{{"/c1":[1,2,3,4]}}}}}}"#,
        rules.join(",")
    );
    let site = Site::new(serde_json::from_str::<SiteTables>(&text).unwrap()).unwrap();
    assert_eq!(site.n_classes(), leadscore::site::MAX_CLASSES);
    StateConfig::pages_only(site, vec![60.0, 3600.0, 86_400.0, 604_800.0])
}

fn any_value() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("true".to_string()),
        any::<f64>().prop_map(|f| if f.is_finite() {
            f.to_string()
        } else {
            "0".into()
        }),
        "[a-zA-Z0-9 ]{0,600}".prop_map(|s| format!("{s:?}")),
    ]
}

fn any_event() -> impl Strategy<Value = String> {
    let kind = prop_oneof![
        Just("page"),
        Just("engaged"),
        Just("page_end"),
        Just("scroll"),
        Just("click"),
        Just("form_start"),
        Just("form_submit"),
        Just("identify"),
        Just("custom"),
        Just("bogus"),
    ];
    (
        "[a-z0-9]{0,140}",
        kind,
        prop_oneof![
            Just(1_750_000_000_000i64),
            any::<i64>(),
            1_700_000_000_000i64..1_800_000_000_000
        ],
        "/c[0-9]{1,2}(/[a-z]{0,5})?",
        prop::option::of(-1e9f64..1e9),
        prop::collection::vec(("[a-z_]{1,70}", any_value()), 0..40),
        prop::option::of("[ -~]{0,600}"),
    )
        .prop_map(|(id, kind, ts, path, engaged, map, ua)| {
            let map: Vec<String> = map.iter().map(|(k, v)| format!("{k:?}:{v}")).collect();
            let map = map.join(",");
            let mut s = format!(
                r#"{{"id":"{id}","type":"{kind}","ts":{ts},"visitor_id":"v","path":"{path}""#
            );
            if let Some(e) = engaged {
                s += &format!(r#","engaged_ms":{e}"#);
            }
            if let Some(ua) = ua {
                s += &format!(r#","ua":{ua:?}"#);
            }
            if kind == "identify" {
                s += &format!(r#","lead_id":"{id}","traits":{{{map}}}"#);
            } else {
                s += &format!(r#","props":{{{map}}}"#);
            }
            s + "}"
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, .. ProptestConfig::default() })]

    #[test]
    fn parser_never_panics_on_arbitrary_text(text in "\\PC{0,300}") {
        let _ = Event::parse(&text);
    }

    #[test]
    fn parser_never_panics_on_mangled_events(ev in any_event(), cut in 0usize..2000, byte in any::<u8>()) {
        let _ = Event::parse(&ev);
        let mut bytes = ev.into_bytes();
        if !bytes.is_empty() {
            let i = cut % bytes.len();
            bytes[i] = byte;
        }
        if let Ok(text) = String::from_utf8(bytes) {
            let _ = Event::parse(&text);
        }
    }

    #[test]
    fn state_is_bounded_and_round_trips(events in prop::collection::vec(any_event(), 1..300), now in prop::option::of(1_700_000_000_000i64..1_800_000_000_000)) {
        let cfg = cfg();
        let mut s = VisitorState::new(&cfg);
        for text in &events {
            if let Ok(e) = Event::parse(text) {
                s.apply(&e, &cfg, now);
            }
        }
        let bytes = s.to_bytes();
        prop_assert!(bytes.len() <= 1024, "{} bytes", bytes.len());
        let back = VisitorState::from_bytes(&bytes, &cfg).unwrap();
        prop_assert_eq!(back, s);
    }

    #[test]
    fn state_decoder_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..1200)) {
        let cfg = cfg();
        let _ = VisitorState::from_bytes(&bytes, &cfg);
        let mut b = bytes.clone();
        if !b.is_empty() { b[0] = leadscore::state::STATE_VERSION; }
        let _ = VisitorState::from_bytes(&b, &cfg);
    }

    #[test]
    fn merging_any_states_never_panics_and_stays_bounded(
        a in prop::collection::vec(any_event(), 0..120),
        b in prop::collection::vec(any_event(), 0..120),
        now in prop::option::of(1_700_000_000_000i64..1_800_000_000_000),
        junk in prop::collection::vec(any::<u8>(), 0..1200),
        ids in prop::collection::vec("[a-c]{1,2}", 1..12),
    ) {
        let cfg = cfg();
        let state = |events: &[String]| {
            let mut s = VisitorState::new(&cfg);
            for text in events {
                if let Ok(e) = Event::parse(text) {
                    s.apply(&e, &cfg, now);
                }
            }
            s
        };
        let (sa, sb) = (state(&a), state(&b));
        let mut decoded = junk.clone();
        if !decoded.is_empty() { decoded[0] = leadscore::state::STATE_VERSION; }
        let odd = VisitorState::from_bytes(&decoded, &cfg).ok();
        // Any decodable state (its strings are not bounded like applied events'): no panic.
        if let Some(odd) = &odd {
            let mut x = sa.clone();
            let _ = x.merge("self", "odd", odd, &cfg);
            let mut y = odd.clone();
            let _ = y.merge("odd", "self", &sa, &cfg);
        }
        // States built from events, merged in every order and repeatedly: bounded.
        let mut s = sa.clone();
        for (i, id) in ids.iter().enumerate() {
            let other = if i % 2 == 0 { &sb } else { &sa };
            let _ = s.merge("self", id, other, &cfg);
            let mut o = other.clone();
            let _ = o.merge(id, "self", &s, &cfg);
        }
        prop_assert!(s.merged.len() <= MAX_MERGED);
        let bytes = s.to_bytes();
        prop_assert!(bytes.len() <= 1024, "{} bytes", bytes.len());
        prop_assert_eq!(VisitorState::from_bytes(&bytes, &cfg).unwrap(), s);
    }
}

/// The largest card the engine takes: every page class and stat, the most half-lives, signals
/// (each with two decays) and traits (64-byte names), driven to its worst: every count high,
/// every recent time kept, every trait at its longest value, as many devices merged as allowed.
/// The state stays within the budget the configuration announces.
#[test]
fn the_largest_card_stays_within_its_budget() {
    use leadscore::features::{FeatureSet, FeatureSpec};
    use leadscore::state::signal::MAX_SIGNALS;
    use leadscore::state::MAX_TRAITS;
    let site = cfg().site;
    let mut specs: Vec<serde_json::Value> = (0..MAX_SIGNALS)
        .flat_map(|i| {
            [1.0, 30.0].map(|hl| {
                serde_json::json!({"name": format!("s{i}_{hl}"), "kind": "event_decayed",
                    "params": {"event": format!("touch_{i}"), "half_life_days": hl}})
            })
        })
        .collect();
    let trait_name = |i: usize| format!("{i:02}{}", "t".repeat(62));
    for i in 0..MAX_TRAITS {
        specs.push(serde_json::json!({"name": format!("t{i}"), "kind": "trait", "params": {"name": trait_name(i)}}));
    }
    let specs: Vec<FeatureSpec> = serde_json::from_value(serde_json::Value::Array(specs)).unwrap();
    let set = FeatureSet::new(&specs, &site).unwrap();
    let mut c = set.state_config(site);
    c.half_lives = cfg().half_lives;
    let value = "v".repeat(leadscore::event::limits::MAX_TRAIT_VALUE_LEN);
    let traits: Vec<String> = (0..MAX_TRAITS)
        .map(|i| format!("{:?}:{value:?}", trait_name(i)))
        .collect();
    let state = |v: &str, t0: i64| {
        let mut s = VisitorState::new(&c);
        for k in 0..3000i64 {
            let ts = t0 + k * 61_000;
            let text = match k % 4 {
                0 => format!(
                    r#"{{"id":"{v}{k}","type":"page","ts":{ts},"visitor_id":"{v}","path":"/c{}","ua":"Mozilla/5.0 (Windows NT 10.0) Chrome/120.0"}}"#,
                    k % 16
                ),
                1 => format!(
                    r#"{{"id":"{v}{k}","type":"engaged","ts":{ts},"visitor_id":"{v}","engaged_ms":1234.5678}}"#
                ),
                2 => format!(
                    r#"{{"id":"{v}{k}","type":"custom","name":"touch_{}","ts":{ts},"visitor_id":"{v}"}}"#,
                    k % 12
                ),
                _ => format!(
                    r#"{{"id":"{v}{k}","type":"identify","ts":{ts},"visitor_id":"{v}","lead_id":"{}","traits":{{{}}}}}"#,
                    "l".repeat(64),
                    traits.join(",")
                ),
            };
            s.apply(&Event::parse(&text).unwrap(), &c, None);
        }
        s
    };
    let mut s = state("me", 1_750_000_000_000);
    for k in 0..MAX_MERGED {
        let other = state(
            &format!("o{k}"),
            1_760_000_000_000 + k as i64 * 1_000_000_000,
        );
        s.merge("me", &format!("o{k}"), &other, &c).unwrap();
    }
    let bytes = s.to_bytes();
    assert!(
        bytes.len() <= c.budget_bytes(),
        "{} bytes, budget {}",
        bytes.len(),
        c.budget_bytes()
    );
    assert_eq!(VisitorState::from_bytes(&bytes, &c).unwrap(), s);
}
