// Unit tests of the webhook receiver (no worker needed): node --test tests/worker/receiver.test.mjs
import test from "node:test";
import assert from "node:assert/strict";
import crypto from "node:crypto";
import { startReceiver, sign, verify, decodeSecret, formatEvent } from "./receiver.mjs";

const REF = {
  secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
  id: "msg_p5jXN8AQM9LWM0D4loKWxJek",
  timestamp: "1614265330",
  body: '{"test": 2432232314}',
  signature: "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
};

test("Standard Webhooks reference vector", () => {
  assert.equal(sign(REF.secret, REF.id, REF.timestamp, REF.body), REF.signature);
  assert.equal(sign(REF.secret, REF.id, REF.timestamp, Buffer.from(REF.body)), REF.signature);
  const now = Number(REF.timestamp) * 1000;
  const h = { id: REF.id, timestamp: REF.timestamp, signature: REF.signature };
  assert.deepEqual(verify(REF.secret, h, REF.body, { now }), { ok: true });
  assert.deepEqual(verify(REF.secret, { ...h, signature: `v1,AAAA ${REF.signature}` }, REF.body, { now }), { ok: true });
  assert.equal(verify(REF.secret, { ...h, timestamp: "1614265331" }, REF.body, { now }).ok, false);
  assert.equal(verify(REF.secret, { ...h, id: "msg_x" }, REF.body, { now }).ok, false);
  assert.equal(verify(REF.secret, h, REF.body + " ", { now }).ok, false);
  assert.equal(verify(REF.secret, { ...h, signature: REF.signature.replace("v1,", "v2,") }, REF.body, { now }).ok, false);
  // 5 minutes of tolerance either way, not more.
  assert.equal(verify(REF.secret, h, REF.body, { now: now + 300_000 }).ok, true);
  assert.equal(verify(REF.secret, h, REF.body, { now: now + 301_000 }).reason, "timestamp outside tolerance");
  assert.equal(verify(REF.secret, h, REF.body, { now: now - 301_000 }).reason, "timestamp outside tolerance");
  assert.throws(() => decodeSecret("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"));
  assert.throws(() => decodeSecret("whsec_YWJj")); // 3 bytes
});

function freshSecret() {
  return `whsec_${crypto.randomBytes(32).toString("base64")}`;
}

async function post(url, body, headers) {
  const r = await fetch(url, { method: "POST", body, headers: { "content-type": "application/json", ...headers } });
  return { status: r.status, headers: r.headers, body: await r.json().catch(() => null) };
}

function signed(secret, id, payload, ts = Math.floor(Date.now() / 1000)) {
  const body = JSON.stringify(payload);
  return { body, headers: { "webhook-id": id, "webhook-timestamp": String(ts), "webhook-signature": sign(secret, id, ts, body) } };
}

const payload = (visitor, score, prev = null) => ({
  type: score >= 60 ? "lead.hot" : "lead.score_changed",
  timestamp: Date.now(),
  data: {
    lead_id: null,
    visitor_id: visitor,
    ai_score: score,
    tier: score >= 60 ? "hot" : score >= 32 ? "warm" : "cold",
    score_timestamp: Date.now(),
    model_version: "m",
    key_factors: [{ feature: "product_seconds", value: 120, impact: 0.8412 }],
    score_confidence: 0.5,
    previous_score: prev,
    previous_tier: null,
  },
});

