//! Visitor state: a compact aggregate of everything a visitor did, updated one event at a time.
//!
//! It is what the worker keeps per visitor (a Durable Object) and the browser keeps in local storage,
//! so it is bounded whatever the number of events (≤ 1 KB serialized, see the size test) and
//! (de)serializes with `postcard` in microseconds. Everything a feature needs is accumulated here;
//! nothing is recomputed from raw events, which are not kept.
//!
//! Rules:
//! - **Idempotency**: the ids of the last [`DEDUP_WINDOW`] events are kept; an event whose id is
//!   among them is a [`Outcome::Duplicate`]. Once an id is evicted, every event at or before the
//!   evicted event's time is refused as [`Outcome::Stale`] (it may be a replay), so a replayed batch of
//!   any size counts once. The reorder window is therefore the last 16 events.
//! - **Order**: aggregates are sums, counts and maxima, so events inside the window may arrive in any
//!   order. An event older than the current session (by more than the inactivity timeout) counts
//!   toward the visitor's totals but not the current session.
//! - **Clock**: with a receive time, a client time more than [`MAX_FUTURE_MS`] ahead or
//!   [`MAX_AGE_MS`] behind is clamped to that bound.
//! - **Sessions**: a new session starts when the event's activity start (`ts − engaged_ms` for
//!   engagement events, `ts` otherwise) is more than the site's timeout after the last activity.

use serde::{Deserialize, Serialize};

use crate::event::{Event, EventType, Value};
use crate::features::{channel, useragent};
use crate::site::{Site, MAX_CLASSES, MAX_STATS};

/// Event ids remembered for de-duplication.
pub const DEDUP_WINDOW: usize = 16;
/// Largest accepted clock lead of a client over the receiver.
pub const MAX_FUTURE_MS: i64 = 2 * 60_000;
/// Oldest accepted client time relative to the receiver (offline queues replay up to a week).
pub const MAX_AGE_MS: i64 = 7 * 86_400_000;
/// Most traits kept per visitor (the oldest written is evicted).
pub const MAX_TRAITS: usize = 6;
/// Longest trait key / string value kept.
pub const MAX_TRAIT_LEN: usize = 32;
/// Most distinct engagement half-lives a model may ask for.
pub const MAX_HALF_LIVES: usize = 2;
/// Current state format version (first field of the serialization).
pub const STATE_VERSION: u8 = 1;

/// What applying an event did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The event was counted.
    Applied,
    /// The same id was applied before: nothing changed.
    Duplicate,
    /// Older than the de-duplication window: refused (may be a replay), nothing changed.
    Stale,
}

/// Everything the state update needs besides the event: the site and the decay half-lives.
#[derive(Debug, Clone)]
pub struct StateConfig {
    /// Compiled site tables.
    pub site: Site,
    /// Half-lives (seconds) of the engagement-velocity accumulators, in the order features refer to them.
    pub half_lives: Vec<f64>,
}

/// Per-session aggregates.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Session {
    /// Session start, client ms.
    pub start: i64,
    /// Local offset (minutes) at the session start.
    pub tz: i16,
    /// Page views per page class.
    pub views: Vec<u32>,
    /// Engaged ms per page class (f64 so sums of fractional ms are exact enough to be reproducible).
    pub engaged_ms: Vec<f64>,
    /// Sum of each page statistic over the page views that have stats.
    pub stat_sums: Vec<f64>,
    /// Page views that have stats.
    pub stat_views: u32,
    /// Page-view index (1-based) at which each class was first reached; 0 = never.
    pub first_view: Vec<u16>,
    /// Page-view index at the first form submit; 0 = never.
    pub first_submit: u16,
    /// Landing channel code.
    pub channel: u8,
    /// Class of the page being viewed (engagement events without a path go to it).
    pub current_class: u8,
    /// Common counters.
    pub counts: Counts,
    /// The client could not keep a persistent visitor id in this session.
    pub id_unknown: bool,
}

