//! A subject's account at a decision time, replayed from the logged events: its colleagues and
//! their latest activity up to then, what the account object knew when a score was served
//! ([`crate::features::Context`]).
//!
//! **The rule** (the worker's: each visitor object reports to the account of its latest verified
//! `group` after every event, as its member; [`crate::account::AccountBook`]):
//! - A visitor's *member id* is the lead of its latest identify naming one, else the visitor id.
//! - From its first `group` event on, each of a visitor's events is a *report* to the account its
//!   latest `group` names, under its member id at that event.
//! - A member belongs to an account from its first report there; a visitor id stops being a
//!   member when that visitor identifies as a lead (it is the lead from then on).
//! - A subject's account at d is the one of its latest report at or before d; its colleagues are
//!   the account's other members at d, each with its latest report at or before d.
//!
//! Two differences from the worker, both at the edges: its account keeps at most
//! [`crate::account::MAX_MEMBERS`] members (the replay keeps them all), and its member id is a
//! *verified* lead, where the log does not say which identify was verified (the replay takes each,
//! as `--by lead` does).

use std::collections::HashMap;

use super::input::Logged;
use crate::event::EventType;

/// One member of one account.
struct Membership<'a> {
    member: &'a str,
    /// Its reports' times, ascending.
    reports: Vec<i64>,
    /// When it stopped being a member (a visitor that identified), if it did.
    left: i64,
}

/// Every account's members and every member's reports, from all visitors' events.
#[derive(Default)]
pub(super) struct Accounts<'a> {
    /// Member → (ts, account) of its reports, ascending.
    reports: HashMap<&'a str, Vec<(i64, &'a str)>>,
    /// Account → its members.
    members: HashMap<&'a str, Vec<Membership<'a>>>,
}

impl<'a> Accounts<'a> {
    /// Indexes visitors' events (each list sorted by ts, in applied order).
    pub(super) fn new(visitors: impl IntoIterator<Item = (&'a str, &'a [Logged])>) -> Self {
        let mut a = Accounts::default();
        for (visitor, events) in visitors {
            let mut member = visitor;
            let mut account: Option<&'a str> = None;
            for l in events {
                let e = &l.event;
                if e.kind == EventType::Identify {
                    if let Some(lead) = e.lead_id.as_deref() {
                        if member == visitor && lead != visitor {
                            a.leave(visitor, e.ts);
                        }
                        member = lead;
                    }
                }
                if e.kind == EventType::Group {
                    account = e.account_id.as_deref().or(account);
                }
                if let Some(acc) = account {
                    a.report(acc, member, e.ts);
                }
            }
        }
        for list in a.reports.values_mut() {
            list.sort_by_key(|&(ts, _)| ts);
        }
        for m in a.members.values_mut().flatten() {
            m.reports.sort_unstable();
        }
        a
    }

    fn report(&mut self, account: &'a str, member: &'a str, ts: i64) {
        self.reports.entry(member).or_default().push((ts, account));
        let list = self.members.entry(account).or_default();
        match list.iter_mut().find(|m| m.member == member) {
            Some(m) => m.reports.push(ts),
            None => list.push(Membership {
                member,
                reports: vec![ts],
                left: i64::MAX,
            }),
        }
    }

    /// A visitor became its lead: its visitor-id memberships end.
    fn leave(&mut self, visitor: &str, ts: i64) {
        for m in self.members.values_mut().flatten() {
            if m.member == visitor {
                m.left = m.left.min(ts);
            }
        }
    }

    /// The latest activity of each colleague of `member` at `d`; `None` when it has no account
    /// by then.
    pub(super) fn colleagues(&self, member: &str, d: i64) -> Option<Vec<i64>> {
        let reports = self.reports.get(member)?;
        let &(_, account) = reports[..reports.partition_point(|&(ts, _)| ts <= d)].last()?;
        let members = self.members.get(account)?;
        Some(
            members
                .iter()
                .filter(|m| m.member != member && m.left > d)
                .filter_map(|m| m.reports[..m.reports.partition_point(|&t| t <= d)].last())
                .copied()
                .collect(),
        )
    }
}
