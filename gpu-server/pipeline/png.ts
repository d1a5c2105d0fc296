/**
 * 8-bit RGBA -> PNG, for the bridge (on its encoder threads) and the generate CLI.
 *
 * Every row gets the Paeth filter, then one deflate with zlib's run-length strategy: the same
 * choice pngjs makes with `filterType: 4` (same bytes after deflate), without its per-pixel
 * generic filter code. Measured against pngjs, sharp/libvips and @napi-rs/image on the bench's 52
 * generated layers (`npm run bench -- png`, docs/performance.md), this is the fastest encoder
 * whose files stay within a few percent of pngjs's size.
 */
import { constants, deflateSync } from 'node:zlib';

const SIGNATURE = Uint8Array.of(0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a);
const PAETH = 4;
const BYTES_PER_PIXEL = 4;

export function encodePng(width: number, height: number, rgba: Uint8Array): Uint8Array {
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1)
    throw new Error(`a PNG needs a positive integer size, got ${width}x${height}`);
  if (rgba.length !== width * height * 4)
    throw new Error(`RGBA has ${rgba.length} bytes, expected ${width}x${height}x4 = ${width * height * 4}`);
  const idat = deflateSync(paethRows(width, height, rgba), { strategy: constants.Z_RLE });
  const ihdr = new Uint8Array(13);
  const view = new DataView(ihdr.buffer);
  view.setUint32(0, width);
  view.setUint32(4, height);
  ihdr.set([8, 6, 0, 0, 0], 8); // 8 bits, colour type 6 (RGBA), deflate, adaptive filtering, no interlace
  const chunks = [chunk('IHDR', ihdr), chunk('IDAT', idat), chunk('IEND', new Uint8Array(0))];
  // One buffer that owns its ArrayBuffer, so it can be transferred between threads.
  const out = new Uint8Array(SIGNATURE.length + chunks.reduce((n, c) => n + c.length, 0));
  out.set(SIGNATURE, 0);
  let at = SIGNATURE.length;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

/** Filtered scanlines: each row a filter-type byte then Paeth residues (PNG spec 9.4). */
export function paethRows(width: number, height: number, rgba: Uint8Array): Uint8Array {
  const stride = width * BYTES_PER_PIXEL;
  const out = new Uint8Array(height * (stride + 1));
  for (let y = 0; y < height; y++) {
    const o = y * (stride + 1) + 1, row = y * stride;
    out[o - 1] = PAETH;
    if (y === 0) {
      // No row above: Paeth reduces to "left" (b = c = 0).
      for (let x = 0; x < stride; x++) out[o + x] = rgba[x] - (x >= BYTES_PER_PIXEL ? rgba[x - BYTES_PER_PIXEL] : 0);
      continue;
    }
    const above = row - stride;
    // First pixel: no left neighbour, Paeth reduces to "up". Uint8Array stores wrap mod 256.
    for (let x = 0; x < BYTES_PER_PIXEL; x++) out[o + x] = rgba[row + x] - rgba[above + x];
    for (let x = BYTES_PER_PIXEL; x < stride; x++) {
      const a = rgba[row + x - BYTES_PER_PIXEL], b = rgba[above + x], c = rgba[above + x - BYTES_PER_PIXEL];
      const pa = Math.abs(b - c), pb = Math.abs(a - c), pc = Math.abs(a + b - c - c);
      out[o + x] = rgba[row + x] - (pa <= pb && pa <= pc ? a : pb <= pc ? b : c);
    }
  }
  return out;
}

function chunk(type: string, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(12 + data.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, data.length);
  for (let i = 0; i < 4; i++) out[4 + i] = type.charCodeAt(i);
  out.set(data, 8);
  view.setUint32(8 + data.length, crc32(out.subarray(4, 8 + data.length)));
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

/** CRC-32 as PNG chunks use it (ISO 3309, the same as zlib's). */
export function crc32(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (let i = 0; i < bytes.length; i++) c = CRC_TABLE[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/** Opaque RGBA from interleaved RGB (the VAE images and previews are RGB). */
export function rgbToRgba(rgb: Uint8Array): Uint8Array {
  const out = new Uint8Array((rgb.length / 3) * 4).fill(255);
  for (let p = 0, q = 0; p < rgb.length; p += 3, q += 4) out.set(rgb.subarray(p, p + 3), q);
  return out;
}
