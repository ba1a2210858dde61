// Server-side events keyed by lead (POST /v1/leads/events): a lead with no browser is scored and its
// webhook sent; the same batch twice counts once; a consented web visitor that proved it is the lead
// takes the lead's later events; history is applied without a webhook; bad input is refused by field.
//   node --test --test-concurrency=1 tests/worker/leads.test.mjs
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import crypto from "node:crypto";
import { testStack, journey, batch, show, checkError, signLead, sleep } from "./lib.mjs";

const RUN = crypto.randomBytes(3).toString("hex");
const lead = (name) => `${name}-${RUN}@acme.example`;
let S;

before(async () => {
  S = await testStack("leads", { EMIT_DEBOUNCE_MS: "0" });
});
after(async () => {
  await S?.stop();
});

/** A fixture journey as the CRM would send it: no visitor id (and no identify of its own). */
function serverEvents(name, id) {
  return journey(name, { visitor: `srv-${id}` })
    .filter((e) => e.type !== "identify")
    .map(({ visitor_id, ...e }) => e);
}

const post = (body, o = {}) => S.api.post("/v1/leads/events", body, { auth: true, ...o });
const deliveriesOf = (l, s = S.receiver.events()) => s.events.filter((e) => e.data?.lead_id === l);

test("a lead known only to the CRM is scored from its server events, and its webhook is sent", async () => {
  const l = lead("crm-only");
  const events = serverEvents("v-hot", l);
  const r = await post({ lead_id: l, events });
  assert.equal(r.status, 200, show(r));
  assert.equal(r.json.visitor_id, `lead:${l}`, "the lead's own stream");
  assert.equal(r.json.accepted, events.length + 1, "its events and the stream's opening identify");
  assert.equal(r.json.score.lead_id, l);
  assert.equal(r.json.score.tier, "hot", show(r));
  assert.ok(typeof r.json.score.fit.score === "number" && typeof r.json.score.engagement.score === "number");
  const [ev] = await S.receiver.waitFor((s) => deliveriesOf(l, s).length && deliveriesOf(l, s), { timeout: 60_000, what: `webhook for ${l}` });
  assert.equal(ev.data.ai_score, r.json.score.ai_score);
  assert.equal(ev.data.verified, true, "a bearer caller's lead is proven");
  assert.ok(ev.data.key_factors.every((f) => f.text && f.group), "factors as sentences, with their group");
  // The lead's score is the stream's.
  const g = await S.api.get(`/v1/score/${encodeURIComponent(l)}?kind=lead`, { auth: true });
  assert.equal(g.status, 200, show(g));
  assert.equal(g.json.kind, "lead");
  assert.equal(g.json.score.ai_score, r.json.score.ai_score);
  assert.equal(g.json.score.visitor_id, `lead:${l}`);
  // The same batch again: nothing counts twice, nothing more is sent.
  const again = await post({ lead_id: l, events });
  assert.equal(again.status, 200, show(again));
  assert.equal(again.json.accepted, 0);
  assert.equal(again.json.duplicates + again.json.stale, events.length + 1);
  assert.equal(again.json.score.ai_score, r.json.score.ai_score);
  await sleep(2000);
  assert.equal(deliveriesOf(l).length, 1, "one webhook for one change");
});

test("once a consented web visitor proves it is the lead, the lead's events go to it", async () => {
  const l = lead("web");
  const v = `v-web-${RUN}`;
  const sig = signLead(S.devVars.IDENTITY_SECRET, l);
  const evs = journey("v-cold", { visitor: v, lead: l });
  evs.push({ id: `${v}-id`, type: "identify", ts: Date.now() - 500, visitor_id: v, lead_id: l, lead_signature: sig });
  const w = await S.api.events(batch(v, evs));
  assert.equal(w.status, 200, show(w));
  const before = w.json.score;
  const touches = [
    { id: `t1-${RUN}`, type: "custom", name: "touch_webinar", ts: Date.now() - 200, props: { direction: "inbound" } },
    { id: `t2-${RUN}`, type: "page", ts: Date.now() - 100, path: "/pricing/" },
  ];
  const r = await post({ lead_id: l, events: touches });
  assert.equal(r.status, 200, show(r));
  assert.equal(r.json.visitor_id, v, "the merged view takes them");
  assert.equal(r.json.accepted, 2);
  assert.equal(r.json.score.visitor_id, v);
  assert.notEqual(r.json.score.score_timestamp, before.score_timestamp);
});

