//! `leadscore`: the native front end: score event files, build training features and point-in-time
//! training sets (`dataset`), check bundles, export the trees as code, and gate a retrained bundle
//! against the active one (`compare`), freeze a bundle's monitoring baseline (`baseline`) and judge
//! its health from exported logs (`monitor`), compile a day-zero scorecard (`scorecard`) and run the
//! retraining job (`retrain`, feature `retrain`).

#[cfg(feature = "retrain")]
#[path = "leadscore/retrain.rs"]
mod retrain;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use leadscore::bundle_check::{
    self, BaselineCheck, CheckError, GoldenCheck, PROB_TOL, SHAP_TOL, SUM_TOL,
};
use leadscore::compare::{self, Criteria, DatasetFacts};
use leadscore::dataset::csv::{self as dataset_csv, HeldOut, HeldOutError, Needs, ReadError};
use leadscore::dataset::{self, By, Inputs, LineError, Options, Shard};
use leadscore::event::Event;
use leadscore::features::Featurizer;
use leadscore::model::card::{RowDefaults, Template};
use leadscore::model::codegen;
use leadscore::model::error::ModelError;
use leadscore::model::scorecard::{self, Scorecard};
use leadscore::model::Bundle;
use leadscore::monitor::baseline::Baseline;
use leadscore::monitor::drift::Gate;
use leadscore::monitor::health;
use leadscore::monitor::report::Report;
use leadscore::monitor::window::{Conversions, Decision, Decisions};
use leadscore::outcome::OutcomeType;
use leadscore::score::{ScoreOptions, Scorer, Tally};
use leadscore::site::SiteTables;
use leadscore::state::{Apply, VisitorState};

#[derive(Parser)]
#[command(
    name = "leadscore",
    version,
    about = "Real-time predictive lead scoring"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Score NDJSON events: one JSON line per visitor after its last event (or after every event).
    Score {
        #[command(flatten)]
        input: Input,
        /// Print a score after every event instead of once per visitor.
        #[arg(long)]
        each: bool,
        /// Add every feature's contribution and the TreeSHAP base value.
        #[arg(long)]
        all_factors: bool,
    },
    /// Compute model features from NDJSON events: CSV with `visitor_id` then the card's features.
    Features {
        #[command(flatten)]
        input: Input,
    },
    /// Build a point-in-time training set from logged events and outcomes: CSV rows of
    /// `subject_kind,subject_id,decision_ts,outcome_ts,label` then the card's features (README,
    /// "Training sets"); a JSON summary on stderr.
    Dataset(DatasetArgs),
    /// Validate a bundle and replay its golden vectors; exits non-zero on any failure.
    Check {
        /// Bundle directory (card.json + model.onnx + golden.json; a bundle without golden
        /// vectors fails).
        #[arg(long)]
        model: PathBuf,
    },
    /// Compile a points scorecard (day-zero rules) into a bundle of stumps for a card template:
    /// card.json, model.onnx and golden.json in `--out`, then the bundle check.
    Scorecard {
        /// The scorecard (JSON: name, scale, tiers, rules; README "Day zero: rules").
        #[arg(long)]
        rules: PathBuf,
        /// The card template whose features the rules read.
        #[arg(long)]
        template: PathBuf,
        /// Bundle directory to write.
        #[arg(long)]
        out: PathBuf,
        /// YYYYMMDD in the model version (default: today, UTC).
        #[arg(long)]
        date: Option<String>,
    },
    /// The retraining job: export the worker's logs since the last run, build the rows with the
    /// active card's template, train, check, compare with the active model and, on `promote`,
    /// upload the candidate and start an experiment arm (`LEADSCORE_URL`, `LEADSCORE_TOKEN`).
    /// Exit code as `compare`'s: 0 an experiment started, 3 keep the active, 4 not enough data.
    #[cfg(feature = "retrain")]
    Retrain(retrain::RetrainArgs),
    /// Publish gate: score the active and a candidate bundle on the same held-out rows of a
    /// `leadscore dataset` CSV and print both models' metrics and a verdict as JSON. Exit code:
    /// 0 promote, 3 keep the active (candidate worse), 4 insufficient data, 2 bad input.
    Compare(CompareArgs),
    /// Freeze the baseline a bundle is monitored against (per-feature bins and shares and the
    /// `ai_score` histogram of the training rows, accuracy on the held-out rows, per segment) and
    /// print it as JSON: the trainer stores it in card.json under `baseline`.
    Baseline {
        /// Bundle directory (card.json + model.onnx).
        #[arg(long)]
        model: PathBuf,
        /// Training rows: CSV with decision_ts, label and the card's features.
        #[arg(long)]
        train: PathBuf,
        /// Held-out rows, same columns.
        #[arg(long)]
        holdout: PathBuf,
        /// A coded feature whose values are segments (repeatable).
        #[arg(long)]
        segment: Vec<String>,
    },
    /// Model health from exported logs: each window's drift (PSI/JS/KS per feature and on the
    /// score, against the card's baseline), realized accuracy once outcomes are in, segments and
    /// alerts, as JSON (what `GET /v1/monitor` answers); `--report` also writes an HTML report.
    /// Exit code 0, or 5 when a window raises an alert.
    Monitor(MonitorArgs),
    /// Print the trees as straight-line code (the compiled-tree speed limit in BENCHMARKS.md).
    Codegen {
        /// Bundle directory (card.json + model.onnx).
        #[arg(long)]
        model: PathBuf,
        /// Output language.
        #[arg(long, value_enum)]
        lang: CodegenLang,
    },
}

