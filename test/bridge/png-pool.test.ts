import assert from 'node:assert/strict';
import { test } from 'node:test';
import { PNG } from 'pngjs';
import { PngPool } from '../../bridge/png-pool.ts';
import { MAX_IMAGE_FRAME_HEADER_BYTES } from '../../bridge/protocol/image-frame.ts';

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
      assert.equal(png.byteOffset, MAX_IMAGE_FRAME_HEADER_BYTES, 'room for the frame header in front: framed without a copy');
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

test('a thread busy with a large image does not hold up the small ones queued after it (each goes to a free thread)', async () => {
  const pool = new PngPool(2);
  try {
    await pool.start();
    // Opaque noise: tens of ms on one thread, against well under one for each 2x2 image.
    let seed = 7;
    const side = 1024;
    const large = Uint8Array.from({ length: side * side * 4 }, (_, i) => (i % 4 === 3 ? 255 : (seed = (seed * 1103515245 + 12345) >>> 0) >>> 24));
    const finished: string[] = [];
    const all = [pool.encode(side, side, large).then(() => finished.push('large'))];
    for (let k = 0; k < 8; k++) all.push(pool.encode(2, 2, new Uint8Array(16).fill(k)).then(() => finished.push(`small ${k}`)));
    await Promise.all(all);
    // In turn, small 0, 2, 4 and 6 would have waited behind the large one on its thread.
    assert.equal(finished.at(-1), 'large', finished.join(', '));
  } finally {
    await pool.close();
  }
});

test('closing the pool rejects the encodes it has not finished', async () => {
  const pool = new PngPool(1);
  await pool.start();
  const pending = pool.encode(512, 512, new Uint8Array(512 * 512 * 4));
  const queued = pool.encode(1, 1, new Uint8Array(4));
  const rejected = [assert.rejects(pending, /pool was closed/), assert.rejects(queued, /pool was closed/)];
  await pool.close();
  await Promise.all(rejected);
});
