/**
 * Kept layers: a generation that names a base job keeps some of its layers and regenerates the
 * rest. At every denoising step each kept layer's tokens are set to the flow-matching forward
 * process of its stored clean latent, `x_t = (1 - sigma_t) * x0 + sigma_t * eps`, with eps the
 * new job's own seeded noise; the other layers evolve freely and attend to the kept ones. The
 * schedule ends at sigma 0, where the kept tokens are the stored latents exactly.
 * Pure functions over plain data: checking a keep list, placing the base's tokens in the new
 * token grid, and holding them.
 */
import { MERGED_LAYER, PACKED_CHANNELS } from '../constants.ts';
import { transformerTokens, type TokenGrid } from './layout-tokens.ts';
import type { BoxTuple, CleanLatents, KeepEntry, Layout } from './types.ts';

/**
 * What is wrong with a keep request. The first three are also the bridge's error codes:
 * `invalid_keep` (an index out of range, 0, or used twice), `keep_box_mismatch` (a kept layer
 * whose box is not its base box), `base_mismatch` (another model or canvas size);
 * `base_latents`: the stored latents do not fit their own layout (a damaged store).
 */
export type KeepProblem = 'invalid_keep' | 'keep_box_mismatch' | 'base_mismatch' | 'base_latents';

export class KeepError extends Error {
  override name = 'KeepError';
  constructor(
    readonly code: KeepProblem,
    message: string,
  ) {
    super(message);
  }
}

const sameBox = (a: BoxTuple, b: BoxTuple) => a.every((v, i) => v === b[i]);

/**
 * Checks a keep list against the new (validated) layout and the base; throws a KeepError naming
 * the first problem and what to do instead.
 */
export function checkKeep(layout: Layout, base: { model: string; layout: Layout }, keep: readonly KeepEntry[], model: string): void {
  if (base.model !== model)
    throw new KeepError('base_mismatch', `the base job was made with model "${base.model}", but this pipeline runs "${model}"; generate anew, or load "${base.model}"`);
  const b = base.layout;
  if (b.width !== layout.width || b.height !== layout.height)
    throw new KeepError('base_mismatch', `the base job's canvas is ${b.width}x${b.height}, this layout's ${layout.width}x${layout.height}; keep the frame's size and resolution, or generate anew`);
  const froms = new Set<number>();
  const tos = new Set<number>();
  keep.forEach(({ from, to }, i) => {
    const where = `keep[${i}] (${from} -> ${to})`;
    if (!Number.isInteger(from) || !Number.isInteger(to)) throw new KeepError('invalid_keep', `${where}: layer indices must be integers`);
    if (from === MERGED_LAYER || to === MERGED_LAYER)
      throw new KeepError('invalid_keep', `${where}: layer 0 is the merged image, always regenerated; keep layers from 1 (the background) up`);
    if (from < 1 || from >= b.boxes.length) throw new KeepError('invalid_keep', `${where}: the base job has layers 1..${b.boxes.length - 1} to keep`);
    if (to < 1 || to >= layout.boxes.length) throw new KeepError('invalid_keep', `${where}: the new layout has layers 1..${layout.boxes.length - 1}`);
    if (froms.has(from)) throw new KeepError('invalid_keep', `${where}: base layer ${from} is kept twice; keep each layer once`);
    if (tos.has(to)) throw new KeepError('invalid_keep', `${where}: new layer ${to} is filled twice; each layer takes one kept layer at most`);
    froms.add(from);
    tos.add(to);
    if (!sameBox(b.boxes[from], layout.boxes[to]))
      throw new KeepError(
        'keep_box_mismatch',
        `${where}: layer ${to}'s box [${layout.boxes[to]}] differs from base layer ${from}'s box [${b.boxes[from]}]; a kept layer keeps its box: regenerate a moved or resized layer (leave it out of keep)`,
      );
  });
}

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
