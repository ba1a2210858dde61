//! Site tables: what the scorer knows about the website (page tags, per-page statistics, special
//! days; date arithmetic is [`crate::calendar`]'s).
//!
//! They ship inside the model card (`card.site`) and can be replaced per run (`--site-table`). They are
//! compiled once into lookups, because the state update consults them on every page view.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use crate::calendar::{days_from_civil, weekday};

/// Most distinct tag sets (page classes) a site may define: state keeps counters per class, and
/// a feature names classes in a 16-bit mask.
pub const MAX_CLASSES: usize = 16;
/// Most distinct tags.
pub const MAX_TAGS: usize = 16;
/// Most per-page statistic columns.
pub const MAX_STATS: usize = 4;
/// Largest per-page statistic (`page_value` in a currency, counts…); every statistic is ≥ 0 and
/// a column named `*_rate` is at most 1. Why a bound: a session sums the statistics of its page
/// views and the feature is their mean as an `f32`, so a value must stay far inside both ranges
/// (1e39 is infinite as an `f32`, two views of 1e308 overflow the sum).
pub const MAX_PAGE_STAT: f64 = 1e9;
/// Largest `|special_day_peak_days_before|` and `special_day_width_days`: proximity is computed
/// to this year's and next year's dates, so a peak or width beyond a year says nothing more.
pub const MAX_SPECIAL_DAY_DAYS: i32 = 365;

/// Site tables as written in JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiteTables {
    /// Local offset (minutes east of UTC) used when an event carries no `tz_offset`, within
    /// ±[`crate::event::limits::MAX_TZ_OFFSET`].
    #[serde(default)]
    pub timezone_offset_minutes: i32,
    /// Inactivity that ends a session.
    #[serde(default = "default_timeout")]
    pub session_timeout_minutes: u32,
    /// Path rules, first match wins.
    #[serde(default)]
    pub page_rules: Vec<PageRule>,
    /// Tags of pages no rule matches.
    #[serde(default = "default_tags")]
    pub default_tags: Vec<String>,
    /// Per-page site statistics.
    #[serde(default)]
    pub page_stats: PageStats,
    /// Dates that drive the `special_day` feature.
    #[serde(default)]
    pub special_days: Vec<SpecialDay>,
    /// Days before a special day at which proximity peaks (1.0), within ±[`MAX_SPECIAL_DAY_DAYS`].
    #[serde(default = "default_peak")]
    pub special_day_peak_days_before: i32,
    /// Days from the peak at which proximity reaches 0: 1..=[`MAX_SPECIAL_DAY_DAYS`].
    #[serde(default = "default_width")]
    pub special_day_width_days: i32,
}

impl SiteTables {
    /// These tables with a site's own page rules tried before the card's; why: a site only names
    /// the paths it lays out differently, and every tag the model's features use stays known.
    pub fn with_rules_first(mut self, rules: Vec<PageRule>) -> SiteTables {
        self.page_rules = rules.into_iter().chain(self.page_rules).collect();
        self
    }
}

fn default_timeout() -> u32 {
    30
}
fn default_tags() -> Vec<String> {
    vec!["other".into()]
}
fn default_peak() -> i32 {
    7
}
fn default_width() -> i32 {
    5
}

/// One page rule: a prefix or exact path and the tags its pages carry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PageRule {
    /// Matches paths starting with this (at a `/` boundary or end).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// Matches this path exactly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exact: Option<String>,
    /// Tags of matching pages.
    pub tags: Vec<String>,
}

/// Per-page statistics: a value per column for each known path.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PageStats {
    /// Column names (`bounce_rate`, `exit_rate`, `page_value`, …).
    pub columns: Vec<String>,
    /// Exact path → one value per column, each from 0 to [`MAX_PAGE_STAT`] (to 1 in a `*_rate`
    /// column).
    pub pages: BTreeMap<String, Vec<f64>>,
}

/// A special day: a fixed date, or the n-th weekday of a month.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpecialDay {
    /// Month 1–12.
    pub month: u32,
    /// Day of month, for fixed dates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub day: Option<u32>,
    /// ISO weekday 1 = Monday … 7 = Sunday, with `nth`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weekday: Option<u32>,
    /// Which occurrence of `weekday` in the month (1–5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nth: Option<u32>,
}

/// Site tables that failed validation.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("site tables: {0}")]
pub struct SiteError(pub String);

/// Compiled site tables.
#[derive(Debug, Clone)]
pub struct Site {
    tables: SiteTables,
    tags: Vec<String>,
    /// Tag bitmask of each class.
    class_tags: Vec<u16>,
    /// Class of each rule, in rule order.
    rule_class: Vec<u8>,
    default_class: u8,
    stats: HashMap<String, Vec<f64>>,
}

