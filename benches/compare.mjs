// leadscore side by side with onnxruntime-web, onnxruntime-node and the compiled-tree limit, in one
// node process on one machine (Node 22; `make bench` builds the inputs and runs this):
//   node benches/compare.mjs            → target/artifacts/compare.json
//   node benches/compare.mjs --cold X   (internal) one cold start of engine X (or `bundle:<dir>`: a bundle
//                                       loaded from its card and forest.bin, as an isolate does after
//                                       reading its serving form from R2; `started:<dir>`: the same after
//                                       what the worker does at isolate start, the embedded default built
//                                       and scored once)
//
// Inputs (built by `make bench`): target/bench/dec_vectors.json (the 1,727 December holdout rows, via
// the parity converter: benches/vectors.py), target/www/ls/ (the browser wasm), target/bench/trees.mjs
// and limit.wasm (`leadscore codegen`, benches/limit/harness.rs), and the native results
// target/bench/native.json (benches/compare.rs) and limit-native.json.
//
// Every engine scores the same Float32Array rows one at a time (the edge's shape), PASSES passes,
// each call timed with process.hrtime; a second, untimed loop gives the mean without clock overhead.
// Each engine's probabilities are checked against LightGBM's (max |Δ| reported).
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { brotliCompressSync, constants, gzipSync } from 'node:zlib';
import os from 'node:os';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const BENCH = join(ROOT, 'target', 'bench');
const LS = join(ROOT, 'target', 'www', 'ls');
const MODEL = join(ROOT, 'models', 'default', 'model.onnx');
const PASSES = Number(process.env.LEADSCORE_BENCH_PASSES || 6);
const COLD_RUNS = Number(process.env.LEADSCORE_BENCH_COLD_RUNS || 7);
const require = createRequire(import.meta.url);

const vectors = JSON.parse(readFileSync(join(BENCH, 'dec_vectors.json'), 'utf8'));
const rows = vectors.rows.map((r) => Float32Array.from(r));

/** Largest |p − LightGBM's p| over the rows. */
const maxAbsDiff = (probs) => probs.reduce((m, p, i) => Math.max(m, Math.abs(p - vectors.lgb[i])), 0);

/** The quantile q of sorted numbers. */
const quantile = (sorted, q) => sorted[Math.round((sorted.length - 1) * q)];

/** Times `fn(row)` on every row PASSES times; `fn` may return a promise (onnxruntime). */
async function measure(name, fn) {
  const probs = [];
  for (const r of rows) probs.push(Number(await fn(r)));
  // Two more warm-up passes: V8 tiers hot wasm/JS functions up while they run.
  for (let p = 0; p < 2; p++) for (const r of rows) await fn(r);
  const ns = new Float64Array(rows.length * PASSES);
  let k = 0;
  for (let p = 0; p < PASSES; p++) {
    for (const r of rows) {
      const t = process.hrtime.bigint();
      await fn(r);
      ns[k++] = Number(process.hrtime.bigint() - t);
    }
  }
  const t = process.hrtime.bigint();
  for (let p = 0; p < PASSES; p++) for (const r of rows) await fn(r);
  const mean = Number(process.hrtime.bigint() - t) / (rows.length * PASSES);
  ns.sort();
  const result = summarize(name, ns, mean, probs);
  process.stderr.write(`${name}: p50 ${(result.p50_ns / 1e3).toFixed(2)} µs, p99 ${(result.p99_ns / 1e3).toFixed(2)} µs, max |Δp| ${result.max_abs_diff_vs_lightgbm.toExponential(2)}\n`);
  return result;
}

/** Common shape of every engine's result (native ones come from JSON with the same fields). */
function summarize(name, sortedNs, mean, probs) {
  const cdf = [];
  for (let i = 0; i <= 100; i++) cdf.push(quantile(sortedNs, i / 100));
  return {
    engine: name,
    calls: sortedNs.length,
    p50_ns: quantile(sortedNs, 0.5),
    p99_ns: quantile(sortedNs, 0.99),
    mean_ns: mean,
    max_abs_diff_vs_lightgbm: maxAbsDiff(probs),
    cdf_ns: cdf,
  };
}

