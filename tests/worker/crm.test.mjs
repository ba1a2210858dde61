// CRM write-back to HubSpot, on the local stack against the HubSpot emulator (built from HubSpot's
// published API: tests/worker/hubspot_emulator.mjs): the properties made once by setup; leads of the
// B2B world scored live by lead id (their HubSpot contact ids) in three rounds, the B2B example model
// active; every contact ends with its lead's latest served score, tier, sub-scores, reasons, model and
// score time, in fewer calls than score changes, never over the portal's burst limit. Then an
// afternoon of trouble, scaled down: the portal down (503), a 429 storm, a revoked token, a deleted and
// two merged contacts — nothing lost, nothing older written over newer, the deleted contact reported
// as a dead letter and written once it is back (replay). Last, a bad configuration: an error that
// names it, while scoring and the generic webhook go on.
//   node --test --test-concurrency=1 tests/worker/crm.test.mjs      (CRM_LEADS=n for another slice)
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { bundleUpload, testStack, show, sleep, journey } from "./lib.mjs";
import { ensureDevVars } from "./stack.mjs";
import { pick, world } from "./b2b.mjs";
import { startHubspot } from "./hubspot_emulator.mjs";
import { startSalesforce } from "./salesforce_emulator.mjs";

const LEADS = Number(process.env.CRM_LEADS || 60);
// The portal's burst limit, scaled down (HubSpot's lowest tier is 100 per 10 s) so the budget binds.
const LIMITS = { burst: 6, interval_ms: 2000, daily: 100_000 };
const FIRST_ID = 5001;
let S;
let H;
let SF;
let W;
const served = new Map(); // contact id → latest served score
// contact id → the served score that last changed what the record shows (its score time is written)
const shown = new Map();
const look = (s) => JSON.stringify([s.ai_score, s.tier, s.fit.score, s.engagement.score, s.model_version, reasons(s, Infinity)]);
// record id → score times at which what it shows entered hot (each one task: the `hot` alert)
const enteredHot = new Map();
function serve(map, shownMap, id, score) {
  const prev = shownMap.get(id);
  if (!prev || look(prev) !== look(score)) {
    if (score.tier === "hot" && prev?.tier !== "hot") enteredHot.set(id, [...(enteredHot.get(id) ?? []), score.score_timestamp]);
    shownMap.set(id, score);
  }
  map.set(id, score);
}
const contactOf = new Map(); // world lead → contact id
// A world account (acct_000750) as its HubSpot company id (8000750).
const companyOf = (account) => String(8_000_000 + Number(account.slice("acct_".length)));
const companies = new Set();

before(async () => {
  const v = ensureDevVars();
  H = await startHubspot({ token: v.HUBSPOT_TOKEN, burst: LIMITS.burst, intervalMs: LIMITS.interval_ms, daily: LIMITS.daily });
  SF = await startSalesforce({ clientId: v.SALESFORCE_CLIENT_ID, clientSecret: v.SALESFORCE_CLIENT_SECRET, daily: 1000 });
  // Both CRMs: a lead id is a HubSpot contact id (digits) or a Salesforce Lead id (00Q…), never both.
  const dest = {
    hubspot: { base_url: H.url, account_object: "company", flush_ms: 1500, limits: LIMITS, reasons_max_chars: 1000,
      alerts: { on: ["hot", "spike"], as: "task" } },
    salesforce: { login_url: SF.url, flush_ms: 1500, limits: { burst: 5, interval_ms: 1000, daily: 1000 }, alerts: { on: ["hot"], as: "note" } },
  };
  // DELIVERY_TIME_SCALE 60: the retry schedule's 5 s, 5 min, 30 min … last 1 s, 5 s, 30 s.
  // A spike: 20 points within an hour (a HubSpot task, beside the webhook).
  S = await testStack("crm", { CRM_DESTINATIONS: JSON.stringify(dest), DELIVERY_TIME_SCALE: "60", EMIT_DEBOUNCE_MS: "0", SPIKE_POINTS: "20", SPIKE_WITHIN: "1h" });
});
after(async () => {
  await S?.stop();
  await H?.close();
  await SF?.close();
});

/** The key factors as the reasons property reads (the core's rule, `crm::fields::reasons_text`). */
function reasons(score, max = 1000) {
  let out = "";
  for (const f of score.key_factors) {
    const r = `${f.impact >= 0 ? "+" : "−"} ${f.text || f.label}`;
    const next = out ? `${out}; ${r}` : r;
    if ([...next].length > max) break;
    out = next;
  }
  return out;
}

