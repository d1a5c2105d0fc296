/**
 * safetensors files: an 8-byte little-endian header length, a JSON header naming every tensor's
 * dtype, shape and byte range, then the raw data. Tensors are read by byte range so a 24 GB
 * checkpoint is never loaded whole; sharded checkpoints are opened through their
 * `*.safetensors.index.json`.
 */
import { closeSync, existsSync, fstatSync, openSync, readdirSync, readFileSync, readSync, statSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { bf16sToFloat32, halvesToFloat32 } from './half.ts';

export type DType = 'F64' | 'F32' | 'F16' | 'BF16' | 'I64' | 'I32' | 'I16' | 'I8' | 'U8' | 'BOOL';

export const DTYPE_BYTES: Record<DType, number> = {
  F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, I8: 1, U8: 1, BOOL: 1,
};

export interface TensorInfo {
  name: string;
  dtype: DType;
  shape: number[];
  /** The file holding the tensor. */
  file: string;
  /** Absolute byte offset of the data in the file, and its length. */
  offset: number;
  length: number;
}

export class SafetensorsError extends Error {
  override name = 'SafetensorsError';
}

const MAX_HEADER = 100 * 1024 * 1024;

function isDType(s: unknown): s is DType {
  return typeof s === 'string' && s in DTYPE_BYTES;
}

export const elementCount = (shape: readonly number[]): number => shape.reduce((a, b) => a * b, 1);

/** Parses and checks the header of one file; every problem names the file (and tensor). */
export function readHeader(file: string): { tensors: Map<string, TensorInfo>; metadata: Record<string, string> } {
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch (e) {
    throw new SafetensorsError(`${file}: cannot open (${(e as Error).message})`);
  }
  try {
    const size = fstatSync(fd).size;
    if (size < 8) throw new SafetensorsError(`${file}: truncated (${size} bytes, no header); re-download or re-convert the file`);
    const lenBuf = Buffer.alloc(8);
    readSync(fd, lenBuf, 0, 8, 0);
    const headerLen = Number(lenBuf.readBigUInt64LE(0));
    if (headerLen > MAX_HEADER || 8 + headerLen > size) {
      throw new SafetensorsError(`${file}: bad header length ${headerLen} for a file of ${size} bytes (truncated or not a safetensors file)`);
    }
    const headerBuf = Buffer.alloc(headerLen);
    readSync(fd, headerBuf, 0, headerLen, 8);
    let json: unknown;
    try {
      json = JSON.parse(headerBuf.toString('utf8'));
    } catch {
      throw new SafetensorsError(`${file}: header is not valid JSON (corrupt or not a safetensors file)`);
    }
    if (typeof json !== 'object' || json === null || Array.isArray(json)) {
      throw new SafetensorsError(`${file}: header is not a JSON object`);
    }
    const dataStart = 8 + headerLen;
    const tensors = new Map<string, TensorInfo>();
    let metadata: Record<string, string> = {};
    for (const [name, raw] of Object.entries(json as Record<string, unknown>)) {
      if (name === '__metadata__') {
        metadata = raw as Record<string, string>;
        continue;
      }
      const entry = raw as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
      if (!isDType(entry.dtype)) throw new SafetensorsError(`${file}: tensor "${name}" has unsupported dtype ${JSON.stringify(entry.dtype)}`);
      const shape = entry.shape;
      const offsets = entry.data_offsets;
      if (!Array.isArray(shape) || !shape.every((d) => Number.isInteger(d) && d >= 0)) {
        throw new SafetensorsError(`${file}: tensor "${name}" has a bad shape ${JSON.stringify(shape)}`);
      }
      if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every((d) => Number.isInteger(d) && d >= 0)) {
        throw new SafetensorsError(`${file}: tensor "${name}" has bad data_offsets`);
      }
      const [begin, end] = offsets as [number, number];
      const expected = elementCount(shape) * DTYPE_BYTES[entry.dtype];
      if (end - begin !== expected) {
        throw new SafetensorsError(`${file}: tensor "${name}" spans ${end - begin} bytes but ${entry.dtype}${JSON.stringify(shape)} needs ${expected}`);
      }
      if (dataStart + end > size) {
        throw new SafetensorsError(`${file}: truncated: tensor "${name}" ends at byte ${dataStart + end} but the file has ${size} bytes; re-download it`);
      }
      tensors.set(name, { name, dtype: entry.dtype, shape: shape as number[], file, offset: dataStart + begin, length: end - begin });
    }
    return { tensors, metadata };
  } finally {
    closeSync(fd);
  }
}

