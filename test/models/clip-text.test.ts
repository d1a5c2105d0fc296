import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { readInt64 } from '../../gpu-server/golden/case.ts';
import { compareFloat, FP16_TOLERANCE } from '../../gpu-server/golden/compare.ts';
import { assertFp16, precisionOf } from './graph-precision.ts';
import { buildClipTextEncoder, parseClipTextConfig, type ClipTextConfig } from '../../gpu-server/models/clip-text.ts';
import { checkpointWeights, type GraphBuilder, GraphError, shapeOnlyWeights } from '../../gpu-server/onnx/graph.ts';
import { halvesToFloat32 } from '../../gpu-server/onnx/half.ts';
import { writeModel } from '../../gpu-server/onnx/onnx-writer.ts';
import { Checkpoint } from '../../gpu-server/onnx/safetensors.ts';
import { openSession, ort } from '../../gpu-server/onnx/session.ts';
import { clipShapes } from '../model-folder/flux-dev-stand-in.ts';

const golden = new URL('../fixtures/golden/clip_text/', import.meta.url).pathname;
const configJson = JSON.parse(readFileSync(join(golden, 'config.json'), 'utf8')) as Record<string, unknown>;
const weightsFile = join(golden, 'weights.safetensors');
const weights = checkpointWeights(Checkpoint.open(weightsFile));

