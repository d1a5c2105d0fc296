/**
 * The bridge: an HTTP server (`GET /health`) carrying a WebSocket endpoint that checks origins,
 * pairs clients, rate-limits and validates their messages, and hands generate, cancel and fetch
 * to the job lifecycle (`jobs.ts`: queue, run, store before sending, replay).
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { AddressInfo } from 'node:net';
import { WebSocketServer, type RawData } from 'ws';
import { MAX_CANVAS_SIDE, GRID } from '../gpu-server/constants.ts';
import type { PipelineInfo } from '../gpu-server/pipeline/types.ts';
import {
  PROTOCOL_VERSION,
  MAX_MESSAGE_BYTES,
  MAX_PROMPT_CHARS,
  parseClientMessage,
  type BridgeMessage,
  type ClientMessage,
  type ErrorCode,
  type GenerateMessage,
  type HelloMessage,
} from './protocol.ts';
import { originAllowed } from './origin.ts';
import { tokenMatches } from './pairing.ts';
import { FailureLimiter } from './rate-limit.ts';
import { Connection } from './connection.ts';
import { Jobs } from './jobs.ts';
import { openRunner, type RunnerChoice } from './open-runner.ts';

export interface BridgeLimits {
  /** Jobs one connection may have waiting or running. */
  jobsPerClient: number;
  /** Jobs waiting in all. */
  queueLength: number;
  /** Wrong tokens per address before it is blocked for `tokenWindowMs`. */
  wrongTokens: number;
  tokenWindowMs: number;
  /** Messages a connection may send at once, and per second after that. */
  burst: number;
  perSecond: number;
  /** Frames above this close the connection outright (ws code 1009); between
   *  MAX_MESSAGE_BYTES and this the client gets a `message_too_large` error. */
  maxFrameBytes: number;
  progressIntervalMs: number;
}

export const DEFAULT_LIMITS: BridgeLimits = {
  jobsPerClient: 4,
  queueLength: 32,
  wrongTokens: 5,
  tokenWindowMs: 60_000,
  burst: 60,
  perSecond: 30,
  maxFrameBytes: 1024 * 1024,
  progressIntervalMs: 100,
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
  /** The default model's pipeline. */
  readonly info: PipelineInfo;
  /** Stops accepting, empties the queue, finishes or cancels the running jobs, closes sockets. */
  close(): Promise<void>;
}

const SHUTDOWN_REASON = 'bridge shutting down';

export async function startBridge(options: BridgeOptions): Promise<Bridge> {
  const limits: BridgeLimits = { ...DEFAULT_LIMITS, ...options.limits };
  const log = options.log ?? (() => {});
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
  const clients = new Set<Connection>();
  const wrongTokens = new FailureLimiter(limits.wrongTokens, limits.tokenWindowMs);

  // ---- messages ---------------------------------------------------------------------------------

  const onGenerate = (client: Connection, message: GenerateMessage) => {
    const { requestId } = message;
    if (jobs.shuttingDown) return client.sendError('shutting_down', 'the bridge is shutting down; start it again', { requestId });
    const info = message.model === undefined ? jobs.info : jobs.models().find((m) => m.model === message.model);
    if (!info) {
      const offered = jobs.models().map((m) => `"${m.model}"`).join(', ');
      return client.sendError('invalid_params', `model: this bridge offers ${offered}, not "${message.model}"; pick one of those (welcome.models)`, { requestId });
    }
    const misfit = modelMisfit(info, message);
    if (misfit) return client.sendError(misfit.code, misfit.message, { requestId });
    jobs.submit(client, message, info.model);
  };

  const onMessage = (client: Connection, message: ClientMessage) => {
    if (message.type === 'hello') return pair(client, message, options.token, wrongTokens, jobs.models());
    if (!client.paired) return client.sendError('unauthorized', 'send hello with the pairing token first');
    switch (message.type) {
      case 'ping':
        return client.send({ type: 'pong', ...(message.id === undefined ? {} : { id: message.id }), time: Date.now() });
      case 'generate':
        return onGenerate(client, message);
      case 'cancel':
        return jobs.cancel(client, message.jobId);
      case 'fetch':
        return void jobs
          .fetch(client, message.jobId)
          .catch((error: unknown) => client.sendError('internal', `could not read job ${message.jobId}: ${String(error)}`, { jobId: message.jobId }));
    }
  };

  const onFrame = (client: Connection, data: RawData, isBinary: boolean) => {
    if (!client.admit(Date.now())) return;
    if (isBinary) return client.sendError('binary_not_allowed', 'clients send JSON text frames only');
    const bytes = Array.isArray(data) ? data.reduce((n, b) => n + b.length, 0) : data.byteLength;
    if (bytes > MAX_MESSAGE_BYTES) return client.sendError('message_too_large', `message is ${bytes} bytes; the limit is ${MAX_MESSAGE_BYTES}`);
    const text = (Array.isArray(data) ? Buffer.concat(data) : Buffer.isBuffer(data) ? data : Buffer.from(data)).toString('utf8');
    const parsed = parseClientMessage(text);
    if (!parsed.ok) return client.sendError(parsed.code, parsed.message, parsed.requestId === undefined ? {} : { requestId: parsed.requestId });
    onMessage(client, parsed.message);
  };

  // ---- transport --------------------------------------------------------------------------------

  const http = createServer((req: IncomingMessage, res: ServerResponse) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method === 'GET' && path === '/health') {
      res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store' });
      return res.end(JSON.stringify(health(options.version, jobs)));
    }
    res.writeHead(404, { 'content-type': 'text/plain' });
    res.end('not found: the bridge serves GET /health and a WebSocket endpoint\n');
  });

  const wss = new WebSocketServer({ noServer: true, maxPayload: limits.maxFrameBytes });

  http.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    if (jobs.shuttingDown) return refuse(socket, '503 Service Unavailable', SHUTDOWN_REASON);
    if (!originAllowed(req.headers.origin, options.allowOrigins)) {
      log(`refused a WebSocket from origin ${JSON.stringify(req.headers.origin)} (start with --allow-origin to allow it)`);
      return refuse(socket, '403 Forbidden', 'origin not allowed');
    }
    wss.handleUpgrade(req, socket, head, (ws) => {
      const client = new Connection(ws, req.socket.remoteAddress ?? 'unknown', limits);
      clients.add(client);
      ws.on('message', (data, isBinary) => {
        try {
          onFrame(client, data, isBinary);
        } catch (error) {
          client.sendError('internal', `the bridge failed on this message: ${String(error)}`);
        }
      });
      ws.on('error', () => {}); // e.g. a frame over maxPayload; ws closes the socket itself
      ws.on('close', () => {
        clients.delete(client);
        jobs.unsubscribe(client);
      });
    });
  });

  await new Promise<void>((resolve, reject) => {
    http.once('error', reject);
    http.listen(options.port, options.host, () => {
      http.off('error', reject);
      resolve();
    });
  });
  const address = http.address() as AddressInfo;

  const close = async () => {
    if (jobs.shuttingDown) return;
    log('shutting down: no new connections or jobs');
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
      return jobs.info;
    },
    close,
  };
}

