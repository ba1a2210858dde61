// End-to-end webhook tests: events → Durable Object → score → Queue → signed POST to a real receiver.
//   node --test --test-concurrency=1 tests/worker/webhook.test.mjs
// One stack for the file, no debounce, and the retry schedule (27.5 h) compressed 3600× so that
// exhausting it takes about 30 s.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { testStack, journey, pathJourney, batch, checkScore, card, show, sleep, HOT_THEN_DROP } from "./lib.mjs";
import { ROOT } from "./receiver.mjs";

const RUN = crypto.randomBytes(3).toString("hex");
const vid = (name) => `v-${RUN}-${name}`;
const CARD = card();
const FEATURES = CARD.features.map((f) => f.name);
const DELIVERY_TIMEOUT = 90_000;
const SCALE = 3600; // DELIVERY_TIME_SCALE
// Standard Webhooks' schedule (src/webhook.rs RETRY_SCHEDULE_SECONDS), seconds after the previous attempt.
const SCHEDULE = [5, 300, 1800, 7200, 18000, 36000, 36000];
let S;
let R; // the receiver

before(async () => {
  S = await testStack("webhook", { EMIT_DEBOUNCE_MS: "0", DELIVERY_TIME_SCALE: String(SCALE), EMIT_DELTA: "10" });
  R = S.receiver;
});
after(async () => {
  await S?.stop();
});

const eventsOf = (s, v) => s.events.filter((e) => e.data?.visitor_id === v);
const attemptsOf = (s, v) => s.attempts.filter((a) => a.visitor_id === v);

async function sendHot(v, opts = {}) {
  const lead = `${v}@acme.example`;
  const r = await S.api.events(batch(v, journey("v-hot", { visitor: v, lead }), opts.batch), { headers: opts.headers });
  assert.equal(r.status, 200, show(r));
  assert.equal(r.json.score.tier, "hot", `journey should be hot: ${show(r)}`);
  return r;
}

/** A hot visitor whose delivery marks "everything queued before has had its chance". */
async function sentinel(tag) {
  const v = vid(`sentinel-${tag}`);
  await sendHot(v);
  await R.waitFor((s) => eventsOf(s, v).length > 0, { timeout: DELIVERY_TIMEOUT, what: `sentinel ${v}` });
  await sleep(2000);
}

function checkPayload(ev, score, { type, previousScore = null, previousTier = null, verified = false }) {
  assert.match(ev.id, /^msg_[0-9a-f]{24}$/, `webhook-id ${ev.id}`);
  assert.equal(ev.type, type);
  // Units, not latency: ms and s differ by a factor of 1000, so an hour's bound catches a mix-up and never a slow run.
  assert.ok(Number.isInteger(ev.timestamp) && Math.abs(ev.timestamp - Date.now()) < 3_600_000, `timestamp (ms) ${ev.timestamp}`);
  assert.ok(Math.abs(ev.webhook_timestamp * 1000 - ev.received_at) < 3_600_000, `webhook-timestamp ${ev.webhook_timestamp} (s) vs received ${ev.received_at} (ms)`);
  const d = ev.data;
  assert.deepEqual(
    Object.keys(d).sort(),
    ["ai_score", "engagement_score", "fit_score", "key_factors", "lead_id", "model_version", "previous_score", "previous_tier", "score_confidence", "score_timestamp", "tier", "verified", "visitor_id"],
  );
  assert.equal(d.fit_score, score.fit.score);
  assert.equal(d.engagement_score, score.engagement.score);
  assert.equal(d.visitor_id, score.visitor_id);
  assert.equal(d.lead_id, score.lead_id ?? null);
  assert.equal(d.ai_score, score.ai_score);
  assert.equal(d.tier, score.tier);
  assert.equal(d.model_version, CARD.model_version);
  assert.equal(d.score_timestamp, score.score_timestamp);
  assert.equal(d.score_confidence, score.score_confidence);
  assert.equal(d.previous_score, previousScore);
  assert.equal(d.previous_tier, previousTier);
  assert.equal(d.verified, verified, "verified: whether the lead id was proven");
  // The score's factors, value as the same f32 (the API and the webhook may print it differently),
  // impact rounded to 4 decimals.
  const want = score.key_factors.map((f) => ({ feature: f.feature, value: Math.fround(f.value), impact: Math.round(f.impact * 1e4) / 1e4, group: f.group, text: f.text }));
  const got = d.key_factors.map((f) => ({ feature: f.feature, value: Math.fround(f.value), impact: f.impact, group: f.group, text: f.text }));
  assert.ok(got.every((f) => f.text.length > 0), "every factor reads as a sentence");
  assert.deepEqual(got, want, "key_factors = the score's, impact rounded to 4 decimals");
}

