/**
 * T5 unigram tokenizer on a tokenizer.json this test writes. Piece scores are chosen so that the
 * best segmentation is not the greedy longest match; expected ids are worked out by hand from
 * the scores (sum of log-probabilities, unknown = lowest score - 10 = -20).
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadT5Tokenizer } from '../../gpu-server/text/t5-tokenizer.ts';
import { buildCharsmap } from '../../gpu-server/text/tokenizer-charsmap.ts';
import { T5_TOKENS } from '../../gpu-server/constants.ts';

const root = mkdtempSync(join(tmpdir(), 't5-tok-'));
after(() => rmSync(root, { recursive: true, force: true }));

const VOCAB: Array<[string, number]> = [
  ['<pad>', 0], // 0
  ['</s>', 0], // 1
  ['<unk>', 0], // 2
  ['▁', -2], // 3
  ['h', -6], // 4
  ['e', -6], // 5
  ['l', -6], // 6
  ['o', -6], // 7
  ['▁h', -5], // 8
  ['ello', -4], // 9
  ['▁hello', -10], // 10: the longest match, yet the worst whole-word path
  ['▁he', -3], // 11
  ['llo', -3], // 12
  ['w', -6], // 13
  ['▁world', -4], // 14
  ['"', -6], // 15
  ["'", -6], // 16
  ['re', -4], // 17
  ['You', -4], // 18
  ['▁free', -4], // 19
  ['é', -6], // 20
  ['▁caf', -4], // 21
  ['r', -6], // 22
];

const WHITESPACE_THEN_METASPACE = {
  type: 'Sequence',
  pretokenizers: [{ type: 'WhitespaceSplit' }, { type: 'Metaspace', replacement: '▁', prepend_scheme: 'always', split: true }],
};

let folders = 0;
function writeFolder(overrides: Record<string, unknown> = {}): string {
  const dir = join(root, `f${folders++}`);
  mkdirSync(dir);
  const charsmap = buildCharsmap(new Map([['ｈ', 'h'], ['e\u0301', 'é'], ['\u0007', '']]));
  const json = {
    version: '1.0',
    added_tokens: ['<pad>', '</s>', '<unk>'].map((content, id) => ({ id, content, special: true, normalized: false })),
    normalizer: { type: 'Precompiled', precompiled_charsmap: Buffer.from(charsmap).toString('base64') },
    pre_tokenizer: WHITESPACE_THEN_METASPACE,
    post_processor: {
      type: 'TemplateProcessing',
      single: [{ Sequence: { id: 'A', type_id: 0 } }, { SpecialToken: { id: '</s>', type_id: 0 } }],
      special_tokens: { '</s>': { id: '</s>', ids: [1], tokens: ['</s>'] } },
    },
    model: { type: 'Unigram', unk_id: 2, vocab: VOCAB, byte_fallback: false },
    ...overrides,
  };
  writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify(json));
  writeFileSync(join(dir, 'special_tokens_map.json'), JSON.stringify({ eos_token: '</s>', pad_token: '<pad>', unk_token: '<unk>' }));
  writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify({ model_max_length: 512 }));
  return dir;
}

const tokenizer = loadT5Tokenizer(writeFolder());
/** Ids up to and including the first </s>; checks the rest is <pad> (0). */
function content(text: string, t = tokenizer): number[] {
  const ids = [...t.encode(text).ids].map(Number);
  assert.equal(ids.length, T5_TOKENS);
  const eos = ids.indexOf(1);
  assert.ok(eos >= 0, 'no </s>');
  assert.ok(ids.slice(eos + 1).every((id) => id === 0), 'padding is not all <pad>');
  return ids.slice(0, eos + 1);
}

test('an empty prompt is </s> then <pad> to 512', () => {
  const { ids, truncated } = tokenizer.encode('');
  assert.equal(truncated, false);
  assert.equal(ids.length, 512);
  assert.equal(ids[0], 1n);
  assert.ok(ids.slice(1).every((id) => id === 0n));
  assert.deepEqual(content(' \t\n '), [1]);
});

test('Viterbi picks the best total score, not the longest piece', () => {
  // ▁he + llo = -6 beats ▁h + ello = -9, ▁hello = -10 and ▁ h e l l o = -32.
  assert.deepEqual(content('hello'), [11, 12, 1]);
  assert.deepEqual(content('hello world'), [11, 12, 14, 1]);
});

