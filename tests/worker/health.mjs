// The model-health scenario on the local stack (wrangler dev: workerd, Durable Objects, Queues, R2,
// D1, the cron trigger through --test-scheduled), with the default model (trained Feb–Nov; its
// card's baseline frozen from those rows, its held-out accuracy from December):
//
//   Online Shoppers' December journeys (models/train/shoppers_events.py), moved by whole weeks (every
//   event keeps its weekday) so that each journey's last event — its decision, scored at that time —
//   falls in one 7-day window per phase (Dec 4, Dec 25 2025, Jan 15 2026; the journeys' earlier
//   events may lie weeks before, where only a split visitor's partial score makes a small window):
//     unchanged  the journeys as they are, their purchases as outcomes;
//     shifted    the same journeys after a site change: every page moved to new URLs, which the
//                page-statistics table and the page-category rules do not know;
//     shuffled   the journeys as they are, the purchases given to randomly chosen visitors;
//   ─► POST /v1/import (history at its own times: one score per visitor at its last event) and
//      POST /v1/outcomes ─► logs Queue ─► R2 + D1 decisions ─► GET /__scheduled (the cron run)
//   ─► checks (tests/worker/health.test.mjs): the features the site change moves drift in `shifted`
//      only, and its signed model.drift_detected names them; `shuffled` (the same journeys as
//      `unchanged`) drifts no more than `unchanged` but raises model.performance_degraded; a second
//      run sends nothing again; GET /v1/monitor and `leadscore monitor` on the exported logs agree
//      within 1e-12; the dashboard and the HTML report render in Chromium (screenshots).
//   Both stacks first set the shop's own site tables (PUT /v1/site: the 14,475 page statistics the
//   model was trained with), as a deployment does. What `unchanged` shows: the realized AUC equals the
//   card's held-out AUC (December is the holdout), the page features and the score stay under the
//   alert line; December's own traffic differs from Feb–Nov (channel PSI 1.12, visitor_type 0.13 on
//   the CSV's columns): a real shift, alerted on; special_day (December has none) is a calendar
//   feature, reported and never alerted on.
//   node tests/worker/health.mjs [--out DIR]          (make health-test; also the CI test's body)
//   import { runHealth } from './health.mjs'
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { ROOT } from "./receiver.mjs";
import { client, sleep, workerdRssKb } from "./lib.mjs";
import { startStack } from "./stack.mjs";

const DATA = path.resolve(ROOT, "..", "shared", "data", "online_shoppers", "online_shoppers_intention.csv");
const PY = path.join(ROOT, ".venv", "bin", "python");
const DAY = 86_400_000;
const WEEK = 7 * DAY;
const MAX_IMPORT_EVENTS = 1000;
const MAX_IMPORT_BYTES = 900 * 1024;
// The first epoch-aligned week (the worker's 7-day windows start on epoch Thursdays) from 1 Dec 2025;
// phases three weeks apart (journeys span up to weeks; February's special days stay out of reach).
const FIRST = Math.ceil(Date.UTC(2025, 11, 1) / WEEK) * WEEK;
const GAP = 3 * WEEK;
const phaseOf = (start) => PHASES[(start - FIRST) / GAP] ?? null;
export const PHASES = ["unchanged", "shifted", "shuffled"];
// The site change: every category moves under a new prefix, unknown to the card's site tables.
const MOVED = [["/account/", "/my-account/"], ["/help/", "/support/"], ["/products/", "/shop/"], ["/landing/", "/start/"]];

function run(cmd, args, what = cmd) {
  const r = spawnSync(cmd, args, { cwd: ROOT, encoding: "utf8", maxBuffer: 1 << 30 });
  if (r.status !== 0 && r.status !== 5) throw new Error(`${what} failed (${r.status}):\n${r.stderr}\n${r.stdout}`.slice(0, 4000));
  return r;
}

function csvRows(file) {
  const [head, ...lines] = fs.readFileSync(file, "utf8").trim().split(/\r?\n/);
  const cols = head.split(",");
  return lines.map((l) => Object.fromEntries(l.split(",").map((v, i) => [cols[i], v])));
}

