//! The API's routes in one table: it drives dispatch, the bearer check and the `Allow` header of a
//! 405, so a route's method, path and access are said once.

use worker::{Env, Method, Request, Response};

use super::api::{
    crm, deliveries, events, export, import, info, leads, models, outcomes, score, segment, site,
};
use super::arms;
use super::body::body_text;
use super::env::Config;
use super::http::{bearer, decode_path, preflight, query, ApiError, ApiResult, MAX_PATH_BYTES};
use super::monitor;
use crate::error_code::ErrorCode;

/// How a route's path is matched.
#[derive(Debug, Clone, Copy)]
enum PathIs {
    /// This path exactly.
    Exact(&'static str),
    /// This prefix; the rest is the route's argument (an id, a log name).
    Prefix(&'static str),
}

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    /// Anyone (the handler may still check a site key or a signature).
    Open,
    /// The page, cross-origin: answers CORS preflights.
    Browser,
    /// Server to server: `Authorization: Bearer <API_TOKEN>`.
    Bearer,
}

/// What a matched route runs.
#[derive(Debug, Clone, Copy)]
enum Handler {
    Healthz,
    Model,
    Config,
    SiteGet,
    SitePut,
    SiteDelete,
    Events,
    Identify,
    ScoreStateless,
    ScoreGet,
    Import,
    LeadEvents,
    Segment,
    Outcomes,
    OutcomesHubspot,
    Export,
    Monitor,
    DeliveriesFailed,
    DeliveriesReplay,
    ModelsList,
    ModelPut,
    ModelGet,
    ModelPost,
    ModelDelete,
    ModelsRollback,
    ExperimentPut,
    ExperimentDelete,
    CrmGet,
    CrmSetup,
    CrmDead,
    CrmReplay,
}

/// One route.
struct Route {
    method: Method,
    path: PathIs,
    access: Access,
    handler: Handler,
}

const fn route(method: Method, path: PathIs, access: Access, handler: Handler) -> Route {
    Route {
        method,
        path,
        access,
        handler,
    }
}

use Access::{Bearer, Browser, Open};
use PathIs::{Exact, Prefix};

/// Every API route. `GET` routes answer `HEAD` too. `POST /v1/identify` is `Browser`: the page
/// calls it with a site key; a server calls it with the bearer token (the handler tells them apart).
#[rustfmt::skip]
const ROUTES: &[Route] = &[
    route(Method::Get,    Exact("/healthz"),               Open,    Handler::Healthz),
    route(Method::Get,    Exact("/v1/model"),              Open,    Handler::Model),
    route(Method::Get,    Exact("/v1/config"),             Open,    Handler::Config),
    route(Method::Get,    Exact("/v1/site"),               Open,    Handler::SiteGet),
    route(Method::Put,    Exact("/v1/site"),               Bearer,  Handler::SitePut),
    route(Method::Delete, Exact("/v1/site"),               Bearer,  Handler::SiteDelete),
    route(Method::Post,   Exact("/v1/events"),             Browser, Handler::Events),
    route(Method::Post,   Exact("/v1/identify"),           Browser, Handler::Identify),
    route(Method::Post,   Exact("/v1/score"),              Bearer,  Handler::ScoreStateless),
    route(Method::Get,    Prefix("/v1/score/"),            Bearer,  Handler::ScoreGet),
    route(Method::Post,   Exact("/v1/import"),             Bearer,  Handler::Import),
    route(Method::Post,   Exact("/v1/leads/events"),       Bearer,  Handler::LeadEvents),
    route(Method::Post,   Exact("/v1/segment"),            Open,    Handler::Segment),
    route(Method::Post,   Exact("/v1/outcomes"),           Bearer,  Handler::Outcomes),
    route(Method::Post,   Exact("/v1/outcomes/hubspot"),   Open,    Handler::OutcomesHubspot),
    route(Method::Get,    Prefix("/v1/export/"),           Bearer,  Handler::Export),
    route(Method::Get,    Exact("/v1/monitor"),            Bearer,  Handler::Monitor),
    route(Method::Get,    Exact("/v1/deliveries/failed"),  Bearer,  Handler::DeliveriesFailed),
    route(Method::Post,   Exact("/v1/deliveries/replay"),  Bearer,  Handler::DeliveriesReplay),
    route(Method::Get,    Exact("/v1/models"),             Bearer,  Handler::ModelsList),
    route(Method::Post,   Exact("/v1/models/rollback"),    Bearer,  Handler::ModelsRollback),
    route(Method::Put,    Prefix("/v1/models/"),           Bearer,  Handler::ModelPut),
    route(Method::Get,    Prefix("/v1/models/"),           Open,    Handler::ModelGet),
    route(Method::Post,   Prefix("/v1/models/"),           Bearer,  Handler::ModelPost),
    route(Method::Delete, Prefix("/v1/models/"),           Bearer,  Handler::ModelDelete),
    route(Method::Put,    Exact("/v1/experiment"),         Bearer,  Handler::ExperimentPut),
    route(Method::Delete, Exact("/v1/experiment"),         Bearer,  Handler::ExperimentDelete),
    route(Method::Get,    Exact("/v1/crm"),                Bearer,  Handler::CrmGet),
    route(Method::Post,   Exact("/v1/crm/setup"),          Bearer,  Handler::CrmSetup),
    route(Method::Get,    Exact("/v1/crm/dead"),           Bearer,  Handler::CrmDead),
    route(Method::Post,   Exact("/v1/crm/replay"),         Bearer,  Handler::CrmReplay),
];

impl PathIs {
    /// The path's argument when it matches (`""` for an exact path).
    fn matches<'p>(&self, path: &'p str) -> Option<&'p str> {
        match *self {
            Exact(p) => (path == p).then_some(""),
            Prefix(p) => path.strip_prefix(p),
        }
    }
}

