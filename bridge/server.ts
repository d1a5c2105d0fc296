/**
 * The bridge: an HTTP server (`GET /health`) carrying a WebSocket endpoint that pairs clients,
 * validates their messages, queues their jobs, runs them on the pipeline worker, stores every
 * result before sending it, and replays stored jobs on `fetch`.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { AddressInfo } from 'node:net';
import { randomUUID } from 'node:crypto';
import { WebSocketServer, WebSocket, type RawData } from 'ws';
import { MAX_CANVAS_SIDE, GRID, MERGED_LAYER } from '../gpu-server/constants.ts';
import type { GenerateParams, PipelineInfo, Progress } from '../gpu-server/pipeline/types.ts';
import {
  PROTOCOL_VERSION,
  MAX_MESSAGE_BYTES,
  MAX_PROMPT_CHARS,
  encodeImageFrame,
  parseClientMessage,
  type BridgeMessage,
  type ClientMessage,
  type ErrorCode,
  type GenerateMessage,
  type Timings,
} from './protocol.ts';
import { originAllowed } from './origin.ts';
import { tokenMatches } from './pairing.ts';
import { FailureLimiter, TokenBucket } from './rate-limit.ts';
import { JobQueue } from './queue.ts';
import { JobStore, type JobManifest, type LayerPng } from './job-store.ts';
import { PipelineHost, JobAborted } from './pipeline-host.ts';
import { shouldSendProgress, type LastSent } from './progress-throttle.ts';
import type { PipelineFactoryOptions } from './worker-messages.ts';

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
  pipeline: { factory: string; options: PipelineFactoryOptions };
  /** At shutdown, cancel the running job instead of letting it finish. */
  cancelOnShutdown: boolean;
  limits?: Partial<BridgeLimits>;
  /** Version reported by /health. */
  version: string;
  log?: (line: string) => void;
}

export interface Bridge {
  readonly host: string;
  readonly port: number;
  readonly info: PipelineInfo;
  /** Stops accepting, empties the queue, finishes or cancels the running job, closes sockets. */
  close(): Promise<void>;
}

interface Client {
  id: string;
  ws: WebSocket;
  address: string;
  paired: boolean;
  bucket: TokenBucket;
  lastRateWarning: number;
  dropped: number;
}

interface Job {
  id: string;
  requestId: string;
  clientId: string;
  message: GenerateMessage;
  params: GenerateParams;
  subscribers: Set<Client>;
  queuedAt: number;
  createdAt: string;
  lastPosition?: number;
  seq?: number;
  cancelRequested: boolean;
  lastProgress?: LastSent;
}

const SHUTDOWN_REASON = 'bridge shutting down';

