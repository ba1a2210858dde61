//! The records a build reads: one NDJSON line → a log record, and the de-duplicating collection of
//! records grouped by visitor.

use std::collections::{HashMap, HashSet};

use serde::Deserialize;

use super::{By, DatasetError, Options};
use crate::event::{Event, EventError};
use crate::log::{EventRecord, EventSource, OutcomeRecord, OutcomeSource, Record, ScoreRecord};
use crate::outcome::{Outcome, OutcomeError};

/// Why a line is not a record of the log being read.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LineError {
    /// A bare event that is not a valid event.
    #[error(transparent)]
    Event(#[from] EventError),
    /// A bare outcome that is not a valid outcome.
    #[error(transparent)]
    Outcome(#[from] OutcomeError),
    /// A `{"log":…}` line that is not a valid log record.
    #[error("invalid log record: {0}")]
    Record(String),
    /// A valid record of another log (a score or an outcome among events…).
    #[error("{found} record, where {expected} records are expected")]
    WrongLog {
        /// The record's log.
        found: &'static str,
        /// The log being read.
        expected: &'static str,
    },
}

/// Only the tag, to tell a log record that does not start with it from a bare event or outcome.
#[derive(Deserialize)]
struct Probe {
    #[serde(default)]
    log: Option<serde_json::Value>,
}

/// Whether the text is a log record (`{"log":…}`): the worker writes the tag first; anything else
/// that has a top-level `log` key is one too.
fn parse_record(text: &str) -> Option<Result<Record, LineError>> {
    let tagged = text.starts_with("{\"log\"")
        || (text.contains("\"log\"")
            && serde_json::from_str::<Probe>(text).is_ok_and(|p| p.log.is_some()));
    tagged.then(|| serde_json::from_str(text).map_err(|e| LineError::Record(e.to_string())))
}

/// The one tag [`EventLine`] takes.
#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum EventTag {
    Event,
}

/// An event record read straight into its fields: `Record`'s tagged form buffers the whole
/// line before reading it (a third of a build's time), this does not. Any line it refuses is
/// read again as a [`Record`], which decides (so a field added to [`EventRecord`] is an error
/// here at compile time, where the record is assembled, not a refused line).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EventLine {
    #[allow(dead_code)] // read to be checked
    log: EventTag,
    received_at: i64,
    source: EventSource,
    #[serde(default)]
    client_ts: Option<i64>,
    event: Event,
}

fn fast_event_record(text: &str) -> Option<Record> {
    let l: EventLine = serde_json::from_str(text).ok()?;
    Some(Record::Event(EventRecord {
        received_at: l.received_at,
        source: l.source,
        client_ts: l.client_ts,
        event: l.event,
    }))
}

/// "a score", "an outcome", …: what a misplaced record is, for its error.
fn log_name(r: &Record) -> &'static str {
    match r {
        Record::Event(_) => "an event",
        Record::Score(_) => "a score",
        Record::Outcome(_) => "an outcome",
    }
}

/// Reads one line of an event log: a log record (`{"log":"event",…}`) or a bare [`Event`] (what
/// `leadscore features` reads). `None` for a blank line. A bare event reads as an imported record
/// received at its own `ts`. Every event is validated.
pub fn parse_event_line(line: &str) -> Result<Option<Record>, LineError> {
    let text = line.trim();
    if text.is_empty() {
        return Ok(None);
    }
    let record = match text.starts_with("{\"log\":\"event\"") {
        true => fast_event_record(text).map(Ok),
        false => None,
    };
    match record.or_else(|| parse_record(text)) {
        Some(Ok(Record::Event(r))) => {
            r.event.validate()?;
            Ok(Some(Record::Event(r)))
        }
        Some(Ok(other)) => Err(LineError::WrongLog {
            found: log_name(&other),
            expected: "event",
        }),
        Some(Err(e)) => Err(e),
        None => {
            let event = Event::parse(text)?;
            Ok(Some(Record::Event(EventRecord {
                received_at: event.ts,
                source: EventSource::Import,
                client_ts: None,
                event,
            })))
        }
    }
}