/** A deterministic shuffle (mulberry32). */
function shuffled(list, seed) {
  let a = seed >>> 0;
  const rnd = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const out = [...list];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(rnd() * (i + 1));
    [out[i], out[j]] = [out[j], out[i]];
  }
  return out;
}

/** December's journeys: visitor → events (parsed), and which rows purchased. */
function december(out) {
  fs.mkdirSync(out, { recursive: true });
  const allEvents = path.join(out, "shoppers.ndjson");
  const script = path.join(ROOT, "models", "train", "shoppers_events.py");
  if (!fs.existsSync(allEvents) || fs.statSync(allEvents).mtimeMs < fs.statSync(script).mtimeMs) {
    run(PY, [script, "--data", DATA, "--out", allEvents, "--out-tables", path.join(out, "tables.json")], "shoppers_events.py");
  }
  const rows = csvRows(DATA);
  const journeys = new Map();
  for (const line of fs.readFileSync(allEvents, "utf8").split("\n")) {
    if (!line) continue;
    const e = JSON.parse(line);
    const r = Number(e.visitor_id.slice("shoppers-".length));
    if (rows[r].Month !== "Dec") continue;
    if (!journeys.has(e.visitor_id)) journeys.set(e.visitor_id, []);
    journeys.get(e.visitor_id).push(e);
  }
  const bought = new Set([...journeys.keys()].filter((v) => rows[Number(v.slice("shoppers-".length))].Revenue === "TRUE"));
  return { journeys, bought };
}

/** A phase's journeys, their last events moved into its week (whole weeks), and its outcomes. */
function phase(name, k, { journeys, bought }, keep = () => true) {
  const start = FIRST + k * GAP;
  const weekday0 = new Date(start).getUTCDay();
  const out = new Map();
  for (const [v, events] of journeys) {
    const d0 = Math.floor(events.at(-1).ts / DAY) * DAY;
    const target = start + ((new Date(d0).getUTCDay() - weekday0 + 7) % 7) * DAY;
    const id = `${name}-${v}`;
    if (!keep(id)) continue;
    out.set(id, events.map((e) => {
      const x = { ...e, visitor_id: id, ts: e.ts + (target - d0) };
      if (name === "shifted") {
        for (const [from, to] of MOVED) {
          if (x.path?.startsWith(from)) x.path = to + x.path.slice(from.length);
          if (x.url) x.url = x.url.replace(`.example${from}`, `.example${to}`);
        }
      }
      return x;
    }));
  }
  const last = (id) => out.get(id).at(-1).ts;
  const buyers = name === "shuffled"
    ? shuffled([...out.keys()], 20261204).slice(0, bought.size)
    : [...bought].map((v) => `${name}-${v}`).filter((id) => out.has(id));
  const outcomes = buyers.map((id) => ({ id: `purchase-${id}`, visitor_id: id, type: "customer", ts: last(id) + 1000 }));
  return { name, start, journeys: out, outcomes };
}

/** GrowthBook's v2 bucket (FNV-1a 32 over UTF-16 code units, hashed twice): the page's own copy of
 * the assignment the worker pins, to check that both agree on every visitor. */
export function bucket(seed, value) {
  const fnv = (s) => {
    let h = 0x811c9dc5;
    for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193) >>> 0;
    return h >>> 0;
  };
  return (fnv(String(fnv(seed + value))) % 10000) / 10000;
}
// The key is the hash seed. (With "model-ab" the 1,727 December ids happen to split 795 / 932, p =
// 0.00098: the 1-in-1,000 event the SRM test exists to flag, and not this scenario's point.)
export const EXPERIMENT = { key: "leadscore-ab", arms: [{ model: "default", weight: 0.5 }, { model: "candidate", weight: 0.5 }] };
/** The arm GrowthBook's ranges give `visitor` in `exp` (cumulative normalized weights). */
export function armFor(exp, visitor) {
  const n = bucket(exp.key, visitor);
  const total = exp.arms.reduce((a, x) => a + x.weight, 0);
  let upTo = 0;
  for (const a of exp.arms) {
    upTo += a.weight / total;
    if (n < upTo) return a.model;
  }
  return exp.arms.at(-1).model;
}
const armOf = (visitor) => armFor(EXPERIMENT, visitor);

