/**
 * ART's `CustomFluxTransformer2DModel` (FLUX.1-dev's MMDiT plus a learned per-layer embedding) as
 * an ONNX graph over packed tokens: only the 16-pixel cells inside the boxes enter the graph, so
 * the sequence is text + in-box image tokens and nothing of the empty canvas. Checkpoint keys are
 * the official state_dict names, so a real ART checkpoint loads as is.
 *
 * Inputs:  hidden_states [B,N,64], token_layer [N] (layer index of each token, for `layer_pe`),
 *          encoder_hidden_states [B,T,joint], pooled_projections [B,pooled], timestep [B] and
 *          guidance [B] (what the pipeline passes: t/1000 and the guidance scale; float32 always),
 *          rope_cos / rope_sin [T+N, head_dim] (text ids first, from `pipeline/rope.ts`).
 *          job [1] int64, only in a graph built for both jobs (0 generate, 1 decompose).
 * Output:  noise_pred [B,N,64].
 */
import { MAX_LAYERS } from '../../domain/layout.ts';
import { GraphError, GraphBuilder, type Value, type WeightSource } from '../onnx/graph.ts';
import * as nn from '../onnx/nn.ts';
import { int } from '../onnx/graph.ts';
import { PACKED_CHANNELS } from '../constants.ts';
import type { JobKind } from '../../domain/job-kind.ts';
import { attachLoraBranch, checkBranchApplied, type LowRankUpdate } from '../onnx/lora-branch.ts';

export interface TransformerConfig {
  inChannels: number;
  numLayers: number;
  numSingleLayers: number;
  headDim: number;
  heads: number;
  jointAttentionDim: number;
  pooledProjectionDim: number;
  guidanceEmbeds: boolean;
  axesDimsRope: number[];
  maxLayerNum: number;
}

/** Reads a diffusers `transformer/config.json`; names what is wrong. */
export function parseTransformerConfig(json: unknown, source = 'transformer/config.json'): TransformerConfig {
  const c = (json ?? {}) as Record<string, unknown>;
  const num = (key: string, fallback?: number, min = 1): number => {
    const v = c[key] ?? fallback;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min) throw new GraphError(`${source}: "${key}" must be an integer of at least ${min} (got ${JSON.stringify(v)})`);
    return v;
  };
  const cfg: TransformerConfig = {
    inChannels: num('in_channels', PACKED_CHANNELS),
    numLayers: num('num_layers'),
    // An adapter may have no single blocks (alimama's Inpainting-Alpha has none).
    numSingleLayers: num('num_single_layers', undefined, 0),
    headDim: num('attention_head_dim'),
    heads: num('num_attention_heads'),
    jointAttentionDim: num('joint_attention_dim'),
    pooledProjectionDim: num('pooled_projection_dim'),
    guidanceEmbeds: c.guidance_embeds === true,
    axesDimsRope: Array.isArray(c.axes_dims_rope) ? (c.axes_dims_rope as number[]) : [16, 56, 56],
    maxLayerNum: num('max_layer_num', MAX_LAYERS),
  };
  if ((c.patch_size ?? 1) !== 1) throw new GraphError(`${source}: patch_size ${String(c.patch_size)} is not supported (FLUX uses 1)`);
  if (cfg.inChannels !== PACKED_CHANNELS) throw new GraphError(`${source}: in_channels ${cfg.inChannels} is not supported (FLUX packs 16 latent channels into ${PACKED_CHANNELS})`);
  const ropeSum = cfg.axesDimsRope.reduce((a, b) => a + b, 0);
  if (ropeSum !== cfg.headDim) throw new GraphError(`${source}: axes_dims_rope ${JSON.stringify(cfg.axesDimsRope)} sum to ${ropeSum}, not attention_head_dim ${cfg.headDim}`);
  return cfg;
}

export const innerDim = (c: TransformerConfig): number => c.heads * c.headDim;

const TIME_CHANNELS = 256;
const LN_EPS = 1e-6;

export interface Ctx {
  g: GraphBuilder;
  c: TransformerConfig;
  dim: number;
  cos: Value;
  sin: Value;
  /** Text length as a [1] int64 tensor, for slicing the joint sequence. */
  textLen: Value;
}

