/**
 * Mutation testing (Stryker, outside CI): `npm run mutate -- [module ...]` mutates each module
 * and runs only the test files that guard it, through Stryker's command runner (Node's own test
 * runner has no Stryker plugin), so every mutant costs one run of those files. With no module it
 * runs the whole scope below (about an hour on 2 cores). Reports: reports/mutation/<module>.html;
 * the scores and the survivors judged equivalent are in docs/testing.md.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** Module -> the test files that guard it (the fast ones: golden and e2e suites are left out). */
export const SCOPE: Record<string, string[]> = {
  'gpu-server/pipeline/noise.ts': ['test/pipeline/noise.test.ts'],
  'gpu-server/pipeline/scheduler.ts': ['test/pipeline/scheduler.test.ts', 'test/pipeline/denoise.test.ts'],
  'gpu-server/pipeline/denoise.ts': ['test/pipeline/denoise.test.ts'],
  'gpu-server/pipeline/decode.ts': ['test/pipeline/decode.test.ts'],
  'gpu-server/pipeline/packing.ts': ['test/pipeline/packing.test.ts'],
  'gpu-server/pipeline/layout-tokens.ts': ['test/pipeline/layout-tokens.test.ts'],
  'gpu-server/pipeline/rope.ts': ['test/pipeline/rope.test.ts'],
  'gpu-server/pipeline/generate-args.ts': ['test/pipeline/generate.test.ts'],
  'gpu-server/pipeline/art-pipeline.ts': ['test/pipeline/entry-points.test.ts', 'test/pipeline/art-pipeline.test.ts', 'test/pipeline/decompose.test.ts'],
  'gpu-server/pipeline/denoiser.ts': ['test/pipeline/entry-points.test.ts', 'test/pipeline/decompose.test.ts'],
  'gpu-server/pipeline/noise-predictor.ts': ['test/pipeline/entry-points.test.ts', 'test/pipeline/decompose.test.ts'],
  'gpu-server/pipeline/condition.ts': ['test/pipeline/decompose.test.ts', 'test/golden/cases.test.ts'],
  'gpu-server/pipeline/composite.ts': ['test/pipeline/generate.test.ts', 'test/pipeline/decompose.test.ts'],
  'gpu-server/pipeline/decompose-args.ts': ['test/pipeline/decompose.test.ts'],
  'gpu-server/models/adapter.ts': ['test/golden/cases.test.ts'],
  'gpu-server/pipeline/text-encoder.ts': ['test/pipeline/entry-points.test.ts'],
  'gpu-server/pipeline/flat-image.ts': ['test/pipeline/flat-image.test.ts'],
  'gpu-server/golden/compare.ts': ['test/golden/compare.test.ts'],
  'bridge/protocol/parse.ts': ['test/bridge/protocol.test.ts', 'test/bridge/bad-input.test.ts'],
  'bridge/protocol/image-frame.ts': ['test/bridge/protocol.test.ts'],
  'domain/layout.ts': ['test/pipeline/layout-tokens.test.ts', 'test/bridge/bad-input.test.ts'],
  'domain/params.ts': ['test/bridge/protocol.test.ts', 'test/bridge/bad-input.test.ts', 'test/pipeline/generate.test.ts'],
  'bridge/job-lifecycle.ts': ['test/bridge/job.test.ts', 'test/bridge/queue.test.ts', 'test/bridge/lifecycle.test.ts'],
  'plugin/layout.ts': ['test/plugin/layout.test.ts'],
  'plugin/insert.ts': ['test/plugin/insert.test.ts'],
  'plugin/regenerate.ts': ['test/plugin/regenerate.test.ts', 'test/plugin/replace.test.ts'],
  'plugin/replace.ts': ['test/plugin/replace.test.ts'],
  'plugin/job-images.ts': ['test/plugin/job-images.test.ts', 'test/ui/job-desk.test.ts'],
  'ui/job-desk.ts': ['test/ui/job-desk.test.ts'],
  'ui/jobs.ts': ['test/ui/jobs.test.ts', 'test/ui/job-desk.test.ts'],
};

const root = join(import.meta.dirname, '..');
const args = process.argv.slice(2).filter((a) => a !== '--');
const modules = args.length ? args : Object.keys(SCOPE);
const unknown = modules.filter((m) => !SCOPE[m]);
if (unknown.length) {
  console.error(`not in the mutation scope: ${unknown.join(', ')}; add it to SCOPE in scripts/mutate.ts with its test files`);
  process.exit(2);
}
const tmp = join(root, 'reports', 'mutation');
mkdirSync(tmp, { recursive: true });
const scores: string[] = [];
for (const mod of modules) {
  const name = mod.replace(/[/.]/g, '_');
  const config = join(tmp, `${name}.config.json`);
  writeFileSync(config, JSON.stringify({
    mutate: [mod],
    testRunner: 'command',
    commandRunner: { command: `node --import tsx --test --test-concurrency=1 ${SCOPE[mod].join(' ')}` },
    coverageAnalysis: 'off',
    concurrency: 1,
    // Added to the dry run's time x 1.5: a mutant that loops forever costs this much, not an hour.
    timeoutMS: 20_000,
    ignorePatterns: ['models', 'outputs', 'dist', 'reports', '.ci', '.stryker-tmp'],
    reporters: ['clear-text', 'progress-append-only', 'html', 'json'],
    htmlReporter: { fileName: join('reports', 'mutation', `${name}.html`) },
    jsonReporter: { fileName: join('reports', 'mutation', `${name}.json`) },
    tempDirName: '.stryker-tmp',
    cleanTempDir: true,
  }, null, 2));
  const r = spawnSync(process.execPath, [join(root, 'node_modules', '@stryker-mutator', 'core', 'bin', 'stryker.js'), 'run', config], { cwd: root, stdio: 'inherit' });
  rmSync(config, { force: true });
  if (r.status !== 0) {
    console.error(`stryker failed on ${mod} (exit ${r.status})`);
    process.exit(1);
  }
  const report = JSON.parse(readFileSync(join(tmp, `${name}.json`), 'utf8')) as { files: Record<string, { mutants: { status: string }[] }> };
  const all = Object.values(report.files).flatMap((f) => f.mutants);
  const count = (s: string) => all.filter((m) => m.status === s).length;
  const detected = count('Killed') + count('Timeout');
  const valid = detected + count('Survived') + count('NoCoverage');
  scores.push(`${mod}: ${((100 * detected) / valid).toFixed(1)}% (${detected} of ${valid} killed; ${count('Survived')} survived; ${count('CompileError') + count('RuntimeError')} invalid)`);
}
console.log(`\nmutation scores:\n  ${scores.join('\n  ')}`);
