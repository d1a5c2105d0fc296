/**
 * The Paeth filter on 16 bytes at a time: a WebAssembly module using 128-bit SIMD (in V8 since
 * Node 16.4), assembled here from its instructions (WebAssembly core spec 1.0 binary format; SIMD
 * opcodes from the SIMD proposal's BinarySIMD.md, merged into the spec in 2.0). It exports one
 * function, `row(cur, prev, dst, n, rgb)`, which writes the residues of the `n` bytes of a row that
 * follow its first pixel. Per 16 bytes it widens a (left), b (up) and c (upper left) to 16-bit
 * lanes, takes |p-a| = |b-c|, |p-b| = |a-c|, |p-c| = |(a-c) + (b-c)| and picks a, b or c with
 * lane masks, as the PNG spec's PaethPredictor does (ties: a, then b), then subtracts it mod 256.
 * With `rgb` set it drops every pixel's 4th byte (a shuffle) and writes 12 bytes per 16. The caller
 * keeps `n >= 16`: the last 16 bytes of a row are done as an overlapping chunk, which rewrites some
 * residues with the same values, and an RGB row writes 4 bytes of junk past its end (the next row's
 * first bytes, written afterwards, or slack).
 */

// Instruction bytes (core spec section 5.4; SIMD ops are 0xfd then the op as unsigned LEB128).
const LOCAL_GET = 0x20, LOCAL_SET = 0x21, LOCAL_TEE = 0x22;
const I32_CONST = 0x41, I32_LT_S = 0x48, I32_ADD = 0x6a, I32_SUB = 0x6b, I32_MUL = 0x6c, I32_SHR_U = 0x76;
const SELECT = 0x1b, LOOP = 0x03, IF = 0x04, ELSE = 0x05, END = 0x0b, BR_IF = 0x0d, VOID = 0x40;
const I32 = 0x7f, V128 = 0x7b;
const SIMD = {
  load: 0x00, load8x8u: 0x02, store: 0x0b, shuffle: 0x0d, i16x8LtS: 0x2f, bitselect: 0x52,
  i8x16NarrowI16x8U: 0x66, i8x16Sub: 0x71, i16x8Abs: 0x80, i16x8Add: 0x8e, i16x8Sub: 0x91, i16x8MinS: 0x96,
} as const;

/** Unsigned LEB128 (also right for the small non-negative i32.const values used here). */
function leb(n: number): number[] {
  const out: number[] = [];
  do {
    let byte = n & 0x7f;
    n >>>= 7;
    if (n !== 0) byte |= 0x80;
    out.push(byte);
  } while (n !== 0);
  return out;
}
const simd = (op: number, ...immediates: number[]) => [0xfd, ...leb(op), ...immediates];
/** A memory access: alignment hint 0 (any address), then the constant offset. */
const memarg = (offset: number) => [0, ...leb(offset)];
const get = (local: number) => [LOCAL_GET, local];
const set = (local: number) => [LOCAL_SET, local];
const i32 = (n: number) => [I32_CONST, ...leb(n)];

// Locals: the 5 parameters, then 4 i32 and 7 v128.
const CUR = 0, PREV = 1, DST = 2, N = 3, RGB = 4;
const K = 5, J = 6, PM = 7, QM = 8;
const A = 9, B = 10, C = 11, PA = 12, PB = 13, PC = 14, LOW = 15;

