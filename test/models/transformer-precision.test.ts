import assert from 'node:assert/strict';
import { test } from 'node:test';
import { compareFloat, FP16_TOLERANCE, INT4_TOLERANCE } from '../../gpu-server/golden/compare.ts';
import { assertFp16, precisionOf } from './graph-precision.ts';
import { buildTransformer, parseTransformerConfig } from '../../gpu-server/models/transformer.ts';
import { readFileSync } from 'node:fs';
import { check, FP32_VARIANT, runCase } from '../../gpu-server/golden/transformer-case.ts';
import { checkpointWeights } from '../../gpu-server/onnx/graph.ts';
import { dequantizeInt4, INT4_BLOCK, quantizeInt4 } from '../../gpu-server/onnx/int4.ts';
import { Checkpoint } from '../../gpu-server/onnx/safetensors.ts';

const dir = new URL('../fixtures/golden/transformer/', import.meta.url).pathname;

test('the fp16 transformer graph matches the official fp32 output within the fp16 bar', async () => {
  const report = await check(dir, 'cpu', { precision: 'float16', quantize: 'none', tolerance: FP16_TOLERANCE });
  // Measured 5.6e-4 (CPU provider, which computes many fp16 ops in fp32; a GPU figure may differ).
  for (const c of report.comparisons) assert.ok(c.pass, `${c.name}: ${c.maxRel}`);
  const config = parseTransformerConfig(JSON.parse(readFileSync(dir + 'config.json', 'utf8')));
  const weights = checkpointWeights(Checkpoint.open(dir + 'weights.safetensors'));
  assertFp16(precisionOf(buildTransformer(config, weights, 'float16')), 'fp16 transformer', ['timestep', 'guidance']);
});

test('the int4 transformer as shipped (fp16 activations) stays within the int4 bar of the official output', async () => {
  const r = await runCase(dir, { precision: 'float16', quantize: 'int4', tolerance: INT4_TOLERANCE });
  const c = compareFloat('int4 fp16 vs official', r.noisePred, r.outputs.get('noise_pred')!.data, INT4_TOLERANCE, r.mask);
  console.log(`int4 with fp16 activations vs official: ${c.maxRel.toExponential(3)} (CPU provider)`);
  assert.ok(c.pass, JSON.stringify(c));
});

test('the int4 transformer as shipped: every linear layer a 4-bit MatMulNBits, everything else fp16', () => {
  const config = parseTransformerConfig(JSON.parse(readFileSync(dir + 'config.json', 'utf8')));
  const weights = checkpointWeights(Checkpoint.open(dir + 'weights.safetensors'));
  const p = precisionOf(buildTransformer(config, weights, 'float16', { quantize: 'int4' }));
  assertFp16(p, 'int4 transformer', ['timestep', 'guidance']);
  // Each linear layer's MatMul of the fp16 graph became one MatMulNBits (attention's MatMuls stay).
  const fp16 = precisionOf(buildTransformer(config, weights, 'float16'));
  assert.ok((p.ops.MatMulNBits ?? 0) >= 40, `${p.ops.MatMulNBits} MatMulNBits`);
  assert.equal((fp16.ops.MatMul ?? 0) - (p.ops.MatMul ?? 0), p.ops.MatMulNBits);
  assert.equal(p.uint8Weights, 2 * p.ops.MatMulNBits, 'uint8 codes and zero points for each MatMulNBits');
});

test('int4 quantization: codes round-trip within half a step, zero stays exact, packing is low nibble first', () => {
  const n = 3, k = 2 * INT4_BLOCK;
  const w = Float32Array.from({ length: n * k }, (_, i) => Math.sin(i * 1.3) * (1 + (i % 7)));
  w[5] = 0;
  const q = quantizeInt4(w, n, k);
  const back = dequantizeInt4(q, n, k);
  for (let row = 0; row < n; row++) {
    for (let b = 0; b < 2; b++) {
      const step = q.scales[row * 2 + b];
      for (let i = 0; i < INT4_BLOCK; i++) {
        const j = row * k + b * INT4_BLOCK + i;
        assert.ok(Math.abs(back[j] - w[j]) <= step / 2 + 1e-6, `element ${j}`);
      }
    }
  }
  assert.equal(back[5], 0);
  const code0 = Math.round(w[0] / q.scales[0] + (q.zeroPoints[0] & 15));
  assert.equal(q.codes[0] & 15, Math.min(15, Math.max(0, code0)));
});

test('the int4 graph (MatMulNBits) computes exactly what fp32 computes with the dequantized weights', async () => {
  const ckpt = Checkpoint.open(dir + 'weights.safetensors');
  const base = checkpointWeights(ckpt);
  const dequantized = {
    ...base,
    read: (key: string) => {
      const shape = ckpt.info(key).shape;
      const w = base.read(key);
      return shape.length === 2 && shape[1] % INT4_BLOCK === 0 ? dequantizeInt4(quantizeInt4(w, shape[0], shape[1]), shape[0], shape[1]) : w;
    },
  };
  const int4 = await runCase(dir, { precision: 'float32', quantize: 'int4', tolerance: 1 });
  const emulated = await runCase(dir, FP32_VARIANT, dequantized);
  const same = compareFloat('int4 vs dequantized fp32', int4.noisePred, emulated.noisePred, 1e-4, int4.mask);
  assert.ok(same.pass, `${same.maxRel}`);
  // Against the official output the int4 error is the quantization's own: on these random Gaussian weights
  // 4-bit min/max blocks of 32 give a weight error of about range/15/sqrt(12) ~ 0.1 of their spread.
  // Measured 0.103.
  const official = compareFloat('int4 vs official', int4.noisePred, int4.outputs.get('noise_pred')!.data, INT4_TOLERANCE, int4.mask);
  assert.ok(official.pass, `${official.maxRel}`);
});
