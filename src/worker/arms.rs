//! Experiment arms: which embedded bundle scores a visitor.
//!
//! The worker embeds every bundle an experiment may name ([`EMBEDDED`]: the default and the
//! retrained candidate). `EXPERIMENT` (`[vars]`, JSON `{"key", "arms": [{"model", "weight"}]}`,
//! [`crate::experiment::Experiment`]) turns the experiment on; each visitor's arm is assigned by
//! GrowthBook's v2 bucketing of its id with the key as seed ([`crate::experiment::Experiment::assign`])
//! on first sight and pinned in its Durable Object, so changing the weights later moves no one.
//! Visitors first seen before the experiment started stay on the default, without an arm. A pinned
//! arm whose bundle is no longer embedded scores with the default. Without `EXPERIMENT`,
//! or with one that does not parse or names a bundle that is not embedded (logged), everyone gets
//! the default and no arm.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use worker::{console_error, Env};

use super::{scorer, var, ApiError};
use crate::error_code::ErrorCode;
use crate::experiment::Experiment;
use crate::model::card::Card;
use crate::model::{embedded, Bundle};
use crate::score::Scorer;

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

thread_local! {
    static SCORERS: RefCell<HashMap<&'static str, Rc<Scorer>>> = RefCell::new(HashMap::new());
}

/// The scorer of an embedded bundle by name (`None` or an unknown name: the default), built on
/// first use in this isolate.
pub fn scorer_for(name: Option<&str>) -> Result<Rc<Scorer>, ApiError> {
    let Some((name, card, onnx)) = name.and_then(|n| EMBEDDED.iter().find(|(b, _, _)| *b == n))
    else {
        return scorer();
    };
    if *name == "default" {
        return scorer();
    }
    if let Some(s) = SCORERS.with_borrow(|m| m.get(name).cloned()) {
        return Ok(s);
    }
    let s = Card::parse(card)
        .and_then(|c| Bundle::from_parts(c, onnx))
        .and_then(|b| Scorer::new(b, None))
        .map(Rc::new)
        .map_err(|e| ApiError::new(500, ErrorCode::Model, format!("bundle {name}: {e}")))?;
    SCORERS.with_borrow_mut(|m| m.insert(name, s.clone()));
    Ok(s)
}

/// The configured experiment, when it is valid and names only embedded bundles.
pub fn experiment(env: &Env) -> Option<Experiment> {
    let text = var(env, EXPERIMENT_VAR).filter(|t| !t.trim().is_empty())?;
    let exp: Experiment = match serde_json::from_str(&text) {
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

/// The arm (bundle name) a new visitor is assigned, where an experiment runs.
pub fn assign(env: &Env, visitor_id: &str) -> Option<String> {
    let exp = experiment(env)?;
    exp.assign(visitor_id)
        .and_then(|i| exp.arms.get(i))
        .map(|a| a.model.clone())
}
