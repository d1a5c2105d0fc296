/**
 * The uploaded flat image: decoded exactly (every row filter, RGB and RGBA, real files), with
 * transparency composited over white, and every hostile or broken file refused with its code
 * before the work it would cost (bombs by their header or capped at the header's size).
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { crc32, deflateSync } from 'node:zlib';
import { PNG } from 'pngjs';
import { decodeFlatImage, type FlatImageCode } from '../../gpu-server/pipeline/flat-image.ts';
import { MAX_FLAT_IMAGE_BYTES } from '../../domain/layout.ts';
import { encodePng } from '../../gpu-server/pipeline/png.ts';

// ---- building PNG files byte by byte (PNG spec 5: signature, then length, type, data, CRC) ------

const SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

function chunk(type: string, data: Uint8Array = new Uint8Array(0)): Buffer {
  const out = Buffer.alloc(12 + data.length);
  out.writeUInt32BE(data.length, 0);
  out.write(type, 4, 'latin1');
  out.set(data, 8);
  out.writeUInt32BE(crc32(out.subarray(4, 8 + data.length)), 8 + data.length);
  return out;
}

function ihdr(width: number, height: number, { depth = 8, colour = 6, interlace = 0, compression = 0, filter = 0 } = {}): Buffer {
  const d = Buffer.alloc(13);
  d.writeUInt32BE(width, 0);
  d.writeUInt32BE(height, 4);
  d.set([depth, colour, compression, filter, interlace], 8);
  return chunk('IHDR', d);
}

const file = (...chunks: Buffer[]) => Buffer.concat([SIGNATURE, ...chunks]);
const iend = () => chunk('IEND');

/** Rows with filter type `filter` before each (the residues are whatever `pixels` holds). */
function rawRows(width: number, height: number, channels: number, fill: (i: number) => number = () => 0, filter = 0): Buffer {
  const pitch = width * channels + 1;
  const out = Buffer.alloc(height * pitch);
  for (let y = 0; y < height; y++) {
    out[y * pitch] = filter;
    for (let i = 1; i < pitch; i++) out[y * pitch + i] = fill(y * pitch + i);
  }
  return out;
}

/** A valid RGBA file of `width` x `height` with the given filtered rows. */
const rgbaFile = (width: number, height: number, rows: Uint8Array, more: Buffer[] = []) =>
  file(ihdr(width, height), ...more, chunk('IDAT', deflateSync(rows)), iend());

let seed = 99;
const noise = (n: number) => Uint8Array.from({ length: n }, () => ((seed = (seed * 1103515245 + 12345) >>> 0) >>> 24));

/** The expected RGB of RGBA over white, by the float formula (no ties: 255 is odd). */
function overWhiteReference(rgba: Uint8Array): Uint8Array {
  const out = new Uint8Array((rgba.length / 4) * 3);
  for (let p = 0, q = 0; p < rgba.length; p += 4, q += 3)
    for (let c = 0; c < 3; c++) out[q + c] = Math.round((rgba[p + c] * rgba[p + 3] + 255 * (255 - rgba[p + 3])) / 255);
  return out;
}

function refused(png: Uint8Array, canvas: { width: number; height: number }, code: FlatImageCode, message?: RegExp): string {
  const result = decodeFlatImage(png, canvas);
  assert.equal(result.ok, false, `expected ${code}, the file was accepted`);
  if (result.ok) return '';
  assert.equal(result.code, code, result.message);
  if (message) assert.match(result.message, message);
  return result.message;
}

// ---- decoding -----------------------------------------------------------------------------------

test('flat image: every row filter pngjs writes decodes to pngjs\'s pixels, composited over white', () => {
  const width = 48, height = 32;
  const rgba = noise(width * height * 4);
  for (let i = 3; i < rgba.length; i += 16) rgba[i] = 0; // some fully transparent, the rest partly
  for (let i = 7; i < rgba.length; i += 16) rgba[i] = 255;
  for (const filterType of [0, 1, 2, 3, 4, -1]) {
    const png = new PNG({ width, height });
    png.data = Buffer.from(rgba);
    const bytes = PNG.sync.write(png, { colorType: 6, filterType });
    const result = decodeFlatImage(bytes, { width, height });
    assert.ok(result.ok, result.ok ? '' : result.message);
    assert.deepEqual([result.image.width, result.image.height], [width, height]);
    assert.deepEqual(result.image.pixels, overWhiteReference(new Uint8Array(PNG.sync.read(bytes).data)), `filter ${filterType}`);
  }
});

