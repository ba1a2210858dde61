#!/usr/bin/env node
// The loop closing itself on the local stack (wrangler dev: workerd, Durable Objects, Queues, R2, D1, the
// cron trigger), week by week, with no deploy, no restart and no file edited along the way:
//
//   the B2B world's 5,000 leads (one January cohort) cut into weekly cohorts, each moved by its week
//     ─► week w: the events and outcomes of that week, by lead id (POST /v1/leads/events as history,
//        POST /v1/outcomes) ─► the logs queue ─► R2 and D1
//     ─► the cron run as of the week's end (`/cdn-cgi/local/scheduled?time=`): windows closed and outcomes known by
//        then; RETRAIN_EVERY asks for a retrain (`model.retrain_requested`, signed)
//     ─► the job runner (tests/worker/runner.mjs, what `make run` starts) answers with `leadscore retrain`:
//        export, rows from the active card's template, train, check, the offline gate, upload, an arm
//     ─► AUTO_PROMOTE: the live gate promotes the candidate or ends the experiment on realized accuracy
//   Day zero is the starter scorecard (models/b2b-rules). Once a trained model has been promoted, two
//   drills: a retrain on shuffled labels (the offline gate must keep the active model) and the same forced
//   through (`--force`: the live gate must end it).
//
// Reported per week (target/closed-loop/report.json, weeks.md): the active version, the arms, each
// served (model, arm)'s realized AUC with its rows and positives in the latest fully labelled window, the
// runs and the webhooks. Time is scaled by config (28-day monitor windows, the cron's scheduled time),
// never slept.
//
//   node tests/worker/closed_loop.mjs [--cohorts 40] [--leads 5000]       (make closed-loop)
import fs from "node:fs";
import path from "node:path";
import crypto from "node:crypto";
import { fileURLToPath } from "node:url";
import { ROOT } from "./receiver.mjs";
import { bundleUpload, client, sleep } from "./lib.mjs";
import { startStack } from "./stack.mjs";
import { pick, world } from "./b2b.mjs";
import { retrainChild, startRunner, RETRAIN_REQUESTED } from "./runner.mjs";

const DAY = 86_400_000;
const WEEK = 7 * DAY;
/** The deployment's settings for the run: what a customer would set, time scaled to weekly steps. */
export const VARS = {
  REGISTRY_REFRESH_MS: "0",
  MONITOR_WINDOW: "28d",
  RETRAIN_EVERY: "28d",
  AUTO_PROMOTE: "true",
};
const GATE = ["--min-rows", "500", "--min-positives", "60"];
const LIVE_TYPES = ["model.promoted", "model.rejected"];

const hash = (s) => crypto.createHash("sha256").update(s).digest("hex");
const iso = (ms) => new Date(ms).toISOString().slice(0, 10);

/** The world cut into `cohorts` weekly cohorts of leads (in a fixed shuffled order), cohort k moved k weeks on. */
export function weeklyWorld({ cohorts = 40, leads = 0 } = {}) {
  const { byLead, outcomes } = world();
  const chosen = [...pick(byLead, leads)].sort((a, b) => hash(a).localeCompare(hash(b)));
  const per = Math.ceil(chosen.length / cohorts);
  const shiftOf = new Map(chosen.map((lead, i) => [lead, Math.floor(i / per) * WEEK]));
  const events = [];
  for (const lead of chosen) {
    const shift = shiftOf.get(lead);
    for (const { visitor_id, ...e } of byLead.get(lead)) events.push({ lead, e: { ...e, ts: e.ts + shift } });
  }
  const moved = outcomes.filter((o) => shiftOf.has(o.lead_id)).map((o) => ({ ...o, ts: o.ts + shiftOf.get(o.lead_id) }));
  events.sort((a, b) => a.e.ts - b.e.ts);
  moved.sort((a, b) => a.ts - b.ts);
  return { leads: chosen.length, per, events, outcomes: moved };
}

/** Posts one week's events (by lead, in time order, as history) and outcomes; retried when the stack hiccups. */
async function sendWeek(api, events, outcomes) {
  const send = async (p, body) => {
    for (let attempt = 1; ; attempt++) {
      const r = await api.post(p, body, { auth: true, timeout: 120_000 }).catch((e) => ({ status: 0, text: String(e) }));
      if (r.status === 200) return r.json;
      if (attempt >= 5) throw new Error(`closed loop: ${p} → HTTP ${r.status} ${r.text?.slice(0, 300)}`);
      await sleep(1000 * attempt); // idempotent: send again
    }
  };
  const byLead = new Map();
  for (const { lead, e } of events) {
    if (!byLead.has(lead)) byLead.set(lead, []);
    byLead.get(lead).push(e);
  }
  const counts = { accepted: 0, rejected: 0, requests: 0 };
  const queue = [...byLead.entries()];
  const worker = async () => {
    while (queue.length) {
      const [lead, evs] = queue.shift();
      for (let i = 0; i < evs.length; i += 1000) {
        const r = await send("/v1/leads/events", { lead_id: lead, history: true, events: evs.slice(i, i + 1000) });
        counts.accepted += r.accepted;
        counts.rejected += r.rejected.length;
        counts.requests += 1;
      }
    }
  };
  await Promise.all([worker(), worker(), worker(), worker()]);
  for (let i = 0; i < outcomes.length; i += 1000) await send("/v1/outcomes", { outcomes: outcomes.slice(i, i + 1000) });
  return { ...counts, leads: byLead.size };
}

