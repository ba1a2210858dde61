//! HubSpot's own webhook format, verified and translated into outcomes: what `POST
//! /v1/outcomes/hubspot` needs from the core. Pure: no I/O, no clock (the caller passes `now_ms`).
//!
//! The route does, in order:
//!
//! 1. [`verify_signature_v3`] with the app's [`ClientSecret`], the request's method, full URI
//!    (`https://host/path?query`, as HubSpot called it), raw body bytes and the two headers
//!    [`SIGNATURE_HEADER`] and [`TIMESTAMP_HEADER`]. Read the body up to [`MAX_HUBSPOT_BODY_BYTES`] (not
//!    the events route's limit).
//! 2. [`parse_events`]: the body as typed [`HubspotEvent`]s. Subscription types this module does
//!    not use are kept as [`EventKind::Ignored`] (count them with [`HubspotEvent::is_ignored`]):
//!    HubSpot sends whatever the app subscribed to, and refusing the batch would make it retry.
//! 3. For each event, [`to_outcome`] with the deployment's [`StageMap`] (a property change of a
//!    contact or deal into an [`OutcomeType`]), and [`EventKind::DealContact`] to keep the deal →
//!    contact links: a deal's outcome is about the contacts associated with it. Resolving a contact
//!    to a lead id (a stored link or HubSpot's CRM API) is the caller's; then
//!    [`HubspotOutcome::for_lead`] (a contact's outcome) or [`HubspotOutcome::for_deal_contact`]
//!    (a deal's, once per associated contact) makes the [`Outcome`].
//!
//! # Signature v3
//!
//! Followed: HubSpot, "Validating requests" (developers.hubspot.com/docs/apps/legacy-apps/
//! authentication/validating-requests, section "Validate the v3 request signature", and its
//! developer-platform twin …/build-apps/authentication/request-validation); test vectors from
//! HubSpot's SDKs: `tests/spec/utils/test_signature.py` in HubSpot/hubspot-api-python (commit
//! a2a528a) and `spec/helpers/signature_spec.rb` in HubSpot/hubspot-api-ruby; the Node SDK's
//! `src/utils/signature.ts` (HubSpot/hubspot-api-nodejs) computes the same string.
//!
//! * signed string: `method + uri + body + timestamp`, the timestamp being the
//!   `X-HubSpot-Request-Timestamp` header's text (ms since the epoch); the signature is
//!   base64(HMAC-SHA256(key = the app's client secret, that string)), compared in constant time;
//! * in the URI, exactly these escapes are decoded before signing (HubSpot's table; hex digits in
//!   either case, one pass, anything else — `%20`, `%25`, … — left as sent):
//!   `%3A :` `%2F /` `%3F ?` `%40 @` `%21 !` `%24 $` `%27 '` `%28 (` `%29 )` `%2A *` `%2C ,`
//!   `%3B ;` ([`decode_uri_for_v3`]). The SDKs do no decoding (their tests use plain URIs);
//!   third-party verifiers quoting the documentation use this table.
//! * freshness: HubSpot says to reject a timestamp older than 5 minutes. This module also
//!   rejects one more than 5 minutes in the future ([`MAX_SKEW_MS`] either way): HubSpot never
//!   sends one, and an unbounded future side would let a request signed by a sender whose clock
//!   runs ahead be replayed for as long as it is ahead; ±5 minutes still tolerates clock skew
//!   in both directions. A request exactly 5 minutes old passes ("older than" is strict).
//!
//! Older signatures (`X-HubSpot-Signature` v1/v2: SHA-256 of secret + …, no timestamp, so
//! replayable forever) are not checked: every request also carries v3.
//!
//! # Payload
//!
//! A JSON array of at most [`MAX_EVENTS`] events (HubSpot's documented batch limit), shaped as
//! HubSpot's webhooks documentation shows (developers.hubspot.com/docs/api/webhooks, "Example
//! payload" and the association-change fields of the changelog "New subscription types for
//! webhooks"): `eventId`, `subscriptionId`, `portalId`, `appId`, `occurredAt`, `subscriptionType`,
//! `attemptNumber`, `objectId`, `changeSource`, and per type `propertyName` / `propertyValue`
//! (property changes) or `associationType`, `fromObjectId`, `toObjectId`, `associationRemoved`,
//! `isPrimaryAssociation` (association changes). Unknown fields are allowed (HubSpot adds
//! some: `sourceId`, `changeFlag`, …). Used:
//!
//! | `subscriptionType` | becomes |
//! |---|---|
//! | `contact.propertyChange`, `deal.propertyChange` | [`EventKind::PropertyChange`] |
//! | `object.propertyChange` (generic webhooks) with `objectTypeId` `0-1` (contact) / `0-3` (deal) | [`EventKind::PropertyChange`] |
//! | `deal.associationChange`, `contact.associationChange` with `associationType` `DEAL_TO_CONTACT` / `CONTACT_TO_DEAL` | [`EventKind::DealContact`] |
//! | anything else (creations, deletions, other objects or associations, …) | [`EventKind::Ignored`] |
//!
//! Every event needs a non-empty `eventId` (integer or string), a `subscriptionType` and an
//! `occurredAt` in 2000–2100; a used one also its own fields (`objectId`, `propertyName`; both
//! object ids and `associationRemoved`). A missing or `null` `propertyValue` reads as `""` (the
//! property was cleared). A body over [`MAX_HUBSPOT_BODY_BYTES`] is refused before it is parsed.
//!
//! # Stage map (defaults)
//!
//! [`StageMap::default`], which [`DEFAULT_STAGE_MAP_JSON`] writes out. `*` is any other non-empty
//! value; an empty value (a cleared property) never maps. Values are HubSpot's internal names:
//! lifecycle stages `subscriber`, `lead`, `marketingqualifiedlead`, `salesqualifiedlead`,
//! `opportunity`, `customer`, `evangelist`, `other`; the default sales pipeline's deal stages
//! `appointmentscheduled`, `qualifiedtobuy`, `presentationscheduled`, `decisionmakerboughtin`,
//! `contractsent`, `closedwon`, `closedlost`.
//!
//! | object | property | value | outcome |
//! |---|---|---|---|
//! | contact | `lifecyclestage` | `marketingqualifiedlead` | qualified |
//! | contact | `lifecyclestage` | `salesqualifiedlead` | qualified |
//! | contact | `lifecyclestage` | `opportunity` | opportunity |
//! | contact | `lifecyclestage` | `customer` | customer |
//! | contact | `lifecyclestage` | anything else (`subscriber`, `lead`, `evangelist`, `other`) | — |
//! | deal | `dealstage` | `closedwon` | customer |
//! | deal | `dealstage` | `closedlost` | disqualified |
//! | deal | `dealstage` | `*` (the open stages above, and any other stage id) | opportunity |
//!
//! Stages of pipelines other than the default one have numeric ids (`"12345678"`), so their won
//! and lost stages read as `*` (opportunity) until the table names them. A deployment replaces
//! the whole table with [`StageMap::from_json`]:
//! `{"contact":{"lifecyclestage":{"customer":"customer"}},"deal":{"dealstage":{"closedwon":"won",
//! "12345678":"won","*":"opportunity"}}}` — outcome names as [`OutcomeType::parse`] reads them,
//! `null` for "no outcome" (to except a value from `*`).
//!
//! # Idempotency
//!
//! An outcome's id is `hubspot:<eventId>` (a deal's, per contact: `hubspot:<eventId>:<contactId>`):
//! HubSpot retries (up to 10 times, `attemptNumber` 0, 1,
//! …) deliver the same `eventId`, so a retried event is one outcome. HubSpot documents `eventId`
//! as "not guaranteed to be unique"; two different events sharing one would be taken for one.