/// The `Allow` header of a path: its routes' methods in table order (`GET` with `HEAD`, a browser
/// route with `OPTIONS`); `None` when no route has this path.
fn allowed_methods(path: &str) -> Option<String> {
    let routes: Vec<&Route> = ROUTES
        .iter()
        .filter(|r| r.path.matches(path).is_some())
        .collect();
    if routes.is_empty() {
        return None;
    }
    let mut methods: Vec<&str> = Vec::new();
    for r in &routes {
        match r.method {
            Method::Get => methods.extend(["GET", "HEAD"]),
            Method::Put => methods.push("PUT"),
            Method::Delete => methods.push("DELETE"),
            _ => methods.push("POST"),
        }
    }
    if routes.iter().any(|r| r.access == Browser) {
        methods.push("OPTIONS");
    }
    Some(methods.join(", "))
}

/// Answers one API request.
pub async fn dispatch(mut req: Request, env: &Env, cfg: &Config) -> ApiResult<Response> {
    let path = req.path();
    if path.len() > MAX_PATH_BYTES {
        return Err(ApiError::new(
            414,
            ErrorCode::UriTooLong,
            format!(
                "the path is {} bytes; the limit is {MAX_PATH_BYTES}",
                path.len()
            ),
        ));
    }
    // HEAD is GET without a body (the runtime drops the body).
    let method = match req.method() {
        Method::Head => Method::Get,
        m => m,
    };
    if method == Method::Options && path.starts_with("/v1/") {
        return preflight(&req, &cfg.allowed_origins);
    }
    let found = ROUTES
        .iter()
        .find_map(|r| (r.method == method).then(|| r.path.matches(&path).map(|arg| (r, arg)))?);
    let Some((r, arg)) = found else {
        return Err(match allowed_methods(&path) {
            Some(allow) => {
                let mut e = ApiError::new(
                    405,
                    ErrorCode::MethodNotAllowed,
                    format!("{method:?} is not allowed on {path}; allowed: {allow}"),
                );
                e.allow = Some(allow);
                e
            }
            None => ApiError::new(404, ErrorCode::NotFound, format!("no route for {path}")),
        });
    };
    if r.access == Bearer {
        bearer(&req, cfg.api_token.as_deref())?;
    }
    let arg = arg.to_string();
    match r.handler {
        Handler::Healthz => info::healthz(),
        Handler::Model => info::model(env).await,
        Handler::Config => info::config(&req, env).await,
        Handler::SiteGet => site::get(&req, env).await,
        Handler::SitePut => {
            site::put(&mut req, env, async |t| arms::accept_site(env, t).await).await
        }
        Handler::SiteDelete => site::delete(env).await,
        Handler::Events => events::post_events(&mut req, env, cfg).await,
        Handler::Identify => events::post_identify(&mut req, env, cfg).await,
        Handler::ScoreStateless => score::post(&mut req, env).await,
        Handler::ScoreGet => {
            let id = decode_path(&arg)?;
            score::get(env, &id, query(&req, "kind")?.as_deref()).await
        }
        Handler::Import => import::import(&mut req, env).await,
        Handler::LeadEvents => leads::post(&mut req, env).await,
        Handler::Segment => segment::post(&mut req, env, cfg).await,
        Handler::Outcomes => outcomes::post(&mut req, env).await,
        Handler::OutcomesHubspot => outcomes::hubspot(&mut req, env).await,
        Handler::Export => export::export(&req, env, &arg).await,
        Handler::Monitor => monitor::get(&req, env).await,
        Handler::DeliveriesFailed => deliveries::list(&req, env).await,
        Handler::DeliveriesReplay => {
            let text = body_text(&mut req).await?;
            deliveries::replay(&text, env).await
        }
        Handler::ModelsList => models::list(env).await,
        Handler::ModelPut => models::put(&mut req, env, &model_name(&arg)?).await,
        Handler::ModelGet => models::get(&req, env, &model_name(&arg)?).await,
        Handler::ModelPost => {
            if let Some(v) = arg.strip_suffix("/activate") {
                models::activate(&mut req, env, &model_name(v)?).await
            } else if let Some(v) = arg.strip_suffix("/baseline") {
                models::adopt_baseline(&mut req, env, &model_name(v)?).await
            } else {
                Err(ApiError::new(
                    404,
                    ErrorCode::NotFound,
                    format!("no route for {path}: POST /v1/models/{{version}}/activate, /v1/models/{{version}}/baseline or /v1/models/rollback"),
                ))
            }
        }
        Handler::ModelDelete => match arg.strip_suffix("/baseline") {
            Some(v) => models::reset_baseline(&mut req, env, &model_name(v)?).await,
            None => Err(ApiError::new(
                404,
                ErrorCode::NotFound,
                format!("no route for {path}: DELETE /v1/models/{{version}}/baseline"),
            )),
        },
        Handler::ModelsRollback => models::rollback(&mut req, env).await,
        Handler::ExperimentPut => models::put_experiment(&mut req, env).await,
        Handler::ExperimentDelete => models::delete_experiment(&mut req, env).await,
        Handler::CrmGet => crm::get(env).await,
        Handler::CrmSetup => crm::setup(&req, env).await,
        Handler::CrmDead => crm::dead(&req, env).await,
        Handler::CrmReplay => {
            let text = body_text(&mut req).await?;
            crm::replay(&text, env).await
        }
    }
}

