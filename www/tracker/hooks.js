// What a score does on the page: on('score'/'event') handlers, the `leadscore:score` DOM event, the
// tier class on <html> and data-ls=on|off on personalised elements.
import { set } from './storage.js';
import { mark, warn } from './util.js';

const D = document;
const H = D.documentElement;
const P = performance;

/** The last score object (null before the first). */
export let current = null;
let sig = '';
let firstScore = true;
/** on() handlers by event name. */
export const handlers = { score: [] };

/** Whether a score has been shown (a new on('score') handler gets it at once). */
export const hasScore = () => Boolean(current && sig);

/** reset(): the score belongs to the visitor that is gone. */
export function forgetScore() {
  current = null;
  sig = '';
}

/** An event the core accepted: to on('event') handlers. */
export function accepted(e) {
  (handlers.event || []).forEach((fn) => call(fn, e));
}

export function scored(s) {
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

export const call = (fn, s) => {
  try {
    fn(s);
  } catch (err) {
    warn('handler threw', err);
  }
};

/** Tier class on <html>; data-ls=on|off on every personalised element. */
export function paint() {
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
