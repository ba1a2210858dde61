//! The model registry's rules: what an uploaded bundle is and when it is accepted, and which
//! version is active, with the experiment and every change's history — data, not deploy config.
//! No I/O: the worker keeps uploads and this state in R2 (`worker/registry.rs`).
//!
//! **An upload** (`PUT /v1/models/{name}`) is one JSON document holding a bundle's three files:
//! `{"card": <card.json>, "model": "<model.onnx, base64>", "golden": <golden.json>}`. It is
//! accepted only whole: the card names `{name}`, the model decodes, the bundle passes the check
//! every bundle passes ([`crate::bundle_check`]: card, model, baseline, golden vectors replayed
//! within tolerance) and scores with the deployment's site tables. Versions are immutable: the
//! card's `model_version` is the key, and a second upload of a version must be the same bytes.
//!
//! **What an isolate loads** is not the upload but its serving form ([`serving_form`]), made when
//! the upload is accepted: the card's text and the model's trees as an encoded forest
//! ([`crate::model::forest::EncodedForest`], derived from the checked ONNX file), without the
//! golden vectors, the base64 and the ONNX parsing that an isolate's first score does not need (in
//! wasm, code that runs once is compiled on its first call: they were most of a cold load).
//!
//! **The state**: the active version (`None`: the embedded default), the stack of versions it
//! replaced (a rollback pops it), the running experiment (arms by version), the drift baselines
//! adopted in place of a version's own (a new normal accepted: [`State::adopt_baseline`]) and a
//! bounded history of changes, each with its time and caller.

use std::collections::BTreeMap;

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::bundle_check::{check, CheckError, Report};
use crate::experiment::{Experiment, ExperimentError};
use crate::model::card::Card;
use crate::model::plan::Plan;
use crate::model::Bundle;
use crate::score::Scorer;
use crate::site::SiteTables;

/// Largest upload accepted (bytes of the JSON document).
pub const MAX_UPLOAD_BYTES: usize = 8 * 1024 * 1024;
/// Changes the history keeps (the oldest leave first).
pub const MAX_HISTORY: usize = 200;
/// Versions a rollback can go back through.
pub const MAX_ROLLBACK: usize = 50;
/// The embedded bundle's name: what scores while nothing is active, and a valid arm.
pub const EMBEDDED_DEFAULT: &str = "default";

/// An uploaded bundle, as sent.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Upload<'a> {
    /// card.json.
    #[serde(borrow)]
    pub card: &'a RawValue,
    /// model.onnx, base64 (standard alphabet, padded).
    pub model: String,
    /// golden.json.
    #[serde(borrow)]
    pub golden: &'a RawValue,
}

