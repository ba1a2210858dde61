//! A HubSpot deal's object: the contacts associated with the deal and its outcomes so far, so that
//! a contact linked later still receives the deal's earlier outcomes.

use serde::{Deserialize, Serialize};
use worker::*;

use super::client::{DealAnswer, DealOutcome, DealUpdate};
use super::kept::MAX_KEPT_OUTCOMES;
use super::store::{message, no_route, Kept, Store};
use crate::worker::http::{now_ms, ApiResult};

/// What one deal object keeps.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct DealRecord {
    /// The deal's HubSpot id.
    deal: String,
    /// The contacts associated with it (at most [`MAX_KEPT_OUTCOMES`], the oldest dropped).
    contacts: Vec<String>,
    /// Its outcomes so far (at most [`MAX_KEPT_OUTCOMES`]).
    outcomes: Vec<DealOutcome>,
    /// Last activity (ms).
    seen: i64,
}

impl Kept for DealRecord {
    fn seen(&self) -> i64 {
        self.seen
    }
    fn touch(&mut self, at: i64) {
        self.seen = self.seen.max(at);
    }
}

impl DealRecord {
    /// Applies a link change or an outcome: a new contact receives every outcome so far, a new
    /// outcome goes to every linked contact (also a re-sent one: the contacts' leads de-duplicate
    /// by id).
    fn update(&mut self, up: DealUpdate) -> DealAnswer {
        self.deal = up.deal;
        let mut answer = DealAnswer::default();
        match up.link {
            Some((contact, true)) => self.contacts.retain(|c| c != &contact),
            Some((contact, false)) if !self.contacts.contains(&contact) => {
                for o in &self.outcomes {
                    answer.due.push((contact.clone(), o.clone()));
                }
                self.contacts.push(contact);
                if self.contacts.len() > MAX_KEPT_OUTCOMES {
                    self.contacts.remove(0);
                }
            }
            _ => {}
        }
        if let Some(o) = up.outcome {
            if !self.outcomes.iter().any(|k| k.id == o.id) {
                self.outcomes.push(o.clone());
                if self.outcomes.len() > MAX_KEPT_OUTCOMES {
                    self.outcomes.remove(0);
                }
            }
            for c in &self.contacts {
                answer.due.push((c.clone(), o.clone()));
            }
        }
        answer
    }
}

/// One HubSpot deal.
#[durable_object]
pub struct DealObject {
    env: Env,
    store: Store<DealRecord>,
}

kept_object!(DealObject);

impl DealObject {
    async fn route(&self, mut req: Request) -> ApiResult<Response> {
        match (req.method(), req.path().as_str()) {
            (Method::Post, "/deal") => self.update(message(&mut req).await?).await,
            _ => Err(no_route()),
        }
    }

    async fn update(&self, up: DealUpdate) -> ApiResult<Response> {
        let mut rec = self.store.load().await?.unwrap_or_default();
        let answer = rec.update(up);
        rec.seen = now_ms();
        self.store.save(&self.env, &rec).await?;
        Ok(Response::from_json(&answer)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcome::OutcomeType;

    fn won(id: &str) -> DealOutcome {
        DealOutcome {
            id: id.into(),
            kind: OutcomeType::Customer,
            ts: 1,
        }
    }

    fn link(contact: &str, removed: bool) -> DealUpdate {
        DealUpdate {
            deal: "d1".into(),
            link: Some((contact.into(), removed)),
            outcome: None,
        }
    }

    #[test]
    fn a_contact_linked_later_receives_the_earlier_outcomes() {
        let mut d = DealRecord::default();
        assert!(d.update(link("c1", false)).due.is_empty());
        let due = d
            .update(DealUpdate {
                deal: "d1".into(),
                link: None,
                outcome: Some(won("o1")),
            })
            .due;
        assert_eq!(due, vec![("c1".to_string(), won("o1"))]);
        assert_eq!(
            d.update(link("c2", false)).due,
            vec![("c2".to_string(), won("o1"))]
        );
        assert!(
            d.update(link("c2", false)).due.is_empty(),
            "linked twice: nothing new"
        );
        d.update(link("c1", true));
        assert_eq!(d.contacts, vec!["c2".to_string()]);
    }
}
