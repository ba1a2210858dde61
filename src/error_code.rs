//! The stable, machine-readable error codes every front end answers with: `{"error": {"code",
//! "message"}}` over HTTP, `err.code` on a browser `Error`, the CLI's per-line messages. One enum,
//! so a code is never a string that a caller maps back.

use serde::{Deserialize, Serialize};

/// An error code; serialized as its `snake_case` name. A name this build does not know reads as
/// [`ErrorCode::Internal`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The text is not JSON.
    InvalidJson,
    /// A field is missing, of the wrong type, or out of its limits.
    InvalidField,
    /// An event (or a batch of them) cannot be used.
    InvalidEvent,
    /// One event is larger than its limit.
    EventTooLarge,
    /// A batch holds more events than its limit.
    TooManyEvents,
    /// A request body is larger than its limit.
    BodyTooLarge,
    /// A request body could not be read as UTF-8 text.
    InvalidBody,
    /// The site key is not one of this deployment's.
    InvalidSiteKey,
    /// The request's `Origin` is not allowed.
    OriginNotAllowed,
    /// The bearer token is missing or wrong.
    Unauthorized,
    /// A lead signature does not verify.
    InvalidSignature,
    /// Nothing is known under this id or path.
    NotFound,
    /// The path does not answer this method.
    MethodNotAllowed,
    /// The request path is longer than its limit.
    UriTooLong,
    /// Too many events for one visitor in a minute.
    RateLimited,
    /// The input is well-formed but cannot be scored.
    InvalidInput,
    /// A configuration (page rules, bundle) given to the scorer is invalid.
    InvalidConfig,
    /// An uploaded model bundle does not read or fails its check.
    InvalidBundle,
    /// The request conflicts with what is stored (an immutable version, a concurrent change,
    /// nothing to roll back to).
    Conflict,
    /// Too little data to decide on (a window too small to become a baseline).
    InsufficientData,
    /// The model failed to load or run.
    Model,
    /// Anything else: a bug or an unavailable dependency.
    #[serde(other)]
    Internal,
}

impl ErrorCode {
    /// Every code, in the order the OpenAPI document lists them (`www/openapi.yaml` is checked
    /// against this by `tests/generated.rs`).
    pub const ALL: [ErrorCode; 22] = [
        ErrorCode::InvalidJson,
        ErrorCode::InvalidField,
        ErrorCode::InvalidEvent,
        ErrorCode::EventTooLarge,
        ErrorCode::TooManyEvents,
        ErrorCode::BodyTooLarge,
        ErrorCode::InvalidBody,
        ErrorCode::InvalidSiteKey,
        ErrorCode::OriginNotAllowed,
        ErrorCode::Unauthorized,
        ErrorCode::InvalidSignature,
        ErrorCode::NotFound,
        ErrorCode::MethodNotAllowed,
        ErrorCode::UriTooLong,
        ErrorCode::RateLimited,
        ErrorCode::InvalidInput,
        ErrorCode::InvalidConfig,
        ErrorCode::InvalidBundle,
        ErrorCode::Conflict,
        ErrorCode::InsufficientData,
        ErrorCode::Model,
        ErrorCode::Internal,
    ];

    /// The OpenAPI line that lists the codes (the one place a document repeats them).
    pub fn openapi_enum_line() -> String {
        let names: Vec<&str> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
        format!(
            "              enum: [{}] # generated from src/error_code.rs",
            names.join(", ")
        )
    }

    /// The code's wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidJson => "invalid_json",
            ErrorCode::InvalidField => "invalid_field",
            ErrorCode::InvalidEvent => "invalid_event",
            ErrorCode::EventTooLarge => "event_too_large",
            ErrorCode::TooManyEvents => "too_many_events",
            ErrorCode::BodyTooLarge => "body_too_large",
            ErrorCode::InvalidBody => "invalid_body",
            ErrorCode::InvalidSiteKey => "invalid_site_key",
            ErrorCode::OriginNotAllowed => "origin_not_allowed",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::InvalidSignature => "invalid_signature",
            ErrorCode::NotFound => "not_found",
            ErrorCode::MethodNotAllowed => "method_not_allowed",
            ErrorCode::UriTooLong => "uri_too_long",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::InvalidInput => "invalid_input",
            ErrorCode::InvalidConfig => "invalid_config",
            ErrorCode::InvalidBundle => "invalid_bundle",
            ErrorCode::Conflict => "conflict",
            ErrorCode::InsufficientData => "insufficient_data",
            ErrorCode::Model => "model",
            ErrorCode::Internal => "internal",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wire_name_is_the_serde_name_and_unknown_names_are_internal() {
        for code in [
            ErrorCode::InvalidJson,
            ErrorCode::EventTooLarge,
            ErrorCode::OriginNotAllowed,
            ErrorCode::UriTooLong,
            ErrorCode::Model,
            ErrorCode::Internal,
        ] {
            let json = serde_json::to_string(&code).unwrap();
            assert_eq!(json, format!("\"{}\"", code.as_str()));
            assert_eq!(serde_json::from_str::<ErrorCode>(&json).unwrap(), code);
        }
        for (i, code) in ErrorCode::ALL.into_iter().enumerate() {
            // In declaration order, `Internal` last: a new code not added to ALL fails here.
            assert_eq!(code as usize, i);
            let json = serde_json::to_string(&code).unwrap();
            assert_eq!(json, format!("\"{}\"", code.as_str()));
        }
        assert_eq!(ErrorCode::Internal as usize, ErrorCode::ALL.len() - 1);
        let unknown: ErrorCode = serde_json::from_str("\"brand_new_code\"").unwrap();
        assert_eq!(unknown, ErrorCode::Internal);
    }
}
