import assert from 'node:assert/strict';
import { test } from 'node:test';
import { type BoxTuple, type Layout, LayoutError, MAX_LAYERS, snapLayout, validateLayout } from '../../domain/layout.ts';
import { latentTokens, transformerTokens } from '../../gpu-server/pipeline/layout-tokens.ts';
import { goldenLayout, goldenTensors } from './golden-data.ts';

const canvas = (boxes: BoxTuple[], width = 128, height = 128): Layout => ({ width, height, boxes: [[0, 0, width, height], [0, 0, width, height], ...boxes] });

test('transformer token ids match the official img_ids', () => {
  const grid = transformerTokens(goldenLayout('transformer'));
  const imgIds = goldenTensors('transformer', 'inputs.safetensors').f32('img_ids');
  assert.equal(grid.count, imgIds.length / 3);
  assert.deepEqual(Array.from(grid.ids), Array.from(imgIds));
  assert.deepEqual(Array.from(grid.layerOf), Array.from(imgIds.filter((_, i) => i % 3 === 0)));
});

test('layer offsets and counts partition the sequence', () => {
  const grid = transformerTokens(goldenLayout('transformer'));
  let next = 0;
  for (const l of grid.layers) {
    assert.equal(l.offset, next);
    assert.equal(l.count, (l.x2 - l.x1) * (l.y2 - l.y1));
    next += l.count;
  }
  assert.equal(next, grid.count);
});

test('latent tokens cover the 8-pixel cells, 4 per transformer token', () => {
  const layout = goldenLayout('transp_vae');
  const cells = latentTokens(layout);
  assert.equal(cells.count, 4 * transformerTokens(layout).count);
  assert.equal(cells.count, goldenTensors('transp_vae', 'extra_outputs.safetensors').shape('tokens_in')[1]);
  const l2 = cells.layers[2];
  assert.deepEqual([l2.x1, l2.y1, l2.x2, l2.y2], [2, 2, 10, 8]);
  assert.deepEqual(Array.from(cells.ids.slice(l2.offset * 3, l2.offset * 3 + 6)), [2, 2, 2, 2, 2, 3]);
});

test('validateLayout accepts the golden layout', () => {
  validateLayout(goldenLayout('pipeline'));
});

const rejects: [string, Layout, RegExp][] = [
  ['box outside the canvas', canvas([[0, 0, 144, 16]]), /outside the 128x128 canvas/],
  ['negative box', canvas([[-16, 0, 16, 16]]), /outside/],
  ['empty box', canvas([[16, 16, 16, 32]]), /empty/],
  ['inverted box', canvas([[32, 16, 16, 32]]), /inverted/],
  ['box off the grid', canvas([[8, 0, 32, 32]]), /off the 16-pixel grid/],
  ['canvas off the grid', canvas([], 120, 128), /multiples of 16/],
  ['too many layers', canvas(Array.from({ length: MAX_LAYERS - 1 }, (): BoxTuple => [0, 0, 16, 16])), /at most 52/],
  ['one box only', { width: 128, height: 128, boxes: [[0, 0, 128, 128]] }, /at least 2 boxes/],
  ['background not whole canvas', { width: 128, height: 128, boxes: [[0, 0, 128, 128], [0, 0, 64, 128]] }, /background/],
  ['non-integer box', canvas([[0, 0, 16.5, 16]]), /4 integers/],
  ['canvas too large', canvas([], 2048, 128), /larger than 1024/],
];
for (const [what, layout, message] of rejects) {
  test(`validateLayout rejects: ${what}`, () => {
    assert.throws(() => validateLayout(layout), (e: unknown) => e instanceof LayoutError && message.test(e.message));
  });
}

test('the maximum layer count is accepted', () => {
  validateLayout(canvas(Array.from({ length: MAX_LAYERS - 2 }, (): BoxTuple => [0, 0, 16, 16])));
});

test('snapLayout snaps outwards and clamps, and its output validates', () => {
  const snapped = snapLayout({ width: 128, height: 128, boxes: [[0, 0, 128, 128], [0, 0, 128, 128], [5, 17, 33, 47], [100, 120, 140, 129], [-3, -1, 15, 1]] });
  assert.deepEqual(snapped.boxes.slice(2), [[0, 16, 48, 48], [96, 112, 128, 128], [0, 0, 16, 16]]);
  validateLayout(snapped);
});
