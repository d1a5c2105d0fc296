import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { readInt64 } from '../../gpu-server/golden/case.ts';
import { compareFloat, FP16_TOLERANCE } from '../../gpu-server/golden/compare.ts';
import { assertFp16, precisionOf } from './graph-precision.ts';
import { bucketTable, buildT5Encoder, parseT5Config, relativePositionBucket } from '../../gpu-server/models/t5-encoder.ts';
import { type GraphBuilder, GraphError, memoryWeights, shapeOnlyWeights } from '../../gpu-server/onnx/graph.ts';
import { halvesToFloat32 } from '../../gpu-server/onnx/half.ts';
import { writeModel } from '../../gpu-server/onnx/onnx-writer.ts';
import { Checkpoint } from '../../gpu-server/onnx/safetensors.ts';
import { t5Shapes } from '../model-folder/flux-dev-stand-in.ts';
import { openSession, ort } from '../../gpu-server/onnx/session.ts';
import { t5XxlShape } from '../model-folder/flux-dev-stand-in.ts';

const golden = new URL('../fixtures/golden/t5_encoder/', import.meta.url).pathname;
const configJson = JSON.parse(readFileSync(join(golden, 'config.json'), 'utf8')) as Record<string, unknown>;
const config = parseT5Config(configJson);
const ckpt = Checkpoint.open(join(golden, 'weights.safetensors'));
const ids = readInt64(join(golden, 'inputs.safetensors'), 'input_ids');
const S = ids.shape[1];

type Tensors = Map<string, { shape: number[]; data: Float32Array }>;
function goldenTensors(edit: (name: string, data: Float32Array) => Float32Array | null = (_, d) => d): Tensors {
  const out: Tensors = new Map();
  for (const [name, info] of ckpt.tensors) {
    const data = edit(name, ckpt.readFloat32(name));
    if (data) out.set(name, { shape: info.shape, data });
  }
  return out;
}

