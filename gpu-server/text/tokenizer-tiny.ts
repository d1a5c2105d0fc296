/**
 * Tiny CLIP and T5 tokenizer folders in the real Hugging Face file layout, for the random-weight
 * `tiny` model folder: every English prompt encodes (all printable ASCII is covered), common
 * words are single tokens, and every id is below the requested vocabulary size. Deterministic:
 * the same size gives the same files.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { BYTE_TO_CHAR, CLIP_BOS, CLIP_EOS, CLIP_WORD_END, bpe, clipPreTokenize } from './clip-tokenizer.ts';
import { METASPACE, type T5TokenizerJson } from './t5-tokenizer.ts';
import { buildCharsmap } from './tokenizer-charsmap.ts';

/** Common English and design words, most useful first; the tiny vocabularies take a prefix. */
export const TINY_WORDS: readonly string[] = (
  'the a of and in to with on is for at by an as from this that it be are or its his her their ' +
  'text title logo poster design background image photo layer frame button icon banner card menu ' +
  'white black red blue green yellow orange purple pink gray grey brown gold silver dark light ' +
  'bright color colors colorful style modern simple clean minimal vintage retro bold font letters ' +
  'words you your free new sale summer winter spring autumn day night sun moon star sky sea water ' +
  'tree flower flowers leaf leaves mountain city street house room table chair window door book ' +
  'man woman girl boy people person child face hand eyes hair dog cat bird fish car road light ' +
  'top bottom left right center middle small large big little round square circle line lines ' +
  'shape shapes pattern texture paper wood metal glass stone cloud clouds rain snow fire smoke ' +
  'happy love life time world home music party food coffee tea cake fruit apple open shop store ' +
  'best great good one two three four five six seven eight nine ten year years all more most ' +
  'has have had was were will can not no yes up down out over under into about above below ' +
  'between behind front back side art illustration cartoon realistic digital watercolor painting ' +
  'drawing vector flat 3d shadow soft warm cool blur sharp high quality detailed beautiful cute ' +
  'elegant abstract geometric floral pastel neon gradient border corner edge overlay sticker badge ' +
  'label sign board wall floor ground grass field garden park beach ocean wave river lake forest ' +
  'desert island bridge tower building window boat ship plane train bike ball game play fun kids ' +
  'welcome hello thank thanks please join us now today only off get shop buy event festival ' +
  "christmas holiday birthday wedding celebrate celebration special offer discount price don't it's"
)
  .split(' ')
  .filter((word, index, all) => word !== '' && all.indexOf(word) === index);

function writeJson(dir: string, name: string, value: unknown): void {
  writeFileSync(join(dir, name), `${JSON.stringify(value, null, 2)}\n`);
}

/** CLIP's byte order in vocab.json: the printable bytes first, then the remapped ones. */
function clipByteOrder(): number[] {
  const bytes = [...Array(256).keys()];
  const printable = (b: number) => BYTE_TO_CHAR[b].codePointAt(0) === b;
  return [...bytes.filter(printable), ...bytes.filter((b) => !printable(b))];
}

/**
 * `tokenizer/` for CLIP: the 256 byte symbols, the same with `</w>`, merges learned from
 * TINY_WORDS (then letter pairs) until the vocabulary is full, and `<|startoftext|>`,
 * `<|endoftext|>` as the last two ids, as in CLIP-L (so the end token has the largest id).
 */
