/**
 * SentencePiece's precompiled charsmap: a blob assembled here unit by unit from the format's
 * definition (so the reader is checked independently of our writer), then writer/reader round
 * trips and the grapheme rules of tokenizers' Precompiled normalizer.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { applyCharsmap, buildCharsmap, graphemeClusters, parseCharsmap } from '../../gpu-server/text/tokenizer-charsmap.ts';

const bytes = (text: string) => new TextEncoder().encode(text);

/** One rule "A" -> "b": root block at 256, child 'A' at 256 ^ 0x41 = 321, its value at 512. */
function handMadeBlob(): Uint8Array {
  const units = new Uint32Array(513);
  units[0] = 256 << 10; // root: offset 256, so its children live at 256 ^ label
  const childOffset = 321 ^ 512; // child's own block (its value slot) at 512
  units[321] = ((childOffset << 10) | (1 << 8) | 0x41) >>> 0; // label 'A', has a leaf
  units[512] = 0x80000000 | 0; // leaf: replacement at pool offset 0
  const pool = bytes('b\0');
  const blob = new Uint8Array(4 + units.byteLength + pool.length);
  const view = new DataView(blob.buffer);
  view.setUint32(0, units.byteLength, true);
  units.forEach((u, i) => view.setUint32(4 + 4 * i, u, true));
  blob.set(pool, 4 + units.byteLength);
  return blob;
}

test('reads a hand-assembled double-array blob', () => {
  const map = parseCharsmap(handMadeBlob());
  assert.equal(map.lookup(bytes('A')), 'b');
  assert.equal(map.lookup(bytes('AB')), 'b'); // a prefix match
  assert.equal(map.lookup(bytes('B')), undefined);
  assert.equal(map.lookup(bytes('')), undefined);
  assert.equal(applyCharsmap(map, 'xAyA'), 'xbyb');
});

test('writer and reader agree on every rule, and only on rules', () => {
  const rules = new Map([
    ['\u00a0', ' '],
    ['ﬁ', 'fi'],
    ['Ａ', 'A'],
    ['…', '...'],
    ['\u0007', ''],
    ['e\u0301', 'é'],
    ['😀', 'smile'],
  ]);
  const map = parseCharsmap(buildCharsmap(rules));
  for (const [from, to] of rules) assert.equal(map.lookup(bytes(from)), to, JSON.stringify(from));
  for (const other of ['a', 'e', 'é', 'Ｂ', '😁', '\u0301']) assert.equal(map.lookup(bytes(other)), undefined, other);
  assert.equal(applyCharsmap(map, 'ﬁne\u00a0Ａ…\u0007😀'), 'fine A...smile');
});

test('the shortest matching rule stands for the whole grapheme (tokenizers\' quirk)', () => {
  const map = parseCharsmap(buildCharsmap(new Map([['a', '1'], ['ab', '2'], ['e', 'E']])));
  assert.equal(map.lookup(bytes('ab')), '1');
  // e + U+0301 is one grapheme of 3 bytes: its prefix "e" matches, the accent goes with it.
  assert.equal(applyCharsmap(map, 'e\u0301'), 'E');
  // A grapheme of 6 bytes or more is mapped code point by code point: accents stay.
  assert.equal(applyCharsmap(map, 'e\u0301\u0301\u0301'), 'E\u0301\u0301\u0301');
  // Separate graphemes: each looked up alone, so "ab" never reaches the "ab" rule.
  assert.equal(applyCharsmap(map, 'ab'), '1b');
});

test('a damaged blob is refused with a clear message', () => {
  assert.throws(() => parseCharsmap(new Uint8Array([1, 0])), /precompiled_charsmap is damaged/);
  const blob = handMadeBlob();
  new DataView(blob.buffer).setUint32(0, 1 << 20, true);
  assert.throws(() => parseCharsmap(blob), /precompiled_charsmap is damaged \(trie of/);
});

test('random rule sets: lookup is the shortest rule that prefixes the query, for every query', () => {
  let seed = 12345;
  const next = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  // Few distinct characters, so rules share prefixes and collide in the packer's blocks.
  const alphabet = ['a', 'b', 'é', 'ü', '\u0301', '€', '😀', '中'];
  const pick = (n: number) => Array.from({ length: n }, () => alphabet[Math.floor(next() * alphabet.length)]).join('');
  for (let round = 0; round < 20; round++) {
    const rules = new Map<string, string>();
    for (let i = 0; i < 30; i++) rules.set(pick(1 + Math.floor(next() * 3)), `r${i}`);
    const map = parseCharsmap(buildCharsmap(rules));
    for (let q = 0; q < 200; q++) {
      const query = pick(1 + Math.floor(next() * 4));
      const query8 = bytes(query);
      let expected: string | undefined;
      let shortest = Infinity;
      for (const [from, to] of rules) {
        const from8 = bytes(from);
        if (from8.length < shortest && from8.length <= query8.length && from8.every((b, i) => b === query8[i])) {
          shortest = from8.length;
          expected = to;
        }
      }
      assert.equal(map.lookup(query8), expected, `round ${round}, query ${JSON.stringify(query)}`);
    }
  }
});

test('clusters come out as one whole-text pass gives them, across every window edge', () => {
  // Clusters of every awkward kind (CRLF, combining marks, ZWJ emoji, flag pairs, Hangul jamo),
  // repeated so that the 256-unit windows cut each of them somewhere; one cluster longer than a window.
  const kinds = ['a', '\r\n', 'e\u0301\u0302', '👩‍👩‍👧', '🇫🇷🇩🇪', '\u1100\u1161\u11a8', '中', ' ', '\u0915\u094d\u0937'];
  let text = '';
  for (let i = 0; i < 400; i++) text += kinds[(i * 7) % kinds.length].repeat(1 + (i % 3));
  text += `x${'\u0301'.repeat(700)}y`;
  const whole = [...new Intl.Segmenter(undefined, { granularity: 'grapheme' }).segment(text)].map((s) => s.segment);
  assert.deepEqual([...graphemeClusters(text)], whole);
  assert.deepEqual([...graphemeClusters('')], []);
  const map = parseCharsmap(buildCharsmap(new Map([['e\u0301', 'E'], ['\r\n', '|']])));
  // e + two accents is one 5-byte cluster: the shortest rule (e + U+0301) stands for all of it.
  assert.equal(applyCharsmap(map, text), whole.map((g) => (g === 'e\u0301\u0302' ? 'E' : g === '\r\n' ? '|' : g)).join(''));
});
