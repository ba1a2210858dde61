#!/usr/bin/env node
// A HubSpot emulator for leadscore's CRM write-back, built from HubSpot's published API documentation
// (developers.hubspot.com, date-versioned API 2026-03; no dependencies). Never the real service.
//
//   node tests/worker/hubspot_emulator.mjs [--port 8791] [--token T] [--burst 100] [--interval-ms 10000]
//       [--daily 250000]        token: HUBSPOT_TOKEN from the environment, else from .dev.vars
//
// What it answers, as documented:
// * `Authorization: Bearer <token>` on every call, else 401 `{"status":"error","category":"INVALID_AUTHENTICATION"}`.
// * Limits per token: `burst` calls in any rolling `interval_ms` (100 / 10 s, the lowest tier) and `daily`
//   calls per UTC day; over either: 429 `{"errorType":"RATE_LIMIT","policyName":"TEN_SECONDLY_ROLLING"|"DAILY"}`
//   with `X-HubSpot-RateLimit-*` headers. Every call counts, refused ones too.
// * `POST /crm/objects/{2026-03|2026-09}/{contacts|companies}/batch/update` (and the legacy
//   `/crm/v3/objects/...`): `{"inputs":[{"id","properties"}]}`, at most 100 inputs, each id once; a
//   property that does not exist on the object type → 400 VALIDATION_ERROR (the whole batch); an id the
//   portal does not have → 207 with `errors[{category:"OBJECT_NOT_FOUND", context:{ids}}]`; a merged id
//   → the merged record is updated and answered under its new id; all updated → 200
//   `{"status":"COMPLETE","results":[…]}`. An empty string clears a property.
// * `POST /crm/objects/{v}/{tasks|notes}/batch/create`: `{"inputs":[{"properties","associations":[{"to":
//   {"id"},"types":[{"associationCategory":"HUBSPOT_DEFINED","associationTypeId"}]}],"objectWriteTraceId"}]}`;
//   a task needs `hs_timestamp` and `hs_task_subject`, a note `hs_timestamp` and `hs_note_body`; the
//   association types are HubSpot's (task → contact 204, → company 192; note → contact 202, → company 190);
//   an association to a record the portal does not have → 207 with `errors[{category:"VALIDATION_ERROR",
//   context:{objectWriteTraceId:[…]}}]`; created → 201 `{"status":"COMPLETE","results":[{id, properties,
//   objectWriteTraceId}]}`.
// * `POST /crm/properties/{v}/{type}/groups`, `POST /crm/properties/{v}/{type}` (name, label, type,
//   fieldType, groupName; 409 CONFLICT when the name exists), `GET /crm/properties/{v}/{type}`.
//
// Control API on the same port, for tests (`/__emulator/...`, not HubSpot's):
//   POST /__emulator/records  {"type":"contacts","ids":["101",…]}   create records
//   POST /__emulator/delete   {"type":"contacts","id":"101"}         delete one
//   POST /__emulator/merge    {"type":"contacts","from":"101","into":"102"}
//   POST /__emulator/faults   {"down": 503 | 0, "storm429": n, "revoked": bool}   the next failures
//   GET  /__emulator/state    records, properties, counters (calls, refused by reason, the most calls
//                             seen in any rolling interval, writes that moved `leadscore_scored_at` back)
//
// As a module: `startHubspot({port, token, burst, intervalMs, daily, log})` →
//   {url, port, close(), state(), records(type), control: {create, remove, merge, faults}}.

import http from "node:http";
import crypto from "node:crypto";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { readDevVars } from "./receiver.mjs";

const VERSIONS = new Set(["2026-03", "2026-09"]);
const TYPES = new Set(["contacts", "companies"]);
const MAX_INPUTS = 100;
const MAX_BODY = 4 << 20;
const DAY = 86_400_000;
// The property a write's order is read from: a write that moves it back overwrote newer values.
const ORDER_PROPERTY = "leadscore_scored_at";

const cid = () => crypto.randomUUID();
const iso = (ms = Date.now()) => new Date(ms).toISOString();

