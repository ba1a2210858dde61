// The model registry on the local stack (R2 under wrangler dev): upload a bundle, every bad upload refused
// with nothing stored, activate it (the next scores are its), roll back in one call, an experiment by
// version whose arm's bundle the page loads from the worker, and the history with who and when; in
// Chromium, page and worker agree on every visitor's arm and version after each change.
//   node --test --test-concurrency=1 tests/worker/registry.test.mjs
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { testStack, show, checkError, batch, journey, bundleUpload } from "./lib.mjs";
import { browserArms } from "./health.mjs";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
const RUN = crypto.randomBytes(3).toString("hex");
let S;

before(async () => {
  // Every isolate asks R2 for the registry's state on each use (production: once a minute).
  S = await testStack("registry", { REGISTRY_REFRESH_MS: "0", EMIT_DEBOUNCE_MS: "0" });
});
after(async () => {
  await S?.stop();
});

const read = (dir, f) => fs.readFileSync(path.join(ROOT, "models", dir, f));
const cardOf = (dir) => JSON.parse(read(dir, "card.json").toString("utf8"));
const put = (name, raw, headers = {}) => S.api.request("PUT", `/v1/models/${name}`, { raw, auth: true, headers: { "content-type": "application/json", ...headers } });
const as = (who) => ({ auth: true, headers: { "x-leadscore-actor": who } });

async function scoreOf(visitor) {
  const r = await S.api.events(batch(visitor, journey("v-warm", { visitor })));
  assert.equal(r.status, 200, show(r));
  return r.json.score;
}

