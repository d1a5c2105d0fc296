/**
 * A connection's frames: budgeted, size-checked, then handed to pairing (before the connection has
 * paired) or parsed and routed to the job lifecycle (`job-lifecycle.ts`: generate, decompose, cancel, fetch)
 * or answered (`ping`, a repeated `hello`). A paired connection's one binary frame is the image of
 * the `decompose` right before it (upload.ts).
 */
import type { RawData } from 'ws';
import type { Connection } from './connection.ts';
import type { JobLifecycle } from './job-lifecycle.ts';
import type { Pairing } from './pairing.ts';
import { MAX_MESSAGE_BYTES } from './protocol/limits.ts';
import type { ClientMessage, DecomposeMessage, ErrorCode, GenerateMessage, JobMessage } from './protocol/messages.ts';
import { parseClientMessage } from './protocol/parse.ts';
import { modelMisfit } from './model-fit.ts';
import { frameRefusal, type PendingUpload } from './upload.ts';
import type { ImageDecoder } from './image-decoder.ts';

export interface DispatchLimits {
  /** Replays of stored jobs (`fetch`) one connection may have in flight. */
  fetchesPerClient: number;
  /** Text frames above this close the connection outright (ws code 1009); between
   *  MAX_MESSAGE_BYTES and this the client gets a `message_too_large` error. Before pairing it is
   *  every frame's limit (ws's maxPayload); a paired connection may send an image up to
   *  MAX_FLAT_IMAGE_BYTES. */
  maxFrameBytes: number;
  /** A `decompose`'s image must arrive (as the next frame) within this. */
  uploadTimeoutMs: number;
  /** Jobs one connection may have waiting or running: also the most images it may have being decoded. */
  jobsPerClient: number;
}

export class Dispatch {
  constructor(
    private readonly jobs: JobLifecycle,
    private readonly pairing: Pairing,
    private readonly limits: DispatchLimits,
    private readonly decoder: ImageDecoder,
  ) {}

  /** One frame; its handling time is billed to the connection's budget. */
  onFrame(client: Connection, data: RawData, isBinary: boolean): void {
    if (client.state === 'refused') return;
    const started = Date.now();
    if (!client.spend(started)) return;
    const bytes = Array.isArray(data) ? data.reduce((n, b) => n + b.length, 0) : data.byteLength;
    const buffer = () => (Array.isArray(data) ? Buffer.concat(data) : Buffer.isBuffer(data) ? data : Buffer.from(data));
    const text = () => buffer().toString('utf8');
    if (isBinary) {
      if (client.state === 'paired') this.onImage(client, buffer());
      else client.sendError('unauthorized', 'send hello with the pairing token first (as a JSON text frame)');
    } else if (client.state === 'unpaired') this.pairing.onUnpairedFrame(client, bytes, text);
    else {
      // A text frame where a decompose's image was due: that decompose is refused.
      const missed = client.takeUpload();
      if (missed?.accepted)
        client.sendError('image_missing', 'decompose must be followed at once by its PNG as a binary frame; another message came first. Send decompose and its image again', { requestId: missed.accepted.message.requestId });
      // Paired connections may send frames the size of an image; text stays small.
      if (bytes > this.limits.maxFrameBytes) return client.closeNow(1009, 'text frame too big');
      if (bytes > MAX_MESSAGE_BYTES) client.sendError('message_too_large', `message is ${bytes} bytes; the limit is ${MAX_MESSAGE_BYTES}`);
      else {
        const parsed = parseClientMessage(text());
        if (parsed.ok) this.onMessage(client, parsed.message);
        else {
          client.sendError(parsed.code, parsed.message, parsed.requestId === undefined ? {} : { requestId: parsed.requestId });
          // A refused decompose's image, if it comes next, is discarded unread.
          if (parsed.type === 'decompose') this.expectImage(client, parsed.requestId === undefined ? {} : { requestId: parsed.requestId });
        }
      }
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
      case 'decompose':
        return this.onDecompose(client, message);
      case 'cancel':
        return this.jobs.cancel(client, message.jobId);
      case 'fetch':
        return this.onFetch(client, message.jobId);
    }
  }

