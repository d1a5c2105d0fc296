/**
 * Bridge benchmark: a real bridge (bridge/server.ts) in a child process, its pipeline worker
 * running the benchmarks' stand-in (test/support/bridge.ts samplePipeline: denoising simulated by
 * a thread-holding wait per step, layers of real generated content), and a real WebSocket client here. One job of 52 layers,
 * each the whole 1024x1024 canvas (the largest job the protocol allows). The child measures its
 * own event-loop delay and memory, so the client's work does not count against the bridge.
 * Run: `npx tsx bench/bridge.ts [--steps 28] [--step-ms 20]`.
 */
import { availableParallelism } from 'node:os';
import { pathToFileURL } from 'node:url';
import { WebSocket } from 'ws';
import { type BoxTuple, MAX_LAYERS } from '../domain/layout.ts';
import { PROTOCOL_VERSION, type BridgeMessage } from '../bridge/protocol/messages.ts';
import { decodeImageFrame } from '../bridge/protocol/image-frame.ts';
import { samplePipeline } from '../test/support/bridge.ts';
import { cpuMs, epochMs, startBridgeProcess, type BridgeProcessReport } from '../test/support/bridge-process.ts';
import { fixed, machineLine, mib, table } from './stats.ts';

const SIDE = 1024;
const cores = () => availableParallelism();

export interface BridgeBenchOptions {
  steps: number;
  stepMs: number;
}

export const DEFAULT_BRIDGE_OPTIONS: BridgeBenchOptions = { steps: 28, stepMs: 20 };

export const HOW_TO_READ = `How to read: one job of ${MAX_LAYERS} layers, each the whole ${SIDE}x${SIDE} canvas, through a real bridge
(child process) to a real WebSocket client. The pipeline is a stand-in (test/support/fake-pipeline.ts):
each denoising step holds the worker thread for step-ms, as onnxruntime does, and the layers are
the official sample output resampled, so PNG encoding (on the worker's encoder threads, each layer
sent as soon as it is encoded), the job archive (disk) and delivery are real. Times are from the
client's send of "generate"; the stand-in decodes instantly (its layer buffers are made before the
first step), so on a real model the transparent decoder, and the VAE's decode of the merged and
background images (during which the layers are already being encoded), come on top. The CPU row is
the CPU time both processes spent from the last step to the last layer; divided by the cores, it is
the least that window could take on otherwise idle cores, whatever else shares the machine.
Event-loop delay is the bridge process's main thread over the whole job (what a second client
would wait); memory is the bridge process (main thread + pipeline worker).`;

// ---- the client side -------------------------------------------------------------------------------

export interface BridgeBenchResult {
  queuedMs: number;
  firstProgressMs: number;
  lastProgressMs: number;
  firstLayerMs: number;
  lastLayerMs: number;
  doneMs: number;
  layers: number;
  pngBytes: number;
  rgbaBytes: number;
  workerEncodeMs: number;
  /** CPU time from the last denoising step to the last layer received: the bridge process (all threads) and this client. */
  deliveryCpu: { bridgeMs: number; clientMs: number };
  child: BridgeProcessReport;
}

/** The bridge's CPU time between two epoch times, from its 10 ms samples (the last sample at or before each). */
export function cpuBetween(samples: readonly [number, number][], from: number, to: number): number {
  const at = (t: number) => {
    let value = samples[0]?.[1] ?? 0;
    for (const [when, cpu] of samples) if (when <= t) value = cpu;
    return value;
  };
  return at(to) - at(from);
}

