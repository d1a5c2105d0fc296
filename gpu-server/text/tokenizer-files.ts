/**
 * Reading the files of a Hugging Face tokenizer folder (`tokenizer/`, `tokenizer_2/`): every
 * failure names the file and says what to do, and JSON is validated once, here.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';

/** Files the CLIP loader reads from FLUX.1-dev's `tokenizer/` (configs optional, see below). */
export const CLIP_TOKENIZER_FILES = ['vocab.json', 'merges.txt', 'special_tokens_map.json', 'tokenizer_config.json'] as const;
/** Files the T5 loader reads from FLUX.1-dev's `tokenizer_2/` (`spiece.model` is not needed). */
export const T5_TOKENIZER_FILES = ['tokenizer.json', 'special_tokens_map.json', 'tokenizer_config.json'] as const;

export function readTokenizerText(dir: string, name: string, what: string, hint = ''): string {
  const path = join(dir, name);
  if (!existsSync(path)) {
    throw new Error(`${what}: missing ${name} in ${dir}${hint}; copy the whole tokenizer folder of the checkpoint`);
  }
  return readFileSync(path, 'utf8');
}

export function readTokenizerJson<T>(
  dir: string,
  name: string,
  what: string,
  schema: z.ZodType<T, z.ZodTypeDef, unknown>,
  hint = '',
): T {
  const text = readTokenizerText(dir, name, what, hint);
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (error) {
    throw new Error(`${what}: ${join(dir, name)} is not valid JSON (${(error as Error).message})`);
  }
  const parsed = schema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const where = issue.path.length > 0 ? ` at ${issue.path.join('.')}` : '';
    throw new Error(`${what}: ${join(dir, name)} has an unexpected shape${where}: ${issue.message}`);
  }
  return parsed.data;
}

/** A special token is written either as a string or as an AddedToken object with `content`. */
const specialToken = z.union([z.string(), z.object({ content: z.string() }).passthrough()]);
const specialTokenConfig = z
  .object({
    bos_token: specialToken.nullable().optional(),
    eos_token: specialToken.nullable().optional(),
    pad_token: specialToken.nullable().optional(),
    unk_token: specialToken.nullable().optional(),
  })
  .passthrough();

export type SpecialTokenRole = 'bos_token' | 'eos_token' | 'pad_token' | 'unk_token';
export type SpecialTokenNames = Partial<Record<SpecialTokenRole, string>>;

/**
 * Special token names from `tokenizer_config.json`, falling back to `special_tokens_map.json`
 * (transformers gives the former precedence). Either file may be absent: then the caller's
 * defaults (the model family's documented ones) apply.
 */
export function readSpecialTokenNames(dir: string, what: string): SpecialTokenNames {
  const names: SpecialTokenNames = {};
  for (const file of ['special_tokens_map.json', 'tokenizer_config.json']) {
    if (!existsSync(join(dir, file))) continue;
    const config = readTokenizerJson(dir, file, what, specialTokenConfig);
    for (const role of ['bos_token', 'eos_token', 'pad_token', 'unk_token'] as const) {
      const value = config[role];
      if (value === undefined || value === null) continue;
      names[role] = typeof value === 'string' ? value : value.content;
    }
  }
  return names;
}

const addedTokensConfig = z
  .object({ added_tokens_decoder: z.record(z.string(), z.object({ content: z.string(), normalized: z.boolean().optional() }).passthrough()).optional() })
  .passthrough();

/**
 * Added tokens that `tokenizer_config.json` marks `normalized: true`: the reference matches them
 * in the normalized text, not the raw one. None when the file or the field is absent (tokenizers'
 * default for special tokens is `normalized: false`).
 */
export function readNormalizedSpecials(dir: string, what: string): Set<string> {
  if (!existsSync(join(dir, 'tokenizer_config.json'))) return new Set();
  const config = readTokenizerJson(dir, 'tokenizer_config.json', what, addedTokensConfig);
  return new Set(Object.values(config.added_tokens_decoder ?? {}).filter((t) => t.normalized === true).map((t) => t.content));
}