test('flat image: transparent pixels become white, half-transparent ones are mixed with white, opaque ones stay', () => {
  const rgba = new Uint8Array(16 * 16 * 4).fill(255);
  rgba.set([10, 20, 30, 0], 0); // transparent: its stored colour must not show
  rgba.set([0, 100, 255, 128], 4); // 255 - round((255 - c) * 128 / 255)
  rgba.set([1, 2, 3, 255], 8);
  const result = decodeFlatImage(encodePng(16, 16, rgba), { width: 16, height: 16 });
  assert.ok(result.ok);
  assert.deepEqual([...result.image.pixels.subarray(0, 9)], [255, 255, 255, 127, 177, 255, 1, 2, 3]);
});

test('flat image: an opaque RGB file (the project\'s own encoder writes RGB when opaque) reads back exactly; a tRNS colour key is white', () => {
  const width = 64, height = 48;
  const rgba = noise(width * height * 4);
  for (let i = 3; i < rgba.length; i += 4) rgba[i] = 255;
  const png = encodePng(width, height, rgba);
  assert.equal(png[25], 2, 'encodePng wrote RGB');
  const result = decodeFlatImage(png, { width, height });
  assert.ok(result.ok);
  const rgb = result.image.pixels;
  for (let p = 0; p < width * height; p++) assert.deepEqual([rgb[p * 3], rgb[p * 3 + 1], rgb[p * 3 + 2]], [rgba[p * 4], rgba[p * 4 + 1], rgba[p * 4 + 2]], `pixel ${p}`);

  // tRNS for colour type 2: three 16-bit samples; pixels of exactly that colour are transparent.
  // Filter 0 (None): the first pixel of row 0 is (7, 7, 7), the key; the rest (200, 200, 200).
  const rows = rawRows(16, 16, 3, (i) => (i >= 1 && i <= 3 ? 7 : 200));
  const key = Buffer.from([0, 7, 0, 7, 0, 7]);
  const keyed = decodeFlatImage(file(ihdr(16, 16, { colour: 2 }), chunk('tRNS', key), chunk('IDAT', deflateSync(rows)), iend()), { width: 16, height: 16 });
  assert.ok(keyed.ok, keyed.ok ? '' : keyed.message);
  assert.deepEqual([...keyed.image.pixels.subarray(0, 6)], [255, 255, 255, 200, 200, 200]);
});

test('flat image: the official ART sample outputs (real RGB and RGBA files) decode as pngjs reads them', () => {
  for (const name of ['bg', 'layer_1', 'whole']) {
    const bytes = readFileSync(new URL(`../fixtures/art-sample-output/${name}.png`, import.meta.url));
    const reference = PNG.sync.read(bytes);
    const result = decodeFlatImage(bytes, { width: reference.width, height: reference.height });
    assert.ok(result.ok, result.ok ? '' : result.message);
    assert.deepEqual(result.image.pixels, overWhiteReference(new Uint8Array(reference.data)), name);
  }
});

test('flat image: IDAT split in many chunks, ancillary chunks, a suggested PLTE and bytes after IEND are read', () => {
  const rows = rawRows(16, 16, 4, (i) => i & 255);
  const z = deflateSync(rows);
  const parts = [chunk('IDAT', z.subarray(0, 5)), chunk('IDAT', z.subarray(5, 6)), chunk('IDAT', z.subarray(6))];
  const png = file(ihdr(16, 16), chunk('tEXt', Buffer.from('Software\0test')), chunk('PLTE', Buffer.alloc(6)), ...parts, chunk('zzZz', Buffer.from('x')), iend(), Buffer.from('trailing'));
  const result = decodeFlatImage(png, { width: 16, height: 16 });
  assert.ok(result.ok, result.ok ? '' : result.message);
});

// ---- refusals -----------------------------------------------------------------------------------

