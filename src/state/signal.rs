//! Signals: the events a card reads beyond page structure (a webinar attended, an email clicked, a
//! demo form sent, the pricing page seen), each kept as a few numbers so that state stays bounded
//! however many there were.
//!
//! A [`Signal`] says what matches (a custom event by name, a built-in event type, or a page view of
//! a tagged class) and which props must equal what; the features layer compiles them from the card
//! and the state keeps one [`SignalAgg`] per signal. Aggregates carry the signal's [`Signal::key`],
//! so a state outlives a change of model: aggregates of signals both cards read are kept, the
//! others start from zero (see [`VisitorState::fit_signals`]).

use serde::{Deserialize, Serialize};

use super::{decay, finite, VisitorState};
use crate::event::{Event, EventType, Value};

/// Most signals one card may declare (each costs a few dozen bytes of state).
pub const MAX_SIGNALS: usize = 16;
/// Most decay half-lives per signal.
pub const MAX_SIGNAL_HALF_LIVES: usize = 2;
/// Times of a signal's latest occurrences kept for windowed counts and sequences: a count in a
/// window is exact up to this many, and at least this many beyond.
pub const MAX_RECENT: usize = 8;
/// Most prop conditions of one signal.
pub const MAX_CONDITIONS: usize = 4;

const MINUTE_MS: i64 = 60_000;

/// What a signal counts.
#[derive(Debug, Clone, PartialEq)]
pub enum SignalOn {
    /// `custom` events of this name (`track(name, props)`, server-side touches).
    Named(String),
    /// Events of a built-in type (`form_submit`, `click` …).
    Type(EventType),
    /// Page views of the classes in the mask (a page tag such as `pricing`).
    Page(u16),
}

/// One declared signal.
#[derive(Debug, Clone, PartialEq)]
pub struct Signal {
    /// What matches.
    pub on: SignalOn,
    /// Props that must be present and equal (strings compared without ASCII case).
    pub conditions: Vec<(String, Value)>,
    /// Half-lives (days) of its decayed counts, in the order features refer to them.
    pub half_lives_days: Vec<f64>,
    /// Stable identity of `on` + `conditions` (FNV-1a of their canonical text).
    pub key: u32,
}

impl Signal {
    /// A signal with its key computed from its definition (`canonical`: the definition as text,
    /// written by the caller in one fixed form).
    pub fn new(on: SignalOn, conditions: Vec<(String, Value)>, canonical: &str) -> Signal {
        Signal {
            on,
            conditions,
            half_lives_days: Vec::new(),
            key: crate::hash::fnv1a32(canonical),
        }
    }

    /// Whether an event is one of this signal's (`class`: the page's class, for page views).
    pub fn matches(&self, event: &Event, class: Option<u8>) -> bool {
        let on = match &self.on {
            SignalOn::Named(n) => {
                event.kind == EventType::Custom && event.name.as_deref() == Some(n.as_str())
            }
            SignalOn::Type(t) => event.kind == *t,
            SignalOn::Page(mask) => {
                event.kind == EventType::Page && class.is_some_and(|c| mask & (1u16 << c) != 0)
            }
        };
        on && self
            .conditions
            .iter()
            .all(|(k, want)| event.prop(k).is_some_and(|v| same(v, want)))
    }
}

fn same(got: &Value, want: &Value) -> bool {
    match (got, want) {
        (Value::Str(a), Value::Str(b)) => a.eq_ignore_ascii_case(b),
        (Value::Bool(a), Value::Bool(b)) => a == b,
        (Value::Num(a), Value::Num(b)) => a == b,
        (Value::Str(a), Value::Num(b)) => a.trim().parse::<f64>().is_ok_and(|a| a == *b),
        _ => false,
    }
}

/// One signal's aggregate in a visitor's state.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SignalAgg {
    /// [`Signal::key`] of the signal counted.
    pub key: u32,
    /// Occurrences, all time.
    pub count: u32,
    /// Occurrences in the current web session.
    pub session: u16,
    /// First occurrence (client ms); 0 = never.
    pub first: i64,
    /// Latest occurrence.
    pub last: i64,
    /// Minutes since the epoch of the latest occurrences (at most [`MAX_RECENT`]), ascending.
    pub recent: Vec<u32>,
    /// Decayed counts, one per half-life of the signal, valid at `last`.
    pub decayed: Vec<f64>,
}

impl SignalAgg {
    /// An empty aggregate for a signal.
    pub fn new(signal: &Signal) -> SignalAgg {
        SignalAgg {
            key: signal.key,
            decayed: vec![0.0; signal.half_lives_days.len()],
            ..SignalAgg::default()
        }
    }

    /// Whether the aggregate has the signal's shape.
    pub(super) fn fits(&self, signal: &Signal) -> bool {
        self.key == signal.key
            && self.decayed.len() == signal.half_lives_days.len()
            && self.recent.len() <= MAX_RECENT
    }

