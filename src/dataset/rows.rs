//! The row definition of [`super`], one subject at a time: whose events and outcomes, episodes,
//! labels, censoring, and the state at each decision time.

use std::collections::HashMap;

use super::colleagues::Accounts;
use super::input::{dedup_events, Inputs, Logged, Served};
use super::{By, Dataset, DatasetError, Decisions, Row, Shard, SubjectKind, Summary};
use crate::event::EventType;
use crate::features::{Context, Featurizer};
use crate::outcome::{Outcome, Subject};
use crate::state::VisitorState;

/// A visitor's identifies that name a lead: (ts, lead), in applied order.
type Joins<'a> = Vec<(i64, &'a str)>;

fn joins(events: &[Logged]) -> Joins<'_> {
    marks(events, EventType::Identify, |e| e.lead_id.as_deref())
}

/// The (ts, name) of a visitor's events of one type that name something (a lead, an account).
fn marks<'a>(
    events: &'a [Logged],
    kind: EventType,
    name: impl Fn(&'a crate::event::Event) -> Option<&'a str>,
) -> Vec<(i64, &'a str)> {
    events
        .iter()
        .filter(|l| l.event.kind == kind)
        .filter_map(|l| Some((l.event.ts, name(&l.event)?)))
        .collect()
}

/// The first outcome time and how many outcomes a subject got.
#[derive(Default, Clone, Copy)]
struct Applied {
    first: Option<i64>,
    count: u64,
}

impl Applied {
    fn add(&mut self, ts: i64) {
        self.first = Some(self.first.map_or(ts, |t| t.min(ts)));
        self.count += 1;
    }
}

fn min_ts(a: Option<i64>, b: Option<i64>) -> Option<i64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, None) => a,
        (None, b) => b,
    }
}

/// Indices of the episode ends among `n` times sorted ascending (`ts(i)`): where the next time is
/// more than `window` later, and the last.
fn episode_ends(n: usize, ts: impl Fn(usize) -> i64, window: i64) -> Vec<usize> {
    (0..n)
        .filter(|&i| i + 1 == n || ts(i + 1) - ts(i) > window)
        .collect()
}

const DAY_MS: i64 = 86_400_000;

/// A subject's decision points among its usable event times (sorted ascending, all before t*):
/// (decision time d, how many of the times are ≤ d); `served`: its served score times. `start`: the subject's first event time
/// (snapshot ages count from it); `until`: no decision after it (the build's as-of).
fn decision_points(
    decisions: Decisions,
    served: &[i64],
    times: &[i64],
    start: i64,
    t_star: Option<i64>,
    until: i64,
    window: i64,
) -> Vec<(i64, usize)> {
    match decisions {
        Decisions::EpisodeEnds => episode_ends(times.len(), |i| times[i], window)
            .into_iter()
            .map(|end| (times[end], end + 1))
            .collect(),
        Decisions::Events => times
            .iter()
            .enumerate()
            .map(|(i, &t)| (t, i + 1))
            .filter(|(_, n)| *n == times.len() || times[*n] != times[*n - 1])
            .collect(),
        Decisions::Snapshots { days, n } => days[..n]
            .iter()
            .map(|&k| start.saturating_add(i64::from(k) * DAY_MS))
            .take_while(|&d| d <= until && t_star.is_none_or(|t| d < t))
            .map(|d| (d, times.partition_point(|&t| t <= d)))
            .filter(|&(_, n)| n > 0)
            .collect(),
        Decisions::Served => {
            let mut at: Vec<i64> = served
                .iter()
                .copied()
                .filter(|&d| d <= until && t_star.is_none_or(|t| d < t))
                .collect();
            at.sort_unstable();
            at.dedup();
            at.into_iter()
                .map(|d| (d, times.partition_point(|&t| t <= d)))
                .filter(|&(_, n)| n > 0)
                .collect()
        }
    }
}

/// What every subject needs, and what the build has made so far.
struct Builder<'s> {
    features: &'s Featurizer,
    /// Every member's account and activity, when the features read accounts.
    accounts: Option<Accounts<'s>>,
    window: i64,
    /// Positives only once their window is over ([`Options::closed_windows`]).
    closed_windows: bool,
    decisions: Decisions,
    served: Served,
    shard: Option<Shard>,
    rows: Vec<Row>,
    summary: Summary,
}

/// What a row at decision time d is.
enum Verdict {
    Positive(i64),
    Negative,
    Censored,
}

