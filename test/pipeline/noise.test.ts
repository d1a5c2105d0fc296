import assert from 'node:assert/strict';
import { test } from 'node:test';
import { transformerTokens } from '../../gpu-server/pipeline/layout-tokens.ts';
import { tokenNoise } from '../../gpu-server/pipeline/noise.ts';
import type { BoxTuple, Layout } from '../../gpu-server/pipeline/types.ts';

const layout = (child: BoxTuple): Layout => ({ width: 256, height: 256, boxes: [[0, 0, 256, 256], [0, 0, 256, 256], child, [32, 32, 160, 96]] });

test('same seed, same noise; another seed, other noise', () => {
  const grid = transformerTokens(layout([0, 0, 64, 64]));
  const a = tokenNoise(41, grid);
  assert.deepEqual(tokenNoise(41, grid), a);
  const b = tokenNoise(42, grid);
  let same = 0;
  a.forEach((v, i) => { if (v === b[i]) same++; });
  assert.equal(same, 0);
  const far = tokenNoise(41 + 2 ** 32, grid);
  assert.notDeepEqual(far, a);
});

test('noise is standard normal (mean, variance, tails, neighbour correlation)', () => {
  const n = tokenNoise(7, transformerTokens(layout([0, 0, 256, 256])));
  let sum = 0, sq = 0, beyond3 = 0, cross = 0;
  for (let i = 0; i < n.length; i++) {
    sum += n[i]; sq += n[i] * n[i];
    if (Math.abs(n[i]) > 3) beyond3++;
    if (i > 0) cross += n[i] * n[i - 1];
  }
  const count = n.length;
  const mean = sum / count, variance = sq / count - mean * mean;
  assert.ok(Math.abs(mean) < 0.02, `mean ${mean}`);
  assert.ok(Math.abs(variance - 1) < 0.03, `variance ${variance}`);
  assert.ok(Math.abs(cross / count) < 0.02, `lag-1 correlation ${cross / count}`);
  assert.ok(beyond3 / count > 0.0015 && beyond3 / count < 0.004, `share beyond 3 sigma ${beyond3 / count}`);
});

test("a layer's noise does not depend on the other layers' boxes", () => {
  const g1 = transformerTokens(layout([0, 0, 64, 64]));
  const g2 = transformerTokens(layout([16, 16, 128, 48]));
  const n1 = tokenNoise(3, g1), n2 = tokenNoise(3, g2);
  for (const layer of [0, 1, 3]) {
    const a = g1.layers[layer], b = g2.layers[layer];
    assert.deepEqual(n1.subarray(a.offset * 64, (a.offset + a.count) * 64), n2.subarray(b.offset * 64, (b.offset + b.count) * 64));
  }
  // Where the two boxes of layer 2 overlap, the cell keeps its noise too.
  const a = g1.layers[2], b = g2.layers[2];
  const tokA = a.offset + (1 - a.y1) * (a.x2 - a.x1) + (2 - a.x1); // cell (y=1, x=2)
  const tokB = b.offset + (1 - b.y1) * (b.x2 - b.x1) + (2 - b.x1);
  assert.deepEqual(n1.subarray(tokA * 64, tokA * 64 + 64), n2.subarray(tokB * 64, tokB * 64 + 64));
});

test('bad seeds are refused', () => {
  const grid = transformerTokens(layout([0, 0, 64, 64]));
  assert.throws(() => tokenNoise(-1, grid), /non-negative integer/);
  assert.throws(() => tokenNoise(1.5, grid), /non-negative integer/);
});
