/**
 * The T5 v1.1 encoder (FLUX.1-dev's `text_encoder_2/`, T5-XXL: transformers `T5EncoderModel`) as
 * an ONNX graph. Checkpoint keys are the official ones (`shared.weight` or its tied alias
 * `encoder.embed_tokens.weight`, `encoder.block.N.layer.0.SelfAttention.q.weight`, ...).
 *
 * Input:  input_ids [B, S] int64 (S fixed at build time: 512 as FLUX pads; no attention mask,
 *         FLUX passes none, so padding tokens are attended).
 * Output: last_hidden_state [B, S, d_model].
 *
 * Semantics (golden README, t5_encoder/): unscaled embeddings; per block
 * `x += o(attn(rms(x)))`, `x += wo(gelu_tanh(wi_0 h) * wi_1 h)` with `h = rms(x)`; RMS norm
 * without mean or bias; no bias anywhere; attention scores `q k^T + position_bias` with no
 * 1/sqrt(d) scaling; one bidirectional relative-position bias from block 0, shared by all blocks;
 * final RMS norm; no projection.
 *
 * Precision: T5 v1.1 overflows fp16 in its feed-forward and residual stream. The fp16 graph keeps
 * every activation in fp32 (residual stream, norms, attention, the gated product, `wo`) and runs
 * only the projections whose inputs are bounded (q, k, v, o, wi_0, wi_1: RMS-normed inputs or
 * attention averages of them) as fp16 MatMuls; `wo` keeps an fp16 weight Cast to fp32 in the
 * graph, as transformers keeps `wo` in fp32 (`_keep_in_fp32_modules`). No clamping is needed.
 * Cost: onnxruntime folds those Casts at load, so XXL's 24 `wo` matrices sit in memory as fp32
 * (4.0 GB instead of 2.0 GB; about 11.5 GB in all instead of 9.5 GB).
 */
import { GraphError, GraphBuilder, int, type Value, type WeightSource } from '../onnx/graph.ts';
import * as nn from '../onnx/nn.ts';
import { T5_TOKENS } from '../constants.ts';

export interface T5Config {
  vocabSize: number;
  dModel: number;
  dKv: number;
  dFf: number;
  layers: number;
  heads: number;
  buckets: number;
  maxDistance: number;
  eps: number;
}

/** Reads a transformers T5 `config.json` (gated-gelu v1.1 only, as FLUX's); names what is wrong. */
/**
 * The feed-forward kind, in either of transformers' two forms: the older `feed_forward_proj`
 * ("gated-gelu" means gated tanh-GELU) or the newer `dense_act_fn` + `is_gated_act` (FLUX.1-dev's
 * real `text_encoder_2/config.json`: "gelu_pytorch_tanh", true). Only the gated tanh-GELU of
 * T5 v1.1 is implemented; anything else is refused by name.
 */
function checkGatedGelu(c: Record<string, unknown>, source: string): void {
  const supported = `this encoder implements T5 v1.1's gated tanh-GELU (FLUX's T5-XXL: feed_forward_proj "gated-gelu", or dense_act_fn "gelu_pytorch_tanh" with is_gated_act true)`;
  if (c.feed_forward_proj === undefined && (c.dense_act_fn !== undefined || c.is_gated_act !== undefined)) {
    // transformers writes "gelu_new" for the same tanh approximation in some conversions.
    const tanhGelu = c.dense_act_fn === 'gelu_pytorch_tanh' || c.dense_act_fn === 'gelu_new';
    if (!tanhGelu || c.is_gated_act !== true) {
      throw new GraphError(`${source}: dense_act_fn ${JSON.stringify(c.dense_act_fn)} with is_gated_act ${JSON.stringify(c.is_gated_act)} is not supported; ${supported}`);
    }
    return;
  }
  const proj = c.feed_forward_proj ?? 'relu';
  if (proj !== 'gated-gelu') throw new GraphError(`${source}: feed_forward_proj ${JSON.stringify(proj)} is not supported; ${supported}`);
  // transformers lets dense_act_fn/is_gated_act beside feed_forward_proj disagree with it: refuse that.
  if ((c.dense_act_fn !== undefined && c.dense_act_fn !== 'gelu_new' && c.dense_act_fn !== 'gelu_pytorch_tanh') || c.is_gated_act === false) {
    throw new GraphError(`${source}: feed_forward_proj "gated-gelu" but dense_act_fn ${JSON.stringify(c.dense_act_fn)}, is_gated_act ${JSON.stringify(c.is_gated_act)}; ${supported}`);
  }
}

