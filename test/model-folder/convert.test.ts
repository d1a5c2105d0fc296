import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { after, before, test } from 'node:test';
import { convert, planConversion } from '../../gpu-server/model-folder/convert.ts';
import { loadManifest, ModelFolderError, verifyChecksums } from '../../gpu-server/model-folder/manifest.ts';
import { writeModelFolder } from '../../gpu-server/model-folder/write-folder.ts';
import { tinyComponents } from '../../gpu-server/model-folder/tiny.ts';
import { FLUX_SCHEDULER } from '../../gpu-server/pipeline/scheduler.ts';
import { createPipeline } from '../../gpu-server/pipeline/art-pipeline.ts';
import { FLUX_DEV, floatsWrittenAsIntegers } from './hf-file-shape.ts';
import { writeSyntheticHf } from './synthetic-hf.ts';
import { readCase, readFloats } from '../../gpu-server/golden/case.ts';
import { compareFloat } from '../../gpu-server/golden/compare.ts';
import { caseLoras, FP32_VARIANT, runCase as runTransformerCase } from '../../gpu-server/golden/transformer-case.ts';
import { writeSafetensors } from '../../gpu-server/onnx/safetensors.ts';
import { floatsOf, openSession, ort } from '../../gpu-server/onnx/session.ts';
import { GOLDEN } from '../pipeline/golden-data.ts';

const TORCH = new URL('../fixtures/torch-checkpoints/', import.meta.url).pathname;

