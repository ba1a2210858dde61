//! leadscore: real-time predictive lead scoring.
//!
//! The modules follow the data's path: [`event`] → [`state`] → [`features`] → [`model`] → [`score`]
//! → [`explain`]. Front ends (CLI, browser, worker) are thin shells over [`score::Scorer`].

#[cfg(feature = "browser")]
pub mod browser;
pub mod event;
pub mod explain;
pub mod features;
pub mod identity;
pub mod model;
pub mod score;
pub mod site;
pub mod state;
pub mod webhook;
#[cfg(feature = "worker")]
pub mod worker;
