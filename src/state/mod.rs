//! Visitor state: a compact aggregate of everything a visitor did, updated one event at a time.
//!
//! It is what the worker keeps per visitor (a Durable Object) and the browser keeps in local storage,
//! so it is bounded whatever the number of events (≤ 1 KB serialized, see the size test) and
//! (de)serializes with `postcard` in microseconds. Everything a feature needs is accumulated here;
//! nothing is recomputed from raw events, which are not kept.
//!
//! Rules:
//! - **Idempotency**: the ids of the last [`DEDUP_WINDOW`] events are kept; an event whose id is
//!   among them is a [`Apply::Duplicate`]. Once an id is evicted, every event at or before the
//!   evicted event's time is refused as [`Apply::Stale`] (it may be a replay), so a replayed batch of
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
//!
//! The code follows that split: `apply.rs` (one event in), `merge.rs` (two states into one),
//! `codec.rs` (bytes out and back, with shape checks).

use serde::{Deserialize, Serialize};

use crate::event::{channel, Value};
use crate::site::{Site, MAX_CLASSES, MAX_STATS};

/// Event ids remembered for de-duplication.
pub const DEDUP_WINDOW: usize = 16;
/// Largest accepted clock lead of a client over the receiver.
pub const MAX_FUTURE_MS: i64 = 2 * 60_000;
/// Oldest accepted client time relative to the receiver (offline queues replay up to a week).
pub const MAX_AGE_MS: i64 = 7 * 86_400_000;
/// Most traits a card may declare (the state keeps only declared ones).
pub const MAX_TRAITS: usize = 16;
/// Most distinct engagement half-lives a model may ask for.
pub const MAX_HALF_LIVES: usize = 4;
/// Most visitors whose states one state may absorb (directly or through other merged states).
pub const MAX_MERGED: usize = 8;
/// Current state format version (first field of the serialization). Versions 1 (before
/// `merged`) and 2 (before signals, the identify time and dropped traits) are still read.
pub const STATE_VERSION: u8 = 3;

/// What applying an event did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Apply {
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
    /// Signals the card reads, in the order features refer to them.
    pub signals: Vec<Signal>,
    /// Trait names the card reads: the only ones kept (see [`VisitorState::traits_dropped`]).
    pub traits: Vec<String>,
}

/// Serialized size a page-only state stays within, whatever the events (tested worst case).
pub const PAGE_STATE_BYTES: usize = 1024;
/// What one declared signal may add to a state (key, counts, times, the latest times, decays).
pub const SIGNAL_STATE_BYTES: usize = 96;
/// What one declared trait may add besides its name: the value (at most
/// [`crate::event::limits::MAX_TRAIT_VALUE_LEN`] bytes) and its framing.
pub const TRAIT_STATE_BYTES: usize = crate::event::limits::MAX_TRAIT_VALUE_LEN + 12;

impl StateConfig {
    /// The most bytes a state of this configuration serializes to: [`PAGE_STATE_BYTES`], plus
    /// [`SIGNAL_STATE_BYTES`] per signal and the name + [`TRAIT_STATE_BYTES`] per trait. Why a
    /// budget per declaration: a B2B card reading a dozen touches and a few firmographics needs
    /// more than a page-only one, and a card that reads nothing of the kind pays nothing.
    pub fn budget_bytes(&self) -> usize {
        PAGE_STATE_BYTES
            + self.signals.len() * SIGNAL_STATE_BYTES
            + self
                .traits
                .iter()
                .map(|t| t.len() + TRAIT_STATE_BYTES)
                .sum::<usize>()
    }

    /// A configuration with no signals and no traits (page structure only).
    pub fn pages_only(site: Site, half_lives: Vec<f64>) -> StateConfig {
        StateConfig {
            site,
            half_lives,
            signals: Vec::new(),
            traits: Vec::new(),
        }
    }
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
    /// Latest web activity (session continuity; server-side touches and identifies do not count).
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
    /// Identify traits the card declares, oldest written first.
    pub traits: Vec<(String, TraitValue)>,
    /// Hashes of the visitor ids whose states were merged into this one (see [`VisitorState::merge`]).
    pub merged: Vec<[u8; 8]>,
    /// One aggregate per signal of the configuration.
    pub signals: Vec<SignalAgg>,
    /// First identify (with a lead id or traits); 0 = never identified.
    pub identified_ts: i64,
    /// Traits received that the card does not declare, or whose value was not kept: counted,
    /// never silently lost.
    pub traits_dropped: u16,
}