/// Why an upload is refused; each names what is wrong ([`UploadError::status`] for HTTP).
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    /// Over [`MAX_UPLOAD_BYTES`].
    #[error("the upload is {0} bytes, at most {MAX_UPLOAD_BYTES}")]
    TooLarge(usize),
    /// Not `{card, model, golden}`.
    #[error("not a bundle upload ({{\"card\", \"model\", \"golden\"}}): {0}")]
    Json(#[from] serde_json::Error),
    /// `model` is not base64.
    #[error("model: not base64 ({0})")]
    Base64(#[from] base64::DecodeError),
    /// The card is for another name.
    #[error("the card's name is {card:?}, the URL's {url:?}")]
    Name {
        /// The card's.
        card: String,
        /// The URL's.
        url: String,
    },
    /// The bundle does not load or check.
    #[error("{0}")]
    Check(String),
    /// It loads but cannot score with this deployment's site tables.
    #[error("the bundle refuses the deployment's site tables: {0}")]
    Site(String),
}

impl UploadError {
    /// The HTTP status: 413 for size, 400 for a malformed document, 422 for a bundle that reads
    /// but fails its check.
    pub fn status(&self) -> u16 {
        match self {
            UploadError::TooLarge(_) => 413,
            UploadError::Json(_) | UploadError::Base64(_) | UploadError::Name { .. } => 400,
            UploadError::Check(_) | UploadError::Site(_) => 422,
        }
    }
}

impl From<CheckError> for UploadError {
    fn from(e: CheckError) -> Self {
        UploadError::Check(e.to_string())
    }
}

/// An accepted upload, ready to store.
#[derive(Debug)]
pub struct Accepted {
    /// The card's `model_version`: the registry key.
    pub version: String,
    /// The card's name.
    pub name: String,
    /// Features and trees, for the answer.
    pub features: usize,
    /// Trees.
    pub trees: usize,
    /// Largest |Δp| of the golden replay (against the training library).
    pub golden_max_dp: f64,
    /// Golden rows replayed.
    pub golden_rows: usize,
    /// What isolates load ([`serving_form`]).
    pub served: Vec<u8>,
}

/// Checks an upload completely (see the module docs); `site`: the deployment's tables, if it has
/// its own.
pub fn accept(name: &str, body: &[u8], site: Option<&SiteTables>) -> Result<Accepted, UploadError> {
    if body.len() > MAX_UPLOAD_BYTES {
        return Err(UploadError::TooLarge(body.len()));
    }
    let up: Upload<'_> = serde_json::from_slice(body)?;
    let onnx = base64::engine::general_purpose::STANDARD.decode(up.model.trim())?;
    let card_text = up.card.get();
    let card = Card::parse(card_text).map_err(|e| UploadError::Check(e.to_string()))?;
    if card.name != name {
        return Err(UploadError::Name {
            card: card.name,
            url: name.to_string(),
        });
    }
    // The model is parsed once: the check runs the bundle, the serving form keeps its trees, and
    // the deployment's tables are tried on the trees as isolates will load them.
    let bundle = Bundle::from_parts(card.clone(), &onnx).map_err(CheckError::from)?;
    let forest = bundle.plan.encode(&onnx).map_err(CheckError::from)?;
    let report = check(bundle, Some(up.golden.get().as_bytes()))?;
    if let Some(why) = report.failure() {
        return Err(UploadError::Check(why));
    }
    if let Some(tables) = site {
        Bundle::from_encoded(card.clone(), &forest)
            .and_then(|b| Scorer::new(b, Some(tables.clone())))
            .map_err(|e| UploadError::Site(e.to_string()))?;
    }
    Ok(Accepted {
        version: card.model_version,
        name: card.name,
        features: report.features,
        trees: report.trees,
        golden_max_dp: replayed(&report).0,
        golden_rows: replayed(&report).1,
        served: serving_form(card_text, &forest),
    })
}

fn replayed(r: &Report) -> (f64, usize) {
    match &r.golden {
        crate::bundle_check::GoldenCheck::Replayed(g) => (g.worst_lgb, g.rows),
        _ => (f64::NAN, 0),
    }
}

/// The serving form of a stored upload (one stored before serving forms were; it was accepted).
pub fn served_from_upload(body: &[u8]) -> Result<Vec<u8>, UploadError> {
    let up: Upload<'_> = serde_json::from_slice(body)?;
    let onnx = base64::engine::general_purpose::STANDARD.decode(up.model.trim())?;
    let forest = Plan::encoded(&onnx).map_err(|e| UploadError::Check(e.to_string()))?;
    Ok(serving_form(up.card.get(), &forest))
}

/// The first bytes of a serving form.
const SERVING_MAGIC: &[u8; 8] = b"LSSERVE1";

/// A version as isolates load it: `LSSERVE1`, the card's length in bytes (u32, little-endian),
/// the card's text, the encoded forest ([`Bundle::from_encoded`] reads the two).
pub fn serving_form(card_text: &str, forest: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(12 + card_text.len() + forest.len());
    out.extend_from_slice(SERVING_MAGIC);
    out.extend_from_slice(&(card_text.len() as u32).to_le_bytes());
    out.extend_from_slice(card_text.as_bytes());
    out.extend_from_slice(forest);
    out
}

/// The card and encoded forest of a serving form.
pub fn served_parts(bytes: &[u8]) -> Result<(Card, &[u8]), UploadError> {
    let (card, forest) = served_split(bytes)?;
    let card = Card::parse(card).map_err(|e| UploadError::Check(e.to_string()))?;
    Ok((card, forest))
}

/// The bundle a serving form holds (what an isolate scores a registry version with).
pub fn served_bundle(bytes: &[u8]) -> Result<Bundle, UploadError> {
    let (card, forest) = served_parts(bytes)?;
    Bundle::from_encoded(card, forest).map_err(|e| UploadError::Check(e.to_string()))
}

/// The card's text and the encoded forest of a serving form, unparsed (what the page is sent).
pub fn served_split(bytes: &[u8]) -> Result<(&str, &[u8]), UploadError> {
    let bad = || UploadError::Check("not a serving form".into());
    let rest = bytes.strip_prefix(SERVING_MAGIC).ok_or_else(bad)?;
    let (len, rest) = rest.split_first_chunk::<4>().ok_or_else(bad)?;
    let len = u32::from_le_bytes(*len) as usize;
    let card = rest.get(..len).ok_or_else(bad)?;
    let forest = rest.get(len..).ok_or_else(bad)?;
    let card = std::str::from_utf8(card).map_err(|_| bad())?;
    Ok((card, forest))
}

/// What a change did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// A version became active.
    Activate,
    /// The previous active version came back.
    Rollback,
    /// An experiment started (or its arms changed).
    Experiment,
    /// The experiment ended.
    EndExperiment,
    /// A window of live traffic became a version's drift baseline.
    AdoptBaseline,
    /// A version went back to its card's own baseline.
    ResetBaseline,
}

