/**
 * The CLIP text encoder (FLUX.1-dev's `text_encoder/`, CLIP-L: transformers `CLIPTextModel`) as an
 * ONNX graph. Checkpoint keys are the official ones with their `text_model.` prefix.
 *
 * Input:   input_ids [B, S] int64 (S = max_position_embeddings, 77: the tokenizer pads to it).
 * Outputs: pooled [B, hidden] (final-normed state at the end-of-text token: what FLUX uses),
 *          last_hidden_state [B, S, hidden].
 *
 * Semantics (golden README, clip_text/): token + learned position embeddings; pre-LN layers with
 * causal self-attention (q/k/v/out biases, scale 1/sqrt(head_dim)); MLP fc2(act(fc1(x))); final
 * LayerNorm. No attention mask besides the causal one (FLUX passes none).
 */
import { GraphError, GraphBuilder, int, type Value, type WeightSource } from '../onnx/graph.ts';
import * as nn from '../onnx/nn.ts';

export type ClipActivation = 'quick_gelu' | 'gelu';

export interface ClipTextConfig {
  vocabSize: number;
  hidden: number;
  intermediate: number;
  layers: number;
  heads: number;
  /** Sequence length of the graph: the learned position table's length. */
  positions: number;
  activation: ClipActivation;
  layerNormEps: number;
  /**
   * Pooling rule, as transformers decides it: with `eos_token_id == 2` (the original CLIP configs,
   * FLUX's included) the legacy `argmax(input_ids)`, i.e. the first `<|endoftext|>` since it has
   * the largest id; otherwise the first occurrence of `eos_token_id`.
   */
  pooling: { kind: 'argmax' } | { kind: 'eos'; eosTokenId: number };
}

/** Reads a transformers CLIP text `config.json` (a `CLIPConfig` with `text_config` also works); names what is wrong. */
export function parseClipTextConfig(json: unknown, source = 'text_encoder/config.json'): ClipTextConfig {
  const root = (json ?? {}) as Record<string, unknown>;
  const c = (typeof root.text_config === 'object' && root.text_config !== null ? root.text_config : root) as Record<string, unknown>;
  const num = (key: string): number => {
    const v = c[key];
    if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0) throw new GraphError(`${source}: "${key}" must be a positive integer (got ${JSON.stringify(v)})`);
    return v;
  };
  const act = c.hidden_act ?? 'quick_gelu';
  if (act !== 'quick_gelu' && act !== 'gelu') throw new GraphError(`${source}: hidden_act ${JSON.stringify(act)} is not supported (CLIP uses "quick_gelu" or "gelu")`);
  const eps = c.layer_norm_eps ?? 1e-5;
  if (typeof eps !== 'number' || !(eps > 0)) throw new GraphError(`${source}: "layer_norm_eps" must be a positive number (got ${JSON.stringify(eps)})`);
  const eos = c.eos_token_id ?? 2;
  if (typeof eos !== 'number' || !Number.isInteger(eos) || eos < 0) throw new GraphError(`${source}: "eos_token_id" must be a token id (got ${JSON.stringify(eos)})`);
  const cfg: ClipTextConfig = {
    vocabSize: num('vocab_size'),
    hidden: num('hidden_size'),
    intermediate: num('intermediate_size'),
    layers: num('num_hidden_layers'),
    heads: num('num_attention_heads'),
    positions: num('max_position_embeddings'),
    activation: act,
    layerNormEps: eps,
    pooling: eos === 2 ? { kind: 'argmax' } : { kind: 'eos', eosTokenId: eos },
  };
  if (cfg.hidden % cfg.heads !== 0) throw new GraphError(`${source}: hidden_size ${cfg.hidden} is not divisible by num_attention_heads ${cfg.heads}`);
  return cfg;
}

const P = 'text_model';