/** Import batches: whole visitors per batch, a visitor too big for one batch in its own run. */
function batches(journeys) {
  const list = [];
  let cur = [];
  let size = 0;
  for (const events of journeys.values()) {
    const n = events.reduce((a, e) => a + JSON.stringify(e).length + 1, 0);
    if (events.length > MAX_IMPORT_EVENTS || n > MAX_IMPORT_BYTES) {
      for (let i = 0; i < events.length; i += MAX_IMPORT_EVENTS / 2) list.push([events.slice(i, i + MAX_IMPORT_EVENTS / 2)]);
      continue;
    }
    if (cur.length + events.length > MAX_IMPORT_EVENTS || size + n > MAX_IMPORT_BYTES) {
      list.push([cur]);
      cur = [];
      size = 0;
    }
    cur.push(...events);
    size += n;
  }
  if (cur.length) list.push([cur]);
  return list;
}

/** POST with retries (every route used here is idempotent). */
function sender(api) {
  return async (p, body) => {
    for (let attempt = 1; ; attempt++) {
      const r = await api.post(p, body, { auth: true, timeout: 120_000 }).catch((e) => ({ status: 0, text: String(e) }));
      if (r.status === 200) return r.json;
      if (attempt >= 5) throw new Error(`health: ${p} → HTTP ${r.status} ${r.text?.slice(0, 300)}`);
      await sleep(1000 * attempt);
    }
  };
}

/** Imports the phases' journeys (4 requests at a time) and then their outcomes; returns events accepted. */
async function load(send, phases) {
  let accepted = 0;
  const work = phases.flatMap((p) => batches(p.journeys));
  let next = 0;
  const worker = async () => {
    while (next < work.length) {
      for (const b of work[next++]) {
        const r = await send("/v1/import", { events: b });
        accepted += r.accepted; // after the await: `x += await …` would add to a stale x
      }
    }
  };
  await Promise.all([worker(), worker(), worker(), worker()]);
  const outcomes = phases.flatMap((p) => p.outcomes);
  for (let i = 0; i < outcomes.length; i += 1000) await send("/v1/outcomes", { outcomes: outcomes.slice(i, i + 1000) });
  return accepted;
}

/** The shop's own site tables (the 14,475 page statistics the model was trained with), as a deployment
 * sets them: PUT /v1/site, before any traffic. */
export async function useShopTables(api) {
  const r = await api.put("/v1/site", fs.readFileSync(path.join(ROOT, "target", "loop", "tables.json"), "utf8"), { auth: true, timeout: 60_000 });
  if (r.status !== 200) throw new Error(`health: PUT /v1/site → HTTP ${r.status} ${r.text.slice(0, 300)}`);
  return r.json;
}

const runCron = async (S) => {
  const r = await fetch(new URL("/__scheduled?cron=*/15+*+*+*+*", S.base), { signal: AbortSignal.timeout(120_000) });
  if (r.status !== 200) throw new Error(`health: /__scheduled → HTTP ${r.status}`);
};

/**
 * The experiment: a second stack with EXPERIMENT = 50/50 default vs candidate. Week "ab" (13 Nov 2025)
 * holds every December journey; week "srm" (23 Oct 2025) loses a third of the candidate arm's
 * visitors before they reach the worker (as a broken redirect would), about 60/40.
 */
