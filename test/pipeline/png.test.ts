import assert from 'node:assert/strict';
import { test } from 'node:test';
import { PNG } from 'pngjs';
import { encodePng, rgbToRgba } from '../../gpu-server/pipeline/png.ts';

test('encodePng round-trips RGBA exactly, transparency included', () => {
  const w = 5, h = 3;
  const rgba = Uint8Array.from({ length: w * h * 4 }, (_, i) => (i * 37) % 256);
  const back = PNG.sync.read(Buffer.from(encodePng(w, h, rgba)));
  assert.deepEqual([back.width, back.height], [w, h]);
  assert.deepEqual(new Uint8Array(back.data), rgba);
  assert.throws(() => encodePng(w, h, rgba.subarray(4)), /expected 5x3x4/);
});

test('rgbToRgba makes opaque pixels in order', () => {
  assert.deepEqual(Array.from(rgbToRgba(Uint8Array.of(1, 2, 3, 4, 5, 6))), [1, 2, 3, 255, 4, 5, 6, 255]);
});
