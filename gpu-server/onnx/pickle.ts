/**
 * A restricted unpickler for PyTorch checkpoints, which are untrusted input: a pickle is a
 * program for a stack machine whose GLOBAL/REDUCE opcodes import and call any Python callable
 * (`os.system` included). This reader runs only the data opcodes and knows a closed list of
 * globals, each given a meaning here: `collections.OrderedDict`, torch's tensor rebuild
 * functions and its typed storage classes. Any other global stops the read with an error that
 * names it, before anything is called; nothing is ever imported or executed.
 *
 * Values: `null`, booleans, numbers (a `bigint` beyond 2^53), strings, byte arrays, lists,
 * tuples, dicts (string or number keys, insertion order kept), and the torch values below.
 * The opcodes are those of pickle protocols 2-5 that `torch.save` writes (plus a few more data
 * opcodes); the format is CPython's `Lib/pickletools.py`.
 */

export class PickleError extends Error {
  override name = 'PickleError';
}

/** A storage as `torch.save` names it in a persistent id: what the tensor data is read from. */
export interface StorageRef {
  kind: 'storage';
  /** The element type from the storage class (`torch.FloatStorage` -> float32). */
  dtype: TorchDType;
  /** The storage's key: its file `data/<key>` in a zip checkpoint, a slot in a legacy one. */
  key: string;
  /** Elements the storage holds, as the persistent id says. */
  elements: number;
}

/** A tensor rebuilt by `torch._utils._rebuild_tensor_v2`: a view on a storage. */
export interface TensorRef {
  kind: 'tensor';
  storage: StorageRef;
  /** In elements. */
  storageOffset: number;
  shape: number[];
  /** In elements, one per dimension. */
  strides: number[];
}

export type PyKey = string | number;
export type PyValue =
  | null
  | boolean
  | number
  | bigint
  | string
  | Uint8Array
  | PyValue[]
  | PyTuple
  | Map<PyKey, PyValue>
  | TensorRef
  | StorageRef
  | AllowedGlobal;

/** Tuples are kept apart from lists (torch's sizes and persistent ids are tuples). */
export class PyTuple {
  constructor(readonly items: PyValue[]) {}
}

export const TORCH_DTYPES = ['float32', 'float16', 'bfloat16', 'int64'] as const;
export type TorchDType = (typeof TORCH_DTYPES)[number];

/** The storage classes torch.save names, and the element type of each. */
const STORAGE_CLASSES: Record<string, TorchDType> = {
  FloatStorage: 'float32',
  HalfStorage: 'float16',
  BFloat16Storage: 'bfloat16',
  LongStorage: 'int64',
};

/** The only globals a checkpoint may name; each is a marker interpreted by REDUCE below. */
type AllowedGlobal = { kind: 'global'; name: 'OrderedDict' | 'rebuild_tensor_v2' | 'rebuild_tensor' | 'rebuild_parameter' } | { kind: 'global'; name: 'storage'; dtype: TorchDType };

function allowedGlobal(module: string, name: string): AllowedGlobal {
  const full = `${module}.${name}`;
  if (full === 'collections.OrderedDict') return { kind: 'global', name: 'OrderedDict' };
  if (full === 'torch._utils._rebuild_tensor_v2') return { kind: 'global', name: 'rebuild_tensor_v2' };
  if (full === 'torch._utils._rebuild_tensor') return { kind: 'global', name: 'rebuild_tensor' };
  if (full === 'torch._utils._rebuild_parameter') return { kind: 'global', name: 'rebuild_parameter' };
  if (module === 'torch' && Object.hasOwn(STORAGE_CLASSES, name)) return { kind: 'global', name: 'storage', dtype: STORAGE_CLASSES[name] };
  const known = module === 'torch' && name.endsWith('Storage') ? ` (a ${name} tensor: only float32, float16, bfloat16 and int64 tensors are read)` : '';
  throw new PickleError(
    `refused to load: the pickle names the global ${full}${known}, which a weights file has no need of; ` +
      'only tensors, dicts, lists, tuples, strings and numbers are read (nothing in the file is run). ' +
      'Convert the file to .safetensors with a trusted tool, or get the weights from a trusted source',
  );
}

