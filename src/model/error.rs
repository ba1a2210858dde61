//! Errors raised while loading or running a model bundle.

/// Why a bundle could not be loaded or run.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// The ONNX file is not a model we can serve (unsupported op, mode, shape…).
    #[error("model.onnx: {0}")]
    Onnx(String),
    /// The card is malformed or inconsistent with the model.
    #[error("card.json: {0}")]
    Card(String),
    /// tract failed while loading or running the plan.
    #[error("tract: {0}")]
    Tract(String),
    /// Reading a bundle file failed.
    #[error("{path}: {source}")]
    Io {
        /// File that could not be read.
        path: String,
        /// Underlying error.
        source: std::io::Error,
    },
}