/// A bundle name or version from the path: one segment of letters, digits, `-`, `_` and `.`.
fn model_name(arg: &str) -> ApiResult<String> {
    let name = decode_path(arg)?;
    let ok = !name.is_empty()
        && name.len() <= 128
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && !name.starts_with('.');
    if !ok {
        return Err(ApiError::new(
            400,
            ErrorCode::InvalidField,
            format!("{name:?} is not a model name or version (letters, digits, - _ .)"),
        ));
    }
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allow_lists_every_method_of_a_path() {
        assert_eq!(allowed_methods("/healthz").as_deref(), Some("GET, HEAD"));
        assert_eq!(
            allowed_methods("/v1/site").as_deref(),
            Some("GET, HEAD, PUT, DELETE")
        );
        assert_eq!(
            allowed_methods("/v1/events").as_deref(),
            Some("POST, OPTIONS")
        );
        assert_eq!(allowed_methods("/v1/import").as_deref(), Some("POST"));
        assert_eq!(
            allowed_methods("/v1/score/abc").as_deref(),
            Some("GET, HEAD")
        );
        assert_eq!(allowed_methods("/v1/score").as_deref(), Some("POST"));
        assert_eq!(allowed_methods("/v1/nothing"), None);
    }

    #[test]
    fn every_route_is_in_the_openapi_document() {
        let doc = include_str!("../../www/openapi.yaml");
        for r in ROUTES {
            let p = match r.path {
                Exact(p) => p.to_string(),
                Prefix(p) => format!("{p}{{"),
            };
            assert!(doc.contains(&format!("  {p}")), "{p} is not documented");
        }
    }
}
