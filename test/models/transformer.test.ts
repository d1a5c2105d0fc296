import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { buildTransformer, parseTransformerConfig } from '../../gpu-server/models/transformer.ts';
import { memoryWeights, shapeOnlyWeights } from '../../gpu-server/onnx/graph.ts';
import onnxProto from 'onnx-proto';
import { buildModelProto, placeExternal } from '../../gpu-server/onnx/onnx-writer.ts';
import { Checkpoint } from '../../gpu-server/onnx/safetensors.ts';

const reference = JSON.parse(readFileSync(new URL('../fixtures/reference/full-size-keys.json', import.meta.url), 'utf8')) as {
  transformer: { config: unknown; keys: Record<string, number[]> };
};

test('the full-size graph consumes exactly the 1161 official transformer keys with their shapes', () => {
  const config = parseTransformerConfig(reference.transformer.config);
  assert.deepEqual([config.numLayers, config.numSingleLayers, config.heads, config.headDim, config.jointAttentionDim, config.pooledProjectionDim, config.maxLayerNum], [19, 38, 24, 128, 4096, 768, 52]);
  const g = buildTransformer(config, shapeOnlyWeights('full-size-keys.json', reference.transformer.keys));
  const expected = Object.entries(reference.transformer.keys);
  assert.equal(expected.length, 1161);
  assert.deepEqual([...g.usedKeys.keys()].sort(), expected.map(([k]) => k).sort());
  for (const [key, shape] of expected) assert.deepEqual(g.usedKeys.get(key), shape, key);

  const params = expected.reduce((n, [, s]) => n + s.reduce((a, b) => a * b, 1), 0);
  assert.ok(Math.abs(params / 1e9 - 11.9) < 0.01, `${params} parameters`);
  // Every parameter lands in the external data file; the fp16 build halves it.
  assert.ok(placeExternal(g).totalBytes >= params * 4);
  assert.ok(placeExternal(buildTransformer(config, shapeOnlyWeights('ref', reference.transformer.keys), 'float16')).totalBytes < params * 2.01);

  assert.deepEqual(g.inputs.map((i) => [i.name, i.type, i.dims]), [
    ['hidden_states', 'float32', ['batch', 'tokens', 64]],
    ['token_layer', 'int64', ['tokens']],
    ['encoder_hidden_states', 'float32', ['batch', 'text_tokens', 4096]],
    ['pooled_projections', 'float32', ['batch', 768]],
    ['timestep', 'float32', ['batch']],
    ['guidance', 'float32', ['batch']],
    ['rope_cos', 'float32', ['joint_tokens', 128]],
    ['rope_sin', 'float32', ['joint_tokens', 128]],
  ]);
  assert.deepEqual(g.outputs.map((o) => [o.name, o.dims]), [['noise_pred', ['batch', 'tokens', 64]]]);
  // The packed-token interface: attention is the fused op, one per block.
  assert.equal(g.nodes.filter((n) => n.opType === 'MultiHeadAttention' && n.domain === 'com.microsoft').length, 19 + 38);

  // The full-size .onnx itself (weights external) is small and valid protobuf, every weight placed.
  const proto = onnxProto.onnx.ModelProto.decode(buildModelProto(g, 'transformer.onnx.data'));
  assert.ok(proto.graph!.initializer!.length >= 1161);
  const external = proto.graph!.initializer!.filter((t) => t.dataLocation === onnxProto.onnx.TensorProto.DataLocation.EXTERNAL);
  const externalNames = new Set(external.map((t) => t.name));
  for (const [key] of expected) assert.ok(externalNames.has(key) || externalNames.has(`${key}.T`), `${key} is external data`);
  const ends = external.map((t) => Number(t.externalData!.find((e) => e.key === 'offset')!.value) + Number(t.externalData!.find((e) => e.key === 'length')!.value));
  assert.equal(Math.max(...ends), placeExternal(g).totalBytes);
});

const golden = new URL('../fixtures/golden/transformer/', import.meta.url).pathname;
const goldenConfig = () => parseTransformerConfig(JSON.parse(readFileSync(golden + 'config.json', 'utf8')));

function goldenTensors() {
  const ckpt = Checkpoint.open(golden + 'weights.safetensors');
  return new Map(ckpt.keys().map((k) => [k, { shape: ckpt.info(k).shape, data: ckpt.readFloat32(k) }]));
}

test('a checkpoint with a missing key is refused with the key named', () => {
  const tensors = goldenTensors();
  tensors.delete('single_transformer_blocks.1.attn.norm_k.weight');
  assert.throws(() => buildTransformer(goldenConfig(), memoryWeights('tiny.safetensors', tensors)), /tiny\.safetensors: tensor "single_transformer_blocks\.1\.attn\.norm_k\.weight" is missing/);
});

test('a checkpoint whose shapes disagree with config.json is refused with both shapes', () => {
  const tensors = goldenTensors();
  tensors.set('x_embedder.weight', { shape: [32, 16], data: new Float32Array(32 * 16) });
  assert.throws(() => buildTransformer(goldenConfig(), memoryWeights('tiny.safetensors', tensors)), /"x_embedder\.weight" has shape \[32,16\] but the config needs \[32,64\]/);
  assert.throws(() => parseTransformerConfig({ ...JSON.parse(readFileSync(golden + 'config.json', 'utf8')), axes_dims_rope: [4, 6, 8] }), /sum to 18, not attention_head_dim 16/);
});
