// The learning loop's way in and out, end to end against `wrangler dev` (workerd, Durable Objects,
// the logs Queue, R2): live events and served scores logged only with analytics consent and never
// under GPC; history through POST /v1/import at its own timestamps and never sent to the CRM;
// outcomes through POST /v1/outcomes, idempotent by id; everything read back through
// GET /v1/export; bad input on every new route.
//   node --test --test-concurrency=1 tests/worker/learning.test.mjs
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import crypto from "node:crypto";
import fs from "node:fs";
import { testStack, journey, syntheticEvents, batch, checkError, card, show, sleep } from "./lib.mjs";

const RUN = crypto.randomBytes(3).toString("hex");
const vid = (name) => `v-${RUN}-${name}`;
const FEATURES = card().features.map((f) => f.name);
const DAY = 86_400_000;
let S;
let api;

before(async () => {
  S = await testStack("learning", { EMIT_DEBOUNCE_MS: "0" });
  api = S.api;
});
after(async () => {
  await S?.stop();
});

/** GET /v1/export/{log} as parsed records (the body is NDJSON). */
async function exportLog(log, from, to) {
  const r = await api.get(`/v1/export/${log}?from=${from}&to=${to}`, { auth: true });
  assert.equal(r.status, 200, show(r));
  assert.match(r.headers.get("content-type") ?? "", /application\/x-ndjson/);
  return r.text
    .split("\n")
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l));
}

/** Polls an export until `pick(records)` is truthy (the logs queue writes R2 in batches). */
async function waitForLog(log, from, to, pick, what) {
  const t0 = Date.now();
  for (;;) {
    const recs = await exportLog(log, from, to);
    const got = pick(recs);
    if (got) return got;
    if (Date.now() - t0 > 30_000) assert.fail(`no ${what} in the ${log} log after 30 s (${recs.length} records)`);
    await sleep(500);
  }
}

/** The distinct records of a log (a reader de-duplicates what at-least-once delivery repeats). */
const distinct = (recs, key) => [...new Map(recs.map((r) => [key(r), r])).values()];
const eventKey = (r) => `${r.event.visitor_id}\u001f${r.event.id}`;

test("live events and scores are logged with analytics consent only, never under GPC", async () => {
  const now = Date.now();
  const yes = vid("consent");
  const no = vid("no-analytics");
  const gpc = vid("gpc");
  const evs = (v) => journey("v-warm", { visitor: v, now });
  for (const [v, consent, headers] of [
    [yes, { analytics: true, crm: true }, {}],
    [no, { crm: true }, {}],
    [gpc, { analytics: true, crm: true }, { "sec-gpc": "1" }],
  ]) {
    const r = await api.events(batch(v, evs(v), { consent }), { headers });
    assert.equal(r.status, 200, show(r));
    assert.equal(r.json.accepted, evs(v).length, show(r));
  }
  // The same batch again: duplicates, nothing logged twice.
  const again = await api.events(batch(yes, evs(yes), { consent: { analytics: true, crm: true } }));
  assert.equal(again.json.duplicates, evs(yes).length, show(again));
  const from = now - 8 * DAY;
  const to = now + DAY;
  const mine = (recs) => recs.filter((r) => r.event.visitor_id.startsWith(`v-${RUN}-`));
  const events = await waitForLog("events", from, to, (recs) => {
    const m = mine(recs);
    return m.filter((r) => r.event.visitor_id === yes).length >= evs(yes).length && m;
  }, "consented events");
  const logged = distinct(events, eventKey);
  assert.deepEqual(
    logged.filter((r) => r.event.visitor_id === yes).map((r) => r.event.id).sort(),
    evs(yes).map((e) => e.id).sort(),
    "every accepted event of the consented visitor, once",
  );
  assert.equal(events.length, logged.length, "the replayed batch added no copies (duplicates are not logged)");
  assert.ok(!logged.some((r) => r.event.visitor_id === no), "no analytics consent: not logged");
  assert.ok(!logged.some((r) => r.event.visitor_id === gpc), "Sec-GPC: 1: never logged");
  for (const r of logged) {
    assert.equal(r.log, "event");
    assert.equal(r.source, "live");
    assert.ok(r.received_at >= now, `received_at ${r.received_at}`);
    const sent = evs(yes).find((e) => e.id === r.event.id);
    assert.equal(r.event.ts, sent.ts, "in-range ts kept as sent");
    assert.equal(r.client_ts, undefined);
  }
  const scores = await waitForLog("scores", from, to, (recs) => {
    const m = recs.filter((r) => r.visitor_id === yes);
    return m.length >= 2 && m;
  }, "scores of the consented visitor");
  const ds = distinct(scores, (r) => r.id);
  assert.deepEqual(ds.map((r) => r.id).sort(), [`${yes}/1`, `${yes}/2`], "one record per served score, numbered");
  for (const s of ds) {
    assert.deepEqual(Object.keys(s.features).sort(), [...FEATURES].sort(), "the feature vector by name");
    assert.equal(s.model_version, card().model_version);
    assert.ok(["hot", "warm", "cold"].includes(s.tier));
    assert.equal(s.ai_score, Math.round(100 * s.probability));
  }
  const allScores = await exportLog("scores", from, to);
  assert.ok(!allScores.some((r) => r.visitor_id === no || r.visitor_id === gpc), "no score logged without consent");
});

