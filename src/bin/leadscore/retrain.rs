//! `leadscore retrain`: one command that turns the worker's logs into a candidate model and, when
//! the publish gate says so, an experiment arm — the job a scheduler runs when the worker asks
//! for it (`model.retrain_requested`).
//!
//! Steps, each leaving its files in the work directory (`--work`, default `target/retrain`):
//! 1. `GET /v1/models`: the active version; `GET /v1/models/{active}`: its card and model
//!    (`active/`); its features, site tables and rows are the template (`template.json`).
//! 2. `GET /v1/export/{events,outcomes}` of the whole training range (`--since`, else 399 days
//!    back, to now) into `logs/`, every run: the logs are kept by the day their records happened,
//!    so history imported after the last run lands behind where an incremental export would
//!    start. `state.json` keeps the last run's counts (the report's `new_events`).
//! 3. `leadscore dataset --closed-windows` with the template's rows (`dataset.csv`: only rows
//!    whose label window closed by its as-of, positives too), the trainer
//!    (`models/train/train.py --dataset … --weight-subjects`, `candidate/`), `leadscore check`.
//! 4. `leadscore compare` of the active and the candidate on the candidate's held-out rows.
//! 5. On `promote`: `PUT /v1/models/{name}` (idempotent: the same version again is stored once)
//!    and `PUT /v1/experiment` with the candidate at `--weight`.
//!
//! Two drills prove the gates: `--shuffle-labels SEED` trains on shuffled labels (the offline gate
//! should keep the active model), `--force` starts the arm anyway (the live gate should end it).
//!
//! The report is one JSON document on stdout; the exit code is the gate's (0 an experiment
//! started, 3 the active model stays, 4 not enough data), 2 for bad input, 1 for a failure.

use std::path::{Path, PathBuf};
use std::process::{Command as Process, ExitCode};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::CliError;

/// `leadscore retrain`'s options.
#[derive(clap::Args, Debug)]
pub struct RetrainArgs {
    /// Work directory: logs, template, dataset, candidate and the state of the last run.
    #[arg(long, default_value = "target/retrain")]
    work: PathBuf,
    /// The outcome type that labels a row 1.
    #[arg(long, default_value = "customer")]
    label: String,
    /// The candidate's share of new visitors in the experiment it starts.
    #[arg(long, default_value_t = 0.2)]
    weight: f64,
    /// The trainer script.
    #[arg(long, default_value = "models/train/train.py")]
    trainer: PathBuf,
    /// Python that runs the trainer (its requirements installed: `make venv`).
    #[arg(long, default_value = ".venv/bin/python")]
    python: PathBuf,
    /// Export from this time (ms or YYYY-MM-DD) on the first run (default: everything).
    #[arg(long)]
    since: Option<String>,
    /// Fewest held-out rows for a verdict (the gate's default otherwise).
    #[arg(long)]
    min_rows: Option<u64>,
    /// Fewest held-out positives for a verdict.
    #[arg(long)]
    min_positives: Option<u64>,
    /// A drill of the offline gate: train on the rows with their labels shuffled by this seed (a
    /// model that learned nothing); the gate still judges on the true labels.
    #[arg(long, value_name = "SEED")]
    shuffle_labels: Option<u64>,
    /// A drill of the live gate: upload and start the arm even when the offline gate keeps the
    /// active model (never on too little data).
    #[arg(long)]
    force: bool,
}

/// The longest range one export asks for (the worker's limit is 400 days).
const EXPORT_SPAN_MS: i64 = 399 * 86_400_000;

/// What the work directory remembers between runs.
#[derive(Debug, Default, Serialize, Deserialize)]
struct State {
    /// The last run exported up to this time (ms, exclusive).
    exported_to: Option<i64>,
    /// Events the last run exported.
    #[serde(default)]
    events: u64,
    /// Outcomes the last run exported.
    #[serde(default)]
    outcomes: u64,
    /// Runs so far.
    runs: u64,
}

/// The worker's address and token, from `LEADSCORE_URL` and `LEADSCORE_TOKEN`.
struct Worker {
    url: String,
    token: String,
    agent: ureq::Agent,
}

fn msg(e: impl std::fmt::Display) -> CliError {
    CliError::Msg(e.to_string())
}

