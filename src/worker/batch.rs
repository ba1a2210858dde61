//! The rules every batch route shares (events, import, outcomes): a size rule, each item parsed on
//! its own ([`crate::batch::partition`]: the good ones go on, the bad ones are answered by index)
//! and one answer for a batch with nothing good in it.

use super::http::ApiError;
pub use crate::batch::{partition, Rejected};
use crate::error_code::ErrorCode;

/// The size rule: not empty (`empty`: the code that says so), at most `max` items. `noun` names
/// the items ("events"), `per` the batch ("batch", "import batch").
pub fn check_len(
    n: usize,
    max: usize,
    noun: &str,
    per: &str,
    empty: ErrorCode,
) -> Result<(), ApiError> {
    if n == 0 {
        return Err(ApiError::new(
            400,
            empty,
            format!("the batch has no {noun}"),
        ));
    }
    if n > max {
        return Err(ApiError::new(
            400,
            ErrorCode::TooManyEvents,
            format!("{n} {noun}; at most {max} per {per}"),
        ));
    }
    Ok(())
}

/// The answer to a batch none of whose items is valid: the first rejection, by index (`noun`:
/// "event" or "outcome", whose batch field is the plural).
pub fn every_item_invalid(code: ErrorCode, noun: &str, rejected: &[Rejected]) -> ApiError {
    let (index, message) = rejected
        .first()
        .map_or((0, ""), |r| (r.index, r.message.as_str()));
    ApiError::new(
        400,
        code,
        format!("every {noun} is invalid; {noun}s[{index}]: {message}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_keeps_order_and_indexes_rejections() {
        let (good, bad) = partition(["1", "x", "3", "y"], |s| {
            s.parse::<u8>()
                .map_err(|e| (ErrorCode::InvalidField, e.to_string()))
        });
        assert_eq!(good, vec![1, 3]);
        assert_eq!(bad.iter().map(|r| r.index).collect::<Vec<_>>(), vec![1, 3]);
        let e = every_item_invalid(ErrorCode::InvalidEvent, "event", &bad);
        assert_eq!(e.status, 400);
        assert!(e.message.starts_with("every event is invalid; events[1]: "));
    }

    #[test]
    fn the_size_rule_names_what_is_wrong() {
        let empty = check_len(0, 5, "events", "batch", ErrorCode::InvalidEvent).unwrap_err();
        assert_eq!((empty.status, empty.code), (400, ErrorCode::InvalidEvent));
        let many = check_len(6, 5, "events", "batch", ErrorCode::InvalidEvent).unwrap_err();
        assert_eq!(many.code, ErrorCode::TooManyEvents);
        assert_eq!(many.message, "6 events; at most 5 per batch");
        assert!(check_len(5, 5, "events", "batch", ErrorCode::InvalidEvent).is_ok());
    }
}
