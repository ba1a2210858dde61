//! CRM write-back in the worker: the core's rules ([`crate::crm`]) on Cloudflare's parts. This
//! folder is a lower layer (the objects use it); the queue's consumer is [`super::crm_writes`].
//!
//! ```text
//! VisitorObject (a verified, consented lead's score changed) ─► produce ─► CRM_WRITES queue
//!   ─► crm_writes (the consumer) ─► CrmOutboxObject per destination (objects/crm_outbox.rs): each record's latest
//!      values, coalesced; its alarm flushes batches within the call budget ─► send ─► the CRM
//!      ├─ written: the record's score time remembered (an older score is never written over it)
//!      ├─ retry: Retry-After / the schedule (a day), the token renewed on a 401 (Salesforce)
//!      └─ gone / refused / given up: a dead letter in R2 (`crm/<destination>/dead/`), replayable
//! ```
//! The destinations come from `CRM_DESTINATIONS` and their secrets ([`destinations`]); a bad
//! configuration is an error that `GET /v1/crm` shows and the logs say once per isolate, while
//! scoring and the generic webhook go on untouched.

pub mod produce;
pub mod send;

use std::cell::RefCell;

use worker::Env;

use super::env::var;
use crate::crm::config::{parse, Destination};

/// Destinations parsed from a text, or why they cannot be used.
type Parsed = Result<Vec<Destination>, String>;

thread_local! {
    /// The parsed destinations, with the text they were parsed from.
    static PARSED: RefCell<Option<(String, Parsed)>> = const { RefCell::new(None) };
}

/// The deployment's destinations, or why they cannot be used (parsed once per isolate and text).
pub fn destinations(env: &Env) -> Parsed {
    let text = var(env, "CRM_DESTINATIONS").unwrap_or_default();
    PARSED.with(|p| {
        if let Some((t, r)) = &*p.borrow() {
            if *t == text {
                return r.clone();
            }
        }
        let has = |name: &str| env.secret(name).is_ok_and(|s| !s.to_string().is_empty());
        let r = parse(&text, has).map_err(|e| e.to_string());
        if let Err(e) = &r {
            worker::console_error!("{e}: CRM write-back is off; scoring and webhooks go on");
        }
        *p.borrow_mut() = Some((text, r.clone()));
        r
    })
}

/// One destination by name.
pub fn destination(env: &Env, name: &str) -> Result<Destination, String> {
    destinations(env)?
        .into_iter()
        .find(|d| d.crm.as_str() == name)
        .ok_or_else(|| format!("no CRM destination {name:?} is configured"))
}
