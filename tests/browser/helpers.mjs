// Shared helpers for the browser tests: a static server for target/www, a fake events endpoint,
// headless Chromium, and the event schema's validator (ajv).
import { createServer } from 'node:http';
import { readFile, stat, mkdir } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { join, extname, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { brotliCompressSync, gzipSync, constants as Z } from 'node:zlib';
import { chromium } from 'playwright-core';
import Ajv2020 from 'ajv/dist/2020.js';
import * as L from '../../www/tracker/limits.js';

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const WWW = join(ROOT, 'target', 'www');
export const ARTIFACTS = join(ROOT, 'target', 'artifacts');

const TYPES = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.wasm': 'application/wasm',
  '.json': 'application/json',
  '.png': 'image/png',
  '.svg': 'image/svg+xml',
};

/**
 * A skip reason when an input of the suites is missing (the built site, Chromium), else false.
 * Under `make test` and CI (LEADSCORE_STRICT or CI set) a missing input throws instead: a suite
 * that skips there could never fail.
 */
export function missingInputs(needs) {
  for (const [file, how] of needs) {
    try {
      readFileSync(file);
    } catch {
      const why = `${file.startsWith(ROOT) ? file.slice(ROOT.length + 1) : file} missing: ${how}`;
      if (process.env.LEADSCORE_STRICT || process.env.CI) throw new Error(`${why} (a missing input fails under make test/CI)`);
      return why;
    }
  }
  return false;
}

/** Whether the site has been built with the wasm module, and Chromium is there (skip reason otherwise). */
export function siteMissing() {
  const site = ['ls/leadscore.js', 'ls/leadscore_bg.wasm', 'ls/tracker.js', 'ls/snippet.min.js', 'index.html'];
  return missingInputs([
    ...site.map((f) => [join(WWW, f), 'run `make site`']),
    [process.env.CHROMIUM || '/usr/bin/chromium', 'run `.ci/tools chromium`'],
  ]);
}

export const snippetText = () => readFileSync(join(WWW, 'ls', 'snippet.min.js'), 'utf8').trim();

/**
 * Serves target/www on 127.0.0.1 (random port), clean URLs → index.html. `cfg.endpoint` replaces the
 * demo's <meta name="leadscore-endpoint"> ("off", a URL, "same-origin"); `cfg.options` is injected as
 * <meta name="leadscore-options"> JSON; `cfg.pages` maps extra paths to HTML. `hits` counts paths.
 */