/// A window of live decisions adopted as a version's drift baseline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AdoptedBaseline {
    /// The model version it watches.
    pub model: String,
    /// Where the baseline is stored (the data bucket).
    pub key: String,
    /// The window's start (ms).
    pub from: i64,
    /// Its end, exclusive (ms).
    pub to: i64,
    /// Decisions it was taken from.
    pub decisions: u64,
}

/// One change of the registry's state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Change {
    /// When (ms).
    pub at: i64,
    /// Who (the caller's `X-Leadscore-Actor`, else the credential that was used).
    pub by: String,
    /// What.
    pub action: Action,
    /// The active version after it (`None`: the embedded default).
    pub active: Option<String>,
    /// The active version before it.
    pub previous: Option<String>,
    /// The experiment after it, for experiment changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub experiment: Option<Experiment>,
    /// The adopted baseline, for baseline changes (a reset names the model and no key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline: Option<AdoptedBaseline>,
    /// Why, when the caller said (a promotion's verdict, a rollback's alert).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Why a change is refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ChangeError {
    /// Nothing to roll back to.
    #[error("no earlier active version to roll back to")]
    NothingToRollBack,
    /// The experiment is not valid.
    #[error(transparent)]
    Experiment(#[from] ExperimentError),
    /// An arm names a version the registry does not hold.
    #[error("arm {0:?} is neither an embedded bundle nor a registered version")]
    UnknownArm(String),
    /// An arm appears twice.
    #[error("arm {0:?} appears twice")]
    DuplicateArm(String),
}

/// The registry's state.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct State {
    /// The active version (`None`: the embedded default).
    pub active: Option<String>,
    /// The versions the active one replaced, the latest last (`None`: the embedded default).
    #[serde(default)]
    pub replaced: Vec<Option<String>>,
    /// The running experiment: arms by version (or embedded name).
    #[serde(default)]
    pub experiment: Option<Experiment>,
    /// Adopted drift baselines by model version (a version not here is watched against its
    /// card's own baseline, so a promoted model brings its own).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub baselines: BTreeMap<String, AdoptedBaseline>,
    /// Changes, the latest last (at most [`MAX_HISTORY`]).
    #[serde(default)]
    pub history: Vec<Change>,
}

impl State {
    fn record(&mut self, c: Change) {
        self.history.push(c);
        if self.history.len() > MAX_HISTORY {
            let extra = self.history.len() - MAX_HISTORY;
            self.history.drain(..extra);
        }
    }

    /// The bundle that scores a visitor without an arm: the active version or the default.
    pub fn active_or_default(&self) -> &str {
        self.active.as_deref().unwrap_or(EMBEDDED_DEFAULT)
    }

