/**
 * 8-bit RGBA -> PNG, for the bridge (on its encoder threads) and the generate CLI.
 *
 * Every row gets the Paeth filter, then one deflate with zlib's run-length strategy: for RGBA the
 * same bytes as pngjs with `filterType: 4`. What makes it cheaper than pngjs (measured on the bench's
 * 52 generated layers, `npm run bench -- png`, docs/performance.md): the filter runs 16 bytes at a
 * time in WebAssembly SIMD (paeth-simd.ts), in a memory reused from call to call (a fresh 4 MiB
 * buffer costs more in page faults than filtering it); images with no transparent pixel are written
 * as RGB, a quarter fewer bytes to filter and deflate; the CRC is zlib's where Node has it. Other
 * filters, zlib settings and encoders measured larger or slower (same table).
 */
import * as zlib from 'node:zlib';
import { paethSimd } from './paeth-simd.ts';

const SIGNATURE = Uint8Array.of(0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a);
const PAETH = 4;
const BYTES_PER_PIXEL = 4;
/** Signature, IHDR (12 + 13), the IDAT chunk's own 12 bytes, IEND (12). */
const OVERHEAD = SIGNATURE.length + 25 + 12 + 12;

/** PNG colour types: RGB for images with no transparent pixel (decoders read alpha 255), else RGBA. */
const RGB = 2, RGBA = 6;

/**
 * `reserve`: bytes left free before the PNG in its buffer (the bridge's frame header goes there,
 * see encodeImageFrame in bridge/protocol/image-frame.ts); the PNG is the view after them.
 */
export function encodePng(width: number, height: number, rgba: Uint8Array, reserve = 0): Uint8Array {
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1)
    throw new Error(`a PNG needs a positive integer size, got ${width}x${height}`);
  if (rgba.length !== width * height * 4)
    throw new Error(`RGBA has ${rgba.length} bytes, expected ${width}x${height}x4 = ${width * height * 4}`);
  const channels = isOpaque(rgba) ? 3 : 4;
  const rows = filterRows(width, height, rgba, channels);
  return pngFile(width, height, channels === 3 ? RGB : RGBA, zlib.deflateSync(rows, { strategy: zlib.constants.Z_RLE }), reserve);
}

/** Every alpha 255 (stops at the first that is not: a layer with transparency answers at once). */
export function isOpaque(rgba: Uint8Array): boolean {
  for (let i = 3; i < rgba.length; i += 4) if (rgba[i] !== 255) return false;
  return true;
}

/** The file around a deflated IDAT: signature, IHDR, IDAT, IEND, at the end of one buffer of its
 *  own (so it can be transferred between threads) after `reserve` free bytes. */
export function pngFile(width: number, height: number, colourType: typeof RGB | typeof RGBA, idat: Uint8Array, reserve = 0): Uint8Array {
  const out = new Uint8Array(new ArrayBuffer(reserve + OVERHEAD + idat.length), reserve);
  const view = new DataView(out.buffer, out.byteOffset);
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
 * 9.4) of the first `channels` bytes of every pixel (3: RGB, alpha left out). A copy; encodePng
 * reads them in place.
 */
export function paethRows(width: number, height: number, rgba: Uint8Array, channels: 3 | 4 = 4): Uint8Array {
  return filterRows(width, height, rgba, channels).slice();
}

/** This thread's WebAssembly memory: a zero row (the "row above" the first), the pixels, the
 *  filtered rows and 16 bytes of slack, grown to the largest image so far. */
const memory = new WebAssembly.Memory({ initial: 1 });
const simdRow = paethSimd(memory);
/** Whether this engine runs the SIMD filter (Node 20 does; the tests check it). */
export const simdFilter = simdRow !== undefined;
/** The SIMD loop needs 16 bytes after a row's first pixel. */
const SIMD_MIN_WIDTH = 5;

/** The filtered rows, valid until the next call on this thread. */
function filterRows(width: number, height: number, rgba: Uint8Array, channels: 3 | 4): Uint8Array {
  const size = filteredSize(width, height, channels);
  if (!simdRow || width < SIMD_MIN_WIDTH) return scalarRows(width, height, rgba, channels, new Uint8Array(size));
  const stride = width * BYTES_PER_PIXEL, pitch = width * channels + 1;
  const pixels = Math.ceil(stride / 16) * 16, rows = pixels + rgba.length, end = rows + size + 16;
  if (memory.buffer.byteLength < end) memory.grow(Math.ceil((end - memory.buffer.byteLength) / 65536));
  const mem = new Uint8Array(memory.buffer);
  mem.fill(0, 0, stride);
  mem.set(rgba, pixels);
  for (let y = 0; y < height; y++) {
    const cur = pixels + y * stride, prev = y === 0 ? 0 : cur - stride, o = rows + y * pitch;
    simdRow(cur, prev, o + 1 + channels, stride - BYTES_PER_PIXEL, channels === 3 ? 1 : 0);
    // After the row's SIMD pass (the previous row's RGB pass wrote junk here): the filter type,
    // and the first pixel, whose Paeth prediction is "up" (no left neighbour).
    mem[o] = PAETH;
    for (let c = 0; c < channels; c++) mem[o + 1 + c] = mem[cur + c] - mem[prev + c];
  }
  return mem.subarray(rows, rows + size);
}

/** The spec's PaethPredictor byte by byte: images narrower than the SIMD loop needs. */
function scalarRows(width: number, height: number, rgba: Uint8Array, channels: 3 | 4, out: Uint8Array): Uint8Array {
  const stride = width * BYTES_PER_PIXEL;
  for (let y = 0, o = 0; y < height; y++) {
    out[o++] = PAETH;
    for (let x = 0; x < stride; x += BYTES_PER_PIXEL)
      for (let i = y * stride + x, end = i + channels; i < end; i++) {
        const a = x > 0 ? rgba[i - 4] : 0, b = y > 0 ? rgba[i - stride] : 0, c = x > 0 && y > 0 ? rgba[i - stride - 4] : 0;
        const p = a + b - c, pa = Math.abs(p - a), pb = Math.abs(p - b), pc = Math.abs(p - c);
        out[o++] = rgba[i] - (pa <= pb && pa <= pc ? a : pb <= pc ? b : c); // Uint8Array stores wrap mod 256
      }
  }
  return out;
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