/// Reads one line of an outcome log: a log record (`{"log":"outcome",…}`) or a bare [`Outcome`].
/// `None` for a blank line. A bare outcome reads as received through the API at its own `ts`.
/// Every outcome is validated.
pub fn parse_outcome_line(line: &str) -> Result<Option<Record>, LineError> {
    let text = line.trim();
    if text.is_empty() {
        return Ok(None);
    }
    match parse_record(text) {
        Some(Ok(Record::Outcome(r))) => {
            r.outcome.validate()?;
            Ok(Some(Record::Outcome(r)))
        }
        Some(Ok(other)) => Err(LineError::WrongLog {
            found: log_name(&other),
            expected: "outcome",
        }),
        Some(Err(e)) => Err(e),
        None => {
            let outcome: Outcome =
                serde_json::from_str(text).map_err(|e| OutcomeError::Schema(e.to_string()))?;
            outcome.validate()?;
            Ok(Some(Record::Outcome(OutcomeRecord {
                received_at: outcome.ts,
                source: OutcomeSource::Api,
                outcome,
            })))
        }
    }
}

/// Reads one line of a score log (`{"log":"score",…}`). `None` for a blank line.
pub fn parse_score_line(line: &str) -> Result<Option<ScoreRecord>, LineError> {
    let text = line.trim();
    if text.is_empty() {
        return Ok(None);
    }
    match parse_record(text) {
        Some(Ok(Record::Score(r))) => Ok(Some(r)),
        Some(Ok(other)) => Err(LineError::WrongLog {
            found: log_name(&other),
            expected: "score",
        }),
        Some(Err(e)) => Err(e),
        None => Err(LineError::Record(
            "not a score record (`{\"log\":\"score\",…}`)".into(),
        )),
    }
}

/// Drops the later copies of a visitor's events (in input order): the same as de-duplicating by
/// [`Record::key`], which is the visitor id and the event id, within one visitor's events.
/// Returns how many were dropped.
pub(super) fn dedup_events(list: &mut Vec<Logged>) -> u64 {
    if list.len() < 2 {
        return 0;
    }
    let mut order: Vec<usize> = (0..list.len()).collect();
    // Index order is input order: the first of equal ids sorts first.
    order.sort_unstable_by(|&a, &b| list[a].event.id.cmp(&list[b].event.id).then(a.cmp(&b)));
    let mut keep = vec![true; list.len()];
    for pair in order.windows(2) {
        if list[pair[0]].event.id == list[pair[1]].event.id {
            keep[pair[1]] = false;
        }
    }
    let before = list.len();
    let mut i = 0;
    list.retain(|_| {
        i += 1;
        keep[i - 1]
    });
    (before - list.len()) as u64
}

/// An event and its place in the input (ties in `ts` keep it).
#[derive(Debug, Clone)]
pub(super) struct Logged {
    pub(super) seq: u64,
    pub(super) event: Event,
}

/// The records of one build, added one at a time (from any number of files): events grouped by
/// visitor in input order, the label's outcomes.
///
/// Records are de-duplicated by [`Record::key`], the first copy kept: outcomes as they come,
/// events per visitor when the build starts (within a visitor, equal keys are equal event ids),
/// which saves hashing every key.
#[derive(Debug)]
pub struct Inputs {
    pub(super) opts: Options,
    seen: HashSet<String>,
    pub(super) visitors: HashMap<String, Vec<Logged>>,
    pub(super) outcomes: Vec<Outcome>,
    seq: u64,
    /// Latest event or outcome time read (the default as-of).
    pub(super) latest: Option<i64>,
    pub(super) events_read: u64,
    pub(super) outcomes_read: u64,
    pub(super) duplicates: u64,
    pub(super) other_types: u64,
    pub(super) other_shards: u64,
    /// Served score times by visitor id and by lead id (`--decisions served` only).
    pub(super) served: Served,
}

/// When scores were served, by whom ([`super::Decisions::Served`]).
#[derive(Debug, Default)]
pub(super) struct Served {
    pub(super) visitors: HashMap<String, Vec<i64>>,
    pub(super) leads: HashMap<String, Vec<i64>>,
    pub(super) records: u64,
}

impl Inputs {
    /// An empty collection for a build with these options (checked here).
    pub fn new(opts: Options) -> Result<Inputs, DatasetError> {
        if opts.window_ms <= 0 {
            return Err(DatasetError::Window(format!(
                "{} ms: must be positive",
                opts.window_ms
            )));
        }
        Ok(Inputs {
            opts,
            seen: HashSet::new(),
            visitors: HashMap::new(),
            outcomes: Vec::new(),
            seq: 0,
            latest: None,
            events_read: 0,
            outcomes_read: 0,
            duplicates: 0,
            other_types: 0,
            other_shards: 0,
            served: Served::default(),
        })
    }

