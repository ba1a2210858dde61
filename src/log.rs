//! The learning loop's logs: what the worker appends (through a Queue, to R2) and what `leadscore
//! dataset` reads back. One record type per log, one NDJSON line per record.
//!
//! Objects are gzip NDJSON under `<kind>/dt=YYYY-MM-DD/<batch>.ndjson.gz`, partitioned by the
//! record's own time ([`Record::time`]: an event's `ts`, a score's time, an outcome's `ts`), so a
//! backfill lands on the days it happened. Delivery is at least once: a reader de-duplicates by
//! [`Record::key`] and keeps the first copy (copies are identical).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub use crate::calendar::{day_of, day_start};
use crate::event::Event;
use crate::features::Context;
use crate::outcome::Outcome;
use crate::score::{shortest_f64, Score, Scorer};
use crate::state::{clamp_ts, VisitorState};

/// A log, and the first segment of its object keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogKind {
    /// Accepted events.
    Events,
    /// Served scores.
    Scores,
    /// CRM outcomes.
    Outcomes,
}

impl LogKind {
    /// Every log.
    pub const ALL: [LogKind; 3] = [LogKind::Events, LogKind::Scores, LogKind::Outcomes];

    /// The name in object keys and in `/v1/export/{kind}`.
    pub fn as_str(self) -> &'static str {
        match self {
            LogKind::Events => "events",
            LogKind::Scores => "scores",
            LogKind::Outcomes => "outcomes",
        }
    }

    /// Reads a name written by [`LogKind::as_str`].
    pub fn parse(s: &str) -> Option<LogKind> {
        LogKind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// The key prefix of one day's objects: `events/dt=2026-12-03/`.
    pub fn day_prefix(self, day: &str) -> String {
        format!("{}/dt={day}/", self.as_str())
    }
}

/// How an event reached the worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventSource {
    /// `POST /v1/events` or `/v1/identify`: live, its `ts` clamped to the receive time.
    Live,
    /// `POST /v1/import`: history, with its own timestamp.
    Import,
}

/// How an outcome reached the worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutcomeSource {
    /// `POST /v1/outcomes`.
    Api,
    /// `POST /v1/outcomes/hubspot`.
    Hubspot,
}

/// An accepted event as the engine applied it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventRecord {
    /// Receive time (ms).
    pub received_at: i64,
    /// Live or imported.
    pub source: EventSource,
    /// The client's own `ts`, where the engine clamped it (the event's `ts` is the clamped time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_ts: Option<i64>,
    /// The event, `ts` as applied; the worker fills `ua` from the request where the client sent none.
    pub event: Event,
}

/// A served score: what the page or the CRM was told, with the inputs that made it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScoreRecord {
    /// `<visitor id>/<n>`: the visitor's n-th served score (n is kept in its state object).
    pub id: String,
    /// The visitor scored.
    pub visitor_id: String,
    /// Its lead, where known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lead_id: Option<String>,
    /// When the score was served (ms).
    pub ts: i64,
    /// The bundle that scored.
    pub model_version: String,
    /// The experiment arm that chose the bundle, where one ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arm: Option<String>,
    /// The feature vector, by name (NaN, written `null`, for a missing input).
    #[serde(deserialize_with = "crate::score::map_f64_or_nan")]
    pub features: BTreeMap<String, f64>,
    /// The model's probability before calibration.
    pub raw_probability: f64,
    /// Calibrated probability.
    pub probability: f64,
    /// 0–100.
    pub ai_score: u8,
    /// hot / warm / cold.
    pub tier: String,
}

/// An accepted outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutcomeRecord {
    /// Receive time (ms).
    pub received_at: i64,
    /// Which route took it.
    pub source: OutcomeSource,
    /// The outcome.
    pub outcome: Outcome,
}

/// One line of any log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "log", rename_all = "snake_case")]
pub enum Record {
    /// An accepted event.
    Event(EventRecord),
    /// A served score.
    Score(ScoreRecord),
    /// An accepted outcome.
    Outcome(OutcomeRecord),
}

impl Record {
    /// The record of an applied event: `ts` as the engine counted it (clamped for live events).
    pub fn event(e: &Event, received_at: i64, source: EventSource) -> Record {
        let now = (source == EventSource::Live).then_some(received_at);
        let ts = clamp_ts(e.ts, now);
        let mut event = e.clone();
        event.ts = ts;
        Record::Event(EventRecord {
            received_at,
            source,
            client_ts: (ts != e.ts).then_some(e.ts),
            event,
        })
    }

