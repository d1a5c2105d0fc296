/** A studio in tests: GPU worker processes (the fake pipeline) and a front door on a test Redis. */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startBridge, type Bridge } from '../../bridge/server.ts';
import { parseRedisUrl } from '../../bridge/studio/redis-target.ts';
import { bridgeOptions, FAKE_FACTORY } from '../support/bridge.ts';
import type { FakeOptions } from '../support/fake-pipeline.ts';
import { TestChild } from '../support/child-process.ts';
import { REDIS_PASSWORD, type TestRedis } from './redis-server.ts';

/** Seconds, not BullMQ's 30: a killed worker's job runs again within about LOCK_MS + STALLED_MS. */
export const TIMINGS = { lockMs: 1500, stalledMs: 500, heartbeatMs: 300 };
export const CHECK_MS = 200;

export class WorkerProcess {
  private constructor(
    readonly name: string,
    private readonly child: TestChild,
  ) {}

  /** What it printed so far, line by line. */
  get output(): string[] {
    return this.child.lines();
  }

  get exited(): Promise<number | null> {
    return this.child.exited;
  }

  /**
   * Starts `npm run worker` (as node + tsx) and waits until it says it is ready. `factory` null:
   * the real pipeline (the tiny model); `timings` other lock and check times (benchmarks);
   * `nodeArgs` go before the script (a preloaded probe).
   */
  static async start(
    redis: TestRedis,
    name: string,
    fake: FakeOptions = {},
    factory: string | null = FAKE_FACTORY,
    o: { timings?: Partial<typeof TIMINGS>; nodeArgs?: string[] } = {},
  ): Promise<WorkerProcess> {
    const t = { ...TIMINGS, ...o.timings };
    const child = TestChild.spawn(
      process.execPath,
      [
        '--import', 'tsx', ...(o.nodeArgs ?? []), 'bridge/studio/worker-cli.ts',
        '--queue', redis.url, '--name', name,
        ...(factory === null ? [] : ['--pipeline', factory, '--pipeline-options', JSON.stringify({ stepMs: 40, ...fake })]),
        '--lock-ms', String(t.lockMs), '--stalled-ms', String(t.stalledMs), '--heartbeat-ms', String(t.heartbeatMs),
      ],
      { cwd: join(import.meta.dirname, '../..'), env: { ...process.env, ART_REDIS_PASSWORD: REDIS_PASSWORD } },
    );
    await child.ready(/\] ready: model/, `worker ${name}`);
    return new WorkerProcess(name, child);
  }

  kill(signal: NodeJS.Signals): void {
    this.child.kill(signal);
  }

  async stop(): Promise<void> {
    this.kill('SIGTERM');
    await this.exited;
  }
}

export interface TestFrontDoor {
  bridge: Bridge;
  url: string;
  outputs: string;
  log: string[];
  close(): Promise<void>;
}

export async function startFrontDoor(redis: TestRedis, limits: { jobsPerClient?: number; queueLength?: number } = {}, stalledMs = TIMINGS.stalledMs): Promise<TestFrontDoor> {
  const outputs = await mkdtemp(join(tmpdir(), 'art-frontdoor-test-'));
  const parsed = parseRedisUrl(redis.url, { ART_REDIS_PASSWORD: REDIS_PASSWORD });
  if (!parsed.ok) throw new Error(parsed.error);
  const log: string[] = [];
  const bridge = await startBridge(
    bridgeOptions(outputs, {
      keepJobs: 50,
      executor: { kind: 'queue', target: parsed.target, checkMs: CHECK_MS, stalledMs },
      cancelOnShutdown: true,
      limits: { jobsPerClient: 8, ...limits },
      log: (line) => {
        log.push(line);
        if (process.env.STUDIO_DEBUG) console.log(`${(performance.now() / 1000).toFixed(2)} ${line}`);
      },
    }),
  );
  return {
    bridge,
    url: `ws://127.0.0.1:${bridge.port}`,
    outputs,
    log,
    async close() {
      await bridge.close();
      await rm(outputs, { recursive: true, force: true });
    },
  };
}

/** The worker each job started on, in start order, from the front door's log. */
export function starts(log: readonly string[]): { jobId: string; worker: string }[] {
  return log.flatMap((l) => {
    const m = /^job (\S+) started on worker (\S+)$/.exec(l);
    return m ? [{ jobId: m[1], worker: m[2] }] : [];
  });
}