/** Native results: JSON from a binary, probabilities checked here like the others. */
function native(name, file, key) {
  const path = join(BENCH, file);
  let doc;
  try {
    doc = JSON.parse(readFileSync(path, 'utf8'));
  } catch {
    return { engine: name, missing: `${file} missing or unreadable` };
  }
  const r = key ? doc[key] : doc;
  return {
    engine: name,
    calls: r.calls,
    p50_ns: r.p50_ns,
    p99_ns: r.p99_ns,
    mean_ns: r.mean_ns,
    max_abs_diff_vs_lightgbm: maxAbsDiff(r.probs),
    cdf_ns: r.cdf_ns,
    load_ms: doc.load_ms,
  };
}

// ---------------------------------------------------------------- engines (warm: model loaded once)

async function leadscoreWasm() {
  const mod = await import(pathToFileURL(join(LS, 'leadscore.js')).href);
  mod.initSync({ module: readFileSync(join(LS, 'leadscore_bg.wasm')) });
  return { mod, scorer: new mod.LeadScorer('bench', undefined, undefined) };
}

/** onnxruntime (web or node) set up the same way for the warm and the cold runs: one thread. */
function ortRuntime(pkg) {
  const ort = require(pkg);
  const opts = { intraOpNumThreads: 1, interOpNumThreads: 1, graphOptimizationLevel: 'all' };
  if (pkg === 'onnxruntime-web') {
    ort.env.wasm.numThreads = 1;
    opts.executionProviders = ['wasm'];
  }
  return { ort, opts };
}

async function ortSession(pkg) {
  const { ort, opts } = ortRuntime(pkg);
  const session = await ort.InferenceSession.create(readFileSync(MODEL), opts);
  const input = session.inputNames[0];
  const run = async (r) => {
    const out = await session.run({ [input]: new ort.Tensor('float32', r, [1, r.length]) }, ['probabilities']);
    return out.probabilities.data[1];
  };
  return { ort, session, run };
}

function limitWasm() {
  const bytes = readFileSync(join(BENCH, 'limit.wasm'));
  const { exports } = new WebAssembly.Instance(new WebAssembly.Module(bytes), {});
  const at = exports.row_ptr();
  return (r) => {
    new Float32Array(exports.memory.buffer, at, r.length).set(r);
    return exports.probability();
  };
}

// ---------------------------------------------------------------- cold start (fresh process each)

async function coldOnce(engine) {
  const row = rows[0];
  if (engine === 'leadscore') {
    const bytes = readFileSync(join(LS, 'leadscore_bg.wasm'));
    const mod = await import(pathToFileURL(join(LS, 'leadscore.js')).href);
    const t0 = performance.now();
    mod.initSync({ module: bytes });
    const t1 = performance.now();
    const scorer = new mod.LeadScorer('cold', undefined, undefined);
    const t2 = performance.now();
    scorer.probability(row);
    const t3 = performance.now();
    return { total_ms: t3 - t0, instantiate_ms: t1 - t0, model_load_ms: t2 - t1, first_score_ms: t3 - t2 };
  }
  if (/^(bundle|started):/.test(engine)) {
    // A registry version's first score in a fresh isolate, after its serving form is read from R2: the
    // card parsed, the encoded forest read and planned, the explainer built (LeadScorer.fromForest, the
    // worker's and the page's path).
    const dir = join(ROOT, 'models', engine.slice(engine.indexOf(':') + 1));
    const forest = readFileSync(join(dir, 'forest.bin'));
    const card = readFileSync(join(dir, 'card.json'), 'utf8');
    const width = JSON.parse(card).features.length;
    const bytes = readFileSync(join(LS, 'leadscore_bg.wasm'));
    const mod = await import(pathToFileURL(join(LS, 'leadscore.js')).href);
    mod.initSync({ module: bytes });
    if (engine.startsWith('started:')) {
      // The worker's start event (src/worker/entry.rs): the embedded default built, an empty visitor scored.
      const warm = new mod.LeadScorer('warm-up', undefined, undefined, undefined);
      warm.score(0);
      warm.free();
    }
    const t0 = performance.now();
    const scorer = mod.LeadScorer.fromForest(forest, card, 'cold', undefined, undefined, undefined);
    const t1 = performance.now();
    scorer.probability(new Float32Array(width));
    const t2 = performance.now();
    return { total_ms: t2 - t0, bundle_load_ms: t1 - t0, first_score_ms: t2 - t1 };
  }
  const pkg = engine === 'ort-web' ? 'onnxruntime-web' : 'onnxruntime-node';
  const bytes = readFileSync(MODEL);
  const { ort, opts } = ortRuntime(pkg);
  const t0 = performance.now();
  // The first session creation also instantiates onnxruntime's wasm (read from node_modules).
  const session = await ort.InferenceSession.create(bytes, opts);
  const t1 = performance.now();
  await session.run({ [session.inputNames[0]]: new ort.Tensor('float32', row, [1, row.length]) }, ['probabilities']);
  const t2 = performance.now();
  return { total_ms: t2 - t0, instantiate_and_model_load_ms: t1 - t0, first_score_ms: t2 - t1 };
}

