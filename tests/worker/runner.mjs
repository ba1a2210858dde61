#!/usr/bin/env node
// A job runner for the worker's `model.retrain_requested` webhook: it runs `leadscore retrain` (one run at a
// time; a request that arrives during a run is answered by one more run after it), as a scheduler or a CI
// workflow would. `make run` starts it beside the webhook receiver, so the loop turns on the local stack.
//
//   node tests/worker/runner.mjs [--receiver http://127.0.0.1:8790] [--work target/retrain]
//       polls the receiver's verified deliveries (GET /_events; the receiver checks every signature);
//       LEADSCORE_URL and LEADSCORE_TOKEN as for `leadscore retrain` (default: the local stack's).
//
// As a module: `startRunner({events, base, token, leadscore, work, args, log, skip})` → {runs(), skipped(),
// idle(), stop()}; `events()` lists the verified deliveries (a receiver's `events`); `skip(request)` true
// leaves a request unanswered (a scenario answering it itself).
import { spawn } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { ROOT, readDevVars } from "./receiver.mjs";

export const RETRAIN_REQUESTED = "model.retrain_requested";

/** `leadscore retrain` as a child process against the stack at `base` → {code, report, stderr}.
 * Async, so that the stack's sockets are served meanwhile (a blocked event loop misses the server
 * closing idle keep-alive connections, and the next request fails). */
export function retrainChild({ leadscore, work, args = [], base, token }) {
  return new Promise((resolve) => {
    const child = spawn(leadscore, ["retrain", "--work", work, ...args], {
      cwd: ROOT,
      env: { ...process.env, LEADSCORE_URL: base, LEADSCORE_TOKEN: token },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    let err = "";
    child.stdout.on("data", (c) => (out += c));
    child.stderr.on("data", (c) => (err += c));
    child.on("close", (code) => {
      let report = null;
      try {
        report = JSON.parse(out);
      } catch {
        /* no report: the caller reports stderr */
      }
      resolve({ code, report, stderr: err });
    });
  });
}

export function startRunner({ events, base, token, leadscore = path.join(ROOT, "target", "debug", "leadscore"), work = path.join(ROOT, "target", "retrain"), args = [], log = console.log, pollMs = 1000, skip = () => false }) {
  const seen = new Set();
  const skipped = [];
  const done = [];
  let pending = 0;
  let running = null;
  let stopped = false;

  const runOnce = async (request) => {
    const started = Date.now();
    log(`runner: ${request.data?.reason ?? "?"} → leadscore retrain`);
    const { code, report, stderr } = await retrainChild({ leadscore, work, args, base, token });
    const r = { request: request.id, reason: request.data?.reason, code, report, seconds: (Date.now() - started) / 1000, error: report ? undefined : stderr.slice(-2000) };
    done.push(r);
    log(report ? `runner: exit ${code}: ${report.verdict} (candidate ${report.candidate}, active ${report.active})` : `runner: exit ${code}: ${stderr.trim().split("\n").slice(-3).join(" | ")}`);
    return r;
  };

  const loop = async () => {
    while (!stopped) {
      for (const e of events()) {
        if (e.type === RETRAIN_REQUESTED && !seen.has(e.id)) {
          seen.add(e.id);
          if (skip(e)) skipped.push(e.id);
          else pending++;
        }
      }
      if (pending > 0 && !running) {
        const request = events().filter((e) => e.type === RETRAIN_REQUESTED && !skipped.includes(e.id)).pop();
        pending = 0; // every request so far is answered by this run (it exports everything new)
        running = runOnce(request).finally(() => (running = null));
      }
      await new Promise((r) => setTimeout(r, pollMs));
    }
  };
  const looping = loop();
  return {
    runs: () => [...done],
    /** Requests left to someone else (`skip`). */
    skipped: () => [...skipped],
    /** Resolves once no run is going and none is waiting. */
    idle: async () => {
      for (;;) {
        if (running) await running;
        else if (pending === 0) return;
        await new Promise((r) => setTimeout(r, pollMs));
      }
    },
    stop: async () => {
      stopped = true;
      await looping;
      if (running) await running;
    },
  };
}

async function main() {
  const args = process.argv.slice(2);
  const opt = (name, dflt) => (args.includes(name) ? args[args.indexOf(name) + 1] : dflt);
  const receiver = opt("--receiver", "http://127.0.0.1:8790").replace(/\/$/, "");
  const vars = readDevVars();
  const base = process.env.LEADSCORE_URL || "http://127.0.0.1:8787";
  const token = process.env.LEADSCORE_TOKEN || vars.API_TOKEN;
  const leadscore = path.join(ROOT, "target", "debug", "leadscore");
  if (!fs.existsSync(leadscore)) throw new Error(`${leadscore} missing: cargo build --features worker,retrain --bin leadscore`);
  let cache = [];
  const refresh = async () => {
    try {
      cache = (await (await fetch(`${receiver}/_events`)).json()).events;
    } catch {
      /* the receiver is not up yet */
    }
  };
  setInterval(refresh, 1000);
  startRunner({ events: () => cache, base, token, leadscore, work: opt("--work", path.join(ROOT, "target", "retrain")) });
  console.log(`runner: answering ${RETRAIN_REQUESTED} from ${receiver} with leadscore retrain against ${base}`);
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().catch((e) => {
    console.error(e.message);
    process.exit(1);
  });
}
