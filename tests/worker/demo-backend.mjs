#!/usr/bin/env node
// The demo site's own backend (what a customer's server does in production), no dependencies.
//
//   node tests/worker/demo-backend.mjs [--port 8791] [--origin http://127.0.0.1:8787 ...]
//       reads IDENTITY_SECRET from the environment, else from .dev.vars at the repository root.
//
// POST /login {"email", "password"} checks a demo account (any well-formed email, password "demo")
// and answers {lead_id, lead_signature, traits}: the lead id (the email, trimmed and lowercased) and
// the hex HMAC-SHA256 of it under IDENTITY_SECRET — the "user hash" the page passes to
// `leadscore.identify(lead_id, traits, {signature})` so the worker trusts the identify. The secret
// stays here: the page only ever sees the signature of the account it signed into.
// It also signs the company (`account:<domain>`) for `leadscore.group`, and hands the page a view token
// for it: GET /account?id=DOMAIN&token=T answers the account's score, which the backend reads from the
// worker with the API token (`GET /v1/score/{id}?kind=account`); the token never reaches the page.
// CORS: only the listed origins (the worker serving the demo site) may call it.
//
// As a module: `startDemoBackend({port, host, secret, origins, log, workerUrl, apiToken})` →
// {url, loginUrl, port, close(), logins()}.

import http from "node:http";
import crypto from "node:crypto";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { readDevVars } from "./receiver.mjs";

export const DEFAULT_BACKEND_PORT = 8791;
export const DEMO_PASSWORD = "demo";
const MAX_BODY = 4096;
const EMAIL = /^[^\s@]{1,64}@[^\s@]{1,190}\.[^\s@]{1,63}$/;

/** Hex HMAC-SHA256 of the lead id, the rule `src/identity.rs` verifies. */
export function signLead(secret, leadId) {
  return crypto.createHmac("sha256", Buffer.from(secret.trim(), "utf8")).update(leadId, "utf8").digest("hex");
}

function answer(res, status, body, headers = {}) {
  res.writeHead(status, { "content-type": "application/json", "cache-control": "no-store", ...headers });
  res.end(JSON.stringify(body));
}

const error = (res, status, code, message, headers) => answer(res, status, { error: { code, message } }, headers);

function readJson(req) {
  return new Promise((resolve) => {
    let size = 0;
    const chunks = [];
    req.on("data", (c) => {
      size += c.length;
      if (size > MAX_BODY) {
        resolve({ tooLarge: true });
        req.destroy();
      } else chunks.push(c);
    });
    req.on("end", () => {
      try {
        resolve({ value: JSON.parse(Buffer.concat(chunks).toString("utf8")) });
      } catch {
        resolve({ bad: true });
      }
    });
    req.on("error", () => resolve({ bad: true }));
  });
}

/** Starts the demo backend; resolves once it listens. */
/** The account's score, for the page of a lead signed into it. */
async function accountView(res, url, { secret, workerUrl, apiToken, cors }) {
  const id = url.searchParams.get("id") || "";
  const token = url.searchParams.get("token") || "";
  const want = signLead(secret, `view:${id}`);
  if (!id || token.length !== want.length || !crypto.timingSafeEqual(Buffer.from(token), Buffer.from(want))) {
    return error(res, 403, "forbidden", "sign in to see your company's account", cors);
  }
  if (!workerUrl || !apiToken) return error(res, 503, "not_configured", "the backend has no worker URL or API token", cors);
  let r;
  try {
    r = await fetch(`${workerUrl}/v1/score/${encodeURIComponent(id)}?kind=account`, { headers: { authorization: `Bearer ${apiToken}` } });
  } catch (e) {
    return error(res, 502, "worker_unreachable", e.message, cors);
  }
  if (r.status === 404) return error(res, 404, "not_found", "no score for this account yet", cors);
  if (!r.ok) return error(res, 502, "worker_error", `the worker answered ${r.status}`, cors);
  const s = (await r.json()).score;
  return answer(res, 200, {
    account_id: s.account_id, ai_score: s.ai_score, tier: s.tier, members: s.members,
    engaged_members: s.engaged_members, buyer_roles: s.buyer_roles,
  }, cors);
}

