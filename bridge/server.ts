/**
 * The bridge: an HTTP server (`GET /health`) carrying a WebSocket endpoint that checks origins,
 * pairs clients, rate-limits and validates their messages, and hands generate, cancel and fetch
 * to the job lifecycle (`jobs.ts`: queue, run, store before sending, replay).
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { AddressInfo } from 'node:net';
import { WebSocketServer, type RawData } from 'ws';
import { MAX_CANVAS_SIDE, GRID, MAX_LAYERS, RESOLUTIONS } from '../gpu-server/constants.ts';
import type { PipelineInfo } from '../gpu-server/pipeline/types.ts';
import {
  BASE_PROTOCOL,
  PROTOCOL_VERSION,
  SUPPORTED_PROTOCOLS,
  MAX_HELLO_BYTES,
  MAX_MESSAGE_BYTES,
  MAX_PROMPT_CHARS,
  parseClientMessage,
  parseHello,
  type BridgeMessage,
  type ClientMessage,
  type ErrorCode,
  type GenerateMessage,
  type HelloParse,
} from './protocol.ts';
import { originAllowed } from './origin.ts';
import { tokenMatches } from './pairing.ts';
import { GuessThrottle } from './rate-limit.ts';
import { disableOnnxTelemetry } from '../gpu-server/onnx/telemetry.ts';
import { Connection } from './connection.ts';
import { Jobs, NO_MODEL_YET } from './jobs.ts';
import { modelMisfit } from './model-fit.ts';
import { openRunner, type RunnerChoice } from './open-runner.ts';

export interface BridgeLimits {
  /** Jobs one connection may have waiting or running. */
  jobsPerClient: number;
  /** Jobs waiting in all. */
  queueLength: number;
  /** Wrong tokens (from anyone) within `tokenWindowMs` answered at once; after that each wrong
   *  token's answer waits `wrongTokenDelayMs`, doubling, at most `wrongTokenMaxDelayMs`. The right
   *  token is never delayed or refused (see GuessThrottle). */
  wrongTokens: number;
  tokenWindowMs: number;
  wrongTokenDelayMs: number;
  wrongTokenMaxDelayMs: number;
  /** Messages a connection may send at once, and per second after that. */
  burst: number;
  perSecond: number;
  /** Frames above this close the connection outright (ws code 1009); between
   *  MAX_MESSAGE_BYTES and this the client gets a `message_too_large` error. */
  maxFrameBytes: number;
  progressIntervalMs: number;
  /** WebSocket connections in all, and from one address. When full, the oldest connection that
   *  has not paired makes room; paired ones are never pushed out. */
  maxConnections: number;
  connectionsPerAddress: number;
  /** TCP connections the HTTP server accepts at once (upgraded ones included). */
  maxSockets: number;
  /** A connection that has not paired this long after its upgrade is closed. */
  helloTimeoutMs: number;
  /** HTTP request headers (an upgrade request included) must arrive within this. */
  headersTimeoutMs: number;
  /** Every connection is pinged this often; one that did not answer the previous ping is dropped. */
  heartbeatMs: number;
  /** Layer delivery pauses while more than this is unsent to a client... */
  highWaterBytes: number;
  /** ...and drops a client that stays above it this long. */
  drainTimeoutMs: number;
  /** Unsent bytes beyond this drop a client at once. */
  maxBufferedBytes: number;
  /** Replays of stored jobs (`fetch`) one connection may have in flight. */
  fetchesPerClient: number;
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
};

