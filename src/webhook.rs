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
//! * [`backoff_seconds`]: exponential with full jitter, honouring `Retry-After`.

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::score::{Factor, Score, Tier};

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
    /// Top factors (at most 5).
    pub key_factors: Vec<KeyFactor>,
    /// Trust in the tier, 0–1.
    pub score_confidence: f64,
    /// The score last sent for this visitor, if any.
    pub previous_score: Option<u8>,
    /// The tier last sent for this visitor, if any.
    pub previous_tier: Option<String>,
}

/// A factor, rounded for the wire.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeyFactor {
    /// Feature name.
    pub feature: String,
    /// Its value.
    pub value: f64,
    /// Its contribution to the log-odds (positive raises the score), 4 decimals.
    pub impact: f64,
}

impl From<&Factor> for KeyFactor {
    fn from(f: &Factor) -> Self {
        KeyFactor {
            feature: f.feature.clone(),
            value: f.value,
            impact: (f.impact * 1e4).round() / 1e4,
        }
    }
}

/// When to tell the CRM.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Policy {
    /// Send when the score moved this much since the last send.
    pub delta: u8,
    /// Extra score thresholds whose crossing is worth a send (tier boundaries always are).
    #[serde(default)]
    pub thresholds: Vec<u8>,
    /// At most one send per visitor in this window (ms), except `lead.hot`.
    pub debounce_ms: i64,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            delta: 10,
            thresholds: Vec::new(),
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

/// Outcome of [`Policy::decide`].
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Nothing worth telling.
    Nothing,
    /// Send now, with this event type.
    Send(&'static str),
    /// Worth telling but debounced: decide again at this time (ms).
    Later(i64),
}

impl Policy {
    /// Whether `score` (with tier thresholds `hot`/`warm`) should be sent now, given what was sent.
    pub fn decide(&self, sent: &SentState, score: &Score, hot: u8, warm: u8, now: i64) -> Decision {
        let (prev_score, prev_tier) = (sent.score.unwrap_or(0), sent.tier.unwrap_or(Tier::Cold));
        let s = score.ai_score;
        if score.tier == Tier::Hot && prev_tier != Tier::Hot {
            return Decision::Send(LEAD_HOT);
        }
        let (lo, hi) = (prev_score.min(s), prev_score.max(s));
        let crossed = [hot, warm]
            .iter()
            .chain(&self.thresholds)
            .any(|&t| lo < t && t <= hi);
        let new_lead = score.lead_id.is_some() && score.lead_id != sent.lead_id;
        let changed =
            new_lead || score.tier != prev_tier || crossed || hi - lo >= self.delta.max(1);
        if !changed {
            return Decision::Nothing;
        }
        if sent.score.is_some() && now < sent.at + self.debounce_ms {
            return Decision::Later(sent.at + self.debounce_ms);
        }
        Decision::Send(SCORE_CHANGED)
    }
}

/// Builds the event to send and advances `sent` (call only when sending).
pub fn make_event(kind: &str, score: &Score, sent: &mut SentState, now: i64) -> ScoreEvent {
    let ev = ScoreEvent {
        kind: kind.to_string(),
        timestamp: now,
        data: ScoreData {
            lead_id: score.lead_id.clone(),
            visitor_id: score.visitor_id.clone(),
            ai_score: score.ai_score,
            tier: score.tier.as_str().to_string(),
            score_timestamp: score.score_timestamp,
            model_version: score.model_version.clone(),
            key_factors: score.key_factors.iter().map(KeyFactor::from).collect(),
            score_confidence: score.score_confidence,
            previous_score: sent.score,
            previous_tier: sent.tier.map(|t| t.as_str().to_string()),
        },
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
    let d = h.finalize();
    let mut s = String::from("msg_");
    for b in &d[..12] {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// Errors of the signing secret.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SecretError {
    /// Not `whsec_` followed by base64.
    #[error("webhook secret must be `whsec_` followed by base64 (24 to 64 bytes)")]
    Malformed,
}

/// A decoded `whsec_` signing secret, kept as its keyed HMAC so signing and verifying share it.
#[derive(Clone)]
pub struct Secret(Hmac<Sha256>);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(…)") // never print key material
    }
}

impl Secret {
    /// Parses `whsec_<base64>`; why the bounds: Standard Webhooks asks for 24–64 random bytes.
    pub fn parse(text: &str) -> Result<Secret, SecretError> {
        use base64::Engine as _;
        let b64 = text
            .trim()
            .strip_prefix("whsec_")
            .ok_or(SecretError::Malformed)?;
        let key = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .map_err(|_| SecretError::Malformed)?;
        if !(24..=64).contains(&key.len()) {
            return Err(SecretError::Malformed);
        }
        Hmac::<Sha256>::new_from_slice(&key)
            .map(Secret)
            .map_err(|_| SecretError::Malformed)
    }

    /// The MAC over the signed content `"{id}.{timestamp}.{body}"`.
    fn mac(&self, id: &str, timestamp: i64, body: &str) -> Hmac<Sha256> {
        let mut mac = self.0.clone();
        mac.update(format!("{id}.{timestamp}.").as_bytes());
        mac.update(body.as_bytes());
        mac
    }
}

/// `v1,<base64 HMAC-SHA256(secret, "{id}.{timestamp}.{body}")>` (timestamp in seconds).
pub fn sign(secret: &Secret, id: &str, timestamp: i64, body: &str) -> String {
    use base64::Engine as _;
    let tag = secret.mac(id, timestamp, body).finalize().into_bytes();
    format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(tag)
    )
}

