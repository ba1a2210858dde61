// End-to-end tests of the worker's HTTP API against `wrangler dev` (workerd) on loopback.
//   node --test --test-concurrency=1 tests/worker/api.test.mjs
// One stack for the file (the first start builds the worker: minutes).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import crypto from "node:crypto";
import { testStack, journey, pathJourney, syntheticEvents, batch, checkScore, checkError, card, show, signLead, SITE_KEY, HOT_THEN_DROP } from "./lib.mjs";

const RUN = crypto.randomBytes(3).toString("hex");
const vid = (name) => `v-${RUN}-${name}`;
const CARD = card();
const FEATURES = CARD.features.map((f) => f.name);
const RATE = 300; // RATE_LIMIT_PER_MIN: events per visitor per minute (the worker counts events, not requests)
let S; // the stack
let api;

before(async () => {
  S = await testStack("api", { EMIT_DEBOUNCE_MS: "0", RATE_LIMIT_PER_MIN: String(RATE) });
  api = S.api;
});
after(async () => {
  await S?.stop();
});

/** A request that must work after an error: the worker keeps serving. */
async function stillServing(tag) {
  const v = vid(`alive-${tag}`);
  const r = await api.events(batch(v, syntheticEvents(v, 3)));
  assert.equal(r.status, 200, `good request after ${tag}: ${show(r)}`);
  assert.equal(r.json.accepted, 3, `after ${tag}: ${show(r)}`);
}

test("GET /healthz and GET /v1/model describe the default model", async () => {
  const h = await api.get("/healthz");
  assert.equal(h.status, 200, show(h));
  assert.equal(h.json.ok, true);
  assert.equal(h.json.model_version, CARD.model_version);
  const m = await api.get("/v1/model");
  assert.equal(m.status, 200, show(m));
  assert.equal(m.json.model_version, CARD.model_version);
  assert.equal(m.json.n_trees, CARD.model.n_trees);
  assert.deepEqual(m.json.features, FEATURES);
  assert.equal(m.json.tiers.hot, CARD.tiers.hot);
  assert.equal(m.json.tiers.warm, CARD.tiers.warm);
  assert.ok(m.json.calibration && typeof m.json.calibration === "object", show(m));
  assert.ok(m.json.metrics && typeof m.json.metrics === "object", show(m));
});

test("a hot journey is scored; stateful and stateless scores agree; the score is stored", async () => {
  const now = Date.now();
  const v = vid("hot");
  // The journey's identify is signed by the site's backend (verified), so the lead id finds the visitor.
  const evs = journey("v-hot", { visitor: v, lead: `${v}@acme.example`, now }).map((e) => (e.lead_id ? { ...e, lead_signature: signLead(S.devVars.IDENTITY_SECRET, e.lead_id) } : e));
  const r = await api.events(batch(v, evs));
  assert.equal(r.status, 200, show(r));
  assert.equal(r.json.accepted, evs.length, show(r));
  assert.equal(r.json.duplicates, 0);
  assert.equal(r.json.stale, 0);
  assert.deepEqual(r.json.rejected, []);
  const s = checkScore(assert, r.json.score, { visitor: v, lead: `${v}@acme.example`, features: FEATURES, tiers: CARD.tiers });
  assert.equal(s.tier, "hot", show(r));
  assert.equal(s.model_version, CARD.model_version);

  // The same events, stateless (bearer), give the same score.
  const sv = vid("hot-stateless");
  const evs2 = journey("v-hot", { visitor: sv, lead: `${v}@acme.example`, now });
  const st = await api.post("/v1/score", { events: evs2 }, { auth: true });
  assert.equal(st.status, 200, show(st));
  checkScore(assert, st.json.score, { visitor: sv, features: FEATURES, tiers: CARD.tiers });
  for (const k of ["ai_score", "tier", "probability", "raw_probability", "score_confidence"]) {
    assert.equal(st.json.score[k], s[k], `stateless ${k} vs /v1/events`);
  }
  assert.deepEqual(st.json.score.key_factors.map((f) => f.feature), s.key_factors.map((f) => f.feature));
  // ... and is not stored.
  const none = await api.get(`/v1/score/${encodeURIComponent(sv)}`, { auth: true });
  checkError(assert, none, 404, "not_found");

  // GET /v1/score by visitor and by lead id.
  for (const id of [v, `${v}@acme.example`]) {
    const g = await api.get(`/v1/score/${encodeURIComponent(id)}`, { auth: true });
    assert.equal(g.status, 200, `GET /v1/score/${id}: ${show(g)}`);
    assert.equal(g.json.score.visitor_id, v);
    assert.equal(g.json.score.lead_id, `${v}@acme.example`);
    assert.equal(g.json.score.ai_score, s.ai_score);
    assert.equal(g.json.score.probability, s.probability);
  }
  checkError(assert, await api.get(`/v1/score/${encodeURIComponent(v)}`), 401, "unauthorized");
  checkError(assert, await api.get(`/v1/score/${encodeURIComponent(v)}`, { auth: "wrong-token" }), 401, "unauthorized");
  checkError(assert, await api.get(`/v1/score/${encodeURIComponent(vid("nobody"))}`, { auth: true }), 404, "not_found");
});

