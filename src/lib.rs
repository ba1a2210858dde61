//! leadscore: real-time predictive lead scoring.
//!
//! The modules follow the data's path: [`event`] → [`state`] → [`features`] → [`model`] →
//! [`explain`] → [`score`] → sinks ([`webhook`], [`alert`], [`crm`]); each imports only modules before it (README,
//! "Invariants"). [`identity`], [`rate_limit`], [`lead`], [`batch`] and [`error_code`] are rules
//! the worker applies, kept here to be tested natively. [`calendar`], [`hash`], [`hex`] and
//! [`secret`] are the primitives every module shares, each written once; they import nothing of
//! the crate. Front ends (CLI, browser, worker) are thin shells
//! over [`score::Scorer`].

// Unit tests may unwrap: a panic there is a failed test. Everywhere else `[lints]` denies it.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod account;
pub mod alert;
pub mod batch;
#[cfg(feature = "browser")]
pub mod browser;
pub mod bundle_check;
pub mod calendar;
pub mod compare;
pub mod crm;
pub mod dataset;
pub mod error_code;
pub mod event;
pub mod experiment;
pub mod explain;
pub mod features;
pub mod hash;
pub mod hex;
pub mod identity;
pub mod lead;
pub mod log;
pub mod metrics;
pub mod model;
pub mod monitor;
pub mod outcome;
pub mod rate_limit;
pub mod registry;
pub mod score;
pub mod secret;
pub mod site;
pub mod state;
pub mod webhook;
#[cfg(feature = "worker")]
pub mod worker;
