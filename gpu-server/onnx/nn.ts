/**
 * Layer helpers over the graph builder: the vocabulary the model files are written in.
 * Each takes plain Values and checkpoint key prefixes, so a model file reads like its
 * PyTorch original.
 */
import { type GraphBuilder, type Value, float, int, ints, str } from './graph.ts';
import { float32ToHalves } from './half.ts';
import { INT4_BLOCK, type Int4Weight, quantizeInt4 } from './int4.ts';
import { withLoraBranch } from './lora-branch.ts';
import { MS_DOMAIN } from './onnx-writer.ts';

/**
 * torch `nn.Linear` under `prefix` (`prefix.weight [out,in]`, `prefix.bias [out]`). In an int4
 * build the weight is stored as 4-bit blocks and multiplied by the fused `MatMulNBits`. A LoRA
 * branch attached to the graph adds its low-rank path after the bias, as peft does.
 */
export function linear(g: GraphBuilder, x: Value, prefix: string, inFeatures: number, outFeatures: number, bias = true): Value {
  const key = `${prefix}.weight`;
  const y = g.quantize === 'int4' && inFeatures % INT4_BLOCK === 0 ? matMulInt4(g, x, key, inFeatures, outFeatures) : g.op('MatMul', [x, g.weight(key, [outFeatures, inFeatures], 'transpose')]);
  return withLoraBranch(g, x, bias ? g.op('Add', [y, g.weight(`${prefix}.bias`, [outFeatures])]) : y, key);
}

function matMulInt4(g: GraphBuilder, x: Value, key: string, k: number, n: number): Value {
  g.useKey(key, [n, k]);
  let cached: Int4Weight | undefined;
  // The three initializers share one quantization pass; the writer loads them one after another.
  const quantized = (): Int4Weight => (cached ??= quantizeInt4(g.weights.read(key), n, k));
  const blocks = k / INT4_BLOCK;
  const codes = g.rawInitializer(`${key}.q4`, 'uint8', [n, blocks, INT4_BLOCK / 2], () => quantized().codes);
  const scales = g.rawInitializer(`${key}.q4_scales`, g.float, [n * blocks], () => (g.float === 'float16' ? float32ToHalves(quantized().scales) : quantized().scales));
  const zeros = g.rawInitializer(`${key}.q4_zero_points`, 'uint8', [n * Math.ceil(blocks / 2)], () => {
    const z = quantized().zeroPoints;
    cached = undefined;
    return z;
  });
  return g.op('MatMulNBits', [x, codes, scales, zeros], { K: int(k), N: int(n), bits: int(4), block_size: int(INT4_BLOCK), accuracy_level: int(0) }, { domain: MS_DOMAIN });
}

export const add = (g: GraphBuilder, a: Value, b: Value): Value => g.op('Add', [a, b]);
export const sub = (g: GraphBuilder, a: Value, b: Value): Value => g.op('Sub', [a, b]);
export const mul = (g: GraphBuilder, a: Value, b: Value): Value => g.op('Mul', [a, b]);
export const div = (g: GraphBuilder, a: Value, b: Value): Value => g.op('Div', [a, b]);

export const silu = (g: GraphBuilder, x: Value): Value => g.op('Mul', [x, g.op('Sigmoid', [x])]);
export const geluTanh = (g: GraphBuilder, x: Value): Value => g.op('Gelu', [x], { approximate: str('tanh') });
export const gelu = (g: GraphBuilder, x: Value): Value => g.op('Gelu', [x]);
/** CLIP's `x * sigmoid(1.702 x)`. */
export const quickGelu = (g: GraphBuilder, x: Value): Value => g.op('Mul', [x, g.op('Sigmoid', [g.op('Mul', [x, g.scalar(1.702)])])]);

/** LayerNorm over the last axis; without affine parameters when `prefix` is null. */
export function layerNorm(g: GraphBuilder, x: Value, dim: number, eps: number, prefix: string | null): Value {
  const scale = prefix ? g.weight(`${prefix}.weight`, [dim]) : g.sharedConstant(`ones_${dim}`, () => new Float32Array(dim).fill(1), [dim]);
  const bias = prefix ? g.weight(`${prefix}.bias`, [dim]) : null;
  return g.op('LayerNormalization', bias ? [x, scale, bias] : [x, scale], { axis: int(-1), epsilon: float(eps) });
}