/** The CRM outbox's state (GET /v1/crm). */
async function outbox() {
  const r = await S.api.get("/v1/crm", { auth: true });
  assert.equal(r.status, 200, show(r));
  return r.json;
}

/** Until the outbox has no record or activity waiting and its counters stop moving. */
async function drained(what, timeoutMs = 120_000, name = "hubspot") {
  const t0 = Date.now();
  let last = null;
  for (;;) {
    const o = (await outbox()).destinations.find((d) => d.name === name);
    const now = JSON.stringify(o.outbox.counts);
    if (o.outbox.waiting === 0 && o.outbox.activities_waiting === 0 && now === last) return o;
    if (Date.now() - t0 > timeoutMs) throw new Error(`${what}: the outbox still holds ${o.outbox.waiting} records, ${o.outbox.activities_waiting} activities: ${JSON.stringify(o.outbox)}`);
    last = now;
    await sleep(1500);
  }
}

const post = (id, events) => S.api.post("/v1/leads/events", { lead_id: id, events }, { auth: true, timeout: 60_000 });

/** Every contact's leadscore properties against its lead's latest served score. */
function checkContacts(ids, { except = new Set(), routed = true } = {}) {
  const recs = H.records("contacts");
  let checked = 0;
  for (const id of ids) {
    if (except.has(id)) continue;
    const s = served.get(id);
    const p = recs[id]?.properties;
    assert.ok(p, `contact ${id} exists`);
    assert.equal(p.leadscore_score, String(s.ai_score), `contact ${id} score`);
    assert.equal(p.leadscore_tier, s.tier, `contact ${id} tier`);
    assert.equal(p.leadscore_fit, String(s.fit.score), `contact ${id} fit`);
    assert.equal(p.leadscore_engagement, String(s.engagement.score), `contact ${id} engagement`);
    assert.equal(p.leadscore_model_version, s.model_version);
    assert.equal(p.leadscore_scored_at, new Date(shown.get(id).score_timestamp).toISOString(), `contact ${id}: the time of the score that last changed it`);
    assert.equal(p.leadscore_reasons, reasons(s), `contact ${id} reasons`);
    if (routed) assert.ok(p.leadscore_owner_tier, `contact ${id} routed`);
    checked++;
  }
  return checked;
}

/** Every company's leadscore properties against its account's score now (GET /v1/score/{id}?kind=account). */
async function checkCompanies() {
  const recs = H.records("companies");
  for (const id of companies) {
    const r = await S.api.get(`/v1/score/${id}?kind=account`, { auth: true });
    assert.equal(r.status, 200, show(r));
    const a = r.json.score;
    const p = recs[id]?.properties;
    assert.ok(p, `company ${id} exists`);
    assert.equal(p.leadscore_score, String(a.ai_score), `company ${id} score`);
    assert.equal(p.leadscore_tier, a.tier, `company ${id} tier`);
    const parts = [`${a.engaged_members} of ${a.members} members engaged`];
    if (a.buyer_roles.length) parts.push(`roles: ${a.buyer_roles.join(", ")}`);
    for (const m of a.top_members) parts.push(`${m.id}: ${m.ai_score} ${m.tier}`);
    assert.equal(p.leadscore_reasons, parts.join("; "), `company ${id} reasons`);
    assert.ok(p.leadscore_owner_tier, `company ${id} routed`);
    assert.equal(p.leadscore_model_version, undefined, "an account has no model of its own");
  }
  return companies.size;
}

/**
 * Every contact's tasks: one per entry into hot, one per spike webhook that was not also that entry,
 * each on its contact, none twice.
 */
