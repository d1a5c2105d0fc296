/**
 * MultiHeadAttention restated as MatMul + Softmax + MatMul (what WebGPU sessions open where the
 * adapter's fused attention is wrong), checked on the CPU provider against the fused node it
 * replaces and against plain float64 attention, with a broadcast additive bias and a scale that
 * is not the default; and the probe's verdicts from the child's answers.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import onnxProto from 'onnx-proto';
import { GraphBuilder, memoryWeights } from '../../gpu-server/onnx/graph.ts';
import { attention, defaultAttentionScale } from '../../gpu-server/onnx/nn.ts';
import { writeModel } from '../../gpu-server/onnx/onnx-writer.ts';
import { ort } from '../../gpu-server/onnx/session.ts';
import { unfuseAttention } from '../../gpu-server/onnx/unfused-attention.ts';
import { judge, referenceAttention } from '../../gpu-server/onnx/webgpu-probe.ts';

const dir = mkdtempSync(join(tmpdir(), 'art-unfuse-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const S = 40;
const HEADS = 3;
const D = 8;
const W = HEADS * D;

/** x -> linear (external weight) -> attention(q = k = projected, v = x) with a [1, 1, S, S] bias. */
function model(precision: 'float32' | 'float16', scale?: number) {
  const weights = memoryWeights('mem', new Map([['proj.weight', { shape: [W, W], data: Float32Array.from({ length: W * W }, (_, i) => Math.sin(i * 0.7) / 3) }]]));
  const g = new GraphBuilder('attn', precision, weights);
  const x = g.input('x', 'float', [1, S, W]);
  const bias = g.input('bias', 'float', [1, 1, S, S]);
  const p = g.op('MatMul', [x, g.weight('proj.weight', [W, W], 'transpose')]);
  g.output(attention(g, p, p, x, HEADS, { headDim: D, bias, ...(scale === undefined ? {} : { scale }) }), 'out', 'float', [1, S, W]);
  const path = join(dir, `attn-${precision}.onnx`);
  writeModel(g, path);
  return { path, weights };
}

const x = Float32Array.from({ length: S * W }, (_, i) => Math.cos(i * 0.31));
// A causal mask as CLIP's: the lowest float above the diagonal, plus a small slope.
const bias = Float32Array.from({ length: S * S }, (_, i) => (i % S > Math.floor(i / S) ? -3.4028234663852886e38 : (i % S) * 0.01));
const feeds = () => ({ x: new ort.Tensor('float32', x, [1, S, W]), bias: new ort.Tensor('float32', bias, [1, 1, S, S]) });

async function run(m: string | Uint8Array, folder: string): Promise<Float32Array> {
  const options = { executionProviders: ['cpu'], extra: { session: { model_external_initializers_file_folder_path: folder } } };
  const s = typeof m === 'string' ? await ort.InferenceSession.create(m, options) : await ort.InferenceSession.create(m, options);
  try {
    return (await s.run(feeds())).out.data as Float32Array;
  } finally {
    await s.release();
  }
}

/** float64 reference: the projection, then attention with the scale and bias. */
function reference(weights: ReturnType<typeof memoryWeights>, scale: number): Float64Array {
  const w = weights.read('proj.weight');
  const p = new Float32Array(S * W);
  for (let s = 0; s < S; s++) for (let o = 0; o < W; o++) for (let i = 0; i < W; i++) p[s * W + o] += x[s * W + i] * w[o * W + i];
  const out = new Float64Array(S * W);
  for (let h = 0; h < HEADS; h++) {
    for (let s = 0; s < S; s++) {
      const scores = Array.from({ length: S }, (_, t) => {
        let dot = 0;
        for (let j = 0; j < D; j++) dot += p[s * W + h * D + j] * p[t * W + h * D + j];
        return dot * scale + bias[s * S + t];
      });
      const m = Math.max(...scores);
      const e = scores.map((v) => Math.exp(v - m));
      const z = e.reduce((a, b) => a + b, 0);
      for (let j = 0; j < D; j++) out[s * W + h * D + j] = e.reduce((acc, q, t) => acc + (q / z) * x[t * W + h * D + j], 0);
    }
  }
  return out;
}

const relError = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let m = 0, r = 0;
  for (let i = 0; i < b.length; i++) {
    m = Math.max(m, Math.abs(a[i] - b[i]));
    r = Math.max(r, Math.abs(b[i]));
  }
  return m / r;
};

