//! Queue consumer: signs each score event (Standard Webhooks) and POSTs it to the CRM webhook,
//! 5 s timeout; a failure is retried by the queue after a backoff with jitter (or the receiver's
//! `Retry-After`); after the queue's last try the message goes to the dead-letter queue.
//!
//! The queue does not expose a message's attempt count to Rust, so the backoff exponent is
//! derived from the time since the first enqueue: each wait is about as long as all before it,
//! which is exponential backoff by construction.

use std::time::Duration;

use futures_util::future::{select, Either};
use worker::*;

use super::visitor::Delivery;
use super::{now_ms, var, var_num};
use crate::webhook::{backoff_seconds, parse_retry_after, sign, Secret};

/// Per-attempt timeout.
pub const TIMEOUT: Duration = Duration::from_secs(5);

enum Attempt {
    Delivered,
    Failed {
        retry_after: Option<u32>,
        why: String,
    },
}

#[event(queue)]
async fn consume(batch: MessageBatch<Delivery>, env: Env, _ctx: Context) -> Result<()> {
    let url = var(&env, "WEBHOOK_URL").unwrap_or_default();
    let secret = var(&env, "WEBHOOK_SECRET").and_then(|s| Secret::parse(&s).ok());
    let base = var_num(&env, "BACKOFF_BASE_SECONDS", 5u32);
    let cap = var_num(&env, "BACKOFF_CAP_SECONDS", 600u32);
    for msg in batch.messages()? {
        let d = msg.body();
        let outcome = match (&secret, url.is_empty()) {
            (None, _) => Attempt::Failed {
                retry_after: None,
                why: "WEBHOOK_SECRET is missing or not whsec_<base64>".into(),
            },
            (_, true) => Attempt::Failed {
                retry_after: None,
                why: "WEBHOOK_URL is not set".into(),
            },
            (Some(s), false) => deliver(&url, s, d).await,
        };
        match outcome {
            Attempt::Delivered => msg.ack(),
            Attempt::Failed { retry_after, why } => {
                let elapsed = ((now_ms() - d.enqueued).max(0) / 1000) as u32;
                let attempt = 1 + (elapsed / base.max(1) + 1).ilog2();
                let delay =
                    backoff_seconds(attempt, retry_after, base, cap, js_sys::Math::random());
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
    let controller = AbortController::default();
    let signal = controller.signal();
    let send = Fetch::Request(req);
    let fut = send.send_with_signal(&signal);
    let timer = Delay::from(TIMEOUT);
    futures_util::pin_mut!(fut);
    futures_util::pin_mut!(timer);
    match select(fut, timer).await {
        Either::Left((Ok(resp), _)) if (200..300).contains(&resp.status_code()) => {
            Attempt::Delivered
        }
        Either::Left((Ok(resp), _)) => Attempt::Failed {
            retry_after: parse_retry_after(
                resp.headers().get("retry-after").ok().flatten().as_deref(),
            ),
            why: format!("HTTP {}", resp.status_code()),
        },
        Either::Left((Err(e), _)) => Attempt::Failed {
            retry_after: None,
            why: e.to_string(),
        },
        Either::Right(_) => {
            controller.abort();
            Attempt::Failed {
                retry_after: None,
                why: format!("no answer within {} s", TIMEOUT.as_secs()),
            }
        }
    }
}
