// Tracker load → first score on the demo home page, over several first visits (fresh browser
// context each, cold cache) in headless Chromium: one page load is too noisy to report alone.
//   node benches/first-score.mjs [--runs 10] [--delay-ms 60]   (after `make site`)
// --delay-ms holds every request that long before it is served, as a crude stand-in for a network
// round trip. Prints JSON and writes target/artifacts/first-score[-delay<ms>].json.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ARTIFACTS, launch, siteMissing, startStatic } from '../tests/browser/helpers.mjs';

const arg = (name, dflt) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
};
const runs = arg('--runs', 10);
const delay = arg('--delay-ms', 0);
if (siteMissing()) {
  console.error('first-score: run `make site` first');
  process.exit(1);
}

const site = await startStatic({});
const browser = await launch();
const samples = [];
try {
  for (let i = 0; i < runs; i++) {
    const context = await browser.newContext();
    if (delay) await context.route('**/*', (r) => setTimeout(() => r.continue(), delay));
    const page = await context.newPage();
    await page.goto(site.origin + '/');
    await page.waitForFunction(() => window.leadscore?.version && window.leadscore.score());
    samples.push(
      await page.evaluate(() => {
        const at = (n) => performance.getEntriesByName('leadscore:' + n)[0]?.startTime;
        const e = window.leadscore.info().engine;
        return { first_score_ms: at('first-score') - at('load-start'), wasm_load_ms: e.loadMs, construct_ms: e.constructMs, wasm: e.wasm };
      }),
    );
    await context.close();
  }
} finally {
  await browser.close();
  await site.close();
}
const median = (k) => {
  const v = samples.map((s) => s[k]).sort((a, b) => a - b);
  return v.length % 2 ? v[v.length >> 1] : (v[v.length / 2 - 1] + v[v.length / 2]) / 2;
};
const report = {
  runs,
  delay_ms: delay,
  first_score_ms: { median: median('first_score_ms'), min: Math.min(...samples.map((s) => s.first_score_ms)), max: Math.max(...samples.map((s) => s.first_score_ms)) },
  wasm_load_ms_median: median('wasm_load_ms'),
  construct_ms_median: median('construct_ms'),
  engine_wasm_from: samples[0]?.wasm ?? null,
};
const text = JSON.stringify(report, null, 2);
console.log(text);
mkdirSync(ARTIFACTS, { recursive: true });
writeFileSync(join(ARTIFACTS, delay ? `first-score-delay${delay}.json` : 'first-score.json'), text + '\n');
