/**
 * T5's SentencePiece-unigram tokenizer, as FLUX.1-dev calls it: `tokenizer_2(prompt,
 * padding="max_length", max_length=512, truncation=True)` with T5TokenizerFast, i.e. the
 * tokenizers library running `tokenizer_2/tokenizer.json`:
 * - special (added) tokens typed in the prompt (`</s>`, `<extra_id_0>`, ...) are cut out first;
 * - normalize with the precompiled charsmap (nmt_nfkc: NFKC, control characters dropped, odd
 *   spaces to ' '; see tokenizer-charsmap.ts);
 * - split on Unicode whitespace (so runs of spaces collapse), `▁` prepended to every word;
 * - Viterbi over the unigram lattice: the segmentation with the highest sum of piece scores;
 *   a character no piece starts with becomes `<unk>` scored (lowest score - 10), and adjacent
 *   unknown characters fuse into one `<unk>`;
 * - the post-processor's template (`$A </s>`), content cut to 511, padded with `<pad>` (id 0).
 *
 * Not reproduced: added tokens' `lstrip`/`rstrip`/`single_word` flags and matching of
 * `normalized: true` added tokens after normalization (T5's are all plain special tokens);
 * `spiece.model` (the slow tokenizer) is not read: FLUX's pipeline uses the fast one.
 */
import { T5_TOKENS } from '../constants.ts';
import { applyCharsmap, parseCharsmap, type Charsmap } from './tokenizer-charsmap.ts';
import { readSpecialTokenNames, readTokenizerJson } from './tokenizer-files.ts';
import { fitToLength, splitOnSpecialTokens, type EncodedPrompt, type LoadedTokenizer } from './tokenizer-prompt.ts';
import { z } from 'zod';

export const METASPACE = '\u2581';
/** tokenizers' Unigram: unknown characters score this much below the lowest piece. */
const UNKNOWN_PENALTY = 10;

type NormalizerConfig =
  | { type: 'Precompiled'; precompiled_charsmap: string | null }
  | { type: 'NFKC' | 'NFC' | 'Lowercase' }
  /** Newer conversions of SentencePiece models add `Replace(" {2,}", " ")` after the charsmap. */
  | { type: 'Replace'; pattern: { String: string } | { Regex: string }; content: string }
  | { type: 'Strip'; strip_left?: boolean; strip_right?: boolean }
  | { type: 'Sequence'; normalizers: NormalizerConfig[] };
const normalizerSchema: z.ZodType<NormalizerConfig> = z.lazy(() =>
  z.union([
    z.object({ type: z.literal('Precompiled'), precompiled_charsmap: z.string().nullable() }),
    z.object({ type: z.enum(['NFKC', 'NFC', 'Lowercase']) }),
    z.object({
      type: z.literal('Replace'),
      pattern: z.union([z.object({ String: z.string() }), z.object({ Regex: z.string() })]),
      content: z.string(),
    }),
    z.object({ type: z.literal('Strip'), strip_left: z.boolean().optional(), strip_right: z.boolean().optional() }),
    z.object({ type: z.literal('Sequence'), normalizers: z.array(normalizerSchema) }),
  ]),
);

type PreTokenizerConfig =
  | { type: 'WhitespaceSplit' }
  | {
      type: 'Metaspace';
      replacement: string;
      add_prefix_space?: boolean;
      prepend_scheme?: 'always' | 'first' | 'never';
      split?: boolean;
    }
  | { type: 'Sequence'; pretokenizers: PreTokenizerConfig[] };
const preTokenizerSchema: z.ZodType<PreTokenizerConfig> = z.lazy(() =>
  z.union([
    z.object({ type: z.literal('WhitespaceSplit') }),
    z.object({
      type: z.literal('Metaspace'),
      replacement: z.string(),
      add_prefix_space: z.boolean().optional(),
      prepend_scheme: z.enum(['always', 'first', 'never']).optional(),
      split: z.boolean().optional(),
    }),
    z.object({ type: z.literal('Sequence'), pretokenizers: z.array(preTokenizerSchema) }),
  ]),
);

