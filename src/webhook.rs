//! Sink: the compact score event a CRM receives, when to send it, how it is signed and retried.
//!
//! Lives in the core (not the worker) so that the rules are unit-tested natively and any front end
//! (the worker today, a batch exporter later) sends exactly the same thing.
//!
//! * [`Policy::decide`]: send when the tier changes, a threshold is crossed or the score moves by
//!   `delta`, at most once per `debounce_ms` per visitor — except entering hot, which is an alert
//!   (`lead.hot`) and goes at once. A change held back by the debounce is sent when the window ends.
//! * [`sign`]: [Standard Webhooks](https://www.standardwebhooks.com/) — `webhook-signature:
//!   v1,<base64 HMAC-SHA256 of "id.timestamp.body">` with a `whsec_<base64 key>` secret.
//! * [`retry_delay_seconds`]: [`RETRY_SCHEDULE_SECONDS`], Standard Webhooks' schedule (5 s, 5 min,
//!   30 min, 2 h, 5 h, 10 h, 10 h after the first attempt: 27 h 35 min in all), each wait stretched
//!   by up to 10 % of jitter and never shorter than the receiver's `Retry-After`.

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::score::{Factor, Score, Tier};
use crate::secret::HmacKey;

/// Event type for a score change.
pub const SCORE_CHANGED: &str = "lead.score_changed";
/// Event type for a visitor entering the hot tier.
pub const LEAD_HOT: &str = "lead.hot";

/// What the CRM receives (Standard Webhooks payload shape: `type`, `timestamp`, `data`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScoreEvent {
    /// [`SCORE_CHANGED`] or [`LEAD_HOT`].
    #[serde(rename = "type")]
    pub kind: String,
    /// When the event was made (ms since the epoch).
    pub timestamp: i64,
    /// The score.
    pub data: ScoreData,
}

/// The compact score a CRM stores.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScoreData {
    /// Lead id, once the visitor identified.
    pub lead_id: Option<String>,
    /// Anonymous visitor id.
    pub visitor_id: String,
    /// 0–100.
    pub ai_score: u8,
    /// `hot`, `warm` or `cold`.
    pub tier: String,
    /// When the score was computed (ms since the epoch).
    pub score_timestamp: i64,
    /// Model that scored.
    pub model_version: String,
    /// The experiment arm that chose it, where one runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arm: Option<String>,
    /// Top factors (at most 5).
    pub key_factors: Vec<KeyFactor>,
    /// Who the lead is: the fit sub-score (0–100).
    #[serde(default)]
    pub fit_score: u8,
    /// What the lead does: the engagement sub-score (0–100).
    #[serde(default)]
    pub engagement_score: u8,
    /// Trust in the tier, 0–1.
    pub score_confidence: f64,
    /// The score last sent for this visitor, if any.
    pub previous_score: Option<u8>,
    /// The tier last sent for this visitor, if any.
    pub previous_tier: Option<String>,
    /// Whether `lead_id` was verified (signed by the site's backend, or set by a bearer caller);
    /// `false` means the visitor only claimed it (a form fill), and the CRM decides what to trust.
    pub verified: bool,
}

impl ScoreData {
    /// The compact score of `score`, after `sent` (what was last sent for the visitor); `verified`
    /// whether its lead id was verified.
    pub fn of(score: &Score, verified: bool, sent: &SentState) -> ScoreData {
        ScoreData {
            lead_id: score.lead_id.clone(),
            visitor_id: score.visitor_id.clone(),
            ai_score: score.ai_score,
            tier: score.tier.as_str().to_string(),
            score_timestamp: score.score_timestamp,
            model_version: score.model_version.clone(),
            arm: score.arm.clone(),
            key_factors: score.key_factors.iter().map(KeyFactor::from).collect(),
            fit_score: score.fit.score,
            engagement_score: score.engagement.score,
            score_confidence: score.score_confidence,
            previous_score: sent.score,
            previous_tier: sent.tier.map(|t| t.as_str().to_string()),
            verified: verified && score.lead_id.is_some(),
        }
    }
}

