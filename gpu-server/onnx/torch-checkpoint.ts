/**
 * PyTorch checkpoints (`.pt`, `.pth`, `.bin`) read as untrusted input, without Python: the zip
 * format of `torch.save` since torch 1.6 (`<name>/data.pkl` + one stored file per storage under
 * `<name>/data/<key>`) and the legacy format before it (magic, protocol and system pickles, the
 * object pickle, the storage key list, then each storage as an int64 element count and its
 * bytes). The pickles go through the restricted unpickler (`pickle.ts`: tensors, dicts, lists,
 * tuples, strings, numbers; every other global refused by name, nothing run). Tensor data is
 * read by byte range on demand, as `safetensors.ts` does, honouring sizes, strides, storage
 * offsets and storages shared between tensors.
 *
 * `file.pt#model` selects the nested dict under `model` (`#a.b` goes deeper); tensors are named
 * by their dotted path below it, a bare tensor by the empty name.
 */
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { DTYPE_BYTES, type DType } from './safetensors.ts';
import { bf16sToFloat32, halvesToFloat32 } from './half.ts';
import { describe, PickleError, PyTuple, storageDType, unpickle, type PyValue, type StorageRef, type TensorRef, type TorchDType } from './pickle.ts';

export class TorchCheckpointError extends Error {
  override name = 'TorchCheckpointError';
}

const DTYPE_OF: Record<TorchDType, DType> = { float32: 'F32', float16: 'F16', bfloat16: 'BF16', int64: 'I64' };

/** One tensor of a torch checkpoint: where its storage lies in the file, and the view on it. */
export interface TorchTensorInfo {
  name: string;
  dtype: DType;
  shape: number[];
  /** In elements. */
  strides: number[];
  storageOffset: number;
  file: string;
  /** Absolute byte offset of the storage in the file, and its length in bytes. */
  storageStart: number;
  storageBytes: number;
}

/** Extensions read as torch checkpoints. */
export const TORCH_EXTENSIONS = ['.pt', '.pth', '.bin', '.ckpt'] as const;
export const isTorchFile = (path: string): boolean => TORCH_EXTENSIONS.some((e) => path.split('#')[0].toLowerCase().endsWith(e));

const MAX_PICKLE = 256 * 1024 * 1024;
/** The first pickle of a legacy file is this number. */
const LEGACY_MAGIC = 0x1950a86a20f9469cfc6cn;

class FileBytes {
  readonly size: number;
  private constructor(readonly path: string, private readonly fd: number) {
    this.size = fstatSync(fd).size;
  }
  static open(path: string): FileBytes {
    try {
      return new FileBytes(path, openSync(path, 'r'));
    } catch (e) {
      throw new TorchCheckpointError(`${path}: cannot open (${(e as Error).message})`);
    }
  }
  read(offset: number, length: number): Buffer {
    if (offset < 0 || length < 0 || offset + length > this.size) throw new TorchCheckpointError(`${this.path}: truncated (wants bytes ${offset}..${offset + length} of ${this.size}); re-download it`);
    const buf = Buffer.allocUnsafeSlow(length);
    let done = 0;
    while (done < length) {
      const n = readSync(this.fd, buf, done, Math.min(length - done, 1 << 30), offset + done);
      if (n <= 0) throw new TorchCheckpointError(`${this.path}: truncated while reading`);
      done += n;
    }
    return buf;
  }
  close(): void {
    closeSync(this.fd);
  }
}

interface ZipEntry {
  name: string;
  method: number;
  size: number;
  /** Absolute offset of the entry's data. */
  dataStart: number;
}

