/**
 * Kept layers: a generation that names a base job keeps some of its layers and regenerates the
 * rest. At every denoising step each kept layer's tokens are set to the flow-matching forward
 * process of its stored clean latent, `x_t = (1 - sigma_t) * x0 + sigma_t * eps`, with eps the
 * new job's own seeded noise; the other layers evolve freely and attend to the kept ones. The
 * schedule ends at sigma 0, where the kept tokens are the stored latents exactly.
 * Pure functions over plain data: checking stored latents, placing the base's tokens in the new
 * token grid, and holding them (the keep list's own rules: domain/keep.ts).
 */
import { KeepError, type KeepEntry } from '../../domain/keep.ts';
import { PACKED_CHANNELS } from '../constants.ts';
import { transformerTokens, type TokenGrid } from './layout-tokens.ts';
import type { CleanLatents } from './types.ts';

/** Checks that stored latents fit their layout's token grid and are finite numbers. */
export function checkLatents(latents: CleanLatents): void {
  const expected = transformerTokens(latents.layout).count * PACKED_CHANNELS;
  if (latents.tokens.length !== expected)
    throw new KeepError('base_latents', `the base job's latents have ${latents.tokens.length} values, its layout needs ${expected}; its stored files are damaged: generate anew`);
  for (let i = 0; i < latents.tokens.length; i++)
    if (!Number.isFinite(latents.tokens[i])) throw new KeepError('base_latents', `the base job's latents hold a non-finite value at ${i}; its stored files are damaged: generate anew`);
}

/** The kept layers' clean latents placed in the new token grid: value ranges and x0 there. */
export interface KeptTokens {
  /** `[start, end)` in values (tokens x 64) of the new packed tokens, one per kept layer, ascending. */
  spans: { start: number; end: number }[];
  /** The new grid's size; only the spans are meaningful. */
  x0: Float32Array;
}

/** Places each kept base layer's tokens at its new layer (a checked keep list: equal boxes, so equal token runs). */
export function keptTokens(grid: TokenGrid, base: CleanLatents, keep: readonly KeepEntry[]): KeptTokens {
  const baseGrid = transformerTokens(base.layout);
  const x0 = new Float32Array(grid.count * PACKED_CHANNELS);
  const spans = keep.map(({ from, to }) => {
    const src = baseGrid.layers[from];
    const dst = grid.layers[to];
    if (!src || !dst || src.count !== dst.count) throw new KeepError('keep_box_mismatch', `kept layer ${from} -> ${to} has ${src?.count} tokens in the base, ${dst?.count} here; check the keep list first`);
    const start = dst.offset * PACKED_CHANNELS;
    x0.set(base.tokens.subarray(src.offset * PACKED_CHANNELS, (src.offset + src.count) * PACKED_CHANNELS), start);
    return { start, end: start + src.count * PACKED_CHANNELS };
  });
  spans.sort((a, b) => a.start - b.start);
  return { spans, x0 };
}

/**
 * Sets the kept tokens of `latents` (in place) to `(1 - sigma) * x0 + sigma * eps`, each
 * operation rounded to float32 as torch would; at sigma 0 exactly x0 (bit for bit, -0 included).
 */
export function holdKept(latents: Float32Array, kept: KeptTokens, eps: Float32Array, sigma: number): void {
  if (latents.length !== kept.x0.length || eps.length !== kept.x0.length)
    throw new RangeError(`hold: latents ${latents.length}, kept ${kept.x0.length} and noise ${eps.length} values differ`);
  const s = Math.fround(sigma);
  const a = Math.fround(1 - s);
  const { x0 } = kept;
  for (const { start, end } of kept.spans) {
    if (s === 0) {
      latents.set(x0.subarray(start, end), start);
      continue;
    }
    for (let j = start; j < end; j++) latents[j] = Math.fround(a * x0[j]) + Math.fround(s * eps[j]);
  }
}
