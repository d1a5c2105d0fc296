/**
 * ART's transparent decoder (`transp_vae/`, a ViT-B over latent cells) as an ONNX graph, and the
 * pure helpers that turn its output patches into RGBA layers.
 *
 * The graph sees only the latent cells inside the boxes (one token per 8x8 pixels, 16 channels),
 * layer by layer, row-major within each box; the pipeline gathers them and computes the RoPE
 * tables for ids `(layer, y, x)`. Per encoder block: `x = ln_1(h)`; q and k are projections of the
 * RoPE-rotated `x` (rotation per head, on interleaved pairs), v of the unrotated `x` (torch
 * `nn.MultiheadAttention`, packed `in_proj_weight` rows q, k, v); then an exact-GELU MLP.
 *
 * Ops: MatMul, Add, LayerNormalization, Reshape, Split, Concat, Neg, Mul, Unsqueeze, Gelu,
 * com.microsoft.MultiHeadAttention.
 */
import type { BoxTuple, Layout } from '../../domain/layout.ts';
import { LATENT_CHANNELS, VAE_FACTOR } from '../constants.ts';
import { type Value, type WeightSource, GraphBuilder, transpose2d } from '../onnx/graph.ts';
import { attention, gelu, layerNorm, linear, reshape, ropeInterleaved, split, unsqueeze } from '../onnx/nn.ts';
import type { LayerImage } from '../pipeline/types.ts';

/** fp32 (CPU, tests) or fp16 (GPU); weights are converted as the graph is written. */
export type Precision = GraphBuilder['float'];

export interface TransparentDecoderConfig {
  hidden: number;
  layers: number;
  heads: number;
  mlp: number;
  /** Channels of one input token (the VAE's latent channels). */
  inChannels: number;
  /** Values of one output token: 4 channels (RGB, alpha) x 8 x 8 pixels, channel-major. */
  patchValues: number;
  /** RoPE axes for `(layer, y, x)`; they sum to the head size. */
  ropeAxes: number[];
  ropeTheta: number;
}

export class TransparentDecoderConfigError extends Error {
  override name = 'TransparentDecoderConfigError';
}

/** torchvision's ViT LayerNorm epsilon, which ART keeps. */
const LN_EPS = 1e-6;
/** RGB + alpha. */
export const PATCH_CHANNELS = 4;
const PATCH_PIXELS = VAE_FACTOR * VAE_FACTOR;

/** The architectures ART's `ViTEncoder` knows (width, depth, heads; MLP is 4x). */
const ARCHS: Record<string, { hidden: number; layers: number; heads: number }> = {
  'vit-b/32': { hidden: 768, layers: 12, heads: 12 },
  'vit-h/14': { hidden: 1280, layers: 32, heads: 16 },
};

const isPosInt = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v) && v > 0;

/**
 * Reads the transparent decoder's config: `{ arch?, hidden, layers, heads, mlp, fc_in: [16, hidden],
 * fc_out: [hidden, 256], rope_axes, rope_theta }`. Every field is optional when `arch` (or nothing,
 * meaning ART's `vit-b/32`) names the architecture, since the official checkpoint ships no config.
 */
