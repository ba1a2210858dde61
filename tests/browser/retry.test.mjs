// The tracker's retry policy (www/tracker/retry.js) on the Retry-After cases the webhook consumer is
// tested on too (tests/fixtures/retry_after.json, src/webhook.rs): one rule, two languages.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from './helpers.mjs';
import { backoffMs, retryAfterSeconds, retryWaitMs, MAX_RETRY_AFTER_MS } from '../../www/tracker/retry.js';

const { now_ms: now, cases } = JSON.parse(readFileSync(join(ROOT, 'tests', 'fixtures', 'retry_after.json'), 'utf8'));

test('Retry-After: the shared cases', () => {
  assert.ok(cases.length >= 20);
  for (const c of cases) assert.equal(retryAfterSeconds(c.value, now), c.seconds, `Retry-After ${JSON.stringify(c.value)}`);
});

test('backoff: exponential, capped, equal jitter (never below half the step)', () => {
  assert.equal(backoffMs(1, 1000, 60000, 0), 500);
  assert.equal(backoffMs(1, 1000, 60000, 0.999999), 999.9995);
  assert.equal(backoffMs(3, 1000, 60000, 0), 2000);
  assert.equal(backoffMs(20, 1000, 60000, 0), 30000, 'capped at maxMs');
  for (let a = 1; a < 12; a++) {
    const step = Math.min(60000, 1000 * 2 ** (a - 1));
    for (const u of [0, 0.25, 0.5, 0.99]) {
      const w = backoffMs(a, 1000, 60000, u);
      assert.ok(w >= step / 2 && w < step, `attempt ${a}, unit ${u}: ${w} in [${step / 2}, ${step})`);
    }
  }
});

test('the wait honours a longer Retry-After, up to an hour, and ignores what it cannot read', () => {
  assert.equal(retryWaitMs(1, 1000, 60000, 0, '10', now), 10000);
  assert.equal(retryWaitMs(5, 1000, 60000, 0, '1', now), 8000, 'a shorter Retry-After does not shorten the backoff');
  assert.equal(retryWaitMs(1, 1000, 60000, 0, '86400', now), MAX_RETRY_AFTER_MS);
  assert.equal(retryWaitMs(1, 1000, 60000, 0, 'Wed, 21 Oct 2015 07:29:00 GMT', now), 60000);
  assert.equal(retryWaitMs(1, 1000, 60000, 0, 'garbage', now), 500);
  assert.equal(retryWaitMs(1, 1000, 60000, 0, null, now), 500);
});
