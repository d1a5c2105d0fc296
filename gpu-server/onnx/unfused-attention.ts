/**
 * A written model's `com.microsoft.MultiHeadAttention` nodes restated as MatMul + Softmax + MatMul,
 * for WebGPU adapters whose fused attention is wrong (see `webgpu-probe.ts` and docs/webgpu.md:
 * onnxruntime 1.30's one-kernel WebGPU attention, taken from 32 query tokens on, assumes subgroups
 * of at least 8 lanes; SwiftShader's have 4). The restated form holds the full `[B, H, S, L]` score
 * matrix, so it is only used where the probe found the fused kernel wrong, never on CPU or CUDA.
 */
import onnxProto from 'onnx-proto';
import { float32ToHalves } from './half.ts';

const { onnx } = onnxProto;
type NodeProto = onnxProto.onnx.INodeProto;
type TensorProto = onnxProto.onnx.ITensorProto;
const T = onnx.TensorProto.DataType;

export class UnfuseError extends Error {
  override name = 'UnfuseError';
}

/** Rewrites every MultiHeadAttention node of the model in `bytes`; `where` names the model in errors. */
export function unfuseAttention(bytes: Uint8Array, where: string): { bytes: Uint8Array; rewritten: number } {
  const model = onnx.ModelProto.decode(bytes);
  const graph = model.graph;
  if (!graph) throw new UnfuseError(`${where}: not an ONNX model (no graph)`);
  // The graph's working float type: fp16 graphs keep fp16 weights (scores must be scaled in that type).
  const half = (graph.initializer ?? []).some((t) => t.dataType === T.FLOAT16);
  const nodes: NodeProto[] = [];
  const added: TensorProto[] = [];
  let rewritten = 0;
  for (const n of graph.node ?? []) {
    if (n.opType !== 'MultiHeadAttention' || n.domain !== 'com.microsoft') {
      nodes.push(n);
      continue;
    }
    const { nodes: replacement, constants } = restate(n, half, `${where}: node ${n.name}`);
    nodes.push(...replacement);
    added.push(...constants);
    rewritten++;
  }
  if (rewritten === 0) return { bytes, rewritten };
  graph.node = nodes;
  graph.initializer = [...(graph.initializer ?? []), ...added];
  return { bytes: onnx.ModelProto.encode(model).finish(), rewritten };
}

function restate(n: NodeProto, half: boolean, where: string): { nodes: NodeProto[]; constants: TensorProto[] } {
  const inputs = n.input ?? [];
  const attr = (name: string) => (n.attribute ?? []).find((a) => a.name === name);
  const heads = Number(attr('num_heads')?.i ?? 0);
  const scale = attr('scale')?.f ?? 0;
  if (!heads) throw new UnfuseError(`${where}: MultiHeadAttention without num_heads`);
  if (!scale) throw new UnfuseError(`${where}: MultiHeadAttention without an explicit scale (a model folder written before the scale was recorded); rebuild it (npm run convert or npm run tiny) to run it on this WebGPU adapter, or use --provider cpu`);
  if (Number(attr('unidirectional')?.i ?? 0) !== 0) throw new UnfuseError(`${where}: unidirectional MultiHeadAttention is not restated`);
  const unsupported = [3, 4, 6, 7].filter((i) => inputs[i]);
  if (unsupported.length || (n.output ?? []).slice(1).some(Boolean)) throw new UnfuseError(`${where}: only q, k, v and attention_bias inputs and one output are restated (has inputs ${unsupported.join(', ')})`);
  const [q, k, v] = inputs;
  const bias = inputs[5];
  const out = n.output![0];

  const id = `${n.name}_unfused`;
  const constants: TensorProto[] = [
    { name: `${id}_split_heads`, dims: [4], dataType: T.INT64, int64Data: [0, 0, heads, -1] },
    { name: `${id}_join_heads`, dims: [3], dataType: T.INT64, int64Data: [0, 0, -1] },
    half
      ? { name: `${id}_scale`, dims: [], dataType: T.FLOAT16, rawData: new Uint8Array(float32ToHalves(Float32Array.of(scale)).buffer) }
      : { name: `${id}_scale`, dims: [], dataType: T.FLOAT, floatData: [scale] },
  ];
  const nodes: NodeProto[] = [];
  const op = (opType: string, input: string[], suffix: string, perm?: number[], axis?: number): string => {
    const output = `${id}_${suffix}`;
    const attribute: onnxProto.onnx.IAttributeProto[] = [];
    if (perm) attribute.push({ name: 'perm', type: onnx.AttributeProto.AttributeType.INTS, ints: perm });
    if (axis !== undefined) attribute.push({ name: 'axis', type: onnx.AttributeProto.AttributeType.INT, i: axis });
    nodes.push({ opType, domain: '', name: output, input, output: [output], attribute });
    return output;
  };
  const heads4d = (x: string, name: string, perm: number[]) => op('Transpose', [op('Reshape', [x, `${id}_split_heads`], `${name}_4d`)], `${name}_t`, perm);
  const qh = heads4d(q, 'q', [0, 2, 1, 3]); // [B, H, S, d]
  const kt = heads4d(k, 'k', [0, 2, 3, 1]); // [B, H, d, L]
  const vh = heads4d(v, 'v', [0, 2, 1, 3]); // [B, H, L, d]
  // Scaled after the product, as the fused kernels do (alpha of the QK^T GEMM).
  let scores = op('Mul', [op('MatMul', [qh, kt], 'qk'), `${id}_scale`], 'scores');
  if (bias) scores = op('Add', [scores, bias], 'biased');
  const probs = op('Softmax', [scores], 'probs', undefined, -1);
  const o = op('Transpose', [op('MatMul', [probs, vh], 'o')], 'o_t', [0, 2, 1, 3]);
  nodes.push({ opType: 'Reshape', domain: '', name: `${id}_out`, input: [o, `${id}_join_heads`], output: [out], attribute: [] });
  return { nodes, constants };
}
