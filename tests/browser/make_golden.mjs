// Writes tests/fixtures/browser_golden.json: the sample events and what the native CLI scores for
// them, for golden.test.mjs to replay inside Chromium through the wasm LeadScorer.
//
//   node tests/browser/make_golden.mjs [--bin target/debug/leadscore] [--allow-stale]
//
// It refuses a CLI binary older than the sources or the model bundle (a stale binary would make a
// golden file the current wasm cannot match); rebuild it, or pass --allow-stale knowingly.
import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { ROOT } from './helpers.mjs';

import { fileURLToPath } from 'node:url';

export const GOLDEN = join(ROOT, 'tests/fixtures/browser_golden.json');
const model = 'models/default';
const eventsFile = 'tests/fixtures/sample_events.ndjson';

/** Sources and model files newer than the CLI binary `bin` (a stale binary cannot make the golden file). */
export function newerThan(bin) {
  const binTime = statSync(bin).mtimeMs;
  const newer = [];
  const walk = (d) => {
    for (const e of readdirSync(join(ROOT, d), { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (statSync(join(ROOT, p)).mtimeMs > binTime) newer.push(p);
    }
  };
  walk('src');
  walk(model);
  return newer;
}

/** The golden file's text, as the CLI `bin` makes it now. */
export function goldenText(bin) {
  const run = (...extra) =>
    execFileSync(bin, ['score', '--model', model, '--events', eventsFile, ...extra], { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l));
  const lines = readFileSync(join(ROOT, eventsFile), 'utf8').split('\n').filter((l) => l.trim());
  const golden = {
    about: 'Made by tests/browser/make_golden.mjs from the native CLI; replayed in Chromium by tests/browser/golden.test.mjs.',
    command: `leadscore score --model ${model} --events ${eventsFile} [--each]`,
    events: lines, // the exact JSON lines, malformed ones included
    final: run(), // one score per visitor after its last event
    each: run('--each'), // one score after every parseable line, in file order
  };
  return JSON.stringify(golden, null, 1) + '\n';
}

function main() {
  const args = process.argv.slice(2);
  const opt = (name, dflt) => {
    const i = args.indexOf(name);
    return i >= 0 ? args[i + 1] : dflt;
  };
  const bin = join(ROOT, opt('--bin', process.env.LEADSCORE_BIN || 'target/debug/leadscore'));
  let newer;
  try {
    newer = newerThan(bin);
  } catch {
    console.error(`make_golden: ${relative(ROOT, bin)} is missing; build the CLI first (cargo build --bin leadscore)`);
    process.exit(2);
  }
  if (newer.length && !args.includes('--allow-stale')) {
    console.error(`make_golden: ${relative(ROOT, bin)} is older than ${newer.join(', ')}; rebuild it (or --allow-stale)`);
    process.exit(3);
  }
  const text = goldenText(bin);
  writeFileSync(GOLDEN, text);
  const g = JSON.parse(text);
  console.log(`make_golden: ${g.events.length} lines, ${g.final.length} visitors, ${g.each.length} per-event scores → tests/fixtures/browser_golden.json`);
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) main();