/** Sinusoidal timestep features as diffusers' `Timesteps(256, flip_sin_to_cos=True)`: [cos, sin], in float32. */
function timestepFeatures(g: GraphBuilder, t: Value): Value {
  const half = TIME_CHANNELS / 2;
  const lnMax = Math.fround(-Math.log(10000));
  const freqs = Float32Array.from({ length: half }, (_, i) => Math.fround(Math.exp(Math.fround(Math.fround(lnMax * i) / half))));
  const scaled = g.op('Mul', [t, g.constant([1000], [], 'float32')]);
  const args = g.op('Mul', [nn.unsqueeze(g, scaled, [1]), g.constant(freqs, [half], 'float32')]);
  const feats = nn.concat(g, [g.op('Cos', [args]), g.op('Sin', [args])], 1);
  return g.float === 'float16' ? g.op('Cast', [feats], { to: int(10) }) : feats;
}

function mlpEmbedder(g: GraphBuilder, x: Value, prefix: string, inDim: number, dim: number): Value {
  return nn.linear(g, nn.silu(g, nn.linear(g, x, `${prefix}.linear_1`, inDim, dim)), `${prefix}.linear_2`, dim, dim);
}

/** AdaLN modulation: `silu(temb) -> linear -> n chunks`, each [B,1,D] to broadcast over tokens. */
function modulation(x: Ctx, tembAct: Value, prefix: string, chunks: number): Value[] {
  const { g, dim } = x;
  const emb = nn.unsqueeze(g, nn.linear(g, tembAct, prefix, dim, chunks * dim), [1]);
  return nn.split(g, emb, 2, Array(chunks).fill(dim));
}

/** `LayerNorm(x) * (1 + scale) + shift`, no affine parameters. */
function modulate(x: Ctx, h: Value, shift: Value, scale: Value): Value {
  const { g } = x;
  const normed = nn.layerNorm(g, h, x.dim, LN_EPS, null);
  return nn.add(g, nn.mul(g, normed, nn.add(g, scale, g.scalar(1))), shift);
}

/** Projections to heads with per-head RMSNorm: [B,S,D] -> [B,S,H,d]. */
function headsWithNorm(x: Ctx, h: Value, proj: string, normKey: string): Value {
  const { g, c, dim } = x;
  const p = nn.reshape(g, nn.linear(g, h, proj, dim, dim), [0, 0, c.heads, c.headDim]);
  return nn.rmsNorm(g, p, normKey, c.headDim, LN_EPS);
}

/** RoPE on [B,S,H,d], then back to [B,S,D] for the fused attention. */
function rotate(x: Ctx, h: Value): Value {
  const { g, c, dim } = x;
  return nn.reshape(g, nn.ropeInterleaved(g, h, x.cos, x.sin, c.heads, c.headDim), [0, 0, dim]);
}

function feedForward(x: Ctx, h: Value, prefix: string): Value {
  const { g, dim } = x;
  return nn.linear(g, nn.geluTanh(g, nn.linear(g, h, `${prefix}.net.0.proj`, dim, 4 * dim)), `${prefix}.net.2`, 4 * dim, dim);
}

function splitText(x: Ctx, joint: Value): [Value, Value] {
  const { g } = x;
  const text = g.op('Slice', [joint, g.i64([0]), x.textLen, g.i64([1])]);
  const image = g.op('Slice', [joint, x.textLen, g.i64([Number.MAX_SAFE_INTEGER]), g.i64([1])]);
  return [text, image];
}