    fn saw(&mut self, ts: i64) {
        self.latest = Some(self.latest.map_or(ts, |t| t.max(ts)));
    }

    /// Adds one record; a copy of a record added before (same [`Record::key`]) will be dropped,
    /// and a score record is (not an input of training sets).
    pub fn add(&mut self, record: Record) {
        match record {
            Record::Event(r) => {
                self.events_read += 1;
                self.saw(r.event.ts);
                if let (By::Visitor, Some(shard), false) =
                    (self.opts.by, self.opts.shard, self.opts.all_visitors)
                {
                    if !shard.keeps(&r.event.visitor_id) {
                        self.other_shards += 1;
                        return;
                    }
                }
                self.seq += 1;
                let logged = Logged {
                    seq: self.seq,
                    event: r.event,
                };
                match self.visitors.get_mut(&logged.event.visitor_id) {
                    Some(list) => list.push(logged),
                    None => {
                        self.visitors
                            .insert(logged.event.visitor_id.clone(), vec![logged]);
                    }
                }
            }
            Record::Outcome(r) => {
                self.outcomes_read += 1;
                self.saw(r.outcome.ts);
                let record = Record::Outcome(r);
                if !self.seen.insert(record.key()) {
                    self.duplicates += 1;
                    return;
                }
                let Record::Outcome(r) = record else { return };
                if r.outcome.kind == self.opts.label {
                    self.outcomes.push(r.outcome);
                } else {
                    self.other_types += 1;
                }
            }
            Record::Score(r) if self.opts.decisions == super::Decisions::Served => {
                let ts = r.ts;
                if !self.seen.insert(format!("score\u{1f}{}", r.id)) {
                    self.duplicates += 1;
                    return;
                }
                self.served.records += 1;
                match r.lead_id {
                    Some(l) if self.opts.by != By::Visitor => {
                        self.served.leads.entry(l).or_default().push(ts)
                    }
                    _ => self
                        .served
                        .visitors
                        .entry(r.visitor_id)
                        .or_default()
                        .push(ts),
                }
            }
            Record::Score(_) => {}
        }
    }

    /// Adds a bare event (as an imported record).
    pub fn add_event(&mut self, event: Event) {
        self.add(Record::Event(EventRecord {
            received_at: event.ts,
            source: EventSource::Import,
            client_ts: None,
            event,
        }));
    }

    /// Adds a bare outcome (as received through the API).
    pub fn add_outcome(&mut self, outcome: Outcome) {
        self.add(Record::Outcome(OutcomeRecord {
            received_at: outcome.ts,
            source: OutcomeSource::Api,
            outcome,
        }));
    }

    /// Parses and adds one line of an event log ([`parse_event_line`]).
    pub fn add_event_line(&mut self, line: &str) -> Result<(), LineError> {
        if let Some(r) = parse_event_line(line)? {
            self.add(r);
        }
        Ok(())
    }

    /// Parses and adds one line of a score log ([`parse_score_line`]): only `--decisions served`
    /// reads them.
    pub fn add_score_line(&mut self, line: &str) -> Result<(), LineError> {
        if let Some(r) = parse_score_line(line)? {
            self.add(Record::Score(r));
        }
        Ok(())
    }