impl Worker {
    fn from_env() -> Result<Worker, CliError> {
        let url = std::env::var("LEADSCORE_URL").map_err(|_| {
            msg("LEADSCORE_URL is not set (the worker, e.g. http://127.0.0.1:8787)")
        })?;
        let token = std::env::var("LEADSCORE_TOKEN")
            .map_err(|_| msg("LEADSCORE_TOKEN is not set (the worker's API token)"))?;
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(std::time::Duration::from_secs(300)))
            .build()
            .into();
        Ok(Worker {
            url: url.trim_end_matches('/').to_string(),
            token,
            agent,
        })
    }

    /// A request's status and body text.
    fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<String>,
    ) -> Result<(u16, String), CliError> {
        let url = format!("{}{path}", self.url);
        let auth = format!("Bearer {}", self.token);
        let at = |e: ureq::Error| msg(format!("{method} {url}: {e}"));
        let mut resp = match (method, body) {
            ("GET", _) => self
                .agent
                .get(&url)
                .header("authorization", &auth)
                .call()
                .map_err(at)?,
            (_, body) => {
                let req = match method {
                    "PUT" => self.agent.put(&url),
                    _ => self.agent.post(&url),
                };
                req.header("authorization", &auth)
                    .header("content-type", "application/json")
                    .header("x-leadscore-actor", "leadscore retrain")
                    .send(body.unwrap_or_default())
                    .map_err(at)?
            }
        };
        let status = resp.status().as_u16();
        let text = resp
            .body_mut()
            .with_config()
            .limit(1 << 31)
            .read_to_string()
            .map_err(at)?;
        Ok((status, text))
    }

    fn json(&self, method: &str, path: &str, body: Option<String>) -> Result<Value, CliError> {
        let (status, text) = self.call(method, path, body)?;
        if !(200..300).contains(&status) {
            return Err(msg(format!(
                "{method} {path}: HTTP {status}: {}",
                text.chars().take(400).collect::<String>()
            )));
        }
        serde_json::from_str(&text).map_err(|e| msg(format!("{method} {path}: {e}")))
    }
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), CliError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| msg(format!("{}: {e}", dir.display())))?;
    }
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes)
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| msg(format!("{}: {e}", path.display())))
}

