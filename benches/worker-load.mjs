#!/usr/bin/env node
// Bounded load test of the worker on loopback: N visitors × B batches of E events to POST /v1/events,
// then checks that no event was lost. No dependencies (node:http keep-alive agent).
//
//   node benches/worker-load.mjs [--base http://127.0.0.1:8787] [--visitors 200] [--batches 5]
//        [--events 10] [--concurrency 8] [--start] [--no-verify] [--logged-share 0.5]
//        [--experiment] [--site FILE] [--out target/artifacts/worker-load.json]
//
// --start launches its own stack (tests/worker/stack.mjs: receiver + wrangler dev on free ports, fresh
// state, RATE_LIMIT_PER_MIN raised so that the limiter does not shape the run). Without it a running
// stack is used (`node tests/worker/stack.mjs`); API_TOKEN comes from .dev.vars.
//
// Reported: a sequential GET /healthz baseline (wrangler dev's local proxy, no scoring), throughput, client latency per batch (p50/p90/p99/max; first batch of a visitor — a new
// Durable Object — separately), errors by status, every `Server-Timing` metric the worker returns
// (e.g. `do;dur=` / `cpu;dur=`), and the loss check:
//   1. Σ accepted = events sent, nothing rejected, no duplicates/stale;
//   2. per visitor, replaying its last batch is refused as duplicates (the state holds the events);
//   3. per visitor (≤ 100 events), GET /v1/score equals a stateless POST /v1/score of all its events,
//      i.e. the stored state has every event applied exactly once.
// --logged-share S: that share of the visitors (every 1/S-th, interleaved with the others in the same
// run, so both see the same machine) sends `consent.analytics`, so its events and scores go to the
// logs queue; the report gives both groups' latency and, with --start, what the logs consumer wrote
// (queue batches, messages, records, R2 objects: the objects per request and per queue batch).
// --experiment: the stack runs a 50/50 experiment of the embedded default and candidate bundles
// (EXPERIMENT), so both models score; latency is reported per arm. --site FILE: PUT /v1/site with
// those site tables first (e.g. target/loop/tables.json, 14,475 page statistics). The isolate's wasm
// memory (GET /healthz `wasm_memory_bytes`: models, site tables, plans) is read before and after.
// JSON to stdout and to --out.

import http from "node:http";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { syntheticEvents, batch, percentile, SITE_KEY } from "../tests/worker/lib.mjs";
import { readDevVars, ROOT } from "../tests/worker/receiver.mjs";

const args = process.argv.slice(2);
const flag = (n) => args.includes(`--${n}`);
const opt = (n, d) => {
  const i = args.indexOf(`--${n}`);
  return i >= 0 ? args[i + 1] : d;
};
const cfg = {
  base: opt("base", process.env.LEADSCORE_BASE ?? "http://127.0.0.1:8787"),
  visitors: Number(opt("visitors", 200)),
  batches: Number(opt("batches", 5)),
  events: Number(opt("events", 10)),
  concurrency: Number(opt("concurrency", 8)),
  verify: !flag("no-verify"),
  start: flag("start"),
  out: opt("out", path.join(ROOT, "target", "artifacts", "worker-load.json")),
  siteKey: opt("site-key", SITE_KEY),
  loggedShare: Number(opt("logged-share", 0)),
  experiment: flag("experiment"),
  site: opt("site", null),
};
const EXPERIMENT = { key: "leadscore-ab", arms: [{ model: "default", weight: 0.5 }, { model: "candidate", weight: 0.5 }] };
const WRANGLER_LOG = path.join(ROOT, "target", "wrangler-load.log");
const log = (m) => process.stderr.write(`worker-load: ${m}\n`);

