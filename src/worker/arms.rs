//! Experiment arms: which embedded bundle scores a visitor.
//!
//! The worker embeds every bundle an experiment may name ([`EMBEDDED`]: the default and the
//! retrained candidate). `EXPERIMENT` (`[vars]`, JSON `{"key", "arms": [{"model", "weight"}]}`,
//! [`crate::experiment::Experiment`]) turns the experiment on; each visitor's arm is assigned by
//! GrowthBook's v2 bucketing of its id with the key as seed ([`crate::experiment::Experiment::assign`])
//! on first sight and pinned in its Durable Object with the experiment's key, so changing the
//! weights later moves no one. Visitors first seen before the experiment started stay on the
//! default, without an arm. A pinned arm scores only while its experiment (same key) runs and names
//! it: when the experiment ends, everyone returns to the default. Without `EXPERIMENT`,
//! or with one that does not parse or names a bundle that is not embedded (logged), everyone gets
//! the default and no arm.

use std::cell::{OnceCell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;

use worker::{console_error, Env};

use super::env::var;
use super::http::ApiError;
use super::site::SiteVersion;
use crate::error_code::ErrorCode;
use crate::experiment::Experiment;
use crate::model::card::Card;
use crate::model::{embedded, Bundle};
use crate::score::Scorer;
use crate::site::SiteTables;

/// The bundles the worker embeds: (name, card.json, model.onnx).
pub const EMBEDDED: [(&str, &str, &[u8]); 2] = [
    ("default", embedded::CARD, embedded::ONNX),
    (
        "candidate",
        include_str!("../../models/candidate/card.json"),
        include_bytes!("../../models/candidate/model.onnx"),
    ),
];

/// The experiment's config variable.
pub const EXPERIMENT_VAR: &str = "EXPERIMENT";

/// A built scorer's key: bundle name and site tables version (`None`: the card's).
type ScorerKey = (&'static str, Option<String>);

thread_local! {
    /// The default bundle's scorer with its card's tables: parsed and planned on first use.
    static DEFAULT: OnceCell<Rc<Scorer>> = const { OnceCell::new() };
    /// Other scorers built in this isolate.
    static SCORERS: RefCell<HashMap<ScorerKey, Rc<Scorer>>> = RefCell::new(HashMap::new());
    /// The last `EXPERIMENT` text read and what it parsed to: parsed once per change, not per call.
    static EXPERIMENT: RefCell<Option<(String, Option<Rc<Experiment>>)>> = const { RefCell::new(None) };
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

/// The scorer of an embedded bundle by name (`None` or an unknown name: the default) with the
/// deployment's site tables ([`super::site`]), built on first use in this isolate.
pub async fn scorer_for(env: &Env, name: Option<&str>) -> Result<Rc<Scorer>, ApiError> {
    let site = super::site::current(env).await?;
    let name = name
        .and_then(|n| EMBEDDED.iter().find(|(b, _, _)| *b == n))
        .map_or("default", |(b, _, _)| *b);
    match site {
        Some(site) => cached(name, Some(&site)),
        None => card_scorer(name),
    }
}

/// An embedded bundle's scorer with its card's own site tables (for what the card says).
pub fn card_scorer(name: &'static str) -> Result<Rc<Scorer>, ApiError> {
    if name == "default" {
        default_scorer()
    } else {
        cached(name, None)
    }
}

fn cached(name: &'static str, site: Option<&SiteVersion>) -> Result<Rc<Scorer>, ApiError> {
    let key = (name, site.map(|s| s.version.clone()));
    if let Some(s) = SCORERS.with_borrow(|m| m.get(&key).cloned()) {
        return Ok(s);
    }
    let s = Rc::new(build(name, site.map(|s| &s.tables))?);
    SCORERS.with_borrow_mut(|m| {
        // Scorers of older tables are never asked for again.
        m.retain(|(_, v), _| *v == key.1 || v.is_none());
        m.insert(key, s.clone())
    });
    Ok(s)
}

/// Whether every embedded bundle can score with these site tables (`PUT /v1/site`).
pub fn accept_site(tables: &SiteTables) -> Result<(), ApiError> {
    for (name, _, _) in EMBEDDED {
        build(name, Some(tables)).map_err(|e| {
            ApiError::new(
                400,
                ErrorCode::InvalidConfig,
                format!("bundle {name} refuses these tables: {}", e.message),
            )
        })?;
    }
    Ok(())
}

/// Builds an embedded bundle's scorer, with other site tables when given.
pub fn build(name: &str, site: Option<&SiteTables>) -> Result<Scorer, ApiError> {
    let Some((_, card, onnx)) = EMBEDDED.iter().find(|(b, _, _)| *b == name) else {
        return Err(ApiError::new(
            500,
            ErrorCode::Model,
            format!("no embedded bundle {name}"),
        ));
    };
    Card::parse(card)
        .and_then(|c| Bundle::from_parts(c, onnx))
        .and_then(|b| Scorer::new(b, site.cloned()))
        .map_err(|e| ApiError::new(500, ErrorCode::Model, format!("bundle {name}: {e}")))
}

/// The configured experiment, when it is valid and names only embedded bundles; parsed again
/// only when the variable's text changes.
pub fn experiment(env: &Env) -> Option<Rc<Experiment>> {
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
/// bundle that is not embedded (logged once: everyone gets the default).
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
    if let Some(a) = exp
        .arms
        .iter()
        .find(|a| !EMBEDDED.iter().any(|(n, _, _)| *n == a.model))
    {
        console_error!(
            "{EXPERIMENT_VAR}: arm {:?} is not an embedded bundle; everyone gets the default",
            a.model
        );
        return None;
    }
    Some(exp)
}

/// The pin a new visitor gets where an experiment runs: (experiment key, arm).
pub fn assign(env: &Env, visitor_id: &str) -> Option<(String, String)> {
    let exp = experiment(env)?;
    let arm = exp.assign(visitor_id).and_then(|i| exp.arms.get(i))?;
    Some((exp.key.clone(), arm.model.clone()))
}

/// The arm that scores a pinned visitor: its arm while the experiment that pinned it runs and still
/// names it; otherwise the default (`None`). The page asks `GET /v1/config`, which answers this.
pub fn scoring(env: &Env, key: Option<&str>, arm: Option<&str>) -> Option<String> {
    let (key, arm) = (key?, arm?);
    let exp = experiment(env)?;
    (exp.key == key && exp.arms.iter().any(|a| a.model == arm)).then(|| arm.to_string())
}