test("a visitor turning hot is delivered once, signed, with the score it got", async () => {
  const v = vid("hot");
  const r = await sendHot(v);
  checkScore(assert, r.json.score, { visitor: v, features: FEATURES, tiers: CARD.tiers });
  const [ev] = await R.waitFor((s) => eventsOf(s, v).length && eventsOf(s, v), { timeout: DELIVERY_TIMEOUT, what: `lead.hot for ${v}` });
  checkPayload(ev, r.json.score, { type: "lead.hot" });
  const att = attemptsOf(R.events(), v);
  assert.match(att[0].content_type, /^application\/json/);
  await sentinel("hot");
  const s = R.events();
  assert.equal(eventsOf(s, v).length, 1, `one event for ${v}: ${JSON.stringify(eventsOf(s, v).map((e) => e.type))}`);
  assert.equal(s.rejected, 0, `receiver rejected ${s.rejected} deliveries: ${JSON.stringify(s.rejections)}`);
});

test("a later drop of ≥ EMIT_DELTA is sent as lead.score_changed with the previous score", async () => {
  const v = vid("drop");
  const evs = pathJourney(v, HOT_THEN_DROP);
  const r1 = await S.api.events(batch(v, evs.slice(0, 3)));
  assert.equal(r1.status, 200, show(r1));
  assert.equal(r1.json.score.tier, "hot", show(r1));
  const [first] = await R.waitFor((s) => eventsOf(s, v).length && eventsOf(s, v), { timeout: DELIVERY_TIMEOUT, what: `lead.hot for ${v}` });
  checkPayload(first, r1.json.score, { type: "lead.hot" });
  const r2 = await S.api.events(batch(v, evs.slice(3)));
  assert.equal(r2.status, 200, show(r2));
  assert.ok(r1.json.score.ai_score - r2.json.score.ai_score >= 10, `this journey should drop by ≥ 10: ${r1.json.score.ai_score} → ${r2.json.score.ai_score}`);
  const evs2 = await R.waitFor((s) => eventsOf(s, v).length >= 2 && eventsOf(s, v), { timeout: DELIVERY_TIMEOUT, what: `second event for ${v}` });
  checkPayload(evs2[1], r2.json.score, { type: "lead.score_changed", previousScore: r1.json.score.ai_score, previousTier: "hot" });
  assert.notEqual(evs2[1].id, evs2[0].id);
});

test("a replayed batch changes no score and emits nothing new", async () => {
  const v = vid("replay");
  const evs = journey("v-hot", { visitor: v, lead: `${v}@acme.example` });
  const r1 = await S.api.events(batch(v, evs));
  assert.equal(r1.status, 200, show(r1));
  await R.waitFor((s) => eventsOf(s, v).length > 0, { timeout: DELIVERY_TIMEOUT, what: `lead.hot for ${v}` });
  const before = attemptsOf(R.events(), v).length;
  for (let i = 0; i < 3; i++) {
    const r = await S.api.events(batch(v, evs));
    assert.equal(r.status, 200, show(r));
    assert.equal(r.json.accepted, 0, show(r));
    assert.equal(r.json.duplicates, evs.length, show(r));
    assert.equal(r.json.score.ai_score, r1.json.score.ai_score);
    assert.equal(r.json.score.probability, r1.json.score.probability);
  }
  await sentinel("replay");
  const s = R.events();
  assert.equal(eventsOf(s, v).length, 1, `events for ${v}: ${JSON.stringify(eventsOf(s, v))}`);
  assert.equal(attemptsOf(s, v).length, before, "no new delivery attempts after the replays");
});

test("Sec-GPC: 1 and consent.crm=false are scored but never forwarded", async (t) => {
  const gpc = vid("gpc");
  const noConsent = vid("no-consent");
  const noConsentField = vid("consent-missing");
  const a = await sendHot(gpc, { headers: { "sec-gpc": "1" } });
  checkScore(assert, a.json.score, { visitor: gpc, features: FEATURES, tiers: CARD.tiers });
  const b = await sendHot(noConsent, { batch: { consent: { crm: false } } });
  checkScore(assert, b.json.score, { visitor: noConsent, features: FEATURES, tiers: CARD.tiers });
  // Identify later, still without consent: nothing either.
  const idn = await S.api.post("/v1/identify", { site_key: "demo-site-key", visitor_id: gpc, lead_id: `${gpc}@acme.example` }, { headers: { "sec-gpc": "1" } });
  assert.equal(idn.status, 200, show(idn));
  await sentinel("gpc");
  const s = R.events();
  assert.deepEqual(attemptsOf(s, gpc), [], "no delivery for a Sec-GPC visitor");
  assert.deepEqual(attemptsOf(s, noConsent), [], "no delivery without CRM consent");
  // The stored score is there for the site's own use.
  const g = await S.api.get(`/v1/score/${gpc}`, { auth: true });
  assert.equal(g.status, 200, show(g));
  // What a batch without a consent object means is the worker's policy; report it.
  const c = await sendHot(noConsentField, { batch: { consent: null } });
  assert.equal(c.status, 200);
  await sentinel("consent-missing");
  const n = attemptsOf(R.events(), noConsentField).length;
  t.diagnostic(`a batch without a consent object was ${n ? "forwarded" : "NOT forwarded"} to the CRM`);
});

