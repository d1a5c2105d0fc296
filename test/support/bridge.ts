/**
 * A real bridge for tests and benchmarks: startBridge's options with the defaults they share, a
 * bridge on an ephemeral port with the fake pipeline, and a real `ws` client.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { WebSocket } from 'ws';
import { PNG } from 'pngjs';
import type { BoxTuple } from '../../domain/layout.ts';
import type { LocalPipeline } from '../../bridge/local-executor.ts';
import { startBridge, type Bridge, type BridgeLimits, type BridgeOptions } from '../../bridge/server.ts';
import { PROTOCOL_VERSION, type BridgeMessage } from '../../bridge/protocol/messages.ts';
import { decodeImageFrame, type ImageFrame } from '../../bridge/protocol/image-frame.ts';
import { encodePng } from '../../gpu-server/pipeline/png.ts';
import type { FakeOptions } from './fake-pipeline.ts';

export const TOKEN = 'test-token-0123456789abcdef';
export const FAKE_FACTORY = fileURLToPath(new URL('./fake-pipeline.ts', import.meta.url));
/** The pipeline `npm start` runs; with no model folder it uses the tiny model. */
export const REAL_FACTORY = fileURLToPath(new URL('../../gpu-server/pipeline/art-pipeline.ts', import.meta.url));

/** The fake pipeline (test/support/fake-pipeline.ts), 5 ms a step unless `options` say otherwise. */
export const fakePipeline = (options: FakeOptions = {}): LocalPipeline => ({ factory: FAKE_FACTORY, options: { stepMs: 5, ...options } });
/** The real pipeline on the CPU: the tiny model. */
export const realPipeline = (): LocalPipeline => ({ factory: REAL_FACTORY, options: { provider: 'cpu' } });
/**
 * The benchmarks' stand-in: the fake pipeline with generated image content (realistic PNG sizes
 * and encoding times), `stepMs` a step with a core kept busy as onnxruntime does, and every layer
 * handed over at the last step, as the real pipeline does before its VAE decode.
 */
export const sampleOptions = (stepMs: number): FakeOptions => ({ stepMs, content: 'sample', spin: true, decodeMs: 0 });
export const samplePipeline = (stepMs: number): LocalPipeline => fakePipeline(sampleOptions(stepMs));

/**
 * startBridge's options as tests and benchmarks use them: loopback on a free port, TOKEN, the
 * fake pipeline, the job archive in `outputs`, running jobs left to finish at shutdown; `overrides`
 * replace any of them.
 */
export function bridgeOptions(outputs: string, overrides: Partial<BridgeOptions> = {}): BridgeOptions {
  return {
    host: '127.0.0.1',
    port: 0,
    token: TOKEN,
    allowOrigins: [],
    outputs,
    keepJobs: 20,
    executor: { kind: 'local', pipeline: fakePipeline() },
    cancelOnShutdown: false,
    version: 'test',
    ...overrides,
  };
}

export interface TestBridge {
  bridge: Bridge;
  url: string;
  outputs: string;
  close(): Promise<void>;
}

/** A bridge on an ephemeral port: the fake pipeline, or with `real` the tiny model on the CPU. */
export async function startTestBridge(
  opts: {
    fake?: FakeOptions;
    real?: boolean;
    limits?: Partial<BridgeLimits>;
    cancelOnShutdown?: boolean;
    keepJobs?: number;
    allowOrigins?: string[];
    /** A fixed port (the browser tests need one manifest.json allows); default ephemeral. */
    port?: number;
  } = {},
): Promise<TestBridge> {
  const outputs = await mkdtemp(join(tmpdir(), 'art-bridge-test-'));
  const { fake, real, ...rest } = opts;
  const bridge = await startBridge(bridgeOptions(outputs, { ...rest, executor: { kind: 'local', pipeline: real ? realPipeline() : fakePipeline(fake) } }));
  let closed = false;
  return {
    bridge,
    url: `ws://127.0.0.1:${bridge.port}`,
    outputs,
    async close() {
      if (!closed) await bridge.close();
      closed = true;
      await rm(outputs, { recursive: true, force: true });
    },
  };
}

export type Received = BridgeMessage | { type: 'binary'; frame: ImageFrame };

export class TestClient {
  readonly received: Received[] = [];
  private readonly consumed = new Set<number>();
  private waiters: (() => void)[] = [];
  readonly closed: Promise<{ code: number; reason: string }>;

  private constructor(readonly ws: WebSocket) {
    ws.on('message', (data, isBinary) => {
      const buf = Buffer.isBuffer(data) ? data : Buffer.from(data as ArrayBuffer);
      this.received.push(
        isBinary ? { type: 'binary', frame: decodeImageFrame(new Uint8Array(buf)) } : (JSON.parse(buf.toString('utf8')) as BridgeMessage),
      );
      this.wake();
    });
    this.closed = new Promise((resolve) =>
      ws.on('close', (code, reason) => {
        resolve({ code, reason: reason.toString() });
        this.wake();
      }),
    );
  }

