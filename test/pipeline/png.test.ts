import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { inflateSync } from 'node:zlib';
import { PNG } from 'pngjs';
import { crc32, crc32Table, encodePng, paethRows, rgbToRgba, simdFilter } from '../../gpu-server/pipeline/png.ts';

const SAMPLES = ['whole', 'bg', 'layer_0', 'layer_1', 'layer_2', 'layer_3', 'composite'];
const readSample = (name: string) => PNG.sync.read(readFileSync(new URL(`../fixtures/art-sample-output/${name}.png`, import.meta.url)));

/** pngjs with the Paeth filter on every row, RGB where every pixel is opaque: the reference for the bytes. */
function pngjsPaeth(width: number, height: number, rgba: Uint8Array): Buffer {
  const png = new PNG({ width, height });
  png.data = Buffer.from(rgba);
  const opaque = rgba.every((v, i) => i % 4 !== 3 || v === 255);
  return PNG.sync.write(png, { colorType: opaque ? 2 : 6, inputColorType: 6, filterType: 4 });
}
const colourType = (png: Uint8Array) => png[25];

/** Decodes with pngjs (which checks every CRC) and asserts the size, the pixels, and pngjs's own bytes. */
function assertRoundTrip(width: number, height: number, rgba: Uint8Array, what: string): void {
  const ours = encodePng(width, height, rgba);
  const back = PNG.sync.read(Buffer.from(ours));
  assert.deepEqual([back.width, back.height], [width, height], what);
  assert.deepEqual(new Uint8Array(back.data), new Uint8Array(rgba), `${what}: pixels`);
  assert.deepEqual(Buffer.from(ours), pngjsPaeth(width, height, rgba), `${what}: bytes differ from pngjs's Paeth`);
}

let seed = 12345;
const noise = (n: number) => Uint8Array.from({ length: n }, () => ((seed = (seed * 1103515245 + 12345) >>> 0) >>> 24));

test('encodePng round-trips RGBA exactly, transparency included, and rejects wrong sizes', () => {
  const w = 5, h = 3;
  const rgba = Uint8Array.from({ length: w * h * 4 }, (_, i) => (i * 37) % 256);
  assertRoundTrip(w, h, rgba, '5x3');
  assert.throws(() => encodePng(w, h, rgba.subarray(4)), /expected 5x3x4/);
  assert.throws(() => encodePng(0, 0, new Uint8Array(0)), /positive integer size, got 0x0/);
});

test('encodePng with room reserved: the same PNG, after that many free bytes of its own buffer', () => {
  const rgba = Uint8Array.from({ length: 7 * 5 * 4 }, (_, i) => (i * 37) & 0xff);
  const plain = encodePng(7, 5, rgba);
  const roomy = encodePng(7, 5, rgba, 264);
  assert.deepEqual(Buffer.from(roomy), Buffer.from(plain));
  assert.equal(roomy.byteOffset, 264);
  assert.equal(roomy.buffer.byteLength, 264 + plain.length, 'nothing after the PNG');
  assert.equal(plain.byteOffset, 0);
  assert.equal(plain.buffer.byteLength, plain.length, 'without room the PNG owns its whole buffer (it is transferred between threads)');
});

test('encodePng: one pixel, single rows and columns, odd widths, noise, opaque or not', () => {
  assert.ok(simdFilter, 'WebAssembly SIMD is missing or its module does not validate: every image would take the scalar filter');
  // Widths 1-4 take the scalar filter; 5 is the SIMD loop's one chunk per row, 6-8 its overlapping
  // last chunk, 9 and up several chunks.
  const sizes = [[1, 1], [7, 1], [1, 9], [3, 5], [4, 4], [5, 3], [6, 2], [8, 5], [9, 9], [33, 17], [101, 3]];
  for (const [w, h] of sizes) {
    const rgba = noise(w * h * 4);
    assertRoundTrip(w, h, rgba, `${w}x${h} noise`);
    for (let i = 3; i < rgba.length; i += 4) rgba[i] = 255;
    assertRoundTrip(w, h, rgba, `${w}x${h} opaque noise`);
  }
});

