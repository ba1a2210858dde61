// Helpers shared by the worker end-to-end tests and the load test.
import fs from "node:fs";
import http from "node:http";
import path from "node:path";
import { ROOT } from "./receiver.mjs";

export const SITE_KEY = "demo-site-key";
export const FIXTURE = path.join(ROOT, "tests", "fixtures", "sample_events.ndjson");

/** The fixture's valid events, grouped by visitor, in file order (the repeated line dropped). */
export function fixtureJourneys(file = FIXTURE) {
  const out = {};
  const seen = new Set();
  for (const line of fs.readFileSync(file, "utf8").split("\n")) {
    if (!line.trim()) continue;
    const ev = JSON.parse(line);
    if (typeof ev.ts !== "number" || seen.has(ev.id)) continue; // the fixture's broken and repeated lines
    seen.add(ev.id);
    (out[ev.visitor_id] ??= []).push(ev);
  }
  return out;
}

/**
 * A fixture journey (`v-hot`, `v-warm`, `v-cold`) replayed as a new visitor: fresh visitor/event/lead ids,
 * timestamps shifted so that the last event happened `endAgoMs` before `now` (gaps kept: v-hot's earlier
 * session stays 3 days before its second one, inside the worker's 7-day clamp).
 */
export function journey(name, { visitor, lead, now = Date.now(), endAgoMs = 1000 } = {}) {
  const evs = fixtureJourneys()[name];
  if (!evs) throw new Error(`no fixture journey ${name}`);
  const shift = now - endAgoMs - evs[evs.length - 1].ts;
  return evs.map((e, i) => {
    const ev = { ...e, id: `${visitor}-${i + 1}`, visitor_id: visitor, ts: e.ts + shift };
    if (ev.lead_id) ev.lead_id = lead ?? `${visitor}@acme.example`;
    return ev;
  });
}

/** `n` plausible events (page → scroll → engaged → click → page_end …) for `visitor`, 1 s apart from `start`. */
export function syntheticEvents(visitor, n, { start = Date.now() - 60_000, offset = 0, pages = ["/", "/blog/lead-scoring-guide/", "/products/", "/pricing/"] } = {}) {
  const out = [];
  for (let i = 0; i < n; i++) {
    const k = offset + i;
    const page = pages[Math.floor(k / 5) % pages.length];
    const base = { id: `${visitor}-${k}`, ts: start + k * 1000, visitor_id: visitor };
    switch (k % 5) {
      case 0:
        out.push({ ...base, type: "page", url: `https://acme.example${page}`, referrer: k === 0 ? "https://www.google.com/" : undefined, tz_offset: 60 });
        break;
      case 1:
        out.push({ ...base, type: "scroll", props: { depth: 50 } });
        break;
      case 2:
        out.push({ ...base, type: "engaged", path: page, engaged_ms: 1500 });
        break;
      case 3:
        out.push({ ...base, type: "click", props: { cta: "demo" } });
        break;
      default:
        out.push({ ...base, type: "page_end", path: page, engaged_ms: 1800 });
    }
    if (out[out.length - 1].referrer === undefined) delete out[out.length - 1].referrer;
  }
  return out;
}

export function batch(visitor, events, { siteKey = SITE_KEY, consent = { crm: true } } = {}) {
  const b = { site_key: siteKey, visitor_id: visitor, events };
  if (consent !== null) b.consent = consent; // null: no consent object at all
  return b;
}

/** A small fetch wrapper: {status, headers, text, json} (json null when the body is not JSON). */
export function client(base, { token } = {}) {
  async function request(method, p, { body, raw, headers = {}, auth, timeout = 30_000 } = {}) {
    const h = { ...headers };
    let payload = raw;
    if (body !== undefined) {
      payload = JSON.stringify(body);
      h["content-type"] ??= "application/json";
    }
    const bearer = auth === undefined ? null : auth === true ? token : auth;
    if (bearer) h.authorization = `Bearer ${bearer}`;
    const r = await fetch(new URL(p, base), { method, headers: h, body: payload, signal: AbortSignal.timeout(timeout) });
    const text = await r.text();
    let json = null;
    try {
      json = JSON.parse(text);
    } catch {
      /* not JSON */
    }
    return { status: r.status, headers: r.headers, text, json };
  }
  return {
    request,
    get: (p, o) => request("GET", p, o),
    post: (p, body, o = {}) => request("POST", p, { ...o, body }),
    put: (p, raw, o = {}) => request("PUT", p, { ...o, raw, headers: { "content-type": "application/json", ...o.headers } }),
    events: (b, o = {}) => request("POST", "/v1/events", { ...o, body: b }),
  };
}