  private onGenerate(client: Connection, message: GenerateMessage): void {
    const { jobs } = this;
    // A studio front door that knows no model yet: a generation that names no model and no base
    // waits for the first worker's (checked against it then).
    if (!jobs.shuttingDown && jobs.models().length === 0 && message.model === undefined && !message.base) return jobs.submit(client, message, undefined);
    const model = this.modelFor(client, message);
    if (model) this.jobs.submit(client, message, model);
  }

  /** A `decompose` waits for its image, the connection's next frame; a refused one's image is discarded unread. */
  private onDecompose(client: Connection, message: DecomposeMessage): void {
    const { requestId } = message;
    const model = this.modelFor(client, message);
    this.expectImage(client, model ? { requestId, accepted: { message, model } } : { requestId });
  }

  private expectImage(client: Connection, pending: PendingUpload): void {
    const { uploadTimeoutMs } = this.limits;
    client.expectUpload(pending, uploadTimeoutMs, (late) => {
      if (late.accepted) client.sendError('image_missing', `no image came within ${uploadTimeoutMs} ms of decompose; send the PNG as the frame right after it`, { requestId: late.requestId });
    });
  }

  /**
   * The frame a `decompose` announced: its length and header checked here (O(1)), then decoded
   * (bounded) on the decoder's thread, then queued; nothing is kept of a refused one.
   */
  private onImage(client: Connection, frame: Uint8Array): void {
    const pending = client.takeUpload();
    if (!pending)
      return client.sendError('binary_not_allowed', 'a binary frame is read only as the image of the decompose message right before it; send decompose, then its PNG');
    if (!pending.accepted) return; // its decompose was refused and answered: the image goes unread
    const { message, model } = pending.accepted;
    const { requestId } = message;
    const refusal = frameRefusal(message, frame);
    if (refusal) return client.sendError(refusal.code, refusal.message, { requestId });
    if (client.decoding >= this.limits.jobsPerClient)
      return client.sendError('rate_limited', `${client.decoding} images from this connection are still being checked; send the next decompose after their queued`, { requestId });
    client.decoding++;
    // A copy of its own (a frame may be a view into a larger socket buffer), moved to the decoder's thread.
    void this.decoder
      .decode(new Uint8Array(frame), message.layout)
      .then(({ png, result }) => {
        if (!client.open) return; // gone meanwhile: nothing is kept
        if (!result.ok) return client.sendError(result.code, result.message, { requestId });
        if (this.jobs.shuttingDown) return client.sendError('shutting_down', 'the bridge is shutting down; start it again', { requestId });
        this.jobs.submitDecompose(client, message, model, png, result.image);
      })
      .catch((error: unknown) => client.sendError('internal', `the image could not be checked: ${String(error)}; send decompose and its image again`, { requestId }))
      .finally(() => client.decoding--);
  }

  /** The model a job message may run on, or undefined when it was refused (answered). */
  private modelFor(client: Connection, message: JobMessage): string | undefined {
    const { requestId } = message;
    const { jobs } = this;
    const refuse = (code: ErrorCode, text: string) => {
      client.sendError(code, text, { requestId });
      return undefined;
    };
    if (jobs.shuttingDown) return refuse('shutting_down', 'the bridge is shutting down; start it again');
    const info = message.model === undefined ? jobs.defaultModel() : jobs.models().find((m) => m.model === message.model);
    if (!info) {
      if (jobs.models().length === 0) return refuse('invalid_params', 'no GPU worker has announced a model yet; send this again once one has');
      const offered = jobs.models().map((m) => `"${m.model}"`).join(', ');
      return refuse('invalid_params', `model: this bridge offers ${offered}, not "${message.model}"; pick one of those (welcome.models)`);
    }
    const misfit = modelMisfit(info, message);
    if (misfit) return refuse(misfit.code, misfit.message);
    return info.model;
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

