// leadscore tracker: captures a visitor's behaviour as events (www/event.schema.json), scores every
// event on the device with the wasm core, run off the main thread in a Worker (score-worker.js,
// next to this file), personalises the page from the score and — only with an endpoint, consent and
// no Global Privacy Control — sends the events to the edge endpoint in batches, with a persistent
// retry queue (./tracker/transport.js). This file is the entry: engine hand-off, capture,
// personalisation and the public API; ./tracker/ holds config, consent, storage, text, transport,
// the retry policy and the limits generated from the core.
//
// JS never computes features or scores: it builds events, hands them to the engine (LeadScorer.apply)
// and reads back its score. Loaded as an ES module by the snippet (www/snippet.js), which queues
// calls made before this file has run; they are replayed here in order.

import {
  MAX_ENGAGED_MS,
  MAX_ID_LEN,
  MAX_KEY_LEN,
  MAX_LEAD_ID_LEN,
  MAX_MAP_ENTRIES,
  MAX_PATH_LEN,
  MAX_UA_LEN,
  MAX_URL_LEN,
  MAX_VALUE_LEN,
} from './tracker/limits.js'; // generated from src/event/limits.rs
import { cfg } from './tracker/config.js';
import { allowed, consentState, gpc, undecided } from './tracker/consent.js';
import { VID, cookie, del, get, readJSON, set, setCookie } from './tracker/storage.js';
import { b64, bytes, cut, uid, unb64 } from './tracker/text.js';
import { dropHeld, droppedCount, enqueue, flush, pageLeft, qRead, releaseHeld, schedule, stopSending, unloaded } from './tracker/transport.js';

const W = window;
const D = document;
const N = navigator;
const H = D.documentElement;
const P = W.performance;
const mark = (name) => {
  try {
    P.mark('leadscore:' + name);
  } catch {}
};
mark('load-start');

const warn = (...a) => console.warn('leadscore:', ...a);
const now = () => Date.now();

// ---------------------------------------------------------------- configuration and state

let inited = false;
let failed = false; // the engine could not load: events still go to the endpoint, unscored
let rules; // page rules JSON for LeadScorer
let current = null; // last score object
let sig = '';
let firstScore = true;
const handlers = { score: [] };

// Visitor id: localStorage, else the first-party cookie, else new. id_persistent: true when it came
// from storage; false when it cannot be stored (so the core counts the visitor type as unknown).
let vid = get('vid') || cookie();
let idPersistent = true;
if (!vid || !VID.test(vid)) {
  vid = uid();
  idPersistent = set('vid', vid) ? undefined : false;
} else set('vid', vid);

// ---------------------------------------------------------------- scoring engine (score-worker.js)
// Events go to the transport at once (nothing made is lost if the page goes away) and to the engine
// in one batch per task; its answer carries the score, the saved state and refusals, in order.
const ENGINE = new URL('score-worker.js', import.meta.url);
let send = null; // (msg) => void into the engine; null while it is being made
let initMsg = null; // the current scorer's init (re-sent if the engine has to be remade)
let gen = 0; // bumped by reset(): answers for an older visitor are ignored
let outbox = []; // events made and not yet posted
let sent = []; // posted batches not yet answered, oldest first: {gen, events, msg}
let draining = false;
let meta = {}; // modelVersion, featureCount, features, memory, from the engine's answers

const post = (msg) => send && send(msg);

