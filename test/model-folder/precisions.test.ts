/**
 * Precisions as shipped: the fp16 and int4 folders `convert` writes, loaded by createPipeline and
 * compared with the fp32 folder of the same checkpoints; their graphs read back from disk to
 * check the tensors really are fp16 (and the transformer's linear layers really int4).
 * CPU caveat: onnxruntime's CPU provider computes many fp16 ops in fp32, so the fp16 figures
 * here are CPU figures; a GPU computing in fp16 may land farther from fp32.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { compareLevels } from '../../gpu-server/golden/compare.ts';
import { convert } from '../../gpu-server/model-folder/convert.ts';
import { GRAPH_NAMES, type Manifest } from '../../gpu-server/model-folder/manifest.ts';
import { createPipeline } from '../../gpu-server/pipeline/art-pipeline.ts';
import type { GenerateParams, GenerateResult } from '../../gpu-server/pipeline/types.ts';
import { assertFp16, precisionOfFile } from '../models/graph-precision.ts';
import { writeSyntheticHf } from './synthetic-hf.ts';

const PRECISIONS = ['fp32', 'fp16', 'int4'] as const;
let root: string;
const folders = {} as Record<(typeof PRECISIONS)[number], { dir: string; manifest: Manifest }>;
const results = {} as Record<(typeof PRECISIONS)[number], GenerateResult>;
const PARAMS: GenerateParams = {
  prompt: 'a green kite over a red barn',
  layout: { width: 96, height: 64, boxes: [[0, 0, 96, 64], [0, 0, 96, 64], [16, 16, 64, 48], [48, 0, 96, 32]] },
  steps: 3,
  guidance: 2.5,
  trueCfg: 5.5,
  seed: 90210,
};

before(async () => {
  root = mkdtempSync(join(tmpdir(), 'art-precisions-'));
  const hf = writeSyntheticHf(root);
  for (const precision of PRECISIONS) {
    const dir = join(root, precision);
    folders[precision] = { dir, manifest: convert({ art: hf.art, flux: hf.flux, out: dir, precision }) };
    const pipeline = await createPipeline({ modelDir: dir, provider: 'cpu' });
    try {
      results[precision] = await pipeline.generate(PARAMS);
    } finally {
      await pipeline.dispose();
    }
  }
});
after(() => rmSync(root, { recursive: true, force: true }));

test('the fp16 and int4 folders hold fp16 graphs: every weight and float input/output fp16 (timestep and guidance stay fp32)', () => {
  for (const precision of ['fp16', 'int4'] as const) {
    const { dir, manifest } = folders[precision];
    assert.equal(manifest.precision, precision);
    for (const name of GRAPH_NAMES) {
      const p = precisionOfFile(join(dir, manifest.graphs[name].file));
      assertFp16(p, `${precision} ${name}`, name === 'transformer' ? ['timestep', 'guidance'] : []);
      if (name === 'transformer') {
        if (precision === 'int4') assert.ok((p.ops.MatMulNBits ?? 0) >= 40 && p.uint8Weights === 2 * p.ops.MatMulNBits, `int4 transformer: ${p.ops.MatMulNBits} MatMulNBits`);
        else assert.equal(p.ops.MatMulNBits, undefined);
      } else assert.equal(p.ops.MatMulNBits, undefined, `${precision} ${name} is not quantized`);
    }
  }
  const fp32 = precisionOfFile(join(folders.fp32.dir, folders.fp32.manifest.graphs.transformer.file));
  assert.equal(fp32.fp16Weights, 0);
});

test('the fp16 folder generates what the fp32 folder does, within the RGBA bar (CPU provider: at most 1 level apart)', () => {
  const [a, b] = [results.fp16, results.fp32];
  a.layers.forEach((l, i) => {
    const c = compareLevels(`fp16 layer ${i}`, l.rgba, b.layers[i].rgba);
    assert.ok(c.pass, JSON.stringify(c));
  });
  for (const k of ['merged', 'background'] as const) {
    const c = compareLevels(`fp16 ${k}`, a[k].rgb, b[k].rgb);
    assert.ok(c.pass, JSON.stringify(c));
  }
});

/** Mean |difference| in 8-bit levels. */
const meanLevels = (x: Uint8Array, y: Uint8Array) => x.reduce((s, v, i) => s + Math.abs(v - y[i]), 0) / x.length;

test('the int4 folder stays near the fp32 folder: mean difference at most 6 levels of 255 on every layer (measured 2.7-4.5 on random weights)', () => {
  const [a, b] = [results.int4, results.fp32];
  const means = a.layers.map((l, i) => meanLevels(l.rgba, b.layers[i].rgba));
  means.push(meanLevels(a.merged.rgb, b.merged.rgb));
  console.log(`int4 vs fp32, mean |diff| in levels per layer and merged: ${means.map((m) => m.toFixed(2)).join(', ')} (CPU provider)`);
  for (const m of means) assert.ok(m <= 6, `int4 is ${m.toFixed(2)} levels from fp32 on average`);
  // It is really quantized: farther from fp32 than fp16 is.
  const fp16Mean = meanLevels(results.fp16.layers[2].rgba, b.layers[2].rgba);
  assert.ok(means[2] > 5 * fp16Mean, `int4 ${means[2]} vs fp16 ${fp16Mean}`);
});
