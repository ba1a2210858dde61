//! The outbox of one destination: per record only its latest score waits, flushed after a short
//! window, retried on the webhooks' schedule, never overwritten by an older score.
//!
//! Rules, each checked by score time ([`Write::scored_at`]):
//! * a write older than the one waiting, or than the one last written, is dropped (`stale`);
//! * a newer one is folded into the one waiting ([`Write::absorb`]): one API write for many score
//!   changes (`coalesced`);
//! * after a send, a record whose waiting write is no newer than what was sent leaves the outbox;
//!   one that got a newer score during the send stays, so the newer values go next;
//! * `Retry` waits for the CRM's `Retry-After` or the schedule (5 s … 10 h, 27 h 35 min in all),
//!   whichever is later; past the schedule the write is a dead letter, as are `Gone` and `Refused`;
//!   a record the CRM does not know is remembered, so its later scores are not sent again.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{Outcome, RecordKey, Write};
use crate::webhook::{retry_delay_seconds, RETRY_SCHEDULE_SECONDS};

/// A record's write waiting to be sent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Waiting {
    /// The values, as of the latest score.
    pub write: Write,
    /// When the record began waiting (ms): the flush window counts from here.
    pub since: i64,
    /// Not sent before this time (ms): a retry's wait.
    pub not_before: i64,
    /// When the first failed attempt was (ms), if one failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failing_since: Option<i64>,
    /// Failed attempts so far.
    #[serde(default)]
    pub attempts: u32,
}

/// What [`Outbox::offer`] did with a write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offered {
    /// The record now waits with it.
    Waiting,
    /// Folded into the record's waiting write.
    Coalesced,
    /// Older than what waits or was written: dropped.
    Stale,
    /// The CRM does not know the record: dropped.
    Gone,
}

/// What [`Outbox::settle`] did with a sent write.
#[derive(Debug, Clone, PartialEq)]
pub enum Settled {
    /// Written; the record left the outbox (or waits with newer values).
    Written,
    /// Waits again, not before this time (ms).
    Retry(i64),
    /// Given up: keep the write as a dead letter, with why.
    DeadLetter(String),
}

/// Counters, for the ratio of score changes to API calls and the reports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// Writes offered (one per score change sent to this destination).
    pub offered: u64,
    /// Folded into a waiting write.
    pub coalesced: u64,
    /// Dropped as older than what waits or was written.
    pub stale: u64,
    /// Records written.
    pub written: u64,
    /// Writes given up (dead letters).
    pub dead: u64,
    /// API calls made (batches sent), counted by the sender.
    pub calls: u64,
    /// Activities (tasks, notes) created.
    #[serde(default)]
    pub activities_created: u64,
    /// Activities given up (dead letters).
    #[serde(default)]
    pub activities_dead: u64,
}

/// Everything the outbox keeps about one record: a store may keep each record under its own key.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RecordState {
    /// The write waiting to be sent, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting: Option<Waiting>,
    /// Score time last written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub written_at: Option<i64>,
    /// The CRM does not know the record.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub gone: bool,
}

/// How retries are timed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryClock {
    /// Time compression (tests: 120 makes the 30-minute step 15 s); production 1.
    pub scale: f64,
    /// In [0, 1]: up to 10 % of the step added, so retries of many records spread.
    pub jitter: f64,
}

impl Default for RetryClock {
    fn default() -> Self {
        RetryClock {
            scale: 1.0,
            jitter: 0.0,
        }
    }
}

impl RetryClock {
    /// The retry schedule's whole span (ms), compressed by the scale: after it, a dead letter.
    pub fn give_up_after_ms(&self) -> i64 {
        let total = RETRY_SCHEDULE_SECONDS
            .iter()
            .map(|&s| f64::from(s))
            .sum::<f64>()
            * 1000.0;
        let scale = if self.scale.is_finite() && self.scale > 0.0 {
            self.scale
        } else {
            1.0
        };
        (total / scale).ceil() as i64
    }
}

impl RecordState {
    /// Takes a write for this record made at `now`.
    pub fn offer(&mut self, write: Write, now: i64, counts: &mut Counts) -> Offered {
        counts.offered += 1;
        if self.gone {
            return Offered::Gone;
        }
        if self.written_at.is_some_and(|t| write.scored_at < t) {
            counts.stale += 1;
            return Offered::Stale;
        }
        match &mut self.waiting {
            Some(w) if write.scored_at < w.write.scored_at => {
                counts.stale += 1;
                Offered::Stale
            }
            Some(w) => {
                w.write.absorb(write);
                counts.coalesced += 1;
                Offered::Coalesced
            }
            None => {
                self.waiting = Some(Waiting {
                    write,
                    since: now,
                    not_before: now,
                    failing_since: None,
                    attempts: 0,
                });
                Offered::Waiting
            }
        }
    }

    /// When the record is due (for a timer), if it waits.
    pub fn due_at(&self, flush_ms: i64) -> Option<i64> {
        self.waiting
            .as_ref()
            .map(|w| (w.since + flush_ms).max(w.not_before))
    }