/// A factor, rounded for the wire, with the card's names so that a CRM user can read it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeyFactor {
    /// Feature name.
    pub feature: String,
    /// The card's label for the feature (its name when the card has none).
    #[serde(default)]
    pub label: String,
    /// Its value (NaN, written `null`, for a missing input).
    #[serde(deserialize_with = "crate::score::f64_or_nan")]
    pub value: f64,
    /// The card's name for the value, where it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display: Option<String>,
    /// Its contribution to the log-odds (positive raises the score), 4 decimals.
    pub impact: f64,
    /// `fit` or `engagement`.
    #[serde(default)]
    pub group: crate::score::Group,
    /// The factor as a sentence ("3 webinars in the last 30 days").
    #[serde(default)]
    pub text: String,
}

impl From<&Factor> for KeyFactor {
    fn from(f: &Factor) -> Self {
        KeyFactor {
            feature: f.feature.clone(),
            label: f.label.clone(),
            value: f.value,
            display: f.display.clone(),
            impact: (f.impact * 1e4).round() / 1e4,
            group: f.group,
            text: f.text.clone(),
        }
    }
}

/// When to tell the CRM.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Policy {
    /// Send when the score moved this much since the last send.
    pub delta: u8,
    /// At most one send per visitor in this window (ms), except `lead.hot`.
    pub debounce_ms: i64,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            delta: 10,
            debounce_ms: 30_000,
        }
    }
}

/// What was last sent for a visitor (kept beside its state).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SentState {
    /// Score last sent.
    pub score: Option<u8>,
    /// Tier last sent.
    pub tier: Option<Tier>,
    /// When it was sent (ms).
    pub at: i64,
    /// Number of events sent so far: the next one's sequence number (stable webhook ids).
    pub seq: u64,
    /// Lead id last sent: a newly identified visitor is news for the CRM even if its score
    /// did not move.
    #[serde(default)]
    pub lead_id: Option<String>,
}

/// Outcome of [`Policy::decide`]: whether, and when, to tell the CRM.
#[derive(Debug, Clone, PartialEq)]
pub enum SendDecision {
    /// Nothing worth telling.
    Nothing,
    /// Send now, with this event type.
    Send(&'static str),
    /// Worth telling but debounced: decide again at this time (ms).
    Later(i64),
}

impl Policy {
    /// Whether `score` (with tier thresholds `hot`/`warm`) should be sent now, given what was sent.
    pub fn decide(
        &self,
        sent: &SentState,
        score: &Score,
        hot: u8,
        warm: u8,
        now: i64,
    ) -> SendDecision {
        let new_lead = score.lead_id.is_some() && score.lead_id != sent.lead_id;
        match self.movement(
            sent.score,
            sent.tier,
            score.ai_score,
            score.tier,
            (hot, warm),
        ) {
            Some(Movement::EnteredHot) => return SendDecision::Send(LEAD_HOT),
            None if !new_lead => return SendDecision::Nothing,
            _ => {}
        }
        if sent.score.is_some() && now < sent.at + self.debounce_ms {
            return SendDecision::Later(sent.at + self.debounce_ms);
        }
        SendDecision::Send(SCORE_CHANGED)
    }
}

/// What a score's move since the last one sent is worth telling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Movement {
    /// It entered hot.
    EnteredHot,
    /// Its tier changed, it crossed a tier threshold, or it moved by the policy's delta.
    Changed,
}

impl Policy {
    /// The move from the last sent (score, tier), none yet counting as (0, cold), to (`score`,
    /// `tier`) under thresholds (hot, warm): the rule lead and account webhooks share.
    pub fn movement(
        &self,
        sent_score: Option<u8>,
        sent_tier: Option<Tier>,
        score: u8,
        tier: Tier,
        (hot, warm): (u8, u8),
    ) -> Option<Movement> {
        let (prev_score, prev_tier) = (sent_score.unwrap_or(0), sent_tier.unwrap_or(Tier::Cold));
        if tier == Tier::Hot && prev_tier != Tier::Hot {
            return Some(Movement::EnteredHot);
        }
        let (lo, hi) = (prev_score.min(score), prev_score.max(score));
        let crossed = [hot, warm].iter().any(|&t| lo < t && t <= hi);
        (tier != prev_tier || crossed || hi - lo >= self.delta.max(1)).then_some(Movement::Changed)
    }
}