export async function runExperiment({ out, dec = december(path.join(ROOT, "target", "loop")) }) {
  const ab = phase("ab", -1, dec);
  let dropped = 0;
  const srm = phase("srm", -2, dec, (id) => armOf(id) === "default" || dropped++ % 3 !== 0);
  const state = fs.mkdtempSync(path.join(ROOT, "target", "tmp", "health-ab-state-"));
  const S = await startStack({
    vars: { MONITOR_WINDOW: "7d", EXPERIMENT: JSON.stringify(EXPERIMENT) },
    port: "auto", receiverPort: "auto", backendPort: "auto", persistTo: state, build: "auto",
    logFile: path.join(out, "wrangler-ab.log"), receiverLog: () => {},
  });
  const r = { visitors: { ab: ab.journeys.size, srm: srm.journeys.size }, purchases: ab.outcomes.length + srm.outcomes.length };
  try {
    const api = client(S.base, { token: S.devVars.API_TOKEN });
    r.site = await useShopTables(api);
    r.events = await load(sender(api), [ab, srm]);
    const from = srm.start;
    const to = ab.start + WEEK;
    const want = ab.journeys.size + srm.journeys.size;
    let report;
    for (let waited = 0; ; waited++) {
      const res = await api.get(`/v1/monitor?from=${from}&to=${to}`, { auth: true, timeout: 120_000 });
      if (res.status !== 200) throw new Error(`health: GET /v1/monitor → HTTP ${res.status} ${res.text.slice(0, 300)}`);
      report = res.json;
      const n = report.experiments.reduce((a, e) => a + e.srm.visitors, 0);
      const positives = report.experiments.reduce((a, e) => a + e.arms.reduce((b, x) => b + x.conversion.positives, 0), 0);
      if (n >= want && positives >= ab.outcomes.length + srm.outcomes.length) break;
      if (waited > Number(process.env.HEALTH_WAIT_S ?? 120)) throw new Error(`health: D1 holds ${n}/${want} assigned visitors`);
      await sleep(1000);
    }
    await runCron(S);
    const srmAlerts = () => S.receiver.events().events.filter((e) => e.type === "experiment.sample_ratio_mismatch");
    for (let waited = 0; srmAlerts().length < 1 && waited < 60; waited++) await sleep(1000);
    await sleep(2000);
    await runCron(S);
    await sleep(3000);
    const name = (start) => (start === ab.start ? "ab" : start === srm.start ? "srm" : start);
    r.experiments = report.experiments.map((e) => ({
      window: name(e.window_start), level: e.level, visitors: e.srm.visitors, observed: e.srm.observed,
      chi_square: e.srm.chi_square, p_value: e.srm.p_value,
      arms: e.arms.map((a) => ({ arm: a.arm, model: a.model, visitors: a.visitors, positives: a.conversion.positives, conversion: a.conversion.rate, low: a.conversion.low, high: a.conversion.high })),
    }));
    r.srm_alerts = srmAlerts().map((e) => ({ window: name(e.data.window_start), moved: e.data.moved.map((m) => [m.what, m.metric, +m.value.toFixed(4)]) }));
    r.receiver_rejected = S.receiver.events().rejected;
    // The worker's pinned arm of every visitor, from its logged scores, against the page's hash.
    const ex = await api.get(`/v1/export/scores?from=${from}&to=${to}`, { auth: true, timeout: 300_000 });
    const models = Object.fromEntries(report.experiments.flatMap((e) => e.arms.map((a) => [a.arm, a.model])));
    let agree = 0;
    let disagree = 0;
    const seen = new Set();
    for (const line of ex.text.split("\n")) {
      if (!line) continue;
      const rec = JSON.parse(line);
      if (seen.has(rec.visitor_id)) continue;
      seen.add(rec.visitor_id);
      if (rec.arm === armOf(rec.visitor_id) && rec.model_version === models[rec.arm]) agree++;
      else disagree++;
    }
    r.arm_agreement = { visitors: seen.size, agree, disagree };
    r.workerd_rss_mb = +(workerdRssKb(S.child.pid) / 1024).toFixed(1);
    r.browser = await browserArms(S, api);
    const d = await dashboard(S, from, to, path.join(out, "dashboard-experiment.png"));
    r.dashboard_arms_rows = d.arms_rows;
    r.page_errors = d.errors;
  } finally {
    await S.stop();
    if (!process.env.HEALTH_KEEP_STATE) fs.rmSync(state, { recursive: true, force: true });
  }
  return r;
}

/**
 * Visitors walking the demo site in Chromium on the experiment's stack (consent accepted): the page
 * learns the experiment and the site tables from GET /v1/config, assigns the arm with the worker's
 * code, loads that arm's bundle from the assets, and scores; the worker pins its own arm on first
 * sight. Each visitor's arm, model version and score, page against worker.
 */
