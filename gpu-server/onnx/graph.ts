/**
 * A small typed builder for ONNX graphs. Model files (transformer, VAE, ...) call the layer
 * helpers of `nn.ts`, which call `op()` here; the builder only records nodes, inputs, outputs
 * and initializers. Weight data is loaded lazily when the model is written, one tensor at a time.
 */
import { float32ToHalves } from './half.ts';

export type ElemType = 'float32' | 'float16' | 'int64' | 'int32' | 'uint8' | 'int8' | 'bool';
/** `'float'` means the graph's working float type (fp32 or fp16, a build option). */
export type TypeSpec = ElemType | 'float';

/** Values of ONNX TensorProto.DataType. */
export const ONNX_TYPE: Record<ElemType, number> = { float32: 1, uint8: 2, int8: 3, int32: 6, int64: 7, bool: 9, float16: 10 };

/** A symbolic tensor in the graph. */
export interface Value {
  readonly name: string;
}

export type Dim = number | string;

export type TensorArray = Float32Array | Uint16Array | BigInt64Array | Int32Array | Uint8Array | Int8Array;

export interface Initializer {
  name: string;
  type: ElemType;
  dims: number[];
  /** Produces the data in `type` (Uint16Array bits for float16). Called once, when writing. */
  load: () => TensorArray;
  /** Small constants are embedded in the .onnx; weights go to the external data file. */
  inline: boolean;
}

export type Attr =
  | { kind: 'int'; value: number }
  | { kind: 'ints'; value: number[] }
  | { kind: 'float'; value: number }
  | { kind: 'floats'; value: number[] }
  | { kind: 'string'; value: string };

export const int = (value: number): Attr => ({ kind: 'int', value });
export const ints = (value: number[]): Attr => ({ kind: 'ints', value });
export const float = (value: number): Attr => ({ kind: 'float', value });
export const str = (value: string): Attr => ({ kind: 'string', value });

export interface NodeSpec {
  opType: string;
  domain: string;
  name: string;
  inputs: string[];
  outputs: string[];
  attrs: Record<string, Attr>;
}

export interface IoSpec {
  name: string;
  type: ElemType;
  dims: Dim[];
}

/** Where weights come from: a checkpoint, or only shapes (structure tests, no data). */
export interface WeightSource {
  /** Names the source in errors (a path). */
  readonly describe: string;
  shape(key: string): number[] | undefined;
  read(key: string): Float32Array;
}

export class GraphError extends Error {
  override name = 'GraphError';
}

const MAX_INLINE_BYTES = 4096;

export class GraphBuilder {
  readonly nodes: NodeSpec[] = [];
  readonly inputs: IoSpec[] = [];
  readonly outputs: IoSpec[] = [];
  readonly initializers = new Map<string, Initializer>();
  /** Checkpoint keys the graph consumed, with the shape it expected. */
  readonly usedKeys = new Map<string, number[]>();
  private counter = 0;
  /** Values renamed to a graph output's name (see `output`). */
  private readonly aliases = new Map<string, string>();

  constructor(
    readonly name: string,
    readonly float: 'float32' | 'float16',
    readonly weights: WeightSource,
    /** `int4`: linear layers become 4-bit weight-only `MatMulNBits` (see `int4.ts`). */
    readonly quantize: 'none' | 'int4' = 'none',
  ) {}

  resolve(type: TypeSpec): ElemType {
    return type === 'float' ? this.float : type;
  }

  private fresh(hint: string): string {
    return `${hint}_${this.counter++}`;
  }

  input(name: string, type: TypeSpec, dims: Dim[]): Value {
    this.inputs.push({ name, type: this.resolve(type), dims });
    return { name };
  }

