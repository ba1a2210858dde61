//! Which bundle scores a visitor: the registry's active version, or an experiment arm.
//!
//! Bundles are the embedded ones ([`EMBEDDED`]: the default, the fallback whenever the registry
//! has nothing or cannot be read, and the retrained candidate) and the versions uploaded to the
//! registry ([`super::registry`]), each loaded by an isolate on first use and kept. What scores
//! is data ([`Deployment`], from the registry's state): the active version scores everyone
//! without an arm; an experiment (`PUT /v1/experiment`, arms by version; without one, the
//! `EXPERIMENT` variable's arms of embedded bundles) splits new visitors by GrowthBook's v2
//! bucketing of their id with the key as seed ([`crate::experiment::Experiment::assign`]), pinned
//! in their Durable Object with the experiment's key on first sight, so changing the weights later
//! moves no one. Visitors first seen before the experiment started stay on the active version,
//! without an arm. A pinned arm scores only while its experiment (same key) runs and names it.

use std::cell::{OnceCell, RefCell};
use std::rc::Rc;

use worker::{console_error, Env};

use super::env::var;
use super::http::ApiError;
use super::registry::{self, StateVersion};
use super::site::SiteVersion;
use crate::error_code::ErrorCode;
use crate::experiment::Experiment;
use crate::model::card::Card;
use crate::model::{embedded, Bundle};
use crate::registry::EMBEDDED_DEFAULT;
use crate::score::{ScoreOptions, Scorer};
use crate::site::SiteTables;

/// The bundles the worker embeds: (name, card.json, model.onnx, forest.bin). A load reads the
/// forest; the model file is what `GET /v1/models/{name}` serves.
pub const EMBEDDED: [(&str, &str, &[u8], &[u8]); 2] = [
    (
        EMBEDDED_DEFAULT,
        embedded::CARD,
        embedded::ONNX,
        embedded::FOREST,
    ),
    (
        "candidate",
        include_str!("../../models/candidate/card.json"),
        include_bytes!("../../models/candidate/model.onnx"),
        include_bytes!("../../models/candidate/forest.bin"),
    ),
];

/// The experiment's config variable (arms of embedded bundles; the registry's experiment wins).
pub const EXPERIMENT_VAR: &str = "EXPERIMENT";

/// Most registry versions an isolate keeps built at once (the least recently built leave).
const MAX_LOADED: usize = 8;

/// A built scorer's key: bundle (embedded name or version) and site tables version (`None`: the
/// card's).
type ScorerKey = (String, Option<String>);

thread_local! {
    /// The default bundle's scorer with its card's tables: parsed and planned on first use.
    static DEFAULT: OnceCell<Rc<Scorer>> = const { OnceCell::new() };
    /// Other scorers built in this isolate, oldest first.
    static SCORERS: RefCell<Vec<(ScorerKey, Rc<Scorer>)>> = const { RefCell::new(Vec::new()) };
    /// The last `EXPERIMENT` text read and what it parsed to: parsed once per change, not per call.
    static EXPERIMENT: RefCell<Option<(String, Option<Rc<Experiment>>)>> = const { RefCell::new(None) };
}

/// What scores whom right now.
#[derive(Debug, Clone)]
pub struct Deployment {
    /// The registry's state (active version, experiment, history).
    pub registry: Rc<StateVersion>,
    /// The running experiment: the registry's, else the `EXPERIMENT` variable's.
    pub experiment: Option<Rc<Experiment>>,
}

impl Deployment {
    /// The bundle that scores visitors without an arm.
    pub fn active(&self) -> &str {
        self.registry.state.active_or_default()
    }

    /// The pin a new visitor gets where an experiment runs: (experiment key, arm).
    pub fn assign(&self, visitor_id: &str) -> Option<(String, String)> {
        let exp = self.experiment.as_ref()?;
        let arm = exp.assign(visitor_id).and_then(|i| exp.arms.get(i))?;
        Some((exp.key.clone(), arm.model.clone()))
    }

    /// The arm that scores a pinned visitor: its arm while the experiment that pinned it runs
    /// and still names it; otherwise none (the active version). The page asks `GET /v1/config`,
    /// which answers this.
    pub fn scoring(&self, key: Option<&str>, arm: Option<&str>) -> Option<String> {
        let (key, arm) = (key?, arm?);
        let exp = self.experiment.as_ref()?;
        (exp.key == key && exp.arms.iter().any(|a| a.model == arm)).then(|| arm.to_string())
    }

    /// The bundle that scores a visitor with this arm (none: the active version).
    pub fn bundle_for<'a>(&'a self, arm: Option<&'a str>) -> &'a str {
        arm.unwrap_or_else(|| self.active())
    }
}