export async function startBridge(options: BridgeOptions): Promise<Bridge> {
  const limits: BridgeLimits = { ...DEFAULT_LIMITS, ...options.limits };
  const log = options.log ?? (() => {});
  const store = new JobStore(options.outputs, options.keepJobs);
  await store.open();
  let host = await PipelineHost.start(options.pipeline.factory, options.pipeline.options);
  const info = host.info;

  const queue = new JobQueue<Job>({ perClient: limits.jobsPerClient, global: limits.queueLength });
  const jobs = new Map<string, Job>();
  const clients = new Set<Client>();
  const wrongTokens = new FailureLimiter(limits.wrongTokens, limits.tokenWindowMs);
  let closing = false;
  let running: Promise<void> | undefined;

  // ---- sending ----------------------------------------------------------------------------------

  const send = (client: Client, message: BridgeMessage) => {
    if (client.ws.readyState === WebSocket.OPEN) client.ws.send(JSON.stringify(message));
  };
  const sendError = (client: Client, code: ErrorCode, message: string, ids: { requestId?: string; jobId?: string } = {}) =>
    send(client, { type: 'error', code, message, ...ids });
  const broadcast = (job: Job, message: BridgeMessage) => job.subscribers.forEach((c) => send(c, message));

  const deliver = (client: Client, manifest: JobManifest, layers: LayerPng[], fetched: boolean) => {
    if (client.ws.readyState !== WebSocket.OPEN) return;
    for (const layer of layers) {
      send(client, {
        type: 'layer',
        jobId: manifest.jobId,
        index: layer.index,
        box: layer.box,
        width: layer.width,
        height: layer.height,
        bytes: layer.png.length,
      });
      client.ws.send(encodeImageFrame({ kind: 'layer', jobId: manifest.jobId, layerIndex: layer.index, png: layer.png }));
    }
    send(client, {
      type: 'done',
      jobId: manifest.jobId,
      ...(manifest.requestId === undefined ? {} : { requestId: manifest.requestId }),
      layerCount: layers.length,
      seed: manifest.seed,
      model: manifest.model,
      provider: manifest.provider,
      tiny: manifest.tiny,
      promptTruncated: manifest.promptTruncated,
      timings: manifest.timings,
      fetched,
    });
  };

  /** Tells every waiting job's subscribers where it stands, when that changed. */
  const updatePositions = () => {
    for (const { item: job } of queue.waitingJobs()) {
      const position = queue.position(job.id);
      if (position === undefined || position === job.lastPosition) continue;
      job.lastPosition = position;
      broadcast(job, { type: 'queued', requestId: job.requestId, jobId: job.id, position });
    }
  };

  // ---- running jobs -----------------------------------------------------------------------------

  const pump = () => {
    if (running) return;
    const next = queue.start();
    if (!next) return;
    running = runJob(next.item).finally(() => {
      queue.finish(next.id);
      jobs.delete(next.id);
      running = undefined;
      if (!closing) pump();
      updatePositions();
    });
    updatePositions();
  };

  const runJob = async (job: Job): Promise<void> => {
    if (job.lastPosition !== 0) broadcast(job, { type: 'queued', requestId: job.requestId, jobId: job.id, position: 0 });
    job.lastPosition = 0;
    const startedAt = Date.now();
    try {
      if (!host.alive) {
        log('pipeline worker is gone; starting a new one');
        host = await PipelineHost.start(options.pipeline.factory, options.pipeline.options);
      }
      const onProgress = (progress: Progress) => {
        const now = Date.now();
        if (!shouldSendProgress(job.lastProgress, progress, now, limits.progressIntervalMs)) return;
        job.lastProgress = { stage: progress.stage, at: now };
        broadcast(job, { type: 'progress', jobId: job.id, ...progress });
      };
      const onPreview = (png: Uint8Array) => {
        const frame = encodeImageFrame({ kind: 'preview', jobId: job.id, layerIndex: MERGED_LAYER, png });
        job.subscribers.forEach((c) => c.ws.readyState === WebSocket.OPEN && c.ws.send(frame));
      };
      const run = host.generate(job.params, onProgress, onPreview);
      job.seq = run.seq;
      if (job.cancelRequested) host.cancel(run.seq);
      const result = await run.result;
      if (job.cancelRequested) throw new JobAborted('cancelled after the last step');
      const finished = Date.now();
      const timings: Timings = { ...result.timings, queue: startedAt - job.queuedAt, total: finished - job.queuedAt };
      const manifest = await store.save(
        {
          jobId: job.id,
          requestId: job.requestId,
          prompt: job.message.prompt,
          layout: job.message.layout,
          params: job.message.params,
          seed: result.seed,
          model: result.model,
          provider: result.provider,
          tiny: result.tiny,
          promptTruncated: result.promptTruncated,
          timings,
          createdAt: job.createdAt,
          finishedAt: new Date(finished).toISOString(),
        },
        result.layers,
      );
      log(`job ${job.id} done in ${timings.total} ms (${result.layers.length} layers)`);
      job.subscribers.forEach((c) => deliver(c, manifest, result.layers, false));
    } catch (error) {
      if (error instanceof JobAborted || job.cancelRequested) {
        const why = closing && options.cancelOnShutdown ? 'the bridge is shutting down' : 'cancel was requested';
        log(`job ${job.id} cancelled`);
        broadcast(job, { type: 'error', code: 'cancelled', message: `job cancelled: ${why}`, requestId: job.requestId, jobId: job.id });
      } else {
        const message = error instanceof Error ? error.message : String(error);
        log(`job ${job.id} failed: ${message}`);
        broadcast(job, {
          type: 'error',
          code: 'generation_failed',
          message: `generation failed: ${message}. Check the bridge's console; try again or restart the bridge.`,
          requestId: job.requestId,
          jobId: job.id,
        });
      }
    }
  };

  // ---- messages ---------------------------------------------------------------------------------

  const onGenerate = (client: Client, message: GenerateMessage) => {
    const { requestId } = message;
    if (closing) return sendError(client, 'shutting_down', 'the bridge is shutting down; start it again', { requestId });
    const { resolution } = message.params;
    if (info.resolutions.length > 0 && !info.resolutions.includes(resolution))
      return sendError(
        client,
        'invalid_params',
        `params.resolution: model "${info.model}" generates at ${info.resolutions.join(' or ')} pixels, not ${resolution}`,
        { requestId },
      );
    if (message.layout.boxes.length > info.maxLayers)
      return sendError(client, 'invalid_layout', `layout has ${message.layout.boxes.length} layers; model "${info.model}" takes at most ${info.maxLayers}`, {
        requestId,
      });
    const job: Job = {
      id: randomUUID(),
      requestId,
      clientId: client.id,
      message,
      params: {
        prompt: message.prompt,
        layout: message.layout,
        steps: message.params.steps,
        guidance: message.params.guidance,
        trueCfg: message.params.trueCfg,
        seed: message.params.seed,
      },
      subscribers: new Set([client]),
      queuedAt: Date.now(),
      createdAt: new Date().toISOString(),
      cancelRequested: false,
    };
    const added = queue.add(job.id, client.id, job);
    if (!added.ok) {
      const why =
        added.reason === 'client_full'
          ? `this connection already has ${limits.jobsPerClient} jobs queued or running; wait for one to finish`
          : `the queue is full (${limits.queueLength} jobs waiting); try again later`;
      return sendError(client, 'queue_full', why, { requestId });
    }
    jobs.set(job.id, job);
    job.lastPosition = added.position;
    send(client, { type: 'queued', requestId, jobId: job.id, position: added.position });
    pump();
  };

  const onCancel = (client: Client, jobId: string) => {
    const job = jobs.get(jobId);
    if (!job) return sendError(client, 'unknown_job', `job ${jobId} is not queued or running (finished, cancelled, or never existed)`, { jobId });
    job.subscribers.add(client);
    if (queue.remove(jobId)) {
      jobs.delete(jobId);
      broadcast(job, { type: 'error', code: 'cancelled', message: 'job cancelled before it started', requestId: job.requestId, jobId });
      updatePositions();
      return;
    }
    job.cancelRequested = true;
    if (job.seq !== undefined) host.cancel(job.seq);
  };

  const onFetch = async (client: Client, jobId: string) => {
    const active = jobs.get(jobId);
    if (active) {
      // Still waiting or running: follow it from here on.
      active.subscribers.add(client);
      const position = queue.position(jobId) ?? 0;
      return send(client, { type: 'queued', requestId: active.requestId, jobId, position });
    }
    const stored = await store.load(jobId);
    if (!stored) return sendError(client, 'unknown_job', `no finished job ${jobId} in the job store (never existed, or pruned)`, { jobId });
    deliver(client, stored.manifest, stored.layers, true);
  };

  const onMessage = (client: Client, message: ClientMessage) => {
    if (message.type === 'hello') {
      const now = Date.now();
      if (wrongTokens.blocked(client.address, now)) {
        const seconds = Math.ceil(wrongTokens.retryAfterMs(client.address, now) / 1000);
        sendError(client, 'rate_limited', `too many wrong pairing tokens; try again in ${seconds} s`);
        return client.ws.close(1008, 'rate limited');
      }
      if (message.protocol !== PROTOCOL_VERSION) {
        sendError(client, 'protocol_version', `this bridge speaks protocol ${PROTOCOL_VERSION}, the client ${message.protocol}; update the plugin or the bridge`);
        return client.ws.close(1008, 'protocol version');
      }
      if (!tokenMatches(options.token, message.token)) {
        wrongTokens.fail(client.address, now);
        sendError(client, 'unauthorized', 'wrong pairing token; copy the token the bridge printed at start into the plugin');
        return client.ws.close(1008, 'unauthorized');
      }
      client.paired = true;
      return send(client, {
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
      });
    }
    if (!client.paired) return sendError(client, 'unauthorized', 'send hello with the pairing token first');
    switch (message.type) {
      case 'ping':
        return send(client, { type: 'pong', ...(message.id === undefined ? {} : { id: message.id }), time: Date.now() });
      case 'generate':
        return onGenerate(client, message);
      case 'cancel':
        return onCancel(client, message.jobId);
      case 'fetch':
        return void onFetch(client, message.jobId).catch((error: unknown) =>
          sendError(client, 'internal', `could not read job ${message.jobId}: ${String(error)}`, { jobId: message.jobId }),
        );
    }
  };

  const onFrame = (client: Client, data: RawData, isBinary: boolean) => {
    const now = Date.now();
    if (!client.bucket.take(now)) {
      client.dropped++;
      if (now - client.lastRateWarning >= 1000) {
        client.lastRateWarning = now;
        sendError(client, 'rate_limited', `too many messages; at most ${limits.perSecond} a second, the rest are dropped`);
      }
      if (client.dropped > limits.burst * 10) client.ws.close(1008, 'message flood');
      return;
    }
    if (isBinary) return sendError(client, 'binary_not_allowed', 'clients send JSON text frames only');
    const bytes = Array.isArray(data) ? data.reduce((n, b) => n + b.length, 0) : data.byteLength;
    if (bytes > MAX_MESSAGE_BYTES)
      return sendError(client, 'message_too_large', `message is ${bytes} bytes; the limit is ${MAX_MESSAGE_BYTES}`);
    const text = (Array.isArray(data) ? Buffer.concat(data) : Buffer.isBuffer(data) ? data : Buffer.from(data)).toString('utf8');
    const parsed = parseClientMessage(text);
    if (!parsed.ok) return sendError(client, parsed.code, parsed.message, parsed.requestId === undefined ? {} : { requestId: parsed.requestId });
    onMessage(client, parsed.message);
  };

  // ---- transport --------------------------------------------------------------------------------

  const health = () => ({
    ok: true,
    name: 'art-for-figma bridge',
    version: options.version,
    protocol: PROTOCOL_VERSION,
    model: info.model,
    provider: info.provider,
    tiny: info.tiny,
    maxLayers: info.maxLayers,
    queue: { waiting: queue.waitingCount, running: queue.running ? 1 : 0 },
    shuttingDown: closing,
  });

  const http = createServer((req: IncomingMessage, res: ServerResponse) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method === 'GET' && path === '/health') {
      res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store' });
      return res.end(JSON.stringify(health()));
    }
    res.writeHead(404, { 'content-type': 'text/plain' });
    res.end('not found: the bridge serves GET /health and a WebSocket endpoint\n');
  });

  const wss = new WebSocketServer({ noServer: true, maxPayload: limits.maxFrameBytes });

  const refuse = (socket: Duplex, status: string, why: string) => {
    socket.end(`HTTP/1.1 ${status}\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n${why}\n`);
  };

  http.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    if (closing) return refuse(socket, '503 Service Unavailable', SHUTDOWN_REASON);
    if (!originAllowed(req.headers.origin, options.allowOrigins)) {
      log(`refused a WebSocket from origin ${JSON.stringify(req.headers.origin)} (start with --allow-origin to allow it)`);
      return refuse(socket, '403 Forbidden', 'origin not allowed');
    }
    wss.handleUpgrade(req, socket, head, (ws) => {
      const client: Client = {
        id: randomUUID(),
        ws,
        address: req.socket.remoteAddress ?? 'unknown',
        paired: false,
        bucket: new TokenBucket(limits.burst, limits.perSecond, Date.now()),
        lastRateWarning: 0,
        dropped: 0,
      };
      clients.add(client);
      ws.on('message', (data, isBinary) => {
        try {
          onFrame(client, data, isBinary);
        } catch (error) {
          sendError(client, 'internal', `the bridge failed on this message: ${String(error)}`);
        }
      });
      ws.on('error', () => {}); // e.g. a frame over maxPayload; ws closes the socket itself
      ws.on('close', () => {
        clients.delete(client);
        // A disconnect does not cancel: the job runs on and is stored for `fetch`.
        for (const job of jobs.values()) job.subscribers.delete(client);
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
    if (closing) return;
    closing = true;
    log('shutting down: no new connections or jobs');
    for (const { id, item: job } of queue.waitingJobs()) {
      queue.remove(id);
      jobs.delete(id);
      broadcast(job, { type: 'error', code: 'shutting_down', message: 'the bridge shut down before this job started; start it again and resend', requestId: job.requestId, jobId: id });
    }
    const current = queue.running?.item;
    if (current && options.cancelOnShutdown) onCancelForShutdown(current);
    await running;
    for (const client of clients) client.ws.close(1001, SHUTDOWN_REASON);
    await host.dispose();
    await new Promise<void>((resolve) => {
      wss.close(() => resolve());
    });
    http.closeAllConnections();
    await new Promise<void>((resolve) => http.close(() => resolve()));
  };

  const onCancelForShutdown = (job: Job) => {
    job.cancelRequested = true;
    if (job.seq !== undefined) host.cancel(job.seq);
  };

  return { host: address.address, port: address.port, info, close };
}
