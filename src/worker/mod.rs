//! Cloudflare Worker front end (feature `worker`): the HTTP API v1, a Durable Object per visitor,
//! lead and deal ([`objects`]), the queue consumers (signed webhooks [`delivery`], their dead
//! letters [`deadletter`], the learning loop's logs [`logs`]) and the monitor's aggregates and
//! scheduled alerts ([`monitor`]).
//!
//! The worker routes, authenticates and validates envelopes; every event is parsed once, by the
//! core's [`crate::event::Event::parse`] in the route that took it, and scored by the core's
//! [`crate::score::Scorer`].
//!
//! ```text
//! entry (fetch) ─► routes (table: method, path, access) ─► api/<resource> handler
//!   POST /v1/events ─► check origin, site key, size ─► parse ─► objects::client ─► VisitorObject
//!                                                    state ─► score ─► policy ─► Queue ─► webhook
//!                                                      └─ events, score ─► logs Queue ─► R2 (+ D1)
//!   POST /v1/outcomes[/hubspot] ─► LeadObject | VisitorObject (+ DealObject) ─► logs Queue ─► R2
//!   GET /v1/export/{log} ◄─ R2 (gzip NDJSON per log and day)
//!   PUT /v1/models/{name} ─► registry check ─► R2; activate / rollback / experiment ─► R2 state
//!     ─► every isolate's arms (within a minute) ─► the bundle that scores each visitor
//! entry (queue) ─► delivery (score events) | deadletter (DLQ → R2) | logs (→ R2, monitor → D1)
//!                 | crm_writes (CRM writes → CrmOutboxObject ─► HubSpot / Salesforce)
//! entry (scheduled) ─► monitor: judge closed windows ─► alerts on the score-events Queue
//!                      ├─ promote: the live gate on the experiment (model.promoted / rejected)
//!                      └─ retrain: model.retrain_requested (schedule, alert, new outcomes)
//! ```
//!
//! **Layers, and what may import what.** From the bottom: [`bindings`], [`http`], [`env`],
//! [`body`], [`batch`] (plumbing: they import nothing of the worker but each other, lower first);
//! [`outbox`], [`site`], [`registry`], [`arms`], [`logs`], [`crm`] (the isolate's shared stores and
//! scorers); [`objects`]
//! (Durable Objects: use the layers below, never a handler); [`api`] (handlers: call objects only
//! through [`objects::client`]); [`routes`]; [`entry`] at the top. The consumers ([`delivery`],
//! [`deadletter`], [`monitor`], [`crm_writes`]) sit beside the handlers and import only what is below them. The
//! core (`crate::*` outside `worker`) never imports the worker.

pub mod api;
pub mod arms;
pub mod batch;
pub mod bindings;
pub mod body;
pub mod crm;
pub mod crm_writes;
pub mod deadletter;
pub mod delivery;
pub mod entry;
pub mod env;
pub mod http;
pub mod logs;
pub mod monitor;
pub mod objects;
pub mod outbox;
pub mod promote;
pub mod registry;
pub mod retrain;
pub mod routes;
pub mod site;
