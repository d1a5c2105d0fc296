/**
 * 4-bit weight-only quantization in the layout of onnxruntime's `com.microsoft.MatMulNBits`:
 * each output row's K inputs split into blocks, each block stored as 4-bit codes with a float
 * scale and a 4-bit zero point (asymmetric min/max), two codes per byte, low nibble first.
 * Dequantized weight: `(code - zero_point) * scale`.
 */

export const INT4_BLOCK = 32;

export interface Int4Weight {
  /** [N, blocks, block/2] packed codes. */
  codes: Uint8Array;
  /** [N * blocks] scales. */
  scales: Float32Array;
  /** [N * ceil(blocks / 2)] packed zero points. */
  zeroPoints: Uint8Array;
  blocks: number;
}

/** Quantizes a torch Linear weight `[N, K]` (row-major) block-wise along K. */
export function quantizeInt4(weight: Float32Array, n: number, k: number, block = INT4_BLOCK): Int4Weight {
  if (k % block !== 0) throw new RangeError(`int4: K=${k} is not a multiple of the block size ${block}`);
  const blocks = k / block;
  const codes = new Uint8Array(n * blocks * (block / 2));
  const scales = new Float32Array(n * blocks);
  const zpBytes = Math.ceil(blocks / 2);
  const zeroPoints = new Uint8Array(n * zpBytes);
  for (let row = 0; row < n; row++) {
    for (let b = 0; b < blocks; b++) {
      const start = row * k + b * block;
      let lo = 0, hi = 0; // the range always includes 0 so zero stays exact
      for (let i = 0; i < block; i++) {
        const v = weight[start + i];
        if (v < lo) lo = v;
        if (v > hi) hi = v;
      }
      const scale = hi > lo ? (hi - lo) / 15 : 1;
      const zp = Math.min(15, Math.max(0, Math.round(-lo / scale)));
      scales[row * blocks + b] = scale;
      zeroPoints[row * zpBytes + (b >> 1)] |= zp << ((b & 1) * 4);
      const out = (row * blocks + b) * (block / 2);
      for (let i = 0; i < block; i++) {
        const q = Math.min(15, Math.max(0, Math.round(weight[start + i] / scale + zp)));
        codes[out + (i >> 1)] |= q << ((i & 1) * 4);
      }
    }
  }
  return { codes, scales, zeroPoints, blocks };
}

/** The inverse, for tests and error reports: `[N, K]` float32. */
export function dequantizeInt4(q: Int4Weight, n: number, k: number, block = INT4_BLOCK): Float32Array {
  const out = new Float32Array(n * k);
  const zpBytes = Math.ceil(q.blocks / 2);
  for (let row = 0; row < n; row++) {
    for (let b = 0; b < q.blocks; b++) {
      const scale = q.scales[row * q.blocks + b];
      const zp = (q.zeroPoints[row * zpBytes + (b >> 1)] >> ((b & 1) * 4)) & 15;
      const base = (row * q.blocks + b) * (block / 2);
      for (let i = 0; i < block; i++) {
        const code = (q.codes[base + (i >> 1)] >> ((i & 1) * 4)) & 15;
        out[row * k + b * block + i] = (code - zp) * scale;
      }
    }
  }
  return out;
}