export function writeTinyClipTokenizer(dir: string, vocabSize: number): void {
  const minimum = 512 + 2 + 6;
  if (!Number.isInteger(vocabSize) || vocabSize < minimum) {
    throw new Error(`writeTinyClipTokenizer: vocabSize ${vocabSize} is below ${minimum} (256 bytes x2, 2 specials, a few merges)`);
  }
  const vocab = new Map<string, number>();
  for (const b of clipByteOrder()) vocab.set(BYTE_TO_CHAR[b], vocab.size);
  for (const b of clipByteOrder()) vocab.set(BYTE_TO_CHAR[b] + CLIP_WORD_END, vocab.size);
  const merges: Array<[string, string]> = [];
  const ranks = new Map<string, number>();
  const room = vocabSize - 2;
  const addMerge = (a: string, b: string): boolean => {
    if (vocab.size >= room || ranks.has(`${a} ${b}`)) return false;
    ranks.set(`${a} ${b}`, merges.length);
    merges.push([a, b]);
    if (!vocab.has(a + b)) vocab.set(a + b, vocab.size);
    return true;
  };
  // Learn each word: merge its current first two symbols until BPE yields one symbol. Later
  // merges rank lower, so words learned earlier keep their single token.
  const learn = (word: string) => {
    const chars = Array.from(new TextEncoder().encode(word), (b) => BYTE_TO_CHAR[b]);
    for (;;) {
      const symbols = bpe(chars, ranks);
      if (symbols.length < 2 || !addMerge(symbols[0], symbols[1])) return;
    }
  };
  for (const word of TINY_WORDS) for (const piece of clipPreTokenize(word)) learn(piece);
  const letters = 'etaoinshrdlcumwfgypbvkjxqz'.split('');
  for (const a of letters) for (const b of letters) learn(a + b);
  for (const a of letters) for (const b of letters) addMerge(a, b + CLIP_WORD_END);
  if (vocab.size < room) {
    throw new Error(`writeTinyClipTokenizer: vocabSize ${vocabSize} is above what the tiny word list fills (${vocab.size + 2})`);
  }
  vocab.set(CLIP_BOS, vocabSize - 2);
  vocab.set(CLIP_EOS, vocabSize - 1);

  mkdirSync(dir, { recursive: true });
  writeJson(dir, 'vocab.json', Object.fromEntries(vocab));
  writeFileSync(join(dir, 'merges.txt'), `#version: 0.2\n${merges.map(([a, b]) => `${a} ${b}`).join('\n')}\n`);
  // As CLIP-L's files mark them: the start token is matched after normalization, the end token is not.
  const special = (content: string) => ({ content, lstrip: false, normalized: content === CLIP_BOS, rstrip: false, single_word: false });
  writeJson(dir, 'special_tokens_map.json', {
    bos_token: special(CLIP_BOS),
    eos_token: special(CLIP_EOS),
    pad_token: special(CLIP_EOS),
    unk_token: special(CLIP_EOS),
  });
  writeJson(dir, 'tokenizer_config.json', {
    add_prefix_space: false,
    added_tokens_decoder: {
      [vocabSize - 2]: { ...special(CLIP_BOS), special: true },
      [vocabSize - 1]: { ...special(CLIP_EOS), special: true },
    },
    bos_token: CLIP_BOS,
    clean_up_tokenization_spaces: true,
    do_lower_case: true,
    eos_token: CLIP_EOS,
    errors: 'replace',
    model_max_length: 77,
    pad_token: CLIP_EOS,
    tokenizer_class: 'CLIPTokenizer',
    unk_token: CLIP_EOS,
  });
}

/**
 * A few rules in the spirit of nmt_nfkc (the real map has thousands): odd spaces to ' ', control
 * characters dropped, full-width ASCII folded, ligatures split, and decomposed accents composed
 * (multi-character graphemes, which the normalizer matches whole).
 */
export function tinyCharsmapRules(): Map<string, string> {
  const rules = new Map<string, string>();
  for (const space of ['\t', '\n', '\r', '\u00a0', '\u2002', '\u2003', '\u2009', '\u200b', '\u3000']) rules.set(space, ' ');
  for (let c = 1; c < 0x20; c++) if (![9, 10, 13].includes(c)) rules.set(String.fromCharCode(c), '');
  rules.set('\u007f', '');
  for (let c = 0xff01; c <= 0xff5d; c++) rules.set(String.fromCharCode(c), String.fromCharCode(c - 0xfee0));
  rules.set('\u2026', '...');
  rules.set('\ufb01', 'fi');
  rules.set('\ufb02', 'fl');
  for (const vowel of 'aeiouAEIOU') {
    for (const mark of ['\u0300', '\u0301']) rules.set(vowel + mark, (vowel + mark).normalize('NFC'));
  }
  return rules;
}

