//! The calls to the CRMs, and only the calls: the requests and the reading of answers are the
//! core's ([`crate::crm::hubspot`], [`crate::crm::salesforce`]). A call that gets no answer (network,
//! timeout) is an outage: every record in it is retried.

use std::time::Duration;

use worker::*;

use super::super::http::{fetch_within, now_ms};
use crate::crm::activities::{Activity, ActivityKind};
use crate::crm::config::Destination;
use crate::crm::salesforce::Token;
use crate::crm::{hubspot, salesforce, CrmObject, Outcome, Write};

/// Per-call timeout.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// An answer.
#[derive(Debug, Clone)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// `Retry-After`.
    pub retry_after: Option<String>,
    /// `Sforce-Limit-Info`.
    pub limit_info: Option<String>,
    /// Body text.
    pub body: String,
}

/// One HTTP call; `Err`: no answer.
pub async fn call(
    method: Method,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<String>,
) -> std::result::Result<Reply, String> {
    let h = Headers::new();
    for (k, v) in headers {
        h.set(k, v).map_err(|e| e.to_string())?;
    }
    let mut init = RequestInit::new();
    init.with_method(method).with_headers(h);
    if let Some(b) = body {
        init.with_body(Some(b.into()));
    }
    let req = Request::new_with_init(url, &init).map_err(|e| e.to_string())?;
    match fetch_within(req, TIMEOUT).await {
        Ok(Some(mut resp)) => {
            let header = |n: &str| resp.headers().get(n).ok().flatten();
            let (retry_after, limit_info) = (header("retry-after"), header("sforce-limit-info"));
            Ok(Reply {
                status: resp.status_code(),
                retry_after,
                limit_info,
                body: resp.text().await.unwrap_or_default(),
            })
        }
        Ok(None) => Err(format!("no answer within {} s", TIMEOUT.as_secs())),
        Err(e) => Err(e.to_string()),
    }
}

fn refused(n: usize, why: String) -> Vec<Outcome> {
    vec![Outcome::Refused { reason: why }; n]
}

fn outage(n: usize, why: String) -> Vec<Outcome> {
    vec![
        Outcome::Retry {
            after_ms: None,
            reason: why,
        };
        n
    ]
}

/// One HubSpot batch update (one object type).
pub async fn hubspot_batch(dest: &Destination, token: &str, writes: &[Write]) -> hubspot::Answer {
    let object = writes
        .first()
        .map_or(CrmObject::Contact, |w| w.record.object);
    let built = hubspot::batch_update_path(&dest.api_version, object)
        .and_then(|p| Ok((p, hubspot::batch_update_body(writes)?)));
    let (path, body) = match built {
        Ok(x) => x,
        Err(e) => {
            return hubspot::Answer {
                outcomes: refused(writes.len(), e.to_string()),
                hold_until: None,
            }
        }
    };
    match hubspot_call(dest, token, &path, body).await {
        Ok(r) => hubspot::read_batch_update(
            r.status,
            r.retry_after.as_deref(),
            &r.body,
            writes,
            now_ms(),
        ),
        Err(why) => hubspot::Answer {
            outcomes: outage(writes.len(), format!("HubSpot: {why}")),
            hold_until: None,
        },
    }
}

/// One HubSpot batch create of tasks or notes (one kind).
pub async fn hubspot_activities(
    dest: &Destination,
    token: &str,
    acts: &[Activity],
) -> hubspot::Answer {
    let kind = acts.first().map_or(ActivityKind::Task, |a| a.kind);
    let body = match hubspot::activities_body(acts) {
        Ok(b) => b,
        Err(e) => {
            return hubspot::Answer {
                outcomes: refused(acts.len(), e.to_string()),
                hold_until: None,
            }
        }
    };
    let path = hubspot::activities_path(&dest.api_version, kind);
    match hubspot_call(dest, token, &path, body).await {
        Ok(r) => hubspot::read_activities_create(
            r.status,
            r.retry_after.as_deref(),
            &r.body,
            acts,
            now_ms(),
        ),
        Err(why) => hubspot::Answer {
            outcomes: outage(acts.len(), format!("HubSpot: {why}")),
            hold_until: None,
        },
    }
}

/// One HubSpot setup request (a property group or a property): its status and the start of its body.
pub async fn hubspot_post(
    dest: &Destination,
    token: &str,
    path: &str,
    body: String,
) -> (u16, String) {
    match hubspot_call(dest, token, path, body).await {
        Ok(r) => (r.status, r.body.chars().take(300).collect()),
        Err(why) => (0, why),
    }
}

/// A `POST` of JSON to HubSpot with the portal's token.
async fn hubspot_call(
    dest: &Destination,
    token: &str,
    path: &str,
    body: String,
) -> std::result::Result<Reply, String> {
    let auth = format!("Bearer {token}");
    let headers = [
        ("authorization", auth.as_str()),
        ("content-type", "application/json"),
    ];
    call(
        Method::Post,
        &format!("{}{path}", dest.base_url),
        &headers,
        Some(body),
    )
    .await
}

/// A Salesforce token by the client-credentials flow.
pub async fn salesforce_token(
    dest: &Destination,
    client_id: &str,
    client_secret: &str,
) -> std::result::Result<Token, String> {
    let r = call(
        Method::Post,
        &format!("{}/services/oauth2/token", dest.base_url),
        &[("content-type", "application/x-www-form-urlencoded")],
        Some(salesforce::token_form(client_id, client_secret)),
    )
    .await?;
    salesforce::read_token(r.status, &r.body).map_err(|e| e.to_string())
}

/// One sObject Collections update.
pub async fn salesforce_batch(
    dest: &Destination,
    token: &Token,
    writes: &[Write],
) -> salesforce::Answer {
    let numbers = salesforce::number_fields(&dest.spec.fields);
    let body = salesforce::collections_body(writes, &numbers);
    salesforce_collections(dest, token, Method::Patch, body, writes.len()).await
}

/// One sObject Collections create of tasks or notes.
pub async fn salesforce_activities(
    dest: &Destination,
    token: &Token,
    acts: &[Activity],
) -> salesforce::Answer {
    let body = salesforce::activities_body(acts);
    salesforce_collections(dest, token, Method::Post, body, acts.len()).await
}

/// An sObject Collections call of `n` records, read per record.
async fn salesforce_collections(
    dest: &Destination,
    token: &Token,
    method: Method,
    body: std::result::Result<String, crate::crm::CrmError>,
    n: usize,
) -> salesforce::Answer {
    let answer = |outcomes| salesforce::Answer {
        outcomes,
        token_expired: false,
        hold_until: None,
        api_usage: None,
    };
    let body = match body {
        Ok(b) => b,
        Err(e) => return answer(refused(n, e.to_string())),
    };
    let auth = format!("Bearer {}", token.access_token);
    let headers = [
        ("authorization", auth.as_str()),
        ("content-type", "application/json"),
    ];
    let url = format!(
        "{}{}",
        token.instance_url.trim_end_matches('/'),
        salesforce::collections_path(&dest.api_version)
    );
    match call(method, &url, &headers, Some(body)).await {
        Ok(r) => {
            salesforce::read_collections(r.status, r.limit_info.as_deref(), &r.body, n, now_ms())
        }
        Err(why) => answer(outage(n, format!("Salesforce: {why}"))),
    }
}