async function run(g: GraphBuilder): Promise<Record<string, Float32Array>> {
  const dir = mkdtempSync(join(tmpdir(), 't5-test-'));
  try {
    writeModel(g, join(dir, 'm.onnx'));
    const { session } = await openSession(join(dir, 'm.onnx'), 'cpu');
    const out = await session.run({ input_ids: new ort.Tensor('int64', ids.data, ids.shape) });
    await session.release();
    return Object.fromEntries(Object.entries(out).map(([k, t]) => [k, t.type === 'float16' ? halvesToFloat32(t.data as Uint16Array) : (t.data as Float32Array)]));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test('relative position buckets: exact below 8, logarithmic to 128, +16 for keys after the query', () => {
  const b = (r: number) => relativePositionBucket(r, 32, 128);
  for (let r = 0; r < 8; r++) assert.equal(b(-r), r);
  for (let r = 1; r < 8; r++) assert.equal(b(r), 16 + r);
  // 8 + floor(8 * log(n/8) / log(16)), capped at 15: n = 15 -> 9.81 -> 9; n = 16 lands exactly on 10
  // in float32; the cap starts at n = 8 * 16^(7/8) = 90.5 (n = 90 -> 14.98, n = 91 -> 15.02).
  assert.deepEqual([8, 15, 16, 31, 32, 63, 64, 90, 91, 128, 500].map((n) => b(-n)), [8, 9, 10, 11, 12, 13, 14, 14, 15, 15, 15]);
  for (let n = 1; n < 600; n++) assert.equal(b(n), b(-n) + 16, `n = ${n}`);
  const t = bucketTable(4, 32, 128);
  assert.deepEqual([...t].map(Number), [0, 17, 18, 19, 1, 0, 17, 18, 2, 1, 0, 17, 3, 2, 1, 0]);
});

test('T5 reads the tied embedding under either name, and says so when both are missing', async () => {
  const onlyShared = await run(buildT5Encoder(config, memoryWeights('shared', goldenTensors((n, d) => (n === 'encoder.embed_tokens.weight' ? null : d))), 'float32', { seqLen: S }));
  const onlyEmbed = await run(buildT5Encoder(config, memoryWeights('embed', goldenTensors((n, d) => (n === 'shared.weight' ? null : d))), 'float32', { seqLen: S }));
  assert.deepEqual(onlyShared.last_hidden_state, onlyEmbed.last_hidden_state);
  const none = memoryWeights('none', goldenTensors((n, d) => (n === 'shared.weight' || n === 'encoder.embed_tokens.weight' ? null : d)));
  assert.throws(() => buildT5Encoder(config, none, 'float32', { seqLen: S }), /neither "shared\.weight" nor "encoder\.embed_tokens\.weight"/);
});

/**
 * The activations an fp16 graph holds in fp16 (ONNX type propagation: Cast sets the type, every
 * other op here keeps its first input's). onnxruntime's CPU provider computes fp16 ops in fp32, so
 * an overflow cannot show as inf on this machine; what the test checks instead is that no tensor
 * typed fp16 ever holds a value beyond fp16's range.
 */
function fp16Activations(g: GraphBuilder): string[] {
  const types = new Map<string, string>(g.inputs.map((i) => [i.name, i.type]));
  for (const [name, init] of g.initializers) types.set(name, init.type);
  const out: string[] = [];
  for (const n of g.nodes) {
    const to = n.attrs.to;
    const t = n.opType === 'Cast' && to?.kind === 'int' ? (to.value === 10 ? 'float16' : to.value === 1 ? 'float32' : 'other') : types.get(n.inputs[0]);
    for (const o of n.outputs) {
      types.set(o, t ?? 'unknown');
      if (t === 'float16') out.push(o);
    }
  }
  return out;
}

test('fp16 T5 keeps every fp16 tensor in range where the residual stream leaves the fp16 range', async () => {
  // wo scaled up: the feed-forward now writes values far beyond fp16's 65504 into the residual.
  const big = memoryWeights('big', goldenTensors((n, d) => (n.endsWith('DenseReluDense.wo.weight') ? d.map((v) => v * 1e5) : d)));
  const g32 = buildT5Encoder(config, big, 'float32', { seqLen: S });
  // Expose the residual stream entering the final norm (the input of its x*x).
  const finalMean = g32.nodes.filter((n) => n.opType === 'ReduceMean').at(-1)!;
  const square = g32.nodes.find((n) => n.outputs[0] === finalMean.inputs[0])!;
  g32.output({ name: square.inputs[0] }, 'residual', 'float32', ['B', S, config.dModel]);
  const f32 = await run(g32);
  assert.ok(f32.residual.reduce((m, v) => Math.max(m, Math.abs(v)), 0) > 4 * 65504, 'the test must push the residual past fp16');

  const g16 = buildT5Encoder(config, big, 'float16', { seqLen: S });
  const halves = fp16Activations(g16).filter((name) => !g16.outputs.some((o) => o.name === name));
  assert.ok(halves.length >= 6 * config.layers, `expected the projections in fp16, found ${halves.length} fp16 tensors`);
  for (const name of halves) g16.output({ name }, name, 'float16', [`${name}_a`, `${name}_b`, `${name}_c`]);
  const f16 = await run(g16);
  for (const name of halves) {
    const max = f16[name].reduce((m, v) => Math.max(m, Math.abs(v)), 0);
    assert.ok(max <= 65504, `fp16 tensor ${name} reaches ${max}, beyond fp16's range`);
  }
  assert.ok(f16.last_hidden_state.every(Number.isFinite), 'fp16 output has inf/NaN');
  const c = compareFloat('fp16 vs fp32', f16.last_hidden_state, f32.last_hidden_state, FP16_TOLERANCE);
  assert.ok(c.pass, JSON.stringify(c));
});

test('fp16 T5 stays close to fp32 on the golden weights', async () => {
  const w = memoryWeights('golden', goldenTensors());
  const f32 = await run(buildT5Encoder(config, w, 'float32', { seqLen: S }));
  const f16 = await run(buildT5Encoder(config, w, 'float16', { seqLen: S }));
  // The documented fp16 bar (CPU provider figure, 1.6e-3; it computes many fp16 ops in fp32).
  const c = compareFloat('fp16 vs fp32', f16.last_hidden_state, f32.last_hidden_state, FP16_TOLERANCE);
  assert.ok(c.pass, JSON.stringify(c));
  assertFp16(precisionOf(buildT5Encoder(config, w, 'float16', { seqLen: S })), 'fp16 T5');
});

test('parseT5Config names what is wrong', () => {
  assert.throws(() => parseT5Config({ ...configJson, feed_forward_proj: 'relu' }), (e: Error) => e instanceof GraphError && /"relu" is not supported.*gated-gelu/.test(e.message));
  assert.throws(() => parseT5Config({ ...configJson, d_model: 0 }), /"d_model" must be a positive integer/);
  assert.deepEqual(
    { heads: config.heads, dKv: config.dKv, buckets: config.buckets, maxDistance: config.maxDistance, eps: config.eps },
    { heads: 4, dKv: 8, buckets: 32, maxDistance: 128, eps: 1e-6 },
  );
});

/** T5-XXL's key list: the golden checkpoint's names (block 0 holds the bias, block 1 is every later block) at XXL size. */
function t5XxlKeys(): Record<string, number[]> {
  const blocks = 24;
  const keys: Record<string, number[]> = {};
  for (const name of ckpt.tensors.keys()) {
    const m = /^encoder\.block\.(\d+)\.(.*)$/.exec(name);
    if (!m) keys[name] = t5XxlShape(name);
    else if (m[1] === '0') keys[name] = t5XxlShape(m[2]);
    else if (m[1] === '1') for (let i = 1; i < blocks; i++) keys[`encoder.block.${i}.${m[2]}`] = t5XxlShape(m[2]);
  }
  return keys;
}

test("full-size T5-XXL: consumes exactly the keys of FLUX.1-dev's real index (219, the tied embedding as shared.weight), 4.76 B parameters, documented input and output", () => {
  const keys = t5Shapes();
  assert.equal(Object.keys(keys).length, 219);
  // The same names as the golden checkpoint's, scaled to 24 blocks (less the tied embed_tokens).
  assert.deepEqual(Object.keys(keys).sort(), Object.keys(t5XxlKeys()).filter((k) => k !== 'encoder.embed_tokens.weight').sort());
  const xxl = parseT5Config({ ...configJson, vocab_size: 32128, d_model: 4096, d_kv: 64, d_ff: 10240, num_layers: 24, num_heads: 64 });
  for (const precision of ['float32', 'float16'] as const) {
    const g = buildT5Encoder(xxl, shapeOnlyWeights('T5-XXL', keys), precision);
    const expected = Object.keys(keys).filter((k) => k !== 'encoder.embed_tokens.weight').sort();
    assert.deepEqual([...g.usedKeys.keys()].sort(), expected);
    for (const [k, shape] of g.usedKeys) assert.deepEqual(shape, keys[k], k);
    const params = [...g.usedKeys.values()].reduce((n, s) => n + s.reduce((a, b) => a * b, 1), 0);
    assert.equal(params, 4_762_310_656); // google/t5-v1_1-xxl's encoder
    assert.deepEqual(g.inputs, [{ name: 'input_ids', type: 'int64', dims: ['B', 512] }]);
    assert.deepEqual(g.outputs, [{ name: 'last_hidden_state', type: precision, dims: ['B', 512, 4096] }]);
    const mha = g.nodes.filter((n) => n.opType === 'MultiHeadAttention');
    assert.equal(mha.length, 24);
    // Unscaled attention, and one shared bias input for every block.
    for (const n of mha) assert.deepEqual(n.attrs.scale, { kind: 'float', value: 1 });
    assert.equal(new Set(mha.map((n) => n.inputs[5])).size, 1);
  }
});

test("parseT5Config reads FLUX.1-dev's real text_encoder_2/config.json (transformers' newer form) and refuses other activations by name", () => {
  const realFile = new URL('../fixtures/flux-dev/text_encoder_2/config.json', import.meta.url).pathname;
  const real = JSON.parse(readFileSync(realFile, 'utf8')) as Record<string, unknown>;
  assert.equal(real.feed_forward_proj, undefined);
  assert.deepEqual(parseT5Config(real, realFile), { vocabSize: 32128, dModel: 4096, dKv: 64, dFf: 10240, layers: 24, heads: 64, buckets: 32, maxDistance: 128, eps: 1e-6 });
  assert.throws(() => parseT5Config({ ...real, dense_act_fn: 'relu' }), /dense_act_fn "relu" with is_gated_act true is not supported.*gelu_pytorch_tanh/);
  assert.throws(() => parseT5Config({ ...real, is_gated_act: false }), /is_gated_act false is not supported/);
  // The older form with a contradicting newer field is refused too.
  assert.throws(() => parseT5Config({ ...configJson, dense_act_fn: 'relu' }), /feed_forward_proj "gated-gelu" but dense_act_fn "relu"/);
  assert.equal(parseT5Config({ ...configJson, dense_act_fn: 'gelu_new', is_gated_act: true }).dFf, config.dFf);
});