use std::borrow::Cow;
use std::collections::BTreeMap;

use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde_json::{Map, Value};
use sha2::Sha256;

use super::{Outcome, OutcomeError, OutcomeType};
use crate::error_code::ErrorCode;
use crate::event::{check_id, limits};
use crate::secret::HmacKey;

/// Header holding the v3 signature (HTTP header names are case-insensitive).
pub const SIGNATURE_HEADER: &str = "X-HubSpot-Signature-v3";
/// Header holding the request's time (ms since the epoch), which the v3 signature covers.
pub const TIMESTAMP_HEADER: &str = "X-HubSpot-Request-Timestamp";
/// Largest accepted distance between the request's timestamp and now, either way (5 minutes).
pub const MAX_SKEW_MS: i64 = 5 * 60 * 1000;
/// Most events in one request: HubSpot sends at most 100.
pub const MAX_EVENTS: usize = 100;
/// Largest accepted body. An event shaped as documented is 200–340 bytes of compact JSON (the
/// fixtures in `tests/fixtures/hubspot/`), so a full batch of 100 is about 35 KB; 256 KiB leaves
/// room for long property values and still bounds the parse.
pub const MAX_HUBSPOT_BODY_BYTES: usize = 256 * 1024;
/// Prefix of the outcome ids made from HubSpot events.
pub const OUTCOME_ID_PREFIX: &str = "hubspot:";
/// Longest accepted `eventId`, so that the outcome id fits [`limits::MAX_ID_LEN`].
pub const MAX_EVENT_ID_LEN: usize = limits::MAX_ID_LEN - OUTCOME_ID_PREFIX.len();

/// The stage map as [`StageMap::default`] holds it, in the format [`StageMap::from_json`] reads.
pub const DEFAULT_STAGE_MAP_JSON: &str = r#"{
  "contact": {
    "lifecyclestage": {
      "marketingqualifiedlead": "qualified",
      "salesqualifiedlead": "qualified",
      "opportunity": "opportunity",
      "customer": "customer"
    }
  },
  "deal": {
    "dealstage": {
      "closedwon": "customer",
      "closedlost": "disqualified",
      "*": "opportunity"
    }
  }
}"#;

/// Why a HubSpot request, payload or stage map was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HubspotError {
    /// A signature header is absent.
    #[error("header {0} is missing")]
    MissingHeader(&'static str),
    /// The timestamp header is not a decimal number of ms.
    #[error("header {TIMESTAMP_HEADER} must be ms since the Unix epoch, digits only")]
    MalformedTimestamp,
    /// The request is older than [`MAX_SKEW_MS`] (a replay, or a very late delivery).
    #[error("request timestamp is {age_ms} ms old, more than {MAX_SKEW_MS}")]
    Expired {
        /// How old it is.
        age_ms: i64,
    },
    /// The request claims a time more than [`MAX_SKEW_MS`] ahead of now.
    #[error("request timestamp is {ahead_ms} ms in the future, more than {MAX_SKEW_MS}")]
    FromFuture {
        /// How far ahead it is.
        ahead_ms: i64,
    },
    /// The signature header is not the base64 of a 32-byte HMAC-SHA256.
    #[error("header {SIGNATURE_HEADER} is not the base64 of an HMAC-SHA256")]
    MalformedSignature,
    /// The signature does not match the method, URI, body and timestamp with this secret.
    #[error("header {SIGNATURE_HEADER} does not match the request")]
    BadSignature,
    /// The body is larger than [`MAX_HUBSPOT_BODY_BYTES`].
    #[error("body is {len} bytes, more than {MAX_HUBSPOT_BODY_BYTES}")]
    BodyTooLarge {
        /// Its length.
        len: usize,
    },
    /// The body holds more than [`MAX_EVENTS`] events.
    #[error("body holds {count} events, more than {MAX_EVENTS}")]
    TooManyEvents {
        /// How many.
        count: usize,
    },
    /// The body is not JSON.
    #[error("body is not JSON: {0}")]
    Json(String),
    /// The body is JSON but not an array.
    #[error("body must be a JSON array of events")]
    NotAnArray,
    /// One event lacks a field or has one of the wrong type or out of its limits.
    #[error("event {index}: `{field}` {message}")]
    Field {
        /// Position of the event in the array (from 0).
        index: usize,
        /// The field, as HubSpot names it.
        field: &'static str,
        /// What is wrong.
        message: String,
    },
    /// The stage map's JSON is malformed or names an unknown object type or outcome.
    #[error("HubSpot stage map: {0}")]
    StageMap(String),
}

