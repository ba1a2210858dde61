// The demo site served by the worker, walked by headless Chromium, ends in a signed webhook.
//   node --test --test-concurrency=1 tests/worker/demo.test.mjs
//
// Assumes (the demo/tracker are written separately; selectors are by role/label/text):
// * the demo is built into target/www (make site) and served by the worker at /;
// * a consent banner with an "Accept" button (role button); accepting allows sending to the CRM;
// * nav links "Pricing", "Product", "Blog", and /demo/ has a form with the labels "Name", "Work email",
//   "Company", "Company size" (a select) and a "Request my demo" submit button;
// * the tracker posts batches to <origin>/v1/events (fetch or sendBeacon) and exposes
//   window.leadscore.flush() and window.leadscore.info().visitorId (used when present, not required).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import path from "node:path";
import { testStack, sleep, show, journey, batch } from "./lib.mjs";
import { ROOT } from "./receiver.mjs";
import { missingInputs } from "../browser/helpers.mjs";

const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";
const FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"];
const SITE = path.join(ROOT, "target", "www", "index.html");
const skip = missingInputs([
  [SITE, "run `make site`"],
  [CHROMIUM, "run `.ci/tools chromium`"],
]);

let S;
let browser;
const walked = new Set(); // visitors of earlier tests: their deliveries (retries, late scores) may still arrive
before(async () => {
  if (skip) return;
  S = await testStack("demo", { EMIT_DEBOUNCE_MS: "0" });
  const { chromium } = await import("playwright-core");
  browser = await chromium.launch({ executablePath: CHROMIUM, args: FLAGS, headless: true });
});
after(async () => {
  await browser?.close();
  await S?.stop();
});

test("a visitor walking the demo site (consent accepted) reaches the CRM as a signed webhook", { skip, timeout: 240_000 }, async (t) => {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await ctx.newPage();
  const posts = []; // /v1/events bodies and statuses seen by the browser
  const consoleErrors = [];
  page.on("console", (m) => m.type() === "error" && consoleErrors.push(m.text()));
  ctx.on("request", (r) => {
    if (new URL(r.url()).pathname === "/v1/events") {
      let body = null;
      try {
        body = JSON.parse(r.postData() ?? "null");
      } catch {
        /* not JSON */
      }
      posts.push({ body, status: null, req: r });
    }
  });
  ctx.on("response", (r) => {
    const p = posts.find((x) => x.req === r.request());
    if (p) p.status = r.status();
  });
  const visitorIds = () => new Set(posts.map((p) => p.body?.visitor_id).filter(Boolean));
  const flush = () => page.evaluate(() => window.leadscore?.flush?.()).catch(() => {});
  const dwell = async (ms) => {
    for (let y = 0; y < 6; y++) {
      await page.mouse.wheel(0, 600);
      await sleep(ms / 6);
    }
  };

  await page.goto(`${S.base}/`, { waitUntil: "load" });
  const accept = page.getByRole("button", { name: /^accept/i });
  await accept.waitFor({ state: "visible", timeout: 10_000 });
  await accept.click();
  await dwell(2500);

  await page.getByRole("link", { name: /^blog$/i }).first().click();
  await page.waitForURL(/\/blog\/lead-scoring-guide\/?$/);
  await dwell(4000);
  await page.getByRole("link", { name: /^product$/i }).first().click();
  await page.waitForURL(/\/products\/?$/);
  await dwell(4000);
  await page.getByRole("link", { name: /^pricing$/i }).first().click();
  await page.waitForURL(/\/pricing\/?$/);
  await dwell(4000);
  await flush();
  await page.goto(`${S.base}/demo/`, { waitUntil: "load" });
  await dwell(1500);
  const email = `demo-${Date.now()}@acme.example`;
  await page.getByLabel("Name", { exact: true }).fill("Ada Lovelace");
  await page.getByLabel(/work email/i).fill(email);
  await page.getByLabel("Company", { exact: true }).fill("Analytical Engines");
  await page.getByLabel(/company size/i).selectOption({ index: 3 });
  const request = page.getByRole("button", { name: /request my demo/i });
  await request.click();
  // The sent form gives way to the thank-you card (its `hidden` must beat form.card's display rule).
  await page.locator("#thanks").waitFor({ state: "visible", timeout: 10_000 });
  assert.equal(await page.locator("#demo-request").isVisible(), false, "the sent demo form is hidden");
  await sleep(1000);
  await flush();

  let delivered;
  try {
    delivered = await S.receiver.waitFor((s) => s.events.length > 0 && s.events, { timeout: 60_000, what: "a webhook from the browser visitor" });
  } finally {
    const label = (e) => (e.type === "page" || e.type === "page_end" ? `${e.type}(${e.path ?? (e.url ? new URL(e.url).pathname : "?")})` : e.type);
    const summary = posts.map((p) => `${p.status ?? "…"} ${p.body?.events?.length ?? "?"} events: ${(p.body?.events ?? []).map(label).join(",")}`);
    t.diagnostic(`/v1/events posts from the browser: ${summary.join(" | ") || "(none)"}`);
    if (consoleErrors.length) t.diagnostic(`browser console errors: ${consoleErrors.join(" | ")}`);
  }
  assert.ok(posts.length > 0, "the browser posted to /v1/events");
  assert.ok(posts.every((p) => p.status === null || p.status === 200), `every batch accepted: ${posts.map((p) => p.status).join(",")}`);
  const ids = visitorIds();
  assert.equal(ids.size, 1, `one visitor id across pages: ${[...ids].join(", ")}`);
  const [vid] = ids;
  walked.add(vid);
  const info = await page.evaluate(() => window.leadscore?.info?.() ?? null).catch(() => null);
  if (info?.visitorId) assert.equal(info.visitorId, vid);
  const ev = delivered.find((e) => e.data.visitor_id === vid);
  assert.ok(ev, `a webhook for ${vid}; got ${delivered.map((e) => e.data.visitor_id).join(", ")}`);
  assert.ok(["lead.hot", "lead.score_changed"].includes(ev.type));
  t.diagnostic(`delivered: ${ev.type} ${vid} score ${ev.data.ai_score} ${ev.data.tier} lead ${ev.data.lead_id}`);

  // The worker holds the visitor's score; the form's identify tied the email to it.
  const g = await S.api.get(`/v1/score/${encodeURIComponent(vid)}`, { auth: true });
  assert.equal(g.status, 200, show(g));
  // The form is a claim (not signed by a backend): the visitor carries the email, the lead is not made.
  let own;
  for (let i = 0; i < 20; i++) {
    own = await S.api.get(`/v1/score/${encodeURIComponent(vid)}?kind=visitor`, { auth: true });
    if (own.status === 200 && own.json.score.lead_id === email) break;
    await flush();
    await sleep(1000);
  }
  assert.equal(own.json.score.lead_id, email, `the form's email on the visitor: ${show(own)}`);
  const byLead = await S.api.get(`/v1/score/${encodeURIComponent(email)}?kind=lead`, { auth: true });
  assert.equal(byLead.status, 404, `an unverified form claim makes no lead: ${show(byLead)}`);
  const all = S.receiver.events().events.filter((e) => e.data.visitor_id === vid);
  t.diagnostic(`deliveries for the visitor: ${all.map((e) => `${e.type} ${e.data.ai_score} lead=${e.data.lead_id}`).join(" | ")}`);
  const talk = await page.goto(`${S.base}/pricing/`).then(() => page.getByText(/talk to sales/i).first().isVisible().catch(() => false));
  t.diagnostic(`"Talk to sales" bar visible for this visitor after the walk: ${talk} (browser score tier ${(await page.evaluate(() => window.leadscore?.score?.()?.tier ?? null).catch(() => null))})`);
  await ctx.close();
});