#[derive(Args)]
struct CompareArgs {
    /// Bundle serving today.
    #[arg(long)]
    active: PathBuf,
    /// Retrained bundle that would replace it.
    #[arg(long)]
    candidate: PathBuf,
    /// Training set CSV (`leadscore dataset`): decision_ts, label and each bundle's features.
    #[arg(long)]
    dataset: PathBuf,
    /// Judge rows with decision_ts ≥ this (ms); default: the candidate card's
    /// `training.holdout_from`, else every row.
    #[arg(long)]
    holdout_from: Option<i64>,
    /// Fewest held-out rows for a verdict.
    #[arg(long, default_value_t = Criteria::default().min_rows)]
    min_rows: u64,
    /// Fewest held-out positives for a verdict.
    #[arg(long, default_value_t = Criteria::default().min_positives)]
    min_positives: u64,
    /// How far the candidate's AUC may fall below the active's.
    #[arg(long, default_value_t = Criteria::default().auc_margin)]
    auc_margin: f64,
    /// How far the candidate's ECE may rise above the active's.
    #[arg(long, default_value_t = Criteria::default().ece_margin)]
    ece_margin: f64,
    /// Write the verdict and what it was judged on to gate.json in the candidate's directory.
    #[arg(long)]
    record: bool,
}

#[derive(Args)]
struct MonitorArgs {
    /// Bundle directory whose card holds the baseline (card.json + model.onnx).
    #[arg(long)]
    model: PathBuf,
    /// Score log: an NDJSON file or a directory (recursively: *.ndjson, *.ndjson.gz).
    #[arg(long)]
    scores: PathBuf,
    /// Outcome log, same forms; without it every decision is pending.
    #[arg(long)]
    outcomes: Option<PathBuf>,
    /// The outcome type that labels a decision positive.
    #[arg(long, default_value = "customer")]
    label: String,
    /// Window length: 1d, 12h, 30m or ms (windows aligned to the epoch, UTC).
    #[arg(long, default_value = "1d")]
    window: String,
    /// Outcome window W after each decision: 30d, 12h or ms.
    #[arg(long, default_value = "30d")]
    outcome_window: String,
    /// Labels known as of (ms or YYYY-MM-DD); default: the latest score or outcome read.
    #[arg(long)]
    as_of: Option<String>,
    /// Fewest decisions for a drift verdict.
    #[arg(long, default_value_t = Gate::default().min_scores)]
    min_scores: u64,
    /// Fewest positives for an accuracy verdict.
    #[arg(long, default_value_t = Gate::default().min_positives)]
    min_positives: u64,
    /// Also write a self-contained HTML report with the dashboard's charts.
    #[arg(long)]
    report: Option<PathBuf>,
    /// The dashboard script the report inlines (built by `make site`).
    #[arg(long, default_value = "target/www/monitor/dashboard.js")]
    dashboard: PathBuf,
}

/// Languages `codegen` writes.
#[derive(Clone, Copy, clap::ValueEnum)]
enum CodegenLang {
    /// A Rust module: `margin(&[f32])`, `probability(&[f32])`.
    Rust,
    /// An ES module: `margin(x)`, `probability(x)`.
    Js,
}

#[derive(Args)]
struct Input {
    /// Bundle directory (card.json + model.onnx).
    #[arg(long)]
    model: PathBuf,
    /// NDJSON event file, or `-` for standard input.
    #[arg(long, default_value = "-")]
    events: String,
    /// JSON file replacing the card's site tables.
    #[arg(long)]
    site_table: Option<PathBuf>,
    /// Stop at the first bad line (exit 1) instead of reporting it and going on.
    #[arg(long)]
    strict: bool,
}

