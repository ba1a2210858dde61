#!/usr/bin/env node
// A Salesforce emulator for leadscore's CRM write-back, built from Salesforce's published REST API
// documentation (developer.salesforce.com, API v68.0; no dependencies). Never the real service.
//
//   node tests/worker/salesforce_emulator.mjs [--port 8793] [--daily 15000] [--session-ms 7200000]
//       client id and secret: SALESFORCE_CLIENT_ID / SALESFORCE_CLIENT_SECRET from the environment,
//       else from .dev.vars
//
// What it answers, as documented:
// * `POST /services/oauth2/token` with `grant_type=client_credentials&client_id&client_secret` (form):
//   `{access_token, instance_url, id, token_type:"Bearer", issued_at, signature}` — no `expires_in`, no
//   refresh token; wrong credentials: 400 `{"error":"invalid_client","error_description":…}`.
// * Every API call: `Authorization: Bearer <token>`; an unknown or expired token (a session lasts
//   `session_ms`): 401 `[{"message":"Session expired or invalid","errorCode":"INVALID_SESSION_ID"}]`.
// * The daily API allocation (rolling 24 h): over it, 403
//   `[{"message":"TotalRequests Limit exceeded.","errorCode":"REQUEST_LIMIT_EXCEEDED"}]`; every answer
//   carries `Sforce-Limit-Info: api-usage=<used>/<max>`.
// * `PATCH /services/data/v{NN.N}/composite/sobjects` `{"allOrNone": false, "records": [{"attributes":
//   {"type"}, "id", fields…}]}`: at most 200 records, each with `attributes.type` and an id (else 400);
//   200 with one `{id, success, errors: [{statusCode, message, fields}]}` per record, in order — a deleted
//   record `ENTITY_IS_DELETED`, an unknown id `INVALID_CROSS_REFERENCE_KEY`, an id of another object
//   `MALFORMED_ID`, a field that does not exist `INVALID_FIELD`, a text over its length `STRING_TOO_LONG`;
//   `null` clears a field.
// * `POST` of the same path creates: each record with `attributes.type` and no id; here `Task` (`WhoId` a
//   Lead or Contact, or `WhatId` an Account; `Subject` ≤ 255; `Description` ≤ 32,000; `ActivityDate`
//   YYYY-MM-DD; `Status` and `Priority` from their picklists) and `Note` (`ParentId`, `Title` ≤ 80
//   required, `Body` ≤ 32,000); one `{id, success, errors}` per record, in order — a reference to a
//   record it does not have `INVALID_CROSS_REFERENCE_KEY` (a deleted one `ENTITY_IS_DELETED`).
// * `GET /services/data/v{NN.N}/limits`: `{"DailyApiRequests": {"Max", "Remaining"}}`.
//
// Control API (`/__emulator/...`, not Salesforce's): POST records {"type":"Lead","ids":[…]}, POST delete
// {"id"}, POST fields {"type","fields":{"Name__c": length (Text) | 0 (Number) | -1 (Date/Time)}}, POST faults {"down": 503|0, "expire": true},
// GET state (records, counters: calls, refused by reason, tokens issued, writes that moved
// `Leadscore_Scored_At__c` back).
//
// As a module: `startSalesforce({port, clientId, clientSecret, daily, sessionMs})` →
//   {url, port, close(), state(), records(), control}.

import http from "node:http";
import crypto from "node:crypto";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { readDevVars } from "./receiver.mjs";

const MAX_RECORDS = 200;
const ORDER_FIELD = "Leadscore_Scored_At__c";
const PREFIX = { Lead: "00Q", Contact: "003", Account: "001" };