/// Builds the event to send and advances `sent` (call only when sending); `verified` says whether
/// the score's lead id was verified.
pub fn make_event(
    kind: &str,
    score: &Score,
    verified: bool,
    sent: &mut SentState,
    now: i64,
) -> ScoreEvent {
    let ev = ScoreEvent {
        kind: kind.to_string(),
        timestamp: now,
        data: ScoreData::of(score, verified, sent),
    };
    sent.score = Some(score.ai_score);
    sent.tier = Some(score.tier);
    sent.at = now;
    sent.seq += 1;
    sent.lead_id.clone_from(&score.lead_id);
    ev
}

/// Webhook id of a visitor's n-th event: stable across retries and re-sends of the same event,
/// so the receiver can de-duplicate (`msg_` + 24 hex digits).
pub fn webhook_id(visitor_id: &str, seq: u64) -> String {
    let mut h = Sha256::new();
    h.update(visitor_id.as_bytes());
    h.update(b"\0");
    h.update(seq.to_le_bytes());
    format!("msg_{}", crate::hex::encode(&h.finalize()[..12]))
}

/// Errors of the signing secret.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SecretError {
    /// Not `whsec_` followed by base64.
    #[error("webhook secret must be `whsec_` followed by base64 (24 to 64 bytes)")]
    Malformed,
}

/// A decoded `whsec_` signing secret: an [`HmacKey`], so signing and verifying share it.
pub type Secret = HmacKey;

/// Parses `whsec_<base64>`; why the bounds: Standard Webhooks asks for 24–64 random bytes.
pub fn parse_secret(text: &str) -> Result<Secret, SecretError> {
    use base64::Engine as _;
    let b64 = text
        .trim()
        .strip_prefix("whsec_")
        .ok_or(SecretError::Malformed)?;
    let key = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|_| SecretError::Malformed)?;
    if key.len() > 64 {
        return Err(SecretError::Malformed);
    }
    HmacKey::from_bytes(&key, 24).map_err(|_| SecretError::Malformed)
}

/// The MAC over the signed content `"{id}.{timestamp}.{body}"`.
fn mac(secret: &Secret, id: &str, timestamp: i64, body: &str) -> Hmac<Sha256> {
    let mut mac = secret.mac();
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body.as_bytes());
    mac
}

/// `v1,<base64 HMAC-SHA256(secret, "{id}.{timestamp}.{body}")>` (timestamp in seconds).
pub fn sign(secret: &Secret, id: &str, timestamp: i64, body: &str) -> String {
    use base64::Engine as _;
    let tag = mac(secret, id, timestamp, body).finalize().into_bytes();
    format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(tag)
    )
}

/// Verifies a `webhook-signature` header (space-separated `v1,<sig>` list) in constant time.
pub fn verify(secret: &Secret, id: &str, timestamp: i64, body: &str, header: &str) -> bool {
    use base64::Engine as _;
    let mac = mac(secret, id, timestamp, body);
    header
        .split(' ')
        .filter_map(|s| s.strip_prefix("v1,"))
        .any(|sig| {
            base64::engine::general_purpose::STANDARD
                .decode(sig)
                .is_ok_and(|tag| mac.clone().verify_slice(&tag).is_ok())
        })
}

/// Waits between delivery attempts (seconds), Standard Webhooks' schedule: the first attempt at
/// once, then these. With one attempt per step, a receiver may be down for 27 h 35 min and still
/// get everything; `max_retries` in wrangler.toml equals this length (a test checks it).
pub const RETRY_SCHEDULE_SECONDS: [u32; 7] = [5, 300, 1_800, 7_200, 18_000, 36_000, 36_000];

