//! The lead side of the visitor object: the directory entry (`lead:<id>`) that lists a lead's
//! verified visitors ([`crate::lead::LeadDirectory`] holds its rules), and a verified visitor
//! joining it and merging the lead's other CRM-consented states into its own.

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use worker::*;

use super::{decode_state, for_lead_url, Exported, VisitorObject, BINDING};
use crate::error_code::ErrorCode;
use crate::lead::LeadDirectory;
use crate::score::Scorer;
use crate::state::{Merge, VisitorState};
use crate::worker::{now_ms, ApiError};

/// What a visitor tells a lead directory when it joins.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct Join {
    /// The lead (the directory entry learns its own name from its first join).
    lead: String,
    visitor: String,
    /// Its CRM consent: only a consented visitor becomes the lead's merged view.
    crm: bool,
}

/// A lead directory entry's answer to a visitor joining it.
#[derive(Debug, Default, Serialize, Deserialize)]
struct LeadMembers {
    /// The lead's other visitors, the merged view first, then the newest first.
    others: Vec<String>,
}

impl VisitorObject {
    /// Joins `lead`'s directory entry and merges the CRM-consented states of the lead's other
    /// visitors that this visitor has not absorbed yet (see the module docs) into the stored
    /// record. Sends nothing: the caller scores and applies the policy once. Returns whether
    /// anything was merged.
    pub(super) async fn merge_lead(
        &self,
        sc: &Scorer,
        lead: &str,
        visitor: &str,
        crm: bool,
    ) -> std::result::Result<bool, ApiError> {
        let ns = self.env.durable_object(BINDING)?;
        let stub = ns.id_from_name(&format!("lead:{lead}"))?.get_stub()?;
        let join = serde_json::to_string(&Join {
            lead: lead.to_string(),
            visitor: visitor.to_string(),
            crm,
        })
        .map_err(|e| ApiError::new(500, ErrorCode::Internal, e.to_string()))?;
        let mut init = RequestInit::new();
        init.with_method(Method::Post).with_body(Some(join.into()));
        let mut resp = stub
            .fetch_with_request(Request::new_with_init("https://visitor/lead", &init)?)
            .await?;
        let members: LeadMembers = serde_json::from_str(&resp.text().await?)
            .map_err(|e| ApiError::new(500, ErrorCode::Internal, format!("lead directory: {e}")))?;

        let mine = match self.load().await? {
            Some(rec) => decode_state(&rec, sc),
            None => return Ok(false),
        };
        let mut sources = Vec::new();
        for other in members.others {
            if other == visitor || mine.has_merged(&other) {
                continue;
            }
            let stub = ns.id_from_name(&other)?.get_stub()?;
            let mut resp = stub.fetch_with_str(&for_lead_url("state", lead)).await?;
            if resp.status_code() != 200 {
                continue; // expired (retention), never sent an event, or no longer this lead's
            }
            let Ok(ex) = serde_json::from_str::<Exported>(&resp.text().await?) else {
                continue;
            };
            if !ex.crm {
                continue; // no CRM consent: its behaviour must never reach the CRM
            }
            let state = base64::engine::general_purpose::STANDARD
                .decode(&ex.state)
                .ok()
                .and_then(|b| VisitorState::from_bytes(&b, sc.state_config()).ok());
            if let Some(state) = state.filter(|_| ex.visitor_id == other) {
                sources.push((other, state));
            }
        }
        if sources.is_empty() {
            return Ok(false);
        }
        // The most complete state first: a previous merged view brings its own sources along.
        sources.sort_by_key(|(_, s)| std::cmp::Reverse(s.merged.len()));

        // Re-read: other requests to this object may have run while the states were fetched.
        let mut rec = self.load().await?.unwrap_or_default();
        let mut vs = decode_state(&rec, sc);
        let mut merged = 0;
        for (id, state) in &sources {
            match vs.merge(visitor, id, state, sc.state_config()) {
                Ok(Merge::Merged) => merged += 1,
                Ok(_) => {}
                Err(e) => return Err(ApiError::new(500, ErrorCode::Internal, e.to_string())),
            }
        }
        if merged == 0 {
            return Ok(false);
        }
        rec.state = base64::engine::general_purpose::STANDARD.encode(vs.to_bytes());
        self.save(&rec).await?;
        Ok(true)
    }

    /// A lead directory entry: records a verified visitor as one of the lead's visitors and
    /// answers with the others. A consented visitor new to the lead becomes its merged view.
    pub(super) async fn join_lead(&self, text: &str) -> std::result::Result<Response, ApiError> {
        let join: Join = serde_json::from_str(text)
            .map_err(|e| ApiError::new(500, ErrorCode::Internal, format!("lead join: {e}")))?;
        let mut rec = self.load().await?.unwrap_or_default();
        let mut dir = LeadDirectory {
            merged_view: rec.lead_of.take(),
            visitors: std::mem::take(&mut rec.lead_visitors),
        };
        let others = dir.join(&join.visitor, join.crm);
        (rec.lead_of, rec.lead_visitors) = (dir.merged_view, dir.visitors);
        rec.lead = Some(join.lead);
        rec.seen = now_ms();
        self.save(&rec).await?;
        Ok(Response::from_json(&LeadMembers { others })?)
    }
}
