/**
 * Convolutional layer helpers (NCHW) for the image models: conv, group norm, nearest upsampling.
 * Same conventions as `nn.ts`: plain Values in, checkpoint key prefixes for weights.
 */
import { type GraphBuilder, type Value, float, int, ints, str } from './graph.ts';

/** ONNX TensorProto data types used by Cast. */
const FLOAT32 = 1;
const FLOAT16 = 10;

/**
 * torch `nn.Conv2d` under `prefix` (`prefix.weight [out,in,k,k]`, `prefix.bias [out]`).
 * `pads` is ONNX order `[top, left, bottom, right]`; defaults to "same" padding for odd kernels.
 */
export function conv2d(
  g: GraphBuilder,
  x: Value,
  prefix: string,
  inChannels: number,
  outChannels: number,
  kernel: number,
  opts: { stride?: number; pads?: [number, number, number, number] } = {},
): Value {
  const p = (kernel - 1) / 2;
  const pads = opts.pads ?? [p, p, p, p];
  const stride = opts.stride ?? 1;
  const w = g.weight(`${prefix}.weight`, [outChannels, inChannels, kernel, kernel]);
  const b = g.weight(`${prefix}.bias`, [outChannels]);
  return g.op('Conv', [x, w, b], { kernel_shape: ints([kernel, kernel]), pads: ints(pads), strides: ints([stride, stride]) });
}

/**
 * torch `nn.GroupNorm(groups, channels, eps)` with affine weights under `prefix`, on `[B, C, H, W]`.
 * Written out with two-level reductions (over W, then over the group's rows), and the mean refined
 * by a second pass over the centred values: one float32 reduction over a whole group (up to
 * millions of values) was off by about 1e-4 on near-constant inputs such as the encoder's zero
 * image (torch's cascade sums are not), and a single refined pass still by 3e-6 there. The
 * variance is taken from the centred values (no E[x^2] - E[x]^2). fp16 graphs compute the
 * statistics in fp32, so squares of large activations cannot overflow.
 */
export function groupNorm(g: GraphBuilder, x: Value, prefix: string, channels: number, groups: number, eps: number): Value {
  if (channels % groups !== 0) throw new RangeError(`group norm ${prefix}: ${channels} channels are not divisible into ${groups} groups`);
  const half = g.float === 'float16';
  const shape = g.op('Shape', [x]);
  const xf = half ? g.op('Cast', [x], { to: int(FLOAT32) }) : x;
  // [B, groups, C/groups * H, W]: a Reshape 0 keeps W as it is.
  const grouped = g.op('Reshape', [xf, g.i64([0, groups, -1, 0])]);
  const mean2 = (v: Value): Value => {
    const rows = g.op('ReduceMean', [v, g.i64([3])], { keepdims: int(1) });
    return g.op('ReduceMean', [rows, g.i64([2])], { keepdims: int(1) });
  };
  const rough = g.op('Sub', [grouped, mean2(grouped)]);
  const centred = g.op('Sub', [rough, mean2(rough)]);
  const variance = mean2(g.op('Mul', [centred, centred]));
  const std = g.op('Sqrt', [g.op('Add', [variance, g.constant([eps], [], 'float32', 'gn_eps')])]);
  let y = g.op('Reshape', [g.op('Div', [centred, std]), shape]);
  if (half) y = g.op('Cast', [y], { to: int(FLOAT16) });
  const scale = g.derivedWeight(`${prefix}.weight.c11`, [channels, 1, 1], { [`${prefix}.weight`]: [channels] }, (read) => read(`${prefix}.weight`));
  const bias = g.derivedWeight(`${prefix}.bias.c11`, [channels, 1, 1], { [`${prefix}.bias`]: [channels] }, (read) => read(`${prefix}.bias`));
  return g.op('Add', [g.op('Mul', [y, scale]), bias]);
}

/** `F.interpolate(x, scale_factor=2, mode="nearest")` on `[B, C, H, W]`. */
export function upsampleNearest2x(g: GraphBuilder, x: Value): Value {
  const scales = g.constant([1, 1, 2, 2], [4], 'float32', 'up_scales');
  return g.op('Resize', [x, null, scales], {
    mode: str('nearest'),
    coordinate_transformation_mode: str('asymmetric'),
    nearest_mode: str('floor'),
  });
}
