/**
 * Every node of every graph the project builds, at every precision, has a kernel in onnxruntime's
 * CUDA and WebGPU execution providers for its input types, so no node silently runs on the CPU.
 * The kernel tables are data (test/fixtures/kernels/, each with its source). Checked: the graphs as
 * built (the tiny model's six, and the full-size transformer, VAE and transparent decoder from the
 * official key shapes), and the tiny graphs after onnxruntime's basic optimisations (the
 * provider-independent ones: constant folding, Identity elimination, MatMul+Add -> Gemm, ...), dumped by
 * onnxruntime itself from a CPU session, at fp32 only: for fp16 the CPU session also rewrites the
 * graph around its float-only kernels (Casts, Sum, Pow), which a GPU session would not. The higher
 * levels only fuse into kernels the target provider has.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import onnx from 'onnx-proto';
import ort from 'onnxruntime-node';
import { graphBuilders, graphFloat, writeGraph } from '../../gpu-server/model-folder/graphs.ts';
import { PRECISIONS, type Precision } from '../../gpu-server/model-folder/manifest.ts';
import { tinyComponents } from '../../gpu-server/model-folder/tiny.ts';
import { buildTransformer, parseTransformerConfig } from '../../gpu-server/models/transformer.ts';
import { buildTransparentDecoder, parseTransparentDecoderConfig } from '../../gpu-server/models/transparent-decoder.ts';
import { buildVaeDecoder, buildVaeEncoder, parseVaeConfig } from '../../gpu-server/models/vae.ts';
import { shapeOnlyWeights, type GraphBuilder } from '../../gpu-server/onnx/graph.ts';
import { OPSET } from '../../gpu-server/onnx/onnx-writer.ts';

interface Kernel {
  since: number;
  until: number | null;
  /** Per input position: a type variable of `types`, a fixed type, `T*` (every input), or `any`. */
  inputs?: string[];
  types?: Record<string, string[]>;
}
interface KernelTable {
  source: { url: string; commit: string };
  kernels: Record<string, Kernel[]>;
}
const table = (name: string) => JSON.parse(readFileSync(new URL(`../fixtures/kernels/${name}.json`, import.meta.url), 'utf8')) as KernelTable;
const PROVIDERS = { cuda: table('cuda'), webgpu: table('webgpu') };

/** ONNX TensorProto data types, named as the kernel tables write them. */
const TYPE_NAMES: Record<number, string> = { 1: 'float', 2: 'uint8', 3: 'int8', 5: 'int16', 6: 'int32', 7: 'int64', 9: 'bool', 10: 'float16', 11: 'double', 16: 'bfloat16' };
const ELEM_NAMES: Record<string, string> = { float32: 'float', float16: 'float16', int64: 'int64', int32: 'int32', uint8: 'uint8', int8: 'int8', bool: 'bool' };

interface PlainNode {
  op: string;
  domain: string;
  inputs: string[];
  outputs: string[];
  castTo?: number;
}
interface PlainGraph {
  name: string;
  nodes: PlainNode[];
  /** Types of graph inputs and initializers. */
  leaves: Map<string, string>;
}

const SAME_AS_FIRST = new Set(['Add', 'Sub', 'Mul', 'Div', 'Neg', 'Reciprocal', 'Sqrt', 'Sigmoid', 'Sin', 'Cos', 'Gelu', 'Clip', 'Concat', 'Expand', 'Gather', 'GatherElements', 'Identity', 'LayerNormalization', 'MatMul', 'Gemm', 'Pow', 'ReduceMean', 'Reshape', 'Resize', 'Slice', 'Split', 'Transpose', 'Unsqueeze', 'Conv', 'MultiHeadAttention', 'MatMulNBits']);