impl Site {
    /// Validates and compiles site tables.
    pub fn new(tables: SiteTables) -> Result<Site, SiteError> {
        let err = |m: String| Err(SiteError(m));
        if !(1..=24 * 60).contains(&tables.session_timeout_minutes) {
            return err("session_timeout_minutes must be 1..=1440".into());
        }
        let max_tz = crate::event::limits::MAX_TZ_OFFSET;
        if !(-max_tz..=max_tz).contains(&tables.timezone_offset_minutes) {
            return err(format!(
                "timezone_offset_minutes must be within ±{max_tz}, not {}",
                tables.timezone_offset_minutes
            ));
        }
        let peak = tables.special_day_peak_days_before;
        if !(-MAX_SPECIAL_DAY_DAYS..=MAX_SPECIAL_DAY_DAYS).contains(&peak) {
            return err(format!(
                "special_day_peak_days_before must be within ±{MAX_SPECIAL_DAY_DAYS}, not {peak}"
            ));
        }
        let width = tables.special_day_width_days;
        if !(1..=MAX_SPECIAL_DAY_DAYS).contains(&width) {
            return err(format!(
                "special_day_width_days must be 1..={MAX_SPECIAL_DAY_DAYS}, not {width}"
            ));
        }
        let mut tags: Vec<String> = Vec::new();
        let mut class_tags: Vec<u16> = Vec::new();
        let mut class_of = |set: &[String], tags: &mut Vec<String>| -> Result<u8, SiteError> {
            if set.is_empty() {
                return Err(SiteError("a rule needs at least one tag".into()));
            }
            let mut mask = 0u16;
            for t in set {
                let i = match tags.iter().position(|x| x == t) {
                    Some(i) => i,
                    None => {
                        tags.push(t.clone());
                        tags.len() - 1
                    }
                };
                if i >= MAX_TAGS {
                    return Err(SiteError(format!("more than {MAX_TAGS} distinct tags")));
                }
                mask |= 1 << i;
            }
            let c = match class_tags.iter().position(|&m| m == mask) {
                Some(c) => c,
                None => {
                    class_tags.push(mask);
                    class_tags.len() - 1
                }
            };
            if c >= MAX_CLASSES {
                return Err(SiteError(format!(
                    "more than {MAX_CLASSES} distinct tag sets"
                )));
            }
            Ok(c as u8)
        };
        let default_class = class_of(&tables.default_tags, &mut tags)?;
        let mut rule_class = Vec::with_capacity(tables.page_rules.len());
        for (i, r) in tables.page_rules.iter().enumerate() {
            match (&r.prefix, &r.exact) {
                (Some(p), None) | (None, Some(p)) if p.starts_with('/') => {}
                _ => {
                    return err(format!(
                        "page_rules[{i}] needs one of `prefix`/`exact`, starting with '/'"
                    ))
                }
            }
            rule_class.push(class_of(&r.tags, &mut tags)?);
        }
        let n = tables.page_stats.columns.len();
        if n > MAX_STATS {
            return err(format!("page_stats has more than {MAX_STATS} columns"));
        }
        let columns = &tables.page_stats.columns;
        for (path, v) in &tables.page_stats.pages {
            if v.len() != n {
                return err(format!(
                    "page_stats[{path:?}] needs {n} values, one per column"
                ));
            }
            for (i, (x, column)) in v.iter().zip(columns).enumerate() {
                let max = if column.ends_with("_rate") {
                    1.0
                } else {
                    MAX_PAGE_STAT
                };
                if !(0.0..=max).contains(x) {
                    return err(format!(
                        "page_stats[{path:?}][{i}] ({column}) is {x}: it must be a number from 0 to {max}"
                    ));
                }
            }
        }
        for (i, d) in tables.special_days.iter().enumerate() {
            let ok = (1..=12).contains(&d.month)
                && match (d.day, d.weekday, d.nth) {
                    (Some(day), None, None) => (1..=31).contains(&day),
                    (None, Some(w), Some(n)) => (1..=7).contains(&w) && (1..=5).contains(&n),
                    _ => false,
                };
            if !ok {
                return err(format!(
                    "special_days[{i}] needs month and day, or month, weekday and nth"
                ));
            }
        }
        let stats = tables
            .page_stats
            .pages
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        Ok(Site {
            tables,
            tags,
            class_tags,
            rule_class,
            default_class,
            stats,
        })
    }

    /// The tables this site was compiled from.
    pub fn tables(&self) -> &SiteTables {
        &self.tables
    }

    /// Number of page classes (distinct tag sets).
    pub fn n_classes(&self) -> usize {
        self.class_tags.len()
    }

    /// Number of statistic columns.
    pub fn n_stats(&self) -> usize {
        self.tables.page_stats.columns.len()
    }

