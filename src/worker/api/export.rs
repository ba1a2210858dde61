//! `GET /v1/export/{events|scores|outcomes}?from=&to=` (bearer): a log's records whose time is in
//! [from, to), streamed as NDJSON — one R2 object at a time, so an export of any size holds one
//! object in memory. What local tools and tests read; in production R2 can also be read directly
//! (the objects are gzip NDJSON under `<log>/dt=YYYY-MM-DD/`, see [`crate::worker::logs`]).
//!
//! Records come in day order, and within a day in object order; copies that at-least-once
//! delivery made are not removed here (a reader de-duplicates by [`crate::log::Record::key`]).
//! An R2 failure after the first bytes ends the stream with an error (the client sees a broken
//! body, never a silently short one).

use std::collections::VecDeque;
use std::io::Read as _;

use futures_util::stream;
use worker::*;

use crate::error_code::ErrorCode;
use crate::log::{day_of, day_start, LogKind, Record};
use crate::worker::bindings::DATA;
use crate::worker::http::{now_ms, query, ApiError, ApiResult};

/// Longest range one export covers.
pub const MAX_EXPORT_DAYS: i64 = 400;
const DAY_MS: i64 = 86_400_000;
/// Objects listed per R2 call.
const LIST_PAGE: u32 = 100;

/// A time parameter: ms since the epoch, or a UTC day `YYYY-MM-DD` (its first ms).
fn parse_time(v: Option<String>, name: &str) -> ApiResult<Option<i64>> {
    let Some(v) = v else { return Ok(None) };
    v.parse::<i64>()
        .ok()
        .or_else(|| day_start(&v))
        .map(Some)
        .ok_or_else(|| {
            ApiError::new(
                400,
                ErrorCode::InvalidField,
                format!("`{name}`: {v:?} is neither ms since the epoch nor YYYY-MM-DD"),
            )
        })
}

struct Export {
    bucket: Bucket,
    log: LogKind,
    from: i64,
    to: i64,
    days: VecDeque<String>,
    /// The day being listed and the cursor of its next page.
    listing: Option<(String, Option<String>)>,
    keys: VecDeque<(String, String)>,
    done: bool,
}

impl Export {
    /// The next non-empty chunk of NDJSON, or `None` at the end.
    async fn next(&mut self) -> Option<Result<Vec<u8>>> {
        while !self.done {
            if let Some((day, key)) = self.keys.pop_front() {
                match self.object(&day, &key).await {
                    Ok(b) if b.is_empty() => continue,
                    Ok(b) => return Some(Ok(b)),
                    Err(e) => {
                        self.done = true;
                        return Some(Err(e));
                    }
                }
            }
            let (day, cursor) = match self.listing.take() {
                Some(l) => l,
                None => match self.days.pop_front() {
                    Some(d) => (d, None),
                    None => return None,
                },
            };
            let mut list = self
                .bucket
                .list()
                .prefix(self.log.day_prefix(&day))
                .limit(LIST_PAGE);
            if let Some(c) = cursor {
                list = list.cursor(c);
            }
            match list.execute().await {
                Ok(page) => {
                    for o in page.objects() {
                        self.keys.push_back((day.clone(), o.key()));
                    }
                    if page.truncated() {
                        self.listing = Some((day, page.cursor()));
                    }
                }
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            }
        }
        None
    }

    /// One object's records in range.
    async fn object(&self, day: &str, key: &str) -> Result<Vec<u8>> {
        let Some(obj) = self.bucket.get(key).execute().await? else {
            return Ok(Vec::new()); // deleted since it was listed (retention)
        };
        let Some(body) = obj.body() else {
            return Ok(Vec::new());
        };
        let gz = body.bytes().await?;
        let mut text = Vec::new();
        flate2::read::MultiGzDecoder::new(gz.as_slice())
            .read_to_end(&mut text)
            .map_err(|e| Error::RustError(format!("{key}: {e}")))?;
        let start = day_start(day).unwrap_or(i64::MIN);
        if start >= self.from && start + DAY_MS <= self.to {
            return Ok(text); // the whole day is in range
        }
        let mut out = Vec::new();
        for line in text.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            let time = serde_json::from_slice::<Record>(line)
                .map(|r| r.time())
                .map_err(|e| Error::RustError(format!("{key}: {e}")))?;
            if (self.from..self.to).contains(&time) {
                out.extend_from_slice(line);
                out.push(b'\n');
            }
        }
        Ok(out)
    }
}

/// The route: checks the log and the range, then streams.
pub async fn export(req: &Request, env: &Env, log: &str) -> ApiResult<Response> {
    let log = LogKind::parse(log).ok_or_else(|| {
        ApiError::new(
            404,
            ErrorCode::NotFound,
            format!("no log {log:?}: one of events, scores, outcomes"),
        )
    })?;
    let from = parse_time(query(req, "from")?, "from")?.ok_or_else(|| {
        ApiError::new(
            400,
            ErrorCode::InvalidField,
            "`from` is required (ms since the epoch or YYYY-MM-DD)",
        )
    })?;
    let to = parse_time(query(req, "to")?, "to")?.unwrap_or_else(|| now_ms() + 1);
    if to <= from {
        return Err(ApiError::new(
            400,
            ErrorCode::InvalidField,
            "`to` must be after `from` (the range is [from, to))",
        ));
    }
    let first = day_start(&day_of(from)).unwrap_or(from);
    // In i128: `to` may be any i64, and the span of two must not wrap into a short range.
    let span = (i128::from(to) - i128::from(first) + i128::from(DAY_MS) - 1) / i128::from(DAY_MS);
    let days = i64::try_from(span).unwrap_or(i64::MAX);
    if days > MAX_EXPORT_DAYS {
        return Err(ApiError::new(
            400,
            ErrorCode::InvalidField,
            format!("the range covers {days} days; at most {MAX_EXPORT_DAYS} per export"),
        ));
    }
    let export = Export {
        bucket: env.bucket(DATA)?,
        log,
        from,
        to,
        days: (0..days).map(|i| day_of(first + i * DAY_MS)).collect(),
        listing: None,
        keys: VecDeque::new(),
        done: false,
    };
    let body = stream::unfold(export, |mut e| async move {
        let chunk = e.next().await?;
        Some((chunk, e))
    });
    let mut r = Response::from_stream(body)?;
    r.headers_mut()
        .set("content-type", "application/x-ndjson; charset=utf-8")?;
    Ok(r)
}
