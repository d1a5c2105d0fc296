/**
 * The bridge: an HTTP server (`GET /health`) carrying a WebSocket endpoint. Upgrades pass
 * admission (admission.ts: origin, connection slots), connections must pair (pairing.ts), and
 * their frames are budgeted, validated and routed (dispatch.ts) to the job lifecycle (job-lifecycle.ts:
 * queue, run, store before sending, replay).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { AddressInfo } from 'node:net';
import { WebSocketServer } from 'ws';
import { GRID, MAX_CANVAS_SIDE, MAX_FLAT_IMAGE_BYTES, MAX_LAYERS, RESOLUTIONS } from '../domain/layout.ts';
import { MAX_PROMPT_CHARS } from '../domain/params.ts';
import type { PipelineInfo } from '../gpu-server/pipeline/types.ts';
import { disableOnnxTelemetry } from '../gpu-server/onnx/telemetry.ts';
import { Admission, type AdmissionLimits } from './admission.ts';
import { CLOSE, Connection, type ConnectionLimits } from './connection.ts';
import { Dispatch, type DispatchLimits } from './dispatch.ts';
import { ImageDecoder } from './image-decoder.ts';
import { JobLifecycle, NO_MODEL_YET, type JobLimits } from './job-lifecycle.ts';
import { openExecutor, type ExecutorChoice } from './open-executor.ts';
import { Pairing, type PairingLimits } from './pairing.ts';
import { PROTOCOL_VERSION, type WelcomeMessage } from './protocol/messages.ts';

/** Every limit of the bridge; each unit documents its own. */
export interface BridgeLimits extends JobLimits, PairingLimits, AdmissionLimits, ConnectionLimits, DispatchLimits {
  /** TCP connections the HTTP server accepts at once (upgraded ones included). */
  maxSockets: number;
  /** HTTP request headers (an upgrade request included) must arrive within this. */
  headersTimeoutMs: number;
  /** Every connection is pinged this often; one that did not answer the previous ping is dropped. */
  heartbeatMs: number;
}

export const DEFAULT_LIMITS: BridgeLimits = {
  jobsPerClient: 4,
  queueLength: 32,
  wrongTokens: 5,
  tokenWindowMs: 60_000,
  wrongTokenDelayMs: 250,
  wrongTokenMaxDelayMs: 8_000,
  burst: 60,
  perSecond: 30,
  maxFrameBytes: 1024 * 1024,
  progressIntervalMs: 100,
  maxConnections: 64,
  connectionsPerAddress: 32,
  maxSockets: 256,
  helloTimeoutMs: 10_000,
  headersTimeoutMs: 10_000,
  heartbeatMs: 30_000,
  highWaterBytes: 8 * 2 ** 20,
  drainTimeoutMs: 30_000,
  maxBufferedBytes: 64 * 2 ** 20,
  fetchesPerClient: 2,
  uploadTimeoutMs: 10_000,
};

export interface BridgeOptions {
  host: string;
  /** 0 picks a free port. */
  port: number;
  token: string;
  /** Origins allowed besides `null` (Figma plugin iframes). */
  allowOrigins: string[];
  outputs: string;
  /** Finished jobs kept in the job archive. */
  keepJobs: number;
  /** Where jobs run: this machine's pipeline, or GPU workers behind Redis. */
  executor: ExecutorChoice;
  /** At shutdown, cancel the running jobs instead of letting them finish. */
  cancelOnShutdown: boolean;
  limits?: Partial<BridgeLimits>;
  /** Version reported by /health. */
  version: string;
  log?: (line: string) => void;
}

export interface Bridge {
  readonly host: string;
  readonly port: number;
  /** The default model's pipeline; none on a studio front door until a worker announces a model. */
  readonly info: PipelineInfo | undefined;
  /** Stops accepting, empties the queue, finishes or cancels the running jobs, closes sockets. */
  close(): Promise<void>;
}

const SHUTDOWN_REASON = 'bridge shutting down';