impl Builder<'_> {
    fn in_shard(&self, id: &str) -> bool {
        self.shard.is_none_or(|s| s.keeps(id))
    }

    /// The features of `state` at `d` for `member` (its account's colleagues then).
    fn vector(&self, state: &VisitorState, member: &str, d: i64) -> Vec<f32> {
        let colleagues = self.accounts.as_ref().and_then(|a| a.colleagues(member, d));
        let ctx = Context {
            colleagues: colleagues.as_deref(),
        };
        self.features.vector_in(state, d, ctx)
    }

    /// Label and censoring of the row at `d`: positive when t* ∈ (d, d + W] (t* > d always, as
    /// only events before t* make rows), a negative when (d, d + W] ends by `observed_until`; with
    /// `closed_windows` a positive too only then.
    fn verdict(&mut self, d: i64, t_star: Option<i64>, observed_until: i64) -> Verdict {
        let end = d.saturating_add(self.window);
        let v = match t_star {
            Some(t) if t <= end && self.closed_windows && end > observed_until => {
                self.summary.positives_in_open_windows += 1;
                return Verdict::Censored;
            }
            Some(t) if t <= end => Verdict::Positive(t),
            _ if end <= observed_until => Verdict::Negative,
            _ => Verdict::Censored,
        };
        match v {
            Verdict::Positive(_) => self.summary.positives += 1,
            Verdict::Negative => self.summary.negatives += 1,
            Verdict::Censored => self.summary.censored += 1,
        }
        v
    }

    /// Counts a subject with `total` events of which `usable` precede t*; false when no row can
    /// come of it.
    fn start_subject(&mut self, total: usize, usable: usize) -> bool {
        if total == 0 {
            return false;
        }
        self.summary.subjects += 1;
        self.summary.events_after_conversion_ignored += (total - usable) as u64;
        if usable == 0 {
            self.summary.converted_before_any_event += 1;
            return false;
        }
        true
    }

    /// A subject made of one visitor's events (sorted, already cut to the subject's span).
    fn visitor(
        &mut self,
        kind: SubjectKind,
        id: &str,
        events: &[Logged],
        t_star: Option<i64>,
        observed_until: i64,
    ) {
        let usable = match t_star {
            Some(t) => &events[..events.partition_point(|l| l.event.ts < t)],
            None => events,
        };
        if !self.start_subject(events.len(), usable.len()) {
            return;
        }
        let f = self.features;
        let mut state = f.new_state();
        let mut applied = 0;
        // Who the subject is to its account: its lead once it identified, else itself.
        let mut member = id;
        let times: Vec<i64> = usable.iter().map(|l| l.event.ts).collect();
        let start = events[0].event.ts;
        let served = match kind {
            SubjectKind::Visitor => self.served.visitors.get(id),
            _ => self.served.leads.get(id),
        };
        let points = decision_points(
            self.decisions,
            served.map_or(&[][..], Vec::as_slice),
            &times,
            start,
            t_star,
            observed_until,
            self.window,
        );
        for (d, upto) in points {
            let outcome_ts = match self.verdict(d, t_star, observed_until) {
                Verdict::Positive(t) => Some(t),
                Verdict::Negative => None,
                Verdict::Censored => continue,
            };
            for l in &usable[applied..upto] {
                f.apply(&mut state, &l.event, None);
                if l.event.kind == EventType::Identify {
                    member = l.event.lead_id.as_deref().unwrap_or(member);
                }
            }
            applied = upto;
            let features = self.vector(&state, member, d);
            self.rows.push(Row {
                kind,
                subject_id: id.to_string(),
                decision_ts: d,
                outcome_ts,
                features,
            });
        }
    }

    /// A lead or an account: its members' events from their joins on make the episodes; each
    /// row's state merges the members that joined by its decision time.
    fn merged(
        &mut self,
        kind: SubjectKind,
        lead: &str,
        mut members: Vec<Member<'_>>,
        t_star: Option<i64>,
        as_of: i64,
    ) -> Result<(), DatasetError> {
        let mut times: Vec<(i64, u64)> = members
            .iter()
            .flat_map(|m| {
                let from = m.events.partition_point(|l| l.event.ts < m.join.0);
                m.events[from..].iter().map(|l| (l.event.ts, l.seq))
            })
            .collect();
        times.sort_unstable();
        let usable = match t_star {
            Some(t) => &times[..times.partition_point(|&(ts, _)| ts < t)],
            None => &times[..],
        };
        if !self.start_subject(times.len(), usable.len()) {
            return Ok(());
        }
        // The latest joiner first: the worker's merged view is the visitor that joined last.
        members.sort_by_key(|m| std::cmp::Reverse(m.join));
        let f = self.features;
        let cfg = f.state_config();
        let ts: Vec<i64> = usable.iter().map(|&(t, _)| t).collect();
        let start = times.first().map_or(0, |&(t, _)| t);
        let served = self.served.leads.get(lead).map_or(&[][..], Vec::as_slice);
        let points = decision_points(
            self.decisions,
            served,
            &ts,
            start,
            t_star,
            as_of,
            self.window,
        );
        for (d, _) in points {
            let outcome_ts = match self.verdict(d, t_star, as_of) {
                Verdict::Positive(t) => Some(t),
                Verdict::Negative => None,
                Verdict::Censored => continue,
            };
            let mut merged: Option<(&str, VisitorState)> = None;
            for m in members.iter_mut().filter(|m| m.join.0 <= d) {
                let upto = m.events.partition_point(|l| l.event.ts <= d);
                for l in &m.events[m.applied..upto] {
                    f.apply(&mut m.state, &l.event, None);
                }
                m.applied = m.applied.max(upto);
                match &mut merged {
                    None => merged = Some((m.visitor, m.state.clone())),
                    Some((own, state)) => {
                        state.merge(own, m.visitor, &m.state, cfg)?;
                    }
                }
            }
            let features = match &merged {
                Some((_, state)) => self.vector(state, lead, d),
                None => self.vector(&f.new_state(), lead, d),
            };
            self.rows.push(Row {
                kind,
                subject_id: lead.to_string(),
                decision_ts: d,
                outcome_ts,
                features,
            });
        }
        Ok(())
    }
}