export async function startSalesforce({ port = 0, host = "127.0.0.1", clientId, clientSecret, daily = 15_000, sessionMs = 7_200_000, log = () => {} } = {}) {
  if (!clientId || !clientSecret) throw new Error("salesforce emulator: client id and secret are required");
  const records = new Map(); // id → {type, fields, deleted}
  const created = []; // tasks and notes: {id, type, fields}
  const fields = { Lead: new Map(), Contact: new Map(), Account: new Map() }; // API name → max length (0: not text)
  const tokens = new Map(); // token → issued ms
  const calls = [];
  const counters = { calls: 0, refused: {}, tokens: 0, writes: 0, regressions: 0, records_per_call_max: 0, activities: 0 };
  let faults = { down: 0 };
  const refuse = (r) => (counters.refused[r] = (counters.refused[r] || 0) + 1);

  const usage = (now) => calls.filter((t) => t > now - 86_400_000).length;
  const send = (res, status, body, now = Date.now(), extra = {}) => {
    res.writeHead(status, { "content-type": "application/json;charset=UTF-8", "sforce-limit-info": `api-usage=${usage(now)}/${daily}`, ...extra });
    res.end(JSON.stringify(body));
  };

  function collections(res, body, now) {
    if (!body || !Array.isArray(body.records) || body.records.length === 0) return send(res, 400, [{ message: "records: a non-empty array is required", errorCode: "JSON_PARSER_ERROR" }], now);
    if (body.records.length > MAX_RECORDS) return send(res, 400, [{ message: `The number of records in a collection request exceeds the limit of ${MAX_RECORDS}`, errorCode: "EXCEEDED_ID_LIMIT" }], now);
    counters.records_per_call_max = Math.max(counters.records_per_call_max, body.records.length);
    const out = body.records.map((r) => {
      const type = r?.attributes?.type;
      const fail = (statusCode, message, f = []) => ({ id: r?.id ?? null, success: false, errors: [{ statusCode, message, fields: f }] });
      if (!type || !fields[type]) return fail("INVALID_TYPE", `sObject type '${type}' is not supported.`);
      if (typeof r.id !== "string" || !/^[A-Za-z0-9]{15}([A-Za-z0-9]{3})?$/.test(r.id)) return fail("MALFORMED_ID", `${type} ID: id value of incorrect type: ${r.id}`, ["Id"]);
      if (!r.id.startsWith(PREFIX[type])) return fail("MALFORMED_ID", `${type} ID: id value of incorrect type: ${r.id}`, ["Id"]);
      const rec = records.get(r.id);
      if (!rec) return fail("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id");
      if (rec.deleted) return fail("ENTITY_IS_DELETED", "entity is deleted");
      for (const [k, v] of Object.entries(r)) {
        if (k === "attributes" || k === "id") continue;
        if (!fields[type].has(k)) return fail("INVALID_FIELD", `No such column '${k}' on sobject of type ${type}`, [k]);
        // A field's definition: a length (Text), 0 (Number) or -1 (Date/Time); null clears any.
        const def = fields[type].get(k);
        if (v === null) continue;
        if (def === 0 && typeof v !== "number") return fail("INVALID_TYPE_ON_FIELD_IN_RECORD", `${k}: value not of required type: ${v}`, [k]);
        if (def === -1 && (typeof v !== "string" || Number.isNaN(Date.parse(v)))) return fail("INVALID_TYPE_ON_FIELD_IN_RECORD", `${k}: value not of required type: ${v}`, [k]);
        if (def > 0 && typeof v !== "string") return fail("INVALID_TYPE_ON_FIELD_IN_RECORD", `${k}: value not of required type: ${v}`, [k]);
        if (def > 0 && v.length > def) return fail("STRING_TOO_LONG", `${k}: data value too large: ${v.slice(0, 40)} (max length=${def})`, [k]);
      }
      const was = rec.fields[ORDER_FIELD];
      const next = r[ORDER_FIELD];
      if (was && next && Date.parse(next) < Date.parse(was)) counters.regressions++;
      for (const [k, v] of Object.entries(r)) if (k !== "attributes" && k !== "id") rec.fields[k] = v;
      counters.writes++;
      return { id: r.id, success: true, errors: [] };
    });
    send(res, 200, out, now);
  }

  const TASK_STATUS = new Set(["Not Started", "In Progress", "Completed", "Waiting on someone else", "Deferred"]);
  const PRIORITY = new Set(["High", "Normal", "Low"]);
  const ACTIVITY_PREFIX = { Task: "00T", Note: "002" };

  /** A reference field's problem: the record must exist, of one of `types`. */
  function reference(value, types, name) {
    const rec = typeof value === "string" ? records.get(value) : undefined;
    if (!rec || !types.includes(rec.type)) return ["INVALID_CROSS_REFERENCE_KEY", `${name}: id value of incorrect type: ${value}`];
    if (rec.deleted) return ["ENTITY_IS_DELETED", "entity is deleted"];
    return null;
  }

  function create(res, body, now) {
    if (!body || !Array.isArray(body.records) || body.records.length === 0) return send(res, 400, [{ message: "records: a non-empty array is required", errorCode: "JSON_PARSER_ERROR" }], now);
    if (body.records.length > MAX_RECORDS) return send(res, 400, [{ message: `The number of records in a collection request exceeds the limit of ${MAX_RECORDS}`, errorCode: "EXCEEDED_ID_LIMIT" }], now);
    const out = body.records.map((r) => {
      const type = r?.attributes?.type;
      const fail = (statusCode, message, f = []) => ({ success: false, errors: [{ statusCode, message, fields: f }] });
      if (!ACTIVITY_PREFIX[type]) return fail("INVALID_TYPE", `sObject type '${type}' is not supported.`);
      if ("id" in r || "Id" in r) return fail("INVALID_FIELD_FOR_INSERT_UPDATE", "cannot specify Id in an insert call", ["Id"]);
      const text = (k, max, required) => {
        if (r[k] === undefined || r[k] === null) return required ? ["REQUIRED_FIELD_MISSING", `Required fields are missing: [${k}]`, [k]] : null;
        if (typeof r[k] !== "string") return ["INVALID_TYPE_ON_FIELD_IN_RECORD", `${k}: value not of required type: ${r[k]}`, [k]];
        if (r[k].length > max) return ["STRING_TOO_LONG", `${k}: data value too large (max length=${max})`, [k]];
        return null;
      };
      let problem;
      if (type === "Task") {
        const who = r.WhoId !== undefined ? reference(r.WhoId, ["Lead", "Contact"], "Name ID") : null;
        const what = r.WhatId !== undefined ? reference(r.WhatId, ["Account"], "Related To ID") : null;
        problem = who || what || text("Subject", 255, false) || text("Description", 32_000, false);
        if (!problem && r.ActivityDate !== undefined && !/^\d{4}-\d{2}-\d{2}$/.test(r.ActivityDate)) problem = ["INVALID_TYPE_ON_FIELD_IN_RECORD", `Due Date Only: value not of required type: ${r.ActivityDate}`, ["ActivityDate"]];
        if (!problem && r.Status !== undefined && !TASK_STATUS.has(r.Status)) problem = ["INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST", `Status: bad value for restricted picklist field: ${r.Status}`, ["Status"]];
        if (!problem && r.Priority !== undefined && !PRIORITY.has(r.Priority)) problem = ["INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST", `Priority: bad value for restricted picklist field: ${r.Priority}`, ["Priority"]];
      } else {
        problem = reference(r.ParentId, ["Lead", "Contact", "Account"], "Parent ID") || text("Title", 80, true) || text("Body", 32_000, false);
      }
      if (problem) return fail(...problem);
      const id = `${ACTIVITY_PREFIX[type]}5e0000${String(created.length).padStart(6, "0")}AAA`;
      const { attributes, ...f } = r;
      created.push({ id, type, fields: f });
      counters.activities++;
      return { id, success: true, errors: [] };
    });
    send(res, 200, out, now);
  }

  const control = {
    create(type, ids) {
      for (const id of ids) records.set(id, { type, fields: {}, deleted: false });
    },
    remove(id) {
      const r = records.get(id);
      if (r) r.deleted = true;
    },
    defineFields(type, defs) {
      for (const [k, max] of Object.entries(defs)) fields[type].set(k, max);
    },
    faults(f) {
      faults = { ...faults, ...f };
      if (f.expire) tokens.clear();
    },
  };

  function state() {
    return {
      records: Object.fromEntries(records),
      activities: created.map((a) => ({ ...a, fields: { ...a.fields } })),
      counters: { ...counters, refused: { ...counters.refused }, daily, busiest_24h: calls.length ? Math.max(...calls.map((t) => calls.filter((u) => u > t - 86_400_000 && u <= t).length)) : 0 },
      faults,
    };
  }

  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => {
      const now = Date.now();
      const url = new URL(req.url, "http://x");
      const p = url.pathname;
      const text = Buffer.concat(chunks).toString("utf8");
      if (p.startsWith("/__emulator/")) {
        let body = {};
        try {
          body = text ? JSON.parse(text) : {};
          if (p === "/__emulator/state") return send(res, 200, state());
          if (p === "/__emulator/records") return send(res, 200, (control.create(body.type, body.ids), { ok: true }));
          if (p === "/__emulator/delete") return send(res, 200, (control.remove(body.id), { ok: true }));
          if (p === "/__emulator/fields") return send(res, 200, (control.defineFields(body.type, body.fields), { ok: true }));
          if (p === "/__emulator/faults") return send(res, 200, (control.faults(body), faults));
        } catch (e) {
          return send(res, 400, { error: String(e) });
        }
        return send(res, 404, { error: "no such control route" });
      }
      if (faults.down) {
        refuse(`down${faults.down}`);
        return send(res, faults.down, [{ message: "Service Unavailable", errorCode: "SERVER_UNAVAILABLE" }], now);
      }
      if (req.method === "POST" && p === "/services/oauth2/token") {
        const form = new URLSearchParams(text);
        if (form.get("grant_type") !== "client_credentials") return send(res, 400, { error: "unsupported_grant_type", error_description: "grant type not supported" }, now);
        if (form.get("client_id") !== clientId || form.get("client_secret") !== clientSecret) {
          refuse("invalid_client");
          return send(res, 400, { error: "invalid_client", error_description: "invalid client credentials" }, now);
        }
        const token = `00D${crypto.randomBytes(6).toString("hex")}!${crypto.randomBytes(24).toString("base64url")}`;
        tokens.set(token, now);
        counters.tokens++;
        const base = `http://${host}:${server.address().port}`;
        return send(res, 200, { access_token: token, signature: crypto.randomBytes(32).toString("base64"), token_format: "opaque", scope: "api", instance_url: base, id: `${base}/id/00Dxx0000001gPL/005xx000001Sv6e`, token_type: "Bearer", issued_at: String(now) }, now);
      }
      const auth = req.headers.authorization?.replace(/^Bearer /, "");
      const issued = tokens.get(auth);
      if (!issued || now - issued > sessionMs) {
        refuse("INVALID_SESSION_ID");
        return send(res, 401, [{ message: "Session expired or invalid", errorCode: "INVALID_SESSION_ID" }], now);
      }
      calls.push(now);
      counters.calls++;
      if (usage(now) > daily) {
        refuse("REQUEST_LIMIT_EXCEEDED");
        return send(res, 403, [{ message: "TotalRequests Limit exceeded.", errorCode: "REQUEST_LIMIT_EXCEEDED" }], now);
      }
      if (req.method === "GET" && /^\/services\/data\/v\d+\.\d+\/limits\/?$/.test(p)) return send(res, 200, { DailyApiRequests: { Max: daily, Remaining: Math.max(0, daily - usage(now)) } }, now);
      if ((req.method === "PATCH" || req.method === "POST") && /^\/services\/data\/v\d+\.\d+\/composite\/sobjects$/.test(p)) {
        let body;
        try {
          body = JSON.parse(text);
        } catch {
          return send(res, 400, [{ message: "Unexpected character", errorCode: "JSON_PARSER_ERROR" }], now);
        }
        return req.method === "PATCH" ? collections(res, body, now) : create(res, body, now);
      }
      log(`salesforce emulator: no route ${req.method} ${p}`);
      send(res, 404, [{ message: "The requested resource does not exist", errorCode: "NOT_FOUND" }], now);
    });
  });
  await new Promise((r) => server.listen(port, host, r));
  const bound = server.address().port;
  return { url: `http://${host}:${bound}`, port: bound, state, records: () => state().records, control, close: () => new Promise((r) => server.close(r)) };
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const arg = (n, d) => {
    const i = process.argv.indexOf(n);
    return i > 0 ? process.argv[i + 1] : d;
  };
  const s = await startSalesforce({
    port: Number(arg("--port", 8793)),
    clientId: process.env.SALESFORCE_CLIENT_ID || readDevVars().SALESFORCE_CLIENT_ID,
    clientSecret: process.env.SALESFORCE_CLIENT_SECRET || readDevVars().SALESFORCE_CLIENT_SECRET,
    daily: Number(arg("--daily", 15_000)),
    sessionMs: Number(arg("--session-ms", 7_200_000)),
    log: (l) => console.log(l),
  });
  console.log(`Salesforce emulator on ${s.url}`);
}