// `type_id` is required by the tokenizers library (0 for every piece of T5's templates); unused here.
const templatePiece = z.union([
  z.object({ Sequence: z.object({ id: z.string(), type_id: z.number().int().nonnegative().optional() }) }),
  z.object({ SpecialToken: z.object({ id: z.string(), type_id: z.number().int().nonnegative().optional() }) }),
]);

export const t5TokenizerJsonSchema = z.object({
  added_tokens: z
    .array(z.object({ id: z.number().int().nonnegative(), content: z.string(), special: z.boolean().optional() }))
    .default([]),
  normalizer: normalizerSchema.nullable(),
  pre_tokenizer: preTokenizerSchema.nullable(),
  post_processor: z
    .object({
      type: z.literal('TemplateProcessing'),
      single: z.array(templatePiece),
      /** The template for sentence pairs: required by the tokenizers library, unused by one prompt. */
      pair: z.array(templatePiece).optional(),
      special_tokens: z
        .record(z.string(), z.object({ id: z.string().optional(), ids: z.array(z.number().int().nonnegative()), tokens: z.array(z.string()).optional() }))
        .default({}),
    })
    .nullable(),
  model: z.object({
    type: z.literal('Unigram'),
    unk_id: z.number().int().nonnegative().nullable(),
    // A hand-written check: zod takes most of a second over T5's 32100 pairs.
    vocab: z.custom<Array<[string, number]>>(
      (v) => Array.isArray(v) && v.every((p) => Array.isArray(p) && p.length === 2 && typeof p[0] === 'string' && Number.isFinite(p[1])),
      'expected [piece, score] pairs',
    ),
    byte_fallback: z.boolean().optional(),
  }),
});
export type T5TokenizerJson = z.infer<typeof t5TokenizerJsonSchema>;

export interface T5Options {
  length?: number;
  /** Pad token name (`<pad>` for T5); its id must be in the vocabulary. */
  pad?: string;
  /** End token appended when tokenizer.json has no post-processor (`</s>`). */
  eos?: string;
}

export function createT5Tokenizer(json: T5TokenizerJson, options: T5Options = {}): LoadedTokenizer {
  const length = options.length ?? T5_TOKENS;
  const model = json.model;
  if (model.byte_fallback) throw new Error('T5 tokenizer: byte_fallback unigram models are not supported');
  if (model.vocab.length === 0) throw new Error('T5 tokenizer: tokenizer.json has an empty vocabulary');
  const pieceIds = new Map<string, number>();
  let minScore = Infinity;
  let longest = 0;
  model.vocab.forEach(([piece, score], id) => {
    pieceIds.set(piece, id);
    minScore = Math.min(minScore, score);
    longest = Math.max(longest, piece.length);
  });
  const scores = model.vocab.map(([, score]) => score);
  const unkId = model.unk_id;
  const specials = new Map(json.added_tokens.map((t) => [t.content, t.id]));
  const idOf = (token: string, role: string): number => {
    const id = specials.get(token) ?? pieceIds.get(token);
    if (id === undefined) throw new Error(`T5 tokenizer: the ${role} token ${token} is not in tokenizer.json`);
    return id;
  };
  const padId = idOf(options.pad ?? '<pad>', 'pad');
  const { prefix, suffix } = json.post_processor
    ? templateIds(json.post_processor)
    : { prefix: [], suffix: [idOf(options.eos ?? '</s>', 'end')] };
  const normalize = normalizerOf(json.normalizer);
  const preTokenize = preTokenizerOf(json.pre_tokenizer);
  let vocabSize = model.vocab.length;
  for (const id of specials.values()) vocabSize = Math.max(vocabSize, id + 1);

  const segment = (word: string): number[] => {
    const ids: number[] = [];
    for (const piece of viterbi(word, pieceIds, scores, longest, minScore - UNKNOWN_PENALTY, unkId)) {
      const id = pieceIds.get(piece.text) ?? (piece.unknown ? unkId : undefined);
      if (id === undefined || id === null) throw new Error(`T5 tokenizer: ${JSON.stringify(word)} has characters no piece covers and the model has no unk_id`);
      ids.push(id);
    }
    return ids;
  };

  return {
    length,
    vocabSize,
    encode(text: string): EncodedPrompt {
      const content: number[] = [];
      let offset = 0;
      for (const piece of splitOnSpecialTokens(text, specials)) {
        if (piece.kind === 'special') {
          content.push(piece.id);
          offset += 1;
          continue;
        }
        for (const word of preTokenize(normalize(piece.text), offset === 0)) content.push(...segment(word));
        offset += piece.text.length;
      }
      return fitToLength(content, { length, prefix, suffix, padId });
    },
  };

  function templateIds(post: NonNullable<T5TokenizerJson['post_processor']>) {
    const before: number[] = [];
    const after: number[] = [];
    let seenContent = false;
    for (const item of post.single) {
      if ('Sequence' in item) {
        seenContent = true;
        continue;
      }
      const ids = post.special_tokens[item.SpecialToken.id]?.ids ?? [idOf(item.SpecialToken.id, 'template')];
      (seenContent ? after : before).push(...ids);
    }
    return { prefix: before, suffix: after };
  }
}

