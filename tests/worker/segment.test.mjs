// A Segment / RudderStack stream end to end (POST /v1/segment): Segment's documented Spec examples,
// signed as Segment's Webhooks (Actions) destination signs them (X-Signature: hex HMAC-SHA1 of the body),
// or with a bearer token as RudderStack's webhook destination can; a batch with a bad item; de-duplication
// by messageId; a message with only userId scores the lead.
//   node --test --test-concurrency=1 tests/worker/segment.test.mjs
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import crypto from "node:crypto";
import { testStack, show, checkError } from "./lib.mjs";

const RUN = crypto.randomBytes(3).toString("hex");
let S;

before(async () => {
  S = await testStack("segment", { EMIT_DEBOUNCE_MS: "0" });
});
after(async () => {
  await S?.stop();
});

const iso = (ms) => new Date(ms).toISOString();
function signed(body, secret = S.devVars.SEGMENT_SHARED_SECRET) {
  const raw = JSON.stringify(body);
  const sig = crypto.createHmac("sha1", secret).update(raw).digest("hex");
  return S.api.request("POST", "/v1/segment", { raw, headers: { "content-type": "application/json", "x-signature": sig } });
}

/** Segment's spec examples (segment.com/docs/connections/spec: page, track, identify), ids made fresh. */
function specExamples(anon, user, t0) {
  const ctx = { ip: "8.8.8.8", userAgent: "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_9_5) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/40.0.2214.115 Safari/537.36" };
  return [
    { anonymousId: anon, channel: "browser", context: { ...ctx, page: { path: "/pricing", referrer: "https://www.google.com/", url: "https://acme.example/pricing" } },
      integrations: { All: true }, messageId: `${anon}-p1`, name: "Pricing", properties: { title: "Pricing | Acme" },
      receivedAt: iso(t0 + 30), sentAt: iso(t0 + 10), timestamp: iso(t0), type: "page", version: "1.1" },
    { anonymousId: anon, context: ctx, event: "Webinar Attended", integrations: {}, messageId: `${anon}-t1`,
      properties: { title: "Intro to lead scoring", minutes: 42, tags: ["b2b"] }, timestamp: iso(t0 + 60_000), type: "track", userId: user },
    { anonymousId: anon, channel: "browser", context: ctx, messageId: `${anon}-i1`, timestamp: iso(t0 + 120_000), type: "identify", userId: user,
      traits: { name: "Peter Gibbons", email: "peter@example.com", plan: "premium", logins: 5,
                address: { street: "6th St", city: "San Francisco", state: "CA", postalCode: "94103", country: "USA" } } },
  ];
}

test("Segment's spec examples, signed: scored per anonymousId, the identify proves its lead, a replay counts once", async () => {
  const anon = `seg-${RUN}`;
  const user = `user-${RUN}@acme.example`;
  const msgs = specExamples(anon, user, Date.now() - 300_000);
  const r = await signed({ batch: msgs });
  assert.equal(r.status, 200, show(r));
  assert.deepEqual(
    { accepted: r.json.accepted, visitors: r.json.visitors, leads: r.json.leads, dropped: r.json.dropped_properties, rejected: r.json.rejected.length },
    { accepted: 3, visitors: 1, leads: 0, dropped: 2, rejected: 0 },
    "the nested address and the tags array are left out and counted",
  );
  const v = await S.api.get(`/v1/score/${encodeURIComponent(anon)}?kind=visitor`, { auth: true });
  assert.equal(v.status, 200, show(v));
  assert.equal(v.json.score.lead_id, user);
  const l = await S.api.get(`/v1/score/${encodeURIComponent(user)}?kind=lead`, { auth: true });
  assert.equal(l.status, 200, `the identify from an authenticated source makes the lead: ${show(l)}`);
  assert.equal(l.json.score.visitor_id, anon);
  // Segment retries deliver the same messageIds: nothing counts twice.
  const again = await signed(msgs);
  assert.equal(again.status, 200, show(again));
  assert.equal(again.json.accepted, 0);
  assert.equal(again.json.duplicates, 3);
});