export function parseTransparentDecoderConfig(json: unknown): TransparentDecoderConfig {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new TransparentDecoderConfigError('transparent decoder config: expected a JSON object');
  const c = json as Record<string, unknown>;
  const fail = (msg: string): never => {
    throw new TransparentDecoderConfigError(`transparent decoder config: ${msg}`);
  };
  const archName = c.arch ?? 'vit-b/32';
  if (typeof archName !== 'string' || !(archName in ARCHS)) fail(`unknown arch ${JSON.stringify(c.arch)} (known: ${Object.keys(ARCHS).join(', ')})`);
  const arch = ARCHS[archName as string];
  const posInt = (key: string, dflt: number): number => {
    const v = c[key] ?? dflt;
    if (!isPosInt(v)) fail(`"${key}" must be a positive integer, got ${JSON.stringify(c[key])}`);
    return v as number;
  };
  const pair = (key: string, dflt: [number, number]): [number, number] => {
    const v = c[key] ?? dflt;
    if (!Array.isArray(v) || v.length !== 2 || !v.every(isPosInt)) fail(`"${key}" must be [in, out] positive integers, got ${JSON.stringify(c[key])}`);
    return v as [number, number];
  };
  const hidden = posInt('hidden', arch.hidden);
  const heads = posInt('heads', arch.heads);
  const layers = posInt('layers', arch.layers);
  const mlp = posInt('mlp', 4 * hidden);
  const [inChannels, fcInOut] = pair('fc_in', [LATENT_CHANNELS, hidden]);
  const [fcOutIn, patchValues] = pair('fc_out', [hidden, PATCH_CHANNELS * PATCH_PIXELS]);
  const ropeAxes = c.rope_axes ?? [8, 28, 28];
  if (!Array.isArray(ropeAxes) || ropeAxes.length !== 3 || !ropeAxes.every((d) => isPosInt(d) && d % 2 === 0)) {
    fail(`"rope_axes" must be three positive even sizes for (layer, y, x), got ${JSON.stringify(c.rope_axes)}`);
  }
  const ropeTheta = c.rope_theta ?? 10000;
  if (typeof ropeTheta !== 'number' || !(ropeTheta > 0)) fail(`"rope_theta" must be a positive number, got ${JSON.stringify(c.rope_theta)}`);
  if (hidden % heads !== 0) fail(`hidden ${hidden} is not divisible by heads ${heads}`);
  const axesSum = (ropeAxes as number[]).reduce((a, b) => a + b, 0);
  if (axesSum !== hidden / heads) fail(`rope_axes [${ropeAxes}] sum to ${axesSum} but the head size is ${hidden / heads}`);
  if (fcInOut !== hidden || fcOutIn !== hidden) fail(`fc_in [${inChannels}, ${fcInOut}] and fc_out [${fcOutIn}, ${patchValues}] must meet the hidden width ${hidden}`);
  if (inChannels !== LATENT_CHANNELS) fail(`fc_in takes ${inChannels} channels but the VAE latent has ${LATENT_CHANNELS}`);
  if (patchValues !== PATCH_CHANNELS * PATCH_PIXELS) fail(`fc_out gives ${patchValues} values per token but RGBA 8x8 patches need ${PATCH_CHANNELS * PATCH_PIXELS}`);
  return { hidden, layers, heads, mlp, inChannels, patchValues, ropeAxes: ropeAxes as number[], ropeTheta: ropeTheta as number };
}

/** Rows `[from, to)` of a `[rows, cols]` matrix, transposed to `[cols, to - from]` (for MatMul). */
function rowsTransposed(data: Float32Array, cols: number, from: number, to: number): Float32Array {
  return transpose2d(data.subarray(from * cols, to * cols), to - from, cols);
}

function encoderBlock(g: GraphBuilder, h: Value, prefix: string, cfg: TransparentDecoderConfig, cos: Value, sin: Value): Value {
  const D = cfg.hidden;
  const headDim = D / cfg.heads;
  const attn = `${prefix}.self_attention`;
  const inW = { [`${attn}.in_proj_weight`]: [3 * D, D] };
  const inB = { [`${attn}.in_proj_bias`]: [3 * D] };
  const x = layerNorm(g, h, D, LN_EPS, `${prefix}.ln_1`);
  const rotated = reshape(g, ropeInterleaved(g, reshape(g, x, [0, 0, cfg.heads, headDim]), cos, sin, cfg.heads, headDim), [0, 0, D]);
  // q and k both project the rotated input: one MatMul over the first 2D rows of in_proj_weight.
  const wQk = g.derivedWeight(`${attn}.in_proj_weight.qk.T`, [D, 2 * D], inW, (read) => rowsTransposed(read(`${attn}.in_proj_weight`), D, 0, 2 * D));
  const bQk = g.derivedWeight(`${attn}.in_proj_bias.qk`, [2 * D], inB, (read) => read(`${attn}.in_proj_bias`).slice(0, 2 * D));
  const wV = g.derivedWeight(`${attn}.in_proj_weight.v.T`, [D, D], inW, (read) => rowsTransposed(read(`${attn}.in_proj_weight`), D, 2 * D, 3 * D));
  const bV = g.derivedWeight(`${attn}.in_proj_bias.v`, [D], inB, (read) => read(`${attn}.in_proj_bias`).slice(2 * D));
  const [q, k] = split(g, g.op('Add', [g.op('MatMul', [rotated, wQk]), bQk]), 2, [D, D]);
  const v = g.op('Add', [g.op('MatMul', [x, wV]), bV]);
  const a = linear(g, attention(g, q, k, v, cfg.heads, { headDim }), `${attn}.out_proj`, D, D);
  const h1 = g.op('Add', [h, a]);
  const y = layerNorm(g, h1, D, LN_EPS, `${prefix}.ln_2`);
  const m = linear(g, gelu(g, linear(g, y, `${prefix}.mlp.0`, D, cfg.mlp)), `${prefix}.mlp.3`, cfg.mlp, D);
  return g.op('Add', [h1, m]);
}

