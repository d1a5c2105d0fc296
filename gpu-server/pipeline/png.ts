/** 8-bit RGBA -> PNG, for the bridge (in its pipeline worker, off the event loop) and the generate CLI. */
import { PNG } from 'pngjs';

export function encodePng(width: number, height: number, rgba: Uint8Array): Uint8Array {
  if (rgba.length !== width * height * 4)
    throw new Error(`RGBA has ${rgba.length} bytes, expected ${width}x${height}x4 = ${width * height * 4}`);
  const png = new PNG({ width, height, colorType: 6, inputColorType: 6, bitDepth: 8 });
  png.data = Buffer.from(rgba.buffer, rgba.byteOffset, rgba.byteLength);
  // Paeth only: pngjs tries all five filters per row by default; on generated layers Paeth alone gives
  // the same size (+0-1.5%) in 30-80% of the time (bench/bridge.ts, docs/performance.md).
  const buffer = PNG.sync.write(png, { colorType: 6, filterType: 4 });
  // A copy that owns its ArrayBuffer, so it can be transferred to the main thread.
  return new Uint8Array(buffer);
}

/** Opaque RGBA from interleaved RGB (the VAE images and previews are RGB). */
export function rgbToRgba(rgb: Uint8Array): Uint8Array {
  const out = new Uint8Array((rgb.length / 3) * 4).fill(255);
  for (let p = 0, q = 0; p < rgb.length; p += 3, q += 4) out.set(rgb.subarray(p, p + 3), q);
  return out;
}
