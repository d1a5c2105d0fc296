import assert from 'node:assert/strict';
import { test } from 'node:test';
import { compareFloat } from '../../gpu-server/golden/compare.ts';
import { check, FP32_VARIANT, runCase } from '../../gpu-server/golden/transformer-case.ts';
import { checkpointWeights } from '../../gpu-server/onnx/graph.ts';
import { dequantizeInt4, INT4_BLOCK, quantizeInt4 } from '../../gpu-server/onnx/int4.ts';
import { Checkpoint } from '../../gpu-server/onnx/safetensors.ts';

const dir = new URL('../fixtures/golden/transformer/', import.meta.url).pathname;

/** fp16 keeps about 3 decimal digits; over 4 blocks the bar is 5e-3 relative (measured: 5.6e-4). */
const FP16_TOLERANCE = 5e-3;

test('the fp16 transformer graph matches the official fp32 output within the fp16 bar', async () => {
  const report = await check(dir, { precision: 'float16', quantize: 'none', tolerance: FP16_TOLERANCE });
  for (const c of report.comparisons) assert.ok(c.pass, `${c.name}: ${c.maxRel}`);
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
  const official = compareFloat('int4 vs official', int4.noisePred, int4.outputs.get('noise_pred')!.data, 0.15, int4.mask);
  assert.ok(official.pass, `${official.maxRel}`);
  assert.ok(official.maxRel > 1e-3, 'int4 must actually quantize');
});
