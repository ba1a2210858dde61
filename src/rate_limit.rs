//! Per-visitor rate limit: at most `limit` events in each one-minute window (a fixed window that
//! starts with the first event after the last one ended). The worker keeps one window per visitor
//! object; the rule lives here so it is tested natively.

use serde::{Deserialize, Serialize};

/// Window length.
pub const WINDOW_MS: i64 = 60_000;

/// A visitor's current window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RateWindow {
    /// When the window started (ms).
    pub start: i64,
    /// Events counted in it.
    pub count: u32,
}

impl RateWindow {
    /// Admits `n` events at `now` under `limit` per window, counting them, or refuses them all
    /// with the whole seconds until the window ends (at least 1): a batch is never half-taken.
    pub fn admit(&mut self, now: i64, n: u32, limit: u32) -> Result<(), u32> {
        if now - self.start >= WINDOW_MS {
            self.start = now;
            self.count = 0;
        }
        if self.count.saturating_add(n) > limit {
            let left_ms = (self.start + WINDOW_MS - now).max(0);
            return Err(u32::try_from((left_ms + 999) / 1000).unwrap_or(60).max(1));
        }
        self.count += n;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_up_to_the_limit_then_refuses_until_the_window_ends() {
        let mut w = RateWindow::default();
        let t = 1_000_000;
        assert_eq!(w.admit(t, 400, 600), Ok(()));
        assert_eq!(w.admit(t + 1_000, 200, 600), Ok(()));
        assert_eq!(
            w.admit(t + 20_500, 1, 600),
            Err(40),
            "40 s (rounded up) left"
        );
        assert_eq!(w.count, 600, "a refused batch is not counted");
        assert_eq!(w.admit(t + 59_999, 1, 600), Err(1));
        assert_eq!(w.admit(t + 60_000, 600, 600), Ok(()), "a new window");
        assert_eq!(w.start, t + 60_000);
    }

    #[test]
    fn a_batch_larger_than_the_limit_is_refused_whole() {
        let mut w = RateWindow::default();
        assert_eq!(w.admit(5_000_000, 601, 600), Err(60));
        assert_eq!(w.count, 0);
        assert_eq!(w.admit(5_000_000, 600, 600), Ok(()));
    }
}
