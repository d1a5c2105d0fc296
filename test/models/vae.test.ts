import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { compareFloat, FP16_TOLERANCE } from '../../gpu-server/golden/compare.ts';
import { assertFp16, precisionOf } from './graph-precision.ts';
import { buildVaeDecoder, buildVaeEncoder, parseVaeConfig, VaeConfigError } from '../../gpu-server/models/vae.ts';
import { groupNorm } from '../../gpu-server/onnx/nn-conv.ts';
import { checkpointWeights, GraphBuilder, memoryWeights, shapeOnlyWeights } from '../../gpu-server/onnx/graph.ts';
import { float32ToHalves, halvesToFloat32 } from '../../gpu-server/onnx/half.ts';
import { writeModel } from '../../gpu-server/onnx/onnx-writer.ts';
import { Checkpoint } from '../../gpu-server/onnx/safetensors.ts';
import { openSession, ort } from '../../gpu-server/onnx/session.ts';
import { readFloats } from '../../gpu-server/golden/case.ts';

const golden = new URL('../fixtures/golden/vae/', import.meta.url).pathname;
const configJson = JSON.parse(readFileSync(join(golden, 'config.json'), 'utf8')) as Record<string, unknown>;
const weights = checkpointWeights(Checkpoint.open(join(golden, 'weights.safetensors')));
const fullSize = JSON.parse(readFileSync(new URL('../fixtures/reference/full-size-keys.json', import.meta.url), 'utf8')) as {
  vae: { config: Record<string, unknown>; keys: Record<string, number[]> };
};