  /**
   * Marks `value` as a graph output under `name`. A node's output is renamed to it (everywhere, and
   * for later uses of `value`): an Identity would be a node with no WebGPU kernel, run on the CPU.
   * Only a graph input, a weight or a value already output under another name gets an Identity.
   */
  output(value: Value, name: string, type: TypeSpec, dims: Dim[]): void {
    const current = this.aliases.get(value.name) ?? value.name;
    if (current !== name) {
      const producer = this.nodes.find((n) => n.outputs.includes(current));
      if (producer && !this.outputs.some((o) => o.name === current)) {
        for (const n of this.nodes) {
          n.outputs = n.outputs.map((o) => (o === current ? name : o));
          n.inputs = n.inputs.map((i) => (i === current ? name : i));
        }
        this.aliases.set(value.name, name);
      } else this.op('Identity', [value], {}, { outputName: name });
    }
    this.outputs.push({ name, type: this.resolve(type), dims });
  }

  /** A value's name in the graph (a value that became a graph output was renamed). */
  private ref(v: Value | null): string {
    return v ? (this.aliases.get(v.name) ?? v.name) : '';
  }

  /** Adds a node; returns its outputs. */
  node(opType: string, inputs: (Value | null)[], attrs: Record<string, Attr> = {}, opts: { domain?: string; outputs?: number; name?: string } = {}): Value[] {
    const n = opts.outputs ?? 1;
    const base = this.fresh(opts.name ?? opType);
    const outputs = Array.from({ length: n }, (_, i) => (n === 1 ? base : `${base}_${i}`));
    this.nodes.push({
      opType,
      domain: opts.domain ?? '',
      name: base,
      inputs: inputs.map((v) => this.ref(v)),
      outputs,
      attrs,
    });
    return outputs.map((name) => ({ name }));
  }

  /** Adds a single-output node. */
  op(opType: string, inputs: (Value | null)[], attrs: Record<string, Attr> = {}, opts: { domain?: string; name?: string; outputName?: string } = {}): Value {
    if (opts.outputName) {
      this.nodes.push({ opType, domain: opts.domain ?? '', name: this.fresh(opType), inputs: inputs.map((v) => this.ref(v)), outputs: [opts.outputName], attrs });
      return { name: opts.outputName };
    }
    return this.node(opType, inputs, attrs, opts)[0];
  }

  /** A weight from the checkpoint under its official key, shape-checked against the config. */
  weight(key: string, shape: number[], transform: 'none' | 'transpose' = 'none'): Value {
    this.useKey(key, shape);
    const name = transform === 'transpose' ? `${key}.T` : key;
    if (this.initializers.has(name)) return { name };
    const dims = transform === 'transpose' ? [shape[1], shape[0]] : shape;
    const load = (): TensorArray => {
      let data = this.weights.read(key);
      if (transform === 'transpose') data = transpose2d(data, shape[0], shape[1]);
      return this.float === 'float16' ? float32ToHalves(data) : data;
    };
    this.addInitializer({ name, type: this.float, dims, load, inline: false });
    return { name };
  }

  /** Marks a checkpoint key as consumed after checking its shape (for weights stored in a derived form). */
  useKey(key: string, shape: number[]): void {
    const actual = this.weights.shape(key);
    if (!actual) throw new GraphError(`${this.weights.describe}: tensor "${key}" is missing (is this the right checkpoint for this config?)`);
    if (actual.length !== shape.length || actual.some((d, i) => d !== shape[i])) {
      throw new GraphError(`${this.weights.describe}: tensor "${key}" has shape [${actual}] but the config needs [${shape}] (config.json and weights disagree)`);
    }
    this.usedKeys.set(key, shape);
  }

  /** A raw initializer (any element type) computed from checkpoint data when the model is written. */
  rawInitializer(name: string, type: ElemType, dims: number[], load: () => TensorArray): Value {
    this.addInitializer({ name, type, dims, load, inline: false });
    return { name };
  }

