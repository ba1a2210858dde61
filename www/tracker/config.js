// The tracker's options: these defaults, overridden once by `init(options)`.

export const cfg = {
  endpoint: '', // e.g. "https://edge.example"; events go to `${endpoint}/v1/events`. Empty: never send.
  siteKey: '',
  categories: undefined, // page rules [{prefix|exact, tags}], tried before the model card's
  consent: 'required', // 'required': send only after consent({analytics:true}); 'granted': send unless withdrawn
  heartbeatMs: 15000, // an `engaged` event per this much engaged time
  idleMs: 60000, // no input for this long ⇒ no longer engaged (until the next input)
  flushMs: 2000, // batch window
  batchSize: 20, // flush at once when this many events are waiting
  maxQueue: 500, // persisted queue bound; the oldest are dropped beyond it
  retryBaseMs: 1000,
  retryMaxMs: 60000,
  sessionMs: 30 * 60000, // for "first page of a session" (referrer); sessions themselves are the core's
  autoPage: true,
  fullUrl: false, // false: the url sent keeps only utm_* query parameters and drops the fragment
};