function normalizerOf(config: NormalizerConfig | null): (text: string) => string {
  if (config === null) return (text) => text;
  switch (config.type) {
    case 'NFKC':
    case 'NFC': {
      const form = config.type;
      return (text) => text.normalize(form);
    }
    case 'Lowercase':
      // Per code point, as Rust's char::to_lowercase (no final-sigma rule).
      return (text) => Array.from(text, (c) => c.toLowerCase()).join('');
    case 'Replace': {
      const { pattern, content } = config;
      // Oniguruma and JavaScript agree on the simple patterns these files use (" {2,}").
      if ('String' in pattern) return (text) => text.replaceAll(pattern.String, content);
      const regex = new RegExp(pattern.Regex, 'gu');
      return (text) => text.replace(regex, () => content);
    }
    case 'Strip': {
      const left = config.strip_left ?? true;
      const right = config.strip_right ?? true;
      return (text) => {
        let out = left ? text.replace(STRIP_LEFT, '') : text;
        if (right) out = out.replace(STRIP_RIGHT, '');
        return out;
      };
    }
    case 'Precompiled': {
      if (!config.precompiled_charsmap) return (text) => text;
      const map: Charsmap = parseCharsmap(Buffer.from(config.precompiled_charsmap, 'base64'));
      return (text) => applyCharsmap(map, text);
    }
    case 'Sequence': {
      const steps = config.normalizers.map(normalizerOf);
      return (text) => steps.reduce((t, step) => step(t), text);
    }
  }
}

/** Unicode White_Space, what Rust's `char::is_whitespace` (WhitespaceSplit, Strip) tests. */
const WHITESPACE = '\\t\\n\\v\\f\\r \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000';
const WHITESPACE_RUN = new RegExp(`[${WHITESPACE}]+`, 'u');
const STRIP_LEFT = new RegExp(`^[${WHITESPACE}]+`, 'u');
const STRIP_RIGHT = new RegExp(`[${WHITESPACE}]+$`, 'u');

