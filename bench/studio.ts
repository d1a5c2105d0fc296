/**
 * Studio benchmark: the single-machine bridge against a front door with one and with two GPU
 * worker processes on a local redis-server, in the same run, with the same stand-in pipeline
 * (test/support/bridge.ts samplePipeline: thread-holding steps, real image content). Prints throughput of N
 * jobs, the latency of one job's milestones (queued, first progress, first and last layer, done) as ratios to the
 * single-machine bridge, and the bytes that travel through Redis per job.
 * Run: `npx tsx bench/studio.ts [--jobs 6] [--steps 10] [--step-ms 30]`.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import type { BoxTuple } from '../domain/layout.ts';
import { startBridge } from '../bridge/server.ts';
import { TestClient, bridgeOptions, collectJob, sampleOptions, samplePipeline } from '../test/support/bridge.ts';
import { TestRedis, REDIS_PASSWORD } from '../test/studio/redis-server.ts';
import { WorkerProcess, startFrontDoor } from '../test/studio/studio-helpers.ts';
import { fixed, machineLine, median, table } from './stats.ts';


export interface StudioBenchOptions {
  jobs: number;
  steps: number;
  stepMs: number;
}
export const DEFAULT_STUDIO_OPTIONS: StudioBenchOptions = { jobs: 6, steps: 10, stepMs: 30 };

export const HOW_TO_READ = `How to read: the same stand-in pipeline (each step holds its thread for step-ms, as onnxruntime
does; layers are real image content, so PNGs have real sizes) behind the single-machine bridge and
behind a studio front door with 1 and 2 GPU worker processes on a local redis-server. Every process
shares this machine's cores: on 2 cores two "GPU" workers compete for the CPU (PNG encoding), so the
2-worker ratio shows the queue's overhead, not the speedup two real GPUs give. Latencies are from the
client's send of "generate" to each milestone (the first and the last layer's frame received, and
"done", sent once the job is stored), median of the single-job runs, as ratios to the
single-machine bridge. Redis bytes: Redis's own network counters (in + out) over the single-job runs,
per job: the layers and latents go in and come out once, plus BullMQ's bookkeeping and events.`;

const BOXES: BoxTuple[] = [[0, 0, 512, 512], [0, 0, 512, 512], [32, 32, 256, 256], [256, 32, 480, 256], [32, 256, 480, 480], [128, 128, 384, 384]];
const LAYERS = BOXES.length;

function message(i: number, steps: number) {
  const boxes = BOXES;
  return { type: 'generate', requestId: `r${i}`, prompt: 'a poster', layout: { width: 512, height: 512, boxes }, params: { resolution: 512, steps, guidance: 4, trueCfg: 3.5, seed: 100 + i } };
}

interface Milestones {
  queued: number;
  firstProgress: number;
  firstLayer: number;
  lastLayer: number;
  /** After the last layer: the result is stored (on a front door, the worker's completion came back first). */
  done: number;
}
const MILESTONES = ['queued', 'firstProgress', 'firstLayer', 'lastLayer', 'done'] as const;

async function oneJob(url: string, i: number, steps: number): Promise<Milestones> {
  const client = await TestClient.paired(url);
  const t0 = performance.now();
  client.send(message(i, steps));
  const q = await client.next((m) => m.type === 'queued', 60_000);
  const queued = performance.now() - t0;
  const jobId = (q as { jobId: string }).jobId;
  await client.next((m) => m.type === 'progress', 60_000);
  const firstProgress = performance.now() - t0;
  const layerFrame = (index: number) => client.next((m) => m.type === 'binary' && m.frame.kind === 'layer' && m.frame.layerIndex === index, 60_000);
  await layerFrame(0);
  const firstLayer = performance.now() - t0;
  await layerFrame(LAYERS - 1);
  const lastLayer = performance.now() - t0;
  await collectJob(client, jobId, 60_000);
  const done = performance.now() - t0;
  client.close();
  return { queued, firstProgress, firstLayer, lastLayer, done };
}

async function manyJobs(url: string, o: StudioBenchOptions): Promise<number> {
  const clients = await Promise.all([TestClient.paired(url), TestClient.paired(url)]);
  const t0 = performance.now();
  const ids: Promise<unknown>[] = [];
  for (let i = 0; i < o.jobs; i++) {
    const c = clients[i % 2];
    c.send(message(i, o.steps));
    const q = await c.next((m) => m.type === 'queued' && 'requestId' in m && m.requestId === `r${i}`, 60_000);
    ids.push(collectJob(c, (q as { jobId: string }).jobId, 120_000));
  }
  await Promise.all(ids);
  clients.forEach((c) => c.close());
  return performance.now() - t0;
}