#[derive(Args)]
struct DatasetArgs {
    /// Bundle directory (its card.json), or a card or template JSON file: only the features and
    /// site tables are read, so a template with no trained model yet works.
    #[arg(long)]
    model: PathBuf,
    /// JSON file replacing the card's site tables.
    #[arg(long)]
    site_table: Option<PathBuf>,
    /// Event log: an NDJSON file or a directory (recursively: *.ndjson, *.ndjson.gz).
    #[arg(long)]
    events: PathBuf,
    /// Outcome log: an NDJSON file or a directory (recursively: *.ndjson, *.ndjson.gz).
    #[arg(long)]
    outcomes: PathBuf,
    /// Score log (`--decisions served`): an NDJSON file or a directory, like `--events`.
    #[arg(long)]
    scores: Option<PathBuf>,
    /// The outcome type that labels a row 1 (qualified, opportunity, customer/won, disqualified/lost).
    #[arg(long)]
    label: String,
    /// Label window and episode gap: 90d, 12h, 30m or ms (default: the card's `rows.window`,
    /// else 90d).
    #[arg(long)]
    window: Option<String>,
    /// Whom rows are about: visitor, lead or account (default: the card's `rows.by`, else
    /// visitor).
    #[arg(long)]
    by: Option<String>,
    /// Build as of this time (ms or YYYY-MM-DD); default: the latest event or outcome read.
    #[arg(long)]
    as_of: Option<String>,
    /// Build only shard i of n (subjects by FNV-1a of their id), e.g. 0/4.
    #[arg(long)]
    shard: Option<String>,
    /// Where rows are taken: `episodes` (the last event of each episode), `events` (every
    /// event), `served` (where the score log says a score was served: `--scores`), or
    /// `snapshots:7,14,30` (days after the subject's first event); default: the card's
    /// `rows.decisions`, else episodes.
    #[arg(long)]
    decisions: Option<String>,
    /// Write a positive row too only once its window is over by as-of, as a negative always is:
    /// what a time split needs (its latest rows otherwise carry the open windows' conversions but
    /// not their non-conversions); the summary counts them in `positives_in_open_windows`.
    #[arg(long)]
    closed_windows: bool,
    /// Stop at the first bad line (default: name it on stderr, skip it and count it in the
    /// summary's `lines_rejected`).
    #[arg(long)]
    strict: bool,
    /// Output CSV file, or `-` for standard output.
    #[arg(long)]
    out: String,
}

/// A failure that ends the run, with the message for stderr.
#[derive(Debug, thiserror::Error)]
enum CliError {
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error("{0}")]
    Msg(String),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Score {
            input,
            each,
            all_factors,
        } => run_stream(&input, Mode::Score { each, all_factors }),
        Command::Features { input } => run_stream(&input, Mode::Features),
        Command::Dataset(args) => build_dataset(&args),
        Command::Check { model } => check(&model),
        #[cfg(feature = "retrain")]
        Command::Retrain(args) => retrain::run(&args),
        Command::Scorecard {
            rules,
            template,
            out,
            date,
        } => scorecard(&rules, &template, &out, date),
        Command::Codegen { model, lang } => codegen(&model, lang),
        Command::Compare(args) => run_compare(&args),
        Command::Monitor(args) => monitor(&args),
        Command::Baseline {
            model,
            train,
            holdout,
            segment,
        } => baseline(&model, &train, &holdout, &segment),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("leadscore: {e}");
            ExitCode::from(2)
        }
    }
}

fn load(input: &Input) -> Result<Scorer, CliError> {
    load_scorer(&input.model, input.site_table.as_deref())
}

/// The features of a bundle directory's card.json, or of a card or template file.
/// A card's or template's featurizer, and how its rows are taken.
fn load_template(
    model: &Path,
    site_table: Option<&Path>,
) -> Result<(Featurizer, Option<RowDefaults>), CliError> {
    let file = if model.is_dir() {
        model.join("card.json")
    } else {
        model.to_path_buf()
    };
    let text = std::fs::read_to_string(&file)
        .map_err(|e| CliError::Msg(format!("{}: {e}", file.display())))?;
    let template: Template = serde_json::from_str(&text).map_err(|e| {
        CliError::Msg(format!(
            "{}:{}: not a card or template (features and site): {e}",
            file.display(),
            e.line()
        ))
    })?;
    let site = read_site_table(site_table)?;
    let rows = template.rows.clone();
    let features = template
        .featurizer(site)
        .map_err(|e| CliError::Msg(format!("{}: {e}", file.display())))?;
    Ok((features, rows))
}

fn read_site_table(site_table: Option<&Path>) -> Result<Option<SiteTables>, CliError> {
    Ok(match site_table {
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .map_err(|e| CliError::Msg(format!("{}: {e}", p.display())))?;
            let t: SiteTables = serde_json::from_str(&text)
                .map_err(|e| CliError::Msg(format!("{}: {e}", p.display())))?;
            Some(t)
        }
        None => None,
    })
}

fn load_scorer(model: &Path, site_table: Option<&Path>) -> Result<Scorer, CliError> {
    let site = read_site_table(site_table)?;
    Ok(Scorer::new(Bundle::load(model)?, site)?)
}

