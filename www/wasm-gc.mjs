// Dead-code removal for the browser module that the linker cannot do.
//
//   node www/wasm-gc.mjs IN.wasm OUT.wasm [--name-stubs]   (IN linked with `-C link-arg=--emit-relocs`)
//   import { gc } from './wasm-gc.mjs'        (tests: tests/browser/wasm-gc.test.mjs)
//
// Why: tract registers runtimes, model transforms and linalg kernels through `inventory`, i.e.
// static constructors, and wasm-ld keeps the constructors of every object file with one live
// symbol as GC roots. Through them the whole optimizer, every op's codegen, convolutions and
// matmul kernels stay in the module although our plan (one tree op, Identity, Const, Cast) never
// reaches them, and the constructors are never run (nothing calls `__wasm_call_ctors`).
//
// This is wasm-ld's own mark phase redone from the relocations `--emit-relocs` leaves in the
// output, with the constructors left out of the roots: roots are the exports and no-strip symbols;
// a live function keeps what its code relocations name (callees, functions whose address it takes,
// data it addresses); a live data symbol keeps what the relocations inside its bytes name (vtables
// → methods, pointers → data). Bodies of the functions left unmarked become `unreachable` (indices,
// the table and data addresses stay as they are), and unmarked data bytes are zeroed. The
// relocation and linking sections are dropped. Prints what it removed.
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** Unsigned LEB128 bytes of `n`. */
export const uleb = (n) => {
  const b = [];
  do {
    let x = n & 0x7f;
    n = Math.floor(n / 128);
    if (n) x |= 0x80;
    b.push(x);
  } while (n);
  return Buffer.from(b);
};

/** Why a module cannot be collected (the module is left as it is). */
export class WasmGcError extends Error {}

/** What a stubbed function is called in the name section `nameStubs` writes. */
export const STUB_PREFIX = 'wasm-gc stub: ';

/**
 * Collects `bin` (a linked module with its relocations); returns the new module and what went:
 * `{wasm, functions, deadFunctions: [{index, name}], deadCodeBytes, zeroedDataBytes}`.
 * `nameStubs`: replace the name section by one naming each stubbed function `STUB_PREFIX + symbol`,
 * so that a stub reached at run time says which it was in the trap's stack (a debugging build:
 * the names cost size, and wasm-bindgen must then keep the name section).
 */