test("declining consent: scored in the browser, nothing reaches the CRM", { skip, timeout: 120_000 }, async (t) => {
  await S.receiver.reset();
  const ctx = await browser.newContext();
  const page = await ctx.newPage();
  let posted = 0;
  ctx.on("request", (r) => {
    if (new URL(r.url()).pathname === "/v1/events") posted++;
  });
  await page.goto(`${S.base}/`, { waitUntil: "load" });
  const decline = page.getByRole("button", { name: /^decline/i });
  await decline.waitFor({ state: "visible", timeout: 10_000 });
  await decline.click();
  for (const p of ["/products/", "/pricing/", "/demo/"]) {
    await page.goto(`${S.base}${p}`, { waitUntil: "load" });
    await page.mouse.wheel(0, 1200);
    await sleep(1500);
  }
  await page.evaluate(() => window.leadscore?.flush?.()).catch(() => {});
  const info = await page.evaluate(() => ({ vid: window.leadscore?.info?.()?.visitorId ?? null, queued: window.leadscore?.info?.()?.queued ?? null, score: window.leadscore?.score?.() ?? null }));
  if (info.queued !== null) assert.equal(info.queued, 0, "a declined tracker holds nothing to send later");
  // Sentinel: a consented hot visitor sent through the API after the walk must reach the receiver; whatever the declined
  // visitor had set going was under way before it, so once the sentinel has arrived, what has not come will not.
  const sentinel = `v-demo-sentinel-${Date.now()}`;
  walked.add(sentinel);
  const sent = await S.api.events(batch(sentinel, journey("v-hot", { visitor: sentinel })));
  assert.equal(sent.status, 200, show(sent));
  await S.receiver.waitFor((s) => s.events.some((e) => e.data?.visitor_id === sentinel), { timeout: 60_000, what: `sentinel ${sentinel}` });
  t.diagnostic(`declined visitor ${info.vid}: browser score ${info.score?.ai_score ?? null} ${info.score?.tier ?? null}; /v1/events posts ${posted}`);
  assert.equal(posted, 0, "nothing is posted to /v1/events after declining");
  assert.ok(info.score && Number.isInteger(info.score.ai_score), `the browser still scores the declined visitor: ${JSON.stringify(info.score)}`);
  // Only this visitor's attempts count: a visitor walked in an earlier test may still be delivered (retries, a late
  // score change) while this test runs.
  const s = S.receiver.events();
  const ours = s.attempts.filter((a) => !walked.has(a.visitor_id));
  assert.equal(ours.length, 0, `webhook attempts after declining: ${JSON.stringify(ours.map((a) => a.visitor_id))}`);
  if (info.vid) assert.ok(!s.events.some((e) => e.data.visitor_id === info.vid), "no delivery for the declined visitor");
  await ctx.close();
});