const MARK = Symbol('mark');
type StackItem = PyValue | typeof MARK;

/** Bounds on what an untrusted pickle may make this reader build. */
const MAX_ITEMS = 50_000_000;
const MAX_DIMS = 32;

export interface UnpickleOptions {
  /** Resolves a persistent id (torch's storage tuples) to a value; refused when absent. */
  persistentLoad?: (pid: PyValue) => PyValue;
}

/** Runs one pickle from `bytes[start]`; returns its value and where it stopped (after STOP). */
export function unpickle(bytes: Uint8Array, options: UnpickleOptions = {}, start = 0): { value: PyValue; end: number } {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const decoder = new TextDecoder('utf-8', { fatal: true });
  const stack: StackItem[] = [];
  const memo = new Map<number, PyValue>();
  let pos = start;
  let items = 0;

  const fail = (why: string): never => {
    throw new PickleError(`not a readable checkpoint pickle at byte ${pos}: ${why}`);
  };
  const need = (n: number) => {
    if (n < 0 || pos + n > bytes.length) fail(`truncated (wants ${n} bytes, ${bytes.length - pos} left)`);
  };
  const u8 = () => (need(1), bytes[pos++]);
  const u16 = () => (need(2), (pos += 2), view.getUint16(pos - 2, true));
  const u32 = () => (need(4), (pos += 4), view.getUint32(pos - 4, true));
  const i32 = () => (need(4), (pos += 4), view.getInt32(pos - 4, true));
  const u64 = () => {
    need(8);
    const v = view.getBigUint64(pos, true);
    pos += 8;
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) fail('length beyond 2^53');
    return Number(v);
  };
  const take = (n: number) => (need(n), (pos += n), bytes.subarray(pos - n, pos));
  const text = (n: number) => {
    try {
      return decoder.decode(take(n));
    } catch {
      return fail('a string is not valid UTF-8');
    }
  };
  const line = () => {
    const end = bytes.indexOf(0x0a, pos);
    if (end < 0) fail('unterminated line');
    const s = new TextDecoder('latin1').decode(bytes.subarray(pos, end));
    pos = end + 1;
    return s;
  };
  const push = (v: PyValue) => {
    if (++items > MAX_ITEMS) fail(`more than ${MAX_ITEMS} values`);
    stack.push(v);
  };
  const pop = (): PyValue => {
    const v = stack.pop();
    if (v === undefined || v === MARK) return fail('stack underflow');
    return v;
  };
  const top = (): PyValue => {
    const v = stack[stack.length - 1];
    if (v === undefined || v === MARK) return fail('stack underflow');
    return v;
  };
  const popMark = (): PyValue[] => {
    const at = stack.lastIndexOf(MARK);
    if (at < 0) fail('no MARK');
    const out = stack.splice(at) as PyValue[];
    out.shift();
    return out;
  };
  const dictKey = (k: PyValue): PyKey => {
    if (typeof k === 'string' || typeof k === 'number') return k;
    return fail(`a dict key of type ${describe(k)} (only strings and numbers are read)`);
  };
  const setItems = (target: PyValue, kv: PyValue[]) => {
    if (!(target instanceof Map)) return fail(`SETITEM on ${describe(target)}`);
    for (let i = 0; i + 1 < kv.length; i += 2) target.set(dictKey(kv[i]), kv[i + 1]);
  };
  const append = (target: PyValue, values: PyValue[]) => {
    if (!Array.isArray(target)) return fail(`APPEND on ${describe(target)}`);
    for (const v of values) target.push(v);
  };
  const memoGet = (i: number) => {
    const v = memo.get(i);
    if (v === undefined) fail(`memo slot ${i} is empty`);
    return v as PyValue;
  };
  const intOf = (b: Uint8Array): number | bigint => {
    if (b.length === 0) return 0;
    let v = 0n;
    for (let i = b.length - 1; i >= 0; i--) v = (v << 8n) | BigInt(b[i]);
    if (b[b.length - 1] & 0x80) v -= 1n << BigInt(8 * b.length);
    return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
  };

  for (;;) {
    const op = u8();
    switch (op) {
      case 0x80: { // PROTO
        const proto = u8();
        if (proto > 5) fail(`pickle protocol ${proto} is newer than 5`);
        break;
      }
      case 0x95: u64(); break; // FRAME: a length hint only
      case 0x2e: { // STOP
        const value = pop();
        return { value, end: pos };
      }
      case 0x28: stack.push(MARK); break; // MARK
      case 0x7d: push(new Map()); break; // EMPTY_DICT
      case 0x5d: push([]); break; // EMPTY_LIST
      case 0x29: push(new PyTuple([])); break; // EMPTY_TUPLE
      case 0x4e: push(null); break; // NONE
      case 0x88: push(true); break; // NEWTRUE
      case 0x89: push(false); break; // NEWFALSE
      case 0x4b: push(u8()); break; // BININT1
      case 0x4d: push(u16()); break; // BININT2
      case 0x4a: push(i32()); break; // BININT
      case 0x8a: push(intOf(take(u8()))); break; // LONG1
      case 0x8b: { // LONG4
        const n = i32();
        if (n > 1024) fail('an integer of more than 1024 bytes');
        push(intOf(take(n)));
        break;
      }
      case 0x47: need(8); push(view.getFloat64(pos, false)); pos += 8; break; // BINFLOAT (big-endian)
      case 0x58: push(text(u32())); break; // BINUNICODE
      case 0x8c: push(text(u8())); break; // SHORT_BINUNICODE
      case 0x8d: push(text(u64())); break; // BINUNICODE8
      case 0x55: push(text(u8())); break; // SHORT_BINSTRING (py2 str: torch's legacy files)
      case 0x54: { // BINSTRING
        const n = i32();
        push(text(n));
        break;
      }
      case 0x43: push(take(u8()).slice()); break; // SHORT_BINBYTES
      case 0x42: push(take(u32()).slice()); break; // BINBYTES
      case 0x8e: push(take(u64()).slice()); break; // BINBYTES8
      case 0x71: memo.set(u8(), top()); break; // BINPUT
      case 0x72: memo.set(u32(), top()); break; // LONG_BINPUT
      case 0x94: memo.set(memo.size, top()); break; // MEMOIZE
      case 0x68: push(memoGet(u8())); break; // BINGET
      case 0x6a: push(memoGet(u32())); break; // LONG_BINGET
      case 0x30: pop(); break; // POP
      case 0x31: popMark(); break; // POP_MARK
      case 0x32: push(top()); break; // DUP
      case 0x74: push(new PyTuple(popMark())); break; // TUPLE
      case 0x85: push(new PyTuple([pop()])); break; // TUPLE1
      case 0x86: { // TUPLE2
        const b = pop();
        push(new PyTuple([pop(), b]));
        break;
      }
      case 0x87: { // TUPLE3
        const c = pop();
        const b = pop();
        push(new PyTuple([pop(), b, c]));
        break;
      }
      case 0x6c: push(popMark()); break; // LIST
      case 0x64: { // DICT
        const d = new Map<PyKey, PyValue>();
        setItems(d, popMark());
        push(d);
        break;
      }
      case 0x73: { // SETITEM
        const v = pop();
        const k = pop();
        setItems(top(), [k, v]);
        break;
      }
      case 0x75: { // SETITEMS
        const kv = popMark();
        setItems(top(), kv);
        break;
      }
      case 0x61: { // APPEND
        const v = pop();
        append(top(), [v]);
        break;
      }
      case 0x65: { // APPENDS
        const vs = popMark();
        append(top(), vs);
        break;
      }
      case 0x63: { // GLOBAL: "module\nname\n"
        const module = line();
        push(allowedGlobal(module, line()));
        break;
      }
      case 0x93: { // STACK_GLOBAL
        const name = pop();
        const module = pop();
        if (typeof module !== 'string' || typeof name !== 'string') fail('STACK_GLOBAL without two strings');
        push(allowedGlobal(module as string, name as string));
        break;
      }
      case 0x52: { // REDUCE: callable(*args), only for the allowed globals
        const args = pop();
        const fn = pop();
        push(reduce(fn, args, fail));
        break;
      }
      case 0x51: { // BINPERSID
        const pid = pop();
        if (!options.persistentLoad) fail('a persistent id outside a torch checkpoint');
        push(options.persistentLoad!(pid));
        break;
      }
      case 0x62: { // BUILD: only the no-op state torch writes for plain tensors
        const state = pop();
        const target = top();
        const empty = state === null || (state instanceof Map && state.size === 0) || (state instanceof PyTuple && state.items.every((s) => s === null || (s instanceof Map && s.size === 0)));
        if (!empty) fail(`BUILD with state on ${describe(target)} (objects with state are not read)`);
        break;
      }
      default:
        fail(`opcode 0x${op.toString(16).padStart(2, '0')} is not read by this loader (not a plain weights pickle)`);
    }
  }
}