function request(agent, base, method, p, { body, headers = {} } = {}) {
  const u = new URL(p, base);
  const payload = body === undefined ? null : Buffer.from(typeof body === "string" ? body : JSON.stringify(body));
  return new Promise((resolve) => {
    const t0 = process.hrtime.bigint();
    const req = http.request(
      {
        agent,
        method,
        host: u.hostname,
        port: u.port,
        path: u.pathname + u.search,
        headers: { ...(payload ? { "content-type": "application/json", "content-length": payload.length } : {}), ...headers },
      },
      (res) => {
        const chunks = [];
        res.on("data", (c) => chunks.push(c));
        res.on("end", () => {
          const ms = Number(process.hrtime.bigint() - t0) / 1e6;
          const text = Buffer.concat(chunks).toString("utf8");
          let json = null;
          try {
            json = JSON.parse(text);
          } catch {
            /* not JSON */
          }
          resolve({ status: res.statusCode, ms, json, text, headers: res.headers });
        });
        res.on("error", (e) => resolve({ status: 0, ms: Number(process.hrtime.bigint() - t0) / 1e6, error: String(e) }));
      },
    );
    req.setTimeout(30_000, () => req.destroy(new Error("timeout")));
    req.on("error", (e) => resolve({ status: 0, ms: Number(process.hrtime.bigint() - t0) / 1e6, error: String(e.message ?? e) }));
    if (payload) req.write(payload);
    req.end();
  });
}

/** `cpu;dur=1.2, do;dur=3` → {cpu: 1.2, do: 3}. */
function serverTiming(h) {
  const out = {};
  for (const part of String(h ?? "").split(",")) {
    const [name, ...params] = part.trim().split(";");
    if (!name) continue;
    const dur = params.map((x) => /^\s*dur=([\d.]+)/.exec(x)).find(Boolean);
    if (dur) out[name.trim()] = Number(dur[1]);
  }
  return out;
}

function stats(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const r = (x) => (x == null ? null : Math.round(x * 100) / 100);
  return {
    n: s.length,
    mean: r(s.reduce((a, b) => a + b, 0) / (s.length || 1)),
    p50: r(percentile(s, 50)),
    p90: r(percentile(s, 90)),
    p99: r(percentile(s, 99)),
    max: r(s[s.length - 1]),
  };
}

async function pool(items, n, fn) {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(n, items.length) }, async () => {
      while (next < items.length) {
        const i = next++;
        await fn(items[i], i);
      }
    }),
  );
}

