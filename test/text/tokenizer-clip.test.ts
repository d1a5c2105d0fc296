/**
 * CLIP BPE tokenizer on a vocabulary this test writes: every byte symbol (id = byte, and
 * 256 + byte for the symbol with `</w>`), a few merges chosen to force one segmentation, and the
 * two special tokens last. Expected ids follow from the algorithm by hand.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BYTE_TO_CHAR, clipPreTokenize, loadClipTokenizer } from '../../gpu-server/text/clip-tokenizer.ts';
import { CLIP_TOKENS } from '../../gpu-server/constants.ts';

const root = mkdtempSync(join(tmpdir(), 'clip-tok-'));
after(() => rmSync(root, { recursive: true, force: true }));

const BOS = 600;
const EOS = 601;
/** Id of a byte symbol in the middle of a word, and at its end (`</w>`). */
const mid = (ch: string) => ch.charCodeAt(0);
const end = (ch: string) => 256 + ch.charCodeAt(0);
const byteMid = (b: number) => b;
const byteEnd = (b: number) => 256 + b;

/** Merges, highest priority first; each result gets the next id from 512. */
const MERGES: Array<[string, string]> = [
  ['l', 'l'], // 512 "ll"
  ['h', 'e'], // 513 "he"
  ['he', 'll'], // 514 "hell"
  ['e', 'l'], // 515 "el"
  ['l', 'o</w>'], // 516 "lo</w>"
  ['w', 'o'], // 517 "wo"
  ['wo', 'r'], // 518 "wor"
  ['wor', 'l'], // 519 "worl"
  ['worl', 'd</w>'], // 520 "world</w>"
];
const merged = (index: number) => 512 + index;

let folders = 0;
function writeFolder(options: { merges?: Array<[string, string]>; drop?: string[]; extraVocab?: Record<string, number>; config?: object } = {}): string {
  const dir = join(root, `f${folders++}`);
  mkdirSync(dir);
  const vocab: Record<string, number> = {};
  for (let b = 0; b < 256; b++) {
    vocab[BYTE_TO_CHAR[b]] = b;
    vocab[`${BYTE_TO_CHAR[b]}</w>`] = 256 + b;
  }
  const merges = options.merges ?? MERGES;
  merges.forEach(([a, b], i) => (vocab[a + b] = 512 + i));
  vocab['<|startoftext|>'] = BOS;
  vocab['<|endoftext|>'] = EOS;
  Object.assign(vocab, options.extraVocab ?? {});
  for (const token of options.drop ?? []) delete vocab[token];
  writeFileSync(join(dir, 'vocab.json'), JSON.stringify(vocab));
  writeFileSync(join(dir, 'merges.txt'), `#version: 0.2\n${merges.map((m) => m.join(' ')).join('\n')}\n`);
  writeFileSync(
    join(dir, 'special_tokens_map.json'),
    JSON.stringify({ bos_token: { content: '<|startoftext|>' }, eos_token: { content: '<|endoftext|>' }, pad_token: '<|endoftext|>', unk_token: { content: '<|endoftext|>' } }),
  );
  writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify(options.config ?? { model_max_length: 77, tokenizer_class: 'CLIPTokenizer' }));
  return dir;
}

const tokenizer = loadClipTokenizer(writeFolder());
/** The content ids between <|startoftext|> and the first <|endoftext|>. */
function content(text: string, t = tokenizer): number[] {
  const ids = [...t.encode(text).ids].map(Number);
  assert.equal(ids.length, CLIP_TOKENS);
  assert.equal(ids[0], BOS);
  return ids.slice(1, ids.indexOf(EOS));
}

test('the byte table is GPT-2\'s: printable Latin-1 kept, space, newline, soft hyphen remapped', () => {
  assert.equal(BYTE_TO_CHAR.length, 256);
  assert.equal(new Set(BYTE_TO_CHAR).size, 256);
  assert.equal(BYTE_TO_CHAR[0x21], '!');
  assert.equal(BYTE_TO_CHAR[0x7e], '~');
  assert.equal(BYTE_TO_CHAR[0xe9], 'é');
  assert.equal(BYTE_TO_CHAR[0x20], '\u0120'); // 'Ġ': the 33rd remapped byte
  assert.equal(BYTE_TO_CHAR[0x0a], '\u010a'); // 'Ċ'
  assert.equal(BYTE_TO_CHAR[0xad], '\u0143'); // soft hyphen, the last remapped byte
});

test('an empty prompt is start, end, then end-of-text padding to 77', () => {
  const { ids, truncated } = tokenizer.encode('');
  assert.equal(truncated, false);
  assert.equal(ids.length, 77);
  assert.equal(ids[0], BigInt(BOS));
  for (let i = 1; i < 77; i++) assert.equal(ids[i], BigInt(EOS), `position ${i}`);
  assert.deepEqual(content('   \n\t '), []);
});

