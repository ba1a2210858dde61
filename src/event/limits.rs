//! Hard limits on an event and a batch, defined once here. Exceeding any is an
//! [`EventError`](super::EventError), never a truncation: silently changed data would score
//! differently on the browser and the server.
//!
//! Lengths are UTF-8 bytes. The tracker's copy (`www/tracker/limits.js`) and the numbers in the event
//! schema (`www/event.schema.json`) are generated from this file ([`js_module`],
//! [`super::schema::json_schema`]); `tests/generated.rs` fails when a committed copy is stale and
//! `make generate` rewrites them.

/// Largest accepted JSON text of one event, in bytes.
pub const MAX_EVENT_BYTES: usize = 16 * 1024;
/// Longest `id`, `visitor_id`, `lead_id` or custom `name`.
pub const MAX_ID_LEN: usize = 128;
/// Longest `lead_id` (it is kept in visitor state, which has a 1 KB budget).
pub const MAX_LEAD_ID_LEN: usize = 64;
/// Longest `url` or `referrer`.
pub const MAX_URL_LEN: usize = 2048;
/// Longest `path`.
pub const MAX_PATH_LEN: usize = 1024;
/// Longest user agent.
pub const MAX_UA_LEN: usize = 512;
/// Most entries in `props` or in `traits`.
pub const MAX_MAP_ENTRIES: usize = 32;
/// Longest key in `props` or `traits`.
pub const MAX_KEY_LEN: usize = 64;
/// Longest string value in `props` or `traits`.
pub const MAX_VALUE_LEN: usize = 512;
/// Longest string value of a trait: traits are kept in visitor state, so a longer one is refused
/// rather than cut (a company name, a job title, an industry fit).
pub const MAX_TRAIT_VALUE_LEN: usize = 64;
/// Largest `engaged_ms` of one event: a heartbeat or page end never covers more than a day.
pub const MAX_ENGAGED_MS: f64 = 86_400_000.0;
/// Accepted timestamps: 2000-01-01 … 2100-01-01 (ms since the Unix epoch).
pub const MIN_TS: i64 = 946_684_800_000;
/// See [`MIN_TS`].
pub const MAX_TS: i64 = 4_102_444_800_000;
/// Largest accepted `|tz_offset|` in minutes (UTC−14 … UTC+14).
pub const MAX_TZ_OFFSET: i32 = 14 * 60;

/// Most events in one `POST /v1/events` batch.
pub const MAX_BATCH_EVENTS: usize = 100;
/// Largest request body the worker reads, in bytes.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

// The server-to-server routes (bearer): not the tracker's concern, so not in [`named`].

/// Most events in one `POST /v1/import` batch (of any number of visitors).
pub const MAX_IMPORT_EVENTS: usize = 1000;
/// Largest `POST /v1/import` body, in bytes.
pub const MAX_IMPORT_BODY_BYTES: usize = 1024 * 1024;
/// Largest `POST /v1/outcomes` (or `/v1/outcomes/hubspot`) body, in bytes.
pub const MAX_OUTCOMES_BODY_BYTES: usize = 256 * 1024;

/// Every limit as `(name, value)`, in the order they are written out: what [`js_module`] and the
/// schema template (`@NAME@`) are filled from.
pub fn named() -> Vec<(&'static str, String)> {
    vec![
        ("MAX_EVENT_BYTES", MAX_EVENT_BYTES.to_string()),
        ("MAX_ID_LEN", MAX_ID_LEN.to_string()),
        ("MAX_LEAD_ID_LEN", MAX_LEAD_ID_LEN.to_string()),
        ("MAX_URL_LEN", MAX_URL_LEN.to_string()),
        ("MAX_PATH_LEN", MAX_PATH_LEN.to_string()),
        ("MAX_UA_LEN", MAX_UA_LEN.to_string()),
        ("MAX_MAP_ENTRIES", MAX_MAP_ENTRIES.to_string()),
        ("MAX_KEY_LEN", MAX_KEY_LEN.to_string()),
        ("MAX_VALUE_LEN", MAX_VALUE_LEN.to_string()),
        ("MAX_TRAIT_VALUE_LEN", MAX_TRAIT_VALUE_LEN.to_string()),
        ("MAX_ENGAGED_MS", format!("{}", MAX_ENGAGED_MS as i64)),
        ("MIN_TS", MIN_TS.to_string()),
        ("MAX_TS", MAX_TS.to_string()),
        ("MAX_TZ_OFFSET", MAX_TZ_OFFSET.to_string()),
        ("MAX_BATCH_EVENTS", MAX_BATCH_EVENTS.to_string()),
        ("MAX_BODY_BYTES", MAX_BODY_BYTES.to_string()),
    ]
}

/// `www/tracker/limits.js`: the limits as an ES module the tracker imports.
pub fn js_module() -> String {
    let mut out = String::from(
        "// Generated from src/event/limits.rs by `make generate`: do not edit.\n\
         // Lengths are UTF-8 bytes, as the core counts them.\n",
    );
    for (name, value) in named() {
        out.push_str(&format!("export const {name} = {value};\n"));
    }
    out
}
