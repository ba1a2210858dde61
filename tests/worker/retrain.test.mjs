// Day zero to the first model, through the registry, with no deploy: the starter B2B scorecard
// (models/b2b-rules) is uploaded and activated, a slice of the B2B world arrives by lead id as history
// with its outcomes, the cron run sees the new labelled outcomes and sends a signed
// `model.retrain_requested`, and the job runner (tests/worker/runner.mjs, what `make run` starts) answers
// it with `leadscore retrain`: export the logs, build the rows with the active card's template, train,
// check and gate the candidate against the rules, upload it and start an experiment arm. Run again with
// nothing new, the job changes nothing it already did. Then the live gate: new leads arrive and are split
// between the arms, their outcomes come in, and the cron run (AUTO_PROMOTE) promotes the candidate or
// ends the experiment on the arms' realized accuracy, with a signed model.promoted / model.rejected.
// Then the two drills: a retrain on shuffled labels is stopped by the offline gate, and one forced
// through gets its arm, more leads arrive, and the live gate ends it.
//   node --test --test-concurrency=1 tests/worker/retrain.test.mjs      (LEADS=n for another slice)
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { bundleUpload, testStack, show, sleep } from "./lib.mjs";
import { ROOT } from "./receiver.mjs";
import { pick, sendHistory, world } from "./b2b.mjs";
import { retrainChild, startRunner, RETRAIN_REQUESTED } from "./runner.mjs";

const LEADS = Number(process.env.LEADS || 1500);
// The live gate's slice: new leads split 0.8 / 0.2 between the arms (its minimums lowered to fit).
const LIVE_LEADS = Number(process.env.LIVE_LEADS || 1000);
// One monitor window holds the world's four months (the first experiment's); the drill's leads come two
// years on, in the next.
const LIVE = { MONITOR_WINDOW: "730d", AUTO_PROMOTE: "true", PROMOTE_MIN_ROWS: "150", PROMOTE_MIN_POSITIVES: "20" };
const LEADSCORE = path.join(ROOT, "target", "debug", "leadscore");
let S;
// What the first test leaves to the drills: the leads already sent, the world.
let used;
let W;

before(async () => {
  S = await testStack("retrain", { REGISTRY_REFRESH_MS: "0", RETRAIN_AFTER_OUTCOMES: "100", ...LIVE });
});
after(async () => {
  await S?.stop();
});

/** The monitor's arms (decisions and positives over every window) once D1 holds at least this many
 * arm decisions and positives. */
async function armsOnceLabelled(decisions, positives, range = "from=2021-01-01&to=2026-01-01") {
  for (let i = 0; ; i++) {
    const m = await S.api.get(`/v1/monitor?${range}`, { auth: true, timeout: 120_000 });
    assert.equal(m.status, 200, show(m));
    const arms = {};
    for (const w of m.json.windows.filter((w) => w.arm)) {
      const a = (arms[w.arm] ??= { decisions: 0, positives: 0, model: w.model_version });
      a.decisions += w.decisions;
      a.positives += w.accuracy.live.auc.positives;
    }
    const total = Object.values(arms).reduce((x, a) => [x[0] + a.decisions, x[1] + a.positives], [0, 0]);
    if (total[0] >= decisions && total[1] >= positives) return arms;
    if (i > 120) throw new Error(`D1 holds ${JSON.stringify(arms)}, not ${decisions} decisions and ${positives} positives, after 2 minutes`);
    await sleep(1000);
  }
}

const cron = () => fetch(new URL("/__scheduled?cron=*/15+*+*+*+*", S.base), { signal: AbortSignal.timeout(120_000) });
const decisions = () => S.receiver.events().events.filter((e) => e.type === "model.promoted" || e.type === "model.rejected");

const TWO_YEARS = 730 * 86_400_000;

const RETRAIN_ARGS = ["--since", "2023-12-01", "--min-rows", "500", "--min-positives", "60"];

