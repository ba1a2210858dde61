// End-to-end test of lead merging: anonymous visitors (devices) of one lead, joined by identify.
//   node --test --test-concurrency=1 tests/worker/merge.test.mjs
// The expectation is the core's own: POST /v1/score (stateless, bearer) replays every event of the
// lead's devices, in time order, into one state. The devices' sessions overlap (one lead comparing
// on a laptop and a phone within half an hour), which the merge makes one session, as the replay does.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import crypto from "node:crypto";
import { testStack, pathJourney, batch, checkScore, card, show, signLead, SITE_KEY } from "./lib.mjs";

const RUN = crypto.randomBytes(3).toString("hex");
const vid = (name) => `v-${RUN}-${name}`;
const CARD = card();
const FEATURES = CARD.features.map((f) => f.name);
let S;
let api;
/** The lead id's signature, as the site's backend gives it to the page (a verified identify). */
const sig = (lead) => signLead(S.devVars.IDENTITY_SECRET, lead);

before(async () => {
  S = await testStack("merge", { EMIT_DEBOUNCE_MS: "0" });
  api = S.api;
});
after(async () => {
  await S?.stop();
});

/** The core's score of `events` (any visitors) replayed in time order into one state. */
async function coreScore(events) {
  const one = events.map((e) => ({ ...e, visitor_id: "expected" })).sort((x, y) => x.ts - y.ts);
  const r = await api.post("/v1/score", { events: one }, { auth: true });
  assert.equal(r.status, 200, show(r));
  return r.json.score;
}

/** Same score as the expectation (up to float summation order in page statistics). */
function sameScore(got, want, what) {
  assert.equal(got.ai_score, want.ai_score, `${what}: ai_score ${got.ai_score}, expected ${want.ai_score}`);
  assert.equal(got.tier, want.tier, `${what}: tier`);
  for (const k of ["probability", "raw_probability", "score_confidence"]) {
    assert.ok(Math.abs(got[k] - want[k]) < 1e-6, `${what}: ${k} ${got[k]}, expected ${want[k]}`);
  }
  assert.deepEqual(got.key_factors.map((f) => f.feature), want.key_factors.map((f) => f.feature), `${what}: key_factors`);
  got.key_factors.forEach((f, i) => {
    const w = want.key_factors[i].value;
    assert.ok(Math.abs(f.value - w) <= 1e-4 * Math.max(1, Math.abs(w)), `${what}: ${f.feature} = ${f.value}, expected ${w}`);
  });
}

/** The identify event POST /v1/identify makes, at some time `ts` (the expectation does not depend on it). */
const identifyEvent = (visitor, lead, ts) => ({ id: `${visitor}-identify-${ts}`, type: "identify", ts, visitor_id: visitor, lead_id: lead });

/** An engagement event at a known time after everything else, so last_ts is known to the expectation. */
const closing = (visitor, n, path) => ({ id: `${visitor}-close-${n}`, type: "page_end", ts: Date.now() + 500, visitor_id: visitor, path, engaged_ms: 5000 });

async function send(visitor, events) {
  const r = await api.events(batch(visitor, events));
  assert.equal(r.status, 200, show(r));
  assert.deepEqual(r.json.rejected, [], show(r));
  return r;
}

async function leadScore(lead) {
  const g = await api.get(`/v1/score/${encodeURIComponent(lead)}`, { auth: true });
  assert.equal(g.status, 200, `GET /v1/score/${lead}: ${show(g)}`);
  return g.json.score;
}

