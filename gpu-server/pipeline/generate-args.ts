/**
 * `npm run generate` arguments and layout files, pure: argv and file text in, a validated job
 * description or a message saying what is wrong out.
 */
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { type BoxTuple, GRID, type Layout, LayoutError, MAX_CANVAS_SIDE, placementProblem, snapLayout, validateLayout } from '../../domain/layout.ts';
import {
  DEFAULT_GUIDANCE, DEFAULT_SEED, DEFAULT_STEPS, DEFAULT_TRUE_CFG, guidanceSchema, MAX_GUIDANCE, MAX_SEED, MAX_STEPS, MAX_TRUE_CFG,
  MIN_GUIDANCE, MIN_STEPS, MIN_TRUE_CFG, promptSchema, seedSchema, stepsSchema, trueCfgSchema,
} from '../../domain/params.ts';
import { PROVIDERS, type Provider } from '../constants.ts';
import { MEMORY_MODES, type MemoryMode } from './memory-plan.ts';

/** The built-in default job: the first official validation layout (512 px) and its caption. */
export const DEFAULT_LAYOUT_FILE = fileURLToPath(new URL('../examples/art-validation-layouts.json', import.meta.url));
export const DEFAULT_CASE = '512/0';
export const DEFAULT_OUT = 'outputs/generate';

export const USAGE = `usage: npm run generate -- [--layout layout.json] [--out dir] [options]
  with no --layout: the first official validation layout and its caption (--case ${DEFAULT_CASE})
  --prompt "..."        the caption (default: the layout file's "caption")
  --layout file.json    {caption?, boxes} as in gpu-server/examples/art-validation-layouts.json,
                        or {width, height, boxes}; that whole file works with --case 512/3
  --case res/index      pick a case of a file holding {"cases": {"512": [...]}}
  --model dir           model folder (default: the tiny model, random weights: images are noise)
  --provider name       cuda | webgpu | cpu | auto (default auto)
  --memory plan         resident | text-on-demand (default: chosen from free device memory)
  --resolution n        longest canvas side; the layout is scaled to it (default: the layout's own)
  --steps n             denoising steps, ${MIN_STEPS}..${MAX_STEPS} (default ${DEFAULT_STEPS})
  --guidance x          guidance embedding, ${MIN_GUIDANCE}..${MAX_GUIDANCE} (default ${DEFAULT_GUIDANCE})
  --true-cfg x          true classifier-free guidance scale, ${MIN_TRUE_CFG}..${MAX_TRUE_CFG} (default ${DEFAULT_TRUE_CFG})
  --seed n              noise seed, 0..${MAX_SEED} (default ${DEFAULT_SEED})
  --out dir             (default ${DEFAULT_OUT}) where layer_<i>.png, merged.png, background.png, merged_rgba.png, result.json go`;

/** The knobs `npm run generate` and `npm run decompose` share. */
export interface Knobs {
  model?: string;
  provider: Provider | 'auto';
  memory?: MemoryMode;
  steps: number;
  guidance: number;
  trueCfg: number;
  seed: number;
  out: string;
}

export interface GenerateJob extends Knobs {
  prompt: string;
  layout: Layout;
  layoutFile: string;
}

/** The `parseArgs` options of the shared knobs (plus --prompt and --help). */
export const KNOB_OPTIONS = {
  prompt: { type: 'string' }, model: { type: 'string' }, provider: { type: 'string' }, memory: { type: 'string' }, steps: { type: 'string' },
  guidance: { type: 'string' }, 'true-cfg': { type: 'string' }, seed: { type: 'string' }, out: { type: 'string' }, help: { type: 'boolean' },
} as const;

type KnobValues = { [K in Exclude<keyof typeof KNOB_OPTIONS, 'help' | 'prompt'>]?: string };

/** The shared knobs from parsed flags; throws an Error naming a bad flag. */
export function readKnobs(values: KnobValues, defaultOut: string): Knobs {
  if (values.memory !== undefined && !(MEMORY_MODES as readonly string[]).includes(values.memory)) throw new Error(`--memory must be ${MEMORY_MODES.join(' or ')}, got "${values.memory}"`);
  const provider = values.provider ?? 'auto';
  if (provider !== 'auto' && !(PROVIDERS as readonly string[]).includes(provider)) throw new Error(`--provider must be ${PROVIDERS.join(', ')} or auto, got "${provider}"`);
  return {
    model: values.model,
    provider: provider as Knobs['provider'],
    memory: values.memory as MemoryMode | undefined,
    steps: number('steps', values.steps, DEFAULT_STEPS, stepsSchema, `an integer from ${MIN_STEPS} to ${MAX_STEPS}`),
    guidance: number('guidance', values.guidance, DEFAULT_GUIDANCE, guidanceSchema, `a number from ${MIN_GUIDANCE} to ${MAX_GUIDANCE}`),
    trueCfg: number('true-cfg', values['true-cfg'], DEFAULT_TRUE_CFG, trueCfgSchema, `a number from ${MIN_TRUE_CFG} to ${MAX_TRUE_CFG}`),
    seed: number('seed', values.seed, DEFAULT_SEED, seedSchema, `an integer from 0 to ${MAX_SEED}`),
    out: values.out ?? defaultOut,
  };
}

export type Parsed<T> = { ok: true; value: T } | { ok: false; error: string };

interface LayoutFileCase {
  caption?: string;
  width?: number;
  height?: number;
  boxes: BoxTuple[];
}

const isBox = (b: unknown): b is BoxTuple => Array.isArray(b) && b.length === 4 && b.every((v) => typeof v === 'number' && Number.isFinite(v));