impl Builder<'_> {
    /// Every lead's or account's rows from its members; its outcomes that reached no member
    /// are counted unmatched.
    fn merged_subjects(
        &mut self,
        kind: SubjectKind,
        members: HashMap<&str, Vec<Member<'_>>>,
        outcomes: &HashMap<&str, Applied>,
        as_of: i64,
    ) -> Result<(), DatasetError> {
        for (id, a) in outcomes {
            if self.in_shard(id) && !members.contains_key(id) {
                self.summary.outcomes_unmatched += a.count;
            }
        }
        for (id, list) in members {
            let t_star = outcomes.get(id).and_then(|a| a.first);
            self.merged(kind, id, list, t_star, as_of)?;
        }
        Ok(())
    }
}

/// A visitor of a lead: when it joined (its first identify naming the lead; visitors that joined
/// at the same ms in id order, not input order), its events, and its state so far.
struct Member<'a> {
    visitor: &'a str,
    join: (i64, &'a str),
    events: &'a [Logged],
    state: VisitorState,
    applied: usize,
}

pub(super) fn build(inputs: Inputs, features: &Featurizer) -> Result<Dataset, DatasetError> {
    let Inputs {
        opts,
        mut visitors,
        outcomes,
        latest,
        events_read,
        outcomes_read,
        duplicates,
        other_types,
        other_shards,
        served,
        ..
    } = inputs;
    let scores_read = served.records;
    if opts.decisions == Decisions::Served && opts.by == By::Account {
        return Err(DatasetError::ServedByAccount);
    }
    if features.features().reads_account() && other_shards > 0 {
        return Err(DatasetError::ShardWithoutColleagues);
    }
    let as_of = opts.as_of.or(latest).unwrap_or(0);
    let (mut late, mut duplicates) = (0u64, duplicates);
    for list in visitors.values_mut() {
        duplicates += dedup_events(list);
        let before = list.len();
        list.retain(|l| l.event.ts <= as_of);
        late += (before - list.len()) as u64;
        // Stable: events with the same ts stay in input order, the order they were applied in.
        list.sort_by_key(|l| l.event.ts);
    }
    visitors.retain(|_, list| !list.is_empty());
    let before = outcomes.len();
    let outcomes: Vec<Outcome> = outcomes.into_iter().filter(|o| o.ts <= as_of).collect();
    late += (before - outcomes.len()) as u64;

    let accounts = features.features().reads_account().then(|| {
        Accounts::new(
            visitors
                .iter()
                .map(|(v, list)| (v.as_str(), list.as_slice())),
        )
    });
    let mut b = Builder {
        features,
        accounts,
        window: opts.window_ms,
        closed_windows: opts.closed_windows,
        decisions: opts.decisions,
        served,
        shard: opts.shard,
        rows: Vec::new(),
        summary: Summary {
            events_read,
            outcomes_read,
            duplicates_dropped: duplicates,
            after_as_of_ignored: late,
            outcomes_of_other_types: other_types,
            events_in_other_shards: other_shards,
            scores_read,
            as_of,
            ..Summary::default()
        },
    };
    let joined: HashMap<&str, Joins<'_>> = visitors
        .iter()
        .map(|(v, list)| (v.as_str(), joins(list)))
        .collect();
    match opts.by {
        By::Visitor => by_visitor(&mut b, &visitors, &joined, &outcomes, as_of),
        By::Lead => by_lead(&mut b, &visitors, &joined, &outcomes, as_of)?,
        By::Account => by_account(&mut b, &visitors, &joined, &outcomes, as_of)?,
    }
    let mut rows = b.rows;
    rows.sort_by(|x, y| {
        (x.decision_ts, x.kind, &x.subject_id).cmp(&(y.decision_ts, y.kind, &y.subject_id))
    });
    let mut summary = b.summary;
    summary.rows = rows.len() as u64;
    Ok(Dataset { rows, summary })
}

