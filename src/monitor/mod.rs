//! Model health: how a model's live traffic compares with what it was trained on, and how well it
//! ranks and calibrates once outcomes arrive. Pure functions over counts (no I/O), so the worker's
//! aggregates and `leadscore monitor` over exported logs reach the same numbers.
//!
//! [`drift`]: PSI, Jensen–Shannon and KS between a frozen baseline histogram and a window's.
//! Accuracy metrics (AUC from binned scores, Brier, ECE, Wilson intervals) are [`crate::metrics`].

pub mod drift;
