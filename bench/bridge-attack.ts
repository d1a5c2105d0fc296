/**
 * The bridge under attack, measured: a real bridge in a child process (the benchmarks' stand-in pipeline), and
 * here a paired witness that pings every 20 ms. Each attack is compared with a quiet baseline
 * measured in the same run: the bridge's event-loop delay and the witness's ping while a stranger
 * (no hello) sends the worst frame it can at the documented 30 a second; the bridge's peak
 * memory while a paired client refuses to read and asks for a big job 60 times, against the
 * peak while a client that reads fetches it. Run: `npx tsx bench/bridge-attack.ts`.
 */
import { pathToFileURL } from 'node:url';
import { WebSocket } from 'ws';
import { MAX_MESSAGE_BYTES } from '../bridge/protocol/limits.ts';
import { PROTOCOL_VERSION, type BridgeMessage } from '../bridge/protocol/messages.ts';
import { DEFAULT_LIMITS } from '../bridge/server.ts';
import { RawWebSocket, text } from '../test/support/raw-socket.ts';
import { samplePipeline } from '../test/support/bridge.ts';
import { startBridgeProcess, type BridgeProcessReport } from '../test/support/bridge-process.ts';
import { fixed, machineLine, mib, table } from './stats.ts';

const PHASE_MS = 3000;
const FLOOD_PER_SECOND = DEFAULT_LIMITS.perSecond;

/** What the bridge process measured of itself during one phase. */
type PhaseReport = BridgeProcessReport;

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** A paired `ws` client that hands each JSON message to `on`. */
async function pairedClient(port: number, token: string, on: (m: BridgeMessage) => void = () => {}): Promise<WebSocket> {
  const ws = new WebSocket(`ws://127.0.0.1:${port}`, { headers: { origin: 'null' }, maxPayload: 256 * 2 ** 20 });
  await new Promise<void>((resolve, reject) => ws.once('open', resolve).once('error', reject));
  const welcomed = new Promise<void>((resolve) =>
    ws.on('message', (data, isBinary) => {
      if (isBinary) return;
      const m = JSON.parse((data as Buffer).toString('utf8')) as BridgeMessage;
      if (m.type === 'welcome') resolve();
      on(m);
    }),
  );
  ws.send(JSON.stringify({ type: 'hello', protocol: PROTOCOL_VERSION, token, client: 'bench' }));
  await welcomed;
  return ws;
}

/** Pings every 20 ms while `during` runs; round trips in ms. */
async function pingWhile(port: number, token: string, during: () => Promise<void>): Promise<number[]> {
  const sent = new Map<number, number>();
  const rtts: number[] = [];
  const ws = await pairedClient(port, token, (m) => {
    if (m.type === 'pong' && typeof m.id === 'number') rtts.push(performance.now() - (sent.get(m.id) ?? 0));
  });
  let stop = false;
  const pinging = (async () => {
    for (let id = 0; !stop; id++) {
      sent.set(id, performance.now());
      ws.send(JSON.stringify({ type: 'ping', id }));
      await sleep(20);
    }
  })();
  await during();
  stop = true;
  await pinging;
  await sleep(200);
  ws.close();
  return rtts;
}

const p99 = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * 0.99))] ?? NaN;

/** The probe's frame: a generate just under 64 kB whose layout.boxes holds ~21 000 empty arrays. */
function worstFrame(): string {
  const head = JSON.stringify({ type: 'generate', requestId: 'x', prompt: 'p', layout: { width: 64, height: 64, boxes: [] }, params: { resolution: 64, steps: 1, guidance: 4, trueCfg: 3.5, seed: 1 } });
  const room = MAX_MESSAGE_BYTES - head.length - 16;
  return head.replace('"boxes":[]', `"boxes":[[]${',[]'.repeat(Math.floor((room - 2) / 3))}]`);
}

/** A stranger sending the worst frame at `perSecond` for `ms`, reconnecting whenever the bridge closes it. */
async function unpairedFlood(port: number, ms: number, perSecond: number): Promise<number> {
  const frame = worstFrame();
  let ws: WebSocket | undefined;
  let sentFrames = 0;
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (!ws || ws.readyState > WebSocket.OPEN) {
      ws = new WebSocket(`ws://127.0.0.1:${port}`, { headers: { origin: 'null' } });
      ws.on('error', () => {});
      await new Promise<void>((resolve) => ws?.once('open', resolve).once('close', resolve));
    }
    if (ws.readyState === WebSocket.OPEN) {
      ws.send(frame);
      sentFrames++;
    }
    await sleep(1000 / perSecond);
  }
  ws?.terminate();
  return sentFrames;
}

interface AttackResult {
  quiet: { report: PhaseReport; pings: number[] };
  flood: { report: PhaseReport; pings: number[]; frames: number };
  reading: PhaseReport;
  refusing: PhaseReport;
  jobBytes: number;
}

