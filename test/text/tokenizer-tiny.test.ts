/**
 * The tiny tokenizer folders of the generated `tiny` model: the loaders read them, English
 * prompts never hit the unknown token, ids stay below the requested size, and the files are the
 * same on every run.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadClipTokenizer } from '../../gpu-server/text/clip-tokenizer.ts';
import { loadT5Tokenizer } from '../../gpu-server/text/t5-tokenizer.ts';
import { writeTinyClipTokenizer, writeTinyT5Tokenizer } from '../../gpu-server/text/tokenizer-tiny.ts';
import { CLIP_TOKENIZER_FILES, T5_TOKENIZER_FILES } from '../../gpu-server/text/tokenizer-files.ts';
import { FLUX_DEV, missingKeys } from '../model-folder/hf-file-shape.ts';

const root = mkdtempSync(join(tmpdir(), 'tiny-tok-'));
after(() => rmSync(root, { recursive: true, force: true }));

const PROMPTS = [
  'A vintage poster with the text "SUMMER SALE" in bold red letters on a light blue background',
  "A cute cartoon cat holding a sign that says \"You're free\", flat vector style, 3D shadow",
  'Minimal logo: a golden circle & a black square (50% off!) #design @home ~ [v2] {x} <tag> | done.',
];
const ASCII = Array.from({ length: 95 }, (_, i) => String.fromCharCode(32 + i)).join('');

test('tiny CLIP folder: real layout, <|endoftext|> is the largest id, no unknowns on English', () => {
  const dir = join(root, 'clip');
  writeTinyClipTokenizer(dir, 1000);
  assert.deepEqual(readdirSync(dir).sort(), [...CLIP_TOKENIZER_FILES].sort());
  const vocab = JSON.parse(readFileSync(join(dir, 'vocab.json'), 'utf8')) as Record<string, number>;
  assert.deepEqual(new Set(Object.values(vocab)), new Set(Array.from({ length: 1000 }, (_, i) => i)));
  assert.equal(vocab['<|startoftext|>'], 998);
  assert.equal(vocab['<|endoftext|>'], 999);

  const t = loadClipTokenizer(dir);
  assert.equal(t.vocabSize, 1000);
  for (const prompt of [...PROMPTS, ASCII]) {
    const ids = [...t.encode(prompt).ids].map(Number);
    const end = ids.indexOf(999);
    assert.ok(end > 1, prompt);
    assert.ok(ids.every((id) => id >= 0 && id < 1000));
    assert.ok(ids.slice(1, end).every((id) => id < 998), `unknown or special inside: ${prompt}`);
  }
  // Common words are learned whole: one token between start and end.
  for (const word of ['poster', 'background', 'the']) assert.equal(t.encode(word).ids[2], 999n, word);
});

test('tiny T5 folder: real layout, no unknowns on English, common words whole', () => {
  const dir = join(root, 't5');
  writeTinyT5Tokenizer(dir, 1000);
  assert.deepEqual(readdirSync(dir).sort(), [...T5_TOKENIZER_FILES].sort());
  const t = loadT5Tokenizer(dir);
  assert.equal(t.vocabSize, 1000);
  for (const prompt of [...PROMPTS, ASCII]) {
    const ids = [...t.encode(prompt).ids].map(Number);
    const end = ids.indexOf(1);
    assert.ok(end > 0, prompt);
    assert.ok(ids.every((id) => id >= 0 && id < 1000));
    assert.ok(!ids.slice(0, end).includes(2), `<unk> in: ${prompt}`);
  }
  for (const word of ['poster', 'background', 'the']) assert.equal(t.encode(word).ids[1], 1n, word);
  // The tiny charsmap folds full-width letters and no-break spaces as nmt_nfkc does.
  assert.deepEqual(t.encode('Ｐoster\u00a0sale').ids, t.encode('Poster sale').ids);
});

test('small sizes keep every id below the size; too small is refused', () => {
  for (const size of [520, 600]) {
    writeTinyClipTokenizer(join(root, `clip${size}`), size);
    const ids = loadClipTokenizer(join(root, `clip${size}`)).encode(PROMPTS[0]).ids;
    assert.ok(ids.every((id) => id < BigInt(size)));
  }
  for (const size of [100, 128]) {
    writeTinyT5Tokenizer(join(root, `t5${size}`), size);
    const ids = loadT5Tokenizer(join(root, `t5${size}`)).encode(PROMPTS[0]).ids;
    assert.ok(ids.every((id) => id < BigInt(size)));
  }
  assert.throws(() => writeTinyClipTokenizer(join(root, 'x'), 300), /vocabSize 300 is below/);
  assert.throws(() => writeTinyT5Tokenizer(join(root, 'y'), 50), /vocabSize 50 is below/);
});

test('the same size writes the same bytes', () => {
  for (const [write, files] of [
    [writeTinyClipTokenizer, CLIP_TOKENIZER_FILES],
    [writeTinyT5Tokenizer, T5_TOKENIZER_FILES],
  ] as const) {
    write(join(root, 'a'), 777);
    write(join(root, 'b'), 777);
    for (const file of files) assert.ok(readFileSync(join(root, 'a', file)).equals(readFileSync(join(root, 'b', file))), file);
  }
});

test('tiny tokenizer files have every field the real FLUX.1-dev files have (so the Hugging Face tools load them)', () => {
  const dir = join(root, 'shape');
  writeTinyT5Tokenizer(join(dir, 't5'), 1000);
  writeTinyClipTokenizer(join(dir, 'clip'), 1000);
  const json = (file: string) => JSON.parse(readFileSync(file, 'utf8')) as unknown;
  const ours = json(join(dir, 't5', 'tokenizer.json')) as Record<string, unknown>;
  const real = json(join(FLUX_DEV, 'tokenizer_2', 'tokenizer.json')) as Record<string, unknown>;
  // The post-processor as tokenizers requires it: `pair` and every piece's `type_id`.
  assert.deepEqual(missingKeys(ours.post_processor, real.post_processor), []);
  assert.deepEqual(missingKeys(ours.added_tokens, real.added_tokens), []);
  assert.deepEqual(Object.keys(ours).sort(), Object.keys(real).sort());
  for (const [which, file] of [['clip', 'tokenizer_config.json'], ['clip', 'special_tokens_map.json'], ['t5', 'tokenizer_config.json'], ['t5', 'special_tokens_map.json']] as const) {
    const realDir = which === 'clip' ? 'tokenizer' : 'tokenizer_2';
    const realJson = json(join(FLUX_DEV, realDir, file)) as Record<string, unknown>;
    const oursJson = json(join(dir, which, file)) as Record<string, unknown>;
    // Only the fields both describe (the real T5 map also lists its 100 extra ids, the tiny has none).
    const shared = Object.fromEntries(Object.entries(realJson).filter(([k]) => k !== 'additional_special_tokens' && k !== 'added_tokens_decoder'));
    assert.deepEqual(missingKeys(oursJson, shared), [], `${which}/${file}`);
    // Flags mean what they mean in the real files (normalized: true only on <|startoftext|>).
    if (file === 'special_tokens_map.json') for (const k of Object.keys(shared)) assert.deepEqual(oursJson[k], realJson[k], `${which}/${file} ${k}`);
  }
});
