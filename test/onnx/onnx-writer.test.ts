import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import onnxProto from 'onnx-proto';
import { GraphBuilder, memoryWeights } from '../../gpu-server/onnx/graph.ts';
import * as nn from '../../gpu-server/onnx/nn.ts';
import { writeModel } from '../../gpu-server/onnx/onnx-writer.ts';
import { openSession, ort } from '../../gpu-server/onnx/session.ts';

const D = 8;
const H = 2;
const weightsOf = () =>
  memoryWeights('mem', new Map([
    ['proj.weight', { shape: [D, D], data: Float32Array.from({ length: D * D }, (_, i) => Math.sin(i) / 4) }],
    ['proj.bias', { shape: [D], data: Float32Array.from({ length: D }, (_, i) => i / 10) }],
    ['big.weight', { shape: [D, 1024], data: Float32Array.from({ length: D * 1024 }, (_, i) => Math.cos(i) / 32) }],
  ]));

/** linear -> fused attention (self) -> linear down from a wide weight: exercises external data and the contrib op. */
function build(precision: 'float32' | 'float16') {
  const g = new GraphBuilder('writer_test', precision, weightsOf());
  const x = g.input('x', 'float', [1, 'S', D]);
  const h = nn.linear(g, x, 'proj', D, D);
  const a = nn.attention(g, h, h, h, H, { headDim: D / H });
  const wide = g.op('MatMul', [a, g.weight('big.weight', [D, 1024])]);
  g.output(wide, 'y', 'float', [1, 'S', 1024]);
  return g;
}

/** The same computation in plain JS, float64. */
function reference(x: Float32Array, S: number): Float64Array {
  const w = weightsOf();
  const pw = w.read('proj.weight'), pb = w.read('proj.bias'), bw = w.read('big.weight');
  const h = Array.from({ length: S }, (_, s) => Array.from({ length: D }, (_, o) => pb[o] + Array.from({ length: D }, (_, i) => x[s * D + i] * pw[o * D + i]).reduce((a, b) => a + b)));
  const d = D / H;
  const att = Array.from({ length: S }, () => new Array(D).fill(0));
  for (let hd = 0; hd < H; hd++) {
    for (let s = 0; s < S; s++) {
      const scores = h.map((k) => Array.from({ length: d }, (_, j) => h[s][hd * d + j] * k[hd * d + j]).reduce((a, b) => a + b) / Math.sqrt(d));
      const m = Math.max(...scores);
      const e = scores.map((v) => Math.exp(v - m));
      const z = e.reduce((a, b) => a + b);
      for (let j = 0; j < d; j++) att[s][hd * d + j] = e.reduce((acc, p, t) => acc + (p / z) * h[t][hd * d + j], 0);
    }
  }
  const out = new Float64Array(S * 1024);
  for (let s = 0; s < S; s++) for (let o = 0; o < 1024; o++) for (let i = 0; i < D; i++) out[s * 1024 + o] += att[s][i] * bw[i * 1024 + o];
  return out;
}

test('writes weights as external data at page-aligned offsets, and onnxruntime (CPU) runs the fused attention', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'writer-'));
  const path = join(dir, 'm.onnx');
  const { dataBytes } = writeModel(build('float32'), path);
  const model = onnxProto.onnx.ModelProto.decode(readFileSync(path));
  const big = model.graph!.initializer!.find((t) => t.name === 'big.weight')!;
  const meta = Object.fromEntries(big.externalData!.map((e) => [e.key, e.value]));
  assert.equal(meta.location, 'm.onnx.data');
  assert.equal(Number(meta.length), D * 1024 * 4);
  assert.equal(Number(meta.offset) % 4096, 0);
  assert.equal(statSync(path + '.data').size, dataBytes);
  assert.ok(statSync(path).size < 4096, 'the protobuf holds no weight data');

  const S = 3;
  const x = Float32Array.from({ length: S * D }, (_, i) => Math.cos(i * 0.7));
  const { session, provider } = await openSession(path, 'cpu');
  assert.equal(provider, 'cpu');
  const y = (await session.run({ x: new ort.Tensor('float32', x, [1, S, D]) })).y.data as Float32Array;
  const ref = reference(x, S);
  const maxRef = Math.max(...ref.map(Math.abs));
  const err = Math.max(...Array.from(y, (v, i) => Math.abs(v - ref[i])));
  assert.ok(err / maxRef < 1e-5, `relative error ${err / maxRef}`);
});

test('an fp16 build stores half the bytes and declares float16 inputs and outputs', () => {
  const dir = mkdtempSync(join(tmpdir(), 'writer16-'));
  const f32 = writeModel(build('float32'), join(dir, 'a.onnx'));
  const f16 = writeModel(build('float16'), join(dir, 'b.onnx'));
  assert.ok(f16.dataBytes < f32.dataBytes * 0.6);
  const model = onnxProto.onnx.ModelProto.decode(readFileSync(join(dir, 'b.onnx')));
  assert.equal(model.graph!.input![0].type!.tensorType!.elemType, 10);
  assert.equal(model.graph!.output![0].type!.tensorType!.elemType, 10);
  assert.ok(model.graph!.initializer!.every((t) => t.dataType === 10 || t.dataType === 7));
});
