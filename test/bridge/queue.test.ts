import { test } from 'node:test';
import assert from 'node:assert/strict';
import { JobQueue } from '../../bridge/queue.ts';

const drain = (q: JobQueue<string>) => {
  const order: string[] = [];
  for (let job = q.start(); job; job = q.start()) {
    order.push(job.id);
    q.finish(job.id);
  }
  return order;
};

test('round-robin across clients, FIFO within one', () => {
  const q = new JobQueue<string>({ perClient: 10, global: 100 });
  for (const id of ['a1', 'a2', 'a3']) q.add(id, 'A', id);
  q.add('b1', 'B', 'b1');
  q.add('c1', 'C', 'c1');
  q.add('b2', 'B', 'b2');
  assert.deepEqual(drain(q), ['a1', 'b1', 'c1', 'a2', 'b2', 'a3']);
});

test('a client arriving late is not put behind turns already served', () => {
  const q = new JobQueue<string>({ perClient: 10, global: 100 });
  for (const id of ['a1', 'a2', 'a3', 'a4']) q.add(id, 'A', id);
  const first = q.start();
  q.finish(first!.id);
  q.start(); // a2 runs: turn 1
  q.add('b1', 'B', 'b1');
  assert.equal(q.position('b1'), 1, 'b1 runs right after a2');
  assert.equal(q.position('a3'), 2);
});

test('positions: 0 while running, jobs ahead while waiting; remove and finish update them', () => {
  const q = new JobQueue<string>({ perClient: 10, global: 100 });
  assert.deepEqual(q.add('j1', 'A', ''), { ok: true, position: 0 });
  q.start();
  assert.deepEqual(q.add('j2', 'B', ''), { ok: true, position: 1 });
  assert.deepEqual(q.add('j3', 'C', ''), { ok: true, position: 2 });
  assert.equal(q.remove('j2'), true);
  assert.equal(q.remove('j2'), false);
  assert.equal(q.remove('j1'), false, 'a running job is not removed by remove()');
  assert.equal(q.position('j3'), 1);
  q.finish('j1');
  assert.equal(q.position('j3'), 0);
  assert.equal(q.position('j1'), undefined);
});

test('per-client and global limits', () => {
  const q = new JobQueue<string>({ perClient: 2, global: 3 });
  assert.ok(q.add('a1', 'A', '').ok);
  q.start(); // running counts towards A's share
  assert.ok(q.add('a2', 'A', '').ok);
  assert.deepEqual(q.add('a3', 'A', ''), { ok: false, reason: 'client_full' });
  assert.ok(q.add('b1', 'B', '').ok);
  assert.ok(q.add('c1', 'C', '').ok);
  assert.deepEqual(q.add('d1', 'D', ''), { ok: false, reason: 'global_full' });
  assert.equal(q.waitingCount, 3);
});

test('several jobs run at once; a job that cannot start yet keeps its place and fairness holds', () => {
  const q = new JobQueue<{ model: string }>({ perClient: 10, global: 100 });
  q.add('a1', 'A', { model: 'x' });
  q.add('a2', 'A', { model: 'x' });
  q.add('a3', 'A', { model: 'x' });
  q.add('b1', 'B', { model: 'y' }); // round robin: a1, b1, a2, a3
  const onlyX = (job: { model: string }) => job.model === 'x';
  assert.equal(q.start(onlyX)?.id, 'a1');
  assert.equal(q.start(onlyX)?.id, 'a2', 'b1 (model y) is passed over, not dropped');
  assert.equal(q.runningCount, 2);
  assert.equal(q.position('b1'), 2, 'two jobs run ahead of it, and it keeps its place');
  assert.equal(q.position('a3'), 3);
  assert.equal(q.start((job) => job.model === 'y')?.id, 'b1', 'b1 starts as soon as its model can run');
  assert.equal(q.start(() => false), undefined);
  assert.deepEqual(q.runningJobs().map((j) => j.id), ['a1', 'a2', 'b1']);
  q.finish('a2');
  assert.equal(q.position('a3'), 2);
  assert.deepEqual(q.add('a4', 'A', { model: 'x' }), { ok: true, position: 3 });
});
