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
//! - **Merging** ([`VisitorState::merge`]): when one lead turns out to be several visitors (devices),
//!   their states combine as if one visitor had sent both event streams. That is exact for every
//!   aggregate when no session of one visitor overlaps (within the timeout) a session of the other,
//!   except for the user agent (see the method's docs); overlapping current sessions combine into one.
//!   Each state remembers whose states it absorbed (at most [`MAX_MERGED`]) so a source merges once.

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
/// Most visitors whose states one state may absorb (directly or through other merged states).
pub const MAX_MERGED: usize = 8;
/// Current state format version (first field of the serialization). Version 1 (before
/// `merged`) is still read.
pub const STATE_VERSION: u8 = 2;

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

/// What [`VisitorState::merge`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Merge {
    /// The other state was counted into this one.
    Merged,
    /// The other visitor is this one or was merged before (directly or through another state):
    /// nothing changed.
    AlreadyMerged,
    /// The other state has no events: nothing changed (and nothing is remembered, so the visitor
    /// can still be merged once it has some).
    Empty,
    /// The other state already contains this visitor or one of this state's sources: counting it
    /// would count those twice, so nothing changed.
    Overlap,
    /// Remembering the other state's sources would exceed [`MAX_MERGED`]: nothing changed.
    Full,
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
    /// Hashes of the visitor ids whose states were merged into this one (see [`VisitorState::merge`]).
    pub merged: Vec<[u8; 8]>,
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
        let mut s: VisitorState = match bytes.first() {
            Some(&STATE_VERSION) => {
                postcard::from_bytes(bytes).map_err(|e| StateError::Decode(e.to_string()))?
            }
            // Version 1 lacks only the trailing `merged` list: an empty list is one 0 byte.
            Some(&1) => postcard::from_bytes(&[bytes, &[0]].concat())
                .map_err(|e| StateError::Decode(e.to_string()))?,
            Some(&v) => return Err(StateError::Version(v)),
            None => return Err(StateError::Decode("empty".into())),
        };
        s.version = STATE_VERSION;
        if !s.fits(cfg) {
            return Err(s.shape_error(cfg));
        }
        Ok(s)
    }

    fn shape_error(&self, cfg: &StateConfig) -> StateError {
        StateError::Shape(format!(
            "expected {} page classes, {} stats, {} half-lives",
            cfg.site.n_classes(),
            cfg.site.n_stats(),
            cfg.half_lives.len()
        ))
    }

    /// Whether the vectors have the configuration's shapes and the bounded lists their bounds.
    fn fits(&self, cfg: &StateConfig) -> bool {
        let s = self;
        let n = cfg.site.n_classes();
        let k = cfg.site.n_stats();
        s.views.len() == n
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
            && s.merged.len() <= MAX_MERGED
            && n <= MAX_CLASSES
            && k <= MAX_STATS
            && usize::from(s.first_channel) < channel::CHANNELS.len()
            && usize::from(s.session.channel) < channel::CHANNELS.len()
    }

    /// Whether `visitor_id`'s state was merged into this one (directly or through another state).
    pub fn has_merged(&self, visitor_id: &str) -> bool {
        self.merged.contains(&fnv1a(visitor_id).to_le_bytes())
    }

    /// Merges another visitor's state into this one, as if this visitor had also sent the other's
    /// events: how one lead's devices become one lead.
    ///
    /// `own_id` is this state's visitor id and `other_id` the other's. The other's id and the
    /// sources it absorbed itself are remembered (at most [`MAX_MERGED`]), so merging the same
    /// visitor again, or a state that already contains it, changes nothing ([`Merge`] says why).
    /// Later events of the other visitor are not followed: a state is an aggregate, so they could
    /// only be added by merging the other visitor's whole state again, counting the rest twice.
    ///
    /// How each aggregate combines ("exact": equal to replaying both event streams, in time
    /// order, into one state):
    /// - visitor-wide counts, page views and engaged time per class add (saturating), deepest
    ///   scroll is the max, channels seen the union; first/last event and activity are the
    ///   min/max; first-touch channel is the earlier visitor's: exact.
    /// - sessions: when the two *current* sessions overlap (the later one starts within the
    ///   timeout of the other's last activity) they become one: counts, views, engaged time and
    ///   page statistics add; start, time zone and landing channel are the earlier one's, the
    ///   current page the later one's; the session count is the sum − 1; the later one's landing
    ///   channel is dropped from the visitor's channels seen when that was its only session (else
    ///   kept: over-counts `unique_channels` by at most one). Otherwise the later
    ///   current session is kept and the counts add. Exact when the earlier sessions of the two do
    ///   not overlap (they are not kept, so they stay distinct sessions) and the later current
    ///   session begins with a page view, except in overlapping sessions for the page index at which
    ///   a class was first reached (`quick_conversion`), which takes the smaller of the two because
    ///   the interleaving is not kept.
    /// - engagement velocity: both accumulators decayed to the later time, then added: exact up
    ///   to float rounding.
    /// - user agent: the visitor with the latest event, unless it never sent one (all codes 0);
    ///   replay keeps the last event that carried one, which differs only when sessions interleave.
    /// - traits: the union, the value of the visitor with the latest event winning (replay keeps
    ///   the last identify's, which differs only when identifies interleave); oldest evicted past
    ///   [`MAX_TRAITS`].
    /// - lead id: this state's, else the other's.
    /// - de-duplication: all of this state's own recent ids are kept (its replay guarantee is
    ///   unchanged) and the other's newest fill the free slots, so the other device's events
    ///   re-sent under this visitor id still count once while they are remembered. The other's
    ///   stale bound is not taken: it would refuse this visitor's own late events.
    ///
    /// Errors only when a state does not fit the configuration's shapes.
    pub fn merge(
        &mut self,
        own_id: &str,
        other_id: &str,
        other: &VisitorState,
        cfg: &StateConfig,
    ) -> Result<Merge, StateError> {
        let me = fnv1a(own_id).to_le_bytes();
        let src = fnv1a(other_id).to_le_bytes();
        if src == me || self.merged.contains(&src) {
            return Ok(Merge::AlreadyMerged);
        }
        if other.is_empty() {
            return Ok(Merge::Empty);
        }
        if !self.fits(cfg) {
            return Err(self.shape_error(cfg));
        }
        if !other.fits(cfg) {
            return Err(other.shape_error(cfg));
        }
        if other.merged.contains(&me) || other.merged.iter().any(|h| self.merged.contains(h)) {
            return Ok(Merge::Overlap);
        }
        let mut sources = vec![src];
        for h in &other.merged {
            if !sources.contains(h) {
                sources.push(*h);
            }
        }
        if self.merged.len() + sources.len() > MAX_MERGED {
            return Ok(Merge::Full);
        }

        let was_empty = self.is_empty();
        let other_newer = was_empty || other.last_ts > self.last_ts;
        // Channels seen by the visitor, when the later visitor's landing does not count (see below).
        let mut total_channels = None;
        if was_empty {
            self.sessions = other.sessions;
            self.session = other.session.clone();
        } else {
            let other_later = other.session.start > self.session.start;
            let (early_last, late_start) = if other_later {
                (self.last_activity, other.session.start)
            } else {
                (other.last_activity, self.session.start)
            };
            let timeout = cfg.site.session_timeout_ms();
            if late_start <= early_last.saturating_add(timeout) {
                // One session lands once: the later visitor's landing channel is not a channel seen,
                // which is exact when that was its only session.
                let (early, late) = if other_later {
                    (&*self, other)
                } else {
                    (other, &*self)
                };
                if late.sessions == 1 {
                    total_channels = Some(early.total.channels);
                }
                let newer_activity = other.last_activity > self.last_activity;
                self.session.absorb(&other.session, newer_activity);
                self.sessions = self
                    .sessions
                    .saturating_add(other.sessions)
                    .saturating_sub(1);
            } else {
                if other_later {
                    self.session = other.session.clone();
                }
                self.sessions = self.sessions.saturating_add(other.sessions);
            }
        }
        if was_empty || other.first_ts < self.first_ts {
            self.first_ts = other.first_ts;
            self.first_channel = other.first_channel;
        }
        if was_empty {
            self.last_ts = other.last_ts;
            self.last_activity = other.last_activity;
        } else {
            self.last_ts = self.last_ts.max(other.last_ts);
            self.last_activity = self.last_activity.max(other.last_activity);
        }
        self.total.add(&other.total);
        if let Some(c) = total_channels {
            self.total.channels = c;
        }
        add_u32(&mut self.views, &other.views);
        add_f64(&mut self.engaged_ms, &other.engaged_ms);
        if other.ua != (0, 0, 0) && (other_newer || self.ua == (0, 0, 0)) {
            self.ua = other.ua;
        }

        let t = self.decay_ts.max(other.decay_ts);
        for ((a, b), hl) in self
            .decayed
            .iter_mut()
            .zip(&other.decayed)
            .zip(&cfg.half_lives)
        {
            *a = *a * decay(t.saturating_sub(self.decay_ts), *hl)
                + b * decay(t.saturating_sub(other.decay_ts), *hl);
        }
        self.decay_ts = t;

        let (older, newer) = if other_newer {
            (&self.traits, &other.traits)
        } else {
            (&other.traits, &self.traits)
        };
        let mut traits: Vec<(String, TraitValue)> = older
            .iter()
            .filter(|(k, _)| !newer.iter().any(|(n, _)| n == k))
            .chain(newer)
            .cloned()
            .collect();
        traits.drain(..traits.len().saturating_sub(MAX_TRAITS));
        self.traits = traits;
        if self.lead_id.is_none() {
            self.lead_id.clone_from(&other.lead_id);
        }

        let mut theirs: Vec<([u8; 8], i64)> = other
            .recent_ids
            .iter()
            .copied()
            .zip(other.recent_ts.iter().copied())
            .filter(|(id, _)| !self.recent_ids.contains(id))
            .collect();
        theirs.sort_by_key(|&(_, ts)| std::cmp::Reverse(ts));
        theirs.truncate(DEDUP_WINDOW.saturating_sub(self.recent_ids.len()));
        for (id, ts) in theirs.into_iter().rev() {
            self.recent_ids.push(id);
            self.recent_ts.push(ts);
        }

        self.merged.extend(sources);
        Ok(Merge::Merged)
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

impl Session {
    /// Folds another, overlapping session into this one (see [`VisitorState::merge`]).
    fn absorb(&mut self, o: &Session, o_newer_activity: bool) {
        let landing = if o.start < self.start {
            self.start = o.start;
            self.tz = o.tz;
            self.channel = o.channel;
            o.counts.channels
        } else {
            self.counts.channels
        };
        add_u32(&mut self.views, &o.views);
        add_f64(&mut self.engaged_ms, &o.engaged_ms);
        add_f64(&mut self.stat_sums, &o.stat_sums);
        self.stat_views = self.stat_views.saturating_add(o.stat_views);
        for (a, &b) in self.first_view.iter_mut().zip(&o.first_view) {
            *a = min_reached(*a, b);
        }
        self.first_submit = min_reached(self.first_submit, o.first_submit);
        if o_newer_activity {
            self.current_class = o.current_class;
        }
        self.counts.add(&o.counts);
        self.counts.channels = landing;
        self.id_unknown |= o.id_unknown;
    }
}

/// The earlier of two page indices where 0 means "never".
fn min_reached(a: u16, b: u16) -> u16 {
    match (a, b) {
        (0, x) | (x, 0) => x,
        (a, b) => a.min(b),
    }
}

fn add_u32(a: &mut [u32], b: &[u32]) {
    for (x, y) in a.iter_mut().zip(b) {
        *x = x.saturating_add(*y);
    }
}

fn add_f64(a: &mut [f64], b: &[f64]) {
    for (x, y) in a.iter_mut().zip(b) {
        *x += y;
    }
}

impl Counts {
    /// Adds another visitor's (or session's) counters.
    fn add(&mut self, o: &Counts) {
        self.pages = self.pages.saturating_add(o.pages);
        self.forms_started = self.forms_started.saturating_add(o.forms_started);
        self.forms_submitted = self.forms_submitted.saturating_add(o.forms_submitted);
        self.cta_clicks = self.cta_clicks.saturating_add(o.cta_clicks);
        self.scrolls = self.scrolls.saturating_add(o.scrolls);
        self.scroll_sum += o.scroll_sum;
        self.scroll_max = self.scroll_max.max(o.scroll_max);
        self.channels |= o.channels;
    }

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
        assert!(bytes.len() <= 1024, "{} bytes", bytes.len());
        assert_eq!(VisitorState::from_bytes(&bytes, &c).unwrap(), s);
        assert!(VisitorState::from_bytes(&bytes[..bytes.len() / 2], &c).is_err());
        assert!(matches!(
            VisitorState::from_bytes(&[9, 0], &c),
            Err(StateError::Version(9))
        ));
    }

    mod merge {
        use super::*;
        use crate::features::{FeatureSet, FeatureSpec};
        use proptest::prelude::*;

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
          {"name":"size","kind":"trait","params":{"name":"size","default":-1}}
        ]"#;
        /// Features whose merge is approximate when the visitors' events interleave in time.
        const OVERLAP_APPROX: [&str; 3] = ["qc", "os", "size"];

        fn setup() -> (FeatureSet, StateConfig) {
            let c = cfg();
            let specs: Vec<FeatureSpec> = serde_json::from_str(SPECS).unwrap();
            let set = FeatureSet::new(&specs, &c.site).unwrap();
            assert_eq!(set.half_lives(), &c.half_lives[..]);
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
                assert!((g - w).abs() <= tol, "{name}: merged {g}, replayed {w}");
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
                            format!(r#","url":"https://s.example{path}{q}"{r},"tz_offset":{}"#, i16::from(x % 3) * 60)
                        }
                        1 | 2 => format!(r#","path":"{path}","engaged_ms":{}"#, engaged.min(gap * 1000)),
                        3 => format!(r#","props":{{"depth":{x}}}"#),
                        4 => r#","props":{"cta":"demo"}"#.to_string(),
                        7 => format!(r#","lead_id":"l@x","traits":{{"size":{x},"plan":"p{x}"}}"#),
                        8 => r#","name":"signup""#.to_string(),
                        _ => String::new(),
                    };
                    let kind = ["page", "engaged", "page_end", "scroll", "click", "form_start", "form_submit", "identify", "custom"][usize::from(kind)];
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
                let a_end = a.iter().map(|e| e.ts).max().unwrap();
                prop_assume!(b[0].ts <= a_end + c.site.session_timeout_ms());
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
                prop_assert_eq!(features(&set, &c, &e), features(&set, &c, &a));
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
                assert_ne!(s.apply(&e, &c, None), Outcome::Applied);
            }
            // A small state takes the other's newest ids into its free slots.
            let mut small = visitor("s", T0, 3);
            let other = visitor("t", T0 + 5000, 20);
            small.merge("s", "t", &other, &c).unwrap();
            assert_eq!(small.recent_ids.len(), DEDUP_WINDOW);
            let e = ev("t19", "page", T0 + 5000 + 19_000, r#","path":"/pricing""#);
            assert_eq!(small.apply(&e, &c, None), Outcome::Duplicate);
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
        fn reads_version_1_states() {
            let c = cfg();
            let mut s = VisitorState::new(&c);
            s.apply(&ev("a", "page", T0, r#","path":"/pricing""#), &c, None);
            let mut v1 = s.to_bytes();
            assert_eq!(v1.pop(), Some(0)); // the empty `merged` list
            v1[0] = 1;
            assert_eq!(VisitorState::from_bytes(&v1, &c).unwrap(), s);
        }
    }
}