async function run(g: GraphBuilder, ids: BigInt64Array, shape: number[]): Promise<{ pooled: Float32Array; last: Float32Array }> {
  const dir = mkdtempSync(join(tmpdir(), 'clip-test-'));
  try {
    writeModel(g, join(dir, 'm.onnx'));
    const { session } = await openSession(join(dir, 'm.onnx'), 'cpu');
    const out = await session.run({ input_ids: new ort.Tensor('int64', ids, shape) });
    await session.release();
    const f = (t: ort.Tensor): Float32Array => (t.type === 'float16' ? halvesToFloat32(t.data as Uint16Array) : (t.data as Float32Array));
    return { pooled: f(out.pooled), last: f(out.last_hidden_state) };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const row = (last: Float32Array, b: number, pos: number, s: number, d: number): Float32Array => last.slice((b * s + pos) * d, (b * s + pos + 1) * d);

test('CLIP pools the first <|endoftext|> (legacy argmax) with eos_token_id 2, and the first eos_token_id otherwise', async () => {
  const s = 77;
  const d = 32;
  // Row 0: the largest id (999) at 5 and again at 9, eos id 7 at 12. Row 1: 999 at 40.
  const ids = new BigInt64Array(2 * s).fill(3n);
  ids[0] = 998n; ids[5] = 999n; ids[9] = 999n; ids[12] = 7n; ids[20] = 7n;
  ids[s] = 998n; ids[s + 30] = 7n; ids[s + 40] = 999n;

  const legacy = parseClipTextConfig(configJson);
  assert.deepEqual(legacy.pooling, { kind: 'argmax' });
  let out = await run(buildClipTextEncoder(legacy, weights, 'float32'), ids, [2, s]);
  assert.deepEqual(out.pooled.slice(0, d), row(out.last, 0, 5, s, d));
  assert.deepEqual(out.pooled.slice(d), row(out.last, 1, 40, s, d));

  const byEos = parseClipTextConfig({ ...configJson, eos_token_id: 7 });
  assert.deepEqual(byEos.pooling, { kind: 'eos', eosTokenId: 7 });
  out = await run(buildClipTextEncoder(byEos, weights, 'float32'), ids, [2, s]);
  assert.deepEqual(out.pooled.slice(0, d), row(out.last, 0, 12, s, d));
  assert.deepEqual(out.pooled.slice(d), row(out.last, 1, 30, s, d));
});

test('CLIP attention is causal: a token never sees the tokens after it', async () => {
  const s = 77;
  const a = new BigInt64Array(s).fill(5n);
  const b = a.slice();
  for (let i = 40; i < s; i++) b[i] = BigInt(100 + i);
  const g = () => buildClipTextEncoder(parseClipTextConfig(configJson), weights, 'float32');
  const [ra, rb] = [await run(g(), a, [1, s]), await run(g(), b, [1, s])];
  assert.deepEqual(ra.last.slice(0, 40 * 32), rb.last.slice(0, 40 * 32));
  assert.notDeepEqual(ra.last.slice(40 * 32), rb.last.slice(40 * 32));
});

test('the fp16 CLIP graph stays close to fp32 on the golden inputs', async () => {
  const config = parseClipTextConfig(configJson);
  const ids = readInt64(join(golden, 'inputs.safetensors'), 'input_ids');
  const f32 = await run(buildClipTextEncoder(config, weights, 'float32'), ids.data, ids.shape);
  const f16 = await run(buildClipTextEncoder(config, weights, 'float16'), ids.data, ids.shape);
  // The documented fp16 bar (measured on the CPU provider, which computes many fp16 ops in fp32: 8.3e-4).
  const c = compareFloat('pooled fp16', f16.pooled, f32.pooled, FP16_TOLERANCE);
  assert.ok(c.pass, JSON.stringify(c));
  assertFp16(precisionOf(buildClipTextEncoder(config, weights, 'float16')), 'fp16 CLIP');
});

test('parseClipTextConfig names what is wrong', () => {
  assert.throws(() => parseClipTextConfig({ ...configJson, hidden_act: 'relu' }), (e: Error) => e instanceof GraphError && /hidden_act "relu"/.test(e.message));
  assert.throws(() => parseClipTextConfig({ ...configJson, num_attention_heads: 3 }), /not divisible by num_attention_heads 3/);
  assert.throws(() => parseClipTextConfig({ ...configJson, hidden_size: undefined }), /"hidden_size" must be a positive integer/);
  // A full CLIPConfig holds the text model's settings under text_config.
  assert.equal(parseClipTextConfig({ text_config: configJson }).hidden, 32);
});

test('a checkpoint that disagrees with the config is refused, naming the tensor', () => {
  const config: ClipTextConfig = { ...parseClipTextConfig(configJson), intermediate: 48 };
  assert.throws(() => buildClipTextEncoder(config, weights, 'float32'), /text_model\.encoder\.layers\.0\.mlp\.fc1\.weight" has shape \[64,32\] but the config needs \[48,32\]/);
});

test('full-size CLIP-L: consumes exactly the checkpoint keys, 123.06 M parameters, documented inputs and outputs', () => {
  const keys = clipShapes(); // the golden checkpoint's names with 12 layers, at CLIP-L's size
  const config = parseClipTextConfig({ ...configJson, vocab_size: 49408, hidden_size: 768, intermediate_size: 3072, num_hidden_layers: 12, num_attention_heads: 12 });
  for (const precision of ['float32', 'float16'] as const) {
    const g = buildClipTextEncoder(config, shapeOnlyWeights('CLIP-L', keys), precision);
    assert.deepEqual([...g.usedKeys.keys()].sort(), Object.keys(keys).sort());
    for (const [k, shape] of g.usedKeys) assert.deepEqual(shape, keys[k], k);
    assert.deepEqual(g.inputs, [{ name: 'input_ids', type: 'int64', dims: ['B', 77] }]);
    assert.deepEqual(
      [...g.outputs].sort((a, b) => a.name.localeCompare(b.name)),
      [{ name: 'last_hidden_state', type: precision, dims: ['B', 77, 768] }, { name: 'pooled', type: precision, dims: ['B', 768] }],
    );
    const params = [...g.usedKeys.values()].reduce((n, s) => n + s.reduce((a, b) => a * b, 1), 0);
    assert.equal(params, 123_060_480); // CLIP ViT-L/14's text tower
    assert.equal(g.nodes.filter((n) => n.opType === 'MultiHeadAttention').length, 12);
  }
});