async function checkTasks(ids) {
  const spikes = await S.receiver.waitFor((st) => st.events, { timeout: 5_000, what: "the webhooks" });
  const tasks = H.state().activities.filter((a) => a.type === "tasks");
  const traces = tasks.map((a) => a.objectWriteTraceId);
  assert.equal(new Set(traces).size, traces.length, "no task made twice");
  let hot = 0;
  let spiked = 0;
  for (const id of ids) {
    const want = new Set((enteredHot.get(id) ?? []).map((t) => `hot_${id}_${t}`));
    for (const e of spikes.filter((e) => e.type === "lead.score_spiked" && e.data.lead_id === id)) {
      if (!want.has(`hot_${id}_${e.data.score_timestamp}`)) want.add(`spike_${id}_${e.data.score_timestamp}`);
    }
    const mine = tasks.filter((a) => a.objectWriteTraceId.split("_")[1] === id);
    assert.deepEqual(mine.map((a) => a.objectWriteTraceId).sort(), [...want].sort(), `contact ${id}'s tasks`);
    for (const a of mine) {
      assert.deepEqual(a.associations, [{ id, type: "contacts" }]);
      assert.match(a.properties.hs_task_subject, a.objectWriteTraceId.startsWith("hot") ? /^Hot lead: score \d+/ : /^Score spike: \d+ → \d+$/);
    }
    hot += mine.filter((a) => a.objectWriteTraceId.startsWith("hot")).length;
    spiked += mine.length - mine.filter((a) => a.objectWriteTraceId.startsWith("hot")).length;
  }
  return { hot, spiked };
}

test("setup makes the leadscore properties once; a second run finds them there", async () => {
  const r = await S.api.post("/v1/crm/setup?destination=hubspot", {}, { auth: true });
  assert.equal(r.status, 200, show(r));
  assert.equal(r.json.done, true);
  assert.equal(H.state().properties.contacts.filter((p) => p.startsWith("leadscore_")).length, 9);
  assert.equal(H.state().properties.companies.filter((p) => p.startsWith("leadscore_")).length, 9, "and on companies (account_object)");
  const again = await S.api.post("/v1/crm/setup?destination=hubspot", {}, { auth: true });
  assert.equal(again.status, 200, show(again));
  assert.ok(again.json.steps.every((s) => s.status === 409), "everything was there");
  const bad = await S.api.post("/v1/crm/setup?destination=pipedrive", {}, { auth: true });
  assert.equal(bad.status, 400, show(bad));
});

test("every contact ends with its lead's latest served score, in fewer calls than score changes, within the burst limit", { timeout: 600_000 }, async (t) => {
  // The B2B example scores (fit and engagement), through the registry.
  const up = await S.api.request("PUT", "/v1/models/b2b-example", { raw: bundleUpload("b2b-example"), auth: true, headers: { "content-type": "application/json" } });
  assert.equal(up.status, 201, show(up));
  assert.equal((await S.api.post(`/v1/models/${up.json.version}/activate`, { reason: "crm test" }, { auth: true })).status, 200);

  W = world();
  const leads = [...pick(W.byLead, LEADS)];
  leads.forEach((l, i) => contactOf.set(l, String(FIRST_ID + i)));
  H.control.create("contacts", [...contactOf.values()]);
  // Each lead's events moved to end a minute ago, its identify naming its contact; sent live in thirds.
  const rounds = [[], [], []];
  for (const lead of leads) {
    const id = contactOf.get(lead);
    const evs = W.byLead.get(lead);
    const shift = Date.now() - 60_000 - evs[evs.length - 1].ts;
    const moved = evs.map(({ visitor_id, ...e }) => ({ ...e, ts: e.ts + shift, ...(e.type === "identify" ? { lead_id: id } : {}),
      ...(e.type === "group" ? { account_id: companyOf(e.account_id) } : {}) }));
    for (const e of moved) if (e.type === "group") companies.add(e.account_id);
    const third = Math.ceil(moved.length / 3);
    for (let k = 0; k < 3; k++) rounds[k].push([id, moved.slice(k * third, (k + 1) * third)]);
  }
  H.control.create("companies", [...companies]);
  assert.ok(companies.size > 0, "the leads' accounts");
  let changes = 0;
  for (const round of rounds) {
    const queue = round.filter(([, evs]) => evs.length);
    const worker = async () => {
      for (let item; (item = queue.shift()); ) {
        const [id, evs] = item;
        // In three posts back to back: changes of one record within the flush window, written once.
        const part = Math.ceil(evs.length / 3);
        for (let k = 0; k < evs.length; k += part) {
          const r = await post(id, evs.slice(k, k + part));
          assert.equal(r.status, 200, show(r));
          const prev = served.get(id);
          if (!prev || look(prev) !== look(r.json.score)) changes++;
          serve(served, shown, id, r.json.score);
        }
      }
    };
    await Promise.all([worker(), worker(), worker(), worker()]);
    await sleep(1000);
  }
  const d = await drained("the B2B leads");
  const checked = checkContacts([...contactOf.values()]);
  assert.equal(checked, leads.length);
  const accounts = await checkCompanies();
  const tasks = await checkTasks([...contactOf.values()]);
  assert.ok(tasks.hot > 0, "leads entered hot");
  const st = H.state().counters;
  t.diagnostic(`${leads.length} contacts, ${accounts} companies, tasks ${JSON.stringify(tasks)}, ${changes} changes of what a record shows; outbox ${JSON.stringify(d.outbox.counts)}; score changes per call ${d.score_changes_per_call?.toFixed(2)}; emulator ${JSON.stringify(st)}`);
  assert.ok(d.outbox.counts.coalesced > 0, "changes within a flush window written once");
  assert.ok(d.outbox.counts.written < changes, `fewer record writes (${d.outbox.counts.written}) than changes (${changes})`);
  assert.ok(d.outbox.counts.calls < d.outbox.counts.offered, "fewer calls than writes");
  assert.ok(st.peak_calls_in_interval <= LIMITS.burst, `at most ${LIMITS.burst} calls in any ${LIMITS.interval_ms} ms: ${st.peak_calls_in_interval}`);
  assert.deepEqual(st.refused, {}, "no call refused");
  assert.equal(st.regressions, 0);
  assert.ok(changes > 0);
});

