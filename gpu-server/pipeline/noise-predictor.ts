/**
 * The transformer graph as a NoisePredictor: the positive and negative prompts run as one batch
 * of 2 (true CFG in a single run); the per-job inputs (token layers, RoPE tables, text, pooled,
 * guidance) are built once and only the latents and the timestep change between steps.
 */
import { PACKED_CHANNELS } from '../constants.ts';
import type { NoisePredictor, Prediction } from './denoise.ts';
import type { Feed, GraphSession } from './graph-session.ts';
import type { TokenGrid } from './layout-tokens.ts';
import { ropeTables } from './rope.ts';

/** One prompt's text conditioning: T5 states `[tokens, width]` and CLIP's pooled vector. */
export interface TextEmbeddings {
  hidden: Float32Array;
  tokens: number;
  width: number;
  pooled: Float32Array;
}

export interface TransformerJob {
  grid: TokenGrid;
  positive: TextEmbeddings;
  negative: TextEmbeddings;
  /** The guidance embedding's value (4.0 in the seed's example). */
  guidance: number;
  axesDimsRope: readonly number[];
  ropeTheta: number;
}

const stack = (a: Float32Array, b: Float32Array | null): Float32Array => {
  if (!b) return a;
  const out = new Float32Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
};

export function transformerPredictor(graph: GraphSession, job: TransformerJob): NoisePredictor {
  const { grid, positive, negative } = job;
  if (positive.tokens !== negative.tokens || positive.width !== negative.width || positive.pooled.length !== negative.pooled.length) {
    throw new RangeError(`positive and negative text embeddings differ in shape ([${positive.tokens}, ${positive.width}] vs [${negative.tokens}, ${negative.width}])`);
  }
  const n = grid.count;
  const rope = ropeTables(grid.ids, job.axesDimsRope, positive.tokens, job.ropeTheta);
  const fixed: Record<string, Feed> = {
    token_layer: { data: BigInt64Array.from(grid.layerOf, (v) => BigInt(v)), dims: [n] },
    rope_cos: { data: rope.cos, dims: [rope.rows, rope.dim], constant: true },
    rope_sin: { data: rope.sin, dims: [rope.rows, rope.dim], constant: true },
  };
  const perBatch = (batch: number): Record<string, Feed> => {
    const uncond = batch === 2;
    const feeds: Record<string, Feed> = {
      encoder_hidden_states: { data: stack(positive.hidden, uncond ? negative.hidden : null), dims: [batch, positive.tokens, positive.width], constant: true },
      pooled_projections: { data: stack(positive.pooled, uncond ? negative.pooled : null), dims: [batch, positive.pooled.length], constant: true },
    };
    if (graph.hasInput('guidance')) feeds.guidance = { data: new Float32Array(batch).fill(job.guidance), dims: [batch] };
    return feeds;
  };
  const batched = { 1: perBatch(1), 2: perBatch(2) };

  return {
    async predict(latents: Float32Array, timestep: number, withUncond: boolean): Promise<Prediction> {
      const batch = withUncond ? 2 : 1;
      const size = n * PACKED_CHANNELS;
      if (latents.length !== size) throw new RangeError(`latents have ${latents.length} values, expected ${n} tokens x ${PACKED_CHANNELS}`);
      const hidden = stack(latents, withUncond ? latents : null);
      const out = await graph.run(
        {
          ...fixed,
          ...batched[batch],
          hidden_states: { data: hidden, dims: [batch, n, PACKED_CHANNELS] },
          timestep: { data: new Float32Array(batch).fill(timestep), dims: [batch] },
        },
        ['noise_pred'],
      );
      const pred = out.noise_pred.data;
      return withUncond ? { cond: pred.subarray(0, size), uncond: pred.subarray(size, 2 * size) } : { cond: pred };
    },
  };
}