/// A stored trait value: [`Value`] with an explicit tag, because postcard cannot read untagged enums.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum TraitValue {
    /// true/false.
    Bool(bool),
    /// A number.
    Num(f64),
    /// A string (at most [`crate::event::limits::MAX_TRAIT_VALUE_LEN`] bytes, checked by the event).
    Str(String),
}

impl From<&Value> for TraitValue {
    fn from(v: &Value) -> TraitValue {
        match v {
            Value::Str(s) => TraitValue::Str(s.clone()),
            Value::Num(n) => TraitValue::Num(*n),
            Value::Bool(b) => TraitValue::Bool(*b),
        }
    }
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

mod apply;

pub use apply::clamp_ts;
mod codec;
mod merge;
pub mod signal;

pub use signal::{Signal, SignalAgg, SignalOn};

/// Event and visitor id hashes: FNV-1a, stable across builds because they persist in states.
pub(super) use crate::hash::fnv1a64 as fnv1a;

/// `x` made finite: NaN → 0, ±∞ → ±`f64::MAX`. Why: a state's floats are sums and maxima of
/// checked inputs, but a sum can overflow (or come from a state saved before its inputs were
/// checked), and a non-finite value would reach the features and a score's JSON as `null`, which
/// no reader takes back for a number.
pub(super) fn finite(x: f64) -> f64 {
    if x.is_nan() {
        0.0
    } else {
        x.clamp(-f64::MAX, f64::MAX)
    }
}

impl VisitorState {
    /// Makes every float finite ([`finite`]): after each update and on reading bytes back.
    pub(super) fn sanitize(&mut self) {
        let all = self
            .engaged_ms
            .iter_mut()
            .chain(&mut self.decayed)
            .chain(&mut self.session.engaged_ms)
            .chain(&mut self.session.stat_sums)
            .chain(self.signals.iter_mut().flat_map(|a| a.decayed.iter_mut()));
        for x in all {
            *x = finite(*x);
        }
        for c in [&mut self.total, &mut self.session.counts] {
            c.scroll_sum = finite(f64::from(c.scroll_sum)).clamp(0.0, f64::from(f32::MAX)) as f32;
            c.scroll_max = finite(f64::from(c.scroll_max)).clamp(0.0, 100.0) as f32;
        }
        for (_, v) in &mut self.traits {
            if let TraitValue::Num(n) = v {
                *n = finite(*n);
            }
        }
    }

    /// An empty state shaped for a configuration.
    pub fn new(cfg: &StateConfig) -> VisitorState {
        let n = cfg.site.n_classes();
        VisitorState {
            version: STATE_VERSION,
            views: vec![0; n],
            engaged_ms: vec![0.0; n],
            decayed: vec![0.0; cfg.half_lives.len()],
            session: Session::empty(n, cfg.site.n_stats()),
            signals: cfg.signals.iter().map(SignalAgg::new).collect(),
            ..VisitorState::default()
        }
    }

    /// Whether any event has been applied.
    pub fn is_empty(&self) -> bool {
        self.first_ts == 0
    }

    /// Decayed engaged seconds for accumulator `i`, as of the visitor's latest event.
    pub fn velocity(&self, i: usize, cfg: &StateConfig) -> f64 {
        match (self.decayed.get(i), cfg.half_lives.get(i)) {
            (Some(acc), Some(hl)) => acc * decay(self.last_ts - self.decay_ts, *hl),
            _ => 0.0,
        }
    }

    /// A trait by name.
    pub fn trait_value(&self, key: &str) -> Option<Value> {
        self.traits
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.to_value())
    }
}

impl Session {
    pub(super) fn empty(classes: usize, stats: usize) -> Session {
        Session {
            views: vec![0; classes],
            engaged_ms: vec![0.0; classes],
            stat_sums: vec![0.0; stats],
            first_view: vec![0; classes],
            ..Session::default()
        }
    }
}

pub(super) fn decay(dt_ms: i64, half_life_s: f64) -> f64 {
    (-(dt_ms as f64) / 1000.0 / half_life_s * std::f64::consts::LN_2).exp()
}