test("a batch with bad items: the good ones count, each bad one is named by index", async () => {
  const anon = `seg-bad-${RUN}`;
  const t = Date.now() - 60_000;
  const r = await S.api.post("/v1/segment", [
    { type: "track", event: "Demo Requested", messageId: `${anon}-ok`, anonymousId: anon, timestamp: iso(t) },
    { type: "screen", name: "Home", messageId: `${anon}-g`, anonymousId: anon, timestamp: iso(t) },
    { type: "track", messageId: `${anon}-noevent`, anonymousId: anon, timestamp: iso(t) },
    { type: "track", event: "x", anonymousId: anon, timestamp: iso(t) },
    { type: "track", event: "x", messageId: `${anon}-ts`, anonymousId: anon, timestamp: "yesterday" },
    { type: "track", event: "x", messageId: `${anon}-lead`, anonymousId: `lead:${anon}`, timestamp: iso(t) },
  ], { auth: true });
  assert.equal(r.status, 200, show(r));
  assert.equal(r.json.accepted, 1);
  assert.deepEqual(r.json.rejected.map((x) => x.index), [1, 2, 3, 4, 5]);
  assert.match(r.json.rejected[0].message, /screen/);
  assert.match(r.json.rejected[1].message, /event/);
  assert.match(r.json.rejected[2].message, /messageId/);
  assert.match(r.json.rejected[3].message, /ISO 8601/);
  assert.match(r.json.rejected[4].message, /reserved/);
});

test("a group message joins its account (an authenticated source proves it)", async () => {
  const anon = `seg-group-${RUN}`;
  const t = Date.now() - 60_000;
  const group = `initech-${RUN}`;
  const r = await S.api.post("/v1/segment", { batch: [
    { type: "page", messageId: `${anon}-p`, anonymousId: anon, timestamp: iso(t), context: { page: { url: "https://acme.example/pricing" } } },
    { type: "group", groupId: group, messageId: `${anon}-g`, anonymousId: anon, timestamp: iso(t + 1000),
      traits: { name: "Initech", industry: "Technology", employees: 329, plan: "enterprise", "total billed": 830 } },
  ] }, { auth: true });
  assert.equal(r.status, 200, show(r));
  assert.equal(r.json.accepted, 2);
  const a = await S.api.get(`/v1/score/${encodeURIComponent(group)}?kind=account`, { auth: true });
  assert.equal(a.status, 200, show(a));
  assert.deepEqual(a.json.score.top_members.map((m) => m.id), [anon]);
});

test("a message with only userId scores the lead (its own stream)", async () => {
  const user = `crm-user-${RUN}`;
  const t = Date.now() - 60_000;
  const r = await S.api.post("/v1/segment", { type: "track", event: "Meeting Held", messageId: `${user}-m`, userId: user, timestamp: iso(t), properties: { outcome: "held" } }, { auth: true });
  assert.equal(r.status, 200, show(r));
  assert.deepEqual([r.json.accepted, r.json.leads, r.json.visitors], [2, 1, 0], "the event and the stream's opening identify");
  const l = await S.api.get(`/v1/score/${encodeURIComponent(user)}?kind=lead`, { auth: true });
  assert.equal(l.status, 200, show(l));
  assert.equal(l.json.score.visitor_id, `lead:${user}`);
});

test("authentication: a wrong signature or no credentials is refused, and nothing is applied", async () => {
  const anon = `seg-auth-${RUN}`;
  const msg = { type: "track", event: "x", messageId: `${anon}-1`, anonymousId: anon, timestamp: iso(Date.now()) };
  checkError(assert, await signed(msg, "not-the-secret"), 401, "invalid_signature");
  checkError(assert, await S.api.post("/v1/segment", msg), 401, "unauthorized");
  checkError(assert, await S.api.post("/v1/segment", { batch: [] }, { auth: true }), 400, "invalid_event");
  const garbage = await S.api.request("POST", "/v1/segment", { raw: "not json", auth: true, headers: { "content-type": "application/json" } });
  checkError(assert, garbage, 400, "invalid_json");
  const v = await S.api.get(`/v1/score/${encodeURIComponent(anon)}?kind=visitor`, { auth: true });
  checkError(assert, v, 404, "not_found");
});
