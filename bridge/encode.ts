/** RGBA -> PNG. Runs in the pipeline worker so the bridge's event loop never compresses images. */
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