/** Reads one tensor's raw bytes (its own buffer, aligned for typed-array views). */
export function readTensorBytes(info: TensorInfo): Buffer {
  const buf = Buffer.allocUnsafeSlow(info.length);
  const fd = openSync(info.file, 'r');
  try {
    let done = 0;
    while (done < info.length) {
      const n = readSync(fd, buf, done, Math.min(info.length - done, 1 << 30), info.offset + done);
      if (n <= 0) throw new SafetensorsError(`${info.file}: truncated while reading tensor "${info.name}"`);
      done += n;
    }
  } finally {
    closeSync(fd);
  }
  return buf;
}

/** Any float tensor as float32 values. */
export function toFloat32(info: TensorInfo, bytes: Buffer): Float32Array {
  const ab = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
  switch (info.dtype) {
    case 'F32': return new Float32Array(ab);
    case 'F16': return halvesToFloat32(new Uint16Array(ab));
    case 'BF16': return bf16sToFloat32(new Uint16Array(ab));
    case 'F64': return Float32Array.from(new Float64Array(ab));
    default: throw new SafetensorsError(`${info.file}: tensor "${info.name}" is ${info.dtype}, expected a float tensor`);
  }
}

/**
 * A checkpoint: one `.safetensors` file, a sharded set through its index, or a folder holding
 * either. Tensors are looked up by name and read on demand.
 */
export class Checkpoint {
  private constructor(readonly source: string, readonly tensors: Map<string, TensorInfo>) {}

  static open(path: string): Checkpoint {
    if (!existsSync(path)) throw new SafetensorsError(`${path}: no such file or folder`);
    if (statSync(path).isDirectory()) {
      const files = readdirSync(path).sort();
      const index = files.find((f) => f.endsWith('.safetensors.index.json'));
      if (index) return Checkpoint.open(join(path, index));
      const single = files.filter((f) => f.endsWith('.safetensors'));
      if (single.length === 0) throw new SafetensorsError(`${path}: no .safetensors file or *.safetensors.index.json in this folder`);
      return Checkpoint.fromFiles(path, single.map((f) => join(path, f)));
    }
    if (path.endsWith('.index.json')) {
      let index: { weight_map?: Record<string, string> };
      try {
        index = JSON.parse(readFileSync(path, 'utf8'));
      } catch {
        throw new SafetensorsError(`${path}: index is not valid JSON`);
      }
      if (!index.weight_map || typeof index.weight_map !== 'object') throw new SafetensorsError(`${path}: index has no weight_map`);
      const shards = [...new Set(Object.values(index.weight_map))].sort();
      const ckpt = Checkpoint.fromFiles(path, shards.map((s) => join(dirname(path), basename(s))));
      for (const [name, shard] of Object.entries(index.weight_map)) {
        const info = ckpt.tensors.get(name);
        if (!info) throw new SafetensorsError(`${path}: tensor "${name}" is listed for ${shard} but that shard does not hold it`);
        if (basename(info.file) !== basename(shard)) throw new SafetensorsError(`${path}: tensor "${name}" is listed for ${shard} but found in ${basename(info.file)}`);
      }
      return ckpt;
    }
    return Checkpoint.fromFiles(path, [path]);
  }

