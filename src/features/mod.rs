//! Features: model inputs computed from visitor state, as declared by a model card.
//!
//! This is the one implementation of every feature: it builds the training matrix (via
//! `leadscore features`) and serves. Kinds and parameters are documented in `models/README.md`.
//! Kinds over signals (named events, page tags) and time in the funnel are in `signal.rs`.
//! Account kinds read what the subject's own state cannot hold, its colleagues' activity: the
//! front end passes it in a [`Context`].

mod signal;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::event::{channel, useragent, Value};
use crate::site::Site;
use crate::state::{Counts, Signal, StateConfig, VisitorState, MAX_HALF_LIVES, MAX_TRAITS};

pub use signal::MAX_DAYS;

/// A feature as declared in `card.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeatureSpec {
    /// Model input name (unique).
    pub name: String,
    /// Feature kind.
    pub kind: String,
    /// Kind parameters.
    #[serde(default)]
    pub params: serde_json::Map<String, serde_json::Value>,
    /// Dataset column this feature reproduces (default model only), or a sum `A+B`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub column: Option<String>,
    /// Dataset value → number, where the column is not numeric.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoding: Option<BTreeMap<String, f64>>,
    /// Free-text description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// What a salesperson reads for this feature ("Traffic source"); scores fall back to `name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// Display names of coded values, keyed by the value's shortest decimal (`"8": "Email"`); why:
    /// a factor should say "Email", not the code the model sees.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub values: Option<BTreeMap<String, String>>,
    /// `fit` (who: traits, firmographics) or `engagement` (what they do); default: `fit` for
    /// `trait` features, `engagement` for every other kind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// How a factor reads as a sentence, `{value}` and `{label}` filled in ("{value} webinars in
    /// the last 30 days"); default: "{label}: {value}".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sentence: Option<String>,
}

/// Feature groups: who the lead is (`fit`: traits, firmographics) and what they do (`engagement`).
pub const GROUPS: [&str; 2] = ["fit", "engagement"];

/// Kinds read from the calendar alone (the event's date and time, the site's special days).
pub const CALENDAR_KINDS: [&str; 3] = ["weekend", "hour_of_day", "special_day"];

impl FeatureSpec {
    /// Whether the feature is a function of the calendar alone: its distribution over a window is
    /// set by the window's dates (a Saturday, December), so the monitor reports its drift but
    /// never alerts on it.
    pub fn is_calendar(&self) -> bool {
        CALENDAR_KINDS.contains(&self.kind.as_str())
    }

    /// Whether the feature describes who the lead is (`fit`) rather than what they do.
    pub fn is_fit(&self) -> bool {
        match self.group.as_deref() {
            Some(g) => g == "fit",
            None => self.kind == "trait",
        }
    }
}

