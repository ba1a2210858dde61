//! One object's record: read once per object lifetime (then served from memory), written with the
//! alarm that expires it. Shared by every object kind.

use std::cell::RefCell;

use serde::{de::DeserializeOwned, Serialize};
use worker::{Env, Request, Response, Result, State};

use crate::error_code::ErrorCode;
use crate::worker::env::var_num;
use crate::worker::http::{now_ms, ApiError, ApiResult};

/// The storage key every object keeps its record under.
const KEY: &str = "v";

/// What a record tells its store.
pub trait Kept: Serialize + DeserializeOwned + Clone + Default {
    /// Last activity (ms): the object expires `RETENTION_DAYS` after it.
    fn seen(&self) -> i64;
    /// Records activity at `at` (never moves it back).
    fn touch(&mut self, at: i64);
    /// A time the object must wake at before that (a debounced send).
    fn due(&self) -> Option<i64> {
        None
    }
}

/// Retention as milliseconds; `RETENTION_DAYS` may be fractional (tests use seconds' worth).
pub fn retention_ms(env: &Env) -> i64 {
    let days = Some(var_num(env, "RETENTION_DAYS", 30.0f64))
        .filter(|d| d.is_finite() && *d >= 0.0)
        .unwrap_or(30.0);
    (days * 86_400_000.0) as i64
}

/// An object's storage with its record cached.
pub struct Store<R> {
    state: State,
    cache: RefCell<Option<R>>,
}

impl<R: Kept> Store<R> {
    /// The store of the object owning `state`.
    pub fn new(state: State) -> Self {
        Store {
            state,
            cache: RefCell::new(None),
        }
    }

    /// The record, if the object holds one.
    pub async fn load(&self) -> Result<Option<R>> {
        if let Some(r) = self.cache.borrow().clone() {
            return Ok(Some(r));
        }
        let r: Option<R> = self.state.storage().get(KEY).await?;
        self.cache.borrow_mut().clone_from(&r);
        Ok(r)
    }

    /// Writes the record and sets the one alarm that serves both purposes: the earlier of a due
    /// time and expiry. The runtime takes an offset from now (not an epoch time).
    pub async fn save(&self, env: &Env, rec: &R) -> Result<()> {
        self.state.storage().put(KEY, rec).await?;
        *self.cache.borrow_mut() = Some(rec.clone());
        let expiry = rec.seen() + retention_ms(env);
        let at = rec.due().map_or(expiry, |p| p.min(expiry));
        let offset = (at - now_ms()).max(0);
        self.state
            .storage()
            .set_alarm(std::time::Duration::from_millis(offset as u64))
            .await?;
        Ok(())
    }

    /// Whether the record has been idle past retention; if so it is deleted with its alarm.
    pub async fn expire_if_idle(&self, env: &Env, rec: &R, now: i64) -> Result<bool> {
        if now < rec.seen() + retention_ms(env) {
            return Ok(false);
        }
        self.state.storage().delete_alarm().await?;
        self.state.storage().delete_all().await?;
        *self.cache.borrow_mut() = None;
        Ok(true)
    }

    /// The alarm of an object with nothing due: it only expires the object when idle.
    pub async fn expire_alarm(&self, env: &Env) -> Result<Response> {
        if let Some(rec) = self.load().await? {
            if !self.expire_if_idle(env, &rec, now_ms()).await? {
                self.save(env, &rec).await?;
            }
        }
        Response::ok("ok")
    }
}

/// An internal route's typed message (the worker wrote it: one that does not parse is a bug, 500).
pub async fn message<T: DeserializeOwned>(req: &mut Request) -> ApiResult<T> {
    // serde_json on the text (not the runtime's JSON.parse): raw event texts stay as sent.
    serde_json::from_str(&req.text().await?).map_err(ApiError::internal)
}

/// The answer to a route an object does not have.
pub fn no_route() -> ApiError {
    ApiError::new(404, ErrorCode::NotFound, "no such object route")
}

/// The entry points of an object kept in a [`Store`] (a struct with `env` and `store`, and an
/// `async fn route`): built with its store, answering its internal routes (errors as JSON), and
/// deleted by its alarm once idle. Why a macro: the lead, deal and account objects differ only in
/// their routes, and `DurableObject` is implemented per `#[durable_object]` type.
macro_rules! kept_object {
    ($ty:ident) => {
        impl DurableObject for $ty {
            fn new(state: State, env: Env) -> Self {
                $ty {
                    env,
                    store: Store::new(state),
                }
            }

            async fn fetch(&self, req: Request) -> Result<Response> {
                console_error_panic_hook::set_once();
                self.route(req).await.or_else(|e| e.response())
            }

            async fn alarm(&self) -> Result<Response> {
                console_error_panic_hook::set_once();
                self.store.expire_alarm(&self.env).await
            }
        }
    };
}
