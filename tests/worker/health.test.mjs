// The model-health scenario (tests/worker/health.mjs; `make health-test` runs it alone and keeps its
// artefacts in target/health): December's journeys in three weekly windows — unchanged, after a site
// change, with shuffled outcomes — through import, the logs consumer's D1 aggregates and the cron run.
// The minimum samples (1,000 decisions, 100 positives) are the defaults, so it cannot be made smaller:
// December has 1,727 visitors and 216 purchases.
//   node --test --test-concurrency=1 tests/worker/health.test.mjs
import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { ROOT } from "./receiver.mjs";
import { runHealth } from "./health.mjs";

test("drift and degraded accuracy raise one signed alert per window; unchanged traffic none; CLI and worker agree", { timeout: 1_200_000 }, async () => {
  const bins = ["release", "debug"].map((p) => path.join(ROOT, "target", p, "leadscore")).filter((f) => fs.existsSync(f));
  assert.ok(bins.length, "no leadscore binary: cargo build --bin leadscore");
  const leadscore = bins.sort((a, b) => fs.statSync(b).mtimeMs - fs.statSync(a).mtimeMs)[0];
  const r = await runHealth({ leadscore, out: path.join(ROOT, "target", "health-ci"), log: () => {} });
  console.log(JSON.stringify({ ...r, windows: Object.fromEntries(Object.entries(r.windows).map(([k, w]) => [k, { ...w, features_psi: undefined }])) }));
  const w = r.windows;
  assert.deepEqual(Object.keys(w).sort(), ["shifted", "shuffled", "unchanged"]);
  for (const k of Object.keys(w)) assert.ok(w[k].decisions >= r.visitors_per_phase, `${k}: ${w[k].decisions} decisions`);
  // Unchanged: below the warning line everywhere, accuracy as the card's (December is its holdout).
  assert.ok(w.unchanged.score_psi < 0.1 && w.unchanged.max_feature_psi < 0.1, JSON.stringify(w.unchanged));
  assert.deepEqual(w.unchanged.alerts, []);
  assert.equal(w.unchanged.accuracy, "ok");
  assert.ok(Math.abs(w.unchanged.auc - w.unchanged.card_auc) < 0.01, `${w.unchanged.auc} vs ${w.unchanged.card_auc}`);
  // Shifted: the page features and the score.
  const drift = r.alerts.filter((a) => a.type === "model.drift_detected");
  assert.deepEqual(drift.map((a) => a.window), ["shifted"], JSON.stringify(r.alerts));
  const named = drift[0].moved.filter((m) => m[2] >= 0.25).map((m) => m[0]);
  for (const f of ["ai_score", "page_value", "product_pages"]) assert.ok(named.includes(f), `${f} not named: ${JSON.stringify(drift[0].moved)}`);
  // Shuffled outcomes: accuracy, not drift.
  const perf = r.alerts.filter((a) => a.type === "model.performance_degraded");
  assert.deepEqual(perf.map((a) => a.window), ["shuffled"], JSON.stringify(r.alerts));
  assert.ok(w.shuffled.auc < w.shuffled.card_auc - 0.05);
  assert.ok(w.shuffled.score_psi < 0.1, "same journeys: no drift");
  // Once per window, signed (the receiver verifies every one), and the offline twin agrees.
  assert.equal(r.alerts_after_second_run, r.alerts.length, "a second run sends nothing again");
  assert.equal(r.receiver_rejected, 0);
  assert.equal(r.cli_exit, 5, "leadscore monitor exits 5 on alerts");
  assert.ok(r.cli_windows_equal, "GET /v1/monitor and leadscore monitor report the same windows");
  assert.ok(r.dashboard_charts >= 4 && r.report_charts >= 4, `${r.dashboard_charts} / ${r.report_charts} charts`);
  assert.ok(r.dashboard_token_in_storage, "the token is kept in sessionStorage only");
  assert.deepEqual(r.page_errors, []);
});