/** FluxTransformerBlock: separate image/text streams joined in one attention. */
function doubleBlock(x: Ctx, img: Value, txt: Value, tembAct: Value, i: number): [Value, Value] {
  const { g, dim } = x;
  const p = `transformer_blocks.${i}`;
  const [shift, scale, gate, shiftMlp, scaleMlp, gateMlp] = modulation(x, tembAct, `${p}.norm1.linear`, 6);
  const [cShift, cScale, cGate, cShiftMlp, cScaleMlp, cGateMlp] = modulation(x, tembAct, `${p}.norm1_context.linear`, 6);
  const nImg = modulate(x, img, shift, scale);
  const nTxt = modulate(x, txt, cShift, cScale);

  const q = nn.concat(g, [headsWithNorm(x, nTxt, `${p}.attn.add_q_proj`, `${p}.attn.norm_added_q.weight`), headsWithNorm(x, nImg, `${p}.attn.to_q`, `${p}.attn.norm_q.weight`)], 1);
  const k = nn.concat(g, [headsWithNorm(x, nTxt, `${p}.attn.add_k_proj`, `${p}.attn.norm_added_k.weight`), headsWithNorm(x, nImg, `${p}.attn.to_k`, `${p}.attn.norm_k.weight`)], 1);
  const v = nn.concat(g, [nn.linear(g, nTxt, `${p}.attn.add_v_proj`, dim, dim), nn.linear(g, nImg, `${p}.attn.to_v`, dim, dim)], 1);
  const [aTxt, aImg] = splitText(x, nn.attention(g, rotate(x, q), rotate(x, k), v, x.c.heads, { headDim: x.c.headDim }));

  let outImg = nn.add(g, img, nn.mul(g, gate, nn.linear(g, aImg, `${p}.attn.to_out.0`, dim, dim)));
  outImg = nn.add(g, outImg, nn.mul(g, gateMlp, feedForward(x, modulate(x, outImg, shiftMlp, scaleMlp), `${p}.ff`)));
  let outTxt = nn.add(g, txt, nn.mul(g, cGate, nn.linear(g, aTxt, `${p}.attn.to_add_out`, dim, dim)));
  outTxt = nn.add(g, outTxt, nn.mul(g, cGateMlp, feedForward(x, modulate(x, outTxt, cShiftMlp, cScaleMlp), `${p}.ff_context`)));
  if (g.float === 'float16') outTxt = g.op('Clip', [outTxt, g.scalar(-65504), g.scalar(65504)]);
  return [outImg, outTxt];
}

/** FluxSingleTransformerBlock: attention and MLP in parallel over the joint sequence. */
function singleBlock(x: Ctx, h: Value, tembAct: Value, i: number): Value {
  const { g, dim } = x;
  const p = `single_transformer_blocks.${i}`;
  const [shift, scale, gate] = modulation(x, tembAct, `${p}.norm.linear`, 3);
  const n = modulate(x, h, shift, scale);
  const mlp = nn.geluTanh(g, nn.linear(g, n, `${p}.proj_mlp`, dim, 4 * dim));
  const q = rotate(x, headsWithNorm(x, n, `${p}.attn.to_q`, `${p}.attn.norm_q.weight`));
  const k = rotate(x, headsWithNorm(x, n, `${p}.attn.to_k`, `${p}.attn.norm_k.weight`));
  const v = nn.linear(g, n, `${p}.attn.to_v`, dim, dim);
  const attn = nn.attention(g, q, k, v, x.c.heads, { headDim: x.c.headDim });
  const out = nn.linear(g, nn.concat(g, [attn, mlp], 2), `${p}.proj_out`, 5 * dim, dim);
  let y = nn.add(g, h, nn.mul(g, gate, out));
  if (g.float === 'float16') y = g.op('Clip', [y, g.scalar(-65504), g.scalar(65504)]);
  return y;
}

export type TransformerPrecision = 'float32' | 'float16';

/** How many residual samples an adapter gives the transformer (CLD's MultiLayerAdapter: one per adapter block). */
export interface ResidualCounts {
  double: number;
  single: number;
}

export interface TransformerBuildOptions {
  /** Also output `temb` and `packed_hidden_after_crop` (for comparing with the reference's intermediates). */
  intermediates?: boolean;
  /** `int4`: 4-bit weight-only linear layers (MatMulNBits), for GPUs with 12-16 GB. */
  quantize?: 'none' | 'int4';
  /**
   * The decomposition graph: inputs `adapter_block_sample_<j>` / `adapter_single_block_sample_<j>`
   * `[1|B, tokens, D]` (an adapter's outputs, see `adapter.ts`) added after the blocks. Absent: the
   * generation graph, with no such inputs and no extra nodes.
   */
  residuals?: ResidualCounts;
  /**
   * Generation and decomposition in one graph over one copy of the shared weights (see JobSwitch;
   * with `residuals`, which generation feeds as zeros).
   */
  jobs?: JobSwitch;
}

/**
 * What decomposition changes in the transformer, kept beside the shared weights: its own
 * `layer_pe` (the weight source's key `layerPe`) and its "layer" LoRA, applied unfused as CLD
 * applies it. The graph takes `job` (0 generate, 1 decompose): it picks the layer_pe table and
 * switches the LoRA.
 */
export interface JobSwitch {
  layerPe: string;
  layerLora: ReadonlyMap<string, readonly LowRankUpdate[]>;
}

