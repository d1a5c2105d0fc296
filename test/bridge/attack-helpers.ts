/**
 * What every attack test checks afterwards: the bridge is alive, `/health` answers about as fast
 * as it did before the attack, a witness client's stored job replays byte for byte, and a new
 * witness job completes with the right pixels.
 */
import assert from 'node:assert/strict';
import { get } from 'node:http';
import { TestClient, generateMessage, collectJob, decodePng, type TestBridge, type Received } from '../support/bridge.ts';
import { fakePixel } from '../support/fake-pipeline.ts';

/** Milliseconds for one `GET /health`, and its parsed body. */
export function healthOnce(port: number): Promise<{ ms: number; body: { ok: boolean } }> {
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    const req = get({ host: '127.0.0.1', port, path: '/health', timeout: 10_000 }, (res) => {
      let text = '';
      res.on('data', (c: Buffer) => (text += c.toString('utf8')));
      res.on('end', () => resolve({ ms: performance.now() - t0, body: JSON.parse(text) as { ok: boolean } }));
    });
    req.on('timeout', () => req.destroy(new Error('/health did not answer within 10 s')));
    req.on('error', reject);
  });
}

/** Median of five `/health` round trips. */
export async function healthMs(port: number): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < 5; i++) {
    const { ms, body } = await healthOnce(port);
    assert.equal(body.ok, true);
    times.push(ms);
  }
  return times.sort((a, b) => a - b)[2];
}

type Frames = Map<number, Buffer>;

function framesOf(messages: Received[]): Frames {
  const out: Frames = new Map();
  for (const m of messages) if (m.type === 'binary') out.set(m.frame.layerIndex, Buffer.from(m.frame.png));
  return out;
}

/**
 * A paired client that ran one job before the attack. `check()` after the attack: /health is
 * within a bound of its baseline (ratio, plus slack for a loaded 2-core machine), the stored job
 * replays with byte-identical PNGs, and a fresh job completes with the fake pipeline's pixels.
 */
export class Witness {
  private runs = 0;
  private constructor(
    private readonly tb: TestBridge,
    private client: TestClient,
    private readonly jobId: string,
    private readonly frames: Frames,
    readonly baselineHealthMs: number,
  ) {}

  static async start(tb: TestBridge): Promise<Witness> {
    const client = await TestClient.paired(tb.url);
    const { jobId, frames } = await runJob(client, 'witness-0', 4242);
    return new Witness(tb, client, jobId, frames, await healthMs(tb.bridge.port));
  }

  async check(what: string): Promise<void> {
    const ms = await healthMs(this.tb.bridge.port);
    // Ratio against the same run's baseline; the additive slack absorbs scheduler noise on a
    // loaded CI machine (a stalled loop costs seconds, far beyond it).
    assert.ok(ms <= this.baselineHealthMs * 10 + 200, `${what}: /health took ${ms.toFixed(1)} ms (baseline ${this.baselineHealthMs.toFixed(1)} ms)`);
    if (this.client.ws.readyState !== 1) this.client = await TestClient.paired(this.tb.url);
    this.client.send({ type: 'fetch', jobId: this.jobId });
    const { messages } = await collectJob(this.client, this.jobId);
    const replay = framesOf(messages);
    assert.equal(replay.size, this.frames.size, `${what}: replay has every layer`);
    for (const [index, png] of this.frames) assert.ok(replay.get(index)?.equals(png), `${what}: layer ${index} replays byte-identical`);
    await runJob(this.client, `witness-${++this.runs}`, 4242 + this.runs);
  }

  close(): void {
    this.client.close();
  }
}

/** Runs one job on the fake pipeline and checks every layer's size and first pixel. */
export async function runJob(client: TestClient, requestId: string, seed: number): Promise<{ jobId: string; frames: Frames }> {
  const request = generateMessage(requestId, { steps: 2, seed });
  client.send(request);
  const q = await client.next((m) => m.type === 'queued' && m.requestId === requestId, 10_000);
  const jobId = (q as { jobId: string }).jobId;
  const { done, messages } = await collectJob(client, jobId, 20_000);
  assert.ok(done.type === 'done' && done.layerCount === request.layout.boxes.length, JSON.stringify(done));
  const frames = framesOf(messages);
  for (const [index, [x1, y1, x2, y2]] of request.layout.boxes.entries()) {
    const png = frames.get(index);
    assert.ok(png, `layer ${index} missing`);
    const image = decodePng(png);
    assert.deepEqual([image.width, image.height], [x2 - x1, y2 - y1]);
    assert.deepEqual([...image.data.subarray(0, 4)], fakePixel(seed, index, 0, 0));
  }
  return { jobId, frames };
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
