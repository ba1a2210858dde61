//! The model bundle: `card.json` + `model.onnx`, loaded and validated once, then run through tract.
//!
//! tract parses the ONNX graph and runs the plan ([`plan`]); its `TreeEnsembleClassifier` is served
//! by our flat tree kernel ([`forest`]), whose parsed trees also feed TreeSHAP (`crate::explain`,
//! which sits above this module), so the trees that score are the trees that explain.

pub mod card;
pub mod codegen;
pub mod error;
pub mod forest;
pub mod graph;
pub mod plan;
pub mod scorecard;
pub mod tree_op;

use std::path::Path;

use sha2::{Digest, Sha256};

use card::Card;
use error::ModelError;
use plan::Plan;

/// The default model, embedded at build time so every front end has one without file access.
pub mod embedded {
    /// `models/default/card.json`.
    pub const CARD: &str = include_str!("../../models/default/card.json");
    /// `models/default/model.onnx`.
    pub const ONNX: &[u8] = include_bytes!("../../models/default/model.onnx");
}

/// A loaded, validated model bundle.
#[derive(Debug)]
pub struct Bundle {
    /// The card.
    pub card: Card,
    /// The runnable tract plan (with our tree kernel).
    pub plan: Plan,
}

impl Bundle {
    /// Loads `card.json` and its model file from a bundle directory.
    pub fn load(dir: &Path) -> Result<Bundle, ModelError> {
        let read = |p: &Path| {
            std::fs::read(p).map_err(|source| ModelError::Io {
                path: p.display().to_string(),
                source,
            })
        };
        let card_path = dir.join("card.json");
        let card_text = String::from_utf8(read(&card_path)?)
            .map_err(|_| ModelError::Card("card.json is not UTF-8".into()))?;
        let card = Card::parse(&card_text)?;
        let onnx = read(&dir.join(&card.onnx_file.file))?;
        Bundle::from_parts(card, &onnx)
    }

    /// The embedded default bundle.
    pub fn embedded() -> Result<Bundle, ModelError> {
        Bundle::from_parts(Card::parse(embedded::CARD)?, embedded::ONNX)
    }

    /// Builds a bundle from a parsed card and the model bytes, validating one against the other.
    pub fn from_parts(card: Card, onnx: &[u8]) -> Result<Bundle, ModelError> {
        if let Some(want) = &card.onnx_file.sha256 {
            let got = sha256_hex(onnx);
            if !want.eq_ignore_ascii_case(&got) {
                return Err(ModelError::Card(format!(
                    "model.sha256 is {want} but {} hashes to {got}",
                    card.onnx_file.file
                )));
            }
        }
        let model = Plan::load_for_card(onnx, card.features.len())?;
        if let Some(t) = card.onnx_file.n_trees {
            if t != model.forest().n_trees() {
                return Err(ModelError::Card(format!(
                    "model.n_trees is {t} but the ONNX file has {}",
                    model.forest().n_trees()
                )));
            }
        }
        Ok(Bundle { card, plan: model })
    }
}

/// Lowercase hex sha256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    crate::hex::encode(&Sha256::digest(bytes))
}
