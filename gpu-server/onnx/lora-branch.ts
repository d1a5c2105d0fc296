/**
 * A LoRA kept beside the weights it changes instead of fused into them: `y = W x + b + B (A x)`
 * with the low-rank path switched on or off per run. Two jobs that differ only by a LoRA then
 * share one copy of the base weights (the 24 GB transformer) and the LoRA costs `rank * (in + out)`
 * values per Linear. The switch (a [1] int64 graph input, 0 or 1) cuts the rank to `rank * on`:
 * off, the path multiplies through an empty rank (no work but one add of zeros); on, it is
 * `B (A x)` exactly as peft computes an unfused adapter.
 */
import { GraphError, transpose2d, type GraphBuilder, type Value } from './graph.ts';
import { float32ToHalves } from './half.ts';

/** One Linear's low-rank update (model-folder/lora.ts's LoraUpdate has this shape). */
export interface LowRankUpdate {
  rank: number;
  inFeatures: number;
  rows: number;
  /** A `[rank, in]`, row-major. */
  down: Float32Array;
  /** B `[rows, rank]`, row-major. */
  up: Float32Array;
  /** Multiplies B (`lora_scale * alpha / rank`). */
  scale: number;
}

export interface LoraBranch {
  /** The switch: an int64 `[1]` value, 0 (off) or 1 (on). */
  on: Value;
  /** Updates by the weight key they change (`transformer_blocks.0.attn.to_q.weight`). */
  updates: ReadonlyMap<string, readonly LowRankUpdate[]>;
  /** Keys a Linear picked up (a key left over was never applied: the builder says so). */
  readonly applied: Set<string>;
}

/** `[rank, out]`: B transposed with its scale folded in, so the graph multiplies by nothing else. */
function scaledUpT(u: LowRankUpdate): Float32Array {
  const t = transpose2d(u.up, u.rows, u.rank);
  if (u.scale !== 1) for (let i = 0; i < t.length; i++) t[i] = Math.fround(t[i] * u.scale);
  return t;
}

const branches = new WeakMap<GraphBuilder, LoraBranch>();

/** Every Linear `nn.linear` builds in `g` from now on gets the branch's update for its weight, if any. */
export function attachLoraBranch(g: GraphBuilder, branch: LoraBranch): void {
  if (branches.has(g)) throw new GraphError(`graph ${g.name} already has a LoRA branch`);
  branches.set(g, branch);
}

/** `y + B (A x)` for the Linear whose weight is `key`, when the graph's branch has an update for it. */
export function withLoraBranch(g: GraphBuilder, x: Value, y: Value, key: string): Value {
  const branch = branches.get(g);
  const updates = branch?.updates.get(key);
  if (!branch || !updates) return y;
  branch.applied.add(key);
  let out = y;
  updates.forEach((u, i) => {
    const cast = (data: Float32Array) => (g.float === 'float16' ? float32ToHalves(data) : data);
    const downT = g.rawInitializer(`${key}.lora_branch.${i}.down_t`, g.float, [u.inFeatures, u.rank], () => cast(transpose2d(u.down, u.rank, u.inFeatures)));
    const upT = g.rawInitializer(`${key}.lora_branch.${i}.up_t`, g.float, [u.rank, u.rows], () => cast(scaledUpT(u)));
    // rank * on: the whole rank when on, an empty one when off.
    const rank = g.op('Mul', [g.i64([u.rank]), branch.on]);
    const a = g.op('Slice', [downT, g.i64([0]), rank, g.i64([1])]);
    const b = g.op('Slice', [upT, g.i64([0]), rank, g.i64([0])]);
    out = g.op('Add', [out, g.op('MatMul', [g.op('MatMul', [x, a]), b])]);
  });
  return out;
}

/** Throws when some update found no Linear (its LoRA would be silently lost). */
export function checkBranchApplied(branch: LoraBranch, where: string): void {
  const missed = [...branch.updates.keys()].filter((k) => !branch.applied.has(k));
  if (missed.length > 0) throw new GraphError(`${where}: the LoRA kept beside the weights changes ${missed.slice(0, 3).join(', ')}${missed.length > 3 ? ` (${missed.length} in all)` : ''}, which no Linear of this graph uses`);
}