async function main() {
  let stack = null;
  if (cfg.start) {
    const { startStack } = await import("../tests/worker/stack.mjs");
    log("starting a stack (first build can take minutes)…");
    stack = await startStack({
      port: "auto",
      receiverPort: "auto",
      fresh: true,
      vars: { RATE_LIMIT_PER_MIN: "1000000", ...(cfg.experiment ? { EXPERIMENT: JSON.stringify(EXPERIMENT) } : {}) },
      build: "auto",
      logFile: WRANGLER_LOG,
      receiverLog: () => {},
    });
    cfg.base = stack.base;
  }
  const token = stack?.devVars.API_TOKEN ?? process.env.API_TOKEN ?? readDevVars().API_TOKEN;
  const agent = new http.Agent({ keepAlive: true, maxSockets: cfg.concurrency });
  try {
    const health = await request(agent, cfg.base, "GET", "/healthz");
    if (health.status !== 200) throw new Error(`${cfg.base}/healthz: ${health.status} ${health.text ?? health.error}`);
    if (cfg.site) {
      const r = await request(agent, cfg.base, "PUT", "/v1/site", { body: fs.readFileSync(cfg.site, "utf8"), headers: { authorization: `Bearer ${token}` } });
      if (r.status !== 200) throw new Error(`PUT /v1/site: ${r.status} ${r.text}`);
      log(`site tables ${r.json.version}: ${r.json.pages_with_stats} pages with statistics`);
    }
    const memory = async () => (await request(agent, cfg.base, "GET", "/healthz")).json?.wasm_memory_bytes ?? null;
    const memoryBefore = await memory();
    // Baseline: the local proxy + router cost without a Durable Object or scoring (sequential).
    const base = [];
    for (let i = 0; i < 50; i++) base.push((await request(agent, cfg.base, "GET", "/healthz")).ms);
    const run = Date.now().toString(36);
    const total = cfg.batches * cfg.events;
    const start = Date.now() - total * 1000 - 60_000; // events in the recent past, 1 s apart
    const visitors = Array.from({ length: cfg.visitors }, (_, i) => `load-${run}-${i}`);
    const plan = new Map(visitors.map((v) => [v, syntheticEvents(v, total, { start })]));
    const every = cfg.loggedShare > 0 ? Math.max(1, Math.round(1 / cfg.loggedShare)) : 0;
    const logged = new Set(every ? visitors.filter((_, i) => i % every === every - 1) : []);
    const consentOf = (v) => (logged.has(v) ? { crm: true, analytics: true } : { crm: true });
    log(`${cfg.visitors} visitors × ${cfg.batches} batches × ${cfg.events} events, concurrency ${cfg.concurrency}, against ${cfg.base}`);

    const results = [];
    const t0 = process.hrtime.bigint();
    await pool(visitors, cfg.concurrency, async (v) => {
      const evs = plan.get(v);
      for (let b = 0; b < cfg.batches; b++) {
        const r = await request(agent, cfg.base, "POST", "/v1/events", { body: batch(v, evs.slice(b * cfg.events, (b + 1) * cfg.events), { siteKey: cfg.siteKey, consent: consentOf(v) }) });
        results.push({ v, b, logged: logged.has(v), status: r.status, ms: r.ms, timing: serverTiming(r.headers?.["server-timing"]), json: r.json, error: r.error });
      }
    });
    const wall = Number(process.hrtime.bigint() - t0) / 1e9;
    const memoryAfter = await memory();

    const ok = results.filter((r) => r.status === 200);
    const byStatus = {};
    for (const r of results) if (r.status !== 200) byStatus[r.status || r.error] = (byStatus[r.status || r.error] ?? 0) + 1;
    const timingNames = [...new Set(results.flatMap((r) => Object.keys(r.timing)))];
    const sent = results.length * cfg.events;
    const accepted = ok.reduce((n, r) => n + (r.json?.accepted ?? 0), 0);
    const rejected = ok.reduce((n, r) => n + (r.json?.rejected?.length ?? 0), 0);
    const dupStale = ok.reduce((n, r) => n + (r.json?.duplicates ?? 0) + (r.json?.stale ?? 0), 0);

    const report = {
      config: { ...cfg, base: cfg.base },
      environment: {
        node: process.version,
        cpus: os.cpus().length,
        cpu_model: os.cpus()[0]?.model,
        model_version: health.json?.model_version,
        note: "wrangler dev (workerd, local mode) and this client share the machine; loopback HTTP",
      },
      wall_seconds: Math.round(wall * 1000) / 1000,
      requests: results.length,
      events_sent: sent,
      throughput: { batches_per_s: Math.round((results.length / wall) * 10) / 10, events_per_s: Math.round((sent / wall) * 10) / 10 },
      baseline_healthz_ms_sequential: stats(base),
      latency_ms_per_batch: stats(results.map((r) => r.ms)),
      latency_ms_first_batch_new_visitor: stats(results.filter((r) => r.b === 0).map((r) => r.ms)),
      latency_ms_later_batches: stats(results.filter((r) => r.b > 0).map((r) => r.ms)),
      server_timing_ms: Object.fromEntries(timingNames.map((n) => [n, stats(results.filter((r) => n in r.timing).map((r) => r.timing[n]))])),
      errors: { count: results.length - ok.length, by_status: byStatus },
      accounting: { accepted, rejected, duplicates_or_stale: dupStale, lost: sent - accepted },
      wasm_memory_bytes: { before: memoryBefore, after: memoryAfter },
    };
    if (cfg.experiment) {
      const arms = [...new Set(ok.map((r) => r.json?.score?.arm ?? "none"))];
      report.arms = Object.fromEntries(arms.map((a) => {
        const rs = ok.filter((r) => (r.json?.score?.arm ?? "none") === a);
        return [a, { visitors: new Set(rs.map((r) => r.v)).size, model_version: rs[0]?.json?.score?.model_version, latency_ms_later_batches: stats(rs.filter((r) => r.b > 0).map((r) => r.ms)) }];
      }));
    }
    if (logged.size) {
      const group = (want) => results.filter((r) => r.logged === want && r.b > 0 && r.status === 200).map((r) => r.ms);
      const [on, off] = [stats(group(true)), stats(group(false))];
      report.logging = {
        visitors_logged: logged.size,
        visitors_not_logged: visitors.length - logged.size,
        latency_ms_later_batches_logged: on,
        latency_ms_later_batches_not_logged: off,
        overhead_p50_percent: off.p50 ? Math.round(((on.p50 - off.p50) / off.p50) * 1000) / 10 : null,
        overhead_mean_percent: off.mean ? Math.round(((on.mean - off.mean) / off.mean) * 1000) / 10 : null,
      };
    }
    if (!timingNames.length) report.server_timing_ms = "no Server-Timing header on /v1/events responses";

    if (cfg.verify) {
      log("verifying: replaying each visitor's last batch and comparing stored vs stateless scores…");
      const ver = { visitors: visitors.length, replay_refused: 0, replay_accepted_again: 0, score_matches: 0, score_mismatches: [], errors: 0, skipped_stateless: 0, other_arm: 0 };
      const vagent = new http.Agent({ keepAlive: true, maxSockets: cfg.concurrency });
      await pool(visitors, cfg.concurrency, async (v) => {
        const evs = plan.get(v);
        const last = evs.slice((cfg.batches - 1) * cfg.events);
        const rep = await request(vagent, cfg.base, "POST", "/v1/events", { body: batch(v, last, { siteKey: cfg.siteKey }) });
        if (rep.status !== 200) ver.errors++;
        else if (rep.json.accepted === 0 && rep.json.duplicates + rep.json.stale === last.length) ver.replay_refused++;
        else ver.replay_accepted_again++;
        if (!token) return;
        const stored = await request(vagent, cfg.base, "GET", `/v1/score/${encodeURIComponent(v)}`, { headers: { authorization: `Bearer ${token}` } });
        if (evs.length > 100) {
          ver.skipped_stateless++;
          return;
        }
        const fresh = await request(vagent, cfg.base, "POST", "/v1/score", { body: { events: evs }, headers: { authorization: `Bearer ${token}` } });
        if (stored.status !== 200 || fresh.status !== 200) {
          ver.errors++;
          return;
        }
        const a = stored.json.score;
        const b = fresh.json.score;
        // The stateless route scores with the default: a visitor of another arm has nothing to match.
        if (a.arm && a.arm !== "default") {
          ver.other_arm++;
          return;
        }
        if (a.probability === b.probability && a.ai_score === b.ai_score) ver.score_matches++;
        else ver.score_mismatches.push({ visitor: v, stored: a.probability, stateless: b.probability });
      });
      vagent.destroy();
      if (!token) ver.note = "no API_TOKEN: score comparison skipped";
      ver.score_mismatches = ver.score_mismatches.slice(0, 10);
      report.verification = ver;
    }
    report.pass =
      report.errors.count === 0 &&
      report.accounting.lost === 0 &&
      report.accounting.rejected === 0 &&
      (!report.verification ||
        (report.verification.errors === 0 && report.verification.replay_accepted_again === 0 && report.verification.score_mismatches.length === 0));

    if (logged.size && stack) {
      // The consumer's own account of what it wrote (src/worker/logs.rs), once the queue drained.
      const want = logged.size * cfg.batches;
      let w = null;
      for (let i = 0; i < 30; i++) {
        await new Promise((r) => setTimeout(r, 1000));
        const lines = fs.readFileSync(WRANGLER_LOG, "utf8").split("\n");
        w = { queue_batches: 0, messages: 0, records: 0, objects: 0 };
        for (const l of lines) {
          const m = /logs: (\d+) messages, (\d+) records → (\d+) objects/.exec(l);
          if (!m) continue;
          w.queue_batches++;
          w.messages += Number(m[1]);
          w.records += Number(m[2]);
          w.objects += Number(m[3]);
        }
        if (w.messages >= want) break;
      }
      w.requests_logged = want;
      w.objects_per_request = w.messages ? Math.round((w.objects / w.messages) * 1000) / 1000 : null;
      w.objects_per_queue_batch = w.queue_batches ? Math.round((w.objects / w.queue_batches) * 100) / 100 : null;
      w.messages_per_queue_batch = w.queue_batches ? Math.round((w.messages / w.queue_batches) * 10) / 10 : null;
      report.logging.written = w;
    }
    fs.mkdirSync(path.dirname(cfg.out), { recursive: true });
    fs.writeFileSync(cfg.out, `${JSON.stringify(report, null, 2)}\n`);
    console.log(JSON.stringify(report, null, 2));
    log(`${report.pass ? "PASS" : "FAIL"}: ${report.throughput.batches_per_s} batches/s, p50 ${report.latency_ms_per_batch.p50} ms, p99 ${report.latency_ms_per_batch.p99} ms, ${report.errors.count} errors, ${report.accounting.lost} lost → ${path.relative(process.cwd(), cfg.out)}`);
    process.exitCode = report.pass ? 0 : 1;
  } finally {
    agent.destroy();
    await stack?.stop();
  }
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().catch((e) => {
    console.error(`worker-load: ${e.stack ?? e}`);
    process.exit(1);
  });
}
