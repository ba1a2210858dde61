// The learning loop, closed on the local stack (wrangler dev: workerd, Durable Objects, Queues, R2):
//
//   Online Shoppers CSV ─► live events (models/train/shoppers_events.py: each row a visitor)
//     ─► POST /v1/import (their own timestamps; some batches twice, the worker restarted half-way,
//        every log message delivered twice by the queue)
//     ─► purchases as POST /v1/outcomes (all twice) ─► logs Queue ─► R2 ─► GET /v1/export
//     ─► leadscore dataset (the default card, point in time, 90-day window)
//     ─► checks: every row's features equal the CSV's columns bit for bit and its label is Revenue;
//        the dataset equals one built straight from the events that were sent (nothing lost or added)
//     ─► [full] the trainer on the replayed Feb–Nov rows and on the CSV's own Feb–Nov rows, both
//        judged on December by leadscore compare: AUC and Brier within 0.005.
//
//   node tests/worker/loop.mjs [--visitors N] [--train] [--out DIR]   (make loop-test: all rows + training)
//   import { runLoop } from './loop.mjs'                               (tests/worker/loop.test.mjs: a subset)
import { spawnSync } from "node:child_process";
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { ROOT } from "./receiver.mjs";
import { client, sleep } from "./lib.mjs";
import { startStack } from "./stack.mjs";

const DATA = path.resolve(ROOT, "..", "shared", "data", "online_shoppers", "online_shoppers_intention.csv");
const PY = path.join(ROOT, ".venv", "bin", "python");
const DAY = 86_400_000;
const MAX_IMPORT_EVENTS = 1000;
const MAX_IMPORT_BYTES = 900 * 1024; // below the route's 1 MiB
const EXPORT_DAYS = 400;

function run(cmd, args, { what = cmd, json = false } = {}) {
  const r = spawnSync(cmd, args, { cwd: ROOT, encoding: "utf8", maxBuffer: 1 << 30 });
  if (r.status !== 0) throw new Error(`${what} failed (${r.status}):\n${r.stderr}\n${r.stdout}`.slice(0, 4000));
  return json ? JSON.parse(r.stdout.trim().split("\n").pop()) : r;
}

function csvRows(file) {
  const [head, ...lines] = fs.readFileSync(file, "utf8").trim().split(/\r?\n/);
  const cols = head.split(",");
  return lines.map((l) => Object.fromEntries(l.split(",").map((v, i) => [cols[i], v])));
}