export async function browserArms(S, api, { min = 3, max = 16, experiment = EXPERIMENT } = {}) {
  // Without an experiment every visitor is scored by the active version, with no arm.
  const names = experiment ? experiment.arms.map((a) => a.model) : [null];
  const hashArm = (v) => (experiment ? armFor(experiment, v) : null);
  const { chromium } = await import("playwright-core");
  const browser = await chromium.launch({ executablePath: "/usr/bin/chromium", args: ["--headless", "--no-sandbox", "--disable-gpu"] });
  const rows = [];
  const errors = [];
  try {
    for (let i = 0; i < max; i++) {
      const seen = (a) => rows.filter((r) => r.page_arm === a).length;
      if (names.every((a) => seen(a) >= min)) break;
      const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 } });
      const page = await ctx.newPage();
      page.on("pageerror", (e) => errors.push(String(e)));
      const answers = [];
      page.on("response", async (r) => {
        if (new URL(r.url()).pathname === "/v1/events" && r.status() === 200) answers.push(await r.json().catch(() => null));
      });
      await page.goto(`${S.base}/`, { waitUntil: "load" });
      await page.getByRole("button", { name: /^accept/i }).click();
      await page.mouse.wheel(0, 800);
      await sleep(500);
      await page.getByRole("link", { name: /^pricing$/i }).first().click();
      await page.waitForURL(/\/pricing\/?$/);
      await page.mouse.wheel(0, 800);
      await page.evaluate(() => window.leadscore.flush());
      // Every event made has been sent and answered, and the page has scored them all.
      await page.waitForFunction(() => window.leadscore.score() && window.leadscore.info().queued === 0, null, { timeout: 30_000 });
      const p = await page.evaluate(() => ({ info: window.leadscore.info(), score: window.leadscore.score() }));
      const w = await api.get(`/v1/score/${encodeURIComponent(p.info.visitorId)}?kind=visitor`, { auth: true });
      if (w.status !== 200) throw new Error(`health: GET /v1/score → HTTP ${w.status} ${w.text.slice(0, 200)}`);
      const last = answers.filter(Boolean).at(-1)?.score;
      rows.push({
        visitor: p.info.visitorId, page_arm: p.score.arm ?? null, worker_arm: w.json.score.arm ?? null, hash_arm: hashArm(p.info.visitorId),
        page_model: p.score.model_version, worker_model: w.json.score.model_version,
        page_score: p.score.ai_score, worker_score: w.json.score.ai_score, last_answer_score: last?.ai_score ?? null,
        page_probability: p.score.probability, worker_probability: w.json.score.probability,
      });
      await ctx.close();
    }
  } finally {
    await browser.close();
  }
  const agree = rows.filter((r) => r.page_arm === r.worker_arm && r.page_arm === r.hash_arm && r.page_model === r.worker_model && r.page_score === r.worker_score);
  return {
    visitors: rows.length, agree: agree.length,
    arms: Object.fromEntries(names.map((a) => [a ?? "none", rows.filter((r) => r.page_arm === a).length])),
    max_probability_gap: Math.max(...rows.map((r) => Math.abs(r.page_probability - r.worker_probability))),
    rows, errors,
  };
}