    /// Makes `version` active (the embedded default's name clears it); the one it replaces can
    /// come back with [`State::rollback`]. Activating the active version changes nothing.
    pub fn activate(&mut self, version: &str, at: i64, by: &str, reason: Option<String>) -> bool {
        let next = (version != EMBEDDED_DEFAULT).then(|| version.to_string());
        if next == self.active {
            return false;
        }
        let previous = std::mem::replace(&mut self.active, next);
        self.replaced.push(previous.clone());
        if self.replaced.len() > MAX_ROLLBACK {
            self.replaced.remove(0);
        }
        self.record(Change {
            at,
            by: by.to_string(),
            action: Action::Activate,
            active: self.active.clone(),
            previous,
            experiment: None,
            baseline: None,
            reason,
        });
        true
    }

    /// Brings back the version the active one replaced.
    pub fn rollback(
        &mut self,
        at: i64,
        by: &str,
        reason: Option<String>,
    ) -> Result<(), ChangeError> {
        let back = self.replaced.pop().ok_or(ChangeError::NothingToRollBack)?;
        let previous = std::mem::replace(&mut self.active, back);
        self.record(Change {
            at,
            by: by.to_string(),
            action: Action::Rollback,
            active: self.active.clone(),
            previous,
            experiment: None,
            baseline: None,
            reason,
        });
        Ok(())
    }

    /// Starts (or changes) the experiment; `known(arm)`: whether the registry holds it.
    pub fn set_experiment(
        &mut self,
        exp: Experiment,
        known: impl Fn(&str) -> bool,
        at: i64,
        by: &str,
    ) -> Result<(), ChangeError> {
        exp.validate()?;
        for (i, a) in exp.arms.iter().enumerate() {
            if exp.arms[..i].iter().any(|b| b.model == a.model) {
                return Err(ChangeError::DuplicateArm(a.model.clone()));
            }
            if !known(&a.model) {
                return Err(ChangeError::UnknownArm(a.model.clone()));
            }
        }
        self.experiment = Some(exp.clone());
        self.record(Change {
            at,
            by: by.to_string(),
            action: Action::Experiment,
            active: self.active.clone(),
            previous: self.active.clone(),
            experiment: Some(exp),
            baseline: None,
            reason: None,
        });
        Ok(())
    }

    /// Makes a window of live traffic `model`'s drift baseline (alerts already sent stay sent).
    pub fn adopt_baseline(
        &mut self,
        adopted: AdoptedBaseline,
        at: i64,
        by: &str,
        reason: Option<String>,
    ) {
        self.baselines
            .insert(adopted.model.clone(), adopted.clone());
        self.record(Change {
            at,
            by: by.to_string(),
            action: Action::AdoptBaseline,
            active: self.active.clone(),
            previous: self.active.clone(),
            experiment: None,
            baseline: Some(adopted),
            reason,
        });
    }

    /// Sends `model` back to its card's own baseline; false when none was adopted.
    pub fn reset_baseline(
        &mut self,
        model: &str,
        at: i64,
        by: &str,
        reason: Option<String>,
    ) -> bool {
        let Some(gone) = self.baselines.remove(model) else {
            return false;
        };
        self.record(Change {
            at,
            by: by.to_string(),
            action: Action::ResetBaseline,
            active: self.active.clone(),
            previous: self.active.clone(),
            experiment: None,
            baseline: Some(gone),
            reason,
        });
        true
    }