/// The deployment now: the registry's state as this isolate knows it (at most a minute old).
/// When R2 cannot be read, the embedded default scores and the variable's experiment runs.
pub async fn deployment(env: &Env) -> Deployment {
    let registry = match registry::state(env).await {
        Ok(s) => s,
        Err(e) => {
            console_error!(
                "registry unavailable ({}); the embedded default scores",
                e.message
            );
            Rc::new(StateVersion::default())
        }
    };
    let experiment = match &registry.state.experiment {
        Some(e) => Some(Rc::new(e.clone())),
        None => experiment_var(env),
    };
    Deployment {
        registry,
        experiment,
    }
}

/// The isolate's default scorer (the embedded default bundle, its card's own site tables).
pub fn default_scorer() -> Result<Rc<Scorer>, ApiError> {
    DEFAULT.with(|cell| {
        if let Some(s) = cell.get() {
            return Ok(s.clone());
        }
        let s = Bundle::embedded()
            .and_then(|b| Scorer::new(b, None))
            .map(Rc::new)
            .map_err(|e| ApiError::new(500, ErrorCode::Model, e.to_string()))?;
        let _ = cell.set(s.clone());
        Ok(s)
    })
}

/// Builds the isolate's default scorer and scores an empty visitor once, at isolate start (before
/// any request). Why: wasm functions compile on their first call, and that compilation was about
/// two thirds of a cold isolate's first score with a version read from R2; the code that loads
/// and scores a bundle is the same for every bundle, so after this a version read later runs code
/// already compiled. The scorer built is the one [`default_scorer`] keeps (the fallback).
pub fn warm() {
    let scored = default_scorer().and_then(|s| {
        s.score(&s.new_state(), "warm-up", 0, ScoreOptions::default())
            .map_err(|e| ApiError::new(500, ErrorCode::Model, e.to_string()))
    });
    if let Err(e) = scored {
        console_error!("warm-up: {}", e.message);
    }
}

/// Whether `name` is an embedded bundle.
pub fn is_embedded(name: &str) -> bool {
    EMBEDDED.iter().any(|(n, ..)| *n == name)
}

/// The scorer of a bundle (an embedded name or a registry version; `None`: the active version)
/// with the deployment's site tables ([`super::site`]), built on first use in this isolate. A
/// version that cannot be loaded scores with the embedded default (logged): a visitor is never
/// left unscored by the registry.
pub async fn scorer_for(
    env: &Env,
    dep: &Deployment,
    arm: Option<&str>,
) -> Result<Rc<Scorer>, ApiError> {
    let site = super::site::current(env).await?;
    let name = dep.bundle_for(arm);
    if is_embedded(name) {
        return match &site {
            Some(site) => cached(name, Some(site), || build(name, Some(&site.tables))),
            None if name == EMBEDDED_DEFAULT => default_scorer(),
            None => cached(name, None, || build(name, None)),
        };
    }
    match version_scorer(env, name, site.as_deref()).await {
        Ok(s) => Ok(s),
        Err(e) => {
            console_error!("model {name}: {}; the embedded default scores", e.message);
            match &site {
                Some(site) => cached(EMBEDDED_DEFAULT, Some(site), || {
                    build(EMBEDDED_DEFAULT, Some(&site.tables))
                }),
                None => default_scorer(),
            }
        }
    }
}

/// A registry version's scorer, read from R2 on first use (`site`: the deployment's tables;
/// `None`: the card's own).
pub async fn version_scorer(
    env: &Env,
    version: &str,
    site: Option<&SiteVersion>,
) -> Result<Rc<Scorer>, ApiError> {
    let key = (version.to_string(), site.map(|s| s.version.clone()));
    if let Some(s) = lookup(&key) {
        return Ok(s);
    }
    let bytes = registry::served(env, version).await?.ok_or_else(|| {
        ApiError::new(
            404,
            ErrorCode::NotFound,
            format!("no model version {version}"),
        )
    })?;
    cached(version, site, || {
        let failed = |e: String| ApiError::new(500, ErrorCode::Model, format!("{version}: {e}"));
        let bundle = crate::registry::served_bundle(&bytes).map_err(|e| failed(e.to_string()))?;
        Scorer::new(bundle, site.map(|s| s.tables.clone())).map_err(|e| failed(e.to_string()))
    })
}

fn lookup(key: &ScorerKey) -> Option<Rc<Scorer>> {
    SCORERS.with_borrow(|m| m.iter().find(|(k, _)| k == key).map(|(_, s)| s.clone()))
}

/// A bundle's scorer by embedded name or registry version, with its card's own site tables
/// (for what the card says: its features, baseline, version).
pub async fn named_scorer(env: &Env, name: &str) -> Result<Rc<Scorer>, ApiError> {
    if is_embedded(name) {
        card_scorer(name)
    } else {
        version_scorer(env, name, None).await
    }
}

