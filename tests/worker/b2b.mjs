// The B2B world as a CRM sends it, shared by the B2B scenarios (b2b_loop.mjs, retrain.test.mjs):
// models/train/b2b_events.py turns ../shared/data/leadforge_b2b into events and outcomes; `leads(n)` picks
// n evenly spaced leads; `sendHistory` posts each lead's events by lead id as history
// (POST /v1/leads/events, 4 at a time, re-sent on failure: the route is idempotent) and the outcomes.
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { ROOT } from "./receiver.mjs";
import { sleep } from "./lib.mjs";

export const DATA = path.resolve(ROOT, "..", "shared", "data", "leadforge_b2b");
export const OUT = path.join(ROOT, "target", "b2b");
const PY = path.join(ROOT, ".venv", "bin", "python");

/** Runs a command in the repository root; throws with its stderr unless it exits 0. */
export function run(cmd, args, what = cmd, env = process.env) {
  const r = spawnSync(cmd, args, { cwd: ROOT, encoding: "utf8", maxBuffer: 1 << 30, env });
  if (r.status !== 0) throw new Error(`${what} failed (${r.status}):\n${r.stderr}\n${r.stdout}`.slice(0, 4000));
  return r;
}

const lines = (f) => fs.readFileSync(f, "utf8").split("\n").filter(Boolean);

/** The world's events by lead and its outcomes (written to target/b2b/ by the converter). */
export function world() {
  fs.mkdirSync(OUT, { recursive: true });
  const events = path.join(OUT, "events.ndjson");
  const outcomes = path.join(OUT, "outcomes.ndjson");
  run(PY, ["models/train/b2b_events.py", "--data", DATA, "--events", events, "--outcomes", outcomes], "b2b_events.py");
  const byLead = new Map();
  for (const l of lines(events)) {
    const e = JSON.parse(l);
    const lead = e.visitor_id.slice("b2b-".length);
    if (!byLead.has(lead)) byLead.set(lead, []);
    byLead.get(lead).push(e);
  }
  return { byLead, outcomes: lines(outcomes).map((l) => JSON.parse(l)) };
}

/** `want` evenly spaced lead ids (0: all). */
export function pick(byLead, want) {
  const all = [...byLead.keys()].sort();
  const step = want > 0 ? Math.max(1, Math.floor(all.length / want)) : 1;
  return new Set(all.filter((_, i) => i % step === 0).slice(0, want > 0 ? want : all.length));
}

/** Posts the chosen leads' histories and their outcomes; returns the event counts. */
export async function sendHistory(api, byLead, chosen, outcomes) {
  const counts = { accepted: 0, duplicates: 0, stale: 0, rejected: 0 };
  const send = async (p, body) => {
    for (let attempt = 1; ; attempt++) {
      const r = await api.post(p, body, { auth: true, timeout: 120_000 }).catch((e) => ({ status: 0, text: String(e) }));
      if (r.status === 200) return r.json;
      if (attempt >= 5) throw new Error(`b2b: ${p} → HTTP ${r.status} ${r.text?.slice(0, 300)}`);
      await sleep(1000 * attempt); // idempotent: send again
    }
  };
  const queue = [...chosen];
  const worker = async () => {
    while (queue.length) {
      const lead = queue.shift();
      const events = byLead.get(lead).map(({ visitor_id, ...e }) => e);
      for (let i = 0; i < events.length; i += 1000) {
        const r = await send("/v1/leads/events", { lead_id: lead, history: true, events: events.slice(i, i + 1000) });
        counts.accepted += r.accepted;
        counts.duplicates += r.duplicates;
        counts.stale += r.stale;
        counts.rejected += r.rejected.length;
      }
    }
  };
  await Promise.all([worker(), worker(), worker(), worker()]);
  const chosenOutcomes = outcomes.filter((o) => chosen.has(o.lead_id));
  for (let i = 0; i < chosenOutcomes.length; i += 1000) await send("/v1/outcomes", { outcomes: chosenOutcomes.slice(i, i + 1000) });
  return { counts, outcomes: chosenOutcomes };
}
