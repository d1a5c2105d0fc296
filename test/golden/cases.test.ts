import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { checkCase, GOLDEN_KINDS, readCase } from '../../gpu-server/golden/case.ts';
import { formatReport, reportPasses } from '../../gpu-server/golden/compare.ts';
import { loadAll, readHeader, toFloat32, writeSafetensors } from '../../gpu-server/onnx/safetensors.ts';

const root = new URL('../fixtures/golden/', import.meta.url).pathname;
const cases = readdirSync(root, { withFileTypes: true }).filter((d) => d.isDirectory()).map((d) => d.name).sort();

test('every kind of golden case is bundled (transformer_lora is a transformer case with LoRAs)', () => {
  const kinds = new Set(cases.map((name) => readCase(join(root, name)).kind));
  assert.deepEqual([...kinds].sort(), [...GOLDEN_KINDS].sort());
  assert.ok(cases.includes('transformer_lora'));
});

for (const name of cases) {
  test(`golden case ${name} matches the official code`, async () => {
    const report = await checkCase(join(root, name));
    assert.ok(reportPasses(report), formatReport(report));
  });
}

const cli = (args: string[]) => spawnSync(process.execPath, ['--import', 'tsx', 'gpu-server/golden/cli.ts', ...args], { encoding: 'utf8' });

test('npm run golden fails, naming the output, when a reference output is off', () => {
  const dir = mkdtempSync(join(tmpdir(), 'golden-bad-'));
  cpSync(join(root, 'transformer'), dir, { recursive: true });
  const file = join(dir, 'outputs.safetensors');
  const tensors = Object.fromEntries(
    [...loadAll(file)].map(([name, { info, bytes }]) => {
      const data = toFloat32(info, bytes);
      if (name === 'noise_pred') for (let i = 0; i < data.length; i++) data[i] *= 1.01;
      return [name, { dtype: 'F32' as const, shape: info.shape, data }];
    }),
  );
  writeSafetensors(file, tensors);
  assert.ok(readHeader(file).tensors.has('noise_pred'));
  const run = cli([dir]);
  assert.equal(run.status, 1, run.stdout + run.stderr);
  assert.match(run.stdout, /FAIL noise_pred/);
  assert.match(run.stdout, /ok {3}temb/);
});

test('npm run golden refuses a folder that is not a golden case, and an unknown kind', () => {
  const dir = mkdtempSync(join(tmpdir(), 'golden-none-'));
  let run = cli([dir]);
  assert.equal(run.status, 1);
  assert.match(run.stderr, /no case\.json here/);
  writeFileSync(join(dir, 'case.json'), JSON.stringify({ kind: 'unet' }));
  run = cli([dir]);
  assert.match(run.stderr, /unknown kind "unet"/);
  run = cli([]);
  assert.equal(run.status, 2);
  run = cli(['--provider', 'metal', join(root, 'clip_text')]);
  assert.equal(run.status, 2);
  assert.match(run.stderr, /--provider must be one of cuda, webgpu, cpu, got "metal"/);
});

test('npm run golden --provider cpu runs the case on the provider named and says so only when it is not the CPU', () => {
  const run = cli(['--provider', 'cpu', join(root, 'clip_text')]);
  assert.equal(run.status, 0, run.stderr);
  assert.match(run.stdout, /^clip_text {2}\S+clip_text\n {2}ok {3}pooler_output/);
});