  static open(url: string, headers: Record<string, string> = {}): Promise<TestClient> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url, { headers });
      const client = new TestClient(ws);
      ws.once('open', () => resolve(client));
      ws.once('error', reject);
    });
  }

  /** Opens and pairs (hello -> welcome). */
  static async paired(url: string): Promise<TestClient> {
    const client = await TestClient.open(url, { origin: 'null' });
    client.send({ type: 'hello', protocol: PROTOCOL_VERSION, token: TOKEN, client: 'test' });
    await client.next((m) => m.type === 'welcome');
    return client;
  }

  send(message: unknown): void {
    this.ws.send(JSON.stringify(message));
  }

  /** The first message not yet returned by `next` that matches; marks it returned. */
  async next<T extends Received = Received>(match: (m: Received) => boolean, timeoutMs = 5000): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      for (let i = 0; i < this.received.length; i++)
        if (!this.consumed.has(i) && match(this.received[i])) {
          this.consumed.add(i);
          return this.received[i] as T;
        }
      const left = deadline - Date.now();
      if (left <= 0 || this.ws.readyState === WebSocket.CLOSED)
        throw new Error(`no matching message within ${timeoutMs} ms; received: ${JSON.stringify(this.received.map(summary))}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  /** The next error (optionally with this code). */
  error(code?: string, timeoutMs?: number): Promise<Extract<Received, { type: 'error' }>> {
    return this.next((m) => m.type === 'error' && (code === undefined || m.code === code), timeoutMs);
  }

  close(): void {
    this.ws.close();
  }

  private wake(): void {
    const waiters = this.waiters;
    this.waiters = [];
    waiters.forEach((w) => w());
  }
}

const summary = (m: Received) => (m.type === 'binary' ? `binary:${m.frame.layerIndex}` : m.type === 'error' ? `error:${m.code}` : m.type);

// ---- requests -----------------------------------------------------------------------------------

export function layout(width: number, height: number, children: BoxTuple[]) {
  return { width, height, boxes: [[0, 0, width, height], [0, 0, width, height], ...children] as BoxTuple[] };
}

export function generateMessage(requestId: string, overrides: { steps?: number; seed?: number; prompt?: string } = {}) {
  return {
    type: 'generate',
    requestId,
    prompt: overrides.prompt ?? 'a poster with "HELLO" in big letters',
    layout: layout(128, 64, [
      [16, 16, 64, 48],
      [64, 0, 128, 32],
    ]),
    params: { resolution: 128, steps: overrides.steps ?? 4, guidance: 4, trueCfg: 3.5, seed: overrides.seed ?? 7 },
  };
}

/** Waits for a job's `done`, collecting its layer messages and frames. */
export async function collectJob(client: TestClient, jobId: string, timeoutMs = 10_000) {
  const done = await client.next<Extract<Received, { type: 'done' }>>((m) => m.type === 'done' && m.jobId === jobId, timeoutMs);
  const end = client.received.indexOf(done);
  const mine = client.received.slice(0, end + 1).filter((m) => (m.type === 'binary' ? m.frame.jobId === jobId : 'jobId' in m && m.jobId === jobId));
  return { done, messages: mine };
}

export function decodePng(png: Uint8Array): { width: number; height: number; data: Buffer } {
  const image = PNG.sync.read(Buffer.from(png));
  return { width: image.width, height: image.height, data: image.data };
}

/** A flat image for `decomposeMessage`'s 128 x 64 canvas: a pattern of colours, with its top-left pixel transparent. */
export function flatImage(width = 128, height = 64): { rgba: Uint8Array; png: Uint8Array } {
  const rgba = new Uint8Array(width * height * 4);
  for (let y = 0; y < height; y++)
    for (let x = 0; x < width; x++) rgba.set([(x * 2) & 255, (y * 4) & 255, (x + y) & 255, 255], (y * width + x) * 4);
  rgba.set([10, 20, 30, 0], 0); // composited over white: (255, 255, 255)
  return { rgba, png: encodePng(width, height, rgba) };
}

/** A `decompose` of generateMessage's layout; the image frame of `bytes` bytes must follow it. */
export function decomposeMessage(requestId: string, bytes: number, overrides: { steps?: number; seed?: number; prompt?: string; conditioningScale?: number } = {}) {
  const g = generateMessage(requestId, overrides);
  return { ...g, type: 'decompose', params: { ...g.params, conditioningScale: overrides.conditioningScale ?? 0.9 }, image: { bytes } };
}
