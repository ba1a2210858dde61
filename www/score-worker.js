// leadscore scoring engine: the wasm core (leadscore.js + leadscore_bg.wasm, next to this file)
// behind messages. tracker.js runs it in a dedicated Worker, so that compiling the module, loading
// the model (about 100 ms on a cold page) and TreeSHAP never block the page's main thread; where a
// Worker cannot be made (the tracker served from another origin, no Worker support) it runs the
// same engine in the page. No scoring logic here either: events go to LeadScorer.apply, scores
// come from LeadScorer.score.
//
// In (one at a time, in order):
//   {t:'init', vid, saved?: Uint8Array, rules?: string}      create the scorer (replaces any)
//   {t:'events', events: [JSON string], now}                  apply in order, then score once
// Out:
//   {t:'ready', modelVersion, featureCount, rulesRefused?: {code, message}, loadMs, constructMs}
//   {t:'failed', message}                                     the module or model could not load
//   {t:'applied', refused: [{i, code, message}], score, state: Uint8Array, features, memory}

const t0 = performance.now();
// The module's bytes are fetched while its JS glue loads: one round trip instead of two.
const wasmResponse = fetch(new URL('leadscore_bg.wasm', import.meta.url));
wasmResponse.catch(() => {}); // reported through wasmReady
const wasmReady = (async () => {
  const m = await import(new URL('leadscore.js', import.meta.url).href);
  const exports = await m.default({ module_or_path: wasmResponse });
  return { m, exports, loadMs: performance.now() - t0 };
})();

const plain = (e) => ({ code: (e && e.code) || 'error', message: String((e && e.message) || e) });

/** A message handler for one page; `post(msg)` carries replies back. */
export function engine(post) {
  let scorer = null;
  let mod;
  let memory;
  let loadMs;

  async function handle(msg) {
    if (msg.t === 'init') {
      try {
        ({ m: mod, exports: { memory }, loadMs } = await wasmReady);
      } catch (e) {
        return post({ t: 'failed', message: plain(e).message });
      }
      if (scorer) scorer.free();
      const t = performance.now();
      let rulesRefused;
      try {
        scorer = new mod.LeadScorer(msg.vid, msg.saved, msg.rules);
      } catch (e) {
        // Bad page rules: the card's own, so the page is still scored.
        rulesRefused = plain(e);
        try {
          scorer = new mod.LeadScorer(msg.vid, msg.saved, undefined);
        } catch (e2) {
          return post({ t: 'failed', message: plain(e2).message });
        }
      }
      const constructMs = performance.now() - t;
      const { modelVersion, featureCount } = scorer;
      return post({ t: 'ready', modelVersion, featureCount, rulesRefused, loadMs, constructMs });
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
if (typeof WorkerGlobalScope !== 'undefined' && self instanceof WorkerGlobalScope) {
  const handle = engine((m, transfer) => self.postMessage(m, transfer || []));
  self.onmessage = (e) => handle(e.data);
}
