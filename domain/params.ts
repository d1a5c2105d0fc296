/**
 * Generation parameters: the caption and the sampling settings, with their one set of limits and
 * defaults (docs/design.md, "Limits"). The bridge, the pipeline, `npm run generate` and the plugin's
 * settings all check against these. zod and plain TypeScript only (bundled into the plugin and UI).
 */
import { z } from 'zod';

/** Denoising steps: FLUX is trained for 28-50; more than 100 only costs time. */
export const MIN_STEPS = 1;
export const MAX_STEPS = 100;
export const DEFAULT_STEPS = 28;
/** The guidance *embedding* passed to the transformer (official default 4.0). */
export const MIN_GUIDANCE = 0;
export const MAX_GUIDANCE = 20;
export const DEFAULT_GUIDANCE = 4.0;
/** True classifier-free guidance scale `neg + s * (pos - neg)` (official default 3.5; 1: the negative branch has no effect). */
export const MIN_TRUE_CFG = 1;
export const MAX_TRUE_CFG = 20;
export const DEFAULT_TRUE_CFG = 3.5;
/** Seeds are unsigned 32-bit integers. */
export const MAX_SEED = 0xffff_ffff;
export const DEFAULT_SEED = 41;
/** Prompt length in characters (T5 reads 512 tokens, about 2 000 characters; longer text is cut anyway). */
export const MAX_PROMPT_CHARS = 4000;

// Built from a string: a `\p{...}` regex literal is ES2018 syntax, and the plugin targets ES2017.
const BLANK = new RegExp('^[\\p{White_Space}\\p{Default_Ignorable_Code_Point}\\p{Cc}]*$', 'u');

/** Only Unicode white space (U+0085 included, which `trim` keeps), invisible format characters
 *  (zero-width space, BOM, soft hyphen...) and control characters: nothing for the model to read. */
export function isBlank(text: string): boolean {
  return BLANK.test(text);
}

/** Finite by construction: zod's number() rejects NaN, and `.finite()` rejects Infinity. */
const finite = () => z.number().finite();

export const promptSchema = z
  .string()
  .max(MAX_PROMPT_CHARS, `prompt is longer than ${MAX_PROMPT_CHARS} characters; shorten it`)
  .refine((p) => !isBlank(p), { message: 'prompt is empty (only spaces or invisible characters); describe the image' });

export const stepsSchema = z.number().int().min(MIN_STEPS).max(MAX_STEPS);
export const guidanceSchema = finite().min(MIN_GUIDANCE).max(MAX_GUIDANCE);
export const trueCfgSchema = finite().min(MIN_TRUE_CFG).max(MAX_TRUE_CFG);
export const seedSchema = z.number().int().min(0).max(MAX_SEED);

/** The adapter's weight in a decomposition: its residuals are multiplied by it (CLD's inference: 0.9; 0 ignores the image). */
export const MIN_CONDITIONING_SCALE = 0;
export const MAX_CONDITIONING_SCALE = 2;
export const DEFAULT_CONDITIONING_SCALE = 0.9;
export const conditioningScaleSchema = finite().min(MIN_CONDITIONING_SCALE).max(MAX_CONDITIONING_SCALE);

/** The sampling settings of one generation. */
export const samplingSchema = z
  .object({ steps: stepsSchema, guidance: guidanceSchema, trueCfg: trueCfgSchema, seed: seedSchema })
  .strict();
export type Sampling = z.infer<typeof samplingSchema>;

export const DEFAULT_SAMPLING: Sampling = { steps: DEFAULT_STEPS, guidance: DEFAULT_GUIDANCE, trueCfg: DEFAULT_TRUE_CFG, seed: DEFAULT_SEED };