test("receiver verifies, de-duplicates, fails on demand and reports", async () => {
  const secret = freshSecret();
  const lines = [];
  const r = await startReceiver({ port: 0, secret, log: (l) => lines.push(l) });
  try {
    const hook = r.webhookUrl;
    const a = signed(secret, "msg_000000000000000000000001", payload("v-1", 72, 41));
    let res = await post(hook, a.body, a.headers);
    assert.equal(res.status, 200);
    res = await post(hook, a.body, a.headers); // a redelivery of the same id
    assert.equal(res.status, 200);
    assert.equal(res.body.duplicate, true);

    // Bad signature, wrong secret, stale timestamp, missing headers: 401, not recorded as events.
    const bad = signed(secret, "msg_000000000000000000000002", payload("v-2", 40));
    res = await post(hook, bad.body.replace("40", "99"), bad.headers);
    assert.equal(res.status, 401);
    const other = signed(freshSecret(), "msg_000000000000000000000003", payload("v-3", 40));
    assert.equal((await post(hook, other.body, other.headers)).status, 401);
    const old = signed(secret, "msg_000000000000000000000004", payload("v-4", 40), Math.floor(Date.now() / 1000) - 600);
    assert.equal((await post(hook, old.body, old.headers)).status, 401);
    assert.equal((await post(hook, "{}", {})).status, 401);

    // Failure modes: the attempts are recorded with their ids, nothing is accepted.
    const c = signed(secret, "msg_000000000000000000000005", payload("v-5", 50));
    let m = await post(`${r.url}_mode`, JSON.stringify({ mode: "fail500" }));
    assert.equal(m.status, 200);
    assert.equal((await post(hook, c.body, c.headers)).status, 500);
    await post(`${r.url}_mode`, JSON.stringify({ mode: "fail503-retry-after", retry_after: 3 }));
    res = await post(hook, c.body, c.headers);
    assert.equal(res.status, 503);
    assert.equal(res.headers.get("retry-after"), "3");
    await post(`${r.url}_mode`, JSON.stringify({ mode: "hang" }));
    const ac = new AbortController();
    const hung = fetch(hook, { method: "POST", body: c.body, headers: c.headers, signal: ac.signal }).catch((e) => e);
    await r.waitFor((s) => s.attempts.filter((x) => x.id === "msg_000000000000000000000005").length === 3, { timeout: 5000 });
    const tooSlow = await Promise.race([hung, new Promise((ok) => setTimeout(() => ok("still hanging"), 300))]);
    assert.equal(tooSlow, "still hanging");
    ac.abort();
    const gaveUp = await r.waitFor((s) => s.attempts.find((x) => x.status === "hang" && x.closed_after_ms !== undefined), { timeout: 5000 });
    assert.ok(gaveUp.closed_after_ms >= 250, `closed_after_ms ${gaveUp.closed_after_ms}`);
    m = await post(`${r.url}_mode`, JSON.stringify({ mode: "nope" }));
    assert.equal(m.status, 400);
    await post(`${r.url}_mode`, JSON.stringify({ mode: "ok" }));
    assert.equal((await post(hook, c.body, c.headers)).status, 200);

    const s = await (await fetch(`${r.url}_events`)).json();
    assert.equal(s.mode, "ok");
    assert.deepEqual(s.events.map((e) => e.id), ["msg_000000000000000000000001", "msg_000000000000000000000005"]);
    assert.equal(s.events[0].data.visitor_id, "v-1");
    assert.equal(s.rejected, 4);
    assert.equal(s.duplicates, 1);
    assert.deepEqual(s.ids["msg_000000000000000000000001"], { attempts: 2, accepted: true, duplicates: 1, statuses: [200, 200] });
    assert.deepEqual(s.ids["msg_000000000000000000000005"].statuses, [500, 503, "hang", 200]);
    assert.equal(s.attempts.length, 6);
    assert.match(lines.find((l) => l.startsWith("✔")), /^✔ lead\.hot\s+v-1  score 72 \(was 41\) hot  top: product_seconds \+0\.84$/);

    assert.equal((await post(`${r.url}_reset`, "")).status, 200);
    const empty = r.events();
    assert.equal(empty.events.length + empty.attempts.length + empty.rejected, 0);
  } finally {
    await r.close();
  }
});

test("formatEvent", () => {
  const p = payload("v-123", 72, 41);
  p.data.lead_id = "lead@acme.com";
  p.data.key_factors = [1, 2, 3, 4].map((i) => ({ feature: `f${i}`, value: i, impact: i % 2 ? 0.5 : -0.25 }));
  assert.equal(formatEvent(p), "✔ lead.hot           v-123 (lead@acme.com)  score 72 (was 41) hot  top: f1 +0.50, f2 -0.25, f3 +0.50, …");
});
