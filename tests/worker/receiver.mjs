#!/usr/bin/env node
// A real CRM-side webhook receiver for leadscore's worker (no dependencies).
//
//   node tests/worker/receiver.mjs [--port 8790] [--host 127.0.0.1]
//       reads WEBHOOK_SECRET from the environment, else from .dev.vars at the repository root.
//
// * POST /webhook: verifies the Standard Webhooks signature (`webhook-id`, `webhook-timestamp`,
//   `webhook-signature: v1,<base64 HMAC-SHA256(key, "id.timestamp.body")>`, key = base64 of the
//   `whsec_` secret) in constant time, refuses timestamps more than 5 minutes off (401 for any
//   verification failure), de-duplicates by webhook-id and prints each new verified event as one line.
// * Control API on the same port, for tests:
//     GET  /_events  every verified delivery (`events`: first accepted delivery per id, in order;
//                    `ids`: per id: attempts, accepted, duplicates, statuses), every attempt
//                    (`attempts`, incl. those answered with a failure mode), `rejected`, `mode`
//     POST /_mode    {"mode": "ok" | "fail500" | "fail503-retry-after" | "hang", "retry_after": 1,
//                     "hang_visitors": [ids whose deliveries hang in any mode]}
//     POST /_reset   forgets everything, mode back to ok
//
// As a module: `startReceiver({port, host, secret, toleranceSeconds, log})` →
//   {url, webhookUrl, port, close(), events(), setMode(mode, opts), reset(), waitFor(pred, opts)}.

import http from "node:http";
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
const MODES = new Set(["ok", "fail500", "fail503-retry-after", "hang"]);
const MAX_BODY = 1 << 20;

/** Decodes a `whsec_<base64>` secret to the HMAC key. */
export function decodeSecret(secret) {
  if (typeof secret !== "string" || !secret.startsWith("whsec_")) {
    throw new Error("webhook secret must be `whsec_` followed by base64");
  }
  const b64 = secret.slice("whsec_".length).trim();
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(b64)) throw new Error("webhook secret: bad base64");
  const key = Buffer.from(b64, "base64");
  if (key.length < 24 || key.length > 64) throw new Error("webhook secret must hold 24 to 64 bytes");
  return key;
}

/** `v1,<base64 HMAC-SHA256(key, "id.timestamp.body")>`; body may be a string or a Buffer. */
export function sign(secret, id, timestamp, body) {
  const mac = crypto.createHmac("sha256", decodeSecret(secret));
  mac.update(`${id}.${timestamp}.`);
  mac.update(body);
  return `v1,${mac.digest("base64")}`;
}

/**
 * Verifies Standard Webhooks headers against the raw body. Returns {ok: true} or {ok: false, reason}.
 * `header` may hold several space-separated signatures; any v1 match passes.
 */
export function verify(secret, { id, timestamp, signature }, body, { toleranceSeconds = 300, now = Date.now() } = {}) {
  if (!id || !timestamp || !signature) return { ok: false, reason: "missing webhook-id/-timestamp/-signature" };
  if (!/^\d{1,12}$/.test(timestamp)) return { ok: false, reason: "bad webhook-timestamp" };
  const ts = Number(timestamp);
  if (Math.abs(now / 1000 - ts) > toleranceSeconds) return { ok: false, reason: "timestamp outside tolerance" };
  const expected = Buffer.from(sign(secret, id, timestamp, body).slice(3), "base64");
  for (const part of String(signature).split(" ")) {
    if (!part.startsWith("v1,")) continue;
    const got = Buffer.from(part.slice(3), "base64");
    if (got.length === expected.length && crypto.timingSafeEqual(got, expected)) return { ok: true };
  }
  return { ok: false, reason: "signature mismatch" };
}