/** Additive causal mask [1, 1, S, S]: 0 on and below the diagonal, the float type's lowest value above. */
function causalMask(g: GraphBuilder, s: number): Value {
  const lowest = g.float === 'float16' ? -65504 : -3.4028234663852886e38;
  const m = new Float32Array(s * s);
  for (let i = 0; i < s; i++) for (let j = i + 1; j < s; j++) m[i * s + j] = lowest;
  return g.constant(m, [1, 1, s, s], 'float', 'causal_mask');
}

function encoderLayer(g: GraphBuilder, c: ClipTextConfig, x: Value, i: number, mask: Value): Value {
  const p = `${P}.encoder.layers.${i}`;
  const d = c.hidden;
  const h = nn.layerNorm(g, x, d, c.layerNormEps, `${p}.layer_norm1`);
  const q = nn.linear(g, h, `${p}.self_attn.q_proj`, d, d);
  const k = nn.linear(g, h, `${p}.self_attn.k_proj`, d, d);
  const v = nn.linear(g, h, `${p}.self_attn.v_proj`, d, d);
  // The default scale 1/sqrt(head_dim), as CLIP's.
  const attn = nn.attention(g, q, k, v, c.heads, { headDim: d / c.heads, bias: mask });
  x = nn.add(g, x, nn.linear(g, attn, `${p}.self_attn.out_proj`, d, d));
  const h2 = nn.layerNorm(g, x, d, c.layerNormEps, `${p}.layer_norm2`);
  const up = nn.linear(g, h2, `${p}.mlp.fc1`, d, c.intermediate);
  const act = c.activation === 'quick_gelu' ? nn.quickGelu(g, up) : nn.gelu(g, up);
  return nn.add(g, x, nn.linear(g, act, `${p}.mlp.fc2`, c.intermediate, d));
}

/** Index [B] of the token to pool, by the config's rule. */
function poolIndex(g: GraphBuilder, c: ClipTextConfig, ids: Value): Value {
  // ArgMax over floats (ids < 2^24 are exact); ties resolve to the first index, as torch's argmax.
  const scores = c.pooling.kind === 'argmax'
    ? g.op('Cast', [ids], { to: int(1) })
    : g.op('Cast', [g.op('Equal', [ids, g.constant([BigInt(c.pooling.eosTokenId)], [], 'int64')])], { to: int(1) });
  return g.op('ArgMax', [scores], { axis: int(1), keepdims: int(0), select_last_index: int(0) });
}

/** Builds the encoder; `precision` is the graph's float type (inputs stay int64). */
export function buildClipTextEncoder(c: ClipTextConfig, weights: WeightSource, precision: 'float32' | 'float16'): GraphBuilder {
  const g = new GraphBuilder('clip_text_encoder', precision, weights);
  const s = c.positions;
  const d = c.hidden;
  const ids = g.input('input_ids', 'int64', ['B', s]);
  const tokens = g.op('Gather', [g.weight(`${P}.embeddings.token_embedding.weight`, [c.vocabSize, d]), ids], { axis: int(0) });
  // Positions 0..S-1 are the whole learned table: added with broadcasting.
  let x = nn.add(g, tokens, g.weight(`${P}.embeddings.position_embedding.weight`, [s, d]));
  const mask = causalMask(g, s);
  for (let i = 0; i < c.layers; i++) x = encoderLayer(g, c, x, i, mask);
  const last = nn.layerNorm(g, x, d, c.layerNormEps, `${P}.final_layer_norm`);
  g.output(last, 'last_hidden_state', 'float', ['B', s, d]);

  // pooled[b] = last[b, index[b]]: GatherElements along the sequence with the index broadcast over channels.
  const index = g.op('Expand', [nn.reshape(g, poolIndex(g, c, ids), [-1, 1, 1]), g.i64([1, 1, d])]);
  const pooled = nn.reshape(g, g.op('GatherElements', [last, index], { axis: int(1) }), [-1, d]);
  g.output(pooled, 'pooled', 'float', ['B', d]);
  return g;
}
