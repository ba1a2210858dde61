//! The worker's Durable Objects, one kind per thing they hold, each the only writer of it:
//!
//! | kind | namespace (bindings) | named by | holds |
//! |---|---|---|---|
//! | [`visitor::VisitorObject`] | `VISITORS` | visitor id | the core's state, CRM sends, consent, rate window, arm, outcomes |
//! | [`lead::LeadObject`] | `LEADS` | verified lead id | the lead's visitors and merged view, outcomes |
//! | [`deal::DealObject`] | `DEALS` | HubSpot deal id | the deal's contacts and outcomes |
//! | [`account::AccountObject`] | `ACCOUNTS` | account id | members' latest scores, account traits, the account score and what was last sent |
//! | [`crm_outbox::CrmOutboxObject`] | `CRM_OUTBOXES` | destination (`hubspot`, `salesforce`) | each record's latest values waiting, score times written, the call budget, the token |
//!
//! **Leads.** Only a **verified** identify (the site backend's signature of the lead id, or a
//! bearer caller; see [`crate::identity`]) joins a lead. When one is applied to visitor V with
//! lead L:
//! 1. V joins L's [`lead::LeadObject`] ([`crate::lead::LeadDirectory`] holds its rules, at most
//!    [`crate::lead::MAX_LEAD_VISITORS`] visitors, the oldest dropped first); if V is new to the
//!    lead and has CRM consent it becomes the merged view, and the lead answers with its other
//!    visitors, the previous merged view first;
//! 2. V fetches each one's state that its state has not absorbed yet and merges those **with CRM
//!    consent** into its own with the core's [`crate::state::VisitorState::merge`], the most
//!    complete state first (so a previous merged view brings its sources along and they are not
//!    fetched again); a visitor without consent is never merged (its behaviour must not reach the
//!    CRM through another device) and may be merged later, once it consents;
//! 3. then, once, V's score goes through the webhook policy: the CRM hears of the merged score, not
//!    of the pre-merge one first; `GET /v1/score/L` answers with V's score.
//!
//! An unverified identify (a form fill, a claim) tags V's own state with the lead id and traits —
//! its webhooks say `"verified": false` — and reads or changes nothing of any other visitor. A
//! claim never replaces a lead V has verified ([`crate::lead::claim_counts`]).
//!
//! Replays count nothing twice: a merged state remembers its sources, so a repeated identify
//! (same or new event id) finds nothing left to merge. The other devices keep their own objects:
//! their later events update their own state, score and webhooks (with their `visitor_id`), not
//! the merged view, which holds each of them as it was when merged (a state is an aggregate, so
//! merging it again would count its earlier part twice). A device already in the lead that
//! identifies again does not take over the merged view.
//!
//! **Accounts.** Only a **verified** group event (the site backend's signature of
//! `account:<id>`, or a bearer caller's) makes a visitor a member of an account: a page's claim of
//! a company is refused, so it can neither read nor move another company's score. A member's every
//! live score is then sent to its account ([`account::AccountObject`]), which rolls the members up
//! ([`crate::account`]) and sends its own webhooks.
//!
//! **Invariants.** Objects talk to each other only through [`client`] (internal JSON routes); a
//! handler outside this folder never reads an object's storage. Every object expires after
//! `RETENTION_DAYS` idle ([`store`]). What an object logs goes on the logs queue *before* the
//! state that counts it is saved, so a failed request is retried and logged, never saved unlogged.

// `kept_object!` (store.rs) is used by the objects declared after it.
#[macro_use]
pub mod store;
#[allow(missing_docs)]
pub mod account;
pub mod client;
#[allow(missing_docs)]
pub mod crm_outbox;
// `#[durable_object]` generates JS glue (a class and its methods) that carries no docs.
#[allow(missing_docs)]
pub mod deal;
pub mod kept;
#[allow(missing_docs)]
pub mod lead;
#[allow(missing_docs)]
pub mod visitor;
