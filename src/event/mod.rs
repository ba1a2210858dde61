//! Events: what the snippet (or any source) reports about a visitor, parsed with hard limits.
//!
//! The JSON Schema of an event is `www/event.schema.json`; this module is the authority it documents.
//! Limits keep one visitor's traffic from costing unbounded memory anywhere it is parsed: the browser,
//! the worker (per request) and the CLI (per line).

pub mod channel;
pub mod limits;
pub mod schema;
pub mod segment;
pub mod useragent;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error_code::ErrorCode;

/// What happened. Unknown types are rejected rather than ignored so a typo is not silently dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventType {
    /// A page view (also SPA route changes).
    Page,
    /// Engaged-time heartbeat while the page is visible; carries `engaged_ms`.
    Engaged,
    /// The page view ended (hidden, unloaded, navigated); carries the last `engaged_ms`.
    PageEnd,
    /// Scroll depth reached; `props.depth` in percent.
    Scroll,
    /// A click on a marked call to action; `props.cta` names it.
    Click,
    /// The visitor started filling a form; `props.form` names it. Never field values.
    FormStart,
    /// The visitor submitted a form; `props.form` names it.
    FormSubmit,
    /// The visitor identified: `lead_id` and/or `traits`.
    Identify,
    /// The visitor (or lead) works for an account: `account_id` and the account's `traits`.
    Group,
    /// Anything else the site wants to record; `name` says what.
    Custom,
}

/// A value in `props` or `traits`: small scalars only, so state stays bounded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Value {
    /// true/false.
    Bool(bool),
    /// Any JSON number.
    Num(f64),
    /// A string of at most [`limits::MAX_VALUE_LEN`] bytes.
    Str(String),
}

impl Value {
    /// The value as a number, if it is one (or a numeric string).
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Num(n) => Some(*n),
            Value::Bool(b) => Some(f64::from(u8::from(*b))),
            Value::Str(s) => s.trim().parse().ok(),
        }
    }

    /// The value as a string slice, if it is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }
}

/// One event, version 1. See the README's "Event format".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Event {
    /// Client-made unique id: the idempotency key.
    pub id: String,
    /// Event type.
    #[serde(rename = "type")]
    pub kind: EventType,
    /// Client time, ms since the Unix epoch.
    pub ts: i64,
    /// Pseudonymous first-party visitor id.
    pub visitor_id: String,
    /// Full page URL (query string included, for UTM parameters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// URL path; derived from `url` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Document referrer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub referrer: Option<String>,
    /// User agent (browser-supplied, or filled in by the worker from the request).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ua: Option<String>,
    /// Client's local offset from UTC in minutes (east positive), for weekend and hour features.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tz_offset: Option<i32>,
    /// Engaged milliseconds since the previous `engaged`/`page_end` of this page view.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engaged_ms: Option<f64>,
    /// Custom event name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Lead id given by `identify`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lead_id: Option<String>,
    /// The site backend's signature of `lead_id` (see [`crate::identity`]): only the worker can
    /// check it; without it an identify is a claim.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lead_signature: Option<String>,
    /// The account a `group` event joins.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_id: Option<String>,
    /// The site backend's signature of `account:` + `account_id` ([`crate::account::SIGNED_PREFIX`]):
    /// a page's group needs it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_signature: Option<String>,
    /// Small map of event properties (`depth`, `cta`, `form`, `id_persistent`, …).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub props: BTreeMap<String, Value>,
    /// Identify traits (the lead's) or group traits (the account's); only on those.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub traits: BTreeMap<String, Value>,
}

/// Why an event was refused. Codes are stable strings for HTTP error bodies.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EventError {
    /// Not JSON at all.
    #[error("invalid event JSON: {0}")]
    Json(String),
    /// Valid JSON that is not an event: unknown type or field, a value of the wrong type.
    #[error("invalid event: {0}")]
    Schema(String),
    /// The event text is larger than [`limits::MAX_EVENT_BYTES`].
    #[error("event is {0} bytes, more than the limit of {max}", max = limits::MAX_EVENT_BYTES)]
    TooLarge(usize),
    /// A field breaks a limit or a rule.
    #[error("field `{field}`: {message}")]
    Field {
        /// Offending field.
        field: &'static str,
        /// What is wrong.
        message: String,
    },
}

