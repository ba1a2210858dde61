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

test("a site change raises a signed drift alert naming what moved, shuffled outcomes a performance alert, once per window; CLI and worker agree", { timeout: 1_200_000 }, async () => {
  const bins = ["release", "debug"].map((p) => path.join(ROOT, "target", p, "leadscore")).filter((f) => fs.existsSync(f));
  assert.ok(bins.length, "no leadscore binary: cargo build --bin leadscore");
  const leadscore = bins.sort((a, b) => fs.statSync(b).mtimeMs - fs.statSync(a).mtimeMs)[0];
  const r = await runHealth({ leadscore, out: path.join(ROOT, "target", "health-ci"), log: () => {} });
  console.log(JSON.stringify({ ...r, windows: Object.fromEntries(Object.entries(r.windows).map(([k, w]) => [k, { ...w, features_psi: undefined }])) }));
  const w = r.windows;
  assert.deepEqual(Object.keys(w).sort(), ["shifted", "shuffled", "unchanged"]);
  for (const k of Object.keys(w)) assert.equal(w[k].decisions, r.visitors_per_phase, `${k}: one decision per visitor`);
  assert.equal(r.events, 3 * r.events_per_phase, "every imported event accepted");
  // The site change moves the page-category features, and only in its window.
  const moved = ["admin_pages", "product_pages", "product_seconds", "info_pages"];
  for (const f of moved) {
    assert.ok(w.unchanged.features_psi[f] < 0.1, `${f} unchanged: ${w.unchanged.features_psi[f]}`);
    assert.ok(w.shifted.features_psi[f] >= 0.25, `${f} shifted: ${w.shifted.features_psi[f]}`);
  }
  const drift = r.alerts.filter((a) => a.type === "model.drift_detected");
  const shifted = drift.find((a) => a.window === "shifted");
  assert.ok(shifted && shifted.level === "alert", JSON.stringify(r.alerts));
  const named = shifted.moved.filter((m) => m[2] >= 0.25).map((m) => m[0]);
  for (const f of [...moved, "ai_score"]) assert.ok(named.includes(f), `${f} not named: ${JSON.stringify(shifted.moved)}`);
  // Shuffled outcomes: the same journeys as `unchanged` (the same drift, to the bit), accuracy down.
  assert.deepEqual(w.shuffled.features_psi, w.unchanged.features_psi);
  assert.equal(w.shuffled.score_psi, w.unchanged.score_psi);
  const perf = r.alerts.filter((a) => a.type === "model.performance_degraded" && a.window === "shuffled");
  assert.equal(perf.length, 1, JSON.stringify(r.alerts));
  assert.ok(w.shuffled.auc < 0.6 && w.shuffled.auc < w.shuffled.card_auc - 0.05, `${w.shuffled.auc}`);
  assert.equal(w.shuffled.positives, r.purchases_per_phase);
  // Once per window, signed (the receiver verifies every one), and the offline twin agrees.
  assert.equal(r.alerts_after_second_run, r.alerts.length, "a second run sends nothing again");
  assert.equal(r.receiver_rejected, 0);
  assert.equal(r.cli_exit, 5, "leadscore monitor exits 5 on alerts");
  assert.ok(r.cli_windows_equal, "GET /v1/monitor and leadscore monitor report the same windows");
  assert.ok(r.dashboard_charts >= 4 && r.report_charts >= 4, `${r.dashboard_charts} / ${r.report_charts} charts`);
  assert.ok(r.dashboard_token_in_memory_only, "the token is kept in the page's memory only, in no storage");
  assert.match(r.dashboard_csp, /default-src 'none'; script-src 'self'; style-src 'sha256-/, "/monitor/ sends a strict CSP");
  assert.deepEqual(r.page_errors, []);
  // A new normal: the unchanged week adopted as the baseline (a window too small refused, nothing stored).
  const nn = r.new_normal;
  assert.deepEqual(nn.too_few, { status: 422, code: "insufficient_data" });
  assert.equal(nn.adopted.decisions, r.visitors_per_phase);
  assert.equal(nn.by.action, "adopt_baseline");
  assert.equal(nn.by.by, "health scenario");
  assert.equal(nn.by.reason, "December's channel mix is the new normal");
  assert.ok(nn.windows.unchanged.max_feature_psi < 1e-9 && nn.windows.shuffled.max_feature_psi < 1e-9, JSON.stringify(nn.windows));
  assert.equal(nn.windows.shuffled.drift_alerts, 0);
  assert.ok(nn.windows.shifted.max_feature_psi >= 0.25 && nn.windows.shifted.drift_alerts === 1, JSON.stringify(nn.windows.shifted));
  assert.equal(nn.windows.shuffled.card_auc, w.shuffled.card_auc, "the accuracy bar stays the card's");
  assert.equal(nn.alerts_sent_after, 0, "alerts already sent stay sent, none again");
  assert.deepEqual(nn.reset, { status: 200, changed: true, unchanged_drift_alerts: 1 });
  // The experiment (a second stack, 50/50 default vs candidate): arms pinned by the same hash the page
  // computes, both arms scored by their own bundle, conversion per arm, SRM only where visitors were lost.
  const x = r.experiment;
  assert.equal(x.arm_agreement.disagree, 0);
  assert.equal(x.arm_agreement.visitors, x.visitors.ab + x.visitors.srm, "every visitor's scores logged with its arm");
  const ab = x.experiments.find((e) => e.window === "ab");
  const srm = x.experiments.find((e) => e.window === "srm");
  assert.equal(ab.visitors, x.visitors.ab);
  assert.equal(ab.level, "ok", JSON.stringify(ab));
  assert.ok(ab.arms.every((a) => a.visitors > 0 && a.model && a.model.startsWith(a.arm)), JSON.stringify(ab.arms));
  assert.equal(ab.arms.reduce((n, a) => n + a.positives, 0) + srm.arms.reduce((n, a) => n + a.positives, 0), x.purchases);
  assert.equal(srm.level, "alert");
  assert.ok(srm.p_value < 0.001);
  assert.deepEqual(x.srm_alerts.map((a) => a.window), ["srm"], "one signed SRM alert, for the damaged week only");
  assert.equal(x.receiver_rejected, 0);
  // Chromium on the experiment's stack: the page scores each visitor with the worker's arm and bundle
  // and the same score (site tables from GET /v1/site, bundles from the assets).
  const b = x.browser;
  assert.ok(b.arms.default >= 3 && b.arms.candidate >= 3, JSON.stringify(b.arms));
  assert.equal(b.agree, b.visitors, JSON.stringify(b.rows.filter((r) => r.page_arm !== r.worker_arm || r.page_score !== r.worker_score)));
  assert.ok(b.max_probability_gap < 1e-12, `page vs worker probability: ${b.max_probability_gap}`);
  assert.deepEqual(b.errors, []);
  // With the shop's own site tables, unchanged December reads as the model's own holdout (its AUC).
  assert.ok(Math.abs(w.unchanged.auc - w.unchanged.card_auc) < 1e-9, `${w.unchanged.auc} vs ${w.unchanged.card_auc}`);
  for (const f of ["bounce_rate", "exit_rate", "page_value"]) assert.ok(w.unchanged.features_psi[f] < 0.1, `${f} unchanged: ${w.unchanged.features_psi[f]}`);
  assert.ok(w.unchanged.score_psi < 0.25, `score PSI unchanged: ${w.unchanged.score_psi}`);
  // Calendar features are reported (December has no special day) and never named in an alert.
  assert.ok(w.unchanged.features_psi.special_day >= 0.25, `special_day: ${w.unchanged.features_psi.special_day}`);
  for (const a of r.alerts) assert.ok(!a.moved.some((m) => ["special_day", "weekend"].includes(m[0])), JSON.stringify(a));
});
