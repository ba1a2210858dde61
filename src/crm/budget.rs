//! A CRM account's call budget: never more than its burst limit in any rolling interval (HubSpot:
//! 100–190 calls per 10 s per app), a daily allocation (Salesforce's rolling 24 h), and the CRM's
//! own "wait" (a 429's `Retry-After`, a daily limit hit).
//!
//! The burst limit is kept with a log of the last calls' times, not a refilling token bucket: a
//! bucket of N tokens refilled at N per interval lets up to 2N calls into one rolling interval (N at
//! once, N more as it refills), which is exactly what a rolling-window limit counts. The window is
//! widened by [`Limits::margin_ms`]: the CRM counts calls when they arrive, and one call may take
//! longer on the way than the next. The daily
//! allocation is counted in hourly buckets over the last 25 hours, which over-counts a rolling
//! 24 h a little and so never exceeds it.

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};

use super::CrmError;

const HOUR_MS: i64 = 3_600_000;

/// A CRM account's limits.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Calls allowed in any rolling `interval_ms`.
    pub burst: u32,
    /// The burst limit's interval (ms).
    pub interval_ms: i64,
    /// Calls allowed in any rolling 24 h, if limited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub daily: Option<u64>,
}

/// Largest burst a configuration may give (HubSpot's highest documented is 250 per 10 s).
pub const MAX_BURST: u32 = 1_000;

impl Limits {
    /// How much wider than `interval_ms` the burst window is kept: a tenth of it, at least 200 ms.
    pub fn margin_ms(&self) -> i64 {
        (self.interval_ms / 10).max(200)
    }

    /// Checks the numbers.
    pub fn validate(&self, at: &str) -> Result<(), CrmError> {
        if !(1..=MAX_BURST).contains(&self.burst) {
            return Err(CrmError::Config(format!(
                "{at}.burst must be 1–{MAX_BURST}, got {}",
                self.burst
            )));
        }
        if !(100..=86_400_000).contains(&self.interval_ms) {
            return Err(CrmError::Config(format!(
                "{at}.interval_ms must be 100–86400000, got {}",
                self.interval_ms
            )));
        }
        if self.daily == Some(0) {
            return Err(CrmError::Config(format!("{at}.daily must be at least 1")));
        }
        Ok(())
    }
}

/// What the account has used.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Budget {
    /// Times of the calls within the last burst interval, oldest first.
    recent: VecDeque<i64>,
    /// Calls per hour (hour index since the epoch), the last 25 hours.
    hours: BTreeMap<i64, u64>,
    /// No call before this time (ms): the CRM said to wait.
    hold_until: i64,
}

impl Budget {
    fn forget(&mut self, limits: &Limits, now: i64) {
        let window = limits.interval_ms + limits.margin_ms();
        while self.recent.front().is_some_and(|&t| t <= now - window) {
            self.recent.pop_front();
        }
        let oldest = now.div_euclid(HOUR_MS) - 24;
        self.hours.retain(|&h, _| h >= oldest);
    }

    /// Calls counted against the daily allocation (the last 25 hourly buckets).
    pub fn used_daily(&self) -> u64 {
        self.hours.values().sum()
    }

    /// Takes one call at `now` if the limits allow it; else `Err(t)`: not before `t` (ms).
    pub fn take(&mut self, limits: &Limits, now: i64) -> Result<(), i64> {
        self.forget(limits, now);
        if now < self.hold_until {
            return Err(self.hold_until);
        }
        if self.recent.len() >= limits.burst as usize {
            let oldest = self.recent.front().copied().unwrap_or(now);
            return Err(oldest + limits.interval_ms + limits.margin_ms() + 1);
        }
        if let Some(daily) = limits.daily {
            if self.used_daily() >= daily {
                // The oldest hour with calls leaves the count when it is 25 hours old.
                let oldest = self.hours.keys().next().copied().unwrap_or(0);
                return Err((oldest + 25) * HOUR_MS);
            }
        }
        self.recent.push_back(now);
        *self.hours.entry(now.div_euclid(HOUR_MS)).or_insert(0) += 1;
        Ok(())
    }

    /// The CRM said to wait until `until` (ms): no call before.
    pub fn hold(&mut self, until: i64) {
        self.hold_until = self.hold_until.max(until);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HS: Limits = Limits {
        burst: 100,
        interval_ms: 10_000,
        daily: None,
    };

    #[test]
    fn no_rolling_interval_ever_holds_more_than_the_burst() {
        let mut b = Budget::default();
        let mut calls = Vec::new();
        let mut now = 0;
        // Callers that always want more, at irregular times, for a minute.
        while now < 60_000 {
            match b.take(&HS, now) {
                Ok(()) => {
                    calls.push(now);
                    now += (now * 7919) % 97; // bursts of calls at the same ms, then gaps
                }
                Err(t) => now = t,
            }
        }
        for (i, &t) in calls.iter().enumerate() {
            let within = calls[i..]
                .iter()
                .take_while(|&&u| u < t + HS.interval_ms)
                .count();
            assert!(within <= 100, "{within} calls in the 10 s from {t}");
        }
        // Even calls that arrive up to the margin later than they left stay within the burst.
        for (i, &t) in calls.iter().enumerate() {
            let late = t + HS.margin_ms();
            let within = calls[..i]
                .iter()
                .rev()
                .take_while(|&&u| u > late - HS.interval_ms)
                .count()
                + 1;
            assert!(within <= 100, "{within} calls in the 10 s before {late}");
        }
        assert!(calls.len() >= 500, "uses the budget: {} calls", calls.len());
    }

    #[test]
    fn a_token_bucket_would_have_let_twice_the_burst_through() {
        // The reason for the log: 100 at once, then the refill's 100 more within the same 10 s.
        let (cap, rate) = (100.0f64, 100.0 / 10_000.0);
        let (mut tokens, mut last, mut n) = (cap, 0i64, 0);
        for now in (0..10_000).step_by(10) {
            tokens = (tokens + (now - last) as f64 * rate).min(cap);
            last = now;
            while tokens >= 1.0 {
                tokens -= 1.0;
                n += 1;
            }
        }
        assert!(n > 190, "{n}");
    }

    #[test]
    fn the_daily_allocation_and_the_crms_wait_are_kept() {
        let day = Limits {
            burst: 1_000,
            interval_ms: 1_000,
            daily: Some(3),
        };
        let mut b = Budget::default();
        for t in [0, 2_000, 4_000] {
            assert_eq!(b.take(&day, t), Ok(()));
        }
        let Err(t) = b.take(&day, 5_000) else {
            panic!()
        };
        assert_eq!(t, 25 * HOUR_MS);
        assert_eq!(b.take(&day, t), Ok(()));
        let mut b = Budget::default();
        b.hold(9_000);
        assert_eq!(b.take(&HS, 1_000), Err(9_000));
        assert_eq!(b.take(&HS, 9_000), Ok(()));
    }

    #[test]
    fn bad_limits_are_refused_by_name() {
        let bad = Limits { burst: 0, ..HS };
        assert!(bad
            .validate("hubspot.limits")
            .unwrap_err()
            .to_string()
            .contains("hubspot.limits.burst"));
        assert!(HS.validate("x").is_ok());
    }
}
