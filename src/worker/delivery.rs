//! Queue consumer: signs each score event (Standard Webhooks) and POSTs it to the CRM webhook.
//!
//! A batch's messages are delivered concurrently (a batch holds at most `max_batch_size`, 10, so
//! that is the bound), each with a 5 s timeout, and each is acked or retried on its own: one slow
//! receiver does not hold up the others. A failed attempt is retried by the queue on the
//! Standard Webhooks schedule ([`retry_delay_seconds`], 27 h 35 min in all), honouring the
//! receiver's `Retry-After`; after the last retry the queue moves the message to the dead-letter
//! queue, whose consumer ([`super::deadletter`], dispatched by [`super::entry`]) keeps it in R2 until it is replayed.

use std::time::Duration;

use futures_util::future::join_all;
use worker::*;

use super::env::{var, var_num};
use super::http::{fetch_within, now_ms};
use super::outbox::Delivery;
use crate::webhook::{parse_retry_after, parse_secret, retry_delay_seconds, sign, Secret};

/// Per-attempt timeout.
pub const TIMEOUT: Duration = Duration::from_secs(5);

enum Attempt {
    Delivered,
    Failed {
        retry_after: Option<u32>,
        why: String,
    },
}

/// Delivers one batch of the score-events queue: each message acked or retried on its own.
pub async fn deliver_batch(batch: MessageBatch<Delivery>, env: &Env) -> Result<()> {
    let url = var(env, "WEBHOOK_URL").unwrap_or_default();
    let secret = var(env, "WEBHOOK_SECRET").and_then(|s| parse_secret(&s).ok());
    // Tests compress the schedule (e.g. 120: the 30-minute step takes 15 s); production: 1.
    let scale = var_num(env, "DELIVERY_TIME_SCALE", 1.0f64);
    let messages = batch.messages()?;
    let attempts = messages.iter().map(|msg| {
        let d = msg.body();
        let (secret, url) = (&secret, &url);
        async move {
            match (secret, url.is_empty()) {
                (None, _) => Attempt::Failed {
                    retry_after: None,
                    why: "WEBHOOK_SECRET is missing or not whsec_<base64>".into(),
                },
                (_, true) => Attempt::Failed {
                    retry_after: None,
                    why: "WEBHOOK_URL is not set".into(),
                },
                (Some(s), false) => deliver(url, s, d).await,
            }
        }
    });
    let outcomes = join_all(attempts).await;
    for (msg, outcome) in messages.iter().zip(outcomes) {
        match outcome {
            Attempt::Delivered => msg.ack(),
            Attempt::Failed { retry_after, why } => {
                let d = msg.body();
                let delay = retry_delay_seconds(
                    now_ms() - d.enqueued,
                    retry_after,
                    scale,
                    js_sys::Math::random(),
                );
                console_warn!("webhook {} failed ({why}); retry in {delay} s", d.id);
                msg.retry_with_options(
                    &QueueRetryOptionsBuilder::new()
                        .with_delay_seconds(delay)
                        .build(),
                );
            }
        }
    }
    Ok(())
}

async fn deliver(url: &str, secret: &Secret, d: &Delivery) -> Attempt {
    let ts = now_ms() / 1000;
    let sig = sign(secret, &d.id, ts, &d.body);
    let headers = Headers::new();
    let set = [
        ("content-type", "application/json"),
        ("webhook-id", d.id.as_str()),
        ("webhook-timestamp", &ts.to_string()),
        ("webhook-signature", sig.as_str()),
        ("user-agent", "leadscore-webhook/1"),
    ]
    .iter()
    .try_for_each(|(k, v)| headers.set(k, v));
    if let Err(e) = set {
        return Attempt::Failed {
            retry_after: None,
            why: e.to_string(),
        };
    }
    let mut init = RequestInit::new();
    init.with_method(Method::Post)
        .with_headers(headers)
        .with_body(Some(d.body.clone().into()));
    let req = match Request::new_with_init(url, &init) {
        Ok(r) => r,
        Err(e) => {
            return Attempt::Failed {
                retry_after: None,
                why: e.to_string(),
            }
        }
    };
    match fetch_within(req, TIMEOUT).await {
        Ok(Some(resp)) if (200..300).contains(&resp.status_code()) => Attempt::Delivered,
        Ok(Some(resp)) => Attempt::Failed {
            retry_after: parse_retry_after(
                resp.headers().get("retry-after").ok().flatten().as_deref(),
                now_ms(),
            ),
            why: format!("HTTP {}", resp.status_code()),
        },
        Err(e) => Attempt::Failed {
            retry_after: None,
            why: e.to_string(),
        },
        Ok(None) => Attempt::Failed {
            retry_after: None,
            why: format!("no answer within {} s", TIMEOUT.as_secs()),
        },
    }
}
