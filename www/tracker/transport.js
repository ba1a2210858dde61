// The transport: a persisted queue (`ls_q`) of events for the endpoint, sent in batches of one
// visitor (≤ MAX_BATCH_EVENTS events, ≤ MAX_BODY bytes) with fetch keepalive, sendBeacon when the
// page goes away, and retries on the policy of ./retry.js. Nothing is sent without consent
// (./consent.js); events made before a decision are held, then sent or dropped.
import { cfg } from './config.js';
import { allowed, crmAllowed, undecided } from './consent.js';
import { MAX_BATCH_EVENTS, MAX_BODY_BYTES } from './limits.js';
import { retryWaitMs } from './retry.js';
import { del, readJSON, set } from './storage.js';
import { bytes } from './text.js';
import { now, warn } from './util.js';

const N = navigator;
const MAX_EVENTS = MAX_BATCH_EVENTS;
// Bytes: under the 64 KiB keepalive/beacon budget (and the worker's body limit).
const MAX_BODY = Math.min(64000, MAX_BODY_BYTES);

/** pagehide seen: no more sending from this page unless it is restored. */
export let unloaded = false;

let timer = 0;
let timerAt = 0;
let inflight = null; // {ids:Set, ctrl}
let beaconed = new Set(); // ids handed to sendBeacon on this page (outcome unknown; still queued)
let attempt = 0;
let backoffUntil = 0;
let dropped = 0;
let held = []; // made before a consent decision; sent if it is granted, dropped if refused

export const qRead = () => {
  const q = readJSON('q', []);
  return Array.isArray(q) ? q : [];
};
const qWrite = (q) => {
  if (!q.length) del('q');
  else if (!set('q', JSON.stringify(q))) warn('queue not saved (storage full?)');
};

/** Queues an event for the endpoint (held while consent is undecided, dropped when refused). */
export function enqueue(e) {
  if (!allowed()) {
    if (cfg.endpoint && undecided() && held.length < 200) held.push(e);
    return;
  }
  const q = qRead();
  q.push(e);
  if (q.length > cfg.maxQueue) {
    const n = q.length - cfg.maxQueue;
    q.splice(0, n);
    dropped += n;
    warn(`queue full: dropped ${n} oldest (${dropped} on this page)`);
  }
  qWrite(q);
  schedule(q.length >= cfg.batchSize ? 0 : cfg.flushMs);
}

/** Sends in `ms` (or when the backoff ends, if later). */
export function schedule(ms) {
  const at = Math.max(now() + ms, backoffUntil);
  if (timer && timerAt <= at) return;
  clearTimeout(timer);
  timerAt = at;
  timer = setTimeout(() => {
    timer = 0;
    flush(false);
  }, at - now());
}

/** The next batch: the oldest events of one visitor, ≤ MAX_EVENTS and ≤ MAX_BODY bytes. */
function nextBatch(skip) {
  const events = [];
  let v;
  let size = 0;
  for (const e of qRead()) {
    if (skip.has(e.id)) continue;
    if (v === undefined) {
      v = e.visitor_id;
      size = bytes(body(v, [])) + 8;
    } else if (e.visitor_id !== v) break;
    const n = bytes(JSON.stringify(e)) + 1;
    if (events.length === MAX_EVENTS || size + n > MAX_BODY) break;
    events.push(e);
    size += n;
  }
  return events.length ? { v, events, text: body(v, events) } : null;
}

const body = (v, events) =>
  JSON.stringify({ site_key: cfg.siteKey, visitor_id: v, consent: { analytics: allowed(), crm: crmAllowed() }, events });
const url = () => cfg.endpoint + '/v1/events';

/** Sends queued events: one batch at a time with fetch keepalive. `unloading` (pagehide): hand
 * everything not in flight to sendBeacon. Entries stay queued until a 2xx is seen, so a beaconed
 * event is re-sent by the next page (at-least-once; the core de-duplicates by event id). */
export function flush(unloading) {
  if (!allowed() || unloaded) return;
  if (unloading) {
    if (attempt > 0) return; // endpoint failing: the persisted queue waits for the next page
    const skip = new Set([...beaconed, ...(inflight ? inflight.ids : [])]);
    let b;
    while ((b = nextBatch(skip))) {
      b.events.forEach((e) => skip.add(e.id));
      let ok = false;
      try {
        ok = N.sendBeacon
          ? N.sendBeacon(url(), new Blob([b.text], { type: 'text/plain' }))
          : (fetch(url(), { method: 'POST', body: b.text, keepalive: true, headers: { 'content-type': 'text/plain' } }).catch(() => {}), true);
      } catch {}
      if (!ok) break;
      b.events.forEach((e) => beaconed.add(e.id));
    }
    return;
  }
  if (inflight) return;
  if (now() < backoffUntil) return schedule(0);
  const b = nextBatch(beaconed);
  if (!b) return;
  const ctrl = typeof AbortController === 'function' ? new AbortController() : undefined;
  const ids = new Set(b.events.map((e) => e.id));
  const mine = (inflight = { ids, ctrl });
  fetch(url(), {
    method: 'POST',
    body: b.text,
    keepalive: true,
    headers: { 'content-type': 'text/plain' },
    signal: ctrl && ctrl.signal,
  })
    .then((res) => {
      if (inflight !== mine) return;
      inflight = null;
      const s = res.status;
      if (s >= 200 && s < 300) {
        attempt = 0;
        backoffUntil = 0;
        remove(ids);
      } else if (s === 408 || s === 429 || s >= 500) {
        return retry(res.headers.get('retry-after'));
      } else {
        warn(`endpoint refused ${ids.size} event(s) (HTTP ${s}); dropped`);
        remove(ids);
      }
      if (qRead().length) schedule(0);
    })
    .catch(() => {
      if (inflight !== mine) return;
      inflight = null;
      retry(null);
    });
}

function remove(ids) {
  qWrite(qRead().filter((e) => !ids.has(e.id)));
}

function retry(after) {
  attempt++;
  backoffUntil = now() + retryWaitMs(attempt, cfg.retryBaseMs, cfg.retryMaxMs, Math.random(), after, now());
  schedule(0);
}

/** The page is going away (pagehide: true) or was restored from the back/forward cache (false:
 * what was beaconed is sent again, the core de-duplicates). */
export function pageLeft(left) {
  unloaded = left;
  if (!left) beaconed = new Set();
}

/** Consent withdrawn: nothing queued, held or in flight is sent. */
export function stopSending() {
  held = [];
  del('q');
  clearTimeout(timer);
  timer = 0;
  if (inflight) {
    inflight.ctrl && inflight.ctrl.abort();
    inflight = null;
  }
}

/** Consent granted: the held events go to the queue, and out. */
export function releaseHeld() {
  const h = held;
  held = [];
  h.forEach(enqueue);
  schedule(0);
}

/** A decision was made: events held for it are no longer needed. */
export function dropHeld() {
  held = [];
}

/** Events dropped from a full queue on this page. */
export const droppedCount = () => dropped;
