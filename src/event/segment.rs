//! Segment Spec messages (`page`, `track`, `identify`; Segment's and RudderStack's common format)
//! mapped to our events, so that a site already sending its stream to Segment or RudderStack is
//! scored without our snippet. The mapping is this module's alone; every mapped event then goes
//! through [`Event::validate`] like any other.
//!
//! - `messageId` → `id` (the de-duplication key: a message delivered twice counts once);
//! - `anonymousId` → `visitor_id`; a message with only `userId` is about a lead (its events go to
//!   the lead, as `POST /v1/leads/events` sends them);
//! - `timestamp` (ISO 8601; else `originalTimestamp`, `sentAt`, `receivedAt`) → `ts`;
//! - `page`: `context.page.url`/`path`/`referrer` (or the same `properties`) → a `page` event;
//! - `track`: `event` → a `custom` event of that name, scalar `properties` → `props`;
//! - `identify`: `userId` → `lead_id`, scalar `traits` → `traits`;
//! - `group`: `groupId` → a `group` event's `account_id`, scalar `traits` → the account's traits;
//! - `context.userAgent` → `ua`.
//!
//! Nested properties and traits (objects, arrays), `null`s and trait strings longer than
//! [`limits::MAX_TRAIT_VALUE_LEN`] are left out and counted in [`Mapped::dropped`], never cut.
//! `screen` and `alias` are refused by name ([`SegmentError::Unsupported`]).

use std::collections::BTreeMap;

use serde_json::{Map, Value as Json};

use super::{limits, Event, EventError, EventType, Value};
use crate::calendar::days_from_valid_civil;

/// What a Segment message became.
#[derive(Debug, Clone, PartialEq)]
pub struct Mapped {
    /// The event (validated).
    pub event: Event,
    /// `None`: about the visitor `event.visitor_id`; `Some(lead)`: a message with only `userId`,
    /// about that lead (its `visitor_id` is a placeholder the route replaces).
    pub lead_only: Option<String>,
    /// Properties or traits left out (nested, null, too long).
    pub dropped: u32,
    /// The message's consent, where it says (`context.consent.categoryPreferences`).
    pub consent: Option<SegmentConsent>,
}

/// Consent a message carries: Segment's consent categories (case-insensitive names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentConsent {
    /// A `crm`, `marketing` or `sales` category is granted.
    pub crm: bool,
    /// An `analytics` category is granted.
    pub analytics: bool,
}

/// Why a message was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SegmentError {
    /// A required field is missing or has the wrong type.
    #[error("segment message: {0}")]
    Field(String),
    /// A type we do not map.
    #[error("segment message type `{0}` is not supported (page, track, identify and group are)")]
    Unsupported(String),
    /// The mapped event broke a limit or a rule.
    #[error(transparent)]
    Event(#[from] EventError),
}

impl SegmentError {
    /// Stable machine-readable code.
    pub fn code(&self) -> crate::error_code::ErrorCode {
        match self {
            SegmentError::Event(e) => e.code(),
            _ => crate::error_code::ErrorCode::InvalidField,
        }
    }
}

/// A placeholder visitor for lead-only messages (never stored: the route replaces it).
pub const LEAD_ONLY_VISITOR: &str = "segment-user";

fn field(m: impl Into<String>) -> SegmentError {
    SegmentError::Field(m.into())
}

fn str_at<'a>(o: &'a Map<String, Json>, path: &[&str]) -> Option<&'a str> {
    let (last, head) = path.split_last()?;
    let mut cur = o;
    for k in head {
        cur = cur.get(*k)?.as_object()?;
    }
    cur.get(*last)?.as_str()
}

/// Reads an ISO 8601 / RFC 3339 time (`2024-01-05T10:11:12.345Z`, `…+02:00`) as ms since the epoch.
pub fn parse_iso8601(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let t = s.get(r)?;
        t.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| t.parse().ok())?
    };
    if b.len() < 19 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let days = days_from_valid_civil(
        i32::try_from(y).ok()?,
        u32::try_from(mo).ok()?,
        u32::try_from(d).ok()?,
    )?;
    let mut i = 19;
    let mut ms = 0i64;
    if b.get(i) == Some(&b'.') {
        let start = i + 1;
        i = start;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        let frac = s.get(start..i)?;
        if frac.is_empty() {
            return None;
        }
        let padded = format!("{:0<3}", &frac[..frac.len().min(3)]);
        ms = padded.parse().ok()?;
    }
    let offset_min = match s.get(i..)? {
        "Z" | "z" => 0,
        tz if tz.len() == 6 && matches!(&tz[..1], "+" | "-") && &tz[3..4] == ":" => {
            let oh = num(i + 1..i + 3)?;
            let om = num(i + 4..i + 6)?;
            let sign = if &tz[..1] == "-" { -1 } else { 1 };
            sign * (oh * 60 + om)
        }
        _ => return None,
    };
    Some(((days * 86_400 + h * 3600 + mi * 60 + sec.min(59)) - offset_min * 60) * 1000 + ms)
}