/// The NDJSON files of a log: the file itself, or every `*.ndjson` / `*.ndjson.gz` under a
/// directory, in path order (input order decides ties, so it must not depend on the file system).
fn log_files(path: &Path) -> Result<Vec<PathBuf>, CliError> {
    let err = |p: &Path, e: std::io::Error| CliError::Msg(format!("{}: {e}", p.display()));
    let meta = std::fs::metadata(path).map_err(|e| err(path, e))?;
    if !meta.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut files = Vec::new();
    let mut dirs = vec![path.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).map_err(|e| err(&dir, e))? {
            let p = entry.map_err(|e| err(&dir, e))?.path();
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if p.is_dir() {
                dirs.push(p);
            } else if name.ends_with(".ndjson") || name.ends_with(".ndjson.gz") {
                files.push(p);
            }
        }
    }
    if files.is_empty() {
        return Err(CliError::Msg(format!(
            "{}: no *.ndjson or *.ndjson.gz files in this directory",
            path.display()
        )));
    }
    files.sort();
    Ok(files)
}

/// Feeds every line of a log's files to `add`; an error names the file and line.
fn read_log(path: &Path, add: impl FnMut(&str) -> Result<(), LineError>) -> Result<(), CliError> {
    read_log_lenient(path, true, add).map(|_| ())
}

/// [`read_log`]; unless `strict`, a bad line is named on stderr (`file:line: what`) and skipped,
/// and the number skipped is returned. An unreadable file always stops the run.
fn read_log_lenient(
    path: &Path,
    strict: bool,
    mut add: impl FnMut(&str) -> Result<(), LineError>,
) -> Result<u64, CliError> {
    let mut rejected = 0;
    for file in log_files(path)? {
        let err =
            |line: usize, what: String| CliError::Msg(format!("{}:{line}: {what}", file.display()));
        let f = std::fs::File::open(&file).map_err(|e| err(0, e.to_string()))?;
        let raw: Box<dyn Read> = if file.extension().is_some_and(|x| x == "gz") {
            Box::new(flate2::read::MultiGzDecoder::new(f))
        } else {
            Box::new(f)
        };
        let mut reader = BufReader::with_capacity(1 << 18, raw);
        let mut line = String::new();
        for lineno in 1.. {
            line.clear();
            match reader.read_line(&mut line) {
                Ok(0) => break,
                Ok(_) => match add(&line) {
                    Ok(()) => {}
                    Err(e) if strict => return Err(err(lineno, e.to_string())),
                    Err(e) => {
                        eprintln!("{}:{lineno}: {e} (skipped)", file.display());
                        rejected += 1;
                    }
                },
                Err(e) => return Err(err(lineno, e.to_string())),
            }
        }
    }
    Ok(rejected)
}

/// `--label`: an outcome type by its name or alias.
fn parse_label(s: &str) -> Result<OutcomeType, CliError> {
    OutcomeType::parse(s).ok_or_else(|| {
        CliError::Msg(format!(
            "--label {s:?}: expected one of qualified, opportunity, customer (won), disqualified (lost)"
        ))
    })
}

fn build_dataset(args: &DatasetArgs) -> Result<ExitCode, CliError> {
    let start = std::time::Instant::now();
    let msg = |e: dataset::DatasetError| CliError::Msg(e.to_string());
    let label = parse_label(&args.label)?;
    let (features, rows) = load_template(&args.model, args.site_table.as_deref())?;
    let rows = rows.unwrap_or_default();
    // A flag wins over the card's `rows`, which wins over the built-in default.
    let pick = |flag: &Option<String>, card: &Option<String>, default: &str| {
        flag.clone()
            .or_else(|| card.clone())
            .unwrap_or_else(|| default.to_string())
    };
    let opts = Options {
        label,
        window_ms: dataset::parse_window(&pick(&args.window, &rows.window, "90d")).map_err(msg)?,
        by: By::parse(&pick(&args.by, &rows.by, "visitor")).map_err(msg)?,
        as_of: args
            .as_of
            .as_deref()
            .map(dataset::parse_as_of)
            .transpose()
            .map_err(msg)?,
        shard: args
            .shard
            .as_deref()
            .map(Shard::parse)
            .transpose()
            .map_err(msg)?,
        decisions: dataset::Decisions::parse(&pick(&args.decisions, &rows.decisions, "episodes"))
            .map_err(msg)?,
        all_visitors: features.features().reads_account(),
        closed_windows: args.closed_windows,
    };
    let mut inputs = Inputs::new(opts).map_err(msg)?;
    let mut rejected = read_log_lenient(&args.events, args.strict, |l| inputs.add_event_line(l))?;
    rejected += read_log_lenient(&args.outcomes, args.strict, |l| inputs.add_outcome_line(l))?;
    match (&args.scores, opts.decisions) {
        (Some(scores), dataset::Decisions::Served) => {
            rejected += read_log_lenient(scores, args.strict, |l| inputs.add_score_line(l))?;
        }
        (None, dataset::Decisions::Served) => {
            return Err(CliError::Msg(
                "--decisions served reads the score log: give --scores FILE|DIR".into(),
            ))
        }
        (Some(_), _) => {
            return Err(CliError::Msg(
                "--scores is read only with --decisions served".into(),
            ))
        }
        (None, _) => {}
    }
    let mut set = inputs.build(&features).map_err(msg)?;
    set.summary.lines_rejected = rejected;

    let out: Box<dyn Write> = if args.out == "-" {
        Box::new(std::io::stdout().lock())
    } else {
        Box::new(
            std::fs::File::create(&args.out)
                .map_err(|e| CliError::Msg(format!("{}: {e}", args.out)))?,
        )
    };
    dataset_csv::write(BufWriter::new(out), features.features().names(), &set.rows)
        .map_err(|e| CliError::Msg(format!("writing {}: {e}", args.out)))?;
    let summary = set.summary.timed(start.elapsed().as_secs_f64());
    let json = serde_json::to_string(&summary).map_err(|e| CliError::Msg(e.to_string()))?;
    eprintln!("{json}");
    Ok(ExitCode::SUCCESS)
}

