//! Routing: who works a lead and by when, set once as it enters a tier — hot to senior reps within
//! hours, warm to BDRs within a day, cold to nurture (the defaults; the mapping is configuration).
//!
//! Written only on entering a tier, so a rep's SLA clock is not reset by every later score of the
//! same tier; a tier without an SLA clears the due time.

use serde::{Deserialize, Serialize};

use super::CrmError;
use crate::score::Tier;

/// Where a tier's leads go.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Route {
    /// The owner tier written to the record (a queue or team name the CRM's assignment rules read).
    pub owner_tier: String,
    /// Hours the owner has to act; none: no due time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sla_hours: Option<f64>,
}

/// The routing of each tier.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Routing {
    /// Hot leads.
    pub hot: Route,
    /// Warm leads.
    pub warm: Route,
    /// Cold leads.
    pub cold: Route,
}

impl Default for Routing {
    fn default() -> Self {
        let route = |owner: &str, sla: Option<f64>| Route {
            owner_tier: owner.into(),
            sla_hours: sla,
        };
        Routing {
            hot: route("senior_ae", Some(4.0)),
            warm: route("bdr", Some(24.0)),
            cold: route("nurture", None),
        }
    }
}

/// Longest owner tier name (it goes into a CRM text field).
pub const MAX_OWNER_TIER_CHARS: usize = 64;
/// Longest SLA: 90 days.
pub const MAX_SLA_HOURS: f64 = 90.0 * 24.0;

/// What a record receives on entering a tier.
#[derive(Debug, Clone, PartialEq)]
pub struct Assignment {
    /// The tier's owner tier.
    pub owner_tier: String,
    /// When the owner must have acted (ms), if the tier has an SLA.
    pub due_at: Option<i64>,
}

impl Routing {
    /// Checks every route.
    pub fn validate(&self) -> Result<(), CrmError> {
        for (tier, r) in [
            ("hot", &self.hot),
            ("warm", &self.warm),
            ("cold", &self.cold),
        ] {
            let n = r.owner_tier.chars().count();
            if n == 0 || n > MAX_OWNER_TIER_CHARS {
                return Err(CrmError::Config(format!(
                    "routing.{tier}.owner_tier must be 1–{MAX_OWNER_TIER_CHARS} characters"
                )));
            }
            if let Some(h) = r.sla_hours {
                if !(h.is_finite() && h > 0.0 && h <= MAX_SLA_HOURS) {
                    return Err(CrmError::Config(format!(
                        "routing.{tier}.sla_hours must be > 0 and ≤ {MAX_SLA_HOURS}, got {h}"
                    )));
                }
            }
        }
        Ok(())
    }

    /// The assignment for a score of `tier` at `scored_at` that entered it (the previous tier
    /// written was another, or none); `None` when it stays in its tier.
    pub fn on_entering(
        &self,
        tier: Tier,
        previous: Option<Tier>,
        scored_at: i64,
    ) -> Option<Assignment> {
        if previous == Some(tier) {
            return None;
        }
        let r = match tier {
            Tier::Hot => &self.hot,
            Tier::Warm => &self.warm,
            Tier::Cold => &self.cold,
        };
        Some(Assignment {
            owner_tier: r.owner_tier.clone(),
            due_at: r
                .sla_hours
                .map(|h| scored_at.saturating_add((h * 3_600_000.0).round() as i64)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_entering_a_tier_assigns_and_starts_the_clock() {
        let r = Routing::default();
        let a = r.on_entering(Tier::Hot, Some(Tier::Warm), 1_000).unwrap();
        assert_eq!(a.owner_tier, "senior_ae");
        assert_eq!(a.due_at, Some(1_000 + 4 * 3_600_000));
        assert_eq!(r.on_entering(Tier::Hot, Some(Tier::Hot), 9_000), None);
        let first = r.on_entering(Tier::Cold, None, 5).unwrap();
        assert_eq!((first.owner_tier.as_str(), first.due_at), ("nurture", None));
    }

    #[test]
    fn bad_routes_are_refused_by_name() {
        let mut r = Routing::default();
        r.warm.sla_hours = Some(-1.0);
        let e = r.validate().unwrap_err().to_string();
        assert!(e.contains("routing.warm.sla_hours"), "{e}");
        let mut r = Routing::default();
        r.hot.owner_tier = String::new();
        assert!(r
            .validate()
            .unwrap_err()
            .to_string()
            .contains("routing.hot.owner_tier"));
        assert!(Routing::default().validate().is_ok());
    }
}