    /// Parses and adds one line of an outcome log ([`parse_outcome_line`]).
    pub fn add_outcome_line(&mut self, line: &str) -> Result<(), LineError> {
        if let Some(r) = parse_outcome_line(line)? {
            self.add(r);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcome::OutcomeType;

    const EV: &str = r#"{"id":"e1","type":"page","ts":1700000000000,"visitor_id":"v1","path":"/"}"#;

    #[test]
    fn reads_log_records_and_bare_lines() {
        let bare = parse_event_line(EV).unwrap().unwrap();
        let logged = format!(r#"{{"log":"event","received_at":5,"source":"live","event":{EV}}}"#);
        let rec = parse_event_line(&logged).unwrap().unwrap();
        // The tag elsewhere than first is still a record.
        let late = format!(r#"{{"received_at":5,"source":"live","event":{EV},"log":"event"}}"#);
        assert_eq!(parse_event_line(&late).unwrap().unwrap(), rec);
        assert_eq!(bare.key(), rec.key());
        assert_eq!(rec.key(), "v1\u{1f}e1");
        assert_eq!(parse_event_line("  \t").unwrap(), None);

        let o = r#"{"id":"o1","lead_id":"l@x","type":"won","ts":1700000000000}"#;
        let bare = parse_outcome_line(o).unwrap().unwrap();
        let rec = parse_outcome_line(&format!(
            r#"{{"log":"outcome","received_at":5,"source":"hubspot","outcome":{o}}}"#
        ))
        .unwrap()
        .unwrap();
        assert_eq!(bare.key(), rec.key());
        let Record::Outcome(r) = rec else { panic!() };
        assert_eq!(r.outcome.kind, OutcomeType::Customer);
    }

    #[test]
    fn says_what_is_wrong_with_a_line() {
        let e = parse_event_line(r#"{"id":"a","type":"page","ts":"x","visitor_id":"v"}"#);
        assert!(e.unwrap_err().to_string().contains("invalid type"));
        let e = parse_event_line("{nope").unwrap_err();
        assert!(e.to_string().contains("invalid event JSON"), "{e}");
        let e = parse_event_line(r#"{"log":"event","received_at":5}"#).unwrap_err();
        assert!(e.to_string().contains("invalid log record"), "{e}");
        let o = r#"{"log":"outcome","received_at":5,"source":"api","outcome":{"id":"o1","visitor_id":"v","type":"won","ts":1700000000000}}"#;
        let e = parse_event_line(o).unwrap_err();
        assert_eq!(
            e.to_string(),
            "an outcome record, where event records are expected"
        );
        let e = parse_outcome_line(EV).unwrap_err();
        assert!(e.to_string().contains("invalid outcome"), "{e}");
        // A logged event is validated too: the log is input like any other.
        let bad = r#"{"log":"event","received_at":5,"source":"live","event":{"id":"e","type":"page","ts":5,"visitor_id":"v","path":"/"}}"#;
        assert!(parse_event_line(bad)
            .unwrap_err()
            .to_string()
            .contains("ts"));
        let bad = r#"{"id":"o1","type":"won","ts":1700000000000}"#;
        assert!(parse_outcome_line(bad)
            .unwrap_err()
            .to_string()
            .contains("exactly one"));
    }

    /// Per-visitor de-duplication is de-duplication by `Record::key`, keeping the first copy.
    #[test]
    fn event_copies_are_the_records_with_equal_keys() {
        let ids = ["a", "b", "a", "c", "b", "a", "ab"];
        let mut list: Vec<Logged> = ids
            .iter()
            .enumerate()
            .map(|(i, id)| {
                let text = EV.replace("\"e1\"", &format!("\"{id}\""));
                let mut event = Event::parse(&text).unwrap();
                event.ts += i as i64; // tells the copies apart
                Logged {
                    seq: i as u64,
                    event,
                }
            })
            .collect();
        let mut keys = HashSet::new();
        let want: Vec<i64> = list
            .iter()
            .filter(|l| {
                let r = parse_event_line(&serde_json::to_string(&l.event).unwrap()).unwrap();
                keys.insert(r.unwrap().key())
            })
            .map(|l| l.event.ts)
            .collect();
        assert_eq!(dedup_events(&mut list), 3);
        let got: Vec<i64> = list.iter().map(|l| l.event.ts).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn keeps_the_first_copy_and_only_the_label() {
        let mut inputs = Inputs::new(Options::new(OutcomeType::Customer)).unwrap();
        inputs.add_event_line(EV).unwrap();
        inputs.add_event_line(EV).unwrap();
        inputs
            .add_event_line(&EV.replace("\"v1\"", "\"v2\""))
            .unwrap();
        for t in ["won", "won", "qualified"] {
            let id = if t == "qualified" { "o2" } else { "o1" };
            inputs
                .add_outcome_line(&format!(
                    r#"{{"id":"{id}","lead_id":"l","type":"{t}","ts":1700000000001}}"#
                ))
                .unwrap();
        }
        assert_eq!(inputs.events_read, 3);
        assert_eq!(inputs.outcomes_read, 3);
        assert_eq!(inputs.duplicates, 1, "the outcome copy");
        assert_eq!(inputs.other_types, 1);
        assert_eq!(inputs.visitors.len(), 2);
        assert_eq!(dedup_events(inputs.visitors.get_mut("v1").unwrap()), 1);
        assert_eq!(inputs.visitors["v1"].len(), 1);
        assert_eq!(inputs.outcomes.len(), 1);
        assert_eq!(inputs.latest, Some(1_700_000_000_001));
    }
}