    /// The same aggregate with the decayed counts of other half-lives, rebuilt from the kept
    /// times: exact while the signal occurred at most [`MAX_RECENT`] times (to the minute).
    fn with_half_lives(&self, signal: &Signal) -> SignalAgg {
        let decayed = signal
            .half_lives_days
            .iter()
            .map(|hl| {
                self.recent
                    .iter()
                    .map(|&m| {
                        let t = (i64::from(m) * MINUTE_MS).max(self.first);
                        decay(self.last - t.min(self.last), hl * 86_400.0)
                    })
                    .sum()
            })
            .collect();
        SignalAgg {
            decayed,
            ..self.clone()
        }
    }

    /// Counts one occurrence at `ts` (in the current session or not).
    pub(super) fn add(&mut self, ts: i64, in_session: bool, signal: &Signal) {
        let was_empty = self.count == 0;
        self.count = self.count.saturating_add(1);
        if in_session {
            self.session = self.session.saturating_add(1);
        }
        for (acc, hl) in self.decayed.iter_mut().zip(&signal.half_lives_days) {
            *acc = if was_empty {
                1.0
            } else if ts >= self.last {
                *acc * decay(ts - self.last, hl * 86_400.0) + 1.0
            } else {
                *acc + decay(self.last - ts, hl * 86_400.0)
            };
        }
        self.first = if was_empty { ts } else { self.first.min(ts) };
        self.last = if was_empty { ts } else { self.last.max(ts) };
        self.remember(minutes(ts));
    }

    fn remember(&mut self, m: u32) {
        let at = self.recent.partition_point(|&t| t <= m);
        self.recent.insert(at, m);
        if self.recent.len() > MAX_RECENT {
            self.recent.remove(0);
        }
    }

    /// Occurrences in `(as_of − window_ms, as_of]`: exact up to [`MAX_RECENT`], that many when more.
    pub fn count_within(&self, as_of: i64, window_ms: i64) -> u32 {
        let (lo, hi) = (minutes(as_of.saturating_sub(window_ms)), minutes(as_of));
        let n = self.recent.iter().filter(|&&t| t > lo && t <= hi).count() as u32;
        if self.recent.len() < MAX_RECENT {
            n
        } else {
            n.min(self.count)
        }
    }

    /// Decayed count for half-life `i`, as of `as_of`.
    pub fn decayed_at(&self, i: usize, as_of: i64, signal: &Signal) -> f64 {
        match (self.decayed.get(i), signal.half_lives_days.get(i)) {
            (Some(acc), Some(hl)) if self.count > 0 => {
                acc * decay(as_of.saturating_sub(self.last).max(0), hl * 86_400.0)
            }
            _ => 0.0,
        }
    }

    /// Times (ms, minute resolution except `first`) at which the signal is known to have occurred.
    pub fn known_times(&self) -> impl Iterator<Item = i64> + '_ {
        let first = (self.count > 0).then_some(self.first);
        first
            .into_iter()
            .chain(self.recent.iter().map(|&m| i64::from(m) * MINUTE_MS))
    }

    /// Adds another visitor's aggregate of the same signal (see [`VisitorState::merge`]).
    /// `joined`: the two current sessions became one; `theirs_current`: else, the other's
    /// current session is the merged state's.
    pub(super) fn absorb(
        &mut self,
        other: &SignalAgg,
        joined: bool,
        theirs_current: bool,
        signal: &Signal,
    ) {
        let session = if joined {
            self.session.saturating_add(other.session)
        } else if theirs_current {
            other.session
        } else {
            self.session
        };
        if other.count == 0 {
            self.session = session;
            return;
        }
        if self.count == 0 {
            *self = other.clone();
            self.session = session;
            return;
        }
        let t = self.last.max(other.last);
        for ((a, b), hl) in self
            .decayed
            .iter_mut()
            .zip(&other.decayed)
            .zip(&signal.half_lives_days)
        {
            let hl_s = hl * 86_400.0;
            *a = finite(*a * decay(t - self.last, hl_s) + b * decay(t - other.last, hl_s));
        }
        self.count = self.count.saturating_add(other.count);
        self.session = session;
        self.first = self.first.min(other.first);
        self.last = t;
        for &m in &other.recent {
            self.remember(m);
        }
    }
}

fn minutes(ts: i64) -> u32 {
    u32::try_from(ts.div_euclid(MINUTE_MS)).unwrap_or(if ts < 0 { 0 } else { u32::MAX })
}

impl VisitorState {
    /// Reshapes the signal aggregates to a configuration's signals, keeping those whose key it
    /// still declares: why: a new model (or arm) may read other signals, and the visitor's history
    /// of the ones both read must survive the change; the others start from zero.
    pub fn fit_signals(&mut self, signals: &[Signal]) {
        if self.signals.len() == signals.len()
            && self.signals.iter().zip(signals).all(|(a, s)| a.fits(s))
        {
            return;
        }
        let old = std::mem::take(&mut self.signals);
        self.signals = signals
            .iter()
            .map(|s| match old.iter().find(|a| a.key == s.key) {
                Some(a) if a.fits(s) => a.clone(),
                Some(a) => a.with_half_lives(s),
                None => SignalAgg::new(s),
            })
            .collect();
    }

