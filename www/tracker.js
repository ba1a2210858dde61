// leadscore tracker: captures a visitor's behaviour as events (www/event.schema.json), scores every
// event on the device with the wasm core, run off the main thread in a Worker (score-worker.js,
// next to this file), personalises the page from the score and — only with an endpoint, consent and
// no Global Privacy Control — sends the events to the edge endpoint in batches, with a persistent
// retry queue. This file is the entry: the visitor id, events, capture (page views, engagement,
// scroll, CTAs, forms) and the public API; ./tracker/ holds the rest by concern: config, consent,
// storage, text, util, engine (the scorer's Worker), hooks (what a score does on the page),
// transport, retry (the policy) and limits (generated from the core).
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
  MAX_TRAIT_VALUE_LEN,
} from './tracker/limits.js'; // generated from src/event/limits.rs
import { cfg } from './tracker/config.js';
import { allowed, consentState, gpc, undecided } from './tracker/consent.js';
import { VID, cookie, del, get, readJSON, set, setCookie } from './tracker/storage.js';
import { bytes, cut, uid } from './tracker/text.js';
import { boot, meta, newVisitor, startEngine, toEngine, unscored } from './tracker/engine.js';
import { call, current, forgetScore, handlers, hasScore, paint } from './tracker/hooks.js';
import { dropHeld, droppedCount, enqueue, flush, pageLeft, qRead, releaseHeld, schedule, stopSending, unloaded } from './tracker/transport.js';
import { mark, now, warn } from './tracker/util.js';

const W = window;
const D = document;
const N = navigator;
const H = D.documentElement;
const P = W.performance;
mark('load-start');

// ---------------------------------------------------------------- configuration and state

let inited = false;

// Visitor id: localStorage, else the first-party cookie, else new. id_persistent: true when it came
// from storage; false when it cannot be stored (so the core counts the visitor type as unknown).
let vid = get('vid') || cookie();
let idPersistent = true;
if (!vid || !VID.test(vid)) {
  vid = uid();
  idPersistent = set('vid', vid) ? undefined : false;
} else set('vid', vid);

// ---------------------------------------------------------------- events → engine → hooks
/** While a call queued by the snippet is replayed: the time it was made (its events' `ts`). */
let callTime = null;

function event(type, extra) {
  return Object.assign({ id: uid(), type, ts: callTime ?? now(), visitor_id: vid }, extra);
}

function emit(e) {
  set('last', String(e.ts));
  if (inited) enqueue(e);
  toEngine(e);
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
  unscored().forEach(enqueue); // made before init
  listen();
  if (cfg.autoPage) startPage();
  boot(vid);
  // A queue left by an earlier page (endpoint down, or beaconed without confirmation).
  if (qRead().length) schedule(0);
  return api;
}

const tooLong = (what) => warn(what + ' too long; left out');

// Props' strings are cut to fit; a trait's string too long to keep is left out with a warning
// (a cut company name would be another company).
const scalars = (o, traits) => {
  const out = {};
  let n = 0;
  for (const k in o || {}) {
    const v = o[k];
    if (n === MAX_MAP_ENTRIES || !k || bytes(k) > MAX_KEY_LEN) continue; // UTF-8 bytes, the core's rule
    const str = typeof v === 'string';
    if (typeof v === 'boolean' || (typeof v === 'number' && Number.isFinite(v))) out[k] = v;
    else if (str && !(traits && bytes(v) > MAX_TRAIT_VALUE_LEN)) out[k] = cut(v, MAX_VALUE_LEN);
    else {
      if (str) tooLong('trait ' + k);
      continue;
    }
    n++;
  }
  return n ? out : undefined;
};

const TYPES = ['engaged', 'page_end', 'scroll', 'click', 'form_start', 'form_submit'];

// identify and group: an id (lead or account), its signature, and traits.
const who = (type, key, sig) => (id, traits, opts) => {
  const e = event(type);
  if (id != null && id !== '') {
    if (bytes(String(id)) <= MAX_LEAD_ID_LEN) e[key] = String(id);
    else tooLong(type + ' id');
  }
  if (e[key] && opts && typeof opts.signature === 'string') e[sig] = opts.signature;
  const t = scalars(traits, true);
  if (t) e.traits = t;
  if (e[key] || (type == 'identify' && e.traits)) emit(e);
  else warn(type + ' needs an id');
  return api;
};

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
  /** identify(id, traits, {signature}): `id` becomes lead_id (≤ MAX_LEAD_ID_LEN bytes), traits small
   * scalars; the signature is the site backend's HMAC of `id` (without it the identify is a claim,
   * which never joins the visitor to the lead's other devices). */
  identify: who('identify', 'lead_id', 'lead_signature'),
  /** group(accountId, traits, {signature}): the visitor works for that account (its traits); the
   * backend's HMAC of `account:<accountId>` is required (a page's claim of a company is refused). */
  group: who('group', 'account_id', 'account_signature'),
  /** on('score', fn): fn(score) on every score change, and at once if a score exists.
   * on('event', fn): fn(event) for every event the scorer accepted (every event made goes to the endpoint). */
  on(name, fn) {
    if (typeof fn !== 'function') return api;
    (handlers[name] = handlers[name] || []).push(fn);
    if (name === 'score' && hasScore()) call(fn, current);
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
    forgetScore();
    newVisitor(vid);
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
  warn('loaded twice; this copy is idle');
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