/// Counters kept both per session and per visitor.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Counts {
    /// Page views.
    pub pages: u32,
    /// Forms started.
    pub forms_started: u16,
    /// Forms submitted.
    pub forms_submitted: u16,
    /// Clicks on marked calls to action.
    pub cta_clicks: u16,
    /// Scroll events.
    pub scrolls: u16,
    /// Sum of scroll depths (percent).
    pub scroll_sum: f32,
    /// Deepest scroll (percent).
    pub scroll_max: f32,
    /// Bitmask of channels seen.
    pub channels: u32,
}

/// The compact per-visitor aggregate.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct VisitorState {
    /// Format version.
    pub version: u8,
    /// First event time (client ms, after clamping); 0 = no event yet.
    pub first_ts: i64,
    /// Latest event time.
    pub last_ts: i64,
    /// Latest activity time (session continuity).
    pub last_activity: i64,
    /// Number of sessions.
    pub sessions: u32,
    /// Visitor-wide counters.
    pub total: Counts,
    /// Page views per class, all sessions.
    pub views: Vec<u32>,
    /// Engaged ms per class, all sessions.
    pub engaged_ms: Vec<f64>,
    /// First-touch channel code (of the first session).
    pub first_channel: u8,
    /// OS, browser and device family codes of the latest user agent.
    pub ua: (u8, u8, u8),
    /// Decayed engaged-seconds accumulators, one per configured half-life, valid at `decay_ts`.
    pub decayed: Vec<f64>,
    /// Time the accumulators refer to.
    pub decay_ts: i64,
    /// The current session.
    pub session: Session,
    /// Hashes of recent event ids (little-endian bytes: fixed 8 bytes serialized, not a 10-byte varint).
    pub recent_ids: Vec<[u8; 8]>,
    /// Times of the events in `recent_ids`.
    pub recent_ts: Vec<i64>,
    /// Latest time of an evicted id: events at or before it are stale.
    pub stale_before: i64,
    /// Lead id from `identify`.
    pub lead_id: Option<String>,
    /// Identify traits, oldest written first.
    pub traits: Vec<(String, TraitValue)>,
}

/// A stored trait value: [`Value`] with an explicit tag, because postcard cannot read untagged enums.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum TraitValue {
    /// true/false.
    Bool(bool),
    /// A number.
    Num(f64),
    /// A string (truncated to [`MAX_TRAIT_LEN`] bytes).
    Str(String),
}

impl TraitValue {
    /// The event-side value.
    pub fn to_value(&self) -> Value {
        match self {
            TraitValue::Bool(b) => Value::Bool(*b),
            TraitValue::Num(n) => Value::Num(*n),
            TraitValue::Str(s) => Value::Str(s.clone()),
        }
    }
}

/// Errors restoring a serialized state.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// Bytes are not a state.
    #[error("invalid visitor state: {0}")]
    Decode(String),
    /// Written by an unknown format version.
    #[error("visitor state version {0} is not supported (expected {STATE_VERSION})")]
    Version(u8),
    /// Decoded, but inconsistent with the site it is used with (different class count…).
    #[error("visitor state does not fit this model's site tables: {0}")]
    Shape(String),
}

