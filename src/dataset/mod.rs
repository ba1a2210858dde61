//! Point-in-time training sets: logged events and CRM outcomes ([`crate::log`]) turned into
//! labelled feature rows, each row computed from exactly what the engine knew at its decision time.
//! `leadscore dataset` is the front end (it reads files and writes the CSV); this module works on
//! parsed records and does no I/O. The CSV itself — columns, writing, reading rows back — is
//! [`csv`]'s.
//!
//! # The row definition
//!
//! Inputs are de-duplicated by [`crate::log::Record::key`] (the first copy is kept: delivery is at
//! least once). Events and outcomes later than the *as-of* time (default: the latest event or
//! outcome time read) are dropped, so a set built as of T is the set that could have been built
//! at T. Only outcomes of the chosen type (`--label`) are labels; the others are ignored.
//!
//! **Subjects.** By visitor (the default), a subject is one visitor id. By lead, a visitor *joins*
//! lead L at its first identify event with `lead_id` L (a visitor that identified as several leads
//! joins each). A lead subject's events are its members' events from their joins on; a member's
//! earlier events join too, but only the state of rows whose decision time is at or after its join
//! (as the worker's merge does). Before its first identify with a lead id (at T_v), a visitor is
//! its own subject: its events before T_v; its observation ends at T_v (see *censored*).
//! By account, a visitor *joins* account A at its first `group` event naming A, and the account
//! subject is its members merged the same way (a visitor never in an account makes no row).
//!
//! **Outcomes** name a lead or a visitor ([`crate::outcome::Outcome::subject`]). By visitor, a
//! visitor outcome applies to its visitor and a lead outcome to every visitor that identified as
//! that lead at or before the outcome's `ts`. By lead, a lead outcome applies to its lead, and a
//! visitor outcome to the lead of the visitor's latest identify (with a lead id) at or before the
//! outcome's `ts`, else to the visitor as its own subject.
//! By account, a visitor outcome applies to the account of the visitor's latest `group` at or
//! before its `ts`, and a lead outcome to those of the lead's visitors identified by then.
//!
//! For each subject, its events are sorted by (`ts`, input order) and t\* is the `ts` of its first
//! applicable outcome (none: t\* = ∞). With W the window (`--window`, default 90 days):
//! - Only events with `ts` < t\* are used: an event at or after the outcome is never seen.
//! - **Decision times** are, by `--decisions`: episode ends (below), every event, snapshot ages
//!   after the subject's first event, or the times scores were served to it (the score log's
//!   records of its visitor, or of its lead by lead), each before t\* and by as-of.
//! - **Episodes**: the used events split wherever two consecutive ones are more than W apart. Each
//!   episode makes at most one row; its **decision time** d is the `ts` of its last event.
//! - **Label** 1 when t\* ∈ (d, d + W]: only the last episode before t\* can have it.
//! - A label-0 row is a **negative** only when its window is fully observed: d + W ≤ as-of (every
//!   episode but the last passes: the next one starts after d + W), and for a visitor that is its
//!   own subject by lead, d + W < T_v. Otherwise the row is **censored**: counted, not written.
//!   With `--closed-windows` ([`Options::closed_windows`]) a positive whose window is not over by
//!   then is not written either (`positives_in_open_windows`): every row's window is then closed.
//! - After t\* the subject has converted: its later events make no rows (they are counted).
//! - **Features**: the state after applying exactly the subject's events with `ts` ≤ d in order,
//!   through [`Scorer::apply`] without a receive time (the logged `ts` is already the one the
//!   engine applied), then [`Scorer::feature_vector`]. By lead: each member that joined by d has
//!   its own state of its events with `ts` ≤ d, and they combine with
//!   [`VisitorState::merge`](crate::state::VisitorState::merge), the
//!   latest joiner's state first and the others merged into it newest join first, as the worker
//!   builds a lead's merged view.
//!
//! Consequences (tested): adding an event or outcome later than a row's d + W never changes the
//! row; removing every event at or after a positive row's outcome never changes it (except an
//! identify at exactly the outcome's `ts`, which links the outcome to its visitor: "at or
//! before"); rows do not depend on the order of input lines (only on the order of one visitor's
//! events that share a `ts`, the order the engine applied them in) nor on duplicated lines.
//!
//! **Sharding**: with `i/n`, only subjects whose [`fnv1a`] hash of the id is i mod n are built
//! (by visitor, other visitors' events are dropped as they are added); the n shards' rows together
//! are the unsharded rows.
//!
//! Rows come sorted by (decision time, subject kind, subject id), so the same inputs give the same
//! output byte for byte.

mod colleagues;
pub mod csv;
mod input;
mod rows;

