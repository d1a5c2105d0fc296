import assert from 'node:assert/strict';
import { test } from 'node:test';
import { latentTokens, transformerTokens } from '../../gpu-server/pipeline/layout-tokens.ts';
import { ropeTables } from '../../gpu-server/pipeline/rope.ts';
import { goldenLayout, goldenTensors, maxAbsDiff } from './golden-data.ts';

// Both tables are float64 angles cast to float32 in the reference: expect the same float32 values.
test('transformer RoPE tables (text first, axes 4,6,6) match the official ones', () => {
  const grid = transformerTokens(goldenLayout('transformer'));
  const out = goldenTensors('transformer', 'outputs.safetensors');
  const t = ropeTables(grid.ids, [4, 6, 6], 8);
  assert.deepEqual([t.rows, t.dim], out.shape('rope_cos'));
  assert.equal(maxAbsDiff(t.cos, out.f32('rope_cos')), 0);
  assert.equal(maxAbsDiff(t.sin, out.f32('rope_sin')), 0);
});

test('transparent decoder RoPE tables (latent grid, axes 8,28,28) match the official ones', () => {
  const grid = latentTokens(goldenLayout('transp_vae'));
  const out = goldenTensors('transp_vae', 'extra_outputs.safetensors');
  const t = ropeTables(grid.ids, [8, 28, 28]);
  assert.deepEqual([t.rows, t.dim], out.shape('rope_cos'));
  assert.equal(maxAbsDiff(t.cos, out.f32('rope_cos')), 0);
  assert.equal(maxAbsDiff(t.sin, out.f32('rope_sin')), 0);
});

test('bad axes are refused', () => {
  assert.throws(() => ropeTables([0, 0, 0], [4, 5, 6]), /even/);
  assert.throws(() => ropeTables([0, 0], [4, 6, 6]), /multiple of 3/);
});