impl HubspotError {
    /// Stable machine-readable code: every signature problem is `invalid_signature` (the route
    /// answers 401 and says no more); configuration problems are `invalid_config`.
    pub fn code(&self) -> ErrorCode {
        match self {
            HubspotError::StageMap(_) => ErrorCode::InvalidConfig,
            HubspotError::MissingHeader(_)
            | HubspotError::MalformedTimestamp
            | HubspotError::Expired { .. }
            | HubspotError::FromFuture { .. }
            | HubspotError::MalformedSignature
            | HubspotError::BadSignature => ErrorCode::InvalidSignature,
            HubspotError::BodyTooLarge { .. } => ErrorCode::BodyTooLarge,
            HubspotError::TooManyEvents { .. } => ErrorCode::TooManyEvents,
            HubspotError::Json(_) => ErrorCode::InvalidJson,
            HubspotError::NotAnArray | HubspotError::Field { .. } => ErrorCode::InvalidField,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Signature v3

/// The app's client secret: an [`HmacKey`] from its text ([`HmacKey::new`]: surrounding
/// whitespace, such as a trailing newline in a variable, is dropped; HubSpot's secrets, 36-character
/// UUIDs, have none), built once at configuration time.
pub type ClientSecret = HmacKey;

/// The MAC over what v3 signs: `method + uri + body + timestamp`.
fn mac_v3(
    secret: &ClientSecret,
    method: &str,
    uri: &str,
    body: &[u8],
    timestamp: &str,
) -> Hmac<Sha256> {
    let mut mac = secret.mac();
    mac.update(method.as_bytes());
    mac.update(decode_uri_for_v3(uri).as_bytes());
    mac.update(body);
    mac.update(timestamp.as_bytes());
    mac
}

/// The URI as HubSpot signs it: the documented escapes decoded (see the module doc), everything
/// else as sent. Borrowed when there is nothing to decode.
pub fn decode_uri_for_v3(uri: &str) -> Cow<'_, str> {
    fn decoded(hi: u8, lo: u8) -> Option<char> {
        Some(match (hi, lo.to_ascii_uppercase()) {
            (b'3', b'A') => ':',
            (b'2', b'F') => '/',
            (b'3', b'F') => '?',
            (b'4', b'0') => '@',
            (b'2', b'1') => '!',
            (b'2', b'4') => '$',
            (b'2', b'7') => '\'',
            (b'2', b'8') => '(',
            (b'2', b'9') => ')',
            (b'2', b'A') => '*',
            (b'2', b'C') => ',',
            (b'3', b'B') => ';',
            _ => return None,
        })
    }
    if !uri.contains('%') {
        return Cow::Borrowed(uri);
    }
    let b = uri.as_bytes();
    let mut out = String::with_capacity(uri.len());
    let (mut last, mut i) = (0, 0);
    while i + 2 < b.len() {
        match (b[i] == b'%')
            .then(|| decoded(b[i + 1], b[i + 2]))
            .flatten()
        {
            Some(c) => {
                // `%` and the two hex digits are ASCII, so both slice ends are char boundaries.
                out.push_str(&uri[last..i]);
                out.push(c);
                i += 3;
                last = i;
            }
            None => i += 1,
        }
    }
    out.push_str(&uri[last..]);
    Cow::Owned(out)
}

/// The `X-HubSpot-Signature-v3` value HubSpot sends for this request: what a test or a local
/// replay tool signs with.
pub fn sign_v3(
    secret: &ClientSecret,
    method: &str,
    uri: &str,
    body: &[u8],
    timestamp: &str,
) -> String {
    let tag = mac_v3(secret, method, uri, body, timestamp)
        .finalize()
        .into_bytes();
    base64::engine::general_purpose::STANDARD.encode(tag)
}

/// Checks a request's v3 signature: the headers are present, the timestamp is within
/// [`MAX_SKEW_MS`] of `now_ms` either way, and the signature matches `method + uri + body +
/// timestamp` under `secret` (constant-time comparison). `uri` is the full URL HubSpot called
/// (scheme, host, path, query); `body` the raw bytes, before any parsing.
pub fn verify_signature_v3(
    secret: &ClientSecret,
    method: &str,
    uri: &str,
    body: &[u8],
    timestamp_header: Option<&str>,
    signature_header: Option<&str>,
    now_ms: i64,
) -> Result<(), HubspotError> {
    let timestamp = timestamp_header.ok_or(HubspotError::MissingHeader(TIMESTAMP_HEADER))?;
    let signature = signature_header.ok_or(HubspotError::MissingHeader(SIGNATURE_HEADER))?;
    let ts = parse_timestamp(timestamp)?;
    let age = now_ms.saturating_sub(ts);
    if age > MAX_SKEW_MS {
        return Err(HubspotError::Expired { age_ms: age });
    }
    if -age > MAX_SKEW_MS {
        return Err(HubspotError::FromFuture { ahead_ms: -age });
    }
    let tag = base64::engine::general_purpose::STANDARD
        .decode(signature)
        .map_err(|_| HubspotError::MalformedSignature)?;
    if tag.len() != 32 {
        return Err(HubspotError::MalformedSignature);
    }
    mac_v3(secret, method, uri, body, timestamp)
        .verify_slice(&tag)
        .map_err(|_| HubspotError::BadSignature)
}

/// Ms since the epoch from the header's text: 1 to 16 ASCII digits (no sign, no spaces: the
/// signed text must be the number's own).
fn parse_timestamp(s: &str) -> Result<i64, HubspotError> {
    if s.is_empty() || s.len() > 16 || !s.bytes().all(|c| c.is_ascii_digit()) {
        return Err(HubspotError::MalformedTimestamp);
    }
    s.parse().map_err(|_| HubspotError::MalformedTimestamp)
}

// ---------------------------------------------------------------------------------------------
// Payload

/// One event of a HubSpot webhook request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubspotEvent {
    /// `eventId`, as text: the same across retries of one event.
    pub event_id: String,
    /// `subscriptionType`, e.g. `contact.propertyChange`.
    pub subscription_type: String,
    /// `occurredAt`: when it happened in HubSpot (ms since the epoch).
    pub occurred_at: i64,
    /// `portalId`: the HubSpot account, to check a request is for the expected one.
    pub portal_id: Option<u64>,
    /// `appId`: the app whose subscription fired.
    pub app_id: Option<u64>,
    /// `subscriptionId`.
    pub subscription_id: Option<u64>,
    /// `attemptNumber`: 0 for the first delivery, then one more per retry.
    pub attempt_number: u32,
    /// `changeSource` (`CRM_UI`, `IMPORT`, `API`, …), for logs.
    pub change_source: Option<String>,
    /// What the event says, for the types this module uses.
    pub kind: EventKind,
}

impl HubspotEvent {
    /// Whether the event is of a type this module does not use (counted, not refused).
    pub fn is_ignored(&self) -> bool {
        self.kind == EventKind::Ignored
    }
}

/// What a used event says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventKind {
    /// A contact's or deal's property changed (or was set).
    PropertyChange(PropertyChange),
    /// A deal and a contact were associated, or their association was removed.
    DealContact(DealContactLink),
    /// A subscription type (or association type, or object type) this module does not use.
    Ignored,
}