test('merges apply by rank, not by position, and </w> marks the word end', () => {
  // hello: l l (rank 0) first, then h e, then he ll; "hell o</w>" has no merge.
  assert.deepEqual(content('hello'), [merged(2), end('o')]);
  // elly: "l l" (rank 0) wins over the leftmost pair "e l" (rank 3), which then no longer exists.
  assert.deepEqual(content('elly'), [mid('e'), merged(0), end('y')]);
  // help: "h e" (rank 1) beats "e l" (rank 3): he l p.
  assert.deepEqual(content('help'), [merged(1), mid('l'), end('p')]);
  // "l o</w>" merges only at a word end: lo is one token, lot is not.
  assert.deepEqual(content('lo'), [merged(4)]);
  assert.deepEqual(content('lot'), [mid('l'), mid('o'), end('t')]);
  assert.deepEqual(content('world'), [merged(8)]);
});

test('lower-casing and whitespace collapse', () => {
  assert.deepEqual(content('HeLLo   \n\t WORLD'), [merged(2), end('o'), merged(8)]);
  assert.deepEqual(content('  hello world  '), content('hello world'));
});

test('quotes and contractions split as CLIP\'s pattern says', () => {
  assert.deepEqual(clipPreTokenize('"You\'re free"'), ['"', 'you', "'re", 'free', '"']);
  assert.deepEqual(clipPreTokenize("it's 2024!!"), ['it', "'s", '2', '0', '2', '4', '!!']);
  assert.deepEqual(content('"You\'re free"'), [
    end('"'),
    mid('y'), mid('o'), end('u'),
    mid("'"), mid('r'), end('e'),
    mid('f'), mid('r'), mid('e'), end('e'),
    end('"'),
  ]);
  // Digits are single-digit words.
  assert.deepEqual(content('42'), [end('4'), end('2')]);
});

test('unicode: NFC, accents, CJK and emoji as UTF-8 byte symbols', () => {
  // é is C3 A9 in UTF-8; the decomposed form (e + U+0301) is composed first.
  const cafe = [mid('c'), mid('a'), mid('f'), byteMid(0xc3), byteEnd(0xa9)];
  assert.deepEqual(content('café'), cafe);
  assert.deepEqual(content('cafe\u0301'), cafe);
  assert.deepEqual(content('CAFÉ'), cafe);
  // 你好 is one letter run: E4 BD A0 E5 A5 BD.
  assert.deepEqual(content('你好'), [0xe4, 0xbd, 0xa0, 0xe5, 0xa5].map(byteMid).concat(byteEnd(0xbd)));
  // 😀 (F0 9F 98 80) is neither letter nor digit: a word of its own, even glued to a letter.
  assert.deepEqual(content('a😀'), [end('a'), byteMid(0xf0), byteMid(0x9f), byteMid(0x98), byteEnd(0x80)]);
});

test('special tokens typed in the prompt stay special; others are plain text', () => {
  assert.deepEqual([...tokenizer.encode('lo<|endoftext|>lo').ids.slice(0, 5)].map(Number), [BOS, merged(4), EOS, merged(4), EOS]);
  assert.deepEqual(content('<|startoftext|>'), [BOS]);
  // Not a special token: punctuation runs "<|", "|>" around the word "x".
  assert.deepEqual(content('<|x|>'), [mid('<'), end('|'), end('x'), mid('|'), end('>')]);
});

test('a symbol missing from the vocabulary becomes the unknown token (<|endoftext|>)', () => {
  const t = loadClipTokenizer(writeFolder({ drop: ['q</w>'] }));
  const ids = [...t.encode('aq').ids].map(Number);
  assert.deepEqual(ids.slice(0, 4), [BOS, mid('a'), EOS, EOS]);
});

test('over-long prompts keep 75 content tokens and say so; 75 exactly is not truncated', () => {
  const exact = tokenizer.encode(Array(75).fill('lo').join(' '));
  assert.equal(exact.truncated, false);
  assert.equal(exact.ids[75], BigInt(merged(4)));
  assert.equal(exact.ids[76], BigInt(EOS));

  const long = tokenizer.encode(Array(76).fill('lo').join(' '));
  assert.equal(long.truncated, true);
  assert.equal(long.ids.length, 77);
  assert.equal(long.ids[0], BigInt(BOS));
  assert.equal(long.ids[75], BigInt(merged(4)));
  assert.equal(long.ids[76], BigInt(EOS));
});

test('padding uses the configured pad token', () => {
  const t = loadClipTokenizer(writeFolder({ extraVocab: { '<|pad|>': 602 }, config: { pad_token: '<|pad|>' } }));
  const ids = [...t.encode('lo').ids].map(Number);
  assert.deepEqual(ids.slice(0, 5), [BOS, merged(4), EOS, 602, 602]);
  assert.equal(t.vocabSize, 603);
});

test('a missing or broken file is named in the error', () => {
  const noMerges = writeFolder();
  rmSync(join(noMerges, 'merges.txt'));
  assert.throws(() => loadClipTokenizer(noMerges), /missing merges\.txt/);
  const noVocab = writeFolder();
  rmSync(join(noVocab, 'vocab.json'));
  assert.throws(() => loadClipTokenizer(noVocab), /missing vocab\.json/);
  const badVocab = writeFolder();
  writeFileSync(join(badVocab, 'vocab.json'), '{"a": "zero"}');
  assert.throws(() => loadClipTokenizer(badVocab), /vocab\.json has an unexpected shape: expected an object of token -> non-negative integer id/);
  assert.throws(() => loadClipTokenizer(writeFolder({ drop: ['he'] })), /merge "h e" .* missing from vocab\.json/);
});
