/**
 * Every bad input of the list: each gets its error code, and another client's job,
 * running at the same time, still completes correctly afterwards.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { MAX_LAYERS } from '../../domain/layout.ts';
import { startTestBridge, TestClient, generateMessage, collectJob, decodePng, TOKEN, type TestBridge } from '../support/bridge.ts';
import { PROTOCOL_VERSION, type ErrorCode } from '../../bridge/protocol/messages.ts';
import { fakePixel } from '../support/fake-pipeline.ts';

let tb: TestBridge;
let witness: TestClient;
before(async () => {
  tb = await startTestBridge({ fake: { stepMs: 1 }, keepJobs: 5 });
  witness = await TestClient.paired(tb.url);
});
after(async () => {
  witness.close();
  await tb.close();
});

let witnessRuns = 0;
/** Starts a job for the witness client; the returned function checks it completed correctly. */
function witnessJob(): () => Promise<void> {
  const requestId = `w${witnessRuns++}`;
  const seed = 1000 + witnessRuns;
  const request = generateMessage(requestId, { steps: 2, seed });
  witness.send(request);
  return async () => {
    const q = await witness.next((m) => m.type === 'queued' && m.requestId === requestId);
    const jobId = (q as { jobId: string }).jobId;
    const { done, messages } = await collectJob(witness, jobId);
    assert.ok(done.type === 'done' && done.layerCount === request.layout.boxes.length, `witness job: ${JSON.stringify(done)}`);
    for (const [index, [x1, y1, x2, y2]] of request.layout.boxes.entries()) {
      const frame = messages.find((m) => m.type === 'binary' && m.frame.layerIndex === index);
      assert.ok(frame?.type === 'binary', `witness layer ${index} missing`);
      const png = decodePng(frame.frame.png);
      assert.deepEqual([png.width, png.height], [x2 - x1, y2 - y1]);
      assert.deepEqual([...png.data.subarray(0, 4)], fakePixel(seed, index, 0, 0));
    }
  };
}

const hello = (extra: Record<string, unknown> = {}) => ({ type: 'hello', protocol: PROTOCOL_VERSION, token: TOKEN, ...extra });
const gen = (mutate: (m: ReturnType<typeof generateMessage>) => unknown) => {
  const m = generateMessage('bad-req');
  return mutate(m) ?? m;
};
const withBoxes = (boxes: unknown) =>
  gen((m) => {
    (m.layout as { boxes: unknown }).boxes = boxes;
  });
const withParams = (params: Record<string, unknown>) =>
  gen((m) => {
    Object.assign(m.params, params);
  });
const whole = [0, 0, 128, 64];
const child = (box: number[]) => withBoxes([whole, whole, box]);

interface Case {
  name: string;
  code: ErrorCode;
  /** A JSON value to send, or raw text/bytes. */
  send: unknown;
  raw?: boolean;
  /** Pair before sending (default true). */
  paired?: boolean;
  /** The error echoes this request id. */
  requestId?: string;
}

