// Raw and gzip (zlib level 9) sizes of what a browser downloads for leadscore:
//   node benches/browser-sizes.mjs   (after `make site`)
// Prints JSON to stdout and writes target/artifacts/browser-sizes.json.
import { readFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { gzipSync, brotliCompressSync, constants } from 'node:zlib';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const dir = join(root, 'target', 'www', 'ls');
const budgets = { 'snippet.min.js': 1024, 'tracker.js': 10240 }; // gzip bytes (issue budgets)
const files = {};
let missing = false;
for (const name of ['snippet.min.js', 'tracker.js', 'score-worker.js', 'leadscore.js', 'leadscore_bg.wasm']) {
  let buf;
  try {
    buf = readFileSync(join(dir, name));
  } catch {
    files[name] = { missing: true };
    missing = true;
    continue;
  }
  const gzip = gzipSync(buf, { level: 9 }).length;
  const brotli = brotliCompressSync(buf, { params: { [constants.BROTLI_PARAM_QUALITY]: 11 } }).length;
  files[name] = { raw: buf.length, gzip, brotli };
  if (budgets[name]) Object.assign(files[name], { gzip_budget: budgets[name], within_budget: gzip <= budgets[name] });
}
const sum = (k) => Object.values(files).reduce((a, f) => a + (f[k] || 0), 0);
const report = { dir: 'target/www/ls', files, total: { raw: sum('raw'), gzip: sum('gzip'), brotli: sum('brotli') } };
const text = JSON.stringify(report, null, 2);
console.log(text);
mkdirSync(join(root, 'target', 'artifacts'), { recursive: true });
writeFileSync(join(root, 'target', 'artifacts', 'browser-sizes.json'), text + '\n');
if (missing) {
  console.error('browser-sizes: some files are missing: run `make site`');
  process.exit(1);
}