/** Words the unigram model sees. `atStart`: this text begins the prompt (Metaspace `first`). */
function preTokenizerOf(config: PreTokenizerConfig | null): (text: string, atStart: boolean) => string[] {
  if (config === null) return (text) => (text === '' ? [] : [text]);
  switch (config.type) {
    case 'WhitespaceSplit':
      return (text) => text.split(WHITESPACE_RUN).filter((w) => w !== '');
    case 'Metaspace': {
      const { replacement } = config;
      const scheme = config.prepend_scheme ?? (config.add_prefix_space === false ? 'never' : 'always');
      const split = config.split ?? true;
      return (text, atStart) => {
        // WhitespaceSplit runs before, so each call sees one word; `first` prepends to the opening one.
        let word = text.replaceAll(' ', replacement);
        const prepend = scheme === 'always' || (scheme === 'first' && atStart);
        if (prepend && word !== '' && !word.startsWith(replacement)) word = replacement + word;
        if (!split) return word === '' ? [] : [word];
        const parts: string[] = [];
        let start = 0;
        for (let i = 1; i <= word.length; i++) {
          if (i === word.length || word.startsWith(replacement, i)) {
            if (i > start) parts.push(word.slice(start, i));
            start = i;
          }
        }
        return parts;
      };
    }
    case 'Sequence': {
      const steps = config.pretokenizers.map(preTokenizerOf);
      return (text, atStart) => {
        let words = [text];
        for (const step of steps) words = words.flatMap((w, i) => step(w, atStart && i === 0));
        return words;
      };
    }
  }
}

export interface UnigramPiece {
  text: string;
  /** Covered by the unknown token (no piece starts with its characters). */
  unknown: boolean;
}

/**
 * Highest-scoring segmentation of `word` into vocabulary pieces. Ties keep the path found first
 * (shorter pieces, earlier starts), as tokenizers' Unigram does.
 */
export function viterbi(
  word: string,
  pieceIds: ReadonlyMap<string, number>,
  scores: readonly number[],
  longest: number,
  unknownScore: number,
  unkId: number | null,
): UnigramPiece[] {
  const n = word.length;
  const bestScore = new Float64Array(n + 1).fill(-Infinity);
  const bestStart = new Int32Array(n + 1).fill(-1);
  const bestUnknown = new Uint8Array(n + 1);
  bestScore[0] = 0;
  for (let start = 0; start < n; ) {
    const charLength = (word.codePointAt(start) as number) > 0xffff ? 2 : 1;
    const here = bestScore[start];
    let single = false;
    for (let end = start + 1; end <= Math.min(n, start + longest); end++) {
      const id = pieceIds.get(word.slice(start, end));
      if (id === undefined) continue;
      if (end - start === charLength) single = true;
      const score = here + scores[id];
      if (bestStart[end] < 0 || score > bestScore[end]) {
        bestScore[end] = score;
        bestStart[end] = start;
        bestUnknown[end] = id === unkId ? 1 : 0;
      }
    }
    if (!single) {
      const end = start + charLength;
      const score = here + unknownScore;
      if (bestStart[end] < 0 || score > bestScore[end]) {
        bestScore[end] = score;
        bestStart[end] = start;
        bestUnknown[end] = 1;
      }
    }
    start += charLength;
  }
  const pieces: UnigramPiece[] = [];
  for (let end = n; end > 0; ) {
    const start = bestStart[end];
    const text = word.slice(start, end);
    const last = pieces[pieces.length - 1];
    // Adjacent unknowns fuse into one token (tokenizers' fuse_unk).
    if (bestUnknown[end] && last?.unknown) last.text = text + last.text;
    else pieces.push({ text, unknown: bestUnknown[end] === 1 });
    end = start;
  }
  return pieces.reverse();
}

/** Load FLUX.1-dev's `tokenizer_2/` folder (T5-XXL). */
export function loadT5Tokenizer(dir: string, length: number = T5_TOKENS): LoadedTokenizer {
  const what = 'T5 tokenizer';
  const json = readTokenizerJson(dir, 'tokenizer.json', what, t5TokenizerJsonSchema, ' (the fast tokenizer; spiece.model alone is not read)');
  const names = readSpecialTokenNames(dir, what);
  return createT5Tokenizer(json, { length, pad: names.pad_token, eos: names.eos_token });
}