/** Paeth's prediction for 8 bytes, as 16-bit lanes, left on the stack; a at pm+off, c at qm+off, b at qm+off+4. */
function predictHalf(off: number): number[] {
  return [
    ...get(PM), ...simd(SIMD.load8x8u, ...memarg(off)), ...set(A),
    ...get(QM), ...simd(SIMD.load8x8u, ...memarg(off + 4)), ...set(B),
    ...get(QM), ...simd(SIMD.load8x8u, ...memarg(off)), ...set(C),
    ...get(B), ...get(C), ...simd(SIMD.i16x8Sub), ...simd(SIMD.i16x8Abs), ...set(PA),
    ...get(A), ...get(C), ...simd(SIMD.i16x8Sub), ...simd(SIMD.i16x8Abs), ...set(PB),
    ...get(A), ...get(C), ...simd(SIMD.i16x8Sub), ...get(B), ...get(C), ...simd(SIMD.i16x8Sub), ...simd(SIMD.i16x8Add), ...simd(SIMD.i16x8Abs), ...set(PC),
    // c where pc < pb, else b; then that where min(pb, pc) < pa, else a.
    ...get(C), ...get(B), ...get(PC), ...get(PB), ...simd(SIMD.i16x8LtS), ...simd(SIMD.bitselect),
    ...get(A), ...get(PB), ...get(PC), ...simd(SIMD.i16x8MinS), ...get(PA), ...simd(SIMD.i16x8LtS), ...simd(SIMD.bitselect),
  ];
}

/** The loop over a row's 16-byte chunks, j = 0, 16, ... and the last at n - 16. */
function rowLoop(rgb: boolean): number[] {
  const lastChunk = [...get(N), ...i32(16), I32_SUB];
  const dropAlpha = [LOCAL_TEE, LOW, ...get(LOW), ...simd(SIMD.shuffle, 0, 1, 2, 4, 5, 6, 8, 9, 10, 12, 13, 14, 0, 0, 0, 0)];
  return [
    LOOP, VOID,
    ...get(K), ...lastChunk, ...get(K), ...lastChunk, I32_LT_S, SELECT, ...set(J),
    ...get(CUR), ...get(J), I32_ADD, ...set(PM),
    ...get(PREV), ...get(J), I32_ADD, ...set(QM),
    // Store address: dst + j (RGBA) or dst + j / 4 * 3 (RGB).
    ...get(DST), ...get(J), ...(rgb ? [...i32(2), I32_SHR_U, ...i32(3), I32_MUL] : []), I32_ADD,
    // Residue: x (at pm + 4) minus the prediction, both halves narrowed back to bytes.
    ...get(PM), ...simd(SIMD.load, ...memarg(4)),
    ...predictHalf(0), ...predictHalf(8), ...simd(SIMD.i8x16NarrowI16x8U),
    ...simd(SIMD.i8x16Sub),
    ...(rgb ? dropAlpha : []),
    ...simd(SIMD.store, ...memarg(0)),
    ...get(K), ...i32(16), I32_ADD, LOCAL_TEE, K, ...get(N), I32_LT_S, BR_IF, 0,
    END,
  ];
}

function section(id: number, body: number[]): number[] {
  return [id, ...leb(body.length), ...body];
}
const name = (s: string) => [...leb(s.length), ...Array.from(s, (ch) => ch.charCodeAt(0))];

function moduleBytes(): Uint8Array<ArrayBuffer> {
  const code = [
    ...leb(2), ...leb(4), I32, ...leb(7), V128, // local declarations
    ...get(RGB), IF, VOID, ...rowLoop(true), ELSE, ...rowLoop(false), END,
    END,
  ];
  return Uint8Array.from([
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, // "\0asm", version 1
    ...section(1, [1, 0x60, 5, I32, I32, I32, I32, I32, 0]), // type 0: (i32 x5) -> ()
    ...section(2, [1, ...name('env'), ...name('memory'), 0x02, 0x00, 1]), // import env.memory, at least 1 page
    ...section(3, [1, 0]), // function 0 has type 0
    ...section(7, [1, ...name('row'), 0x00, 0]), // export "row" = function 0
    ...section(10, [1, ...leb(code.length), ...code]),
  ]);
}

export type RowFilter = (cur: number, prev: number, dst: number, n: number, rgb: number) => void;

/** The module instantiated over `memory` (its own, grown by the caller), or undefined where the
 *  engine has no WebAssembly SIMD. */
export function paethSimd(memory: WebAssembly.Memory): RowFilter | undefined {
  let module: WebAssembly.Module;
  try {
    module = new WebAssembly.Module(moduleBytes());
  } catch {
    return undefined;
  }
  const instance = new WebAssembly.Instance(module, { env: { memory } });
  return instance.exports.row as RowFilter;
}