test("an afternoon of trouble: down, 429s, a revoked token, a deleted and a merged contact — nothing lost or overwritten by older", { timeout: 600_000 }, async (t) => {
  assert.ok(served.size > 0, "runs after the previous test");
  const ids = [...served.keys()];
  const [deleted, merged] = ids;
  const dealIds = new Set(ids.slice(0, 8));
  // The day-zero scorecard becomes the active model (points a sales team reads: a meeting, a demo,
  // an opportunity): every record shows a new model, and leads enter hot and spike.
  const up = await S.api.request("PUT", "/v1/models/b2b-rules", { raw: bundleUpload("b2b-rules"), auth: true, headers: { "content-type": "application/json" } });
  assert.equal(up.status, 201, show(up));
  assert.equal((await S.api.post(`/v1/models/${up.json.version}/activate`, { reason: "crm test: the scorecard" }, { auth: true })).status, 200);
  H.control.remove("contacts", deleted);
  // A lead's contact merged with a contact leadscore does not score: both ids now point at a new one.
  H.control.create("contacts", ["9999"]);
  const mergedId = H.control.merge("contacts", merged, "9999");
  const before = H.state().counters;
  // New activity for every lead while the portal is down.
  H.control.faults({ down: 503 });
  const bump = async (round) => {
    const queue = [...ids];
    const worker = async () => {
      for (let id; (id = queue.shift()); ) {
        const now = Date.now();
        const evs = [
          { id: `crm-${round}-${id}-p`, type: "page", ts: now - 2000, path: "/pricing" },
          { id: `crm-${round}-${id}-w`, type: "custom", name: "touch_webinar", ts: now - 1000, props: { direction: "inbound" } },
        ];
        // A few leads move toward a deal — a demo, then meetings and an opportunity — while the portal
        // is in trouble: entering hot and spiking make tasks, which wait and retry like the writes.
        if (dealIds.has(id)) {
          const name = { 1: "sales_meeting", 2: "sales_demo", 3: "opportunity_created" }[round];
          evs.push({ id: `crm-${round}-${id}-s`, type: "custom", name, ts: now - 500, props: { outcome: "meeting_set" } });
          if (round === 2) evs.push({ id: `crm-${round}-${id}-d`, type: "page", ts: now - 400, path: "/demo" });
        }
        const r = await post(id, evs);
        assert.equal(r.status, 200, show(r));
        serve(served, shown, id, r.json.score);
      }
    };
    await Promise.all([worker(), worker(), worker(), worker()]);
  };
  // The portal down for a while.
  await bump(1);
  await sleep(4000);
  H.control.faults({ down: 0 });
  await drained("after the outage", 120_000);
  // A storm of 429s.
  H.control.faults({ storm429: 3 });
  await bump(2);
  await drained("after the 429s", 120_000);
  // The token refused for a while (revoked, then restored).
  H.control.faults({ revoked: true });
  await bump(3);
  await sleep(4000);
  H.control.faults({ revoked: false });
  const d = await drained("after the refused token", 120_000);
  const st = H.state().counters;
  t.diagnostic(`outbox ${JSON.stringify(d.outbox.counts)}; emulator refused ${JSON.stringify(st.refused)}; peak ${st.peak_calls_in_interval}`);
  assert.ok((st.refused.down503 ?? 0) > (before.refused.down503 ?? 0), "the outage was met");
  assert.ok(st.refused.storm429 >= 1, JSON.stringify(st.refused));
  assert.ok(st.refused["401"] >= 1, JSON.stringify(st.refused));
  // Every live contact holds its latest served values; the merged one its later lead's.
  checkContacts(ids, { except: new Set([deleted, merged]) });
  await checkCompanies();
  const m = H.records("contacts")[mergedId].properties;
  assert.equal(m.leadscore_score, String(served.get(merged).ai_score), "the merged contact has its lead's latest score");
  assert.equal(m.leadscore_scored_at, new Date(shown.get(merged).score_timestamp).toISOString());
  assert.equal(st.regressions, 0, "no older score written over a newer one");
  assert.ok(st.peak_calls_in_interval <= LIMITS.burst, `peak ${st.peak_calls_in_interval}`);
  // The deleted contact: reported, not retried for ever; written once it is back and replayed.
  const dead = await S.api.get("/v1/crm/dead?destination=hubspot", { auth: true });
  assert.equal(dead.status, 200, show(dead));
  const mine = dead.json.dead.filter((l) => l.write?.record.id === deleted);
  assert.equal(mine.length, 1, show(dead));
  assert.equal(mine[0].write.scored_at, shown.get(deleted).score_timestamp, "its latest values are kept");
  H.control.create("contacts", [deleted]);
  const rp = await S.api.post("/v1/crm/replay", { destination: "hubspot" }, { auth: true });
  assert.equal(rp.status, 200, show(rp));
  await drained("the replay");
  // (A record made again holds what was written since: the routing was set when it entered its tier.)
  checkContacts([deleted], { routed: false });
  // Tasks through it all: each made once, the deleted contact's once it was back (replayed).
  const tasks = await checkTasks(ids);
  t.diagnostic(`tasks ${JSON.stringify(tasks)}`);
  assert.ok(tasks.hot >= 4 && tasks.spiked >= 1, `leads entered hot and spiked: ${JSON.stringify(tasks)}`);
  assert.equal((await S.api.get("/v1/crm/dead?destination=hubspot", { auth: true })).json.dead.length, 0);
});