    /// Ends the experiment (everyone returns to the active version); false when none ran.
    pub fn end_experiment(&mut self, at: i64, by: &str, reason: Option<String>) -> bool {
        if self.experiment.take().is_none() {
            return false;
        }
        self.record(Change {
            at,
            by: by.to_string(),
            action: Action::EndExperiment,
            active: self.active.clone(),
            previous: self.active.clone(),
            experiment: None,
            baseline: None,
            reason,
        });
        true
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test
    use super::*;
    use crate::experiment::Arm;

    const CARD: &str = include_str!("../models/candidate/card.json");
    const ONNX: &[u8] = include_bytes!("../models/candidate/model.onnx");
    const GOLDEN: &str = include_str!("../models/candidate/golden.json");

    fn upload(card: &str, onnx: &[u8], golden: &str) -> Vec<u8> {
        let model = base64::engine::general_purpose::STANDARD.encode(onnx);
        format!(r#"{{"card":{card},"model":"{model}","golden":{golden}}}"#).into_bytes()
    }

    #[test]
    fn a_whole_bundle_is_accepted_and_every_bad_part_refused() {
        let ok = accept("candidate", &upload(CARD, ONNX, GOLDEN), None).unwrap();
        assert!(ok.version.starts_with("candidate-"));
        // What isolates load is the same card and the model's trees, which score the same.
        let (card, forest) = served_parts(&ok.served).unwrap();
        assert_eq!(card, Card::parse(CARD).unwrap());
        let served = Bundle::from_encoded(card.clone(), forest).unwrap();
        let direct = Bundle::from_parts(card, ONNX).unwrap();
        assert_eq!(served.plan.forest(), direct.plan.forest());
        for cut in [0, 8, 11, 12 + 10] {
            assert!(served_parts(&ok.served[..cut]).is_err(), "cut at {cut}");
        }
        assert!(ok.golden_rows > 0 && ok.golden_max_dp < 1e-5);
        let err = |name: &str, body: Vec<u8>| accept(name, &body, None).unwrap_err();
        // The URL names another bundle.
        assert_eq!(err("default", upload(CARD, ONNX, GOLDEN)).status(), 400);
        // A truncated model, a card whose sha256 does not match, golden vectors that disagree.
        let e = err("candidate", upload(CARD, &ONNX[..ONNX.len() / 2], GOLDEN));
        assert_eq!(e.status(), 422, "{e}");
        let other_sha = CARD.replacen("\"sha256\": \"", "\"sha256\": \"00", 1);
        assert_eq!(
            err("candidate", upload(&other_sha, ONNX, GOLDEN)).status(),
            422
        );
        let bad_golden = GOLDEN.replacen("\"lgb_prob\":", "\"lgb_prob\":0.5,\"x_\":", 1);
        let e = accept("candidate", &upload(CARD, ONNX, &bad_golden), None).unwrap_err();
        assert_eq!(e.status(), 422, "{e}");
        // An unknown feature kind.
        let kind = CARD.replacen("\"kind\": \"page_views\"", "\"kind\": \"telepathy\"", 1);
        let e = err("candidate", upload(&kind, ONNX, GOLDEN));
        assert!(e.to_string().contains("telepathy"), "{e}");
        // Not base64, not the document, too large.
        let body = format!(r#"{{"card":{CARD},"model":"%%%","golden":{GOLDEN}}}"#);
        assert_eq!(err("candidate", body.into_bytes()).status(), 400);
        assert_eq!(err("candidate", b"{\"card\":1}".to_vec()).status(), 400);
        assert_eq!(
            err("candidate", vec![b' '; MAX_UPLOAD_BYTES + 1]).status(),
            413
        );
        // Site tables the bundle cannot score with.
        let mut tables: SiteTables = Card::parse(CARD).unwrap().site;
        tables.page_rules.clear();
        let e = accept("candidate", &upload(CARD, ONNX, GOLDEN), Some(&tables)).unwrap_err();
        assert_eq!(e.status(), 422, "{e}");
        // An upload stored before serving forms were gives the same serving form.
        let served = served_from_upload(&upload(CARD, ONNX, GOLDEN)).unwrap();
        assert_eq!(served, ok.served);
        // `model.sha256` is optional in a card: a bundle accepted without it loads from its
        // serving form too (the forest was derived from the model it was accepted with).
        let mut no_sha: serde_json::Value = serde_json::from_str(CARD).unwrap();
        no_sha["model"].as_object_mut().unwrap().remove("sha256");
        let no_sha = no_sha.to_string();
        let ok = accept("candidate", &upload(&no_sha, ONNX, GOLDEN), None).unwrap();
        let (card, forest) = served_parts(&ok.served).unwrap();
        assert!(card.onnx_file.sha256.is_none());
        Bundle::from_encoded(card, forest).unwrap();
    }

    #[test]
    fn activation_rollback_and_experiments_are_recorded() {
        let mut s = State::default();
        assert_eq!(s.active_or_default(), "default");
        assert_eq!(
            s.rollback(1, "ops", None),
            Err(ChangeError::NothingToRollBack)
        );
        assert!(s.activate("v1", 10, "ops", None));
        assert!(
            !s.activate("v1", 11, "ops", None),
            "activating the active version is nothing"
        );
        assert!(s.activate("v2", 20, "retrain", Some("promoted".into())));
        assert_eq!(s.active_or_default(), "v2");
        s.rollback(30, "ops", Some("performance degraded".into()))
            .unwrap();
        assert_eq!(s.active.as_deref(), Some("v1"));
        s.rollback(40, "ops", None).unwrap();
        assert_eq!(s.active, None);
        assert!(s.rollback(50, "ops", None).is_err());
        let h: Vec<(i64, Action, Option<&str>)> = s
            .history
            .iter()
            .map(|c| (c.at, c.action.clone(), c.active.as_deref()))
            .collect();
        assert_eq!(
            h,
            [
                (10, Action::Activate, Some("v1")),
                (20, Action::Activate, Some("v2")),
                (30, Action::Rollback, Some("v1")),
                (40, Action::Rollback, None)
            ]
        );
        let exp = |arms: &[(&str, f64)]| Experiment {
            key: "e1".into(),
            arms: arms
                .iter()
                .map(|(m, w)| Arm {
                    model: m.to_string(),
                    weight: *w,
                })
                .collect(),
        };
        let known = |v: &str| v == "default" || v == "v2";
        assert_eq!(
            s.set_experiment(exp(&[("default", 1.0), ("v9", 1.0)]), known, 60, "ops"),
            Err(ChangeError::UnknownArm("v9".into()))
        );
        assert!(matches!(
            s.set_experiment(exp(&[("v2", 1.0), ("v2", 1.0)]), known, 60, "ops"),
            Err(ChangeError::DuplicateArm(_))
        ));
        s.set_experiment(exp(&[("default", 0.8), ("v2", 0.2)]), known, 60, "ops")
            .unwrap();
        assert!(s.end_experiment(70, "gate", Some("rejected".into())));
        assert!(!s.end_experiment(71, "gate", None));
        for i in 0..MAX_HISTORY as i64 {
            s.activate(if i % 2 == 0 { "a" } else { "b" }, 100 + i, "x", None);
        }
        assert_eq!(s.history.len(), MAX_HISTORY);
        assert!(s.replaced.len() <= MAX_ROLLBACK);
    }

    #[test]
    fn an_adopted_baseline_is_recorded_and_can_be_reset() {
        let mut s = State::default();
        let adopted = AdoptedBaseline {
            model: "v1".into(),
            key: "baselines/v1/10.json".into(),
            from: 0,
            to: 7,
            decisions: 1500,
        };
        s.adopt_baseline(adopted.clone(), 10, "ops", Some("December".into()));
        assert_eq!(s.baselines.get("v1"), Some(&adopted));
        let text = serde_json::to_string(&s).unwrap();
        assert_eq!(serde_json::from_str::<State>(&text).unwrap(), s);
        assert!(!s.reset_baseline("v2", 11, "ops", None));
        assert!(s.reset_baseline("v1", 12, "ops", None));
        assert!(s.baselines.is_empty());
        let h: Vec<(Action, Option<&str>)> = s
            .history
            .iter()
            .map(|c| {
                (
                    c.action.clone(),
                    c.baseline.as_ref().map(|b| b.model.as_str()),
                )
            })
            .collect();
        assert_eq!(
            h,
            [
                (Action::AdoptBaseline, Some("v1")),
                (Action::ResetBaseline, Some("v1"))
            ]
        );
        // A state stored before baselines reads as none adopted.
        let old: State = serde_json::from_str(r#"{"active":"v1","history":[]}"#).unwrap();
        assert!(old.baselines.is_empty());
    }
}