test("receiver down (500s, then hanging) → every event delivered after it recovers, same id across retries", async (t) => {
  await sentinel("pre-retry"); // nothing of earlier tests in flight
  R.reset();
  const vs = [1, 2, 3].map((i) => vid(`retry-${i}`));
  const scores = {};
  R.setMode("fail500");
  const t0 = Date.now();
  for (const v of vs) scores[v] = (await sendHot(v)).json.score;
  await R.waitFor((s) => vs.some((v) => attemptsOf(s, v).filter((a) => a.status === 500).length >= 2), { timeout: DELIVERY_TIMEOUT, what: "two failed attempts" });
  R.setMode("hang");
  await R.waitFor((s) => s.attempts.some((a) => vs.includes(a.visitor_id) && a.status === "hang"), { timeout: DELIVERY_TIMEOUT, what: "a hung attempt" });
  R.setMode("ok");
  await R.waitFor((s) => vs.every((v) => eventsOf(s, v).length > 0), { timeout: 180_000, what: "every retried event delivered" });
  await sleep(3000);
  // Hung attempts must have been abandoned by the worker (5 s timeout).
  await R.waitFor((s) => s.attempts.filter((a) => a.status === "hang").every((a) => a.closed_after_ms !== undefined), { timeout: 30_000, what: "the worker to give up hung requests" });
  const s = R.events();
  const report = [];
  for (const v of vs) {
    const att = attemptsOf(s, v);
    const ids = [...new Set(att.map((a) => a.id))];
    report.push(`${v}: ${att.map((a) => `${a.status}@${((a.at - t0) / 1000).toFixed(1)}s`).join(" ")}`);
    assert.equal(ids.length, 1, `${v}: one event, one webhook-id across retries; got ${ids.join(", ")}`);
    const evs = eventsOf(s, v);
    assert.equal(evs.length, 1);
    checkPayload(evs[0], scores[v], { type: "lead.hot" });
    for (const a of att) {
      assert.deepEqual({ type: a.payload.type, data: a.payload.data }, { type: evs[0].type, data: evs[0].data }, `${v}: the same payload on every attempt`);
    }
    for (let i = 1; i < att.length; i++) {
      const prev = att[i - 1];
      if (prev.status === 200) continue; // a redelivery after success (at-least-once), no backoff needed
      const gap = att[i].at - prev.at - (prev.status === "hang" ? prev.closed_after_ms : 0);
      assert.ok(gap >= 400, `${v}: attempt ${i + 1} came ${gap} ms after failed attempt ${i} (backoff ≥ ~1 s expected)`);
    }
  }
  const failedIds = new Set(s.attempts.filter((a) => a.status !== 200 && vs.includes(a.visitor_id)).map((a) => a.id));
  assert.ok(failedIds.size >= 1, "some attempts failed");
  for (const id of failedIds) assert.equal(s.ids[id].accepted, true, `${id} failed at first and must be delivered in the end`);
  for (const a of s.attempts.filter((x) => x.status === "hang")) {
    assert.ok(a.closed_after_ms >= 3500 && a.closed_after_ms <= 20_000, `hung attempt abandoned after ${a.closed_after_ms} ms (5 s timeout expected)`);
  }
  const dup = vs.reduce((n, v) => n + attemptsOf(s, v).filter((a) => a.status === 200).length - 1, 0);
  t.diagnostic(`retry timeline (t0 = first batch sent): ${report.join(" | ")}; redeliveries after success: ${dup}`);
  assert.equal(s.rejected, 0, `bad signatures on retries: ${JSON.stringify(s.rejections)}`);
});

