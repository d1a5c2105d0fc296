/**
 * The restricted torch checkpoint reader on real `torch.save` files (test/fixtures/torch-checkpoints,
 * with expected.json: every tensor's dtype, shape and the sha256 of its contiguous bytes), and on
 * hostile or damaged input: refused by name, nothing run, nothing written.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { formatReport, reportPasses } from '../../gpu-server/golden/compare.ts';
import { check as checkTranspVae } from '../../gpu-server/golden/transp_vae-case.ts';
import { checkpointWeights } from '../../gpu-server/onnx/graph.ts';
import { unpickle } from '../../gpu-server/onnx/pickle.ts';
import { Checkpoint } from '../../gpu-server/onnx/safetensors.ts';
import { TorchCheckpoint, TorchCheckpointError } from '../../gpu-server/onnx/torch-checkpoint.ts';

const DIR = new URL('../fixtures/torch-checkpoints/', import.meta.url).pathname;
const GOLDEN = new URL('../fixtures/golden/', import.meta.url).pathname;
type Expected = { dtype: string; shape: number[]; sha256_of_contiguous_little_endian_bytes: string; first: number[] };
const expected = JSON.parse(readFileSync(join(DIR, 'expected.json'), 'utf8')) as Record<string, Record<string, Expected>>;
const DTYPE: Record<string, string> = { float32: 'F32', float16: 'F16', bfloat16: 'BF16', int64: 'I64' };
const scratch = mkdtempSync(join(tmpdir(), 'torch-ckpt-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

function checkAgainstExpected(file: string, select = '', prefix = '') {
  const ckpt = TorchCheckpoint.open(join(DIR, file) + (select ? `#${select}` : ''));
  const want = Object.entries(expected[file]).filter(([name]) => name.startsWith(prefix));
  assert.deepEqual(ckpt.keys().sort(), want.map(([n]) => n.slice(prefix.length)).sort(), file);
  for (const [full, e] of want) {
    const name = full.slice(prefix.length);
    const info = ckpt.info(name);
    assert.equal(info.dtype, DTYPE[e.dtype], `${file} ${name} dtype`);
    assert.deepEqual(info.shape, e.shape, `${file} ${name} shape`);
    const bytes = ckpt.readContiguous(name);
    assert.equal(createHash('sha256').update(bytes).digest('hex'), e.sha256_of_contiguous_little_endian_bytes, `${file} ${name} bytes`);
    if (info.dtype !== 'I64') assert.deepEqual([...ckpt.readFloat32(name).slice(0, e.first.length)], e.first, `${file} ${name} values`);
  }
}

test('a bare tensor and a dict of one tensor (layer_pe shapes) load as expected.json says', () => {
  checkAgainstExpected('layer_pe_bare.pt');
  checkAgainstExpected('layer_pe_dict.pth');
  assert.deepEqual(TorchCheckpoint.open(join(DIR, 'layer_pe_bare.pt')).keys(), ['']);
});

test('a nested training checkpoint: float16, bfloat16, a transposed view, shared storage at offsets, a 0-d tensor, int64', () => {
  checkAgainstExpected('nested_state_dict.pt');
  // Selecting the weights: names are relative to the selection, the optimizer and step are not tensors.
  checkAgainstExpected('nested_state_dict.pt', 'model', 'model.');
  const c = TorchCheckpoint.open(join(DIR, 'nested_state_dict.pt#model'));
  const transposed = c.info('decoder.transposed');
  assert.deepEqual(transposed.strides, [1, 8]);
  // row_2_to_4 is a view at element offset 16 into the storage the transposed tensor uses.
  const row = c.info('decoder.row_2_to_4');
  assert.equal(row.storageOffset, 16);
  assert.equal(row.storageStart, transposed.storageStart);
});

test('a legacy (pre-1.6, non-zip) file is read, the same tensors as the zip form', () => {
  checkAgainstExpected('legacy_format.pt');
  checkAgainstExpected('legacy_format.pt', 'model', 'model.');
});

test('the golden transparent decoder as a .pt gives the safetensors tensors bit for bit', () => {
  const pt = TorchCheckpoint.open(join(DIR, 'transp_vae_golden.pt#model'));
  const st = Checkpoint.open(join(GOLDEN, 'transp_vae', 'weights.safetensors'));
  assert.equal(pt.keys().length, 30);
  assert.deepEqual(pt.keys().sort(), st.keys().sort());
  for (const key of st.keys()) {
    assert.deepEqual(pt.info(key).shape, st.info(key).shape, key);
    assert.ok(Buffer.from(pt.readContiguous(key)).equals(st.readRaw(key).bytes), key);
  }
});

test('the hostile pickle (GLOBAL posix system + REDUCE) is refused, naming the global; nothing runs', () => {
  const marker = join(scratch, 'ran');
  assert.throws(
    () => TorchCheckpoint.open(join(DIR, 'hostile.pt')),
    (e: unknown) => e instanceof TorchCheckpointError && /refused to load: the pickle names the global posix\.system/.test(e.message) && /nothing in the file is run/.test(e.message),
  );
  // The same attack made here with a command that would leave a trace: refused, no trace.
  const pickle = Buffer.concat([Buffer.from([0x80, 2]), Buffer.from('cposix\nsystem\n', 'latin1'), Buffer.from([0x58]), u32(`touch ${marker}`.length), Buffer.from(`touch ${marker}`), Buffer.from([0x85, 0x52, 0x2e])]);
  assert.throws(() => unpickle(pickle), /global posix\.system/);
  for (const [mod, name] of [['builtins', 'eval'], ['subprocess', 'Popen'], ['torch', 'load'], ['torch._utils', '_rebuild_qtensor'], ['__builtin__', 'getattr'], ['torch', 'constructor']]) {
    const p = Buffer.concat([Buffer.from([0x80, 2]), Buffer.from(`c${mod}\n${name}\n`, 'latin1'), Buffer.from([0x29, 0x52, 0x2e])]);
    assert.throws(() => unpickle(p), new RegExp(`global ${mod.replace('.', '\\.')}\\.${name}`), `${mod}.${name}`);
  }
  assert.ok(!existsSync(marker));
});

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n);
  return b;
}

test('damaged files are refused with the problem named', () => {
  const good = readFileSync(join(DIR, 'nested_state_dict.pt'));
  const cases: Array<[string, Buffer, RegExp]> = [
    ['truncated.pt', good.subarray(0, good.length - 200), /no zip directory|truncated|damaged/],
    ['empty.pt', Buffer.alloc(0), /neither a zip nor a legacy|truncated/],
    ['text.pt', Buffer.from('hello, not a checkpoint'), /not a readable checkpoint pickle|neither a zip nor a legacy/],
  ];
  for (const [name, bytes, re] of cases) {
    const file = join(scratch, name);
    writeFileSync(file, bytes);
    assert.throws(() => TorchCheckpoint.open(file), (e: unknown) => e instanceof TorchCheckpointError && re.test(e.message), name);
  }
  assert.throws(() => TorchCheckpoint.open(join(DIR, 'nested_state_dict.pt#weights')), /no "weights" to select in #weights \(found: model, optimizer, step, note\)/);
  assert.throws(() => TorchCheckpoint.open(join(scratch, 'missing.pt')), /cannot open/);
  // A view reaching past its storage is refused at load, before any data is read.
  const view = Buffer.concat([
    Buffer.from([0x80, 2]), Buffer.from('ctorch._utils\n_rebuild_tensor_v2\n', 'latin1'), Buffer.from([0x28, 0x28]),
    Buffer.from([0x58]), u32(7), Buffer.from('storage'), Buffer.from('ctorch\nFloatStorage\n', 'latin1'),
    Buffer.from([0x58]), u32(1), Buffer.from('0'), Buffer.from([0x58]), u32(3), Buffer.from('cpu'), Buffer.from([0x4b, 4, 0x74, 0x51]),
    Buffer.from([0x4b, 2, 0x4b, 4, 0x85, 0x4b, 1, 0x85, 0x89, 0x7d, 0x74, 0x52, 0x2e]),
  ]);
  assert.throws(() => unpickle(view, { persistentLoad: (pid) => ({ kind: 'storage', dtype: 'float32', key: '0', elements: 4, pid: String(pid) }) as never }), /reaching element 6 of a storage of 4/);
});

test('the transp_vae golden passes with its weights read from the .pt', async () => {
  const report = await checkTranspVae(join(GOLDEN, 'transp_vae'), 'cpu', checkpointWeights(TorchCheckpoint.open(join(DIR, 'transp_vae_golden.pt#model'))));
  assert.ok(reportPasses(report), formatReport(report));
});
