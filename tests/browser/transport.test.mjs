// Transport: a dead endpoint loses nothing (the queue survives page loads and is sent when the
// endpoint is back), batches respect their limits, a refused batch is dropped, the queue is bounded.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { launch, madeEvents, recordEvents, schemaErrors, scoreOf, siteMissing, startReceiver, startStatic, until } from './helpers.mjs';

const skip = siteMissing();
let browser, site, rx;
const OPTIONS = { consent: 'granted', heartbeatMs: 500, flushMs: 250, retryBaseMs: 200, retryMaxMs: 800 };

before(async () => {
  if (skip) return;
  rx = await startReceiver();
  rx.retryAfter = '1';
  site = await startStatic({ endpoint: rx.origin, options: OPTIONS });
  browser = await launch();
});
after(async () => {
  await browser?.close();
  await site?.close();
  await rx?.close();
});

test('endpoint down (503, then unreachable) across page loads: every event arrives once it is back', { skip }, async () => {
  const context = await browser.newContext();
  await recordEvents(context);
  const page = await context.newPage();
  const warnings = [];
  page.on('console', (m) => m.type() === 'warning' && warnings.push(m.text()));

  rx.mode = '503';
  await page.goto(site.origin + '/');
  await scoreOf(page);
  await page.mouse.wheel(0, 1500);
  await page.waitForTimeout(1200);
  const failing = rx.requests.length;
  assert.ok(failing >= 1, 'the tracker tried (and got 503)');
  assert.equal(rx.accepted.length, 0);
  const q1 = await page.evaluate(() => JSON.parse(localStorage.getItem('ls_q') || '[]').length);
  assert.ok(q1 >= 3, `events wait in the persisted queue (${q1})`);

  await page.click('nav a[href="/products/"]');
  await page.waitForURL('**/products/');
  await scoreOf(page);
  rx.mode = 'down';
  await page.waitForTimeout(800);
  await page.click('nav a[href="/pricing/"]');
  await page.waitForURL('**/pricing/');
  await scoreOf(page);
  await page.click('#pricing-contact');
  await page.goto(site.origin + '/blog/lead-scoring-guide/');
  await scoreOf(page);
  await page.mouse.wheel(0, 3000);
  await page.waitForTimeout(900);
  assert.equal(rx.accepted.length, 0, 'nothing accepted while down');
  const queued = await page.evaluate(() => window.leadscore.info().queued);
  let made = await madeEvents(page);
  const pagesMade = made.filter((e) => e.type === 'page').length;
  assert.equal(pagesMade, 4);
  assert.ok(queued >= made.length - 2, `the queue holds (nearly) all ${made.length} events so far: ${queued}`);

  rx.mode = 'ok';
  await page.waitForFunction(() => window.leadscore.info().queued === 0, null, { timeout: 15000 });
  made = await madeEvents(page);
  const missing = made.filter((e) => !rx.ids.has(e.id));
  assert.deepEqual(missing, [], 'every event made arrived');
  const dups = [...rx.ids.values()].reduce((a, n) => a + n - 1, 0);
  const received = [...rx.ids.keys()];
  assert.ok(received.every((id) => made.some((e) => e.id === id)), 'nothing unexpected arrived');
  assert.ok(!warnings.some((w) => w.includes('dropped')), 'nothing dropped');
  console.log(`dead endpoint: ${made.length} events made, ${rx.ids.size} distinct received, ${dups} duplicate deliveries, ${failing} failed attempts in the 503 phase, ${rx.requests.length} requests in all`);
  await context.close();
});

test('batches: ≤ 100 events and ≤ 64 KB each; a 4xx batch is dropped; the queue is bounded', { skip }, async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  const warnings = [];
  page.on('console', (m) => m.type() === 'warning' && warnings.push(m.text()));
  rx.mode = 'down';
  await page.goto(site.origin + '/');
  await scoreOf(page);
  // 260 events of ~700 bytes each: several batches by count and by size.
  await page.evaluate(() => {
    for (let i = 0; i < 260; i++) window.leadscore.track('bulk', { i, pad: 'x'.repeat(500) });
  });
  await page.waitForFunction(() => window.leadscore.info().queued >= 260);
  const n0 = rx.accepted.length;
  rx.mode = 'ok';
  await page.waitForFunction(() => window.leadscore.info().queued === 0, null, { timeout: 15000 });
  const batches = rx.accepted.slice(n0);
  assert.ok(batches.length >= 3, `split into ${batches.length} requests`);
  for (const b of batches) {
    assert.ok(b.body.events.length <= 100, `${b.body.events.length} events`);
    assert.ok(b.bytes <= 64 * 1024, `${b.bytes} bytes`);
    assert.equal(b.contentType, 'text/plain');
  }
  const bulk = batches.flatMap((b) => b.body.events).filter((e) => e.name === 'bulk');
  assert.equal(new Set(bulk.map((e) => e.props.i)).size, 260, 'all 260 arrived');

  // 400 Bad Request: the batch can never succeed, so it is dropped with a warning.
  rx.mode = 400;
  await page.evaluate(() => window.leadscore.track('doomed'));
  await page.waitForFunction(() => window.leadscore.info().queued === 0, null, { timeout: 5000 });
  assert.ok(warnings.some((w) => /HTTP 400\); dropped/.test(w)), 'warned about the dropped batch');

  // Bound: 600 events while down → the 500 newest are kept, 100 dropped with a counted warning.
  rx.mode = 'down';
  await page.evaluate(() => {
    for (let i = 0; i < 600; i++) window.leadscore.track('flood', { i });
  });
  const info = await page.evaluate(() => window.leadscore.info());
  assert.equal(info.queued, 500);
  assert.ok(info.dropped >= 100);
  const kept = await page.evaluate(() => JSON.parse(localStorage.getItem('ls_q')).filter((e) => e.name === 'flood').map((e) => e.props.i));
  assert.equal(Math.max(...kept), 599, 'the newest is kept');
  assert.ok(!kept.includes(0), 'the oldest was dropped');
  assert.ok(warnings.some((w) => /dropped \d+ oldest/.test(w)));
  rx.mode = 'ok';
  await context.close();
});

test('map keys are measured in UTF-8 bytes, as the core measures them: 32 × "é" is kept, 33 × "é" dropped', { skip }, async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  rx.mode = 'ok';
  await page.goto(site.origin + '/');
  await scoreOf(page);
  const n0 = rx.accepted.length;
  const fits = 'é'.repeat(32); // 32 characters, 64 UTF-8 bytes: the limit
  const over = 'é'.repeat(33); // 33 characters (under 64 UTF-16 units), 66 bytes: over it
  await page.evaluate(([a, b]) => {
    window.leadscore.track('keys', { [a]: 1, [b]: 2 });
    window.leadscore.identify('keys@acme.example', { [a]: 'kept', [b]: 'dropped' });
    window.leadscore.flush();
  }, [fits, over]);
  const sent = await until(() => {
    const evs = rx.accepted.slice(n0).flatMap((q) => q.body.events);
    const t = evs.find((e) => e.name === 'keys');
    const i = evs.find((e) => e.type === 'identify');
    return t && i && { t, i };
  }, 10000, 'the track and identify events');
  assert.deepEqual(Object.keys(sent.t.props), [fits], 'track props keep the 64-byte key only');
  assert.deepEqual(Object.keys(sent.i.traits), [fits], 'identify traits keep the 64-byte key only');
  assert.ok(rx.accepted.slice(n0).every((q) => q.body.events.every((e) => schemaErrors(e).length === 0)), 'every event passes the schema');
  await context.close();
});
