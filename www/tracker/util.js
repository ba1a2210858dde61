// Small helpers every tracker module shares.

/** A console warning, prefixed. */
export const warn = (...a) => console.warn('leadscore:', ...a);
/** Wall-clock ms (event times). */
export const now = () => Date.now();
/** A performance mark `leadscore:<name>` (load and first-score timings in benchmarks). */
export const mark = (name, startTime) => {
  try {
    performance.mark('leadscore:' + name, { startTime }); // undefined: now
  } catch {}
};