test("a clamped client clock is logged as the engine counted it, with the client's ts beside it", async () => {
  const now = Date.now();
  const v = vid("skew");
  const ev = { id: `${v}-1`, type: "page", ts: now + 3_600_000, visitor_id: v, url: "https://acme.example/pricing/" };
  const r = await api.events(batch(v, [ev], { consent: { analytics: true } }));
  assert.equal(r.status, 200, show(r));
  const rec = await waitForLog("events", now - DAY, now + 2 * DAY, (recs) => recs.find((x) => x.event.id === ev.id), "the skewed event");
  assert.equal(rec.client_ts, ev.ts);
  assert.ok(rec.event.ts <= rec.received_at + 120_000 && rec.event.ts >= now, `clamped to at most 2 min ahead: ${rec.event.ts}`);
});

test("POST /v1/import: history at its own timestamps, de-duplicated, logged, never sent to the CRM", async () => {
  const t0 = Date.UTC(2025, 2, 3, 10, 0, 0); // 2025-03-03: far older than the live clamp (7 days)
  const a = vid("hist-a");
  const b = vid("hist-b");
  const events = [...syntheticEvents(a, 6, { start: t0 }), ...syntheticEvents(b, 4, { start: t0 + 3600_000 })];
  const body = { events: [...events, { id: "bad", type: "page", ts: 5, visitor_id: a, url: "https://x/" }] };
  const r = await api.post("/v1/import", body, { auth: true });
  assert.equal(r.status, 200, show(r));
  assert.equal(r.json.visitors, 2);
  assert.equal(r.json.accepted, 10, show(r));
  assert.equal(r.json.duplicates, 0);
  assert.deepEqual(r.json.rejected.map((x) => [x.index, x.code]), [[10, "invalid_field"]], "the bad event is listed by index");
  const again = await api.post("/v1/import", { events }, { auth: true });
  assert.equal(again.status, 200, show(again));
  assert.equal(again.json.accepted, 0, show(again));
  assert.equal(again.json.duplicates, 10, "the same batch twice counts once");
  const recs = await waitForLog("events", t0 - DAY, t0 + DAY, (rs) => {
    const m = distinct(rs.filter((x) => x.event.visitor_id === a || x.event.visitor_id === b), eventKey);
    return m.length >= 10 && m;
  }, "imported events");
  assert.equal(recs.length, 10);
  for (const rec of recs) {
    assert.equal(rec.source, "import");
    const sent = events.find((e) => e.id === rec.event.id);
    assert.equal(rec.event.ts, sent.ts, "not clamped");
  }
  // The visitor's score reflects its history; the CRM heard nothing of it.
  const s = await api.get(`/v1/score/${a}?kind=visitor`, { auth: true });
  assert.equal(s.status, 200, show(s));
  await sleep(1500);
  const hooks = S.receiver.events().events.filter((e) => e.data.visitor_id === a || e.data.visitor_id === b);
  assert.deepEqual(hooks, [], "imports are never forwarded as live score changes");
  // One score per visitor and import batch, at its last event's time (the monitor's windows form
  // from history as from live traffic); none now, and the second (duplicate) batch adds none.
  const scores = await waitForLog("scores", t0 - DAY, t0 + 2 * DAY, (rs) => {
    const m = distinct(rs.filter((x) => x.visitor_id === a || x.visitor_id === b), (x) => x.id);
    return m.length >= 2 && m;
  }, "the imports' scores");
  const lastTs = (v) => Math.max(...events.filter((e) => e.visitor_id === v).map((e) => e.ts));
  assert.deepEqual(scores.map((x) => [x.visitor_id, x.ts]).sort(), [[a, lastTs(a)], [b, lastTs(b)]].sort());
  const liveScores = await exportLog("scores", Date.now() - DAY, Date.now() + DAY);
  assert.ok(!liveScores.some((x) => x.visitor_id === a), "no score at the receive time");
});