test("state persists across batches: two batches score like one", async () => {
  const now = Date.now();
  const one = vid("one-batch");
  const two = vid("two-batches");
  const a = journey("v-hot", { visitor: one, lead: "same@acme.example", now });
  const b = journey("v-hot", { visitor: two, lead: "same2@acme.example", now });
  const r1 = await api.events(batch(one, a));
  assert.equal(r1.status, 200, show(r1));
  const r2a = await api.events(batch(two, b.slice(0, 6)));
  assert.equal(r2a.status, 200, show(r2a));
  const r2b = await api.events(batch(two, b.slice(6)));
  assert.equal(r2b.status, 200, show(r2b));
  assert.equal(r2a.json.accepted + r2b.json.accepted, b.length);
  for (const k of ["ai_score", "tier", "probability", "score_confidence"]) {
    assert.equal(r2b.json.score[k], r1.json.score[k], `${k}: two batches vs one`);
  }
});

test("a replayed batch changes nothing", async () => {
  const v = vid("replay");
  const evs = journey("v-hot", { visitor: v });
  const r1 = await api.events(batch(v, evs));
  assert.equal(r1.status, 200, show(r1));
  const r2 = await api.events(batch(v, evs));
  assert.equal(r2.status, 200, show(r2));
  assert.equal(r2.json.accepted, 0, show(r2));
  assert.equal(r2.json.duplicates, evs.length, show(r2));
  for (const k of ["ai_score", "tier", "probability", "raw_probability", "score_confidence"]) {
    assert.equal(r2.json.score[k], r1.json.score[k], `replayed ${k}`);
  }
  // Part of it again, interleaved with one new event: only the new one counts.
  const extra = { id: `${v}-extra`, type: "scroll", ts: evs[evs.length - 1].ts + 10, visitor_id: v, props: { depth: 90 } };
  const r3 = await api.events(batch(v, [evs[3], extra, evs[7]]));
  assert.equal(r3.status, 200, show(r3));
  assert.equal(r3.json.accepted, 1, show(r3));
  assert.equal(r3.json.duplicates + r3.json.stale, 2, show(r3));
});

