//! The CRM-writes queue's consumer: each batch's writes and activities handed to their destination's outbox in
//! one call per destination; a batch is acked only once its outbox has stored the writes (else the
//! queue retries it, and the outbox drops the copies it already has as stale or coalesces them).

use std::collections::BTreeMap;

use worker::*;

use super::crm::produce::{CrmItem, CrmMessage};
use super::objects::client;
use super::outbox::Delivery;
use crate::crm::activities::Activity;
use crate::crm::Write;

/// One outbox's part of a batch: the messages' indexes, their writes and activities.
type ForOutbox = (Vec<usize>, Vec<Write>, Vec<Activity>);

/// Hands one batch to the outboxes.
pub async fn offer_batch(batch: MessageBatch<Delivery>, env: &Env) -> Result<()> {
    let messages = batch.messages()?;
    let mut by_dest: BTreeMap<String, ForOutbox> = BTreeMap::new();
    for (i, msg) in messages.iter().enumerate() {
        match serde_json::from_str::<CrmMessage>(&msg.body().body) {
            Ok(m) => {
                let d = by_dest.entry(m.destination).or_default();
                d.0.push(i);
                match m.item {
                    CrmItem::Write(w) => d.1.push(w),
                    CrmItem::Activity(a) => d.2.push(a),
                }
            }
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
    for (dest, (idx, writes, activities)) in by_dest {
        match client::crm_offer(env, &dest, writes, activities, false).await {
            Ok(_) => idx.iter().for_each(|&i| messages[i].ack()),
            Err(e) => {
                console_warn!(
                    "crm: {dest} outbox did not take {} messages ({}); retrying",
                    idx.len(),
                    e.message
                );
                idx.iter().for_each(|&i| messages[i].retry());
            }
        }
    }
    Ok(())
}