function cold(engine) {
  const runs = [];
  for (let i = 0; i < COLD_RUNS; i++) {
    const out = execFileSync(process.execPath, [fileURLToPath(import.meta.url), '--cold', engine], { encoding: 'utf8' });
    runs.push(JSON.parse(out));
  }
  const med = {};
  for (const k of Object.keys(runs[0])) {
    const v = runs.map((r) => r[k]).sort((a, b) => a - b);
    med[k] = quantile(v, 0.5);
  }
  return { engine, runs: runs.length, median: med };
}

// ---------------------------------------------------------------- sizes

function size(files) {
  const out = { files: [], raw: 0, gzip: 0, brotli: 0 };
  for (const f of files) {
    const buf = readFileSync(join(ROOT, f));
    const gzip = gzipSync(buf, { level: 9 }).length;
    const brotli = brotliCompressSync(buf, { params: { [constants.BROTLI_PARAM_QUALITY]: 11 } }).length;
    out.files.push({ file: f, raw: buf.length, gzip, brotli });
    out.raw += buf.length;
    out.gzip += gzip;
    out.brotli += brotli;
  }
  return out;
}

function sizes() {
  const ortDist = 'node_modules/onnxruntime-web/dist';
  const worker = ['build/index_bg.wasm', 'build/index.js', 'build/worker/shim.mjs'].filter((f) => existsSync(join(ROOT, f)));
  return {
    leadscore_browser: size(['target/www/ls/leadscore_bg.wasm', 'target/www/ls/leadscore.js']),
    leadscore_worker: worker.length ? size(worker) : null,
    // What a page loads for onnxruntime-web's wasm backend: the wasm-only bundle, its glue, its wasm.
    ort_web: size([`${ortDist}/ort.wasm.min.mjs`, `${ortDist}/ort-wasm-simd-threaded.mjs`, `${ortDist}/ort-wasm-simd-threaded.wasm`]),
    model_onnx: statSync(MODEL).size,
  };
}

// ---------------------------------------------------------------- events path (wasm)

