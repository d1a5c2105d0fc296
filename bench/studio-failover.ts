/**
 * Studio failover: how long a job whose GPU worker is killed (SIGKILL) mid-job waits before
 * another worker starts it again, with the lock and stalled-check times BullMQ ships with (the
 * studio's defaults before issue 22) and with the studio's defaults now, in the same run; and the
 * longest the main thread of a worker running the real (tiny) pipeline is held during a job,
 * which a worker's lock must outlive (it is renewed from that thread every half lock).
 * Run: `npx tsx bench/studio-failover.ts [--trials 2]`.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { TestClient, collectJob } from '../test/support/bridge.ts';
import { TestRedis } from '../test/studio/redis-server.ts';
import { WorkerProcess, startFrontDoor, starts } from '../test/studio/studio-helpers.ts';
import { DEFAULT_STUDIO_TIMINGS } from '../bridge/studio/keys.ts';
import type { BoxTuple } from '../domain/layout.ts';
import { fixed, machineLine, median, table } from './stats.ts';

const PROBE = fileURLToPath(new URL('./loop-delay-probe.ts', import.meta.url));
const HEARTBEAT_MS = DEFAULT_STUDIO_TIMINGS.heartbeatMs;

interface Timings {
  lockMs: number;
  stalledMs: number;
}
const BEFORE: Timings = { lockMs: 30_000, stalledMs: 15_000 };
const NOW: Timings = { lockMs: DEFAULT_STUDIO_TIMINGS.lockMs, stalledMs: DEFAULT_STUDIO_TIMINGS.stalledMs };

export const HOW_TO_READ = `How to read: two GPU worker processes (the fake pipeline, 1 s steps) behind a front door on a
local redis-server; a job runs, its worker is killed with SIGKILL, and the table gives the seconds
from the kill to the client's first note and to the job's start on the other worker. BullMQ moves a
job back to waiting when its lock (renewed every half lock by the worker) has expired at a stalled
check, so the wait is between half the lock and the lock plus one check interval. "main thread
held" is the longest a worker's event loop was blocked (1 s windows) while it ran a real tiny-model
job: the pipeline runs on its own thread, so this, not a denoising step, is what delays a renewal.`;

async function failover(t: Timings, trial: number): Promise<{ noteS: number; restartS: number }> {
  const redis = await TestRedis.start();
  const timings = { ...t, heartbeatMs: HEARTBEAT_MS };
  // 100 steps of 1 s: the job outlives any wait measured here.
  const workers = await Promise.all(['a', 'b'].map((name) => WorkerProcess.start(redis, name, { stepMs: 1000 }, undefined, { timings })));
  const door = await startFrontDoor(redis, {}, t.stalledMs);
  const client = await TestClient.paired(door.url);
  try {
    client.send({ type: 'generate', requestId: `f${trial}`, prompt: 'a poster', layout: { width: 128, height: 64, boxes: [[0, 0, 128, 64], [0, 0, 128, 64], [16, 16, 64, 48]] }, params: { resolution: 128, steps: 100, guidance: 4, trueCfg: 3.5, seed: trial } });
    const q = await client.next((m) => m.type === 'queued', 30_000);
    const jobId = (q as { jobId: string }).jobId;
    await client.next((m) => m.type === 'progress' && m.jobId === jobId && m.step >= 2, 30_000);
    const victim = starts(door.log).find((s) => s.jobId === jobId)?.worker;
    const dead = workers.find((w) => w.name === victim);
    if (!dead) throw new Error(`no worker started job ${jobId}`);
    const killedAt = performance.now();
    dead.kill('SIGKILL');
    await client.next((m) => m.type === 'queued' && m.jobId === jobId && m.note !== undefined, 120_000);
    const noteS = (performance.now() - killedAt) / 1000;
    const deadline = Date.now() + 120_000;
    while (starts(door.log).filter((s) => s.jobId === jobId).length < 2) {
      if (Date.now() > deadline) throw new Error('the job did not start again within 120 s');
      await new Promise((r) => setTimeout(r, 20));
    }
    const restartS = (performance.now() - killedAt) / 1000;
    client.send({ type: 'cancel', jobId });
    await client.next((m) => m.type === 'error' && m.jobId === jobId, 30_000);
    return { noteS, restartS };
  } finally {
    client.close();
    await door.close();
    await Promise.all(workers.map((w) => w.stop()));
    await redis.stop();
  }
}

/** The longest main-thread stall of a worker running one real tiny-model job (the first validation layout). */
async function mainThreadHeld(steps: number): Promise<{ maxMs: number; jobS: number }> {
  const redis = await TestRedis.start();
  const worker = await WorkerProcess.start(redis, 'real', {}, null, { nodeArgs: ['--import', PROBE], timings: { ...NOW, heartbeatMs: HEARTBEAT_MS } });
  const door = await startFrontDoor(redis, {}, NOW.stalledMs);
  const client = await TestClient.paired(door.url);
  try {
    const layouts = JSON.parse(readFileSync(new URL('../test/fixtures/art-validation-layouts.json', import.meta.url), 'utf8')) as { cases: { '512': { caption: string; boxes: BoxTuple[] }[] } };
    const { caption, boxes } = layouts.cases['512'][0];
    const from = Date.now();
    client.send({ type: 'generate', requestId: 'real', prompt: caption, layout: { width: 512, height: 512, boxes }, params: { resolution: 512, steps, guidance: 4, trueCfg: 3.5, seed: 1 } });
    const q = await client.next((m) => m.type === 'queued', 60_000);
    await collectJob(client, (q as { jobId: string }).jobId, 300_000);
    const to = Date.now() + 1000;
    await new Promise((r) => setTimeout(r, 1100)); // the probe's window that holds the job's end
    const held = worker.output.flatMap((line) => {
      const m = /\[probe\] (\d+) loop-delay-max-ms ([\d.]+)/.exec(line);
      return m && Number(m[1]) >= from && Number(m[1]) <= to + 1000 ? [Number(m[2])] : [];
    });
    return { maxMs: Math.max(...held), jobS: (to - 1000 - from) / 1000 };
  } finally {
    client.close();
    await door.close();
    await worker.stop();
    await redis.stop();
  }
}