/** The engine in a module Worker; in the page where a Worker cannot run it (another origin, …). */
function startEngine() {
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
function boot() {
  const saved = savedState();
  const unscored = readJSON('unscored', []);
  del('unscored');
  rules = cfg.categories ? JSON.stringify(cfg.categories) : undefined;
  initMsg = { t: 'init', vid, saved, rules, wasm: 'page' };
  post(initMsg);
  // Already sent to the endpoint by their page; the core ignores those it has seen (event ids).
  if (Array.isArray(unscored)) outbox = unscored.filter((e) => e && e.visitor_id === vid).concat(outbox);
  soon(); // after the rest of the snippet's queue: one first batch, one first score
  W.addEventListener('pagehide', keep);
  D.addEventListener('visibilitychange', () => D.visibilityState === 'hidden' && keep());
}

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
    if (m.rulesRefused) {
      warn('page rules refused:', m.rulesRefused.code, m.rulesRefused.message);
      rules = undefined;
      if (initMsg) initMsg = { ...initMsg, rules }; // a remade engine is not refused again
    }
    mark('scorer-ready');
  } else if (m.t === 'failed') {
    failed = true;
    warn('could not load the scoring module; events are not scored on this page:', m.message);
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

// ---------------------------------------------------------------- events → engine → hooks
/** While a call queued by the snippet is replayed: the time it was made (its events' `ts`). */
let callTime = null;

function event(type, extra) {
  return Object.assign({ id: uid(), type, ts: callTime ?? now(), visitor_id: vid }, extra);
}

function emit(e) {
  set('last', String(e.ts));
  if (inited) enqueue(e);
  outbox.push(e);
  if (initMsg) soon();
}

/** An event the core accepted: to on('event') handlers. */
function accepted(e) {
  (handlers.event || []).forEach((fn) => call(fn, e));
}

function scored(s) {
  current = s;
  if (firstScore) {
    firstScore = false;
    mark('first-score');
    try {
      P.measure('leadscore:load-to-first-score', 'leadscore:load-start', 'leadscore:first-score');
    } catch {}
  }
  const k = JSON.stringify([s.ai_score, s.tier, s.key_factors]);
  if (k === sig) return;
  sig = k;
  set('tier', s.tier);
  paint();
  D.dispatchEvent(new CustomEvent('leadscore:score', { detail: s }));
  handlers.score.slice().forEach((fn) => call(fn, s));
}

const call = (fn, s) => {
  try {
    fn(s);
  } catch (err) {
    warn('handler threw', err);
  }
};

/** Tier class on <html>; data-ls=on|off on every personalised element. */
function paint() {
  if (!current) return;
  const { tier, ai_score } = current;
  for (const t of ['hot', 'warm', 'cold']) H.classList.toggle('ls-tier-' + t, t === tier);
  D.querySelectorAll('[data-leadscore-show],[data-leadscore-min-score]').forEach((el) => {
    const show = el.getAttribute('data-leadscore-show');
    const min = el.getAttribute('data-leadscore-min-score');
    const on =
      (show == null || show.trim().split(/\s+/).includes(tier)) && (min == null || ai_score >= +min);
    el.setAttribute('data-ls', on ? 'on' : 'off');
  });
}

// ---------------------------------------------------------------- page views and engagement
let pv = null; // current page view: {path, acc, since, ended, depths, forms}
let lastAct = now();
let hb = 0;
let firstView = true;

const pageUrl = () => {
  if (cfg.fullUrl) return location.href.split('#')[0];
  const q = new URLSearchParams(location.search);
  for (const k of [...q.keys()]) if (!k.startsWith('utm_')) q.delete(k);
  const s = q.toString();
  return location.origin + location.pathname + (s ? '?' + s : '');
};
const visible = () => D.visibilityState === 'visible';
let focused = D.hasFocus();
const engagedNow = () => visible() && focused;

/** Moves the open engaged segment into pv.acc (capped at lastAct + idleMs) and reopens it if the
 * visitor is still engaged. */
function settle(t) {
  if (!pv) return;
  if (pv.since) {
    const end = Math.min(t, lastAct + cfg.idleMs);
    if (end > pv.since) pv.acc += end - pv.since;
    pv.since = 0;
  }
  // A page being left (pagehide) accrues nothing more: else the visibilitychange that follows
  // would send a second, near-empty page_end.
  if (!unloaded && engagedNow() && t - lastAct < cfg.idleMs) pv.since = t;
  clearTimeout(hb);
  if (pv.since) hb = setTimeout(beat, Math.max(50, cfg.heartbeatMs - pv.acc));
}

function beat() {
  settle(now());
  if (pv && pv.acc >= cfg.heartbeatMs) {
    sendEngaged('engaged');
    settle(now());
  }
}

function sendEngaged(type) {
  emit(event(type, { path: pv.path, engaged_ms: Math.min(Math.round(pv.acc), MAX_ENGAGED_MS) }));
  pv.acc = 0;
  pv.ended = type === 'page_end';
}

function endPage() {
  if (!pv) return;
  settle(now());
  if (pv.acc > 0 || !pv.ended) sendEngaged('page_end');
}

function startPage() {
  const t = now();
  const e = event('page', {
    url: cut(pageUrl(), MAX_URL_LEN),
    path: cut(location.pathname || '/', MAX_PATH_LEN),
    ua: cut(N.userAgent, MAX_UA_LEN),
    tz_offset: -new Date().getTimezoneOffset() || 0,
  });
  if (idPersistent !== undefined) e.props = { id_persistent: idPersistent };
  const ref = D.referrer;
  if (firstView && ref) {
    const last = +get('last') || 0;
    let external = true;
    try {
      external = new URL(ref).host !== location.host;
    } catch {}
    if (external || t - last > cfg.sessionMs) e.referrer = cut(ref, MAX_URL_LEN);
  }
  firstView = false;
  pv = { path: e.path, key: location.pathname + location.search, acc: 0, since: 0, ended: false, depths: new Set(), forms: new Set() };
  lastAct = t;
  emit(e);
  settle(t);
  paint();
}

/** SPA navigation: a new page view when the path or query changed. */
function route() {
  if (!pv || location.pathname + location.search === pv.key) return;
  endPage();
  startPage();
}

function onActivity() {
  const t = now();
  if (t - lastAct < 1000 && pv && pv.since) return;
  settle(t);
  lastAct = t;
  settle(t);
}

let scrollQueued = false;
function onScroll() {
  onActivity();
  if (scrollQueued) return;
  scrollQueued = true;
  requestAnimationFrame(() => {
    scrollQueued = false;
    if (!pv) return;
    const max = Math.max(H.scrollHeight, D.body ? D.body.scrollHeight : 0);
    if (max <= 0) return;
    const depth = ((W.scrollY + W.innerHeight) / max) * 100;
    for (const d of [25, 50, 75, 100]) {
      if (depth >= d - 0.5 && !pv.depths.has(d)) {
        pv.depths.add(d);
        emit(event('scroll', { path: pv.path, props: { depth: d } }));
      }
    }
  });
}

const formName = (f) =>
  cut(f.getAttribute('id') || f.getAttribute('name') || 'form' + [...D.forms].indexOf(f), MAX_VALUE_LEN);

function listen() {
  const opt = { capture: true, passive: true };
  for (const t of ['pointerdown', 'pointermove', 'keydown', 'touchstart', 'wheel'])
    W.addEventListener(t, onActivity, opt);
  W.addEventListener('scroll', onScroll, opt);
  W.addEventListener('focus', () => {
    focused = true;
    onActivity();
  });
  W.addEventListener('blur', () => {
    focused = false;
    settle(now());
  });
  D.addEventListener('visibilitychange', () => {
    if (visible()) {
      focused = D.hasFocus();
      lastAct = now();
      settle(lastAct);
    } else {
      // Hidden (tab switch, minimise, or the first step of leaving): send now with keepalive; the
      // response is still seen if the page lives on.
      endPage();
      flush(false);
    }
  });
  W.addEventListener('pagehide', () => {
    pageLeft(true);
    endPage();
    flush(true);
  });
  W.addEventListener('pageshow', (e) => {
    // Back/forward cache restore: a new page view of the same page; re-send what was beaconed.
    if (!e.persisted) return;
    pageLeft(false);
    startPage();
    schedule(0);
  });
  // SPA navigation
  for (const m of ['pushState', 'replaceState']) {
    const orig = history[m];
    history[m] = function () {
      const r = orig.apply(this, arguments);
      try {
        route();
      } catch (err) {
        warn(err);
      }
      return r;
    };
  }
  W.addEventListener('popstate', route);
  // Marked CTAs
  D.addEventListener(
    'click',
    (e) => {
      const el = e.target && e.target.closest && e.target.closest('[data-leadscore-cta]');
      if (el) emit(event('click', { path: pv && pv.path, props: { cta: cut(el.getAttribute('data-leadscore-cta') || 'cta', MAX_VALUE_LEN) } }));
    },
    true,
  );
  // Forms: names only, never values.
  const started = (e) => {
    const f = e.target && e.target.form;
    if (!f || !pv || pv.forms.has(f)) return;
    pv.forms.add(f);
    emit(event('form_start', { path: pv.path, props: { form: formName(f) } }));
  };
  D.addEventListener('input', started, true);
  D.addEventListener('change', started, true);
  D.addEventListener(
    'submit',
    (e) => {
      const f = e.target;
      if (f && f.tagName === 'FORM')
        emit(event('form_submit', { path: pv && pv.path, props: { form: formName(f) } }));
    },
    true,
  );
  if (D.readyState === 'loading') D.addEventListener('DOMContentLoaded', paint);
}

// ---------------------------------------------------------------- public API
function init(o) {
  if (inited) {
    warn('init called again; ignored');
    return api;
  }
  inited = true;
  for (const k in o || {}) if (o[k] !== undefined) cfg[k] = o[k];
  cfg.endpoint = String(cfg.endpoint || '').replace(/\/+$/, '');
  if (allowed()) setCookie(vid, 400 * 86400);
  outbox.forEach(enqueue); // made before init
  listen();
  if (cfg.autoPage) startPage();
  boot();
  // A queue left by an earlier page (endpoint down, or beaconed without confirmation).
  if (qRead().length) schedule(0);
  return api;
}

const scalars = (o) => {
  const out = {};
  let n = 0;
  for (const k in o || {}) {
    const v = o[k];
    if (n === MAX_MAP_ENTRIES || !k || bytes(k) > MAX_KEY_LEN) continue; // UTF-8 bytes, the core's rule
    if (typeof v === 'boolean' || (typeof v === 'number' && Number.isFinite(v))) out[k] = v;
    else if (typeof v === 'string') out[k] = cut(v, MAX_VALUE_LEN);
    else continue;
    n++;
  }
  return n ? out : undefined;
};

const TYPES = ['engaged', 'page_end', 'scroll', 'click', 'form_start', 'form_submit'];

const api = {
  version: 1,
  init,
  /** A page view now (automatic on init and on history changes; for anything else). */
  page() {
    endPage();
    startPage();
    return api;
  },
  /** track('click', {cta}) for a built-in type; anything else is a `custom` event named `type`. */
  track(type, props) {
    type = String(type);
    if (type === 'page') return api.page();
    const custom = !TYPES.includes(type);
    const e = event(custom ? 'custom' : type, { path: pv ? pv.path : undefined });
    if (custom) e.name = cut(type, MAX_ID_LEN);
    const p = scalars(props);
    if (p) e.props = p;
    emit(e);
    return api;
  },
  /** Identifies the visitor: `id` becomes lead_id (≤ MAX_LEAD_ID_LEN bytes), traits small scalars.
   * `{signature}`: the site backend's HMAC of `id` (verified by the worker; without it the
   * identify is a claim, which never joins the visitor to the lead's other devices). */
  identify(id, traits, opts) {
    const e = event('identify');
    if (id != null && id !== '') {
      if (bytes(String(id)) <= MAX_LEAD_ID_LEN) e.lead_id = String(id);
      else warn(`identify: the id is more than ${MAX_LEAD_ID_LEN} bytes; ignored`);
    }
    if (e.lead_id && opts && typeof opts.signature === 'string') e.lead_signature = opts.signature;
    const t = scalars(traits);
    if (t) e.traits = t;
    if (!e.lead_id && !e.traits) warn('identify needs an id or traits');
    else emit(e);
    return api;
  },
  /** on('score', fn): fn(score) on every score change, and at once if a score exists.
   * on('event', fn): fn(event) for every event the scorer accepted (every event made goes to the endpoint). */
  on(name, fn) {
    if (typeof fn !== 'function') return api;
    (handlers[name] = handlers[name] || []).push(fn);
    if (name === 'score' && current && sig) call(fn, current);
    return api;
  },
  off(name, fn) {
    const l = handlers[name];
    if (l) handlers[name] = l.filter((f) => f !== fn);
    return api;
  },
  /** The current score object, or null before the first one. */
  score: () => current,
  /** consent({analytics, crm}): analytics=true allows sending; false stops it and clears the queue. */
  consent(c) {
    const next = consentState();
    for (const k of ['analytics', 'crm']) if (typeof (c || {})[k] === 'boolean') next[k] = c[k];
    next.ts = now();
    set('consent', JSON.stringify(next));
    if (next.analytics === false) {
      stopSending();
      setCookie('', 0);
    } else if (allowed()) {
      setCookie(vid, 400 * 86400);
      releaseHeld();
    }
    if (!undecided()) dropHeld();
    return api;
  },
  /** Sends what is queued now. */
  flush() {
    flush(false);
    return api;
  },
  /** Forgets this visitor on the device: new id, empty state. */
  reset() {
    vid = uid();
    idPersistent = set('vid', vid) ? undefined : false;
    del('state');
    del('tier');
    current = null;
    sig = '';
    gen++;
    outbox = outbox.filter((e) => e.visitor_id === vid);
    if (initMsg) post((initMsg = { t: 'init', vid, rules }));
    if (cookie()) setCookie(vid, 400 * 86400);
    return api;
  },
  /** Diagnostics for debug panels and tests. */
  info: () => ({
    visitorId: vid,
    modelVersion: meta.modelVersion ?? null,
    featureCount: meta.featureCount ?? null,
    features: meta.features ?? null, // in the model card's order, as of the last answer
    wasmMemoryBytes: meta.memory ?? null,
    engine: {
      thread: meta.thread ?? null,
      wasm: meta.wasm ?? null,
      loadMs: meta.loadMs ?? null,
      constructMs: meta.constructMs ?? null,
    },
    queued: qRead().length,
    dropped: droppedCount(),
    sending: allowed(),
    gpc: gpc(),
    consent: consentState(),
    snippetVersion: api.snippetVersion ?? null,
  }),
};

// ---------------------------------------------------------------- replay the snippet's queue
const stub = W.leadscore;
if (stub && stub.version) {
  warn('tracker loaded twice; the second copy does nothing');
} else {
  startEngine();
  W.leadscore = api;
  const run = (call) => {
    const [m, ...args] = call;
    // A stamp from the snippet, if plausible (not in the future, not before this page's navigation).
    const t = Number(call.t);
    callTime = t > 0 && t <= now() && t >= now() - (P ? P.now() : 0) - 1000 ? Math.round(t) : null;
    try {
      if (typeof api[m] === 'function') api[m](...args);
    } catch (err) {
      warn(`queued ${m} failed`, err);
    } finally {
      callTime = null;
    }
  };
  if (Array.isArray(stub)) {
    api.snippetVersion = stub.SNIPPET_VERSION ?? null;
    const queued = stub.splice(0, stub.length);
    // Page code may have kept a reference to the stub (`const ls = window.leadscore`): its methods
    // and push now reach the tracker, as Segment's snippet does once analytics.js has loaded.
    for (const k of Object.keys(api)) if (typeof api[k] === 'function') stub[k] = api[k];
    stub.push = (...calls) => {
      for (const c of calls) if (Array.isArray(c)) run(c);
      return stub.length;
    };
    for (const c of queued) run(c);
  }
}