/// A contact or a deal, by its HubSpot id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum HubspotObject {
    /// A contact (HubSpot's person record): the caller knows which lead it is.
    Contact(String),
    /// A deal: its outcome is about the contacts associated with it.
    Deal(String),
}

impl HubspotObject {
    /// Its object type.
    pub fn object_type(&self) -> ObjectType {
        match self {
            HubspotObject::Contact(_) => ObjectType::Contact,
            HubspotObject::Deal(_) => ObjectType::Deal,
        }
    }

    /// Its HubSpot id.
    pub fn id(&self) -> &str {
        match self {
            HubspotObject::Contact(id) | HubspotObject::Deal(id) => id,
        }
    }
}

/// The object types whose changes can be outcomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ObjectType {
    /// Contacts.
    Contact,
    /// Deals.
    Deal,
}

impl ObjectType {
    /// The name in the stage map's JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            ObjectType::Contact => "contact",
            ObjectType::Deal => "deal",
        }
    }
}

/// A property change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PropertyChange {
    /// The contact or deal.
    pub object: HubspotObject,
    /// `propertyName`, e.g. `lifecyclestage`.
    pub property: String,
    /// `propertyValue` (internal value, e.g. `closedwon`); `""` when the property was cleared.
    pub value: String,
}

/// Which way HubSpot named a deal–contact association (both directions exist; each fires its
/// own event when the app subscribes to both object types).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AssociationType {
    /// `DEAL_TO_CONTACT`: `fromObjectId` is the deal.
    DealToContact,
    /// `CONTACT_TO_DEAL`: `fromObjectId` is the contact.
    ContactToDeal,
}

/// A deal–contact association change, with the direction already resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DealContactLink {
    /// The deal's id.
    pub deal_id: String,
    /// The contact's id.
    pub contact_id: String,
    /// `associationRemoved`: the link ended rather than began.
    pub removed: bool,
    /// `isPrimaryAssociation`, when sent.
    pub primary: Option<bool>,
    /// The direction HubSpot reported.
    pub association_type: AssociationType,
}

/// Reads a webhook body into events (see the module doc for what is required and used).
pub fn parse_events(body: &[u8]) -> Result<Vec<HubspotEvent>, HubspotError> {
    if body.len() > MAX_HUBSPOT_BODY_BYTES {
        return Err(HubspotError::BodyTooLarge { len: body.len() });
    }
    let v: Value = serde_json::from_slice(body).map_err(|e| HubspotError::Json(e.to_string()))?;
    let Value::Array(items) = v else {
        return Err(HubspotError::NotAnArray);
    };
    if items.len() > MAX_EVENTS {
        return Err(HubspotError::TooManyEvents { count: items.len() });
    }
    items
        .iter()
        .enumerate()
        .map(|(index, item)| match item {
            Value::Object(m) => Fields { index, m }.event(),
            _ => Err(HubspotError::Field {
                index,
                field: "event",
                message: "must be a JSON object".into(),
            }),
        })
        .collect()
}

/// One event's fields, with the readers that name the event and field in their errors.
struct Fields<'a> {
    index: usize,
    m: &'a Map<String, Value>,
}