use serde::{Deserialize, Serialize};

pub use input::{parse_event_line, parse_outcome_line, parse_score_line, Inputs, LineError};

impl Inputs {
    /// Builds the rows (see the module docs) with a model's or a template's features.
    pub fn build(self, features: &Featurizer) -> Result<Dataset, DatasetError> {
        rows::build(self, features)
    }
}

use crate::event::Event;
use crate::features::Featurizer;
use crate::outcome::{Outcome, OutcomeType};
use crate::state::StateError;

/// The default label window: 90 days, in ms.
pub const DEFAULT_WINDOW_MS: i64 = 90 * 86_400_000;

/// Whom the rows are about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum By {
    /// One row stream per visitor id.
    #[default]
    Visitor,
    /// One per lead (its identified visitors merged); visitors before identifying are their own.
    Lead,
    /// One per account (the visitors that joined it by a `group` event, merged).
    Account,
}

impl By {
    /// Reads `visitor`, `lead` or `account`.
    pub fn parse(s: &str) -> Result<By, DatasetError> {
        match s.trim() {
            "visitor" => Ok(By::Visitor),
            "lead" => Ok(By::Lead),
            "account" => Ok(By::Account),
            other => Err(DatasetError::By(format!(
                "{other:?}: expected visitor, lead or account"
            ))),
        }
    }
}

/// What a row's subject is; ordered as its name, so rows sort the same in memory and in CSV.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SubjectKind {
    /// An account id.
    Account,
    /// A lead id.
    Lead,
    /// A visitor id.
    Visitor,
}

impl SubjectKind {
    /// The name in the CSV's `subject_kind` column.
    pub fn as_str(self) -> &'static str {
        match self {
            SubjectKind::Account => "account",
            SubjectKind::Lead => "lead",
            SubjectKind::Visitor => "visitor",
        }
    }
}

/// One part of a dataset split by subject, so that a big build can run as n independent ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    index: u64,
    count: u64,
}

impl Shard {
    /// Shard `index` of `count` (0 ≤ index < count).
    pub fn new(index: u64, count: u64) -> Result<Shard, DatasetError> {
        if count == 0 || index >= count {
            return Err(DatasetError::Shard(format!(
                "{index}/{count}: need 0 ≤ i < n"
            )));
        }
        Ok(Shard { index, count })
    }

    /// Reads `i/n`.
    pub fn parse(s: &str) -> Result<Shard, DatasetError> {
        let bad = || DatasetError::Shard(format!("{s:?}: expected i/n, e.g. 0/4"));
        let (i, n) = s.split_once('/').ok_or_else(bad)?;
        Shard::new(
            i.trim().parse().map_err(|_| bad())?,
            n.trim().parse().map_err(|_| bad())?,
        )
    }

    /// Whether a subject (by its id) is in this shard.
    pub fn keeps(&self, subject_id: &str) -> bool {
        fnv1a(subject_id) % self.count == self.index
    }
}

/// 64-bit FNV-1a of a subject id: stable across builds and machines, so shards are too.
pub use crate::hash::fnv1a64 as fnv1a;

/// Most snapshot ages in `--decisions snapshots:…`.
pub const MAX_SNAPSHOTS: usize = 16;

/// Where a subject's rows are taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Decisions {
    /// At the last event of each episode: one row per episode.
    #[default]
    EpisodeEnds,
    /// At fixed ages (days) after the subject's first event, while it has not converted: the
    /// moments a B2B model is used at, spread over the journey, never at the outcome.
    Snapshots {
        /// Ages in days, ascending, distinct.
        days: [u16; MAX_SNAPSHOTS],
        /// How many of `days` are used.
        n: usize,
    },
    /// At every event (each row as of that event).
    Events,
    /// Where a score was served (the score log's `ts`, by its visitor, or its lead by lead): the
    /// moments the model was actually used at.
    Served,
}

impl Decisions {
    /// Reads `episodes`, `events`, `served` or `snapshots:7,14,30` (days, ascending after sorting).
    pub fn parse(s: &str) -> Result<Decisions, DatasetError> {
        let bad = |m: &str| DatasetError::Decisions(format!("{s:?}: {m}"));
        match s.trim() {
            "episodes" => return Ok(Decisions::EpisodeEnds),
            "events" => return Ok(Decisions::Events),
            "served" => return Ok(Decisions::Served),
            _ => {}
        }
        let list = s
            .trim()
            .strip_prefix("snapshots:")
            .ok_or_else(|| bad("expected episodes, events, served or snapshots:DAYS,…"))?;
        let mut v: Vec<u16> = list
            .split(',')
            .map(|d| {
                d.trim()
                    .parse::<u16>()
                    .map_err(|_| bad("days must be whole numbers 0–65535"))
            })
            .collect::<Result<_, _>>()?;
        v.sort_unstable();
        v.dedup();
        if v.is_empty() || v.len() > MAX_SNAPSHOTS {
            return Err(bad(&format!("give 1 to {MAX_SNAPSHOTS} ages in days")));
        }
        let mut days = [0u16; MAX_SNAPSHOTS];
        days[..v.len()].copy_from_slice(&v);
        Ok(Decisions::Snapshots { days, n: v.len() })
    }
}