/** Parses a dotenv-style file (KEY=VALUE, # comments, optional quotes). */
export function readDevVars(file = path.join(ROOT, ".dev.vars")) {
  const out = {};
  if (!fs.existsSync(file)) return out;
  for (const line of fs.readFileSync(file, "utf8").split(/\r?\n/)) {
    const m = /^\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*?)\s*$/.exec(line);
    if (!m) continue;
    let v = m[2];
    if (/^(["']).*\1$/.test(v)) v = v.slice(1, -1);
    out[m[1]] = v;
  }
  return out;
}

/** One readable line for a verified score event. */
export function formatEvent(ev) {
  const d = ev.data ?? {};
  if (Array.isArray(d.moved)) {
    // A model-health alert (src/monitor/health.rs): what moved, by how much.
    const moved = d.moved.slice(0, 4).map((m) => `${m.what} ${m.metric} ${Number(m.value).toFixed(3)}`);
    return `⚠ ${String(ev.type).padEnd(26)} ${d.model_version}${d.arm ? `/${d.arm}` : ""} window ${new Date(d.window_start).toISOString().slice(0, 10)} ${d.level}: ${moved.join(", ")}${d.moved.length > 4 ? ", …" : ""}`;
  }
  if (d.account_id) {
    // An account's score (src/account.rs): its members and those that moved it.
    const was = d.previous_score == null ? "new" : `was ${d.previous_score}`;
    return `✔ ${String(ev.type).padEnd(18)} account ${d.account_id}  score ${d.ai_score} (${was}) ${d.tier}  ${d.engaged_members}/${d.members} engaged, moved by ${d.moved_by.join(", ")}`;
  }
  const who = d.lead_id ? `${d.visitor_id} (${d.lead_id})` : `${d.visitor_id}`;
  const was = d.previous_score == null ? "new" : `was ${d.previous_score}`;
  const fmt = (x) => (typeof x === "number" ? (x >= 0 ? "+" : "") + x.toFixed(2) : String(x));
  const top = (d.key_factors ?? []).slice(0, 3).map((f) => `${f.feature} ${fmt(f.impact)}`);
  const more = (d.key_factors ?? []).length > 3 ? ", …" : "";
  return `✔ ${String(ev.type).padEnd(18)} ${who}  score ${d.ai_score} (${was}) ${d.tier}  top: ${top.join(", ")}${more}`;
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let n = 0;
    req.on("data", (c) => {
      n += c.length;
      if (n > MAX_BODY) {
        reject(Object.assign(new Error("body too large"), { status: 413 }));
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on("end", () => resolve(Buffer.concat(chunks)));
    req.on("error", reject);
  });
}

function json(res, status, obj, headers = {}) {
  const body = JSON.stringify(obj);
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(body), ...headers });
  res.end(body);
}

export function startReceiver({
  port = 8790,
  host = "127.0.0.1",
  secret,
  toleranceSeconds = 300,
  log = (line) => console.log(line),
} = {}) {
  decodeSecret(secret); // fail fast on a malformed secret
  const logLine = log || (() => {});
  let mode = "ok";
  let retryAfter = 1;
  let state;
  const hanging = new Set();
  let hangVisitors = new Set(); // visitor ids whose deliveries hang whatever the mode
  const waiters = new Set();
  const reset = () => {
    state = { events: [], ids: new Map(), attempts: [], rejected: 0, rejections: [], duplicates: 0 };
  };
  reset();

  const notify = () => {
    for (const w of [...waiters]) w();
  };

  const setMode = (m, opts = {}) => {
    if (!MODES.has(m)) throw new Error(`unknown mode ${m}`);
    mode = m;
    if (opts.retry_after != null) retryAfter = Math.max(0, Math.floor(Number(opts.retry_after)));
    hangVisitors = new Set(opts.hang_visitors ?? []);
    // Requests already hanging stay unanswered until the sender gives up (its timeout) or close().
    logLine(`· receiver mode: ${m}${m === "fail503-retry-after" ? ` (Retry-After: ${retryAfter})` : ""}`);
  };

  const snapshot = () => ({
    mode,
    events: state.events.map((e) => ({ ...e })),
    ids: Object.fromEntries([...state.ids].map(([k, v]) => [k, { ...v, statuses: [...v.statuses] }])),
    attempts: state.attempts.map((a) => ({ ...a })),
    rejected: state.rejected,
    rejections: [...state.rejections],
    duplicates: state.duplicates,
  });

  async function onWebhook(req, res) {
    const body = await readBody(req);
    const headers = {
      id: req.headers["webhook-id"],
      timestamp: req.headers["webhook-timestamp"],
      signature: req.headers["webhook-signature"],
    };
    const v = verify(secret, headers, body, { toleranceSeconds });
    if (!v.ok) {
      state.rejected += 1;
      state.rejections.push({ at: Date.now(), id: headers.id ?? null, reason: v.reason });
      logLine(`✘ rejected webhook ${headers.id ?? "(no id)"}: ${v.reason}`);
      notify();
      return json(res, 401, { error: { code: "invalid_signature", message: v.reason } });
    }
    let payload;
    try {
      payload = JSON.parse(body.toString("utf8"));
    } catch {
      payload = null;
    }
    const id = headers.id;
    const attempt = {
      id,
      at: Date.now(),
      webhook_timestamp: Number(headers.timestamp),
      content_type: req.headers["content-type"] ?? null,
      type: payload?.type ?? null,
      visitor_id: payload?.data?.visitor_id ?? null,
      mode,
      status: null,
      payload,
    };
    state.attempts.push(attempt);
    let rec = state.ids.get(id);
    if (!rec) {
      rec = { attempts: 0, accepted: false, duplicates: 0, statuses: [] };
      state.ids.set(id, rec);
    }
    rec.attempts += 1;

    if (mode === "hang" || hangVisitors.has(attempt.visitor_id)) {
      attempt.status = "hang";
      rec.statuses.push("hang");
      hanging.add(res);
      res.on("close", () => {
        hanging.delete(res);
        attempt.closed_after_ms = Date.now() - attempt.at; // when the sender gave up
        notify();
      });
      notify();
      return; // never answer
    }
    if (mode === "fail500") {
      attempt.status = 500;
      rec.statuses.push(500);
      notify();
      return json(res, 500, { error: { code: "receiver_failing", message: "test mode fail500" } });
    }
    if (mode === "fail503-retry-after") {
      attempt.status = 503;
      rec.statuses.push(503);
      notify();
      return json(res, 503, { error: { code: "receiver_busy", message: "test mode fail503" } }, { "retry-after": String(retryAfter) });
    }
    if (payload === null || typeof payload !== "object") {
      attempt.status = 400;
      rec.statuses.push(400);
      notify();
      return json(res, 400, { error: { code: "invalid_json", message: "signed body is not JSON" } });
    }
    attempt.status = 200;
    rec.statuses.push(200);
    if (rec.accepted) {
      rec.duplicates += 1;
      state.duplicates += 1;
      logLine(`· duplicate ${id} (${payload.type} ${payload.data?.visitor_id}) ignored`);
    } else {
      rec.accepted = true;
      state.events.push({ id, received_at: Date.now(), webhook_timestamp: Number(headers.timestamp), ...payload });
      logLine(formatEvent(payload));
    }
    notify();
    return json(res, 200, { ok: true, duplicate: rec.duplicates > 0 });
  }

  async function onControl(req, res, url) {
    if (req.method === "GET" && url.pathname === "/_events") return json(res, 200, snapshot());
    if (req.method === "POST" && url.pathname === "/_mode") {
      let body;
      try {
        body = JSON.parse((await readBody(req)).toString("utf8") || "{}");
      } catch {
        return json(res, 400, { error: { code: "invalid_json", message: "body is not JSON" } });
      }
      if (!MODES.has(body.mode)) return json(res, 400, { error: { code: "invalid_mode", message: `mode must be one of ${[...MODES].join(", ")}` } });
      setMode(body.mode, body);
      return json(res, 200, { mode });
    }
    if (req.method === "POST" && url.pathname === "/_reset") {
      reset();
      setMode("ok");
      return json(res, 200, { ok: true });
    }
    return json(res, 404, { error: { code: "not_found", message: "no such control endpoint" } });
  }

  const server = http.createServer((req, res) => {
    const url = new URL(req.url, "http://receiver");
    const handle =
      req.method === "POST" && url.pathname === "/webhook"
        ? onWebhook(req, res)
        : url.pathname.startsWith("/_")
          ? onControl(req, res, url)
          : req.method === "GET" && url.pathname === "/"
            ? Promise.resolve(json(res, 200, { ok: true, webhook: "/webhook", control: ["/_events", "/_mode", "/_reset"], mode }))
            : Promise.resolve(json(res, 404, { error: { code: "not_found", message: "POST /webhook" } }));
    handle.catch((e) => {
      if (!res.headersSent) json(res, e.status ?? 500, { error: { code: "receiver_error", message: String(e.message ?? e) } });
    });
  });
  server.keepAliveTimeout = 5000;

  /** Resolves with `pred(snapshot)`'s truthy value, or rejects after `timeout` ms. */
  function waitFor(pred, { timeout = 30000, what = "receiver condition" } = {}) {
    return new Promise((resolve, reject) => {
      let w;
      const check = () => {
        let r;
        try {
          r = pred(snapshot());
        } catch (e) {
          cleanup();
          reject(e);
          return;
        }
        if (r) {
          cleanup();
          resolve(r);
        }
      };
      const timer = setTimeout(() => {
        cleanup();
        const s = snapshot();
        reject(new Error(`timed out after ${timeout} ms waiting for ${what}; receiver has ${s.events.length} events, ${s.attempts.length} attempts, ${s.rejected} rejected`));
      }, timeout);
      const cleanup = () => {
        clearTimeout(timer);
        waiters.delete(w);
      };
      w = check;
      waiters.add(w);
      check();
    });
  }

  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      const actual = server.address().port;
      const url = `http://${host}:${actual}/`;
      resolve({
        url,
        webhookUrl: `http://${host}:${actual}/webhook`,
        port: actual,
        events: snapshot,
        setMode,
        reset: () => {
          reset();
          setMode("ok");
        },
        waitFor,
        close: () =>
          new Promise((r) => {
            for (const res of hanging) res.destroy();
            hanging.clear();
            server.close(() => r());
            server.closeAllConnections?.();
          }),
      });
    });
  });
}

async function main() {
  const args = process.argv.slice(2);
  const opt = (name, def) => {
    const i = args.indexOf(`--${name}`);
    return i >= 0 ? args[i + 1] : def;
  };
  const port = Number(opt("port", process.env.RECEIVER_PORT ?? 8790));
  const host = opt("host", process.env.RECEIVER_HOST ?? "127.0.0.1");
  const secret = process.env.WEBHOOK_SECRET ?? readDevVars().WEBHOOK_SECRET;
  if (!secret) {
    console.error("receiver: no WEBHOOK_SECRET in the environment or .dev.vars (run `node tests/worker/stack.mjs` once to create it)");
    process.exit(2);
  }
  const r = await startReceiver({ port, host, secret });
  console.log(`receiver listening on ${r.url} (POST /webhook; GET /_events, POST /_mode, POST /_reset)`);
  const stop = () => r.close().then(() => process.exit(0));
  process.on("SIGINT", stop);
  process.on("SIGTERM", stop);
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().catch((e) => {
    console.error(`receiver: ${e.message}`);
    process.exit(1);
  });
}
