//! Errors raised while loading or running a model bundle.

use crate::features::FeatureError;
use crate::site::SiteError;

/// Why a bundle could not be loaded or run. Errors from another layer keep their type as the
/// source (`Error::source`), so a caller can tell a bad card's JSON from a bad feature.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// The ONNX file is not a model we can serve (unsupported op, mode, shape…).
    #[error("model.onnx: {0}")]
    Onnx(String),
    /// The card is inconsistent with itself or with the model.
    #[error("card.json: {0}")]
    Card(String),
    /// The card is not valid JSON for the card format.
    #[error("card.json: {0}")]
    CardJson(#[from] serde_json::Error),
    /// The card's site tables fail validation.
    #[error("card.json: {0}")]
    Site(#[from] SiteError),
    /// A feature the card declares cannot be served.
    #[error("card.json: {0}")]
    Feature(#[from] FeatureError),
    /// tract failed while loading or running the plan.
    #[error("tract: {0:#}")]
    Tract(#[from] tract_onnx::prelude::TractError),
    /// The plan ran but answered something other than what was asked (shape, count).
    #[error("plan: {0}")]
    Plan(String),
    /// Reading a bundle file failed.
    #[error("{path}: {source}")]
    Io {
        /// File that could not be read.
        path: String,
        /// Underlying error.
        source: std::io::Error,
    },
}