/// Runs a step; its stdout, or an error naming it with the end of its stderr. `ok` lists the exit
/// codes that are answers, not failures.
fn step(what: &str, cmd: &mut Process, ok: &[i32]) -> Result<(i32, String, String), CliError> {
    let out = cmd
        .output()
        .map_err(|e| msg(format!("{what}: cannot start ({e})")))?;
    let code = out.status.code().unwrap_or(-1);
    if !ok.contains(&code) {
        let err = String::from_utf8_lossy(&out.stderr);
        let tail: String = err
            .lines()
            .rev()
            .take(8)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join("\n");
        return Err(msg(format!("{what} failed (exit {code}):\n{tail}")));
    }
    Ok((
        code,
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

/// The parts of a card a trainer takes as its template.
fn template_of(card: &Value) -> Value {
    let mut t = serde_json::Map::new();
    for k in [
        "about",
        "features",
        "site",
        "rows",
        "display_names",
        "monitor",
    ] {
        if let Some(v) = card.get(k) {
            t.insert(k.to_string(), v.clone());
        }
    }
    Value::Object(t)
}

/// Copies the rows with their (outcome time, label) pairs permuted by `seed` (Fisher–Yates over
/// splitmix64): the features stay, what they predicted is given to random rows.
fn shuffle_labels(src: &Path, dst: &Path, seed: u64) -> Result<(), CliError> {
    let at = |e: &dyn std::fmt::Display| msg(format!("{}: {e}", src.display()));
    let mut r = csv::Reader::from_path(src).map_err(|e| at(&e))?;
    let header = r.headers().map_err(|e| at(&e))?.clone();
    let col = |name: &str| {
        header
            .iter()
            .position(|h| h == name)
            .ok_or_else(|| at(&format!("no {name} column")))
    };
    let (label, outcome) = (col("label")?, col("outcome_ts")?);
    let rows: Vec<csv::StringRecord> = r.records().collect::<Result<_, _>>().map_err(|e| at(&e))?;
    let mut pairs: Vec<(String, String)> = rows
        .iter()
        .map(|x| (x[outcome].to_string(), x[label].to_string()))
        .collect();
    let mut state = seed;
    let mut next = move || {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    for i in (1..pairs.len()).rev() {
        pairs.swap(i, (next() % (i as u64 + 1)) as usize);
    }
    let mut w = csv::Writer::from_path(dst).map_err(|e| msg(format!("{}: {e}", dst.display())))?;
    w.write_record(&header).map_err(msg)?;
    for (row, (o, l)) in rows.iter().zip(pairs) {
        let cells: Vec<&str> = row
            .iter()
            .enumerate()
            .map(|(j, c)| match j {
                _ if j == outcome => o.as_str(),
                _ if j == label => l.as_str(),
                _ => c,
            })
            .collect();
        w.write_record(&cells).map_err(msg)?;
    }
    w.flush().map_err(msg)?;
    Ok(())
}

fn today() -> String {
    let ms = now_ms();
    let (y, m, d) = leadscore::calendar::civil_from_days(ms.div_euclid(86_400_000));
    format!("{y:04}{m:02}{d:02}")
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// `leadscore retrain`.
pub fn run(args: &RetrainArgs) -> Result<ExitCode, CliError> {
    if !(args.weight > 0.0 && args.weight < 1.0) {
        return Err(msg(format!("--weight {}: a share in (0, 1)", args.weight)));
    }
    let w = Worker::from_env()?;
    let work = &args.work;
    let state_path = work.join("state.json");
    let mut state: State = match std::fs::read_to_string(&state_path) {
        Ok(t) => {
            serde_json::from_str(&t).map_err(|e| msg(format!("{}: {e}", state_path.display())))?
        }
        Err(_) => State::default(),
    };
    let me = std::env::current_exe().map_err(msg)?;

    // 1. The active model: its bundle and, from its card, the template.
    let registry = w.json("GET", "/v1/models", None)?;
    let active = registry["active"].as_str().unwrap_or("default").to_string();
    let bundle = w.json("GET", &format!("/v1/models/{active}"), None)?;
    let card = bundle["card"].clone();
    let name = card["name"]
        .as_str()
        .ok_or_else(|| msg(format!("the active bundle {active} has no card name")))?
        .to_string();
    let active_version = card["model_version"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    use base64::Engine as _;
    let onnx = base64::engine::general_purpose::STANDARD
        .decode(bundle["model"].as_str().unwrap_or_default())
        .map_err(|e| msg(format!("the active bundle's model: {e}")))?;
    let active_dir = work.join("active");
    write(&active_dir.join("card.json"), card.to_string().as_bytes())?;
    write(&active_dir.join("model.onnx"), &onnx)?;
    let template = work.join("template.json");
    write(
        &template,
        serde_json::to_string_pretty(&template_of(&card))
            .map_err(msg)?
            .as_bytes(),
    )?;

    // 2. The logs of the whole training range, afresh (module docs: history lands in its own days).
    let from = match &args.since {
        Some(s) => leadscore::dataset::parse_as_of(s).map_err(msg)?,
        None => now_ms() - 399 * 86_400_000,
    };
    let to = now_ms();
    let logs = work.join("logs");
    if logs.exists() {
        std::fs::remove_dir_all(&logs).map_err(|e| msg(format!("{}: {e}", logs.display())))?;
    }
    let mut counts = [0u64; 2];
    for (log, count) in ["events", "outcomes"].into_iter().zip(counts.iter_mut()) {
        // One export covers at most 400 days: longer ranges in pieces.
        let mut start = from;
        while start < to {
            let end = (start + EXPORT_SPAN_MS).min(to);
            let (status, text) = w.call(
                "GET",
                &format!("/v1/export/{log}?from={start}&to={end}"),
                None,
            )?;
            if status != 200 {
                return Err(msg(format!(
                    "GET /v1/export/{log}: HTTP {status}: {}",
                    text.chars().take(300).collect::<String>()
                )));
            }
            *count += text.lines().filter(|l| !l.trim().is_empty()).count() as u64;
            write(
                &logs.join(log).join(format!("{start}-{end}.ndjson")),
                text.as_bytes(),
            )?;
            start = end;
        }
    }
    let exported = json!({
        "from": from, "to": to, "events": counts[0], "outcomes": counts[1],
        "new_events": counts[0].saturating_sub(state.events),
        "new_outcomes": counts[1].saturating_sub(state.outcomes),
    });
    state.exported_to = Some(to);
    state.events = counts[0];
    state.outcomes = counts[1];
    state.runs += 1;
    write(
        &state_path,
        serde_json::to_string_pretty(&state)
            .map_err(msg)?
            .as_bytes(),
    )?;

    // 3. Rows, the trainer, the check.
    let dataset = work.join("dataset.csv");
    let (_, _, summary) = step(
        "leadscore dataset",
        Process::new(&me)
            .args(["dataset", "--model"])
            .arg(&template)
            .arg("--events")
            .arg(work.join("logs/events"))
            .arg("--outcomes")
            .arg(work.join("logs/outcomes"))
            .args(["--label", &args.label, "--closed-windows", "--out"])
            .arg(&dataset),
        &[0],
    )?;
    // Only rows whose window closed by the set's as-of (the latest record), positives too
    // (`--closed-windows`): a time split's held-out rows are the latest ones.
    let summary: Value = summary
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str(l).ok())
        .ok_or_else(|| msg("leadscore dataset printed no summary"))?;
    let as_of = summary["as_of"]
        .as_i64()
        .ok_or_else(|| msg("leadscore dataset's summary has no as_of"))?;
    let count = |k: &str| {
        summary[k]
            .as_u64()
            .ok_or_else(|| msg(format!("leadscore dataset's summary has no {k}")))
    };
    let open_dropped = count("positives_in_open_windows")?;
    // The held-out rows are a part of these: fewer in all than the gate needs is a verdict already.
    let (rows, positives) = (count("rows")?, count("positives")?);
    let need = leadscore::compare::Criteria::default();
    let (need_rows, need_pos) = (
        args.min_rows.unwrap_or(need.min_rows),
        args.min_positives.unwrap_or(need.min_positives),
    );
    if rows < need_rows || positives < need_pos {
        let report = json!({
            "active": active_version,
            "exported": exported,
            "verdict": "insufficient_data",
            "reasons": [format!("{rows} labelled rows and {positives} positives in all; the gate needs {need_rows} and {need_pos} held out")],
            "dataset": {"rows": rows, "positives": positives, "as_of": as_of, "open_windows_dropped": open_dropped},
        });
        println!("{}", serde_json::to_string_pretty(&report).map_err(msg)?);
        return Ok(ExitCode::from(4));
    }
    let train_rows = match args.shuffle_labels {
        Some(seed) => {
            let shuffled = work.join("dataset-shuffled.csv");
            shuffle_labels(&dataset, &shuffled, seed)?;
            shuffled
        }
        None => dataset.clone(),
    };
    let candidate = work.join("candidate");
    let _ = std::fs::remove_dir_all(&candidate);
    step(
        "the trainer",
        Process::new(&args.python)
            .arg(&args.trainer)
            .arg("--dataset")
            .arg(&train_rows)
            .arg("--card")
            .arg(&template)
            .args([
                "--name",
                &name,
                "--weight-subjects",
                "--date",
                &today(),
                "--out",
            ])
            .arg(&candidate)
            .arg("--leadscore")
            .arg(&me),
        &[0],
    )?;
    step(
        "leadscore check",
        Process::new(&me)
            .arg("check")
            .arg("--model")
            .arg(&candidate),
        &[0],
    )?;
    let cand_card: Value =
        serde_json::from_str(&std::fs::read_to_string(candidate.join("card.json")).map_err(msg)?)
            .map_err(msg)?;
    let cand_version = cand_card["model_version"]
        .as_str()
        .unwrap_or_default()
        .to_string();

    // 4. The gate.
    let mut cmp = Process::new(&me);
    cmp.arg("compare")
        .arg("--active")
        .arg(&active_dir)
        .arg("--candidate")
        .arg(&candidate)
        .arg("--dataset")
        .arg(&dataset);
    if let Some(n) = args.min_rows {
        cmp.args(["--min-rows", &n.to_string()]);
    }
    if let Some(n) = args.min_positives {
        cmp.args(["--min-positives", &n.to_string()]);
    }
    let (code, gate, _) = step("leadscore compare", &mut cmp, &[0, 3, 4])?;
    let gate: Value = serde_json::from_str(&gate).map_err(msg)?;

    // 5. Upload and start the experiment.
    let mut report = json!({
        "active": active_version,
        "candidate": cand_version,
        "exported": exported,
        "verdict": gate["verdict"],
        "reasons": gate["reasons"],
        "dataset": {"rows": rows, "positives": positives, "as_of": as_of, "open_windows_dropped": open_dropped},
        "gate": {"rows": gate["dataset"]["rows"], "positives": gate["dataset"]["positives"],
                 "active_auc": gate["active"]["auc"]["value"], "candidate_auc": gate["candidate"]["auc"]["value"]},
    });
    if let Some(seed) = args.shuffle_labels {
        report["shuffled_labels"] = seed.into();
    }
    let forced = args.force && code == 3;
    if forced {
        report["forced"] = true.into();
    }
    if code == 0 || forced {
        let read = |f: &str| std::fs::read(candidate.join(f)).map_err(|e| msg(format!("{f}: {e}")));
        let upload = format!(
            r#"{{"card":{},"model":"{}","golden":{}}}"#,
            String::from_utf8_lossy(&read("card.json")?),
            base64::engine::general_purpose::STANDARD.encode(read("model.onnx")?),
            String::from_utf8_lossy(&read("golden.json")?),
        );
        let up = w.json("PUT", &format!("/v1/models/{name}"), Some(upload))?;
        let exp = json!({"key": format!("retrain-{cand_version}"),
                         "arms": [{"model": active, "weight": 1.0 - args.weight},
                                  {"model": cand_version, "weight": args.weight}]});
        w.json("PUT", "/v1/experiment", Some(exp.to_string()))?;
        report["uploaded"] = up;
        report["experiment"] = exp;
    }
    println!("{}", serde_json::to_string_pretty(&report).map_err(msg)?);
    Ok(ExitCode::from(code as u8))
}
