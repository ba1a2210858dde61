// Day zero to the first model, through the registry, with no deploy: the starter B2B scorecard
// (models/b2b-rules) is uploaded and activated, a slice of the B2B world arrives by lead id as history
// with its outcomes, and `leadscore retrain` (the job a scheduler runs) exports the logs, builds the rows
// with the active card's template, trains, checks and gates the candidate against the rules, uploads it
// and starts an experiment arm. Run again with nothing new, it changes nothing it already did.
//   node --test --test-concurrency=1 tests/worker/retrain.test.mjs      (LEADS=n for another slice)
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { testStack, show, sleep } from "./lib.mjs";
import { ROOT } from "./receiver.mjs";
import { pick, sendHistory, world } from "./b2b.mjs";

const LEADS = Number(process.env.LEADS || 1500);
const LEADSCORE = path.join(ROOT, "target", "debug", "leadscore");
let S;

before(async () => {
  S = await testStack("retrain", { REGISTRY_REFRESH_MS: "0" });
});
after(async () => {
  await S?.stop();
});

const read = (f) => fs.readFileSync(path.join(ROOT, "models", "b2b-rules", f));

function retrain(work) {
  const r = spawnSync(LEADSCORE, ["retrain", "--work", work, "--since", "2023-12-01", "--min-rows", "500", "--min-positives", "60"], {
    cwd: ROOT,
    encoding: "utf8",
    maxBuffer: 1 << 28,
    env: { ...process.env, LEADSCORE_URL: S.base, LEADSCORE_TOKEN: S.devVars.API_TOKEN },
  });
  let report = null;
  try {
    report = JSON.parse(r.stdout);
  } catch {
    /* reported below */
  }
  return { status: r.status, report, stderr: r.stderr };
}

test("the rules score day zero; retrain trains on the logs, beats them at the gate, uploads and starts an arm", { timeout: 900_000 }, async (t) => {
  if (!fs.existsSync(LEADSCORE)) throw new Error(`${LEADSCORE} missing: cargo build --features worker,retrain --bin leadscore`);
  // Day zero: the scorecard is the active model.
  const upload = `{"card":${read("card.json")},"model":"${read("model.onnx").toString("base64")}","golden":${read("golden.json")}}`;
  const up = await S.api.request("PUT", "/v1/models/b2b-rules", { raw: upload, auth: true, headers: { "content-type": "application/json" } });
  assert.equal(up.status, 201, show(up));
  const rules = up.json.version;
  assert.equal((await S.api.post(`/v1/models/${rules}/activate`, { reason: "day zero" }, { auth: true })).status, 200);

  // The CRM's history of a slice of the world, scored by the rules as it arrives.
  const { byLead, outcomes } = world();
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

  const work = fs.mkdtempSync(path.join(ROOT, "target", "tmp", "retrain-"));
  const first = retrain(work);
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

  // Again, with nothing new: the same candidate, stored once.
  const second = retrain(work);
  assert.equal(second.status, 0, second.stderr);
  assert.equal(second.report.candidate, candidate);
  assert.equal(second.report.uploaded.created, false);
  assert.equal(second.report.exported.events, 0);
  fs.rmSync(work, { recursive: true, force: true });
});