for (const scale of [undefined, 0.3]) {
  test(`restated attention equals the fused node on the CPU (scale ${scale ?? 'default'}, masked bias, 3 heads, external weights)`, async () => {
    const { path, weights } = model('float32', scale);
    const restated = unfuseAttention(readFileSync(path), path);
    assert.equal(restated.rewritten, 1);
    const ops = onnxProto.onnx.ModelProto.decode(restated.bytes).graph!.node!.map((n) => n.opType);
    assert.ok(!ops.includes('MultiHeadAttention'));
    assert.deepEqual(ops.filter((o) => o === 'MatMul' || o === 'Softmax'), ['MatMul', 'MatMul', 'Softmax', 'MatMul']);
    const fused = await run(path, dir);
    const unfused = await run(restated.bytes, dir);
    const ref = reference(weights, scale ?? defaultAttentionScale(D));
    assert.ok(relError(fused, ref) < 1e-6, `fused vs float64: ${relError(fused, ref)}`);
    assert.ok(relError(unfused, ref) < 1e-6, `restated vs float64: ${relError(unfused, ref)}`);
  });
}

test('restating: fp16 models scale in fp16; a model without a recorded scale, or without attention, is named', () => {
  const { path } = model('float16');
  const restated = onnxProto.onnx.ModelProto.decode(unfuseAttention(readFileSync(path), path).bytes);
  const scale = restated.graph!.initializer!.find((t) => t.name!.endsWith('_unfused_scale'))!;
  assert.equal(scale.dataType, onnxProto.onnx.TensorProto.DataType.FLOAT16);

  const old = onnxProto.onnx.ModelProto.decode(readFileSync(model('float32').path));
  const mha = old.graph!.node!.find((n) => n.opType === 'MultiHeadAttention')!;
  mha.attribute = mha.attribute!.filter((a) => a.name !== 'scale');
  assert.throws(() => unfuseAttention(onnxProto.onnx.ModelProto.encode(old).finish(), 'old.onnx'), /old\.onnx: node .*without an explicit scale.*rebuild it \(npm run convert or npm run tiny\)/);

  const g = new GraphBuilder('plain', 'float32', memoryWeights('none', new Map()));
  g.output(g.op('Relu', [g.input('x', 'float', [2])]), 'y', 'float', [2]);
  writeModel(g, join(dir, 'plain.onnx'));
  const bytes = readFileSync(join(dir, 'plain.onnx'));
  assert.equal(unfuseAttention(bytes, 'plain').rewritten, 0);
});

test('the probe: exact, wrong and failed answers of the child, in its own words', () => {
  const q = Float32Array.from({ length: 32 * 16 }, (_, i) => Math.sin(i));
  const ref = referenceAttention(q, q, q, 32, 2, 8);
  const exact = judge(JSON.stringify({ ok: true, out: [...ref].map((v) => v * (1 + 1e-6)) }), ref);
  assert.deepEqual({ ...exact, attentionError: 0 }, { usable: true, fusedAttentionExact: true, attentionError: 0 });
  const wrong = judge(JSON.stringify({ ok: true, out: [...ref].map((v, i) => (i === 5 ? v + 0.05 : v)) }), ref);
  assert.equal(wrong.usable && wrong.fusedAttentionExact, false);
  assert.ok(wrong.usable && Math.abs(wrong.attentionError - 0.05 / Math.max(...ref.map(Math.abs))) < 1e-9);
  const nan = judge(JSON.stringify({ ok: true, out: [...ref].map((v, i) => (i === 0 ? null : v)) }), ref);
  assert.equal(nan.usable && nan.fusedAttentionExact, false);
  const none = judge(JSON.stringify({ ok: false, error: '/onnxruntime_src/onnxruntime/core/providers/webgpu/webgpu_context.cc:136 lambda adapter_result.status == wgpu::RequestAdapterStatus::Success was false. Failed to get a WebGPU adapter: No supported adapters' }), ref);
  assert.deepEqual(none, { usable: false, reason: "no WebGPU adapter: Vulkan found no device that WebGPU (Dawn) accepts. Install your GPU's Vulkan driver (Linux), or use --provider cpu. (Failed to get a WebGPU adapter: No supported adapters)" });
  assert.match((judge('Segmentation fault', ref) as { reason: string }).reason, /answered something unexpected: Segmentation fault/);
});