/** Answers `hello`: welcome a client with the right token and protocol, else say why and close. */
function pair(client: Connection, message: HelloMessage, token: string, wrongTokens: FailureLimiter, models: PipelineInfo[]): void {
  const now = Date.now();
  if (wrongTokens.blocked(client.address, now)) {
    const seconds = Math.ceil(wrongTokens.retryAfterMs(client.address, now) / 1000);
    client.sendError('rate_limited', `too many wrong pairing tokens; try again in ${seconds} s`);
    return client.close(1008, 'rate limited');
  }
  if (message.protocol !== PROTOCOL_VERSION) {
    client.sendError('protocol_version', `this bridge speaks protocol ${PROTOCOL_VERSION}, the client ${message.protocol}; update the plugin or the bridge`);
    return client.close(1008, 'protocol version');
  }
  if (!tokenMatches(token, message.token)) {
    wrongTokens.fail(client.address, now);
    client.sendError('unauthorized', 'wrong pairing token; copy the token the bridge printed at start into the plugin');
    return client.close(1008, 'unauthorized');
  }
  client.paired = true;
  client.send(welcome(models));
}

/** `models[0]` is the default model. */
function welcome(models: PipelineInfo[]): BridgeMessage {
  const info = models[0];
  return {
    type: 'welcome',
    protocol: PROTOCOL_VERSION,
    model: info.model,
    provider: info.provider,
    tiny: info.tiny,
    maxLayers: info.maxLayers,
    resolutions: info.resolutions,
    maxCanvasSide: MAX_CANVAS_SIDE,
    grid: GRID,
    maxPromptChars: MAX_PROMPT_CHARS,
    models: models.map((m) => ({ model: m.model, tiny: m.tiny, maxLayers: m.maxLayers, resolutions: m.resolutions })),
  };
}

/** Why a request the schema accepted still does not fit the loaded model, if it does not. */
function modelMisfit(info: PipelineInfo, message: GenerateMessage): { code: ErrorCode; message: string } | undefined {
  const { resolution } = message.params;
  if (info.resolutions.length > 0 && !info.resolutions.includes(resolution))
    return {
      code: 'invalid_params',
      message: `params.resolution: model "${info.model}" generates at ${info.resolutions.join(' or ')} pixels, not ${resolution}`,
    };
  if (message.layout.boxes.length > info.maxLayers)
    return { code: 'invalid_layout', message: `layout has ${message.layout.boxes.length} layers; model "${info.model}" takes at most ${info.maxLayers}` };
  return undefined;
}

function health(version: string, jobs: Jobs) {
  const { info } = jobs;
  return {
    ok: true,
    name: 'art-for-figma bridge',
    version,
    protocol: PROTOCOL_VERSION,
    model: info.model,
    provider: info.provider,
    tiny: info.tiny,
    maxLayers: info.maxLayers,
    queue: jobs.counts,
    shuttingDown: jobs.shuttingDown,
    ...jobs.runnerHealth(),
  };
}

function refuse(socket: Duplex, status: string, why: string): void {
  socket.end(`HTTP/1.1 ${status}\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n${why}\n`);
}