export function gc(bin, { nameStubs = false } = {}) {
const fail = (msg) => {
  throw new WasmGcError(msg);
};

/** A cursor over `bin`. */
class Reader {
  constructor(pos, end) {
    this.pos = pos;
    this.end = end;
  }
  u8() {
    if (this.pos >= this.end) fail(`truncated at byte ${this.pos}`);
    return bin[this.pos++];
  }
  uleb() {
    let result = 0n;
    let shift = 0n;
    for (;;) {
      const b = this.u8();
      result |= BigInt(b & 0x7f) << shift;
      shift += 7n;
      if (b < 0x80) return Number(result);
    }
  }
  sleb() {
    let result = 0n;
    let shift = 0n;
    let b;
    do {
      b = this.u8();
      result |= BigInt(b & 0x7f) << shift;
      shift += 7n;
    } while (b >= 0x80);
    if (b & 0x40) result -= 1n << shift;
    return Number(result);
  }
  name() {
    const n = this.uleb();
    const s = bin.toString('utf8', this.pos, this.pos + n);
    this.pos += n;
    return s;
  }
}

// Sections.
if (bin.readUInt32LE(0) !== 0x6d736100) fail('not a wasm module');
const sections = [];
{
  const r = new Reader(8, bin.length);
  while (r.pos < bin.length) {
    const start = r.pos;
    const id = r.u8();
    const size = r.uleb();
    const payload = r.pos;
    let name = null;
    if (id === 0) name = new Reader(payload, payload + size).name();
    sections.push({ id, start, payload, end: payload + size, name });
    r.pos = payload + size;
  }
}
const section = (id, name = null) => sections.find((s) => s.id === id && s.name === name);
const code = section(10);
const data = section(11);
const linking = section(0, 'linking');
if (!code || !data) fail('no code or data section');
if (!linking) fail('no linking section: link with `-C link-arg=--emit-relocs`');

// Imported functions come first in the function index space.
let importedFuncs = 0;
{
  const s = section(2);
  if (s) {
    const r = new Reader(s.payload, s.end);
    for (let n = r.uleb(); n > 0; n--) {
      r.name();
      r.name();
      const kind = r.u8();
      if (kind === 0) {
        r.uleb();
        importedFuncs++;
      } else if (kind === 1) {
        r.u8();
        const flags = r.uleb();
        r.uleb();
        if (flags & 1) r.uleb();
      } else if (kind === 2) {
        const flags = r.uleb();
        r.uleb();
        if (flags & 1) r.uleb();
      } else if (kind === 3) {
        r.u8();
        r.u8();
      } else if (kind === 4) {
        r.u8();
        r.uleb();
      } else fail(`unknown import kind ${kind}`);
    }
  }
}

// Function bodies: [start, end) offsets relative to the code section payload (what relocations use).
const bodies = [];
{
  const r = new Reader(code.payload, code.end);
  for (let n = r.uleb(); n > 0; n--) {
    const start = r.pos;
    const size = r.uleb();
    bodies.push({ start: start - code.payload, bodyStart: r.pos, end: r.pos + size - code.payload });
    r.pos += size;
  }
}

// Data segments: where their bytes are, relative to the data section payload.
const segments = [];
{
  const r = new Reader(data.payload, data.end);
  for (let n = r.uleb(); n > 0; n--) {
    const flags = r.uleb();
    if (flags === 2) r.uleb();
    if (flags !== 1) {
      // constant offset expression: a single i32/i64.const, then end
      const op = r.u8();
      if (op !== 0x41 && op !== 0x42) fail(`data segment offset opcode 0x${op.toString(16)}`);
      r.sleb();
      if (r.u8() !== 0x0b) fail('data segment offset expression is not a single constant');
    }
    const size = r.uleb();
    segments.push({ start: r.pos - data.payload, size });
    r.pos += size;
  }
}

// Symbol table.
const FLAG_UNDEFINED = 0x10;
const FLAG_EXPORTED = 0x20;
const FLAG_EXPLICIT_NAME = 0x40;
const FLAG_NO_STRIP = 0x80;
const symbols = [];
{
  const r = new Reader(linking.payload, linking.end);
  r.name();
  const version = r.uleb();
  if (version !== 2) fail(`linking section version ${version}`);
  while (r.pos < linking.end) {
    const type = r.u8();
    const size = r.uleb();
    const next = r.pos + size;
    if (type === 8) {
      for (let n = r.uleb(); n > 0; n--) {
        const kind = r.u8();
        const flags = r.uleb();
        const sym = { kind, flags };
        if (kind === 0 || kind === 2 || kind === 4 || kind === 5) {
          sym.index = r.uleb();
          if (!(flags & FLAG_UNDEFINED) || flags & FLAG_EXPLICIT_NAME) sym.name = r.name();
        } else if (kind === 1) {
          sym.name = r.name();
          if (!(flags & FLAG_UNDEFINED)) {
            sym.segment = r.uleb();
            sym.offset = r.uleb();
            sym.size = r.uleb();
          }
        } else if (kind === 3) {
          sym.index = r.uleb();
        } else fail(`unknown symbol kind ${kind}`);
        symbols.push(sym);
      }
    }
    r.pos = next;
  }
}
if (!symbols.length) fail('the linking section has no symbol table');

// Relocations, per target section.
const relocs = { code: [], data: [] };
const WITH_ADDEND = new Set([3, 4, 5, 8, 9, 11, 14, 15, 16, 17, 21, 22, 23, 25]);
for (const s of sections.filter((s) => s.id === 0 && s.name?.startsWith('reloc.'))) {
  const r = new Reader(s.payload, s.end);
  r.name();
  const target = sections[r.uleb()];
  const list = target === code ? relocs.code : target === data ? relocs.data : null;
  for (let n = r.uleb(); n > 0; n--) {
    const type = r.u8();
    const offset = r.uleb();
    const index = r.uleb();
    if (WITH_ADDEND.has(type)) r.sleb();
    list?.push({ type, offset, index });
  }
}
if (!relocs.code.length) fail('no code relocations: link with `-C link-arg=--emit-relocs`');

const FUNCTION_REFS = new Set([0, 1, 2, 12, 18, 19, 26]);
const DATA_REFS = new Set([3, 4, 5, 11, 14, 15, 16, 17, 21, 23, 25]);

// Relocations grouped by the function body / data symbol they sit in.
const codeRelocs = bodies.map(() => []);
{
  relocs.code.sort((a, b) => a.offset - b.offset);
  let f = 0;
  for (const rel of relocs.code) {
    while (f < bodies.length && bodies[f].end <= rel.offset) f++;
    if (f === bodies.length || rel.offset < bodies[f].start) fail(`code relocation at ${rel.offset} outside any body`);
    codeRelocs[f].push(rel);
  }
}
// Data symbols by absolute position in the data section payload.
const dataSyms = symbols
  .map((s, i) => ({ s, i }))
  .filter(({ s }) => s.kind === 1 && s.segment !== undefined && segments[s.segment])
  .map(({ s, i }) => ({ i, from: segments[s.segment].start + s.offset, to: segments[s.segment].start + s.offset + s.size }))
  .sort((a, b) => a.from - b.from || b.to - a.to);
const dataRelocs = new Map(); // symbol index → relocations inside its bytes
const orphanDataRelocs = []; // inside no symbol: kept, conservatively
{
  // Symbols may nest or overlap (aliases): a relocation belongs to every symbol covering it. Going
  // back from the last symbol starting at or before it, stop once no earlier symbol reaches it.
  const reach = [];
  dataSyms.forEach((d, k) => reach.push(Math.max(d.to, k ? reach[k - 1] : 0)));
  for (const rel of relocs.data) {
    let hi = dataSyms.length - 1;
    for (let lo = 0; lo <= hi; ) {
      const mid = (lo + hi) >> 1;
      if (dataSyms[mid].from <= rel.offset) lo = mid + 1;
      else hi = mid - 1;
    }
    let covered = false;
    for (let k = hi; k >= 0 && reach[k] > rel.offset; k--) {
      const d = dataSyms[k];
      if (rel.offset < d.to) {
        covered = true;
        if (!dataRelocs.has(d.i)) dataRelocs.set(d.i, []);
        dataRelocs.get(d.i).push(rel);
      }
    }
    if (!covered) orphanDataRelocs.push(rel);
  }
}

// Mark.
const liveFuncs = new Uint8Array(importedFuncs + bodies.length);
const liveSyms = new Uint8Array(symbols.length);
const queue = [];
const markFunc = (index) => {
  if (index < importedFuncs || liveFuncs[index]) return;
  liveFuncs[index] = 1;
  queue.push(() => codeRelocs[index - importedFuncs]?.forEach(follow));
};
const markSym = (i) => {
  const s = symbols[i];
  if (!s || liveSyms[i]) return;
  liveSyms[i] = 1;
  if (s.kind === 0 && !(s.flags & FLAG_UNDEFINED)) markFunc(s.index);
  if (s.kind === 1) queue.push(() => dataRelocs.get(i)?.forEach(follow));
};
function follow(rel) {
  if (FUNCTION_REFS.has(rel.type) || DATA_REFS.has(rel.type)) markSym(rel.index);
}
{
  const s = section(7);
  if (s) {
    const r = new Reader(s.payload, s.end);
    for (let n = r.uleb(); n > 0; n--) {
      r.name();
      const kind = r.u8();
      const index = r.uleb();
      if (kind === 0) markFunc(index);
    }
  }
  const start = section(8);
  if (start) markFunc(new Reader(start.payload, start.end).uleb());
  symbols.forEach((s, i) => {
    if (s.flags & (FLAG_NO_STRIP | FLAG_EXPORTED)) markSym(i);
  });
  orphanDataRelocs.forEach(follow);
}
while (queue.length) queue.pop()();

// What the relocations cannot show must not be live: functions the linker made itself (export
// wrappers that run the constructors first, `__wasm_call_ctors`) have no symbol and no relocations.
{
  const withSymbol = new Uint8Array(liveFuncs.length);
  for (const s of symbols) if (s.kind === 0 && !(s.flags & FLAG_UNDEFINED)) withSymbol[s.index] = 1;
  const ctors = symbols.find((s) => s.kind === 0 && s.name === '__wasm_call_ctors');
  if (ctors && liveFuncs[ctors.index])
    fail('`__wasm_call_ctors` is called: the constructors it runs would be removed');
  for (let f = importedFuncs; f < liveFuncs.length; f++)
    if (liveFuncs[f] && !withSymbol[f])
      fail(`live function ${f} has no symbol (export wrappers? reference __wasm_call_ctors from the crate)`);
}

// Sweep: dead bodies become `unreachable`; dead data bytes (not also covered by a live symbol) zero.
const out = [];
const STUB = Buffer.from([0x03, 0x00, 0x00, 0x0b]); // size 3: no locals, unreachable, end
let deadFuncs = 0;
let deadCodeBytes = 0;
const codeParts = [uleb(bodies.length)];
bodies.forEach((b, k) => {
  if (liveFuncs[importedFuncs + k]) codeParts.push(bin.subarray(code.payload + b.start, code.payload + b.end));
  else {
    deadFuncs++;
    deadCodeBytes += b.end - b.start;
    codeParts.push(STUB);
  }
});
const dataBytes = Buffer.from(bin.subarray(data.payload, data.end));
let zeroed = 0;
{
  const keep = new Uint8Array(dataBytes.length);
  for (const d of dataSyms) if (liveSyms[d.i]) keep.fill(1, d.from, d.to);
  for (const d of dataSyms) {
    if (liveSyms[d.i]) continue;
    for (let p = d.from; p < d.to; p++) {
      if (!keep[p] && dataBytes[p] !== 0) {
        dataBytes[p] = 0;
        zeroed++;
      }
    }
  }
}
const name = (f) => symbols.find((s) => s.kind === 0 && !(s.flags & FLAG_UNDEFINED) && s.index === f)?.name ?? null;
const deadFunctions = [];
bodies.forEach((_, k) => liveFuncs[importedFuncs + k] || deadFunctions.push({ index: importedFuncs + k, name: name(importedFuncs + k) }));
out.push(bin.subarray(0, 8));
for (const s of sections) {
  if (s.id === 0 && (s.name === 'linking' || s.name.startsWith('reloc.'))) continue;
  if (nameStubs && s.id === 0 && s.name === 'name') continue;
  if (s === code || s === data) {
    const payload = s === code ? Buffer.concat(codeParts) : dataBytes;
    out.push(Buffer.from([s.id]), uleb(payload.length), payload);
  } else out.push(bin.subarray(s.start, s.end));
}
if (nameStubs) {
  // The "name" section's function-names subsection (id 1): a vector of (index, name), by index.
  const str = (t) => Buffer.concat([uleb(Buffer.byteLength(t)), Buffer.from(t)]);
  const names = Buffer.concat([
    uleb(deadFunctions.length),
    ...deadFunctions.map((f) => Buffer.concat([uleb(f.index), str(STUB_PREFIX + (f.name ?? `#${f.index}`))])),
  ]);
  const payload = Buffer.concat([str('name'), Buffer.from([1]), uleb(names.length), names]);
  out.push(Buffer.from([0]), uleb(payload.length), payload);
}
const result = Buffer.concat(out);
return { wasm: result, functions: bodies.length, deadFunctions, deadCodeBytes, zeroedDataBytes: zeroed };
}

function main() {
  const args = process.argv.slice(2);
  const nameStubs = args.includes('--name-stubs');
  const [input, output] = args.filter((a) => a !== '--name-stubs');
  if (!input || !output) {
    console.error('usage: node www/wasm-gc.mjs IN.wasm OUT.wasm [--name-stubs]');
    process.exit(2);
  }
  const bin = readFileSync(input);
  let r;
  try {
    r = gc(bin, { nameStubs });
  } catch (e) {
    if (!(e instanceof WasmGcError)) throw e;
    console.error(`wasm-gc: ${input}: ${e.message}`);
    process.exit(1);
  }
  writeFileSync(output, r.wasm);
  console.log(
    `wasm-gc: ${r.deadFunctions.length} of ${r.functions} functions unreachable (${(r.deadCodeBytes / 1024).toFixed(0)} KB of code), ` +
      `${(r.zeroedDataBytes / 1024).toFixed(0)} KB of dead data zeroed; ${(bin.length / 1024).toFixed(0)} → ${(r.wasm.length / 1024).toFixed(0)} KB`,
  );
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) main();
