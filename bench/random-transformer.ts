/**
 * Seeded random weights for an ART transformer config, under the official checkpoint keys with
 * the shapes the config implies (the same derivation the full-size key list follows). Benchmarks
 * only time the graph, so the values just have to be finite and of a sane scale.
 */
import { innerDim, type TransformerConfig } from '../gpu-server/models/transformer.ts';
import { memoryWeights, type WeightSource } from '../gpu-server/onnx/graph.ts';

/** Sinusoidal timestep features the time embedders read (diffusers `Timesteps(256)`). */
const TIME_CHANNELS = 256;

/** Every checkpoint key of `c` and its shape ([out, in] for linear weights, as torch stores them). */
export function transformerKeyShapes(c: TransformerConfig): Map<string, number[]> {
  const d = innerDim(c);
  const keys = new Map<string, number[]>();
  const linear = (prefix: string, inDim: number, outDim: number) => {
    keys.set(`${prefix}.weight`, [outDim, inDim]);
    keys.set(`${prefix}.bias`, [outDim]);
  };
  keys.set('layer_pe', [1, c.maxLayerNum, 1, 1, d]);
  const embedders: [string, number][] = [['timestep_embedder', TIME_CHANNELS], ['text_embedder', c.pooledProjectionDim]];
  if (c.guidanceEmbeds) embedders.push(['guidance_embedder', TIME_CHANNELS]);
  for (const [name, inDim] of embedders) {
    linear(`time_text_embed.${name}.linear_1`, inDim, d);
    linear(`time_text_embed.${name}.linear_2`, d, d);
  }
  linear('context_embedder', c.jointAttentionDim, d);
  linear('x_embedder', c.inChannels, d);
  for (let i = 0; i < c.numLayers; i++) {
    const p = `transformer_blocks.${i}`;
    linear(`${p}.norm1.linear`, d, 6 * d);
    linear(`${p}.norm1_context.linear`, d, 6 * d);
    for (const n of ['norm_q', 'norm_k', 'norm_added_q', 'norm_added_k']) keys.set(`${p}.attn.${n}.weight`, [c.headDim]);
    for (const n of ['to_q', 'to_k', 'to_v', 'add_q_proj', 'add_k_proj', 'add_v_proj', 'to_out.0', 'to_add_out']) linear(`${p}.attn.${n}`, d, d);
    for (const ff of ['ff', 'ff_context']) {
      linear(`${p}.${ff}.net.0.proj`, d, 4 * d);
      linear(`${p}.${ff}.net.2`, 4 * d, d);
    }
  }
  for (let i = 0; i < c.numSingleLayers; i++) {
    const p = `single_transformer_blocks.${i}`;
    linear(`${p}.norm.linear`, d, 3 * d);
    linear(`${p}.proj_mlp`, d, 4 * d);
    linear(`${p}.proj_out`, 5 * d, d);
    for (const n of ['norm_q', 'norm_k']) keys.set(`${p}.attn.${n}.weight`, [c.headDim]);
    for (const n of ['to_q', 'to_k', 'to_v']) linear(`${p}.attn.${n}`, d, d);
  }
  linear('norm_out.linear', d, 2 * d);
  linear('proj_out', d, c.inChannels);
  return keys;
}

/** mulberry32: a small seeded PRNG, uniform in [0, 1). */
function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Uniform weights scaled by 1/sqrt(fan-in) (so activations neither vanish nor blow up through
 * the blocks), norm scales at 1; the same seed gives the same weights.
 */
export function randomTransformerWeights(c: TransformerConfig, seed = 1): WeightSource {
  const rand = prng(seed);
  const tensors = new Map<string, { shape: number[]; data: Float32Array }>();
  for (const [key, shape] of transformerKeyShapes(c)) {
    const size = shape.reduce((a, b) => a * b, 1);
    const data = new Float32Array(size);
    if (/\.norm_(added_)?[qk]\.weight$/.test(key)) data.fill(1);
    else {
      const bound = 1 / Math.sqrt(shape.length === 2 ? shape[1] : shape[shape.length - 1]);
      for (let i = 0; i < size; i++) data[i] = (rand() * 2 - 1) * bound;
    }
    tensors.set(key, { shape, data });
  }
  return memoryWeights(`random weights (seed ${seed})`, tensors);
}