/// What a stream run prints.
#[derive(Clone, Copy)]
enum Mode {
    Score { each: bool, all_factors: bool },
    Features,
}

fn run_stream(input: &Input, mode: Mode) -> Result<ExitCode, CliError> {
    let scorer = load(input)?;
    let reader: Box<dyn Read> = if input.events == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        Box::new(
            std::fs::File::open(&input.events)
                .map_err(|e| CliError::Msg(format!("{}: {e}", input.events)))?,
        )
    };
    let stdout = std::io::stdout();
    let mut w = BufWriter::new(stdout.lock());
    let io_err = |e: std::io::Error| CliError::Msg(format!("writing output: {e}"));
    let mut states: HashMap<String, VisitorState> = HashMap::new();
    let mut order: Vec<String> = Vec::new();
    let mut tally = Tally::default();
    let mut bad = 0u64;
    for (i, line) in BufReader::new(reader).lines().enumerate() {
        let lineno = i + 1;
        let parsed = line.map_err(|e| e.to_string()).and_then(|l| {
            if l.trim().is_empty() {
                Ok(None)
            } else {
                Event::parse(&l)
                    .map(Some)
                    .map_err(|e| format!("{e} ({})", e.code()))
            }
        });
        let event = match parsed {
            Ok(Some(e)) => e,
            Ok(None) => continue,
            Err(msg) => {
                eprintln!("line {lineno}: {msg}");
                bad += 1;
                if input.strict {
                    return Ok(ExitCode::from(1));
                }
                continue;
            }
        };
        let state = states.entry(event.visitor_id.clone()).or_insert_with(|| {
            order.push(event.visitor_id.clone());
            scorer.new_state()
        });
        if tally.count(scorer.apply(state, &event, None)) == Apply::Stale {
            eprintln!("line {lineno}: event {:?} is older than the visitor's de-duplication window; not applied", event.id);
        }
        if let Mode::Score {
            each: true,
            all_factors,
        } = mode
        {
            emit_score(&scorer, &mut w, &event.visitor_id, state, all_factors)?;
        }
    }
    match mode {
        Mode::Score {
            each: false,
            all_factors,
        } => {
            for id in &order {
                if let Some(state) = states.get(id) {
                    emit_score(&scorer, &mut w, id, state, all_factors)?;
                }
            }
        }
        Mode::Features => {
            let csv_err = |e: csv::Error| CliError::Msg(format!("writing output: {e}"));
            let mut out = csv::Writer::from_writer(&mut w);
            let names = scorer.features().names();
            out.write_record(std::iter::once("visitor_id").chain(names.iter().map(String::as_str)))
                .map_err(csv_err)?;
            for id in &order {
                if let Some(state) = states.get(id) {
                    let values = scorer
                        .feature_vector(state)
                        .into_iter()
                        .map(|f| f.to_string());
                    out.write_record(std::iter::once(id.clone()).chain(values))
                        .map_err(csv_err)?;
                }
            }
            out.flush().map_err(io_err)?;
        }
        Mode::Score { each: true, .. } => {}
    }
    w.flush().map_err(io_err)?;
    eprintln!(
        "leadscore: {} visitors, {} events applied, {} duplicates, {} stale, {bad} bad lines",
        order.len(),
        tally.applied,
        tally.duplicates,
        tally.stale
    );
    Ok(ExitCode::SUCCESS)
}

fn emit_score(
    s: &Scorer,
    w: &mut dyn Write,
    id: &str,
    st: &VisitorState,
    all_factors: bool,
) -> Result<(), CliError> {
    let score = s.score(st, id, st.last_ts, ScoreOptions { all_factors })?;
    let line = serde_json::to_string(&score).map_err(|e| CliError::Msg(e.to_string()))?;
    writeln!(w, "{line}").map_err(|e| CliError::Msg(format!("writing output: {e}")))
}