export function startDemoBackend({ port = DEFAULT_BACKEND_PORT, host = "127.0.0.1", secret, origins = [], log = () => {}, workerUrl, apiToken } = {}) {
  if (typeof secret !== "string" || Buffer.byteLength(secret.trim()) < 16) throw new Error("demo backend: IDENTITY_SECRET must hold at least 16 bytes");
  const allowed = new Set(origins);
  const logins = [];
  const server = http.createServer(async (req, res) => {
    const origin = req.headers.origin;
    const cors = origin && allowed.has(origin) ? { "access-control-allow-origin": origin, vary: "Origin" } : {};
    const url = new URL(req.url, "http://backend");
    if (url.pathname !== "/login" && url.pathname !== "/account") return error(res, 404, "not_found", "only POST /login and GET /account", cors);
    if (origin && !allowed.has(origin)) return error(res, 403, "origin_not_allowed", `origin ${origin} may not call this backend`);
    if (req.method === "OPTIONS") {
      res.writeHead(204, { ...cors, "access-control-allow-methods": "GET, POST", "access-control-allow-headers": "content-type", "access-control-max-age": "600" });
      return res.end();
    }
    if (url.pathname === "/account") {
      if (req.method !== "GET") return error(res, 405, "method_not_allowed", "use GET", { ...cors, allow: "GET, OPTIONS" });
      return accountView(res, url, { secret, workerUrl, apiToken, cors });
    }
    if (req.method !== "POST") return error(res, 405, "method_not_allowed", "use POST", { ...cors, allow: "POST, OPTIONS" });
    const body = await readJson(req);
    if (body.tooLarge) return error(res, 413, "body_too_large", `at most ${MAX_BODY} bytes`, cors);
    if (body.bad || typeof body.value !== "object" || body.value === null) return error(res, 400, "invalid_json", "send {\"email\", \"password\"}", cors);
    const email = typeof body.value.email === "string" ? body.value.email.trim().toLowerCase() : "";
    if (!EMAIL.test(email)) return error(res, 400, "invalid_email", "a work email is required", cors);
    if (body.value.password !== DEMO_PASSWORD) return error(res, 401, "wrong_password", `demo accounts use the password "${DEMO_PASSWORD}"`, cors);
    const domain = email.split("@")[1];
    const traits = { company: domain, plan: "trial" };
    logins.push({ lead_id: email, at: Date.now() });
    log(`demo backend: signed in ${email}`);
    // The account is the company's domain, signed as `account:<id>` (src/account.rs), so the page can
    // put the lead in its buying group and no page can claim another company.
    return answer(res, 200, {
      lead_id: email, lead_signature: signLead(secret, email), traits,
      account_id: domain, account_signature: signLead(secret, `account:${domain}`), account_traits: { domain },
      account_view_token: signLead(secret, `view:${domain}`),
    }, cors);
  });
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      const p = server.address().port;
      const url = `http://${host}:${p}`;
      resolve({ url, loginUrl: `${url}/login`, port: p, logins: () => [...logins], close: () => new Promise((r) => server.close(() => r())) });
    });
  });
}

async function main() {
  const args = process.argv.slice(2);
  let port = DEFAULT_BACKEND_PORT;
  const origins = [];
  for (let i = 0; i < args.length; i++) {
    if (args[i] === "--port") port = Number(args[++i]);
    else if (args[i] === "--origin") origins.push(args[++i]);
    else {
      console.error("usage: node tests/worker/demo-backend.mjs [--port 8791] [--origin URL ...]");
      process.exit(2);
    }
  }
  const vars = readDevVars();
  const secret = process.env.IDENTITY_SECRET ?? vars.IDENTITY_SECRET;
  const apiToken = process.env.API_TOKEN ?? vars.API_TOKEN;
  if (!origins.length) origins.push("http://127.0.0.1:8787", "http://localhost:8787");
  const b = await startDemoBackend({ port, secret, origins, log: (l) => console.log(l), workerUrl: process.env.WORKER_URL || origins[0], apiToken });
  console.log(`demo backend on ${b.loginUrl} for ${origins.join(", ")}`);
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().catch((e) => {
    console.error(e.message);
    process.exit(1);
  });
}
