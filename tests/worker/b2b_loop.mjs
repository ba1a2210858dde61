// The B2B world through the product's own loop on the local stack (wrangler dev: workerd, Durable
// Objects, Queues, R2), the way a CRM would feed it:
//
//   leadforge tables ─► models/train/b2b_events.py (events and outcomes)
//     ─► POST /v1/leads/events, by lead, as history (each lead's own stream: no browser)
//     ─► POST /v1/outcomes (customers, opportunities) ─► logs Queue ─► R2 ─► GET /v1/export
//     ─► leadscore dataset from the B2B template (snapshots 0–30 days, by lead, 60-day window)
//     ─► check: the rows equal, byte for byte, the rows built straight from the files that were sent
//        (target/b2b/snapshots.csv, `make b2b-example`): nothing lost, added or changed on the way.
//
//   node tests/worker/b2b_loop.mjs [--leads N]      (make b2b-loop; N evenly spaced leads, 0 = all)
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { ROOT } from "./receiver.mjs";
import { client, sleep } from "./lib.mjs";
import { startStack } from "./stack.mjs";
import { OUT, pick, run, sendHistory, world } from "./b2b.mjs";

const DAY = 86_400_000;
const DATASET = ["--model", "models/train/b2b.card.json", "--label", "customer", "--by", "lead", "--decisions", "snapshots:0,7,14,21,30", "--window", "60d", "--as-of", "2024-05-01"];

const sha = (f) => crypto.createHash("sha256").update(fs.readFileSync(f)).digest("hex");

async function main() {
  const args = process.argv.slice(2);
  const want = Number(args[args.indexOf("--leads") + 1] || 0) || 0;
  const leadscore = path.join(ROOT, "target", "release", "leadscore");
  if (!fs.existsSync(leadscore)) throw new Error(`${leadscore} missing (cargo build --release --features worker --bin leadscore)`);
  const t0 = Date.now();
  const { byLead, outcomes: allOutcomes } = world();
  const chosen = pick(byLead, want);
  const sentEvents = path.join(OUT, "loop_sent_events.ndjson");
  const sentOutcomes = path.join(OUT, "loop_sent_outcomes.ndjson");
  fs.writeFileSync(sentEvents, [...chosen].flatMap((l) => byLead.get(l).map((e) => JSON.stringify(e))).join("\n") + "\n");
  const outcomes = allOutcomes.filter((o) => chosen.has(o.lead_id));
  fs.writeFileSync(sentOutcomes, outcomes.map((o) => JSON.stringify(o)).join("\n") + "\n");
  const nEvents = [...chosen].reduce((a, l) => a + byLead.get(l).length, 0);
  process.stderr.write(`b2b loop: ${chosen.size} leads, ${nEvents} events, ${outcomes.length} outcomes\n`);

  const state = fs.mkdtempSync(path.join(ROOT, "target", "tmp", "b2b-state-"));
  const S = await startStack({ port: "auto", receiverPort: "auto", backendPort: "auto", persistTo: state, build: "auto", logFile: path.join(OUT, "wrangler.log"), receiverLog: () => {} });
  const api = client(S.base, { token: S.devVars.API_TOKEN });
  try {
    // 1. Each lead's history, by lead id, with no visitor id: what a CRM knows about the lead.
    let t = Date.now();
    const { counts } = await sendHistory(api, byLead, chosen, allOutcomes);
    const importS = (Date.now() - t) / 1000;
    t = Date.now();

    // 2. The logs back through the export, once the queue has written them (the events plus one
    // opening identify per lead's stream; the outcomes).
    let lo = Infinity;
    let hi = -Infinity;
    for (const l of chosen) for (const e of byLead.get(l)) (lo = Math.min(lo, e.ts)), (hi = Math.max(hi, e.ts));
    for (const o of outcomes) hi = Math.max(hi, o.ts);
    const exportAll = async (log) => {
      const r = await api.get(`/v1/export/${log}?from=${lo - (lo % DAY)}&to=${hi + 1}`, { auth: true, timeout: 300_000 });
      if (r.status !== 200) throw new Error(`b2b loop: export ${log} → HTTP ${r.status} ${r.text.slice(0, 300)}`);
      return r.text;
    };
    const distinct = (text, key) => new Set(text.split("\n").filter(Boolean).map((l) => key(JSON.parse(l)))).size;
    let events = "";
    let outs = "";
    for (let waited = 0; ; waited++) {
      events = await exportAll("events");
      outs = await exportAll("outcomes");
      const ne = distinct(events, (r) => `${r.event.visitor_id}/${r.event.id}`);
      const no = distinct(outs, (r) => r.outcome.id);
      if (ne >= counts.accepted && no >= outcomes.length) break;
      if (waited > 180) throw new Error(`b2b loop: the logs hold ${ne}/${counts.accepted} events and ${no}/${outcomes.length} outcomes after 3 minutes`);
      await sleep(1000);
    }
    const logged = path.join(OUT, "loop_logged_events.ndjson");
    const loggedOutcomes = path.join(OUT, "loop_logged_outcomes.ndjson");
    fs.writeFileSync(logged, events);
    fs.writeFileSync(loggedOutcomes, outs);
    const exportS = (Date.now() - t) / 1000;

    // 3. The same rows from the logs as from what was sent.
    const fromLogs = path.join(OUT, "loop_dataset.csv");
    const fromSent = path.join(OUT, "loop_dataset_sent.csv");
    const summary = run(leadscore, ["dataset", ...DATASET, "--events", logged, "--outcomes", loggedOutcomes, "--strict", "--out", fromLogs], "leadscore dataset (logs)").stderr;
    run(leadscore, ["dataset", ...DATASET, "--events", sentEvents, "--outcomes", sentOutcomes, "--strict", "--out", fromSent], "leadscore dataset (sent)");
    const result = {
      leads: chosen.size,
      events_sent: nEvents,
      outcomes_sent: outcomes.length,
      leads_events: counts,
      logged_distinct_events: distinct(events, (r) => `${r.event.visitor_id}/${r.event.id}`),
      logged_distinct_outcomes: distinct(outs, (r) => r.outcome.id),
      dataset_summary: JSON.parse(summary.trim().split("\n").pop()),
      rows_identical_to_sent: sha(fromLogs) === sha(fromSent),
      seconds: { import: +importS.toFixed(1), export: +exportS.toFixed(1), total: +((Date.now() - t0) / 1000).toFixed(1) },
    };
    console.log(JSON.stringify(result, null, 2));
    const ok = result.rows_identical_to_sent && counts.accepted === nEvents + chosen.size && counts.rejected === 0;
    process.exitCode = ok ? 0 : 1;
  } finally {
    await S.stop();
    fs.rmSync(state, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(e.message);
  process.exit(1);
});
