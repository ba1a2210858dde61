// Privacy: without consent, after a refusal, and under Global Privacy Control, not one request
// leaves for the endpoint (or anywhere but the site) — while the page is still scored on the device.
// A withdrawal clears the queue and stops sending.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { launch, scoreOf, siteMissing, startReceiver, startStatic, watchForeign } from './helpers.mjs';

const skip = siteMissing();
let browser, site, rx;

before(async () => {
  if (skip) return;
  rx = await startReceiver();
  site = await startStatic({ endpoint: rx.origin, options: { heartbeatMs: 500, flushMs: 200 } });
  browser = await launch();
});
after(async () => {
  await browser?.close();
  await site?.close();
  await rx?.close();
});

/** Home → pricing (CTA) → demo (form start + submit): every kind of event, then leave. */
async function walk(context, onHome) {
  const page = await context.newPage();
  await page.goto(site.origin + '/');
  await scoreOf(page);
  if (onHome) await onHome(page);
  await page.mouse.wheel(0, 2000);
  await page.goto(site.origin + '/pricing/');
  await page.waitForFunction(() => window.leadscore.score?.()?.tier === 'hot');
  await page.click('#pricing-contact');
  await page.waitForTimeout(600); // > heartbeatMs: an engaged event too
  await page.goto(site.origin + '/demo/');
  await scoreOf(page);
  await page.fill('input[name=email]', 'private@example.com');
  await page.click('button[type=submit]');
  await page.waitForTimeout(300); // > flushMs
  const info = await page.evaluate(() => window.leadscore.info());
  const score = await page.evaluate(() => window.leadscore.score());
  await page.goto('about:blank'); // pagehide: the beacon path
  await page.waitForTimeout(300);
  return { info, score, page };
}

test('no consent decision: scored on the device, zero requests', { skip }, async () => {
  const before = rx.requests.length;
  const context = await browser.newContext();
  const foreign = watchForeign(context, site.origin);
  const { info, score } = await walk(context);
  assert.equal(score.tier, 'hot', 'the device still scores');
  assert.equal(info.sending, false);
  assert.equal(info.queued, 0, 'nothing queued without consent');
  assert.deepEqual(foreign, [], 'no request to anything but the site');
  assert.equal(rx.requests.length, before, 'the endpoint saw nothing');
  await context.close();
});

test('consent declined in the banner: zero requests', { skip }, async () => {
  const before = rx.requests.length;
  const context = await browser.newContext();
  const foreign = watchForeign(context, site.origin);
  const { info, page } = await walk(context, (p) => p.click('#consent-decline'));
  assert.equal(info.consent.analytics, false);
  assert.deepEqual(foreign, []);
  assert.equal(rx.requests.length, before);
  // The choice persists: the banner does not come back.
  await page.goto(site.origin + '/');
  assert.equal(await page.locator('#consent-banner').isVisible(), false);
  await context.close();
});

test('Global Privacy Control: zero requests even after Accept', { skip }, async () => {
  const before = rx.requests.length;
  const context = await browser.newContext();
  await context.addInitScript(() => Object.defineProperty(navigator, 'globalPrivacyControl', { get: () => true }));
  const foreign = watchForeign(context, site.origin);
  const { info, score } = await walk(context, (p) => p.click('#consent-accept'));
  assert.equal(info.gpc, true);
  assert.equal(info.consent.analytics, true, 'consent was given…');
  assert.equal(info.sending, false, '…but GPC wins');
  assert.equal(score.tier, 'hot');
  assert.deepEqual(foreign, []);
  assert.equal(rx.requests.length, before);
  await context.close();
});

test('withdrawing consent clears the queue and stops sending', { skip }, async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(site.origin + '/');
  await scoreOf(page);
  rx.mode = 'down'; // keep events queued
  await page.click('#consent-accept');
  await page.evaluate(() => {
    for (let i = 0; i < 5; i++) window.leadscore.track('queued_' + i);
  });
  await page.waitForFunction(() => window.leadscore.info().queued >= 5);
  await page.evaluate(() => window.leadscore.consent({ analytics: false }));
  const info = await page.evaluate(() => window.leadscore.info());
  assert.equal(info.queued, 0, 'queue cleared');
  assert.equal(await page.evaluate(() => localStorage.getItem('ls_q')), null);
  assert.equal(await page.evaluate(() => /ls_vid=/.test(document.cookie)), false, 'cookie removed');
  rx.mode = 'ok';
  const n = rx.requests.length;
  await page.evaluate(() => window.leadscore.track('after_withdrawal'));
  await page.waitForTimeout(1500);
  assert.equal(rx.requests.length, n, 'nothing sent after the withdrawal');
  await context.close();
});