    /// The aggregate of signal `i`.
    pub fn signal(&self, i: usize) -> Option<&SignalAgg> {
        self.signals.get(i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sig(hl: &[f64]) -> Signal {
        let mut s = Signal::new(SignalOn::Named("webinar".into()), vec![], "webinar");
        s.half_lives_days = hl.to_vec();
        s
    }

    const DAY: i64 = 86_400_000;

    #[test]
    fn windowed_counts_are_exact_up_to_the_kept_times() {
        let s = sig(&[]);
        let mut a = SignalAgg::new(&s);
        let t0 = 1_700_000_000_000;
        for d in 0..5 {
            a.add(t0 + d * DAY, false, &s);
        }
        assert_eq!(a.count_within(t0 + 4 * DAY, 2 * DAY), 2);
        assert_eq!(a.count_within(t0 + 4 * DAY, 30 * DAY), 5);
        for d in 5..20 {
            a.add(t0 + d * DAY, false, &s);
        }
        assert_eq!(a.recent.len(), MAX_RECENT);
        assert_eq!(a.count_within(t0 + 19 * DAY, 3 * DAY), 3);
        assert_eq!(a.count_within(t0 + 19 * DAY, 30 * DAY), MAX_RECENT as u32);
        assert_eq!((a.count, a.first, a.last), (20, t0, t0 + 19 * DAY));
    }

    /// Out-of-order occurrences decay as if they had come in order.
    #[test]
    fn decayed_counts_do_not_depend_on_order() {
        let s = sig(&[7.0]);
        let t0 = 1_700_000_000_000;
        let times = [t0, t0 + 3 * DAY, t0 + DAY];
        let mut a = SignalAgg::new(&s);
        let mut b = SignalAgg::new(&s);
        for t in times {
            a.add(t, false, &s);
        }
        let mut sorted = times;
        sorted.sort();
        for t in sorted {
            b.add(t, false, &s);
        }
        let at = t0 + 10 * DAY;
        let want: f64 = times
            .iter()
            .map(|t| 0.5f64.powf((at - t) as f64 / (7.0 * DAY as f64)))
            .sum();
        for x in [&a, &b] {
            assert!((x.decayed_at(0, at, &s) - want).abs() < 1e-12);
        }
        assert_eq!(a.recent, b.recent);
    }

    /// Two devices' aggregates add up to the one a single device sending both would have.
    #[test]
    fn absorbing_equals_replaying_both() {
        let s = sig(&[3.0, 30.0]);
        let t0 = 1_700_000_000_000;
        let (xs, ys) = ([0, 2, 9, 11, 12], [1, 5, 6, 7, 8, 13]);
        let mut one = SignalAgg::new(&s);
        let (mut x, mut y) = (SignalAgg::new(&s), SignalAgg::new(&s));
        for d in xs {
            x.add(t0 + d * DAY, false, &s);
        }
        for d in ys {
            y.add(t0 + d * DAY, false, &s);
        }
        let mut all: Vec<i64> = xs.iter().chain(&ys).copied().collect();
        all.sort();
        for d in all {
            one.add(t0 + d * DAY, false, &s);
        }
        x.absorb(&y, false, false, &s);
        assert_eq!((x.count, x.first, x.last), (one.count, one.first, one.last));
        assert_eq!(x.recent, one.recent);
        for i in 0..2 {
            assert!((x.decayed[i] - one.decayed[i]).abs() < 1e-9);
        }
    }

    #[test]
    fn conditions_compare_props() {
        let mut s = Signal::new(
            SignalOn::Named("email".into()),
            vec![("direction".into(), Value::Str("inbound".into()))],
            "email|direction=inbound",
        );
        s.half_lives_days = vec![];
        let ev = |props: &str| {
            Event::parse(&format!(
                r#"{{"id":"a","type":"custom","name":"email","ts":1700000000000,"visitor_id":"v","props":{props}}}"#
            ))
            .unwrap()
        };
        assert!(s.matches(&ev(r#"{"direction":"Inbound"}"#), None));
        assert!(!s.matches(&ev(r#"{"direction":"outbound"}"#), None));
        assert!(!s.matches(&ev(r#"{}"#), None));
        let page = Signal::new(SignalOn::Page(0b10), vec![], "page:pricing");
        assert!(!page.matches(&ev("{}"), Some(1)));
        let p = Event::parse(
            r#"{"id":"a","type":"page","ts":1700000000000,"visitor_id":"v","path":"/pricing"}"#,
        )
        .unwrap();
        assert!(page.matches(&p, Some(1)));
        assert!(!page.matches(&p, Some(0)));
    }
}