/// A feature declaration that cannot be served.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("feature `{name}` ({kind}): {message}")]
pub struct FeatureError {
    /// Feature name.
    pub name: String,
    /// Feature kind.
    pub kind: String,
    /// What is wrong.
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Scope {
    Session,
    Visitor,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Agg {
    Mean,
    Max,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Counter {
    FormsStarted,
    FormsSubmitted,
    CtaClicks,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Family {
    Os,
    Browser,
    Device,
}

/// A compiled feature: names resolved to indices and masks.
#[derive(Debug, Clone, PartialEq)]
enum Kind {
    PageViews(u16, Scope),
    EngagedSeconds(u16, Scope),
    StatMean(usize),
    Visited(u16, Scope),
    Flag(Counter, Scope),
    Count(Counter, Scope),
    PagesPerSession,
    Sessions,
    VisitorType([f32; 3]),
    Weekend,
    HourOfDay,
    SpecialDay,
    Channel {
        first: bool,
        scope: Scope,
        codes: Vec<f32>,
        default: f32,
    },
    UniqueChannels(Scope),
    Agent(Family, Vec<f32>, f32),
    Scroll(Agg, Scope),
    Velocity(usize),
    QuickConversion(u16, u16),
    TraitNum(String, f32),
    TraitCat(String, BTreeMap<String, f32>, f32),
    Signal(signal::SignalKind),
    /// Colleagues: other members of the account active within the window (ms; `None`: all).
    Colleagues(Option<i64>),
}

/// What a subject's features read beyond its own state.
///
/// The worker fills it from the account object before scoring; `leadscore dataset` from the
/// logged `group` events up to the row's decision time. The browser has none: account kinds
/// are missing (NaN) there.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Context<'a> {
    /// The latest activity (ms) of each other member of the subject's account, as the account
    /// knows it; `None`: the subject has no account.
    pub colleagues: Option<&'a [i64]>,
}

/// Account kinds: read from a [`Context`], never from the state.
pub const ACCOUNT_KINDS: [&str; 1] = ["colleagues"];

/// The compiled feature list of a model, in input order.
#[derive(Debug, Clone)]
pub struct FeatureSet {
    names: Vec<String>,
    kinds: Vec<Kind>,
    half_lives: Vec<f64>,
    reads: signal::Reads,
    reads_account: bool,
}

impl FeatureSet {
    /// Compiles feature declarations against a site.
    ///
    /// Errors name the feature: an unknown kind or parameter, a tag the site lacks, more signals,
    /// half-lives or traits than the state keeps.
    pub fn new(specs: &[FeatureSpec], site: &Site) -> Result<FeatureSet, FeatureError> {
        let mut half_lives = Vec::new();
        let mut reads = signal::Reads::default();
        let mut names: Vec<String> = Vec::with_capacity(specs.len());
        let mut kinds = Vec::with_capacity(specs.len());
        for spec in specs {
            if names.contains(&spec.name) {
                return Err(err(spec, "duplicate name"));
            }
            if let Some(g) = &spec.group {
                if !GROUPS.contains(&g.as_str()) {
                    return Err(err(spec, "`group` must be \"fit\" or \"engagement\""));
                }
            }
            let kind = if signal::KINDS.contains(&spec.kind.as_str()) {
                Kind::Signal(
                    reads
                        .compile(&spec.kind, &spec.params, site)
                        .map_err(|m| err(spec, m))?,
                )
            } else {
                compile(spec, site, &mut half_lives)?
            };
            if let Kind::TraitNum(t, _) | Kind::TraitCat(t, _, _) = &kind {
                if !reads.traits.contains(t) {
                    if reads.traits.len() == MAX_TRAITS {
                        return Err(err(spec, format!("at most {MAX_TRAITS} distinct traits")));
                    }
                    reads.traits.push(t.clone());
                }
            }
            kinds.push(kind);
            names.push(spec.name.clone());
        }
        let reads_account = kinds.iter().any(|k| matches!(k, Kind::Colleagues(_)));
        Ok(FeatureSet {
            names,
            kinds,
            half_lives,
            reads,
            reads_account,
        })
    }

    /// Feature names in input order.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Number of features.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// Whether there are no features.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// The input vector from features given by name (`POST /v1/score {features}`): every feature
    /// must be given, once, as a finite number that fits an `f32`; why: a vector with a silent
    /// default would score something the caller did not send.
    pub fn vector_from_named<'a>(
        &self,
        named: impl IntoIterator<Item = (&'a str, Option<f64>)>,
    ) -> Result<Vec<f32>, String> {
        let mut x = vec![f32::NAN; self.len()];
        for (k, v) in named {
            let i = self
                .names
                .iter()
                .position(|n| n == k)
                .ok_or_else(|| format!("unknown feature `{k}`"))?;
            let value = v.map(|f| f as f32).filter(|f| f.is_finite());
            x[i] = value
                .ok_or_else(|| format!("feature `{k}` must be a finite number within ±3.4e38"))?;
        }
        match x.iter().position(|v| v.is_nan()) {
            Some(i) => Err(format!("feature `{}` is missing", self.names[i])),
            None => Ok(x),
        }
    }

    /// Half-lives the state must accumulate for `engagement_velocity` features.
    pub fn half_lives(&self) -> &[f64] {
        &self.half_lives
    }

    /// Signals the state must count, in the order the features refer to them.
    pub fn signals(&self) -> &[Signal] {
        &self.reads.signals
    }

    /// Trait names the features read: the ones the state keeps.
    pub fn traits(&self) -> &[String] {
        &self.reads.traits
    }

    /// Whether some feature reads the subject's account (a [`Context`] worth fetching).
    pub fn reads_account(&self) -> bool {
        self.reads_account
    }

    /// The state configuration these features need on a site.
    pub fn state_config(&self, site: Site) -> StateConfig {
        StateConfig {
            site,
            half_lives: self.half_lives.clone(),
            signals: self.reads.signals.clone(),
            traits: self.reads.traits.clone(),
        }
    }

    /// Computes every feature into `out` (len = [`FeatureSet::len`]). A value beyond `f32`'s
    /// range (a trait of 1e300, a mean of 1e39) is `±f32::MAX`, never infinite: the trees take
    /// the same branches (their thresholds are finite), and a score's JSON can be read back. NaN
    /// stays: it is a missing input.
    pub fn compute(&self, s: &VisitorState, cfg: &StateConfig, out: &mut [f32]) {
        self.compute_at(s, cfg, s.last_ts, out);
    }

    /// [`FeatureSet::compute`] as of a time `as_of` (ms) at or after the state's latest event:
    /// what windows, decays and "days since" measure to (a snapshot decision time).
    pub fn compute_at(&self, s: &VisitorState, cfg: &StateConfig, as_of: i64, out: &mut [f32]) {
        self.compute_in(s, cfg, as_of, Context::default(), out);
    }

    /// [`FeatureSet::compute_at`] with what the state does not hold (its account).
    pub fn compute_in(
        &self,
        s: &VisitorState,
        cfg: &StateConfig,
        as_of: i64,
        ctx: Context<'_>,
        out: &mut [f32],
    ) {
        let as_of = as_of.max(s.last_ts);
        for (o, k) in out.iter_mut().zip(&self.kinds) {
            let v = match k {
                Kind::Colleagues(window) => colleagues(ctx, as_of, *window),
                _ => value(k, s, cfg, as_of),
            };
            *o = if v.is_infinite() {
                f32::MAX.copysign(v)
            } else {
                v
            };
        }
    }
}

/// Features with the state configuration they need: everything that turns events into model
/// inputs, with or without a model (a card template builds a site's first training set).
#[derive(Debug, Clone)]
pub struct Featurizer {
    set: FeatureSet,
    cfg: StateConfig,
}

impl Featurizer {
    /// Compiles feature declarations for a site.
    pub fn new(specs: &[FeatureSpec], site: Site) -> Result<Featurizer, FeatureError> {
        let set = FeatureSet::new(specs, &site)?;
        let cfg = set.state_config(site);
        Ok(Featurizer { set, cfg })
    }

    /// The compiled features.
    pub fn features(&self) -> &FeatureSet {
        &self.set
    }

    /// The state configuration (site tables, half-lives, signals, traits).
    pub fn state_config(&self) -> &StateConfig {
        &self.cfg
    }

    /// A fresh, empty visitor state.
    pub fn new_state(&self) -> VisitorState {
        VisitorState::new(&self.cfg)
    }

    /// Applies one event (`now`: receive time, for clock clamping).
    pub fn apply(
        &self,
        state: &mut VisitorState,
        event: &crate::event::Event,
        now: Option<i64>,
    ) -> crate::state::Apply {
        state.apply(event, &self.cfg, now)
    }

    /// The feature vector of a state, as of its latest event.
    pub fn vector(&self, state: &VisitorState) -> Vec<f32> {
        self.vector_at(state, state.last_ts)
    }

    /// The feature vector of a state as of `as_of` (ms, not before its latest event).
    pub fn vector_at(&self, state: &VisitorState, as_of: i64) -> Vec<f32> {
        self.vector_in(state, as_of, Context::default())
    }

    /// [`Featurizer::vector_at`] with the subject's [`Context`].
    pub fn vector_in(&self, state: &VisitorState, as_of: i64, ctx: Context<'_>) -> Vec<f32> {
        let mut x = vec![0.0; self.set.len()];
        self.set.compute_in(state, &self.cfg, as_of, ctx, &mut x);
        x
    }
}

fn err(spec: &FeatureSpec, message: impl Into<String>) -> FeatureError {
    FeatureError {
        name: spec.name.clone(),
        kind: spec.kind.clone(),
        message: message.into(),
    }
}

fn compile(
    spec: &FeatureSpec,
    site: &Site,
    half_lives: &mut Vec<f64>,
) -> Result<Kind, FeatureError> {
    let p = &spec.params;
    let known = |allowed: &[&str]| -> Result<(), FeatureError> {
        match p.keys().find(|k| !allowed.contains(&k.as_str())) {
            Some(k) => Err(err(spec, format!("unknown parameter `{k}`"))),
            None => Ok(()),
        }
    };
    let scope = || -> Result<Scope, FeatureError> {
        match p.get("scope").map(|v| v.as_str()) {
            None | Some(Some("session")) => Ok(Scope::Session),
            Some(Some("visitor")) => Ok(Scope::Visitor),
            _ => Err(err(spec, "`scope` must be \"session\" or \"visitor\"")),
        }
    };
    let tags = |key: &str| -> Result<u16, FeatureError> {
        let list: Vec<String> = match p.get(key) {
            Some(serde_json::Value::Array(a)) => a
                .iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect(),
            Some(serde_json::Value::String(s)) => vec![s.clone()],
            _ => return Err(err(spec, format!("`{key}` must list page tags"))),
        };
        if let Some(t) = list.iter().find(|t| !site.has_tag(t)) {
            return Err(err(
                spec,
                format!("tag `{t}` is not in the site's page rules"),
            ));
        }
        Ok(site.class_mask(&list))
    };
    let codes = |names: &[&str]| -> Result<(Vec<f32>, f32), FeatureError> {
        let default = p.get("default").and_then(|v| v.as_f64()).unwrap_or(0.0) as f32;
        let map = match p.get("codes") {
            Some(serde_json::Value::Object(m)) => m,
            _ => return Err(err(spec, "`codes` must map family names to numbers")),
        };
        let mut out = vec![default; names.len()];
        for (k, v) in map {
            let i = names.iter().position(|n| n == k).ok_or_else(|| {
                err(
                    spec,
                    format!("unknown value `{k}` in codes (known: {})", names.join(", ")),
                )
            })?;
            out[i] = v
                .as_f64()
                .ok_or_else(|| err(spec, format!("code of `{k}` must be a number")))?
                as f32;
        }
        Ok((out, default))
    };
    let kind =
        match spec.kind.as_str() {
            "page_views" | "engaged_seconds" | "visited_category" => {
                let key = if spec.kind == "visited_category" {
                    "category"
                } else {
                    "categories"
                };
                known(&[key, "scope"])?;
                let (m, sc) = (tags(key)?, scope()?);
                match spec.kind.as_str() {
                    "page_views" => Kind::PageViews(m, sc),
                    "engaged_seconds" => Kind::EngagedSeconds(m, sc),
                    _ => Kind::Visited(m, sc),
                }
            }
            "page_stat_mean" => {
                known(&["stat"])?;
                let stat = p.get("stat").and_then(|v| v.as_str()).unwrap_or_default();
                Kind::StatMean(site.stat_index(stat).ok_or_else(|| {
                    err(spec, format!("stat `{stat}` is not a page_stats column"))
                })?)
            }
            "form_started" | "form_submitted" | "cta_clicks" => {
                known(&["scope"])?;
                let sc = scope()?;
                match spec.kind.as_str() {
                    "form_started" => Kind::Flag(Counter::FormsStarted, sc),
                    "form_submitted" => Kind::Flag(Counter::FormsSubmitted, sc),
                    _ => Kind::Count(Counter::CtaClicks, sc),
                }
            }
            "pages_per_session" => {
                known(&[])?;
                Kind::PagesPerSession
            }
            "sessions" => {
                known(&[])?;
                Kind::Sessions
            }
            "visitor_type" => {
                known(&["codes", "default"])?;
                let (c, _) = codes(&["new", "returning", "unknown"])?;
                Kind::VisitorType([c[0], c[1], c[2]])
            }
            "weekend" => {
                known(&[])?;
                Kind::Weekend
            }
            "hour_of_day" => {
                known(&[])?;
                Kind::HourOfDay
            }
            "special_day" => {
                known(&[])?;
                Kind::SpecialDay
            }
            "channel" => {
                known(&["touch", "scope", "codes", "default"])?;
                let first = match p.get("touch").and_then(|v| v.as_str()) {
                    None | Some("first") => true,
                    Some("last") => false,
                    _ => return Err(err(spec, "`touch` must be \"first\" or \"last\"")),
                };
                let (codes, default) = codes(&channel::CHANNELS)?;
                Kind::Channel {
                    first,
                    scope: scope()?,
                    codes,
                    default,
                }
            }
            "unique_channels" => {
                known(&["scope"])?;
                Kind::UniqueChannels(scope()?)
            }
            "os" | "browser" | "device" => {
                known(&["codes", "default"])?;
                let (family, names): (Family, &[&str]) = match spec.kind.as_str() {
                    "os" => (Family::Os, &useragent::OS),
                    "browser" => (Family::Browser, &useragent::BROWSERS),
                    _ => (Family::Device, &useragent::DEVICES),
                };
                let (c, d) = codes(names)?;
                Kind::Agent(family, c, d)
            }
            "scroll_depth" => {
                known(&["agg", "scope"])?;
                let agg = match p.get("agg").and_then(|v| v.as_str()) {
                    Some("mean") => Agg::Mean,
                    Some("max") => Agg::Max,
                    _ => return Err(err(spec, "`agg` must be \"mean\" or \"max\"")),
                };
                Kind::Scroll(agg, scope()?)
            }
            "engagement_velocity" => {
                known(&["half_life_seconds"])?;
                let hl = p
                    .get("half_life_seconds")
                    .and_then(|v| v.as_f64())
                    .filter(|h| *h > 0.0 && h.is_finite())
                    .ok_or_else(|| err(spec, "`half_life_seconds` must be a positive number"))?;
                let i = match half_lives.iter().position(|h| *h == hl) {
                    Some(i) => i,
                    None if half_lives.len() < MAX_HALF_LIVES => {
                        half_lives.push(hl);
                        half_lives.len() - 1
                    }
                    None => {
                        return Err(err(
                            spec,
                            format!("at most {MAX_HALF_LIVES} distinct half-lives"),
                        ))
                    }
                };
                Kind::Velocity(i)
            }
            "quick_conversion" => {
                known(&["categories", "within_pages"])?;
                let n = p
                    .get("within_pages")
                    .and_then(|v| v.as_u64())
                    .filter(|n| (1..=1000).contains(n))
                    .ok_or_else(|| err(spec, "`within_pages` must be 1..=1000"))?;
                Kind::QuickConversion(tags("categories")?, n as u16)
            }
            "colleagues" => {
                known(&["window_days"])?;
                match p.get("window_days") {
                    None => Kind::Colleagues(None),
                    Some(d) => Kind::Colleagues(Some(
                        signal::days_ms(d, "window_days").map_err(|m| err(spec, m))?,
                    )),
                }
            }
            "trait" => {
                known(&["name", "codes", "default"])?;
                let name = p
                    .get("name")
                    .and_then(|v| v.as_str())
                    .filter(|n| !n.is_empty())
                    .ok_or_else(|| err(spec, "`name` of the trait is required"))?
                    .to_string();
                let default = p
                    .get("default")
                    .and_then(|v| v.as_f64())
                    .unwrap_or(f64::NAN) as f32;
                match p.get("codes") {
                    None => Kind::TraitNum(name, default),
                    Some(serde_json::Value::Object(m)) => {
                        let mut map = BTreeMap::new();
                        for (k, v) in m {
                            let n = v.as_f64().ok_or_else(|| {
                                err(spec, format!("code of `{k}` must be a number"))
                            })?;
                            map.insert(k.to_ascii_lowercase(), n as f32);
                        }
                        Kind::TraitCat(name, map, default)
                    }
                    _ => return Err(err(spec, "`codes` must map trait values to numbers")),
                }
            }
            other => return Err(err(spec, format!("unknown kind `{other}`"))),
        };
    Ok(kind)
}

fn masked<T: Copy + Into<f64>>(values: &[T], mask: u16) -> f64 {
    values
        .iter()
        .enumerate()
        .filter(|(i, _)| mask & (1 << i) != 0)
        .map(|(_, v)| (*v).into())
        .sum()
}

fn counts(s: &VisitorState, sc: Scope) -> &Counts {
    match sc {
        Scope::Session => &s.session.counts,
        Scope::Visitor => &s.total,
    }
}

fn counter(c: &Counts, which: Counter) -> f32 {
    f32::from(match which {
        Counter::FormsStarted => c.forms_started,
        Counter::FormsSubmitted => c.forms_submitted,
        Counter::CtaClicks => c.cta_clicks,
    })
}

/// Local civil time of the session start: (days since epoch, hour).
fn local_start(s: &VisitorState) -> (i64, u32) {
    let local_ms = s.session.start + i64::from(s.session.tz) * 60_000;
    (
        local_ms.div_euclid(86_400_000),
        (local_ms.rem_euclid(86_400_000) / 3_600_000) as u32,
    )
}

fn value(k: &Kind, s: &VisitorState, cfg: &StateConfig, as_of: i64) -> f32 {
    let views = |sc: Scope| match sc {
        Scope::Session => &s.session.views,
        Scope::Visitor => &s.views,
    };
    let engaged = |sc: Scope| match sc {
        Scope::Session => &s.session.engaged_ms,
        Scope::Visitor => &s.engaged_ms,
    };
    match k {
        Kind::PageViews(m, sc) => masked(views(*sc), *m) as f32,
        Kind::EngagedSeconds(m, sc) => (masked(engaged(*sc), *m) / 1000.0) as f32,
        Kind::StatMean(i) => match s.session.stat_views {
            0 => 0.0,
            n => (s.session.stat_sums.get(*i).copied().unwrap_or(0.0) / f64::from(n)) as f32,
        },
        Kind::Visited(m, sc) => f32::from(masked(views(*sc), *m) > 0.0),
        Kind::Flag(c, sc) => f32::from(counter(counts(s, *sc), *c) > 0.0),
        Kind::Count(c, sc) => counter(counts(s, *sc), *c),
        Kind::PagesPerSession => match s.sessions {
            0 => 0.0,
            n => (f64::from(s.total.pages) / f64::from(n)) as f32,
        },
        Kind::Sessions => s.sessions as f32,
        Kind::VisitorType(codes) => {
            if s.session.id_unknown {
                codes[2]
            } else if s.sessions > 1 {
                codes[1]
            } else {
                codes[0]
            }
        }
        Kind::Weekend => f32::from(crate::calendar::weekday(local_start(s).0) >= 6),
        Kind::HourOfDay => local_start(s).1 as f32,
        Kind::SpecialDay => {
            let (y, m, d) = crate::calendar::civil_from_days(local_start(s).0);
            cfg.site.special_day(y, m, d) as f32
        }
        Kind::Channel {
            first,
            scope,
            codes,
            default,
        } => {
            // No channel before the first page (visitor) or the first visit (session): a lead
            // known only from touches and identifies has not landed anywhere.
            let landed = match (first, scope) {
                (true, Scope::Visitor) => s.total.pages > 0,
                _ => s.sessions > 0,
            };
            if !landed {
                return *default;
            }
            let ch = match (first, scope) {
                (true, Scope::Visitor) => s.first_channel,
                _ => s.session.channel,
            };
            codes.get(usize::from(ch)).copied().unwrap_or(*default)
        }
        Kind::UniqueChannels(sc) => counts(s, *sc).channels.count_ones() as f32,
        Kind::Agent(family, codes, default) => {
            let i = match family {
                Family::Os => s.ua.0,
                Family::Browser => s.ua.1,
                Family::Device => s.ua.2,
            };
            codes.get(usize::from(i)).copied().unwrap_or(*default)
        }
        Kind::Scroll(agg, sc) => {
            let c = counts(s, *sc);
            match (agg, c.scrolls) {
                (_, 0) => 0.0,
                (Agg::Max, _) => c.scroll_max,
                (Agg::Mean, n) => c.scroll_sum / f32::from(n),
            }
        }
        Kind::Velocity(i) => s.velocity(*i, cfg) as f32,
        Kind::QuickConversion(mask, within) => {
            let reached = s
                .session
                .first_view
                .iter()
                .enumerate()
                .filter(|(c, &v)| mask & (1 << c) != 0 && v > 0)
                .map(|(_, &v)| v)
                .chain((s.session.first_submit > 0).then_some(s.session.first_submit))
                .min();
            f32::from(matches!(reached, Some(n) if n <= *within))
        }
        Kind::TraitNum(name, default) => s
            .trait_value(name)
            .and_then(|v| v.as_f64())
            .map_or(*default, |v| v as f32),
        Kind::TraitCat(name, map, default) => s
            .trait_value(name)
            .and_then(|v| match v {
                Value::Str(x) => map.get(&x.to_ascii_lowercase()).copied(),
                Value::Bool(b) => map.get(if b { "true" } else { "false" }).copied(),
                Value::Num(n) => map.get(&n.to_string()).copied(),
            })
            .unwrap_or(*default),
        Kind::Signal(k) => signal::value(k, s, cfg, as_of),
        Kind::Colleagues(_) => f32::NAN, // read from a Context (compute_in)
    }
}

/// Colleagues active within `window` before `as_of` (at or before it); missing without an account.
fn colleagues(ctx: Context<'_>, as_of: i64, window: Option<i64>) -> f32 {
    ctx.colleagues.map_or(f32::NAN, |times| {
        times
            .iter()
            .filter(|&&t| t <= as_of && window.is_none_or(|w| as_of - t <= w))
            .count() as f32
    })
}