impl EventError {
    /// Stable machine-readable code.
    pub fn code(&self) -> ErrorCode {
        match self {
            EventError::Json(_) => ErrorCode::InvalidJson,
            EventError::Schema(_) => ErrorCode::InvalidField,
            EventError::TooLarge(_) => ErrorCode::EventTooLarge,
            EventError::Field { .. } => ErrorCode::InvalidField,
        }
    }

    fn field(field: &'static str, message: impl Into<String>) -> Self {
        EventError::Field {
            field,
            message: message.into(),
        }
    }
}

impl Event {
    /// Parses and validates one event from JSON text.
    pub fn parse(text: &str) -> Result<Event, EventError> {
        if text.len() > limits::MAX_EVENT_BYTES {
            return Err(EventError::TooLarge(text.len()));
        }
        let event: Event = serde_json::from_str(text).map_err(|e| {
            if e.is_data() {
                EventError::Schema(e.to_string())
            } else {
                EventError::Json(e.to_string())
            }
        })?;
        event.validate()?;
        Ok(event)
    }

    /// Checks every limit and rule; [`Event::parse`] calls it, and so must anyone building events by hand.
    pub fn validate(&self) -> Result<(), EventError> {
        use limits::*;
        check_id("id", &self.id)?;
        // Any id-like visitor: the reserved namespace is refused where a page speaks
        // ([`check_visitor_id`] at the browser's routes), not here, because a lead's own stream
        // ([`lead_stream`]) lives in it and its events are read back from the logs.
        check_id("visitor_id", &self.visitor_id)?;
        if !(MIN_TS..=MAX_TS).contains(&self.ts) {
            return Err(EventError::field(
                "ts",
                "must be ms since the Unix epoch, between 2000 and 2100",
            ));
        }
        check_len("url", self.url.as_deref(), MAX_URL_LEN)?;
        check_len("referrer", self.referrer.as_deref(), MAX_URL_LEN)?;
        check_len("path", self.path.as_deref(), MAX_PATH_LEN)?;
        check_len("ua", self.ua.as_deref(), MAX_UA_LEN)?;
        if let Some(p) = &self.path {
            if !p.starts_with('/') {
                return Err(EventError::field("path", "must start with '/'"));
            }
        }
        if let Some(tz) = self.tz_offset {
            if !(-MAX_TZ_OFFSET..=MAX_TZ_OFFSET).contains(&tz) {
                return Err(EventError::field(
                    "tz_offset",
                    "must be within ±840 minutes",
                ));
            }
        }
        if let Some(ms) = self.engaged_ms {
            if !(0.0..=MAX_ENGAGED_MS).contains(&ms) {
                return Err(EventError::field(
                    "engaged_ms",
                    "must be a number from 0 to 86400000",
                ));
            }
        }
        if let Some(name) = &self.name {
            check_id("name", name)?;
        }
        if let Some(lead) = &self.lead_id {
            check_id("lead_id", lead)?;
            check_len("lead_id", Some(lead), MAX_LEAD_ID_LEN)?;
        }
        if let Some(sig) = &self.lead_signature {
            if self.lead_id.is_none() {
                return Err(EventError::field(
                    "lead_signature",
                    "signs a `lead_id`, and there is none",
                ));
            }
            if !crate::identity::is_signature_shaped(sig) {
                return Err(EventError::field(
                    "lead_signature",
                    "must be 64 hex digits (HMAC-SHA256 of the lead id)",
                ));
            }
        }
        if let Some(a) = &self.account_id {
            check_id("account_id", a)?;
            check_len("account_id", Some(a), MAX_LEAD_ID_LEN)?;
        }
        if let Some(sig) = &self.account_signature {
            if self.account_id.is_none() {
                return Err(EventError::field(
                    "account_signature",
                    "signs an `account_id`, and there is none",
                ));
            }
            if !crate::identity::is_signature_shaped(sig) {
                return Err(EventError::field(
                    "account_signature",
                    "must be 64 hex digits (HMAC-SHA256 of `account:` + the account id)",
                ));
            }
        }
        if self.kind != EventType::Group && self.account_id.is_some() {
            return Err(EventError::field(
                "account_id",
                "only group events name an account",
            ));
        }
        check_map("props", &self.props, MAX_VALUE_LEN)?;
        check_map("traits", &self.traits, MAX_TRAIT_VALUE_LEN)?;
        match self.kind {
            EventType::Page if self.path.is_none() && self.url.is_none() => Err(EventError::field(
                "path",
                "a page event needs `path` or `url`",
            )),
            EventType::Custom if self.name.is_none() => {
                Err(EventError::field("name", "a custom event needs a `name`"))
            }
            EventType::Identify if self.lead_id.is_none() && self.traits.is_empty() => Err(
                EventError::field("traits", "identify needs `lead_id` or `traits`"),
            ),
            EventType::Group if self.account_id.is_none() => Err(EventError::field(
                "account_id",
                "a group event needs `account_id`",
            )),
            kind if !matches!(kind, EventType::Identify | EventType::Group)
                && !self.traits.is_empty() =>
            {
                Err(EventError::field(
                    "traits",
                    "only identify and group events carry traits",
                ))
            }
            _ => Ok(()),
        }
    }