export async function startHubspot({ port = 0, host = "127.0.0.1", token, burst = 100, intervalMs = 10_000, daily = 250_000, log = () => {} } = {}) {
  if (!token) throw new Error("hubspot emulator: a token is required");
  const records = { contacts: new Map(), companies: new Map() };
  const activities = []; // tasks and notes created: {id, type, properties, associations}
  const merged = { contacts: new Map(), companies: new Map() };
  const properties = { contacts: new Map(), companies: new Map() };
  const groups = { contacts: new Set(["contactinformation"]), companies: new Set(["companyinformation"]) };
  const calls = []; // every API call's time
  const counters = { calls: 0, ok: 0, multi_status: 0, refused: {}, batch_inputs: 0, regressions: 0, writes: 0, activities: 0 };
  const perDay = new Map();
  let faults = { down: 0, storm429: 0, revoked: false };

  const refuse = (reason) => (counters.refused[reason] = (counters.refused[reason] || 0) + 1);
  const send = (res, status, body, headers = {}) => {
    res.writeHead(status, { "content-type": "application/json;charset=utf-8", ...headers });
    res.end(JSON.stringify(body));
  };
  const error = (res, status, category, message, extra = {}, headers = {}) =>
    send(res, status, { status: "error", message, correlationId: cid(), category, ...extra }, headers);

  function limitHeaders(now) {
    const inWindow = calls.filter((t) => t > now - intervalMs).length;
    const day = perDay.get(Math.floor(now / DAY)) || 0;
    return {
      "x-hubspot-ratelimit-max": String(burst),
      "x-hubspot-ratelimit-remaining": String(Math.max(0, burst - inWindow)),
      "x-hubspot-ratelimit-interval-milliseconds": String(intervalMs),
      "x-hubspot-ratelimit-daily": String(daily),
      "x-hubspot-ratelimit-daily-remaining": String(Math.max(0, daily - day)),
    };
  }

  /** Counts the call; answers the limit's refusal if one applies. */
  function admit(res, now) {
    calls.push(now);
    counters.calls++;
    const d = Math.floor(now / DAY);
    perDay.set(d, (perDay.get(d) || 0) + 1);
    const h = limitHeaders(now);
    if (calls.filter((t) => t > now - intervalMs).length > burst) {
      refuse("TEN_SECONDLY_ROLLING");
      send(res, 429, { status: "error", message: "You have reached your ten_secondly_rolling limit.", errorType: "RATE_LIMIT", correlationId: cid(), policyName: "TEN_SECONDLY_ROLLING" }, h);
      return false;
    }
    if (perDay.get(d) > daily) {
      refuse("DAILY");
      send(res, 429, { status: "error", message: "You have reached your daily limit.", errorType: "RATE_LIMIT", correlationId: cid(), policyName: "DAILY" }, h);
      return false;
    }
    if (faults.storm429 > 0) {
      faults.storm429--;
      refuse("storm429");
      send(res, 429, { status: "error", message: "You have reached your ten_secondly_rolling limit.", errorType: "RATE_LIMIT", correlationId: cid(), policyName: "TEN_SECONDLY_ROLLING" }, { ...h, "retry-after": "1" });
      return false;
    }
    return true;
  }

  const resolve = (type, id) => {
    let at = id;
    for (let i = 0; i < 10 && merged[type].has(at); i++) at = merged[type].get(at);
    return records[type].get(at);
  };

  function propertyProblem(type, name, value) {
    const p = properties[type].get(name);
    if (!p) return { isValid: false, message: `Property "${name}" does not exist`, error: "PROPERTY_DOESNT_EXIST", name };
    if (value === "" || value === null) return null; // clears
    if (typeof value !== "string" && typeof value !== "number") return { isValid: false, message: `${value} is not a valid value for ${name}`, error: "INVALID_VALUE", name };
    if (p.type === "number" && !Number.isFinite(Number(value))) return { isValid: false, message: `${value} was not a valid number.`, error: "INVALID_INTEGER", name };
    if (p.type === "datetime" && Number.isNaN(Date.parse(value)) && !/^\d+$/.test(String(value))) return { isValid: false, message: `${value} is not a valid datetime`, error: "INVALID_DATE", name };
    if (String(value).length > 65_536) return { isValid: false, message: `${name} is longer than 65536 characters`, error: "INVALID_LENGTH", name };
    return null;
  }

  function batchUpdate(res, type, body) {
    const inputs = body?.inputs;
    if (!Array.isArray(inputs) || inputs.length === 0) return error(res, 400, "VALIDATION_ERROR", "Invalid input JSON on line 1: `inputs` must be a non-empty array");
    if (inputs.length > MAX_INPUTS) return error(res, 400, "VALIDATION_ERROR", `Batch input limit exceeded: ${inputs.length} inputs (max ${MAX_INPUTS})`);
    const ids = inputs.map((i) => String(i?.id ?? ""));
    const dup = ids.filter((id, i) => ids.indexOf(id) !== i);
    if (dup.length) return error(res, 400, "VALIDATION_ERROR", `Duplicate IDs found in batch input: [${[...new Set(dup)].join(", ")}]. IDs must be unique`);
    const problems = [];
    for (const i of inputs) {
      if (!i || typeof i.properties !== "object" || !/^\d+$/.test(String(i.id))) {
        problems.push({ isValid: false, message: "each input needs a numeric id and properties", error: "INVALID_INPUT", name: "id" });
        continue;
      }
      for (const [k, v] of Object.entries(i.properties)) {
        const p = propertyProblem(type, k, v);
        if (p) problems.push(p);
      }
    }
    if (problems.length) return error(res, 400, "VALIDATION_ERROR", `Property values were not valid: ${JSON.stringify(problems)}`);
    counters.batch_inputs += inputs.length;
    const results = [];
    const missing = [];
    const now = iso();
    for (const i of inputs) {
      const rec = resolve(type, String(i.id));
      if (!rec) {
        missing.push(String(i.id));
        continue;
      }
      const was = rec.properties[ORDER_PROPERTY];
      const next = i.properties[ORDER_PROPERTY];
      if (was && next && Date.parse(next) < Date.parse(was)) counters.regressions++;
      for (const [k, v] of Object.entries(i.properties)) rec.properties[k] = v === null ? "" : String(v);
      rec.updatedAt = now;
      rec.writes++;
      counters.writes++;
      results.push({ id: rec.id, properties: { ...rec.properties }, createdAt: rec.createdAt, updatedAt: now, archived: false });
    }
    const base = { status: "COMPLETE", results, requestedAt: now, startedAt: now, completedAt: iso() };
    if (!missing.length) {
      counters.ok++;
      return send(res, 200, base);
    }
    counters.multi_status++;
    const noun = type === "contacts" ? "CONTACT" : "COMPANY";
    send(res, 207, {
      ...base,
      numErrors: 1,
      errors: [{ status: "error", category: "OBJECT_NOT_FOUND", message: `Could not get some ${noun} objects, they may be deleted or not exist. Check that ids are valid.`, context: { ids: missing }, links: {} }],
    });
  }

  // HubSpot-defined association types from an activity to a record.
  const ASSOCIATION = { tasks: { 204: "contacts", 192: "companies" }, notes: { 202: "contacts", 190: "companies" } };
  const REQUIRED = { tasks: ["hs_timestamp", "hs_task_subject"], notes: ["hs_timestamp", "hs_note_body"] };

  function batchCreateActivities(res, type, body) {
    const inputs = body?.inputs;
    if (!Array.isArray(inputs) || inputs.length === 0) return error(res, 400, "VALIDATION_ERROR", "Invalid input JSON on line 1: `inputs` must be a non-empty array");
    if (inputs.length > MAX_INPUTS) return error(res, 400, "VALIDATION_ERROR", `Batch input limit exceeded: ${inputs.length} inputs (max ${MAX_INPUTS})`);
    for (const i of inputs) {
      const missing = REQUIRED[type].filter((k) => typeof i?.properties?.[k] !== "string" || !i.properties[k]);
      if (missing.length) return error(res, 400, "VALIDATION_ERROR", `Property values were not valid: missing ${missing.join(", ")}`);
      if (Number.isNaN(Date.parse(i.properties.hs_timestamp))) return error(res, 400, "VALIDATION_ERROR", `${i.properties.hs_timestamp} is not a valid datetime`);
      for (const a of i.associations ?? []) {
        for (const t of a?.types ?? []) {
          if (t?.associationCategory !== "HUBSPOT_DEFINED" || !ASSOCIATION[type][t?.associationTypeId]) return error(res, 400, "VALIDATION_ERROR", `association type ${t?.associationCategory}/${t?.associationTypeId} is not one of ${type}'s`);
        }
      }
    }
    const now = iso();
    const results = [];
    const failed = [];
    for (const i of inputs) {
      const to = (i.associations ?? []).map((a) => ({ id: String(a.to?.id), type: ASSOCIATION[type][a.types[0].associationTypeId] }));
      if (to.some((a) => !resolve(a.type, a.id))) {
        failed.push(i.objectWriteTraceId);
        continue;
      }
      const id = String(1_000_000 + activities.length);
      activities.push({ id, type, properties: { ...i.properties }, associations: to, objectWriteTraceId: i.objectWriteTraceId, createdAt: now });
      counters.activities++;
      results.push({ id, properties: { ...i.properties }, createdAt: now, updatedAt: now, archived: false, objectWriteTraceId: i.objectWriteTraceId });
    }
    const base = { status: "COMPLETE", results, requestedAt: now, startedAt: now, completedAt: iso() };
    if (!failed.length) return send(res, 201, base);
    counters.multi_status++;
    send(res, 207, { ...base, numErrors: failed.length, errors: [{ status: "error", category: "VALIDATION_ERROR", message: "One or more associations are invalid: the record does not exist", context: { objectWriteTraceId: failed }, links: {} }] });
  }

  function createProperty(res, type, body) {
    const need = ["name", "label", "type", "fieldType", "groupName"].filter((k) => typeof body?.[k] !== "string" || !body[k]);
    if (need.length) return error(res, 400, "VALIDATION_ERROR", `Property is missing required fields: ${need.join(", ")}`);
    if (!/^[a-z][a-z0-9_]*$/.test(body.name)) return error(res, 400, "VALIDATION_ERROR", `${body.name} is not a valid property name`);
    if (!["string", "number", "datetime", "date", "bool", "enumeration", "phone_number"].includes(body.type)) return error(res, 400, "VALIDATION_ERROR", `unknown type ${body.type}`);
    if (!groups[type].has(body.groupName)) return error(res, 400, "VALIDATION_ERROR", `Property group ${body.groupName} does not exist`);
    if (properties[type].has(body.name)) return error(res, 409, "CONFLICT", `Property named '${body.name}' already exists.`);
    const p = { ...body, createdAt: iso(), hubspotDefined: false, modificationMetadata: { archivable: true, readOnlyDefinition: false, readOnlyValue: false } };
    properties[type].set(body.name, p);
    send(res, 201, p);
  }

  function createGroup(res, type, body) {
    if (typeof body?.name !== "string" || typeof body?.label !== "string") return error(res, 400, "VALIDATION_ERROR", "name and label are required");
    if (groups[type].has(body.name)) return error(res, 409, "CONFLICT", `Property group named '${body.name}' already exists.`);
    groups[type].add(body.name);
    send(res, 201, { name: body.name, label: body.label, displayOrder: body.displayOrder ?? -1, archived: false });
  }

  const control = {
    create(type, ids) {
      for (const id of ids) if (!records[type].has(id)) records[type].set(id, { id, properties: {}, createdAt: iso(), updatedAt: iso(), writes: 0 });
    },
    remove(type, id) {
      records[type].delete(id);
    },
    merge(type, from, into) {
      const a = records[type].get(from);
      const b = records[type].get(into);
      if (!a || !b) throw new Error("merge: both records must exist");
      // A merge makes a new record; both old ids point at it (HubSpot's changelog on merges).
      const id = String(Math.max(...[...records[type].keys()].map(Number)) + 1);
      records[type].set(id, { id, properties: { ...a.properties, ...b.properties }, createdAt: iso(), updatedAt: iso(), writes: 0 });
      records[type].delete(from);
      records[type].delete(into);
      merged[type].set(from, id);
      merged[type].set(into, id);
      return id;
    },
    faults(f) {
      faults = { ...faults, ...f };
    },
  };

  /** The most calls any rolling interval held. */
  function peak() {
    let best = 0;
    for (let i = 0, j = 0; j < calls.length; j++) {
      while (calls[j] - calls[i] >= intervalMs) i++;
      best = Math.max(best, j - i + 1);
    }
    return best;
  }

  function state() {
    const out = {};
    for (const t of TYPES) out[t] = Object.fromEntries([...records[t]].map(([id, r]) => [id, { ...r, properties: { ...r.properties } }]));
    return {
      records: out,
      activities: activities.map((a) => ({ ...a })),
      merged: Object.fromEntries([...TYPES].map((t) => [t, Object.fromEntries(merged[t])])),
      properties: Object.fromEntries([...TYPES].map((t) => [t, [...properties[t].keys()]])),
      counters: { ...counters, refused: { ...counters.refused }, peak_calls_in_interval: peak(), burst, interval_ms: intervalMs, daily, busiest_day: Math.max(0, ...perDay.values()) },
      faults,
    };
  }

  const server = http.createServer((req, res) => {
    const chunks = [];
    let size = 0;
    req.on("data", (c) => {
      size += c.length;
      if (size <= MAX_BODY) chunks.push(c);
    });
    req.on("end", () => {
      const url = new URL(req.url, "http://x");
      const p = url.pathname;
      let body = null;
      if (chunks.length) {
        try {
          body = JSON.parse(Buffer.concat(chunks).toString("utf8"));
        } catch {
          return error(res, 400, "VALIDATION_ERROR", "Invalid input JSON");
        }
      }
      if (size > MAX_BODY) return error(res, 413, "VALIDATION_ERROR", "body too large");
      if (p.startsWith("/__emulator/")) {
        try {
          if (p === "/__emulator/state") return send(res, 200, state());
          if (p === "/__emulator/records") return send(res, 200, (control.create(body.type, body.ids), { ok: true }));
          if (p === "/__emulator/delete") return send(res, 200, (control.remove(body.type, body.id), { ok: true }));
          if (p === "/__emulator/merge") return send(res, 200, { id: control.merge(body.type, body.from, body.into) });
          if (p === "/__emulator/faults") return send(res, 200, (control.faults(body), faults));
        } catch (e) {
          return send(res, 400, { error: String(e) });
        }
        return send(res, 404, { error: "no such control route" });
      }
      const now = Date.now();
      if (faults.down) {
        counters.calls++;
        refuse(`down${faults.down}`);
        return error(res, faults.down, "SERVICE_UNAVAILABLE", "The service is temporarily unavailable");
      }
      if (req.headers.authorization !== `Bearer ${token}` || faults.revoked) {
        counters.calls++;
        refuse("401");
        return error(res, 401, "INVALID_AUTHENTICATION", "Authentication credentials not found. This API supports OAuth 2.0 authentication and you can find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview");
      }
      if (!admit(res, now)) return;
      let m;
      if (req.method === "POST" && (m = p.match(/^\/crm\/objects\/([^/]+)\/([^/]+)\/batch\/update$/)) && VERSIONS.has(m[1]) && TYPES.has(m[2])) return batchUpdate(res, m[2], body);
      if (req.method === "POST" && (m = p.match(/^\/crm\/v3\/objects\/([^/]+)\/batch\/update$/)) && TYPES.has(m[1])) return batchUpdate(res, m[1], body);
      if (req.method === "POST" && (m = p.match(/^\/crm\/objects\/([^/]+)\/(tasks|notes)\/batch\/create$/)) && VERSIONS.has(m[1])) return batchCreateActivities(res, m[2], body);
      if (req.method === "POST" && (m = p.match(/^\/crm\/properties\/([^/]+)\/([^/]+)\/groups$/)) && VERSIONS.has(m[1]) && TYPES.has(m[2])) return createGroup(res, m[2], body);
      if (req.method === "POST" && (m = p.match(/^\/crm\/properties\/([^/]+)\/([^/]+)$/)) && VERSIONS.has(m[1]) && TYPES.has(m[2])) return createProperty(res, m[2], body);
      if (req.method === "GET" && (m = p.match(/^\/crm\/properties\/([^/]+)\/([^/]+)$/)) && VERSIONS.has(m[1]) && TYPES.has(m[2])) return send(res, 200, { results: [...properties[m[2]].values()] });
      log(`hubspot emulator: no route ${req.method} ${p}`);
      error(res, 404, "OBJECT_NOT_FOUND", `No route for ${req.method} ${p}`);
    });
  });
  await new Promise((r) => server.listen(port, host, r));
  const bound = server.address().port;
  return {
    url: `http://${host}:${bound}`,
    port: bound,
    state,
    records: (type = "contacts") => state().records[type],
    control,
    close: () => new Promise((r) => server.close(r)),
  };
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const arg = (n, d) => {
    const i = process.argv.indexOf(n);
    return i > 0 ? process.argv[i + 1] : d;
  };
  const h = await startHubspot({
    port: Number(arg("--port", 8791)),
    token: arg("--token", process.env.HUBSPOT_TOKEN || readDevVars().HUBSPOT_TOKEN),
    burst: Number(arg("--burst", 100)),
    intervalMs: Number(arg("--interval-ms", 10_000)),
    daily: Number(arg("--daily", 250_000)),
    log: (l) => console.log(l),
  });
  console.log(`HubSpot emulator on ${h.url}`);
}
