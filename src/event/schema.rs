//! The event's JSON Schema (`www/event.schema.json`, for integrators and the browser tests),
//! generated from here: the shape is written once below, every number comes from
//! [`super::limits`] and the `type` enum from [`EventType`]. `tests/generated.rs` fails when the
//! committed file is stale.

use super::{EventType, RESERVED_VISITOR_PREFIX};

/// Every [`EventType`], in the schema's order. [`listed_at`] matches exhaustively, so a new variant
/// does not compile until it has a place here.
const EVENT_TYPES: [EventType; 10] = [
    EventType::Page,
    EventType::Engaged,
    EventType::PageEnd,
    EventType::Scroll,
    EventType::Click,
    EventType::FormStart,
    EventType::FormSubmit,
    EventType::Identify,
    EventType::Group,
    EventType::Custom,
];

/// Where `t` is in [`EVENT_TYPES`]; the assertion below checks, at compile time, that each index
/// holds its type, so the list has every variant once.
const fn listed_at(t: EventType) -> usize {
    match t {
        EventType::Page => 0,
        EventType::Engaged => 1,
        EventType::PageEnd => 2,
        EventType::Scroll => 3,
        EventType::Click => 4,
        EventType::FormStart => 5,
        EventType::FormSubmit => 6,
        EventType::Identify => 7,
        EventType::Group => 8,
        EventType::Custom => 9,
    }
}

const _: () = {
    let mut i = 0;
    while i < EVENT_TYPES.len() {
        assert!(
            listed_at(EVENT_TYPES[i]) == i,
            "EVENT_TYPES is out of order"
        );
        i += 1;
    }
};

