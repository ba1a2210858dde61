// The learning loop's CI subset (make loop-test runs all 12,330 visitors and trains): a few hundred
// Online Shoppers visitors imported into the local worker at their own timestamps (some batches sent
// twice, the worker restarted half-way, every log message delivered twice by the queue), their purchases as outcomes (twice), the logs exported, and
// `leadscore dataset` on them. Every row must equal the CSV's features bit for bit with the CSV's
// label, and the dataset must be byte-identical to one built from exactly what was sent.
//   node --test --test-concurrency=1 tests/worker/loop.test.mjs
import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { ROOT } from "./receiver.mjs";
import { runLoop } from "./loop.mjs";

const VISITORS = 300;

test(`the loop closes for ${VISITORS} visitors: logs lose nothing, add nothing, and replays change nothing`, { timeout: 900_000 }, async () => {
  const debug = path.join(ROOT, "target", "debug", "leadscore");
  const release = path.join(ROOT, "target", "release", "leadscore");
  const leadscore = [release, debug].filter((f) => fs.existsSync(f)).sort((a, b) => fs.statSync(b).mtimeMs - fs.statSync(a).mtimeMs)[0];
  assert.ok(leadscore, "no leadscore binary: cargo build --bin leadscore");
  const r = await runLoop({ visitors: VISITORS, leadscore, out: path.join(ROOT, "target", "loop-ci"), log: () => {} });
  console.log(JSON.stringify(r));
  assert.equal(r.visitors, VISITORS);
  assert.ok(r.purchases > 0, "the subset holds purchases");
  assert.equal(r.import.accepted, r.events, "every sent event accepted once");
  assert.ok(r.replayed_batches > 0);
  assert.equal(r.replayed_accepted, 0, "a replayed batch adds nothing");
  assert.equal(r.outcomes.accepted, r.purchases);
  assert.equal(r.outcomes.duplicates, r.purchases, "the second sending of every outcome is a duplicate");
  assert.ok(r.redelivered_messages > 0, "the queue delivered log messages twice");
  assert.ok(r.logged_event_lines >= r.events);
  assert.equal(r.logged_distinct_events, r.events, "every accepted event logged, and nothing else");
  assert.equal(r.dataset_rows, VISITORS);
  assert.equal(r.features_equal, VISITORS, `features differ: ${JSON.stringify(r.mismatches)}`);
  assert.equal(r.label_mismatches, 0);
  assert.ok(r.dataset_identical_to_sent, "the dataset from the logs equals the one from what was sent");
});
