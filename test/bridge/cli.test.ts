import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TestChild } from '../support/child-process.ts';
import { mkdtemp, rm, stat, readFile, mkdir, writeFile, utimes } from 'node:fs/promises';
import { needsBuild } from '../../bridge/build-if-needed.ts';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseCli, DEFAULT_PORT } from '../../bridge/cli-args.ts';
import { TestClient, generateMessage, collectJob } from '../support/bridge.ts';
import { PROTOCOL_VERSION } from '../../bridge/protocol/messages.ts';

const root = fileURLToPath(new URL('../..', import.meta.url));

test('parseCli: defaults, and each bad flag says what is wrong', () => {
  const ok = parseCli([]);
  assert.ok(ok.ok);
  assert.equal(ok.options.port, DEFAULT_PORT);
  assert.equal(ok.options.host, '127.0.0.1');
  assert.equal(ok.options.build, true);
  const full = parseCli(['--port', '9000', '--provider', 'cuda', '--memory', 'text-on-demand', '--allow-origin', 'https://a.example', '--allow-origin', 'http://b:3000', '--cancel-on-shutdown', '--no-build']);
  assert.ok(full.ok);
  assert.deepEqual(
    [full.options.port, full.options.provider, full.options.memory, full.options.allowOrigins, full.options.cancelOnShutdown, full.options.build],
    [9000, 'cuda', 'text-on-demand', ['https://a.example', 'http://b:3000'], true, false],
  );
  const door = parseCli(['--queue', 'redis://127.0.0.1:6379', '--stalled-ms', '2500']);
  assert.ok(door.ok && door.options.stalledMs === 2500);
  for (const [args, words] of [
    [['--port', 'x'], /--port/],
    [['--port', '70000'], /--port/],
    [['--provider', 'tpu'], /--provider/],
    [['--memory', 'swap'], /--memory must be one of resident, text-on-demand/],
    [['--allow-origin', 'https://a.example/path'], /--allow-origin/],
    [['--keep-jobs', '0'], /--keep-jobs/],
    [['--bogus'], /bogus/],
    [['--stalled-ms', '2000'], /--stalled-ms is a studio front door's option: it needs --queue/],
    [['--queue', 'redis://127.0.0.1:6379', '--stalled-ms', '0'], /--stalled-ms must be a positive integer/],
  ] as const) {
    const r = parseCli([...args]);
    assert.ok(!r.ok && words.test(r.error), `${args.join(' ')} -> ${JSON.stringify(r)}`);
  }
});

test('the CLI prints model, provider, address and token, stores the token 0600, and SIGTERM lets the running job finish', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'art-cli-test-'));
  const child = TestChild.spawn(
    process.execPath,
    ['--import', 'tsx', 'bridge/cli.ts', '--pipeline', 'test/support/fake-pipeline.ts', '--port', '0', '--outputs', join(dir, 'out'), '--config-dir', join(dir, 'cfg'), '--no-build'],
    { cwd: root },
  );
  const { exited } = child;
  try {
    await child.ready(/pairing token: \S+/, 'the bridge', 15_000);
    const out = child.output;
    const token = /pairing token: (\S+)/.exec(out)?.[1];
    const port = /address: +ws:\/\/localhost:(\d+)/.exec(out)?.[1];
    assert.ok(token && port, out);
    assert.match(out, /provider: cpu/);
    assert.match(out, /model: +fake/);
    assert.match(out, /NOISE/);
    assert.match(out, /npm run convert -- --art <ART dir> --flux <FLUX.1-dev dir> --out <model dir>/);
    const tokenFile = join(dir, 'cfg', 'token');
    assert.equal((await readFile(tokenFile, 'utf8')).trim(), token);
    assert.equal((await stat(tokenFile)).mode & 0o777, 0o600);

    // /health names the version users run: package.json's.
    const health = (await (await fetch(`http://127.0.0.1:${port}/health`)).json()) as { version: string; protocol: number };
    const pkg = JSON.parse(await readFile(join(root, 'package.json'), 'utf8')) as { version: string };
    assert.equal(health.version, pkg.version);
    assert.equal(health.protocol, PROTOCOL_VERSION);
    assert.match(out, new RegExp(`ART for Figma bridge ${pkg.version.replace(/\./g, '\\.')}`));
    const client = await TestClient.open(`ws://127.0.0.1:${port}`, { origin: 'null' });
    client.send({ type: 'hello', protocol: PROTOCOL_VERSION, token });
    await client.next((m) => m.type === 'welcome');
    client.send(generateMessage('cli-1', { steps: 60 }));
    const q = await client.next((m) => m.type === 'queued');
    await client.next((m) => m.type === 'progress');
    child.kill('SIGTERM');
    const { done } = await collectJob(client, (q as { jobId: string }).jobId);
    assert.ok(done.type === 'done');
    assert.equal((await client.closed).code, 1001);
    assert.equal(await exited, 0);
    assert.equal(child.output.split(token).length - 1, 1, 'the token is printed once, in the banner, and never logged');
  } finally {
    child.kill('SIGKILL');
    await rm(dir, { recursive: true, force: true });
  }
});

test('build-if-needed: builds when dist is missing or older than the plugin/UI sources, and only if a build script exists', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'art-build-test-'));
  try {
    await writeFile(join(dir, 'package.json'), JSON.stringify({ scripts: {} }));
    assert.equal((await needsBuild(dir)).build, false);
    await writeFile(join(dir, 'package.json'), JSON.stringify({ scripts: { build: 'x' } }));
    await mkdir(join(dir, 'ui'));
    await writeFile(join(dir, 'ui', 'app.tsx'), '');
    assert.deepEqual(await needsBuild(dir), { build: true, why: 'dist/plugin.js is missing' });
    await mkdir(join(dir, 'dist'));
    await writeFile(join(dir, 'dist', 'plugin.js'), '');
    await writeFile(join(dir, 'dist', 'ui.html'), '');
    const past = new Date(Date.now() - 60_000);
    await utimes(join(dir, 'ui', 'app.tsx'), past, past);
    assert.equal((await needsBuild(dir)).build, false);
    await utimes(join(dir, 'ui', 'app.tsx'), new Date(), new Date(Date.now() + 60_000));
    assert.deepEqual(await needsBuild(dir), { build: true, why: 'sources changed since the last build' });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
