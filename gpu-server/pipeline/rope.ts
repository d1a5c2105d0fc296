/**
 * RoPE tables as the official code builds them (diffusers `FluxPosEmbed`): per axis of size d,
 * frequencies `theta^(-2i/d)`, angle `position * frequency` in float64, cos and sin each
 * repeated twice (interleaved pairs), axes concatenated, cast to float32 at the end. The graphs
 * take these tables as inputs, so positions never enter a graph.
 */

export interface RopeTables {
  /** [rows, sum(axes)] each, float32. */
  cos: Float32Array;
  sin: Float32Array;
  rows: number;
  dim: number;
}

/**
 * Tables for `leadingZeros` all-zero ids (the text tokens, which come first in the joint
 * sequence) followed by `ids` ([n * axes.length], e.g. `(layer, y, x)` per token).
 */
export function ropeTables(ids: ArrayLike<number>, axes: readonly number[], leadingZeros = 0, theta = 10000): RopeTables {
  const nAxes = axes.length;
  if (ids.length % nAxes !== 0) throw new RangeError(`rope ids: ${ids.length} values is not a multiple of ${nAxes} axes`);
  if (axes.some((d) => d <= 0 || d % 2 !== 0)) throw new RangeError(`rope axes must be positive and even, got [${axes}]`);
  const dim = axes.reduce((a, b) => a + b, 0);
  const rows = leadingZeros + ids.length / nAxes;
  const cos = new Float32Array(rows * dim);
  const sin = new Float32Array(rows * dim);
  // Frequencies per axis, float64 as the reference computes them on CPU.
  const freqs = axes.map((d) => Array.from({ length: d / 2 }, (_, i) => 1 / Math.pow(theta, (2 * i) / d)));
  for (let r = 0; r < rows; r++) {
    let col = r * dim;
    for (let a = 0; a < nAxes; a++) {
      // Positions are float32 in the reference (`ids.float()`); our ids are small integers, exact either way.
      const pos = r < leadingZeros ? 0 : Math.fround(ids[(r - leadingZeros) * nAxes + a]);
      for (const f of freqs[a]) {
        const angle = pos * f;
        const c = Math.cos(angle), s = Math.sin(angle);
        cos[col] = c; cos[col + 1] = c;
        sin[col] = s; sin[col + 1] = s;
        col += 2;
      }
    }
  }
  return { cos, sin, rows, dim };
}