export async function main(trials = 2, steps = 8) {
  console.log(`\n== studio failover: a GPU worker killed mid-job, BullMQ's lock and check times vs the studio's defaults (${trials} trials each) ==`);
  const rows: (string | number)[][] = [];
  const results: Record<string, { noteS: number[]; restartS: number[] }> = {};
  for (const [label, t] of [['BullMQ defaults (before)', BEFORE], ['studio defaults (now)', NOW]] as const) {
    const runs = [];
    for (let i = 0; i < trials; i++) runs.push(await failover(t, i));
    const r = { noteS: runs.map((x) => x.noteS), restartS: runs.map((x) => x.restartS) };
    results[label] = r;
    rows.push([`${label}: lock ${t.lockMs / 1000} s, check ${t.stalledMs / 1000} s`, r.noteS.map((s) => fixed(s, 1)).join(', '), r.restartS.map((s) => fixed(s, 1)).join(', '), fixed(median(r.restartS), 1)]);
  }
  const held = await mainThreadHeld(steps);
  console.log(machineLine());
  console.log(table(['timings', 'kill -> first note (s)', 'kill -> restarted (s)', 'median (s)'], rows));
  const ratio = median(results['studio defaults (now)'].restartS) / median(results['BullMQ defaults (before)'].restartS);
  console.log(`restart wait, now / before: ${fixed(ratio, 2)}x`);
  console.log(`main thread held at most ${fixed(held.maxMs, 0)} ms during a real tiny-model job (${steps} steps, first 512 validation layout, ${fixed(held.jobS, 1)} s); lock renewed every ${NOW.lockMs / 2000} s`);
  console.log(HOW_TO_READ);
  return { results, held };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const args = process.argv.slice(2);
  const i = args.indexOf('--trials');
  await main(i >= 0 ? Number(args[i + 1]) : 2);
  process.exit(0);
}