test('whitespace runs collapse and every word gets ▁', () => {
  assert.deepEqual(content('  hello \t\n  world  '), [11, 12, 14, 1]);
});

test('unknown characters: <unk>, adjacent ones fused, a surrogate pair is one character', () => {
  // ▁h + unk = -25 beats ▁ + h + unk = -28.
  assert.deepEqual(content('hi'), [8, 2, 1]);
  assert.deepEqual(content('h你好'), [8, 2, 1]);
  assert.deepEqual(content('😀'), [3, 2, 1]);
  assert.deepEqual(content('h😀é'), [8, 2, 20, 1]);
});

test('quotes as in ART captions', () => {
  // ▁ " You ' re (-22) and ▁free " (-10); r + e (-12) loses to re (-4).
  assert.deepEqual(content('"You\'re free"'), [3, 15, 18, 16, 17, 19, 15, 1]);
});

test('the precompiled charsmap normalizes before splitting', () => {
  assert.deepEqual(content('ｈello'), [11, 12, 1]); // full-width h folded
  assert.deepEqual(content('cafe\u0301'), [21, 20, 1]); // e + combining acute composed
  assert.deepEqual(content('café'), [21, 20, 1]);
  assert.deepEqual(content('hel\u0007lo'), [11, 12, 1]); // control character dropped
});

test('special tokens typed in the prompt stay special', () => {
  const ids = [...tokenizer.encode('hello</s>world').ids].map(Number);
  assert.deepEqual(ids.slice(0, 6), [11, 12, 1, 14, 1, 0]);
});

test('over-long prompts keep 511 content tokens and say so', () => {
  const fits = tokenizer.encode(`${'hello '.repeat(255)}h`); // 510 + 1 content tokens
  assert.equal(fits.truncated, false);
  assert.equal(fits.ids[510], 8n);
  assert.equal(fits.ids[511], 1n);

  const long = tokenizer.encode('hello '.repeat(256)); // 512 content tokens
  assert.equal(long.truncated, true);
  assert.equal(long.ids.length, 512);
  assert.equal(long.ids[509], 12n);
  assert.equal(long.ids[510], 11n);
  assert.equal(long.ids[511], 1n);
});

test('Metaspace alone, without prepending: spaces become ▁ and split words', () => {
  const t = loadT5Tokenizer(
    writeFolder({ normalizer: null, pre_tokenizer: { type: 'Metaspace', replacement: '▁', prepend_scheme: 'never', split: true } }),
  );
  // "hello" without ▁: h + ello (-10) beats h e + llo (-15) and h e l l o (-30).
  assert.deepEqual(content('hello world', t), [4, 9, 14, 1]);
});

test('normalizer sequences: charsmap, then Replace and Lowercase as newer tokenizer.json files have', () => {
  const charsmap = buildCharsmap(new Map([['ｈ', 'h']]));
  const t = loadT5Tokenizer(
    writeFolder({
      normalizer: {
        type: 'Sequence',
        normalizers: [
          { type: 'Precompiled', precompiled_charsmap: Buffer.from(charsmap).toString('base64') },
          { type: 'Replace', pattern: { String: 'll' }, content: 'l' },
          { type: 'Lowercase' },
        ],
      },
    }),
  );
  // ＨELLO -> HELLO -> HELLO (no "ll" yet) -> hello; "Hello" -> "Helo" -> "helo" = ▁he l o.
  assert.deepEqual(content('ｈELLO', t), [11, 12, 1]);
  assert.deepEqual(content('Hello', t), [11, 6, 7, 1]);
});

test('without a post-processor the end token comes from the config', () => {
  const t = loadT5Tokenizer(writeFolder({ post_processor: null }));
  assert.deepEqual(content('hello', t), [11, 12, 1]);
});

test('a missing or unsupported file is named in the error', () => {
  const missing = writeFolder();
  rmSync(join(missing, 'tokenizer.json'));
  assert.throws(() => loadT5Tokenizer(missing), /T5 tokenizer: missing tokenizer\.json/);
  assert.throws(
    () => loadT5Tokenizer(writeFolder({ model: { type: 'BPE', vocab: {}, merges: [] } })),
    /tokenizer\.json has an unexpected shape at model/,
  );
  assert.throws(
    () => loadT5Tokenizer(writeFolder({ normalizer: { type: 'BertNormalizer' } })),
    /tokenizer\.json has an unexpected shape at normalizer/,
  );
});