/// Longest wait Cloudflare Queues accept for one retry (12 h).
pub const MAX_RETRY_DELAY_SECONDS: u32 = 43_200;

/// Seconds to wait before the next attempt of a delivery first enqueued `elapsed_ms` ago.
///
/// Queues do not tell a consumer a message's attempt count, so the step is found from the time:
/// the next attempt is due at the first point of the cumulative schedule after `elapsed_ms`
/// (attempts made late, e.g. after a long `Retry-After`, skip the points they missed; past the
/// last point the last step repeats). `scale` compresses time (tests: 120 makes 30 min last 15 s);
/// `unit` ∈ [0, 1) adds up to 10 % of the step as jitter, always later, so a jittered attempt
/// never lands before its point. The receiver's `Retry-After` (real seconds) is a lower bound.
/// The result is at least 1 s and at most [`MAX_RETRY_DELAY_SECONDS`].
pub fn retry_delay_seconds(
    elapsed_ms: i64,
    retry_after: Option<u32>,
    scale: f64,
    unit: f64,
) -> u32 {
    let scale = if scale.is_finite() && scale > 0.0 {
        scale
    } else {
        1.0
    };
    let elapsed = elapsed_ms.max(0) as f64 / 1000.0 * scale; // simulated seconds
    let mut point = 0.0;
    let mut wait = None;
    for &step in &RETRY_SCHEDULE_SECONDS {
        point += f64::from(step);
        if point > elapsed {
            wait = Some((point - elapsed, f64::from(step)));
            break;
        }
    }
    let last = f64::from(RETRY_SCHEDULE_SECONDS[RETRY_SCHEDULE_SECONDS.len() - 1]);
    let (wait, step) = wait.unwrap_or((last, last));
    let simulated = wait + 0.1 * step * unit.clamp(0.0, 1.0);
    let real = (simulated / scale)
        .ceil()
        .max(f64::from(retry_after.unwrap_or(0)));
    (real as u32).clamp(1, MAX_RETRY_DELAY_SECONDS)
}

