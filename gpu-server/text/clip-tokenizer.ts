/**
 * CLIP's byte-level BPE tokenizer, as FLUX.1-dev calls it:
 * `tokenizer(prompt, padding="max_length", max_length=77, truncation=True)`.
 *
 * The reference is transformers' CLIPTokenizer backed by the tokenizers library (transformers 5;
 * `CLIPTokenizerFast` in 4.x), built from `vocab.json` + `merges.txt`:
 * - special tokens typed in the prompt are cut out: those marked `normalized: false` in
 *   `tokenizer_config.json` (`<|endoftext|>`) from the raw text, those marked `normalized: true`
 *   (`<|startoftext|>` in FLUX.1-dev's real file) from the normalized text, so `<|STARTOFTEXT|>`
 *   is the start token too (tokenizers' AddedVocabulary does exactly this);
 * - normalize: NFC, every run of Unicode whitespace -> one space, lower-case per code point;
 * - split: `'s|'t|'re|'ve|'m|'ll|'d|\p{L}+|\p{N}|[^\s\p{L}\p{N}]+`, whitespace dropped. The
 *   specials are not in this pattern (transformers' CLIPConverter builds it so from vocab.json +
 *   merges.txt; the reference run on FLUX.1-dev's files agrees, issue 22), so special-token
 *   text left after the cut above is ordinary text: `<|ENDOFTEXT|>` lower-cased splits as
 *   `<|`, `endoftext`, `|>`;
 * - each piece as UTF-8 bytes mapped to printable characters (GPT-2's byte table), BPE with
 *   `</w>` glued to the last symbol; a symbol missing from the vocabulary becomes the unknown id;
 * - `<|startoftext|>` content `<|endoftext|>`, content cut to 75, padded with the pad token.
 *
 * Unicode tables: `\p{L}`/`\p{N}` here are the JavaScript engine's (`process.versions.unicode`:
 * 17.0 on Node 20.20), the reference's are the Oniguruma build inside tokenizers (Unicode 15.0).
 * A letter or digit assigned after 15.0 (CJK Extension I, U+2EBF0-U+2EE5D, in 15.1; the scripts
 * of Unicode 16 and 17 such as Garay or Sunuwar) is part of a letter run here but of a symbol run
 * there, so such words split differently. Matching the older tables would need a copy of them;
 * prompts in the scripts CLIP was trained on are unaffected.
 *
 * Not reproduced: the Python-only CLIPTokenizer of transformers 4.x differs on some input. With
 * ftfy installed it runs `ftfy.fix_text` (mojibake repair, HTML entities when the text has no
 * tags); without ftfy it uses BERT's BasicTokenizer, which drops control characters and puts
 * spaces around CJK ideographs (so each ideograph is a word of its own). Neither HF path
 * HTML-unescapes the way OpenAI's original `basic_clean` does; we follow the tokenizers path, so
 * `&amp;` stays four characters.
 */
import { CLIP_TOKENS } from '../constants.ts';
import { readNormalizedSpecials, readSpecialTokenNames, readTokenizerJson, readTokenizerText } from './tokenizer-files.ts';
import { fitToLength, splitOnSpecialTokens, type EncodedPrompt, type LoadedTokenizer } from './tokenizer-prompt.ts';
import { z } from 'zod';

export const CLIP_BOS = '<|startoftext|>';
export const CLIP_EOS = '<|endoftext|>';
export const CLIP_WORD_END = '</w>';

/** Unicode White_Space, what Oniguruma's `\s` matches (JavaScript's `\s` differs: U+FEFF, U+0085). */
const WHITESPACE = '\\t\\n\\v\\f\\r \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000';
const WHITESPACE_RUN = new RegExp(`[${WHITESPACE}]+`, 'gu');
const CLIP_PIECE = new RegExp(`'s|'t|'re|'ve|'m|'ll|'d|\\p{L}+|\\p{N}|[^${WHITESPACE}\\p{L}\\p{N}]+`, 'gu');

/**
 * GPT-2's reversible byte -> character table: printable Latin-1 bytes map to themselves, the
 * other 68 bytes to U+0100 upwards, so BPE never sees whitespace or control characters.
 */