const uuid = '00000000-0000-4000-8000-000000000000';
const cases: Case[] = [
  // pairing and protocol version
  { name: 'hello without protocol version', paired: false, send: { type: 'hello', token: TOKEN }, code: 'protocol_version' },
  { name: 'hello with an old protocol version', paired: false, send: hello({ protocol: 0 }), code: 'protocol_version' },
  { name: 'hello with a string version', paired: false, send: hello({ protocol: '1' }), code: 'protocol_version' },
  { name: 'hello without token', paired: false, send: { type: 'hello', protocol: PROTOCOL_VERSION }, code: 'unauthorized' },
  { name: 'hello with a wrong token', paired: false, send: hello({ token: 'not-the-token' }), code: 'unauthorized' },
  { name: 'generate before hello', paired: false, send: generateMessage('early'), code: 'unauthorized' },
  // framing
  { name: 'malformed JSON', raw: true, send: '{"type":"ping"', code: 'malformed_json' },
  { name: 'NaN literal', raw: true, send: '{"type":"ping","id":NaN}', code: 'malformed_json' },
  { name: 'empty text frame', raw: true, send: '', code: 'malformed_json' },
  { name: 'JSON array', send: [1, 2], code: 'invalid_message' },
  { name: 'no type', send: { prompt: 'x' }, code: 'invalid_message' },
  { name: 'unknown type', send: { type: 'explode' }, code: 'unknown_type' },
  { name: 'binary frame', raw: true, send: new Uint8Array([1, 2, 3]), code: 'binary_not_allowed' },
  { name: '100 kB prompt (oversize message)', send: gen((m) => void (m.prompt = 'x'.repeat(100_000))), code: 'message_too_large' },
  // missing fields and wrong types
  { name: 'missing requestId', send: gen((m) => void delete (m as Partial<typeof m>).requestId), code: 'invalid_message' },
  { name: 'missing layout', send: gen((m) => void delete (m as Partial<typeof m>).layout), code: 'invalid_layout', requestId: 'bad-req' },
  { name: 'missing params', send: gen((m) => void delete (m as Partial<typeof m>).params), code: 'invalid_params', requestId: 'bad-req' },
  { name: 'missing prompt', send: gen((m) => void delete (m as Partial<typeof m>).prompt), code: 'invalid_prompt', requestId: 'bad-req' },
  { name: 'unknown field', send: gen((m) => ({ ...m, extra: 1 })), code: 'invalid_message', requestId: 'bad-req' },
  { name: 'steps as a string', send: withParams({ steps: '4' }), code: 'invalid_params', requestId: 'bad-req' },
  { name: 'prompt as a number', send: gen((m) => ({ ...m, prompt: 5 })), code: 'invalid_prompt', requestId: 'bad-req' },
  { name: 'boxes as a string', send: withBoxes('all'), code: 'invalid_layout', requestId: 'bad-req' },
  { name: 'box with three numbers', send: child([16, 16, 32]), code: 'invalid_layout', requestId: 'bad-req' },
  // numbers
  { name: 'NaN steps (null in JSON)', send: withParams({ steps: null }), code: 'invalid_params', requestId: 'bad-req' },
  { name: 'infinite guidance (1e999)', raw: true, send: JSON.stringify(withParams({ guidance: 7777 })).replace('7777', '1e999'), code: 'invalid_params', requestId: 'bad-req' },
  { name: 'negative seed', send: withParams({ seed: -1 }), code: 'invalid_params', requestId: 'bad-req' },
  { name: 'fractional seed', send: withParams({ seed: 1.5 }), code: 'invalid_params', requestId: 'bad-req' },
  { name: 'huge seed', send: withParams({ seed: 2 ** 40 }), code: 'invalid_params', requestId: 'bad-req' },
  { name: 'negative guidance', send: withParams({ guidance: -1 }), code: 'invalid_params', requestId: 'bad-req' },
  { name: 'huge true CFG', send: withParams({ trueCfg: 1e6 }), code: 'invalid_params', requestId: 'bad-req' },
  { name: 'steps 0', send: withParams({ steps: 0 }), code: 'invalid_params', requestId: 'bad-req' },
  { name: 'steps 1000', send: withParams({ steps: 1000 }), code: 'invalid_params', requestId: 'bad-req' },
  { name: 'fractional steps', send: withParams({ steps: 2.5 }), code: 'invalid_params', requestId: 'bad-req' },
  { name: 'resolution not the longest side', send: withParams({ resolution: 256 }), code: 'invalid_params', requestId: 'bad-req' },
  {
    name: 'resolution the model does not offer',
    send: gen((m) => ({ ...m, layout: { width: 96, height: 48, boxes: [[0, 0, 96, 48], [0, 0, 96, 48]] }, params: { ...m.params, resolution: 96 } })),
    code: 'invalid_params',
    requestId: 'bad-req',
  },
  // layout
  { name: '0 layers', send: withBoxes([]), code: 'invalid_layout', requestId: 'bad-req' },
  { name: 'only the merged box', send: withBoxes([whole]), code: 'invalid_layout', requestId: 'bad-req' },
  { name: `${MAX_LAYERS + 1} layers`, send: withBoxes([whole, whole, ...Array.from({ length: MAX_LAYERS - 1 }, () => [0, 0, 16, 16])]), code: 'invalid_layout', requestId: 'bad-req' },
  { name: 'box outside the canvas', send: child([96, 32, 144, 64]), code: 'invalid_layout', requestId: 'bad-req' },
  { name: 'box at negative coordinates', send: child([-16, 0, 16, 16]), code: 'invalid_layout', requestId: 'bad-req' },
  { name: 'empty box', send: child([16, 16, 16, 48]), code: 'invalid_layout', requestId: 'bad-req' },
  { name: 'inverted box', send: child([64, 48, 16, 16]), code: 'invalid_layout', requestId: 'bad-req' },
  { name: 'box off the grid', send: child([8, 8, 40, 40]), code: 'invalid_layout', requestId: 'bad-req' },
  { name: 'background box not the whole canvas', send: withBoxes([whole, [0, 0, 64, 64]]), code: 'invalid_layout', requestId: 'bad-req' },
  { name: 'canvas not a multiple of 16', send: gen((m) => void (m.layout.width = 100)), code: 'invalid_layout', requestId: 'bad-req' },
  {
    name: 'canvas above the maximum',
    send: gen((m) => ({ ...m, layout: { width: 2048, height: 64, boxes: [[0, 0, 2048, 64], [0, 0, 2048, 64]] }, params: { ...m.params, resolution: 2048 } })),
    code: 'invalid_layout',
    requestId: 'bad-req',
  },
  { name: 'huge canvas width', send: gen((m) => void (m.layout.width = 1e9)), code: 'invalid_layout', requestId: 'bad-req' },
  // prompt
  { name: 'empty prompt', send: gen((m) => void (m.prompt = '')), code: 'invalid_prompt', requestId: 'bad-req' },
  { name: 'blank prompt', send: gen((m) => void (m.prompt = ' \n\t ')), code: 'invalid_prompt', requestId: 'bad-req' },
  { name: '5000-character prompt', send: gen((m) => void (m.prompt = 'y'.repeat(5000))), code: 'invalid_prompt', requestId: 'bad-req' },
  // job ids
  { name: 'cancel an unknown job', send: { type: 'cancel', jobId: uuid }, code: 'unknown_job' },
  { name: 'fetch an unknown job', send: { type: 'fetch', jobId: uuid }, code: 'unknown_job' },
  { name: 'fetch a path instead of a job id', send: { type: 'fetch', jobId: '../../etc/passwd' }, code: 'invalid_message' },
  { name: 'cancel a path instead of a job id', send: { type: 'cancel', jobId: '..' }, code: 'invalid_message' },
  // the pipeline itself fails
  { name: 'pipeline failure', send: gen((m) => void (m.prompt = 'please FAIL')), code: 'generation_failed', requestId: 'bad-req' },
];