/** Runs the loop; returns what it measured. `visitors`: how many CSV rows (evenly spaced); 0 = all. */
export async function runLoop({ visitors = 0, train = false, out = path.join(ROOT, "target", "loop"), leadscore, log = (l) => process.stderr.write(`${l}\n`) } = {}) {
  if (!fs.existsSync(DATA)) throw new Error(`loop: ${DATA} missing (../shared/data beside the repository)`);
  fs.mkdirSync(out, { recursive: true });
  for (const f of fs.readdirSync(out)) if (/^wrangler-\d+\.log$/.test(f)) fs.rmSync(path.join(out, f));
  leadscore ??= path.join(ROOT, "target", "release", "leadscore");
  if (!fs.existsSync(leadscore)) throw new Error(`loop: ${leadscore} missing (cargo build --release --bin leadscore)`);
  const t0 = Date.now();
  const took = {};
  const lap = (k, since) => (took[k] = +((Date.now() - since) / 1000).toFixed(1));

  // 1. The CSV as live events, and the subset of visitors.
  let t = Date.now();
  const allEvents = path.join(out, "shoppers.ndjson");
  const tables = path.join(out, "tables.json");
  if (!fs.existsSync(allEvents) || !fs.existsSync(tables) || fs.statSync(allEvents).mtimeMs < fs.statSync(path.join(ROOT, "models", "train", "shoppers_events.py")).mtimeMs) {
    run(PY, ["models/train/shoppers_events.py", "--data", DATA, "--out", allEvents, "--out-tables", tables], { what: "shoppers_events.py" });
  }
  const rows = csvRows(DATA);
  const step = visitors > 0 ? Math.max(1, Math.floor(rows.length / visitors)) : 1;
  const chosen = new Set(rows.map((_, r) => r).filter((r) => r % step === 0).slice(0, visitors > 0 ? visitors : rows.length));
  const journeys = new Map(); // visitor → NDJSON lines, in order
  for (const line of fs.readFileSync(allEvents, "utf8").split("\n")) {
    if (!line) continue;
    const v = JSON.parse(line).visitor_id;
    if (!chosen.has(Number(v.slice("shoppers-".length)))) continue;
    if (!journeys.has(v)) journeys.set(v, []);
    journeys.get(v).push(line);
  }
  const sentEvents = path.join(out, "sent_events.ndjson");
  fs.writeFileSync(sentEvents, [...journeys.values()].flat().join("\n") + "\n");
  const nEvents = [...journeys.values()].reduce((a, j) => a + j.length, 0);
  const outcomes = [];
  for (const [v, lines] of journeys) {
    const r = Number(v.slice("shoppers-".length));
    if (rows[r].Revenue !== "TRUE") continue;
    const last = JSON.parse(lines[lines.length - 1]).ts;
    outcomes.push({ id: `purchase-${r}`, visitor_id: v, type: "customer", ts: last + 1000, value: Number(rows[r].PageValues) });
  }
  const sentOutcomes = path.join(out, "sent_outcomes.ndjson");
  fs.writeFileSync(sentOutcomes, outcomes.map((o) => JSON.stringify(o)).join("\n") + "\n");
  lap("prepare", t);
  log(`loop: ${journeys.size} visitors, ${nEvents} events, ${outcomes.length} purchases`);

  // 2. Import batches: whole visitors per batch; a visitor too big for one batch gets its own run of
  // batches, sent one after the other (its events in order), while other batches go in parallel.
  const batches = []; // each item: batches to send in order
  let cur = [];
  let size = 0;
  const flush = () => {
    if (cur.length) batches.push([cur]);
    cur = [];
    size = 0;
  };
  for (const lines of journeys.values()) {
    const n = lines.reduce((a, l) => a + l.length + 1, 0);
    if (lines.length > MAX_IMPORT_EVENTS || n > MAX_IMPORT_BYTES) {
      const run = [[]];
      let runSize = 0;
      for (const l of lines) {
        if (run.at(-1).length >= MAX_IMPORT_EVENTS || runSize + l.length + 1 > MAX_IMPORT_BYTES) {
          run.push([]);
          runSize = 0;
        }
        run.at(-1).push(l);
        runSize += l.length + 1;
      }
      batches.push(run);
      continue;
    }
    if (cur.length + lines.length > MAX_IMPORT_EVENTS || size + n > MAX_IMPORT_BYTES) flush();
    cur.push(...lines);
    size += n;
  }
  flush();
  const state = fs.mkdtempSync(path.join(ROOT, "target", "tmp", "loop-state-"));
  let starts = 0;
  const start = () =>
    // LOGS_REDELIVER_ONCE: the queue delivers every log message twice (src/worker/logs.rs), so R2
    // holds what at-least-once delivery repeats and the dataset must not see it.
    startStack({ vars: { LOGS_REDELIVER_ONCE: "1" }, port: "auto", receiverPort: "auto", backendPort: "auto", persistTo: state, build: "auto", logFile: path.join(out, `wrangler-${++starts}.log`), receiverLog: () => {} });
  let S = await start();
  let api = client(S.base, { token: S.devVars.API_TOKEN });
  const counts = { accepted: 0, duplicates: 0, stale: 0, rejected: 0, sends: 0 };
  const send = async (p, body) => {
    for (let attempt = 1; ; attempt++) {
      const r = await api.post(p, body, { auth: true, timeout: 120_000 }).catch((e) => ({ status: 0, text: String(e) }));
      if (r.status === 200) {
        counts.sends++;
        return r.json;
      }
      if (attempt >= 5) throw new Error(`loop: ${p} → HTTP ${r.status} ${r.text?.slice(0, 300)}`);
      await sleep(1000 * attempt); // idempotent: send again
    }
  };
  const importAll = async (list) => {
    let next = 0;
    const worker = async () => {
      while (next < list.length) {
        for (const b of list[next++]) {
          const r = await send("/v1/import", { events: b.map((l) => JSON.parse(l)) });
          counts.accepted += r.accepted;
          counts.duplicates += r.duplicates;
          counts.stale += r.stale;
          counts.rejected += r.rejected.length;
        }
      }
    };
    await Promise.all([worker(), worker(), worker(), worker()]);
  };
  // The logs as the export returns them, and a wait for the queue to have written what was accepted.
  let lo = Infinity;
  let hi = -Infinity;
  for (const j of journeys.values()) for (const l of j) {
    const x = JSON.parse(l).ts;
    lo = Math.min(lo, x);
    hi = Math.max(hi, x);
  }
  for (const o of outcomes) hi = Math.max(hi, o.ts);
  const exportAll = async (log_) => {
    const parts = [];
    for (let from = lo - (lo % DAY); from <= hi; from += EXPORT_DAYS * DAY) {
      const r = await api.get(`/v1/export/${log_}?from=${from}&to=${Math.min(from + EXPORT_DAYS * DAY, hi + 1)}`, { auth: true, timeout: 300_000 });
      if (r.status !== 200) throw new Error(`loop: export ${log_} → HTTP ${r.status} ${r.text.slice(0, 300)}`);
      parts.push(r.text);
    }
    return parts.join("");
  };
  const wranglerLogs = () =>
    fs.readdirSync(out).filter((f) => /^wrangler-\d+\.log$/.test(f)).flatMap((f) => fs.readFileSync(path.join(out, f), "utf8").split("\n").filter((l) => l.includes("logs: ")));
  const distinct = (text, key) => new Set(text.split("\n").filter(Boolean).map((l) => key(JSON.parse(l)))).size;
  let events = "";
  let outs = "";
  const recordsWritten = () => wranglerLogs().reduce((a, l) => a + Number(/, (\d+) records/.exec(l)?.[1] ?? 0), 0);
  const drained = async (wantEvents, wantOutcomes) => {
    // Cheap first: the consumer's log lines must count at least as many records as were accepted
    // (each is written at least once); then the export, which must hold every one of them.
    for (let waited = 0; recordsWritten() < wantEvents + wantOutcomes && waited < 120; waited++) await sleep(1000);
    for (let waited = 0; ; waited++) {
      events = await exportAll("events");
      outs = wantOutcomes > 0 ? await exportAll("outcomes") : "";
      const ne = distinct(events, (r) => `${r.event.visitor_id}/${r.event.id}`);
      const no = distinct(outs, (r) => r.outcome.id);
      if (ne >= wantEvents && no >= wantOutcomes) return;
      if (waited > 60) throw new Error(`loop: the logs hold ${ne}/${wantEvents} events and ${no}/${wantOutcomes} outcomes after a minute`);
      await sleep(1000);
    }
  };

  t = Date.now();
  const half = Math.ceil(batches.length / 2);
  await importAll(batches.slice(0, half));
  // A worker restart in the middle of the replay. The local queue (miniflare's broker) holds its
  // messages in memory, so the restart waits until the queue has written what was accepted; in
  // production a Queue keeps a sent message across deploys and restarts. What the restart
  // tests: the visitor objects' state and de-duplication and the R2 logs survive it.
  await drained(counts.accepted, 0);
  await S.stop();
  S = await start();
  api = client(S.base, { token: S.devVars.API_TOKEN });
  await importAll(batches.slice(half));
  // The same event batches again (a tenth of them, from both halves): nothing new.
  const again = batches.filter((_, i) => i % 10 === 3);
  const before = counts.accepted;
  await importAll(again);
  const replayedAccepted = counts.accepted - before;
  lap("import", t);
  t = Date.now();
  const outcomeCounts = { accepted: 0, duplicates: 0 };
  for (let round = 0; round < 2; round++) {
    for (let i = 0; i < outcomes.length; i += 1000) {
      const r = await send("/v1/outcomes", { outcomes: outcomes.slice(i, i + 1000) });
      outcomeCounts.accepted += r.accepted;
      outcomeCounts.duplicates += r.duplicates;
    }
  }
  lap("outcomes", t);

  // 3. The logs back through the export, once the queue has written them all.
  t = Date.now();
  await drained(nEvents, outcomes.length);
  await S.stop();
  fs.rmSync(state, { recursive: true, force: true });
  const loggedEvents = path.join(out, "logged_events.ndjson");
  const loggedOutcomes = path.join(out, "logged_outcomes.ndjson");
  fs.writeFileSync(loggedEvents, events);
  fs.writeFileSync(loggedOutcomes, outs);
  lap("export", t);

  // 4. Point-in-time training sets: from the logs, and straight from what was sent.
  t = Date.now();
  const dataset = (ev, oc, file) =>
    run(leadscore, ["dataset", "--model", "models/default", "--site-table", tables, "--events", ev, "--outcomes", oc, "--label", "customer", "--window", "90d", "--as-of", "2100-01-01", "--out", file], { what: "leadscore dataset" });
  const fromLogs = path.join(out, "dataset.csv");
  const fromSent = path.join(out, "dataset_sent.csv");
  const summary = dataset(loggedEvents, loggedOutcomes, fromLogs).stderr;
  dataset(sentEvents, sentOutcomes, fromSent);
  lap("dataset", t);
  const same = crypto.createHash("sha256").update(fs.readFileSync(fromLogs)).digest("hex") === crypto.createHash("sha256").update(fs.readFileSync(fromSent)).digest("hex");
  const check = run(PY, ["tests/worker/loop_check.py", "features", "--csv", DATA, "--card", "models/default/card.json", "--dataset", fromLogs], { what: "loop_check.py features", json: true });
  const result = {
    visitors: journeys.size,
    events: nEvents,
    purchases: outcomes.length,
    import: counts,
    replayed_batches: again.length,
    replayed_accepted: replayedAccepted,
    outcomes: outcomeCounts,
    logged_event_lines: events.split("\n").filter(Boolean).length,
    logged_distinct_events: distinct(events, (r) => `${r.event.visitor_id}/${r.event.id}`),
    redelivered_messages: wranglerLogs().reduce((a, l) => a + Number(/\((\d+) redelivered\)/.exec(l)?.[1] ?? 0), 0),
    dataset_summary: summary.trim().split("\n").pop(),
    dataset_rows: check.rows,
    features_equal: check.equal,
    features_checked: check.features_checked,
    mismatches: check.mismatches,
    label_mismatches: check.label_mismatches,
    dataset_identical_to_sent: same,
    seconds: took,
  };

  // 5. [full] Train on the replayed Feb–Nov rows and on the CSV's; both judged on December.
  if (train) {
    t = Date.now();
    const dir = (n) => path.join(out, n);
    run(PY, ["tests/worker/loop_check.py", "split", "--csv", DATA, "--dataset", fromLogs, "--out-train", dir("train.csv"), "--out-test", dir("december.csv"), "--out-table", dir("csv_train.csv")], { what: "split" });
    // The trainer's table path takes the replayed rows as a table whose columns are the features:
    // the same trainer, split rule and settings as the CSV twin; the features are the engine's.
    const template = JSON.parse(fs.readFileSync(path.join(ROOT, "models", "train", "default.card.json"), "utf8"));
    const replayed = { ...template, features: template.features.map(({ encoding, ...f }) => ({ ...f, column: f.name })) };
    fs.writeFileSync(dir("replayed.card.json"), JSON.stringify(replayed, null, 2));
    // Files the template refers to ("@codes.json#channel"), beside it as in models/train/.
    for (const [, f] of JSON.stringify(template).matchAll(/"@([\w.-]+\.json)#/g)) fs.copyFileSync(path.join(ROOT, "models", "train", f), dir(f));
    const trainArgs = ["--split", "random", "--leadscore", leadscore, "--date", "20261203"];
    run(PY, ["models/train/train.py", "--table", dir("train.csv"), "--label", "label", "--card", dir("replayed.card.json"), "--name", "replayed", "--out", dir("model-replayed"), ...trainArgs], { what: "train.py (replayed)" });
    run(PY, ["models/train/train.py", "--table", dir("csv_train.csv"), "--label", "Revenue", "--card", "models/train/default.card.json", "--name", "csv", "--out", dir("model-csv"), ...trainArgs], { what: "train.py (CSV)" });
    const cmp = spawnSync(leadscore, ["compare", "--active", dir("model-csv"), "--candidate", dir("model-replayed"), "--dataset", dir("december.csv"), "--holdout-from", "0", "--min-rows", "100", "--min-positives", "20"], { cwd: ROOT, encoding: "utf8" });
    const report = JSON.parse(cmp.stdout);
    result.december = { verdict_exit: cmp.status, csv: pick(report.active), replayed: pick(report.candidate) };
    lap("train", t);
  }
  result.seconds.total = +((Date.now() - t0) / 1000).toFixed(1);
  return result;
}

const pick = (m) => ({ model_version: m.model_version, rows: m.rows, positives: m.positives, auc: m.auc.value, brier: m.brier.value, ece: m.calibration.ece });

async function main() {
  const args = process.argv.slice(2);
  const opt = (k) => {
    const i = args.indexOf(k);
    return i >= 0 ? args[i + 1] : undefined;
  };
  const r = await runLoop({ visitors: Number(opt("--visitors") ?? 0), train: args.includes("--train"), out: opt("--out") });
  console.log(JSON.stringify(r, null, 2));
  const ok = r.features_equal === r.dataset_rows && r.dataset_rows === r.visitors && r.label_mismatches === 0 && r.dataset_identical_to_sent && r.replayed_accepted === 0 && r.logged_distinct_events === r.events;
  const dec = r.december;
  const close = !dec || (Math.abs(dec.csv.auc - dec.replayed.auc) <= 0.005 && Math.abs(dec.csv.brier - dec.replayed.brier) <= 0.005);
  if (!ok || !close) {
    console.error("loop: FAILED");
    process.exit(1);
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) main();