/// How to build a training set.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Options {
    /// The outcome type that labels a row 1.
    pub label: OutcomeType,
    /// W, in ms: the label window and the gap that splits episodes.
    pub window_ms: i64,
    /// Whom rows are about.
    pub by: By,
    /// The time the set is built as of (ms); `None`: the latest event or outcome time read.
    pub as_of: Option<i64>,
    /// Build only one shard.
    pub shard: Option<Shard>,
    /// Where rows are taken.
    pub decisions: Decisions,
    /// Keep every visitor's events in a shard by visitor (features that read accounts need the
    /// colleagues' activity); only the shard's subjects make rows.
    pub all_visitors: bool,
    /// Positives too only once their window is over (d + W by as-of), as negatives always are:
    /// without it the latest rows — a time split's held-out rows — carry the conversions of windows
    /// still open but not their non-conversions, and look likelier to convert than they are.
    pub closed_windows: bool,
}

impl Options {
    /// By visitor, 90-day window, as of the latest record, unsharded.
    pub fn new(label: OutcomeType) -> Options {
        Options {
            label,
            window_ms: DEFAULT_WINDOW_MS,
            by: By::Visitor,
            as_of: None,
            shard: None,
            decisions: Decisions::EpisodeEnds,
            all_visitors: false,
            closed_windows: false,
        }
    }
}

/// Reads a window: `90d`, `12h`, `30m` or plain ms; positive.
pub fn parse_window(s: &str) -> Result<i64, DatasetError> {
    let bad = || {
        DatasetError::Window(format!(
            "{s:?}: expected a positive duration like 90d, 12h, 30m or ms"
        ))
    };
    let t = s.trim();
    let (num, unit) = match t.char_indices().last() {
        Some((i, 'd')) => (&t[..i], 86_400_000),
        Some((i, 'h')) => (&t[..i], 3_600_000),
        Some((i, 'm')) => (&t[..i], 60_000),
        _ => (t, 1),
    };
    let n: i64 = num.parse().map_err(|_| bad())?;
    match n.checked_mul(unit) {
        Some(ms) if ms > 0 => Ok(ms),
        _ => Err(bad()),
    }
}

/// Reads an as-of time: ms since the epoch, or `YYYY-MM-DD` (that day's first ms, UTC).
pub fn parse_as_of(s: &str) -> Result<i64, DatasetError> {
    let t = s.trim();
    if let Ok(ms) = t.parse::<i64>() {
        return Ok(ms);
    }
    crate::log::day_start(t)
        .ok_or_else(|| DatasetError::AsOf(format!("{s:?}: expected ms or YYYY-MM-DD")))
}

/// One training row.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// Visitor or lead.
    pub kind: SubjectKind,
    /// The visitor or lead id.
    pub subject_id: String,
    /// d: the decision time (ms): the episode's last event, a snapshot, or an event.
    pub decision_ts: i64,
    /// t\*, for a positive row; `None` for a negative.
    pub outcome_ts: Option<i64>,
    /// The card's features, in its order, of the state at d.
    pub features: Vec<f32>,
}

impl Row {
    /// 1 for a positive, 0 for a negative.
    pub fn label(&self) -> u8 {
        u8::from(self.outcome_ts.is_some())
    }
}

