/**
 * `npm run decompose` arguments, pure: argv and file bytes in, a checked decomposition job or a
 * message saying what is wrong out. The image is checked before it is decoded, as an upload is.
 */
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { type BoxTuple, GRID, type Layout, MAX_CANVAS_SIDE } from '../../domain/layout.ts';
import { conditioningScaleSchema, DEFAULT_CONDITIONING_SCALE, MAX_CONDITIONING_SCALE, MIN_CONDITIONING_SCALE } from '../../domain/params.ts';
import { KNOB_OPTIONS, layoutAt, number, readKnobs, type Knobs, type Parsed } from './generate-args.ts';
import { decodeFlatImage } from './flat-image.ts';
import type { SourceImage } from './types.ts';

/** The built-in example: a flat poster and the boxes of its three shapes. */
export const DEFAULT_IMAGE_FILE = fileURLToPath(new URL('../examples/decompose-poster.png', import.meta.url));
export const DEFAULT_BOXES_FILE = fileURLToPath(new URL('../examples/decompose-poster.json', import.meta.url));
export const DEFAULT_DECOMPOSE_OUT = 'outputs/decompose';

export const DECOMPOSE_USAGE = `usage: npm run decompose -- [--image flat.png --boxes boxes.json] [--out dir] [options]
  with no --image: a built-in flat poster and the boxes of its three shapes (gpu-server/examples/)
  --image file.png      the flat image; its size is the canvas (multiples of ${GRID}, at most ${MAX_CANVAS_SIDE} a side);
                        transparent pixels are composited over white
  --boxes file.json     {caption?, boxes: [[x1, y1, x2, y2], ...]}: the layers wanted, in image pixels
                        (snapped outwards to ${GRID}); the whole image and the background are added
  --prompt "..."        a caption of the whole image (default: the boxes file's "caption")
  --conditioning-scale x  weight of the adapter's residuals (default ${DEFAULT_CONDITIONING_SCALE}, CLD's)
  --model dir           model folder with CLD's adapter (default: the tiny model, random weights: layers are noise)
  --provider, --memory, --steps, --guidance, --true-cfg, --seed: as for npm run generate
  --out dir             (default ${DEFAULT_DECOMPOSE_OUT}) where layer_<i>.png, merged.png, background.png, merged_rgba.png, result.json go`;

export interface DecomposeJob extends Knobs {
  prompt: string;
  image: SourceImage;
  layout: Layout;
  conditioningScale: number;
  imageFile: string;
  layoutFile: string;
}

/**
 * The flat image of a CLI run: its own size is the canvas (read from IHDR), then the same checks
 * and bounded decoder as an upload (`flat-image.ts`).
 */
export function readCanvasPng(bytes: Uint8Array, file: string): SourceImage {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const size = bytes.length >= 24 ? { width: view.getUint32(16), height: view.getUint32(20) } : { width: 0, height: 0 };
  const decoded = decodeFlatImage(bytes, size);
  if (!decoded.ok) throw new Error(`${file}: ${decoded.message}`);
  return decoded.image;
}

const isBox = (b: unknown): b is BoxTuple => Array.isArray(b) && b.length === 4 && b.every((v) => typeof v === 'number' && Number.isFinite(v));

/** Parses argv (after `--`), reading the image and boxes files through `readFile`. */
export function parseDecomposeArgs(argv: string[], readFile: (path: string) => Uint8Array): Parsed<DecomposeJob> {
  try {
    const values = parseFlags(argv.filter((a) => a !== '--'));
    if (values.help) return { ok: false, error: DECOMPOSE_USAGE };
    if ((values.image === undefined) !== (values.boxes === undefined)) return { ok: false, error: 'give both --image and --boxes (or neither, for the built-in example)' };
    const imageFile = values.image ?? DEFAULT_IMAGE_FILE;
    const boxesFile = values.boxes ?? DEFAULT_BOXES_FILE;
    const knobs = readKnobs(values, DEFAULT_DECOMPOSE_OUT);
    const conditioningScale = number('conditioning-scale', values['conditioning-scale'], DEFAULT_CONDITIONING_SCALE, conditioningScaleSchema, `a number from ${MIN_CONDITIONING_SCALE} to ${MAX_CONDITIONING_SCALE}`);
    const read = (file: string, what: string) => {
      try {
        return readFile(file);
      } catch (e) {
        throw new Error(`cannot read the ${what} ${file}: ${(e as Error).message}`);
      }
    };
    const image = readCanvasPng(read(imageFile, 'image'), imageFile);
    let json: { caption?: unknown; boxes?: unknown };
    try {
      json = JSON.parse(new TextDecoder().decode(read(boxesFile, 'boxes file')));
    } catch (e) {
      return { ok: false, error: `${boxesFile} is not valid JSON (${(e as Error).message})` };
    }
    if (typeof json !== 'object' || json === null || !Array.isArray(json.boxes) || !json.boxes.every(isBox)) return { ok: false, error: `${boxesFile}: "boxes" must be a list of [x1, y1, x2, y2] in image pixels` };
    if (json.caption !== undefined && typeof json.caption !== 'string') return { ok: false, error: `${boxesFile}: "caption" must be a string` };
    const { width, height } = image;
    const whole: BoxTuple = [0, 0, width, height];
    const layout = layoutAt({ width, height, boxes: [whole, whole, ...json.boxes] }, undefined);
    const prompt = values.prompt ?? json.caption;
    if (typeof prompt !== 'string' || prompt.trim() === '') return { ok: false, error: 'no caption: pass --prompt "..." describing the whole image, or put a "caption" in the boxes file' };
    return { ok: true, value: { ...knobs, prompt, image, layout, conditioningScale, imageFile, layoutFile: boxesFile } };
  } catch (e) {
    return { ok: false, error: (e as Error).message };
  }
}

function parseFlags(args: string[]) {
  return parseArgs({
    args,
    options: { ...KNOB_OPTIONS, image: { type: 'string' }, boxes: { type: 'string' }, 'conditioning-scale': { type: 'string' } },
    strict: true,
  }).values;
}