/** Each value's element type, propagated node by node (graphs are written in topological order). */
export function inferTypes(g: PlainGraph): Map<string, string> {
  const types = new Map(g.leaves);
  for (const n of g.nodes) {
    let out: string | undefined;
    if (n.op === 'Cast') out = TYPE_NAMES[n.castTo ?? -1];
    else if (n.op === 'Shape' || n.op === 'ArgMax') out = 'int64';
    else if (n.op === 'Equal') out = 'bool';
    else if (SAME_AS_FIRST.has(n.op)) out = types.get(n.inputs[0]);
    else throw new Error(`${g.name}: no type rule for ${n.op}; add one to inferTypes`);
    if (!out) throw new Error(`${g.name}: ${n.op} has an input of unknown type (${n.inputs[0]})`);
    for (const o of n.outputs) types.set(o, out);
  }
  return types;
}

/** Why a node has no kernel on a provider, or undefined when it has one. */
export function missingKernel(provider: KernelTable, n: PlainNode, types: Map<string, string>): string | undefined {
  const key = `${n.domain || 'ai.onnx'}:${n.op}`;
  const opset = n.domain === 'com.microsoft' ? 1 : OPSET;
  const kernel = provider.kernels[key]?.find((k) => k.since <= opset && (k.until === null || opset <= k.until));
  if (!kernel) return `${key} at opset ${opset}: no kernel in the table`;
  for (let i = 0; i < n.inputs.length; i++) {
    if (!n.inputs[i]) continue;
    const t = types.get(n.inputs[i]);
    const spec = kernel.inputs?.[i] ?? (kernel.inputs?.at(-1) === 'T*' ? 'T*' : undefined);
    const variable = spec === 'T*' ? 'T' : spec;
    if (!variable || variable === 'any') {
      // No per-input constraint in the source (WebGPU): a per-type registration still binds input 0.
      if (i === 0 && !kernel.inputs && kernel.types?.T && !kernel.types.T.includes(t ?? '')) return `${key}: no kernel for ${t}`;
      continue;
    }
    const allowed = kernel.types?.[variable] ?? [variable];
    if (!allowed.includes(t ?? '')) return `${key}: input ${i} is ${t}, the kernel takes ${allowed.join(', ')}`;
  }
  return undefined;
}

function fromBuilder(g: GraphBuilder, name: string): PlainGraph {
  const leaves = new Map<string, string>();
  for (const i of g.inputs) leaves.set(i.name, ELEM_NAMES[i.type]);
  for (const [k, init] of g.initializers) leaves.set(k, ELEM_NAMES[init.type]);
  const nodes = g.nodes.map((n) => ({
    op: n.opType, domain: n.domain, inputs: n.inputs, outputs: n.outputs,
    castTo: n.attrs.to?.kind === 'int' ? n.attrs.to.value : undefined,
  }));
  return { name, nodes, leaves };
}

function fromModel(bytes: Uint8Array, name: string): PlainGraph {
  const graph = onnx.onnx.ModelProto.decode(bytes).graph!;
  const leaves = new Map<string, string>();
  for (const i of graph.input ?? []) leaves.set(i.name!, TYPE_NAMES[i.type?.tensorType?.elemType ?? -1]);
  for (const t of graph.initializer ?? []) leaves.set(t.name!, TYPE_NAMES[t.dataType ?? -1]);
  const nodes = (graph.node ?? []).map((n) => ({
    op: n.opType!, domain: n.domain ?? '', inputs: n.input ?? [], outputs: n.output ?? [],
    castTo: Number(n.attribute?.find((a) => a.name === 'to')?.i ?? -1),
  }));
  return { name, nodes, leaves };
}

function problems(graphs: PlainGraph[]): string[] {
  const out = new Set<string>();
  for (const g of graphs) {
    const types = inferTypes(g);
    for (const n of g.nodes)
      for (const [provider, t] of Object.entries(PROVIDERS)) {
        const why = missingKernel(t, n, types);
        if (why) out.add(`${provider}: ${g.name}: ${why}`);
      }
  }
  return [...out];
}

const reference = JSON.parse(readFileSync(new URL('../fixtures/reference/full-size-keys.json', import.meta.url), 'utf8')) as Record<'transformer' | 'vae' | 'transp_vae', { config: unknown; keys: Record<string, number[]> }>;