/** Picks the case of a layout file: a case itself, or `cases[res][index]` with `--case res/index`. */
export function readLayoutCase(json: unknown, pick: string | undefined, file: string): Parsed<LayoutFileCase> {
  const fail = (error: string): Parsed<LayoutFileCase> => ({ ok: false, error: `${file}: ${error}` });
  if (typeof json !== 'object' || json === null) return fail('expected a JSON object');
  let c = json as Record<string, unknown>;
  if ('cases' in c) {
    if (!pick) return fail('this file holds several cases; pick one with --case <resolution>/<index>, e.g. --case 512/0');
    const m = /^(\w+)\/(\d+)$/.exec(pick);
    const group = m ? (c.cases as Record<string, unknown>)?.[m[1]] : undefined;
    if (!m || !Array.isArray(group) || Number(m[2]) >= group.length) {
      const groups = Object.entries((c.cases ?? {}) as Record<string, unknown[]>).map(([k, v]) => `${k}/0..${(Array.isArray(v) ? v.length : 1) - 1}`);
      return fail(`--case ${pick} is not in this file (it has ${groups.join(', ')})`);
    }
    c = group[Number(m[2])] as Record<string, unknown>;
  } else if (pick) {
    return fail('--case given but this file holds a single layout');
  }
  if (!Array.isArray(c.boxes) || !c.boxes.every(isBox)) return fail('"boxes" must be a list of [x1, y1, x2, y2]');
  if (c.caption !== undefined && typeof c.caption !== 'string') return fail('"caption" must be a string');
  for (const k of ['width', 'height'] as const) if (c[k] !== undefined && typeof c[k] !== 'number') return fail(`"${k}" must be a number`);
  return { ok: true, value: c as unknown as LayoutFileCase };
}

/**
 * The canvas and boxes at the requested resolution: the canvas is the file's width and height,
 * or box 0 (the merged image covers the whole canvas); scaled so the longest side is
 * `resolution`, sides rounded to the grid, boxes snapped outwards.
 */
export function layoutAt(c: LayoutFileCase, resolution: number | undefined): Layout {
  if (c.boxes.length === 0) throw new LayoutError('the layout has no boxes');
  const width = c.width ?? c.boxes[0][2];
  const height = c.height ?? c.boxes[0][3];
  if (!(width > 0 && height > 0)) throw new LayoutError(`canvas ${width}x${height} is empty`);
  // Boxes are checked as written; snapping and clamping below only absorb rounding.
  c.boxes.forEach((box, i) => {
    const problem = placementProblem(box, i, width, height);
    if (problem) throw new LayoutError(problem);
  });
  const scale = resolution ? resolution / Math.max(width, height) : 1;
  const w = Math.max(GRID, Math.round((width * scale) / GRID) * GRID);
  const h = Math.max(GRID, Math.round((height * scale) / GRID) * GRID);
  const sx = w / width, sy = h / height;
  const boxes = c.boxes.map(([x1, y1, x2, y2], i): BoxTuple =>
    // Merged and background always cover the whole canvas.
    i < 2 ? [0, 0, w, h] : [x1 * sx, y1 * sy, x2 * sx, y2 * sy],
  );
  const layout = snapLayout({ width: w, height: h, boxes });
  validateLayout(layout);
  return layout;
}

/** A numeric flag, checked against the same schema the bridge and the pipeline use (domain/params.ts). */
export const number = (name: string, raw: string | undefined, fallback: number, schema: z.ZodType<number>, what: string): number => {
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (raw.trim() === '' || !schema.safeParse(n).success) throw new Error(`--${name} must be ${what}, got "${raw}"`);
  return n;
};

const resolutionFlag = z.number().int().min(GRID).max(MAX_CANVAS_SIDE);

/** Parses argv (after `--`), reading the layout file through `readFile`. */
export function parseGenerateArgs(argv: string[], readFile: (path: string) => string): Parsed<GenerateJob> {
  try {
    const { values } = parseArgs({
      args: argv.filter((a) => a !== '--'),
      options: { ...KNOB_OPTIONS, layout: { type: 'string' }, case: { type: 'string' }, resolution: { type: 'string' } },
      strict: true,
    });
    if (values.help) return { ok: false, error: USAGE };
    if (!values.layout) {
      values.layout = DEFAULT_LAYOUT_FILE;
      values.case ??= DEFAULT_CASE;
    }
    const knobs = readKnobs(values, DEFAULT_OUT);
    let text: string;
    try {
      text = readFile(values.layout);
    } catch (e) {
      return { ok: false, error: `cannot read the layout file ${values.layout}: ${(e as Error).message}` };
    }
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch (e) {
      return { ok: false, error: `${values.layout} is not valid JSON (${(e as Error).message})` };
    }
    const picked = readLayoutCase(json, values.case, values.layout);
    if (!picked.ok) return picked;
    const resolution = values.resolution === undefined ? undefined
      : number('resolution', values.resolution, 0, resolutionFlag, `an integer from ${GRID} to ${MAX_CANVAS_SIDE}`);
    const layout = layoutAt(picked.value, resolution);
    const prompt = values.prompt ?? picked.value.caption;
    if (prompt === undefined) return { ok: false, error: 'no prompt: pass --prompt "..." or use a layout file with a "caption"' };
    const promptCheck = promptSchema.safeParse(prompt);
    if (!promptCheck.success) return { ok: false, error: `--prompt: ${promptCheck.error.issues[0].message}` };
    return {
      ok: true,
      value: { ...knobs, prompt, layout, layoutFile: values.layout },
    };
  } catch (e) {
    return { ok: false, error: (e as Error).message };
  }
}