test("invalid JSON, oversize bodies and too many events are refused; the worker keeps serving", async () => {
  const v = vid("bad");
  checkError(assert, await api.request("POST", "/v1/events", { raw: '{"site_key": "demo-site-key", "events": [', headers: { "content-type": "application/json" } }), 400, "invalid_json");
  await stillServing("invalid-json");
  checkError(assert, await api.request("POST", "/v1/events", { raw: "", headers: { "content-type": "application/json" } }), 400, "invalid_json");
  await stillServing("empty-body");

  // Just under the limit (60,000 bytes, whitespace padding) is fine; 70,000 bytes is not.
  const ok = JSON.stringify(batch(v, syntheticEvents(v, 2)));
  const under = await api.request("POST", "/v1/events", { raw: ok + " ".repeat(60_000 - ok.length), headers: { "content-type": "application/json" } });
  assert.equal(under.status, 200, `60,000-byte body: ${show(under)}`);
  const big = ok + " ".repeat(70_000 - ok.length);
  checkError(assert, await api.request("POST", "/v1/events", { raw: big, headers: { "content-type": "application/json" } }), 413, "body_too_large");
  await stillServing("oversize");
  // The same without a content-length (chunked): the limit is on the bytes, not on the header.
  const stream = new ReadableStream({
    start(c) {
      const buf = new TextEncoder().encode(big);
      for (let i = 0; i < buf.length; i += 8192) c.enqueue(buf.subarray(i, i + 8192));
      c.close();
    },
  });
  const r = await fetch(new URL("/v1/events", S.base), { method: "POST", body: stream, duplex: "half", headers: { "content-type": "application/json" } });
  const text = await r.text();
  checkError(assert, { status: r.status, headers: r.headers, text, json: JSON.parse(text) }, 413, "body_too_large");
  await stillServing("oversize-chunked");

  // 100 events are fine, 101 are not.
  const h = vid("hundred");
  const hundred = await api.events(batch(h, syntheticEvents(h, 100, { start: Date.now() - 200_000 })));
  assert.equal(hundred.status, 200, `100 events: ${show(hundred)}`);
  assert.equal(hundred.json.accepted, 100);
  checkError(assert, await api.events(batch(vid("bad2"), syntheticEvents(vid("bad2"), 101, { start: Date.now() - 200_000 }))), 400, "too_many_events");
  await stillServing("too-many");
  const empty = await api.events(batch(vid("bad3"), []));
  assert.ok(empty.status === 400, `0 events: expected 400, got ${show(empty)}`);
  checkError(assert, empty, 400);
  await stillServing("no-events");
});

test("per-event validation: bad events are reported by index, the rest accepted", async () => {
  const v = vid("mixed");
  const good = syntheticEvents(v, 4);
  const evs = [
    good[0],
    { ...good[1], ts: "yesterday" }, // bad type
    good[2],
    { ...good[3], visitor_id: vid("someone-else") }, // not the batch's visitor
    { id: `${v}-x`, type: "teleport", ts: Date.now() - 1000, visitor_id: v }, // unknown type
    { id: `${v}-y`, type: "scroll", ts: Date.now() - 1000, visitor_id: v, props: { depth: 10 }, color: "red" }, // unknown field
    { id: `${v}-z`, type: "page", ts: Date.now() - 1000, visitor_id: v }, // page without path/url
  ];
  const r = await api.events(batch(v, evs));
  assert.equal(r.status, 200, show(r));
  assert.equal(r.json.accepted, 2, show(r));
  assert.deepEqual(r.json.rejected.map((x) => x.index).sort((a, b) => a - b), [1, 3, 4, 5, 6], show(r));
  for (const x of r.json.rejected) {
    assert.equal(typeof x.code, "string");
    assert.ok(x.message.length > 0);
  }
  // Contract: a field of the wrong type in valid JSON is `invalid_field` (the batch's JSON is fine).
  assert.equal(r.json.rejected.find((x) => x.index === 1).code, "invalid_field", `events[1] has ts "yesterday": ${show(r)}`);
  checkScore(assert, r.json.score, { visitor: v, features: FEATURES, tiers: CARD.tiers });

  const all = await api.events(batch(v, [{ ...good[0], id: `${v}-b1`, ts: "x" }, { id: `${v}-b2`, type: "nope", ts: 1, visitor_id: v }]));
  checkError(assert, all, 400, "invalid_event");
  await stillServing("all-invalid");
  const notObj = await api.request("POST", "/v1/events", { raw: "[1,2,3]", headers: { "content-type": "application/json" } });
  assert.ok(notObj.status === 400, `a JSON array as batch: expected 400, got ${show(notObj)}`);
  checkError(assert, notObj, 400);
});