/**
 * Graph: inputs `tokens [1, M, 16]` (latent cells inside the boxes), `rope_cos`, `rope_sin
 * [M, head size]`; output `patches [1, M, 256]` (the `fc_out` output, before unpatchify).
 */
export function buildTransparentDecoder(cfg: TransparentDecoderConfig, weights: WeightSource, precision: Precision): GraphBuilder {
  const g = new GraphBuilder('transparent_decoder', precision, weights);
  const headDim = cfg.hidden / cfg.heads;
  const tokens = g.input('tokens', 'float', [1, 'M', cfg.inChannels]);
  const cosIn = g.input('rope_cos', 'float', ['M', headDim]);
  const sinIn = g.input('rope_sin', 'float', ['M', headDim]);
  // [M, 1, d]: broadcast over the heads of [1, M, heads, d].
  const cos = unsqueeze(g, cosIn, [1]);
  const sin = unsqueeze(g, sinIn, [1]);
  let h = linear(g, tokens, 'decoder.fc_in', cfg.inChannels, cfg.hidden);
  for (let i = 0; i < cfg.layers; i++) h = encoderBlock(g, h, `decoder.encoder.layers.encoder_layer_${i}`, cfg, cos, sin);
  h = layerNorm(g, h, cfg.hidden, LN_EPS, 'decoder.encoder.ln');
  const patches = linear(g, h, 'decoder.fc_out', cfg.hidden, cfg.patchValues);
  g.output(patches, 'patches', 'float', [1, 'M', cfg.patchValues]);
  return g;
}

// ---------------------------------------------------------------------------------------------
// Patches -> pixels. Tokens are the 8x8-pixel cells of each box (`box // 8`), layer by layer,
// row-major; a token's 256 values are channel-major (`c * 64 + py * 8 + px`), channels R, G, B, alpha.

/** Latent cells of one box, in cell units. */
function cells(box: BoxTuple, index: number): { x1: number; y1: number; cols: number; rows: number } {
  if (box.some((v) => v % VAE_FACTOR !== 0)) throw new RangeError(`box ${index} [${box}] is not on the ${VAE_FACTOR}-pixel latent grid`);
  const [x1, y1, x2, y2] = box.map((v) => v / VAE_FACTOR);
  return { x1, y1, cols: x2 - x1, rows: y2 - y1 };
}

/** Number of transparent-decoder tokens a layout has (cells inside every box). */
export function transparentTokenCount(layout: Layout): number {
  return layout.boxes.reduce((n, box, i) => {
    const c = cells(box, i);
    return n + c.cols * c.rows;
  }, 0);
}

function checkPatches(patches: ArrayLike<number>, layout: Layout): void {
  const expected = transparentTokenCount(layout) * PATCH_CHANNELS * PATCH_PIXELS;
  if (patches.length !== expected) {
    throw new RangeError(`patches hold ${patches.length} values but this layout has ${expected / (PATCH_CHANNELS * PATCH_PIXELS)} tokens of ${PATCH_CHANNELS * PATCH_PIXELS} (${expected}); was the graph run on this layout's tokens?`);
  }
}

