//! A verified lead's object: the lead's visitors and its merged view
//! ([`crate::lead::LeadDirectory`] holds the rules), and the CRM outcomes about the lead.

use serde::{Deserialize, Serialize};
use worker::*;

use super::client::{self, Join, LeadMembers, LeadView, OutcomesRequest};
use super::kept::{keep_in, KeptOutcomes};
use super::store::{message, no_route, Kept, Store};
use crate::error_code::ErrorCode;
use crate::lead::LeadDirectory;
use crate::worker::http::{now_ms, ApiError, ApiResult};

/// What one lead object keeps.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct LeadRecord {
    /// The lead id (learnt from the first join or outcome).
    lead: String,
    /// Its visitors and merged view.
    directory: LeadDirectory,
    /// The latest CRM outcomes about the lead.
    #[serde(default)]
    outcomes: KeptOutcomes,
    /// Last activity (ms).
    seen: i64,
}

impl Kept for LeadRecord {
    fn seen(&self) -> i64 {
        self.seen
    }
    fn touch(&mut self, at: i64) {
        self.seen = self.seen.max(at);
    }
}

/// One verified lead.
#[durable_object]
pub struct LeadObject {
    env: Env,
    store: Store<LeadRecord>,
}

kept_object!(LeadObject);

impl LeadObject {
    async fn route(&self, mut req: Request) -> ApiResult<Response> {
        match (req.method(), req.path().as_str()) {
            (Method::Post, "/join") => self.join(message(&mut req).await?).await,
            (Method::Post, "/outcomes") => self.keep_outcomes(message(&mut req).await?).await,
            (Method::Get, "/score") => self.score().await,
            (Method::Get, "/view") => self.view().await,
            _ => Err(no_route()),
        }
    }

    /// Records a verified visitor as one of the lead's visitors and answers with the others. A
    /// consented visitor new to the lead becomes its merged view.
    async fn join(&self, join: Join) -> ApiResult<Response> {
        let mut rec = self.store.load().await?.unwrap_or_default();
        let others = rec.directory.join(&join.visitor, join.crm);
        rec.lead = join.lead;
        rec.seen = now_ms();
        self.store.save(&self.env, &rec).await?;
        Ok(Response::from_json(&LeadMembers { others })?)
    }

    /// Which visitor is the lead's merged view (where its server-side events go).
    async fn view(&self) -> ApiResult<Response> {
        let rec = self.store.load().await?.unwrap_or_default();
        Ok(Response::from_json(&LeadView {
            merged_view: rec.directory.merged_view,
        })?)
    }

    /// The merged view's score, asked of that visitor on this lead's behalf.
    async fn score(&self) -> ApiResult<Response> {
        let rec = self.store.load().await?.unwrap_or_default();
        let Some(v) = rec.directory.merged_view else {
            return Err(ApiError::new(
                404,
                ErrorCode::NotFound,
                "no consented visitor",
            ));
        };
        let (status, text) = client::score_for_lead(&self.env, &v, &rec.lead).await?;
        Ok(Response::ok(text)?
            .with_status(status)
            .with_headers(Headers::from_iter([("content-type", "application/json")])))
    }

    /// Keeps CRM outcomes about the lead ([`keep_in`]).
    async fn keep_outcomes(&self, req: OutcomesRequest) -> ApiResult<Response> {
        let mut rec = self.store.load().await?.unwrap_or_default();
        if let Some(l) = &req.lead {
            rec.lead.clone_from(l);
        }
        keep_in(&self.env, &self.store, rec, |r| &mut r.outcomes, req).await
    }
}
