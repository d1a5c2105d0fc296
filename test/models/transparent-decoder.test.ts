import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import type { Layout } from '../../domain/layout.ts';
import { readFloats } from '../../gpu-server/golden/case.ts';
import { compareFloat, FP16_TOLERANCE } from '../../gpu-server/golden/compare.ts';
import { assertFp16, precisionOf } from './graph-precision.ts';
import {
  buildTransparentDecoder,
  parseTransparentDecoderConfig,
  patchesToLayerImages,
  patchesToRgba,
  toLevel,
  TransparentDecoderConfigError,
  transparentTokenCount,
  unpatchify,
} from '../../gpu-server/models/transparent-decoder.ts';
import { checkpointWeights, GraphBuilder, shapeOnlyWeights } from '../../gpu-server/onnx/graph.ts';
import { float32ToHalves, halvesToFloat32 } from '../../gpu-server/onnx/half.ts';
import { writeModel } from '../../gpu-server/onnx/onnx-writer.ts';
import { Checkpoint, loadAll } from '../../gpu-server/onnx/safetensors.ts';
import { openSession, ort } from '../../gpu-server/onnx/session.ts';

const golden = new URL('../fixtures/golden/transp_vae/', import.meta.url).pathname;
const configJson = JSON.parse(readFileSync(join(golden, 'config.json'), 'utf8')) as Record<string, unknown>;
const caseJson = JSON.parse(readFileSync(join(golden, 'case.json'), 'utf8')) as Layout;
const layout: Layout = { width: caseJson.width, height: caseJson.height, boxes: caseJson.boxes };
const weights = checkpointWeights(Checkpoint.open(join(golden, 'weights.safetensors')));
const extra = readFloats(join(golden, 'extra_outputs.safetensors'));
const outputs = readFloats(join(golden, 'outputs.safetensors'));
const fullSize = JSON.parse(readFileSync(new URL('../fixtures/reference/full-size-keys.json', import.meta.url), 'utf8')) as {
  transp_vae: { config: Record<string, unknown>; keys: Record<string, number[]> };
};

