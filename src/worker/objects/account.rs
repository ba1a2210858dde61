//! An account's object: its members' latest scores, its traits, and the account score rolled up by
//! the core's rule ([`crate::account`]); it sends `account.score_changed` / `account.hot` through
//! the same signed, retried delivery as a lead's webhooks, naming the members that moved it, and
//! writes it to the CRM's company where a destination writes accounts.

use serde::{Deserialize, Serialize};
use worker::*;

use super::client::{AccountJoin, AccountMember, ColleaguesRequest};
use super::store::{message, no_route, Kept, Store};
use crate::account::{AccountBook, AccountScore, DEFAULT_ENGAGED_WITHIN_MS};
use crate::error_code::ErrorCode;
use crate::score::Tier;
use crate::webhook::{webhook_id, Movement, Policy};
use crate::worker::crm::produce::{self, Mark};
use crate::worker::env::var_num;
use crate::worker::http::{now_ms, ApiError, ApiResult};
use crate::worker::outbox::enqueue;

/// `account.score_changed`: the account score moved (tier, a threshold, or `EMIT_DELTA`).
pub const ACCOUNT_SCORE_CHANGED: &str = "account.score_changed";
/// `account.hot`: the account entered hot.
pub const ACCOUNT_HOT: &str = "account.hot";

/// What one account object keeps.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct AccountRecord {
    book: AccountBook,
    /// The score and tier last sent, and each member's score then.
    sent_score: Option<u8>,
    sent_tier: Option<Tier>,
    sent_members: Vec<(String, u8)>,
    /// Account events sent (the webhook id's sequence).
    seq: u64,
    /// Last activity (ms).
    seen: i64,
    /// What its CRM company was last sent.
    #[serde(default)]
    crm_mark: Mark,
}

impl Kept for AccountRecord {
    fn seen(&self) -> i64 {
        self.seen
    }
    fn touch(&mut self, at: i64) {
        self.seen = self.seen.max(at);
    }
}

/// The account event a CRM receives.
#[derive(Debug, Serialize)]
struct AccountEvent<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    timestamp: i64,
    data: AccountEventData<'a>,
}

#[derive(Debug, Serialize)]
struct AccountEventData<'a> {
    #[serde(flatten)]
    score: &'a AccountScore,
    /// The members whose score changed since the account's last event (or who are new to it).
    moved_by: Vec<String>,
    previous_score: Option<u8>,
    previous_tier: Option<Tier>,
}

/// One account.
#[durable_object]
pub struct AccountObject {
    env: Env,
    store: Store<AccountRecord>,
}

kept_object!(AccountObject);

impl AccountObject {
    async fn route(&self, mut req: Request) -> ApiResult<Response> {
        match (req.method(), req.path().as_str()) {
            (Method::Post, "/join") => self.join(message(&mut req).await?).await,
            (Method::Post, "/member") => self.member(message(&mut req).await?).await,
            (Method::Get, "/score") => self.score().await,
            (Method::Post, "/colleagues") => self.colleagues(message(&mut req).await?).await,
            _ => Err(no_route()),
        }
    }

    /// `ACCOUNT_ENGAGED_DAYS` in ms: a member active within it counts.
    fn engaged_window(&self) -> i64 {
        var_num(&self.env, "ACCOUNT_ENGAGED_DAYS", 30i64)
            .checked_mul(86_400_000)
            .unwrap_or(DEFAULT_ENGAGED_WITHIN_MS)
    }

    fn tiers() -> ApiResult<(u8, u8)> {
        let t = crate::worker::arms::default_scorer()?.card().tiers;
        Ok((t.hot, t.warm))
    }

    /// A member joins (a verified group): the account's traits are kept.
    async fn join(&self, j: AccountJoin) -> ApiResult<Response> {
        let mut rec = self.store.load().await?.unwrap_or_default();
        rec.book.id = j.account;
        let dropped = rec.book.set_traits(j.traits.iter());
        rec.seen = now_ms();
        self.store.save(&self.env, &rec).await?;
        Ok(Response::from_json(
            &serde_json::json!({ "traits_dropped": dropped }),
        )?)
    }

    /// A member's new score: the account is scored again, and the CRM told when it moved.
    async fn member(&self, m: AccountMember) -> ApiResult<Response> {
        let mut rec = self.store.load().await?.unwrap_or_default();
        rec.book.id = m.account;
        let now = now_ms();
        let left = m
            .replaces
            .as_deref()
            .is_some_and(|old| old != m.member.id && rec.book.remove(old));
        let changed = rec.book.update(m.member) || left;
        let tiers = Self::tiers()?;
        let score = rec.book.score(now, self.engaged_window(), tiers);
        if changed && !m.history {
            let policy = Policy {
                delta: var_num(&self.env, "EMIT_DELTA", 10u8),
                debounce_ms: 0,
            };
            let moved = policy.movement(
                rec.sent_score,
                rec.sent_tier,
                score.ai_score,
                score.tier,
                tiers,
            );
            if let Some(mv) = moved {
                let kind = match mv {
                    Movement::EnteredHot => ACCOUNT_HOT,
                    Movement::Changed => ACCOUNT_SCORE_CHANGED,
                };
                let ev = AccountEvent {
                    kind,
                    timestamp: now,
                    data: AccountEventData {
                        score: &score,
                        moved_by: rec.book.moved_since(&rec.sent_members),
                        previous_score: rec.sent_score,
                        previous_tier: rec.sent_tier,
                    },
                };
                let body = serde_json::to_string(&ev).map_err(ApiError::internal)?;
                let id = webhook_id(&format!("account:{}", rec.book.id), rec.seq);
                enqueue(&self.env, id, body, now).await?;
                rec.seq += 1;
                rec.sent_score = Some(score.ai_score);
                rec.sent_tier = Some(score.tier);
                rec.sent_members = rec
                    .book
                    .members
                    .iter()
                    .map(|m| (m.id.clone(), m.ai_score))
                    .collect();
            }
        }
        if changed && !m.history {
            produce::account_changed(&self.env, &mut rec.crm_mark, &score, now).await?;
        }
        rec.seen = now;
        self.store.save(&self.env, &rec).await?;
        Ok(Response::from_json(&score)?)
    }

    /// The other members' latest activity, for a member's account features.
    async fn colleagues(&self, q: ColleaguesRequest) -> ApiResult<Response> {
        let rec = self.store.load().await?.unwrap_or_default();
        Ok(Response::from_json(&rec.book.colleagues(&q.member))?)
    }

    /// The account score now.
    async fn score(&self) -> ApiResult<Response> {
        let Some(rec) = self.store.load().await? else {
            return Err(ApiError::new(404, ErrorCode::NotFound, "no such account"));
        };
        Ok(Response::from_json(&rec.book.score(
            now_ms(),
            self.engaged_window(),
            Self::tiers()?,
        ))?)
    }
}
