/**
 * 52 layers for real (the model's max_layer_num: merged, background and 50 children): the
 * transformer graph adds `layer_pe[l]` to every token of layer l up to index 51, and a whole
 * generation of 52 layers through createPipeline equals the independently composed one.
 * (test/bridge/many-layers.test.ts takes the same job through the bridge.)
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { after, before, test } from 'node:test';
import { type BoxTuple, MAX_LAYERS } from '../../domain/layout.ts';
import { runGraphOnce } from '../../gpu-server/golden/case.ts';
import { compareLevels } from '../../gpu-server/golden/compare.ts';
import { writeTinyModel } from '../../gpu-server/model-folder/tiny.ts';
import { buildTransformer, parseTransformerConfig } from '../../gpu-server/models/transformer.ts';
import { checkpointWeights } from '../../gpu-server/onnx/graph.ts';
import { Checkpoint } from '../../gpu-server/onnx/safetensors.ts';
import { ort } from '../../gpu-server/onnx/session.ts';
import { createPipeline } from '../../gpu-server/pipeline/art-pipeline.ts';
import { transformerTokens } from '../../gpu-server/pipeline/layout-tokens.ts';
import { streamNoise } from '../../gpu-server/pipeline/noise.ts';
import { ropeTables } from '../../gpu-server/pipeline/rope.ts';
import type { ArtPipeline } from '../../gpu-server/pipeline/types.ts';
import { GOLDEN } from './golden-data.ts';
import { fiftyTwoLayers, ReferenceGenerator } from './reference-generation.ts';

test('the transformer adds layer_pe[l] to each token of layer l, for every l up to 51', async () => {
  const dir = join(GOLDEN, 'transformer');
  const config = parseTransformerConfig((await import(join(dir, 'config.json'), { with: { type: 'json' } })).default, 'golden transformer config');
  assert.equal(config.maxLayerNum, MAX_LAYERS);
  const ckpt = Checkpoint.open(join(dir, 'weights.safetensors'));
  const layout = fiftyTwoLayers();
  const grid = transformerTokens(layout);
  const n = grid.count, dim = config.heads * config.headDim, T = 4;
  const hidden = streamNoise(5, 'hidden', n * 64);
  const rope = ropeTables(grid.ids, config.axesDimsRope, T);
  const f32 = (data: Float32Array, dims: number[]) => new ort.Tensor('float32', data, dims);
  const out = await runGraphOnce(buildTransformer(config, checkpointWeights(ckpt), 'float32', { intermediates: true }), {
    hidden_states: f32(hidden, [1, n, 64]),
    token_layer: new ort.Tensor('int64', BigInt64Array.from(grid.layerOf, (v) => BigInt(v)), [n]),
    encoder_hidden_states: f32(streamNoise(6, 'text', T * config.jointAttentionDim), [1, T, config.jointAttentionDim]),
    pooled_projections: f32(streamNoise(7, 'pooled', config.pooledProjectionDim), [1, config.pooledProjectionDim]),
    timestep: f32(Float32Array.of(0.5), [1]),
    guidance: f32(Float32Array.of(3), [1]),
    rope_cos: f32(rope.cos, [rope.rows, rope.dim]),
    rope_sin: f32(rope.sin, [rope.rows, rope.dim]),
  });
  // x_embedder(x) + layer_pe[layer], in float64 from the checkpoint's tensors.
  const w = ckpt.readFloat32('x_embedder.weight'), b = ckpt.readFloat32('x_embedder.bias'), pe = ckpt.readFloat32('layer_pe');
  const got = out.packed_hidden_after_crop;
  let worst = 0, scale = 0;
  const seen = new Set<number>();
  // This layout's token order, written out: 64 merged tokens, 64 background, then one per child.
  assert.equal(n, 2 * 64 + 50);
  const layerOfToken = (t: number) => (t < 64 ? 0 : t < 128 ? 1 : 2 + (t - 128));
  for (let t = 0; t < n; t++) {
    const l = layerOfToken(t);
    seen.add(l);
    for (let o = 0; o < dim; o++) {
      let v = b[o] + pe[l * dim + o];
      for (let i = 0; i < 64; i++) v += w[o * 64 + i] * hidden[t * 64 + i];
      worst = Math.max(worst, Math.abs(got[t * dim + o] - v));
      scale = Math.max(scale, Math.abs(v));
    }
  }
  assert.equal(seen.size, MAX_LAYERS);
  assert.ok(seen.has(51));
  assert.ok(worst / scale < 1e-5, `packed_hidden_after_crop off by ${worst} (max ${scale})`);
  // The embeddings of the last two layers differ, so using index 50 (or clamping) would show above.
  let delta = 0;
  for (let o = 0; o < dim; o++) delta = Math.max(delta, Math.abs(pe[51 * dim + o] - pe[50 * dim + o]));
  assert.ok(delta > 100 * worst, `layer_pe[51] and [50] differ by only ${delta}`);
});

let root: string;
let pipeline: ArtPipeline;
let reference: ReferenceGenerator;
before(async () => {
  root = mkdtempSync(join(tmpdir(), 'art-52-'));
  writeTinyModel(join(root, 'tiny'));
  pipeline = await createPipeline({ modelDir: join(root, 'tiny'), provider: 'cpu' });
  reference = await ReferenceGenerator.open(join(root, 'tiny'));
});
after(async () => {
  await pipeline?.dispose();
  await reference?.release();
  rmSync(root, { recursive: true, force: true });
});

test('a 52-layer generation through createPipeline equals the composed one; 53 layers are refused and nothing breaks', async () => {
  const params = { prompt: 'fifty small stickers on a board', layout: fiftyTwoLayers(), steps: 2, guidance: 3, trueCfg: 4, seed: 52 };
  const r = await pipeline.generate(params);
  const e = await reference.generate(params);
  assert.equal(r.layers.length, MAX_LAYERS);
  assert.deepEqual(r.layers[51].box, [16, 96, 32, 112]);
  r.layers.forEach((l, i) => {
    assert.equal(l.index, i);
    const c = compareLevels(`layer ${i}`, l.rgba, e.layers[i].rgba, 1, 0.999);
    assert.ok(c.pass, JSON.stringify(c));
  });
  const tooMany = { ...params, layout: { ...params.layout, boxes: [...params.layout.boxes, [112, 112, 128, 128] as BoxTuple] } };
  await assert.rejects(pipeline.generate(tooMany), /53 boxes|at most 52|52/);
  const again = await pipeline.generate({ ...params, steps: 1 });
  assert.equal(again.layers.length, MAX_LAYERS);
});