async function run(g: GraphBuilder, tokens: Float32Array, cos: Float32Array, sin: Float32Array): Promise<Float32Array> {
  const dir = mkdtempSync(join(tmpdir(), 'transp-test-'));
  try {
    writeModel(g, join(dir, 'm.onnx'));
    const { session } = await openSession(join(dir, 'm.onnx'), 'cpu');
    const m = tokens.length / 16;
    const t = (data: Float32Array, dims: number[]) => (g.float === 'float16' ? new ort.Tensor('float16', float32ToHalves(data), dims) : new ort.Tensor('float32', data, dims));
    const out = await session.run({ tokens: t(tokens, [1, m, 16]), rope_cos: t(cos, [m, 64]), rope_sin: t(sin, [m, 64]) });
    await session.release();
    return out.patches.type === 'float16' ? halvesToFloat32(out.patches.data as Uint16Array) : (out.patches.data as Float32Array);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const tokensIn = extra.get('tokens_in')!.data;
const ropeCos = extra.get('rope_cos')!.data;
const ropeSin = extra.get('rope_sin')!.data;
const tokensOut = extra.get('tokens_out')!.data;

// The whole chain from full latents (gather, RoPE, graph, unpatchify, RGBA) runs in
// test/golden/cases.test.ts; here the graph alone, on the official intermediates.
test('the graph maps the official tokens and RoPE tables to the official fc_out output', async () => {
  const out = await run(buildTransparentDecoder(parseTransparentDecoderConfig(configJson), weights, 'float32'), tokensIn, ropeCos, ropeSin);
  const c = compareFloat('tokens_out', out, tokensOut);
  assert.ok(c.pass, JSON.stringify(c));
});

test('the RoPE tables change the result, and attention is equivariant to moving a token with its position', async () => {
  const cfg = parseTransparentDecoderConfig(configJson);
  const m = 12;
  const tokens = tokensIn.slice(0, m * 16);
  const cos = ropeCos.slice(0, m * 64);
  const sin = ropeSin.slice(0, m * 64);
  const g = () => buildTransparentDecoder(cfg, weights, 'float32');
  const base = await run(g(), tokens, cos, sin);
  const plain = await run(g(), tokens, new Float32Array(m * 64).fill(1), new Float32Array(m * 64));
  assert.ok(compareFloat('rope matters', plain, base, 1e-3).pass === false, 'the RoPE tables must change the result');
  // Swapping two tokens together with their positions swaps their outputs and nothing else.
  const swap = <T extends Float32Array>(a: T, width: number): T => {
    const b = a.slice() as T;
    b.set(a.subarray(0, width), 3 * width);
    b.set(a.subarray(3 * width, 4 * width), 0);
    return b;
  };
  const swapped = await run(g(), swap(tokens, 16), swap(cos, 64), swap(sin, 64));
  const c = compareFloat('equivariance', swap(swapped, 256), base, 1e-5);
  assert.ok(c.pass, JSON.stringify(c));
});

test('the fp16 graph stays close to the official output', async () => {
  const out = await run(buildTransparentDecoder(parseTransparentDecoderConfig(configJson), weights, 'float16'), tokensIn, ropeCos, ropeSin);
  // The documented fp16 bar (CPU provider figure, 8.0e-4; it computes many fp16 ops in fp32).
  const c = compareFloat('tokens_out fp16', out, tokensOut, FP16_TOLERANCE);
  assert.ok(c.pass, JSON.stringify(c));
  assertFp16(precisionOf(buildTransparentDecoder(parseTransparentDecoderConfig(configJson), weights, 'float16')), 'fp16 transparent decoder');
});

test('full-size ViT-B decoder consumes exactly the transp_vae keys, with the documented inputs and outputs', () => {
  const cfg = parseTransparentDecoderConfig(fullSize.transp_vae.config);
  assert.deepEqual([cfg.hidden, cfg.layers, cfg.heads, cfg.mlp], [768, 12, 12, 3072]);
  const g = buildTransparentDecoder(cfg, shapeOnlyWeights('full-size-keys.json', fullSize.transp_vae.keys), 'float16');
  assert.deepEqual([...g.usedKeys.keys()].sort(), Object.keys(fullSize.transp_vae.keys).sort());
  for (const [k, shape] of g.usedKeys) assert.deepEqual(shape, fullSize.transp_vae.keys[k], k);
  assert.deepEqual(g.inputs, [
    { name: 'tokens', type: 'float16', dims: [1, 'M', 16] },
    { name: 'rope_cos', type: 'float16', dims: ['M', 64] },
    { name: 'rope_sin', type: 'float16', dims: ['M', 64] },
  ]);
  assert.deepEqual(g.outputs, [{ name: 'patches', type: 'float16', dims: [1, 'M', 256] }]);
  assert.equal(g.nodes.filter((n) => n.opType === 'MultiHeadAttention').length, 12);
  // ART's checkpoint ships no config: the default is its vit-b/32.
  assert.deepEqual(parseTransparentDecoderConfig({}), cfg);
});

test('unpatchify and patchesToRgba reproduce the official fg, alpha and RGBA from the official patches', () => {
  const { fg, alpha } = unpatchify(tokensOut, layout);
  assert.deepEqual(fg, outputs.get('decoded_fg')!.data);
  assert.deepEqual(alpha, outputs.get('decoded_alpha')!.data);
  const rgba = patchesToRgba(tokensOut, layout);
  const t = loadAll(join(golden, 'outputs.safetensors')).get('rgba')!;
  assert.deepEqual(rgba, new Uint8Array(t.bytes));
});

test('patches are channel-major 8x8 cells, layer by layer, row-major; outside a box is (127,127,127,0)', () => {
  const small: Layout = { width: 32, height: 16, boxes: [[0, 0, 32, 16], [0, 0, 32, 16], [16, 8, 32, 16]] };
  assert.equal(transparentTokenCount(small), 8 + 8 + 2);
  // Each value encodes (token, channel, py, px) so every placement is checkable: value in [-1, 1].
  const patches = Float32Array.from({ length: 18 * 256 }, (_, i) => (i % 997) / 998 - 0.5);
  const rgba = patchesToRgba(patches, small);
  const at = (layer: number, x: number, y: number, c: number) => rgba[((layer * 16 + y) * 32 + x) * 4 + c];
  const value = (token: number, c: number, py: number, px: number) => patches[token * 256 + c * 64 + py * 8 + px];
  // Layer 2's first token is the cell at (x 2, y 1); its second the cell at (x 3, y 1).
  assert.equal(at(2, 16 + 5, 8 + 3, 1), toLevel(value(16, 1, 3, 5)));
  assert.equal(at(2, 24 + 7, 8 + 0, 3), toLevel(value(17, 3, 0, 7)));
  // Layer 0, second row of cells, first cell: token 4.
  assert.equal(at(0, 2, 8 + 6, 0), toLevel(value(4, 0, 6, 2)));
  assert.deepEqual([0, 1, 2, 3].map((c) => at(2, 3, 3, c)), [127, 127, 127, 0]);

  const layers = patchesToLayerImages(patches, small);
  assert.deepEqual(layers.map((l) => [l.index, l.width, l.height]), [[0, 32, 16], [1, 32, 16], [2, 16, 8]]);
  for (const l of layers) {
    for (let y = 0; y < l.height; y++) {
      for (let x = 0; x < l.width; x++) {
        for (let c = 0; c < 4; c++) assert.equal(l.rgba[(y * l.width + x) * 4 + c], at(l.index, l.box[0] + x, l.box[1] + y, c));
      }
    }
  }
  assert.throws(() => patchesToRgba(patches.subarray(256), small), /17 tokens of 256|18 tokens/);
});

test('toLevel clamps and truncates like the official uint8 conversion', () => {
  assert.deepEqual([-2, -1, 0, 1, 3].map(toLevel), [0, 0, 127, 255, 255]);
  assert.equal(toLevel(0.999), 254);
});

test('parseTransparentDecoderConfig names what is wrong', () => {
  const bad = (patch: Record<string, unknown>, re: RegExp) =>
    assert.throws(() => parseTransparentDecoderConfig({ ...configJson, ...patch }), (e: Error) => e instanceof TransparentDecoderConfigError && re.test(e.message), JSON.stringify(patch));
  bad({ rope_axes: [8, 28, 30] }, /sum to 66 but the head size is 64/);
  bad({ heads: 3 }, /not divisible by heads 3/);
  bad({ fc_in: [4, 128] }, /fc_in takes 4 channels/);
  bad({ fc_out: [128, 192] }, /need 256/);
  bad({ arch: 'vit-z' }, /unknown arch "vit-z"/);
  bad({ layers: 0 }, /"layers" must be a positive integer/);
});
