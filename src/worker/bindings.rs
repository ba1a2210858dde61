//! The names wrangler.toml gives the worker's resources, said once. A unit test reads
//! wrangler.toml and fails when a name here is not bound there.

/// Durable Object namespace of visitors (one object per visitor id).
pub const VISITORS: &str = "VISITORS";
/// Durable Object namespace of leads (one directory per verified lead id).
pub const LEADS: &str = "LEADS";
/// Durable Object namespace of CRM deals (one object per HubSpot deal id).
pub const DEALS: &str = "DEALS";
/// Durable Object namespace of accounts (one object per account id).
pub const ACCOUNTS: &str = "ACCOUNTS";

/// Durable Object namespace of CRM outboxes (one object per destination: `hubspot`, `salesforce`).
pub const CRM_OUTBOXES: &str = "CRM_OUTBOXES";

/// Producer of the score-events queue (signed webhooks).
pub const SCORE_EVENTS: &str = "SCORE_EVENTS";
/// The score-events queue's name: its consumer's batches.
pub const SCORE_EVENTS_QUEUE: &str = "leadscore-score-events";
/// Its dead-letter queue's name: deliveries that exhausted their retries.
pub const SCORE_EVENTS_DLQ: &str = "leadscore-score-events-dlq";

/// Producer of the logs queue (the learning loop's records).
pub const LOGS: &str = "LOGS";
/// The logs queue's name.
pub const LOGS_QUEUE: &str = "leadscore-logs";

/// Producer of the CRM-writes queue (record values on their way to a destination's outbox).
pub const CRM_WRITES: &str = "CRM_WRITES";
/// The CRM-writes queue's name.
pub const CRM_WRITES_QUEUE: &str = "leadscore-crm-writes";

/// R2 bucket: logs, failed deliveries, the deployment's site tables.
pub const DATA: &str = "DATA";
/// D1 database: the monitor's aggregates.
pub const MONITOR: &str = "MONITOR";

#[cfg(test)]
mod tests {
    use super::*;

    const WRANGLER: &str = include_str!("../../wrangler.toml");

    /// `key = "value"` lines of wrangler.toml (comments skipped).
    fn assigned(key: &str) -> Vec<&'static str> {
        WRANGLER
            .lines()
            .filter(|l| !l.trim_start().starts_with('#'))
            .filter_map(|l| l.split_once('='))
            .filter(|(k, _)| k.trim() == key)
            .map(|(_, v)| v.trim().trim_matches('"'))
            .collect()
    }

    #[test]
    fn every_name_is_bound_in_wrangler_toml() {
        for name in [VISITORS, LEADS, DEALS, ACCOUNTS, CRM_OUTBOXES] {
            assert!(assigned("name").contains(&name), "durable object {name}");
        }
        for b in [SCORE_EVENTS, LOGS, CRM_WRITES] {
            assert!(assigned("binding").contains(&b), "queue producer {b}");
        }
        for q in [
            SCORE_EVENTS_QUEUE,
            SCORE_EVENTS_DLQ,
            LOGS_QUEUE,
            CRM_WRITES_QUEUE,
        ] {
            assert!(assigned("queue").contains(&q), "queue consumer {q}");
        }
        assert!(assigned("dead_letter_queue").contains(&SCORE_EVENTS_DLQ));
        assert!(assigned("binding").contains(&DATA), "R2 bucket");
        assert!(assigned("binding").contains(&MONITOR), "D1 database");
    }
}
