//! The learning loop's logs (records: [`crate::log`]): every accepted event and served score of a
//! visitor with analytics consent, every import and every CRM outcome.
//!
//! Producers (the visitor objects) put one queue message per request, holding that request's
//! records as NDJSON lines with their log and day; the consumer ([`write`]) turns each queue batch
//! into one gzip NDJSON object per (log, day) in R2, `<log>/dt=YYYY-MM-DD/<sha256>.ndjson.gz`:
//! R2 is written per batch (up to `max_batch_size` requests), never per request. The key is the
//! hash of the object's text, so a batch written twice (a retry after a partial failure) overwrites
//! the same objects; what at-least-once delivery still repeats, a reader de-duplicates by
//! [`crate::log::Record::key`].
//!
//! Retention: objects are kept until deleted; in production an R2 lifecycle rule per prefix
//! (`events/`, `scores/`, `outcomes/`) expires them (README, "Logs").

use std::collections::BTreeMap;
use std::io::Write as _;

use sha2::{Digest, Sha256};
use worker::*;

use super::bindings::{DATA, LOGS};
use super::env::var;
use crate::log::{pack, LogKind, LogMessage, Record};
/// A test knob (`.dev.vars` or `[vars]`; unset in production): `"1"` makes the consumer retry every
/// message once after writing it, so the queue really delivers each twice, as at-least-once
/// delivery may; the loop test proves the dataset does not change.
pub const REDELIVER_VAR: &str = "LOGS_REDELIVER_ONCE";

thread_local! {
    /// Message ids written once under [`REDELIVER_VAR`] (one isolate consumes the local queue).
    static FIRST_DELIVERIES: std::cell::RefCell<std::collections::HashSet<String>> = Default::default();
}

/// Puts records on the logs queue (nothing when there are none), in messages below
/// [`crate::log::MAX_MESSAGE_BYTES`]. An error fails the request, which the client retries.
pub async fn send(env: &Env, records: Vec<Record>) -> Result<()> {
    let messages = pack(records).map_err(|e| Error::RustError(e.to_string()))?;
    if messages.is_empty() {
        return Ok(());
    }
    let queue = env.queue(LOGS)?;
    for m in messages {
        queue.send(m).await?;
    }
    Ok(())
}

/// The object key of one (log, day) part of a batch.
pub fn object_key(log: LogKind, day: &str, text: &[u8]) -> String {
    let hash = Sha256::digest(text);
    let hex = crate::hex::encode(&hash[..16]);
    format!("{}{hex}.ndjson.gz", log.day_prefix(day))
}

fn gzip(text: &[u8]) -> Result<Vec<u8>> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(text)
        .map_err(|e| Error::RustError(e.to_string()))?;
    enc.finish().map_err(|e| Error::RustError(e.to_string()))
}

/// The logs queue's consumer: one object per (log, day) of the batch; every message acked once
/// all are written, else every message retried (rewriting an object is harmless: same key).
pub async fn write<T>(batch: MessageBatch<T>, env: &Env) -> Result<()> {
    let bucket = env.bucket(DATA)?;
    let mut parts: BTreeMap<(LogKind, String), Vec<u8>> = BTreeMap::new();
    let mut messages = Vec::new();
    let mut lines = 0usize;
    for raw in batch.raw_iter() {
        match Message::<LogMessage>::try_from(raw) {
            Ok(m) => {
                for l in &m.body().lines {
                    let text = parts.entry((l.log, l.day.clone())).or_default();
                    text.extend_from_slice(l.json.as_bytes());
                    text.push(b'\n');
                    lines += 1;
                }
                messages.push(m);
            }
            // Not a log message: it can never be written, and retrying it would loop.
            Err(e) => console_error!("logs: a message that is not a log message is dropped: {e}"),
        }
    }
    let mut failed = None;
    // The monitor's aggregates first: an upsert repeated on a retry changes nothing.
    let monitored: Vec<&str> = messages
        .iter()
        .flat_map(|m| &m.body().lines)
        .filter(|l| matches!(l.log, LogKind::Scores | LogKind::Outcomes))
        .map(|l| l.json.as_str())
        .collect();
    let mut aggregated = 0;
    if !monitored.is_empty() {
        match super::monitor::record(env, &monitored).await {
            Ok(n) => aggregated = n,
            Err(e) => failed = Some(format!("monitor aggregates: {e}")),
        }
    }
    for ((log, day), text) in parts.iter().filter(|_| failed.is_none()) {
        let key = object_key(*log, day, text);
        let written = match gzip(text) {
            Ok(gz) => bucket.put(&key, gz).execute().await.map(|_| ()),
            Err(e) => Err(e),
        };
        if let Err(e) = written {
            failed = Some(format!("{key}: {e}"));
            break;
        }
    }
    match failed {
        None => {
            let redeliver = var(env, REDELIVER_VAR).is_some_and(|v| v == "1");
            let mut redelivered = 0usize;
            for m in &messages {
                if redeliver && FIRST_DELIVERIES.with_borrow_mut(|seen| seen.insert(m.id())) {
                    m.retry();
                    redelivered += 1;
                } else {
                    m.ack();
                }
            }
            console_log!(
                "logs: {} messages, {lines} records → {} objects, {aggregated} D1 statements in 1 batch ({redelivered} redelivered)",
                messages.len(),
                parts.len()
            );
        }
        Some(why) => {
            console_error!("logs: batch not written ({why}); retrying");
            for m in &messages {
                m.retry();
            }
        }
    }
    Ok(())
}