fn codegen(dir: &Path, lang: CodegenLang) -> Result<ExitCode, CliError> {
    let bundle = Bundle::load(dir)?;
    let lang = match lang {
        CodegenLang::Rust => codegen::Lang::Rust,
        CodegenLang::Js => codegen::Lang::Js,
    };
    let src = codegen::generate(bundle.plan.forest(), lang);
    std::io::stdout()
        .write_all(src.as_bytes())
        .map_err(|e| CliError::Msg(format!("writing the code: {e}")))?;
    Ok(ExitCode::SUCCESS)
}

/// `leadscore check`: reads the bundle's files and prints [`bundle_check::check`]'s report.
/// `leadscore scorecard`: compiles, writes the bundle, checks it.
fn scorecard(
    rules: &Path,
    template: &Path,
    out: &Path,
    date: Option<String>,
) -> Result<ExitCode, CliError> {
    let read = |p: &Path| {
        std::fs::read_to_string(p).map_err(|e| CliError::Msg(format!("{}: {e}", p.display())))
    };
    let sc = Scorecard::parse(&read(rules)?)
        .map_err(|e| CliError::Msg(format!("{}: {e}", rules.display())))?;
    let date = match date {
        Some(d) if d.len() == 8 && d.bytes().all(|b| b.is_ascii_digit()) => d,
        Some(d) => return Err(CliError::Msg(format!("--date {d:?}: expected YYYYMMDD"))),
        None => today_yyyymmdd(),
    };
    let compiled = scorecard::compile(&sc, &read(template)?, &date)
        .map_err(|e| CliError::Msg(format!("{}: {e}", rules.display())))?;
    let write = |name: &str, bytes: &[u8]| {
        let p = out.join(name);
        std::fs::write(&p, bytes).map_err(|e| CliError::Msg(format!("{}: {e}", p.display())))
    };
    std::fs::create_dir_all(out).map_err(|e| CliError::Msg(format!("{}: {e}", out.display())))?;
    write("card.json", compiled.card.as_bytes())?;
    write("model.onnx", &compiled.onnx)?;
    write("golden.json", compiled.golden.as_bytes())?;
    check(out)
}

/// Today's date (UTC) as YYYYMMDD.
fn today_yyyymmdd() -> String {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let (y, m, d) = leadscore::calendar::civil_from_days(ms.div_euclid(86_400_000));
    format!("{y:04}{m:02}{d:02}")
}

fn check(dir: &Path) -> Result<ExitCode, CliError> {
    let bundle = Bundle::load(dir)?;
    let golden_path = dir.join("golden.json");
    let golden = match std::fs::read(&golden_path) {
        Ok(bytes) => Some(bytes),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(CliError::Msg(format!("{}: {e}", golden_path.display()))),
    };
    let report = bundle_check::check(bundle, golden.as_deref()).map_err(|e| match e {
        CheckError::Model(e) => CliError::Model(e),
    })?;
    println!(
        "bundle {} ok: model_version {}, {} features, {} trees",
        dir.display(),
        report.model_version,
        report.features,
        report.trees
    );
    match &report.baseline {
        BaselineCheck::Present {
            train_rows,
            holdout_rows,
            segments,
        } => println!(
            "baseline: {train_rows} training rows, {holdout_rows} held out, {segments} segments"
        ),
        BaselineCheck::Absent => {
            println!("no baseline: the bundle cannot be monitored for drift")
        }
        BaselineCheck::Invalid(e) => println!("FAIL {e}"),
    }
    match &report.golden {
        GoldenCheck::NotRun => {}
        GoldenCheck::Missing => println!(
            "FAIL no golden.json in {}: a bundle is checked against its golden vectors (the trainer writes them)",
            dir.display()
        ),
        GoldenCheck::Unreadable(e) => {
            return Err(CliError::Msg(format!("{}: {e}", golden_path.display())))
        }
        GoldenCheck::FeaturesDiffer => {
            println!("FAIL golden.json features differ from the card's")
        }
        GoldenCheck::Replayed(r) => {
            for f in &r.first_failures {
                println!(
                    "FAIL row {}: p {} lgb {} ort {} shapΔ {:e} |Σφ+base − margin| {:e}",
                    f.row, f.p, f.lgb_prob, f.ort_prob, f.shap_delta, f.sum_delta
                );
            }
            println!(
                "golden: {} rows, max |Δp| vs LightGBM {:.2e}, vs onnxruntime {:.2e}, max |Δ TreeSHAP| vs pred_contrib {:.2e}, max |Σφ+base − margin| {:.2e}",
                r.rows, r.worst_lgb, r.worst_ort, r.worst_shap, r.worst_sum
            );
            if r.failures > 0 {
                println!(
                    "FAIL {} golden rows out of tolerance ({PROB_TOL:e} probability, {SHAP_TOL:e} TreeSHAP, {SUM_TOL:e} additivity)",
                    r.failures
                );
            }
        }
    }
    if !report.passed() {
        return Ok(ExitCode::from(1));
    }
    println!("ok");
    Ok(ExitCode::SUCCESS)
}

