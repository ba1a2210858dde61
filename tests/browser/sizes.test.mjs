// Size budgets of the issue: loader ≤ 1 KB and tracker ≤ 10 KB, gzipped (level 9) and minified, and
// the wasm module with the default model ≤ 1 MB gzipped. The tracker's budget covers its scoring
// engine (score-worker.js) too: both are the snippet's JS.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { WWW, siteMissing } from './helpers.mjs';

const gz = (f) => gzipSync(readFileSync(join(WWW, 'ls', f)), { level: 9 }).length;

test('snippet ≤ 1 KB and tracker ≤ 10 KB gzipped', { skip: siteMissing() }, () => {
  assert.ok(gz('snippet.min.js') <= 1024, `snippet.min.js: ${gz('snippet.min.js')} B gzip`);
  const tracker = gz('tracker.js') + gz('score-worker.js');
  assert.ok(tracker <= 10240, `tracker.js + score-worker.js: ${tracker} B gzip`);
  // The served pages carry the real minified loader, not the source.
  const html = readFileSync(join(WWW, 'pricing', 'index.html'), 'utf8');
  assert.ok(html.includes(readFileSync(join(WWW, 'ls', 'snippet.min.js'), 'utf8').trim()));
  assert.ok(!html.includes('/*leadscore:snippet*/'));
});

test('the wasm module with the embedded default model ≤ 1 MB gzipped', { skip: siteMissing() }, () => {
  const wasm = gz('leadscore_bg.wasm') + gz('leadscore.js');
  assert.ok(wasm <= 1024 * 1024, `leadscore_bg.wasm + leadscore.js: ${wasm} B gzip`);
});