test("Salesforce: Lead fields through sObject Collections; an expired token is renewed, a deleted Lead reported", { timeout: 300_000 }, async (t) => {
  assert.ok(W, "runs after the B2B test");
  // As a customer makes them in Object Manager: Number (0), Text (its length), Date/Time (-1).
  const FIELDS = { Leadscore_Score__c: 0, Leadscore_Tier__c: 255, Leadscore_Fit__c: 0, Leadscore_Engagement__c: 0, Leadscore_Reasons__c: 255,
    Leadscore_Model_Version__c: 255, Leadscore_Scored_At__c: -1, Leadscore_Owner_Tier__c: 255, Leadscore_Sla_Due__c: -1 };
  SF.control.defineFields("Lead", FIELDS);
  const leads = [...pick(W.byLead, 20)].filter((l) => !contactOf.has(l)).slice(0, 12);
  const ids = leads.map((_, i) => `00Q5e00000Ab${String(i).padStart(3, "0")}AAA`);
  SF.control.create("Lead", ids);
  const sfServed = new Map();
  const sfShown = new Map();
  const sendRound = async (k) => {
    for (const [i, lead] of leads.entries()) {
      const evs = W.byLead.get(lead);
      const shift = Date.now() - 60_000 - evs[evs.length - 1].ts;
      const moved = evs.map(({ visitor_id, ...e }) => ({ ...e, id: `sf-${e.id}`, ts: e.ts + shift, ...(e.type === "identify" ? { lead_id: ids[i] } : {}) }));
      const half = Math.ceil(moved.length / 2);
      const part = moved.slice(k * half, (k + 1) * half);
      // Four Leads get a demo and an opportunity in the second round: entering hot, each a note.
      if (k === 1 && i >= 1 && i <= 4) {
        const now = Date.now();
        part.push({ id: `sf-deal-${i}-d`, type: "custom", name: "sales_demo", ts: now - 2000, props: { outcome: "meeting_set" } });
        part.push({ id: `sf-deal-${i}-o`, type: "custom", name: "opportunity_created", ts: now - 1000 });
      }
      const r = await post(ids[i], part);
      assert.equal(r.status, 200, show(r));
      serve(sfServed, sfShown, ids[i], r.json.score);
    }
  };
  await sendRound(0);
  await drained("Salesforce round 1", 120_000, "salesforce");
  // The session ends (Salesforce gives no expiry): the next call's 401 gets a new token.
  SF.control.faults({ expire: true });
  SF.control.remove(ids[0]);
  await sendRound(1);
  const d = await drained("Salesforce round 2", 120_000, "salesforce");
  const st = SF.state();
  t.diagnostic(`outbox ${JSON.stringify(d.outbox.counts)}; emulator ${JSON.stringify(st.counters)}`);
  assert.ok(st.counters.tokens >= 2, "a new token after the expiry");
  assert.ok(st.counters.refused.INVALID_SESSION_ID >= 1);
  assert.equal(st.counters.regressions, 0);
  const notes = st.activities.filter((a) => a.type === "Note");
  t.diagnostic(`notes ${notes.length}: ${notes.map((n) => n.fields.Title).join("; ")}`);
  assert.ok(notes.length >= 2, "Leads entered hot");
  for (const id of ids.slice(1)) {
    // A note per entry into hot, on the Lead.
    const notes = st.activities.filter((a) => a.type === "Note" && a.fields.ParentId === id);
    assert.equal(notes.length, (enteredHot.get(id) ?? []).length, `Lead ${id}'s notes`);
    for (const n of notes) assert.match(n.fields.Title, /^Hot lead: score \d+/);
    const f = st.records[id].fields;
    const s = sfServed.get(id);
    assert.equal(f.Leadscore_Score__c, s.ai_score, id);
    assert.equal(f.Leadscore_Tier__c, s.tier);
    assert.equal(f.Leadscore_Scored_At__c, new Date(sfShown.get(id).score_timestamp).toISOString());
    assert.equal(f.Leadscore_Reasons__c, reasons(s, 255));
  }
  const dead = await S.api.get("/v1/crm/dead?destination=salesforce", { auth: true });
  const mine = dead.json.dead.filter((l) => l.write?.record.id === ids[0]);
  assert.equal(mine.length, 1, show(dead));
  assert.match(mine[0].reason, /ENTITY_IS_DELETED|does not know/);
});

