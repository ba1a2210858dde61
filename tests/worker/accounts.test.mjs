// Accounts and buying groups end to end: three contacts of one company engaging roll up into the
// account's score (1 − Π(1 − p) over the engaged members), sent as signed account.hot /
// account.score_changed webhooks naming the members that moved it; a page's claim of a company
// (no or a wrong account_signature) is refused and moves nothing; GET /v1/score/{id}?kind=account.
//   node --test --test-concurrency=1 tests/worker/accounts.test.mjs
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import crypto from "node:crypto";
import { testStack, journey, batch, show, checkError, signLead } from "./lib.mjs";

const RUN = crypto.randomBytes(3).toString("hex");
let S;

before(async () => {
  S = await testStack("accounts", { EMIT_DEBOUNCE_MS: "0" });
});
after(async () => {
  await S?.stop();
});

const accountEvents = (account, s = S.receiver.events()) => s.events.filter((e) => e.data?.account_id === account);
const accountScore = (id) => S.api.get(`/v1/score/${encodeURIComponent(id)}?kind=account`, { auth: true });

/** A fixture journey as the CRM sends it for `lead`, opening with a group event for `account`. */
function contactEvents(name, lead, account) {
  const evs = journey(name, { visitor: `c-${lead}` }).filter((e) => e.type !== "identify").map(({ visitor_id, ...e }) => e);
  return [{ id: `${lead}-group`, type: "group", ts: evs[0].ts - 1000, account_id: account, traits: { industry: "logistics", employees: 450 } }, ...evs];
}

test("three contacts of one company engaging: the account's score rolls them up and its webhooks name them", async () => {
  const account = `acme-${RUN}`;
  const leads = ["ana", "ben", "cy"].map((n) => `${n}-${RUN}@acme.example`);
  const journeys = ["v-warm", "v-cold", "v-hot"];
  const probs = [];
  for (const [i, lead] of leads.entries()) {
    const r = await S.api.post("/v1/leads/events", { lead_id: lead, events: contactEvents(journeys[i], lead, account) }, { auth: true });
    assert.equal(r.status, 200, show(r));
    probs.push(r.json.score.probability);
  }
  const g = await accountScore(account);
  assert.equal(g.status, 200, show(g));
  assert.equal(g.json.kind, "account");
  const s = g.json.score;
  assert.equal(s.account_id, account);
  assert.deepEqual([s.members, s.engaged_members], [3, 3]);
  const want = 1 - probs.reduce((a, p) => a * (1 - p), 1);
  assert.ok(Math.abs(s.probability - want) < 1e-12, `noisy-or ${s.probability} vs ${want}`);
  assert.deepEqual(new Set(s.top_members.map((m) => m.id)), new Set(leads));
  // Signed webhooks: the first says which member made the account's first score, and every one names
  // the members whose score changed since the account's previous webhook.
  // The hot contact, last, moves the account most: wait for the webhook that names it.
  const namesLast = (st) => accountEvents(account, st).some((e) => e.data.moved_by.includes(leads[2]));
  const evs = await S.receiver.waitFor((st) => namesLast(st) && accountEvents(account, st), { timeout: 60_000, what: `account webhook naming ${leads[2]}` });
  const first = evs[0];
  assert.match(first.type, /^account\.(hot|score_changed)$/);
  assert.deepEqual(first.data.moved_by, [leads[0]]);
  assert.equal(first.data.previous_score, null);
  const named = new Set(evs.flatMap((e) => e.data.moved_by));
  assert.ok(named.size >= 2, `the members that moved the account are named: ${[...named]}`);
  const last = evs[evs.length - 1];
  assert.ok(last.data.ai_score <= s.ai_score, "webhooks follow the account score");
  if (s.tier === "hot") assert.ok(evs.some((e) => e.type === "account.hot"), "entering hot is its own event");
});

test("a page's claim of a company moves nothing: a group needs the backend's account signature", async () => {
  const account = `rival-${RUN}`;
  const v = `v-claim-${RUN}`;
  const base = journey("v-hot", { visitor: v }).filter((e) => e.type !== "identify");
  const t = base[base.length - 1].ts;
  const unsigned = { id: `${v}-g1`, type: "group", ts: t, visitor_id: v, account_id: account };
  const forged = { ...unsigned, id: `${v}-g2`, account_signature: "0".repeat(64) };
  const leadSig = { ...unsigned, id: `${v}-g3`, account_signature: signLead(S.devVars.IDENTITY_SECRET, account) };
  const r = await S.api.events(batch(v, [...base, unsigned, forged, leadSig]));
  assert.equal(r.status, 200, show(r));
  assert.deepEqual(r.json.rejected.map((x) => [x.index, x.code]), [[base.length, "invalid_signature"], [base.length + 1, "invalid_signature"], [base.length + 2, "invalid_signature"]],
    "no signature, a wrong one, and a lead's signature of the bare id (not `account:<id>`) are all refused");
  assert.match(r.json.rejected[0].message, /account_signature/);
  checkError(assert, await accountScore(account), 404, "not_found");
  // Signed by the backend: the visitor joins and the account is scored.
  const good = { ...unsigned, id: `${v}-g4`, account_signature: signLead(S.devVars.IDENTITY_SECRET, `account:${account}`) };
  const ok = await S.api.events(batch(v, [good, { id: `${v}-p`, type: "page", ts: t + 1000, visitor_id: v, path: "/pricing/" }]));
  assert.equal(ok.status, 200, show(ok));
  assert.equal(ok.json.rejected.length, 0);
  const g = await accountScore(account);
  assert.equal(g.status, 200, show(g));
  assert.deepEqual(g.json.score.top_members.map((m) => m.id), [v]);
  checkError(assert, await S.api.get(`/v1/score/x?kind=company`, { auth: true }), 400, "invalid_field");
});
