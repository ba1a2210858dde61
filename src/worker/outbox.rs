//! The score-events queue as both ends see it: its bindings and names (wrangler.toml) and the
//! message it carries. The visitor object produces, [`super::delivery`] consumes, and
//! [`super::deadletter`] keeps and re-enqueues what the retries could not deliver.

use serde::{Deserialize, Serialize};

/// Queue producer binding name (wrangler.toml).
pub const QUEUE: &str = "SCORE_EVENTS";
/// The score-events queue's dead-letter queue (wrangler.toml): its batches go to [`super::deadletter`].
pub const DLQ_NAME: &str = "leadscore-score-events-dlq";

/// A message on the score-events queue: the webhook id is fixed when the event is made, so every
/// retry and every replay of this delivery carries the same `webhook-id`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Delivery {
    /// `webhook-id`.
    pub id: String,
    /// JSON body to sign and send.
    pub body: String,
    /// When it was (first, or last re-) enqueued (ms): the retry schedule counts from here.
    pub enqueued: i64,
}