test("a bad CRM configuration is an error that names it; scoring, the webhook and the spike alert go on", { timeout: 180_000 }, async () => {
  const bad = await testStack("crm-bad", { CRM_DESTINATIONS: JSON.stringify({ hubspot: { fields: { score: "Lead Score" } } }), EMIT_DEBOUNCE_MS: "0", SPIKE_POINTS: "15", SPIKE_WITHIN: "1h" });
  try {
    const c = await bad.api.get("/v1/crm", { auth: true });
    assert.equal(c.status, 200, show(c));
    assert.match(c.json.configuration_error, /hubspot\.fields\.score/);
    assert.deepEqual(c.json.destinations, []);
    const r = await bad.api.post("/v1/leads/events", { lead_id: "7001", events: [{ id: "bad-1", type: "page", ts: Date.now() - 1000, path: "/pricing" }] }, { auth: true });
    assert.equal(r.status, 200, show(r));
    await bad.receiver.waitFor((st) => st.events.find((e) => e.data?.lead_id === "7001"), { timeout: 60_000, what: "the webhook" });
    // A spike: a cold start, then the hot journey a few minutes later (SPIKE_POINTS 15 within 1 h).
    const cold = await bad.api.post("/v1/leads/events", { lead_id: "7002", events: [{ id: "spike-1", type: "page", ts: Date.now() - 300_000, path: "/" }] }, { auth: true });
    assert.equal(cold.status, 200, show(cold));
    const hot = journey("v-hot", { visitor: "spike-hot" }).filter((e) => e.type !== "identify").map(({ visitor_id, ...e }) => e);
    const h = await bad.api.post("/v1/leads/events", { lead_id: "7002", events: hot }, { auth: true });
    assert.equal(h.status, 200, show(h));
    assert.ok(h.json.score.ai_score >= cold.json.score.ai_score + 15, `${cold.json.score.ai_score} → ${h.json.score.ai_score}`);
    const spike = await bad.receiver.waitFor((st) => st.events.find((e) => e.type === "lead.score_spiked" && e.data?.lead_id === "7002"), { timeout: 60_000, what: "lead.score_spiked" });
    assert.equal(spike.data.previous_score, cold.json.score.ai_score);
    assert.equal(spike.data.ai_score, h.json.score.ai_score);
  } finally {
    await bad.stop();
  }
});
