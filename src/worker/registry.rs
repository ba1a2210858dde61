//! The model registry's store: uploaded bundles and the registry's state in R2, and this
//! isolate's copy of the state. The rules (what an upload is, activation, rollback, the
//! experiment, history) are the core's [`crate::registry`]; the routes are in
//! [`super::api::models`].
//!
//! Bundles live at `models/<model_version>.json` (the upload as sent; immutable), their serving
//! forms (what an isolate loads: [`crate::registry::serving_form`]) at `served/<model_version>`,
//! adopted drift
//! baselines at `baselines/<model_version>/<at>.json`, the state at [`STATE_KEY`]. Each isolate
//! reads the state on first use and asks R2 whether it changed at most every [`REFRESH_MS`] (a
//! head request, as for the site tables), so a change reaches every isolate within that time; the
//! isolate that made it uses it at once. A change is written only if the state is still the one
//! it was made on (an etag condition), so two concurrent changes never lose one.

use std::cell::RefCell;
use std::rc::Rc;

use serde::Serialize;
use worker::{Conditional, Env};

use super::bindings::DATA;
use super::env::var_num;
use super::http::{now_ms, ApiError, ApiResult};
use crate::error_code::ErrorCode;
use crate::registry::State;

/// Where the registry's state lives in the data bucket.
pub const STATE_KEY: &str = "config/registry.json";
/// Prefix of the stored bundles.
pub const BUNDLES: &str = "models/";
/// How long an isolate trusts its copy of the state before asking R2 whether it changed
/// (`REGISTRY_REFRESH_MS` overrides it: the tests set 0).
pub const REFRESH_MS: i64 = 60_000;
/// Tries of a change that lost a race with another.
const CHANGE_TRIES: usize = 4;

/// Prefix of adopted drift baselines (`baselines/<model_version>/<at>.json`: each adoption kept).
pub const BASELINES: &str = "baselines/";

/// Where a baseline adopted at `at` for `model` is stored.
pub fn baseline_key(model: &str, at: i64) -> String {
    format!("{BASELINES}{model}/{at}.json")
}

/// Stores a text object (an adopted baseline).
pub async fn put_text(env: &Env, key: &str, text: String) -> ApiResult<()> {
    env.bucket(DATA)?.put(key, text).execute().await?;
    Ok(())
}

/// A stored text object.
pub async fn text(env: &Env, key: &str) -> ApiResult<Option<String>> {
    match env.bucket(DATA)?.get(key).execute().await? {
        None => Ok(None),
        Some(obj) => Ok(Some(match obj.body() {
            Some(b) => b.text().await?,
            None => String::new(),
        })),
    }
}

/// Prefix of the serving forms.
pub const SERVED: &str = "served/";

/// The key of a version's serving form.
fn served_key(version: &str) -> String {
    format!("{SERVED}{version}")
}

/// The key of a stored bundle.
pub fn bundle_key(version: &str) -> String {
    format!("{BUNDLES}{version}.json")
}

/// One version of the registry's state.
#[derive(Debug, Default)]
pub struct StateVersion {
    /// The stored object's etag (`None`: nothing stored yet).
    pub etag: Option<String>,
    /// The state.
    pub state: State,
}

struct Cached {
    state: Rc<StateVersion>,
    checked_ms: i64,
}

thread_local! {
    static CACHE: RefCell<Option<Cached>> = const { RefCell::new(None) };
}

fn remember(state: Rc<StateVersion>) {
    CACHE.with_borrow_mut(|c| {
        *c = Some(Cached {
            state,
            checked_ms: now_ms(),
        })
    });
}

async fn read(env: &Env) -> ApiResult<StateVersion> {
    let Some(obj) = env.bucket(DATA)?.get(STATE_KEY).execute().await? else {
        return Ok(StateVersion::default());
    };
    let etag = obj.etag();
    let text = match obj.body() {
        Some(b) => b.text().await?,
        None => String::new(),
    };
    let state: State = serde_json::from_str(&text).map_err(|e| {
        ApiError::new(
            500,
            ErrorCode::InvalidConfig,
            format!("stored registry state {STATE_KEY} does not parse: {e}"),
        )
    })?;
    Ok(StateVersion {
        etag: Some(etag),
        state,
    })
}

/// The registry's state, as this isolate knows it (at most [`REFRESH_MS`] old).
pub async fn state(env: &Env) -> ApiResult<Rc<StateVersion>> {
    let now = now_ms();
    let refresh = var_num(env, "REGISTRY_REFRESH_MS", REFRESH_MS);
    let known = CACHE.with_borrow(|c| c.as_ref().map(|c| (c.state.clone(), c.checked_ms)));
    if let Some((s, at)) = &known {
        if now - at < refresh {
            return Ok(s.clone());
        }
    }
    let head = env.bucket(DATA)?.head(STATE_KEY).await?;
    let fresh = match (head, known) {
        (None, _) => Rc::new(StateVersion::default()),
        (Some(h), Some((s, _))) if s.etag.as_deref() == Some(h.etag().as_str()) => s,
        (Some(_), _) => Rc::new(read(env).await?),
    };
    remember(fresh.clone());
    Ok(fresh)
}