/// Reads the held-out rows of a dataset CSV file; returns them and the file's sha256.
fn read_held_out(
    path: &Path,
    needs: &[Needs<'_>],
    holdout_from: Option<i64>,
) -> Result<(HeldOut, String), CliError> {
    let name = path.display();
    let file = std::fs::File::open(path).map_err(|e| CliError::Msg(format!("{name}: {e}")))?;
    let at = |line: u64, e: &dyn std::fmt::Display| CliError::Msg(format!("{name}:{line}: {e}"));
    dataset_csv::read_held_out(BufReader::new(file), needs, holdout_from).map_err(|e| match e {
        ReadError::Rows(HeldOutError::Data { line, message }) => at(line, &message),
        ReadError::Csv(e) => match e.position() {
            Some(p) => at(p.line(), &e),
            None => CliError::Msg(format!("{name}: {e}")),
        },
        other => CliError::Msg(format!("{name}: {other}")),
    })
}

fn baseline(
    model: &Path,
    train: &Path,
    holdout: &Path,
    segments: &[String],
) -> Result<ExitCode, CliError> {
    let at = |e: &dyn std::fmt::Display| CliError::Msg(format!("{}: {e}", model.display()));
    let scorer = Scorer::new(Bundle::load(model).map_err(|e| at(&e))?, None).map_err(|e| at(&e))?;
    let needs = [Needs {
        role: "baselined",
        card: scorer.card(),
    }];
    let (train, _) = read_held_out(train, &needs, None)?;
    let (holdout, _) = read_held_out(holdout, &needs, None)?;
    let b = Baseline::build(&scorer, &train, &holdout, segments).map_err(|e| at(&e))?;
    let json = serde_json::to_string(&b).map_err(|e| CliError::Msg(e.to_string()))?;
    println!("{json}");
    eprintln!(
        "leadscore: baseline of {}: {} training rows, {} held out ({} positives), {} segments",
        scorer.card().model_version,
        b.train_rows,
        b.holdout.rows,
        b.holdout.positives,
        b.segments.len()
    );
    Ok(ExitCode::SUCCESS)
}

fn run_compare(args: &CompareArgs) -> Result<ExitCode, CliError> {
    let load = |dir: &Path| -> Result<Scorer, CliError> {
        let at = |e: ModelError| CliError::Msg(format!("{}: {e}", dir.display()));
        Scorer::new(Bundle::load(dir).map_err(at)?, None).map_err(at)
    };
    let active = load(&args.active)?;
    let candidate = load(&args.candidate)?;
    let (holdout_from, source) = match args.holdout_from {
        Some(t) => (Some(t), "--holdout-from".to_string()),
        None => match compare::card_holdout_from(candidate.card())
            .map_err(|e| CliError::Msg(format!("{}: {e}", args.candidate.display())))?
        {
            Some(t) => (Some(t), "the candidate card's training.holdout_from".into()),
            None => (
                None,
                "none (the candidate card records no training.holdout_from): every row".into(),
            ),
        },
    };
    let needs = [
        Needs {
            role: "active",
            card: active.card(),
        },
        Needs {
            role: "candidate",
            card: candidate.card(),
        },
    ];
    let (rows, sha256) = read_held_out(&args.dataset, &needs, holdout_from)?;
    let criteria = Criteria {
        min_rows: args.min_rows,
        min_positives: args.min_positives,
        auc_margin: args.auc_margin,
        ece_margin: args.ece_margin,
    };
    for (name, m) in [
        ("--auc-margin", criteria.auc_margin),
        ("--ece-margin", criteria.ece_margin),
    ] {
        if !(m.is_finite() && m >= 0.0) {
            return Err(CliError::Msg(format!(
                "{name} {m} must be a finite number ≥ 0"
            )));
        }
    }
    let facts = DatasetFacts {
        file: args.dataset.display().to_string(),
        sha256,
        rows_read: rows.rows_read(),
        holdout_from,
        holdout_from_source: source,
        rows: rows.len() as u64,
        positives: rows.positives(),
    };
    let result = compare::gate(&active, &candidate, &rows, &criteria, facts)
        .map_err(|e| CliError::Msg(e.to_string()))?;
    let json = serde_json::to_string_pretty(&result).map_err(|e| CliError::Msg(e.to_string()))?;
    println!("{json}");
    let decision = result.verdict.verdict;
    if args.record {
        let path = args.candidate.join(compare::RECORD_FILE);
        let at = |e: &dyn std::fmt::Display| CliError::Msg(format!("{}: {e}", path.display()));
        let json = result.record().to_json().map_err(|e| at(&e))?;
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, json)
            .and_then(|()| std::fs::rename(&tmp, &path))
            .map_err(|e| at(&e))?;
        eprintln!("leadscore: verdict recorded in {}", path.display());
    }
    eprintln!(
        "leadscore: compare: {} held-out rows ({} positives): {}",
        result.dataset.rows,
        result.dataset.positives,
        serde_json::to_value(decision)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default()
    );
    Ok(ExitCode::from(decision.exit_code()))
}

