//! Deliveries that exhausted the retry schedule: the dead-letter queue's consumer keeps each one
//! in R2 (`deliveries/failed/<webhook-id>.json`, binding `DATA`), where it stays until an operator
//! lists it (`GET /v1/deliveries/failed`) and replays it (`POST /v1/deliveries/replay`): the same
//! `webhook-id` and body go back on the score-events queue with a fresh retry schedule, and the
//! object is deleted only once the queue has the message (the routes: [`super::api::deliveries`]). Nothing is dropped on the way: an
//! object that cannot be written leaves its message on the dead-letter queue to be retried.

use serde::{Deserialize, Serialize};
use worker::*;

use super::bindings::DATA;
use super::http::now_ms;
use super::outbox::Delivery;

/// Key prefix of kept deliveries.
pub const PREFIX: &str = "deliveries/failed/";

/// A delivery kept after its last retry.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Failed {
    /// The delivery, as it was queued.
    pub delivery: Delivery,
    /// When the dead-letter queue handed it over (ms).
    pub failed_at: i64,
}

/// Where a kept delivery lives.
pub fn key(id: &str) -> String {
    format!("{PREFIX}{id}.json")
}

/// The dead-letter queue's consumer: each message into R2, acked once written.
pub async fn keep(batch: MessageBatch<Delivery>, env: &Env) -> Result<()> {
    let bucket = env.bucket(DATA)?;
    for msg in batch.messages()? {
        let failed = Failed {
            delivery: msg.body().clone(),
            failed_at: now_ms(),
        };
        let text = serde_json::to_string(&failed).map_err(|e| Error::RustError(e.to_string()))?;
        match bucket.put(key(&failed.delivery.id), text).execute().await {
            Ok(_) => {
                console_warn!("webhook {} kept as failed", failed.delivery.id);
                msg.ack();
            }
            Err(e) => {
                console_error!("webhook {}: not kept ({e}); retrying", failed.delivery.id);
                msg.retry();
            }
        }
    }
    Ok(())
}