    /// Records what became of `sent` (this record's write) at `now`.
    pub fn settle(
        &mut self,
        sent: &Write,
        outcome: &Outcome,
        now: i64,
        clock: RetryClock,
        counts: &mut Counts,
    ) -> Settled {
        let newer_waits = self
            .waiting
            .as_ref()
            .is_some_and(|w| w.write.scored_at > sent.scored_at);
        match outcome {
            Outcome::Written { .. } => {
                counts.written += 1;
                self.written_at = Some(
                    self.written_at
                        .map_or(sent.scored_at, |t| t.max(sent.scored_at)),
                );
                match &mut self.waiting {
                    Some(w) if newer_waits => (w.attempts, w.failing_since) = (0, None),
                    _ => self.waiting = None,
                }
                Settled::Written
            }
            Outcome::Retry { after_ms, reason } => {
                let Some(w) = &mut self.waiting else {
                    return Settled::Written; // settled already (a duplicate answer)
                };
                match retry_wait(
                    &mut w.failing_since,
                    &mut w.attempts,
                    *after_ms,
                    reason,
                    now,
                    clock,
                ) {
                    Ok(at) => {
                        w.not_before = at;
                        Settled::Retry(at)
                    }
                    Err(why) => {
                        self.waiting = None;
                        counts.dead += 1;
                        Settled::DeadLetter(why)
                    }
                }
            }
            Outcome::Gone { reason } | Outcome::Refused { reason } => {
                if matches!(outcome, Outcome::Gone { .. }) {
                    self.gone = true;
                    self.waiting = None;
                } else if !newer_waits {
                    self.waiting = None;
                }
                counts.dead += 1;
                Settled::DeadLetter(reason.clone())
            }
        }
    }
}

/// A failed attempt at `now`: when to try again (the CRM's wait or the schedule, whichever is
/// later), or why to give up (the schedule is over).
pub fn retry_wait(
    failing_since: &mut Option<i64>,
    attempts: &mut u32,
    after_ms: Option<i64>,
    reason: &str,
    now: i64,
    clock: RetryClock,
) -> Result<i64, String> {
    let first = *failing_since.get_or_insert(now);
    if now - first >= clock.give_up_after_ms() {
        return Err(format!(
            "gave up after {} attempts: {reason}",
            *attempts + 1
        ));
    }
    *attempts += 1;
    let after_s =
        after_ms.map(|ms| (ms.max(0) as u64).div_ceil(1000).min(u64::from(u32::MAX)) as u32);
    let wait = i64::from(retry_delay_seconds(
        now - first,
        after_s,
        clock.scale,
        clock.jitter,
    )) * 1000;
    Ok(now + wait)
}

/// Up to `max` writes to send at `now` among `waiting`: records that have waited `flush_ms` and
/// whose retry wait is over, longest waiting first.
pub fn due<'a>(
    waiting: impl IntoIterator<Item = &'a Waiting>,
    now: i64,
    flush_ms: i64,
    max: usize,
) -> Vec<Write> {
    let mut ready: Vec<&Waiting> = waiting
        .into_iter()
        .filter(|w| w.since + flush_ms <= now && w.not_before <= now)
        .collect();
    ready.sort_by_key(|w| (w.since.max(w.not_before), w.write.record.clone()));
    ready
        .into_iter()
        .take(max)
        .map(|w| w.write.clone())
        .collect()
}

/// A destination's outbox in memory: the records' states and the counters (what a store keeps
/// record by record).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Outbox {
    records: BTreeMap<RecordKey, RecordState>,
    /// Counters.
    pub counts: Counts,
}

impl Outbox {
    /// Takes a write made at `now`.
    pub fn offer(&mut self, write: Write, now: i64) -> Offered {
        let rs = self.records.entry(write.record.clone()).or_default();
        rs.offer(write, now, &mut self.counts)
    }

    /// Up to `max` writes due at `now`.
    pub fn due(&self, now: i64, flush_ms: i64, max: usize) -> Vec<Write> {
        due(
            self.records.values().filter_map(|r| r.waiting.as_ref()),
            now,
            flush_ms,
            max,
        )
    }

    /// When the next record becomes due, if any waits.
    pub fn next_due(&self, flush_ms: i64) -> Option<i64> {
        self.records
            .values()
            .filter_map(|r| r.due_at(flush_ms))
            .min()
    }

    /// Records what became of `sent` at `now`.
    pub fn settle(
        &mut self,
        sent: &Write,
        outcome: &Outcome,
        now: i64,
        clock: RetryClock,
    ) -> Settled {
        let rs = self.records.entry(sent.record.clone()).or_default();
        rs.settle(sent, outcome, now, clock, &mut self.counts)
    }

