//! Browser front end (feature `browser`): the scorer as a wasm-bindgen class.
//!
//! The tracker (`www/tracker.js`) captures events and hands them over as JSON text; everything
//! else — limits, state, features, model, calibration, explanation — happens here, in the core.
//! The JS-facing surface is deliberately small so it stays stable while the core grows:
//!
//! ```js
//! const s = new LeadScorer(visitorId, savedStateOrUndefined, pageRulesJsonOrUndefined,
//!                          siteTablesJsonOrUndefined);   // the deployment's, from GET /v1/site
//! LeadScorer.fromForest(forestBytes, cardJson, visitorId, saved, rules, site); // an arm, as served
//! s.apply(eventJson, Date.now());   // "applied" | "duplicate" | "stale", throws {code, message}
//! s.score(Date.now());              // same object as the CLI prints
//! localStorage.x = s.save();        // Uint8Array of the compact state
//! ```

use js_sys::{Error, Reflect};
use serde::Serialize as _;
use wasm_bindgen::prelude::*;

use crate::error_code::ErrorCode;
use crate::event::Event;
use crate::explain::ShapMemo;
use crate::model::Bundle;
use crate::score::{Score, ScoreOptions, Scorer};
use crate::site::{PageRule, SiteTables};
use crate::state::{Apply, VisitorState};

/// A JS error object with a stable `code`, as the HTTP API reports `{"error":{code,message}}`.
fn js_error(code: ErrorCode, message: impl std::fmt::Display) -> JsValue {
    let e = Error::new(&message.to_string());
    // Setting a property on a fresh Error cannot fail; ignore the impossible.
    let _ = Reflect::set(&e, &"code".into(), &code.as_str().into());
    e.into()
}

/// One visitor's scorer in the page: model (plan built once) plus that visitor's state.
#[wasm_bindgen]
pub struct LeadScorer {
    scorer: Scorer,
    state: VisitorState,
    visitor_id: String,
    /// The last explanation, tree by tree: a score after an event recomputes only what it changed.
    memo: ShapMemo,
}

#[wasm_bindgen]
impl LeadScorer {
    /// Builds the embedded default model for `visitor_id`, restoring `saved` state when it is
    /// given and valid (a state from another model version or a corrupt one starts afresh, since
    /// losing a visitor's history beats scoring it wrongly). `page_rules` (JSON array of
    /// `{"prefix"|"exact", "tags"}`) are tried before the card's URL → category rules.
    /// `site_tables` (the deployment's, as the worker's `GET /v1/site` serves them) replace the
    /// card's, so the page scores with the tables the worker uses.
    #[wasm_bindgen(constructor)]
    pub fn new(
        visitor_id: String,
        saved: Option<Vec<u8>>,
        page_rules: Option<String>,
        site_tables: Option<String>,
    ) -> Result<LeadScorer, JsValue> {
        let bundle = Bundle::embedded().map_err(|e| js_error(ErrorCode::Model, e))?;
        LeadScorer::build(bundle, visitor_id, saved, page_rules, site_tables)
    }

    /// Same as the constructor with a bundle in its serving form (`card.json` and the encoded forest,
    /// as `GET /v1/models/{version}?form=served` sends them); why: no ONNX to parse on the page.
    #[wasm_bindgen(js_name = fromForest)]
    pub fn from_forest(
        forest: &[u8],
        card_json: &str,
        visitor_id: String,
        saved: Option<Vec<u8>>,
        page_rules: Option<String>,
        site_tables: Option<String>,
    ) -> Result<LeadScorer, JsValue> {
        let card = crate::model::card::Card::parse(card_json)
            .map_err(|e| js_error(ErrorCode::Model, e))?;
        let bundle =
            Bundle::from_encoded(card, forest).map_err(|e| js_error(ErrorCode::Model, e))?;
        LeadScorer::build(bundle, visitor_id, saved, page_rules, site_tables)
    }

