/**
 * Prompt -> text conditioning, as FLUX.1-dev encodes it: T5's last hidden state (512 tokens) and
 * CLIP's pooled vector (77 tokens). Results are cached by prompt (the empty negative prompt is
 * encoded once per pipeline).
 */
import type { PromptTokenizer } from '../text/tokenizer-prompt.ts';
import type { GraphSession } from './graph-session.ts';

/** A graph that can run: an open session, or one opened on demand. */
type Runnable = Pick<GraphSession, 'run'>;
import type { TextEmbeddings } from './noise-predictor.ts';

export interface EncodedText extends TextEmbeddings {
  /**
   * T5 (512 tokens, the text the transformer reads) had to cut the prompt. CLIP's 77-token cut is
   * not reported: FLUX uses CLIP only for one pooled vector and cuts most captions there.
   */
  truncated: boolean;
}

const CACHE_SIZE = 16;

export class TextEncoder {
  private readonly cache = new Map<string, Promise<EncodedText>>();

  constructor(
    private readonly clip: { graph: Runnable; tokenizer: PromptTokenizer },
    private readonly t5: { graph: Runnable; tokenizer: PromptTokenizer },
  ) {}

  encode(prompt: string): Promise<EncodedText> {
    const hit = this.cache.get(prompt);
    if (hit) {
      // Most recently used last.
      this.cache.delete(prompt);
      this.cache.set(prompt, hit);
      return hit;
    }
    const result = this.run(prompt);
    result.catch(() => this.cache.delete(prompt));
    this.cache.set(prompt, result);
    if (this.cache.size > CACHE_SIZE) this.cache.delete(this.cache.keys().next().value as string);
    return result;
  }

  private async run(prompt: string): Promise<EncodedText> {
    const c = this.clip.tokenizer.encode(prompt);
    const t = this.t5.tokenizer.encode(prompt);
    const pooled = (await this.clip.graph.run({ input_ids: { data: c.ids, dims: [1, c.ids.length] } }, ['pooled'])).pooled;
    const hidden = (await this.t5.graph.run({ input_ids: { data: t.ids, dims: [1, t.ids.length] } }, ['last_hidden_state'])).last_hidden_state;
    return { hidden: hidden.data, tokens: hidden.dims[1], width: hidden.dims[2], pooled: pooled.data, truncated: t.truncated };
  }
}