let root: string;
let hf: { art: string; flux: string; layerPe: string };
before(() => {
  root = mkdtempSync(join(tmpdir(), 'art-convert-'));
  hf = writeSyntheticHf(root, { exactTransformer: true });
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
    assert.throws(() => planConversion({ art: hf.art, flux: hf.flux }, 'fp32'), (e: unknown) => e instanceof ModelFolderError && /text_encoder_2 is missing/.test(e.message));
  } finally {
    renameSync(moved, join(hf.flux, 'text_encoder_2'));
  }
  assert.throws(() => planConversion({ art: join(root, 'nope'), flux: hf.flux }, 'fp32'), /--art/);
  const cfg = join(hf.flux, 'text_encoder', 'config.json');
  const originalText = readFileSync(cfg, 'utf8');
  const original = JSON.parse(originalText) as Record<string, unknown>;
  writeFileSync(cfg, JSON.stringify({ ...original, hidden_size: 48, intermediate_size: 64 }));
  try {
    assert.throws(() => planConversion({ art: hf.art, flux: hf.flux }, 'fp32'), /do not fit together: the transformer takes pooled vectors of 32 but CLIP gives 48/);
  } finally {
    writeFileSync(cfg, originalText);
  }
  const shard = readdirSync(join(hf.art, 'transformer')).find((f) => f.endsWith('00002-of-00003.safetensors'));
  assert.ok(shard);
  renameSync(join(hf.art, 'transformer', shard), join(root, 'shard'));
  try {
    assert.throws(() => planConversion({ art: hf.art, flux: hf.flux }, 'fp32'), /shard .* is missing/);
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

const LORA_CASE = join(GOLDEN, 'transformer_lora');
const goldenLoras = () => caseLoras(LORA_CASE, readCase(LORA_CASE));

test('the transformer_lora golden through the converter: ART layout + the case\'s two LoRAs, converted, gives the golden noise_pred', async () => {
  const out = join(root, 'model-lora');
  const loras = goldenLoras();
  assert.deepEqual(loras.map((l) => [basename(l.file), l.scale]), [['lora_peft.safetensors', 1], ['lora_kohya.safetensors', 0.7]]);
  const m = convert({ art: hf.art, flux: hf.flux, out, precision: 'fp32', loras });
  // The manifest records what was fused: file, sha256, scale, order.
  assert.deepEqual(m.loras?.map((l) => [l.order, l.file, l.scale, l.format, l.modules]), [[1, 'lora_peft.safetensors', 1, 'diffusers_peft', 34], [2, 'lora_kohya.safetensors', 0.7, 'kohya_flux', 32]]);
  assert.equal(m.loras?.[1].sha256, createHash('sha256').update(readFileSync(join(LORA_CASE, 'lora_kohya.safetensors'))).digest('hex'));
  assert.match(m.name, /LoRA lora_peft\.safetensors@1, lora_kohya\.safetensors@0\.7/);
  assert.deepEqual(loadManifest(out).loras, m.loras);
  // The bridge's welcome and /health show info.model: the model with its LoRAs.
  const pipeline = await createPipeline({ modelDir: out, provider: 'cpu' });
  try {
    assert.equal(pipeline.info.model, 'ART_v1.0 + FLUX.1-dev + LoRA lora_peft.safetensors@1, lora_kohya.safetensors@0.7 (fp32)');
  } finally {
    await pipeline.dispose();
  }
  const { session } = await openSession(join(out, 'transformer.onnx'), 'cpu');
  try {
    // The converted transformer takes CLIP's 32-wide pooled vector: the golden 24 plus zeros (the widened weight's extra columns are 0).
    const run = async (feeds: Record<string, ort.Tensor>) => {
      const pooled = new Float32Array(32);
      pooled.set(feeds.pooled_projections.data as Float32Array);
      const outputs = await session.run({ ...feeds, pooled_projections: new ort.Tensor('float32', pooled, [1, 32]) });
      return { noise_pred: floatsOf(outputs.noise_pred) };
    };
    const { noisePred, mask, outputs, outputsFile } = await runTransformerCase(LORA_CASE, FP32_VARIANT, undefined, run);
    const c = compareFloat('noise_pred (inside boxes)', noisePred, outputs.get('noise_pred')?.data ?? new Float32Array(), 1e-4, mask);
    assert.ok(c.pass, `${outputsFile}: ${JSON.stringify(c)}`);
    // The fused output is far from the unfused golden (same inputs): the LoRAs were fused, not lost.
    const baseGolden = readFloats(join(GOLDEN, 'transformer', 'outputs.safetensors')).get('noise_pred')?.data ?? new Float32Array();
    const moved = compareFloat('fused vs base golden', noisePred, baseGolden, 1e-4, mask);
    assert.ok(moved.maxRel > 0.1, JSON.stringify(moved));
  } finally {
    await session.release();
  }
});

test('--transformer-base (FLUX.1-dev) + --layer-pe + --lora + --transp-vae (a PyTorch checkpoint) plan the same weights as the ART layout', () => {
  const loras = goldenLoras();
  const fromArt = planConversion({ art: hf.art, flux: hf.flux, loras }, 'fp32');
  const fromBase = planConversion({ flux: hf.flux, transformerBase: hf.flux, layerPe: hf.layerPe, transpVae: join(TORCH, 'transp_vae_golden.pt'), loras }, 'fp32');
  assert.equal(fromBase.components.transformer.config.maxLayerNum, 52);
  assert.match(fromBase.name, /^FLUX\.1-dev \+ ART layer_pe \+ LoRA/);
  for (const key of ['layer_pe', 'transformer_blocks.0.attn.to_q.weight', 'single_transformer_blocks.1.proj_out.weight', 'proj_out.bias']) {
    assert.deepEqual(fromBase.components.transformer.weights.read(key), fromArt.components.transformer.weights.read(key), key);
  }
  // The .pt holds the golden decoder as float32; the ART layout stores it as bf16: same names and shapes, values within bf16 rounding.
  const a = fromArt.components.transparentDecoder.weights;
  const b = fromBase.components.transparentDecoder.weights;
  const key = 'decoder.fc_in.weight';
  assert.deepEqual(b.shape(key), a.shape(key));
  const x = b.read(key);
  const y = a.read(key);
  assert.ok(x.every((v, i) => Math.abs(v - y[i]) <= Math.abs(v) / 128 + 1e-30), key);
  assert.throws(() => planConversion({ flux: hf.flux, transformerBase: hf.flux, transpVae: join(TORCH, 'transp_vae_golden.pt') }, 'fp32'), /has no layer_pe .*give --layer-pe/);
  // A layer_pe of another width (the .pth fixture is 64 wide, this transformer 32) is named.
  assert.throws(() => planConversion({ flux: hf.flux, transformerBase: hf.flux, layerPe: join(TORCH, 'layer_pe_dict.pth'), transpVae: join(TORCH, 'transp_vae_golden.pt') }, 'fp32'), /layer_pe is \[1,52,1,1,64\] but this transformer needs \[1, layers, 1, 1, 32\]/);
  assert.throws(() => planConversion({ flux: hf.flux }, 'fp32'), /no transformer: give --art/);
  assert.throws(() => planConversion({ flux: hf.flux, transformerBase: hf.flux, layerPe: hf.layerPe }, 'fp32'), /no transparent decoder: give --transp-vae/);
  assert.throws(() => planConversion({ flux: hf.flux, transformerBase: hf.flux, layerPe: hf.layerPe, transpVae: join(TORCH, 'hostile.pt') }, 'fp32'), /refused to load: the pickle names the global posix\.system/);
});

test('the CLI: --lora with a bad scale and a LoRA for another model stop before anything is written', () => {
  const out = join(root, 'never');
  const cli = (args: string[]) => spawnSync(process.execPath, ['--import', 'tsx', 'gpu-server/model-folder/convert.ts', ...args], { encoding: 'utf8' });
  let r = cli(['--art', hf.art, '--flux', hf.flux, '--out', out, '--lora', `${join(LORA_CASE, 'lora_peft.safetensors')}:fast`]);
  assert.equal(r.status, 1, r.stderr);
  assert.match(r.stderr, /the scale "fast" is not a finite number/);
  const sdxl = join(root, 'sdxl.safetensors');
  writeSafetensors(sdxl, { 'lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight': { dtype: 'F32', shape: [1, 4], data: new Float32Array(4) } });
  r = cli(['--art', hf.art, '--flux', hf.flux, '--out', out, '--lora', sdxl]);
  assert.equal(r.status, 1);
  assert.match(r.stderr, /a LoRA for a UNet model \(SD 1\.x\/2\.x\/SDXL\), not FLUX; keys: lora_unet_down_blocks_0/);
  assert.ok(!existsSync(out) && !existsSync(`${out}.partial`));
});
