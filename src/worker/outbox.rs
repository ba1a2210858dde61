//! The message the score-events queue carries (bindings: [`super::bindings`]). The visitor object
//! and the monitor's alerts produce, [`super::delivery`] consumes, and [`super::deadletter`] keeps
//! what the retries could not deliver.

use serde::{Deserialize, Serialize};
use worker::{Env, Result};

use super::bindings::SCORE_EVENTS;

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

/// Puts one signed-webhook body on the score-events queue, its `webhook-id` fixed now: what a
/// visitor's and an account's object send.
pub async fn enqueue(env: &Env, id: String, body: String, now: i64) -> Result<()> {
    env.queue(SCORE_EVENTS)?
        .send(Delivery {
            id,
            body,
            enqueued: now,
        })
        .await
}
