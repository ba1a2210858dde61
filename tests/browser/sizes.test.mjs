// Size budgets of the issue: loader ≤ 1 KB and tracker ≤ 10 KB, gzipped (level 9) and minified.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { WWW, siteMissing } from './helpers.mjs';

const gz = (f) => gzipSync(readFileSync(join(WWW, 'ls', f)), { level: 9 }).length;

test('snippet ≤ 1 KB and tracker ≤ 10 KB gzipped', { skip: siteMissing() }, () => {
  assert.ok(gz('snippet.min.js') <= 1024, `snippet.min.js: ${gz('snippet.min.js')} B gzip`);
  assert.ok(gz('tracker.js') <= 10240, `tracker.js: ${gz('tracker.js')} B gzip`);
  // The served pages carry the real minified loader, not the source.
  const html = readFileSync(join(WWW, 'pricing', 'index.html'), 'utf8');
  assert.ok(html.includes(readFileSync(join(WWW, 'ls', 'snippet.min.js'), 'utf8').trim()));
  assert.ok(!html.includes('/*leadscore:snippet*/'));
});
