//! A lead's directory: which visitors (devices) proved they are the lead, and which of them is its
//! merged view — the rule the worker's lead directory entry (`lead:<id>`) follows, kept here so it
//! is tested natively.
//!
//! Membership is bounded by [`MAX_LEAD_VISITORS`] (the oldest leave first), and only a visitor
//! with CRM consent ever becomes the merged view: the merged view's state is what reaches the CRM.

use serde::{Deserialize, Serialize};

/// Most visitors a lead keeps (the core merges at most as many sources into one state).
pub const MAX_LEAD_VISITORS: usize = crate::state::MAX_MERGED;

/// One lead's visitors.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeadDirectory {
    /// The visitor whose state is the lead's merged view (the consented visitor that joined last).
    pub merged_view: Option<String>,
    /// The lead's visitors, oldest first.
    pub visitors: Vec<String>,
}

impl LeadDirectory {
    /// Records that `visitor` proved it is this lead (`crm`: its CRM consent) and returns the lead's
    /// other visitors, the merged view first, then the newest first: the states `visitor` merges.
    pub fn join(&mut self, visitor: &str, crm: bool) -> Vec<String> {
        if self.visitors.is_empty() {
            // Entries written before the list knew only the visitor they pointed at.
            self.visitors.extend(self.merged_view.clone());
        }
        let mut others: Vec<String> = Vec::new();
        for v in self.merged_view.iter().chain(self.visitors.iter().rev()) {
            if v != visitor && !others.contains(v) {
                others.push(v.clone());
            }
        }
        if !self.visitors.iter().any(|v| v == visitor) {
            if self.visitors.len() >= MAX_LEAD_VISITORS {
                self.visitors.remove(0);
            }
            self.visitors.push(visitor.to_string());
            if crm {
                self.merged_view = Some(visitor.to_string());
            }
        } else if crm && self.merged_view.is_none() {
            self.merged_view = Some(visitor.to_string()); // the first of them to consent
        }
        others
    }
}

/// Whether an identify's lead id counts for a visitor: a lead proven by this request
/// (`proven`: a checked signature, or a bearer caller), or any claim while the visitor has
/// verified no lead or the same one. A claim never replaces a lead the visitor verified
/// (`verified`); the identify's traits count either way.
pub fn claim_counts(lead: &str, proven: Option<&str>, verified: Option<&str>) -> bool {
    proven == Some(lead) || verified.is_none_or(|v| v == lead)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consented_newcomers_become_the_merged_view_and_others_come_back_newest_first() {
        let mut d = LeadDirectory::default();
        assert!(d.join("a", true).is_empty());
        assert_eq!(d.merged_view.as_deref(), Some("a"));
        assert_eq!(d.join("b", false), ["a"]);
        assert_eq!(
            d.merged_view.as_deref(),
            Some("a"),
            "no consent: never the view"
        );
        assert_eq!(d.join("c", true), ["a", "b"]);
        assert_eq!(d.merged_view.as_deref(), Some("c"));
        assert_eq!(d.join("a", true), ["c", "b"], "a known visitor rejoining");
        assert_eq!(
            d.merged_view.as_deref(),
            Some("c"),
            "rejoining changes nothing"
        );
        assert_eq!(d.visitors, ["a", "b", "c"]);
    }

    #[test]
    fn an_unconsented_lead_gets_a_view_once_one_visitor_consents() {
        let mut d = LeadDirectory::default();
        d.join("a", false);
        d.join("b", false);
        assert_eq!(d.merged_view, None);
        d.join("a", true);
        assert_eq!(d.merged_view.as_deref(), Some("a"));
    }

    #[test]
    fn membership_is_bounded_and_the_oldest_leave_first() {
        let mut d = LeadDirectory::default();
        for i in 0..MAX_LEAD_VISITORS + 3 {
            d.join(&format!("v{i}"), false);
        }
        assert_eq!(d.visitors.len(), MAX_LEAD_VISITORS);
        assert_eq!(d.visitors[0], "v3");
    }

    #[test]
    fn an_entry_that_knew_only_its_view_keeps_it_as_a_member() {
        let mut d = LeadDirectory {
            merged_view: Some("old".into()),
            visitors: vec![],
        };
        assert_eq!(d.join("new", false), ["old"]);
        assert_eq!(d.visitors, ["old", "new"]);
    }

    #[test]
    fn a_claim_never_replaces_a_verified_lead() {
        assert!(
            claim_counts("a", None, None),
            "a claim tags an unverified visitor"
        );
        assert!(claim_counts("a", None, Some("a")), "the same lead again");
        assert!(
            !claim_counts("b", None, Some("a")),
            "another lead, only claimed"
        );
        assert!(
            claim_counts("b", Some("b"), Some("a")),
            "another lead, proven"
        );
        assert!(
            !claim_counts("b", Some("c"), Some("a")),
            "proven is another lead"
        );
    }
}