export const BYTE_TO_CHAR: readonly string[] = (() => {
  const printable = (b: number) => (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
  const table: string[] = [];
  let next = 256;
  for (let b = 0; b < 256; b++) table.push(String.fromCodePoint(printable(b) ? b : next++));
  return table;
})();

/** The reference's normalizer: NFC, whitespace runs to one space, lower case per code point. */
export function clipNormalize(text: string): string {
  return Array.from(text.normalize('NFC').replace(WHITESPACE_RUN, ' '), (c) => c.toLowerCase()).join('');
}

/** The words BPE sees, before the byte mapping: normalized and split as the reference does. */
export function clipPreTokenize(text: string): string[] {
  return clipNormalize(text).match(CLIP_PIECE) ?? [];
}

export interface ClipVocabulary {
  vocab: ReadonlyMap<string, number>;
  /** Merge rules, highest priority first. */
  merges: ReadonlyArray<readonly [string, string]>;
  bos: string;
  eos: string;
  pad: string;
  unk: string;
  /** Special tokens matched after normalization (`normalized: true` in tokenizer_config.json). */
  normalizedSpecials?: ReadonlySet<string>;
}

const encoder = new TextEncoder();

export function createClipTokenizer(data: ClipVocabulary, length: number = CLIP_TOKENS): LoadedTokenizer {
  const idOf = (token: string, role: string): number => {
    const id = data.vocab.get(token);
    if (id === undefined) throw new Error(`CLIP tokenizer: the ${role} token ${token} is not in vocab.json`);
    return id;
  };
  const bos = idOf(data.bos, 'start');
  const eos = idOf(data.eos, 'end');
  const pad = idOf(data.pad, 'pad');
  const unk = idOf(data.unk, 'unknown');
  const ranks = new Map<string, number>();
  data.merges.forEach(([a, b], rank) => {
    if (!data.vocab.has(a + b)) {
      throw new Error(`CLIP tokenizer: merge "${a} ${b}" (line ${rank + 1}) makes a token missing from vocab.json`);
    }
    if (!ranks.has(`${a} ${b}`)) ranks.set(`${a} ${b}`, rank);
  });
  const normalizedSet = data.normalizedSpecials ?? new Set<string>();
  const rawSpecials = new Map<string, number>();
  const normalizedSpecials = new Map<string, number>();
  for (const [token, id] of [[data.bos, bos], [data.eos, eos]] as const) (normalizedSet.has(token) ? normalizedSpecials : rawSpecials).set(token, id);
  let vocabSize = 0;
  for (const id of data.vocab.values()) vocabSize = Math.max(vocabSize, id + 1);

  const cache = new Map<string, number[]>();
  const wordIds = (word: string): number[] => {
    const cached = cache.get(word);
    if (cached) return cached;
    const chars = Array.from(encoder.encode(word), (b) => BYTE_TO_CHAR[b]);
    const ids = bpe(chars, ranks).map((symbol) => data.vocab.get(symbol) ?? unk);
    if (cache.size < 10_000) cache.set(word, ids);
    return ids;
  };

  return {
    length,
    vocabSize,
    encode(text: string): EncodedPrompt {
      const content: number[] = [];
      for (const piece of splitOnSpecialTokens(text, rawSpecials)) {
        if (piece.kind === 'special') {
          content.push(piece.id);
          continue;
        }
        for (const part of splitOnSpecialTokens(clipNormalize(piece.text), normalizedSpecials)) {
          if (part.kind === 'special') content.push(part.id);
          else for (const word of clipPreTokenize(part.text)) content.push(...wordIds(word));
        }
      }
      return fitToLength(content, { length, prefix: [bos], suffix: [eos], padId: pad });
    },
  };
}

/**
 * Byte-pair merging of one word: `</w>` joins the last symbol, then the pair with the lowest
 * rank is merged everywhere (left to right) until no ranked pair is left.
 */
export function bpe(chars: readonly string[], ranks: ReadonlyMap<string, number>): string[] {
  if (chars.length === 0) return [];
  const symbols = [...chars];
  symbols[symbols.length - 1] += CLIP_WORD_END;
  for (;;) {
    let best = Infinity;
    let bestPair = '';
    for (let i = 0; i + 1 < symbols.length; i++) {
      const rank = ranks.get(`${symbols[i]} ${symbols[i + 1]}`);
      if (rank !== undefined && rank < best) {
        best = rank;
        bestPair = `${symbols[i]} ${symbols[i + 1]}`;
      }
    }
    if (best === Infinity) return symbols;
    for (let i = 0; i + 1 < symbols.length; i++) {
      if (`${symbols[i]} ${symbols[i + 1]}` === bestPair) symbols.splice(i, 2, symbols[i] + symbols[i + 1]);
    }
  }
}

// A hand-written check: zod per entry takes about half a second over CLIP's 49408 tokens.
const vocabSchema = z.custom<Record<string, number>>(
  (v) =>
    typeof v === 'object' && v !== null && !Array.isArray(v) && Object.values(v).every((id) => typeof id === 'number' && Number.isInteger(id) && id >= 0),
  'expected an object of token -> non-negative integer id',
);

/** Parse merges.txt: an optional `#version` line, then one `left right` pair per line. */
export function parseMerges(text: string): Array<[string, string]> {
  const merges: Array<[string, string]> = [];
  const lines = text.split('\n');
  lines.forEach((raw, index) => {
    const line = raw.replace(/\r$/, '');
    if (line === '' || (index === 0 && line.startsWith('#version'))) return;
    const parts = line.split(' ');
    if (parts.length !== 2 || parts[0] === '' || parts[1] === '') {
      throw new Error(`CLIP tokenizer: merges.txt line ${index + 1} is not "left right": ${JSON.stringify(line)}`);
    }
    merges.push([parts[0], parts[1]]);
  });
  return merges;
}

/** Load FLUX.1-dev's `tokenizer/` folder (CLIP-L). */
export function loadClipTokenizer(dir: string, length: number = CLIP_TOKENS): LoadedTokenizer {
  const what = 'CLIP tokenizer';
  const vocab = new Map(Object.entries(readTokenizerJson(dir, 'vocab.json', what, vocabSchema)));
  const merges = parseMerges(readTokenizerText(dir, 'merges.txt', what));
  const names = readSpecialTokenNames(dir, what);
  const normalizedSpecials = readNormalizedSpecials(dir, what);
  return createClipTokenizer(
    {
      vocab,
      merges,
      bos: names.bos_token ?? CLIP_BOS,
      eos: names.eos_token ?? CLIP_EOS,
      // CLIPTokenizer's defaults: pad and unknown are both <|endoftext|>.
      pad: names.pad_token ?? CLIP_EOS,
      unk: names.unk_token ?? CLIP_EOS,
      normalizedSpecials,
    },
    length,
  );
}