/// What a build read and made: the CLI prints it, and it is how a run is checked.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Subjects (in the shard) with at least one event.
    pub subjects: u64,
    /// Rows written: positives + negatives.
    pub rows: u64,
    /// Rows labelled 1.
    pub positives: u64,
    /// Rows labelled 0 whose window was fully observed.
    pub negatives: u64,
    /// Rows labelled 0 whose window was not fully observed: not written.
    pub censored: u64,
    /// Rows labelled 1 whose window was not over by as-of, not written (`closed_windows`); else 0
    /// and they are among `positives`.
    #[serde(default)]
    pub positives_in_open_windows: u64,
    /// Subjects whose first outcome is at or before their first event: no row.
    pub converted_before_any_event: u64,
    /// Event records read (duplicates and other shards' included).
    pub events_read: u64,
    /// Outcome records read (duplicates and other types included).
    pub outcomes_read: u64,
    /// Records dropped as copies of one read before.
    pub duplicates_dropped: u64,
    /// Events of a subject at or after its outcome: never used.
    pub events_after_conversion_ignored: u64,
    /// Events and outcomes later than as-of: dropped.
    pub after_as_of_ignored: u64,
    /// Outcomes of other types than the label: ignored.
    pub outcomes_of_other_types: u64,
    /// Label outcomes that applied to no subject with events (in the shard).
    pub outcomes_unmatched: u64,
    /// Events of visitors in other shards, dropped as read (by visitor only).
    pub events_in_other_shards: u64,
    /// Served score records read (`--decisions served`; copies not counted).
    #[serde(default)]
    pub scores_read: u64,
    /// Lines refused as they were read (each named on stderr by file and line; `--strict` stops
    /// at the first): filled in by the caller.
    #[serde(default)]
    pub lines_rejected: u64,
    /// The as-of time used (ms).
    pub as_of: i64,
    /// Wall time of the run (s), filled in by the caller ([`Summary::timed`]): the CLI's is the
    /// whole run (loading the model, reading, parsing, building, writing).
    pub seconds: f64,
    /// `events_read / seconds`.
    pub events_per_second: f64,
}

impl Summary {
    /// Records the run's wall time.
    pub fn timed(mut self, seconds: f64) -> Summary {
        self.seconds = seconds;
        self.events_per_second = if seconds > 0.0 {
            self.events_read as f64 / seconds
        } else {
            0.0
        };
        self
    }
}

/// A built training set.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    /// Positives and negatives, sorted by (decision time, subject kind, subject id).
    pub rows: Vec<Row>,
    /// Counts.
    pub summary: Summary,
}

/// Why a build could not run.
#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    /// A bad `--window`.
    #[error("window {0}")]
    Window(String),
    /// A bad `--as-of`.
    #[error("as-of {0}")]
    AsOf(String),
    /// A bad `--shard`.
    #[error("shard {0}")]
    Shard(String),
    /// Features that read accounts, built from one shard's visitors only.
    #[error(
        "account features need every visitor's events: build the shard with Options::all_visitors"
    )]
    ShardWithoutColleagues,
    /// `--decisions served` by account (scores are served to members, not accounts).
    #[error("decisions served: score records name visitors and leads, not accounts")]
    ServedByAccount,
    /// A bad `--by`.
    #[error("by {0}")]
    By(String),
    /// A bad `--decisions`.
    #[error("decisions {0}")]
    Decisions(String),
    /// A state did not fit the model's shapes while merging a lead's visitors.
    #[error(transparent)]
    State(#[from] StateError),
}

/// Builds a training set from parsed events and outcomes, in input order (see the module docs).
pub fn build(
    features: &Featurizer,
    events: impl IntoIterator<Item = Event>,
    outcomes: impl IntoIterator<Item = Outcome>,
    opts: &Options,
) -> Result<Dataset, DatasetError> {
    let mut inputs = Inputs::new(*opts)?;
    for e in events {
        inputs.add_event(e);
    }
    for o in outcomes {
        inputs.add_outcome(o);
    }
    inputs.build(features)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_as_of_and_shards_parse() {
        assert_eq!(parse_window("90d").unwrap(), 90 * 86_400_000);
        assert_eq!(parse_window("12h").unwrap(), 12 * 3_600_000);
        assert_eq!(parse_window("30m").unwrap(), 1_800_000);
        assert_eq!(parse_window("1500").unwrap(), 1500);
        for bad in ["", "0", "-5d", "d", "3w", "1.5d", "99999999999999999d"] {
            assert!(parse_window(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_as_of("1796256000000").unwrap(), 1_796_256_000_000);
        assert_eq!(parse_as_of("2026-12-03").unwrap(), 1_796_256_000_000);
        assert!(parse_as_of("2026-13-01").is_err());
        assert!(parse_as_of("soon").is_err());
        assert_eq!(Shard::parse("1/4").unwrap(), Shard::new(1, 4).unwrap());
        for bad in ["4/4", "0/0", "1", "a/b", "-1/3"] {
            assert!(Shard::parse(bad).is_err(), "{bad}");
        }
        // The published FNV-1a 64 test vectors: shards must not move between builds.
        assert_eq!(fnv1a(""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a("a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a("foobar"), 0x8594_4171_f739_67e8);
        let shards: Vec<Shard> = (0..3).map(|i| Shard::new(i, 3).unwrap()).collect();
        for id in ["v1", "v2", "lead-42", "x"] {
            assert_eq!(shards.iter().filter(|s| s.keeps(id)).count(), 1, "{id}");
        }
    }
}
