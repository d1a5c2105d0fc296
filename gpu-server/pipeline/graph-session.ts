/**
 * One ONNX graph of a model folder behind a float32 interface: inputs are converted to the
 * element type the graph declares (float16 graphs take halves) and float outputs come back as
 * float32, so the pipeline never cares about a folder's precision.
 */
import { float32ToHalves, halvesToFloat32 } from '../onnx/half.ts';
import { ort } from '../onnx/session.ts';

/**
 * One input. `constant` marks data that stays the same across runs (text embeddings, RoPE
 * tables): an fp16 graph converts it once, not at every denoising step.
 */
export type Feed = { data: Float32Array; dims: readonly number[]; constant?: boolean } | { data: BigInt64Array; dims: readonly number[]; constant?: boolean };

export class GraphSession {
  private readonly inputTypes = new Map<string, string>();
  private readonly halves = new WeakMap<Float32Array, ort.Tensor>();

  constructor(readonly name: string, readonly session: ort.InferenceSession) {
    for (const m of session.inputMetadata) if (m.isTensor) this.inputTypes.set(m.name, m.type);
  }

  hasInput(name: string): boolean {
    return this.inputTypes.has(name);
  }

  get outputNames(): readonly string[] {
    return this.session.outputNames;
  }

  /** Runs the graph; returns the requested float outputs as float32 with their dims. */
  async run(feeds: Record<string, Feed>, outputs: readonly string[]): Promise<Record<string, { data: Float32Array; dims: number[] }>> {
    const tensors: Record<string, ort.Tensor> = {};
    for (const [name, feed] of Object.entries(feeds)) {
      const type = this.inputTypes.get(name);
      if (!type) throw new Error(`graph ${this.name} has no input "${name}" (inputs: ${[...this.inputTypes.keys()].join(', ')}); the model folder does not match this program, re-convert it`);
      const dims = [...feed.dims];
      if (feed.data instanceof BigInt64Array) tensors[name] = new ort.Tensor('int64', feed.data, dims);
      else if (type === 'float16') tensors[name] = feed.constant ? this.halvesOnce(feed.data, dims) : new ort.Tensor('float16', float32ToHalves(feed.data), dims);
      else tensors[name] = new ort.Tensor('float32', feed.data, dims);
    }
    const result = await this.session.run(tensors, [...outputs]);
    const out: Record<string, { data: Float32Array; dims: number[] }> = {};
    for (const name of outputs) {
      const t = result[name];
      const data = t.type === 'float16' ? halvesToFloat32(t.data as Uint16Array) : (t.data as Float32Array);
      out[name] = { data, dims: [...t.dims] };
      t.dispose();
    }
    return out;
  }

  release(): Promise<void> {
    return this.session.release();
  }

  /** The graph's inputs with their declared dims (symbolic ones as names). */
  inputs(): Array<{ name: string; dims: ReadonlyArray<number | string> }> {
    return this.session.inputMetadata.filter((m) => m.isTensor).map((m) => ({ name: m.name, dims: m.isTensor ? m.shape : [] }));
  }

  private halvesOnce(data: Float32Array, dims: number[]): ort.Tensor {
    let t = this.halves.get(data);
    if (!t) this.halves.set(data, (t = new ort.Tensor('float16', float32ToHalves(data), dims)));
    return t;
  }
}

/**
 * A graph that is opened when first used and, unless resident, released after each use (the
 * memory plan's `text-on-demand` mode for the text encoders).
 */
export class GraphSlot {
  private open: Promise<GraphSession> | undefined;
  /** Runs in flight: a non-resident graph is released only when the last one ends. */
  private users = 0;

  constructor(
    readonly name: string,
    private readonly openGraph: () => Promise<GraphSession>,
    private readonly resident: boolean,
  ) {}

  /** Opens the graph now (resident graphs open at start, so a broken folder fails early). */
  ensureOpen(): Promise<GraphSession> {
    return (this.open ??= this.openGraph());
  }

  async run(feeds: Record<string, Feed>, outputs: readonly string[]): Promise<Record<string, { data: Float32Array; dims: number[] }>> {
    this.users++;
    try {
      return await (await this.ensureOpen()).run(feeds, outputs);
    } finally {
      if (--this.users === 0 && !this.resident) await this.release();
    }
  }

  async release(): Promise<void> {
    const open = this.open;
    this.open = undefined;
    if (open) await (await open).release();
  }
}