export interface BridgeOptions {
  host: string;
  /** 0 picks a free port. */
  port: number;
  token: string;
  /** Origins allowed besides `null` (Figma plugin iframes). */
  allowOrigins: string[];
  outputs: string;
  /** Finished jobs kept in the job store. */
  keepJobs: number;
  /** Where jobs run: this machine's pipeline, or GPU workers behind Redis. */
  runner: RunnerChoice;
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
  disableOnnxTelemetry(); // before the runner starts its worker: onnxruntime reads the real environment
  const runner = await openRunner(options.runner, log);
  let jobs: Jobs;
  try {
    jobs = await Jobs.open({
      outputs: options.outputs,
      keepJobs: options.keepJobs,
      runner,
      cancelOnShutdown: options.cancelOnShutdown,
      limits,
      log,
    });
  } catch (error) {
    await runner.dispose();
    throw error;
  }
  /** Open connections in the order they opened (eviction takes the oldest unpaired). */
  const clients = new Set<Connection>();
  const guesses = new GuessThrottle({
    free: limits.wrongTokens,
    windowMs: limits.tokenWindowMs,
    delayMs: limits.wrongTokenDelayMs,
    maxDelayMs: limits.wrongTokenMaxDelayMs,
  });
  const refusalLog = new LogThrottle(log);

  // ---- messages ---------------------------------------------------------------------------------

  const onGenerate = (client: Connection, message: GenerateMessage) => {
    const { requestId } = message;
    if (jobs.shuttingDown) return client.sendError('shutting_down', 'the bridge is shutting down; start it again', { requestId });
    if (message.base && client.protocol < BASE_PROTOCOL)
      return client.sendError('invalid_message', `generate.base needs protocol ${BASE_PROTOCOL}; this connection said hello with protocol ${client.protocol}`, { requestId });
    const info = message.model === undefined ? jobs.defaultModel() : jobs.models().find((m) => m.model === message.model);
    // A studio front door that knows no model yet: the job waits for the first worker's (a base
    // names a model, so it has to wait for one).
    if (!info && message.model === undefined && !message.base) return jobs.submit(client, message, undefined);
    if (!info) {
      if (jobs.models().length === 0) return client.sendError('invalid_params', `no GPU worker has announced a model yet; send this again once one has`, { requestId });
      const offered = jobs.models().map((m) => `"${m.model}"`).join(', ');
      return client.sendError('invalid_params', `model: this bridge offers ${offered}, not "${message.model}"; pick one of those (welcome.models)`, { requestId });
    }
    const misfit = modelMisfit(info, message);
    if (misfit) return client.sendError(misfit.code, misfit.message, { requestId });
    jobs.submit(client, message, info.model);
  };

  const onFetch = (client: Connection, jobId: string) => {
    if (client.fetching >= limits.fetchesPerClient)
      return client.sendError('rate_limited', `already replaying ${client.fetching} jobs; wait for their done before fetching more`, { jobId });
    client.fetching++;
    void jobs
      .fetch(client, jobId)
      .catch((error: unknown) => client.sendError('internal', `could not read job ${jobId}: ${String(error)}`, { jobId }))
      .finally(() => client.fetching--);
  };

  const onMessage = (client: Connection, message: ClientMessage) => {
    if (message.type === 'hello') return pair(client, { ok: true, message });
    switch (message.type) {
      case 'ping':
        return client.send({ type: 'pong', ...(message.id === undefined ? {} : { id: message.id }), time: Date.now() });
      case 'generate':
        return onGenerate(client, message);
      case 'cancel':
        return jobs.cancel(client, message.jobId);
      case 'fetch':
        return onFetch(client, message.jobId);
    }
  };