/**
 * `tokenizer_2/` for T5 (`tokenizer.json` and configs; no `spiece.model`, which the loader does
 * not read): `<pad>` 0, `</s>` 1, `<unk>` 2, `▁`, every printable ASCII character, then
 * `▁word` pieces from TINY_WORDS scored so that whole words win, then bare words as suffixes.
 */
export function writeTinyT5Tokenizer(dir: string, vocabSize: number): void {
  const minimum = 4 + 94 + 2;
  if (!Number.isInteger(vocabSize) || vocabSize < minimum) {
    throw new Error(`writeTinyT5Tokenizer: vocabSize ${vocabSize} is below ${minimum} (specials, ▁ and printable ASCII)`);
  }
  const vocab: Array<[string, number]> = [
    ['<pad>', 0],
    ['</s>', 0],
    ['<unk>', 0],
    [METASPACE, -2],
  ];
  const seen = new Set(vocab.map(([piece]) => piece));
  const add = (piece: string, score: number) => {
    if (vocab.length < vocabSize && !seen.has(piece)) {
      seen.add(piece);
      vocab.push([piece, score]);
    }
  };
  for (let c = 0x21; c <= 0x7e; c++) add(String.fromCharCode(c), /[a-z]/i.test(String.fromCharCode(c)) ? -8 : -9);
  TINY_WORDS.forEach((word, rank) => add(METASPACE + word, -3 - rank / 1000));
  TINY_WORDS.forEach((word, rank) => add(word, -5 - rank / 1000));
  const letters = 'etaoinshrdlcumwfgypbvkjxqz'.split('');
  for (const a of letters) for (const b of letters) add(METASPACE + a + b, -7);
  for (const a of letters) for (const b of letters) add(a + b, -7.5);
  if (vocab.length < vocabSize) {
    throw new Error(`writeTinyT5Tokenizer: vocabSize ${vocabSize} is above what the tiny word list fills (${vocab.length})`);
  }
  const added = ['<pad>', '</s>', '<unk>'].map((content, id) => ({
    id,
    content,
    single_word: false,
    lstrip: false,
    rstrip: false,
    normalized: false,
    special: true,
  }));
  const tokenizer: T5TokenizerJson & Record<string, unknown> = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: added,
    normalizer: { type: 'Precompiled', precompiled_charsmap: Buffer.from(buildCharsmap(tinyCharsmapRules())).toString('base64') },
    pre_tokenizer: {
      type: 'Sequence',
      pretokenizers: [
        { type: 'WhitespaceSplit' },
        { type: 'Metaspace', replacement: METASPACE, prepend_scheme: 'always', split: true },
      ],
    },
    post_processor: {
      type: 'TemplateProcessing',
      // As in the real tokenizer.json: tokenizers refuses a TemplateProcessing without `pair` or `type_id`.
      single: [{ Sequence: { id: 'A', type_id: 0 } }, { SpecialToken: { id: '</s>', type_id: 0 } }],
      pair: [
        { Sequence: { id: 'A', type_id: 0 } },
        { SpecialToken: { id: '</s>', type_id: 0 } },
        { Sequence: { id: 'B', type_id: 0 } },
        { SpecialToken: { id: '</s>', type_id: 0 } },
      ],
      special_tokens: { '</s>': { id: '</s>', ids: [1], tokens: ['</s>'] } },
    },
    decoder: { type: 'Metaspace', replacement: METASPACE, prepend_scheme: 'always', split: true },
    model: { type: 'Unigram', unk_id: 2, vocab, byte_fallback: false },
  };
  mkdirSync(dir, { recursive: true });
  writeJson(dir, 'tokenizer.json', tokenizer);
  const special = (content: string) => ({ content, lstrip: false, normalized: false, rstrip: false, single_word: false });
  writeJson(dir, 'special_tokens_map.json', { eos_token: special('</s>'), pad_token: special('<pad>'), unk_token: special('<unk>') });
  writeJson(dir, 'tokenizer_config.json', {
    clean_up_tokenization_spaces: true,
    eos_token: '</s>',
    pad_token: '<pad>',
    unk_token: '<unk>',
    extra_ids: 0,
    legacy: false,
    model_max_length: 512,
    sp_model_kwargs: {},
    tokenizer_class: 'T5Tokenizer',
  });
}