test("POST /v1/outcomes: kept once per id, logged again when re-sent (readers de-duplicate by id); bad items listed by index", async () => {
  const ts = Date.UTC(2025, 3, 1, 12, 0, 0);
  const lead = `${vid("lead")}@acme.example`;
  const v = vid("outcome-visitor");
  const outcomes = [
    { id: `${RUN}-o1`, lead_id: lead, type: "qualified", ts },
    { id: `${RUN}-o2`, lead_id: lead, type: "won", ts: ts + DAY, value: 12000 },
    { id: `${RUN}-o3`, visitor_id: v, type: "disqualified", ts },
  ];
  const bad = [
    { id: `${RUN}-x1`, lead_id: lead, type: "sale", ts },
    { id: `${RUN}-x2`, lead_id: lead, visitor_id: v, type: "customer", ts },
    { id: `${RUN}-x3`, lead_id: lead, type: "customer", ts: 5 },
  ];
  const r = await api.post("/v1/outcomes", { outcomes: [...outcomes, ...bad] }, { auth: true });
  assert.equal(r.status, 200, show(r));
  assert.equal(r.json.accepted, 3, show(r));
  assert.equal(r.json.duplicates, 0);
  assert.deepEqual(r.json.rejected.map((x) => x.index), [3, 4, 5], show(r));
  assert.ok(r.json.rejected.every((x) => x.code === "invalid_field" && x.message.length > 0));
  const again = await api.post("/v1/outcomes", { outcomes }, { auth: true });
  assert.equal(again.json.accepted, 0, show(again));
  assert.equal(again.json.duplicates, 3, "idempotent by id");
  // The re-send is logged too: a log line a crash lost before it reached R2 is written by the re-send.
  const recs = await waitForLog("outcomes", ts - DAY, ts + 2 * DAY, (rs) => {
    const m = rs.filter((x) => x.outcome.id.startsWith(`${RUN}-`));
    return m.length >= 6 && m;
  }, "outcomes");
  assert.equal(recs.length, 6, "each request's outcomes logged");
  assert.deepEqual([...new Set(recs.map((x) => x.outcome.id))].sort(), outcomes.map((o) => o.id).sort(), "three outcomes, by id");
  const won = recs.find((x) => x.outcome.id === `${RUN}-o2`);
  assert.equal(won.outcome.type, "customer", "won is stored as customer");
  assert.equal(won.outcome.value, 12000);
  assert.equal(won.source, "api");
});

/** A HubSpot webhook request as HubSpot signs it (v3: method + URI + body + timestamp, HMAC-SHA256, base64). */
function hubspotRequest(events, { timestamp = Date.now(), secret = S.devVars.HUBSPOT_CLIENT_SECRET, tamper } = {}) {
  const uri = new URL("/v1/outcomes/hubspot", S.base).toString();
  const raw = JSON.stringify(events);
  const sig = crypto.createHmac("sha256", secret).update(`POST${uri}${raw}${timestamp}`).digest("base64");
  return api.request("POST", "/v1/outcomes/hubspot", {
    raw: tamper ? tamper(raw) : raw,
    headers: { "content-type": "application/json", "x-hubspot-signature-v3": sig, "x-hubspot-request-timestamp": String(timestamp) },
  });
}

