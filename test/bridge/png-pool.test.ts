import assert from 'node:assert/strict';
import { test } from 'node:test';
import { PNG } from 'pngjs';
import { PngPool } from '../../bridge/png-pool.ts';

test('the pool encodes on several threads and returns each PNG in the order given', async () => {
  const pool = new PngPool(2);
  try {
    const images = Array.from({ length: 7 }, (_, k) => {
      const width = 3 + k, height = 2;
      return { width, height, rgba: Uint8Array.from({ length: width * height * 4 }, (_, i) => (i * (k + 3)) % 256) };
    });
    const expected = images.map((img) => img.rgba.slice());
    const pngs = await pool.encodeAll(images);
    pngs.forEach((png, k) => {
      const back = PNG.sync.read(Buffer.from(png));
      assert.deepEqual([back.width, back.height], [images[k].width, images[k].height]);
      assert.deepEqual(new Uint8Array(back.data), expected[k]);
      assert.equal(images[k].rgba.byteLength, 0, 'the pixels were moved to the encoder, not copied');
    });
    // A view into a larger buffer is copied, and the buffer stays usable.
    const shared = new Uint8Array(8).fill(7);
    await pool.encode(1, 1, shared.subarray(4));
    assert.equal(shared.byteLength, 8);
  } finally {
    await pool.close();
  }
});

test('a bad image rejects its own encode with the reason and leaves the pool working', async () => {
  const pool = new PngPool(1);
  try {
    await assert.rejects(pool.encode(4, 4, new Uint8Array(10)), /RGBA has 10 bytes, expected 4x4x4/);
    const png = await pool.encode(1, 1, Uint8Array.of(1, 2, 3, 4));
    assert.deepEqual(new Uint8Array(PNG.sync.read(Buffer.from(png)).data), Uint8Array.of(1, 2, 3, 4));
  } finally {
    await pool.close();
  }
});