  private static fromFiles(source: string, files: string[]): Checkpoint {
    const all = new Map<string, TensorInfo>();
    for (const file of files) {
      if (!existsSync(file)) throw new SafetensorsError(`${source}: shard ${file} is missing; re-download the checkpoint`);
      for (const [name, info] of readHeader(file).tensors) {
        const prev = all.get(name);
        if (prev) throw new SafetensorsError(`${source}: tensor "${name}" appears in both ${prev.file} and ${file}`);
        all.set(name, info);
      }
    }
    return new Checkpoint(source, all);
  }

  has(name: string): boolean {
    return this.tensors.has(name);
  }

  keys(): string[] {
    return [...this.tensors.keys()];
  }

  info(name: string, expectedShape?: readonly number[]): TensorInfo {
    const info = this.tensors.get(name);
    if (!info) throw new SafetensorsError(`${this.source}: tensor "${name}" is missing (is this the right checkpoint for this model?)`);
    if (expectedShape && (info.shape.length !== expectedShape.length || info.shape.some((d, i) => d !== expectedShape[i]))) {
      throw new SafetensorsError(
        `${info.file}: tensor "${name}" has shape [${info.shape}] but the config needs [${expectedShape}] (config.json and weights disagree)`,
      );
    }
    return info;
  }

  readFloat32(name: string, expectedShape?: readonly number[]): Float32Array {
    const info = this.info(name, expectedShape);
    return toFloat32(info, readTensorBytes(info));
  }

  readRaw(name: string): { info: TensorInfo; bytes: Buffer } {
    const info = this.info(name);
    return { info, bytes: readTensorBytes(info) };
  }
}

export type TensorData = Float32Array | Float64Array | Uint16Array | BigInt64Array | Int32Array | Uint8Array | Int8Array | Int16Array;

export interface TensorToWrite {
  dtype: DType;
  shape: number[];
  data: TensorData;
}

/**
 * The bytes in front of a safetensors file's data: the header length (u64 little-endian) and the
 * JSON header padded with spaces to a multiple of 8; tensors laid out in the order given.
 */
export function safetensorsPrefix(
  tensors: Iterable<[name: string, dtype: DType, shape: readonly number[]]>,
  metadata?: Record<string, string>,
): { prefix: Buffer; dataBytes: number } {
  const header: Record<string, unknown> = {};
  if (metadata) header.__metadata__ = metadata;
  let offset = 0;
  for (const [name, dtype, shape] of tensors) {
    const bytes = elementCount(shape) * DTYPE_BYTES[dtype];
    header[name] = { dtype, shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  const raw = Buffer.from(JSON.stringify(header), 'utf8');
  const json = Buffer.concat([raw, Buffer.alloc((8 - (raw.length % 8)) % 8, 0x20)]);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  return { prefix: Buffer.concat([len, json]), dataBytes: offset };
}

/** Writes tensors (in the order given) to one safetensors file. */
export function writeSafetensors(file: string, tensors: Record<string, TensorToWrite>, metadata?: Record<string, string>): void {
  for (const [name, t] of Object.entries(tensors)) {
    const bytes = elementCount(t.shape) * DTYPE_BYTES[t.dtype];
    if (t.data.byteLength !== bytes) throw new SafetensorsError(`${file}: tensor "${name}" has ${t.data.byteLength} bytes of data for ${t.dtype}[${t.shape}] (${bytes})`);
  }
  const { prefix } = safetensorsPrefix(Object.entries(tensors).map(([name, t]) => [name, t.dtype, t.shape]), metadata);
  const fd = openSync(file, 'w');
  try {
    writeSync(fd, prefix);
    for (const t of Object.values(tensors)) writeSync(fd, new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength));
  } finally {
    closeSync(fd);
  }
}

/** Reads a whole (small) safetensors file into float32 arrays, e.g. golden inputs. */
export function loadAll(file: string): Map<string, { info: TensorInfo; bytes: Buffer }> {
  const out = new Map<string, { info: TensorInfo; bytes: Buffer }>();
  for (const info of readHeader(file).tensors.values()) out.set(info.name, { info, bytes: readTensorBytes(info) });
  return out;
}