export function parseT5Config(json: unknown, source = 'text_encoder_2/config.json'): T5Config {
  const c = (json ?? {}) as Record<string, unknown>;
  const num = (key: string, fallback?: number): number => {
    const v = c[key] ?? fallback;
    if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0) throw new GraphError(`${source}: "${key}" must be a positive integer (got ${JSON.stringify(v)})`);
    return v;
  };
  checkGatedGelu(c, source);
  const eps = c.layer_norm_epsilon ?? 1e-6;
  if (typeof eps !== 'number' || !(eps > 0)) throw new GraphError(`${source}: "layer_norm_epsilon" must be a positive number (got ${JSON.stringify(eps)})`);
  const cfg: T5Config = {
    vocabSize: num('vocab_size'),
    dModel: num('d_model'),
    dKv: num('d_kv'),
    dFf: num('d_ff'),
    layers: num('num_layers'),
    heads: num('num_heads'),
    buckets: num('relative_attention_num_buckets', 32),
    maxDistance: num('relative_attention_max_distance', 128),
    eps,
  };
  if (cfg.buckets % 4 !== 0) throw new GraphError(`${source}: relative_attention_num_buckets ${cfg.buckets} must be a multiple of 4 (half per direction, half of those exact)`);
  return cfg;
}

/**
 * T5's bidirectional relative-position bucket of `rel = key - query`, as transformers computes it:
 * half the buckets per sign, small distances exact, larger ones logarithmic up to `maxDistance`,
 * the log term in float32 (at |rel| = 16, 32, 64 it lands exactly on an integer, so the float32
 * rounding decides the bucket).
 */
export function relativePositionBucket(rel: number, buckets: number, maxDistance: number): number {
  const half = buckets / 2;
  const maxExact = half / 2;
  const offset = rel > 0 ? half : 0;
  const n = Math.abs(rel);
  if (n < maxExact) return offset + n;
  const f = Math.fround;
  const logRatio = f(Math.log(f(n / maxExact)));
  const scaled = f(f(logRatio / f(Math.log(maxDistance / maxExact))) * (half - maxExact));
  return offset + Math.min(maxExact + Math.trunc(scaled), half - 1);
}

/** The bucket of every (query i, key j) pair of a length-`s` sequence, row-major [s, s]. */
export function bucketTable(s: number, buckets: number, maxDistance: number): BigInt64Array {
  const out = new BigInt64Array(s * s);
  for (let i = 0; i < s; i++) for (let j = 0; j < s; j++) out[i * s + j] = BigInt(relativePositionBucket(j - i, buckets, maxDistance));
  return out;
}

export const T5_EMBEDDING_KEYS = ['shared.weight', 'encoder.embed_tokens.weight'] as const;

const TO_F32 = { to: int(1) };
const TO_F16 = { to: int(10) };

/** Builds T5's ops with fp32 activations whatever the weights' type. */
class T5Ops {
  readonly half: boolean;
  constructor(readonly g: GraphBuilder) {
    this.half = g.float === 'float16';
  }

  /** A checkpoint weight as an fp32 value (fp16 weights are Cast in the graph). */
  weight32(key: string, shape: number[], transform: 'none' | 'transpose' = 'none'): Value {
    const w = this.g.weight(key, shape, transform);
    return this.half ? this.g.op('Cast', [w], TO_F32) : w;
  }

  /** Bias-free linear on an fp32 input whose values are bounded: an fp16 MatMul in the fp16 graph. */
  boundedLinear(x: Value, key: string, inF: number, outF: number): Value {
    const w = this.g.weight(key, [outF, inF], 'transpose');
    if (!this.half) return this.g.op('MatMul', [x, w]);
    return this.g.op('Cast', [this.g.op('MatMul', [this.g.op('Cast', [x], TO_F16), w])], TO_F32);
  }

  /** Bias-free linear in fp32 (T5's `wo`, whose input and output exceed the fp16 range). */
  linear32(x: Value, key: string, inF: number, outF: number): Value {
    return this.g.op('MatMul', [x, this.weight32(key, [outF, inF], 'transpose')]);
  }