impl Fields<'_> {
    fn err(&self, field: &'static str, message: impl Into<String>) -> HubspotError {
        HubspotError::Field {
            index: self.index,
            field,
            message: message.into(),
        }
    }

    /// Present and not `null`.
    fn get(&self, field: &'static str) -> Option<&Value> {
        self.m.get(field).filter(|v| !v.is_null())
    }

    fn required<T>(
        &self,
        field: &'static str,
        read: impl Fn(&Self, &'static str) -> Result<Option<T>, HubspotError>,
    ) -> Result<T, HubspotError> {
        read(self, field)?.ok_or_else(|| self.err(field, "is missing"))
    }

    /// An id: a non-negative integer or a string, as text, within the id rules.
    fn id(&self, field: &'static str) -> Result<Option<String>, HubspotError> {
        let Some(v) = self.get(field) else {
            return Ok(None);
        };
        let s = match v {
            Value::Number(n) if n.is_u64() => n.to_string(),
            Value::String(s) => s.clone(),
            _ => return Err(self.err(field, "must be a non-negative integer or a string")),
        };
        check_id(field, &s).map_err(|e| match e {
            crate::event::EventError::Field { message, .. } => self.err(field, message),
            other => self.err(field, other.to_string()),
        })?;
        Ok(Some(s))
    }

    /// A HubSpot object id (contact, deal): HubSpot's object ids are integers (sent as numbers, or
    /// as digit strings by some of its APIs); anything else — `../../x`, a name — is refused, so
    /// only HubSpot's own ids ever name a lead or a deal.
    fn object_id(&self, field: &'static str) -> Result<Option<String>, HubspotError> {
        match self.get(field) {
            Some(Value::String(s))
                if !s.is_empty() && (s.len() > 20 || !s.bytes().all(|b| b.is_ascii_digit())) =>
            {
                Err(self.err(
                    field,
                    "must be HubSpot's numeric id (a non-negative integer, or its digits as a string)",
                ))
            }
            _ => self.id(field),
        }
    }

    fn u64(&self, field: &'static str) -> Result<Option<u64>, HubspotError> {
        match self.get(field) {
            None => Ok(None),
            Some(v) => v
                .as_u64()
                .map(Some)
                .ok_or_else(|| self.err(field, "must be a non-negative integer")),
        }
    }

    fn string(&self, field: &'static str) -> Result<Option<String>, HubspotError> {
        match self.get(field) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(self.err(field, "must be a string")),
        }
    }

    fn name(&self, field: &'static str) -> Result<Option<String>, HubspotError> {
        match self.string(field)? {
            Some(s) if s.is_empty() => Err(self.err(field, "must not be empty")),
            Some(s) if s.len() > limits::MAX_ID_LEN => Err(self.err(
                field,
                format!("is {} bytes, more than {}", s.len(), limits::MAX_ID_LEN),
            )),
            other => Ok(other),
        }
    }

    fn bool(&self, field: &'static str) -> Result<Option<bool>, HubspotError> {
        match self.get(field) {
            None => Ok(None),
            Some(v) => v
                .as_bool()
                .map(Some)
                .ok_or_else(|| self.err(field, "must be true or false")),
        }
    }

    fn event(&self) -> Result<HubspotEvent, HubspotError> {
        let event_id = self.required("eventId", Self::id)?;
        if event_id.len() > MAX_EVENT_ID_LEN {
            return Err(self.err(
                "eventId",
                format!("is {} bytes, more than {MAX_EVENT_ID_LEN}", event_id.len()),
            ));
        }
        let subscription_type = self.required("subscriptionType", Self::name)?;
        let occurred_at = match self.get("occurredAt") {
            None => return Err(self.err("occurredAt", "is missing")),
            Some(v) => v
                .as_i64()
                .filter(|t| (limits::MIN_TS..=limits::MAX_TS).contains(t))
                .ok_or_else(|| {
                    self.err(
                        "occurredAt",
                        "must be ms since the Unix epoch, between 2000 and 2100",
                    )
                })?,
        };
        let attempt_number = match self.u64("attemptNumber")? {
            None => 0,
            Some(n) => u32::try_from(n).map_err(|_| self.err("attemptNumber", "is too large"))?,
        };
        let kind = self.kind(&subscription_type)?;
        Ok(HubspotEvent {
            event_id,
            occurred_at,
            portal_id: self.u64("portalId")?,
            app_id: self.u64("appId")?,
            subscription_id: self.u64("subscriptionId")?,
            attempt_number,
            change_source: self.string("changeSource")?,
            subscription_type,
            kind,
        })
    }

    fn kind(&self, subscription_type: &str) -> Result<EventKind, HubspotError> {
        let object = match subscription_type {
            "contact.propertyChange" => ObjectType::Contact,
            "deal.propertyChange" => ObjectType::Deal,
            "object.propertyChange" => {
                match self.required("objectTypeId", Self::string)?.as_str() {
                    "0-1" => ObjectType::Contact,
                    "0-3" => ObjectType::Deal,
                    _ => return Ok(EventKind::Ignored),
                }
            }
            "deal.associationChange" | "contact.associationChange" => return self.association(),
            _ => return Ok(EventKind::Ignored),
        };
        let id = self.required("objectId", Self::object_id)?;
        let property = self.required("propertyName", Self::name)?;
        let value = match self.get("propertyValue") {
            None => String::new(),
            Some(Value::String(s)) => s.clone(),
            Some(v @ (Value::Number(_) | Value::Bool(_))) => v.to_string(),
            Some(_) => return Err(self.err("propertyValue", "must be a string")),
        };
        let object = match object {
            ObjectType::Contact => HubspotObject::Contact(id),
            ObjectType::Deal => HubspotObject::Deal(id),
        };
        Ok(EventKind::PropertyChange(PropertyChange {
            object,
            property,
            value,
        }))
    }

    fn association(&self) -> Result<EventKind, HubspotError> {
        let association_type = match self.required("associationType", Self::string)?.as_str() {
            "DEAL_TO_CONTACT" => AssociationType::DealToContact,
            "CONTACT_TO_DEAL" => AssociationType::ContactToDeal,
            _ => return Ok(EventKind::Ignored),
        };
        let from = self.required("fromObjectId", Self::object_id)?;
        let to = self.required("toObjectId", Self::object_id)?;
        let removed = self.required("associationRemoved", Self::bool)?;
        let (deal_id, contact_id) = match association_type {
            AssociationType::DealToContact => (from, to),
            AssociationType::ContactToDeal => (to, from),
        };
        Ok(EventKind::DealContact(DealContactLink {
            deal_id,
            contact_id,
            removed,
            primary: self.bool("isPrimaryAssociation")?,
            association_type,
        }))
    }
}

// ---------------------------------------------------------------------------------------------
// Stage map and outcomes

/// Outcomes of one property's values.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct ValueMap {
    /// Named values; `None` is an explicit "no outcome".
    values: BTreeMap<String, Option<OutcomeType>>,
    /// `*`: any other non-empty value.
    other: Option<OutcomeType>,
}

/// The table from (object type, property, value) to outcome type (defaults and format in the
/// module doc). Built once from configuration, read per event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StageMap {
    props: BTreeMap<(ObjectType, String), ValueMap>,
}

impl Default for StageMap {
    fn default() -> Self {
        use OutcomeType::*;
        let table = |values: &[(&str, OutcomeType)], other| ValueMap {
            values: values
                .iter()
                .map(|&(v, o)| (v.to_string(), Some(o)))
                .collect(),
            other,
        };
        let mut props = BTreeMap::new();
        props.insert(
            (ObjectType::Contact, "lifecyclestage".to_string()),
            table(
                &[
                    ("marketingqualifiedlead", Qualified),
                    ("salesqualifiedlead", Qualified),
                    ("opportunity", Opportunity),
                    ("customer", Customer),
                ],
                None,
            ),
        );
        props.insert(
            (ObjectType::Deal, "dealstage".to_string()),
            table(
                &[("closedwon", Customer), ("closedlost", Disqualified)],
                Some(Opportunity),
            ),
        );
        StageMap { props }
    }
}

impl StageMap {
    /// Reads a table: `{"contact"|"deal": {property: {value | "*": outcome name | null}}}`. It
    /// replaces the defaults entirely (an object type left out maps nothing).
    pub fn from_json(text: &str) -> Result<StageMap, HubspotError> {
        type Wire = BTreeMap<String, BTreeMap<String, BTreeMap<String, Option<String>>>>;
        let wire: Wire = serde_json::from_str(text).map_err(|e| {
            HubspotError::StageMap(format!(
                "{e} (expected {{\"contact\"|\"deal\": {{property: {{value: outcome}}}}}})"
            ))
        })?;
        let mut props = BTreeMap::new();
        for (object, properties) in wire {
            let object = match object.as_str() {
                "contact" => ObjectType::Contact,
                "deal" => ObjectType::Deal,
                _ => {
                    return Err(HubspotError::StageMap(format!(
                        "unknown object type `{object}`; expected `contact` or `deal`"
                    )))
                }
            };
            for (property, values) in properties {
                if property.is_empty() {
                    return Err(HubspotError::StageMap(format!(
                        "{}: a property name is empty",
                        object.as_str()
                    )));
                }
                let mut map = ValueMap::default();
                for (value, outcome) in values {
                    let at = || format!("{}.{property}.{value}", object.as_str());
                    if value.is_empty() {
                        return Err(HubspotError::StageMap(format!(
                            "{}.{property}: a value is empty (a cleared property never maps)",
                            object.as_str()
                        )));
                    }
                    let outcome = match outcome {
                        None => None,
                        Some(name) => Some(OutcomeType::parse(&name).ok_or_else(|| {
                            let names: Vec<&str> =
                                OutcomeType::ALL.iter().map(|t| t.as_str()).collect();
                            HubspotError::StageMap(format!(
                                "`{}`: unknown outcome type `{name}`; expected one of {} \
                                 (or won, lost), or null",
                                at(),
                                names.join(", ")
                            ))
                        })?),
                    };
                    if value == "*" {
                        map.other = outcome;
                    } else {
                        map.values.insert(value, outcome);
                    }
                }
                props.insert((object, property), map);
            }
        }
        Ok(StageMap { props })
    }