    /// Index of a statistic column.
    pub fn stat_index(&self, name: &str) -> Option<usize> {
        self.tables
            .page_stats
            .columns
            .iter()
            .position(|c| c == name)
    }

    /// Bitmask over classes of the pages carrying any of these tags; unknown tags match nothing.
    pub fn class_mask(&self, tags: &[String]) -> u16 {
        let tag_mask = tags
            .iter()
            .filter_map(|t| self.tags.iter().position(|x| x == t))
            .fold(0u16, |m, i| m | (1 << i));
        self.class_tags
            .iter()
            .enumerate()
            .filter(|(_, &m)| m & tag_mask != 0)
            .fold(0u16, |acc, (c, _)| acc | (1 << c))
    }

    /// Whether a tag is known to the site (features naming unknown tags are card errors).
    pub fn has_tag(&self, tag: &str) -> bool {
        self.tags.iter().any(|t| t == tag)
    }

    /// Class of a page path.
    pub fn class_of(&self, path: &str) -> u8 {
        for (rule, &class) in self.tables.page_rules.iter().zip(&self.rule_class) {
            let hit = match (&rule.exact, &rule.prefix) {
                (Some(e), _) => path == e,
                (None, Some(p)) => {
                    let p = p.trim_end_matches('/');
                    path.starts_with(p)
                        && (path.len() == p.len()
                            || path.as_bytes().get(p.len()) == Some(&b'/')
                            || p.is_empty())
                }
                (None, None) => false,
            };
            if hit {
                return class;
            }
        }
        self.default_class
    }

    /// Statistics of a page path: its own row, else (ignoring a trailing `/`) the row of its
    /// nearest ancestor below the root, so `/products/scoring/` uses `/products`' figures when it
    /// has none of its own. The root's row is never inherited: it describes the home page only.
    pub fn stats_of(&self, path: &str) -> Option<&[f64]> {
        if let Some(v) = self.stats.get(path) {
            return Some(v);
        }
        let mut p = path.trim_end_matches('/');
        while !p.is_empty() {
            if let Some(v) = self.stats.get(p) {
                return Some(v);
            }
            p = &p[..p.rfind('/')?];
        }
        None
    }

    /// Session inactivity timeout in ms.
    pub fn session_timeout_ms(&self) -> i64 {
        i64::from(self.tables.session_timeout_minutes) * 60_000
    }

    /// Default local offset in minutes.
    pub fn tz_offset(&self) -> i32 {
        self.tables.timezone_offset_minutes
    }

    /// Special-day proximity of a local civil date: 1 at the peak, falling linearly to 0.
    pub fn special_day(&self, year: i32, month: u32, day: u32) -> f64 {
        let today = days_from_civil(year, month, day);
        let peak = f64::from(self.tables.special_day_peak_days_before);
        let width = f64::from(self.tables.special_day_width_days);
        let mut best = 0.0f64;
        for d in &self.tables.special_days {
            for y in [year, year + 1] {
                let Some(date) = special_date(d, y) else {
                    continue;
                };
                let before = (date - today) as f64;
                let v = 1.0 - (before - peak).abs() / width;
                best = best.max(v);
            }
        }
        best
    }
}