  /** A weight derived from checkpoint tensors (e.g. a fused or reshaped form). */
  derivedWeight(name: string, dims: number[], keys: Record<string, number[]>, make: (read: (key: string) => Float32Array) => Float32Array, type: TypeSpec = 'float'): Value {
    for (const [key, shape] of Object.entries(keys)) this.useKey(key, shape);
    const elem = this.resolve(type);
    const load = (): TensorArray => {
      const data = make((key) => this.weights.read(key));
      return elem === 'float16' ? float32ToHalves(data) : data;
    };
    this.addInitializer({ name, type: elem, dims, load, inline: false });
    return { name };
  }

  /** A constant tensor computed at build time. */
  constant(values: ArrayLike<number> | ArrayLike<bigint>, dims: number[], type: TypeSpec = 'float', hint = 'const'): Value {
    const elem = this.resolve(type);
    const name = this.fresh(hint);
    const data = toArray(values, elem);
    this.addInitializer({ name, type: elem, dims, load: () => data, inline: data.byteLength <= MAX_INLINE_BYTES });
    return { name };
  }

  /** A constant made once per graph under `name` and shared by every caller (e.g. LayerNorm's unit scale). */
  sharedConstant(name: string, values: () => ArrayLike<number>, dims: number[], type: TypeSpec = 'float'): Value {
    if (!this.initializers.has(name)) {
      const elem = this.resolve(type);
      const data = toArray(values(), elem);
      this.addInitializer({ name, type: elem, dims, load: () => data, inline: data.byteLength <= MAX_INLINE_BYTES });
    }
    return { name };
  }

  scalar(value: number, type: TypeSpec = 'float'): Value {
    return this.constant([value], [], type, 'scalar');
  }

  /** An int64 vector (shapes, axes, indices). */
  i64(values: number[]): Value {
    return this.constant(values.map((v) => BigInt(v)), [values.length], 'int64', 'i64');
  }

  private addInitializer(init: Initializer): void {
    if (this.initializers.has(init.name)) throw new GraphError(`initializer "${init.name}" added twice`);
    this.initializers.set(init.name, init);
  }
}

function toArray(values: ArrayLike<number> | ArrayLike<bigint>, type: ElemType): TensorArray {
  const arr = Array.from(values as ArrayLike<number | bigint>);
  switch (type) {
    case 'float32': return Float32Array.from(arr, Number);
    case 'float16': return float32ToHalves(Float32Array.from(arr, Number));
    case 'int64': return BigInt64Array.from(arr, (v) => BigInt(v));
    case 'int32': return Int32Array.from(arr, Number);
    case 'uint8': case 'bool': return Uint8Array.from(arr, Number);
    case 'int8': return Int8Array.from(arr, Number);
  }
}

export function transpose2d(data: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(data.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = data[r * cols + c];
  return out;
}

/** Weights from a safetensors checkpoint. */
export function checkpointWeights(ckpt: { source: string; tensors: Map<string, { shape: number[] }>; readFloat32(name: string): Float32Array }): WeightSource {
  return {
    describe: ckpt.source,
    shape: (key) => ckpt.tensors.get(key)?.shape,
    read: (key) => ckpt.readFloat32(key),
  };
}

/** Shapes only: builds a graph's structure without any data (full-size structure tests). */
export function shapeOnlyWeights(describe: string, shapes: Record<string, number[]>): WeightSource {
  return {
    describe,
    shape: (key) => shapes[key],
    read: (key) => {
      throw new GraphError(`${describe}: "${key}" has a shape but no data (a structure-only weight source cannot be written)`);
    },
  };
}

/** Weights held in memory (tiny random models, tests). */
export function memoryWeights(describe: string, tensors: Map<string, { shape: number[]; data: Float32Array }>): WeightSource {
  return {
    describe,
    shape: (key) => tensors.get(key)?.shape,
    read: (key) => {
      const t = tensors.get(key);
      if (!t) throw new GraphError(`${describe}: tensor "${key}" is missing`);
      return t.data;
    },
  };
}