/// 64-bit FNV-1a: stable across builds and platforms, unlike `std`'s hasher, because hashes persist.
fn fnv1a(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

impl VisitorState {
    /// An empty state shaped for a configuration.
    pub fn new(cfg: &StateConfig) -> VisitorState {
        let n = cfg.site.n_classes();
        VisitorState {
            version: STATE_VERSION,
            views: vec![0; n],
            engaged_ms: vec![0.0; n],
            decayed: vec![0.0; cfg.half_lives.len()],
            session: Session::empty(n, cfg.site.n_stats()),
            ..VisitorState::default()
        }
    }

    /// Whether any event has been applied.
    pub fn is_empty(&self) -> bool {
        self.first_ts == 0
    }

    /// Applies one validated event. `now` is the receive time (ms) where there is one, for clamping.
    pub fn apply(&mut self, event: &Event, cfg: &StateConfig, now: Option<i64>) -> Outcome {
        let mut ts = event.ts;
        if let Some(now) = now {
            ts = ts.clamp(
                now.saturating_sub(MAX_AGE_MS),
                now.saturating_add(MAX_FUTURE_MS),
            );
        }
        let id = fnv1a(&event.id).to_le_bytes();
        if self.recent_ids.contains(&id) {
            return Outcome::Duplicate;
        }
        if !self.is_empty() && ts <= self.stale_before {
            return Outcome::Stale;
        }
        self.remember(id, ts);

        let engaged = match event.kind {
            EventType::Engaged | EventType::PageEnd => event.engaged_ms.unwrap_or(0.0),
            _ => 0.0,
        };
        let activity = ts - engaged as i64;
        let timeout = cfg.site.session_timeout_ms();
        // Which session does the event belong to?
        let in_session = if self.is_empty() || activity > self.last_activity + timeout {
            self.start_session(ts, event.tz_offset.unwrap_or(cfg.site.tz_offset()), cfg);
            true
        } else {
            ts >= self.session.start - timeout
        };
        if self.is_empty() {
            self.first_ts = ts;
        }
        if in_session && ts < self.session.start {
            self.session.start = ts;
        }
        self.first_ts = self.first_ts.min(ts);
        self.last_ts = self.last_ts.max(ts);
        self.last_activity = self.last_activity.max(ts);

        if let Some(ua) = &event.ua {
            self.ua = useragent::parse(ua);
        }
        let session = &mut self.session;
        match event.kind {
            EventType::Page => {
                let path = event.page_path().unwrap_or("/");
                let class = cfg.site.class_of(path);
                let c = usize::from(class);
                self.total.pages += 1;
                self.views[c] += 1;
                if in_session {
                    session.counts.pages += 1;
                    session.views[c] += 1;
                    session.current_class = class;
                    if session.first_view[c] == 0 {
                        session.first_view[c] = sat16(session.counts.pages);
                    }
                    if let Some(stats) = cfg.site.stats_of(path) {
                        for (s, v) in session.stat_sums.iter_mut().zip(stats) {
                            *s += v;
                        }
                        session.stat_views += 1;
                    }
                    if matches!(event.prop("id_persistent"), Some(Value::Bool(false))) {
                        session.id_unknown = true;
                    }
                    if session.counts.pages == 1 {
                        let ch = channel::classify(event.url.as_deref(), event.referrer.as_deref());
                        session.channel = ch;
                        session.counts.channels |= 1 << ch;
                        if self.sessions == 1 {
                            self.first_channel = ch;
                        }
                        self.total.channels |= 1 << ch;
                    }
                }
            }
            EventType::Engaged | EventType::PageEnd => {
                let class = match event.page_path() {
                    Some(p) => cfg.site.class_of(p),
                    None => session.current_class,
                };
                let c = usize::from(class);
                self.engaged_ms[c] += engaged;
                if in_session {
                    session.engaged_ms[c] += engaged;
                }
                self.add_decayed(engaged / 1000.0, ts, cfg);
            }
            EventType::Scroll => {
                let depth = event
                    .prop("depth")
                    .and_then(Value::as_f64)
                    .unwrap_or(0.0)
                    .clamp(0.0, 100.0) as f32;
                self.total.scroll(depth);
                if in_session {
                    session.counts.scroll(depth);
                }
            }
            EventType::Click => {
                if event.prop("cta").is_some() {
                    self.total.cta_clicks = self.total.cta_clicks.saturating_add(1);
                    if in_session {
                        session.counts.cta_clicks = session.counts.cta_clicks.saturating_add(1);
                    }
                }
            }
            EventType::FormStart => {
                self.total.forms_started = self.total.forms_started.saturating_add(1);
                if in_session {
                    session.counts.forms_started = session.counts.forms_started.saturating_add(1);
                }
            }
            EventType::FormSubmit => {
                self.total.forms_submitted = self.total.forms_submitted.saturating_add(1);
                if in_session {
                    session.counts.forms_submitted =
                        session.counts.forms_submitted.saturating_add(1);
                    if session.first_submit == 0 {
                        session.first_submit = sat16(session.counts.pages.max(1));
                    }
                }
            }
            EventType::Identify => {
                if let Some(lead) = &event.lead_id {
                    self.lead_id = Some(lead.clone());
                }
                for (k, v) in &event.traits {
                    self.set_trait(k, v);
                }
            }
            EventType::Custom => {}
        }
        Outcome::Applied
    }

    fn start_session(&mut self, ts: i64, tz: i32, cfg: &StateConfig) {
        self.sessions += 1;
        self.session = Session::empty(cfg.site.n_classes(), cfg.site.n_stats());
        self.session.start = ts;
        self.session.tz = tz as i16;
    }

    fn remember(&mut self, id: [u8; 8], ts: i64) {
        if self.recent_ids.len() == DEDUP_WINDOW {
            // Evict the oldest by time, so the stale bound only ever covers the oldest events.
            let (i, &old) = self
                .recent_ts
                .iter()
                .enumerate()
                .min_by_key(|(_, &t)| t)
                .unwrap_or((0, &ts));
            self.stale_before = self.stale_before.max(old);
            self.recent_ids.remove(i);
            self.recent_ts.remove(i);
        }
        self.recent_ids.push(id);
        self.recent_ts.push(ts);
    }

    fn add_decayed(&mut self, seconds: f64, ts: i64, cfg: &StateConfig) {
        if seconds <= 0.0 {
            return;
        }
        for (acc, hl) in self.decayed.iter_mut().zip(&cfg.half_lives) {
            if ts >= self.decay_ts {
                *acc = *acc * decay(ts - self.decay_ts, *hl) + seconds;
            } else {
                *acc += seconds * decay(self.decay_ts - ts, *hl);
            }
        }
        self.decay_ts = self.decay_ts.max(ts);
    }

    /// Decayed engaged seconds for accumulator `i`, as of the visitor's latest event.
    pub fn velocity(&self, i: usize, cfg: &StateConfig) -> f64 {
        match (self.decayed.get(i), cfg.half_lives.get(i)) {
            (Some(acc), Some(hl)) => acc * decay(self.last_ts - self.decay_ts, *hl),
            _ => 0.0,
        }
    }

    fn set_trait(&mut self, key: &str, value: &Value) {
        let key: String = truncate(key, MAX_TRAIT_LEN);
        let value = match value {
            Value::Str(s) => TraitValue::Str(truncate(s, MAX_TRAIT_LEN)),
            Value::Num(n) => TraitValue::Num(*n),
            Value::Bool(b) => TraitValue::Bool(*b),
        };
        self.traits.retain(|(k, _)| *k != key);
        if self.traits.len() == MAX_TRAITS {
            self.traits.remove(0);
        }
        self.traits.push((key, value));
    }

    /// A trait by name.
    pub fn trait_value(&self, key: &str) -> Option<Value> {
        self.traits
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.to_value())
    }

    /// Compact binary form (postcard) for storage.
    pub fn to_bytes(&self) -> Vec<u8> {
        // Serializing plain data into a Vec cannot fail.
        postcard::to_allocvec(self).unwrap_or_default()
    }

    /// Restores a state written by [`VisitorState::to_bytes`], checking it fits the configuration.
    pub fn from_bytes(bytes: &[u8], cfg: &StateConfig) -> Result<VisitorState, StateError> {
        match bytes.first() {
            Some(&STATE_VERSION) => {}
            Some(&v) => return Err(StateError::Version(v)),
            None => return Err(StateError::Decode("empty".into())),
        }
        let s: VisitorState =
            postcard::from_bytes(bytes).map_err(|e| StateError::Decode(e.to_string()))?;
        let n = cfg.site.n_classes();
        let k = cfg.site.n_stats();
        let ok = s.views.len() == n
            && s.engaged_ms.len() == n
            && s.session.views.len() == n
            && s.session.engaged_ms.len() == n
            && s.session.first_view.len() == n
            && s.session.stat_sums.len() == k
            && s.decayed.len() == cfg.half_lives.len()
            && usize::from(s.session.current_class) < n.max(1)
            && s.recent_ids.len() == s.recent_ts.len()
            && s.recent_ids.len() <= DEDUP_WINDOW
            && s.traits.len() <= MAX_TRAITS
            && n <= MAX_CLASSES
            && k <= MAX_STATS
            && usize::from(s.first_channel) < channel::CHANNELS.len()
            && usize::from(s.session.channel) < channel::CHANNELS.len();
        if !ok {
            return Err(StateError::Shape(format!(
                "expected {n} page classes, {k} stats, {} half-lives",
                cfg.half_lives.len()
            )));
        }
        Ok(s)
    }
}