/** The dashboard in Chromium with the token typed in, loaded for [from, to): a screenshot and what it shows. */
async function dashboard(S, from, to, file, { report } = {}) {
  const { chromium } = await import("playwright-core");
  const browser = await chromium.launch({ executablePath: "/usr/bin/chromium", args: ["--headless", "--no-sandbox", "--disable-gpu"] });
  const out = { errors: [] };
  try {
    const page = await browser.newPage({ viewport: { width: 1280, height: 2200 } });
    page.on("pageerror", (e) => out.errors.push(String(e)));
    await page.goto(new URL("/monitor/", S.base).href);
    await page.fill("input[name=token]", S.devVars.API_TOKEN);
    await page.fill("input[name=from]", new Date(from).toISOString().slice(0, 10));
    await page.fill("input[name=to]", new Date(to).toISOString().slice(0, 10));
    await page.click("button[type=submit]");
    try {
      await page.waitForSelector("#app[data-loaded=true]", { timeout: 60_000 });
    } catch (e) {
      const shown = await page.locator(".error").allTextContents().catch(() => []);
      await page.screenshot({ path: file, fullPage: true }).catch(() => {});
      throw new Error(`dashboard did not load: ${shown.join(" ")} ${out.errors.join(" ")} (${e.message.split("\n")[0]})`);
    }
    out.charts = await page.locator("canvas").count();
    // The token lives in the page's memory only: nothing in any storage another page of the origin reads.
    out.token_in_memory_only = await page.evaluate(() => sessionStorage.length === 0 && localStorage.length === 0);
    // /monitor/ is served with the strict policy of target/www/_headers (the charts above rendered under it).
    out.csp = (await page.request.get(new URL("/monitor/", S.base).href)).headers()["content-security-policy"] ?? "";
    out.arms_rows = await page.locator("text=Experiment arms").locator("..").locator("tr").count();
    await page.screenshot({ path: file, fullPage: true });
    if (report) {
      const rp = await browser.newPage({ viewport: { width: 1280, height: 2200 } });
      rp.on("pageerror", (e) => out.errors.push(String(e)));
      await rp.goto(`file://${report}`);
      await rp.waitForSelector("#app[data-loaded=true]", { timeout: 60_000 });
      out.report_charts = await rp.locator("canvas").count();
      await rp.screenshot({ path: report.replace(/\.html$/, ".png"), fullPage: true });
    }
  } finally {
    await browser.close();
  }
  return out;
}

