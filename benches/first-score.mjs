// Tracker load → first score on the demo home page, over several first visits (fresh browser
// context each, cold cache) in headless Chromium: one page load is too noisy to report alone.
//   node benches/first-score.mjs [--runs 10] [--delay-ms 60]   (after `make site`)
// --delay-ms holds every request that long before it is served, as a crude stand-in for a network
// round trip; --eager-wasm makes V8 compile every wasm function before the first call (Chromium
// compiles each lazily, on its first call: what that costs the first score). Prints JSON and writes
// target/artifacts/first-score[-delay<ms>|-eager].json.
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

// In the order they usually happen (the Worker is made and the module's download starts at the
// tracker's start): the Worker's script running, the module compiled in the page and received in
// the Worker, the scorer made (module instantiated, model loaded), the first score back in the page.
const PHASES = ['engine-script', 'module-compiled', 'engine-module', 'engine-constructed', 'first-score'];
const site = await startStatic({});
const eager = process.argv.includes('--eager-wasm');
const browser = await launch(eager ? ['--js-flags=--no-wasm-lazy-compilation'] : []);
const samples = [];
try {
  for (let i = 0; i < runs; i++) {
    const context = await browser.newContext();
    if (delay) await context.route('**/*', (r) => setTimeout(() => r.continue(), delay));
    const page = await context.newPage();
    await page.goto(site.origin + '/');
    // Waits for the first score's mark without polling: page.waitForFunction would inject the
    // harness's own large script into the page while it loads (a 10 ms parse on its main thread).
    await page.evaluate(
      () =>
        new Promise((done) =>
          new PerformanceObserver((list, observer) => {
            if (!list.getEntriesByName('leadscore:first-score').length) return;
            observer.disconnect();
            done();
          }).observe({ type: 'mark', buffered: true }),
        ),
    );
    samples.push(
      await page.evaluate((PHASES) => {
        const at = (n) => performance.getEntriesByName('leadscore:' + n)[0]?.startTime;
        const e = window.leadscore.info().engine;
        // Where the time goes, each from the tracker's start (performance marks, www/tracker/engine.js).
        const phases = {};
        for (const p of PHASES) phases[p] = at(p) - at('load-start');
        return { first_score_ms: at('first-score') - at('load-start'), wasm_load_ms: e.loadMs, construct_ms: e.constructMs, wasm: e.wasm, phases };
      }, PHASES),
    );
    await context.close();
  }
} finally {
  await browser.close();
  await site.close();
}
const median = (xs) => {
  const v = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  return v.length % 2 ? v[v.length >> 1] : (v[v.length / 2 - 1] + v[v.length / 2]) / 2;
};
const of = (k) => samples.map((s) => s[k]);
const report = {
  runs,
  delay_ms: delay,
  eager_wasm: eager,
  first_score_ms: { median: median(of('first_score_ms')), min: Math.min(...of('first_score_ms')), max: Math.max(...of('first_score_ms')) },
  wasm_load_ms_median: median(of('wasm_load_ms')),
  construct_ms_median: median(of('construct_ms')),
  engine_wasm_from: samples[0]?.wasm ?? null,
  phases_median_ms: Object.fromEntries(PHASES.map((p) => [p, +median(samples.map((s) => s.phases[p])).toFixed(1)])),
};
const text = JSON.stringify(report, null, 2);
console.log(text);
mkdirSync(ARTIFACTS, { recursive: true });
const file = delay ? `first-score-delay${delay}.json` : eager ? 'first-score-eager.json' : 'first-score.json';
writeFileSync(join(ARTIFACTS, file), text + '\n');