for (const c of cases) {
  test(`bad input: ${c.name} -> ${c.code}`, async () => {
    const check = witnessJob();
    const bad = c.paired === false ? await TestClient.open(tb.url, { origin: 'null' }) : await TestClient.paired(tb.url);
    if (c.raw) bad.ws.send(c.send as string | Uint8Array);
    else bad.send(c.send);
    const error = await bad.error();
    assert.equal(error.code, c.code, error.message);
    assert.ok(error.message.length > 10, 'the message says what is wrong');
    if (c.requestId) assert.equal(error.requestId, c.requestId);
    await check();
    bad.close();
  });
}

test('bad input: forbidden origin -> upgrade refused with 403', async () => {
  const check = witnessJob();
  await assert.rejects(TestClient.open(tb.url, { origin: 'https://evil.example' }), /403/);
  await check();
});

test('bad input: frame over 1 MiB -> socket closed with 1009', async () => {
  const check = witnessJob();
  const bad = await TestClient.paired(tb.url);
  bad.ws.send('x'.repeat(1024 * 1024 + 1));
  assert.equal((await bad.closed).code, 1009);
  await check();
});

test('bad input: too many jobs from one client -> queue_full', async () => {
  const bad = await TestClient.paired(tb.url);
  for (let i = 0; i < 5; i++) bad.send(generateMessage(`many${i}`, { steps: 50 }));
  const error = await bad.error('queue_full');
  assert.equal(error.requestId, 'many4');
  const check = witnessJob();
  for (let i = 0; i < 4; i++) {
    const q = await bad.next((m) => m.type === 'queued' && m.requestId === `many${i}`);
    bad.send({ type: 'cancel', jobId: (q as { jobId: string }).jobId });
  }
  await check();
  bad.close();
});

test('bad input: a flood of messages -> rate_limited, then the socket is closed', async () => {
  const check = witnessJob();
  const bad = await TestClient.paired(tb.url);
  for (let i = 0; i < 1000; i++) bad.send({ type: 'ping', id: i });
  const error = await bad.error('rate_limited');
  assert.match(error.message, /too many messages/);
  assert.equal((await bad.closed).code, 1008);
  const pongs = bad.received.filter((m) => m.type === 'pong').length;
  assert.ok(pongs < 100, `${pongs} pings were answered`);
  await check();
});
