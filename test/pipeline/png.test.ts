import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { inflateSync } from 'node:zlib';
import { PNG } from 'pngjs';
import { crc32, encodePng, paethRows, rgbToRgba } from '../../gpu-server/pipeline/png.ts';

test('encodePng round-trips RGBA exactly, transparency included', () => {
  const w = 5, h = 3;
  const rgba = Uint8Array.from({ length: w * h * 4 }, (_, i) => (i * 37) % 256);
  const back = PNG.sync.read(Buffer.from(encodePng(w, h, rgba)));
  assert.deepEqual([back.width, back.height], [w, h]);
  assert.deepEqual(new Uint8Array(back.data), rgba);
  assert.throws(() => encodePng(w, h, rgba.subarray(4)), /expected 5x3x4/);
  assert.throws(() => encodePng(0, 0, new Uint8Array(0)), /positive integer size, got 0x0/);
});

test('encodePng round-trips single rows, single columns, one pixel and noise (pngjs checks every CRC)', () => {
  let s = 12345;
  const noise = (n: number) => Uint8Array.from({ length: n }, () => ((s = (s * 1103515245 + 12345) >>> 0) >>> 24));
  for (const [w, h] of [[1, 1], [7, 1], [1, 9], [33, 17]]) {
    const rgba = noise(w * h * 4);
    const back = PNG.sync.read(Buffer.from(encodePng(w, h, rgba)));
    assert.deepEqual([back.width, back.height], [w, h]);
    assert.deepEqual(new Uint8Array(back.data), rgba, `${w}x${h}`);
  }
});

test('the Paeth residues are those of the PNG spec, and the file is as small as pngjs with the same filter', () => {
  // A real generated layer (the official sample output), so the size comparison means something.
  const src = PNG.sync.read(readFileSync(new URL('../fixtures/art-sample-output/layer_1.png', import.meta.url)));
  const rgba = new Uint8Array(src.data);
  const ours = encodePng(src.width, src.height, rgba);
  const pngjs = PNG.sync.write(src, { colorType: 6, filterType: 4 });
  assert.ok(Math.abs(ours.length - pngjs.length) <= pngjs.length * 0.01, `${ours.length} vs pngjs ${pngjs.length}`);
  // pngjs's own filter output, unpacked from its IDAT, is the reference for the residues.
  const idat = (png: Uint8Array) => {
    const parts: Uint8Array[] = [];
    for (let at = 8; at < png.length; ) {
      const len = new DataView(png.buffer, png.byteOffset).getUint32(at);
      if (String.fromCharCode(...png.subarray(at + 4, at + 8)) === 'IDAT') parts.push(png.subarray(at + 8, at + 8 + len));
      at += 12 + len;
    }
    return inflateSync(Buffer.concat(parts));
  };
  assert.deepEqual(new Uint8Array(idat(pngjs)), paethRows(src.width, src.height, rgba));
});

test('crc32 matches the published check value', () => {
  assert.equal(crc32(new TextEncoder().encode('123456789')), 0xcbf43926);
});

test('rgbToRgba makes opaque pixels in order', () => {
  assert.deepEqual(Array.from(rgbToRgba(Uint8Array.of(1, 2, 3, 4, 5, 6))), [1, 2, 3, 255, 4, 5, 6, 255]);
});
