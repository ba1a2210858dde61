// Shared helpers for the browser tests: a static server for target/www, a fake events endpoint,
// headless Chromium, and a small validator for www/event.schema.json.
import { createServer } from 'node:http';
import { readFile, stat, mkdir } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { join, extname, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

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

/** Whether the site has been built with the wasm module (skip reason otherwise). */
export function siteMissing() {
  for (const f of ['ls/leadscore.js', 'ls/leadscore_bg.wasm', 'ls/tracker.js', 'ls/snippet.min.js', 'index.html']) {
    try {
      readFileSync(join(WWW, f));
    } catch {
      return `target/www/${f} missing: run \`make site\``;
    }
  }
  return false;
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
    res.writeHead(200, { 'content-type': type, 'cache-control': 'no-cache' });
    res.end(body);
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const origin = `http://127.0.0.1:${server.address().port}`;
  return { origin, hits, cfg, close: () => closeServer(server) };
}

function closeServer(server) {
  server.closeAllConnections?.();
  return new Promise((r) => server.close(() => r()));
}

/**
 * A fake events endpoint (POST /v1/events). `mode`: 'ok' (200 {score}), '503' (with Retry-After),
 * 'down' (connection destroyed: a network error), or a number (that HTTP status). Records every
 * request: {status, body (parsed), bytes}.
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

export function launch() {
  return chromium.launch({ executablePath: process.env.CHROMIUM || '/usr/bin/chromium', args: CHROMIUM_ARGS });
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
const schema = JSON.parse(readFileSync(join(ROOT, 'www', 'event.schema.json'), 'utf8'));
const byteLen = (s) => Buffer.byteLength(s, 'utf8');

function checkValue(v, spec, where, errs) {
  if (spec.$ref) spec = schema.$defs[spec.$ref.split('/').pop()];
  if (spec.enum && !spec.enum.includes(v)) errs.push(`${where}: ${JSON.stringify(v)} not in enum`);
  const t = spec.type;
  if (t === 'string') {
    if (typeof v !== 'string') return errs.push(`${where}: not a string`);
    if (spec.minLength && v.length < spec.minLength) errs.push(`${where}: too short`);
    if (spec.maxLength && byteLen(v) > spec.maxLength) errs.push(`${where}: longer than ${spec.maxLength}`);
    if (spec.pattern && !new RegExp(spec.pattern).test(v)) errs.push(`${where}: does not match ${spec.pattern}`);
  } else if (t === 'integer' || t === 'number') {
    if (typeof v !== 'number' || (t === 'integer' && !Number.isInteger(v))) return errs.push(`${where}: not an ${t}`);
    if (spec.minimum !== undefined && v < spec.minimum) errs.push(`${where}: below ${spec.minimum}`);
    if (spec.maximum !== undefined && v > spec.maximum) errs.push(`${where}: above ${spec.maximum}`);
  } else if (t === 'object') {
    if (!v || typeof v !== 'object' || Array.isArray(v)) return errs.push(`${where}: not an object`);
    const keys = Object.keys(v);
    if (spec.maxProperties && keys.length > spec.maxProperties) errs.push(`${where}: too many entries`);
    for (const k of keys) {
      if (k.length < 1 || k.length > 64) errs.push(`${where}.${k}: bad key length`);
      const x = v[k];
      const ok = typeof x === 'boolean' || (typeof x === 'number' && Number.isFinite(x)) || (typeof x === 'string' && byteLen(x) <= 512);
      if (!ok) errs.push(`${where}.${k}: not a small scalar`);
    }
  }
}

/** Errors of one event against www/event.schema.json ([] when valid). */
export function schemaErrors(e) {
  const errs = [];
  if (!e || typeof e !== 'object') return ['not an object'];
  for (const k of schema.required) if (!(k in e)) errs.push(`missing ${k}`);
  for (const [k, v] of Object.entries(e)) {
    const spec = schema.properties[k];
    if (!spec) errs.push(`unknown field ${k}`);
    else checkValue(v, spec, k, errs);
  }
  if (e.type === 'page' && !('path' in e) && !('url' in e)) errs.push('page without path/url');
  if (e.type === 'custom' && !('name' in e)) errs.push('custom without name');
  if (e.type === 'identify' && !('lead_id' in e) && !('traits' in e)) errs.push('identify without lead_id/traits');
  if (e.type !== 'identify' && 'traits' in e) errs.push('traits outside identify');
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