/** The entries of a zip file from its central directory (zip64 included); data stored, not compressed. */
function zipEntries(f: FileBytes): Map<string, ZipEntry> {
  const tailLength = Math.min(f.size, 65_557);
  const tail = f.read(f.size - tailLength, tailLength);
  let eocd = -1;
  for (let i = tail.length - 22; i >= 0; i--) {
    if (tail.readUInt32LE(i) === 0x06054b50) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0) throw new TorchCheckpointError(`${f.path}: no zip directory (truncated?)`);
  let count = tail.readUInt16LE(eocd + 10);
  let dirSize = tail.readUInt32LE(eocd + 12);
  let dirOffset = tail.readUInt32LE(eocd + 16);
  if (dirOffset === 0xffffffff || count === 0xffff) {
    const locator = eocd - 20;
    if (locator < 0 || tail.readUInt32LE(locator) !== 0x07064b50) throw new TorchCheckpointError(`${f.path}: zip64 directory locator missing`);
    const recordAt = Number(tail.readBigUInt64LE(locator + 8));
    const record = f.read(recordAt, 56);
    if (record.readUInt32LE(0) !== 0x06064b50) throw new TorchCheckpointError(`${f.path}: zip64 directory record missing`);
    count = Number(record.readBigUInt64LE(32));
    dirSize = Number(record.readBigUInt64LE(40));
    dirOffset = Number(record.readBigUInt64LE(48));
  }
  if (dirSize > 64 * 1024 * 1024) throw new TorchCheckpointError(`${f.path}: zip directory of ${dirSize} bytes is too large for a checkpoint`);
  const dir = f.read(dirOffset, dirSize);
  const entries = new Map<string, ZipEntry>();
  let at = 0;
  for (let i = 0; i < count; i++) {
    if (at + 46 > dir.length || dir.readUInt32LE(at) !== 0x02014b50) throw new TorchCheckpointError(`${f.path}: damaged zip directory (entry ${i})`);
    const method = dir.readUInt16LE(at + 10);
    let size = dir.readUInt32LE(at + 24);
    let compressed = dir.readUInt32LE(at + 20);
    const nameLength = dir.readUInt16LE(at + 28);
    const extraLength = dir.readUInt16LE(at + 30);
    const commentLength = dir.readUInt16LE(at + 32);
    let localOffset = dir.readUInt32LE(at + 42);
    const name = dir.toString('utf8', at + 46, at + 46 + nameLength);
    // zip64 extra field: the 64-bit values, in order, of those written as 0xffffffff.
    let e = at + 46 + nameLength;
    const extraEnd = e + extraLength;
    while (e + 4 <= extraEnd) {
      const id = dir.readUInt16LE(e);
      const len = dir.readUInt16LE(e + 2);
      if (id === 0x0001) {
        let p = e + 4;
        const next = () => {
          const v = Number(dir.readBigUInt64LE(p));
          p += 8;
          return v;
        };
        if (size === 0xffffffff) size = next();
        if (compressed === 0xffffffff) compressed = next();
        if (localOffset === 0xffffffff) localOffset = next();
      }
      e += 4 + len;
    }
    const local = f.read(localOffset, 30);
    if (local.readUInt32LE(0) !== 0x04034b50) throw new TorchCheckpointError(`${f.path}: damaged zip entry ${name}`);
    const dataStart = localOffset + 30 + local.readUInt16LE(26) + local.readUInt16LE(28);
    if (method === 0 && compressed !== size) throw new TorchCheckpointError(`${f.path}: zip entry ${name} has inconsistent sizes`);
    entries.set(name, { name, method, size, dataStart });
    at += 46 + nameLength + extraLength + commentLength;
  }
  return entries;
}

/** A storage located in the file. */
interface Located {
  start: number;
  bytes: number;
}

function persistentStorage(pid: PyValue, where: string): StorageRef {
  // ('storage', storage_type, key, location, numel[, view_metadata])
  const items = pid instanceof PyTuple ? pid.items : [];
  const [tag, type, key, , elements, view] = items;
  const dtype = storageDType(type ?? null);
  if (tag !== 'storage' || !dtype || typeof key !== 'string' || typeof elements !== 'number') {
    throw new TorchCheckpointError(`${where}: a persistent id that is not a torch storage (${describe(type ?? null)})`);
  }
  if (view !== undefined && view !== null) throw new TorchCheckpointError(`${where}: a legacy storage view (torch < 0.4 files) is not supported; re-save the file with a newer torch`);
  return { kind: 'storage', dtype, key, elements };
}

function withPickleErrors<T>(where: string, fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    if (e instanceof PickleError) throw new TorchCheckpointError(`${where}: ${e.message}`);
    throw e;
  }
}

interface Loaded {
  root: PyValue;
  locate: (s: StorageRef) => Located;
}