test("signing in through the demo backend is a verified identify: the lead follows this visitor", { skip, timeout: 180_000 }, async (t) => {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  // The page learns where its backend is (the stack picked a free port); the secret never reaches it.
  await ctx.addInitScript((url) => {
    window.ACME_BACKEND = url;
  }, S.backend.url);
  const page = await ctx.newPage();
  const pageText = [];
  page.on("response", async (r) => {
    if (r.url().startsWith(S.backend.url)) pageText.push(await r.text().catch(() => ""));
  });
  await page.goto(`${S.base}/pricing/`, { waitUntil: "load" });
  await page.getByRole("button", { name: /^accept/i }).click();
  await page.mouse.wheel(0, 1500);
  await sleep(1500);
  await page.goto(`${S.base}/demo/`, { waitUntil: "load" });
  const email = `signed-${Date.now()}@acme.example`;
  const form = page.locator("#sign-in");
  await form.getByLabel(/account email/i).fill(email);
  await form.getByLabel("Password", { exact: true }).fill("wrong");
  await form.getByRole("button", { name: /^sign in$/i }).click();
  await page.getByText(/password "demo"/i).waitFor({ timeout: 10_000 });
  await form.getByLabel("Password", { exact: true }).fill("demo");
  await form.getByRole("button", { name: /^sign in$/i }).click();
  await page.getByText(`Signed in as ${email}`).waitFor({ timeout: 10_000 });
  await page.screenshot({ path: path.join(ROOT, "target", "demo-signed-in.png") });
  const vid = await page.evaluate(() => window.leadscore.info().visitorId);
  walked.add(vid);
  assert.ok(!pageText.some((b) => b.includes(S.devVars.IDENTITY_SECRET)), "the backend never sends its secret to the page");
  assert.deepEqual(S.backend.logins().map((l) => l.lead_id), [email], "one successful sign-in");

  // The verified identify joins the lead: GET /v1/score/{lead}?kind=lead answers with this visitor.
  let byLead;
  for (let i = 0; i < 30; i++) {
    await page.evaluate(() => window.leadscore.flush());
    byLead = await S.api.get(`/v1/score/${encodeURIComponent(email)}?kind=lead`, { auth: true });
    if (byLead.status === 200) break;
    await sleep(500);
  }
  assert.equal(byLead.status, 200, `the signed-in lead is known: ${show(byLead)}`);
  assert.equal(byLead.json.kind, "lead");
  assert.equal(byLead.json.score.visitor_id, vid, show(byLead));
  const hook = await S.receiver.waitFor((s) => s.events.find((e) => e.data.lead_id === email), { timeout: 60_000, what: `a webhook for ${email}` });
  assert.equal(hook.data.verified, true, `the CRM is told the identify was verified: ${JSON.stringify(hook.data)}`);
  assert.equal(hook.data.visitor_id, vid);
  t.diagnostic(`signed in ${email}: ${hook.type} score ${hook.data.ai_score} ${hook.data.tier}, verified ${hook.data.verified}`);
  // The backend signed the company too: the lead is in its account's buying group.
  const domain = email.split("@")[1];
  let acct;
  for (let i = 0; i < 30; i++) {
    acct = await S.api.get(`/v1/score/${encodeURIComponent(domain)}?kind=account`, { auth: true });
    if (acct.status === 200 && acct.json.score.top_members.some((m) => m.id === email)) break;
    await sleep(500);
  }
  assert.equal(acct.status, 200, show(acct));
  assert.ok(acct.json.score.top_members.some((m) => m.id === email), `the lead is a member of ${domain}: ${show(acct)}`);
  // The panel shows fit and engagement; the B2B touches are named events the tracker sends.
  await page.goto(`${S.base}/products/`, { waitUntil: "load" });
  await page.getByRole("button", { name: /webinar/i }).click();
  await page.getByText(/registered for the webinar/i).waitFor({ timeout: 10_000 });
  await page.locator('[data-k="split"]').filter({ hasText: /fit \d+ · engagement \d+/ }).waitFor({ timeout: 20_000 });
  // … and the company's account, which the backend reads for the signed-in lead (the page never holds
  // the API token; a wrong view token is refused).
  await page.locator('[data-k="account"]').filter({ hasText: new RegExp(`account ${domain.replace(/\./g, "\\.")} · \\d+ \\w+ · \\d+ of \\d+ engaged`) }).waitFor({ timeout: 20_000 });
  const forged = await fetch(`${S.backend.url}/account?id=${encodeURIComponent("other.example")}&token=${"0".repeat(64)}`);
  assert.equal(forged.status, 403, "another company's account is not readable");
  await page.screenshot({ path: path.join(ROOT, "target", "demo-b2b-panel.png") });
  await ctx.close();
});