export async function measureBridge(options: BridgeBenchOptions = DEFAULT_BRIDGE_OPTIONS): Promise<BridgeBenchResult> {
  const child = await startBridgeProcess({ pipeline: samplePipeline(options.stepMs) });
  try {
    const { port, token } = child;
    const ws = new WebSocket(`ws://127.0.0.1:${port}`, { headers: { origin: 'null' }, maxPayload: 256 * 2 ** 20 });
    await new Promise<void>((resolve, reject) => ws.once('open', resolve).once('error', reject));
    const whole: BoxTuple = [0, 0, SIDE, SIDE];
    let t0 = 0;
    const times: Partial<Record<'queued' | 'firstProgress' | 'lastProgress' | 'firstLayer' | 'lastLayer' | 'done', number>> = {};
    let pngBytes = 0, rgbaBytes = 0, frames = 0, workerEncodeMs = 0;
    // Epoch time and this process's CPU at the last progress and at the latest layer frame.
    let lastProgressAt: [number, number] = [0, 0], lastLayerAt: [number, number] = [0, 0];
    const finished = new Promise<void>((resolve, reject) => {
      ws.on('message', (data, isBinary) => {
        const now = performance.now() - t0;
        const buf = data as Buffer;
        if (isBinary) {
          frames++;
          times.lastLayer = now;
          lastLayerAt = [epochMs(), cpuMs()];
          pngBytes += decodeImageFrame(new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength)).png.length;
          return;
        }
        const m = JSON.parse(buf.toString('utf8')) as BridgeMessage;
        if (m.type === 'welcome') {
          t0 = performance.now();
          child.monitor();
          ws.send(JSON.stringify({
            type: 'generate', requestId: 'bench', prompt: 'a poster with many layers',
            layout: { width: SIDE, height: SIDE, boxes: Array.from({ length: MAX_LAYERS }, () => whole) },
            params: { resolution: SIDE, steps: options.steps, guidance: 4, trueCfg: 3.5, seed: 1 },
          }));
        } else if (m.type === 'queued') times.queued ??= now;
        else if (m.type === 'progress') {
          times.firstProgress ??= now;
          if (m.stage === 'denoise') {
            times.lastProgress = now;
            lastProgressAt = [epochMs(), cpuMs()];
          }
        } else if (m.type === 'layer') {
          times.firstLayer ??= now;
          rgbaBytes += m.width * m.height * 4;
        } else if (m.type === 'done') {
          times.done = now;
          workerEncodeMs = m.timings.encode ?? 0;
          resolve();
        } else if (m.type === 'error') reject(new Error(`the bridge answered ${m.code}: ${m.message}`));
      });
    });
    ws.send(JSON.stringify({ type: 'hello', protocol: PROTOCOL_VERSION, token, client: 'bench' }));
    await finished;
    const report = await child.report();
    ws.close();
    if (frames !== MAX_LAYERS) throw new Error(`received ${frames} layer frames, expected ${MAX_LAYERS}`);
    const need = (k: keyof typeof times) => {
      const v = times[k];
      if (v === undefined) throw new Error(`the bridge never sent "${k}"`);
      return v;
    };
    return {
      queuedMs: need('queued'), firstProgressMs: need('firstProgress'), lastProgressMs: need('lastProgress'),
      firstLayerMs: need('firstLayer'), lastLayerMs: need('lastLayer'), doneMs: need('done'), layers: frames, pngBytes, rgbaBytes, workerEncodeMs,
      deliveryCpu: { bridgeMs: cpuBetween(report.cpu, lastProgressAt[0], lastLayerAt[0]), clientMs: lastLayerAt[1] - lastProgressAt[1] },
      child: report,
    };
  } finally {
    await child.close();
  }
}

export function bridgeTable(r: BridgeBenchResult, o: BridgeBenchOptions): string {
  const delivery = r.lastLayerMs - r.firstLayerMs;
  return table(['measure', 'value'], [
    ['generate -> queued', `${fixed(r.queuedMs)} ms`],
    ['generate -> first progress', `${fixed(r.firstProgressMs)} ms`],
    [`generate -> last progress (${o.steps} steps x ${o.stepMs} ms simulated)`, `${fixed(r.lastProgressMs)} ms`],
    ['last denoising step -> first layer received', `${fixed(r.firstLayerMs - r.lastProgressMs)} ms`],
    [`last denoising step -> last layer received (all ${r.layers}; goal: under 1 s)`, `${fixed(r.lastLayerMs - r.lastProgressMs)} ms`],
    ['  PNG encoding in the worker, first layer in -> last out (done.timings.encode)', `${fixed(r.workerEncodeMs)} ms`],
    ['  CPU in that window: bridge process (all threads) + this client', `${fixed(r.deliveryCpu.bridgeMs, 0)} + ${fixed(r.deliveryCpu.clientMs, 0)} ms = ${fixed((r.deliveryCpu.bridgeMs + r.deliveryCpu.clientMs) / cores(), 0)} ms per core on ${cores()} cores`],
    ['last layer -> done (job archive write)', `${fixed(r.doneMs - r.lastLayerMs)} ms`],
    ['generate -> done', `${fixed(r.doneMs)} ms`],
    ['PNG bytes delivered', `${mib(r.pngBytes)} (${fixed(r.rgbaBytes / r.pngBytes)}x smaller than ${mib(r.rgbaBytes)} RGBA)`],
    ['delivery rate (first layer -> last layer)', `${fixed(r.pngBytes / 2 ** 20 / (delivery / 1000))} MiB/s`],
    ['bridge event-loop delay p50 / p99 / max', `${fixed(r.child.loopP50)} / ${fixed(r.child.loopP99)} / ${fixed(r.child.loopMax)} ms`],
    ['bridge RSS before job -> peak', `${mib(r.child.rssBefore)} -> ${mib(r.child.rssPeak)}`],
    ['bridge peak JS heap / array buffers', `${mib(r.child.heapPeak)} / ${mib(r.child.arrayBuffersPeak)}`],
  ]);
}

function parseArgs(argv: string[]): BridgeBenchOptions {
  const o = { ...DEFAULT_BRIDGE_OPTIONS };
  for (let i = 0; i < argv.length; i++) {
    const value = Number(argv[i + 1]);
    if (!Number.isInteger(value) || value <= 0) throw new Error(`${argv[i]} needs a positive integer, got ${argv[i + 1]}`);
    if (argv[i] === '--steps') o.steps = value;
    else if (argv[i] === '--step-ms') o.stepMs = value;
    else throw new Error(`unknown option ${argv[i]} (use --steps, --step-ms)`);
    i++;
  }
  return o;
}

export async function main(options: BridgeBenchOptions = DEFAULT_BRIDGE_OPTIONS): Promise<BridgeBenchResult> {
  console.log(`\n== bridge: ${MAX_LAYERS} layers of ${SIDE}x${SIDE} RGBA through a real bridge and WebSocket ==\n${machineLine()}`);
  const result = await measureBridge(options);
  console.log(`\n${bridgeTable(result, options)}\n\n${HOW_TO_READ}`);
  return result;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  await main(parseArgs(process.argv.slice(2)));
}
