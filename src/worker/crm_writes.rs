//! The CRM-writes queue's consumer: each batch's writes handed to their destination's outbox in
//! one call per destination; a batch is acked only once its outbox has stored the writes (else the
//! queue retries it, and the outbox drops the copies it already has as stale or coalesces them).

use std::collections::BTreeMap;

use worker::*;

use super::crm::produce::CrmMessage;
use super::objects::client;
use super::outbox::Delivery;
use crate::crm::Write;

/// Hands one batch to the outboxes.
pub async fn offer_batch(batch: MessageBatch<Delivery>, env: &Env) -> Result<()> {
    let messages = batch.messages()?;
    let mut by_dest: BTreeMap<String, Vec<(usize, Write)>> = BTreeMap::new();
    for (i, msg) in messages.iter().enumerate() {
        match serde_json::from_str::<CrmMessage>(&msg.body().body) {
            Ok(m) => by_dest.entry(m.destination).or_default().push((i, m.write)),
            Err(e) => {
                // Only this worker writes these messages: one that does not parse is a bug to see.
                console_error!(
                    "crm: message {} does not parse ({e}); dropped",
                    msg.body().id
                );
                msg.ack();
            }
        }
    }
    for (dest, writes) in by_dest {
        let idx: Vec<usize> = writes.iter().map(|(i, _)| *i).collect();
        let writes: Vec<Write> = writes.into_iter().map(|(_, w)| w).collect();
        match client::crm_offer(env, &dest, &writes).await {
            Ok(_) => idx.iter().for_each(|&i| messages[i].ack()),
            Err(e) => {
                console_warn!(
                    "crm: {dest} outbox did not take {} writes ({}); retrying",
                    writes.len(),
                    e.message
                );
                idx.iter().for_each(|&i| messages[i].retry());
            }
        }
    }
    Ok(())
}