function loadZip(f: FileBytes, entries: Map<string, ZipEntry>): Loaded {
  const pkl = [...entries.values()].find((e) => e.name.endsWith('/data.pkl') && e.name.split('/').length === 2) ?? entries.get('data.pkl');
  if (!pkl) throw new TorchCheckpointError(`${f.path}: a zip file without data.pkl is not a torch checkpoint`);
  const prefix = pkl.name.slice(0, -'data.pkl'.length);
  const byteorder = entries.get(`${prefix}byteorder`);
  if (byteorder && f.read(byteorder.dataStart, byteorder.size).toString('latin1') !== 'little') {
    throw new TorchCheckpointError(`${f.path}: saved on a big-endian machine; re-save it on a little-endian one`);
  }
  for (const e of [pkl, ...entries.values()]) {
    if (e.method !== 0) throw new TorchCheckpointError(`${f.path}: zip entry ${e.name} is compressed (method ${e.method}); torch.save stores entries uncompressed, re-save the file with torch.save`);
  }
  if (pkl.size > MAX_PICKLE) throw new TorchCheckpointError(`${f.path}: data.pkl of ${pkl.size} bytes is too large for a weights file`);
  const where = `${f.path} (data.pkl)`;
  const root = withPickleErrors(where, () => unpickle(f.read(pkl.dataStart, pkl.size), { persistentLoad: (pid) => persistentStorage(pid, where) }).value);
  return {
    root,
    locate: (s) => {
      const e = entries.get(`${prefix}data/${s.key}`);
      if (!e) throw new TorchCheckpointError(`${f.path}: storage ${s.key} is missing from the archive (truncated or damaged)`);
      return { start: e.dataStart, bytes: e.size };
    },
  };
}

function loadLegacy(f: FileBytes): Loaded {
  // The pickles are at the start: read enough for them (they hold no tensor data).
  const head = f.read(0, Math.min(f.size, MAX_PICKLE));
  const where = `${f.path} (legacy torch format)`;
  return withPickleErrors(where, () => {
    const magic = unpickle(head, {}, 0);
    if (magic.value !== LEGACY_MAGIC && magic.value !== Number(LEGACY_MAGIC)) throw new TorchCheckpointError(`${f.path}: neither a zip nor a legacy torch checkpoint`);
    const protocol = unpickle(head, {}, magic.end);
    if (protocol.value !== 1001) throw new TorchCheckpointError(`${f.path}: legacy torch format version ${String(protocol.value)} (1001 is read)`);
    const sys = unpickle(head, {}, protocol.end);
    if (sys.value instanceof Map && sys.value.get('little_endian') === false) throw new TorchCheckpointError(`${f.path}: saved on a big-endian machine`);
    const storages = new Map<string, StorageRef>();
    const main = unpickle(head, {
      persistentLoad: (pid) => {
        const s = persistentStorage(pid, where);
        storages.set(s.key, s);
        return s;
      },
    }, sys.end);
    const keys = unpickle(head, {}, main.end);
    if (!Array.isArray(keys.value) || !keys.value.every((k) => typeof k === 'string')) throw new TorchCheckpointError(`${where}: the storage key list is damaged`);
    // Each storage: int64 element count, then its bytes, in the order of the key list.
    const located = new Map<string, Located>();
    let at = keys.end;
    for (const key of keys.value as string[]) {
      const s = storages.get(key);
      if (!s) throw new TorchCheckpointError(`${where}: storage ${key} is listed but no tensor uses it`);
      const count = Number(f.read(at, 8).readBigInt64LE(0));
      const bytes = count * DTYPE_BYTES[DTYPE_OF[s.dtype]];
      if (count !== s.elements || at + 8 + bytes > f.size) throw new TorchCheckpointError(`${where}: storage ${key} is damaged or truncated`);
      located.set(key, { start: at + 8, bytes });
      at += 8 + bytes;
    }
    return {
      root: main.value,
      locate: (s: StorageRef) => {
        const l = located.get(s.key);
        if (!l) throw new TorchCheckpointError(`${where}: storage ${s.key} has no data in the file`);
        return l;
      },
    };
  });
}

const isTensor = (v: PyValue): v is TensorRef => typeof v === 'object' && v !== null && 'kind' in v && v.kind === 'tensor';

/** Every tensor under `v`, named by dotted path (dict keys, list indices). */
function collectTensors(v: PyValue, path: string, out: Map<string, TensorRef>): void {
  if (isTensor(v)) out.set(path, v);
  else if (v instanceof Map) for (const [k, child] of v) collectTensors(child, path === '' ? String(k) : `${path}.${k}`, out);
  else if (Array.isArray(v) || v instanceof PyTuple) (Array.isArray(v) ? v : v.items).forEach((child, i) => collectTensors(child, path === '' ? String(i) : `${path}.${i}`, out));
}

/**
 * A torch checkpoint, opened like `Checkpoint` (safetensors): tensor names, shapes and dtypes from
 * the pickle, data read on demand.
 */