/**
 * RMSNorm over the last axis with a learned weight: `x / sqrt(mean(x^2) + eps) * w`. Written out
 * (not a fused op) so fp16 graphs can compute the mean in fp32.
 */
export function rmsNorm(g: GraphBuilder, x: Value, weightKey: string, dim: number, eps: number): Value {
  const xf = g.float === 'float16' ? g.op('Cast', [x], { to: int(1) }) : x;
  const meanSq = g.op('ReduceMean', [g.op('Mul', [xf, xf]), g.i64([-1])], { keepdims: int(1) });
  const inv = g.op('Reciprocal', [g.op('Sqrt', [g.op('Add', [meanSq, g.constant([eps], [], 'float32')])])]);
  let y = g.op('Mul', [xf, inv]);
  if (g.float === 'float16') y = g.op('Cast', [y], { to: int(10) });
  return g.op('Mul', [y, g.weight(weightKey, [dim])]);
}

export const reshape = (g: GraphBuilder, x: Value, shape: number[]): Value => g.op('Reshape', [x, g.i64(shape)]);
export const transpose = (g: GraphBuilder, x: Value, perm: number[]): Value => g.op('Transpose', [x], { perm: ints(perm) });
export const concat = (g: GraphBuilder, xs: Value[], axis: number): Value => g.op('Concat', xs, { axis: int(axis) });

/** Splits `x` along `axis` into pieces of the given sizes. */
export function split(g: GraphBuilder, x: Value, axis: number, sizes: number[]): Value[] {
  return g.node('Split', [x, g.i64(sizes)], { axis: int(axis) }, { outputs: sizes.length });
}

/** `x[..., start:end, ...]` along one axis. */
export function slice(g: GraphBuilder, x: Value, axis: number, start: number, end: number): Value {
  return g.op('Slice', [x, g.i64([start]), g.i64([end]), g.i64([axis])]);
}

export const unsqueeze = (g: GraphBuilder, x: Value, axes: number[]): Value => g.op('Unsqueeze', [x, g.i64(axes)]);

/**
 * Rotary embedding on interleaved pairs, as FLUX applies it: x `[B, S, H, d]`, cos/sin `[S, d]`
 * (each frequency repeated twice): `(x0, x1) -> (x0 cos - x1 sin, x1 cos + x0 sin)`.
 */
export function ropeInterleaved(g: GraphBuilder, x: Value, cos4d: Value, sin4d: Value, heads: number, headDim: number): Value {
  const pairs = g.op('Reshape', [x, g.i64([0, 0, heads, headDim / 2, 2])]);
  const [x0, x1] = split(g, pairs, 4, [1, 1]);
  const rotated = g.op('Reshape', [concat(g, [g.op('Neg', [x1]), x0], 4), g.i64([0, 0, heads, headDim])]);
  return add(g, mul(g, x, cos4d), mul(g, rotated, sin4d));
}

/**
 * Scaled dot-product attention on `[B, S, H*d]` query/key/value through onnxruntime's fused
 * `com.microsoft.MultiHeadAttention` (runs on the CPU, CUDA and WebGPU providers). `bias` is an
 * additive attention bias broadcastable to `[B, H, S, L]`. The scale (default `1/sqrt(headDim)`,
 * computed as onnxruntime does) is always written, so the node can be restated as MatMul + Softmax
 * + MatMul without knowing the head size (`unfused-attention.ts`, for WebGPU adapters that need it).
 */
export function attention(g: GraphBuilder, q: Value, k: Value, v: Value, heads: number, opts: { headDim: number; scale?: number; bias?: Value }): Value {
  const attrs = { num_heads: int(heads), scale: float(opts.scale ?? defaultAttentionScale(opts.headDim)) };
  const inputs: (Value | null)[] = [q, k, v];
  if (opts.bias) inputs.push(null, null, opts.bias);
  return g.op('MultiHeadAttention', inputs, attrs, { domain: MS_DOMAIN });
}

/** MultiHeadAttention's own default, `1.f / sqrtf(head_size)` in float32 (so writing it changes nothing). */
export const defaultAttentionScale = (headDim: number): number => Math.fround(1 / Math.fround(Math.sqrt(headDim)));