test("POST /v1/outcomes/hubspot: signed requests only; stages mapped; eventId replays and deals through their contacts", async () => {
  const base = Number.parseInt(crypto.randomBytes(4).toString("hex"), 16);
  const contact = String(900_000 + (base % 100_000));
  const deal = String(base);
  const at = Date.UTC(2025, 4, 2, 9, 0, 0);
  const ev = (n, o) => ({ eventId: base + n, subscriptionId: 1, portalId: 62515, appId: 7, occurredAt: at + n, attemptNumber: 0, changeSource: "CRM_UI", ...o });
  const lifecycle = ev(1, { subscriptionType: "contact.propertyChange", objectId: Number(contact), propertyName: "lifecyclestage", propertyValue: "customer" });
  const created = ev(2, { subscriptionType: "contact.creation", objectId: Number(contact) });
  const r = await hubspotRequest([lifecycle, created]);
  assert.equal(r.status, 200, show(r));
  assert.deepEqual([r.json.accepted, r.json.duplicates, r.json.ignored], [1, 0, 1], show(r));
  // HubSpot's retry carries the same eventId.
  const retry = await hubspotRequest([{ ...lifecycle, attemptNumber: 1 }]);
  assert.deepEqual([retry.json.accepted, retry.json.duplicates], [0, 1], show(retry));
  // Tampered body, stale or future timestamp, wrong secret, no signature: refused, nothing kept.
  const other = ev(9, { subscriptionType: "contact.propertyChange", objectId: 1, propertyName: "lifecyclestage", propertyValue: "customer" });
  checkError(assert, await hubspotRequest([other], { tamper: (t) => t.replace('"objectId":1', '"objectId":2') }), 401, "invalid_signature");
  checkError(assert, await hubspotRequest([other], { timestamp: Date.now() - 6 * 60_000 }), 401, "invalid_signature");
  checkError(assert, await hubspotRequest([other], { timestamp: Date.now() + 6 * 60_000 }), 401, "invalid_signature");
  checkError(assert, await hubspotRequest([other], { secret: "another-secret-of-the-right-size" }), 401, "invalid_signature");
  checkError(assert, await api.request("POST", "/v1/outcomes/hubspot", { body: [other] }), 401, "invalid_signature");
  checkError(assert, await hubspotRequest({ not: "an array" }), 400);
  // A deal won before HubSpot tells which contact it belongs to: kept on the deal, given to the
  // contact's lead once the association arrives; an open stage maps to opportunity.
  const won = ev(3, { subscriptionType: "deal.propertyChange", objectId: Number(deal), propertyName: "dealstage", propertyValue: "closedwon" });
  const w = await hubspotRequest([won]);
  assert.deepEqual([w.status, w.json.accepted], [200, 0], show(w));
  const link = ev(4, { subscriptionType: "deal.associationChange", associationType: "DEAL_TO_CONTACT", fromObjectId: Number(deal), toObjectId: Number(contact), associationRemoved: false, isPrimaryAssociation: true });
  const l = await hubspotRequest([link]);
  assert.deepEqual([l.status, l.json.accepted], [200, 1], show(l));
  const l2 = await hubspotRequest([link]);
  assert.equal(l2.json.accepted, 0, `a repeated association gives nothing twice: ${show(l2)}`);
  const recs = await waitForLog("outcomes", at - DAY, at + DAY, (rs) => {
    const m = rs.filter((x) => x.outcome.lead_id === contact);
    return m.length >= 2 && m;
  }, "HubSpot outcomes");
  const byId = Object.fromEntries(distinct(recs, (x) => x.outcome.id).map((x) => [x.outcome.id, x]));
  assert.deepEqual(Object.keys(byId).sort(), [`hubspot:${base + 1}`, `hubspot:${base + 3}:${contact}`].sort());
  for (const x of Object.values(byId)) {
    assert.equal(x.source, "hubspot");
    assert.equal(x.outcome.type, "customer");
  }
  assert.equal(byId[`hubspot:${base + 3}:${contact}`].outcome.ts, at + 3, "the deal's occurredAt");
});

