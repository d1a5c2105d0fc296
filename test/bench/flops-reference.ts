/** Direct counts of one block's matmul FLOPs (every projection listed), to check bench/flops.ts. */
const mm = (rows: number, k: number, n: number) => 2 * rows * k * n;
const attention = (seq: number, dim: number) => mm(seq, dim, seq) + mm(seq, seq, dim); // QK^T and AV, all heads

/** Double block: per stream (image and text together cover the sequence) q, k, v, out, MLP up (4D) and down. */
export function doubleBlockFlops(seq: number, dim: number): { linear: number; attention: number } {
  return { linear: mm(seq, dim, dim) * 4 + mm(seq, dim, 4 * dim) + mm(seq, 4 * dim, dim), attention: attention(seq, dim) };
}

/** Single block: q, k, v, MLP up (4D), and the output projection from [attention, MLP] (5D) to D. */
export function singleBlockFlops(seq: number, dim: number): { linear: number; attention: number } {
  return { linear: mm(seq, dim, dim) * 3 + mm(seq, dim, 4 * dim) + mm(seq, 5 * dim, dim), attention: attention(seq, dim) };
}
