/**
 * `auto` provider choice (README: "the runtime then picks cuda, else webgpu, else cpu (or what
 * --provider names) and says which it uses") with the machine's detection injected. The session
 * double refuses a provider the way onnxruntime does when a provider cannot start: `create`
 * rejects (onnxruntime-node's InferenceSession.create returns a rejected promise, e.g. when the
 * CUDA provider library or a Vulkan device is missing), and the next candidate is tried.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { writeTinyModel } from '../../gpu-server/model-folder/tiny.ts';
import { availableProviders, openSession, ort, systemDetection, type ProviderDetection, type SessionFactory } from '../../gpu-server/onnx/session.ts';
import { createPipeline } from '../../gpu-server/pipeline/art-pipeline.ts';

const machine = (backends: string[], cuda: boolean, vulkan: boolean): ProviderDetection => ({
  backends: () => backends.map((name) => ({ name })),
  cudaInstalled: () => cuda,
  webgpuPossible: () => vulkan,
  webgpu: async () => ({ usable: true, fusedAttentionExact: true, attentionError: 0 }),
});
const ALL = ['cpu', 'webgpu', 'cuda', 'dml'];

test('auto tries cuda, then webgpu, then cpu, each only where this machine can run it', () => {
  assert.deepEqual(availableProviders(machine(ALL, true, true)), ['cuda', 'webgpu', 'cpu']);
  // The CUDA backend is in the build but `npm run setup:cuda` was not run.
  assert.deepEqual(availableProviders(machine(ALL, false, true)), ['webgpu', 'cpu']);
  // No Vulkan loader: WebGPU could only fail.
  assert.deepEqual(availableProviders(machine(ALL, true, false)), ['cuda', 'cpu']);
  // A build without the GPU backends, whatever is installed.
  assert.deepEqual(availableProviders(machine(['cpu'], true, true)), ['cpu']);
  // This machine: the CPU is always last, and always there.
  assert.equal(availableProviders(systemDetection).at(-1), 'cpu');
});

/** A session factory whose providers in `refuse` fail to start; the rest open on the real CPU provider. */
function recording(refuse: string[], detect: ProviderDetection) {
  const calls: { path: string; providers: string[] }[] = [];
  const factory: SessionFactory = {
    detect,
    async create(model, options) {
      if (typeof model !== 'string') throw new Error('these machines report exact fused attention: the model is opened by path');
      const path = model;
      const providers = (options.executionProviders ?? []).map((p) => (typeof p === 'string' ? p : p.name));
      calls.push({ path, providers });
      const wanted = providers[0];
      if (refuse.includes(wanted)) throw new Error(`${wanted} execution provider is not available`);
      return ort.InferenceSession.create(path, { ...options, executionProviders: ['cpu'] });
    },
  };
  return { calls, factory };
}

let root: string;
let model: string;
before(() => {
  root = mkdtempSync(join(tmpdir(), 'art-provider-'));
  model = join(root, 'tiny');
  writeTinyModel(model);
});
after(() => rmSync(root, { recursive: true, force: true }));

test('openSession: auto falls through refusals in order and says which provider it got; all refused names each error', async () => {
  const path = join(model, 'vae_decoder.onnx');
  const a = recording(['cuda'], machine(ALL, true, true));
  const got = await openSession(path, 'auto', {}, a.factory);
  assert.equal(got.provider, 'webgpu');
  assert.deepEqual(a.calls.map((c) => c.providers), [['cuda'], ['webgpu']]);
  await got.session.release();

  const b = recording(['cuda', 'webgpu'], machine(ALL, true, true));
  assert.equal((await openSession(path, 'auto', {}, b.factory)).provider, 'cpu');
  assert.deepEqual(b.calls.map((c) => c.providers), [['cuda'], ['webgpu'], ['cpu']]);

  const c = recording(['cuda', 'webgpu', 'cpu'], machine(ALL, true, true));
  await assert.rejects(openSession(path, 'auto', {}, c.factory), (e: Error) =>
    /could not open .*vae_decoder\.onnx on cuda, webgpu, cpu/.test(e.message) && /cuda: cuda execution provider is not available/.test(e.message) && /cpu: cpu execution/.test(e.message));

  // A named provider is used as named: no detection, no fallback.
  const d = recording(['cuda'], machine(ALL, true, true));
  await assert.rejects(openSession(path, 'cuda', {}, d.factory), /could not open .* on cuda:/);
  assert.deepEqual(d.calls.map((x) => x.providers), [['cuda']]);
});