/** `leadscore retrain` as a child process, against the stack. */
async function retrain(work, extra = []) {
  const { code, report, stderr } = await retrainChild({ leadscore: LEADSCORE, work, args: [...RETRAIN_ARGS, ...extra], base: S.base, token: S.devVars.API_TOKEN });
  return { status: code, report, stderr };
}

test("the rules score day zero; retrain trains on the logs, beats them at the gate, uploads and starts an arm", { timeout: 900_000 }, async (t) => {
  if (!fs.existsSync(LEADSCORE)) throw new Error(`${LEADSCORE} missing: cargo build --features worker,retrain --bin leadscore`);
  // Day zero: the scorecard is the active model.
  const upload = bundleUpload("b2b-rules");
  const up = await S.api.request("PUT", "/v1/models/b2b-rules", { raw: upload, auth: true, headers: { "content-type": "application/json" } });
  assert.equal(up.status, 201, show(up));
  const rules = up.json.version;
  assert.equal((await S.api.post(`/v1/models/${rules}/activate`, { reason: "day zero" }, { auth: true })).status, 200);

  // The CRM's history of a slice of the world, scored by the rules as it arrives.
  W = world();
  const { byLead, outcomes } = W;
  const chosen = pick(byLead, LEADS);
  const { counts, outcomes: sent } = await sendHistory(S.api, byLead, chosen, outcomes);
  assert.equal(counts.rejected, 0);
  const lead = [...chosen][0];
  const s = await S.api.get(`/v1/score/${encodeURIComponent(lead)}?kind=lead`, { auth: true });
  assert.equal(s.status, 200, show(s));
  assert.equal(s.json.score.model_version, rules, "the rules scored the history");
  // The logs queue writes to R2 in batches: wait until the outcomes are all there.
  for (let i = 0; ; i++) {
    const e = await S.api.get("/v1/export/outcomes?from=2023-12-01&to=2024-12-01", { auth: true, timeout: 120_000 });
    if (e.text.split("\n").filter(Boolean).length >= sent.length) break;
    if (i > 120) throw new Error("the outcomes did not reach the logs in 2 minutes");
    await sleep(1000);
  }

  // The cron run counts the new labelled outcomes and asks for a retrain; the runner answers.
  const work = fs.mkdtempSync(path.join(ROOT, "target", "tmp", "retrain-"));
  const runner = startRunner({ events: () => S.receiver.events().events, base: S.base, token: S.devVars.API_TOKEN, leadscore: LEADSCORE, work, args: RETRAIN_ARGS, log: (l) => t.diagnostic(l) });
  assert.equal((await cron()).status, 200);
  const asked = await S.receiver.waitFor((st) => st.events.find((e) => e.type === RETRAIN_REQUESTED), { timeout: 60_000, what: "model.retrain_requested" });
  assert.equal(asked.data.reason, "outcomes");
  assert.equal(asked.data.active, rules);
  assert.ok(asked.data.new_labelled_outcomes >= 100, JSON.stringify(asked.data));
  for (let i = 0; runner.runs().length === 0; i++) {
    if (i > 600) throw new Error("the runner did not finish a retrain in 10 minutes");
    await sleep(1000);
  }
  await runner.stop();
  const done = runner.runs()[0];
  const first = { status: done.code, report: done.report, stderr: done.error };
  assert.ok(first.report, `retrain printed no report (exit ${first.status}):\n${first.stderr}`);
  t.diagnostic(`retrain: ${JSON.stringify({ verdict: first.report.verdict, gate: first.report.gate, exported: first.report.exported })}`);
  assert.equal(first.report.active, rules);
  assert.ok(first.report.exported.events >= counts.accepted, JSON.stringify(first.report.exported));
  // Exit code and verdict agree, as `leadscore compare`'s.
  const code = { promote: 0, keep_active: 3, insufficient_data: 4 }[first.report.verdict];
  assert.equal(first.status, code, first.stderr);
  assert.equal(first.report.verdict, "promote", `on ${LEADS} leads the first model beats the rules: ${JSON.stringify(first.report.gate)}`);
  const candidate = first.report.candidate;
  assert.equal(first.report.uploaded.version, candidate);
  assert.equal(first.report.uploaded.created, true);
  const reg = await S.api.get("/v1/models", { auth: true });
  assert.ok(reg.json.versions.some((v) => v.version === candidate), show(reg));
  assert.deepEqual(reg.json.experiment.arms.map((a) => [a.model, a.weight]), [[rules, 0.8], [candidate, 0.2]]);
  assert.equal(reg.json.active, rules, "the candidate only gets an arm: promotion is the live gate's");
  assert.equal(reg.json.history[0].by, "leadscore retrain");
  // While the experiment runs, the cron asks for nothing more (only an alert would).
  assert.equal((await cron()).status, 200);
  await sleep(3000);
  assert.equal(S.receiver.events().events.filter((e) => e.type === RETRAIN_REQUESTED).length, 1);

  // Again, with nothing new: the same candidate, stored once.
  const second = await retrain(work);
  assert.equal(second.status, 0, second.stderr);
  assert.equal(second.report.candidate, candidate);
  assert.equal(second.report.uploaded.created, false);
  assert.equal(second.report.exported.events, first.report.exported.events, "the whole range again");
  assert.equal(second.report.exported.new_events, 0);
  fs.rmSync(work, { recursive: true, force: true });

  // The live gate: new leads, each pinned to an arm on first sight, scored by its arm's model.
  const rest = new Map([...byLead].filter(([lead]) => !chosen.has(lead)));
  const fresh = pick(rest, LIVE_LEADS);
  used = new Set([...chosen, ...fresh]);
  const live = await sendHistory(S.api, byLead, fresh, outcomes);
  assert.equal(live.counts.rejected, 0);
  const positives = new Set(live.outcomes.filter((o) => o.type === "customer").map((o) => o.lead_id)).size;
  const arms = await armsOnceLabelled(fresh.size, positives);
  t.diagnostic(`arms: ${JSON.stringify(arms)}`);
  assert.deepEqual(Object.keys(arms).sort(), [rules, candidate].sort(), "both arms scored, each by its own model");
  assert.ok(arms[candidate].decisions >= 150 && arms[candidate].positives >= 20, JSON.stringify(arms));
  assert.equal((await cron()).status, 200);
  const decided = await S.receiver.waitFor((st) => st.events.find((e) => e.type === "model.promoted" || e.type === "model.rejected"), { timeout: 60_000, what: "the live gate's decision" });
  t.diagnostic(`live gate: ${decided.type} ${JSON.stringify(decided.data.decision)}`);
  // How sure: the AUC difference's interval (DeLong), around its value.
  const diff = decided.data.decision.auc_difference;
  assert.ok(diff && diff.se > 0 && diff.low < diff.value && diff.value < diff.high, JSON.stringify(decided.data.decision));
  assert.equal(decided.data.candidate, candidate);
  assert.equal(decided.data.active_before, rules);
  for (const a of ["active", "candidate"]) assert.ok(decided.data.arms[a].auc.rows >= 150, JSON.stringify(decided.data.arms[a].auc));
  const after = (await S.api.get("/v1/models", { auth: true })).json;
  assert.equal(after.experiment, null, "the experiment ended either way");
  assert.equal(after.active, decided.type === "model.promoted" ? candidate : rules);
  assert.equal(after.history[0].by, "live gate");
  // The next run decides nothing again.
  assert.equal((await cron()).status, 200);
  await sleep(3000);
  assert.equal(decisions().length, 1);
});