test("site key, origin and CORS", async () => {
  const v = vid("cors");
  checkError(assert, await api.events(batch(v, syntheticEvents(v, 2), { siteKey: "not-a-site" })), 403, "invalid_site_key");
  await stillServing("site-key");
  const noKey = { visitor_id: v, events: syntheticEvents(v, 2) };
  const nk = await api.events(noKey);
  assert.ok(nk.status === 400 || nk.status === 403, `no site_key: ${show(nk)}`);
  checkError(assert, nk, nk.status);

  const evil = "https://evil.example";
  checkError(assert, await api.events(batch(v, syntheticEvents(v, 2)), { headers: { origin: evil } }), 403, "origin_not_allowed");
  await stillServing("origin");
  const origin = S.base; // allowed (ALLOWED_ORIGINS holds the stack's own origin)
  const ok = await api.events(batch(v, syntheticEvents(v, 2)), { headers: { origin } });
  assert.equal(ok.status, 200, show(ok));
  assert.equal(ok.headers.get("access-control-allow-origin"), origin);

  const pre = await api.request("OPTIONS", "/v1/events", {
    headers: { origin, "access-control-request-method": "POST", "access-control-request-headers": "content-type" },
  });
  assert.equal(pre.status, 204, show(pre));
  assert.equal(pre.headers.get("access-control-allow-origin"), origin);
  assert.match(pre.headers.get("access-control-allow-methods") ?? "", /POST/);
  const badPre = await api.request("OPTIONS", "/v1/events", { headers: { origin: evil, "access-control-request-method": "POST" } });
  assert.notEqual(badPre.headers.get("access-control-allow-origin"), evil, show(badPre));
  assert.notEqual(badPre.headers.get("access-control-allow-origin"), "*", show(badPre));

  // sendBeacon posts text/plain.
  const beacon = await api.request("POST", "/v1/events", { raw: JSON.stringify(batch(v, syntheticEvents(v, 2, { offset: 10 }))), headers: { "content-type": "text/plain;charset=UTF-8", origin } });
  assert.equal(beacon.status, 200, show(beacon));
  assert.equal(beacon.json.accepted, 2);
});

test("POST /v1/identify attaches a lead id (site key or bearer); only a verified one makes the lead", async () => {
  const v = vid("ident");
  const lead = `${v}@acme.example`;
  const e = await api.events(batch(v, pathJourney(v, HOT_THEN_DROP.slice(0, 2))));
  assert.equal(e.status, 200, show(e));
  // A claim (no signature): the visitor is tagged, the lead is not made.
  const claim = await api.post("/v1/identify", { site_key: SITE_KEY, visitor_id: v, lead_id: lead, traits: { company_size: 250 } });
  assert.equal(claim.status, 200, show(claim));
  assert.equal(claim.json.verified, false);
  checkScore(assert, claim.json.score, { visitor: v, lead, features: FEATURES, tiers: CARD.tiers });
  checkError(assert, await api.get(`/v1/score/${encodeURIComponent(lead)}`, { auth: true }), 404, "not_found");
  // Signed by the site's backend: verified, and the lead's score follows this visitor.
  const r = await api.post("/v1/identify", { site_key: SITE_KEY, visitor_id: v, lead_id: lead, lead_signature: signLead(S.devVars.IDENTITY_SECRET, lead) });
  assert.equal(r.status, 200, show(r));
  assert.equal(r.json.verified, true);
  const g = await api.get(`/v1/score/${encodeURIComponent(lead)}`, { auth: true });
  assert.equal(g.status, 200, show(g));
  assert.equal(g.json.score.visitor_id, v);
  assert.equal(g.json.kind, "lead");
  const gl = await api.get(`/v1/score/${encodeURIComponent(lead)}?kind=lead`, { auth: true });
  assert.equal(gl.status, 200, show(gl));
  checkError(assert, await api.get(`/v1/score/${encodeURIComponent(lead)}?kind=visitor`, { auth: true }), 404, "not_found");
  checkError(assert, await api.get(`/v1/score/${encodeURIComponent(lead)}?kind=x`, { auth: true }), 400, "invalid_field");
  // A wrong signature is refused, not downgraded to a claim.
  const forged = await api.post("/v1/identify", { site_key: SITE_KEY, visitor_id: v, lead_id: lead, lead_signature: "0".repeat(64) });
  checkError(assert, forged, 403, "invalid_signature");

  const v2 = vid("ident-bearer");
  const r2 = await api.post("/v1/identify", { visitor_id: v2, lead_id: `${v2}@acme.example` }, { auth: true });
  assert.equal(r2.status, 200, show(r2));
  assert.equal(r2.json.score.lead_id, `${v2}@acme.example`);
  assert.equal(r2.json.verified, true, "a bearer caller is the site's backend: verified");
  const r3 = await api.post("/v1/identify", { visitor_id: v2, lead_id: "x@acme.example" });
  assert.ok(r3.status === 401 || r3.status === 403, `identify without site key or token: ${show(r3)}`);
  checkError(assert, r3, r3.status);
  checkError(assert, await api.post("/v1/identify", { site_key: "nope", visitor_id: v2, lead_id: "x@acme.example" }), 403, "invalid_site_key");
  await stillServing("identify");
});