fn monitor(args: &MonitorArgs) -> Result<ExitCode, CliError> {
    let msg = |e: dataset::DatasetError| CliError::Msg(e.to_string());
    let label = parse_label(&args.label)?;
    let window_ms = dataset::parse_window(&args.window).map_err(msg)?;
    let outcome_window_ms = dataset::parse_window(&args.outcome_window).map_err(msg)?;
    let at = |e: &dyn std::fmt::Display| CliError::Msg(format!("{}: {e}", args.model.display()));
    let bundle = Bundle::load(&args.model).map_err(|e| at(&e))?;
    // A bundle trained on no rows (a scorecard) is judged on its live accuracy alone.
    let baseline = Baseline::of(&bundle.card)
        .map_err(|e| at(&e))?
        .unwrap_or_else(Baseline::live_only);
    let version = bundle.card.model_version.clone();
    let names: Vec<String> = baseline.features.iter().map(|f| f.name.clone()).collect();

    let mut latest = i64::MIN;
    let mut conversions = Conversions::new(label);
    let mut outcomes = 0u64;
    if let Some(path) = &args.outcomes {
        let mut seen = std::collections::HashSet::new();
        read_log(path, |line| {
            if let Some(leadscore::log::Record::Outcome(r)) = dataset::parse_outcome_line(line)? {
                latest = latest.max(r.outcome.ts);
                if seen.insert(r.outcome.id.clone()) {
                    outcomes += 1;
                    conversions.add(&r.outcome);
                }
            }
            Ok(())
        })?;
    }
    let mut decisions = Decisions::new(window_ms);
    let (mut scores, mut other_models) = (0u64, 0u64);
    read_log(&args.scores, |line| {
        if let Some(r) = dataset::parse_score_line(line)? {
            latest = latest.max(r.ts);
            if r.model_version == version {
                scores += 1;
                decisions.add(Decision::of(&r, &names));
            } else {
                other_models += 1;
            }
        }
        Ok(())
    })?;
    let as_of = match &args.as_of {
        Some(s) => dataset::parse_as_of(s).map_err(msg)?,
        None => latest.max(0),
    };
    let gate = Gate {
        min_scores: args.min_scores,
        min_positives: args.min_positives,
        ..Gate::default()
    };
    let opts = health::Options {
        gate,
        outcome_window_ms,
        as_of,
        auc_drop: health::AUC_DROP,
        ece_factor: health::ECE_FACTOR,
    };
    let windows = health::assess(&baseline, &decisions, &conversions, &opts)
        .map_err(|e| CliError::Msg(format!("{}: {e}", args.scores.display())))?;
    let alerts = health::alerts_of(&windows);
    let report = Report {
        model_version: version,
        label,
        window_ms,
        outcome_window_ms,
        as_of,
        gate,
        scores,
        other_models,
        outcomes,
        windows,
        alerts,
        experiments: Vec::new(),
    };
    let json = serde_json::to_string(&report).map_err(|e| CliError::Msg(e.to_string()))?;
    if let Some(out) = &args.report {
        write_report(out, &args.dashboard, &json)?;
    }
    println!("{json}");
    eprintln!(
        "leadscore: monitor {}: {scores} scores in {} windows, {outcomes} outcomes, {} alerts",
        report.model_version,
        report.windows.len(),
        report.alerts.len()
    );
    Ok(if report.alerts.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(5)
    })
}

/// The dashboard page with the report inlined: one file that opens anywhere, offline.
fn write_report(out: &Path, dashboard: &Path, json: &str) -> Result<(), CliError> {
    let script = std::fs::read_to_string(dashboard).map_err(|e| {
        CliError::Msg(format!(
            "--dashboard {}: {e} (build it with `make site`)",
            dashboard.display()
        ))
    })?;
    // Inside <script>, only `</` could end the element early; JSON and the bundle escape it.
    let data = json.replace("</", "<\\/");
    let code = script.replace("</script", "<\\/script");
    let html = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>leadscore model health report</title></head>\n<body>\
         <div id=\"app\"></div>\n<script id=\"report-data\" type=\"application/json\">{data}</script>\n\
         <script>{code}</script>\n</body></html>\n"
    );
    std::fs::write(out, html).map_err(|e| CliError::Msg(format!("{}: {e}", out.display())))
}