/// The `type` enum's items: each type's JSON name as serde writes it, so the schema cannot name a
/// type the parser does not accept.
fn event_type_names() -> String {
    EVENT_TYPES
        .iter()
        .map(|t| serde_json::to_string(t).unwrap_or_default())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The schema with `@NAME@` where a limit goes.
const TEMPLATE: &str = r##"{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "$id": "leadscore/event.schema.json",
  "title": "leadscore event v1",
  "description": "One visitor event. The Rust parser (src/event/) is the authority; this schema is generated from it (src/event/schema.rs, limits from src/event/limits.rs). Unknown fields and types are rejected.",
  "$comment": "maxLength and propertyNames.maxLength count Unicode characters, as JSON Schema defines them; the parser counts UTF-8 bytes, which is stricter for non-ASCII text. The byte counts are the rule: a string of N characters passes this schema and is refused by the parser when it holds more than N bytes. One event's JSON text is at most @MAX_EVENT_BYTES@ bytes, a batch at most @MAX_BATCH_EVENTS@ events and @MAX_BODY_BYTES@ bytes.",
  "type": "object",
  "additionalProperties": false,
  "required": ["id", "type", "ts", "visitor_id"],
  "properties": {
    "id": { "type": "string", "minLength": 1, "maxLength": @MAX_ID_LEN@, "description": "Client-made unique id: the idempotency key." },
    "type": {
      "enum": [@EVENT_TYPES@]
    },
    "ts": { "type": "integer", "minimum": @MIN_TS@, "maximum": @MAX_TS@, "description": "Client time, ms since the Unix epoch." },
    "visitor_id": { "type": "string", "minLength": 1, "maxLength": @MAX_ID_LEN@, "not": { "pattern": "^@RESERVED_VISITOR_PREFIX@" }, "description": "Random first-party id; the prefix `lead:` is reserved." },
    "url": { "type": "string", "maxLength": @MAX_URL_LEN@, "description": "Full page URL, query included (UTM parameters)." },
    "path": { "type": "string", "pattern": "^/", "maxLength": @MAX_PATH_LEN@, "description": "Page path; derived from url when absent." },
    "referrer": { "type": "string", "maxLength": @MAX_URL_LEN@ },
    "ua": { "type": "string", "maxLength": @MAX_UA_LEN@ },
    "tz_offset": { "type": "integer", "minimum": -@MAX_TZ_OFFSET@, "maximum": @MAX_TZ_OFFSET@, "description": "Local offset from UTC in minutes, east positive." },
    "engaged_ms": { "type": "number", "minimum": 0, "maximum": @MAX_ENGAGED_MS@, "description": "Engaged ms since the previous engaged/page_end of this page view." },
    "name": { "type": "string", "minLength": 1, "maxLength": @MAX_ID_LEN@, "description": "Custom event name (required for custom)." },
    "lead_id": { "type": "string", "minLength": 1, "maxLength": @MAX_LEAD_ID_LEN@, "description": "Lead id (identify)." },
    "lead_signature": { "type": "string", "pattern": "^[0-9a-fA-F]{64}$", "description": "Hex HMAC-SHA256 of lead_id made by the site's backend (identify); without it an identify is a claim." },
    "account_id": { "type": "string", "minLength": 1, "maxLength": @MAX_LEAD_ID_LEN@, "description": "The account (company) a group event joins." },
    "account_signature": { "type": "string", "pattern": "^[0-9a-fA-F]{64}$", "description": "Hex HMAC-SHA256 of `account:` + account_id made by the site's backend (group); a page's group needs it." },
    "props": { "$ref": "#/$defs/smallMap", "description": "depth (scroll, percent), cta (click), form (form_*), id_persistent (page), …" },
    "traits": { "$ref": "#/$defs/traitMap", "description": "Identify (the lead's) and group (the account's) traits only." }
  },
  "allOf": [
    { "if": { "properties": { "type": { "const": "page" } } }, "then": { "anyOf": [ { "required": ["path"] }, { "required": ["url"] } ] } },
    { "if": { "properties": { "type": { "const": "custom" } } }, "then": { "required": ["name"] } },
    { "if": { "properties": { "type": { "const": "identify" } } },
      "then": { "anyOf": [ { "required": ["lead_id"] }, { "required": ["traits"] } ], "dependentRequired": { "lead_signature": ["lead_id"] } } },
    { "if": { "properties": { "type": { "const": "group" } } },
      "then": { "required": ["account_id"] },
      "else": { "not": { "required": ["account_id"] } } },
    { "if": { "properties": { "type": { "enum": ["identify", "group"] } } }, "then": true, "else": { "not": { "required": ["traits"] } } }
  ],
  "$defs": {
    "smallMap": {
      "type": "object",
      "maxProperties": @MAX_MAP_ENTRIES@,
      "propertyNames": { "minLength": 1, "maxLength": @MAX_KEY_LEN@ },
      "additionalProperties": {
        "oneOf": [ { "type": "boolean" }, { "type": "number" }, { "type": "string", "maxLength": @MAX_VALUE_LEN@ } ]
      }
    },
    "traitMap": {
      "type": "object",
      "maxProperties": @MAX_MAP_ENTRIES@,
      "propertyNames": { "minLength": 1, "maxLength": @MAX_KEY_LEN@ },
      "additionalProperties": {
        "oneOf": [ { "type": "boolean" }, { "type": "number" }, { "type": "string", "maxLength": @MAX_TRAIT_VALUE_LEN@ } ]
      }
    }
  }
}
"##;

/// The schema text, limits filled in.
pub fn json_schema() -> String {
    let mut values = super::limits::named();
    values.push((
        "RESERVED_VISITOR_PREFIX",
        RESERVED_VISITOR_PREFIX.to_string(),
    ));
    values.push(("EVENT_TYPES", event_type_names()));
    let mut out = TEMPLATE.to_string();
    for (name, value) in &values {
        out = out.replace(&format!("@{name}@"), value);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::limits::{MAX_ID_LEN, MAX_MAP_ENTRIES};

    #[test]
    fn every_placeholder_is_filled_and_the_schema_is_json() {
        let s = json_schema();
        assert!(!s.contains('@'), "an unfilled placeholder: {s}");
        let v: serde_json::Value = serde_json::from_str(&s).unwrap();
        assert_eq!(v["properties"]["id"]["maxLength"], MAX_ID_LEN);
        assert_eq!(v["$defs"]["smallMap"]["maxProperties"], MAX_MAP_ENTRIES);
    }

    #[test]
    fn the_type_enum_is_every_event_type_and_each_parses() {
        let v: serde_json::Value = serde_json::from_str(&json_schema()).unwrap();
        let names = v["properties"]["type"]["enum"].as_array().unwrap();
        assert_eq!(names.len(), EVENT_TYPES.len());
        for (name, t) in names.iter().zip(EVENT_TYPES) {
            let parsed: EventType = serde_json::from_value(name.clone()).unwrap();
            assert_eq!(parsed, t);
        }
    }
}