/// An embedded bundle's scorer with its card's own site tables (for what the card says).
pub fn card_scorer(name: &str) -> Result<Rc<Scorer>, ApiError> {
    if name == EMBEDDED_DEFAULT {
        default_scorer()
    } else {
        cached(name, None, || build(name, None))
    }
}

fn cached(
    name: &str,
    site: Option<&SiteVersion>,
    make: impl FnOnce() -> Result<Scorer, ApiError>,
) -> Result<Rc<Scorer>, ApiError> {
    let key = (name.to_string(), site.map(|s| s.version.clone()));
    if let Some(s) = lookup(&key) {
        return Ok(s);
    }
    let s = Rc::new(make()?);
    SCORERS.with_borrow_mut(|m| {
        // Scorers of older tables are never asked for again.
        m.retain(|((_, v), _)| *v == key.1 || v.is_none());
        if m.len() >= MAX_LOADED {
            m.remove(0);
        }
        m.push((key, s.clone()));
    });
    Ok(s)
}

/// Whether every bundle that may score with these site tables can (`PUT /v1/site`): the embedded
/// ones and the registry's versions in use (the active one, the experiment's arms).
pub async fn accept_site(env: &Env, tables: &SiteTables) -> Result<(), ApiError> {
    let refused = |name: &str, e: &str| {
        ApiError::new(
            400,
            ErrorCode::InvalidConfig,
            format!("bundle {name} refuses these tables: {e}"),
        )
    };
    for (name, ..) in EMBEDDED {
        build(name, Some(tables)).map_err(|e| refused(name, &e.message))?;
    }
    // The registry's versions in use score with the tables from the next request on.
    let dep = deployment(env).await;
    let mut in_use = vec![dep.active().to_string()];
    if let Some(e) = &dep.experiment {
        in_use.extend(e.arms.iter().map(|a| a.model.clone()));
    }
    for version in in_use.iter().filter(|v| !is_embedded(v)) {
        let Some(bytes) = registry::served(env, version).await? else {
            continue; // not loadable: the embedded default scores for it, checked above
        };
        let bundle =
            crate::registry::served_bundle(&bytes).map_err(|e| refused(version, &e.to_string()))?;
        Scorer::new(bundle, Some(tables.clone())).map_err(|e| refused(version, &e.to_string()))?;
    }
    Ok(())
}

/// Builds an embedded bundle's scorer, with other site tables when given.
pub fn build(name: &str, site: Option<&SiteTables>) -> Result<Scorer, ApiError> {
    let Some((_, card, _, forest)) = EMBEDDED.iter().find(|(b, ..)| *b == name) else {
        return Err(ApiError::new(
            500,
            ErrorCode::Model,
            format!("no embedded bundle {name}"),
        ));
    };
    Card::parse(card)
        .and_then(|c| Bundle::from_encoded(c, forest))
        .and_then(|b| Scorer::new(b, site.cloned()))
        .map_err(|e| ApiError::new(500, ErrorCode::Model, format!("bundle {name}: {e}")))
}

/// The `EXPERIMENT` variable's experiment, when it is valid and names only embedded bundles;
/// parsed again only when the variable's text changes.
fn experiment_var(env: &Env) -> Option<Rc<Experiment>> {
    let text = var(env, EXPERIMENT_VAR).unwrap_or_default();
    if let Some(known) = EXPERIMENT.with_borrow(|c| {
        c.as_ref()
            .filter(|(t, _)| *t == text)
            .map(|(_, e)| e.clone())
    }) {
        return known;
    }
    let parsed = parse_experiment(&text).map(Rc::new);
    EXPERIMENT.set(Some((text, parsed.clone())));
    parsed
}

/// An `EXPERIMENT` value: `None` when unset, or when it does not parse, is invalid or names a
/// bundle that is not embedded (logged once: everyone gets the active version).
fn parse_experiment(text: &str) -> Option<Experiment> {
    if text.trim().is_empty() {
        return None;
    }
    let exp: Experiment = match serde_json::from_str(text) {
        Ok(e) => e,
        Err(e) => {
            console_error!("{EXPERIMENT_VAR}: not an experiment ({e}); everyone gets the default");
            return None;
        }
    };
    if let Err(e) = exp.validate() {
        console_error!("{EXPERIMENT_VAR}: {e}; everyone gets the default");
        return None;
    }
    if let Some(a) = exp.arms.iter().find(|a| !is_embedded(&a.model)) {
        console_error!(
            "{EXPERIMENT_VAR}: arm {:?} is not an embedded bundle; everyone gets the default",
            a.model
        );
        return None;
    }
    Some(exp)
}