test("every new route refuses bad input with a JSON error and writes nothing", async () => {
  const now = Date.now();
  // Wrong or missing token.
  for (const [m, p, body] of [
    ["POST", "/v1/import", { events: syntheticEvents(vid("x"), 1) }],
    ["POST", "/v1/outcomes", { outcomes: [] }],
    ["GET", `/v1/export/events?from=${now - DAY}`, undefined],
  ]) {
    checkError(assert, await api.request(m, p, { body }), 401, "unauthorized");
    checkError(assert, await api.request(m, p, { body, auth: "wrong" }), 401, "unauthorized");
  }
  // Malformed JSON, wrong shapes, empty and oversize batches.
  for (const p of ["/v1/import", "/v1/outcomes"]) {
    checkError(assert, await api.request("POST", p, { raw: "{not json", auth: true }), 400, "invalid_json");
    checkError(assert, await api.request("POST", p, { body: { nope: 1 }, auth: true }), 400, "invalid_json");
  }
  checkError(assert, await api.post("/v1/import", { events: [] }, { auth: true }), 400, "invalid_event");
  checkError(assert, await api.post("/v1/outcomes", { outcomes: [] }, { auth: true }), 400, "invalid_field");
  const many = syntheticEvents(vid("many"), 1001);
  checkError(assert, await api.post("/v1/import", { events: many }, { auth: true }), 400, "too_many_events");
  const manyOutcomes = Array.from({ length: 1001 }, (_, i) => ({ id: `m${i}`, visitor_id: "v", type: "qualified", ts: now }));
  checkError(assert, await api.post("/v1/outcomes", { outcomes: manyOutcomes }, { auth: true }), 400, "too_many_events");
  const big = "x".repeat(1024 * 1024 + 10);
  checkError(assert, await api.request("POST", "/v1/import", { raw: big, auth: true }), 413, "body_too_large");
  checkError(assert, await api.request("POST", "/v1/outcomes", { raw: "y".repeat(300 * 1024), auth: true }), 413, "body_too_large");
  const allBad = await api.post("/v1/import", { events: [{ id: "b", type: "page", ts: 1, visitor_id: vid("bad") }] }, { auth: true });
  checkError(assert, allBad, 400, "invalid_event");
  checkError(assert, await api.post("/v1/outcomes", { outcomes: [{ id: "z", type: "won", ts: now }] }, { auth: true }), 400, "invalid_field");
  // Export: unknown log, missing or bad range.
  checkError(assert, await api.get(`/v1/export/clicks?from=${now}`, { auth: true }), 404, "not_found");
  checkError(assert, await api.get(`/v1/export/events`, { auth: true }), 400, "invalid_field");
  checkError(assert, await api.get(`/v1/export/events?from=yesterday`, { auth: true }), 400, "invalid_field");
  checkError(assert, await api.get(`/v1/export/events?from=${now}&to=${now - 1}`, { auth: true }), 400, "invalid_field");
  checkError(assert, await api.get(`/v1/export/events?from=2020-01-01&to=2026-01-01`, { auth: true }), 400, "invalid_field");
  checkError(assert, await api.request("DELETE", "/v1/import", { auth: true }), 405, "method_not_allowed");
  // Nothing of the refused requests reached the logs. Sentinel: an import accepted after them must reach the log; a
  // refused batch that wrote anyway would have been queued before it.
  const sentinel = vid("refused-sentinel");
  const ok = await api.post("/v1/import", { events: syntheticEvents(sentinel, 1, { start: now }) }, { auth: true });
  assert.equal(ok.status, 200, show(ok));
  const events = await waitForLog("events", now - 8 * DAY, now + DAY, (recs) => recs.some((r) => r.event.visitor_id === sentinel) && recs, "the sentinel import");
  assert.ok(!events.some((r) => [vid("x"), vid("many"), vid("bad")].includes(r.event.visitor_id)), "refused batches wrote nothing");
});

test("the logs reach R2 in batches: fewer objects than requests", async () => {
  const now = Date.now();
  const n = 20;
  await Promise.all(
    Array.from({ length: n }, (_, i) => {
      const v = vid(`burst-${i}`);
      return api.events(batch(v, syntheticEvents(v, 3, { start: now - 30_000 }), { consent: { analytics: true } }));
    }),
  );
  await waitForLog("events", now - DAY, now + DAY, (recs) => recs.filter((r) => r.event.visitor_id.startsWith(`v-${RUN}-burst-`)).length >= 3 * n, "the burst");
  // The consumer reports each batch it writes: "logs: M messages, R records → K objects".
  const lines = fs.readFileSync(S.logFile, "utf8").match(/logs: \d+ messages, \d+ records → \d+ objects/g) ?? [];
  assert.ok(lines.length > 0, "the consumer reported its batches");
  const totals = lines.map((l) => l.match(/\d+/g).map(Number)).reduce((a, [m, , k]) => [a[0] + m, a[1] + k], [0, 0]);
  assert.ok(totals[1] < totals[0], `objects written (${totals[1]}) fewer than messages (${totals[0]}): batched, not per request`);
});