/// Verifies a `webhook-signature` header (space-separated `v1,<sig>` list) in constant time.
pub fn verify(secret: &Secret, id: &str, timestamp: i64, body: &str, header: &str) -> bool {
    use base64::Engine as _;
    let mac = secret.mac(id, timestamp, body);
    header
        .split(' ')
        .filter_map(|s| s.strip_prefix("v1,"))
        .any(|sig| {
            base64::engine::general_purpose::STANDARD
                .decode(sig)
                .is_ok_and(|tag| mac.clone().verify_slice(&tag).is_ok())
        })
}

/// Seconds to wait before delivery attempt `attempt + 1` (attempt counts from 1): the receiver's
/// `Retry-After` when it gave one (capped), else full jitter over `base · 2^(attempt−1)` capped at
/// `cap`; `unit` is a uniform random number in [0, 1).
pub fn backoff_seconds(
    attempt: u32,
    retry_after: Option<u32>,
    base: u32,
    cap: u32,
    unit: f64,
) -> u32 {
    if let Some(r) = retry_after {
        return r.min(cap).max(1);
    }
    let exp = u64::from(base.max(1)) << attempt.saturating_sub(1).min(20);
    let ceiling = exp.min(u64::from(cap.max(1))) as f64;
    // Full jitter, but never less than half the ceiling: bounded retries stay spread out.
    let s = ceiling * (0.5 + 0.5 * unit.clamp(0.0, 1.0));
    (s.round() as u32).max(1)
}

/// `Retry-After` as seconds (delta-seconds form only; an HTTP date is ignored).
pub fn parse_retry_after(value: Option<&str>) -> Option<u32> {
    value?.trim().parse::<u32>().ok()
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
            probability: f64::from(s) / 100.0,
            raw_probability: 0.0,
            score_confidence: 0.5,
            key_factors: vec![Factor {
                feature: "product_seconds".into(),
                value: 120.0,
                impact: 0.123456,
            }],
            model_version: "m".into(),
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
            thresholds: vec![50],
            debounce_ms: 1000,
        };
        let mut sent = SentState::default();
        let d = |sent: &SentState, s: u8, now| p.decide(sent, &score(s, tier(s)), 60, 32, now);
        assert_eq!(d(&sent, 5, 0), Decision::Nothing); // a new, cold, low visitor
        assert_eq!(d(&sent, 12, 0), Decision::Send(SCORE_CHANGED)); // moved by delta
        make_event(SCORE_CHANGED, &score(12, tier(12)), &mut sent, 0);
        assert_eq!(d(&sent, 20, 10), Decision::Nothing);
        assert_eq!(d(&sent, 33, 10), Decision::Later(1000)); // tier change, debounced
        assert_eq!(d(&sent, 33, 1000), Decision::Send(SCORE_CHANGED));
        let ev = make_event(SCORE_CHANGED, &score(45, tier(45)), &mut sent, 1000);
        assert_eq!(ev.data.previous_score, Some(12));
        assert_eq!(ev.data.previous_tier.as_deref(), Some("cold"));
        assert_eq!(ev.data.key_factors[0].impact, 0.1235);
        assert_eq!(d(&sent, 51, 5000), Decision::Send(SCORE_CHANGED)); // threshold 50 crossed
        assert_eq!(d(&sent, 61, 1001), Decision::Send(LEAD_HOT)); // alerts skip the debounce
        make_event(LEAD_HOT, &score(61, tier(61)), &mut sent, 1001);
        assert_eq!(d(&sent, 65, 9000), Decision::Nothing);
        assert_eq!(sent.seq, 3);
        // Identifying is news even when the score stands still; then it is not news again.
        let mut identified = score(65, tier(65));
        identified.lead_id = Some("lead@acme.com".into());
        assert_eq!(
            p.decide(&sent, &identified, 60, 32, 9000),
            Decision::Send(SCORE_CHANGED)
        );
        let ev = make_event(SCORE_CHANGED, &identified, &mut sent, 9000);
        assert_eq!(ev.data.lead_id.as_deref(), Some("lead@acme.com"));
        assert_eq!(
            p.decide(&sent, &identified, 60, 32, 20_000),
            Decision::Nothing
        );
    }

    #[test]
    fn standard_webhooks_signature() {
        // The example of the Standard Webhooks specification's reference implementations.
        let secret = Secret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
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
            Secret::parse("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap_err(),
            SecretError::Malformed
        );
        assert_eq!(
            Secret::parse("whsec_!!").unwrap_err(),
            SecretError::Malformed
        );
        assert_eq!(
            Secret::parse("whsec_YWJj").unwrap_err(),
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
    fn backoff() {
        assert_eq!(backoff_seconds(1, Some(7), 2, 300, 0.9), 7);
        assert_eq!(backoff_seconds(1, Some(9999), 2, 300, 0.9), 300);
        assert_eq!(backoff_seconds(1, None, 2, 300, 0.0), 1);
        assert_eq!(backoff_seconds(1, None, 2, 300, 0.999), 2);
        assert_eq!(backoff_seconds(4, None, 2, 300, 0.0), 8);
        assert_eq!(backoff_seconds(30, None, 2, 300, 0.999), 300);
        assert_eq!(parse_retry_after(Some(" 12 ")), Some(12));
        assert_eq!(
            parse_retry_after(Some("Wed, 21 Oct 2015 07:28:00 GMT")),
            None
        );
    }
}
