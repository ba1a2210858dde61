// leadscore scoring engine: the wasm core (leadscore_bg.wasm, next to this file, and its glue)
// behind messages. tracker.js runs it in a dedicated Worker, so that compiling the module, loading
// the model (about 20 ms on a cold page) and TreeSHAP never block the page's main thread; where a
// Worker cannot be made (the tracker served from another origin, no Worker support) it runs the
// same engine in the page. No scoring logic here either: events go to LeadScorer.apply, scores
// come from LeadScorer.score.
//
// In (one at a time, in order):
//   {t:'module', module?: WebAssembly.Module}                 the module the page compiled (Worker
//                                                             only; none: fetch it here)
//   {t:'init', vid, saved?: Uint8Array, rules?: string, endpoint?: string, wasm?: 'page'}
//                                                             create the scorer (replaces any):
//                                                             with an endpoint, the deployment's
//                                                             site tables and the visitor's arm
//                                                             (GET /v1/config, /v1/site) and the
//                                                             bundle that scores it
//                                                             (GET /v1/models/{version}
//                                                             ?form=served: card, encoded forest);
//                                                             'page': the module comes as above
//   {t:'events', events: [JSON string], now}                  apply in order, then score once
// Out:
//   {t:'ready', modelVersion, featureCount, rulesRefused?: {code, message}, loadMs, constructMs,
//    wasm: 'page' | 'fetched', degraded?: string,             where the module came from; why the
//    at: {script, module?, constructed}}                     deployment's setup could not be used;
//                                                             when this script ran, the page's module
//                                                             came, the scorer was made (epoch ms)
//   {t:'failed', message}                                     the module or model could not load
//   {t:'applied', refused: [{i, code, message}], score, state: Uint8Array, features, memory}

// wasm-bindgen's JS glue (target/www/ls/leadscore.js), bundled into this file by www/build.mjs:
// no round trip of its own before the module can be instantiated.
import init, { LeadScorer } from 'leadscore-wasm-glue';

const t0 = performance.now();
// Moments of this engine's start, as epoch ms (a Worker's clock has its own origin): in `ready`.
const at = { script: performance.timeOrigin + t0 };
const stamp = (k) => (at[k] = performance.timeOrigin + performance.now());
const inWorker = typeof WorkerGlobalScope !== 'undefined' && self instanceof WorkerGlobalScope;
const fetchWasm = () => fetch(new URL('leadscore_bg.wasm', import.meta.url));
// In the page the module's bytes are fetched as soon as this script runs. In a Worker the page has
// usually started it before this script even ran ({t:'module'}).
const early = inWorker ? null : fetchWasm();
early?.catch(() => {});
let fromPage; // resolves with the page's WebAssembly.Module, or undefined
const pageModule = new Promise((r) => (fromPage = r));
let wasmReady;
const load = (byPage) =>
  (wasmReady ||= (async () => {
    const given = byPage ? await pageModule : undefined;
    if (given) stamp('module');
    const exports = await init({ module_or_path: given || early || fetchWasm() });
    return { exports, loadMs: performance.now() - t0, wasm: given ? 'page' : 'fetched' };
  })());

const get = async (url) => {
  const r = await fetch(url, { signal: AbortSignal.timeout?.(5000) });
  if (!r.ok) throw `HTTP ${r.status}: ${url}`;
  return r;
};

/** What the worker scores this visitor with, so that the page scores the same: the deployment's
 * site tables (GET /v1/site, asked by version: the browser may keep it) and the bundle that scores
 * this visitor (its experiment arm, pinned in its Durable Object or what its first sight will pin,
 * else the active version): GET /v1/models/{version}, immutable, as GET /v1/config names it; none
 * for the embedded default, which this module embeds. */
async function deployment(endpoint, vid) {
  // Visitor ids, versions (hex) and bundle names need no escaping.
  const { site, arm, bundle: url } = await (await get(`${endpoint}/v1/config?visitor_id=${vid}`)).json();
  const tables = site.version && (await (await get(`${endpoint}/v1/site?v=${site.version}`)).text());
  let bundle;
  if (url) {
    const b = await (await get(`${endpoint}${url}?form=served`)).json();
    bundle = { forest: Uint8Array.from(atob(b.forest), (c) => c.charCodeAt(0)), card: JSON.stringify(b.card) };
  }
  return { site: tables || undefined, arm, bundle };
}

const plain = (e) => ({ code: (e && e.code) || 'error', message: String((e && e.message) || e) });

/** A message handler for one page; `post(msg)` carries replies back. */
export function engine(post) {
  let scorer = null;
  let arm = null; // the experiment arm the scorer is, named in every score as the worker names it
  let memory;
  let loadMs;
  let wasm;

  async function handle(msg) {
    if (msg.t === 'init') {
      try {
        ({ exports: { memory }, loadMs, wasm } = await load(inWorker && msg.wasm === 'page'));
      } catch (e) {
        return post({ t: 'failed', message: plain(e).message });
      }
      if (scorer) scorer.free();
      scorer = null;
      let d = {};
      let degraded;
      if (msg.endpoint) {
        try {
          d = await deployment(msg.endpoint, msg.vid);
        } catch (e) {
          degraded = 'deployment: ' + plain(e).message;
        }
      }
      arm = d.arm || null;
      const t = performance.now();
      const make = (rules) =>
        d.bundle
          ? LeadScorer.fromForest(d.bundle.forest, d.bundle.card, msg.vid, msg.saved, rules, d.site)
          : new LeadScorer(msg.vid, msg.saved, rules, d.site);
      let rulesRefused;
      try {
        scorer = make(msg.rules);
      } catch (e) {
        // Bad page rules: the card's own, so the page is still scored.
        rulesRefused = plain(e);
        try {
          scorer = make(undefined);
        } catch (e2) {
          return post({ t: 'failed', message: plain(e2).message });
        }
      }
      const constructMs = performance.now() - t;
      stamp('constructed');
      const { modelVersion, featureCount } = scorer;
      return post({ t: 'ready', modelVersion, featureCount, rulesRefused, loadMs, constructMs, wasm, degraded, at });
    }
    if (msg.t === 'events' && scorer) {
      const refused = [];
      msg.events.forEach((json, i) => {
        try {
          scorer.apply(json, msg.now);
        } catch (e) {
          refused.push({ i, ...plain(e) });
        }
      });
      let score = null;
      let error;
      try {
        score = scorer.score(msg.now);
        if (arm) score.arm = arm;
      } catch (e) {
        error = plain(e);
      }
      const state = scorer.save();
      post(
        {
          t: 'applied',
          refused,
          score,
          error,
          state,
          features: Array.from(scorer.features()),
          memory: memory ? memory.buffer.byteLength : null,
        },
        [state.buffer],
      );
    }
  }

  // Serialised: an init waits for the module, and events after it must wait too.
  let chain = Promise.resolve();
  return (msg) => {
    chain = chain.then(() => handle(msg)).catch((e) => post({ t: 'failed', message: plain(e).message }));
  };
}

// In a Worker: wire the engine to postMessage.
if (inWorker) {
  const handle = engine((m, transfer) => self.postMessage(m, transfer || []));
  // The module bypasses the engine's queue: an init already in it may be waiting for it.
  self.onmessage = (e) => (e.data?.t === 'module' ? fromPage(e.data.module) : handle(e.data));
}