impl Session {
    fn empty(classes: usize, stats: usize) -> Session {
        Session {
            views: vec![0; classes],
            engaged_ms: vec![0.0; classes],
            stat_sums: vec![0.0; stats],
            first_view: vec![0; classes],
            ..Session::default()
        }
    }
}

impl Counts {
    fn scroll(&mut self, depth: f32) {
        self.scrolls = self.scrolls.saturating_add(1);
        self.scroll_sum += depth;
        self.scroll_max = self.scroll_max.max(depth);
    }
}

fn decay(dt_ms: i64, half_life_s: f64) -> f64 {
    (-(dt_ms as f64) / 1000.0 / half_life_s * std::f64::consts::LN_2).exp()
}

fn sat16(n: u32) -> u16 {
    u16::try_from(n).unwrap_or(u16::MAX)
}

fn truncate(s: &str, max: usize) -> String {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::site::SiteTables;

    pub(crate) fn cfg() -> StateConfig {
        let t: SiteTables = serde_json::from_str(
            r#"{"page_rules":[{"prefix":"/pricing","tags":["product","pricing"]},
                {"prefix":"/products","tags":["product"]},{"prefix":"/demo","tags":["demo"]}],
                "page_stats":{"columns":["bounce_rate","exit_rate"],"pages":{"/pricing":[0.1,0.3],"/products/a":[0.2,0.5]}}}"#,
        )
        .unwrap();
        StateConfig {
            site: Site::new(t).unwrap(),
            half_lives: vec![600.0],
        }
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
            assert_eq!(s.apply(e, &c, None), Outcome::Applied);
        }
        let before = s.clone();
        for e in &events {
            assert_ne!(s.apply(e, &c, None), Outcome::Applied, "{}", e.id);
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
            let (key, val) = ("k".repeat(60), "x".repeat(500));
            let t = format!(
                r#","lead_id":"{}","traits":{{"{i}{key}":"{val}"}}"#,
                &long[..64]
            );
            s.apply(
                &ev(&format!("i{i}"), "identify", T0 + i * 10 + 5, &t),
                &c,
                None,
            );
        }
        let bytes = s.to_bytes();
        assert!(bytes.len() <= 1024, "{} bytes", bytes.len());
        assert_eq!(VisitorState::from_bytes(&bytes, &c).unwrap(), s);
        assert!(VisitorState::from_bytes(&bytes[..bytes.len() / 2], &c).is_err());
        assert!(matches!(
            VisitorState::from_bytes(&[9, 0], &c),
            Err(StateError::Version(9))
        ));
    }
}
