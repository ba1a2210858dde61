//! Feature kinds over signals and time: counts of named events in a window, decayed counts, days
//! since, sequences, and time in the funnel. Parameters are documented in `models/README.md`.
//!
//! A signal is declared where a feature reads it (`event`, `type` or `page`, plus `where`); the
//! distinct ones become the state's [`Signal`] list, in first-use order, like half-lives.

use serde_json::{Map, Value as Json};

use crate::event::{check_id, EventType, Value};
use crate::site::Site;
use crate::state::signal::{MAX_CONDITIONS, MAX_SIGNALS, MAX_SIGNAL_HALF_LIVES};
use crate::state::{Signal, SignalOn, StateConfig, VisitorState};

const DAY_MS: f64 = 86_400_000.0;
/// Longest window or half-life a feature may ask for, in days (ten years).
pub const MAX_DAYS: f64 = 3650.0;

/// Which count of a signal.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Window {
    Session,
    Visitor,
    /// The last `n` ms before the time of the features.
    Last(i64),
}

/// Where a "days since" is measured from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Since {
    FirstSeen,
    Identify,
    LastActivity,
    LastVisit,
}

/// A compiled signal or time kind.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum SignalKind {
    Count(usize, Window),
    Decayed(usize, usize),
    DaysSinceSignal {
        signal: usize,
        first: bool,
    },
    DaysSince(Since),
    Sequence {
        first: usize,
        then: usize,
        within_ms: i64,
    },
}

/// The signals and traits a feature list reads, gathered while compiling it.
#[derive(Debug, Clone, Default)]
pub(super) struct Reads {
    pub signals: Vec<Signal>,
    pub traits: Vec<String>,
}

/// Kind names this module compiles.
pub(super) const KINDS: [&str; 5] = [
    "event_count",
    "event_decayed",
    "days_since_event",
    "days_since",
    "event_sequence",
];

impl Reads {
    /// The index of the signal a parameter object declares, adding it when new.
    fn signal(&mut self, p: &Map<String, Json>, site: &Site) -> Result<usize, String> {
        let (on, canonical) = signal_on(p, site)?;
        let conditions = conditions(p.get("where"))?;
        let mut text = canonical;
        for (k, v) in &conditions {
            text.push_str(&format!("|{k}={}", value_text(v)));
        }
        let signal = Signal::new(on, conditions, &text);
        if let Some(i) = self.signals.iter().position(|s| s.key == signal.key) {
            return Ok(i);
        }
        if self.signals.len() == MAX_SIGNALS {
            return Err(format!(
                "at most {MAX_SIGNALS} distinct signals (event, type or page with `where`)"
            ));
        }
        self.signals.push(signal);
        Ok(self.signals.len() - 1)
    }

