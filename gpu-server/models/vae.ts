/**
 * The FLUX VAE (diffusers `AutoencoderKL`) as two ONNX graphs: the decoder (latents -> image) and
 * the encoder (image -> mean and log-variance of the latent distribution, nothing sampled). Both
 * read the official state_dict names (`encoder.*`, `decoder.*`) of `vae/diffusion_pytorch_model.safetensors`.
 *
 * Ops: Conv; group norm as Reshape, ReduceMean, Sub, Mul, Add, Sqrt, Div (see `nn-conv.ts`); Sigmoid
 * and Mul (SiLU); Resize (nearest 2x); Transpose, MatMul, com.microsoft.MultiHeadAttention
 * (mid-block attention); Split and Clip (encoder head). fp16 graphs Cast around the group norm.
 */
import { type Value, type WeightSource, GraphBuilder } from '../onnx/graph.ts';
import { attention, linear, silu, split, transpose } from '../onnx/nn.ts';
import { conv2d, groupNorm, upsampleNearest2x } from '../onnx/nn-conv.ts';

/** fp32 (CPU, tests) or fp16 (GPU); weights are converted as the graph is written. */
export type Precision = GraphBuilder['float'];

export interface VaeConfig {
  inChannels: number;
  outChannels: number;
  /** Channels of each resolution level, finest first (FLUX: 128, 256, 512, 512). */
  blockOutChannels: number[];
  /** Resnets per encoder level (the decoder has one more per level). */
  layersPerBlock: number;
  latentChannels: number;
  normNumGroups: number;
  scalingFactor: number;
  shiftFactor: number;
  midBlockAddAttention: boolean;
}

export class VaeConfigError extends Error {
  override name = 'VaeConfigError';
}

/** diffusers' fixed epsilon for every norm of AutoencoderKL. */
const EPS = 1e-6;
/** `DiagonalGaussianDistribution` clamps the log-variance to this range. */
const LOGVAR_MIN = -30;
const LOGVAR_MAX = 20;

const isPosInt = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v) && v > 0;

/** Reads diffusers' `vae/config.json`; rejects settings this graph does not implement. */
export function parseVaeConfig(json: unknown): VaeConfig {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new VaeConfigError('vae config: expected a JSON object (vae/config.json)');
  const c = json as Record<string, unknown>;
  const fail = (msg: string): never => {
    throw new VaeConfigError(`vae config: ${msg}`);
  };
  const posInt = (key: string, dflt?: number): number => {
    const v = c[key] ?? dflt;
    if (!isPosInt(v)) fail(`"${key}" must be a positive integer, got ${JSON.stringify(c[key])}`);
    return v as number;
  };
  const num = (key: string, dflt?: number): number => {
    const v = c[key] ?? dflt;
    if (typeof v !== 'number' || !Number.isFinite(v)) fail(`"${key}" must be a number, got ${JSON.stringify(c[key])}`);
    return v as number;
  };
  const blocks = c.block_out_channels;
  if (!Array.isArray(blocks) || blocks.length === 0 || !blocks.every(isPosInt)) fail(`"block_out_channels" must be a non-empty list of positive integers, got ${JSON.stringify(blocks)}`);
  const blockOutChannels = blocks as number[];
  const normNumGroups = posInt('norm_num_groups', 32);
  for (const ch of blockOutChannels) if (ch % normNumGroups !== 0) fail(`block channels ${ch} are not divisible by norm_num_groups ${normNumGroups}`);
  const down = c.down_block_types ?? blockOutChannels.map(() => 'DownEncoderBlock2D');
  const up = c.up_block_types ?? blockOutChannels.map(() => 'UpDecoderBlock2D');
  if (!Array.isArray(down) || down.length !== blockOutChannels.length || down.some((t) => t !== 'DownEncoderBlock2D')) {
    fail(`only DownEncoderBlock2D down blocks, one per block_out_channels entry, are supported; got ${JSON.stringify(down)}`);
  }
  if (!Array.isArray(up) || up.length !== blockOutChannels.length || up.some((t) => t !== 'UpDecoderBlock2D')) {
    fail(`only UpDecoderBlock2D up blocks, one per block_out_channels entry, are supported; got ${JSON.stringify(up)}`);
  }
  if ((c.act_fn ?? 'silu') !== 'silu') fail(`act_fn ${JSON.stringify(c.act_fn)} is not supported (only "silu")`);
  if (c.use_quant_conv === true || c.use_post_quant_conv === true) {
    fail('quant_conv/post_quant_conv are not supported (the FLUX VAE has none); set use_quant_conv and use_post_quant_conv to false or use the FLUX.1 vae/');
  }
  if (c.use_quant_conv === undefined || c.use_post_quant_conv === undefined) {
    // diffusers defaults both to true: a config without them describes an SD-style VAE.
    fail('use_quant_conv and use_post_quant_conv must be present and false (diffusers defaults them to true, which this graph does not implement)');
  }
  if (c.latents_mean != null || c.latents_std != null) fail('latents_mean/latents_std are not supported (FLUX uses scaling_factor and shift_factor)');
  const midAttn = c.mid_block_add_attention ?? true;
  if (typeof midAttn !== 'boolean') fail(`"mid_block_add_attention" must be a boolean`);
  return {
    inChannels: posInt('in_channels', 3),
    outChannels: posInt('out_channels', 3),
    blockOutChannels,
    layersPerBlock: posInt('layers_per_block', 1),
    latentChannels: posInt('latent_channels', 4),
    normNumGroups,
    scalingFactor: num('scaling_factor'),
    shiftFactor: num('shift_factor', 0),
    midBlockAddAttention: midAttn as boolean,
  };
}

