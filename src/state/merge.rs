//! Two visitors' states into one, as if one visitor had sent both event streams (see the module
//! docs of [`super`] for when that is exact).

use super::*;

impl VisitorState {
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
    /// - signals: counts add, first/last are the min/max, the latest times kept are the latest of
    ///   both, decayed counts decay to the later time and add (exact); per-session counts follow
    ///   the sessions (added when the current sessions become one, else the current one's).
    /// - lead id: this state's, else the other's; identify time the earlier; dropped traits add.
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
        // How the current sessions combined, for the signals' per-session counts.
        let (mut joined, mut theirs_current) = (false, was_empty);
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
                joined = true;
                self.sessions = self
                    .sessions
                    .saturating_add(other.sessions)
                    .saturating_sub(1);
            } else {
                if other_later {
                    self.session = other.session.clone();
                    theirs_current = true;
                }
                self.sessions = self.sessions.saturating_add(other.sessions);
            }
        }
        // The first page decides the first-touch channel: a visitor with no page has none.
        let theirs_first_page = match (self.total.pages, other.total.pages) {
            (_, 0) => false,
            (0, _) => true,
            _ => other.first_ts < self.first_ts,
        };
        if was_empty || theirs_first_page {
            self.first_channel = other.first_channel;
        }
        if was_empty || other.first_ts < self.first_ts {
            self.first_ts = other.first_ts;
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
        let evicted = traits.len().saturating_sub(MAX_TRAITS);
        traits.drain(..evicted);
        self.traits = traits;
        self.traits_dropped = self
            .traits_dropped
            .saturating_add(other.traits_dropped)
            .saturating_add(u16::try_from(evicted).unwrap_or(u16::MAX));
        if other.identified_ts != 0
            && (self.identified_ts == 0 || other.identified_ts < self.identified_ts)
        {
            self.identified_ts = other.identified_ts;
        }
        for ((mine, theirs), signal) in self
            .signals
            .iter_mut()
            .zip(&other.signals)
            .zip(&cfg.signals)
        {
            mine.absorb(theirs, joined, theirs_current, signal);
        }
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
        self.sanitize();
        Ok(Merge::Merged)
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
}
