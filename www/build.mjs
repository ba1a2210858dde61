// Assembles the served site into target/www/ (run by `make site` after `make wasm`):
//   www/demo/**            → target/www/**  (HTML includes resolved, the minified snippet injected)
//   www/tracker.js         → target/www/ls/tracker.js      (esbuild, minified ES module)
//   www/score-worker.js    → target/www/ls/score-worker.js (the scoring engine the tracker runs in a Worker,
//                            with wasm-bindgen's glue target/www/ls/leadscore.js bundled in)
//   www/snippet.js         → target/www/ls/snippet.min.js  (esbuild, minified)
//   target/www/ls/leadscore.js + leadscore_bg.wasm          (made by `make wasm`; left in place)
//   www/monitor/dashboard.js → target/www/monitor/dashboard.js (the model-health dashboard with Chart.js;
//                            a page of its own, so the snippet's budget never carries it) and
//                            www/monitor/index.html → target/www/monitor/index.html; `leadscore monitor
//                            --report` inlines the same script into its HTML report
//   target/www/_headers     (written here: response headers Workers static assets apply by path; the
//                            file itself is not served) — /monitor/* gets a strict Content-Security-Policy
//                            whose style-src is the hash of the dashboard's one <style> (www/monitor/style.js)
//   (no model bundles: the page loads a non-default bundle from the worker by version,
//                            GET /v1/models/{version}, as GET /v1/config names it)
//
// HTML pages may contain `<!--#include NAME-->` (www/demo/_partials/NAME.html, not copied) and the
// placeholder `/*leadscore:snippet*/` inside an inline <script>, replaced by the minified snippet:
// the demo pages carry the loader exactly as a customer pastes it.
import { createHash } from 'node:crypto';
import { build, transform } from 'esbuild';
import { mkdir, readdir, readFile, rm, stat, writeFile, copyFile } from 'node:fs/promises';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CSS as DASHBOARD_CSS } from './monitor/style.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const src = join(root, 'www');
const demo = join(src, 'demo');
const out = join(root, 'target', 'www');
const ls = join(out, 'ls');
const KEEP = new Set(['leadscore.js', 'leadscore_bg.wasm', 'leadscore.d.ts', 'leadscore_bg.wasm.d.ts']);

async function* walk(dir) {
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) yield* walk(p);
    else yield p;
  }
}

// Start clean, except for the wasm module that `make wasm` put there.
await mkdir(ls, { recursive: true });
for (const e of await readdir(out, { withFileTypes: true })) {
  if (e.name !== 'ls') await rm(join(out, e.name), { recursive: true, force: true });
}
for (const name of await readdir(ls)) {
  if (!KEEP.has(name)) await rm(join(ls, name), { recursive: true, force: true });
}

const target = ['es2020', 'chrome90', 'firefox90', 'safari15'];
const common = { outdir: ls, bundle: true, minify: true, format: 'esm', target, legalComments: 'none', logLevel: 'warning' };
await build({ ...common, entryPoints: [join(src, 'tracker.js')] });
await build({
  ...common,
  entryPoints: [join(src, 'score-worker.js')],
  // score-worker.js takes wasm-bindgen's glue in (one request less before the module can start);
  // the glue's console.warn hints (a server's wasm MIME type, deprecated init parameters) are for
  // developers of the glue, not the site's visitors: dropped to keep the tracker's budget.
  alias: { 'leadscore-wasm-glue': join(ls, 'leadscore.js') },
  pure: ['console.warn'],
});
const snippet = (
  await transform(await readFile(join(src, 'snippet.js'), 'utf8'), {
    minify: true,
    target: ['es2015'],
    legalComments: 'none',
  })
).code.trim();
if (snippet.includes('</script')) throw new Error('minified snippet contains </script');
await writeFile(join(ls, 'snippet.min.js'), snippet + '\n');

const partials = new Map();
for (const name of await readdir(join(demo, '_partials')).catch(() => [])) {
  partials.set(name.replace(/\.html$/, ''), await readFile(join(demo, '_partials', name), 'utf8'));
}
const include = (html, file) =>
  html.replace(/<!--#include ([\w-]+)-->/g, (_, name) => {
    if (!partials.has(name)) throw new Error(`${file}: no partial ${name}`);
    return include(partials.get(name), file);
  });

let pages = 0;
for await (const file of walk(demo)) {
  const rel = relative(demo, file);
  if (rel.startsWith('_partials')) continue;
  const dest = join(out, rel);
  await mkdir(dirname(dest), { recursive: true });
  if (file.endsWith('.html')) {
    let html = include(await readFile(file, 'utf8'), rel);
    if (html.includes('/*leadscore:snippet*/')) {
      html = html.replace('/*leadscore:snippet*/', () => snippet);
      pages++;
    }
    await writeFile(dest, html);
  } else {
    await copyFile(file, dest);
  }
}

const monitor = join(out, 'monitor');
await mkdir(monitor, { recursive: true });
await build({
  entryPoints: [join(src, 'monitor', 'dashboard.js')],
  outdir: monitor,
  bundle: true,
  minify: true,
  format: 'iife',
  target,
  legalComments: 'none',
  logLevel: 'warning',
});
await copyFile(join(src, 'monitor', 'index.html'), join(monitor, 'index.html'));

// The dashboard handles the API token: its page runs only its own script (no inline script, no eval),
// talks only to this origin, and its one <style> is allowed by hash; it may not be framed.
const styleHash = createHash('sha256').update(DASHBOARD_CSS, 'utf8').digest('base64');
const monitorCsp = [
  "default-src 'none'", "script-src 'self'", `style-src 'sha256-${styleHash}'`, "connect-src 'self'",
  "img-src 'self' data:", "base-uri 'none'", "form-action 'none'", "frame-ancestors 'none'",
].join('; ');
await writeFile(join(out, '_headers'), [
  '# Written by www/build.mjs: response headers for the static assets (Workers reads this file).',
  '/monitor/*',
  `  Content-Security-Policy: ${monitorCsp}`,
  '  Referrer-Policy: no-referrer',
  '  X-Content-Type-Options: nosniff',
  '',
].join('\n'));

for (const f of ['leadscore.js', 'leadscore_bg.wasm']) {
  if (!(await stat(join(ls, f)).catch(() => null))) {
    console.warn(`build.mjs: target/www/ls/${f} is missing: run \`make wasm\``);
  }
}
console.log(`build.mjs: target/www ready (${pages} pages with the snippet)`);
