/**
 * The tokenizers on FLUX.1-dev's real `tokenizer/` (CLIP-L) and `tokenizer_2/` (T5) folders, as
 * they come (test/fixtures/flux-dev, copied from ../shared/fixtures/flux-dev). Expected ids are
 * looked up in the real vocabularies or are widely published reference encodings.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { clipPreTokenize, loadClipTokenizer } from '../../gpu-server/text/clip-tokenizer.ts';
import { loadT5Tokenizer } from '../../gpu-server/text/t5-tokenizer.ts';

const FLUX = new URL('../fixtures/flux-dev/', import.meta.url).pathname;
const clip = loadClipTokenizer(join(FLUX, 'tokenizer'));
const t5 = loadT5Tokenizer(join(FLUX, 'tokenizer_2'));
const vocab = JSON.parse(readFileSync(join(FLUX, 'tokenizer', 'vocab.json'), 'utf8')) as Record<string, number>;
const BOS = 49406;
const EOS = 49407;

/** Ids up to and including the first end token after the content. */
const clipIds = (text: string) => {
  const ids = [...clip.encode(text).ids].map(Number);
  return ids.slice(0, ids.indexOf(EOS, 1) + 1);
};

test('the real CLIP folder loads: 49408 ids, 77 tokens, <|endoftext|> pads', () => {
  assert.equal(clip.vocabSize, 49408);
  assert.equal(clip.length, 77);
  const ids = [...clip.encode('a photo of a cat').ids].map(Number);
  // The published CLIP-L encoding of this caption (openai/clip-vit-large-patch14).
  assert.deepEqual(ids.slice(0, 7), [BOS, 320, 1125, 539, 320, 2368, EOS]);
  assert.ok(ids.slice(7).every((id) => id === EOS));
  assert.deepEqual([vocab['a</w>'], vocab['photo</w>'], vocab['cat</w>']], [320, 1125, 2368]);
});

test('<|startoftext|> is normalized: true in the real tokenizer_config.json, so any case of it is the start token', () => {
  assert.deepEqual(clipIds('<|STARTOFTEXT|>!'), [BOS, BOS, vocab['!</w>'], EOS]);
  assert.deepEqual(clipIds('a <|StartOfText|> cat'), [BOS, 320, BOS, 2368, EOS]);
  // <|endoftext|> is normalized: false: only its exact spelling is the token.
  assert.deepEqual([...clip.encode('<|endoftext|>!').ids.slice(0, 4)].map(Number), [BOS, EOS, vocab['!</w>'], EOS]);
  assert.notEqual(clipIds('<|ENDOFTEXT|>')[1], EOS);
});

test('special-token text that reaches the split is ordinary text: `<|ENDOFTEXT|>` is `<|`, `endoftext`, `|>`, as in the reference (issue 22)', () => {
  // Lower-cased, <|ENDOFTEXT|> is no added token (normalized: false) and the reference's split
  // pattern does not list the specials, so the symbol run `<|` ends at the letters.
  assert.deepEqual(clipPreTokenize('<|ENDOFTEXT|>'), ['<|', 'endoftext', '|>']);
  assert.deepEqual(clipPreTokenize('<|EndOfText|>!'), ['<|', 'endoftext', '|>!']);
  assert.deepEqual(clipPreTokenize("a <|ENDOFTEXT|>'s"), ['a', '<|', 'endoftext', "|>'", 's']);
  // Each piece is a word of its own: `<|` ends in `|</w>`, `endoftext` in `text</w>`.
  const word = [vocab['<'], vocab['|</w>'], vocab['endof'], vocab['text</w>']];
  assert.deepEqual(clipIds('<|ENDOFTEXT|>'), [BOS, ...word, vocab['|'], vocab['></w>'], EOS]);
  assert.deepEqual(clipIds('<|EndOfText|>!'), [BOS, ...word, vocab['|'], vocab['>'], vocab['!</w>'], EOS]);
  // Only the exact spelling typed in the raw text is the end token.
  assert.deepEqual(clipIds('x <|endoftext|>'), [BOS, vocab['x</w>'], EOS]);
});

test('letters assigned after Unicode 15.0 are letters here (the engine tables; see clip-tokenizer.ts)', () => {
  // U+2EBF0 is in CJK Extension I (Unicode 15.1): one word with the letters around it here.
  assert.deepEqual(clipPreTokenize('ab\u{2EBF0}cd'), ['ab\u{2EBF0}cd']);
});

test('the real T5 folder loads: 32100 ids, 512 tokens, </s> then <pad>', () => {
  assert.equal(t5.vocabSize, 32100);
  assert.equal(t5.length, 512);
  const ids = [...t5.encode('Hello world').ids].map(Number);
  // The published t5 encoding of "Hello world": ▁Hello 8774, ▁world 296, </s> 1.
  assert.deepEqual(ids.slice(0, 4), [8774, 296, 1, 0]);
  assert.ok(ids.slice(3).every((id) => id === 0));
  assert.deepEqual([...t5.encode('<extra_id_0> Hello</s>').ids.slice(0, 4)].map(Number), [32099, 8774, 1, 1]);
});

test('T5 normalizes with the real nmt_nfkc charsmap: compatibility forms and odd spaces', () => {
  const same = (a: string, b: string) => assert.deepEqual([...t5.encode(a).ids], [...t5.encode(b).ids], `${JSON.stringify(a)} vs ${JSON.stringify(b)}`);
  same('Ｈｅｌｌｏ　ｗｏｒｌｄ', 'Hello world');
  same('ﬁne  dining', 'fine dining');
  same('Hello\u00a0world\u2003 ', 'Hello world');
  const long = t5.encode('word '.repeat(2000));
  assert.ok(long.truncated);
  assert.equal(Number(long.ids[511]), 1);
});