/// `Retry-After` as whole seconds from `now_ms`: delta-seconds (digits only), or an HTTP-date in
/// the IMF-fixdate form RFC 9110 requires senders to use (`Wed, 21 Oct 2015 07:28:00 GMT`; rounded
/// up; a date in the past is 0). Anything else, obsolete date forms included, is `None`: the
/// header is ignored. The tracker follows the same rule (`www/tracker/retry.js`); both are tested
/// on `tests/fixtures/retry_after.json`.
pub fn parse_retry_after(value: Option<&str>, now_ms: i64) -> Option<u32> {
    let v = value?.trim();
    if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) {
        return v.parse::<u32>().ok();
    }
    let at_ms = crate::calendar::parse_imf_fixdate(v)?;
    let wait = (at_ms - now_ms).max(0);
    u32::try_from((wait + 999) / 1000).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn score(s: u8, tier: Tier) -> Score {
        Score {
            visitor_id: "v1".into(),
            lead_id: None,
            ai_score: s,
            tier,
            tiers: crate::model::card::Tiers { hot: 60, warm: 32 },
            probability: f64::from(s) / 100.0,
            raw_probability: 0.0,
            score_confidence: 0.5,
            key_factors: vec![Factor {
                feature: "channel".into(),
                label: "Traffic source".into(),
                value: 8.0,
                display: Some("Email".into()),
                impact: 0.123456,
                group: crate::score::Group::Engagement,
                text: "Traffic source: Email".into(),
            }],
            fit: crate::score::SubScore::default(),
            engagement: crate::score::SubScore::default(),
            model_version: "m".into(),
            arm: None,
            score_timestamp: 1,
            contributions: None,
            base_value: None,
        }
    }

    fn tier(s: u8) -> Tier {
        Tier::of(s, crate::model::card::Tiers { hot: 60, warm: 32 })
    }

    #[test]
    fn policy_sends_on_change_and_debounces() {
        let p = Policy {
            delta: 10,
            debounce_ms: 1000,
        };
        let mut sent = SentState::default();
        let d = |sent: &SentState, s: u8, now| p.decide(sent, &score(s, tier(s)), 60, 32, now);
        assert_eq!(d(&sent, 5, 0), SendDecision::Nothing); // a new, cold, low visitor
        assert_eq!(d(&sent, 12, 0), SendDecision::Send(SCORE_CHANGED)); // moved by delta
        make_event(SCORE_CHANGED, &score(12, tier(12)), false, &mut sent, 0);
        assert_eq!(d(&sent, 20, 10), SendDecision::Nothing);
        assert_eq!(d(&sent, 33, 10), SendDecision::Later(1000)); // tier change, debounced
        assert_eq!(d(&sent, 33, 1000), SendDecision::Send(SCORE_CHANGED));
        let ev = make_event(SCORE_CHANGED, &score(45, tier(45)), false, &mut sent, 1000);
        assert_eq!(ev.data.previous_score, Some(12));
        assert_eq!(ev.data.previous_tier.as_deref(), Some("cold"));
        assert_eq!(ev.data.key_factors[0].impact, 0.1235);
        let f = &ev.data.key_factors[0];
        assert_eq!(
            (f.label.as_str(), f.display.as_deref()),
            ("Traffic source", Some("Email"))
        );
        assert_eq!(d(&sent, 51, 5000), SendDecision::Nothing); // less than delta, same tier
        assert_eq!(d(&sent, 55, 5000), SendDecision::Send(SCORE_CHANGED)); // delta reached
        assert_eq!(d(&sent, 61, 1001), SendDecision::Send(LEAD_HOT)); // alerts skip the debounce
        make_event(LEAD_HOT, &score(61, tier(61)), false, &mut sent, 1001);
        assert_eq!(d(&sent, 65, 9000), SendDecision::Nothing);
        assert_eq!(sent.seq, 3);
        // Identifying is news even when the score stands still; then it is not news again.
        let mut identified = score(65, tier(65));
        identified.lead_id = Some("lead@acme.com".into());
        assert_eq!(
            p.decide(&sent, &identified, 60, 32, 9000),
            SendDecision::Send(SCORE_CHANGED)
        );
        let ev = make_event(SCORE_CHANGED, &identified, true, &mut sent, 9000);
        assert_eq!(ev.data.lead_id.as_deref(), Some("lead@acme.com"));
        assert!(ev.data.verified);
        assert_eq!(
            p.decide(&sent, &identified, 60, 32, 20_000),
            SendDecision::Nothing
        );
    }

    #[test]
    fn standard_webhooks_signature() {
        // The example of the Standard Webhooks specification's reference implementations.
        let secret = parse_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let body = r#"{"test": 2432232314}"#;
        let sig = sign(&secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body);
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
        assert!(verify(
            &secret,
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            body,
            &sig
        ));
        assert!(!verify(
            &secret,
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265331,
            body,
            &sig
        ));
        assert!(!verify(&secret, "msg_x", 1614265330, body, &sig));
        assert!(verify(
            &secret,
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            body,
            &format!("v1,AAAA {sig}")
        ));
        assert_eq!(
            parse_secret("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap_err(),
            SecretError::Malformed
        );
        assert_eq!(
            parse_secret("whsec_!!").unwrap_err(),
            SecretError::Malformed
        );
        assert_eq!(
            parse_secret("whsec_YWJj").unwrap_err(),
            SecretError::Malformed
        ); // 3 bytes
    }

    #[test]
    fn ids_are_stable_and_distinct() {
        assert_eq!(webhook_id("v", 1), webhook_id("v", 1));
        assert_ne!(webhook_id("v", 1), webhook_id("v", 2));
        assert_ne!(webhook_id("v", 1), webhook_id("w", 1));
        assert_eq!(webhook_id("v", 1).len(), 28);
    }

    #[test]
    fn retry_schedule() {
        let total: u32 = RETRY_SCHEDULE_SECONDS.iter().sum();
        assert!(total >= 24 * 3600, "the schedule spans a day");
        assert!(RETRY_SCHEDULE_SECONDS
            .iter()
            .all(|&s| s <= MAX_RETRY_DELAY_SECONDS));
        // Attempt 1 failed at once: wait 5 s; attempt 2 failed 6 s in: the 5-minute point.
        assert_eq!(retry_delay_seconds(0, None, 1.0, 0.0), 5);
        assert_eq!(retry_delay_seconds(6_000, None, 1.0, 0.0), 299);
        assert_eq!(retry_delay_seconds(306_000, None, 1.0, 0.0), 1_799);
        // Jitter only ever delays, by at most 10 % of the step.
        assert_eq!(retry_delay_seconds(6_000, None, 1.0, 0.999), 329);
        // Past the last point: the last step again.
        assert_eq!(retry_delay_seconds(200_000_000, None, 1.0, 0.0), 36_000);
        // Retry-After is a lower bound, capped at the queue's maximum.
        assert_eq!(retry_delay_seconds(0, Some(60), 1.0, 0.0), 60);
        assert_eq!(
            retry_delay_seconds(0, Some(1 << 30), 1.0, 0.0),
            MAX_RETRY_DELAY_SECONDS
        );
        // Scaled time: 120× makes the 30-minute step 15 s.
        assert_eq!(retry_delay_seconds(2_542, None, 120.0, 0.0), 15);
        assert_eq!(retry_delay_seconds(0, None, 1e9, 0.0), 1);
        assert_eq!(retry_delay_seconds(0, None, f64::NAN, 0.0), 5);
    }

    /// The shared Retry-After cases (the tracker's test reads the same file).
    #[test]
    fn retry_after_follows_the_shared_cases() {
        #[derive(serde::Deserialize)]
        struct Cases {
            now_ms: i64,
            cases: Vec<Case>,
        }
        #[derive(serde::Deserialize)]
        struct Case {
            value: Option<String>,
            seconds: Option<u32>,
        }
        let text = include_str!("../tests/fixtures/retry_after.json");
        let cases: Cases = serde_json::from_str(text).unwrap();
        assert!(cases.cases.len() >= 20);
        for c in &cases.cases {
            assert_eq!(
                parse_retry_after(c.value.as_deref(), cases.now_ms),
                c.seconds,
                "Retry-After {:?}",
                c.value
            );
        }
    }

    /// Following the schedule attempt after attempt reaches the end after the schedule's span
    /// with exactly one attempt per step.
    #[test]
    fn retry_schedule_walks_every_step() {
        let mut t_ms = 0i64;
        let mut waits = Vec::new();
        for _ in 0..RETRY_SCHEDULE_SECONDS.len() {
            let w = retry_delay_seconds(t_ms, None, 1.0, 0.5);
            waits.push(w);
            t_ms += i64::from(w) * 1000 + 800; // the attempt itself takes a moment
        }
        let expect: Vec<u32> = RETRY_SCHEDULE_SECONDS.to_vec();
        for (w, s) in waits.iter().zip(&expect) {
            assert!(
                *w as f64 >= *s as f64 * 0.95 - 2.0 && *w as f64 <= *s as f64 * 1.1 + 1.0,
                "{waits:?}"
            );
        }
    }

    /// The queue's `max_retries` is the schedule's length: one retry per step.
    #[test]
    fn wrangler_max_retries_is_the_schedules_length() {
        let toml = include_str!("../wrangler.toml");
        let consumer = toml
            .split("[[queues.consumers]]")
            .skip(1)
            .find(|c| c.contains("queue = \"leadscore-score-events\""))
            .unwrap();
        let n: usize = consumer
            .lines()
            .find_map(|l| l.trim().strip_prefix("max_retries = "))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert_eq!(n, RETRY_SCHEDULE_SECONDS.len());
    }
}