/** The job a graph built with JobSwitch runs, as its `job` input. */
export const JOB_INDEX: Readonly<Record<JobKind, number>> = { generate: 0, decompose: 1 };

/** Input names of the residual samples (the adapter's output names). */
export const doubleSampleName = (j: number): string => `adapter_block_sample_${j}`;
export const singleSampleName = (j: number): string => `adapter_single_block_sample_${j}`;

/**
 * Which sample block `i` of `blocks` gets, as diffusers' Flux transformer (and CLD's) picks it:
 * `i // ceil(blocks / samples)`.
 */
export function sampleForBlock(i: number, blocks: number, samples: number): number {
  return Math.floor(i / Math.ceil(blocks / samples));
}

/** What a FLUX-style graph makes of its inputs before the blocks (shared by the transformer and the adapter). */
export interface Stem {
  x: Ctx;
  /** `hidden_states [B, N, 64]`. */
  hidden: Value;
  /** `token_layer [N]`. */
  tokenLayer: Value;
  temb: Value;
  tembAct: Value;
  /** The embedded text stream `[B, T, D]`. */
  txt: Value;
}

/**
 * Declares the inputs every FLUX-style graph here takes (see the top of this file) and embeds the
 * conditioning (timestep + guidance + pooled text, summed) and the text with `c`'s own weights.
 */
export function fluxStem(g: GraphBuilder, c: TransformerConfig): Stem {
  const dim = innerDim(c);
  const hidden = g.input('hidden_states', 'float', ['batch', 'tokens', c.inChannels]);
  const tokenLayer = g.input('token_layer', 'int64', ['tokens']);
  const context = g.input('encoder_hidden_states', 'float', ['batch', 'text_tokens', c.jointAttentionDim]);
  const pooled = g.input('pooled_projections', 'float', ['batch', c.pooledProjectionDim]);
  const timestep = g.input('timestep', 'float32', ['batch']);
  const guidance = c.guidanceEmbeds ? g.input('guidance', 'float32', ['batch']) : null;
  const ropeCos = g.input('rope_cos', 'float', ['joint_tokens', c.headDim]);
  const ropeSin = g.input('rope_sin', 'float', ['joint_tokens', c.headDim]);

  const textLen = g.op('Slice', [g.op('Shape', [context]), g.i64([1]), g.i64([2])]);
  const x: Ctx = {
    g, c, dim,
    cos: nn.reshape(g, ropeCos, [1, -1, 1, c.headDim]),
    sin: nn.reshape(g, ropeSin, [1, -1, 1, c.headDim]),
    textLen,
  };

  let temb = mlpEmbedder(g, timestepFeatures(g, timestep), 'time_text_embed.timestep_embedder', TIME_CHANNELS, dim);
  if (guidance) temb = nn.add(g, temb, mlpEmbedder(g, timestepFeatures(g, guidance), 'time_text_embed.guidance_embedder', TIME_CHANNELS, dim));
  temb = nn.add(g, temb, mlpEmbedder(g, pooled, 'time_text_embed.text_embedder', c.pooledProjectionDim, dim));
  const txt = nn.linear(g, context, 'context_embedder', c.jointAttentionDim, dim);
  return { x, hidden, tokenLayer, temb, tembAct: nn.silu(g, temb), txt };
}

/** The learned embedding of each token's layer, `layer_pe [1, layers, 1, 1, D]` gathered per token. */
export function layerEmbedding(g: GraphBuilder, c: TransformerConfig, tokenLayer: Value): Value {
  const dim = innerDim(c);
  const layerPe = nn.reshape(g, g.weight('layer_pe', [1, c.maxLayerNum, 1, 1, dim]), [c.maxLayerNum, dim]);
  return g.op('Gather', [layerPe, tokenLayer], { axis: int(0) });
}

/**
 * Both jobs' layer_pe in one table, the generation's rows first; `job` offsets each token's index
 * (an exact pick, no blend).
 */
function jobLayerEmbedding(g: GraphBuilder, c: TransformerConfig, tokenLayer: Value, job: Value, decomposeKey: string): Value {
  const dim = innerDim(c);
  const table = (key: string) => nn.reshape(g, g.weight(key, [1, c.maxLayerNum, 1, 1, dim]), [c.maxLayerNum, dim]);
  const index = nn.add(g, tokenLayer, nn.mul(g, job, g.i64([c.maxLayerNum])));
  return g.op('Gather', [nn.concat(g, [table('layer_pe'), table(decomposeKey)], 0), index], { axis: int(0) });
}