export async function startStatic(cfg = {}) {
  const hits = new Map();
  const server = createServer(async (req, res) => {
    const path = decodeURIComponent(new URL(req.url, 'http://x').pathname);
    hits.set(path, (hits.get(path) || 0) + 1);
    if (cfg.pages && cfg.pages[path]) {
      res.writeHead(200, { 'content-type': TYPES['.html'], 'cache-control': 'no-store' });
      return res.end(cfg.pages[path]);
    }
    if (path.includes('..')) return res.writeHead(400).end();
    let file = join(WWW, path);
    let st = await stat(file).catch(() => null);
    if (st && st.isDirectory()) {
      if (!path.endsWith('/')) {
        res.writeHead(301, { location: path + '/' });
        return res.end();
      }
      file = join(file, 'index.html');
      st = await stat(file).catch(() => null);
    }
    if (!st) {
      res.writeHead(404, { 'content-type': 'text/plain' });
      return res.end('not found');
    }
    let body = await readFile(file);
    const type = TYPES[extname(file)] || 'application/octet-stream';
    if (extname(file) === '.html') {
      let html = body.toString('utf8');
      if (cfg.endpoint !== undefined) {
        html = html.replace(
          /<meta name="leadscore-endpoint" content="[^"]*">/,
          `<meta name="leadscore-endpoint" content="${cfg.endpoint}">`,
        );
      }
      if (cfg.options) {
        const json = JSON.stringify(cfg.options).replace(/"/g, '&quot;');
        html = html.replace('<meta name="leadscore-endpoint"', `<meta name="leadscore-options" content="${json}">\n<meta name="leadscore-endpoint"`);
      }
      body = Buffer.from(html);
    }
    const headers = { 'content-type': type, 'cache-control': 'no-cache', vary: 'accept-encoding' };
    const coding = encodingFor(req.headers['accept-encoding']);
    if (coding) {
      body = compressed(file, st.mtimeMs, body, coding);
      headers['content-encoding'] = coding;
    }
    res.writeHead(200, headers);
    res.end(body);
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const origin = `http://127.0.0.1:${server.address().port}`;
  return { origin, hits, cfg, close: () => closeServer(server) };
}

// As the deployment serves them: Cloudflare's edge (and wrangler dev) compresses these types with
// brotli, else gzip, for a browser that accepts it; a first visit's load times depend on it (the
// wasm module is 1.5 MB raw, 0.45 MB compressed).
const encodingFor = (accept = '') => (/\bbr\b/.test(accept) ? 'br' : /\bgzip\b/.test(accept) ? 'gzip' : null);
const COMPRESSED = new Map(); // file + coding -> {mtime, body}: made once per built file
function compressed(file, mtime, body, coding) {
  if (extname(file) === '.html') return coding === 'br' ? brotliCompressSync(body) : gzipSync(body);
  const key = file + ' ' + coding;
  const hit = COMPRESSED.get(key);
  if (hit && hit.mtime === mtime) return hit.body;
  const out = coding === 'br' ? brotliCompressSync(body, { params: { [Z.BROTLI_PARAM_QUALITY]: 9 } }) : gzipSync(body);
  COMPRESSED.set(key, { mtime, body: out });
  return out;
}

function closeServer(server) {
  server.closeAllConnections?.();
  return new Promise((r) => server.close(() => r()));
}

/**
 * A fake events endpoint (POST /v1/events). `mode`: 'ok' (200 {score}), '503' (with Retry-After),
 * 'down' (connection destroyed: a network error), or a number (that HTTP status). Records every
 * request: {status, body (parsed), bytes}. GET /v1/config answers as a worker without site tables
 * or experiment does, whatever the mode (recorded too: the privacy tests count every request).
 */
export async function startReceiver() {
  const r = { mode: 'ok', retryAfter: '1', requests: [], accepted: [], ids: new Map() };
  const server = createServer((req, res) => {
    const cors = {
      'access-control-allow-origin': '*',
      'access-control-allow-headers': 'content-type',
      'access-control-allow-methods': 'POST, OPTIONS',
    };
    if (req.method === 'OPTIONS') {
      r.requests.push({ preflight: true });
      res.writeHead(204, cors);
      return res.end();
    }
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const raw = Buffer.concat(chunks);
      let body = null;
      try {
        body = JSON.parse(raw.toString('utf8'));
      } catch {}
      const mode = r.mode;
      const rec = { mode, url: req.url, contentType: req.headers['content-type'], bytes: raw.length, body, raw: raw.toString('utf8') };
      r.requests.push(rec);
      if (req.method === 'GET' && req.url.startsWith('/v1/config?')) {
        res.writeHead(200, { ...cors, 'content-type': 'application/json' });
        return res.end(JSON.stringify({ site: { version: null }, experiment: null, models: {}, arm: null }));
      }
      if (mode === 'down') return req.socket.destroy();
      if (mode === '503') {
        res.writeHead(503, { ...cors, 'retry-after': r.retryAfter });
        return res.end('{"error":{"code":"unavailable"}}');
      }
      if (typeof mode === 'number') {
        res.writeHead(mode, { ...cors, 'content-type': 'application/json' });
        return res.end('{"error":{"code":"bad_request","message":"test"}}');
      }
      if (req.url !== '/v1/events' || !body) {
        res.writeHead(400, cors);
        return res.end();
      }
      r.accepted.push(rec);
      for (const e of body.events || []) r.ids.set(e.id, (r.ids.get(e.id) || 0) + 1);
      res.writeHead(200, { ...cors, 'content-type': 'application/json' });
      res.end(JSON.stringify({ score: { ai_score: 1, tier: 'cold' }, accepted: (body.events || []).length }));
    });
  });
  await new Promise((res) => server.listen(0, '127.0.0.1', res));
  r.origin = `http://127.0.0.1:${server.address().port}`;
  r.events = () => r.accepted.flatMap((q) => q.body.events);
  r.close = () => closeServer(server);
  return r;
}

