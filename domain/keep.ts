/**
 * Keep lists: a generation that builds on an earlier job (its base) keeps some of its layers and
 * regenerates the rest. The list's schema and its rules against the two layouts live here; how the
 * pipeline holds the kept tokens is gpu-server/pipeline/keep.ts. zod and plain TypeScript only.
 */
import { z } from 'zod';
import { MAX_LAYERS, MERGED_LAYER, type BoxTuple, type Layout } from './layout.ts';

/** Layer `from` of the base job is kept as layer `to` of the new one (neither is 0, the merged layer). */
export interface KeepEntry {
  from: number;
  to: number;
}

const layerIndex = z.number().int().min(0).max(MAX_LAYERS - 1);

/** A keep list as it arrives; `checkKeep` checks it against both layouts. */
export const keepListSchema: z.ZodType<KeepEntry[]> = z
  .array(z.object({ from: layerIndex, to: layerIndex }).strict())
  .max(MAX_LAYERS - 1, `at most ${MAX_LAYERS - 1} kept layers`);

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