test('encodePng: all transparent, all opaque, one flat colour, and flat areas beside noise', () => {
  const w = 37, h = 23, n = w * h * 4;
  assertRoundTrip(w, h, new Uint8Array(n), 'all transparent (zeros)');
  const opaque = noise(n);
  for (let i = 3; i < n; i += 4) opaque[i] = 255;
  assertRoundTrip(w, h, opaque, 'all opaque noise');
  assert.equal(colourType(encodePng(w, h, opaque)), 2, 'an opaque image is written as RGB');
  const flat = new Uint8Array(n);
  for (let i = 0; i < n; i += 4) flat.set([200, 10, 90, 255], i);
  assertRoundTrip(w, h, flat, 'one flat colour');
  // One alpha below 255, in the last pixel: the image keeps its alpha channel.
  opaque[n - 1] = 254;
  assertRoundTrip(w, h, opaque, 'opaque but the last pixel');
  assert.equal(colourType(encodePng(w, h, opaque)), 6);
  // Transparent pixels whose colour is not zero, a single changed byte inside a flat area, and
  // flat runs that start mid-row.
  const mixed = new Uint8Array(n);
  for (let y = 0; y < h; y++)
    for (let x = 0; x < w; x++) {
      const p = (y * w + x) * 4;
      if (x > 20 && y > 5) mixed.set(noise(4), p);
      else if (x > 10) mixed.set([64, 64, 0, 0], p);
    }
  mixed[(9 * w + 15) * 4 + 2] ^= 1;
  mixed[(0 * w + 12) * 4 + 3] = 7;
  mixed[(h - 1) * w * 4 + 1] = 9;
  assertRoundTrip(w, h, mixed, 'flat areas beside noise');
});

test('encodePng: a view at an odd offset, a wide image after a narrow one and a small after a large (the reused memory holds nothing stale)', () => {
  const w = 9, h = 4;
  const backing = noise(w * h * 4 + 1);
  assertRoundTrip(w, h, backing.subarray(1), 'view at byte offset 1');
  const opaqueView = backing.subarray(1);
  for (let i = 3; i < opaqueView.length; i += 4) opaqueView[i] = 255;
  assertRoundTrip(w, h, opaqueView, 'opaque view at byte offset 1');
  assertRoundTrip(64, 64, noise(64 * 64 * 4), '64x64 noise');
  assertRoundTrip(3, 2, new Uint8Array(3 * 2 * 4), '3x2 zeros after 64x64 noise');
  assertRoundTrip(3, 2, new Uint8Array(3 * 2 * 4).fill(255), '3x2 opaque white after it');
});

/** The filtered rows inside a PNG: its IDAT chunks, inflated. */
function idatRows(png: Uint8Array): Buffer {
  const parts: Uint8Array[] = [];
  for (let at = 8; at < png.length; ) {
    const len = new DataView(png.buffer, png.byteOffset).getUint32(at);
    if (String.fromCharCode(...png.subarray(at + 4, at + 8)) === 'IDAT') parts.push(png.subarray(at + 8, at + 8 + len));
    at += 12 + len;
  }
  return inflateSync(Buffer.concat(parts));
}

test("encodePng writes pngjs's bytes for every official sample layer, and the residues are the spec's Paeth (RGBA and RGB)", () => {
  for (const name of SAMPLES) {
    const src = readSample(name);
    assertRoundTrip(src.width, src.height, new Uint8Array(src.data), name);
  }
  // pngjs's own filter output is the reference for the residues: layer_1 has transparency, bg none.
  for (const [name, channels, type] of [['layer_1', 4, 6], ['bg', 3, 2]] as const) {
    const src = readSample(name);
    const rgba = new Uint8Array(src.data);
    const reference = pngjsPaeth(src.width, src.height, rgba);
    assert.equal(colourType(reference), type, name);
    assert.deepEqual(new Uint8Array(idatRows(reference)), paethRows(src.width, src.height, rgba, channels), name);
  }
});

test("crc32 (zlib's where Node has it) and the table fallback match the published check value and each other", () => {
  const check = new TextEncoder().encode('123456789');
  assert.equal(crc32(check), 0xcbf43926);
  assert.equal(crc32Table(check), 0xcbf43926);
  const bytes = noise(10_000);
  assert.equal(crc32Table(bytes), crc32(bytes));
});

test('rgbToRgba makes opaque pixels in order', () => {
  assert.deepEqual(Array.from(rgbToRgba(Uint8Array.of(1, 2, 3, 4, 5, 6))), [1, 2, 3, 255, 4, 5, 6, 255]);
});