/// Scalars of a properties/traits object; the rest counted in `dropped`. `max_str`: longer
/// strings are left out too (traits), else cut by nothing (the event's own limit refuses them).
fn scalars(o: Option<&Json>, max_str: Option<usize>, dropped: &mut u32) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    let Some(Json::Object(m)) = o else {
        return out;
    };
    for (k, v) in m {
        let kept = match v {
            Json::Bool(b) => Some(Value::Bool(*b)),
            Json::Number(n) => n.as_f64().map(Value::Num),
            Json::String(s) if max_str.is_none_or(|m| s.len() <= m) => Some(Value::Str(s.clone())),
            _ => None,
        };
        match kept {
            Some(v) if out.len() < limits::MAX_MAP_ENTRIES && k.len() <= limits::MAX_KEY_LEN => {
                out.insert(k.clone(), v);
            }
            _ => *dropped += 1,
        }
    }
    out
}

fn consent(o: &Map<String, Json>) -> Option<SegmentConsent> {
    let prefs = o
        .get("context")?
        .get("consent")?
        .get("categoryPreferences")?
        .as_object()?;
    let granted = |names: &[&str]| {
        prefs.iter().any(|(k, v)| {
            v.as_bool() == Some(true) && names.iter().any(|n| k.eq_ignore_ascii_case(n))
        })
    };
    Some(SegmentConsent {
        crm: granted(&["crm", "marketing", "sales"]),
        analytics: granted(&["analytics"]),
    })
}

