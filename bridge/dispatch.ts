/**
 * A connection's frames: budgeted, size-checked, then handed to pairing (before the connection has
 * paired) or parsed and routed to the job lifecycle (`job-lifecycle.ts`: generate, cancel, fetch) or
 * answered (`ping`, a repeated `hello`).
 */
import type { RawData } from 'ws';
import type { Connection } from './connection.ts';
import type { JobLifecycle } from './job-lifecycle.ts';
import type { Pairing } from './pairing.ts';
import { MAX_MESSAGE_BYTES } from './protocol/limits.ts';
import type { ClientMessage, GenerateMessage } from './protocol/messages.ts';
import { parseClientMessage } from './protocol/parse.ts';
import { modelMisfit } from './model-fit.ts';

export interface DispatchLimits {
  /** Replays of stored jobs (`fetch`) one connection may have in flight. */
  fetchesPerClient: number;
}

export class Dispatch {
  constructor(
    private readonly jobs: JobLifecycle,
    private readonly pairing: Pairing,
    private readonly limits: DispatchLimits,
  ) {}

  /** One frame; its handling time is billed to the connection's budget. */
  onFrame(client: Connection, data: RawData, isBinary: boolean): void {
    if (client.state === 'refused') return;
    const started = Date.now();
    if (!client.spend(started)) return;
    if (isBinary) return client.sendError(client.state === 'paired' ? 'binary_not_allowed' : 'unauthorized', 'clients send JSON text frames only');
    const bytes = Array.isArray(data) ? data.reduce((n, b) => n + b.length, 0) : data.byteLength;
    const text = () => (Array.isArray(data) ? Buffer.concat(data) : Buffer.isBuffer(data) ? data : Buffer.from(data)).toString('utf8');
    if (client.state === 'unpaired') this.pairing.onUnpairedFrame(client, bytes, text);
    else if (bytes > MAX_MESSAGE_BYTES) client.sendError('message_too_large', `message is ${bytes} bytes; the limit is ${MAX_MESSAGE_BYTES}`);
    else {
      const parsed = parseClientMessage(text());
      if (!parsed.ok) client.sendError(parsed.code, parsed.message, parsed.requestId === undefined ? {} : { requestId: parsed.requestId });
      else this.onMessage(client, parsed.message);
    }
    const now = Date.now();
    client.charge(now - started, now);
  }

  private onMessage(client: Connection, message: ClientMessage): void {
    switch (message.type) {
      case 'hello':
        return this.pairing.answer(client, { ok: true, message });
      case 'ping':
        return client.send({ type: 'pong', ...(message.id === undefined ? {} : { id: message.id }), time: Date.now() });
      case 'generate':
        return this.onGenerate(client, message);
      case 'cancel':
        return this.jobs.cancel(client, message.jobId);
      case 'fetch':
        return this.onFetch(client, message.jobId);
    }
  }

  private onGenerate(client: Connection, message: GenerateMessage): void {
    const { requestId } = message;
    const { jobs } = this;
    if (jobs.shuttingDown) return client.sendError('shutting_down', 'the bridge is shutting down; start it again', { requestId });
    const info = message.model === undefined ? jobs.defaultModel() : jobs.models().find((m) => m.model === message.model);
    // A studio front door that knows no model yet: the job waits for the first worker's (a base
    // names a model, so it has to wait for one).
    if (!info && message.model === undefined && !message.base) return jobs.submit(client, message, undefined);
    if (!info) {
      if (jobs.models().length === 0) return client.sendError('invalid_params', 'no GPU worker has announced a model yet; send this again once one has', { requestId });
      const offered = jobs.models().map((m) => `"${m.model}"`).join(', ');
      return client.sendError('invalid_params', `model: this bridge offers ${offered}, not "${message.model}"; pick one of those (welcome.models)`, { requestId });
    }
    const misfit = modelMisfit(info, message);
    if (misfit) return client.sendError(misfit.code, misfit.message, { requestId });
    jobs.submit(client, message, info.model);
  }

  private onFetch(client: Connection, jobId: string): void {
    if (client.fetching >= this.limits.fetchesPerClient)
      return client.sendError('rate_limited', `already replaying ${client.fetching} jobs; wait for their done before fetching more`, { jobId });
    client.fetching++;
    void this.jobs
      .fetch(client, jobId)
      .catch((error: unknown) => client.sendError('internal', `could not read job ${jobId}: ${String(error)}`, { jobId }))
      .finally(() => client.fetching--);
  }
}

