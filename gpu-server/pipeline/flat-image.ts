/**
 * The flat image a decomposition reads: an untrusted PNG (a designer's upload, a CLI file) checked
 * and decoded with bounded work, to the 8-bit RGB the pipeline's VAE encoder takes (a SourceImage).
 *
 * Order of checks, each before any work that depends on it: the file's size against
 * MAX_FLAT_IMAGE_BYTES; the PNG signature; IHDR first, its CRC, its dimensions against the canvas
 * (equal to it, at most MAX_CANVAS_SIDE a side, multiples of GRID) and its format (8-bit RGB or
 * RGBA, not interlaced); then every chunk's length and CRC; only then the inflate, capped at the
 * exact filtered size IHDR implies (`height * (1 + width * channels)`), so a decompression bomb
 * stops at that many bytes however far its data would inflate; then the row filters.
 *
 * Accepted: colour type 2 (RGB, with an optional tRNS colour key) and 6 (RGBA), bit depth 8, no
 * interlace (what Figma's `exportAsync` and most tools write). Refused, with how to convert:
 * palette, greyscale, 16-bit and interlaced files (each would be another decoder to trust).
 * Transparency: every pixel is composited over white (`c' = 255 - round((255 - c) * a / 255)`),
 * the page a flat picture is usually seen on; a tRNS-keyed RGB pixel is fully transparent, so
 * white. (PIL's `convert('RGB')`, which CLD's scripts use, drops alpha and keeps whatever colour a
 * transparent pixel stores, which a designer never sees.) Colour chunks (gAMA, iCCP, sRGB) are
 * ignored: samples are read as stored. Bytes after IEND are ignored.
 *
 * Pure: bytes in, a result out; errors are values with a protocol code and a message that says
 * what to do next.
 */
import { inflateSync } from 'node:zlib';
import { GRID, MAX_CANVAS_SIDE, MAX_FLAT_IMAGE_BYTES } from '../../domain/layout.ts';
import { crc32 } from './png.ts';
import type { SourceImage } from './types.ts';

/** The problems, by the protocol's error codes (bridge/protocol.ts ERROR_CODES lists each). */
export type FlatImageCode =
  /** The file is over MAX_FLAT_IMAGE_BYTES, or its data inflates beyond what its header says (a bomb). */
  | 'image_too_large'
  /** Not a PNG file (no PNG signature, or IHDR is not its first chunk). */
  | 'image_not_png'
  /** The file ends inside a chunk, or before IEND. */
  | 'image_truncated'
  /** A CRC, the compressed data, a row filter or a chunk's order is wrong. */
  | 'image_corrupt'
  /** IHDR's width and height differ from the layout's canvas (or are not a canvas at all). */
  | 'image_size_mismatch'
  /** A valid PNG in a format this decoder does not take (palette, grey, 16-bit, interlaced). */
  | 'image_unsupported';

export type FlatImageResult = { ok: true; image: SourceImage } | { ok: false; code: FlatImageCode; message: string };

export interface PngHeader {
  width: number;
  height: number;
  /** 3 (colour type 2, RGB) or 4 (colour type 6, RGBA). */
  channels: 3 | 4;
}

const SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
const IHDR_LENGTH = 13;
/** Signature, then IHDR's length, type, 13 bytes of data and CRC. */
const HEADER_BYTES = SIGNATURE.length + 12 + IHDR_LENGTH;
/** PNG spec 5.3: chunk lengths are at most 2^31 - 1. */
const MAX_CHUNK_LENGTH = 0x7fff_ffff;
const COLOUR_RGB = 2, COLOUR_RGBA = 6;
const EXPORT_AGAIN = 'export the image again as an 8-bit RGB or RGBA PNG';

type Fail = Extract<FlatImageResult, { ok: false }>;
const fail = (code: FlatImageCode, message: string): Fail => ({ ok: false, code, message });