test("bad uploads are refused with a clear 4xx and store nothing; a good one is stored once", async () => {
  const version = cardOf("candidate").model_version;
  const card = read("candidate", "card.json").toString("utf8");
  const onnx = read("candidate", "model.onnx");
  const golden = read("candidate", "golden.json").toString("utf8");
  const bad = [
    ["a truncated ONNX", bundleUpload("candidate", { onnx: onnx.subarray(0, onnx.length >> 1) }), 422, "invalid_bundle"],
    ["a sha256 mismatch", bundleUpload("candidate", { card: card.replace(/"sha256": "([0-9a-f]{2})/, '"sha256": "ff') }), 422, "invalid_bundle"],
    ["an unknown feature kind", bundleUpload("candidate", { card: card.replace('"kind": "page_views"', '"kind": "mind_reading"') }), 422, "invalid_bundle"],
    ["golden vectors that do not match", bundleUpload("candidate", { golden: golden.replace(/"lgb_prob":[0-9.e-]+/, '"lgb_prob":0.999') }), 422, "invalid_bundle"],
    ["not base64", `{"card":${card},"model":"%%%","golden":${golden}}`, 400, "invalid_bundle"],
    ["not a bundle document", `{"card":1}`, 400, "invalid_json"],
  ];
  for (const [what, raw, status, code] of bad) {
    const r = await put("candidate", raw);
    checkError(assert, r, status, code);
    assert.ok(r.json.error.message.length > 10, `${what}: ${show(r)}`);
  }
  // The URL names another bundle than the card.
  checkError(assert, await put("default", bundleUpload("candidate")), 400, "invalid_bundle");
  // Over the size limit (8 MiB): refused before it is read whole.
  checkError(assert, await put("candidate", "x".repeat(8 * 1024 * 1024 + 1)), 413, "body_too_large");
  // Nothing was stored by any of them.
  let list = await S.api.get("/v1/models", { auth: true });
  assert.equal(list.status, 200, show(list));
  assert.deepEqual(list.json.versions, [], show(list));
  // A bundle whose features the deployment's site tables lack: the B2B rules on the demo site's tables.
  const site = await S.api.put("/v1/site", JSON.stringify(cardOf("default").site), { auth: true });
  assert.equal(site.status, 200, show(site));
  const r = await put("b2b-rules", bundleUpload("b2b-rules"));
  checkError(assert, r, 422, "invalid_bundle");
  assert.match(r.json.error.message, /site tables/);
  assert.equal((await S.api.request("DELETE", "/v1/site", { auth: true })).status, 200);
  // The good one: 201, then the same bytes again are 200 and stored once.
  const ok = await put("candidate", bundleUpload("candidate"));
  assert.equal(ok.status, 201, show(ok));
  assert.deepEqual({ version: ok.json.version, created: ok.json.created, trees: ok.json.trees }, { version, created: true, trees: cardOf("candidate").model.n_trees });
  const again = await put("candidate", bundleUpload("candidate"));
  assert.equal(again.status, 200, show(again));
  assert.equal(again.json.created, false);
  list = await S.api.get("/v1/models", { auth: true });
  assert.deepEqual(list.json.versions.map((v) => v.version), [version]);
  assert.equal(list.json.active, "default");
  // Listing needs the token; reading a bundle does not (the page loads it), and a version is immutable.
  checkError(assert, await S.api.get("/v1/models"), 401, "unauthorized");
  const b = await S.api.get(`/v1/models/${version}`);
  assert.equal(b.status, 200, show(b));
  assert.match(b.headers.get("cache-control"), /immutable/);
  assert.equal(b.json.card.model_version, version);
  // As the page loads it: the card and the encoded forest (derived when the upload was accepted), the
  // same for the embedded default; the golden vectors and the ONNX stay out.
  for (const [id, want] of [[version, version], ["default", cardOf("default").model_version]]) {
    const s = await S.api.get(`/v1/models/${id}?form=served`);
    assert.equal(s.status, 200, show(s));
    assert.deepEqual(Object.keys(s.json).sort(), ["card", "forest"]);
    assert.equal(s.json.card.model_version, want);
    assert.equal(Buffer.from(s.json.forest, "base64").subarray(0, 8).toString(), "LSFOREST");
  }
  checkError(assert, await S.api.get(`/v1/models/${version}?form=onnx`), 400, "invalid_field");
  checkError(assert, await S.api.get("/v1/models/no-such-version?form=served"), 404, "not_found");
  checkError(assert, await S.api.get("/v1/models/no-such-version"), 404, "not_found");
  checkError(assert, await S.api.get("/v1/models/..%2Fconfig%2Fregistry"), 400, "invalid_field");
});

test("activate, score with it, roll back in one call; every change recorded with who and when", async () => {
  const version = cardOf("candidate").model_version;
  const def = cardOf("default").model_version;
  checkError(assert, await S.api.post("/v1/models/never-uploaded/activate", undefined, { auth: true }), 404, "not_found");
  const a = await S.api.post(`/v1/models/${version}/activate`, { reason: "first retrain" }, as(`ops-${RUN}`));
  assert.equal(a.status, 200, show(a));
  assert.equal(a.json.active, version);
  assert.equal(a.json.can_roll_back_to, "default");
  // The next visitor is scored by it, and the page is told to load it (by version, from the worker).
  const s = await scoreOf(`reg-a-${RUN}`);
  assert.equal(s.model_version, version);
  const cfg = await S.api.get(`/v1/config?visitor_id=reg-a-${RUN}`);
  assert.equal(cfg.json.active, version);
  assert.equal(cfg.json.bundle, `/v1/models/${version}`);
  assert.equal((await S.api.get("/v1/model")).json.model_version, version);
  // Roll back: the default again, everywhere; a second rollback has nothing to go back to.
  const rb = await S.api.post("/v1/models/rollback", { reason: "performance degraded" }, as(`ops-${RUN}`));
  assert.equal(rb.status, 200, show(rb));
  assert.equal(rb.json.active, "default");
  assert.equal((await scoreOf(`reg-b-${RUN}`)).model_version, def);
  assert.equal((await S.api.get(`/v1/config?visitor_id=reg-b-${RUN}`)).json.bundle, null);
  checkError(assert, await S.api.post("/v1/models/rollback", undefined, { auth: true }), 409, "conflict");
  const h = (await S.api.get("/v1/models", { auth: true })).json.history;
  assert.deepEqual(h.slice(0, 2).map((c) => [c.action, c.active, c.previous, c.by, c.reason]), [
    ["rollback", null, version, `ops-${RUN}`, "performance degraded"],
    ["activate", version, null, `ops-${RUN}`, "first retrain"],
  ]);
  assert.ok(h.every((c) => Number.isInteger(c.at) && c.at > 1.7e12));
  // GET /v1/config shows the latest changes too (the dashboard reads it).
  assert.equal((await S.api.get("/v1/config")).json.registry.changes[0].action, "rollback");
});

test("an experiment by version: new visitors get the arm, the page loads its bundle from the worker", async () => {
  const version = cardOf("candidate").model_version;
  checkError(assert, await S.api.put("/v1/experiment", JSON.stringify({ key: `x-${RUN}`, arms: [{ model: "default", weight: 1 }, { model: "nope", weight: 1 }] }), { auth: true }), 400, "invalid_config");
  const e = await S.api.put("/v1/experiment", JSON.stringify({ key: `x-${RUN}`, arms: [{ model: "default", weight: 0 }, { model: version, weight: 1 }] }), as(`ops-${RUN}`));
  assert.equal(e.status, 200, show(e));
  const v = `reg-c-${RUN}`;
  const s = await scoreOf(v);
  assert.deepEqual({ arm: s.arm, version: s.model_version }, { arm: version, version });
  const cfg = await S.api.get(`/v1/config?visitor_id=${v}`);
  assert.deepEqual({ arm: cfg.json.arm, bundle: cfg.json.bundle }, { arm: version, bundle: `/v1/models/${version}` });
  const b = await S.api.get(cfg.json.bundle);
  assert.equal(b.status, 200, show(b));
  assert.equal(Buffer.from(b.json.model, "base64").length, read("candidate", "model.onnx").length);
  // Ending it returns everyone to the active version (the default).
  const d = await S.api.request("DELETE", "/v1/experiment", { auth: true });
  assert.equal(d.status, 200, show(d));
  const after = await scoreOf(v);
  assert.equal(after.arm ?? null, null);
  assert.equal(after.model_version, cardOf("default").model_version);
});

test("page and worker agree on every visitor's arm and version after each change (Chromium)", { timeout: 600_000 }, async () => {
  const version = cardOf("candidate").model_version;
  const def = cardOf("default").model_version;
  const agree = (b, models) => {
    assert.deepEqual(b.errors, []);
    assert.equal(b.agree, b.visitors, JSON.stringify(b.rows, null, 1));
    for (const r of b.rows) assert.ok(models.includes(r.page_model), `${r.page_model} not among ${models}`);
    return b;
  };
  // Activated: every new visitor, on the page and in the worker, is scored by the version.
  assert.equal((await S.api.post(`/v1/models/${version}/activate`, { reason: "chromium" }, as(`ops-${RUN}`))).status, 200);
  agree(await browserArms(S, S.api, { min: 2, max: 2, experiment: null }), [version]);
  // An experiment by version: each visitor's arm is the worker's pin and GrowthBook's hash, on both sides.
  const exp = { key: `chromium-${RUN}`, arms: [{ model: "default", weight: 0.5 }, { model: version, weight: 0.5 }] };
  assert.equal((await S.api.put("/v1/experiment", JSON.stringify(exp), as(`ops-${RUN}`))).status, 200);
  const b = agree(await browserArms(S, S.api, { min: 2, max: 12, experiment: exp }), [def, version]);
  assert.ok(b.arms.default >= 2 && b.arms[version] >= 2, JSON.stringify(b.arms));
  // Ended and rolled back: the embedded default again, on both sides.
  assert.equal((await S.api.request("DELETE", "/v1/experiment", { auth: true })).status, 200);
  assert.equal((await S.api.post("/v1/models/rollback", { reason: "chromium" }, as(`ops-${RUN}`))).status, 200);
  agree(await browserArms(S, S.api, { min: 2, max: 2, experiment: null }), [def]);
});

test("site tables the active registry version refuses are refused, nothing stored; it keeps scoring", async () => {
  // The B2B scorecard, active: the demo site's tables lack its features.
  const up = await put("b2b-rules", bundleUpload("b2b-rules"));
  assert.ok([200, 201].includes(up.status), show(up));
  const version = up.json.version;
  assert.equal((await S.api.post(`/v1/models/${version}/activate`, { reason: "site check" }, as(`ops-${RUN}`))).status, 200);
  const r = await S.api.put("/v1/site", JSON.stringify(cardOf("default").site), { auth: true });
  checkError(assert, r, 400, "invalid_config");
  assert.match(r.json.error.message, new RegExp(`bundle ${version.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")} refuses these tables`));
  checkError(assert, await S.api.get("/v1/site"), 404, "not_found"); // nothing stored
  assert.equal((await scoreOf(`reg-site-${RUN}`)).model_version, version);
  assert.equal((await S.api.post("/v1/models/rollback", { reason: "site check" }, as(`ops-${RUN}`))).status, 200);
});
