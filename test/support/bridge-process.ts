/**
 * A bridge in a process of its own, for the tests and benchmarks that need one: its own
 * environment or file limit, a crash that must not take the test runner with it, or figures of
 * the bridge alone (event-loop delay, memory, CPU) that the client's work must not disturb.
 *
 * The script (`node --import tsx test/support/bridge-process.ts <outputs> <pipeline JSON>`) starts
 * the bridge with bridgeOptions, prints `READY <port>` when listening and closes on SIGTERM. Started
 * by startBridgeProcess it also has an IPC channel, over which it measures itself between a
 * `monitor` and a `report`.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { LocalPipeline } from '../../bridge/local-executor.ts';
import { startBridge } from '../../bridge/server.ts';
import { bridgeOptions, fakePipeline, TOKEN } from './bridge.ts';
import { TestChild } from './child-process.ts';

const SCRIPT = fileURLToPath(import.meta.url);
const ROOT = fileURLToPath(new URL('../..', import.meta.url));

/** Epoch milliseconds, comparable across processes. */
export const epochMs = () => performance.timeOrigin + performance.now();
/** This process's CPU time (all threads) in milliseconds. */
export const cpuMs = () => {
  const c = process.cpuUsage();
  return (c.user + c.system) / 1000;
};

/** What the bridge process measured of itself between `monitor` and `report`. */
export interface BridgeProcessReport {
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

type ToChild = { type: 'monitor' } | { type: 'report' };
type FromChild = { type: 'report'; report: BridgeProcessReport };

/** The child's side: the bridge, and its self-measurement when the parent asks over IPC. */
async function serve(outputs: string, pipeline: LocalPipeline): Promise<void> {
  const bridge = await startBridge(
    bridgeOptions(outputs, { keepJobs: 5, executor: { kind: 'local', pipeline }, cancelOnShutdown: true, log: (line) => process.stderr.write(`${line}\n`) }),
  );
  process.once('SIGTERM', () => void bridge.close().then(() => process.exit(0)));
  const loop = monitorEventLoopDelay({ resolution: 5 });
  const fresh = (): BridgeProcessReport => {
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
      process.send?.({ type: 'report', report: { ...r, loopP50: ms(loop.percentile(50)), loopP99: ms(loop.percentile(99)), loopMax: ms(loop.max) } } satisfies FromChild);
    }
  });
  process.stdout.write(`READY ${bridge.port}\n`);
}

export interface BridgeProcess {
  port: number;
  token: string;
  /** The process: its output so far (`output`, `stderr`) and its exit (`exited`, the exit code). */
  child: TestChild;
  /** Starts the bridge's self-measurement. */
  monitor(): void;
  /** Stops it and returns what it measured. */
  report(): Promise<BridgeProcessReport>;
  /** SIGTERM, then waits for the exit; removes the job archive if this module made it. Returns the exit code. */
  close(): Promise<number | null>;
}

export interface BridgeProcessOptions {
  /** The job archive; default a temporary folder, removed at close. */
  outputs?: string;
  /** Default the fake pipeline. */
  pipeline?: LocalPipeline;
  /** The process's whole environment; default this one's. */
  env?: NodeJS.ProcessEnv;
  /** `ulimit -n` for the process (started through bash for it). */
  maxOpenFiles?: number;
  /** How long starting may take (the real pipeline loads the tiny model); default 60 s. */
  readyTimeoutMs?: number;
}

/** Starts a bridge process and waits until it listens. */
export async function startBridgeProcess(o: BridgeProcessOptions = {}): Promise<BridgeProcess> {
  const outputs = o.outputs ?? mkdtempSync(join(tmpdir(), 'art-bridge-process-'));
  const args = ['--import', 'tsx', SCRIPT, outputs, JSON.stringify(o.pipeline ?? fakePipeline({ stepMs: 1 }))];
  // bash passes its arguments on untouched as "$@", so no quoting of the JSON is needed.
  const [command, argv] = o.maxOpenFiles ? ['bash', ['-c', `ulimit -n ${o.maxOpenFiles} && exec "$0" "$@"`, process.execPath, ...args]] as const : [process.execPath, args] as const;
  const child = new TestChild(spawn(command, argv, { cwd: ROOT, env: o.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe', 'ipc'] }));
  const removeOutputs = () => {
    if (!o.outputs) rmSync(outputs, { recursive: true, force: true });
  };
  try {
    const [, port] = await child.ready(/READY (\d+)/, 'bridge process', o.readyTimeoutMs ?? 60_000);
    return {
      port: Number(port),
      token: TOKEN,
      child,
      monitor: () => child.proc.send({ type: 'monitor' } satisfies ToChild),
      report: () =>
        new Promise((resolve, reject) => {
          const onExit = (code: number | null) => reject(new Error(`the bridge process exited (code ${code}) before its report: ${child.output}`));
          child.proc.once('message', (m: FromChild) => {
            child.proc.off('exit', onExit);
            resolve(m.report);
          });
          child.proc.once('exit', onExit);
          child.proc.send({ type: 'report' } satisfies ToChild);
        }),
      async close() {
        child.kill('SIGTERM');
        const code = await child.exited;
        removeOutputs();
        return code;
      },
    };
  } catch (error) {
    child.kill('SIGKILL');
    removeOutputs();
    throw error;
  }
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  const [outputs, pipeline] = process.argv.slice(2);
  await serve(outputs, JSON.parse(pipeline) as LocalPipeline);
}