/** diffusers `ResnetBlock2D` (no time embedding): norm, SiLU, conv, norm, SiLU, conv, plus shortcut. */
function resnet(g: GraphBuilder, x: Value, prefix: string, cin: number, cout: number, groups: number): Value {
  let h = silu(g, groupNorm(g, x, `${prefix}.norm1`, cin, groups, EPS));
  h = conv2d(g, h, `${prefix}.conv1`, cin, cout, 3);
  h = silu(g, groupNorm(g, h, `${prefix}.norm2`, cout, groups, EPS));
  h = conv2d(g, h, `${prefix}.conv2`, cout, cout, 3);
  const shortcut = cin === cout ? x : conv2d(g, x, `${prefix}.conv_shortcut`, cin, cout, 1);
  return g.op('Add', [shortcut, h]);
}

/** diffusers `Attention` of the mid block: one head over all pixels, group norm first, residual. */
function spatialAttention(g: GraphBuilder, x: Value, prefix: string, ch: number, groups: number): Value {
  const shape = g.op('Shape', [x]);
  const normed = groupNorm(g, x, `${prefix}.group_norm`, ch, groups, EPS);
  const seq = transpose(g, g.op('Reshape', [normed, g.i64([0, ch, -1])]), [0, 2, 1]); // [B, HW, C]
  const q = linear(g, seq, `${prefix}.to_q`, ch, ch);
  const k = linear(g, seq, `${prefix}.to_k`, ch, ch);
  const v = linear(g, seq, `${prefix}.to_v`, ch, ch);
  const attn = linear(g, attention(g, q, k, v, 1, { headDim: ch }), `${prefix}.to_out.0`, ch, ch);
  const back = g.op('Reshape', [transpose(g, attn, [0, 2, 1]), shape]);
  return g.op('Add', [back, x]);
}

/** diffusers `UNetMidBlock2D` as AutoencoderKL uses it: resnet, attention, resnet. */
function midBlock(g: GraphBuilder, x: Value, prefix: string, config: VaeConfig): Value {
  const ch = config.blockOutChannels[config.blockOutChannels.length - 1];
  const groups = config.normNumGroups;
  let h = resnet(g, x, `${prefix}.resnets.0`, ch, ch, groups);
  if (config.midBlockAddAttention) h = spatialAttention(g, h, `${prefix}.attentions.0`, ch, groups);
  return resnet(g, h, `${prefix}.resnets.1`, ch, ch, groups);
}