const lines = (text) => text.split("\n").filter(Boolean);

/** Until the logs queue has written the week's scores (one per request) and every outcome so far. */
async function waitForLogs(api, { from, to, requests, outcomesSoFar, t0 }) {
  for (let i = 0; ; i++) {
    const s = await api.get(`/v1/export/scores?from=${from}&to=${to}`, { auth: true, timeout: 120_000 });
    const o = await api.get(`/v1/export/outcomes?from=${t0}&to=${to}`, { auth: true, timeout: 120_000 });
    if (s.status !== 200 || o.status !== 200) throw new Error(`closed loop: export → HTTP ${s.status} / ${o.status}`);
    if (lines(s.text).length >= requests && lines(o.text).length >= outcomesSoFar) return;
    // A consumer batch that fails is retried by the queue later: minutes on a busy machine.
    if (i > 600) throw new Error(`closed loop: the logs hold ${lines(s.text).length}/${requests} scores and ${lines(o.text).length}/${outcomesSoFar} outcomes after 10 minutes`);
    await sleep(1000);
  }
}

/** Each served (model, arm)'s latest fully labelled window in [from, asOf), as of `asOf`. */
async function realized(api, from, asOf) {
  const m = await api.get(`/v1/monitor?from=${from}&to=${asOf}&as_of=${asOf}`, { auth: true, timeout: 300_000 });
  if (m.status !== 200) throw new Error(`closed loop: GET /v1/monitor → HTTP ${m.status} ${m.text.slice(0, 300)}`);
  const latest = new Map();
  for (const w of m.json.windows) {
    if (w.accuracy.pending > 0 || w.accuracy.live.auc.rows === 0) continue;
    const key = `${w.model_version}|${w.arm ?? ""}`;
    const prev = latest.get(key);
    if (!prev || prev.start < w.start) latest.set(key, w);
  }
  return [...latest.values()].map((w) => ({
    model: w.model_version, arm: w.arm ?? null, window: iso(w.start), decisions: w.decisions,
    auc: w.accuracy.live.auc.value === null ? null : +w.accuracy.live.auc.value.toFixed(4),
    rows: w.accuracy.live.auc.rows, positives: w.accuracy.live.auc.positives,
    ece: w.accuracy.live.calibration.ece === null ? null : +w.accuracy.live.calibration.ece.toFixed(4),
  }));
}

/** `leadscore retrain` run by the scenario itself (the drills), against the stack. */
async function retrainNow(leadscore, base, token, work, args) {
  const { code, report, stderr } = await retrainChild({ leadscore, work, args, base, token });
  if (!report) throw new Error(`closed loop: leadscore retrain ${args.join(" ")} → exit ${code}:\n${stderr.slice(-2000)}`);
  return { code, report };
}