export async function measureAttacks(): Promise<AttackResult> {
  // The stand-in's steps take 1 ms: the attacks, not the generation, are measured.
  const child = await startBridgeProcess({ pipeline: samplePipeline(1) });
  try {
    const { port, token } = child;
    const phase = async (fn: () => Promise<void>): Promise<PhaseReport> => {
      child.monitor();
      await fn();
      return child.report();
    };

    let quietPings: number[] = [];
    const quiet = await phase(async () => void (quietPings = await pingWhile(port, token, () => sleep(PHASE_MS))));
    let floodPings: number[] = [];
    let frames = 0;
    const flood = await phase(async () => void (floodPings = await pingWhile(port, token, async () => void (frames = await unpairedFlood(port, PHASE_MS, FLOOD_PER_SECOND)))));

    // A big stored job: four layers of the whole 1024x1024 canvas.
    let jobId = '';
    let jobBytes = 0;
    const owner = await pairedClient(port, token, (m) => {
      if (m.type === 'queued' && !jobId) jobId = m.jobId;
      if (m.type === 'layer') jobBytes += m.bytes;
    });
    const finished = new Promise<void>((resolve) => owner.on('message', (d, bin) => !bin && (JSON.parse((d as Buffer).toString()) as BridgeMessage).type === 'done' && resolve()));
    const whole = [0, 0, 1024, 1024];
    owner.send(JSON.stringify({ type: 'generate', requestId: 'big', prompt: 'a poster', layout: { width: 1024, height: 1024, boxes: [whole, whole, whole, whole] }, params: { resolution: 1024, steps: 1, guidance: 4, trueCfg: 3.5, seed: 1 } }));
    await finished;
    owner.close();

    const reading = await phase(async () => {
      let done = 0;
      const reader = await pairedClient(port, token, (m) => void (m.type === 'done' && done++));
      for (let i = 0; i < 3; i++) {
        reader.send(JSON.stringify({ type: 'fetch', jobId }));
        while (done <= i) await sleep(10);
      }
      reader.close();
    });
    const refusing = await phase(async () => {
      const hog = await RawWebSocket.paired(port, token);
      hog.socket.pause();
      for (let i = 0; i < 60; i++) {
        hog.write(text(JSON.stringify({ type: 'fetch', jobId })));
        await sleep(40);
      }
      await sleep(1000);
      hog.destroy();
    });
    return { quiet: { report: quiet, pings: quietPings }, flood: { report: flood, pings: floodPings, frames }, reading, refusing, jobBytes };
  } finally {
    await child.close();
  }
}

export function attackTable(r: AttackResult): string {
  const ratio = (a: number, b: number) => `${fixed(a / b)}x`;
  const grow = (p: PhaseReport) => p.rssPeak - p.rssBefore;
  const growBuffers = (p: PhaseReport) => p.arrayBuffersPeak - p.arrayBuffersBefore;
  return table(['measure', 'baseline', 'under attack', 'ratio'], [
    ['bridge event-loop delay p99 (quiet / unpaired worst-frame flood)', `${fixed(r.quiet.report.loopP99)} ms`, `${fixed(r.flood.report.loopP99)} ms`, ratio(r.flood.report.loopP99, r.quiet.report.loopP99)],
    ['bridge event-loop delay max', `${fixed(r.quiet.report.loopMax)} ms`, `${fixed(r.flood.report.loopMax)} ms`, ratio(r.flood.report.loopMax, r.quiet.report.loopMax)],
    ['witness ping p99', `${fixed(p99(r.quiet.pings))} ms`, `${fixed(p99(r.flood.pings))} ms`, ratio(p99(r.flood.pings), p99(r.quiet.pings))],
    ['bridge RSS peak growth (3 fetches read / 60 fetches never read)', mib(grow(r.reading)), mib(grow(r.refusing)), ratio(grow(r.refusing), Math.max(1, grow(r.reading)))],
    ['bridge array buffers peak growth (same)', mib(growBuffers(r.reading)), mib(growBuffers(r.refusing)), ratio(growBuffers(r.refusing), Math.max(1, growBuffers(r.reading)))],
    ['bridge RSS peak (same)', mib(r.reading.rssPeak), mib(r.refusing.rssPeak), ratio(r.refusing.rssPeak, r.reading.rssPeak)],
  ]);
}

export const HOW_TO_READ = `How to read: each row compares an attack with a baseline measured in the same run against the
same bridge (child process, sample pipeline). Flood: a stranger that never pairs sends the worst
frame (a ~64 kB generate whose boxes hold ~21 000 empty arrays) at the documented ${FLOOD_PER_SECOND} a second,
reconnecting each time the bridge closes it, for ${PHASE_MS / 1000} s; the witness is a paired client pinging every 20 ms.
Memory: one stored job of four 1024x1024 layers (the job size is printed); the baseline is a client
that reads 3 replays, the attack a paired client that never reads and asks for 60 (one every 40 ms,
under the message limit). Flat means ratios near 1 for delays, and memory growth bounded by the
${mib(DEFAULT_LIMITS.highWaterBytes)} high-water mark plus one layer, not 60 times the job.`;

export async function main(): Promise<AttackResult> {
  console.log(`\n== bridge under attack: unpaired flood and a client that refuses to read ==\n${machineLine()}`);
  const result = await measureAttacks();
  console.log(`\n${attackTable(result)}\n\nflood frames sent: ${result.flood.frames}; stored job: ${mib(result.jobBytes)} of PNG\n\n${HOW_TO_READ}`);
  return result;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  await main();
}