/// Maps one Segment message (a JSON object) to an event.
pub fn map(msg: &Json) -> Result<Mapped, SegmentError> {
    let o = msg.as_object().ok_or_else(|| field("not a JSON object"))?;
    let kind = o
        .get("type")
        .and_then(Json::as_str)
        .ok_or_else(|| field("`type` is required"))?;
    let id = o
        .get("messageId")
        .and_then(Json::as_str)
        .ok_or_else(|| field("`messageId` is required (it de-duplicates)"))?;
    let anon = o
        .get("anonymousId")
        .and_then(Json::as_str)
        .filter(|s| !s.is_empty());
    let user = o
        .get("userId")
        .and_then(Json::as_str)
        .filter(|s| !s.is_empty());
    let ts_text = ["timestamp", "originalTimestamp", "sentAt", "receivedAt"]
        .iter()
        .find_map(|k| o.get(*k).and_then(Json::as_str))
        .ok_or_else(|| field("`timestamp` is required"))?;
    let ts = parse_iso8601(ts_text)
        .ok_or_else(|| field(format!("`timestamp` {ts_text:?} is not an ISO 8601 time")))?;
    let (visitor, lead_only) = match (anon, user) {
        (Some(a), _) => (a.to_string(), None),
        (None, Some(u)) => (LEAD_ONLY_VISITOR.to_string(), Some(u.to_string())),
        (None, None) => return Err(field("`anonymousId` or `userId` is required")),
    };
    let mut dropped = 0;
    let mut event = Event {
        id: id.to_string(),
        kind: EventType::Custom,
        ts,
        visitor_id: visitor,
        url: None,
        path: None,
        referrer: None,
        ua: str_at(o, &["context", "userAgent"]).map(String::from),
        tz_offset: None,
        engaged_ms: None,
        name: None,
        lead_id: None,
        lead_signature: None,
        account_id: None,
        account_signature: None,
        props: BTreeMap::new(),
        traits: BTreeMap::new(),
    };
    match kind {
        "page" => {
            event.kind = EventType::Page;
            let pick = |k: &str| {
                str_at(o, &["properties", k])
                    .or_else(|| str_at(o, &["context", "page", k]))
                    .map(String::from)
            };
            event.url = pick("url");
            event.path = pick("path");
            event.referrer = pick("referrer").filter(|r| !r.is_empty());
            if event.url.is_none() && event.path.is_none() {
                return Err(field(
                    "a page needs `context.page.url`, `path` or the same in `properties`",
                ));
            }
        }
        "track" => {
            let name = o
                .get("event")
                .and_then(Json::as_str)
                .ok_or_else(|| field("a track needs `event`"))?;
            event.name = Some(name.to_string());
            event.props = scalars(o.get("properties"), None, &mut dropped);
        }
        "identify" => {
            event.kind = EventType::Identify;
            event.lead_id = user.map(String::from);
            event.traits = scalars(
                o.get("traits")
                    .or_else(|| o.get("context").and_then(|c| c.get("traits"))),
                Some(limits::MAX_TRAIT_VALUE_LEN),
                &mut dropped,
            );
            if event.lead_id.is_none() && event.traits.is_empty() {
                return Err(field("an identify needs `userId` or scalar `traits`"));
            }
        }
        "group" => {
            event.kind = EventType::Group;
            let group = o
                .get("groupId")
                .and_then(Json::as_str)
                .ok_or_else(|| field("a group needs `groupId`"))?;
            event.account_id = Some(group.to_string());
            event.traits = scalars(
                o.get("traits"),
                Some(limits::MAX_TRAIT_VALUE_LEN),
                &mut dropped,
            );
        }
        other => return Err(SegmentError::Unsupported(other.to_string())),
    }
    event.validate()?;
    Ok(Mapped {
        event,
        lead_only,
        dropped,
        consent: consent(o),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_iso8601_times() {
        assert_eq!(parse_iso8601("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_iso8601("2015-12-12T19:11:01.249Z"),
            Some(1_449_947_461_249)
        );
        assert_eq!(
            parse_iso8601("2015-12-12T21:11:01.249+02:00"),
            Some(1_449_947_461_249)
        );
        assert_eq!(
            parse_iso8601("2015-12-12T19:11:01.2Z"),
            Some(1_449_947_461_200)
        );
        assert_eq!(
            parse_iso8601("2015-12-12T19:11:01.123456Z"),
            Some(1_449_947_461_123)
        );
        for bad in [
            "2015-13-12T19:11:01Z",
            "2015-02-30T00:00:00Z",
            "2015-12-12",
            "yesterday",
            "2015-12-12T19:11:01",
            "2015-12-12T25:00:00Z",
            "2015-12-12T19:11:01.Z",
        ] {
            assert_eq!(parse_iso8601(bad), None, "{bad}");
        }
    }

    /// Segment's own spec examples (the Track, Page and Identify pages), as sent.
    #[test]
    fn maps_the_spec_examples() {
        let track = json!({
          "anonymousId": "23adfd82-aa0f-45a7-a756-24f2a7a4c895", "context": {"library": {"name": "analytics.js", "version": "2.11.1"},
          "page": {"path": "/academy/", "referrer": "", "search": "", "title": "Analytics Academy", "url": "https://segment.com/academy/"},
          "userAgent": "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_12_2) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/56.0.2924.87 Safari/537.36", "ip": "108.0.78.21"},
          "event": "Course Clicked", "integrations": {}, "messageId": "ajs-f8ca1e4de5024d9430b3928bd8ac6b96",
          "properties": {"title": "Intro to Analytics"}, "receivedAt": "2015-12-12T19:11:01.266Z",
          "sentAt": "2015-12-12T19:11:01.169Z", "timestamp": "2015-12-12T19:11:01.249Z", "type": "track",
          "userId": "AiUGstSDIg", "originalTimestamp": "2015-12-12T19:11:01.152Z"
        });
        let m = map(&track).unwrap();
        assert_eq!(m.event.kind, EventType::Custom);
        assert_eq!(m.event.name.as_deref(), Some("Course Clicked"));
        assert_eq!(m.event.visitor_id, "23adfd82-aa0f-45a7-a756-24f2a7a4c895");
        assert_eq!(m.event.ts, 1_449_947_461_249);
        assert_eq!(m.event.id, "ajs-f8ca1e4de5024d9430b3928bd8ac6b96");
        assert_eq!(
            m.event.props.get("title"),
            Some(&Value::Str("Intro to Analytics".into()))
        );
        assert!(m.event.ua.as_deref().unwrap().contains("Chrome/56"));
        assert_eq!((m.lead_only, m.dropped), (None, 0));

        let page = json!({
          "anonymousId": "507f191e810c19729de860ea", "channel": "browser",
          "context": {"ip": "8.8.8.8", "userAgent": "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_9_5) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/40.0.2214.115 Safari/537.36"},
          "integrations": {"All": true, "Mixpanel": false, "Salesforce": false}, "messageId": "022bb90c-bbac-11e4-8dfc-aa07a5b093db",
          "name": "Home", "properties": {"title": "Welcome | Initech", "url": "http://www.example.com"},
          "receivedAt": "2015-02-23T22:28:55.387Z", "sentAt": "2015-02-23T22:28:55.111Z",
          "timestamp": "2015-02-23T22:28:55.111Z", "type": "page", "userId": "97980cfea0067", "version": "1.1"
        });
        let m = map(&page).unwrap();
        assert_eq!(m.event.kind, EventType::Page);
        assert_eq!(m.event.page_path(), Some("/"));
        assert_eq!(m.event.url.as_deref(), Some("http://www.example.com"));

        let identify = json!({
          "anonymousId": "507f191e810c19729de860ea", "channel": "browser", "context": {"ip": "8.8.8.8",
          "userAgent": "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_9_5) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/40.0.2214.115 Safari/537.36"},
          "integrations": {"All": false, "Mixpanel": true, "Salesforce": true}, "messageId": "022bb90c-bbac-11e4-8dfc-aa07a5b093db",
          "receivedAt": "2015-02-23T22:28:55.387Z", "sentAt": "2015-02-23T22:28:55.111Z", "timestamp": "2015-02-23T22:28:55.111Z",
          "traits": {"name": "Peter Gibbons", "email": "peter@example.com", "plan": "premium", "logins": 5,
                     "address": {"street": "6th St", "city": "San Francisco", "state": "CA", "postalCode": "94103", "country": "USA"}},
          "type": "identify", "userId": "97980cfea0067", "version": "1.1"
        });
        let m = map(&identify).unwrap();
        assert_eq!(m.event.kind, EventType::Identify);
        assert_eq!(m.event.lead_id.as_deref(), Some("97980cfea0067"));
        assert_eq!(m.event.traits.len(), 4);
        assert_eq!(m.dropped, 1, "the nested address is left out and counted");
    }

    #[test]
    fn refuses_what_it_cannot_map() {
        let base =
            json!({"messageId": "m1", "anonymousId": "a1", "timestamp": "2024-01-05T10:00:00Z"});
        let with = |extra: Json| {
            let mut o = base.clone();
            for (k, v) in extra.as_object().unwrap() {
                o[k] = v.clone();
            }
            o
        };
        assert!(
            matches!(map(&with(json!({"type": "screen", "name": "Home"}))), Err(SegmentError::Unsupported(t)) if t == "screen")
        );
        // Segment's Group spec example.
        let g = map(&with(json!({"type": "group", "groupId": "0e8c78ea9d97a7b8185e8632",
            "traits": {"name": "Initech", "industry": "Technology", "employees": 329, "plan": "enterprise", "total billed": 830}})))
        .unwrap();
        assert_eq!(g.event.kind, EventType::Group);
        assert_eq!(
            g.event.account_id.as_deref(),
            Some("0e8c78ea9d97a7b8185e8632")
        );
        assert_eq!(g.event.traits.len(), 5);
        assert!(map(&with(json!({"type": "group"})))
            .unwrap_err()
            .to_string()
            .contains("groupId"));
        assert!(map(&with(json!({"type": "track"})))
            .unwrap_err()
            .to_string()
            .contains("event"));
        assert!(map(&with(json!({"type": "page"})))
            .unwrap_err()
            .to_string()
            .contains("page"));
        assert!(map(&with(
            json!({"type": "track", "event": "x", "timestamp": "soon"})
        ))
        .unwrap_err()
        .to_string()
        .contains("ISO 8601"));
        assert!(map(&json!({"type": "track", "event": "x", "anonymousId": "a", "timestamp": "2024-01-05T10:00:00Z"})).unwrap_err().to_string().contains("messageId"));
        assert!(map(&json!({"type": "track", "event": "x", "messageId": "m", "timestamp": "2024-01-05T10:00:00Z"})).unwrap_err().to_string().contains("userId"));
        let long = "x".repeat(limits::MAX_ID_LEN + 1);
        assert!(matches!(
            map(&with(json!({"type": "track", "event": long}))),
            Err(SegmentError::Event(_))
        ));
        // Only a userId: about the lead.
        let m = map(&json!({"type": "track", "event": "Demo Booked", "messageId": "m", "userId": "lead-7", "timestamp": "2024-01-05T10:00:00Z"})).unwrap();
        assert_eq!(m.lead_only.as_deref(), Some("lead-7"));
        // Consent categories, when the message says.
        let c = map(&with(json!({"type": "track", "event": "x", "context": {"consent": {"categoryPreferences": {"Analytics": true, "Marketing": false}}}}))).unwrap();
        assert_eq!(
            c.consent,
            Some(SegmentConsent {
                crm: false,
                analytics: true
            })
        );
    }
}