fn by_visitor(
    b: &mut Builder<'_>,
    visitors: &HashMap<String, Vec<Logged>>,
    joined: &HashMap<&str, Joins<'_>>,
    outcomes: &[Outcome],
    as_of: i64,
) {
    let mut of_visitor: HashMap<&str, Applied> = HashMap::new();
    let mut of_lead: HashMap<&str, Vec<i64>> = HashMap::new();
    for o in outcomes {
        match o.subject() {
            Subject::Visitor(v) => of_visitor.entry(v).or_default().add(o.ts),
            Subject::Lead(l) => of_lead.entry(l).or_default().push(o.ts),
        }
    }
    for list in of_lead.values_mut() {
        list.sort_unstable();
    }
    // Per lead, the earliest identify of a visitor built here: its outcomes before that are
    // nobody's.
    let mut first_join: HashMap<&str, i64> = HashMap::new();
    for (v, events) in visitors {
        if !b.in_shard(v) {
            continue;
        }
        let mut t_star = of_visitor.get(v.as_str()).and_then(|a| a.first);
        let mut own: HashMap<&str, i64> = HashMap::new();
        for &(ts, lead) in joined.get(v.as_str()).into_iter().flatten() {
            own.entry(lead).or_insert(ts);
        }
        for (lead, join) in own {
            let j = first_join.entry(lead).or_insert(join);
            *j = (*j).min(join);
            if let Some(list) = of_lead.get(lead) {
                t_star = min_ts(
                    t_star,
                    list.get(list.partition_point(|&t| t < join)).copied(),
                );
            }
        }
        b.visitor(SubjectKind::Visitor, v, events, t_star, as_of);
    }
    for (v, a) in &of_visitor {
        if b.in_shard(v) && !visitors.contains_key(*v) {
            b.summary.outcomes_unmatched += a.count;
        }
    }
    for (lead, list) in &of_lead {
        let from = first_join.get(lead).copied().unwrap_or(i64::MAX);
        b.summary.outcomes_unmatched += list.iter().filter(|&&t| t < from).count() as u64;
    }
}