/** Runs the scenario; returns what it measured. */
export async function runClosedLoop({ cohorts = 40, leads = 0, out = path.join(ROOT, "target", "closed-loop"), leadscore, log = (l) => process.stderr.write(`${l}\n`), drills = true } = {}) {
  if (!fs.existsSync(leadscore)) throw new Error(`closed loop: ${leadscore} missing (cargo build --release --features worker,retrain --bin leadscore)`);
  fs.mkdirSync(out, { recursive: true });
  const started = Date.now();
  const W = weeklyWorld({ cohorts, leads });
  const t0 = Math.floor(W.events[0].e.ts / WEEK) * WEEK;
  const end = Math.max(W.events.at(-1).e.ts, W.outcomes.at(-1).ts) + 1;
  const weeks = Math.ceil((end - t0) / WEEK);
  log(`closed loop: ${W.leads} leads in ${cohorts} weekly cohorts of ${W.per}, ${W.events.length} events, ${W.outcomes.length} outcomes, ${weeks} weeks from ${iso(t0)}`);

  const state = fs.mkdtempSync(path.join(ROOT, "target", "tmp", "closed-loop-state-"));
  const S = await startStack({ vars: VARS, port: "auto", receiverPort: "auto", backendPort: "auto", persistTo: state, build: "auto", logFile: path.join(out, "wrangler.log"), receiverLog: () => {} });
  const api = client(S.base, { token: S.devVars.API_TOKEN });
  const work = fs.mkdtempSync(path.join(ROOT, "target", "tmp", "closed-loop-retrain-"));
  // The drills answer the request that comes with the first live promotion, instead of the runner.
  let drillNext = false;
  const runner = startRunner({ events: () => S.receiver.events().events, base: S.base, token: S.devVars.API_TOKEN, leadscore, work, args: ["--since", iso(t0), "--weight", "0.5", ...GATE], log, skip: () => drillNext });
  const result = { leads: W.leads, cohorts, per_cohort: W.per, events: W.events.length, outcomes: W.outcomes.length, first_week: iso(t0), weeks: [], drills: {} };
  try {
    // Day zero: the starter scorecard is the active model.
    const upload = bundleUpload("b2b-rules");
    const up = await api.request("PUT", "/v1/models/b2b-rules", { raw: upload, auth: true, headers: { "content-type": "application/json", "x-leadscore-actor": "day zero" } });
    if (up.status !== 201) throw new Error(`closed loop: rules upload → HTTP ${up.status} ${up.text.slice(0, 300)}`);
    result.rules = up.json.version;
    await api.post(`/v1/models/${result.rules}/activate`, { reason: "day zero: the starter scorecard" }, { auth: true, headers: { "x-leadscore-actor": "day zero" } });

    let ei = 0;
    let oi = 0;
    let drill = drills ? "wait" : "off"; // wait → (after a live promotion) run → forced → done
    for (let w = 0; w < weeks; w++) {
      const from = t0 + w * WEEK;
      const to = from + WEEK;
      const evs = [];
      while (ei < W.events.length && W.events[ei].e.ts < to) evs.push(W.events[ei++]);
      const outs = [];
      while (oi < W.outcomes.length && W.outcomes[oi].ts < to) outs.push(W.outcomes[oi++]);
      const sent = await sendWeek(api, evs, outs);
      if (sent.rejected) throw new Error(`closed loop: week ${w}: ${sent.rejected} events rejected`);
      await waitForLogs(api, { from, to, requests: sent.requests, outcomesSoFar: oi, t0 });
      // D1 is written by the same consumer batch as R2: a moment for the last batch's statements.
      await sleep(1500);
      const seen = S.receiver.events().events.length;
      const runsBefore = runner.runs().length;
      const cron = await fetch(new URL(`/cdn-cgi/local/scheduled?cron=*/15+*+*+*+*&time=${to}`, S.base), { signal: AbortSignal.timeout(300_000) });
      if (cron.status !== 200) throw new Error(`closed loop: week ${w}: cron → HTTP ${cron.status}`);
      // Read at once, before the run's webhooks are delivered (the queue batches for a second).
      const judged = (await api.get("/v1/models", { auth: true })).json;
      const promotedLive = judged.history.some((h) => h.by === "live gate" && h.action === "activate");
      if (drill === "wait" && promotedLive && judged.active !== result.rules && !judged.experiment) {
        drill = "run";
        drillNext = true;
      }
      await sleep(3000); // its webhooks through the queue to the receiver, and the runner's poll
      const fresh = () => S.receiver.events().events.slice(seen);
      if (fresh().some((e) => e.type === RETRAIN_REQUESTED && !runner.skipped().includes(e.id))) {
        for (let i = 0; runner.runs().length === runsBefore; i++) {
          if (i > 900) throw new Error("closed loop: the runner did not finish a retrain in 15 minutes");
          await sleep(1000);
        }
        await runner.idle();
      }
      const registry = (await api.get("/v1/models", { auth: true })).json;
      // The drills, once a trained model has been promoted by the live gate and nothing else runs.
      let drillNote = null;
      if (drill === "run") {
        const dwork = fs.mkdtempSync(path.join(ROOT, "target", "tmp", "closed-loop-drill-"));
        const args = ["--since", iso(t0), "--weight", "0.5", "--shuffle-labels", "7", ...GATE];
        const stopped = await retrainNow(leadscore, S.base, S.devVars.API_TOKEN, dwork, args);
        const forced = await retrainNow(leadscore, S.base, S.devVars.API_TOKEN, dwork, [...args, "--force"]);
        result.drills = {
          week: w, active: registry.active,
          shuffled: { code: stopped.code, verdict: stopped.report.verdict, gate: stopped.report.gate, uploaded: !!stopped.report.uploaded },
          forced: { code: forced.code, verdict: forced.report.verdict, candidate: forced.report.candidate, forced: forced.report.forced === true, experiment: forced.report.experiment ?? null },
        };
        drillNote = `drills: shuffled → ${stopped.report.verdict}; forced → arm ${forced.report.candidate}`;
        drill = "forced";
        drillNext = false;
      }
      const after = drillNote ? (await api.get("/v1/models", { auth: true })).json : registry;
      const hooks = fresh().filter((e) => e.type.startsWith("model.") || e.type.startsWith("experiment."));
      if (drill === "forced") {
        const end = hooks.find((e) => LIVE_TYPES.includes(e.type) && e.data.candidate === result.drills.forced.candidate);
        if (end) {
          result.drills.live = { week: w, type: end.type, decision: end.data.decision, arms: end.data.arms };
          drill = "done";
        }
      }
      const runs = runner.runs().slice(runsBefore).map((r) => ({ reason: r.reason, code: r.code, verdict: r.report?.verdict ?? null, candidate: r.report?.candidate ?? null, gate: r.report?.gate ?? null, error: r.error ? r.error.slice(-300) : undefined }));
      const row = {
        week: w, ends: iso(to), events: sent.accepted, outcomes: outs.length,
        active: after.active, experiment: after.experiment ? after.experiment.arms.map((a) => [a.model, a.weight]) : null,
        runs, webhooks: hooks.map((e) => e.type === RETRAIN_REQUESTED ? `${e.type} (${e.data.reason})` : e.type),
        live: await realized(api, Math.max(t0, to - 16 * WEEK), to),
        drill: drillNote,
      };
      result.weeks.push(row);
      log(`week ${w} (${row.ends}): ${row.events} events, ${row.outcomes} outcomes; active ${row.active}${row.experiment ? `; arms ${JSON.stringify(row.experiment)}` : ""}${row.webhooks.length ? `; ${row.webhooks.join(", ")}` : ""}${runs.length ? `; retrain ${runs.map((r) => r.verdict ?? `exit ${r.code}`).join(", ")}` : ""}${drillNote ? `; ${drillNote}` : ""}`);
    }
    result.final = (await api.get("/v1/models", { auth: true })).json;
    result.receiver_rejected = S.receiver.events().rejected;
    result.webhooks = S.receiver.events().events.filter((e) => e.type.startsWith("model.") || e.type.startsWith("experiment.")).map((e) => ({ type: e.type, ...(e.type === RETRAIN_REQUESTED ? { reason: e.data.reason } : {}), ...(LIVE_TYPES.includes(e.type) ? { candidate: e.data.candidate, decision: e.data.decision } : {}) }));
  } finally {
    await runner.stop();
    await S.stop();
    if (!process.env.CLOSED_LOOP_KEEP_STATE) fs.rmSync(state, { recursive: true, force: true });
  }
  result.seconds = +((Date.now() - started) / 1000).toFixed(1);
  fs.writeFileSync(path.join(out, "report.json"), JSON.stringify(result, null, 1));
  fs.writeFileSync(path.join(out, "weeks.md"), table(result));
  return result;
}

