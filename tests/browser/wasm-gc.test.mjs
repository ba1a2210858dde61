// The browser module's dead-code pass (www/wasm-gc.mjs) on tiny hand-made modules: each relocation
// kind keeps what it names, what nothing live names goes, and what it cannot prove is refused.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { gc, STUB_PREFIX, uleb as ulebBytes, WasmGcError } from '../../www/wasm-gc.mjs';

// ---------------------------------------------------------------- a tiny linked-module builder
const uleb = (n) => [...ulebBytes(n)];
/** Fixed 5-byte LEBs, as the linker leaves them where a relocation may rewrite them. */
const uleb5 = (n) => [0, 1, 2, 3, 4].map((i) => ((n >>> (7 * i)) & 0x7f) | (i < 4 ? 0x80 : 0));
const sleb5 = (n) => uleb5(n >>> 0).map((b, i) => (i === 4 ? b & 0x7f & (n < 0 ? 0x7f : 0x07) : b));
const str = (s) => [...uleb(Buffer.byteLength(s)), ...Buffer.from(s)];
const vec = (items) => [...uleb(items.length), ...items.flat()];
const section = (id, payload) => [id, ...uleb(payload.length), ...payload];
const custom = (name, payload) => section(0, [...str(name), ...payload]);
const u32 = (n) => [n & 0xff, (n >> 8) & 0xff, (n >> 16) & 0xff, (n >>> 24) & 0xff];

// Relocation types (the tool-conventions' numbering).
const R = { FUNCTION_INDEX_LEB: 0, TABLE_INDEX_SLEB: 1, TABLE_INDEX_I32: 2, MEMORY_ADDR_LEB: 3, MEMORY_ADDR_SLEB: 4, MEMORY_ADDR_I32: 5 };
const WITH_ADDEND = new Set([3, 4, 5]);

/**
 * funcs: [{name, body: [{op: bytes} | {reloc: type, sym: name, bytes}]}]; data: [{name, bytes:
 * [...] | {reloc, sym}}] laid out in one segment at address 0; exports: function names.
 * Functions come after one imported function (index 0), so defined indices start at 1.
 */