    /// The page path: `path`, else the path part of `url`; query and fragment removed.
    pub fn page_path(&self) -> Option<&str> {
        let raw = match (&self.path, &self.url) {
            (Some(p), _) => p.as_str(),
            (None, Some(u)) => url_path(u),
            (None, None) => return None,
        };
        Some(raw.split(['?', '#']).next().unwrap_or(raw))
    }

    /// A property by name.
    pub fn prop(&self, key: &str) -> Option<&Value> {
        self.props.get(key)
    }
}

/// Path part of an absolute or relative URL ("/" when the URL has none).
pub fn url_path(url: &str) -> &str {
    let after_scheme = match url.find("://") {
        Some(i) => &url[i + 3..],
        None => return url,
    };
    match after_scheme.find(['/', '?', '#']) {
        Some(i) if after_scheme[i..].starts_with('/') => &after_scheme[i..],
        _ => "/",
    }
}

/// Host of an absolute URL, lowercased by the caller if needed; `None` for relative or empty URLs.
///
/// Hand-written on purpose, like [`query_param`]: channel rules need only the host and one query
/// parameter, and the `url` crate (with its IDNA tables) would be linked into every wasm build for
/// that. Both are exercised by the event and channel tests.
pub fn url_host(url: &str) -> Option<&str> {
    let rest = &url[url.find("://")? + 3..];
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let host = &rest[..end];
    let host = host.rsplit('@').next().unwrap_or(host);
    let host = match host.rfind(':') {
        Some(i) if !host.ends_with(']') => &host[..i],
        _ => host,
    };
    (!host.is_empty()).then_some(host)
}

/// A query parameter of a URL (first occurrence; `+` and `%XX` not decoded beyond what UTM values need).
pub fn query_param<'a>(url: &'a str, key: &str) -> Option<&'a str> {
    let q = url.split('#').next()?.split_once('?')?.1;
    q.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == key).then_some(v)
    })
}

/// Checks an id-like field (non-empty, ≤ [`limits::MAX_ID_LEN`] bytes, no control characters).
pub fn check_id(field: &'static str, s: &str) -> Result<(), EventError> {
    if s.is_empty() {
        return Err(EventError::field(field, "must not be empty"));
    }
    if s.len() > limits::MAX_ID_LEN {
        return Err(EventError::field(
            field,
            format!("is {} bytes, more than {}", s.len(), limits::MAX_ID_LEN),
        ));
    }
    if s.chars().any(char::is_control) {
        return Err(EventError::field(
            field,
            "must not contain control characters",
        ));
    }
    Ok(())
}

/// Prefix of the ids only the server writes: a lead's own stream ([`lead_stream`]). No page may
/// use a visitor id that starts with it ([`check_visitor_id`]), so that a browser can never write
/// into a lead's stream nor be taken for a lead.
pub const RESERVED_VISITOR_PREFIX: &str = "lead:";

/// The visitor id of a lead's own event stream: where the CRM's and marketing tools' events about
/// the lead (`POST /v1/leads/events`) are applied while the lead has no consented web visitor.
pub fn lead_stream(lead: &str) -> String {
    format!("{RESERVED_VISITOR_PREFIX}{lead}")
}