/** A short description of a response, for assertion messages. */
export function show(res) {
  return `HTTP ${res.status} ${res.text.slice(0, 400)}`;
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export function percentile(sorted, p) {
  if (!sorted.length) return null;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i];
}

/**
 * A journey from `[type, path, engagedMs?]` steps, 5 s apart, ending `endAgoMs` before now: `page` steps
 * carry a url, `page_end` steps the path and engaged time. `hotThenDrop` below goes hot at its third step
 * (entering /signup) and falls by more than 10 points by its fifth (default model).
 */
export function pathJourney(visitor, steps, { now = Date.now(), endAgoMs = 1000, ua } = {}) {
  const start = now - endAgoMs - (steps.length - 1) * 5000;
  return steps.map(([type, p, ms], i) => {
    const e = { id: `${visitor}-${i + 1}`, type, ts: start + i * 5000, visitor_id: visitor };
    if (type === "page") {
      e.url = `https://acme.example${p}`;
      if (i === 0) {
        e.referrer = "https://www.google.com/";
        e.tz_offset = 60;
        if (ua) e.ua = ua;
      }
    } else {
      e.path = p;
      e.engaged_ms = ms;
    }
    return e;
  });
}

/** Hot after its first three events; the rest (a short signup visit, then the blog: page value and
 *  engaged time per page fall) drops the default model's score by ≥ 10 (CLI `--each`: 82 68 80 70 64). */
export const HOT_THEN_DROP = [
  ["page", "/products/scoring"],
  ["page_end", "/products/scoring", 60000],
  ["page", "/signup"],
  ["page_end", "/signup", 30000],
  ["page", "/blog"],
];

/**
 * POSTs a chunked body (no content-length) of `totalBytes` to `url`, writing 64 KB chunks as fast as
 * the connection takes them, until the server answers or closes. Resolves {status, text, sentBytes}
 * (status null when the connection was closed without an answer).
 */
export function chunkedUpload(url, totalBytes, { headers = {} } = {}) {
  return new Promise((resolve) => {
    const chunk = Buffer.alloc(64 * 1024, 0x20);
    let sent = 0;
    let done = false;
    const finish = (v) => {
      if (!done) {
        done = true;
        resolve({ ...v, sentBytes: sent });
      }
    };
    const req = http.request(url, { method: "POST", headers: { "content-type": "application/json", ...headers } });
    req.on("response", (res) => {
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (d) => (text += d));
      res.on("end", () => finish({ status: res.statusCode, text }));
      res.on("error", () => finish({ status: res.statusCode, text }));
      req.destroyed || sent >= totalBytes || req.destroy();
    });
    req.on("error", () => finish({ status: null, text: "" }));
    const pump = () => {
      while (!done && !req.destroyed && sent < totalBytes) {
        sent += chunk.length;
        if (!req.write(chunk)) return req.once("drain", pump);
      }
      if (sent >= totalBytes && !req.destroyed) req.end();
    };
    pump();
  });
}

/** The site backend's signature of a lead id (src/identity.rs), as the demo backend makes it. */
export { signLead } from "./demo-backend.mjs";

/** Starts one stack for a test file, on free ports, with fresh state and its own logs. */
export async function testStack(name, vars = {}) {
  const { startStack } = await import("./stack.mjs");
  const rlog = path.join(ROOT, "target", `worker-test-${name}-receiver.log`);
  fs.mkdirSync(path.dirname(rlog), { recursive: true });
  fs.writeFileSync(rlog, "");
  const s = await startStack({
    port: "auto",
    receiverPort: "auto",
    backendPort: "auto",
    fresh: true,
    vars,
    logFile: path.join(ROOT, "target", `worker-test-${name}.log`),
    // WORKER_TEST_CONFIG: another wrangler config (e.g. a stand-in worker to dry-run the tests).
    config: process.env.WORKER_TEST_CONFIG || undefined,
    // Rebuild only when build/ is older than its sources; LEADSCORE_STACK_BUILD=1 always rebuilds.
    build: process.env.LEADSCORE_STACK_BUILD === "1" ? true : "auto",
    receiverLog: (l) => fs.appendFileSync(rlog, `${new Date().toISOString()} ${l}\n`),
  });
  return { ...s, api: client(s.base, { token: s.devVars.API_TOKEN }), receiverLogFile: rlog };
}