/** The file's filtered scanlines as IHDR declares them: what its data must inflate to, exactly. */
export const filteredBytes = (h: PngHeader): number => h.height * (1 + h.width * h.channels);

/**
 * The checks that need nothing but the first 33 bytes: size, signature, IHDR (first, CRC,
 * dimensions equal to `canvas`, format). O(1) work whatever the file holds.
 */
export function checkPngHeader(png: Uint8Array, canvas: { width: number; height: number }): { ok: true; header: PngHeader } | Fail {
  if (png.length > MAX_FLAT_IMAGE_BYTES)
    return fail('image_too_large', `the image is ${png.length} bytes; at most ${MAX_FLAT_IMAGE_BYTES} are read (a ${MAX_CANVAS_SIDE} px RGBA PNG fits): ${EXPORT_AGAIN}, without extra metadata`);
  const signed = png.length >= SIGNATURE.length && SIGNATURE.every((b, i) => png[i] === b);
  if (!signed) return fail('image_not_png', `the image does not start with the PNG signature (${png.length} bytes received): send a PNG file`);
  if (png.length < HEADER_BYTES) return fail('image_truncated', `the PNG ends after ${png.length} bytes, inside its header: the upload was cut off; send the whole file`);
  const view = new DataView(png.buffer, png.byteOffset, png.length);
  if (view.getUint32(8) !== IHDR_LENGTH || chunkType(png, 12) !== 'IHDR')
    return fail('image_not_png', `the PNG's first chunk is "${printable(chunkType(png, 12))}" of ${view.getUint32(8)} bytes, not a 13-byte IHDR: ${EXPORT_AGAIN}`);
  if (crc32(png.subarray(12, 12 + 4 + IHDR_LENGTH)) !== view.getUint32(12 + 4 + IHDR_LENGTH))
    return fail('image_corrupt', `the PNG's IHDR fails its CRC: the file is damaged; ${EXPORT_AGAIN}`);
  const width = view.getUint32(16), height = view.getUint32(20);
  const [depth, colour, compression, filter, interlace] = png.subarray(24, 29);
  if (width !== canvas.width || height !== canvas.height)
    return fail('image_size_mismatch', `the image is ${width}x${height} but the layout's canvas is ${canvas.width}x${canvas.height}: export the image at the canvas size`);
  const side = (v: number) => v >= GRID && v <= MAX_CANVAS_SIDE && v % GRID === 0;
  if (!side(width) || !side(height))
    return fail('image_size_mismatch', `the image is ${width}x${height}; each side must be a multiple of ${GRID} from ${GRID} to ${MAX_CANVAS_SIDE}: export it at a canvas size`);
  if (compression !== 0 || filter !== 0)
    return fail('image_corrupt', `the PNG's IHDR names compression method ${compression} and filter method ${filter}; PNG defines only 0: the file is damaged`);
  if (depth !== 8 || (colour !== COLOUR_RGB && colour !== COLOUR_RGBA))
    return fail('image_unsupported', `the PNG is ${describe(depth, colour)}; only 8-bit RGB or RGBA is read: ${EXPORT_AGAIN} (e.g. ImageMagick: magick in.png PNG32:out.png)`);
  if (interlace !== 0)
    return fail('image_unsupported', `the PNG is interlaced (Adam7); only non-interlaced files are read: ${EXPORT_AGAIN}, interlacing off`);
  return { ok: true, header: { width, height, channels: colour === COLOUR_RGB ? 3 : 4 } };
}

