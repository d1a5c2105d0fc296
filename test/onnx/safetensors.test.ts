import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { floatToBf16, floatToHalf, halfToFloat } from '../../gpu-server/onnx/half.ts';
import { Checkpoint, readHeader, SafetensorsError, writeSafetensors } from '../../gpu-server/onnx/safetensors.ts';

const tmp = () => mkdtempSync(join(tmpdir(), 'st-test-'));

test('writes and reads back F32, F16, BF16 and I64 tensors by byte range', () => {
  const dir = tmp();
  const file = join(dir, 'a.safetensors');
  const values = [0.5, -2, 3.25, 1e-3];
  writeSafetensors(file, {
    f32: { dtype: 'F32', shape: [2, 2], data: Float32Array.from(values) },
    f16: { dtype: 'F16', shape: [4], data: Uint16Array.from(values, floatToHalf) },
    bf16: { dtype: 'BF16', shape: [4], data: Uint16Array.from(values, floatToBf16) },
    ids: { dtype: 'I64', shape: [3], data: BigInt64Array.from([1n, 2n, 3n]) },
  });
  const ckpt = Checkpoint.open(file);
  assert.deepEqual(ckpt.keys().sort(), ['bf16', 'f16', 'f32', 'ids']);
  assert.deepEqual([...ckpt.readFloat32('f32', [2, 2])], values.map(Math.fround));
  const f16 = ckpt.readFloat32('f16');
  const bf16 = ckpt.readFloat32('bf16');
  values.forEach((v, i) => {
    assert.ok(Math.abs(f16[i] - v) <= Math.abs(v) * 1e-3, `f16 ${f16[i]} vs ${v}`);
    assert.ok(Math.abs(bf16[i] - v) <= Math.abs(v) * 8e-3, `bf16 ${bf16[i]} vs ${v}`);
  });
  const raw = ckpt.readRaw('ids');
  assert.deepEqual([...new BigInt64Array(raw.bytes.buffer, raw.bytes.byteOffset, 3)], [1n, 2n, 3n]);
  assert.throws(() => ckpt.readFloat32('ids'), /"ids" is I64, expected a float tensor/);
});

test('half conversion rounds to nearest even and saturates to infinity', () => {
  assert.equal(halfToFloat(floatToHalf(1 + 2 ** -11)), 1); // tie -> even
  assert.equal(halfToFloat(floatToHalf(1 + 3 * 2 ** -11)), 1 + 2 ** -9);
  assert.equal(halfToFloat(floatToHalf(70000)), Infinity);
  assert.equal(halfToFloat(floatToHalf(2 ** -24)), 2 ** -24);
});

test('opens a sharded checkpoint through its index and checks the index against the shards', () => {
  const dir = tmp();
  writeSafetensors(join(dir, 'model-00001-of-00002.safetensors'), { a: { dtype: 'F32', shape: [1], data: Float32Array.of(1) } });
  writeSafetensors(join(dir, 'model-00002-of-00002.safetensors'), { b: { dtype: 'F32', shape: [2], data: Float32Array.of(2, 3) } });
  const index = { metadata: {}, weight_map: { a: 'model-00001-of-00002.safetensors', b: 'model-00002-of-00002.safetensors' } };
  writeFileSync(join(dir, 'model.safetensors.index.json'), JSON.stringify(index));
  const ckpt = Checkpoint.open(dir);
  assert.deepEqual([...ckpt.readFloat32('b')], [2, 3]);
  assert.match(ckpt.info('a').file, /00001/);

  writeFileSync(join(dir, 'model.safetensors.index.json'), JSON.stringify({ weight_map: { ...index.weight_map, c: 'model-00003-of-00002.safetensors' } }));
  assert.throws(() => Checkpoint.open(dir), /model-00003-of-00002\.safetensors is missing/);
});

test('a truncated file names the file and the tensor that runs past its end', () => {
  const dir = tmp();
  const file = join(dir, 'cut.safetensors');
  writeSafetensors(file, { first: { dtype: 'F32', shape: [4], data: new Float32Array(4) }, second: { dtype: 'F32', shape: [64], data: new Float32Array(64) } });
  truncateSync(file, readFileSync(file).length - 10);
  assert.throws(() => Checkpoint.open(file), (e: Error) => e instanceof SafetensorsError && e.message.includes(file) && e.message.includes('"second"') && /truncated/.test(e.message));
  truncateSync(file, 5);
  assert.throws(() => readHeader(file), /truncated/);
});

test('a bad header is reported, not parsed as garbage', () => {
  const dir = tmp();
  const file = join(dir, 'bad.safetensors');
  const json = Buffer.from('{"x": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]'); // cut JSON
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  writeFileSync(file, Buffer.concat([len, json, Buffer.alloc(8)]));
  assert.throws(() => readHeader(file), /header is not valid JSON/);

  const huge = Buffer.alloc(8);
  huge.writeBigUInt64LE(1n << 40n);
  writeFileSync(file, Buffer.concat([huge, Buffer.alloc(16)]));
  assert.throws(() => readHeader(file), /bad header length/);

  const wrong = Buffer.from(JSON.stringify({ x: { dtype: 'F32', shape: [3], data_offsets: [0, 8] } }));
  len.writeBigUInt64LE(BigInt(wrong.length));
  writeFileSync(file, Buffer.concat([len, wrong, Buffer.alloc(12)]));
  assert.throws(() => readHeader(file), /"x" spans 8 bytes but F32\[3\] needs 12/);
});

test('a missing or mis-shaped tensor names the checkpoint and the tensor', () => {
  const dir = tmp();
  const file = join(dir, 'w.safetensors');
  writeSafetensors(file, { 'proj.weight': { dtype: 'F32', shape: [2, 3], data: new Float32Array(6) } });
  const ckpt = Checkpoint.open(file);
  assert.throws(() => ckpt.readFloat32('proj.bias'), (e: Error) => e.message.includes(file) && e.message.includes('"proj.bias" is missing'));
  assert.throws(() => ckpt.readFloat32('proj.weight', [3, 2]), /"proj.weight" has shape \[2,3\] but the config needs \[3,2\]/);
});