    /// The table in [`StageMap::from_json`]'s format (for logs: the table a deployment runs).
    pub fn to_json(&self) -> Value {
        let mut out = Map::new();
        for ((object, property), map) in &self.props {
            let mut values: Map<String, Value> = map
                .values
                .iter()
                .map(|(v, o)| (v.clone(), o.map_or(Value::Null, |o| o.as_str().into())))
                .collect();
            if let Some(o) = map.other {
                values.insert("*".into(), o.as_str().into());
            }
            if let Value::Object(props) = out
                .entry(object.as_str())
                .or_insert_with(|| Value::Object(Map::new()))
            {
                props.insert(property.clone(), Value::Object(values));
            }
        }
        Value::Object(out)
    }

    /// The outcome a property taking `value` means, if any.
    pub fn outcome(&self, object: ObjectType, property: &str, value: &str) -> Option<OutcomeType> {
        if value.is_empty() {
            return None;
        }
        let map = self.props.get(&(object, property.to_string()))?;
        match map.values.get(value) {
            Some(named) => *named,
            None => map.other,
        }
    }
}

/// An outcome read from a HubSpot event, still about a contact or deal rather than a lead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubspotOutcome {
    /// `hubspot:<eventId>`: the idempotency key (retries carry the same `eventId`).
    pub id: String,
    /// The contact or deal whose property changed.
    pub object: HubspotObject,
    /// What it means.
    pub kind: OutcomeType,
    /// `occurredAt`: when it happened in HubSpot.
    pub ts: i64,
}

impl HubspotOutcome {
    /// The outcome record for `lead_id`, with this outcome's id: for a contact's outcome (one
    /// contact, one lead).
    pub fn for_lead(&self, lead_id: &str) -> Result<Outcome, OutcomeError> {
        self.record(self.id.clone(), lead_id)
    }

    /// The outcome record for the lead of `contact_id`, one of the contacts associated with this
    /// deal: its id is `hubspot:<eventId>:<contactId>`, so that each contact's lead keeps its own
    /// record (the outcome log de-duplicates by id) and a retry still makes the same ones.
    pub fn for_deal_contact(
        &self,
        contact_id: &str,
        lead_id: &str,
    ) -> Result<Outcome, OutcomeError> {
        self.record(format!("{}:{contact_id}", self.id), lead_id)
    }

    fn record(&self, id: String, lead_id: &str) -> Result<Outcome, OutcomeError> {
        let o = Outcome {
            id,
            lead_id: Some(lead_id.to_string()),
            visitor_id: None,
            kind: self.kind,
            ts: self.ts,
            value: None,
        };
        o.validate()?;
        Ok(o)
    }
}

