// The scoring engine's side of the tracker: the wasm LeadScorer in a module Worker
// (score-worker.js), or in the page when a Worker cannot run it; batches of events in, the score,
// the saved state and refusals out, in order. Events a page could not see scored are kept
// (`ls_unscored`) for the next page.
import { cfg } from './config.js';
import { allowed } from './consent.js';
import { accepted, scored } from './hooks.js';
import { del, get, readJSON, set } from './storage.js';
import { b64, unb64 } from './text.js';
import { mark, now, warn } from './util.js';

const W = window;
const D = document;

let failed = false; // the engine could not load: events still go to the endpoint, unscored
let rules; // page rules JSON for LeadScorer

// Events go to the transport at once (nothing made is lost if the page goes away) and to the engine
// in one batch per task; its answer carries the score, the saved state and refusals, in order.
const ENGINE = new URL('score-worker.js', import.meta.url);
let send = null; // (msg) => void into the engine; null while it is being made
let initMsg = null; // the current scorer's init (re-sent if the engine has to be remade)
let gen = 0; // bumped by reset(): answers for an older visitor are ignored
let outbox = []; // events made and not yet posted
let sent = []; // posted batches not yet answered, oldest first: {gen, events, msg}
let draining = false;
export const meta = {}; // modelVersion, featureCount, features, memory, from the engine's answers

const post = (msg) => send && send(msg);

/** The engine in a module Worker; in the page where a Worker cannot run it (another origin, …). */
export function startEngine() {
  try {
    const w = new Worker(ENGINE, { type: 'module' });
    w.onmessage = (e) => fromEngine(e.data);
    w.onerror = (e) => {
      // Not loadable (e.g. another origin) or broken: the same engine in the page takes over.
      e.preventDefault();
      w.terminate();
      inPage();
    };
    send = (m) => w.postMessage(m);
    meta.thread = 'worker';
    // The module downloads and compiles here while the Worker starts, which then gets it compiled
    // (init says so with wasm: 'page'); if that fails here, the Worker fetches it itself.
    const give = (module) => {
      if (module) mark('module-compiled');
      try {
        w.postMessage({ t: 'module', module });
      } catch {
        w.postMessage({ t: 'module' }); // a module this browser cannot pass to a Worker
      }
    };
    try {
      WebAssembly.compileStreaming(fetch(new URL('leadscore_bg.wasm', ENGINE))).then(give, () => give());
    } catch {
      give();
    }
  } catch {
    inPage();
  }
}

async function inPage() {
  send = null;
  try {
    const m = await import(ENGINE.href);
    send = m.engine((msg) => fromEngine(msg));
    meta.thread = 'page';
  } catch (e) {
    return fromEngine({ t: 'failed', message: String(e) });
  }
  // From the last saved state, with the current visitor's unanswered batches.
  sent = sent.filter((b) => b.gen === gen);
  if (initMsg) send((initMsg = { ...initMsg, saved: savedState() }));
  sent.forEach((b) => send(b.msg));
}

const savedState = () => {
  try {
    return get('state') ? unb64(get('state')) : undefined;
  } catch {
    return undefined;
  }
};

/** Creates the scorer for `vid` from the saved state and the events a left page had not seen scored. */
export function boot(vid) {
  const saved = savedState();
  const unscored = readJSON('unscored', []);
  del('unscored');
  rules = cfg.categories ? JSON.stringify(cfg.categories) : undefined;
  initMsg = init(vid, saved);
  post(initMsg);
  // Already sent to the endpoint by their page; the core ignores those it has seen (event ids).
  if (Array.isArray(unscored)) outbox = unscored.filter((e) => e && e.visitor_id === vid).concat(outbox);
  soon(); // after the rest of the snippet's queue: one first batch, one first score
  W.addEventListener('pagehide', keep);
  D.addEventListener('visibilitychange', () => D.visibilityState === 'hidden' && keep());
}

// The engine asks the endpoint for the deployment's site tables and the visitor's arm only when
// the page may send (no request before consent).
const init = (vid, saved) => ({ t: 'init', vid, saved, rules, endpoint: allowed() ? cfg.endpoint : '', wasm: 'page' });

/** Events the engine has not answered for when the page may go: scored by the next page. A page that
 * lives on (only hidden) rewrites the list as answers come, so no scored event is carried. */
let kept = false;
function keep() {
  const evs = sent.filter((b) => b.gen === gen).flatMap((b) => b.events).concat(outbox);
  if (evs.length) kept = set('unscored', JSON.stringify(evs.slice(-200)));
  else if (kept) {
    del('unscored');
    kept = false;
  }
}

/** Posts the outbox at the end of this task: one batch, so one score, however many events it made. */
function soon() {
  if (!draining) {
    draining = true;
    queueMicrotask(drain);
  }
}

function drain() {
  draining = false;
  if (!initMsg || !outbox.length) return;
  if (failed) {
    outbox.forEach(accepted);
    outbox = [];
    return;
  }
  const b = { gen, events: outbox };
  outbox = [];
  b.msg = { t: 'events', events: b.events.map((e) => JSON.stringify(e)), now: now() };
  sent.push(b);
  post(b.msg);
}

function fromEngine(m) {
  if (m.t === 'ready') {
    const { modelVersion, featureCount, loadMs, constructMs, wasm } = m;
    Object.assign(meta, { modelVersion, featureCount, loadMs, constructMs, wasm });
    // The engine's own moments, on the page's timeline (performance marks leadscore:engine-…).
    for (const [k, t] of Object.entries(m.at || {})) mark('engine-' + k, t - W.performance.timeOrigin);
    if (m.degraded) warn(m.degraded); // the default model and the card's tables score
    if (m.rulesRefused) {
      warn('page rules refused:', m.rulesRefused.code, m.rulesRefused.message);
      rules = undefined;
      if (initMsg) initMsg = { ...initMsg, rules }; // a remade engine is not refused again
    }
    mark('scorer-ready');
  } else if (m.t === 'failed') {
    failed = true;
    warn('scoring module failed:', m.message);
    sent.forEach((b) => b.events.forEach(accepted));
    sent = [];
    drain();
  } else if (m.t === 'applied') {
    const b = sent.shift();
    if (!b || b.gen !== gen) return;
    const bad = new Set(m.refused.map((r) => r.i));
    m.refused.forEach((r) => warn(`event ${b.events[r.i].type} refused (${r.code}): ${r.message}`));
    b.events.forEach((e, i) => bad.has(i) || accepted(e));
    set('state', b64(m.state));
    if (kept) keep();
    meta.features = m.features;
    meta.memory = m.memory;
    if (m.error) warn('scoring failed:', m.error.code, m.error.message);
    if (m.score) scored(m.score);
  }
}

/** An event made on this page: to the engine, in this task's batch. */
export function toEngine(e) {
  outbox.push(e);
  if (initMsg) soon();
}

/** Events made and not yet handed to the engine (before init: none were sent either). */
export const unscored = () => outbox;

/** reset(): a new visitor on this device; answers for the old one are ignored from now on. */
export function newVisitor(vid) {
  gen++;
  outbox = outbox.filter((e) => e.visitor_id === vid);
  if (initMsg) post((initMsg = init(vid)));
}