export async function startBridge(options: BridgeOptions): Promise<Bridge> {
  const limits: BridgeLimits = { ...DEFAULT_LIMITS, ...options.limits };
  const log = options.log ?? (() => {});
  disableOnnxTelemetry(); // before the executor starts its worker: onnxruntime reads the real environment
  const executor = await openExecutor(options.executor, log);
  let jobs: JobLifecycle;
  try {
    jobs = await JobLifecycle.open({
      outputs: options.outputs,
      keepJobs: options.keepJobs,
      executor,
      cancelOnShutdown: options.cancelOnShutdown,
      limits,
      log,
    });
  } catch (error) {
    await executor.dispose();
    throw error;
  }
  const refusalLog = new LogThrottle(log);
  const admission = new Admission(limits, options.allowOrigins, (line) => refusalLog.note(line));
  const pairing = new Pairing(options.token, limits, () => welcome(jobs.models(), limits.jobsPerClient));
  const decoder = new ImageDecoder();
  const dispatch = new Dispatch(jobs, pairing, limits, decoder);

  const http = createServer(
    // Slow or half-sent requests (an upgrade included) are cut off; Node checks each connection
    // every connectionsCheckingInterval.
    { headersTimeout: limits.headersTimeoutMs, requestTimeout: limits.headersTimeoutMs, connectionsCheckingInterval: Math.min(1000, limits.headersTimeoutMs) },
    (req: IncomingMessage, res: ServerResponse) => {
      const path = (req.url ?? '/').split('?')[0];
      if (req.method === 'GET' && path === '/health') {
        res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store' });
        return res.end(JSON.stringify(health(options.version, jobs)));
      }
      res.writeHead(404, { 'content-type': 'text/plain' });
      res.end('not found: the bridge serves GET /health and a WebSocket endpoint\n');
    },
  );
  http.maxConnections = limits.maxSockets;
  const handshakeDone = handshakeDeadlines(http, limits.headersTimeoutMs);
  const wss = new WebSocketServer({ noServer: true, maxPayload: limits.maxFrameBytes });

  http.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    // Node removes its own 'error' listener before emitting 'upgrade', and ws adds one only inside
    // handleUpgrade: without this, a reset while we write a refusal is an unhandled 'error' (a crash).
    socket.on('error', () => socket.destroy());
    handshakeDone(socket);
    if (jobs.shuttingDown) return refuse(socket, '503 Service Unavailable', SHUTDOWN_REASON);
    const verdict = admission.admit(req);
    if (verdict.kind === 'refuse') return refuse(socket, verdict.status, verdict.why);
    if (verdict.kind === 'full') {
      // Opened only to be closed with a code and a reason; never counted as a connection.
      return wss.handleUpgrade(req, socket, head, (ws) => {
        ws.on('error', () => {});
        new Connection(ws, 'full', limits).close(CLOSE.tryAgainLater, verdict.why);
      });
    }
    wss.handleUpgrade(req, socket, head, (ws) => {
      const client = new Connection(ws, verdict.address, limits, log);
      admission.add(client);
      pairing.expectHello(client);
      ws.on('message', (data, isBinary) => {
        try {
          dispatch.onFrame(client, data, isBinary);
        } catch (error) {
          client.sendError('internal', `the bridge failed on this message: ${String(error)}`);
        }
      });
      ws.on('error', () => {}); // e.g. a frame over maxPayload or a bad opcode; ws closes the socket itself
      ws.on('close', () => {
        admission.remove(client);
        jobs.unsubscribe(client);
      });
    });
  });

  const heartbeat = setInterval(() => {
    for (const c of admission.connections()) c.heartbeat();
  }, limits.heartbeatMs);
  heartbeat.unref();

  await new Promise<void>((resolve, reject) => {
    http.once('error', reject);
    http.listen(options.port, options.host, () => {
      http.off('error', reject);
      resolve();
    });
  });
  const address = http.address() as AddressInfo;
  // After listen, an accept error (EMFILE: out of file descriptors) is emitted here; without a
  // listener it would crash the bridge and lose the running job. The server keeps listening.
  http.on('error', (error) => refusalLog.note(`HTTP server error (still serving): ${error.message}`));

  const close = async () => {
    if (jobs.shuttingDown) return;
    log('shutting down: no new connections or jobs');
    clearInterval(heartbeat);
    await jobs.shutdown();
    for (const client of admission.connections()) client.close(CLOSE.goingAway, SHUTDOWN_REASON);
    await Promise.all([jobs.dispose(), decoder.close()]);
    await new Promise<void>((resolve) => {
      wss.close(() => resolve());
    });
    http.closeAllConnections();
    await new Promise<void>((resolve) => http.close(() => resolve()));
  };

  return {
    host: address.address,
    port: address.port,
    get info() {
      return jobs.defaultModel();
    },
    close,
  };
}

