//! `leadscore retrain`: one command that turns the worker's logs into a candidate model and, when
//! the publish gate says so, an experiment arm — the job a scheduler runs when the worker asks
//! for it (`model.retrain_requested`).
//!
//! Steps, each leaving its files in the work directory (`--work`, default `target/retrain`):
//! 1. `GET /v1/models`: the active version; `GET /v1/models/{active}`: its card and model
//!    (`active/`); its features, site tables and rows are the template (`template.json`).
//! 2. `GET /v1/export/{events,outcomes}` from where the last run stopped (`state.json`) to now,
//!    appended under `logs/` (a crash before the state is saved re-exports the same range:
//!    the dataset de-duplicates by record key).
//! 3. `leadscore dataset` with the template's rows (`dataset.csv`), the trainer
//!    (`models/train/train.py --dataset … --weight-subjects`, `candidate/`), `leadscore check`.
//! 4. `leadscore compare` of the active and the candidate on the candidate's held-out rows.
//! 5. On `promote`: `PUT /v1/models/{name}` (idempotent: the same version again is stored once)
//!    and `PUT /v1/experiment` with the candidate at `--weight`.
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
}

/// The longest range one export asks for (the worker's limit is 400 days).
const EXPORT_SPAN_MS: i64 = 399 * 86_400_000;

/// What the work directory remembers between runs.
#[derive(Debug, Default, Serialize, Deserialize)]
struct State {
    /// The logs are exported up to this time (ms, exclusive).
    exported_to: Option<i64>,
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
fn step(what: &str, cmd: &mut Process, ok: &[i32]) -> Result<(i32, String), CliError> {
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
    Ok((code, String::from_utf8_lossy(&out.stdout).into_owned()))
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

    // 2. The logs since the last run.
    let from = match (state.exported_to, &args.since) {
        (Some(t), _) => t,
        (None, Some(s)) => leadscore::dataset::parse_as_of(s).map_err(msg)?,
        (None, None) => now_ms() - 399 * 86_400_000,
    };
    let to = now_ms();
    let mut exported = json!({});
    for log in ["events", "outcomes"] {
        // One export covers at most 400 days: longer ranges in pieces.
        let (mut lines, mut start) = (0usize, from);
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
            lines += text.lines().filter(|l| !l.trim().is_empty()).count();
            let file = work
                .join("logs")
                .join(log)
                .join(format!("{start}-{end}.ndjson"));
            write(&file, text.as_bytes())?;
            start = end;
        }
        exported[log] = lines.into();
    }
    state.exported_to = Some(to);
    state.runs += 1;
    write(
        &state_path,
        serde_json::to_string_pretty(&state)
            .map_err(msg)?
            .as_bytes(),
    )?;

    // 3. Rows, the trainer, the check.
    let dataset = work.join("dataset.csv");
    let (_, _) = step(
        "leadscore dataset",
        Process::new(&me)
            .args(["dataset", "--model"])
            .arg(&template)
            .arg("--events")
            .arg(work.join("logs/events"))
            .arg("--outcomes")
            .arg(work.join("logs/outcomes"))
            .args(["--label", &args.label, "--out"])
            .arg(&dataset),
        &[0],
    )?;
    let candidate = work.join("candidate");
    let _ = std::fs::remove_dir_all(&candidate);
    step(
        "the trainer",
        Process::new(&args.python)
            .arg(&args.trainer)
            .arg("--dataset")
            .arg(&dataset)
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
    let (code, gate) = step("leadscore compare", &mut cmp, &[0, 3, 4])?;
    let gate: Value = serde_json::from_str(&gate).map_err(msg)?;

    // 5. Upload and start the experiment.
    let mut report = json!({
        "active": active_version,
        "candidate": cand_version,
        "exported": {"from": from, "to": to, "events": exported["events"], "outcomes": exported["outcomes"]},
        "verdict": gate["verdict"],
        "reasons": gate["reasons"],
        "gate": {"rows": gate["dataset"]["rows"], "positives": gate["dataset"]["positives"],
                 "active_auc": gate["active"]["auc"]["value"], "candidate_auc": gate["candidate"]["auc"]["value"]},
    });
    if code == 0 {
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
