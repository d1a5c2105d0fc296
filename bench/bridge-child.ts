/**
 * A real bridge in a child process for the bridge benches (bench/bridge.ts, bench/bridge-attack.ts):
 * the stand-in pipeline (bench/sample-pipeline.ts) behind it, and the bridge process measuring
 * itself (event-loop delay, memory, CPU) between a `monitor` and a `report` from the parent, so the
 * client's own work never counts against the bridge. Run as a child: `bridge-child.ts --step-ms N`.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { startBridge } from '../bridge/server.ts';

/** Epoch milliseconds, comparable across processes. */
export const epochMs = () => performance.timeOrigin + performance.now();
/** This process's CPU time (all threads) in milliseconds. */
export const cpuMs = () => {
  const c = process.cpuUsage();
  return (c.user + c.system) / 1000;
};

/** What the bridge process measured of itself between `monitor` and `report`. */
export interface BridgeChildReport {
  loopP50: number;
  loopP99: number;
  loopMax: number;
  rssBefore: number;
  rssPeak: number;
  heapPeak: number;
  arrayBuffersBefore: number;
  arrayBuffersPeak: number;
  /** [epoch ms, process CPU ms (all threads)] every 10 ms while monitored. */
  cpu: [number, number][];
}

type ToChild = { type: 'monitor' } | { type: 'report' } | { type: 'close' };
type FromChild = { type: 'listening'; port: number; token: string } | { type: 'report'; report: BridgeChildReport };

async function serve(stepMs: number): Promise<void> {
  const send = (m: FromChild) => process.send?.(m);
  const outputs = mkdtempSync(join(tmpdir(), 'art-bench-bridge-'));
  const token = randomBytes(16).toString('hex');
  const bridge = await startBridge({
    host: '127.0.0.1', port: 0, token, allowOrigins: [], outputs, keepJobs: 2,
    executor: { kind: 'local', pipeline: { factory: fileURLToPath(new URL('./sample-pipeline.ts', import.meta.url)), options: { stepMs } } },
    cancelOnShutdown: true, version: 'bench',
  });
  const loop = monitorEventLoopDelay({ resolution: 5 });
  const fresh = (): BridgeChildReport => {
    const m = process.memoryUsage();
    return { loopP50: 0, loopP99: 0, loopMax: 0, rssBefore: m.rss, rssPeak: m.rss, heapPeak: m.heapUsed, arrayBuffersBefore: m.arrayBuffers, arrayBuffersPeak: m.arrayBuffers, cpu: [] };
  };
  let r = fresh();
  let sampler: NodeJS.Timeout | undefined;
  const sample = () => {
    r.cpu.push([epochMs(), cpuMs()]);
    const m = process.memoryUsage();
    r.rssPeak = Math.max(r.rssPeak, m.rss);
    r.heapPeak = Math.max(r.heapPeak, m.heapUsed);
    r.arrayBuffersPeak = Math.max(r.arrayBuffersPeak, m.arrayBuffers);
  };
  process.on('message', (m: ToChild) => {
    if (m.type === 'monitor') {
      r = fresh();
      loop.reset();
      loop.enable();
      sampler = setInterval(sample, 10);
    } else if (m.type === 'report') {
      loop.disable();
      clearInterval(sampler);
      sample();
      const ms = (ns: number) => ns / 1e6;
      send({ type: 'report', report: { ...r, loopP50: ms(loop.percentile(50)), loopP99: ms(loop.percentile(99)), loopMax: ms(loop.max) } });
    } else if (m.type === 'close') {
      void bridge.close().finally(() => {
        rmSync(outputs, { recursive: true, force: true });
        process.exit(0);
      });
    }
  });
  send({ type: 'listening', port: bridge.port, token });
}

function nextMessage<T extends FromChild['type']>(child: ChildProcess, type: T): Promise<Extract<FromChild, { type: T }>> {
  return new Promise((resolve, reject) => {
    const onMessage = (m: FromChild) => {
      if (m.type !== type) return;
      child.off('message', onMessage);
      child.off('exit', onExit);
      resolve(m as Extract<FromChild, { type: T }>);
    };
    const onExit = (code: number | null) =>
      reject(new Error(`the bridge process exited (code ${code}) before sending "${type}"; run \`npx tsx bench/bridge-child.ts\` to see its output`));
    child.on('message', onMessage);
    child.once('exit', onExit);
  });
}

export interface BridgeChild {
  port: number;
  token: string;
  /** Starts the bridge's self-measurement. */
  monitor(): void;
  /** Stops it and returns what it measured. */
  report(): Promise<BridgeChildReport>;
  /** Stops the bridge; resolves when its process has exited (its job archive removed). */
  close(): Promise<void>;
}

/** Starts the bridge process (the stand-in pipeline holding its thread `stepMs` per step). */
export async function startBridgeChild(stepMs: number): Promise<BridgeChild> {
  const child = fork(fileURLToPath(import.meta.url), ['--step-ms', String(stepMs)], {
    execArgv: ['--import', 'tsx'],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  try {
    const { port, token } = await nextMessage(child, 'listening');
    return {
      port,
      token,
      monitor: () => child.send({ type: 'monitor' } satisfies ToChild),
      async report() {
        const reply = nextMessage(child, 'report');
        child.send({ type: 'report' } satisfies ToChild);
        return (await reply).report;
      },
      async close() {
        const exited = new Promise((resolve) => child.once('exit', resolve));
        child.send({ type: 'close' } satisfies ToChild);
        await exited;
      },
    };
  } catch (error) {
    child.kill();
    throw error;
  }
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  const at = process.argv.indexOf('--step-ms');
  await serve(at >= 0 ? Number(process.argv[at + 1]) : 20);
}