  /** T5LayerNorm: `x / sqrt(mean(x^2) + eps) * w`, all in fp32. */
  rms(x: Value, key: string, dim: number, eps: number): Value {
    const g = this.g;
    const meanSq = g.op('ReduceMean', [g.op('Mul', [x, x]), g.i64([-1])], { keepdims: int(1) });
    const inv = g.op('Reciprocal', [g.op('Sqrt', [g.op('Add', [meanSq, g.constant([eps], [], 'float32')])])]);
    return g.op('Mul', [g.op('Mul', [x, inv]), this.weight32(key, [dim])]);
  }
}

/** Additive attention bias [1, H, S, S] from block 0's `relative_attention_bias` (fp32). */
function positionBias(t: T5Ops, c: T5Config, s: number): Value {
  const g = t.g;
  const table = g.constant(bucketTable(s, c.buckets, c.maxDistance), [s, s], 'int64', 'relative_buckets');
  const w = t.weight32('encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight', [c.buckets, c.heads]);
  const perPair = g.op('Gather', [w, table], { axis: int(0) }); // [S, S, H]
  return nn.unsqueeze(g, nn.transpose(g, perPair, [2, 0, 1]), [0]);
}

function block(t: T5Ops, c: T5Config, x: Value, i: number, bias: Value): Value {
  const g = t.g;
  const p = `encoder.block.${i}`;
  const d = c.dModel;
  const inner = c.heads * c.dKv;
  const h = t.rms(x, `${p}.layer.0.layer_norm.weight`, d, c.eps);
  const q = t.boundedLinear(h, `${p}.layer.0.SelfAttention.q.weight`, d, inner);
  const k = t.boundedLinear(h, `${p}.layer.0.SelfAttention.k.weight`, d, inner);
  const v = t.boundedLinear(h, `${p}.layer.0.SelfAttention.v.weight`, d, inner);
  const attn = nn.attention(g, q, k, v, c.heads, { headDim: c.dKv, scale: 1, bias });
  x = nn.add(g, x, t.boundedLinear(attn, `${p}.layer.0.SelfAttention.o.weight`, inner, d));
  const h2 = t.rms(x, `${p}.layer.1.layer_norm.weight`, d, c.eps);
  const gate = nn.geluTanh(g, t.boundedLinear(h2, `${p}.layer.1.DenseReluDense.wi_0.weight`, d, c.dFf));
  const up = t.boundedLinear(h2, `${p}.layer.1.DenseReluDense.wi_1.weight`, d, c.dFf);
  return nn.add(g, x, t.linear32(nn.mul(g, gate, up), `${p}.layer.1.DenseReluDense.wo.weight`, c.dFf, d));
}

/**
 * Builds the encoder for a fixed sequence length (`seqLen`, FLUX's 512 by default: the relative
 * bucket table is computed here for it). `precision` is the weights' type and the output's; see
 * the header for where fp16 is used.
 */
export function buildT5Encoder(c: T5Config, weights: WeightSource, precision: 'float32' | 'float16', opts: { seqLen?: number } = {}): GraphBuilder {
  const s = opts.seqLen ?? T5_TOKENS;
  const g = new GraphBuilder('t5_encoder', precision, weights);
  const t = new T5Ops(g);
  const embKey = T5_EMBEDDING_KEYS.find((k) => weights.shape(k));
  if (!embKey) throw new GraphError(`${weights.describe}: neither "shared.weight" nor "encoder.embed_tokens.weight" is present (is this a T5 encoder checkpoint?)`);
  const ids = g.input('input_ids', 'int64', ['B', s]);
  // Gathered in the weights' type and then Cast: no fp32 copy of the 32128-row table.
  let x = g.op('Gather', [g.weight(embKey, [c.vocabSize, c.dModel]), ids], { axis: int(0) });
  if (t.half) x = g.op('Cast', [x], TO_F32);
  const bias = positionBias(t, c, s);
  for (let i = 0; i < c.layers; i++) x = block(t, c, x, i, bias);
  let out = t.rms(x, 'encoder.final_layer_norm.weight', c.dModel, c.eps);
  // The final RMS norm bounds the values again, so the fp16 output is safe.
  if (t.half) out = g.op('Cast', [out], TO_F16);
  g.output(out, 'last_hidden_state', 'float', ['B', s, c.dModel]);
  return g;
}