/** Final group norm, SiLU and conv of both halves. */
function head(g: GraphBuilder, x: Value, prefix: string, cin: number, cout: number, groups: number): Value {
  const h = silu(g, groupNorm(g, x, `${prefix}.conv_norm_out`, cin, groups, EPS));
  return conv2d(g, h, `${prefix}.conv_out`, cin, cout, 3);
}

/**
 * Decoder graph: input `latents [B, latent_channels, h, w]`, already unscaled by the caller
 * (`latents / scaling_factor + shift_factor`); output `image [B, out_channels, 8h, 8w]`, raw (about [-1, 1]).
 */
export function buildVaeDecoder(config: VaeConfig, weights: WeightSource, precision: Precision): GraphBuilder {
  const g = new GraphBuilder('vae_decoder', precision, weights);
  const chans = config.blockOutChannels;
  const groups = config.normNumGroups;
  const top = chans[chans.length - 1];
  const latents = g.input('latents', 'float', ['B', config.latentChannels, 'h', 'w']);
  let h = conv2d(g, latents, 'decoder.conv_in', config.latentChannels, top, 3);
  h = midBlock(g, h, 'decoder.mid_block', config);
  const reversed = [...chans].reverse();
  let cin = top;
  reversed.forEach((cout, i) => {
    for (let r = 0; r <= config.layersPerBlock; r++) {
      h = resnet(g, h, `decoder.up_blocks.${i}.resnets.${r}`, r === 0 ? cin : cout, cout, groups);
    }
    if (i < reversed.length - 1) h = conv2d(g, upsampleNearest2x(g, h), `decoder.up_blocks.${i}.upsamplers.0.conv`, cout, cout, 3);
    cin = cout;
  });
  h = head(g, h, 'decoder', chans[0], config.outChannels, groups);
  g.output(h, 'image', 'float', ['B', config.outChannels, 'H', 'W']);
  return g;
}

/**
 * Encoder graph: input `image [B, in_channels, H, W]` in [-1, 1] (H, W multiples of the spatial
 * factor); outputs `mean` and `logvar` `[B, latent_channels, H/8, W/8]` (logvar clamped to
 * [-30, 20] as the official distribution does). Nothing is sampled: the grey latent uses the mean.
 */
export function buildVaeEncoder(config: VaeConfig, weights: WeightSource, precision: Precision): GraphBuilder {
  const g = new GraphBuilder('vae_encoder', precision, weights);
  const chans = config.blockOutChannels;
  const groups = config.normNumGroups;
  const image = g.input('image', 'float', ['B', config.inChannels, 'H', 'W']);
  let h = conv2d(g, image, 'encoder.conv_in', config.inChannels, chans[0], 3);
  let cin = chans[0];
  chans.forEach((cout, i) => {
    for (let r = 0; r < config.layersPerBlock; r++) {
      h = resnet(g, h, `encoder.down_blocks.${i}.resnets.${r}`, r === 0 ? cin : cout, cout, groups);
    }
    // diffusers' Downsample2D pads right and bottom by one, then a stride-2 conv without padding.
    if (i < chans.length - 1) h = conv2d(g, h, `encoder.down_blocks.${i}.downsamplers.0.conv`, cout, cout, 3, { stride: 2, pads: [0, 0, 1, 1] });
    cin = cout;
  });
  h = midBlock(g, h, 'encoder.mid_block', config);
  h = head(g, h, 'encoder', chans[chans.length - 1], 2 * config.latentChannels, groups);
  const [mean, rawLogvar] = split(g, h, 1, [config.latentChannels, config.latentChannels]);
  const logvar = g.op('Clip', [rawLogvar, g.scalar(LOGVAR_MIN), g.scalar(LOGVAR_MAX)]);
  const latentDims = ['B', config.latentChannels, 'h', 'w'];
  g.output(mean, 'mean', 'float', latentDims);
  g.output(logvar, 'logvar', 'float', latentDims);
  return g;
}