export function describe(v: PyValue | undefined): string {
  if (v === null) return 'None';
  if (v instanceof PyTuple) return 'tuple';
  if (v instanceof Map) return 'dict';
  if (Array.isArray(v)) return 'list';
  if (v instanceof Uint8Array) return 'bytes';
  if (typeof v === 'object' && v && 'kind' in v) return v.kind === 'global' ? `global ${v.name}` : v.kind;
  return typeof v;
}

const intList = (v: PyValue, what: string, fail: (why: string) => never): number[] => {
  if (!(v instanceof PyTuple) || v.items.length > MAX_DIMS) return fail(`${what} is not a tuple of up to ${MAX_DIMS} integers`);
  return v.items.map((x) => {
    if (typeof x !== 'number' || !Number.isInteger(x) || x < 0) return fail(`${what} holds ${String(x)}, not a non-negative integer`);
    return x;
  });
};

function reduce(fn: PyValue, args: PyValue, fail: (why: string) => never): PyValue {
  if (!(args instanceof PyTuple)) return fail('REDUCE without an argument tuple');
  if (typeof fn !== 'object' || fn === null || !('kind' in fn) || fn.kind !== 'global') return fail(`REDUCE on ${describe(fn)}`);
  const a = args.items;
  switch (fn.name) {
    case 'OrderedDict':
      if (a.length !== 0) fail('OrderedDict with arguments');
      return new Map();
    case 'rebuild_parameter': {
      // _rebuild_parameter(data, requires_grad, backward_hooks): the tensor is all we keep.
      const t = a[0];
      if (!(typeof t === 'object' && t !== null && 'kind' in t && t.kind === 'tensor')) return fail('_rebuild_parameter without a tensor');
      return t;
    }
    case 'rebuild_tensor':
    case 'rebuild_tensor_v2': {
      // (storage, storage_offset, size, stride, [requires_grad, backward_hooks, metadata])
      const [storage, offset, size, stride] = a;
      if (!(typeof storage === 'object' && storage !== null && 'kind' in storage && storage.kind === 'storage')) return fail('a tensor rebuild without a storage');
      if (typeof offset !== 'number' || !Number.isInteger(offset) || offset < 0) return fail('a tensor rebuild with a bad storage offset');
      const shape = intList(size, 'a tensor size', fail);
      const strides = intList(stride, 'a tensor stride', fail);
      if (strides.length !== shape.length) fail('a tensor with as many strides as dimensions');
      // The last element a view reaches must lie inside its storage.
      const reach = shape.some((d) => d === 0) ? 0 : shape.reduce((r, d, i) => r + (d - 1) * strides[i], 1);
      if (offset + reach > storage.elements) fail(`a tensor view reaching element ${offset + reach} of a storage of ${storage.elements}`);
      return { kind: 'tensor', storage, storageOffset: offset, shape, strides };
    }
    case 'storage':
      return fail('a storage class called directly (only persistent ids name storages)');
  }
}

/** The dtype of a storage class global (inside torch's persistent ids). */
export function storageDType(v: PyValue): TorchDType | undefined {
  return typeof v === 'object' && v !== null && 'kind' in v && v.kind === 'global' && v.name === 'storage' ? v.dtype : undefined;
}