/**
 * Node's headersTimeout misses a socket that sends nothing, or half a request and then nothing:
 * every socket must complete a request or an upgrade within `ms`. Returns what marks a socket done.
 */
function handshakeDeadlines(http: Server, ms: number): (socket: Duplex) => void {
  const deadlines = new WeakMap<Duplex, NodeJS.Timeout>();
  const done = (socket: Duplex) => clearTimeout(deadlines.get(socket));
  http.on('connection', (socket: Duplex) => {
    const timer = setTimeout(() => socket.destroy(), ms);
    timer.unref();
    deadlines.set(socket, timer);
    socket.once('close', () => clearTimeout(timer));
  });
  http.on('request', (req: IncomingMessage) => done(req.socket));
  return done;
}

/** Logs a line at most once a second (with how many were left out): a flood must not flood the console. */
class LogThrottle {
  private last = 0;
  private skipped = 0;
  constructor(private readonly log: (line: string) => void) {}
  note(line: string): void {
    const now = Date.now();
    if (now - this.last < 1000) {
      this.skipped++;
      return;
    }
    this.log(this.skipped ? `${line} (and ${this.skipped} more like it)` : line);
    this.last = now;
    this.skipped = 0;
  }
}

/**
 * The welcome a paired connection gets; `models[0]` is the default model. With none yet (a studio
 * front door before its first worker), the model fields are empty or the bridge's own bounds, and
 * `note` says why.
 */
function welcome(models: PipelineInfo[], jobsPerClient: number): WelcomeMessage {
  const info = models[0];
  return {
    type: 'welcome',
    protocol: PROTOCOL_VERSION,
    ...(info
      ? { model: info.model, provider: info.provider, tiny: info.tiny, maxLayers: info.maxLayers, resolutions: info.resolutions }
      : { model: '', provider: '', tiny: false, maxLayers: MAX_LAYERS, resolutions: [...RESOLUTIONS], note: NO_MODEL_YET }),
    maxCanvasSide: MAX_CANVAS_SIDE,
    grid: GRID,
    maxPromptChars: MAX_PROMPT_CHARS,
    jobsPerClient,
    models: models.map((m) => ({ model: m.model, tiny: m.tiny, maxLayers: m.maxLayers, resolutions: m.resolutions, jobs: m.jobs })),
    maxImageBytes: MAX_FLAT_IMAGE_BYTES,
  };
}

function health(version: string, jobs: JobLifecycle) {
  const info = jobs.defaultModel();
  return {
    ok: true,
    name: 'art-for-figma bridge',
    version,
    protocol: PROTOCOL_VERSION,
    ...(info ? { model: info.model, provider: info.provider, tiny: info.tiny, maxLayers: info.maxLayers, jobs: info.jobs } : { model: null }),
    models: jobs.models().map((m) => ({ model: m.model, jobs: m.jobs })),
    queue: jobs.counts,
    shuttingDown: jobs.shuttingDown,
    ...jobs.executorHealth(),
  };
}

function refuse(socket: Duplex, status: string, why: string): void {
  socket.end(`HTTP/1.1 ${status}\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n${why}\n`);
}