  /** Answers `hello`: the right token is welcomed at once; any failed hello is answered (a wrong
   *  token after a delay, see GuessThrottle) and closed with 1008. */
  const pair = (client: Connection, hello: HelloParse) => {
    const presented = hello.ok ? hello.message.token : hello.token;
    const rightToken = presented !== undefined && tokenMatches(options.token, presented);
    let refusal: { code: ErrorCode; message: string; reason: string } | undefined;
    if (!hello.ok) refusal = { code: hello.code, message: `${hello.message}; the plugin sends {"type":"hello","protocol":${PROTOCOL_VERSION},"token":"..."}`, reason: 'bad hello' };
    else if (!rightToken) refusal = { code: 'unauthorized', message: 'wrong pairing token; copy the token the bridge printed at start into the plugin', reason: 'unauthorized' };
    else if (!SUPPORTED_PROTOCOLS.includes(hello.message.protocol))
      refusal = {
        code: 'protocol_version',
        message: `this bridge speaks protocol ${SUPPORTED_PROTOCOLS.join(' or ')}, the client ${hello.message.protocol}; update the plugin or the bridge`,
        reason: 'protocol version',
      };
    if (!refusal) {
      if (!hello.ok) return; // never: a failed hello always has a refusal
      const { protocol } = hello.message;
      client.paired = true;
      client.protocol = protocol;
      return client.send(welcome(jobs.models(), protocol, limits.jobsPerClient));
    }
    client.refused = true;
    client.paired = false;
    const { code, message, reason } = refusal;
    const answer = () => {
      client.sendError(code, message);
      client.close(1008, reason);
    };
    const delay = rightToken ? 0 : guesses.fail(Date.now());
    if (delay === 0) answer();
    else client.later(delay, answer);
  };

  const onUnpairedFrame = (client: Connection, text: string) => {
    const hello = parseHello(text);
    if (hello.ok || hello.attempt) return pair(client, hello);
    client.sendError('unauthorized', hello.message);
  };

  const onFrame = (client: Connection, data: RawData, isBinary: boolean) => {
    if (client.refused) return;
    const started = Date.now();
    if (!client.admit(started)) return;
    if (isBinary) return client.sendError(client.paired ? 'binary_not_allowed' : 'unauthorized', 'clients send JSON text frames only');
    const bytes = Array.isArray(data) ? data.reduce((n, b) => n + b.length, 0) : data.byteLength;
    // Before pairing nothing but a small hello is read: a bigger frame is a failed hello, unread.
    if (!client.paired && bytes > MAX_HELLO_BYTES)
      return pair(client, { ok: false, code: 'unauthorized', message: `a hello is at most ${MAX_HELLO_BYTES} bytes, this frame is ${bytes}`, attempt: true });
    if (bytes > MAX_MESSAGE_BYTES) return client.sendError('message_too_large', `message is ${bytes} bytes; the limit is ${MAX_MESSAGE_BYTES}`);
    const text = (Array.isArray(data) ? Buffer.concat(data) : Buffer.isBuffer(data) ? data : Buffer.from(data)).toString('utf8');
    if (!client.paired) onUnpairedFrame(client, text);
    else {
      const parsed = parseClientMessage(text);
      if (!parsed.ok) client.sendError(parsed.code, parsed.message, parsed.requestId === undefined ? {} : { requestId: parsed.requestId });
      else onMessage(client, parsed.message);
    }
    const now = Date.now();
    client.charge(now - started, now);
  };

  // ---- transport --------------------------------------------------------------------------------

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
  // Node's headersTimeout misses a socket that sends nothing, or half a request and then
  // nothing: every socket must complete a request or an upgrade within the deadline.
  const handshakeDeadlines = new WeakMap<Duplex, NodeJS.Timeout>();
  const handshakeDone = (socket: Duplex) => clearTimeout(handshakeDeadlines.get(socket));
  http.on('connection', (socket: Duplex) => {
    const timer = setTimeout(() => socket.destroy(), limits.headersTimeoutMs);
    timer.unref();
    handshakeDeadlines.set(socket, timer);
    socket.once('close', () => clearTimeout(timer));
  });
  http.on('request', (req: IncomingMessage) => handshakeDone(req.socket));

  const wss = new WebSocketServer({ noServer: true, maxPayload: limits.maxFrameBytes });

  /** Makes room for one more connection from `address`: false when only paired ones hold the slots. */
  const makeRoom = (address: string): boolean => {
    const fromAddress = [...clients].filter((c) => c.address === address);
    const full = clients.size >= limits.maxConnections;
    const addressFull = fromAddress.length >= limits.connectionsPerAddress;
    if (!full && !addressFull) return true;
    const victim = (addressFull ? fromAddress : [...clients]).find((c) => !c.paired);
    if (!victim) return false;
    refusalLog.note('closed the oldest unpaired connections to make room for new ones');
    clients.delete(victim);
    victim.terminate();
    return true;
  };

