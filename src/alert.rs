//! Alerts that matter to sales, beside the score webhooks: a **score spike** — the score up by at
//! least `points` within `within_ms` — becomes a `lead.score_spiked` event (entering hot is already
//! `lead.hot`, [`crate::webhook`]).
//!
//! The rule keeps, per visitor, the scores of the last `within_ms` as a queue of rising minima (the
//! window's lowest score is its first entry), so a spike is judged against the lowest score of the
//! window, whatever came between. After a spike the window starts again from the score that made it:
//! one alert per climb, not one per event of it.

use serde::{Deserialize, Serialize};

/// Event type of a spike.
pub const SCORE_SPIKED: &str = "lead.score_spiked";

/// Most entries a visitor keeps (rising minima; more only in a long, slow climb of many distinct
/// scores, where the oldest but the lowest go first).
pub const MAX_RECENT: usize = 16;

/// What a spike is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpikeRule {
    /// Points the score must rise by.
    pub points: u8,
    /// Within this long (ms).
    pub within_ms: i64,
}

/// A spike: from which score, at what time, to the score now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Spike {
    /// The window's lowest score.
    pub from_score: u8,
    /// When it was scored (ms).
    pub from_ts: i64,
    /// The score now.
    pub to_score: u8,
}

/// A visitor's recent scores, as the rule needs them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecentScores {
    /// (time, score), scores strictly rising from the first (the window's minimum).
    minima: Vec<(i64, u8)>,
}

impl RecentScores {
    /// Records `score` at `at` and returns the spike it makes, if it makes one.
    pub fn record(&mut self, rule: &SpikeRule, score: u8, at: i64) -> Option<Spike> {
        self.minima
            .retain(|&(t, _)| t > at - rule.within_ms && t <= at);
        let spike = self.minima.first().and_then(|&(t, low)| {
            (rule.points > 0 && score >= low.saturating_add(rule.points)).then_some(Spike {
                from_score: low,
                from_ts: t,
                to_score: score,
            })
        });
        if spike.is_some() {
            self.minima.clear();
        }
        while self.minima.last().is_some_and(|&(_, s)| s >= score) {
            self.minima.pop();
        }
        if self.minima.len() >= MAX_RECENT {
            self.minima.remove(1);
        }
        self.minima.push((at, score));
        spike
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULE: SpikeRule = SpikeRule {
        points: 20,
        within_ms: 60_000,
    };

    #[test]
    fn a_climb_within_the_window_is_one_spike_from_its_lowest_score() {
        let mut r = RecentScores::default();
        assert_eq!(r.record(&RULE, 30, 0), None);
        assert_eq!(r.record(&RULE, 25, 1_000), None, "a dip lowers the base");
        assert_eq!(r.record(&RULE, 40, 2_000), None);
        assert_eq!(
            r.record(&RULE, 45, 3_000),
            Some(Spike {
                from_score: 25,
                from_ts: 1_000,
                to_score: 45
            })
        );
        assert_eq!(
            r.record(&RULE, 50, 4_000),
            None,
            "the same climb alerts once"
        );
        assert_eq!(
            r.record(&RULE, 66, 5_000),
            Some(Spike {
                from_score: 45,
                from_ts: 3_000,
                to_score: 66
            })
        );
    }

    #[test]
    fn a_slow_rise_is_no_spike() {
        let mut r = RecentScores::default();
        for (i, s) in [10u8, 15, 20, 25, 30, 35].iter().enumerate() {
            // 5 points every 50 s: never 20 within a minute.
            assert_eq!(r.record(&RULE, *s, i as i64 * 50_000), None, "{s}");
        }
        assert!(r.minima.len() <= MAX_RECENT);
    }

    #[test]
    fn the_window_stays_bounded_in_a_long_climb() {
        let mut r = RecentScores::default();
        let slow = SpikeRule {
            points: 200,
            within_ms: i64::MAX / 4,
        };
        for s in 0..100u8 {
            r.record(&slow, s, i64::from(s));
        }
        assert_eq!(r.minima.len(), MAX_RECENT);
        assert_eq!(r.minima[0], (0, 0), "the lowest stays");
    }
}