async function eventsPath(mod) {
  const text = readFileSync(join(ROOT, 'tests', 'fixtures', 'sample_events.ndjson'), 'utf8');
  const journey = text.split('\n').filter((l) => l.includes('"visitor_id":"v-hot"')).map((l) => JSON.parse(l));
  const scorer = new mod.LeadScorer('v-hot', undefined, undefined);
  const apply = [];
  const applyScore = [];
  const replays = Math.ceil(10000 / journey.length);
  for (let n = 0; n < replays; n++) {
    scorer.reset();
    for (const e of journey) {
      const line = JSON.stringify({ ...e, id: `${e.id}-${n}` });
      const t0 = process.hrtime.bigint();
      scorer.apply(line, e.ts);
      const t1 = process.hrtime.bigint();
      scorer.score(e.ts);
      const t2 = process.hrtime.bigint();
      apply.push(Number(t1 - t0));
      applyScore.push(Number(t2 - t0));
    }
  }
  const s = (a) => { a.sort((x, y) => x - y); return { p50_ns: quantile(a, 0.5), p99_ns: quantile(a, 0.99), calls: a.length }; };
  return { journey_events: journey.length, apply: s(apply), apply_and_score: s(applyScore) };
}

// ---------------------------------------------------------------- main

const pkgVersion = (name) => JSON.parse(readFileSync(join(ROOT, 'node_modules', name, 'package.json'), 'utf8')).version;

async function main() {
  if (process.argv[2] === '--cold') {
    process.stdout.write(JSON.stringify(await coldOnce(process.argv[3])));
    return;
  }
  const engines = [];
  const { mod, scorer } = await leadscoreWasm();
  engines.push(await measure('leadscore wasm (tract plan)', (r) => scorer.probability(r)));
  const web = await ortSession('onnxruntime-web');
  engines.push(await measure('onnxruntime-web (wasm, 1 thread)', web.run));
  const nodeOrt = await ortSession('onnxruntime-node');
  engines.push(await measure('onnxruntime-node (native, 1 thread)', nodeOrt.run));
  const trees = await import(pathToFileURL(join(BENCH, 'trees.mjs')).href);
  engines.push(await measure('compiled trees, JS (V8)', (r) => trees.probability(r)));
  engines.push(await measure('compiled trees, wasm (rustc)', limitWasm()));
  engines.push(native('leadscore native (tract plan)', 'native.json', 'tract'));
  engines.push(native('leadscore native (tree kernel, no plan)', 'native.json', 'kernel'));
  engines.push(native('compiled trees, native (rustc -O)', 'limit-native.json'));

  const explained = [
    await measure('leadscore wasm: score + TreeSHAP top-5', (r) => scorer.scoreVector(r).raw_probability),
    native('leadscore native: score + TreeSHAP top-5', 'native.json', 'score_treeshap'),
  ];
  const coldStart = [cold('leadscore'), cold('ort-web'), cold('ort-node')];
  // Bundles as the registry serves them: loaded from bytes after the module is ready.
  const bundles = ['default', 'candidate', 'b2b-example', 'b2b-rules'];
  const fromBytes = bundles.map((b) => cold(`bundle:${b}`));
  const afterStart = bundles.map((b) => cold(`started:${b}`));
  const events = await eventsPath(mod);
  let workerBatch = null;
  const c1 = join(ROOT, 'target', 'artifacts', 'worker-load-c1.json');
  if (existsSync(c1)) workerBatch = JSON.parse(readFileSync(c1, 'utf8'));

  const report = {
    when: new Date().toISOString(),
    machine: { cpu: os.cpus()[0]?.model, cores: os.cpus().length, os: `${os.type()} ${os.release()}`, node: process.version },
    versions: {
      'onnxruntime-web': pkgVersion('onnxruntime-web'),
      'onnxruntime-node': pkgVersion('onnxruntime-node'),
      rustc: execFileSync('rustc', ['--version'], { encoding: 'utf8' }).trim(),
    },
    rows: rows.length,
    passes: PASSES,
    single_row: engines,
    explained,
    cold_start: coldStart,
    bundle_from_bytes: fromBytes,
    bundle_after_start: afterStart,
    sizes: sizes(),
    events_path: { wasm: events, worker_batch_sequential: workerBatch },
  };
  mkdirSync(join(ROOT, 'target', 'artifacts'), { recursive: true });
  writeFileSync(join(ROOT, 'target', 'artifacts', 'compare.json'), JSON.stringify(report, null, 2) + '\n');
  process.stderr.write('wrote target/artifacts/compare.json\n');
}

await main();