/** A committed bundle (`models/<dir>/`) as a registry upload document (`PUT /v1/models/{name}`: README,
 * "Model registry"), with any of its parts replaced by `edit` ({card, onnx, golden}). */
export function bundleUpload(dir, edit = {}) {
  const read = (f) => fs.readFileSync(path.join(ROOT, "models", dir, f));
  const card = edit.card ?? read("card.json").toString("utf8");
  const onnx = edit.onnx ?? read("model.onnx");
  const golden = edit.golden ?? read("golden.json").toString("utf8");
  return `{"card":${card},"model":"${Buffer.from(onnx).toString("base64")}","golden":${golden}}`;
}

/** The default model's card (for cross-checks of /v1/model and scores). */
export function card() {
  return JSON.parse(fs.readFileSync(path.join(ROOT, "models", "default", "card.json"), "utf8"));
}

/** Throws unless `s` is a well-formed score object; returns it. */
export function checkScore(assert, s, { visitor, lead, features, tiers = card().tiers } = {}) {
  assert.ok(s && typeof s === "object", `score object expected, got ${JSON.stringify(s)}`);
  if (visitor !== undefined) assert.equal(s.visitor_id, visitor);
  if (lead !== undefined) assert.equal(s.lead_id ?? null, lead);
  assert.ok(Number.isInteger(s.ai_score) && s.ai_score >= 0 && s.ai_score <= 100, `ai_score ${s.ai_score}`);
  assert.ok(s.probability >= 0 && s.probability <= 1, `probability ${s.probability}`);
  assert.ok(s.raw_probability >= 0 && s.raw_probability <= 1, `raw_probability ${s.raw_probability}`);
  assert.equal(s.ai_score, Math.round(100 * s.probability), "ai_score = round(100·probability)");
  const tier = s.ai_score >= tiers.hot ? "hot" : s.ai_score >= tiers.warm ? "warm" : "cold";
  assert.equal(s.tier, tier, `tier of ${s.ai_score}`);
  assert.ok(s.score_confidence >= 0 && s.score_confidence <= 1, `score_confidence ${s.score_confidence}`);
  assert.ok(Array.isArray(s.key_factors) && s.key_factors.length >= 1 && s.key_factors.length <= 5, `key_factors ${JSON.stringify(s.key_factors)}`);
  for (const f of s.key_factors) {
    assert.equal(typeof f.feature, "string");
    if (features) assert.ok(features.includes(f.feature), `unknown factor ${f.feature}`);
    assert.equal(typeof f.value, "number");
    assert.equal(typeof f.impact, "number");
  }
  const imp = s.key_factors.map((f) => Math.abs(f.impact));
  assert.deepEqual(imp, [...imp].sort((a, b) => b - a), "key_factors ordered by |impact|");
  assert.equal(typeof s.model_version, "string");
  assert.ok(Number.isInteger(s.score_timestamp) && s.score_timestamp > 946684800000, `score_timestamp ${s.score_timestamp}`);
  return s;
}

/** Asserts the error contract: status, JSON {error: {code, message}}. */
export function checkError(assert, res, status, code) {
  assert.equal(res.status, status, `expected ${status} ${code ?? ""}, got ${show(res)}`);
  assert.ok(res.json && res.json.error && typeof res.json.error.message === "string", `error JSON expected, got ${show(res)}`);
  if (code) assert.equal(res.json.error.code, code, `expected code ${code}, got ${show(res)}`);
  assert.match(res.headers.get("content-type") ?? "", /application\/json/);
}

/** Resident memory (KB) of the workerd processes in the stack's process group. */
export function workerdRssKb(pgid) {
  let kb = 0;
  for (const pid of fs.readdirSync("/proc").filter((p) => /^\d+$/.test(p))) {
    try {
      const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      if (Number(fields[2]) !== pgid) continue; // field 5: process group
      const status = fs.readFileSync(`/proc/${pid}/status`, "utf8");
      if (!/^Name:\s*workerd/m.test(status)) continue;
      kb += Number(/^VmRSS:\s*(\d+)/m.exec(status)?.[1] ?? 0);
    } catch {
      /* gone */
    }
  }
  return kb;
}