/** Writes `g`, runs it once on the CPU with float32 feeds (converted for fp16 graphs), returns float32 outputs. */
async function run(g: GraphBuilder, feeds: Record<string, { shape: number[]; data: Float32Array }>): Promise<Record<string, Float32Array>> {
  const dir = mkdtempSync(join(tmpdir(), 'vae-test-'));
  try {
    writeModel(g, join(dir, 'm.onnx'));
    const { session } = await openSession(join(dir, 'm.onnx'), 'cpu');
    const half = g.float === 'float16';
    const inputs = Object.fromEntries(
      Object.entries(feeds).map(([k, v]) => [k, half ? new ort.Tensor('float16', float32ToHalves(v.data), v.shape) : new ort.Tensor('float32', v.data, v.shape)]),
    );
    const out = await session.run(inputs);
    await session.release();
    return Object.fromEntries(Object.entries(out).map(([k, t]) => [k, t.type === 'float16' ? halvesToFloat32(t.data as Uint16Array) : (t.data as Float32Array)]));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

// The vae golden case itself runs in test/golden/cases.test.ts (every bundled case).

test('full-size FLUX VAE: decoder and encoder consume exactly the vae keys, with the documented inputs and outputs', () => {
  const config = parseVaeConfig(fullSize.vae.config);
  assert.deepEqual(config.blockOutChannels, [128, 256, 512, 512]);
  const shapes = shapeOnlyWeights('full-size-keys.json', fullSize.vae.keys);
  const dec = buildVaeDecoder(config, shapes, 'float16');
  const enc = buildVaeEncoder(config, shapes, 'float16');
  const decKeys = [...dec.usedKeys.keys()];
  const encKeys = [...enc.usedKeys.keys()];
  assert.ok(decKeys.every((k) => k.startsWith('decoder.')), 'the decoder reads only decoder.* keys');
  assert.ok(encKeys.every((k) => k.startsWith('encoder.')), 'the encoder reads only encoder.* keys');
  const used = new Map([...dec.usedKeys, ...enc.usedKeys]);
  assert.deepEqual([...used.keys()].sort(), Object.keys(fullSize.vae.keys).sort());
  for (const [k, shape] of used) assert.deepEqual(shape, fullSize.vae.keys[k], k);

  assert.deepEqual(dec.inputs, [{ name: 'latents', type: 'float16', dims: ['B', 16, 'h', 'w'] }]);
  assert.deepEqual(dec.outputs, [{ name: 'image', type: 'float16', dims: ['B', 3, 'H', 'W'] }]);
  assert.deepEqual(enc.inputs, [{ name: 'image', type: 'float16', dims: ['B', 3, 'H', 'W'] }]);
  assert.deepEqual(enc.outputs.map((o) => [o.name, o.dims]), [['mean', ['B', 16, 'h', 'w']], ['logvar', ['B', 16, 'h', 'w']]]);
  // 3 up/down-samplings: 4 levels of which the last keeps its size.
  assert.equal(dec.nodes.filter((n) => n.opType === 'Resize').length, 3);
  assert.equal(enc.nodes.filter((n) => n.opType === 'Conv' && n.attrs.strides?.kind === 'ints' && n.attrs.strides.value[0] === 2).length, 3);
});

test('the fp16 VAE graphs stay close to the official fp32 outputs', async () => {
  const config = parseVaeConfig(configJson);
  const inputs = readFloats(join(golden, 'inputs.safetensors'));
  const outputs = readFloats(join(golden, 'outputs.safetensors'));
  const dec = await run(buildVaeDecoder(config, weights, 'float16'), { latents: inputs.get('decode_latents')! });
  const enc = await run(buildVaeEncoder(config, weights, 'float16'), { image: inputs.get('encode_image')! });
  // The documented fp16 bar (CPU provider figures, 2.1e-3 and 1.3e-3; it computes many fp16 ops in fp32).
  for (const c of [compareFloat('decoded fp16', dec.image, outputs.get('decoded')!.data, FP16_TOLERANCE), compareFloat('mean fp16', enc.mean, outputs.get('encoded_mean')!.data, FP16_TOLERANCE)]) {
    assert.ok(c.pass, JSON.stringify(c));
  }
  assertFp16(precisionOf(buildVaeDecoder(config, weights, 'float16')), 'fp16 VAE decoder');
  assertFp16(precisionOf(buildVaeEncoder(config, weights, 'float16')), 'fp16 VAE encoder');
});

test('the decoder is per sample and the encoder takes any size that is a multiple of 8', async () => {
  const config = parseVaeConfig(configJson);
  const latents = readFloats(join(golden, 'inputs.safetensors')).get('decode_latents')!;
  const one = latents.data.length / 2;
  const both = await run(buildVaeDecoder(config, weights, 'float32'), { latents });
  const second = await run(buildVaeDecoder(config, weights, 'float32'), { latents: { shape: [1, 16, 16, 16], data: latents.data.slice(one) } });
  const c = compareFloat('second sample alone', second.image, both.image.slice(both.image.length / 2), 1e-6);
  assert.ok(c.pass, JSON.stringify(c));

  const image = Float32Array.from({ length: 3 * 24 * 40 }, (_, i) => Math.sin(i * 0.37));
  const enc = await run(buildVaeEncoder(config, weights, 'float32'), { image: { shape: [1, 3, 24, 40], data: image } });
  assert.equal(enc.mean.length, 16 * 3 * 5);
  assert.ok(enc.logvar.every((v) => v >= -30 && v <= 20));
});

test('group norm stays accurate on near-constant inputs (float32 single-pass sums lose ~1e-4 there)', async () => {
  const [B, C, H, W, G] = [1, 8, 64, 128, 2];
  const n = C * H * W;
  // Per-channel constants close to each other plus a small ripple: variance tiny next to the mean.
  const x = Float32Array.from({ length: n }, (_, i) => 0.2 + 1e-3 * Math.floor(i / (H * W)) + 1e-4 * Math.sin(i));
  const w = new Map([
    ['n.weight', { shape: [C], data: Float32Array.from({ length: C }, (_, i) => 1 + i / 10) }],
    ['n.bias', { shape: [C], data: Float32Array.from({ length: C }, (_, i) => i / 100) }],
  ]);
  const g = new GraphBuilder('gn', 'float32', memoryWeights('mem', w));
  g.output(groupNorm(g, g.input('x', 'float', [B, C, H, W]), 'n', C, G, 1e-6), 'y', 'float', [B, C, H, W]);
  const y = (await run(g, { x: { shape: [B, C, H, W], data: x } })).y;
  // float64 reference.
  const per = n / G;
  const expected = new Float64Array(n);
  for (let gi = 0; gi < G; gi++) {
    let mean = 0;
    for (let i = gi * per; i < (gi + 1) * per; i++) mean += x[i];
    mean /= per;
    let v = 0;
    for (let i = gi * per; i < (gi + 1) * per; i++) v += (x[i] - mean) ** 2;
    const inv = 1 / Math.sqrt(v / per + 1e-6);
    for (let i = gi * per; i < (gi + 1) * per; i++) {
      const c = Math.floor(i / (H * W));
      expected[i] = (x[i] - mean) * inv * w.get('n.weight')!.data[c] + w.get('n.bias')!.data[c];
    }
  }
  const c = compareFloat('group norm', y, expected, 2e-6);
  assert.ok(c.pass, JSON.stringify(c));
});

test('parseVaeConfig reads the FLUX config and names unsupported settings', () => {
  const config = parseVaeConfig(configJson);
  assert.equal(config.latentChannels, 16);
  assert.equal(config.scalingFactor, 0.3611);
  assert.equal(config.shiftFactor, 0.1159);
  assert.equal(config.midBlockAddAttention, true);
  const bad = (patch: Record<string, unknown>, re: RegExp) =>
    assert.throws(() => parseVaeConfig({ ...configJson, ...patch }), (e: Error) => e instanceof VaeConfigError && re.test(e.message), JSON.stringify(patch));
  bad({ use_quant_conv: true }, /quant_conv/);
  bad({ use_post_quant_conv: undefined }, /must be present and false/);
  bad({ act_fn: 'gelu' }, /act_fn "gelu"/);
  bad({ norm_num_groups: 5 }, /not divisible by norm_num_groups 5/);
  bad({ up_block_types: ['UpDecoderBlock2D', 'AttnUpDecoderBlock2D', 'UpDecoderBlock2D', 'UpDecoderBlock2D'] }, /UpDecoderBlock2D up blocks/);
  bad({ block_out_channels: [] }, /block_out_channels/);
  bad({ scaling_factor: 'big' }, /scaling_factor/);
  assert.throws(() => parseVaeConfig([]), VaeConfigError);
});

test('a checkpoint that does not fit the config is refused with the key and both shapes', () => {
  const config = parseVaeConfig({ ...configJson, latent_channels: 4 });
  assert.throws(() => buildVaeDecoder(config, weights, 'float32'), /decoder\.conv_in\.weight" has shape \[32,16,3,3\] but the config needs \[32,4,3,3\]/);
});