/** Checks and decodes an uploaded flat image to RGB at the canvas size (see the file comment). */
export function decodeFlatImage(png: Uint8Array, canvas: { width: number; height: number }): FlatImageResult {
  const checked = checkPngHeader(png, canvas);
  if (!checked.ok) return checked;
  const { header } = checked;
  const chunks = readChunks(png, header);
  if (!chunks.ok) return chunks;
  const expected = filteredBytes(header);
  let rows: Uint8Array;
  try {
    // maxOutputLength: zlib stops (and throws) as soon as the output passes the size IHDR implies.
    rows = inflateSync(chunks.idat, { maxOutputLength: expected });
  } catch (error) {
    const code = (error as { code?: string }).code;
    if (code === 'ERR_BUFFER_TOO_LARGE')
      return fail('image_too_large', `the PNG's data inflates to more than the ${expected} bytes its ${header.width}x${header.height} header implies (a decompression bomb, or a damaged file): ${EXPORT_AGAIN}`);
    return fail('image_corrupt', `the PNG's compressed data is damaged (${(error as Error).message}): ${EXPORT_AGAIN}`);
  }
  if (rows.length !== expected)
    return fail('image_corrupt', `the PNG's data inflates to ${rows.length} bytes; its ${header.width}x${header.height} header implies ${expected}: the file is damaged or cut short; ${EXPORT_AGAIN}`);
  const unfiltered = unfilter(rows, header);
  if (!unfiltered.ok) return unfiltered;
  return { ok: true, image: { width: header.width, height: header.height, channels: 3, pixels: toRgbOverWhite(rows, header, chunks.key) } };
}

/** The IDAT data joined, and the tRNS colour key of an RGB file; every chunk's CRC checked. */
function readChunks(png: Uint8Array, header: PngHeader): { ok: true; idat: Uint8Array; key?: [number, number, number] } | Fail {
  const view = new DataView(png.buffer, png.byteOffset, png.length);
  const idats: Uint8Array[] = [];
  let key: [number, number, number] | undefined;
  let idatEnded = false;
  for (let at = HEADER_BYTES, start = at; ; start = at) {
    if (at + 12 > png.length) return fail('image_truncated', `the PNG ends after ${png.length} bytes, before its IEND chunk: the upload was cut off; send the whole file`);
    const length = view.getUint32(at);
    const type = chunkType(png, at + 4);
    if (length > MAX_CHUNK_LENGTH || at + 12 + length > png.length)
      return fail('image_truncated', `the PNG's "${printable(type)}" chunk at byte ${at} says ${length} bytes but the file ends ${png.length - at - 12} bytes later: the upload was cut off; send the whole file`);
    const data = png.subarray(at + 8, at + 8 + length);
    if (crc32(png.subarray(at + 4, at + 8 + length)) !== view.getUint32(at + 8 + length))
      return fail('image_corrupt', `the PNG's "${printable(type)}" chunk at byte ${at} fails its CRC: the file is damaged; ${EXPORT_AGAIN}`);
    at += 12 + length;
    if (type === 'IEND') break;
    if (type === 'IDAT') {
      if (idatEnded) return fail('image_corrupt', `the PNG's IDAT chunks are not consecutive (PNG spec 5.6): ${EXPORT_AGAIN}`);
      idats.push(data);
      continue;
    }
    if (idats.length > 0) idatEnded = true;
    if (type === 'IHDR') return fail('image_corrupt', `the PNG has a second IHDR chunk: ${EXPORT_AGAIN}`);
    if (type === 'tRNS' && header.channels === 3) {
      if (length !== 6) return fail('image_corrupt', `the PNG's tRNS chunk is ${length} bytes; an RGB file's is 6: ${EXPORT_AGAIN}`);
      key = [view.getUint16(start + 8), view.getUint16(start + 10), view.getUint16(start + 12)];
      continue;
    }
    // PNG spec 5.4: a chunk whose type starts with an upper-case letter is critical; a decoder
    // must refuse critical chunks it does not know. PLTE in an RGB file is only a suggestion.
    const critical = (png[start + 4] & 0x20) === 0;
    if (critical && type !== 'PLTE') return fail('image_unsupported', `the PNG has an unknown critical chunk "${printable(type)}": ${EXPORT_AGAIN}`);
  }
  if (idats.length === 0) return fail('image_corrupt', `the PNG has no image data (no IDAT chunk): ${EXPORT_AGAIN}`);
  const idat = idats.length === 1 ? idats[0] : joined(idats);
  return key ? { ok: true, idat, key } : { ok: true, idat };
}

