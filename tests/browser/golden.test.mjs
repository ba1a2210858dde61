// The same events give the same score in Chromium (wasm LeadScorer) as the native CLI gave:
// tests/fixtures/browser_golden.json (made by make_golden.mjs). Also times apply+score per event.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, artifacts, launch, missingInputs, siteMissing, startStatic } from './helpers.mjs';
import { GOLDEN, goldenText, newerThan } from './make_golden.mjs';

const skip = siteMissing();
const CLI = join(ROOT, process.env.LEADSCORE_BIN || 'target/debug/leadscore');
const noCli = missingInputs([[CLI, 'build the CLI (cargo build --bin leadscore)']]);

// The snapshot is made by the native CLI: it must be what the CLI makes from these sources now.
test('tests/fixtures/browser_golden.json is what the CLI makes now', { skip: noCli }, () => {
  const newer = newerThan(CLI);
  assert.deepEqual(newer, [], `the CLI binary is older than its sources: rebuild it (cargo build --bin leadscore)`);
  assert.ok(readFileSync(GOLDEN, 'utf8') === goldenText(CLI), 'stale golden file: run `node tests/browser/make_golden.mjs` and commit it');
});
const golden = JSON.parse(readFileSync(join(ROOT, 'tests/fixtures/browser_golden.json'), 'utf8'));
let browser, site;

before(async () => {
  if (skip) return;
  site = await startStatic({ pages: { '/golden.html': '<!doctype html><title>golden</title>' } });
  browser = await launch();
});
after(async () => {
  await browser?.close();
  await site?.close();
});

/** Replays the golden lines in the page; returns per-line outcomes, per-event and final scores. */
async function replay(page) {
  return page.evaluate(async (g) => {
    const m = await import('/ls/leadscore.js');
    await m.default();
    const scorers = new Map();
    const outcomes = [];
    const each = [];
    let eachIdx = 0;
    const lastTs = new Map();
    for (const line of g.events) {
      let vid = null;
      let ts = Date.now();
      try {
        const o = JSON.parse(line);
        vid = o.visitor_id;
        if (typeof o.ts === 'number') ts = o.ts;
      } catch {}
      if (typeof vid !== 'string') {
        outcomes.push('unparsed');
        continue;
      }
      if (!scorers.has(vid)) scorers.set(vid, new m.LeadScorer(vid, undefined, undefined));
      const s = scorers.get(vid);
      try {
        // now = the event's own time: no clamping, as the CLI (which has no receive time).
        outcomes.push(s.apply(line, ts));
      } catch (e) {
        outcomes.push('error:' + e.code);
        continue;
      }
      const want = g.each[eachIdx++];
      each.push(want && want.visitor_id === vid ? s.score(want.score_timestamp) : { missing: true, vid });
      lastTs.set(vid, want ? want.score_timestamp : 0);
    }
    const final = g.final.map((w) => scorers.get(w.visitor_id).score(w.score_timestamp));
    // Timing: apply + score for every event of a fresh visitor, many times over.
    const lines = g.events.filter((l) => l.includes('"v-hot"'));
    const c0 = performance.now();
    const s = new m.LeadScorer('bench', undefined, undefined);
    const constructMs = performance.now() - c0;
    const parsed = lines.map((l) => [l, JSON.parse(l).ts]);
    let n = 0;
    let applyMs = 0;
    let scoreMs = 0;
    for (let r = 0; r < 25; r++) {
      s.reset();
      for (const [l, ts] of parsed) {
        const t0 = performance.now();
        s.apply(l, ts);
        const t1 = performance.now();
        s.score(ts);
        applyMs += t1 - t0;
        scoreMs += performance.now() - t1;
        n++;
      }
    }
    s.free();
    return { outcomes, each, final, applyUs: (applyMs * 1000) / n, scoreUs: (scoreMs * 1000) / n, n, constructMs };
  }, golden);
}

const same = (got, want, where) => {
  assert.equal(got.visitor_id, want.visitor_id, `${where}: visitor_id`);
  assert.equal(got.lead_id, want.lead_id, `${where}: lead_id`);
  assert.equal(got.ai_score, want.ai_score, `${where}: ai_score`);
  assert.equal(got.tier, want.tier, `${where}: tier`);
  assert.ok(Math.abs(got.probability - want.probability) <= 1e-9, `${where}: probability ${got.probability} vs ${want.probability}`);
  assert.ok(Math.abs(got.raw_probability - want.raw_probability) <= 1e-9, `${where}: raw_probability`);
  assert.equal(got.score_confidence, want.score_confidence, `${where}: score_confidence`);
  assert.equal(got.model_version, want.model_version, `${where}: model_version`);
  assert.equal(got.score_timestamp, want.score_timestamp, `${where}: score_timestamp`);
  // Feature values are f32: the CLI prints them shortest-f32 (8.3), the wasm API widens them to f64
  // (8.300000190734863). Same number at f32 precision.
  assert.deepEqual(
    got.key_factors.map((f) => [f.feature, Math.fround(f.value)]),
    want.key_factors.map((f) => [f.feature, Math.fround(f.value)]),
    `${where}: key factor features/values`,
  );
  got.key_factors.forEach((f, i) =>
    assert.ok(Math.abs(f.impact - want.key_factors[i].impact) <= 1e-9, `${where}: impact of ${f.feature}: ${f.impact} vs ${want.key_factors[i].impact}`),
  );
};

test('wasm in Chromium scores the golden events exactly as the native CLI', { skip }, async () => {
  const page = await browser.newPage();
  await page.goto(site.origin + '/golden.html');
  const r = await replay(page);
  await page.close();

  // Timing first, so it is recorded even when the comparison fails.
  const dir = await artifacts();
  const file = join(dir, 'browser-metrics.json');
  let m = {};
  try {
    m = JSON.parse(readFileSync(file, 'utf8'));
  } catch {}
  m.apply_us_per_event = +r.applyUs.toFixed(1);
  m.score_us_per_call = +r.scoreUs.toFixed(1);
  m.apply_and_score_events_timed = r.n;
  m.leadscorer_construct_ms_warm = +r.constructMs.toFixed(1);
  writeFileSync(file, JSON.stringify(m, null, 2) + '\n');

  // The CLI skipped one malformed line and counted one duplicate; the browser must agree.
  assert.equal(r.outcomes.filter((o) => o.startsWith('error:')).length, 1, `outcomes: ${r.outcomes}`);
  assert.ok(r.outcomes.includes('error:invalid_field'), `outcomes: ${r.outcomes}`);
  assert.equal(r.outcomes.filter((o) => o === 'duplicate').length, 1);
  assert.equal(r.each.length, golden.each.length, 'one score per parsed event, as the CLI --each');
  r.each.forEach((s, i) => same(s, golden.each[i], `event #${i + 1} (${golden.each[i].visitor_id})`));
  assert.equal(r.final.length, golden.final.length);
  assert.ok(golden.final.some((s) => s.tier === 'hot') && golden.final.some((s) => s.tier === 'cold'), 'golden covers hot and cold');
  r.final.forEach((s, i) => same(s, golden.final[i], `final ${golden.final[i].visitor_id}`));

});