/** Called after each block with its output; returns what the next block gets. */
export interface BlockHooks {
  afterDouble?: (i: number, img: Value) => Value;
  /** `joint` is `[text, image]`; `image()` is its image part. */
  afterSingle?: (i: number, joint: Value, image: () => Value) => Value;
}

/** The double blocks, then the single blocks over `[text, image]`; returns the joint sequence. */
export function fluxBlocks(x: Ctx, img: Value, txt: Value, tembAct: Value, hooks: BlockHooks = {}): Value {
  const { g, c } = x;
  for (let i = 0; i < c.numLayers; i++) {
    [img, txt] = doubleBlock(x, img, txt, tembAct, i);
    if (hooks.afterDouble) img = hooks.afterDouble(i, img);
  }
  let joint = nn.concat(g, [txt, img], 1);
  for (let i = 0; i < c.numSingleLayers; i++) {
    joint = singleBlock(x, joint, tembAct, i);
    if (hooks.afterSingle) {
      const current = joint;
      joint = hooks.afterSingle(i, current, () => splitText(x, current)[1]);
    }
  }
  return joint;
}

export function buildTransformer(c: TransformerConfig, weights: WeightSource, precision: TransformerPrecision = 'float32', options: TransformerBuildOptions = {}): GraphBuilder {
  const g = new GraphBuilder('art_transformer', precision, weights, options.quantize ?? 'none');
  const job = options.jobs ? g.input('job', 'int64', [1]) : undefined;
  const branch = options.jobs && job ? { on: job, updates: options.jobs.layerLora, applied: new Set<string>() } : undefined;
  if (branch) attachLoraBranch(g, branch);
  const { x, hidden, tokenLayer, temb, tembAct, txt } = fluxStem(g, c);
  const { dim } = x;

  // Image tokens: x_embedder, plus the learned embedding of each token's layer.
  const layers = options.jobs && job ? jobLayerEmbedding(g, c, tokenLayer, job, options.jobs.layerPe) : layerEmbedding(g, c, tokenLayer);
  const img = nn.add(g, nn.linear(g, hidden, 'x_embedder', c.inChannels, dim), layers);
  if (options.intermediates) {
    g.output(temb, 'temb', 'float', ['batch', dim]);
    g.output(img, 'packed_hidden_after_crop', 'float', ['batch', 'tokens', dim]);
  }

  const joint = fluxBlocks(x, img, txt, tembAct, options.residuals ? residualHooks(x, options.residuals) : {});
  const out = splitText(x, joint)[1];

  // AdaLayerNormContinuous: chunks in the order scale, shift.
  const [scale, shift] = nn.split(g, nn.unsqueeze(g, nn.linear(g, tembAct, 'norm_out.linear', dim, 2 * dim), [1]), 2, [dim, dim]);
  const normed = nn.add(g, nn.mul(g, nn.layerNorm(g, out, dim, LN_EPS, null), nn.add(g, scale, g.scalar(1))), shift);
  g.output(nn.linear(g, normed, 'proj_out', dim, c.inChannels), 'noise_pred', 'float', ['batch', 'tokens', c.inChannels]);
  if (branch) checkBranchApplied(branch, `${weights.describe}: the "layer" LoRA`);
  return g;
}

/**
 * The adapter's samples as graph inputs, added after each block: the image stream after double
 * block `i`, the image part of `[text, image]` after single block `i`.
 */
function residualHooks(x: Ctx, counts: ResidualCounts): BlockHooks {
  const { g, c, dim } = x;
  const input = (name: string) => g.input(name, 'float', ['sample_batch', 'tokens', dim]);
  const doubles = Array.from({ length: counts.double }, (_, j) => input(doubleSampleName(j)));
  const singles = Array.from({ length: counts.single }, (_, j) => input(singleSampleName(j)));
  return {
    afterDouble: doubles.length ? (i, img) => nn.add(g, img, doubles[sampleForBlock(i, c.numLayers, doubles.length)]) : undefined,
    afterSingle: singles.length
      ? (i, joint, image) => nn.concat(g, [splitText(x, joint)[0], nn.add(g, image(), singles[sampleForBlock(i, c.numSingleLayers, singles.length)])], 1)
      : undefined,
  };
}
