#!/usr/bin/env node
// An isolate's first score in workerd, with the active model read from the registry (R2) beside the
// embedded default: wrangler dev started afresh each round (a new workerd process, so a new isolate),
// then two new visitors' first batches, timed from this client over loopback.
//
//   node benches/isolate-start.mjs [--rounds 7] [--out target/artifacts/isolate-start.json]
//
// The stack's start asks GET /healthz, which builds the embedded default in the isolate. So the first
// visitor's batch pays what a first use adds in that isolate: with a registry version active, reading the
// registry's state and the version's serving form from R2 and loading it (card, forest.bin, plan,
// explainer); with none, nothing model-related. The second visitor (another Durable Object, the same
// isolate) pays neither: first − second is a first use's cost, and the registry's minus the default's is
// what loading from R2 adds, both reads included (an upper bound of the load after the read). Wall time
// at the client, through wrangler dev's proxy: what a visitor waits for. The modes alternate by round.
import fs from "node:fs";
import path from "node:path";
import { batch, bundleUpload, client, journey, percentile } from "../tests/worker/lib.mjs";
import { ROOT } from "../tests/worker/receiver.mjs";
import { startStack } from "../tests/worker/stack.mjs";

const args = process.argv.slice(2);
const opt = (n, d) => {
  const i = args.indexOf(`--${n}`);
  return i >= 0 ? args[i + 1] : d;
};
const rounds = Number(opt("rounds", 7));
const out = opt("out", path.join(ROOT, "target", "artifacts", "isolate-start.json"));
const VERSION_DIR = "candidate"; // the registry's version: a bundle other than the embedded default

const tmp = path.join(ROOT, "target", "tmp");
fs.mkdirSync(tmp, { recursive: true });
const dirs = { embedded: fs.mkdtempSync(path.join(tmp, "isolate-embedded-")), registry: fs.mkdtempSync(path.join(tmp, "isolate-registry-")) };

const start = (mode) =>
  startStack({
    port: "auto",
    receiverPort: "auto",
    backendPort: "auto",
    persistTo: dirs[mode],
    build: "auto",
    logFile: path.join(ROOT, "target", `bench-isolate-${mode}.log`),
    progress: () => {},
    receiverLog: () => {},
  });

async function timed(api, visitor) {
  const t0 = performance.now();
  const r = await api.events(batch(visitor, journey("v-warm", { visitor })));
  const ms = performance.now() - t0;
  if (r.status !== 200) throw new Error(`POST /v1/events for ${visitor}: HTTP ${r.status} ${r.text.slice(0, 300)}`);
  return { ms, model: r.json.score.model_version };
}

const card = JSON.parse(fs.readFileSync(path.join(ROOT, "models", VERSION_DIR, "card.json"), "utf8"));
const expected = { embedded: null, registry: card.model_version };

// The registry's version: uploaded and activated once, kept in that mode's R2 across the rounds.
{
  const S = await start("registry");
  try {
    const api = client(S.base, { token: S.devVars.API_TOKEN });
    const up = await api.put(`/v1/models/${VERSION_DIR}`, bundleUpload(VERSION_DIR), { auth: true });
    if (up.status !== 201 && up.status !== 200) throw new Error(`upload: HTTP ${up.status} ${up.text.slice(0, 300)}`);
    const act = await api.post(`/v1/models/${card.model_version}/activate`, { reason: "isolate-start bench" }, { auth: true });
    if (act.status !== 200) throw new Error(`activate: HTTP ${act.status} ${act.text.slice(0, 300)}`);
    expected.embedded = (await api.get("/healthz")).json.model_version;
  } finally {
    await S.stop();
  }
}

const samples = { embedded: [], registry: [] };
for (let r = 0; r < rounds; r++) {
  for (const mode of r % 2 ? ["registry", "embedded"] : ["embedded", "registry"]) {
    const S = await start(mode);
    try {
      const api = client(S.base, { token: S.devVars.API_TOKEN });
      const first = await timed(api, `isolate-${mode}-${r}-a`);
      const second = await timed(api, `isolate-${mode}-${r}-b`);
      for (const s of [first, second]) {
        if (s.model !== expected[mode]) throw new Error(`${mode}: scored by ${s.model}, expected ${expected[mode]}`);
      }
      samples[mode].push({ first_ms: first.ms, second_ms: second.ms, first_use_ms: first.ms - second.ms });
    } finally {
      await S.stop();
    }
  }
}
for (const d of Object.values(dirs)) fs.rmSync(d, { recursive: true, force: true });

const median = (xs) => +percentile([...xs].sort((a, b) => a - b), 50).toFixed(1);
const summary = Object.fromEntries(
  Object.entries(samples).map(([mode, s]) => [
    mode,
    {
      model_version: expected[mode],
      first_batch_ms_median: median(s.map((x) => x.first_ms)),
      second_batch_ms_median: median(s.map((x) => x.second_ms)),
      first_use_ms_median: median(s.map((x) => x.first_use_ms)),
      samples: s.map((x) => Object.fromEntries(Object.entries(x).map(([k, v]) => [k, +v.toFixed(1)]))),
    },
  ]),
);
const report = {
  rounds,
  registry_over_embedded_ms: +(summary.registry.first_use_ms_median - summary.embedded.first_use_ms_median).toFixed(1),
  ...summary,
  environment: "wrangler dev (workerd, local mode) on loopback, client on the same machine; wall time",
};
fs.mkdirSync(path.dirname(out), { recursive: true });
fs.writeFileSync(out, JSON.stringify(report, null, 2) + "\n");
console.log(JSON.stringify(report, null, 2));