function build({ funcs, data = [], exports = [], symbolless = [], table = [] }) {
  const symNames = [...funcs.map((f) => f.name).filter((n) => !symbolless.includes(n)), ...data.map((d) => d.name)];
  const symIndex = (n) => {
    const i = symNames.indexOf(n);
    if (i < 0) throw new Error(`no symbol ${n}`);
    return i;
  };
  const funcIndex = (n) => 1 + funcs.findIndex((f) => f.name === n);
  const codeRelocs = [];
  const bodies = [];
  let codeOffset = uleb(funcs.length).length; // offsets are relative to the code payload
  const dataAddr = new Map();
  let addr = 0;
  for (const d of data) {
    dataAddr.set(d.name, addr);
    addr += d.bytes.reduce((a, b) => a + (typeof b === 'number' ? 1 : 4), 0);
  }
  for (const f of funcs) {
    const code = [0]; // no locals
    const relocAt = [];
    for (const part of f.body) {
      if (part.op) code.push(...part.op);
      else {
        code.push(...part.prefix);
        relocAt.push({ type: part.reloc, sym: part.sym, at: code.length });
        const value = part.reloc === R.FUNCTION_INDEX_LEB ? funcIndex(part.sym) : dataAddr.get(part.sym) ?? funcIndex(part.sym);
        code.push(...(part.reloc === R.MEMORY_ADDR_SLEB || part.reloc === R.TABLE_INDEX_SLEB ? sleb5(value) : uleb5(value)));
      }
    }
    code.push(0x0b);
    const size = uleb(code.length);
    for (const r of relocAt) codeRelocs.push({ type: r.type, offset: codeOffset + size.length + r.at, index: symIndex(r.sym) });
    bodies.push([...size, ...code]);
    codeOffset += size.length + code.length;
  }
  // One active segment at address 0.
  const seg = [];
  const dataRelocs = [];
  const segHead = [0, 0x41, 0, 0x0b]; // flags 0, i32.const 0, end
  const dataPayloadStart = uleb(1).length + segHead.length; // + the size LEB, added below
  for (const d of data) {
    for (const b of d.bytes) {
      if (typeof b === 'number') seg.push(b);
      else {
        dataRelocs.push({ type: b.reloc, at: seg.length, index: symIndex(b.sym) });
        seg.push(...u32(funcIndex(b.sym) || dataAddr.get(b.sym)));
      }
    }
  }
  const segSize = uleb(seg.length);
  const dataPayload = [...uleb(1), ...segHead, ...segSize, ...seg];
  const rel = (list, base) =>
    vec(list.map((r) => [r.type, ...uleb(base + r.at ?? r.offset), ...uleb(r.index), ...(WITH_ADDEND.has(r.type) ? [0] : [])]));
  const symtab = vec([
    ...funcs.filter((f) => !symbolless.includes(f.name)).map((f) => [0, 0, ...uleb(funcIndex(f.name)), ...str(f.name)]),
    ...data.map((d) => {
      const size = d.bytes.reduce((a, b) => a + (typeof b === 'number' ? 1 : 4), 0);
      return [1, 0, ...str(d.name), 0, ...uleb(dataAddr.get(d.name)), ...uleb(size)];
    }),
  ]);
  const sections = [
    section(1, vec([[0x60, 0, 0]])), // type 0: () -> ()
    section(2, vec([[...str('env'), ...str('host'), 0, 0]])), // one imported function
    section(3, vec(funcs.map(() => [0]))),
    section(5, vec([[0, 1]])), // one memory, 1 page
    section(7, vec(exports.map((n) => [...str(n), 0, ...uleb(funcIndex(n))]))),
    // `table`: functions in an indirect-call table from slot 1, as the linker lays out addresses taken.
    ...(table.length
      ? [section(9, vec([[0, 0x41, 1, 0x0b, ...vec(table.map((n) => uleb(funcIndex(n))))]]))]
      : []),
    section(10, [...uleb(funcs.length), ...bodies.flat()]),
    section(11, dataPayload),
    custom('linking', [2, 8, ...uleb(symtab.length), ...symtab]),
  ];
  if (table.length) sections.splice(3, 0, section(4, vec([[0x70, 0, table.length + 1]]))); // funcref, min
  const codeSectionIndex = sections.findIndex((s) => s[0] === 10); // position of the code section
  const dataSectionIndex = codeSectionIndex + 1;
  sections.push(custom('reloc.CODE', [...uleb(codeSectionIndex), ...vec(codeRelocs.map((r) => [r.type, ...uleb(r.offset), ...uleb(r.index), ...(WITH_ADDEND.has(r.type) ? [0] : [])]))]));
  if (dataRelocs.length) sections.push(custom('reloc.DATA', [...uleb(dataSectionIndex), ...rel(dataRelocs, dataPayloadStart + segSize.length)]));
  return Buffer.from([0x00, 0x61, 0x73, 0x6d, 1, 0, 0, 0, ...sections.flat()]);
}

const call = (sym) => ({ prefix: [0x10], reloc: R.FUNCTION_INDEX_LEB, sym });
const tableIndex = (sym) => ({ prefix: [0x41], reloc: R.TABLE_INDEX_SLEB, sym }); // i32.const <table index>
const addrOf = (sym) => ({ prefix: [0x41], reloc: R.MEMORY_ADDR_SLEB, sym }); // i32.const <address>
const addrLeb = (sym) => ({ prefix: [0x41], reloc: R.MEMORY_ADDR_LEB, sym });
const drop = { op: [0x1a] };
const nonzero = [1, 2, 3, 4];

const dead = (r) => r.deadFunctions.map((f) => f.name).sort();