fn special_date(d: &SpecialDay, year: i32) -> Option<i64> {
    match (d.day, d.weekday, d.nth) {
        (Some(day), _, _) => Some(days_from_civil(year, d.month, day)),
        (None, Some(w), Some(n)) => {
            let first = days_from_civil(year, d.month, 1);
            let first_wd = weekday(first);
            let offset = (i64::from(w) - i64::from(first_wd)).rem_euclid(7);
            Some(first + offset + 7 * i64::from(n - 1))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn site() -> Site {
        let t: SiteTables = serde_json::from_str(
            r#"{"page_rules":[{"prefix":"/pricing","tags":["product","pricing"]},
                {"prefix":"/products/","tags":["product"]},{"exact":"/demo","tags":["demo"]}],
                "page_stats":{"columns":["bounce_rate"],"pages":{"/pricing":[0.1]}},
                "special_days":[{"month":2,"day":14},{"month":5,"weekday":7,"nth":2}]}"#,
        )
        .unwrap();
        Site::new(t).unwrap()
    }

    #[test]
    fn classes_and_masks() {
        let s = site();
        assert_eq!(s.n_classes(), 4); // other, product+pricing, product, demo
        let pricing = s.class_of("/pricing");
        assert_eq!(s.class_of("/pricing/enterprise"), pricing);
        assert_eq!(s.class_of("/pricingx"), s.class_of("/nowhere"));
        assert_eq!(s.class_of("/products/a"), 2);
        assert_eq!(s.class_of("/demo/x"), 0);
        let m = s.class_mask(&["product".into()]);
        assert_eq!(m, (1 << 1) | (1 << 2));
        assert_eq!(s.class_mask(&["nope".into()]), 0);
        assert_eq!(s.stats_of("/pricing"), Some(&[0.1][..]));
    }

    #[test]
    fn stats_fall_back_to_the_nearest_ancestor_but_not_the_root() {
        let t: SiteTables = serde_json::from_str(
            r#"{"page_stats":{"columns":["v"],"pages":{"/":[9],"/a":[1],"/a/b":[2]}}}"#,
        )
        .unwrap();
        let s = Site::new(t).unwrap();
        assert_eq!(s.stats_of("/a/b/c/"), Some(&[2.0][..]));
        assert_eq!(s.stats_of("/a/x"), Some(&[1.0][..]));
        assert_eq!(s.stats_of("/a/"), Some(&[1.0][..]));
        assert_eq!(s.stats_of("/"), Some(&[9.0][..]));
        assert_eq!(s.stats_of("/ab"), None);
        assert_eq!(s.stats_of("/zzz/a"), None);
        assert_eq!(s.stats_of(""), None);
    }

    #[test]
    fn special_days() {
        let s = site();
        // Mother's Day 2026 is Sunday May 10: peak one week before.
        assert_eq!(s.special_day(2026, 5, 3), 1.0);
        assert!((s.special_day(2026, 5, 4) - 0.8).abs() < 1e-12);
        assert_eq!(s.special_day(2026, 5, 10), 0.0);
        assert!((s.special_day(2026, 2, 9) - 0.6).abs() < 1e-12);
        assert_eq!(s.special_day(2026, 7, 1), 0.0);
    }

    /// Every number is checked, and the error names the field: a value that passes would reach
    /// the visitor state and the features (an `f32` of 1e39 is infinite, a sum of 1e308s too).
    #[test]
    fn refuses_non_finite_and_out_of_range_numbers() {
        let cases = [
            (
                r#"{"timezone_offset_minutes":-2147483648}"#,
                "timezone_offset_minutes",
            ),
            (
                r#"{"timezone_offset_minutes":841}"#,
                "timezone_offset_minutes",
            ),
            (
                r#"{"special_day_peak_days_before":2147483647}"#,
                "special_day_peak_days_before",
            ),
            (
                r#"{"special_day_peak_days_before":-2147483648}"#,
                "special_day_peak_days_before",
            ),
            (
                r#"{"special_day_width_days":2147483647}"#,
                "special_day_width_days",
            ),
            (r#"{"special_day_width_days":0}"#, "special_day_width_days"),
            (
                r#"{"page_stats":{"columns":["page_value"],"pages":{"/x":[1e39]}}}"#,
                "page_stats[\"/x\"][0] (page_value)",
            ),
            (
                r#"{"page_stats":{"columns":["page_value"],"pages":{"/x":[1e308]}}}"#,
                "page_stats[\"/x\"][0] (page_value)",
            ),
            (
                r#"{"page_stats":{"columns":["a","bounce_rate"],"pages":{"/x":[0,-0.1]}}}"#,
                "page_stats[\"/x\"][1] (bounce_rate)",
            ),
            (
                r#"{"page_stats":{"columns":["exit_rate"],"pages":{"/x":[1.5]}}}"#,
                "page_stats[\"/x\"][0] (exit_rate)",
            ),
        ];
        for (json, field) in cases {
            let t: SiteTables = serde_json::from_str(json).unwrap();
            let e = Site::new(t).expect_err(json).to_string();
            assert!(e.contains(field), "{json}: {e}");
        }
        // The bounds themselves pass.
        let ok = r#"{"timezone_offset_minutes":-840,"special_day_peak_days_before":-365,
            "special_day_width_days":365,
            "page_stats":{"columns":["bounce_rate","page_value"],"pages":{"/x":[1,1e9],"/y":[0,0]}}}"#;
        Site::new(serde_json::from_str(ok).unwrap()).unwrap();
    }

    #[test]
    fn rejects_bad_tables() {
        let bad = [
            r#"{"page_rules":[{"tags":["a"]}]}"#,
            r#"{"page_rules":[{"prefix":"x","tags":["a"]}]}"#,
            r#"{"page_rules":[{"prefix":"/x","tags":[]}]}"#,
            r#"{"page_stats":{"columns":["a"],"pages":{"/":[1,2]}}}"#,
            r#"{"special_days":[{"month":13,"day":1}]}"#,
            r#"{"session_timeout_minutes":0}"#,
        ];
        for b in bad {
            let t: SiteTables = serde_json::from_str(b).unwrap();
            assert!(Site::new(t).is_err(), "{b}");
        }
    }
}
