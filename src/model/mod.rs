//! The model bundle: `card.json` + `model.onnx`, loaded and validated once, then run through tract.
//! Where a bundle enters (a directory, an upload) its ONNX is parsed and checked; the loads that
//! follow (the embedded bundles, registry versions, the page) read its trees from `forest.bin`
//! ([`forest::EncodedForest`], derived from the ONNX and bound to it by its sha256) instead.
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
use forest::EncodedForest;
use plan::Plan;

/// The default model, embedded at build time so every front end has one without file access.
pub mod embedded {
    /// `models/default/card.json`.
    pub const CARD: &str = include_str!("../../models/default/card.json");
    /// `models/default/model.onnx`.
    pub const ONNX: &[u8] = include_bytes!("../../models/default/model.onnx");
    /// `models/default/forest.bin`: its trees as loads read them ([`super::forest::EncodedForest`]).
    pub const FOREST: &[u8] = include_bytes!("../../models/default/forest.bin");
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

    /// The embedded default bundle, from its encoded forest (checked against its ONNX file by the
    /// tests, not at each load).
    pub fn embedded() -> Result<Bundle, ModelError> {
        Bundle::from_encoded(Card::parse(embedded::CARD)?, embedded::FOREST)
    }

    /// Builds a bundle from a parsed card and its encoded forest (`forest.bin`, derived from the
    /// card's model: their sha256 must agree when the card gives one, as for [`check_sha256`]);
    /// why: the load of an embedded bundle or a registry version never parses ONNX, whose
    /// one-time code was a third of a cold load in wasm.
    pub fn from_encoded(card: Card, forest: &[u8]) -> Result<Bundle, ModelError> {
        let encoded = EncodedForest::from_bytes(forest)?;
        if let Some(want) = &card.onnx_file.sha256 {
            if !want.eq_ignore_ascii_case(&encoded.onnx_sha256) {
                return Err(ModelError::Card(format!(
                    "model.sha256 is {want} but the forest was derived from a model hashing to {}",
                    encoded.onnx_sha256
                )));
            }
        }
        let plan = Plan::from_encoded(encoded, card.features.len())?;
        Bundle::checked(card, plan)
    }

    /// Builds a bundle from a parsed card and the model bytes, validating one against the other:
    /// the card's `model.sha256` first. For bytes entering the system (a directory, an upload).
    pub fn from_parts(card: Card, onnx: &[u8]) -> Result<Bundle, ModelError> {
        check_sha256(&card, onnx)?;
        let plan = Plan::load_for_card(onnx, card.features.len())?;
        Bundle::checked(card, plan)
    }

    fn checked(card: Card, plan: Plan) -> Result<Bundle, ModelError> {
        if let Some(t) = card.onnx_file.n_trees {
            if t != plan.forest().n_trees() {
                return Err(ModelError::Card(format!(
                    "model.n_trees is {t} but the model has {}",
                    plan.forest().n_trees()
                )));
            }
        }
        Ok(Bundle { card, plan })
    }
}

/// Refuses model bytes that do not hash to the card's `model.sha256` (when it gives one).
pub fn check_sha256(card: &Card, onnx: &[u8]) -> Result<(), ModelError> {
    if let Some(want) = &card.onnx_file.sha256 {
        let got = sha256_hex(onnx);
        if !want.eq_ignore_ascii_case(&got) {
            return Err(ModelError::Card(format!(
                "model.sha256 is {want} but {} hashes to {got}",
                card.onnx_file.file
            )));
        }
    }
    Ok(())
}

/// Lowercase hex sha256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    crate::hex::encode(&Sha256::digest(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Embedded bundles load from `forest.bin`, bound to the model by the card's sha256: this is
    /// where that sha256 is checked against the model, for every committed bundle.
    #[test]
    fn every_committed_model_hashes_to_its_card() {
        let models = Path::new(env!("CARGO_MANIFEST_DIR")).join("models");
        let mut checked = 0;
        for dir in std::fs::read_dir(&models).unwrap() {
            let dir = dir.unwrap().path();
            let Ok(text) = std::fs::read_to_string(dir.join("card.json")) else {
                continue;
            };
            let card = Card::parse(&text).unwrap();
            assert!(card.onnx_file.sha256.is_some(), "{}", dir.display());
            let onnx = std::fs::read(dir.join(&card.onnx_file.file)).unwrap();
            check_sha256(&card, &onnx).unwrap();
            checked += 1;
        }
        assert!(checked >= 4, "only {checked} bundles under models/");
    }
}