/// Applies `f` to the stored state and writes it back if nobody changed it meanwhile (tried
/// again on the newer state otherwise); answers what `f` answered and the new state. `f` is
/// called on each try, so it must only depend on the state it is given.
pub async fn change<T>(
    env: &Env,
    mut f: impl FnMut(&mut State) -> ApiResult<T>,
) -> ApiResult<(T, Rc<StateVersion>)> {
    let bucket = env.bucket(DATA)?;
    for _ in 0..CHANGE_TRIES {
        let current = read(env).await?;
        let mut state = current.state.clone();
        let out = f(&mut state)?;
        let text = serde_json::to_string(&state).map_err(ApiError::internal)?;
        let put = bucket.put(STATE_KEY, text);
        let put = match &current.etag {
            Some(etag) => put.only_if(Conditional {
                etag_matches: Some(etag.clone()),
                ..Conditional::default()
            }),
            None => put,
        };
        if let Some(obj) = put.execute().await? {
            let fresh = Rc::new(StateVersion {
                etag: Some(obj.etag()),
                state,
            });
            remember(fresh.clone());
            return Ok((out, fresh));
        }
    }
    Err(ApiError::new(
        409,
        ErrorCode::Conflict,
        "the registry changed under this request several times; try again",
    ))
}

/// Stores an accepted upload under its version; `Ok(false)` when the same bytes were stored
/// before (an idempotent repeat), 409 when other bytes were.
pub async fn put_bundle(env: &Env, version: &str, body: Vec<u8>) -> ApiResult<bool> {
    let bucket = env.bucket(DATA)?;
    let key = bundle_key(version);
    if let Some(obj) = bucket.get(&key).execute().await? {
        let stored = match obj.body() {
            Some(b) => b.bytes().await?,
            None => Vec::new(),
        };
        if stored == body {
            return Ok(false);
        }
        return Err(ApiError::new(
            409,
            ErrorCode::Conflict,
            format!("version {version} is stored with other contents: versions are immutable (train again for a new version)"),
        ));
    }
    bucket.put(&key, body).execute().await?;
    Ok(true)
}

/// A stored bundle's bytes.
pub async fn bundle(env: &Env, version: &str) -> ApiResult<Option<Vec<u8>>> {
    match env.bucket(DATA)?.get(bundle_key(version)).execute().await? {
        None => Ok(None),
        Some(obj) => Ok(Some(match obj.body() {
            Some(b) => b.bytes().await?,
            None => Vec::new(),
        })),
    }
}

/// A version's serving form, as an isolate loads it: the stored one, else made from the stored
/// upload (a version stored before serving forms were) and stored for the next isolate.
pub async fn served(env: &Env, version: &str) -> ApiResult<Option<Vec<u8>>> {
    if let Some(obj) = env.bucket(DATA)?.get(served_key(version)).execute().await? {
        if let Some(b) = obj.body() {
            return Ok(Some(b.bytes().await?));
        }
    }
    let Some(upload) = bundle(env, version).await? else {
        return Ok(None);
    };
    let served = crate::registry::served_from_upload(&upload)
        .map_err(|e| ApiError::new(500, ErrorCode::Model, format!("{version}: {e}")))?;
    put_served(env, version, served.clone()).await?;
    Ok(Some(served))
}

/// Stores a version's serving form (the same bytes for the same version: a repeat is harmless).
pub async fn put_served(env: &Env, version: &str, served: Vec<u8>) -> ApiResult<()> {
    env.bucket(DATA)?
        .put(served_key(version), served)
        .execute()
        .await?;
    Ok(())
}

/// Whether a version is stored.
pub async fn stored(env: &Env, version: &str) -> ApiResult<bool> {
    Ok(env.bucket(DATA)?.head(bundle_key(version)).await?.is_some())
}

/// One stored version, as `GET /v1/models` lists it.
#[derive(Debug, Serialize)]
pub struct Listed {
    /// The model version.
    pub version: String,
    /// Upload size in bytes.
    pub bytes: u64,
    /// When it was stored (ms).
    pub uploaded: i64,
}

/// Every stored version (at most 1,000: R2's page).
pub async fn list(env: &Env) -> ApiResult<Vec<Listed>> {
    let objects = env.bucket(DATA)?.list().prefix(BUNDLES).execute().await?;
    Ok(objects
        .objects()
        .into_iter()
        .filter_map(|o| {
            let version = o
                .key()
                .strip_prefix(BUNDLES)?
                .strip_suffix(".json")?
                .to_string();
            Some(Listed {
                version,
                bytes: o.size(),
                uploaded: o.uploaded().as_millis() as i64,
            })
        })
        .collect())
}