  http.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    // Node removes its own 'error' listener before emitting 'upgrade', and ws adds one only inside
    // handleUpgrade: without this, a reset while we write a refusal is an unhandled 'error' (a crash).
    socket.on('error', () => socket.destroy());
    handshakeDone(socket);
    if (jobs.shuttingDown) return refuse(socket, '503 Service Unavailable', SHUTDOWN_REASON);
    if (!originAllowed(req.headers.origin, options.allowOrigins)) {
      refusalLog.note(`refused a WebSocket from origin ${JSON.stringify(req.headers.origin).slice(0, 80)} (start with --allow-origin to allow it)`);
      return refuse(socket, '403 Forbidden', 'origin not allowed');
    }
    const address = req.socket.remoteAddress ?? 'unknown';
    if (!makeRoom(address)) return refuse(socket, '503 Service Unavailable', 'too many connections; close another client and retry');
    wss.handleUpgrade(req, socket, head, (ws) => {
      const client = new Connection(ws, address, limits, log);
      clients.add(client);
      client.later(limits.helloTimeoutMs, () => {
        if (client.paired || client.refused) return;
        client.sendError('unauthorized', `no hello within ${limits.helloTimeoutMs} ms; send hello with the pairing token right after connecting`);
        client.close(1008, 'no hello');
      });
      ws.on('message', (data, isBinary) => {
        try {
          onFrame(client, data, isBinary);
        } catch (error) {
          client.sendError('internal', `the bridge failed on this message: ${String(error)}`);
        }
      });
      ws.on('error', () => {}); // e.g. a frame over maxPayload or a bad opcode; ws closes the socket itself
      ws.on('close', () => {
        clients.delete(client);
        jobs.unsubscribe(client);
      });
    });
  });

  const heartbeat = setInterval(() => clients.forEach((c) => c.heartbeat()), limits.heartbeatMs);
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
    for (const client of clients) client.close(1001, SHUTDOWN_REASON);
    await jobs.dispose();
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
 * The welcome in the client's own version (a version-1 client sees protocol 1); `models[0]` is
 * the default model. With none yet (a studio front door before its first worker), the model
 * fields are empty or the bridge's own bounds, and `note` says why.
 */
function welcome(models: PipelineInfo[], protocol: number, jobsPerClient: number): BridgeMessage {
  const info = models[0];
  return {
    type: 'welcome',
    protocol,
    ...(info
      ? { model: info.model, provider: info.provider, tiny: info.tiny, maxLayers: info.maxLayers, resolutions: info.resolutions }
      : { model: '', provider: '', tiny: false, maxLayers: MAX_LAYERS, resolutions: [...RESOLUTIONS], note: NO_MODEL_YET }),
    maxCanvasSide: MAX_CANVAS_SIDE,
    grid: GRID,
    maxPromptChars: MAX_PROMPT_CHARS,
    jobsPerClient,
    models: models.map((m) => ({ model: m.model, tiny: m.tiny, maxLayers: m.maxLayers, resolutions: m.resolutions })),
  };
}

function health(version: string, jobs: Jobs) {
  const info = jobs.defaultModel();
  return {
    ok: true,
    name: 'art-for-figma bridge',
    version,
    protocol: PROTOCOL_VERSION,
    protocols: SUPPORTED_PROTOCOLS,
    ...(info ? { model: info.model, provider: info.provider, tiny: info.tiny, maxLayers: info.maxLayers } : { model: null }),
    queue: jobs.counts,
    shuttingDown: jobs.shuttingDown,
    ...jobs.runnerHealth(),
  };
}

function refuse(socket: Duplex, status: string, why: string): void {
  socket.end(`HTTP/1.1 ${status}\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n${why}\n`);
}
