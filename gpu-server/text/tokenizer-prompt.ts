/**
 * What every prompt tokenizer hands the text encoders: a fixed-length id row and whether the
 * prompt had to be cut (the UI tells the user). Also the two steps CLIP and T5 share: cutting out
 * special tokens typed in the prompt, and fitting content ids between special ids to a length.
 */

export interface EncodedPrompt {
  /** Exactly the encoder's sequence length (77 for CLIP, 512 for T5), int64 as ONNX wants. */
  ids: BigInt64Array;
  /** True when content tokens were dropped to fit the length. */
  truncated: boolean;
}

/** What the text stage needs: prompt in, fixed-length ids out. */
export interface PromptTokenizer {
  encode(text: string): EncodedPrompt;
}

/** What the loaders return: also the sizes, to check against the encoder graph. */
export interface LoadedTokenizer extends PromptTokenizer {
  /** Sequence length of every `ids` this tokenizer returns. */
  readonly length: number;
  /** Ids are all smaller than this. */
  readonly vocabSize: number;
}

export interface FitOptions {
  length: number;
  /** Ids placed before the content (CLIP's `<|startoftext|>`). */
  prefix: readonly number[];
  /** Ids placed after the content (`<|endoftext|>`, T5's `</s>`). */
  suffix: readonly number[];
  padId: number;
}

/**
 * Truncate the content so that prefix + content + suffix fits, then pad on the right: what
 * `tokenizer(text, padding="max_length", truncation=True, max_length=length)` returns.
 */
export function fitToLength(content: readonly number[], options: FitOptions): EncodedPrompt {
  const { length, prefix, suffix, padId } = options;
  const room = length - prefix.length - suffix.length;
  if (room < 0) throw new Error(`sequence length ${length} leaves no room for the special tokens`);
  const kept = content.length > room ? content.slice(0, room) : content;
  const ids = new BigInt64Array(length).fill(BigInt(padId));
  let at = 0;
  for (const id of [...prefix, ...kept, ...suffix]) ids[at++] = BigInt(id);
  return { ids, truncated: content.length > room };
}

/** A stretch of prompt text, or a special token the user typed literally. */
export type PromptPiece = { kind: 'text'; text: string } | { kind: 'special'; id: number };

/**
 * Split text on literal occurrences of special tokens (leftmost, then longest), as the
 * tokenizers library's added vocabulary does before normalization. Text between them is
 * tokenized on its own.
 */
export function splitOnSpecialTokens(text: string, specials: ReadonlyMap<string, number>): PromptPiece[] {
  const pieces: PromptPiece[] = [];
  const tokens = [...specials.keys()].filter((t) => t.length > 0).sort((a, b) => b.length - a.length);
  const firstUnits = new Set(tokens.map((t) => t.charCodeAt(0)));
  let start = 0;
  let at = 0;
  while (at < text.length) {
    const hit = firstUnits.has(text.charCodeAt(at)) ? tokens.find((t) => text.startsWith(t, at)) : undefined;
    if (hit === undefined) {
      at++;
      continue;
    }
    if (at > start) pieces.push({ kind: 'text', text: text.slice(start, at) });
    pieces.push({ kind: 'special', id: specials.get(hit) as number });
    at += hit.length;
    start = at;
  }
  if (start < text.length) pieces.push({ kind: 'text', text: text.slice(start) });
  return pieces;
}
