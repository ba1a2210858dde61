// The tracker's retry policy for its events endpoint: when the next attempt may go.
//
// * Backoff: exponential from `baseMs`, doubled per failed attempt, capped at `maxMs`, with "equal
//   jitter" (half the step fixed, half random), so retries never bunch up and never come sooner
//   than half the step.
// * `Retry-After`: the rule the webhook consumer follows too (src/webhook.rs parse_retry_after):
//   delta-seconds (digits only), or an IMF-fixdate HTTP-date (`Wed, 21 Oct 2015 07:28:00 GMT`,
//   rounded up to whole seconds; a past date is 0); anything else is ignored. Both are tested on
//   tests/fixtures/retry_after.json. It is a lower bound on the wait, honoured up to an hour.

const DAYS = ['Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat', 'Sun'];
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const FIXDATE = /^([A-Z][a-z]{2}), (\d{2}) ([A-Z][a-z]{2}) (\d{4}) (\d{2}):(\d{2}):(\d{2}) GMT$/;
/** Longest `Retry-After` the tracker honours (ms). */
export const MAX_RETRY_AFTER_MS = 3600e3;

/** `Retry-After` as whole seconds from `nowMs`, or null when the header is to be ignored. */
export function retryAfterSeconds(value, nowMs) {
  if (typeof value !== 'string') return null;
  const v = value.trim();
  if (/^\d+$/.test(v)) {
    const n = Number(v);
    return n <= 4294967295 ? n : null;
  }
  const m = FIXDATE.exec(v);
  if (!m || !DAYS.includes(m[1])) return null;
  const month = MONTHS.indexOf(m[3]);
  const [day, year, h, min, s] = [m[2], m[4], m[5], m[6], m[7]].map(Number);
  if (month < 0 || h > 23 || min > 59 || s > 60) return null;
  const at = Date.UTC(year, month, day, h, min, s);
  const d = new Date(at);
  // A day the month does not have (31 Feb) does not round-trip.
  if (d.getUTCFullYear() !== year || d.getUTCMonth() !== month || d.getUTCDate() !== day) return null;
  return Math.max(0, Math.ceil((at - nowMs) / 1000));
}

/** Wait before retry number `attempt` (1-based): equal jitter, `unit` ∈ [0, 1). */
export function backoffMs(attempt, baseMs, maxMs, unit) {
  const step = Math.min(maxMs, baseMs * 2 ** (attempt - 1));
  return step / 2 + (unit * step) / 2;
}

/** The wait after a failed attempt: the backoff, or the server's `Retry-After` if longer. */
export function retryWaitMs(attempt, baseMs, maxMs, unit, retryAfter, nowMs) {
  const wait = backoffMs(attempt, baseMs, maxMs, unit);
  const secs = retryAfterSeconds(retryAfter, nowMs);
  return secs === null ? wait : Math.max(wait, Math.min(secs * 1000, MAX_RETRY_AFTER_MS));
}