test("POST /v1/score is bearer-only and stateless (events or features)", async () => {
  const v = vid("stateless");
  checkError(assert, await api.post("/v1/score", { events: syntheticEvents(v, 3) }), 401, "unauthorized");
  checkError(assert, await api.post("/v1/score", { events: syntheticEvents(v, 3) }, { auth: "nope" }), 401, "unauthorized");
  await stillServing("score-unauthorized");

  const base = Object.fromEntries(FEATURES.map((f) => [f, 0]));
  const feats = { ...base, product_pages: 12, product_seconds: 900, page_value: 60.3, bounce_rate: 0.004, exit_rate: 0.02 };
  const r = await api.post("/v1/score", { features: feats }, { auth: true });
  assert.equal(r.status, 200, show(r));
  checkScore(assert, r.json.score, { features: FEATURES, tiers: CARD.tiers });
  for (const f of r.json.score.key_factors) {
    assert.ok(Math.abs(f.value - feats[f.feature]) < 1e-4, `factor ${f.feature} value ${f.value} vs input ${feats[f.feature]}`);
  }
  const cold = await api.post("/v1/score", { features: base }, { auth: true });
  assert.equal(cold.status, 200, show(cold));
  assert.ok(cold.json.score.ai_score < r.json.score.ai_score, `all-zero features (${cold.json.score.ai_score}) should score below a pricing-page visitor (${r.json.score.ai_score})`);
  const bad = await api.post("/v1/score", { features: { product_pages: "many" } }, { auth: true });
  assert.equal(bad.status, 400, `non-numeric feature: ${show(bad)}`);
  checkError(assert, bad, 400);
  await stillServing("score-bad");
});

test("unknown routes answer a JSON 404", async () => {
  checkError(assert, await api.get("/v1/nope"), 404);
  checkError(assert, await api.get(`/v1/score/`, { auth: true }), 404);
});

test("rate limit per visitor: 429 rate_limited with Retry-After; other visitors unaffected", async () => {
  const v = vid("flood");
  const per = 10;
  let limited = null;
  let accepted = 0;
  for (let i = 0; i < RATE / per + 5 && !limited; i++) {
    const r = await api.events(batch(v, syntheticEvents(v, per, { offset: i * per, start: Date.now() - 3_000_000 })));
    if (r.status === 429) limited = r;
    else {
      assert.equal(r.status, 200, show(r));
      accepted += r.json.accepted;
    }
  }
  assert.ok(limited, `no 429 after ${accepted} events (RATE_LIMIT_PER_MIN=${RATE})`);
  checkError(assert, limited, 429, "rate_limited");
  assert.ok(accepted > RATE - per && accepted <= RATE, `429 after ${accepted} events in a minute, limit ${RATE}`);
  const ra = Number(limited.headers.get("retry-after"));
  assert.ok(Number.isFinite(ra) && ra >= 1 && ra <= 60, `Retry-After ${limited.headers.get("retry-after")}`);
  await stillServing("rate-limited");
});