test("devices of one lead merge on identify; the lead's score is the core's score of all their events; replays count once", async () => {
  const now = Date.now();
  const lead = `lead-${RUN}@acme.example`;
  const [a, b, c] = [vid("laptop"), vid("phone"), vid("tablet")];

  // Device A browses products ~20 minutes ago and identifies in its batch (the snippet's identify()).
  const evA = pathJourney(a, [["page", "/products/scoring"], ["page_end", "/products/scoring", 40000], ["page", "/products/enrichment"], ["page_end", "/products/enrichment", 30000]], { now, endAgoMs: 20 * 60_000 });
  evA.push({ id: `${a}-identify`, type: "identify", ts: evA.at(-1).ts + 1000, visitor_id: a, lead_id: lead, lead_signature: sig(lead), traits: { company_size: 250 } });
  const ra = await send(a, evA);
  assert.equal(ra.json.accepted, evA.length, show(ra));
  checkScore(assert, ra.json.score, { visitor: a, lead, features: FEATURES, tiers: CARD.tiers });
  sameScore(ra.json.score, await coreScore(evA), "device A alone");

  // Device B, still anonymous, looks at pricing and the signup page a few minutes ago.
  const evB = pathJourney(b, [["page", "/pricing"], ["page_end", "/pricing", 20000], ["page", "/signup"], ["page_end", "/signup", 15000]], { now, endAgoMs: 3 * 60_000 });
  const rb = await send(b, evB);
  assert.equal(rb.json.score.lead_id ?? null, null);
  sameScore(rb.json.score, await coreScore(evB), "device B alone");

  // B identifies as the same lead: B's object fetches A's state and merges it.
  const idBody = { site_key: SITE_KEY, visitor_id: b, lead_id: lead, lead_signature: sig(lead) };
  const id1 = await api.post("/v1/identify", idBody);
  assert.equal(id1.status, 200, show(id1));
  checkScore(assert, id1.json.score, { visitor: b, lead, features: FEATURES, tiers: CARD.tiers });
  const close1 = closing(b, 1, "/signup");
  const r1 = await send(b, [close1]);
  assert.equal(r1.json.accepted, 1, show(r1));
  const merged = r1.json.score;
  checkScore(assert, merged, { visitor: b, lead, features: FEATURES, tiers: CARD.tiers });
  const evB1 = [...evB, identifyEvent(b, lead, close1.ts - 100), close1];
  const want1 = await coreScore([...evA, ...evB1]);
  sameScore(merged, want1, "B after merging A");
  const aloneB = await coreScore(evB1);
  const aloneA = await coreScore(evA);
  // Not necessarily higher: the default model weighs session means (page value, bounce rate), and A's
  // product pages dilute B's pricing/signup ones. Different from either alone is what shows the merge.
  for (const [alone, name] of [[aloneA, "A"], [aloneB, "B"]]) {
    assert.notEqual(merged.probability, alone.probability, `merged score equals ${name} alone (${alone.ai_score})`);
  }
  // The identify's own answer already covers A (its closing event aside).
  sameScore(id1.json.score, await coreScore([...evA, ...evB, identifyEvent(b, lead, close1.ts - 100)]), "identify answer");

  // The lead's score is B's merged score; A's own object is unchanged.
  const l1 = await leadScore(lead);
  assert.equal(l1.visitor_id, b);
  assert.equal(l1.lead_id, lead);
  sameScore(l1, merged, "GET /v1/score/<lead>");
  const ga = await api.get(`/v1/score/${encodeURIComponent(a)}`, { auth: true });
  assert.equal(ga.status, 200, show(ga));
  sameScore(ga.json.score, aloneA, "A's own score");

  // Replays: the same identify again, and B's whole batch again, count nothing twice.
  const id2 = await api.post("/v1/identify", idBody);
  assert.equal(id2.status, 200, show(id2));
  const again = await send(b, [...evB, close1]);
  assert.equal(again.json.accepted, 0, show(again));
  const close2 = closing(b, 2, "/signup");
  const r2 = await send(b, [close2]);
  const evB2 = [...evB1, identifyEvent(b, lead, close2.ts - 100), close2];
  sameScore(r2.json.score, await coreScore([...evA, ...evB2]), "after a replayed identify");
  sameScore(await leadScore(lead), r2.json.score, "lead after replays");

  // A third device identifies in its own batch: it merges B's view (which holds A) and not A again.
  const evC = pathJourney(c, [["page", "/demo"], ["page_end", "/demo", 25000]], { now: Date.now(), endAgoMs: 60_000 });
  const close3 = closing(c, 3, "/demo");
  const evC1 = [...evC, { ...identifyEvent(c, lead, close3.ts - 100), lead_signature: sig(lead) }, close3];
  const r3 = await send(c, evC1);
  assert.equal(r3.json.accepted, evC1.length, show(r3));
  sameScore(r3.json.score, await coreScore([...evA, ...evB2, ...evC1]), "C after merging B (and A through B)");
  const l3 = await leadScore(lead);
  assert.equal(l3.visitor_id, c);
  sameScore(l3, r3.json.score, "lead after the third device");

  // The old device keeps sending: its own object scores it; the lead's merged view stays as merged.
  const more = await send(a, [{ id: `${a}-later`, type: "page", ts: Date.now(), visitor_id: a, url: "https://acme.example/checkout" }]);
  assert.equal(more.json.accepted, 1, show(more));
  assert.equal(more.json.score.visitor_id, a);
  assert.equal(more.json.score.lead_id, lead);
  sameScore(await leadScore(lead), r3.json.score, "lead after the old device's later event");
});

test("identify errors stay JSON errors", async () => {
  const v = vid("bad-identify");
  const r = await api.post("/v1/identify", { site_key: SITE_KEY, visitor_id: v, lead_id: "x".repeat(65) });
  assert.equal(r.status, 400, show(r));
  assert.ok(r.json?.error?.code && r.json.error.message, show(r));
});
