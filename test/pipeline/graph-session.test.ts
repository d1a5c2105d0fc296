import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { GraphBuilder, memoryWeights } from '../../gpu-server/onnx/graph.ts';
import { writeModel } from '../../gpu-server/onnx/onnx-writer.ts';
import { openSession } from '../../gpu-server/onnx/session.ts';
import { GraphSession, GraphSlot } from '../../gpu-server/pipeline/graph-session.ts';

async function sumGraph(precision: 'float32' | 'float16'): Promise<GraphSession> {
  const g = new GraphBuilder('sum', precision, memoryWeights('none', new Map()));
  g.output(g.op('Add', [g.input('a', 'float', [2]), g.input('b', 'float', [2])]), 'y', 'float', [2]);
  const path = join(mkdtempSync(join(tmpdir(), 'graph-session-')), 'sum.onnx');
  writeModel(g, path);
  return new GraphSession('sum', (await openSession(path, 'cpu')).session);
}

test('an fp16 graph takes float32 feeds and gives float32 back; constant feeds are converted once and stay right', async () => {
  const graph = await sumGraph('float16');
  const b = Float32Array.of(0.5, -2);
  const first = await graph.run({ a: { data: Float32Array.of(1, 2), dims: [2] }, b: { data: b, dims: [2], constant: true } }, ['y']);
  const second = await graph.run({ a: { data: Float32Array.of(3, 4), dims: [2] }, b: { data: b, dims: [2], constant: true } }, ['y']);
  assert.deepEqual([...first.y.data], [1.5, 0]);
  assert.deepEqual([...second.y.data], [3.5, 2]);
  await assert.rejects(graph.run({ c: { data: b, dims: [2] } }, ['y']), /graph sum has no input "c" \(inputs: a, b\)/);
  await graph.release();
});

test('a slot that is not resident opens for each use and is released after the last one', async () => {
  let opened = 0;
  const slot = new GraphSlot('sum', async () => (opened++, sumGraph('float32')), false);
  const feeds = { a: { data: Float32Array.of(1, 1), dims: [2] }, b: { data: Float32Array.of(2, 2), dims: [2] } };
  const [x, y] = await Promise.all([slot.run(feeds, ['y']), slot.run(feeds, ['y'])]);
  assert.deepEqual([...x.y.data, ...y.y.data], [3, 3, 3, 3]);
  assert.equal(opened, 1, 'two runs at once share one open session');
  await slot.run(feeds, ['y']);
  assert.equal(opened, 2, 'released after use, opened again');
});