function fullSize(precision: Precision): PlainGraph[] {
  const f = graphFloat(precision);
  const w = (k: keyof typeof reference) => shapeOnlyWeights('full-size-keys.json', reference[k].keys);
  const vae = parseVaeConfig(reference.vae.config);
  return [
    fromBuilder(buildTransformer(parseTransformerConfig(reference.transformer.config), w('transformer'), f, { quantize: precision === 'int4' ? 'int4' : 'none' }), `full transformer ${precision}`),
    fromBuilder(buildVaeEncoder(vae, w('vae'), f), `full vae_encoder ${precision}`),
    fromBuilder(buildVaeDecoder(vae, w('vae'), f), `full vae_decoder ${precision}`),
    fromBuilder(buildTransparentDecoder(parseTransparentDecoderConfig(reference.transp_vae.config), w('transp_vae'), f), `full transparent_decoder ${precision}`),
  ];
}

const dir = mkdtempSync(join(tmpdir(), 'art-kernels-'));
after(() => rmSync(dir, { recursive: true, force: true }));

for (const precision of PRECISIONS) {
  test(`${precision}: every node of every graph as built has a CUDA and a WebGPU kernel for its input types`, () => {
    const tiny = Object.entries(graphBuilders(tinyComponents(), precision)).map(([name, build]) => fromBuilder(build!(), `tiny ${name} ${precision}`));
    assert.equal(tiny.length, 7);
    assert.deepEqual(problems([...tiny, ...fullSize(precision)]), []);
  });

}

test(`fp32: the tiny graphs after onnxruntime's basic optimisations still have a kernel everywhere`, async () => {
  const graphs: PlainGraph[] = [];
  let builtNodes = 0;
  for (const [name, build] of Object.entries(graphBuilders(tinyComponents(), 'fp32'))) {
    builtNodes += build!().nodes.length;
    const sub = join(dir, 'fp32');
    mkdirSync(sub, { recursive: true });
    const { file } = writeGraph(sub, name as never, build!);
    const optimized = join(sub, `${name}.basic.onnx`);
    const session = await ort.InferenceSession.create(join(sub, file), { graphOptimizationLevel: 'basic', optimizedModelFilePath: optimized, executionProviders: ['cpu'] });
    await session.release();
    graphs.push(fromModel(readFileSync(optimized), `tiny ${name} fp32 (basic-optimised)`));
  }
  const optimizedNodes = graphs.reduce((n, g) => n + g.nodes.length, 0);
  assert.ok(optimizedNodes < builtNodes, `the optimiser ran: ${optimizedNodes} nodes of ${builtNodes}`);
  assert.deepEqual(problems(graphs), []);
});

test('the check refuses what a provider lacks: an Identity on WebGPU, ArgMax over int64 and Clip over int32 on CUDA', () => {
  const g: PlainGraph = {
    name: 'probe',
    leaves: new Map([['ids', 'int64'], ['x', 'int32']]),
    nodes: [
      { op: 'ArgMax', domain: '', inputs: ['ids'], outputs: ['a'] },
      { op: 'Identity', domain: '', inputs: ['a'], outputs: ['b'] },
      { op: 'Clip', domain: '', inputs: ['x'], outputs: ['c'] },
    ],
  };
  assert.deepEqual(problems([g]).sort(), [
    'cuda: probe: ai.onnx:ArgMax: input 0 is int64, the kernel takes double, float, float16',
    'cuda: probe: ai.onnx:Clip: input 0 is int32, the kernel takes double, float, float16, int64, int8, uint64, uint8',
    'webgpu: probe: ai.onnx:Clip: no kernel for int32',
    'webgpu: probe: ai.onnx:Identity at opset 20: no kernel in the table',
  ]);
  for (const t of Object.values(PROVIDERS)) assert.match(t.source.url, /^https:\/\/github\.com\/microsoft\/onnxruntime\/blob\/[0-9a-f]{40}\//);
});