test("PUT /v1/site: the deployment's site tables score every visitor (worker and stateless), GET /v1/config and /v1/site serve them to the page, DELETE returns to the card's", async () => {
  const put = (text, o = {}) => api.request("PUT", "/v1/site", { raw: text, headers: { "content-type": "application/json" }, ...o });
  const steps = [["page", "/"], ["page", "/products/widget"], ["engaged", null, 30000], ["page", "/pricing"]];
  const stateless = async (now = Date.now()) => {
    const r = await api.post("/v1/score", { events: pathJourney(vid("site-stateless"), steps, { now }) }, { auth: true });
    assert.equal(r.status, 200, show(r));
    return r.json.score;
  };
  const c0 = await api.get("/v1/config");
  assert.equal(c0.status, 200, show(c0));
  assert.equal(c0.json.site.version, null);
  assert.equal(c0.json.experiment, null);
  assert.equal(c0.json.models.default, CARD.model_version);
  checkError(assert, await api.get("/v1/site"), 404, "not_found");
  const before = await stateless();

  // Refused: no token, not JSON, an unknown field (line-numbered), tables a bundle cannot use, too big.
  const mine = structuredClone(CARD.site);
  mine.page_stats.pages["/products/widget"] = [0, 0.01, 250];
  mine.page_stats.pages["/pricing"] = [0.5, 0.5, 0];
  const text = JSON.stringify(mine, null, 1);
  checkError(assert, await put(text), 401, "unauthorized");
  checkError(assert, await put("{not json", { auth: true }), 400, "invalid_config");
  const unknown = await put(text.replace('"page_rules"', '"pages_rules"'), { auth: true });
  checkError(assert, unknown, 400, "invalid_config");
  assert.match(unknown.json.error.message, /line \d+ column \d+/);
  const noValue = structuredClone(mine);
  noValue.page_stats.columns = ["bounce_rate", "exit_rate", "value"];
  const refused = await put(JSON.stringify(noValue), { auth: true });
  checkError(assert, refused, 400, "invalid_config");
  assert.match(refused.json.error.message, /bundle default refuses/);
  checkError(assert, await put(" ".repeat(4 * 1024 * 1024 + 1), { auth: true }), 413, "body_too_large");
  assert.equal((await api.get("/v1/config")).json.site.version, null, "nothing refused was stored");

  try {
    const ok = await put(text, { auth: true });
    assert.equal(ok.status, 200, show(ok));
    assert.ok(ok.json.version && ok.json.pages_with_stats === Object.keys(mine.page_stats.pages).length, show(ok));
    const c1 = await api.get("/v1/config");
    assert.equal(c1.json.site.version, ok.json.version);
    const served = await api.get(`/v1/site?v=${encodeURIComponent(ok.json.version)}`);
    assert.equal(served.status, 200, show(served));
    assert.deepEqual(served.json, mine, "the page gets the tables the worker uses");
    assert.match(served.headers.get("cache-control"), /immutable/);
    assert.match((await api.get("/v1/site?v=old")).headers.get("cache-control"), /no-store/, "a stale version is not cached");

    // The same journey now reads the deployment's page statistics, statelessly and in its Durable Object.
    const now = Date.now();
    const after = await stateless(now);
    assert.notEqual(after.probability, before.probability, "the deployment's tables change the score");
    const v = vid("site-do");
    const r = await api.events(batch(v, pathJourney(v, steps, { now })));
    assert.equal(r.status, 200, show(r));
    assert.equal(r.json.score.probability, after.probability, "the Durable Object scores with the same tables");
  } finally {
    const d = await api.request("DELETE", "/v1/site", { auth: true });
    assert.equal(d.status, 200, show(d));
  }
  assert.equal((await api.get("/v1/config")).json.site.version, null);
  assert.equal((await stateless()).probability, before.probability, "back to the card's tables");
  await stillServing("site");
});