/** Runs the scenario; returns what it measured (the test and `make health-test` check it). */
export async function runHealth({ out = path.join(ROOT, "target", "health"), leadscore, screenshots = true, experiment = true, log = (l) => process.stderr.write(`${l}\n`) } = {}) {
  if (!fs.existsSync(DATA)) throw new Error(`health: ${DATA} missing (../shared/data beside the repository)`);
  if (!fs.existsSync(leadscore)) throw new Error(`health: ${leadscore} missing (cargo build --bin leadscore)`);
  fs.mkdirSync(out, { recursive: true });
  const t0 = Date.now();
  const dec = december(path.join(ROOT, "target", "loop"));
  const phases = PHASES.map((n, k) => phase(n, k, dec));
  log(`health: ${dec.journeys.size} December journeys × ${phases.length} phases, ${dec.bought.size} purchases each`);

  const state = fs.mkdtempSync(path.join(ROOT, "target", "tmp", "health-state-"));
  const S = await startStack({
    vars: { MONITOR_WINDOW: "7d" },
    port: "auto", receiverPort: "auto", backendPort: "auto", persistTo: state, build: "auto",
    logFile: path.join(out, "wrangler.log"), receiverLog: () => {},
  });
  const result = { visitors_per_phase: dec.journeys.size, purchases_per_phase: dec.bought.size, events_per_phase: [...dec.journeys.values()].reduce((a, j) => a + j.length, 0), windows: {} };
  try {
    const api = client(S.base, { token: S.devVars.API_TOKEN });
    const send = sender(api);
    // 1. The shop's site tables, history through the import route, then the outcomes.
    result.site = await useShopTables(api);
    let t = Date.now();
    result.events = await load(send, phases);
    const allOutcomes = phases.flatMap((p) => p.outcomes);
    result.import_s = +((Date.now() - t) / 1000).toFixed(1);

    // 2. Until D1 holds every decision and outcome (the logs consumer writes them per batch).
    const from = FIRST - 8 * WEEK;
    const to = FIRST + (phases.length - 1) * GAP + WEEK;
    t = Date.now();
    let report;
    for (let waited = 0; ; waited++) {
      const r = await api.get(`/v1/monitor?from=${from}&to=${to}`, { auth: true, timeout: 120_000 });
      if (r.status !== 200) throw new Error(`health: GET /v1/monitor → HTTP ${r.status} ${r.text.slice(0, 300)}`);
      report = r.json;
      const inPhases = report.windows.filter((w) => phaseOf(w.start));
      const decisions = inPhases.reduce((a, w) => a + w.decisions, 0);
      const positives = inPhases.reduce((a, w) => a + w.accuracy.live.auc.positives, 0);
      if (decisions >= phases.length * dec.journeys.size && positives >= allOutcomes.length) break;
      if (waited > Number(process.env.HEALTH_WAIT_S ?? 120)) throw new Error(`health: D1 holds ${decisions} decisions and ${positives} positives after 2 minutes`);
      await sleep(1000);
    }
    result.aggregated_s = +((Date.now() - t) / 1000).toFixed(1);

    // 3. The cron run, twice: alerts once per window.
    const scheduled = () => runCron(S);
    const alerts = () => S.receiver.events().events.filter((e) => e.type?.startsWith("model.") || e.type?.startsWith("experiment."));
    await scheduled();
    for (let waited = 0; alerts().length < 2 && waited < 60; waited++) await sleep(1000);
    await sleep(3000);
    const first = alerts();
    await scheduled();
    await sleep(5000);
    result.alerts = first.map((e) => ({ type: e.type, window: phaseOf(e.data.window_start) ?? e.data.window_start, level: e.data.level, moved: e.data.moved.map((m) => [m.what, m.metric, +m.value.toFixed(4)]) }));
    result.alerts_after_second_run = alerts().length;
    result.receiver_rejected = S.receiver.events().rejected;

    // 4. Every window's numbers, and the offline twin on the exported logs.
    result.other_windows = report.windows.filter((w) => !phaseOf(w.start)).map((w) => ({ start: new Date(w.start).toISOString().slice(0, 10), decisions: w.decisions, alerts: w.alerts.length }));
    for (const w of report.windows) {
      const name = phaseOf(w.start);
      if (!name) continue;
      result.windows[name] = {
        decisions: w.decisions,
        score_psi: w.score.drift.psi,
        score_ks: w.score.drift.ks,
        features_psi: Object.fromEntries(w.features.map((f) => [f.name, +f.drift.psi.toFixed(4)])),
        max_feature_psi: Math.max(...w.features.map((f) => f.drift.psi)),
        auc: w.accuracy.live.auc.value,
        card_auc: w.accuracy.baseline_auc,
        ece: w.accuracy.live.calibration.ece,
        positives: w.accuracy.live.auc.positives,
        accuracy: w.accuracy.level,
        alerts: w.alerts.map((a) => a.type),
      };
    }
    const exportLog = async (kind) => {
      const r = await api.get(`/v1/export/${kind}?from=${from}&to=${to}`, { auth: true, timeout: 300_000 });
      if (r.status !== 200) throw new Error(`health: export ${kind} → HTTP ${r.status}`);
      const f = path.join(out, `${kind}.ndjson`);
      fs.writeFileSync(f, r.text);
      return f;
    };
    const scores = await exportLog("scores");
    const outcomes = await exportLog("outcomes");
    const html = path.join(out, "report.html");
    const cli = run(leadscore, ["monitor", "--model", "models/default", "--scores", scores, "--outcomes", outcomes,
      "--window", "7d", "--as-of", String(report.as_of), "--report", html], "leadscore monitor");
    const offline = JSON.parse(cli.stdout);
    fs.writeFileSync(path.join(out, "monitor.json"), JSON.stringify(report, null, 1));
    fs.writeFileSync(path.join(out, "monitor-cli.json"), JSON.stringify(offline, null, 1));
    result.cli_exit = cli.status;
    // The same numbers, up to the last bits of a logarithm (the worker's wasm libm vs native).
    const close = (a, b) => {
      if (typeof a === "number" && typeof b === "number") return a === b || Math.abs(a - b) <= 1e-12 * Math.max(Math.abs(a), Math.abs(b));
      if (Array.isArray(a)) return Array.isArray(b) && a.length === b.length && a.every((x, i) => close(x, b[i]));
      if (a && typeof a === "object") return b && typeof b === "object" && Object.keys(a).length === Object.keys(b).length && Object.keys(a).every((k) => close(a[k], b[k]));
      return a === b;
    };
    result.cli_windows_equal = close(offline.windows, report.windows);
    result.cli_windows_identical = JSON.stringify(offline.windows) === JSON.stringify(report.windows);
    result.report_html_bytes = fs.statSync(html).size;

    // 5. The dashboard (token typed into the page) and the HTML report, in Chromium.
    result.workerd_rss_mb = +(workerdRssKb(S.child.pid) / 1024).toFixed(1);
    if (screenshots) {
      const d = await dashboard(S, from, to, path.join(out, "dashboard.png"), { report: html });
      result.dashboard_charts = d.charts;
      result.dashboard_token_in_memory_only = d.token_in_memory_only;
      result.dashboard_csp = d.csp;
      result.report_charts = d.report_charts;
      result.page_errors = d.errors;
    }

    // 6. A new normal: December's channel mix is real, so the unchanged week becomes the default's drift
    //    baseline (recorded with who and when); judged again, the same journeys (the shuffled week) no
    //    longer drift while the site change still does, and the alerts already sent stay sent.
    const adopt = (body) => api.post("/v1/models/default/baseline", body, { auth: true, headers: { "x-leadscore-actor": "health scenario" }, timeout: 120_000 });
    const tooFew = await adopt({ from: FIRST - 8 * WEEK, to: FIRST - 7 * WEEK });
    const adopted = await adopt({ from: FIRST, to: FIRST + WEEK, reason: "December's channel mix is the new normal" });
    if (adopted.status !== 201) throw new Error(`health: adopt → HTTP ${adopted.status} ${adopted.text.slice(0, 300)}`);
    const again = await api.get(`/v1/monitor?from=${from}&to=${to}`, { auth: true, timeout: 120_000 });
    const judged = Object.fromEntries(again.json.windows.filter((w) => phaseOf(w.start)).map((w) => [phaseOf(w.start), {
      max_feature_psi: Math.max(...w.features.filter((f) => !f.calendar).map((f) => f.drift.psi)),
      score_psi: w.score.drift.psi,
      drift_alerts: w.alerts.filter((a) => a.type === "model.drift_detected").length,
      auc: w.accuracy.live.auc.value,
      card_auc: w.accuracy.baseline_auc,
    }]));
    const sentBefore = alerts().length;
    await scheduled();
    await sleep(3000);
    const models = await api.get("/v1/models", { auth: true });
    const reset = await api.request("DELETE", "/v1/models/default/baseline", { auth: true });
    const back = await api.get(`/v1/monitor?from=${from}&to=${to}`, { auth: true, timeout: 120_000 });
    const unchangedBack = back.json.windows.find((w) => phaseOf(w.start) === "unchanged");
    result.new_normal = {
      too_few: { status: tooFew.status, code: tooFew.json?.error?.code },
      adopted: adopted.json.adopted,
      by: models.json.history[0],
      windows: judged,
      alerts_sent_after: alerts().length - sentBefore,
      reset: { status: reset.status, changed: reset.json?.changed, unchanged_drift_alerts: unchangedBack.alerts.filter((a) => a.type === "model.drift_detected").length },
    };
  } finally {
    await S.stop();
    if (!process.env.HEALTH_KEEP_STATE) fs.rmSync(state, { recursive: true, force: true });
  }
  if (experiment) result.experiment = await runExperiment({ out, dec });
  result.seconds = +((Date.now() - t0) / 1000).toFixed(1);
  fs.writeFileSync(path.join(out, "health.json"), JSON.stringify(result, null, 1));
  return result;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const args = process.argv.slice(2);
  const out = args.includes("--out") ? path.resolve(args[args.indexOf("--out") + 1]) : path.join(ROOT, "target", "health");
  const bin = ["release", "debug"].map((p) => path.join(ROOT, "target", p, "leadscore")).filter((f) => fs.existsSync(f));
  const r = await runHealth({ out, leadscore: bin.sort((a, b) => fs.statSync(b).mtimeMs - fs.statSync(a).mtimeMs)[0] ?? "target/release/leadscore" });
  console.log(JSON.stringify(r, null, 1));
}