/**
 * Undoes the row filters (PNG spec 9.2) in place: each row's first byte names its filter (0 None,
 * 1 Sub, 2 Up, 3 Average, 4 Paeth), the rest are residues against the left (a), up (b) and
 * upper-left (c) bytes of the same channel; row -1 and the bytes left of a row are 0.
 */
function unfilter(rows: Uint8Array, h: PngHeader): { ok: true } | Fail {
  const bpp = h.channels, stride = h.width * bpp, pitch = stride + 1;
  for (let y = 0; y < h.height; y++) {
    const o = y * pitch + 1, up = o - pitch;
    const type = rows[o - 1];
    switch (type) {
      case 0:
        break;
      case 1:
        for (let i = bpp; i < stride; i++) rows[o + i] += rows[o + i - bpp];
        break;
      case 2:
        if (y > 0) for (let i = 0; i < stride; i++) rows[o + i] += rows[up + i];
        break;
      case 3:
        for (let i = 0; i < stride; i++) {
          const a = i >= bpp ? rows[o + i - bpp] : 0, b = y > 0 ? rows[up + i] : 0;
          rows[o + i] += (a + b) >> 1;
        }
        break;
      case 4:
        for (let i = 0; i < stride; i++) {
          const a = i >= bpp ? rows[o + i - bpp] : 0, b = y > 0 ? rows[up + i] : 0, c = i >= bpp && y > 0 ? rows[up + i - bpp] : 0;
          const pa = Math.abs(b - c), pb = Math.abs(a - c), pc = Math.abs(a + b - 2 * c);
          rows[o + i] += pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
        }
        break;
      default:
        return fail('image_corrupt', `row ${y} of the PNG names filter type ${type}; PNG defines 0..4: the file is damaged; ${EXPORT_AGAIN}`);
    }
  }
  return { ok: true };
}

/** Interleaved RGB of the unfiltered rows, every pixel composited over white by its alpha. */
function toRgbOverWhite(rows: Uint8Array, h: PngHeader, key?: [number, number, number]): Uint8Array {
  const out = new Uint8Array(h.width * h.height * 3);
  const pitch = h.width * h.channels + 1;
  for (let y = 0, q = 0; y < h.height; y++) {
    for (let i = y * pitch + 1, end = i + h.width * h.channels; i < end; i += h.channels, q += 3) {
      const r = rows[i], g = rows[i + 1], b = rows[i + 2];
      if (h.channels === 3) {
        const keyed = key !== undefined && r === key[0] && g === key[1] && b === key[2];
        out[q] = keyed ? 255 : r;
        out[q + 1] = keyed ? 255 : g;
        out[q + 2] = keyed ? 255 : b;
      } else {
        const a = rows[i + 3];
        out[q] = overWhite(r, a);
        out[q + 1] = overWhite(g, a);
        out[q + 2] = overWhite(b, a);
      }
    }
  }
  return out;
}

/** One 8-bit sample over white: `255 - round((255 - c) * a / 255)`, exact in integers. */
export const overWhite = (c: number, a: number): number => 255 - Math.floor(((255 - c) * a + 127) / 255);

function chunkType(png: Uint8Array, at: number): string {
  return String.fromCharCode(png[at], png[at + 1], png[at + 2], png[at + 3]);
}

/** A chunk type fit for a message (a hostile file's bytes are not echoed raw). */
const printable = (type: string): string => type.replace(/[^\x20-\x7e]/g, '?');

function describe(depth: number, colour: number): string {
  const kind = { 0: 'greyscale', 2: 'RGB', 3: 'palette (indexed colour)', 4: 'greyscale with alpha', 6: 'RGBA' }[colour] ?? `colour type ${colour}`;
  return `${depth}-bit ${kind}`;
}

function joined(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}
