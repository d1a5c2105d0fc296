/** runUntilSignal, the end of `npm start` and `npm run worker`: signals are emitted in-process. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runUntilSignal } from '../../bridge/run-until-signal.ts';

const signal = (name: NodeJS.Signals) => process.emit(name, name);

test('the first signal stops gracefully (exit 0, after the stop); a second one while it runs exits at once (130); a failed stop is 1', async () => {
  const log: string[] = [];
  let finish!: () => void;
  const slow = runUntilSignal({ stop: () => new Promise<void>((r) => (finish = r)), stopping: 'stopping', again: ' (job lost)', stopped: 'stopped', log: (l) => log.push(l) });
  signal('SIGTERM');
  assert.deepEqual(log, ['SIGTERM: stopping']);
  signal('SIGINT');
  assert.equal(await slow, 130);
  assert.deepEqual(log, ['SIGTERM: stopping', 'SIGINT again: exiting now (job lost)']);
  finish();

  const second: string[] = [];
  const clean = runUntilSignal({ stop: async () => {}, stopping: 'stopping', stopped: 'stopped', log: (l) => second.push(l) });
  signal('SIGINT');
  assert.equal(await clean, 0);
  assert.deepEqual(second, ['SIGINT: stopping', 'stopped']);
  assert.deepEqual(log.slice(2), ['stopped'], 'the earlier run heard no signal since');
  assert.equal(process.listenerCount('SIGTERM'), 0);

  const failed = runUntilSignal({ stop: () => Promise.reject(new Error('stuck')), stopping: 'stopping', log: () => {} });
  signal('SIGTERM');
  assert.equal(await failed, 1);
});