test("503 with Retry-After: the next attempt waits for it", async () => {
  const v = vid("retry-after");
  R.setMode("fail503-retry-after", { retry_after: 4 });
  try {
    await sendHot(v);
    await R.waitFor((s) => attemptsOf(s, v).some((a) => a.status === 503), { timeout: DELIVERY_TIMEOUT, what: `503 attempt for ${v}` });
    R.setMode("ok");
    const [ev] = await R.waitFor((s) => eventsOf(s, v).length && eventsOf(s, v), { timeout: 60_000, what: `delivery after Retry-After for ${v}` });
    const att = attemptsOf(R.events(), v);
    const last503 = att.filter((a) => a.status === 503).pop();
    const gap = ev.received_at - last503.at;
    assert.ok(gap >= 3500, `Retry-After: 4 → next attempt after ${gap} ms`);
    assert.ok(gap <= 30_000, `Retry-After: 4 → next attempt only after ${gap} ms`);
    assert.equal(new Set(att.map((a) => a.id)).size, 1);
  } finally {
    R.setMode("ok");
  }
});

test("retries follow the schedule, then the dead-letter queue keeps the delivery in R2 until it is replayed with the same webhook-id", async (t) => {
  const toml = fs.readFileSync(path.join(ROOT, "wrangler.toml"), "utf8");
  const consumer = toml.split("[[queues.consumers]]").slice(1).find((b) => /queue = "leadscore-score-events"\n/.test(b));
  const maxRetries = Number(/max_retries\s*=\s*(\d+)/.exec(consumer ?? "")?.[1]);
  assert.equal(maxRetries, SCHEDULE.length, "max_retries = one retry per step of the schedule");
  const v = vid("dead");
  R.setMode("fail500");
  try {
    await sendHot(v);
    // The schedule's span compressed, plus 1 s floors and queue batching slack per attempt.
    const budget = (SCHEDULE.reduce((a, b) => a + b, 0) * 1.1 * 1000) / SCALE + SCHEDULE.length * 3000;
    await R.waitFor((s) => attemptsOf(s, v).length >= maxRetries + 1, { timeout: budget + 30_000, what: `${maxRetries + 1} attempts for ${v}` });
    const failed = await waitForFailed(v, 30_000);
    const att = attemptsOf(R.events(), v);
    const span = (att[att.length - 1].at - att[0].at) / 1000;
    t.diagnostic(`dead receiver: ${att.length} attempts over ${span.toFixed(1)} s real = ${((span * SCALE) / 3600).toFixed(1)} h simulated (max_retries = ${maxRetries})`);
    assert.equal(att.length, maxRetries + 1, `attempts for a receiver that never recovers (max_retries = ${maxRetries})`);
    assert.ok(span * SCALE >= 24 * 3600, `the attempts span at least a day of simulated time: ${((span * SCALE) / 3600).toFixed(1)} h`);
    assert.equal(new Set(att.map((a) => a.id)).size, 1);
    assert.equal(failed.id, att[0].id, "the kept delivery has the webhook-id of the attempts");
    assert.equal(failed.type, "lead.hot");
    // Nothing arrives on its own any more; a replay delivers it with the same id.
    R.setMode("ok");
    await sentinel("dead");
    assert.equal(eventsOf(R.events(), v).length, 0, "nothing delivered after the last retry");
    const bad = await S.api.post("/v1/deliveries/replay", { ids: [failed.id] });
    assert.equal(bad.status, 401, show(bad));
    const rp = await S.api.post("/v1/deliveries/replay", { ids: [failed.id, "msg_000000000000000000000000"] }, { auth: true });
    assert.equal(rp.status, 200, show(rp));
    assert.deepEqual(rp.json, { replayed: [failed.id], missing: ["msg_000000000000000000000000"] });
    const [ev] = await R.waitFor((s) => eventsOf(s, v).length && eventsOf(s, v), { timeout: DELIVERY_TIMEOUT, what: `replayed delivery for ${v}` });
    assert.equal(ev.id, failed.id, "replayed with the same webhook-id");
    const after = await S.api.get("/v1/deliveries/failed", { auth: true });
    assert.ok(!after.json.deliveries.some((d) => d.id === failed.id), "a replayed delivery leaves the failed list");
  } finally {
    R.setMode("ok");
  }
});

async function waitForFailed(v, timeout) {
  const t0 = Date.now();
  for (;;) {
    const r = await S.api.get("/v1/deliveries/failed", { auth: true });
    assert.equal(r.status, 200, show(r));
    const d = r.json.deliveries.find((x) => x.visitor_id === v);
    if (d) return d;
    if (Date.now() - t0 > timeout) assert.fail(`no failed delivery kept for ${v}: ${show(r)}`);
    await sleep(1000);
  }
}
