//! The integration tests: one binary (each test binary links tract), one module per subject.
//! Run one subject with `cargo test --test integration parity::`.

mod bundle;
mod cli;
mod compare;
mod dataset;
mod features;
mod generated;
mod hubspot;
mod kernel;
mod parity;
mod robustness;
mod state;
mod support;
mod trainer;