/** The weekly report as a Markdown table. */
export function table(r) {
  const short = (v) => (v ? v.replace(/^(b2b-rules|b2b)-/, "$1·").slice(0, 28) : v);
  const rows = r.weeks.map((w) => {
    const live = w.live.map((l) => `${short(l.model)}${l.arm ? ` [arm]` : ""}: ${l.auc ?? "–"} (${l.rows} rows, ${l.positives} pos, ${l.window})`).join("; ");
    const runs = w.runs.map((x) => `${x.verdict ?? `exit ${x.code}`}${x.gate ? ` ${x.gate.candidate_auc?.toFixed?.(3) ?? "–"} vs ${x.gate.active_auc?.toFixed?.(3) ?? "–"}` : ""}`).join(", ");
    const arms = w.experiment ? w.experiment.map(([m, x]) => `${short(m)} ${x}`).join(" / ") : "";
    return `| ${w.week} | ${w.ends} | ${w.events} | ${w.outcomes} | ${short(w.active)} | ${arms} | ${runs} | ${[...w.webhooks, w.drill].filter(Boolean).join(", ")} | ${live} |`;
  });
  return ["| week | ends | events | outcomes | active | arms | retrain (offline AUC cand vs active) | webhooks | realized AUC, latest labelled window |", "|---|---|---|---|---|---|---|---|---|", ...rows].join("\n") + "\n";
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const args = process.argv.slice(2);
  const opt = (n, d) => (args.includes(n) ? args[args.indexOf(n) + 1] : d);
  const r = await runClosedLoop({
    cohorts: Number(opt("--cohorts", 40)),
    leads: Number(opt("--leads", 0)),
    leadscore: path.join(ROOT, "target", "release", "leadscore"),
  });
  console.log(JSON.stringify({ ...r, weeks: r.weeks.length }, null, 1));
}