async function measure(url: string, o: StudioBenchOptions, singles = 3) {
  await oneJob(url, 99, o.steps); // warm-up: threads, compile caches
  const runs: Milestones[] = [];
  for (let i = 0; i < singles; i++) runs.push(await oneJob(url, i, o.steps));
  const pick = (k: keyof Milestones) => median(runs.map((r) => r[k]));
  return { queued: pick('queued'), firstProgress: pick('firstProgress'), firstLayer: pick('firstLayer'), lastLayer: pick('lastLayer'), done: pick('done'), singles };
}

export async function main(o: StudioBenchOptions = DEFAULT_STUDIO_OPTIONS) {
  console.log(`\n== studio: front door + GPU workers on Redis vs the single-machine bridge (${o.jobs} jobs, 6 layers of up to 512x512, ${o.steps} steps x ${o.stepMs} ms) ==`);
  // single machine
  const outputs = await mkdtemp(join(tmpdir(), 'art-bench-studio-'));
  const local = await startBridge(
    bridgeOptions(outputs, { keepJobs: 50, executor: { kind: 'local', pipeline: samplePipeline(o.stepMs) }, cancelOnShutdown: true, limits: { jobsPerClient: 16 } }),
  );
  const localUrl = `ws://127.0.0.1:${local.port}`;
  const localLatency = await measure(localUrl, o);
  const localMany = await manyJobs(localUrl, o);
  await local.close();
  await rm(outputs, { recursive: true, force: true });

  const redis = await TestRedis.start();
  const probe = new Redis({ host: '127.0.0.1', port: redis.port, password: REDIS_PASSWORD });
  const netBytes = async () => {
    const info = await probe.info('stats');
    const n = (k: string) => Number(new RegExp(`${k}:(\\d+)`).exec(info)?.[1] ?? 0);
    return n('total_net_input_bytes') + n('total_net_output_bytes');
  };
  const workers = [await WorkerProcess.start(redis, 'bench-1', sampleOptions(o.stepMs))];
  const door = await startFrontDoor(redis, { jobsPerClient: 16 });
  try {
    await oneJob(door.url, 98, o.steps);
    const before = await netBytes();
    const oneLatency = await measure(door.url, o);
    const redisPerJob = ((await netBytes()) - before) / (oneLatency.singles + 1);
    const oneMany = await manyJobs(door.url, o);
    workers.push(await WorkerProcess.start(redis, 'bench-2', sampleOptions(o.stepMs)));
    await new Promise((r) => setTimeout(r, 1500)); // the front door sees the second worker's heartbeat
    await oneJob(door.url, 97, o.steps);
    const twoMany = await manyJobs(door.url, o);

    console.log(machineLine());
    console.log(table(
      ['setup', `${o.jobs} jobs (s)`, 'vs bridge'],
      [
        ['single-machine bridge', fixed(localMany / 1000, 2), '1.00x'],
        ['front door, 1 worker', fixed(oneMany / 1000, 2), `${fixed(oneMany / localMany, 2)}x`],
        ['front door, 2 workers', fixed(twoMany / 1000, 2), `${fixed(twoMany / localMany, 2)}x`],
      ],
    ));
    console.log(table(
      ['one job, milestone', 'bridge (ms)', 'front door (ms)', 'added (ms)', 'ratio'],
      MILESTONES.map((k) => [k, fixed(localLatency[k]), fixed(oneLatency[k]), fixed(oneLatency[k] - localLatency[k]), `${fixed(oneLatency[k] / localLatency[k], 2)}x`]),
    ));
    console.log(`bytes through Redis per job: ${fixed(redisPerJob / 2 ** 20, 2)} MiB (in + out, Redis's counters)`);
    console.log(HOW_TO_READ);
    return { localMany, oneMany, twoMany, localLatency, oneLatency, redisPerJob };
  } finally {
    await door.close();
    await Promise.all(workers.map((w) => w.stop()));
    probe.disconnect();
    await redis.stop();
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const args = process.argv.slice(2);
  const num = (flag: string, fallback: number) => {
    const i = args.indexOf(flag);
    return i >= 0 ? Number(args[i + 1]) : fallback;
  };
  await main({ jobs: num('--jobs', DEFAULT_STUDIO_OPTIONS.jobs), steps: num('--steps', DEFAULT_STUDIO_OPTIONS.steps), stepMs: num('--step-ms', DEFAULT_STUDIO_OPTIONS.stepMs) });
  process.exit(0);
}