test('each relocation kind keeps what it names; what only dead code names goes', () => {
  const bin = build({
    funcs: [
      { name: 'main', body: [call('called'), tableIndex('by_table'), drop, addrOf('live_data'), drop, addrLeb('leb_data'), drop] },
      { name: 'called', body: [] },
      { name: 'by_table', body: [] },
      { name: 'from_live_data', body: [] },
      { name: 'from_dead_data', body: [] },
      { name: 'from_dead_code', body: [] },
      { name: 'dead', body: [call('from_dead_code')] },
    ],
    data: [
      { name: 'live_data', bytes: [{ reloc: R.TABLE_INDEX_I32, sym: 'from_live_data' }, { reloc: R.MEMORY_ADDR_I32, sym: 'chained_data' }] },
      { name: 'chained_data', bytes: nonzero },
      { name: 'leb_data', bytes: nonzero },
      { name: 'dead_data', bytes: [{ reloc: R.TABLE_INDEX_I32, sym: 'from_dead_data' }, ...nonzero] },
    ],
    exports: ['main'],
  });
  assert.ok(WebAssembly.validate(bin), 'the hand-made input is a valid module');
  const r = gc(bin);
  assert.deepEqual(dead(r), ['dead', 'from_dead_code', 'from_dead_data']);
  assert.equal(r.functions, 7);
  assert.ok(WebAssembly.validate(r.wasm), 'the output is a valid module');
  // dead_data holds the table index 5 (one non-zero byte) and four non-zero bytes; live data stays.
  assert.equal(r.zeroedDataBytes, 1 + 4, 'dead_data zeroed');
  // The output runs: main and everything it reaches are intact; dead bodies trap.
  const mod = new WebAssembly.Module(r.wasm);
  assert.deepEqual(WebAssembly.Module.customSections(mod, 'linking'), [], 'linking and reloc sections dropped');
  const inst = new WebAssembly.Instance(mod, { env: { host() {} } });
  inst.exports.main();
});

test('the same module with the dead function exported: nothing goes', () => {
  const bin = build({
    funcs: [
      { name: 'main', body: [] },
      { name: 'dead', body: [call('helper')] },
      { name: 'helper', body: [] },
    ],
    exports: ['main', 'dead'],
  });
  const r = gc(bin);
  assert.deepEqual(dead(r), []);
  assert.equal(r.zeroedDataBytes, 0);
});

test('a stub reached at run time (an indirect call no relocation names) says which it was with nameStubs', () => {
  // `main` calls table slot 1 through a computed index: no relocation names `target`, so it is
  // collected although the call reaches it — the case a wrong mark would produce.
  const callSlot1 = { op: [0x41, 1, 0x11, 0, 0] }; // i32.const 1; call_indirect (type 0) table 0
  const bin = build({
    funcs: [
      { name: 'main', body: [call('helper'), callSlot1] },
      { name: 'helper', body: [] },
      { name: 'target', body: [] },
    ],
    exports: ['main'],
    table: ['target'],
  });
  assert.ok(WebAssembly.validate(bin), 'the hand-made input is a valid module');
  const reached = (wasm) => {
    const inst = new WebAssembly.Instance(new WebAssembly.Module(wasm), { env: { host() {} } });
    try {
      inst.exports.main();
    } catch (e) {
      assert.ok(e instanceof WebAssembly.RuntimeError, String(e));
      return e.stack;
    }
    assert.fail('the stub did not trap');
  };
  const plain = gc(bin);
  assert.deepEqual(dead(plain), ['target']);
  assert.ok(!reached(plain.wasm).includes(STUB_PREFIX), 'no names unless asked');
  const named = gc(bin, { nameStubs: true });
  assert.ok(WebAssembly.validate(named.wasm));
  assert.match(reached(named.wasm), new RegExp(`${STUB_PREFIX}target`), 'the trap names the stub');
  assert.equal(WebAssembly.Module.customSections(new WebAssembly.Module(named.wasm), 'name').length, 1);
});

test('refused: a live __wasm_call_ctors, a live function with no symbol, a module without relocations', () => {
  const ctors = build({
    funcs: [
      { name: 'main', body: [call('__wasm_call_ctors')] },
      { name: '__wasm_call_ctors', body: [] },
    ],
    exports: ['main'],
  });
  assert.throws(() => gc(ctors), (e) => e instanceof WasmGcError && /__wasm_call_ctors/.test(e.message));
  const wrapper = build({
    funcs: [
      { name: 'main', body: [call('other')] },
      { name: 'wrapper', body: [call('main')] },
      { name: 'other', body: [] },
    ],
    exports: ['wrapper'],
    symbolless: ['wrapper'],
  });
  assert.throws(() => gc(wrapper), (e) => e instanceof WasmGcError && /has no symbol/.test(e.message));
  assert.throws(() => gc(Buffer.from([0x00, 0x61, 0x73, 0x6d, 1, 0, 0, 0])), WasmGcError);
  assert.throws(() => gc(Buffer.from('not wasm at all')), (e) => e instanceof WasmGcError && /not a wasm module/.test(e.message));
});
