//! One event into a visitor's state: de-duplication, clock clamping, sessions, counters.

use super::*;
use crate::event::{useragent, Event, EventType};

/// The time the engine counts an event at: its client `ts`, clamped to [`MAX_AGE_MS`] behind and
/// [`MAX_FUTURE_MS`] ahead of the receive time `now` where there is one (what the event log keeps).
pub fn clamp_ts(ts: i64, now: Option<i64>) -> i64 {
    match now {
        Some(now) => ts.clamp(
            now.saturating_sub(MAX_AGE_MS),
            now.saturating_add(MAX_FUTURE_MS),
        ),
        None => ts,
    }
}

impl VisitorState {
    /// Applies one validated event. `now` is the receive time (ms) where there is one, for clamping.
    pub fn apply(&mut self, event: &Event, cfg: &StateConfig, now: Option<i64>) -> Apply {
        let ts = clamp_ts(event.ts, now);
        let id = fnv1a(&event.id).to_le_bytes();
        if self.recent_ids.contains(&id) {
            return Apply::Duplicate;
        }
        if !self.is_empty() && ts <= self.stale_before {
            return Apply::Stale;
        }
        self.remember(id, ts);
        self.fit_signals(&cfg.signals);

        let engaged = match event.kind {
            EventType::Engaged | EventType::PageEnd => event.engaged_ms.unwrap_or(0.0),
            _ => 0.0,
        };
        let activity = ts - engaged as i64;
        let timeout = cfg.site.session_timeout_ms();
        // Which session does the event belong to? Only web events open or extend sessions: a
        // server-side touch or an identify is activity of the lead, not a visit.
        let web = !matches!(
            event.kind,
            EventType::Custom | EventType::Identify | EventType::Group
        );
        let opens = web && (self.sessions == 0 || activity > self.last_activity + timeout);
        let in_session = if opens {
            self.start_session(ts, event.tz_offset.unwrap_or(cfg.site.tz_offset()), cfg);
            true
        } else {
            self.sessions > 0
                && ts >= self.session.start - timeout
                && (web || ts <= self.last_activity + timeout)
        };
        if self.is_empty() {
            self.first_ts = ts;
        }
        if web && in_session && ts < self.session.start {
            self.session.start = ts;
        }
        self.first_ts = self.first_ts.min(ts);
        self.last_ts = self.last_ts.max(ts);
        if web {
            self.last_activity = self.last_activity.max(ts);
        }
        let page_class = match event.kind {
            EventType::Page => Some(cfg.site.class_of(event.page_path().unwrap_or("/"))),
            _ => None,
        };
        for (agg, signal) in self.signals.iter_mut().zip(&cfg.signals) {
            if signal.matches(event, page_class) {
                agg.add(ts, in_session, signal);
            }
        }

        if let Some(ua) = &event.ua {
            self.ua = useragent::parse(ua);
        }
        let session = &mut self.session;
        match event.kind {
            EventType::Page => {
                let path = event.page_path().unwrap_or("/");
                let class = page_class.unwrap_or_default();
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
                        // The first page decides, whatever came before it (an identify, a touch).
                        if self.total.pages == 1 {
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
                if self.identified_ts == 0 || ts < self.identified_ts {
                    self.identified_ts = ts;
                }
                for (k, v) in &event.traits {
                    self.set_trait(k, v, cfg);
                }
            }
            // The account's traits are the account's (its object keeps them), not the lead's.
            EventType::Custom | EventType::Group => {}
        }
        self.sanitize();
        Apply::Applied
    }

    fn start_session(&mut self, ts: i64, tz: i32, cfg: &StateConfig) {
        self.sessions += 1;
        self.session = Session::empty(cfg.site.n_classes(), cfg.site.n_stats());
        self.session.start = ts;
        self.session.tz = tz as i16;
        for agg in &mut self.signals {
            agg.session = 0;
        }
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

    /// Keeps a declared trait (the latest value wins); counts any other as dropped.
    fn set_trait(&mut self, key: &str, value: &Value, cfg: &StateConfig) {
        if !cfg.traits.iter().any(|t| t == key) {
            self.traits_dropped = self.traits_dropped.saturating_add(1);
            return;
        }
        let value = TraitValue::from(value);
        self.traits.retain(|(k, _)| k != key);
        if self.traits.len() >= MAX_TRAITS {
            self.traits.remove(0);
            self.traits_dropped = self.traits_dropped.saturating_add(1);
        }
        self.traits.push((key.to_string(), value));
    }
}

impl Counts {
    /// Counts one scroll event.
    fn scroll(&mut self, depth: f32) {
        self.scrolls = self.scrolls.saturating_add(1);
        self.scroll_sum += depth;
        self.scroll_max = self.scroll_max.max(depth);
    }
}

fn sat16(n: u32) -> u16 {
    u16::try_from(n).unwrap_or(u16::MAX)
}
