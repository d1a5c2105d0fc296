/**
 * 8-bit RGBA -> PNG, for the bridge (on its encoder threads) and the generate CLI.
 *
 * Every row gets the Paeth filter, then one deflate with zlib's run-length strategy: the same
 * bytes as pngjs with `filterType: 4`. What makes it cheaper than pngjs (measured on the bench's 52
 * generated layers, `npm run bench -- png`, docs/performance.md): pixels equal to their left and
 * upper neighbours (the transparent and flat areas) are skipped 4 bytes at a time, since Paeth
 * predicts them exactly; the predictor is branch-free; the filtered rows go into a buffer
 * reused from call to call (a fresh 4 MiB buffer costs more in page faults than filtering it); and
 * the CRC is zlib's where Node has it. Other filters, zlib settings and encoders measured larger or
 * slower (same table).
 */
import * as zlib from 'node:zlib';

const SIGNATURE = Uint8Array.of(0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a);
const PAETH = 4;
const BYTES_PER_PIXEL = 4;
/** Signature, IHDR (12 + 13), the IDAT chunk's own 12 bytes, IEND (12). */
const OVERHEAD = SIGNATURE.length + 25 + 12 + 12;

/** This thread's filtered rows, grown to the largest image so far (one image at a time per thread). */
let scratch = new Uint8Array(0);

/** PNG colour types: RGB for images with no transparent pixel (a quarter fewer bytes to filter and
 *  deflate, and smaller files; decoders read alpha 255), else RGBA. */
const RGB = 2, RGBA = 6;

export function encodePng(width: number, height: number, rgba: Uint8Array): Uint8Array {
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1)
    throw new Error(`a PNG needs a positive integer size, got ${width}x${height}`);
  if (rgba.length !== width * height * 4)
    throw new Error(`RGBA has ${rgba.length} bytes, expected ${width}x${height}x4 = ${width * height * 4}`);
  const channels = isOpaque(rgba) ? 3 : 4;
  const size = filteredSize(width, height, channels);
  if (scratch.length < size) scratch = new Uint8Array(size);
  const rows = paethRows(width, height, rgba, channels, scratch.subarray(0, size));
  return pngFile(width, height, channels === 3 ? RGB : RGBA, zlib.deflateSync(rows, { strategy: zlib.constants.Z_RLE }));
}

/** Every alpha 255 (stops at the first that is not: a layer with transparency answers at once). */
export function isOpaque(rgba: Uint8Array): boolean {
  for (let i = 3; i < rgba.length; i += 4) if (rgba[i] !== 255) return false;
  return true;
}

/** The file around a deflated IDAT: signature, IHDR, IDAT, IEND, in one buffer that owns its
 *  ArrayBuffer (so it can be transferred between threads). */
export function pngFile(width: number, height: number, colourType: typeof RGB | typeof RGBA, idat: Uint8Array): Uint8Array {
  const out = new Uint8Array(OVERHEAD + idat.length);
  const view = new DataView(out.buffer);
  out.set(SIGNATURE, 0);
  let at = SIGNATURE.length;
  const chunk = (type: string, length: number, fill: (data: number) => void) => {
    view.setUint32(at, length);
    for (let i = 0; i < 4; i++) out[at + 4 + i] = type.charCodeAt(i);
    fill(at + 8);
    view.setUint32(at + 8 + length, crc32(out.subarray(at + 4, at + 8 + length)));
    at += 12 + length;
  };
  chunk('IHDR', 13, (d) => {
    view.setUint32(d, width);
    view.setUint32(d + 4, height);
    out.set([8, colourType, 0, 0, 0], d + 8); // 8 bits, the colour type, deflate, adaptive filtering, no interlace
  });
  chunk('IDAT', idat.length, (d) => out.set(idat, d));
  chunk('IEND', 0, () => undefined);
  return out;
}

/** Bytes of the filtered scanlines: a filter-type byte per row before its pixels. */
export const filteredSize = (width: number, height: number, channels: 3 | 4): number => height * (width * channels + 1);

/**
 * Filtered scanlines of an RGBA image: each row a filter-type byte then Paeth residues (PNG spec
 * 9.4) of the first `channels` bytes of every pixel (3: RGB, alpha left out), written to `out`.
 */
export function paethRows(width: number, height: number, rgba: Uint8Array, channels: 3 | 4 = 4, out = new Uint8Array(filteredSize(width, height, channels))): Uint8Array {
  if (out.length !== filteredSize(width, height, channels)) throw new Error(`paethRows needs ${filteredSize(width, height, channels)} output bytes, got ${out.length}`);
  // Whole pixels compared as one 32-bit word need a 4-byte-aligned view (a copy in the rare case it is not).
  const px = rgba.byteOffset % 4 === 0 ? rgba : rgba.slice();
  const words = new Uint32Array(px.buffer, px.byteOffset, width * height);
  // One loop per channel count: a loop over a variable count measured 1.3-2.7x slower.
  (channels === 4 ? rowsRgba : rowsRgb)(width, height, px, words, out);
  return out;
}

