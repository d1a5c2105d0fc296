/**
 * Seeded Gaussian noise from the project's own counter-based generator: every latent value is a
 * pure function of (seed, layer, latent y, latent x, channel), hashed with integer arithmetic
 * and turned Gaussian by Box-Muller. No state, so the same seed gives the same numbers on every
 * machine and run, and a layer's noise does not change when another layer's box does.
 */
import { LATENT_CHANNELS, PACKED_CHANNELS } from '../constants.ts';
import type { TokenGrid } from './layout-tokens.ts';

/** A 32-bit integer finaliser with good avalanche (xor-shift-multiply, "lowbias32" constants). */
function mix32(x: number): number {
  x ^= x >>> 16;
  x = Math.imul(x, 0x7feb352d);
  x ^= x >>> 15;
  x = Math.imul(x, 0x846ca68b);
  x ^= x >>> 16;
  return x >>> 0;
}

const GOLDEN = 0x9e3779b9;

/** Hash of a sequence of 32-bit words. */
function hashWords(words: readonly number[]): number {
  let h = 0x2545f491;
  for (const w of words) h = mix32((h ^ w) + GOLDEN);
  return h;
}

export function checkSeed(seed: number): void {
  if (!Number.isSafeInteger(seed) || seed < 0) throw new RangeError(`seed must be a non-negative integer below 2^53, got ${seed}`);
}

const TWO_32 = 4294967296;

/**
 * The Gaussian pair for channels (2p, 2p+1) of latent cell (layer, y, x). Uniforms lie strictly
 * inside (0, 1) so the logarithm is finite.
 */
function gaussianPair(seedLo: number, seedHi: number, layer: number, y: number, x: number, p: number): [number, number] {
  const cell = hashWords([seedLo, seedHi, layer, y, x, p]);
  const u1 = (mix32(cell ^ 0x68e31da4) + 0.5) / TWO_32;
  const u2 = (mix32(cell ^ 0xb5297a4d) + 0.5) / TWO_32;
  const r = Math.sqrt(-2 * Math.log(u1));
  const a = 2 * Math.PI * u2;
  return [r * Math.cos(a), r * Math.sin(a)];
}

/** Noise for the packed in-box tokens `[N, 64]` of a 16-pixel token grid. */
export function tokenNoise(seed: number, grid: TokenGrid): Float32Array {
  checkSeed(seed);
  const seedLo = seed >>> 0;
  const seedHi = Math.floor(seed / TWO_32) >>> 0;
  const out = new Float32Array(grid.count * PACKED_CHANNELS);
  for (const l of grid.layers) {
    let t = l.offset * PACKED_CHANNELS;
    for (let cy = l.y1; cy < l.y2; cy++) {
      for (let cx = l.x1; cx < l.x2; cx++, t += PACKED_CHANNELS) {
        for (let dy = 0; dy < 2; dy++) {
          for (let dx = 0; dx < 2; dx++) {
            for (let p = 0; p < LATENT_CHANNELS / 2; p++) {
              const [a, b] = gaussianPair(seedLo, seedHi, l.layer, 2 * cy + dy, 2 * cx + dx, p);
              out[t + 2 * p * 4 + dy * 2 + dx] = a;
              out[t + (2 * p + 1) * 4 + dy * 2 + dx] = b;
            }
          }
        }
      }
    }
  }
  return out;
}

/**
 * `count` standard normal values of one named stream (e.g. a weight's name) under a seed: for
 * seeded random weights, where values must not depend on which other tensors exist.
 */
export function streamNoise(seed: number, stream: string, count: number): Float32Array {
  checkSeed(seed);
  let id = 0x811c9dc5;
  for (let i = 0; i < stream.length; i++) id = Math.imul(id ^ stream.charCodeAt(i), 0x01000193) >>> 0;
  const seedLo = seed >>> 0;
  const seedHi = Math.floor(seed / TWO_32) >>> 0;
  const out = new Float32Array(count);
  for (let i = 0; i < count; i += 2) {
    // (layer, y, x, pair) words reused as (stream, -1, index high, index low): disjoint from latents' cells.
    const [a, b] = gaussianPair(seedLo, seedHi, id, 0xffffffff, Math.floor(i / TWO_32), i >>> 0);
    out[i] = a;
    if (i + 1 < count) out[i + 1] = b;
  }
  return out;
}
