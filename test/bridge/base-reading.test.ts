/**
 * A job that keeps layers of a base reads the base while it already holds its place on the executor:
 * another job starts meanwhile when the executor has room (a studio with several GPU workers), and
 * a base that can no longer be read fails its own job only. Driven through `JobLifecycle` with a executor of
 * two slots that keeps the JobExecutor contract of bridge/executor.ts (start claims a slot at once,
 * `jobRequest` awaits the base, capacity listeners are called after a job ends).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PACKED_CHANNELS } from '../../gpu-server/constants.ts';
import { transformerTokens } from '../../gpu-server/pipeline/layout-tokens.ts';
import type { PipelineInfo } from '../../gpu-server/pipeline/types.ts';
import { JobLifecycle, type Subscriber } from '../../bridge/job-lifecycle.ts';
import type { BridgeMessage, GenerateMessage } from '../../bridge/protocol/messages.ts';
import { jobRequest, type JobResult, type JobRun, type JobExecutor, type RunEvents, type ExecutorJob, type StartCheck } from '../../bridge/executor.ts';
import { generateMessage } from '../support/bridge.ts';

const INFO: PipelineInfo = { model: 'two-slot', provider: 'cpu', tiny: true, maxLayers: 52, resolutions: [128], jobs: ['generate'] };

/** Two jobs at once; closed until `open()`. Each job ends when the test calls `release(prompt)`. */
class TwoSlotExecutor implements JobExecutor {
  readonly log: string[] = [];
  private running = 0;
  private gate = false;
  private readonly listeners: (() => void)[] = [];
  private readonly releases = new Map<string, () => void>();
  private readonly released = new Set<string>();

  models(): PipelineInfo[] {
    return [INFO];
  }
  canStart(): StartCheck {
    return this.gate && this.running < 2 ? { ok: true } : { ok: false };
  }
  start(job: ExecutorJob, _events: RunEvents): JobRun {
    this.running++;
    const name = job.params.prompt;
    this.log.push(`start ${name}`);
    const result = (async (): Promise<JobResult> => {
      const request = await jobRequest(job);
      if (request.kind !== 'generate') throw new Error('this executor generates only');
      const { params } = request;
      if (params.base) this.log.push(`${name} has its base`);
      if (!this.released.has(name)) await new Promise<void>((resolve) => this.releases.set(name, resolve));
      const grid = transformerTokens(params.layout);
      const kept = new Set(params.base?.keep.map((k) => k.to));
      return {
        layers: params.layout.boxes.flatMap((box, index) => (kept.has(index) ? [] : [{ index, box, width: box[2] - box[0], height: box[3] - box[1], png: new Uint8Array([index, 1, 2, 3]) }])),
        seed: params.seed,
        model: INFO.model,
        provider: INFO.provider,
        tiny: true,
        promptTruncated: false,
        timings: {},
        latents: { layout: params.layout, tokens: new Float32Array(grid.count * PACKED_CHANNELS).fill(0.25) },
      };
    })().finally(() => {
      this.running--;
      queueMicrotask(() => this.listeners.forEach((l) => l()));
    });
    return { result, cancel: () => {} };
  }
  close(): void {
    this.gate = false;
  }
  open(): void {
    this.gate = true;
    this.listeners.forEach((l) => l());
  }
  release(name: string): void {
    this.released.add(name);
    this.releases.get(name)?.();
  }
  onCapacity(listener: () => void): void {
    this.listeners.push(listener);
  }
  health(): Record<string, unknown> {
    return {};
  }
  async dispose(): Promise<void> {}
}

class Inbox implements Subscriber {
  readonly id = 'designer';
  readonly open = true;
  readonly messages: BridgeMessage[] = [];
  private waiters: (() => void)[] = [];
  send(message: BridgeMessage): void {
    this.messages.push(message);
    this.waiters.forEach((w) => w());
  }
  sendFrame(): void {}
  async drained(): Promise<boolean> {
    return true;
  }
  async next(match: (m: BridgeMessage) => boolean): Promise<BridgeMessage> {
    for (;;) {
      const found = this.messages.find(match);
      if (found) return found;
      await new Promise<void>((resolve) => this.waiters.push(resolve));
    }
  }
}

const request = (prompt: string, base?: GenerateMessage['base']): GenerateMessage => ({ ...(generateMessage(prompt, { prompt }) as GenerateMessage), ...(base ? { base } : {}) });

test('a job reading its base does not stop another from starting; a base gone meanwhile fails its own job only', async () => {
  const outputs = await mkdtemp(join(tmpdir(), 'art-base-reading-'));
  const executor = new TwoSlotExecutor();
  const jobs = await JobLifecycle.open({ outputs, keepJobs: 10, executor, cancelOnShutdown: true, limits: { jobsPerClient: 8, queueLength: 8, progressIntervalMs: 0 }, log: () => {} });
  const inbox = new Inbox();
  const queuedFor = async (prompt: string) => {
    const q = await inbox.next((m) => m.type === 'queued' && m.requestId === prompt);
    return q.type === 'queued' ? q.jobId : '';
  };
  const doneOf = (jobId: string) => inbox.next((m) => (m.type === 'done' || m.type === 'error') && m.jobId === jobId);
  try {
    executor.open();
    jobs.submit(inbox, request('base'), INFO.model);
    const baseId = await queuedFor('base');
    executor.release('base');
    assert.equal((await doneOf(baseId)).type, 'done');

    // While the executor is full, queue the keeping job first, then a plain one behind it.
    executor.close();
    jobs.submit(inbox, request('keeper', { jobId: baseId, keep: [{ from: 2, to: 2 }] }), INFO.model);
    const keeperId = await queuedFor('keeper');
    jobs.submit(inbox, request('plain'), INFO.model);
    const plainId = await queuedFor('plain');
    executor.log.length = 0;
    executor.open();
    // Both start in the same turn: the plain job does not wait for the keeper's base read.
    assert.deepEqual(executor.log.slice(0, 2), ['start keeper', 'start plain']);
    executor.release('plain');
    assert.equal((await doneOf(plainId)).type, 'done');
    await new Promise((r) => setTimeout(r, 10));
    assert.ok(executor.log.includes('keeper has its base'), executor.log.join(', '));
    executor.release('keeper');
    const keeperDone = await doneOf(keeperId);
    assert.ok(keeperDone.type === 'done' && keeperDone.base?.jobId === baseId);

    // A base pruned between queueing and starting: that job gets base_not_found, the next one runs.
    executor.close();
    jobs.submit(inbox, request('late', { jobId: baseId, keep: [{ from: 2, to: 2 }] }), INFO.model);
    const lateId = await queuedFor('late');
    jobs.submit(inbox, request('after'), INFO.model);
    const afterId = await queuedFor('after');
    await rm(join(outputs, baseId), { recursive: true });
    executor.open();
    const late = await doneOf(lateId);
    assert.ok(late.type === 'error' && late.code === 'base_not_found' && /can no longer be read/.test(late.message), JSON.stringify(late));
    executor.release('after');
    assert.equal((await doneOf(afterId)).type, 'done');
  } finally {
    await jobs.shutdown();
    await rm(outputs, { recursive: true, force: true });
  }
});