test('createPipeline: the first graph decides the provider, every other graph opens on it, and info (what the CLIs print) names it', async () => {
  const r = recording(['cuda'], machine(ALL, true, true));
  const pipeline = await createPipeline({ modelDir: model, provider: 'auto', memory: 'resident', sessions: r.factory });
  try {
    assert.equal(pipeline.info.provider, 'webgpu');
    const byGraph = r.calls.map((c) => `${c.path.split('/').at(-1)}:${c.providers[0]}`);
    assert.deepEqual(byGraph.slice(0, 2), ['transformer.onnx:cuda', 'transformer.onnx:webgpu']);
    assert.deepEqual(
      byGraph.slice(2).sort(),
      ['adapter.onnx:webgpu', 'clip_text.onnx:webgpu', 't5_encoder.onnx:webgpu', 'transparent_decoder.onnx:webgpu', 'vae_decoder.onnx:webgpu', 'vae_encoder.onnx:webgpu'],
    );
  } finally {
    await pipeline.dispose();
  }
  const cpuOnly = recording([], machine(['cpu'], false, false));
  const p2 = await createPipeline({ modelDir: model, provider: 'auto', sessions: cpuOnly.factory });
  try {
    assert.equal(p2.info.provider, 'cpu');
    assert.ok(cpuOnly.calls.every((c) => c.providers[0] === 'cpu'));
  } finally {
    await p2.dispose();
  }
});

test('auto skips a WebGPU that cannot start, saying why once in its own words; Vulkan writes nothing to the terminal', async () => {
  const notices: string[] = [];
  const detect = { ...machine(ALL, false, true), webgpu: async () => ({ usable: false as const, reason: 'no WebGPU adapter: (as the probe words it)' }) };
  const r = recording([], detect);
  const factory = { ...r.factory, notice: (line: string) => notices.push(line) };
  for (let i = 0; i < 2; i++) assert.equal((await openSession(join(model, 'vae_decoder.onnx'), 'auto', {}, factory)).provider, 'cpu');
  assert.deepEqual(notices, ['WebGPU not used: no WebGPU adapter: (as the probe words it)']);
  assert.ok(r.calls.every((c) => c.providers[0] === 'cpu'), 'no WebGPU session was attempted in this process');
  await assert.rejects(openSession(join(model, 'vae_decoder.onnx'), 'webgpu', {}, factory), /webgpu: no WebGPU adapter/);

  // The real probe, in a child with a Vulkan driver Dawn refuses (Mesa's llvmpipe, where installed)
  // or none at all, and no XDG_RUNTIME_DIR: both make Vulkan write to stderr when asked in-process.
  const lvp = '/usr/share/vulkan/icd.d/lvp_icd.x86_64.json';
  const script = join(root, 'auto.mts');
  writeFileSync(script, `import { openSession } from ${JSON.stringify(new URL('../../gpu-server/onnx/session.ts', import.meta.url).pathname)};\nconst s = await openSession(${JSON.stringify(join(model, 'vae_decoder.onnx'))}, 'auto');\nconsole.log(s.provider);\nawait s.session.release();\n`);
  const env: NodeJS.ProcessEnv = { ...process.env, VK_ICD_FILENAMES: existsSync(lvp) ? lvp : join(root, 'no-such-driver.json') };
  delete env.XDG_RUNTIME_DIR;
  const child = spawnSync(process.execPath, ['--import', 'tsx', script], { env, encoding: 'utf8' });
  assert.equal(child.stdout.trim(), 'cpu', child.stderr);
  if (!systemDetection.webgpuPossible()) return assert.equal(child.stderr, '', 'no Vulkan loader: WebGPU is not even tried');
  const lines = child.stderr.trim().split('\n');
  assert.equal(lines.length, 1, child.stderr);
  assert.match(lines[0], /^WebGPU not used: no WebGPU adapter: Vulkan found no device that WebGPU \(Dawn\) accepts\. Install your GPU's Vulkan driver \(Linux\), or use --provider cpu\./);
});