/**
 * Calls `visit(layer, channel, x, y, value)` for every pixel value inside every box (canvas
 * coordinates). One pass over the patches, in their order.
 */
function forEachPixel(patches: ArrayLike<number>, layout: Layout, visit: (layer: number, c: number, x: number, y: number, v: number) => void): void {
  checkPatches(patches, layout);
  let t = 0;
  layout.boxes.forEach((box, layer) => {
    const { x1, y1, cols, rows } = cells(box, layer);
    for (let cy = 0; cy < rows; cy++) {
      for (let cx = 0; cx < cols; cx++, t++) {
        const base = t * PATCH_CHANNELS * PATCH_PIXELS;
        for (let c = 0; c < PATCH_CHANNELS; c++) {
          for (let py = 0; py < VAE_FACTOR; py++) {
            const y = (y1 + cy) * VAE_FACTOR + py;
            for (let px = 0; px < VAE_FACTOR; px++) {
              visit(layer, c, (x1 + cx) * VAE_FACTOR + px, y, patches[base + c * PATCH_PIXELS + py * VAE_FACTOR + px]);
            }
          }
        }
      }
    }
  });
}

/**
 * The official decoder's float output: `fg [L, 3, H, W]` and `alpha [L, 1, H, W]`, raw (about
 * [-1, 1]); outside a layer's box rgb 0 and alpha -1. Whole canvases: for checks and small sizes.
 */
export function unpatchify(patches: ArrayLike<number>, layout: Layout): { fg: Float32Array; alpha: Float32Array } {
  const { width: W, height: H } = layout;
  const L = layout.boxes.length;
  const plane = W * H;
  const fg = new Float32Array(L * 3 * plane);
  const alpha = new Float32Array(L * plane).fill(-1);
  forEachPixel(patches, layout, (layer, c, x, y, v) => {
    if (c < 3) fg[(layer * 3 + c) * plane + y * W + x] = v;
    else alpha[layer * plane + y * W + x] = v;
  });
  return { fg, alpha };
}

/** `clamp((x + 1) / 2, 0, 1) * 255`, truncated, in float32 steps as the reference computes it. */
export function toLevel(x: number): number {
  const v = Math.min(Math.max(Math.fround(Math.fround(x + 1) / 2), 0), 1);
  return Math.trunc(Math.fround(v * 255));
}

/** A raw value outside every box: rgb 0 and alpha -1, i.e. (127, 127, 127, 0). */
const OUTSIDE = [toLevel(0), toLevel(0), toLevel(0), toLevel(-1)];

/**
 * Per-layer RGBA of the whole canvas, `[L, H, W, 4]` uint8, exactly as the official pipeline
 * builds it (outside a layer's box: rgb 0, alpha -1, so (127, 127, 127, 0)).
 */
export function patchesToRgba(patches: ArrayLike<number>, layout: Layout): Uint8Array {
  const { width: W, height: H } = layout;
  const out = new Uint8Array(layout.boxes.length * W * H * 4);
  for (let i = 0; i < out.length; i++) out[i] = OUTSIDE[i % 4];
  forEachPixel(patches, layout, (layer, c, x, y, v) => {
    out[((layer * H + y) * W + x) * 4 + c] = toLevel(v);
  });
  return out;
}

/** Per-layer RGBA cropped to each layer's box (what the pipeline returns); same values as `patchesToRgba`. */
export function patchesToLayerImages(patches: ArrayLike<number>, layout: Layout): LayerImage[] {
  const images: LayerImage[] = layout.boxes.map((box, index) => {
    const width = box[2] - box[0];
    const height = box[3] - box[1];
    return { index, box: [...box] as BoxTuple, width, height, rgba: new Uint8Array(width * height * 4) };
  });
  forEachPixel(patches, layout, (layer, c, x, y, v) => {
    const img = images[layer];
    img.rgba[((y - img.box[1]) * img.width + (x - img.box[0])) * 4 + c] = toLevel(v);
  });
  return images;
}