/// Checks a visitor id: an id-like field outside the reserved namespace.
pub fn check_visitor_id(s: &str) -> Result<(), EventError> {
    check_id("visitor_id", s)?;
    if s.starts_with(RESERVED_VISITOR_PREFIX) {
        return Err(EventError::field(
            "visitor_id",
            format!("must not start with `{RESERVED_VISITOR_PREFIX}` (reserved for leads)"),
        ));
    }
    Ok(())
}

fn check_len(field: &'static str, s: Option<&str>, max: usize) -> Result<(), EventError> {
    match s {
        Some(s) if s.len() > max => Err(EventError::field(
            field,
            format!("is {} bytes, more than {max}", s.len()),
        )),
        _ => Ok(()),
    }
}

fn check_map(
    field: &'static str,
    map: &BTreeMap<String, Value>,
    max_value_len: usize,
) -> Result<(), EventError> {
    use limits::*;
    if map.len() > MAX_MAP_ENTRIES {
        return Err(EventError::field(
            field,
            format!("has {} entries, more than {MAX_MAP_ENTRIES}", map.len()),
        ));
    }
    for (k, v) in map {
        if k.is_empty() || k.len() > MAX_KEY_LEN {
            return Err(EventError::field(
                field,
                format!("key {k:?} must be 1 to {MAX_KEY_LEN} bytes"),
            ));
        }
        match v {
            Value::Str(s) if s.len() > max_value_len => {
                return Err(EventError::field(
                    field,
                    format!("value of {k:?} is more than {max_value_len} bytes"),
                ))
            }
            Value::Num(n) if !n.is_finite() => {
                return Err(EventError::field(
                    field,
                    format!("value of {k:?} must be finite"),
                ))
            }
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: &str = r#"{"id":"e1","type":"page","ts":1700000000000,"visitor_id":"v1","url":"https://a.example/pricing?utm_medium=cpc#top"}"#;

    #[test]
    fn parses_a_page_event_and_derives_its_path() {
        let e = Event::parse(PAGE).unwrap();
        assert_eq!(e.kind, EventType::Page);
        assert_eq!(e.page_path(), Some("/pricing"));
        assert_eq!(
            query_param(e.url.as_deref().unwrap(), "utm_medium"),
            Some("cpc")
        );
        assert_eq!(url_host("https://u:p@Www.X.com:8080/a"), Some("Www.X.com"));
        assert_eq!(url_path("https://x.com?q=1"), "/");
    }

    #[test]
    fn rejects_what_breaks_a_limit() {
        let cases = [
            (
                r#"{"id":"","type":"page","ts":1700000000000,"visitor_id":"v","path":"/"}"#,
                "id",
            ),
            (
                r#"{"id":"a","type":"page","ts":5,"visitor_id":"v","path":"/"}"#,
                "ts",
            ),
            (
                r#"{"id":"a","type":"page","ts":1700000000000,"visitor_id":"v"}"#,
                "path",
            ),
            (
                r#"{"id":"a","type":"page","ts":1700000000000,"visitor_id":"v","path":"x"}"#,
                "path",
            ),
            (
                r#"{"id":"a","type":"page_end","ts":1700000000000,"visitor_id":"v","engaged_ms":-1}"#,
                "engaged_ms",
            ),
            (
                r#"{"id":"a","type":"custom","ts":1700000000000,"visitor_id":"v"}"#,
                "name",
            ),
            (
                r#"{"id":"a","type":"page","ts":1700000000000,"visitor_id":"v","path":"/","traits":{"a":1}}"#,
                "traits",
            ),
            (
                r#"{"id":"a","type":"page","ts":1700000000000,"visitor_id":"v","path":"/","tz_offset":900}"#,
                "tz_offset",
            ),
            (
                r#"{"id":"a","type":"page","ts":1700000000000,"visitor_id":"v","path":"/","tz_offset":-2147483648}"#,
                "tz_offset",
            ),
        ];
        for (text, field) in cases {
            match Event::parse(text) {
                Err(EventError::Field { field: f, .. }) => assert_eq!(f, field, "{text}"),
                other => panic!("{text}: {other:?}"),
            }
        }
        let long = format!(
            r#"{{"id":"a","type":"page","ts":1700000000000,"visitor_id":"{}","path":"/"}}"#,
            "v".repeat(limits::MAX_ID_LEN + 1)
        );
        assert!(matches!(
            Event::parse(&long),
            Err(EventError::Field {
                field: "visitor_id",
                ..
            })
        ));
        let big = " ".repeat(limits::MAX_EVENT_BYTES + 1);
        assert_eq!(
            Event::parse(&big).unwrap_err().code(),
            ErrorCode::EventTooLarge
        );
        let many: Vec<String> = (0..=limits::MAX_MAP_ENTRIES)
            .map(|i| format!("\"k{i}\":1"))
            .collect();
        let text = format!(
            r#"{{"id":"a","type":"click","ts":1700000000000,"visitor_id":"v","props":{{{}}}}}"#,
            many.join(",")
        );
        assert!(matches!(
            Event::parse(&text),
            Err(EventError::Field { field: "props", .. })
        ));
    }

    #[test]
    fn reserves_the_lead_namespace_and_checks_signatures() {
        let stream = lead_stream("x@acme.example");
        let t = format!(
            r#"{{"id":"a","type":"page","ts":1700000000000,"visitor_id":"{stream}","path":"/"}}"#
        );
        // A lead's stream is an event's visitor (server-side, read back from logs); no page may
        // name it.
        assert_eq!(Event::parse(&t).unwrap().visitor_id, stream);
        let e = check_visitor_id(&stream).unwrap_err();
        assert!(e.to_string().contains("reserved"), "{e}");
        let sig = "a".repeat(64);
        let ok = format!(
            r#"{{"id":"a","type":"identify","ts":1700000000000,"visitor_id":"v","lead_id":"l@x","lead_signature":"{sig}"}}"#
        );
        assert_eq!(
            Event::parse(&ok).unwrap().lead_signature.as_deref(),
            Some(sig.as_str())
        );
        for bad in [
            r#"{"id":"a","type":"identify","ts":1700000000000,"visitor_id":"v","lead_id":"l@x","lead_signature":"abc"}"#,
            r#"{"id":"a","type":"identify","ts":1700000000000,"visitor_id":"v","traits":{"k":1},"lead_signature":"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"}"#,
        ] {
            let e = Event::parse(bad).unwrap_err();
            assert!(e.to_string().contains("lead_signature"), "{e}");
        }
    }

    /// Map keys are limited in UTF-8 bytes (the tracker measures them the same way): 32 "é" are
    /// 64 bytes and pass, 33 do not, though both are fewer than 64 UTF-16 units.
    #[test]
    fn map_keys_are_measured_in_utf8_bytes() {
        let ev = |k: &str| {
            format!(
                r#"{{"id":"a","type":"click","ts":1700000000000,"visitor_id":"v","props":{{"{k}":1}}}}"#
            )
        };
        assert!(Event::parse(&ev(&"é".repeat(32))).is_ok());
        assert!(Event::parse(&ev(&"é".repeat(33))).is_err());
        assert!(Event::parse(&ev(&"é".repeat(40))).is_err());
    }

    #[test]
    fn rejects_unknown_types_and_fields() {
        let t = r#"{"id":"a","type":"pageview","ts":1700000000000,"visitor_id":"v","path":"/"}"#;
        assert_eq!(Event::parse(t).unwrap_err().code(), ErrorCode::InvalidField);
        let f = r#"{"id":"a","type":"page","ts":1700000000000,"visitor_id":"v","path":"/","x":1}"#;
        assert_eq!(Event::parse(f).unwrap_err().code(), ErrorCode::InvalidField);
        let ts = r#"{"id":"a","type":"page","ts":"yesterday","visitor_id":"v","path":"/"}"#;
        assert_eq!(
            Event::parse(ts).unwrap_err().code(),
            ErrorCode::InvalidField
        );
        assert_eq!(
            Event::parse("[1,2]").unwrap_err().code(),
            ErrorCode::InvalidField
        );
        assert_eq!(
            Event::parse("{\"id\":").unwrap_err().code(),
            ErrorCode::InvalidJson
        );
        assert_eq!(
            Event::parse("not json").unwrap_err().code(),
            ErrorCode::InvalidJson
        );
    }
}