test("the drills: shuffled labels are stopped by the offline gate; forced through, the live gate ends them", { timeout: 900_000 }, async (t) => {
  assert.ok(used, "runs after the first test");
  const before = (await S.api.get("/v1/models", { auth: true })).json;
  const active = before.active;
  const work = fs.mkdtempSync(path.join(ROOT, "target", "tmp", "drill-"));

  const stopped = await retrain(work, ["--shuffle-labels", "7"]);
  assert.ok(stopped.report, `retrain printed no report (exit ${stopped.status}):\n${stopped.stderr}`);
  t.diagnostic(`shuffled: ${JSON.stringify({ verdict: stopped.report.verdict, gate: stopped.report.gate })}`);
  assert.equal(stopped.report.shuffled_labels, 7);
  assert.equal(stopped.report.verdict, "keep_active", JSON.stringify(stopped.report.gate));
  assert.equal(stopped.status, 3, stopped.stderr);
  assert.equal(stopped.report.uploaded, undefined, "nothing uploaded");
  const unchanged = (await S.api.get("/v1/models", { auth: true })).json;
  assert.deepEqual([unchanged.active, unchanged.experiment, unchanged.versions.length], [active, null, before.versions.length]);

  const forced = await retrain(work, ["--shuffle-labels", "7", "--force"]);
  assert.ok(forced.report, `retrain printed no report (exit ${forced.status}):\n${forced.stderr}`);
  assert.equal(forced.report.forced, true, JSON.stringify(forced.report));
  const drill = forced.report.candidate;
  assert.equal(forced.report.uploaded.version, drill);
  const running = (await S.api.get("/v1/models", { auth: true })).json;
  assert.deepEqual(running.experiment.arms.map((a) => [a.model, a.weight]), [[active, 0.8], [drill, 0.2]]);
  fs.rmSync(work, { recursive: true, force: true });

  // More new leads, split between the active model and the drill's, two years on: in the next
  // monitor window (730 days), as a later experiment's decisions are (the live gate judges the
  // windows an experiment's arms scored in, each once).
  const fresh = pick(new Map([...W.byLead].filter(([lead]) => !used.has(lead))), LIVE_LEADS);
  const later = (ts) => ts + TWO_YEARS;
  const byLead = new Map([...fresh].map((lead) => [lead, W.byLead.get(lead).map((e) => ({ ...e, ts: later(e.ts) }))]));
  const outcomes = W.outcomes.filter((o) => fresh.has(o.lead_id)).map((o) => ({ ...o, ts: later(o.ts) }));
  const sum = (arms) => Object.values(arms).reduce((x, a) => [x[0] + a.decisions, x[1] + a.positives], [0, 0]);
  const range = "from=2021-01-01&to=2028-01-01&as_of=2028-01-20";
  const [had, hadPositives] = sum(await armsOnceLabelled(0, 0, range));
  const live = await sendHistory(S.api, byLead, fresh, outcomes);
  assert.equal(live.counts.rejected, 0);
  const positives = new Set(live.outcomes.filter((o) => o.type === "customer").map((o) => o.lead_id)).size;
  const arms = await armsOnceLabelled(had + fresh.size, hadPositives + positives, range);
  t.diagnostic(`arms: ${JSON.stringify(arms)}`);
  assert.ok(arms[drill]?.decisions >= 150 && arms[drill].positives >= 20, JSON.stringify(arms));
  // As of when that window has closed and its outcomes are in.
  const asOf = Date.parse("2028-01-20");
  const judged = await fetch(new URL(`/cdn-cgi/local/scheduled?cron=*/15+*+*+*+*&time=${asOf}`, S.base), { signal: AbortSignal.timeout(120_000) });
  assert.equal(judged.status, 200);
  const decided = await S.receiver.waitFor((st) => st.events.filter((e) => e.type === "model.promoted" || e.type === "model.rejected")[1], { timeout: 60_000, what: "the live gate's decision on the drill" });
  t.diagnostic(`live gate: ${decided.type} ${JSON.stringify(decided.data.decision)}`);
  assert.equal(decided.type, "model.rejected", JSON.stringify(decided.data));
  assert.equal(decided.data.candidate, drill);
  const after = (await S.api.get("/v1/models", { auth: true })).json;
  assert.deepEqual([after.active, after.experiment], [active, null], "the active model kept, the experiment ended");
});