/// The outcome an event means under `map`, if any: only property changes of contacts and deals
/// whose (property, value) the table maps.
pub fn to_outcome(event: &HubspotEvent, map: &StageMap) -> Option<HubspotOutcome> {
    let EventKind::PropertyChange(change) = &event.kind else {
        return None;
    };
    let kind = map.outcome(change.object.object_type(), &change.property, &change.value)?;
    Some(HubspotOutcome {
        id: format!("{OUTCOME_ID_PREFIX}{}", event.event_id),
        object: change.object.clone(),
        kind,
        ts: event.occurred_at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// HubSpot's documentation and SDK tests use this placeholder secret.
    const SDK_SECRET: &str = "yyyyyyyy-yyyy-yyyy-yyyy-yyyyyyyyyyyy";
    const SDK_URI: &str = "https://www.example.com/webhook_uri";
    const SDK_BODY: &str = "{'example_field':'example_value'}";

    fn secret() -> ClientSecret {
        ClientSecret::new(SDK_SECRET).unwrap()
    }

    fn verify(uri: &str, body: &str, ts: &str, sig: &str, now: i64) -> Result<(), HubspotError> {
        verify_signature_v3(
            &secret(),
            "POST",
            uri,
            body.as_bytes(),
            Some(ts),
            Some(sig),
            now,
        )
    }

    #[test]
    fn matches_the_sdk_test_vectors() {
        // hubspot-api-python tests/spec/utils/test_signature.py, test_get_signature__v3.
        let (ts, sig) = (
            "1693657560000",
            "K36dawei4A+QBNolUOqo7s91KQDWQ5MXZ/QufNYuk/Y=",
        );
        assert_eq!(
            sign_v3(&secret(), "POST", SDK_URI, SDK_BODY.as_bytes(), ts),
            sig
        );
        assert_eq!(
            verify(SDK_URI, SDK_BODY, ts, sig, 1_693_657_560_000 + 1000),
            Ok(())
        );
        // hubspot-api-ruby spec/helpers/signature_spec.rb, v3_hash (timestamp 15000000).
        let (ts, sig) = ("15000000", "HPW73RUtKmcYoEDADG0s6MmGFWUzWJKAW07r8RDgcQw=");
        assert_eq!(
            sign_v3(&secret(), "POST", SDK_URI, SDK_BODY.as_bytes(), ts),
            sig
        );
        assert_eq!(verify(SDK_URI, SDK_BODY, ts, sig, 15_000_000), Ok(()));
    }

    #[test]
    fn decodes_the_documented_escapes_of_the_uri_before_signing() {
        // python3 -c 'import hmac,hashlib,base64; print(base64.b64encode(hmac.new(
        //   b"yyyyyyyy-yyyy-yyyy-yyyy-yyyyyyyyyyyy", ("POST" + SIGNED + BODY + "1763900121000")
        //   .encode(), hashlib.sha256).digest()).decode())', SIGNED being the decoded URI below.
        let received = "https://edge.example.com/v1/outcomes/hubspot?site=acme%3Aprod&next=%2fdone%3F&who=%40me%21&x=%20%7E%253A";
        let signed = "https://edge.example.com/v1/outcomes/hubspot?site=acme:prod&next=/done?&who=@me!&x=%20%7E%253A";
        let body =
            r#"[{"eventId":1,"subscriptionType":"contact.creation","occurredAt":1564113600000}]"#;
        let (ts, sig) = (
            "1763900121000",
            "6Skkg5iAOsYpGxgY/fTE8XBiaI7ieONPJNj9Elav9Dc=",
        );
        let now = 1_763_900_121_000;
        assert_eq!(decode_uri_for_v3(received), signed);
        assert_eq!(verify(received, body, ts, sig, now), Ok(()));
        assert_eq!(verify(signed, body, ts, sig, now), Ok(()));
        // Decoding more than the table (%20, %7E, %25) changes the signed text.
        let over = "https://edge.example.com/v1/outcomes/hubspot?site=acme:prod&next=/done?&who=@me!&x= ~%3A";
        assert_eq!(
            verify(over, body, ts, sig, now),
            Err(HubspotError::BadSignature)
        );
    }

    #[test]
    fn decodes_exactly_the_table_in_one_pass() {
        let table = [
            ("%3A", ":"),
            ("%2F", "/"),
            ("%3F", "?"),
            ("%40", "@"),
            ("%21", "!"),
            ("%24", "$"),
            ("%27", "'"),
            ("%28", "("),
            ("%29", ")"),
            ("%2A", "*"),
            ("%2C", ","),
            ("%3B", ";"),
        ];
        for (enc, dec) in table {
            assert_eq!(decode_uri_for_v3(&format!("a{enc}b")), format!("a{dec}b"));
            let lower = enc.to_ascii_lowercase();
            assert_eq!(decode_uri_for_v3(&format!("{lower}x")), format!("{dec}x"));
        }
        for kept in [
            "%20",
            "%25",
            "%26",
            "%3D",
            "%2B",
            "%23",
            "%5B",
            "%7E",
            "%E2%82%AC",
        ] {
            assert_eq!(
                decode_uri_for_v3(&format!("/p?q={kept}")),
                format!("/p?q={kept}")
            );
        }
        // One pass: "%253A" is "%25" + "3A", never ":"; incomplete escapes stay.
        assert_eq!(decode_uri_for_v3("%253A"), "%253A");
        assert_eq!(decode_uri_for_v3("%%3A%3"), "%:%3");
        assert_eq!(decode_uri_for_v3("x%"), "x%");
        assert_eq!(decode_uri_for_v3("é%3Aü%2F"), "é:ü/");
        assert!(matches!(decode_uri_for_v3("/plain?a=b"), Cow::Borrowed(_)));
    }

    #[test]
    fn refuses_stale_and_future_timestamps_beyond_five_minutes() {
        let ts = 1_763_900_121_000i64;
        let sig = sign_v3(&secret(), "POST", SDK_URI, b"[]", &ts.to_string());
        let at = |now| verify(SDK_URI, "[]", &ts.to_string(), &sig, now);
        assert_eq!(at(ts), Ok(()));
        assert_eq!(at(ts + MAX_SKEW_MS), Ok(()), "exactly 5 minutes old passes");
        assert_eq!(
            at(ts + MAX_SKEW_MS + 1),
            Err(HubspotError::Expired { age_ms: 300_001 })
        );
        assert_eq!(at(ts - MAX_SKEW_MS), Ok(()), "5 minutes ahead passes");
        assert_eq!(
            at(ts - MAX_SKEW_MS - 1),
            Err(HubspotError::FromFuture { ahead_ms: 300_001 })
        );
        // A timestamp in seconds (a misreading sender) is decades old.
        let secs = (ts / 1000).to_string();
        let sig_s = sign_v3(&secret(), "POST", SDK_URI, b"[]", &secs);
        assert!(matches!(
            verify(SDK_URI, "[]", &secs, &sig_s, ts),
            Err(HubspotError::Expired { .. })
        ));
    }

    #[test]
    fn refuses_any_tampering() {
        let ts = "1763900121000";
        let now = 1_763_900_121_500;
        let body = r#"[{"eventId":7}]"#;
        let sig = sign_v3(&secret(), "POST", SDK_URI, body.as_bytes(), ts);
        assert_eq!(verify(SDK_URI, body, ts, &sig, now), Ok(()));
        let bad = Err(HubspotError::BadSignature);
        assert_eq!(
            verify(SDK_URI, r#"[{"eventId":8}]"#, ts, &sig, now),
            bad,
            "body"
        );
        assert_eq!(
            verify(SDK_URI, &format!("{body} "), ts, &sig, now),
            bad,
            "body"
        );
        assert_eq!(
            verify("https://www.example.com/webhook_urj", body, ts, &sig, now),
            bad
        );
        assert_eq!(
            verify("http://www.example.com/webhook_uri", body, ts, &sig, now),
            bad
        );
        assert_eq!(
            verify(SDK_URI, body, "1763900121001", &sig, now),
            bad,
            "timestamp"
        );
        let other_method = verify_signature_v3(
            &secret(),
            "PUT",
            SDK_URI,
            body.as_bytes(),
            Some(ts),
            Some(&sig),
            now,
        );
        assert_eq!(other_method, bad);
        let other_secret = ClientSecret::new("zzzzzzzz-yyyy-yyyy-yyyy-yyyyyyyyyyyy").unwrap();
        let with_other = verify_signature_v3(
            &other_secret,
            "POST",
            SDK_URI,
            body.as_bytes(),
            Some(ts),
            Some(&sig),
            now,
        );
        assert_eq!(with_other, bad);
        // A flipped bit of the tag itself.
        let mut tag = base64::engine::general_purpose::STANDARD
            .decode(&sig)
            .unwrap();
        tag[31] ^= 1;
        let flipped = base64::engine::general_purpose::STANDARD.encode(&tag);
        assert_eq!(verify(SDK_URI, body, ts, &flipped, now), bad);
    }

    #[test]
    fn refuses_malformed_headers() {
        let now = 1_763_900_121_000;
        let ts = "1763900121000";
        let sig = sign_v3(&secret(), "POST", SDK_URI, b"[]", ts);
        for bad_ts in [
            "",
            " 1763900121000",
            "1763900121000 ",
            "+1763900121",
            "1.7e12",
            "-5",
            "abc",
            "12345678901234567",
        ] {
            assert_eq!(
                verify(SDK_URI, "[]", bad_ts, &sig, now),
                Err(HubspotError::MalformedTimestamp),
                "{bad_ts:?}"
            );
        }
        let short = base64::engine::general_purpose::STANDARD.encode([0u8; 31]);
        let hex = "ab".repeat(32);
        // A proxy that turned `+` into a space (HubSpot community thread "V3 signature validation
        // doesn't work for space") gives text that is not base64.
        let spaced = "K36dawei4A QBNolUOqo7s91KQDWQ5MXZ/QufNYuk/Y=";
        for bad_sig in [
            "",
            "not base64!",
            &sig[..sig.len() - 1],
            &short,
            &hex,
            spaced,
        ] {
            assert_eq!(
                verify(SDK_URI, "[]", ts, bad_sig, now),
                Err(HubspotError::MalformedSignature),
                "{bad_sig:?}"
            );
        }
        let s = secret();
        let missing = |t: Option<&str>, g: Option<&str>| {
            verify_signature_v3(&s, "POST", SDK_URI, b"[]", t, g, now)
        };
        assert_eq!(
            missing(None, Some(&sig)),
            Err(HubspotError::MissingHeader(TIMESTAMP_HEADER))
        );
        assert_eq!(
            missing(Some(ts), None),
            Err(HubspotError::MissingHeader(SIGNATURE_HEADER))
        );
        for e in [
            HubspotError::MissingHeader(SIGNATURE_HEADER),
            HubspotError::MalformedTimestamp,
            HubspotError::Expired { age_ms: 1 },
            HubspotError::FromFuture { ahead_ms: 1 },
            HubspotError::MalformedSignature,
            HubspotError::BadSignature,
        ] {
            assert_eq!(e.code(), ErrorCode::InvalidSignature, "{e}");
        }
    }

    #[test]
    fn a_secret_is_hubspots_length_and_never_printed() {
        assert!(ClientSecret::new("").is_err());
        assert!(ClientSecret::new(" short-secret \n").is_err());
        // Surrounding whitespace (a variable's newline) is not part of the key.
        let padded = ClientSecret::new(&format!("  {SDK_SECRET}\n")).unwrap();
        assert_eq!(
            sign_v3(
                &padded,
                "POST",
                SDK_URI,
                SDK_BODY.as_bytes(),
                "1693657560000"
            ),
            "K36dawei4A+QBNolUOqo7s91KQDWQ5MXZ/QufNYuk/Y="
        );
        assert!(!format!("{padded:?}").contains("yyyy"));
    }

    #[test]
    fn the_default_table_is_the_documented_json() {
        let m = StageMap::from_json(DEFAULT_STAGE_MAP_JSON).unwrap();
        assert_eq!(m, StageMap::default());
        assert_eq!(StageMap::from_json(&m.to_json().to_string()).unwrap(), m);
        let deal = |v| m.outcome(ObjectType::Deal, "dealstage", v);
        let contact = |v| m.outcome(ObjectType::Contact, "lifecyclestage", v);
        for stage in [
            "appointmentscheduled",
            "qualifiedtobuy",
            "presentationscheduled",
            "decisionmakerboughtin",
            "contractsent",
            "12345678",
        ] {
            assert_eq!(deal(stage), Some(OutcomeType::Opportunity), "{stage}");
        }
        assert_eq!(deal("closedwon"), Some(OutcomeType::Customer));
        assert_eq!(deal("closedlost"), Some(OutcomeType::Disqualified));
        assert_eq!(deal(""), None, "a cleared stage is no stage");
        assert_eq!(
            contact("marketingqualifiedlead"),
            Some(OutcomeType::Qualified)
        );
        assert_eq!(contact("salesqualifiedlead"), Some(OutcomeType::Qualified));
        assert_eq!(contact("opportunity"), Some(OutcomeType::Opportunity));
        assert_eq!(contact("customer"), Some(OutcomeType::Customer));
        for none in ["subscriber", "lead", "evangelist", "other", "Customer", ""] {
            assert_eq!(contact(none), None, "{none}");
        }
        assert_eq!(
            m.outcome(ObjectType::Contact, "dealstage", "closedwon"),
            None
        );
        assert_eq!(
            m.outcome(ObjectType::Deal, "lifecyclestage", "customer"),
            None
        );
    }

    #[test]
    fn a_custom_table_replaces_the_defaults_and_says_what_is_wrong() {
        let m = StageMap::from_json(
            r#"{"contact":{"hs_lead_status":{"CONNECTED":"qualified","UNQUALIFIED":"lost"}},
                "deal":{"dealstage":{"closedwon":"won","99001":"won","99002":"lost","99000":null,"*":"opportunity"}}}"#,
        )
        .unwrap();
        assert_eq!(
            m.outcome(ObjectType::Contact, "hs_lead_status", "UNQUALIFIED"),
            Some(OutcomeType::Disqualified)
        );
        assert_eq!(
            m.outcome(ObjectType::Contact, "lifecyclestage", "customer"),
            None
        );
        assert_eq!(
            m.outcome(ObjectType::Deal, "dealstage", "99001"),
            Some(OutcomeType::Customer)
        );
        assert_eq!(
            m.outcome(ObjectType::Deal, "dealstage", "99000"),
            None,
            "null excepts from *"
        );
        assert_eq!(
            m.outcome(ObjectType::Deal, "dealstage", "closedlost"),
            Some(OutcomeType::Opportunity),
            "not named, so `*`"
        );
        let err = |text: &str| StageMap::from_json(text).unwrap_err();
        let e = err(r#"{"deal":{"dealstage":{"closedwon":"sale"}}}"#);
        assert_eq!(e.code(), ErrorCode::InvalidConfig);
        let msg = e.to_string();
        assert!(
            msg.contains("deal.dealstage.closedwon") && msg.contains("`sale`"),
            "{msg}"
        );
        assert!(
            msg.contains("qualified, opportunity, customer, disqualified"),
            "{msg}"
        );
        assert!(
            err(r#"{"company":{"lifecyclestage":{"customer":"customer"}}}"#)
                .to_string()
                .contains("unknown object type `company`")
        );
        assert!(err(r#"{"deal":{"":{"x":"won"}}}"#)
            .to_string()
            .contains("property name is empty"));
        assert!(err(r#"{"deal":{"dealstage":{"":"won"}}}"#)
            .to_string()
            .contains("value is empty"));
        assert!(matches!(err("not json"), HubspotError::StageMap(_)));
        assert!(matches!(
            err(r#"{"deal":{"dealstage":["won"]}}"#),
            HubspotError::StageMap(_)
        ));
        assert!(matches!(
            err(r#"{"deal":{"dealstage":{"closedwon":3}}}"#),
            HubspotError::StageMap(_)
        ));
        assert_eq!(
            StageMap::from_json("{}").unwrap().to_json(),
            serde_json::json!({})
        );
    }
}