test("history: applied at its own times, the lead scored, no webhook", async () => {
  const l = lead("history");
  const events = serverEvents("v-hot", l).map((e) => ({ ...e, ts: e.ts - 3 * 86_400_000 }));
  const r = await post({ lead_id: l, history: true, events });
  assert.equal(r.status, 200, show(r));
  assert.equal(r.json.accepted, events.length + 1);
  assert.equal(r.json.score, undefined, "history answers no score");
  const g = await S.api.get(`/v1/score/${encodeURIComponent(l)}?kind=lead`, { auth: true });
  assert.equal(g.status, 200, show(g));
  assert.equal(g.json.score.lead_id, l);
  await sleep(3000);
  assert.equal(deliveriesOf(l).length, 0, "history is never forwarded");
});

test("bad input: every refusal says what is wrong, and nothing of a refused batch is applied", async () => {
  const l = lead("bad");
  const ok = { id: `ok-${RUN}`, type: "custom", name: "touch_email", ts: Date.now() - 1000 };
  checkError(assert, await S.api.post("/v1/leads/events", { lead_id: l, events: [ok] }), 401, "unauthorized");
  checkError(assert, await post({ events: [ok] }), 400, "invalid_json");
  checkError(assert, await post({ lead_id: "", events: [ok] }), 400, "invalid_field");
  checkError(assert, await post({ lead_id: "x".repeat(65), events: [ok] }), 400, "invalid_field");
  checkError(assert, await post({ lead_id: l, events: [] }), 400, "invalid_event");
  checkError(assert, await post({ lead_id: l, events: Array.from({ length: 1001 }, (_, i) => ({ ...ok, id: `b${i}` })) }), 400, "too_many_events");
  const mixed = await post({
    lead_id: l,
    events: [
      ok,
      { ...ok, id: "v", visitor_id: "someone" },
      { ...ok, id: "s", lead_id: "someone-else" },
      { ...ok, id: "g", lead_signature: "a".repeat(64) },
      { id: "n", type: "custom", ts: ok.ts },
      { ...ok, id: "t", type: "identify", traits: { company: "x".repeat(65) } },
    ],
  });
  assert.equal(mixed.status, 200, show(mixed));
  assert.equal(mixed.json.accepted, 2, "the good event and the stream's opening identify");
  assert.deepEqual(mixed.json.rejected.map((r) => r.index), [1, 2, 3, 4, 5]);
  assert.match(mixed.json.rejected[0].message, /visitor_id/);
  assert.match(mixed.json.rejected[1].message, /lead_id/);
  assert.match(mixed.json.rejected[2].message, /lead_signature/);
  assert.match(mixed.json.rejected[3].message, /name/);
  assert.match(mixed.json.rejected[4].message, /64 bytes/);
  const all = await post({ lead_id: lead("none"), events: [{ ...ok, visitor_id: "x" }] });
  checkError(assert, all, 400, "invalid_event");
  assert.match(all.json.error.message, /events\[0\]: field `visitor_id`/);
  // The lead's stream belongs to the server: no page and no import may write into it.
  const stream = `lead:${l}`;
  checkError(assert, await S.api.events(batch(stream, [{ ...ok, visitor_id: stream }])), 400, "invalid_field");
  const imp = await S.api.post("/v1/import", { events: [{ ...ok, id: "imp", visitor_id: stream }] }, { auth: true });
  checkError(assert, imp, 400, "invalid_event");
  assert.match(imp.json.error.message, /reserved/);
});
