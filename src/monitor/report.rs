//! What `leadscore monitor` prints and `GET /v1/monitor` answers: every window's health, the
//! alerts, and the experiment's arms.

use serde::{Deserialize, Serialize};

use super::arms::ExperimentWindow;
use super::drift::Gate;
use super::health::{Alert, WindowHealth};
use crate::outcome::OutcomeType;

/// What `leadscore monitor` prints and `GET /v1/monitor` answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// The monitored bundle.
    pub model_version: String,
    /// The outcome type that labels a decision positive.
    pub label: OutcomeType,
    /// Window length (ms).
    pub window_ms: i64,
    /// Outcome window W (ms).
    pub outcome_window_ms: i64,
    /// Labels known up to (ms).
    pub as_of: i64,
    /// Minimum samples and PSI lines.
    pub gate: Gate,
    /// Score records read (of this bundle).
    pub scores: u64,
    /// Score records of other bundles (not assessed here).
    pub other_models: u64,
    /// Outcomes read (the worker: label outcomes of the windows' visitors and leads).
    pub outcomes: u64,
    /// Every window, oldest first.
    pub windows: Vec<WindowHealth>,
    /// Every window's alerts, in window order (an experiment's SRM alerts included).
    pub alerts: Vec<Alert>,
    /// The experiment's arms per window, where one runs.
    #[serde(default)]
    pub experiments: Vec<ExperimentWindow>,
}
