import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { validateLayout } from '../../domain/layout.ts';
import { doubleBlockFlops, singleBlockFlops } from './flops-reference.ts';
import { transformerFlops } from '../../bench/flops.ts';
import { fixtureLayout, generatedLayout, wholeCanvas } from '../../bench/layouts.ts';
import { randomTransformerWeights, transformerKeyShapes } from '../../bench/random-transformer.ts';
import { median, table } from '../../bench/stats.ts';
import { parseTransformerConfig } from '../../gpu-server/models/transformer.ts';
import { transformerTokens } from '../../gpu-server/pipeline/layout-tokens.ts';

const reference = JSON.parse(readFileSync(new URL('../fixtures/reference/full-size-keys.json', import.meta.url), 'utf8')) as {
  transformer: { config: unknown; keys: Record<string, number[]> };
};

test('random weights carry exactly the official keys and shapes (checked at full size)', () => {
  const shapes = transformerKeyShapes(parseTransformerConfig(reference.transformer.config));
  assert.deepEqual(Object.fromEntries([...shapes].sort(([a], [b]) => a.localeCompare(b))), Object.fromEntries(Object.entries(reference.transformer.keys).sort(([a], [b]) => a.localeCompare(b))));
});

test('random weights are seeded, finite and scaled by fan-in; q/k norm scales are 1', () => {
  const c = parseTransformerConfig(JSON.parse(readFileSync(new URL('../fixtures/golden/transformer/config.json', import.meta.url), 'utf8')));
  const a = randomTransformerWeights(c, 3), b = randomTransformerWeights(c, 3), other = randomTransformerWeights(c, 4);
  const key = 'transformer_blocks.0.attn.to_q.weight';
  assert.deepEqual(a.read(key), b.read(key));
  assert.notDeepEqual(a.read(key), other.read(key));
  const bound = 1 / Math.sqrt(a.shape(key)![1]);
  assert.ok(a.read(key).every((v) => Number.isFinite(v) && Math.abs(v) <= bound));
  assert.ok(a.read('single_transformer_blocks.1.attn.norm_k.weight').every((v) => v === 1));
});

test('generated layouts are valid, repeatable, and have the asked number of child layers', () => {
  const l = generatedLayout(256, 50, 4);
  validateLayout(l.layout);
  assert.equal(l.layout.boxes.length, 52);
  assert.deepEqual(generatedLayout(256, 50, 4).layout, l.layout);
  for (const [x1, y1, x2, y2] of l.layout.boxes.slice(2)) assert.ok(x2 - x1 <= 64 && y2 - y1 <= 64);
});

test('fixture layouts are scaled to the canvas and snapped outwards; the baseline makes every box the canvas', () => {
  const l = fixtureLayout(256, 3)!;
  validateLayout(l.layout);
  assert.equal(l.layout.boxes.length, 5);
  assert.equal(fixtureLayout(256, 99), undefined);
  const full = wholeCanvas(l.layout);
  assert.equal(transformerTokens(full).count, 5 * (256 / 16) ** 2);
  assert.ok(transformerTokens(l.layout).count < transformerTokens(full).count);
});

test('analytic FLOPs: block terms match a direct count; attention grows with the square of the sequence', () => {
  const c = parseTransformerConfig({ num_layers: 1, num_single_layers: 1, attention_head_dim: 64, num_attention_heads: 2, joint_attention_dim: 32, pooled_projection_dim: 16, axes_dims_rope: [8, 28, 28] });
  const f = transformerFlops(c, 100, 20);
  const [d, s] = [doubleBlockFlops(120, 128), singleBlockFlops(120, 128)];
  assert.equal(f.attention, d.attention + s.attention);
  // Blocks, plus x_embedder (64 -> D), context_embedder (32 -> D) and proj_out (D -> 64).
  assert.equal(f.linear, d.linear + s.linear + 2 * 100 * 64 * 128 + 2 * 20 * 32 * 128 + 2 * 100 * 128 * 64);
  const g = transformerFlops(c, 220, 20);
  assert.equal(g.attention / f.attention, 4);
});

test('median and table', () => {
  assert.equal(median([5, 1, 3]), 3);
  assert.equal(median([4, 1, 3, 2]), 2.5);
  assert.throws(() => median([]), /no values/);
  assert.equal(table(['a', 'bb'], [[10, 'x']]), ' a  bb\n--  --\n10   x');
});