export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
  '--disable-quic',
];

export function launch(extraArgs = []) {
  return chromium.launch({ executablePath: process.env.CHROMIUM || '/usr/bin/chromium', args: [...CHROMIUM_ARGS, ...extraArgs] });
}

/** Records every request the context makes to an origin other than `staticOrigin`. */
export function watchForeign(context, staticOrigin) {
  const foreign = [];
  context.on('request', (req) => {
    const u = req.url();
    if (!u.startsWith(staticOrigin + '/') && !u.startsWith('data:') && !u.startsWith('blob:')) foreign.push(u);
  });
  return foreign;
}

/** Waits until `fn()` is truthy (polling), or throws after `ms` with `what`. */
export async function until(fn, ms, what) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Waits for the tracker to have computed a score on `page`; returns it. */
export function scoreOf(page, ms = 10000) {
  return page.waitForFunction(() => window.leadscore && window.leadscore.version && window.leadscore.score(), null, { timeout: ms }).then((h) => h.jsonValue());
}

export async function artifacts() {
  await mkdir(ARTIFACTS, { recursive: true });
  return ARTIFACTS;
}

// ---------------------------------------------------------------- www/event.schema.json, checked
// By a real JSON Schema validator (ajv, draft 2020-12), plus the byte rule the schema cannot say
// (its maxLength counts characters; the core counts UTF-8 bytes), from the generated limits.
// strictRequired off: `required` inside if/then names properties declared at the top level, as JSON Schema allows.
const ajv = new Ajv2020({ allErrors: true, strict: true, strictRequired: false });
const validateEvent = ajv.compile(JSON.parse(readFileSync(join(ROOT, 'www', 'event.schema.json'), 'utf8')));
const byteLen = (s) => Buffer.byteLength(s, 'utf8');
const BYTE_LIMITS = {
  id: L.MAX_ID_LEN,
  visitor_id: L.MAX_ID_LEN,
  name: L.MAX_ID_LEN,
  lead_id: L.MAX_LEAD_ID_LEN,
  url: L.MAX_URL_LEN,
  referrer: L.MAX_URL_LEN,
  path: L.MAX_PATH_LEN,
  ua: L.MAX_UA_LEN,
};

/** Errors of one event against www/event.schema.json and the byte limits ([] when valid). */
export function schemaErrors(e) {
  const errs = validateEvent(e) ? [] : validateEvent.errors.map((x) => `${x.instancePath || '/'} ${x.message}`);
  if (!e || typeof e !== 'object') return errs;
  for (const [k, max] of Object.entries(BYTE_LIMITS)) {
    if (typeof e[k] === 'string' && byteLen(e[k]) > max) errs.push(`/${k} is more than ${max} bytes`);
  }
  for (const m of ['props', 'traits']) {
    for (const [k, v] of Object.entries(e[m] && typeof e[m] === 'object' ? e[m] : {})) {
      if (byteLen(k) > L.MAX_KEY_LEN) errs.push(`/${m} key ${JSON.stringify(k)} is more than ${L.MAX_KEY_LEN} bytes`);
      if (typeof v === 'string' && byteLen(v) > L.MAX_VALUE_LEN) errs.push(`/${m}/${k} is more than ${L.MAX_VALUE_LEN} bytes`);
    }
  }
  return errs;
}

/**
 * Records every event the tracker accepted, on every page of `context`, through on('event') queued
 * before the snippet runs (the snippet adopts an existing queue array). Kept in sessionStorage, which
 * is written synchronously, so events made during pagehide are not lost. Read with madeEvents(page).
 */
export async function recordEvents(context, extraQueue = '') {
  await context.addInitScript(`window.leadscore = [['on', 'event', function (e) {
    var a = JSON.parse(sessionStorage.getItem('__made') || '[]'); a.push(e);
    sessionStorage.setItem('__made', JSON.stringify(a));
  }]${extraQueue}];`);
}
export const madeEvents = (page) => page.evaluate(() => JSON.parse(sessionStorage.getItem('__made') || '[]'));
