/**
 * SentencePiece's precompiled normalization map (`precompiled_charsmap`, T5's `nmt_nfkc` rules:
 * NFKC plus whitespace and control-character rules), read and applied as the tokenizers library
 * does, and written for the tiny tokenizers this project generates.
 *
 * Format: u32 LE byte length of a Darts-clone double-array trie, the trie (u32 LE units) keyed by
 * UTF-8 bytes, then a pool of NUL-terminated replacement strings; a key's value is the offset of
 * its replacement in the pool.
 *
 * Applying it (tokenizers' `Precompiled` normalizer, which is what T5TokenizerFast runs): per
 * extended grapheme cluster, if the cluster is shorter than 6 UTF-8 bytes and some rule matches a
 * prefix of it, the *shortest* matching rule's replacement stands for the whole cluster; otherwise
 * each code point is replaced the same way or kept. Clusters come from `Intl.Segmenter` (ICU)
 * where the reference uses the unicode-segmentation crate; both follow UAX #29, so they can only
 * differ where the two Unicode versions differ. V8's segmenter is quadratic in the length of the
 * string it is given (3 s for 100 k characters), so it only ever sees short windows: see
 * `graphemeClusters`.
 */

const HAS_LEAF = 1 << 8;
const EXTENSION = 1 << 9;
const LEAF_FLAG = 0x80000000;

const unitOffset = (unit: number) => (unit >>> 10) << ((unit & EXTENSION) >>> 6);
const unitLabel = (unit: number) => (unit & 0x800000ff) >>> 0;
const unitValue = (unit: number) => unit & 0x7fffffff;

export interface Charsmap {
  /** Replacement of the shortest rule matching a prefix of `bytes`, or undefined. */
  lookup(bytes: Uint8Array): string | undefined;
}

export function parseCharsmap(blob: Uint8Array): Charsmap {
  const fail = (why: string) => new Error(`precompiled_charsmap is damaged (${why}); re-download tokenizer.json`);
  if (blob.length < 4) throw fail('shorter than its header');
  const view = new DataView(blob.buffer, blob.byteOffset, blob.byteLength);
  const trieBytes = view.getUint32(0, true);
  if (trieBytes % 4 !== 0 || 4 + trieBytes > blob.length) throw fail(`trie of ${trieBytes} bytes`);
  const units = new Uint32Array(trieBytes / 4);
  for (let i = 0; i < units.length; i++) units[i] = view.getUint32(4 + i * 4, true);
  const pool = blob.subarray(4 + trieBytes);
  const decoder = new TextDecoder('utf-8', { fatal: true });
  const replacements = new Map<number, string>();

  const replacementAt = (offset: number): string => {
    const known = replacements.get(offset);
    if (known !== undefined) return known;
    if (offset >= pool.length) throw fail(`replacement offset ${offset} past the pool`);
    let end = offset;
    while (end < pool.length && pool[end] !== 0) end++;
    const text = decoder.decode(pool.subarray(offset, end));
    replacements.set(offset, text);
    return text;
  };

  return {
    lookup(bytes: Uint8Array): string | undefined {
      if (units.length === 0) return undefined;
      let node = unitOffset(units[0]);
      for (const byte of bytes) {
        if (byte === 0) return undefined;
        node ^= byte;
        const unit = units[node];
        if (unit === undefined || unitLabel(unit) !== byte) return undefined;
        node ^= unitOffset(unit);
        if (unit & HAS_LEAF) {
          const leaf = units[node];
          if (leaf === undefined) throw fail(`leaf ${node} past the trie`);
          return replacementAt(unitValue(leaf));
        }
      }
      return undefined;
    },
  };
}

const encoder = new TextEncoder();
const graphemes = new Intl.Segmenter(undefined, { granularity: 'grapheme' });

/** Normalized form of each grapheme seen, per map: prompts repeat the same few characters. */
const memo = new WeakMap<Charsmap, Map<string, string>>();

/** Code units the segmenter sees at once (grown for a longer cluster). */
const WINDOW = 256;

/**
 * The extended grapheme clusters of `text`, in linear time: segment a window, keep every cluster
 * but the last (the window's end may cut it), restart at that last cluster's start. A cluster
 * boundary is a fresh start for UAX #29 (its rules look back only within a cluster, and regional
 * indicator pairs restart at a boundary), so this gives the same clusters as one pass.
 */