    /// The record of a served score: `n` is the visitor's count of logged scores; `ctx`: what
    /// the score read beyond the state (its account).
    pub fn score(
        sc: &Scorer,
        state: &VisitorState,
        ctx: Context<'_>,
        score: &Score,
        n: u64,
    ) -> Record {
        let x = sc.feature_vector_in(state, ctx);
        let features = sc
            .features()
            .names()
            .iter()
            .zip(x)
            .map(|(name, v)| (name.clone(), shortest_f64(v)))
            .collect();
        Record::Score(ScoreRecord {
            id: format!("{}/{n}", score.visitor_id),
            visitor_id: score.visitor_id.clone(),
            lead_id: score.lead_id.clone(),
            ts: score.score_timestamp,
            model_version: score.model_version.clone(),
            arm: score.arm.clone(),
            features,
            raw_probability: score.raw_probability,
            probability: score.probability,
            ai_score: score.ai_score,
            tier: score.tier.as_str().to_string(),
        })
    }

    /// The log it belongs to.
    pub fn kind(&self) -> LogKind {
        match self {
            Record::Event(_) => LogKind::Events,
            Record::Score(_) => LogKind::Scores,
            Record::Outcome(_) => LogKind::Outcomes,
        }
    }

    /// The time that partitions it (ms).
    pub fn time(&self) -> i64 {
        match self {
            Record::Event(r) => r.event.ts,
            Record::Score(r) => r.ts,
            Record::Outcome(r) => r.outcome.ts,
        }
    }

    /// What a reader de-duplicates on: event ids are unique per visitor, score and outcome ids
    /// per log.
    pub fn key(&self) -> String {
        match self {
            Record::Event(r) => format!("{}\u{1f}{}", r.event.visitor_id, r.event.id),
            Record::Score(r) => r.id.clone(),
            Record::Outcome(r) => r.outcome.id.clone(),
        }
    }
}

/// Largest message the producer sends (a Queue message takes up to 128 KB): a request's records are split.
pub const MAX_MESSAGE_BYTES: usize = 100 * 1024;

/// One record, serialized, with where it goes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Line {
    /// Its log.
    pub log: LogKind,
    /// Its partition day (`YYYY-MM-DD`).
    pub day: String,
    /// The record's JSON.
    pub json: String,
}

/// A message on the logs queue.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct LogMessage {
    /// The records of one request (or part of one).
    pub lines: Vec<Line>,
}

/// Records serialized into queue messages of at most [`MAX_MESSAGE_BYTES`] (a record bigger than
/// that goes alone): the producer's whole CPU cost of logging, apart from building the records.
pub fn pack(records: Vec<Record>) -> Result<Vec<LogMessage>, serde_json::Error> {
    let mut messages = Vec::new();
    let mut message = LogMessage::default();
    let mut size = 0;
    for r in records {
        let json = serde_json::to_string(&r)?;
        if size + json.len() > MAX_MESSAGE_BYTES && !message.lines.is_empty() {
            messages.push(std::mem::take(&mut message));
            size = 0;
        }
        size += json.len() + 32;
        message.lines.push(Line {
            log: r.kind(),
            day: day_of(r.time()),
            json,
        });
    }
    if !message.lines.is_empty() {
        messages.push(message);
    }
    Ok(messages)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A missing input (NaN) is written `null` and must read back, or the day's log would not.
    #[test]
    fn a_score_record_with_a_missing_feature_reads_back() {
        let line = r#"{"log":"score","id":"v/1","visitor_id":"v","ts":1,"model_version":"m","features":{"a":null,"b":2.5},"raw_probability":0.1,"probability":0.2,"ai_score":20,"tier":"cold"}"#;
        let Record::Score(r) = serde_json::from_str(line).unwrap() else {
            panic!("not a score")
        };
        assert!(r.features["a"].is_nan() && r.features["b"] == 2.5);
        let again = serde_json::to_string(&Record::Score(r)).unwrap();
        assert!(again.contains(r#""a":null"#), "{again}");
    }

    #[test]
    fn records_say_their_log_time_and_key() {
        let line = r#"{"log":"outcome","received_at":5,"source":"api","outcome":{"id":"o1","lead_id":"a@b.c","type":"won","ts":1796256000000}}"#;
        let r: Record = serde_json::from_str(line).unwrap();
        assert_eq!(r.kind(), LogKind::Outcomes);
        assert_eq!(r.time(), 1_796_256_000_000);
        assert_eq!(r.key(), "o1");
        assert_eq!(LogKind::parse("scores"), Some(LogKind::Scores));
        assert_eq!(
            LogKind::Events.day_prefix("2026-12-03"),
            "events/dt=2026-12-03/"
        );
    }
}