export class TorchCheckpoint {
  private constructor(readonly source: string, readonly tensors: Map<string, TorchTensorInfo>) {}

  /** `path` may end in `#key` or `#key.sub` to select a nested dict. */
  static open(spec: string): TorchCheckpoint {
    const hash = spec.indexOf('#');
    const path = hash < 0 ? spec : spec.slice(0, hash);
    const select = hash < 0 ? '' : spec.slice(hash + 1);
    const f = FileBytes.open(path);
    try {
      const magic = f.read(0, Math.min(4, f.size));
      const loaded = magic.length === 4 && magic.readUInt32LE(0) === 0x04034b50 ? loadZip(f, zipEntries(f)) : loadLegacy(f);
      let root = loaded.root;
      for (const key of select === '' ? [] : select.split('.')) {
        const next = root instanceof Map ? root.get(key) ?? root.get(Number(key)) : undefined;
        if (next === undefined) {
          const keys = root instanceof Map ? [...root.keys()].slice(0, 8).map(String).join(', ') : describe(root);
          throw new TorchCheckpointError(`${path}: no "${key}" to select in #${select} (found: ${keys})`);
        }
        root = next;
      }
      const refs = new Map<string, TensorRef>();
      collectTensors(root, '', refs);
      if (refs.size === 0) throw new TorchCheckpointError(`${spec}: holds no tensors${select ? '' : '; select the weights with file.pt#<key> if they are nested'}`);
      const tensors = new Map<string, TorchTensorInfo>();
      for (const [name, t] of refs) {
        const where = loaded.locate(t.storage);
        const dtype = DTYPE_OF[t.storage.dtype];
        if (where.bytes < t.storage.elements * DTYPE_BYTES[dtype]) throw new TorchCheckpointError(`${path}: the storage of "${name}" is shorter than its ${t.storage.elements} elements (truncated)`);
        tensors.set(name, { name, dtype, shape: t.shape, strides: t.strides, storageOffset: t.storageOffset, file: path, storageStart: where.start, storageBytes: where.bytes });
      }
      return new TorchCheckpoint(spec, tensors);
    } finally {
      f.close();
    }
  }

  keys(): string[] {
    return [...this.tensors.keys()];
  }

  has(name: string): boolean {
    return this.tensors.has(name);
  }

  info(name: string): TorchTensorInfo {
    const info = this.tensors.get(name);
    if (!info) throw new TorchCheckpointError(`${this.source}: tensor "${name}" is missing (is this the right checkpoint for this model?)`);
    return info;
  }

  /** The tensor's elements in row-major order, in its own dtype, little-endian. */
  readContiguous(name: string): Buffer {
    const t = this.info(name);
    const es = DTYPE_BYTES[t.dtype];
    const count = t.shape.reduce((a, b) => a * b, 1);
    const f = FileBytes.open(t.file);
    try {
      if (count === 0) return Buffer.alloc(0);
      // Span of the storage the view touches, read once.
      const reach = t.shape.reduce((r, d, i) => r + (d - 1) * t.strides[i], 1);
      const span = f.read(t.storageStart + t.storageOffset * es, reach * es);
      if (isRowMajor(t.shape, t.strides)) return span;
      const out = Buffer.allocUnsafeSlow(count * es);
      const index = new Array<number>(t.shape.length).fill(0);
      for (let i = 0; i < count; i++) {
        let src = 0;
        for (let d = 0; d < index.length; d++) src += index[d] * t.strides[d];
        span.copy(out, i * es, src * es, src * es + es);
        for (let d = index.length - 1; d >= 0; d--) {
          if (++index[d] < t.shape[d]) break;
          index[d] = 0;
        }
      }
      return out;
    } finally {
      f.close();
    }
  }

  readFloat32(name: string): Float32Array {
    const t = this.info(name);
    const b = this.readContiguous(name);
    const ab = b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength);
    switch (t.dtype) {
      case 'F32': return new Float32Array(ab);
      case 'F16': return halvesToFloat32(new Uint16Array(ab));
      case 'BF16': return bf16sToFloat32(new Uint16Array(ab));
      default: throw new TorchCheckpointError(`${this.source}: tensor "${name}" is ${t.dtype}, expected a float tensor`);
    }
  }
}

function isRowMajor(shape: readonly number[], strides: readonly number[]): boolean {
  let expected = 1;
  for (let d = shape.length - 1; d >= 0; d--) {
    if (shape[d] !== 1 && strides[d] !== expected) return false;
    expected *= shape[d];
  }
  return true;
}