    /// Records waiting.
    pub fn len(&self) -> usize {
        self.records
            .values()
            .filter(|r| r.waiting.is_some())
            .count()
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Score time last written to a record.
    pub fn written_at(&self, key: &RecordKey) -> Option<i64> {
        self.records.get(key).and_then(|r| r.written_at)
    }
}

#[cfg(test)]
mod tests {
    use super::super::CrmObject;
    use super::*;

    fn w(id: &str, at: i64, score: &str) -> Write {
        Write {
            record: RecordKey {
                object: CrmObject::Contact,
                id: id.into(),
            },
            scored_at: at,
            fields: [("score".to_string(), score.to_string())].into(),
        }
    }

    #[test]
    fn the_latest_score_waits_and_older_ones_are_dropped() {
        let mut o = Outbox::default();
        assert_eq!(o.offer(w("1", 10, "40"), 0), Offered::Waiting);
        assert_eq!(o.offer(w("1", 30, "60"), 1), Offered::Coalesced);
        assert_eq!(o.offer(w("1", 20, "50"), 2), Offered::Stale);
        assert_eq!(
            o.due(1_000, 5_000, 100),
            vec![],
            "the flush window has not passed"
        );
        let due = o.due(5_000, 5_000, 100);
        assert_eq!(due.len(), 1);
        assert_eq!(
            (due[0].scored_at, due[0].fields["score"].as_str()),
            (30, "60")
        );
        assert_eq!(o.counts.offered, 3);
        assert_eq!((o.counts.coalesced, o.counts.stale), (1, 1));
    }

    #[test]
    fn a_score_newer_than_the_one_in_flight_is_sent_next_and_an_older_never() {
        let mut o = Outbox::default();
        o.offer(w("1", 10, "40"), 0);
        let sent = o.due(10, 0, 10).remove(0);
        o.offer(w("1", 20, "55"), 11); // arrives during the send
        assert_eq!(
            o.settle(
                &sent,
                &Outcome::Written { now_id: None },
                12,
                RetryClock::default()
            ),
            Settled::Written
        );
        let next = o.due(12, 0, 10);
        assert_eq!(next[0].fields["score"], "55");
        assert_eq!(
            o.settle(
                &next[0],
                &Outcome::Written { now_id: None },
                13,
                RetryClock::default()
            ),
            Settled::Written
        );
        assert!(o.is_empty());
        // A late copy of the first score (a replay, a retried message) is older than what was written.
        assert_eq!(o.offer(w("1", 10, "40"), 14), Offered::Stale);
        assert_eq!(o.written_at(&sent.record), Some(20));
    }

    #[test]
    fn retries_honour_retry_after_then_give_up_after_the_schedule() {
        let mut o = Outbox::default();
        o.offer(w("1", 10, "40"), 0);
        let sent = o.due(0, 0, 1).remove(0);
        let busy = Outcome::Retry {
            after_ms: Some(9_000),
            reason: "429".into(),
        };
        assert_eq!(
            o.settle(&sent, &busy, 100, RetryClock::default()),
            Settled::Retry(9_100),
            "Retry-After beats the 5 s step"
        );
        assert!(o.due(9_099, 0, 1).is_empty());
        assert_eq!(o.due(9_100, 0, 1).len(), 1);
        let down = Outcome::Retry {
            after_ms: None,
            reason: "503".into(),
        };
        let Settled::Retry(t) = o.settle(&sent, &down, 9_100, RetryClock::default()) else {
            panic!()
        };
        assert!(
            t > 9_100 + 200_000,
            "the schedule's next step (5 min from the first failure)"
        );
        match o.settle(
            &sent,
            &down,
            100 + RetryClock::default().give_up_after_ms(),
            RetryClock::default(),
        ) {
            Settled::DeadLetter(why) => assert!(why.contains("503"), "{why}"),
            other => panic!("{other:?}"),
        }
        assert!(o.is_empty());
        assert_eq!(o.counts.dead, 1);
    }

    #[test]
    fn a_record_the_crm_does_not_know_is_reported_once_and_not_sent_again() {
        let mut o = Outbox::default();
        o.offer(w("9", 10, "40"), 0);
        let sent = o.due(0, 0, 1).remove(0);
        let gone = Outcome::Gone {
            reason: "OBJECT_NOT_FOUND".into(),
        };
        assert_eq!(
            o.settle(&sent, &gone, 1, RetryClock::default()),
            Settled::DeadLetter("OBJECT_NOT_FOUND".into())
        );
        assert_eq!(o.offer(w("9", 20, "70"), 2), Offered::Gone);
        assert!(o.is_empty());
    }

    #[test]
    fn due_is_longest_waiting_first_within_the_batch_size() {
        let mut o = Outbox::default();
        for (i, id) in ["c", "a", "b"].iter().enumerate() {
            o.offer(w(id, 1, "1"), i as i64);
        }
        let ids: Vec<String> = o.due(10, 0, 2).into_iter().map(|w| w.record.id).collect();
        assert_eq!(ids, ["c", "a"]);
        assert_eq!(o.next_due(5), Some(5));
    }
}