fn by_lead(
    b: &mut Builder<'_>,
    visitors: &HashMap<String, Vec<Logged>>,
    joined: &HashMap<&str, Joins<'_>>,
    outcomes: &[Outcome],
    as_of: i64,
) -> Result<(), DatasetError> {
    let mut of_visitor: HashMap<&str, Applied> = HashMap::new();
    let mut of_lead: HashMap<&str, Applied> = HashMap::new();
    for o in outcomes {
        match o.subject() {
            Subject::Lead(l) => of_lead.entry(l).or_default().add(o.ts),
            Subject::Visitor(v) => {
                // The lead of the visitor's latest identify by then, else the visitor itself.
                let list = joined.get(v).map(Vec::as_slice).unwrap_or_default();
                match list[..list.partition_point(|&(ts, _)| ts <= o.ts)].last() {
                    Some(&(_, lead)) => of_lead.entry(lead).or_default().add(o.ts),
                    None => of_visitor.entry(v).or_default().add(o.ts),
                }
            }
        }
    }
    let mut members: HashMap<&str, Vec<Member<'_>>> = HashMap::new();
    for (v, events) in visitors {
        let list = joined
            .get(v.as_str())
            .map(Vec::as_slice)
            .unwrap_or_default();
        let mut seen: Vec<&str> = Vec::new();
        for &(ts, lead) in list {
            if seen.contains(&lead) {
                continue;
            }
            seen.push(lead);
            if b.in_shard(lead) {
                members.entry(lead).or_default().push(Member {
                    visitor: v,
                    join: (ts, v),
                    events,
                    state: b.features.new_state(),
                    applied: 0,
                });
            }
        }
        if !b.in_shard(v) {
            continue;
        }
        // Its own subject until its first identify with a lead id (T_v), observed until then.
        let (own, observed_until) = match list.first() {
            Some(&(t_v, _)) => (
                &events[..events.partition_point(|l| l.event.ts < t_v)],
                as_of.min(t_v - 1),
            ),
            None => (&events[..], as_of),
        };
        let applied = of_visitor.get(v.as_str()).copied().unwrap_or_default();
        if own.is_empty() {
            b.summary.outcomes_unmatched += applied.count;
        }
        b.visitor(SubjectKind::Visitor, v, own, applied.first, observed_until);
    }
    for (v, a) in &of_visitor {
        if b.in_shard(v) && !visitors.contains_key(*v) {
            b.summary.outcomes_unmatched += a.count;
        }
    }
    b.merged_subjects(SubjectKind::Lead, members, &of_lead, as_of)
}

/// A visitor's `group` events: (ts, account), in applied order.
fn groups(events: &[Logged]) -> Vec<(i64, &str)> {
    marks(events, EventType::Group, |e| e.account_id.as_deref())
}

/// By account: a visitor joins an account at its first `group` naming it (and stays); an
/// outcome about a visitor applies to the account of its latest `group` by the outcome's `ts`,
/// one about a lead to those of the lead's visitors identified by then. Visitors never in an
/// account make no rows.
fn by_account(
    b: &mut Builder<'_>,
    visitors: &HashMap<String, Vec<Logged>>,
    joined: &HashMap<&str, Joins<'_>>,
    outcomes: &[Outcome],
    as_of: i64,
) -> Result<(), DatasetError> {
    let grouped: HashMap<&str, Vec<(i64, &str)>> = visitors
        .iter()
        .map(|(v, list)| (v.as_str(), groups(list)))
        .collect();
    let account_at = |v: &str, ts: i64| -> Option<&str> {
        let list = grouped.get(v)?;
        list[..list.partition_point(|&(t, _)| t <= ts)]
            .last()
            .map(|&(_, a)| a)
    };
    let mut of_account: HashMap<&str, Applied> = HashMap::new();
    for o in outcomes {
        let mut accounts: Vec<&str> = match o.subject() {
            Subject::Visitor(v) => account_at(v, o.ts).into_iter().collect(),
            Subject::Lead(l) => joined
                .iter()
                .filter(|(_, js)| js.iter().any(|&(ts, lead)| lead == l && ts <= o.ts))
                .filter_map(|(v, _)| account_at(v, o.ts))
                .collect(),
        };
        accounts.sort_unstable();
        accounts.dedup();
        if accounts.is_empty() {
            b.summary.outcomes_unmatched += 1;
        }
        for a in accounts {
            of_account.entry(a).or_default().add(o.ts);
        }
    }
    let mut members: HashMap<&str, Vec<Member<'_>>> = HashMap::new();
    for (v, events) in visitors {
        let mut seen: Vec<&str> = Vec::new();
        for &(ts, account) in grouped.get(v.as_str()).into_iter().flatten() {
            if seen.contains(&account) || !b.in_shard(account) {
                continue;
            }
            seen.push(account);
            members.entry(account).or_default().push(Member {
                visitor: v,
                join: (ts, v),
                events,
                state: b.features.new_state(),
                applied: 0,
            });
        }
    }
    b.merged_subjects(SubjectKind::Account, members, &of_account, as_of)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn episodes_end_before_gaps_longer_than_the_window() {
        let ends = |ts: &[i64], w| episode_ends(ts.len(), |i| ts[i], w);
        assert_eq!(ends(&[], 10), Vec::<usize>::new());
        assert_eq!(ends(&[5], 10), [0]);
        // A gap of exactly W stays in the episode; W + 1 splits it.
        assert_eq!(ends(&[0, 10, 21, 21, 40], 10), [1, 3, 4]);
        assert_eq!(ends(&[0, 10, 21, 21, 40], 100), [4]);
    }
}
