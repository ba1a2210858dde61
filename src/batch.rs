//! A batch split into its good items and its indexed rejections: what every batch route
//! (`/v1/events`, `/v1/import`, `/v1/outcomes`) answers, counted one way.

use serde::{Deserialize, Serialize};

use crate::error_code::ErrorCode;

/// One refused item of a batch; the rest of the batch is accepted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rejected {
    /// Its position in the batch (from 0).
    pub index: usize,
    /// Why, for machines.
    pub code: ErrorCode,
    /// Why, for people.
    pub message: String,
}

/// Each item through `check`, in order: the accepted ones, and a [`Rejected`] (its position,
/// code and message) for each refused one.
pub fn partition<I, T>(
    items: impl IntoIterator<Item = I>,
    mut check: impl FnMut(I) -> Result<T, (ErrorCode, String)>,
) -> (Vec<T>, Vec<Rejected>) {
    let mut good = Vec::new();
    let mut rejected = Vec::new();
    for (index, item) in items.into_iter().enumerate() {
        match check(item) {
            Ok(t) => good.push(t),
            Err((code, message)) => rejected.push(Rejected {
                index,
                code,
                message,
            }),
        }
    }
    (good, rejected)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Event;

    #[test]
    fn good_items_in_order_and_rejections_by_position() {
        let lines = [
            r#"{"id":"a","type":"page","ts":1700000000000,"visitor_id":"v","path":"/"}"#,
            "{",
            r#"{"id":"b","type":"page","ts":1700000000000,"visitor_id":"v","path":"x"}"#,
            r#"{"id":"c","type":"page","ts":1700000000000,"visitor_id":"v","path":"/c"}"#,
        ];
        let (good, rejected) = partition(lines, |l| {
            Event::parse(l).map_err(|e| (e.code(), e.to_string()))
        });
        let ids: Vec<&str> = good.iter().map(|e| e.id.as_str()).collect();
        assert_eq!(ids, ["a", "c"]);
        let at: Vec<(usize, ErrorCode)> = rejected.iter().map(|r| (r.index, r.code)).collect();
        assert_eq!(
            at,
            [(1, ErrorCode::InvalidJson), (2, ErrorCode::InvalidField)]
        );
        assert!(rejected[1].message.contains("path"), "{rejected:?}");
    }
}
