import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { convert, planConversion } from '../../gpu-server/model-folder/convert.ts';
import { loadManifest, ModelFolderError, verifyChecksums } from '../../gpu-server/model-folder/manifest.ts';
import { writeModelFolder } from '../../gpu-server/model-folder/write-folder.ts';
import { tinyComponents } from '../../gpu-server/model-folder/tiny.ts';
import { FLUX_SCHEDULER } from '../../gpu-server/pipeline/scheduler.ts';
import { createPipeline } from '../../gpu-server/pipeline/art-pipeline.ts';
import { FLUX_DEV, floatsWrittenAsIntegers } from './hf-file-shape.ts';
import { writeSyntheticHf } from './synthetic-hf.ts';

let root: string;
let hf: { art: string; flux: string };
before(() => {
  root = mkdtempSync(join(tmpdir(), 'art-convert-'));
  hf = writeSyntheticHf(root);
});
after(() => rmSync(root, { recursive: true, force: true }));

test('convert reads sharded bf16 HF folders and writes a model folder that loads and generates', async () => {
  const out = join(root, 'model');
  const graphs = new Set<string>();
  const m = convert({ art: hf.art, flux: hf.flux, out, precision: 'fp32', onProgress: (p) => graphs.add(p.graph) });
  assert.equal(graphs.size, 6);
  assert.equal(m.tiny, false);
  assert.equal(m.transformer.pooledProjectionDim, 32);
  assert.deepEqual(m.scheduler, FLUX_SCHEDULER);
  assert.deepEqual(m.vae, { scalingFactor: 0.3611, shiftFactor: 0.1159 });
  assert.ok(existsSync(join(out, 'tokenizer', 'vocab.json')) && existsSync(join(out, 'tokenizer_2', 'tokenizer.json')));
  assert.deepEqual(verifyChecksums(out, loadManifest(out)), []);
  const pipeline = await createPipeline({ modelDir: out, provider: 'cpu' });
  try {
    assert.equal(pipeline.info.tiny, false);
    const params = { prompt: 'a poster', layout: { width: 64, height: 64, boxes: [[0, 0, 64, 64], [0, 0, 64, 64], [16, 16, 48, 48]] as [number, number, number, number][] }, steps: 1, guidance: 4, trueCfg: 3.5, seed: 3 };
    const a = await pipeline.generate(params);
    assert.deepEqual(a.layers.map((l) => l.width), [64, 64, 32]);
    assert.ok(a.merged.rgb.some((v) => v !== a.merged.rgb[0]));
  } finally {
    await pipeline.dispose();
  }
});

test('fp16 conversion writes half-size transformer weights', () => {
  const out = join(root, 'model16');
  const m = convert({ art: hf.art, flux: hf.flux, out, precision: 'fp16' });
  const m32 = loadManifest(join(root, 'model'));
  assert.equal(m.precision, 'fp16');
  const ratio = m.files['transformer.onnx.data'].bytes / m32.files['transformer.onnx.data'].bytes;
  assert.ok(ratio > 0.45 && ratio < 0.55, `fp16/fp32 size ratio ${ratio}`);
});

test('int4 conversion stores the transformer in 4-bit blocks and the folder still generates', async () => {
  const out = join(root, 'model4');
  const m = convert({ art: hf.art, flux: hf.flux, out, precision: 'int4' });
  const m32 = loadManifest(join(root, 'model'));
  assert.equal(m.precision, 'int4');
  // 4 bits per weight plus an fp16 scale and a 4-bit zero point per block of 32: about 1/7 of fp32.
  const ratio = m.files['transformer.onnx.data'].bytes / m32.files['transformer.onnx.data'].bytes;
  assert.ok(ratio < 0.3, `int4/fp32 size ratio ${ratio}`);
  assert.ok(readFileSync(join(out, 'transformer.onnx')).includes('MatMulNBits'));
  const pipeline = await createPipeline({ modelDir: out, provider: 'cpu' });
  try {
    const layout = { width: 64, height: 64, boxes: [[0, 0, 64, 64], [0, 0, 64, 64], [16, 16, 48, 48]] as [number, number, number, number][] };
    const r = await pipeline.generate({ prompt: 'a poster', layout, steps: 1, guidance: 4, trueCfg: 3.5, seed: 3 });
    assert.equal(r.layers[2].rgba.length, 32 * 32 * 4);
  } finally {
    await pipeline.dispose();
  }
});

test('missing parts and parts that do not fit together are named', () => {
  const moved = join(root, 'moved');
  renameSync(join(hf.flux, 'text_encoder_2'), moved);
  try {
    assert.throws(() => planConversion(hf.art, hf.flux, 'fp32'), (e: unknown) => e instanceof ModelFolderError && /text_encoder_2 is missing/.test(e.message));
  } finally {
    renameSync(moved, join(hf.flux, 'text_encoder_2'));
  }
  assert.throws(() => planConversion(join(root, 'nope'), hf.flux, 'fp32'), /--art/);
  const cfg = join(hf.flux, 'text_encoder', 'config.json');
  const originalText = readFileSync(cfg, 'utf8');
  const original = JSON.parse(originalText) as Record<string, unknown>;
  writeFileSync(cfg, JSON.stringify({ ...original, hidden_size: 48, intermediate_size: 64 }));
  try {
    assert.throws(() => planConversion(hf.art, hf.flux, 'fp32'), /do not fit together: the transformer takes pooled vectors of 32 but CLIP gives 48/);
  } finally {
    writeFileSync(cfg, originalText);
  }
  const shard = readdirSync(join(hf.art, 'transformer')).find((f) => f.endsWith('00002-of-00003.safetensors'));
  assert.ok(shard);
  renameSync(join(hf.art, 'transformer', shard), join(root, 'shard'));
  try {
    assert.throws(() => planConversion(hf.art, hf.flux, 'fp32'), /shard .* is missing/);
  } finally {
    renameSync(join(root, 'shard'), join(hf.art, 'transformer', shard));
  }
});

test('not enough disk space is reported before anything big is written', () => {
  const out = join(root, 'full');
  assert.throws(
    () => writeModelFolder(out, { name: 'x', tiny: true, precision: 'fp32', resolutions: [512], maxLayers: 52, components: tinyComponents(), scheduler: FLUX_SCHEDULER, writeTokenizers: () => {} }, { requiredBytes: 2 ** 60 }),
    (e: unknown) => e instanceof ModelFolderError && /not enough disk space/.test(e.message),
  );
  assert.ok(!existsSync(out));
});

test("the synthetic folders write numbers as the real FLUX.1-dev configs do (floats as floats) and T5's config in the real form", () => {
  for (const rel of ['text_encoder/config.json', 'text_encoder_2/config.json', 'vae/config.json', 'scheduler/scheduler_config.json']) {
    assert.deepEqual(floatsWrittenAsIntegers(join(hf.flux, rel), join(FLUX_DEV, rel)), [], rel);
  }
  assert.match(readFileSync(join(hf.flux, 'text_encoder', 'config.json'), 'utf8'), /"initializer_factor": 1\.0/);
  const t5 = JSON.parse(readFileSync(join(hf.flux, 'text_encoder_2', 'config.json'), 'utf8')) as Record<string, unknown>;
  assert.deepEqual([t5.feed_forward_proj, t5.dense_act_fn, t5.is_gated_act], [undefined, 'gelu_pytorch_tanh', true]);
});