    /// Compiles one of [`KINDS`]; `known` checks the parameter names.
    pub(super) fn compile(
        &mut self,
        kind: &str,
        p: &Map<String, Json>,
        site: &Site,
    ) -> Result<SignalKind, String> {
        const ON: [&str; 4] = ["event", "type", "page", "where"];
        let known = |extra: &[&str]| -> Result<(), String> {
            match p
                .keys()
                .find(|k| !ON.contains(&k.as_str()) && !extra.contains(&k.as_str()))
            {
                Some(k) => Err(format!("unknown parameter `{k}`")),
                None => Ok(()),
            }
        };
        Ok(match kind {
            "event_count" => {
                known(&["scope", "window_days"])?;
                let window = match (p.get("scope").map(Json::as_str), p.get("window_days")) {
                    (None, None) | (Some(Some("visitor")), None) => Window::Visitor,
                    (Some(Some("session")), None) => Window::Session,
                    (None, Some(d)) => Window::Last(days_ms(d, "window_days")?),
                    (Some(_), Some(_)) => {
                        return Err("give `scope` or `window_days`, not both".into())
                    }
                    _ => return Err("`scope` must be \"session\" or \"visitor\"".into()),
                };
                SignalKind::Count(self.signal(p, site)?, window)
            }
            "event_decayed" => {
                known(&["half_life_days"])?;
                let hl = p
                    .get("half_life_days")
                    .and_then(Json::as_f64)
                    .filter(|d| *d > 0.0 && *d <= MAX_DAYS)
                    .ok_or(format!(
                        "`half_life_days` must be a number of days in (0, {MAX_DAYS}]"
                    ))?;
                let i = self.signal(p, site)?;
                let lives = &mut self.signals[i].half_lives_days;
                let j = match lives.iter().position(|h| *h == hl) {
                    Some(j) => j,
                    None if lives.len() < MAX_SIGNAL_HALF_LIVES => {
                        lives.push(hl);
                        lives.len() - 1
                    }
                    None => {
                        return Err(format!(
                            "at most {MAX_SIGNAL_HALF_LIVES} half-lives per signal"
                        ))
                    }
                };
                SignalKind::Decayed(i, j)
            }
            "days_since_event" => {
                known(&["which"])?;
                let first = match p.get("which").map(Json::as_str) {
                    None | Some(Some("last")) => false,
                    Some(Some("first")) => true,
                    _ => return Err("`which` must be \"first\" or \"last\"".into()),
                };
                SignalKind::DaysSinceSignal {
                    signal: self.signal(p, site)?,
                    first,
                }
            }
            "days_since" => {
                if let Some(k) = p.keys().find(|k| k.as_str() != "from") {
                    return Err(format!("unknown parameter `{k}`"));
                }
                SignalKind::DaysSince(match p.get("from").and_then(Json::as_str) {
                    Some("first_seen") => Since::FirstSeen,
                    Some("identify") => Since::Identify,
                    Some("last_activity") => Since::LastActivity,
                    Some("last_visit") => Since::LastVisit,
                    _ => return Err(
                        "`from` must be \"first_seen\", \"identify\", \"last_activity\" or \"last_visit\""
                            .into(),
                    ),
                })
            }
            "event_sequence" => {
                if let Some(k) = p
                    .keys()
                    .find(|k| !["first", "then", "within_days"].contains(&k.as_str()))
                {
                    return Err(format!("unknown parameter `{k}`"));
                }
                let side = |key: &str| {
                    match p.get(key) {
                    Some(Json::Object(m)) => Ok(m),
                    _ => Err(format!(
                        "`{key}` must be an object naming a signal (`event`, `type` or `page`, optional `where`)"
                    )),
                }
                };
                let (a, b) = (side("first")?, side("then")?);
                let within = p.get("within_days").ok_or("`within_days` is required")?;
                SignalKind::Sequence {
                    first: self.signal(a, site)?,
                    then: self.signal(b, site)?,
                    within_ms: days_ms(within, "within_days")?,
                }
            }
            other => return Err(format!("unknown kind `{other}`")),
        })
    }
}

pub(super) fn days_ms(v: &Json, key: &str) -> Result<i64, String> {
    v.as_f64()
        .filter(|d| *d > 0.0 && *d <= MAX_DAYS)
        .map(|d| (d * DAY_MS) as i64)
        .ok_or(format!(
            "`{key}` must be a number of days in (0, {MAX_DAYS}]"
        ))
}

fn signal_on(p: &Map<String, Json>, site: &Site) -> Result<(SignalOn, String), String> {
    let given: Vec<&str> = ["event", "type", "page"]
        .into_iter()
        .filter(|k| p.contains_key(*k))
        .collect();
    if given.len() != 1 {
        return Err("name exactly one of `event` (a custom event's name), `type` (a built-in event type) or `page` (page tags)".into());
    }
    match given[0] {
        "event" => {
            let name = p
                .get("event")
                .and_then(Json::as_str)
                .ok_or("`event` must be a string")?;
            check_id("name", name).map_err(|e| format!("`event`: {e}"))?;
            Ok((SignalOn::Named(name.into()), format!("event:{name}")))
        }
        "type" => {
            let t: EventType = p
                .get("type")
                .cloned()
                .and_then(|v| serde_json::from_value(v).ok())
                .ok_or("`type` must be an event type (`form_submit`, `click` …)")?;
            if matches!(t, EventType::Custom | EventType::Page) {
                return Err("`type` cannot be `custom` or `page`: use `event` or `page`".into());
            }
            let name = serde_json::to_value(t)
                .ok()
                .and_then(|v| v.as_str().map(String::from))
                .unwrap_or_default();
            Ok((SignalOn::Type(t), format!("type:{name}")))
        }
        _ => {
            let tags: Vec<String> = match p.get("page") {
                Some(Json::String(s)) => vec![s.clone()],
                Some(Json::Array(a)) => a
                    .iter()
                    .map(|v| v.as_str().map(String::from))
                    .collect::<Option<_>>()
                    .ok_or("`page` must list page tags")?,
                _ => return Err("`page` must list page tags".into()),
            };
            if let Some(t) = tags.iter().find(|t| !site.has_tag(t)) {
                return Err(format!("tag `{t}` is not in the site's page rules"));
            }
            if tags.is_empty() {
                return Err("`page` must list page tags".into());
            }
            let mut sorted = tags.clone();
            sorted.sort();
            Ok((
                SignalOn::Page(site.class_mask(&tags)),
                format!("page:{}", sorted.join(",")),
            ))
        }
    }
}