/*
 * Both loops: the first row has no row above, so Paeth reduces to "left" (b = c = 0); a row's first
 * pixel has no left neighbour, so it reduces to "up". A pixel equal to its left and upper
 * neighbours, byte for byte (one 32-bit compare), is predicted exactly: with a = b,
 * |p-a| = |b-c| = |p-b| <= |p-c| = 2|a-c|, so Paeth picks a whatever c is, and its residues are 0.
 * Uint8Array stores wrap mod 256.
 */

function rowsRgba(width: number, height: number, px: Uint8Array, words: Uint32Array, out: Uint8Array): void {
  const stride = width * 4, pitch = stride + 1;
  out[0] = PAETH;
  for (let x = 0; x < stride; x++) out[1 + x] = px[x] - (x >= 4 ? px[x - 4] : 0);
  for (let y = 1; y < height; y++) {
    const row = y * stride, o = y * pitch + 1 - row; // out[o + i] is the residue of px[i]
    out[o + row - 1] = PAETH;
    for (let i = row; i < row + 4; i++) out[o + i] = px[i] - px[i - stride];
    for (let w = y * width + 1, i = row + 4; i < row + stride; w++, i += 4) {
      const v = words[w];
      if (v === words[w - 1] && v === words[w - width]) {
        out[o + i] = out[o + i + 1] = out[o + i + 2] = out[o + i + 3] = 0;
        continue;
      }
      out[o + i] = px[i] - paeth(px[i - 4], px[i - stride], px[i - stride - 4]);
      out[o + i + 1] = px[i + 1] - paeth(px[i - 3], px[i + 1 - stride], px[i - stride - 3]);
      out[o + i + 2] = px[i + 2] - paeth(px[i - 2], px[i + 2 - stride], px[i - stride - 2]);
      out[o + i + 3] = px[i + 3] - paeth(px[i - 1], px[i + 3 - stride], px[i - stride - 1]);
    }
  }
}

function rowsRgb(width: number, height: number, px: Uint8Array, words: Uint32Array, out: Uint8Array): void {
  const stride = width * 4, pitch = width * 3 + 1;
  out[0] = PAETH;
  for (let x = 0, o = 1; x < stride; x += 4, o += 3)
    for (let c = 0; c < 3; c++) out[o + c] = px[x + c] - (x >= 4 ? px[x + c - 4] : 0);
  for (let y = 1; y < height; y++) {
    const row = y * stride;
    let o = y * pitch;
    out[o++] = PAETH;
    for (let i = row; i < row + 3; i++) out[o++] = px[i] - px[i - stride];
    for (let w = y * width + 1, i = row + 4; i < row + stride; w++, i += 4, o += 3) {
      const v = words[w];
      if (v === words[w - 1] && v === words[w - width]) {
        out[o] = out[o + 1] = out[o + 2] = 0;
        continue;
      }
      out[o] = px[i] - paeth(px[i - 4], px[i - stride], px[i - stride - 4]);
      out[o + 1] = px[i + 1] - paeth(px[i - 3], px[i + 1 - stride], px[i - stride - 3]);
      out[o + 2] = px[i + 2] - paeth(px[i - 2], px[i + 2 - stride], px[i - stride - 2]);
    }
  }
}

/** Paeth's predictor without branches (natural images make them unpredictable): |p-a|, |p-b|,
 *  |p-c| with p = a + b - c, then the first of a, b, c with the smallest, through sign masks. */
function paeth(a: number, b: number, c: number): number {
  let pa = b - c, pb = a - c, pc = pa + pb;
  pa = (pa ^ (pa >> 31)) - (pa >> 31);
  pb = (pb ^ (pb >> 31)) - (pb >> 31);
  pc = (pc ^ (pc >> 31)) - (pc >> 31);
  const cOverB = (pc - pb) >> 31; // -1 where pc < pb
  const bc = b ^ ((b ^ c) & cOverB), pbc = pb ^ ((pb ^ pc) & cOverB);
  return a ^ ((a ^ bc) & ((pbc - pa) >> 31));
}

const CRC_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

/** CRC-32 by table, for Node versions without zlib.crc32 (before 20.15). */
export function crc32Table(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (let i = 0; i < bytes.length; i++) c = CRC_TABLE[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

const nativeCrc32 = (zlib as { crc32?: (data: Uint8Array) => number }).crc32;

/** CRC-32 as PNG chunks use it (ISO 3309, the same as zlib's); zlib's own is ~10x faster. */
export const crc32: (bytes: Uint8Array) => number = nativeCrc32 ? (bytes) => nativeCrc32(bytes) : crc32Table;

/** Opaque RGBA from interleaved RGB (the VAE images and previews are RGB). */
export function rgbToRgba(rgb: Uint8Array): Uint8Array {
  const out = new Uint8Array((rgb.length / 3) * 4).fill(255);
  for (let p = 0, q = 0; p < rgb.length; p += 3, q += 4) out.set(rgb.subarray(p, p + 3), q);
  return out;
}