export function* graphemeClusters(text: string): Generator<string> {
  let start = 0;
  let window = WINDOW;
  while (start < text.length) {
    const end = Math.min(text.length, start + window);
    const chunk = text.slice(start, end);
    if (end === text.length) {
      for (const { segment } of graphemes.segment(chunk)) yield segment;
      return;
    }
    let last = 0;
    let count = 0;
    for (const { segment, index } of graphemes.segment(chunk)) {
      if (count > 0) yield chunk.slice(last, index);
      last = index;
      count++;
    }
    if (count === 1) {
      window *= 2; // one cluster fills the window: look further
      continue;
    }
    start += last;
    window = WINDOW;
  }
}

export function applyCharsmap(map: Charsmap, text: string): string {
  let known = memo.get(map);
  if (!known) memo.set(map, (known = new Map()));
  let out = '';
  for (const segment of graphemeClusters(text)) {
    let normalized = known.get(segment);
    if (normalized === undefined) {
      normalized = normalizeGrapheme(map, segment);
      if (known.size < 50_000) known.set(segment, normalized);
    }
    out += normalized;
  }
  return out;
}

function normalizeGrapheme(map: Charsmap, segment: string): string {
  const bytes = encoder.encode(segment);
  if (bytes.length < 6) {
    const whole = map.lookup(bytes);
    if (whole !== undefined) return whole;
  }
  let out = '';
  for (const char of segment) out += map.lookup(encoder.encode(char)) ?? char;
  return out;
}

/**
 * Write a charsmap holding `rules` (source text -> replacement), in the format above. A small,
 * simple packer: each trie node gets the first free run of slots for its children, which is
 * plenty for the tiny tokenizers; the real maps come from SentencePiece.
 */
export function buildCharsmap(rules: ReadonlyMap<string, string>): Uint8Array {
  interface TrieNode {
    children: Map<number, TrieNode>;
    value?: number;
  }
  const root: TrieNode = { children: new Map() };
  const poolParts: Uint8Array[] = [];
  let poolLength = 0;
  const offsets = new Map<string, number>();
  for (const [from, to] of rules) {
    if (from === '') throw new Error('buildCharsmap: a rule needs a non-empty source');
    let offset = offsets.get(to);
    if (offset === undefined) {
      offset = poolLength;
      const bytes = encoder.encode(`${to}\0`);
      poolParts.push(bytes);
      poolLength += bytes.length;
      offsets.set(to, offset);
    }
    let node = root;
    for (const byte of encoder.encode(from)) {
      if (byte === 0) throw new Error('buildCharsmap: a rule source cannot contain NUL');
      let child = node.children.get(byte);
      if (!child) node.children.set(byte, (child = { children: new Map() }));
      node = child;
    }
    node.value = offset;
  }

  const units: number[] = [0];
  const used = new Set<number>([0]);
  // The reader checks only a unit's label, so no two nodes may share a child block (base):
  // otherwise a byte could step from one node into another's children.
  const bases = new Set<number>();
  const place = (node: TrieNode, at: number, label: number) => {
    // Slots this node's children need, relative to their block: 0 for the value, then labels.
    const needs = [...(node.value !== undefined ? [0] : []), ...node.children.keys()];
    let base = 1;
    while (bases.has(base) || needs.some((c) => used.has(base ^ c))) base++;
    bases.add(base);
    const offset = at ^ base;
    if (offset >= 1 << 21) throw new Error('buildCharsmap: trie too large for this simple packer');
    units[at] = ((offset << 10) | (node.value !== undefined ? HAS_LEAF : 0) | label) >>> 0;
    for (const c of needs) used.add(base ^ c);
    if (node.value !== undefined) units[base] = (LEAF_FLAG | node.value) >>> 0;
    for (const [c, child] of node.children) place(child, base ^ c, c);
  };
  place(root, 0, 0);

  const trie = new Uint8Array(4 + units.length * 4 + poolLength);
  const view = new DataView(trie.buffer);
  view.setUint32(0, units.length * 4, true);
  for (let i = 0; i < units.length; i++) view.setUint32(4 + i * 4, units[i] ?? 0, true);
  let at = 4 + units.length * 4;
  for (const part of poolParts) {
    trie.set(part, at);
    at += part.length;
  }
  return trie;
}
