/**
 * The bridge in its own process: with the tiny model once, nothing is written outside the
 * outputs folder (onnxruntime's telemetry would write under ~/.cache and $TMPDIR); and running out
 * of file descriptors does not stop it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TestClient, collectJob, generateMessage, realPipeline } from '../support/bridge.ts';
import { startBridgeProcess } from '../support/bridge-process.ts';
import { tcp } from '../support/raw-socket.ts';
import { healthOnce, sleep } from './attack-helpers.ts';
import { ORT_TELEMETRY_ENV } from '../../gpu-server/onnx/telemetry.ts';

async function listAll(dir: string): Promise<string[]> {
  return (await readdir(dir, { recursive: true })).map(String).sort();
}

test('files: a job on the tiny model writes only into the outputs folder (onnxruntime telemetry is off)', async () => {
  const home = await mkdtemp(join(tmpdir(), 'art-home-'));
  const tmp = await mkdtemp(join(tmpdir(), 'art-tmp-'));
  const outputs = await mkdtemp(join(tmpdir(), 'art-out-'));
  const env: NodeJS.ProcessEnv = { ...process.env, HOME: home, TMPDIR: tmp, XDG_CACHE_HOME: '', XDG_CONFIG_HOME: '', TSX_DISABLE_CACHE: '1' };
  delete env[ORT_TELEMETRY_ENV]; // the bridge must turn it off itself
  delete env.XDG_CACHE_HOME;
  delete env.XDG_CONFIG_HOME;
  const child = await startBridgeProcess({ outputs, pipeline: realPipeline(), env, readyTimeoutMs: 240_000 });
  try {
    const client = await TestClient.paired(`ws://127.0.0.1:${child.port}`);
    const request = generateMessage('tiny', { steps: 1 });
    request.layout = { width: 512, height: 64, boxes: [[0, 0, 512, 64], [0, 0, 512, 64], [32, 16, 160, 64]] };
    request.params.resolution = 512;
    client.send(request);
    const q = await client.next((m) => m.type === 'queued' && m.requestId === 'tiny', 60_000);
    const { done } = await collectJob(client, (q as { jobId: string }).jobId, 240_000);
    assert.equal(done.type === 'done' && done.layerCount, 3);
    client.close();
    assert.equal(await child.close(), 0, child.child.stderr);
    assert.deepEqual(await listAll(home), [], 'nothing in $HOME (onnxruntime writes ~/.cache/Microsoft/DeveloperTools/.onnxruntime with telemetry on)');
    assert.deepEqual(await listAll(tmp), [], 'nothing in $TMPDIR (mat-debug-<pid>.log, .ses)');
    assert.ok((await readdir(outputs)).some((n) => /^[0-9a-f-]{36}$/.test(n)), 'the job is in the outputs folder');
  } finally {
    child.child.kill('SIGKILL');
    for (const d of [home, tmp, outputs]) await rm(d, { recursive: true, force: true });
  }
});

// libuv answers EMFILE on accept by closing a reserved descriptor and dropping the pending
// connections, so Node emits the server 'error' (which the bridge now logs) only when that reserve
// is gone too; this checks the bridge outlives descriptor exhaustion either way.
test('transport: running out of file descriptors on accept does not stop the bridge', async () => {
  const outputs = await mkdtemp(join(tmpdir(), 'art-out-'));
  const child = await startBridgeProcess({ outputs, maxOpenFiles: 80 });
  try {
    const sockets = [];
    for (let i = 0; i < 120; i++) {
      const s = await tcp(child.port).catch(() => undefined);
      s?.on('error', () => {});
      sockets.push(s);
    }
    await sleep(300);
    sockets.forEach((s) => s?.destroy());
    await sleep(300);
    assert.equal((await healthOnce(child.port)).body.ok, true);
    (await TestClient.paired(`ws://127.0.0.1:${child.port}`)).close();
  } finally {
    await child.close();
    await rm(outputs, { recursive: true, force: true });
  }
});
