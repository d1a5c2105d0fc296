/**
 * The transformer graph as a NoisePredictor: the positive and negative prompts run as one batch
 * of 2 (true CFG in a single run); the per-job inputs (token layers, RoPE tables, text, pooled,
 * guidance) are built once and only the latents and the timestep change between steps. For a
 * decomposition, the adapter graph runs once per step (positive prompt only, as CLD does) and its
 * residual samples feed both halves of the batch.
 */
import { PACKED_CHANNELS } from '../constants.ts';
import type { JobKind } from '../../domain/job-kind.ts';
import type { NoisePredictor, Prediction } from './denoise.ts';
import type { Feed, GraphSession } from './graph-session.ts';
import type { TokenGrid } from './layout-tokens.ts';
import { jobSwitchFeeds } from './job-switch.ts';
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
  /** Extra feeds per step (the adapter's residual samples) from the step's latents and timestep. */
  residuals?: (latents: Float32Array, timestep: number) => Promise<Record<string, Feed>>;
}

/** The flat image's condition for the adapter graph. */
export interface AdapterJob {
  /** Each token's condition row `[N, 68]` (`condition.ts`). */
  condition: Float32Array;
  conditioningScale: number;
}

const stack = (a: Float32Array, b: Float32Array | null): Float32Array => {
  if (!b) return a;
  const out = new Float32Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
};

/** The feeds of a FLUX-style graph that stay the same through a job: token layers, RoPE, text (batch 1: positive; 2: both). */
function jobFeeds(graph: GraphSession, job: Omit<TransformerJob, 'residuals'>, kind: JobKind): { fixed: Record<string, Feed>; batched: Record<1 | 2, Record<string, Feed>> } {
  const { grid, positive, negative } = job;
  if (positive.tokens !== negative.tokens || positive.width !== negative.width || positive.pooled.length !== negative.pooled.length) {
    throw new RangeError(`positive and negative text embeddings differ in shape ([${positive.tokens}, ${positive.width}] vs [${negative.tokens}, ${negative.width}])`);
  }
  const n = grid.count;
  const rope = ropeTables(grid.ids, job.axesDimsRope, positive.tokens, job.ropeTheta);
  const fixed: Record<string, Feed> = {
    // A transformer built for both jobs is told which one runs (generation: zero residuals).
    ...jobSwitchFeeds(graph, kind),
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
  return { fixed, batched: { 1: perBatch(1), 2: perBatch(2) } };
}

/**
 * The adapter graph as the transformer's residual source: once per step, on the positive prompt,
 * its outputs named as the decomposition transformer's inputs.
 */
export function adapterResiduals(graph: GraphSession, job: Omit<TransformerJob, 'residuals'>, adapter: AdapterJob): NonNullable<TransformerJob['residuals']> {
  const { fixed, batched } = jobFeeds(graph, job, 'decompose');
  const n = job.grid.count;
  const channels = adapter.condition.length / n;
  const feeds: Record<string, Feed> = {
    ...fixed,
    ...batched[1],
    condition: { data: adapter.condition, dims: [1, n, channels], constant: true },
    conditioning_scale: { data: Float32Array.of(adapter.conditioningScale), dims: [1], constant: true },
  };
  const outputs = graph.outputNames;
  return async (latents, timestep) => {
    const out = await graph.run({ ...feeds, hidden_states: { data: latents, dims: [1, n, PACKED_CHANNELS] }, timestep: { data: Float32Array.of(timestep), dims: [1] } }, outputs);
    return Object.fromEntries(Object.entries(out).map(([name, t]) => [name, { data: t.data, dims: t.dims }]));
  };
}

export function transformerPredictor(graph: GraphSession, job: TransformerJob): NoisePredictor {
  const { grid } = job;
  const n = grid.count;
  const { fixed, batched } = jobFeeds(graph, job, job.residuals ? 'decompose' : 'generate');

  return {
    async predict(latents: Float32Array, timestep: number, withUncond: boolean): Promise<Prediction> {
      const batch = withUncond ? 2 : 1;
      const size = n * PACKED_CHANNELS;
      if (latents.length !== size) throw new RangeError(`latents have ${latents.length} values, expected ${n} tokens x ${PACKED_CHANNELS}`);
      const hidden = stack(latents, withUncond ? latents : null);
      const residuals = job.residuals ? await job.residuals(latents, timestep) : {};
      const out = await graph.run(
        {
          ...fixed,
          ...batched[batch],
          ...residuals,
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