test('flat image: decompression bombs are refused: by their header (giant dimensions, nothing inflated), or capped at the header\'s size', () => {
  // Its data is not even zlib: refused by the header's size means it was never inflated.
  const notZlib = Buffer.alloc(64, 0xab);
  refused(file(ihdr(100_000, 100_000), chunk('IDAT', notZlib), iend()), { width: 1024, height: 1024 }, 'image_size_mismatch', /100000x100000 but the layout's canvas is 1024x1024/);
  refused(file(ihdr(0x7fff_ffff, 0x7fff_ffff), chunk('IDAT', notZlib), iend()), { width: 1024, height: 1024 }, 'image_size_mismatch');
  // A 1024x1024 header whose 65 kB of data would inflate to 64 MiB: zlib stops at 4 MiB + 1 KiB.
  const bomb = deflateSync(Buffer.alloc(64 << 20), { level: 9 });
  assert.ok(bomb.length < MAX_FLAT_IMAGE_BYTES);
  refused(file(ihdr(1024, 1024), chunk('IDAT', bomb), iend()), { width: 1024, height: 1024 }, 'image_too_large', /more than the 4195328 bytes its 1024x1024 header implies/);
  // One byte more than the header implies is refused the same way.
  refused(rgbaFile(16, 16, Buffer.concat([rawRows(16, 16, 4), Buffer.alloc(1)])), { width: 16, height: 16 }, 'image_too_large');
});

test('flat image: 0x0, 100000x1, a wrong size and sizes off the 16-pixel grid are refused by the header', () => {
  const canvas = { width: 512, height: 256 };
  refused(file(ihdr(0, 0), iend()), canvas, 'image_size_mismatch', /0x0 but the layout's canvas is 512x256/);
  refused(file(ihdr(100_000, 1), iend()), canvas, 'image_size_mismatch', /100000x1/);
  refused(file(ihdr(512, 512), iend()), canvas, 'image_size_mismatch', /512x512 but the layout's canvas is 512x256/);
  refused(rgbaFile(256, 512, rawRows(256, 512, 4)), canvas, 'image_size_mismatch', /256x512 but the layout's canvas is 512x256: export the image at the canvas size/);
  // A canvas that is itself no canvas (a CLI's own boxes file) is caught by the same header check.
  refused(rgbaFile(100, 100, rawRows(100, 100, 4)), { width: 100, height: 100 }, 'image_size_mismatch', /multiple of 16 from 16 to 1024/);
  refused(file(ihdr(2048, 1024), iend()), { width: 2048, height: 1024 }, 'image_size_mismatch', /multiple of 16 from 16 to 1024/);
});

test('flat image: a file over the byte cap is refused by its length, before its signature is read', () => {
  refused(new Uint8Array(MAX_FLAT_IMAGE_BYTES + 1), { width: 1024, height: 1024 }, 'image_too_large', /at most 4456448 are read/);
});

test('flat image: not a PNG, and IHDR not first', () => {
  const canvas = { width: 16, height: 16 };
  refused(new Uint8Array(0), canvas, 'image_not_png');
  refused(Buffer.from('GIF89a............................'), canvas, 'image_not_png', /PNG signature/);
  refused(Buffer.concat([Buffer.from([0xff, 0xd8, 0xff, 0xe0]), Buffer.alloc(60)]), canvas, 'image_not_png');
  refused(file(chunk('tEXt', Buffer.from('a\0b')), ihdr(16, 16), iend()), canvas, 'image_not_png', /first chunk is "tEXt"/);
});

test('flat image: a file cut off anywhere is refused (truncated, or not a PNG before its signature ends)', () => {
  const whole = rgbaFile(32, 32, rawRows(32, 32, 4, (i) => (i * 13) & 255));
  for (let cut = 0; cut < whole.length; cut++) {
    const result = decodeFlatImage(whole.subarray(0, cut), { width: 32, height: 32 });
    assert.equal(result.ok, false, `cut at ${cut} of ${whole.length}`);
    if (!result.ok) assert.equal(result.code, cut < 8 ? 'image_not_png' : 'image_truncated', `cut at ${cut}: ${result.message}`);
  }
  refused(whole.subarray(0, whole.length - 12), { width: 32, height: 32 }, 'image_truncated', /before its IEND chunk/);
  // A chunk whose length runs past the end (a header of 0xffffffff bytes).
  const lying = Buffer.from(chunk('IDAT', Buffer.alloc(4)));
  lying.writeUInt32BE(0xffff_ffff, 0);
  refused(file(ihdr(16, 16), lying), { width: 16, height: 16 }, 'image_truncated', /says 4294967295 bytes/);
});

test('flat image: a bad CRC in IHDR, IDAT or an ancillary chunk is refused', () => {
  const canvas = { width: 16, height: 16 };
  const good = rgbaFile(16, 16, rawRows(16, 16, 4), [chunk('tEXt', Buffer.from('k\0v'))]);
  assert.ok(decodeFlatImage(good, canvas).ok);
  const flip = (at: number) => {
    const copy = Buffer.from(good);
    copy[at] ^= 1;
    return copy;
  };
  refused(flip(29), canvas, 'image_corrupt', /IHDR fails its CRC/); // a byte of IHDR's CRC
  refused(flip(33 + 8), canvas, 'image_corrupt', /"tEXt" chunk at byte 33 fails its CRC/); // tEXt's data
  refused(flip(33 + 15 + 9), canvas, 'image_corrupt', /"IDAT" chunk .* fails its CRC/); // IDAT's data
  // IHDR's CRC covers its dimensions: a damaged width is a CRC error, not a size.
  refused(flip(18), canvas, 'image_corrupt', /IHDR fails its CRC/);
});

test('flat image: damaged compressed data, too few bytes and an unknown row filter are refused (CRCs right)', () => {
  const canvas = { width: 16, height: 16 };
  const z = Buffer.from(deflateSync(rawRows(16, 16, 4)));
  z[z.length - 1] ^= 1; // the Adler-32
  refused(file(ihdr(16, 16), chunk('IDAT', z), iend()), canvas, 'image_corrupt', /compressed data is damaged/);
  refused(file(ihdr(16, 16), chunk('IDAT', Buffer.alloc(20, 0xab)), iend()), canvas, 'image_corrupt', /compressed data is damaged/);
  refused(file(ihdr(16, 16), chunk('IDAT', deflateSync(rawRows(16, 16, 4)).subarray(0, 10)), iend()), canvas, 'image_corrupt');
  refused(rgbaFile(16, 16, rawRows(16, 15, 4)), canvas, 'image_corrupt', /inflates to 975 bytes; its 16x16 header implies 1040/);
  refused(rgbaFile(16, 16, rawRows(16, 16, 4, () => 0, 5)), canvas, 'image_corrupt', /row 0 .* filter type 5/);
  refused(file(ihdr(16, 16), iend()), canvas, 'image_corrupt', /no image data/);
  const rows = deflateSync(rawRows(16, 16, 4));
  refused(file(ihdr(16, 16), chunk('IDAT', rows.subarray(0, 4)), chunk('tEXt', Buffer.from('a\0b')), chunk('IDAT', rows.subarray(4)), iend()), canvas, 'image_corrupt', /not consecutive/);
  refused(file(ihdr(16, 16), ihdr(16, 16), chunk('IDAT', rows), iend()), canvas, 'image_corrupt', /second IHDR/);
  refused(file(ihdr(16, 16, { compression: 1 }), chunk('IDAT', rows), iend()), canvas, 'image_corrupt', /compression method 1/);
});

test('flat image: palette, greyscale, 16-bit, interlaced files and unknown critical chunks are refused with how to convert', () => {
  const canvas = { width: 16, height: 16 };
  const rows = chunk('IDAT', deflateSync(rawRows(16, 16, 4)));
  refused(file(ihdr(16, 16, { colour: 3 }), chunk('PLTE', Buffer.alloc(3)), rows, iend()), canvas, 'image_unsupported', /8-bit palette .*only 8-bit RGB or RGBA.*PNG32/);
  refused(file(ihdr(16, 16, { colour: 0 }), rows, iend()), canvas, 'image_unsupported', /8-bit greyscale/);
  refused(file(ihdr(16, 16, { colour: 4 }), rows, iend()), canvas, 'image_unsupported', /greyscale with alpha/);
  refused(file(ihdr(16, 16, { depth: 16 }), rows, iend()), canvas, 'image_unsupported', /16-bit RGBA/);
  refused(file(ihdr(16, 16, { interlace: 1 }), rows, iend()), canvas, 'image_unsupported', /interlaced/);
  refused(file(ihdr(16, 16), chunk('ABCD', Buffer.alloc(1)), rows, iend()), canvas, 'image_unsupported', /unknown critical chunk "ABCD"/);
  // pngjs's own 16-bit and greyscale files, as a user's tool would write them.
  const png = new PNG({ width: 16, height: 16 });
  png.data = Buffer.alloc(16 * 16 * 4, 200);
  refused(PNG.sync.write(png, { colorType: 0 }), canvas, 'image_unsupported');
  refused(PNG.sync.write(png, { colorType: 6, bitDepth: 16 }), canvas, 'image_unsupported');
});

test('flat image: a chunk type made of control bytes is not echoed raw in the message', () => {
  const message = refused(file(ihdr(16, 16), chunk('\x01\x02\x1b[', Buffer.alloc(1)), iend()), { width: 16, height: 16 }, 'image_unsupported');
  assert.match(message, /"\?\?\?\["/);
});