    fn build(
        bundle: Bundle,
        visitor_id: String,
        saved: Option<Vec<u8>>,
        page_rules: Option<String>,
        site_tables: Option<String>,
    ) -> Result<LeadScorer, JsValue> {
        // A panic (a bug: input errors are values) then says where it happened on the console.
        console_error_panic_hook::set_once();
        let tables = match site_tables {
            Some(text) => Some(
                serde_json::from_str::<SiteTables>(&text)
                    .map_err(|e| js_error(ErrorCode::InvalidConfig, format!("site tables: {e}")))?,
            ),
            None => None,
        };
        let site = match page_rules {
            Some(text) => {
                let rules: Vec<PageRule> = serde_json::from_str(&text)
                    .map_err(|e| js_error(ErrorCode::InvalidConfig, e))?;
                let base = tables.unwrap_or_else(|| bundle.card.site.clone());
                Some(base.with_rules_first(rules))
            }
            None => tables,
        };
        let scorer =
            Scorer::new(bundle, site).map_err(|e| js_error(ErrorCode::InvalidConfig, e))?;
        let state = saved
            .and_then(|b| VisitorState::from_bytes(&b, scorer.state_config()).ok())
            .unwrap_or_else(|| scorer.new_state());
        Ok(LeadScorer {
            scorer,
            state,
            visitor_id,
            memo: ShapMemo::default(),
        })
    }

    /// Applies one event (JSON text, the schema of `www/event.schema.json`); `now` is the
    /// receive time in ms, used to clamp a skewed client clock.
    pub fn apply(&mut self, event_json: &str, now: f64) -> Result<String, JsValue> {
        let event = Event::parse(event_json).map_err(|e| js_error(e.code(), e))?;
        let outcome = self.scorer.apply(&mut self.state, &event, Some(now as i64));
        Ok(match outcome {
            Apply::Applied => "applied",
            Apply::Duplicate => "duplicate",
            Apply::Stale => "stale",
        }
        .into())
    }

    /// The current score (the CLI's JSON shape; `all_factors` adds every contribution).
    pub fn score(&mut self, now: f64, all_factors: Option<bool>) -> Result<JsValue, JsValue> {
        let opts = ScoreOptions {
            all_factors: all_factors.unwrap_or(false),
        };
        let s = self
            .scorer
            .score_with_memo(
                &self.state,
                &self.visitor_id,
                now as i64,
                opts,
                &mut self.memo,
            )
            .map_err(|e| js_error(ErrorCode::Model, e))?;
        score_to_js(&s)
    }

    /// The compact state, for first-party storage.
    pub fn save(&self) -> Vec<u8> {
        self.state.to_bytes()
    }

    /// Forgets the visitor's history (e.g. on a consent withdrawal that asks for it).
    pub fn reset(&mut self) {
        self.state = self.scorer.new_state();
    }

    /// Model version of the embedded card.
    #[wasm_bindgen(getter, js_name = modelVersion)]
    pub fn model_version(&self) -> String {
        self.scorer.card().model_version.clone()
    }

    /// Number of model inputs (for [`LeadScorer::probability`]).
    #[wasm_bindgen(getter, js_name = featureCount)]
    pub fn feature_count(&self) -> usize {
        self.scorer.features().len()
    }

    /// The current feature vector.
    pub fn features(&self) -> Vec<f32> {
        self.scorer.feature_vector(&self.state)
    }

    /// Model probability of a raw feature vector (no state, no explanation): the hot path that
    /// benchmarks compare with other runtimes.
    pub fn probability(&self, x: &[f32]) -> Result<f64, JsValue> {
        self.scorer
            .probability(x)
            .map_err(|e| js_error(ErrorCode::InvalidInput, e))
    }

    /// Full score of a raw feature vector (calibration, tier, exact TreeSHAP top factors).
    #[wasm_bindgen(js_name = scoreVector)]
    pub fn score_vector(&self, x: &[f32]) -> Result<JsValue, JsValue> {
        let s = self
            .scorer
            .score_vector(x, ScoreOptions::default())
            .map_err(|e| js_error(ErrorCode::InvalidInput, e))?;
        score_to_js(&s)
    }
}

/// A score as a plain JS object (maps as objects, the CLI's JSON shape).
fn score_to_js(s: &Score) -> Result<JsValue, JsValue> {
    s.serialize(&serde_wasm_bindgen::Serializer::json_compatible())
        .map_err(|e| js_error(ErrorCode::Internal, e))
}