fn conditions(w: Option<&Json>) -> Result<Vec<(String, Value)>, String> {
    let m = match w {
        None => return Ok(Vec::new()),
        Some(Json::Object(m)) => m,
        Some(_) => return Err("`where` must map prop names to values".into()),
    };
    if m.len() > MAX_CONDITIONS {
        return Err(format!("`where` has more than {MAX_CONDITIONS} conditions"));
    }
    // A Map iterates in key order: the canonical text is the same however the card orders them.
    m.iter()
        .map(|(k, v)| {
            let v = match v {
                Json::String(s) => Value::Str(s.clone()),
                Json::Bool(b) => Value::Bool(*b),
                Json::Number(n) => Value::Num(n.as_f64().unwrap_or(f64::NAN)),
                _ => return Err(format!("`where.{k}` must be a string, number or boolean")),
            };
            Ok((k.clone(), v))
        })
        .collect()
}

fn value_text(v: &Value) -> String {
    match v {
        Value::Str(s) => format!("s:{}", s.to_ascii_lowercase()),
        Value::Num(n) => format!("n:{n}"),
        Value::Bool(b) => format!("b:{b}"),
    }
}

fn days(ms: i64) -> f32 {
    (ms.max(0) as f64 / DAY_MS) as f32
}

/// The value of a compiled kind for a state at `as_of` (ms); NaN (missing) when there is nothing
/// to measure from (a signal never seen, a visitor never identified).
pub(super) fn value(k: &SignalKind, s: &VisitorState, cfg: &StateConfig, as_of: i64) -> f32 {
    let agg = |i: usize| s.signal(i).filter(|a| a.count > 0);
    match *k {
        SignalKind::Count(i, w) => agg(i).map_or(0.0, |a| match w {
            Window::Session => f32::from(a.session),
            Window::Visitor => a.count as f32,
            Window::Last(ms) => a.count_within(as_of, ms) as f32,
        }),
        SignalKind::Decayed(i, j) => match (agg(i), cfg.signals.get(i)) {
            (Some(a), Some(sig)) => a.decayed_at(j, as_of, sig) as f32,
            _ => 0.0,
        },
        SignalKind::DaysSinceSignal { signal, first } => agg(signal).map_or(f32::NAN, |a| {
            days(as_of - if first { a.first } else { a.last })
        }),
        SignalKind::DaysSince(from) => {
            let t = match from {
                Since::FirstSeen => s.first_ts,
                Since::Identify => s.identified_ts,
                Since::LastActivity => s.last_ts,
                Since::LastVisit => s.last_activity,
            };
            if t == 0 {
                f32::NAN
            } else {
                days(as_of - t)
            }
        }
        SignalKind::Sequence {
            first,
            then,
            within_ms,
        } => {
            let (Some(a), Some(b)) = (agg(first), agg(then)) else {
                return 0.0;
            };
            let seen = a.known_times().any(|ta| {
                b.known_times()
                    .chain(std::iter::once(b.last))
                    .any(|tb| tb >= ta && tb - ta <= within_ms && tb <= as_of)
            });
            f32::from(seen)
        }
    }
}
